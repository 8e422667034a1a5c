"""The streams a written video carries over from its source (video/copies.py):
subtitles converted where the output cannot hold them, an excerpt's lines,
track titles, streams left out, a timecode moved with an excerpt, and sound
an AVI cannot place."""

from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from framecolor.video import VideoWarning, VideoWriter, copies, probe, read_frames
from framecolor.video.subtitle_lines import one_at_a_time
from framecolor.video.timecodes import timecode_after
from tests import media

# ---------------------------------------------------------------------------
# helpers


def _write(src, dst, *, start: float | None = None, end: float | None = None) -> list[str]:
    """Write the frames of `src` (from `start` to `end` s: an excerpt) to
    `dst` with its other streams; the warnings said, as text."""
    info = probe(src)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with VideoWriter(dst, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                         copy_streams_from=src, preset="ultrafast", excerpt=start is not None) as writer:
            for frame in read_frames(src, start=start, end=end):
                writer.write_rgb(frame.image, frame.pts)
    return [str(w.message) for w in warned if issubclass(w.category, VideoWarning)]


def _cues(path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each line of the first subtitle stream, to the ms."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        return [(round(float(p.pts * p.time_base), 3), round(float((p.pts + p.duration) * p.time_base), 3),
                 r.ass.decode().split(",", 8)[-1])
                for p in c.demux(stream) if p.size for r in stream.decode(p) if r.ass]


def _add_picture(out, rate: int = 25):
    video = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "bf": "0"})
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    return video


def _encode_pictures(out, video, frames: int) -> None:
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(media.frame_image(i, 64, 48), format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    out.mux(video.encode(None))


def make_mov_text_mp4(path, cues, frames: int = 25):
    """An MP4 at 25 fps whose subtitles are mov_text, (start s, end s, text) `cues`, as phones and iTunes write them."""
    with av.open(str(path), "w") as out:
        video = _add_picture(out)
        text = out.add_stream("mov_text")
        text.codec_context.subtitle_header = media._subtitle_text("ass", []).encode()
        _encode_pictures(out, video, frames)
        for i, (start, end, line) in enumerate(cues):
            milliseconds = round((end - start) * 1000)
            packet = text.codec_context.encode_subtitle(
                av.subtitles.subtitle.SubtitleSet.create(f"{i},0,Default,,0,0,0,,{line}".encode(), 0, milliseconds))
            packet.stream, packet.time_base = text, Fraction(1, 1000)
            packet.pts = packet.dts = round(start * 1000)
            packet.duration = milliseconds
            out.mux(packet)
    return path


def make_late_sound_mp4(path, late: float, frames: int = 25):
    """An MP4 at 25 fps whose sound starts `late` s after its picture (a recorder that starts sound late)."""
    with av.open(str(path), "w") as out:
        video = _add_picture(out)
        sound = out.add_stream("aac", rate=media.AUDIO_RATE, layout="mono")
        _encode_pictures(out, video, frames)
        first = round(late * media.AUDIO_RATE)
        for start in range(0, round(frames / 25 * media.AUDIO_RATE) - first, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = media.AUDIO_RATE, first + start
            frame.time_base = Fraction(1, media.AUDIO_RATE)
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def make_two_angles_mkv(path, tmp_path):
    """An MKV with two video streams, #0 and #2 ("angle 2"), and sound between."""
    first = media.make_video(tmp_path / "angle1.mkv", frames=10, rate=Fraction(25))
    second = media.make_video(tmp_path / "angle2.mkv", frames=10, rate=Fraction(25), audio=False)
    with av.open(str(first)) as a, av.open(str(second)) as b, av.open(str(path), "w") as out:
        streams = {(a, s.index): out.add_stream_from_template(s) for s in a.streams}
        streams[b, 0] = out.add_stream_from_template(b.streams.video[0])
        streams[b, 0].metadata["title"] = "angle 2"
        packets = [p for c in (a, b) for p in c.demux() if p.size]
        for packet in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            packet.stream = streams[packet.stream.container, packet.stream.index]
            out.mux(packet)
    return path


def make_data_track_mp4(path):
    """An MP4 with a data track beside its picture, as GoPro's telemetry."""
    with av.open(str(path), "w") as out:
        video = _add_picture(out)
        data = out.add_data_stream("bin_data")
        for i in range(5):
            packet = av.Packet(b"telemetry")
            packet.stream, packet.time_base, packet.pts, packet.dts = data, Fraction(1, 25), i, i
            out.mux(packet)
        _encode_pictures(out, video, 5)
    return path


# ---------------------------------------------------------------------------
# subtitles


def test_an_mp4s_mov_text_subtitles_become_ass_in_an_mkv(tmp_path):
    # Matroska cannot hold mov_text: the lines were skipped, though a .webm converted them.
    cues = [(0.1, 0.6, "hello"), (0.7, 0.9, "bye")]
    source = make_mov_text_mp4(tmp_path / "film.mp4", cues)
    said = _write(source, tmp_path / "out.mkv")
    assert f"re-encoding subtitle stream #1 (mov_text) of {source} as ass: a .mkv file cannot hold mov_text" in said
    assert [s.codec for s in probe(tmp_path / "out.mkv").subtitles] == ["ass"]
    assert _cues(tmp_path / "out.mkv") == _cues(source) == cues


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
@pytest.mark.parametrize("audio", [True, False])
def test_an_excerpt_keeps_a_line_that_began_before_the_keyframe_it_seeks_to(tmp_path, suffix, audio):
    # Keyframes every 12 frames (0.48 s): the seek for an excerpt from
    # 1.0 s lands on the one at 0.96 s (an MKV: its cluster), after the
    # line that began at 0.1 s and is still on screen; it was lost.
    source = media.make_video(tmp_path / "film.mkv", frames=75, rate=Fraction(25), keyint=12, audio=audio,
                              subtitles="srt", cues=[(0.1, 1.5, "long line"), (1.6, 1.9, "later")])
    out = tmp_path / f"part{suffix}"
    _write(source, out, start=1.0, end=2.0)
    assert _cues(out) == [(0.0, 0.5, "long line"), (0.6, 0.9, "later")]


def test_an_excerpt_far_into_a_film_reads_its_subtitles_from_a_while_before_it(tmp_path, monkeypatch):
    # Not from the film's start, which would read most of it for a part from
    # its end: here from 0.7 s, where the line from 0.1 s began before.
    monkeypatch.setattr(copies, "_SUBTITLE_LOOKBACK_S", 0.3)
    source = media.make_video(tmp_path / "film.mkv", frames=75, rate=Fraction(25), keyint=12, subtitles="srt",
                              cues=[(0.1, 0.2, "long gone"), (0.8, 1.5, "on screen"), (1.6, 1.9, "later")])
    _write(source, tmp_path / "part.mkv", start=1.0, end=2.0)
    assert _cues(tmp_path / "part.mkv") == [(0.0, 0.5, "on screen"), (0.6, 0.9, "later")]


def test_overlapping_lines_are_split_where_they_overlap_for_mov_text(tmp_path):
    # mov_text shows one sample at a time: the line inside the longer one
    # came out after it ended (0.801 to 1.001 s).
    source = media.make_video(tmp_path / "film.mkv", frames=25, rate=Fraction(25), audio=False, subtitles="ass",
                              cues=[(0.1, 0.8, "A long"), (0.3, 0.5, "B short"), (0.9, 0.95, "C")])
    _write(source, tmp_path / "out.mp4")
    assert _cues(tmp_path / "out.mp4") == [(0.1, 0.3, "A long"), (0.3, 0.5, "A long\\NB short"),
                                           (0.5, 0.8, "A long"), (0.9, 0.95, "C")]


def test_lines_one_at_a_time():
    a, b, c = (b"0,0,Default,,0,0,0,,A", b"1,0,Top,,0,0,0,,B", b"2,0,Default,,0,0,0,,C")
    assert one_at_a_time([(10, 20, a)]) == [(10, 20, a)]
    assert one_at_a_time([(10, 80, a), (30, 50, b)]) == [
        (10, 30, a), (30, 50, b"0,0,Default,,0,0,0,,A\\NB"), (50, 80, a)]
    # Two starting together, and one starting as another ends.
    assert one_at_a_time([(0, 20, a), (0, 10, b), (20, 30, c)]) == [
        (0, 10, b"0,0,Default,,0,0,0,,A\\NB"), (10, 20, a), (20, 30, c)]
    # A line of no length inside another: kept, and the other not cut for it (it was dropped, and A cut at 5).
    assert one_at_a_time([(0, 10, a), (5, 5, b)]) == [(0, 10, a), (5, 5, b)]


# ---------------------------------------------------------------------------
# titles and streams left out


def test_an_mp4s_track_titles_are_kept_and_shown(tmp_path):
    # FFmpeg reads an MP4's track title back as `name` and writes only `title`:
    # the titles were lost in an .mp4 or .mov, a NAME tag in an .mkv, None in info.
    source = media.make_video(tmp_path / "film.mp4", audio_tags={"title": "Commentary"})
    assert [s.title for s in probe(source).audio] == ["Commentary"]
    for suffix in (".mp4", ".mov", ".mkv"):
        out = tmp_path / f"out{suffix}"
        _write(source, out)
        assert [s.title for s in probe(out).audio] == ["Commentary"], suffix
        if suffix == ".mkv":  # the title, not a NAME tag besides
            with av.open(str(out)) as written:
                assert "NAME" not in written.streams.audio[0].metadata


def test_a_second_video_stream_and_a_data_stream_are_said_to_be_skipped(tmp_path):
    source = make_two_angles_mkv(tmp_path / "angles.mkv", tmp_path)
    said = _write(source, tmp_path / "out.mkv")
    assert [m for m in said if m.startswith("skipping")] == [
        f"skipping video stream #2 (h264, 'angle 2') of {source}: only the picture of stream #0 is colored and written"]
    source = make_data_track_mp4(tmp_path / "telemetry.mp4")
    said = _write(source, tmp_path / "out.mp4")
    assert [m for m in said if m.startswith("skipping")] == [
        f"skipping data stream #1 (GoPro MET) of {source}: only audio, subtitles and the timecode are copied"]


def test_a_timecode_track_is_kept_not_said_to_be_skipped(tmp_path):
    source = media.make_video(tmp_path / "film.mov", video_tags={"timecode": "01:00:00:00"})
    said = _write(source, tmp_path / "out.mov")
    assert not [m for m in said if m.startswith("skipping")]
    with av.open(str(tmp_path / "out.mov")) as written:
        assert [s.metadata.get("timecode") for s in written.streams if s.type == "data"] == ["01:00:00:00"]


# ---------------------------------------------------------------------------
# timecode


def test_an_excerpts_timecode_starts_at_its_first_frame(tmp_path):
    source = media.make_video(tmp_path / "film.mov", frames=75, rate=Fraction(25),
                              video_tags={"timecode": "01:00:00:00"})
    out = tmp_path / "part.mov"
    _write(source, out, start=2.0, end=2.5)
    with av.open(str(out)) as written:
        assert written.streams.video[0].metadata["timecode"] == "01:00:02:00"
        assert [s.metadata.get("timecode") for s in written.streams if s.type == "data"] == ["01:00:02:00"]


def test_an_excerpt_of_a_clip_without_sound_moves_its_timecode(tmp_path):
    # Nothing to copy closes the source at once; the timecode's move read
    # the closed container's stream and crashed the process (a segfault, sure
    # at this size, where the freed memory is soon reused).
    source = media.make_video(tmp_path / "film.mkv", width=640, height=360, frames=40, rate=Fraction(25),
                              audio=False, video_tags={"timecode": "01:00:00:00"})
    out = tmp_path / "part.mkv"
    _write(source, out, start=0.4, end=1.0)
    with av.open(str(out)) as written:
        assert written.streams.video[0].metadata["TIMECODE"] == "01:00:00:10"  # Matroska's tags are upper case


def test_a_timecode_that_cannot_be_moved_is_left_out_and_said(tmp_path):
    # Drop-frame (";") at 25 fps, which drops no frame numbers.
    source = media.make_video(tmp_path / "film.mkv", frames=30, rate=Fraction(25), audio=False,
                              video_tags={"timecode": "01:00:00;00"})
    said = _write(source, tmp_path / "part.mkv", start=0.4, end=1.0)
    assert any(m.startswith("leaving out the timecode 01:00:00;00") for m in said)
    with av.open(str(tmp_path / "part.mkv")) as written:
        assert not {k.lower() for k in written.streams.video[0].metadata} & {"timecode"}


def test_timecode_after():
    assert timecode_after("01:00:00:00", 50, Fraction(25)) == "01:00:02:00"
    assert timecode_after("00:59:59:24", 1, Fraction(25)) == "01:00:00:00"
    assert timecode_after("23:59:59:23", 2, Fraction(24)) == "00:00:00:01"
    ntsc = Fraction(30000, 1001)
    # Drop-frame skips frame numbers 0 and 1 at each minute but the tenth.
    assert timecode_after("00:00:59;29", 1, ntsc) == "00:01:00;02"
    assert timecode_after("00:09:59;29", 1, ntsc) == "00:10:00;00"
    assert timecode_after("00:00:00;00", 17982, ntsc) == "00:10:00;00"  # ten minutes of frames
    assert timecode_after("00:00:59;59", 1, Fraction(60000, 1001)) == "00:01:00;04"
    assert timecode_after("00:00:00:00", 30, ntsc) == "00:00:01:00"  # non-drop at 29.97: counts 30 a second
    assert timecode_after("01:00:00;00", 1, Fraction(25)) is None
    assert timecode_after("not a timecode", 1, Fraction(25)) is None


# ---------------------------------------------------------------------------
# AVI


def test_an_avi_says_it_plays_sound_that_starts_late_early(tmp_path):
    # AVI places sound by its order: sound from 0.5 s played from 0.
    source = make_late_sound_mp4(tmp_path / "late.mp4", late=0.5)
    said = _write(source, tmp_path / "out.avi")
    assert [m for m in said if "plays" in m] == [
        ("the sound starts 0.48 s into the video, and a .avi file places sound by its order, not its time: "
         f"in {tmp_path / 'out.avi'} it plays 0.48 s early (.mkv or .mp4 keep its time)")]
    assert not [m for m in _write(source, tmp_path / "out.mkv") if "plays" in m]
    on_time = make_late_sound_mp4(tmp_path / "on_time.mp4", late=0)
    assert not [m for m in _write(on_time, tmp_path / "on_time.avi") if "plays" in m]
