"""The command line: readable output, one-line errors with exit code 1, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from framecolor.cli import make_app


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


def test_info_counts_the_seed_models_parameters():
    assert "24,441,256" in run("info", "--decoder", "seed", "--mode", "lab", "--size", 224).output
    assert "24,441,313" in run("info", "--decoder", "seed", "--mode", "rgb", "--size", 224).output


@pytest.mark.parametrize("fixture", ["text_mp4", "truncated_mp4", "audio_only", "media_dir"])
def test_bad_inputs_give_one_error_line(fixture, request):
    assert_one_line_error(run("info", request.getfixturevalue(fixture)))


def test_missing_file(tmp_path):
    assert_one_line_error(run("info", tmp_path / "nope.mp4"), "nope.mp4")


def test_debug_shows_the_traceback(text_mp4):
    result = run("--debug", "info", text_mp4)
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "InputError"


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "framecolor", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("info", "train", "apply", "eval"):
        assert command in done.stdout


def test_debug_does_not_leak_into_the_next_run(text_mp4):
    run("--debug", "info", text_mp4)
    assert_one_line_error(run("info", text_mp4))
