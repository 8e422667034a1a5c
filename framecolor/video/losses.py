"""What an output file cannot keep of its source, said before it is lost:
a turn (AVI, MPEG-TS), a pixel's shape (VP9 in Matroska), a variable
frame timing (AVI; MPEG-1/2's beat), a full range (MPEG-4 in MP4). Each
function gives the warning's words, or None where the file keeps it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from framecolor.video.containers import reads_back
from framecolor.video.encoding import FULL_RANGE, TRIAL_SIZE, on_the_beat
from framecolor.video.probing import _sample_aspect_ratio, display_rotation

# Containers whose muxer writes a display matrix that FFmpeg reads back.
_HOLD_A_TURN = frozenset({"mp4", "mov", "ipod", "3gp", "3g2", "psp", "ismv", "f4v", "matroska", "webm"})
# How far a pixel's shape may come back off and still look the same: a
# shape stated as a whole display width is rounded (64 px at 10:11 is 58, 0.3% off).
_SHAPE_TOLERANCE = Fraction(1, 100)


def _same_shape(kept: Fraction, wanted: Fraction) -> bool:
    return abs(kept / wanted - 1) <= _SHAPE_TOLERANCE


def _one_frame_apart(interval: Fraction, period: Fraction, tick: Fraction) -> bool:
    """Does a frame come `interval` seconds after the one before, one frame
    `period` as a constant rate would place it, to within a `tick` of the
    source's clock? (Two timestamps rounded to a 1/1000 time base put 29.97
    frames/s 33 or 34 ms apart: that is no variable rate.) A frame a whole
    number of periods later counts as off too: AVI writes the skipped
    periods as empty chunks, but FFmpeg reads the frames beside them back
    a frame off."""
    return abs(interval - period) <= tick


def turn_lost(format_name: str, path: Path, display_matrix) -> str | None:
    """Where this container cannot tell players to turn the picture (AVI,
    MPEG-TS, FLV): the video then plays as stored, sideways for a phone's
    portrait clip. Only MP4/QuickTime and Matroska/WebM hold it."""
    degrees = display_rotation(display_matrix)
    if not degrees or format_name in _HOLD_A_TURN:
        return None
    return (f"a {path.suffix} file cannot tell players to turn the picture {abs(degrees)}°, "
            f"as the source does: {path} plays as stored (.mp4 and .mkv keep the turn)")


def shape_lost(format_name: str, path: Path, codec: str, add_stream, width: int, height: int, pix_fmt: str,
               sar: Fraction) -> str | None:
    """Where this file cannot tell players to stretch the picture as the
    source does (anamorphic DVD and DV: 720x480 shown at 4:3 or 16:9): it
    then plays squeezed or widened. `add_stream(container)` adds the
    writer's video stream, as the writer sets it up, to a container.

    Matroska and WebM take a pixel's shape from a field of the stream that
    PyAV cannot set (FFmpeg's muxer writes DisplayWidth from the AVStream's
    sample_aspect_ratio; PyAV sets only the codec's, and `stream.sample_aspect_ratio
    = ...` is passed on to the codec too), so there the shape survives only
    in codecs that carry it in their own headers (H.264, HEVC, MPEG-4), not
    in VP9 or AV1; MPEG-2 codes four display shapes only; MP4 and MOV hold
    any. Rather than keep that table, one frame is written to memory with
    the same encoder and read back as `probe` reads the output (0.1 s for
    VP9 at 720x480, and only for a source whose pixels are not square).
    """
    blank = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
    kept = reads_back(format_name, add_stream, blank.reformat(format=pix_fmt),
                      lambda stream: _sample_aspect_ratio(stream) or Fraction(1))
    if kept is None or _same_shape(kept, sar):
        return None
    size, shown = f"{width}x{height}", f"{round(width * sar)}x{height}"
    return (f"a {path.suffix} file of {codec} video cannot tell players to show its {size} "
            f"picture at {shown}, as the source does: {path} plays at {size} (.mp4 keeps the shape)")


def timing_lost(interval: Fraction, fps: Fraction, tick: Fraction, *, holds_frame_times: bool,
                codec: str, codec_time_base: Fraction, path: Path) -> str | None:
    """Where a frame `interval` s after the one before comes off the constant
    rate's beat (a variable-rate source: a phone's video, a screen
    recording, a capture that dropped frames) and this container holds one
    frame rate (AVI, Y4M) or no time at all (.h264): the frames then play
    evenly spaced, drifting from their sound. MPEG-1/2 video, which counts
    frames at 1/fps, keeps a skipped frame's gap but not a frame between beats."""
    if not fps:
        return None
    period = 1 / fps
    if not holds_frame_times and not _one_frame_apart(interval, period, tick):
        return (f"a {path.suffix} file cannot hold the source's variable frame timing: {path} "
                "plays its frames at a constant rate (.mp4 and .mkv keep the timing)")
    if codec_time_base == period and not on_the_beat(interval, period, tick):
        return (f"{codec} codes frames only on its constant rate's beat: {path} moves the "
                "source's variable frame times onto it (libx264 keeps them)")
    return None


def _decodes_full_range(stream) -> bool:
    """Does a reader find `stream` full range: in its header, as `probe`
    reads it, and in its first frame, as a player decodes it?"""
    stated = stream.codec_context.color_range == FULL_RANGE  # before a decoder sets it
    frame = next(stream.container.decode(stream), None)
    return stated and frame is not None and frame.color_range == FULL_RANGE


def range_lost(format_name: str, path: Path, codec: str, add_stream, pix_fmt: str) -> str | None:
    """Where this file cannot tell players that its picture is full range
    (codes 0-255, not 16-235), as the source is, by the range flag (for an
    encoder with no yuvj* format, whose name says it): played as limited
    range, its blacks and whites are clipped and the grays between
    stretched. `add_stream(container)` adds the writer's video stream,
    flagged full range, to a container.

    Where the flag survives is the codec's and the container's business:
    MPEG-4 part 2 in an MP4, MOV or AVI, FFV1 in AVI or NUT, HuffYUV and
    UT Video in AVI have no place for it, and MPEG-1/2 none anywhere (an
    MKV states it, but FFmpeg's decoder says limited). Rather than keep that
    table, one frame is written to memory and read back as a player and
    `probe` read the output: at TRIAL_SIZE, as the range is the same at
    any size (3-5 ms for FFV1 and MPEG-4, 15 for VP9, 30 for SVT-AV1), and
    only for a full-range source written with the flag.
    """
    blank = av.VideoFrame.from_ndarray(np.zeros((TRIAL_SIZE[1], TRIAL_SIZE[0], 3), np.uint8), format="rgb24")
    frame = blank.reformat(format=pix_fmt)
    frame.color_range = FULL_RANGE
    kept = reads_back(format_name, add_stream, frame, _decodes_full_range)
    if kept is None or kept:
        return None
    return (f"a {path.suffix} file of {codec} video cannot tell players that it is full range: {path}'s "
            "luma is re-coded from 0-255 to 16-235, the same picture in other codes (libx264 keeps the range)")
