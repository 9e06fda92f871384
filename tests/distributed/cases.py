"""The data and fits shared by the rank workers (_worker.py) and the single-process references.

A case is its fit's keyword arguments and how the ranks get their data:

* ``data="shared"`` (default): every rank passes the whole of :func:`data`;
* ``data="stream"``: every rank passes the same list of 8 batches (rank_data="shared": global step k
  is batches 2k and 2k + 1);
* ``data="strided"``: rank r passes data()[d::D], d its data group (the DDP convention);
* ``data="uneven"``: rank 0 the first 230 rows, rank 1 the other 170;
* ``data="uneven_stream"``: each rank its half of the 8 batches, rank 0 one more;
* ``data="shards"``: the same directory of 5 uneven shards on every rank (dealt out by shards).

:func:`reference` gives what one process must fit to learn the same dictionary.
"""
from __future__ import annotations

import numpy as np

N, P_FEATURES = 400, 24

# cd to a tight gap: its rows are solved independently, so a rank's rows get the codes they
# get inside the whole batch, and the dictionaries agree to float rounding.
COMMON = dict(n_atoms=16, alpha=0.3, solver="cd", tol=1e-8)
# Atom sharding runs FISTA or LCA for exactly max_iter iterations (tol below any gap), so every
# rank's iterations are the single process's whatever the rounding of the certificates.
ATOMS = dict(alpha=0.3, tol=1e-14, max_iter=20, batch_size=100, n_epochs=1, n_atoms=36, shard="atoms")
# The shard directory's shards (rows of data()), uneven so that whole shards deal unevenly.
SHARD_ROWS = [(0, 70), (70, 150), (150, 260), (260, 300), (300, 400)]

CASES = {  # on 2 ranks
    # A high alpha leaves atoms unused, and dead_after below one step's rows resamples them (from
    # inputs gathered from both ranks) in every step.
    "online": dict(kwargs=dict(COMMON, alpha=6.0, update="online", batch_size=100, n_epochs=2, seed=1,
                                dead_after=100)),
    "sgd_iterable": dict(kwargs=dict(COMMON, update="sgd", seed=2, rank_data="shared"), data="stream"),
    "online_resume": dict(kwargs=dict(COMMON, update="online", batch_size=100, n_epochs=2, seed=3), resume_after=3),
    # Full-batch mod warm-starts every step from the last codes, which the checkpoint gathers.
    "mod_resume": dict(kwargs=dict(COMMON, update="mod", n_epochs=4, seed=4), resume_after=2),
    # center=True: an array's mean from the same seeded rows on every rank; an iterable's running mean
    # all-reduced over the ranks' batches (frozen after the second global step's 200 rows).
    "center_array": dict(kwargs=dict(COMMON, update="online", batch_size=100, seed=5, center=True,
                                     center_samples=300)),
    "center_iterable": dict(kwargs=dict(COMMON, update="sgd", seed=6, center=True, center_samples=150,
                                        rank_data="shared"), data="stream"),
    # Each rank its own data (rank_data="auto" detects it).
    "local_strided": dict(kwargs=dict(COMMON, update="online", batch_size=100, n_epochs=2, seed=7, shuffle=False),
                          data="strided"),
    # uneven shares, each rank's own order, resampling from gathered inputs, and the mean of the union
    "local_uneven": dict(kwargs=dict(COMMON, alpha=6.0, update="online", batch_size=100, n_epochs=2, seed=8,
                                     dead_after=100, center=True), data="uneven"),
    "local_stream": dict(kwargs=dict(COMMON, update="sgd", n_epochs=2, seed=9), data="uneven_stream"),
    "local_resume": dict(kwargs=dict(COMMON, update="online", batch_size=100, n_epochs=2, seed=10), data="uneven",
                         resume_after=3),
    "shards": dict(kwargs=dict(COMMON, update="online", batch_size=64, n_epochs=2, seed=11), data="shards"),
    # Atom sharding: 18 atoms a rank; 17 atoms in blocks of 9 and 8 (with resampling)
    "atoms_online_fista": dict(kwargs=dict(ATOMS, update="online", solver="fista", seed=12)),
    "atoms_sgd_lca": dict(kwargs=dict(ATOMS, update="sgd", solver="lca", seed=13)),
    "atoms_uneven": dict(kwargs=dict(ATOMS, n_atoms=17, alpha=6.0, dead_after=100, update="online",
                                     solver="fista", seed=14)),
    "atoms_resume": dict(kwargs=dict(ATOMS, update="online", solver="lca", n_epochs=2, seed=15), resume_after=3),
}

GRID_CASES = {  # on 4 ranks
    "grid_atoms4": dict(kwargs=dict(ATOMS, n_atoms=37, alpha=3.0, dead_after=100, update="online", solver="lca",
                                    seed=21)),
    "grid_2x2": dict(kwargs=dict(ATOMS, atom_shards=2, update="online", solver="fista", seed=22)),
    "grid_2x2_local": dict(kwargs=dict(ATOMS, atom_shards=2, update="sgd", solver="fista", seed=23, shuffle=False),
                           data="strided"),
    "grid_2x2_resume": dict(kwargs=dict(ATOMS, atom_shards=2, update="online", solver="fista", n_epochs=2, seed=24),
                            resume_after=3),
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


def data_groups(case, world):
    """How many data groups the case's ``world`` ranks form (atom_shards ranks share one)."""
    return world // case["kwargs"].get("atom_shards", world if case["kwargs"].get("shard") == "atoms" else 1)


def rank_data(case, rank, world, shard_dir=None):
    """What rank ``rank`` of ``world`` passes to fit."""
    kind = case.get("data", "shared")
    groups = data_groups(case, world)
    d = rank // (world // groups)
    X = data()
    if kind == "shared":
        return X
    if kind == "stream":
        return iterable_batches()
    if kind == "strided":
        return X[d::groups]
    if kind == "uneven":
        return X[:230] if d == 0 else X[230:]
    if kind == "uneven_stream":
        return iterable_batches()[d::groups] + ([X[:50]] if d == 0 else [])
    if kind == "shards":
        return str(shard_dir)
    raise ValueError(kind)


def write_shards(directory):
    X = data()
    for i, (lo, hi) in enumerate(SHARD_ROWS):
        np.save(directory / f"s{i}.npy", X[lo:hi])
    return directory


def reference(case, world, shard_dir=None):
    """(X, keyword arguments) of the single-process fit that sees the ranks' global batches."""
    import sparsolve.data

    kwargs = {k: v for k, v in case["kwargs"].items() if k not in ("shard", "atom_shards", "rank_data")}
    kind = case.get("data", "shared")
    groups = data_groups(case, world)
    X = data()
    if kind == "shared":
        return X, kwargs
    if kind == "stream":
        return global_batches(world), kwargs
    if kind == "strided":  # the rows in the order the ranks gather them: each step rank 0's, then rank 1's
        b = kwargs["batch_size"]
        order = np.arange(N).reshape(-1, b // groups, groups).transpose(0, 2, 1).ravel()
        return X[order], kwargs
    epochs = kwargs.pop("n_epochs")
    if kind == "uneven_stream":
        parts = [rank_data(case, d * (world // groups), world) for d in range(groups)]
        steps = min(map(len, parts))
        batches = [np.concatenate([p[k] for p in parts]) for k in range(steps)]
        return batches * epochs, dict(kwargs, max_steps=steps * epochs)
    entropy = int(np.random.SeedSequence(kwargs["seed"]).entropy)
    bs = kwargs["batch_size"]  # kept: dead_after's default reads it
    batches = []
    for epoch in range(epochs):
        if kind == "shards":
            streams = [sparsolve.data.ShardStream(shard_dir, bs, seed=entropy % (1 << 63), rank=r, ranks=groups)
                       for r in range(groups)]
            for s in streams:
                s.epoch = epoch
            batches += [np.concatenate(parts) for parts in zip(*streams)]
            continue
        parts = [rank_data(case, d * (world // groups), world) for d in range(groups)]
        K = -(-N // bs)
        orders = [np.random.default_rng([entropy, 1, epoch, d]).permutation(len(p)) for d, p in enumerate(parts)]

        def cut(k, n):
            return n if k >= K else k * bs * n // N

        batches += [np.concatenate([p[np.sort(o[cut(k, len(p)):cut(k + 1, len(p))])] for p, o in zip(parts, orders)])
                    for k in range(K)]
    if kwargs.get("center"):  # the offset of the union: every row's mean (N ≤ center_samples)
        mean = X.mean(axis=0)
        batches = [b - mean for b in batches]
        kwargs.pop("center")
    return batches, dict(kwargs, max_steps=len(batches))
