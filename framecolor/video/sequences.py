"""Numbered photos as one video: a film scanned to frames (scan_000001.tif,
scan_000002.tif, ...) has no container, so which photos belong together,
the video they make and its frame rate come from here."""

from __future__ import annotations

import collections
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av

from framecolor.errors import InputError
from framecolor.video.encoding import FIELD_PROGRESSIVE, FULL_RANGE
from framecolor.video.files import VideoWarning, _check_input_file, _open_input
from framecolor.video.photos import _decode_image, is_image_path, list_images, shown_size
from framecolor.video.pixels import _upright
from framecolor.video.probing import VideoInfo, _nearest_common_rate, _stream_duration
from framecolor.video.reader import Frame

# Scans carry no frame rate; film runs at 24 frames a second.
DEFAULT_SEQUENCE_FPS = Fraction(24)
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
# 23.98 and 29.97 stand for 24000/1001 and 30000/1001 to within this; 24 and
# 24000/1001 are five times as far apart.
_TYPED_RATE_TOLERANCE = 0.0002
# A numbered photo: the stem's text before its last number, which the frames
# of one scanned film share (scan_000001.tif, reel2-0001.png).
_NUMBERED_STEM = re.compile(r"(.*?)(\d+)")
# Photos decoded ahead of the one being read: PyAV's image decoders let go
# of the GIL, and a 4K TIFF takes tens of milliseconds.
_READ_AHEAD = 4


def frame_rate(text: str) -> Fraction:
    """A frame rate as people write it ("24", "25", "29.97", "24000/1001"):
    a rounded NTSC rate is taken as the exact one it stands for."""
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"not a frame rate: {text!r} (write 24, 29.97 or 30000/1001)") from None
    if not 1 / 1000 < rate <= 1000:  # a frame a quarter hour, or an error for the muxer
        raise InputError(f"a frame rate is more than 0.001 and at most 1000 frames a second, not {text}")
    nearest, off = _nearest_common_rate(rate)
    return nearest if off < _TYPED_RATE_TOLERANCE else rate


def sequence_key(path) -> tuple | None:
    """What the photos of one numbered sequence share (folder, name before the number, type), or None."""
    path = Path(path)
    match = _NUMBERED_STEM.fullmatch(path.stem)
    if match is None or not is_image_path(path):
        return None
    return path.parent, match.group(1), path.suffix.lower()


def frame_number(path) -> int:
    return int(_NUMBERED_STEM.fullmatch(Path(path).stem).group(2))


def why_not_one_film(photos: Sequence[Path]) -> str | None:
    """Why `photos` are not one film's frames (a photo with no number, photos
    named apart, or of two sizes as shown), or None where they are."""
    example = "numbered photos of one name (scan_0001.tif, scan_0002.tif, ...)"
    key = sequence_key(photos[0])
    if key is None:
        return f"a video is made of {example}; {photos[0].name} has no number"
    stray = next((p for p in photos if sequence_key(p) != key), None)
    if stray is not None:
        return f"a video is made of {example}; {photos[0].name} and {stray.name} are not of one sequence"
    first = None
    for photo in photos:
        size = shown_size(photo)
        if size is None:  # not a size of its own: said as what it is
            return f"{photo.name} cannot be read (damaged, or not an image)"
        if first is None:
            first = size
        elif size != first:
            turned = " (turned by its EXIF orientation)" if size[::-1] == first else ""
            return (f"a video's frames share one size, but {photos[0].name} is {first[0]}x{first[1]} "
                    f"and {photo.name} is {size[0]}x{size[1]}{turned}")
    return None


def photo_film(folder) -> list[Path]:
    """The photos of `folder` as one film's frames, in number order.

    InputError unless they are one numbered sequence of one size as shown:
    a video's frames share a size, and photos named apart are not one film.
    A gap in the numbers (a frame lost in scanning) is a warning, since the
    video would jump there.
    """
    folder = Path(folder)
    photos = list_images(folder)
    if not photos:
        raise InputError(f"{folder}: no photos (.png, .tif, .jpg, ...) to make one video of; "
                         "to colorize the videos in it one by one, give an output folder")
    reason = why_not_one_film(photos)
    if reason is not None:
        raise InputError(f"{folder}: {reason}")
    numbers = [frame_number(p) for p in photos]
    # Natural order puts scan_01 and scan_001 side by side: a re-scan under
    # other zero padding would be every frame twice.
    for (a, path_a), (b, path_b) in zip(zip(numbers, photos), zip(numbers[1:], photos[1:])):
        if a == b:
            raise InputError(f"{folder}: {path_a.name} and {path_b.name} are both frame {a}; keep one of them")
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    if gaps:
        a, b = gaps[0]
        more = f" (and {len(gaps) - 1} more gaps)" if len(gaps) > 1 else ""
        warnings.warn(f"{folder}: the frames' numbers skip from {a} to {b}{more}; the video jumps there",
                      VideoWarning, stacklevel=2)
    return photos


# A soundtrack this many seconds longer or shorter than the film is said:
# more than a few frames apart, the rate the photos were given is likely not the film's.
SOUNDTRACK_MISMATCH_S = 1.0


def check_soundtrack(path, film: VideoInfo) -> Path:
    """`path`, a file with sound to put under `film` (the photos' video);
    InputError if it has none. Where the sound lasts a second or more longer
    (it is cut at the film's end) or shorter (the film ends silent), says so."""
    path = _check_input_file(path, "a sound file")
    with _open_input(path, "a sound file") as container:
        if not container.streams.audio:
            raise InputError(f"{path} has no sound to put under the film (give a sound file: .wav, .flac, ...)")
        sound = _stream_duration(container, container.streams.audio[0])
    if sound is not None and abs(sound - film.duration) >= SOUNDTRACK_MISMATCH_S:
        what = ("the sound is cut at the film's end" if sound > film.duration
                else f"its last {film.duration - sound:.1f} s are silent")
        warnings.warn(f"{path} lasts {sound:.1f} s and the film {film.duration:.1f} s ({film.frame_count} photos "
                      f"at {float(film.fps):g} fps): {what} (--fps sets the rate)", VideoWarning, stacklevel=2)
    return path


def probe_photo_film(photos: Sequence[Path], fps=DEFAULT_SEQUENCE_FPS, *, full_range: bool = True) -> VideoInfo:
    """The video `photos` make at `fps`: shaped as the first is shown, one
    frame per photo, pts counting frames (time base 1/fps).

    `full_range` says which luma codes read_photo_film will give (the
    photos' own gray, 0..255, or 10-bit video codes). A 16-bit photo
    reports 16-bit luma, so that an 8-bit output says it rounds it.
    `fps` is one frame_rate gives (more than 0).
    """
    fps = Fraction(fps)
    frame = _decode_image(Path(photos[0]))
    height, width = _upright(frame, "gray", None, None).shape
    deep = frame.format.components[0].bits > 8
    return VideoInfo(
        path=str(Path(photos[0]).parent), width=width, height=height,
        frame_count=len(photos), frame_count_exact=True, fps=fps, time_base=1 / fps,
        duration=float(len(photos) / fps), codec=_photo_codec(photos[0]),
        pix_fmt="gray16le" if deep else "gray", audio=(), subtitles=(),
        color_range=FULL_RANGE if full_range else LIMITED_RANGE, field_order=FIELD_PROGRESSIVE,
    )


def _photo_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name


def read_photo_film(photos: Sequence[Path], fps=DEFAULT_SEQUENCE_FPS, *, format: str = "gray",
                    size=None, short_side=None, start: float | None = None, end: float | None = None,
                    every: int = 1, max_frames: int | None = None) -> Iterator[Frame]:
    """Frames of the video `photos` make at `fps`, as video.read_frames gives
    a file's (format, size, short_side, every, max_frames alike): photo i is
    at pts i and i/fps seconds; start/end pick the photos in [start, end).
    A photo that cannot be decoded is an InputError when its turn comes.
    """
    fps = Fraction(fps)
    first = 0 if start is None else max(0, -(-Fraction(start) * fps // 1))
    stop = len(photos) if end is None else min(len(photos), -(-Fraction(end) * fps // 1))
    chosen = range(int(first), int(stop), int(every))[:max_frames]

    def decode(i):
        return _upright(_decode_image(Path(photos[i])), format, size, short_side)

    with ThreadPoolExecutor(2, thread_name_prefix="photo-film") as pool:
        ahead: collections.deque = collections.deque()
        indices = iter(chosen)
        while True:
            while len(ahead) < _READ_AHEAD and (i := next(indices, None)) is not None:
                ahead.append((i, pool.submit(decode, i)))
            if not ahead:
                return
            i, image = ahead.popleft()
            yield Frame(image.result(), i, float(i / fps), i - int(first))
