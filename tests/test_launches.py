"""Kernel launches of a fit step on the GPU path, counted on CPU torch (tests/launch_counts.py).

On a GPU each torch operation is one launch, and at small batches the launches set fit's speed
(benchmarks/launches.py).  These pin the counts that are properties of the code, not of the data:
the update and the bookkeeping of a step, which do not depend on the batch size, a certificate of
the encode loop, FISTA's fused iteration, and one online pass.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from launch_counts import BOOKKEEPING, INFERENCE, UPDATE, Launches, gpu_path, phase  # noqa: E402  (needs torch)

import sparsolve  # noqa: E402
from sparsolve.config import FitConfig  # noqa: E402
from sparsolve.inference import fista, loop  # noqa: E402
from sparsolve.rules import norm_rule  # noqa: E402
from sparsolve.rules import online as updates  # noqa: E402
from sparsolve.learning.fit import new_learner  # noqa: E402

# Launches of one step on the GPU path (update "online" under "unit"; 2 blocks of 64 atoms), before
# → after the reductions of benchmarks/launches.py (RESULTS.md, "Kernel launches per fit step").
# blocks × 10, the pass's set-up, the copy of D, statistics, norm rule: 62 before.  The norm rule
# and the tangent compute ‖d_j‖² of the step's D themselves (2 launches each): a copy kept from the
# last record went stale when a callback or components_ changed D in place
UPDATE_ONLINE = 2 * 10 + 6 + 1 + 10 + 11
UPDATE_SGD = 2 + 8 + 13 + 11  # gradient and its tangent, Adam, norm rule: 37 before
# record 20, finite checks 4, dead atoms 5, residual 4, and the host read of two steps' records shared
# out (2 a record, 3 a read and its copy): 49.5 before
BOOKKEEPING_STEP = 38
CERTIFICATE = 28  # factored form, no positivity: 36 before
ITERATION = 4  # factored form: (x − zD)Dᵀ is three, the fused FISTA update one


def patches(n, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((n, 64)).astype(np.float32))


def step_launches(batch, update="online", steps=2):
    """{phase: launches per step} of steps 2.. of a learner on the GPU path, and the iterations."""
    X = patches(batch * (steps + 1))
    config = FitConfig(128, 0.5, solver="fista", update=update, batch_size=batch, max_iter=20, tol=1e-3, seed=0)
    calls = {"iterations": 0}
    step = fista.FISTA.step

    def counted(self, *args):
        calls["iterations"] += 1
        return step(self, *args)

    with gpu_path(), pytest.MonkeyPatch.context() as patch:
        learner = new_learner(X[:batch], config.resolved(X.shape[0]))
        learner.step(X[:batch])
        patch.setattr(fista.FISTA, "step", counted)
        with Launches(label=phase) as counter:
            for i in range(1, steps + 1):
                learner.step(X[i * batch:(i + 1) * batch], index=i)
            learner.sync()  # the host read of the steps' records (every 16th step on a GPU), shared out
    by = {}
    for (ph, part), v in counter.by.items():
        by[ph] = by.get(ph, 0) + v / steps
        by[(ph, part)] = v / steps
    return by, calls["iterations"] / steps, learner


@pytest.mark.parametrize("update", ["online", "sgd"])
def test_the_update_and_bookkeeping_of_a_step_do_not_depend_on_the_batch(update):
    small, _, _ = step_launches(64, update)
    large, _, _ = step_launches(256, update)
    assert small[UPDATE] == large[UPDATE] and small[BOOKKEEPING] == large[BOOKKEEPING]
    assert small[UPDATE] <= (UPDATE_ONLINE if update == "online" else UPDATE_SGD)
    assert small[BOOKKEEPING] <= BOOKKEEPING_STEP


def test_a_fista_iteration_and_a_certificate():
    by, iterations, _ = step_launches(64)
    assert iterations > 0
    assert by[(INFERENCE, "iteration")] / iterations == ITERATION  # the fused step: one launch for the update

    X = patches(256, seed=1)
    D = patches(128, seed=2)
    D /= D.norm(dim=1, keepdim=True)
    certify = loop._certify
    seen = []

    def counted(*args):
        before = sum(c.count for c in Launches.active)
        out = certify(*args)
        seen.append(sum(c.count for c in Launches.active) - before)
        return out

    with gpu_path(), pytest.MonkeyPatch.context() as patch, Launches(), warnings.catch_warnings():
        warnings.simplefilter("ignore", sparsolve.ConvergenceWarning)  # 40 iterations: certificates, not answers
        patch.setattr(loop, "_certify", counted)
        sparsolve.encode(X, D, 0.5, solver="fista", tol=1e-3, max_iter=40, form="factored")
    assert len(seen) >= 3 and max(seen) <= CERTIFICATE  # the first, without the divergence test, is three fewer


@pytest.mark.parametrize("m,block", [(256, 64), (200, 64)])
def test_an_online_pass_is_ten_launches_a_block(m, block):
    rng = np.random.default_rng(0)
    D = torch.from_numpy(rng.standard_normal((m, 32)))
    Z = torch.from_numpy(np.abs(rng.standard_normal((4 * m, m))) * (rng.random((4 * m, m)) < 0.1))
    A, B = updates.batch_statistics(Z @ D, Z)
    with gpu_path(), Launches() as counter:
        new = updates.online_blocked(D, A, B, norm_rule("unit"), 0.0, block=block)
    # D's copy, used, where, reciprocal, the couplings of the full blocks (3), a short block's (3): 16 a
    # block before
    assert counter.count == 10 * math.ceil(m / block) + 7 + (3 if m % block else 0)
    reference = updates.online(D.numpy(), A.numpy(), B.numpy(), norm_rule("unit"), 0.0)
    np.testing.assert_allclose(new.numpy(), reference, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(new.numpy(), axis=1), 1.0)
