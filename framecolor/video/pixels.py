"""From a decoded frame to a numpy array: the raw luma plane where the frame
has one (no conversion, no copy), else swscale's conversion and resize, and
pictures turned upright as their display matrix or orientation says."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from framecolor.video.encoding import FULL_RANGE, is_full_range
from framecolor.video.probing import quarter_turns

FORMATS = ("rgb24", "gray", "luma", "luma10")
# 8-bit YUV formats whose plane 0 is the Y plane at full resolution: "luma"
# reads it as is. Anything else (RGB, gray, 10-bit) is converted to yuv420p.
_YUV8 = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
     "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "nv24", "nv42"}
)
# Little-endian 10-bit YUV formats whose plane 0 is the Y plane: "luma10" reads it as is.
_YUV10 = frozenset({"yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv440p10le", "gray10le"})
# Gray deeper than 10 bits (a film scan's 16): "luma10" rounds its plane itself (_ten_bit_gray).
_DEEP_GRAY = frozenset({"gray12le", "gray14le", "gray16le"})
# The raw-plane reads: formats read as they are, the format others are converted
# to, and the sample type.
_LUMA_READS = {"luma": (_YUV8, "yuv420p", np.uint8), "luma10": (_YUV10, "yuv420p10le", np.uint16)}


def _ten_bit_luma(frame) -> np.ndarray:
    """The 10-bit luma of a frame with an 8-bit Y plane (_YUV8), from the plane
    itself: limited range times 4 (16-235 -> 64-940, exactly), full range
    times 4 with its top two bits repeated below (0-255 -> 0-1023, within
    one code of x * 1023 / 255). That is what swscale makes of them where it
    is right (its 4:2:0 copy; its scaler, for 4:4:4, 4:2:2 and 4:4:0, times
    4 in both ranges, a full range's white 1020), and faster.

    Not swscale: FFmpeg 8.1's slice threads, scaling 4:4:4, 4:2:2 or 4:4:0
    frames of some widths (321, 322, 641) to 10-bit 4:2:0, left the first 8
    samples of a slice's first row mid-gray (512) in a third of the frames,
    dashes in the luma that apply re-encodes.
    """
    y = _plane_view(frame.planes[0])
    ten = y.astype(np.uint16)
    ten <<= 2
    if is_full_range(frame.format.name, frame.color_range):
        ten |= y >> 6
    return ten


def _ten_bit_gray(frame) -> np.ndarray:
    """The 10-bit luma of a full-range gray frame of 12 to 16 bits, from its
    plane: each code to the nearest of 1024. swscale's was a code off on a
    quarter of a 16-bit gray video's samples, which the encoder's own code
    off made two."""
    top = (1 << frame.format.components[0].bits) - 1
    deep = _plane_view(frame.planes[0], np.uint16).astype(np.uint32)
    return ((deep * 1023 + top // 2) // top).astype(np.uint16)


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
        if fmt == "luma10" and name in _YUV8 and not resize:
            return _ten_bit_luma(frame)
        if fmt == "luma10" and name in _DEEP_GRAY and not resize and is_full_range(name, frame.color_range):
            return _ten_bit_gray(frame)
        if name not in native or resize:
            # Full range stays full (as probe says the video is): told no
            # range, swscale made a gray or RGB picture's 256 codes 16-235.
            to_range = FULL_RANGE if is_full_range(name, frame.color_range) else None
            frame = frame.reformat(width=w, height=h, format=name if name in native else fallback,
                                   interpolation=interp, dst_color_range=to_range)
        return _plane(frame, 0, dtype)
    # Recent PyAV passes the frame's colour range (full/limited) on to swscale itself.
    return frame.to_ndarray(width=w, height=h, format=fmt, interpolation=interp)


# Per EXIF orientation (TIFF 6.0's 0x0112): whether it turns the picture a
# quarter, and what makes the picture as stored stand as viewers show it.
_EXIF_UPRIGHT = {
    1: (False, lambda a: a),
    2: (False, lambda a: a[:, ::-1]),  # mirrored left to right
    3: (False, lambda a: a[::-1, ::-1]),  # a half turn
    4: (False, lambda a: a[::-1]),  # flipped top to bottom
    5: (True, lambda a: a.swapaxes(0, 1)),  # transposed
    6: (True, lambda a: np.rot90(a, -1)),  # a quarter turn clockwise
    7: (True, lambda a: a[::-1, ::-1].swapaxes(0, 1)),  # transposed across the other diagonal
    8: (True, lambda a: np.rot90(a, 1)),  # a quarter turn counter-clockwise
}


def _upright(frame, fmt: str, size, short_side, pixel_aspect: Fraction | None = None) -> np.ndarray:
    """A picture as players and viewers show it: widened (or narrowed) by its
    pixels' aspect, then turned as its display matrix says (FFmpeg reports it
    as the frame's rotation; a mirror is not undone). "luma" stays as stored:
    it is the plane re-encoded.

    A photo (photos._OrientedFrame) stands as its EXIF orientation says,
    mirrors included, whatever is read: a film made of photos is encoded
    from the upright pictures.

    Image outputs carry no EXIF, and the network learned upright pictures,
    so colorized photos and training crops stand up in the pixels themselves.
    """
    orientation = getattr(frame, "orientation", None)
    if orientation is not None:
        quarter, upright = _EXIF_UPRIGHT.get(orientation, _EXIF_UPRIGHT[1])
        if quarter and size is not None:
            size = (size[1], size[0])
        return np.ascontiguousarray(upright(_convert(frame, fmt, size, short_side)))
    if fmt in _LUMA_READS:
        return _convert(frame, fmt, size, short_side)
    rotation = frame.rotation  # NaN for a singular matrix
    turns = quarter_turns(round(rotation)) if math.isfinite(rotation) else 0
    if turns % 2 and size is not None:
        size = (size[1], size[0])
    shown_width = max(1, round(frame.width * pixel_aspect)) if pixel_aspect else None
    return np.ascontiguousarray(np.rot90(_convert(frame, fmt, size, short_side, shown_width), turns))
