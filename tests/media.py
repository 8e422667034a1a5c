"""Tiny generated test media, written with PyAV directly (not with framecolor.video,
so that a bug there cannot hide itself in the fixtures).

The content is deterministic: `frame_image(i, w, h)` is exactly what `make_video`
feeds the encoder for frame `i`, so a test can compare decoded frames with it.
"""

from __future__ import annotations

import io
import itertools
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48000
TONE_HZ = 440.0

# Frame durations (in units of one nominal frame) that make a clip VFR.
VFR_STEPS = (1, 2, 1, 3, 1, 1, 2)

_SRT = """1
00:00:00,000 --> 00:00:00,150
first line

2
00:00:00,200 --> 00:00:00,350
second line
"""

_ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 64
PlayResY: 48

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,12,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,2,2,2,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.00,0:00:00.15,Default,,0,0,0,,first line
Dialogue: 0,0:00:00.20,0:00:00.35,Default,,0,0,0,,second line
"""


def _srt_clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _ass_clock(seconds: float) -> str:
    cs = round(seconds * 100)  # ASS counts centiseconds
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _subtitle_text(kind: str, cues) -> str:
    """An SRT or ASS file of `cues`, (start s, end s, text) triples; None: the two default lines."""
    if cues is None:
        return _ASS if kind == "ass" else _SRT
    if kind == "srt":
        return "\n".join(f"{i + 1}\n{_srt_clock(a)} --> {_srt_clock(b)}\n{text}\n"
                         for i, (a, b, text) in enumerate(cues))
    events = "".join(f"Dialogue: 0,{_ass_clock(a)},{_ass_clock(b)},Default,,0,0,0,,{text}\n" for a, b, text in cues)
    return _ASS[:_ASS.index("Dialogue:")] + events


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """Frame `i`: a gradient background with a red box and a green disc that move."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = 40 + (x * 120) // max(width - 1, 1)
    img[..., 1] = 60 + (y * 100) // max(height - 1, 1)
    img[..., 2] = 150
    bw, bh = max(width // 4, 2), max(height // 4, 2)
    bx = (3 * i) % max(width - bw, 1)
    by = height // 6
    img[by : by + bh, bx : bx + bw] = (230, 30, 30)
    r = max(min(width, height) // 6, 2)
    cx = width - 1 - r - (2 * i) % max(width - 2 * r, 1)
    cy = height - 1 - r
    img[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = (30, 200, 60)
    return img


def gray(picture: np.ndarray) -> np.ndarray:
    """An RGB picture without its color: each pixel's channel mean in all three."""
    return np.repeat(picture.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)


def frame_pts(frames: int, step: int, vfr: bool) -> list[int]:
    """The pts `make_video` gives its frames: regular, or irregular when `vfr`."""
    if not vfr:
        return [i * step for i in range(frames)]
    pts, t = [], 0
    for i in range(frames):
        pts.append(t)
        t += step * VFR_STEPS[i % len(VFR_STEPS)]
    return pts


def _video_time_base(rate: Fraction) -> tuple[Fraction, int]:
    """A time base in which one nominal frame is a whole number of ticks."""
    rate = Fraction(rate)
    return Fraction(1, rate.numerator), rate.denominator


def _add_tone_stream(container, layout: str = "mono", codec: str = "aac"):
    return container.add_stream(codec, rate=AUDIO_RATE, layout=layout)


def _encode_tone(container, stream, seconds: float) -> None:
    """The same tone on every channel of `stream`."""
    n = 1024
    total = int(math.ceil(seconds * AUDIO_RATE / n)) * n
    t = np.arange(total) / AUDIO_RATE
    tone = (0.3 * np.sin(2 * math.pi * TONE_HZ * t)).astype(np.float32)
    samples = np.repeat(tone[None], stream.codec_context.channels, axis=0)
    for start in range(0, total, n):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + n]), format="fltp",
                                           layout=stream.layout.name)
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_video(
    path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    rate=Fraction(30000, 1001),
    audio: bool = True,
    audio_layout: str = "mono",
    audio_codec: str = "aac",
    vfr: bool = False,
    subtitles: bool | str = False,
    cues: list | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    color_range: int | None = None,
    rotation: int = 0,
    crf: int = 20,
    bframes: int = 0,
    keyint: int | None = None,
    sample_aspect_ratio: Fraction | None = None,
    tags: dict | None = None,
    video_tags: dict | None = None,
    audio_tags: dict | None = None,
    chapters: list | None = None,
    attachments: list | None = None,
    colorless: range = range(0),
    corner_alpha: int | None = None,
) -> Path:
    """Write a small clip; the container follows the suffix (.mp4, .mkv, .mov, ...).

    `color_range` 2 flags the video full range (FFmpeg's AVCOL_RANGE_JPEG), as
    encoders without yuvj* formats mark it.

    `subtitles` is False, True/"srt" or "ass" (MKV only): the track is remuxed from
    a generated subtitle file, the way a real file would carry it; `cues`, (start s,
    end s, text) triples, are its lines (None: two short ones, at 0 and 0.2 s).
    `options` are container (muxer) options, e.g. {"movflags": "+faststart"};
    `tags` the file's metadata, `video_tags` the video stream's (a MOV's
    {"timecode": "01:00:00:00"} becomes a timecode track), `audio_tags` the
    audio stream's; `audio_layout` the tone's channels ("5.1", ...) and `audio_codec` its
    encoder (PyAV converts the float samples to the encoder's format); `chapters` are
    (start s, end s, title) triples.
    `bframes` B-frames between references (libx264, mpeg2video): frames stored out of display order;
    `keyint` the most frames between keyframes (x264's default: 250; mpeg2video's: 12).
    `attachments` are (file name, MIME type, bytes) triples, as MKVs carry fonts (MKV only).
    Frames whose index is in `colorless` are gray (the same picture without its color),
    as a film's black-and-white scenes or credits are. `corner_alpha` gives every
    frame an alpha channel, opaque but for its top-left 8x8 at that value (for
    a `pix_fmt` that holds one: QuickTime Animation's argb, PNG's rgba).
    `rotation` (a multiple of 90) stores each picture turned that far clockwise,
    with a display matrix that turns it back: it plays as the plain clip of
    `width` x `height` does, the way a phone stores a portrait video.
    """
    path = Path(path)
    time_base, step = _video_time_base(rate)
    pts_list = frame_pts(frames, step, vfr)
    turns = rotation // 90
    stored_width, stored_height = (height, width) if turns % 2 else (width, height)
    with av.open(str(path), "w", options=options or {}) as out:
        out.metadata.update(tags or {})
        if chapters:
            out.set_chapters([{"id": i + 1, "start": round(a * 1000), "end": round(b * 1000),
                               "time_base": Fraction(1, 1000), "metadata": {"title": title}}
                              for i, (a, b, title) in enumerate(chapters)])
        for name, mimetype, data in attachments or ():
            out.add_attachment(name, mimetype, data)
        video = out.add_stream(codec, rate=Fraction(rate))
        video.metadata.update(video_tags or {})
        video.width, video.height, video.pix_fmt = stored_width, stored_height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)  # counter-clockwise, as players turn it
        if sample_aspect_ratio is not None:
            video.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if color_range is not None:
            video.codec_context.color_range = color_range
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": str(crf), "bf": str(bframes),
                             **({"g": str(keyint)} if keyint else {})}
        elif codec == "mpeg2video":
            video.codec_context.max_b_frames = bframes
            if keyint:
                video.codec_context.gop_size = keyint
        subtitle_src = None
        if subtitles:
            kind = "ass" if subtitles == "ass" else "srt"
            sub_file = path.with_name(f".{path.stem}.{kind}")
            sub_file.write_text(_subtitle_text(kind, cues), encoding="utf-8")
            subtitle_src = av.open(str(sub_file))
            sub_out = out.add_stream_from_template(subtitle_src.streams.subtitles[0])
        # Every stream must exist before the first packet is muxed (the header).
        tone = _add_tone_stream(out, audio_layout, audio_codec) if audio else None
        if tone is not None:
            tone.metadata.update(audio_tags or {})
        for i, pts in enumerate(pts_list):
            picture = frame_image(i, width, height)
            if i in colorless:
                picture = gray(picture)
            if corner_alpha is not None:
                alpha = np.full(picture.shape[:2], 255, np.uint8)
                alpha[:8, :8] = corner_alpha
                picture = np.dstack([picture, alpha])
            picture = np.ascontiguousarray(np.rot90(picture, -turns))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24" if corner_alpha is None else "rgba")
            frame.pts = pts
            frame.time_base = time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if tone is not None:
            _encode_tone(out, tone, float((pts_list[-1] + step) * time_base))
        if subtitle_src is not None:
            for packet in subtitle_src.demux(subtitle_src.streams.subtitles[0]):
                if packet.size == 0 or packet.dts is None:
                    continue
                packet.stream = sub_out
                out.mux(packet)
            subtitle_src.close()
            sub_file.unlink()
    return path


def make_audio(path, seconds: float = 0.5) -> Path:
    """An audio-only file (AAC in the container the suffix names, e.g. .m4a)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        _encode_tone(out, _add_tone_stream(out), seconds)
    return path


def make_images(folder, n: int, size=(40, 30), suffix: str = ".png") -> list[Path]:
    """`n` images named img_1, img_2, ... img_n (so name order != plain string order
    once n >= 10), frame `i` of `frame_image` each, size=(width, height)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pix_fmt = {".png": "rgb24", ".jpg": "yuvj444p", ".jpeg": "yuvj444p", ".bmp": "bgr24"}[suffix]
    return [make_photo(folder / f"img_{i + 1}{suffix}", frame_image(i, *size), "rgb24", pix_fmt) for i in range(n)]


def make_size_switching_ts(path, sizes=((64, 48), (96, 64)), frames_each: int = 6) -> Path:
    """An MPEG-TS whose picture changes size mid-stream, as a broadcast
    capture does between programmes: H.264 streams of each size, joined."""
    path = Path(path)
    parts = []
    for width, height in sizes:
        raw = io.BytesIO()
        with av.open(raw, "w", format="h264") as out:
            stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i in range(frames_each):
                frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        parts.append(raw.getvalue())
    with av.open(io.BytesIO(b"".join(parts)), format="h264") as joined, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(joined.streams.video[0])
        packets = (p for p in joined.demux(video=0) if p.size)
        for n, packet in enumerate(packets):
            packet.stream, packet.time_base = stream, Fraction(1, 90000)
            packet.pts = packet.dts = 90000 + n * 3600  # 25 fps from 1 s, as a capture starts
            out.mux(packet)
    return path


def cut_without_reencoding(src, dst, hidden: int) -> Path:
    """`src` (an MP4 starting on a keyframe) with its first `hidden` frames
    cut as ffmpeg -ss -c copy cuts: the packets stay, for the frames after
    the cut that need them, and the MP4's edit list hides their frames."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        rate = source.streams.video[0].average_rate
        for packet in source.demux(video=0):
            if not packet.size:
                continue
            shift = int(hidden / rate / packet.time_base)
            packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, stream
            out.mux(packet)
    return Path(dst)


def make_photo(path, pixels: np.ndarray, array_format: str, pix_fmt: str) -> Path:
    """One image file of `pixels` (laid out as PyAV's `array_format`: rgba,
    rgb48le, ...) stored as `pix_fmt` (ya8, gray16be, ...); the codec follows the suffix."""
    path = Path(path)
    codec = {".png": "png", ".tif": "tiff", ".webp": "libwebp", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".bmp": "bmp",
             ".dpx": "dpx"}[path.suffix]
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = pixels.shape[1], pixels.shape[0], pix_fmt
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=array_format)):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def cut_ts_start(src, dst, fraction: float) -> Path:
    """An MPEG-TS with its first `fraction` of bytes cut away at a packet
    boundary: a recording that started mid-way through a broadcast."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[int(len(data) * fraction) // 188 * 188:])
    return Path(dst)


def truncate_copy(src, dst, fraction: float) -> Path:
    """A copy of `src` cut after `fraction` of its bytes: a download that stopped."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def make_misstated_rate_mkv(path, frames: int = 12, stated: int = 30000) -> Path:
    """An MKV of 29.97 frames/s (each frame 1001/30000 s, as its packets
    say) whose header states `stated` frames/s, as a script remuxing with
    a time base for a rate writes one."""
    path = Path(path)
    period = Fraction(1001, 30000)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=stated)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast", "bf": "0"}

        def mux(packets):
            for packet in packets:
                packet.duration = round(period / packet.time_base)  # the track's end, as muxers state it
                out.mux(packet)

        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = i * 1001, Fraction(1, 30000)
            mux(video.encode(frame))
        mux(video.encode(None))
    return path


def make_interlaced_video(path, *, top_first: bool = True, frames: int = 8, width: int = 160,
                          height: int = 96) -> Path:
    """An interlaced MPEG-2 clip whose fields are 1/50 s apart (a bar moving
    between them), stored and marked in the given field order, as a DVD or a
    broadcast is; the order is set on each frame with FFmpeg's setfield."""
    import av.filter

    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"flags": "+ildct+ilme", "qscale": "2"}
        stream.codec_context.field_order = 2 if top_first else 3  # AV_FIELD_TT, AV_FIELD_BB
        graph = av.filter.Graph()
        source = graph.add_buffer(width=width, height=height, format="yuv420p", time_base=Fraction(1, 25))
        marker, sink = graph.add("setfield", "tff" if top_first else "bff"), graph.add("buffersink")
        source.link_to(marker)
        marker.link_to(sink)
        graph.configure()
        for i in range(frames):
            picture = frame_image(i, width, height)
            for field in (0, 1):  # each field's lines show the bar where it was at that field's time
                picture[field::2, :, :] = np.roll(frame_image(i, width, height), 4 * (2 * i + field), axis=1)[field::2]
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            graph.push(frame)
            for packet in stream.encode(graph.pull()):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def field_dominance(path) -> list[str]:
    """Each decoded frame's scan as FFmpeg's showinfo tells it: "T" (interlaced,
    top field first), "B" (bottom first) or "P" (progressive)."""
    import re

    import av.filter
    import av.logging

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        info, sink = graph.add("showinfo"), graph.add("buffersink")
        source.link_to(info)
        info.link_to(sink)
        graph.configure()
        level = av.logging.get_level()
        av.logging.set_level(av.logging.INFO)
        try:
            with av.logging.Capture() as logs:
                for frame in container.decode(stream):
                    graph.push(frame)
                    graph.pull()
        finally:
            av.logging.set_level(level)
    return [m.group(1) for _, _, line in logs if (m := re.search(r" i:([TBP])", line))]


def with_cover(source, path, size: int = 32) -> tuple[Path, bytes]:
    """`source` remuxed into `path` with a JPEG cover picture (an attached
    picture stream, as MP4s from stores and taggers carry); returns the path
    and the picture's bytes."""
    context = av.CodecContext.create("mjpeg", "w")
    context.width = context.height = size
    context.pix_fmt, context.time_base = "yuvj420p", Fraction(1, 25)
    still = av.VideoFrame.from_ndarray(frame_image(0, size, size), format="rgb24").reformat(format="yuvj420p")
    picture = bytes([*context.encode(still), *context.encode(None)][0])
    path = Path(path)
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        cover = out.add_stream("mjpeg", rate=1)
        cover.width = cover.height = size
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        out.start_encoding()
        packet = av.Packet(picture)
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        out.mux(packet)
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path, picture


def noisy_stills(frames: int, width: int = 64, height: int = 48, seed: int = 0):
    """One still picture with fresh luma noise in each of `frames` copies: an
    untrained model's colors jump with it (flicker for smoothing to steady)."""
    rng = np.random.default_rng(seed)
    still = frame_image(0, width, height).astype(float)
    for _ in range(frames):
        yield np.clip(still + rng.normal(0, 3, still.shape[:2])[..., None], 0, 255).astype(np.uint8)


def write_pictures(path, pictures, codec: str = "ffv1", options: dict | None = None, rate: int = 25, *,
                   array_format: str = "rgb24", pix_fmt: str = "yuv420p") -> Path:
    """Pictures (arrays of PyAV's `array_format`: RGB (H, W, 3) uint8 by
    default) as a `pix_fmt` video, frame i at pts i; the range is not flagged."""
    pictures = iter(pictures)
    first = next(pictures)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = first.shape[1], first.shape[0], pix_fmt
        stream.options = options or {}
        for i, picture in enumerate(itertools.chain([first], pictures)):
            frame = av.VideoFrame.from_ndarray(picture, format=array_format).reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Path(path)
