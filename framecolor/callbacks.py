"""What happens between epochs: early stopping, plateau LR, metrics, previews, loss curve.

All of it is plain data in, plain data out (the monitor is a frozen dataclass
stored in each checkpoint), so a resumed run continues exactly where the
interrupted one stopped. Images are drawn with numpy + skimage.draw, their
words with Pillow's built-in font; no plotting library is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from framecolor.atomic import write_atomic


@dataclass(frozen=True)
class Monitor:
    """Early stopping and reduce-LR-on-plateau on one monitored loss (lower is better)."""

    lr: float
    best: float = math.inf
    best_epoch: int = -1  # 0-based epoch of the best loss
    best_step: int = -1  # the checkpoint step holding the best model
    bad_epochs: int = 0  # epochs since the best (early stopping)
    plateau_epochs: int = 0  # epochs since the best or the last LR cut
    stopped: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["best"] = None if math.isinf(self.best) else self.best
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Monitor":
        d = dict(d)
        d["best"] = math.inf if d.get("best") is None else d["best"]
        return cls(**d)


def update_monitor(
    monitor: Monitor,
    loss: float,
    *,
    epoch: int,
    step: int,
    patience: int,
    plateau_patience: int,
    plateau_factor: float,
    min_lr: float,
    min_delta: float = 1e-4,
) -> Monitor:
    """The monitor after one epoch with ``loss``; ``.lr`` may be lowered, ``.stopped`` set.

    An improvement must beat the best by a relative ``min_delta`` so that noise
    in the last digits does not reset the patience forever.
    """
    improved = not math.isfinite(monitor.best) or loss < monitor.best * (1.0 - min_delta)
    if improved:
        return replace(monitor, best=loss, best_epoch=epoch, best_step=step, bad_epochs=0, plateau_epochs=0)
    bad, plateau, lr = monitor.bad_epochs + 1, monitor.plateau_epochs + 1, monitor.lr
    if plateau_patience > 0 and plateau >= plateau_patience and lr > min_lr:
        lr, plateau = max(lr * plateau_factor, min_lr), 0
    stopped = patience > 0 and bad >= patience
    return replace(monitor, bad_epochs=bad, plateau_epochs=plateau, lr=lr, stopped=stopped)


def with_patience(monitor: Monitor, patience: int) -> Monitor:
    """The monitor of a resumed run under its --patience (given anew or not).

    An early stop is the patience running out, so it is decided again: a run
    that stopped early and is resumed with a larger --patience (or 0) and
    more --epochs trains on, where it ended at once without a word.
    """
    return replace(monitor, stopped=patience > 0 and monitor.bad_epochs >= patience)


# ------------------------------------------------------------------ files


def write_metrics(path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the history (used on resume: drops epochs never checkpointed)."""
    write_atomic(path, "".join(json.dumps(row) + "\n" for row in history).encode())


def append_metrics(path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_png(path, rgb: np.ndarray) -> None:
    """Atomic PNG write (a killed run never leaves half an image)."""
    import imageio.v3 as iio

    path = Path(path)
    write_atomic(path, iio.imwrite("<bytes>", np.asarray(rgb, np.uint8), extension=".png"))


# ---------------------------------------------------------------- previews


_INK = (60, 60, 60)  # words: darker than the loss plot's grid, lighter than its axes
_PREVIEW_COLUMNS = ("gray", "prediction", "truth")
_HEADER = 16  # pixels above the first row, for the columns' names


def preview_grid(gray: np.ndarray, pred: np.ndarray, truth: np.ndarray, min_side: int = 160) -> np.ndarray:
    """Rows of gray | prediction | truth under the columns' names, (n, s, s, 3) uint8 each -> one RGB image."""
    from PIL import Image, ImageDraw, ImageFont

    n, s = gray.shape[0], gray.shape[1]
    zoom = max(1, -(-min_side // s))
    gap = 4
    tile = s * zoom
    out = np.full((_HEADER + n * tile + (n + 1) * gap, 3 * tile + 4 * gap, 3), 255, np.uint8)
    for r in range(n):
        for c, img in enumerate((gray[r], pred[r], truth[r])):
            big = np.repeat(np.repeat(img, zoom, axis=0), zoom, axis=1)
            y, x = _HEADER + gap + r * (tile + gap), gap + c * (tile + gap)
            out[y : y + tile, x : x + tile] = big
    picture = Image.fromarray(out)
    draw, font = ImageDraw.Draw(picture), ImageFont.load_default()
    for c, name in enumerate(_PREVIEW_COLUMNS):
        draw.text((gap + c * (tile + gap) + tile // 2, _HEADER), name, fill=_INK, font=font, anchor="md")
    return np.asarray(picture)


_SERIES = (("train_loss", "train", (31, 119, 180)), ("val_loss", "validation", (255, 127, 14)))
_LEGEND_ROW = 14  # pixels a legend line takes


def loss_curve(history: list[dict], height: int = 300, width: int = 480) -> np.ndarray:
    """A line plot of train (blue) and validation (orange) loss per epoch, log
    scale, with a legend, the loss at its grid lines and the epochs numbered."""
    from PIL import Image, ImageDraw, ImageFont
    from skimage.draw import disk, line

    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 52, width - 15, 15, height - 30
    img[top:bottom + 1, left] = 0
    img[bottom, left:right + 1] = 0
    values = [r[k] for r in history for k, _, _ in _SERIES if _plotted(r.get(k))]
    if not values:
        return img
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    n = len(history)
    # The points stop short of the axis, and below the legend: a diverging
    # run's last (highest) point was drawn under the legend, the lowest on the axis.
    data_top, data_bottom = top + _LEGEND_ROW * len(_SERIES) + 8, bottom - 6

    def row(v):
        return int(round(data_bottom - (math.log10(v) - lo) / (hi - lo) * (data_bottom - data_top)))

    def column(i):
        return int(round(left + (i / (n - 1) if n > 1 else 0.5) * (right - left)))

    ticks = _log_ticks(lo, hi)
    for v in ticks:
        img[row(v), left + 1 : right + 1 : 3] = 170
    for key, _, color in _SERIES:
        pts = [(row(r[key]), column(i)) for i, r in enumerate(history) if _plotted(r.get(key))]
        for (y0, x0), (y1, x1) in zip(pts, pts[1:]):
            for dy in (0, 1):  # two pixels thick
                rr, cc = line(y0 + dy, x0, y1 + dy, x1)
                keep = (rr >= 0) & (rr < height)
                img[rr[keep], cc[keep]] = color
        for y, x in pts:
            rr, cc = disk((y, x), 3, shape=img.shape[:2])
            img[rr, cc] = color

    # The words, drawn last so no line crosses them (Pillow's built-in font: no file to ship).
    picture = Image.fromarray(img)
    draw, font = ImageDraw.Draw(picture), ImageFont.load_default()
    for v in ticks:
        draw.text((left - 4, row(v)), f"{v:.3g}", fill=_INK, font=font, anchor="rm")
    for i in _epoch_ticks(n):
        draw.text((column(i), bottom + 4), str(i + 1), fill=_INK, font=font, anchor="mt")
    draw.text(((left + right) // 2, height - 2), "epoch", fill=_INK, font=font, anchor="mb")
    y = top + 2
    draw.rectangle((right - 100, y - 2, right, y + _LEGEND_ROW * len(_SERIES) + 1), fill=(255, 255, 255))
    for _, name, color in _SERIES:
        draw.rectangle((right - 95, y + 3, right - 80, y + 7), fill=color)
        draw.text((right - 75, y), name, fill=_INK, font=font)
        y += _LEGEND_ROW
    return np.asarray(picture)


def _plotted(v) -> bool:
    """Can this loss go on a log scale (a positive, finite number)?"""
    return v is not None and v > 0 and math.isfinite(v)


def _log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round losses between 10**lo and 10**hi for grid lines: 1, 2 and 5 times
    a power of ten, powers of ten alone where those would be too many, the
    range's two ends where it holds fewer than two."""
    for steps in ((1, 2, 5), (1,)):
        ticks = [m * 10.0 ** p for p in range(math.floor(lo), math.ceil(hi) + 1) for m in steps
                 if lo <= math.log10(m * 10.0 ** p) <= hi]
        if 2 <= len(ticks) <= most:
            return ticks
        if len(ticks) < 2:  # a narrow range: its two ends
            return [10.0 ** lo, 10.0 ** hi]
    return ticks[:: -(-len(ticks) // most)]


def _epoch_ticks(n: int, most: int = 10) -> list[int]:
    """0-based epochs to number on the axis: all of a short run, every k-th of a long one, and the last."""
    every = -(-n // most)
    return sorted({*range(0, n, every), n - 1})
