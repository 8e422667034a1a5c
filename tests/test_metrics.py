"""Metrics against values worked out by hand from their definitions."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from skimage.color import rgb2lab

from framecolor import metrics
from framecolor.errors import InputError

LN2 = math.log(2.0)


def solid(rgb, h=8, w=8):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


# --- PSNR / SSIM -------------------------------------------------------------


def test_psnr_identical_is_the_cap(noise):
    assert metrics.psnr(noise, noise) == metrics.PSNR_CAP == 100.0


def test_psnr_of_constant_shift():
    # +10 on every channel of every pixel: MSE = 100.
    expected = 10 * math.log10(255**2 / 100)
    assert metrics.psnr(solid((110, 60, 10)), solid((100, 50, 0))) == pytest.approx(expected)
    assert expected == pytest.approx(28.1308, abs=1e-4)


def test_psnr_does_not_wrap_uint8():
    # 0 vs 255 must be an error of 255 (PSNR 0 dB), not 1 as uint8 arithmetic would give.
    assert metrics.psnr(solid((0, 0, 0)), solid((255, 255, 255))) == pytest.approx(0.0)


def test_ssim(noise):
    assert metrics.ssim(noise, noise) == pytest.approx(1.0)
    other = np.random.default_rng(1).integers(0, 256, noise.shape, dtype=np.uint8)
    assert metrics.ssim(noise, other) < 0.2


def test_shape_mismatch_is_an_input_error(noise):
    with pytest.raises(InputError, match="differ in shape"):
        metrics.psnr(noise, noise[:8])
    with pytest.raises(InputError, match="RGB"):
        metrics.ssim(noise[..., 0], noise[..., 0])


# --- colorfulness -------------------------------------------------------------


def test_gray_has_no_colorfulness(noise):
    gray = np.repeat(noise[..., :1], 3, axis=-1)
    assert metrics.colorfulness(gray) == 0.0
    assert metrics.colorfulness_abs(gray) == 0.0


def test_colorfulness_of_a_flat_color():
    # (200, 100, 50): rg = 100, yb = 150 - 50 = 100 everywhere, no spread.
    expected = 0.3 * math.hypot(100, 100)
    assert metrics.colorfulness(solid((200, 100, 50))) == pytest.approx(expected)
    assert metrics.colorfulness_abs(solid((200, 100, 50))) == pytest.approx(expected)


def test_colorfulness_of_red_and_green_halves():
    # Pixels (255, 0, 0) and (0, 255, 0): rg = +-255, yb = 127.5 in both.
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, :, 0] = 255
    image[1, :, 1] = 255
    # M3: std(rg) = 255, mean(rg) = 0, std(yb) = 0, mean(yb) = 127.5.
    assert metrics.colorfulness(image) == pytest.approx(255 + 0.3 * 127.5)
    # DDColor's |rg| = 255 everywhere: no spread, and mean(|rg|) = 255.
    assert metrics.colorfulness_abs(image) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_colorfulness_of_red_and_blue_pixels():
    # (255, 0, 0): rg = 255, yb = 127.5 ; (0, 0, 255): rg = 0, yb = -255.
    image = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    m3 = math.hypot(127.5, 191.25) + 0.3 * math.hypot(127.5, -63.75)
    cf_abs = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 191.25)
    assert metrics.colorfulness(image) == pytest.approx(m3)
    assert metrics.colorfulness_abs(image) == pytest.approx(cf_abs)


# --- CDC ------------------------------------------------------------------------


def test_chroma_spread_sees_color_not_a_codecs_noise_on_gray():
    rng = np.random.default_rng(0)
    gray = np.repeat(rng.integers(0, 256, (96, 128, 1)), 3, axis=2)
    noisy = np.clip(gray + rng.integers(-3, 4, gray.shape), 0, 255).astype(np.uint8)  # +-3 codes per channel
    assert metrics.chroma_spread(gray.astype(np.uint8)) == 0.0
    assert metrics.chroma_spread(noisy) < metrics.NO_COLOR_SPREAD  # averaged out in 4x4 blocks
    tinted = gray.astype(np.uint8).copy()
    tinted[:48, :, 0] = np.minimum(tinted[:48, :, 0].astype(int) + 20, 255)  # half the frame 20 codes redder
    assert metrics.chroma_spread(tinted) > metrics.NO_COLOR_SPREAD
    assert metrics.chroma_spread(np.full((1, 1, 3), (200, 10, 10), np.uint8)) == 190.0  # tiny images too


def test_cdc_of_a_static_clip_is_zero(noise):
    assert metrics.cdc([noise] * 6) == 0.0


def test_cdc_of_disjoint_histograms_is_ln2():
    black, white = solid((0, 0, 0)), solid((255, 255, 255))
    assert metrics.cdc([black, white]) == pytest.approx(LN2)  # only d = 1 fits two frames


def test_cdc_averages_over_channels():
    # Only R changes: JS is ln 2 for R and 0 for G and B.
    assert metrics.cdc([solid((0, 9, 9)), solid((255, 9, 9))], deltas=(1,)) == pytest.approx(LN2 / 3)


def test_cdc_averages_each_distance_then_over_distances():
    black, white = solid((0, 0, 0)), solid((255, 255, 255))
    clip = [black, white, black, white, black]
    # d = 1: every pair differs (ln 2); d = 2: none do (0); d = 4: black vs black (0).
    assert metrics.cdc(clip) == pytest.approx(LN2 / 3)
    assert metrics.cdc(clip, deltas=(1, 2)) == pytest.approx(LN2 / 2)


def test_cdc_of_partly_overlapping_histograms():
    # Channel values: frame a all 0; frame b half 0, half 255. JS with natural log
    # of p = (1, 0) and q = (1/2, 1/2): 0.5 ln(4/3) + 0.25 ln(2/3) + 0.25 ln 2.
    a = solid((0, 0, 0), 4, 4)
    b = a.copy()
    b[:2] = 255
    expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * LN2
    assert expected == pytest.approx(jensenshannon([1, 0], [0.5, 0.5]) ** 2)
    assert metrics.cdc([a, b]) == pytest.approx(expected)


def test_cdc_needs_two_frames(noise):
    with pytest.raises(InputError):
        metrics.cdc([noise])


# --- flicker ----------------------------------------------------------------------


def test_flicker_of_a_static_clip_is_zero(noise):
    assert metrics.flicker([noise] * 4) == 0.0


def test_flicker_is_the_mean_ab_distance():
    gray, red = solid((128, 128, 128)), solid((200, 60, 60))
    (a0, b0), (a1, b1) = rgb2lab(gray)[0, 0, 1:], rgb2lab(red)[0, 0, 1:]
    # gray -> red -> gray: both pairs move by the same ab distance.
    assert metrics.flicker([gray, red, gray]) == pytest.approx(math.hypot(a1 - a0, b1 - b0))
    assert math.hypot(a1 - a0, b1 - b0) > 40


def test_flicker_sees_what_cdc_cannot():
    # The two halves swap colors: same histograms (CDC 0), but every pixel changes.
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, :4] = (200, 40, 40)
    frame[:, 4:] = (40, 40, 200)
    swapped = frame[:, ::-1]
    assert metrics.cdc([frame, swapped]) == 0.0
    assert metrics.flicker([frame, swapped]) > 50

