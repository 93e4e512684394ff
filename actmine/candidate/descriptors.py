"""What a candidate's function looks like, as plain numbers computed once in the sandbox: its
fingerprint (two programs that compute the same function share it), its curve (f and f' on
[−6, 6], which reports draw), and the descriptors that place it on the search's diversity grid.
"""

from __future__ import annotations

import hashlib
import math

import torch

from .probe_calls import Activation, _call, _derivative

# Fingerprint rounding: outputs with |v| < FINGERPRINT_ATOL read as 0, the rest keep
# FINGERPRINT_DIGITS significant digits.
FINGERPRINT_ATOL = 1e-5
FINGERPRINT_DIGITS = 5
# Non-finite or huge descriptor values are clipped to ±DESCRIPTOR_CLIP (NaN reads as 0).
DESCRIPTOR_CLIP = 1e6
GROWTH_CLIP = 10.0
DERIVATIVE_ZERO = 1e-6
BOUNDED_BELOW = 10.0


def fingerprint(activation: Activation) -> str:
    """A hash of the outputs on 97 fixed points of [−6, 6], rounded so that float noise does not
    split equals.

    Tolerance: an output with |v| < FINGERPRINT_ATOL (1e-5: float32 noise around a zero, and -0.0)
    reads as 0, so that e.g. x*(x>0) == relu; the others keep FINGERPRINT_DIGITS (5) significant
    digits. Two functions whose outputs agree to about 5 digits everywhere on the points share a
    print (x*sigmoid(x) and F.silu do); ones that differ by more than about 1e-5 relative at any
    point do not (except for the rare value that rounds to the same 5 digits).
    """
    x = torch.linspace(-6, 6, 97, dtype=torch.float64).to(torch.float32)
    with torch.no_grad():
        y = _call(activation, x, "on the fingerprint's points").double()
    rounded = [f"{v:.{FINGERPRINT_DIGITS}g}" if abs(v) >= FINGERPRINT_ATOL else "0" for v in y.tolist()]
    return hashlib.sha256(",".join(rounded).encode()).hexdigest()[:16]


CURVE_POINTS = 121


def curve_points() -> torch.Tensor:
    """The curve's inputs: CURVE_POINTS points on [−6, 6] in float32."""
    return torch.linspace(-6, 6, CURVE_POINTS, dtype=torch.float32)


def curve(activation: Activation) -> dict[str, list[float]]:
    """f and f' on [−6, 6] (121 points), as plain numbers: reports and plots draw a candidate
    from this record, so they never have to run its (untrusted) code themselves."""
    x = curve_points()
    y, dy = _derivative(activation, x, "on the curve's points")
    return {
        "x": [round(v, 4) for v in x.tolist()],
        "y": [_finite(v) for v in y.tolist()],
        "dy": [_finite(v) for v in dy.tolist()],
    }


def _finite(value: float, bound: float = DESCRIPTOR_CLIP) -> float:
    """A plain finite float: NaN reads as 0, ±inf and huge values are clipped to ±bound, -0.0 is 0.0."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return min(max(value, -bound), bound) + 0.0


def descriptors(activation: Activation, dtype: torch.dtype = torch.float64) -> dict[str, float | int | bool]:
    """Numbers that describe the function's shape, for the search's diversity grid.

    - value_at_0: f(0).
    - slope_at_0: f'(0) by autograd (torch's subgradient where f has a kink: relu gives 0).
    - growth_pos: f(1e3)/1e3, the asymptotic slope towards +∞ (1 for relu, 0 for a bounded f),
      clipped to [−10, 10].
    - growth_neg: f(−1e3)/(−1e3), the asymptotic slope towards −∞, i.e. lim f(x)/x (0 for relu,
      0.01 for leaky relu, 1 for the identity, −1 for |x|), clipped to [−10, 10].
    - sign_changes: how often f' changes sign on a grid of 2001 points over [−5, 5], values with
      |f'| < 1e-6 read as zero and skipped (0 for relu, 1 for GELU, 4 for sin): the number of
      bumps and dips.
    - monotone: sign_changes == 0.
    - bounded: max |f| on a grid over [−100, 100] is below 10.
    - mean_curvature: mean |f''| on [−3, 3], by central second differences with step 0.01; a
      kink contributes its jump in slope divided by 6 (relu: 1/6), a straight line 0.

    Computed in float64 by default. Non-finite values become finite: NaN reads as 0 (for
    `bounded`, as unbounded), ±inf is clipped (±1e6, growth to ±10). The derivatives are of
    sum f(x), which is the elementwise derivative only for a pointwise f.
    """

    def grid(lo: float, hi: float, n: int) -> torch.Tensor:
        return torch.linspace(lo, hi, n, dtype=torch.float64).to(dtype)

    value_0, slope_0 = _derivative(activation, torch.zeros(1, dtype=dtype), "at x = 0")
    with torch.no_grad():
        far = _call(activation, torch.tensor([1e3, -1e3], dtype=torch.float64).to(dtype), "at x = ±1e3").double()
        wide = _call(activation, grid(-100.0, 100.0, 2001), "on [−100, 100]").double()
        h = 0.01
        near = _call(activation, grid(-3.0, 3.0, 601), "on [−3, 3]").double()
    _, slope = _derivative(activation, grid(-5.0, 5.0, 2001), "on [−5, 5]")

    slope = slope.double().nan_to_num(0.0, 0.0, 0.0)
    signs = torch.sign(slope)[slope.abs() >= DERIVATIVE_ZERO]
    sign_changes = int((signs[1:] != signs[:-1]).sum()) if signs.numel() > 1 else 0
    peak = wide.abs().nan_to_num(math.inf).max()
    curvature = ((near[2:] - 2 * near[1:-1] + near[:-2]) / (h * h)).abs().nan_to_num(math.inf).mean()
    return {
        "value_at_0": _finite(value_0.item()),
        "slope_at_0": _finite(slope_0.item()),
        "growth_pos": _finite(far[0].item() / 1e3, GROWTH_CLIP),
        "growth_neg": _finite(far[1].item() / -1e3, GROWTH_CLIP),
        "sign_changes": sign_changes,
        "monotone": sign_changes == 0,
        "bounded": bool(peak < BOUNDED_BELOW),
        "mean_curvature": max(_finite(curvature.item()), 0.0),
    }
