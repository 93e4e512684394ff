"""Adding a mutator, an executor, a transfer benchmark or a task generator is one new module and no
edit elsewhere (issue 18).

The examples are read from docs/architecture.md ("Plug points"), dropped as new modules into a
directory added to the package's search path, and then must be found by the registry, accepted by
the config and the CLI, and work: so the documentation's examples stay true.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

import actmine.evolve.mutators as mutators
import actmine.executors as executors
from actmine.candidate.sandbox import SandboxLimits
from actmine.candidate.source import check_source
from actmine.cli import build_parser
from actmine.config import Config, ConfigError
from actmine.evolve.mutators import Parent
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.fitness import Lab
from actmine.lab.tasks import Suite, polynomial

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def example(title: str) -> str:
    """The python block that follows the paragraph starting with `title` in the plug-points section."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Plug points") :]
    start = section.index(title)
    match = re.search(r"```python\n(.*?)```", section[start:], re.S)
    return match.group(1)


@pytest.fixture()
def small_lab(tmp_path):
    return Lab(
        Suite("plug-test", (polynomial(dim=1, seed=0),), (0,)),
        protocol=TrainingProtocol(steps=10, n_train=128, n_eval=64),
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture()
def plugged(tmp_path, monkeypatch):
    """Put a module into a package as a new file would be, and take it out again afterwards."""
    added: list[tuple[object, str, dict]] = []

    def plug(package, module: str, source: str, registry: dict) -> None:
        directory = tmp_path / package.__name__.replace(".", "_")
        directory.mkdir(exist_ok=True)
        (directory / f"{module}.py").write_text(source, encoding="utf-8")
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(directory)])
        added.append((package, module, registry))

    yield plug
    for package, module, registry in added:
        sys.modules.pop(f"{package.__name__}.{module}", None)
        for name in [
            n for n, cls in registry.items() if getattr(cls, "__module__", "") == f"{package.__name__}.{module}"
        ]:
            del registry[name]


def test_a_new_mutator_module_is_a_choice_of_the_config_and_the_cli_and_proposes(plugged):
    with pytest.raises(ConfigError, match="mutator.kind"):
        Config.from_dict({"mutator": {"kind": "identity_plus"}})
    plugged(mutators, "identity_plus", example("A mutator ("), mutators.MUTATORS)
    assert "identity_plus" in mutators.mutator_names()
    assert Config.from_dict({"mutator": {"kind": "identity_plus"}}).mutator.kind == "identity_plus"
    args = build_parser().parse_args(["search", "--mutator", "identity_plus"])
    assert args.mutator == "identity_plus"
    mutator = mutators.get_mutator("identity_plus")
    assert mutator.exhausted() is None and mutator.usage() == {} and mutator.concurrency == 1
    parent = Parent("def activation_function(x):\n    return torch.tanh(x)\n")
    for proposal in (mutator.propose(parent, [], random.Random(0)), mutator.propose(None, [], random.Random(1))):
        assert proposal.mutator == "identity_plus"
        check_source(proposal.source)  # a program the policy accepts


def test_a_new_executor_module_is_a_choice_and_evaluates_in_the_sandbox(plugged, small_lab):
    with pytest.raises(ConfigError, match="executor.kind"):
        Config.from_dict({"executor": {"kind": "pinned"}})
    plugged(executors, "pinned", example("An executor ("), executors.EXECUTORS)
    assert "pinned" in executors.executor_names()
    assert Config.from_dict({"executor": {"kind": "pinned"}}).executor.kind == "pinned"
    assert build_parser().parse_args(["search", "--executor", "pinned"]).executor == "pinned"
    executor = executors.make_executor("pinned", 1, SandboxLimits(timeout_s=120, cpu_s=120, memory_mb=3072))
    try:
        evaluation = executor.submit(
            "def activation_function(x):\n    return torch.tanh(x)\n", small_lab, "tanh"
        ).result(timeout=300)
        assert evaluation.ok and evaluation.fitness is not None
    finally:
        executor.close()


def test_only_mutator_subclasses_with_a_name_register():
    class Nameless(mutators.Mutator):
        pass

    class Duck:  # proposes, but has none of the hooks the controller calls
        name = "duck"

        def propose(self, parent, inspirations, rng):
            return None

    with pytest.raises(TypeError, match="subclass of Mutator"):
        mutators.register_mutator(Duck)
    with pytest.raises(ValueError, match="has no `name`"):
        mutators.register_mutator(Nameless)
    assert "duck" not in mutators.MUTATORS


def test_a_new_benchmark_module_is_found_and_trains_with_the_activation(plugged, tmp_path):
    from torch import nn

    import actmine.transfer as transfer
    from actmine.transfer.base import _BENCHMARKS, get_benchmark, list_benchmarks, registered_benchmark

    assert registered_benchmark("sine_fit") is None
    plugged(transfer, "sine_fit", example("A transfer benchmark ("), _BENCHMARKS)
    assert "sine_fit" in list_benchmarks() and registered_benchmark("Sine_Fit") is not None
    benchmark = get_benchmark("sine_fit")
    benchmark.check_data(tmp_path)
    made = []

    def make_activation() -> nn.Module:
        made.append(nn.GELU())
        return made[-1]

    first, again = (
        benchmark.run(make_activation, 0, tmp_path, "cpu"),
        benchmark.run(make_activation, 0, tmp_path, "cpu"),
    )
    assert len(made) == 2 and first.metric == "neg_mse"
    assert first.score == again.score and -1.0 < first.score < 0  # reproducible, and it learned something
    assert benchmark.run(nn.Identity, 0, tmp_path, "cpu").score < first.score  # a line cannot fit sin(3x)


def test_a_new_generator_module_is_a_generator_suites_can_name(plugged):
    import numpy as np

    import actmine.lab as lab
    from actmine.lab.generator_base import GENERATORS, boxes_disjoint
    from actmine.lab.generators import generator_names, get_generator
    from actmine.lab.tasks import build_task

    assert "ramp" not in generator_names()
    plugged(lab, "ramp_generator", example("A task generator ("), GENERATORS)
    assert "ramp" in generator_names()
    generator = get_generator("ramp", slope=[1.0, 3.0])
    task = generator.draw(5)
    assert task.family == "ramp" and boxes_disjoint(task.id_box, task.ood_box)
    x = np.linspace(0.0, 3.0, 31)[:, None]
    again = get_generator("ramp", slope=[1.0, 3.0]).draw(5)
    assert np.array_equal(task.target(x), again.target(x)) and task.description == again.description
    assert not np.array_equal(task.target(x), generator.draw(6).target(x))  # distinct draws
    rebuilt = build_task(task.to_dict())
    assert rebuilt.name == task.name and np.array_equal(rebuilt.target(x), task.target(x))
    with pytest.raises(Exception, match="slope"):
        get_generator("ramp", slope=[-1.0, 3.0])
