"""Make a black-and-white copy of a color video: its own luma, neutral chroma, audio kept.

    python examples/make_bw.py ../shared/data/clips/bikes.mp4 examples/bikes_bw.mp4

This is how examples/bikes_bw.mp4 was made; use it to try framecolor on footage
whose true colors you know (then `framecolor eval` on the color original scores it).
"""

import sys

import numpy as np

from framecolor import video


def make_bw(source, output, crf: int = 20) -> None:
    info = video.probe(source)
    with video.VideoWriter(output, width=info.width, height=info.height, fps=info.fps,
                           time_base=info.time_base, crf=crf, preset="slow",
                           copy_streams_from=source) as writer:
        neutral = np.full(writer.chroma_shape, 128, np.uint8)
        for frame in video.read_frames(source, format="luma"):
            writer.write_yuv(frame.image, neutral, neutral, frame.pts)


if __name__ == "__main__":
    make_bw(*sys.argv[1:3])
