"""The data and fits shared by the 2-rank worker (_worker.py) and the single-process references."""
from __future__ import annotations

import numpy as np

N, P_FEATURES = 400, 24

# cd to a tight gap: its rows are solved independently, so a rank's rows get the codes they
# get inside the whole batch, and the dictionaries agree to float rounding.
COMMON = dict(n_atoms=16, alpha=0.3, solver="cd", tol=1e-8)
CASES = {
    # A high alpha leaves atoms unused, and dead_after below one step's rows resamples them (from
    # inputs gathered from both ranks) in every step.
    "online": dict(kwargs=dict(COMMON, alpha=6.0, update="online", batch_size=100, n_epochs=2, seed=1,
                                dead_after=100)),
    "sgd_iterable": dict(kwargs=dict(COMMON, update="sgd", seed=2), iterable=True),
    "online_resume": dict(kwargs=dict(COMMON, update="online", batch_size=100, n_epochs=2, seed=3), resume_after=3),
    # Full-batch mod warm-starts every step from the last codes, which the checkpoint gathers.
    "mod_resume": dict(kwargs=dict(COMMON, update="mod", n_epochs=4, seed=4), resume_after=2),
    # center=True: an array's mean from the same seeded rows on every rank; an iterable's running mean
    # all-reduced over the ranks' batches (frozen after the second global step's 200 rows).
    "center_array": dict(kwargs=dict(COMMON, update="online", batch_size=100, seed=5, center=True,
                                     center_samples=300)),
    "center_iterable": dict(kwargs=dict(COMMON, update="sgd", seed=6, center=True, center_samples=150),
                            iterable=True),
}
# The GPU case: FISTA (cd runs on the host) to a tight gap, rows again solved independently.
GPU_KWARGS = dict(CASES["online"]["kwargs"], solver="fista", max_iter=20000)


def data():
    """Sparse combinations of 32 planted atoms plus noise, (N, P_FEATURES) float64."""
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((32, P_FEATURES))
    codes = rng.standard_normal((N, 32)) * (rng.random((N, 32)) < 0.1)
    return codes @ atoms + 0.05 * rng.standard_normal((N, P_FEATURES))


def iterable_batches():
    """The data as 8 batches of 50 rows: on 2 ranks, global step k is batches 2k and 2k + 1."""
    return list(np.split(data(), 8))


def global_batches(world_size):
    """What one process must see to match ``world_size`` ranks on :func:`iterable_batches`."""
    b = iterable_batches()
    return [np.concatenate(b[i:i + world_size]) for i in range(0, len(b), world_size)]
