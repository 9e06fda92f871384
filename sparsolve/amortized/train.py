"""``fit_amortized``: train the learned-G encoder by backprop (Adam on mini-batches).

Two modes, with z = encode(x) and x̂ = W_d z + b_d (see :mod:`.learned_g`):

* ``"amortize"`` -- a given dictionary D stays fixed as the decoder (W_d = Dᵀ, b_d = 0);
  W_e, b_e, G (and γ, θ) learn, from the LCA (or ISTA) initialisation, either
  ``target="lasso"``:  min E[ ½‖x − zD‖² + α‖z‖₁ ]  (the lasso objective of its own codes), or
  ``target="codes"``:  min E[ ½‖z − z*‖² ]  with z* the exact lasso codes (distillation).
* ``"autoencoder"`` -- the seed's setting: everything learns on
  E[ ½‖x − x̂‖² + α‖z‖₁ ], under a rule that stops the encoder from shrinking its
  weights (making z, and so the L1 term, small) while W_d grows to compensate:
  ``"unit"`` projects the atoms (columns of W_d) back to unit norm after every step;
  ``"inverse_penalty"`` adds the seed's inverse penalty β Σ_j 1/‖w_j‖² over the rows w_j of W_e;
  ``"none"`` is the ablation, where the history shows the cheat.

The history holds one entry per step; G's off-diagonal signs tell explaining away
(> 0, inhibition) from facilitation (< 0).  At t* = 0 there is no G (its entries read 0).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from .. import backend
from ..config import AmortizedConfig, deprecated
from ..inference import encode
from ..io import load_npz, save_npz
from ..learning import training
from ..learning.batches import describe, fingerprint
from ..learning.checkpoint import check_writable, npz_path
from ..learning.history import history_arrays, history_from_arrays
from .learned_g import LearnedG, data_array, dictionary_array

CHECKPOINT_KIND = "learned_g_checkpoint"


def fit_amortized(X, dictionary=None, *, t_star=None, alpha=None, progress=True, checkpoint=None, callback=None,
                  init=None, config=None, signed=None, **options):
    """Train and return a :class:`LearnedG` of depth ``t_star``; its per-step
    history is the dict of lists ``model.history_``.

    The settings are the fields of :class:`sparsolve.config.AmortizedConfig` (``t_star``,
    ``alpha`` and ``**options``, or a whole ``config``); their docstrings there say what
    each means.  Notes on some of them:

    mode : "amortize" or "autoencoder" (module docstring).
    norm : "unit" (default), "inverse_penalty" (the seed's β Σ 1/‖w_j‖²) or "none"
        (``mode="autoencoder"`` only); ``norm="penalty"`` is the deprecated spelling.
    positive : nonnegative (ReLU) codes, the default; ``signed=True`` is the deprecated
        spelling of ``positive=False``.
    lr_schedule : "cosine" (default) takes Adam's step at step s as lr·½(1 + cos(π s/S)) over the
        S = n_epochs · ⌈n_samples/batch_size⌉ steps that the epochs plan; "constant" keeps lr.
        With ``max_steps`` alone there is no plan (a resumed run may raise the cap), so the
        step stays lr.  Why cosine: the lasso objective per patch spans orders of magnitude
        (flat to high-contrast patches), so mini-batch gradients stay noisy at a constant
        step and (our reading) the encoder hovers above the minimum; decaying the step lets it settle.  On
        8×8 patches, 256 atoms, T = 2, 3,000 Adam steps at lr 1e-2, the held-out gap to the
        lasso optimum fell from 10.3 % (constant) to 6.2 % (cosine).
    lr, n_epochs : by default, the schedule that trained best in benchmarks/amortized.py, taken
        from the start and the data size (``AmortizedConfig.resolved``): Adam's step 3e-3 from
        ISTA's start (the default ``scheme``), 1e-2 from LCA's (1e-3 for ``mode="autoencoder"``),
        and 12 epochs, but at least 1,000 steps (fewer than about 21,000 rows at batch 256) and
        at most about 5,000 (more than about 106,000 rows).
        ``model.config_`` holds the settings the run used.  On other data (benchmarks/amortized_defaults.py:
        8×8 patches at unit variance, a scikit-learn dictionary, two α, 10,000 and 50,000 rows)
        this schedule came within 0.77–1.00× of the best recipe's held-out gap, the old defaults
        (LCA's start, lr 1e-3, 10 epochs) at 2.0–4.9×; RESULTS.md has the table.
    n_epochs, max_steps : passes over X and/or a cap on steps.  The
        training set must be large first: the held-out gap is set by the rare high-contrast
        patches, which a small set covers poorly (same run, 1,000 steps: 33 % gap from 1,000
        patches, 17 % from 4,000, 9.5 % from 20,000, 8.1 % from 100,000).  On a large set the
        number of steps matters next, up to a floor (ISTA init, lr 3e-3, batch 256, 8×8
        patches, 256 atoms, α = 0.05): 12 epochs of 100,000 patches instead of 3 (4,692
        steps, not 1,173) took the gap from 5.7 % to 4.4 % at t* = 2 and from 5.0 % to
        2.5 % at t* = 5; neither 400,000 patches nor 15,630 steps went below 4.1 % (t* = 2)
        and 2.2 % (t* = 5).

    Parameters
    ----------
    X : (n_samples, n_features) training data (numpy or torch).
    dictionary : (n_atoms, n_features) array or a fitted model with ``.dictionary``.
        Required for ``mode="amortize"``; for ``"autoencoder"`` it is the optional
        starting point (else unit-norm random atoms, tied W_e, G = 0, b_d = mean(X)).
    progress : a tqdm progress bar.
    checkpoint : a path; written atomically every ``checkpoint_every`` steps, at the end and
        on Ctrl-C/SIGTERM, and resumed from when it exists (same settings and data required).
    callback : ``callback(step, model, record)`` after every step; returning False stops
        the training (as in :func:`sparsolve.fit`).
    init : a :class:`LearnedG` to train further instead of a fresh one -- a loaded encoder
        to fine-tune on new data, or a subclass with another inner loop.  It must have
        this ``t_star``, ``positive``, ``tied`` and the dictionary's shape (and, for
        ``mode="amortize"``, the dictionary as its decoder); it is trained in place
        (moved to ``device`` and ``dtype``) and returned.  ``gamma`` and ``learn_gamma``
        are then its own; ``scheme`` only picks the default ``lr``, so pass the start it
        came from (``scheme="lca"`` for an encoder that started as the seed's LCA).
    """
    if signed is not None:
        deprecated("fit_amortized(signed=...)", "positive=not signed")
        options["positive"] = not signed
    if config is None:
        if t_star is None or alpha is None:
            raise TypeError("fit_amortized needs t_star= and alpha= (or config=)")
        config = AmortizedConfig(t_star, alpha, **options)
    mode, target, norm, alpha, beta = config.mode, config.target, config.norm, config.alpha, config.beta
    n_atoms, gamma, signed = config.n_atoms, config.gamma, not config.positive
    D = None
    if dictionary is not None or mode == "amortize":
        D = dictionary_array(dictionary)
        if n_atoms is not None and n_atoms != D.shape[0]:
            raise ValueError(f"n_atoms={n_atoms} does not match the dictionary's {D.shape[0]} atoms; "
                             "leave n_atoms unset")
        n_atoms = D.shape[0]
    elif n_atoms is None and isinstance(init, LearnedG):
        n_atoms = init.n_atoms
    elif n_atoms is None:
        raise ValueError("mode='autoencoder' without a dictionary needs n_atoms, the number of units")
    Xn = data_array(X, D)
    n, p = Xn.shape
    # lr and the epochs follow the start and the data size; the checkpoint stores them resolved
    config = dataclasses.replace(config, n_atoms=n_atoms).resolved(n)
    batch_size, n_epochs, lr = config.batch_size, config.n_epochs, config.lr
    steps_per_epoch = math.ceil(n / batch_size)
    total = min(s for s in (None if n_epochs is None else n_epochs * steps_per_epoch, config.max_steps)
                if s is not None)
    horizon = None if config.lr_schedule == "constant" or n_epochs is None else n_epochs * steps_per_epoch
    data_id = fingerprint(Xn)
    saved = None
    if checkpoint is not None:
        check_writable(checkpoint, "checkpoint")
        if npz_path(checkpoint).exists():
            saved = load_npz(npz_path(checkpoint), CHECKPOINT_KIND)
            if config.seed is None:
                config = dataclasses.replace(config, seed=saved[1]["config"]["seed"])
    if config.seed is None:
        config = dataclasses.replace(config, seed=int(np.random.SeedSequence().generate_state(1)[0]))
    seed = config.seed
    dev = _device(config.device)
    tdtype = getattr(torch, config.dtype)

    if init is not None:
        model = _check_init(init, D, n_atoms, p, config, mode).to(device=dev, dtype=tdtype)
    elif D is not None:
        model = LearnedG.from_dictionary(D, alpha, config.t_star, gamma, signed, config.learn_gamma,
                                         scheme=config.scheme, tied=config.tied, accelerate=config.accelerate,
                                         dtype=tdtype, device=dev)
    else:
        model = LearnedG(p, n_atoms, config.t_star, 1.0 if gamma is None else gamma, config.learn_gamma, signed,
                         tied=config.tied, accelerate=config.accelerate, dtype=tdtype, device=dev, seed=seed)
        with torch.no_grad():
            model.b_d.copy_(torch.as_tensor(Xn.mean(axis=0)))
    if mode == "amortize":
        model.W_d.requires_grad_(False)
        model.b_d.requires_grad_(False)
    Xt = torch.as_tensor(Xn, dtype=tdtype, device=dev)
    Zt = None
    if target == "codes":
        Zt = torch.as_tensor(encode(Xn, D, alpha, solver="cd", positive=not signed, tol=1e-6),
                             dtype=tdtype, device=dev)
    optimizer = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=lr)
    shape = {"n_features": p, "n_samples": n}
    history, step, seconds = {}, 0, 0.0
    if saved is not None:
        step, seconds, history = _resume(checkpoint, saved, config, shape, data_id, model, optimizer)

    def steps():
        nonlocal step
        order = None
        start = time.perf_counter() - seconds
        while step < total:
            epoch, k = divmod(step, steps_per_epoch)
            if k == 0 or order is None:
                # the batch order is a function of (seed, epoch), so a resumed run sees the same batches
                order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n), device=dev)
            idx = order[k * batch_size:(k + 1) * batch_size]
            if horizon is not None:
                # a function of the step alone, so a resumed run continues the same schedule
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / horizon))
            record = _train_step(model, optimizer, Xt[idx], None if Zt is None else Zt[idx],
                                 mode, target, norm, alpha, beta)
            step += 1
            record["step"] = step
            record["samples_seen"] = (history["samples_seen"][-1] if history else 0) + len(idx)
            record["seconds"] = time.perf_counter() - start
            for key, v in record.items():
                history.setdefault(key, []).append(v)
            yield step, model, record

    def save():
        _save_checkpoint(checkpoint, config, shape, data_id, model, optimizer, history, step,
                         history["seconds"][-1] if history else 0.0)

    training.run(steps(), total=total, initial=step, desc=f"fit_amortized({mode}, t*={config.t_star})",
                 progress=progress, save=None if checkpoint is None else save,
                 checkpoint_every=config.checkpoint_every, callback=callback, postfix_every=10,
                 postfix=lambda r: {"loss": f"{r['loss']:.4g}", "nnz": f"{r['nnz_frac']:.3f}"})
    model.history_ = history
    model.config_ = config
    return model


def _train_step(model, optimizer, x, z_star, mode, target, norm, alpha, beta):
    z = model._encode(x)
    r = x - model._decode(z)
    sq = 0.5 * (r * r).sum(dim=-1).mean()
    l1 = z.abs().sum(dim=-1).mean()
    objective = sq + alpha * l1
    if target == "codes":
        d = z - z_star
        loss = 0.5 * (d * d).sum(dim=-1).mean()
    else:
        loss = objective
    if mode == "autoencoder" and norm == "inverse_penalty":
        loss = loss + beta * (1.0 / (model.W_e * model.W_e).sum(dim=1)).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if mode == "autoencoder" and norm == "unit":
        with torch.no_grad():
            model.W_d.div_(model.W_d.norm(dim=0, keepdim=True).clamp_min(1e-12))
    with torch.no_grad():
        active = z != 0
        record = {"loss": loss.item(), "objective": objective.item(), "mse": float((r * r).mean()),
                  "l1": l1.item(), "nnz_frac": float(active.float().mean()),
                  "dead_frac": float((~active.any(dim=0)).float().mean()),
                  # untied, the mean of the per-step γ_t
                  "gamma": float(model.log_gamma.detach().exp().mean())}
        for name, norms in (("enc", model.W_e.norm(dim=1)), ("dec", model.W_d.norm(dim=0))):
            record[f"{name}_norm_min"] = float(norms.min())
            record[f"{name}_norm_mean"] = float(norms.mean())
            record[f"{name}_norm_max"] = float(norms.max())
        record.update(_g_signs(model.G))
    return record


def _g_signs(G) -> dict:
    """The fractions of G's off-diagonal entries > 0 and < 0, and their mean (every step's
    G_t, untied); 0 where there are none: one atom, or t* = 0, which has no G."""
    if G is None or G.shape[-1] < 2:
        return {"G_offdiag_pos_frac": 0.0, "G_offdiag_neg_frac": 0.0, "G_offdiag_mean": 0.0}
    off = G[..., ~torch.eye(G.shape[-1], dtype=torch.bool, device=G.device)]
    return {"G_offdiag_pos_frac": float((off > 0).float().mean()),
            "G_offdiag_neg_frac": float((off < 0).float().mean()), "G_offdiag_mean": float(off.mean())}


# ---------------------------------------------------------------------- checkpoints

def _save_checkpoint(path, config, shape, data_id, model, optimizer, history, step, seconds):
    arrays = {f"model/{k}": v for k, v in model.arrays().items()}
    for idx, state in optimizer.state_dict()["state"].items():
        for k, v in state.items():
            arrays[f"opt/{idx}/{k}"] = backend.to_numpy(v) if isinstance(v, torch.Tensor) else np.asarray(v)
    arrays.update(history_arrays(history))
    save_npz(path, CHECKPOINT_KIND, arrays, {"config": dataclasses.asdict(config), **shape, "data": data_id,
                                             "step": step, "seconds": seconds})


def _resume(path, saved, config, shape, data_id, model, optimizer):
    arrays, meta = saved
    theirs = {**meta.get("config", {}), **{k: meta.get(k) for k in shape}}
    differ = config.resume_mismatch(theirs) + [k for k in shape if theirs[k] != shape[k]]
    if differ:
        now = {**dataclasses.asdict(config), **shape}
        detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {now[k]!r}" for k in differ)
        raise ValueError(f"checkpoint {path} was written with other settings ({detail}); "
                         "pass the same settings or another checkpoint path")
    if meta.get("data") is not None and meta["data"] != data_id:
        raise ValueError(f"checkpoint {path} was written on other data: it saw {describe(meta['data'])}, this "
                         f"training has {describe(data_id)}; use that data or another checkpoint path")
    model.load_state_dict({k: torch.as_tensor(arrays[f"model/{k}"]) for k in model.state_dict()})
    # the optimizer's state is numbered by the trained parameters in order; a t* = 0 checkpoint
    # written while t* = 0 still had a G counted G (with no state: it had no gradient) after b_e
    trained = [k for k, q in model.named_parameters() if q.requires_grad]
    saved_order = trained
    if "model/G" in arrays and model.G is None:
        at = trained.index("b_e") + 1
        saved_order = trained[:at] + ["G"] + trained[at:]
    state = {}
    for key, v in arrays.items():
        if key.startswith("opt/"):
            _, idx, name = key.split("/")
            state.setdefault(trained.index(saved_order[int(idx)]), {})[name] = torch.as_tensor(v)
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return int(meta["step"]), float(meta["seconds"]), history_from_arrays(arrays)


# ---------------------------------------------------------------------- argument checks

def _check_init(init, D, n_atoms, n_features, config, mode):
    if not isinstance(init, LearnedG):
        raise TypeError(f"init must be a LearnedG (or a subclass), got {type(init).__name__}")
    for name, have, want in (("n_atoms", init.n_atoms, n_atoms), ("n_features", init.n_features, n_features),
                             ("t_star", init.t_star, config.t_star), ("signed", init.signed, not config.positive),
                             ("tied", init.tied, config.tied), ("accelerate", init.accelerate, config.accelerate)):
        if have != want:
            raise ValueError(f"init has {name}={have!r} but this training asks for {name}={want!r}; "
                             "pass the matching setting or another encoder")
    if mode == "amortize" and not np.allclose(init.dictionary, D, rtol=1e-5, atol=1e-6):
        raise ValueError("init's decoder is not the dictionary: mode='amortize' trains the encoder under a fixed "
                         "dictionary, so start from LearnedG.from_dictionary(D, ...) or an encoder trained for D")
    return init


def _device(device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'")
    return dev
