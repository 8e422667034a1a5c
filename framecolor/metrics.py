"""Quality and temporal-stability metrics of colorized frames (numpy, no JAX).

Every function takes uint8 RGB frames (H, W, 3), or sequences of them, and
returns plain Python floats so results go straight into JSON reports. The
definitions follow the published reference code so that numbers can be set
beside the papers' tables:

- PSNR: the usual 8-bit PSNR over all pixels and channels (as TCVC's
  ``eval_results.py``), capped at ``PSNR_CAP`` for identical frames.
- SSIM: ``skimage.metrics.structural_similarity`` on RGB.
- Colorfulness: Hasler & Suesstrunk's M3 (``colorfulness``) and the
  absolute-value variant that DDColor's ``basicsr/metrics/colorfulness.py``
  computes and DDColor / ColorMNet report as "CF" (``colorfulness_abs``).
- CDC: TCVC's color distribution consistency (Liu et al., "Temporally
  consistent video colorization with deep feature propagation and
  self-regularization learning"), as in its ``compute_hist.py``.
- Flicker: framecolor's own measure of frame-to-frame color change, with
  which the tests check apply's temporal smoothing (apply itself does not
  compute it).
- Chroma spread: whether a frame has any color at all (for the training
  data and eval's truth).

eval's luma error is not here: it compares the output's Y plane with the
gray input's code for code (framecolor.evaluate), which no figure recomputed
from RGB would do.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from framecolor.errors import InputError

# PSNR of identical frames is infinite; a finite cap keeps means and JSON
# meaningful. Every PSNR is clipped to it: above 100 dB the frames differ by
# less than one code value in one pixel of a 256x256 frame, which is "identical"
# for any colorization purpose.
PSNR_CAP = 100.0

def _frame(image, name: str = "frame") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"{name} must be an RGB image of shape (H, W, 3), got shape {image.shape}")
    return image


def _pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = _frame(pred, "prediction"), _frame(truth, "reference")
    if pred.shape != truth.shape:
        raise InputError(f"prediction {pred.shape} and reference {truth.shape} differ in shape")
    return pred, truth


def psnr(pred, truth) -> float:
    """PSNR in dB of two uint8 RGB frames (peak 255), at most ``PSNR_CAP``."""
    pred, truth = _pair(pred, truth)
    mse = np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * np.log10(255.0**2 / mse)))


SSIM_MIN_SIDE = 7  # skimage's default window: eval refuses smaller clips before any work


def ssim(pred, truth) -> float:
    """SSIM of two uint8 RGB frames (skimage's defaults: 7x7 uniform window, channels averaged)."""
    pred, truth = _pair(pred, truth)
    if min(pred.shape[:2]) < SSIM_MIN_SIDE:
        raise InputError(f"SSIM needs frames of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels, "
                         f"got {pred.shape[1]}x{pred.shape[0]}")
    from skimage.metrics import structural_similarity  # scipy and scikit-image load in 0.3 s: only when used

    return float(structural_similarity(pred, truth, channel_axis=2, data_range=255))


def _opponents(image) -> tuple[np.ndarray, np.ndarray]:
    rgb = _frame(image).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return r - g, 0.5 * (r + g) - b


def _m3(rg: np.ndarray, yb: np.ndarray) -> float:
    std_root = np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2)
    mean_root = np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2)
    return float(std_root + 0.3 * mean_root)


def colorfulness(image) -> float:
    """Hasler & Suesstrunk (2003) M3 on 0..255 RGB; 0 for any gray image.

    rg = R - G, yb = (R + G)/2 - B,
    M3 = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2).
    """
    return _m3(*_opponents(image))


def colorfulness_abs(image) -> float:
    """The "CF" of DDColor and ColorMNet: M3 of |rg| and |yb|.

    DDColor's basicsr/metrics/colorfulness.py takes the absolute opponent
    values before both the standard deviations and the means, so this is
    larger than the paper's M3 whenever opponents change sign in the image.
    Use it to compare with numbers those papers report.
    """
    rg, yb = _opponents(image)
    return _m3(np.abs(rg), np.abs(yb))


# Under this chroma spread a picture has no color: measured on 258-pixel
# square frames, the photo corpus has 26 gray photos at 0.04 or under, then
# 3.0 (a near-gray beetle), 3.4, 3.6; gray frames that x264 (crf 20) coded
# after colored ones keep some chroma noise, 1.4-2.5; the least colorful
# frame of the shared clips, a dull street in bikes.mp4, is at 5.5.
NO_COLOR_SPREAD = 2.8


def chroma_spread(image) -> float:
    """How much color a frame has: the mean spread of R, G and B (0 for gray,
    in 0-255 codes) over a thumbnail of block means, so that a codec's chroma
    noise on a gray frame averages out and colored areas do not."""
    image = _frame(image)
    k = min(max(4, min(image.shape[:2]) // 32), *image.shape[:2])  # blocks of 4 pixels or more
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    thumb = image[:h, :w].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3), dtype=np.float32)
    return float((thumb.max(axis=-1) - thumb.min(axis=-1)).mean())


def has_color(frames: Iterable) -> bool:
    """Whether any of `frames` has color (chroma_spread at NO_COLOR_SPREAD or more)."""
    return any(chroma_spread(frame) >= NO_COLOR_SPREAD for frame in frames)


def _histograms(frames: Iterable) -> np.ndarray:
    """(T, 3, 256) per-channel histograms, each normalized by the pixel count."""
    hists = []
    for frame in frames:
        frame = _frame(frame)
        if frame.dtype != np.uint8:
            raise InputError(f"CDC needs uint8 frames, got {frame.dtype}")
        pixels = frame.reshape(-1, 3)
        hists.append([np.bincount(pixels[:, c], minlength=256) / len(pixels) for c in range(3)])
    return np.asarray(hists, dtype=np.float64)


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) over the last axis."""
    m = 0.5 * (p + q)
    from scipy.special import rel_entr

    return 0.5 * rel_entr(p, m).sum(-1) + 0.5 * rel_entr(q, m).sum(-1)


def cdc(frames, deltas: tuple[int, ...] = (1, 2, 4)) -> float:
    """Color distribution consistency of a clip (TCVC); lower is steadier.

    For each RGB channel and each frame distance d, the Jensen-Shannon
    divergence between the 256-bin histograms of frames t and t+d, averaged
    over t; then averaged over d (TCVC's equal 1/3 weights for d = 1, 2, 4)
    and over the channels. TCVC keeps the channels apart until the end; with
    equal weights the order of the means does not change the value.

    A clip shorter than some d skips that d (TCVC's code would return NaN);
    a clip with fewer than two frames raises InputError.
    """
    hists = _histograms(frames)
    per_delta = [
        _js_divergence(hists[:-d], hists[d:]).mean(axis=0)  # (3,) per channel
        for d in deltas
        if 0 < d < len(hists)
    ]
    if not per_delta:
        raise InputError(f"CDC needs more frames than the smallest frame distance {min(deltas)}, got {len(hists)}")
    return float(np.mean(per_delta))


def flicker(frames) -> float:
    """Mean frame-to-frame chroma change: the ab-plane distance between
    consecutive frames, sqrt(da^2 + db^2) in CIE Lab units, averaged over
    pixels and frame pairs. 0 for a static clip. Unlike CDC it is local:
    it sees a patch whose color swaps even when the histogram stays the same.
    """
    from skimage.color import rgb2lab

    previous, changes = None, []
    for frame in frames:
        ab = rgb2lab(_frame(frame))[..., 1:]
        if previous is not None:
            if ab.shape != previous.shape:
                raise InputError(f"frames differ in shape: {previous.shape[:2]} then {ab.shape[:2]}")
            changes.append(np.mean(np.hypot(*np.moveaxis(ab - previous, -1, 0))))
        previous = ab
    if not changes:
        raise InputError("flicker needs at least two frames")
    return float(np.mean(changes))

