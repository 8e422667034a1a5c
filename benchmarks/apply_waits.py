"""Where apply's threads spend a run, and an A/B of reading the chroma one batch ahead.

    python benchmarks/apply_waits.py --height 720 --preset faster --seconds 16 --rounds 3 --out X.json
    python benchmarks/apply_waits.py ... --cabac     # the encoder's CABAC setting, for apply and the floors

Each round runs apply once per variant of its encode thread, then the gray
and same-colors floors. The variants are copies of apply._encode with clocks
in them: "baseline" as apply has it (wait for each batch's chroma, then
write it), "lookahead" (start the next batch's copy to the host before
writing this one; tried in the thirteenth session and not adopted: the H200
showed no difference beyond the run-to-run spread). Every thread's seconds
in the decoder, in the queues' get and put, in dispatching and in writing
are kept per run.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import apply_throughput as at  # a sibling module: this folder is on sys.path when run as a script

SECONDS: collections.defaultdict = collections.defaultdict(float)  # (thread, what) -> seconds


class _clock:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        SECONDS[(threading.current_thread().name, self.label)] += time.perf_counter() - self.started


def _write(writer, batch, progress) -> None:
    u, v, frames = batch
    with _clock("device wait + to host"):
        u, v = np.asarray(u), np.asarray(v)
    with _clock("write frames"):
        for i, frame in enumerate(frames):
            writer.write_yuv(frame.image, u[i], v[i], frame.pts)
    progress(len(frames))


def encode_baseline(writer, chroma, stop, progress, errors) -> None:
    try:
        batches = iter(chroma)
        while True:
            with _clock("next chroma (queue + finish dispatch)"):
                batch = next(batches, None)
            if batch is None or stop.is_set():
                return
            _write(writer, batch, progress)
    except BaseException as exc:
        errors.append(exc)
        stop.set()


def encode_lookahead(writer, chroma, stop, progress, errors) -> None:
    try:
        batches, pending = iter(chroma), None
        while True:
            with _clock("next chroma (queue + finish dispatch)"):
                batch = next(batches, None)
            if batch is not None:
                for plane in batch[:2]:
                    plane.copy_to_host_async()
            if pending is not None:
                if stop.is_set():
                    return
                _write(writer, pending, progress)
            if batch is None:
                return
            pending = batch
    except BaseException as exc:
        errors.append(exc)
        stop.set()


VARIANTS = {"baseline": encode_baseline, "lookahead": encode_lookahead}


def _clocked(apply, video, colorizer) -> None:
    """Put clocks on the queues, the decoder and the device dispatches."""
    get, put, read_frames = apply._get, apply._put, video.read_frames
    prepare, predict = colorizer.prepare, colorizer.predict

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--preset", default="faster")
    parser.add_argument("--seconds", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variants", default="baseline,lookahead")
    parser.add_argument("--model", default="framecolor/assets/default.fcm")
    parser.add_argument("--cabac", action="store_true", help="x264's CABAC (the default until the twelfth session)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    import jax

    from framecolor import apply, video
    from framecolor.video import encoding

    if args.cabac:  # for apply and the floors alike: both go through the writer's options
        encoding._KEEP_LUMA_X264["x264-params"] = encoding._KEEP_LUMA_X264["x264-params"].replace(":cabac=0", "")
    config = apply.ApplyConfig(batch_size=args.batch_size, preset=args.preset)
    colorizer = apply.Colorizer(at._model(args.model, 1.0, None), config)
    _clocked(apply, video, colorizer)
    names = args.variants.split(",")
    results = {"device": str(jax.devices()[0]), "height": args.height, "preset": args.preset,
               "encoder_options": video.encoder_options("libx264", None, args.preset), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = at.make_video(tmp / "in.mp4", at._aspect_width(args.height), args.height, args.seconds)
        started = time.perf_counter()
        apply._encode = encode_baseline
        apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True, progress=False)
        results["warmup_s"] = time.perf_counter() - started
        chroma = at.colored_chroma(tmp / "out.mp4")
        codec_kw = dict(codec="libx264", crf=None, preset=args.preset, pix_fmt=config.pix_fmt)
        for _ in range(args.rounds):
            runs = [(name, lambda: apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True,
                                                       progress=False)) for name in names]
            runs += [("floor gray", lambda: at.transcode(source, tmp / "gray.mp4", **codec_kw)),
                     ("floor colors", lambda: at.transcode_colored(source, chroma, tmp / "colors.mp4", **codec_kw))]
            for name, go in runs:
                apply._encode = VARIANTS.get(name, encode_baseline)
                SECONDS.clear()
                row = at._sample(go)
                row.update(variant=name, threads_s={f"{t}: {what}": round(s, 3) for (t, what), s in sorted(SECONDS.items())})
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    for name in names + ["floor gray", "floor colors"]:
        fps = [r["fps"] for r in results["runs"] if r["variant"] == name]
        print(f"{args.height}p {args.preset} {name}: " + " / ".join(f"{f:.1f}" for f in fps))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
