"""What the benchmark scripts share: a user's mistake said in one line.

A clip, folder or model file that is not there is framecolor's own error
(a FramecolorError, such as InputError): each script's `__main__` runs its
main through `main_saying_errors`, so that it reads `error: ...` and exits 1,
as the framecolor command and examples/make_bw.py say it, not as a traceback
that reads as a bug in the benchmark.
"""

from __future__ import annotations

import sys


def main_saying_errors(main, *args):
    """What `main(*args)` returns; on a FramecolorError, `error: ...` and exit status 1."""
    from framecolor.errors import FramecolorError  # imported once the script has put its checkout on sys.path

    try:
        return main(*args)
    except FramecolorError as exc:
        sys.exit(f"error: {exc}")
