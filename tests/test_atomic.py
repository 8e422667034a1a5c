"""Files written whole or not at all, with the permissions any other file gets."""

from __future__ import annotations

import os

import pytest

from framecolor.atomic import atomic_file, write_atomic


def test_a_file_is_replaced_whole_with_the_usual_permissions(tmp_path):
    path = tmp_path / "report.json"
    path.write_bytes(b"old")
    before = os.umask(0o022)
    try:
        write_atomic(path, b"new")
    finally:
        os.umask(before)
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: others may read a report or a model
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "model.fcm"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path, sync=True) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.fcm"]
