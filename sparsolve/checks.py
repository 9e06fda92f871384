"""Argument checks shared by the public entry points, so every one words its errors alike."""
from __future__ import annotations

import numbers


def positive_int(value, name: str, what: str = "", *, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``: a TypeError for anything but an integer (bools
    included), a ValueError below the minimum; both name the argument and what it means."""
    meaning = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ≥ {minimum}{meaning}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}{meaning}, got {value}")
    return int(value)
