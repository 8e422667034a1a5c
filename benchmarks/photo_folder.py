"""Wall time of `framecolor apply PHOTO_DIR OUT_DIR`, this tree against a baseline commit.

    python benchmarks/photo_folder.py --photos ../shared/data/imagenet-samples \
        --limit 200 --baseline 2ae1cd0 --out benchmarks/results/cpu-photo-folder.json

A folder of photos costs mostly compiles (one per render shape and, before
canvases, one per photo size) and then the photos themselves, so each tree
is timed twice over: a cold run with an empty compilation cache, then warm
runs on the cache it filled. The warm runs of the two trees alternate, so
both see the same machine at about the same moment. Each run is a whole
CLI process, start-up included, as a user sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _photo_subset(photos: Path, limit: int, into: Path) -> Path:
    """The first `limit` photos of `photos` (by name), linked into a folder of their own."""
    sys.path.insert(0, str(REPO))
    from framecolor import video

    into.mkdir()
    for path in video.list_images(photos)[:limit]:
        (into / path.name).symlink_to(path.resolve())
    return into


def _check_imports(tree: Path, cwd: Path) -> None:
    """PYTHONPATH=tree must import that tree's framecolor, not an installed one."""
    imported = subprocess.run([sys.executable, "-c", "import framecolor; print(framecolor.__file__)"],
                              env={**os.environ, "PYTHONPATH": str(tree)}, cwd=cwd, check=True,
                              capture_output=True, text=True).stdout.strip()
    if not Path(imported).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"PYTHONPATH={tree} imports {imported}, not that tree's framecolor")


def _run_cli(tree: Path, photos: Path, out: Path, cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    started = time.perf_counter()
    # cwd outside both trees, so that PYTHONPATH alone decides which framecolor runs.
    subprocess.run([sys.executable, "-m", "framecolor", "apply", str(photos), str(out), "--quiet"],
                   env=env, cwd=out.parent, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(photos: Path, limit: int, baseline: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="photo-bench-") as tmp:
        tmp = Path(tmp)
        subset = _photo_subset(photos, limit, tmp / "photos")
        base_tree = tmp / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base_tree), baseline],
                       check=True)
        try:
            trees = {"baseline": base_tree, "this tree": REPO}
            for tree in trees.values():
                _check_imports(tree, tmp)
            runs: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in trees}

            def timed(name: str, kind: str) -> None:
                out = tmp / "out"
                shutil.rmtree(out, ignore_errors=True)
                seconds = _run_cli(trees[name], subset, out, tmp / f"cache-{name.replace(' ', '-')}")
                runs[name][kind].append(seconds)
                print(f"{name:10s} {kind}: {seconds:6.1f} s", flush=True)

            for name in trees:
                timed(name, "cold")
            for _ in range(repeats):
                for name in trees:
                    timed(name, "warm")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)], check=False)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    return {"photos": str(photos), "limit": limit, "baseline": baseline, "head": head, "repeats": repeats,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "seconds": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of photos")
    parser.add_argument("--limit", type=int, default=200, help="the first N photos by name")
    parser.add_argument("--baseline", required=True, help="the commit to compare with (git rev)")
    parser.add_argument("--repeats", type=int, default=2, help="warm runs per tree, alternated")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    result = measure(args.photos, args.limit, args.baseline, args.repeats)
    for name, kinds in result["seconds"].items():
        print(f"{name}: cold {kinds['cold'][0]:.1f} s, warm "
              + " / ".join(f"{s:.1f}" for s in kinds["warm"]) + " s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # not a traceback after the run
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    from script_errors import main_saying_errors  # a sibling module: this folder is on sys.path when run as a script

    main_saying_errors(main)
