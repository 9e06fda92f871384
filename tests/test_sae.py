"""sparsolve.sae: SAEs in (from_sae), out (save_sae), and under SAELens's SynthSAEBench evaluator
(ExactSAE, evaluate_synthetic).  The file round trips need safetensors; the peers' tests train
their SAE for a few steps with the peer's own code and skip cleanly without it."""
import json

import numpy as np
import pytest

import sparsolve
from sparsolve import metrics
from sparsolve.data import SyntheticActivations


@pytest.fixture(scope="module")
def data():
    """Planted activations with an offset c (as model activations have)."""
    gen = SyntheticActivations(n_features=16, n_planted=48, mean_active=3.0, seed=0, dtype="float64")
    c = np.linspace(-1.0, 1.0, 16)
    return gen.sample(3000) + c, gen.sample(1000, split=1) + c


@pytest.fixture(scope="module")
def fitted(data):
    X, _ = data
    return sparsolve.fit(X, 48, 0.1, solver="cd", positive=True, center=True, seed=0, progress=False)


def _omp_no_worse(model, X, own_reconstruction, k):
    """Exact inference at the SAE's L0 (OMP with k atoms) on the SAE's dictionary reconstructs X
    at least as well as the SAE's own encoder."""
    Z = model.encode(X, solver="omp", n_nonzero_coefs=k, positive=False)
    assert metrics.l0(Z) <= k
    exact, own = metrics.fvu(X, model.decode(Z)), metrics.fvu(X, own_reconstruction)
    assert exact <= own, (exact, own)
    return exact, own


# ---- without peers ---------------------------------------------------------------------------


def test_export_and_read_back_keep_the_decoder_offset_and_alpha(fitted, data, tmp_path):
    pytest.importorskip("safetensors")
    X, X_test = data
    path = fitted.save_sae(tmp_path / "sae", X)
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu" and (cfg["d_in"], cfg["d_sae"]) == (16, 48)
    back = sparsolve.from_sae(path)
    np.testing.assert_allclose(back.dictionary, fitted.dictionary, atol=1e-6)
    np.testing.assert_allclose(back.offset, fitted.offset, atol=1e-6)
    np.testing.assert_allclose(back.decoder_scale, 1.0, atol=1e-6)
    assert back.alpha == fitted.alpha and back.positive
    np.testing.assert_allclose(back.encode(X_test), fitted.encode(X_test), atol=1e-4)


def test_a_signed_model_exports_as_abstopk_at_its_l0(data, tmp_path):
    pytest.importorskip("safetensors")
    X, _ = data
    model = sparsolve.fit(X, 32, 0.1, solver="cd", center=True, seed=0, progress=False, max_steps=5)
    cfg = json.loads((model.save_sae(tmp_path / "sae", X) / "cfg.json").read_text())
    assert cfg["architecture"] == "abstopk"
    assert cfg["k"] == round(metrics.l0(model.encode(X)))
    assert not sparsolve.from_sae(tmp_path / "sae").positive


def test_directories_that_are_not_saes_are_named(fitted, data, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        sparsolve.from_sae(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an SAE directory; expected cfg.json"):
        sparsolve.from_sae(tmp_path / "empty")
    fitted.save_sae(tmp_path / "run" / "layers.3", data[0][:200])
    with pytest.raises(ValueError, match="several hookpoints.*layers.3"):
        sparsolve.from_sae(tmp_path / "run")
    with pytest.raises(TypeError, match="path of an SAE directory"):
        sparsolve.from_sae(fitted)

    def sparsify_dir(name, cfg, **tensors):
        d = tmp_path / name
        d.mkdir()
        (d / "cfg.json").write_text(json.dumps({"d_in": 4, "k": 2, **cfg}))
        st.save_file({"W_dec": np.eye(4, dtype=np.float32), "b_dec": np.zeros(4, np.float32), **tensors},
                     str(d / "sae.safetensors"))
        return d

    with pytest.raises(ValueError, match="transcoder"):
        sparsolve.from_sae(sparsify_dir("tc", {"transcode": True}))
    with pytest.raises(ValueError, match="skip connection"):
        sparsolve.from_sae(sparsify_dir("skip", {}, W_skip=np.eye(4, dtype=np.float32)))
    zero = np.eye(4, dtype=np.float32)
    zero[2] = 0
    with pytest.raises(ValueError, match=r"latents \[2\] have zero decoder rows"):
        sparsolve.from_sae(sparsify_dir("zero", {}, W_dec=zero))
    plain = sparsolve.from_sae(sparsify_dir("ok", {}))
    np.testing.assert_array_equal(plain.dictionary, np.eye(4))
    import safetensors.torch
    import torch

    (tmp_path / "bf16").mkdir()  # SAEs are often saved in bfloat16, which numpy cannot hold
    (tmp_path / "bf16" / "cfg.json").write_text(json.dumps({"d_in": 4, "k": 2}))
    safetensors.torch.save_file({"W_dec": 2 * torch.eye(4, dtype=torch.bfloat16),
                                 "b_dec": torch.ones(4, dtype=torch.bfloat16)}, str(tmp_path / "bf16" / "sae.safetensors"))
    half = sparsolve.from_sae(tmp_path / "bf16")
    np.testing.assert_array_equal(half.dictionary, np.eye(4))
    np.testing.assert_array_equal(half.decoder_scale, 2.0)
    np.testing.assert_array_equal(half.offset, 1.0)
    d = tmp_path / "norm"
    d.mkdir()
    (d / "cfg.json").write_text(json.dumps({"architecture": "standard", "d_in": 4, "d_sae": 4,
                                            "normalize_activations": "expected_average_only_in"}))
    st.save_file({"W_dec": np.eye(4, dtype=np.float32), "b_dec": np.zeros(4, np.float32)},
                 str(d / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="fold the scaling"):
        sparsolve.from_sae(d)


def test_exact_sae_codes_exactly_and_decodes_with_the_offset(fitted, data):
    import torch
    from sparsolve.sae import ExactSAE

    _, X_test = data
    sae = ExactSAE(fitted, tol=1e-6)
    x = torch.tensor(X_test[:300], dtype=torch.float64)
    Z = sae.encode(x)
    assert torch.is_tensor(Z) and sae.last_info.converged.all() and sae.last_info.rel_gap.max() <= 1e-6
    np.testing.assert_allclose(Z.numpy(), fitted.encode(X_test[:300], tol=1e-6), atol=1e-6)
    np.testing.assert_allclose(sae(x).numpy(), fitted.decode(Z.numpy()), atol=1e-5)  # W_dec is float32
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.architecture()) == (16, 48, "sparsolve_exact")
    with pytest.raises(ValueError, match=r"shape \(n_samples, 16\)"):
        sae.encode(x[:, :4])
    with pytest.raises(ValueError, match="no α of its own"):
        ExactSAE(sparsolve.SparseCodingModel(fitted.dictionary, None))


def test_save_sae_refuses_bad_rows_and_paths_before_writing(fitted, data, tmp_path):
    pytest.importorskip("safetensors")
    X, _ = data
    with pytest.raises(ValueError, match=r"shape \(n_samples, 16\)"):
        fitted.save_sae(tmp_path / "a", X[:, :5])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        fitted.save_sae(tmp_path / "file", X)
    assert not (tmp_path / "a").exists()


# ---- SAELens -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    """A tiny SynthSAEBench-style model: 64 features in 16 dimensions, Zipfian firing, a bias."""
    synth = pytest.importorskip("sae_lens.synthetic")
    from sae_lens.synthetic.synthetic_model import SyntheticModelConfig

    return synth.SyntheticModel(SyntheticModelConfig(num_features=64, hidden_dim=16, bias=0.5, seed=42))


@pytest.fixture(scope="module")
def saelens_topk(synthetic, tmp_path_factory):
    """A SAELens TopK SAE (k = 4) trained for 30 steps by SAELens's own trainer, saved by it."""
    import torch
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.synthetic import train_toy_sae

    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=16, d_sae=48, k=4))
    train_toy_sae(sae, synthetic.feature_dict, synthetic.activation_generator, training_samples=64 * 30,
                  batch_size=64, lr=3e-3)
    path = tmp_path_factory.mktemp("saelens") / "topk"
    sae.save_inference_model(path)
    return path


def test_a_saelens_sae_loads_and_exact_inference_reconstructs_no_worse(synthetic, saelens_topk):
    import torch
    from sae_lens import SAE

    own = SAE.load_from_disk(saelens_topk)
    model = sparsolve.from_sae(saelens_topk)
    W = own.W_dec.detach().double().numpy()
    np.testing.assert_allclose(model.dictionary, W / np.linalg.norm(W, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(model.offset, own.b_dec.detach().double().numpy(), atol=1e-7)
    assert model.settings["from_sae"]["architecture"] == "topk" and model.positive
    torch.manual_seed(1)
    X = synthetic.sample(1000)
    with torch.no_grad():
        A = own.encode(X)
        R = own.decode(A).double().numpy()
    # the SAE's activations are the codes mapped back: decoding them through the model gives its output
    np.testing.assert_allclose(model.decode(A.double().numpy() * model.decoder_scale), R, atol=1e-4)
    _omp_no_worse(model, X.double().numpy(), R, k=4)
    # the object loads the same
    np.testing.assert_allclose(sparsolve.from_sae(own).dictionary, model.dictionary, atol=1e-6)


def test_an_exported_model_loads_in_saelens_with_the_same_decoder(fitted, data, tmp_path):
    pytest.importorskip("sae_lens")
    import torch
    from sae_lens import SAE

    X, X_test = data
    sae = SAE.load_from_disk(fitted.save_sae(tmp_path / "sae", X))
    np.testing.assert_allclose(sae.W_dec.detach().numpy(), fitted.dictionary, atol=1e-6)
    np.testing.assert_allclose(sae.b_dec.detach().numpy(), fitted.offset, atol=1e-6)
    with torch.no_grad():
        A = sae.encode(torch.tensor(X, dtype=torch.float32)).numpy()
    # the approximate encoder fires as often as exact inference on the rows it was fitted to
    assert metrics.l0(A) == pytest.approx(metrics.l0(fitted.encode(X)), rel=0.02)


def test_exact_inference_passes_saelens_synthetic_evaluator_with_sparsolves_metrics(synthetic):
    import torch
    from sparsolve.sae import ExactSAE, evaluate_synthetic

    torch.manual_seed(2)
    X = synthetic.sample(4000).double().numpy()
    model = sparsolve.fit(X, 48, 0.05, solver="cd", positive=True, center=True, seed=0, progress=False)
    torch.manual_seed(3)
    result = evaluate_synthetic(model, synthetic, num_samples=1500, batch_size=500)
    F = synthetic.feature_dict.feature_vectors.detach().double().numpy()
    assert result.mcc == pytest.approx(metrics.mcc(model.dictionary, F), abs=1e-5)
    assert result.uniqueness == pytest.approx(metrics.uniqueness(model.dictionary, F))
    # the same samples again (the generator draws from torch's global RNG), coded the same way
    torch.manual_seed(3)
    acts = torch.cat([synthetic.activation_generator.sample(500) for _ in range(3)])
    sae = ExactSAE(model)
    Z = sae.encode(synthetic.feature_dict(acts))
    assert sae.last_info.converged.all()
    ours = metrics.classification(Z, acts, model.dictionary, F)
    assert result.classification.f1_score == pytest.approx(ours.f1, abs=1e-6)
    assert result.classification.precision == pytest.approx(ours.precision, abs=1e-6)
    assert result.sae_l0 == pytest.approx(metrics.l0(Z))
    assert result.explained_variance > 0.8


def test_a_width_that_does_not_match_the_synthetic_model_is_refused_before_sampling(synthetic, fitted):
    from sparsolve.sae import evaluate_synthetic

    calls = []
    sample = synthetic.activation_generator.sample
    synthetic.activation_generator.sample = lambda n: calls.append(n) or sample(n)
    try:
        narrow = sparsolve.SparseCodingModel(fitted.dictionary[:, :8], 0.1)
        with pytest.raises(ValueError, match="codes 8-dimensional data but the synthetic model's hidden dimension is 16"):
            evaluate_synthetic(narrow, synthetic, num_samples=100)
        with pytest.raises(ValueError, match="no α of its own"):
            evaluate_synthetic(sparsolve.SparseCodingModel(fitted.dictionary, None), synthetic, num_samples=100)
    finally:
        del synthetic.activation_generator.sample
    assert calls == []


# ---- sparsify ----------------------------------------------------------------------------------


def test_a_sparsify_coder_loads_and_exact_inference_reconstructs_no_worse(data, tmp_path):
    pytest.importorskip("safetensors")
    sparsify = pytest.importorskip("sparsify")
    import torch
    from sparsify.sign_sgd import SignSGD

    X, X_test = data
    torch.manual_seed(0)
    coder = sparsify.SparseCoder(16, sparsify.SparseCoderConfig(num_latents=48, k=4), dtype=torch.float32)
    opt = SignSGD([dict(params=coder.parameters(), lr=1e-2)])
    T = torch.tensor(X, dtype=torch.float32)
    coder.b_dec.data = T.mean(0)  # sparsify's Trainer centres on its first batch
    for step in range(30):  # a few steps of sparsify's own loss and optimiser
        coder.set_decoder_norm_to_unit_norm()
        coder(T[step * 100:(step + 1) * 100]).fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
    coder.save_to_disk(tmp_path / "layers.0")
    model = sparsolve.from_sae(tmp_path / "layers.0")
    loaded = sparsify.SparseCoder.load_from_disk(tmp_path / "layers.0")
    W = loaded.W_dec.detach().double().numpy()
    np.testing.assert_allclose(model.dictionary, W / np.linalg.norm(W, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(model.offset, loaded.b_dec.detach().double().numpy(), atol=1e-7)
    np.testing.assert_allclose(model.decoder_scale, np.linalg.norm(W, axis=1), rtol=1e-5)
    with torch.no_grad():
        out = loaded.encode(torch.tensor(X_test, dtype=torch.float32))
        R = loaded.decode(out.top_acts, out.top_indices).double().numpy()
    _omp_no_worse(model, X_test, R, k=4)
    np.testing.assert_allclose(sparsolve.from_sae(loaded).dictionary, model.dictionary, atol=1e-6)
