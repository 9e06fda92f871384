"""``norm="none"``: nothing holds the norms -- the ablation that lets the L1 cheat show in the history
(the atoms grow at every step while the codes' L1 falls and the reconstruction holds).  A resampled
atom takes the mean norm of its live peers, the scale they have settled at."""
from __future__ import annotations

from .base import NormRule, live_mean_norm, rescaled


class NoRule(NormRule):
    name = "none"
    summary = "the ablation: nothing holds the norms"
    projects = False

    def project(self, D, previous=None):
        return rescaled(D, None, previous)

    resample_scale = staticmethod(live_mean_norm)
