"""Colorize videos and images with a trained model: the streaming apply pipeline.

    decode thread: luma planes, batches of B, L at the render size
      --(bounded queue)--> main thread: the network on all devices
                           (on a CPU backend, two batches at once)
      --(bounded queue)--> encode thread: smoothing, recombination, encoding

The decode thread reads each frame's raw Y plane (video.read_frames(format=
"luma"), or "luma10" for a 10-bit output), pads the frames into fixed
batches of B (the last batch too, so nothing recompiles), puts them on a
Mesh over all local devices (batch sharded, parameters replicated) and
dispatches the L at the render size; the main thread dispatches the
network; the encode thread smooths each batch with the next one as
look-ahead, recombines, pulls the chroma back to the host and writes it.
Each stage dispatches its own device work: JAX's CPU backend runs the
computations one thread dispatches in order, one after another, so on a CPU
this lets the light stages run beside the network instead of between its
batches. For the same reason the network runs two batches at once on a CPU
backend, each from a thread of its own: one forward leaves part of the cores
idle (see _default_networks_in_flight). Queues are small, so memory stays
flat whatever the length of the video.

On the device, per batch: Y code values -> gray, resized to the render size
-> L -> model -> ab; ab smoothed over time (framecolor.smoothing, one batch
of look-ahead); ab resized to the output's chroma size and joined with the L
of the input's own luma there (the mean of each 2x2 block for 4:2:0) -> RGB
-> Cb/Cr. The encoder writes the *input's* Y plane
untouched with the new chroma (VideoWriter.write_yuv), so the picture's
luminance and detail are the original's; only color is added. A video stored
sideways (a display matrix, as phones write it) is turned upright at the
render size for the network and its color turned back; the output keeps the
matrix.

Images take the same path without the time axis: L of the image is kept,
ab is predicted, Lab -> RGB.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import logging
import math
import os
import queue
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framecolor import color, resize, smoothing, video
from framecolor.errors import FramecolorError, InputError, ModelFileError

log = logging.getLogger(__name__)

# InceptionV3's smallest input (as Keras allows): smaller renders fail in the backbone.
MIN_RENDER_SIZE = 75
# Formats write_yuv can fill (any other would re-derive luma from RGB); the
# 10-bit ones keep a deeper source's luma.
PIX_FMTS = ("yuv420p", "yuv444p", "yuv420p10le", "yuv444p10le")


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
    pix_fmt: str = "yuv420p"
    queue_size: int = 2  # batches waiting between the threads
    networks_in_flight: int | None = None  # batches in the network at once; None: 2 on a CPU backend, else 1

    def validate(self) -> "ApplyConfig":
        if self.render_size is not None and self.render_size < MIN_RENDER_SIZE:
            raise InputError(f"render size must be at least {MIN_RENDER_SIZE}, got {self.render_size}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.smoothing < 1.0:
            raise InputError(f"smoothing strength must be in [0, 1), got {self.smoothing}")
        if not 0.0 < self.temperature <= 2.0:
            raise InputError(f"temperature must be in (0, 2], got {self.temperature}")
        if self.saturation is not None and not 0.0 <= self.saturation <= 4.0:
            raise InputError(f"saturation must be in [0, 4], got {self.saturation}")
        if self.pix_fmt not in PIX_FMTS:
            raise InputError(f"pixel format must be one of {', '.join(PIX_FMTS)}, got {self.pix_fmt!r}")
        if self.queue_size < 1:
            raise InputError(f"queue size must be at least 1, got {self.queue_size}")
        if self.networks_in_flight is not None and self.networks_in_flight < 1:
            raise InputError(f"networks in flight must be at least 1, got {self.networks_in_flight}")
        video.check_encoder(self.codec or video.DEFAULT_ENCODER, self.crf, self.preset, self.pix_fmt)
        return self


# ---------------------------------------------------------------------------
# The model


def load(model_path=None):
    """The model file at `model_path`, or the shipped default model.

    Raises ModelFileError when there is none, or the file is not a lab/rgb colorizer.
    """
    from framecolor import modelfile

    if model_path is None:
        model_path = modelfile.default_model_path()
        if model_path is None:
            raise ModelFileError("no default model shipped; pass --model")
    model = modelfile.load_model(model_path)
    if model.config.mode not in ("lab", "rgb"):
        raise ModelFileError(f"{model_path}: model mode {model.config.mode!r} is not 'lab' or 'rgb'")
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


def render_shape(width: int, height: int, render_size: int, step: int = 8) -> tuple[int, int]:
    """(h, w) the model sees: short side = render_size, aspect kept to a multiple of `step` (of 8).

    A frame wider than MAX_RENDER_ASPECT keeps its aspect on a shorter short
    side, down to the backbone's smallest input, so the render's area stays
    that of a MAX_RENDER_ASPECT frame.
    """
    short, long_ = min(width, height), max(width, height)
    aspect = long_ / short
    if aspect > MAX_RENDER_ASPECT:
        render_size = max(-(-MIN_RENDER_SIZE // 8) * 8, render_size * (MAX_RENDER_ASPECT / aspect) ** 0.5)
    side_short = max(8, 8 * round(render_size / 8))
    side_long = max(side_short, step * round(render_size * aspect / step))
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
        self._configure(config)
        self._batch = NamedSharding(self.mesh, PartitionSpec("data"))
        self._replicated = NamedSharding(self.mesh, PartitionSpec())
        self.variables = jax.device_put(model.variables, self._replicated)
        # Flax modules compare by their fields, so every Colorizer of an equal
        # model config shares the jitted steps' compiled code (jit's cache).
        self.module = build_colorizer(model.config)

    def _configure(self, config: ApplyConfig) -> None:
        self.config = config.validate()
        self.render_size = config.render_size or self.model_config.size
        self.saturation = self.model_saturation if config.saturation is None else config.saturation
        devices = self.mesh.devices.size
        self.batch_size = math.ceil(config.batch_size / devices) * devices  # the batch splits evenly
        self.networks_in_flight = config.networks_in_flight or _default_networks_in_flight(self.mesh)

    def reconfigured(self, **changes) -> "Colorizer":
        """A copy with some ApplyConfig fields changed, sharing the model already on the devices."""
        new = copy.copy(self)
        new._configure(dataclasses.replace(self.config, **changes))
        return new

    # Video, per batch: prepare -> predict -> finish, with batch k+1's
    # prediction as finish(k)'s look-ahead (see colorize_video). The network
    # sees each picture as players show it, as it was trained: `turns`
    # quarter turns counter-clockwise stand it up (video.quarter_turns), and
    # the render has the shown aspect of `pixel_aspect`-wide pixels (the
    # sample aspect ratio of anamorphic video); finish turns the color back.
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
        ab = _predict_ab(self.module, self.model_config.mode, self.variables, prepared.lightness,
                         jnp.float32(self.config.temperature))
        return Prediction(smoothing.Track(ab, prepared.lightness, prepared.hist, prepared.valid), prepared.y)

    def initial_state(self, width: int, height: int, turns: int = 0, pixel_aspect: float = 1.0) -> smoothing.State:
        # Placed as finish() returns it, so the second batch does not recompile.
        h, w = self._stored_render_hw(width, height, pixel_aspect)
        state = smoothing.initial_state(*((w, h) if turns % 2 else (h, w)))
        return jax.device_put(state, self._replicated)

    def finish(self, state, current: Prediction, ahead: Prediction, *, full_range, matrix, subsample, turns=0):
        return _finish(
            state,
            current.track,
            ahead.track,
            current.y,
            jnp.float32(self.config.smoothing),
            jnp.float32(self.saturation),
            full_range=full_range,
            matrix=matrix,
            subsample=subsample,
            turns=turns % 4,
        )

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

    def photo_ab(self, small: jax.Array) -> jax.Array:
        """(B, h, w) L at the render size -> (B, h, w, 2) predicted ab."""
        return _predict_ab(self.module, self.model_config.mode, self.variables, small,
                           jnp.float32(self.config.temperature))

    def photo_track(self, small: jax.Array, valid: jax.Array) -> smoothing.Track:
        """A batch of photos' L at the render size -> what the smoothing takes of them."""
        return smoothing.Track(self.photo_ab(small), small, _histograms(small), valid)

    def smooth(self, state: smoothing.State, track: smoothing.Track, ahead: smoothing.Track):
        """(state, the smoothed ab of `track`), with `ahead` as its look-ahead (smoothing.smooth)."""
        return _smooth(state, track, ahead, jnp.float32(self.config.smoothing))

    def photo_rgb(self, lightness, ab, size, rgb: np.ndarray) -> np.ndarray:
        """The photo `rgb` with its own L and the (h, w, 2) predicted `ab`, of its type."""
        out = _image_rgb(lightness, ab, size, jnp.float32(self.saturation), dtype=rgb.dtype.name)
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


def _code_scale(y) -> float:
    """Code values per 8-bit code: 4 for 10-bit planes (uint16), else 1."""
    return 4.0 if y.dtype == jnp.uint16 else 1.0


def _gray_from_y(y, full_range: bool):
    """Luma codes (uint8, or uint16 10-bit) -> gray in [0, 1]: linear, so it can be resized before the costly L."""
    codes = y.astype(jnp.float32) / _code_scale(y)  # in 8-bit units
    return codes / 255.0 if full_range else color.limited_y_to_gray(codes)


def _model_ab(module, mode, variables, lightness, temperature):
    """(B, h, w) L -> (B, h, w, 2) predicted ab in Lab units."""
    out = module.apply(variables, color.normalize_l(lightness)[..., None], train=False, temperature=temperature)
    out = out.astype(jnp.float32)
    if mode == "rgb":
        return color.rgb_to_lab(out)[..., 1:]
    return color.denormalize_ab(out)


def _finish(state, track, ahead, y, strength, saturation, *, full_range, matrix, subsample, turns=0):
    """Smooth, turn back, resize to the output's chroma size, recombine with the input's L: (state, Cb, Cr)."""
    state, ab = _smooth(state, track, ahead, strength)
    _, height, width = y.shape
    # 4:2:0 keeps one chroma sample per 2x2 block (height and width are even),
    # so the color is computed at that resolution: a quarter of the work.
    chroma_hw = (height // 2, width // 2) if subsample else (height, width)
    ab = _resize_ab(ab, saturation, chroma_hw=chroma_hw, turns=turns)
    cb, cr = _chroma_codes(y, ab, full_range=full_range, matrix=matrix, subsample=subsample)
    return state, cb, cr


# prepare, predict and _finish chain separate jits on purpose: XLA's CPU backend
# slows whatever it fuses with resize's gathers (see framecolor.resize), and
# apart they cost a few dispatches a batch, nothing beside the work.

@functools.partial(jax.jit, static_argnames=("render_hw", "full_range", "turns"))
def _render_lightness(y, *, render_hw, full_range, turns):
    """(B, H, W) luma codes -> L at the render size, turned upright."""
    # Resize the (linear) gray first: L's powers then run on render-size pixels only.
    gray = resize.linear(_gray_from_y(y, full_range), render_hw, axes=(1, 2))
    return jnp.rot90(color.gray_to_lightness(gray), turns, axes=(1, 2))


_predict_ab = jax.jit(_model_ab, static_argnames=("module", "mode"))
_histograms = jax.jit(smoothing.histograms)  # for cut detection; fused with the resize it ran 8x slower
_smooth = jax.jit(smoothing.smooth)


@functools.partial(jax.jit, static_argnames=("chroma_hw", "turns"))
def _resize_ab(ab, saturation, *, chroma_hw, turns):
    return resize.linear(jnp.rot90(ab * saturation, -turns, axes=(1, 2)), chroma_hw, axes=(1, 2))


@functools.partial(jax.jit, static_argnames=("full_range", "matrix", "subsample"))
def _chroma_codes(y, ab, *, full_range, matrix, subsample):
    """Join ab (at the chroma size) with the L of the input's own luma -> Cb, Cr codes."""
    gray = _gray_from_y(y, full_range)
    if subsample:
        # The mean of each 2x2 block, as four strided slices: XLA's CPU backend
        # ran the same mean written as reshape(...).mean(axis=(2, 4)) 25x slower.
        gray = (gray[:, 0::2, 0::2] + gray[:, 0::2, 1::2] + gray[:, 1::2, 0::2] + gray[:, 1::2, 1::2]) * 0.25
    lab = jnp.concatenate([color.gray_to_lightness(gray)[..., None], ab], axis=-1)
    cb, cr = color.rgb_to_cbcr(color.lab_to_rgb(lab), matrix)

    scale = _code_scale(y)

    def code(c):  # valid limited-range chroma codes (16-240 in 8-bit terms), as deep as the luma
        return jnp.clip(jnp.round(c * scale), 16 * scale, 240 * scale).astype(y.dtype)

    return code(cb), code(cr)


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


# ---------------------------------------------------------------------------
# The streaming video pipeline

_END = object()


class _Failed(NamedTuple):
    error: BaseException


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put unless the pipeline is stopping; never blocks forever on a full queue."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _decode(read: Callable[[], Iterator], info, batch_size: int, prepare: Callable, out: queue.Queue,
            stop: threading.Event, span: tuple[float, float | None] | None = None) -> None:
    """Decode thread: prepare(frames) for lists of up to batch_size of `read()`'s Frames, then _END.

    A video that stops decoding early is an error here, not a warning: a
    shorter output with the audio of the whole would look like success.
    """
    frames = None
    try:
        frames = read()
        batch, count, first_time, last_time = [], 0, None, None
        for frame in frames:
            batch.append(frame)
            count += 1
            if frame.time is not None:
                first_time = frame.time if first_time is None else first_time
                last_time = frame.time
            if len(batch) == batch_size:
                if not _put(out, prepare(batch), stop):
                    return
                batch = []
        problem = _incomplete(info, count, first_time, last_time, span)
        if problem:
            raise InputError(f"{info.path} is truncated or damaged: {problem}; nothing written")
        if batch and not _put(out, prepare(batch), stop):
            return
        _put(out, _END, stop)
    except BaseException as exc:  # handed to the main thread, which raises it
        _put(out, _Failed(exc), stop)
    finally:
        if hasattr(frames, "close"):
            frames.close()  # closes the container now, also when the pipeline stops early


def _expected_end(info, span: tuple[float, float | None] | None) -> float:
    """Where decoding a video (or `span` of it) must reach: its end, or the excerpt's if sooner."""
    if span is None or span[1] is None:
        return info.duration
    return min(span[1], info.duration) if info.duration else span[1]


def _incomplete(info, count: int, first_time: float | None, last_time: float | None,
                span: tuple[float, float | None] | None = None) -> str | None:
    """Why `count` decoded frames are not the whole video (or `span` of it), or None if they are.

    Same rules as video.read_frames' warning: fewer frames than the container
    states, or the last frame more than two frame periods before the end.
    Frames missing only before the first that decodes are no damage: a
    recording cut from a broadcast starts mid-way through a group of
    pictures, and no decoder can show the frames before its first keyframe.
    Those are said in a warning, and the rest is colorized. An excerpt
    must reach its own end, or the video's.
    """
    end = _expected_end(info, span)
    reached_end = not (info.fps and end and last_time is not None and last_time + 2 / info.fps < end)
    if span is not None:
        return None if reached_end else f"decoding stopped at {last_time:.2f} s of {end:.2f} s"
    if info.frame_count_exact and count < info.frame_count:
        missing_first = round(first_time * info.fps) if first_time and info.fps else 0
        if not reached_end or count + missing_first < info.frame_count:
            return f"decoded {count} of {info.frame_count} frames"
        warnings.warn(f"{info.path} starts mid-way through a group of pictures: its first "
                      f"{info.frame_count - count} frames ({first_time:.2f} s) cannot be decoded "
                      "and are left out", video.VideoWarning, stacklevel=2)
    if not reached_end:
        return f"decoding stopped at {last_time:.2f} s of {info.duration:.2f} s"
    return None


def _encode(writer, chroma: Iterator, stop: threading.Event, progress, errors: list) -> None:
    """Encode thread: writes each batch's chroma, in order, with the input's luma.

    Iterating `chroma` (_recombined) dispatches the smoothing and
    recombination from this thread, beside the network in the main thread.
    """
    try:
        for u, v, frames in chroma:
            if stop.is_set():  # something failed: the output will be deleted
                return
            u, v = np.asarray(u), np.asarray(v)  # waits for the device
            for i, frame in enumerate(frames):
                writer.write_yuv(frame.image, u[i], v[i], frame.pts)  # pts None: the next nominal one
            progress(len(frames))
    except BaseException as exc:
        errors.append(exc)
        stop.set()


def _queued(q: queue.Queue, stop: threading.Event) -> Iterator:
    """Items from `q` until _END (or until the pipeline stops)."""
    while not stop.is_set():
        item = _get(q, stop)
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


def _padded(frames: list, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack luma planes into a full batch; padding frames are zeros, marked invalid."""
    y = np.zeros((batch_size, *frames[0].image.shape), frames[0].image.dtype)
    for i, frame in enumerate(frames):
        y[i] = frame.image
    return y, np.arange(batch_size) < len(frames)


def _run_model(colorizer: Colorizer, batches: Iterable[tuple], send: Callable) -> int:
    """Main thread: the network on each prepared batch, handed on with its frames."""
    count = 0
    for prediction, frames in _predictions(colorizer, batches):
        if not send((prediction, frames)):
            break
        count += len(frames)
    return count


def _predictions(colorizer: Colorizer, batches: Iterable[tuple]) -> Iterator[tuple]:
    """(frames, prepared) -> (prediction, frames), in order, colorizer.networks_in_flight at a time.

    JAX's CPU backend runs what one thread dispatches one after another, so
    more than one forward at once takes a thread each; each thread waits for
    its own forward, and results come back in the order the batches came.
    """
    in_flight = colorizer.networks_in_flight
    if in_flight == 1:  # dispatched without waiting: the device queues them
        for frames, prepared in batches:
            yield colorizer.predict(prepared), frames
        return

    def forward(prepared):
        return jax.block_until_ready(colorizer.predict(prepared))

    running: collections.deque = collections.deque()
    # Leaving early (the pipeline stopped) waits for the forwards still running.
    with ThreadPoolExecutor(in_flight, thread_name_prefix="network") as pool:
        for frames, prepared in batches:
            running.append((pool.submit(forward, prepared), frames))
            if len(running) == in_flight:
                future, oldest = running.popleft()
                yield future.result(), oldest
        while running:
            future, oldest = running.popleft()
            yield future.result(), oldest


def _recombined(colorizer: Colorizer, predictions: Iterable[tuple], *, state, **finish_kw) -> Iterator:
    """(Prediction, frames) in order -> (Cb, Cr, frames), each batch smoothed with the next as look-ahead."""
    previous = None
    for current in predictions:
        if previous is not None:
            state, u, v = colorizer.finish(state, previous[0], current[0], **finish_kw)
            yield u, v, previous[1]
        previous = current
    if previous is not None:  # nothing follows the last batch: an all-invalid look-ahead
        prediction = previous[0]
        no_frames = prediction.track._replace(valid=jnp.zeros_like(prediction.track.valid))
        _, u, v = colorizer.finish(state, prediction, prediction._replace(track=no_frames), **finish_kw)
        yield u, v, previous[1]


def colorize_video(
    colorizer: Colorizer, source, output, *, overwrite: bool = False, progress: bool = True,
    excerpt: Excerpt | None = None,
) -> dict:
    """Colorize one video file into `output` (atomic; nothing is left behind on error).

    Same size, frames, pts, time base and frame rate as the source; audio and
    subtitles copied. An `excerpt` writes that part only, from 0 s, its
    audio and subtitles cut to it. Returns a summary: frames, seconds, fps.
    """
    source, output = Path(source), Path(output)
    video.check_output_path(output, inputs=(source,), overwrite=overwrite)
    info = video.probe(source)
    span = excerpt.span(info) if excerpt is not None else None
    _warn_if_rounded(colorizer, info, source, output)
    luma = "luma10" if colorizer.config.pix_fmt.endswith("10le") else "luma"
    warn_if_in_color(source, _opening_frames(source))

    def read():
        # At the probed size, which the writer has: a stream that changes size
        # mid-way (a broadcast capture) is scaled to it.
        start, end = span or (None, None)
        return video.read_frames(source, format=luma, size=(info.width, info.height), start=start, end=end)

    return _colorize_frames(colorizer, info, read, output, copy_streams_from=source, inputs=(source,),
                            span=span, overwrite=overwrite, progress=progress)


def colorize_photo_film(
    colorizer: Colorizer, folder, output, *, fps=video.DEFAULT_SEQUENCE_FPS, overwrite: bool = False,
    progress: bool = True, excerpt: Excerpt | None = None,
) -> dict:
    """Colorize a folder of numbered photos (a film scanned to frames) into
    one video file at `fps`, as colorize_video does a file's frames.

    The photos' gray is the video's luma: 8-bit photos' codes exactly, as
    full-range video (10-bit --pix-fmt: 10-bit video codes, from 16-bit
    photos at their depth).
    """
    folder, output = Path(folder), Path(output)
    photos = video.photo_film(folder)
    video.check_output_path(output, inputs=(folder,), overwrite=overwrite)
    deep = colorizer.config.pix_fmt.endswith("10le")
    info = video.probe_photo_film(photos, fps, full_range=not deep)
    span = excerpt.span(info) if excerpt is not None else None
    _warn_if_rounded(colorizer, info, folder, output)
    opening = video.read_photo_film(photos, fps, format="rgb24", short_side=64, every=5,
                                    max_frames=_OPENING_FRAMES // 5 + 1)
    warn_if_in_color(folder, [frame.image for frame in opening])

    def read():
        start, end = span or (None, None)
        return video.read_photo_film(photos, fps, format="luma10" if deep else "gray",
                                     size=(info.width, info.height), start=start, end=end)

    return _colorize_frames(colorizer, info, read, output, inputs=(folder,), span=span,
                            overwrite=overwrite, progress=progress)


def _warn_if_rounded(colorizer: Colorizer, info, source: Path, output: Path) -> None:
    """Say so where an 8-bit output rounds a deeper source's luma."""
    pix_fmt = colorizer.config.pix_fmt
    if info.luma_bits > 8 and not pix_fmt.endswith("10le"):
        warnings.warn(f"{source} has {info.luma_bits}-bit luma; {output} is 8-bit, its luma rounded "
                      f"to 8 bits (--pix-fmt {pix_fmt}10le keeps 10)", video.VideoWarning, stacklevel=3)


def _colorize_frames(colorizer: Colorizer, info, read: Callable[[], Iterator], output: Path, *,
                     copy_streams_from=None, inputs=(), span=None, overwrite=False, progress=True) -> dict:
    """The pipeline: `read()`'s frames (luma planes shaped as `info` says)
    colorized into `output`, written as `info`'s video."""
    from tqdm import tqdm

    source = Path(info.path)
    config = colorizer.config
    width, height = info.width, info.height
    full_range = info.full_range
    matrix = "bt709" if height >= 720 else "bt601"  # HD and SD conventions
    stop = threading.Event()
    prepared_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
    predicted_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
    errors: list = []
    started = time.perf_counter()
    # Shaped as the source (full-range luma codes stay full range, as a yuvj*
    # format or the range flag), so the Y plane is copied exactly and still
    # displays as it did.
    writer = video.VideoWriter.like(
        output,
        info,
        codec=config.codec,
        crf=config.crf,
        preset=config.preset,
        pix_fmt=config.pix_fmt,
        copy_streams_from=copy_streams_from,
        excerpt=span is not None,
        overwrite=overwrite,
        inputs=inputs,
        matrix=matrix,
    )
    turns = video.quarter_turns(info.rotation)
    pixel_aspect = float(info.sample_aspect_ratio or 1)
    finish_kw = dict(
        full_range=full_range,
        matrix=matrix,
        # The writer picks the final format (an odd size cannot be 4:2:0).
        subsample=writer.chroma_shape != (height, width),
        turns=turns,
    )

    def prepare(frames):
        y, valid = _padded(frames, colorizer.batch_size)
        return frames, colorizer.prepare(y, valid, full_range=full_range, turns=turns, pixel_aspect=pixel_aspect)

    state = colorizer.initial_state(width, height, turns, pixel_aspect)
    chroma = _recombined(colorizer, _queued(predicted_q, stop), state=state, **finish_kw)
    frames = info.frame_count
    if span is not None:
        end = _expected_end(info, span)
        frames = round((end - span[0]) * info.fps) if info.fps and end else 0
    bar = tqdm(total=frames or None, unit="frame", desc=source.name, disable=not progress)
    with writer, bar:
        decoder = threading.Thread(
            target=_decode, args=(read, info, colorizer.batch_size, prepare, prepared_q, stop),
            kwargs={"span": span}, name="decode", daemon=True,
        )
        encoder = threading.Thread(
            target=_encode, args=(writer, chroma, stop, bar.update, errors), name="encode", daemon=True
        )
        decoder.start()
        encoder.start()
        try:
            count = _run_model(colorizer, _queued(prepared_q, stop), lambda item: _put(predicted_q, item, stop))
            _put(predicted_q, _END, stop)
            encoder.join()
        except BaseException:
            stop.set()
            raise
        finally:
            # Raising inside `with writer` makes it delete its temporary file.
            stop.set()
            encoder.join()
            decoder.join()
        if errors:
            raise errors[0]
        if count == 0 and span is not None:
            until = "its end" if span[1] is None else f"{span[1]:g} s"
            raise InputError(f"{source} has no frame from {span[0]:g} s to {until}")
        if count == 0:
            raise InputError(f"{source}: no video frames could be decoded")
    seconds = time.perf_counter() - started
    return {"input": str(source), "output": str(output), "frames": count, "seconds": seconds,
            "fps": count / seconds if seconds > 0 else 0.0}


# Frames of a video's opening that are looked at for color (every fifth).
_OPENING_FRAMES = 12


def _opening_frames(source: Path) -> list[np.ndarray]:
    """A few small RGB frames from the start of `source`, to see whether it has color.

    Runs before the pipeline's threads (a batch runs videos on their own), so
    silencing warnings here silences nothing else: a damaged file is told of
    once, by the pipeline's own reading.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frames = video.read_frames(source, short_side=64, every=5, max_frames=_OPENING_FRAMES // 5 + 1)
            try:
                return [frame.image for frame in frames]
            finally:
                frames.close()
        except FramecolorError:
            return []


def warn_if_in_color(source: Path, frames: Sequence[np.ndarray]) -> None:
    """Colorizing keeps only the luma: a source that has color loses it, which
    a user who picked the wrong file (the original, not its gray copy) should hear.
    `frames` are RGB, 8 or 16 bits a channel."""
    from framecolor import metrics

    if metrics.has_color(frame if frame.dtype == np.uint8 else (frame >> 8).astype(np.uint8) for frame in frames):
        warnings.warn(f"{source} is in color already: its colors are replaced by the model's "
                      "(only its luma is kept)", video.VideoWarning, stacklevel=3)


def colorize_image(colorizer: Colorizer, source, output, *, overwrite: bool = False) -> dict:
    """Colorize one still image: same size, Lab lightness, depth (8 or 16 bits)
    and transparency, where the output's type holds them."""
    source, output = Path(source), Path(output)
    started = time.perf_counter()
    video.check_output_path(output, inputs=(source,), overwrite=overwrite)
    photo = video.read_photo(source)
    warn_if_in_color(source, [photo.rgb])
    video.write_photo(output, photo._replace(rgb=colorizer.colorize_rgb(photo.rgb)))
    seconds = time.perf_counter() - started
    return {"input": str(source), "output": str(output), "frames": 1, "seconds": seconds,
            "fps": 1 / seconds if seconds > 0 else 0.0}


def colorize_file(colorizer: Colorizer, source, output, *, overwrite=False, progress=True,
                  excerpt: Excerpt | None = None, fps=None) -> dict:
    """An image, a video, or a folder of numbered photos made into a video at
    `fps` (None: DEFAULT_SEQUENCE_FPS), by the source's kind (an excerpt is
    of videos only)."""
    if Path(source).is_dir():
        return colorize_photo_film(colorizer, source, output, fps=fps or video.DEFAULT_SEQUENCE_FPS,
                                   overwrite=overwrite, progress=progress, excerpt=excerpt)
    if fps is not None:
        raise InputError(f"{source}: a frame rate is given to a folder of numbered photos made into a "
                         "video; a video keeps its own")
    if video.is_image_path(source):
        return colorize_image(colorizer, source, output, overwrite=overwrite)
    return colorize_video(colorizer, source, output, overwrite=overwrite, progress=progress, excerpt=excerpt)


# ---------------------------------------------------------------------------
# A part of a video (several files at once: framecolor.batch)


class Excerpt(NamedTuple):
    """A part of a video, in seconds from its first frame: to try a model or
    its settings on a minute of a feature film before running the whole."""

    start: float = 0.0
    duration: float | None = None  # None: to the end

    def span(self, info) -> tuple[float, float | None]:
        """(start, end) on the video's timeline; InputError where it holds none of it."""
        if self.start < 0 or (self.duration is not None and self.duration <= 0):
            raise InputError(f"an excerpt starts at 0 s or later and lasts more than 0 s, "
                             f"not {self.start} s for {self.duration} s")
        if info.duration and self.start >= info.duration:
            raise InputError(f"{info.path} is {info.duration:.2f} s long: nothing from {self.start:g} s on")
        return self.start, None if self.duration is None else self.start + self.duration
