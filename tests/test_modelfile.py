"""The .fcm model file: round trip, header, and every way a file can be wrong."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct

import jax
import numpy as np
import pytest

from framecolor import modelfile
from framecolor.errors import ModelFileError, OutputError
from framecolor.models.colorizer import TINY_MODEL, ModelConfig, build_colorizer, count_params, init_variables
from framecolor.sizes import readable_size

SUMMARY = {"epochs": 3, "best_val_loss": np.float32(0.1), "inputs": ["a.mp4"]}



@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    variables = init_variables(TINY_MODEL, jax.random.PRNGKey(3))
    path = tmp_path_factory.mktemp("models") / "tiny.fcm"
    assert modelfile.save_model(path, TINY_MODEL, variables, summary=SUMMARY) == path
    return path, variables


def _pieces(path):
    """(header dict, payload bytes) of a file, to build damaged variants."""
    data = path.read_bytes()
    version, header_len = struct.unpack_from("<IQ", data, 8)
    header = json.loads(data[20:20 + header_len])
    return header, data[20 + header_len + (32 if version >= 2 else 0) + 8:]


def _pack(header, payload, version=modelfile.FORMAT_VERSION, magic=modelfile.MAGIC):
    return _pack_bytes(json.dumps(header).encode(), payload, version, magic)


def _pack_bytes(head, payload, version=modelfile.FORMAT_VERSION, magic=modelfile.MAGIC):
    """A model file around `head`; from format 2 on with its header's checksum
    made anew, as whoever edits a header can: the checks behind it still apply."""
    head = struct.pack("<8sIQ", magic, version, len(head)) + head
    checksum = hashlib.sha256(head).digest() if version >= 2 else b""
    return head + checksum + struct.pack("<Q", len(payload)) + payload


def test_round_trip_is_bit_exact(saved):
    path, variables = saved
    loaded = modelfile.load_model(path)
    assert loaded.config == TINY_MODEL
    assert jax.tree.structure(loaded.variables) == jax.tree.structure(variables)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded.variables), jax.tree.leaves(variables)))
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 80, 80, 1), minval=-1, maxval=1)
    apply = jax.jit(build_colorizer(TINY_MODEL).apply)
    assert np.array_equal(np.asarray(apply(loaded.variables, x)), np.asarray(apply(variables, x)))


def test_header_describes_the_model(saved):
    path, _ = saved
    header = modelfile.read_header(path)
    assert header["config"] == TINY_MODEL.to_dict()
    assert header["normalization"] == {"l_offset": 50.0, "l_scale": 50.0, "ab_scale": 110.0}
    assert header["summary"] == {"epochs": 3, "best_val_loss": float(np.float32(0.1)), "inputs": ["a.mp4"]}
    assert header["param_count"] == count_params(TINY_MODEL)
    rows = dict(modelfile.describe_model(path))
    assert rows["parameters"] == f"{count_params(TINY_MODEL):,}" and rows["decoder"] == "unet"
    assert rows["training epochs"] == "3" and rows["training best_val_loss"] == "0.1"  # not 0.10000000149011612
    assert rows["file size"] == readable_size(path.stat().st_size)  # in the units apply says its outputs' sizes
    # For scripts (info --json), the same facts as values: numbers, lists and objects, not the table's words.
    facts = json.loads(json.dumps(modelfile.model_facts(path)))
    assert facts["config"] == TINY_MODEL.to_dict() and facts["parameters"] == count_params(TINY_MODEL)
    assert facts["training"] == {"epochs": 3, "best_val_loss": float(np.float32(0.1)), "inputs": ["a.mp4"]}
    assert facts["file_bytes"] == path.stat().st_size and facts["format_version"] == header["format_version"]


def test_describe_config_counts_the_seed_model():
    assert dict(modelfile.describe_config(ModelConfig(decoder="seed", mode="rgb"), 224))["parameters"] == "24,441,313"



def test_a_run_folder_or_default_names_a_model_file(saved, tmp_path):
    # train tells the user its run folder; --model and --init take it, and
    # "default", which train --init took and apply --model called missing.
    path, variables = saved
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.fcm").write_bytes(path.read_bytes())
    assert modelfile.model_path_for(run) == run / "model.fcm"
    assert modelfile.read_header(run) == modelfile.read_header(path)
    assert modelfile.model_path_for("default") == modelfile.default_model_path()
    assert modelfile.read_header("default")["config"]["mode"] == "lab"
    assert dict(modelfile.describe_model(run))["file"] == str(run / "model.fcm")  # framecolor info RUN
    with pytest.raises(ModelFileError, match="is a folder without a model.fcm: give a model file or a training run's"):
        modelfile.load_model(tmp_path)
    # A run stopped before its end has run.json but no model yet: say so, and how to finish it.
    (run / "model.fcm").unlink()
    (run / "run.json").write_text("{}")
    with pytest.raises(ModelFileError, match=r"training run in .*run has no model.fcm yet: .* --resume\)"):
        modelfile.load_model(run)

def test_damaged_files_are_refused(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    header, payload = _pieces(path)
    cases = {
        "not a framecolor model": b"PK\x03\x04" + data[4:],
        "made by a newer framecolor": _pack(header, payload, version=modelfile.FORMAT_VERSION + 1),
        "truncated model file: expected": data[:-100],
        "truncated model file \\(ends inside its header\\)": data[:40],
        "trailing bytes": data + b"\0",
        "do not match their checksum": data[:-50] + bytes([data[-50] ^ 1]) + data[-49:],
        "corrupt model file header": data[:20] + b"\xff" + data[21:],
        "unknown fields": _pack({**header, "config": {**header["config"], "depth": 2}}, payload),
        "normalization": _pack({**header, "normalization": {**header["normalization"], "ab_scale": 128.0}}, payload),
        # Hand-edited headers (not under the checksum): what info and apply read must make sense.
        "summary is not a JSON object": _pack({**header, "summary": [1, 2]}, payload),
        "readout is not a JSON object": _pack({**header, "readout": "1.5"}, payload),
        "param_count 'many' is not a count": _pack({**header, "param_count": "many"}, payload),
        r"readout saturation 'abc' is not a number in \[0, 4\]": _pack({**header, "readout": {"saturation": "abc"}}, payload),
        "readout saturation nan": _pack({**header, "readout": {"saturation": float("nan")}}, payload),
        "readout saturation 100": _pack({**header, "readout": {"saturation": 100}}, payload),
    }
    for message, content in cases.items():
        bad = tmp_path / "bad.fcm"
        bad.write_bytes(content)
        with pytest.raises(ModelFileError, match=message):
            modelfile.load_model(bad)
        if "readout" in message or "summary" in message or "param_count" in message:
            with pytest.raises(ModelFileError, match=message):  # info reads the header alone
                modelfile.describe_model(bad)
    with pytest.raises(ModelFileError, match="no such model file"):
        modelfile.load_model(tmp_path / "missing.fcm")


def test_variables_must_fit_the_config(saved, tmp_path):
    path, variables = saved
    header, payload = _pieces(path)
    wider = dataclasses.replace(TINY_MODEL, width=0.25).to_dict()
    bad = tmp_path / "wider.fcm"
    bad.write_bytes(_pack({**header, "config": wider}, payload))
    with pytest.raises(ModelFileError, match=r"wider.fcm: variable params/backbone/\w+/\w+ is \(8,\) float32, the model config needs \(16,\)"):
        modelfile.load_model(bad)
    rgb = dataclasses.replace(TINY_MODEL, mode="rgb")
    with pytest.raises(ModelFileError, match=r"rgb.fcm: variable params/decoder/head/\w+ is \(2,\) float32, the model config needs \(3,\)"):
        modelfile.save_model(tmp_path / "rgb.fcm", rgb, variables)


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    path, variables = saved
    target = tmp_path / "model.fcm"
    target.write_bytes(b"previous")

    def crash(*args):
        raise KeyboardInterrupt  # e.g. Ctrl-C after the data is written, before the rename

    with monkeypatch.context() as m:
        m.setattr(modelfile.os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            modelfile.save_model(target, TINY_MODEL, variables)
    assert target.read_bytes() == b"previous"  # the old file is intact and no temp file is left
    assert [p.name for p in tmp_path.iterdir()] == ["model.fcm"]
    modelfile.save_model(target, TINY_MODEL, variables)
    assert [p.name for p in tmp_path.iterdir()] == ["model.fcm"]
    assert modelfile.load_model(target).config == TINY_MODEL
    with pytest.raises(OutputError, match="does not exist"):
        modelfile.save_model(tmp_path / "no" / "such" / "dir.fcm", TINY_MODEL, variables)


def test_default_model_path_is_a_model_or_none():
    path = modelfile.default_model_path()
    assert path is None or modelfile.read_header(path)["format_version"] <= modelfile.FORMAT_VERSION


def test_headers_json_cannot_parse_is_said_in_a_line(saved, tmp_path):
    # Nested past Python's depth, or a number past its 4300 digits: a traceback, not ModelFileError.
    _, payload = _pieces(saved[0])
    for head in (b"[" * 100_000 + b"]" * 100_000, b'{"config": ' + b"1" * 5000 + b"}"):
        for version in (1, modelfile.FORMAT_VERSION):  # without a header checksum, and under a good one
            bad = tmp_path / "bad.fcm"
            bad.write_bytes(_pack_bytes(head, payload, version))
            for read in (modelfile.load_model, modelfile.read_header):
                with pytest.raises(ModelFileError, match=r"bad.fcm: corrupt model file header \((?!it does not)"):
                    read(bad)


def test_a_model_of_nan_weights_is_refused(saved, tmp_path, monkeypatch):
    # Its checksum is its own: it loaded, and apply colored every frame one green.
    _, variables = saved
    broken = jax.tree.map(lambda x: np.asarray(x).copy(), variables)
    leaf = jax.tree.leaves(broken)[0]
    leaf.flat[0] = np.nan
    with pytest.raises(ModelFileError, match="holds NaN or infinite values"):
        modelfile.save_model(tmp_path / "nan.fcm", TINY_MODEL, broken)
    with monkeypatch.context() as m:
        m.setattr(modelfile, "_check_variables", lambda *a: None)  # as a file damaged elsewhere
        modelfile.save_model(tmp_path / "nan.fcm", TINY_MODEL, broken)
    with pytest.raises(ModelFileError, match=r"nan.fcm: variable \S+ holds NaN or infinite values"):
        modelfile.load_model(tmp_path / "nan.fcm")


def test_an_unreadable_model_file_is_said_in_a_line(saved, monkeypatch):
    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(modelfile, "open", denied, raising=False)  # root reads any file: the error is made here
    for read in (modelfile.load_model, modelfile.read_header):
        with pytest.raises(ModelFileError, match=r"tiny.fcm: cannot read the model file \(Permission denied\)"):
            read(saved[0])


def test_every_flipped_bit_of_the_header_is_refused(saved, tmp_path):
    # Format 1 had no checksum over its header: 567 of its 3,512 single-bit
    # flips still loaded, some with another saturation or summary.
    path = tmp_path / "flipped.fcm"
    path.write_bytes(saved[0].read_bytes())
    data = path.read_bytes()
    (header_len,) = struct.unpack_from("<Q", data, 12)
    before_payload = 20 + header_len + 32 + 8  # magic, version, lengths, the header and its checksum
    with open(path, "r+b") as f:
        for bit in range(before_payload * 8):
            at, original = bit // 8, data[bit // 8]
            f.seek(at)
            f.write(bytes([original ^ (1 << bit % 8)]))
            f.flush()
            with pytest.raises(ModelFileError, match=r"flipped.fcm: (corrupt|truncated|not a framecolor|made by a newer"
                                                     r"|model file has trailing)"):
                modelfile.read_header(path)  # what info and apply read first; load_model reads it so too
            if bit % 61 == 0:
                with pytest.raises(ModelFileError):
                    modelfile.load_model(path)
            f.seek(at)
            f.write(bytes([original]))
    assert modelfile.load_model(path).header == modelfile.read_header(saved[0])
    flipped = bytearray(data)
    flipped[30] ^= 4  # one bit inside the JSON text
    path.write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError, match=r"flipped.fcm: corrupt model file header \(it does not match its "
                                             r"checksum\)"):
        modelfile.load_model(path)


def test_files_of_format_1_load_as_before(saved, tmp_path):
    # Written before headers carried a checksum (the shipped default.fcm is one): read as they were.
    path, variables = saved
    header, payload = _pieces(path)
    old = tmp_path / "old.fcm"
    old.write_bytes(_pack({**header, "format_version": 1}, payload, version=1))
    loaded = modelfile.load_model(old)
    assert loaded.header == {**header, "format_version": 1} and loaded.config == TINY_MODEL
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded.variables), jax.tree.leaves(variables)))
    assert dict(modelfile.describe_model(old))["format version"] == "1"
    default = modelfile.default_model_path()
    if default is not None:
        assert modelfile.read_header(default)["format_version"] == 1
        assert modelfile.load_model(default).readout["saturation"] > 0
    old.write_bytes(_pack(header, payload, version=0))  # format 1's version with its one bit flipped
    with pytest.raises(ModelFileError, match=r"old.fcm: corrupt model file header \(model format 0\)"):
        modelfile.read_header(old)


def _killed_mid_write(path):
    """The temp file that an atomic write of `path` leaves when SIGKILL ends its process mid-write."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", f"""
import time
from framecolor.atomic import atomic_file
with atomic_file({str(path)!r}) as f:
    f.write(b"half a model")
    f.flush()
    print("writing", flush=True)
    time.sleep(3600)
"""], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    (left,) = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.{child.pid}-")]
    return left


def test_a_save_removes_what_a_killed_save_of_that_model_left(saved, tmp_path):
    # Each killed save left a whole model's size beside it, under a new name, for good.
    import os
    import time

    _, variables = saved
    target = modelfile.save_model(tmp_path / "model.fcm", TINY_MODEL, variables)
    stale = _killed_mid_write(target)
    theirs = _killed_mid_write(tmp_path / "other.fcm")  # another model's: its own save removes it
    old = tmp_path / f".model.fcm.{os.getpid()}-0badf00d.partial"  # a live process's, untouched for hours
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    writing = tmp_path / f".model.fcm.{os.getpid()}-5ca1ab1e.partial"  # a live process's, being written
    writing.write_bytes(b"x")
    dead = stale.name.split(".")[3].split("-")[0]  # the killed process's number
    lookalikes = [tmp_path / name for name in ("notes.partial", ".model.fcm.backup", f".model.fcm.{dead}-xyz.partial",
                                               f".model.{dead}-deadbeef.partial.fcm")]  # temp_path(keep_suffix)'s
    for path in lookalikes:
        path.write_bytes(b"mine")
    # Meanwhile nothing reads the leftovers for the model: not load, not info.
    assert modelfile.load_model(tmp_path).config == TINY_MODEL
    assert dict(modelfile.describe_model(tmp_path))["file"] == str(target)
    modelfile.save_model(target, TINY_MODEL, variables)
    assert not stale.exists() and not old.exists()
    assert theirs.exists() and writing.exists() and all(path.read_bytes() == b"mine" for path in lookalikes)
    assert modelfile.load_model(target).config == TINY_MODEL


def test_a_model_the_disk_has_no_room_for_is_said_in_a_line(saved, tmp_path, monkeypatch):
    # OSError's words named the temp file, or nothing; train says it after a checkpoint did not fit.
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "model.fcm"
    with pytest.raises(OutputError, match=rf"^cannot write {target}: no space left on the disk$"):
        modelfile.save_model(target, TINY_MODEL, saved[1])
    assert list(tmp_path.iterdir()) == []
