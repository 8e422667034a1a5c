"""Shared test media, generated once per session (tiny, so the suite stays fast)."""

from __future__ import annotations

import os
from fractions import Fraction

import jax
import pytest

from tests import media


# XLA's CPU backend compiles fusions faster with its older emitters than with
# its MLIR fusion emitters, the default: on 2 cores the suite ran in 214-223 s
# with them off against 283-285 s on, all tests passing either way. Compiling
# is most of what the tiny models' tests cost.
_FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _with_flag(flags: str, flag: str) -> str | None:
    """XLA_FLAGS with `flag` added, or None where this XLA does not know it
    (an unknown flag aborts the process that reads it)."""
    import subprocess
    import sys

    added = f"{flags} {flag}".strip()
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], capture_output=True,
                           env={**os.environ, "XLA_FLAGS": added, "JAX_PLATFORMS": "cpu"})
    return added if probe.returncode == 0 else None


def pytest_configure(config):
    """Two test workers on one GPU: each takes memory as it needs it, not 75% up front.

    Faster compiles, set once in the first process, before any backend
    starts: the workers and the subprocesses they start inherit the flag.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" not in flags:
        added = _with_flag(flags, _FAST_COMPILE_FLAG)
        if added is not None:
            os.environ["XLA_FLAGS"] = added


@pytest.fixture(scope="session", autouse=True)
def fast_compiles():
    """XLA's optimizations cost far more compile time than the tiny models' runs save."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A freshly initialized tiny colorizer in a model file (apply and eval need no training)."""
    from framecolor import modelfile
    from framecolor.models.colorizer import TINY_MODEL, init_variables

    path = tmp_path_factory.mktemp("model") / "tiny.fcm"
    modelfile.save_model(path, TINY_MODEL, init_variables(TINY_MODEL, jax.random.PRNGKey(0)))
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir):
    """64x48, 12 frames at 30000/1001 fps, H.264 + AAC tone, MP4."""
    return media.make_video(media_dir / "clip.mp4")


@pytest.fixture(scope="session")
def vfr_clip(media_dir):
    """Like `clip`, with irregular frame durations (media.VFR_STEPS)."""
    return media.make_video(media_dir / "vfr.mp4", vfr=True)


@pytest.fixture(scope="session")
def mkv_subs(media_dir):
    """MKV with video, AAC audio and an SRT subtitle track."""
    return media.make_video(media_dir / "subs.mkv", subtitles="srt")


@pytest.fixture(scope="session")
def text_mp4(media_dir):
    """A text file that only claims to be a video."""
    path = media_dir / "x.mp4"
    path.write_text("this is not a video\n" * 20)
    return path


@pytest.fixture(scope="session")
def truncated_clip(media_dir):
    """An MKV cut after 60% of its bytes: the first frames still decode."""
    full = media.make_video(media_dir / "long.mkv", frames=30, audio=False)
    return media.truncate_copy(full, media_dir / "truncated.mkv", 0.6)


@pytest.fixture(scope="session")
def truncated_mp4(media_dir, clip):
    """An MP4 cut before its index (moov at the end): nothing can decode."""
    return media.truncate_copy(clip, media_dir / "cut.mp4", 0.5)


@pytest.fixture(scope="session")
def audio_only(media_dir):
    return media.make_audio(media_dir / "tone.m4a")


@pytest.fixture(scope="session")
def odd_clip(media_dir):
    """175x143: odd sizes need yuv444p (H.264 4:2:0 cannot hold them)."""
    return media.make_video(media_dir / "odd.mp4", width=175, height=143, pix_fmt="yuv444p",
                            frames=4, audio=False, rate=Fraction(25))


@pytest.fixture(scope="session")
def image_folder(media_dir):
    """11 PNGs named img_1 ... img_11 (natural order differs from string order)."""
    media.make_images(media_dir / "images", 11, size=(40, 30))
    return media_dir / "images"
