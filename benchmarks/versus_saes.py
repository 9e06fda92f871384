"""The seed's thesis against the SAE libraries: at equal sparsity and equal tokens, which
recovers the planted features and reconstructs better?

    python benchmarks/versus_saes.py [--size small|cpu|gpu|example|smoke] [--device cpu|cuda] [--epochs N]

Data: :class:`sparsolve.data.SyntheticActivations` (planted unit features, power-law
frequencies, correlated groups, noise).  Every method trains on the same training tokens
(split 0), the same number of them (``--epochs`` passes over ``--tokens``), and is scored on
the same held-out tokens (split 1):

* ``fit (exact)``: ``sparsolve.fit`` with exact inference in the inner loop (``cd`` on the
  CPU, ``fista`` on CUDA), non-negative codes, unit-norm atoms; scored with exact inference
  (``encode``, cd, relative gap 1e-4); knob α;
* ``AE t*=0/1/5``: ``sparsolve.fit_amortized(mode="autoencoder")``, the seed's learned-G
  autoencoder (t* = 0 is the plain SAE), unit-norm decoder; scored with its own encoder; knob α;
* ``sparsify TopK``: EleutherAI's ``SparseCoder`` trained with sparsify's own loss (its
  ``fvu``), its default optimiser (signum: ``SignSGD`` in a ``ScheduleFreeWrapper``, the lr
  its ``Trainer`` picks) and its decoder-norm steps, in the order its ``Trainer`` runs them
  (the ``Trainer`` itself only takes a Hugging Face model); knob k;
* ``AE t*=T then cd``: the amortized start plus exact refinement, the ``AE t*=T`` model
  (trained once, not again) as the start of exact inference on its own decoder,
  ``encode(X, W_d, α, solver="cd", init=encoder)`` (fista on CUDA), certified to the same gap
  as a cold start; scored as exact inference, its held-out encode time beside cold cd's;
* ``SAELens L1`` / ``SAELens TopK`` / ``SAELens JumpReLU``: SAELens' ``StandardTrainingSAE`` /
  ``TopKTrainingSAE`` / ``JumpReLUTrainingSAE`` (its defaults: DeepMind's step L0 loss,
  threshold 0.01, bandwidth 0.05) trained by its own ``SAETrainer`` on our batches (the way
  its ``train_toy_sae`` feeds its own synthetic data); knobs the L1 coefficient, k and the
  L0 coefficient.

Metrics on the held-out tokens: recovery (fraction of planted features with an atom at
|cos| > 0.9), mean max cosine, FVU, L0, dead fraction, training wall time, and the wall time
to encode the held-out tokens.

The inference-only comparison: for every SAE, its decoder rows as a dictionary and
sparsolve's exact inference on it, α bisected to the SAE's own L0.  Then at one L0
    FVU(SAE encoder) − FVU(exact on SAE decoder)      = the amortisation gap (the encoder),
    FVU(exact on SAE decoder) − FVU(exact on fit's D) = the dictionary gap,
with fit's dictionary the one from the sweep whose L0 is nearest, α again bisected, on the
first ``--gap-tokens`` held-out tokens (each bisection step is a full exact solve).
Exact inference is the lasso, whose codes shrink; its FVU at a given L0 carries that bias.

A peer that is not installed (or fails) is reported in the output and in the table as
"not run: <reason>", never skipped silently.  The peers are in ``pip install -e ".[peers]"``.

The run writes its report (JSON, Markdown, a PNG) to ``--out`` and ends in ``harness.record``:
the case ``versus_saes_<size>[_<tokens>tok]_<epochs>ep[_<device>]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np
import torch

import sparsolve
from sparsolve import metrics
from sparsolve.data import SyntheticActivations
from sparsolve.inference import ConvergenceWarning

ROOT = Path(__file__).resolve().parent.parent

# (d, planted features, atoms, training tokens, held-out tokens); the sizes are cpu and gpu.
SIZES = {
    "smoke": (16, 32, 32, 4_000, 500),
    "example": (32, 128, 128, 40_000, 2_000),
    "small": (64, 256, 256, 100_000, 4_000),
    "cpu": (256, 4_096, 4_096, 1_000_000, 8_000),
    "gpu": (768, 16_384, 16_384, 1_000_000, 16_000),
}
# Sparsity knobs per method.  The planted L0 is MEAN_ACTIVE; the sweeps bracket it.
MEAN_ACTIVE = 4.0
ALPHAS = (0.1, 0.2, 0.4)
# A one-layer encoder does no explaining away, so at one α it is far less sparse (L0 40 at
# α = 0.1 in the small size): the autoencoders sweep larger α to reach the same L0 range.
AE_ALPHAS = (0.2, 0.4, 0.8)
KS = (3, 5, 8)
# SAELens' loss is ‖x − x̂‖² + c Σ_i |z_i| ‖d_i‖, twice ours at α = c/2: these match AE_ALPHAS.
L1_COEFFICIENTS = (0.4, 0.8, 1.6)
# SAELens JumpReLU's step loss is ‖x − x̂‖² + c·L0: a latent pays c to switch on, so c is the
# squared error (a planted feature's is about 1 here) it must remove.
L0_COEFFICIENTS = (0.05, 0.15, 0.5)
DEPTHS = (0, 1, 5)


@dataclass
class Row:
    method: str
    knob: str
    recovered: float = math.nan
    mean_max_cos: float = math.nan
    fvu: float = math.nan
    l0: float = math.nan
    dead: float = math.nan
    seconds: float = math.nan
    encode_seconds: float = math.nan  # encoding the held-out tokens
    cold_seconds: float = math.nan  # the same exact inference from z = 0 (the refined rows only)
    note: str = ""


def score(method, knob, atoms, Z, X_hat, X_test, planted, seconds):
    r = metrics.recovery(atoms, planted)
    return Row(method, knob, r.recovered, r.mean_max_cos, metrics.fvu(X_test, X_hat), metrics.l0(Z),
               metrics.dead_fraction(Z), seconds)


def exact_codes(X, D, alpha, solver, device="cpu"):
    """Exact inference, relative duality gap 1e-4; on ``device`` (encode runs where its input is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if device == "cpu":
            return sparsolve.encode(X, D, alpha, solver=solver, positive=True, tol=1e-4)
        X, D = (torch.as_tensor(a, device=device) for a in (X, D))
        return sparsolve.encode(X, D, alpha, solver=solver, positive=True, tol=1e-4).cpu().numpy()


def unit_rows(D):
    D = np.asarray(D, dtype=np.float32)
    n = np.linalg.norm(D, axis=1, keepdims=True)
    return np.divide(D, n, out=np.zeros_like(D), where=n > 0)


def match_l0(X, D, target, solver, device, steps=12):
    """α such that exact inference on D gives L0 ≈ target on X (bisection in log α);
    returns (α, Z)."""
    hi = float(np.abs(X @ D.T).max())  # at α ≥ max|⟨x, d⟩| every code is 0
    lo = 1e-3 * hi  # the L0 this benchmark sweeps (≤ 30) sits well above; smaller α only costs dense solves
    best = None
    for _ in range(steps):
        alpha = math.sqrt(lo * hi)
        Z = exact_codes(X, D, alpha, solver, device)
        l0 = metrics.l0(Z)
        if best is None or abs(l0 - target) < abs(best[2] - target):
            best = (alpha, Z, l0)
        if abs(l0 - target) < 0.02 * target:
            break
        lo, hi = (alpha, hi) if l0 > target else (lo, alpha)
    return best[0], best[1]


# ---- the methods: each returns (atoms (m, d), encode(X) -> Z, decode(Z) -> X̂) -------------
def run_fit(X, m, alpha, args):
    model = sparsolve.fit(X, n_atoms=m, alpha=alpha, solver=args.solver, positive=True, batch_size=args.fit_batch,
                          n_epochs=args.epochs, forget=20.0, seed=args.seed, progress=False,
                          device=args.device)
    D = np.asarray(model.dictionary, dtype=np.float32)
    return D, (lambda T: exact_codes(T, D, alpha, args.solver, args.device)), (lambda Z: Z @ D)


def train_autoencoder(X, m, alpha, t_star, args):
    """The seed's autoencoder, trained once per (t*, α): its row and its refined row share it.
    Returns (encoder, training seconds)."""
    key = (t_star, alpha)
    if key not in args.autoencoders:
        start = time.perf_counter()
        enc = sparsolve.fit_amortized(X, t_star=t_star, mode="autoencoder", n_atoms=m, alpha=alpha, norm="unit",
                                      lr=args.lr, batch_size=args.batch, n_epochs=args.epochs, seed=args.seed,
                                      progress=False, device=args.device)
        args.autoencoders[key] = (enc, time.perf_counter() - start)
    return args.autoencoders[key]


def run_autoencoder(X, m, alpha, t_star, args):
    enc, seconds = train_autoencoder(X, m, alpha, t_star, args)
    return enc.dictionary, enc.encode, enc.decode, dict(seconds=seconds)


def run_refined(X, m, alpha, t_star, args):
    """Amortized start, exact finish: exact inference on the autoencoder's decoder W_d from
    its own codes, ``encode(X, W_d, α, init=encoder)``; the same inference from z = 0 is timed
    beside it (``cold_seconds``).  The decoder's bias b_d is left out, as for fit's D."""
    enc, seconds = train_autoencoder(X, m, alpha, t_star, args)
    args.autoencoders.pop((t_star, alpha))  # its last use: free its m × m G
    D = np.asarray(enc.dictionary, dtype=np.float32)
    extra = dict(seconds=seconds)

    def encode(T):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            exact_codes(T, D, alpha, args.solver, args.device)
            extra["cold_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            if args.device == "cpu":
                Z = sparsolve.encode(T, D, alpha, solver=args.solver, positive=True, tol=1e-4, init=enc)
            else:
                T, Dd = (torch.as_tensor(a, device=args.device) for a in (T, D))
                Z = sparsolve.encode(T, Dd, alpha, solver=args.solver, positive=True, tol=1e-4,
                                     init=enc).cpu().numpy()
            extra["encode_seconds"] = time.perf_counter() - start  # the encoder's pass included
            return Z

    return D, encode, (lambda Z: Z @ D), extra


def batches(X, args):
    """The training tokens as torch batches, ``args.epochs`` passes, in the order fit sees them."""
    for epoch in range(args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(len(X))
        for i in range(0, len(X) - args.batch + 1, args.batch):
            yield torch.as_tensor(X[np.sort(order[i:i + args.batch])], device=args.device)


def run_sparsify(X, m, k, args, data=None):
    """sparsify's TopK SparseCoder trained on ``data`` (default ``batches(X, args)``)."""
    from schedulefree import ScheduleFreeWrapper
    from sparsify import SparseCoder, SparseCoderConfig
    from sparsify.sign_sgd import SignSGD

    torch.manual_seed(args.seed)
    sae = SparseCoder(X.shape[1], SparseCoderConfig(num_latents=m, k=k), torch.device(args.device),
                      dtype=torch.float32)
    # sparsify's Trainer, optimizer="signum" (its default): this lr, this wrapper.
    opt = ScheduleFreeWrapper(SignSGD([dict(params=sae.parameters(), lr=5e-3 / (m / 2 ** 14) ** 0.5)]),
                              momentum=0.95)
    opt.train()
    for step, x in enumerate(batches(X, args) if data is None else data):
        if step == 0:
            sae.b_dec.data = x.mean(0)  # the Trainer's first step: centred pre-activations
        sae.set_decoder_norm_to_unit_norm()
        out = sae(x)
        out.fvu.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
    opt.eval()  # schedule-free: evaluate at the averaged weights, as the Trainer saves them
    sae.set_decoder_norm_to_unit_norm()

    def encode(T):
        with torch.no_grad():
            acts, idx, _ = sae.encode(torch.as_tensor(T, device=args.device))
            Z = torch.zeros(len(T), m, device=args.device).scatter_(1, idx, acts.float())
        return Z.cpu().numpy()

    def decode(Z):
        with torch.no_grad():
            return (torch.as_tensor(Z, device=args.device) @ sae.W_dec + sae.b_dec).cpu().numpy()

    return sae.W_dec.detach().cpu().numpy(), encode, decode


def run_saelens(X, m, kind, knob, args, data=None):
    """A SAELens SAE trained by its SAETrainer on ``data`` (default ``batches(X, args)``; it
    takes ``args.epochs · (len(X) // args.batch)`` of them)."""
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(args.seed)
    common = dict(d_in=X.shape[1], d_sae=m, device=args.device)
    if kind == "L1":
        from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig

        sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=knob, **common))
    elif kind == "TopK":
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

        sae = TopKTrainingSAE(TopKTrainingSAEConfig(k=knob, **common))
    else:
        from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

        sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(l0_coefficient=knob, **common))
    n_steps = args.epochs * (len(X) // args.batch)
    cfg = SAETrainerConfig(  # the settings of SAELens' own train_toy_sae
        total_training_samples=n_steps * args.batch, train_batch_size_samples=args.batch, device=args.device,
        lr=args.sae_lr, lr_end=args.sae_lr, lr_scheduler_name="constant", n_checkpoints=0, checkpoint_path=None,
        save_final_checkpoint=False, dead_feature_window=1000, feature_sampling_window=2000,
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2 ** 31 - 1))
    SAETrainer(cfg=cfg, sae=sae, data_provider=batches(X, args) if data is None else iter(data)).fit()
    sae.eval()

    def encode(T):
        with torch.no_grad():
            return sae.encode(torch.as_tensor(T, device=args.device)).cpu().numpy()

    def decode(Z):
        with torch.no_grad():
            return sae.decode(torch.as_tensor(Z, device=args.device)).cpu().numpy()

    return sae.W_dec.detach().cpu().numpy(), encode, decode


def methods(args):
    """(family, method, knob label, runner) for every run of the sweep."""
    out = [("sparsolve", "fit (exact)", f"α={a}", lambda X, m, a=a: run_fit(X, m, a, args)) for a in args.alphas]
    for t in DEPTHS:
        out += [("sparsolve", f"AE t*={t}", f"α={a}", lambda X, m, a=a, t=t: run_autoencoder(X, m, a, t, args))
                for a in args.ae_alphas]
        out += [("sparsolve", f"AE t*={t} then {args.solver}", f"α={a}",
                 lambda X, m, a=a, t=t: run_refined(X, m, a, t, args)) for a in args.ae_alphas]
    out += [("sparsify", "sparsify TopK", f"k={k}", lambda X, m, k=k: run_sparsify(X, m, k, args)) for k in args.ks]
    out += [("sae_lens", "SAELens L1", f"l1={c}", lambda X, m, c=c: run_saelens(X, m, "L1", c, args))
            for c in args.l1]
    out += [("sae_lens", "SAELens TopK", f"k={k}", lambda X, m, k=k: run_saelens(X, m, "TopK", k, args))
            for k in args.ks]
    out += [("sae_lens", "SAELens JumpReLU", f"l0={c}", lambda X, m, c=c: run_saelens(X, m, "JumpReLU", c, args))
            for c in args.l0]
    return out


def refined(method):
    """A row scored by exact inference from an autoencoder's start (not an encoder of its own)."""
    return " then " in method


def peer_status(names=("sparsify", "sae_lens")):
    """{module: None if importable else the reason}."""
    status = {}
    for name in names:
        try:
            __import__(name)
            status[name] = None
        except Exception as e:  # an ImportError, or a broken install: either way, say why
            status[name] = f"{type(e).__name__}: {e}".splitlines()[0]
    return status


def omp_fvu(X, D, k):
    """FVU of batch-OMP with k coefficients: inference at a fixed L0 without the lasso's
    shrinkage, the exact counterpart of a TopK encoder.  Signed: sparsolve's OMP has no
    non-negative variant, so it may use a sign the encoders cannot (a small advantage)."""
    Z = sparsolve.encode(X, D, 1.0, solver="omp", n_nonzero_coefs=k, tol=0.0)
    return metrics.fvu(X, Z @ D)


def inference_only(rows, trained, X_test, planted, args):
    """The amortisation gap and the dictionary gap at each SAE's own L0 (module docstring)."""
    fits = [(r, trained[(r.method, r.knob)]) for r in rows if r.method == "fit (exact)" and not r.note]
    X_test = X_test[:args.gap_tokens]
    on_fit = {}  # TopK SAEs of both libraries share their L0 = k: match fit's D once per (run, L0)
    out = []
    for r in rows:
        if r.method == "fit (exact)" or refined(r.method) or r.note or r.l0 <= 0:
            continue
        if r.l0 > X_test.shape[1] / 2:
            # A lasso solution has at most d non-zeros, and near d its α bisection is all dense, slow solves.
            out.append(dict(method=r.method, knob=r.knob, l0=r.l0, fvu_encoder=r.fvu,
                            note=f"not compared: L0 > d/2 = {X_test.shape[1] // 2}"))
            continue
        atoms = unit_rows(trained[(r.method, r.knob)])
        _, Z = match_l0(X_test, atoms, r.l0, args.solver, args.device)
        own = metrics.fvu(X_test, Z @ atoms)
        k = min(max(1, round(r.l0)), *atoms.shape)  # OMP takes at most min(m, d) atoms
        entry = dict(method=r.method, knob=r.knob, l0=r.l0, fvu_encoder=r.fvu, fvu_exact_on_its_decoder=own,
                     l0_exact_on_its_decoder=metrics.l0(Z), omp_k=k, fvu_omp_on_its_decoder=omp_fvu(X_test, atoms, k))
        if fits:
            fit_row, D = min(fits, key=lambda f: abs(f[0].l0 - r.l0))
            key = (fit_row.knob, round(r.l0, 2))
            if key not in on_fit:
                D = unit_rows(D)
                _, Zf = match_l0(X_test, D, r.l0, args.solver, args.device)
                on_fit[key] = dict(fvu_exact_on_fit=metrics.fvu(X_test, Zf @ D), l0_exact_on_fit=metrics.l0(Zf),
                                   fit_knob=fit_row.knob, fvu_omp_on_fit=omp_fvu(X_test, D, k))
            entry.update(on_fit[key])
        out.append(entry)
    return out


def main(argv=None, *, default_size="small", default_out=ROOT / "examples" / "results", stem="versus_saes",
         write_results=True):
    """Run the comparison; ``write_results`` records it (benchmarks/harness.py) as well."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default=default_size,
                   help="(d, planted, atoms, train tokens, held-out tokens): " +
                   "; ".join(f"{k} {v}" for k, v in SIZES.items()))
    p.add_argument("--tokens", type=int, default=None, help="training tokens (default: the size's)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training tokens (the same for all)")
    p.add_argument("--batch", type=int, default=256, help="tokens per step (the same for all but fit)")
    p.add_argument("--fit-batch", type=int, default=None,
                   help="fit's tokens per step (default --batch): its online update costs O(m² d) a step, "
                   "whatever the batch, while the SAEs' Adam steps want many small batches")
    p.add_argument("--gap-tokens", type=int, default=2_000,
                   help="held-out tokens for the inference-only comparison (its α bisections)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's step for the sparsolve autoencoders")
    p.add_argument("--sae-lr", type=float, default=1e-3,
                   help="SAELens' Adam step (its default 3e-4 is tuned for millions of tokens)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default="", help="comma-separated method names to run (default all)")
    knobs = p.add_argument_group("sparsity knobs (each method's sweep; the planted L0 is 4)")
    for flag, default, what in (("--alphas", ALPHAS, "fit's α"), ("--ae-alphas", AE_ALPHAS, "the autoencoders' α"),
                                ("--ks", KS, "k of the TopK SAEs"), ("--l1", L1_COEFFICIENTS, "SAELens L1's coefficient"),
                                ("--l0", L0_COEFFICIENTS, "SAELens JumpReLU's L0 coefficient")):
        knobs.add_argument(flag, type=lambda v, f=flag: [(int if f == "--ks" else float)(x) for x in v.split(",")],
                           default=list(default), help=f"{what}, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch and numba threads (1: on a shared machine, 2 threads ran 5× slower)")
    p.add_argument("--out", type=Path, default=default_out)
    p.add_argument("--smoke", action="store_true", help="--size smoke, one knob per method (seconds; for the tests)")
    args = p.parse_args(argv)
    load_start = os.getloadavg()[0]
    if args.smoke:
        args.size = "smoke"
    args.solver = "fista" if args.device.startswith("cuda") else "cd"
    args.fit_batch = args.fit_batch or args.batch
    args.autoencoders = {}
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    args.out.mkdir(parents=True, exist_ok=True)
    d, n_planted, m, n_train, n_test = SIZES[args.size]
    n_train = args.tokens or n_train

    status = peer_status()
    for name, why in status.items():
        if why:
            print(f"!!! PEER NOT RUN: {name} could not be imported ({why}); "
                  f"install the peers with pip install -e '.[peers]'", flush=True)
    gen = SyntheticActivations(d, n_planted, mean_active=MEAN_ACTIVE, seed=args.seed)
    X = gen.sample(n_train, split=0)
    X_test = gen.sample(n_test, split=1)
    print(f"# versus SAEs: d={d}, planted={n_planted}, atoms={m}, {n_train:,} training tokens × {args.epochs} "
          f"epoch(s), {n_test:,} held out, batch {args.batch} (fit {args.fit_batch}), device {args.device}, "
          f"torch threads {args.threads}", flush=True)

    wanted = {s.strip() for s in args.methods.split(",") if s.strip()}
    runs = methods(args)
    if args.smoke:  # one knob per method
        runs = list({r[1]: r for r in reversed(runs)}.values())[::-1]
    unknown = wanted - {r[1] for r in runs}
    if unknown:
        p.error(f"--methods: unknown {sorted(unknown)}; choose from {list(dict.fromkeys(r[1] for r in runs))}")
    rows, trained = [], {}
    for family, method, knob, runner in runs:
        if wanted and method not in wanted:
            if not any(r.method == method for r in rows):
                rows.append(Row(method, "", note="not run: not selected (--methods)"))
            continue
        if family in status and status[family]:
            rows.append(Row(method, knob, note=f"not run: {status[family]}"))
            continue
        start = time.perf_counter()
        try:
            atoms, encode, decode, *extra = runner(X, m)
        except Exception as e:  # a peer that breaks is reported, never dropped
            if family == "sparsolve":
                raise
            traceback.print_exc()
            rows.append(Row(method, knob, note=f"not run: {type(e).__name__}: {e}".splitlines()[0][:200]))
            print(f"!!! PEER FAILED: {method} {knob}: {rows[-1].note}", flush=True)
            continue
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        Z = np.asarray(encode(X_test))
        encode_seconds = time.perf_counter() - start
        rows.append(score(method, knob, atoms, Z, np.asarray(decode(Z)), X_test, gen.features, seconds))
        rows[-1].encode_seconds = encode_seconds
        for field, value in (extra[0] if extra else {}).items():  # a shared training's seconds; the refined timings
            setattr(rows[-1], field, value)
        trained[(method, knob)] = atoms
        print(fmt_row(rows[-1]), flush=True)

    gaps = inference_only(rows, trained, X_test, gen.features, args)
    report = dict(load=os.getloadavg(), size=args.size, d=d, planted=n_planted, atoms=m, train_tokens=n_train, test_tokens=n_test,
                  epochs=args.epochs, batch=args.batch, fit_batch=args.fit_batch, gap_tokens=min(args.gap_tokens, n_test),
                  device=args.device, threads=args.threads,
                  peers={k: (v or "ok") for k, v in status.items()},
                  rows=[asdict(r) for r in rows], inference_only=gaps)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    text = markdown(report)
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    plot(rows, args.out / f"{stem}.png", f"d={d}, {n_planted} planted, {m} atoms, {n_train * args.epochs:,} tokens")
    print(text)
    if write_results and not args.smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from harness import record

        case = (f"versus_saes_{args.size}" + (f"_{args.tokens}tok" if args.tokens else "") + f"_{args.epochs}ep"
                + ("" if args.device == "cpu" else f"_{args.device}"))
        rows_table, gaps_table = tables(report)
        record(case, load_before=round(load_start, 2), tables={
                   "Every method on the held-out tokens": rows_table,
                   f"Inference only, on the first {report['gap_tokens']:,} held-out tokens, at each SAE's own L0: the "
                   "lasso (cd, α bisected to that L0) and signed batch-OMP with k = round(L0), on its decoder and "
                   "on fit's D (fit's run nearest in L0)": gaps_table},
               figures=figures(report), notes=results_text(report, args),
               title=f"Sparse coding against the SAE libraries: d = {d}, {n_planted:,} planted features, "
                     f"{n_train:,} tokens × {args.epochs} epoch(s) (benchmarks/versus_saes.py --size {args.size}"
                     + (f" --tokens {args.tokens}" if args.tokens else "") + f" --epochs {args.epochs}"
                     + ("" if args.device == "cpu" else f" --device {args.device}") + ")",
               comparison="equal data (the same training tokens and epochs for every method), scored on the same "
                          "held-out tokens at each method's own L0")
    return report


def results_text(report, args):
    """The run's set-up and its verdicts on the seed's targets: the case's notes."""
    r = report
    cmd = "python benchmarks/versus_saes.py " + shlex.join(sys.argv[1:])
    fit_batch = "" if r.get("fit_batch", r["batch"]) == r["batch"] else f" ({r['fit_batch']} for fit)"
    peers = ", ".join(f"{k}: {v}" for k, v in r["peers"].items())
    return (f"Run: `{cmd}`.  Size `{r['size']}`: d = {r['d']}, {r['planted']:,} planted "
            f"features (mean L0 {MEAN_ACTIVE:g}, power-law frequencies, groups of 4, noise 0.01), dictionaries of "
            f"{r['atoms']:,}, {r['train_tokens']:,} training tokens × {r['epochs']} epoch(s) in batches of "
            f"{r['batch']}{fit_batch} for every method, {r['test_tokens']:,} held-out tokens; device {r['device']}.  "
            f"Peers: {peers}.\n\n" + "\n".join(f"* {v}" for v in verdicts(r)))


def tables(report):
    """(the methods' rows, the inference-only rows) as table rows."""
    rows = []
    for r in report["rows"]:
        if r["note"]:
            rows.append({"method": r["method"], "knob": r["knob"], "note": r["note"]})
            continue
        encode = f"{r.get('encode_seconds', math.nan):.2f}"
        if not math.isnan(r.get("cold_seconds", math.nan)):
            encode += f" (cold {r['cold_seconds']:.2f})"
        rows.append({"method": r["method"], "knob": r["knob"], "recovered (|cos| > 0.9)": round(r["recovered"], 3),
                     "mean max cos": round(r["mean_max_cos"], 3), "FVU": round(r["fvu"], 4), "L0": round(r["l0"], 2),
                     "dead": round(r["dead"], 3), "train s": round(r["seconds"], 1),
                     f"encode s ({report['test_tokens']:,} held out)": encode})
    gaps = []
    for g in report["inference_only"]:
        row = {"SAE": g["method"], "knob": g["knob"], "L0": round(g["l0"], 2), "FVU own encoder": round(g["fvu_encoder"], 4)}
        if "note" in g:
            gaps.append({**row, "note": g["note"]})
            continue
        fit = g.get("fvu_exact_on_fit", math.nan)
        gaps.append({**row, "lasso on its decoder": round(g["fvu_exact_on_its_decoder"], 4),
                     "lasso on fit's D": round(fit, 4),
                     "amortisation gap": f"{g['fvu_encoder'] - g['fvu_exact_on_its_decoder']:+.4f}",
                     "dictionary gap": f"{g['fvu_exact_on_its_decoder'] - fit:+.4f}",
                     "OMP k on its decoder": f"{g['fvu_omp_on_its_decoder']:.4f} (k={g['omp_k']})",
                     "OMP k on fit's D": round(g.get("fvu_omp_on_fit", math.nan), 4)})
    return rows, gaps


def figures(report):
    """The figures a sentence may quote: fit's recovery per α, the best SAE's, the wins and the recovery margin."""
    rows = [r for r in report["rows"] if not r["note"]]
    out = {f"fit_recovered_{r['knob'].replace('α=', 'alpha_')}": round(r["recovered"], 3)
           for r in rows if r["method"] == "fit (exact)"}
    saes = [r for r in rows if r["method"] != "fit (exact)" and not refined(r["method"])]
    if saes:
        out["best_sae_recovered"] = round(max(r["recovered"] for r in saes), 3)
    gaps = [g for g in report["inference_only"] if "note" not in g]
    if gaps and all("fvu_exact_on_fit" in g for g in gaps):
        out["lasso_wins"] = sum(g["fvu_exact_on_fit"] < g["fvu_encoder"] for g in gaps)
        out["encoders"] = len(gaps)
    if gaps and all("fvu_omp_on_fit" in g for g in gaps):
        out["omp_wins"] = sum(g["fvu_omp_on_fit"] < g["fvu_encoder"] for g in gaps)
    fit = sorted((r["l0"], r["recovered"]) for r in rows if r["method"] == "fit (exact)")
    inside = [r for r in saes if fit and fit[0][0] <= r["l0"] <= fit[-1][0]]
    if inside:
        out["recovery_margin_points"] = round(100 * min(float(np.interp(r["l0"], *zip(*fit))) - r["recovered"]
                                                        for r in inside), 1)
    return out


def verdicts(report):
    """The seed's three targets, read off the rows (matched L0)."""
    rows = [r for r in report["rows"] if not r["note"]]
    fit = sorted((r["l0"], r["recovered"]) for r in rows if r["method"] == "fit (exact)")
    saes = [r for r in rows if r["method"] != "fit (exact)" and not refined(r["method"])]
    out = []
    gaps = report["inference_only"]
    gaps = [g for g in gaps if "note" not in g]
    if gaps and all("fvu_exact_on_fit" in g for g in gaps):
        wins = [g for g in gaps if g["fvu_exact_on_fit"] < g["fvu_encoder"]]
        out.append(f"Lower FVU than the SAE's own encoder at the SAE's L0 (exact inference on fit's dictionary): "
                   f"{len(wins)} of {len(gaps)} encoders ({'MET' if len(wins) == len(gaps) else 'NOT MET'}).")
    if gaps and all("fvu_omp_on_fit" in g for g in gaps):
        wins = [g for g in gaps if g["fvu_omp_on_fit"] < g["fvu_encoder"]]
        out.append(f"Lower FVU than the SAE's own encoder with OMP at k = round(L0) on fit's dictionary: "
                   f"{len(wins)} of {len(gaps)} encoders.")
        by_method = {}
        for g in gaps:
            by_method.setdefault(g["method"], []).append(
                (g["fvu_encoder"] - g["fvu_omp_on_its_decoder"], g["fvu_omp_on_its_decoder"] - g["fvu_omp_on_fit"]))
        out.append("Mean gaps measured with OMP (amortisation = own encoder − OMP on its decoder; dictionary = OMP on "
                   "its decoder − OMP on fit's D): " + "; ".join(
                       f"{m} {np.mean([a for a, _ in v]):+.3f} / {np.mean([b for _, b in v]):+.3f}"
                       for m, v in by_method.items()) + ".")
    if fit and saes:
        lo, hi = fit[0][0], fit[-1][0]
        inside = [r for r in saes if lo <= r["l0"] <= hi]
        if inside:
            margins = [(float(np.interp(r["l0"], *zip(*fit))) - r["recovered"], r) for r in inside]
            worst, r = min(margins, key=lambda m: m[0])
            out.append(f"Recovery margin of fit over the SAEs whose L0 falls in fit's sweep ({lo:.1f}–{hi:.1f}; "
                       f"fit's recovery interpolated in L0): smallest {100 * worst:+.1f} points, against {r['method']} "
                       f"{r['knob']} ({'MET' if worst >= 0.10 else 'NOT MET'}: the target is +10).")
        outside = [f"{r['method']} {r['knob']} (L0 {r['l0']:.1f})" for r in saes if not lo <= r["l0"] <= hi]
        if outside:
            out.append("Outside fit's L0 range, not compared on recovery: " + ", ".join(outside) + ".")
    peers = [r["seconds"] for r in saes if r["method"].startswith(("sparsify", "SAELens"))]
    if report["device"] == "cpu":
        out.append("Wall time on the GPU (target: fit ≤ 10× the SAE's): not measured, this run is on the CPU "
                   "(`bash benchmarks/gpu_check.sh saes` runs the GPU size).")
    elif fit and peers:
        ratio = np.mean([r["seconds"] for r in rows if r["method"] == "fit (exact)"]) / np.mean(peers)
        out.append(f"Wall time on {report['device']}: fit's mean training time ÷ the SAE libraries' mean {ratio:.1f}× "
                   f"({'MET' if ratio <= 10 else 'NOT MET'}: the target is ≤ 10×).")
    return out


def fmt_row(r):
    return (f"{r.method:20s} {r.knob:9s} recovered {r.recovered:.3f}  max-cos {r.mean_max_cos:.3f}  "
            f"FVU {r.fvu:.4f}  L0 {r.l0:.2f}  dead {r.dead:.3f}  {r.seconds:.1f} s  encode {r.encode_seconds:.2f} s"
            + ("" if math.isnan(r.cold_seconds) else f" (cold {r.cold_seconds:.2f} s)"))


def markdown(report):
    lines = [f"| method | knob | recovered (\\|cos\\| > 0.9) | mean max cos | FVU | L0 | dead | train s | "
             f"encode s ({report['test_tokens']:,} held out) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r["note"]:
            lines.append(f"| {r['method']} | {r['knob']} | {r['note']} | | | | | | |")
            continue
        encode = f"{r.get('encode_seconds', math.nan):.2f}"
        if not math.isnan(r.get("cold_seconds", math.nan)):
            encode += f" (cold {r['cold_seconds']:.2f})"
        lines.append(f"| {r['method']} | {r['knob']} | {r['recovered']:.3f} | {r['mean_max_cos']:.3f} | "
                     f"{r['fvu']:.4f} | {r['l0']:.2f} | {r['dead']:.3f} | {r['seconds']:.1f} | {encode} |")
    lines += ["", f"Inference only, on the first {report.get('gap_tokens', report['test_tokens']):,} held-out tokens, at each SAE's own L0: FVU of the lasso (sparsolve cd, α bisected to that L0) and of signed batch-OMP with k = round(L0) coefficients. Amortisation gap = own encoder − lasso on its decoder; dictionary gap = lasso on its decoder − lasso on fit's D (fit's run nearest in L0):", "",
              "| SAE | knob | L0 | FVU own encoder | lasso on its decoder | lasso on fit's D | "
              "amortisation gap | dictionary gap | OMP k on its decoder | OMP k on fit's D |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for g in report["inference_only"]:
        if "note" in g:
            lines.append(f"| {g['method']} | {g['knob']} | {g['l0']:.2f} | {g['fvu_encoder']:.4f} | {g['note']} "
                         "| | | | | |")
            continue
        fit = g.get("fvu_exact_on_fit", math.nan)
        lines.append(f"| {g['method']} | {g['knob']} | {g['l0']:.2f} | {g['fvu_encoder']:.4f} | "
                     f"{g['fvu_exact_on_its_decoder']:.4f} | {fit:.4f} | "
                     f"{g['fvu_encoder'] - g['fvu_exact_on_its_decoder']:+.4f} | "
                     f"{g['fvu_exact_on_its_decoder'] - fit:+.4f} | {g['fvu_omp_on_its_decoder']:.4f} (k={g['omp_k']}) | "
                     f"{g.get('fvu_omp_on_fit', math.nan):.4f} |")
    peers = ", ".join(f"{k}: {v}" for k, v in report["peers"].items())
    lines += ["", f"Peers: {peers}."]
    return "\n".join(lines) + "\n"


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r.method for r in rows):
        pts = sorted((r.l0, r.fvu, r.recovered) for r in rows if r.method == method and not r.note)
        if not pts:
            continue
        l0, fvu, rec = zip(*pts)
        style = "^:" if refined(method) else "o-" if method.startswith(("fit", "AE")) else "s--"
        a.plot(l0, fvu, style, label=method)
        b.plot(l0, rec, style, label=method)
    # log L0: the sweeps run from L0 1 to dense encoders in the hundreds
    a.set(xlabel="L0 (held out)", ylabel="FVU (held out)", xscale="log", yscale="log", title="reconstruction")
    b.set(xlabel="L0 (held out)", ylabel="planted features recovered (|cos| > 0.9)", xscale="log",
          ylim=(-0.02, 1.02), title="recovery")
    b.axvline(MEAN_ACTIVE, color="grey", lw=0.8, ls=":")
    a.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
