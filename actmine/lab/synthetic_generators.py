"""The `polynomial` and `harmonic` generators: synthetic families drawn from parameter laws.

Both draw every task from documented laws (dimension, degree, sparsity and coefficients; tones,
envelopes and intervals), registered by name on import; docs/lab.md, "Task generators", lists
every parameter. `generators.py` imports this module, so `get_generator("polynomial")` finds them.
"""

from __future__ import annotations

import math

import numpy as np

from .generator_base import (
    ParametrisedGenerator,
    _choice,
    _integer,
    _interval_boxes,
    _magnitudes,
    _uniform,
    register_generator,
)
from .generator_params import Choices, Count, FloatRange, IntRange
from .task_families import Task


# --------------------------------------------------------------------------------------------
# polynomial
# --------------------------------------------------------------------------------------------


def _uniform_monomial(rng: np.random.Generator, dim: int, degree: int, exact: bool) -> tuple[int, ...]:
    """An exponent vector drawn uniformly among monomials in `dim` variables of total degree ≤ `degree`
    (or exactly `degree`), by stars and bars: the gaps between `dim` bars placed among
    degree + dim slots are a uniform composition."""
    slots = degree + dim - (1 if exact else 0)
    bars = np.sort(rng.choice(slots, size=dim - (1 if exact else 0), replace=False))
    exponents, previous = [], -1
    for bar in bars:
        exponents.append(int(bar - previous - 1))
        previous = int(bar)
    if exact:
        exponents.append(degree - sum(exponents))
    return tuple(exponents)


@register_generator("polynomial")
class PolynomialGenerator(ParametrisedGenerator):
    """Sparse random polynomials in 1 to 32 variables on a per-draw cube, OOD beyond one face.

    Per draw: dimension d ~ U{dim}; degree D ~ U{degree}; a fraction s ~ U(sparsity) of the
    C(d+D, D) − 1 non-constant monomials of degree ≤ D is kept (at least 1, at most `max_terms`),
    chosen uniformly, one of them of degree exactly D; each coefficient has a random sign and a
    magnitude from a law drawn from `coefficient_laws` (normal: |N(0, 1)|; uniform or log-uniform
    in `coefficient_range`). ID is the cube [a, a + w]^d with a ~ U(box_low), w ~ U(box_width); OOD
    is the cube of side r·w (r ~ U(ood_width)) beyond the upper or lower face (side drawn from
    `ood_sides`), so ID and OOD share at most a face.
    """

    name = "polynomial"
    family = "polynomial"
    PARAMETERS = {
        "dim": IntRange((1, 5), (1, 32), "number of input variables"),
        "degree": IntRange((2, 5), (1, 8), "total degree (one kept monomial has exactly this degree)"),
        "sparsity": FloatRange((0.3, 1.0), (0.0, 1.0), "fraction of the non-constant monomials kept", positive=True),
        "max_terms": Count(32, (1, 256), "cap on the number of monomials (keeps high-d draws cheap)"),
        "coefficient_laws": Choices(
            ("normal", "uniform", "log-uniform"),
            ("normal", "uniform", "log-uniform"),
            "laws of the coefficient magnitudes (signs are random); one per draw",
        ),
        "coefficient_range": FloatRange(
            (0.5, 2.0), (1e-3, 1e3), "magnitude range of the uniform and log-uniform laws", positive=True
        ),
        "box_low": FloatRange((-0.5, 0.0), (-10.0, 10.0), "lower end a of the ID interval (every coordinate)"),
        "box_width": FloatRange((0.5, 1.0), (0.05, 10.0), "width w of the ID interval", positive=True),
        "ood_width": FloatRange((0.5, 1.0), (0.05, 4.0), "OOD width as a multiple r of w", positive=True),
        "ood_sides": Choices(("upper", "lower"), ("upper", "lower"), "which face the OOD cube lies beyond"),
    }

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        p = self._params
        dim, degree = _integer(rng, p["dim"]), _integer(rng, p["degree"])
        available = math.comb(dim + degree, degree) - 1
        n_terms = int(min(available, p["max_terms"], max(1, round(_uniform(rng, p["sparsity"]) * available))))
        monomials = [_uniform_monomial(rng, dim, degree, exact=True)]
        seen = set(monomials)
        while len(monomials) < n_terms:
            monomial = _uniform_monomial(rng, dim, degree, exact=False)
            if any(monomial) and monomial not in seen:
                seen.add(monomial)
                monomials.append(monomial)
        law = _choice(rng, p["coefficient_laws"])
        if law == "normal":
            coefficients = rng.normal(size=n_terms)
        else:
            coefficients = _magnitudes(rng, law, p["coefficient_range"], n_terms) * rng.choice([-1.0, 1.0], n_terms)
        exponents = np.array(monomials, dtype=np.int64)  # (terms, dim)
        id_interval, ood_interval = _interval_boxes(
            _uniform(rng, p["box_low"]),
            _uniform(rng, p["box_width"]),
            _uniform(rng, p["ood_width"]),
            _choice(rng, p["ood_sides"]),
        )

        def target(x: np.ndarray) -> np.ndarray:
            # (n, 1, d) ** (terms, d) → product over d → (n, terms) @ (terms,)
            return np.prod(x[:, None, :] ** exponents[None, :, :], axis=2) @ coefficients

        variables = tuple(f"x{i}" for i in range(dim))
        shown = " + ".join(
            f"{c:.3g}·" + "·".join(f"{v}^{e}" for v, e in zip(variables, m) if e)
            for c, m in zip(coefficients[:4], monomials[:4])
        )
        more = f" + … ({n_terms} terms)" if n_terms > 4 else ""
        name = self._task_name(index)
        return Task(
            name,
            self.family,
            variables,
            target,
            (id_interval,) * dim,
            (ood_interval,) * dim,
            self._spec(index, name),
            f"degree {degree}, {law} coefficients: {shown}{more}",
        )


# --------------------------------------------------------------------------------------------
# harmonic
# --------------------------------------------------------------------------------------------


@register_generator("harmonic")
class HarmonicGenerator(ParametrisedGenerator):
    """Sums of sines with an optional trend or decay, in one variable; OOD beyond the ID interval.

    Per draw: ID interval [a, a + L] (a ~ U(id_start), L ~ U(id_length)); t = (x − a)/L is the
    position in ID lengths. y = E(t)·Σ_k A_k·sin(2π·c_k·t + φ_k) + T(t) with n ~ U{n_tones} tones;
    c_k are cycles per ID length (so frequencies are c_k/L per unit) from `frequency_law` over
    `cycles`; phases φ_k from `phase_law` (uniform in [0, 2π) or all zero); amplitudes A_k from
    `amplitude_law` over `amplitudes`. One envelope per draw from `envelopes`: none; linear or
    quadratic trend T = ±m·t or ±m·t² with m ~ U(trend) times the mean amplitude; decay
    E = exp(−t/τ) with τ ~ U(decay) ID lengths. OOD has length r·L (r ~ U(ood_length)) beyond the
    side drawn from `ood_sides`.

    The `cycles` default [0.3, 1.4] is the lab's calibration: up to ~1.4 periods in the ID interval
    are learned in 50 steps; 2 periods were not (docs/lab.md).
    """

    name = "harmonic"
    family = "harmonic"
    PARAMETERS = {
        "n_tones": IntRange((1, 4), (1, 16), "number of sines"),
        "frequency_law": Choices(("uniform",), ("uniform", "log-uniform"), "law of the cycles per ID length"),
        "cycles": FloatRange((0.3, 1.4), (0.01, 20.0), "cycles of each tone over the ID interval", positive=True),
        "phase_law": Choices(("uniform",), ("uniform", "zero"), "uniform in [0, 2π), or all phases 0"),
        "amplitude_law": Choices(("uniform",), ("uniform", "log-uniform"), "law of the amplitudes"),
        "amplitudes": FloatRange((0.5, 1.5), (1e-3, 1e3), "amplitude range", positive=True),
        "envelopes": Choices(
            ("none", "linear", "quadratic", "decay"),
            ("none", "linear", "quadratic", "decay"),
            "trend added or decay applied; one per draw",
        ),
        "trend": FloatRange((0.5, 2.0), (0.0, 100.0), "trend size m per ID length, in mean amplitudes"),
        "decay": FloatRange((0.5, 2.0), (0.05, 100.0), "decay time τ in ID lengths", positive=True),
        "id_start": FloatRange((0.0, 0.0), (-100.0, 100.0), "lower end a of the ID interval"),
        "id_length": FloatRange((1.5, 3.0), (0.05, 100.0), "length L of the ID interval", positive=True),
        "ood_length": FloatRange((0.25, 0.5), (0.05, 4.0), "OOD length as a multiple r of L", positive=True),
        "ood_sides": Choices(("upper",), ("upper", "lower"), "which side of the ID interval OOD lies on"),
    }

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        p = self._params
        n = _integer(rng, p["n_tones"])
        start, length = _uniform(rng, p["id_start"]), _uniform(rng, p["id_length"])
        cycles = _magnitudes(rng, _choice(rng, p["frequency_law"]), p["cycles"], n)
        phases = rng.uniform(0.0, 2 * math.pi, size=n) if _choice(rng, p["phase_law"]) == "uniform" else np.zeros(n)
        amplitudes = _magnitudes(rng, _choice(rng, p["amplitude_law"]), p["amplitudes"], n)
        envelope = _choice(rng, p["envelopes"])
        trend = _uniform(rng, p["trend"]) * float(amplitudes.mean()) * float(rng.choice([-1.0, 1.0]))
        tau = _uniform(rng, p["decay"])
        id_interval, ood_interval = _interval_boxes(
            start, length, _uniform(rng, p["ood_length"]), _choice(rng, p["ood_sides"])
        )

        def target(x: np.ndarray) -> np.ndarray:
            t = (x[:, :1] - start) / length
            y = np.sin(2 * math.pi * t * cycles + phases) @ amplitudes
            t = t[:, 0]
            if envelope == "decay":
                y = y * np.exp(-t / tau)
            elif envelope == "linear":
                y = y + trend * t
            elif envelope == "quadratic":
                y = y + trend * t**2
            return y

        tones = " + ".join(f"{a:.2f}·sin(2π·{c:.2f}·t + {f:.2f})" for a, c, f in zip(amplitudes, cycles, phases))
        extra = {
            "none": "",
            "linear": f" + {trend:.2f}·t",
            "quadratic": f" + {trend:.2f}·t²",
            "decay": f", times exp(−t/{tau:.2f})",
        }[envelope]
        name = self._task_name(index)
        return Task(
            name,
            self.family,
            ("x",),
            target,
            (id_interval,),
            (ood_interval,),
            self._spec(index, name),
            f"t = (x − {start:.2f})/{length:.2f}: {tones}{extra}",
        )
