"""Pixel formats and encoder settings: which options keep the input's luma,
which presets and quality scales each encoder takes, checked before a frame
is decoded so that a typo costs nothing."""

from __future__ import annotations

import os
from fractions import Fraction

import av

from framecolor.errors import OutputError

# Chroma-subsampled formats that cannot hold an odd width/height, and the
# full-chroma format to use instead.
_ODD_SIZE_FALLBACK = {"yuv420p": "yuv444p", "yuv422p": "yuv444p",
                      "yuv420p10le": "yuv444p10le", "yuv422p10le": "yuv444p10le"}
_WRITE_YUV_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                                "yuv420p10le", "yuv422p10le", "yuv444p10le"})
_FULL_CHROMA_FORMATS = frozenset({"yuv444p", "yuvj444p", "yuv444p10le"})
_HALF_WIDTH_CHROMA_FORMATS = frozenset({"yuv422p", "yuvj422p", "yuv422p10le"})  # 4:2:2: an odd height is fine
# The output's format where none is asked for: the first of these the encoder
# takes. yuv420p plays everywhere; the editing codecs take 4:2:2 only
# (ProRes and DNxHR 10-bit, HuffYUV and DNxHR HQ 8-bit).
_DEFAULT_PIX_FMTS = ("yuv420p", "yuv422p", "yuv422p10le", "yuv444p", "yuv420p10le", "yuv444p10le")
# The size encoders are opened at to check their settings before a frame is
# decoded: at least the smallest each takes (_MIN_SIZES).
TRIAL_SIZE = (256, 144)
# Encoders that refuse a smaller picture, and say only "invalid argument"
# (SVT-AV1 also prints its own lines): tried with this FFmpeg, at each size.
_MIN_SIZES = {"dnxhd": (256, 120), "libx265": (16, 16), "libsvtav1": (4, 4)}
UNSPECIFIED_RANGE, FULL_RANGE = 0, 2  # AVCOL_RANGE_UNSPECIFIED, AVCOL_RANGE_JPEG
# Encoders of JPEG pictures, which are full range by definition: FFmpeg's
# MJPEG refuses limited-range yuv* ("non-standard") and a player would show
# limited codes in it washed out. A limited source's luma goes full range for them.
FULL_RANGE_ONLY = frozenset({"mjpeg"})
# And the reverse: ProRes has no range flag in its frames, video range by
# definition, so FFmpeg decodes any ProRes as limited range: full-range codes
# written into one showed with crushed blacks and clipped whites.
LIMITED_RANGE_ONLY = frozenset({"prores", "prores_aw", "prores_ks"})
# The deprecated full-range twins of yuv* formats; many encoders (x264, MJPEG) still want them.
_JPEG_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p"})
# Each constant-quality encoder's scale; x264 and x265 clamp a crf above it
# without a word, so it is checked here. FFmpeg's libsvtav1 takes crf 0 as
# "none given" and encoded at SVT's default, crf 35, so its scale starts at 1.
_CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libaom-av1": (0, 63),
               "libsvtav1": (1, 63)}
_CRF_CODECS = frozenset(_CRF_RANGES)
# Encoders with x264's named presets (_PRESETS), and those whose presets are
# numbers: SVT-AV1's, slowest (0) to fastest (13); FFmpeg refuses 14 and
# more, and below 0 are SVT's research modes. Where none is asked for,
# SVT-AV1 gets its own default.
_PRESET_CODECS = frozenset({"libx264", "libx265"})
_NUMBERED_PRESETS = {"libsvtav1": (0, 13)}
# FFmpeg's own MPEG and JPEG encoders aim at a bit rate of 200 kb/s unless
# told otherwise, whatever the picture: colorizing examples/bikes_bw.mp4
# (640x272) MPEG-4 kept 31% of the luma within a code and MJPEG 40%. Held
# at quantizer 2 (ffmpeg's -q:v 2, their finest but one): 78% and 82%, in
# 2.6 and 6.7 MB instead of 0.26 and 1.5. Their quantizer (1-31) is what
# --crf sets for them: one quality for every picture, as crf is for x264.
_QUANTIZER_CODECS = frozenset({"mjpeg", "mpeg4", "mpeg2video", "mpeg1video"})
_FINE_QUANTIZER, _QUANTIZER_RANGE = 2, (1, 31)
DEFAULT_ENCODER = "libx264"
DEFAULT_CRF = 18  # for an explicit constant-quality encode, and encoders with no luma-keeping mode
# libx264 with no crf keeps the source's luma instead: colorizing must not
# re-grade the picture it was given. At quantizer 2 the step is under one
# code value and the deblocking filter is off, so Y comes back within +-1 on
# >99.9% of pixels (crf 18: 74-94% on the sample clips) for several times
# crf 18's size (9.7x on examples/bikes_bw.mp4 with the settings below,
# benchmarks/luma_fidelity.py), in a profile browsers and phones play. psy-rd spends
# fidelity on apparent texture, so it is off; chroma, a smooth prediction,
# takes a coarser quantizer (2 + 12) that saves a quarter of the size.
# Trellis quantization is off: at so fine a step it costs x264 a fifth of its
# time, and quantizer 2 without it keeps more luma than quantizer 3 with it.
# So is CABAC: at this bit rate its arithmetic coding is a quarter of x264's
# time at 720p, and CAVLC, in every H.264 profile, writes the same picture
# for 9-10% more bytes (benchmarks/luma_fidelity.py). x264 does not search
# the 8x8 partitions of a block or try the 8x8 transform either: at this
# step they saved 5-12% of the bytes for 23-44% of x264's CPU (four sample
# clips, benchmarks/RESULTS.md; a little more luma is kept without them),
# and on a GPU x264 is apply's slowest stage. Without the
# 8x8 transform the stream is Main profile, which plays wherever High does.
# One reference frame, not the preset's two: 0.81-0.91x x264's CPU for
# 1.01-1.08x the bytes on the same clips, the luma kept as well.
_KEEP_LUMA_X264 = {"qp": "2",
                   "x264-params": "psy-rd=0,0:chroma-qp-offset=12:trellis=0:cabac=0:no-8x8dct=1:partitions=i4x4:ref=1"}
# At that quantizer "faster" keeps luma at least as well as "medium" (fewer
# psychovisual decisions) and encodes faster.
_KEEP_LUMA_PRESET, _DEFAULT_PRESET = "faster", "medium"
# x264's and x265's presets. Checked here because x264 reports an unknown one
# on stderr itself, before FFmpeg can turn it into an error.
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# SVT-AV1's log level (SvtAv1LogLevel) that prints errors and nothing less.
_SVT_ERRORS_ONLY = "1"


def encoder_name(codec: str) -> str:
    """The encoder FFmpeg picks for `codec`: "h264" is libx264, "hevc" libx265.

    Options are chosen by encoder, so a codec's name given for its encoder's
    must come to the same: --codec h264 lost the luma-keeping mode, its crf
    and its preset.
    """
    return _encoder(codec).name


def is_full_range(pix_fmt: str, color_range: int) -> bool:
    """Are pictures of `pix_fmt`, flagged `color_range` (FFmpeg's
    AVColorRange), coded full range (0-255), not limited (16-235)?

    Said by the old yuvj* formats or, as encoders that have no yuvj format
    (FFV1, VP9, ...) and current FFmpeg write it, by the flag. Unflagged
    gray, RGB and palette pictures (FFV1's or raw gray, FFV1's bgr0, a GIF)
    are full range by nature, as swscale reads them: taken as limited, a
    gray video's 256 codes came out as 220.
    """
    if pix_fmt.startswith("yuvj") or color_range == FULL_RANGE:
        return True
    if color_range != UNSPECIFIED_RANGE:
        return False
    try:
        layout = av.VideoFormat(pix_fmt)
    except ValueError:  # "unknown", or a format this FFmpeg lacks
        return False
    return layout.is_rgb or layout.has_palette or len(layout.components) < 3  # gray, gray with alpha


def has_quality_setting(codec: str) -> bool:
    """Does --crf mean anything to `codec` (a crf, or a quantizer it holds)? Not to
    the lossless and editing ones (FFV1, HuffYUV, ProRes, DNxHR), whose quality is fixed."""
    return encoder_name(codec) in _CRF_CODECS | _QUANTIZER_CODECS


def encoder_options(codec: str, crf: int | None = None, preset: str | None = None,
                    pix_fmt: str = "yuv420p") -> dict[str, str]:
    """The encoder's options for frames of `pix_fmt`: `crf` None keeps luma
    (libx264) or means DEFAULT_CRF; `preset` None means the mode's own preset."""
    codec = encoder_name(codec)
    low, high = _CRF_RANGES.get(codec, (None, None))
    if crf is not None and low is not None and not low <= crf <= high:
        raise OutputError(f"{codec} takes crf {low}-{high}, not {crf}")
    if crf is not None and codec in _QUANTIZER_CODECS and not _QUANTIZER_RANGE[0] <= crf <= _QUANTIZER_RANGE[1]:
        raise OutputError(f"{codec} takes crf {_QUANTIZER_RANGE[0]}-{_QUANTIZER_RANGE[1]} (its quantizer), not {crf}")
    options = {}
    keep_luma = crf is None and codec == "libx264"
    if keep_luma:
        options.update(_KEEP_LUMA_X264)
    elif codec in _CRF_CODECS:
        options["crf"] = str(DEFAULT_CRF if crf is None else crf)
    elif codec in _QUANTIZER_CODECS:
        options["qmin"] = options["qmax"] = str(_FINE_QUANTIZER if crf is None else crf)
    if codec in _PRESET_CODECS:
        options["preset"] = preset or (_KEEP_LUMA_PRESET if keep_luma else _DEFAULT_PRESET)
    elif codec in _NUMBERED_PRESETS and preset is not None:
        options["preset"] = _numbered_preset(codec, preset)
    if codec == "dnxhd":
        # DNxHD's own profile takes a few broadcast sizes and bit rates only;
        # DNxHR's take any size, at a quality for 8 or 10 bits.
        options["profile"] = "dnxhr_444" if pix_fmt.startswith("yuv444") else (
            "dnxhr_hqx" if pix_fmt.endswith("10le") else "dnxhr_hq")
    if codec == "libx265":
        # x265 prints its whole configuration to stderr itself, not through
        # FFmpeg's log, so neither FFmpeg's level nor --quiet would stop it.
        options["x265-params"] = "log-level=error"
    if codec == "libsvtav1":
        # So does SVT-AV1 (25 lines for each encoder opened, some 80 a run),
        # before it reads its svtav1-params, at the level that SVT_LOG says
        # when the process opens its first one: errors only, as x265's,
        # unless the user set another.
        os.environ.setdefault("SVT_LOG", _SVT_ERRORS_ONLY)
    return options


def _numbered_preset(codec: str, preset: str) -> str:
    """`preset` as `codec` takes it (_NUMBERED_PRESETS); OutputError where it is none of them."""
    low, high = _NUMBERED_PRESETS[codec]
    try:
        number = int(preset)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise OutputError(f"{codec} takes preset {low}-{high} (slowest to fastest), not {preset!r}")
    return str(number)


# FFmpeg's AVFieldOrder: how an interlaced picture's two fields are stored
# and shown (TB: top coded first, bottom shown first).
FIELD_UNKNOWN, FIELD_PROGRESSIVE, FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT = range(6)
_INTERLACED_ORDERS = frozenset({FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT})
# Encoders that code the two fields of a picture apart when asked by flags.
_FIELD_FLAG_CODECS = frozenset({"mpeg2video", "mpeg4"})


def is_interlaced(field_order: int) -> bool:
    return field_order in _INTERLACED_ORDERS


def top_field_first(field_order: int) -> bool:
    """Is the top field shown first (broadcast HD, DVD; DV shows the bottom first)?"""
    return field_order in (FIELD_TT, FIELD_BT)


def interlaced_options(codec: str, options: dict[str, str], field_order: int) -> dict[str, str] | None:
    """`options` with the encoder coding each field apart, in `field_order`,
    or None where it cannot (VP9, AV1, HEVC here): the fields of one picture
    are 1/50 or 1/60 s apart, and coded as one progressive picture a moving
    edge becomes a comb that a player, told the video is progressive, never
    deinterlaces. x264 tries weighted prediction, which it has no interlaced
    form of, and says so on every run unless it is off."""
    if codec == "libx264":
        fields = f"interlaced=1:{'tff' if top_field_first(field_order) else 'bff'}=1:weightp=0"
        params = options.get("x264-params")
        return {**options, "x264-params": f"{params}:{fields}" if params else fields}
    if codec in _FIELD_FLAG_CODECS:
        return {**options, "flags": "+ildct+ilme"}
    return None


# MPEG-1 and MPEG-2 video state their frame rate as an index into a table
# (23.976 to 60; MPEG-2 also that times n/d, n <= 4, d <= 32), and FFmpeg takes
# it from the encoder's time base, which must be exactly 1/rate: a source's
# finer one (an MP4's 1/12800) is refused. These encoders count frames at 1/fps.
_RATE_TABLE_CODECS = frozenset({"mpeg1video", "mpeg2video"})
_STANDARD_RATES = "23.976, 24, 25, 29.97, 30, 50, 59.94, 60"
# MPEG-4 part 2 writes its time base's denominator (vop_time_increment_resolution)
# in 16 bits: an MPEG-TS's 1/90000 is refused.
_MPEG4_MAX_TIME_SCALE = 65535


def codes_a_rate_table(codec: str | None) -> bool:
    """Does `codec` (None: the default) code only a table of frame rates (MPEG-1/2)?"""
    return codec is not None and encoder_name(codec) in _RATE_TABLE_CODECS


def check_frame_rate(codec: str | None, fps, source=None) -> None:
    """Raise OutputError where `codec` cannot code `fps` frames a second.

    Only MPEG-1/2 are limited so (codes_a_rate_table). Which rates FFmpeg
    takes is its own table and tolerance (MPEG-2 codes 12, 15 and 120 by
    extension fields, but not 29.994), so rather than copy that, an encoder
    is opened at the rate, as check_encoder opens one at its settings.
    """
    if not codes_a_rate_table(codec):
        return
    codec, fps = encoder_name(codec), Fraction(fps or 0)
    if fps > 0:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt, context.time_base = 64, 64, "yuv420p", 1 / fps
        try:
            context.open()
            return
        except av.error.FFmpegError:
            pass
    more = " and some multiples and fractions of them" if codec == "mpeg2video" else ""
    rate = "states no frame rate" if fps <= 0 else f"is {float(fps):.3f}".rstrip("0").rstrip(".") + " fps"
    raise OutputError(f"{codec} codes only the standard frame rates ({_STANDARD_RATES}{more}); "
                      f"{source or 'the video'} {rate}: use libx264 (the default)")


def encoder_time_base(codec: str, time_base, fps) -> Fraction:
    """The time base `codec` counts frames in, for frames stamped in
    `time_base` about `fps` a second: the writer rescales their pts onto it.
    OutputError where MPEG-1/2 cannot code `fps` (check_frame_rate).

    MPEG-1/2 take their frame rate from it: 1/fps. MPEG-4 part 2 refuses a
    denominator over 65535 (MPEG-TS's 1/90000; AVI's 1/fps at 163200/5441
    fps): it gets the finest 1/D under that on which frames `fps` apart fall
    exactly (1/60000 for 29.97), or, where no D does, 1/65535, which still
    puts every frame within 8 us of its time. Other encoders take the source's.
    """
    codec, time_base = encoder_name(codec), Fraction(time_base)
    if codec in _RATE_TABLE_CODECS:
        check_frame_rate(codec, fps)
        return 1 / Fraction(fps)
    if codec == "mpeg4" and time_base.denominator > _MPEG4_MAX_TIME_SCALE:
        return _finest_time_base(Fraction(fps or 0), _MPEG4_MAX_TIME_SCALE)
    return time_base


def on_the_beat(interval: Fraction, period: Fraction, tick: Fraction) -> bool:
    """Does a frame come a whole number of `period`s after the one before, to
    within a `tick`? An encoder that counts frames at 1/fps (MPEG-1/2) keeps
    a skipped frame's gap, but moves a frame between two beats onto one."""
    beats = round(interval / period)
    return beats >= 1 and abs(interval - beats * period) <= tick


def _finest_time_base(fps: Fraction, limit: int) -> Fraction:
    """1/D for the largest D <= `limit` that is a multiple of `fps`'s numerator
    (frames 1/fps apart are then a whole number of ticks), else 1/`limit`."""
    if 0 < fps.numerator <= limit:
        return Fraction(1, limit // fps.numerator * fps.numerator)
    return Fraction(1, limit)


def encoder_formats(codec: str) -> frozenset[str]:
    """The pixel formats `codec` encodes; empty where it does not list them (rawvideo takes any)."""
    return frozenset(f.name for f in _encoder(codec).video_formats or ())


def cannot_encode(codec: str, pix_fmt: str, formats) -> OutputError:
    """The error for `codec`, which encodes `formats`, asked for `pix_fmt`."""
    return OutputError(f"{codec} cannot encode {pix_fmt} (it can: {', '.join(sorted(formats))})")


def default_pix_fmt(codec: str) -> str:
    """The pixel format an output of `codec` gets where none is asked for
    (_DEFAULT_PIX_FMTS); OutputError where it takes none that framecolor writes."""
    supported = encoder_formats(codec)
    for pix_fmt in _DEFAULT_PIX_FMTS:
        if not supported or pix_fmt in supported:
            return pix_fmt
    raise OutputError(f"{encoder_name(codec)} encodes none of the formats framecolor writes (it takes "
                      f"{', '.join(sorted(supported))}): choose another --codec")


def check_frame_size(codec: str, width: int, height: int) -> None:
    """Raise OutputError where `codec` cannot encode a picture this small."""
    codec = encoder_name(codec)
    smallest = _MIN_SIZES.get(codec)
    if smallest and (width < smallest[0] or height < smallest[1]):
        raise OutputError(f"{codec} encodes pictures of {smallest[0]}x{smallest[1]} or more, "
                          f"not {width}x{height}: choose another --codec (prores_ks takes any size)")


def check_encoder(codec: str, crf: int | None = None, preset: str | None = None, pix_fmt: str = "yuv420p") -> None:
    """Raise OutputError now if `codec` will not open with these settings.

    Encoders open on their first frame; without this a wrong --preset or
    --crf would surface only after the model is loaded and compiled.
    """
    codec = encoder_name(codec)
    context = av.CodecContext.create(codec, "w")
    if preset is not None and codec in _PRESET_CODECS and preset not in _PRESETS:
        raise OutputError(f"{codec} has no preset {preset!r} (it has: {', '.join(_PRESETS)})")
    formats = encoder_formats(codec)
    if formats and not {pix_fmt, pix_fmt.replace("yuv", "yuvj", 1)} & formats:
        raise cannot_encode(codec, pix_fmt, formats)
    context.time_base = Fraction(1, 25)
    # An encoder that takes only the full-range twin (yuvj*) is tried with it;
    # the writer picks by the source's range.
    set_up_trial(context, codec, pix_fmt if pix_fmt in formats or not formats else pix_fmt.replace("yuv", "yuvj", 1),
                 encoder_options(codec, crf, preset, pix_fmt))
    _open_encoder(context, codec, crf, preset)  # freed with the context


def set_up_trial(context, codec: str, pix_fmt: str, options: dict[str, str]) -> None:
    """Shape the codec `context` of an encoder opened only to see whether it
    will (before a frame is decoded): TRIAL_SIZE, `pix_fmt`, `options`, and
    full range for the encoders that code no other (MJPEG refuses to open without it)."""
    context.width, context.height = TRIAL_SIZE
    context.pix_fmt = pix_fmt
    if encoder_name(codec) in FULL_RANGE_ONLY:
        context.color_range = FULL_RANGE
    context.options = options


def _encoder(codec: str) -> "av.Codec":
    try:
        encoder = av.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        raise OutputError(f"unknown video encoder {codec!r}") from None
    if encoder.type != "video":
        raise OutputError(f"{codec} encodes {encoder.type}, not video (libx264, libx265, ffv1, ...)")
    return encoder


def _open_encoder(context, codec: str, crf, preset) -> None:
    try:
        context.open()
    except av.error.FFmpegError as e:
        chosen = ", ".join(f"{name} {value}" for name, value in (("crf", crf), ("preset", preset)) if value is not None)
        raise OutputError(f"{codec} will not encode with {chosen or 'its default settings'}: "
                          f"{(e.strerror or str(e)).lower()}") from None
