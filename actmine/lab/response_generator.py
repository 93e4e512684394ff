"""The `response` generator: response curves of classic models of science and engineering.

The search draws random expressions, sums of sines and polynomials; the Feynman test suite is
mostly smooth power laws. Neither holds the shapes a scientist meets when a quantity answers a
cause: a step response that overshoots and settles, a resonance peak, a logistic or Hill
saturation, a drug's rise and decay (Bateman), Planck's spectrum, a rectified or triangular wave,
a clipped amplifier, a wave packet, a spreading heat pulse, two interfering sources, screened
potentials. This generator draws those, as a held-out family no search draws from (a test suite
of the default split, docs/lab.md "The split"): one model per draw, its constants from documented
laws.

Coordinates. Every variable j has its own ID interval [a_j, a_j + L_j] (a_j ~ U(`id_start`),
L_j ~ U(`id_length`)) and an OOD interval of length r_j·L_j (r_j ~ U(`ood_length`)) beyond the side
drawn from `ood_sides`, so an OOD point lies beyond the ID box in every coordinate. Models are
written in u_j = (x_j − a_j)/L_j: ID is u ∈ [0, 1], OOD u ∈ [1, 1 + r] or [−r, 0], and since
r ≤ 1 every model is finite on u ∈ [−1, 2] (each model's constants keep its logarithms, roots and
denominators away from 0 there; tested). A model's features (a peak, a kink, a knee) are placed
inside the ID interval, and periodic ones make c ~ U(`cycles`) periods per ID length (two-axis
ones 0.4–0.8 of that per axis; the default's 1.2 stays under the ~1.4 the lab learns in 50 steps,
docs/lab.md "harmonic"). Which draws a network can learn is the pools' learnability filter's
decision.

The draw depends only on (params, index), through `ParametrisedGenerator`'s seed.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .generator_base import ParametrisedGenerator, _choice, _interval_boxes, _uniform, register_generator
from .generator_params import Choices, FloatRange
from .task_families import Task

#: A model's builder: (rng, cycles, number of variables) → (f, formula), its constants drawn from rng;
#: f maps u of shape (n, d) (ID coordinates) to shape (n,).
Model = Callable[[np.random.Generator, float, int], tuple[Callable[[np.ndarray], np.ndarray], str]]

TWO_PI = 2 * math.pi


def _signed(value: float) -> str:
    """`+ 0.25` or `− 0.25`: a term of a formula, its sign outside."""
    return f"{'−' if value < 0 else '+'} {abs(value):.2f}"


def _step_response(rng: np.random.Generator, cycles: float, dim: int):
    """Underdamped second-order step response: overshoot, ringing, settling (s = u + 1 ≥ 0)."""
    zeta, wd = rng.uniform(0.1, 0.5), TWO_PI * cycles
    wn = wd / math.sqrt(1 - zeta**2)
    k = zeta / math.sqrt(1 - zeta**2)

    def f(u):
        s = u[:, 0] + 1
        return 1 - np.exp(-zeta * wn * s) * (np.cos(wd * s) + k * np.sin(wd * s))

    return f, f"1 − e^(−{zeta * wn:.2f}s)(cos {wd:.2f}s + {k:.2f} sin {wd:.2f}s), s = u + 1"


def _resonance(rng: np.random.Generator, cycles: float, dim: int):
    """Amplitude of a driven damped oscillator against the drive frequency: a peak, then ~q⁻²."""
    s0, gamma = rng.uniform(1.2, 1.8), rng.uniform(0.3, 1.0)

    def f(u):
        q = (u[:, 0] + 1.05) / s0  # ≥ 0.05/1.8 > 0 on u ≥ −1
        return 1 / np.sqrt((1 - q**2) ** 2 + (gamma * q) ** 2)

    return f, f"1/√((1 − q²)² + ({gamma:.2f}q)²), q = (u + 1.05)/{s0:.2f}"


def _logistic(rng: np.random.Generator, cycles: float, dim: int):
    k, u0 = rng.uniform(4, 10), rng.uniform(0.3, 0.7)
    return (lambda u: 1 / (1 + np.exp(-k * (u[:, 0] - u0)))), f"1/(1 + e^(−{k:.2f}(u − {u0:.2f})))"


def _hill(rng: np.random.Generator, cycles: float, dim: int):
    """Hill saturation (Michaelis–Menten at n = 1), s = u + 1.2 ≥ 0.2."""
    n, half = rng.uniform(1, 4), rng.uniform(1.4, 2.0)
    return (
        lambda u: (u[:, 0] + 1.2) ** n / (half**n + (u[:, 0] + 1.2) ** n)
    ), f"s^{n:.2f}/({half:.2f}^{n:.2f} + s^{n:.2f}), s = u + 1.2"


def _bateman(rng: np.random.Generator, cycles: float, dim: int):
    """A drug's concentration after an oral dose: absorption (k2) against elimination (k1), peak in ID."""
    k1 = rng.uniform(0.5, 1.5)
    k2 = k1 * rng.uniform(2, 5)
    peak_time = math.log(k2 / k1) / (k2 - k1)
    scale = peak_time / (rng.uniform(0.2, 0.6) + 1)  # time per unit of s = u + 1 ≥ 0

    def f(u):
        t = scale * (u[:, 0] + 1)
        return (np.exp(-k1 * t) - np.exp(-k2 * t)) / (k2 - k1)

    return f, f"(e^(−{k1:.2f}t) − e^(−{k2:.2f}t))/{k2 - k1:.2f}, t = {scale:.2f}(u + 1)"


def _planck(rng: np.random.Generator, cycles: float, dim: int):
    """Planck's law s³/(eˢ − 1) on a logarithmic frequency axis, its peak (s ≈ 2.82) inside ID."""
    width, u0 = rng.uniform(0.8, 1.6), rng.uniform(0.2, 0.8)

    def f(u):
        s = 2.821 * np.exp(width * (u[:, 0] - u0))
        return s**3 / np.expm1(s)

    return f, f"s³/(eˢ − 1), s = 2.82·e^({width:.2f}(u − {u0:.2f}))"


def _morse(rng: np.random.Generator, cycles: float, dim: int):
    """The Morse potential of a bond: a steep wall, a well, a plateau."""
    a, u0 = rng.uniform(1.0, 2.0), rng.uniform(0.3, 0.7)
    return (lambda u: (1 - np.exp(-a * (u[:, 0] - u0))) ** 2), f"(1 − e^(−{a:.2f}(u − {u0:.2f})))²"


def _triangle_wave(rng: np.random.Generator, cycles: float, dim: int):
    phase = rng.uniform(0, TWO_PI)
    return (
        lambda u: (2 / math.pi) * np.arcsin(np.sin(TWO_PI * cycles * u[:, 0] + phase)),
        f"(2/π)·asin(sin(2π·{cycles:.2f}u + {phase:.2f}))",
    )


def _rectified_sine(rng: np.random.Generator, cycles: float, dim: int):
    """A full-wave rectifier's output: `cycles` humps per ID length."""
    phase = rng.uniform(0, math.pi)
    return (lambda u: np.abs(np.sin(math.pi * cycles * u[:, 0] + phase))), f"|sin(π·{cycles:.2f}u + {phase:.2f})|"


def _clipper(rng: np.random.Generator, cycles: float, dim: int):
    """An amplifier driven into its rails: steep between two kinks inside ID, then a leaky rail
    (slope β: a flat rail would make the OOD target constant, and its normalised error undefined)."""
    gain, u0, leak = rng.uniform(2.5, 5.0), rng.uniform(0.35, 0.65), rng.uniform(0.1, 0.3)
    return (
        lambda u: np.clip(gain * (u[:, 0] - u0), -1, 1) + leak * (u[:, 0] - u0),
        f"clip({gain:.2f}(u − {u0:.2f}), −1, 1) + {leak:.2f}(u − {u0:.2f})",
    )


def _wave_packet(rng: np.random.Generator, cycles: float, dim: int):
    """A Gaussian wave packet moving at speed v: u1 is position, u2 time."""
    m, v, sigma = rng.uniform(0.3, 0.7), rng.uniform(-0.5, 0.5), rng.uniform(0.2, 0.4)
    k = cycles

    def f(u):
        xi = u[:, 0] - m - v * u[:, 1]
        return np.exp(-(xi**2) / (2 * sigma**2)) * np.cos(TWO_PI * k * xi)

    return f, f"e^(−ξ²/{2 * sigma**2:.3f})·cos(2π·{k:.2f}ξ), ξ = u1 − {m:.2f} {_signed(-v)}·u2"


def _standing_wave(rng: np.random.Generator, cycles: float, dim: int):
    """A mode of a vibrating membrane; each axis makes 0.4–0.8 × `cycles` periods (two axes at once
    are harder to learn than one)."""
    c1, c2 = cycles * rng.uniform(0.4, 0.8), cycles * rng.uniform(0.4, 0.8)
    p1, p2 = rng.uniform(0, TWO_PI, size=2)
    return (
        lambda u: np.sin(TWO_PI * c1 * u[:, 0] + p1) * np.cos(TWO_PI * c2 * u[:, 1] + p2),
        f"sin(2π·{c1:.2f}u1 + {p1:.2f})·cos(2π·{c2:.2f}u2 + {p2:.2f})",
    )


def _heat_kernel(rng: np.random.Generator, cycles: float, dim: int):
    """A heat pulse spreading: u1 position, u2 time, s = u2 + 1.2 ≥ 0.2."""
    m, diffusivity = rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.2)

    def f(u):
        s = u[:, 1] + 1.2
        return np.exp(-((u[:, 0] - m) ** 2) / (4 * diffusivity * s)) / np.sqrt(4 * math.pi * diffusivity * s)

    return f, f"e^(−(u1 − {m:.2f})²/(4·{diffusivity:.2f}s))/√(4π·{diffusivity:.2f}s), s = u2 + 1.2"


def _sources(rng: np.random.Generator, dim: int, count: int) -> np.ndarray:
    """Point sources outside [−1, 2]^dim by at least 0.5 in one coordinate (distances ≥ 0.5)."""
    points = rng.uniform(0, 1, size=(count, dim))
    axis = rng.integers(dim, size=count)
    points[np.arange(count), axis] = rng.choice([-1.5, 2.5], size=count)
    return points


def _interference(rng: np.random.Generator, cycles: float, dim: int):
    """Two coherent point sources in a plane: rings that cross (0.4–0.8 × `cycles` periods per unit
    of distance, the box's diagonal being √2 units)."""
    sources, k = _sources(rng, 2, 2), cycles * rng.uniform(0.4, 0.8)

    def f(u):
        distances = np.linalg.norm(u[:, None, :] - sources[None], axis=2)
        return np.cos(TWO_PI * k * distances).sum(axis=1)

    return f, f"Σ cos(2π·{k:.2f}|u − p_j|), p = {np.round(sources, 2).tolist()}"


def _damped_oscillator(rng: np.random.Generator, cycles: float, dim: int):
    """Free oscillation whose damping is an input: u1 time, u2 sets the decay rate."""
    g0, g1, phase = rng.uniform(0.1, 0.5), rng.uniform(0.3, 1.0), rng.uniform(0, TWO_PI)

    def f(u):
        rate = g0 + g1 * (u[:, 1] + 1)  # > 0 on u2 ≥ −1
        return np.exp(-rate * (u[:, 0] + 1)) * np.cos(TWO_PI * cycles * u[:, 0] + phase)

    return f, f"e^(−({g0:.2f} + {g1:.2f}(u2 + 1))(u1 + 1))·cos(2π·{cycles:.2f}u1 + {phase:.2f})"


def _yukawa(rng: np.random.Generator, cycles: float, dim: int):
    """Screened (Yukawa) potentials of two charges outside a 3-D box."""
    sources, length = _sources(rng, 3, 2), rng.uniform(0.5, 2.0)
    charges = rng.uniform(0.5, 1.5, size=2) * rng.choice([-1.0, 1.0], size=2)

    def f(u):
        r = np.linalg.norm(u[:, None, :] - sources[None], axis=2)
        return (charges * np.exp(-r / length) / r).sum(axis=1)

    return f, f"Σ q_j e^(−r_j/{length:.2f})/r_j, q = {np.round(charges, 2).tolist()}"


def _gaussian_wells(rng: np.random.Generator, cycles: float, dim: int):
    """Three Gaussian wells or hills in 2 or 3 variables, centres inside ID."""
    centres, width = rng.uniform(0.1, 0.9, size=(3, dim)), rng.uniform(0.25, 0.5)
    depths = rng.uniform(0.5, 1.5, size=3) * rng.choice([-1.0, 1.0], size=3)

    def f(u):
        squared = ((u[:, None, :] - centres[None]) ** 2).sum(axis=2)
        return (depths * np.exp(-squared / (2 * width**2))).sum(axis=1)

    return f, f"Σ a_j e^(−|u − c_j|²/{2 * width**2:.3f}), a = {np.round(depths, 2).tolist()}"


#: name → (the numbers of variables it may have, drawn uniformly; builder; kind of shape).
MODELS: dict[str, tuple[tuple[int, ...], Model, str]] = {
    "step_response": ((1,), _step_response, "oscillating, saturating"),
    "resonance": ((1,), _resonance, "bump"),
    "logistic": ((1,), _logistic, "saturating"),
    "hill": ((1,), _hill, "saturating"),
    "bateman": ((1,), _bateman, "bump"),
    "planck": ((1,), _planck, "bump"),
    "morse": ((1,), _morse, "well, growth"),
    "triangle_wave": ((1,), _triangle_wave, "oscillating, kinked"),
    "rectified_sine": ((1,), _rectified_sine, "oscillating, kinked"),
    "clipper": ((1,), _clipper, "kinked, saturating"),
    "wave_packet": ((2,), _wave_packet, "oscillating, bump"),
    "standing_wave": ((2,), _standing_wave, "oscillating"),
    "heat_kernel": ((2,), _heat_kernel, "bump"),
    "interference": ((2,), _interference, "oscillating"),
    "damped_oscillator": ((2,), _damped_oscillator, "oscillating"),
    "yukawa": ((3,), _yukawa, "bump"),
    "gaussian_wells": ((2, 3), _gaussian_wells, "bump"),
}


@register_generator("response")
class ResponseGenerator(ParametrisedGenerator):
    """Response curves of classic models (oscillators, resonances, saturations, pulses, waves,
    potentials) in 1 to 3 variables; one model per draw, OOD beyond the ID box in every coordinate.

    Per draw: a model from `models` (uniformly); its constants from fixed laws that put its features
    inside the ID box; periodic models make c ~ U(`cycles`) periods per ID length. Each variable's
    ID interval [a, a + L] (a ~ U(id_start), L ~ U(id_length)) and OOD length r·L
    (r ~ U(ood_length)) beyond a side drawn from `ood_sides`. docs/lab.md, "Task generators", lists
    the models.
    """

    name = "response"
    family = "response"
    PARAMETERS = {
        "models": Choices(tuple(MODELS), tuple(MODELS), "the models a draw picks from, uniformly"),
        "cycles": FloatRange((0.4, 1.2), (0.01, 20.0), "periods per ID length of the periodic models", positive=True),
        "id_start": FloatRange((-1.0, 1.0), (-100.0, 100.0), "lower end a of each variable's ID interval"),
        "id_length": FloatRange((1.0, 3.0), (0.05, 100.0), "length L of each variable's ID interval", positive=True),
        "ood_length": FloatRange(
            (0.25, 0.5), (0.05, 1.0), "OOD length as a multiple r of L (≤ 1: models are finite there)", positive=True
        ),
        "ood_sides": Choices(("upper", "lower"), ("upper", "lower"), "the side of each variable's OOD interval"),
    }

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        p = self._params
        model = _choice(rng, p["models"])
        dims, build, kind = MODELS[model]
        dim = int(dims[int(rng.integers(len(dims)))])
        shape, formula = build(rng, _uniform(rng, p["cycles"]), dim)
        starts = np.array([_uniform(rng, p["id_start"]) for _ in range(dim)])
        lengths = np.array([_uniform(rng, p["id_length"]) for _ in range(dim)])
        boxes = [
            _interval_boxes(float(a), float(w), _uniform(rng, p["ood_length"]), _choice(rng, p["ood_sides"]))
            for a, w in zip(starts, lengths)
        ]

        def target(x: np.ndarray) -> np.ndarray:
            return shape((x - starts) / lengths)

        variables = ("x",) if dim == 1 else tuple(f"x{j + 1}" for j in range(dim))  # u_j is x_j's position
        where = ", ".join(
            f"u{'' if dim == 1 else j + 1} = ({v} {_signed(-a)})/{w:.2f}"
            for j, (v, a, w) in enumerate(zip(variables, starts, lengths))
        )
        name = self._task_name(index)
        return Task(
            name,
            self.family,
            variables,
            target,
            tuple(b[0] for b in boxes),
            tuple(b[1] for b in boxes),
            self._spec(index, name),
            f"{model} ({kind}): {formula}; {where}",
        )
