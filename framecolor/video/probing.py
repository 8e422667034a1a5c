"""Probing a video: its size, frame count, rate, duration, streams, display
matrix and pixel aspect, as players would show it, from what the container
states and, where that is wrong or missing, from its packets."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from framecolor.errors import InputError
from framecolor.video.encoding import (
    FIELD_BB,
    FIELD_PROGRESSIVE,
    FIELD_TT,
    is_full_range,
    is_interlaced,
)
from framecolor.video.files import _check_input_file, _open_input

# Counting packets gives the exact frame count where the container does not
# state it (MKV, WebM, raw streams). Demuxing without decoding is fast, but it
# still reads the whole file, so only do it for files up to this size.
COUNT_PACKETS_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str
    codec: str
    language: str | None
    channels: int | None
    sample_rate: int | None
    title: str | None = None  # a track's name ("Commentary", "SDH"), where the file gives one


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
    # FFmpeg's AVColorPrimaries and AVColorTransferCharacteristic (H.273's
    # numbers; 2 unspecified): an HDR or wide-gamut video's (BT.2020, HLG 18, PQ 16).
    color_primaries: int = 2
    color_trc: int = 2
    # How players turn the stored picture for display (phones film sideways and
    # say so here): FFmpeg's 3x3 AV_PKT_DATA_DISPLAYMATRIX, or None.
    display_matrix: tuple[int, ...] | None = None
    # Width of a pixel over its height where it is not 1 (anamorphic DVD and
    # DV video: 720x480 shown at 4:3 or 16:9); None when square or unstated.
    sample_aspect_ratio: Fraction | None = None
    # FFmpeg's AVFieldOrder of the pictures as decoded: FIELD_PROGRESSIVE, or
    # the order of an interlaced video's two fields (old TV, DV, DVD); 0 unknown.
    field_order: int = 0
    # The shortest and longest time (s) between frames among the first
    # _RATE_PACKETS, in display order; None where the packets are not all stamped.
    frame_gaps: tuple[float, float] | None = None
    chapters: int = 0  # how many the file marks

    @property
    def interlaced(self) -> bool:
        return is_interlaced(self.field_order)

    @property
    def variable_rate(self) -> bool:
        """Do the frames come at uneven times (a phone's clip, a screen
        capture)? `fps` is then only their usual rate; apply keeps each frame's own time."""
        return self.frame_gaps is not None and _uneven(*self.frame_gaps, self.time_base)

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
        """Does the video store full-range (JPEG) luma codes, 0..255 instead of
        16..235 (encoding.is_full_range: a yuvj* format, the flag, or gray or
        RGB pictures with no flag)? read_frames' luma comes in that range."""
        return is_full_range(self.pix_fmt, self.color_range)

    def to_dict(self) -> dict:
        """JSON-able: fractions as "num/den" strings, streams as lists of dicts."""
        d = dataclasses.asdict(self)
        d["fps"] = str(self.fps)
        d["time_base"] = str(self.time_base)
        d["sample_aspect_ratio"] = str(self.sample_aspect_ratio) if self.sample_aspect_ratio else None
        d["audio"] = [dataclasses.asdict(s) for s in self.audio]
        d["subtitles"] = [dataclasses.asdict(s) for s in self.subtitles]
        return d


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


def _track_title(tags) -> str | None:
    """A track's name ("Commentary"), from its `tags`: FFmpeg reads an MP4's
    or MOV's back under `name` (its udta box), though it writes `title`.
    Not an MP4's handler_name ("SoundHandler"), which names no track."""
    return tags.get("title") or tags.get("name") or None


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
        title=_track_title(stream.metadata),
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


def picture_ends_first(path, last_time: float, fps) -> bool:
    """Is a video whose frames stopped at `last_time`, short of the duration
    probe states, whole all the same: its picture ending before its other streams?

    An FLV states only the file's duration, the longest stream's: where its
    sound outlasts the picture, the picture ends early in a file that is
    whole. A file cut short has no packets up to its stated end; a damaged
    one has picture packets after the last frame decoded. The packets are
    read again for this, in files up to COUNT_PACKETS_MAX_BYTES (as probe
    counts them); a larger one is taken as cut.
    """
    path = Path(path)
    if not fps or path.stat().st_size > COUNT_PACKETS_MAX_BYTES:
        return False
    picture_end = file_end = 0.0
    try:
        with av.open(str(path)) as container:
            picture = _video_stream(container, path)
            duration = _stream_duration(container, picture)
            start = container.start_time / av.time_base if container.start_time else 0.0
            for packet in container.demux():
                if packet.pts is None or not packet.time_base:
                    continue
                file_end = max(file_end, float((packet.pts + (packet.duration or 0)) * packet.time_base) - start)
                if packet.stream.index == picture.index:  # on read_frames' clock, from the stream's start
                    picture_end = max(picture_end, float((packet.pts - (picture.start_time or 0)) * packet.time_base))
    except av.error.FFmpegError:
        return False
    period = 1 / fps
    return bool(duration) and last_time + period >= picture_end and file_end + 2 * period >= duration


def _stated_frames(container, stream, hidden: int) -> int:
    """Frame count the container states: the sample count, or mkvmerge's statistics tag.

    An AVI states its length in frame periods, empty (dropped) ones
    included: a capture that dropped frames, or one whose start was moved
    for its sound, states more frames than it holds, so its count is not used.
    An MP4's or MOV's sample count includes the `hidden` frames its edit
    list hides (Opening.hidden, or counted while decoding): a file cut
    without re-encoding (ffmpeg -ss -c copy, an editor's export) keeps the
    frames before the cut that its first keyframe needs.
    """
    if stream.frames > 0 and container.format.name != "avi":
        if _is_mov(container):
            return stream.frames - hidden
        return stream.frames
    for key, value in stream.metadata.items():
        if key.upper().startswith("NUMBER_OF_FRAMES") and value.strip().isdigit():
            return int(value)
    return 0


def _is_mov(container) -> bool:
    return "mov" in container.format.name.split(",")


# An MP4's hidden frames come before its cut, in decode order too but for
# B-frames stored after the first shown frame they precede: after this many
# shown packets in a row (more than any decoder reorders) there are no more.
_SHOWN_RUN_AFTER_CUT = 32


class Opening(NamedTuple):
    """What a video stream's first packets show, read in one pass."""

    hidden: int  # packets an MP4's edit list marks to be decoded but not shown (its cut)
    rate: Fraction | None  # frames per second over the first _RATE_PACKETS packets, where all are stamped
    gaps: tuple[Fraction, Fraction] | None  # the shortest and longest time between those packets' frames
    first_frame: object  # the first decoded av.VideoFrame; None where nothing decodes (or not asked)
    packets: int  # video packets read, to count on from
    whole: bool  # False where demuxing failed part-way


def scan_opening(container, stream, *, decode: bool = True) -> Opening:
    """Read the first packets of `stream` once, for everything probe needs of them.

    Opening a file is most of what probing it costs (FFmpeg reads and
    decodes its start to find the streams' parameters; 12 ms for a 720p
    MP4 here), so the hidden count, the packets' own rate and the first
    frame come from one pass over one open container, not three. The
    container is left where the pass stopped: demuxing on continues from there.
    """
    hidden = shown_run = packets = 0
    hidden_done = not _is_mov(container)
    times: list[int] | None = []  # None: a packet had no timestamp
    frame, decoding, whole = None, decode, True
    try:
        for packet in container.demux(stream):
            if decoding:  # the empty last packet flushes the decoder: a one-frame file still gives its frame
                frame, decoding = _first_decoded(packet)
            if not packet.size:
                continue
            packets += 1
            if not hidden_done:
                hidden, shown_run = (hidden + 1, 0) if packet.is_discard else (hidden, shown_run + 1)
                hidden_done = shown_run >= _SHOWN_RUN_AFTER_CUT
            if times is not None and len(times) < _RATE_PACKETS:
                times = None if packet.pts is None else times + [packet.pts]
            if hidden_done and not decoding and (times is None or len(times) == _RATE_PACKETS):
                break
    except av.error.FFmpegError:
        whole = False  # damaged: what was read stands, and decoding will tell
        if times is not None and len(times) < _RATE_PACKETS:
            times = None
    return Opening(hidden, _rate_of(times, stream.time_base), _gaps_of(times, stream.time_base), frame, packets, whole)


def _first_decoded(packet) -> tuple[object, bool]:
    """(the first frame that `packet` gives or None, whether to decode on)."""
    try:
        frames = packet.decode()
    except av.error.FFmpegError:
        return None, False  # a file that cannot decode fails later, where it is read
    return (frames[0], False) if frames else (None, bool(packet.size))


def read_opening(path: Path, index: int) -> Opening:
    """scan_opening of stream `index` of the file at `path`, without decoding."""
    try:
        with av.open(str(path)) as container:
            return scan_opening(container, container.streams[index], decode=False)
    except av.error.FFmpegError:
        return Opening(0, None, None, None, 0, False)


# The rates cameras, film transfers and broadcasts use: a rate measured from
# millisecond timestamps is taken as the one it is this close to.
_COMMON_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                            "60000/1001", "60", "100", "120"))
_COMMON_RATE_TOLERANCE = 0.005
# A stated rate this many times off the frames' own rate is not the video's.
_IMPLAUSIBLE_RATE_FACTOR = 4
# Packets whose timestamps measure the frames' own rate.
_RATE_PACKETS = 64


def _frame_rate(stream, measured: Fraction | None = None) -> Fraction:
    """The video's frame rate: the one its header states, unless the first
    frames' timestamps (`measured`, Opening.rate) show it is not.

    Headers can be far off: a Matroska file remuxed by a script may state
    30000 frames/s (its DefaultDuration written from a time base) for
    frames 33 ms apart. Players go by the timestamps; taking the header at
    its word would call such a file truncated and write that rate on.
    """
    stated = [Fraction(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r]
    if not measured:
        return stated[0] if stated else Fraction(0)
    plausible = [r for r in stated if 1 / _IMPLAUSIBLE_RATE_FACTOR < r / measured < _IMPLAUSIBLE_RATE_FACTOR]
    if plausible and plausible[0] == stated[0]:
        return stated[0]
    # FFmpeg's guess from the first timestamps (a millisecond time base makes
    # it 359/12 for 29.97), else the timestamps' own rate, as the rate it is near.
    rate = plausible[0] if plausible else measured
    nearest, off = _nearest_common_rate(rate)
    return nearest if off <= _COMMON_RATE_TOLERANCE else rate.limit_denominator(1001)


def _nearest_common_rate(rate: Fraction) -> tuple[Fraction, Fraction]:
    """The common rate nearest `rate`, and how far off it is (relative)."""
    nearest = min(_COMMON_RATES, key=lambda common: abs(common / rate - 1))
    return nearest, abs(nearest / rate - 1)


def _rate_of(times: list[int] | None, time_base) -> Fraction | None:
    """Frames per second of packets stamped `times`; None where one had no
    timestamp (MPEG-PS stamps a packet only where a pack starts, so the
    stamped ones are not the frames' rate)."""
    if not times or len(times) < 2 or not time_base:
        return None
    span = (max(times) - min(times)) * Fraction(time_base)
    return Fraction(len(times) - 1) / span if span > 0 else None


# How many frames a decoder may hold back to reorder them, so how many
# packets later a frame shown earlier may still come: H.264's and HEVC's
# picture buffers hold at most 16.
REORDER_DEPTH = 16


def _gaps_of(times: list[int] | None, time_base) -> tuple[Fraction, Fraction] | None:
    """(shortest, longest) seconds between consecutive frames stamped `times`,
    the first packets' (all of them where fewer than _RATE_PACKETS).

    Packets come in decode order: a B-frame's after the later frame it is
    shown before. So the frames shown before the last packets' may not be
    read yet: only those up to the frame shown last among all but the last
    REORDER_DEPTH packets are all there. (Without that cut, a 25 fps MP4
    had a gap of two frames at the end of its first 64 packets.)
    """
    if not times or not time_base:
        return None
    if len(times) == _RATE_PACKETS:
        shown_by = max(times[:-REORDER_DEPTH])
        times = [t for t in times if t <= shown_by]
    if len(times) < 3:
        return None
    ordered = sorted(times)
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[1:])]
    return min(gaps) * Fraction(time_base), max(gaps) * Fraction(time_base)


# Gaps between frames this much (relative) apart make a variable rate; but
# not one tick: a millisecond time base puts 29.97 fps frames 33 and 34 ms apart.
_UNEVEN_GAPS = 0.1


def _uneven(shortest, longest, time_base) -> bool:
    return longest - shortest > max(Fraction(time_base), Fraction(shortest) * Fraction(_UNEVEN_GAPS))


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


def _display_matrix(frame) -> tuple[int, ...] | None:
    """The display matrix that decoded frames carry (FFmpeg puts the stream's
    on each; PyAV reads it only from frames)."""
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
    """Describe a video file, decoding at most its first frame (display matrix, field order).

    The frame count is exact when the container states it (MP4/MOV sample
    tables, mkvmerge's NUMBER_OF_FRAMES tag) or, for files up to
    COUNT_PACKETS_MAX_BYTES, by counting the video packets; otherwise it is
    duration * frame rate and `frame_count_exact` is False.
    """
    path = _check_input_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        duration = _stream_duration(container, stream)
        # As the header states them: decoding the first frame below resets the
        # codec context to that frame's, and a capture that changes size is
        # taken at the size its header (and ffprobe) gives.
        stated = _stated_picture(stream)
        opening = scan_opening(container, stream)
        frames, exact = _stated_frames(container, stream, opening.hidden), True
        if frames <= 0 and path.stat().st_size <= COUNT_PACKETS_MAX_BYTES and opening.whole:
            frames = _count_packets(container, stream, already=opening.packets)
        fps = _frame_rate(stream, opening.rate)
        gaps = None if opening.gaps is None else tuple(float(g) for g in opening.gaps)
        if frames <= 0:
            frames, exact = round((duration or 0.0) * fps), False
        if duration is None:
            duration = float(frames / fps) if fps else 0.0
        return VideoInfo(
            path=str(path),
            frame_count=int(frames),
            frame_count_exact=exact,
            fps=fps,
            time_base=Fraction(stream.time_base),
            duration=float(duration),
            frame_gaps=gaps,
            chapters=len(container.chapters()),
            audio=tuple(_stream_info(s) for s in container.streams.audio),
            subtitles=tuple(_stream_info(s) for s in container.streams.subtitles),
            **{key: value for key, value in stated.items() if key != "field_order"},
            **_first_frame_facts(opening.first_frame, stated_field_order=stated["field_order"]),
        )


def _stated_picture(stream) -> dict:
    """VideoInfo's fields that the stream's header states of its pictures."""
    cc = stream.codec_context
    return {
        "width": cc.width,
        "height": cc.height,
        "codec": _codec_name(stream),
        "pix_fmt": cc.pix_fmt or "unknown",
        "color_range": int(getattr(cc, "color_range", 0) or 0),
        "color_primaries": int(getattr(cc, "color_primaries", 2) or 2),
        "color_trc": int(getattr(cc, "color_trc", 2) or 2),
        "field_order": cc.field_order,
        "sample_aspect_ratio": _sample_aspect_ratio(stream),
    }


def _sample_aspect_ratio(stream) -> Fraction | None:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


def _first_frame_facts(frame, stated_field_order: int) -> dict:
    """The display matrix and field order that the first decoded frame shows.

    A header's field order is not the pictures': soft-telecined film on a
    DVD is stated top-field-first and decodes to progressive frames. So a
    video counts as interlaced where its first frame decodes as such, in the
    stated order (top field first where none is stated, as HD broadcast is).
    """
    if frame is None:
        return {"display_matrix": None, "field_order": 0}
    order = FIELD_PROGRESSIVE
    if frame.interlaced_frame:
        order = _frame_field_order(frame) or (stated_field_order if is_interlaced(stated_field_order) else FIELD_TT)
    return {"display_matrix": _display_matrix(frame), "field_order": order}


def one_filter_graph(frame, name: str, args: str | None = None):
    """An FFmpeg filter graph, configured, that passes frames shaped as
    `frame` (size, pixel format) through the one filter `name`: push a
    frame in, pull it out."""
    import av.filter

    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                              time_base=Fraction(1, 1))
    middle, sink = graph.add(name, args), graph.add("buffersink")
    source.link_to(middle)
    middle.link_to(sink)
    graph.configure()
    return graph


def _frame_field_order(frame) -> int | None:
    """FIELD_TT or FIELD_BB as an interlaced frame's own mark says; None if unread.

    Headers do not tell it reliably (a DV file, bottom field first by its
    standard, states no order, and top first is the usual guess), and a
    wrong order makes motion judder back and forth once deinterlaced. PyAV
    does not read the mark, but FFmpeg's showinfo filter logs it ("i:T" or
    "i:B"), so the frame passes through one with its log captured (FFmpeg
    logs only while a level is set).
    """
    import av.logging

    level = av.logging.get_level()
    try:
        graph = one_filter_graph(frame, "showinfo")
        av.logging.set_level(av.logging.INFO)
        with av.logging.Capture() as logs:
            graph.push(frame)
            graph.pull()
    except (av.error.FFmpegError, ValueError):
        return None
    finally:
        av.logging.set_level(level)
    marks = {match.group(1) for *_, line in logs if (match := re.search(r" i:([TB])\b", line))}
    return {"T": FIELD_TT, "B": FIELD_BB}[marks.pop()] if len(marks) == 1 else None


def _count_packets(container, stream, already: int = 0) -> int:
    """The stream's packets: `already` read, and the rest from where demuxing stands."""
    try:
        return already + sum(1 for p in container.demux(stream) if p.size > 0)
    except av.error.FFmpegError:
        return 0  # damaged: fall back to the estimate
