"""The methods of ``benchmarks/synthsaebench.py``, each trained by its own library's code.

Every trainer has the same shape, ``train(knob, run) -> model``: it reads ``run.batches()``
(the cached training pool, the same samples in the same order for every method of a seed),
stops after ``run.samples`` samples, and calls ``run.checkpoint(samples_seen, model,
scaler)`` at the samples of ``run.checkpoints`` (the learning curve; the time spent there is
not counted as training time).  The returned model is what SAELens's
``eval_sae_on_synthetic_data`` scores: anything with ``W_dec``, ``encode``, ``decode`` and
``eval``.

* SAELens (``BatchTopK``, ``TopK``, ``JumpReLU``, ``Matryoshka``): its ``SAETrainer`` with the
  trainer config of its ``SyntheticSAERunnerConfig`` (the runner SynthSAEBench trains with),
  lr 3e-4, batch 1,024, Adam, a linear warm-up over the first 5% of steps (at most 1,000) and
  SAELens's linear decay over the last 20%; ``dead_feature_window`` scaled to the run (a
  tenth of its steps, at most SAELens's 1,000) so that its dead-latent losses (TopK's AuxK,
  JumpReLU's pre-activation loss) fire within the run.  Architectures as in
  SynthSAEBench's experiments: Matryoshka at the published inner widths (scaled) with its
  Matryoshka aux loss; JumpReLU with SAELens's quadratic L0 loss around the target L0
  (Gemma Scope 2's, SAELens's own way to aim at an L0), Anthropic's pre-activation loss for
  dead latents, inputs normalised (``expected_average_only_in``), bandwidth 2 and decoder norm
  0.5 (the published JumpReLU's settings), its initial threshold the sweep's knob (JUMPRELU_KNOB).
* sparsify (``TopK``): its ``SparseCoder`` trained by the steps of its ``Trainer`` (which only
  takes a Hugging Face model): b_dec at the first batch's mean, unit-norm decoder, its
  ``fvu`` loss + AuxK (α = 1/32, OpenAI's; latents dead after the same window as SAELens's),
  the decoder-parallel gradient removed, and its ``adam`` optimiser path: Adam at lr 3e-4
  with its linear warm-up and linear decay to 0 (transformers' schedule).
* sparsolve: ``sparsolve.fit`` (exact inference in the learning step -- cd on the CPU, fista
  on a GPU --, non-negative codes, unit-norm atoms, a decoder bias by ``center=True``, the
  SAEs' batch of 1,024, its defaults otherwise) scored through exact inference (``sparsolve.sae.ExactSAE``: every code
  certified to a relative duality gap of 1e-4).
"""
from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

LR = 3e-4
#: JumpReLU's sparsity knob in a run this short is its initial threshold (on inputs normalised to
#: E‖x‖ = √d), not its L0 loss.  At lr 3e-4 Adam moves the threshold by at most 3e-4 a step, and
#: the quadratic loss's gradient reaches only the threshold (DeepMind's straight-through
#: estimator), so the L0 stays near where the threshold starts: on the CPU copy after 524,288
#: samples the published start 0.5 ends at L0 224; 2.0 at L0 14–15 whatever the target (8, 10
#: or 12) or the loss's weight (1 or 10); 2.5 at 11.5; Anthropic's estimator (to the inputs
#: too) moves 2.0 only to 13.1 (calibration runs of 2026-12-05).  So the sweep varies the start
#: and the quadratic loss aims at the last target L0.
JUMPRELU_KNOB = "initial threshold"
AUXK_ALPHA = 1 / 32
EXACT_TOL = 1e-4


class Clock:
    """Training time, wall and CPU (this process), without the time spent in checkpoints."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self._start = None

    def start(self):
        self._sync()
        self._start = (time.perf_counter(), time.process_time())

    @staticmethod
    def _sync():
        if torch.cuda.is_available():  # the queued kernels belong to the interval they were launched in
            torch.cuda.synchronize()

    def stop(self):
        if self._start is not None:
            self._sync()
            self.wall += time.perf_counter() - self._start[0]
            self.cpu += time.process_time() - self._start[1]
            self._start = None


@dataclass
class Run:
    """What a trainer needs: the data, the budget, the checkpoints and the size."""

    size: object
    pool: np.ndarray
    seed: int
    samples: int
    checkpoints: list
    on_checkpoint: object  # (samples_seen, model, scaler, clock) -> None
    device: str = "cpu"
    clock: Clock = field(default_factory=Clock)

    @property
    def steps(self):
        return self.samples // self.size.batch

    def offset(self):
        """Seed s reads the pool from row s · n/3 on (wrapping), the same rows for every method."""
        return (self.seed * len(self.pool) // 3) % len(self.pool)

    def batches(self, batch=None, device=None):
        """Torch batches of the pool from the seed's offset, for as many samples as the run has,
        on ``device`` (default the run's)."""
        batch = batch or self.size.batch
        n, row = len(self.pool), self.offset()
        for _ in range(self.samples // batch):
            if row + batch > n:
                row = 0
            yield torch.from_numpy(np.array(self.pool[row:row + batch])).to(device or self.device)
            row += batch

    def checkpoint(self, samples_seen, model, scaler=None):
        self.clock.stop()
        self.on_checkpoint(samples_seen, model, scaler, self.clock)
        self.clock.start()

    def dead_window_steps(self):
        """SAELens's dead_feature_window (steps) scaled to the run: a tenth of it, at most the default 1,000."""
        return max(10, min(1000, self.steps // 10))


# ---- SAELens --------------------------------------------------------------------------------
SAELENS = ("BatchTopK", "TopK", "JumpReLU", "Matryoshka")


def saelens_config(arch, knob, run):
    from sae_lens import (BatchTopKTrainingSAEConfig, JumpReLUTrainingSAEConfig, MatryoshkaBatchTopKTrainingSAEConfig,
                          TopKTrainingSAEConfig)

    common = dict(d_in=run.size.hidden_dim, d_sae=run.size.width, device=run.device)
    if arch == "BatchTopK":
        return BatchTopKTrainingSAEConfig(k=knob, **common)
    if arch == "TopK":
        return TopKTrainingSAEConfig(k=int(knob), **common)
    if arch == "Matryoshka":
        return MatryoshkaBatchTopKTrainingSAEConfig(k=knob, matryoshka_widths=list(run.size.matryoshka_widths),
                                                    use_matryoshka_aux_loss=True, **common)
    if arch == "JumpReLU":  # knob: the initial threshold (see JUMPRELU_KNOB)
        return JumpReLUTrainingSAEConfig(jumprelu_sparsity_loss_mode="quadratic", target_l0=float(run.size.targets[-1]),
                                         l0_coefficient=1.0, pre_act_loss_coefficient=3e-6,
                                         normalize_activations="expected_average_only_in", jumprelu_bandwidth=2.0,
                                         jumprelu_init_threshold=float(knob), decoder_init_norm=0.5, **common)
    raise ValueError(f"unknown SAELens architecture {arch!r}; choose from {SAELENS}")


def train_saelens(arch, knob, run):
    from sae_lens import LoggingConfig
    from sae_lens.registry import get_sae_training_class
    from sae_lens.synthetic import SyntheticSAERunnerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(run.seed)
    cfg = saelens_config(arch, knob, run)
    sae = get_sae_training_class(cfg.architecture())[0](cfg)
    steps, window = run.steps, run.dead_window_steps()
    runner = SyntheticSAERunnerConfig(  # the runner's trainer settings; only the data comes from our pool
        synthetic_model="unused: the pool is passed as the data provider", sae=cfg,
        training_samples=steps * run.size.batch, batch_size=run.size.batch, lr=LR,
        lr_warm_up_steps=min(1000, steps // 20), lr_decay_steps=steps // 5, device=run.device,
        n_checkpoints=0, checkpoint_path=None, output_path=None, dead_feature_window=window,
        feature_sampling_window=2 * window, n_batches_for_norm_estimate=min(100, max(1, steps // 20)),
        logger=LoggingConfig(log_to_wandb=False))
    # The trainer's activation-norm estimate reads its batches from the data provider before
    # training: it gets the run's first batches, and training then starts at the same first
    # row as every other method's.
    estimate = runner.n_batches_for_norm_estimate if cfg.normalize_activations == "expected_average_only_in" else 0
    data = itertools.chain(itertools.islice(run.batches(), estimate), run.batches())
    holder = {}

    def snapshot(checkpoint_path=None):  # SAETrainer's save_checkpoint_fn, at our thresholds
        trainer = holder["trainer"]
        sae.eval()
        run.checkpoint(trainer.n_training_samples, sae, trainer.activation_scaler)
        sae.train()

    trainer = SAETrainer(cfg=runner.to_sae_trainer_config(), sae=sae, data_provider=data, save_checkpoint_fn=snapshot)
    holder["trainer"] = trainer
    dead = watch_dead_latents(sae)
    # Checkpoints at our sample counts (the trainer checkpoints when it has passed each one).
    trainer.checkpoint_thresholds = [c - 1 for c in run.checkpoints if c < steps * run.size.batch]
    run.clock.start()
    trainer.fit()  # folds the activation scaler into the weights at the end
    run.clock.stop()
    sae.eval()
    return sae, {"dead_feature_window_steps": window, "warm_up_steps": min(1000, steps // 20),
                 "decay_steps": steps // 5, "steps": steps, **dead,
                 "dead_at_end": int(trainer.dead_neurons.sum())}


def watch_dead_latents(sae):
    """Counts, as SAELens trains, the steps whose dead-latent loss (TopK's AuxK, JumpReLU's
    pre-activation loss) had dead latents to act on, and the most latents it saw dead: the
    evidence that the dead-latent handling fired within the run."""
    stats = {"dead_loss_steps": 0, "dead_max": 0}
    inner = sae.calculate_aux_loss

    def counted(step_input, *args, **kwargs):
        mask = step_input.dead_neuron_mask
        if mask is not None and bool(mask.any()):
            stats["dead_loss_steps"] += 1
            stats["dead_max"] = max(stats["dead_max"], int(mask.sum()))
        return inner(step_input, *args, **kwargs)

    sae.calculate_aux_loss = counted
    return stats


# ---- sparsify -------------------------------------------------------------------------------
class SparsifyForEval(torch.nn.Module):
    """A sparsify SparseCoder as SAELens's evaluator reads an SAE: dense codes in, out."""

    def __init__(self, sae):
        super().__init__()
        self.sae = sae

    @property
    def W_dec(self):
        return self.sae.W_dec.detach()

    @torch.no_grad()
    def encode(self, x):
        acts, idx, _ = self.sae.encode(x)
        return torch.zeros(len(x), self.sae.num_latents, device=x.device).scatter_(1, idx, acts.float())

    @torch.no_grad()
    def decode(self, z):
        return z @ self.sae.W_dec + self.sae.b_dec


def train_sparsify(k, run):
    from sparsify import SparseCoder, SparseCoderConfig
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(run.seed)
    sae = SparseCoder(run.size.hidden_dim, SparseCoderConfig(num_latents=run.size.width, k=int(k)),
                      torch.device(run.device), dtype=torch.float32)
    steps = run.steps
    warmup = min(1000, steps // 20)  # sparsify's default 1,000, scaled to the run as SAELens's
    opt = torch.optim.Adam(sae.parameters(), lr=LR)
    schedule = get_linear_schedule_with_warmup(opt, warmup, steps)
    dead_after = run.dead_window_steps() * run.size.batch  # tokens, as sparsify's dead_feature_threshold
    since_fired = torch.zeros(run.size.width, dtype=torch.long, device=run.device)
    checkpoints = list(run.checkpoints)
    seen = auxk_steps = dead_max = 0
    run.clock.start()
    for step, x in enumerate(run.batches()):
        if step == 0:
            sae.b_dec.data = x.mean(0)  # the Trainer's first step: centred pre-activations
        sae.set_decoder_norm_to_unit_norm()
        dead_mask = since_fired > dead_after
        out = sae(x, dead_mask=dead_mask)
        n_dead = int(dead_mask.sum())
        auxk_steps, dead_max = auxk_steps + (n_dead > 0), max(dead_max, n_dead)
        (out.fvu + AUXK_ALPHA * out.auxk_loss).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        schedule.step()
        with torch.no_grad():
            since_fired += len(x)
            since_fired[out.latent_indices.flatten().unique()] = 0
        seen += len(x)
        while checkpoints and seen >= checkpoints[0] and seen < run.samples:
            checkpoints.pop(0)
            sae.set_decoder_norm_to_unit_norm()
            run.checkpoint(seen, SparsifyForEval(sae))
    run.clock.stop()
    sae.set_decoder_norm_to_unit_norm()
    return SparsifyForEval(sae), {"warm_up_steps": warmup, "dead_after_tokens": dead_after, "steps": steps,
                                  "auxk_alpha": AUXK_ALPHA, "dead_loss_steps": auxk_steps, "dead_max": dead_max,
                                  "dead_at_end": int((since_fired > dead_after).sum())}


# ---- sparsolve ------------------------------------------------------------------------------
def exact_sae(D, alpha, offset, device="cpu"):
    """A dictionary as SAELens's evaluator reads an SAE, exact inference its encoder
    (sparsolve.sae.ExactSAE): argmin_z ½‖x − b − zD‖² + α‖z‖₁ (z ≥ 0), certified to a relative
    duality gap of 1e-4 (cd on the CPU, fista on a GPU); decode zD + b."""
    import sparsolve
    from sparsolve.sae import ExactSAE

    model = sparsolve.SparseCodingModel(np.asarray(D, np.float32), alpha, positive=True, offset=offset)
    return ExactSAE(model, tol=EXACT_TOL, device=device)


def train_fit(alpha, run, *, batch=None):
    """``sparsolve.fit`` on the pool's stream, in the SAEs' batches (1,024: SynthSAEBench's), with
    a decoder bias (center=True: the running mean of the first 65,536 samples, fit's default),
    then exact inference.  The checkpoints' offset is the same running mean, kept by the
    library's own Offset on the same batches (and checked against the model's at the end)."""
    import sparsolve
    from sparsolve.inference import ConvergenceWarning
    from sparsolve.learning.offset import Offset
    from sparsolve.learning.reducer import Identity

    batch = batch or run.size.batch

    config = dict(n_atoms=run.size.width, alpha=alpha, positive=True, batch_size=batch, center=True,
                  device=run.device)
    if run.device == "cpu":  # compile the numba kernels (fit's and encode's) before the clock starts: a one-off
        warm = np.array(run.pool[:2 * batch], np.float32)
        sparsolve.fit(warm, **config, max_steps=2, seed=0, progress=False)
        exact_sae(warm[:run.size.width] - warm.mean(0), alpha, warm.mean(0)).encode(torch.from_numpy(warm[:8]))
    seen_offset = Offset(sparsolve.FitConfig(**config).center_samples)
    checkpoints = list(run.checkpoints)

    def stream():
        for x in run.batches(batch, device="cpu"):
            x = x.numpy()
            seen_offset.center(x, Identity())  # one process: the running mean of this stream's batches
            yield x

    def callback(step, D, record):
        seen = step * batch
        while checkpoints and seen >= checkpoints[0] and seen < run.samples:
            checkpoints.pop(0)
            run.checkpoint(seen, exact_sae(D, alpha, seen_offset.value(), run.device))

    run.clock.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = sparsolve.fit(stream(), **config, max_steps=run.samples // batch, seed=run.seed, progress=False,
                              callback=callback)
    run.clock.stop()
    if not np.allclose(model.offset, seen_offset.value()):
        raise AssertionError("the checkpoints' offset is not the one fit learnt")
    return exact_sae(model.dictionary, alpha, model.offset, run.device), {
        "batch": batch, "steps": run.samples // batch, "center": True,
        "offset_norm": float(np.linalg.norm(model.offset)), "dead_frac_last": model.history["dead_frac"][-1]}


METHODS = {
    **{f"SAELens {a}": (lambda a: lambda knob, run: train_saelens(a, knob, run))(a) for a in SAELENS},
    "sparsify TopK": train_sparsify,
    "sparsolve fit": train_fit,
}
KNOB = {"SAELens BatchTopK": "k", "SAELens TopK": "k", "SAELens Matryoshka": "k", "SAELens JumpReLU": JUMPRELU_KNOB,
        "sparsify TopK": "k", "sparsolve fit": "α"}
