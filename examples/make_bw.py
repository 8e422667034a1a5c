"""Make a black-and-white copy of a color video: its own luma, neutral chroma, audio kept.

    python examples/make_bw.py ../shared/data/clips/asl_milk.mkv examples/asl_milk_bw.mp4
    python examples/make_bw.py ../shared/data/clips/bikes.mp4 examples/bikes_bw.mp4

This is how the two samples in examples/ were made; use it to try framecolor on footage
whose true colors you know (then `framecolor eval` on the color original scores it).
"""

import sys

from framecolor.evaluate import make_gray_clip

if __name__ == "__main__":
    make_gray_clip(*sys.argv[1:3], crf=20, preset="slow", copy_streams=True, overwrite=False)
