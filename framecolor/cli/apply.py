"""`framecolor apply`: colorize videos and images with a model."""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from framecolor.cli.common import guarded
from framecolor.sizes import readable_size

_HELP = """Colorize black-and-white videos or images.

\b
  framecolor apply bw.mp4 color.mp4
  framecolor apply a.mp4 b.mkv photo.jpg --out-dir colored/
  framecolor apply bw_folder/ colored_folder/
  framecolor apply film.mp4 try.mp4 --start 600 --duration 30
  framecolor apply scans/ film.mp4 --fps 24 --audio soundtrack.wav

The output keeps the input's size, frames, timing, luminance, audio and
subtitles; only color is added. A folder of numbered photos (a film scanned
to frames) given a video file name becomes that video.
"""


def _file_size(path: Path) -> str:
    """'12.3 MB': the default keeps the luma at several times crf 18's size,
    and --crf is the way out, so the size is said each time."""
    return readable_size(path.stat().st_size)


def _seconds(text: str) -> float:
    """'90', '1:30' or '0:01:30.5' (as ffmpeg's -ss and -t take them) -> seconds."""
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0  # said as such by the excerpt's check, not read as +1 s
    parts = text.removeprefix("-").split(":")
    # Digits and a decimal point only: float() also takes signs, spaces,
    # exponents and 'inf', so '1:-30' and '1: -30' read as 30 s. A sign is
    # the whole time's only.
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(\.\d*)?|\.\d+", part) for part in parts):
        raise typer.BadParameter(f"{text!r} is not a time: give seconds or [HH:]MM:SS[.mmm]")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return sign * seconds


def _listed(options: list[str]) -> str:
    """'--crf', '--crf and --preset', '--codec, --crf and --preset'; '' for none."""
    return f"{', '.join(options[:-1])} and {options[-1]}" if len(options) > 1 else "".join(options)


def apply(
    # As typed: a Path drops the trailing slash that says `new/` is a folder to make (plan_jobs).
    paths: List[str] = typer.Argument(..., help="INPUT OUTPUT, INPUT_DIR OUTPUT_DIR, or inputs with --out-dir."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", "-d", help="Write every input into this folder."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file (.fcm) or training run folder; default: the shipped one."),
    render_size: Optional[int] = typer.Option(
        None, "--render-size",
        help="Short side the model sees, rounded to a multiple of 8 (default: the model's training size).",
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Frames per forward pass (default: 8)."),
    saturation: Optional[float] = typer.Option(None, "--saturation", help="Scale the predicted color (default: the model's calibrated gain, else 1.0)."),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="Bins-head models: lower is more vivid, higher nearer the mean color (default: 0.38)."
    ),
    smoothing: Optional[float] = typer.Option(
        None, "--smoothing", help="Temporal smoothing strength in [0, 1) (default: 0.6)."
    ),
    no_smoothing: bool = typer.Option(False, "--no-smoothing", help="Colorize every frame on its own."),
    codec: Optional[str] = typer.Option(None, "--codec", help="Video encoder (default: libx264, or VP9 for .webm and others that cannot hold H.264)."),
    crf: Optional[int] = typer.Option(None, "--crf", help="Constant quality, lower is better: smaller files than the default, which keeps the input's luma (x264 at quantizer 2; other encoders: crf 18; MPEG-1/2/4 and MJPEG: their quantizer, 1-31, default 2)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Encoder speed preset: ultrafast ... placebo for libx264/libx265 (default: faster when keeping luma, else medium), 0-13 for libsvtav1."),
    pix_fmt: Optional[str] = typer.Option(None, "--pix-fmt", help="yuv420p, yuv422p or yuv444p, or yuv420p10le / yuv422p10le / yuv444p10le to keep a 10-bit source's luma (default: yuv420p, or the nearest the --codec takes: yuv422p10le for prores_ks)."),
    start: Optional[float] = typer.Option(
        None, "--start", "-ss", parser=_seconds, metavar="TIME",
        help="Colorize videos from this time on (seconds, or [HH:]MM:SS[.mmm]): try settings on a part first.",
    ),
    duration: Optional[float] = typer.Option(
        None, "--duration", "-t", parser=_seconds, metavar="TIME", help="Colorize this long a part of videos."
    ),
    fps: Optional[str] = typer.Option(
        None, "--fps", metavar="RATE",
        help="Frame rate of a video made from numbered photos: 24, 25, 29.97 or 30000/1001 (default: 24).",
    ),
    audio: Optional[Path] = typer.Option(
        None, "--audio", metavar="FILE", help="Sound for a video made from numbered photos (its soundtrack).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave outputs that exist alone."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    from dataclasses import replace

    from framecolor import allocator
    from framecolor import apply as pipeline
    from framecolor import batch as several
    from framecolor import video
    from framecolor.errors import InputError

    allocator.reuse_freed_memory()  # each batch's buffers serve the next (11-12% more frames/s on a CPU)
    if no_smoothing and smoothing is not None:
        raise InputError("--smoothing and --no-smoothing contradict each other")
    options = {
        "render_size": render_size,
        "batch_size": batch_size,
        "saturation": saturation,
        "temperature": temperature,
        "smoothing": 0.0 if no_smoothing else smoothing,
        "codec": codec,
        "crf": crf,
        "preset": preset,
        "pix_fmt": pix_fmt,
    }
    excerpt = None if start is None and duration is None else pipeline.Excerpt(start or 0.0, duration)
    rate = None if fps is None else video.frame_rate(fps)
    jobs, batch = several.plan_jobs(paths, out_dir)
    if overwrite and skip_existing:
        raise InputError("--overwrite and --skip-existing contradict each other")
    for option, value in (("--fps is the frame rate", rate), ("--audio is the sound", audio)):
        if value is not None and (batch or not jobs[0].source.is_dir()):
            raise InputError(f"{option} of a video made from a folder of numbered photos "
                             "(framecolor apply scans/ film.mp4 --fps 24); videos keep their own")
    # Flags only videos take, refused where every input is a photo: among videos, they are the videos'.
    several.check_video_options(jobs, [o for o, v in (("--start", start), ("--duration", duration)) if v is not None],
                                "--start and --duration pick a part of a video")
    encoding = [o for o, v in (("--codec", codec), ("--crf", crf), ("--preset", preset), ("--pix-fmt", pix_fmt))
                if v is not None]
    several.check_video_options(jobs, encoding, f"{_listed(encoding)} set{'s' if len(encoding) == 1 else ''} "
                                "how a video is encoded")
    several.check_smoothing_options(jobs, [o for o, given in (("--smoothing", smoothing is not None),
                                                               ("--no-smoothing", no_smoothing)) if given])
    # After those: a photo's --crf 99 is refused for being a photo's, not for being out of x264's range.
    config = replace(pipeline.ApplyConfig(), **{k: v for k, v in options.items() if v is not None}).validate(
        output=None if batch else jobs[0].output)  # the encoder its type gets: crf 60 is VP9's in a .webm
    if not batch:  # one file: its error is the command's error
        job = jobs[0]
        if skip_existing and os.path.lexists(job.output):  # a link to nothing exists too, as check_output_path says
            typer.echo(f"skipped: {job.output} exists", err=True)
            return
        # Refuse a bad output before loading (and compiling) anything.
        several.check_output_type(job.source, job.output)
        video.check_output_path(job.output, inputs=(job.source,), overwrite=overwrite)
        pipeline.check_frame_rate(config, job.source, rate)
        if job.source.is_dir():
            with warnings.catch_warnings():  # a gap in the numbers, a sound of another length: said once, later
                warnings.simplefilter("ignore", video.VideoWarning)
                pipeline.photo_film_input(job.source, rate, audio)
        colorizer = pipeline.Colorizer(pipeline.load(model, temperature=temperature), config)
        done = pipeline.colorize_file(colorizer, job.source, job.output, overwrite=overwrite, progress=not quiet,
                                      excerpt=excerpt, fps=rate, audio=audio)
        if not quiet:
            # A video made from photos has the rate it was given, or a default the user may not know.
            made_at = f" at {done['frame_rate']:g} fps" if "frame_rate" in done else ""
            frames = f"{done['frames']} frame{'' if done['frames'] == 1 else 's'}"
            typer.echo(f"{job.output}: {frames}{made_at} in {done['seconds']:.1f} s, {_file_size(job.output)}",
                       err=True)
        return
    several.check_output_folders(jobs)  # before loading (and compiling) anything, as for one file
    colorizer = pipeline.Colorizer(pipeline.load(model, temperature=temperature), config)

    finished = []

    def report(result):
        finished.append(result)
        if result.status == "failed":
            typer.echo(f"failed: {result.source}: {result.error}", err=True)
        elif not quiet:
            size = f", {_file_size(Path(result.output))}" if result.status == "done" else ""
            typer.echo(f"{result.status}: {result.source} -> {result.output}{size}", err=True)

    started = time.perf_counter()
    try:
        results = several.colorize_jobs(
            colorizer, jobs, overwrite=overwrite, skip_existing=skip_existing, progress=not quiet, report=report,
            excerpt=excerpt,
        )
    except KeyboardInterrupt:  # Ctrl-C: what was done by then is said; the command exits 130
        typer.echo(several.summary(finished, time.perf_counter() - started) + ", interrupted", err=True)
        raise
    typer.echo(several.summary(results, time.perf_counter() - started), err=True)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("apply", help=_HELP)(guarded(apply))
