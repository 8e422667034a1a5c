"""Still images: reading them upright (EXIF orientation), at 8 or 16 bits a
channel with their transparency, and writing them back as near as each file
type can hold them."""

from __future__ import annotations

import functools
import os
import re
import struct
import threading
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from framecolor.errors import InputError, OutputError
from framecolor.video.files import (
    VideoWarning,
    _check_input_file,
    _move_into_place,
    _temp_path,
    _write_errors,
    PNG_SIGNATURE,
    check_output_path,
    holds_one_picture,
    is_animated_png,
    png_chunk,
    png_holds_frames,
    is_still_gif,
)
from framecolor.video.pixels import _upright
from framecolor.video.probing import _display_matrix

# Photos' types; a GIF is a photo too where it holds one picture (is_image_path).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dpx", ".avif"})


def is_image_path(path) -> bool:
    """Whether `path` names a photo: by its type, but for a PNG of several
    frames (is_animated_png), and a GIF by what it holds (is_still_gif)."""
    return (Path(path).suffix.lower() in IMAGE_SUFFIXES and not is_animated_png(path)) or is_still_gif(path)


def _is_animated_webp(path) -> bool:
    """Whether a WebP file is an animation, as its VP8X chunk's flags say."""
    try:
        with open(path, "rb") as f:
            head = f.read(21)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) == 21 and bool(head[20] & 0x02)


def natural_key(path: Path):
    # frame_2 before frame_10, as a person numbering files expects.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder) -> list[Path]:
    """Image files in `folder` (not recursive, hidden files skipped), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no such folder: {folder}")
    files = [p for p in folder.iterdir() if p.is_file() and is_image_path(p) and not p.name.startswith(".")]
    return sorted(files, key=natural_key)


def _decode_image(path: Path):
    """The picture of an image file as decoded (unturned), with its EXIF orientation (_OrientedFrame)."""
    path = _check_input_file(path)
    header = _header_facts(path)
    if header is not None and header.jpeg_in_tiff:
        # FFmpeg decodes it all black, without an error.
        raise InputError(f"{path} is a JPEG-compressed TIFF, which cannot be read: save it as a PNG or an "
                         "uncompressed (or LZW) TIFF first")
    try:
        with av.open(str(path)) as container:
            _check_not_a_video(path, container)
            codec = container.streams.video[0].codec_context.name
            for frame in container.decode(video=0):
                if codec == "mjpeg" and _truncated_jpeg(path):
                    _say_damaged_once(path)
                orientation = None if header is None else header.orientation
                if orientation is None:
                    orientation = _matrix_orientation(_display_matrix(frame))
                if header is not None and header.alpha_apart:
                    frame = _with_alpha(frame, _alpha_of(path), path)
                return _OrientedFrame(frame, orientation)
    except (av.error.FFmpegError, IndexError):
        pass
    if _is_animated_webp(path):  # FFmpeg's WebP decoder reads still pictures only
        raise InputError(f"{path} is an animated WebP, which cannot be read: save it as a GIF or a video "
                         "(.mp4) first")
    raise InputError(f"not an image file (or damaged): {path}")


# Damaged photos said already, by file as it stands (path, time, size): a
# film looks at its first photo three times before colorizing it (its size,
# its transparency, its opening frames), and each look said it again. Said
# once in a process, as Python says a warning from one place.
_said_damaged: set[tuple[str, int, int]] = set()
_said_damaged_lock = threading.Lock()


def _say_damaged_once(path: Path) -> None:
    try:
        stat = os.stat(path)
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:  # gone since it was read
        key = (str(path), 0, 0)
    with _said_damaged_lock:
        if key in _said_damaged:
            return
        _said_damaged.add(key)
    warnings.warn(f"{path} is damaged (truncated): the part of the picture missing from it is colorized flat",
                  VideoWarning, stacklevel=3)  # where _decode_image was called


# The EXIF orientation (_EXIF_UPRIGHT) of a display matrix, by the signs of
# its turning part (a, b, c, d): how FFmpeg says how a photo that Pillow
# cannot read stands (an AVIF's irot and imir), mirrors included, which its
# rotation leaves out. Matrices of other angles have none.
_MATRIX_ORIENTATIONS = {(1, 0, 0, 1): 1, (-1, 0, 0, 1): 2, (-1, 0, 0, -1): 3, (1, 0, 0, -1): 4,
                        (0, 1, 1, 0): 5, (0, 1, -1, 0): 6, (0, -1, -1, 0): 7, (0, -1, 1, 0): 8}


def _matrix_orientation(matrix) -> int | None:
    if matrix is None:
        return None
    return _MATRIX_ORIENTATIONS.get(tuple(int(np.sign(matrix[i])) for i in (0, 1, 3, 4)))


def _alpha_of(path: Path) -> np.ndarray:
    """The transparency of an image file, (H, W) uint8 as stored, by Pillow."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.getchannel("A"))
    except (OSError, ValueError):
        raise InputError(f"not an image file (or damaged): {path} (its transparency cannot be read)") from None


def _with_alpha(frame, alpha: np.ndarray, path: Path):
    """`frame`'s picture with the transparency `alpha` (8 bits), at the frame's depth."""
    if alpha.shape != (frame.height, frame.width):
        raise InputError(f"{path}: its transparency is {alpha.shape[1]}x{alpha.shape[0]} and its picture "
                         f"{frame.width}x{frame.height}; it cannot be read (save it as a PNG first)")
    deep = max(c.bits for c in frame.format.components) > 8
    rgb = frame.to_ndarray(format=_ARRAY_FORMATS[deep, False])
    alpha = alpha.astype(np.uint16) * 257 if deep else alpha
    pixels = np.ascontiguousarray(np.dstack([rgb, alpha]))
    return av.VideoFrame.from_ndarray(pixels, format=_ARRAY_FORMATS[deep, True])


class _OrientedFrame:
    """A decoded photo as stored, and the EXIF orientation that stands it
    upright (where Pillow could not read the file, the one FFmpeg's display
    matrix says; None where that says none: FFmpeg's rotation stands);
    otherwise the frame itself.

    FFmpeg reports an orientation as the frame's rotation, which has no room
    for a mirror: 2 (mirrored) comes as a half turn, 4 (flipped) as none, and
    5 and 7 as 6's and 8's turns. _upright applies the orientation itself.
    """

    def __init__(self, frame, orientation: int | None):
        self.frame, self.orientation = frame, orientation

    def __getattr__(self, name):
        return getattr(self.frame, name)


# A JPEG ends with its EOI marker; what some cameras and copies pad after it is zeros.
_JPEG_END = b"\xff\xd9"
_JPEG_TAIL = 1 << 16


def _truncated_jpeg(path: Path) -> bool:
    """Whether a JPEG file stops before its end marker (an interrupted
    download or copy): FFmpeg decodes what there is and, as a truncated
    video's frames, fills the rest flat without an error."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - _JPEG_TAIL))
        return not f.read().rstrip(b"\0").endswith(_JPEG_END)


def _check_not_a_video(path: Path, container) -> None:
    """Refuse a video under an image's name (an MP4 saved as .png): read as
    a photo, its first frame alone would be colorized into a picture.

    FFmpeg finds a file's type by its content, and reads most still-image
    types with its image2 demuxer or a "_pipe" one. Anything else is a
    video, but for a PNG or a GIF of one picture (an APNG of several is a
    video, as an animated GIF is: is_image_path), and an AVIF, which FFmpeg
    reads as an MP4 of its pictures, the first the still (of an animated one too).
    """
    name = container.format.name
    if name == "image2" or name.endswith("_pipe") or _is_avif(container):
        return
    if (name == "gif" and holds_one_picture(path)) or (name == "apng" and not png_holds_frames(path)):
        return
    raise InputError(f"{path} is a video ({container.format.long_name}), not an image, whatever its name: "
                     "give it a video suffix (.mp4, .mkv, ...) to colorize it as one")


def _is_avif(container) -> bool:
    """Whether an MP4-like file is an AVIF, as its brands (4 letters each) say."""
    brands = container.metadata.get("major_brand", "") + container.metadata.get("compatible_brands", "")
    return "avif" in {brands[i:i + 4] for i in range(0, len(brands), 4)}


def stored_size(path) -> tuple[int, int] | None:
    """An image file's (width, height) as stored, from its header alone; None
    where it cannot be read.

    Pillow reads only the header: 22 microseconds a 640x480 PNG here. FFmpeg
    finds a picture's size by decoding it (2.9 ms for the same PNG), which a
    film of 10,000 scans would pay each time it is checked to be one film.
    FFmpeg stays for what Pillow does not know (DPX, EXR).
    """
    facts = _header_facts(path)
    return None if facts is None else facts.size


def shown_size(path) -> tuple[int, int] | None:
    """An image file's (width, height) as viewers show it, and read_photo
    reads it: turned a quarter where its EXIF orientation says so (FFmpeg
    turns JPEG, PNG, TIFF and WebP alike). From the header alone, as stored_size."""
    facts = _header_facts(path)
    if facts is None:
        return None
    (width, height), orientation = facts.size, facts.orientation
    return (height, width) if orientation in _QUARTER_TURNED else (width, height)


# EXIF orientations 5-8 turn the picture a quarter (with or without a mirror).
_QUARTER_TURNED = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_COMPRESSION = 256, 257, 259
_TIFF_JPEG = frozenset({6, 7})  # old-style and new-style JPEG compression


class _Header(NamedTuple):
    size: tuple[int, int]  # (width, height) as stored
    orientation: int | None  # EXIF's (1: as stored); None where Pillow cannot read the file
    jpeg_in_tiff: bool = False  # a TIFF whose pictures are JPEG-compressed
    # An AVIF with transparency: an image of its own, which FFmpeg reads apart, not with the picture.
    alpha_apart: bool = False


def _header_facts(path) -> _Header | None:
    """What an image file's header says (_Header), or None where unreadable.

    Kept per file as it stands (its time and size): a film's frames are
    looked at more than once before they are read (is it one film, which
    scans can be read), and FFmpeg decodes a whole DPX scan for its header
    (20 ms at 1440x1080), minutes for a long reel.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _file_header_facts(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1 << 17)  # a 90-minute film's frames at 24 fps
def _file_header_facts(path: str, mtime_ns: int, size: int) -> _Header | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Its guard against decoding huge pictures: nothing is decoded here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                orientation = _exif_of(image).get(_EXIF_ORIENTATION)
                jpeg_in_tiff = image.format == "TIFF" and image.tag_v2.get(_TIFF_COMPRESSION) in _TIFF_JPEG
                alpha_apart = image.format == "AVIF" and "A" in image.getbands()
                size = image.size
                if image.format == "TIFF":  # Pillow gives a TIFF's size as shown (it turns TIFFs as it loads them)
                    size = (image.tag_v2.get(_TIFF_WIDTH, size[0]), image.tag_v2.get(_TIFF_HEIGHT, size[1]))
                return _Header(size, orientation if orientation in range(1, 9) else 1, jpeg_in_tiff, alpha_apart)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        pass
    try:
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            # 0x0 where FFmpeg found the file's kind but not its picture (a truncated PNG).
            return _Header((context.width, context.height), None) if context.width and context.height else None
    except (av.error.FFmpegError, IndexError):
        return None


def _exif_of(image):
    """The EXIF (a Pillow Exif) of an image Pillow opened from a file, nothing decoded.

    A PNG may keep its eXIf chunk after its picture, where Pillow's getexif
    finds it by decoding the whole picture: 0.3 s for a 12-megapixel PNG
    with no EXIF at all, paid twice a photo (its header, its metadata). The
    chunk is found by walking the chunks' headers instead.
    """
    from PIL import Image

    if image.format == "PNG" and "exif" not in image.info:
        after = png_chunk(image.filename, b"eXIf")
        if after is not None:
            image.info["exif"] = b"Exif\0\0" + after  # as Pillow keeps one found before the picture
        return Image.Image.getexif(image)  # not PngImageFile's, which decodes the picture to look
    return image.getexif()


def read_image(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file as viewers show it (alpha dropped, EXIF turns applied)."""
    return _upright(_decode_image(Path(path)), "rgb24", None, None)


class Photo(NamedTuple):
    """A still image as viewers show it, at the depth its file has."""

    rgb: np.ndarray  # (H, W, 3): uint8, or uint16 where the file has more than 8 bits a channel
    alpha: np.ndarray | None  # (H, W) of the same type; None where every pixel is opaque
    bits: int | None = None  # bits a channel in the file (10 for most DPX scans); None: the array type's
    # What of the file's metadata a colored copy keeps (_carried_metadata), for write_photo:
    exif: bytes | None = None  # its EXIF (camera, date taken, ...): a TIFF header and its tags
    icc: bytes | None = None  # its ICC color profile


# The numpy layout of a picture per (16 bits a channel, alpha).
_ARRAY_FORMATS = {(False, False): "rgb24", (False, True): "rgba", (True, False): "rgb48le", (True, True): "rgba64le"}


def read_photo(path) -> Photo:
    """An image file's RGB and transparency, 16 bits a channel where it has
    more than 8 (scans of old photos often do), EXIF turns applied, with the
    metadata a colored copy keeps."""
    path = Path(path)
    photo = _photo(_decode_image(path))
    exif, icc = _carried_metadata(path)
    return photo._replace(exif=exif, icc=icc)


# TIFF tags that say how a file stores its picture (size, depth, strips,
# compression, a thumbnail's place), not what it shows: a TIFF's EXIF is its
# tags, and these would describe the source's storage in its copy's file.
_STORAGE_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317,
                           320, 322, 323, 324, 325, 338, 339, 340, 341, 513, 514, 530, 531, 532, 700, 34377,
                           34675, 37724})


def _carried_metadata(path: Path) -> tuple[bytes | None, bytes | None]:
    """(EXIF, ICC profile) of an image file, as write_photo carries them to
    its colored copy: the EXIF with its orientation 1, as the picture is
    written upright, and without the source's storage tags. None for what it
    has not, or where Pillow cannot read it: metadata never stops a photo."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own about odd tags and huge pictures
            with Image.open(path) as image:
                icc = image.info.get("icc_profile") or None
                exif = _exif_of(image)
                for tag in _STORAGE_TAGS & set(exif):
                    del exif[tag]
                if _EXIF_ORIENTATION in exif:
                    exif[_EXIF_ORIENTATION] = 1
                return (exif.tobytes()[6:] if len(exif) else None), icc  # less Pillow's "Exif\0\0"
    except Exception:  # any of Pillow's errors on a file it half reads: the photo is read without
        return None, None


def _photo(frame) -> Photo:
    """A decoded image frame as a Photo (read_photo)."""
    components = frame.format.components
    bits = max(c.bits for c in components)
    deep = bits > 8
    # A palette may hold transparent entries without an alpha component.
    translucent = frame.format.has_palette or any(c.is_alpha for c in components)
    pixels = _upright(frame, _ARRAY_FORMATS[deep, translucent], None, None)
    if not translucent:
        return Photo(pixels, None, bits)
    alpha = pixels[..., 3]
    opaque = np.iinfo(alpha.dtype).max
    return Photo(np.ascontiguousarray(pixels[..., :3]), None if (alpha == opaque).all() else alpha.copy(), bits)


def photo_facts(path) -> dict:
    """What colorizing an image file keeps, as values (`framecolor info
    --json`): its size as shown, whether it is stored turned (EXIF), its
    bits a channel and whether it has transparency. Keys as a video's
    (`path`, `width`, `height`)."""
    return _photo_facts(Path(path))[0]


def describe_photo(path) -> list[tuple[str, str]]:
    """(label, value) rows for `framecolor info` of an image file: photo_facts
    for people, with the pixel format it is decoded in."""
    facts, pix_fmt = _photo_facts(Path(path))
    turned = " (stored turned; shown upright)" if facts["stored_turned"] else ""
    return [
        ("file", facts["path"]),
        ("size", f"{facts['width']} x {facts['height']}{turned}"),
        ("type", f"{facts['type']} ({pix_fmt})"),
        ("depth", f"{facts['bits']} bits a channel"),
        ("transparency", "yes" if facts["transparency"] else "none"),
    ]


def _photo_facts(path: Path) -> tuple[dict, str]:
    """(photo_facts, the decoded picture's pixel format), from one decoding."""
    frame = _decode_image(path)
    photo = _photo(frame)
    height, width = photo.rgb.shape[:2]
    return {
        "path": str(path),
        "width": width,
        "height": height,
        "stored_turned": (width, height) != (frame.width, frame.height),
        "type": path.suffix.lower().lstrip("."),
        "bits": photo.bits,
        "transparency": photo.alpha is not None,
    }, frame.format.name


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
# DPX, the film scanner's format, is written at 16 bits a channel, or at the
# 10 or 12 its source had (write_photo): a scan comes back as deep as it was
# scanned, and a third smaller than at 16.
_IMAGE_CODECS[".dpx"] = ("dpx", {(False, False): "rgb24", (False, True): "rgba",
                                 (True, False): "rgb48le", (True, True): "rgba64le"})
_IMAGE_CODECS[".tiff"] = _IMAGE_CODECS[".tif"]
_IMAGE_CODECS[".jpeg"] = _IMAGE_CODECS[".jpg"]
# The photo types framecolor writes; it reads more (AVIF, GIF), written as PNG by a batch.
WRITTEN_IMAGE_SUFFIXES = frozenset(_IMAGE_CODECS)


# Lossy image encoders' quality. Their defaults aim at a bit rate, not at a
# photo: mjpeg's gave 20 corpus photos back with a mean error of 3.6 codes
# at a third of their size; at quantizer 2 (ffmpeg's -q:v 2) 1.8, at three
# quarters. WebP's quality 75 gave one of them 3.5, 90 gives 2.7.
_IMAGE_OPTIONS = {"mjpeg": {"qmin": "2", "qmax": "2"}, "libwebp": {"quality": "90"}}


def check_photo_name(path) -> None:
    """OutputError where `path`'s type is no photo type framecolor writes."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITTEN_IMAGE_SUFFIXES:
        kind = f"unknown image type {suffix!r}" if suffix else "no suffix to name its image type"
        folder = "" if suffix else "; a folder to make ends with /"
        raise OutputError(f"cannot write {path}: {kind} (use {', '.join(sorted(WRITTEN_IMAGE_SUFFIXES))}{folder})")


def write_image(path, rgb: np.ndarray, *, overwrite: bool = True) -> None:
    """Write an (H, W, 3) uint8 RGB image; the format follows the suffix. Atomic."""
    write_photo(path, Photo(_as_rgb(rgb), None), overwrite=overwrite)


def write_photo(path, photo: Photo, *, overwrite: bool = True) -> None:
    """Write a Photo, keeping its depth and transparency where the suffix's
    format holds them (PNG, TIFF; WebP holds transparency), with a warning
    where it does not. Atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    check_photo_name(path)
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
    pix_fmt = pix_fmts[deep, alpha is not None]
    if codec == "dpx" and deep and alpha is None and photo.bits in (10, 12):
        pix_fmt = f"gbrp{photo.bits}le"  # swscale takes the 16-bit codes back to the scan's own
    pixels = rgb if alpha is None else np.ascontiguousarray(np.dstack([rgb, alpha]))
    frame = av.VideoFrame.from_ndarray(pixels, format=_ARRAY_FORMATS[deep, alpha is not None])
    tmp = _temp_path(path)
    try:
        with _write_errors(path):
            with av.open(str(tmp), "w", format="image2", options={"update": "1"}) as out:
                stream = out.add_stream(codec, rate=1)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = pix_fmt
                stream.options = _IMAGE_OPTIONS.get(codec, {})
                for packet in stream.encode(frame):
                    out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
            _carry_metadata(tmp, codec, photo)
            _move_into_place(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def _carry_metadata(path: Path, codec: str, photo: Photo) -> None:
    """Put `photo`'s EXIF and ICC profile into the image file FFmpeg wrote at
    `path` (JPEG, PNG, WebP, TIFF; other types keep none). The profile only
    where it describes RGB: a gray one cannot describe the colored picture.
    Where they cannot be put in, the picture is written without them, said."""
    icc = photo.icc if photo.icc is not None and photo.icc[16:20] == b"RGB " else None
    splice = _METADATA_SPLICES.get(codec)
    if splice is None or (photo.exif is None and icc is None):
        return
    if codec == "libwebp":  # its VP8X chunk states the canvas
        splice = functools.partial(splice, width=photo.rgb.shape[1], height=photo.rgb.shape[0])
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's about tags it cannot read, which are left out
            spliced = splice(data, photo.exif, icc)
    except Exception:  # a malformed EXIF from the source: the picture matters, not its tags
        warnings.warn(f"{path.name}: the source's EXIF and color profile could not be carried over, "
                      "and are left out", VideoWarning, stacklevel=3)
        return
    path.write_bytes(spliced)


def _jpeg_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """APP1 (Exif) and APP2 (ICC_PROFILE, in chunks) segments right after the JPEG's SOI marker."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")

    def segment(marker: bytes, payload: bytes) -> bytes:
        if len(payload) + 2 > 0xFFFF:
            raise ValueError("too long for a JPEG segment")
        return marker + struct.pack(">H", len(payload) + 2) + payload

    segments = [] if exif is None else [segment(b"\xff\xe1", b"Exif\0\0" + exif)]
    if icc is not None:
        chunks = [icc[i:i + 65519] for i in range(0, len(icc), 65519)]
        segments += [segment(b"\xff\xe2", b"ICC_PROFILE\0" + bytes([n, len(chunks)]) + chunk)
                     for n, chunk in enumerate(chunks, 1)]
    return data[:2] + b"".join(segments) + data[2:]


def _png_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """iCCP and eXIf chunks right after the PNG's IHDR (both must come before its picture)."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    chunks = b"" if icc is None else chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc))
    chunks += b"" if exif is None else chunk(b"eXIf", exif)
    end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4  # IHDR's length, type, data and CRC
    return data[:end] + chunks + data[end:]


def _webp_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None, width: int, height: int) -> bytes:
    """ICCP and EXIF chunks in the WebP's extended form (VP8X, which a simple
    WebP becomes; its flags say which chunks follow, and it states the
    canvas, `width` x `height`), in the order the format sets. The WebP is
    write_photo's: lossy, with a VP8X chunk of its own only where it has
    transparency (an ALPH chunk)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, length = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 8 + length + length % 2
    flags = chunks.pop(0)[1][0] if chunks[0][0] == b"VP8X" else 0
    flags |= (0x20 if icc is not None else 0) | (0x08 if exif is not None else 0)
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunks = ([(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)] + ([(b"ICCP", icc)] if icc is not None else [])
              + chunks + ([(b"EXIF", exif)] if exif is not None else []))
    body = b"WEBP" + b"".join(kind + struct.pack("<I", len(c)) + c + b"\0" * (len(c) % 2) for kind, c in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


_EXIF_POINTERS = frozenset({0x8769, 0x8825})  # the Exif and GPS sub-IFDs
_EXIF_INTEROP = 0xA005  # inside the Exif sub-IFD: an offset this copy would not move with it
_TIFF_ICC = 34675


def _tiff_with_metadata(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """A TIFF whose first IFD also holds `exif`'s tags and the ICC profile.

    Its pictures stay where they are: Pillow lays the added tags (and the
    Exif and GPS sub-IFDs) out after the file's end, and a new first IFD,
    the file's own entries and those, sorted, comes last, the header pointing to it.
    """
    from PIL import Image, TiffImagePlugin

    order = {b"II": "<", b"MM": ">"}[data[:2]]
    first = struct.unpack_from(order + "I", data, 4)[0]
    count = struct.unpack_from(order + "H", data, first)[0]
    entries = {struct.unpack_from(order + "H", data, at)[0]: data[at:at + 12]
               for at in range(first + 2, first + 2 + 12 * count, 12)}
    added = TiffImagePlugin.ImageFileDirectory_v2(ifh=data[:8])
    if exif is not None:
        tags = Image.Exif()
        tags.load(exif)
        for tag, value in tags.items():
            if tag in _EXIF_POINTERS:
                value = {t: v for t, v in tags.get_ifd(tag).items() if t != _EXIF_INTEROP}
            added[tag] = value
    if icc is not None:
        added[_TIFF_ICC] = icc
    start = len(data) + len(data) % 2
    block = added.tobytes(start)
    for at in range(2, 2 + 12 * struct.unpack_from(order + "H", block, 0)[0], 12):
        entries.setdefault(struct.unpack_from(order + "H", block, at)[0], block[at:at + 12])
    data = data + b"\0" * (start - len(data)) + block
    data += b"\0" * (len(data) % 2)
    ifd = (struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
           + struct.pack(order + "I", 0))
    return data[:4] + struct.pack(order + "I", len(data)) + data[8:] + ifd


_METADATA_SPLICES = {"mjpeg": _jpeg_with_metadata, "png": _png_with_metadata, "libwebp": _webp_with_metadata,
                     "tiff": _tiff_with_metadata}


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
