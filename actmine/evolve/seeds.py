"""Seed programs: the registry's pointwise activations written as candidate source.

A search starts from programs, not modules: each seed is the source a mutator edits. These
expressions compute exactly the registry's functions (a test checks every one against
`actmine.activations.get(name)`), within the static policy.
"""

from __future__ import annotations

from pathlib import Path

from ..candidate.source import CandidateError, read_candidate_file

SEED_EXPRESSIONS = {
    "relu": "torch.relu(x)",
    "leaky_relu": "F.leaky_relu(x, 0.01)",
    "elu": "F.elu(x)",
    "selu": "F.selu(x)",
    "gelu": "F.gelu(x)",
    "gelu_tanh": "F.gelu(x, approximate='tanh')",
    "silu": "F.silu(x)",
    "mish": "F.mish(x)",
    "softplus": "F.softplus(x)",
    "tanh": "torch.tanh(x)",
    "sigmoid": "torch.sigmoid(x)",
    "snake": "x + torch.sin(x) ** 2",
    "sin": "torch.sin(x)",
    "identity": "x",
    "gelu_sine": "F.gelu(x, approximate='tanh') + 0.1 * torch.sin(x)",
    "gelu_sinc_perturbation": "F.gelu(x, approximate='tanh') * (1 + 0.5 * torch.sinc(x))",
    "gmtu": "torch.tanh(1.5 * x) * torch.exp(-0.2 * x * x) + 0.1 * x",
}


def program(expression: str) -> str:
    return f"def activation_function(x):\n    return {expression}\n"


def seed_source(name_or_path: str) -> str:
    """The source of a seed: a registry name from SEED_EXPRESSIONS, or a .py program file."""
    if name_or_path.endswith(".py") or Path(name_or_path).suffix:
        try:
            return read_candidate_file(name_or_path)
        except CandidateError as exc:
            raise ValueError(f"seed {name_or_path!r}: {exc}") from None
    if name_or_path not in SEED_EXPRESSIONS:
        raise ValueError(
            f"seed {name_or_path!r} is not a pointwise registry activation with a source form; "
            f"use one of {', '.join(SEED_EXPRESSIONS)} or a .py file"
        )
    return program(SEED_EXPRESSIONS[name_or_path])
