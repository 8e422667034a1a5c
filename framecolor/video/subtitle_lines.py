"""Text subtitle lines made one at a time, for a format that shows one line
at a time (an MP4's mov_text)."""

from __future__ import annotations

import itertools


def one_at_a_time(lines: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """`lines` (start, end, ASS dialogue), in the order they start, as lines
    that do not overlap: cut wherever one starts or ends, each piece showing
    the text of every line on screen then, the earliest first.

    An MP4's mov_text track holds one line at a time, each until the next
    starts: a line shown inside a longer one (a second speaker) came out
    after the longer one ended. A piece takes the earlier line's style.
    A line of no length (a mark at one time) stays as it is, and cuts nothing.
    """
    if len(lines) < 2:
        return list(lines)
    lasting = [line for line in lines if line[1] > line[0]]
    bounds = sorted({time for start, end, _ in lasting for time in (start, end)})
    pieces = []
    for begin, stop in itertools.pairwise(bounds):
        shown = [dialogue for start, end, dialogue in lasting if start <= begin and stop <= end]
        if shown:
            pieces.append((begin, stop, _joined(shown)))
    marks = [line for line in lines if line[1] <= line[0]]
    return sorted(pieces + marks, key=lambda line: line[0])


def _joined(dialogues: list[bytes]) -> bytes:
    """One ASS dialogue showing the texts of `dialogues` on lines of their
    own (ASS's \\N), in the first one's style: a decoder's dialogue is
    ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text."""
    fields = dialogues[0].split(b",", 8)
    texts = [dialogue.split(b",", 8)[-1] for dialogue in dialogues]
    return b",".join([*fields[:-1], b"\\N".join(texts)])
