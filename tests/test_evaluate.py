"""`framecolor eval` end to end on a tiny generated clip with a tiny model."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framecolor import apply, evaluate, metrics, video
from framecolor.errors import InputError
from tests import media

CONFIG = apply.ApplyConfig(batch_size=4, preset="ultrafast")


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


@pytest.fixture(scope="module")
def colorizer(model_path):
    return apply.Colorizer(apply.load(model_path), CONFIG)


@pytest.fixture(scope="module")
def report(colorizer, clip, tmp_path_factory):
    strips = tmp_path_factory.mktemp("strips")
    return evaluate.evaluate(colorizer, [clip], strips_dir=strips), strips


def test_report_has_every_figure_for_model_gray_and_truth(report, clip):
    result, _ = report
    scores = result["clips"][str(clip)]
    assert scores["frames"] == video.probe(clip).frame_count
    for name in ("model", "gray"):
        assert set(scores[name]) == {"psnr", "ssim", "colorfulness", "colorfulness_abs", "colorfulness_ratio", "cdc"}
        assert 0 < scores[name]["psnr"] < metrics.PSNR_CAP
    # The gray baseline carries no color at all, and the shapes of the clip are colored.
    assert scores["gray"]["colorfulness"] == pytest.approx(0.0, abs=1e-9)
    assert scores["truth"]["colorfulness"] > 10
    # The model's output is scored, not the gray input: the untrained model adds some (wrong) color.
    assert scores["model"]["colorfulness"] > 0.5 and scores["model"]["psnr"] != scores["gray"]["psnr"]
    # apply keeps the gray input's luma; only the codec moves it, within +-1.
    assert scores["luma_error"]["mean_abs"] < 0.5 and scores["luma_error"]["p999"] <= 1.0
    assert result["overall"]["model"]["psnr"] == pytest.approx(scores["model"]["psnr"])


def test_scores_compare_aligned_frames(clip, tmp_path):
    """Scoring the truth as the output gives the PSNR cap and the truth's own CDC."""
    gray = tmp_path / "gray.mkv"
    evaluate.make_gray_clip(clip, gray, start=None, max_frames=None)
    scores = evaluate.score_clip(clip, gray, clip, start=None, max_frames=None, deltas=(1, 2, 4))
    assert scores["model"]["psnr"] == pytest.approx(metrics.PSNR_CAP)
    assert scores["model"]["cdc"] == pytest.approx(scores["truth"]["cdc"])
    assert scores["model"]["colorfulness_ratio"] == pytest.approx(1.0)


def test_gray_clip_is_the_source_luma_with_neutral_chroma(clip, tmp_path):
    gray = tmp_path / "gray.mkv"
    count = evaluate.make_gray_clip(clip, gray, start=None, max_frames=5)
    assert count == 5
    source = [f.image for f in video.read_frames(clip, format="luma", max_frames=5)]
    made = [f.image for f in video.read_frames(gray, format="luma")]
    np.testing.assert_array_equal(np.stack(made), np.stack(source))  # lossless, exact
    rgb = next(video.read_frames(gray)).image.astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 1 and np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 1


def test_strips_show_gray_output_truth_side_by_side(report, clip):
    _, strips = report
    info = video.probe(clip)
    image = video.read_image(strips / f"{clip.stem}.png")
    assert image.shape == (len(evaluate.STRIP_POSITIONS) * info.height, 3 * info.width, 3)
    truth = [f.image for f in video.read_frames(clip)]
    for row, position in enumerate(evaluate.STRIP_POSITIONS):
        tiles = image[row * info.height:(row + 1) * info.height].reshape(info.height, 3, info.width, 3).swapaxes(0, 1)
        gray, output, original = tiles.astype(int)
        assert np.abs(gray - gray.mean(-1, keepdims=True)).max() <= 1  # no color
        assert np.abs(output - gray).mean() > 1  # colored, so not the gray input
        # the truth at that point of the clip, as far as the PNG's 8 bits and the clip's codec allow
        expected = truth[int(position * info.frame_count)].astype(int)
        assert np.abs(original - expected).mean() < 1 and np.abs(original - gray).mean() > 5


def test_train_split_scores_only_the_tail(colorizer, clip):
    result = evaluate.evaluate(colorizer, [clip], evaluate.EvalConfig(train_split=0.75))
    total = video.probe(clip).frame_count  # 12
    assert result["clips"][str(clip)]["frames"] == total // 4  # the last quarter, not the first three



def test_train_split_is_measured_from_the_first_frame_that_decodes(tmp_path, monkeypatch):
    # A recording that starts between keyframes: its first frames never decode.
    # Measured from the stream's start, 0.4 scored 26 of the 36 frames that do (72%).
    _copy_as_colorized(monkeypatch)
    source = media.make_video(tmp_path / "source.ts", width=96, height=64, frames=60, keyint=12, audio=False)
    clip = media.cut_ts_start(source, tmp_path / "cut.ts", 0.3)
    decoded = sum(1 for _ in video.read_frames(clip, format="luma"))
    assert decoded < video.probe(clip).frame_count  # the test's premise: frames before the first that decodes
    result = evaluate.evaluate(None, [clip], evaluate.EvalConfig(train_split=0.4))
    assert abs(result["clips"][str(clip)]["frames"] - 0.6 * decoded) <= 1


def test_a_train_split_that_leaves_no_frames_says_so(colorizer, clip):
    # Not "has no color": the clip is colored, the split left nothing of it.
    with pytest.raises(InputError, match=r"no frames after --train-split .*lower --train-split"):
        evaluate.evaluate(colorizer, [clip], evaluate.EvalConfig(train_split=0.99))

def _run_cli(*args):
    from framecolor.cli import make_app

    return CliRunner().invoke(make_app(), list(map(str, args)))


def test_a_clip_that_changes_size_is_scored_at_one_size(colorizer, tmp_path):
    # A capture switching between SD and HD: the gray input and the truth
    # are both scaled to the size the file states, frame for frame.
    clip = media.make_size_switching_ts(tmp_path / "capture.ts")
    with pytest.warns(video.VideoWarning, match="changes size"):
        result = evaluate.evaluate(colorizer, [clip])
    scores = result["clips"][str(clip)]
    assert scores["frames"] == 12
    assert 0 < scores["gray"]["psnr"] < metrics.PSNR_CAP


def test_a_clip_that_changes_size_gets_its_strip_at_one_size(tmp_path):
    # The strip's truth tiles are read at the gray clip's size, as the scores'
    # are: at the clip's own sizes they could not be set beside the gray ones.
    clip = media.make_size_switching_ts(tmp_path / "capture.ts")
    gray, strip = tmp_path / "gray.mkv", tmp_path / "strip.png"
    with pytest.warns(video.VideoWarning, match="changes size"):
        frames = evaluate.make_gray_clip(clip, gray)
        evaluate.write_strip(strip, clip, gray, gray, start=None, frames=frames)  # the gray as the output
    info = video.probe(clip)
    assert video.read_image(strip).shape == (len(evaluate.STRIP_POSITIONS) * info.height, 3 * info.width, 3)


def test_a_black_and_white_clip_is_refused_before_any_work(colorizer, tmp_path, monkeypatch):
    # Its "truth" has no color: the scores would compare with gray, and the
    # colorfulness ratio divide by zero. The user meant `framecolor apply`.
    bw = media.make_video(tmp_path / "bw.mp4", frames=12, audio=False, colorless=range(12))
    monkeypatch.setattr(evaluate, "make_gray_clip", lambda *a, **k: pytest.fail("made a gray clip"))
    with pytest.raises(InputError, match="bw.mp4 has no color to score against: .* use framecolor apply"):
        evaluate.evaluate(colorizer, [bw])


def test_a_clip_without_color_in_the_frames_to_be_scored_is_refused(tmp_path, monkeypatch):
    # Color after --max-frames is never scored: the truth's colorfulness was 0,
    # and the ratio 3.3e10. The clip is in color, so the fix is more frames, not apply.
    clip = media.make_video(tmp_path / "late.mp4", frames=12, audio=False, colorless=range(6))
    monkeypatch.setattr(evaluate, "make_gray_clip", lambda *a, **k: pytest.fail("made a gray clip"))
    with pytest.raises(InputError, match=r"late.mp4 has no color in its first 5 frames, the frames to be scored, "
                                         r"only elsewhere: .*\(raise --max-frames\)"):
        evaluate.evaluate(None, [clip], evaluate.EvalConfig(max_frames=5))


def test_a_clip_with_color_only_in_the_frames_to_be_scored_is_taken(tmp_path):
    # Sampled over all 24 frames (0, 3, 6, ...), the color of frames 1 and 2 was missed.
    clip = media.make_video(tmp_path / "early.mp4", frames=24, audio=False, colorless=set(range(24)) - {1, 2})
    assert evaluate._check_clip(clip, evaluate.EvalConfig(max_frames=3)) is None


def test_a_train_split_that_leaves_one_frame_is_refused_before_any_work(colorizer, clip, tmp_path, monkeypatch):
    # Found only once the gray copy was made, after the clips before it had
    # been colorized and their strips written.
    monkeypatch.setattr(evaluate, "make_gray_clip", lambda *a, **k: pytest.fail("made a gray clip"))
    strips = tmp_path / "strips"
    with pytest.raises(InputError, match=r"clip.mp4: only 1 frame\(s\) to evaluate; need at least 2 "
                                         r"\(lower --train-split\)"):
        evaluate.evaluate(colorizer, [clip], evaluate.EvalConfig(train_split=0.9), strips_dir=strips)
    assert not strips.exists()


@pytest.mark.parametrize("bad, why", [
    ("missing.mp4", "no such file: .*missing.mp4"),
    ("bw.mp4", "bw.mp4 has no color to score against"),
    ("one.mp4", "one.mp4: only 1 frame\\(s\\) to evaluate; need at least 2"),
    ("photo.png", "photo.png is a photo: eval scores video clips .* use apply"),
    ("tiny.mp4", "tiny.mp4 is 6x6: SSIM, one of the scores, needs frames of at least 7x7 pixels"),
])
def test_a_bad_clip_after_a_good_one_is_refused_before_any_work(colorizer, clip, tmp_path, monkeypatch, bad, why):
    # A typo in the last of many clips must not cost the colorizing of the others.
    if bad == "bw.mp4":
        media.make_video(tmp_path / bad, frames=4, audio=False, colorless=range(4))
    elif bad == "one.mp4":
        media.make_video(tmp_path / bad, frames=1, audio=False)
    elif bad == "photo.png":
        media.make_images(tmp_path, 1)[0].rename(tmp_path / bad)
    elif bad == "tiny.mp4":
        media.make_video(tmp_path / bad, width=6, height=6, frames=4, audio=False)
    monkeypatch.setattr(evaluate, "make_gray_clip", lambda *a, **k: pytest.fail("made a gray clip"))
    monkeypatch.setattr(apply, "colorize_video", lambda *a, **k: pytest.fail("colorized"))
    strips = tmp_path / "strips"
    with pytest.raises(InputError, match=why):
        evaluate.evaluate(colorizer, [clip, tmp_path / bad], evaluate.EvalConfig(max_frames=4), strips_dir=strips)
    assert not strips.exists()  # no strip, nor even the folder for them


def _copy_as_colorized(monkeypatch):
    """colorize_video as a copy of the gray input: eval's own steps, with no model to compile."""
    monkeypatch.setattr(apply, "colorize_video", lambda colorizer, gray, out, **kw: shutil.copy(gray, out))


@pytest.mark.parametrize("folder", ["new/strips", "existing"])
def test_a_clip_refused_as_it_is_scored_leaves_no_strips(clip, tmp_path, monkeypatch, folder):
    # What no check foresees: the first clip's strip was left, and the folder
    # made for it. Only this run's files go: what the folder held stays as it was.
    _copy_as_colorized(monkeypatch)
    second = Path(shutil.copy(clip, tmp_path / "second.mp4"))
    scored = evaluate.score_clip

    def score(truth, *args, **kwargs):
        if Path(truth) == second:
            raise InputError("refused as it is scored")
        return scored(truth, *args, **kwargs)

    monkeypatch.setattr(evaluate, "score_clip", score)
    strips = tmp_path / folder
    if folder == "existing":
        strips.mkdir()
        (strips / "clip.png").write_bytes(b"an earlier run's strip")
        (strips / "notes.txt").write_text("the user's")
    with pytest.raises(InputError, match="refused as it is scored"):
        evaluate.evaluate(None, [clip, second], evaluate.EvalConfig(max_frames=4), strips_dir=strips)
    if folder == "existing":
        assert sorted(p.name for p in strips.iterdir()) == ["clip.png", "notes.txt"]
        assert (strips / "clip.png").read_bytes() == b"an earlier run's strip"
    else:
        assert list(tmp_path.iterdir()) == [second]  # neither strips/ nor new/


def test_a_clip_given_under_two_names_is_scored_once(clip, tmp_path, monkeypatch):
    # c.mp4 and /home/me/c.mp4 were scored twice, and counted twice in the overall figures.
    _copy_as_colorized(monkeypatch)
    monkeypatch.chdir(clip.parent)
    strips = tmp_path / "strips"
    result = evaluate.evaluate(None, [Path(clip.name), clip, Path(".", clip.name)], evaluate.EvalConfig(max_frames=4),
                               strips_dir=strips)
    assert list(result["clips"]) == [clip.name]  # under the name given first
    assert [p.name for p in strips.iterdir()] == ["clip.png"]


def test_warnings_of_eval_s_own_copies_name_the_clip_once(colorizer, tmp_path):
    # The gray input and the output, both files in eval's temporary folder,
    # were named instead of the clip, one warning each.
    odd = media.make_video(tmp_path / "odd.mkv", width=65, height=49, pix_fmt="yuv444p", frames=4, audio=False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        evaluate.evaluate(colorizer, [odd])
    assert [str(w.message) for w in said if "is odd" in str(w.message)] == [
        f"65x49 is odd, which yuv420p cannot hold: writing {odd}'s gray and colorized copies as yuv444p"]
    assert not [w for w in said if "framecolor-eval-" in str(w.message)]


def test_the_progress_bar_names_the_clip_not_its_gray_copy(colorizer, clip, capsys):
    # It said "0-gray.mkv", a file in eval's temporary folder.
    evaluate.evaluate(colorizer, [clip], progress=True)
    bar = capsys.readouterr().err
    assert f"{clip.name}:" in bar and "gray" not in bar, bar


def test_clips_of_the_same_name_get_their_own_strips_and_labels(colorizer, tmp_path):
    # Two different clips, both c.mp4: told apart by size (and so by content).
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
    clips = [media.make_video(tmp_path / folder / "c.mp4", width=w, height=h, frames=4, audio=False)
             for folder, w, h in (("d1", 64, 48), ("d2", 48, 32))]
    strips = tmp_path / "strips"
    result = evaluate.evaluate(colorizer, clips, strips_dir=strips)
    paths = [result["clips"][str(c)]["strip"] for c in clips]
    assert len(set(paths)) == 2 and sorted(p.name for p in strips.iterdir()) == sorted(Path(p).name for p in paths)
    for clip, path, (w, h) in zip(clips, paths, ((64, 48), (48, 32))):
        image = video.read_image(path)
        assert image.shape == (len(evaluate.STRIP_POSITIONS) * h, 3 * w, 3)  # this clip's frames
        truth = next(video.read_frames(clip)).image.astype(int)
        assert np.abs(image[:h, 2 * w:].astype(int) - truth).mean() < 1
    labels = [label for label, _ in evaluate.report_rows(result) if not label.startswith(" ")]
    assert labels == [str(Path("d1", "c.mp4")), str(Path("d2", "c.mp4")), "overall"]


def test_the_overall_luma_p999_is_a_mean_over_clips_as_the_table_says():
    # It was the largest clip's, under the table's "mean over clips".
    def scores(p999):
        figures = dict(psnr=20.0, ssim=0.9, colorfulness=1.0, colorfulness_abs=1.0, colorfulness_ratio=1.0, cdc=0.01)
        return dict(model=figures, gray=figures, truth=dict(colorfulness=1.0, colorfulness_abs=1.0, cdc=0.01),
                    luma_error=dict(mean_abs=p999 / 10, p999=p999))

    overall = evaluate._overall([scores(0.0), scores(9.0)])
    assert overall["luma_error"] == pytest.approx({"mean_abs": 0.45, "p999": 4.5})


@pytest.mark.parametrize("errors", [
    [0], [3], [0, 1], [0] * 999 + [200], [0] * 1000 + [200], [5] * 7 + [0] * 2000 + [1, 9],
    *(np.random.default_rng(seed).geometric(0.4, n) - 1 for seed, n in ((0, 1), (1, 1001), (2, 4321), (3, 20000))),
    np.random.default_rng(4).integers(0, 1024, 3000),  # 10-bit codes
])
def test_luma_error_figures_from_the_histogram_are_numpy_s_of_the_errors(errors):
    # The clip's errors are tallied, not kept (a 720p frame's cost 3.5 MB): the
    # figures must still be, to the bit, the np.mean and np.percentile of the errors.
    errors = np.asarray(errors, np.int16)
    figures = evaluate._luma_error_figures(np.bincount(errors))
    assert figures == {"mean_abs": float(errors.mean()), "p999": float(np.percentile(errors, 99.9))}


def test_luma_error_is_tallied_frame_by_frame(tmp_path, monkeypatch):
    # The histogram of the clip's errors, larger errors in later frames too; none of the planes kept.
    rng = np.random.default_rng(0)
    gray = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(3)]
    out = [np.clip(g.astype(int) + rng.integers(-k, k + 1, g.shape), 0, 255).astype(np.uint8)
           for k, g in zip((0, 2, 40), gray)]
    planes = {"out.mkv": out, "gray.mkv": gray}
    monkeypatch.setattr(video, "read_frames", lambda path, **kw: (video.Frame(p, i, None, i)
                                                                  for i, p in enumerate(planes[path])))
    counts = evaluate._luma_error_counts("out.mkv", "gray.mkv")
    errors = np.abs(np.stack(out).astype(int) - np.stack(gray)).ravel()
    np.testing.assert_array_equal(counts, np.bincount(errors, minlength=256))


def test_strip_names_keep_the_stem_and_tell_same_named_clips_apart(tmp_path):
    names = evaluate.strip_names([Path("a.mp4"), Path("d1/c.mp4"), Path("d3/c.mp4"), Path("c.mkv")])
    assert names == ["a.png", "d1-c.mp4.png", "d3-c.mp4.png", "c.mkv.png"]
    # Case-blind, as a Mac's or a Windows disk compares names; and never the same twice.
    assert len({n.lower() for n in evaluate.strip_names([Path("x/C.mp4"), Path("y/c.mp4")])}) == 2
    # "-" makes a-b/c.mp4 and a/b-c.mp4 alike: a number tells them apart.
    names = evaluate.strip_names([Path("a-b/c.mp4"), Path("a/b-c.mp4"), Path("x/c.mp4"), Path("y/b-c.mp4")])
    assert names == ["a-b-c.mp4.png", "a-b-c.mp4-2.png", "x-c.mp4.png", "y-b-c.mp4.png"]



def test_the_json_report_is_written_before_the_table_is_printed(model_path, clip, tmp_path, monkeypatch):
    # `eval ... --json r.json | head -1`: the closed pipe ended the command
    # as the table printed, and the report was never written.
    from framecolor.cli import eval as eval_cli

    def closed_pipe(rows):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(eval_cli, "print_rows", closed_pipe)
    out = tmp_path / "r.json"
    result = _run_cli("eval", clip, "--model", model_path, "--json", out, "-q", "--max-frames", 2)
    assert result.exit_code == 1  # click ends a command quietly on a closed pipe
    assert json.loads(out.read_text())["clips"][str(clip)]["frames"] == 2

def test_cli_writes_json_and_reports_bad_input(model_path, clip, tmp_path, text_mp4):
    out = tmp_path / "r.json"
    result = _run_cli("eval", clip, "--model", model_path, "--json", out, "-q", "--max-frames", 6,
                      "--train-split", 0.25)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["clips"][str(clip)]["frames"] == 6 and "gray" in data["overall"]
    # Every setting that changes the scores, as used: the render size the model's own,
    # no temperature for a regress head (it has no readout to warm).
    settings = {k: data[k] for k in ("model", "render_size", "smoothing", "temperature", "max_frames", "train_split")}
    assert settings == {"model": str(model_path), "render_size": apply.load(model_path).config.size,
                        "smoothing": apply.ApplyConfig().smoothing, "temperature": None, "max_frames": 6,
                        "train_split": 0.25}
    bad = _run_cli("eval", text_mp4, "--model", model_path, "-q")
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("error: ")
    bad_split = _run_cli("eval", clip, "--model", model_path, "--train-split", 1.5)
    assert bad_split.exit_code == 1 and "train-split" in bad_split.output
    for strips, why in ((out, f"{out}: output folder is a file"),
                        ("/proc/strips", "cannot write /proc/strips: No such file or directory")):
        bad_strips = _run_cli("eval", clip, "--model", model_path, "--strips", strips, "-q")
        assert bad_strips.exit_code == 1 and bad_strips.output == f"error: {why}\n"


def test_cli_refuses_one_path_for_the_json_report_and_the_strips(model_path, clip, tmp_path, monkeypatch):
    # The strips took the name, and the report failed on it with a traceback after all the work.
    monkeypatch.chdir(tmp_path)
    result = _run_cli("eval", clip, "--model", model_path, "--json", "same", "--strips", tmp_path / "same", "-q",
                      "--max-frames", 2)
    assert result.exit_code == 1
    assert result.output == "error: --json same is the --strips folder: give the report a file name of its own\n"
    assert not (tmp_path / "same").exists()


def test_a_damaged_clip_is_said_to_be_once(colorizer, truncated_clip, tmp_path):
    """eval reads the clip several times (its gray copy, the scores, the strips); the damage is said once."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        evaluate.evaluate(colorizer, [truncated_clip], strips_dir=tmp_path)
    assert len([w for w in said if "truncated or damaged" in str(w.message)]) == 1
