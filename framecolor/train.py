"""Training: the epoch loop around framecolor.steps' jitted steps, with
early stopping, learning rate on plateau, checkpoints, previews, resuming,
and the model file at the end."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from framecolor import callbacks, dataset, rundir
from framecolor.atomic import write_atomic
from framecolor.errors import DiskFullError, FramecolorError, OutputError, TrainingError
from framecolor.signals import handling_stop_signals
from framecolor.models.colorizer import TINY_MODEL, ModelConfig, variable_shapes
# The steps' names, also reached as train.<name>.
from framecolor.steps import (  # noqa: F401
    HUBER_DELTA,
    LOSSES,
    MAX_CHROMA_GAIN,
    TrainState,
    backbone_keys,
    bin_weights_for,
    chroma_gain,
    compiled_steps,
    fresh_variables,
    get_lr,
    init_state,
    make_mesh,
    make_optimizer,
    make_steps,
    per_example_loss,
    prepare_batch,
    set_lr,
    to_rgb,
)

_MODEL_FIELDS = ("backbone", "width", "decoder", "mode", "compute_dtype", "head")

@dataclass(frozen=True)
class TrainConfig:
    """Every training option with its default; the CLI maps options onto it."""

    # model (the architecture; taken from the file with --init)
    backbone: str = "inception_v3"
    width: float = 1.0
    decoder: str = "unet"
    mode: str = "lab"
    compute_dtype: str = "auto"
    head: str = "regress"  # or "bins": classification over ab bins (the loss is then abbins.loss)
    size: int = 224  # training crop side
    # optimisation
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    loss: str = "mse"
    clip_norm: float = 1.0
    seed: int = 0
    freeze_backbone_epochs: int = 0
    # data
    frames_per_video: int | None = 200
    every: int | None = None
    dedup_threshold: float = dataset.DEFAULT_DEDUP_THRESHOLD
    val_fraction: float = 0.1
    feed: str = "auto"  # auto | device | host
    # callbacks
    patience: int = 5  # early stopping; 0 = never stop early
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    keep_checkpoints: int = 3
    preview_frames: int = 4
    log_every: int = 20

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            backbone=self.backbone,
            width=self.width,
            decoder=self.decoder,
            mode=self.mode,
            size=self.size,
            compute_dtype=self.compute_dtype,
            head=self.head,
        )


TINY_TRAIN = TrainConfig(
    backbone=TINY_MODEL.backbone,
    width=TINY_MODEL.width,
    decoder=TINY_MODEL.decoder,
    mode=TINY_MODEL.mode,
    size=TINY_MODEL.size,
    epochs=2,
    batch_size=4,
    frames_per_video=16,
    val_fraction=0.25,
    preview_frames=2,
    log_every=2,
    keep_checkpoints=2,
)


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path | None
    history: list[dict]
    best_epoch: int
    best_loss: float
    interrupted: bool = False
    early_stopped: bool = False
    # The signal that stopped the run (SIGINT, SIGTERM), None for a stop by
    # KeyboardInterrupt: the command line exits 128 + it, as for any command.
    stop_signal: int | None = None


@contextmanager
def _stop_on_signals(flag: threading.Event, received: list, log: Callable[[str], None]):
    """SIGINT/SIGTERM set ``flag`` (the loop saves and stops after the current
    step) and are appended to ``received``.

    Raising KeyboardInterrupt in the middle of a dispatch could leave the
    donated state deleted; a flag checked between steps cannot. A second
    Ctrl-C interrupts at once, as usual, but for a step being compiled,
    which holds Python's handlers until it is done: `log` says so then.
    """
    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        received.append(signum)
        flag.set()

    def say_stop_waits():
        log("stopping after the step under way (the first one compiles first, which can take minutes); "
            "the run then saves and ends")

    with handling_stop_signals(handler, when_slow=say_stop_waits):
        yield


def _resolve_config(config: TrainConfig, saved: dict | None, init, run_dir: Path):
    """(config, model config, loaded --init model): the architecture comes from
    the run being resumed, else from the --init model file, else the options."""
    from framecolor import modelfile

    if config.loss not in LOSSES:
        raise TrainingError(f"loss must be one of {', '.join(LOSSES)}, not {config.loss!r}")
    if config.mode not in ("lab", "rgb"):
        raise TrainingError(f"mode must be lab or rgb, not {config.mode!r}")
    _check_ranges(config)
    init_model = None
    if saved is not None:
        model_config = ModelConfig.from_dict(saved["model_config"])
        # Before the architecture is taken from the run: a --width given anew was dropped without a word.
        rundir.check_options(saved["train_config"], dataclasses.asdict(config), run_dir)
        config = dataclasses.replace(config, **{k: getattr(model_config, k) for k in _MODEL_FIELDS})
        return config, model_config, None
    if init is not None:
        init_model = modelfile.load_model(init)
        config = dataclasses.replace(config, **{k: getattr(init_model.config, k) for k in _MODEL_FIELDS})
    if config.head == "bins" and config.loss != TrainConfig.loss:
        # Given with --head bins, or to fine-tune a bins model (--init): taken,
        # written to run.json and never used.
        raise TrainingError("--loss is the regress head's; the bins head learns by cross-entropy over its bins: "
                            "drop --loss")
    return config, config.model_config(), init_model


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


# Adam's rate for a run that starts from a trained model (--init) and names
# none: at the from-scratch 1e-3, fine-tuning the default on two ASL clips
# saw its validation loss jump from 0.0011 to 0.07-0.15 by the third epoch
# (5 steps an epoch), while at 1e-4 it stayed at 0.0009 (2026-11-28, one run each).
FINE_TUNE_LR = 1e-4

# TrainConfig fields the command line does not set: named as fields, not flags, in errors.
_API_ONLY = frozenset({"log_every", "preview_frames"})


def _check_ranges(config: TrainConfig) -> None:
    """The numbers' ranges, before any frame is decoded or run folder made: a
    typo would otherwise surface as a NaN loss, a numpy error or never."""
    def number(name: str, low: float, high: float = math.inf, *, low_open: bool = False) -> None:
        value = getattr(config, name)
        if not (low < value if low_open else low <= value) or not value <= high or not math.isfinite(value):
            show = lambda x: str(int(x)) if float(x).is_integer() else f"{x:g}"  # noqa: E731
            if high == math.inf:
                bounds = f"{'more than' if low_open else 'at least'} {show(low)}"
            else:
                bounds = f"in {'(' if low_open else '['}{show(low)}, {show(high)}]"
            flag = name if name in _API_ONLY else "--" + {"keep_checkpoints": "keep"}.get(name, name).replace("_", "-")
            raise TrainingError(f"{flag} must be {bounds}, not {show(value) if math.isfinite(value) else value}")

    number("batch_size", 1)
    number("epochs", 1)
    number("lr", 0.0, low_open=True)
    # Not bounded by the rate: a rate under the floor (--lr 1e-7, or a resumed
    # run's lowered one) is simply not lowered further (callbacks.update_monitor).
    number("min_lr", 0.0)
    number("val_fraction", 0.0, 0.9)
    number("seed", 0, 2**32 - 1)
    number("keep_checkpoints", 1)
    number("log_every", 1)  # 0 divided by zero at the first step
    number("preview_frames", 1)  # 0 with no validation frames failed at the first epoch's end
    for name in ("patience", "plateau_patience", "freeze_backbone_epochs"):
        number(name, 0)
    if config.frames_per_video is not None:
        number("frames_per_video", 1)
    if config.every is not None:
        number("every", 1)
    if config.feed not in dataset.FEEDS:
        raise TrainingError(f"--feed must be auto, device or host, not {config.feed!r}")


def _load_data(inputs, config: TrainConfig, cache_dir, progress: bool, saved: dict | None, run_dir: Path):
    """(frameset, train indices, validation indices), checked against the batch size."""
    # Before the frames are decoded (minutes for a film): it needs none of them.
    n_dev = jax.device_count()
    if config.batch_size % n_dev:
        if saved is not None:
            # The batch size is the run's own (another would change its math): the devices must change instead.
            raise TrainingError(
                f"this run's batch size {config.batch_size} needs a device count that divides it, and {n_dev} "
                "devices are visible: resume with fewer (CUDA_VISIBLE_DEVICES, or "
                "XLA_FLAGS=--xla_force_host_platform_device_count on a CPU), or start a new --out"
            )
        raise TrainingError(
            f"batch size {config.batch_size} must be a multiple of the {n_dev} devices; "
            f"use --batch-size {max(n_dev, config.batch_size // n_dev * n_dev)}"
        )
    frameset = dataset.load_frames(
        inputs,
        size=config.size,
        frames_per_video=config.frames_per_video,
        every=config.every,
        dedup_threshold=config.dedup_threshold,
        cache_dir=cache_dir,
        progress=progress,
    )
    if saved is not None and saved.get("data_key") != frameset.key:  # the same inputs (_check_resume_inputs)
        raise TrainingError(f"the inputs have changed since the run in {run_dir} began (a file edited, replaced "
                            "or added to a folder): resume with them as they were, or start a new run")
    train_idx, val_idx = dataset.split(frameset, config.val_fraction)
    if len(train_idx) < config.batch_size:
        # Only what would add frames: --every takes the place of
        # --frames-per-video, and photos give one frame each whatever either says.
        fixes = ["add inputs"]
        if any(source.kind != "image" for source in frameset.sources):
            fixes.append("lower --every" if config.every is not None else "raise --frames-per-video")
        if len(val_idx):
            fixes.append("lower --val-fraction")
        raise TrainingError(
            f"only {len(train_idx)} training frames (after holding out {len(val_idx)} for validation) "
            f"for a batch of {config.batch_size}; {', '.join(fixes)} or lower --batch-size"
        )
    return frameset, train_idx, val_idx


def _start_variables(model_config, seed, init, backbone, size):
    """Initial model variables: from --init, else fresh (+ the loaded ImageNet backbone)."""
    if init is not None:
        return init.variables
    variables = fresh_variables(model_config, seed, size)
    if backbone is not None:
        from framecolor import weights

        variables = weights.merge_backbone(variables, backbone)
    return variables


def _load_backbone(path, model_config, size) -> dict:
    """The ImageNet backbone from `path`, checked against the model's: a bad
    file or a narrow model was said after the frames were decoded (minutes
    for a film), leaving a run folder that was never trained."""
    from framecolor import weights
    from framecolor.models.colorizer import variable_shapes

    backbone = weights.load_inception_weights(path)
    weights.merge_backbone(variable_shapes(model_config, size), backbone)  # shapes only: no weights made
    return backbone


def train(
    inputs,
    out_dir,
    config: TrainConfig = TrainConfig(),
    *,
    init=None,
    backbone_weights=None,
    resume: bool = False,
    resume_lr: float | None = None,
    cache_dir=None,
    progress: bool = True,
    on_step: Callable[[int, int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a colorizer on ``inputs`` (videos, images, image folders) into ``out_dir``.

    ``init`` is a model file (.fcm) to fine-tune; ``backbone_weights`` an
    ImageNet Keras h5, or "keras" for the copy Keras keeps. ``resume`` continues the run in ``out_dir`` from its
    last checkpoint, at the learning rate it had reached (a plateau may have
    lowered it) unless ``resume_lr`` (or a ``config.lr`` other than run.json's)
    replaces it; the options a resume may change (rundir.RESUMABLE_CHANGES)
    are written back to run.json, for the next resume. ``on_step(epoch, step_in_epoch, metrics)`` is called
    after each step with the step's metrics as device scalars (reading them
    waits for the step); raising KeyboardInterrupt there acts like Ctrl-C.
    Writes out_dir/model.fcm (the best epoch), metrics.jsonl, loss.png,
    previews/epoch_NNN.png and checkpoints/.
    """
    from framecolor import modelfile
    from framecolor.checkpoint import CheckpointMismatch, Checkpoints

    run_dir = Path(out_dir)
    rundir.check_outside_inputs(run_dir, inputs)
    if backbone_weights is not None:  # "keras": the copy Keras keeps, its path recorded; a file is checked as loaded
        from framecolor import weights

        keras = str(backbone_weights) == weights.KERAS
        backbone_weights = weights.weights_file(backbone_weights) if keras else Path(backbone_weights)
    saved = rundir.open_run(run_dir, resume)
    if saved is not None:
        rundir.check_start(saved, init=init, backbone_weights=backbone_weights, run_dir=run_dir)
        rundir.check_inputs(saved, inputs, run_dir)
        rundir.check_resumable(run_dir)
    config, model_config, init_model = _resolve_config(config, saved, init, run_dir)
    backbone = None if saved is not None or backbone_weights is None else \
        _load_backbone(backbone_weights, model_config, config.size)
    frameset, train_idx, val_idx = _load_data(inputs, config, cache_dir, progress, saved, run_dir)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "previews").mkdir(exist_ok=True)
    if saved is None:
        _write_run_record(run_dir, {
            "train_config": dataclasses.asdict(config),
            "model_config": model_config.to_dict(),
            "data_key": frameset.key,
            "inputs": [str(p) for p in inputs],
            "init": str(init) if init is not None else None,
            "backbone_weights": str(backbone_weights) if backbone_weights else None,
        })

    # -- devices, model, state (restored from the last checkpoint on resume)
    mesh = make_mesh()
    batch_sharding = NamedSharding(mesh, P("data"))
    # Only a run that freezes gives the backbone an Adam of its own (steps.make_optimizer):
    # every other run's optimizer state, and so its checkpoints, stay as they have been.
    frozen = backbone_keys(variable_shapes(model_config, config.size)["params"]) \
        if config.freeze_backbone_epochs > 0 else frozenset()
    if config.freeze_backbone_epochs > 0 and not frozen:
        raise TrainingError("cannot find the backbone in the model's parameters to freeze it")
    with Checkpoints(run_dir / "checkpoints", keep=config.keep_checkpoints) as ckpts:
        restored = None
        if saved is not None and ckpts.latest_step() is not None:
            abstract = jax.eval_shape(
                lambda: init_state(fresh_variables(model_config, 0, config.size), lr=config.lr,
                                   clip_norm=config.clip_norm, seed=0, mesh=mesh, frozen=frozen)
            )
            try:
                restored = ckpts.restore_newest(abstract, NamedSharding(mesh, P()))
            except CheckpointMismatch as exc:
                if not frozen:
                    raise
                # Before d050c24 a run that froze the backbone kept one Adam for all of it.
                raise TrainingError(f"{exc}: a run with --freeze-backbone-epochs started before framecolor gave "
                                    "the frozen backbone an Adam of its own keeps another optimizer state; start a "
                                    f"new --out, with --init {run_dir / modelfile.RUN_MODEL_NAME} if it has one"
                                    ) from None
        if restored is None:
            if saved is not None and saved.get("init"):  # killed before its first checkpoint
                init_model = modelfile.load_model(saved["init"])
            if saved is not None and saved.get("backbone_weights"):  # killed before its first checkpoint
                backbone = _load_backbone(saved["backbone_weights"], model_config, config.size)
            variables = _start_variables(model_config, config.seed, init_model, backbone, config.size)
            state = init_state(variables, lr=config.lr, clip_norm=config.clip_norm, seed=config.seed, mesh=mesh,
                               frozen=frozen)
            loop = LoopState(monitor=callbacks.Monitor(lr=config.lr))
        else:
            last, state, meta = restored
            loop = LoopState.from_dict(meta)
            if loop.monitor.best_step >= 0 and loop.monitor.best_step not in ckpts.steps():
                # The best epoch's weights make model.fcm at the end: every resume trained, then failed there.
                raise TrainingError(f"the best epoch's checkpoint ({run_dir / 'checkpoints' / str(loop.monitor.best_step)})"
                                    " is gone, and the run's model.fcm is made from it; start a new run "
                                    "(another --out), or --init it from the model.fcm this run has")
            _check_part_epoch_fits(loop, config.epochs, run_dir)
            loop.monitor = callbacks.with_patience(loop.monitor, config.patience)
            if loop.next_epoch >= config.epochs:
                log(f"the run in {run_dir} has already trained its {_epochs(loop.next_epoch)}; "
                    f"resume with --epochs above {loop.next_epoch} to train on")
            elif loop.monitor.stopped:
                log(f"the run stopped early after epoch {loop.next_epoch}: no improvement for "
                    f"{_epochs(loop.monitor.bad_epochs)}; to train on, resume with a --patience above that "
                    "(0: never stop)")
            else:
                log(f"resuming from checkpoint {last} (epoch {loop.next_epoch + 1}, step {loop.skip_steps})")
                # Against the rate the run had reached, not the one it began with: asked
                # for again after a plateau had halved it, the first rate was ignored.
                wanted = resume_lr if resume_lr is not None else (
                    config.lr if config.lr != saved["train_config"]["lr"] else None)
                if wanted is not None and not math.isclose(wanted, loop.monitor.lr, rel_tol=1e-6):
                    loop.monitor = dataclasses.replace(loop.monitor, lr=wanted)
                    log(f"learning rate set to {wanted:g}")
        callbacks.write_metrics(run_dir / "metrics.jsonl", loop.history)
        model_path = run_dir / modelfile.RUN_MODEL_NAME
        if saved is not None:
            # What this resume gave anew (--epochs, --patience, ...) is the run's from
            # now on, whether it trains on or not: read back from run.json, the first
            # options ended the next resume at once (the steps of an epoch it stopped
            # in dropped), or trained on a run this one had ended.
            options = json.loads(json.dumps(dataclasses.asdict(config)))  # as run.json holds them: lists, not tuples
            if options != saved["train_config"]:
                _write_run_record(run_dir, {**saved, "train_config": options})
            if (loop.next_epoch >= config.epochs or loop.monitor.stopped) and _model_is_final(model_path, loop):
                # Nothing left to train, and model.fcm says so already.
                return TrainResult(run_dir, model_path, loop.history, loop.monitor.best_epoch, loop.monitor.best,
                                   early_stopped=loop.monitor.stopped)
        weights = bin_weights_for(frameset.frames, train_idx) if model_config.head == "bins" else None
        train_step, eval_step = compiled_steps(
            model_config, config.clip_norm, config.size, config.loss, mesh, frozen, weights
        )
        feed = dataset.make_feed(frameset.frames, mesh, batch_sharding, config.feed)
        # Fixed preview frames spread over the validation set (or the training
        # set without one) go first in the evaluation order.
        pool = val_idx if len(val_idx) else train_idx
        picks = np.unique(np.linspace(0, len(pool) - 1, min(config.preview_frames, len(pool))).round().astype(int))
        order = np.concatenate([pool[picks], np.delete(pool, picks)]) if len(val_idx) else pool[picks]
        evaluation = _Evaluation(eval_step, feed, dataset.eval_batches(order, config.batch_size), len(picks), bool(len(val_idx)))
        epoch_runner = _EpochRunner(train_step, feed, train_idx, config, ckpts, on_step, progress)

        part_seconds = 0.0  # the steps of an epoch stopped in, not yet in the history
        stop, received = threading.Event(), []
        disk_full = None  # a disk too full for the run's checkpoints or files: said once model.fcm is made
        try:
            with _stop_on_signals(stop, received, log):
                for epoch in range(loop.next_epoch, config.epochs):
                    if loop.monitor.stopped:
                        break
                    if abs(get_lr(state) - loop.monitor.lr) > 1e-6 * loop.monitor.lr:  # float32 vs float64
                        state = set_lr(state, loop.monitor.lr)
                    state, run = epoch_runner(state, epoch, loop, stop)
                    if run.interrupted:
                        part_seconds = run.seconds
                        break
                    state = _end_epoch(state, epoch, run, loop, evaluation, ckpts, config, run_dir, log)
                    if loop.monitor.stopped:
                        log(f"early stop: no improvement for {_epochs(config.patience)}")
                    if stop.is_set():
                        break
            ckpts.wait()
        except (DiskFullError, OSError) as exc:
            # It ended the run with no model.fcm, which takes less room than a
            # checkpoint (no optimizer state) and often still fits.
            disk_full = _disk_full(exc, run_dir)
            if disk_full is None:
                raise
        monitor = loop.monitor
        # A stop that came with the last epoch's end (or an early stop's)
        # interrupted nothing: the run is complete, and a resume would have nothing to do.
        interrupted = disk_full is not None or (loop.next_epoch < config.epochs and not loop.monitor.stopped and (
            stop.is_set() or bool(loop.skip_steps)))
        stop_signal = received[0] if received else None
        if interrupted and monitor.best_step < 0:  # not one epoch done: no model yet
            if disk_full is not None:
                raise disk_full
            log("interrupted; resume with --resume")
            return TrainResult(run_dir, None, loop.history, monitor.best_epoch, monitor.best, interrupted=True,
                               stop_signal=stop_signal)

        # -- the best epoch's weights become the model file (so far, if interrupted:
        # a run stopped after hours must leave a model to use, not only checkpoints)
        with _said_with(disk_full):
            # (A full disk met mid-epoch leaves the state that epoch began with, donated to its steps.)
            if 0 <= monitor.best_step and (_deleted(state) or monitor.best_step != int(state.step)):
                state, _ = ckpts.restore(monitor.best_step, state, NamedSharding(mesh, P()))
        summary = {
            "epochs": len(loop.history),
            "best_epoch": monitor.best_epoch + 1,
            "best_loss": None if math.isinf(monitor.best) else monitor.best,
            "monitored": evaluation.monitored,
            "early_stopped": monitor.stopped,
            "interrupted": interrupted,
            "train_frames": int(len(train_idx)),
            "val_frames": int(len(val_idx)),
            "size": config.size,
            "inputs": [str(p) for p in inputs],
            "train_config": dataclasses.asdict(config),
            # The whole run's, every process's: this process's own clock gave a
            # resumed run only the time since its last resume.
            "seconds": sum(row["time"] for row in loop.history) + part_seconds,
        }
        variables = jax.device_get(state.variables)
        readout = {}
        if model_config.mode == "lab" and model_config.head == "regress":
            pool = val_idx if len(val_idx) else train_idx
            readout["saturation"] = chroma_gain(model_config, variables, frameset.frames, pool, config.size)
            frames = "validation" if len(val_idx) else "training"  # no validation frames: the training ones
            log(_saturation_note(readout["saturation"], frames))
        with _said_with(disk_full):
            modelfile.save_model(model_path, model_config, variables, summary=summary, readout=readout)
        if disk_full is not None:
            last = ckpts.latest_step()
            raise OutputError(f"{disk_full}; {model_path} holds the best epoch so far ({monitor.best_epoch + 1}); "
                              "free some space, then resume with --resume"
                              + (f" (from checkpoint {last})" if last is not None else ""))
        if interrupted:
            log(f"interrupted; {model_path} holds the best epoch so far ({monitor.best_epoch + 1}); "
                "resume with --resume")
        return TrainResult(run_dir, model_path, loop.history, monitor.best_epoch, monitor.best,
                           early_stopped=monitor.stopped, interrupted=interrupted, stop_signal=stop_signal)


def _write_run_record(run_dir: Path, record: dict) -> None:
    """run.json: the run's options, model and inputs, read back by --resume."""
    write_atomic(run_dir / "run.json", json.dumps(record, indent=2).encode())


def _check_part_epoch_fits(loop: "LoopState", epochs: int, run_dir: Path) -> None:
    """A checkpoint taken in the middle of an epoch is resumed only to finish
    that epoch: fewer --epochs ended the run at once, that epoch's steps dropped without a word."""
    if loop.skip_steps and loop.next_epoch >= epochs:
        raise TrainingError(
            f"the run in {run_dir} stopped in epoch {loop.next_epoch + 1} (after step {loop.skip_steps}), which "
            f"--epochs {epochs} leaves unfinished; resume with --epochs {loop.next_epoch + 1} or more to finish it "
            "(its model.fcm holds the best epoch so far)"
        )


def _model_is_final(path: Path, loop: "LoopState") -> bool:
    """Whether `path` is the model file the run wrote when it ended after
    `loop`'s epochs: a resume with nothing left to train keeps it as it is,
    where it was written anew for nothing; one that is missing, or made
    when the run was stopped, is made anew."""
    from framecolor import modelfile

    try:
        summary = modelfile.read_header(path).get("summary") or {}
    except FramecolorError:
        return False
    return (summary.get("interrupted") is False and summary.get("epochs") == len(loop.history)
            and summary.get("best_epoch") == loop.monitor.best_epoch + 1)


def _saturation_note(gain: float, frames: str) -> str:
    """The log line of the readout gain, which chroma_gain keeps within
    [1, MAX_CHROMA_GAIN]: at either end it does not restore the frames' chroma energy."""
    if gain <= 1.0:
        why = f"the model's color is already at least as strong as the {frames} frames'"
    elif gain >= MAX_CHROMA_GAIN:
        why = f"capped: the {frames} frames' chroma energy would take more"
    else:
        why = f"restores the {frames} frames' chroma energy"
    return f"readout saturation {gain:.3f} ({why})"


@dataclass
class LoopState:
    """Where the loop stands; saved as JSON in every checkpoint."""

    monitor: callbacks.Monitor
    next_epoch: int = 0  # the epoch to run next
    skip_steps: int = 0  # its steps already done (a mid-epoch checkpoint)
    carried: dict = dataclasses.field(default_factory=lambda: {"loss_sum": 0.0, "images": 0, "seconds": 0.0})
    history: list = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "monitor": self.monitor.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "LoopState":
        return cls(**{**d, "monitor": callbacks.Monitor.from_dict(d["monitor"])})


@dataclass
class _EpochRun:
    loss_sum: float  # over all steps of the epoch so far (resumed part included)
    images: int
    seconds: float
    warmup_s: float = 0.0  # first-call (compile) time, kept out of images/s
    warmup_images: int = 0
    interrupted: bool = False


class _EpochRunner:
    """Runs the steps of one epoch; a Ctrl-C (or SIGTERM) saves a mid-epoch checkpoint."""

    def __init__(self, train_step, feed, train_idx, config, ckpts, on_step, progress):
        self.train_step, self.feed, self.train_idx = train_step, feed, train_idx
        self.config, self.ckpts, self.on_step, self.progress = config, ckpts, on_step, progress
        self.steps = len(train_idx) // config.batch_size
        self.compiled = set()  # the freeze values whose step has compiled: a run that freezes compiles two

    def __call__(self, state, epoch, loop: LoopState, stop: threading.Event):
        cfg = self.config
        first = loop.skip_steps if epoch == loop.next_epoch else 0
        carried = loop.carried if first else {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
        freeze = epoch < cfg.freeze_backbone_epochs
        plan = dataset.epoch_batches(self.train_idx, cfg.batch_size, cfg.seed, epoch)
        loss_acc = jnp.zeros((), jnp.float32)  # summed on the device: no sync per step
        done, warmup_s, warmup_images = first, 0.0, 0
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.steps, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                       leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()

        def summary(interrupted=False):
            return _EpochRun(
                loss_sum=carried["loss_sum"] + float(loss_acc),
                images=carried["images"] + (done - first) * cfg.batch_size,
                seconds=carried["seconds"] + time.perf_counter() - t0,
                # The interrupted part's compile too: counted as steps, it made a
                # resumed epoch's images/s in metrics.jsonl a small fraction of the truth.
                warmup_s=carried.get("warmup_s", 0.0) + warmup_s,
                warmup_images=carried.get("warmup_images", 0) + warmup_images,
                interrupted=interrupted,
            )

        try:
            for i, batch in enumerate(self.feed.batches(plan[first:]), start=first):
                t_step = time.perf_counter()
                state, metrics = self.train_step(state, batch, freeze)
                loss_acc = loss_acc + metrics["loss"]
                done = i + 1
                if freeze not in self.compiled:  # the first call compiles
                    jax.block_until_ready(loss_acc)
                    self.compiled.add(freeze)
                    warmup_s, warmup_images = time.perf_counter() - t_step, cfg.batch_size
                if done % cfg.log_every == 0 or done == self.steps:
                    total = float(loss_acc)  # the one host sync per log interval
                    if not math.isfinite(total):
                        _raise_nonfinite(total, epoch, done, self.ckpts, loop.monitor.lr)
                    if bar is not None:
                        rate = ((done - first) * cfg.batch_size - warmup_images) / max(
                            time.perf_counter() - t0 - warmup_s, 1e-9
                        )
                        bar.set_postfix(loss=f"{(carried['loss_sum'] + total) / done:.4g}", img_s=f"{rate:.1f}")
                if bar is not None:
                    bar.update(1)
                if self.on_step is not None:
                    self.on_step(epoch, done, metrics)
                # A stop in an epoch's last step lets the epoch end (validation, its
                # checkpoint, its metrics row; the loop stops after it): saved as
                # a mid-epoch checkpoint, the epoch's work went without a model
                # or a metrics row, and its step, the same as the epoch's, never
                # got the checkpoint that ranks it for the best.
                if stop.is_set() and done < self.steps:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            stop.set()
            # Ctrl-C itself (or on_step) after the last step: the epoch ends, as
            # a stop by signal lets it. Saved mid-epoch at the step its own
            # checkpoint would take, it left that checkpoint without the loss
            # that keeps the best, and the model file went with it.
            if done < self.steps or _deleted(state):
                return state, self._save_part(state, epoch, done, loop, summary(interrupted=True))
        finally:
            if bar is not None:
                bar.close()
        run = summary()
        if not math.isfinite(run.loss_sum):
            _raise_nonfinite(run.loss_sum, epoch, done, self.ckpts, loop.monitor.lr)
        return state, run

    def _save_part(self, state, epoch, done, loop: LoopState, run: "_EpochRun") -> "_EpochRun":
        """A mid-epoch checkpoint of the `done` steps run, to resume from."""
        # Never save a state that a half-dispatched step donated, nor a non-finite one.
        if math.isfinite(run.loss_sum) and not _deleted(state):
            part = {"loss_sum": run.loss_sum, "images": run.images, "seconds": run.seconds,
                    "warmup_s": run.warmup_s, "warmup_images": run.warmup_images}
            mid = LoopState(loop.monitor, epoch, done, part, loop.history)
            self.ckpts.save(int(state.step), state, mid.to_dict())
            loop.next_epoch, loop.skip_steps = epoch, done
        return run


@dataclass
class _Evaluation:
    eval_step: Any
    feed: Any
    plan: list  # fixed-shape (indices, mask) batches; the preview frames first
    n_preview: int
    has_val: bool

    @property
    def monitored(self) -> str:
        return "val_loss" if self.has_val else "train_loss"

    def __call__(self, state):
        """(mean validation loss or None, previews of the first batch as uint8 numpy)."""
        plan = self.plan if self.has_val else self.plan[:1]
        sums, previews = [], None
        for (_, mask), batch in zip(plan, self.feed.batches(idx for idx, _ in plan)):
            out, images = self.eval_step(state, batch, jnp.asarray(mask))
            sums.append(out)
            if previews is None:
                previews = {k: np.asarray(v)[: self.n_preview] for k, v in images.items()}
        if not self.has_val:
            return None, previews
        loss_sum = sum(float(s["loss_sum"]) for s in sums)
        count = sum(float(s["count"]) for s in sums)
        return loss_sum / max(count, 1.0), previews


def _end_epoch(state, epoch, run: _EpochRun, loop: LoopState, evaluation, ckpts, config, run_dir, log):
    """Validation, callbacks, the epoch checkpoint, metrics.jsonl, preview and loss curve."""
    train_loss = run.loss_sum / max(run.images // config.batch_size, 1)
    val_loss, previews = evaluation(state)
    if val_loss is not None and not math.isfinite(val_loss):
        _raise_nonfinite(val_loss, epoch, run.images // config.batch_size, ckpts, loop.monitor.lr)
    lr_used = loop.monitor.lr
    loop.monitor = callbacks.update_monitor(
        loop.monitor,
        val_loss if val_loss is not None else train_loss,
        epoch=epoch,
        step=int(state.step),
        patience=config.patience,
        plateau_patience=config.plateau_patience,
        plateau_factor=config.plateau_factor,
        min_lr=config.min_lr,
    )
    row = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "lr": lr_used,
        "images_per_s": (run.images - run.warmup_images) / max(run.seconds - run.warmup_s, 1e-9),
        "time": run.seconds,
    }
    loop.history.append(row)
    loop.next_epoch, loop.skip_steps = epoch + 1, 0
    loop.carried = {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
    step = int(state.step)
    ckpts.save(step, state, loop.to_dict(), _best_rank(loop.monitor, step, row[evaluation.monitored]))
    callbacks.append_metrics(run_dir / "metrics.jsonl", row)
    callbacks.write_png(run_dir / "previews" / f"epoch_{epoch + 1:03d}.png", callbacks.preview_grid(**previews))
    callbacks.write_png(run_dir / "loss.png", callbacks.loss_curve(loop.history))
    note = "" if loop.monitor.lr == lr_used else f", lr -> {loop.monitor.lr:.3g}"
    log(
        f"epoch {epoch + 1}/{config.epochs}: train {train_loss:.5f}"
        + (f", val {val_loss:.5f}" if val_loss is not None else "")
        + f", {row['images_per_s']:.1f} img/s{note}"
        + (f" (first step + compile {run.warmup_s:.1f} s)" if run.warmup_images else "")
    )
    # The epoch's checkpoint on disk before the next epoch begins: a disk too
    # full for it is said now, while these weights (perhaps the best) are in
    # memory for model.fcm, not an epoch later, when they are gone.
    ckpts.wait()
    return state


def _best_rank(monitor: callbacks.Monitor, step: int, loss: float) -> float:
    """The loss the checkpoints rank `step` by to keep the best one: its own
    where the monitor counts it as the best, else one that never wins.

    The model file is the monitor's best, and an epoch that beat it by less
    than min_delta is not that: ranked by its loss, it was kept as the best
    instead, and the monitor's best deleted once --keep newer epochs came
    ("cannot restore checkpoint" at the end of the run)."""
    return loss if monitor.best_step == step else math.inf


def _disk_full(exc: Exception, run_dir: Path) -> DiskFullError | None:
    """The error that says a disk is too full for the run (a checkpoint's is
    already one), or None for any other error."""
    if isinstance(exc, DiskFullError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"cannot write in {run_dir}: no space left on the disk")
    return None


@contextmanager
def _said_with(disk_full: DiskFullError | None):
    """Where the disk filled up, the model file failing too is said in the same one line."""
    try:
        yield
    except FramecolorError as exc:
        if disk_full is None:
            raise
        raise OutputError(f"{disk_full}; and {exc}") from None


def _deleted(state) -> bool:
    return any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(state))


def _raise_nonfinite(value, epoch, step, ckpts, lr):
    ckpts.wait()
    last = ckpts.latest_step()
    kept = f"the last good checkpoint ({last}) is kept in {ckpts.directory}" if last is not None else "no checkpoint was saved yet"
    raise TrainingError(
        f"the loss became {value} in epoch {epoch + 1} at step {step}; {kept}; try a lower --lr (now {lr:g})"
    )
