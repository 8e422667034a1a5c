"""A trained model as apply runs it: its settings (ApplyConfig), the render
size, and the jitted steps around the network on all local devices.

On the device, per batch: Y code values -> gray, resized to the render size
-> L -> model -> ab; ab smoothed over time (framecolor.smoothing, looking
ahead a number of frames set by the strength, over the batches queued after
it); ab resized to the output's chroma size and joined with the L
of the input's own luma there (the mean of each 2x2 block for 4:2:0) -> RGB
-> Cb/Cr. The encoder writes the *input's* Y plane untouched with the new
chroma, so the picture's luminance and detail are the original's; only
color is added. A video stored sideways (a display matrix, as phones write
it) is turned upright at the render size for the network and its color
turned back.

Images take the same steps without the time axis: L of the image is kept,
ab is predicted, Lab -> RGB. The streaming of frames through these steps is
framecolor.apply's.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import operator
import os
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framecolor import color, resize, smoothing, video
from framecolor.errors import InputError, ModelFileError
from framecolor.modelfile import READOUT_RANGES
from framecolor.models.colorizer import MAX_SIZE


# InceptionV3's smallest input (as Keras allows): smaller renders fail in the backbone.
MIN_RENDER_SIZE = 75
# Formats write_yuv can fill (any other would re-derive luma from RGB); the
# 10-bit ones keep a deeper source's luma.
PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")


@dataclass(frozen=True)
class ApplyConfig:
    """How to colorize; the CLI maps its options onto this with dataclasses.replace."""

    render_size: int | None = None  # short side the model sees; None: the model's training size
    batch_size: int = 8  # frames per forward (rounded up to a multiple of the device count)
    saturation: float | None = None  # scales the predicted ab; None: the model's calibrated gain (else 1.0)
    temperature: float = 0.38  # bins-head readout: lower is more vivid, higher safer (abbins.TEMPERATURE)
    smoothing: float = 0.6  # temporal smoothing strength in [0, 1); 0 turns it off
    codec: str | None = None  # None: libx264, or the output container's own encoder where it cannot hold H.264
    crf: int | None = None  # None: keep the input's luma (video.encoder_options)
    preset: str | None = None  # None: the encoder mode's own preset
    pix_fmt: str | None = None  # None: yuv420p, or the encoder's nearest (video.default_pix_fmt)
    queue_size: int = 2  # batches waiting between the threads
    networks_in_flight: int | None = None  # batches in the network at once; None: 2 on a CPU backend, else 1

    @property
    def output_pix_fmt(self) -> str:
        """The pixel format asked for, or the one the encoder gets where none is."""
        return self.pix_fmt or video.default_pix_fmt(self.codec or video.DEFAULT_ENCODER)

    @property
    def ten_bit(self) -> bool:
        """Does the output's pixel format hold 10-bit luma (a deeper source's, kept)?"""
        return self.output_pix_fmt.endswith("10le")

    def validate(self, output=None) -> "ApplyConfig":
        """This config, or InputError or OutputError for a setting that would
        fail: the encoder's as check_encoding(`output`) checks them."""
        self._check_settings()
        self.check_encoding(output)
        return self

    def check_encoding(self, output=None) -> None:
        """OutputError now, before any work, where the encoder will not take
        --crf, --preset and --pix-fmt: --codec's, or with none the one the
        type of `output`, the one video to be written, gets (VP9 for a .webm:
        video.containers.output_encoder). None stands for a batch's outputs,
        which all hold H.264 (a .webm's is named .mkv): DEFAULT_ENCODER."""
        encoder = self.codec or (video.DEFAULT_ENCODER if output is None else video.containers.output_encoder(output))
        video.check_encoder(encoder, self.crf, self.preset, self.pix_fmt or video.default_pix_fmt(encoder))

    def _check_settings(self) -> None:
        """InputError for a setting out of its range (all but the encoder's)."""
        if self.render_size is not None and not MIN_RENDER_SIZE <= self.render_size <= MAX_SIZE:
            raise InputError(f"render size must be in [{MIN_RENDER_SIZE}, {MAX_SIZE}], got {self.render_size}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.smoothing < 1.0:
            raise InputError(f"smoothing strength must be in [0, 1), got {self.smoothing}")
        if not 0.0 < self.temperature <= 2.0:
            raise InputError(f"temperature must be in (0, 2], got {self.temperature}")
        low, high = READOUT_RANGES["saturation"]  # a model file's default saturation is held to it too
        if self.saturation is not None and not low <= self.saturation <= high:
            raise InputError(f"saturation must be in [{low:g}, {high:g}], got {self.saturation}")
        if self.pix_fmt is not None and self.pix_fmt not in PIX_FMTS:
            raise InputError(f"pixel format must be one of {', '.join(PIX_FMTS)}, got {self.pix_fmt!r}")
        if self.queue_size < 1:
            raise InputError(f"queue size must be at least 1, got {self.queue_size}")
        if self.networks_in_flight is not None and self.networks_in_flight < 1:
            raise InputError(f"networks in flight must be at least 1, got {self.networks_in_flight}")


# ---------------------------------------------------------------------------
# The model


def load(model_path=None, *, temperature=None):
    """The model file at `model_path`, or the shipped default model.

    Raises ModelFileError when there is none, or the file is not a lab/rgb
    colorizer; InputError for a readout `temperature` given for a model
    that has none (a regress head predicts ab itself: the option was
    accepted and ignored without a word).
    """
    from framecolor import modelfile

    if model_path is None:
        model_path = modelfile.default_model_path()
        if model_path is None:
            raise ModelFileError("no default model shipped; pass --model")
    model = modelfile.load_model(model_path)
    if model.config.mode not in ("lab", "rgb"):
        raise ModelFileError(f"{model_path}: model mode {model.config.mode!r} is not 'lab' or 'rgb'")
    if temperature is not None and model.config.head != "bins":
        raise InputError(f"--temperature is for bins-head models: {model_path} predicts ab directly "
                         "(--saturation scales its color)")
    return model


# A still image's render long side is a multiple of this. Photos come in many
# sizes (the 1000-photo corpus: 393), and the network compiles once per render
# shape (2.2 s for the shipped model on this CPU, against 0.02 s to run), so
# photos of about the same aspect share one compile; the render is stretched
# by at most half a step (under 6% at 224 x 288) and resized back exactly.
IMAGE_RENDER_STEP = 32
# The full-size steps around the network (L, and L with the predicted ab back
# to RGB) compile once per size too (0.4 s here, against a few ms to run). A
# photo is placed on a canvas whose sides are rounded up to one of this many
# sizes per octave, so photos of nearby sizes share one compile (the corpus:
# 393 sizes, 91 canvases, 13% more pixels in the light steps).
IMAGE_CANVAS_STEPS_PER_OCTAVE = 4


def canvas_side(n: int, per_octave: int = IMAGE_CANVAS_STEPS_PER_OCTAVE) -> int:
    """`n` rounded up to a multiple of 1/`per_octave` of the octave below it (at least 16)."""
    step = max(16, (1 << (max(n, 2) - 1).bit_length() - 1) // per_octave)
    return -(-n // step) * step


# A render covers at most as many pixels as a frame this many times as wide
# as it is high. Beyond it the short side gives way (a 1280x32 strip at
# render size 224 would otherwise be rendered 224x8960: 18 s and 1.8 GB for
# three frames on this CPU); 2.76:1 film and narrower are never touched.
MAX_RENDER_ASPECT = 4
# The widest aspect a render keeps, at the backbone's smallest short side:
# 80x5120, a third of the pixels of a 1080p frame.
MAX_KEPT_ASPECT = 64


def render_shape(width: int, height: int, render_size: int, step: int = 8) -> tuple[int, int]:
    """(h, w) the model sees: short side = render_size rounded to a multiple of 8, the long side
    the aspect's, rounded to a multiple of `step` (of 8).

    A frame wider than MAX_RENDER_ASPECT keeps its aspect on a shorter short
    side, down to the backbone's smallest input, so the render's area stays
    that of a MAX_RENDER_ASPECT frame; past MAX_KEPT_ASPECT it is squeezed.
    """
    short, long_ = min(width, height), max(width, height)
    aspect = long_ / short
    smallest = -(-MIN_RENDER_SIZE // 8) * 8
    if aspect > MAX_RENDER_ASPECT:
        render_size = max(smallest, render_size * (MAX_RENDER_ASPECT / aspect) ** 0.5)
    side_short = 8 * round(render_size / 8)
    if side_short < MIN_RENDER_SIZE:  # 75 rounds to 72, which the backbone cannot take: up instead
        side_short = smallest
    # From the rounded short side: from render_size, a size off the multiple of
    # 8 distorted the picture (640x272 at 76 was rendered 176x80, 6.5% narrower).
    side_long = max(side_short, step * round(side_short * aspect / step))
    # Past MAX_KEPT_ASPECT the picture is squeezed along its length instead
    # (a 30000x20 strip would otherwise be rendered 80x120000 and fill any memory).
    side_long = min(side_long, step * int(MAX_KEPT_ASPECT * side_short / step))
    return (side_short, side_long) if height <= width else (side_long, side_short)


class Prepared(NamedTuple):
    """One batch on the device, ready for the network."""

    y: jax.Array  # (B, H, W) luma codes at full resolution: uint8, or uint16 10-bit
    valid: jax.Array  # (B,) bool: False for padding frames
    lightness: jax.Array  # (B, h, w) L at the render size
    hist: jax.Array  # (B, smoothing.HIST_BINS) for cut detection


class Prediction(NamedTuple):
    """One batch's model output at the render size, still on the device."""

    track: smoothing.Track
    y: jax.Array  # (B, H, W) uint8 luma codes at full resolution


class Colorizer:
    """A model placed on all local devices, and the per-batch steps that use it.

    The jitted steps are module-level functions with the Flax module as a
    static argument; modules compare by their fields, so every Colorizer of
    an equal model config shares the compiled code: one compile per (batch,
    frame size). Variables, smoothing strength and saturation are traced
    arguments, so new weights or settings (reconfigured()) reuse it too.
    """

    def __init__(self, model, config: ApplyConfig = ApplyConfig()):
        from framecolor.models.colorizer import build_colorizer

        self.model_config = model.config
        self.model_saturation = float(model.readout.get("saturation", 1.0))
        devices = jax.devices()
        self.mesh = Mesh(np.array(devices), ("data",))
        self._batch = NamedSharding(self.mesh, PartitionSpec("data"))
        self._replicated = NamedSharding(self.mesh, PartitionSpec())
        self._configure(config)
        self.variables = jax.device_put(model.variables, self._replicated)
        # Flax modules compare by their fields, so every Colorizer of an equal
        # model config shares the jitted steps' compiled code (jit's cache).
        self.module = build_colorizer(model.config)

    def _configure(self, config: ApplyConfig) -> None:
        # The encoder's settings only where --codec names it: with none, the
        # output's type picks it (validate(output)), and taken here for
        # libx264 a .webm's VP9 crf 60 was refused.
        config._check_settings()
        if config.codec is not None:
            config.check_encoding()
        self.config = config
        self.render_size = config.render_size or self.model_config.size
        self.saturation = self.model_saturation if config.saturation is None else config.saturation
        devices = self.mesh.devices.size
        self.batch_size = math.ceil(config.batch_size / devices) * devices  # the batch splits evenly
        self.networks_in_flight = config.networks_in_flight or _default_networks_in_flight(self.mesh)
        # The smoothing looks this many frames ahead whatever the batch size
        # (else colors would change with it): the predictions of this many
        # batches wait behind each one that is finished.
        self.lookahead = smoothing.lookahead_frames(config.smoothing)
        self.batches_ahead = -(-self.lookahead // self.batch_size)
        # On the devices once, not copied there again with every batch (three
        # small transfers a batch, each holding the GIL the encode thread needs).
        self._temperature, self._smoothing, self._saturation = (
            jax.device_put(np.float32(x), self._replicated)
            for x in (config.temperature, config.smoothing, self.saturation))

    def reconfigured(self, **changes) -> "Colorizer":
        """A copy with some ApplyConfig fields changed, sharing the model already on the devices."""
        new = copy.copy(self)
        new._configure(dataclasses.replace(self.config, **changes))
        return new

    # Video, per batch: prepare -> predict -> finish, with the predictions of
    # the batches_ahead batches after it as finish(k)'s look-ahead (see
    # apply._recombined). The network sees each picture as players show it,
    # as it was trained: `turns` quarter turns counter-clockwise stand it up
    # (video.quarter_turns), and the render has the shown aspect of
    # `pixel_aspect`-wide pixels (the sample aspect ratio of anamorphic
    # video); finish turns the color back.
    def _stored_render_hw(self, width: int, height: int, pixel_aspect: float) -> tuple[int, int]:
        return render_shape(max(1, round(width * pixel_aspect)), height, self.render_size)

    def prepare(self, y: np.ndarray, valid: np.ndarray, *, full_range: bool, turns: int = 0,
                pixel_aspect: float = 1.0) -> Prepared:
        y = jax.device_put(y, self._batch)
        valid = jax.device_put(valid, self._batch)
        hw = self._stored_render_hw(y.shape[2], y.shape[1], pixel_aspect)
        lightness = _render_lightness(y, render_hw=hw, full_range=full_range, turns=turns % 4)
        return Prepared(y, valid, lightness, _histograms(lightness))

    def predict(self, prepared: Prepared) -> Prediction:
        ab = _predict_ab(self.module, self.model_config.mode, self.variables, prepared.lightness, self._temperature)
        return Prediction(smoothing.Track(ab, prepared.lightness, prepared.hist, prepared.valid), prepared.y)

    def initial_state(self, width: int, height: int, turns: int = 0, pixel_aspect: float = 1.0) -> smoothing.State:
        # Placed as finish() returns it, so the second batch does not recompile.
        h, w = self._stored_render_hw(width, height, pixel_aspect)
        state = smoothing.initial_state(*((w, h) if turns % 2 else (h, w)))
        return jax.device_put(state, self._replicated)

    def finish(self, state, current: Prediction, ahead: Sequence[Prediction], *, full_range, matrix,
               chroma_hw, turns=0, out_full_range=None):
        """Smooth `current` (with `ahead`, the predictions after it, as
        look-ahead) and recombine it with its own luma: (state, chroma),
        chroma (2, B, *chroma_hw) the output's Cb and Cr planes (4:2:0 halves
        both sides, 4:2:2 the width only), coded in `out_full_range` (None:
        the source's `full_range`). Near the video's end `ahead` holds fewer
        than batches_ahead predictions: the rest is past the end."""
        return _finish(
            state,
            current.track,
            self._lookahead_tracks(current.track, [p.track for p in ahead]),
            current.y,
            self._smoothing,
            self._saturation,
            full_range=full_range,
            matrix=matrix,
            chroma_hw=tuple(chroma_hw),
            turns=turns % 4,
            out_full_range=out_full_range,
            lookahead=self.lookahead,
        )

    def _lookahead_tracks(self, current: smoothing.Track, ahead: list) -> tuple | None:
        """The batches_ahead tracks after `current`, those past the end
        all-invalid, so every batch compiles to one shape; None where the
        strength is 0 and nothing is smoothed."""
        if not self.lookahead:
            return None
        missing = self.batches_ahead - len(ahead)
        if missing > 0:
            ahead = ahead + [current._replace(valid=jnp.zeros_like(current.valid))] * missing
        return tuple(ahead[: self.batches_ahead])

    def colorize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """One image (H, W, 3) uint8 or uint16 -> colorized, of the same type, with the same L.

        The network and the full-size steps around it are separate jits: a
        new render shape (IMAGE_RENDER_STEP) compiles the network, a new
        canvas (IMAGE_CANVAS_STEPS_PER_OCTAVE) only the light full-size steps.
        """
        lightness, small, size = self.photo_lightness(rgb)
        return self.photo_rgb(lightness, self.photo_ab(small[None])[0], size, rgb)

    # colorize_rgb's three steps, which a sequence of photos takes in batches.
    def photo_lightness(self, rgb: np.ndarray):
        """(L on the photo's canvas, L at the render size, the photo's (h, w)), on the device."""
        height, width = rgb.shape[:2]
        render_hw = render_shape(width, height, self.render_size, step=IMAGE_RENDER_STEP)
        canvas = np.zeros((canvas_side(height), canvas_side(width), 3), rgb.dtype)
        canvas[:height, :width] = rgb
        size = jnp.asarray([height, width], jnp.float32)
        return (*_image_lightness(canvas, size, render_hw=render_hw), size)

    def photo_initial_state(self, render_hw: tuple[int, int]) -> smoothing.State:
        """The smoothing's state before a sequence of photos rendered at
        `render_hw`, placed as smooth() returns it: else the second batch compiled again."""
        return jax.device_put(smoothing.initial_state(*render_hw), self._replicated)

    def photo_ab(self, small: jax.Array) -> jax.Array:
        """(B, h, w) L at the render size -> (B, h, w, 2) predicted ab."""
        return _predict_ab(self.module, self.model_config.mode, self.variables, small, self._temperature)

    def photo_track(self, small: jax.Array, valid: jax.Array) -> smoothing.Track:
        """A batch of photos' L at the render size -> what the smoothing takes of them."""
        return smoothing.Track(self.photo_ab(small), small, _histograms(small), valid)

    def smooth(self, state: smoothing.State, track: smoothing.Track, ahead: Sequence[smoothing.Track]):
        """(state, the smoothed ab of `track`), with `ahead`, the tracks of the
        batches after it (up to batches_ahead; fewer at the end: the rest is
        past it), as its look-ahead (smoothing.smooth)."""
        ahead = self._lookahead_tracks(track, list(ahead))
        if ahead is None:
            return state, track.ab
        return _smooth(state, track, ahead, self._smoothing, lookahead=self.lookahead)

    def photo_rgb(self, lightness, ab, size, rgb: np.ndarray) -> np.ndarray:
        """The photo `rgb` with its own L and the (h, w, 2) predicted `ab`, of its type."""
        out = _image_rgb(lightness, ab, size, self._saturation, dtype=rgb.dtype.name)
        return np.asarray(out)[: rgb.shape[0], : rgb.shape[1]]


def _default_networks_in_flight(mesh: Mesh) -> int:
    """2 where the network runs on CPU cores (two or more of them), else 1.

    One forward of the shipped model keeps 1.46 of two cores busy (many of its
    ops run on one thread); two at once keep 1.97 busy: 41 -> 60 frames/s at
    640x360 (benchmarks/RESULTS.md). An accelerator runs one batch at a time
    whatever the threads, so there a second one would only hold memory.
    """
    if mesh.devices.flat[0].platform != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 2 if cores >= 2 else 1


def _luma_bits(y) -> int:
    """The depth of a luma plane's codes: 10 in uint16 planes, else 8."""
    return 10 if y.dtype == jnp.uint16 else 8


def _gray_from_y(y, full_range: bool):
    """Luma codes (uint8, or uint16 10-bit) -> gray in [0, 1]: linear, so it can be resized before the costly L."""
    bits = _luma_bits(y)
    if full_range:  # 0 to 2^bits - 1
        return y.astype(jnp.float32) / (2.0**bits - 1.0)
    return color.limited_y_to_gray(y.astype(jnp.float32) / 2 ** (bits - 8))  # in 8-bit units


def _model_ab(module, mode, variables, lightness, temperature):
    """(B, h, w) L -> (B, h, w, 2) predicted ab in Lab units."""
    out = module.apply(variables, color.normalize_l(lightness)[..., None], train=False, temperature=temperature)
    out = out.astype(jnp.float32)
    if mode == "rgb":
        return color.rgb_to_lab(out)[..., 1:]
    return color.denormalize_ab(out)


def _finish(state, track, ahead, y, strength, saturation, *, full_range, matrix, chroma_hw, turns=0,
            out_full_range=None, lookahead=None):
    """Smooth (over the first `lookahead` frames of `ahead`; not at all where
    `ahead` is None: strength 0), turn back, resize to the output's chroma
    size, recombine with the input's L: (state, Cb and Cr stacked)."""
    if ahead is not None:
        state, ab = _smooth(state, track, ahead, strength, lookahead=lookahead)
    else:
        ab = track.ab
    _, height, width = y.shape
    # A subsampled format keeps one chroma sample per block (2x2 in 4:2:0, 1x2
    # in 4:2:2; the sides divide), so the color is computed at that
    # resolution: a quarter of the work in 4:2:0.
    ab = _resize_ab(ab, saturation, chroma_hw=chroma_hw, turns=turns)
    block = (height // chroma_hw[0], width // chroma_hw[1])
    out_full_range = full_range if out_full_range is None else out_full_range
    chroma = _chroma_codes(y, ab, full_range=full_range, matrix=matrix, block=block, out_full_range=out_full_range)
    return state, chroma


# prepare, predict and _finish chain separate jits on purpose: XLA's CPU backend
# slows whatever it fuses with resize's gathers (see framecolor.resize), and
# apart they cost a few dispatches a batch, nothing beside the work.

def _render_lightness(y, *, render_hw, full_range, turns):
    """(B, H, W) luma codes -> L at the render size, turned upright."""
    # Resize the (linear) gray first: L's powers then run on render-size pixels only.
    return _upright_lightness(_render_gray(y, render_hw=render_hw, full_range=full_range), turns=turns)


# Two jits, not one: fused with the resize's gathers, L's powers ran slower
# (prepare, 640x360 to 224x400, a batch of 4 on one core: 9.9 ms with one
# jit, 6.7 ms with two; 12.0 and 8.9 ms of CPU on two cores).
@functools.partial(jax.jit, static_argnames=("render_hw", "full_range"))
def _render_gray(y, *, render_hw, full_range):
    return resize.linear(_gray_from_y(y, full_range), render_hw, axes=(1, 2))


@functools.partial(jax.jit, static_argnames=("turns",))
def _upright_lightness(gray, *, turns):
    return jnp.rot90(color.gray_to_lightness(gray), turns, axes=(1, 2))


_predict_ab = jax.jit(_model_ab, static_argnames=("module", "mode"))
_histograms = jax.jit(smoothing.histograms)  # for cut detection; fused with the resize it ran 8x slower
_smooth = jax.jit(smoothing.smooth, static_argnames=("lookahead",))


@functools.partial(jax.jit, static_argnames=("chroma_hw", "turns"))
def _resize_ab(ab, saturation, *, chroma_hw, turns):
    return resize.linear(jnp.rot90(ab * saturation, -turns, axes=(1, 2)), chroma_hw, axes=(1, 2))


@functools.partial(jax.jit, static_argnames=("full_range", "matrix", "block", "out_full_range"))
def _chroma_codes(y, ab, *, full_range, matrix, block, out_full_range):
    """Join ab (at the chroma size) with the L of the input's own luma (codes
    of `full_range`), the mean of each (rows, cols) `block` of pixels that
    shares a chroma sample -> Cb and Cr codes of `out_full_range`, stacked.

    One array, not two: given two outputs, XLA's CPU backend computed the
    colour conversion into each (at 360p, 1.3-1.4 ms of CPU a frame; 1.0 stacked)."""
    rows, cols = block
    gray = _gray_from_y(y, full_range)
    # The block's mean as strided slices: XLA's CPU backend ran the same
    # mean written as reshape(...).mean(axis=(2, 4)) 25x slower.
    slices = [gray[:, i::rows, j::cols] for i in range(rows) for j in range(cols)]
    gray = functools.reduce(operator.add, slices) * (1 / (rows * cols))
    lab = jnp.concatenate([color.gray_to_lightness(gray)[..., None], ab], axis=-1)
    # Codes of the output's range: a full-range picture's chroma spans 0-255,
    # and written at limited range's scale its colors would show 12% weaker.
    bits = _luma_bits(y)
    cb, cr = color.rgb_to_cbcr(color.lab_to_rgb(lab), matrix, full_range=out_full_range, bits=bits)
    low, high = color.chroma_code_range(out_full_range, bits)

    def code(c):  # valid chroma codes, as deep as the luma
        return jnp.clip(jnp.round(c), low, high).astype(y.dtype)

    return jnp.stack([code(cb), code(cr)])


def _resize_from_corner(image, shape, size, to_size):
    """`jax.image.resize` of the `size` (h, w) corner of `image` to `to_size`,
    written at the corner of an array of `shape` (the rest is zero). The
    sizes are traced, so one compile serves every size on these shapes."""
    scale = jnp.asarray(to_size, jnp.float32) / size
    return jax.image.scale_and_translate(image, shape, (0, 1), scale, jnp.zeros(2), "linear", antialias=True)


@functools.partial(jax.jit, static_argnames=("render_hw",))
def _image_lightness(canvas, size, *, render_hw):
    """An image (uint8 or uint16 RGB) in the `size` (h, w) corner of `canvas`
    -> the canvas's Lab L, and the image's L at the render size."""
    lightness = color.rgb_to_lab(canvas.astype(jnp.float32) / jnp.iinfo(canvas.dtype).max)[..., 0]
    rows, cols = jnp.arange(canvas.shape[0]), jnp.arange(canvas.shape[1])
    inside = ((rows < size[0])[:, None] & (cols < size[1])[None, :]).astype(jnp.float32)
    # Resizing is linear, so dividing by the resized mask renormalizes each
    # kernel over the image's own pixels: exactly jax.image.resize of the
    # image alone, with the canvas's margin left out.
    small = (_resize_from_corner(lightness * inside, render_hw, size, render_hw)
             / _resize_from_corner(inside, render_hw, size, render_hw))
    return lightness, small


@functools.partial(jax.jit, static_argnames=("dtype",))
def _image_rgb(lightness, ab, size, saturation, *, dtype="uint8"):
    """The canvas's L with the predicted ab resized to the image's `size` (at
    its corner) -> (H, W, 3) RGB of `dtype` (uint8 or uint16) on the canvas."""
    ab = _resize_from_corner(ab * saturation, (*lightness.shape, 2), jnp.asarray(ab.shape[:2], jnp.float32), size)
    out = color.lab_to_rgb(jnp.concatenate([lightness[..., None], ab], axis=-1))
    return jnp.round(out * float(jnp.iinfo(dtype).max)).astype(dtype)
