"""Make a black-and-white copy of a color video: its own luma, neutral chroma, audio kept.

    python examples/make_bw.py ../shared/data/clips/asl_milk.mkv examples/asl_milk_bw.mp4
    python examples/make_bw.py ../shared/data/clips/bikes.mp4 examples/bikes_bw.mp4

This is how the two samples in examples/ were made; use it to try framecolor on footage
whose true colors you know (then `framecolor eval` on the color original scores it).
"""

import sys

from framecolor.errors import FramecolorError
from framecolor.evaluate import make_gray_clip

if __name__ == "__main__":
    args = sys.argv[1:]
    overwrite = "--overwrite" in args
    paths = [a for a in args if a != "--overwrite"]
    if len(paths) != 2 or any(a.startswith("-") for a in paths):
        sys.exit("usage: python examples/make_bw.py COLOR_VIDEO BW_OUTPUT [--overwrite]")
    try:
        make_gray_clip(*paths, crf=20, preset="slow", copy_streams=True, overwrite=overwrite)
    except FramecolorError as exc:
        sys.exit(f"error: {exc}")
