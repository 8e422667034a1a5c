"""Files written whole or not at all: a temporary file beside the target,
renamed over it only when every byte is written, so an error, Ctrl-C or a
crash never leaves half a model, report or cache behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path, *, sync: bool = False):
    """A binary file to write `path`'s new contents to; it replaces `path`
    when the `with` block ends without an exception (after an fsync with
    `sync`, for files worth a crash's wait), and is removed otherwise.

    Made with os.open, not mkstemp, so it gets the usual umask permissions
    rather than 0600; in the same folder, so os.replace is one atomic rename.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)
