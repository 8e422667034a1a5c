"""VideoWriter: encoding frames with their pts into a new file, written under
a temporary name, with the source's other streams carried over
(framecolor.video.copies)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from framecolor.errors import OutputError
from framecolor.video.encoding import (
    _FULL_CHROMA_FORMATS,
    _HALF_WIDTH_CHROMA_FORMATS,
    _JPEG_FORMATS,
    _NUMBERED_PRESETS,
    _ODD_SIZE_FALLBACK,
    _PRESET_CODECS,
    _WRITE_YUV_FORMATS,
    DEFAULT_ENCODER,
    FULL_RANGE,
    FULL_RANGE_ONLY,
    LIMITED_RANGE_ONLY,
    _open_encoder,
    cannot_encode,
    check_frame_size,
    default_pix_fmt,
    encoder_formats,
    encoder_name,
    encoder_options,
    encoder_time_base,
    has_quality_setting,
    interlaced_options,
    is_interlaced,
    set_up_trial,
    top_field_first,
)
from framecolor.video.containers import (
    RAW_CODECS,
    another_codec_could_fit,
    holds_frame_times,
    holds_video,
    output_encoder,
)
from framecolor.video.copies import CopiedStreams
from framecolor.video.files import (
    VideoWarning,
    _move_into_place,
    _temp_path,
    _write_errors,
    check_container_name,
    check_output_path,
    unknown_container,
)
from framecolor.video.losses import range_lost, shape_lost, timing_lost, turn_lost
from framecolor.video.photos import _as_rgb
from framecolor.video.pixels import _plane_view
from framecolor.video.probing import VideoInfo, one_filter_graph


# Containers that keep one time a packet, in decoding order (see __init__).
_DECODE_ORDER_FORMATS = frozenset({"avi", "asf", "asf_stream"})


# The muxer's options for a file of each suffix (see _container_options).
_KEEP_NEGATIVE_TIMES = {"avoid_negative_ts": "disabled"}
_CONTAINER_OPTIONS = {".avi": _KEEP_NEGATIVE_TIMES, ".mkv": _KEEP_NEGATIVE_TIMES, ".y4m": {"strict": "-1"}}


def _container_options(path: Path) -> dict[str, str]:
    """An AAC track copied from an MP4 starts before 0 s (its encoder's
    priming), and FFmpeg's AVI and Matroska muxers shifted every stream to
    start at 0: AVI's picture by a whole frame slot (40 ms at 25 fps) for the
    sound's 21 ms, and an MKV's by the 21 ms, off the source's times. AVI
    places sound by its order, not its times, so nothing needs shifting;
    Matroska holds a time a little before 0 as it is (a block before its
    cluster's time), and FFmpeg reads it back so. (WebM was not shifted:
    its sound, Opus, starts before 0 by a priming its muxer allows for.)
    Y4M's muxer writes a 10-bit format (C420p10) only where formats beyond
    the Y4M spec are allowed (strict -1), and refused the file without it."""
    return _CONTAINER_OPTIONS.get(path.suffix.lower(), {})


def _fraction(x) -> Fraction:
    if isinstance(x, float):
        return Fraction(x).limit_denominator(1_000_000)
    return Fraction(x)


# FFmpeg's AVColorSpace numbers of the Y'CbCr matrices framecolor writes
# (PyAV >= 15 takes them on frames and codec contexts; older PyAV writes untagged).
_COLORSPACES = {None: None, "bt709": 1, "bt601": 6}
# None, and AVColorPrimaries' and AVColorTransferCharacteristic's 0
# (reserved) and 2 (unspecified): nothing to carry over.
_UNSTATED_COLOR = frozenset({None, 0, 2})


@functools.cache
def _limited_to_full_luma() -> np.ndarray:
    """8-bit limited-range luma codes (16-235) -> full-range ones (0-255), as a lookup table."""
    return np.clip(np.round((np.arange(256) - 16) * (255 / 219)), 0, 255).astype(np.uint8)


@functools.cache
def _full_to_limited_luma(dtype) -> np.ndarray:
    """Full-range luma codes (0-255, or 0-1023 in uint16) -> limited-range ones
    (16-235, or 64-940), as a lookup table: the same gray, every code apart."""
    top = 255 if np.dtype(dtype) == np.uint8 else 1023
    scale = 1 if top == 255 else 4
    return np.round(16 * scale + np.arange(top + 1) * (219 * scale / top)).astype(dtype)


class _FieldMarker:
    """Marks frames interlaced, in one field order, for the encoder.

    x264 takes the field order from each frame, not from its settings: a
    frame not marked top-field-first turns it bottom-field-first. PyAV
    cannot set those marks, so frames pass through FFmpeg's setfield
    filter (about 30 us a frame).
    """

    def __init__(self, top_first: bool):
        self._mode = "tff" if top_first else "bff"
        self._graph, self._shape = None, None

    def mark(self, frame):
        shape = (frame.format.name, frame.width, frame.height)
        if shape != self._shape:
            self._graph, self._shape = one_filter_graph(frame, "setfield", self._mode), shape
        self._graph.push(frame)
        return self._graph.pull()


class VideoWriter:
    """Encode frames to `path`, keeping their pts, optionally copying audio and subtitles.

    Use as a context manager. The file is written as
    `.<stem>.<pid>-<token>.partial<suffix>` next to `path` (atomic.temp_path)
    and renamed over it only when the `with` block ends without an
    exception; on an exception the partial file is removed.

    `codec` None means DEFAULT_ENCODER, or the container's own where it
    cannot hold that (VP9 for .webm: containers.output_encoder); `.codec`
    is the one used. `pix_fmt` is the requested yuv* format (None:
    yuv420p, or the nearest the encoder takes: ProRes' 10-bit 4:2:2), the
    range `full_range`'s (a yuvj* format asks for full range); `.pix_fmt` is the one used (yuv420p falls back to
    yuv444p for odd sizes, and full range is a yuvj* format where the
    encoder takes one), and `.chroma_shape` the (h, w) that
    `write_yuv` expects for u and v. `display_matrix` and
    `sample_aspect_ratio` (VideoInfo's) tell players to turn and stretch the
    picture as they did the source's, and `color_primaries` and `color_trc`
    (VideoInfo's) tell them the source's gamut and transfer (BT.2020, HLG).
    `copy_streams_from` copies a source's
    (a video's, or a sound file's) audio and subtitle streams, its cover
    picture, its chapters, and its tags: the file's
    (title, date, ...) and its video stream's (language, a timecode), as
    ffmpeg does by default. Audio the container cannot hold as it is gets
    re-encoded in the container's own audio codec, as ffmpeg does too.
    `excerpt` True writes a part of the source: every stream is shifted so
    that the first frame written is at 0, and the copied ones are cut to
    the frames' span, the chapters to the `excerpt_duration` (s) asked for
    (None: to the source's end). `end_with_frames` True cuts
    the copied streams where the last frame ends, shifting nothing (a
    soundtrack under a film made from photos).
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
        pix_fmt: str | None = None,
        copy_streams_from=None,
        excerpt: bool = False,
        excerpt_duration: float | None = None,
        end_with_frames: bool = False,
        overwrite: bool = False,
        inputs: Iterable = (),
        matrix: str | None = None,
        full_range: bool = False,
        display_matrix: Iterable[int] | None = None,
        sample_aspect_ratio=None,
        field_order: int = 0,
        color_primaries: int | None = None,
        color_trc: int | None = None,
    ):
        self.path = Path(path)
        self._colorspace = _COLORSPACES[matrix]
        # The source's, as its range is: its luma is coded with its transfer
        # (HLG, PQ), and untagged it showed as SDR BT.709, dim and washed out.
        self._primaries = None if color_primaries in _UNSTATED_COLOR else int(color_primaries)
        self._transfer = None if color_trc in _UNSTATED_COLOR else int(color_trc)
        check_container_name(self.path)  # a .mpd is a stream's manifest: said as such, not as a codec it cannot hold
        check_output_path(self.path, [*inputs, copy_streams_from], overwrite)
        self._overwrite = overwrite
        self.width, self.height = int(width), int(height)
        self.fps = _fraction(fps)
        self.time_base = _fraction(time_base)
        # The output's range: the source's (a yuvj* format asked for says full), or (below)
        # the one the encoder codes, where it codes only one.
        self.full_range = full_range or (pix_fmt or "").startswith("yuvj")
        self.expands_luma = False  # re-codes a limited-range luma full range (FULL_RANGE_ONLY)
        self.squeezes_luma = False  # re-codes a full-range luma limited range (LIMITED_RANGE_ONLY)
        self._sample_aspect_ratio = _fraction(sample_aspect_ratio) if sample_aspect_ratio else None
        self._field_order = field_order
        self._fields = None  # marks each frame's field order for the encoder, where it codes fields
        self.frames_written = 0
        self._last_pts = None
        self._last_duration = None  # the last frame's, in time_base, where the caller said
        self._last_frame_pts = None  # the last frame's, as the encoder got it
        self._held = []  # the last frame's packets, muxed once the next frame is in: see close()
        self._timing_said = False  # the warning that a variable frame timing is lost, given once
        self._copies = None  # the source's other streams, carried over (CopiedStreams)
        self._excerpt = excerpt
        self._end_with_frames = excerpt or end_with_frames
        self._start_pts = None  # the first frame's pts: where an excerpt's timeline starts
        self._tmp = _temp_path(self.path)
        try:
            self._out = av.open(str(self._tmp), "w", container_options=_container_options(self.path))
        except ValueError:
            raise unknown_container(self.path) from None
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot write {self.path}: {e}") from None
        # AVI has no timestamps, only a frame rate: a finer time base (an MP4's
        # 1/30000) would index every tick as a dropped frame, so frames are
        # counted at 1/fps there and the callers' pts are rescaled onto it.
        # Y4M states the rate of its stream's time base (an MP4's 12800 fps),
        # and a raw stream (.h264) the rate x264 gives its timing from it.
        self._holds_frame_times = holds_frame_times(self._out.format)
        one_rate = not self._holds_frame_times and self.fps > 0
        self._counts_slots = one_rate and self._out.format.name == "avi"
        # AVI and ASF (.wmv) keep one time a packet, in decoding order: B-frames'
        # display order is left to players' guesses (FFmpeg guessed one frame
        # where x264's B-pyramid had two, and showed every frame 40 ms early).
        # Without B-frames decoding order is display order, and a time a time.
        self._without_b_frames = self._out.format.name in _DECODE_ORDER_FORMATS
        self._stream_time_base = 1 / self.fps if one_rate else self.time_base
        self._last_codec_pts = None
        try:
            self.codec = encoder_name(codec) if codec else self._default_codec()
            check_frame_size(self.codec, self.width, self.height)
            if preset is not None and self.codec not in _PRESET_CODECS | _NUMBERED_PRESETS.keys():
                warnings.warn(f"{self.codec} has no presets: preset {preset} is ignored", VideoWarning, stacklevel=2)
            if crf is not None and not has_quality_setting(self.codec):
                warnings.warn(f"{self.codec} has no constant-quality setting: crf {crf} is ignored", VideoWarning,
                              stacklevel=2)
            # A limited-range picture for an encoder of full-range ones only:
            # write_yuv re-codes its luma (the same picture, every code apart).
            self.expands_luma = not self.full_range and self.codec in FULL_RANGE_ONLY
            if self.expands_luma:
                self.full_range = True
                warnings.warn(f"{self.codec} codes full range only: {self.path}'s luma is re-coded from "
                              "16-235 to 0-255, the same picture in other codes", VideoWarning, stacklevel=3)
            self.squeezes_luma = self.full_range and self.codec in LIMITED_RANGE_ONLY
            if self.squeezes_luma:
                self.full_range = False
                warnings.warn(f"{self.codec} codes limited range only: {self.path}'s luma is re-coded from "
                              "0-255 to 16-235, the same picture in other codes", VideoWarning, stacklevel=3)
            pix_fmt = pix_fmt or default_pix_fmt(self.codec)
            self.pix_fmt = self._choose_pix_fmt(self.codec, pix_fmt.replace("yuvj", "yuv", 1))  # the range is full_range's
            if not holds_video(self._out.format.name, self.codec):
                # No --codec helps a GIF: no encoder of what framecolor writes goes in one.
                other = " or --codec" if another_codec_could_fit(self.path) else ""
                raise OutputError(f"a {self.path.suffix} file cannot hold {self.codec} video; "
                                  f"choose another suffix{other}")
            # Full range as a flag, where the file has no place for it (MPEG-4
            # in an MP4): re-coded limited range, as for ProRes, rather than
            # shown washed out or clipped. A yuvj* format says it itself.
            if self._range_flag is not None:
                loss = range_lost(self._out.format.name, self.path, self.codec, self._flagged_trial_stream,
                                  self.pix_fmt)
                if loss is not None:
                    self.full_range, self.squeezes_luma = False, True
                    self._say(loss)
            # The encoder's own time base, where it refuses the stream's (MPEG-1/2,
            # MPEG-4; a rate MPEG-1/2 cannot code fails here): frames are
            # rescaled onto it, and packets back onto the stream's.
            self._codec_time_base = encoder_time_base(self.codec, self._stream_time_base, self.fps)
            self._stream = self._add_video_stream(self.codec, crf, preset)
            if display_matrix is not None:
                # Players turn the picture as they did the source's: without
                # it a phone's portrait video would play sideways.
                self._stream.set_display_matrix([int(x) for x in display_matrix])
                self._say(turn_lost(self._out.format.name, self.path, display_matrix))
            if self._sample_aspect_ratio:
                self._say(shape_lost(self._out.format.name, self.path, self.codec, self._trial_stream,
                                     self.width, self.height, self.pix_fmt, self._sample_aspect_ratio))
            if copy_streams_from is not None:
                self._copies = CopiedStreams(Path(copy_streams_from), self._out, self._stream,
                                             path=self.path, excerpt=excerpt, excerpt_duration=excerpt_duration)
        except BaseException:
            self.discard()
            raise

    @classmethod
    def like(cls, path, info: VideoInfo, **options) -> "VideoWriter":
        """A writer for `path` shaped as `info`'s video: its size, timing, range,
        primaries and transfer, display matrix and pixel aspect, all an output
        needs to play as its source did."""
        return cls(path, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                   full_range=info.full_range, display_matrix=info.display_matrix,
                   sample_aspect_ratio=info.sample_aspect_ratio, field_order=info.field_order,
                   color_primaries=info.color_primaries, color_trc=info.color_trc, **options)

    # -- setup

    def _choose_pix_fmt(self, codec: str, pix_fmt: str) -> str:
        supported = encoder_formats(codec)
        half_width = pix_fmt in _HALF_WIDTH_CHROMA_FORMATS  # 4:2:2 halves the width only
        odd = self.width % 2 or (self.height % 2 and not half_width)
        if odd and pix_fmt in _ODD_SIZE_FALLBACK:
            fallback = _ODD_SIZE_FALLBACK[pix_fmt]
            if supported and fallback not in supported:
                raise OutputError(f"{codec} cannot encode the odd size {self.width}x{self.height} "
                                  f"({pix_fmt} needs an even width{'' if half_width else ' and height'})")
            warnings.warn(f"{self.width}x{self.height} is odd, which {pix_fmt} cannot hold: "
                          f"writing {self.path} as {fallback}", VideoWarning, stacklevel=3)
            pix_fmt = fallback
        full = pix_fmt.replace("yuv", "yuvj", 1)
        if self.full_range and full in _JPEG_FORMATS and (not supported or full in supported):
            return full  # the range is in the format itself, which every player honours
        if supported and pix_fmt not in supported:
            raise cannot_encode(codec, pix_fmt, supported)
        return pix_fmt

    @staticmethod
    def _say(loss: str | None) -> None:
        if loss is not None:
            warnings.warn(loss, VideoWarning, stacklevel=4)

    def _trial_stream(self, container):
        """This writer's video stream, set up as its own is, added to another `container`."""
        stream = container.add_stream(self.codec, rate=self.fps or 25)
        self._set_up_video(stream, dict(self._stream.options))
        return stream

    def _flagged_trial_stream(self, container):
        """A stream of this writer's encoder and format, flagged full range
        as its own is, added to another `container` (at TRIAL_SIZE, before
        this writer's own stream is set up)."""
        stream = container.add_stream(self.codec, rate=25)
        set_up_trial(stream.codec_context, self.codec, self.pix_fmt, encoder_options(self.codec, pix_fmt=self.pix_fmt))
        stream.codec_context.color_range = FULL_RANGE
        if self._colorspace is not None and hasattr(stream.codec_context, "colorspace"):
            stream.codec_context.colorspace = self._colorspace
        return stream

    def _warn_if_timing_lost(self, interval: Fraction) -> None:
        if self._timing_said:
            return  # once
        loss = timing_lost(interval, self.fps, self.time_base, holds_frame_times=self._holds_frame_times,
                           codec=self.codec, codec_time_base=self._codec_time_base, path=self.path)
        self._timing_said = loss is not None
        self._say(loss)

    def _default_codec(self) -> str:
        """The encoder for no `codec` (containers.output_encoder), said where
        it is not DEFAULT_ENCODER and loses luma that H.264 would keep (Y4M's
        raw frames keep every code)."""
        codec = output_encoder(self.path)
        if codec != DEFAULT_ENCODER and codec not in RAW_CODECS:
            warnings.warn(f"a {self.path.suffix} file cannot hold H.264: writing {self.path} with {codec}, "
                          "which does not keep the luma as exactly (.mp4 or .mkv do)", VideoWarning, stacklevel=4)
        return codec

    def _add_video_stream(self, codec, crf, preset):
        stream = self._out.add_stream(codec, rate=self.fps)
        # The stream counts in the caller's time base (AVI's: 1/fps, see __init__;
        # the muxer may refine it, e.g. MKV's 1/1000), the encoder in its own.
        stream.time_base = self._stream_time_base
        self._set_up_video(stream, self._field_options(codec, encoder_options(codec, crf, preset, self.pix_fmt)))
        _open_encoder(stream.codec_context, codec, crf, preset)  # bad options fail here, not mid-video
        return stream

    def _set_up_video(self, stream, options: dict[str, str]) -> None:
        """The encoder's settings on a video stream of this writer's codec (its own, or a trial's)."""
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        stream.codec_context.time_base = self._codec_time_base
        stream.options = {**options, "bf": "0"} if self._without_b_frames else options
        if self._fields is not None:
            stream.codec_context.field_order = self._field_order
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
        if self._primaries is not None:
            stream.codec_context.color_primaries = self._primaries
        if self._transfer is not None:
            stream.codec_context.color_trc = self._transfer

    def _field_options(self, codec: str, options: dict[str, str]) -> dict[str, str]:
        """`options`, for an interlaced source with its fields coded apart (a
        progressive output of interlaced video combs on motion, and players
        deinterlace only what says it is interlaced)."""
        if not is_interlaced(self._field_order):
            return options
        interlaced = interlaced_options(codec, options, self._field_order)
        if interlaced is None:
            warnings.warn(f"{codec} cannot code an interlaced picture's fields apart: {self.path} is written "
                          "progressive, and players will not deinterlace it (libx264 keeps the fields)",
                          VideoWarning, stacklevel=4)
            return options
        self._fields = _FieldMarker(top_field_first(self._field_order))
        return interlaced

    @property
    def _range_flag(self) -> int | None:
        """A full-range yuv* format (this encoder has no yuvj* twin) carries the range as a flag."""
        return FULL_RANGE if self.full_range and not self.pix_fmt.startswith("yuvj") else None

    @property
    def chroma_shape(self) -> tuple[int, int]:
        if self.pix_fmt in _FULL_CHROMA_FORMATS:
            return self.height, self.width
        if self.pix_fmt in _HALF_WIDTH_CHROMA_FORMATS:
            return self.height, (self.width + 1) // 2
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

    def _codec_pts(self, pts: int) -> int:
        """`pts` (in time_base) on the encoder's time base, still increasing."""
        if self._codec_time_base == self.time_base:
            return pts
        ticks = round(pts * self.time_base / self._codec_time_base)
        if self._last_codec_pts is not None:
            ticks = max(ticks, self._last_codec_pts + 1)  # two frames closer than 1/fps (VFR)
        self._last_codec_pts = ticks
        return ticks

    def _encode(self, frame, pts, duration=None):
        if self._fields is not None:
            frame = self._fields.mark(frame)
        if self._colorspace is not None and hasattr(frame, "colorspace"):
            frame.colorspace = self._colorspace
        if self._range_flag is not None:
            frame.color_range = self._range_flag
        if self._primaries is not None:
            frame.color_primaries = self._primaries
        if self._transfer is not None:
            frame.color_trc = self._transfer
        previous = self._last_pts
        pts = self._next_pts(pts)
        if previous is not None:
            self._warn_if_timing_lost((pts - previous) * self.time_base)
        if self._start_pts is None:
            self._start_pts = pts if self._excerpt else 0
            if self._excerpt and self._copies is not None:
                self._copies.seek(float(pts * self.time_base))
            if self._counts_slots and self._copies is not None:
                self._say(self._sound_played_early(float(self._start_pts * self.time_base)))
        if self._copies is not None:
            self._copies.mux(until=float(pts * self.time_base))
        frame.pts = self._codec_pts(pts - self._start_pts)
        frame.time_base = self._codec_time_base
        if self._counts_slots and self.frames_written == 0:
            self._mux_empty_slots(frame.pts * self._codec_time_base)
        self._last_frame_pts, self._last_duration = frame.pts, duration
        for packet in self._held:
            self._out.mux(packet)
        self._held = self._stream.encode(frame)
        self.frames_written += 1

    def _sound_played_early(self, origin: float) -> str | None:
        """What an AVI does to sound that starts more than a frame after
        `origin`, the output's 0 on the source's timeline: its muxer places
        sound by its order, not its time, so the sound plays from 0, early
        by its late start (the picture keeps its own time, _mux_empty_slots)."""
        start = self._copies.sound_start()
        if start is None or not self.fps or start - origin <= 1 / self.fps:
            return None
        late = start - origin
        return (f"the sound starts {late:.2f} s into the video, and a {self.path.suffix} file places sound by its "
                f"order, not its time: in {self.path} it plays {late:.2f} s early (.mkv or .mp4 keep its time)")

    def _mux_empty_slots(self, first_frame_time: Fraction) -> None:
        """Empty AVI slots up to the first frame's: FFmpeg's muxer fills a gap
        between two frames with them, but not one before the first, which
        then showed at 0 s however late the picture starts after the sound."""
        for slot in range(round(first_frame_time / self._stream_time_base)):
            empty = av.Packet(b"")
            empty.stream, empty.time_base, empty.pts, empty.dts = self._stream, self._stream_time_base, slot, slot
            self._out.mux(empty)

    def write_rgb(self, rgb: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame at `pts` (in `time_base`; None = next nominal),
        shown for `duration` (in `time_base`; None: until the next, the last one a frame period)."""
        rgb = _as_rgb(rgb)
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, writer is {self.width}x{self.height}")
        with _write_errors(self.path):
            self._encode(av.VideoFrame.from_ndarray(rgb, format="rgb24"), pts, duration)

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, pts: int | None = None,
                  duration: int | None = None) -> None:
        """Encode one frame from its planes as they are (y: (H, W), u, v: `.chroma_shape`;
        uint8, or uint16 10-bit codes for a 10-bit writer: `.sample_dtype`), as write_rgb.

        No colour conversion happens, so the encoder sees exactly these Y codes
        (but for `.expands_luma`: limited-range codes re-coded full range;
        `.squeezes_luma`: full-range codes re-coded limited range).
        """
        if self.pix_fmt not in _WRITE_YUV_FORMATS:
            raise ValueError(f"write_yuv needs a yuv420p, yuv422p or yuv444p (or 10-bit) writer, "
                             f"this one is {self.pix_fmt}")
        dtype = self.sample_dtype
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        for index, (plane, data, shape) in enumerate(zip(
                frame.planes, (y, u, v), ((self.height, self.width), self.chroma_shape, self.chroma_shape))):
            data = np.asarray(data)
            if data.dtype != dtype or data.shape != shape:
                raise ValueError(f"plane must be {shape} {np.dtype(dtype).name}, got {data.shape} {data.dtype}")
            # Straight into the frame's own buffer: no staging copy.
            if index == 0 and self.expands_luma:
                np.take(_limited_to_full_luma(), data, out=_plane_view(plane, dtype))
            elif index == 0 and self.squeezes_luma:
                np.take(_full_to_limited_luma(dtype), data, out=_plane_view(plane, dtype))
            else:
                _plane_view(plane, dtype)[:] = data
        with _write_errors(self.path):
            self._encode(frame, pts, duration)

    @property
    def sample_dtype(self):
        return np.uint16 if self.pix_fmt.endswith("10le") else np.uint8

    # -- finishing

    def close(self) -> None:
        """Flush, write the trailer and move the file to its final name."""
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}")
            with _write_errors(self.path):
                for packet in self._with_last_duration([*self._held, *self._stream.encode(None)]):
                    self._out.mux(packet)
                if self._copies is not None:
                    self._copies.mux(until=self._frames_end() if self._end_with_frames else None)
                    self._copies.finish()
                self._out.close()
                _move_into_place(self._tmp, self.path, self._overwrite)
        except BaseException:
            self.discard()
            raise

    def _with_last_duration(self, packets: list) -> list:
        """The encoder's last `packets`, the last frame's showing as long as the
        caller said. Encoders give it a frame period (1/fps): a variable-rate
        video's average one, so an MP4 of frames 33 ms apart ended 20 ms
        late (an MP4 and an MKV take their duration from the last packet).
        Encoders do not pass frame durations on, so the packet is found here."""
        if self._last_duration is None or not packets:
            return packets
        last = max(packets, key=lambda packet: -1 if packet.pts is None else packet.pts)
        if last.pts == self._last_frame_pts:
            last.duration = max(1, round(self._last_duration * self.time_base / self._codec_time_base))
        return packets

    def _frames_end(self) -> float:
        """Seconds on the source's timeline where the last frame written stops showing."""
        shown = self._last_duration * self.time_base if self._last_duration else (1 / self.fps if self.fps else 0)
        return float(self._last_pts * self.time_base + shown)

    def discard(self) -> None:
        """Close, keeping nothing: the temporary file goes (what a failure does)."""
        try:
            self._out.close()
        except Exception:  # already failing; the partial file goes anyway
            pass
        if self._copies is not None:
            self._copies.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.discard()
        return False
