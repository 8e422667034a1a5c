"""Photos in the types that are not always photos (AVIF, GIF), how photos
that Pillow cannot read stand, and a damaged photo in a film said once."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from framecolor import apply, video
from framecolor.errors import InputError
from tests import media

_AV1_ENCODERS = ("libaom-av1", "libsvtav1", "librav1e")


def _av1_encoder() -> str:
    encoder = next((name for name in _AV1_ENCODERS if name in av.codecs_available), None)
    if encoder is None:
        pytest.skip("this PyAV has no AV1 encoder to make an AVIF with")
    return encoder


def _pillow_avif():
    """Pillow's Image, where it reads and writes AVIF (11.3 and later)."""
    from PIL import Image, features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    return Image


def _picture(width: int = 64, height: int = 48) -> np.ndarray:
    """A gray picture with no symmetry, in blocks that lossy coding keeps."""
    cells = np.random.default_rng(0).integers(0, 256, (height // 8, width // 8), dtype=np.uint8)
    return np.dstack([cells.repeat(8, 0).repeat(8, 1)] * 3)


def _ffmpeg_avif(path, picture: np.ndarray):
    """An AVIF as FFmpeg's muxer writes one: a single still item."""
    with av.open(str(path), "w", format="avif") as out:
        stream = out.add_stream(_av1_encoder(), rate=1)
        stream.width, stream.height, stream.pix_fmt = picture.shape[1], picture.shape[0], "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _gif(path, pictures: list[np.ndarray]):
    from PIL import Image

    first, *rest = [Image.fromarray(p) for p in pictures]
    first.save(path, save_all=bool(rest), append_images=rest, duration=100, loop=0)
    return path


def _shown(path, mode: str = "RGB") -> np.ndarray:
    """What viewers show of an image file (Pillow, its orientation applied)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert(mode)).astype(int)


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return apply.Colorizer(apply.load(tiny_model_path), apply.ApplyConfig(batch_size=4, preset="ultrafast"))


# ---------------------------------------------------------------------------
# AVIF and GIF


def test_a_still_avif_and_a_gif_of_one_picture_are_colorized_as_photos(colorizer, tmp_path):
    # Both were taken for videos: `apply photo.avif out.png` said out.png was
    # an image name for a video, and read_photo said "is a video (QuickTime / MOV)".
    picture = _picture()
    avif = _ffmpeg_avif(tmp_path / "photo.avif", picture)
    gif = _gif(tmp_path / "photo.gif", [picture])
    for source in (avif, gif):
        assert video.is_image_path(source) and not video.is_video_path(source), source.name
        assert np.abs(video.read_photo(source).rgb.astype(int) - picture).mean() < (4 if source == avif else 0.5)
        output = tmp_path / f"{source.stem}-{source.suffix[1:]}.png"
        apply.colorize_file(colorizer, source, output)
        colored = video.read_photo(output).rgb
        assert colored.shape == picture.shape, source.name
        assert np.ptp(colored.astype(int), axis=2).max() > 0, source.name  # the model's color, not the gray


def test_an_animated_gif_stays_a_video_and_an_mp4_named_avif_is_refused(tmp_path):
    picture = _picture()
    animated = _gif(tmp_path / "animated.gif", [picture, 255 - picture])
    assert video.is_video_path(animated) and not video.is_image_path(animated)
    assert video.is_video_path(tmp_path / "missing.gif")  # the video reader says it is missing
    with pytest.raises(InputError, match=r"animated.gif is a video \(CompuServe Graphics Interchange"):
        video.read_photo(animated)
    movie = media.make_video(tmp_path / "movie.mp4", frames=2, audio=False).rename(tmp_path / "movie.avif")
    with pytest.raises(InputError, match=r"movie.avif is a video \(QuickTime / MOV\), not an image"):
        video.read_photo(movie)


def test_an_avif_keeps_its_transparency_and_stands_as_it_says(tmp_path):
    # FFmpeg reads an AVIF's transparency as a picture of its own, and its
    # picture without it; its turn and mirror (irot, imir) are the EXIF orientation Pillow reports.
    Image = _pillow_avif()
    picture = _picture()
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    Image.fromarray(np.dstack([picture, alpha])).save(tmp_path / "clear.avif", quality=100)
    photo = video.read_photo(tmp_path / "clear.avif")
    assert photo.alpha is not None and np.abs(photo.alpha.astype(int) - alpha).max() <= 8
    np.testing.assert_array_equal(photo.alpha, _shown(tmp_path / "clear.avif", "RGBA")[..., 3])
    for orientation in (2, 6, 7):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"turned_{orientation}.avif"
        Image.fromarray(picture).save(path, quality=100, exif=exif.tobytes())
        shown = _shown(path)
        got = video.read_image(path).astype(int)
        assert got.shape == shown.shape, orientation
        assert np.abs(got - shown).mean() < 4, orientation
        assert video.shown_size(path) == (shown.shape[1], shown.shape[0]), orientation


def test_a_photo_pillow_cannot_read_stands_as_ffmpeg_says_mirrors_included(tmp_path, monkeypatch):
    # An AVIF where Pillow has no AVIF (before 11.3): FFmpeg's display matrix
    # has the mirror, its rotation does not; 2 (mirrored) came out as a half
    # turn, 4 (flipped) as stored, 5 and 7 mirrored.
    Image = _pillow_avif()
    picture = _picture(80, 48)
    paths, shown = {}, {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths[orientation] = tmp_path / f"scan_{orientation}.avif"
        Image.fromarray(picture).save(paths[orientation], quality=100, exif=exif.tobytes())
        shown[orientation] = _shown(paths[orientation])
    opened = Image.open

    def without_avif(path, *args, **kwargs):
        if str(path).endswith(".avif"):
            raise Image.UnidentifiedImageError(f"cannot identify image file {str(path)!r}")
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", without_avif)
    for orientation, path in paths.items():
        got = video.read_image(path).astype(int)
        assert got.shape == shown[orientation].shape, orientation
        assert np.abs(got - shown[orientation]).mean() < 4, orientation


# ---------------------------------------------------------------------------
# A damaged photo in a film


def test_a_film_says_its_truncated_first_photo_once(colorizer, tmp_path):
    # The film looks at its first photo for its size, its transparency and
    # its opening frames before colorizing it: each look said it again.
    film = tmp_path / "scans"
    film.mkdir()
    rng = np.random.default_rng(0)
    for number in (1, 2, 3):
        video.write_image(film / f"scan_{number:04d}.jpg", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    first = film / "scan_0001.jpg"
    first.write_bytes(first.read_bytes()[: first.stat().st_size * 3 // 4])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        apply.colorize_photo_film(colorizer, film, tmp_path / "film.mp4", progress=False)
    assert [str(w.message) for w in said if "damaged" in str(w.message)] == [
        f"{first} is damaged (truncated): the part of the picture missing from it is colorized flat"]
    assert video.probe(tmp_path / "film.mp4").frame_count == 3


# ---------------------------------------------------------------------------
# Animated PNG and WebP


def test_an_animated_png_is_a_video_and_one_of_one_frame_a_photo(tmp_path):
    # An APNG of several frames was colorized into a still of its first.
    from PIL import Image

    picture = _picture()
    animated, single = tmp_path / "animated.png", tmp_path / "single.png"
    Image.fromarray(picture).save(animated, save_all=True, append_images=[Image.fromarray(255 - picture)],
                                  duration=100)
    Image.fromarray(picture).save(single, save_all=True, duration=100)  # an APNG of one frame
    assert not video.is_image_path(animated)
    assert video.probe(animated).frame_count == 2
    assert video.is_image_path(single)
    np.testing.assert_array_equal(video.read_photo(single).rgb, picture)
    with pytest.raises(InputError, match=r"animated.png is a video \(Animated Portable Network Graphics\)"):
        video.read_photo(animated)
    # Named .jpg, it was read as its first frame: its content says it is a video.
    named = tmp_path / "animated.jpg"
    named.write_bytes(animated.read_bytes())
    with pytest.raises(InputError, match=r"animated.jpg is a video \(Animated Portable Network Graphics\)"):
        video.read_photo(named)


def test_an_animated_webp_is_said_to_be_unreadable(tmp_path):
    # FFmpeg's WebP decoder has no animation: it was "not an image file (or damaged)".
    from PIL import Image

    picture = _picture()
    path = tmp_path / "animated.webp"
    Image.fromarray(picture).save(path, save_all=True, append_images=[Image.fromarray(255 - picture)], duration=100)
    with pytest.raises(InputError, match=r"animated.webp is an animated WebP, which cannot be read"):
        video.read_photo(path)


# ---------------------------------------------------------------------------
# EXIF and color profiles


def _profile(space: str) -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes()


def test_a_photos_exif_and_rgb_profile_are_carried_into_its_copy(tmp_path):
    # They were dropped: the camera, the date it was taken and the colors' profile.
    from PIL import Image

    picture = _picture()
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "Nikon", 6  # Make; turned a quarter, which the copy is not
    exif.get_ifd(0x8769)[0x9003] = "1962:05:01 10:00:00"  # DateTimeOriginal
    source = tmp_path / "source.jpg"
    Image.fromarray(picture).save(source, exif=exif.tobytes(), icc_profile=_profile("sRGB"), quality=95)
    photo = video.read_photo(source)
    deep = photo._replace(rgb=photo.rgb.astype(np.uint16) * 257, alpha=np.full(photo.rgb.shape[:2], 65535, np.uint16))
    for name, written in (("copy.jpg", photo), ("copy.png", photo), ("copy.webp", photo), ("copy.tif", photo),
                          ("deep.png", deep), ("deep.tif", deep), ("clear.webp", deep)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", video.VideoWarning)  # clear.webp: rounded to 8 bits
            video.write_photo(tmp_path / name, written)
        with Image.open(tmp_path / name) as copy:
            tags = copy.getexif()
            assert (tags.get(0x010F), tags.get(0x0112)) == ("Nikon", 1), name
            assert tags.get_ifd(0x8769).get(0x9003) == "1962:05:01 10:00:00", name
            assert copy.info.get("icc_profile") == _profile("sRGB"), name
        read = video.read_photo(tmp_path / name)  # the picture as FFmpeg reads it, untouched by the tags
        assert read.rgb.shape == written.rgb.shape, name
        if name.endswith((".png", ".tif")):
            np.testing.assert_array_equal(read.rgb, written.rgb, err_msg=name)
    # A gray profile cannot describe a colored copy: left out, the EXIF kept.
    srgb = _profile("sRGB")
    gray = tmp_path / "gray.jpg"
    Image.fromarray(picture[..., 0]).save(gray, exif=exif.tobytes(), icc_profile=srgb[:16] + b"GRAY" + srgb[20:])
    video.write_photo(tmp_path / "gray-copy.jpg", video.read_photo(gray))
    with Image.open(tmp_path / "gray-copy.jpg") as copy:
        assert "icc_profile" not in copy.info and copy.getexif().get(0x010F) == "Nikon"
    # EXIF that cannot be put in never stops the picture.
    with pytest.warns(video.VideoWarning, match="EXIF and color profile could not be carried over"):
        video.write_photo(tmp_path / "long.jpg", photo._replace(exif=b"II*\0" + bytes(70000)))  # over a segment
    assert video.read_photo(tmp_path / "long.jpg").rgb.shape == photo.rgb.shape
    video.write_photo(tmp_path / "bad.tif", photo._replace(exif=b"II*\0garbage"))  # no tags in it: none added
    assert video.read_photo(tmp_path / "bad.tif").rgb.shape == photo.rgb.shape


def test_a_pngs_exif_after_its_picture_turns_it_and_is_carried(tmp_path):
    # PNG allows its eXIf chunk after the picture, where Pillow finds it only
    # by decoding the picture: it is found by the chunks' headers instead, and
    # was left out of the copy.
    import struct
    import zlib

    from PIL import Image

    picture = _picture()
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "Nikon", 6  # Make; turned a quarter
    plain = tmp_path / "plain.png"
    Image.fromarray(picture).save(plain)
    data = plain.read_bytes()
    body = exif.tobytes()[6:]  # less Pillow's "Exif\0\0"
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end = data.rindex(b"IEND") - 4  # before IEND's length
    source = tmp_path / "trailing.png"
    source.write_bytes(data[:end] + chunk + data[end:])
    assert video.shown_size(source) == (48, 64)
    photo = video.read_photo(source)
    np.testing.assert_array_equal(photo.rgb, _shown(source))
    video.write_photo(tmp_path / "copy.png", photo)
    with Image.open(tmp_path / "copy.png") as copy:
        tags = copy.getexif()
        assert (tags.get(0x010F), tags.get(0x0112)) == ("Nikon", 1)
