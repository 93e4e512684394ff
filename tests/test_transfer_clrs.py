"""The CLRS-30 benchmark: samplers loaded without TensorFlow/JAX, the model, the scores, a short run."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

pytest.importorskip("absl", reason="the CLRS samplers need absl-py")
if importlib.util.find_spec("clrs") is None:
    pytest.skip("dm-clrs is not installed (pip install --no-deps dm-clrs)", allow_module_level=True)

from actmine.transfer import algorithmic as A  # noqa: E402
from actmine.transfer.base import _BENCHMARKS, BenchmarkScore, DatasetMissing  # noqa: E402

#: Small enough for a test (a second or two), big enough to learn BFS's parent pointers.
TINY = dict(algorithms=("bfs",), hidden=16, batch_size=16, train_steps=60, num_train_samples=64, num_test_samples=8)


class Counting(nn.Module):
    """An activation that counts its calls (and is a real nonlinearity: ReLU)."""

    def __init__(self, log: list):
        super().__init__()
        self.calls = 0
        log.append(self)

    def forward(self, x):
        self.calls += 1
        return torch.relu(x)


@pytest.fixture(scope="module")
def clrs():
    return A.import_clrs()


def test_registered_with_the_protocol_attributes():
    assert _BENCHMARKS["clrs"] is A.CLRS
    assert A.CLRS.name == "clrs" and A.CLRS.metric == "score"
    bench = A.CLRS()
    assert bench.algorithms == A.DEFAULT_ALGORITHMS and bench.train_size == 16 and bench.test_size == 64


def test_samplers_load_without_tensorflow_or_jax(clrs):
    # What the clrs modules were given for tensorflow/jax/chex are actmine's stand-ins ...
    assert clrs.probing.tf.__actmine_stub__ and clrs.samplers.jax.__actmine_stub__
    assert clrs.probing.jnp.__actmine_stub__
    # ... which were never left in sys.modules for anyone else to import.
    for name in ("tensorflow", "jax", "jax.numpy", "chex"):
        assert not getattr(sys.modules.get(name), "__actmine_stub__", False)
    if importlib.util.find_spec("tensorflow") is None:
        assert "tensorflow" not in sys.modules
        with pytest.raises(ImportError):
            importlib.import_module("tensorflow")
    assert clrs.SPECS["bfs"]["pi"] == ("output", "node", "pointer")
    package = importlib.import_module("clrs")  # the light namespace, not clrs/__init__.py
    assert package.build_sampler is clrs.build_sampler and package.SPECS is clrs.SPECS


def test_check_data_passes_when_installed_and_names_the_install_command_when_not(monkeypatch):
    A.CLRS().check_data(None)
    monkeypatch.setattr(A, "_CLRS", None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "clrs" else real_find_spec(name, *a)
    )
    with pytest.raises(DatasetMissing, match="pip install --no-deps dm-clrs"):
        A.CLRS().check_data(None)


def test_train_and_test_sets_have_16_and_64_nodes():
    bench = A.CLRS(algorithms=("bfs",), num_train_samples=5, num_test_samples=3)
    train, test = bench.datasets("bfs", seed=0)
    shapes = {p.name: p.data.shape for p in train.inputs + train.outputs}
    assert shapes == {"pos": (5, 16), "s": (5, 16), "A": (5, 16, 16), "adj": (5, 16, 16), "pi": (5, 16)}
    assert train.nb_nodes == 16 and train.size == 5 and train.lengths.shape == (5,)
    assert test.nb_nodes == 64 and {p.name: p.data.shape for p in test.outputs} == {"pi": (3, 64)}
    assert np.all(test.outputs[0].data < 64)
    again, _ = bench.datasets("bfs", seed=0)
    other, _ = bench.datasets("bfs", seed=1)
    assert np.array_equal(again.inputs[2].data, train.inputs[2].data)
    assert not np.array_equal(other.inputs[2].data, train.inputs[2].data)


def test_the_id_test_set_has_train_size_nodes_and_is_held_out():
    bench = A.CLRS(algorithms=("bfs",), num_train_samples=50, num_test_samples=6)
    train, ood = bench.datasets("bfs", seed=0)
    in_dist = bench.id_test_set("bfs", seed=0)
    assert in_dist.nb_nodes == 16 and in_dist.size == 6 and ood.nb_nodes == 64
    # Drawn from a seed of its own: none of its graphs is a training graph.
    adj = {p.name: p.data for p in train.inputs}["A"]
    for graph in {p.name: p.data for p in in_dist.inputs}["A"]:
        assert not any(np.array_equal(graph, g) for g in adj)
    # ... and fixed by the seed, like the other sets.
    again = bench.id_test_set("bfs", seed=0)
    assert np.array_equal(again.inputs[2].data, in_dist.inputs[2].data)
    assert not np.array_equal(bench.id_test_set("bfs", seed=1).inputs[2].data, in_dist.inputs[2].data)
    with pytest.raises(ValueError, match="known"):
        bench.id_test_set("quantum_sort", seed=0)


def test_scoring_on_the_way_is_what_a_shorter_run_scores():
    bench = A.CLRS(**{**TINY, "train_steps": 12})
    scores, record = bench.run_algorithm("bfs", nn.ReLU, seed=3, score_at=[5, 12, 40])
    short, short_record = bench.run_algorithm("bfs", nn.ReLU, seed=3, train_steps=5)
    assert set(record["scored_at"]) == {5}  # 12 is the run itself, 40 is never reached
    at = record["scored_at"][5]
    assert at["score"] == short["score"] and at["id_score"] == short_record["id_scores"]["score"]
    assert 0 < at["train_seconds"] < record["seconds"]["train"]


def test_pred_as_input_and_random_pos():
    data = A.sample_dataset("binary_search", 4, 16, seed=3)
    assert [p.name for p in data.inputs] == ["pos", "key", "target", "pred"]
    assert data.inputs[-1].type_ == "pointer" and data.inputs[-1].data.shape == (4, 16)
    moved = A.randomize_pos(data, np.random.RandomState(0))
    pos = moved.inputs[0].data
    assert pos.shape == (4, 16) and np.all(np.diff(pos, axis=1) > 0) and not np.allclose(pos, data.inputs[0].data)
    assert data.inputs[0].data[0, 1] == pytest.approx(1 / 16)  # the original is untouched


def test_every_nonlinearity_is_the_plugged_activation():
    created: list[Counting] = []
    train = A.sample_dataset("bfs", 4, 8, seed=0)
    model = A.build_model(train, 8, lambda: Counting(created))
    assert len(created) == 3
    allowed = (
        nn.Linear,
        nn.LayerNorm,
        nn.ModuleDict,
        nn.ModuleList,
        A.CLRSNet,
        A.MPNNProcessor,
        A._Encoder,
        A._Decoder,
        Counting,
    )
    assert all(isinstance(m, allowed) for m in model.modules())
    lengths = torch.as_tensor(train.lengths)
    steps = int(torch.clamp(lengths - 1, min=1).max())
    out = model(A._to_tensors(train.inputs, "cpu"), lengths, 8)
    assert [m.calls for m in created] == [steps] * 3
    assert out["pi"].shape == (4, 8, 8)
    # Two models built from the same seed have the same weights whatever the activation.
    torch.manual_seed(1)
    a = A.build_model(train, 8, nn.ReLU)
    torch.manual_seed(1)
    b = A.build_model(train, 8, nn.Tanh)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_scores_against_hand_computed_values(clrs):
    assert A.pointer_accuracy(np.array([[0, 1, 2, 2]]), np.array([[0, 1, 1, 2]])) == 0.75
    # tp = 2 (0, 4), fp = 1 (1), fn = 1 (2): precision = recall = 2/3
    assert A.mask_f1(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1])) == pytest.approx(2 / 3)
    # a MASKED truth entry is ignored: only index 2 counts now (fn), tp = 2, fp = 0
    assert A.mask_f1(np.array([1, 1, 0, 0, 1]), np.array([1, -1, 1, 0, 1])) == pytest.approx(0.8)
    assert A.mask_f1(np.zeros(3), np.zeros(3)) == 1.0  # nothing to find, nothing claimed
    assert A.mask_f1(np.zeros(3), np.ones(3)) == 0.0
    one_hot = np.eye(4)[[0, 3, 2]]
    scores = np.array([[0.9, 0.1, 0, 0], [0, 0.5, 0, 0.2], [0, 0, 1, 0]])
    assert A.categorical_accuracy(scores, one_hot) == pytest.approx(2 / 3)
    masked = one_hot.copy()
    masked[1] = -1  # a masked row is left out
    assert A.categorical_accuracy(scores, masked) == 1.0
    assert A.scalar_mse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == 2.0

    # ... and they agree with dm-clrs' own evaluation on random arrays.
    rng = np.random.default_rng(0)
    DataPoint, ev = clrs.probing.DataPoint, clrs.evaluation
    truths = [
        DataPoint("p", "node", "pointer", rng.integers(0, 6, (5, 6)).astype(float)),
        DataPoint("m", "node", "mask", (rng.random((5, 6)) > 0.5).astype(float)),
        DataPoint("o", "node", "mask_one", np.eye(6)[rng.integers(0, 6, 5)]),
    ]
    preds = {
        "p": rng.integers(0, 6, (5, 6)).astype(float),
        "m": (rng.random((5, 6)) > 0.5).astype(float),
        "o": np.eye(6)[rng.integers(0, 6, 5)],
    }
    reference = ev.evaluate(truths, {k: DataPoint(k, t.location, t.type_, preds[k]) for k, t in zip("pmo", truths)})
    ours = A.evaluate_outputs([A.Probe(t.name, t.location, t.type_, t.data) for t in truths], preds)
    assert ours == pytest.approx({k: float(v) for k, v in reference.items()})


def test_losses_are_the_clrs_losses():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]]])  # [B=1, n=3, n=3]
    truth = torch.tensor([[0, 1, 1]])
    expected = -np.mean([torch.log_softmax(logits[0, i], -1)[truth[0, i]].item() for i in range(3)])
    assert A.output_loss("pointer", logits, truth).item() == pytest.approx(expected)
    pred, mask = torch.tensor([[0.3, -2.0, 1.0]]), torch.tensor([[1.0, 0.0, -1.0]])
    bce = [-math.log(torch.sigmoid(torch.tensor(0.3)).item()), -math.log(1 - torch.sigmoid(torch.tensor(-2.0)).item())]
    assert A.output_loss("mask", pred, mask).item() == pytest.approx(np.mean(bce), rel=1e-5)
    assert A.hard_prediction("mask", pred).tolist() == [[1.0, 0.0, 1.0]]
    assert A.hard_prediction("pointer", logits).tolist() == [[0, 1, 2]]


def test_a_short_run_learns_and_is_deterministic():
    bench = A.CLRS(**TINY)
    untrained, untrained_record = bench.run_algorithm("bfs", nn.ReLU, seed=0, train_steps=0)
    result = bench.run(nn.ReLU, seed=0, data_dir=None, device="cpu")
    assert isinstance(result, BenchmarkScore) and result.metric == "score"
    assert result.score == result.details["per_algorithm"]["bfs"]
    assert result.details["per_output"]["bfs"] == {"pi": result.score}
    # The ID score (held-out 16-node instances) is reported beside the OOD one, not instead of it.
    id_score = result.details["id_per_algorithm"]["bfs"]
    assert result.details["id_score"] == id_score and result.details["id_per_output"]["bfs"] == {"pi": id_score}
    assert 0.0 <= id_score <= 1.0 and 0.0 <= result.score <= 1.0
    assert id_score > untrained_record["id_scores"]["score"] + 0.3, (id_score, untrained_record)
    assert result.score > untrained["score"] + 0.3, (result.score, untrained)
    assert math.isfinite(result.details["final_train_loss"]["bfs"])
    assert result.details["diverged_at_step"] == {"bfs": None}
    json.dumps(result.details, allow_nan=False)  # JSON-serialisable, as the runner stores it
    again = bench.run(nn.ReLU, seed=0, data_dir=None, device="cpu")
    assert again.score == result.score and again.details["per_output"] == result.details["per_output"]


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="quantum_sort.*known: .*insertion_sort"):
        A.CLRS(algorithms=("bfs", "quantum_sort"))
    with pytest.raises(ValueError, match="known"):
        A.CLRS(algorithms=())
    assert A.CLRS(algorithms="bfs").algorithms == ("bfs",)
    assert A.CLRS(algorithms=["bfs", "dfs"]).algorithms == ("bfs", "dfs")  # a YAML list from --option


class Exploding(nn.Module):
    """Finite at first, then NaN: a candidate whose training blows up."""

    calls = 0

    def forward(self, x):
        Exploding.calls += 1
        return x * float("nan") if Exploding.calls > 40 else torch.relu(x)


def test_a_diverging_activation_stops_training_and_is_scored_as_it_is():
    Exploding.calls = 0
    bench = A.CLRS(**{**TINY, "train_steps": 20})
    scores, record = bench.run_algorithm("bfs", Exploding, seed=0, score_at=[19])
    assert record["diverged_at"] is not None and 0 < record["diverged_at"] < 19
    assert math.isfinite(record["final_loss"]) and 0.0 <= scores["score"] <= 1.0
    # A 19-step run would have stopped at the same step: it scores what the stopped model scores.
    assert record["scored_at"][19]["score"] == scores["score"]
    assert record["scored_at"][19]["id_score"] == record["id_scores"]["score"]


# --------------------------------------------------------------------------------------------
# benchmarks/bench_clrs_power.py: the power calculation
# --------------------------------------------------------------------------------------------


def _power_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_clrs_power.py"
    spec = importlib.util.spec_from_file_location("bench_clrs_power", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def power():
    return _power_script()


def test_seeds_needed_by_hand(power):
    assert power.seeds_needed(0.3) == 35  # (1.96 · 0.3 / 0.1)² = 34.57
    assert power.seeds_needed(0.1) == 4  # 3.84
    assert power.seeds_needed(0.02) == 2  # 0.15, but an sd needs two seeds
    assert power.seeds_needed(0.5, resolution=0.2, z=2.0) == 25  # exactly 25: no rounding up
    assert power.pooled_sd([0.3, 0.4, None]) == pytest.approx(math.sqrt((0.09 + 0.16) / 2))
    assert power.pooled_sd([None]) is None


@given(sd=st.floats(0.01, 3.0))
def test_seeds_needed_is_the_fewest_that_resolve_the_difference(power, sd):
    n = power.seeds_needed(sd)
    assert 1.96 * sd / math.sqrt(n) <= 0.1 + 1e-9
    assert n == 2 or 1.96 * sd / math.sqrt(n - 1) > 0.1


def test_settings_share_one_training_run_per_algorithm(power):
    settings = power.grid([("bfs", "bellman_ford"), ("bellman_ford",)], [600, 300])
    assert [s.label for s in settings] == [
        "bfs+bellman_ford @600",
        "bfs+bellman_ford @300",
        "bellman_ford @600",
        "bellman_ford @300",
    ]
    assert power.training_plan(settings) == {"bfs": [300, 600], "bellman_ford": [300, 600]}


def test_a_setting_row_against_a_hand_computation(power):
    from actmine.transfer.runner import log_ratio

    # Two algorithms, two seeds, ReLU and one activation: the setting's score is the algorithms' mean.
    ood = {("relu", 0): (0.9, 0.7), ("relu", 1): (0.8, 0.6), ("gelu", 0): (0.95, 0.75), ("gelu", 1): (0.8, 0.5)}
    records = [
        {
            "algorithm": alg,
            "activation": act,
            "seed": seed,
            "steps": 300,
            "score": score,
            "id_score": 1.0 - i * 0.1,
            "seconds": 10.0 + i,
        }
        for (act, seed), pair in ood.items()
        for i, (alg, score) in enumerate(zip(("a", "b"), pair))
    ]
    row = power.setting_row(power.Setting(("a", "b"), 300), records, ["gelu"], seeds=2)
    ratios = [log_ratio(0.85, 0.8), log_ratio(0.65, 0.7)]
    assert row["relu_ood"] == pytest.approx(0.75) and row["relu_id"] == pytest.approx(0.95)
    assert row["seconds_per_job"] == pytest.approx(21.0)
    mean, sd = row["log_ratio"]["gelu"]
    assert mean == pytest.approx(np.mean(ratios)) and sd == pytest.approx(np.std(ratios, ddof=1))
    assert row["sd"] == pytest.approx(sd) and row["seeds_needed"] == math.ceil((1.96 * sd / 0.1) ** 2)
    assert row["minutes_per_activation"] == pytest.approx(row["seeds_needed"] * 21.0 / 60)
    assert "a+b @300" in power.format_table([row], ["gelu"])


def test_the_power_script_runs_quick(power, capsys):
    threads = torch.get_num_threads()
    try:
        assert power.main(["--quick"]) == 0
    finally:
        torch.set_num_threads(threads)  # main() runs on one thread; leave the session as it was
    out = capsys.readouterr().out
    assert "bfs @4" in out and "bfs @8" in out and "gelu_sine lr±sd" in out
    with pytest.raises(SystemExit):
        power.main(["--seeds", "1"])


def test_score_at_refuses_step_counts_below_one():
    bench = A.CLRS(**TINY)
    with pytest.raises(ValueError, match="at least 1"):
        bench.run_algorithm("bfs", nn.ReLU, 0, score_at=(0,))
