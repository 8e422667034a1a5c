"""Turning library errors into one `error: ...` line and exit code 1, and
framecolor's warnings into one `warning: ...` line."""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import typer

from framecolor.errors import FramecolorError
from framecolor.signals import handling_stop_signals

_DEBUG_ENV = "FRAMECOLOR_DEBUG"


def set_debug(on: bool) -> None:
    # Kept in the environment so that worker threads and `python -m` children
    # see it too; reset on every invocation so one --debug run does not leak.
    if on:
        os.environ[_DEBUG_ENV] = "1"
    else:
        os.environ.pop(_DEBUG_ENV, None)


def debugging() -> bool:
    return os.environ.get(_DEBUG_ENV) == "1"


def say(message: str) -> None:
    """A line on stderr, above any progress bar rather than through it (a
    warning, a stop's note from another thread, train's log)."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def one_line_warnings():
    """framecolor's warnings (an odd size, a skipped stream, a truncated input)
    are messages for the user, so they print as `warning: ...`, not as a
    source location; other packages' keep Python's format, and --debug keeps it for all."""
    package = str(Path(__file__).resolve().parents[1])
    python_format = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(package) and not debugging():
            say(f"warning: {message}")
        else:
            python_format(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = python_format


_USERS_TO_FIX = frozenset({errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG})


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a job scheduler's time limit), raised where Ctrl-C would
    be, so that it cleans up as Ctrl-C does: no partial output is left."""


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises Terminated, and Ctrl-C KeyboardInterrupt, while a command
    runs, neither of them where Python would swallow it (train puts its own
    handler in place during a run, which checkpoints first)."""
    def handler(signum, frame):
        if _unsafe_to_raise(frame):
            # Ask again once that has returned: see _unsafe_to_raise.
            again = threading.Timer(_SIGNAL_RETRY_S, _ask_again, (signum, handler))
            again.daemon = True
            again.start()
            return
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    with handling_stop_signals(handler, when_slow=_say_stop_waits):
        yield


def _say_stop_waits() -> None:
    say("stopping (a model being compiled finishes first, which can take a minute)")


_SIGNAL_RETRY_S = 0.01


def _ask_again(signum: int, handler) -> None:
    """Send `signum` again where `handler` still hears it. Once the command is
    over (a stop put off in its last join), Python's own handler would raise
    it anywhere, a garbage-collection callback included, after the command
    had finished or cleaned up."""
    if signal.getsignal(signum) is handler:
        os.kill(os.getpid(), signum)


def _unsafe_to_raise(frame) -> bool:
    """Would an exception raised at `frame` be lost, or worse?

    Python only reports what a garbage-collection callback or a __del__
    raises, and carries on: JAX runs a callback at every collection, and a
    Ctrl-C while JAX loaded was sometimes lost to it, the command going on to
    the end. Raised inside an import, it can leave an extension module half
    made: numpy or jaxlib then failed with an ImportError traceback, the
    process aborted, or the interrupt vanished. Raised inside Thread.join,
    Python 3.11 takes the thread for finished while it runs on (its handling
    of bpo-45274 releases the lock the thread still holds): apply then closed
    the writer under its encode thread, and the process died of a segfault.
    """
    callbacks = {getattr(c, "__code__", None) for c in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code in callbacks or code.co_name == "__del__" or code.co_filename.startswith("<frozen importlib"):
            return True
        if code.co_name == "join" and code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def guarded(command):
    """Wrap a command so user errors print one line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with one_line_warnings(), terminate_as_interrupt():
                return command(*args, **kwargs)
        except FramecolorError as exc:
            if debugging():
                raise
            fail(str(exc))
        except KeyboardInterrupt as exc:
            if debugging():
                raise
            if isinstance(exc, Terminated):
                fail("terminated", code=128 + signal.SIGTERM)
            fail("interrupted", code=130)
        except OSError as exc:
            # A full disk or quota, wherever it strikes (a cache, a preview,
            # a log), is the user's to fix; what was being written cleans up
            # after itself as for any error. So is a name too long for the
            # file system, which any look at the path raises.
            if exc.errno not in _USERS_TO_FIX or debugging():
                raise
            fail(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror))
        except (MemoryError, RuntimeError) as exc:
            # Memory is the user's to size: batches too large for the host
            # (MemoryError) or for the GPU (XLA's RESOURCE_EXHAUSTED).
            if debugging() or not (isinstance(exc, MemoryError) or _device_out_of_memory(exc)):
                raise
            fail(f"out of memory: {str(exc).splitlines()[0]} (smaller batches or pictures need less: "
                 "--batch-size, --render-size or --size)")

    return wrapper


def _device_out_of_memory(exc: RuntimeError) -> bool:
    """Is this XLA's error for an allocation the device could not make? Told by
    its status, as jax names the class differently from release to release.
    A GPU says RESOURCE_EXHAUSTED; the CPU backend says INTERNAL, "Error
    dispatching computation: Out of memory allocating N bytes"."""
    if type(exc).__name__ not in ("JaxRuntimeError", "XlaRuntimeError"):
        return False
    message = str(exc).split("\n", 1)[0]
    return message.startswith("RESOURCE_EXHAUSTED") or (
        message.startswith("INTERNAL") and "Out of memory allocating" in message)


_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def keep_compiled_programs(environ=os.environ) -> Path | None:
    """Let JAX keep its compiled programs between runs, in framecolor's cache folder (jax/).

    A run compiles the network and the steps around it for each frame and
    render size; the next run with the same model and sizes loads them
    instead (examples/bikes_bw.mp4 on a 2-core CPU: 13.8-14.0 s -> 11.8-12.0 s
    in all). Set through the environment, which JAX reads when it is
    imported, so `--help` still starts without JAX. A user's own
    JAX_COMPILATION_CACHE_DIR wins; a folder that cannot be written means no
    cache rather than a warning on every compile. Returns the folder, or None.
    """
    from framecolor.cachedir import default_cache_dir

    if _CACHE_ENV in environ:
        return None
    try:
        folder = default_cache_dir(environ) / "jax"
    except RuntimeError:  # no home directory
        return None
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        return None
    environ[_CACHE_ENV] = str(folder)
    # By default JAX keeps only compiles over a second: the steps around the
    # network compile faster than that, but there are several of them per size.
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return folder


def run(app) -> None:
    """Run the app as `framecolor`: its usage errors (an unknown option, a value
    that does not parse) are one `error:` line and exit 1 like any bad input,
    not click's boxed usage text and exit 2."""
    empty = _empty_argument(sys.argv[1:])
    if empty is not None:
        typer.echo(f"error: {empty}", err=True)
        sys.exit(1)
    try:
        code = app(standalone_mode=False)
    except SystemExit:
        raise
    except FramecolorError as exc:  # raised outside a guarded command
        if debugging():
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        # typer's click (vendored in recent releases, its own package before):
        # told by class name, so either works.
        names = {c.__name__ for c in type(exc).__mro__}
        if "Abort" in names:  # Ctrl-C outside a command
            typer.echo("error: interrupted", err=True)
            sys.exit(130)
        if "UsageError" not in names or debugging():
            raise
        message = exc.format_message()
        if not message:  # `framecolor` alone: its help, shown already
            sys.exit(exc.exit_code)
        where = f" ({exc.ctx.command_path} --help lists what it takes)" if getattr(exc, "ctx", None) else ""
        typer.echo(f"error: {message}{where}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _empty_argument(args) -> str | None:
    """What is wrong with an empty argument among `args`, or None if none is.

    An empty argument is nearly always a shell variable that was never set
    (`framecolor apply "$IN" "$OUT"`), and as a path it would mean the current
    folder: apply would write into it, or read it as a film of photos.
    No argument of framecolor's is meaningful empty.
    """
    for arg in args:
        if arg == "":
            return "an argument is empty (a shell variable that was not set?)"
        if arg.startswith("--") and arg.endswith("=") and len(arg) > 3:
            return f"{arg} has no value"
    return None


def print_rows(rows) -> None:
    """Print (label, value) pairs as an aligned two-column table."""
    rows = [(str(k), str(v)) for k, v in rows]
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")
