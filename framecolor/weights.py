"""ImageNet weights for the backbone, from Keras's InceptionV3 HDF5 file.

The file (``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``, the one
``keras.applications.InceptionV3(include_top=False)`` uses) is read with h5py;
nothing is downloaded and nothing is unpickled. Its layout is Keras's legacy
weight format: the root attribute ``layer_names`` lists the layers, each layer
group's attribute ``weight_names`` lists its datasets (``conv2d_1/kernel:0``;
Keras 3 writes ``conv2d_1/kernel``).

Matching follows the order Keras created the layers, not the order of
``layer_names`` (that one is topological: a branch's first 1x1 conv can come
after deeper layers) and not the string order of the names (conv2d_10 sorts
before conv2d_2): Keras numbers auto-named layers as it creates them
(conv2d, conv2d_1, ... or conv2d_1, conv2d_2, ... in older Keras), so the
numeric suffix gives the creation order, which is the order the Flax backbone
creates its ``conv_NN`` / ``bn_NN`` modules. Shapes are checked one by one, so
a file of another network fails with the name of the first layer that differs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jax
import numpy as np

from framecolor.errors import ModelFileError
from framecolor.models.colorizer import BACKBONE
from framecolor.models.inception import NUM_CONV, InceptionV3, bn_name, conv_name

FILENAME = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")


def default_keras_weights_path() -> Path | None:
    """Where Keras keeps the file it downloaded: $KERAS_HOME/models or ~/.keras/models."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "models")
    dirs.append(Path.home() / ".keras" / "models")
    for d in dirs:
        if (d / FILENAME).is_file():
            return d / FILENAME
    return None


def backbone_shapes() -> dict:
    """{"params", "batch_stats"} shapes of the Keras-exact (width 1.0) backbone."""
    x = jax.ShapeDtypeStruct((1, 299, 299, 3), np.float32)
    return jax.eval_shape(lambda x: InceptionV3().init(jax.random.PRNGKey(0), x, train=False), x)


KERAS = "keras"  # --backbone-weights keras: the copy Keras itself keeps (default_keras_weights_path)


def weights_file(given=None) -> Path:
    """The weights file `given` names: a path, or None or "keras" for Keras's own
    copy, which is looked up, never downloaded. Raises ModelFileError where there is none."""
    if given is None or str(given) == KERAS:
        path = default_keras_weights_path()
        if path is None:
            raise ModelFileError(
                f"no ImageNet weights found: expected {FILENAME} in $KERAS_HOME/models or ~/.keras/models "
                "(framecolor downloads nothing); pass its path"
            )
        return path
    path = Path(given)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file; expected the Keras InceptionV3 weights ({FILENAME}), "
                             f"or '{KERAS}' for the copy Keras keeps in ~/.keras/models")
    return path


def load_inception_weights(path=None) -> dict:
    """The backbone's {"params", "batch_stats"} (float32 NumPy) from the Keras HDF5 file.

    `path` as `weights_file` takes it (None: Keras's own copy). Raises
    ModelFileError for a missing, unreadable, truncated or mismatched file.
    """
    path = weights_file(path)
    convs, bns = _read_layers(path)
    if len(convs) != NUM_CONV or len(bns) != NUM_CONV:
        raise ModelFileError(
            f"{path}: expected {NUM_CONV} conv layers and {NUM_CONV} batch normalization layers "
            f"(Keras InceptionV3 without top), found {len(convs)} and {len(bns)}"
        )
    convs, bns = _creation_order(path, convs), _creation_order(path, bns)
    shapes = backbone_shapes()
    params, stats = {}, {}
    for i, ((cname, cw), (bname, bw)) in enumerate(zip(convs, bns)):
        ours_c, ours_b = conv_name(i), bn_name(i)
        for layer, weights, extra in ((cname, cw, "bias"), (bname, bw, "gamma")):
            if extra in weights:
                raise ModelFileError(
                    f"{path}: layer {layer} has a {extra}, which Keras InceptionV3 does not (another network?)"
                )
        params[ours_c] = {"kernel": _checked(path, cname, "kernel", cw, shapes["params"][ours_c]["kernel"])}
        params[ours_b] = {"bias": _checked(path, bname, "beta", bw, shapes["params"][ours_b]["bias"])}
        stats[ours_b] = {
            "mean": _checked(path, bname, "moving_mean", bw, shapes["batch_stats"][ours_b]["mean"]),
            "var": _checked(path, bname, "moving_variance", bw, shapes["batch_stats"][ours_b]["var"]),
        }
    return {"params": params, "batch_stats": stats}


def merge_backbone(variables, backbone_variables) -> dict:
    """`variables` of a colorizer with its backbone replaced by `backbone_variables` (a new dict)."""
    out = {}
    for collection in ("params", "batch_stats"):
        mine = dict(variables[collection])
        if BACKBONE not in mine:
            raise ModelFileError(f"the model has no {BACKBONE!r} in its {collection} to load ImageNet weights into")
        new = backbone_variables[collection]
        _check_same_shapes(mine[BACKBONE], new, collection)
        mine[BACKBONE] = new
        out[collection] = mine
    return {**variables, **out}


def _check_same_shapes(ours, theirs, collection):
    ours_flat = dict(jax.tree_util.tree_flatten_with_path(ours)[0])
    theirs_flat = dict(jax.tree_util.tree_flatten_with_path(theirs)[0])
    if ours_flat.keys() != theirs_flat.keys():
        raise ModelFileError(f"the ImageNet weights do not fit this model's backbone ({collection} differ)")
    for key, leaf in ours_flat.items():
        if tuple(leaf.shape) != tuple(theirs_flat[key].shape):
            raise ModelFileError(
                f"the ImageNet weights fit the full-width backbone only: {jax.tree_util.keystr(key)} is "
                f"{tuple(theirs_flat[key].shape)} there and {tuple(leaf.shape)} in this model (width < 1?)"
            )


def _attr_list(group, name) -> list[str]:
    """A Keras list attribute, which Keras splits into name0, name1, ... when it is long."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, k = [], 0
        while f"{name}{k}" in group.attrs:
            values.extend(group.attrs[f"{name}{k}"])
            k += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_layers(path: Path):
    """([(name, {weight: array})] of conv layers, same of BN layers) in file order."""
    import h5py

    convs, bns = [], []
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # a whole saved model, too
            names = _attr_list(root, "layer_names")
            if not names:
                raise ModelFileError(f"{path}: not a Keras weight file (no 'layer_names' attribute)")
            for name in names:
                if name not in root:
                    raise ModelFileError(f"{path}: layer {name} is listed but missing (truncated file?)")
                group = root[name]
                weights = {}
                for wname in _attr_list(group, "weight_names"):
                    short = wname.rsplit("/", 1)[-1].split(":")[0]
                    weights[short] = np.asarray(group[wname], dtype=np.float32)
                if "kernel" in weights and weights["kernel"].ndim == 4:
                    convs.append((name, weights))
                elif "moving_mean" in weights:
                    bns.append((name, weights))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read the Keras weight file ({exc}); truncated or not HDF5?") from None
    return convs, bns


def _creation_order(path, layers):
    """Sort by the number Keras appended to the layer names as it created them."""
    keys = []
    for name, _ in layers:
        prefix, number = _SUFFIX.match(name).groups()
        keys.append((prefix, int(number or 0)))
    if len({prefix for prefix, _ in keys}) != 1 or len({n for _, n in keys}) != len(keys):
        raise ModelFileError(
            f"{path}: cannot tell the order Keras created the layers in: expected automatic names "
            f"like conv2d_1 ... conv2d_94, found {', '.join(sorted({n for n, _ in layers})[:4])} ..."
        )
    return [layer for _, layer in sorted(zip(keys, layers), key=lambda kv: kv[0][1])]


def _checked(path, layer, weight, weights, expected):
    if weight not in weights:
        raise ModelFileError(
            f"{path}: layer {layer} has weights {', '.join(weights)}, expected {weight}"
        )
    value = weights[weight]
    if value.shape != tuple(expected.shape):
        raise ModelFileError(
            f"{path}: layer {layer} {weight} has shape {value.shape}, expected {tuple(expected.shape)}"
        )
    return value
