"""Byte counts as people read them, one way everywhere the tool says a size."""

from __future__ import annotations

_UNITS = ("kB", "MB", "GB", "TB")


def readable_size(n_bytes: int) -> str:
    """'850 B', '97.4 kB', '12.2 MB': decimal units, as file managers and
    download pages give them, so the figure matches what a user sees there.
    One decimal, enough to tell two encodes apart."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    value, unit = n_bytes / 1000, _UNITS[0]
    for bigger in _UNITS[1:]:
        if round(value, 1) < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"
