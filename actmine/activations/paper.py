"""Activations discovered by evolutionary search in

    Vitvitskyi, Boratko, Grcic, Pascanu, Shah & Veličković (2026),
    "Mining Generalizable Activation Functions", Google DeepMind,
    arXiv:2602.05688.

The paper's reference code is JAX and calls ``jax.nn.gelu``, whose default is
the *tanh approximation* of GELU.  To reproduce the paper, every function
here that builds on GELU takes ``approximate="tanh"`` by default; pass
``approximate="none"`` for the exact erf form.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .classic import GELU, _check_approximate, gelu
from .registry import Activation, get as registry_get, normalize_name, register

__all__ = [
    "gelu_sine",
    "gelu_sinc_perturbation",
    "gmtu",
    "turbulent",
    "GELUSine",
    "GELUSincPerturbation",
    "GMTU",
    "Turbulent",
    "PAPER_SOURCE",
]

PAPER_SOURCE = "Vitvitskyi et al. 2026, 'Mining Generalizable Activation Functions', Google DeepMind, arXiv:2602.05688"

# Added to the standard deviation in `turbulent`, as in the paper's code, so
# that a constant input gives z = 0 instead of 0/0.
TURBULENT_EPS = 1e-6


# -- functions ----------------------------------------------------------------


def gelu_sine(x: Tensor, alpha: float = 0.1, approximate: str = "tanh") -> Tensor:
    r"""GELUSine: :math:`\mathrm{GELU}(x) + \alpha \sin(x)`.

    A GELU with a bounded periodic ripple: :math:`|f(x) - \mathrm{GELU}(x)|
    \le \alpha` everywhere, and :math:`f'(0) = 1/2 + \alpha`.
    """
    return gelu(x, approximate) + alpha * torch.sin(x)


def gelu_sinc_perturbation(x: Tensor, alpha: float = 0.5, approximate: str = "tanh") -> Tensor:
    r"""GELU-Sinc-Perturbation: :math:`\mathrm{GELU}(x)\,(1 + \alpha\,\mathrm{sinc}(x))`,
    with the normalised :math:`\mathrm{sinc}(x) = \sin(\pi x) / (\pi x)`,
    :math:`\mathrm{sinc}(0) = 1`.

    The perturbation is multiplicative and decays like :math:`1/|x|`, so the
    function tends to GELU away from the origin and equals it at every
    nonzero integer (zeros of sinc).
    """
    # torch.sinc handles x = 0 in both the forward (value 1) and the backward
    # (gradient 0) pass; a hand-written sin(πx)/(πx) would give nan there.
    return gelu(x, approximate) * (1.0 + alpha * torch.sinc(x))


def gmtu(x: Tensor, beta: float = 1.5, gamma: float = 0.2, alpha: float = 0.1) -> Tensor:
    r"""Gaussian-Modulated Tangent Unit:
    :math:`\tanh(\beta x)\,e^{-\gamma x^2} + \alpha x`.

    Odd; a tanh bump near the origin (:math:`f'(0) = \beta + \alpha`) fading
    into the linear leak :math:`\alpha x`, with
    :math:`|f(x) - \alpha x| \le e^{-\gamma x^2}`.
    """
    return torch.tanh(beta * x) * torch.exp(-gamma * x.square()) + alpha * x


def _standardize_whole(x: Tensor) -> Tensor:
    """``(x - mean(x)) / (std(x) + eps)`` with statistics over every element.

    ``std`` is the population standard deviation (``ddof=0``, the default of
    ``jnp.std`` used by the paper's code); it is also defined for a single
    element, where the unbiased estimate would divide by zero.
    """
    # Statistics of half-precision tensors lose too much accuracy (and can
    # overflow when squaring); compute them in float32 and cast back.
    xs = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    centered = xs - xs.mean()
    var = centered.square().mean()
    # sqrt has an infinite derivative at 0, so a constant input would give
    # nan gradients (inf * 0).  Feeding sqrt a dummy 1 where var == 0 and
    # selecting 0 afterwards keeps the value exact and the gradient finite
    # (std's subgradient 0 at a constant input).
    positive = var > 0
    std = torch.where(positive, torch.sqrt(torch.where(positive, var, torch.ones_like(var))), 0.0)
    return (centered / (std + TURBULENT_EPS)).to(x.dtype)


def _is_gelu_name(base: object) -> bool:
    return isinstance(base, str) and normalize_name(base) == "gelu"


def _resolve_base(base: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """A registry name or callable -> callable (the "gelu" name is handled by callers)."""
    if isinstance(base, str):
        return registry_get(base)
    if callable(base):
        return base
    raise TypeError(f"base must be an activation name or a callable, got {type(base).__name__}")


def turbulent(
    x: Tensor,
    alpha: float = 0.2,
    omega: float = 2.0,
    base: str | Callable[[Tensor], Tensor] = "gelu",
    approximate: str = "tanh",
) -> Tensor:
    r"""Turbulent activation:
    :math:`\mathrm{base}(x) + \alpha\, e^{-z^2/2} \sin(\omega x)`, with
    :math:`z = (x - \mathrm{mean}(x)) / (\mathrm{std}(x) + 10^{-6})`.

    **Not pointwise**: mean and std are taken over the *whole* tensor (all
    batch elements and features), as in the paper's code, so the output for
    one example depends on the rest of the batch, and a model using it gives
    different outputs for the same example in different batches.  The
    Gaussian window :math:`e^{-z^2/2}` confines the oscillation to inputs near
    the tensor's mean.  Gradients flow through the statistics.

    ``base``: the paper's page defining ``base(x)`` could not be read when
    this was written; GELU (``approximate`` variant, tanh by default like
    ``jax.nn.gelu``) is our choice.  Any registry name or callable can be
    given instead; ``approximate`` only affects the ``"gelu"`` base.
    """
    _check_approximate(approximate)
    # The paper's GELU honours `approximate` (tanh by default); other names
    # go through the registry.
    base_value = gelu(x, approximate) if _is_gelu_name(base) else _resolve_base(base)(x)
    z = _standardize_whole(x)
    return base_value + alpha * torch.exp(-0.5 * z.square()) * torch.sin(omega * x)


# -- modules ------------------------------------------------------------------


class GELUSine(Activation):
    r"""Applies :func:`gelu_sine` element-wise: :math:`\mathrm{GELU}(x) + \alpha\sin(x)`.

    Source: Vitvitskyi et al. (2026), "Mining Generalizable Activation
    Functions", arXiv:2602.05688; ``alpha`` is swept in its Appendix C.

    Args:
        alpha: amplitude of the sine term (default 0.1).
        approximate: GELU variant, ``"tanh"`` (default, as the paper's JAX
            code) or ``"none"``.

    Example::

        >>> GELUSine()(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.9253])
    """

    def __init__(self, alpha: float = 0.1, approximate: str = "tanh"):
        super().__init__()
        _check_approximate(approximate)
        self.alpha = alpha
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu_sine(x, self.alpha, self.approximate)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, approximate={self.approximate!r}"


class GELUSincPerturbation(Activation):
    r"""Applies :func:`gelu_sinc_perturbation` element-wise:
    :math:`\mathrm{GELU}(x)\,(1 + \alpha\,\mathrm{sinc}(x))`, normalised sinc.

    Source: Vitvitskyi et al. (2026), "Mining Generalizable Activation
    Functions", arXiv:2602.05688.

    Args:
        alpha: relative amplitude of the sinc perturbation (default 0.5).
        approximate: GELU variant, ``"tanh"`` (default, as the paper's JAX
            code) or ``"none"``.

    Example::

        >>> GELUSincPerturbation()(torch.tensor([0.0, 0.5, 1.0]))
        tensor([0.0000, 0.4558, 0.8412])
    """

    def __init__(self, alpha: float = 0.5, approximate: str = "tanh"):
        super().__init__()
        _check_approximate(approximate)
        self.alpha = alpha
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu_sinc_perturbation(x, self.alpha, self.approximate)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, approximate={self.approximate!r}"


class GMTU(Activation):
    r"""Gaussian-Modulated Tangent Unit, :func:`gmtu` element-wise:
    :math:`\tanh(\beta x)\,e^{-\gamma x^2} + \alpha x`.

    Source: Vitvitskyi et al. (2026), "Mining Generalizable Activation
    Functions", arXiv:2602.05688.

    Args:
        beta: slope of the tanh bump (default 1.5).
        gamma: width of the Gaussian envelope, ``exp(-gamma x^2)`` (default 0.2).
        alpha: slope of the linear leak (default 0.1).

    Example::

        >>> GMTU()(torch.tensor([0.0, 1.0, 10.0]))
        tensor([0.0000, 0.8411, 1.0000])
    """

    def __init__(self, beta: float = 1.5, gamma: float = 0.2, alpha: float = 0.1):
        super().__init__()
        self.beta = beta
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return gmtu(x, self.beta, self.gamma, self.alpha)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, alpha={self.alpha}"


class Turbulent(Activation):
    r"""Applies :func:`turbulent`:
    :math:`\mathrm{base}(x) + \alpha\, e^{-z^2/2} \sin(\omega x)`, with
    :math:`z` the input standardised by the mean and std of the *whole*
    tensor.

    Not pointwise (``pointwise = False``): the output for one example depends
    on every other element of the batch.

    Source: Vitvitskyi et al. (2026), "Mining Generalizable Activation
    Functions", arXiv:2602.05688.  The page defining ``base`` could not be
    read; GELU is our choice (tanh approximation by default, like the
    paper's ``jax.nn.gelu``).

    Args:
        alpha: amplitude of the windowed sine (default 0.2).
        omega: frequency of the sine (default 2.0).
        base: registry name, ``nn.Module`` or callable (default ``"gelu"``).
        approximate: GELU variant for the ``"gelu"`` base, ``"tanh"``
            (default) or ``"none"``.

    Example::

        >>> Turbulent()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.2447,  0.0000,  0.9271])
    """

    pointwise = False

    def __init__(
        self,
        alpha: float = 0.2,
        omega: float = 2.0,
        base: str | Callable[[Tensor], Tensor] = "gelu",
        approximate: str = "tanh",
    ):
        super().__init__()
        _check_approximate(approximate)
        self.alpha = alpha
        self.omega = omega
        self.approximate = approximate
        # Resolved once (not per call); a module base is registered as a
        # submodule so it shows in the repr and follows .to()/.state_dict().
        self.base = GELU(approximate) if _is_gelu_name(base) else registry_get(_resolve_base(base))

    def forward(self, x: Tensor) -> Tensor:
        return turbulent(x, self.alpha, self.omega, self.base, self.approximate)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, omega={self.omega}"


# -- registration ---------------------------------------------------------------

register(
    "gelu_sine",
    GELUSine,
    function=gelu_sine,
    formula="GELU(x) + α·sin(x), α=0.1",
    source=PAPER_SOURCE + " (α swept in Appendix C)",
)
register(
    "gelu_sinc_perturbation",
    GELUSincPerturbation,
    function=gelu_sinc_perturbation,
    formula="GELU(x)·(1 + α·sinc(x)), α=0.5, sinc(x) = sin(πx)/(πx)",
    source=PAPER_SOURCE,
)
register("gmtu", GMTU, function=gmtu, formula="tanh(β·x)·exp(−γ·x²) + α·x, β=1.5, γ=0.2, α=0.1", source=PAPER_SOURCE)
register(
    "turbulent",
    Turbulent,
    function=turbulent,
    pointwise=False,
    formula="base(x) + α·exp(−z²/2)·sin(ω·x), z = (x − mean(x))/(std(x) + 1e−6) over the "
    "whole tensor, α=0.2, ω=2, base=GELU (our choice)",
    source=PAPER_SOURCE,
)
