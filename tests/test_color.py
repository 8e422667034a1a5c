"""framecolor.color must agree with skimage, the reference the seed notebook used."""

import jax
import numpy as np
import pytest
import skimage.color
import skimage.data

from framecolor import color


@pytest.fixture(scope="module")
def real_rgb():
    # Photographs bundled with scikit-image: real skin, sky and coffee tones.
    return np.stack([skimage.data.astronaut()[:256, :256], skimage.data.coffee()[:256, :256]]) / 255.0


@pytest.fixture(scope="module")
def random_rgb():
    return np.random.default_rng(0).random((3, 17, 19, 3))


@pytest.mark.parametrize("source", ["random_rgb", "real_rgb"])
def test_rgb_to_lab_matches_skimage(source, request):
    rgb = request.getfixturevalue(source)
    ours = np.asarray(jax.jit(color.rgb_to_lab)(rgb))
    np.testing.assert_allclose(ours, skimage.color.rgb2lab(rgb), atol=1e-3)


@pytest.mark.parametrize("source", ["random_rgb", "real_rgb"])
def test_lab_to_rgb_matches_skimage(source, request):
    lab = skimage.color.rgb2lab(request.getfixturevalue(source))
    ours = np.asarray(jax.jit(color.lab_to_rgb)(lab))
    np.testing.assert_allclose(ours, skimage.color.lab2rgb(lab), atol=1e-3)


def test_lab_to_rgb_clips_out_of_gamut_like_skimage():
    lab = np.random.default_rng(1).uniform([0, -110, -110], [100, 110, 110], (64, 3))
    with pytest.warns(UserWarning):  # skimage warns about the negative Z it clips
        expected = skimage.color.lab2rgb(lab)
    ours = np.asarray(color.lab_to_rgb(lab))
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_gray_to_lightness_is_the_l_of_a_gray_pixel():
    gray = np.linspace(0, 1, 257)
    expected = skimage.color.rgb2lab(np.stack([gray] * 3, axis=-1))[..., 0]
    np.testing.assert_allclose(np.asarray(color.gray_to_lightness(gray)), expected, atol=1e-3)


def test_normalization_round_trips_and_spans_the_gamut():
    lab = skimage.color.rgb2lab(np.random.default_rng(2).random((4096, 3)))
    l_norm = np.asarray(color.normalize_l(lab[:, 0]))
    ab_norm = np.asarray(color.normalize_ab(lab[:, 1:]))
    assert l_norm.min() >= -1 and l_norm.max() <= 1
    assert np.abs(ab_norm).max() <= 1  # every sRGB color is reachable by a tanh head
    np.testing.assert_allclose(np.asarray(color.denormalize_l(l_norm)), lab[:, 0], atol=1e-4)
    np.testing.assert_allclose(np.asarray(color.denormalize_ab(ab_norm)), lab[:, 1:], atol=1e-4)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_cbcr_of_gray_is_neutral_and_primaries_match_the_standard(matrix):
    gray = np.full((5, 3), 0.37)
    cb, cr = color.rgb_to_cbcr(gray, matrix)
    np.testing.assert_allclose(np.asarray(cb), 128.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(cr), 128.0, atol=1e-4)
    # Pure blue has the largest Cb (240) and pure red the largest Cr (240) in every matrix.
    cb_blue, _ = color.rgb_to_cbcr(np.array([0.0, 0.0, 1.0]), matrix)
    _, cr_red = color.rgb_to_cbcr(np.array([1.0, 0.0, 0.0]), matrix)
    np.testing.assert_allclose([float(cb_blue), float(cr_red)], [240.0, 240.0], atol=1e-3)


@pytest.mark.parametrize(("full_range", "bits", "codes"), [
    (False, 8, (16, 128, 240)), (True, 8, (0.5, 128, 255.5)),
    (False, 10, (64, 512, 960)), (True, 10, (0.5, 512, 1023.5)),
])
def test_chroma_codes_span_the_range_of_the_picture(full_range, bits, codes):
    # Yellow and blue sit at the ends of Cb (E = -0.5 and 0.5), gray in the middle.
    rgb = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 1.0]])
    cb, _ = color.rgb_to_cbcr(rgb, "bt709", full_range=full_range, bits=bits)
    np.testing.assert_allclose(np.asarray(cb), codes, atol=1e-3)
    low, high = color.chroma_code_range(full_range, bits)
    assert (low, high) == ((0, 2**bits - 1) if full_range else (codes[0], codes[2]))


def test_luma_matches_bt601_weights_and_limited_range_inverse():
    rgb = np.random.default_rng(3).random((10, 3))
    expected = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(np.asarray(color.luma(rgb)), expected, atol=1e-6)
    codes = np.array([0, 16, 125.5, 235, 255])
    np.testing.assert_allclose(np.asarray(color.limited_y_to_gray(codes)), [0, 0, 0.5, 1, 1], atol=1e-6)
