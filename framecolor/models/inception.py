"""InceptionV3 as a Flax feature extractor, layer for layer the Keras model.

At ``width=1.0`` the network is ``keras.applications.InceptionV3(include_top=False)``:
the same 94 convolutions (no bias) each followed by a BatchNorm without scale
(epsilon 1e-3, momentum 0.99), the same valid/same paddings, 21,802,784
variables counting the batch statistics. That is what lets `framecolor.weights`
pour the ImageNet weights of the Keras HDF5 file straight in.

Convolution ``i`` (in the order Keras creates its layers) is ``conv_{i:02d}``
and its BatchNorm ``bn_{i:02d}``: zero-padded so that sorting the names gives
the creation order, which is the order the weight import relies on.

Other widths scale every layer's channels (rounded to a multiple of 8) to
build a smaller network of the same shape, e.g. for tests and CPU use.
"""

from __future__ import annotations

import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framecolor.errors import InputError

MIN_SIZE = 75  # smaller inputs shrink to nothing in the valid-padded stem and reductions
NUM_CONV = 94
ENDPOINTS = ("stem_s2", "stem_s4") + tuple(f"mixed{i}" for i in range(11))


def channels(filters: int, width: float) -> int:
    """Channels of a Keras layer with `filters` at a width multiplier (exact at 1.0)."""
    return max(8, int(round(filters * width / 8)) * 8)


def conv_name(index: int) -> str:
    return f"conv_{index:02d}"


def bn_name(index: int) -> str:
    return f"bn_{index:02d}"


def _cat(parts):
    return jnp.concatenate(parts, axis=-1)


class InceptionV3(nn.Module):
    """Input: (N, H, W, 3) in [-1, 1] (Keras `preprocess_input` scaling), H, W >= 75.

    Returns a dict of endpoints (see ENDPOINTS) for skip connections:
    ``stem_s2`` (64 ch, stride ~2), ``stem_s4`` (192 ch, stride ~4),
    ``mixed0``-``mixed2`` (stride ~8), ``mixed3``-``mixed7`` (~16) and
    ``mixed8``-``mixed10`` (~32, 2048 ch: the Keras model's output).
    Valid paddings make the sizes a little smaller than H / stride.
    """

    width: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False) -> dict[str, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"the backbone takes (N, H, W, 3) images, not shape {tuple(x.shape)}")
        if min(x.shape[1:3]) < MIN_SIZE:
            raise InputError(
                f"input of {x.shape[2]}x{x.shape[1]} px is too small: the Inception backbone needs "
                f"at least {MIN_SIZE} px on each side"
            )
        counter = itertools.count()

        def conv_bn(y, filters, kh, kw, strides=1, padding="SAME"):
            i = next(counter)
            y = nn.Conv(
                channels(filters, self.width), (kh, kw), strides=(strides, strides), padding=padding,
                use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name=conv_name(i),
            )(y)
            y = nn.BatchNorm(
                use_running_average=not train, momentum=0.99, epsilon=1e-3, use_scale=False, use_fast_variance=False,
                dtype=self.dtype, param_dtype=jnp.float32, name=bn_name(i),
            )(y)
            return nn.relu(y)

        def max_pool(y):
            return nn.max_pool(y, (3, 3), strides=(2, 2), padding="VALID")

        def avg_pool(y):
            # Keras (TF) averages "same" windows over the valid pixels only.
            return nn.avg_pool(y, (3, 3), strides=(1, 1), padding="SAME", count_include_pad=False)

        out = {}

        x = x.astype(self.dtype)
        x = conv_bn(x, 32, 3, 3, strides=2, padding="VALID")
        x = conv_bn(x, 32, 3, 3, padding="VALID")
        x = conv_bn(x, 64, 3, 3)
        out["stem_s2"] = x
        x = max_pool(x)
        x = conv_bn(x, 80, 1, 1, padding="VALID")
        x = conv_bn(x, 192, 3, 3, padding="VALID")
        out["stem_s4"] = x
        x = max_pool(x)

        # mixed0-2: 35 x 35 at 299 px
        for i, pool_filters in enumerate((32, 64, 64)):
            b1 = conv_bn(x, 64, 1, 1)
            b5 = conv_bn(conv_bn(x, 48, 1, 1), 64, 5, 5)
            b3 = conv_bn(conv_bn(conv_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
            bp = conv_bn(avg_pool(x), pool_filters, 1, 1)
            x = out[f"mixed{i}"] = _cat([b1, b5, b3, bp])

        # mixed3: reduction to 17 x 17
        b3 = conv_bn(x, 384, 3, 3, strides=2, padding="VALID")
        bd = conv_bn(conv_bn(conv_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, strides=2, padding="VALID")
        x = out["mixed3"] = _cat([b3, bd, max_pool(x)])

        # mixed4-7: factorized 7x7 convolutions
        for i, mid in zip(range(4, 8), (128, 160, 160, 192)):
            b1 = conv_bn(x, 192, 1, 1)
            b7 = conv_bn(conv_bn(conv_bn(x, mid, 1, 1), mid, 1, 7), 192, 7, 1)
            bd = conv_bn(x, mid, 1, 1)
            bd = conv_bn(conv_bn(conv_bn(bd, mid, 7, 1), mid, 1, 7), mid, 7, 1)
            bd = conv_bn(bd, 192, 1, 7)
            bp = conv_bn(avg_pool(x), 192, 1, 1)
            x = out[f"mixed{i}"] = _cat([b1, b7, bd, bp])

        # mixed8: reduction to 8 x 8
        b3 = conv_bn(conv_bn(x, 192, 1, 1), 320, 3, 3, strides=2, padding="VALID")
        b7 = conv_bn(conv_bn(conv_bn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
        b7 = conv_bn(b7, 192, 3, 3, strides=2, padding="VALID")
        x = out["mixed8"] = _cat([b3, b7, max_pool(x)])

        # mixed9-10: expanded filter banks
        for i in (9, 10):
            b1 = conv_bn(x, 320, 1, 1)
            b3 = conv_bn(x, 384, 1, 1)
            b3 = _cat([conv_bn(b3, 384, 1, 3), conv_bn(b3, 384, 3, 1)])
            bd = conv_bn(conv_bn(x, 448, 1, 1), 384, 3, 3)
            bd = _cat([conv_bn(bd, 384, 1, 3), conv_bn(bd, 384, 3, 1)])
            bp = conv_bn(avg_pool(x), 192, 1, 1)
            x = out[f"mixed{i}"] = _cat([b1, b3, bd, bp])

        assert next(counter) == NUM_CONV
        return out
