"""The stop signals, Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler's time
limit), handled one way while a block runs: the command line turns them into
exceptions that clean up, the training loop into a flag checked between steps."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def handling_stop_signals(handler):
    """`handler(signum, frame)` for the stop signals while the block runs, the
    previous handlers back after it. Python sets handlers from the main
    thread only: in another thread the block runs under the ones in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, former in previous.items():
            signal.signal(signum, former)
