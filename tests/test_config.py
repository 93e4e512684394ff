"""The search configuration: defaults, validation that names the key, overrides and resume rules."""

import math
import os
import re
import subprocess
import sys

import pytest

from actmine.config import SANDBOX_BOUNDS, Config, ConfigError
from actmine.lab.ensemble import TrainingProtocol
from special_files import KINDS, make_special


def test_empty_file_is_the_default_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert Config.load(path) == Config() == Config.load(None)
    assert Config().search.initial_programs[0] == "relu" and Config().mutator.kind == "symbolic"
    # the paper's database is seeded with known activations: the library's, the paper's three among them
    assert {"gelu", "gelu_sine", "gelu_sinc_perturbation", "gmtu"} <= set(Config().search.initial_programs)
    # the default search samples pools (no fixed suite), and its test side names generators only
    assert Config().lab.suite is None and Config().tasks.search and Config().tasks.test


def test_bad_pools_are_config_errors_that_name_the_key():
    for tasks, key in (
        ({"search": [{"generator": "no-such"}]}, "tasks.search[0]"),
        ({"search": [{"generator": "polynomial", "size": 0}]}, "tasks.search[0]"),
        ({"test": {"x": [{"generator": "polynomial", "seeds": 3}]}}, "tasks.test.x[0]"),
        ({"test": {"x": []}}, "tasks.test.x"),
        ({"sample": 0}, "tasks.sample"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            Config.from_dict({"tasks": tasks})


def test_round_trip_through_dict():
    config = Config.from_dict(
        {"search": {"budget": 12, "initial_programs": ["relu", "gelu"]}, "executor": {"workers": 2}}
    )
    assert Config.from_dict(config.to_dict()) == config
    assert config.search.budget == 12 and config.search.initial_programs == ("relu", "gelu")


def test_the_old_names_of_renamed_keys_mean_the_new_ones():
    """`search.seeds` (the starting programs) and `lab.seeds` (training seeds) were renamed: a config
    file, an override or a stored run that says the old name means the new one, and resumes."""
    old = {"search": {"seed": 3, "seeds": ["relu", "gelu"]}, "lab": {"seeds": 2}}
    new = {"search": {"seed": 3, "initial_programs": ["relu", "gelu"]}, "lab": {"training_seeds": 2}}
    assert Config.from_dict(old) == Config.from_dict(new)
    assert old == {"search": {"seed": 3, "seeds": ["relu", "gelu"]}, "lab": {"seeds": 2}}  # not changed in place
    assert Config.from_dict(new).resume_conflicts(Config.from_dict(old)) == []
    overridden = Config().with_overrides({"search.seeds": ["silu"], "lab.seeds": 4})
    assert overridden.search.initial_programs == ("silu",) and overridden.lab.training_seeds == 4
    assert (
        set(Config().to_dict()["search"]) >= {"seed", "initial_programs"} and "seeds" not in Config().to_dict()["lab"]
    )


@pytest.mark.parametrize(
    "section,old,new", [("search", "seeds", "initial_programs"), ("lab", "seeds", "training_seeds")]
)
def test_an_old_and_a_new_name_together_are_refused(section, old, new):
    value = ["relu"] if section == "search" else 2
    with pytest.raises(ConfigError, match=rf"both {section}\.{old} and {section}\.{new}"):
        Config.from_dict({section: {old: value, new: value}})


@pytest.mark.parametrize(
    "data,key",
    [
        ({"serch": {}}, "serch"),
        ({"search": {"budgte": 3}}, "search.budgte"),
        ({"search": {"budget": "many"}}, "search.budget"),
        ({"search": {"budget": 0}}, "search.budget"),
        ({"search": {"budget": True}}, "search.budget"),
        ({"search": {"initial_programs": "relu"}}, "search.initial_programs"),
        ({"search": {"initial_programs": []}}, "search.initial_programs"),
        ({"search": {"exploitation": 0.8, "exploration": 0.5}}, "search.exploitation"),
        ({"search": {"winner_rule": "median"}}, "search.winner_rule"),
        ({"tasks": {"objective": "median"}}, "tasks.objective"),
        ({"tasks": {"control_beta": 1.5}}, "tasks.control_beta"),
        ({"tasks": {"control_beta": -0.1}}, "tasks.control_beta"),
        ({"tasks": {"control_beta": float("nan")}}, "tasks.control_beta"),
        ({"tasks": {"control_beta": "gelu"}}, "tasks.control_beta"),
        ({"mutator": {"kind": "genetic"}}, "mutator.kind"),
        ({"executor": {"kind": "slurm"}}, "executor.kind"),
        ({"executor": {"workers": -1}}, "executor.workers"),
        ({"sandbox": {"memory_mb": 0}}, "sandbox.memory_mb"),
        # past what the worker can turn into rlimits: every evaluation failed, and the search said exit 0
        ({"sandbox": {"timeout_s": float("inf")}}, "sandbox.timeout_s"),
        ({"sandbox": {"cpu_s": 1e300}}, "sandbox.cpu_s"),
        ({"sandbox": {"memory_mb": 10**40}}, "sandbox.memory_mb"),
        # NaN passed every comparison of the check, and was refused only after the run directory was made
        ({"sandbox": {"timeout_s": float("nan")}}, "sandbox.timeout_s"),
        ({"probes": {"max_flops_per_element": float("nan")}}, "probes.max_flops_per_element"),
        ({"probes": {"max_saved_bytes_per_element": float("inf")}}, "probes.max_saved_bytes_per_element"),
        ({"search": {"time_limit": float("nan")}}, "search.time_limit"),
        ({"lab": {"training_seeds": 10**9}}, "lab.training_seeds"),
        ({"lab": {"hidden": 0}}, "lab.hidden"),
        ({"lab": {"hidden": 10**6}}, "lab.hidden"),  # a typo would train million-wide layers in the controller
        ({"lab": {"hidden": 64.5}}, "lab.hidden"),
        ({"lab": {"lr": 0}}, "lab.lr"),
        ({"lab": {"lr": float("nan")}}, "lab.lr"),
        ({"lab": {"lr": float("inf")}}, "lab.lr"),
        ({"lab": {"adam_eps": 0}}, "lab.adam_eps"),
        ({"lab": {"adam_eps": float("nan")}}, "lab.adam_eps"),
        # a sandboxed process per evaluation in flight: a typo could start hundreds (a Dask cluster may be large)
        ({"executor": {"workers": 100_000}}, "executor.workers"),
        ({"probes": {"allow_batch_dependent": "yes"}}, "probes.allow_batch_dependent"),
        ({"lab": 3}, "lab"),
    ],
)
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.from_dict(data)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: {budget: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"search: {budget: 3, budget: 5}\n", "the key 'budget' appears twice in one mapping (line 1)"),
        (b"search:\n  budget: 12 # \xff\n", "not UTF-8 text (byte 0xff at offset 23)"),
        (b"search: {budget: " + b"9" * 5000 + b"}\n", "a value cannot be read: Exceeds the limit"),
    ],
    ids=["duplicate-key", "not-utf8", "5000-digits"],
)
def test_a_config_file_error_names_the_file_and_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(f"config file {str(path)!r}")) as raised:
        Config.load(path)
    assert message in str(raised.value)


@pytest.mark.parametrize("kind", KINDS)
def test_a_config_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    path = make_special(tmp_path / "config.yaml", kind)
    with pytest.raises(ConfigError, match="cannot be used: it is not a regular file"):
        Config.load(path)


def test_the_largest_sandbox_limits_are_ones_a_worker_can_set():
    # the bounds of the config check, applied as a sandbox worker applies them (a child: rlimits stick)
    code = (
        "from actmine.candidate.worker import limit_resources, set_cpu_budget\n"
        f"limit_resources({SANDBOX_BOUNDS['memory_mb']}); set_cpu_budget({SANDBOX_BOUNDS['cpu_s']})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_overrides_are_validated_and_none_is_ignored():
    config = Config().with_overrides({"search.budget": 7, "executor.workers": None})
    assert config.search.budget == 7 and config.executor.workers is None
    with pytest.raises(ConfigError, match="search.budget"):
        Config().with_overrides({"search.budget": -2})


def test_resume_allows_budget_and_workers_but_not_what_changes_results():
    before = Config()
    assert before.with_overrides({"search.budget": 999, "executor.workers": 4}).resume_conflicts(before) == []
    changed = before.with_overrides({"search.seed": 5, "mutator.kind": "random"})
    assert changed.resume_conflicts(before) == ["mutator.kind", "search.seed"]


def test_the_lab_width_and_rate_reach_every_lab_the_config_builds_and_change_no_old_run():
    narrow = Config().with_overrides({"lab.hidden": 16, "lab.steps": 7, "lab.lr": 0.01, "lab.adam_eps": 1e-3})
    assert narrow.protocol() == TrainingProtocol(hidden=16, steps=7, lr=0.01, adam_eps=1e-3)
    assert Config().protocol() == TrainingProtocol()  # the keys' defaults are the protocol's
    lab = narrow.build_lab("lab")
    assert (lab.protocol.hidden, lab.protocol.steps, lab.protocol.lr) == (16, 7, 0.01)
    assert lab.reference_key() != Config().build_lab("lab").reference_key()  # its own cached ReLU numbers
    from actmine.evolve.mutators.llm_check import lab_context

    assert lab_context(narrow).hidden == 16  # what the LLM's prompt says the network is
    # a run made before the key existed resumes: its snapshot reads as the default width
    old = Config().to_dict()
    old["lab"] = {k: v for k, v in old["lab"].items() if k not in ("hidden", "lr", "adam_eps")}
    assert Config().resume_conflicts(Config.from_dict(old)) == []
    assert narrow.resume_conflicts(Config()) == ["lab.adam_eps", "lab.hidden", "lab.lr", "lab.steps"]


def test_the_lab_width_is_the_width_trained():
    import torch

    from actmine.lab.ensemble import build_workload, parameter_shapes, train_ensemble
    from actmine.lab.tasks import Suite, get_suite

    task = get_suite("lab").tasks[0]
    errors = {}
    for width in (8, 64):
        protocol = Config().with_overrides({"lab.hidden": width, "lab.steps": 5}).protocol()
        workload = build_workload(Suite("one", (task,), (0,)), protocol)
        shapes = parameter_shapes(1, task.input_dim, protocol)
        assert workload.init.numel() == sum(math.prod(shape) for shape in shapes)
        assert shapes[0][-1] == width
        errors[width] = train_ensemble(torch.relu, workload).ood_error
    assert torch.isfinite(errors[8]).all() and not torch.equal(errors[8], errors[64])


def test_the_config_builds_the_sandbox_limits_and_the_probe_budget_with_every_key():
    from actmine.candidate.probes import ProbeBudget
    from actmine.candidate.sandbox import SandboxLimits

    config = Config.from_dict(
        {
            "sandbox": {"timeout_s": 11, "cpu_s": 12, "memory_mb": 1234, "max_tasks_per_worker": 7},
            "probes": {"max_flops_per_element": 99, "max_saved_bytes_per_element": 40, "allow_batch_dependent": True},
        }
    )
    assert config.sandbox_limits() == SandboxLimits(timeout_s=11, cpu_s=12, memory_mb=1234, max_tasks_per_worker=7)
    assert config.probe_budget() == ProbeBudget(
        max_flops_per_element=99, max_saved_bytes_per_element=40, allow_batch_dependent=True
    )


def test_local_workers_are_bounded_per_core_where_they_start():
    from actmine.candidate.sandbox import MAX_WORKERS_PER_CORE, SandboxPool
    from actmine.executors import LocalJobPool

    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    with pytest.raises(ValueError, match=f"at most {most} here"):
        SandboxPool(workers=most + 1)  # before any process starts
    with pytest.raises(ValueError, match=f"--workers {most + 1:,} is more than"):
        LocalJobPool(workers=most + 1)
    assert SandboxPool(workers=most).workers == most and LocalJobPool(workers=most).capacity == most
    assert Config().with_overrides({"executor.kind": "dask", "executor.workers": 10_000}).executor.workers == 10_000
