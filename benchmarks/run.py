"""framecolor's throughput benchmarks in one run: JSON plus a markdown table.

    python benchmarks/run.py                       # CPU-sized preset
    python benchmarks/run.py --preset gpu --out results/gpu

Measured in the same process, so every figure is read against its baseline
from the same machine and moment:
  codec      PyAV decode fps (RGB and luma) and libx264 encode fps, through
             framecolor's writer (frame threads) and as PyAV opens it (slice threads)
  forward    model forward img/s per decoder, batch and render size (JAX),
             beside the PyTorch reference of the seed model (eager and
             torch.compile) when torch is installed
  train      train-step img/s (JAX) beside the PyTorch reference, eager
  apply      end-to-end apply fps beside decode+encode-only and model-only fps
Compile time is reported apart and excluded from every rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import apply_throughput  # noqa: E402
import torch_reference  # noqa: E402
import train_throughput  # noqa: E402

# Sizes that fit a 2-core CPU in a few minutes, and a GPU run in a few minutes.
# "order" runs what matters most first: gpu.sh is bounded by a timeout, and
# every finished section is saved before the next one starts.
PRESETS = {
    "cpu": {
        "order": ["codec", "forward", "train", "apply"],
        "heights": [360], "seconds": 2.0,
        # x264's frame threads fill a pipeline first: a 2 s clip would mostly measure that.
        "codec_seconds": 12.0,
        "forward": [("unet", 0.25, 4, 128), ("seed", 1.0, 2, 224)],
        "train": [("unet", 0.25, 4, 128), ("seed", 1.0, 2, 224)],
        "apply": {"width": 0.25, "size": 128, "batch_size": 4, "presets": ["faster"], "repeats": 1},
        "torch_compile": False, "steps": 3,
    },
    "gpu": {
        "order": ["train", "apply", "forward", "codec"],
        "heights": [720, 1080], "seconds": 16.0,
        "forward": [("seed", 1.0, 256, 224), ("unet", 0.25, 256, 224)],
        "train": [("seed", 1.0, 64, 224), ("seed", 1.0, 256, 224)],
        # What a user runs: the shipped default model at its render size.
        "apply": {"model": "framecolor/assets/default.fcm", "batch_size": 32,
                  "presets": ["faster", "medium"], "repeats": 2},
        "torch_compile": True, "steps": 20,
    },
}


def codec_rates(path, preset: str, repeats: int = 2) -> dict:
    """Decode fps as RGB and as the raw Y plane; encode fps of libx264 at `preset`.

    The writer's encode and its slice-threaded baseline alternate `repeats`
    times and each keeps its best, so neither gains from running second.
    """
    from framecolor import video

    rates = {}
    for fmt in ("rgb24", "luma"):
        started = time.perf_counter()
        planes = [f.image for f in video.read_frames(path, format=fmt)]
        rates[f"decode_{fmt}_fps"] = len(planes) / (time.perf_counter() - started)
    info = video.probe(path)
    writer_fps, sliced_fps = [], []
    for _ in range(repeats):
        writer_fps.append(_writer_encode_fps(planes, info, preset))
        sliced_fps.append(_slice_threaded_encode_fps(planes, info, preset))
    rates[f"encode_{preset}_fps"] = max(writer_fps)
    rates[f"encode_{preset}_slice_threads_fps"] = max(sliced_fps)
    return rates


def _writer_encode_fps(planes, info, preset: str) -> float:
    """libx264 through framecolor's VideoWriter, as apply encodes."""
    with tempfile.TemporaryDirectory() as tmp:
        return len(planes) / apply_throughput.encode_luma(planes, info, Path(tmp, "o.mp4"), preset=preset)


def _slice_threaded_encode_fps(planes, info, preset: str) -> float:
    """libx264 as PyAV opens it by default (slice threads): the baseline of the writer's frame threads."""
    import av

    from framecolor import video

    with tempfile.TemporaryDirectory() as tmp, av.open(str(Path(tmp, "s.mp4")), "w") as out:
        stream = out.add_stream("libx264", rate=info.fps)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        stream.options = video.encoder_options("libx264", preset=preset)  # the writer's default quality
        stream.codec_context.thread_type = "SLICE"  # PyAV 18's default for encoders, set to be sure
        chroma = np.full((info.height // 2, info.width), 128, np.uint8)  # U then V, packed as from_ndarray wants
        started = time.perf_counter()
        for y in planes:
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, chroma]), format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        return len(planes) / (time.perf_counter() - started)


def jax_forward(decoder: str, width: float, batch: int, size: int, steps: int) -> dict:
    """Forward img/s of a fresh model on a device-resident batch (what apply's model stage runs)."""
    import jax
    import jax.numpy as jnp

    from framecolor.models.colorizer import ModelConfig, build_colorizer, init_variables

    config = ModelConfig(decoder=decoder, width=width, size=size)
    module, variables = build_colorizer(config), init_variables(config, jax.random.PRNGKey(0), size)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 1)), jnp.float32)
    forward = jax.jit(lambda v, x: module.apply(v, x, train=False))
    started = time.perf_counter()
    compiled = forward.lower(variables, x).compile()
    compile_s = time.perf_counter() - started
    jax.block_until_ready(compiled(variables, x))
    started = time.perf_counter()
    for _ in range(steps):
        out = compiled(variables, x)
    jax.block_until_ready(out)
    step_s = (time.perf_counter() - started) / steps
    return {"img_per_s": batch / step_s, "step_s": step_s, "compile_s": compile_s}


def _torch(fn, **kw) -> dict:
    """A PyTorch reference figure, or why there is none (torch is an optional extra)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "torch not installed"}
    try:
        return fn(**kw)
    except Exception as exc:  # a reference that fails must not hide the JAX figures
        return {"skipped": f"{type(exc).__name__}: {exc}"}


def environment() -> dict:
    import av
    import flax
    import jax

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    devices = jax.devices()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit, "host": platform.node(),
        "python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
        "av": av.__version__, "torch": torch_version, "backend": jax.default_backend(),
        "device": devices[0].device_kind, "device_count": len(devices),
    }


def run(preset: str, only: set[str], save=lambda results: None) -> dict:
    """Every section of the preset in `only`, in the preset's order; save(results) after each row."""
    p = PRESETS[preset]
    results = {"environment": environment(), "preset": preset}
    for section in (s for s in p["order"] if s in only):
        results[section] = []
        for row in SECTIONS[section](p):
            results[section].append(row)
            save(results)
            print(f"[{section}] {json.dumps(row)[:400]}", flush=True)
    return results


def _codec_rows(p):
    with tempfile.TemporaryDirectory() as tmp:
        for height in p["heights"]:
            width = apply_throughput._aspect_width(height)
            seconds = p.get("codec_seconds", p["seconds"])
            path = apply_throughput.make_video(Path(tmp, f"{height}.mp4"), width, height, seconds)
            for enc in ("faster", "medium"):  # apply's default preset, and x264's
                yield {"height": height, **codec_rates(path, enc)}


def _forward_rows(p):
    for decoder, width, batch, size in p["forward"]:
        row = {"decoder": decoder, "width": width, "batch": batch, "size": size,
               "jax": jax_forward(decoder, width, batch, size, p["steps"])}
        if decoder == "seed" and width == 1.0:
            row["torch_eager"] = _torch(torch_reference.time_inference, batch=batch, size=size,
                                        compile=False, steps=p["steps"])
            if p["torch_compile"]:
                row["torch_compile"] = _torch(torch_reference.time_inference, batch=batch, size=size,
                                              compile=True, steps=p["steps"])
        yield row


def _train_rows(p):
    for decoder, width, batch, size in p["train"]:
        row = {"decoder": decoder, "width": width, "batch": batch, "size": size,
               "jax": train_throughput.measure(size=size, batch=batch, decoder=decoder, width=width,
                                               steps=p["steps"])}
        if decoder == "seed" and width == 1.0:
            row["torch_eager"] = _torch(torch_reference.time_training, batch=batch, size=size,
                                        compile=False, steps=p["steps"])
        yield row


def _apply_rows(p):
    settings = dict(p["apply"])
    presets = settings.pop("presets")
    for height in p["heights"]:  # one height at a time, so a timeout keeps the finished ones
        yield from apply_throughput.measure_grid((height,), presets, p["seconds"], **settings)


SECTIONS = {"codec": _codec_rows, "forward": _forward_rows, "train": _train_rows, "apply": _apply_rows}


def _rate(entry) -> str:
    return f"{entry['img_per_s']:,.1f}" if "img_per_s" in entry else entry.get("skipped", "-")


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [
        f"### {env['date']} · {env['device']} x{env['device_count']} ({env['backend']}) · commit {env['commit']}",
        "",
        f"python {env['python']}, jax {env['jax']}, flax {env['flax']}, av {env['av']}, torch {env['torch']}",
        "",
    ]
    if "codec" in results:
        lines += ["| video | decode RGB fps | decode luma fps | encode fps (preset) | encode fps, slice threads |",
                  "|---|---|---|---|---|"]
        for r in results["codec"]:
            enc = next(k for k in r if k.startswith("encode_"))
            sliced = r.get(enc.replace("_fps", "_slice_threads_fps"))
            lines.append(f"| {r['height']}p | {r['decode_rgb24_fps']:.1f} | {r['decode_luma_fps']:.1f} | "
                         f"{r[enc]:.1f} ({enc.split('_')[1]}) | {f'{sliced:.1f}' if sliced else '-'} |")
        lines.append("")
    for section, title in (("forward", "forward img/s"), ("train", "train step img/s")):
        if section not in results:
            continue
        lines += [f"| {title} | batch | size | JAX | PyTorch eager | PyTorch compile | JAX compile s |",
                  "|---|---|---|---|---|---|---|"]
        for r in results[section]:
            lines.append(
                f"| {r['decoder']} w{r['width']} | {r['batch']} | {r['size']} | {_rate(r['jax'])} | "
                f"{_rate(r['torch_eager']) if 'torch_eager' in r else '-'} | "
                f"{_rate(r['torch_compile']) if 'torch_compile' in r else '-'} | {r['jax']['compile_s']:.1f} |")
        lines.append("")
    if "apply" in results:
        lines += ["| apply | apply fps | decode+encode-only fps: gray / same colors | apply / codec: gray / colors "
                  "| model-only fps: as apply runs it / one batch at a time | device-stage fps | CPU ms/frame: apply / codec gray / codec colors |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["apply"]:
            v, m, st = r["video"], r["model"], r["settings"]
            lines.append(f"| {v['width']}x{v['height']} {st['preset']}, {m['decoder']} w{m['width']} render "
                         f"{st['render_size']}, batch {st['batch_size']} | "
                         f"{r['apply_fps']:.1f} | {r['transcode_fps']:.1f} / {r['transcode_colored_fps']:.1f} | "
                         f"{r['apply_fps'] / r['transcode_fps']:.2f} / {r['apply_fps'] / r['transcode_colored_fps']:.2f} | "
                         f"{r['model_fps']:.1f} / {r.get('model_fps_one_at_a_time', r['model_fps']):.1f} | "
                         f"{r['device_fps']:.1f} | {r['apply_cpu_ms_per_frame']:.1f} / "
                         f"{r['transcode_cpu_ms_per_frame']:.1f} / {r['transcode_colored_cpu_ms_per_frame']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--only", nargs="+", choices=["codec", "forward", "train", "apply"],
                        default=["codec", "forward", "train", "apply"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest"),
                        help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from framecolor import allocator

    allocator.reuse_freed_memory()  # as framecolor apply runs (the train step: no change, RESULTS.md)

    def save(results):
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
        args.out.with_suffix(".md").write_text(markdown(results))

    results = run(args.preset, set(args.only), save)
    save(results)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    sys.exit(main_saying_errors(main))
