"""Activation functions and their registry.

Importing this package registers every built-in activation, so

    >>> from actmine import activations
    >>> activations.get("gelu_sine")
    GELUSine(alpha=0.1, approximate='tanh')

works without further imports.  ``classic`` holds the well-known activations
(ReLU ... Snake), ``paper`` the ones mined in Vitvitskyi et al. (2026),
"Mining Generalizable Activation Functions", arXiv:2602.05688, and
``registry`` the name-or-callable lookup.
"""

from . import classic, paper, registry
from .classic import (
    ELU,
    GELU,
    SELU,
    GELUTanh,
    Identity,
    LeakyReLU,
    Mish,
    ReLU,
    Sigmoid,
    SiLU,
    Sin,
    Snake,
    Softplus,
    Tanh,
    elu,
    gelu,
    gelu_tanh,
    identity,
    leaky_relu,
    mish,
    relu,
    selu,
    sigmoid,
    silu,
    sin,
    snake,
    softplus,
    tanh,
)
from .paper import (
    GMTU,
    GELUSincPerturbation,
    GELUSine,
    Turbulent,
    gelu_sinc_perturbation,
    gelu_sine,
    gmtu,
    turbulent,
)
from .registry import (
    REGISTRY,
    Activation,
    ActivationFromCallable,
    ActivationInfo,
    ActivationRegistry,
    UnknownActivationError,
    get,
    info,
    is_pointwise,
    list,
    load_pack,
    register,
)

# `list` is deliberately left out of __all__: a star-import would otherwise
# shadow the builtin in the importer.  Use `activations.list()`.
__all__ = [
    "REGISTRY",
    "Activation",
    "ActivationFromCallable",
    "ActivationInfo",
    "ActivationRegistry",
    "UnknownActivationError",
    "get",
    "info",
    "is_pointwise",
    "load_pack",
    "register",
    *classic.__all__,
    *paper.__all__,
]
