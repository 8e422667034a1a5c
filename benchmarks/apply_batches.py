"""Apply at several batch sizes beside the two codec floors, in one process.

    python benchmarks/apply_batches.py --heights 720 1080 --batch-sizes 8 16 32 --seconds 16 --rounds 2 --out X.json

apply_throughput.py gives one fps per run. This also splits each run in
three, from the times of the writer's first and last frames: the start (the
call until the first frame is written: probing, the colour check, opening
the writer, and for apply the pipeline's fill, two batches through the
network since each is smoothed with the next), the writing in between
(frames a second), and the end (the encoder's flush). On a short clip the
start is a large part of the whole; on a film it is not. Each round runs
apply at every batch size, then the gray and same-colors floors
(apply_throughput.transcode and transcode_colored), on generated 16:9 clips
with audio, with the shipped model by default.

Each run also splits the process's CPU time by thread (sampled from
/proc/self/task every 20 ms, so a thread's last moments may be missed):
Python threads by name, native ones by the name they gave themselves,
unnamed ones (x264's, XLA's, CUDA's) split into those started during the run
(x264's, which start with each writer) and those there before (a runtime's:
a busy one waits spinning), and the rest (threads gone between two samples)
as what the process used beyond those. On a GPU,
TF_CUDA_PLATFORM_GPU_DEVICE_SCHEDULE (spin, yield, blocking_sync: how XLA's
CUDA context waits for the device) is recorded with the results. --switch-intervals runs apply at each of
several GIL switch intervals (sys.setswitchinterval) in turn, in the same
process: the encode thread hands the GIL to the others each time it enters
the encoder, and how soon it gets it back may set its pace.
--x264-params runs apply and both floors under each of several x264-params
strings in place of the luma-keeping default's, in turn, in one process
(the encoder's settings, unlike apply's code, switch within a process):
what a change of the default does to apply and to its floors alike.
--copy-ahead also runs apply with each batch's chroma copied to the host
as soon as it is dispatched, and waited for a batch later. --nice runs apply with its decode and recombine threads (and the decoder's
own threads, which the decode thread starts) at each of several Linux nice
values in turn: x264 runs more threads than a 16-core machine has cores, and
whatever else is runnable takes cores from it and from the thread feeding it.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import apply_throughput as at  # a sibling module: this folder is on sys.path when run as a script


def _timed_writes(video, apply):
    """Record each write_yuv's time, and the time threads spend waiting on the pipeline's queues."""
    stamps, waits = [], collections.defaultdict(float)
    write_yuv, get = video.VideoWriter.write_yuv, apply._get

    def timed_write(self, *args, **kwargs):
        stamps.append(time.perf_counter())
        return write_yuv(self, *args, **kwargs)

    def timed_get(q, stop):
        started = time.perf_counter()
        try:
            return get(q, stop)
        finally:
            waits[threading.current_thread().name] += time.perf_counter() - started

    video.VideoWriter.write_yuv, apply._get = timed_write, timed_get
    return stamps, waits


def _niced_helpers(apply) -> list:
    """Start apply's decode and recombine threads at the nice value in the returned list's one item."""
    niceness = [0]

    def niced(run):
        def run_niced(*args, **kwargs):
            if niceness[0]:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness[0])
            return run(*args, **kwargs)
        return run_niced

    apply._decode, apply._recombine = niced(apply._decode), niced(apply._recombine)
    return niceness


def _recombine_copying_ahead(apply):
    """apply._recombine, but each batch's chroma starts its copy to the host as
    soon as it is dispatched and is waited for one batch later, so the
    recombine thread seldom waits on the device (a wait may spin a core)."""
    import numpy as np

    def recombine(writer_ready, chroma_for, out, stop):
        try:
            writer, pending = writer_ready.result(), None

            def hand_on(chroma, frames):
                u, v = np.asarray(chroma)  # Cb and Cr stacked, as apply's _recombined yields them
                return apply._put(out, (u, v, frames), stop)

            for chroma, frames in chroma_for(writer):
                chroma.copy_to_host_async()
                if pending is not None and not hand_on(*pending):
                    return
                pending = (chroma, frames)
            if pending is not None and not hand_on(*pending):
                return
            apply._put(out, apply._END, stop)
        except BaseException as exc:
            apply._put(out, apply._Failed(exc), stop)

    return recombine


def _task_cpu() -> dict[int, tuple[str, float]]:
    """tid -> (its name, CPU seconds so far) for this process's live threads."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    tasks = {}
    for entry in Path("/proc/self/task").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended since the listing
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        tid = int(entry.name)
        tasks[tid] = (names.get(tid, comm), (int(fields[11]) + int(fields[12])) / tick)
    return tasks


class _ThreadCpu:
    """CPU seconds by thread name over a run, from samples of /proc/self/task."""

    def __enter__(self):
        self.before = _task_cpu() if Path("/proc/self/task").exists() else None
        self.last, self.done = dict(self.before or {}), threading.Event()
        self.sampler = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        if self.before is not None:
            self.sampler.start()
        return self

    def _sample(self):
        while not self.done.wait(0.02):
            self.last.update(_task_cpu())

    def __exit__(self, *exc):
        self.done.set()
        if self.before is None:
            self.seconds = {}
            return
        self.sampler.join()
        self.last.update(_task_cpu())
        self.seconds = collections.defaultdict(float)
        unnamed = Path("/proc/self/comm").read_text().strip()
        self.busiest_unnamed_before = 0.0
        for tid, (name, cpu) in self.last.items():  # the sampler's own cost is among them
            used = cpu - self.before.get(tid, (name, 0.0))[1]
            if name == unnamed:  # x264's threads start with each writer; XLA's and CUDA's were there before
                name += " (there before)" if tid in self.before else " (started in the run)"
                if tid in self.before:
                    self.busiest_unnamed_before = max(self.busiest_unnamed_before, used)
            self.seconds[name] += used


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[720])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--preset", default="faster")
    parser.add_argument("--seconds", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="framecolor/assets/default.fcm")
    parser.add_argument("--switch-intervals", type=float, nargs="+", default=[sys.getswitchinterval()],
                        help="Python's GIL switch intervals (s) to run apply at, each in turn (the floors: the first)")
    parser.add_argument("--nice", type=int, nargs="+", default=[0],
                        help="nice values for apply's decode and recombine threads, each in turn")
    parser.add_argument("--x264-params", nargs="+", default=[None],
                        help="x264-params strings for the luma-keeping encode, each in turn (default: framecolor's)")
    parser.add_argument("--copy-ahead", action="store_true",
                        help="also run apply with each batch's chroma copied to the host one batch ahead")
    parser.add_argument("--out", help="also write the JSON here (after every run)")
    args = parser.parse_args(argv)
    from framecolor import allocator

    allocator.reuse_freed_memory()  # as framecolor apply runs
    import jax

    from framecolor import apply, video
    from framecolor.video import encoding

    stamps, waits = _timed_writes(video, apply)
    niceness = _niced_helpers(apply)
    loaded = at._model(args.model, 1.0, None)
    results = {"device": str(jax.devices()[0]), "preset": args.preset, "seconds": args.seconds,
               "gpu_schedule": os.environ.get("TF_CUDA_PLATFORM_GPU_DEVICE_SCHEDULE", "unset (CUDA's auto)"),
               "encoder_options": video.encoder_options("libx264", None, args.preset), "warmup_s": {}, "runs": []}

    def sample(go, **tags):
        stamps.clear()
        waits.clear()
        started = time.perf_counter()
        with _ThreadCpu() as threads:
            row = at._sample(go)
        named = {name: round(s, 3) for name, s in sorted(threads.seconds.items(), key=lambda kv: -kv[1]) if s >= 0.005}
        process = row["cpu_ms_per_frame"] * row["frames"] / 1000
        row.update(thread_cpu_s=named, cpu_s_beyond_live_threads=round(process - sum(threads.seconds.values()), 3),
                   busiest_unnamed_thread_there_before_s=round(getattr(threads, "busiest_unnamed_before", 0.0), 3))
        row.update(tags, first_write_s=stamps[0] - started, write_fps=(len(stamps) - 1) / (stamps[-1] - stamps[0]),
                   after_last_write_s=time.perf_counter() - stamps[-1],
                   queue_wait_s={name: round(s, 3) for name, s in sorted(waits.items())})
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
            Path(args.out).write_text(json.dumps(results, indent=1))

    colorizers = {b: apply.Colorizer(loaded, apply.ApplyConfig(batch_size=b, preset=args.preset))
                  for b in args.batch_sizes}
    codec_kw = dict(codec="libx264", crf=None, preset=args.preset, pix_fmt="yuv420p")
    intervals, nices = args.switch_intervals, args.nice
    default_params = encoding._KEEP_LUMA_X264["x264-params"]
    param_sets = [params or default_params for params in args.x264_params]
    results["x264_params"] = param_sets

    def label(b, si, nice, k=0):
        return (f"apply B{b}" + (f" switch {si * 1000:g} ms" if len(intervals) > 1 else "")
                + (f" nice {nice}" if len(nices) > 1 else "") + _params_tag(k, param_sets))

    applies = [label(b, si, n, k) for k in range(len(param_sets)) for b in args.batch_sizes for si in intervals
               for n in nices]
    if args.copy_ahead:
        applies.append(f"apply B{args.batch_sizes[0]} copy ahead{_params_tag(0, param_sets)}")
    floors = [f"floor {kind}{_params_tag(k, param_sets)}" for k in range(len(param_sets))
              for kind in ("gray", "same colors")]
    for height in args.heights:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            source = at.make_video(tmp / "in.mp4", at._aspect_width(height), height, args.seconds)
            for b, colorizer in colorizers.items():  # compiles each batch size's steps for this size
                started = time.perf_counter()
                apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True, progress=False)
                results["warmup_s"][f"{height}p B{b}"] = time.perf_counter() - started
            chroma = at.colored_chroma(tmp / "out.mp4")
            for _, (k, params) in itertools.product(range(args.rounds), enumerate(param_sets)):
                # In place of the writer's own for this round's runs, as luma_fidelity.py swaps them.
                with mock.patch.dict(encoding._KEEP_LUMA_X264, {"x264-params": params}):
                    tag = _params_tag(k, param_sets)
                    for b, colorizer in colorizers.items():
                        for si in intervals:
                            for nice in nices:
                                sys.setswitchinterval(si)
                                niceness[0] = nice
                                sample(lambda: apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True,
                                                                    progress=False),
                                       height=height, run=label(b, si, nice, k))
                    sys.setswitchinterval(intervals[0])
                    if args.copy_ahead and k == 0:
                        b, colorizer = next(iter(colorizers.items()))
                        usual, apply._recombine = apply._recombine, _recombine_copying_ahead(apply)
                        try:
                            sample(lambda: apply.colorize_video(colorizer, source, tmp / "out.mp4", overwrite=True,
                                                                progress=False),
                                   height=height, run=f"apply B{b} copy ahead{tag}")
                        finally:
                            apply._recombine = usual
                    sample(lambda: at.transcode(source, tmp / "gray.mp4", **codec_kw), height=height,
                           run=f"floor gray{tag}")
                    sample(lambda: at.transcode_colored(source, chroma, tmp / "colors.mp4", **codec_kw),
                           height=height, run=f"floor same colors{tag}")
    print(table(results, args.heights, applies, floors))


def _params_tag(k: int, param_sets: list) -> str:
    """A run's label suffix naming its x264-params (by number, see results["x264_params"]) where several are run."""
    return f" x264-params {k}" if len(param_sets) > 1 else ""


def table(results: dict, heights, applies, floors=("floor gray", "floor same colors")) -> str:
    lines = ["| video | run | fps, each round | start s | frames/s between first and last written | end s |",
             "|---|---|---|---|---|---|"]
    for height in heights:
        for name in [*applies, *floors]:
            rows = [r for r in results["runs"] if r["run"] == name and r["height"] == height]
            if rows:
                lines.append(f"| {height}p {results['seconds']:g} s | {name} | "
                             + " / ".join(f"{r['fps']:.1f}" for r in rows) + " | "
                             + " / ".join(f"{r['first_write_s']:.3f}" for r in rows) + " | "
                             + " / ".join(f"{r['write_fps']:.0f}" for r in rows) + " | "
                             + " / ".join(f"{r['after_last_write_s']:.3f}" for r in rows) + " |")
    lines += ["", "| video | run | apply / same-colors floor (of its x264-params), each round |", "|---|---|---|"]
    for height in heights:
        for name in applies:
            tag = name[name.index(" x264-params"):] if " x264-params" in name else ""
            same = [r["fps"] for r in results["runs"]
                    if r["run"] == f"floor same colors{tag}" and r["height"] == height]
            rows = [r["fps"] for r in results["runs"] if r["run"] == name and r["height"] == height]
            lines.append(f"| {height}p | {name} | " + " / ".join(f"{a / f:.2f}" for a, f in zip(rows, same)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    main_saying_errors(main)
