"""Training checkpoints with orbax: the train state plus a small JSON of loop state.

The state is stored packed: all leaves of one dtype raveled into one vector.
Orbax spends about a millisecond per array, and a model state has ~900 of
them, so packing makes a save ~10x faster (~0.1 s instead of ~1 s); the
packed vectors are unpacked along the pytree of a freshly built state.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-save leaves only a temporary directory, which
is ignored (and cleaned up) when the run is resumed. A finished one that
cannot be restored (cut short by a copy, a failing disk) is moved aside as
STEP.damaged when the run resumes from the newest one before it. We keep
the latest ``keep`` checkpoints plus the one with the best monitored loss
(for the final model file); checkpoints saved on interruption carry no
metrics and are kept only while they are among the latest.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from framecolor.errors import DiskFullError, TrainingError

# How a full disk or quota reads in an OSError's or orbax's message.
_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")


def _options(keep: int) -> ocp.CheckpointManagerOptions:
    policies = getattr(ocp.checkpoint_managers, "AnyPreservationPolicy", None)
    if policies is not None:
        from orbax.checkpoint.checkpoint_managers import BestN, LatestN

        policy = policies(
            [
                LatestN(n=keep),
                # BestN keeps the *largest* metrics unless reversed.
                BestN(get_metric_fn=lambda m: m["loss"], reverse=True, n=1, keep_checkpoints_without_metrics=False),
            ]
        )
        # best_fn is what makes orbax write each checkpoint's metrics to disk:
        # without it a reopened manager (a resumed run) read none back, BestN
        # kept nothing, and the best epoch's checkpoint was deleted once
        # `keep` newer ones were saved: the model file could not be made.
        return ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=lambda m: m["loss"], best_mode="min",
                                            cleanup_tmp_directories=True)
    # Older orbax: best-N only; keep interruption checkpoints too.
    return ocp.CheckpointManagerOptions(
        max_to_keep=keep + 1,
        best_fn=lambda m: m["loss"],
        best_mode="min",
        keep_checkpoints_without_metrics=True,
        cleanup_tmp_directories=True,
    )


class _SavedWithoutMetrics(logging.Filter):
    """Drops orbax's warning that a checkpoint came without metrics.

    A run stopped mid-epoch (Ctrl-C, SIGTERM) saves such a checkpoint on
    purpose, and orbax warned of it on the user's terminal
    ("WARNING:absl:Requested `tracked_metric`; did not provide metrics.")
    right beside train's own word that the run can be resumed.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Requested `tracked_metric`")


class _DiskFullTold(logging.Filter):
    """Drops orbax's logs of a save that failed for a full disk.

    Each of its writer threads logged its traceback (300 lines on the
    user's terminal) before the error reached Checkpoints, which says it in
    one line; any other failure is still logged, and raised.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (_says_disk_full(record.getMessage()) or (error is not None and _says_disk_full(str(error))))


def _says_disk_full(text: str) -> bool:
    return any(words in text for words in _DISK_FULL_WORDS)


class _UnreadReadErrors(logging.Filter):
    """asyncio's "Task exception was never retrieved" for the other reads of a
    checkpoint whose restore failed: orbax reads its arrays together, says the
    first error, and leaves the rest (pages of TensorStore spec each) to be
    logged when collected; the failure is said once, by restore_newest."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Task exception was never retrieved") and "tensorstore_spec" in text)


def _drop_late_read_callbacks(unraisable, previous) -> None:
    """sys.unraisablehook once a restore has failed: a TensorStore read that
    ends after orbax closed its event loop tells that loop from its own
    thread, which raises "Event loop is closed" where nothing can catch it
    (a traceback on stderr, at random). Anything else goes to `previous`."""
    exc = unraisable.exc_value
    if not (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed" and unraisable.object is None):
        previous(unraisable)


def _quiet_failed_restore() -> None:
    """Quiet what a failed restore leaves behind it (_UnreadReadErrors,
    _drop_late_read_callbacks), for the rest of the process: it comes late."""
    import functools
    import sys

    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _UnreadReadErrors) for f in logger.filters):
        logger.addFilter(_UnreadReadErrors())
    if getattr(sys.unraisablehook, "func", None) is not _drop_late_read_callbacks:
        sys.unraisablehook = functools.partial(_drop_late_read_callbacks, previous=sys.unraisablehook)


def _quiet_orbax() -> None:
    logger = logging.getLogger("absl")  # orbax logs through absl, whose records go to this logger
    for kind in (_SavedWithoutMetrics, _DiskFullTold):
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


class Checkpoints:
    """The checkpoints of one run directory: ``save``, ``latest_step``, ``restore``, ``restore_newest``."""

    def __init__(self, directory, keep: int = 3):
        _quiet_orbax()
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(self.directory, options=_options(max(1, keep)))

    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state, meta: dict, loss: float | None = None) -> None:
        """Save ``state`` (a pytree of arrays) and ``meta`` (JSON) as ``step``.

        ``loss`` (the monitored loss) ranks the checkpoint for "best"; None for
        mid-epoch saves. The device->host copy happens before this returns, so
        the caller may donate ``state`` to the next step right away.
        """
        if step in self._manager.all_steps():
            return
        with self._disk_errors():
            self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(pack(state)), meta=ocp.args.JsonSave(meta)),
                metrics=None if loss is None else {"loss": float(loss)},
            )

    @contextlib.contextmanager
    def _disk_errors(self):
        """A full disk mid-save: a DiskFullError, and no half-written checkpoint left.

        Orbax reports it from TensorStore as a ValueError that quotes the OS
        error; its unfinished checkpoint is a temporary directory, which
        resume would skip anyway, but it holds the space the user needs.
        """
        try:
            yield
        except (OSError, ValueError) as exc:
            if not _says_disk_full(str(exc)):
                raise
            try:  # no save may still be writing into what is removed below
                self._manager.wait_until_finished()
            except Exception:  # noqa: BLE001 - the same full disk, already being reported
                pass
            for partial in self.directory.glob("*.orbax-checkpoint-tmp*"):
                shutil.rmtree(partial, ignore_errors=True)
            # Orbax had struck the older steps it meant to delete once the new one
            # was saved from its list: deleted they were not, and the best may be among them.
            self._manager.reload()
            raise DiskFullError(f"cannot save a checkpoint in {self.directory}: no space left on the disk") from None

    def restore(self, step: int, like, sharding):
        """(state, meta) of ``step``, placed with ``sharding``.

        ``like`` (arrays or jax.ShapeDtypeStruct) gives the structure and dtypes;
        a checkpoint written on any number of devices restores onto this mesh.
        """
        try:
            out = self._restore_packed(step, like)
        except _DAMAGED as exc:
            raise TrainingError(f"cannot restore checkpoint {step} in {self.directory}: {_reason(exc)}") from exc
        return self._placed(out, like, sharding)

    def restore_newest(self, like, sharding) -> tuple[int, object, dict] | None:
        """(step, state, meta) of the newest checkpoint that can be restored
        (as ``restore``), or None where there is no checkpoint.

        A newer one that cannot be (cut short by a copy or a failing disk)
        blocked every resume: it is moved aside, not deleted, with a warning
        that names it, once an older one is restored; where none can be,
        nothing is moved and the error says so.
        """
        damaged = []
        for step in sorted(self.steps(), reverse=True):
            try:
                out = self._restore_packed(step, like)
            except _DAMAGED as exc:
                _quiet_failed_restore()
                damaged.append((step, exc))
                continue
            placed = self._placed(out, like, sharding)  # first: one that does not fit moves nothing aside
            for bad, exc in damaged:
                aside = self._move_aside(bad, exc, step)
                warnings.warn(f"checkpoint {bad} in {self.directory} cannot be restored ({_reason(exc)}); moved it "
                              f"to {aside.name} there, and the run resumes from checkpoint {step}", stacklevel=2)
            return step, *placed
        if damaged:
            step, exc = damaged[0]
            raise TrainingError(f"no checkpoint in {self.directory} can be restored (checkpoint {step}: "
                                f"{_reason(exc)}); start a new run (another --out), or --init it from its model.fcm")
        return None

    def _restore_packed(self, step: int, like) -> dict:
        sizes = _packed_sizes(like)
        abstract = {dt: jax.ShapeDtypeStruct((n,), np.dtype(dt)) for dt, n in sizes.items()}
        return self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )

    @staticmethod
    def _placed(out: dict, like, sharding):
        state = jax.device_put(unpack({k: np.asarray(v) for k, v in out["state"].items()}, like), sharding)
        return state, out["meta"]

    def _move_aside(self, step: int, exc: Exception, resumed: int) -> Path:
        """Rename the damaged ``step`` to STEP.damaged (-2, -3, ... where taken),
        kept for the user; no step name to orbax or rundir, whose checkpoints
        are named by their digits alone, so the run saves that step anew."""
        folder, aside, n = self.directory / str(step), self.directory / f"{step}{DAMAGED_SUFFIX}", 1
        while aside.exists():  # damaged at that step before
            n += 1
            aside = self.directory / f"{step}{DAMAGED_SUFFIX}-{n}"
        try:
            folder.rename(aside)
        except OSError as error:
            raise TrainingError(f"checkpoint {step} in {self.directory} cannot be restored ({_reason(exc)}), nor "
                                f"moved aside ({error.strerror}): remove {folder} to resume from checkpoint "
                                f"{resumed}") from None
        self._manager.reload()
        return aside

    def wait(self) -> None:
        with self._disk_errors():
            self._manager.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What orbax raises for a checkpoint it cannot read: a step folder emptied or
# cut short, its metadata garbled, its TensorStore data truncated or lost.
_DAMAGED = (OSError, ValueError, KeyError)

# The name a damaged checkpoint is moved aside to ends so (checkpoints/6.damaged).
DAMAGED_SUFFIX = ".damaged"


def _reason(exc: Exception) -> str:
    """An error from orbax or TensorStore in a line: their messages run to pages (specs, JSON)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _packed_sizes(tree) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for leaf in jax.tree.leaves(tree):
        key = np.dtype(leaf.dtype).name
        sizes[key] = sizes.get(key, 0) + int(np.prod(leaf.shape))
    return sizes


def pack(tree) -> dict[str, np.ndarray]:
    """{dtype name: all leaves of that dtype raveled and concatenated, in leaf order} (on the host)."""
    leaves = jax.device_get(jax.tree.leaves(tree))
    groups: dict[str, list] = {}
    for leaf in leaves:
        leaf = np.asarray(leaf)
        groups.setdefault(leaf.dtype.name, []).append(leaf.ravel())
    return {dt: np.concatenate(parts) for dt, parts in groups.items()}


class CheckpointMismatch(TrainingError):
    """A checkpoint whose arrays are not the state's: another model, or another optimizer."""


def unpack(packed: dict[str, np.ndarray], like):
    """The inverse of ``pack``: a pytree shaped like ``like`` (arrays or ShapeDtypeStructs)."""
    leaves, treedef = jax.tree.flatten(like)
    if _packed_sizes(like) != {dt: int(v.size) for dt, v in packed.items()}:
        raise CheckpointMismatch("the checkpoint does not fit this model (another architecture or optimizer?)")
    offsets = dict.fromkeys(packed, 0)
    out = []
    for leaf in leaves:
        dt, n = np.dtype(leaf.dtype).name, int(np.prod(leaf.shape))
        out.append(packed[dt][offsets[dt] : offsets[dt] + n].reshape(leaf.shape))
        offsets[dt] += n
    return jax.tree.unflatten(treedef, out)
