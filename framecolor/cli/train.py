"""`framecolor train`: train a colorizer on videos, images and image folders."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import List, Optional

import typer

from framecolor.cli.common import debugging, guarded, say

_HELP = """Train a colorizer on color videos, images and image folders.

\b
  framecolor train a.mp4 b.mkv photos/ --out runs/first --epochs 20
  framecolor train a.mp4 --out runs/ft --init default --freeze-backbone-epochs 2
  framecolor train a.mp4 b.mkv photos/ --out runs/first --resume

A folder whose photos are nine in ten or more numbered under one name and
of one size (scan_0001.png, scan_0002.png, ...), each much like the next,
holds a film scanned to frames: those are sampled and split as a video's
frames are; its few other photos are used one by one (a cover.jpg) or, a
scan of another size, left out, with a warning that names them.

RUN_DIR (--out) gets model.fcm (the best epoch), metrics.jsonl, loss.png,
previews/, checkpoints/ and run.json. Ctrl-C saves a checkpoint (and the
best epoch so far as model.fcm); --resume continues exactly where the run
stopped, with the run's options (--epochs, --lr, --patience and a few others
may be given anew, and the next --resume keeps them).
"""


def train(
    inputs: List[Path] = typer.Argument(..., help="Color videos, images, or folders of them, to learn from."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created; must not hold a run unless --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs (default: 20)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Frames per step, all devices (default: 16)."),
    size: Optional[int] = typer.Option(None, "--size", help="Training crop side in pixels, at least 75 (default: 224)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default: 1e-3; with --init, 1e-4)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="mse, huber or l1, for the regress head (default: mse)."),
    head: Optional[str] = typer.Option(
        None, "--head", help="regress (ab by --loss) or bins (classification over ab bins: more vivid) (default: regress)."
    ),
    mode: Optional[str] = typer.Option(None, "--mode", help="lab (predict ab) or rgb (default: lab)."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="unet or seed (default: unet)."),
    width: Optional[float] = typer.Option(None, "--width", help="Channel width multiplier (default: 1.0)."),
    frames_per_video: Optional[int] = typer.Option(
        None, "--frames-per-video", help="Frames spread over each video or film of scans (default: 200)."
    ),
    every: Optional[int] = typer.Option(None, "--every", help="Take every k-th frame instead of --frames-per-video."),
    val_fraction: Optional[float] = typer.Option(
        None, "--val-fraction", help="Last part of each video held out for validation (default: 0.1)."
    ),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stop after N epochs without gain; 0 = never (default: 5)."),
    plateau_patience: Optional[int] = typer.Option(
        None, "--plateau-patience", help="Halve the LR after N epochs without gain (default: 2)."
    ),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help="Lowest LR on plateaus (default: 1e-6)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (init, data order, crops) (default: 0)."),
    init: Optional[str] = typer.Option(
        None, "--init", help="Fine-tune this model file (.fcm), a run folder's model, or 'default' for the shipped model."
    ),
    backbone_weights: Optional[str] = typer.Option(
        None, "--backbone-weights",
        help="ImageNet InceptionV3 weights (Keras .h5) for the backbone, or 'keras' for the copy Keras keeps "
             "in $KERAS_HOME/models or ~/.keras/models.",
    ),
    freeze_backbone_epochs: Optional[int] = typer.Option(
        None, "--freeze-backbone-epochs", help="Train only the decoder for the first N epochs (default: 0)."
    ),
    keep: Optional[int] = typer.Option(None, "--keep", help="Latest checkpoints kept, besides the best (default: 3)."),
    feed: Optional[str] = typer.Option(
        None, "--feed", help="auto, device (all frames on the accelerator) or host (prefetch thread) (default: auto)."
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir",
        help="Where decoded frames are cached (default: $FRAMECOLOR_CACHE, else $XDG_CACHE_HOME/framecolor, "
             "else ~/.cache/framecolor).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    from dataclasses import replace

    from framecolor import train as training
    from framecolor.errors import TrainingError

    if init is not None and any(v is not None for v in (width, decoder, mode, head)):
        raise TrainingError("--init takes the architecture from the model file; drop --width/--decoder/--mode/--head")
    if init is not None and backbone_weights is not None:
        raise TrainingError("--init already holds trained weights; drop --backbone-weights")
    if every is not None and frames_per_video is not None:
        # --every won and --frames-per-video was dropped without a word.
        raise TrainingError("--every and --frames-per-video both say which frames to take: give one of them")
    options = {
        "epochs": epochs,
        "head": head,
        "batch_size": batch_size,
        "size": size,
        # A new run from trained weights starts gentler (FINE_TUNE_LR); a resumed one goes on at its own.
        "lr": lr if lr is not None or init is None or resume else training.FINE_TUNE_LR,
        "loss": loss,
        "mode": mode,
        "decoder": decoder,
        "width": width,
        "val_fraction": val_fraction,
        "patience": patience,
        "plateau_patience": plateau_patience,
        "min_lr": min_lr,
        "seed": seed,
        "freeze_backbone_epochs": freeze_backbone_epochs,
        "keep_checkpoints": keep,
        "feed": feed,
    }
    if every is not None:
        options.update(every=every, frames_per_video=None)
    elif frames_per_video is not None:
        options["frames_per_video"] = frames_per_video
    config = replace(_start_options(out, resume, training.TrainConfig),
                     **{k: v for k, v in options.items() if v is not None})
    _check_rate_floor(config, lr_given=lr is not None, min_lr_given=min_lr is not None, resume=resume,
                      fine_tuning=init is not None)

    from framecolor import modelfile

    init_path = None if init is None else modelfile.model_path_for(init)  # "default", a run folder, a file

    if not debugging():
        # Orbax logs its background threads' failures (a full disk, say)
        # with their tracebacks before save() raises them, and save's
        # error is the one line the user needs.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
    result = training.train(
        inputs,
        out,
        config,
        init=init_path,
        backbone_weights=backbone_weights,
        resume=resume,
        resume_lr=lr if resume else None,  # given again: go on at it, whatever the run had reached
        cache_dir=cache_dir,
        progress=not quiet,
        log=say,  # a stop's note comes from another thread, while the bar is drawn
    )
    if result.interrupted:
        # 143 after SIGTERM (`kill`, a scheduler's time limit), as every command
        # exits; a script that tells a time limit from a Ctrl-C read 130 for both.
        raise typer.Exit(128 + (result.stop_signal or signal.SIGINT))
    best = f"best epoch {result.best_epoch + 1}, loss {result.best_loss:.5f}" if result.best_epoch >= 0 else "no epoch"
    typer.echo(f"{result.model_path} ({best})", err=True)


def _check_rate_floor(config, *, lr_given: bool, min_lr_given: bool, resume: bool, fine_tuning: bool) -> None:
    """A --min-lr above the rate the run will use, which plateaus would then
    never lower: refused against that rate whatever set it (--lr, fine-tuning's
    gentler default, the default), where only a --lr given beside it was
    compared. Only a --min-lr given here: the default floor, or a resumed
    run's own (which a resume cannot change), lets a lower --lr be, only
    never lowered; refused, a resume at a lower rate (after a loss that was
    not finite) had no way on. `fine_tuning`: --init is given, so that a
    new run's rate, no --lr given, is fine-tuning's default."""
    if not min_lr_given or (resume and not lr_given) or config.min_lr <= config.lr:
        return
    from framecolor.errors import TrainingError

    if lr_given:
        rate = f"--lr {config.lr:g}"
    else:
        which = "fine-tuning's default" if fine_tuning else "the default"
        rate = f"the learning rate {config.lr:g} ({which}; --lr sets another)"
    raise TrainingError(f"--min-lr {config.min_lr:g} is above {rate}: plateaus lower the rate down to --min-lr")


def _start_options(out: Path, resume: bool, config_type):
    """The options before those given on the command line: the run's own
    when resuming (only what is given again may change), else the defaults."""
    from dataclasses import fields

    from framecolor import rundir

    saved = rundir.saved_options(out) if resume else None
    if not saved:
        return config_type()
    return config_type(**{f.name: saved[f.name] for f in fields(config_type) if f.name in saved})


def register(app: typer.Typer) -> None:
    app.command("train", help=_HELP)(guarded(train))
