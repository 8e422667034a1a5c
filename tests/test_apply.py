"""framecolor apply: the streaming pipeline, temporal smoothing, batch mode, the CLI.

One tiny freshly initialized model and one Colorizer config for the whole
module; clips are 64x48 except the odd-size one, so each jitted step compiles
once per shape (Colorizers of an equal model share compiled code).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import warnings
from fractions import Fraction
from pathlib import Path

import av
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from framecolor import apply, batch, color, inference, metrics, smoothing, video
from framecolor.errors import InputError, ModelFileError, OutputError
from tests import media

BATCH = 4
CONFIG = apply.ApplyConfig(batch_size=BATCH, preset="ultrafast")


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


@pytest.fixture(scope="module")
def model(model_path):
    return apply.load(model_path)


@pytest.fixture(scope="module")
def colorizer(model):
    return apply.Colorizer(model, CONFIG)


@pytest.fixture(scope="module")
def colored(colorizer, clip, tmp_path_factory):
    """The clip colored losslessly (crf 0): the pipeline itself must not touch luma."""
    out = tmp_path_factory.mktemp("colored") / "out.mp4"
    apply.colorize_video(colorizer.reconfigured(crf=0), clip, out, progress=False)
    return out


def _packets(path, kind):
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts) for p in c.demux(getattr(c.streams, kind)[0]) if p.size]


def _luma(path):
    return np.stack([f.image for f in video.read_frames(path, format="luma")])


def _pts(path):
    return [f.pts for f in video.read_frames(path, format="luma")]


def _cli():
    from framecolor.cli import apply as apply_cli

    app = typer.Typer()
    app.callback()(lambda: None)  # keep "apply" a subcommand, as in the real app
    apply_cli.register(app)
    return app


def _run_cli(*args):
    return CliRunner().invoke(_cli(), ["apply", *map(str, args)])


# ---------------------------------------------------------------------------
# The video pipeline


def test_output_keeps_frames_pts_audio_and_luma(clip, colored):
    src, out = video.probe(clip), video.probe(colored)
    assert (out.width, out.height, out.frame_count, out.fps, out.time_base) == (
        src.width, src.height, src.frame_count, src.fps, src.time_base)
    assert out.duration == pytest.approx(src.duration)
    assert _pts(colored) == _pts(clip)
    assert _packets(colored, "audio") == _packets(clip, "audio")
    np.testing.assert_array_equal(_luma(colored), _luma(clip))  # the input's Y plane, exactly
    # ... and something was colored: the chroma is not all neutral.
    rgb = next(video.read_frames(colored)).image.astype(int)
    assert np.abs(rgb - rgb.mean(-1, keepdims=True)).max() > 2
    assert not any(p.name.startswith(".") for p in colored.parent.iterdir())


def test_output_keeps_the_tags_timecode_track_names_and_chapters(colorizer, tmp_path):
    source = media.make_video(tmp_path / "reel.mov", frames=3, tags={"title": "Reel 3", "comment": "1962 print"},
                              video_tags={"timecode": "01:02:03:04"})
    out = tmp_path / "out.mov"
    apply.colorize_video(colorizer, source, out, progress=False)
    with av.open(str(out)) as c:
        assert (c.metadata["title"], c.metadata["comment"]) == ("Reel 3", "1962 print")
        assert c.streams.video[0].metadata["timecode"] == "01:02:03:04"
        assert [s.metadata.get("timecode") for s in c.streams.data] == ["01:02:03:04"]  # a MOV timecode track
    # An audio track's language and title tell a film's tracks apart; chapters are how it is navigated.
    chapters = [(0.0, 0.2, "Opening"), (0.2, 0.4, "Street")]
    source = media.make_video(tmp_path / "dub.mkv", audio_tags={"language": "fre", "title": "French mix"},
                              chapters=chapters)
    apply.colorize_video(colorizer, source, tmp_path / "dub_out.mkv", progress=False)
    with av.open(str(tmp_path / "dub_out.mkv")) as c:
        tags = c.streams.audio[0].metadata
        assert (tags["language"], tags["title"]) == ("fre", "French mix")
        assert [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]), ch["metadata"]["title"])
                for ch in c.chapters()] == chapters


def test_subtitles_that_outlast_the_picture_are_not_a_truncation(colorizer, tmp_path):
    source = media.make_video(tmp_path / "short.mkv", frames=3, subtitles="srt",  # subtitles run to 0.35 s
                              colorless=range(3))  # black and white, as apply's input is
    assert video.probe(source).duration == pytest.approx(3 * 1001 / 30000, abs=0.01)  # the picture's own
    with warnings.catch_warnings():
        warnings.simplefilter("error", video.VideoWarning)
        summary = apply.colorize_video(colorizer, source, tmp_path / "out.mkv", progress=False)
    assert summary["frames"] == 3



def _flv_with_long_sound(path, frames=12, sound_s=2.0):
    """An FLV, which states only the file's duration: here its sound's, 1.5 s past the picture."""
    rate = Fraction(25)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flv", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("mp3", rate=44100)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(media.gray(media.frame_image(i, 64, 48)), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        media._encode_tone(out, sound, sound_s)
    return path


def test_sound_that_outlasts_the_picture_of_an_flv_is_not_a_truncation(colorizer, tmp_path):
    source = _flv_with_long_sound(tmp_path / "long_sound.flv")
    info = video.probe(source)
    assert (info.frame_count, info.frame_count_exact) == (12, True) and info.duration > 1.9  # the sound's
    with warnings.catch_warnings():
        warnings.simplefilter("error", video.VideoWarning)  # nor warned of as one, by apply or by the reader
        assert apply.colorize_video(colorizer, source, tmp_path / "out.mkv", progress=False)["frames"] == 12
        warnings.simplefilter("ignore", video.VideoWarning)
        # Its excerpts too, and a copy cut short is still refused.
        done = apply.colorize_video(colorizer, source, tmp_path / "part.mkv", progress=False,
                                    excerpt=apply.Excerpt(0.2, 1.0))
        assert done["frames"] == 7  # 0.2 s to the picture's end, 0.44 s
        cut = media.truncate_copy(source, tmp_path / "cut.flv", 0.5)
        with pytest.raises(InputError, match="cut.flv is truncated or damaged"):
            apply.colorize_video(colorizer, cut, tmp_path / "cut.mkv", progress=False)
    assert not (tmp_path / "cut.mkv").exists()


def test_mpeg_ts_in_and_out(colorizer, tmp_path):
    """Broadcast captures come as MPEG-TS, whose muxer FFmpeg cannot ask whether it holds H.264."""
    source = media.make_video(tmp_path / "capture.ts", frames=6)
    out = tmp_path / "out.ts"
    apply.colorize_video(colorizer, source, out, progress=False)
    assert video.probe(out).frame_count == 6 and len(video.probe(out).audio) == 1
    assert np.diff(_pts(out)).tolist() == np.diff(_pts(source)).tolist()  # the muxer may shift the start
    with pytest.raises(OutputError, match="a .webm file cannot hold libx264"):  # a real no is still one
        apply.colorize_video(colorizer.reconfigured(codec="libx264"), source, tmp_path / "out.webm", progress=False)


def test_an_avi_with_b_frames_is_colored_with_its_frames_in_time(colorizer, tmp_path):
    """AVI's B-frames leave the decoder stamped out of order (see test_video);
    the output must get them in display order, all of them."""
    source = media.make_video(tmp_path / "film.avi", rate=Fraction(25), bframes=2)
    out = tmp_path / "film.mp4"
    apply.colorize_video(colorizer, source, out, progress=False)
    def times(path):
        with av.open(str(path)) as container:
            return [frame.time for frame in container.decode(video=0)]

    assert times(out) == sorted(times(source))  # the same times, in display order
    assert [data for data, _ in _packets(out, "audio")] == [data for data, _ in _packets(source, "audio")]


def test_a_picture_that_changes_size_mid_way_is_scaled_to_one_size(colorizer, tmp_path):
    # A broadcast capture switching between programmes: the output has one
    # size, the one the file states, and every frame, at its time.
    source = media.make_size_switching_ts(tmp_path / "capture.ts")
    info = video.probe(source)
    out = tmp_path / "out.mp4"
    with pytest.warns(video.VideoWarning, match=r"changes size at 0\.24 s, 64x48 -> 96x64; .* scaled to 96x64"):
        apply.colorize_video(colorizer, source, out, progress=False)
    assert (info.width, info.height) == (96, 64)
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert {(f.width, f.height) for f in frames} == {(96, 64)}
    assert [f.time for f in frames] == [round(1 + n / 25, 6) for n in range(12)]
    # The frames already at that size keep their luma.
    with pytest.warns(video.VideoWarning, match="changes size"):  # read as it is, unscaled
        luma_in = np.stack([f.image for f in video.read_frames(source, format="luma")][6:])
    assert np.mean(np.abs(_luma(out)[6:].astype(int) - luma_in) <= 1) > 0.999


def test_a_recording_that_starts_mid_gop_is_colored_from_its_first_keyframe(colorizer, tmp_path):
    # No decoder can show the frames before the first keyframe; they are
    # not damage, and the frames after them are the recording.
    whole = media.make_video(tmp_path / "broadcast.ts", frames=48, rate=Fraction(25), keyint=12)
    source = media.cut_ts_start(whole, tmp_path / "recording.ts", 0.3)
    with av.open(str(source)) as container:
        decodable = [frame.time for frame in container.decode(video=0)]
    assert video.probe(source).frame_count > len(decodable)
    out = tmp_path / "out.mp4"
    with pytest.warns(video.VideoWarning, match="starts mid-way through a group of pictures"):
        apply.colorize_video(colorizer, source, out, progress=False)
    with av.open(str(out)) as container:
        assert [frame.time for frame in container.decode(video=0)] == pytest.approx(decodable, abs=1e-3)  # MP4's ticks


def test_a_header_that_misstates_the_frame_rate_is_not_taken_at_its_word(colorizer, tmp_path):
    # The header says 30000 frames/s, the timestamps 29.97: taken at its
    # word, the whole file looked truncated (its last frame 33 ms before its
    # end, not two frame periods) and the output would state 30000 too.
    source = media.make_misstated_rate_mkv(tmp_path / "remuxed.mkv")
    with av.open(str(source)) as container:
        assert container.streams.video[0].average_rate == 30000
    assert video.probe(source).fps == Fraction(30000, 1001)
    out = tmp_path / "out.mp4"
    apply.colorize_video(colorizer, source, out, progress=False)
    times = [[f.time for f in video.read_frames(path, format="luma")] for path in (source, out)]
    assert times[1] == pytest.approx(times[0], abs=1e-3) and len(times[1]) == 12
    assert float(video.probe(out).fps) == pytest.approx(30000 / 1001, rel=0.005)  # its frames' millisecond times


def test_an_mpeg_ps_that_stamps_few_packets_keeps_its_stated_rate(colorizer, tmp_path):
    # MPEG-PS stamps a packet only where a pack starts: here 2 of 10, 0.16 s
    # apart. Taken as the frames' rate (6.25/s), the gaps were filled at that
    # rate and the pipeline stopped on a traceback ("pts must increase").
    source = media.make_video(tmp_path / "dvd.mpg", frames=10, rate=Fraction(25), bframes=2, audio=False)
    with av.open(str(source)) as container:
        assert sum(p.pts is not None for p in container.demux(video=0) if p.size) < 10
    assert video.probe(source).fps == 25
    out = tmp_path / "out.mkv"
    apply.colorize_video(colorizer, source, out, progress=False)
    assert [f.time for f in video.read_frames(out, format="luma")] == pytest.approx([i / 25 for i in range(10)])


def test_a_cover_picture_is_kept_where_the_output_holds_one(colorizer, tmp_path):
    source, picture = media.with_cover(media.make_video(tmp_path / "plain.mp4"), tmp_path / "song.mp4")
    for suffix in (".mp4", ".mkv"):  # MP4's attached picture; Matroska's cover.jpg attachment
        out = tmp_path / f"out{suffix}"
        apply.colorize_video(colorizer, source, out, progress=False)
        with av.open(str(out)) as container:
            covers = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
            assert len(covers) == 1 and len(container.streams.video) == 2
            assert [bytes(p) for p in container.demux(covers[0]) if p.size] == [picture]
        times = [[f.time for f in video.read_frames(path, format="luma")] for path in (source, out)]
        assert times[1] == pytest.approx(times[0], abs=1e-3)
    with pytest.warns(video.VideoWarning, match="skipping the cover picture .* a .ts file cannot hold it"):
        apply.colorize_video(colorizer, source, tmp_path / "out.ts", progress=False)


def test_an_mp4_cut_without_reencoding_is_colored_whole(colorizer, tmp_path):
    whole = media.make_video(tmp_path / "whole.mp4", frames=24, rate=Fraction(25), keyint=12, audio=False)
    source = media.cut_without_reencoding(whole, tmp_path / "cut.mp4", hidden=3)
    out = tmp_path / "out.mp4"
    apply.colorize_video(colorizer, source, out, progress=False)
    assert _pts(out) == _pts(source) and len(_pts(out)) == 21


def test_an_excerpt_starts_at_zero_with_its_own_sound(colorizer, tmp_path):
    # To try a model on a minute of a feature film: frames 10-19 of 30, at
    # 0 s, and the sound that plays with them, cut from the source's.
    source = media.make_video(tmp_path / "film.mp4", frames=30, rate=Fraction(25))
    out = tmp_path / "part.mp4"
    apply.colorize_video(colorizer, source, out, progress=False, excerpt=apply.Excerpt(0.4, 0.4))
    frames = list(video.read_frames(out, format="luma"))
    assert [round(f.time, 3) for f in frames] == [round(n / 25, 3) for n in range(10)]
    originals = list(video.read_frames(source, format="luma"))[10:20]
    for got, original in zip(frames, originals):
        assert np.mean(np.abs(got.image.astype(int) - original.image) <= 1) > 0.999
    with av.open(str(source)) as container:
        stream = container.streams.audio[0]
        first_video = float(container.streams.video[0].start_time * container.streams.video[0].time_base)
        packets = [(bytes(p), float(p.pts * stream.time_base), float(p.duration * stream.time_base))
                   for p in container.demux(stream) if p.size]
    kept = [p for p in packets if 0.4 + first_video < p[1] + p[2] and p[1] < 0.8 + first_video]
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        got = [(bytes(p), float(p.pts * stream.time_base)) for p in container.demux(stream) if p.size]
    assert [data for data, _ in got] == [data for data, _, _ in kept]  # the same sound, cut to the part
    assert got[0][1] == pytest.approx(kept[0][1] - 0.4 - first_video, abs=1e-3)  # still in time with the picture
    with pytest.raises(InputError, match="nothing from 5 s on"):
        apply.colorize_video(colorizer, source, tmp_path / "none.mp4", progress=False, excerpt=apply.Excerpt(5.0))
    with pytest.raises(InputError, match="no frame from 0.41 s to 0.42 s"):  # between two frames
        apply.colorize_video(colorizer, source, tmp_path / "none.mp4", progress=False,
                             excerpt=apply.Excerpt(0.41, 0.01))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4", "part.mp4"]


def test_an_excerpt_keeps_the_chapters_it_overlaps_on_its_own_timeline(colorizer, tmp_path):
    # A part of a film still opens on the chapter it starts in, as ffmpeg -ss/-t keeps them.
    source = media.make_video(tmp_path / "film.mkv", frames=30, rate=Fraction(25),
                              chapters=[(0.0, 0.5, "Opening"), (0.5, 1.0, "Street"), (1.0, 1.2, "Ending")])

    def chapters(excerpt):
        out = tmp_path / f"part_{excerpt.start}.mkv"
        apply.colorize_video(colorizer, source, out, progress=False, excerpt=excerpt)
        with av.open(str(out)) as c:
            return [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                     ch["metadata"]["title"]) for ch in c.chapters()]

    assert chapters(apply.Excerpt(0.4, 0.4)) == [(0.0, 0.1, "Opening"), (0.1, 0.4, "Street")]
    assert chapters(apply.Excerpt(0.6)) == [(0.0, 0.4, "Street"), (0.4, 0.6, "Ending")]  # to the end


def test_vfr_pts_are_kept_and_default_quality_keeps_luma(colorizer, vfr_clip, tmp_path):
    out = tmp_path / "vfr.mp4"
    summary = apply.colorize_video(colorizer, vfr_clip, out, progress=False)  # default: keep luma, lossy
    assert summary["frames"] == 12
    assert _pts(out) == _pts(vfr_clip) == media.frame_pts(12, 1001, vfr=True)
    assert _packets(out, "audio") == _packets(vfr_clip, "audio")
    # The last frame shows as long as in the source (33 ms), not the average period (53 ms).
    assert video.probe(out).duration == video.probe(vfr_clip).duration
    # The default quality keeps the input's luma (issue 5: within +-1 on 99.9%);
    # crf 18 gives 99.6% here.
    error = np.abs(_luma(out).astype(int) - _luma(vfr_clip))
    assert np.mean(error <= 1) >= 0.999


def test_full_range_flag_is_kept_and_ffv1_keeps_luma_exactly(colorizer, tmp_path):
    """A full-range video flagged as such (no yuvj format), out through FFV1, the lossless archive codec."""
    source = media.make_video(tmp_path / "full.mkv", codec="ffv1", color_range=video.FULL_RANGE, frames=6)
    assert video.probe(source).full_range
    out = tmp_path / "out.mkv"
    apply.colorize_video(colorizer.reconfigured(codec="ffv1", preset=None), source, out, progress=False)
    info = video.probe(out)
    assert (info.codec, info.full_range, info.frame_count) == ("ffv1", True, 6)
    np.testing.assert_array_equal(_luma(out), _luma(source))
    assert _packets(out, "audio") == _packets(source, "audio")


def test_mjpeg_gets_the_limited_range_picture_in_full_range_codes(colorizer, clip, tmp_path):
    """MJPEG codes full range only (FFmpeg refused the limited-range clip):
    its luma is re-coded 16-235 -> 0-255 and its chroma made at full range's scale."""
    vivid = colorizer.reconfigured(saturation=4.0)  # the fresh model's colors are faint
    out, colored = tmp_path / "out.avi", tmp_path / "lossless.mp4"
    with pytest.warns(video.VideoWarning, match="full range only"):
        apply.colorize_video(vivid.reconfigured(codec="mjpeg", preset=None), clip, out, progress=False)
    apply.colorize_video(vivid.reconfigured(crf=0), clip, colored, progress=False)
    info = video.probe(out)
    assert (info.codec, info.full_range, info.frame_count) == ("mjpeg", True, 12)
    expanded = np.clip(np.round((_luma(clip).astype(float) - 16) * 255 / 219), 0, 255)
    assert np.abs(_luma(out) - expanded).mean() < 1.5  # JPEG at quantizer 2
    # The same colors as the limited-range (lossless) output's: each chroma
    # code 255/224 as far from neutral.
    full, limited = _chroma(out).astype(float) - 128, _chroma(colored).astype(float) - 128
    assert np.abs(limited).mean() > 2
    assert (full * limited).sum() / (limited * limited).sum() == pytest.approx(255 / 224, abs=0.04)


def test_deeper_luma_is_written_8_bit_and_says_so(colorizer, tmp_path):
    source = media.make_video(tmp_path / "ten.mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=3, audio=False,
                              colorless=range(3))
    out = tmp_path / "out.mkv"
    with pytest.warns(video.VideoWarning, match="has 10-bit luma; .*out.mkv is 8-bit"):
        apply.colorize_video(colorizer.reconfigured(crf=0), source, out, progress=False)
    assert video.probe(out).luma_bits == 8 and video.probe(out).frame_count == 3
    ten = np.stack([f.image for f in video.read_frames(source, format="luma10")]).astype(int)
    eight = np.stack([f.image for f in video.read_frames(out, format="luma")]).astype(int)
    assert np.abs(eight - (ten + 2) // 4).max() <= 1  # the same picture, its codes rounded to 8 bits (lossless crf 0)



def test_the_hint_to_keep_ten_bits_names_a_format_the_encoder_takes(colorizer, tmp_path):
    # MPEG-4 Part 2 has no 10-bit format: `--pix-fmt yuv420p10le` would fail with it.
    source = media.make_video(tmp_path / "ten.mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=3, audio=False,
                              colorless=range(3))
    said = {}
    for codec, out in (("libx264", "h264.mp4"), ("mpeg4", "mpeg4.mp4")):
        with pytest.warns(video.VideoWarning, match="has 10-bit luma") as caught:
            apply.colorize_video(colorizer.reconfigured(codec=codec, preset=None), source, tmp_path / out,
                                 progress=False)
        said[codec] = next(str(w.message) for w in caught if "10-bit luma" in str(w.message))
    assert said["libx264"].endswith("rounded to 8 bits (--pix-fmt yuv420p10le keeps 10)")
    assert said["mpeg4"].endswith("rounded to 8 bits (mpeg4 has no 10-bit format)")


def test_a_source_that_has_color_already_is_said_to(colorizer, tmp_path):
    # Only its luma is kept: a user who gave the original, not its gray copy, loses its colors.
    color = media.make_video(tmp_path / "color.mp4", frames=6, audio=False)
    with pytest.warns(video.VideoWarning, match="color.mp4 is in color already: its colors are replaced"):
        apply.colorize_video(colorizer, color, tmp_path / "a.mp4", progress=False)
    photo = media.make_images(tmp_path / "photos", 1, size=(64, 48))[0]
    with pytest.warns(video.VideoWarning, match="in color already"):
        apply.colorize_image(colorizer, photo, tmp_path / "a.png")
    gray = media.make_video(tmp_path / "gray.mp4", frames=6, audio=False, colorless=range(6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", video.VideoWarning)
        apply.colorize_video(colorizer, gray, tmp_path / "b.mp4", progress=False)


def test_ten_bit_output_keeps_a_ten_bit_luma(colorizer, tmp_path):
    source = media.make_video(tmp_path / "ten.mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=3, audio=False,
                              colorless=range(3))
    out = tmp_path / "out.mkv"
    with warnings.catch_warnings():
        warnings.simplefilter("error", video.VideoWarning)  # nothing is rounded, so nothing to say
        apply.colorize_video(colorizer.reconfigured(codec="ffv1", pix_fmt="yuv420p10le", preset=None), source, out,
                             progress=False)
    assert (video.probe(out).pix_fmt, video.probe(out).luma_bits) == ("yuv420p10le", 10)
    luma = np.stack([f.image for f in video.read_frames(out, format="luma10")])
    np.testing.assert_array_equal(luma, np.stack([f.image for f in video.read_frames(source, format="luma10")]))
    assert luma.dtype == np.uint16 and np.any(luma % 4)  # 10-bit codes, not 8-bit ones shifted
    chroma = _chroma(out, np.uint16)
    assert chroma.min() >= 64 and chroma.max() <= 960 and np.abs(chroma.astype(int) - 512).max() > 8


def test_an_editing_codec_gets_a_format_it_takes(colorizer, tmp_path):
    """ProRes takes 10-bit 4:2:2 and 4:4:4 only: `--codec prores_ks` alone was
    refused, and no --pix-fmt framecolor took would do. Its chroma is 4:2:2."""
    source = media.make_video(tmp_path / "film.mp4", frames=6, colorless=range(6))
    prores = colorizer.reconfigured(codec="prores_ks", preset=None)
    assert prores.config.output_pix_fmt == "yuv422p10le"
    out = tmp_path / "film.mov"
    apply.colorize_video(prores, source, out, progress=False)
    info = video.probe(out)
    assert (info.codec, info.pix_fmt, info.frame_count, info.luma_bits) == ("prores", "yuv422p10le", 6, 10)
    luma = np.stack([f.image for f in video.read_frames(out, format="luma")]).astype(int)
    assert np.mean(np.abs(luma - _luma(source)) <= 1) > 0.99  # ProRes is lossy, but barely
    chroma = _chroma(out, np.uint16)
    assert chroma.shape == (6, 2, 48, 32) and np.abs(chroma.astype(int) - 512).max() > 8
    assert _packets(out, "audio") == _packets(source, "audio")
    with pytest.raises(OutputError, match=r"prores_ks cannot encode yuv420p \(it can: yuv422p10le"):
        colorizer.reconfigured(codec="prores_ks", pix_fmt="yuv420p")


def test_odd_size_keeps_size(colorizer, odd_clip, tmp_path):
    out = tmp_path / "odd.mp4"
    with pytest.warns(video.VideoWarning, match="yuv444p"):  # 4:2:0 cannot hold an odd size
        apply.colorize_video(colorizer.reconfigured(crf=0), odd_clip, out, progress=False)
    info = video.probe(out)
    assert (info.width, info.height, info.frame_count, info.pix_fmt) == (175, 143, 4, "yuv444p")
    np.testing.assert_array_equal(_luma(out), _luma(odd_clip))


def _chroma(path, dtype=np.uint8):
    """(frames, 2, h, w): each frame's Cb and Cr planes."""
    with av.open(str(path)) as c:
        return np.stack([np.stack([video.pixels._plane(f, 1, dtype), video.pixels._plane(f, 2, dtype)]) for f in c.decode(video=0)])


def test_a_video_stored_sideways_is_colored_upright_and_still_plays_turned(colorizer, tmp_path):
    """Phones store a portrait video sideways, with a display matrix that players turn it by.

    The network must see the picture the way up it plays (it learned skies
    above streets), and players must still turn the output: the sideways
    clip gets the upright clip's colors, turned, and keeps its matrix.
    """
    shape = dict(width=48, height=64, frames=BATCH + 2, audio=False, crf=0)
    upright = media.make_video(tmp_path / "upright.mp4", **shape)
    sideways = media.make_video(tmp_path / "sideways.mp4", rotation=90, **shape)
    assert (video.probe(sideways).rotation, video.probe(upright).display_matrix) == (90, None)
    np.testing.assert_array_equal(np.rot90(_luma(sideways), 1, axes=(1, 2)), _luma(upright))  # the same pictures
    lossless = colorizer.reconfigured(crf=0)
    for clip in (upright, sideways):
        apply.colorize_video(lossless, clip, tmp_path / f"{clip.stem}_out.mp4", progress=False)
    out = tmp_path / "sideways_out.mp4"
    assert video.probe(out).display_matrix == video.probe(sideways).display_matrix
    expected = _chroma(tmp_path / "upright_out.mp4").astype(int)
    assert expected.std() > 1  # colored, not flat: the comparison below can fail
    turned = np.rot90(_chroma(out), 1, axes=(2, 3)).astype(int)
    assert np.abs(turned - expected).max() <= 1


def test_a_strip_far_wider_than_film_is_rendered_on_a_shorter_short_side():
    # 16:9 and 2.76:1 keep the render size as their short side.
    assert apply.render_shape(1280, 720, 224) == (224, 400)
    assert apply.render_shape(2760, 1000, 224)[0] == 224
    cap = 224 * 224 * apply.MAX_RENDER_ASPECT
    for width, height in ((1280, 32), (32, 1280), (1000, 100)):
        h, w = apply.render_shape(width, height, 224)
        # the area of a MAX_RENDER_ASPECT frame, unless the backbone's
        # smallest input holds the short side (a 1280x32 strip was 224x8960)
        assert h * w <= cap * 1.05 or min(h, w) == 80  # 1.05: sides rounded to 8
        assert h * w < 224 * 8960 / 7
        assert min(h, w) >= apply.MIN_RENDER_SIZE
        assert max(h, w) / min(h, w) == pytest.approx(max(width, height) / min(width, height), rel=0.05)
        assert (h > w) == (height > width)
    # A strip past MAX_KEPT_ASPECT (a 30000x20 scan once filled 24 GB) is squeezed along its length.
    for width, height in ((30000, 20), (20, 30000)):
        h, w = apply.render_shape(width, height, 224)
        assert (min(h, w), max(h, w)) == (80, 80 * apply.MAX_KEPT_ASPECT) and (h > w) == (height > width)



def test_a_render_size_is_never_rounded_below_the_backbones_smallest():
    # --render-size 75 was rounded to 72: every input failed once the model was loaded.
    assert apply.render_shape(64, 48, 75) == (80, 104)
    assert apply.render_shape(360, 640, 75) == (144, 80)
    for render_size in range(apply.MIN_RENDER_SIZE, 100):
        for width, height in ((64, 48), (640, 360), (1280, 32)):
            for step in (8, apply.IMAGE_RENDER_STEP):
                assert min(apply.render_shape(width, height, render_size, step)) >= apply.MIN_RENDER_SIZE


@pytest.mark.parametrize("top_first", [True, False])
def test_interlaced_video_keeps_its_fields_and_their_order(colorizer, tmp_path, top_first):
    # Old TV, DV and DVD are interlaced. Written progressive, a moving edge
    # combs and players never deinterlace it; in the wrong order, motion
    # judders once they do.
    source = media.make_interlaced_video(tmp_path / "tv.mpg", top_first=top_first)
    mark = "T" if top_first else "B"
    assert media.field_dominance(source) == [mark] * 8
    out = tmp_path / "tv.mp4"
    apply.colorize_video(colorizer, source, out, progress=False)
    assert media.field_dominance(out) == [mark] * 8
    assert video.probe(out).field_order == video.probe(source).field_order
    assert np.mean(np.abs(_luma(out).astype(int) - _luma(source)) <= 1) >= 0.999


def test_an_encoder_that_cannot_keep_fields_says_so(colorizer, tmp_path):
    source = media.make_interlaced_video(tmp_path / "tv.mpg", frames=4)
    with pytest.warns(video.VideoWarning, match="cannot code an interlaced picture's fields apart"):
        apply.colorize_video(colorizer.reconfigured(codec="libvpx-vp9", preset=None), source, tmp_path / "tv.webm",
                             progress=False)
    assert set(media.field_dominance(tmp_path / "tv.webm")) == {"P"}


def test_anamorphic_video_keeps_its_pixel_aspect_and_is_rendered_as_shown(colorizer, tmp_path):
    """DVD and DV video stores 720x480 pixels that players widen (or narrow) to 4:3 or 16:9."""
    sar = Fraction(32, 27)  # NTSC 16:9: 64x48 stored shows as 76x48
    clip = media.make_video(tmp_path / "wide.mp4", frames=3, audio=False, sample_aspect_ratio=sar)
    assert video.probe(clip).sample_aspect_ratio == sar
    assert ("pixel aspect", "32:27 (shown 76 x 48)") in video.describe(video.probe(clip))
    out = tmp_path / "out.mp4"
    apply.colorize_video(colorizer, clip, out, progress=False)
    assert video.probe(out).sample_aspect_ratio == sar
    # The network sees the picture as shown: wider than the stored pixels' 4:3.
    y, valid = np.zeros((BATCH, 48, 64), np.uint8), np.ones(BATCH, bool)
    lightness = colorizer.prepare(y, valid, full_range=False, pixel_aspect=float(sar)).lightness
    h, w = lightness.shape[1:]
    assert w / h == pytest.approx(64 * sar / 48, rel=0.05)
    assert colorizer.initial_state(64, 48, pixel_aspect=float(sar)).den.shape == (h, w)


def _static_noisy_clip(path, frames=12, seed=0):
    """media.noisy_stills as a video, nearly lossless."""
    return media.write_pictures(path, media.noisy_stills(frames, seed=seed), "libx264",
                                {"qp": "0", "preset": "ultrafast"})


def test_smoothing_steadies_colors_of_a_static_scene(colorizer, tmp_path):
    # The untrained model's colors jump with the luma noise of each frame.
    clip = _static_noisy_clip(tmp_path / "static.mp4")
    change = {}
    for strength in (0.0, CONFIG.smoothing):  # off, and the default
        out = tmp_path / f"s{strength}.mp4"
        apply.colorize_video(colorizer.reconfigured(smoothing=strength, crf=0), clip, out, progress=False)
        change[strength] = metrics.flicker(f.image for f in video.read_frames(out))
    assert CONFIG.smoothing > 0  # on by default
    assert change[0.0] > 0.1  # the test has teeth: without smoothing the colors do flicker
    assert change[CONFIG.smoothing] < 0.4 * change[0.0]


def test_numbered_photos_are_smoothed_as_a_films_frames(colorizer, tmp_path):
    # A film scanned to frames: steady colors as a video's, each frame's own
    # lightness kept as a photo's, a broken frame failing alone.
    (tmp_path / "scan").mkdir()
    frames = [media.make_photo(tmp_path / "scan" / f"scan_{i:04d}.png", noisy, "rgb24", "rgb24")
              for i, noisy in enumerate(media.noisy_stills(8), 1)]
    (tmp_path / "scan" / "scan_0009.png").write_bytes(b"not a picture")
    frames.append(tmp_path / "scan" / "scan_0009.png")
    change = {}
    for strength in (0.0, CONFIG.smoothing, 0.99):  # off (photo by photo), the default, nearly a constant color
        jobs, _ = batch.plan_jobs([tmp_path / "scan", tmp_path / f"out{strength}"])
        results = batch.colorize_jobs(colorizer.reconfigured(smoothing=strength), jobs, progress=False)
        assert [(r.source, r.status) for r in results] == [(str(f), "done") for f in frames[:8]] + [
            (str(frames[8]), "failed")]
        outputs = [video.read_image(tmp_path / f"out{strength}" / f.name) for f in frames[:8]]
        change[strength] = metrics.flicker(outputs)
        for source, output in zip(frames, outputs):
            l_in = np.asarray(color.rgb_to_lab(video.read_image(source) / 255.0))[..., 0]
            l_out = np.asarray(color.rgb_to_lab(output / 255.0))[..., 0]
            assert np.mean(np.abs(l_out - l_in) < 1.5) > 0.99
    # Each frame keeps its own noisy L, so even one constant color changes a
    # little in 8-bit RGB (the floor, ~0.26); the default takes away nearly
    # all the flicker above that floor.
    floor = change[0.99]
    assert change[0.0] - floor > 0.1  # frame by frame, the colors flicker
    assert change[CONFIG.smoothing] - floor < 0.2 * (change[0.0] - floor)


def test_numbered_photos_of_many_sizes_are_not_a_film(colorizer, tmp_path, monkeypatch):
    # An album scanned photo by photo is numbered too; its photos go one by
    # one, not through the sequence path (where each would fill a batch).
    album = tmp_path / "album"
    album.mkdir()
    for n, size in enumerate([(64, 48), (48, 64), (40, 30)], 1):
        media.make_photo(album / f"scan_{n}.png", media.frame_image(n, *size), "rgb24", "rgb24")
    monkeypatch.setattr(batch, "colorize_photo_sequence", lambda *a, **k: pytest.fail("taken as a film"))
    jobs, _ = batch.plan_jobs([album, tmp_path / "out"])
    assert [r.status for r in batch.colorize_jobs(colorizer, jobs, progress=False)] == ["done"] * 3


def test_numbered_photos_become_one_video_at_the_frame_rate_given(colorizer, tmp_path):
    # `framecolor apply scans/ film.mp4 --fps 25`: a scanned film as a video.
    # Unpadded numbers 8..13: string order would put scan_10 first.
    scans = tmp_path / "scans"
    scans.mkdir()
    stills = [media.gray(still) for still in media.noisy_stills(6)]
    for n, still in enumerate(stills, 8):
        media.make_photo(scans / f"scan_{n}.png", still, "rgb24", "rgb24")

    def film(name, **changes):
        out = tmp_path / f"{name}.mp4"
        done = apply.colorize_file(colorizer.reconfigured(**changes), scans, out, progress=False,
                                   fps=video.frame_rate("25"))
        assert done["frames"] == 6
        return out

    out = film("film")
    info = video.probe(out)
    assert (info.fps, info.frame_count, info.full_range) == (25, 6, True)
    assert [f.time for f in video.read_frames(out, format="luma")] == pytest.approx([i / 25 for i in range(6)])
    # Each photo's gray is its frame's luma, in number order.
    luma = _luma(out).astype(int)
    expected = np.stack([still[..., 0] for still in stills]).astype(int)
    assert np.mean(np.abs(luma - expected) <= 1) >= 0.999
    # Steadied as a video's colors. Lossless, so that only the colors'
    # change is measured: at the default quantizer the codec's own chroma
    # noise on these noisy 64x48 frames is about as large as what smoothing takes away.
    change = {strength: metrics.flicker(f.image for f in video.read_frames(film(f"lossless{strength}", crf=0,
                                                                                 smoothing=strength)))
              for strength in (0.0, CONFIG.smoothing)}
    assert change[CONFIG.smoothing] < 0.5 * change[0.0]



@pytest.mark.parametrize("codec, pix_fmt, suffix, full_range, within", [
    ("ffv1", "yuv420p10le", ".mkv", True, 1),
    # ProRes has no range flag (video range by definition): its codes go limited.
    ("prores_ks", "yuv422p10le", ".mov", False, 2),
])
def test_a_ten_bit_video_made_from_photos_shows_their_gray(colorizer, tmp_path, codec, pix_fmt, suffix, full_range,
                                                           within):
    # Its 10-bit codes are full range, as the 8-bit video's are: flagged
    # limited range, its blacks showed crushed and its whites clipped. So did
    # ProRes's, flagged full range, which FFmpeg's decoder reads as limited.
    scans = tmp_path / "scans"
    scans.mkdir()
    gray = np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (48, 1))  # black to white
    for n in range(1, 4):
        media.make_photo(scans / f"scan_{n}.png", np.dstack([gray] * 3), "rgb24", "rgb24")
    out = tmp_path / f"film{suffix}"
    ten_bit = colorizer.reconfigured(codec=codec, pix_fmt=pix_fmt, preset=None, saturation=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", video.VideoWarning)  # ProRes's re-coded luma, said
        assert apply.colorize_file(ten_bit, scans, out, progress=False)["frames"] == 3
    assert (video.probe(out).luma_bits, video.probe(out).full_range) == (10, full_range)
    shown = np.stack([f.image for f in video.read_frames(out)]).astype(int)
    assert np.abs(shown - gray[None, ..., None]).max() <= within  # the 10-bit codes shown at 8 bits; ProRes is lossy


def test_a_video_made_from_photos_takes_its_soundtrack_from_a_sound_file(colorizer, tmp_path, audio_only):
    scans = tmp_path / "scans"
    scans.mkdir()
    for n in range(1, 5):
        media.make_photo(scans / f"scan_{n}.png", media.gray(media.frame_image(n, 64, 48)), "rgb24", "rgb24")
    out = tmp_path / "film.mp4"
    apply.colorize_file(colorizer, scans, out, progress=False, audio=audio_only)  # 0.5 s of sound, 1/6 s of film
    assert len(_luma(out)) == 4
    # The sound is the file's from its start, and stops with the film: no
    # packet that starts after the last frame's end (4 / 24 s).
    sound = _packets(audio_only, "audio")
    kept = _packets(out, "audio")
    assert kept == sound[: len(kept)] and 0 < len(kept) < len(sound)
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        starts = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.size]
    assert max(starts) <= 4 / 24 and min(starts) <= 0
    # A sound a second or more longer or shorter than the film is said.
    long_sound = media.make_audio(tmp_path / "long.m4a", seconds=2.0)
    with pytest.warns(video.VideoWarning, match=r"long.m4a lasts 2.0 s and the film 0.2 s \(4 photos at 24 fps\): "
                                                 r"the sound is cut at the film's end"):
        apply.colorize_file(colorizer, scans, tmp_path / "cut.mp4", progress=False, audio=long_sound)
    with pytest.warns(video.VideoWarning, match=r"tone.m4a lasts 0.5 s and the film 2.0 s .*: its last 1.5 s are silent"):
        apply.colorize_file(colorizer, scans, tmp_path / "slow.mp4", progress=False, audio=audio_only, fps=2)
    with pytest.raises(InputError, match="scan_1.png has no sound to put under the film"):
        apply.colorize_file(colorizer, scans, tmp_path / "silent.mp4", progress=False, audio=scans / "scan_1.png")
    # A sound file is asked for, not a video (an empty file, a folder).
    (tmp_path / "empty.wav").touch()
    for wrong, said in ((tmp_path / "empty.wav", "not a sound file"), (scans, "is a folder, expected a sound file")):
        with pytest.raises(InputError, match=said):
            apply.colorize_file(colorizer, scans, tmp_path / "silent.mp4", progress=False, audio=wrong)
    assert not (tmp_path / "silent.mp4").exists()


def _told_of_transparency(colorizer, source, output) -> list[str]:
    """What apply says of the transparency of `source` (three frames), colorized into `output`."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        done = apply.colorize_file(colorizer, source, output, progress=False)
    assert done["frames"] == 3
    return [str(w.message) for w in said if "has transparency" in str(w.message)]


_TRANSPARENCY_LOST = ("{} has transparency, which {} does not keep (framecolor writes video without an alpha "
                      "channel): the picture under it is kept")


def test_photos_with_transparency_made_into_a_video_are_said_to_lose_it(colorizer, tmp_path):
    for name, alpha in (("clear", 0), ("opaque", 255)):
        scans = tmp_path / name
        scans.mkdir()
        for n in range(1, 4):
            rgba = np.dstack([media.gray(media.frame_image(n, 32, 24)), np.full((24, 32), 255, np.uint8)])
            rgba[:8, :8, 3] = alpha  # a corner of each scan: see-through, or not
            media.make_photo(scans / f"scan_{n}.png", rgba, "rgba", "rgba")
        told = _told_of_transparency(colorizer, scans, tmp_path / f"{name}.mp4")
        # an alpha channel that hides nothing loses nothing
        assert told == ([_TRANSPARENCY_LOST.format("scan_1.png", tmp_path / "clear.mp4")] if alpha == 0 else [])


def test_a_video_with_transparency_is_said_to_lose_it(colorizer, tmp_path):
    """QuickTime Animation with an alpha channel: the output has none, which is said
    where the alpha hides something, and not where it is opaque everywhere."""
    for name, alpha in (("clear", 0), ("opaque", 255)):
        clip = media.make_video(tmp_path / f"{name}.mov", codec="qtrle", pix_fmt="argb", frames=3,
                                audio=False, corner_alpha=alpha)
        told = _told_of_transparency(colorizer, clip, tmp_path / f"{name}.mp4")
        assert told == ([_TRANSPARENCY_LOST.format("clear.mov", tmp_path / "clear.mp4")] if alpha == 0 else [])


def test_photos_that_are_not_one_film_are_refused_before_any_work(colorizer, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for n, size in enumerate([(64, 48), (64, 48), (48, 64)], 1):
        media.make_photo(scans / f"scan_{n}.png", media.frame_image(n, *size), "rgb24", "rgb24")
    out = tmp_path / "film.mp4"
    with pytest.raises(InputError, match="share one size, but scan_1.png is 64x48 and scan_3.png is 48x64"):
        apply.colorize_file(colorizer, scans, out, progress=False)
    (scans / "scan_3.png").rename(scans / "other_3.png")
    with pytest.raises(InputError, match="other_3.png and scan_1.png are not of one sequence"):
        apply.colorize_file(colorizer, scans, out, progress=False)
    (scans / "other_3.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # damaged: it was said to be of another size
    (scans / "other_3.png").rename(scans / "scan_3.png")
    with pytest.raises(InputError, match=r": scan_3.png cannot be read \(damaged, or not an image\)$"):
        apply.colorize_file(colorizer, scans, out, progress=False)
    (scans / "scan_3.png").unlink()
    media.make_photo(scans / "scan_4.png", media.frame_image(4, 64, 48), "rgb24", "rgb24")
    with pytest.warns(video.VideoWarning, match="skip from 2 to 4"):
        video.photo_film(scans)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans"]  # nothing written
    films = tmp_path / "films"
    films.mkdir()
    media.make_video(films / "a.mp4")
    with pytest.raises(InputError, match="no photos .* to colorize the videos in it one by one, give an output folder"):
        apply.colorize_file(colorizer, films, out, progress=False)


def test_a_frame_rate_is_for_photos_made_into_a_video(clip, tmp_path):
    assert video.frame_rate("29.97") == Fraction(30000, 1001)
    assert video.frame_rate("24") == 24 and video.frame_rate("12.5") == Fraction(25, 2)
    for text in ("abc", "0", "-24"):
        with pytest.raises(InputError, match="frame rate"):
            video.frame_rate(text)
    for option, value, said in (("--fps", "24", "--fps is the frame rate"), ("--audio", clip, "--audio is the sound")):
        result = _run_cli(clip, tmp_path / "out.mp4", option, value)
        assert result.exit_code == 1
        assert f"error: {said} of a video made from a folder of numbered photos" in result.output
        assert not (tmp_path / "out.mp4").exists()


def test_networks_in_flight_at_once_give_the_same_video_in_order(colorizer, clip, tmp_path):
    # 12 frames, batches of 4: with two forwards at once the second batch's
    # may finish first; the video must not change.
    chroma = {}
    for in_flight in (1, 2):
        out = tmp_path / f"{in_flight}.mp4"
        apply.colorize_video(colorizer.reconfigured(crf=0, networks_in_flight=in_flight), clip, out, progress=False)
        chroma[in_flight] = np.stack([f.image for f in video.read_frames(out)])
    batches = chroma[1].reshape(3, BATCH, *chroma[1].shape[1:]).astype(int)
    assert np.abs(batches[1:] - batches[:-1]).max() > 2  # out of order would show
    np.testing.assert_array_equal(chroma[2], chroma[1])


def test_a_cpu_backend_runs_two_forwards_at_once_when_it_has_two_cores(model, monkeypatch):
    assert jax.default_backend() == "cpu"
    for cores, expected in (({0}, 1), ({0, 1}, 2), (set(range(16)), 2)):
        monkeypatch.setattr(inference.os, "sched_getaffinity", lambda pid, cores=cores: cores, raising=False)
        assert apply.Colorizer(model, CONFIG).networks_in_flight == expected
    assert apply.Colorizer(model, dataclasses.replace(CONFIG, networks_in_flight=3)).networks_in_flight == 3


def test_a_forward_failing_in_its_thread_fails_the_run_and_leaves_nothing(colorizer, clip, tmp_path):
    broken = colorizer.reconfigured(networks_in_flight=2)
    calls = []

    def predict(prepared):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return colorizer.predict(prepared)

    broken.predict = predict
    with pytest.raises(RuntimeError, match="out of memory"):
        apply.colorize_video(broken, clip, tmp_path / "out.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_benchmarks_copy_ahead_recombination_writes_what_apply_writes(colorizer, clip, colored, tmp_path,
                                                                          monkeypatch):
    # benchmarks/apply_batches.py swaps in its own recombine thread; it must
    # keep taking what apply hands it, or the GPU run it exists for fails.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import apply_batches

    monkeypatch.setattr(apply, "_recombine", apply_batches._recombine_copying_ahead(apply))
    out = tmp_path / "ahead.mp4"
    apply.colorize_video(colorizer.reconfigured(crf=0), clip, out, progress=False)
    for got, usual in zip(video.read_frames(out), video.read_frames(colored), strict=True):
        np.testing.assert_array_equal(got.image, usual.image)


def test_a_recombination_failing_in_its_thread_fails_the_run_and_leaves_nothing(colorizer, clip, tmp_path):
    # The recombine thread sits between the network and the encoder: its
    # error must reach the caller, not leave the encoder waiting for chroma.
    broken = colorizer.reconfigured()
    calls = []

    def finish(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return colorizer.finish(*args, **kwargs)

    broken.finish = finish
    with pytest.raises(RuntimeError, match="out of memory"):
        apply.colorize_video(broken, clip, tmp_path / "out.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_input_fails_and_leaves_nothing(colorizer, truncated_clip, tmp_path):
    out = tmp_path / "out.mkv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", video.VideoWarning)
        with pytest.raises(InputError, match="truncated"):
            apply.colorize_video(colorizer, truncated_clip, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_up_is_one_error_and_leaves_nothing(colorizer, clip, tmp_path, monkeypatch):
    # The disk fills up three frames in (a real full disk would take a
    # mount this test cannot make): the run stops with "cannot write", and
    # neither the partial video nor a photo's is left behind.
    encode = video.VideoWriter._encode

    def encode_until_full(writer, frame, *args):
        if writer.frames_written == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(writer.path))
        encode(writer, frame, *args)

    monkeypatch.setattr(video.VideoWriter, "_encode", encode_until_full)
    with pytest.raises(OutputError, match="cannot write .*out.mp4: No space left on device"):
        apply.colorize_video(colorizer, clip, tmp_path / "out.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []

    photo = media.make_images(tmp_path / "in", 1, size=(64, 48))[0]
    real_open = av.open

    def open_full(path, mode="r", **kwargs):
        container = real_open(path, mode, **kwargs)
        if mode == "w":
            container.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return container

    monkeypatch.setattr(av, "open", open_full)
    with pytest.raises(OutputError, match="cannot write .*out.png: No space left on device"):
        apply.colorize_image(colorizer, photo, tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_existing_output_is_refused(colorizer, clip, colored):
    with pytest.raises(OutputError, match="already exists"):
        apply.colorize_video(colorizer, clip, colored, progress=False)
    with pytest.raises(OutputError, match="same file"):
        apply.colorize_video(colorizer, clip, clip, overwrite=True, progress=False)


@pytest.mark.parametrize(("full_range", "out_full_range"), [(False, False), (True, True), (False, True)],
                         ids=["limited", "full", "limited-to-full"])
def test_recombination_writes_the_chroma_of_the_predicted_lab(full_range, out_full_range):
    # Full-res L from the Y codes + predicted ab -> Cb/Cr codes, as skimage and
    # BT.601 say, at the scale of the output's range (ITU-T H.273).
    from skimage.color import lab2rgb

    y = np.array([[[60, 120], [180, 235]]] * 2, np.uint8)  # (T=2, 2, 2) luma codes
    ab = np.broadcast_to(np.array([30.0, -20.0]), (2, 2, 2, 2))
    track = _track(np.zeros((2, 2, 2)), ab)
    _, (u, v) = inference._finish(smoothing.initial_state(2, 2), track, track._replace(valid=jnp.zeros(2, bool)),
                                  jnp.asarray(y), 0.0, 1.0, full_range=full_range, matrix="bt601", chroma_hw=(2, 2),
                                  out_full_range=out_full_range)
    gray = y / 255 if full_range else (y.astype(float) - 16) / 219
    lightness = np.asarray(color.gray_to_lightness(gray))
    rgb = lab2rgb(np.concatenate([lightness[..., None], ab], -1))
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    span = 255 if out_full_range else 224
    cb = 128 + span * (rgb[..., 2] - luma) / 1.772
    cr = 128 + span * (rgb[..., 0] - luma) / 1.402
    np.testing.assert_allclose(np.asarray(u), cb, atol=1.01)
    np.testing.assert_allclose(np.asarray(v), cr, atol=1.01)
    assert (np.asarray(v) > 128).all() and (np.asarray(u) > 128).all()  # a > 0: red; b < 0: blue


# ---------------------------------------------------------------------------
# Images


def test_image_keeps_size_and_lightness(colorizer, tmp_path):
    src = media.make_images(tmp_path / "in", 1, size=(64, 48))[0]
    out = tmp_path / "out.png"
    apply.colorize_image(colorizer, src, out)
    rgb_in, rgb_out = video.read_image(src), video.read_image(out)
    assert rgb_out.shape == rgb_in.shape
    l_in = np.asarray(color.rgb_to_lab(rgb_in / 255.0))[..., 0]
    l_out = np.asarray(color.rgb_to_lab(rgb_out / 255.0))[..., 0]
    assert np.mean(np.abs(l_out - l_in) < 1.5) > 0.99
    np.testing.assert_array_equal(rgb_out, colorizer.colorize_rgb(rgb_in))  # the model's colors, not the input's
    assert np.abs(rgb_out.astype(int) - rgb_in).mean() > 1


def test_a_photo_never_writes_over_an_output_another_run_finished_meanwhile(colorizer, tmp_path, monkeypatch):
    # Without --overwrite, as a video's: the file that appeared while the photo was colorized stays.
    src = media.make_images(tmp_path / "in", 1, size=(64, 48))[0]
    out = tmp_path / "out.png"
    read_photo = video.read_photo

    def read_then_another_run_writes(path):
        out.write_bytes(b"theirs")
        return read_photo(path)

    monkeypatch.setattr(video, "read_photo", read_then_another_run_writes)
    with pytest.raises(OutputError, match="output already exists: .*out.png"):
        apply.colorize_image(colorizer, src, out)
    assert out.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.png"]


def test_a_16_bit_scan_keeps_its_depth_and_a_transparent_photo_its_alpha(colorizer, tmp_path):
    # Scans of old photos often have 16 bits a channel: the kept lightness
    # must not be rounded to 8 (0.2 L units apart), nor transparency dropped.
    ramp = np.linspace(3000, 60000, 48 * 64).reshape(48, 64).astype(np.uint16)
    scan = media.make_photo(tmp_path / "scan.png", np.dstack([ramp] * 3), "rgb48le", "rgb48be")
    # Without color nothing is clipped to the RGB gamut, so L must come back whole.
    apply.colorize_image(colorizer.reconfigured(saturation=0.0), scan, tmp_path / "scan_color.png")
    out = video.read_photo(tmp_path / "scan_color.png").rgb
    assert out.dtype == np.uint16 and out.shape == (48, 64, 3)
    l_in = np.asarray(color.rgb_to_lab(np.dstack([ramp] * 3) / 65535.0))[..., 0]
    l_out = np.asarray(color.rgb_to_lab(out / 65535.0))[..., 0]
    assert np.abs(l_out - l_in).max() < 0.02

    rgb = media.frame_image(1, 64, 48)
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    cutout = media.make_photo(tmp_path / "cutout.png", np.dstack([rgb, alpha]), "rgba", "rgba")
    apply.colorize_image(colorizer, cutout, tmp_path / "cutout_color.png")
    photo = video.read_photo(tmp_path / "cutout_color.png")
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal(photo.rgb, colorizer.colorize_rgb(rgb))


def test_photos_of_about_one_aspect_share_the_networks_compile(colorizer):
    # A folder of photos comes in many sizes; only a new render shape may
    # compile the network again, not each new size.
    rng = np.random.default_rng(0)
    compiles = []
    for height, width in ((60, 80), (60, 70), (58, 79), (60, 160)):  # three of about 4:3, then 2:1
        out = colorizer.colorize_rgb(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        assert out.shape == (height, width, 3)
        compiles.append(inference._predict_ab._cache_size())
    assert compiles[1] == compiles[2] == compiles[0]
    assert compiles[3] == compiles[0] + 1


def test_canvas_sides_round_up_to_a_few_sizes_per_octave():
    sides = [apply.canvas_side(n) for n in range(1, 2049)]
    assert all(n <= side for n, side in zip(range(1, 2049), sides))
    assert all(side <= 1.25 * n for n, side in zip(range(64, 2049), sides[63:]))  # at most a quarter more
    assert len(set(sides[256:512])) == 4  # 257..512: 320, 384, 448, 512
    assert apply.canvas_side(333) == apply.canvas_side(375) == 384  # the corpus's commonest short sides


def test_photo_steps_on_a_canvas_match_the_photo_alone():
    # Photos of nearby sizes share one canvas, and so one compile of the
    # full-size steps; the margin must not leak into what the network sees
    # or into the colors.
    rng = np.random.default_rng(1)
    render_hw = (24, 32)
    ab = jnp.asarray(rng.normal(0, 30, (*render_hw, 2)), jnp.float32)
    compiled = inference._image_rgb._cache_size()
    for height, width in ((45, 61), (41, 50)):  # both on a 48 x 64 canvas
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        canvas = np.zeros((apply.canvas_side(height), apply.canvas_side(width), 3), np.uint8)
        canvas[:height, :width] = rgb
        size = jnp.asarray([height, width], jnp.float32)
        lightness, small = inference._image_lightness(canvas, size, render_hw=render_hw)
        out = np.asarray(inference._image_rgb(lightness, ab, size, jnp.float32(1.0)))[:height, :width]

        alone = color.rgb_to_lab(rgb / 255.0)[..., 0]
        np.testing.assert_allclose(small, jax.image.resize(alone, render_hw, "linear", antialias=True), atol=1e-3)
        ab_alone = jax.image.resize(ab, (height, width, 2), "linear")
        expected = np.round(np.asarray(color.lab_to_rgb(jnp.concatenate([alone[..., None], ab_alone], -1))) * 255)
        assert np.abs(out.astype(int) - expected).max() <= 1
    assert inference._image_rgb._cache_size() == compiled + 1


def test_the_model_files_saturation_is_the_default_and_an_option_overrides_it(model, colorizer, tmp_path):
    rgb = video.read_image(media.make_images(tmp_path / "in", 1, size=(64, 48))[0])
    chroma = lambda out: float(np.abs(np.asarray(color.rgb_to_lab(out / 255.0))[..., 1:]).mean())
    colorless = dataclasses.replace(model, header={**model.header, "readout": {"saturation": 0.0}})
    by_file = apply.Colorizer(colorless, colorizer.config)
    assert by_file.saturation == 0.0 and colorizer.saturation == 1.0  # no readout in the file: 1.0
    assert chroma(by_file.colorize_rgb(rgb)) < 0.5 < chroma(colorizer.colorize_rgb(rgb))
    assert by_file.reconfigured(saturation=1.0).saturation == 1.0


def test_the_shipped_default_colorizes_the_readme_sample():
    """The README's promise: no --model, the shipped file, the shipped gray sample -> color."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "examples" / "asl_milk_bw.mp4"
    colorizer = apply.Colorizer(apply.load(None), apply.ApplyConfig(render_size=96))
    assert colorizer.saturation > 1.0  # the file carries its calibrated chroma gain
    gray = next(iter(video.read_frames(sample, short_side=120))).image
    out = colorizer.colorize_rgb(gray)
    lab_in, lab_out = (np.asarray(color.rgb_to_lab(x / 255.0)) for x in (gray, out))
    assert np.abs(lab_in[..., 1:]).mean() < 0.1  # the sample really is gray
    assert np.abs(lab_out[..., 1:]).mean() > 3.0  # color was added (a saturation of 0 would fail here)
    assert np.mean(np.abs(lab_out[..., 0] - lab_in[..., 0]) < 1.5) > 0.99


# ---------------------------------------------------------------------------
# Smoothing on its own


# One shape for all of them: (T, h, w) = (6, 3, 4), so `_smooth` compiles once.
_smooth = jax.jit(smoothing.smooth)
T, H, W = 6, 3, 4


def _track(lightness, ab, valid=True):
    lightness = jnp.asarray(lightness, jnp.float32)
    return smoothing.Track(jnp.asarray(ab, jnp.float32), lightness, smoothing.histograms(lightness),
                           jnp.full(lightness.shape[0], valid))


def _smooth_all(lightness, ab, strength):
    """Smooth 2T frames as the pipeline does: two blocks, the last with an empty look-ahead."""
    first, second = _track(lightness[:T], ab[:T]), _track(lightness[T:], ab[T:])
    state = smoothing.initial_state(H, W)
    state, out1 = _smooth(state, first, second, strength)
    _, out2 = _smooth(state, second, second._replace(valid=jnp.zeros(T, bool)), strength)
    return np.concatenate([out1, out2])


def test_smoothing_is_a_two_sided_exponential_mean_that_stops_at_cuts():
    rng = np.random.default_rng(0)
    s, cut = 0.7, 9
    lightness = np.full((2 * T, H, W), 30.0)
    lightness[cut:] = 80.0  # a new shot: the histogram moves wholesale
    ab = rng.normal(0, 10, (2 * T, H, W, 2))
    got = _smooth_all(lightness, ab, s)
    for t in range(2 * T):
        shot = range(0, cut) if t < cut else range(cut, 2 * T)
        weights = np.array([s ** abs(k - t) for k in shot])
        np.testing.assert_allclose(got[t], np.tensordot(weights, ab[list(shot)], 1) / weights.sum(), atol=1e-4)
    assert got.std() < 0.6 * ab.std()


def test_smoothing_does_not_drag_color_across_motion():
    lightness = np.full((2 * T, H, W), 40.0)
    lightness[4:, 0, 0] = 90.0  # pixel (0, 0): something bright moves in at frame 4
    ab = np.zeros((2 * T, H, W, 2))
    ab[4:, 0, 0] = 50.0
    got = _smooth_all(lightness, ab, 0.9)
    np.testing.assert_allclose(got[:, 0, 0, 0], [0] * 4 + [50] * 8, atol=0.5)
    np.testing.assert_allclose(got[:, 1:], 0, atol=1e-6)


def test_strength_zero_is_identity():
    ab = np.random.default_rng(1).normal(0, 10, (2 * T, H, W, 2))
    np.testing.assert_allclose(_smooth_all(np.full((2 * T, H, W), 50.0), ab, 0.0), ab, atol=1e-5)


# ---------------------------------------------------------------------------
# Planning and the command line


def test_every_video_type_a_batch_takes_gets_an_output_type_that_holds_h264(tmp_path):
    outputs = {batch._output_name(tmp_path / f"clip{suffix}").rpartition(".")[2] for suffix in video.VIDEO_SUFFIXES}
    for suffix in sorted(outputs):
        with video.VideoWriter(tmp_path / f"clip.{suffix}", width=64, height=48, fps=25,
                               time_base=Fraction(1, 25)) as writer:
            assert writer.codec == "libx264", suffix
            writer.write_yuv(np.full((48, 64), 128, np.uint8), *np.full((2, 24, 32), 128, np.uint8), 0)
        assert video.probe(tmp_path / f"clip.{suffix}").codec == "h264", suffix


def test_plan_jobs(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.png"
    a.touch(), b.touch()
    (tmp_path / "notes.txt").touch()
    assert batch.plan_jobs([a, tmp_path / "o.mp4"]) == ([batch.Job(a, tmp_path / "o.mp4")], False)
    out = tmp_path / "out"
    assert batch.plan_jobs([a, b], out) == ([batch.Job(a, out / "a.mp4"), batch.Job(b, out / "b.png")], True)
    assert batch.plan_jobs([tmp_path, out]) == ([batch.Job(a, out / "a.mp4"), batch.Job(b, out / "b.png")], True)
    webm, gif = tmp_path / "c.webm", tmp_path / "d.gif"
    webm.touch(), gif.touch()
    assert batch.plan_jobs([webm, gif], out)[0] == [batch.Job(webm, out / "c.mkv"), batch.Job(gif, out / "d.mp4")]
    with pytest.raises(OutputError, match="output folder is the input folder"):
        batch.plan_jobs([tmp_path, tmp_path])
    webm.unlink(), gif.unlink()
    with pytest.raises(InputError, match="no output"):
        batch.plan_jobs([a])
    with pytest.raises(InputError, match="--out-dir"):
        batch.plan_jobs([a, b, a])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.mp4").touch()
    with pytest.raises(OutputError, match="same output"):
        batch.plan_jobs([a, tmp_path / "x" / "a.mp4"], out)
    # Every input is there before any work, and no output is its own input.
    with pytest.raises(InputError, match=r"^no such file: .*o.mp4 \(with --out-dir, every path given is an input\)$"):
        batch.plan_jobs([a, tmp_path / "o.mp4"], out)
    with pytest.raises(InputError, match=r"^no such file: .*gone.mp4$"):
        batch.plan_jobs([tmp_path / "gone.mp4", tmp_path / "o.mp4"])
    with pytest.raises(OutputError, match="is the same file as input .*a.mp4; pick another output folder"):
        batch.plan_jobs([a], tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in (10, 2, 1):
        (frames / f"frame_{n}.png").touch()
    assert [job.source.name for job in batch.plan_jobs([frames, out])[0]] == ["frame_1.png", "frame_2.png",
                                                                              "frame_10.png"]
    with pytest.raises(OutputError, match="still.png: .* into a folder; give a folder name, not a file name"):
        batch.plan_jobs([tmp_path, tmp_path / "still.png"])  # would make a folder called still.png
    assert not (tmp_path / "still.png").exists()
    # A mistyped video name would make a folder of that name; --out-dir says a folder is meant.
    with pytest.raises(OutputError, match=r"film.mp44: .mp44 is not a video type; .* --out-dir"):
        batch.plan_jobs([frames, tmp_path / "film.mp44"])
    assert not (tmp_path / "film.mp44").exists()
    assert batch.plan_jobs([frames], tmp_path / "film.mp44")[0][0].output == tmp_path / "film.mp44" / "frame_1.png"
    assert batch.plan_jobs([frames, tmp_path / "takes.2"])[0][0].output == tmp_path / "takes.2" / "frame_1.png"
    # A folder and a video file name: its numbered photos made into that video.
    assert batch.plan_jobs([frames, tmp_path / "film.mp4"]) == ([batch.Job(frames, tmp_path / "film.mp4")], False)
    (tmp_path / "film.mp4").touch()  # made before: --overwrite replaces it, so it is still that job
    assert batch.plan_jobs([frames, tmp_path / "film.mp4"]) == ([batch.Job(frames, tmp_path / "film.mp4")], False)
    (tmp_path / "film.mp4").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no videos or images"):
        batch.plan_jobs([empty, out])


def test_plan_jobs_leaves_out_the_output_folder_and_makes_a_slashed_one(tmp_path):
    # `apply DIR/* --out-dir DIR/colored` run again: the shell's DIR/* now
    # names DIR/colored, which was refused as "the output folder is the input folder".
    a, b = tmp_path / "a.mp4", tmp_path / "b.png"
    a.touch(), b.touch()
    colored = tmp_path / "colored"
    colored.mkdir()
    (colored / "a.mp4").touch()
    with pytest.warns(video.VideoWarning, match=f"^{re.escape(str(colored))} is the output folder: left out"):
        jobs, _ = batch.plan_jobs([a, b, colored], colored)
    assert jobs == [batch.Job(a, colored / "a.mp4"), batch.Job(b, colored / "b.png")]
    # `apply photo.png new/`: a folder not made yet, as its slash says, not an image named "new".
    assert batch.plan_jobs([str(b), f"{tmp_path / 'new'}/"]) == ([batch.Job(b, tmp_path / "new" / "b.png")], True)
    assert not (tmp_path / "new").exists()


def test_an_animated_png_is_a_video_in_a_batch_and_one_of_one_frame_a_photo(tmp_path):
    # An APNG of several frames became a still of its first, without a word.
    from PIL import Image

    pictures = [Image.fromarray(media.frame_image(i, 32, 24)) for i in range(3)]
    folder = tmp_path / "in"
    folder.mkdir()
    pictures[0].save(folder / "moving.png", save_all=True, append_images=pictures[1:], duration=100)
    pictures[0].save(folder / "still.png", save_all=True, duration=100)
    jobs, _ = batch.plan_jobs([folder], tmp_path / "out")
    assert jobs == [batch.Job(folder / "moving.png", tmp_path / "out" / "moving.mp4"),
                    batch.Job(folder / "still.png", tmp_path / "out" / "still.png")]
    batch.check_output_type(folder / "moving.png", tmp_path / "moving.mp4")


def test_a_batch_reports_in_order_while_photos_overlap(colorizer, clip, tmp_path):
    # Photos run several at a time; the report, the results and the files
    # must still be each job's own, in the order given, with a video between.
    photos = media.make_images(tmp_path / "in", 5, size=(40, 30))
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"not a picture")
    sources = [photos[0], photos[1], broken, clip, photos[2], photos[3], photos[4]]
    jobs = [batch.Job(source, tmp_path / "out" / source.name) for source in sources]
    reported = []
    colorizer = colorizer.reconfigured(smoothing=0.0)  # img_1..img_5 would be a sequence, smoothed as one
    results = batch.colorize_jobs(colorizer, jobs, progress=False, report=reported.append)
    assert [r.source for r in reported] == [r.source for r in results] == [str(s) for s in sources]
    assert [r.status for r in results] == ["done", "done", "failed", "done", "done", "done", "done"]
    assert video.probe(tmp_path / "out" / clip.name).frame_count == 12
    for photo in photos:  # PNG is lossless: exactly what one photo at a time gives
        expected = colorizer.colorize_rgb(video.read_image(photo))
        np.testing.assert_array_equal(video.read_image(tmp_path / "out" / photo.name), expected)
    assert batch.summary(results, 2.5).endswith("(17 frames in 2.5 s)")


def _reported_as_a_ctrl_c_stops(colorizer, jobs, error=KeyboardInterrupt, at=1) -> list:
    """The Results a batch of `jobs` reports, a Ctrl-C (or `error`) coming at its `at`th report."""
    reported = []

    def interrupt_after_the_first(result):
        reported.append(result)
        if len(reported) == at:
            raise error

    with pytest.raises(error):
        batch.colorize_jobs(colorizer, jobs, progress=False, report=interrupt_after_the_first)
    return reported


def test_photos_finished_after_a_ctrl_c_are_reported(colorizer, tmp_path):
    # The photos in flight when it comes are written: unreported, the
    # summary counted fewer files than the folder held.
    photos = media.make_images(tmp_path / "in", 5, size=(40, 30))
    jobs = [batch.Job(photo, tmp_path / "out" / photo.name) for photo in photos]
    reported = _reported_as_a_ctrl_c_stops(colorizer.reconfigured(smoothing=0.0), jobs)
    assert len(reported) > 1 and all(r.status == "done" for r in reported)
    assert sorted(Path(r.output).name for r in reported) == sorted(p.name for p in (tmp_path / "out").iterdir())


def test_frames_of_a_sequence_written_as_a_ctrl_c_came_are_reported(colorizer, tmp_path):
    # Those being written as it came were written, and not counted.
    (tmp_path / "in").mkdir()
    scans = [media.make_photo(tmp_path / "in" / f"scan_{n}.png", media.frame_image(n, 40, 30), "rgb24", "rgb24")
             for n in range(1, BATCH + 1)]
    jobs = [batch.Job(scan, tmp_path / "out" / scan.name) for scan in scans]
    reported = _reported_as_a_ctrl_c_stops(colorizer, jobs)
    assert len(reported) > 1 and all(r.status == "done" for r in reported)
    assert sorted(Path(r.output).name for r in reported) == sorted(p.name for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("at", [1, BATCH])
def test_a_report_that_fails_on_a_sequences_frame_stops_the_batch(colorizer, tmp_path, at):
    # Its error was taken for the sequence's: the frames after it "failed"
    # though written, or (at the last frame) an IndexError's traceback.
    (tmp_path / "in").mkdir()
    scans = [media.make_photo(tmp_path / "in" / f"scan_{n}.png", media.frame_image(n, 40, 30), "rgb24", "rgb24")
             for n in range(1, BATCH + 1)]
    jobs = [batch.Job(scan, tmp_path / "out" / scan.name) for scan in scans]
    reported = _reported_as_a_ctrl_c_stops(colorizer, jobs, RuntimeError, at)
    assert len(reported) >= at and all(r.status == "done" for r in reported)


def test_cli_batch_goes_on_after_a_failure(model_path, clip, vfr_clip, text_mp4, tmp_path):
    out = tmp_path / "out"
    args = [clip, text_mp4, "--out-dir", out, "--model", model_path, "--batch-size", BATCH,
            "--preset", "ultrafast", "--quiet"]
    result = _run_cli(*args)
    assert result.exit_code == 1, result.output
    assert f"failed: {text_mp4}" in result.output
    assert "1 done, 0 skipped, 1 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]
    assert video.probe(out / "clip.mp4").frame_count == 12
    # Again with --skip-existing: the done file is left alone.
    result = _run_cli(*args, "--skip-existing")
    assert "0 done, 1 skipped, 1 failed" in result.output
    # A link to nothing at the output exists to check_output_path: skipped, not refused as existing.
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    result = _run_cli(clip, tmp_path / "gone.mp4", "--skip-existing", "--model", model_path, "--quiet")
    assert result.exit_code == 0 and result.output == f"skipped: {tmp_path / 'gone.mp4'} exists\n", result.output
    # An output folder nothing can be written in fails the batch at once, in one line, not file by file.
    result = _run_cli(clip, vfr_clip, "--out-dir", "/proc/colored", "--model", model_path, "--quiet")
    assert result.exit_code == 1 and result.output == "error: cannot write /proc/colored: No such file or directory\n"


def test_cli_says_what_it_wrote_and_how_large(model_path, clip, vfr_clip, tmp_path):
    # The luma-keeping default writes large files; the size tells a user when --crf is worth it.
    out = tmp_path / "out.mp4"
    result = _run_cli(clip, out, "--model", model_path)
    assert result.exit_code == 0, result.output
    said = re.search(rf"{re.escape(str(out))}: (\d+) frames in [\d.]+ s, ([\d.]+) (kB|MB)$", result.output.strip())
    assert said and int(said[1]) == video.probe(clip).frame_count
    unit = {"kB": 1e3, "MB": 1e6}[said[3]]
    assert abs(float(said[2]) * unit - out.stat().st_size) <= unit / 2  # the file's size, rounded
    # So does each file of a batch.
    result = _run_cli(clip, vfr_clip, "--out-dir", tmp_path / "out", "--model", model_path)
    for source in (clip, vfr_clip):
        written = tmp_path / "out" / source.name
        said = re.search(rf"done: {re.escape(str(source))} -> {re.escape(str(written))}, ([\d.]+) (kB|MB)$",
                         result.output, re.M)
        assert said, result.output
        unit = {"kB": 1e3, "MB": 1e6}[said[2]]
        assert abs(float(said[1]) * unit - written.stat().st_size) <= unit / 2


def test_cli_single_file_errors(model_path, clip, colored, tmp_path):
    result = _run_cli(clip, colored, "--model", model_path)
    assert result.exit_code == 1 and "error: output already exists" in result.output
    bad_model = tmp_path / "bad.fcm"
    bad_model.write_text("not a model")
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", bad_model)
    assert result.exit_code == 1 and "error:" in result.output and "bad.fcm" in result.output
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--smoothing", "1.5")
    assert result.exit_code == 1 and "error: smoothing strength" in result.output
    # Encoder settings it will not take: refused before any frame, in one line.
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--preset", "bogus")
    assert result.exit_code == 1 and result.output.startswith("error: libx264 has no preset 'bogus'")
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--crf", "99")  # x264 would clamp it to 51
    assert result.exit_code == 1 and result.output.startswith("error: libx264 takes crf 0-51, not 99")
    assert "Traceback" not in result.output
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--start", "9", "--quiet")
    assert result.exit_code == 1 and "error:" in result.output and "nothing from 9 s on" in result.output
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--duration", "0", "--quiet")
    assert result.exit_code == 1 and result.output == "error: an excerpt lasts more than 0 s, not 0 s\n"
    for start in ("-5", "-0:05"):
        result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, f"--start={start}", "--quiet")
        assert result.exit_code == 1 and result.output == "error: an excerpt starts at 0 s or later, not at -5 s\n"
    result = _run_cli(clip, tmp_path / "x.mp4", "--model", model_path, "--codec", "aac", "--quiet")
    assert result.exit_code == 1 and result.output.startswith("error: aac encodes audio, not video")
    assert not (tmp_path / "x.mp4").exists()
    result = _run_cli(clip, tmp_path / "x.png", "--model", model_path)  # a still of a video is not a thing apply makes
    assert result.exit_code == 1 and result.output == (f"error: {tmp_path / 'x.png'} is an image file name, and "
                                                       "clip.mp4 a video: it is colorized into a video (.mp4 and .mkv "
                                                       "keep its luma)\n")
    assert not (tmp_path / "x.png").exists()
    photo = media.make_photo(tmp_path / "photo.png", media.gray(media.frame_image(0, 32, 24)), "rgb24", "rgb24")
    for source, unwritable in ((clip, "/proc/x.mp4"), (photo, "/proc/x.png")):  # said before any work
        result = _run_cli(source, unwritable, "--model", model_path)
        assert result.exit_code == 1 and result.output == f"error: cannot write {unwritable}: No such file or directory\n"


def _load_nothing(monkeypatch):
    """Make loading a model fail the test: what is refused must be refused before."""
    monkeypatch.setattr(apply, "load", lambda *args, **kwargs: pytest.fail("the model was loaded"))


def test_cli_refuses_a_batchs_bad_inputs_before_any_work(clip, tmp_path, monkeypatch):
    _load_nothing(monkeypatch)
    # These three were said once the model was loaded.
    scans = tmp_path / "scans"
    scans.mkdir()
    for n, size in enumerate([(32, 24), (32, 24)], 1):
        media.make_photo(scans / f"scan_{n}.png", media.frame_image(n, *size), "rgb24", "rgb24")
    result = _run_cli(clip, scans, "--out-dir", "/proc/colored", "--quiet")
    assert result.exit_code == 1 and result.output == "error: cannot write /proc/colored: No such file or directory\n"
    (tmp_path / "gone").symlink_to(tmp_path / "nonexist" / "deeper")  # its mkdir failed after the model loaded
    result = _run_cli(clip, scans, "--out-dir", tmp_path / "gone", "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: cannot write {tmp_path / 'gone'}: {tmp_path / 'gone'} is a symbolic link to nothing\n"), result.output
    result = _run_cli(scans, tmp_path / "film.mp4", "--audio", tmp_path / "nonexist.wav", "--quiet")
    assert result.exit_code == 1 and result.output == f"error: no such file: {tmp_path / 'nonexist.wav'}\n"
    media.make_photo(scans / "scan_3.png", media.frame_image(3, 40, 30), "rgb24", "rgb24")
    result = _run_cli(scans, tmp_path / "film.mp4", "--quiet")
    assert result.exit_code == 1 and result.output == (f"error: {scans}: a video's frames share one size, but "
                                                       "scan_1.png is 32x24 and scan_3.png is 40x30\n")
    # An output name beside --out-dir is an input: it was colorized into od/
    # after clip.mp4, and then failed as a missing file.
    result = _run_cli(clip, tmp_path / "o.mp4", "--out-dir", tmp_path / "od", "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: no such file: {tmp_path / 'o.mp4'} (with --out-dir, every path given is an input)\n"), result.output
    assert not (tmp_path / "od").exists()
    # An output that would be its input: one error, not a failure in a batch of one and its summary.
    film = tmp_path / "film.mp4"
    film.write_bytes(clip.read_bytes())
    result = _run_cli(film, "--out-dir", tmp_path, "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: output {film} is the same file as input {film}; pick another output folder\n"), result.output
    assert film.read_bytes() == clip.read_bytes()


def test_cli_refuses_an_output_of_the_wrong_type_before_any_work(clip, tmp_path, monkeypatch):
    _load_nothing(monkeypatch)
    photo = media.make_images(tmp_path, 1, size=(64, 48), suffix=".jpg")[0]
    # A photo was colorized (and the model compiled) before its output's type was refused.
    result = _run_cli(photo, tmp_path / "q4.mp4", "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: cannot write {tmp_path / 'q4.mp4'}: unknown image type '.mp4' "
        f"(use {', '.join(sorted(video.WRITTEN_IMAGE_SUFFIXES))})\n"), result.output
    # A video's: after a warning that the clip is in color, said as its colors were looked at.
    for name, why in (("o.txt", "unknown container type '.txt'"), ("o3", "no suffix to name its type")):
        result = _run_cli(clip, tmp_path / name, "--quiet")
        assert result.exit_code == 1 and result.output == (
            f"error: cannot write {tmp_path / name}: {why} (.mp4 and .mkv keep the luma)\n"), result.output
    # A stream's manifest: DASH's header, tried in memory, killed the process (SIGFPE, exit 136).
    for name, muxer in (("o.mpd", "DASH Muxer"), ("o.m3u8", "Apple HTTP Live Streaming")):
        result = _run_cli(clip, tmp_path / name, "--quiet")
        assert result.exit_code == 1 and result.output == (
            f"error: cannot write {tmp_path / name}: a {Path(name).suffix} is not a video file but a stream's "
            f"({muxer}); name the video .mp4 or .mkv\n"), result.output
    # A video into an image's name (FFmpeg's image muxer takes .png): refused after the model loaded.
    result = _run_cli(clip, tmp_path / "o.png", "--quiet")
    assert result.exit_code == 1 and result.output.startswith(
        f"error: {tmp_path / 'o.png'} is an image file name, and {clip.name} a video"), result.output
    # A file where a folder is meant: it was said not to exist.
    result = _run_cli(clip, clip / "o.mp4", "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: cannot write {clip / 'o.mp4'}: {clip} is a file, not a folder\n"), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo.name]


def test_cli_removes_the_output_folder_it_made_where_nothing_was_written(model_path, text_mp4, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.mp4").write_bytes(text_mp4.read_bytes())
    (junk / "y.png").write_text("not a picture")
    made, there = tmp_path / "made" / "out", tmp_path / "there"
    there.mkdir()
    for out in (made, there):
        result = _run_cli(junk, out, "--model", model_path, "--quiet")
        assert result.exit_code == 1 and "0 done, 0 skipped, 2 failed" in result.output, result.output
    assert not (tmp_path / "made").exists()  # its parent made for it too
    assert there.is_dir() and not list(there.iterdir())  # there before: kept


def test_cli_warnings_are_one_line(model_path, odd_clip, tmp_path):
    result = _run_cli(odd_clip, tmp_path / "odd.mp4", "--model", model_path, "--batch-size", BATCH,
                      "--preset", "ultrafast", "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("warning: 175x143 is odd, which yuv420p cannot hold") for line in lines)
    assert all(line.startswith("warning: ") for line in lines[:-1])  # the last: the summary
    assert "VideoWarning" not in result.output and "apply.py" not in result.output  # no source location



def test_cli_says_a_videos_lost_transparency_in_one_line(model_path, tmp_path):
    # Said from a thread pool's thread, it was put on the pool's line, and printed as Python prints warnings.
    source = media.make_video(tmp_path / "clear.mov", codec="qtrle", pix_fmt="argb", frames=3, audio=False,
                              corner_alpha=0)
    result = _run_cli(source, tmp_path / "clear.mp4", "--model", model_path, "--batch-size", BATCH,
                      "--preset", "ultrafast", "--quiet")
    assert result.exit_code == 0, result.output
    assert any(line.startswith("warning: clear.mov has transparency") for line in result.output.splitlines())
    assert "thread.py" not in result.output and "VideoWarning" not in result.output


def test_no_default_model_is_a_clear_error(monkeypatch):
    from framecolor import modelfile

    monkeypatch.setattr(modelfile, "default_model_path", lambda: None)
    with pytest.raises(ModelFileError, match="no default model shipped; pass --model"):
        apply.load(None)


def test_cli_single_image(model_path, tmp_path):
    src = media.make_images(tmp_path, 1, size=(64, 48), suffix=".jpg")[0]
    result = _run_cli(src, tmp_path / "color.jpg", "--model", model_path, "--quiet")
    assert result.exit_code == 0, result.output
    written = video.read_image(tmp_path / "color.jpg").astype(int)
    assert written.shape == (48, 64, 3)
    colorizer = apply.Colorizer(apply.load(model_path), apply.ApplyConfig())
    assert np.abs(written - colorizer.colorize_rgb(video.read_image(src))).mean() < 3  # JPEG's loss only



def test_options_that_would_be_ignored_are_refused(model_path, tmp_path):
    # Both were accepted without a word: a readout temperature for a model
    # that predicts ab itself, and a smoothing strength with smoothing off.
    src = media.make_images(tmp_path, 1, size=(64, 48))[0]
    for extra, said in ((["--temperature", 0.2], "--temperature is for bins-head models: .*tiny.fcm predicts ab"),
                        (["--smoothing", 0.3, "--no-smoothing"], "--smoothing and --no-smoothing contradict")):
        result = _run_cli(src, tmp_path / "color.png", "--model", model_path, *extra)
        assert result.exit_code == 1 and re.search(f"^error: {said}", result.output), result.output
    assert not (tmp_path / "color.png").exists()

@pytest.mark.parametrize("block", [(2, 2), (1, 2)], ids=["4:2:0", "4:2:2"])
def test_subsampled_chroma_matches_the_full_resolution_chroma_averaged(block):
    """4:2:0 and 4:2:2 chroma is computed at their resolution; it must match averaging the full-resolution chroma."""
    rng = np.random.default_rng(0)
    y = jnp.asarray(np.repeat(np.repeat(rng.integers(40, 200, (2, 4, 4)), 2, 1), 2, 2).astype(np.uint8))
    ab = np.broadcast_to(rng.uniform(-40, 40, (2, 1, 1, 2)), (2, 4, 4, 2))  # chroma is smooth
    track = _track(np.zeros((2, 4, 4)), ab)
    kw = dict(full_range=False, matrix="bt601")
    args = (smoothing.initial_state(4, 4), track, track._replace(valid=jnp.zeros(2, bool)), y, 0.0, 1.0)
    rows, cols = block
    _, (u_sub, v_sub) = inference._finish(*args, chroma_hw=(8 // rows, 8 // cols), **kw)
    _, (u_full, v_full) = inference._finish(*args, chroma_hw=(8, 8), **kw)
    assert u_sub.shape == (2, 8 // rows, 8 // cols)
    for sub, full in ((u_sub, u_full), (v_sub, v_full)):
        averaged = np.asarray(full, float).reshape(2, 8 // rows, rows, 8 // cols, cols).mean(axis=(2, 4))
        np.testing.assert_allclose(np.asarray(sub, float), averaged, atol=1.01)



def test_an_excerpt_of_still_images_only_is_refused(model_path, clip, tmp_path):
    # Ignored without a word, while --fps for a video is refused; where
    # videos are among the inputs, it is theirs, and the images are colored whole.
    photo, other = media.make_images(tmp_path, 2, size=(64, 48))
    for inputs, said in (([photo, tmp_path / "color.png"], f"{photo} is a still image"),
                         ([photo, other, "--out-dir", tmp_path / "out"], "every input is a still image")):
        for option in ("--start", "--duration"):
            result = _run_cli(*inputs, "--model", model_path, option, "1", "--quiet")
            assert result.exit_code == 1 and result.output == (
                f"error: --start and --duration pick a part of a video; {said}\n"), result.output
    assert not (tmp_path / "color.png").exists() and not (tmp_path / "out").exists()
    # (--preset too: an encoder setting, like the excerpt, is the videos' where there are any.)
    result = _run_cli(photo, clip, "--out-dir", tmp_path / "mixed", "--model", model_path, "--batch-size", BATCH,
                      "--preset", "ultrafast", "--duration", "0.2", "--quiet")
    assert result.exit_code == 0, result.output
    assert video.probe(tmp_path / "mixed" / "clip.mp4").frame_count == 6 and (tmp_path / "mixed" / photo.name).exists()


def test_encoder_settings_for_still_images_only_are_refused(tmp_path, monkeypatch):
    # Taken without a word, and without effect, as --start was before it was refused.
    _load_nothing(monkeypatch)
    photo, other = media.make_images(tmp_path, 2, size=(64, 48))
    result = _run_cli(photo, tmp_path / "p1.png", "--crf", 30, "--codec", "libx265", "--preset", "slow",
                      "--pix-fmt", "yuv444p", "--quiet")
    assert result.exit_code == 1 and result.output == (
        f"error: --codec, --crf, --preset and --pix-fmt set how a video is encoded; {photo} is a still image\n"
    ), result.output
    result = _run_cli(photo, other, "--out-dir", tmp_path / "out", "--crf", 99, "--quiet")  # said before its range
    assert result.exit_code == 1 and result.output == (
        "error: --crf sets how a video is encoded; every input is a still image\n"), result.output
    assert not (tmp_path / "p1.png").exists() and not (tmp_path / "out").exists()


def test_smoothing_for_still_images_only_is_refused(tmp_path, monkeypatch):
    # Taken without a word, and without effect, as the encoder settings were.
    _load_nothing(monkeypatch)
    photo, other = media.make_images(tmp_path, 2, size=(64, 48))
    for option in (["--smoothing", "0.9"], ["--no-smoothing"]):
        result = _run_cli(photo, tmp_path / "p1.png", *option, "--quiet")
        assert result.exit_code == 1 and result.output == (
            f"error: {option[0]} sets how color is smoothed over a video's frames (or numbered photos'); "
            f"{photo} is a still image\n"), result.output
    # Numbered photos of one size are smoothed as a film's frames: theirs to take.
    (tmp_path / "scans").mkdir()
    scans = [media.make_photo(tmp_path / "scans" / f"scan_{n}.png", media.frame_image(n, 32, 24), "rgb24", "rgb24")
             for n in (1, 2)]
    batch.check_smoothing_options([batch.Job(s, tmp_path / "out" / s.name) for s in scans], ["--smoothing"])
    jobs = [batch.Job(p, tmp_path / "out" / p.name) for p in (photo, scans[0])]
    with pytest.raises(InputError, match="every input is a still image"):
        batch.check_smoothing_options(jobs, ["--no-smoothing"])


def test_a_sign_inside_a_time_is_not_a_time():
    from framecolor.cli.apply import _seconds

    assert (_seconds("-5"), _seconds("-1:30")) == (-5.0, -90.0)  # said as such by the excerpt's check
    for bad in ("1:-30", "--5", "0:+30", "1:30:-5", "1: -30", "1e3", "inf"):
        with pytest.raises(typer.BadParameter, match="is not a time"):
            _seconds(bad)


@pytest.mark.parametrize("field, value, message", [
    ("temperature", 0.0, "temperature"), ("saturation", -1.0, "saturation"), ("smoothing", 1.0, "smoothing"),
    ("networks_in_flight", 0, "networks in flight"), ("render_size", 10**9, r"render size must be in \[75, 2160\]"),
])
def test_out_of_range_settings_are_input_errors(field, value, message):
    with pytest.raises(InputError, match=message):
        apply.ApplyConfig(**{field: value}).validate()
