"""Dead atoms: detection and the resampling policy.

An atom is *dead* once no code has used it (z_j ≠ 0) for ``dead_after``
consecutive training samples (FitConfig.dead_after, whose default is long
enough that a rarely used but live atom is not mistaken for a dead one).

Policy, applied after the dictionary update of a step when ``resample_dead`` is on:
each dead atom is replaced by an input x_i of the current batch, drawn without
replacement with probability ∝ ‖x_i − z_i D‖² (the inputs the dictionary explains
worst are the likeliest), made an atom by the norm rule (``NormRule.new_atoms``: scaled to
norm 1, or under the ``"penalty"`` and ``"none"`` rules to the mean norm of the live atoms).
Its idle counter restarts, and the update rule starts its state afresh (``reset_atoms``: the
online rule zeroes its rows and columns of the running statistics, so that the pass does not
pull it back to the atom it replaced).  At most one atom per
usable input is replaced in a step; the rest wait for the next batch.

When.  Dead atoms are looked for only at the steps that read the device anyway (every
``sync_every`` steps, by step count: learner.py), so a GPU run does not read the idle
counts at every step once a batch is a sizeable share of ``dead_after``.  An atom that
dies between two such steps waits at most ``sync_every − 1`` steps for its replacement.
That is harmless: it has already waited ``dead_after`` samples (at least two batches by
default), it is unused meanwhile, so its codes are zero and it changes no other atom's
code or update.  With ``sync_every=1`` (the host default) the atom is replaced at the
step its count reaches ``dead_after``.
"""
from __future__ import annotations

import numpy as np

from .. import backend


class IdleCounter:
    """Samples since each atom was last used, kept beside the codes (on their device), and
    ``bound``: a host ceiling on the largest count, raised by every batch's rows and lowered
    only by a read of the counts (:meth:`settle`).  While ``bound < dead_after`` no atom can be
    dead, so a step needs no read of the device to know that there is nothing to resample."""

    def __init__(self, n_atoms, dead_after, idle=None):
        self.dead_after = int(dead_after)
        self.idle = np.zeros(n_atoms, dtype=np.int64) if idle is None else np.asarray(idle, np.int64).copy()
        self.bound = int(self.idle.max(initial=0))

    def observe(self, used, n_samples):
        """``used``: boolean (n_atoms,) -- which atoms some code of the batch used (any device)."""
        if not backend.same_place(self.idle, used):
            self.idle = backend.like(backend.to_numpy(self.idle), used)
        self.idle = backend.namespace(used).where(used, 0, self.idle + n_samples)
        self.bound += int(n_samples)

    def may_be_dead(self):
        return self.bound >= self.dead_after

    def dead(self):
        """The dead mask, where the counts are (no read)."""
        return self.idle >= self.dead_after

    def settle(self, largest):
        """``largest``: the largest count, read from the device with other figures; ``bound``
        becomes exact."""
        self.bound = int(largest)

    def reset(self, atoms):
        """Restart the counts of ``atoms`` (host indices); ``bound`` stays a ceiling."""
        self.idle[backend.like(atoms, self.idle)] = 0


def resample(D, X, r2, dead, rng, norm):
    """(D with the dead rows replaced, indices of the replaced atoms); see the module policy.
    ``norm``: the run's NormRule.  One read of the device (the residuals r2), two under the
    "penalty" and "none" rules (the atom norms)."""
    atoms = np.flatnonzero(dead)
    weights = backend.to_numpy(r2).astype(np.float64)
    usable = np.flatnonzero(weights > 0)
    k = min(atoms.size, usable.size)
    if k == 0:
        return D, atoms[:0]
    atoms = atoms[:k]
    rows = rng.choice(usable, size=k, replace=False, p=weights[usable] / weights[usable].sum())
    new = norm.new_atoms(X[backend.like(rows, X)], D, atoms)
    D = D + 0
    D[backend.like(atoms, D)] = backend.astype(new, backend.dtype_name(D))
    return D, atoms
