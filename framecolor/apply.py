"""Colorize videos and images with a trained model: the streaming apply pipeline.

    decode thread: luma planes, batches of B, L at the render size
      --(bounded queue)--> main thread: the network on all devices
                           (on a CPU backend, two batches at once)
      --(bounded queue)--> recombine thread: smoothing, recombination,
                           the chroma back to the host
      --(bounded queue)--> encode thread: the encoder, fed without pause
    open thread: a look at the source's colors, then the writer's opening,
                 beside the first batches (the recombine and encode threads
                 wait for it)

The decode thread reads each frame's raw Y plane (video.read_frames(format=
"luma"), or "luma10" for a 10-bit output), pads the frames into fixed
batches of B (the last batch too, so nothing recompiles), puts them on a
Mesh over all local devices (batch sharded, parameters replicated) and
dispatches the L at the render size; the main thread dispatches the
network; the recombine thread smooths each batch with the frames after it
as look-ahead (a fixed number set by the smoothing's strength; the batches
that hold them wait there), recombines and pulls the chroma back to the
host; the encode thread writes it. Each stage dispatches its own device
work: JAX's CPU backend runs the computations one thread dispatches in
order, one after another, so on a CPU this lets the light stages run
beside the network instead of between its batches. For the same reason the network runs two
batches at once on a CPU backend, each from a thread of its own: one
forward leaves part of the cores idle (see
inference._default_networks_in_flight). On a GPU the codec is the slowest
stage, so the encode thread only feeds it: when it also dispatched the
recombination and waited for the device, an H200 wrote 720p at 0.77-0.82 of
the codec's own rate, and 0.85-0.89 with the recombine thread apart (the
fourteenth session, benchmarks/RESULTS.md). Queues are small, and the
look-ahead at most smoothing.MAX_LOOKAHEAD frames, so memory stays flat
whatever the length of the video.

The steps on the device (L at the render size, the network, smoothing,
recombination into Cb/Cr) are framecolor.inference's; the encoder writes the
*input's* Y plane untouched with the new chroma (VideoWriter.write_yuv), so
the picture's luminance and detail are the original's.
"""

from __future__ import annotations

import collections
import math
import queue
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import jax
import numpy as np

from framecolor import smoothing, video
# The model's side, named here too: callers colorize with apply.Colorizer.
from framecolor.inference import (  # noqa: F401
    IMAGE_CANVAS_STEPS_PER_OCTAVE,
    IMAGE_RENDER_STEP,
    MAX_KEPT_ASPECT,
    MAX_RENDER_ASPECT,
    MIN_RENDER_SIZE,
    PIX_FMTS,
    ApplyConfig,
    Colorizer,
    Prediction,
    Prepared,
    canvas_side,
    load,
    render_shape,
)
from framecolor.errors import InputError


# ---------------------------------------------------------------------------
# The streaming video pipeline

_END = object()


class _Failed(NamedTuple):
    error: BaseException


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put unless the pipeline is stopping; never blocks forever on a full queue."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _decode(read: Callable[[], Iterator], info, batch_size: int, prepare: Callable, out: queue.Queue,
            stop: threading.Event, span: tuple[float, float | None] | None = None) -> None:
    """Decode thread: prepare(frames) for lists of up to batch_size of `read()`'s Frames, then _END.

    A video that stops decoding early is an error here, not a warning: a
    shorter output with the audio of the whole would look like success.
    """
    frames = None
    try:
        frames = read()
        batch, count, first_time, last_time = [], 0, None, None
        for frame in frames:
            batch.append(frame)
            count += 1
            if frame.time is not None:
                first_time = frame.time if first_time is None else first_time
                last_time = frame.time
            if len(batch) == batch_size:
                if not _put(out, prepare(batch), stop):
                    return
                batch = []
        problem = _incomplete(info, count, first_time, last_time, span)
        if problem:
            raise InputError(f"{info.path} is truncated or damaged: {problem}; nothing written")
        if batch and not _put(out, prepare(batch), stop):
            return
        _put(out, _END, stop)
    except BaseException as exc:  # handed to the main thread, which raises it
        _put(out, _Failed(exc), stop)
    finally:
        if hasattr(frames, "close"):
            frames.close()  # closes the container now, also when the pipeline stops early


def _expected_end(info, span: tuple[float, float | None] | None) -> float:
    """Where decoding a video (or `span` of it) must reach: its end, or the excerpt's if sooner."""
    if span is None or span[1] is None:
        return info.duration
    return min(span[1], info.duration) if info.duration else span[1]


def _span_duration(span: tuple[float, float | None] | None) -> float | None:
    """How long an excerpt's `span` was asked to last; None for a whole video or one to the end."""
    return None if span is None or span[1] is None else span[1] - span[0]


def _incomplete(info, count: int, first_time: float | None, last_time: float | None,
                span: tuple[float, float | None] | None = None) -> str | None:
    """Why `count` decoded frames are not the whole video (or `span` of it), or None if they are.

    Same rules as video.read_frames' warning: fewer frames than the container
    states, or the last frame more than two frame periods before the end.
    Frames missing only before the first that decodes are no damage: a
    recording cut from a broadcast starts mid-way through a group of
    pictures, and no decoder can show the frames before its first keyframe.
    Those are said in a warning, and the rest is colorized. An excerpt
    must reach its own end, or the video's.
    """
    end = _expected_end(info, span)
    reached_end = not (info.fps and end and last_time is not None and last_time + 2 / info.fps < end)
    if not reached_end and last_time is not None and video.picture_ends_first(info.path, last_time, info.fps):
        reached_end = True
    if span is not None:
        return None if reached_end else f"decoding stopped at {last_time:.2f} s of {end:.2f} s"
    if info.frame_count_exact and count < info.frame_count:
        missing_first = round(first_time * info.fps) if first_time and info.fps else 0
        if not reached_end or count + missing_first < info.frame_count:
            return f"decoded {count} of {info.frame_count} frames"
        warnings.warn(f"{info.path} starts mid-way through a group of pictures: its first "
                      f"{info.frame_count - count} frames ({first_time:.2f} s) cannot be decoded "
                      "and are left out", video.VideoWarning, stacklevel=2)
    if not reached_end:
        return f"decoding stopped at {last_time:.2f} s of {info.duration:.2f} s"
    return None


def _recombine(writer_ready: Future, chroma_for: Callable, out: queue.Queue, stop: threading.Event) -> None:
    """Recombine thread: once the writer is open (beside the first batches),
    each batch's chroma, in order, on the host, then _END.

    Iterating chroma_for(writer) (_recombined) dispatches the smoothing and
    recombination from this thread, beside the network in the main thread,
    and waits here for the device, so the encode thread does nothing but
    feed the encoder: on a GPU x264 is the pipeline's slowest stage, and any
    pause in its feeding is lost throughput.
    """
    try:
        writer = writer_ready.result()
        for chroma, frames in chroma_for(writer):
            u, v = np.asarray(chroma)  # waits for the device; two views of one copy
            if not _put(out, (u, v, frames), stop):
                return
        _put(out, _END, stop)
    except BaseException as exc:  # handed to the encode thread, which keeps it for the main thread
        _put(out, _Failed(exc), stop)


def _encode(writer_ready: Future, chroma: queue.Queue, stop: threading.Event, progress, errors: list) -> None:
    """Encode thread: writes each batch's host chroma, in order, with the input's luma."""
    try:
        writer = writer_ready.result()
        for u, v, frames in _queued(chroma, stop):
            for i, frame in enumerate(frames):
                writer.write_yuv(frame.image, u[i], v[i], frame.pts, frame.duration)  # pts None: the next nominal one
            progress(len(frames))
    except BaseException as exc:
        errors.append(exc)
        stop.set()


def _discard(writer_ready: Future) -> None:
    """Delete what the writer wrote, once it has opened (if it did): the pipeline failed."""
    if writer_ready.exception() is None:
        writer_ready.result().discard()


def _queued(q: queue.Queue, stop: threading.Event) -> Iterator:
    """Items from `q` until _END (or until the pipeline stops)."""
    while not stop.is_set():
        item = _get(q, stop)
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


def _padded(frames: list, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack luma planes into a full batch; padding frames are zeros, marked invalid."""
    y = np.zeros((batch_size, *frames[0].image.shape), frames[0].image.dtype)
    for i, frame in enumerate(frames):
        y[i] = frame.image
    return y, np.arange(batch_size) < len(frames)


def _run_model(colorizer: Colorizer, batches: Iterable[tuple], send: Callable) -> int:
    """Main thread: the network on each prepared batch, handed on with its frames."""
    count = 0
    for prediction, frames in _predictions(colorizer, batches):
        if not send((prediction, frames)):
            break
        count += len(frames)
    return count


def _predictions(colorizer: Colorizer, batches: Iterable[tuple]) -> Iterator[tuple]:
    """(frames, prepared) -> (prediction, frames), in order, colorizer.networks_in_flight at a time.

    JAX's CPU backend runs what one thread dispatches one after another, so
    more than one forward at once takes a thread each; each thread waits for
    its own forward, and results come back in the order the batches came.
    """
    in_flight = colorizer.networks_in_flight
    if in_flight == 1:  # dispatched without waiting: the device queues them
        for frames, prepared in batches:
            yield colorizer.predict(prepared), frames
        return

    def forward(prepared):
        return jax.block_until_ready(colorizer.predict(prepared))

    running: collections.deque = collections.deque()
    # Leaving early (the pipeline stopped) waits for the forwards still running.
    with ThreadPoolExecutor(in_flight, thread_name_prefix="network") as pool:
        for frames, prepared in batches:
            running.append((pool.submit(forward, prepared), frames))
            if len(running) == in_flight:
                future, oldest = running.popleft()
                yield future.result(), oldest
        while running:
            future, oldest = running.popleft()
            yield future.result(), oldest


def _recombined(colorizer: Colorizer, predictions: Iterable[tuple], *, state, **finish_kw) -> Iterator:
    """(Prediction, frames) in order -> (chroma, frames), chroma Cb and Cr
    stacked, each batch smoothed with the colorizer.batches_ahead batches
    after it as look-ahead (colorizer.lookahead frames, whatever the batch
    size), so that many wait here; none where the strength is 0."""
    lookahead = smoothing.Lookahead(colorizer.batches_ahead)

    def finished(ready):
        nonlocal state
        for (current, frames), ahead in ready:
            state, chroma = colorizer.finish(state, current, [prediction for prediction, _ in ahead], **finish_kw)
            yield chroma, frames

    for item in predictions:
        yield from finished(lookahead.push(item))
    # The last batches: their look-ahead runs past the video's end (finish pads it, all invalid).
    yield from finished(lookahead.drain())


def colorize_video(
    colorizer: Colorizer, source, output, *, overwrite: bool = False, progress: bool = True,
    excerpt: Excerpt | None = None, label: str | None = None,
) -> dict:
    """Colorize one video file into `output` (atomic; nothing is left behind on error).

    Same size, frames, pts, time base and frame rate as the source; audio and
    subtitles copied. An `excerpt` writes that part only, from 0 s, its
    audio and subtitles cut to it. `label` names the video on the progress
    bar (default: the source's name), for a caller whose source is a copy
    the user never sees. Returns a summary: frames, seconds, fps.
    """
    source, output = Path(source), Path(output)
    video.check_output_path(output, inputs=(source,), overwrite=overwrite)
    info = video.probe(source)
    span = excerpt.span(info) if excerpt is not None else None
    _warn_if_rounded(colorizer, info, source, output)
    luma = "luma10" if colorizer.config.ten_bit else "luma"

    def look_first():
        pictures = video.opening_pictures(source, count=_OPENING_FRAMES // 5 + 1, every=5, short_side=64,
                                          keep_alpha=True)
        if any(picture.shape[-1] == 4 and _translucent(picture[..., 3]) for picture in pictures):
            _warn_of_transparency(source.name, output)
        warn_if_in_color(source, [picture[..., :3] for picture in pictures])

    def read():
        # At the probed size, which the writer has: a stream that changes size
        # mid-way (a broadcast capture) is scaled to it.
        start, end = span or (None, None)
        return video.read_frames(source, format=luma, size=(info.width, info.height), start=start, end=end)

    return _colorize_frames(colorizer, info, read, output, copy_streams_from=source, inputs=(source,),
                            span=span, overwrite=overwrite, progress=progress, look_first=look_first,
                            label=label)


def photo_film_input(folder, fps=None, audio=None) -> tuple:
    """What colorize_photo_film makes its video of: (the photos of `folder`
    in number order, the rate `fps` or DEFAULT_SEQUENCE_FPS, the video they
    make, the sound file `audio` checked). InputError where the photos are
    not one film's frames (video.photo_film) or `audio` has no sound: the
    CLI asks first, to say so before the model is loaded."""
    photos = video.photo_film(folder)
    fps = video.DEFAULT_SEQUENCE_FPS if fps is None else fps
    # Full range at either depth: read_photo_film's 10-bit codes span 0..1023
    # too, and flagged limited they show with crushed blacks and clipped whites.
    info = video.probe_photo_film(photos, fps, full_range=True)
    if audio is not None:
        audio = video.check_soundtrack(audio, info)
    return photos, fps, info, audio


def colorize_photo_film(
    colorizer: Colorizer, folder, output, *, fps=None, overwrite: bool = False,
    progress: bool = True, excerpt: Excerpt | None = None, audio=None,
) -> dict:
    """Colorize a folder of numbered photos (a film scanned to frames) into
    one video file at `fps` (None: DEFAULT_SEQUENCE_FPS), as colorize_video
    does a file's frames; the summary also says the `frame_rate` it made.

    The photos' gray is the video's luma: 8-bit photos' codes exactly, as
    full-range video (10-bit --pix-fmt: full-range 10-bit codes, from 16-bit
    photos at their depth). `audio`, a sound file (a film's soundtrack,
    scanned or recorded apart), is copied in from its start at the first
    frame (an excerpt's: its own part) up to the last frame's end, with a
    warning where it is a second or more longer or shorter than the film.
    """
    folder, output = Path(folder), Path(output)
    photos, fps, info, audio = photo_film_input(folder, fps, audio)
    deep = colorizer.config.ten_bit
    inputs = (folder,) if audio is None else (folder, audio)
    video.check_output_path(output, inputs=inputs, overwrite=overwrite)
    span = excerpt.span(info) if excerpt is not None else None
    _warn_if_rounded(colorizer, info, folder, output)

    def look_first():  # beside the first batches, not before them: a 4K scan takes a while to decode
        _warn_if_transparent(photos[0], output)
        opening = video.read_photo_film(photos, fps, format="rgb24", short_side=64, every=5,
                                        max_frames=_OPENING_FRAMES // 5 + 1)
        warn_if_in_color(folder, [frame.image for frame in opening])

    def read():
        start, end = span or (None, None)
        return video.read_photo_film(photos, fps, format="luma10" if deep else "gray",
                                     size=(info.width, info.height), start=start, end=end)

    # The sound stops with the last photo, as the film does.
    done = _colorize_frames(colorizer, info, read, output, copy_streams_from=audio, inputs=inputs, span=span,
                            overwrite=overwrite, progress=progress, end_with_frames=True, look_first=look_first)
    return {**done, "frame_rate": float(info.fps)}


def _warn_if_transparent(photo: Path, output: Path) -> None:
    """Say so where a film's photos have transparency (the first photo stands for the rest)."""
    if video.read_photo(photo).alpha is not None:
        _warn_of_transparency(photo.name, output)


def _translucent(alpha: np.ndarray) -> bool:
    """Does this alpha channel hide anything? One opaque everywhere loses nothing when dropped."""
    return bool((alpha < np.iinfo(alpha.dtype).max).any())


def _warn_of_transparency(name: str, output: Path) -> None:
    """The video written has no alpha channel: say that the source's
    transparency is lost, as write_photo does for a photo. The opening
    frames, or a film's first photo, stand for the rest.

    Said in the writer's opening thread, under Python's thread pool: put on
    apply's own line at either depth, not the pool's, it prints as the
    CLI's one-line warning.
    """
    warnings.warn(f"{name} has transparency, which {output} does not keep (framecolor writes video "
                  "without an alpha channel): the picture under it is kept", video.VideoWarning, stacklevel=2)


def _warn_if_rounded(colorizer: Colorizer, info, source: Path, output: Path) -> None:
    """Say so where an 8-bit output rounds a deeper source's luma."""
    config = colorizer.config
    if info.luma_bits > 8 and not config.ten_bit:
        # Only a format the encoder takes: MPEG-4 Part 2 has none of 10 bits, and the hint would fail.
        codec = video.containers.output_encoder(output, config.codec)  # a .webm's VP9 has none
        takes = video.encoding.encoder_formats(codec)
        deep = [f for f in (f"{config.output_pix_fmt}10le", *PIX_FMTS)
                if f.endswith("10le") and (not takes or f in takes)]
        keep = f"--pix-fmt {deep[0]} keeps 10" if deep else f"{codec} has no 10-bit format"
        warnings.warn(f"{source} has {info.luma_bits}-bit luma; {output} is 8-bit, its luma rounded "
                      f"to 8 bits ({keep})", video.VideoWarning, stacklevel=3)


def _colorize_frames(colorizer: Colorizer, info, read: Callable[[], Iterator], output: Path, *,
                     copy_streams_from=None, inputs=(), span=None, overwrite=False, progress=True,
                     end_with_frames=False, look_first: Callable[[], None] = lambda: None,
                     label: str | None = None) -> dict:
    """The pipeline: `read()`'s frames (luma planes shaped as `info` says)
    colorized into `output`, written as `info`'s video.

    Nothing waits before the decode thread and the network start: the
    writer is opened (after `look_first()`, a look at the source's colors
    and, for photos, their transparency) in a thread of its own, while the
    first batches are decoded and predicted; the recombine thread, which
    needs the batches of its look-ahead before it has any chroma, and the
    encode thread wait for it. At 1080p the look and the opening took 80 ms
    on this machine.
    """
    from tqdm import tqdm

    source = Path(info.path)
    config = colorizer.config
    video.check_frame_rate(config.codec, info.fps, source)  # a job of several fails before its decoding
    width, height = info.width, info.height
    full_range = info.full_range
    matrix = "bt709" if height >= 720 else "bt601"  # HD and SD conventions
    stop = threading.Event()
    prepared_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
    predicted_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
    chroma_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
    errors: list = []
    started = time.perf_counter()
    turns = video.quarter_turns(info.rotation)
    pixel_aspect = float(info.sample_aspect_ratio or 1)

    def prepare(frames):
        y, valid = _padded(frames, colorizer.batch_size)
        return frames, colorizer.prepare(y, valid, full_range=full_range, turns=turns, pixel_aspect=pixel_aspect)

    def open_writer():
        look_first()
        # Shaped as the source (full-range luma codes stay full range, as a yuvj*
        # format or the range flag), so the Y plane is copied exactly and still
        # displays as it did.
        return video.VideoWriter.like(
            output, info, codec=config.codec, crf=config.crf, preset=config.preset, pix_fmt=config.output_pix_fmt,
            copy_streams_from=copy_streams_from, excerpt=span is not None, excerpt_duration=_span_duration(span),
            end_with_frames=end_with_frames,
            overwrite=overwrite, inputs=inputs, matrix=matrix,
        )

    def chroma_for(writer):
        # The writer picks the final format (an odd size cannot be 4:2:0).
        state = colorizer.initial_state(width, height, turns, pixel_aspect)
        return _recombined(colorizer, _queued(predicted_q, stop), state=state, full_range=full_range,
                           matrix=matrix, chroma_hw=writer.chroma_shape, turns=turns,
                           out_full_range=writer.full_range)

    frames = info.frame_count
    if span is not None:
        end = _expected_end(info, span)
        frames = round((end - span[0]) * info.fps) if info.fps and end else 0
    decoder = threading.Thread(
        target=_decode, args=(read, info, colorizer.batch_size, prepare, prepared_q, stop),
        kwargs={"span": span}, name="decode", daemon=True,
    )
    bar = tqdm(total=frames or None, unit="frame", desc=label or source.name, disable=not progress)
    with ThreadPoolExecutor(1, thread_name_prefix="open") as opener, bar:
        decoder.start()
        writer_ready = opener.submit(open_writer)
        recombiner = threading.Thread(target=_recombine, args=(writer_ready, chroma_for, chroma_q, stop),
                                      name="recombine", daemon=True)
        encoder = threading.Thread(target=_encode, args=(writer_ready, chroma_q, stop, bar.update, errors),
                                   name="encode", daemon=True)
        recombiner.start()
        encoder.start()
        try:
            count = _run_model(colorizer, _queued(prepared_q, stop), lambda item: _put(predicted_q, item, stop))
            _put(predicted_q, _END, stop)
            encoder.join()
        except BaseException:
            stop.set()
            encoder.join()
            _discard(writer_ready)
            raise
        finally:
            stop.set()
            encoder.join()
            recombiner.join()
            decoder.join()
        # Closed (and the file kept) only where everything went well; an
        # error raised here deletes it. A writer that could not open raises.
        with writer_ready.result():
            if errors:
                raise errors[0]
            if count == 0 and span is not None:
                until = "its end" if span[1] is None else f"{span[1]:g} s"
                raise InputError(f"{source} has no frame from {span[0]:g} s to {until}")
            if count == 0:
                raise InputError(f"{source}: no video frames could be decoded")
    seconds = time.perf_counter() - started
    return {"input": str(source), "output": str(output), "frames": count, "seconds": seconds,
            "fps": count / seconds if seconds > 0 else 0.0}


# Frames of a video's opening that are looked at for color (every fifth).
_OPENING_FRAMES = 12


def warn_if_in_color(source: Path, frames: Sequence[np.ndarray]) -> None:
    """Colorizing keeps only the luma: a source that has color loses it, which
    a user who picked the wrong file (the original, not its gray copy) should hear.
    `frames` are RGB, 8 or 16 bits a channel."""
    from framecolor import metrics

    if metrics.has_color(frame if frame.dtype == np.uint8 else (frame >> 8).astype(np.uint8) for frame in frames):
        warnings.warn(f"{source} is in color already: its colors are replaced by the model's "
                      "(only its luma is kept)", video.VideoWarning, stacklevel=3)


def colorize_image(colorizer: Colorizer, source, output, *, overwrite: bool = False) -> dict:
    """Colorize one still image: same size, Lab lightness, depth (8 or 16 bits)
    and transparency, where the output's type holds them."""
    source, output = Path(source), Path(output)
    started = time.perf_counter()
    video.check_output_path(output, inputs=(source,), overwrite=overwrite)
    photo = video.read_photo(source)
    warn_if_in_color(source, [photo.rgb])
    # overwrite passed on: a file another run wrote there meanwhile is kept, as a video's is.
    video.write_photo(output, photo._replace(rgb=colorizer.colorize_rgb(photo.rgb)), overwrite=overwrite)
    seconds = time.perf_counter() - started
    return {"input": str(source), "output": str(output), "frames": 1, "seconds": seconds,
            "fps": 1 / seconds if seconds > 0 else 0.0}


def colorize_file(colorizer: Colorizer, source, output, *, overwrite=False, progress=True,
                  excerpt: Excerpt | None = None, fps=None, audio=None) -> dict:
    """An image, a video, or a folder of numbered photos made into a video at
    `fps` (None: DEFAULT_SEQUENCE_FPS) with the sound of `audio`, by the
    source's kind (an excerpt is of videos only)."""
    if Path(source).is_dir():
        return colorize_photo_film(colorizer, source, output, fps=fps, overwrite=overwrite, progress=progress,
                                   excerpt=excerpt, audio=audio)
    if fps is not None or audio is not None:
        raise InputError(f"{source}: a frame rate and a sound file are given to a folder of numbered photos "
                         "made into a video; a video keeps its own")
    if video.is_image_path(source):
        return colorize_image(colorizer, source, output, overwrite=overwrite)
    check_video_output_name(source, output)
    return colorize_video(colorizer, source, output, overwrite=overwrite, progress=progress, excerpt=excerpt)


def check_video_output_name(source, output) -> None:
    """InputError where a video's `output` is named as an image: said before
    any frame is decoded, in the user's terms, not the muxer's (FFmpeg would
    write its frames as images)."""
    if video.is_image_path(output):
        raise InputError(f"{output} is an image file name, and {Path(source).name} a video: it is colorized "
                         "into a video (.mp4 and .mkv keep its luma)")


def check_frame_rate(config: ApplyConfig, source, fps=None) -> None:
    """Raise OutputError now where the encoder cannot code the output's frame
    rate: `source`'s, or `fps` for a folder of photos (None:
    DEFAULT_SEQUENCE_FPS). MPEG-1/2 code a table of rates only, and the
    writer finds out after the model is loaded and compiled. `source` is
    probed only for them."""
    source = Path(source)
    if not video.codes_a_rate_table(config.codec) or video.is_image_path(source):
        return
    if source.is_dir():
        rate = video.DEFAULT_SEQUENCE_FPS if fps is None else fps
    else:
        rate = video.probe(source).fps
    video.check_frame_rate(config.codec, rate, source)


# ---------------------------------------------------------------------------
# A part of a video (several files at once: framecolor.batch)


class Excerpt(NamedTuple):
    """A part of a video, in seconds from its first frame: to try a model or
    its settings on a minute of a feature film before running the whole."""

    start: float = 0.0
    duration: float | None = None  # None: to the end

    def span(self, info) -> tuple[float, float | None]:
        """(start, end) on the video's timeline; InputError where it holds none of it."""
        if not 0 <= self.start < math.inf:
            raise InputError(f"an excerpt starts at 0 s or later, not at {self.start:g} s")
        if self.duration is not None and not 0 < self.duration < math.inf:
            raise InputError(f"an excerpt lasts more than 0 s, not {self.duration:g} s")
        if info.duration and self.start >= info.duration:
            raise InputError(f"{info.path} is {info.duration:.2f} s long: nothing from {self.start:g} s on")
        return self.start, None if self.duration is None else self.start + self.duration
