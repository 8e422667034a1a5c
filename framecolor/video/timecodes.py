"""SMPTE timecodes moved on by a number of frames, as FFmpeg counts them
(an excerpt's timecode starts at its first frame)."""

from __future__ import annotations

import re
from fractions import Fraction

# SMPTE timecode: HH:MM:SS:FF, or with another last separator (";", ".")
# drop-frame, as FFmpeg reads it (av_timecode_init_from_string).
_TIMECODE = re.compile(r"(\d+):(\d+):(\d+)([^\d])(\d+)")


def timecode_after(timecode: str, frames: int, rate: Fraction) -> str | None:
    """`timecode` `frames` frames of a video at `rate` (frames/s) later, as
    FFmpeg counts: at the whole rate it rounds to (30 for NTSC's 29.97),
    drop-frame timecodes skipping frame numbers 0 and 1 (0-3 at 59.94)
    each minute but the tenth. None where it cannot: unreadable, no rate,
    or drop-frame at a rate that is not NTSC's."""
    match = _TIMECODE.fullmatch(timecode.strip())
    fps = round(rate) if rate else 0
    if match is None or fps <= 0:
        return None
    hours, minutes, seconds, separator, frame = match.groups()
    drop = separator != ":"
    if drop and (Fraction(rate).denominator != 1001 or fps % 30):
        return None
    dropped = fps // 15 if drop else 0  # frame numbers skipped a minute (2 at 29.97)
    total_minutes = int(hours) * 60 + int(minutes)
    count = (total_minutes * 60 + int(seconds)) * fps + int(frame) - dropped * (total_minutes - total_minutes // 10)
    count += frames
    if drop:  # back to frame numbers (av_timecode_adjust_ntsc_framenum2)
        per_ten_minutes = fps * 600 - dropped * 9
        tens, rest = divmod(count, per_ten_minutes)
        count += 9 * dropped * tens + dropped * (max(rest - dropped, 0) // (per_ten_minutes // 10))
    seconds_total, frame = divmod(count, fps)
    minutes_total, second = divmod(seconds_total, 60)
    hour, minute = divmod(minutes_total, 60)
    return f"{hour % 24:02d}:{minute:02d}:{second:02d}{separator}{frame:02d}"
