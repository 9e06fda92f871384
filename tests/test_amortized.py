"""The learned-G encoder (sparsolve.LearnedG) and its training (sparsolve.fit_amortized).

Data are real 8×8 natural-image patches; the dictionary is conftest's ``D_learned``
(64 atoms) and α its ``ALPHA``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.config import AmortizedConfig
from sparsolve.data import natural_image_patches
from sparsolve.io import ModelFileError, save_npz


@pytest.fixture(scope="module")
def X_train():
    return natural_image_patches(patch_size=8, n_patches=1024, seed=3)


def _random_module(t_star, gamma=1.0, signed=False):
    """A LearnedG with every parameter nonzero, so that each one shows up in the output."""
    torch.manual_seed(0)
    model = sparsolve.LearnedG(64, 32, t_star, gamma=gamma, signed=signed, dtype=torch.float64, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return model


# ------------------------------------------------------------------ the LCA initialisation

@pytest.mark.parametrize("t_star", [0, 1, 7, 60])
@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_from_dictionary_is_nonneg_lca(X, D_learned, alpha, t_star):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, t_star)
    Z_lca = sparsolve.encode(X, D_learned, alpha, solver="lca", positive=True, max_iter=t_star, tol=0,
                             accelerate=False)  # the seed's dynamics, which LearnedG implements
    # encode's LCA forms c(z) + z in the Gram form, the encoder μ₀ − Gz: equal up to rounding
    np.testing.assert_allclose(model.encode(X), Z_lca, atol=1e-8)
    assert (Z_lca > 0).any()


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_from_dictionary_gamma_is_passed_on(X, D_learned, alpha):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 9, gamma=0.02)
    Z_lca = sparsolve.encode(X, D_learned, alpha, solver="lca", positive=True, max_iter=9, tol=0, gamma=0.02,
                             accelerate=False)
    np.testing.assert_allclose(model.encode(X), Z_lca, atol=1e-8)
    assert float(model.gamma) == pytest.approx(0.02)


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
@pytest.mark.parametrize("signed", [False, True])
def test_ista_scheme_is_ista(X, D_learned, alpha, signed):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 6, signed=signed, scheme="ista")
    assert float(model.gamma) == 1.0
    Z_ista = sparsolve.encode(X, D_learned, alpha, solver="ista", positive=not signed, max_iter=7, tol=0)
    np.testing.assert_allclose(model.encode(X), Z_ista, atol=1e-10)
    assert (Z_ista != 0).any()
    with pytest.raises(ValueError, match="scheme='fista'"):
        sparsolve.LearnedG.from_dictionary(D_learned, alpha, 6, scheme="fista")


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_from_dictionary_signed_is_soft_lca(X, D_learned, alpha):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 12, signed=True)
    Z_lca = sparsolve.encode(X, D_learned, alpha, solver="lca", max_iter=12, tol=0, accelerate=False)
    Z = model.encode(X)
    np.testing.assert_allclose(Z, Z_lca, atol=1e-8)
    assert (Z < 0).any()


def test_deep_lca_init_reaches_the_lasso_solution(X, D_learned, alpha):
    Z_star = sparsolve.encode(X, D_learned, alpha, solver="cd", positive=True, tol=1e-12, max_iter=10000)
    # γ = 1.5/L, still inside LCA's stable range γ < 2/L, converges in fewer steps than 1/L
    L = sparsolve.inference.lipschitz(D_learned)
    Z = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 600, gamma=1.5 / L).encode(X)
    np.testing.assert_allclose(Z, Z_star, atol=1e-6)
    F, F_star = (sparsolve.objective(X, D_learned, A, alpha) for A in (Z, Z_star))
    assert np.all(F - F_star <= 1e-8 * F_star + 1e-12)


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("t_star", [1, 40])
def test_accelerated_from_dictionary_is_accelerated_lca(X, D_learned, alpha, signed, t_star):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, t_star, signed=signed, accelerate=True)
    Z_fast = sparsolve.encode(X, D_learned, alpha, solver="lca", positive=not signed, max_iter=t_star, tol=0,
                              accelerate=True)
    np.testing.assert_allclose(model.encode(X), Z_fast, atol=1e-8)
    seed = sparsolve.LearnedG.from_dictionary(D_learned, alpha, t_star, signed=signed).encode(X)
    F_fast, F_seed = (sparsolve.objective(X, D_learned, Z, alpha).mean() for Z in (Z_fast, seed))
    if t_star == 1:
        np.testing.assert_allclose(Z_fast, seed, atol=1e-12)  # the first step is the seed's
    else:
        assert F_fast < F_seed  # momentum gets further in the same steps
    # float32 takes the same (accelerated) steps: γ = 1/L survives the rounding of its log
    Z32 = sparsolve.LearnedG.from_dictionary(D_learned.astype(np.float32), alpha, t_star, signed=signed,
                                             accelerate=True).encode(X)
    np.testing.assert_allclose(Z32, Z_fast, atol=2e-4)


def test_accelerate_settings_are_checked(D_learned, alpha):
    with pytest.raises(ValueError, match="accelerate=True needs tied=True"):
        sparsolve.LearnedG.from_dictionary(D_learned, alpha, 3, accelerate=True, tied=False)
    with pytest.raises(TypeError, match="accelerate must be True"):
        sparsolve.LearnedG(64, 8, 2, accelerate="yes")
    with pytest.raises(ValueError, match="accelerate=True needs tied=True"):
        AmortizedConfig(2, 0.1, accelerate=True, tied=False)


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_accelerated_encoder_trains_saves_and_loads(tmp_path, X_train, X, D_learned, alpha):
    kw = dict(t_star=5, alpha=alpha, scheme="lca", max_steps=15, progress=False, seed=0)
    model = sparsolve.fit_amortized(X_train, D_learned, accelerate=True, **kw)
    assert model.accelerate and model.history_["loss"][-1] < model.history_["loss"][0]
    loaded = sparsolve.LearnedG.load(model.save(tmp_path / "enc.npz"))
    assert loaded.accelerate
    np.testing.assert_array_equal(loaded.encode(X), model.encode(X))
    with pytest.raises(ValueError, match="init has accelerate=True"):
        sparsolve.fit_amortized(X_train, D_learned, init=model, **kw)


# ------------------------------------------------------------------ untied steps (LISTA's variant)

@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
@pytest.mark.parametrize("signed", [False, True])
def test_untied_from_dictionary_is_listas_ista_start(X, D_learned, alpha, signed):
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 4, signed=signed, scheme="ista", tied=False)
    assert not model.tied and model.G.shape == (4, 64, 64) and model.b_steps.shape == (4, 64)
    assert model.gamma == (1.0,) * 4
    Z_ista = sparsolve.encode(X, D_learned, alpha, solver="ista", positive=not signed, max_iter=5, tol=0)
    np.testing.assert_allclose(model.encode(X), Z_ista, atol=1e-10)
    assert (Z_ista != 0).any()
    # and from the LCA start it is the tied encoder, step for step
    tied = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 4, signed=signed)
    untied = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 4, signed=signed, tied=False)
    np.testing.assert_allclose(untied.encode(X), tied.encode(X), atol=1e-12)


def test_untied_loop_uses_each_steps_weights(X):
    torch.manual_seed(0)
    model = sparsolve.LearnedG(64, 32, 3, gamma=0.5, learn_gamma=True, tied=False, dtype=torch.float64, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    x = torch.as_tensor(X)
    with torch.no_grad():
        gammas = model.log_gamma.exp()
        mu0 = (x - model.b_d) @ model.W_e.T + model.b_e
        mu = mu0
        for t in range(3):
            mu = mu + gammas[t] * ((mu0 + model.b_steps[t] - torch.relu(mu) @ model.G[t].T) - mu)
        torch.testing.assert_close(model.encode(x), torch.relu(mu))
        # every step's weights matter: sharing step 0's G changes the output
        shared = model.G[0].clone()
        model.G.copy_(shared.expand_as(model.G))
        assert not torch.allclose(model.encode(x), torch.relu(mu))
    (model(x) - x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
    with pytest.raises(TypeError, match="tied must be True"):
        sparsolve.LearnedG(64, 32, 3, tied="no")


def test_untied_training_save_load_and_checkpoint(tmp_path, X_train, X, D_learned, alpha):
    kw = dict(t_star=2, alpha=alpha, scheme="ista", lr=3e-3, batch_size=200, progress=False, seed=5, tied=False)
    full = sparsolve.fit_amortized(X_train, D_learned, max_steps=10, **kw)
    assert not full.tied and len(set(full.gamma)) == 2  # each γ_t learned on its own
    # the steps specialise: G_0 and G_1 started equal and no longer are
    assert not torch.allclose(full.G[0], full.G[1])
    start = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2, scheme="ista", tied=False)
    F0 = sparsolve.objective(X, D_learned, start.encode(X), alpha).mean()
    F1 = sparsolve.objective(X, D_learned, full.encode(X), alpha).mean()
    assert F1 < F0
    # a checkpoint holds the per-step weights and resumes to the same encoder
    ck = tmp_path / "run.npz"
    sparsolve.fit_amortized(X_train, D_learned, max_steps=6, checkpoint=ck, checkpoint_every=3, **kw)
    resumed = sparsolve.fit_amortized(X_train, D_learned, max_steps=10, checkpoint=ck, **kw)
    np.testing.assert_allclose(resumed.history_["loss"], full.history_["loss"], rtol=1e-5)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="tied"):
        sparsolve.fit_amortized(X_train, D_learned, max_steps=12, checkpoint=ck, **{**kw, "tied": True})
    # save/load keeps it untied, bit for bit
    back = sparsolve.LearnedG.load(full.save(tmp_path / "enc"))
    assert not back.tied
    np.testing.assert_array_equal(back.encode(X), full.encode(X))
    # an untied init needs tied=False, as it needs its t_star
    with pytest.raises(ValueError, match=r"init has tied=False .* tied=True"):
        sparsolve.fit_amortized(X_train, D_learned, init=back, **{**kw, "tied": True, "max_steps": 1})


def test_untied_encoders_compare(X, D_learned, alpha):
    enc = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 3, scheme="ista", tied=False)
    rows = sparsolve.compare(X, D_learned, {"untied T=3": enc}, alpha=alpha, exact=(), max_fista_iter=50)
    row = rows[-1]
    Z = enc.encode(X)
    assert row["objective"] == pytest.approx(sparsolve.objective(X, D_learned, Z, alpha).mean(), rel=1e-5)
    # ISTA's iterate 4 is worth between 1 and 4 FISTA iterations
    assert 1 <= rows.curve["fista_iters"][0] <= 4


# ------------------------------------------------------------------ the seed's special cases

def test_t_star_0_is_the_one_layer_autoencoder(X):
    model = _random_module(0)
    x = torch.as_tensor(X)
    with torch.no_grad():
        z = torch.relu((x - model.b_d) @ model.W_e.T + model.b_e)
        torch.testing.assert_close(model.encode(x), z)
        torch.testing.assert_close(model(x), z @ model.W_d.T + model.b_d)
    assert (z > 0).any() and (z == 0).any()


def test_t_star_1_gamma_1_is_the_residual_form(X):
    model = _random_module(1, gamma=1.0)
    x = torch.as_tensor(X)
    with torch.no_grad():
        mu0 = (x - model.b_d) @ model.W_e.T + model.b_e
        expected = torch.relu(mu0 - torch.relu(mu0) @ model.G.T)
        torch.testing.assert_close(model.encode(x), expected)
        assert not torch.allclose(expected, torch.relu(mu0))


def test_the_loop_follows_the_seed_equations(X):
    model = _random_module(4, gamma=0.4)
    x = torch.as_tensor(X)
    with torch.no_grad():
        mu0 = (x - model.b_d) @ model.W_e.T + model.b_e
        mu = mu0
        for _ in range(4):
            mu = mu + 0.4 * ((mu0 - torch.relu(mu) @ model.G.T) - mu)
        torch.testing.assert_close(model.encode(x), torch.relu(mu))


def test_signed_variant_soft_thresholds_at_theta(X):
    model = _random_module(2, signed=True)
    x = torch.as_tensor(X)
    with torch.no_grad():
        theta = model.theta.clamp(min=0)

        def soft(u):
            return torch.sign(u) * torch.clamp(u.abs() - theta, min=0)

        mu0 = (x - model.b_d) @ model.W_e.T + model.b_e
        mu = mu0
        for _ in range(2):
            mu = mu + ((mu0 - soft(mu) @ model.G.T) - mu)
        z = model.encode(x)
        torch.testing.assert_close(z, soft(mu))
    assert (z < 0).any() and (z > 0).any()


def test_any_leading_batch_dims_and_numpy_in_numpy_out(X):
    model = _random_module(3)
    x = torch.as_tensor(X[:24]).reshape(2, 3, 4, 64)
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (2, 3, 4, 32)
        torch.testing.assert_close(z.reshape(24, 32), model.encode(torch.as_tensor(X[:24])))
        assert model(x).shape == (2, 3, 4, 64)
    Zn = model.encode(X[:24])
    assert isinstance(Zn, np.ndarray)
    np.testing.assert_allclose(Zn, z.reshape(24, 32).numpy())


def test_gradients_reach_every_parameter(X):
    model = sparsolve.LearnedG(64, 32, 2, learn_gamma=True, signed=True, dtype=torch.float64, seed=1)
    with torch.no_grad():
        model.G.normal_(0, 0.1)
        model.theta.fill_(0.01)
    x = torch.as_tensor(X)
    (model(x) - x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


# ------------------------------------------------------------------ training

def test_amortize_lasso_lowers_the_objective(X_train, D_learned, alpha):
    Z_star = sparsolve.encode(X_train, D_learned, alpha, solver="cd", positive=True, tol=1e-8)
    F_star = sparsolve.objective(X_train, D_learned, Z_star, alpha).mean()

    def F(model):
        return sparsolve.objective(X_train, D_learned, model.encode(X_train).astype(np.float64), alpha).mean()

    init = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 1)
    model = sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, lr=1e-2, max_steps=40,
                                    progress=False, seed=0)
    assert len(model.history_["objective"]) == 40
    # the amortization gap closes by more than half
    assert F(model) - F_star < 0.5 * (F(init) - F_star)
    # while the decoder stays the dictionary
    np.testing.assert_allclose(model.dictionary, D_learned, atol=1e-6)
    assert float(model.b_d.abs().max()) == 0


def test_amortize_codes_distills_the_exact_codes(X_train, D_learned, alpha):
    Z_star = sparsolve.encode(X_train, D_learned, alpha, solver="cd", positive=True, tol=1e-8)
    dist = []
    for steps in (0, 30):
        model = sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, target="codes", lr=3e-3,
                                        max_steps=steps, progress=False, seed=0)
        dist.append(np.mean((model.encode(X_train) - Z_star) ** 2))
    assert dist[1] < 0.5 * dist[0]
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_autoencoder_unit_norm_holds_after_every_step(X_train, alpha):
    norms = []

    def check(step, model, record):
        norms.append(model.W_d.detach().norm(dim=0).numpy())

    model = sparsolve.fit_amortized(X_train, t_star=1, mode="autoencoder", n_atoms=48, alpha=alpha / 4,
                                    norm="unit", lr=3e-3, max_steps=25, progress=False, seed=0, callback=check)
    assert len(norms) == 25
    np.testing.assert_allclose(np.array(norms), 1.0, atol=1e-5)
    h = model.history_
    assert h["loss"][-1] < h["loss"][0]
    assert h["dec_norm_min"][-1] == pytest.approx(1.0, abs=1e-5)
    assert h["dec_norm_max"][-1] == pytest.approx(1.0, abs=1e-5)


def test_autoencoder_without_norm_rule_shows_the_cheat(X_train, alpha):
    kw = dict(t_star=1, mode="autoencoder", n_atoms=48, alpha=alpha, lr=1e-2, max_steps=100, progress=False, seed=0)
    h = sparsolve.fit_amortized(X_train, norm="none", **kw).history_
    # the encoder's rows shrink while the decoder's atoms grow to make up for it
    assert h["enc_norm_mean"][-1] < h["enc_norm_mean"][0]
    assert h["enc_norm_min"][-1] < 0.9 * h["enc_norm_min"][0]
    assert h["dec_norm_mean"][-1] > 1.5 * h["dec_norm_mean"][0]
    # the inverse penalty β Σ 1/‖w‖² makes the encoder's rows grow instead
    hp = sparsolve.fit_amortized(X_train, norm="inverse_penalty", beta=1e-2, **kw).history_
    assert hp["enc_norm_min"][-1] > hp["enc_norm_min"][0] > h["enc_norm_min"][-1]


def test_history_records_every_quantity(X_train, alpha):
    model = sparsolve.fit_amortized(X_train, t_star=2, mode="autoencoder", n_atoms=32, alpha=alpha,
                                    max_steps=5, progress=False, seed=0)
    h = model.history_
    for key in ("loss", "mse", "l1", "nnz_frac", "dead_frac", "enc_norm_min", "enc_norm_mean", "enc_norm_max",
                "dec_norm_min", "dec_norm_mean", "dec_norm_max", "G_offdiag_pos_frac", "G_offdiag_neg_frac",
                "G_offdiag_mean", "gamma", "seconds", "step", "samples_seen"):
        assert len(h[key]) == 5, key
    assert h["step"] == [1, 2, 3, 4, 5]
    assert h["samples_seen"][-1] == 5 * 256
    assert all(0 <= v <= 1 for v in h["nnz_frac"] + h["dead_frac"])
    # G starts at zero and training moves it off zero, one sign or the other
    assert h["G_offdiag_pos_frac"][-1] + h["G_offdiag_neg_frac"][-1] > 0.5


def test_checkpoint_resume_continues_the_same_run(tmp_path, X_train, D_learned, alpha):
    kw = dict(t_star=2, alpha=alpha, lr=3e-3, batch_size=200, progress=False, seed=4)
    full = sparsolve.fit_amortized(X_train, D_learned, max_steps=14, **kw)
    ck = tmp_path / "run.npz"
    sparsolve.fit_amortized(X_train, D_learned, max_steps=9, checkpoint=ck, checkpoint_every=4, **kw)
    resumed = sparsolve.fit_amortized(X_train, D_learned, max_steps=14, checkpoint=ck, **kw)
    assert resumed.history_["step"] == list(range(1, 15))
    np.testing.assert_allclose(resumed.history_["loss"], full.history_["loss"], rtol=1e-5)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="other settings"):
        sparsolve.fit_amortized(X_train, D_learned, max_steps=20, checkpoint=ck, **{**kw, "lr": 1e-2})


def test_cosine_schedule_resumes_on_the_same_schedule(tmp_path, X_train, D_learned, alpha):
    kw = dict(t_star=2, alpha=alpha, lr=3e-3, batch_size=50, n_epochs=4, progress=False, seed=4)
    full = sparsolve.fit_amortized(X_train, D_learned, **kw)
    ck = tmp_path / "run.npz"
    sparsolve.fit_amortized(X_train, D_learned, max_steps=5, checkpoint=ck, checkpoint_every=2, **kw)
    resumed = sparsolve.fit_amortized(X_train, D_learned, checkpoint=ck, **kw)
    np.testing.assert_allclose(resumed.history_["loss"], full.history_["loss"], rtol=1e-5)
    constant = sparsolve.fit_amortized(X_train, D_learned, lr_schedule="constant", **kw)
    # the schedule must act: the decayed run ends elsewhere than the constant one
    assert not np.allclose(constant.history_["loss"][-3:], full.history_["loss"][-3:], rtol=1e-6)
    with pytest.raises(ValueError, match="lr_schedule"):
        sparsolve.fit_amortized(X_train, D_learned, lr_schedule="linear", **kw)


# ------------------------------------------------------------------ the default schedule

@pytest.mark.parametrize("kw, lr", [({}, 3e-3), ({"scheme": "lca"}, 1e-2),
                                     ({"mode": "autoencoder"}, 1e-3), ({"lr": 5e-4}, 5e-4)])
def test_default_lr_follows_the_start(kw, lr):
    assert AmortizedConfig(1, 0.1, **kw).resolved(1000).lr == lr


@pytest.mark.parametrize("n, batch_size, epochs", [
    (1000, 256, 250),       # 4 steps an epoch: 12 epochs would be 48 steps; at least 1,000
    (10_000, 256, 25),      # 40 steps an epoch: 1,000 steps
    (50_000, 256, 12),      # 196 steps an epoch: 12 epochs, 2,352 steps
    (106_496, 256, 12),     # 416 steps an epoch: 12 epochs are 4,992 steps, just under 5,000
    (400_000, 256, 4),      # 1,563: ⌈5,000 / 1,563⌉ = 4 epochs, 6,252 steps
    (400_000, 1024, 12),    # 391 steps an epoch at batch 1,024
    (10_000_000, 256, 1),   # 39,063 steps an epoch: one pass
])
def test_default_epochs_follow_the_data_size(n, batch_size, epochs):
    assert AmortizedConfig(2, 0.1, batch_size=batch_size).resolved(n).n_epochs == epochs


def test_autoencoder_keeps_ten_epochs():
    assert AmortizedConfig(2, 0.1, mode="autoencoder", n_atoms=8).resolved(1000).n_epochs == 10


def test_given_epochs_or_steps_are_kept():
    assert AmortizedConfig(2, 0.1, n_epochs=3).resolved(400_000).n_epochs == 3
    # max_steps alone plans no epochs (a resumed run may raise the cap)
    resolved = AmortizedConfig(2, 0.1, max_steps=7).resolved(400_000)
    assert resolved.n_epochs is None and resolved.max_steps == 7


def _stop_after(n):
    return lambda step, model, record: step < n


def test_fit_amortized_records_the_resolved_schedule(X_train, D_learned, alpha):
    model = sparsolve.fit_amortized(X_train[:48], D_learned, t_star=1, alpha=alpha, batch_size=16, progress=False,
                                    seed=0, callback=_stop_after(2))
    # 3 steps an epoch: ⌈1,000 / 3⌉ epochs, the cosine step planned over 1,002 steps
    assert (model.config_.scheme, model.config_.lr, model.config_.n_epochs) == ("ista", 3e-3, 334)


def test_default_schedule_resumes_exactly(tmp_path, X_train, D_learned, alpha):
    """Stopped after 3 steps and resumed to step 6, a default run takes the steps of an uninterrupted
    one: the checkpoint holds the resolved lr and epochs, so the cosine step has the same horizon."""
    kw = dict(t_star=1, alpha=alpha, batch_size=32, progress=False, seed=4)
    X = X_train[:64]
    full = sparsolve.fit_amortized(X, D_learned, callback=_stop_after(6), **kw)
    ck = tmp_path / "run.npz"
    sparsolve.fit_amortized(X, D_learned, checkpoint=ck, checkpoint_every=10_000, callback=_stop_after(3), **kw)
    saved = sparsolve.io.load_npz(ck, "learned_g_checkpoint")[1]
    assert (saved["step"], saved["config"]["lr"], saved["config"]["n_epochs"]) == (3, 3e-3, 500)
    resumed = sparsolve.fit_amortized(X, D_learned, checkpoint=ck, callback=_stop_after(6), **kw)
    assert resumed.history_["step"] == list(range(1, 7))
    np.testing.assert_allclose(resumed.history_["loss"], full.history_["loss"], rtol=1e-5)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="n_epochs: checkpoint 500 vs now 7"):
        sparsolve.fit_amortized(X, D_learned, checkpoint=ck, n_epochs=7, **kw)


@pytest.mark.slow  # two trainings of 1,000+ steps
def test_default_schedule_is_near_a_longer_run(D_learned):
    """On a problem benchmarks/amortized_defaults.py does not use (64 atoms, 2,000 patches at unit
    variance, α = 0.3, T = 1), the defaults (ISTA's start, lr 3e-3, 1,000 steps) end within 1.5× the
    held-out gap of a run twice as long, and the old defaults (LCA's start, lr 1e-3, 10 epochs: 80
    steps) do not (measured: 2.8 %, and 6.2 % against 2.8 % for 4× as long)."""
    X = natural_image_patches(8, 2000, seed=3, split="train")
    scale = X.std()
    X, X_test, alpha = X / scale, natural_image_patches(8, 500, seed=4, split="test") / scale, 0.3
    optimum = sparsolve.objective(X_test, D_learned, sparsolve.encode(X_test, D_learned, alpha, solver="cd",
                                                                      positive=True, tol=1e-10), alpha).mean()

    def gap(**kw):
        enc = sparsolve.fit_amortized(X, D_learned, t_star=1, alpha=alpha, seed=0, device="cpu", progress=False, **kw)
        return (sparsolve.objective(X_test, D_learned, enc.encode(X_test), alpha).mean() - optimum) / optimum

    default, longer, old = gap(), gap(n_epochs=250), gap(scheme="lca", lr=1e-3, n_epochs=10)
    gaps = f"held-out gaps: defaults {default:.4f}, 2× longer {longer:.4f}, old defaults {old:.4f}"
    assert 0 < longer and default <= 1.5 * longer, gaps
    assert old > 1.5 * longer, gaps


def test_accepts_a_fitted_model_as_dictionary(X_train, D_learned, alpha):
    class Fitted:
        dictionary = D_learned

    model = sparsolve.fit_amortized(X_train, Fitted(), t_star=1, alpha=alpha, max_steps=0, progress=False)
    np.testing.assert_allclose(model.dictionary, D_learned)


def test_init_trains_the_given_encoder(X_train, D_learned, alpha):
    # from the ISTA start passed as init, the run is the scheme="ista" run, step for step
    kw = dict(t_star=2, alpha=alpha, lr=3e-3, batch_size=200, max_steps=6, progress=False, seed=2)
    by_scheme = sparsolve.fit_amortized(X_train, D_learned, scheme="ista", **kw)
    start = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2, scheme="ista", learn_gamma=True,
                                               dtype=torch.float32)
    by_init = sparsolve.fit_amortized(X_train, D_learned, init=start, **kw)
    assert by_init is start
    np.testing.assert_allclose(by_init.history_["loss"], by_scheme.history_["loss"], rtol=1e-6)
    # and a trained encoder fine-tunes on: its loss starts where the first run ended
    more = sparsolve.fit_amortized(X_train, D_learned, init=by_init, lr_schedule="constant", lr=1e-4,
                                   **{k: v for k, v in kw.items() if k != "lr"})
    assert more.history_["loss"][0] < by_scheme.history_["loss"][0]


def test_init_that_does_not_fit_the_training(X_train, D_learned, alpha):
    kw = dict(alpha=alpha, max_steps=1, progress=False)
    enc = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2)
    with pytest.raises(ValueError, match=r"init has t_star=2 .* t_star=3"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=3, init=enc, **kw)
    with pytest.raises(ValueError, match=r"init's decoder is not the dictionary"):
        sparsolve.fit_amortized(X_train, D_learned[::-1].copy(), t_star=2, init=enc, **kw)
    with pytest.raises(TypeError, match=r"init must be a LearnedG"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=2, init=D_learned, **kw)


# ------------------------------------------------------------------ files

@pytest.mark.parametrize("signed", [False, True])
def test_save_then_load_gives_the_same_encoder(tmp_path, X_train, X, D_learned, alpha, signed):
    model = sparsolve.fit_amortized(X_train, D_learned, t_star=3, alpha=alpha, positive=not signed, max_steps=3,
                                    progress=False, seed=0)
    path = model.save(tmp_path / "enc")
    assert path.suffix == ".npz"
    back = sparsolve.LearnedG.load(path)
    assert (back.t_star, back.signed, back.learn_gamma) == (3, signed, True)
    np.testing.assert_array_equal(back.encode(X), model.encode(X))
    np.testing.assert_array_equal(back(X), model(X))
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # the library's one loader dispatches on the file's kind
    np.testing.assert_array_equal(sparsolve.load(path).encode(X), model.encode(X))


# ------------------------------------------------------------------ bad input

def test_bad_t_star(X_train, D_learned, alpha):
    with pytest.raises(ValueError, match="t_star"):
        sparsolve.LearnedG(64, 16, -1)
    with pytest.raises(ValueError, match="t_star"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=-2, alpha=alpha)


@pytest.mark.parametrize("gamma", [0.0, -0.5, float("nan")])
def test_bad_gamma(X_train, D_learned, alpha, gamma):
    with pytest.raises(ValueError, match="gamma"):
        sparsolve.LearnedG(64, 16, 2, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=2, alpha=alpha, gamma=gamma)


def test_shapes_that_do_not_match_the_dictionary(X_train, D_learned, alpha):
    with pytest.raises(ValueError, match="features"):
        sparsolve.fit_amortized(X_train[:, :60], D_learned, t_star=1, alpha=alpha)
    with pytest.raises(ValueError, match="D.T"):
        sparsolve.fit_amortized(X_train, D_learned[:32].T, t_star=1, alpha=alpha)
    with pytest.raises(ValueError, match="n_atoms"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, n_atoms=10)
    model = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 1)
    with pytest.raises(ValueError, match="n_features=64"):
        model.encode(X_train[:, :60])
    with pytest.raises(ValueError, match="n_atoms=64"):
        model.decode(np.zeros((3, 10)))


def test_unknown_mode(X_train, D_learned, alpha):
    with pytest.raises(ValueError, match="mode='sparse'"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, mode="sparse")


def test_unknown_norm(X_train, alpha):
    with pytest.raises(ValueError, match="norm='ball'"):
        sparsolve.fit_amortized(X_train, t_star=1, mode="autoencoder", n_atoms=8, alpha=alpha, norm="ball")


def test_unknown_target_and_misplaced_options(X_train, D_learned, alpha):
    with pytest.raises(ValueError, match="scheme='fista'"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, scheme="fista")
    with pytest.raises(ValueError, match="target='mse'"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, target="mse")
    with pytest.raises(ValueError, match="autoencoder"):
        sparsolve.fit_amortized(X_train, D_learned, t_star=1, alpha=alpha, norm="unit")
    with pytest.raises(ValueError, match="dictionary"):
        sparsolve.fit_amortized(X_train, t_star=1, alpha=alpha)
    with pytest.raises(ValueError, match="n_atoms"):
        sparsolve.fit_amortized(X_train, t_star=1, mode="autoencoder", alpha=alpha)


def test_loading_a_file_of_the_wrong_kind(tmp_path):
    path = save_npz(tmp_path / "model.npz", "sparse_coding_model", {"dictionary": np.eye(3)}, {})
    with pytest.raises(ModelFileError, match="learned_g"):
        sparsolve.LearnedG.load(path)


# ------------------------------------------------------------------ GPU

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_training_and_encoding(X_train, D_learned, alpha):
    torch.backends.cuda.matmul.allow_tf32 = False
    model = sparsolve.fit_amortized(X_train, D_learned, t_star=3, alpha=alpha, max_steps=20, device="cuda",
                                    dtype="float64", progress=False, seed=0)
    assert model.W_e.is_cuda
    assert model.history_["objective"][-1] < model.history_["objective"][0]
    z_gpu = model.encode(torch.as_tensor(X_train, device="cuda"))
    assert z_gpu.is_cuda
    cpu = model.to("cpu")
    np.testing.assert_allclose(z_gpu.detach().cpu().numpy(), cpu.encode(X_train), atol=1e-10)
    rows = sparsolve.compare(X_train[:300], D_learned, {"T3": cpu.to("cuda")}, alpha=alpha, device="cuda")
    assert rows[-1]["rel_gap"] >= 0
