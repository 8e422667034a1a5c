"""Video and image I/O: probing, decoding, encoding, with PyAV.

Everything that touches FFmpeg lives here so that the other stages see only
numpy arrays, pts and plain metadata. Resizing and pixel-format conversion are
done by swscale (in C) through PyAV, never with numpy.

Timestamps are kept as the container gives them (`pts` in the stream's
`time_base`) and written back unchanged, so variable-frame-rate input stays
variable and audio stays in sync when it is copied packet for packet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import heapq
import io
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from framecolor.errors import InputError, OutputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
FORMATS = ("rgb24", "gray", "luma", "luma10")

# Counting packets gives the exact frame count where the container does not
# state it (MKV, WebM, raw streams). Demuxing without decoding is fast, but it
# still reads the whole file, so only do it for files up to this size.
COUNT_PACKETS_MAX_BYTES = 256 * 2**20

# 8-bit YUV formats whose plane 0 is the Y plane at full resolution: "luma"
# reads it as is. Anything else (RGB, gray, 10-bit) is converted to yuv420p.
_YUV8 = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
     "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "nv24", "nv42"}
)
# Little-endian 10-bit YUV formats whose plane 0 is the Y plane: "luma10" reads it as is.
_YUV10 = frozenset({"yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv440p10le", "gray10le"})
# The raw-plane reads: formats read as they are, the format others are converted
# to, and the sample type.
_LUMA_READS = {"luma": (_YUV8, "yuv420p", np.uint8), "luma10": (_YUV10, "yuv420p10le", np.uint16)}
# Chroma-subsampled formats that cannot hold an odd width/height, and the
# full-chroma format to use instead.
# (Full-range yuvj* requests arrive here as their yuv* twins.)
_ODD_SIZE_FALLBACK = {"yuv420p": "yuv444p", "yuv422p": "yuv444p", "nv12": "yuv444p", "nv21": "yuv444p",
                      "yuv420p10le": "yuv444p10le"}
_WRITE_YUV_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv444p", "yuvj444p", "yuv420p10le", "yuv444p10le"})
_FULL_CHROMA_FORMATS = frozenset({"yuv444p", "yuvj444p", "yuv444p10le"})
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
# The deprecated full-range twins of yuv* formats; many encoders (x264, MJPEG) still want them.
_JPEG_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p"})
# Each constant-quality encoder's scale; x264 and x265 clamp a crf above it
# without a word, so it is checked here.
_CRF_RANGES = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libaom-av1": 63, "libsvtav1": 63}
_CRF_CODECS = frozenset(_CRF_RANGES)
_PRESET_CODECS = frozenset({"libx264", "libx265"})
DEFAULT_ENCODER = "libx264"
DEFAULT_CRF = 18  # for an explicit constant-quality encode, and encoders with no luma-keeping mode
# libx264 with no crf keeps the source's luma instead: colorizing must not
# re-grade the picture it was given. At quantizer 2 the step is under one
# code value and the deblocking filter is off, so Y comes back within +-1 on
# >99.9% of pixels (crf 18: 74-94% on the sample clips) for 6-8x crf 18's
# size, still the High 4:2:0 profile browsers and phones play. psy-rd spends
# fidelity on apparent texture, so it is off; chroma, a smooth prediction,
# takes a coarser quantizer (2 + 12) that saves a quarter of the size.
# Trellis quantization is off: at so fine a step it costs x264 a fifth of its
# time, and quantizer 2 without it keeps more luma than quantizer 3 with it.
_KEEP_LUMA_X264 = {"qp": "2", "x264-params": "psy-rd=0,0:chroma-qp-offset=12:trellis=0"}
# At that quantizer "faster" keeps luma at least as well as "medium" (fewer
# psychovisual decisions) and encodes faster.
_KEEP_LUMA_PRESET, _DEFAULT_PRESET = "faster", "medium"
# x264's and x265's presets. Checked here because x264 reports an unknown one
# on stderr itself, before FFmpeg can turn it into an error.
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def encoder_options(codec: str, crf: int | None = None, preset: str | None = None) -> dict[str, str]:
    """The encoder's options: `crf` None keeps luma (libx264) or means DEFAULT_CRF;
    `preset` None means the mode's own preset."""
    if crf is not None and codec in _CRF_RANGES and not 0 <= crf <= _CRF_RANGES[codec]:
        raise OutputError(f"{codec} takes crf 0-{_CRF_RANGES[codec]}, not {crf}")
    options = {}
    keep_luma = crf is None and codec == "libx264"
    if keep_luma:
        options.update(_KEEP_LUMA_X264)
    elif codec in _CRF_CODECS:
        options["crf"] = str(DEFAULT_CRF if crf is None else crf)
    if codec in _PRESET_CODECS:
        options["preset"] = preset or (_KEEP_LUMA_PRESET if keep_luma else _DEFAULT_PRESET)
    return options


def check_encoder(codec: str, crf: int | None = None, preset: str | None = None, pix_fmt: str = "yuv420p") -> None:
    """Raise OutputError now if `codec` will not open with these settings.

    Encoders open on their first frame; without this a wrong --preset or
    --crf would surface only after the model is loaded and compiled.
    """
    context = av.CodecContext.create(_encoder(codec), "w")
    if preset is not None and codec in _PRESET_CODECS and preset not in _PRESETS:
        raise OutputError(f"{codec} has no preset {preset!r} (it has: {', '.join(_PRESETS)})")
    formats = {f.name for f in context.codec.video_formats or ()}
    context.width, context.height, context.time_base = 64, 64, Fraction(1, 25)
    context.pix_fmt = pix_fmt if not formats or pix_fmt in formats else sorted(formats)[0]  # the writer checks it
    context.options = encoder_options(codec, crf, preset)
    _open_encoder(context, codec, crf, preset)  # freed with the context


def _encoder(codec: str) -> "av.Codec":
    try:
        return av.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        raise OutputError(f"unknown video encoder {codec!r}") from None


def _open_encoder(context, codec: str, crf, preset) -> None:
    try:
        context.open()
    except av.error.FFmpegError as e:
        chosen = ", ".join(f"{name} {value}" for name, value in (("crf", crf), ("preset", preset)) if value is not None)
        raise OutputError(f"{codec} will not encode with {chosen or 'its default settings'}: "
                          f"{(e.strerror or str(e)).lower()}") from None


class VideoWarning(UserWarning):
    """Something was read or written, but not all of it (truncated input, skipped stream)."""


# ---------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str
    codec: str
    language: str | None
    channels: int | None
    sample_rate: int | None


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    frame_count: int
    frame_count_exact: bool
    fps: Fraction
    time_base: Fraction
    duration: float
    codec: str
    pix_fmt: str
    audio: tuple[StreamInfo, ...]
    subtitles: tuple[StreamInfo, ...]
    color_range: int = 0  # FFmpeg's AVColorRange: 0 unspecified, 1 limited (MPEG), 2 full (JPEG)
    # How players turn the stored picture for display (phones film sideways and
    # say so here): FFmpeg's 3x3 AV_PKT_DATA_DISPLAYMATRIX, or None.
    display_matrix: tuple[int, ...] | None = None
    # Width of a pixel over its height where it is not 1 (anamorphic DVD and
    # DV video: 720x480 shown at 4:3 or 16:9); None when square or unstated.
    sample_aspect_ratio: Fraction | None = None

    @property
    def luma_bits(self) -> int:
        """Bits per luma sample (8 where the pixel format is unknown)."""
        try:
            return av.VideoFormat(self.pix_fmt).components[0].bits
        except (ValueError, IndexError):
            return 8

    @property
    def rotation(self) -> int:
        """Degrees counter-clockwise that players rotate the picture by (0 with no display matrix)."""
        return display_rotation(self.display_matrix)

    @property
    def full_range(self) -> bool:
        """Does the video store full-range (JPEG) luma codes, 0..255 instead of 16..235?

        Said either by the old yuvj* pixel formats or, as encoders that have no
        yuvj format (FFV1, VP9, ...) and current FFmpeg write it, by a flag.
        """
        return self.pix_fmt.startswith("yuvj") or self.color_range == FULL_RANGE

    def to_dict(self) -> dict:
        """JSON-able: fractions as "num/den" strings, streams as lists of dicts."""
        d = dataclasses.asdict(self)
        d["fps"] = str(self.fps)
        d["time_base"] = str(self.time_base)
        d["sample_aspect_ratio"] = str(self.sample_aspect_ratio) if self.sample_aspect_ratio else None
        d["audio"] = [dataclasses.asdict(s) for s in self.audio]
        d["subtitles"] = [dataclasses.asdict(s) for s in self.subtitles]
        return d


def _check_input_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, expected a video file")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    return path


def _open_input(path: Path):
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise InputError(f"not a video file (or damaged): {path} ({reason})") from None


def _is_attached_picture(stream) -> bool:
    # Cover art in audio files shows up as a one-frame video stream.
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except AttributeError:  # PyAV without Disposition
        return False


def _video_stream(container, path):
    for stream in container.streams.video:
        if not _is_attached_picture(stream):
            if not stream.codec_context.width:
                # FFmpeg found no picture size: a text file named .png, or damage.
                raise InputError(f"not a video file (or damaged): {path} (no picture size)")
            return stream
    raise InputError(f"no video stream in {path}")


def _language(stream) -> str | None:
    lang = getattr(stream, "language", None) or stream.metadata.get("language")
    return None if lang in (None, "", "und") else lang


# Decoder names that differ from their codec's name (for PyAV without canonical_name).
_DECODER_ALIASES = {"srt": "subrip", "ssa": "ass", "libdav1d": "av1", "libaom-av1": "av1"}


def _codec_name(stream) -> str:
    """The codec's own name ("subrip", "av1"), not the decoder's ("srt", "libdav1d")."""
    cc = stream.codec_context
    if cc is None:
        return "unknown"
    canonical = getattr(cc.codec, "canonical_name", None)
    return canonical or _DECODER_ALIASES.get(cc.name, cc.name)


def _stream_info(stream) -> StreamInfo:
    cc = stream.codec_context
    audio = stream.type == "audio"
    return StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=_codec_name(stream),
        language=_language(stream),
        channels=cc.channels if audio else None,
        sample_rate=cc.sample_rate if audio else None,
    )


def _parse_clock(text: str) -> float | None:
    # Matroska's DURATION tag: "HH:MM:SS.nnnnnnnnn".
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", text.strip())
    return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def _stream_duration(container, stream) -> float | None:
    """Seconds of the video stream itself (not the longest stream), when stated.

    A Matroska track's DURATION tag comes first: FFmpeg fills a stream's
    own duration with the file's when the container states none, so an MKV
    whose audio or subtitles outlast the picture would look truncated.
    FFmpeg writes that tag as the time the track ends, so a track that
    starts late (a recording colored from its first keyframe) lasts that
    less; read_frames' times count from the track's start too.
    """
    for key, value in stream.metadata.items():
        if key.upper().startswith("DURATION"):
            seconds = _parse_clock(value)
            if seconds:
                start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
                return seconds - start if 0 < start < seconds else seconds
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _stated_frames(container, stream, path: Path) -> int:
    """Frame count the container states: the sample count, or mkvmerge's statistics tag.

    An AVI states its length in frame periods, empty (dropped) ones
    included: a capture that dropped frames, or one whose start was moved
    for its sound, states more frames than it holds, so its count is not used.
    An MP4's or MOV's sample count includes the frames its edit list hides:
    a file cut without re-encoding (ffmpeg -ss -c copy, an editor's
    export) keeps the frames before the cut that its first keyframe needs.
    """
    if stream.frames > 0 and container.format.name != "avi":
        if "mov" in container.format.name.split(","):
            return stream.frames - _hidden_leading_frames(path, stream.index)
        return stream.frames
    for key, value in stream.metadata.items():
        if key.upper().startswith("NUMBER_OF_FRAMES") and value.strip().isdigit():
            return int(value)
    return 0


# An MP4's hidden frames come before its cut, in decode order too but for
# B-frames stored after the first shown frame they precede: after this many
# shown packets in a row (more than any decoder reorders) there are no more.
_SHOWN_RUN_AFTER_CUT = 32


def _hidden_leading_frames(path: Path, index: int) -> int:
    """Video packets at the start of an MP4 that FFmpeg marks to be decoded but not shown."""
    hidden = shown_run = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams[index]):
                if not packet.size:
                    continue
                if packet.is_discard:
                    hidden, shown_run = hidden + 1, 0
                else:
                    shown_run += 1
                    if shown_run >= _SHOWN_RUN_AFTER_CUT:
                        break
    except av.error.FFmpegError:
        pass  # damaged: the count stands, and decoding will tell
    return hidden


# The rates cameras, film transfers and broadcasts use: a rate measured from
# millisecond timestamps is taken as the one it is this close to.
_COMMON_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                            "60000/1001", "60", "100", "120"))
_COMMON_RATE_TOLERANCE = 0.005
# A stated rate this many times off the frames' own rate is not the video's.
_IMPLAUSIBLE_RATE_FACTOR = 4
# Packets whose timestamps measure the frames' own rate.
_RATE_PACKETS = 64


def _frame_rate(stream, path: Path | None = None) -> Fraction:
    """The video's frame rate: the one its header states, unless the first
    frames' timestamps (read from `path`) show it is not.

    Headers can be far off: a Matroska file remuxed by a script may state
    30000 frames/s (its DefaultDuration written from a time base) for
    frames 33 ms apart. Players go by the timestamps; taking the header at
    its word would call such a file truncated and write that rate on.
    """
    stated = [Fraction(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r]
    measured = _packet_rate(path, stream.index) if path is not None else None
    if not measured:
        return stated[0] if stated else Fraction(0)
    plausible = [r for r in stated if 1 / _IMPLAUSIBLE_RATE_FACTOR < r / measured < _IMPLAUSIBLE_RATE_FACTOR]
    if plausible and plausible[0] == stated[0]:
        return stated[0]
    # FFmpeg's guess from the first timestamps (a millisecond time base makes
    # it 359/12 for 29.97), else the timestamps' own rate, as the rate it is near.
    rate = plausible[0] if plausible else measured
    nearest = min(_COMMON_RATES, key=lambda common: abs(common / rate - 1))
    return nearest if abs(nearest / rate - 1) <= _COMMON_RATE_TOLERANCE else rate.limit_denominator(1001)


def _packet_rate(path: Path, index: int) -> Fraction | None:
    """Frames per second over the first _RATE_PACKETS timestamped packets of stream `index`."""
    times = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams[index]
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    times.append(packet.pts)
                    if len(times) == _RATE_PACKETS:
                        break
            span = (max(times) - min(times)) * stream.time_base if len(times) > 1 else 0
    except av.error.FFmpegError:
        return None  # damaged: the header stands, and decoding will tell
    return Fraction(len(times) - 1) / Fraction(span) if span > 0 else None


def display_rotation(matrix) -> int:
    """A display matrix's rotation in whole degrees counter-clockwise, in (-180, 180], as
    FFmpeg's av_display_rotation_get reads it (its scale and any mirroring aside)."""
    if matrix is None:
        return 0
    scale_x, scale_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if not scale_x or not scale_y:  # singular: nothing to turn by
        return 0
    degrees = -math.degrees(math.atan2(matrix[1] / scale_y, matrix[0] / scale_x))
    degrees = round(degrees)
    return 180 if degrees == -180 else degrees


def quarter_turns(rotation: int) -> int:
    """Quarter turns counter-clockwise (0-3) that stand a picture up, from the
    rotation players apply (VideoInfo.rotation); 0 for angles that are not quarter turns."""
    return (rotation // 90) % 4 if rotation % 90 == 0 else 0


def _rotation_matrix(rotation: int) -> tuple[int, ...]:
    """The display matrix of a pure counter-clockwise rotation (16.16 fixed point, w in 2.30)."""
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return (round(c * 65536), round(-s * 65536), 0, round(s * 65536), round(c * 65536), 0, 0, 0, 1 << 30)


def _display_matrix(container, stream) -> tuple[int, ...] | None:
    """The display matrix that decoded frames carry (FFmpeg puts the stream's on each).

    PyAV reads it only from frames, so this decodes the first one; a file
    that cannot decode has none here and fails later, where it is read.
    """
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return None
    if frame is None:
        return None
    try:
        for side_data in frame.side_data:
            if side_data.type.name == "DISPLAYMATRIX" and len(bytes(side_data)) == 36:
                return tuple(int(x) for x in np.frombuffer(bytes(side_data), np.int32))
        return None
    except ValueError:
        # Side data newer than this PyAV's list (an MJPEG frame's EXIF, say)
        # stops it listing any; .rotation still reads the matrix, flips aside.
        rotation = round(frame.rotation) if math.isfinite(frame.rotation) else 0
        return _rotation_matrix(rotation) if rotation else None


def probe(path) -> VideoInfo:
    """Describe a video file, decoding at most its first frame (for the display matrix).

    The frame count is exact when the container states it (MP4/MOV sample
    tables, mkvmerge's NUMBER_OF_FRAMES tag) or, for files up to
    COUNT_PACKETS_MAX_BYTES, by counting the video packets; otherwise it is
    duration * frame rate and `frame_count_exact` is False.
    """
    path = _check_input_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        duration = _stream_duration(container, stream)
        frames, exact = _stated_frames(container, stream, path), True
        if frames <= 0 and path.stat().st_size <= COUNT_PACKETS_MAX_BYTES:
            frames = _count_packets(container, stream)
        fps = _frame_rate(stream, path)
        if frames <= 0:
            frames, exact = round((duration or 0.0) * fps), False
        if duration is None:
            duration = float(frames / fps) if fps else 0.0
        cc = stream.codec_context
        return VideoInfo(
            path=str(path),
            width=cc.width,
            height=cc.height,
            frame_count=int(frames),
            frame_count_exact=exact,
            fps=fps,
            time_base=Fraction(stream.time_base),
            duration=float(duration),
            codec=_codec_name(stream),
            pix_fmt=cc.pix_fmt or "unknown",
            audio=tuple(_stream_info(s) for s in container.streams.audio),
            subtitles=tuple(_stream_info(s) for s in container.streams.subtitles),
            color_range=int(getattr(cc, "color_range", 0) or 0),
            display_matrix=_first_display_matrix(path),
            sample_aspect_ratio=_sample_aspect_ratio(stream),
        )


def _sample_aspect_ratio(stream) -> Fraction | None:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


def _first_display_matrix(path: Path) -> tuple[int, ...] | None:
    with _open_input(path) as container:  # a fresh read: probing may have demuxed to the end
        return _display_matrix(container, _video_stream(container, path))


def _count_packets(container, stream) -> int:
    try:
        return sum(1 for p in container.demux(stream) if p.size > 0)
    except av.error.FFmpegError:
        return 0  # damaged: fall back to the estimate


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}"


def _format_rate(fps: Fraction) -> str:
    if fps.denominator == 1:
        return f"{fps.numerator} fps"
    return f"{float(fps):.3f} fps ({fps.numerator}/{fps.denominator})"


def _describe_stream(s: StreamInfo) -> str:
    parts = [f"#{s.index}", s.codec]
    if s.sample_rate:
        parts.append(f"{s.sample_rate} Hz")
    if s.channels:
        parts.append(f"{s.channels} ch")
    if s.language:
        parts.append(f"[{s.language}]")
    return " ".join(parts)


def _describe_sar(info: VideoInfo) -> str:
    sar = info.sample_aspect_ratio
    return f"{sar.numerator}:{sar.denominator} (shown {round(info.width * sar)} x {info.height})"


def describe(info: VideoInfo) -> list[tuple[str, str]]:
    """(label, value) rows for a human-readable table of `info`."""
    frames = str(info.frame_count) if info.frame_count_exact else f"~{info.frame_count} (estimated)"
    return [
        ("file", info.path),
        ("size", f"{info.width} x {info.height}"),
        ("frames", frames),
        ("frame rate", _format_rate(info.fps)),
        ("duration", f"{_format_seconds(info.duration)} ({info.duration:.3f} s)"),
        ("codec", f"{info.codec} ({info.pix_fmt}{', full range' if info.full_range else ''})"),
        ("time base", f"{info.time_base.numerator}/{info.time_base.denominator}"),
        *([("display", f"rotated {info.rotation} degrees counter-clockwise")] if info.rotation else []),
        *([("pixel aspect", _describe_sar(info))] if info.sample_aspect_ratio else []),
        ("audio", ", ".join(map(_describe_stream, info.audio)) or "none"),
        ("subtitles", ", ".join(map(_describe_stream, info.subtitles)) or "none"),
    ]


# ---------------------------------------------------------------------------
# Images


def is_image_path(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: Path):
    # frame_2 before frame_10, as a person numbering files expects.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder) -> list[Path]:
    """Image files in `folder` (not recursive, hidden files skipped), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no such folder: {folder}")
    files = [p for p in folder.iterdir() if p.is_file() and is_image_path(p) and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _decode_image(path: Path):
    path = _check_input_file(path)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame
    except (av.error.FFmpegError, IndexError):
        pass
    raise InputError(f"not an image file (or damaged): {path}")


def _upright(frame, fmt: str, size, short_side, pixel_aspect: Fraction | None = None) -> np.ndarray:
    """A picture as players and viewers show it: widened (or narrowed) by its
    pixels' aspect, then turned as its display matrix or EXIF orientation says
    (FFmpeg reports both as the frame's rotation; a mirror is not undone).
    "luma" stays as stored: it is the plane re-encoded.

    Image outputs carry no EXIF, and the network learned upright pictures,
    so colorized photos and training crops stand up in the pixels themselves.
    """
    if fmt in _LUMA_READS:
        return _convert(frame, fmt, size, short_side)
    rotation = frame.rotation  # NaN for a singular matrix
    turns = quarter_turns(round(rotation)) if math.isfinite(rotation) else 0
    if turns % 2 and size is not None:
        size = (size[1], size[0])
    shown_width = max(1, round(frame.width * pixel_aspect)) if pixel_aspect else None
    return np.ascontiguousarray(np.rot90(_convert(frame, fmt, size, short_side, shown_width), turns))


def read_image(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file as viewers show it (alpha dropped, EXIF turns applied)."""
    return _upright(_decode_image(Path(path)), "rgb24", None, None)


class Photo(NamedTuple):
    """A still image as viewers show it, at the depth its file has."""

    rgb: np.ndarray  # (H, W, 3): uint8, or uint16 where the file has more than 8 bits a channel
    alpha: np.ndarray | None  # (H, W) of the same type; None where every pixel is opaque


# The numpy layout of a picture per (16 bits a channel, alpha).
_ARRAY_FORMATS = {(False, False): "rgb24", (False, True): "rgba", (True, False): "rgb48le", (True, True): "rgba64le"}


def read_photo(path) -> Photo:
    """An image file's RGB and transparency, 16 bits a channel where it has
    more than 8 (scans of old photos often do), EXIF turns applied."""
    frame = _decode_image(Path(path))
    components = frame.format.components
    deep = max(c.bits for c in components) > 8
    # A palette may hold transparent entries without an alpha component.
    translucent = frame.format.has_palette or any(c.is_alpha for c in components)
    pixels = _upright(frame, _ARRAY_FORMATS[deep, translucent], None, None)
    if not translucent:
        return Photo(pixels, None)
    alpha = pixels[..., 3]
    opaque = np.iinfo(alpha.dtype).max
    return Photo(np.ascontiguousarray(pixels[..., :3]), None if (alpha == opaque).all() else alpha.copy())


# Each image type's encoder and, per (16 bits a channel, alpha), the pixel
# format it writes; a picture a type cannot hold is written as near as it can.
_IMAGE_CODECS = {
    ".png": ("png", {(False, False): "rgb24", (False, True): "rgba",
                     (True, False): "rgb48be", (True, True): "rgba64be"}),
    ".tif": ("tiff", {(False, False): "rgb24", (False, True): "rgba",
                      (True, False): "rgb48le", (True, True): "rgba64le"}),
    ".jpg": ("mjpeg", {(False, False): "yuvj444p"}),
    ".bmp": ("bmp", {(False, False): "bgr24"}),
    ".webp": ("libwebp", {(False, False): "yuv420p", (False, True): "yuva420p"}),
}
_IMAGE_CODECS[".tiff"] = _IMAGE_CODECS[".tif"]
_IMAGE_CODECS[".jpeg"] = _IMAGE_CODECS[".jpg"]
# Text subtitle codecs, which FFmpeg converts among, and the one each
# container type that holds none of the others takes.
_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
_TEXT_SUBTITLE_CODECS = {"mp4": "mov_text", "mov": "mov_text", "3gp": "mov_text", "ipod": "mov_text",
                         "webm": "webvtt"}
# The codecs FFmpeg's MPEG-TS muxer gives a stream type (or a registration
# descriptor) that its demuxer reads back: video, and the broadcast audio and
# subtitle codecs. Anything else (PCM, FLAC, text subtitles) it writes as
# private data, which comes back as an unknown data stream.
_MPEGTS_TYPED = frozenset({
    "mpeg1video", "mpeg2video", "mpeg4", "h264", "libx264", "hevc", "libx265", "vc1", "dirac",
    "mp2", "mp3", "libmp3lame", "aac", "aac_latm", "ac3", "eac3", "dts", "dca", "opus", "libopus",
    "s302m", "dvb_subtitle", "dvb_teletext",
})
# Lossy image encoders' quality. Their defaults aim at a bit rate, not at a
# photo: mjpeg's gave 20 corpus photos back with a mean error of 3.6 codes
# at a third of their size; at quantizer 2 (ffmpeg's -q:v 2) 1.8, at three
# quarters. WebP's quality 75 gave one of them 3.5, 90 gives 2.7.
_IMAGE_OPTIONS = {"mjpeg": {"qmin": "2", "qmax": "2"}, "libwebp": {"quality": "90"}}


def write_image(path, rgb: np.ndarray, *, overwrite: bool = True) -> None:
    """Write an (H, W, 3) uint8 RGB image; the format follows the suffix. Atomic."""
    write_photo(path, Photo(_as_rgb(rgb), None), overwrite=overwrite)


def write_photo(path, photo: Photo, *, overwrite: bool = True) -> None:
    """Write a Photo, keeping its depth and transparency where the suffix's
    format holds them (PNG, TIFF; WebP holds transparency), with a warning
    where it does not. Atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _IMAGE_CODECS:
        raise OutputError(f"cannot write {path}: unknown image type {suffix!r} (use .png or .jpg)")
    check_output_path(path, overwrite=overwrite)
    codec, pix_fmts = _IMAGE_CODECS[suffix]
    rgb, alpha = _checked_photo(photo)
    deep = rgb.dtype == np.uint16
    if (deep, alpha is not None) not in pix_fmts and deep:
        warnings.warn(f"{path} holds 8 bits a channel: the 16-bit picture is rounded", VideoWarning, stacklevel=2)
        rgb = _to_8_bits(rgb)
        alpha = None if alpha is None else _to_8_bits(alpha)
        deep = False
    if alpha is not None and (deep, True) not in pix_fmts:
        warnings.warn(f"{path} cannot hold transparency: it is dropped", VideoWarning, stacklevel=2)
        alpha = None
    pixels = rgb if alpha is None else np.ascontiguousarray(np.dstack([rgb, alpha]))
    frame = av.VideoFrame.from_ndarray(pixels, format=_ARRAY_FORMATS[deep, alpha is not None])
    tmp = _temp_path(path)
    try:
        with _write_errors(path):
            with av.open(str(tmp), "w", format="image2", options={"update": "1"}) as out:
                stream = out.add_stream(codec, rate=1)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = pix_fmts[deep, alpha is not None]
                stream.options = _IMAGE_OPTIONS.get(codec, {})
                for packet in stream.encode(frame):
                    out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _to_8_bits(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _checked_photo(photo: Photo) -> tuple[np.ndarray, np.ndarray | None]:
    rgb, alpha = np.asarray(photo.rgb), photo.alpha
    if rgb.dtype not in (np.uint8, np.uint16) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 or uint16 RGB array, got {rgb.dtype} {rgb.shape}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.dtype != rgb.dtype or alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha {alpha.dtype} {alpha.shape} does not match RGB {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb), alpha


def _as_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


# ---------------------------------------------------------------------------
# Reading


@dataclass
class Frame:
    image: np.ndarray
    pts: int | None  # in the stream's time_base; the image index for image sources
    time: float | None  # seconds from the start of the stream; None for image folders
    index: int  # position in the source, counted from the first frame at or after `start`


def _output_size(width, height, size, short_side) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    if short_side is not None:
        scale = short_side / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def _plane(frame, i: int, dtype=np.uint8) -> np.ndarray:
    """Plane `i` as (h, w) of `dtype` samples, dropping the padding at the end of each line."""
    return _plane_view(frame.planes[i], dtype).copy()


def _plane_view(plane, dtype=np.uint8) -> np.ndarray:
    """The (h, w) samples of a plane, in place (writable where the frame is)."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width]


def _convert(frame, fmt: str, size, short_side, shown_width: int | None = None) -> np.ndarray:
    w, h = _output_size(shown_width or frame.width, frame.height, size, short_side)
    resize = (w, h) != (frame.width, frame.height)
    # AREA averages when shrinking (no aliasing in training crops).
    interp = ("AREA" if w * h < frame.width * frame.height else "BICUBIC") if resize else None
    if fmt in _LUMA_READS:
        native, fallback, dtype = _LUMA_READS[fmt]
        name = frame.format.name
        if name not in native or resize:
            frame = frame.reformat(width=w, height=h, format=name if name in native else fallback,
                                   interpolation=interp)
        return _plane(frame, 0, dtype)
    # Recent PyAV passes the frame's colour range (full/limited) on to swscale itself.
    return frame.to_ndarray(width=w, height=h, format=fmt, interpolation=interp)


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
    their precision; others are converted).
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
    with _open_input(path) as container:
        _video_stream(container, path)
    return _video_frames(path, size, short_side, format, int(every), start, end, max_frames)


def _image_frames(images, size, short_side, fmt, every, max_frames) -> Iterator[Frame]:
    selected = images[::every][:max_frames]
    for k, image_path in enumerate(selected):
        index = k * every
        yield Frame(_upright(_decode_image(image_path), fmt, size, short_side), index, None, index)


def _video_frames(path, size, short_side, fmt, every, start, end, max_frames) -> Iterator[Frame]:
    if max_frames == 0:
        return
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        pixel_aspect = _sample_aspect_ratio(stream)
        tb = Fraction(stream.time_base) if stream.time_base else None
        t0 = stream.start_time or 0
        if start is not None and start > 0 and tb:
            # Seek lands on the keyframe at or before `start`; the frames
            # between it and `start` are decoded and dropped below.
            container.seek(t0 + math.floor(start / tb), stream=stream)
        decoded = kept = yielded = 0
        last_time = None
        error = None
        first_size, size_changed = None, False
        window = _REORDER_WINDOW if container.format.name in _NO_PRESENTATION_TIMES else 0
        frames = _display_ordered(container.decode(stream), window)
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
            yield Frame(_upright(frame, fmt, size, short_side, pixel_aspect), frame.pts, time, index)
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return
        _report_end(path, container, stream, error, decoded, kept, last_time,
                    whole=start is None and end is None)
    finally:
        container.close()


# How many frames a decoder may hold back to reorder them: H.264's and
# HEVC's picture buffers hold at most 16.
_REORDER_WINDOW = 16
# Containers that store no presentation times, only the order of the packets.
_NO_PRESENTATION_TIMES = frozenset({"avi", "asf"})


def _display_ordered(frames: Iterator, window: int) -> Iterator:
    """Decoded frames (in display order) with their pts in display order too.

    AVI and ASF store no presentation times: FFmpeg stamps each packet with
    its place in the file, so the B-frames of an XviD AVI, or of any AVI or
    WMV with H.264, come out of the decoder with their stamps out of order
    (1, 3, 4, 2, ...). The stamps themselves are right; they belong to the
    frames in sorted order. So each frame takes the smallest stamp among
    itself and the next `window` frames (_REORDER_WINDOW for those
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


def _report_end(path, container, stream, error, decoded, kept, last_time, whole):
    """After the last frame: fail if nothing decoded, warn if the file ended early."""
    if decoded == 0 and (error is not None or whole):
        reason = f" ({getattr(error, 'strerror', None) or error})" if error is not None else ""
        raise InputError(f"no frames could be decoded from {path}{reason}")
    if error is not None:
        warnings.warn(f"{path}: decoding stopped early ({getattr(error, 'strerror', None) or error}); "
                      f"read {kept} frames", VideoWarning, stacklevel=3)
        return
    if not whole:
        return
    stated = _stated_frames(container, stream, path)
    if stated and decoded < stated:
        warnings.warn(f"{path} is truncated or damaged: read {decoded} of {stated} frames",
                      VideoWarning, stacklevel=3)
        return
    duration = _stream_duration(container, stream)
    fps = _frame_rate(stream, path)
    if not stated and duration and fps and last_time is not None:
        # No frame count in the container: compare how far we got with its duration.
        if last_time + 2 / fps < duration:
            warnings.warn(f"{path} is truncated or damaged: read {decoded} frames "
                          f"({last_time:.2f} s of {duration:.2f} s)", VideoWarning, stacklevel=3)


# ---------------------------------------------------------------------------
# Writing


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output_path(output, inputs: Iterable = (), overwrite: bool = False) -> None:
    """Raise OutputError if `output` cannot or must not be written."""
    output = Path(output)
    for source in inputs:
        if source is not None and _same_file(output, Path(source)):
            raise OutputError(f"output {output} is the same file as input {source}")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder, expected a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"output already exists: {output} (use --overwrite to replace it)")


def _temp_path(path: Path) -> Path:
    # Same folder, so os.replace is an atomic rename; same suffix, so the
    # muxer is chosen as for the final name.
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _fraction(x) -> Fraction:
    if isinstance(x, float):
        return Fraction(x).limit_denominator(1_000_000)
    return Fraction(x)


# FFmpeg's AVColorSpace numbers of the Y'CbCr matrices framecolor writes
# (PyAV >= 15 takes them on frames and codec contexts; older PyAV writes untagged).
_COLORSPACES = {None: None, "bt709": 1, "bt601": 6}


# Tags a muxer or mkvmerge writes about the file itself: copied, they would
# describe the source's encoding (its bitrate, its byte count), not ours.
_WRITER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name",
                          "vendor_id", "duration", "bps", "number_of_frames", "number_of_bytes",
                          "_statistics_writing_app", "_statistics_writing_date_utc", "_statistics_tags"})


def _user_tags(tags) -> dict[str, str]:
    """`tags` less those the writer of a file sets (mkvmerge's carry a language: BPS-eng)."""
    return {k: v for k, v in tags.items() if k.lower().split("-")[0] not in _WRITER_TAGS}


# What a full disk, a quota or a failing drive raises while a file is written.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


@contextlib.contextmanager
def _write_errors(path: Path):
    """A disk that fills up mid-file is the user's to fix: an OutputError (one
    line from the command line), not a traceback. The caller removes the
    partial file, as for any other error."""
    try:
        yield
    except OSError as e:  # PyAV's errors with an errno are OSErrors too
        if e.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(f"cannot write {path}: {e.strerror or os.strerror(e.errno)}") from None


class VideoWriter:
    """Encode frames to `path`, keeping their pts, optionally copying audio and subtitles.

    Use as a context manager. The file is written as `.<stem>.partial<suffix>`
    next to `path` and renamed over it only when the `with` block ends without
    an exception; on an exception the partial file is removed.

    `codec` None means DEFAULT_ENCODER, or the container's own where it
    cannot hold that (VP9 for .webm); `.codec` is the one used. `pix_fmt`
    is the requested format; `.pix_fmt` is the one used (yuv420p
    falls back to yuv444p for odd sizes), and `.chroma_shape` the (h, w) that
    `write_yuv` expects for u and v. `display_matrix` and
    `sample_aspect_ratio` (VideoInfo's) tell players to turn and stretch the
    picture as they did the source's. `copy_streams_from` copies a source's
    audio and subtitle streams, its chapters, and its tags: the file's
    (title, date, ...) and its video stream's (language, a timecode), as
    ffmpeg does by default. Audio the container cannot hold as it is gets
    re-encoded in the container's own audio codec, as ffmpeg does too.
    `excerpt` True writes a part of the source: every stream is shifted so
    that the first frame written is at 0, and the copied ones are cut to
    the frames' span (chapters are not copied).
    """

    def __init__(
        self,
        path,
        *,
        width: int,
        height: int,
        fps,
        time_base,
        codec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str = "yuv420p",
        copy_streams_from=None,
        excerpt: bool = False,
        overwrite: bool = False,
        inputs: Iterable = (),
        matrix: str | None = None,
        full_range: bool = False,
        display_matrix: Iterable[int] | None = None,
        sample_aspect_ratio=None,
    ):
        self.path = Path(path)
        self._colorspace = _COLORSPACES[matrix]
        check_output_path(self.path, [*inputs, copy_streams_from], overwrite)
        self.width, self.height = int(width), int(height)
        self.fps = _fraction(fps)
        self.time_base = _fraction(time_base)
        self.full_range = full_range or pix_fmt.startswith("yuvj")
        self._sample_aspect_ratio = _fraction(sample_aspect_ratio) if sample_aspect_ratio else None
        self.frames_written = 0
        self._last_pts = None
        self._source = None
        self._copy = {}  # source stream index -> output stream, packets copied as they are
        self._reencode = {}  # source stream index -> (source stream, output stream), decoded and encoded anew
        self._pending = None
        self._excerpt = excerpt
        self._start_pts = None  # the first frame's pts: where an excerpt's timeline starts
        self._tmp = _temp_path(self.path)
        try:
            self._out = av.open(str(self._tmp), "w")
        except ValueError:
            kind = f"unknown container type {self.path.suffix!r}" if self.path.suffix else "no suffix to name its type"
            raise OutputError(f"cannot write {self.path}: {kind} (.mp4 and .mkv keep the luma)") from None
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot write {self.path}: {e}") from None
        # AVI has no timestamps, only a frame rate: a finer time base (an MP4's
        # 1/30000) would index every tick as a dropped frame, so frames are
        # counted at 1/fps there and the callers' pts are rescaled onto it.
        cfr = self._out.format.name == "avi" and self.fps > 0
        self._stream_time_base = 1 / self.fps if cfr else self.time_base
        self._last_stream_pts = None
        try:
            self.codec = codec or self._default_codec()
            if preset is not None and self.codec not in _PRESET_CODECS:
                warnings.warn(f"{self.codec} has no presets: preset {preset} is ignored", VideoWarning, stacklevel=2)
            self.pix_fmt = self._choose_pix_fmt(self.codec, pix_fmt.replace("yuvj", "yuv", 1))
            if not self._holds_video(self.codec):
                raise OutputError(f"a {self.path.suffix} file cannot hold {self.codec} video; "
                                  "choose another suffix or --codec")
            self._stream = self._add_video_stream(self.codec, crf, preset)
            if display_matrix is not None:
                # Players turn the picture as they did the source's: without
                # it a phone's portrait video would play sideways.
                self._stream.set_display_matrix([int(x) for x in display_matrix])
            if copy_streams_from is not None:
                self._add_copied_streams(Path(copy_streams_from))
        except BaseException:
            self._abort()
            raise

    @classmethod
    def like(cls, path, info: VideoInfo, **options) -> "VideoWriter":
        """A writer for `path` shaped as `info`'s video: its size, timing, range,
        display matrix and pixel aspect, all an output needs to play as its source did."""
        return cls(path, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                   full_range=info.full_range, display_matrix=info.display_matrix,
                   sample_aspect_ratio=info.sample_aspect_ratio, **options)

    # -- setup

    def _choose_pix_fmt(self, codec: str, pix_fmt: str) -> str:
        supported = {f.name for f in _encoder(codec).video_formats or ()}
        if (self.width % 2 or self.height % 2) and pix_fmt in _ODD_SIZE_FALLBACK:
            fallback = _ODD_SIZE_FALLBACK[pix_fmt]
            if supported and fallback not in supported:
                raise OutputError(f"{codec} cannot encode the odd size {self.width}x{self.height} "
                                  f"({pix_fmt} needs an even width and height)")
            warnings.warn(f"{self.width}x{self.height} is odd, which {pix_fmt} cannot hold: "
                          f"writing {self.path} as {fallback}", VideoWarning, stacklevel=3)
            pix_fmt = fallback
        full = pix_fmt.replace("yuv", "yuvj", 1)
        if self.full_range and full in _JPEG_FORMATS and (not supported or full in supported):
            return full  # the range is in the format itself, which every player honours
        if supported and pix_fmt not in supported:
            raise OutputError(f"{codec} cannot encode {pix_fmt} (it can: {', '.join(sorted(supported))})")
        return pix_fmt

    def _holds(self, names, add_stream) -> bool:
        """Can this file's container hold a stream of one of these codec `names`?

        FFmpeg's codec query cannot tell: it says "unknown" for everything
        MPEG-TS holds, H.264 and AAC included (PyAV counts that as no), and
        yes where the muxer then refuses the stream (MOV takes Opus and FLAC
        only in its MP4 form; FLV takes PCM at 44.1 kHz, not at 48). So the
        answer is writing a header with `add_stream(container)` to memory.
        MPEG-TS writes a header with any stream, but one it has no stream
        type for goes out as private data that no demuxer reads back.
        """
        if self._out.format.name == "mpegts" and not set(names) & _MPEGTS_TYPED:
            return False
        return self._header_writes(add_stream)

    def _header_writes(self, add_stream) -> bool:
        """Does a file of this container type, with the stream `add_stream(container)`
        adds, get as far as its header? That opens encoders, so it also tells
        whether an encoder takes its settings (mp2 refuses 5.1 sound)."""
        try:
            with av.open(io.BytesIO(), "w", format=self._out.format.name) as trial:
                add_stream(trial)
                trial.start_encoding()
            return True
        except (av.error.FFmpegError, ValueError):
            return False

    def _holds_video(self, codec: str) -> bool:
        def add(container):
            stream = container.add_stream(codec, rate=25)
            stream.width = stream.height = 64

        return self._holds({codec, _encoder(codec).name}, add)

    def _default_codec(self) -> str:
        """DEFAULT_ENCODER, whose settings keep the luma, where the container
        holds it; else the container's own video encoder (VP9 for WebM), as
        ffmpeg picks one, if it has a constant-quality mode here (_CRF_RANGES).
        Others (GIF's palette, Ogg's VP8 at its 256 kb/s default) would make
        a worse file than the error that names the problem."""
        if self._holds_video(DEFAULT_ENCODER):
            return DEFAULT_ENCODER
        try:
            codec = av.Codec(self._out.default_video_codec, "w").name
        except (av.error.FFmpegError, ValueError, AttributeError):  # not in this FFmpeg
            return DEFAULT_ENCODER
        if codec not in _CRF_CODECS:
            return DEFAULT_ENCODER
        warnings.warn(f"a {self.path.suffix} file cannot hold H.264: writing {self.path} with {codec}, "
                      "which does not keep the luma as exactly (.mp4 or .mkv do)", VideoWarning, stacklevel=4)
        return codec

    def _add_video_stream(self, codec, crf, preset):
        stream = self._out.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        # The encoder and the stream count in the caller's time base (AVI's: 1/fps,
        # see __init__), so pts go through unchanged (the muxer may refine the
        # stream's base, e.g. MKV's 1/1000).
        stream.time_base = self._stream_time_base
        stream.codec_context.time_base = self._stream_time_base
        stream.options = encoder_options(codec, crf, preset)
        if self._sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = self._sample_aspect_ratio
        # PyAV opens encoders with slice threads only, which makes x264 run in
        # its sliced-thread mode: lower latency, far lower throughput on many
        # cores. Files are not live streams, so let the encoder thread across frames.
        stream.codec_context.thread_type = "AUTO"
        if self._colorspace is not None and hasattr(stream.codec_context, "colorspace"):
            # Players must decode the chroma with the matrix it was made with.
            stream.codec_context.colorspace = self._colorspace
        if self._range_flag is not None:
            stream.codec_context.color_range = self._range_flag
        _open_encoder(stream.codec_context, codec, crf, preset)  # bad options fail here, not mid-video
        return stream

    def _add_copied_streams(self, source: Path):
        self._source = _open_input(_check_input_file(source))
        self._out.metadata.update(_user_tags(self._source.metadata))
        chapters = self._source.chapters()
        if chapters and not self._excerpt:
            self._out.set_chapters(chapters)
        self._stream.metadata.update(_user_tags(_video_stream(self._source, source).metadata))
        self._add_attachments(source)
        for stream in [*self._source.streams.audio, *self._source.streams.subtitles]:
            codec = _codec_name(stream)
            names = {codec, stream.codec_context.name if stream.codec_context is not None else codec}
            if self._holds_copy(stream, names):
                copy = self._out.add_stream_from_template(stream)
                self._copy[stream.index] = copy
            elif (copy := self._add_reencoded_audio(stream) or self._add_converted_subtitles(stream)) is not None:
                warnings.warn(f"re-encoding {stream.type} stream #{stream.index} ({codec}) of {source} as "
                              f"{copy.codec_context.name}: a {self.path.suffix} file cannot hold {codec}",
                              VideoWarning, stacklevel=3)
                self._reencode[stream.index] = (stream, copy)
            else:
                warnings.warn(f"skipping {stream.type} stream #{stream.index} ({codec}) of {source}: "
                              f"a {self.path.suffix} file cannot hold it", VideoWarning, stacklevel=3)
                continue
            copy.metadata.update(_user_tags(stream.metadata))  # language and title tell tracks apart
            copy.disposition = stream.disposition  # which track players pick by default
        if self._copy or self._reencode:
            self._packets = self._source.demux(*self._copied_sources())
        else:
            self._source.close()
            self._source = None

    def _add_attachments(self, source: Path) -> None:
        """The files a Matroska source carries (the fonts its ASS subtitles are
        drawn in, a cover picture), where this container holds them: only
        Matroska does (WebM's muxer takes them and writes nothing)."""
        attachments = [a for a in self._source.streams.attachments if a.name and a.mimetype and a.data]
        if attachments and self._out.format.name != "matroska":
            warnings.warn(f"skipping {len(attachments)} attached file(s) of {source} "
                          f"({', '.join(a.name for a in attachments)}): a {self.path.suffix} file cannot hold them",
                          VideoWarning, stacklevel=4)
            return
        for attachment in attachments:
            self._out.add_attachment(attachment.name, attachment.mimetype, bytes(attachment.data))

    def _copied_sources(self) -> list:
        return [s for s in self._source.streams if s.index in self._copy or s.index in self._reencode]

    def _holds_copy(self, stream, names) -> bool:
        return self._holds(names, lambda container: container.add_stream_from_template(stream))

    def _add_reencoded_audio(self, stream):
        """A stream in this container's own audio codec for the sound of
        `stream`, which it cannot hold as it is (AAC in MPEG-PS or WebM), or
        None. A video's sound matters more than its bits, so it is re-encoded
        as ffmpeg does: the source's rate and channels where the encoder takes
        them, else the nearest rate it takes, and stereo or mono."""
        name = getattr(self._out, "default_audio_codec", None)
        if stream.type != "audio" or name in (None, "none") or stream.codec_context is None:
            return None
        try:
            rates = av.Codec(name, "w").audio_rates
        except (av.error.FFmpegError, ValueError):  # the container's usual encoder is not in this FFmpeg
            return None
        rate = stream.rate
        if rates and rate not in rates:
            rate = min((r for r in rates if r >= rate), default=max(rates))
        for layout in dict.fromkeys([stream.layout.name, "stereo", "mono"]):
            def add(container, layout=layout):
                return container.add_stream(name, rate=rate, layout=layout)

            if self._header_writes(add):
                return add(self._out)
        return None

    def _add_converted_subtitles(self, stream):
        """A text subtitle stream in the codec this container takes (MP4's
        mov_text, WebM's WebVTT) for the text subtitles of `stream` (SRT or
        ASS from an MKV), or None. FFmpeg converts text subtitles through
        ASS events, so the words and their times survive; styling may not."""
        target = _TEXT_SUBTITLE_CODECS.get(self._out.format.name)
        if stream.type != "subtitle" or target is None or _codec_name(stream) not in _TEXT_SUBTITLES:
            return None
        decoder = stream.codec_context
        try:
            if not decoder.is_open:
                decoder.open()  # the decoder's ASS header is the encoder's style sheet
        except av.error.FFmpegError:
            return None

        def add(container):
            out = container.add_stream(target)
            out.codec_context.subtitle_header = decoder.subtitle_header
            out.codec_context.time_base = stream.time_base
            return out

        return add(self._out) if self._header_writes(add) else None

    @property
    def _range_flag(self) -> int | None:
        """A full-range yuv* format (this encoder has no yuvj* twin) carries the range as a flag."""
        return FULL_RANGE if self.full_range and not self.pix_fmt.startswith("yuvj") else None

    @property
    def chroma_shape(self) -> tuple[int, int]:
        if self.pix_fmt in _FULL_CHROMA_FORMATS:
            return self.height, self.width
        return (self.height + 1) // 2, (self.width + 1) // 2

    # -- writing

    def _next_pts(self, pts):
        if pts is None:  # next frame at the nominal rate
            step = max(1, round(1 / (self.fps * self.time_base))) if self.fps else 1
            pts = 0 if self._last_pts is None else self._last_pts + step
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        self._last_pts = pts
        return pts

    def _stream_pts(self, pts: int) -> int:
        """`pts` (in time_base) on the stream's time base, still increasing."""
        if self._stream_time_base == self.time_base:
            return pts
        ticks = round(pts * self.time_base / self._stream_time_base)
        if self._last_stream_pts is not None:
            ticks = max(ticks, self._last_stream_pts + 1)  # two frames closer than 1/fps (VFR)
        self._last_stream_pts = ticks
        return ticks

    def _encode(self, frame, pts):
        if self._colorspace is not None and hasattr(frame, "colorspace"):
            frame.colorspace = self._colorspace
        if self._range_flag is not None:
            frame.color_range = self._range_flag
        pts = self._next_pts(pts)
        if self._start_pts is None:
            self._start_pts = pts if self._excerpt else 0
            if self._excerpt:
                self._seek_copies(float(pts * self.time_base))
        self._mux_copies(until=float(pts * self.time_base))
        frame.pts = self._stream_pts(pts - self._start_pts)
        frame.time_base = self._stream_time_base
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.frames_written += 1

    def write_rgb(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame at `pts` (in `time_base`; None = next nominal)."""
        rgb = _as_rgb(rgb)
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, writer is {self.width}x{self.height}")
        with _write_errors(self.path):
            self._encode(av.VideoFrame.from_ndarray(rgb, format="rgb24"), pts)

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, pts: int | None = None) -> None:
        """Encode one frame from its planes as they are (y: (H, W), u, v: `.chroma_shape`;
        uint8, or uint16 10-bit codes for a 10-bit writer: `.sample_dtype`).

        No colour conversion happens, so the encoder sees exactly these Y codes.
        """
        if self.pix_fmt not in _WRITE_YUV_FORMATS:
            raise ValueError(f"write_yuv needs a yuv420p or yuv444p (or 10-bit) writer, this one is {self.pix_fmt}")
        dtype = self.sample_dtype
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        for plane, data, shape in zip(frame.planes, (y, u, v),
                                      ((self.height, self.width), self.chroma_shape, self.chroma_shape)):
            data = np.asarray(data)
            if data.dtype != dtype or data.shape != shape:
                raise ValueError(f"plane must be {shape} {np.dtype(dtype).name}, got {data.shape} {data.dtype}")
            _plane_view(plane, dtype)[:] = data  # straight into the frame's own buffer: no staging copy
        with _write_errors(self.path):
            self._encode(frame, pts)

    @property
    def sample_dtype(self):
        return np.uint16 if self.pix_fmt.endswith("10le") else np.uint8

    def _seek_copies(self, seconds: float) -> None:
        """Start the copied streams at a keyframe before `seconds` (an excerpt's start)."""
        if self._source is None:
            return
        self._source.seek(max(0, math.floor(seconds * av.time_base)), backward=True)
        for source, _ in self._reencode.values():
            source.codec_context.flush_buffers()
        self._packets = self._source.demux(*self._copied_sources())
        self._pending = None

    def _end_copies(self) -> None:
        self._flush_reencoded()
        self._source.close()
        self._source = None

    def _mux_copies(self, until: float | None):
        """Mux copied packets up to time `until` (all if None): keeps the file interleaved.

        An excerpt's packets that end before its first frame are dropped, and
        the rest move with the frames, by the first frame's time."""
        if self._source is None:
            return
        while True:
            packet = self._pending
            if packet is None:
                packet = next(self._packets, None)
                if packet is None:
                    self._end_copies()
                    return
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.dts is None:
                    if packet.pts is None:
                        continue  # no time at all: the muxer would reject it
                    packet.dts = packet.pts
            stamp = packet.dts if packet.dts is not None else packet.pts
            if until is not None and float(stamp * packet.time_base) > until:
                self._pending = packet
                return
            self._pending = None
            if self._excerpt and not self._shift_into_excerpt(packet):
                continue
            if packet.stream.index in self._reencode:
                self._reencode_packet(packet)
            else:
                packet.stream = self._copy[packet.stream.index]
                self._out.mux(packet)

    def _shift_into_excerpt(self, packet) -> bool:
        """Move `packet` onto the excerpt's timeline; False if it ends before the excerpt starts."""
        start = float(self._start_pts * self.time_base)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if float((stamp + (packet.duration or 0)) * packet.time_base) <= start:
            return False
        shift = round(start / packet.time_base)
        packet.pts = None if packet.pts is None else packet.pts - shift
        packet.dts = None if packet.dts is None else packet.dts - shift
        return True

    def _reencode_packet(self, packet) -> None:
        source, out = self._reencode[packet.stream.index]
        if out.type == "subtitle":
            self._convert_subtitle(packet, source, out)
        else:
            self._reencode_audio(packet, source, out)

    def _reencode_audio(self, packet, source, out) -> None:
        """Decode `packet` (None: what the decoder still holds) and encode its sound anew."""
        try:
            frames = source.decode(packet)
        except av.error.FFmpegError:
            return  # a damaged packet is a moment of silence, as in a player, not a failed video
        for frame in frames:
            # The encoder converts rate, channels and sample format itself.
            self._out.mux(out.encode(frame))

    def _convert_subtitle(self, packet, source, out) -> None:
        try:
            subtitles = source.codec_context.decode2(packet)
            if subtitles is None or not subtitles.rects:
                return
            converted = out.codec_context.encode_subtitle(subtitles)
        except av.error.FFmpegError:
            return  # one unreadable line, not a failed video
        # The encoder stamps its packet in microseconds, or not at all: the
        # line keeps the source packet's times instead.
        converted.pts = converted.dts = packet.pts if packet.pts is not None else packet.dts
        converted.duration = packet.duration
        converted.time_base = packet.time_base
        converted.stream = out
        self._out.mux(converted)

    def _flush_reencoded(self) -> None:
        for source, out in self._reencode.values():
            if out.type == "audio":
                self._reencode_audio(None, source, out)
                self._out.mux(out.encode(None))

    # -- finishing

    def close(self) -> None:
        """Flush, write the trailer and move the file to its final name."""
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}")
            with _write_errors(self.path):
                for packet in self._stream.encode(None):
                    self._out.mux(packet)
                self._mux_copies(until=self._frames_end() if self._excerpt else None)
                if self._source is not None:  # an excerpt's: the rest of the source is not in it
                    self._end_copies()
                self._out.close()
                os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise

    def _frames_end(self) -> float:
        """Seconds on the source's timeline where the last frame written stops showing."""
        return float(self._last_pts * self.time_base) + (float(1 / self.fps) if self.fps else 0.0)

    def _abort(self) -> None:
        for c in (self._out, self._source):
            if c is not None:
                try:
                    c.close()
                except Exception:  # already failing; the partial file goes anyway
                    pass
        self._source = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._abort()
        return False
