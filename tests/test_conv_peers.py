"""encode_conv against the peers of convolutional sparse coding, by their own code: SPORCO's ConvBPDN
(2-D, circular) and alphacsc's z-step (1-D, valid, z ≥ 0) solve the same lasso, so both reach our codes
and our certificate.  Skipped where the peers are not installed (pip install -e ".[peers]")."""
from __future__ import annotations

import numpy as np
import pytest

from sparsolve.conv import duality_gap, encode_conv, objective


def _unit(D):
    return D / np.sqrt((D ** 2).sum(axis=tuple(range(1, D.ndim)), keepdims=True))


def test_sporco_convbpdn_solves_our_circular_lasso():
    cbpdn = pytest.importorskip("sporco.admm.cbpdn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 1, 16, 16))
    D = _unit(rng.standard_normal((5, 1, 4, 4)))
    alpha = 0.5
    # its autorho ADMM reaches a gap of ~2e-5 here by 300 iterations and then wanders (1e-4 to 1e-3 at 400)
    opt = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": 300, "RelStopTol": 1e-10})
    Y = cbpdn.ConvBPDN(np.moveaxis(D[:, 0], 0, -1).copy(), np.moveaxis(X[:, 0], 0, -1).copy(), alpha, opt,
                       dimK=1).solve()
    theirs = np.transpose(Y[:, :, 0], (2, 3, 0, 1))  # (H, W, 1, N, K) -> (N, K, H, W)
    ours = encode_conv(X, D, alpha, boundary="circular", solver="admm", tol=1e-10, max_iter=50000)
    gap, F = duality_gap(X, D, theirs, alpha, "circular")
    assert (gap <= 1e-3 * F).all()  # SPORCO's codes are certified by our gap: the same problem
    F_ours = objective(X, D, ours, alpha, "circular")
    assert (F_ours <= F * (1 + 1e-9)).all() and (F <= F_ours * (1 + 1e-3)).all()


def test_alphacsc_lgcd_solves_our_valid_nonnegative_lasso():
    update_z_multi = pytest.importorskip("alphacsc.update_z_multi")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 2, 64))
    D = _unit(rng.standard_normal((4, 2, 7)))
    alpha = 0.3
    theirs, _, _ = update_z_multi.update_z_multi(X, D, alpha, solver="lgcd", solver_kwargs={"tol": 1e-12},
                                                 positive=True)
    ours = encode_conv(X, D, alpha, boundary="valid", solver="cd", positive=True, tol=1e-12, max_iter=100000)
    gap, F = duality_gap(X, D, theirs, alpha, "valid", positive=True)
    assert (gap <= 1e-6 * F).all()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
