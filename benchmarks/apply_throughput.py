"""Throughput and memory of `framecolor apply`.

One run measures, on a generated video of the given size (or on --clip):
  apply_fps      end to end: decode, model, smoothing, recombination, encode, audio copy
  transcode_fps  the codec alone with the same settings: decode luma -> write_yuv with
                 neutral chroma
  transcode_colored_fps
                 the codec alone on the frames apply wrote: decode the input's Y plane
                 and encode it with the chroma apply wrote (read into memory first),
                 same settings (what apply could reach with an infinitely fast model:
                 the encoder works harder on color than on gray)
                 Both floors decode in a thread of their own, as apply does.
  device_fps     everything apply does on the device (predict + smoothing + recombination
                 at full resolution), synthetic frames, no codec
  model_fps      the network alone at the render size, synthetic input, run as apply
                 runs it: networks_in_flight batches at once, each from a thread
                 of its own (2 on a CPU backend); model_fps_one_at_a_time: one
                 batch after another
Compile time is measured apart (first call) and excluded from the rates.
With --repeats N, apply and transcode-only alternate N times and each keeps its
best rate (every sample is in the JSON): a lent VM is noisy from second to
second, and alternating keeps one slow moment from landing on one side only.
Each apply run is followed by the network alone on as many frames (samples
"model"): apply_over_model_paired is each apply's rate over that run's, and
apply_over_model_by_cpu the network's CPU time a frame over apply's (both
runs fill every core on a CPU backend, so the two ratios agree where the
machine is steady, and the CPU one moves less where it is not).
Every rate is measured with malloc set as framecolor apply sets it
(framecolor.allocator); --system-malloc leaves glibc's defaults, for an
alternated comparison in separate processes.
cpu_ms_per_frame (process CPU time over frames) tells contention from
waiting: apply needing more CPU per frame than the codec alone means the
codec's threads shared the cores with apply's own work.

--memory instead runs apply on generated videos of several lengths (default
1 and 5 minutes), each in a fresh process, and reports its peak RSS: a
streaming pipeline keeps it flat whatever the length. The RSS swings by
about 100 MB from moment to moment (batches in the queues, the allocator),
so a longer run may simply meet a higher swing: each run also samples its
RSS every 2 s and reports the mean of each fifth of the run, which climbs
where memory leaks and levels off where it does not.

    python benchmarks/apply_throughput.py --height 720 --seconds 5 --width 0.25
    python benchmarks/apply_throughput.py --model model.fcm --height 1080 720 --preset medium veryfast
    python benchmarks/apply_throughput.py --memory --height 720 --minutes 1 5 --width 0.125
    python benchmarks/apply_throughput.py --model framecolor/assets/default.fcm --clip examples/bikes_bw.mp4

Prints one JSON object (several heights/presets: {"runs": [...]}).
`measure(...)` and `memory(...)` return the same dicts for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = 25


def make_video(path, width: int, height: int, seconds: float, fps: int = FPS, seed: int = 0) -> Path:
    """A clip with camera-like motion and texture (a panned smooth noise field plus
    a little grain), so the encoder works about as hard as on footage; AAC audio too."""
    import av

    path = Path(path)
    rng = np.random.default_rng(seed)
    # A texture twice the frame size, smoothed by averaging shifted copies.
    big = rng.integers(0, 256, (2 * height + 8, 2 * width + 8)).astype(np.float32)
    for axis in (0, 1):
        big = sum(np.roll(big, k, axis) for k in range(-4, 5)) / 9
    big = (big - big.mean()) * 4 + 128
    grain = rng.normal(0, 3, (8, height, width)).astype(np.float32)  # cycled: cheap to make
    frames = int(round(seconds * fps))
    # yuv420p written directly: Y is the picture, chroma neutral (a B&W film).
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        audio = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(frames):
            dy = int(height / 2 * (1 + np.sin(i / 50)))
            dx = int(width / 2 * (1 + np.cos(i / 70)))
            y = big[dy:dy + height, dx:dx + width] + grain[i % len(grain)]
            planes[:height] = np.clip(y, 16, 235)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        n, total = 1024, int(seconds * 48000)
        for start in range(0, total - n + 1, n):
            samples = 0.2 * np.sin(2 * np.pi * 440 * np.arange(start, start + n) / 48000)
            frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    return path


def _model(model_path, width: float, size: int | None):
    """A model file, or a freshly initialized one of the given width (speed does not need training)."""
    import jax

    from framecolor import apply
    from framecolor.modelfile import LoadedModel
    from framecolor.models.colorizer import ModelConfig, init_variables

    if model_path:
        return apply.load(model_path)
    config = ModelConfig(width=width, **({"size": size} if size else {}))
    return LoadedModel(config=config, variables=init_variables(config, jax.random.PRNGKey(0)), header={})


def _decoded_ahead(frames, depth: int = 64):
    """Yield from the iterator `frames`, run in a thread of its own `depth` items ahead.

    Apply decodes in its own thread; so do the codec floors, so that they
    differ from apply only by what apply adds, not by a serial decode.
    """
    items: queue.Queue = queue.Queue(depth)
    done = object()

    def fill():
        try:
            for item in frames:
                items.put(item)
            items.put(done)
        except BaseException as exc:  # handed to the consumer
            items.put(exc)

    threading.Thread(target=fill, name="floor-decode", daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _gray_planes(path):
    from framecolor import video

    for frame in video.read_frames(path, format="luma"):
        yield frame.image, None, None, frame.pts


def colored_chroma(colored) -> list:
    """The U and V planes apply wrote, decoded before any timing starts.

    The colored floor then decodes only what apply decodes (the input): apply's
    own output is a far bigger stream (luma kept at quantizer 2) and decoding
    it would charge the floor for work apply never does.
    """
    import av

    from framecolor import video

    with av.open(str(colored)) as container:  # the raw codes of each plane, as apply wrote them
        return [(video.pixels._plane(frame, 1), video.pixels._plane(frame, 2)) for frame in container.decode(video=0)]


def _reencode(planes, out, *, info, source, codec, crf, preset, pix_fmt) -> dict:
    """Encode (y, u, v, pts) planes (u, v None: neutral chroma) with apply's writer and settings."""
    from framecolor import video

    count = 0
    with video.VideoWriter.like(out, info, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                                copy_streams_from=source, overwrite=True) as writer:
        gray = np.full(writer.chroma_shape, 128, np.uint8)
        for y, u, v, pts in _decoded_ahead(planes):
            writer.write_yuv(y, gray if u is None else u, gray if v is None else v, pts)
            count += 1
    return {"frames": count}


def encode_luma(luma, info, out, *, crf=None, preset=None, pts=None) -> float:
    """Seconds to write Y planes already in memory, with neutral chroma, through apply's writer.

    The encoder alone, no decoding: benchmarks/run.py's encode fps and
    benchmarks/luma_fidelity.py's encodes. `pts` None: the writer's nominal ones.
    """
    from framecolor import video

    started = time.perf_counter()
    with video.VideoWriter.like(out, info, crf=crf, preset=preset, overwrite=True) as writer:
        neutral = np.full(writer.chroma_shape, 128, np.uint8)
        for y, t in zip(luma, pts or [None] * len(luma), strict=True):
            writer.write_yuv(y, neutral, neutral, t)
    return time.perf_counter() - started


def transcode(path, out, **codec_kw) -> dict:
    """Decode the Y plane and write it back with neutral chroma: the codec's share of apply."""
    from framecolor import video

    return _reencode(_gray_planes(path), out, info=video.probe(path), source=path, **codec_kw)


def transcode_colored(source, chroma, out, **codec_kw) -> dict:
    """Decode the input's Y plane, as apply does, and encode it with apply's own chroma.

    The codec floor for the frames apply actually writes: x264 spends more
    (chroma motion search, chroma residuals) on colored chroma than on the
    neutral chroma of transcode(), so that floor flatters the codec.
    `chroma` is colored_chroma() of apply's output.
    """
    from framecolor import video

    planes = ((y, u, v, pts) for (y, _, _, pts), (u, v) in zip(_gray_planes(source), chroma, strict=True))
    return _reencode(planes, out, info=video.probe(source), source=source, **codec_kw)


def _sample(run) -> dict:
    """Wall-clock fps and process CPU ms per frame of run() -> {"frames": n, ...}."""
    wall, cpu = time.perf_counter(), time.process_time()
    frames = run()["frames"]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"fps": frames / wall, "cpu_ms_per_frame": 1000 * cpu / frames, "frames": frames}


def device_rates(colorizer, width: int, height: int, model_run, repeats: int = 5, rounds: int = 3) -> dict:
    """Predict + smooth + recombine on synthetic full-resolution frames, and the
    bare network (`model_run`, a network_runner of the same size).

    The two alternate `rounds` times and each keeps its best, as apply and
    the codec floors do: one short timing on a shared CPU is noisy.
    """
    import jax

    from framecolor import apply

    b = colorizer.batch_size
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, (b, height, width), dtype=np.uint8)
    valid = np.ones(b, bool)
    kw = dict(full_range=False, matrix="bt709" if height >= 720 else "bt601", chroma_hw=(height // 2, width // 2))

    def step(state):
        p = colorizer.predict(colorizer.prepare(y, valid, full_range=False))
        return colorizer.finish(state, p, [p], **kw)

    state = colorizer.initial_state(width, height)
    started = time.perf_counter()
    jax.block_until_ready(step(state))
    compile_s = time.perf_counter() - started

    def rate(run, batches: int = repeats) -> float:
        started = time.perf_counter()
        jax.block_until_ready(run())
        return batches * b / (time.perf_counter() - started)

    def device_run():
        out = (state,)
        for _ in range(repeats):
            out = step(out[0])
        return out

    in_flight = colorizer.networks_in_flight
    samples: dict = {"device_fps": [], "model_fps": [], "model_fps_one_at_a_time": []}
    for _ in range(rounds):
        samples["device_fps"].append(rate(device_run))
        samples["model_fps"].append(rate(lambda: model_run(repeats * b * in_flight), repeats * in_flight))
        samples["model_fps_one_at_a_time"].append(rate(lambda: model_run(repeats * b, in_flight=1)))
    h, w = apply.render_shape(width, height, colorizer.render_size)
    return {**{key: max(values) for key, values in samples.items()}, "networks_in_flight": in_flight,
            "compile_s": compile_s, "render_hw": [h, w], "device_samples": samples}


def network_runner(colorizer, width: int, height: int):
    """run(frames, in_flight=None) -> {"frames": n}: the bare network on at
    least `frames` synthetic frames at the render size of a `width` x `height`
    video, as apply runs it (in_flight None: networks_in_flight batches at
    once, each from a thread of its own). Compiled here, not in a timing."""
    import jax
    import jax.numpy as jnp

    from framecolor import apply

    b = colorizer.batch_size
    h, w = apply.render_shape(width, height, colorizer.render_size)
    x = jax.device_put(jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (b, h, w, 1)), jnp.float32),
                       colorizer._batch)
    forward = jax.jit(lambda v, x: colorizer.module.apply(v, x, train=False))
    jax.block_until_ready(forward(colorizer.variables, x))

    def run(frames: int, in_flight: int | None = None) -> dict:
        in_flight = in_flight or colorizer.networks_in_flight
        batches = max(1, -(-frames // (b * in_flight)))  # from each thread

        def forwards():
            for _ in range(batches):
                out = forward(colorizer.variables, x)
            return jax.block_until_ready(out)

        with ThreadPoolExecutor(in_flight) as pool:
            for future in [pool.submit(forwards) for _ in range(in_flight)]:
                future.result()
        return {"frames": batches * b * in_flight}

    return run


def _aspect_width(height: int) -> int:
    return int(round(height * 16 / 9 / 2)) * 2


def measure(height: int = 720, seconds: float = 5.0, *, model: str | None = None, width: float = 1.0,
            size: int | None = None, render_size: int | None = None, batch_size: int = 8,
            codec: str = "libx264", crf: int | None = None, preset: str | None = None, smoothing: float | None = None,
            repeats: int = 1, networks_in_flight: int | None = None, workdir=None) -> dict:
    """Apply, transcode-only, device and model-only rates on a generated 16:9 video."""
    return measure_grid((height,), (preset,), seconds, model=model, width=width, size=size,
                        render_size=render_size, batch_size=batch_size, codec=codec, crf=crf,
                        smoothing=smoothing, repeats=repeats, networks_in_flight=networks_in_flight,
                        workdir=workdir)[0]


def measure_grid(heights, presets, seconds: float = 5.0, *, model: str | None = None, width: float = 1.0,
                 size: int | None = None, render_size: int | None = None, batch_size: int = 8,
                 codec: str = "libx264", crf: int | None = None, smoothing: float | None = None, repeats: int = 1,
                 networks_in_flight: int | None = None, workdir=None, clip=None) -> list:
    """measure() for every height x preset, in one process: one model, one video per height;
    or, with `clip`, that video in place of the generated ones."""
    import jax

    from framecolor import apply, video

    loaded = _model(model, width, size)
    runs = []
    for height in [None] if clip else heights:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tmp = Path(tmp)
            started = time.perf_counter()
            if clip:
                source = Path(clip)
                info = video.probe(source)
                frame_w, height, rate = info.width, info.height, float(info.fps)
            else:
                frame_w, rate = _aspect_width(height), FPS
                source = make_video(tmp / "in.mp4", frame_w, height, seconds)
            generate_s = time.perf_counter() - started
            for preset in presets:
                config = apply.ApplyConfig(render_size=render_size, batch_size=batch_size, codec=codec, crf=crf,
                                           preset=preset, networks_in_flight=networks_in_flight)
                if smoothing is not None:
                    config = dataclasses.replace(config, smoothing=smoothing)
                colorizer = apply.Colorizer(loaded, config)
                network = network_runner(colorizer, frame_w, height)  # compiled once, for both uses
                rates = device_rates(colorizer, frame_w, height, network)  # also compiles apply's steps for this size
                applied, networked, plain, colored = [], [], [], []
                codec_kw = dict(codec=codec, crf=crf, preset=preset, pix_fmt=config.pix_fmt)
                chroma = None
                for _ in range(repeats):
                    applied.append(_sample(lambda: apply.colorize_video(
                        colorizer, source, tmp / "out.mp4", overwrite=True, progress=False)))
                    chroma = chroma or colored_chroma(tmp / "out.mp4")  # untimed; the same every repeat
                    # The network alone on as many frames, right after: the pair meets the same moment of a noisy VM.
                    networked.append(_sample(lambda: network(applied[-1]["frames"])))
                    plain.append(_sample(lambda: transcode(source, tmp / "plain.mp4", **codec_kw)))
                    colored.append(_sample(lambda: transcode_colored(source, chroma, tmp / "again.mp4", **codec_kw)))
                best_apply, best_plain, best_colored = (
                    max(samples, key=lambda r: r["fps"]) for samples in (applied, plain, colored))
                options = video.encoder_options(codec, crf, preset)  # what the writer used
                runs.append({
                    "benchmark": "apply_throughput",
                    "device": str(jax.devices()[0]),
                    "device_count": jax.device_count(),
                    "platform": platform.node(),
                    "video": {"clip": str(clip) if clip else None, "width": frame_w, "height": height,
                              "frames": best_apply["frames"], "fps": rate},
                    "model": {"path": model, **loaded.config.to_dict()},
                    "settings": {"batch_size": colorizer.batch_size, "render_size": colorizer.render_size,
                                 "codec": codec, "crf": crf, "smoothing": config.smoothing,
                                 "preset": options.get("preset", preset), "encoder_options": options,
                                 "networks_in_flight": colorizer.networks_in_flight},
                    "apply_fps": best_apply["fps"],
                    "transcode_fps": best_plain["fps"],
                    "transcode_colored_fps": best_colored["fps"],
                    "apply_cpu_ms_per_frame": best_apply["cpu_ms_per_frame"],
                    "transcode_cpu_ms_per_frame": best_plain["cpu_ms_per_frame"],
                    "transcode_colored_cpu_ms_per_frame": best_colored["cpu_ms_per_frame"],
                    "samples": {"apply": applied, "model": networked, "transcode": plain,
                                "transcode_colored": colored},
                    # apply over the network alone, each repeat against the run right after it;
                    # and by CPU time, which a neighbour on the host's cores disturbs less.
                    "apply_over_model_paired": [a["fps"] / m["fps"] for a, m in zip(applied, networked)],
                    "apply_over_model_paired_median": statistics.median(
                        a["fps"] / m["fps"] for a, m in zip(applied, networked)),
                    "apply_over_model_by_cpu": (sum(m["cpu_ms_per_frame"] for m in networked)
                                                / sum(a["cpu_ms_per_frame"] for a in applied)),
                    **rates,
                    "generate_s": generate_s,
                })
    return runs


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _child(args) -> None:
    """--child: apply one video and print peak RSS (a fresh process, so nothing earlier counts)
    and the mean RSS of each fifth of the run, sampled every 2 s."""
    from framecolor import apply

    loaded = _model(args.model, args.width, args.size)
    colorizer = apply.Colorizer(loaded, apply.ApplyConfig(batch_size=args.batch_size, preset=args.preset[0]))
    before = _peak_rss_mb()
    samples, done = [], threading.Event()

    def sample():
        while not done.wait(2.0):
            samples.append(_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = apply.colorize_video(colorizer, args.child, Path(args.child).with_suffix(".out.mp4"),
                                  overwrite=True, progress=False)
    done.set()
    fifths = [samples[i * len(samples) // 5:(i + 1) * len(samples) // 5] for i in range(5)]
    print(json.dumps({"frames": result["frames"], "fps": result["fps"], "peak_rss_mb": _peak_rss_mb(),
                      "rss_before_apply_mb": before,
                      "mean_rss_mb_by_fifth": [round(sum(f) / len(f)) for f in fifths if f]}))


def memory(height: int = 720, minutes=(1.0, 5.0), *, model: str | None = None, width: float = 0.125,
           size: int | None = None, batch_size: int = 8, preset: str | None = "ultrafast", workdir=None,
           system_malloc: bool = False) -> dict:
    """Peak RSS of apply on videos of different lengths, each in its own process."""
    runs = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for m in minutes:
            source = make_video(Path(tmp) / f"in_{m}.mp4", _aspect_width(height), height, 60 * m)
            cmd = [sys.executable, __file__, "--child", str(source), "--width", str(width),
                   "--batch-size", str(batch_size)]
            cmd += ["--preset", preset] if preset else []
            cmd += ["--model", model] if model else []
            cmd += ["--size", str(size)] if size else []
            cmd += ["--system-malloc"] if system_malloc else []
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs.append({"minutes": m, **json.loads(done.stdout.strip().splitlines()[-1])})
            source.unlink()
    return {"benchmark": "apply_memory", "height": height, "width_px": _aspect_width(height),
            "batch_size": batch_size, "runs": runs,
            "growth_mb": runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, nargs="+", default=[720], help="one or more frame heights")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clip", help="a (gray) video to measure on instead of generated ones (--height, --seconds unused)")
    parser.add_argument("--model", help="model file (.fcm); default: a fresh model of --width")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of a fresh model")
    parser.add_argument("--size", type=int, help="training size of a fresh model (its default render size)")
    parser.add_argument("--render-size", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--crf", type=int, help="default: apply's, which keeps luma")
    parser.add_argument("--preset", nargs="+", default=[None], help="one or more x264 presets (default: apply's)")
    parser.add_argument("--smoothing", type=float)
    parser.add_argument("--networks-in-flight", type=int, help="batches in the network at once (default: apply's)")
    parser.add_argument("--repeats", type=int, default=1, help="alternate apply and transcode-only N times, keep each's best")
    parser.add_argument("--memory", action="store_true", help="peak RSS for videos of --minutes")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave malloc as it is, not as framecolor apply sets it (framecolor.allocator)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.system_malloc:
        from framecolor import allocator

        allocator.reuse_freed_memory()  # as framecolor apply runs: every rate below under it
    if args.child:
        return _child(args)
    if args.memory:
        result = memory(args.height[0], tuple(args.minutes), model=args.model, width=args.width, size=args.size,
                        batch_size=args.batch_size, preset=args.preset[0], system_malloc=args.system_malloc)
    else:
        runs = measure_grid(args.height, args.preset, args.seconds, model=args.model, width=args.width,
                            size=args.size, render_size=args.render_size, batch_size=args.batch_size,
                            codec=args.codec, crf=args.crf, smoothing=args.smoothing, repeats=args.repeats,
                            networks_in_flight=args.networks_in_flight, clip=args.clip)
        for run in runs:
            run["settings"]["reuse_freed_memory"] = not args.system_malloc
        result = runs[0] if len(runs) == 1 else {"benchmark": "apply_throughput", "runs": runs}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    main_saying_errors(main)
