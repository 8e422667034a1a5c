"""examples/make_bw.py: the README's way to make a gray clip, with the CLI's manners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from framecolor import video

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "make_bw.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_make_bw_writes_a_gray_copy_and_refuses_to_overwrite(clip, tmp_path):
    out = tmp_path / "bw.mp4"
    assert _run(clip, out).returncode == 0
    assert video.probe(out).frame_count == video.probe(clip).frame_count
    again = _run(clip, out)
    assert again.returncode == 1 and again.stderr.startswith("error: output already exists")
    assert _run(clip, out, "--overwrite").returncode == 0


def test_make_bw_bad_arguments_are_one_line_errors(tmp_path):
    usage = _run("--help")
    assert usage.returncode == 1 and usage.stderr.startswith("usage:")
    missing = _run(tmp_path / "nope.mp4", tmp_path / "bw.mp4")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("error: no such file")
