"""The CLRS-30 benchmark: samplers loaded without TensorFlow/JAX, the model, the scores, a short run."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("absl", reason="the CLRS samplers need absl-py")
if importlib.util.find_spec("clrs") is None:
    pytest.skip("dm-clrs is not installed (pip install --no-deps dm-clrs)", allow_module_level=True)

from actmine.transfer import algorithmic as A  # noqa: E402
from actmine.transfer.base import _BENCHMARKS, BenchmarkScore, DatasetMissing  # noqa: E402

#: Small enough for a test (a second or two), big enough to learn BFS's parent pointers.
TINY = dict(algorithms=("bfs",), hidden=16, batch_size=16, train_steps=60, num_train_samples=64,
            num_test_samples=8)


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
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "clrs" else real_find_spec(name, *a))
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
    allowed = (nn.Linear, nn.LayerNorm, nn.ModuleDict, nn.ModuleList, A.CLRSNet, A.MPNNProcessor,
               A._Encoder, A._Decoder, Counting)
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
    truths = [DataPoint("p", "node", "pointer", rng.integers(0, 6, (5, 6)).astype(float)),
              DataPoint("m", "node", "mask", (rng.random((5, 6)) > 0.5).astype(float)),
              DataPoint("o", "node", "mask_one", np.eye(6)[rng.integers(0, 6, 5)])]
    preds = {"p": rng.integers(0, 6, (5, 6)).astype(float), "m": (rng.random((5, 6)) > 0.5).astype(float),
             "o": np.eye(6)[rng.integers(0, 6, 5)]}
    reference = ev.evaluate(truths, {k: DataPoint(k, t.location, t.type_, preds[k])
                                     for k, t in zip("pmo", truths)})
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
    untrained, _ = bench.run_algorithm("bfs", nn.ReLU, seed=0, train_steps=0)
    result = bench.run(nn.ReLU, seed=0, data_dir=None, device="cpu")
    assert isinstance(result, BenchmarkScore) and result.metric == "score"
    assert result.score == result.details["per_algorithm"]["bfs"]
    assert result.details["per_output"]["bfs"] == {"pi": result.score}
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
    scores, record = bench.run_algorithm("bfs", Exploding, seed=0)
    assert record["diverged_at"] is not None and 0 < record["diverged_at"] < 20
    assert math.isfinite(record["final_loss"]) and 0.0 <= scores["score"] <= 1.0
