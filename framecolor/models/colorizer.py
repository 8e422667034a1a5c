"""The colorizer: an InceptionV3 encoder and a decoder that paints the luminance.

Input: normalized lightness ``l_norm`` (N, H, W, 1) in [-1, 1] (color.normalize_l).
Output (float32): ab_norm (N, H, W, 2) in [-1, 1] (mode ``lab``, tanh) or RGB
(N, H, W, 3) in [0, 1] (mode ``rgb``, sigmoid).

Decoders:

- ``unet`` (default): the backbone sees the lightness as the gray photo it
  stands for (3 equal channels in Keras's [-1, 1] scaling, as in ImageNet
  training), and the decoder climbs back from stride 32 to full resolution,
  fusing the backbone's features at strides 16, 8, 4 and 2 and finally the
  input lightness itself. Features are resized to each skip's size, so any
  input of at least 75 px works even where valid paddings make sizes uneven.
- ``seed``: the seed notebook's model, layer for layer as its parameter counts
  pin it down (24,441,256 in lab mode, 24,441,313 in rgb mode at 224 px):
  a 3x3 Conv(1->3)+ReLU in front of the backbone (which throws away the
  negative half of the normalized lightness: kept only for comparison), then
  six Conv3x3(+bias)-BN-ReLU-upsample stages with 128, 128, 64, 64, 32, 2
  filters; in lab mode the last stage's 2 channels go through tanh, in rgb
  mode a Conv3x3(2->3)+sigmoid follows (the 57 extra parameters). Its first
  upsampling goes from the backbone's 5x5 to H/32 (7 at 224 px) and the other
  five double, so 224 px lands on 224x224 exactly (the Keras notebook's six
  plain x2 UpSampling2D could not: 5 * 2**6 = 320).

Mixed precision: parameters are float32; the compute dtype is bfloat16 on
accelerators and float32 on the CPU when ``compute_dtype="auto"``; outputs
are always float32.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from framecolor import abbins, color
from framecolor.errors import FramecolorError, InputError, ModelFileError
from framecolor.models.inception import MIN_SIZE, InceptionV3, channels

# The largest size, for training crops and renders: 4K's short side. Far past
# any use (InceptionV3 learned at 299), it keeps a typo (--size 100000) from
# reaching a resize or an allocation that ends in a C++ abort, not an error.
MAX_SIZE = 2160

BACKBONE = "backbone"  # the backbone's submodule name: params[BACKBONE], batch_stats[BACKBONE]
BACKBONES = ("inception_v3",)
DECODERS = ("unet", "seed")
MODES = {"lab": 2, "rgb": 3}  # output channels
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
HEADS = ("regress", "bins")  # ab by regression, or by classification over ab bins (framecolor.abbins)

# The seed's decoder: filters of its six stages (the last one is not scaled by width).
SEED_FILTERS = (128, 128, 64, 64, 32)
# The U-Net decoder: (backbone endpoint, filters, 3x3 convs) from coarse to fine.
UNET_STAGES = (("mixed7", 256, 2), ("mixed2", 128, 2), ("stem_s4", 64, 2), ("stem_s2", 32, 1))
UNET_TOP, UNET_FULL = 256, 16


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "inception_v3"
    width: float = 1.0
    decoder: str = "unet"
    mode: str = "lab"
    size: int = 224  # the square training size; the model runs at any size >= 75
    compute_dtype: str = "auto"
    head: str = "regress"

    def __post_init__(self):
        def one_of(field, allowed):
            value = getattr(self, field)
            if value not in allowed:
                raise FramecolorError(f"model {field} must be one of {', '.join(allowed)}, not {value!r}")

        one_of("backbone", BACKBONES)
        one_of("decoder", DECODERS)
        one_of("mode", tuple(MODES))
        one_of("compute_dtype", COMPUTE_DTYPES)
        one_of("head", HEADS)
        if self.head == "bins" and (self.mode != "lab" or self.decoder != "unet"):
            raise FramecolorError("the bins head predicts Lab ab with the unet decoder (mode lab, decoder unet)")
        if not isinstance(self.width, (int, float)) or not 0 < self.width <= 4:
            raise FramecolorError(f"model width must be a number in (0, 4], not {self.width!r}")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise FramecolorError(f"model size must be a whole number of pixels in [{MIN_SIZE}, {MAX_SIZE}], "
                                  f"not {self.size!r}")
        object.__setattr__(self, "width", float(self.width))

    @property
    def out_channels(self) -> int:
        return abbins.num_bins() if self.head == "bins" else MODES[self.mode]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "ModelConfig":
        """The config a model file stores; fields it lacks take today's defaults."""
        if not isinstance(d, dict):
            raise ModelFileError(f"a model config is a JSON object, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelFileError(
                f"model config has unknown fields {', '.join(unknown)} (made by a newer framecolor?)"
            )
        try:
            return cls(**d)
        except FramecolorError as exc:
            raise ModelFileError(f"bad model config: {exc}") from None


TINY_MODEL = ModelConfig(width=0.125, size=80)


def resolve_dtype(compute_dtype: str):
    """The dtype the network computes in: "auto" is bfloat16 on GPU/TPU, float32 on CPU."""
    if compute_dtype == "auto":
        return jnp.bfloat16 if jax.default_backend() != "cpu" else jnp.float32
    return jnp.dtype(compute_dtype)


def build_colorizer(config: ModelConfig) -> "Colorizer":
    """The Flax module; `module.apply(variables, l_norm, train=False)`."""
    return Colorizer(config=config, dtype=resolve_dtype(config.compute_dtype))


def init_variables(config: ModelConfig, rng, size: int | None = None) -> dict:
    """Fresh {"params", "batch_stats"} for `config`, traced at `size` (default config.size).

    Works eagerly and under jit/eval_shape. The same `rng` gives the same values.
    """
    shapes = variable_shapes(config, size or config.size)
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)
    paths, leaves = zip(*jax.tree_util.tree_flatten_with_path(shapes)[0])
    names = ["/".join(str(k.key) for k in path) for path in paths]
    specs = tuple((name, leaf.shape) for name, leaf in zip(names, leaves))
    values = jax.pure_callback(functools.partial(_host_init, specs), list(leaves), rng)
    return jax.tree.unflatten(jax.tree.structure(shapes), values)


@functools.lru_cache(maxsize=16)
def variable_shapes(config: ModelConfig, size: int) -> dict:
    """{"params", "batch_stats"} as ShapeDtypeStructs, without computing anything."""
    module = build_colorizer(config)
    x = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    variables = jax.eval_shape(functools.partial(module.init, train=False), jax.random.PRNGKey(0), x)
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}


def count_params(config: ModelConfig, size: int | None = None) -> int:
    """Number of variables, batch statistics included (as Keras counts), without computing any."""
    shapes = variable_shapes(config, size or config.size)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


# Flax's default kernel init (LeCun normal, truncated at 2 sigma), drawn with
# NumPy on the host. Generating ~200 arrays with jax.random compiles one XLA
# kernel per array: 30 s on a 2-core CPU for the tiny test model; this takes
# milliseconds, and a single pure_callback keeps it usable inside jit.
_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def _host_init(specs, seed):
    gen = np.random.default_rng(np.asarray(seed, np.uint32).ravel().tolist())
    out = []
    for name, shape in specs:
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "kernel":
            z = gen.standard_normal(shape, dtype=np.float32)
            outside = np.abs(z) > 2
            while outside.any():
                z[outside] = gen.standard_normal(int(outside.sum()), dtype=np.float32)
                outside = np.abs(z) > 2
            fan_in = math.prod(shape[:-1])
            out.append(z * np.float32(1 / math.sqrt(fan_in) / _TRUNCATED_STD))
        elif leaf in ("scale", "var"):
            out.append(np.ones(shape, np.float32))
        elif leaf in ("bias", "mean"):
            out.append(np.zeros(shape, np.float32))
        else:
            raise AssertionError(f"no initializer for {name}")
    return out


def _resize(x, hw, method):
    return jax.image.resize(x, (x.shape[0], *hw, x.shape[-1]), method=method)


def _backbone_input(l_norm):
    """Normalized L -> the gray sRGB picture it stands for, as 3 channels in [-1, 1].

    InceptionV3 learned on RGB scaled x / 127.5 - 1; a gray photo has R = G = B
    = the gamma-encoded gray value, not the lightness L, so convert back first.
    """
    lab = jnp.concatenate([color.denormalize_l(l_norm), jnp.zeros_like(l_norm), jnp.zeros_like(l_norm)], -1)
    gray = jnp.mean(color.lab_to_rgb(lab), axis=-1, keepdims=True)
    return jnp.tile(gray * 2.0 - 1.0, (1, 1, 1, 3))


class Colorizer(nn.Module):
    config: ModelConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, l_norm, train: bool = False, logits: bool = False, temperature=abbins.TEMPERATURE,
                 frozen_backbone: bool = False):
        """ab_norm or RGB at the input's size; with `logits` (bins head) the raw
        class scores at stride 4, which training scores with abbins.loss.
        `temperature` is the bins head's readout: lower is more vivid, higher
        is closer to the mean color (safer); other heads ignore it.
        `frozen_backbone` runs the backbone on its stored BatchNorm statistics
        even in training: a backbone held still gives the decoder the features
        inference will (as Keras runs a BatchNormalization that is not trainable);
        on the batch's statistics they differ by half their size at the stem."""
        cfg = self.config
        if l_norm.ndim != 4 or l_norm.shape[-1] != 1:
            raise InputError(f"the colorizer takes lightness of shape (N, H, W, 1), not {tuple(l_norm.shape)}")
        l_norm = jnp.asarray(l_norm, jnp.float32)
        backbone = InceptionV3(width=cfg.width, dtype=self.dtype, name=BACKBONE)
        backbone_train = train and not frozen_backbone
        if cfg.decoder == "seed":
            x = nn.Conv(3, (3, 3), padding="SAME", dtype=self.dtype, param_dtype=jnp.float32, name="front")(l_norm)
            features = backbone(nn.relu(x), backbone_train)
            out = SeedDecoder(cfg.width, cfg.mode, self.dtype, name="decoder")(
                features["mixed10"], l_norm.shape[1:3], train
            )
        else:
            features = backbone(_backbone_input(l_norm), backbone_train)
            out = UNetDecoder(cfg.width, cfg.out_channels, self.dtype, bins=cfg.head == "bins", name="decoder")(
                features, l_norm, train
            )
        out = out.astype(jnp.float32)
        if cfg.head == "bins":
            if logits:
                return out
            ab = abbins.annealed_mean(out, jnp.asarray(abbins.bin_centers()), temperature)
            # Chroma is smooth: predicting it at stride 4 and upsampling loses little (as in the paper).
            return _resize(color.normalize_ab(ab), l_norm.shape[1:3], "bilinear")
        return jnp.tanh(out) if cfg.mode == "lab" else nn.sigmoid(out)


class _ConvBN(nn.Module):
    """Conv -> BatchNorm (-> ReLU), in the decoder's compute dtype."""

    filters: int
    kernel: int = 3
    use_bias: bool = False
    relu: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(self.filters, (self.kernel, self.kernel), padding="SAME", use_bias=self.use_bias,
                    dtype=self.dtype, param_dtype=jnp.float32, name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, use_fast_variance=False,
                         dtype=self.dtype, param_dtype=jnp.float32, name="bn")(x)
        return nn.relu(x) if self.relu else x


class SeedDecoder(nn.Module):
    """Six Conv-BN-ReLU-upsample stages from stride 32 to the input size (logits out)."""

    width: float
    mode: str
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, hw, train: bool):
        h, w = hw
        filters = [channels(f, self.width) for f in SEED_FILTERS] + [2]
        for k, f in enumerate(filters, start=1):
            last = k == len(filters)
            # Keras-style "same" conv with bias, BN (gamma and beta), ReLU; the
            # last stage's activation is the head's business.
            x = _ConvBN(f, 3, use_bias=True, relu=not last or self.mode == "rgb", dtype=self.dtype,
                        name=f"stage{k}")(x, train)
            scale = 2 ** (len(filters) - k)
            target = (h, w) if last else (math.ceil(h / scale), math.ceil(w / scale))
            x = _resize(x, target, "nearest")  # UpSampling2D's nearest neighbour
        if self.mode == "rgb":
            x = nn.Conv(3, (3, 3), padding="SAME", dtype=self.dtype, param_dtype=jnp.float32, name="head")(x)
        return x


class UNetDecoder(nn.Module):
    """Stride 32 -> full resolution, fusing backbone skips and the input lightness (logits out)."""

    width: float
    out_channels: int
    dtype: Any = jnp.float32
    bins: bool = False  # stop at stride 4 with class logits: a full-resolution Q-way head costs more than the rest

    @nn.compact
    def __call__(self, features, l_norm, train: bool):
        def ch(filters):
            return channels(filters, self.width)

        x = _ConvBN(ch(UNET_TOP), 1, dtype=self.dtype, name="top")(features["mixed10"], train)
        for name, filters, convs in UNET_STAGES:
            skip = features[name]
            x = _resize(x, skip.shape[1:3], "bilinear")
            skip = _ConvBN(ch(filters), 1, dtype=self.dtype, name=f"{name}_skip")(skip, train)
            x = jnp.concatenate([x, skip], axis=-1)
            for i in range(convs):
                x = _ConvBN(ch(filters), 3, dtype=self.dtype, name=f"{name}_fuse{i}")(x, train)
            if self.bins and name == "stem_s4":
                return nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, param_dtype=jnp.float32,
                               name="bins_head")(x)
        x = _resize(x, l_norm.shape[1:3], "bilinear")
        # The lightness itself at full resolution: edges the stride-2 features blur.
        x = jnp.concatenate([x, l_norm.astype(self.dtype)], axis=-1)
        x = _ConvBN(ch(UNET_FULL), 3, dtype=self.dtype, name="full")(x, train)
        return nn.Conv(self.out_channels, (3, 3), padding="SAME", dtype=self.dtype, param_dtype=jnp.float32,
                       name="head")(x)
