"""`framecolor eval`: make a color clip gray, colorize it as `apply` would, and score it.

Every figure is reported for the model and for the gray baseline (the gray
input itself), so a number is always read against "no color at all".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from framecolor import metrics, video
from framecolor.atomic import temp_path, write_atomic
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


def _luma_error_counts(output_path, gray_path) -> np.ndarray:
    """How many pixels of the clip the output's Y plane is off the gray
    input's by each number of codes: counts[e] pixels by e.

    A histogram, not the errors themselves: every error kept cost 3.5 MB a
    720p frame, so a long clip's scoring ran out of memory, while the
    histogram is the planes' code range long (256: "luma" reads are 8-bit),
    whatever the clip's length, and still gives the mean and the
    percentile exactly (_luma_error_figures).
    """
    counts = np.zeros(256, np.int64)
    for out, gray in zip(video.read_frames(output_path, format="luma"), video.read_frames(gray_path, format="luma")):
        counts += np.bincount(_plane_error(out.image, gray.image), minlength=256)
    return counts


def _luma_error_figures(counts: np.ndarray) -> dict:
    """The mean and the 99.9th percentile of the errors `counts` tallies
    (_luma_error_counts), to the last bit what np.mean and np.percentile (its
    default, linear interpolation between the two errors around the rank,
    as numpy computes it) give of the errors themselves."""
    total = int(counts.sum())
    mean = int(np.dot(np.arange(len(counts), dtype=np.int64), counts)) / total  # a sum of integers: exact
    rank = (total - 1) * (99.9 / 100)  # numpy's "virtual index" of the linear method
    below = math.floor(rank)
    fraction = rank - below
    # The errors at those places (from 0) of all the errors sorted, from the histogram's running sums.
    low, high = np.searchsorted(np.cumsum(counts), [below, min(below + 1, total - 1)], side="right")
    step = high - low
    # numpy's _lerp, which interpolates from the nearer end so that a fraction of 1 gives `high` exactly.
    p999 = low + step * fraction if fraction < 0.5 else high - step * (1 - fraction)
    return {"mean_abs": float(mean), "p999": float(p999)}


def _rgb(path, **kw):
    return (f.image for f in video.read_frames(path, **kw))


def _gray_size(gray_path) -> tuple[int, int]:
    """The gray clip's (upright) (width, height), which the truth is read at:
    the same pictures, unless the truth changes size mid-way and the gray
    clip was scaled to one (a tile of another size could not sit beside it)."""
    height, width = next(_rgb(gray_path, max_frames=1)).shape[:2]
    return width, height


def score_clip(truth_path, gray_path, output_path, *, start, max_frames, deltas) -> dict:
    """Per-clip figures for the output and the gray baseline against the truth."""
    read = dict(start=start, max_frames=max_frames, size=_gray_size(gray_path))
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
    result["luma_error"] = _luma_error_figures(_luma_error_counts(output_path, gray_path))
    return result


def write_strip(path, truth_path, gray_path, output_path, *, start, frames: int) -> None:
    """One PNG: a row of gray | output | truth at each of STRIP_POSITIONS."""
    wanted = sorted({min(frames - 1, int(p * frames)) for p in STRIP_POSITIONS})
    rows = []
    streams = zip(_rgb(truth_path, start=start, size=_gray_size(gray_path)), _rgb(gray_path), _rgb(output_path))
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
    """Means over clips, weighting each clip equally (CDC is a per-clip figure),
    the luma error's p99.9 too: the table says "mean over clips" of every figure."""
    return {name: {k: float(np.mean([c[name][k] for c in clips])) for k in clips[0][name]}
            for name in ("model", "gray", "truth", "luma_error")}


def _has_color(clip: Path, info, start, max_frames) -> bool:
    """Whether any of about 8 frames sampled evenly from those that will be scored (from
    `start`, at most `max_frames` of them: the ones after are never compared) has color."""
    scored = info.frame_count  # an estimate where not exact: it only spaces the samples
    if start is not None and info.duration > 0:
        scored = math.ceil(scored * (1 - start / info.duration))
    if max_frames is not None:
        scored = min(scored, max_frames)
    every = max(1, scored // 8)
    # Samples 0, every, 2 * every, ... below max_frames (read_frames counts what it yields).
    samples = None if max_frames is None else -(-max_frames // every)
    frames = video.read_frames(clip, short_side=64, every=every, start=start, max_frames=samples)
    try:
        return metrics.has_color(frame.image for frame in frames)  # stops at the first frame with color
    finally:
        frames.close()


def _check_has_color(clip: Path, info, start, max_frames) -> None:
    """eval scores a colorization against the clip's own colors: black-and-white
    frames have none, and their scores (a colorfulness ratio over zero) would mean nothing.

    The frames that will be scored must have it: color past --max-frames
    passed a clip whose scored frames had none (a ratio of 3e10), and a
    sample of the whole clip refused one whose color was all in them."""
    if _has_color(clip, info, start, max_frames):
        return
    part = start is not None or (max_frames is not None and max_frames < info.frame_count)
    if part and _has_color(clip, info, None, None):  # a color clip all the same: say what to change
        if start is None:
            what, fix = f"its first {max_frames} frames", "raise --max-frames"
        else:
            what = f"{'its' if max_frames is None else max_frames} frames from {start:.2f} s"
            fix = "lower --train-split" if max_frames is None else "raise --max-frames or lower --train-split"
        raise InputError(f"{clip} has no color in {what}, the frames to be scored, only elsewhere: "
                         f"nothing to score against ({fix})")
    raise InputError(f"{clip} has no color to score against: eval takes color clips and makes them gray "
                     "itself (to colorize a black-and-white video, use framecolor apply)")


def _check_length(clip: Path, info, start) -> None:
    """Refuse a clip too short to score (CDC needs frame pairs), before any work.

    An exact frame count of the whole clip tells from probing. After
    --train-split the count depends on the frames' timestamps, and an
    estimated count may be wrong: there the frames tell, the first two from
    `start` read as the gray copy will read them."""
    # (--max-frames is at least 2, so only the clip itself can be too short.)
    if start is None and info.frame_count_exact:
        count = info.frame_count
    else:
        frames = video.read_frames(clip, format="luma", start=start, max_frames=2)
        try:
            count = sum(1 for _ in frames)
        finally:
            frames.close()
    if not count and start is not None:  # --train-split left nothing: that, not "no color", is the trouble
        raise InputError(f"{clip}: no frames after --train-split (from {start:.2f} s of {info.duration:.2f} s); "
                         "lower --train-split")
    if count < 2:
        after = "" if start is None else " (lower --train-split)"
        raise InputError(f"{clip}: only {count} frame(s) to evaluate; need at least 2{after}")


def _check_size(clip: Path, info) -> None:
    """Refuse a picture too small for SSIM's window before any work, not as it is scored.

    As eval reads it (upright, non-square pixels widened or narrowed, as
    players show it): the gray copy has the clip's size and pixel shape."""
    aspect = info.sample_aspect_ratio
    width = max(1, round(info.width * aspect)) if aspect else info.width
    width, height = (info.height, width) if video.quarter_turns(info.rotation) % 2 else (width, info.height)
    if min(width, height) < metrics.SSIM_MIN_SIDE:
        raise InputError(f"{clip} is {width}x{height}: SSIM, one of the scores, needs frames of at least "
                         f"{metrics.SSIM_MIN_SIDE}x{metrics.SSIM_MIN_SIDE} pixels")


def _split_start(clip: Path, info, train_split: float) -> float:
    """Where --train-split puts the first frame to score, in seconds from the
    stream's start: that fraction of the frames that decode, from the first
    of them to the clip's end.

    Not that fraction of the stream: a recording that starts between
    keyframes begins with frames that never decode, and a split measured from
    the stream's start fell that much early (0.4 of one scored 26 of its 36
    frames, 72% and not 60%)."""
    frames = video.read_frames(clip, format="luma", max_frames=1)
    try:
        first = next(frames, None)
    finally:
        frames.close()
    # No time (a raw stream): 0, and reading from the split says it has no times to cut at.
    first_time = first.time if first is not None and first.time is not None else 0.0
    return first_time + (info.duration - first_time) * train_split


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
    start = _split_start(clip, info, config.train_split) if config.train_split else None
    _check_size(clip, info)
    _check_length(clip, info, start)  # before color: a clip of no frames has "no color" too, misleadingly
    _check_has_color(clip, info, start, config.max_frames)
    return start


@contextlib.contextmanager
def _strips_on_success(folder):
    """The folder made, and a function giving each strip the hidden name it is
    written to: renamed to its own name once the `with` block ends without an
    error, else removed, with the folders made for it. A clip refused as it is
    scored, or Ctrl-C, leaves no strips behind, and what the folder held
    before (strips of an earlier run included) is as it was."""
    made = video.folders_to_make(folder)
    staged = {}  # each strip: the hidden name beside it (one folder, so the rename is atomic)

    def stage(strip: Path) -> Path:
        video.check_output_path(strip, overwrite=True)  # a folder of that name: said now, not at the rename
        staged[strip] = temp_path(strip, keep_suffix=True)  # keeps .png, which names the format
        return staged[strip]

    try:
        video.make_output_folder(folder)
        yield stage
        for strip, tmp in staged.items():
            os.replace(tmp, strip)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        video.remove_empty_folders(made)
        raise


@contextlib.contextmanager
def _said_of(clip: Path, copies: Sequence[Path]):
    """Warnings said while eval's `copies` of `clip` are made, said of `clip`, each once.

    The copies are files in a temporary folder the user never sees, and the
    gray copy and the output are written alike: an odd size said "writing
    /tmp/framecolor-eval-.../0-gray.mkv as yuv444p", then the same of 0-out.mkv."""
    said = set()
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:  # on an error too: a damaged clip's warning may say why
        for w in caught:
            text = str(w.message)
            for copy in copies:
                text = text.replace(str(copy), f"{clip}'s gray and colorized copies")
            if text not in said:
                said.add(text)
                warnings.warn_explicit(text, w.category, w.filename, w.lineno)  # where it was said


def evaluate(colorizer, clips: Sequence, config: EvalConfig = EvalConfig(), *, strips_dir=None,
             progress: bool = False) -> dict:
    """Score `colorizer` on each color clip; returns {"clips": {...}, "overall": {...}}.

    Every clip is checked before any is colorized: a bad one is refused with
    no work lost and no strips left behind. A clip refused as it is scored
    (what no check could foresee) leaves no strips either: they land only
    when every clip is scored."""
    from framecolor.apply import colorize_video

    config = config.validate()
    if not clips:
        raise InputError("no clips to evaluate")
    # Keyed by clip, as the report is: a clip given twice is scored once, under the
    # first of its names (c.mp4 and /home/me/c.mp4 were scored twice, and counted twice overall).
    named = {}
    for clip in map(Path, clips):
        named.setdefault(os.path.realpath(clip), clip)
    starts = {clip: _check_clip(clip, config) for clip in named.values()}
    names = dict(zip(starts, strip_names(list(starts))))
    results = {}
    # After the clips: a refused eval leaves nothing behind, not even the folder.
    strips = contextlib.nullcontext() if strips_dir is None else _strips_on_success(strips_dir)
    with strips as stage, tempfile.TemporaryDirectory(prefix="framecolor-eval-") as work:
        for i, (clip, start) in enumerate(starts.items()):
            gray, out = Path(work, f"{i}-gray.mkv"), Path(work, f"{i}-out.mkv")
            with _said_of(clip, (gray, out)):
                frames = make_gray_clip(clip, gray, start=start, max_frames=config.max_frames)
                if frames < 2:  # what the checks could not foresee (a damaged clip decoding otherwise)
                    raise InputError(f"{clip}: only {frames} frame(s) to evaluate; need at least 2")
                colorize_video(colorizer, gray, out, progress=progress, label=clip.name)  # not its gray copy's name
            with warnings.catch_warnings():
                # The clip's damage was said as its gray copy was made; its later reads would say it again.
                warnings.simplefilter("ignore", video.VideoWarning)
                scores = score_clip(clip, gray, out, start=start, max_frames=config.max_frames,
                                    deltas=config.cdc_deltas)
                if stage is not None:
                    strip = Path(strips_dir, names[clip])
                    write_strip(stage(strip), clip, gray, out, start=start, frames=frames)
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
