"""PyTorch reference of the seed colorizer, to set framecolor's JAX throughput beside.

    python benchmarks/torch_reference.py --batch 16 --size 224 --steps 5 --json out.json

The model is framecolor's seed colorizer (ModelConfig(decoder="seed", mode="lab")):
a 3x3 Conv(1->3) + ReLU feeding a Keras-faithful InceptionV3 without its top
(the 94 convolutions of keras.applications.InceptionV3(include_top=False) with
the same kernel shapes, strides and paddings), then six Conv-BN-ReLU-Upsample
stages (128, 128, 64, 64, 32, 2 filters) from the 5x5x2048 features to the input
size, the last one through tanh to the two Lab ab channels. Weights are random:
only speed is measured.

What is timed is the model alone on a batch already on the device (no decoding,
no color conversion), so compare it with a JAX run that also times only its
jitted step. CUDA runs under bf16 autocast with channels_last tensors (what makes
tensor cores fast in PyTorch); the CPU runs in float32. Warm-up steps are
excluded, every clock read follows a device synchronize, and the time of the
first torch.compile call is reported apart as compile_s.

torch is not a framecolor dependency: this module imports without it, and the
command prints {"skipped": "torch not installed"} and exits 0 when it is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

# The seed decoder as framecolor.models.colorizer (decoder="seed", mode="lab")
# builds it: six stages of Conv3x3 (with bias) -> BatchNorm -> ReLU -> nearest
# upsample; the last stage has 2 filters, no ReLU, and feeds the tanh.
DECODER_CHANNELS = (128, 128, 64, 64, 32, 2)
BN_EPS = 1e-3  # Keras BatchNormalization's default, which InceptionV3 keeps.


def _stage_sizes(size: int, stages: int) -> list[int]:
    """Spatial size after each decoder stage: ceil(size/32), ceil(size/16), ..., size.

    InceptionV3 leaves 5x5 at 224 (floor divisions of its valid convs), so
    the first stage goes 5 -> 7 and the others double, ending at the input size.
    """
    return [-(-size // 2 ** (stages - 1 - i)) for i in range(stages)]


@functools.cache
def _torch_modules():
    """Build the nn.Module classes on first use, so importing needs no torch."""
    import torch
    from torch import nn

    class ConvBN(nn.Sequential):
        """Keras conv2d_bn: conv without bias, BatchNorm(eps=1e-3), ReLU."""

        def __init__(self, cin, cout, kernel, stride=1, padding="same"):
            kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
            pad = (kernel[0] // 2, kernel[1] // 2) if padding == "same" else 0
            super().__init__(
                nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False),
                # Keras uses scale=False (no gamma); affine keeps the usual fused kernel.
                nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01),
                nn.ReLU(inplace=True),
            )

    class Branches(nn.Module):
        """Runs each branch on the same input and concatenates the channels."""

        def __init__(self, *branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    def seq(*layers):
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers)

    def avg_pool_same():
        # Keras "same" average pooling does not count the padding.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def block_a(cin, pool_proj):  # mixed0..2 (35x35 at 299)
        return Branches(
            ConvBN(cin, 64, 1),
            seq(ConvBN(cin, 48, 1), ConvBN(48, 64, 5)),
            seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3)),
            seq(avg_pool_same(), ConvBN(cin, pool_proj, 1)),
        )

    def reduction_a(cin):  # mixed3
        return Branches(
            ConvBN(cin, 384, 3, stride=2, padding="valid"),
            seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3, stride=2, padding="valid")),
            nn.MaxPool2d(3, stride=2),
        )

    def block_b(c7):  # mixed4..7 (17x17 at 299)
        return Branches(
            ConvBN(768, 192, 1),
            seq(ConvBN(768, c7, 1), ConvBN(c7, c7, (1, 7)), ConvBN(c7, 192, (7, 1))),
            seq(
                ConvBN(768, c7, 1),
                ConvBN(c7, c7, (7, 1)),
                ConvBN(c7, c7, (1, 7)),
                ConvBN(c7, c7, (7, 1)),
                ConvBN(c7, 192, (1, 7)),
            ),
            seq(avg_pool_same(), ConvBN(768, 192, 1)),
        )

    def reduction_b():  # mixed8
        return Branches(
            seq(ConvBN(768, 192, 1), ConvBN(192, 320, 3, stride=2, padding="valid")),
            seq(
                ConvBN(768, 192, 1),
                ConvBN(192, 192, (1, 7)),
                ConvBN(192, 192, (7, 1)),
                ConvBN(192, 192, 3, stride=2, padding="valid"),
            ),
            nn.MaxPool2d(3, stride=2),
        )

    def block_c(cin):  # mixed9, mixed10 (8x8 at 299)
        return Branches(
            ConvBN(cin, 320, 1),
            seq(ConvBN(cin, 384, 1), Branches(ConvBN(384, 384, (1, 3)), ConvBN(384, 384, (3, 1)))),
            seq(
                ConvBN(cin, 448, 1),
                ConvBN(448, 384, 3),
                Branches(ConvBN(384, 384, (1, 3)), ConvBN(384, 384, (3, 1))),
            ),
            seq(avg_pool_same(), ConvBN(cin, 192, 1)),
        )

    def inception_v3():
        """keras.applications.InceptionV3(include_top=False): RGB in, 2048 channels out."""
        return nn.Sequential(
            ConvBN(3, 32, 3, stride=2, padding="valid"),
            ConvBN(32, 32, 3, padding="valid"),
            ConvBN(32, 64, 3),
            nn.MaxPool2d(3, stride=2),
            ConvBN(64, 80, 1, padding="valid"),
            ConvBN(80, 192, 3, padding="valid"),
            nn.MaxPool2d(3, stride=2),
            block_a(192, 32),  # mixed0 -> 256
            block_a(256, 64),  # mixed1 -> 288
            block_a(288, 64),  # mixed2 -> 288
            reduction_a(288),  # mixed3 -> 768
            block_b(128),  # mixed4
            block_b(160),  # mixed5
            block_b(160),  # mixed6
            block_b(192),  # mixed7
            reduction_b(),  # mixed8 -> 1280
            block_c(1280),  # mixed9 -> 2048
            block_c(2048),  # mixed10 -> 2048
        )

    def seed_colorizer(size: int):
        """L (N, 1, size, size) -> ab (N, 2, size, size) in [-1, 1]."""
        layers = [nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(inplace=True), inception_v3()]
        cin = 2048
        sizes = _stage_sizes(size, len(DECODER_CHANNELS))
        for i, (cout, out_size) in enumerate(zip(DECODER_CHANNELS, sizes)):
            last = i == len(DECODER_CHANNELS) - 1
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01),
                nn.Tanh() if last else nn.ReLU(inplace=True),
                nn.Upsample(size=(out_size, out_size), mode="nearest"),
            ]
            cin = cout
        return nn.Sequential(*layers)

    return seed_colorizer, inception_v3


def build_seed_model(size: int = 224):
    """The seed colorizer (decoder="seed", mode="lab") as a torch.nn.Module, random weights.

    Its conv and BatchNorm shapes are those of framecolor's Flax model. The
    count differs only in bookkeeping: torch gives each BatchNorm a scale the
    Keras backbone lacks and keeps the batch statistics out of parameters().
    """
    seed_colorizer, _ = _torch_modules()
    return seed_colorizer(size)


def build_inception_v3():
    """Keras-faithful InceptionV3 without top, as a torch.nn.Module."""
    _, inception_v3 = _torch_modules()
    return inception_v3()


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _dtype(dtype: str, device):
    """'auto' is bf16 on CUDA (autocast) and float32 elsewhere."""
    import torch

    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(batch, size, dtype, compile, channels_last, device, train):
    import torch

    device = _device(device)
    cdtype = _dtype(dtype, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv kernels once per shape
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_seed_model(size).to(device, memory_format=fmt).train(train)
    x = torch.rand(batch, 1, size, size, device=device).mul_(2).sub_(1)
    x = x.contiguous(memory_format=fmt)
    runner = torch.compile(model) if compile else model
    autocast = functools.partial(
        torch.autocast, device_type=device.type, dtype=cdtype, enabled=cdtype != torch.float32
    )
    return device, cdtype, model, runner, x, autocast


def _timed(step, device, steps: int, warmup: int, compile: bool) -> dict:
    """compile_s: the first call (tracing + compiling for torch.compile); then
    warm-up calls (autotuning, allocator growth) and only then the timed steps."""
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"step_s": elapsed / steps, "compile_s": first_s if compile else None, "first_step_s": first_s}


def time_inference(
    batch: int = 16,
    size: int = 224,
    dtype: str = "auto",
    compile: bool = True,
    channels_last: bool = True,
    device: str = "auto",
    steps: int = 20,
    warmup: int = 3,
) -> dict:
    """Forward passes per second of the seed model (eval mode, no autograd)."""
    import torch

    device, cdtype, _, runner, x, autocast = _setup(batch, size, dtype, compile, channels_last, device, train=False)

    @torch.inference_mode()
    def step():
        with autocast():
            return runner(x)

    result = _timed(step, device, steps, warmup, compile)
    return {
        "img_per_s": batch / result["step_s"],
        **result,
        **_context(batch, size, cdtype, compile, channels_last, device),
    }


def time_training(
    batch: int = 16,
    size: int = 224,
    dtype: str = "auto",
    compile: bool = True,
    channels_last: bool = True,
    device: str = "auto",
    steps: int = 20,
    warmup: int = 3,
    lr: float = 1e-3,
) -> dict:
    """Training steps per second: forward, MSE on ab (float32), backward, Adam."""
    import torch

    device, cdtype, model, runner, x, autocast = _setup(batch, size, dtype, compile, channels_last, device, train=True)
    target = torch.rand(batch, DECODER_CHANNELS[-1], size, size, device=device).mul_(2).sub_(1)
    # The fused CUDA Adam is one kernel per step, as optax's update is under jit.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type == "cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            prediction = runner(x)
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        loss.backward()
        optimizer.step()
        return loss

    result = _timed(step, device, steps, warmup, compile)
    return {
        "img_per_s": batch / result["step_s"],
        **result,
        **_context(batch, size, cdtype, compile, channels_last, device),
    }


def _context(batch, size, cdtype, compile, channels_last, device) -> dict:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "batch": batch,
        "size": size,
        "dtype": str(cdtype).removeprefix("torch."),
        "compile": compile,
        "channels_last": channels_last,
        "device": name,
    }


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call")
    parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-compile", action="store_true", help="only eager (torch.compile is slow on a CPU)")
    parser.add_argument("--no-eager", action="store_true", help="only torch.compile")
    parser.add_argument("--no-train", action="store_true", help="inference only")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def _emit(result: dict, path: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
        path.write_text(text + "\n")


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        import torch
    except ImportError:
        print("torch not installed", file=sys.stderr)
        _emit({"skipped": "torch not installed"}, args.json)
        return 0

    modes = [m for m, off in (("eager", args.no_eager), ("compiled", args.no_compile)) if not off]
    common = dict(
        batch=args.batch,
        size=args.size,
        dtype=args.dtype,
        channels_last=not args.no_channels_last,
        device=args.device,
        steps=args.steps,
        warmup=args.warmup,
    )
    result = {
        "torch": torch.__version__,
        "params": count_params(build_seed_model(args.size)),
        "inference": {},
        "training": {},
    }
    for mode in modes:
        result["inference"][mode] = time_inference(compile=mode == "compiled", **common)
        if not args.no_train:
            result["training"][mode] = time_training(compile=mode == "compiled", **common)
    _emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
