"""fit_conv data-parallel on 2 gloo ranks (each a subprocess under a time limit): the reducer that fit
uses splits every batch between the ranks and sums the statistics, so both ranks learn the filters a
single process learns on the same batches, to float rounding."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sparsolve.conv import fit_conv

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(n_filters=3, filter_size=5, alpha=0.1, batch_size=6, n_epochs=2, seed=4, progress=False)

WORKER = textwrap.dedent("""
    import sys
    from datetime import timedelta
    import numpy as np
    import torch.distributed as dist
    from sparsolve.conv import fit_conv
    rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    X = np.load(f"{out}/X.npy")
    model = fit_conv(X, checkpoint=f"{out}/ck.npz", **eval(sys.argv[4]))
    np.savez(f"{out}/rank{rank}.npz", filters=model.filters, objective=np.array(model.history["objective"]),
             samples=np.array(model.history["samples_seen"]))
    dist.destroy_process_group()
""")


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((24, 1, 40))


@pytest.mark.slow
def test_two_ranks_learn_the_filters_of_one_process(tmp_path):
    X = _data()
    np.save(tmp_path / "X.npy", X)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(tmp_path / "rendezvous"), str(tmp_path),
                               repr(SETTINGS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    try:
        for r, p in enumerate(procs):
            output = p.communicate(timeout=240)[0]
            assert p.returncode == 0, f"rank {r} failed:\n{output[-3000:]}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    single = fit_conv(X, **SETTINGS)
    for r in (0, 1):
        saved = np.load(tmp_path / f"rank{r}.npz")
        np.testing.assert_allclose(saved["filters"], single.filters, atol=1e-8)
        np.testing.assert_allclose(saved["objective"], single.history["objective"], rtol=1e-9)
        np.testing.assert_array_equal(saved["samples"], single.history["samples_seen"])
    assert (tmp_path / "ck.npz").exists()  # rank 0 wrote the checkpoint
