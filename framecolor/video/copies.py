"""The streams a written video carries over from its source: audio and
subtitles copied packet for packet (or re-encoded where the output's
container cannot hold them), the cover picture, attached files, chapters and
tags, muxed in step with the frames the writer encodes."""

from __future__ import annotations

import heapq
import math
import warnings
from fractions import Fraction
from pathlib import Path

import av
from av.subtitles.subtitle import SubtitleSet

from framecolor.video.containers import header_writes, holds
from framecolor.video.files import VideoWarning, _check_input_file, _open_input
from framecolor.video.probing import (
    _codec_name,
    _frame_rate,
    _is_attached_picture,
    _track_title,
    _video_stream,
)
from framecolor.video.subtitle_lines import one_at_a_time
from framecolor.video.timecodes import timecode_after

# Cover pictures Matroska holds as attachments, by codec, and their types.
_COVER_SUFFIXES = {"mjpeg": ".jpg", "png": ".png"}
_IMAGE_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}
# Text subtitle codecs, which FFmpeg converts among, and the one each
# container type takes for those it cannot hold: MP4's mov_text, WebM's
# WebVTT, and for Matroska, which holds all the others but an MP4's
# mov_text, ASS, as ffmpeg picks: it keeps the times, and the font, sizes
# and colours the MP4 sets, which SubRip has no place for.
_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
_TEXT_SUBTITLE_CODECS = {"mp4": "mov_text", "mov": "mov_text", "3gp": "mov_text", "ipod": "mov_text",
                         "webm": "webvtt", "matroska": "ass"}
# Tags a muxer or mkvmerge writes about the file itself: copied, they would
# describe the source's encoding (its bitrate, its byte count), not ours.
_WRITER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name",
                          "vendor_id", "duration", "bps", "number_of_frames", "number_of_bytes",
                          "_statistics_writing_app", "_statistics_writing_date_utc", "_statistics_tags"})


def _user_tags(tags) -> dict[str, str]:
    """`tags` less those the writer of a file sets (mkvmerge's carry a language: BPS-eng)."""
    return {k: v for k, v in tags.items() if k.lower().split("-")[0] not in _WRITER_TAGS}


def _track_tags(tags) -> dict[str, str]:
    """A track's `tags` to copy, its title under `title` where the source
    gave it as `name`: FFmpeg reads an MP4's or MOV's track title back so,
    and writes only `title`. Copied as it came, the title was lost in an
    MP4 and became a NAME tag, which players do not show, in an MKV."""
    tags = _user_tags(tags)
    title = _track_title(tags)
    if title is not None and not tags.get("title"):
        tags.pop("name", None)
        tags["title"] = title
    return tags


def _is_timecode_track(stream) -> bool:
    """A MOV's timecode (tmcd) track, which FFmpeg shows as a data stream
    tagged with its timecode."""
    return stream.type == "data" and any(key.lower() == "timecode" for key in stream.metadata)


def _data_kind(stream) -> str:
    """What a data stream holds, as far as FFmpeg says: its codec, else its handler ("GoPro MET")."""
    codec = _codec_name(stream)
    if codec in ("unknown", "none"):
        return stream.metadata.get("handler_name") or codec
    return codec


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


# FFmpeg's default layout for a count of channels (av_channel_layout_default).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _name_channel_layout(copy) -> None:
    """Give a copied audio stream whose channels have no stated order ("2
    channels": a WAV without a channel mask, PCM from some recorders) the
    usual layout of that many channels, as ffmpeg guesses it. MP4's muxer
    takes such a stream at its header and fails at its end, after all the
    work; the samples are the same either way."""
    if copy.type != "audio":
        return
    layout = copy.codec_context.layout
    default = _DEFAULT_LAYOUTS.get(layout.nb_channels)
    if default is not None and layout.name == f"{layout.nb_channels} channels":
        copy.codec_context.layout = default


# Containers whose FFmpeg muxer stores no time before 0 but an audio track's
# codec delay (Matroska's CodecDelay): the first packet that starts earlier
# moves every stream later by its lead, the picture with them. (A .webm's
# does; a .mkv is written with that shift off, writer._container_options,
# and its excerpts still leave out the sound from before their start.)
_NOTHING_BEFORE_ZERO = frozenset({"matroska", "webm"})


def _starts_before_its_delay(start, codec_context) -> bool:
    """Whether a copied audio packet at `start` s of an excerpt begins
    earlier than its codec's delay (AAC's 1024 priming samples) covers.

    Such a packet is left out of a Matroska excerpt: its sound before the
    picture's first frame is what an excerpt cuts anyway, and kept it
    would start the picture late by that much (a FLAC packet: up to 96 ms).
    What follows it plays as before, in time with the picture.
    """
    if start >= 0:
        return False
    rate = getattr(codec_context, "sample_rate", 0) or 0
    delay = getattr(codec_context, "delay", 0) or 0
    return not rate or start < -Fraction(delay, rate)


def _shown_from_zero(start: int, duration: int) -> int | None:
    """How long a subtitle line shown from `start` (before 0, an excerpt's
    start) for `duration` stays on screen after 0; None if it does not.

    The line is still on screen when the excerpt starts, so it shows from
    0 for what is left of it, as a viewer of the part expects. Kept before
    0, it would be lost: MP4's mov_text track puts it where no player shows
    it, and Matroska, which cannot store a time before 0, moves every
    stream by the line's lead, the picture starting that much late.
    """
    left = start + duration
    return left if left > 0 else None


def excerpt_chapters(chapters: list[dict], start: float, duration: float | None) -> list[dict]:
    """The `chapters` (PyAV's dicts) a part of a video shows, from `start` s
    for `duration` s (None: to the end), moved onto the part's timeline and
    cut to it, as ffmpeg -ss/-t keeps them: a film's part still opens on the
    chapter it starts in."""
    kept = []
    for chapter in chapters:
        time_base = chapter["time_base"]
        shift = round(start / time_base)
        first, last = chapter["start"] - shift, chapter["end"] - shift
        length = None if duration is None else round(duration / time_base)
        if last <= 0 or (length is not None and first >= length):
            continue  # wholly before or after the part
        kept.append({**chapter, "start": max(first, 0), "end": last if length is None else min(last, length)})
    return kept


def _timed(packets):
    """`packets` (a demuxer's) that can be muxed: not the empty one that
    ends each stream, nor one with no time at all (the muxer would reject
    it); a cover picture, which belongs to no time, at 0."""
    for packet in packets:
        if packet.size == 0:
            continue
        if packet.dts is None:
            if packet.pts is None and not _is_attached_picture(packet.stream):
                continue
            packet.dts = packet.pts = packet.pts or 0
        yield packet


def _seconds(packet) -> float:
    """When a `_timed` packet is decoded, in seconds: the order to mux in."""
    return float(packet.dts * packet.time_base)


# How long before an excerpt's start its subtitles are read from: a line
# on screen at the start began at most this long before it. Reading from
# the file's start would be exact for any line, but read most of a film to
# take a part from its end (an MKV's or TS's demuxer reads every packet of
# the streams it skips).
_SUBTITLE_LOOKBACK_S = 300


def _skip_unread(stream) -> None:
    """Have the demuxer skip `stream`'s packets (PyAV too old to ask: read and dropped)."""
    try:
        stream.discard = "all"
    except (AttributeError, ValueError, TypeError):
        pass


# Whether this PyAV makes subtitle lines to encode (SubtitleSet.create);
# without it, lines are converted as they come, overlaps and all.
_BUILDS_LINES = hasattr(SubtitleSet, "create")


def _nearest(value: Fraction) -> int:
    """`value` to the nearest integer, halves away from 0, as FFmpeg rescales stamps."""
    ticks = math.floor(abs(value) + Fraction(1, 2))
    return ticks if value >= 0 else -ticks


def _rescale(packet, time_base) -> None:
    """Move `packet`'s stamps into `time_base`, as muxing it would (av_packet_rescale_ts)."""
    if not packet.time_base:  # unstamped: its numbers are taken as in `time_base`, as FFmpeg does
        packet.time_base = time_base
        return
    ratio = Fraction(packet.time_base) / Fraction(time_base)
    packet.pts, packet.dts, packet.duration = (None if v is None else _nearest(v * ratio)
                                               for v in (packet.pts, packet.dts, packet.duration))
    packet.time_base = time_base


class CopiedStreams:
    """`source`'s audio, subtitles, cover, attachments, chapters and tags, added
    to the open output container `out` (whose video stream is `video_stream`,
    and which will be renamed to `path`) as ffmpeg copies them by default.

    Audio the container cannot hold as it is gets re-encoded in the
    container's own audio codec, as ffmpeg does too. `excerpt` True makes
    it a part's: seek() then starts the copies at the part's start and moves
    them, and the chapters, onto its timeline, the chapters cut to the part
    (`excerpt_duration` long; None: to the source's end).
    Construction opens `source`; mux() then interleaves its packets with the
    frames, and finish() or close() lets it go.
    """

    def __init__(self, source: Path, out, video_stream, *, path: Path, excerpt: bool = False,
                 excerpt_duration: float | None = None):
        self._out = out
        self._path = path
        self._copy = {}  # source stream index -> output stream, packets copied as they are
        self._reencode = {}  # source stream index -> (source stream, output stream), decoded and encoded anew
        self._pending = None
        self._last_dts = {}  # output stream index -> the dts last muxed in it, in seconds
        self._reordered = set()  # output stream indexes warned of stamps that go back
        self._start = None  # an excerpt's start on the source's timeline (s), once seek() has it
        self._excerpt_duration = excerpt_duration
        self._excerpt_chapters = []  # set once seek() knows where the part starts
        self._video_out = video_stream
        # The colored video stream's (frame rate, first time in s) for moving a
        # timecode (None: a sound file): kept as values, since the stream dies
        # with its container, which is closed at once where nothing is copied from it.
        self._picture_timing = None
        self._subtitle_source = None  # an excerpt's subtitles, read apart from the rest (seek())
        self._held_lines = {}  # source stream index -> lines held for mov_text until the next clears them
        self._source_path = source
        self._source = _open_input(_check_input_file(source))
        try:
            self._add_streams(source, video_stream, excerpt)
        except BaseException:
            self.close()
            raise

    def _add_streams(self, source: Path, video_stream, excerpt: bool) -> None:
        self._out.metadata.update(_user_tags(self._source.metadata))
        chapters = self._source.chapters()
        if excerpt:
            self._excerpt_chapters = chapters
        elif chapters:
            self._out.set_chapters(chapters)
        picture = None  # the source's video stream, the one colored (None: a sound file)
        if any(not _is_attached_picture(s) for s in self._source.streams.video):
            # A video's tags (a timecode, a language); a sound file alone has none.
            picture = _video_stream(self._source, source)
            video_stream.metadata.update(_user_tags(picture.metadata))
            start = picture.start_time
            self._picture_timing = (_frame_rate(picture), start * picture.time_base if start else 0)
        self._add_attachments(source)
        self._add_covers(source)
        self._warn_of_dropped_streams(source, picture)
        for stream in [*self._source.streams.audio, *self._source.streams.subtitles]:
            codec = _codec_name(stream)
            names = {codec, stream.codec_context.name if stream.codec_context is not None else codec}
            if self._holds_copy(stream, names):
                copy = self._out.add_stream_from_template(stream)
                _name_channel_layout(copy)
                self._copy[stream.index] = copy
            elif (copy := self._add_reencoded_audio(stream) or self._add_converted_subtitles(stream)) is not None:
                warnings.warn(f"re-encoding {stream.type} stream #{stream.index} ({codec}) of {source} as "
                              f"{copy.codec_context.name}: a {self._path.suffix} file cannot hold {codec}",
                              VideoWarning, stacklevel=4)
                self._reencode[stream.index] = (stream, copy)
            else:
                warnings.warn(f"skipping {stream.type} stream #{stream.index} ({codec}) of {source}: "
                              f"a {self._path.suffix} file cannot hold it", VideoWarning, stacklevel=4)
                continue
            copy.metadata.update(_track_tags(stream.metadata))  # language and title tell tracks apart
            copy.disposition = stream.disposition  # which track players pick by default
        if self._copy or self._reencode:
            self._packets = _timed(self._source.demux(*self._copied_sources()))
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
            if name in ("mp4", "ipod") and header_writes(name, lambda container: _add_cover_stream(container, stream)):
                self._copy[stream.index] = _add_cover_stream(self._out, stream)
            elif name == "matroska" and suffix is not None and (picture := _cover_bytes(source, stream.index)):
                self._out.add_attachment(f"cover{suffix}", _IMAGE_TYPES[suffix], picture)
            else:
                warnings.warn(f"skipping the cover picture ({codec}) of {source}: a {self._path.suffix} file "
                              "cannot hold it (.mp4 and .mkv can)", VideoWarning, stacklevel=5)

    def _warn_of_dropped_streams(self, source: Path, picture) -> None:
        """Say which of the source's streams no output carries: a video
        stream beside `picture`, the one colored (another angle), and data
        streams (GPS, broadcast cues). A MOV's timecode track is not dropped:
        the video's timecode tag is kept, from which the muxer writes it anew."""
        for stream in self._source.streams:
            if stream.type == "video" and not _is_attached_picture(stream) and stream is not picture:
                title = _track_title(stream.metadata)
                warnings.warn(f"skipping video stream #{stream.index} ({_codec_name(stream)}"
                              f"{f', {title!r}' if title else ''}) of {source}: only the picture of stream "
                              f"#{picture.index} is colored and written", VideoWarning, stacklevel=5)
            elif stream.type == "data" and not _is_timecode_track(stream):
                warnings.warn(f"skipping data stream #{stream.index} ({_data_kind(stream)}) of {source}: "
                              "only audio, subtitles and the timecode are copied", VideoWarning, stacklevel=5)

    def _add_attachments(self, source: Path) -> None:
        """The files a Matroska source carries (the fonts its ASS subtitles are
        drawn in), where this container holds them: only Matroska does (WebM's
        muxer takes them and writes nothing). A cover picture is not among
        them: FFmpeg shows it as a stream (_add_covers)."""
        attachments = [a for a in self._source.streams.attachments if a.name and a.mimetype and a.data]
        if attachments and self._out.format.name != "matroska":
            warnings.warn(f"skipping {len(attachments)} attached file(s) of {source} "
                          f"({', '.join(a.name for a in attachments)}): a {self._path.suffix} file cannot hold them",
                          VideoWarning, stacklevel=5)
            return
        for attachment in attachments:
            self._out.add_attachment(attachment.name, attachment.mimetype, bytes(attachment.data))

    def _copied_sources(self) -> list:
        return [s for s in self._source.streams if s.index in self._copy or s.index in self._reencode]

    def _holds_copy(self, stream, names) -> bool:
        return holds(self._out.format.name, names, lambda container: container.add_stream_from_template(stream))

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

            if header_writes(self._out.format.name, add):
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

        return add(self._out) if header_writes(self._out.format.name, add) else None

    # -- muxing

    def seek(self, seconds: float) -> None:
        """Start at a keyframe before `seconds`, an excerpt's start, and from
        then on move every packet onto the excerpt's timeline (by `seconds`)."""
        self._start = seconds
        if self._excerpt_chapters:
            self._out.set_chapters(excerpt_chapters(self._excerpt_chapters, seconds, self._excerpt_duration))
        self._move_timecodes(seconds)
        if self._source is None:
            return
        self._source.seek(max(0, math.floor(seconds * av.time_base)), backward=True)
        for source, _ in self._reencode.values():
            source.codec_context.flush_buffers()
        copied = self._copied_sources()
        others = [s for s in copied if s.type != "subtitle"]
        subtitles = [s.index for s in copied if s.type == "subtitle"]
        packets = _timed(self._source.demux(*others)) if others else iter(())
        if subtitles:
            packets = heapq.merge(packets, self._subtitles_from_before(subtitles, seconds), key=_seconds)
        self._packets = packets
        self._pending = None

    def _subtitles_from_before(self, indexes: list[int], seconds: float):
        """The packets of subtitle streams `indexes`, read in a container of
        their own from _SUBTITLE_LOOKBACK_S before `seconds`.

        The excerpt's seek lands on the keyframe before its start (an MKV:
        on that keyframe's cluster), and a line on screen at the start may
        have begun before that: read with the rest, it was lost. Only the
        subtitles are read here; the other streams' packets are skipped
        unread where the demuxer can (an MP4's are)."""
        self._close_subtitle_source()
        container = self._subtitle_source = _open_input(self._source_path)
        for stream in container.streams:
            if stream.index not in indexes:
                _skip_unread(stream)
        if seconds > _SUBTITLE_LOOKBACK_S:
            try:
                container.seek(math.floor((seconds - _SUBTITLE_LOOKBACK_S) * av.time_base), backward=True)
            except av.error.FFmpegError:
                pass  # read from the start: slower, and the same lines
        return _timed(container.demux(*[container.streams[i] for i in indexes]))

    def _move_timecodes(self, seconds: float) -> None:
        """Move the timecode tags (the video's, the file's) on to an
        excerpt's first frame, `seconds` into the source: a part from 2 s
        of a film whose timecode starts at 01:00:00:00 starts at
        01:00:02:00. A timecode that cannot be moved (drop-frame at a rate
        that drops none, or unreadable) is left out, with a warning, rather
        than kept wrong."""
        if self._picture_timing is None:
            return
        rate, first = self._picture_timing
        frames = round(max(Fraction(seconds) - first, 0) * rate) if rate else 0
        for tags in (self._video_out.metadata, self._out.metadata):
            for key in [k for k in tags if k.lower() == "timecode"]:
                moved = timecode_after(tags[key], frames, rate)
                if moved is None:
                    warnings.warn(f"leaving out the timecode {tags.pop(key)} of {self._source_path}: "
                                  f"it cannot be moved on to the excerpt's start at {float(rate):g} fps",
                                  VideoWarning, stacklevel=4)
                else:
                    tags[key] = moved

    def sound_start(self) -> float | None:
        """Where the copied sound starts on the source's timeline (s), as its
        streams state; None without sound."""
        if self._source is None:
            return None
        starts = [float(s.start_time * s.time_base) for s in self._copied_sources()
                  if s.type == "audio" and s.start_time is not None and s.time_base]
        return min(starts, default=None)

    def mux(self, until: float | None) -> None:
        """Mux copied packets up to time `until` (all if None): keeps the file interleaved.

        An excerpt's packets that end before its first frame are dropped, and
        the rest move with the frames, by the first frame's time."""
        if self._source is None:
            return
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            if packet is None:
                self.finish()
                return
            if until is not None and _seconds(packet) > until:
                self._pending = packet
                return
            self._pending = None
            if self._start is not None and not _is_attached_picture(packet.stream) \
                    and not self._shift_into_excerpt(packet):
                continue
            if packet.stream.index in self._reencode:
                self._reencode_packet(packet)
            else:
                self._mux_in_order(packet, packet.stream.index, self._copy[packet.stream.index])

    def _mux_in_order(self, packet, index: int, out) -> None:
        """Mux `packet` of source stream `index` in `out`, its dts moved on
        past the last one muxed there where it is not (a capture's repeated
        stamp, recordings joined byte for byte), as ffmpeg does, with a
        warning: MP4's muxer fails on such a packet, after all the work.
        Moved, not dropped: sound played on in order keeps its place, where
        a dropped packet would bring all that follows it early."""
        packet.stream = out
        last = self._last_dts.get(out.index)
        if last is not None and packet.dts is not None:
            # In the stream's time base, as the muxer checks them.
            _rescale(packet, out.time_base)
            last = _nearest(last / Fraction(out.time_base))
            # Two subtitle lines may start together (two speakers); sound and pictures may not.
            least = last if out.type == "subtitle" else last + 1
            if packet.dts < least:
                if out.index not in self._reordered:
                    self._reordered.add(out.index)
                    warnings.warn(f"{out.type} stream #{index} of {self._source_path}: a packet stamped "
                                  f"{float(packet.dts * out.time_base):.2f} s follows one at "
                                  f"{float(last * out.time_base):.2f} s (a repeated stamp, or times that start "
                                  "again); such packets are moved on, and may play out of time",
                                  VideoWarning, stacklevel=2)  # in this package: the CLI says it in one line
                if packet.pts is not None:
                    packet.pts = max(packet.pts, least)
                packet.dts = least
        self._out.mux(packet)
        if packet.dts is not None and packet.time_base:
            # In seconds: a muxer sets its streams' time bases as it writes its header.
            self._last_dts[out.index] = packet.dts * Fraction(packet.time_base)

    def _shift_into_excerpt(self, packet) -> bool:
        """Move `packet` onto the excerpt's timeline; False if it ends before the excerpt starts."""
        stamp = packet.pts if packet.pts is not None else packet.dts
        if float((stamp + (packet.duration or 0)) * packet.time_base) <= self._start:
            return False
        shift = round(self._start / packet.time_base)
        if packet.stream.type == "subtitle" and stamp - shift < 0:
            shown = _shown_from_zero(stamp - shift, packet.duration or 0)
            if shown is None:
                return False
            packet.pts, packet.dts, packet.duration = 0, 0, shown
            return True
        if self._out.format.name in _NOTHING_BEFORE_ZERO and packet.stream.index in self._copy \
                and _starts_before_its_delay((stamp - shift) * packet.time_base, packet.stream.codec_context):
            return False
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
            for encoded in out.encode(frame):
                self._mux_in_order(encoded, source.index, out)

    def _convert_subtitle(self, packet, source, out) -> None:
        try:
            subtitles = source.codec_context.decode2(packet)
        except av.error.FFmpegError:
            return  # one unreadable line, not a failed video
        if subtitles is None or not subtitles.rects:
            return
        # The encoder stamps its packet in microseconds, or not at all: the
        # line keeps the source packet's times instead.
        start = packet.pts if packet.pts is not None else packet.dts
        end = start + (packet.duration or 0)
        if out.codec_context.name == "mov_text" and _BUILDS_LINES:
            self._hold_lines(source.index, out, packet.time_base,
                             [(start, end, rect.ass) for rect in subtitles.rects if rect.ass])
        else:
            self._encode_line(subtitles, start, end, packet.time_base, source.index, out)

    def _encode_line(self, subtitles, start: int, end: int, time_base, index: int, out) -> None:
        """Encode `subtitles` (a SubtitleSet) in `out`, shown from `start` to `end` (in `time_base`)."""
        try:
            converted = out.codec_context.encode_subtitle(subtitles)
        except av.error.FFmpegError:
            return  # one line the encoder cannot take, not a failed video
        converted.pts = converted.dts = start
        converted.duration = end - start
        converted.time_base = time_base
        self._mux_in_order(converted, index, out)

    def _hold_lines(self, index: int, out, time_base, lines: list) -> None:
        """Hold a line bound for mov_text, (start, end, ASS dialogue) in
        `time_base`, until one starts after all those held have ended: then
        those are written, split where they overlap (one_at_a_time)."""
        held = self._held_lines.get(index, (out, time_base, []))[2]
        if held and lines and lines[0][0] >= max(end for _, end, _ in held):
            self._write_held_lines(index)
        self._held_lines.setdefault(index, (out, time_base, []))[2].extend(lines)

    def _write_held_lines(self, index: int) -> None:
        out, time_base, held = self._held_lines.pop(index)
        for start, end, dialogue in one_at_a_time(held):
            milliseconds = round((end - start) * Fraction(time_base) * 1000)
            self._encode_line(SubtitleSet.create(dialogue, 0, milliseconds), start, end, time_base, index, out)

    # -- finishing

    def finish(self) -> None:
        """Flush the re-encoders into the output and let the source go; the
        rest of the source, past where mux() stopped, is left out."""
        if self._source is None:
            return
        for index in list(self._held_lines):
            self._write_held_lines(index)
        for source, out in self._reencode.values():
            if out.type == "audio":
                self._reencode_audio(None, source, out)
                for encoded in out.encode(None):
                    self._mux_in_order(encoded, source.index, out)
        self._source.close()
        self._source = None
        self._close_subtitle_source()

    def _close_subtitle_source(self) -> None:
        if self._subtitle_source is not None:
            try:
                self._subtitle_source.close()
            except Exception:  # already failing, or done with
                pass
        self._subtitle_source = None

    def close(self) -> None:
        """Let the source go, writing nothing more (what a failure does)."""
        if self._source is not None:
            try:
                self._source.close()
            except Exception:  # already failing
                pass
        self._source = None
        self._held_lines.clear()
        self._close_subtitle_source()
