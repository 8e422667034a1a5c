"""Files written whole or not at all, with the permissions any other file gets,
under temporary names no other run shares."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framecolor.atomic import NAME_MAX, atomic_file, temp_path, write_atomic
from framecolor.errors import OutputError
from framecolor.video import VideoWriter, check_output_path, read_frames


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


def test_temporary_names_are_unique_and_fit_however_long_the_name(tmp_path):
    # Two runs writing one output shared ".out.partial.mp4" and wrote over each
    # other's file; a 247-byte name failed at the rename, after all the work.
    out = tmp_path / "out.mp4"
    names = {temp_path(out, keep_suffix=True).name for _ in range(3)}
    assert len(names) == 3 and all(n.startswith(".out.") and n.endswith(".partial.mp4") for n in names)
    for long_name in ("a" * 247 + ".mp4", "影" * 82 + ".mkv"):  # 251 and 250 bytes
        tmp = temp_path(tmp_path / long_name, keep_suffix=True)
        assert len(os.fsencode(tmp.name)) <= NAME_MAX and tmp.suffix == Path(long_name).suffix
        tmp.write_bytes(b"x")  # the file system takes it


def test_a_name_too_long_for_the_file_system_is_refused_before_any_work(tmp_path):
    with pytest.raises(OutputError, match=r"output name too long: a+\.\.\. is 256 bytes; file systems take 255"):
        check_output_path(tmp_path / ("a" * 252 + ".mp4"))
    check_output_path(tmp_path / ("a" * 251 + ".mp4"))  # 255 bytes: fine


def _writer(path):
    return VideoWriter(path, width=64, height=48, fps=25, time_base=Fraction(1, 25), preset="ultrafast")


def test_a_run_never_writes_over_an_output_another_run_finished_meanwhile(tmp_path):
    out = tmp_path / "out.mp4"
    first, second = _writer(out), _writer(out)  # both began while out.mp4 did not exist
    for level, writer in ((40, first), (200, second)):
        for i in range(3):
            writer.write_rgb(np.full((48, 64, 3), level, np.uint8), i)
    first.close()
    with pytest.raises(OutputError, match="output already exists: .*out.mp4, written by another run meanwhile"):
        second.close()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # the second run's file gone too
    assert abs(int(next(read_frames(out)).image.mean()) - 40) <= 2  # the first run's frames
