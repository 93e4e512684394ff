"""Seed programs compute exactly the registry's functions and pass the static policy."""

import pytest
import torch

from actmine import activations
from actmine.candidate.source import compile_candidate
from actmine.evolve.seeds import SEED_EXPRESSIONS, seed_source


@pytest.mark.parametrize("name", sorted(SEED_EXPRESSIONS))
def test_seed_source_matches_the_registry(name):
    function = compile_candidate(seed_source(name), name)
    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    torch.testing.assert_close(function(x), activations.get(name)(x), rtol=1e-10, atol=1e-12)


def test_every_pointwise_registry_activation_has_a_seed_form():
    pointwise = {n for n in activations.list() if activations.info(n).pointwise}
    assert pointwise == set(SEED_EXPRESSIONS)


def test_seed_from_a_file_and_bad_seeds(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def activation_function(x):\n    return torch.tanh(x) + x\n")
    assert "torch.tanh" in seed_source(str(path))
    with pytest.raises(ValueError, match="turbulent"):
        seed_source("turbulent")
    with pytest.raises(ValueError, match="does not exist"):
        seed_source(str(tmp_path / "missing.py"))
