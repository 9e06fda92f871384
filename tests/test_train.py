"""amortized/train.py on the shared config and loop: deprecated spellings, Ctrl-C, other data."""
import numpy as np
import pytest

import sparsolve
from sparsolve.data import natural_image_patches

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def X_small():
    return natural_image_patches(8, 400, seed=5)


KW = dict(t_star=1, mode="autoencoder", n_atoms=8, alpha=0.05, batch_size=100, progress=False, seed=0)


def test_signed_is_deprecated_for_positive(X_small):
    with pytest.warns(DeprecationWarning, match="positive=not signed"):
        model = sparsolve.fit_amortized(X_small, signed=True, max_steps=1, **KW)
    assert model.signed


def test_norm_penalty_is_deprecated_for_inverse_penalty(X_small):
    with pytest.warns(DeprecationWarning, match="inverse_penalty"):
        old = sparsolve.fit_amortized(X_small, norm="penalty", beta=1e-2, max_steps=3, **KW)
    new = sparsolve.fit_amortized(X_small, norm="inverse_penalty", beta=1e-2, max_steps=3, **KW)
    np.testing.assert_allclose(old.history_["loss"], new.history_["loss"])


def test_keyboard_interrupt_saves_a_checkpoint(X_small, tmp_path, ctrl_c_at):
    ckpt = tmp_path / "enc.npz"
    with pytest.raises(KeyboardInterrupt):
        sparsolve.fit_amortized(X_small, max_steps=6, checkpoint=ckpt, callback=ctrl_c_at(2), **KW)
    meta = sparsolve.io.load_npz(ckpt)[1]
    assert meta["step"] == 2
    resumed = sparsolve.fit_amortized(X_small, max_steps=4, checkpoint=ckpt, **KW)
    assert resumed.history_["step"] == [1, 2, 3, 4]


def test_resume_on_other_data_is_refused(X_small, tmp_path):
    ckpt = tmp_path / "enc.npz"
    sparsolve.fit_amortized(X_small, max_steps=1, checkpoint=ckpt, **KW)
    with pytest.raises(ValueError, match="other data"):
        sparsolve.fit_amortized(X_small[::-1].copy(), max_steps=2, checkpoint=ckpt, **KW)
