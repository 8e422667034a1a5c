"""ImageNet weight import: Keras's own InceptionV3 is the reference.

Keras (3, JAX backend, no TensorFlow) runs in a subprocess, so its backend
setting and its import cost stay out of this test process. It builds
InceptionV3(weights=None, include_top=False), gives it random weights and
moving statistics, saves them in Keras's legacy HDF5 layout (the layout of the
ImageNet file) and computes the features of a random batch.
"""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import jax
import numpy as np
import pytest

from framecolor import weights
from framecolor.errors import ModelFileError
from framecolor.models.colorizer import BACKBONE, TINY_MODEL, ModelConfig, variable_shapes
from framecolor.models.inception import InceptionV3

SIZE = 107  # mixed10 is 2x2 here: the smallest size whose features are more than one pixel

KERAS_SCRIPT = r"""
import sys
import numpy as np
import keras

out, size = sys.argv[1], int(sys.argv[2])
try:
    # Keras draws every kernel with jax.random: one XLA compile per kernel
    # shape, ~10 s in all. The values are replaced below, so skip that.
    from keras.src.initializers.random_initializers import VarianceScaling
    VarianceScaling.__call__ = lambda self, shape, dtype=None: np.zeros(shape, "float32")
except ImportError:
    pass
model = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(size, size, 3))
rng = np.random.default_rng(0)
for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
        (kernel,) = layer.get_weights()
        he = np.sqrt(2.0 / np.prod(kernel.shape[:-1]))  # keeps activations O(1) through 94 layers
        layer.set_weights([(rng.standard_normal(kernel.shape) * he).astype("float32")])
    elif isinstance(layer, keras.layers.BatchNormalization):
        n = layer.get_weights()[0].shape
        beta, mean, var = rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 1.5, n)
        layer.set_weights([w.astype("float32") for w in (beta, mean, var)])
x = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
np.save(out + "/x.npy", x)
np.save(out + "/y.npy", model.predict(x, verbose=0))
model.save(out + "/inception.h5")  # legacy HDF5: weights under model_weights/, layer_names, weight_names
"""



@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras")
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "KERAS_HOME": str(out / "keras_home"),  # Keras writes its config there, not in ~/.keras
        "JAX_PLATFORMS": "cpu",
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
    }
    run = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(out), str(SIZE)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def imported(keras_files):
    return weights.load_inception_weights(keras_files / "inception.h5")


def test_imported_weights_reproduce_keras_features(keras_files, imported):
    x, expected = np.load(keras_files / "x.npy"), np.load(keras_files / "y.npy")
    assert expected.shape == (2, 2, 2, 2048) and expected.std() > 0.5  # a tolerance of 1e-4 means something
    with jax.default_matmul_precision("highest"):  # no TF32 should this run on a GPU
        got = jax.jit(lambda v, x: InceptionV3().apply(v, x)["mixed10"])(imported, x)
    assert np.abs(np.asarray(got) - expected).max() <= 1e-4


def _keras2_name(name):
    """Keras 2 numbered auto-named layers from 1 (conv2d_1), Keras 3 from 0 (conv2d)."""
    for prefix in ("conv2d", "batch_normalization"):
        if name == prefix:
            return f"{prefix}_1"
        if name.startswith(prefix + "_") and name[len(prefix) + 1:].isdigit():
            return f"{prefix}_{int(name[len(prefix) + 1:]) + 1}"
    return name


def _write_keras2_file(src, dst, edit=None):
    """The ImageNet file's layout: weights at the root, names like conv2d_1/conv2d_1/kernel:0.

    Its layer_names are written in reverse, so only the names can give the order.
    `edit(layer, weight, value)` may change a value on the way.
    """
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        root = fin["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]]
        for name in names:
            new = _keras2_name(name)
            group = fout.create_group(new)
            weight_names = []
            for wname in root[name].attrs["weight_names"]:
                wname = wname.decode() if isinstance(wname, bytes) else wname
                short = wname.rsplit("/", 1)[-1]
                value = np.asarray(root[name][wname])
                if edit is not None:
                    value = edit(new, short, value)
                weight_names.append(f"{new}/{short}:0".encode())
                group.create_dataset(f"{new}/{short}:0", data=value)
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
        fout.attrs["layer_names"] = np.array([_keras2_name(n).encode() for n in reversed(names)], dtype="S")
        fout.attrs["backend"] = b"tensorflow"
        fout.attrs["keras_version"] = b"2.1.5"


def test_keras2_layout_loads_the_same(keras_files, imported, tmp_path):
    path = tmp_path / weights.FILENAME
    _write_keras2_file(keras_files / "inception.h5", path)
    again = weights.load_inception_weights(path)
    assert jax.tree.structure(again) == jax.tree.structure(imported)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(imported)))


def test_default_path_is_found_in_keras_home_or_home(keras_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    assert weights.default_keras_weights_path() is None
    with pytest.raises(ModelFileError, match=weights.FILENAME):
        weights.load_inception_weights()
    for folder in (tmp_path / "home" / ".keras" / "models", tmp_path / "keras_home" / "models"):
        folder.mkdir(parents=True)
        (folder / weights.FILENAME).symlink_to(keras_files / "inception.h5")
        assert weights.default_keras_weights_path() == folder / weights.FILENAME  # KERAS_HOME wins


def test_missing_truncated_and_foreign_files_are_refused(keras_files, tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        weights.load_inception_weights(tmp_path / "nothing.h5")
    data = (keras_files / "inception.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) * 2 // 5])
    with pytest.raises(ModelFileError, match="cut.h5"):
        weights.load_inception_weights(tmp_path / "cut.h5")
    (tmp_path / "text.h5").write_text("not hdf5\n")
    with pytest.raises(ModelFileError, match="text.h5"):
        weights.load_inception_weights(tmp_path / "text.h5")
    with h5py.File(tmp_path / "small.h5", "w") as f:  # another (tiny) network
        f.attrs["layer_names"] = np.array([b"conv2d_1", b"batch_normalization_1"], dtype="S")
        f.create_group("conv2d_1").attrs["weight_names"] = np.array([b"conv2d_1/kernel:0"], dtype="S")
        f["conv2d_1"].create_dataset("conv2d_1/kernel:0", data=np.zeros((3, 3, 3, 8), "f4"))
        names = [f"batch_normalization_1/{w}:0".encode() for w in ("beta", "moving_mean", "moving_variance")]
        f.create_group("batch_normalization_1").attrs["weight_names"] = np.array(names, dtype="S")
        for name in names:
            f["batch_normalization_1"].create_dataset(name.decode(), data=np.zeros(8, "f4"))
    with pytest.raises(ModelFileError, match="expected 94 conv layers .* found 1 and 1"):
        weights.load_inception_weights(tmp_path / "small.h5")


def test_a_mismatched_layer_is_named(keras_files, tmp_path):
    def widen(layer, weight, value):
        return np.concatenate([value, value], axis=-1) if layer == "conv2d_7" else value

    path = tmp_path / "wrong.h5"
    _write_keras2_file(keras_files / "inception.h5", path, widen)
    with pytest.raises(ModelFileError, match=r"conv2d_7 kernel has shape \(1, 1, 192, 96\), expected \(1, 1, 192, 48\)"):
        weights.load_inception_weights(path)


def test_merge_backbone_replaces_only_the_backbone(imported):
    variables = variable_shapes(ModelConfig(decoder="seed"), 224)
    merged = weights.merge_backbone(variables, imported)
    assert merged["params"][BACKBONE] is imported["params"]
    assert merged["batch_stats"][BACKBONE] is imported["batch_stats"]
    assert merged["params"]["decoder"] is variables["params"]["decoder"]
    assert variables["params"][BACKBONE] is not imported["params"]  # the input is left as it was
    with pytest.raises(ModelFileError, match="width"):
        weights.merge_backbone(variable_shapes(TINY_MODEL, 80), imported)
