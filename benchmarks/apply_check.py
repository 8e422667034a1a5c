"""Issue 5's check on a real clip: what `framecolor apply` writes keeps the input's frames, timing, luma and audio.

    python benchmarks/apply_check.py ../shared/data/clips/bigbuckbunny.mp4 [--model M] [--work DIR]

The clip's own luma is written losslessly with neutral chroma and its other
streams copied (evaluate.make_gray_clip: the black-and-white input), then
colorized by the CLI in a process of its own, as a user runs it. The two
files are compared: frame count and pts, size, frame rate and durations,
the Y planes (within +-1 on at least 99.9% of pixels), and the audio packets
byte for byte. Exits 1 if any of them differs, so a device script can stop on it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

LUMA_GOAL = 0.999  # the share of pixels within +-1


def _facts(path: Path) -> tuple[list, tuple, list[bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="yuv420p")[: stream.height]) for f in container.decode(video=0)]
        seconds = float(stream.duration * stream.time_base) if stream.duration else None
        shape = (stream.width, stream.height, float(stream.average_rate), seconds, container.duration / 1e6)
    with av.open(str(path)) as container:
        audio = [bytes(p) for p in container.demux(audio=0) if p.size] if container.streams.audio else []
    return frames, shape, audio


def check(clip: Path, work: Path, model: str | None) -> bool:
    from framecolor import evaluate

    gray, colored = work / "gray.mp4", work / "colored.mp4"
    evaluate.make_gray_clip(clip, gray, crf=0, copy_streams=True)
    started = time.perf_counter()
    command = [sys.executable, "-m", "framecolor", "apply", str(gray), str(colored), "-q", "--overwrite",
               *(["--model", model] if model else [])]
    rc = subprocess.run(command).returncode
    print(f"apply rc {rc} in {time.perf_counter() - started:.1f} s (compile included)")
    if rc:
        return False
    (frames_in, shape_in, audio_in), (frames_out, shape_out, audio_out) = _facts(gray), _facts(colored)
    same_pts = [p for p, _ in frames_in] == [p for p, _ in frames_out]
    print(f"frames {len(frames_in)} in, {len(frames_out)} out; pts equal: {same_pts}")
    print(f"(width, height, fps, stream s, container s): {shape_in} in, {shape_out} out")
    close = np.mean(np.concatenate([(np.abs(a.astype(int) - b.astype(int)) <= 1).ravel()
                                    for (_, a), (_, b) in zip(frames_in, frames_out)]))
    print(f"luma within +-1: {100 * close:.5f}% of pixels")
    print(f"audio packets {len(audio_in)} in, {len(audio_out)} out; identical: {audio_in == audio_out}")
    return (len(frames_in) == len(frames_out) and same_pts and shape_in == shape_out
            and close >= LUMA_GOAL and audio_in == audio_out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path, help="a color (or gray) video with audio")
    parser.add_argument("--model", help="model file (default: framecolor's shipped model)")
    parser.add_argument("--work", type=Path, help="folder for the two videos (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        passed = check(args.clip, work, args.model)
    print("check passed" if passed else "check FAILED")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    main_saying_errors(main)
