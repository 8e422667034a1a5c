"""The command line: readable output, one-line errors with exit code 1, no tracebacks."""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from framecolor.cli import make_app
from framecolor.video import photos
from tests import media


def run(*args):
    return CliRunner().invoke(make_app(), list(map(str, args)))


def assert_one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


def test_info_video_table_and_json(clip):
    table = run("info", clip)
    assert table.exit_code == 0, table.output
    assert "64 x 48" in table.output and "aac" in table.output and "12" in table.output
    data = json.loads(run("info", clip, "--json").output)
    assert (data["width"], data["height"], data["frame_count"]) == (64, 48, 12)
    assert data["fps"] == "30000/1001" and len(data["audio"]) == 1


@pytest.mark.parametrize("seconds, clock", [(5.28, "0:00:05.280"), (3725.5, "1:02:05.500"),
                                             (59.9996, "0:01:00.000"), (3599.9997, "1:00:00.000")])
def test_info_says_a_duration_as_a_clock_that_carries(seconds, clock):
    # Rounded after the split, 59.9996 s read 0:00:60.000.
    from framecolor.video.describing import _format_seconds

    assert _format_seconds(seconds) == clock


def test_info_of_a_photo_says_what_colorizing_keeps(tmp_path):
    # Not a one-frame video at 25 frames/s: its size, depth and transparency.
    deep = np.random.default_rng(0).integers(0, 65536, (30, 40, 4), dtype=np.uint16)
    photo = media.make_photo(tmp_path / "scan.png", deep, "rgba64le", "rgba64be")
    # --json gives values, as for a video or a model: it gave the table's words ("40 x 30", "16 bits a channel").
    data = json.loads(run("info", photo, "--json").output)
    assert data == {"path": str(photo), "width": 40, "height": 30, "stored_turned": False, "type": "png",
                    "bits": 16, "transparency": True}
    assert data == photos.photo_facts(photo)  # the library's, which the table is made of too
    table = run("info", photo).output
    assert "frame rate" not in table and "16 bits a channel" in table
    scan = media.make_photo(tmp_path / "reel_0001.dpx", deep[..., :3], "rgb48le", "gbrp10le")
    assert json.loads(run("info", scan, "--json").output)["bits"] == 10
    # A camera's portrait: stored 40 wide, shown (EXIF orientation 6) 30 wide and 40 high.
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    portrait = tmp_path / "portrait.jpg"
    Image.fromarray((deep[..., :3] >> 8).astype(np.uint8)).save(portrait, exif=exif)
    data = json.loads(run("info", portrait, "--json").output)
    assert (data["width"], data["height"], data["stored_turned"], data["bits"], data["transparency"]) == (
        30, 40, True, 8, False)
    assert "stored turned" in run("info", portrait).output  # as the table says it


def test_info_of_numbered_photos_describes_the_video_they_make(tmp_path):
    for n in (1, 2, 10):
        media.make_photo(tmp_path / f"scan_{n}.png", media.frame_image(n, 40, 30), "rgb24", "rgb24")
    table = run("info", tmp_path).output
    assert "40 x 30" in table and "24 fps" in table and "numbers skip from 2 to 10" in table
    data = json.loads(run("info", tmp_path, "--json").stdout)
    assert (data["width"], data["height"], data["frame_count"], data["fps"]) == (40, 30, 3, "24")


def test_info_of_a_model_as_json_gives_values(tiny_model_path):
    data = json.loads(run("info", tiny_model_path, "--json").output)
    assert data["config"]["decoder"] == "unet" and isinstance(data["parameters"], int)
    assert "parameters" in run("info", tiny_model_path).output  # the table for people


def test_info_counts_the_seed_models_parameters():
    assert "24,441,256" in run("info", "--decoder", "seed", "--mode", "lab", "--size", 224).output
    assert "24,441,313" in run("info", "--decoder", "seed", "--mode", "rgb", "--size", 224).output
    # As JSON, values as values (as a model file's): the count was the string "24,441,256".
    data = json.loads(run("info", "--decoder", "seed", "--mode", "lab", "--size", 224, "--json").output)
    assert data["parameters"] == 24_441_256 and data["config"]["decoder"] == "seed"


def test_info_refuses_model_flags_beside_a_path(tiny_model_path, clip):
    # They were dropped without a word: `info model.fcm --width 0.5` described the file as it is.
    for path in (tiny_model_path, clip):
        assert_one_line_error(run("info", path, "--width", 0.5, "--decoder", "seed"),
                              "--decoder --width: these build a model to describe when no PATH is given")


@pytest.mark.parametrize("fixture", ["text_mp4", "truncated_mp4", "audio_only", "media_dir"])
def test_bad_inputs_give_one_error_line(fixture, request):
    assert_one_line_error(run("info", request.getfixturevalue(fixture)))


def test_missing_file(tmp_path):
    assert_one_line_error(run("info", tmp_path / "nope.mp4"), "nope.mp4")
    (tmp_path / "videos").mkdir()
    assert_one_line_error(run("info", tmp_path / "videos"), "videos is a folder without photos: info describes")
    (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")  # a loop: resolving it raised RuntimeError in apply
    for command in (("info", tmp_path / "a.mp4"), ("apply", tmp_path / "a.mp4", tmp_path / "out.mp4")):
        assert_one_line_error(run(*command), "a.mp4 is a symbolic link to nothing")


def test_a_pipe_as_input_is_refused_not_waited_on(tmp_path):
    pipe = tmp_path / "in.mp4"
    os.mkfifo(pipe)
    # Should the pipe be opened after all, this writer lets the open return
    # (with nothing to read) instead of waiting forever.
    writer = threading.Thread(target=lambda: open(pipe, "wb").close(), daemon=True)
    writer.start()
    try:
        for command in (("info", pipe), ("apply", pipe, tmp_path / "out.mp4")):
            assert_one_line_error(run(*command), "in.mp4 is a pipe or a device, not a video file", "save it to a file")
        assert not (tmp_path / "out.mp4").exists()
    finally:
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go if nothing opened it
        writer.join(5)


def test_debug_shows_the_traceback(text_mp4):
    result = run("--debug", "info", text_mp4)
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "InputError"


def test_a_full_disk_or_too_long_a_name_anywhere_is_one_error_line(tmp_path, monkeypatch):
    # Whatever was being written (a cache, a preview, a log) when the disk
    # filled up, the user sees what to fix, not a traceback; other OS errors
    # are bugs until shown otherwise, and keep theirs.
    from framecolor.cli.common import guarded

    monkeypatch.delenv("FRAMECOLOR_DEBUG", raising=False)  # an earlier --debug run's; the real app resets it

    def command_failing_with(code):
        def command():
            raise OSError(code, os.strerror(code), str(tmp_path / "cache.npy"))

        app = typer.Typer()
        app.callback()(lambda: None)
        app.command("go")(guarded(command))
        return CliRunner().invoke(app, ["go"])

    assert_one_line_error(command_failing_with(errno.ENOSPC), "No space left on device", "cache.npy")
    assert_one_line_error(command_failing_with(errno.EDQUOT), "quota", "cache.npy")
    # Any look at a path whose name is too long for the file system raises this.
    assert_one_line_error(command_failing_with(errno.ENAMETOOLONG), "File name too long", "cache.npy")
    assert isinstance(command_failing_with(errno.EACCES).exception, PermissionError)


def test_running_out_of_memory_is_one_line_with_the_way_out(monkeypatch):
    """Batches too large for the host or the GPU: the user's to size, so one line.
    Other runtime errors (bugs) keep their traceback."""
    from jax.errors import JaxRuntimeError

    from framecolor.cli.common import guarded

    monkeypatch.delenv("FRAMECOLOR_DEBUG", raising=False)

    def command_raising(exc):
        def command():
            raise exc

        app = typer.Typer()
        app.callback()(lambda: None)
        app.command("go")(guarded(command))
        return CliRunner().invoke(app, ["go"])

    host = command_raising(MemoryError("Unable to allocate 28.6 GiB for an array with shape (100000, 480, 640)"))
    assert host.exit_code == 1 and host.output == ("error: out of memory: Unable to allocate 28.6 GiB for an array "
                                                   "with shape (100000, 480, 640) (smaller batches or pictures need less: "
                                                   "--batch-size, --render-size or --size)\n")
    device = command_raising(JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9.5GiB.\nmore"))
    assert device.exit_code == 1 and device.output == ("error: out of memory: RESOURCE_EXHAUSTED: Out of memory while "
                                                       "trying to allocate 9.5GiB. (smaller batches or pictures need less: "
                                                       "--batch-size, --render-size or --size)\n")
    cpu = command_raising(JaxRuntimeError("INTERNAL: Error dispatching computation: Out of memory allocating "
                                          "301056000000 bytes."))
    assert cpu.exit_code == 1 and cpu.output.startswith("error: out of memory: INTERNAL: Error dispatching "
                                                        "computation: Out of memory allocating 301056000000 bytes.")
    for bug in (JaxRuntimeError("INTERNAL: something broke"), RuntimeError("RESOURCE_EXHAUSTED but not XLA's")):
        assert command_raising(bug).exception is bug


def test_apply_takes_times_as_ffmpeg_does():
    from framecolor.cli.apply import _seconds

    assert [_seconds(t) for t in ("90", "1:30", "0:01:30.5", " 2.25 ")] == [90.0, 90.0, 90.5, 2.25]
    for bad in ("1:xx", "1::2", "1:2:3:4", ""):
        with pytest.raises(typer.BadParameter, match="not a time"):
            _seconds(bad)


def test_train_refuses_flags_that_would_be_dropped(tmp_path):
    # --every won and --frames-per-video was dropped without a word.
    clip = media.make_video(tmp_path / "a.mp4", frames=4, audio=False)
    result = run("train", clip, "--out", tmp_path / "run", "--every", "3", "--frames-per-video", "50")
    assert_one_line_error(result, "--every and --frames-per-video")
    assert not (tmp_path / "run").exists()
    # A floor above the rate, both given: a contradiction, said as one.
    result = run("train", clip, "--out", tmp_path / "run", "--lr", "1e-7", "--min-lr", "1e-6")
    assert_one_line_error(result, "--min-lr 1e-06 is above --lr 1e-07")
    assert not (tmp_path / "run").exists()
    # The bins head has no --loss: it was taken, written to run.json and never used.
    result = run("train", clip, "--out", tmp_path / "run", "--head", "bins", "--loss", "huber")
    assert_one_line_error(result, "--loss is the regress head's")
    assert not (tmp_path / "run").exists()


def test_usage_mistakes_are_one_error_line_with_exit_1():
    """An unknown option, a value that does not parse, a missing argument: bad
    input like any other, not click's boxed usage text and exit 2."""
    for args, said in ((["apply", "a.mp4", "b.mp4", "--render-size", "big"], "Invalid value for '--render-size'"),
                       (["apply", "a.mp4", "b.mp4", "--start", "5s"], "Invalid value for '--start' / '-ss': '5s' is not a time"),
                       (["apply", "--bogus"], "No such option: --bogus"), (["apply"], "Missing argument"),
                       (["colorize"], "No such command 'colorize'")):
        env = {k: v for k, v in os.environ.items() if k != "FRAMECOLOR_DEBUG"}  # an earlier --debug test's
        done = subprocess.run([sys.executable, "-m", "framecolor", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 1 and done.stdout == "", done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {said}") and lines[0].endswith("--help lists what it takes)")



@pytest.mark.parametrize("args, said", [(["apply", "in.mp4", ""], "an argument is empty (a shell variable that was not set?)"),
                                        (["info", ""], "an argument is empty (a shell variable that was not set?)"),
                                        (["eval", "a.mp4", "--json="], "--json= has no value")])
def test_an_empty_argument_is_refused_before_the_command_runs(monkeypatch, capsys, args, said):
    # As a path, "" is the current folder: `apply "$IN" "$OUT"` with $OUT unset
    # wrote into it, and `apply "" out.mp4` read it as a film of photos.
    from framecolor.cli import common

    monkeypatch.setattr(sys, "argv", ["framecolor", *args])
    with pytest.raises(SystemExit) as exit:
        common.run(lambda **kwargs: pytest.fail("the command ran"))
    assert exit.value.code == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {said}"]


def test_ctrl_c_in_a_garbage_collection_callback_is_not_lost():
    # JAX runs a callback at every collection; Python only reports what one
    # raises, and the command went on to the end as if never interrupted.
    from framecolor.cli import common

    def press_ctrl_c(phase, info):
        if phase == "start" and not pressed:
            pressed.append(True)
            signal.raise_signal(signal.SIGINT)

    pressed = []
    gc.callbacks.append(press_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt), common.terminate_as_interrupt():
            gc.collect()
            time.sleep(10)  # where the interrupt lands, asked again once the callback returned
    finally:
        gc.callbacks.remove(press_ctrl_c)
    assert pressed


def test_ctrl_c_while_a_module_loads_waits_for_it_to_load(tmp_path, monkeypatch):
    # Raised inside an import, it left numpy or jaxlib half made: an
    # ImportError traceback, an abort, or the interrupt lost.
    from framecolor.cli import common

    (tmp_path / "slow_to_load.py").write_text("import signal\nsignal.raise_signal(signal.SIGINT)\nloaded = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(KeyboardInterrupt), common.terminate_as_interrupt():
            import slow_to_load  # noqa: F401
            time.sleep(10)
        assert sys.modules["slow_to_load"].loaded
    finally:
        sys.modules.pop("slow_to_load", None)

def _native_call_lasting(seconds: float):
    """A call that runs no Python bytecode (as XLA's compile runs none) for about `seconds`."""
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 20_000)
    rounds = int(20_000 * seconds / max(time.perf_counter() - started, 1e-4))
    return lambda: hashlib.pbkdf2_hmac("sha256", b"x", b"y", rounds)


def test_a_stop_is_not_raised_inside_a_threads_join():
    # Raised there, Python 3.11 took a running thread for finished, and apply
    # closed its writer under the encode thread: Ctrl-C near a video's end
    # ended in a segfault (exit 139) instead of "error: interrupted".
    from framecolor.cli import common

    release, seen = threading.Event(), []
    worker = threading.Thread(target=release.wait)

    def handler(signum, frame):
        seen.append(common._unsafe_to_raise(frame))
        release.set()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        worker.start()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        worker.join()  # the signal arrives while the main thread waits here
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [True]
    assert common._unsafe_to_raise(sys._getframe()) is False  # elsewhere it is raised at once


def test_a_stop_put_off_is_sent_again_only_to_the_handler_that_put_it_off():
    # Put off in the command's last join, it came again after the command had
    # restored Python's handler: a KeyboardInterrupt in a gc callback, or at exit.
    from framecolor.cli import common

    got = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        common._ask_again(signal.SIGUSR1, handler=lambda signum, frame: None)  # no longer installed
        time.sleep(0.05)
        assert got == []
        common._ask_again(signal.SIGUSR1, handler=signal.getsignal(signal.SIGUSR1))
        time.sleep(0.05)
        assert got == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_stop_that_waits_for_a_native_call_says_so_at_once(monkeypatch):
    # Python's handler runs only once the call returns: a Ctrl-C during a
    # first compile met a minute of silence.
    from framecolor import signals

    monkeypatch.setattr(signals, "SLOW_STOP_S", 0.2)
    native = _native_call_lasting(2.0)
    said, handled = [], []
    with signals.handling_stop_signals(lambda *_: handled.append(time.monotonic()),
                                       when_slow=lambda: said.append(time.monotonic())):
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        native()
    assert len(said) == 1 and len(handled) == 1 and said[0] < handled[0] - 0.5
    # A stop that takes effect at once says nothing.
    def interrupt(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), signals.handling_stop_signals(
            interrupt, when_slow=lambda: said.append(time.monotonic())):
        signal.raise_signal(signal.SIGINT)
        time.sleep(10)
    time.sleep(0.4)
    assert len(said) == 1
    assert [t.name for t in threading.enumerate() if t.name == "framecolor-stop-signals"] == []


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "framecolor", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("info", "train", "apply", "eval"):
        assert command in done.stdout


def test_compiled_programs_are_kept_in_the_users_cache_folder(tmp_path):
    from framecolor.cli.common import keep_compiled_programs

    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    folder = keep_compiled_programs(environ)
    assert folder == tmp_path / "cache" / "framecolor" / "jax" and not folder.exists()  # JAX makes it when it writes
    assert environ["JAX_COMPILATION_CACHE_DIR"] == str(folder)
    chosen = {"FRAMECOLOR_CACHE": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert keep_compiled_programs(chosen) == tmp_path / "mine" / "jax"  # beside the frame cache
    own = {"JAX_COMPILATION_CACHE_DIR": "/elsewhere", "XDG_CACHE_HOME": str(tmp_path)}
    assert keep_compiled_programs(own) is None and own["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"
    (tmp_path / "file").write_text("")
    blocked = {"XDG_CACHE_HOME": str(tmp_path / "file")}  # a file where the folder would go
    assert keep_compiled_programs(blocked) is None and "JAX_COMPILATION_CACHE_DIR" not in blocked


def test_a_run_leaves_its_compiled_programs_for_the_next(tiny_model_path, clip, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["FRAMECOLOR_CACHE"] = str(tmp_path / "cache" / "framecolor")
    done = subprocess.run([sys.executable, "-m", "framecolor", "apply", str(clip), str(tmp_path / "out.mp4"),
                           "--model", str(tiny_model_path), "--quiet"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert any((tmp_path / "cache" / "framecolor" / "jax").glob("jit__model_ab-*"))  # the network's, at least


def test_sigterm_mid_run_cleans_up_as_ctrl_c_does(tiny_model_path, tmp_path):
    """`kill` or a scheduler's time limit: exit 143, one line, no partial video left."""
    import signal
    import time

    from tests import media

    source = media.make_video(tmp_path / "long.mp4", frames=1500, audio=False, crf=40)
    out = tmp_path / "out" / "colored.mp4"
    out.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FRAMECOLOR_DEBUG"}  # an earlier --debug test's
    proc = subprocess.Popen([sys.executable, "-m", "framecolor", "apply", str(source), str(out),
                             "--model", str(tiny_model_path), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    def writing():  # frames are in the partial file (not the empty trial check_output_path makes and removes)
        try:
            return any(p.stat().st_size for p in out.parent.glob(".colored.*.partial.mp4"))
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 120
    while not writing():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and output.strip().splitlines()[-1] == "error: terminated"
    assert list(out.parent.iterdir()) == []


def test_debug_does_not_leak_into_the_next_run(text_mp4):
    run("--debug", "info", text_mp4)
    assert_one_line_error(run("info", text_mp4))
