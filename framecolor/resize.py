"""Linear resizing as a few gathers: jax.image.resize's numbers at a fraction of its cost.

jax.image.resize builds a dense (output x input) weight matrix per axis and
multiplies by it, so every output sample reads every input sample of its
row. The linear (triangle) kernel touches only a few: two when upsampling,
about 2 x input/output when downsampling with antialiasing. Shapes are
static under jit, so the same weights are computed once in numpy, cut to
that band, and applied as one gather and a weighted sum per tap.

Jit it on its own (apply does). On XLA's CPU backend the gathers are fast
alone but slow everything fused with them: in one jit with the colour
conversion that follows it, apply's finish step got twice as slow.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def _band(size_in: int, size_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(taps, size_out) input indices and weights along one axis, as jax.image.resize weighs them."""
    inv_scale = size_in / size_out
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    centers = (np.arange(size_out) + 0.5) * inv_scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(centers[None, :] - np.arange(size_in)[:, None]) / kernel_scale)
    weights /= weights.sum(axis=0, keepdims=True)
    taps = int((weights > 0).sum(axis=0).max())
    # Each output's nonzero weights first, padded with weight 0 on input 0.
    order = np.argsort(weights <= 0, axis=0, kind="stable")[:taps]
    picked = np.take_along_axis(weights, order, axis=0)
    return np.where(picked > 0, order, 0).astype(np.int32), picked.astype(np.float32)


def linear(x, sizes: tuple[int, ...], axes: tuple[int, ...], antialias: bool = True):
    """Resize `x` along `axes` to `sizes` with a linear kernel (antialiased when shrinking).

    Equal to jax.image.resize(x, shape, "linear", antialias) up to float32
    rounding; an axis already at its size is left untouched.
    """
    x = jnp.asarray(x, jnp.float32)
    for axis, size in zip(axes, sizes):
        axis %= x.ndim
        if x.shape[axis] == size:
            continue
        index, weight = _band(x.shape[axis], size, antialias)
        shape = [1] * x.ndim
        shape[axis] = size
        x = sum(jnp.take(x, index[k], axis=axis, mode="clip") * weight[k].reshape(shape)
                for k in range(len(index)))
    return x
