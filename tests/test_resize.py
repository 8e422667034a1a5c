"""framecolor.resize: the banded linear resize must give jax.image.resize's numbers."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from framecolor import resize


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("shape_in, shape_out", [
    ((2, 45, 80, 2), (2, 90, 160, 2)),  # upsample x2, as ab at 224 -> 448p chroma
    ((2, 28, 50, 2), (2, 45, 80, 2)),  # upsample by an uneven factor
    ((2, 90, 160), (2, 28, 50)),  # shrink ~3.2x, as 720p luma -> render size
    ((2, 28, 50), (2, 23, 40)),  # shrink by less than 2
    ((2, 28, 50), (2, 28, 64)),  # one axis only
])
def test_matches_jax_image_resize(shape_in, shape_out, antialias):
    x = np.random.default_rng(0).normal(0, 30, shape_in).astype(np.float32)
    want = jax.image.resize(x, shape_out, "linear", antialias=antialias)
    got = resize.linear(x, shape_out[1:3], axes=(1, 2), antialias=antialias)
    assert got.shape == shape_out
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)  # jax weighs in float32, we in float64


def test_only_the_taps_the_kernel_reaches_are_read():
    index, weight = resize._band(720, 224, True)
    assert index.shape == weight.shape and index.shape[0] <= 8
    np.testing.assert_allclose(weight.sum(axis=0), 1.0, rtol=1e-6)
    assert resize._band(224, 360, True)[0].shape[0] == 2
