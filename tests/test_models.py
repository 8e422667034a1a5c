"""The backbone and the colorizer: sizes, shapes, dtypes and numerics.

Full-size models are only traced (jax.eval_shape: no compile, no compute);
only the tiny model runs.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framecolor import color
from framecolor.errors import FramecolorError, InputError, ModelFileError
from framecolor.models import colorizer
from framecolor.models.colorizer import (
    TINY_MODEL,
    ModelConfig,
    build_colorizer,
    count_params,
    init_variables,
    variable_shapes,
)
from framecolor.models.inception import NUM_CONV, InceptionV3

# One jitted forward of the tiny model, shared with test_modelfile so it compiles once.
tiny_apply = jax.jit(build_colorizer(TINY_MODEL).apply)



def _size(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _output_shape(config, h, w, batch=2):
    module = build_colorizer(config)
    x = jax.ShapeDtypeStruct((batch, h, w, 1), jnp.float32)
    return jax.eval_shape(module.apply, variable_shapes(config, config.size), x)


def test_backbone_is_keras_inception_v3_layer_for_layer():
    x = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: InceptionV3().init(jax.random.PRNGKey(0), x), x)
    # Keras's model.count_params() for InceptionV3(include_top=False), moving stats included.
    assert _size(variables) == 21_802_784
    params = variables["params"]
    convs = [k for k in params if k.startswith("conv_")]
    assert len(convs) == NUM_CONV
    assert all(set(params[k]) == {"kernel"} for k in convs)  # no conv bias
    assert all(set(params[k]) == {"bias"} for k in params if k.startswith("bn_"))  # BN without scale
    assert params["conv_00"]["kernel"].shape == (3, 3, 3, 32)
    assert params["conv_93"]["kernel"].shape == (1, 1, 2048, 192)  # mixed10's pool branch, created last

    out = jax.eval_shape(lambda v, x: InceptionV3().apply(v, x), variables, x)
    assert out["mixed10"].shape == (1, 8, 8, 2048)  # Keras: 8x8 at 299 px
    assert out["mixed7"].shape == (1, 17, 17, 768) and out["mixed2"].shape == (1, 35, 35, 288)
    assert out["stem_s2"].shape == (1, 147, 147, 64) and out["stem_s4"].shape == (1, 71, 71, 192)


def test_seed_decoder_has_the_notebooks_parameter_counts():
    # The seed notebook's Keras model summaries (224x224 input).
    assert count_params(ModelConfig(decoder="seed", mode="lab", size=224)) == 24_441_256
    assert count_params(ModelConfig(decoder="seed", mode="rgb", size=224)) == 24_441_313


def test_width_multiplier_builds_a_smaller_network_of_the_same_shape():
    full, tiny = variable_shapes(ModelConfig(), 224), variable_shapes(TINY_MODEL, 80)
    assert jax.tree.structure(full) == jax.tree.structure(tiny)
    assert count_params(TINY_MODEL) * 40 < count_params(ModelConfig())
    assert full["params"]["backbone"]["conv_00"]["kernel"].shape == (3, 3, 3, 32)
    assert tiny["params"]["backbone"]["conv_00"]["kernel"].shape == (3, 3, 3, 8)


@pytest.mark.parametrize("decoder", ["unet", "seed"])
@pytest.mark.parametrize("hw", [(96, 96), (224, 224), (256, 448)])
def test_output_shape_is_the_input_size(decoder, hw):
    for mode, channels in (("lab", 2), ("rgb", 3)):
        out = _output_shape(ModelConfig(decoder=decoder, mode=mode), *hw)
        assert out.shape == (2, *hw, channels) and out.dtype == jnp.float32


def test_inputs_below_75_px_are_refused():
    _output_shape(TINY_MODEL, 75, 75)
    with pytest.raises(InputError, match="at least 75"):
        _output_shape(TINY_MODEL, 74, 120)


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
    config = dataclasses.replace(TINY_MODEL, compute_dtype="bfloat16")
    shapes = variable_shapes(config, config.size)
    assert {x.dtype for x in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
    x = jnp.zeros((1, 80, 80, 1), jnp.float32)
    jaxpr = jax.make_jaxpr(build_colorizer(config).apply)(shapes, x)
    assert "conv_general_dilated" in str(jaxpr) and "bf16[1,39,39,8]" in str(jaxpr)  # the first conv runs in bf16
    assert jaxpr.out_avals[0].dtype == jnp.float32
    # "auto" is float32 on the CPU the tests run on (bfloat16 on accelerators).
    assert colorizer.resolve_dtype("auto") == (jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16)


def test_backbone_sees_the_gray_picture_in_keras_range():
    lightness = jnp.array([0.0, 50.0, 100.0]).reshape(1, 1, 3, 1)
    seen = jax.jit(colorizer._backbone_input)(color.normalize_l(lightness))
    assert seen.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(seen[..., 0], seen[..., 2], atol=1e-6)  # three equal channels
    # black -> -1, white -> +1; mid lightness is sRGB gray 0.466 (not clipped at 0 by a ReLU)
    np.testing.assert_allclose(seen[0, 0, :, 1], [-1.0, 0.4663 * 2 - 1, 1.0], atol=2e-3)


def test_config_round_trips_and_rejects_bad_values():
    config = ModelConfig(decoder="seed", mode="rgb", width=0.5, size=96, compute_dtype="bfloat16")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"width": 1}) == ModelConfig()  # missing fields take defaults
    for bad in ({"decoder": "vgg"}, {"mode": "hsv"}, {"size": 60}, {"width": 0}, {"compute_dtype": "f16"}):
        with pytest.raises(FramecolorError):
            ModelConfig(**bad)
        with pytest.raises(ModelFileError):
            ModelConfig.from_dict(bad)
    with pytest.raises(ModelFileError, match="unknown fields"):
        ModelConfig.from_dict({"depth": 3})


def test_init_is_deterministic_per_key():
    a = init_variables(TINY_MODEL, jax.random.PRNGKey(1))
    b = init_variables(TINY_MODEL, jax.random.PRNGKey(1))
    c = init_variables(TINY_MODEL, jax.random.PRNGKey(2))
    kernel = lambda v: np.asarray(v["params"]["decoder"]["head"]["kernel"])  # noqa: E731
    assert np.array_equal(kernel(a), kernel(b)) and not np.array_equal(kernel(a), kernel(c))
    # Under jit (as train.py calls it) the values are the same.
    d = jax.jit(init_variables, static_argnums=(0, 2))(TINY_MODEL, jax.random.PRNGKey(1))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(d)))
    # LeCun-normal kernels, BN scale 1, batch stats 0 / 1.
    k = np.asarray(a["params"]["backbone"]["conv_05"]["kernel"])
    assert abs(k.std() * math.sqrt(math.prod(k.shape[:-1])) - 1) < 0.1
    assert np.all(np.asarray(a["batch_stats"]["backbone"]["bn_05"]["var"]) == 1)


@pytest.fixture(scope="module")
def tiny():
    variables = init_variables(TINY_MODEL, jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 80, 80, 1), minval=-1, maxval=1)
    return variables, x, np.asarray(tiny_apply(variables, x))


def test_tiny_model_predicts_ab_from_lightness(tiny):
    variables, x, out = tiny
    assert out.shape == (2, 80, 80, 2) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.abs(out).max() < 1  # tanh
    # The prediction depends on the picture: another picture, another output.
    other = np.asarray(tiny_apply(variables, x[::-1]))
    assert np.abs(other - out[::-1]).max() < 1e-6 and np.abs(out[0] - out[1]).max() > 1e-3


def test_jit_and_eager_agree(tiny):
    variables, x, out = tiny
    eager = build_colorizer(TINY_MODEL).apply(variables, x)
    np.testing.assert_allclose(np.asarray(eager), out, atol=1e-5)


def test_train_mode_returns_new_batch_stats():
    shapes = variable_shapes(TINY_MODEL, 80)
    x = jax.ShapeDtypeStruct((2, 80, 80, 1), jnp.float32)
    apply = build_colorizer(TINY_MODEL).apply
    out, updates = jax.eval_shape(lambda v, x: apply(v, x, train=True, mutable=["batch_stats"]), shapes, x)
    assert out.shape == (2, 80, 80, 2)
    assert jax.tree.structure(updates) == jax.tree.structure({"batch_stats": shapes["batch_stats"]})
