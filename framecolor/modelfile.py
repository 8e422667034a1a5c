"""The model file (.fcm): one self-describing file with a model's config and variables.

Layout (integers little-endian)::

    MAGIC (8 bytes) | format version (uint32) | header length (uint64) | header (UTF-8 JSON)
    | header SHA-256 (32 bytes; format 2 on) | payload length (uint64)
    | payload (flax.serialization msgpack of {"params", "batch_stats"})

The header holds the model config, the normalization the model was trained
with, the framecolor version, the parameter count, a SHA-256 of the payload
and the training summary, so `framecolor info` reads it without the payload.
Format 2 adds a SHA-256 of everything before it (magic to header): in format
1 a flipped bit in the header could change a stored setting (the saturation,
a summary figure) and still load. Format 1 files (the shipped default.fcm
among them) load as before, without that check.
msgpack holds only plain data: loading never unpickles or executes anything.
Every length is checked against the file, so a truncated file is named as
such, and the variables are checked against the shapes the config implies.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import importlib.resources
import json
import os
import struct
from pathlib import Path

import jax
import numpy as np
from flax import serialization

import framecolor
from framecolor import color
from framecolor.atomic import atomic_file, remove_stale_temps
from framecolor.errors import ModelFileError, OutputError
from framecolor.models.colorizer import ModelConfig, count_params, variable_shapes
from framecolor.sizes import readable_size

SUFFIX = ".fcm"
MAGIC = b"\x89FCM\r\n\x1a\n"  # PNG-style: a non-ASCII byte and line endings show text-mode damage
FORMAT_VERSION = 2
_HEADER_CHECKSUM_SINCE = 2  # the first format whose header carries its own SHA-256
_PREFIX = struct.Struct("<8sIQ")  # magic, format version, header length
_LENGTH = struct.Struct("<Q")
_CHECKSUM_SIZE = hashlib.sha256().digest_size
_COLLECTIONS = ("params", "batch_stats")


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    config: ModelConfig
    variables: dict  # {"params": ..., "batch_stats": ...} of float32 NumPy arrays
    header: dict

    @property
    def readout(self) -> dict:
        """Apply's defaults for this model ({} for files written before readouts existed)."""
        readout = self.header.get("readout")
        return readout if isinstance(readout, dict) else {}


def normalization() -> dict:
    """The constants that map Lab to the model's inputs and outputs (framecolor.color)."""
    return {"l_offset": color.L_OFFSET, "l_scale": color.L_SCALE, "ab_scale": color.AB_SCALE}


def default_model_path() -> Path | None:
    """The model shipped with framecolor (framecolor/assets/default.fcm), if there is one."""
    path = importlib.resources.files(framecolor) / "assets" / "default.fcm"
    return Path(str(path)) if path.is_file() else None


def save_model(path, config: ModelConfig, variables, summary: dict | None = None,
               readout: dict | None = None) -> Path:
    """Write `variables` of a `config` model to `path` atomically (temp file + rename).

    `readout` holds apply's defaults that belong to this model (e.g. its
    calibrated "saturation"); options given to apply override them.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise OutputError(f"{path} is a directory; expected a model file name ending in {SUFFIX}")
    state = {c: _to_numpy(variables[c]) for c in _COLLECTIONS if c in variables}
    _check_variables(state, config, f"variables to save as {path}")
    payload = serialization.msgpack_serialize(state)
    header = {
        "format_version": FORMAT_VERSION,
        "framecolor_version": framecolor.__version__,
        "config": config.to_dict(),
        "normalization": normalization(),
        "param_count": sum(x.size for x in jax.tree.leaves(state)),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "summary": summary or {},
        "readout": readout or {},
    }
    body = json.dumps(header, default=_json_value, sort_keys=True).encode("utf8")
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)) + body
    try:
        with atomic_file(path, sync=True) as f:
            f.write(head)
            f.write(_header_checksum(head))
            f.write(_LENGTH.pack(len(payload)))
            f.write(payload)
    except OSError as exc:  # the temp file is gone (atomic_file); its name, in exc, means nothing to the user
        why = "no space left on the disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or exc
        raise OutputError(f"cannot write {path}: {why}") from None
    # What a save killed outright left (a whole model's size, beside it for good).
    remove_stale_temps(path)
    return path


def _open(path: Path):
    """The model file opened for reading; one that cannot be (no permission) is a ModelFileError, said in a line."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror})") from None


def read_header(path) -> dict:
    """The header of a model file, without reading the variables."""
    path = _existing(path)
    with _open(path) as f:
        header, _ = _read_layout(f, path)
    return header


def load_model(path) -> LoadedModel:
    """Read and check a model file; ModelFileError on any problem."""
    path = _existing(path)
    with _open(path) as f:
        header, length = _read_layout(f, path)
        payload = f.read(length)
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelFileError(f"{path}: corrupt model file: its variables do not match their checksum")
    config = ModelConfig.from_dict(header.get("config"))
    if header.get("normalization") != normalization():
        raise ModelFileError(
            f"{path}: the model was trained with normalization {header.get('normalization')}, "
            f"this framecolor uses {normalization()}"
        )
    try:
        state = serialization.msgpack_restore(payload)
    except Exception as exc:  # msgpack raises many kinds; all mean the same thing here
        raise ModelFileError(f"{path}: corrupt model file: cannot decode its variables ({exc})") from None
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: corrupt model file: its variables are not a dictionary")
    _check_variables(state, config, str(path))
    return LoadedModel(config=config, variables=state, header=header)


def describe_model(path) -> list[tuple[str, str]]:
    """(label, value) rows for `framecolor info MODEL.fcm` (or a run folder's), from the header alone."""
    facts = model_facts(path)
    config = ModelConfig.from_dict(facts["config"])
    rows = [("file", facts["file"]), ("file size", readable_size(facts["file_bytes"]))]
    rows += _config_rows(config, config.size)
    rows += [
        ("parameters", f"{facts['parameters']:,}"),
        ("framecolor version", str(facts["framecolor_version"])),
        ("format version", str(facts["format_version"])),
    ]
    for key, value in facts["readout"].items():
        rows.append((f"apply default {key}", _summary_value(value)))  # a gain to a few digits, as the figures
    for key, value in facts["training"].items():
        rows.append((f"training {key}", _summary_value(value)))
    return rows


def model_facts(path) -> dict:
    """`framecolor info MODEL.fcm --json`: the header's facts as values
    (numbers as numbers, the training options as an object), for scripts;
    describe_model's rows are its words for people."""
    path = _existing(path)
    header = read_header(path)
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "config": ModelConfig.from_dict(header.get("config")).to_dict(),
        "parameters": header.get("param_count", 0),
        "framecolor_version": header.get("framecolor_version"),
        "format_version": header.get("format_version"),
        "readout": header.get("readout") or {},
        "training": header.get("summary") or {},
    }


def _summary_value(value) -> str:
    # A loss or a duration to six figures (0.00994777, 47.0076), not the
    # seventeen that JSON keeps.
    if isinstance(value, str):
        return value
    return f"{value:.6g}" if isinstance(value, float) else json.dumps(value)


def config_facts(config: ModelConfig) -> dict:
    """`framecolor info --json` without a file: the config and its parameter count, as values."""
    return {"config": dataclasses.asdict(config), "parameters": count_params(config, config.size)}


def describe_config(config: ModelConfig, size: int | None = None) -> list[tuple[str, str]]:
    """(label, value) rows for `framecolor info` without a file: the config and its parameter count."""
    size = size or config.size
    return _config_rows(config, size) + [("parameters", f"{count_params(config, size):,}")]


def _config_rows(config: ModelConfig, size: int) -> list[tuple[str, str]]:
    predicts = {"lab": "ab (Lab chroma), tanh", "rgb": "RGB, sigmoid"}[config.mode]
    if config.head == "bins":
        predicts = "ab (Lab chroma) as classes over ab bins, annealed-mean readout"
    return [
        ("backbone", f"{config.backbone} (width {config.width})"),
        ("decoder", config.decoder),
        ("mode", f"{config.mode}: predicts {predicts}"),
        ("input size", f"{size}x{size}"),
        ("compute dtype", config.compute_dtype),
    ]


def _existing(path) -> Path:
    path = model_path_for(path)
    if path.is_dir() and (path / "run.json").is_file():
        raise ModelFileError(f"the training run in {path} has no {RUN_MODEL_NAME} yet: it was interrupted or is "
                             f"still training (finish it with framecolor train ... --out {path} --resume)")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder without a {RUN_MODEL_NAME}: give a model file or a training run's folder")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return path


# The model file a training run leaves in its folder (the best epoch's).
RUN_MODEL_NAME = "model.fcm"


def model_path_for(given) -> Path:
    """The model file `given` names: a model file, "default" for the shipped
    model (as train --init takes it), or a training run's folder, whose
    model.fcm it means: a user given a run folder by train passes that."""
    path = Path(given)
    if str(given) == "default" and not path.exists():
        shipped = default_model_path()
        if shipped is None:
            raise ModelFileError("default: no model is shipped with this installation")
        return shipped
    if path.is_dir() and (path / RUN_MODEL_NAME).is_file():
        return path / RUN_MODEL_NAME
    return path


def _read_layout(f, path: Path) -> tuple[dict, int]:
    """(header, payload length) with `f` at the payload; checks magic, version and every length."""
    size = os.fstat(f.fileno()).st_size
    raw = f.read(_PREFIX.size)
    if len(raw) < _PREFIX.size or raw[: len(MAGIC)] != MAGIC:
        raise ModelFileError(f"{path}: not a framecolor model file ({SUFFIX})")
    _, version, header_length = _PREFIX.unpack(raw)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: made by a newer framecolor (model format {version}; this framecolor "
            f"{framecolor.__version__} reads up to {FORMAT_VERSION}); upgrade framecolor"
        )
    if version < 1:  # no framecolor wrote it: format 1's version with a bit flipped
        raise ModelFileError(f"{path}: corrupt model file header (model format {version})")
    checksum_size = _CHECKSUM_SIZE if version >= _HEADER_CHECKSUM_SINCE else 0
    if _PREFIX.size + header_length + checksum_size + _LENGTH.size > size:
        raise ModelFileError(f"{path}: truncated model file (ends inside its header)")
    body = f.read(header_length)
    # Before the JSON is read: a bit flipped in it can still parse, as another setting.
    if checksum_size and f.read(checksum_size) != _header_checksum(raw + body):
        raise ModelFileError(f"{path}: corrupt model file header (it does not match its checksum)")
    try:
        header = json.loads(body.decode("utf8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON; nested past Python's depth; a 5000-digit number
        raise ModelFileError(f"{path}: corrupt model file header ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupt model file header (not a JSON object)")
    _check_header_fields(header, path)
    (length,) = _LENGTH.unpack(f.read(_LENGTH.size))
    expected = _PREFIX.size + header_length + checksum_size + _LENGTH.size + length
    if size != expected:
        what = "truncated model file" if size < expected else "model file has trailing bytes"
        raise ModelFileError(f"{path}: {what}: expected {expected} bytes, found {size}")
    return header, length


def _header_checksum(head: bytes) -> bytes:
    """The SHA-256 that follows the header in format 2 on, of the file's bytes up to it."""
    return hashlib.sha256(head).digest()


# The readout apply takes as its defaults, and the range each must be in,
# which ApplyConfig holds its own settings to: a format 1 header is under no
# checksum, and any header can be edited and its checksum made anew; an
# edited NaN saturation would write colorless video without a word.
READOUT_RANGES = {"saturation": (0.0, 4.0)}


def _check_header_fields(header: dict, path: Path) -> None:
    """The header's parts that info and apply read: of the right kinds and ranges."""
    for name in ("summary", "readout"):
        if not isinstance(header.get(name, {}), dict):
            raise ModelFileError(f"{path}: corrupt model file header ({name} is not a JSON object)")
    count = header.get("param_count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ModelFileError(f"{path}: corrupt model file header (param_count {count!r} is not a count)")
    for name, (low, high) in READOUT_RANGES.items():
        value = (header.get("readout") or {}).get(name)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and low <= value <= high):
            raise ModelFileError(f"{path}: corrupt model file header (readout {name} {value!r} is not a number "
                                 f"in [{low:g}, {high:g}])")


def _to_numpy(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float32), jax.device_get(_plain(tree)))


def _plain(tree):
    """Nested mappings (FrozenDict included) as plain dicts, which msgpack writes as maps."""
    if hasattr(tree, "items"):
        return {str(k): _plain(v) for k, v in tree.items()}
    return tree


def _check_variables(state: dict, config: ModelConfig, what: str) -> None:
    expected = variable_shapes(config, config.size)
    got = _flat(state)
    want = _flat(expected)
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    if missing or extra:
        detail = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ModelFileError(
            f"{what}: variables do not match the model config ({len(missing)} missing, "
            f"{len(extra)} unexpected, e.g. {detail})"
        )
    for key, spec in want.items():
        value = got[key]
        shape = tuple(getattr(value, "shape", ()))
        if shape != tuple(spec.shape) or np.dtype(getattr(value, "dtype", None)) != np.float32:
            raise ModelFileError(
                f"{what}: variable {key} is {shape} {getattr(value, 'dtype', type(value).__name__)}, "
                f"the model config needs {tuple(spec.shape)} float32"
            )
        # A NaN weight passed the checksum (it is the file's own) and colored every frame one green.
        if not np.isfinite(value).all():
            raise ModelFileError(f"{what}: variable {key} holds NaN or infinite values: the model is broken")


def _flat(tree, prefix="") -> dict:
    out = {}
    if hasattr(tree, "items"):
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}/{k}" if prefix else str(k)))
    else:
        out[prefix] = tree
    return out


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size < 64:
        return value.tolist()
    return str(value)

