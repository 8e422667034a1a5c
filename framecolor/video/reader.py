"""Decoding video (and image folders) into frames: raw luma planes or RGB,
resized in swscale, with the container's pts, in display order, and a
warning or an error where a file ends early."""

from __future__ import annotations

import heapq
import itertools
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from framecolor.errors import InputError
from framecolor.video.files import VideoWarning, _check_input_file, _open_input
from framecolor.video.photos import _decode_image, list_images
from framecolor.video.pixels import FORMATS, _upright
from framecolor.video.probing import (
    REORDER_DEPTH,
    _frame_rate,
    _sample_aspect_ratio,
    _stated_frames,
    _stream_duration,
    _video_stream,
    picture_ends_first,
    read_opening,
)


@dataclass
class Frame:
    image: np.ndarray
    pts: int | None  # in the stream's time_base; the image index for image sources
    time: float | None  # seconds from the start of the stream; None for image folders
    index: int  # position in the source, counted from the first frame at or after `start`
    # How long it shows (time_base), where the file says: the last frame's, a
    # variable-rate video's, is not the frame period the writer would assume.
    duration: int | None = None


def _check_read_args(size, short_side, fmt, every, max_frames):
    if size is not None and short_side is not None:
        raise ValueError("give size or short_side, not both")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")


def read_frames(
    path,
    *,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    format: str = "rgb24",
    every: int = 1,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
) -> Iterator[Frame]:
    """Decode frames of a video, an image file or a folder of images.

    The source is checked now (InputError for a missing/unreadable file, a text
    file, an audio-only file); frames are decoded lazily as the iterator is used.

    size=(w, h) or short_side=n resize (aspect kept for short_side) in swscale.
    format: "rgb24" (H, W, 3), "gray" (H, W) full-range gray, or "luma" (H, W)
    the decoded Y plane's code values as they are (no range conversion),
    uint8; "luma10" the same as uint16 10-bit codes (deeper sources keep
    their precision; others are converted, in the range probe's
    VideoInfo.full_range gives: a gray or RGB video's full).
    rgb24 and gray come as players show them: non-square pixels widened or
    narrowed, turned upright by a display matrix or an EXIF orientation
    (size is then as shown); luma as stored.
    every=k keeps frames 0, k, 2k, ... counted from `start`; start/end are
    seconds from the start of the stream (end exclusive); max_frames caps the
    number yielded. A truncated video yields what decodes and warns
    (VideoWarning) with the count; nothing decodable is an InputError.
    """
    _check_read_args(size, short_side, format, every, max_frames)
    path = Path(path)
    if path.is_dir():
        if start is not None or end is not None:
            raise ValueError("start/end need a video, not a folder of images")
        images = list_images(path)
        if not images:
            raise InputError(f"no images (.jpg, .png, ...) in folder {path}")
        return _image_frames(images, size, short_side, format, int(every), max_frames)
    path = _check_input_file(path)
    container = _open_input(path)  # once: opening costs as much as decoding a few frames
    try:
        _video_stream(container, path)
    except BaseException:
        container.close()
        raise
    return _video_frames(container, path, size, short_side, format, int(every), start, end, max_frames)


def opening_pictures(path, *, count: int, every: int, short_side: int, keep_alpha: bool = False) -> list[np.ndarray]:
    """Up to `count` small RGB pictures from the start of a video (frames 0,
    every, 2 * every, ...), shown as players show them, for a look at its
    colors; `keep_alpha` True makes them RGBA where the video has an alpha
    channel (QuickTime Animation, PNG or ProRes 4444 in a .mov).

    What decodes, and no warnings: the video's own reading tells of damage
    once. So this can run beside that reading, in another thread, where
    silencing read_frames' warnings would silence that reading's too.
    """
    pictures: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            pixel_aspect = _sample_aspect_ratio(stream)
            for index, frame in enumerate(container.decode(stream)):
                if index % every == 0:
                    alpha = keep_alpha and any(c.is_alpha for c in frame.format.components)
                    pictures.append(_upright(frame, "rgba" if alpha else "rgb24", None, short_side, pixel_aspect))
                    if len(pictures) == count:
                        break
    except (av.error.FFmpegError, InputError):
        pass
    return pictures


def _image_frames(images, size, short_side, fmt, every, max_frames) -> Iterator[Frame]:
    selected = images[::every][:max_frames]
    for k, image_path in enumerate(selected):
        index = k * every
        yield Frame(_upright(_decode_image(image_path), fmt, size, short_side), index, None, index)


def _video_frames(container, path, size, short_side, fmt, every, start, end, max_frames) -> Iterator[Frame]:
    """Frames of the open `container`, which this closes (also when closed unstarted: PyAV closes it when freed)."""
    try:
        if max_frames == 0:
            return
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        pixel_aspect = _sample_aspect_ratio(stream)
        tb = Fraction(stream.time_base) if stream.time_base else None
        t0 = stream.start_time or 0
        window = REORDER_DEPTH if container.format.name in _NO_PRESENTATION_TIMES else 0
        if start is not None and start > 0 and tb:
            # The frames between where decoding starts and `start` are
            # decoded and dropped below.
            decoding, frames = _decode_from(container, stream, start, t0, tb, window)
        else:
            decoding, frames = _decoded(container, stream, window)
        decoded = kept = yielded = 0
        last_time = None
        error = None
        first_size, size_changed = None, False
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                error = e
                break
            decoded += 1
            time = float((frame.pts - t0) * tb) if frame.pts is not None and tb else None
            if time is None and decoded == 1 and (start is not None or end is not None):
                # A raw stream (.h264, .hevc): nothing tells where a part starts or ends.
                raise InputError(_UNTIMED.format(path=path))
            if first_size is None:
                first_size = (frame.width, frame.height)
            elif not size_changed and first_size != (frame.width, frame.height):
                _warn_size_change(path, first_size, frame, time, size)  # once: a capture may switch often
                size_changed = True
            if time is not None:
                if start is not None and time < start - 1e-9:
                    continue
                if end is not None and time >= end:
                    break
                last_time = time
            index = kept
            kept += 1
            if index % every:
                continue
            yield Frame(_upright(frame, fmt, size, short_side, pixel_aspect), frame.pts, time, index,
                        frame.duration or None)
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return
        _report_end(path, container, stream, error, decoded, kept, last_time, decoding.hidden,
                    whole=start is None and end is None)
    finally:
        container.close()


_UNTIMED = ("{path} has no timestamps to start or end a part at "
            "(a raw video stream: put it in a container such as .mkv first)")


def _seek_times(start: float) -> Iterator[float]:
    """Where to seek (seconds from the stream's start) for the frames from
    `start`, before trying the beginning: at it, then 1, 2, 4, ... s before it."""
    yield start
    back = 1.0
    while back < start:
        yield start - back
        back *= 2


def _starts_in_time(first, t0: int, tb: Fraction, start: float) -> bool:
    """Whether decoding that gave `first` as its first frame (None: none)
    began in time for the frame at `start`: at it or before. A later first
    frame may be the next keyframe after frames that were dropped."""
    if first is None:
        return False
    return first.pts is None or float((first.pts - t0) * tb) <= start + 1e-9


def _decode_from(container, stream, start: float, t0: int, tb: Fraction, window: int):
    """(_Decoding, display-ordered frames) from a point at or before the frame at `start`.

    An MP4's or MKV's seek lands on the keyframe at or before `start`: one
    seek. An MPEG-TS's lands by bytes and timestamps, often on a packet that
    is not a keyframe, and the decoder drops every frame until the next
    keyframe, past `start` or past the excerpt's end. So where the first
    frame comes later than `start` (or none comes), decoding starts again
    further back, and at last at the beginning, which holds whatever can decode.
    An MPEG program stream is not seeked at all (see _STAMPS_COUNTED_ON).
    """
    if container.format.name in _STAMPS_COUNTED_ON:
        return _decoded(container, stream, window, skip_to=t0 + math.floor(start / tb))
    for seconds in _seek_times(start):
        try:
            container.seek(t0 + math.floor(seconds / tb), stream=stream)
        except av.error.FFmpegError:
            # A raw stream (.h264) has no times to seek by: FFmpeg reads it
            # to its end looking for some, and leaves it there.
            raise InputError(_UNTIMED.format(path=container.name)) from None
        decoding, frames = _decoded(container, stream, window)
        try:
            first = next(frames, None)
        except av.error.FFmpegError:
            first = None  # a bad landing, as much as a damaged file: the beginning tells
        if _starts_in_time(first, t0, tb, start):
            return decoding, itertools.chain([first], frames)
    # Not at t0: an MPEG-TS seeks by dts, and with B-frames its first
    # keyframe's dts is below its pts (t0), so a seek to t0 lands past it.
    container.seek(min(t0, 0), stream=stream)
    return _decoded(container, stream, window)


def _decoded(container, stream, window: int, skip_to: int | None = None):
    """(_Decoding, its frames in display order) from where demuxing stands."""
    decoding = _Decoding(container, stream, skip_to)
    return decoding, _display_ordered(iter(decoding), window)


# Containers whose demuxer stamps most pictures by counting on from the
# last picture that came with a stamp of its own, and whose seek lands in
# the middle of that count: MPEG program streams (.mpg, .vob). They pack
# the pictures into 2 KiB packets, each stamped for the first picture
# that begins in it; where pictures are small (still scenes, B-frames),
# one packet holds several. A seek lands on a packet boundary,
# mid-picture: FFmpeg's parser gives that packet's stamp to the broken
# piece in front, and counts the pictures after it on from there, off
# until the next stamped packet (at 25 fps: half a frame late without
# B-frames, 2 to 2.5 frames early or late with them). Frames picked by
# those stamps are the wrong ones, and carry stamps a full read does not
# give. Nothing after a seek tells a counted stamp from a true one, so
# these are demuxed from the beginning, as a full read is, and decoded
# only from the keyframe before `start`: demuxing costs a few percent of
# decoding (an SD film: some hundred MB a second), and leaves every
# stamp as a full read's.
_STAMPS_COUNTED_ON = frozenset({"mpeg"})


class _Decoding:
    """container.decode(stream), counting the packets an MP4's edit list marks
    to be decoded but not shown, so that its frame count is checked at the end
    without reading the file's start again.

    `skip_to` (pts): the packets before the last keyframe shown at or before
    it are demuxed but not decoded."""

    def __init__(self, container, stream, skip_to: int | None = None):
        self.container, self.stream, self.hidden = container, stream, 0
        self.skip_to = skip_to

    def __iter__(self) -> Iterator:
        packets = self.container.demux(self.stream)
        if self.skip_to is not None:
            packets = _from_keyframe_before(packets, self.skip_to)
        for packet in packets:
            if packet.size and packet.is_discard:
                self.hidden += 1
            yield from packet.decode()


def _from_keyframe_before(packets: Iterator, last: int) -> Iterator:
    """`packets` from the last keyframe shown at or before `last` on.

    Which keyframe is the last is known only once a packet comes that is
    decoded after `last` (its dts is later: so are the pts of all that
    follow) or a keyframe shown after it, so the packets from each keyframe
    at or before it are held until then: one GOP's worth. Packets before the
    first keyframe pass, as a full read decodes them; so do all from an
    unstamped one on (H.264 in a program stream leaves most unstamped),
    as nothing then tells how far to go.
    """
    packets = iter(packets)  # one pass: the rest are yielded as they come
    held: list | None = None
    for packet in packets:
        if (not packet.size or packet.dts is None or packet.dts > last
                or (packet.is_keyframe and (packet.pts is None or packet.pts > last))):
            yield from held or ()
            yield packet
            yield from packets
            return
        if packet.is_keyframe and packet.pts is not None and packet.pts <= last:
            held = [packet]
        elif held is not None:
            held.append(packet)
        else:
            yield packet
    yield from held or ()


# Containers that store no presentation times, only the order of the packets.
_NO_PRESENTATION_TIMES = frozenset({"avi", "asf"})


def _display_ordered(frames: Iterator, window: int) -> Iterator:
    """Decoded frames (in display order) with their pts in display order too.

    AVI and ASF store no presentation times: FFmpeg stamps each packet with
    its place in the file, so the B-frames of an XviD AVI, or of any AVI or
    WMV with H.264, come out of the decoder with their stamps out of order
    (1, 3, 4, 2, ...). The stamps themselves are right; they belong to the
    frames in sorted order. So each frame takes the smallest stamp among
    itself and the next `window` frames (REORDER_DEPTH for those
    containers; 0 for the others, whose stamps are the frames' own). A
    stamp not above the last (a broken file's repeat) moves one tick on,
    so that the frame is kept and the stamps increase. A decoding error is
    raised after the frames decoded before it.
    """
    held: list = []
    stamps: list[int] = []
    last = None

    def release():
        nonlocal last
        frame = held.pop(0)
        if frame.pts is not None:
            pts = heapq.heappop(stamps)
            frame.pts = pts if last is None or pts > last else last + 1
            last = frame.pts
        return frame

    try:
        for frame in frames:
            held.append(frame)
            if frame.pts is not None:
                heapq.heappush(stamps, frame.pts)
            if len(held) > window:
                yield release()
    except av.error.FFmpegError:
        while held:
            yield release()
        raise
    while held:
        yield release()


def _warn_size_change(path, before: tuple[int, int], frame, time: float | None, size) -> None:
    # A broadcast capture switching between SD and HD, or joined clips.
    when = f" at {time:.2f} s" if time is not None else ""
    scaled = f"; frames of other sizes are scaled to {size[0]}x{size[1]}" if size is not None else ""
    warnings.warn(f"{path}: the picture changes size{when}, {before[0]}x{before[1]} -> "
                  f"{frame.width}x{frame.height}{scaled}", VideoWarning, stacklevel=3)


def _report_end(path, container, stream, error, decoded, kept, last_time, hidden, whole):
    """After the last frame: fail if nothing decoded, warn if the file ended early
    (`hidden`: the packets an MP4's edit list hid, which its sample count includes)."""
    if decoded == 0 and (error is not None or whole):
        reason = f" ({getattr(error, 'strerror', None) or error})" if error is not None else ""
        raise InputError(f"no frames could be decoded from {path}{reason}")
    if error is not None:
        warnings.warn(f"{path}: decoding stopped early ({getattr(error, 'strerror', None) or error}); "
                      f"read {kept} frames", VideoWarning, stacklevel=3)
        return
    if not whole:
        return
    stated = _stated_frames(container, stream, hidden)
    if stated:
        if decoded < stated:
            warnings.warn(f"{path} is truncated or damaged: read {decoded} of {stated} frames",
                          VideoWarning, stacklevel=3)
        return
    # No frame count in the container: compare how far we got with its duration
    # (the frame rate reads the file's first packets again, so only here).
    duration = _stream_duration(container, stream)
    if duration and last_time is not None and (fps := _frame_rate(stream, read_opening(path, stream.index).rate)):
        if last_time + 2 / fps < duration and not picture_ends_first(path, last_time, fps):
            warnings.warn(f"{path} is truncated or damaged: read {decoded} frames "
                          f"({last_time:.2f} s of {duration:.2f} s)", VideoWarning, stacklevel=3)
