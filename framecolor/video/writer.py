"""VideoWriter: encoding frames with their pts into a new file, copying (or
re-encoding where the container cannot hold them) the source's audio,
subtitles, attachments, chapters and tags, written under a temporary name."""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from framecolor.errors import OutputError
from framecolor.video.encoding import (
    _CRF_CODECS,
    _FULL_CHROMA_FORMATS,
    _JPEG_FORMATS,
    _ODD_SIZE_FALLBACK,
    _PRESET_CODECS,
    _WRITE_YUV_FORMATS,
    DEFAULT_ENCODER,
    FULL_RANGE,
    _encoder,
    _open_encoder,
    encoder_options,
    interlaced_options,
    is_interlaced,
    top_field_first,
)
from framecolor.video.files import (
    VideoWarning,
    _check_input_file,
    _open_input,
    _temp_path,
    _write_errors,
    check_output_path,
)
from framecolor.video.photos import _as_rgb
from framecolor.video.pixels import _plane_view
from framecolor.video.probing import VideoInfo, _codec_name, _is_attached_picture, _video_stream, one_filter_graph

# Cover pictures Matroska holds as attachments, by codec, and their types.
_COVER_SUFFIXES = {"mjpeg": ".jpg", "png": ".png"}
_IMAGE_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


def _add_cover_stream(container, stream):
    copy = container.add_stream_from_template(stream)
    copy.disposition = av.stream.Disposition.attached_pic
    return copy


def _cover_bytes(source: Path, index: int) -> bytes | None:
    """The picture of attached-picture stream `index` (FFmpeg hands it out first, untimed)."""
    with _open_input(source) as container:
        for packet in container.demux(container.streams[index]):
            if packet.size:
                return bytes(packet)
    return None


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
    (a video's, or a sound file's) audio and subtitle streams, its cover
    picture, its chapters, and its tags: the file's
    (title, date, ...) and its video stream's (language, a timecode), as
    ffmpeg does by default. Audio the container cannot hold as it is gets
    re-encoded in the container's own audio codec, as ffmpeg does too.
    `excerpt` True writes a part of the source: every stream is shifted so
    that the first frame written is at 0, and the copied ones are cut to
    the frames' span (chapters are not copied). `end_with_frames` True cuts
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
        pix_fmt: str = "yuv420p",
        copy_streams_from=None,
        excerpt: bool = False,
        end_with_frames: bool = False,
        overwrite: bool = False,
        inputs: Iterable = (),
        matrix: str | None = None,
        full_range: bool = False,
        display_matrix: Iterable[int] | None = None,
        sample_aspect_ratio=None,
        field_order: int = 0,
    ):
        self.path = Path(path)
        self._colorspace = _COLORSPACES[matrix]
        check_output_path(self.path, [*inputs, copy_streams_from], overwrite)
        self.width, self.height = int(width), int(height)
        self.fps = _fraction(fps)
        self.time_base = _fraction(time_base)
        self.full_range = full_range or pix_fmt.startswith("yuvj")
        self._sample_aspect_ratio = _fraction(sample_aspect_ratio) if sample_aspect_ratio else None
        self._field_order = field_order
        self._fields = None  # marks each frame's field order for the encoder, where it codes fields
        self.frames_written = 0
        self._last_pts = None
        self._source = None
        self._copy = {}  # source stream index -> output stream, packets copied as they are
        self._reencode = {}  # source stream index -> (source stream, output stream), decoded and encoded anew
        self._pending = None
        self._excerpt = excerpt
        self._end_with_frames = excerpt or end_with_frames
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
            self.discard()
            raise

    @classmethod
    def like(cls, path, info: VideoInfo, **options) -> "VideoWriter":
        """A writer for `path` shaped as `info`'s video: its size, timing, range,
        display matrix and pixel aspect, all an output needs to play as its source did."""
        return cls(path, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                   full_range=info.full_range, display_matrix=info.display_matrix,
                   sample_aspect_ratio=info.sample_aspect_ratio, field_order=info.field_order, **options)

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
        stream.options = self._field_options(codec, encoder_options(codec, crf, preset))
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
        _open_encoder(stream.codec_context, codec, crf, preset)  # bad options fail here, not mid-video
        return stream

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

    def _add_copied_streams(self, source: Path):
        self._source = _open_input(_check_input_file(source))
        self._out.metadata.update(_user_tags(self._source.metadata))
        chapters = self._source.chapters()
        if chapters and not self._excerpt:
            self._out.set_chapters(chapters)
        if any(not _is_attached_picture(s) for s in self._source.streams.video):
            # A video's tags (a timecode, a language); a sound file alone has none.
            self._stream.metadata.update(_user_tags(_video_stream(self._source, source).metadata))
        self._add_attachments(source)
        self._add_covers(source)
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

    def _add_covers(self, source: Path) -> None:
        """A source's cover picture (an attached picture: a one-frame video
        stream that players show as the file's artwork), copied as MP4 holds
        it, or as the cover.jpg attachment Matroska players look for.
        QuickTime's muxer drops it without a word, and others cannot hold it."""
        covers = [s for s in self._source.streams.video if _is_attached_picture(s)]
        name = self._out.format.name
        for stream in covers:
            codec = _codec_name(stream)
            suffix = _COVER_SUFFIXES.get(codec)
            if name in ("mp4", "ipod") and self._header_writes(lambda container: _add_cover_stream(container, stream)):
                self._copy[stream.index] = _add_cover_stream(self._out, stream)
            elif name == "matroska" and suffix is not None and (picture := _cover_bytes(source, stream.index)):
                self._out.add_attachment(f"cover{suffix}", _IMAGE_TYPES[suffix], picture)
            else:
                warnings.warn(f"skipping the cover picture ({codec}) of {source}: a {self.path.suffix} file "
                              "cannot hold it (.mp4 and .mkv can)", VideoWarning, stacklevel=4)

    def _add_attachments(self, source: Path) -> None:
        """The files a Matroska source carries (the fonts its ASS subtitles are
        drawn in), where this container holds them: only Matroska does (WebM's
        muxer takes them and writes nothing). A cover picture is not among
        them: FFmpeg shows it as a stream (_add_covers)."""
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
        if self._fields is not None:
            frame = self._fields.mark(frame)
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
                    if packet.pts is None and not _is_attached_picture(packet.stream):
                        continue  # no time at all: the muxer would reject it
                    packet.dts = packet.pts = packet.pts or 0  # a cover picture belongs to no time: 0
            stamp = packet.dts if packet.dts is not None else packet.pts
            if until is not None and float(stamp * packet.time_base) > until:
                self._pending = packet
                return
            self._pending = None
            if self._excerpt and not _is_attached_picture(packet.stream) and not self._shift_into_excerpt(packet):
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
                self._mux_copies(until=self._frames_end() if self._end_with_frames else None)
                if self._source is not None:  # the rest of the source goes on past the frames: not in it
                    self._end_copies()
                self._out.close()
                os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def _frames_end(self) -> float:
        """Seconds on the source's timeline where the last frame written stops showing."""
        return float(self._last_pts * self.time_base) + (float(1 / self.fps) if self.fps else 0.0)

    def discard(self) -> None:
        """Close, keeping nothing: the temporary file goes (what a failure does)."""
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
            self.discard()
        return False
