"""Color as classification over quantized ab bins (Zhang, Isola & Efros, ECCV 2016).

Regressing ab with MSE averages the plausible colors of an ambiguous pixel (a
shirt that could be red or blue) into their mean, a brownish gray. Predicting a
distribution over ab bins keeps the modes apart; class rebalancing stops the
common desaturated bins from dominating; the annealed mean (a softmax sharpened
by a temperature, then its mean) reads out a vivid but spatially steady color.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

GRID = 10.0  # bin side in ab units, as in the paper
SIGMA = 5.0  # soft-encoding and prior-smoothing kernel, ab units
NEIGHBOURS = 5  # bins each true color is spread over
REBALANCE = 0.5  # lambda: mix of the smoothed prior with a uniform one
TEMPERATURE = 0.38  # annealed-mean temperature of the paper


@functools.lru_cache(maxsize=1)
def bin_centers() -> np.ndarray:
    """(Q, 2) ab centers of the grid cells that some sRGB color falls in.

    Computed (not tabulated) from a dense sampling of the sRGB cube, so the
    classes are exactly the in-gamut colors of the Lab conversion we use.
    """
    from skimage.color import rgb2lab

    levels = np.linspace(0.0, 1.0, 64)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)
    ab = rgb2lab(rgb)[:, 0, 1:]
    cells = np.unique(np.floor(ab / GRID).astype(np.int64), axis=0)
    return ((cells + 0.5) * GRID).astype(np.float32)


def num_bins() -> int:
    return len(bin_centers())


def _sq_distances(ab, centers):
    return jnp.sum(jnp.square(ab[..., None, :] - centers), axis=-1)


def soft_targets(ab, centers, sigma: float = SIGMA, k: int = NEIGHBOURS):
    """True ab (..., 2) -> a distribution over bins (..., Q): Gaussian weights on the k nearest."""
    d2 = _sq_distances(ab, centers)
    neg, idx = jax.lax.top_k(-d2, k)
    w = jax.nn.softmax(neg / (2.0 * sigma**2), axis=-1)
    return jnp.sum(jax.nn.one_hot(idx, centers.shape[0], dtype=w.dtype) * w[..., None], axis=-2)


def class_weights(ab_samples: np.ndarray, centers: np.ndarray, lam: float = REBALANCE,
                  sigma: float = SIGMA) -> np.ndarray:
    """(Q,) rebalancing weights from sample ab values (N, 2) of the training data.

    w ∝ 1 / ((1 - λ) p̃ + λ / Q) with p̃ the empirical bin distribution smoothed
    by a Gaussian, normalized so that the expected weight under p̃ is 1.
    """
    ab_samples = np.asarray(ab_samples, np.float32).reshape(-1, 2)
    nearest = np.argmin(((ab_samples[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    p = np.bincount(nearest, minlength=len(centers)).astype(np.float64)
    p /= max(p.sum(), 1.0)
    d2 = ((centers[:, None, :] - centers[None]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma**2))
    p = kernel @ p / kernel.sum(axis=1)
    p /= p.sum()
    w = 1.0 / ((1.0 - lam) * p + lam / len(centers))
    return (w / np.sum(p * w)).astype(np.float32)


def loss(logits, ab, weights, centers):
    """Rebalanced cross-entropy per image (B,): logits (B, h, w, Q) against true ab (B, h, w, 2)."""
    z = soft_targets(ab, centers)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    pixel = -jnp.sum(z * log_p, axis=-1) * weights[jnp.argmax(z, axis=-1)]
    return pixel.reshape(pixel.shape[0], -1).mean(axis=1)


def annealed_mean(logits, centers, temperature: float = TEMPERATURE):
    """Logits (..., Q) -> ab (..., 2): the mean of the distribution sharpened by `temperature`."""
    p = jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    return p @ centers
