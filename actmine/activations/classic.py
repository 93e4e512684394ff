"""Classic activation functions.

Each activation is a plain function on tensors plus a thin ``nn.Module``
calling it, as in ``torch.nn``. Where torch has a fused kernel
(``F.gelu``, ``F.silu``, ``F.mish``, ``F.elu``, ``F.softplus``, …) the
function calls it: one pass forward and one backward instead of a chain of
elementwise ops, which matters because the lab applies the activation to
every hidden unit of every model at every step. The tests check each
function against an independent closed form and against torch's modules.
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Activation, register

__all__ = [
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "silu",
    "mish",
    "softplus",
    "tanh",
    "sigmoid",
    "snake",
    "sin",
    "identity",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "SELU",
    "GELU",
    "GELUTanh",
    "SiLU",
    "Mish",
    "Softplus",
    "Tanh",
    "Sigmoid",
    "Snake",
    "Sin",
    "Identity",
]

# SELU's fixed-point constants (Klambauer et al. 2017, eq. 14), to the
# precision torch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# -- functions ----------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    r"""ReLU: :math:`\max(0, x)`; derivative 0 at ``x = 0`` (as torch)."""
    return torch.relu(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""Leaky ReLU: :math:`x` if :math:`x > 0` else :math:`\text{negative\_slope}\cdot x`.

    The strict ``>`` gives derivative ``negative_slope`` at 0, as torch.
    """
    return F.leaky_relu(x, negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    r"""ELU: :math:`x` if :math:`x > 0` else :math:`\alpha(e^x - 1)`."""
    return F.elu(x, alpha)


def selu(x: Tensor) -> Tensor:
    r"""SELU: :math:`\lambda\,\mathrm{ELU}_\alpha(x)` with the self-normalising
    constants :math:`\alpha \approx 1.6733`, :math:`\lambda \approx 1.0507`."""
    return F.selu(x)


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    r"""GELU: :math:`x\,\Phi(x) = \tfrac{x}{2}\left(1 + \mathrm{erf}(x/\sqrt{2})\right)`.

    Args:
        approximate: ``"none"`` (default) for the exact erf form, ``"tanh"``
            for the tanh approximation (see :func:`gelu_tanh`); same meaning
            as in ``torch.nn.functional.gelu``.
    """
    _check_approximate(approximate)
    return F.gelu(x, approximate=approximate)


def gelu_tanh(x: Tensor) -> Tensor:
    r"""GELU, tanh approximation:
    :math:`\tfrac{x}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)`.

    This is the default of ``jax.nn.gelu`` and of many transformer codebases.
    """
    return F.gelu(x, approximate="tanh")


def silu(x: Tensor) -> Tensor:
    r"""SiLU / Swish-1: :math:`x\,\sigma(x)`."""
    return F.silu(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""Softplus: :math:`\tfrac{1}{\beta}\log(1 + e^{\beta x})`, linear above threshold.

    As in torch, the function reverts to :math:`x` where :math:`\beta x >
    \text{threshold}`, where the two agree to float precision.
    """
    return F.softplus(x, beta, threshold)


def mish(x: Tensor) -> Tensor:
    r"""Mish: :math:`x \tanh(\mathrm{softplus}(x))`."""
    return F.mish(x)


def tanh(x: Tensor) -> Tensor:
    r"""Hyperbolic tangent."""
    return torch.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    r"""Logistic sigmoid :math:`1 / (1 + e^{-x})`."""
    return torch.sigmoid(x)


def snake(x: Tensor, a: float | Tensor = 1.0) -> Tensor:
    r"""Snake: :math:`x + \sin^2(a x) / a`.

    A monotone (for :math:`a > 0`) activation with a periodic component of
    frequency :math:`a`, so networks can extrapolate periodic signals; its
    periodic part lies in :math:`[0, 1/a]`.  ``a`` may be a tensor that
    broadcasts against ``x`` (e.g. a learnable per-channel frequency).
    """
    if isinstance(a, Real) and a <= 0:
        raise ValueError(f"snake frequency a must be positive, got {a}")
    return x + torch.sin(a * x).square() / a


def sin(x: Tensor) -> Tensor:
    r"""Sine."""
    return torch.sin(x)


def identity(x: Tensor) -> Tensor:
    r"""Identity (no nonlinearity), the linear baseline."""
    return x


# -- modules ------------------------------------------------------------------


class ReLU(Activation):
    r"""Applies :func:`relu` element-wise: :math:`\max(0, x)`.

    Source: Nair & Hinton (2010), "Rectified Linear Units Improve Restricted
    Boltzmann Machines", ICML.

    Example::

        >>> ReLU()(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class LeakyReLU(Activation):
    r"""Applies :func:`leaky_relu` element-wise:
    :math:`x` if :math:`x > 0` else :math:`\text{negative\_slope}\cdot x`.

    Source: Maas, Hannun & Ng (2013), "Rectifier Nonlinearities Improve Neural
    Network Acoustic Models", ICML Workshop on Deep Learning.

    Example::

        >>> LeakyReLU(negative_slope=0.1)(torch.tensor([-2.0, 3.0]))
        tensor([-0.2000,  3.0000])
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Activation):
    r"""Applies :func:`elu` element-wise:
    :math:`x` if :math:`x > 0` else :math:`\alpha(e^x - 1)`.

    Source: Clevert, Unterthiner & Hochreiter (2016), "Fast and Accurate Deep
    Network Learning by Exponential Linear Units (ELUs)", ICLR; arXiv:1511.07289.

    Example::

        >>> ELU()(torch.tensor([-1.0, 1.0]))
        tensor([-0.6321,  1.0000])
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(Activation):
    r"""Applies :func:`selu` element-wise: :math:`\lambda\,\mathrm{ELU}_\alpha(x)`,
    :math:`\alpha \approx 1.6733`, :math:`\lambda \approx 1.0507`.

    Source: Klambauer, Unterthiner, Mayr & Hochreiter (2017), "Self-Normalizing
    Neural Networks", NeurIPS; arXiv:1706.02515.

    Example::

        >>> SELU()(torch.tensor([-1.0, 1.0]))
        tensor([-1.1113,  1.0507])
    """

    def forward(self, x: Tensor) -> Tensor:
        return selu(x)


class GELU(Activation):
    r"""Applies :func:`gelu` element-wise: :math:`x\,\Phi(x)`, exact erf form
    by default.

    Source: Hendrycks & Gimpel (2016), "Gaussian Error Linear Units (GELUs)",
    arXiv:1606.08415.

    Args:
        approximate: ``"none"`` (exact) or ``"tanh"``, as ``torch.nn.GELU``.

    Example::

        >>> GELU()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.1587,  0.0000,  0.8413])
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        _check_approximate(approximate)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class GELUTanh(Activation):
    r"""Applies :func:`gelu_tanh` element-wise:
    :math:`\tfrac{x}{2}(1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))`.

    Source: Hendrycks & Gimpel (2016), "Gaussian Error Linear Units (GELUs)",
    arXiv:1606.08415 (the tanh approximation, section 2).

    Example::

        >>> GELUTanh()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.1588,  0.0000,  0.8412])
    """

    def forward(self, x: Tensor) -> Tensor:
        return gelu_tanh(x)


class SiLU(Activation):
    r"""Applies :func:`silu` element-wise: :math:`x\,\sigma(x)` (a.k.a. Swish-1).

    Source: Elfwing, Uchibe & Doya (2018), "Sigmoid-Weighted Linear Units for
    Neural Network Function Approximation in Reinforcement Learning",
    arXiv:1702.03118; Ramachandran, Zoph & Le (2017), "Searching for
    Activation Functions", arXiv:1710.05941.

    Example::

        >>> SiLU()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.2689,  0.0000,  0.7311])
    """

    def forward(self, x: Tensor) -> Tensor:
        return silu(x)


class Mish(Activation):
    r"""Applies :func:`mish` element-wise: :math:`x \tanh(\log(1 + e^x))`.

    Source: Misra (2019), "Mish: A Self Regularized Non-Monotonic Activation
    Function", arXiv:1908.08681.

    Example::

        >>> Mish()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.3034,  0.0000,  0.8651])
    """

    def forward(self, x: Tensor) -> Tensor:
        return mish(x)


class Softplus(Activation):
    r"""Applies :func:`softplus` element-wise:
    :math:`\tfrac{1}{\beta}\log(1 + e^{\beta x})`, :math:`x` where
    :math:`\beta x > \text{threshold}`.

    Source: Dugas, Bengio, Bélisle, Nadeau & Garcia (2001), "Incorporating
    Second-Order Functional Knowledge for Better Option Pricing", NeurIPS.

    Example::

        >>> Softplus()(torch.tensor([0.0, 30.0]))
        tensor([ 0.6931, 30.0000])
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        return softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Tanh(Activation):
    r"""Applies :func:`tanh` element-wise.

    Source: classical; see LeCun, Bottou, Orr & Müller (1998), "Efficient
    BackProp", in Neural Networks: Tricks of the Trade.

    Example::

        >>> Tanh()(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.7616])
    """

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class Sigmoid(Activation):
    r"""Applies :func:`sigmoid` element-wise: :math:`1 / (1 + e^{-x})`.

    Source: classical; see Rumelhart, Hinton & Williams (1986), "Learning
    representations by back-propagating errors", Nature 323.

    Example::

        >>> Sigmoid()(torch.tensor([0.0, 2.0]))
        tensor([0.5000, 0.8808])
    """

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Snake(Activation):
    r"""Applies :func:`snake` element-wise: :math:`x + \sin^2(a x) / a`.

    Source: Liu Ziyin, Tilman Hartwig & Masahito Ueda (2020), "Neural Networks
    Fail to Learn Periodic Functions and How to Fix It", NeurIPS;
    arXiv:2006.08195.

    Args:
        a: frequency of the periodic component, ``a > 0`` (default 1.0).

    Example::

        >>> Snake(a=2.0)(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 1.4134])
    """

    def __init__(self, a: float = 1.0):
        super().__init__()
        if a <= 0:
            raise ValueError(f"snake frequency a must be positive, got {a}")
        self.a = a

    def forward(self, x: Tensor) -> Tensor:
        return snake(x, self.a)

    def extra_repr(self) -> str:
        return f"a={self.a}"


class Sin(Activation):
    r"""Applies :func:`sin` element-wise.

    Source: Sitzmann, Martel, Bergman, Lindell & Wetzstein (2020), "Implicit
    Neural Representations with Periodic Activation Functions" (SIREN),
    NeurIPS; arXiv:2006.09661.

    Example::

        >>> Sin()(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.8415])
    """

    def forward(self, x: Tensor) -> Tensor:
        return sin(x)


class Identity(Activation):
    r"""Returns its input unchanged: the linear (no activation) baseline.

    Example::

        >>> Identity()(torch.tensor([-1.0, 2.0]))
        tensor([-1.,  2.])
    """

    def forward(self, x: Tensor) -> Tensor:
        return identity(x)


# -- registration ---------------------------------------------------------------

register(
    "relu",
    ReLU,
    function=relu,
    formula="max(0, x)",
    source="Nair & Hinton 2010, 'Rectified Linear Units Improve Restricted Boltzmann Machines'",
)
register(
    "leaky_relu",
    LeakyReLU,
    function=leaky_relu,
    formula="x if x > 0 else s·x, s=0.01",
    source="Maas, Hannun & Ng 2013, 'Rectifier Nonlinearities Improve Neural Network Acoustic Models'",
)
register(
    "elu",
    ELU,
    function=elu,
    formula="x if x > 0 else α·(eˣ − 1), α=1",
    source="Clevert et al. 2016, 'Fast and Accurate Deep Network Learning by ELUs', arXiv:1511.07289",
)
register(
    "selu",
    SELU,
    function=selu,
    formula="λ·ELU_α(x), α≈1.6733, λ≈1.0507",
    source="Klambauer et al. 2017, 'Self-Normalizing Neural Networks', arXiv:1706.02515",
)
register(
    "gelu",
    GELU,
    function=gelu,
    formula="x·Φ(x) = x/2·(1 + erf(x/√2))",
    source="Hendrycks & Gimpel 2016, 'Gaussian Error Linear Units (GELUs)', arXiv:1606.08415",
)
register(
    "gelu_tanh",
    GELUTanh,
    function=gelu_tanh,
    formula="x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))",
    source="Hendrycks & Gimpel 2016, 'Gaussian Error Linear Units (GELUs)', arXiv:1606.08415",
)
register(
    "silu",
    SiLU,
    function=silu,
    formula="x·σ(x)",
    aliases=("swish",),
    source="Elfwing et al. 2018, arXiv:1702.03118; Ramachandran et al. 2017, "
    "'Searching for Activation Functions', arXiv:1710.05941",
)
register(
    "mish",
    Mish,
    function=mish,
    formula="x·tanh(softplus(x))",
    source="Misra 2019, 'Mish: A Self Regularized Non-Monotonic Activation Function', arXiv:1908.08681",
)
register(
    "softplus",
    Softplus,
    function=softplus,
    formula="log(1 + e^(βx))/β, β=1 (x where βx > 20)",
    source="Dugas et al. 2001, 'Incorporating Second-Order Functional Knowledge for Better Option Pricing'",
)
register("tanh", Tanh, function=tanh, formula="tanh(x)", source="classical; LeCun et al. 1998, 'Efficient BackProp'")
register(
    "sigmoid",
    Sigmoid,
    function=sigmoid,
    formula="1 / (1 + e^(−x))",
    source="classical; Rumelhart, Hinton & Williams 1986",
)
register(
    "snake",
    Snake,
    function=snake,
    formula="x + sin²(a·x)/a, a=1",
    source="Liu Ziyin et al. 2020, 'Neural Networks Fail to Learn Periodic Functions and "
    "How to Fix It', arXiv:2006.08195",
)
register(
    "sin",
    Sin,
    function=sin,
    formula="sin(x)",
    source="Sitzmann et al. 2020, 'Implicit Neural Representations with Periodic Activation "
    "Functions' (SIREN), arXiv:2006.09661",
)
register("identity", Identity, function=identity, formula="x", source="linear baseline (no nonlinearity)")
