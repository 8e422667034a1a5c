"""Images per second of framecolor's jitted train step on the current device(s).

    python benchmarks/train_throughput.py --size 224 --batch 32 --decoder unet --width 1.0 --json out.json

What is timed is exactly what `framecolor train` runs per step: a uint8 batch
already on the device (random crop + flip, RGB -> Lab, model forward and
backward, loss, clipped Adam), data-parallel over all local devices. Decoding
is not timed (it happens once, before training, and is cached). Compilation is
done ahead of time and reported apart as compile_s; a few warm-up steps follow
before the clock starts, and the clock stops only after the device is done.

`measure(...)` returns the same dict for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def measure(
    size: int = 224,
    batch: int = 16,
    decoder: str = "unet",
    width: float = 1.0,
    mode: str = "lab",
    steps: int = 10,
    warmup: int = 2,
    loss: str = "mse",
) -> dict:
    """Train-step throughput: {"img_per_s", "step_s", "compile_s", ...}."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from framecolor import dataset, train
    from framecolor.models.colorizer import count_params, resolve_dtype

    config = train.TrainConfig(decoder=decoder, width=width, mode=mode, size=size, batch_size=batch, loss=loss)
    n_dev = jax.device_count()
    if batch % n_dev:
        raise SystemExit(f"--batch {batch} must be a multiple of the {n_dev} devices")
    model_config = config.model_config()
    mesh = train.make_mesh()
    variables = train.fresh_variables(model_config, 0, size)
    state = train.init_state(variables, lr=config.lr, clip_norm=config.clip_norm, seed=0, mesh=mesh)
    # No freeze, as `framecolor train` without --freeze-backbone-epochs: one Adam, one compiled step.
    train_step, _ = train.compiled_steps(model_config, config.clip_norm, size, loss, mesh, frozenset())

    side = dataset.stored_side(size)
    frames = np.random.default_rng(0).integers(0, 256, (batch, side, side, 3), dtype=np.uint8)
    data = jax.device_put(frames, NamedSharding(mesh, P("data")))

    start = time.perf_counter()
    compiled = train_step.lower(state, data, False).compile()
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    first_step_s = time.perf_counter() - start
    for _ in range(warmup):
        state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, data)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - start) / steps
    loss_value = float(metrics["loss"])

    devices = jax.devices()
    return {
        "img_per_s": batch / step_s,
        "step_s": step_s,
        "compile_s": compile_s,
        "first_step_s": first_step_s,
        "loss": loss_value,
        "batch": batch,
        "size": size,
        "decoder": decoder,
        "width": width,
        "mode": mode,
        "params": count_params(model_config, size=size),
        "compute_dtype": str(np.dtype(resolve_dtype(model_config.compute_dtype))),
        "backend": jax.default_backend(),
        "devices": len(devices),
        "device": devices[0].device_kind,
        "jax": jax.__version__,
    }


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--decoder", default="unet", choices=("unet", "seed"))
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--mode", default="lab", choices=("lab", "rgb"))
    parser.add_argument("--loss", default="mse", choices=("mse", "huber", "l1"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    result = measure(
        size=args.size,
        batch=args.batch,
        decoder=args.decoder,
        width=args.width,
        mode=args.mode,
        steps=args.steps,
        warmup=args.warmup,
        loss=args.loss,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    sys.exit(main_saying_errors(main))
