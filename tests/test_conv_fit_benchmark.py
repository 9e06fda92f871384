"""benchmarks/conv_fit.py's reading of the curves: the time fit_conv takes to reach SPORCO's final held-out
objective is that of its first snapshot at or below it, even where the curve between its points does not fall
steadily."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import conv_fit  # noqa: E402


@pytest.fixture
def objectives(monkeypatch):
    """Snapshots whose "filters" are their index; the held-out objective a table lookup that counts its calls."""
    values = [9.0, 8.0, 7.0, 6.5, 6.0, 5.0, 4.8, 4.7, 4.9, 4.6, 4.5]
    calls = []

    def held_out(X, D, init=None):
        calls.append(D)
        return values[D], None

    monkeypatch.setattr(conv_fit, "held_out_objective", held_out)
    snaps = [(10.0 * (i + 1), i) for i in range(len(values))]
    return values, snaps, calls


def points(values, snaps, idx):
    return [(snaps[i][0], values[i], i + 1) for i in idx]


@pytest.mark.parametrize("target, first", [(6.0, 4), (6.2, 4), (4.85, 6), (4.65, 9), (9.0, 0), (4.5, 10)])
def test_first_below_is_the_first_snapshot_at_or_below(objectives, target, first):
    values, snaps, calls = objectives
    curve = points(values, snaps, [0, 5, 10])
    t, f, step = conv_fit.first_below(snaps, None, curve, target)
    assert (t, f, step) == (snaps[first][0], values[first], first + 1)
    assert set(calls) <= set(range(first + 1)) - {0, 5, 10}  # only snapshots before it, not the curve's


def test_first_below_is_none_when_no_curve_point_reaches_the_target(objectives):
    values, snaps, calls = objectives
    # the snapshot at index 10 reaches 4.5, but the curve's points stop short of it
    assert conv_fit.first_below(snaps, None, points(values, snaps, [0, 5, 9]), 4.5) is None
    assert calls == []
