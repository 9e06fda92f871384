"""The convolutional dictionary as a linear operator: its geometry, its two products, its norm.

A signal x has C channels over a grid of S positions per spatial axis (1-D: (C, T); 2-D: (C, H, W));
a filter bank D has K filters of C channels over f positions per axis, (K, C, h[, w]); the codes z
have K maps over the code grid P.  The synthesis (the "zD" of the patch model) and its adjoint, the
analysis ("rDᵀ"), are

    x̂[c, t] = Σ_k Σ_p z[k, p] · d[k, c, t − p + o]          (synthesis, z ↦ Dz)
    c[k, p]  = Σ_c Σ_t r[c, t] · d[k, c, t − p + o]          (analysis,  r ↦ Dᵀr)

summed where the filter index t − p + o lies in [0, f).  The boundary decides P, the offset o and
what happens at the edges (``BOUNDARIES``):

* ``"valid"``    P = S − f + 1, o = 0: a code at every position where the whole filter fits in the
                 signal (alphacsc's model); x̂ covers all of x, its edges by fewer placements.
* ``"same"``     P = S, o = ⌊(f − 1)/2⌋: a code at every position, filters centred there and cut
                 off where they leave the signal (zero padding of the reconstruction's frame).
* ``"circular"`` P = S, o = 0, indices taken modulo S: the signal is periodic (SPORCO's model).

Two ways to compute the products, the operator's ``form``:

* ``"fft"``: in the Fourier domain on a frame of N ≥ S + f − 1 points an axis (N = S for circular),
  where both are per-frequency products with the filters' spectrum: x̂ = F⁻¹(Σ_k D̂_k ẑ_k), and
  c = F⁻¹(Σ_c conj(D̂_c) r̂).  The offset o is a circular shift of the filters in the frame.
  Cost per product: K + C transforms of the frame per signal.
* ``"direct"``: torch's conv / conv_transpose (backend.correlate, backend.convolve), K·C·|P|·|f|
  multiply-adds per signal; the edges per boundary (crop for same, fold or wrap for circular).

The Lipschitz constant of ½‖x − Dz‖² is L = ‖D‖₂² = max_ω λ_max(Â(ω)Â(ω)ᴴ), Â(ω) the C×K matrix of
the filters' transfer functions at frequency ω; on the frame's grid it is exact for circular and an
upper bound for the other two, which are restrictions of the frame's circular operator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend

BOUNDARIES = ("valid", "same", "circular")
PRODUCTS = ("fft", "direct")
#: The values of a convolutional solver's ``form`` option: a product, or "auto" (:func:`choose_form`).
FORMS = ("auto", *PRODUCTS)

# Sizes the FFTs of scipy, torch and cupy do fastest (5-smooth numbers), for the frame.
_SMOOTH = (2, 3, 5)


def smooth_size(n: int) -> int:
    """The least 5-smooth number ≥ n (a product of 2s, 3s and 5s: every FFT library's fast sizes)."""
    while True:
        m = n
        for p in _SMOOTH:
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@dataclass(frozen=True)
class Geometry:
    """Where codes live and how the filters meet the edges: the boundary, the signal's grid S and the
    filters' f (one entry per spatial axis), the channels C and the filters K."""

    boundary: str
    signal: tuple
    filters: tuple
    channels: int
    n_filters: int

    @property
    def ndim(self) -> int:
        return len(self.signal)

    @property
    def axes(self) -> tuple:
        return tuple(range(-self.ndim, 0))

    @property
    def codes(self) -> tuple:
        """P: the code grid of one filter."""
        if self.boundary == "valid":
            return tuple(s - f + 1 for s, f in zip(self.signal, self.filters))
        return self.signal

    @property
    def offset(self) -> tuple:
        """o: the filter tap that sits at a code's own position."""
        if self.boundary == "same":
            return tuple((f - 1) // 2 for f in self.filters)
        return (0,) * self.ndim

    @property
    def frame(self) -> tuple:
        """N: the FFT grid, on which the products are circular convolutions."""
        if self.boundary == "circular":
            return self.signal
        return tuple(smooth_size(s + f - 1 if self.boundary == "same" else s)
                     for s, f in zip(self.signal, self.filters))

    @property
    def code_size(self) -> int:
        """K·|P|: the entries of one signal's codes."""
        return self.n_filters * int(np.prod(self.codes))

    @property
    def code_shape(self) -> tuple:
        return (self.n_filters, *self.codes)


class ConvOperator:
    """The synthesis z ↦ Dz and the analysis r ↦ Dᵀr of a filter bank D (K, C, *f) on signals of a
    :class:`Geometry`, computed by ``form`` ("fft" or "direct", module docstring), in D's kind,
    device and dtype.  Batches: z (n, K, *P) ↦ (n, C, *S) and back."""

    def __init__(self, D, geometry: Geometry, form: str):
        self.D = D
        self.geometry = geometry
        self.form = form
        self.spectrum = _spectrum(D, geometry) if form == "fft" else None
        self._energy = self._gram = None  # made on first use by regularized_solve

    def synthesize(self, Z):
        g = self.geometry
        if self.form == "fft":
            Zf = backend.rfftn(Z, g.frame, g.axes)
            Xf = _mix(Zf, self.spectrum, conjugate=False)
            return _crop(backend.irfftn(Xf, g.frame, g.axes), g.signal)
        full = backend.convolve(Z, self.D, g.ndim)  # (n, C, *(P + f − 1))
        if g.boundary == "valid":
            return full
        if g.boundary == "same":
            return full[(..., *(slice(o, o + s) for o, s in zip(g.offset, g.signal)))]
        return _fold(full, g.signal)

    def analyze(self, R):
        g = self.geometry
        if self.form == "fft":
            Rf = backend.rfftn(R, g.frame, g.axes)
            Cf = _mix(Rf, self.spectrum, conjugate=True)
            return _crop(backend.irfftn(Cf, g.frame, g.axes), g.codes)
        if g.boundary == "same":
            R = backend.pad(R, [(o, f - 1 - o) for o, f in zip(g.offset, g.filters)])
        elif g.boundary == "circular":
            R = backend.pad(R, [(0, f - 1) for f in g.filters], circular=True)
        return backend.correlate(R, self.D, g.ndim)


    def transform(self, A):
        """Â: the Fourier transform of signals or codes A on the frame."""
        g = self.geometry
        return backend.rfftn(A, g.frame, g.axes)

    def drive(self, X):
        """(Dᵀx)^: the analysis of the signals X in the Fourier domain, (n, K, *F)."""
        return _mix(self.transform(X), self.spectrum, conjugate=True)

    def regularized_solve(self, drive, B, rho, fused=False):
        """z = (DᵀD + ρI)⁻¹ ((Dᵀx)^ + ρB̂), back in space, for the codes B (n, K, *P) and one ρ per signal;
        ``drive`` from :meth:`drive`.  Circular boundary and FFT form only, where DᵀD is diagonal in the
        Fourier domain: at each frequency (AᴴA + ρI)⁻¹b = (b − Aᴴ(ρI + AAᴴ)⁻¹Ab)/ρ with A = D̂(ω) (C×K).
        ``fused``: on host arrays with one channel, one numba kernel (:mod:`.fused`) for the per-frequency
        work."""
        g = self.geometry
        if g.boundary != "circular" or self.form != "fft":
            raise ValueError("the Fourier-domain solve needs boundary='circular' and form='fft'")
        xp = backend.namespace(drive)
        r = rho.reshape((-1,) + (1,) * (drive.ndim - 1))
        b = self.transform(B)
        if fused and isinstance(b, np.ndarray) and self.spectrum.shape[1] == 1:
            from . import fused as kernels  # the host fast path (numba)

            if self._energy is None:
                self._energy = (abs(self.spectrum[:, 0]) ** 2).sum(axis=0)
            n, K = b.shape[:2]
            zf = np.empty_like(b)
            kernels.spectral_solve(drive.reshape(n, K, -1), b.reshape(n, K, -1), np.ascontiguousarray(rho, np.float64),
                                   self.spectrum[:, 0].reshape(K, -1), self._energy.reshape(-1).astype(np.float64),
                                   zf.reshape(n, K, -1))
            return backend.irfftn(zf, g.frame, g.axes)
        b *= r
        b += drive
        Ab = _mix(b, self.spectrum, conjugate=False)  # (n, C, *F)
        if self.spectrum.shape[1] == 1:
            if self._energy is None:
                self._energy = (abs(self.spectrum[:, 0]) ** 2).sum(axis=0)  # Σ_k |D̂_k|², (*F)
            Ab /= r + self._energy[None, None]
            w = Ab
        else:
            if self._gram is None:  # AAᴴ per frequency, (*F, C, C)
                S = xp.moveaxis(xp.moveaxis(self.spectrum, 0, -1), 0, -2)  # (*F, C, K)
                self._gram = S @ xp.conj(xp.swapaxes(S, -1, -2))
            C = self.spectrum.shape[1]
            eye = backend.eye(self._gram.real, C)
            system = self._gram[None] + rho.reshape((-1,) + (1,) * (self._gram.ndim)) * eye
            rhs = xp.moveaxis(Ab, 1, -1)[..., None]  # (n, *F, C, 1)
            w = xp.moveaxis(xp.linalg.solve(system, rhs)[..., 0], -1, 1)
        b -= _mix(w, self.spectrum, conjugate=True)
        b /= r
        zf = b
        return backend.irfftn(zf, g.frame, g.axes)


def _spectrum(D, g: Geometry):
    """D̂: the filters placed in the frame (tap o at index 0, so the offset is a circular shift) and
    transformed, (K, C, *N with the last axis halved)."""
    padded = backend.pad(D, [(0, n - f) for n, f in zip(g.frame, g.filters)])
    if any(g.offset):
        padded = backend.roll(padded, [-o for o in g.offset], g.axes)
    return backend.rfftn(padded, g.frame, g.axes)


def _mix(A, spectrum, conjugate: bool):
    """Per frequency, the products with the filters' spectrum: Σ_k D̂[k, c] A[:, k] (synthesis) or
    Σ_c conj(D̂[k, c]) A[:, c] (analysis).  With one channel both are a broadcast and (synthesis) a
    sum over the filters, cheaper than an einsum."""
    xp = backend.namespace(A)
    K, C = spectrum.shape[:2]
    S = xp.conj(spectrum) if conjugate else spectrum
    if C == 1:
        if conjugate:  # (n, 1, …) · (K, …) → (n, K, …)
            return A * S[:, 0][None]
        return (A * S[:, 0][None]).sum(axis=1)[:, None]
    if conjugate:
        return xp.einsum("nc...,kc...->nk...", A, S)
    return xp.einsum("nk...,kc...->nc...", A, S)


def _crop(A, shape):
    return A[(..., *(slice(0, s) for s in shape))]


def _fold(full, signal):
    """The circular convolution from the full one: the tail beyond S added onto the head, per axis."""
    out = full
    for i, s in enumerate(signal):
        axis = out.ndim - len(signal) + i
        head = [slice(None)] * out.ndim
        tail = [slice(None)] * out.ndim
        head[axis], tail[axis] = slice(0, s), slice(s, None)
        kept = out[tuple(head)] + 0  # a copy: the tail is added into it
        extra = out[tuple(tail)]
        wrap = [slice(None)] * out.ndim
        wrap[axis] = slice(0, extra.shape[axis])
        kept[tuple(wrap)] += extra
        out = kept
    return out


def lipschitz(D, geometry: Geometry) -> float:
    """L = ‖D‖₂², the largest squared singular value of the synthesis (module docstring), from the
    filters' spectrum on the frame's grid, on the host in float64.  The 1e-6 margin covers the
    rounding of the transform."""
    g = geometry
    Dh = np.asarray(backend.to_numpy(D), dtype=np.float64)
    spectrum = backend.to_numpy(_spectrum(Dh, g))  # (K, C, *F)
    K, C = spectrum.shape[:2]
    A = spectrum.reshape(K, C, -1)
    if min(K, C) == 1:
        top = (abs(A) ** 2).sum(axis=(0, 1))
    else:
        per_freq = np.moveaxis(A, -1, 0)  # (F, K, C)
        gram = per_freq.conj().transpose(0, 2, 1) @ per_freq if C <= K else per_freq @ per_freq.conj().transpose(0, 2, 1)
        top = np.linalg.eigvalsh(gram)[:, -1]
    return float(top.max()) * (1 + 1e-6)


def choose_form(like, geometry: Geometry) -> str:
    """The product for ``form="auto"``, for signals like ``like`` (its device): "fft" on the host,
    where it is the faster at every filter size measured (RESULTS.md, conv products); on a GPU,
    "direct" (cuDNN) for filters of at most :data:`DIRECT_MAX_TAPS` taps a channel, "fft" above."""
    if backend.on_gpu(like) and int(np.prod(geometry.filters)) <= DIRECT_MAX_TAPS:
        return "direct"
    return "fft"


#: On a GPU, filters up to this many taps (8×8) go through cuDNN's convolutions (not measured yet:
#: benchmarks/gpu_check.sh conv times both products at 4×4 to 16×16).
DIRECT_MAX_TAPS = 64


def geometry_of(X, D, boundary: str) -> Geometry:
    """The :class:`Geometry` of signals X (n, C, *S) under filters D (K, C, *f), after the checks of
    their shapes: 1-D or 2-D, the same channels, filters no larger than the signal, a known boundary."""
    from ..checks import choice

    choice(boundary, "boundary", BOUNDARIES)
    if D.ndim not in (3, 4):
        raise ValueError(f"D must be (n_filters, channels, h) for 1-D signals or (n_filters, channels, h, w) "
                         f"for images, got ndim={D.ndim}{' (add the channel axis: D[:, None])' if D.ndim == 2 else ''}")
    kind = "signals (n_signals, channels, length)" if D.ndim == 3 else "images (n_images, channels, height, width)"
    if X.ndim != D.ndim:
        hint = " (one channel: X[:, None])" if X.ndim == D.ndim - 1 else ""
        raise ValueError(f"D has {D.ndim - 2}-D filters, so X must be {D.ndim}-D {kind}, got shape "
                         f"{tuple(X.shape)}{hint}")
    if X.shape[1] != D.shape[1]:
        raise ValueError(f"X has {X.shape[1]} channels but D's filters have {D.shape[1]}: D must be "
                         f"(n_filters, channels, ...) with X's channels on axis 1")
    signal, filters = tuple(int(s) for s in X.shape[2:]), tuple(int(f) for f in D.shape[2:])
    if any(f > s for s, f in zip(signal, filters)) or 0 in filters:
        raise ValueError(f"the filters {filters} are larger than the signals {signal} (or empty): every filter "
                         "must fit in the signal; use smaller filters or longer signals")
    return Geometry(boundary, signal, filters, int(D.shape[1]), int(D.shape[0]))
