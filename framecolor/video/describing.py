"""A probed video as the rows of `framecolor info`'s table: what a person
reads (a clock, a rate with its exact fraction, a track's language and
title), where VideoInfo holds what code uses."""

from __future__ import annotations

from fractions import Fraction

from framecolor.video.encoding import top_field_first
from framecolor.video.probing import StreamInfo, VideoInfo


def _format_seconds(seconds: float) -> str:
    # Rounded to the millisecond before the split: 59.9996 s read 0:00:60.000.
    millis = round(seconds * 1000)
    minutes, millis = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def _format_rate(fps: Fraction) -> str:
    if fps.denominator == 1:
        return f"{fps.numerator} fps"
    return f"{float(fps):.3f} fps ({fps.numerator}/{fps.denominator})"


def _describe_rate(info: VideoInfo) -> str:
    if not info.variable_rate:
        return _format_rate(info.fps)
    shortest, longest = (round(gap * 1000) for gap in info.frame_gaps)
    return (f"variable, about {_format_rate(info.fps)} "
            f"(frames {shortest} to {longest} ms apart at the start)")


def _describe_stream(s: StreamInfo) -> str:
    parts = [f"#{s.index}", s.codec]
    if s.sample_rate:
        parts.append(f"{s.sample_rate} Hz")
    if s.channels:
        parts.append(f"{s.channels} ch")
    if s.language:
        parts.append(f"[{s.language}]")
    if s.title:
        parts.append(f'"{s.title}"')
    return " ".join(parts)


def _describe_sar(info: VideoInfo) -> str:
    sar = info.sample_aspect_ratio
    return f"{sar.numerator}:{sar.denominator} (shown {round(info.width * sar)} x {info.height})"


def describe(info: VideoInfo) -> list[tuple[str, str]]:
    """(label, value) rows for a human-readable table of `info`."""
    frames = str(info.frame_count) if info.frame_count_exact else f"~{info.frame_count} (estimated)"
    return [
        ("file", info.path),
        ("size", f"{info.width} x {info.height}"),
        ("frames", frames),
        ("frame rate", _describe_rate(info)),
        ("duration", f"{_format_seconds(info.duration)} ({info.duration:.3f} s)"),
        ("codec", f"{info.codec} ({info.pix_fmt}{', full range' if info.full_range else ''})"),
        ("time base", f"{info.time_base.numerator}/{info.time_base.denominator}"),
        *([("display", f"rotated {info.rotation} degrees counter-clockwise")] if info.rotation else []),
        *([("pixel aspect", _describe_sar(info))] if info.sample_aspect_ratio else []),
        *([("scan", f"interlaced, {'top' if top_field_first(info.field_order) else 'bottom'} field first")]
          if info.interlaced else []),
        ("audio", ", ".join(map(_describe_stream, info.audio)) or "none"),
        ("subtitles", ", ".join(map(_describe_stream, info.subtitles)) or "none"),
        *([("chapters", str(info.chapters))] if info.chapters else []),
    ]
