"""What a container type can hold, found by trying: FFmpeg's codec query cannot tell.

It says "unknown" for everything MPEG-TS holds, H.264 and AAC included
(PyAV counts that as no), and yes where the muxer then refuses the stream
(MOV takes Opus and FLAC only in its MP4 form; FLV takes PCM at 44.1 kHz,
not at 48). So the answer is writing a header to memory.
"""

from __future__ import annotations

import io

import av

from framecolor.errors import OutputError
from framecolor.video.files import NOT_ONE_FILE, output_format
from framecolor.video.encoding import (
    _CRF_CODECS,
    DEFAULT_ENCODER,
    default_pix_fmt,
    encoder_name,
    encoder_options,
    set_up_trial,
)

# The codecs FFmpeg's MPEG-TS muxer gives a stream type (or a registration
# descriptor) that its demuxer reads back: video, and the broadcast audio and
# subtitle codecs. Anything else (PCM, FLAC, text subtitles) it writes as
# private data, which comes back as an unknown data stream.
_MPEGTS_TYPED = frozenset({
    "mpeg1video", "mpeg2video", "mpeg4", "h264", "libx264", "hevc", "libx265", "vc1", "dirac",
    "mp2", "mp3", "libmp3lame", "aac", "aac_latm", "ac3", "eac3", "dts", "dca", "opus", "libopus",
    "s302m", "dvb_subtitle", "dvb_teletext",
})
# MPEG program streams (.mpg, .vob) take a subtitle stream of any codec and
# write it under a DVD subtitle stream id: text comes back as a DVD subtitle
# track that shows nothing. DVD subtitles are the only ones they carry.
_MPEGPS = frozenset({"mpeg", "vob", "dvd", "svcd", "vcd"})
_MPEGPS_SUBTITLES = frozenset({"dvd_subtitle", "dvdsub"})
# Containers that hold one frame rate, not each frame's time: AVI indexes its
# frames at 1/fps, Y4M states a rate in its header.
_RATE_ONLY = frozenset({"avi", "yuv4mpegpipe"})
# Encoders that write the frames as they are.
RAW_CODECS = frozenset({"rawvideo", "wrapped_avframe"})


def header_writes(format_name: str, add_stream) -> bool:
    """Does a file of container type `format_name`, with the stream
    `add_stream(container)` adds, get as far as its header? That opens
    encoders, so it also tells whether an encoder takes its settings (mp2
    refuses 5.1 sound). Never one that writes no single file (DASH's
    header, tried in memory, kills the process)."""
    if format_name in NOT_ONE_FILE:
        return False
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as trial:
            add_stream(trial)
            trial.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


def reads_back(format_name: str, add_stream, frame, read):
    """What `read(stream)` finds in the video stream of a file of container
    type `format_name` holding `frame`, encoded by the stream
    `add_stream(container)` adds and returns: what a reader of such a file
    will find, which is not always what the stream was given (a muxer may
    take a fact from elsewhere, or have no place for it). None where the
    file cannot be written or its video read."""
    data = io.BytesIO()
    try:
        with av.open(data, "w", format=format_name) as trial:
            stream = add_stream(trial)
            for packet in (*stream.encode(frame), *stream.encode(None)):
                trial.mux(packet)
        data.seek(0)
        with av.open(data) as written:
            videos = [s for s in written.streams.video if s.codec_context is not None]
            return read(videos[0]) if videos else None
    except (av.error.FFmpegError, ValueError):
        return None


def holds_frame_times(container_format) -> bool:
    """Can a file of this container type (an av.format.ContainerFormat) give
    each frame its own time, as a variable-rate video needs? Not AVI or Y4M,
    which hold one frame rate, nor elementary streams (.h264, .m2v), which
    hold no time at all. (FFmpeg's AVFMT_VARIABLE_FPS flag cannot tell:
    3GP, F4V and MPEG-PS lack it and keep each frame's time.)"""
    if container_format.name in _RATE_ONLY:
        return False
    return not container_format.flags & av.format.Flags.no_timestamps.value


def _are_subtitles(names) -> bool:
    for name in names:
        try:
            return av.Codec(name, "r").type == "subtitle"
        except ValueError:  # no decoder by that name: another of the names may have one
            continue
    return False


def holds(format_name: str, names, add_stream) -> bool:
    """Can a file of container type `format_name` hold a stream of one of these
    codec `names`, as `add_stream(container)` adds it? MPEG-TS writes a header
    with any stream, but one it has no stream type for goes out as private
    data that no demuxer reads back; MPEG-PS takes any subtitles as DVD ones."""
    if format_name == "mpegts" and not set(names) & _MPEGTS_TYPED:
        return False
    if format_name in _MPEGPS and not set(names) & _MPEGPS_SUBTITLES and _are_subtitles(names):
        return False
    return header_writes(format_name, add_stream)


def holds_video(format_name: str, codec: str) -> bool:
    """Can a file of container type `format_name` hold the video of the encoder `codec`?"""
    def add(container):
        pix_fmt = default_pix_fmt(codec)  # ProRes takes no yuv420p
        # The encoder's options: x265's among them, which quiet its log.
        set_up_trial(container.add_stream(codec, rate=25).codec_context, codec, pix_fmt,
                     encoder_options(codec, pix_fmt=pix_fmt))

    return holds(format_name, {codec, encoder_name(codec)}, add)


def container_type(path) -> tuple[str | None, str | None]:
    """(FFmpeg's container type, its own video encoder) for a file named
    `path`, as a writer opening it picks them (output_format). None for
    either where there is none (no suffix FFmpeg knows; an encoder this
    FFmpeg lacks)."""
    found = output_format(path)
    if found is None:
        return None, None
    try:
        return found.name, av.Codec(found.video_codec, "w").name
    except (av.error.FFmpegError, ValueError, TypeError):  # no encoder by that name here
        return found.name, None


def output_encoder(path, codec: str | None = None) -> str:
    """The encoder a video written to `path` gets, for checking its settings
    (--crf, --preset, --pix-fmt) against the one that will take them:
    `codec`'s, or with none DEFAULT_ENCODER, whose settings keep the luma,
    where the container holds it; else the container's own video encoder
    (VP9 for WebM), as ffmpeg picks one, if it has a constant-quality mode
    here (_CRF_RANGES) or writes raw frames (Y4M). Others (GIF's palette,
    Ogg's VP8 at its 256 kb/s default) would make a worse file than the
    error that names the problem, so they get DEFAULT_ENCODER, which the
    writer then says the file cannot hold."""
    if codec:
        return encoder_name(codec)
    format_name, own = container_type(path)
    if format_name is None or own is None or holds_video(format_name, DEFAULT_ENCODER):
        return DEFAULT_ENCODER
    return own if own in RAW_CODECS | _CRF_CODECS else DEFAULT_ENCODER


def another_codec_could_fit(path) -> bool:
    """Could --codec make a file named `path` of frames framecolor writes?
    Not a GIF (nor an animated PNG): its own encoder takes palettes or RGB
    only, and no other goes in it."""
    own = container_type(path)[1]
    if own is None:
        return True  # no own encoder here says nothing of others
    try:
        default_pix_fmt(own)
    except OutputError:
        return False
    return True
