"""SAEs in and out: exact, certified inference on a sparse autoencoder's dictionary, and back.

An SAE decodes its activations a as x̂ = a W_dec + b_dec; its encoder is one layer that
*guesses* a.  A sparse coding model x ≈ zD + b has the same decoder form, so an SAE's decoder
is a dictionary, and exact inference (the lasso, certified by its duality gap, or OMP at a
fixed L0) codes the SAE's own activations in place of its encoder.

* :func:`from_sae` reads an SAE -- a directory saved by SAELens (``cfg.json`` +
  ``sae_weights.safetensors``) or by sparsify (``cfg.json`` + ``sae.safetensors``), or either
  library's SAE object -- as a :class:`~sparsolve.SparseCodingModel`: its dictionary is W_dec
  with unit-norm rows d_j = W_dec_j / ‖W_dec_j‖, its offset is b_dec, and ``decoder_scale``
  keeps the norms, so the SAE's activations are a = z / decoder_scale.
* :func:`save_sae` writes a model as a directory SAELens loads (``SAE.load_from_disk``): the
  decoder and b_dec exactly, with an **approximate** encoder, since an SAE's format holds a
  one-layer encoder and no solver (the docstring says which).
* :class:`ExactSAE` is the face SAELens's evaluators expect of an SAE (``W_dec``, ``b_dec``,
  ``encode``, ``decode``, ``cfg``, ``device``, ``dtype``) over a model whose encoder is exact
  inference; :func:`evaluate_synthetic` runs SAELens's SynthSAEBench evaluator
  (``sae_lens.synthetic.eval_sae_on_synthetic_data``) on it.

The SAE files are read and written with ``safetensors`` (a dependency of sparsolve; imported
here only).  SAELens and sparsify themselves are needed only for their objects and the
evaluator (``pip install "sparsolve[peers]"``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .learning.model import SparseCodingModel
from .saefile import CONFIG, SAELENS_DECODERS, SAELENS_WEIGHTS, SIGNED, SPARSIFY_WEIGHTS, _safetensors, save_sae

__all__ = ["from_sae", "save_sae", "ExactSAE", "ExactSAEConfig", "evaluate_synthetic"]

# ---- in ------------------------------------------------------------------------------------


def from_sae(source, *, alpha=None, positive=None) -> SparseCodingModel:
    """The sparse coding model of an SAE: dictionary D = W_dec with unit rows, offset b = b_dec,
    decoder_scale s_j = ‖W_dec_j‖ (1 for SAELens TopK SAEs that rescale by the norms), so that
    the SAE's decoding a W_dec + b_dec is z D + b with z = a·s.

    source : the path of an SAE directory saved by SAELens (``SAE.save_model`` /
        ``save_inference_model``) or by sparsify (``SparseCoder.save_to_disk``; for a run with
        several hookpoints, the hookpoint's own directory), or a SAELens ``SAE`` or sparsify
        ``SparseCoder`` object.
    alpha : the model's default α (an SAE has none: without it, ``model.encode`` takes
        ``alpha=`` or ``l0=``).  A directory written by :func:`save_sae` carries the α it was
        exported with, which is the default then.
    positive : non-negative codes (default: True for ReLU-type SAEs, False for SAELens's signed
        ``abstopk`` and ``matching_pursuit``).

    Transcoders, skip connections, temporal SAEs and activation normalisations that are not
    folded into the weights are refused: their decoders are not a dictionary for the input as
    it is."""
    if isinstance(source, (str, os.PathLike)):
        W_dec, b_dec, info = _read_directory(Path(source))
    elif hasattr(source, "W_dec") and hasattr(source, "b_dec") and hasattr(source, "cfg"):
        W_dec, b_dec, info = _read_object(source)
    else:
        raise TypeError(f"source must be the path of an SAE directory or a SAELens SAE / sparsify SparseCoder "
                        f"(an object with W_dec, b_dec and cfg), got {type(source).__name__}")
    W = np.asarray(W_dec, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != b_dec.shape[0]:
        raise ValueError(f"{info['name']}: W_dec has shape {W.shape} but b_dec {b_dec.shape}; W_dec should be "
                         "(d_sae, d_in) and b_dec (d_in,)")
    if not (np.isfinite(W).all() and np.isfinite(b_dec).all()):
        raise ValueError(f"{info['name']}: W_dec or b_dec holds NaN or Inf values")
    norms = np.linalg.norm(W, axis=1)
    if (norms == 0).any():
        rows = np.flatnonzero(norms == 0)
        raise ValueError(f"{info['name']}: latents {rows[:10].tolist()}{' ...' if rows.size > 10 else ''} have zero "
                         "decoder rows (they decode to nothing, and a dictionary needs unit atoms); remove them "
                         "from W_dec (and the encoder) first")
    scale = np.ones_like(norms) if info.pop("rescaled") else norms
    dtype = np.float64 if info.pop("dtype") == "float64" else np.float32
    signed = info.pop("signed")
    exported_alpha = info.pop("alpha", None)
    alpha = exported_alpha if alpha is None else alpha
    return SparseCodingModel((W / norms[:, None]).astype(dtype), alpha, solver="auto",
                             positive=(not signed) if positive is None else positive,
                             offset=None if info.pop("no_offset", False) else b_dec, decoder_scale=scale,
                             settings={"from_sae": info})


def _read_directory(path: Path):
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory; from_sae reads an SAE directory (cfg.json with "
                                f"{SAELENS_WEIGHTS} or {SPARSIFY_WEIGHTS}) or an SAE object")
    weights = [name for name in (SAELENS_WEIGHTS, SPARSIFY_WEIGHTS) if (path / name).is_file()]
    if not (path / CONFIG).is_file() or not weights:
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and (p / CONFIG).is_file())
        hint = (f"; it holds the SAEs of several hookpoints -- pass one of {inner[:5]}" if inner else
                f"; expected {CONFIG} with {SAELENS_WEIGHTS} (SAELens) or {SPARSIFY_WEIGHTS} (sparsify)")
        raise ValueError(f"{path} is not an SAE directory{hint}")
    try:
        cfg = json.loads((path / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path / CONFIG} is not readable JSON: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"{path / CONFIG} holds a {type(cfg).__name__}, not a JSON object")
    try:
        tensors = _safetensors("torch").load_file(str(path / weights[0]))
    except ImportError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError for damaged files
        raise ValueError(f"{path / weights[0]} is not a readable safetensors file: {e}") from e
    name = str(path)
    for key in ("W_dec", "b_dec"):
        if key not in tensors:
            raise ValueError(f"{path / weights[0]} has no {key!r} tensor (it has {sorted(tensors)}); it is not an SAE "
                             "with a decoder (sparsify saves coders without one when decoder=False)")
    if weights[0] == SAELENS_WEIGHTS:
        info = _saelens_info(cfg, name)
    else:
        info = _sparsify_info(cfg, name, has_skip="W_skip" in tensors)
    info["dtype"] = "float64" if tensors["W_dec"].dtype == torch.float64 else "float32"
    return _host(tensors["W_dec"]), _host(tensors["b_dec"]).astype(np.float64), info


def _read_object(sae):
    cfg = sae.cfg
    name = type(sae).__name__
    if callable(getattr(cfg, "architecture", None)):  # SAELens: cfg.architecture() names the class
        info = _saelens_info({"architecture": cfg.architecture(), **_fields(cfg)}, name)
    elif hasattr(cfg, "transcode"):  # sparsify's SparseCoderConfig
        info = _sparsify_info({**_fields(cfg), "d_in": getattr(sae, "d_in", None)}, name,
                              has_skip=getattr(sae, "W_skip", None) is not None)
    else:
        raise TypeError(f"{name} is neither a SAELens SAE nor a sparsify SparseCoder; save it as one of theirs, "
                        "or build the model directly: SparseCodingModel(W_dec / norms, alpha, offset=b_dec)")
    if sae.W_dec is None:
        raise ValueError(f"{name} has no decoder (sparsify's decoder=False); load it with its decoder")
    info["dtype"] = "float64" if sae.W_dec.dtype in (torch.float64, np.float64) else "float32"
    return _host(sae.W_dec), _host(sae.b_dec).astype(np.float64), info


def _host(t):
    """A tensor or array as a numpy array (bfloat16 and float16 as float32: numpy has no bfloat16)."""
    if torch.is_tensor(t):
        t = t.detach().cpu()
        return (t if t.dtype == torch.float64 else t.float()).numpy()
    return np.asarray(t)


def _fields(cfg):
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    return {k: v for k, v in vars(cfg).items() if not k.startswith("_")}


def _saelens_info(cfg, name):
    arch = cfg.get("architecture", "standard")
    if arch not in SAELENS_DECODERS:
        raise ValueError(f"{name}: SAELens architecture {arch!r} is not read by from_sae: its decoder is not a "
                         f"dictionary for its own input (transcoders, temporal SAEs); it reads {SAELENS_DECODERS}")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", None):
        raise ValueError(f"{name}: normalize_activations={norm!r}, so the decoder works on rescaled activations; "
                         "fold the scaling into the weights first (SAELens: sae.fold_activation_norm_scaling_factor"
                         "(factor) or fold_activation_whitening, then save_model) and pass the folded SAE")
    meta = cfg.get("metadata") or {}
    info = {"library": "sae_lens", "name": name, "architecture": arch, "d_in": cfg.get("d_in"),
            "d_sae": cfg.get("d_sae"), "rescaled": bool(cfg.get("rescale_acts_by_decoder_norm", False)),
            "signed": arch in SIGNED,
            # matching pursuit adds b_dec on decoding only when it subtracts it on encoding
            "no_offset": arch == "matching_pursuit" and not cfg.get("apply_b_dec_to_input", True)}
    for key in ("k", "hook_name", "model_name"):
        value = cfg.get(key, meta.get(key) if isinstance(meta, dict) else None)
        if isinstance(value, (int, float, str)):
            info[key] = value
    exported = meta.get("sparsolve") if isinstance(meta, dict) else None
    if isinstance(exported, dict) and isinstance(exported.get("alpha"), (int, float)):
        info["alpha"] = float(exported["alpha"])
    return info


def _sparsify_info(cfg, name, has_skip):
    if cfg.get("transcode"):
        raise ValueError(f"{name} is a sparsify transcoder: its decoder predicts another module's output, so it is "
                         "not a dictionary for its input; from_sae reads sparse autoencoders")
    if has_skip or cfg.get("skip_connection"):
        raise ValueError(f"{name} has a skip connection (x̂ = a W_dec + b_dec + x W_skip), which no dictionary "
                         "holds; from_sae reads sparse autoencoders without one")
    return {"library": "sparsify", "name": name, "architecture": cfg.get("activation", "topk"),
            "d_in": cfg.get("d_in"), "k": cfg.get("k"), "rescaled": False, "signed": False}


# ---- SAELens's evaluators ------------------------------------------------------------------


@dataclass
class ExactSAEConfig:
    """The fields of a SAELens ``SAEConfig`` that its evaluators and tools read."""

    d_in: int
    """the input width, the model's n_features"""
    d_sae: int
    """the number of latents, the model's n_atoms"""
    dtype: str = "float32"
    """the dtype of W_dec, b_dec and the codes"""
    device: str = "cpu"
    """where W_dec and b_dec live (codes follow the input's device)"""
    apply_b_dec_to_input: bool = True
    """the encoder codes x − b_dec (the model's offset)"""
    normalize_activations: str = "none"
    """no rescaling of the input"""
    reshape_activations: str = "none"
    """no reshaping of the input"""
    metadata: dict = field(default_factory=dict)
    """what SAELens keeps as SAEMetadata: here the α and the solver"""

    @classmethod
    def architecture(cls) -> str:
        return "sparsolve_exact"

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "architecture": self.architecture()}


class ExactSAE(torch.nn.Module):
    """A :class:`~sparsolve.SparseCodingModel` with the face of a SAELens SAE, whose encoder is
    exact inference:

        encode(x) = argmin_z ½‖(x − b) − zD‖² + α‖z‖₁   (z ≥ 0 for a positive model),

    computed by :func:`sparsolve.encode` to the relative duality gap ``tol`` (certified per
    sample; ``last_info`` is the :class:`~sparsolve.EncodeInfo` of the last call), and
    decode(z) = z W_dec + b_dec with W_dec = D (unit atoms) and b_dec = b.

    model : the model (its dictionary, offset and ``positive``).
    alpha : the L1 weight (default the model's α).
    tol, solver, **options : encode's (solver "auto": cd on the CPU, fista on a GPU).
    device : where W_dec and b_dec live ("cpu" or "cuda"); inputs are coded where they are.
    """

    def __init__(self, model: SparseCodingModel, *, alpha=None, tol=1e-4, solver="auto", device="cpu", **options):
        super().__init__()
        if not isinstance(model, SparseCodingModel):
            raise TypeError(f"model must be a SparseCodingModel, got {type(model).__name__}")
        alpha = model.alpha if alpha is None else alpha
        if alpha is None:
            raise ValueError("the model has no α of its own (it was read from an SAE): pass alpha=..., e.g. "
                             "sparsolve.alpha_for_l0(X - model.offset, model.dictionary, l0)")
        self.model = model
        self.alpha = float(alpha)
        self.encode_options = {"tol": tol, "solver": solver, **options}
        self.register_buffer("W_dec", torch.as_tensor(model.dictionary, dtype=torch.float32, device=device))
        b = np.zeros(model.n_features) if model.offset is None else model.offset
        self.register_buffer("b_dec", torch.as_tensor(b, dtype=torch.float32, device=device))
        self.cfg = ExactSAEConfig(model.n_features, model.n_atoms, device=str(device),
                                  metadata={"alpha": self.alpha, "solver": solver, "tol": tol})
        self.last_info = None

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_dec.dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The exact codes (n, d_sae) of the rows of x (n, d_in), in x's dtype and device."""
        if x.ndim != 2 or x.shape[1] != self.cfg.d_in:
            raise ValueError(f"x must have shape (n_samples, {self.cfg.d_in}) (this model's d_in), got "
                             f"{tuple(x.shape)}")
        with torch.no_grad():
            Z, self.last_info = self.model.encode(x.detach(), alpha=self.alpha, return_info=True,
                                                  **self.encode_options)
        return Z

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        """z W_dec + b_dec."""
        return feature_acts @ self.W_dec.to(feature_acts.dtype) + self.b_dec.to(feature_acts.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def evaluate_synthetic(model: SparseCodingModel, synthetic_model, *, alpha=None, num_samples=100_000,
                       batch_size=None, tol=1e-4, solver="auto", **options):
    """SAELens's SynthSAEBench evaluation (``sae_lens.synthetic.eval_sae_on_synthetic_data``:
    MCC, per-latent classification, uniqueness, explained variance, L0, dead latents, shrinkage)
    of ``model`` with exact inference as its encoder (:class:`ExactSAE`).

    synthetic_model : a ``sae_lens.synthetic.SyntheticModel`` (its ``feature_dict`` and
        ``activation_generator`` are the evaluator's ground truth and samples).
    alpha, tol, solver, **options : the encoder's (:class:`ExactSAE`).
    num_samples, batch_size : the evaluator's.

    The model's width must match the synthetic model's hidden dimension; that, and α, are
    checked before any sample is drawn.  Returns SAELens's ``SyntheticDataEvalResult``."""
    feature_dict = getattr(synthetic_model, "feature_dict", None)
    generator = getattr(synthetic_model, "activation_generator", None)
    if feature_dict is None or generator is None:
        raise TypeError(f"synthetic_model must be a sae_lens.synthetic.SyntheticModel (with feature_dict and "
                        f"activation_generator), got {type(synthetic_model).__name__}")
    if not isinstance(model, SparseCodingModel):
        raise TypeError(f"model must be a SparseCodingModel, got {type(model).__name__}")
    n_true, hidden = tuple(feature_dict.feature_vectors.shape)
    if model.n_features != hidden:
        raise ValueError(f"the model codes {model.n_features}-dimensional data but the synthetic model's hidden "
                         f"dimension is {hidden} ({n_true} features); train or load a model of width {hidden}")
    sae = ExactSAE(model, alpha=alpha, tol=tol, solver=solver, device=feature_dict.feature_vectors.device, **options)
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    return eval_sae_on_synthetic_data(sae, feature_dict, generator, num_samples=num_samples, batch_size=batch_size)
