"""Several files at once: what to write where, and running it.

`framecolor apply IN_DIR OUT_DIR` or `A B C --out-dir D` plans one job per
input (folders expanded to their videos and photos), then runs them: a
failing file is reported and the rest still run, results in job order.
Photos run a few at a time beside the network; numbered photos (a film
scanned to frames) run as a sequence whose color is smoothed over time.
"""

from __future__ import annotations

import collections
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from framecolor import smoothing, video
from framecolor.apply import Colorizer, Excerpt, check_video_output_name, colorize_file, warn_if_in_color
from framecolor.errors import FramecolorError, InputError, OutputError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


def is_media_path(path) -> bool:
    path = Path(path)
    return video.is_video_path(path) or video.is_image_path(path)


def _folder_media(folder: Path) -> list[Path]:
    # In natural order (frame_2 before frame_10): a numbered sequence is smoothed in that order.
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_media_path(p)),
                   key=video.natural_key)
    if not files:
        raise InputError(f"{folder}: no videos or images in this folder")
    return files


# In a batch, the type of the colored copy of a video whose own type cannot
# hold H.264 (or that FFmpeg writes under another name): Matroska, which
# holds any sound and subtitles; MP4 for an animated GIF or PNG, which have none.
_H264_HOMES = {
    **dict.fromkeys(".webm .ogv .vob .mod .tod .m2p .mxf .dv .divx .y4m .hevc .265 .m2v .m1v .ivf .mjpeg .rm"
                    .split(), ".mkv"),
    ".gif": ".mp4",
    ".png": ".mp4",  # an animated one: a still PNG is a photo (_output_name)
    ".qt": ".mov",
}


def _output_name(source: Path) -> str:
    suffix = source.suffix.lower()
    if video.is_image_path(source):
        # A photo of a type framecolor reads but cannot write (an AVIF, a GIF
        # of one picture) as a PNG, which keeps its depth and transparency:
        # under its own type it could not be written, nor as a GIF's .mp4.
        return source.name if suffix in video.WRITTEN_IMAGE_SUFFIXES else source.stem + ".png"
    return source.stem + _H264_HOMES.get(suffix, source.suffix)


def _looks_like_a_file_type(suffix: str) -> bool:
    # ".mp44" or ".mkvv", not a folder's ".2" or ".d" (as in "takes.2" or "conf.d").
    return len(suffix) >= 3 and suffix[1:].isalnum() and suffix[1].isalpha()


def plan_jobs(paths: Sequence, out_dir=None) -> tuple[list[Job], bool]:
    """What to write where, from the command line's paths.

    - `out_dir` given: every path is an input (folders are expanded to their
      videos and images); outputs are out_dir/<input name>, but video types
      that cannot hold H.264 become .mkv (an animated .gif: .mp4;
      _H264_HOMES), and photo types framecolor cannot write .png.
    - else two paths INPUT OUTPUT: a folder INPUT, or an existing folder
      OUTPUT, means files into that folder, except a folder INPUT and a
      video file name OUTPUT (`scans/ film.mp4`): its numbered photos made
      into that video. Otherwise OUTPUT is the file.
    Every input must exist, and no output may be its own input: InputError
    or OutputError before any work. The output folder among several inputs
    (`apply DIR/* --out-dir DIR/colored` once DIR/colored is made) is left
    out of them, with a warning.
    Returns (jobs, batch): batch is True when several files may be written.
    """
    # A trailing slash says a folder is meant, one not made yet too (`apply photo.jpg new/`); a Path drops it.
    slashed = [str(p).endswith(("/", os.sep)) for p in paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input given")
    given_out_dir = out_dir is not None
    if out_dir is None:
        if len(paths) != 2:
            raise InputError(
                "give INPUT OUTPUT, INPUT_DIR OUTPUT_DIR, or several inputs with --out-dir"
                if len(paths) > 2 else f"{paths[0]}: no output given (add an output path or --out-dir)"
            )
        source, target = paths
        video.check_exists(source)
        folder_named = target.is_dir() or slashed[1]
        if not (source.is_dir() or folder_named):
            return [Job(source, target)], False
        if source.is_dir() and not folder_named and video.is_video_path(target):
            return [Job(source, target)], False  # numbered photos made into one video
        if source.is_dir() and not folder_named and not target.exists() and not is_media_path(target) \
                and _looks_like_a_file_type(target.suffix):
            # `apply scans/ film.mp44` (a typo) would colorize every photo into a folder named film.mp44.
            raise OutputError(f"{target}: {target.suffix} is not a video type; name the video .mp4 or .mkv, "
                              f"or give --out-dir {target} for a folder of colored files")
        paths, out_dir = [source], target
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: output folder is a file")
    if not out_dir.exists() and is_media_path(out_dir):
        # `apply scans/ still.png` would make a folder named still.png.
        raise OutputError(f"{out_dir}: a folder's videos and images are colorized one by one into a folder; "
                          "give a folder name, not a file name")
    sources = []
    # `a.mp4 o.mp4 --out-dir d` takes o.mp4 for an input: said before any
    # work, not as a failure after a.mp4 was colorized.
    hint = " (with --out-dir, every path given is an input)" if given_out_dir and len(paths) > 1 else ""
    for path in paths:
        video.check_exists(path, hint)
        if path.is_dir() and out_dir.exists() and path.resolve() == out_dir.resolve():
            if len(paths) == 1:
                raise OutputError(f"{out_dir}: the output folder is the input folder; pick another one")
            # A shell's DIR/* picks up DIR/colored on the second run: it is where the footage goes.
            warnings.warn(f"{path} is the output folder: left out of the inputs", video.VideoWarning, stacklevel=2)
            continue
        sources.extend(_folder_media(path) if path.is_dir() else [path])
    jobs = [Job(source, out_dir / _output_name(source)) for source in sources]
    duplicate = next((name for name, n in collections.Counter(job.output for job in jobs).items() if n > 1), None)
    if duplicate is not None:
        raise OutputError(f"{duplicate}: several inputs would be written to this same output")
    for job in jobs:  # `apply film.mp4 --out-dir .`: refused for the batch, as the same folder is
        if job.output.exists() and os.path.samefile(job.source, job.output):
            raise OutputError(f"output {job.output} is the same file as input {job.source}; "
                              "pick another output folder")
    return jobs, True


def _is_still(path: Path) -> bool:
    """A photo, not a video nor a folder of photos made into one."""
    return video.is_image_path(path) and not path.is_dir()


def _stills_named(jobs: Sequence[Job]) -> str | None:
    """Where every input is a still image, how an error names them (the one,
    or "every input"); else None."""
    if not all(_is_still(job.source) for job in jobs):
        return None
    return str(jobs[0].source) if len(jobs) == 1 else "every input"


def check_video_options(jobs: Sequence[Job], options: Sequence[str], purpose: str) -> None:
    """InputError where `options` (flags that only videos take, those given)
    are given and every input is a still image: dropped without a word, they
    would seem to have been used. Among videos they are the videos'."""
    if options and (still := _stills_named(jobs)) is not None:
        raise InputError(f"{purpose}; {still} is a still image")


def check_smoothing_options(jobs: Sequence[Job], options: Sequence[str]) -> None:
    """InputError where `options` (--smoothing, --no-smoothing, those given)
    are given and every input is a still image, none of them frames of a
    numbered sequence (whose color is smoothed over them as a video's):
    dropped without a word, they would seem to have been used."""
    if options and (still := _stills_named(jobs)) is not None \
            and not any(len(_sequence_run(jobs, index, False)) > 1 for index in range(len(jobs))):
        raise InputError(f"{' and '.join(options)} set{'s' if len(options) == 1 else ''} how color is smoothed "
                         f"over a video's frames (or numbered photos'); {still} is a still image")


def check_output_folders(jobs: Sequence[Job]) -> None:
    """OutputError where a job's output folder cannot be made or written in:
    said before the model is loaded and compiled (colorize_jobs, which makes
    them, would say it only then). Nothing is left here."""
    for folder in dict.fromkeys(job.output.parent for job in jobs):
        video.files.check_output_folder(folder)


def check_output_type(source: Path, output: Path) -> None:
    """OutputError where `output`'s name is of a type `source` cannot be
    written as: said before the model is loaded and compiled, and before the
    look at the source's colors, whose warning would come first: the
    writers' own checks, which come once the work is done (a photo) or begun (a video)."""
    if output.parent.exists() and not output.parent.is_dir():  # else "output folder does not exist"
        raise OutputError(f"cannot write {output}: {output.parent} is a file, not a folder")
    if _is_still(source):
        video.check_photo_name(output)
    else:
        check_video_output_name(source, output)  # FFmpeg's image muxer takes .png: not a container check's to say
        video.check_container_name(output)


@dataclass(frozen=True)
class Result:
    source: str
    output: str
    status: str  # "done", "skipped" or "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None


def colorize_jobs(
    colorizer: Colorizer,
    jobs: Sequence[Job],
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: bool = True,
    report: Callable[[Result], None] = lambda result: None,
    excerpt: Excerpt | None = None,
) -> list[Result]:
    """Run every job; a failing file is reported and the rest still run.
    Output folders are made first: OutputError where one cannot be. Those
    made are removed again where nothing was written in them (every job
    failed, or Ctrl-C came first); a folder that was there stays.

    Results come (and `report` is called) in job order. Photos run
    `networks_in_flight + 1` at a time, so that reading and writing one
    overlaps the network on others: one photo leaves cores idle, as one
    forward does (on this 2-core CPU: 33 ms a photo alone, 22-24 three at
    a time). A video runs on its own, after the photos before it.
    """
    if overwrite and skip_existing:
        raise InputError("--overwrite and --skip-existing contradict each other")
    made: list[Path] = []
    try:
        for folder in dict.fromkeys(job.output.parent for job in jobs):
            missing = video.folders_to_make(folder)
            video.make_output_folder(folder)  # one line for the batch, not a failure for every file
            made.extend(missing)
        return _colorize_jobs(colorizer, jobs, overwrite=overwrite, skip_existing=skip_existing,
                              progress=progress, report=report, excerpt=excerpt)
    finally:
        video.remove_empty_folders(made)


def _colorize_jobs(colorizer: Colorizer, jobs: Sequence[Job], *, overwrite: bool, skip_existing: bool,
                   progress: bool, report: Callable[[Result], None], excerpt: Excerpt | None) -> list[Result]:
    """colorize_jobs, its output folders made."""
    results: list[Result] = []
    running: collections.deque = collections.deque()  # photos' futures, oldest first
    photos_at_once = colorizer.networks_in_flight + 1

    def record(result: Result) -> None:
        results.append(result)
        report(result)

    def settle(keep: int) -> None:
        while len(running) > keep:
            record(running.popleft().result())

    pool = ThreadPoolExecutor(photos_at_once, thread_name_prefix="photo")
    jobs, index = list(jobs), 0
    try:
        while index < len(jobs):
            job = jobs[index]
            sequence = _sequence_run(jobs, index, skip_existing) if colorizer.config.smoothing else []
            if skip_existing and os.path.lexists(job.output):  # a link to nothing exists too, as check_output_path says
                settle(0)
                record(Result(str(job.source), str(job.output), "skipped"))
            elif len(sequence) > 1:
                settle(0)
                _guarded_sequence(colorizer, sequence, overwrite, record)
                index += len(sequence)
                continue
            elif video.is_image_path(job.source):
                running.append(pool.submit(_run_job, colorizer, job, overwrite, progress))
                settle(photos_at_once)
            else:
                settle(0)
                record(_run_job(colorizer, job, overwrite, progress, excerpt))
            index += 1
        settle(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: photos being written finish, the rest never start
        # Those that finished are reported as any other, so that the summary
        # counts them (after a run to its end, none is left unreported).
        for future in running:
            if _finished_well(future):
                record(future.result())
    return results


def _finished_well(future) -> bool:
    """Whether `future`, its pool shut down, ran and raised nothing: after a
    Ctrl-C, a file written that the summary must count."""
    return not future.cancelled() and future.exception() is None


def _sequence_run(jobs: Sequence[Job], start: int, skip_existing: bool) -> list[Job]:
    """The jobs from `start` on that are frames of one numbered photo sequence:
    named alike and of one size, as a scanned film's frames are. Numbered
    photos of many sizes (an album scanned photo by photo) are not a film,
    and would each run the network on a batch of padding."""
    key = video.sequence_key(jobs[start].source)
    if key is None:
        return []
    run, size = [], None
    for job in jobs[start:]:
        if video.sequence_key(job.source) != key or (skip_existing and os.path.lexists(job.output)):
            break
        job_size = video.stored_size(job.source)
        if job_size is None or (size is not None and job_size != size):
            break
        run.append(job)
        size = job_size
    return run


def _guarded_sequence(colorizer: Colorizer, jobs: Sequence[Job], overwrite: bool,
                      record: Callable[[Result], None]) -> None:
    """colorize_photo_sequence, each of its Results recorded; its unexpected
    errors fail the frames not yet done, not the batch. What `record` raises
    (a Ctrl-C, a report that failed) stops the batch as it would elsewhere."""
    done = 0
    recording_error = None

    def counted(result: Result) -> None:
        nonlocal done, recording_error
        done += 1
        try:
            record(result)
        except Exception as exc:
            recording_error = exc
            raise

    try:
        colorize_photo_sequence(colorizer, jobs, counted, overwrite=overwrite)
    except Exception as exc:  # a bug or a codec error must not stop the batch
        if exc is recording_error:  # the report's, not the sequence's: its frames are not to blame
            raise
        log.debug("failed on the sequence from %s", jobs[0].source, exc_info=True)
        for job in jobs[done:]:
            record(Result(str(job.source), str(job.output), "failed", error=f"{type(exc).__name__}: {exc}"))


def _run_job(colorizer: Colorizer, job: Job, overwrite: bool, progress: bool,
             excerpt: Excerpt | None = None) -> Result:
    try:
        done = colorize_file(colorizer, job.source, job.output, overwrite=overwrite, progress=progress,
                             excerpt=excerpt)
        return Result(str(job.source), str(job.output), "done", done["frames"], done["seconds"])
    except FramecolorError as exc:
        return Result(str(job.source), str(job.output), "failed", error=str(exc))
    except Exception as exc:  # a bug or a codec error on one file must not stop the batch
        log.debug("failed on %s", job.source, exc_info=True)
        return Result(str(job.source), str(job.output), "failed", error=f"{type(exc).__name__}: {exc}")


def summary(results: Sequence[Result], seconds: float | None = None) -> str:
    """One line of counts; `seconds` is the batch's wall time (photos overlap,
    so their own times add up to more), else the files' times summed."""
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    frames = sum(r.frames for r in results)
    seconds = sum(r.seconds for r in results) if seconds is None else seconds
    return (f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
            f"({frames} frames in {seconds:.1f} s)")


class _SequenceFrame(NamedTuple):
    job: "Job"
    photo: video.Photo
    lightness: jax.Array  # L on the photo's canvas
    small: jax.Array  # L at the render size
    size: jax.Array
    started: float  # when its reading began


def colorize_photo_sequence(colorizer: Colorizer, jobs: Sequence["Job"], record: Callable[["Result"], None], *,
                            overwrite: bool = False) -> None:
    """Numbered photos (a film scanned to frames) colorized as a video's frames
    are: in batches, the predicted color smoothed over neighbouring frames
    (framecolor.smoothing: it stops at motion and restarts at cuts), each
    photo keeping its own L, depth and transparency as colorize_image's do.

    Gives `record` one Result per job, in order. A frame that cannot be
    read or written fails alone; the smoothing restarts after it, and
    wherever the picture size changes. Photos are read ahead and written
    behind in a few threads (PyAV's codecs let go of the GIL), beside the
    network. Stopped early (Ctrl-C, or an error, `record`'s too), those
    being written finish and are recorded, the rest never start:
    unrecorded, the summary counted fewer files than the folder held.
    """
    batch_size = colorizer.batch_size
    batch: list[_SequenceFrame] = []
    # (Track, frames): batches waiting for those after them, their look-ahead (colorizer.batches_ahead)
    waiting = smoothing.Lookahead(colorizer.batches_ahead)
    state, state_shape = None, None  # the smoothing's state, and the photos' (shape, type) it runs over
    writes: collections.deque = collections.deque()  # (job, started, future), in job order

    def load(job):
        video.check_output_path(job.output, inputs=(job.source,), overwrite=overwrite)
        return video.read_photo(job.source)

    def save(job, photo, rgb):
        video.write_photo(job.output, photo._replace(rgb=rgb), overwrite=overwrite)

    def written(wait: bool):
        while writes and (wait or writes[0][2].done()):
            job, started, future = writes[0]  # left in place while waited on: a Ctrl-C then records it (finally)
            try:
                future.result()
            except (FramecolorError, OSError) as exc:
                writes.popleft()
                record(Result(str(job.source), str(job.output), "failed", error=str(exc)))
                continue
            writes.popleft()
            record(Result(str(job.source), str(job.output), "done", 1, time.perf_counter() - started))

    def track(frames):
        small = jnp.stack([f.small for f in frames] + [frames[0].small] * (batch_size - len(frames)))
        return colorizer.photo_track(small, jnp.asarray(np.arange(batch_size) < len(frames)))

    def write(ready):
        nonlocal state
        for (current, frames), ahead in ready:
            state, ab = colorizer.smooth(state, current, [track for track, _ in ahead])
            for frame, frame_ab in zip(frames, ab):
                rgb = colorizer.photo_rgb(frame.lightness, frame_ab, frame.size, frame.photo.rgb)
                writes.append((frame.job, frame.started, pool.submit(save, frame.job, frame.photo, rgb)))
            written(wait=False)

    def send(frames):
        write(waiting.push((track(frames), frames)))

    def flush():
        nonlocal batch, state
        if batch:
            send(batch)
            batch = []
        write(waiting.drain())  # their look-ahead runs past the sequence's end (smooth pads it, all invalid)
        state = None
        written(wait=True)

    pool = ThreadPoolExecutor(3, thread_name_prefix="sequence-io")
    try:
        remaining = iter(jobs)
        loads: collections.deque = collections.deque()
        while True:
            while len(loads) < 2 * batch_size and (job := next(remaining, None)) is not None:
                loads.append((job, time.perf_counter(), pool.submit(load, job)))
            if not loads:
                break
            job, started, future = loads.popleft()
            try:
                photo = future.result()
            except (FramecolorError, OSError) as exc:
                flush()
                record(Result(str(job.source), str(job.output), "failed", error=str(exc)))
                continue
            shape = (photo.rgb.shape, photo.rgb.dtype)
            if state is not None and shape != state_shape:
                flush()
            if state is None:
                state_shape = shape
                warn_if_in_color(job.source, [photo.rgb])
            lightness, small, size = colorizer.photo_lightness(photo.rgb)
            if state is None:
                state = colorizer.photo_initial_state(small.shape)
            batch.append(_SequenceFrame(job, photo, lightness, small, size, started))
            if len(batch) == batch_size:
                send(batch)
                batch = []
        flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for job, started, future in writes:  # none after a run to its end
            if _finished_well(future):
                record(Result(str(job.source), str(job.output), "done", 1, time.perf_counter() - started))
