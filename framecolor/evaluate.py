"""`framecolor eval`: make a color clip gray, colorize it as `apply` would, and score it.

Every figure is reported for the model and for the gray baseline (the gray
input itself), so a number is always read against "no color at all".
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from framecolor import metrics, video
from framecolor.atomic import write_atomic
from framecolor.errors import InputError

STRIP_POSITIONS = (0.1, 0.5, 0.9)  # where in each clip the side-by-side strips are taken


@dataclass(frozen=True)
class EvalConfig:
    train_split: float | None = None  # evaluate only the part of each clip after this fraction
    max_frames: int | None = None  # cap per clip, for quick looks at long clips
    cdc_deltas: tuple[int, ...] = (1, 2, 4)

    def validate(self) -> "EvalConfig":
        if self.train_split is not None and not 0.0 <= self.train_split < 1.0:
            raise InputError(f"--train-split must be in [0, 1), got {self.train_split}")
        if self.max_frames is not None and self.max_frames < 2:
            raise InputError(f"--max-frames must be at least 2 (CDC needs frame pairs), got {self.max_frames}")
        return self


def make_gray_clip(source, output, *, start: float | None = None, max_frames: int | None = None,
                   crf: int = 0, preset: str = "ultrafast", copy_streams: bool = False,
                   overwrite: bool = True) -> int:
    """Write `source`'s own luma with neutral chroma, pts kept: the B&W input.

    Using the clip's Y plane (not a recomputed gray) means the gray input is
    exactly what a B&W transfer of this footage would carry. crf 0 (lossless)
    for scoring; a lossy crf for sample clips.
    """
    info = video.probe(source)
    count = 0
    with video.VideoWriter.like(
        output, info, crf=crf, preset=preset, overwrite=overwrite,
        copy_streams_from=source if copy_streams else None, inputs=(source,),
    ) as writer:
        neutral = np.full(writer.chroma_shape, 128, np.uint8)
        # At the probed size, as apply reads it: a clip that changes size mid-way is scaled.
        frames = video.read_frames(source, format="luma", start=start, max_frames=max_frames,
                                   size=(info.width, info.height))
        for frame in frames:
            writer.write_yuv(frame.image, neutral, neutral, frame.pts)
            count += 1
    return count


def _plane_error(y_out: np.ndarray, y_in: np.ndarray) -> np.ndarray:
    return np.abs(y_out.astype(np.int16) - y_in.astype(np.int16)).ravel()


def _rgb(path, **kw):
    return (f.image for f in video.read_frames(path, **kw))


def score_clip(truth_path, gray_path, output_path, *, start, max_frames, deltas) -> dict:
    """Per-clip figures for the output and the gray baseline against the truth."""
    # The truth at the gray clip's (upright) size: the same pictures, unless
    # the truth changes size mid-way and the gray clip was scaled to one.
    height, width = next(_rgb(gray_path, max_frames=1)).shape[:2]
    read = dict(start=start, max_frames=max_frames, size=(width, height))
    psnr = {"model": [], "gray": []}
    ssim = {"model": [], "gray": []}
    cf = {"model": [], "gray": [], "truth": []}
    cf_abs = {"model": [], "gray": [], "truth": []}
    for truth, gray, out in zip(_rgb(truth_path, **read), _rgb(gray_path), _rgb(output_path), strict=True):
        for name, image in (("model", out), ("gray", gray)):
            psnr[name].append(metrics.psnr(image, truth))
            ssim[name].append(metrics.ssim(image, truth))
        for name, image in (("model", out), ("gray", gray), ("truth", truth)):
            cf[name].append(metrics.colorfulness(image))
            cf_abs[name].append(metrics.colorfulness_abs(image))
    luma = np.concatenate([
        _plane_error(o.image, g.image)
        for o, g in zip(video.read_frames(output_path, format="luma"), video.read_frames(gray_path, format="luma"))
    ])
    cdc = {
        "model": metrics.cdc(_rgb(output_path), deltas),
        "gray": metrics.cdc(_rgb(gray_path), deltas),
        "truth": metrics.cdc(_rgb(truth_path, **read), deltas),
    }
    mean = lambda values: float(np.mean(values))  # noqa: E731
    result = {"frames": len(psnr["model"])}
    for name in ("model", "gray"):
        result[name] = {
            "psnr": mean(psnr[name]),
            "ssim": mean(ssim[name]),
            "colorfulness": mean(cf[name]),
            "colorfulness_abs": mean(cf_abs[name]),
            "colorfulness_ratio": mean(cf[name]) / max(mean(cf["truth"]), 1e-9),
            "cdc": cdc[name],
        }
    result["truth"] = {"colorfulness": mean(cf["truth"]), "colorfulness_abs": mean(cf_abs["truth"]),
                       "cdc": cdc["truth"]}
    result["luma_error"] = {"mean_abs": float(luma.mean()), "p999": float(np.percentile(luma, 99.9))}
    return result


def write_strip(path, truth_path, gray_path, output_path, *, start, frames: int) -> None:
    """One PNG: a row of gray | output | truth at each of STRIP_POSITIONS."""
    wanted = sorted({min(frames - 1, int(p * frames)) for p in STRIP_POSITIONS})
    rows = []
    streams = zip(_rgb(truth_path, start=start), _rgb(gray_path), _rgb(output_path))
    for index, (truth, gray, out) in enumerate(streams):
        if index in wanted:
            rows.append(np.concatenate([gray, out, truth], axis=1))
        if index >= wanted[-1]:
            break
    video.write_image(path, np.concatenate(rows, axis=0))


def _distinct_tails(paths: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Each path (as its parts) cut to its shortest end that ends no other path:
    ("c.mp4",), else ("d1", "c.mp4"), and so on; the whole path where even that
    ends another (a/c.mp4 beside x/a/c.mp4, whose end is then the longer one).

    Compared case-blind: on macOS and Windows C.mp4 and c.mp4 are one name."""
    folded = [tuple(part.casefold() for part in parts) for parts in paths]
    tails = []
    for i, parts in enumerate(folded):
        others = [other for j, other in enumerate(folded) if j != i]
        k = next((k for k in range(1, len(parts)) if all(other[-k:] != parts[-k:] for other in others)),
                 len(parts))
        tails.append(tuple(paths[i][-k:]))
    return tails


def strip_names(clips: Sequence[Path]) -> list[str]:
    """The file name of each clip's strip in the --strips folder; no two the same.

    STEM.png where no other clip has that stem, as for a single clip. Clips of
    one stem (d1/c.mp4 and d3/c.mp4, or c.mp4 and c.mkv) would overwrite each
    other's strip: they are named instead by the shortest end of their path
    that tells them apart, folders joined by "-" (d1-c.mp4.png, d3-c.mp4.png,
    c.mkv.png), so that a strip still says which clip it shows. Where that is
    taken too (one file named two ways, or names that "-" makes alike) a
    number follows: a-b-c.mp4-2.png. Names are compared case-blind, as macOS
    and Windows compare them.
    """
    clips = [Path(c) for c in clips]
    stems = Counter(c.stem.casefold() for c in clips)
    # Of the absolute path (less its root), so that "." and ".." name the folders they are.
    tails = _distinct_tails([Path(os.path.abspath(c)).parts[1:] for c in clips])
    names, taken = [], set()
    for clip, tail in zip(clips, tails):
        base = clip.stem if stems[clip.stem.casefold()] == 1 else "-".join(tail)
        name, n = f"{base}.png", 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}.png"
        taken.add(name.casefold())
        names.append(name)
    return names


def _overall(clips: list[dict]) -> dict:
    """Means over clips, weighting each clip equally (CDC is a per-clip figure)."""
    overall = {}
    for name in ("model", "gray", "truth"):
        keys = clips[0][name].keys()
        overall[name] = {k: float(np.mean([c[name][k] for c in clips])) for k in keys}
    overall["luma_error"] = {
        "mean_abs": float(np.mean([c["luma_error"]["mean_abs"] for c in clips])),
        "p999": float(np.max([c["luma_error"]["p999"] for c in clips])),
    }
    return overall


def _check_has_color(clip: Path, info, start) -> None:
    """eval scores a colorization against the clip's own colors: a black-and-white
    clip has none, and its scores (a colorfulness ratio over zero) would mean nothing."""
    every = max(1, info.frame_count // 8)
    frames = video.read_frames(clip, short_side=64, every=every, start=start)
    seen = 0

    def images():
        nonlocal seen
        for frame in frames:
            seen += 1
            yield frame.image

    try:
        colored = metrics.has_color(images())  # stops at the first frame with color
    finally:
        frames.close()
    if not seen and start is not None:  # --train-split left nothing: that, not "no color", is the trouble
        raise InputError(f"{clip}: no frames after --train-split (from {start:.2f} s of {info.duration:.2f} s); "
                         "lower --train-split")
    if not colored:
        raise InputError(f"{clip} has no color to score against: eval takes color clips and makes them gray "
                         "itself (to colorize a black-and-white video, use framecolor apply)")


def _check_length(clip: Path, info, config: EvalConfig) -> None:
    """Refuse a clip too short to score (CDC needs frame pairs), where probing can tell.

    Only an exact frame count of the whole clip tells: after --train-split the
    count depends on the frames' timestamps, so evaluate checks the frames its
    gray copy actually got as well."""
    # (--max-frames is at least 2, so only the clip itself can be too short.)
    if not config.train_split and info.frame_count_exact and info.frame_count < 2:
        raise InputError(f"{clip}: only {info.frame_count} frame(s) to evaluate; need at least 2")


def _check_clip(clip: Path, config: EvalConfig) -> float | None:
    """Where (in seconds, None: its start) a clip that eval can score is scored from, else InputError.

    Everything that can be known without colorizing: run for every clip before
    the first is colorized, so that a typo in the last of many clips costs
    nothing rather than the work done on the others."""
    if video.is_image_path(clip) and clip.is_file():
        # Probed, a photo is a one-frame video: "only 1 frame(s) to evaluate" misled.
        raise InputError(f"{clip} is a photo: eval scores video clips (CDC, the flicker measure, needs frames "
                         "in sequence); to see a photo colorized, use apply")
    info = video.probe(clip)  # a missing file, or one that is not a video
    start = info.duration * config.train_split if config.train_split else None
    _check_length(clip, info, config)  # first: a clip of no frames has "no color" too, misleadingly
    _check_has_color(clip, info, start)
    return start


def evaluate(colorizer, clips: Sequence, config: EvalConfig = EvalConfig(), *, strips_dir=None,
             progress: bool = False) -> dict:
    """Score `colorizer` on each color clip; returns {"clips": {...}, "overall": {...}}.

    Every clip is checked before any is colorized: a bad one is refused with
    no work lost and no strips left behind."""
    from framecolor.apply import colorize_video

    config = config.validate()
    if not clips:
        raise InputError("no clips to evaluate")
    # Keyed by clip, as the report is: a clip given twice is scored once.
    starts = {clip: _check_clip(clip, config) for clip in map(Path, clips)}
    if strips_dir is not None:  # after the clips: a refused eval leaves nothing behind, not even the folder
        video.make_output_folder(strips_dir)
    names = dict(zip(starts, strip_names(list(starts))))
    results = {}
    with tempfile.TemporaryDirectory(prefix="framecolor-eval-") as work:
        for i, (clip, start) in enumerate(starts.items()):
            gray, out = Path(work, f"{i}-gray.mkv"), Path(work, f"{i}-out.mkv")
            frames = make_gray_clip(clip, gray, start=start, max_frames=config.max_frames)
            if frames < 2:  # what probing could not tell (after --train-split, or an estimated count)
                raise InputError(f"{clip}: only {frames} frame(s) to evaluate; need at least 2")
            colorize_video(colorizer, gray, out, progress=progress)
            with warnings.catch_warnings():
                # The clip's damage was said as its gray copy was made; its later reads would say it again.
                warnings.simplefilter("ignore", video.VideoWarning)
                scores = score_clip(clip, gray, out, start=start, max_frames=config.max_frames,
                                    deltas=config.cdc_deltas)
                if strips_dir is not None:
                    strip = Path(strips_dir, names[clip])
                    write_strip(strip, clip, gray, out, start=start, frames=frames)
                    scores["strip"] = str(strip)
            results[str(clip)] = scores
    return {"clips": results, "overall": _overall(list(results.values()))}


def report_rows(report: dict) -> list[tuple[str, str]]:
    """A readable table: each figure for the model beside the gray baseline.

    A clip is labelled by its file name, or by as much of its path as tells it
    from clips of the same name (d1/c.mp4, d3/c.mp4)."""
    labels = [str(Path(*tail)) for tail in _distinct_tails([Path(name).parts for name in report["clips"]])]
    rows = []
    for label, scores in zip([*labels, "overall"], [*report["clips"].values(), report["overall"]]):
        m, g, t = scores["model"], scores["gray"], scores["truth"]
        rows += [
            (label, f"{scores['frames']} frames" if "frames" in scores else "mean over clips"),
            ("  PSNR (dB)", f"{m['psnr']:.2f}   gray {g['psnr']:.2f}"),
            ("  SSIM", f"{m['ssim']:.4f}   gray {g['ssim']:.4f}"),
            ("  colorfulness M3", f"{m['colorfulness']:.2f}   truth {t['colorfulness']:.2f}   "
                                  f"ratio {m['colorfulness_ratio']:.2f}"),
            ("  colorfulness |.| (DDColor)", f"{m['colorfulness_abs']:.2f}   truth {t['colorfulness_abs']:.2f}"),
            ("  CDC (lower is steadier)", f"{m['cdc']:.5f}   gray {g['cdc']:.5f}   truth {t['cdc']:.5f}"),
            ("  luma error vs input", f"mean {scores['luma_error']['mean_abs']:.3f}   "
                                      f"p99.9 {scores['luma_error']['p999']:.1f}"),
        ]
    return rows


def write_json(path, report: dict) -> None:
    """Atomic, so an interrupted eval never leaves half a report."""
    write_atomic(path, json.dumps(report, indent=2).encode())
