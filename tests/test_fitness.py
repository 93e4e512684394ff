"""The score, the ReLU reference cache, failures, and the calibration promise of the default lab."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from actmine import activations
from actmine.candidate import probes
from actmine.candidate.probes import MESSAGE_LIMIT, ProbeBudget
from actmine.lab.ensemble import TrainingProtocol, TrainResult, train_ensemble
from actmine.lab.fitness import ERROR_FLOOR, Evaluation, Lab, TaskScore, default_cache_dir
from actmine.lab.tasks import Suite, feynman, harmonic, polynomial


@pytest.fixture(scope="module")
def lab_default():
    """The default suite and protocol, exactly as `actmine evaluate` uses them."""
    return Lab("lab")


@pytest.fixture()
def small_lab(tmp_path):
    suite = Suite("small", (polynomial(dim=1, seed=0), harmonic(seed=1), feynman("I.14.3")), (0, 1))
    return Lab(suite, protocol=TrainingProtocol(steps=20, n_train=256, n_eval=128), cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_default_protocol_learns_every_default_task(lab_default, name):
    """Calibration: an OOD score means nothing unless the network learned the ID data."""
    result = lab_default.evaluate(activations.get(name), name=name)
    assert result.ok
    for task in result.tasks:
        assert task.id_error < 0.05, f"{name} did not learn {task.name}: ID error {task.id_error:.3f}"
    # every seed, not only the geometric mean over seeds
    reference = lab_default.reference if name == "relu" else None
    if reference is not None:
        assert float(reference.id_error.max()) < 0.05


def test_default_suite_workload_is_the_paper_protocol(lab_default):
    summary = lab_default.workload_summary()
    assert summary["steps"] == 50 and summary["batch_size"] == 128 and summary["hidden"] == 64
    assert summary["models"] == summary["tasks"] * summary["seeds"] >= 12 * 3


def test_relu_scores_exactly_zero(small_lab):
    result = small_lab.evaluate(torch.relu, name="relu")
    assert result.ok and result.ood_log_ratio == 0.0 and result.fitness == 0.0
    assert all(task.log_ratio == 0.0 for task in result.tasks)


def test_score_is_mean_of_clipped_per_task_mean_log_ratios(small_lab):
    reference = small_lab.reference
    seeds = len(small_lab.suite.seeds)
    factors = torch.tensor([0.5, 0.5, 2.0, 8.0, 1e6, 1e6])  # per model: task 3 explodes
    candidate = TrainResult(reference.losses, reference.id_error, reference.ood_error * factors, [])
    ratio, tasks = small_lab.score(candidate)
    expected_tasks = [math.log(0.5), (math.log(2.0) + math.log(8.0)) / 2, small_lab.log_ratio_clip]
    assert [t.log_ratio for t in tasks] == pytest.approx(expected_tasks)
    assert ratio == pytest.approx(sum(expected_tasks) / 3)
    # the per-task error is the geometric mean over seeds
    base = reference.ood_error[seeds : 2 * seeds].double()
    assert tasks[1].ood_error == pytest.approx(math.sqrt(float(base[0] * 2.0 * base[1] * 8.0)), rel=1e-6)


def test_error_floor_keeps_a_perfect_fit_finite(small_lab):
    reference = small_lab.reference
    perfect = TrainResult(reference.losses, reference.id_error, torch.zeros_like(reference.ood_error), [])
    ratio, tasks = small_lab.score(perfect)
    assert math.isfinite(ratio) and ratio >= -small_lab.log_ratio_clip
    assert all(t.ood_error == pytest.approx(ERROR_FLOOR) for t in tasks)


def test_reference_is_cached_on_disk_and_keyed_by_configuration(small_lab, tmp_path):
    first = small_lab.reference
    files = list(tmp_path.glob("reference-relu-*.json"))
    assert len(files) == 1
    again = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=tmp_path)
    assert again.reference_key() == small_lab.reference_key()
    torch.testing.assert_close(again.reference.ood_error, first.ood_error.to(again.reference.ood_error.dtype))
    # anything that changes ReLU's numbers changes the key
    other = Lab(small_lab.suite, protocol=TrainingProtocol(steps=21, n_train=256, n_eval=128), cache_dir=tmp_path)
    assert other.reference_key() != small_lab.reference_key()
    assert Lab(small_lab.suite.with_seeds(3), protocol=small_lab.protocol).reference_key() != small_lab.reference_key()


def test_a_cache_that_cannot_be_written_only_costs_the_work_again(small_lab, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")  # read-only or full: the same OSError
    lab = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=blocked)
    torch.testing.assert_close(lab.reference.ood_error.float(), small_lab.reference.ood_error.float())
    assert blocked.read_text() == "a file where the cache directory should be"


def test_cached_reference_is_what_training_gives(small_lab, tmp_path):
    cached = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=tmp_path)
    cached.reference  # written
    fresh = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=tmp_path / "elsewhere")
    torch.testing.assert_close(cached.reference.ood_error.float(), fresh.reference.ood_error.float())


def test_damaged_cache_entry_is_recomputed(small_lab, tmp_path):
    small_lab.reference
    (path,) = tmp_path.glob("reference-relu-*.json")
    path.write_text("{not json")
    recovered = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=tmp_path)
    assert recovered.reference.ood_error.shape == (6,)
    assert json.loads(path.read_text())["key"] == small_lab.reference_key()


def test_non_finite_candidate_is_a_failure_not_a_score(small_lab):
    result = small_lab.evaluate(lambda x: torch.exp(x), name="exp")
    assert not result.ok and result.fitness is None and result.ood_log_ratio is None
    assert result.error["code"] == "non_finite"
    diverging = small_lab.evaluate(lambda x: x * 1e18 * torch.sigmoid(x), name="huge")
    assert not diverging.ok and diverging.error["code"] in ("non_finite", "non_finite_gradient")


def test_candidate_that_raises_is_refused_with_its_error(small_lab):
    result = small_lab.evaluate(lambda x: x.reshape(-1)[:3], name="bad")
    assert not result.ok and result.error["code"] == "bad_shape"

    def raises(x):
        raise ZeroDivisionError("boom")

    result = small_lab.evaluate(raises, name="raises")
    assert result.error["code"] == "runtime_error" and "boom" in result.error["message"]


def test_batch_dependent_candidate_is_refused_by_default(small_lab):
    result = small_lab.evaluate(activations.get("turbulent"), name="turbulent")
    assert not result.ok and result.error["code"] == "batch_dependent" and result.stage == "probes"
    assert "probes.allow_batch_dependent" in result.error["message"]


def test_allowed_batch_dependent_candidate_is_scored_one_example_at_a_time(small_lab):
    allowed = Lab(
        small_lab.suite,
        protocol=small_lab.protocol,
        cache_dir=small_lab.cache_dir,
        budget=ProbeBudget(allow_batch_dependent=True),
    )
    result = allowed.evaluate(activations.get("turbulent"), name="turbulent")
    assert result.ok and result.probes["pointwise"] is False
    # scored per example: the same as an MLP trained per model but evaluated on single inputs
    workload = allowed.workload
    batched = train_ensemble(activations.get("turbulent"), workload, pointwise=False, per_example=False)
    single = train_ensemble(activations.get("turbulent"), workload, pointwise=False, per_example=True)
    assert not torch.allclose(batched.ood_error, single.ood_error)
    expected, _ = allowed.score(single)
    assert result.ood_log_ratio == pytest.approx(expected)


def test_evaluation_json_follows_the_contract(small_lab):
    data = small_lab.evaluate(activations.get("gelu_sine"), name="gelu_sine").to_dict()
    assert set(data) >= {
        "activation",
        "ok",
        "error",
        "fitness",
        "ood_log_ratio",
        "tasks",
        "probes",
        "workload",
        "seconds",
    }
    assert data["ok"] is True and data["error"] is None and data["fitness"] == -data["ood_log_ratio"]
    assert {"name", "family", "ood_error", "id_error", "log_ratio"} <= set(data["tasks"][0])
    assert {"pointwise", "flops_per_element", "fingerprint"} <= set(data["probes"])
    assert data["workload"]["models"] == 6 and data["workload"]["steps"] == 20
    json.dumps(data)  # serialisable as is


def test_by_family_aggregates_tasks(small_lab):
    result = small_lab.evaluate(activations.get("gelu"), name="gelu")
    families = result.by_family()
    assert set(families) == {"polynomial", "harmonic", "feynman"}
    harmonic_task = next(t for t in result.tasks if t.family == "harmonic")
    assert families["harmonic"]["ood_error"] == pytest.approx(harmonic_task.ood_error)


# --------------------------------------------------------------------------------------------
# The training checks what the probes saw
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lab(tmp_path_factory):
    """Two tasks, one seed, a few steps on small tensors: the checks, not the score."""
    suite = Suite("tiny", (polynomial(dim=1, seed=0), feynman("I.14.3")), (0,))
    return Lab(
        suite,
        protocol=TrainingProtocol(steps=6, n_train=64, n_eval=32, batch_size=16, hidden=16),
        cache_dir=tmp_path_factory.mktemp("cache"),
        screen_max_id_error=None,
    )


def test_training_shape_is_models_by_batch_by_hidden(small_lab):
    assert small_lab.training_shape() == (6, 128, 64)
    assert small_lab.workload.batches_x[0].shape[:2] == small_lab.training_shape()[:2]


@pytest.mark.parametrize("name", [n for n in activations.list() if activations.is_pointwise(n)])
def test_every_pointwise_library_activation_passes_the_training_check(tiny_lab, name):
    result = tiny_lab.evaluate(activations.get(name), name=name)
    assert result.ok, result.error
    assert result.stage == "done"


def _switches_after(calls: int):
    """relu for its first `calls` calls, then tanh: what a call counter makes possible."""
    count = []

    def activation(x):
        count.append(1)
        return torch.relu(x) if len(count) <= calls else torch.tanh(x)

    return activation, count


def test_a_function_that_changes_after_the_probes_is_refused_in_training(tiny_lab):
    counting, count = _switches_after(10**9)
    probes.run_probes(
        counting, dtype=tiny_lab.protocol.torch_dtype, budget=tiny_lab.budget, shapes=(tiny_lab.training_shape(),)
    )
    switching, _ = _switches_after(len(count))  # relu throughout the probes, tanh from the first training call
    result = tiny_lab.evaluate(switching, name="switching")
    assert not result.ok and result.stage == "train" and result.error["code"] == "inconsistent_function"
    assert "at training step 0" in result.error["message"]


def test_a_function_that_changes_its_input_only_in_training_is_refused(tiny_lab):
    def in_place_on_layer_outputs(x):
        if x.dim() == 3 and not x.is_leaf:  # the probes' tensors are leaves
            x.mul_(1.5)
        return torch.relu(x)

    result = tiny_lab.evaluate(in_place_on_layer_outputs, name="in_place")
    assert not result.ok and result.stage == "train" and result.error["code"] == "modifies_input"


def test_a_function_that_differs_on_the_scoring_pass_is_refused(tiny_lab):
    def other_when_scoring(x):  # relu on the training batch, tanh on the 32-row scoring tensors
        return torch.tanh(x) if x.dim() == 3 and x.shape[1] == 32 else torch.relu(x)

    result = tiny_lab.evaluate(other_when_scoring, name="scoring")
    assert not result.ok and result.stage == "train" and result.error["code"] == "inconsistent_function"


# --------------------------------------------------------------------------------------------
# Messages are capped
# --------------------------------------------------------------------------------------------


def test_failure_messages_are_capped(tiny_lab):
    evaluation = Evaluation(activation="a", ok=False).fail("probes", "runtime_error", "x" * 100_000)
    assert (
        len(evaluation.error["message"]) < MESSAGE_LIMIT + 80
        and "cut: 100000 characters" in evaluation.error["message"]
    )

    def raises_a_huge_message(x):
        raise ValueError("boom " * 200_000)

    result = tiny_lab.evaluate(raises_a_huge_message, name="huge")
    assert result.error["code"] == "runtime_error" and len(result.error["message"]) < MESSAGE_LIMIT + 80


def test_evaluation_from_a_worker_is_capped_and_checked():
    record = Evaluation(activation="a", ok=False).to_dict()
    record["error"] = {"code": "runtime_error", "message": "y" * 5_000_000, "stage": "probes"}
    record["activation"] = "n" * 10_000
    evaluation = Evaluation.from_dict(record)
    assert len(evaluation.error["message"]) < MESSAGE_LIMIT + 80 and len(evaluation.activation) < 400
    record["error"] = {f"k{i}": "v" for i in range(1000)}
    with pytest.raises(ValueError, match="malformed error field") as info:
        Evaluation.from_dict(record)
    assert len(str(info.value)) < 400


# --------------------------------------------------------------------------------------------
# Records: the `actmine evaluate --json` contract and what a worker's record may hold
# --------------------------------------------------------------------------------------------


def _record(**changes):
    task = TaskScore("t", "poly", 0.25, 0.01, -0.5, (-0.4, -0.6))
    data = Evaluation(
        "cand",
        ok=True,
        fitness=0.5,
        ood_log_ratio=-0.5,
        tasks=[task],
        probes={"pointwise": True},
        workload={"models": 2},
        seconds=1.5,
        stage="done",
        timings={"probes": 0.5},
    ).to_dict()
    data.update(changes)
    return data


def test_records_are_plain_data_with_every_field():
    task = TaskScore("t", "poly", 0.25, 0.01, -0.5, (-0.4, -0.6))
    assert task.to_dict() == {
        "name": "t",
        "family": "poly",
        "ood_error": 0.25,
        "id_error": 0.01,
        "log_ratio": -0.5,
        "seed_log_ratios": [-0.4, -0.6],
    }
    assert _record() == {
        "activation": "cand",
        "ok": True,
        "error": None,
        "fitness": 0.5,
        "ood_log_ratio": -0.5,
        "tasks": [task.to_dict()],
        "probes": {"pointwise": True},
        "workload": {"models": 2},
        "seconds": 1.5,
        "stage": "done",
        "timings": {"probes": 0.5},
    }
    assert Evaluation.from_dict(_record()).to_dict() == _record()


def test_a_record_missing_optional_fields_reads_with_the_defaults():
    data = {"ok": False}
    evaluation = Evaluation.from_dict(data)
    assert (
        evaluation.activation,
        evaluation.ok,
        evaluation.error,
        evaluation.fitness,
        evaluation.ood_log_ratio,
        evaluation.tasks,
        evaluation.probes,
        evaluation.workload,
        evaluation.seconds,
        evaluation.stage,
        evaluation.timings,
    ) == ("candidate", False, None, None, None, [], {}, {}, 0.0, "policy", {})
    fresh = Evaluation("a", ok=False)
    assert (fresh.stage, fresh.seconds, fresh.tasks, fresh.timings, fresh.error) == ("policy", 0.0, [], {}, None)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"ok": 1}, r"^not an evaluation record$"),
        ({"ok": None}, r"^not an evaluation record$"),
        ({"error": "boom"}, r"^malformed error field 'boom'$"),
        ({"error": {"code": 1}}, r"^malformed error field"),
        ({"error": {f"k{i}": "v" for i in range(9)}}, r"^malformed error field"),
        ({"fitness": True}, r"^expected a finite number, got True$"),
        ({"fitness": "0.5"}, r"^expected a finite number, got '0.5'$"),
        ({"fitness": math.inf}, r"^expected a finite number, got inf$"),
        ({"ood_log_ratio": math.nan}, r"^expected a finite number"),
        ({"seconds": None}, r"^expected a finite number, got None$"),
        ({"timings": {"train": None}}, r"^expected a finite number"),
        ({"timings": {"train": False}}, r"^expected a finite number"),
        ({"fitness": None}, r"^an evaluation marked ok must carry a fitness and task scores$"),
        ({"tasks": []}, r"^an evaluation marked ok must carry a fitness and task scores$"),
    ],
)
def test_a_malformed_worker_record_is_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        Evaluation.from_dict(_record(**changes))
    with pytest.raises(ValueError, match=r"^not an evaluation record$"):
        Evaluation.from_dict(["ok", True])


@pytest.mark.parametrize("field", ["ood_error", "id_error", "log_ratio", "seed_log_ratios"])
@pytest.mark.parametrize("bad", [None, True, "0.1", math.inf, math.nan])
def test_every_task_number_must_be_a_finite_number(field, bad):
    data = _record()
    data["tasks"][0][field] = [0.1, bad] if field == "seed_log_ratios" else bad
    with pytest.raises(ValueError, match=r"^expected a finite number"):
        Evaluation.from_dict(data)


def test_a_record_may_be_as_large_as_the_limits_and_no_larger():
    data = _record(
        ok=False,
        fitness=None,
        tasks=[],
        activation="a" * 256,
        stage="s" * 64,
        seconds=2,
        error={f"k{i}": "v" for i in range(8)},
        timings={"probes": 1},
    )
    data["error"]["k" * 64] = data["error"].pop("k7")
    evaluation = Evaluation.from_dict(data)
    assert evaluation.activation == "a" * 256 and evaluation.stage == "s" * 64  # at the limits: kept as they are
    assert evaluation.error == data["error"] and evaluation.seconds == 2.0 and evaluation.timings == {"probes": 1.0}
    assert isinstance(evaluation.seconds, float) and isinstance(evaluation.timings["probes"], float)
    longer = Evaluation.from_dict(
        _record(activation="a" * 257, stage="s" * 65, error={"k" * 65: "m" * (MESSAGE_LIMIT + 1)})
    )
    assert longer.activation.startswith("a" * 256 + "… [cut: 257 characters")
    assert longer.stage.startswith("s" * 64 + "… [cut: 65")
    ((key, message),) = longer.error.items()
    assert key.startswith("k" * 64 + "… [cut: 65") and message.startswith("m" * MESSAGE_LIMIT + "… [cut:")
    with pytest.raises(ValueError) as info:
        Evaluation.from_dict(_record(error={"code": 1, "message": "x" * 1000}))
    excerpt = repr({"code": 1, "message": "x" * 1000})[:200]
    assert str(info.value).startswith(f"malformed error field {excerpt}… [cut: ")
    many_seeds = _record()
    many_seeds["tasks"][0]["seed_log_ratios"] = [0.5] * 1500
    assert Evaluation.from_dict(many_seeds).tasks[0].seed_log_ratios == (0.5,) * 1000


def test_task_scores_read_as_floats_and_text_fields_as_text():
    data = _record()
    data["tasks"][0].update(name=7, family=3, ood_error=1, id_error=2, log_ratio=0, seed_log_ratios=[1, -1])
    (task,) = Evaluation.from_dict(data).tasks
    assert task == TaskScore("7", "3", 1.0, 2.0, 0.0, (1.0, -1.0))
    assert all(isinstance(v, float) for v in (task.ood_error, task.id_error, task.log_ratio, *task.seed_log_ratios))
    data["tasks"][0]["seed_log_ratios"] = None
    assert Evaluation.from_dict(data).tasks[0].seed_log_ratios == ()
    assert Evaluation.from_dict(_record(fitness=1, ood_log_ratio=-1)).fitness == 1.0


def test_fail_marks_the_evaluation_refused_at_its_stage():
    evaluation = Evaluation("a", ok=True, fitness=0.1, stage="done")
    assert evaluation.fail("screen", "screen_failed", "did not learn") is evaluation
    assert not evaluation.ok and evaluation.stage == "screen"
    assert evaluation.error == {"code": "screen_failed", "message": "did not learn", "stage": "screen"}


# --------------------------------------------------------------------------------------------
# A lab's configuration: defaults, its spec, its reference key and cache
# --------------------------------------------------------------------------------------------


def test_a_labs_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTMINE_CACHE_DIR", str(tmp_path))
    lab = Lab()
    assert lab.suite.name == "lab" and lab.suite.seeds == (0, 1, 2) and lab.protocol == TrainingProtocol()
    assert lab.cache_dir == tmp_path and lab.log_ratio_clip == 3.0 and lab.budget == ProbeBudget()
    assert lab.screen_max_id_error == 0.5 and lab.max_source_chars == 20_000
    assert Lab("lab", seeds=1, cache_dir=str(tmp_path / "x")).suite.seeds == (0,)
    assert Lab("lab", cache_dir=str(tmp_path / "x")).cache_dir == tmp_path / "x"


def test_the_default_cache_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTMINE_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.setenv("ACTMINE_CACHE_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "actmine"
    monkeypatch.delenv("ACTMINE_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "actmine"


def test_a_lab_rebuilt_from_its_spec_is_the_same_lab(tmp_path):
    suite = Suite("two", (polynomial(dim=1, seed=3), harmonic(seed=2)), (4, 5))
    lab = Lab(
        suite,
        protocol=TrainingProtocol(steps=7, hidden=8),
        cache_dir=tmp_path,
        log_ratio_clip=1.5,
        budget=ProbeBudget(max_flops_per_element=10.0, allow_batch_dependent=True),
        screen_max_id_error=0.25,
        max_source_chars=123,
        fused=False,
    )
    spec = json.loads(json.dumps(lab.to_spec()))
    assert spec == {
        "suite": suite.to_dict(),
        "protocol": lab.protocol.to_dict(),
        "log_ratio_clip": 1.5,
        "budget": lab.budget.to_dict(),
        "screen_max_id_error": 0.25,
        "max_source_chars": 123,
        "fused": False,
    }
    again = Lab.from_spec(spec, cache_dir=tmp_path / "other")
    assert again.to_spec() == lab.to_spec() and again.cache_dir == tmp_path / "other"
    assert again.reference_key() == lab.reference_key()
    assert again.fused is False
    assert (again.protocol, again.budget, again.log_ratio_clip, again.screen_max_id_error, again.max_source_chars) == (
        lab.protocol,
        lab.budget,
        1.5,
        0.25,
        123,
    )
    assert Lab.from_spec({**spec, "screen_max_id_error": None}).screen_max_id_error is None


def test_workload_summary_and_training_shape(tmp_path):
    suite = Suite("two", (polynomial(dim=1, seed=3), harmonic(seed=2)), (4, 5, 6))
    lab = Lab(suite, protocol=TrainingProtocol(steps=7, hidden=8, batch_size=16), cache_dir=tmp_path)
    assert lab.workload_summary() == {
        "models": 6,
        "steps": 7,
        "batch_size": 16,
        "hidden": 8,
        "tasks": 2,
        "seeds": 3,
        "suite": "two",
    }
    assert lab.training_shape() == (6, 16, 8)


def test_the_screen_is_the_first_task_on_the_first_seed(tmp_path):
    suite = Suite("two", (harmonic(seed=2), polynomial(dim=1, seed=3)), (4, 5))
    lab = Lab(
        suite, protocol=TrainingProtocol(steps=2, hidden=4, n_train=32, n_eval=16, batch_size=8), cache_dir=tmp_path
    )
    assert lab.screen_workload.labels == [("harmonic-s2", 4)]
    assert lab.workload.labels == [("harmonic-s2", 4), ("harmonic-s2", 5), ("poly1d-s3", 4), ("poly1d-s3", 5)]
    torch.testing.assert_close(lab.screen_workload.x_ood[0], lab.workload.x_ood[0])


def test_the_reference_key_hashes_everything_that_changes_relus_numbers(tmp_path):
    import hashlib

    from actmine.lab import fitness

    suite = Suite("two", (polynomial(dim=1, seed=3), harmonic(seed=2)), (0, 1))
    lab = Lab(suite, protocol=TrainingProtocol(steps=7), cache_dir=tmp_path)
    key = lab.reference_key()
    assert len(key) == 20 and int(key, 16) >= 0
    lab_dir = Path(fitness.__file__).parent
    modules = sorted(lab_dir.glob("*.py"))
    assert {"tasks.py", "task_families.py", "generators.py", "expression_tasks.py", "ensemble.py", "fitness.py"} <= {
        m.name for m in modules
    }
    digest = hashlib.sha256(b"".join(m.read_bytes() for m in modules))
    assert fitness._lab_code_hash() == digest.hexdigest()[:16]
    payload = {
        "format": 1,
        "reference": "relu",
        "suite": suite.to_dict(),
        "protocol": lab.protocol.to_dict(),
        "torch": torch.__version__,
        "code": digest.hexdigest()[:16],
    }
    assert key == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    # not changed by what does not change ReLU's numbers
    assert (
        Lab(
            suite,
            protocol=TrainingProtocol(steps=7),
            cache_dir=tmp_path / "b",
            log_ratio_clip=1.0,
            screen_max_id_error=None,
        ).reference_key()
        == key
    )


def _fake_result(models: int) -> TrainResult:
    return TrainResult(torch.ones(2, models), torch.full((models,), 0.5), torch.full((models,), 0.25), [])


def test_the_reference_cache_file_is_named_by_the_key_and_holds_the_numbers(tmp_path, monkeypatch):
    from actmine.lab import fitness

    suite = Suite("two", (polynomial(dim=1, seed=3), harmonic(seed=2)), (0, 1))
    lab = Lab(suite, protocol=TrainingProtocol(steps=2), cache_dir=tmp_path / "made" / "here")
    calls = []
    monkeypatch.setattr(fitness, "train_ensemble", lambda act, workload: calls.append(act) or _fake_result(4))
    monkeypatch.setattr(Lab, "workload", None)
    result = lab.reference
    assert calls == [torch.relu] and result.ood_error.tolist() == [0.25] * 4
    path = tmp_path / "made" / "here" / f"reference-relu-{lab.reference_key()}.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file is left
    assert json.loads(path.read_text()) == {
        "losses": [[1.0] * 4] * 2,
        "id_error": [0.5] * 4,
        "ood_error": [0.25] * 4,
        "key": lab.reference_key(),
    }
    again = Lab(suite, protocol=TrainingProtocol(steps=2), cache_dir=path.parent).reference  # read, not trained
    assert len(calls) == 1 and again.ood_error.tolist() == [0.25] * 4 and again.id_error.tolist() == [0.5] * 4
    assert again.losses.tolist() == [[1.0] * 4] * 2 and again.non_finite == []
    path.write_text(json.dumps({"losses": [], "id_error": []}))  # valid JSON, a field missing: recomputed
    assert (
        Lab(suite, protocol=TrainingProtocol(steps=2), cache_dir=path.parent).reference.ood_error.tolist() == [0.25] * 4
    )
    assert len(calls) == 2 and json.loads(path.read_text())["ood_error"] == [0.25] * 4


def test_a_diverging_relu_is_an_unstable_protocol_not_a_reference(tmp_path, monkeypatch):
    from actmine.lab import fitness

    suite = Suite("two", (polynomial(dim=1, seed=3), harmonic(seed=2)), (0, 1))
    lab = Lab(suite, protocol=TrainingProtocol(steps=2), cache_dir=tmp_path)
    diverged = _fake_result(4)
    diverged.non_finite = [1, 3]
    monkeypatch.setattr(fitness, "train_ensemble", lambda act, workload: diverged)
    lab.__dict__["workload"] = SimpleNamespace(
        labels=[("poly1d-s3", 0), ("poly1d-s3", 1), ("harmonic-s2", 0), ("harmonic-s2", 1)]
    )
    with pytest.raises(
        RuntimeError,
        match=r"^ReLU diverged on poly1d-s3 \(seed 1\), harmonic-s2 \(seed 1\): "
        r"the protocol is unstable$",
    ):
        lab.reference
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "models, text",
    [
        ([0], "a (seed 0)"),
        ([2, 0, 1], "b (seed 0), a (seed 0), a (seed 1)"),
        ([0, 1, 2, 3], "a (seed 0), a (seed 1), b (seed 0) and 1 more"),
        ([3, 2, 1, 0, 3], "b (seed 1), b (seed 0), a (seed 1) and 2 more"),
    ],
)
def test_failures_name_at_most_three_models(tmp_path, models, text):
    lab = Lab(Suite("s", (polynomial(dim=1, seed=3),), (0,)), cache_dir=tmp_path)
    lab.__dict__["workload"] = SimpleNamespace(labels=[("a", 0), ("a", 1), ("b", 0), ("b", 1)])
    assert lab._describe(models) == text


# --------------------------------------------------------------------------------------------
# The cascade's stages, on one tiny task (a few training steps)
# --------------------------------------------------------------------------------------------


def _one_task_lab(tmp_path, screen_max_id_error: float | None = 10.0, **kwargs) -> Lab:
    """One MLP, six steps: it learns little, so the screen is lenient unless a test sets it."""
    suite = Suite("one", (polynomial(dim=1, seed=0),), (0,))
    return Lab(
        suite,
        protocol=TrainingProtocol(steps=6, n_train=64, n_eval=32, batch_size=16, hidden=8),
        cache_dir=tmp_path,
        screen_max_id_error=screen_max_id_error,
        **kwargs,
    )


def test_a_function_already_evaluated_stops_after_the_probes(tmp_path):
    lab = _one_task_lab(tmp_path)
    fingerprint = probes.run_probes(
        torch.tanh, dtype=lab.protocol.torch_dtype, budget=lab.budget, shapes=(lab.training_shape(),)
    )["fingerprint"]
    result = lab.evaluate(torch.tanh, name="tanh", skip_fingerprints={fingerprint, "other"})
    assert not result.ok and result.stage == "probes" and result.error["code"] == "duplicate"
    assert result.error["message"] == (
        f"computes the same function as an already evaluated program (fingerprint {fingerprint})"
    )
    assert set(result.timings) == {"probes"} and result.seconds == result.timings["probes"]
    assert isinstance(result.seconds, float) and 0 < result.seconds < 60
    assert result.workload == lab.workload_summary() and result.fitness is None
    unnamed = lab.evaluate(torch.tanh, skip_fingerprints={"other"})
    assert unnamed.ok and unnamed.activation == "candidate"


def test_the_screen_passes_at_its_threshold_and_fails_above_it(tmp_path):
    lab = _one_task_lab(tmp_path)
    screen_error = float(train_ensemble(torch.tanh, lab.screen_workload).id_error[0])
    at = _one_task_lab(tmp_path, screen_max_id_error=screen_error).evaluate(torch.tanh, name="tanh")
    assert at.ok and at.stage == "done" and list(at.timings) == ["probes", "screen", "train"]
    assert at.fitness == -at.ood_log_ratio and at.activation == "tanh"
    below = _one_task_lab(tmp_path, screen_max_id_error=screen_error * 0.999).evaluate(torch.tanh, name="tanh")
    assert not below.ok and below.stage == "screen" and below.error["code"] == "screen_failed"
    assert below.error["message"] == (
        f"the MLP did not learn the screening task poly1d-s0: normalised ID error "
        f"{screen_error:.3g} > {screen_error * 0.999}"
    )
    assert list(below.timings) == ["probes", "screen"] and below.fitness is None and below.tasks == []
    assert below.seconds == pytest.approx(sum(below.timings.values()), abs=2e-4) and below.seconds < 60
    assert at.seconds == pytest.approx(sum(at.timings.values()), abs=3e-4) and at.seconds < 60
    assert round(at.seconds, 4) == at.seconds and round(below.seconds, 4) == below.seconds  # to 0.1 ms
    unscreened = _one_task_lab(tmp_path, screen_max_id_error=None).evaluate(torch.tanh, name="tanh")
    assert unscreened.ok and list(unscreened.timings) == ["probes", "train"]
    assert unscreened.ood_log_ratio == pytest.approx(at.ood_log_ratio)


def test_a_function_that_blows_up_in_the_screen_is_refused_there(tmp_path):
    def huge(x):  # finite wherever the probes look, but it overflows two layers deep
        return torch.tanh(x) * 1e25

    result = _one_task_lab(tmp_path).evaluate(huge, name="huge")
    assert not result.ok and result.stage == "screen" and result.error["code"] == "non_finite"
    assert result.error["message"] == (
        "non-finite loss, gradient, parameters or output on poly1d-s0 (the screening task)"
    )
    unscreened = _one_task_lab(tmp_path, screen_max_id_error=None).evaluate(huge)
    assert unscreened.stage == "train" and unscreened.error["code"] == "non_finite"
    assert unscreened.error["message"] == "non-finite loss, gradient, parameters or output on poly1d-s0 (seed 0)"


def test_relus_fitness_is_a_positive_zero(tmp_path):
    result = _one_task_lab(tmp_path).evaluate(torch.relu, name="relu")
    assert result.ok and result.fitness == 0.0 and math.copysign(1.0, result.fitness) == 1.0


def test_program_text_goes_through_the_policy_first(tmp_path):
    lab = _one_task_lab(tmp_path, max_source_chars=200)
    long = lab.evaluate_source("def activation_function(x):\n    return x\n" + "#" * 300, name="long")
    assert not long.ok and long.stage == "policy" and long.error["code"] == "too_long"
    assert long.error["message"].startswith("long, candidate source is 341 characters, over the limit of 200;")
    unnamed = _one_task_lab(tmp_path).evaluate_source("x = 1\n" * 2000 + "import os\n")  # parsed, then refused
    assert unnamed.activation == "candidate" and unnamed.error["message"].startswith("candidate, line 2001:")
    assert unnamed.stage == "policy" and unnamed.seconds == unnamed.timings["policy"]
    assert (
        isinstance(unnamed.seconds, float) and 0 < unnamed.seconds < 60 and round(unnamed.seconds, 4) == unnamed.seconds
    )
    assert long.error["stage"] == "policy" and long.activation == "long"
    assert list(long.timings) == ["policy"] and long.seconds == long.timings["policy"]
    assert isinstance(long.seconds, float) and 0 <= long.seconds < 60 and round(long.seconds, 4) == long.seconds
    assert long.workload == lab.workload_summary()
    source = "def activation_function(x):\n    return torch.tanh(x)\n"
    fine = lab.evaluate_source(source, name="tanh")
    assert fine.ok and fine.activation == "tanh" and list(fine.timings) == ["policy", "probes", "screen", "train"]
    assert fine.seconds == pytest.approx(sum(fine.timings.values()), abs=3e-4)  # each rounded to 0.1 ms
    assert all(
        round(v, 4) == v and isinstance(v, float) and 0 <= v < 60 for v in (fine.seconds, *fine.timings.values())
    )
    assert fine.ood_log_ratio == pytest.approx(lab.evaluate(torch.tanh).ood_log_ratio)
    assert not lab.evaluate_source(source, skip_fingerprints={fine.probes["fingerprint"]}).ok


def test_the_probes_run_at_the_protocols_dtype_and_training_shape(tmp_path):
    suite = Suite("one", (polynomial(dim=1, seed=0),), (0,))
    lab64 = Lab(
        suite,
        protocol=TrainingProtocol(steps=2, n_train=64, n_eval=32, batch_size=16, hidden=8, dtype="float64"),
        cache_dir=tmp_path,
    )
    probed = lab64.evaluate(torch.tanh, skip_fingerprints=_AllFingerprints())
    assert probed.error["code"] == "duplicate" and probed.probes["saved_bytes_per_element"] == 8.0  # float64: 8 bytes
    assert (
        _one_task_lab(tmp_path)
        .evaluate(torch.tanh, skip_fingerprints=_AllFingerprints())
        .probes["saved_bytes_per_element"]
        == 4.0
    )

    def batch_dependent_at_the_training_shape(x):  # (models, batch, hidden) = (1, 16, 8)
        return torch.relu(x - x.mean()) if tuple(x.shape) == (1, 16, 8) else torch.relu(x)

    result = _one_task_lab(tmp_path).evaluate(batch_dependent_at_the_training_shape)
    assert result.stage == "probes" and result.error["code"] == "batch_dependent"


class _AllFingerprints:
    """Every fingerprint is already evaluated: `evaluate` stops after the probes."""

    def __contains__(self, item):
        return True


@pytest.mark.parametrize(
    "error, code", [(ZeroDivisionError("boom in training"), "runtime_error"), (MemoryError("no room"), "memory_limit")]
)
@pytest.mark.parametrize("screen", [10.0, None])
def test_a_function_that_raises_only_in_training_is_refused_at_that_stage(tmp_path, error, code, screen):
    def raises_on_layer_outputs(x):
        if x.dim() == 3 and not x.is_leaf:  # the probes' tensors are leaves
            raise error
        return torch.relu(x)

    result = _one_task_lab(tmp_path, screen_max_id_error=screen).evaluate(raises_on_layer_outputs, name="raises")
    stage = "screen" if screen is not None else "train"
    assert not result.ok and result.stage == stage and result.fitness is None
    assert result.error == {"code": code, "message": f"{type(error).__name__}: {error}", "stage": stage}


def test_the_screen_checks_the_function_and_scores_a_batch_dependent_one_per_example(tmp_path):
    lab = _one_task_lab(tmp_path)
    counting, count = _switches_after(10**9)
    probes.run_probes(counting, dtype=lab.protocol.torch_dtype, budget=lab.budget, shapes=(lab.training_shape(),))
    switching, _ = _switches_after(len(count))  # relu in the probes, tanh from the screen's first call
    result = lab.evaluate(switching, name="switching")
    assert result.stage == "screen" and result.error["code"] == "inconsistent_function"

    allowed = _one_task_lab(tmp_path, screen_max_id_error=0.0, budget=ProbeBudget(allow_batch_dependent=True))
    turbulent = activations.get("turbulent")
    per_example = train_ensemble(turbulent, allowed.screen_workload, pointwise=False, per_example=True).id_error[0]
    batched = train_ensemble(turbulent, allowed.screen_workload, pointwise=False, per_example=False).id_error[0]
    assert f"{float(per_example):.3g}" != f"{float(batched):.3g}"
    refused = allowed.evaluate(turbulent, name="turbulent")
    assert refused.error["code"] == "screen_failed"
    assert f"normalised ID error {float(per_example):.3g} > 0.0" in refused.error["message"]
