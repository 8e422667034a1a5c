"""The stop signals, Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler's time
limit), handled one way while a block runs: the command line turns them into
exceptions that clean up, the training loop into a flag checked between steps."""

from __future__ import annotations

import signal
import socket
import threading
import time
from contextlib import contextmanager, nullcontext

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# How long a stop may take before the user is told what it waits for.
SLOW_STOP_S = 1.0


@contextmanager
def handling_stop_signals(handler, when_slow=None):
    """`handler(signum, frame)` for the stop signals while the block runs, the
    previous handlers back after it. Python sets handlers from the main
    thread only: in another thread the block runs under the ones in place.

    A stop can take a while: the training loop stops after the step under
    way, and Python runs a handler only between two steps of the main
    thread's bytecode, so not while that thread waits in one long native
    call (XLA compiling a model's first step: a minute or more at full size
    on a CPU). Met by silence, a user presses Ctrl-C again or kills the
    process. So `when_slow()` (no arguments; it says what the stop waits
    for) is called from another thread where the block still runs
    SLOW_STOP_S after a stop signal came.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        with _watching(when_slow) if when_slow is not None else nullcontext():
            yield
    finally:
        for signum, former in previous.items():
            signal.signal(signum, former)


@contextmanager
def _watching(when_slow):
    """Hear the stop signals as they come, from a thread, and call
    `when_slow` where the block outlasts one by SLOW_STOP_S. The C-level
    handler writes each signal's number to the wakeup fd at once, whatever
    the main thread is doing; Python's own handler runs later."""
    heard, wakeup = socket.socketpair()
    wakeup.setblocking(False)
    try:
        former = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        heard.close(), wakeup.close()
        yield
        return
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(heard, done, when_slow), daemon=True,
                               name="framecolor-stop-signals")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(former)
        heard.shutdown(socket.SHUT_RDWR)  # the watcher's recv returns: it ends
        watcher.join()
        heard.close(), wakeup.close()


def _watch(heard: socket.socket, done: threading.Event, when_slow) -> None:
    deadline = None  # when to look whether the block still runs
    while True:
        heard.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
        try:
            data = heard.recv(64)
        except TimeoutError:
            data = None
        except OSError:
            return
        if data == b"":  # shut down: the block is over
            return
        if data:
            if deadline is None and any(number in STOP_SIGNALS for number in data):
                deadline = time.monotonic() + SLOW_STOP_S
        elif deadline is not None:
            deadline = None
            if not done.is_set():
                when_slow()
