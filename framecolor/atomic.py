"""Files written whole or not at all: a temporary file beside the target,
renamed over it only when every byte is written, so an error, Ctrl-C or a
crash never leaves half a model, report or cache behind."""

from __future__ import annotations

import contextlib
import os
import re
import time
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
    return path.with_name(_temp_name(path, os.getpid(), uuid.uuid4().hex[:8], keep_suffix))


def _temp_name(path: Path, pid: int, token: str, keep_suffix: bool) -> str:
    # One function for making the name and for knowing it again (remove_stale_temps).
    tag = f".{pid}-{token}{_TEMP_MARK}{path.suffix if keep_suffix else ''}"
    room = NAME_MAX - 1 - len(os.fsencode(tag))
    stem = path.stem if keep_suffix else path.name
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return f".{stem}{tag}"


_TEMP_TAG = re.compile(r"\.(\d+)-([0-9a-f]{8})" + re.escape(_TEMP_MARK) + r"\Z")

# A temp file untouched this long is a dead write's whatever its process
# number says: in a container each run may get the killed one's number.
STALE_AFTER_S = 3600.0


def remove_stale_temps(path) -> list[Path]:
    """Remove the temp files that atomic_file writes of `path` killed outright
    (SIGKILL, the OOM killer, a power cut) left beside it; the removed ones.

    A killed write cannot remove its own, and each has a new name, so they
    piled up (a model's whole size each). Only the names atomic_file gives
    `path` are touched, and only those of a process no longer running here
    or untouched for STALE_AFTER_S: a write in progress is never cut short.
    """
    path = Path(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        found = _TEMP_TAG.search(entry.name)
        if found is None or not entry.is_file(follow_symlinks=False):
            continue
        pid, token = int(found.group(1)), found.group(2)
        if entry.name != _temp_name(path, pid, token, keep_suffix=False):
            continue  # another file's temp, or a name that only looks like one
        try:
            if not (_gone(pid) or time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S):
                continue
            os.unlink(entry.path)
        except OSError:  # removed meanwhile, or not ours to remove: left as it was
            continue
        removed.append(Path(entry.path))
    return removed


def _gone(pid: int) -> bool:
    """Whether no process `pid` runs on this machine (False where that cannot be asked)."""
    if os.name != "posix" or pid == os.getpid():  # Windows' os.kill(pid, 0) would end the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # another user's process, running; a number no process has
        return False
    return False


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
