"""Where framecolor keeps what it can rebuild: decoded training frames and compiled programs."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir(environ=os.environ) -> Path:
    """$FRAMECOLOR_CACHE, else $XDG_CACHE_HOME/framecolor, else ~/.cache/framecolor.

    Kept free of heavy imports: the command line asks for it before JAX loads.
    """
    if environ.get("FRAMECOLOR_CACHE"):
        return Path(environ["FRAMECOLOR_CACHE"])
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "framecolor"
