"""A training run's folder: made, or reopened to resume, and what a resumed
run must keep of how it began (its options, starting weights and inputs),
checked before any frame is decoded."""

from __future__ import annotations

import json
import os
from pathlib import Path

from framecolor import video
from framecolor.errors import TrainingError

# Options that may differ when a run is resumed (they do not change the math).
# A new --lr on resume replaces the run's current one (the way to go on after
# a non-finite loss).
RESUMABLE_CHANGES = {"epochs", "lr", "patience", "log_every", "preview_frames", "keep_checkpoints", "feed"}


def check_options(saved: dict, mine: dict, run_dir: Path) -> None:
    """A resumed run keeps the options that change its math (its saved
    train config against `mine`, both as dicts)."""
    diff = [
        f"{k} {saved[k]!r} -> {mine[k]!r}"
        for k in mine
        if k in saved and k not in RESUMABLE_CHANGES and saved[k] != mine[k]
    ]
    if diff:
        raise TrainingError(
            f"options differ from the run being resumed in {run_dir} ({'; '.join(diff)}); "
            "pass the same options or start a new --out"
        )


def check_start(saved: dict, *, init, backbone_weights, run_dir: Path) -> None:
    """A resumed run starts from the weights it began with (its checkpoints
    hold the rest): a different --init or --backbone-weights given with
    --resume was ignored without a word, the saved one used (and named in
    its error, where that one failed)."""
    for option, given in (("--init", init), ("--backbone-weights", backbone_weights)):
        name = option.lstrip("-").replace("-", "_")
        if given is not None and str(given) != saved.get(name):
            began = f"began with {option} {saved[name]}" if saved.get(name) else f"began without {option}"
            raise TrainingError(f"the run in {run_dir} {began}, and --resume continues it so: drop {option}, "
                                "or start a new run without --resume")


def check_inputs(saved: dict, inputs, run_dir: Path) -> None:
    """A resumed run trains on the inputs it began with, in that order (the
    frames' order is the split's): said before they are decoded, which takes
    minutes for a film, and naming them, where only a mismatch of the
    decoded frames was said."""
    began = saved.get("inputs")
    if began is None:
        return
    before, now = [os.path.abspath(p) for p in began], [os.path.abspath(p) for p in inputs]  # as the cache key
    if before != now:
        fix = "these are the same in another order: give them in that one" if sorted(before) == sorted(now) \
            else "resume it with those"
        raise TrainingError(f"the run in {run_dir} began with {' '.join(began)}; {fix}, or start a new run")


def saved_options(run_dir) -> dict | None:
    """The training options a run in `run_dir` was started with (run.json's),
    or None where there is none: --resume takes them for every option not
    given again, where a bare `train ... --resume` took the defaults and
    was refused (or went on to 20 epochs) for options the user never changed."""
    run_file = Path(run_dir) / "run.json"
    try:
        return json.loads(run_file.read_text()).get("train_config")
    except (OSError, ValueError, AttributeError):
        return None  # open_run says what is wrong, where it matters


def open_run(run_dir: Path, resume: bool) -> dict | None:
    """The saved run.json when resuming; refuse to train over an existing run."""
    run_file = run_dir / "run.json"
    # Missing folders are made (runs/NAME on a fresh checkout); a file in the way is an error.
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir():
        raise TrainingError(f"{existing}: is a file, not a folder for --out")
    # Before the frames are decoded (minutes on a long film), not when the run is made after them.
    video.check_writable_folder(existing, run_dir)
    if resume:
        if not run_file.is_file():
            raise TrainingError(f"nothing to resume in {run_dir} (no run.json); start without --resume")
        return _saved_run(run_file)
    ckpt_dir = run_dir / "checkpoints"
    # Any trace of a run's checkpoints: a step folder, orbax's unfinished one
    # (6.orbax-checkpoint-tmp-...), or one moved aside as damaged (6.damaged):
    # training afresh here would write over that run's model.fcm and metrics.
    if ckpt_dir.is_dir() and any(p.name[:1].isdigit() for p in ckpt_dir.iterdir()):
        raise TrainingError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out")
    # A run's model and metrics without its checkpoints (deleted to free space):
    # nothing to resume, and a new run wrote over them, its previews among the old ones.
    if _trained(run_dir):
        raise TrainingError(f"{run_dir} already holds a trained run (its model.fcm or metrics.jsonl); "
                            "choose another --out")
    return None


def _saved_run(run_file: Path) -> dict:
    """run.json as a run wrote it: an empty or hand-edited one gave a traceback (JSONDecodeError, KeyError)."""
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrainingError(f"cannot resume from {run_file}: {exc}") from None
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), dict) for k in ("train_config", "model_config")):
        raise TrainingError(f"cannot resume from {run_file}: it is not a run's record (damaged or edited?)")
    return saved


def check_resumable(run_dir: Path) -> None:
    """A run that trained epochs but has no checkpoint left (deleted by hand)
    started over from random weights under --resume, and wrote over its
    model.fcm and metrics.jsonl: refused, before its frames are decoded."""
    ckpt_dir = run_dir / "checkpoints"
    # Checkpoints are named by their step alone; one moved aside as damaged (6.damaged) is none to resume from.
    if ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir()):
        return
    if _trained(run_dir):
        raise TrainingError(f"the run in {run_dir} trained epochs but has no checkpoint left in {ckpt_dir} to resume "
                            "from; start a new run (another --out), or --init it from its model.fcm")


def _trained(run_dir: Path) -> bool:
    """Whether a run in `run_dir` trained epochs: its model file, or a metrics row."""
    metrics = run_dir / "metrics.jsonl"
    return (run_dir / "model.fcm").exists() or bool(metrics.is_file() and metrics.read_text().strip())


def check_outside_inputs(run_dir: Path, inputs) -> None:
    """A run folder inside a folder of training photos would put its previews
    (and checkpoints) among them: the next run would train on its own output."""
    run = run_dir.resolve()
    for folder in (Path(p).resolve() for p in inputs if Path(p).is_dir()):
        if run == folder or folder in run.parents:
            raise TrainingError(f"--out {run_dir} is inside the training folder {folder}: its previews would "
                                "become training photos; choose another --out")
