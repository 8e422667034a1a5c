"""Training frames: sample videos and images once, cache them as uint8, split, feed.

Frames are decoded and resized in PyAV (swscale, in C) to a short side a bit
larger than the training size and center-cropped to a square, so that every
stored frame has one shape, they stack into one uint8 array, and the training
step can take random crops of ``size`` from them. Decoding is by far the slowest
part of preparing data, so the stacked array is cached on disk and a second run
with the same inputs and sampling loads it instantly.

The validation split never mixes neighbouring frames of one shot into both
sides: each video gives its *last* ``val_fraction`` of sampled frames (one
contiguous stretch of time) to validation; single images go by a hash of their
name, so the split does not change when images are added. A folder whose
photos are nearly all numbered under one name and of one size, each much like
the next, holds a film scanned to frames: those are sampled and split as a
video is, and the folder's few other photos are single images (_folder_photos).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from framecolor import metrics, video
from framecolor.atomic import atomic_file, write_atomic
from framecolor.cachedir import default_cache_dir
from framecolor.errors import InputError, TrainingError

CACHE_VERSION = 3  # 2: frames as players show them (upright, ...); 3: frames without color left out
# Stored frames are this much larger than the training crop, so random crops
# (translation augmentation) are possible; 1.15 matches the usual
# resize-256/crop-224 recipe.
CROP_MARGIN = 1.15
# Consecutive sampled frames closer than this (mean absolute difference of 0-255
# gray thumbnails) are frozen or repeated frames: they add no information.
DEFAULT_DEDUP_THRESHOLD = 0.5
_THUMB = 32
# Frames with less color than this have none to learn: gray photos, black
# frames and fades, credits on black, a film's black-and-white scenes.
# Trained on, they teach the model that such pictures are gray, so they are
# left out, as colorization papers leave ImageNet's gray photos out.
DEFAULT_MIN_CHROMA = metrics.NO_COLOR_SPREAD


def stored_side(size: int) -> int:
    """The side of the square frames kept for a training crop of ``size``."""
    return int(round(size * CROP_MARGIN))


@dataclass(frozen=True)
class Source:
    """Where a run of consecutive stored frames came from."""

    path: str
    kind: str  # "video", "film" (a folder of a film's frames as numbered photos, _is_film) or "image"
    start: int  # index of its first frame in FrameSet.frames
    count: int


@dataclass(frozen=True)
class FrameSet:
    """All sampled frames, (N, S, S, 3) uint8 (possibly memory-mapped), and their sources."""

    frames: np.ndarray
    sources: tuple[Source, ...]
    key: str  # the cache key: identifies inputs + sampling
    cached: bool  # True when loaded from the cache instead of decoded

    @property
    def side(self) -> int:
        return int(self.frames.shape[1])


# ---------------------------------------------------------------- sampling


def _center_square(image: np.ndarray, side: int) -> np.ndarray:
    """Crop the middle side x side of a frame whose short side is already ``side``."""
    h, w = image.shape[:2]
    if h < side or w < side:  # a decoder that rounded down: pad by edge replication
        image = np.pad(image, ((0, max(0, side - h)), (0, max(0, side - w)), (0, 0)), mode="edge")
        h, w = image.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side])


def _thumbnail(image: np.ndarray) -> np.ndarray:
    step = max(1, image.shape[0] // _THUMB)
    return image[::step, ::step].mean(axis=-1, dtype=np.float32)


def sample_video(
    path,
    side: int,
    *,
    frames_per_video: int | None = 200,
    every: int | None = None,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    min_chroma: float = 0.0,
) -> np.ndarray:
    """Decode a spread of frames from one video as (n, side, side, 3) uint8.

    ``every`` keeps every k-th frame; otherwise about ``frames_per_video``
    frames are spread evenly over the whole video. Near-duplicates of the
    previously kept frame are skipped, and so are frames with less color
    than ``min_chroma`` (metrics.chroma_spread).
    """
    return _sample_video(path, side, frames_per_video, every, dedup_threshold, min_chroma)[0]


def _sample_video(path, side, frames_per_video, every, dedup_threshold, min_chroma) -> tuple[np.ndarray, int]:
    """sample_video's frames, and how many frames it left out for want of color."""
    def read(k):
        return video.read_frames(path, short_side=side, every=k)

    return _sample_frames(read, lambda: video.probe(path).frame_count, side, frames_per_video, every,
                          dedup_threshold, min_chroma)


def _sample_film(folder, side, frames_per_video, every, dedup_threshold, min_chroma) -> tuple[np.ndarray, int]:
    """A film scanned to numbered photos, sampled as a video is (_sample_video)."""
    import warnings

    photos, damaged = _readable(_film_scans(folder))
    if damaged:
        warnings.warn(f"left out {len(damaged)} frame(s) of {folder} that could not be read (damaged, or not "
                      f"images): {_one_and_more(damaged)}", stacklevel=4)

    def read(k):
        return video.read_photo_film(photos, format="rgb24", short_side=side, every=k)

    return _sample_frames(read, lambda: len(photos), side, frames_per_video, every, dedup_threshold, min_chroma)


def _sample_frames(read, count, side, frames_per_video, every, dedup_threshold, min_chroma) -> tuple[np.ndarray, int]:
    """Frames of `read(every)` (`count()` of them in all), spread, deduplicated and
    without the colorless; and how many it left out for want of color."""
    if every is None:
        target = max(1, int(frames_per_video or 200))
        total = max(1, count())
        every = max(1, total // target)
    else:
        target = None
    kept, last, gray, usable, stride = [], None, 0, 0, 1
    for frame in read(max(1, int(every))):
        image = _center_square(frame.image, side)
        if min_chroma and metrics.chroma_spread(image) < min_chroma:
            gray += 1
            continue
        thumb = _thumbnail(image)
        if last is not None and float(np.abs(thumb - last).mean()) < dedup_threshold:
            continue
        last = thumb
        if usable % stride == 0:
            kept.append(image)
            if target is not None and len(kept) == 2 * target:
                # A count that is unknown (a raw stream too large to count,
                # sampled frame by frame) or far off held every frame until
                # the end: the density halves instead, at most twice the
                # target held, still spread over all seen so far.
                kept, stride = kept[::2], stride * 2
        usable += 1
    if target is not None and len(kept) > target:
        # The frame count of a container is only an estimate: thin evenly.
        picks = np.linspace(0, len(kept) - 1, target).round().astype(int)
        kept = [kept[i] for i in picks]
    if not kept:
        return np.zeros((0, side, side, 3), np.uint8), gray
    return np.stack(kept), gray


def read_still(path, side: int) -> np.ndarray:
    """One image file as (side, side, 3) uint8, resized in PyAV like video frames."""
    frame = next(iter(video.read_frames(path, short_side=side)))
    return _center_square(frame.image, side)


def _expand_inputs(inputs) -> list[tuple[str, str]]:
    """Inputs -> [(path, "video"|"film"|"image")], folders expanded into their
    videos and images, the images taken whole as a film where they are one
    (_is_film). A folder of clips is as much training footage as a folder of
    photos: its videos were left out without a word."""
    items = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{raw}: no such file or folder")
        if path.is_dir():
            images, videos = video.list_images(path), video.list_videos(path)
            if not images and not videos:
                raise InputError(f"{raw}: folder holds no videos or images (mp4, mkv, ..., jpg, png, tif, ...)")
            items.extend(_folder_photos(path, images))
            items.extend((str(p), "video") for p in videos)
        elif video.is_image_path(path):
            items.append((str(path), "image"))
        else:
            items.append((str(path), "video"))
    if not items:
        raise TrainingError("no training inputs given")
    return _once_each(items)


def _folder_photos(folder: Path, images: list) -> list[tuple[str, str]]:
    """A folder's photos as [(path, kind)]: its film's scans (_film_scans) as
    one "film" where they are one (_is_film), the photos named apart (a
    cover.jpg) one by one, and scans of the film's name but another size left
    out, each said; else every photo one by one. A cover beside a film's
    thousand scans made them all loose photos, split one by one, each
    validation frame beside its neighbours in training."""
    import warnings

    scans = _film_scans(folder, images)
    if not _is_film(scans):
        return [(str(p), "image") for p in images]
    in_film, name = set(scans), video.sequence_key(scans[0])
    others = [p for p in images if p not in in_film]
    # A frame of the film that cannot join it (a video's frames share one
    # size) would, as a photo of its own, sit on one side of the split and
    # its neighbours, near copies, on the other.
    resized = [p for p in others if video.sequence_key(p) == name]
    apart = [p for p in others if video.sequence_key(p) != name]
    if resized:
        width, height = next(size for size in map(video.shown_size, scans) if size is not None)
        warnings.warn(f"{folder}: left out {len(resized)} scan(s) not {width}x{height} as its film's other "
                      f"{len(scans)} are: {_one_and_more(resized)}", stacklevel=4)
    if apart:
        warnings.warn(f"{folder}: {len(apart)} photo(s) named apart from its film's {len(scans)} scans "
                      f"({scans[0].name}, ...) are used as single photos: {_one_and_more(apart)}", stacklevel=4)
    return [(str(folder), "film")] + [(str(p), "image") for p in apart]


# A folder's photos numbered under one name and of one size are its film's
# scans when they are at least this share of its photos: a cover or a scan of
# another size beside a reel leaves it a film, and a folder with more other
# photos stays photos.
FILM_SHARE = Fraction(9, 10)  # a fraction, so that the count at the edge is not left to rounding


def _film_scans(folder, images=None) -> list[Path]:
    """The photos of `folder` (`images`, its list_images) that a film's scans
    would be: the most numbered under one name and of one size as shown
    (scan_0001.tif, scan_0002.tif, ...), with those of that name that cannot
    be read (_sample_film leaves them out, and says so), when they are at
    least FILM_SHARE of the folder's photos; else none. One size, as the
    frames of `framecolor apply`'s video of numbered photos share one."""
    images = video.list_images(folder) if images is None else images
    names = [video.sequence_key(photo) for photo in images]
    sizes = [video.shown_size(photo) for photo in images]
    runs: dict[tuple, int] = {}
    for name, size in zip(names, sizes):
        if name is not None and size is not None:
            runs[name, size] = runs.get((name, size), 0) + 1
    if not runs:
        return []
    film = max(runs, key=runs.get)
    scans = [photo for photo, name, size in zip(images, names, sizes)
             if (name, size) == film or (name == film[0] and size is None)]
    return scans if len(scans) >= FILM_SHARE * len(images) else []


def _once_each(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`items` without repeats: a clip given twice (or given and in a folder
    given) was sampled twice, its frames weighing double without a word. A
    film's scan given beside its folder is a repeat too, whichever comes first:
    the film keeps it in its place in time, where the split holds it on one side."""
    import warnings

    in_films = {scan.resolve() for path, kind in items if kind == "film" for scan in _film_scans(path)}
    kept, seen, repeated = [], set(), []
    for path, kind in items:
        key = Path(path).resolve()
        if key in seen or (kind == "image" and key in in_films):
            repeated.append(path)
        else:
            seen.add(key)
            kept.append((path, kind))
    if repeated:
        warnings.warn(f"{_one_and_more(repeated)} given more than once (or also in a folder given): "
                      "each is used once", stacklevel=3)
    return kept


def _one_and_more(paths: list) -> str:
    """The first of `paths`, and how many more (a warning names one, not a thousand)."""
    return f"{paths[0]} and {len(paths) - 1} more" if len(paths) > 1 else str(paths[0])


# ------------------------------------------------------------------- cache


# A film's neighbouring frames differ by less than this (mean absolute
# difference of 0-255 gray thumbnails, as dedup measures it): shots hold
# still for a 24th of a second. Photos of an album, numbered alike by the
# camera, differ by far more.
FILM_NEIGHBOUR_DIFFERENCE = 12.0
# Pairs of neighbouring photos looked at to tell a film from an album.
_FILM_PAIRS = 8


def _is_film(scans) -> bool:
    """Are these numbered photos (_film_scans) a film scanned to frames, each
    much like the next? Then, as a video's, its frames are sampled
    (near-copies of their neighbours add nothing) and its end is held out for
    validation: split photo by photo, each validation frame would have its
    neighbour in training. An album numbered alike by a camera is not."""
    # Judged without the scans that cannot be read: one damaged made the rest
    # loose photos (_sample_film leaves it out, and says so).
    images, _ = _readable(scans)
    if len(images) < 2:
        return False
    starts = np.unique(np.linspace(0, len(images) - 2, min(_FILM_PAIRS, len(images) - 1)).round().astype(int))
    pairs = [i + k for i in starts for k in (0, 1)]
    thumbs = [_thumbnail(frame.image) for frame in video.read_photo_film([images[i] for i in pairs], format="rgb24",
                                                                          size=(_THUMB, _THUMB))]
    differences = [float(np.abs(a - b).mean()) for a, b in zip(thumbs[::2], thumbs[1::2])]
    return float(np.median(differences)) < FILM_NEIGHBOUR_DIFFERENCE


def _readable(photos) -> tuple[list, list]:
    """(the photos whose header can be read, those whose cannot)."""
    sizes = [video.shown_size(p) for p in photos]
    return ([p for p, size in zip(photos, sizes) if size is not None],
            [p for p, size in zip(photos, sizes) if size is None])


def cache_key(items, side, frames_per_video, every, dedup_threshold, min_chroma=DEFAULT_MIN_CHROMA) -> str:
    """Hash of everything that decides the stored frames (paths, sizes, mtimes, sampling)."""
    files = []
    for path, kind in items:
        for file in _film_scans(path) if kind == "film" else [path]:
            st = os.stat(file)
            files.append([os.path.abspath(file), kind, st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {
            "version": CACHE_VERSION,
            "files": files,
            "side": side,
            "frames_per_video": None if every else frames_per_video,
            "every": every,
            "dedup": dedup_threshold,
            "min_chroma": min_chroma,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _load_cached(cache_dir: Path, key: str) -> FrameSet | None:
    meta_path, data_path = cache_dir / f"frames-{key}.json", cache_dir / f"frames-{key}.npy"
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        frames = np.load(data_path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache entry is rebuilt, not fatal
    if meta.get("version") != CACHE_VERSION or frames.shape[0] != meta.get("count"):
        return None
    sources = tuple(Source(**s) for s in meta["sources"])
    return FrameSet(frames, sources, key, cached=True)


def _store_cache(cache_dir: Path, frameset: FrameSet) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = frameset.key
        with atomic_file(cache_dir / f"frames-{key}.npy") as f:
            np.save(f, frameset.frames)
        meta = {
            "version": CACHE_VERSION,
            "count": int(frameset.frames.shape[0]),
            "side": frameset.side,
            "sources": [s.__dict__ for s in frameset.sources],
        }
        # The JSON is written last: its presence marks a complete entry.
        write_atomic(cache_dir / f"frames-{key}.json", json.dumps(meta).encode())
    except OSError as exc:  # a read-only cache must not stop training
        import warnings

        warnings.warn(f"could not write the frame cache in {cache_dir}: {exc}", stacklevel=2)


def load_frames(
    inputs,
    *,
    size: int,
    frames_per_video: int | None = 200,
    every: int | None = None,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    min_chroma: float = DEFAULT_MIN_CHROMA,
    cache_dir=None,
    use_cache: bool = True,
    progress: bool = False,
) -> FrameSet:
    """Sample training frames from videos, image files and image folders (any mix).

    Returns all frames stacked at ``stored_side(size)``; cached on disk under
    ``cache_dir`` (default ``$FRAMECOLOR_CACHE`` or ``~/.cache/framecolor``).
    Frames and images without color (``min_chroma``) are left out, with a
    warning that counts them; inputs with no color at all are an error.
    Images and videos that cannot be read (damaged, or not what they are
    named) are left out too, with a warning that names one; when nothing
    can be read, that is an error.
    """
    side = stored_side(size)
    items = _expand_inputs(inputs)
    key = cache_key(items, side, frames_per_video, every, dedup_threshold, min_chroma)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    if use_cache:
        hit = _load_cached(cache_dir, key)
        if hit is not None:
            return hit

    chunks, sources, start = [], [], 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="reading frames", unit="file", leave=False)
    gray_videos, gray_images, damaged, unreadable = [], 0, [], []
    for path, kind in items:
        if kind in ("video", "film"):
            sample = _sample_video if kind == "video" else _sample_film
            try:
                block, gray = sample(path, side, frames_per_video, every, dedup_threshold, min_chroma)
            except InputError as exc:
                # One damaged clip among many (a download cut short) stopped
                # the run after the others were decoded: left out, as a
                # damaged photo is, and said.
                unreadable.append((path, exc))
                block, gray = np.zeros((0, side, side, 3), np.uint8), 0
            if gray and not len(block):
                gray_videos.append(path)
        else:
            try:
                block = read_still(path, side)[None]
            except InputError:
                # One damaged photo in a corpus of a thousand (a truncated
                # download, a text file named .jpg) stopped the run after
                # the others were decoded: it is left out, and said. (The
                # reader's own words call it "not a video file".)
                damaged.append(path)
                block = np.zeros((0, side, side, 3), np.uint8)
            if len(block) and min_chroma and metrics.chroma_spread(block[0]) < min_chroma:
                block, gray_images = block[:0], gray_images + 1
        if len(block):
            chunks.append(block)
            sources.append(Source(path, kind, start, len(block)))
            start += len(block)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not chunks and unreadable:
        raise unreadable[0][1]
    if not chunks and (gray_videos or gray_images):
        raise TrainingError(f"no color to learn from in {', '.join(map(str, inputs))}: train on color footage")
    if not chunks:
        why = f" ({damaged[0]} is damaged, or not an image)" if damaged else ""
        raise TrainingError(f"no frames could be read from {', '.join(map(str, inputs))}{why}")
    _warn_left_out(gray_videos, gray_images, damaged, unreadable)
    frameset = FrameSet(np.concatenate(chunks), tuple(sources), key, cached=False)
    if use_cache:
        _store_cache(cache_dir, frameset)
    return frameset


def _warn_left_out(gray_videos: list, gray_images: int, damaged: list, unreadable: list) -> None:
    import warnings

    if unreadable:
        warnings.warn(f"left out {_one_and_more([path for path, _ in unreadable])}, which could not be read: "
                      f"{unreadable[0][1]}", stacklevel=3)
    if damaged:
        warnings.warn(f"left out {len(damaged)} image(s) that could not be read (damaged, or not images): "
                      f"{_one_and_more(damaged)}", stacklevel=3)

    if gray_videos:
        warnings.warn(f"left out {', '.join(gray_videos)}: no frame in it has color (a black-and-white "
                      "video teaches the model gray)", stacklevel=3)
    if gray_images:
        warnings.warn(f"left out {gray_images} image(s) without color (black-and-white photos teach "
                      "the model gray)", stacklevel=3)


# ------------------------------------------------------------------- split


def _hash_fraction(name: str) -> float:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(frameset: FrameSet, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, val_indices) into ``frameset.frames``, both sorted."""
    train, val = [], []
    for src in frameset.sources:
        idx = np.arange(src.start, src.start + src.count)
        if src.kind in ("video", "film"):
            n_val = int(round(src.count * val_fraction)) if src.count >= 2 else 0
            n_val = min(n_val, src.count - 1)
            if val_fraction > 0 and src.count >= 5:
                n_val = max(n_val, 1)
            train.append(idx[: src.count - n_val])
            val.append(idx[src.count - n_val :])
        elif _hash_fraction(Path(src.path).name) < val_fraction:
            val.append(idx)
        else:
            train.append(idx)
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return cat(train), cat(val)


# ---------------------------------------------------------------- batching


def epoch_batches(train_idx: np.ndarray, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """(steps, batch) frame indices of one epoch; the partial last batch is dropped.

    The order depends only on (seed, epoch), so a resumed run sees exactly the
    batches an uninterrupted run would have seen.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(train_idx))
    steps = len(train_idx) // batch_size
    return train_idx[order[: steps * batch_size]].reshape(steps, batch_size)


def eval_batches(idx: np.ndarray, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-shape (indices, mask) batches covering ``idx``; the last one padded."""
    out = []
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        mask = np.zeros(batch_size, np.float32)
        mask[: len(part)] = 1.0
        padded = np.concatenate([part, np.full(batch_size - len(part), part[0], part.dtype)])
        out.append((padded, mask))
    return out


def device_budget(devices, fraction: float = 0.4) -> int:
    """Bytes of frames we allow on each device.

    The data is replicated on every device, so the smallest one decides. The
    CPU backend reports no limit: there "device" memory is host memory, and a
    moderate fixed budget keeps us from doubling a huge memory-mapped cache.
    """
    limits = []
    for d in devices:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if stats and stats.get("bytes_limit"):
            limits.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    if not limits:
        return 2 << 30
    return int(min(limits) * fraction)


class DeviceFeed:
    """All frames live on the devices (replicated); a batch is a gather by index.

    No host work and no host->device copy per step: the gather is a tiny
    jitted program whose output is already sharded along the batch.
    """

    def __init__(self, frames: np.ndarray, mesh, batch_sharding):
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        replicated = NamedSharding(mesh, PartitionSpec())
        self._replicated = replicated
        self._data = jax.device_put(np.asarray(frames), replicated)
        self._gather = jax.jit(lambda data, idx: data[idx], out_shardings=batch_sharding)

    def batches(self, index_batches):
        import jax

        for idx in index_batches:
            yield self._gather(self._data, jax.device_put(np.asarray(idx, np.int32), self._replicated))


class HostFeed:
    """Frames stay on the host (e.g. memory-mapped); a thread prefetches batches.

    The thread gathers the next batches and starts their transfer while the
    device runs the current step, so the step rarely waits for data.
    """

    def __init__(self, frames: np.ndarray, batch_sharding, depth: int = 3):
        self._frames = frames
        self._sharding = batch_sharding
        self._depth = depth

    def batches(self, index_batches):
        import jax

        q: queue.Queue = queue.Queue(maxsize=self._depth)
        stop = threading.Event()
        done = object()

        def produce():
            try:
                for idx in index_batches:
                    if stop.is_set():
                        return
                    batch = np.ascontiguousarray(self._frames[np.asarray(idx)])
                    q.put(jax.device_put(batch, self._sharding))
                q.put(done)
            except BaseException as exc:  # hand the error to the consumer
                q.put(exc)

        thread = threading.Thread(target=produce, name="framecolor-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)


FEEDS = ("auto", "device", "host")


def make_feed(frames: np.ndarray, mesh, batch_sharding, mode: str = "auto"):
    """DeviceFeed when the frames fit the device budget (or ``mode='device'``), else HostFeed."""
    if mode not in FEEDS:
        raise TrainingError(f"feed must be auto, device or host, not {mode!r}")
    if mode == "auto":
        mode = "device" if frames.nbytes <= device_budget(mesh.devices.flat) else "host"
    if mode == "device":
        return DeviceFeed(frames, mesh, batch_sharding)
    return HostFeed(frames, batch_sharding)
