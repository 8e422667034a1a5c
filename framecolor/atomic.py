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
    tmp = temp_path(path)
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


# The longest file name most file systems take (ext4, XFS, btrfs, APFS, NTFS):
# in bytes as the name is stored, so 85 CJK characters reach it.
NAME_MAX = 255
_TEMP_MARK = ".partial"


def temp_path(path, *, keep_suffix: bool = False) -> Path:
    """A new hidden name beside `path` for its contents in the making.

    Unique to this process and call: two runs writing one output shared a
    name, and each wrote over the other's file through it. Short enough
    for the folder however long `path`'s own name is (a name near the limit
    failed at the rename, after all the work). `keep_suffix` ends it with
    `path`'s suffix, which picks the muxer as for the final name.
    """
    path = Path(path)
    tag = f".{os.getpid()}-{uuid.uuid4().hex[:8]}{_TEMP_MARK}{path.suffix if keep_suffix else ''}"
    room = NAME_MAX - 1 - len(os.fsencode(tag))
    stem = path.stem if keep_suffix else path.name
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return path.with_name(f".{stem}{tag}")


def move_into_place(tmp: Path, path: Path, *, overwrite: bool) -> bool:
    """Rename `tmp` to `path`; without `overwrite`, only where `path` is still
    free, and False (`tmp` left) where another process has put a file there
    since the run began. A hard link takes a name only if it is free;
    a file system without hard links gets a check before the rename."""
    if overwrite:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some network shares)
        if path.exists():
            return False
        os.replace(tmp, path)
        return True
    os.unlink(tmp)
    return True


def write_atomic(path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)
