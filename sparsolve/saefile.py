"""The SAE directory formats: what SAELens and sparsify write, and :func:`save_sae`, which writes a
model as a directory SAELens loads.

Kept apart from :mod:`sparsolve.sae` (which builds models from SAEs, and so imports the model)
so that ``SparseCodingModel.save_sae`` can call down into it: the import graph has no cycle.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, backend

#: The weight files of the two libraries' SAE directories, beside their ``cfg.json``.
SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
CONFIG = "cfg.json"

#: SAELens architectures whose decoder is x̂ = a W_dec + b_dec (TopK's optionally with a / ‖W_dec_j‖),
#: and which of them have signed activations.  Transcoders predict another layer's output and
#: temporal SAEs mix tokens: neither is a dictionary for its own input.
SAELENS_DECODERS = ("standard", "gated", "topk", "batchtopk", "matryoshka_batchtopk", "abstopk", "jumprelu",
                    "matching_pursuit")
SIGNED = ("abstopk", "matching_pursuit")

#: The format version written into an exported cfg.json: the SAELens 6 layout (cfg fields, metadata).
SAELENS_FORMAT = "6.0.0"

# Rows coded, and encoder columns sorted, per block in save_sae: bounded memory at 16,384 latents.
_BLOCK = 1024


def _safetensors(framework="numpy"):
    """safetensors' numpy module (for writing) or its torch module (for reading: it reads the bfloat16
    that SAEs are often saved in, which numpy has no type for)."""
    try:
        import safetensors.numpy
        import safetensors.torch
    except ImportError as e:
        raise ImportError("reading and writing SAE files needs safetensors: pip install safetensors "
                          "(a dependency of sparsolve; your environment lacks it)") from e
    return safetensors.torch if framework == "torch" else safetensors.numpy


# ---- out -----------------------------------------------------------------------------------


def save_sae(model, path, X, *, alpha=None, l0=None, n_samples=4096, seed=0, **options) -> Path:
    """Write ``model`` as a SAELens SAE directory (``cfg.json`` + ``sae_weights.safetensors``,
    each file written atomically) that ``sae_lens.SAE.load_from_disk(path)`` loads; returns the path.

    The decoder is exact: W_dec = D·s (s the model's ``decoder_scale``, else 1) and b_dec = b (the
    offset, else 0).  The encoder is an **approximation** of exact inference, which no SAE file
    can hold: the pre-activation h = (x − b) W_enc with W_enc = (D / s)ᵀ, b_enc = 0, and

    * positive models: SAELens's JumpReLU, a_j = h_j · 1[h_j > θ_j], with each θ_j the quantile
      of h_j on the rows X at which latent j fires as often as its exact code z_j ≠ 0 does there
      (so the exported encoder's L0 on X matches exact inference's);
    * signed models: SAELens's AbsTopK with k = round(mean L0 of the exact codes on X).

    X : rows of the data (n_samples of them, a seeded sample, are coded) to fit the encoder on.
    alpha, l0, **options : how the exact codes are taken (``model.encode``'s; default the model's α).

    A directory that exists is written into (its cfg.json and weights replaced); the α used is
    recorded in the config's metadata, so :func:`from_sae` reads it back as the model's α."""
    st = _safetensors()
    if not all(hasattr(model, a) for a in ("dictionary", "offset", "decoder_scale", "encode", "centered")):
        raise TypeError(f"model must be a SparseCodingModel, got {type(model).__name__}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"path={str(path)!r} is a file; save_sae writes a directory (cfg.json + weights)")
    if not backend.is_array(X) or X.ndim != 2 or X.shape[1] != model.n_features or X.shape[0] == 0:
        raise ValueError(f"X must be rows of the data, shape (n_samples, {model.n_features}), got "
                         f"{getattr(X, 'shape', type(X).__name__)}")
    n = X.shape[0]
    rows = np.arange(n) if n <= n_samples else np.sort(np.random.default_rng(seed).choice(n, n_samples, replace=False))
    Xs = np.asarray(backend.to_numpy(backend.take_rows(X, rows)), dtype=np.float64)
    D = model.dictionary.astype(np.float64)
    if alpha is None and l0 is not None:
        from .inference import alpha_for_l0

        alpha = alpha_for_l0(model.centered(Xs), D, l0, positive=model.positive)
    alpha = model.alpha if alpha is None else float(alpha)
    if alpha is None:
        raise ValueError("the model has no α of its own (it was read from an SAE): pass alpha=... or l0=... for the "
                         "exact codes the encoder is fitted to")
    # the exact codes, _BLOCK rows at a time: only their firing counts are kept
    fired = np.zeros(model.n_atoms)
    for lo in range(0, len(rows), _BLOCK):
        fired += (model.encode(Xs[lo:lo + _BLOCK], alpha=alpha, **options) != 0).sum(axis=0)
    exact_l0 = float(fired.sum() / len(rows))
    s = np.ones(model.n_atoms) if model.decoder_scale is None else model.decoder_scale
    b = np.zeros(model.n_features) if model.offset is None else model.offset
    W_enc = (D / s[:, None]).T
    weights = {"W_enc": W_enc, "b_enc": np.zeros(model.n_atoms), "W_dec": D * s[:, None], "b_dec": b}
    if model.positive:
        arch, extra = "jumprelu", {}
        weights["threshold"] = _thresholds(Xs - b, W_enc, np.rint(fired).astype(np.int64))
    else:
        arch = "abstopk"
        extra = {"k": max(1, int(round(exact_l0))), "rescale_acts_by_decoder_norm": False}
    cfg = {"architecture": arch, "d_in": model.n_features, "d_sae": model.n_atoms, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none", **extra,
           "metadata": {"sae_lens_version": SAELENS_FORMAT, "sae_lens_training_version": SAELENS_FORMAT,
                        "sparsolve": {"version": __version__, "alpha": alpha, "exact_l0": exact_l0,
                                      "encoder": f"approximate ({arch} fitted to exact inference's firing on "
                                                 f"{len(rows)} rows); exact codes: sparsolve.from_sae(path).encode"}}}
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    _write_atomic(path / SAELENS_WEIGHTS, st.save(tensors))
    _write_atomic(path / CONFIG, json.dumps(cfg, indent=1).encode())
    return path


def _thresholds(Xc, W_enc, counts):
    """θ_j with h_j > θ_j on ``counts[j]`` of the rows, h = Xc W_enc: the (counts[j] + 1)-th largest
    h_j (its largest where the count is 0, so that latent never fires on these rows), never below 0,
    where the ReLU before JumpReLU's jump already cuts.  _BLOCK columns at a time."""
    n, m = Xc.shape[0], W_enc.shape[1]
    theta = np.empty(m)
    for lo in range(0, m, _BLOCK):
        H = np.sort(Xc @ W_enc[:, lo:lo + _BLOCK], axis=0)[::-1]  # each column descending
        k = np.minimum(counts[lo:lo + _BLOCK], n - 1)
        theta[lo:lo + _BLOCK] = H[k, np.arange(H.shape[1])]
    return np.maximum(theta, 0.0)


def _write_atomic(target: Path, data: bytes) -> None:
    """``data`` to ``target`` through a temporary file in the same folder, flushed and renamed
    over it, so a crash leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
