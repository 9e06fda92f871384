"""``norm="penalty"``: no projection; the dictionary loss gains the weight decay β Σ_j ‖d_j‖².

The decay prices the cheat: over the scale c of an atom, α‖z‖₁/c + β c²‖d‖² has a finite
minimiser, so the norms settle.  Its curvature 2β enters every update (``decay``): the online
pass's divisor Ā_jj + 2β, sgd's gradient term 2β·D, mod's ridge (A + 2β·I).  Otherwise it is
``"none"``: nothing projected, and a resampled atom takes its live peers' mean norm.
"""
from __future__ import annotations

from .none import NoRule


class Penalty(NoRule):
    name = "penalty"
    summary = "weight decay β Σ‖d‖²"

    def decay(self, beta) -> float:
        return 2.0 * float(beta)
