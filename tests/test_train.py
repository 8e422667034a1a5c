"""Training: the loop learns, resumes exactly, survives Ctrl-C and SIGKILL, splits over devices.

Every run here uses one tiny configuration, so the train and eval steps are
compiled once for the whole module (train.compiled_steps memoizes them); the
one subprocess (two devices, later SIGKILLed) compiles its own, at the same
time on the other core. The tests of --freeze-backbone-epochs share the steps
of its one run (FREEZE_CONFIG): its frozen and unfrozen variants, compiled once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from framecolor import callbacks, modelfile, train
from framecolor.errors import ModelFileError, OutputError, TrainingError
from tests import media

CONFIG = dataclasses.replace(train.TINY_TRAIN, epochs=2, patience=0)

# Runs train() in a fresh interpreter: argv = clip, run_dir, config JSON, cache
# dir, and the epoch in whose first step it stops dead (to be killed there).
_SCRIPT = """
import json, sys, time, jax
from framecolor import train
clip, run_dir, config, cache, block = sys.argv[1:6]
jax.config.update("jax_disable_most_optimizations", True)
print("devices", jax.device_count(), flush=True)
def hook(epoch, step, metrics):
    print("step", epoch, step, float(metrics["loss"]), float(metrics["grad_norm"]), flush=True)
    if epoch == int(block):
        time.sleep(3600)
train.train([clip], run_dir, train.TrainConfig(**json.loads(config)), cache_dir=cache, progress=False, on_step=hook)
"""



@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def clip(workdir):
    return media.make_video(workdir / "clip.mp4", width=64, height=48, frames=24, audio=False)


@pytest.fixture(scope="module")
def cache(workdir):
    return workdir / "cache"


def _run(clip, out, cache, config=CONFIG, **kwargs):
    return train.train([clip], out, config, cache_dir=cache, progress=False, log=lambda m: None, **kwargs)


def _start(clip, out, cache, config=CONFIG, devices=1, block_at_epoch=-1):
    args = [str(clip), str(out), json.dumps(dataclasses.asdict(config)), str(cache), str(block_at_epoch)]
    return _start_script(_SCRIPT, args, devices)


def _start_script(script, args, devices=1):
    """`script` in a fresh interpreter on `devices` simulated CPU devices; stdout and stderr piped."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
        JAX_PLATFORMS="cpu",
    )
    if devices > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
        env["JAX_NUM_CPU_DEVICES"] = str(devices)
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _variables(run_dir):
    return modelfile.load_model(Path(run_dir) / "model.fcm").variables


def _assert_same_variables(a, b, **tol):
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


@pytest.fixture(scope="module")
def two_device_run(workdir, clip, cache, data_parallel_run):
    """The CONFIG run on two (simulated) devices in a subprocess, stuck in epoch 2.

    Started before the reference run so that both compile at once on two
    cores; test_two_devices_then_sigkill_then_resume_on_one kills it.
    """
    out = workdir / "two_devices"
    proc = _start(clip, out, cache, devices=2, block_at_epoch=1)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def reference(two_device_run, workdir, clip, cache):
    """An uninterrupted run: the yardstick of the resume and multi-device tests.

    ``.steps`` maps (epoch, step) to that step's (loss, grad_norm).
    """
    steps = {}

    def record(epoch, step, metrics):
        steps[epoch, step] = (float(metrics["loss"]), float(metrics["grad_norm"]))

    result = _run(clip, workdir / "reference", cache, on_step=record)
    result.steps = steps
    return result


def test_loss_falls_and_run_files_are_written(reference):
    run = reference.run_dir
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) >= {"epoch", "train_loss", "val_loss", "lr", "images_per_s", "time"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(row["val_loss"]) for row in history)
    # The model file holds the best epoch and says so.
    loaded = modelfile.load_model(run / "model.fcm")
    assert loaded.config.width == CONFIG.width and loaded.config.mode == "lab"
    best = min(history, key=lambda row: row["val_loss"])
    assert reference.best_epoch + 1 == best["epoch"]
    import imageio.v3 as iio

    for epoch in (1, 2):
        grid = iio.imread(run / "previews" / f"epoch_{epoch:03d}.png")
        assert grid.ndim == 3 and grid.shape[1] > grid.shape[0]  # 3 columns x preview_frames rows
    assert iio.imread(run / "loss.png").shape[2] == 3
    assert not list(run.glob("**/*.partial"))


def test_resume_after_ctrl_c_equals_uninterrupted(reference, workdir, clip, cache):
    out = workdir / "interrupted"

    def ctrl_c(epoch, step, metrics):
        if (epoch, step) == (1, 2):  # mid-epoch: resume must skip the consumed batches
            raise KeyboardInterrupt

    result = _run(clip, out, cache, on_step=ctrl_c)
    assert result.interrupted and len(result.history) == 1
    # The best epoch so far is a model to use at once, not only checkpoints.
    header = modelfile.read_header(out / "model.fcm")
    assert (header["summary"]["interrupted"], header["summary"]["best_epoch"]) == (True, 1)
    steps = []
    resumed = _run(clip, out, cache, resume=True, on_step=lambda epoch, step, metrics: steps.append((epoch, step)))
    assert not resumed.interrupted
    assert steps[0] == (1, 3) and len(steps) == len(set(steps))  # from the checkpoint on: nothing trained twice
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in reference.history], rel=1e-5
    )
    _assert_same_variables(_variables(out), _variables(reference.run_dir), rtol=1e-5, atol=1e-6)


def _stop_in_step(epoch_step, how):
    """on_step that stops the run after that (epoch, step): by SIGINT (the handler
    sets the stop flag) or by KeyboardInterrupt itself (a second Ctrl-C, or on_step's own)."""
    def on_step(epoch, step, metrics):
        if (epoch, step) == epoch_step:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    return on_step


@pytest.mark.parametrize("how", ["signal", "keyboard_interrupt"])
def test_ctrl_c_in_the_last_step_of_an_epoch_ends_that_epoch(workdir, clip, cache, how):
    # The epoch's steps were all done, yet it was saved as a mid-epoch
    # checkpoint: no model ("interrupted; resume with --resume"), no metrics
    # row; and, by KeyboardInterrupt, the epoch's own checkpoint (the same step)
    # was never saved with its loss, so the best epoch's was deleted and the
    # resumed run ended with "cannot restore checkpoint 3".
    out = workdir / f"last_step_{how}"
    result = _run(clip, out, cache, on_step=_stop_in_step((0, 3), how))  # 12 training frames, 4 a step
    assert result.interrupted and len(result.history) == 1
    assert modelfile.read_header(out / "model.fcm")["summary"]["best_epoch"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    said = []
    train.train([clip], out, CONFIG, resume=True, cache_dir=cache, progress=False, log=said.append)
    assert said[0] == "resuming from checkpoint 3 (epoch 2, step 0)"


def test_ctrl_c_in_the_last_step_of_the_last_epoch_interrupts_nothing(workdir, clip, cache):
    # Every epoch ran and the model was written, yet the run was said to be
    # interrupted: exit 130, "resume with --resume", and the model file's
    # summary said so too.
    out = workdir / "last_of_all"
    result = _run(clip, out, cache, on_step=_stop_in_step((1, 3), "signal"))
    assert not result.interrupted and len(result.history) == CONFIG.epochs
    assert modelfile.read_header(out / "model.fcm")["summary"]["interrupted"] is False


def test_a_resumed_epochs_images_per_second_leave_out_both_compiles(workdir, clip, cache, monkeypatch):
    # Each process compiles on its first step, which images/s leaves out; the
    # interrupted process's compile was counted as training time, and the
    # resumed epoch's images/s in metrics.jsonl read 5.6 where 130 was true.
    import types

    clock = [0.0]

    def perf_counter():  # a clock that moves 10 ms a look, and 100 s for each compile
        clock[0] += 0.01
        return clock[0]

    def compiling_steps(*args):
        train_step, eval_step = compiled(*args)
        compiles = [True]

        def step(*step_args):
            if compiles.pop() if compiles else False:
                clock[0] += 100.0
            return train_step(*step_args)

        return step, eval_step

    compiled = train.compiled_steps
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(train, "compiled_steps", compiling_steps)

    def ctrl_c(epoch, step, metrics):
        if (epoch, step) == (0, 2):
            raise KeyboardInterrupt

    out, config = workdir / "images_per_s", dataclasses.replace(CONFIG, epochs=1)
    assert _run(clip, out, cache, config=config, on_step=ctrl_c).interrupted
    resumed = _run(clip, out, cache, config=config, resume=True)
    assert resumed.history[0]["images_per_s"] > 1.0  # 4 images in well under a second; 0.08 when counted
    # The model's training time is both processes': it was the last one's alone (one compile, not two).
    seconds = modelfile.read_header(out / "model.fcm")["summary"]["seconds"]
    assert seconds == pytest.approx(resumed.history[0]["time"]) and seconds > 200.0


def test_what_a_resume_gives_anew_the_next_resume_keeps(reference, workdir, clip, cache):
    # run.json kept the options the run began with: a bare --resume after one
    # with --epochs 4 read back 2, ended at once (exit 0, "not interrupted")
    # and dropped the steps of the epoch the first resume had stopped in.
    from framecolor.cli.train import _start_options

    out = workdir / "epochs_anew"
    shutil.copytree(reference.run_dir, out)
    more = dataclasses.replace(_start_options(out, True, train.TrainConfig), epochs=4, patience=7)
    stopped = _run(clip, out, cache, config=more, resume=True, on_step=_stop_in_step((2, 2), "keyboard_interrupt"))
    assert stopped.interrupted and len(stopped.history) == 2
    # Too few --epochs for the epoch it stopped in is said, not taken as "done".
    with pytest.raises(TrainingError, match=r"stopped in epoch 3 \(after step 2\), which --epochs 2 leaves "
                                            r"unfinished; resume with --epochs 3 or more to finish it"):
        _run(clip, out, cache, config=dataclasses.replace(more, epochs=2), resume=True,
             on_step=lambda *a: pytest.fail("trained"))
    again = _start_options(out, True, train.TrainConfig)  # a bare --resume
    assert (again.epochs, again.patience) == (4, 7)
    steps = []
    resumed = _run(clip, out, cache, config=again, resume=True,
                   on_step=lambda epoch, step, metrics: steps.append((epoch, step)))
    assert not resumed.interrupted and steps[0] == (2, 3)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]


def test_resuming_a_finished_run_says_so_in_a_line_and_leaves_its_model(reference, workdir, clip, cache):
    # It said "resuming from checkpoint 6 (epoch 3, step 0)", trained nothing and wrote model.fcm anew.
    out = workdir / "finished"
    shutil.copytree(reference.run_dir, out)
    model = out / "model.fcm"
    before = model.read_bytes(), model.stat().st_mtime_ns
    said = []
    result = train.train([clip], out, CONFIG, resume=True, cache_dir=cache, progress=False, log=said.append,
                         on_step=lambda *a: pytest.fail("trained"))
    assert said == [f"the run in {out} has already trained its 2 epochs; resume with --epochs above 2 to train on"]
    assert (model.read_bytes(), model.stat().st_mtime_ns) == before
    assert not result.interrupted and len(result.history) == 2 and result.model_path == model
    # Begun with --epochs 5 and ended by a resume's 2: run.json kept 5, and the
    # next bare --resume trained on the run that one had ended.
    from framecolor.cli.train import _start_options

    record = json.loads((out / "run.json").read_text())
    record["train_config"]["epochs"] = 5
    (out / "run.json").write_text(json.dumps(record))
    train.train([clip], out, CONFIG, resume=True, cache_dir=cache, progress=False, log=said.append,
                on_step=lambda *a: pytest.fail("trained"))
    assert _start_options(out, True, train.TrainConfig).epochs == 2
    model.unlink()  # as a run killed between its last checkpoint and its model file leaves it: made now
    _run(clip, out, cache, resume=True, on_step=lambda *a: pytest.fail("trained"))
    assert modelfile.read_header(model)["summary"]["epochs"] == 2


def test_two_devices_then_sigkill_then_resume_on_one(two_device_run, reference, workdir, clip, cache):
    """A run on two devices, killed (SIGKILL) in epoch 2, resumed on one device."""
    proc, out = two_device_run
    deadline = time.monotonic() + 300
    try:
        while not any(p.name.isdigit() for p in (out / "checkpoints").glob("*")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        output, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert "devices 2" in output
    assert not (out / "model.fcm").exists()

    # The first step sees the same data, crops and BatchNorm statistics on two
    # devices as on one: the same loss. Its gradient agrees only to ~1%: this
    # tiny net's gradients move that much even when the batch is merely
    # reordered on one device (summation order), and Adam then amplifies it.
    steps = {}
    for line in output.splitlines():
        if line.startswith("step "):
            _, epoch, step, loss, grad_norm = line.split()
            steps[int(epoch), int(step)] = (float(loss), float(grad_norm))
    loss, grad_norm = steps[0, 1]
    assert loss == pytest.approx(reference.steps[0, 1][0], rel=1e-5)
    assert grad_norm == pytest.approx(reference.steps[0, 1][1], rel=5e-2)

    steps = []
    resumed = _run(clip, out, cache, resume=True,  # on this process's one device
                   on_step=lambda epoch, step, metrics: steps.append(epoch))
    assert steps and set(steps) == {1}  # epoch 1 came from its checkpoint, not trained again
    assert (out / "model.fcm").is_file()
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[-1]["train_loss"] < resumed.history[0]["train_loss"]
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(_variables(out)))


# The train step on a one-device and a two-device Mesh of the same process, from
# the same start on the same batches; prints the largest parameter difference
# and the largest move from the start. It computes in float64: in float32 this
# net's gradient changes by ~0.5% with the mere summation order (BatchNorm over
# tiny late feature maps), and ReLU and max-pool switches amplify that within
# steps, so float32 could not tell a data-parallel bug from rounding.
_DATA_PARALLEL_SCRIPT = """
import json, sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_disable_most_optimizations", True)
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from framecolor import dataset, train
from framecolor.models.colorizer import Colorizer
config = train.TINY_TRAIN
model_config = config.model_config()
side = dataset.stored_side(config.size)
rng = np.random.default_rng(0)
batches = [rng.integers(0, 256, (8, side, side, 3), dtype=np.uint8) for _ in range(int(sys.argv[1]))]
start = train.fresh_variables(model_config, 0, config.size)
# float64 statistics from the start, as the float64 step returns them: one compile per Mesh.
start["batch_stats"] = jax.tree.map(lambda x: x.astype(np.float64), start["batch_stats"])
params = {}
for n in (1, 2):
    mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
    state = train.init_state(start, lr=config.lr, clip_norm=config.clip_norm, seed=0, mesh=mesh)
    model = Colorizer(config=model_config, dtype=jnp.float64)
    step, _ = train.make_steps(model, train.make_optimizer(config.lr, config.clip_norm), size=config.size,
                               mode=model_config.mode, loss=config.loss, mesh=mesh)
    for batch in batches:
        state, _ = step(state, jax.device_put(batch, NamedSharding(mesh, P("data"))), np.bool_(False))
    params[n] = jax.device_get(state.params)
largest = lambda a, b: max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
print(json.dumps({"devices": jax.device_count(), "difference": largest(params[1], params[2]),
                  "moved": largest(params[1], start["params"])}))
"""


@pytest.fixture(scope="module")
def data_parallel_run():
    """_DATA_PARALLEL_SCRIPT over two steps, started with the module: it compiles
    while the other tests run (compiling is mostly single-threaded)."""
    proc = _start_script(_DATA_PARALLEL_SCRIPT, ["2"], devices=2)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_the_model_file_holds_the_best_epoch_not_the_last(reference, workdir, clip, cache, monkeypatch):
    """A run whose second epoch validates worse keeps the first epoch's weights:
    those of the same run stopped after one epoch (runs are deterministic)."""
    from framecolor import callbacks

    one_epoch = _run(clip, workdir / "one_epoch", cache, config=dataclasses.replace(CONFIG, epochs=1))
    update = callbacks.update_monitor

    def second_epoch_worse(monitor, loss, *, epoch, **kwargs):
        return update(monitor, loss * 10 if epoch == 1 else loss, epoch=epoch, **kwargs)

    monkeypatch.setattr(callbacks, "update_monitor", second_epoch_worse)
    result = _run(clip, workdir / "worse_last", cache)
    assert result.best_epoch == 0 and len(result.history) == 2
    _assert_same_variables(_variables(workdir / "worse_last"), _variables(one_epoch.run_dir), rtol=1e-6, atol=1e-7)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(_variables(workdir / "worse_last")),
                                                    jax.tree.leaves(_variables(reference.run_dir)))]
    assert any(moved)  # the last epoch's weights, which the reference keeps, are not these


def test_the_model_file_holds_the_monitors_best_after_more_epochs_than_are_kept(workdir, clip, cache, monkeypatch):
    """The checkpoints keep the epoch the monitor counts as best, not the
    lowest loss: an epoch that beats the best by less than min_delta is not
    the best, and keeping it instead lost the best one."""
    from framecolor import callbacks

    update = callbacks.update_monitor

    def no_gain_after_the_first(monitor, loss, *, epoch, **kwargs):  # however low the later losses are
        return update(monitor, loss * 10 if epoch else loss, epoch=epoch, **kwargs)

    monkeypatch.setattr(callbacks, "update_monitor", no_gain_after_the_first)
    config = dataclasses.replace(CONFIG, epochs=3, keep_checkpoints=1)
    result = _run(clip, workdir / "best_first", cache, config=config)
    assert result.best_epoch == 0 and (workdir / "best_first" / "model.fcm").is_file()
    assert modelfile.read_header(workdir / "best_first" / "model.fcm")["summary"]["best_epoch"] == 1


def test_an_early_stopped_run_resumed_with_more_patience_trains_on(workdir, clip, cache, monkeypatch):
    # --patience may be given anew on resume, but the stop was kept: the run
    # ended at once, its model rewritten, with nothing said.
    from framecolor import callbacks

    update = callbacks.update_monitor

    def no_gain_after_the_first(monitor, loss, *, epoch, **kwargs):
        return update(monitor, loss * 10 if epoch else loss, epoch=epoch, **kwargs)

    monkeypatch.setattr(callbacks, "update_monitor", no_gain_after_the_first)
    out, config = workdir / "early_stop", dataclasses.replace(CONFIG, epochs=3, patience=1)
    first = _run(clip, out, cache, config=config)
    assert first.early_stopped and len(first.history) == 2
    said = []
    again = train.train([clip], out, config, resume=True, cache_dir=cache, progress=False, log=said.append)
    assert len(again.history) == 2
    assert any("stopped early after epoch 2: no improvement for 1 epoch; to train on, resume with a --patience"
               in line for line in said), said
    more = _run(clip, out, cache, config=dataclasses.replace(config, patience=3), resume=True)
    assert [row["epoch"] for row in more.history] == [1, 2, 3] and not more.early_stopped


def test_regression_model_files_carry_a_chroma_gain(reference):
    from framecolor import dataset

    model = modelfile.load_model(reference.run_dir / "model.fcm")
    assert 1.0 <= model.readout["saturation"] <= train.MAX_CHROMA_GAIN
    # Gray frames have no chroma to restore: the gain stays 1.
    side = dataset.stored_side(CONFIG.size)
    gray = np.repeat(np.random.default_rng(0).integers(0, 256, (3, side, side, 1), dtype=np.uint8), 3, axis=-1)
    assert train.chroma_gain(model.config, model.variables, gray, [0, 1, 2], CONFIG.size) == 1.0


def test_the_chroma_gain_gives_back_the_chroma_energy_the_predictions_lack(reference):
    """sqrt(true / predicted ab energy) over the frames' center crops, computed
    here apart (scikit-image's Lab, the network run directly) on frames whose
    color is scaled so that the gain lands inside (1, MAX_CHROMA_GAIN)."""
    import skimage.color

    from framecolor import color, dataset
    from framecolor.models.colorizer import build_colorizer

    model = modelfile.load_model(reference.run_dir / "model.fcm")
    size, side = CONFIG.size, dataset.stored_side(CONFIG.size)
    y, x = np.mgrid[0:side, 0:side] / side
    lightness, a, b = 35 + 30 * x, 20 * np.cos(6 * y), 20 * np.sin(6 * x)
    offset = (side - size) // 2

    def frames_with(k):
        rgb = np.clip(skimage.color.lab2rgb(np.dstack([lightness, k * a, k * b])), 0, 1)
        return np.repeat((rgb * 255).round().astype(np.uint8)[None], 3, axis=0)

    network = jax.jit(lambda variables, l_norm: build_colorizer(model.config).apply(variables, l_norm, train=False))

    def energies(frames):
        lab = skimage.color.rgb2lab(frames[:, offset:offset + size, offset:offset + size] / 255.0)
        l_norm = ((lab[..., :1] - color.L_OFFSET) / color.L_SCALE).astype(np.float32)
        predicted = network(model.variables, l_norm)
        return float(np.sum(np.square(lab[..., 1:] / color.AB_SCALE))), float(np.sum(np.square(predicted)))

    true, predicted = energies(frames_with(1.0))
    frames = frames_with(1.5 * np.sqrt(predicted / true))  # a gain of about 1.5
    true, predicted = energies(frames)
    expected = np.sqrt(true / predicted)
    assert 1.2 < expected < 1.8
    assert train.chroma_gain(model.config, model.variables, frames, [0, 1, 2], size) == pytest.approx(expected, rel=1e-3)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(reference, workdir, clip, cache):
    out = workdir / "nan"
    shutil.copytree(reference.run_dir, out)
    (out / "model.fcm").unlink()
    before = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    diverging = dataclasses.replace(CONFIG, epochs=3, lr=1e30)  # a new --lr on resume is allowed
    with pytest.raises(TrainingError, match="loss became .*last good checkpoint"):
        _run(clip, out, cache, config=diverging, resume=True)
    after = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert after == before  # nothing non-finite was saved
    # ... and the run goes on from there with a sane learning rate.
    _run(clip, out, cache, config=dataclasses.replace(CONFIG, epochs=3), resume=True)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(_variables(out)))


def test_a_learning_rate_given_on_resume_replaces_the_one_the_run_reached(reference, workdir, clip, cache):
    # Compared with the rate the run began with rather than the one it had
    # reached, asking for the first rate again (after a plateau, or an earlier
    # resume at another) changed nothing and said nothing.
    out = workdir / "lr_again"
    shutil.copytree(reference.run_dir, out)
    said = []
    for epochs, lr in ((3, CONFIG.lr / 10), (4, CONFIG.lr)):
        train.train([clip], out, dataclasses.replace(CONFIG, epochs=epochs), resume=True, resume_lr=lr,
                    cache_dir=cache, progress=False, log=said.append)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr"] for row in rows[2:]] == pytest.approx([CONFIG.lr / 10, CONFIG.lr])
    assert said.count(f"learning rate set to {CONFIG.lr:g}") == 1


def test_resume_refuses_other_options(reference, workdir, clip, cache):
    out = workdir / "other"
    shutil.copytree(reference.run_dir, out)
    with pytest.raises(TrainingError, match="batch_size"):
        _run(clip, out, cache, config=dataclasses.replace(CONFIG, batch_size=8), resume=True)
    with pytest.raises(TrainingError, match="already holds a training run"):
        _run(clip, out, cache)
    (workdir / "a_file").write_text("")
    with pytest.raises(TrainingError, match="a_file: is a file"):
        _run(clip, workdir / "a_file" / "run", cache)
    photos = workdir / "photos"
    photos.mkdir()
    for out in (photos, photos / "run"):
        with pytest.raises(TrainingError, match="is inside the training folder .*photos: its previews would"):
            _run(photos, out, cache)
    assert list(photos.iterdir()) == []


def test_image_folder_trains(workdir, image_folder, cache):
    config = dataclasses.replace(CONFIG, epochs=1, val_fraction=0.3)
    # --out's missing parent folders are made, as for runs/NAME in a fresh checkout.
    result = _run(image_folder, workdir / "new" / "images", cache, config=config)
    assert (workdir / "new" / "images" / "model.fcm").is_file()
    assert np.isfinite(result.history[0]["train_loss"])


def test_too_few_frames(workdir, clip, cache):
    with pytest.raises(TrainingError, match="only .* training frames.*raise --frames-per-video"):
        _run(clip, workdir / "few", cache, config=dataclasses.replace(CONFIG, batch_size=64))
    # With --every, --frames-per-video is not used: raising it was advice that changed nothing.
    with pytest.raises(TrainingError, match="only 2 training frames.*add inputs, lower --every, lower --val-fraction "
                                            "or lower --batch-size"):
        _run(clip, workdir / "few", cache, config=dataclasses.replace(CONFIG, every=8, frames_per_video=None))


def test_too_few_photos_are_not_told_to_sample_more_frames(workdir, cache):
    # A photo (not a film's frame) gives one frame whatever --frames-per-video
    # says; without a validation share there is none to lower either.
    photos = workdir / "loose_photos"
    photos.mkdir()
    for i, size in enumerate([(40, 30), (30, 40), (48, 32)]):  # sizes that are no film's
        media.make_photo(photos / f"photo_{i}.png", media.frame_image(i, *size), "rgb24", "rgb24")
    with pytest.raises(TrainingError, match=r"only 3 training frames .*; add inputs or lower --batch-size$"):
        _run(photos, workdir / "few_photos", cache, config=dataclasses.replace(CONFIG, batch_size=64, val_fraction=0))


def test_an_out_folder_that_takes_nothing_is_refused_before_the_frames_are_read(clip, cache, monkeypatch):
    def load_data(*args):
        raise AssertionError("the frames were read first")

    monkeypatch.setattr(train, "_load_data", load_data)
    # procfs refuses even root, as a read-only mount or another user's folder would.
    with pytest.raises(OutputError, match="^cannot write /proc/runs/mine: No such file or directory$"):
        _run(clip, Path("/proc/runs/mine"), cache)


@pytest.mark.parametrize("change, message", [
    (dict(lr=-1.0), "--lr must be more than 0, not -1"), (dict(lr=math.inf), "--lr must be more than 0, not inf"),
    (dict(min_lr=-1.0), "--min-lr must be at least 0, not -1"), (dict(val_fraction=-0.1), "--val-fraction"),
    (dict(seed=-1), "--seed"), (dict(keep_checkpoints=0), "--keep must be at least 1"), (dict(every=0), "--every"),
    (dict(frames_per_video=0), "--frames-per-video"), (dict(patience=-1), "--patience"), (dict(feed="gpu"), "--feed"),
    (dict(epochs=0), "--epochs must be at least 1, not 0"), (dict(batch_size=0), "--batch-size must be at least 1"),
    # Library-only fields, named as such: 0 failed with a traceback mid-run, after the first checkpoint.
    (dict(log_every=0), "^log_every must be at least 1, not 0$"), (dict(preview_frames=0), "^preview_frames must be"),
])
def test_numbers_out_of_range_are_refused_before_anything_is_read_or_made(tmp_path, clip, cache, change, message):
    with pytest.raises(TrainingError, match=message):
        _run(clip, tmp_path / "run", cache, config=dataclasses.replace(CONFIG, **change))
    assert not (tmp_path / "run").exists()


def test_a_rate_under_the_plateaus_floor_is_taken():
    # --lr 1e-7 (or a resumed run's rate given again) under the default floor
    # of 1e-6 was refused over a --min-lr nobody gave; the rate is simply not lowered.
    train._check_ranges(dataclasses.replace(CONFIG, lr=1e-7))
    monitor = callbacks.update_monitor(callbacks.Monitor(lr=1e-7, best=0.1, bad_epochs=0), 0.2, epoch=1, step=2,
                                       patience=0, plateau_patience=1, plateau_factor=0.5, min_lr=1e-6)
    assert monitor.lr == 1e-7


def test_a_resume_on_other_devices_is_told_to_change_the_devices_not_the_batch(tmp_path, monkeypatch):
    # "use --batch-size 3", which the resume then refused: its batch size is the run's.
    # Said before any frame is decoded (minutes for a film), which it needs none of.
    monkeypatch.setattr(train.dataset, "load_frames", lambda *args, **kwargs: pytest.fail("decoded first"))
    monkeypatch.setattr(train.jax, "device_count", lambda: 3)
    with pytest.raises(TrainingError, match=r"^this run's batch size 4 needs a device count that divides it, and 3 "
                                            r"devices are visible: resume with fewer .*CUDA_VISIBLE_DEVICES.* or "
                                            r"start a new --out$"):
        train._load_data([], CONFIG, None, False, {"data_key": "k"}, tmp_path)
    with pytest.raises(TrainingError, match="use --batch-size 3$"):  # a new run's is its own to choose
        train._load_data([], CONFIG, None, False, None, tmp_path)


@pytest.mark.parametrize("options, resume, said", [
    # Only a --lr given beside --min-lr was compared: the floor was then never reached.
    (["--init", "default", "--min-lr", "5e-4"], False, r"--min-lr 0.0005 is above the learning rate 0.0001 "
                                                        r"\(fine-tuning's default; --lr sets another\)"),
    (["--min-lr", "1"], False, r"--min-lr 1 is above the learning rate 0.001 \(the default; --lr sets another\)"),
    (["--lr", "1e-4", "--min-lr", "1e-3"], False, r"--min-lr 0.001 is above --lr 0.0001"),
    # A resumed run's own floor, which a resume cannot change: a lower rate is
    # taken (after a loss that was not finite, the way on), only never lowered.
    (["--lr", "1e-4"], True, None),
    (["--lr", "1e-7"], False, None),  # under the default floor nobody gave: taken, never lowered
    (["--epochs", "5"], True, None),  # the rate it reached, which plateaus kept at the floor or above
])
def test_cli_refuses_a_rate_floor_above_the_rate_the_run_will_use(tmp_path, monkeypatch, options, resume, said):
    import re

    import typer
    from typer.testing import CliRunner

    from framecolor.cli.train import register

    run = tmp_path / "run"
    run.mkdir()
    floor_given = dataclasses.replace(CONFIG, min_lr=1e-3)
    (run / "run.json").write_text(json.dumps({"train_config": dataclasses.asdict(floor_given)}))
    started = []
    monkeypatch.setattr(train, "train", lambda *args, **kwargs: started.append(args))
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    out = run if resume else tmp_path / "new"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "a.mp4"), "--out", str(out), *options,
                                      *(["--resume"] if resume else [])])
    if said is None:
        assert started, result.output
    else:
        assert not started and result.exit_code == 1
        assert re.search(f"error: {said}: plateaus lower the rate down to --min-lr", result.output), result.output


def test_the_readout_line_says_when_the_gain_is_at_its_floor_or_cap():
    # At its floor of 1 it said it "restores the validation frames' chroma energy", which needed less than 1.
    assert train._saturation_note(1.0, "validation") == ("readout saturation 1.000 (the model's color is already at "
                                                         "least as strong as the validation frames')")
    assert train._saturation_note(train.MAX_CHROMA_GAIN, "training") == (
        "readout saturation 2.000 (capped: the training frames' chroma energy would take more)")
    assert train._saturation_note(1.5, "validation") == ("readout saturation 1.500 (restores the validation "
                                                         "frames' chroma energy)")


def test_loss_is_refused_for_a_bins_model_to_fine_tune(tmp_path):
    # --init takes the head from the file, so --head bins was never spelled:
    # --loss huber passed, went into run.json, and was never used.
    from framecolor.models.colorizer import ModelConfig, init_variables

    config = ModelConfig(width=0.0625, size=75, head="bins")
    bins_model = modelfile.save_model(tmp_path / "bins.fcm", config, init_variables(config, jax.random.PRNGKey(0)))
    with pytest.raises(TrainingError, match="^--loss is the regress head's"):
        train._resolve_config(dataclasses.replace(CONFIG, loss="huber"), None, bins_model, tmp_path)
    assert train._resolve_config(CONFIG, None, bins_model, tmp_path)[0].head == "bins"  # its own loss: taken


def test_fine_tune_takes_the_architecture_from_the_model(reference, workdir, clip, cache):
    config = dataclasses.replace(CONFIG, epochs=1, width=0.5, decoder="seed")  # overridden by the file
    losses = {}
    _run(clip, workdir / "finetune", cache, config=config, init=reference.run_dir / "model.fcm",
         on_step=lambda epoch, step, metrics: losses.setdefault((epoch, step), float(metrics["loss"])))
    tuned = modelfile.load_model(workdir / "finetune" / "model.fcm")
    assert tuned.config.width == CONFIG.width and tuned.config.decoder == CONFIG.decoder
    # The same seed draws the reference run's first batch: the trained weights
    # it starts from fit that batch better than the fresh ones the reference began with.
    assert losses[0, 1] < reference.steps[0, 1][0]


# A run that freezes the backbone for its first epoch. Its optimizer state differs
# from CONFIG's (the backbone has an Adam of its own), and its steps compile apart:
# _freeze_steps gives the tests below the ones train() compiles for it, once for the module.
FREEZE_CONFIG = dataclasses.replace(CONFIG, freeze_backbone_epochs=1)


def _freeze_steps():
    """(model config, mesh, frozen collections, train step) of FREEZE_CONFIG's run."""
    from framecolor.models.colorizer import variable_shapes

    model_config = FREEZE_CONFIG.model_config()
    mesh = train.make_mesh()
    frozen = train.backbone_keys(variable_shapes(model_config, CONFIG.size)["params"])
    assert frozen
    step, _ = train.compiled_steps(model_config, CONFIG.clip_norm, CONFIG.size, CONFIG.loss, mesh, frozen, None)
    return model_config, mesh, frozen, step


def _freeze_state(variables, mesh, frozen):
    return train.init_state(variables, lr=CONFIG.lr, clip_norm=CONFIG.clip_norm, seed=0, mesh=mesh, frozen=frozen)


def _random_batch(mesh):
    from jax.sharding import NamedSharding, PartitionSpec as P

    from framecolor import dataset

    side = dataset.stored_side(CONFIG.size)
    batch = np.random.default_rng(0).integers(0, 256, (CONFIG.batch_size, side, side, 3), dtype=np.uint8)
    return jax.device_put(batch, NamedSharding(mesh, P("data")))


def test_frozen_backbone_does_not_move():
    model_config, mesh, frozen, step = _freeze_steps()
    batch = _random_batch(mesh)
    for freeze in (True, False):
        state = _freeze_state(train.fresh_variables(model_config, 0, CONFIG.size), mesh, frozen)
        start = jax.device_get(state.variables)
        state, _ = step(state, batch, freeze)
        after = jax.device_get(state.variables)
        for key in start["params"]:
            moved = not all(
                np.array_equal(a, b) for a, b in zip(jax.tree.leaves(start["params"][key]), jax.tree.leaves(after["params"][key]))
            )
            assert moved == (not freeze or key not in frozen), (freeze, key)
        for key in start["batch_stats"]:
            if key in frozen:
                same = all(
                    np.array_equal(a, b)
                    for a, b in zip(jax.tree.leaves(start["batch_stats"][key]), jax.tree.leaves(after["batch_stats"][key]))
                )
                assert same == freeze, (freeze, key)


def test_freeze_runs_the_backbone_on_its_stored_statistics():
    """A frozen backbone normalizes with its stored BatchNorm statistics, as at
    inference (Keras runs a BatchNormalization that is not trainable so), and
    the decoder learns on the features it will be given; on the batch's
    statistics they differed by half their size at the stem of the default model."""
    import flax.linen as nn

    from framecolor.models.colorizer import build_colorizer
    from framecolor.models.inception import InceptionV3

    model_config, mesh, frozen, step = _freeze_steps()
    variables = train.fresh_variables(model_config, 0, CONFIG.size)
    # Stored statistics far from a fresh BatchNorm's 0 and 1, as a pretrained backbone's are.
    rng = np.random.default_rng(1)
    variables["batch_stats"]["backbone"] = jax.tree_util.tree_map_with_path(
        lambda path, x: (rng.uniform(0.5, 2.0, x.shape) if path[-1].key == "var" else rng.normal(0.0, 0.5, x.shape))
        .astype(np.float32),
        variables["batch_stats"]["backbone"],
    )
    batch = _random_batch(mesh)
    state = _freeze_state(variables, mesh, frozen)
    l_norm, target = train.prepare_batch(batch, jax.random.fold_in(state.rng, state.step), CONFIG.size, "lab")
    model = build_colorizer(model_config)

    def backbone_in_inference_mode(next_fun, args, kwargs, context):
        if isinstance(context.module, InceptionV3) and context.method_name == "__call__":
            return next_fun(args[0], False)  # (x, train)
        return next_fun(*args, **kwargs)

    @jax.jit
    def training_losses(variables, l_norm, target):
        """The model's training-mode loss, and the same with only the backbone in inference mode."""
        out, _ = model.apply(variables, l_norm, train=True, mutable=["batch_stats"])
        with nn.intercept_methods(backbone_in_inference_mode):
            held, _ = model.apply(variables, l_norm, train=True, mutable=["batch_stats"])
        return [train.per_example_loss(x, target, CONFIG.loss).mean() for x in (out, held)]

    trained, held = (float(x) for x in training_losses(variables, l_norm, target))
    assert held != pytest.approx(trained, rel=1e-3)  # the two modes differ, or this test could not tell them apart
    _, metrics = step(state, batch, False)  # donates state
    assert float(metrics["loss"]) == pytest.approx(trained, rel=1e-5)
    _, metrics = step(_freeze_state(variables, mesh, frozen), batch, True)
    assert float(metrics["loss"]) == pytest.approx(held, rel=1e-5)


def test_freeze_leaves_the_backbone_a_fresh_adam_for_when_it_unfreezes():
    """The first update after the frozen steps is a fresh Adam's first: the
    learning rate times the gradient's sign. With one Adam for all, its step
    count went on through the frozen steps while the backbone's moments stayed
    at zero, and its bias correction scaled the backbone's updates (0.64x the
    rate after 2 frozen steps, 2.5x after 1000 and up to 6.5x in the steps after)."""
    model_config, mesh, frozen, step = _freeze_steps()
    state = _freeze_state(train.fresh_variables(model_config, 0, CONFIG.size), mesh, frozen)
    batch = _random_batch(mesh)
    for _ in range(2):
        state, _ = step(state, batch, True)
    before = jax.device_get(state.params)
    state, _ = step(state, batch, False)
    after = jax.device_get(state.params)
    moves = np.concatenate([np.abs(a - b).ravel() for key in frozen
                            for a, b in zip(jax.tree.leaves(after[key]), jax.tree.leaves(before[key]))])
    # Adam's first step moves each weight by lr * |g| / (|g| + eps): lr, but for gradients near eps.
    assert moves.max() == pytest.approx(CONFIG.lr, rel=1e-3)


def test_a_freeze_run_stopped_twice_and_resumed_ends_as_an_uninterrupted_one(workdir, clip, cache):
    """The backbone's own Adam goes through the checkpoints: stopped in the
    frozen epoch and again after unfreezing, the run resumes both times and
    ends with the weights of a run never stopped."""
    whole = _run(clip, workdir / "freeze_whole", cache, config=FREEZE_CONFIG)
    out = workdir / "freeze_stopped"
    for epoch_step in ((0, 2), (1, 2)):
        stopped = _run(clip, out, cache, config=FREEZE_CONFIG, resume=out.exists(),
                       on_step=_stop_in_step(epoch_step, "keyboard_interrupt"))
        assert stopped.interrupted
    resumed = _run(clip, out, cache, config=FREEZE_CONFIG, resume=True)
    assert not resumed.interrupted
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in whole.history],
                                                                        rel=1e-5)
    _assert_same_variables(_variables(out), _variables(whole.run_dir), rtol=1e-5, atol=1e-6)


def test_runs_without_freeze_keep_the_optimizer_state_their_checkpoints_hold():
    """One Adam over all parameters, as before the backbone could have its
    own: the checkpoints of runs without --freeze-backbone-epochs restore as they did."""
    import optax

    from framecolor.checkpoint import _packed_sizes

    model_config = CONFIG.model_config()
    variables = jax.eval_shape(lambda: train.fresh_variables(model_config, 0, CONFIG.size))
    one_adam = optax.chain(optax.clip_by_global_norm(CONFIG.clip_norm),
                           optax.inject_hyperparams(optax.adam)(learning_rate=CONFIG.lr))
    expected = jax.eval_shape(one_adam.init, variables["params"])
    state = jax.eval_shape(lambda v: train.init_state(v, lr=CONFIG.lr, clip_norm=CONFIG.clip_norm, seed=0,
                                                      mesh=train.make_mesh()), variables)
    assert jax.tree.structure(state.opt_state) == jax.tree.structure(expected)
    assert _packed_sizes(state.opt_state) == _packed_sizes(expected)


def test_cli_train_command(workdir, clip, cache, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from framecolor.cli.train import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    monkeypatch.setenv("FRAMECOLOR_CACHE", str(cache))
    out = workdir / "cli"
    args = [
        "train", str(clip), "--out", str(out), "--epochs", "1", "--size", str(CONFIG.size),
        "--width", str(CONFIG.width), "--decoder", CONFIG.decoder, "--batch-size", str(CONFIG.batch_size),
        "--frames-per-video", str(CONFIG.frames_per_video), "--val-fraction", str(CONFIG.val_fraction), "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = modelfile.load_model(out / "model.fcm")  # the options reached the run
    assert (model.config.width, model.config.decoder, model.config.size) == (CONFIG.width, CONFIG.decoder, CONFIG.size)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # --epochs 1
    result = CliRunner().invoke(app, args)  # the run exists now
    assert result.exit_code == 1 and "error: " in result.output and "--resume" in result.output
    result = CliRunner().invoke(app, ["train", str(clip), "--out", str(workdir / "x"), "--init", "m.fcm", "--width", "1"])
    assert result.exit_code == 1 and "--init" in result.output


def test_cli_fine_tunes_at_a_gentler_rate_unless_told(workdir, clip, monkeypatch):
    # At the from-scratch rate, fine-tuning the default on two clips threw its
    # validation loss up 60-fold by the third epoch.
    import typer
    from typer.testing import CliRunner

    from framecolor.cli.train import register

    rates = []
    monkeypatch.setattr(train, "train", lambda inputs, out, config, **kwargs: rates.append(config.lr))
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    for extra in (["--init", "default"], ["--init", "default", "--lr", "0.01"], []):
        CliRunner().invoke(app, ["train", str(clip), "--out", str(workdir / "lr_choice"), *extra])
    assert rates == [train.FINE_TUNE_LR, 0.01, train.TrainConfig().lr]


def test_cli_train_stopped_by_sigterm_exits_143(workdir, clip, cache, monkeypatch):
    # A scheduler's time limit saves and stops the run as Ctrl-C does, but
    # train exited 130 for it, where every command exits 143 after SIGTERM.
    import signal

    import typer
    from typer.testing import CliRunner

    from framecolor.cli.train import register

    start = train.train

    def killed_in_the_first_step(*args, **kwargs):
        def on_step(epoch, step, metrics):
            if step == 1:
                os.kill(os.getpid(), signal.SIGTERM)

        return start(*args, on_step=on_step, **kwargs)

    monkeypatch.setattr(train, "train", killed_in_the_first_step)
    monkeypatch.setenv("FRAMECOLOR_CACHE", str(cache))
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(app, [
        "train", str(clip), "--out", str(workdir / "sigterm"), "--epochs", "1", "--size", str(CONFIG.size),
        "--width", str(CONFIG.width), "--decoder", CONFIG.decoder, "--batch-size", str(CONFIG.batch_size),
        "--frames-per-video", str(CONFIG.frames_per_video), "--val-fraction", str(CONFIG.val_fraction), "--quiet",
    ])
    assert result.exit_code == 143, result.output
    assert "interrupted; resume with --resume" in result.output
    assert (workdir / "sigterm" / "checkpoints" / "1").is_dir()  # saved as for Ctrl-C


def test_monitor_stops_early_and_cuts_the_lr_on_plateaus():
    from framecolor.callbacks import Monitor, update_monitor

    options = dict(patience=3, plateau_patience=2, plateau_factor=0.5, min_lr=0.3)
    m = Monitor(lr=1.0)
    seen = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.8]):
        m = update_monitor(m, loss, epoch=epoch, step=10 * epoch, **options)
        seen.append((m.lr, m.stopped))
    assert seen == [(1.0, False), (1.0, False), (1.0, False), (0.5, False), (0.5, True)]
    assert (m.best, m.best_epoch, m.best_step) == (0.5, 1, 10)
    m = update_monitor(Monitor(lr=0.4, best=0.1), 0.2, epoch=0, step=0, **dict(options, plateau_patience=1))
    assert m.lr == 0.3  # never below min_lr
    assert Monitor.from_dict(m.to_dict()) == m


def test_losses_and_targets():
    import jax.numpy as jnp

    from framecolor import color

    pred, target = jnp.zeros((2, 1, 1, 2)), jnp.array([[[[0.0, 0.2]]], [[[1.0, -1.0]]]])
    assert train.per_example_loss(pred, target, "mse").tolist() == pytest.approx([0.02, 1.0])
    assert train.per_example_loss(pred, target, "l1").tolist() == pytest.approx([0.1, 1.0])
    d = train.HUBER_DELTA  # quadratic inside delta, linear outside
    assert train.per_example_loss(pred, target, "huber").tolist() == pytest.approx([(0.5 * d * d + d * (0.2 - d)) / 2, d * (1 - 0.5 * d)])

    frames = np.random.default_rng(1).integers(0, 256, (3, 10, 10, 3), dtype=np.uint8)
    rgb = frames[:, 1:9, 1:9].astype(np.float32) / 255
    l_norm, ab = train.prepare_batch(frames, None, 8, "lab")  # center crop
    lab = np.asarray(color.rgb_to_lab(rgb))
    np.testing.assert_allclose(l_norm[..., 0], (lab[..., 0] - 50) / 50, atol=1e-5)
    np.testing.assert_allclose(ab, lab[..., 1:] / 110, atol=1e-5)
    _, target = train.prepare_batch(frames, None, 8, "rgb")
    np.testing.assert_allclose(target, rgb, atol=1e-6)
    # Random crops (and flips) are windows of the stored frames.
    l_rand, _ = train.prepare_batch(frames, jax.random.PRNGKey(0), 8, "lab")
    full = (np.asarray(color.rgb_to_lab(frames.astype(np.float32) / 255))[..., 0] - 50) / 50
    for i in range(3):
        windows = [full[i, y : y + 8, x : x + 8] for y in range(3) for x in range(3)]
        windows += [w[:, ::-1] for w in windows]
        assert min(np.abs(w - l_rand[i, ..., 0]).max() for w in windows) < 1e-5


def test_checkpoint_packing_round_trips():
    from framecolor.checkpoint import pack, unpack

    tree = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int32(7), np.ones(4, np.float32)],
            "k": np.array([1, 2], np.uint32)}
    packed = pack(tree)
    assert sorted(packed) == ["float32", "int32", "uint32"] and packed["float32"].shape == (10,)
    back = unpack(packed, tree)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(TrainingError, match="does not fit"):
        unpack(packed, {"a": np.zeros(3, np.float32)})


def test_the_best_checkpoint_outlives_a_resume(tmp_path):
    # A resumed run reopens the checkpoints: the best epoch's (step 1 here)
    # was kept only while its loss was known in memory, and once `keep` newer
    # ones came it was deleted, so the run ended in "cannot restore checkpoint".
    from framecolor.checkpoint import Checkpoints

    state = {"w": np.ones(3, np.float32)}
    with Checkpoints(tmp_path / "checkpoints", keep=2) as ckpts:
        for step, loss in ((1, 0.1), (2, 0.5)):
            ckpts.save(step, state, {}, loss)
        ckpts.save(3, state, {}, None)  # Ctrl-C mid-epoch: no loss
    with Checkpoints(tmp_path / "checkpoints", keep=2) as ckpts:
        for step, loss in ((4, 0.6), (5, 0.7), (6, 0.8)):
            ckpts.save(step, state, {}, loss)
    assert ckpts.steps() == [1, 5, 6]


def test_a_checkpoint_saved_mid_epoch_is_not_warned_of(tmp_path, caplog):
    # Ctrl-C mid-epoch saves a checkpoint without a loss, on purpose; orbax
    # warned "Requested `tracked_metric`; did not provide metrics." for it.
    from framecolor.checkpoint import Checkpoints

    with caplog.at_level("INFO"), Checkpoints(tmp_path / "checkpoints", keep=2) as ckpts:
        ckpts.save(1, {"w": np.ones(3, np.float32)}, {}, None)
    assert ckpts.steps() == [1]
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]


def test_a_checkpoint_on_a_full_disk_is_an_output_error_and_leaves_no_partial(tmp_path):
    from framecolor.checkpoint import Checkpoints

    with Checkpoints(tmp_path / "checkpoints") as ckpts:
        state = {"w": np.ones(3, np.float32)}
        ckpts.save(1, state, {"epoch": 0}, loss=1.0)
        save = ckpts._manager.save

        def save_on_a_full_disk(step, **kwargs):
            # What orbax raises when TensorStore cannot write, after it made its temporary directory.
            (ckpts.directory / f"{step}.orbax-checkpoint-tmp" / "state").mkdir(parents=True)
            raise ValueError("RESOURCE_EXHAUSTED: Error writing in OCDBT database: Failed to write 1744252 "
                             "bytes to file 8: No space left on device [os_error_code='28']")

        ckpts._manager.save = save_on_a_full_disk
        with pytest.raises(OutputError, match="no space left"):
            ckpts.save(2, state, {"epoch": 1}, loss=0.5)
        assert sorted(p.name for p in ckpts.directory.iterdir()) == ["1"]
        ckpts._manager.save = lambda step, **kwargs: (_ for _ in ()).throw(ValueError("a bug"))
        with pytest.raises(ValueError, match="a bug"):  # not every ValueError is the disk's
            ckpts.save(3, state, {"epoch": 2}, loss=0.4)
        ckpts._manager.save = save
    assert ckpts.steps() == [1]


@pytest.mark.parametrize("where", ["checkpoint", "run_file"])
def test_a_full_disk_stops_the_run_in_a_line_and_the_best_epoch_still_makes_model_fcm(workdir, clip, cache,
                                                                                    monkeypatch, where):
    # The run ended with no model.fcm, which takes less room than a checkpoint
    # (no optimizer state) and often still fits.
    import errno

    import orbax.checkpoint as ocp

    out = workdir / f"disk_full_{where}"
    saves, failing = [], []
    save, wait = ocp.CheckpointManager.save, ocp.CheckpointManager.wait_until_finished

    def save_on_a_full_disk(self, step, **kwargs):
        saves.append(step)
        if len(saves) < 2:
            return save(self, step, **kwargs)
        # TensorStore's writes fail in orbax's background thread: the save returns,
        # a half-written temporary folder is left, and the wait raises.
        (Path(self.directory) / f"{step}.orbax-checkpoint-tmp-1" / "state" / "d").mkdir(parents=True)
        failing.append(step)
        return True

    def wait_on_a_full_disk(self):
        if failing:
            failing.clear()
            raise ValueError("RESOURCE_EXHAUSTED: Error writing in OCDBT database: Failed to write 1744252 bytes to "
                             "file 8: No space left on device [os_error_code='28']")
        return wait(self)

    append = train.callbacks.append_metrics

    def append_on_a_full_disk(path, row):
        if row["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        append(path, row)

    with monkeypatch.context() as m:
        if where == "checkpoint":
            m.setattr(ocp.CheckpointManager, "save", save_on_a_full_disk)
            m.setattr(ocp.CheckpointManager, "wait_until_finished", wait_on_a_full_disk)
        else:
            m.setattr(train.callbacks, "append_metrics", append_on_a_full_disk)
        full = rf"cannot save a checkpoint in {out / 'checkpoints'}" if where == "checkpoint" else f"cannot write in {out}"
        with pytest.raises(OutputError, match=rf"^{full}: no space left on the disk; {out / 'model.fcm'} holds the best "
                                              r"epoch so far \(2\); free some space, then resume with --resume "
                                              r"\(from checkpoint \d+\)$"):
            _run(clip, out, cache, config=dataclasses.replace(CONFIG, epochs=3))
    summary = modelfile.load_model(out).header["summary"]
    assert (summary["epochs"], summary["best_epoch"], summary["interrupted"]) == (2, 2, True)
    if where == "checkpoint":  # the last good checkpoint intact, nothing half-written beside it
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [str(saves[0])]
    # Space freed, the run goes on from its last checkpoint.
    _run(clip, out, cache, config=dataclasses.replace(CONFIG, epochs=3), resume=True)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_pictures_are_drawn():
    from framecolor.callbacks import loss_curve, preview_grid

    tiles = np.zeros((2, 20, 20, 3), np.uint8)
    grid = preview_grid(tiles, tiles + 100, tiles + 200)
    assert grid.shape[0] < grid.shape[1] and {0, 100, 200} <= set(np.unique(grid))
    curve = loss_curve([{"train_loss": 1.0, "val_loss": 0.5}, {"train_loss": 0.3, "val_loss": None}])
    assert (curve == (31, 119, 180)).all(-1).any() and (curve == (255, 127, 14)).all(-1).any()


def test_the_previews_name_their_columns():
    from framecolor.callbacks import preview_grid

    tiles = np.full((2, 20, 20, 3), 255, np.uint8)  # white: only the words are dark
    grid = preview_grid(tiles, tiles, tiles)
    third = grid.shape[1] // 3
    header = grid[:16]
    assert all((header[:, c * third:(c + 1) * third] < 100).all(-1).sum() > 5 for c in range(3))
    assert not (grid[16:] < 100).all(-1).any()  # and nothing but the tiles below them


def test_the_loss_plot_says_its_scale_and_names_its_lines():
    from framecolor.callbacks import loss_curve

    history = [{"train_loss": 0.05 * 0.8**i, "val_loss": 0.06 * 0.85**i} for i in range(12)]
    curve = loss_curve(history)
    # Losses 100 times larger draw the same lines on a log scale: only the
    # numbers left of the axis (x < 52) tell the two plots apart.
    larger = loss_curve([{k: 100 * v for k, v in row.items()} for row in history])
    differs = (curve != larger).any(-1)
    assert differs[:, :50].any() and not differs[:, 52:].any()
    # A legend at the top right (where falling losses leave room): both
    # lines' colors, and words in dark ink beside them.
    legend = curve[15:45, -115:-15]
    assert (legend == (31, 119, 180)).all(-1).any() and (legend == (255, 127, 14)).all(-1).any()
    assert (legend < 100).all(-1).sum() > 20
    assert (curve[-28:, 60:] < 100).all(-1).sum() > 20  # the epochs numbered under the axis
    # A diverging run: its last, highest point was drawn under the legend, and
    # the lowest sat on the axis. Every point is whole, in its color, clear of both.
    diverging = loss_curve([{"train_loss": 0.02, "val_loss": 0.01}, {"train_loss": 0.015, "val_loss": 0.02},
                            {"train_loss": 0.012, "val_loss": 0.6}])
    orange = (diverging == (255, 127, 14)).all(-1)
    assert orange[:, -20:].sum() >= 25  # the last point's disk, at the right edge: not hidden
    assert orange[15:47, 365:466].sum() == orange[34:39, 370:386].sum()  # in the legend: its swatch alone
    assert not (diverging[268:272, 53:-15] == (255, 127, 14)).all(-1).any()  # nothing on the axis (row 270)


def test_bins_head_trains_and_saves_a_model_that_reads_out_ab(clip, cache, tmp_path):
    """The classification head: rebalanced cross-entropy falls, and its model file colorizes."""
    from framecolor import abbins
    from framecolor.models.colorizer import build_colorizer

    config = dataclasses.replace(CONFIG, head="bins", epochs=3, lr=3e-3)
    result = _run(clip, tmp_path / "bins", cache, config)
    losses = [row["train_loss"] for row in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    model = modelfile.load_model(tmp_path / "bins" / "model.fcm")
    assert model.config.head == "bins"
    # Jitted: run op by op, the full-depth network took 10 s here (2 s jitted).
    ab = jax.jit(build_colorizer(model.config).apply)(model.variables, np.zeros((1, 80, 80, 1), np.float32))
    assert ab.shape == (1, 80, 80, 2) and float(np.abs(ab).max()) <= float(np.abs(abbins.bin_centers()).max()) / 110



_RECORD = {"train_config": {}, "model_config": {}}  # what run.json must hold to be a run's record


@pytest.mark.parametrize("option, saved, said", [
    ("init", None, "began without --init"),
    ("backbone_weights", "empty.h5", "began with --backbone-weights empty.h5"),
])
def test_resume_with_other_starting_weights_is_refused_not_ignored(tmp_path, option, saved, said):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({**_RECORD, "init": None, "backbone_weights": None, option: saved}))
    with pytest.raises(TrainingError, match=f"{said}, and --resume continues it so: drop --"):
        train.train([tmp_path / "clip.mp4"], run, CONFIG, resume=True, progress=False, **{option: "other.fcm"})


def test_resume_with_other_inputs_is_refused_before_they_are_decoded(tmp_path, monkeypatch):
    # Only "the inputs or their sampling differ" was said, after decoding them all.
    run = tmp_path / "run"
    run.mkdir()
    a, b = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
    (run / "run.json").write_text(json.dumps({**_RECORD, "init": None, "backbone_weights": None, "inputs": [a, b]}))
    monkeypatch.setattr(train.dataset, "load_frames", lambda *args, **kwargs: pytest.fail("decoded the inputs"))
    for given, said in (([b, a], "these are the same in another order: give them in that one"),
                        ([a], "resume it with those")):
        with pytest.raises(TrainingError, match=f"began with {a} {b}; {said}, or start a new run"):
            train.train(given, run, CONFIG, resume=True, progress=False)


def test_resume_keeps_the_runs_options_unless_given_anew(tmp_path, monkeypatch):
    # A bare `train ... --resume` took the defaults for every option not
    # given: refused (size 80 -> 224), or a finished 2-epoch run went on to 20.
    from framecolor.cli.train import _start_options

    run = tmp_path / "run"
    run.mkdir()
    saved = dataclasses.replace(CONFIG, epochs=3)
    (run / "run.json").write_text(json.dumps({
        "train_config": dataclasses.asdict(saved), "model_config": saved.model_config().to_dict(),
        "inputs": [str(tmp_path / "a.mp4")], "init": None, "backbone_weights": None}))
    assert _start_options(run, True, train.TrainConfig) == saved
    assert _start_options(run, False, train.TrainConfig) == train.TrainConfig()
    # An architecture option given anew is refused, not dropped for the run's own.
    monkeypatch.setattr(train.dataset, "load_frames", lambda *args, **kwargs: pytest.fail("decoded the inputs"))
    with pytest.raises(TrainingError, match=r"options differ .*width 0.125 -> 0.5"):
        train.train([tmp_path / "a.mp4"], run, dataclasses.replace(saved, width=0.5), resume=True, progress=False)

def test_bin_weights_come_from_the_training_colors():
    """Colors common in the training frames get small weights, unseen ones large."""
    import skimage.color

    from framecolor import abbins

    frames = np.zeros((4, 16, 16, 3), np.uint8)
    frames[:2] = (200, 30, 30)  # half the frames red, half black
    weights = np.array(train.bin_weights_for(frames, np.arange(4)))
    centers = abbins.bin_centers()

    def bin_of(rgb):
        ab = skimage.color.rgb2lab(np.array([[rgb]], float) / 255)[0, 0, 1:]
        return np.argmin(((centers - ab) ** 2).sum(-1))

    assert weights[bin_of((200, 30, 30))] < weights[bin_of((30, 30, 200))]


# Last in the module: its subprocess compiles while the tests above compile in this one.
def test_two_devices_give_the_parameters_of_one(data_parallel_run):
    """A few data-parallel train steps over two devices equal the same steps on one."""
    proc = data_parallel_run
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["moved"] > 1e-3  # two Adam steps of lr 1e-3 moved the parameters ...
    assert result["difference"] < 1e-6  # ... identically on one and on two devices


@pytest.mark.parametrize("given, said", [
    ("text.h5", "text.h5"),  # not HDF5
    ("missing.h5", "missing.h5: no such file; expected the Keras InceptionV3 weights"),
    ("keras", "no ImageNet weights found: expected inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 "
              r"in \$KERAS_HOME/models or ~/.keras/models"),
    ("keras-copy", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),  # Keras's copy found, and read
])
def test_backbone_weights_are_refused_before_the_frames_are_decoded(tmp_path, monkeypatch, given, said):
    # A bad file was said after the frames were decoded (minutes for a film),
    # and left a run folder; "keras" (Keras's own copy) was taken as a file name.
    from framecolor import weights

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    (tmp_path / "text.h5").write_text("not hdf5\n")
    if given == "keras-copy":
        (tmp_path / "keras_home" / "models").mkdir(parents=True)
        (tmp_path / "text.h5").rename(tmp_path / "keras_home" / "models" / weights.FILENAME)
        given = "keras"
    monkeypatch.setattr(train.dataset, "load_frames", lambda *args, **kwargs: pytest.fail("decoded the inputs"))
    with pytest.raises(ModelFileError, match=said):
        train.train([tmp_path / "a.mp4"], tmp_path / "run", CONFIG, backbone_weights=tmp_path / given
                    if given != "keras" else given, progress=False)
    assert not (tmp_path / "run").exists()


def test_resume_without_the_best_checkpoint_is_refused_before_training(reference, workdir, clip, cache, monkeypatch):
    # model.fcm is made from the best epoch's checkpoint at the end: with it
    # gone, every resume trained an epoch, then failed to restore it.
    out = workdir / "best_gone"
    shutil.copytree(reference.run_dir, out)
    from_dict = train.LoopState.from_dict

    def best_gone(meta):
        loop = from_dict(meta)
        loop.monitor = dataclasses.replace(loop.monitor, best_step=10**6)  # a step no checkpoint holds
        return loop

    monkeypatch.setattr(train.LoopState, "from_dict", staticmethod(best_gone))
    with pytest.raises(TrainingError, match=r"the best epoch's checkpoint \(.*checkpoints/1000000\) is gone"):
        _run(clip, out, cache, config=dataclasses.replace(CONFIG, epochs=3), resume=True,
             on_step=lambda *a: pytest.fail("trained"))


def test_resume_of_a_run_whose_checkpoints_were_deleted_is_refused(reference, workdir, clip, cache, monkeypatch):
    # It started over from random weights and wrote over model.fcm and metrics.jsonl.
    out = workdir / "checkpoints_gone"
    shutil.copytree(reference.run_dir, out)
    shutil.rmtree(out / "checkpoints")
    model = (out / "model.fcm").read_bytes()
    monkeypatch.setattr(train.dataset, "load_frames", lambda *args, **kwargs: pytest.fail("decoded the inputs"))
    with pytest.raises(TrainingError, match="trained epochs but has no checkpoint left .* to resume from"):
        _run(clip, out, cache, config=dataclasses.replace(CONFIG, epochs=3), resume=True)
    # ... and a new run there wrote over them, and mixed its previews with the old run's.
    with pytest.raises(TrainingError, match="already holds a trained run .*; choose another --out$"):
        _run(clip, out, cache)
    assert (out / "model.fcm").read_bytes() == model


def test_a_new_run_is_refused_where_a_model_or_metrics_are(tmp_path):
    from framecolor import rundir

    for name, text in (("model.fcm", "a model"), ("metrics.jsonl", '{"epoch": 1}\n')):
        run = tmp_path / name
        run.mkdir()
        (run / name).write_text(text)
        with pytest.raises(TrainingError, match="already holds a trained run"):
            rundir.open_run(run, resume=False)
    (tmp_path / "empty" / "metrics.jsonl").parent.mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")  # a run stopped before its first epoch's end
    assert rundir.open_run(tmp_path / "empty", resume=False) is None


@pytest.mark.parametrize("text, said", [("", "cannot resume from .*run.json: Expecting value"),
                                        ("{}", "cannot resume from .*run.json: it is not a run's record")])
def test_a_damaged_run_json_is_said_in_a_line(tmp_path, text, said):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(text)
    with pytest.raises(TrainingError, match=said):
        train.train([tmp_path / "a.mp4"], run, CONFIG, resume=True, progress=False)


def test_a_damaged_last_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(reference, workdir, clip,
                                                                                         cache):
    # Cut short by a copy or a failing disk, it blocked every resume until removed by hand.
    out = workdir / "last_damaged"
    shutil.copytree(reference.run_dir, out)
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    last = out / "checkpoints" / str(steps[-1])
    data = [p for p in (last / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    for item in data:  # TensorStore's data cut short
        item.write_bytes(item.read_bytes()[:100])
    kept = {p.relative_to(last): p.read_bytes() for p in last.rglob("*") if p.is_file()}
    # What a save of the model killed outright left (its process gone): nothing
    # trips over it, and the run's save of the model removes it.
    stale = out / f".model.fcm.{_gone_pid()}-0123abcd.partial"
    stale.write_bytes(b"half a model")
    said = []
    with pytest.warns(UserWarning, match=rf"checkpoint {steps[-1]} in \S+ cannot be restored \(.+\); moved it "
                                         rf"to {steps[-1]}\.damaged there, and the run resumes from checkpoint "
                                         rf"{steps[-2]}"):
        train.train([clip], out, dataclasses.replace(CONFIG, epochs=3), cache_dir=cache, progress=False,
                    log=said.append, resume=True)
    assert said[0].startswith(f"resuming from checkpoint {steps[-2]} (epoch 2, step 0)")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    aside = out / "checkpoints" / f"{steps[-1]}.damaged"  # kept as it was, for whoever wants it
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == kept
    # Its step was trained again and saved anew beside it; it is no checkpoint to orbax or to the run's checks.
    from framecolor import rundir
    from framecolor.checkpoint import Checkpoints

    with Checkpoints(out / "checkpoints") as ckpts:
        assert steps[-1] in ckpts.steps() and ckpts.latest_step() > steps[-1]
    shutil.rmtree(out / "checkpoints" / str(steps[-1]))
    assert not stale.exists() and modelfile.load_model(out).header["summary"]["epochs"] == 3
    for folder in (out / "checkpoints").iterdir():
        if folder.name.isdigit():
            shutil.rmtree(folder)
    with pytest.raises(TrainingError, match="trained epochs but has no checkpoint left"):
        rundir.check_resumable(out)  # the damaged one is not one to resume from
    with pytest.raises(TrainingError, match="already holds a training run"):
        rundir.open_run(out, resume=False)  # ... but a trace of the run that training afresh would write over


def _gone_pid() -> int:
    """The number of a process that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def _checkpoints_with_a_damaged(directory, damaged):
    """Checkpoints 1, 2, 3 of a small state in `directory`, those in `damaged` emptied (a copy cut short)."""
    from framecolor.checkpoint import Checkpoints

    with Checkpoints(directory, keep=3) as ckpts:
        for step in (1, 2, 3):
            ckpts.save(step, {"w": np.full(4, step, np.float32)}, {"step": step}, loss=1.0 / step)
    for step in damaged:
        for item in (directory / str(step)).iterdir():
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    return Checkpoints(directory, keep=3)


def test_resume_takes_the_newest_checkpoint_that_restores_and_saves_its_steps_anew(tmp_path):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from framecolor.checkpoint import Checkpoints

    like, sharding = {"w": np.zeros(4, np.float32)}, NamedSharding(train.make_mesh(), P())
    directory = tmp_path / "checkpoints"
    with _checkpoints_with_a_damaged(directory, [2, 3]) as ckpts:
        with pytest.warns(UserWarning) as told:
            step, state, meta = ckpts.restore_newest(like, sharding)
        assert (step, meta) == (1, {"step": 1}) and np.array_equal(state["w"], np.full(4, 1.0))
        assert [str(w.message).split(" cannot")[0] for w in told] == [f"checkpoint 3 in {directory}",
                                                                     f"checkpoint 2 in {directory}"]
        assert sorted(p.name for p in directory.iterdir()) == ["1", "2.damaged", "3.damaged"]
        assert ckpts.steps() == [1]
        # Saved again at the damaged one's step: saved, not skipped as already there, and restored.
        ckpts.save(2, {"w": np.full(4, 20.0, np.float32)}, {"step": 20}, loss=0.1)
        ckpts.wait()
        assert ckpts.steps() == [1, 2] and ckpts.restore(2, like, sharding)[1] == {"step": 20}
    # Damaged at that step once more: moved aside under another name, the first one kept.
    for item in (directory / "2").iterdir():
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    with Checkpoints(directory, keep=3) as ckpts, pytest.warns(UserWarning, match="moved it to 2.damaged-2 there"):
        assert ckpts.restore_newest(like, sharding)[0] == 1
    assert sorted(p.name for p in directory.iterdir()) == ["1", "2.damaged", "2.damaged-2", "3.damaged"]


def test_resume_where_no_checkpoint_restores_is_refused_and_moves_nothing(tmp_path):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    directory = tmp_path / "checkpoints"
    said = rf"no checkpoint in {directory} can be restored \(checkpoint 3: .+\); start a new run"
    with _checkpoints_with_a_damaged(directory, [1, 2, 3]) as ckpts, pytest.raises(TrainingError, match=said):
        ckpts.restore_newest({"w": np.zeros(4, np.float32)}, NamedSharding(train.make_mesh(), P()))
    assert sorted(p.name for p in directory.iterdir()) == ["1", "2", "3"]


def test_resume_into_a_state_the_checkpoints_do_not_fit_moves_nothing_aside(tmp_path):
    # The damaged newest one was moved aside before the one before it was found
    # not to fit (another optimizer), and the resume failed all the same.
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from framecolor.checkpoint import CheckpointMismatch

    directory = tmp_path / "checkpoints"
    with _checkpoints_with_a_damaged(directory, [3]) as ckpts, pytest.raises(CheckpointMismatch):
        ckpts.restore_newest({"w": np.zeros(5, np.float32)}, NamedSharding(train.make_mesh(), P()))
    assert sorted(p.name for p in directory.iterdir()) == ["1", "2", "3"]


def test_a_failed_restores_late_noise_is_dropped_and_nothing_else():
    # A damaged checkpoint's other reads ended after orbax had closed its loop:
    # "Event loop is closed" and "Task exception was never retrieved" tracebacks,
    # on stderr at random, after the one warning that says what happened.
    import logging
    from types import SimpleNamespace

    from framecolor import checkpoint

    passed = []
    late = SimpleNamespace(exc_value=RuntimeError("Event loop is closed"), object=None)
    other = SimpleNamespace(exc_value=RuntimeError("Event loop is closed"), object=object())
    for unraisable in (late, other, SimpleNamespace(exc_value=ValueError("x"), object=None)):
        checkpoint._drop_late_read_callbacks(unraisable, passed.append)
    assert passed == [other, passed[1]] and isinstance(passed[1].exc_value, ValueError)

    def record(text):
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, text, None, None)

    quiet = checkpoint._UnreadReadErrors()
    assert not quiet.filter(record("Task exception was never retrieved\nfuture: <Task ... tensorstore_spec='{}'>"))
    assert quiet.filter(record("Task exception was never retrieved\nfuture: <Task ... ValueError('mine')>"))
