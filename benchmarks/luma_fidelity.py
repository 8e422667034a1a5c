"""How well each encoder setting keeps a gray input's luma, and what it costs.

Issue 5 asks that apply's output Y plane equal the input's within +-1 code on
99.9% of pixels. apply copies the Y plane, so only the encoder moves it; this
measures that directly. Each clip is first made into a lossy gray input as a
user would have one (its own luma, libx264 crf 20 preset slow, like
examples/make_bw.py), then that input's Y is encoded again with neutral chroma
through framecolor's writer under each setting, decoded, and compared:

    python benchmarks/luma_fidelity.py ../shared/data/clips/*.mp4 --out benchmarks/results/luma.json

Prints a markdown table (share of pixels within +-1, the largest error, file
size, encode fps, the encoder's CPU per frame) and writes every figure as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

import apply_throughput  # a sibling module: this folder is on sys.path when run as a script

# (label, crf, preset, keep-luma options in place of the writer's): crf None
# is the writer's default, which keeps luma.
SETTINGS = [
    ("default", None, None, None),
    ("default, preset medium", None, "medium", None),
    ("quantizer 3 with trellis (the first default)", None, None,
     {"qp": "3", "x264-params": "psy-rd=0,0:chroma-qp-offset=12"}),
    ("with CABAC (the default until the twelfth session)", None, None,
     {"qp": "2", "x264-params": "psy-rd=0,0:chroma-qp-offset=12:trellis=0"}),
    ("with 8x8 partitions and transform (the default until the nineteenth session)", None, None,
     {"qp": "2", "x264-params": "psy-rd=0,0:chroma-qp-offset=12:trellis=0:cabac=0"}),
    ("two reference frames (the default until the twenty-second session)", None, None,
     {"qp": "2", "x264-params": "psy-rd=0,0:chroma-qp-offset=12:trellis=0:cabac=0:no-8x8dct=1:partitions=i4x4"}),
    ("crf 18, medium", 18, "medium", None),
    ("crf 8, medium", 8, "medium", None),
    ("crf 0, medium", 0, "medium", None),
]


def measure_clip(source: Path, workdir: Path, settings=SETTINGS) -> dict:
    from framecolor import evaluate, video

    gray = workdir / f"{source.stem}_bw.mp4"
    evaluate.make_gray_clip(source, gray, crf=20, preset="slow")
    info = video.probe(gray)
    frames = list(video.read_frames(gray, format="luma"))
    luma = np.stack([f.image for f in frames]).astype(np.int16)
    rows = []
    for label, crf, preset, keep_luma in settings:
        # A past keep-luma setting goes in place of the writer's, through the same writer.
        with mock.patch.dict(video.encoding._KEEP_LUMA_X264, keep_luma or dict(video.encoding._KEEP_LUMA_X264), clear=True):
            options = video.encoder_options("libx264", crf, preset)
            cpu_s = time.process_time()  # x264's threads are this process's: its CPU, whatever the cores
            encode_s = apply_throughput.encode_luma([f.image for f in frames], info, workdir / "out.mp4", crf=crf,
                                                    preset=preset, pts=[f.pts for f in frames])
            cpu_s = time.process_time() - cpu_s
        back = np.stack([f.image for f in video.read_frames(workdir / "out.mp4", format="luma")]).astype(np.int16)
        error = np.abs(back - luma)
        rows.append({"setting": label, "options": options,
                     "within_1": float(np.mean(error <= 1)), "max_error": int(error.max()),
                     "bytes": (workdir / "out.mp4").stat().st_size, "encode_fps": len(frames) / encode_s,
                     "encode_cpu_ms_per_frame": 1000 * cpu_s / len(frames)})
    return {"clip": str(source), "width": info.width, "height": info.height, "frames": len(frames),
            "gray_input_bytes": gray.stat().st_size, "settings": rows}


def markdown(results: list) -> str:
    lines = ["| clip | setting | within ±1 | max error | size MB (input) | encode fps | CPU ms/frame |",
             "|---|---|---|---|---|---|---|"]
    for clip in results:
        name = f"{Path(clip['clip']).name} {clip['width']}x{clip['height']}"
        for row in clip["settings"]:
            lines.append(f"| {name} | {row['setting']} | {row['within_1'] * 100:.2f}% | {row['max_error']} | "
                         f"{row['bytes'] / 1e6:.2f} ({clip['gray_input_bytes'] / 1e6:.2f}) | {row['encode_fps']:.0f} | "
                         f"{row['encode_cpu_ms_per_frame']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path, help="color or gray videos")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure_clip(clip, Path(tmp)) for clip in args.clips]
    print(markdown(results))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)  # a new results folder: not a traceback after the whole run
        out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    sys.exit(main_saying_errors(main))
