"""The files video I/O reads and writes: checking an input before FFmpeg opens
it, refusing to overwrite, writing to a temporary name that is renamed at the
end, and a full disk as one clear error."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import itertools
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from stat import S_ISREG
from typing import NamedTuple

import av

from framecolor.atomic import NAME_MAX, move_into_place, temp_path
from framecolor.errors import InputError, OutputError


# What a folder is searched for as videos: the containers people keep films
# in, camcorder and DVD files (.mod, .tod, .vob), broadcast MXF, and the raw
# streams and Y4M of research clips.
VIDEO_SUFFIXES = frozenset(
    """.mp4 .m4v .mkv .mov .qt .avi .divx .webm .mpg .mpeg .m2p .vob .mod .tod .ts .m2ts .mts .mxf .dv
    .wmv .asf .flv .f4v .ogv .3gp .3g2 .gif .y4m .h264 .264 .hevc .265 .m2v .m1v .ivf .mjpeg .rm""".split()
)


def is_video_path(path) -> bool:
    """Whether `path` names a video: by its type, but for a GIF of one
    picture (a photo saved as GIF), which is a photo; and a PNG of several
    frames (is_animated_png), which is an animation as a GIF's are."""
    return (Path(path).suffix.lower() in VIDEO_SUFFIXES and not is_still_gif(path)) or is_animated_png(path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_animated_png(path) -> bool:
    """Whether `path` is a PNG of several frames (an APNG): a video, as an
    animated GIF is, where one of a single frame is a photo. By its name
    (.png) and its content (png_holds_frames), for a folder's listing: a few
    bytes of each PNG of a folder of scans. False where the file is missing
    or cannot be read, for the reader to say why."""
    return Path(path).suffix.lower() == ".png" and png_holds_frames(path)


def png_holds_frames(path) -> bool:
    """Whether the file at `path` is a PNG of several frames, whatever its
    name (an APNG saved as .jpg is a video all the same). Read from its acTL
    chunk, which comes before the picture, once while the file stays as it is
    (a job asks it of its source several times)."""
    state = _file_state(path)
    return state is not None and _png_is_animated(*state)


def _file_state(path) -> tuple[str, int, int] | None:
    """(path, modification time, size) of the regular file at `path`: the key
    its facts are cached under while it stays as it is. None where there is
    none, or it is no regular file (opening a pipe would wait for a writer)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size) if S_ISREG(stat.st_mode) else None


@functools.lru_cache(maxsize=1 << 17)  # as _file_header_facts: a film's frames
def _png_is_animated(path: str, mtime_ns: int, size: int) -> bool:
    control = png_chunk(path, b"acTL", before=b"IDAT")  # an APNG says so before its first picture
    return control is not None and len(control) >= 4 and struct.unpack(">I", control[:4])[0] > 1


def png_chunk(path, kind: bytes, *, before: bytes = b"IEND") -> bytes | None:
    """The body of the first chunk `kind` of the PNG file at `path` that comes
    before the chunk `before`, found from the chunks' headers alone (the
    picture's data skipped, not read); None where there is none, or the file
    is no PNG or cannot be read."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return None
            while len(head := f.read(8)) == 8:
                length, found = struct.unpack(">I4s", head)
                if found == kind:
                    body = f.read(length)
                    return body if len(body) == length else None
                if found == before:
                    return None
                f.seek(length + 4, os.SEEK_CUR)  # the chunk and its CRC
    except OSError:
        pass
    return None


def is_still_gif(path) -> bool:
    """Whether `path` is a GIF file of one picture. A GIF is a photo or an
    animation by what it holds, not by its name; False where the file is
    missing or cannot be read, for the reader to say why."""
    path = Path(path)
    return path.suffix.lower() == ".gif" and holds_one_picture(path)


def holds_one_picture(path) -> bool:
    """Whether the file at `path` holds a single picture, counted by FFmpeg's
    packets (one a picture in a GIF), none of them decoded. Asked of a GIF's
    name several times a job (its kind, its output's name): opened once while
    the file stays as it is."""
    state = _file_state(path)
    return state is not None and _holds_one_picture(*state)


@functools.lru_cache(maxsize=1024)
def _holds_one_picture(path: str, mtime_ns: int, size: int) -> bool:
    try:
        with av.open(path) as container:
            pictures = (packet for packet in container.demux(video=0) if packet.size)
            return sum(1 for _ in itertools.islice(pictures, 2)) == 1
    except (av.error.FFmpegError, IndexError):  # IndexError: no picture in it at all
        return False


def list_videos(folder) -> list[Path]:
    """Video files in `folder` (not its subfolders; hidden files skipped), in name order."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and not p.name.startswith(".") and is_video_path(p)), key=lambda p: p.name)


class VideoWarning(UserWarning):
    """Something was read or written, but not all of it (truncated input, skipped stream)."""


def check_exists(path, hint: str = "") -> None:
    """InputError where nothing is at `path` (a link to nothing said as such); `hint` ends the message."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise InputError(f"{path} is a symbolic link to nothing (its target is missing, or it loops)")
        raise InputError(f"no such file: {path}{hint}")


def _check_input_file(path, expected: str = "a video file") -> Path:
    path = Path(path)
    check_exists(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder, expected {expected}")
    if not path.is_file():
        # Opening a pipe with nothing writing to it waits forever, and one being
        # written to can be read once: framecolor reads its input several times
        # (probing, a look at its colors, decoding, copying its sound).
        raise InputError(f"{path} is a pipe or a device, not {expected}: framecolor reads its input more than "
                         "once, so save it to a file first")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    return path


def _open_input(path: Path, expected: str = "a video file"):
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise InputError(f"not {expected} (or damaged): {path} ({reason})") from None


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symbolic link that loops names no file at all
        return False


def check_output_path(output, inputs: Iterable = (), overwrite: bool = False) -> None:
    """Raise OutputError if `output` cannot or must not be written."""
    output = Path(output)
    length = len(os.fsencode(output.name))
    if length > NAME_MAX:  # first: any look at such a path is an OSError
        raise OutputError(f"output name too long: {output.name[:40]}... is {length} bytes; "
                          f"file systems take {NAME_MAX}")
    for source in inputs:
        if source is not None and _same_file(output, Path(source)):
            raise OutputError(f"output {output} is the same file as input {source}")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder, expected a file name")
    if output.exists() and not output.is_file():
        # A device or a pipe (/dev/null): the rename at the end would put a file in its place.
        raise OutputError(f"output {output} is not a regular file (a device or a pipe); give a file name")
    if os.path.lexists(output) and not overwrite:
        # A link to nothing too: the name is taken all the same, and the
        # move into place at the end refused it after all the work.
        # --overwrite replaces the link itself, not its target, as a rename does.
        dangling = " (a symbolic link to nothing)" if not output.exists() else ""
        raise OutputError(f"output already exists: {output}{dangling} (use --overwrite to replace it)")
    check_writable_folder(parent, output)


def check_writable_folder(folder, output=None) -> None:
    """OutputError unless `folder` takes new entries (`output`: what is to be
    written there, named in the error). Tried with a folder made and removed,
    not read from permission bits: a folder of another user's, a read-only
    mount and a pseudo-file system (/proc) each refuse in their own way, and
    root passes every permission test. A muxer would only find out at its
    first packet, after the decoding and the network began."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".framecolor-", dir=folder))
    except OSError as e:
        raise OutputError(f"cannot write {output or folder}: {e.strerror or e}") from None


def folders_to_make(folder) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first:
    what making it makes, for a caller that removes them again where its work failed."""
    folder = Path(os.path.abspath(folder))
    return list(itertools.takewhile(lambda f: not f.exists(), (folder, *folder.parents)))


# FFmpeg's muxers whose output is not one video file: streaming manifests and
# their segments (DASH's .mpd, HLS's .m3u8), a file split in parts, network
# protocols. Opened on a file in memory to try them, DASH's killed the process
# (a floating-point exception), before any word was said.
NOT_ONE_FILE = frozenset({"dash", "hls", "smoothstreaming", "segment", "stream_segment", "ssegment", "tee", "fifo",
                          "rtp", "rtp_mpegts", "rtsp", "sap", "whip", "webm_chunk", "webm_dash_manifest"})


class OutputFormat(NamedTuple):
    """The container type FFmpeg picks for an output's name (output_format)."""

    name: str  # FFmpeg's short name: "mp4", "matroska", "dash"
    long_name: str  # as said to people: "MP4 (MPEG-4 Part 14)"
    video_codec: str  # the codec FFmpeg writes its video with where none is named ("h264"; "none": no video)


def output_format(path) -> OutputFormat | None:
    """The container type a writer opening `path` gets, picked by its name
    as FFmpeg picks it: tried on a file in memory, nothing written. None
    where FFmpeg knows no type by that name."""
    named = io.BytesIO()
    named.name = Path(path).name
    try:
        with av.open(named, "w") as trial:
            return OutputFormat(trial.format.name, trial.format.long_name, trial.default_video_codec)
    except ValueError:  # "Could not determine output format"
        return None


def check_container_name(path) -> None:
    """OutputError where FFmpeg picks no container type by `path`'s name
    (output_format), so a bad name is said before any work; or one that
    writes no single file (NOT_ONE_FILE)."""
    found = output_format(path)
    if found is None:
        raise unknown_container(path)
    if found.name in NOT_ONE_FILE:
        raise OutputError(f"cannot write {path}: a {Path(path).suffix} is not a video file but a stream's "
                          f"({found.long_name}); name the video .mp4 or .mkv")


def unknown_container(path) -> OutputError:
    path = Path(path)
    kind = f"unknown container type {path.suffix!r}" if path.suffix else "no suffix to name its type"
    return OutputError(f"cannot write {path}: {kind} (.mp4 and .mkv keep the luma)")


def remove_empty_folders(folders) -> None:
    """Remove those of `folders` (ones a failed run made: folders_to_make) that
    are empty, deepest first; any holding a file stays, so nothing not the run's goes."""
    for folder in sorted(map(Path, folders), key=lambda f: len(f.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def check_output_folder(folder) -> None:
    """OutputError where `folder` cannot be made (with its parents) or take
    new files, nothing made: for a dry run, and before make_output_folder
    makes anything. Read at the nearest path on the way that is there: a link
    to nothing there would fail its mkdir with a bare "File exists"."""
    absolute = Path(os.path.abspath(folder))
    there = next(f for f in (absolute, *absolute.parents) if os.path.lexists(f))
    if not there.exists():
        raise OutputError(f"cannot write {folder}: {there} is a symbolic link to nothing")
    if not there.is_dir():
        raise OutputError(f"{folder}: output folder is a file" if there == absolute else
                          f"cannot write {folder}: {there} is a file, not a folder")
    check_writable_folder(there, folder)


def make_output_folder(folder) -> Path:
    """`folder`, made (with its parents) where missing, once it is seen to take
    new files (check_output_folder): before any work, so that a batch or a
    report whose outputs cannot be written stops with one line, not after its first file."""
    folder = Path(folder)
    check_output_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {folder}: {e.strerror or e}") from None
    return folder


def _temp_path(path: Path) -> Path:
    # Same folder, so the rename is atomic; same suffix, so the muxer is
    # chosen as for the final name.
    return temp_path(path, keep_suffix=True)


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """The finished file to its name: OutputError (the temporary file left
    for the caller to remove) where another run has written that name since
    this one began, and --overwrite was not given."""
    if not move_into_place(tmp, path, overwrite=overwrite):
        raise OutputError(f"output already exists: {path}, written by another run meanwhile "
                          "(use --overwrite to replace it)")


# What a full disk, a quota or a failing drive raises while a file is written.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


@contextlib.contextmanager
def _write_errors(path: Path):
    """A disk that fills up mid-file is the user's to fix: an OutputError (one
    line from the command line), not a traceback. The caller removes the
    partial file, as for any other error."""
    try:
        yield
    except OSError as e:  # PyAV's errors with an errno are OSErrors too
        if e.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(f"cannot write {path}: {e.strerror or os.strerror(e.errno)}") from None
