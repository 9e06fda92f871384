"""Argument checks shared by the public entry points, so every one words its errors alike."""
from __future__ import annotations

import math
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


def optional(value, check, name: str):
    """None, or ``value`` passed by ``check(value, name)``."""
    return None if value is None else check(value, name)


def seed(value, name: str = "seed"):
    """``value`` as an int seed ≥ 0, or None: a TypeError for anything else (bools, floats, strings),
    a ValueError below 0 (numpy's SeedSequence takes none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be an integer ≥ 0 or None, got {value}")
    return int(value)


def boolean(value, name: str) -> bool:
    """``value`` if it is True or False, else a TypeError naming the argument (no truthiness:
    a string such as "no" would read as True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def choice(value, name: str, choices):
    """``value`` if it is one of ``choices``, else a ValueError that names the argument and
    lists what it may be."""
    try:
        known = any(value is c or (type(value) is type(c) and value == c) for c in choices)
    except (TypeError, ValueError):  # an array compares element-wise: never a valid choice
        known = False
    if not known:
        shown = sorted(choices) if all(isinstance(c, str) for c in choices) else list(choices)
        raise ValueError(f"{name}={value!r} is not known; choose one of {shown}")
    return value


def _real(value, name: str, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number {rule}, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {rule}, got {value}")
    return value


def nonnegative_float(value, name: str) -> float:
    """``value`` as a finite float ≥ 0; NaN, ±inf, negatives and non-numbers are refused."""
    value = _real(value, name, "≥ 0")
    if value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
    return value


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0; NaN, ±inf, zero, negatives and non-numbers are refused."""
    value = _real(value, name, "> 0")
    if value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def finite_rows(is_finite_per_row, name: str, what: str = "rows") -> None:
    """Raise a ValueError naming the first non-finite row.

    ``is_finite_per_row`` is a host (numpy) boolean vector, one entry a row; the caller
    computes it with its own array library so that only a vector crosses to the host."""
    import numpy as np

    ok = np.asarray(is_finite_per_row, dtype=bool)
    if not ok.all():
        bad = int(np.argmin(ok))
        raise ValueError(
            f"{name} has NaN or Inf values (first in {what[:-1] if what.endswith('s') else what} {bad}); "
            f"drop or impute those {what} first"
        )
