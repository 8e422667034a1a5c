"""Frame sampling, the uint8 cache, the validation split and batch feeding."""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path

import av
import numpy as np
import pytest

from framecolor import dataset, metrics, video
from framecolor.errors import InputError, TrainingError
from tests import media

SIZE = 32
SIDE = dataset.stored_side(SIZE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset_media")
    a = media.make_video(folder / "a.mp4", width=64, height=48, frames=12, audio=False)
    b = media.make_video(folder / "b.mkv", width=48, height=64, frames=12, audio=False)
    return a, b


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """11 photos numbered alike by a camera (IMG_1 ... IMG_11), of one size, each of another scene."""
    folder = tmp_path_factory.mktemp("album")
    rng = np.random.default_rng(0)
    for i in range(1, 12):
        scene = rng.integers(0, 256, (3, 4, 3)).repeat(10, axis=0).repeat(10, axis=1).astype(np.uint8)
        media.make_photo(folder / f"IMG_{i}.png", scene, "rgb24", "rgb24")
    return folder


def test_videos_are_sampled_to_square_frames(clips, cache):
    frameset = dataset.load_frames(clips, size=SIZE, frames_per_video=6, dedup_threshold=0.0, cache_dir=cache)
    assert frameset.frames.dtype == np.uint8
    assert frameset.frames.shape == (12, SIDE, SIDE, 3)  # 6 from each, landscape and portrait alike
    assert [(s.kind, s.start, s.count) for s in frameset.sources] == [("video", 0, 6), ("video", 6, 6)]
    # Spread over the clip: the moving red box is somewhere else in each frame.
    assert len({frame.tobytes() for frame in frameset.frames[:6]}) == 6
    # The middle of frame 0 is the middle of media.frame_image(0): a blue-ish gradient.
    r, g, b = frameset.frames[0, SIDE // 2, SIDE // 2].astype(int)
    assert b > 100 and abs(r - 100) < 30


def test_every_k_and_near_duplicates(clips):
    a = clips[0]
    every = dataset.sample_video(a, SIDE, every=4, dedup_threshold=0.0)
    assert len(every) == 3  # frames 0, 4, 8
    everything = dataset.sample_video(a, SIDE, frames_per_video=100, dedup_threshold=0.0)
    assert len(everything) == 12
    # A threshold no two frames differ by keeps only the first frame.
    assert len(dataset.sample_video(a, SIDE, frames_per_video=100, dedup_threshold=255.0)) == 1
    np.testing.assert_array_equal(every[1], everything[4])


def test_frames_and_images_without_color_are_left_out(tmp_path, cache):
    # Credits on black, a black-and-white scene, a gray photo: trained on, they teach gray.
    film = media.make_video(tmp_path / "film.mp4", frames=12, audio=False, colorless=range(8, 12))
    bw = media.make_video(tmp_path / "bw.mp4", frames=12, audio=False, colorless=range(12))
    photos = tmp_path / "photos"
    color = media.make_images(photos, 2, size=(48, 40))
    media.make_photo(photos / "z_gray.png", media.gray(media.frame_image(0, 48, 40)), "rgb24", "rgb24")
    with pytest.warns(UserWarning) as caught:
        frameset = dataset.load_frames([film, bw, photos], size=SIZE, frames_per_video=12, dedup_threshold=0.0,
                                       cache_dir=cache)
    assert [(os.path.basename(s.path), s.count) for s in frameset.sources] == [
        ("film.mp4", 8), *((p.name, 1) for p in color)]
    assert all(metrics.chroma_spread(frame) > 10 for frame in frameset.frames)
    said = " | ".join(str(w.message) for w in caught)
    assert f"left out {bw}: no frame in it has color" in said and "left out 1 image(s) without color" in said
    with pytest.raises(TrainingError, match="no color to learn from in .*bw.mp4: train on color footage"):
        dataset.load_frames([bw], size=SIZE, cache_dir=cache)


def test_a_damaged_photo_in_a_folder_is_left_out_and_said(tmp_path, cache):
    # One truncated download or a text file named .jpg among many photos
    # stopped the whole run, after every other photo had been decoded.
    photos = tmp_path / "photos"
    color = media.make_images(photos, 3, size=(48, 40))
    (photos / "img_2.png").write_bytes(color[1].read_bytes()[:40])  # truncated
    (photos / "zz_notes.jpg").write_text("not a picture")
    with pytest.warns(UserWarning, match=r"left out 2 image\(s\) that could not be read \(damaged, or not "
                                         r"images\): \S*img_2.png and 1 more$"):
        frameset = dataset.load_frames([photos], size=SIZE, cache_dir=cache)
    assert [os.path.basename(s.path) for s in frameset.sources] == ["img_1.png", "img_3.png"]
    with pytest.raises(TrainingError, match=r"no frames could be read from \S*zz_notes.jpg \(\S*zz_notes.jpg is "
                                            r"damaged, or not an image\)$"):
        dataset.load_frames([photos / "zz_notes.jpg"], size=SIZE, cache_dir=cache)


def test_second_load_comes_from_the_cache(clips, cache, monkeypatch):
    first = dataset.load_frames(clips, size=SIZE, frames_per_video=5, cache_dir=cache)
    assert not first.cached

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the frames are cached")

    monkeypatch.setattr(dataset.video, "read_frames", no_decoding)
    again = dataset.load_frames(clips, size=SIZE, frames_per_video=5, cache_dir=cache)
    assert again.cached and again.key == first.key
    np.testing.assert_array_equal(again.frames, first.frames)
    # Other sampling, or a changed file, is a different cache entry.
    with pytest.raises(AssertionError, match="decoded"):
        dataset.load_frames(clips, size=SIZE, frames_per_video=4, cache_dir=cache)
    stat = os.stat(clips[0])
    os.utime(clips[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded"):
        dataset.load_frames(clips, size=SIZE, frames_per_video=5, cache_dir=cache)


def test_cache_dir_from_environment(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMECOLOR_CACHE", str(tmp_path / "env_cache"))
    frameset = dataset.load_frames(clips[:1], size=SIZE, frames_per_video=3)
    assert (tmp_path / "env_cache" / f"frames-{frameset.key}.npy").is_file()


def test_images_and_folders_mix_with_videos(clips, album, image_folder, cache, tmp_path):
    single = tmp_path / "single.png"
    media.make_photo(single, media.frame_image(5, 40, 30), "rgb24", "rgb24")
    frameset = dataset.load_frames(
        [clips[0], album, single, image_folder], size=SIZE, frames_per_video=4, cache_dir=cache
    )
    kinds = [s.kind for s in frameset.sources]
    assert kinds == ["video"] + ["image"] * (11 + 1) + ["film"]
    assert frameset.frames.shape[1:] == (SIDE, SIDE, 3)



def test_a_folders_videos_are_training_footage_as_its_photos_are(clips, album, tmp_path, cache):
    # They were left out without a word (a folder of clips: "holds no images").
    only_videos = dataset.load_frames([clips[0].parent], size=SIZE, frames_per_video=4, cache_dir=cache)
    assert [(Path(s.path).name, s.kind) for s in only_videos.sources] == [("a.mp4", "video"), ("b.mkv", "video")]
    mixed = tmp_path / "mixed"
    shutil.copytree(album, mixed)
    shutil.copy(clips[0], mixed / "clip.mp4")
    kinds = [s.kind for s in dataset.load_frames([mixed], size=SIZE, frames_per_video=4, cache_dir=cache).sources]
    assert kinds == ["image"] * 11 + ["video"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder holds no videos or images"):
        dataset.load_frames([tmp_path / "empty"], size=SIZE)


def test_an_input_given_twice_is_used_once_and_said(clips, cache):
    # Its frames would weigh double without a word.
    with pytest.warns(UserWarning, match=r"a.mp4 and 1 more given more than once .*: each is used once"):
        frameset = dataset.load_frames([clips[0], clips[0].parent, clips[0]], size=SIZE, frames_per_video=4,
                                       cache_dir=cache)
    assert [Path(s.path).name for s in frameset.sources] == ["a.mp4", "b.mkv"]

def test_a_film_scanned_to_frames_is_sampled_and_split_as_a_video(tmp_path, cache):
    # Numbered photos of one size, each much like the next: a film's frames.
    # Split photo by photo, each validation frame would have its neighbour
    # in training.
    reel = tmp_path / "reel"
    reel.mkdir()
    for i in range(1, 21):
        media.make_photo(reel / f"reel_{i:04d}.png", media.frame_image(i, 64, 48), "rgb24", "rgb24")
    frameset = dataset.load_frames([reel], size=SIZE, frames_per_video=10, dedup_threshold=0.0, cache_dir=cache)
    assert [(s.kind, s.count) for s in frameset.sources] == [("film", 10)]
    train_idx, val_idx = dataset.split(frameset, 0.2)
    assert val_idx.tolist() == [8, 9] and train_idx.tolist() == list(range(8))
    # A photo more edited changes the cache key, as a changed video does.
    key = frameset.key
    media.make_photo(reel / "reel_0003.png", media.frame_image(7, 64, 48), "rgb24", "rgb24")
    assert dataset.load_frames([reel], size=SIZE, frames_per_video=10, dedup_threshold=0.0,
                               cache_dir=cache).key != key


def test_a_film_with_a_damaged_scan_is_still_a_film_without_it(tmp_path, cache):
    # One unreadable scan made the whole reel loose photos: split one by one
    # (validation frames beside their neighbours in training), every photo
    # kept whatever --frames-per-video said.
    reel = tmp_path / "reel"
    reel.mkdir()
    for i in range(1, 21):
        media.make_photo(reel / f"reel_{i:04d}.png", media.frame_image(i, 64, 48), "rgb24", "rgb24")
    damaged = reel / "reel_0005.png"
    damaged.write_bytes(damaged.read_bytes()[:60])  # a scan cut short
    headers = video.photos._file_header_facts
    headers.cache_clear()
    with pytest.warns(UserWarning, match=r"left out 1 frame\(s\) of .*reel that could not be read .*reel_0005.png"):
        frameset = dataset.load_frames([reel], size=SIZE, frames_per_video=10, dedup_threshold=0.0, cache_dir=cache)
    # Each scan's header read once, though looked at three times (FFmpeg decodes a whole DPX for it).
    assert headers.cache_info().misses == 20
    assert [(s.kind, s.count) for s in frameset.sources] == [("film", 10)]
    train_idx, val_idx = dataset.split(frameset, 0.2)
    assert val_idx.tolist() == [8, 9]  # the reel's end, as for a whole one


def _reel(folder, scans: int = 20, size=(64, 48)) -> Path:
    """A film scanned to `scans` numbered photos, each much like the next."""
    folder.mkdir()
    for i in range(1, scans + 1):
        media.make_photo(folder / f"reel_{i:04d}.png", media.frame_image(i, *size), "rgb24", "rgb24")
    return folder


def test_a_film_beside_a_cover_and_a_scan_of_another_size_is_still_a_film(tmp_path, cache):
    # One more photo in the folder (a cover, a scan redone at another size)
    # made the whole reel loose photos without a word: split one by one,
    # each validation frame beside its neighbours in training, every scan
    # kept whatever --frames-per-video said.
    reel = _reel(tmp_path / "reel")
    media.make_photo(reel / "reel_0021.png", media.frame_image(21, 80, 48), "rgb24", "rgb24")
    media.make_photo(reel / "cover.jpg", media.frame_image(40, 64, 48), "rgb24", "yuvj444p")
    with pytest.warns(UserWarning) as said:
        frameset = dataset.load_frames([reel], size=SIZE, frames_per_video=10, dedup_threshold=0.0, cache_dir=cache)
    assert [str(w.message).removeprefix(f"{reel}: ") for w in said] == [
        f"left out 1 scan(s) not 64x48 as its film's other 20 are: {reel / 'reel_0021.png'}",
        f"1 photo(s) named apart from its film's 20 scans (reel_0001.png, ...) are used as single photos: "
        f"{reel / 'cover.jpg'}"]
    # The scan of another size, a near copy of the film's last, left out: as a
    # photo of its own it could be in training beside its neighbour in validation.
    assert [(s.kind, Path(s.path).name, s.count) for s in frameset.sources] == [("film", "reel", 10),
                                                                                ("image", "cover.jpg", 1)]
    train_idx, val_idx = dataset.split(frameset, 0.2)
    assert {8, 9} <= set(val_idx.tolist()) and set(range(8)) <= set(train_idx.tolist())  # the reel's end


def test_numbered_scans_are_a_film_where_they_are_nine_in_ten_of_the_folder(tmp_path, cache):
    # The rule is of names and counts, plain from a listing.
    reel = _reel(tmp_path / "reel", scans=9)
    media.make_photo(reel / "cover.jpg", media.frame_image(40, 64, 48), "rgb24", "yuvj444p")
    with pytest.warns(UserWarning, match="used as single photos"):
        kinds = [s.kind for s in dataset.load_frames([reel], size=SIZE, cache_dir=cache).sources]
    assert kinds == ["film", "image"]
    media.make_photo(reel / "back.jpg", media.frame_image(50, 64, 48), "rgb24", "yuvj444p")  # 9 of 11
    kinds = [s.kind for s in dataset.load_frames([reel], size=SIZE, cache_dir=cache).sources]
    assert kinds == ["image"] * 11


def test_a_damaged_video_is_left_out_and_said(clips, tmp_path, cache):
    # A download cut short among a folder of clips ended the run after the
    # other clips were decoded, while a damaged photo was left out.
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(clips[0], folder / "a.mp4")
    cut = media.truncate_copy(clips[0], folder / "zz_cut.mp4", 0.3)
    with pytest.warns(UserWarning, match=r"left out \S*zz_cut.mp4, which could not be read: not a video file "
                                         r"\(or damaged\)"):
        frameset = dataset.load_frames([folder], size=SIZE, frames_per_video=4, cache_dir=cache)
    assert [(Path(s.path).name, s.kind) for s in frameset.sources] == [("a.mp4", "video")]
    # Nothing else to learn from: the video's own error, as before.
    with pytest.raises(InputError, match=r"not a video file \(or damaged\): \S*zz_cut.mp4"):
        dataset.load_frames([cut], size=SIZE, cache_dir=cache)


@pytest.mark.parametrize("scan_first", [False, True])
def test_a_scan_given_beside_its_film_is_used_once(tmp_path, cache, scan_first):
    # Compared by path, the folder and its own scan were two inputs: the
    # frame used twice, possibly on both sides of the split.
    reel = _reel(tmp_path / "reel")
    scan = reel / "reel_0020.png"
    inputs = [scan, reel] if scan_first else [reel, scan]
    with pytest.warns(UserWarning, match=r"reel_0020.png given more than once .*: each is used once"):
        frameset = dataset.load_frames(inputs, size=SIZE, every=1, dedup_threshold=0.0, cache_dir=cache)
    assert [(s.kind, Path(s.path).name, s.count) for s in frameset.sources] == [("film", "reel", 20)]


def _raw_h264(path, frames: int) -> Path:
    """A bare H.264 stream (.h264): no container, so nothing states its frame count."""
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(media.frame_image(i, 64, 48), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Path(path)


def test_a_video_of_unknown_length_is_thinned_as_it_is_read(tmp_path, cache, monkeypatch):
    # A raw stream too large to count its packets probes as 0 frames: every
    # frame was decoded and held until the end, then thinned to the target.
    raw = _raw_h264(tmp_path / "raw.h264", 60)
    monkeypatch.setattr(video.probing, "COUNT_PACKETS_MAX_BYTES", 0)  # stands for a stream of some GB
    assert video.probe(raw).frame_count == 0
    held, most = [], [0]
    square = dataset._center_square

    def counted_square(image, side):
        # Frames still referenced are those sampling holds (CPython frees the others at once).
        crop = square(image, side)
        held[:] = [ref for ref in held if ref() is not None] + [weakref.ref(crop)]
        most[0] = max(most[0], len(held))
        return crop

    monkeypatch.setattr(dataset, "_center_square", counted_square)
    frameset = dataset.load_frames([raw], size=SIZE, frames_per_video=5, dedup_threshold=0.0, cache_dir=cache)
    assert len(held) > 0 and most[0] <= 2 * 5 + 1  # twice the target, and the frame being looked at
    assert len(frameset.frames) == 5
    # Still spread over the whole stream: its first frame and one near its end.
    last = frameset.frames[-1]
    assert not np.array_equal(frameset.frames[0], last)
    decoded = dataset.load_frames([raw], size=SIZE, every=1, dedup_threshold=0.0, cache_dir=cache).frames
    assert np.abs(decoded[40:].astype(int) - last.astype(int)).mean(axis=(1, 2, 3)).min() < 1.0


def test_split_holds_out_the_end_of_each_video(clips, cache):
    frameset = dataset.load_frames(clips, size=SIZE, frames_per_video=12, dedup_threshold=0.0, cache_dir=cache)
    train_idx, val_idx = dataset.split(frameset, 0.25)
    assert val_idx.tolist() == [9, 10, 11, 21, 22, 23]  # one contiguous stretch per video
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(24))


def test_image_split_is_by_name_and_stable(album, cache):
    frameset = dataset.load_frames([album], size=SIZE, cache_dir=cache)
    assert {s.kind for s in frameset.sources} == {"image"}  # numbered alike, one size, but no film
    train_idx, val_idx = dataset.split(frameset, 0.5)
    assert 0 < len(val_idx) < 11
    names = lambda idx: {os.path.basename(frameset.sources[i].path) for i in idx}
    again = dataset.split(frameset, 0.5)
    assert names(again[1]) == names(val_idx)


def test_epoch_order_depends_only_on_seed_and_epoch():
    idx = np.arange(10, 21)  # 11 frames
    a = dataset.epoch_batches(idx, 4, seed=1, epoch=3)
    assert a.shape == (2, 4)  # the partial batch is dropped, never a new shape
    np.testing.assert_array_equal(a, dataset.epoch_batches(idx, 4, seed=1, epoch=3))
    assert not np.array_equal(a, dataset.epoch_batches(idx, 4, seed=1, epoch=4))
    assert set(a.ravel()) <= set(idx)


def test_eval_batches_pad_with_a_mask():
    batches = dataset.eval_batches(np.arange(5), 4)
    assert [b.tolist() for b, _ in batches] == [[0, 1, 2, 3], [4, 4, 4, 4]]
    assert [m.tolist() for _, m in batches] == [[1, 1, 1, 1], [1, 0, 0, 0]]


@pytest.mark.parametrize("mode", ["device", "host"])
def test_feeds_gather_the_asked_frames(mode):
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    frames = np.random.default_rng(0).integers(0, 256, (9, 6, 6, 3), dtype=np.uint8)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    feed = dataset.make_feed(frames, mesh, NamedSharding(mesh, P("data")), mode)
    assert isinstance(feed, dataset.DeviceFeed if mode == "device" else dataset.HostFeed)
    plan = [np.array([3, 1]), np.array([8, 0])]
    got = [np.asarray(b) for b in feed.batches(plan)]
    for idx, batch in zip(plan, got):
        np.testing.assert_array_equal(batch, frames[idx])


def test_bad_inputs(tmp_path, cache):
    with pytest.raises(InputError, match="nope.mp4"):
        dataset.load_frames([tmp_path / "nope.mp4"], size=SIZE, cache_dir=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        dataset.load_frames([tmp_path / "empty"], size=SIZE, cache_dir=cache)
    with pytest.raises(TrainingError):
        dataset.load_frames([], size=SIZE, cache_dir=cache)
