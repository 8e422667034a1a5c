"""Colors that do not depend on how frames are cut into batches, renders that
keep the picture's aspect, and folder outputs in types framecolor can write.

The smoothing looked ahead only into the next batch, so the backward half
of its filter was cut off after B frames: colors changed with --batch-size.
One tiny model; videos and photos are 72x60, whose renders (80x96 for both)
share the network's compiles, at batches of 1 (a photo's) and 8.
"""

from __future__ import annotations

import copy
import dataclasses

import av
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framecolor import apply, batch, inference, smoothing, video
from tests import media

WIDTH, HEIGHT = 72, 60
STRENGTH = apply.ApplyConfig().smoothing  # the default


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    """The tiny model, its color head 20 times louder: fresh, its colors
    (1-2 Lab units) and their flicker are too faint to show in chroma codes
    what smoothing does to them."""
    model = apply.load(tiny_model_path)
    variables = copy.deepcopy(model.variables)
    variables["params"]["decoder"]["head"]["kernel"] *= 20
    return apply.Colorizer(dataclasses.replace(model, variables=variables), apply.ApplyConfig())


def _noisy_stills(frames: int):
    return media.noisy_stills(frames, WIDTH, HEIGHT)


def _noisy_clip(path, frames: int):
    return media.write_pictures(path, _noisy_stills(frames))


def _chroma(path) -> np.ndarray:
    """(frames, 2, h, w) Cb and Cr codes."""
    with av.open(str(path)) as c:
        return np.stack([[video.pixels._plane(f, p, np.uint8) for p in (1, 2)] for f in c.decode(video=0)]).astype(int)


def test_a_videos_colors_do_not_depend_on_the_batch_size(colorizer, tmp_path):
    # 1 and 8 frames a batch: the look-ahead (14 frames at the default
    # strength) spans 14 batches of one and two of the other, and the last
    # batch of 8 ends part-way (21 frames).
    clip = _noisy_clip(tmp_path / "still.mkv", frames=21)
    chroma = {}
    for batch_size in (1, 8):
        out = tmp_path / f"b{batch_size}.mkv"
        apply.colorize_video(colorizer.reconfigured(batch_size=batch_size, codec="ffv1"), clip, out, progress=False)
        chroma[batch_size] = _chroma(out)
    assert np.abs(chroma[1] - chroma[8]).max() <= 1
    # The test has teeth: the smoothing moved the colors by far more than that.
    unsmoothed = tmp_path / "s0.mkv"
    apply.colorize_video(colorizer.reconfigured(batch_size=8, codec="ffv1", smoothing=0.0), clip, unsmoothed,
                         progress=False)
    assert np.abs(_chroma(unsmoothed) - chroma[8]).max() >= 5


def test_numbered_photos_colors_do_not_depend_on_the_batch_size(colorizer, tmp_path):
    (tmp_path / "scan").mkdir()
    for i, picture in enumerate(_noisy_stills(11), 1):
        media.make_photo(tmp_path / "scan" / f"scan_{i:03d}.png", picture, "rgb24", "rgb24")
    outputs = {}
    for batch_size in (1, 8):
        jobs, _ = batch.plan_jobs([tmp_path / "scan", tmp_path / f"b{batch_size}"])
        results = batch.colorize_jobs(colorizer.reconfigured(batch_size=batch_size), jobs, progress=False)
        assert {r.status for r in results} == {"done"}
        outputs[batch_size] = np.stack([video.read_image(job.output) for job in jobs]).astype(int)
    assert np.abs(outputs[1] - outputs[8]).max() <= 1


def _reference(lightness, ab, strength):
    """The full two-sided filter smoothing.py describes, over the whole clip
    at once: weights multiply along the chain of links between frames."""
    lightness, ab = np.asarray(lightness, float), np.asarray(ab, float)
    hist = np.asarray(smoothing.histograms(jnp.asarray(lightness)))
    same_shot = 0.5 * np.abs(hist[1:] - hist[:-1]).sum(-1) <= smoothing.CUT_THRESHOLD
    similar = np.exp(-np.square((lightness[1:] - lightness[:-1]) / smoothing.SIGMA_L))
    links = strength * similar * same_shot[:, None, None]  # links[t]: from frame t to t + 1
    n = len(ab)
    out = np.empty_like(ab)
    for t in range(n):
        weights = np.ones_like(lightness)
        for s in range(t + 1, n):
            weights[s] = weights[s - 1] * links[s - 1]
        for s in range(t - 1, -1, -1):
            weights[s] = weights[s + 1] * links[s]
        out[t] = (weights[..., None] * ab).sum(0) / weights.sum(0)[..., None]
    return out


_smooth = jax.jit(smoothing.smooth, static_argnames="lookahead")


def _streamed(lightness, ab, strength, batch_size):
    """smoothing.smooth over blocks of `batch_size`, each with the
    lookahead_frames after it (padded past the end), as the pipeline does."""
    n, lookahead = len(ab), smoothing.lookahead_frames(strength)
    hist = smoothing.histograms(lightness)

    def block(k):
        frames = np.minimum(np.arange(k, k + batch_size), n - 1)
        return smoothing.Track(ab[frames], lightness[frames], hist[frames], jnp.arange(k, k + batch_size) < n)

    state, out = smoothing.initial_state(*lightness.shape[1:]), []
    batches_ahead = -(-lookahead // batch_size)
    for k in range(0, n, batch_size):
        ahead = tuple(block(k + batch_size * (j + 1)) for j in range(batches_ahead))
        state, smoothed = _smooth(state, block(k), ahead, strength, lookahead=lookahead)
        out.append(smoothed)
    return np.concatenate(out)[:n]


def test_streamed_smoothing_is_the_full_two_sided_filter():
    # Two static shots (a cut at frame 17), something bright over pixel (0, 0)
    # from frame 9 to 16, and 40 frames: the 14-frame look-ahead cuts the
    # backward half off within each shot.
    rng = np.random.default_rng(0)
    n = 40
    lightness = np.full((n, 3, 4), 30.0)
    lightness[17:] = 80.0
    lightness[9:17, 0, 0] = 60.0
    lightness, ab = jnp.asarray(lightness, jnp.float32), jnp.asarray(rng.normal(0, 20, (n, 3, 4, 2)), jnp.float32)
    expected = _reference(lightness, ab, STRENGTH)
    for batch_size in (1, 3, 8):
        got = _streamed(lightness, ab, STRENGTH, batch_size)
        # Frames past the look-ahead weigh under LOOKAHEAD_WEIGHT: 0.05 Lab units is far under a code.
        np.testing.assert_allclose(got, expected, atol=0.05, err_msg=f"batch size {batch_size}")


def test_the_lookahead_is_set_by_the_strength_alone():
    assert smoothing.lookahead_frames(0.0) == 0  # --no-smoothing: nothing waits
    assert smoothing.lookahead_frames(STRENGTH) == 14
    for strength in (0.05, 0.3, 0.6, 0.9):
        frames = smoothing.lookahead_frames(strength)
        assert strength**frames <= smoothing.LOOKAHEAD_WEIGHT < strength ** (frames - 1)
    assert smoothing.lookahead_frames(0.999) == smoothing.MAX_LOOKAHEAD


def test_the_batches_that_wait_are_those_the_lookahead_spans(colorizer):
    assert colorizer.reconfigured(smoothing=0.0).batches_ahead == 0  # --no-smoothing: none
    assert colorizer.reconfigured(batch_size=8).batches_ahead == 2
    assert colorizer.reconfigured(batch_size=1).batches_ahead == 14


# ---------------------------------------------------------------------------
# The render's aspect


@pytest.mark.parametrize(("width", "height"), [(640, 272), (1280, 720), (72, 60), (272, 640)])
def test_a_render_size_off_the_multiple_of_8_keeps_the_aspect(width, height):
    # --render-size 76 rendered 640x272 at 176x80: 6.5% narrower than the picture.
    aspect = max(width, height) / min(width, height)
    for render_size in range(apply.MIN_RENDER_SIZE, 240):
        for step in (8, apply.IMAGE_RENDER_STEP):
            h, w = inference.render_shape(width, height, render_size, step)
            short, long_ = min(h, w), max(h, w)
            assert short % 8 == 0 and abs(short - render_size) <= 5
            assert abs(long_ - short * aspect) <= step / 2, (render_size, step, h, w)


# ---------------------------------------------------------------------------
# Folder outputs


def _gif(path, pictures):
    from PIL import Image

    first, *rest = [Image.fromarray(p) for p in pictures]
    first.save(path, save_all=bool(rest), append_images=rest, duration=100, loop=0)
    return path


def test_photos_of_types_framecolor_cannot_write_are_written_as_png(colorizer, tmp_path):
    picture = next(_noisy_stills(1))
    folder = tmp_path / "in"
    folder.mkdir()
    _gif(folder / "still.gif", [picture])
    _gif(folder / "moving.gif", [picture, 255 - picture])
    (folder / "phone.avif").touch()  # an AVIF by its name: no encoder needed
    media.make_photo(folder / "scan.tif", picture, "rgb24", "rgb24")
    out = tmp_path / "out"
    jobs, _ = batch.plan_jobs([folder], out)
    assert {job.source.name: job.output.name for job in jobs} == {
        "still.gif": "still.png", "moving.gif": "moving.mp4", "phone.avif": "phone.png", "scan.tif": "scan.tif"}
    # Every photo type framecolor reads gets an output it can write.
    for suffix in sorted(video.IMAGE_SUFFIXES):
        video.write_image(tmp_path / batch._output_name(tmp_path / f"x{suffix}"), picture)
    # The GIF of one picture, colorized in a batch, is written (it failed: "unknown image type '.mp4'").
    still = [job for job in jobs if job.source.name == "still.gif"]
    [result] = batch.colorize_jobs(colorizer, still, progress=False)
    assert result.status == "done", result.error
    assert video.read_image(out / "still.png").shape == picture.shape
