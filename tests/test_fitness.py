"""The score, the ReLU reference cache, failures, and the calibration promise of the default lab."""

import json
import math

import pytest
import torch

from actmine import activations
from actmine.candidate import probes
from actmine.candidate.probes import MESSAGE_LIMIT, ProbeBudget
from actmine.lab.ensemble import Protocol, TrainResult, train_ensemble
from actmine.lab.fitness import ERROR_FLOOR, Evaluation, Lab
from actmine.lab.tasks import Suite, feynman, harmonic, polynomial


@pytest.fixture(scope="module")
def lab_default():
    """The default suite and protocol, exactly as `actmine evaluate` uses them."""
    return Lab("lab")


@pytest.fixture()
def small_lab(tmp_path):
    suite = Suite("small", (polynomial(dim=1, seed=0), harmonic(seed=1), feynman("I.14.3")), (0, 1))
    return Lab(suite, protocol=Protocol(steps=20, n_train=256, n_eval=128), cache_dir=tmp_path)


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
    base = reference.ood_error[seeds:2 * seeds].double()
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
    other = Lab(small_lab.suite, protocol=Protocol(steps=21, n_train=256, n_eval=128), cache_dir=tmp_path)
    assert other.reference_key() != small_lab.reference_key()
    assert Lab(small_lab.suite.with_seeds(3), protocol=small_lab.protocol).reference_key() != small_lab.reference_key()


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
    allowed = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=small_lab.cache_dir,
                  budget=ProbeBudget(allow_batch_dependent=True))
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
    assert set(data) >= {"activation", "ok", "error", "fitness", "ood_log_ratio", "tasks", "probes", "workload",
                         "seconds"}
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
    return Lab(suite, protocol=Protocol(steps=6, n_train=64, n_eval=32, batch_size=16, hidden=16),
               cache_dir=tmp_path_factory.mktemp("cache"), screen_max_id_error=None)


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
    probes.run_probes(counting, dtype=tiny_lab.protocol.torch_dtype, budget=tiny_lab.budget,
                      shapes=(tiny_lab.training_shape(),))
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
    assert len(evaluation.error["message"]) < MESSAGE_LIMIT + 80 and "cut: 100000 characters" in \
        evaluation.error["message"]

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
