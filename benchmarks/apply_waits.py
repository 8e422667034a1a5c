"""Where apply's threads spend a run, beside the codec floors.

    python benchmarks/apply_waits.py --height 720 --preset faster --seconds 16 --rounds 3 --out X.json
    python benchmarks/apply_waits.py ... --cabac     # the encoder's CABAC setting, for apply and the floors

Each round runs apply once, then the gray and same-colors floors. Every
thread's seconds in the decoder, in the queues' get and put, in
dispatching the device's steps (prepare, predict, finish) and in writing
frames are kept per run, by thread name. The thirteenth session's version
also A/B'd two copies of the encode thread (waiting for each batch's
chroma, or starting the next batch's copy one batch ahead); the
fourteenth moved the device's steps and waits out of the encode thread
into a recombine thread of their own, which made those variants moot.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import threading
import time
from pathlib import Path

import apply_throughput as at  # a sibling module: this folder is on sys.path when run as a script

SECONDS: collections.defaultdict = collections.defaultdict(float)  # (thread, what) -> seconds


class _clock:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        SECONDS[(threading.current_thread().name, self.label)] += time.perf_counter() - self.started


def _clocked(apply, video, colorizer) -> None:
    """Put clocks on the queues, the decoder, the device dispatches and the writer."""
    get, put, read_frames = apply._get, apply._put, video.read_frames
    prepare, predict, finish = colorizer.prepare, colorizer.predict, colorizer.finish
    write_yuv = video.VideoWriter.write_yuv

    def timed(fn, label):
        def call(*args, **kwargs):
            with _clock(label):
                return fn(*args, **kwargs)
        return call

    def timed_read(*args, **kwargs):
        frames = read_frames(*args, **kwargs)

        def each():
            try:
                while True:
                    with _clock("decode"):
                        frame = next(frames, None)
                    if frame is None:
                        return
                    yield frame
            finally:
                frames.close()
        return each()

    apply._get, apply._put, video.read_frames = timed(get, "queue get"), timed(put, "queue put"), timed_read
    colorizer.prepare, colorizer.predict = timed(prepare, "prepare dispatch"), timed(predict, "predict dispatch")
    colorizer.finish = timed(finish, "finish dispatch")
    video.VideoWriter.write_yuv = timed(write_yuv, "write frames")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--preset", default="faster")
    parser.add_argument("--seconds", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="framecolor/assets/default.fcm")
    parser.add_argument("--cabac", action="store_true", help="x264's CABAC (the default until the twelfth session)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from framecolor import allocator

    allocator.reuse_freed_memory()  # as framecolor apply runs
    import jax

    from framecolor import apply, video
    from framecolor.video import encoding

    if args.cabac:  # for apply and the floors alike: both go through the writer's options
        encoding._KEEP_LUMA_X264["x264-params"] = encoding._KEEP_LUMA_X264["x264-params"].replace(":cabac=0", "")
    config = apply.ApplyConfig(batch_size=args.batch_size, preset=args.preset)
    colorizer = apply.Colorizer(at._model(args.model, 1.0, None), config)
    _clocked(apply, video, colorizer)
    results = {"device": str(jax.devices()[0]), "height": args.height, "preset": args.preset,
               "encoder_options": video.encoder_options("libx264", None, args.preset), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = at.make_video(tmp / "in.mp4", at._aspect_width(args.height), args.height, args.seconds)
        started = time.perf_counter()
        apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True, progress=False)
        results["warmup_s"] = time.perf_counter() - started
        chroma = at.colored_chroma(tmp / "out.mp4")
        codec_kw = dict(codec="libx264", crf=None, preset=args.preset, pix_fmt=config.pix_fmt)
        for _ in range(args.rounds):
            runs = [("apply", lambda: apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True,
                                                          progress=False)),
                    ("floor gray", lambda: at.transcode(source, tmp / "gray.mp4", **codec_kw)),
                    ("floor colors", lambda: at.transcode_colored(source, chroma, tmp / "colors.mp4", **codec_kw))]
            for name, go in runs:
                SECONDS.clear()
                row = at._sample(go)
                row.update(variant=name, threads_s={f"{t}: {what}": round(s, 3) for (t, what), s in sorted(SECONDS.items())})
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    for name in ["apply", "floor gray", "floor colors"]:
        fps = [r["fps"] for r in results["runs"] if r["variant"] == name]
        print(f"{args.height}p {args.preset} {name}: " + " / ".join(f"{f:.1f}" for f in fps))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    main_saying_errors(main)
