"""Classification over ab bins: the quantization, targets, rebalancing, loss and readout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color

from framecolor import abbins
from framecolor.models.colorizer import ModelConfig, build_colorizer, init_variables


@pytest.fixture(scope="module")
def centers():
    return abbins.bin_centers()


@pytest.fixture(scope="module")
def bins_model():
    """A tiny bins-head model, its forward jitted: one compile a readout, not op by op."""
    config = ModelConfig(width=0.125, size=80, head="bins")
    module, variables = build_colorizer(config), init_variables(config, jax.random.PRNGKey(1))
    return jax.jit(module.apply, static_argnames=("logits",)), variables


def test_bins_cover_the_srgb_gamut_and_nothing_else(centers):
    assert 200 < len(centers) < 330  # the paper has 313 with a coarser gamut sampling
    ab = skimage.color.rgb2lab(np.random.default_rng(0).random((5000, 1, 3)))[:, 0, 1:]
    nearest = np.sqrt(((ab[:, None] - centers[None]) ** 2).sum(-1)).min(axis=1)
    assert nearest.max() <= abbins.GRID / np.sqrt(2) + 1e-3  # every color lies in some bin's cell
    assert np.abs(centers).max() < 110  # no bin outside what the ab normalization can express


def test_soft_targets_are_distributions_peaked_at_the_nearest_bin(centers):
    ab = jnp.asarray(centers[[3, 100]] + 1.0)
    z = np.asarray(abbins.soft_targets(ab, jnp.asarray(centers)))
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    assert list(z.argmax(-1)) == [3, 100]
    assert ((z > 1e-6).sum(-1) == abbins.NEIGHBOURS).all()


def test_annealed_mean_reads_a_confident_bin_and_averages_an_unsure_one(centers):
    c = jnp.asarray(centers)
    sure = jnp.full((len(centers),), -50.0).at[42].set(50.0)
    np.testing.assert_allclose(np.asarray(abbins.annealed_mean(sure, c)), centers[42], atol=1e-3)
    flat = jnp.zeros((len(centers),))
    np.testing.assert_allclose(np.asarray(abbins.annealed_mean(flat, c)), centers.mean(0), atol=1e-3)


def test_rebalancing_favours_rare_colors_with_unit_expected_weight(centers):
    rng = np.random.default_rng(1)
    common = rng.normal(0, 3, (900, 2))  # mostly near-gray pixels, as in real footage
    rare = centers[[10, 200]].repeat(50, axis=0)
    w = abbins.class_weights(np.concatenate([common, rare]), centers)
    gray_bin = np.argmin((centers**2).sum(-1))
    assert w[gray_bin] < w[10] and w[gray_bin] < w[200]
    assert w.min() > 0 and np.isfinite(w).all()


def test_loss_prefers_the_true_color(centers):
    c = jnp.asarray(centers)
    ab = jnp.broadcast_to(c[7], (1, 2, 2, 2))
    weights = jnp.ones(len(centers))
    right = jnp.full((1, 2, 2, len(centers)), -5.0).at[..., 7].set(5.0)
    wrong = jnp.full((1, 2, 2, len(centers)), -5.0).at[..., 150].set(5.0)
    assert float(abbins.loss(right, ab, weights, c)[0]) < float(abbins.loss(wrong, ab, weights, c)[0])


def test_bins_head_gives_ab_at_input_size_and_logits_at_stride_four(bins_model):
    forward, variables = bins_model
    x = jnp.zeros((1, 80, 96, 1))
    ab = forward(variables, x)
    logits = forward(variables, x, logits=True)
    assert ab.shape == (1, 80, 96, 2) and float(jnp.abs(ab).max()) <= 1.0
    assert logits.shape[-1] == abbins.num_bins() and 80 // 5 <= logits.shape[1] <= 80 // 4


def test_bins_head_needs_lab_and_unet():
    from framecolor.errors import FramecolorError

    with pytest.raises(FramecolorError, match="bins head"):
        ModelConfig(mode="rgb", head="bins")


def test_readout_temperature_trades_vividness_for_safety(bins_model):
    forward, variables = bins_model
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 80, 96, 1)), jnp.float32)
    logits = forward(variables, x, logits=True)
    # The readout is the annealed mean of the logits at the given temperature, upsampled.
    for t in (0.2, 1.0):
        ab = forward(variables, x, temperature=t)
        expected = abbins.annealed_mean(logits, jnp.asarray(abbins.bin_centers()), t)
        np.testing.assert_allclose(float(ab.mean()) * 110, float(expected.mean()), atol=0.5)
    spread = [float(jnp.std(abbins.annealed_mean(logits, jnp.asarray(abbins.bin_centers()), t))) for t in (0.05, 2.0)]
    assert spread[0] > spread[1]  # a cold readout keeps the per-pixel choices apart; a hot one averages them
