"""CLRS-30: neural algorithmic reasoning, trained on size-16 instances and scored on size-64 ones.

The data are the procedural samplers of the CLRS Algorithmic Reasoning Benchmark (Veličković et
al. 2022, `dm-clrs` on PyPI): each sample is an algorithm's input (an array or a graph), its
output and the trajectory of its intermediate states.  The samplers are plain numpy, but the
package imports TensorFlow, JAX, Haiku and chex at load time; :func:`import_clrs` loads only the
sampler, spec and evaluation modules, with tiny stand-ins for what those modules touch of
``jax``, ``chex`` and ``tensorflow`` (see its docstring), so neither TensorFlow nor JAX is needed.

The model is the paper's encode-process-decode network with the MPNN processor, in PyTorch:

* **encode** every input with a linear map by location and type (``clrs._src.encoders``): node
  features ``[B, n, h]``, edge features ``[B, n, n, h]`` (node pointers become one-hot edges)
  and graph features ``[B, h]``;
* **process** with a message-passing step over the fully connected graph, max aggregation::

      z = [node_fts, hidden]
      m_ij = MLP(act(W1 z_i + W2 z_j + We e_ij + Wg g))        MLP = Linear, act, Linear
      hidden'_j = LayerNorm(act(O1 z_j + O2 max_i m_ij))

  where every ``act`` is a fresh module from ``make_activation`` (three per processor; the
  original uses ReLU in all three places);
* **decode** each output from ``[node_fts, hidden_prev, hidden]`` with the paper's decoders
  (``clrs._src.decoders``): a logit per node for masks, a softmax over nodes for ``mask_one``,
  over categories for categorical outputs, and over the pointed-to node for pointers.

Hints are not used (the "no-hint" setting of the CLRS paper's follow-ups): the processor still
runs once per step of the algorithm's own trajectory (``max(len - 1, 1)`` steps, the number the
CLRS network unrolls for), so bigger instances get more steps, but only the final output is
supervised.  This keeps the model small and fast on a CPU and leaves the extrapolation from 16 to
64 nodes entirely to the processor, which is the part the activation lives in.  As in the CLRS
baseline, training samples get randomised ``pos`` inputs and the algorithms whose trajectory has a
constant ``pred_h`` hint get it as a ``pred`` input; ``should_be_permutation`` outputs are scored
as plain pointers (``enforce_permutations=False``).

Scores follow ``clrs._src.evaluation`` (reimplemented below on numpy arrays and checked in the
tests): accuracy for pointers, ``mask_one`` and categorical outputs, F1 for masks, mean squared
error for scalars (no CLRS-30 output is a scalar); an algorithm's score is the mean over its
outputs, and the benchmark's score is the mean over algorithms.  Each model is also scored on fresh
instances of the training size (the ID score, in ``details``): an OOD score means something only
where the ID one is high.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import math
import sys
import time
import types
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark

__all__ = [
    "CLRS",
    "CLRS30_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "INSTALL_COMMAND",
    "CLRSNet",
    "categorical_accuracy",
    "evaluate_outputs",
    "import_clrs",
    "mask_f1",
    "pointer_accuracy",
    "scalar_mse",
]

INSTALL_COMMAND = "pip install --no-deps dm-clrs && pip install absl-py attrs"

#: The 30 algorithms of the benchmark (``clrs._src.specs.CLRS_30_ALGS``), kept here so that a bad
#: name is refused without importing anything.
CLRS30_ALGORITHMS: tuple[str, ...] = (
    "activity_selector", "articulation_points", "bellman_ford", "bfs", "binary_search", "bridges",
    "bubble_sort", "dag_shortest_paths", "dfs", "dijkstra", "find_maximum_subarray_kadane",
    "floyd_warshall", "graham_scan", "heapsort", "insertion_sort", "jarvis_march", "kmp_matcher",
    "lcs_length", "matrix_chain_order", "minimum", "mst_kruskal", "mst_prim",
    "naive_string_matcher", "optimal_bst", "quickselect", "quicksort", "segments_intersect",
    "strongly_connected_components", "task_scheduling", "topological_sort",
)

#: Graph algorithms with short trajectories (a handful of processor steps on 64 nodes) that learn
#: in a few hundred steps without hints: BFS (easy: close to 1 for most activations, it catches
#: those that break on bigger graphs) and Bellman-Ford (shortest-path parents on weighted graphs:
#: OOD 0.7-0.85 after 300 steps, not saturated).  Measured (docs/transfer.md, "CLRS: settings and
#: power", benchmarks/bench_clrs_power.py): 13 s per job on one thread at 300 steps, ReLU's ID
#: score 0.96 and OOD 0.89, per-seed log-ratio sd ~0.12, so ~6 seeds resolve a difference of 0.1;
#: 600 and 1000 steps cost 2-3x and were no less noisy.  The other CLRS-30 algorithms unroll ~n
#: steps or more (insertion_sort, minimum, activity_selector, dijkstra, mst_prim: n;
#: dag_shortest_paths: ~1.2 n; dfs: 3 n), 3-20x the cost; pass them in `algorithms`.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("bfs", "bellman_ford")

#: ``examples/run.py`` of dm-clrs: algorithms whose constant ``pred_h`` hint becomes an input.
_PRED_AS_INPUT = frozenset({
    "binary_search", "minimum", "find_maximum_subarray", "find_maximum_subarray_kadane",
    "matrix_chain_order", "lcs_length", "optimal_bst", "activity_selector", "task_scheduling",
    "naive_string_matcher", "kmp_matcher", "jarvis_march",
})

# The CLRS vocabulary (clrs._src.specs), as plain strings.
NODE, EDGE, GRAPH = "node", "edge", "graph"
SCALAR, CATEGORICAL, MASK, MASK_ONE, POINTER = "scalar", "categorical", "mask", "mask_one", "pointer"
SHOULD_BE_PERMUTATION = "should_be_permutation"
MASKED = -1  # specs.OutputClass.MASKED


# --------------------------------------------------------------------------------------------
# Loading the samplers without TensorFlow / JAX
# --------------------------------------------------------------------------------------------

_CLRS: types.SimpleNamespace | None = None


def _tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    """``jax.tree_util.tree_map`` for what the samplers batch: lists, tuples, dicts, DataPoints."""
    if tree is None:
        return None
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_tree_map(fn, *xs) for xs in zip(tree, *rest)))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, *xs) for xs in zip(tree, *rest))
    if isinstance(tree, dict):
        return {k: _tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if hasattr(tree, "tree_flatten"):  # probing.DataPoint, a registered pytree node
        children, meta = tree.tree_flatten()
        others = [r.tree_flatten()[0] for r in rest]
        return type(tree).tree_unflatten(meta, [_tree_map(fn, *cs) for cs in zip(children, *others)])
    return fn(tree, *rest)


def _one_hot_np(x: Any, n: int) -> np.ndarray:
    return (np.asarray(x)[..., None] == np.arange(n)).astype(np.float32)


def _assert_rank(xs: Any, rank: int) -> None:
    for x in (xs if isinstance(xs, (list, tuple)) else [xs]):
        if np.ndim(x) != rank:
            raise AssertionError(f"expected rank {rank}, got shape {np.shape(x)}")


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"actmine stand-in for {name!r}, used only to load clrs' samplers")
    module.__dict__.update(attrs)
    module.__actmine_stub__ = True
    return module


def _stubs() -> dict[str, types.ModuleType]:
    """The stand-ins: exactly the names the loaded clrs modules use at import time or in sampling.

    * ``jax``: ``jax.Array`` (a type union in ``probing``), ``jax.tree_util.register_pytree_node_class``
      (a class decorator: identity) and ``jax.tree_util.tree_map`` (``samplers._batch_io`` and
      ``_batch_hints`` batch DataPoints with it: a small real implementation);
    * ``jax.numpy``: ``jnp.vectorize`` decorates three permutation helpers in ``probing`` and
      ``jnp.ndarray`` annotates them (numpy's equivalents; the few other ``jnp`` names in those
      helpers resolve to numpy too); ``jax.nn.one_hot`` is used by the same helpers;
    * ``chex``: ``chex.Array`` (a type alias) and ``chex.assert_rank`` (the algorithms' argument
      checks: a real check);
    * ``tensorflow``: ``tf.Tensor``, only in an ``isinstance`` test in ``probing`` (a class that
      nothing is an instance of).
    """
    jax_numpy = _stub("jax.numpy", ndarray=np.ndarray, vectorize=np.vectorize,
                      __getattr__=lambda name: getattr(np, name))
    tree_util = _stub("jax.tree_util", register_pytree_node_class=lambda cls: cls, tree_map=_tree_map)
    jax_nn = _stub("jax.nn", one_hot=_one_hot_np)
    jax = _stub("jax", Array=type("Array", (), {}), numpy=jax_numpy, tree_util=tree_util, nn=jax_nn)
    return {
        "jax": jax, "jax.numpy": jax_numpy, "jax.tree_util": tree_util, "jax.nn": jax_nn,
        "chex": _stub("chex", Array=np.ndarray, assert_rank=_assert_rank),
        "tensorflow": _stub("tensorflow", Tensor=type("Tensor", (), {})),
    }


def import_clrs() -> types.SimpleNamespace:
    """The light part of dm-clrs: ``build_sampler``, ``SPECS``, ``specs``, ``samplers``, ``evaluation``.

    ``import clrs`` runs ``clrs/__init__.py``, which imports the JAX/Haiku model, the TensorFlow
    dataset code and the text tools; the modules that sample (``clrs._src.samplers``,
    ``clrs._src.algorithms``, ``clrs._src.probing``, ``clrs._src.specs``) and score
    (``clrs._src.evaluation``) only need numpy, ``absl.logging`` and ``attrs``, plus a few names of
    ``jax``, ``chex`` and ``tensorflow`` (listed in :func:`_stubs`).  So this function

    1. registers a bare package object as ``clrs`` whose ``__path__`` is the installed package's
       folder, so ``clrs._src.*`` load without running ``clrs/__init__.py`` (it stays registered,
       with the samplers', specs' and evaluation's public names of the real ``clrs`` namespace:
       the loaded submodules are its children, and the real ``clrs`` needs TensorFlow anyway);
    2. puts the stand-ins for ``jax``, ``jax.numpy``, ``jax.tree_util``, ``jax.nn``, ``chex`` and
       ``tensorflow`` into ``sys.modules`` only while those submodules are imported, then puts
       back whatever was there before (nothing, or the real packages), so no other code ever sees
       a fake TensorFlow or JAX; the clrs modules keep their references to the stand-ins.

    The result is cached.  Raises :class:`DatasetMissing` naming the install command when dm-clrs
    or one of its light dependencies is missing.
    """
    global _CLRS
    if _CLRS is not None:
        return _CLRS
    try:
        spec = importlib.util.find_spec("clrs")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing(
            "the CLRS benchmark needs the procedural samplers of the `dm-clrs` package, which is not "
            f"installed; install it without its TensorFlow/JAX dependencies: {INSTALL_COMMAND}")

    package = sys.modules.get("clrs")
    placeholder = package is None or not hasattr(package, "__path__")
    if placeholder:
        package = types.ModuleType("clrs", "dm-clrs, loaded by actmine without clrs/__init__.py")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = importlib.machinery.ModuleSpec("clrs", None, is_package=True)
        package.__spec__.submodule_search_locations = package.__path__
        package.__file__ = spec.origin
        sys.modules["clrs"] = package

    stubs = _stubs()
    saved = {name: sys.modules.get(name) for name in stubs}
    try:
        sys.modules.update(stubs)
        specs = importlib.import_module("clrs._src.specs")
        samplers = importlib.import_module("clrs._src.samplers")
        evaluation = importlib.import_module("clrs._src.evaluation")
    except ImportError as exc:
        if placeholder:  # leave no half-loaded package behind
            for name in [m for m in sys.modules if m == "clrs" or m.startswith("clrs.")]:
                del sys.modules[name]
        raise DatasetMissing(
            f"could not load the CLRS samplers ({exc}); install them with: {INSTALL_COMMAND}") from exc
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    _CLRS = types.SimpleNamespace(
        build_sampler=samplers.build_sampler, SPECS=specs.SPECS, specs=specs, samplers=samplers,
        evaluation=evaluation, probing=importlib.import_module("clrs._src.probing"))
    if placeholder:  # `import clrs` elsewhere gets the same light API rather than an empty package
        for attr in ("build_sampler", "Sampler", "Feedback", "Features", "Trajectory", "CLRS30",
                     "process_random_pos", "process_pred_as_input", "process_permutations"):
            setattr(package, attr, getattr(samplers, attr))
        for attr in ("SPECS", "Spec", "Stage", "Location", "Type", "OutputClass", "CLRS_30_ALGS_SETTINGS"):
            setattr(package, attr, getattr(specs, attr))
        package.evaluate, package.evaluate_hints = evaluation.evaluate, evaluation.evaluate_hints
        package.DataPoint = _CLRS.probing.DataPoint
    return _CLRS


# --------------------------------------------------------------------------------------------
# Scores (clrs._src.evaluation, on numpy arrays)
# --------------------------------------------------------------------------------------------

def pointer_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pointers (node indices) predicted exactly."""
    return float(np.mean(np.asarray(pred) == np.asarray(truth)))


def categorical_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of ``argmax`` over the last axis (``mask_one`` and categorical outputs).

    ``pred`` is scores or one-hot, ``truth`` one-hot; rows of ``truth`` holding a MASKED (-1) entry
    are left out, as in ``clrs._src.evaluation._eval_one``.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    keep = np.all(truth != MASKED, axis=-1)
    hits = (np.argmax(pred, -1) == np.argmax(truth, -1)) * keep
    return float(np.sum(hits) / np.sum(keep))


def mask_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the positives of a mask: ``pred`` are probabilities (> 0.5 is positive) or 0/1.

    Entries where ``truth`` is MASKED (-1) are left out; precision (recall) with nothing predicted
    (nothing to find) counts as 1, as in ``clrs._src.evaluation._mask_fn``.
    """
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    keep = truth != MASKED
    tp = np.sum((pred > 0.5) & (truth > 0.5) & keep)
    fp = np.sum((pred > 0.5) & (truth < 0.5) & keep)
    fn = np.sum((pred < 0.5) & (truth > 0.5) & keep)
    precision = tp / (tp + fp) if tp + fp > 0 else 1.0
    recall = tp / (tp + fn) if tp + fn > 0 else 1.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def scalar_mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error (CLRS scores scalar outputs so; none of the CLRS-30 outputs is one)."""
    return float(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2))


_SCORE_FN = {
    POINTER: pointer_accuracy, SHOULD_BE_PERMUTATION: pointer_accuracy, MASK: mask_f1,
    MASK_ONE: categorical_accuracy, CATEGORICAL: categorical_accuracy, SCALAR: scalar_mse,
}


def evaluate_outputs(truths: Sequence["Probe"], hard_preds: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-output scores and their mean (``score``), like ``clrs.evaluate``.

    ``hard_preds`` holds decoded predictions: node indices for pointers, 0/1 for masks, one-hot
    (or scores) for ``mask_one``/categorical, values for scalars.
    """
    scores = {t.name: _SCORE_FN[t.type_](hard_preds[t.name], t.data) for t in truths}
    scores["score"] = sum(scores.values()) / len(scores)
    return scores


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass
class Probe:
    """One input or output of a batch: ``data`` is ``[B, ...]`` (pointers as node indices)."""

    name: str
    location: str
    type_: str
    data: np.ndarray


@dataclass
class Dataset:
    inputs: list[Probe]
    outputs: list[Probe]
    lengths: np.ndarray  # trajectory length of each sample (number of hint steps)

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def nb_nodes(self) -> int:
        return int(next(p for p in self.inputs if p.name == "pos").data.shape[1])

    def take(self, idx: np.ndarray) -> "Dataset":
        return Dataset([Probe(p.name, p.location, p.type_, p.data[idx]) for p in self.inputs],
                       [Probe(p.name, p.location, p.type_, p.data[idx]) for p in self.outputs],
                       self.lengths[idx])


def _derived_seed(seed: int, *keys: str) -> int:
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def sample_dataset(algorithm: str, num_samples: int, length: int, seed: int) -> Dataset:
    """``num_samples`` trajectories of ``algorithm`` on inputs of ``length`` nodes (CLRS samplers)."""
    clrs = import_clrs()
    sampler, _spec = clrs.build_sampler(algorithm, num_samples, length=length, seed=seed,
                                        track_max_steps=False)
    feedback = sampler.next()  # the whole pregenerated set
    inputs = [Probe(dp.name, dp.location, dp.type_, np.asarray(dp.data)) for dp in feedback.features.inputs]
    if algorithm in _PRED_AS_INPUT:  # samplers.process_pred_as_input: the constant pred_h hint
        for dp in feedback.features.hints:
            if dp.name == "pred_h":
                inputs.append(Probe("pred", dp.location, dp.type_, np.asarray(dp.data[0])))
    outputs = [Probe(dp.name, dp.location, dp.type_, np.asarray(dp.data)) for dp in feedback.outputs]
    return Dataset(inputs, outputs, np.asarray(feedback.features.lengths, dtype=np.int64))


def randomize_pos(batch: Dataset, rng: np.random.RandomState) -> Dataset:
    """``samplers.process_random_pos``: ``pos`` becomes sorted uniforms within each segment."""
    inputs = []
    for p in batch.inputs:
        if p.name == "pos":
            b, n = p.data.shape
            unsorted = rng.uniform(size=(b, n))
            new = np.empty_like(p.data, dtype=np.float64)
            for i in range(b):
                cuts = np.concatenate([np.flatnonzero(p.data[i] == 0), [n]])
                for lo, hi in zip(cuts[:-1], cuts[1:]):
                    new[i, lo:hi] = np.sort(unsorted[i, lo:hi])
            p = Probe(p.name, p.location, p.type_, new)
        inputs.append(p)
    return Dataset(inputs, batch.outputs, batch.lengths)


def _to_tensors(probes: Sequence[Probe], device: str) -> dict[str, torch.Tensor]:
    out = {}
    for p in probes:
        if p.type_ in (POINTER, SHOULD_BE_PERMUTATION):
            out[p.name] = torch.as_tensor(p.data, device=device).long()
        else:
            out[p.name] = torch.as_tensor(p.data, dtype=torch.float32, device=device)
    return out


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

def _pointer_like(t: str) -> bool:
    return t in (POINTER, SHOULD_BE_PERMUTATION)


class MPNNProcessor(nn.Module):
    """``clrs._src.processors.MPNN`` (PGN over the fully connected graph, max aggregation, LN).

    Its three ReLUs (before the message MLP, inside it, after the update) are each a fresh module
    from ``make_activation``.
    """

    def __init__(self, hidden: int, make_activation: ActivationFactory):
        super().__init__()
        self.m_1 = nn.Linear(2 * hidden, hidden)
        self.m_2 = nn.Linear(2 * hidden, hidden)
        self.m_e = nn.Linear(hidden, hidden)
        self.m_g = nn.Linear(hidden, hidden)
        self.msg_1 = nn.Linear(hidden, hidden)
        self.msg_2 = nn.Linear(hidden, hidden)
        self.o_1 = nn.Linear(2 * hidden, hidden)
        self.o_2 = nn.Linear(hidden, hidden)
        self.ln = nn.LayerNorm(hidden)
        # Created last, so that the linear layers' initial weights do not depend on the activation.
        self.act_in = make_activation()
        self.act_mid = make_activation()
        self.act_out = make_activation()

    def constant_messages(self, edge_fts: torch.Tensor, graph_fts: torch.Tensor) -> torch.Tensor:
        """``We e_ij + Wg g``: the part of the messages that does not change between steps."""
        return self.m_e(edge_fts) + self.m_g(graph_fts)[:, None, None, :]

    def forward(self, node_fts: torch.Tensor, const_msgs: torch.Tensor,
                hidden: torch.Tensor) -> torch.Tensor:
        z = torch.cat([node_fts, hidden], dim=-1)  # [B, n, 2h]
        # msgs[b, i, j]: from sender i to receiver j, max-aggregated over i (as in clrs).
        msgs = self.m_1(z)[:, :, None, :] + self.m_2(z)[:, None, :, :] + const_msgs
        msgs = self.msg_2(self.act_mid(self.msg_1(self.act_in(msgs))))
        msgs = msgs.max(dim=1).values  # aggregate over senders -> [B, n, h]
        return self.ln(self.act_out(self.o_1(z) + self.o_2(msgs)))


class _Encoder(nn.Module):
    def __init__(self, location: str, type_: str, hidden: int, nb_categories: int):
        super().__init__()
        if type_ == POINTER and location != NODE:
            raise ValueError(f"{location} pointer inputs are not supported")
        self.location, self.type_ = location, type_
        self.linear = nn.Linear(nb_categories if type_ == CATEGORICAL else 1, hidden)

    def forward(self, data: torch.Tensor, nb_nodes: int) -> torch.Tensor:
        if self.type_ == POINTER:
            data = F.one_hot(data, nb_nodes).float()  # a node pointer becomes an edge mask
        if self.type_ != CATEGORICAL:
            data = data[..., None]
        return self.linear(data)


class _Decoder(nn.Module):
    """``clrs._src.decoders`` for one output; ``forward`` returns logits/values."""

    def __init__(self, location: str, type_: str, hidden: int, nb_categories: int):
        super().__init__()
        self.location, self.type_ = location, type_
        h3 = 3 * hidden  # [node_fts, hidden_prev, hidden]
        k = nb_categories if type_ == CATEGORICAL else 1
        pointer = _pointer_like(type_)
        if location == NODE:
            self.layers = nn.ModuleList(
                [nn.Linear(h3, hidden), nn.Linear(h3, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)]
                if pointer else [nn.Linear(h3, k)])
        elif location == EDGE:
            self.layers = nn.ModuleList(
                [nn.Linear(h3, hidden), nn.Linear(h3, hidden), nn.Linear(hidden, hidden),
                 nn.Linear(h3, hidden), nn.Linear(hidden, 1)]
                if pointer else [nn.Linear(h3, k), nn.Linear(h3, k), nn.Linear(hidden, k)])
        elif location == GRAPH:
            self.layers = nn.ModuleList(
                [nn.Linear(h3, 1), nn.Linear(hidden, 1), nn.Linear(h3, 1)]
                if pointer else [nn.Linear(h3, k), nn.Linear(hidden, k)])
        else:
            raise ValueError(f"invalid location {location!r}")

    def forward(self, h_t: torch.Tensor, edge_fts: torch.Tensor, graph_fts: torch.Tensor) -> torch.Tensor:
        d = self.layers
        if self.location == NODE:
            if not _pointer_like(self.type_):
                out = d[0](h_t)
                return out if self.type_ == CATEGORICAL else out.squeeze(-1)
            p_1, p_2, p_3 = d[0](h_t), d[1](h_t), d[2](edge_fts)
            p_e = p_2[:, :, None, :] + p_3  # [B, n, n, h]: p_2[i] + e[i, j]
            # logits[b, i, j] (node i points at node j) = w . max(p_1[i], p_2[j] + e[j, i]).
            p_m = torch.maximum(p_1[:, :, None, :], p_e.transpose(1, 2))
            return d[3](p_m).squeeze(-1)
        if self.location == EDGE:
            pred = d[0](h_t)[:, :, None, :] + d[1](h_t)[:, None, :, :] + d[2](edge_fts)
            if not _pointer_like(self.type_):
                return pred if self.type_ == CATEGORICAL else pred.squeeze(-1)
            pred_2 = d[3](h_t)
            p_m = torch.maximum(pred[:, :, :, None, :], pred_2[:, None, None, :, :])
            return d[4](p_m).squeeze(-1)  # [B, n, n, n]
        pred = d[0](h_t.max(dim=1).values) + d[1](graph_fts)  # GRAPH
        if not _pointer_like(self.type_):
            return pred if self.type_ == CATEGORICAL else pred.squeeze(-1)
        return pred + d[2](h_t).squeeze(-1)  # [B, n]


class CLRSNet(nn.Module):
    """Encode-process-decode for one algorithm, without hints (see the module docstring).

    ``spec`` lists ``(name, location, type, nb_categories)`` for the inputs and for the outputs.
    ``forward`` returns the raw predictions (logits/values) of every output.
    """

    def __init__(self, inputs: Sequence[tuple[str, str, str, int]], outputs: Sequence[tuple[str, str, str, int]],
                 hidden: int, make_activation: ActivationFactory, msg_passing_steps: int = 1):
        super().__init__()
        self.hidden = hidden
        self.msg_passing_steps = msg_passing_steps
        self.encoders = nn.ModuleDict({name: _Encoder(loc, t, hidden, k) for name, loc, t, k in inputs})
        self.input_spec = {name: (loc, t) for name, loc, t, _ in inputs}
        self.decoders = nn.ModuleDict({name: _Decoder(loc, t, hidden, k) for name, loc, t, k in outputs})
        self.processor = MPNNProcessor(hidden, make_activation)

    def encode(self, inputs: dict[str, torch.Tensor], nb_nodes: int):
        any_input = next(iter(inputs.values()))
        b, h, dev = any_input.shape[0], self.hidden, any_input.device
        node_fts = torch.zeros(b, nb_nodes, h, device=dev)
        edge_fts = torch.zeros(b, nb_nodes, nb_nodes, h, device=dev)
        graph_fts = torch.zeros(b, h, device=dev)
        for name, enc in self.encoders.items():
            loc, t = self.input_spec[name]
            encoding = enc(inputs[name], nb_nodes)
            if (loc == NODE and t == POINTER) or loc == EDGE:
                edge_fts = edge_fts + encoding
            elif loc == NODE:
                node_fts = node_fts + encoding
            else:
                graph_fts = graph_fts + encoding
        return node_fts, edge_fts, graph_fts

    def forward(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor, nb_nodes: int) -> dict[str, torch.Tensor]:
        node_fts, edge_fts, graph_fts = self.encode(inputs, nb_nodes)
        const_msgs = self.processor.constant_messages(edge_fts, graph_fts)
        # One processor application per algorithm step: clrs unrolls max(T - 1, 1) times and keeps
        # each sample's state from its own last step; here a sample whose trajectory has ended
        # simply leaves the batch (the same result, without computing steps that are thrown away).
        steps = torch.clamp(lengths - 1, min=1)
        hidden = prev = torch.zeros_like(node_fts)
        for t in range(int(steps.max())):
            idx = torch.nonzero(steps > t).squeeze(1)
            whole = len(idx) == len(steps)
            nxt = hidden if whole else hidden[idx]
            for _ in range(self.msg_passing_steps):
                nxt = self.processor(node_fts if whole else node_fts[idx],
                                     const_msgs if whole else const_msgs[idx], nxt)
            if whole:
                prev, hidden = hidden, nxt
            else:
                prev = prev.index_copy(0, idx, hidden[idx])
                hidden = hidden.index_copy(0, idx, nxt)
        h_t = torch.cat([node_fts, prev, hidden], dim=-1)
        return {name: dec(h_t, edge_fts, graph_fts) for name, dec in self.decoders.items()}


def output_loss(type_: str, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``clrs._src.losses.output_loss``."""
    if type_ == SCALAR:
        return F.mse_loss(pred, truth)
    if type_ == MASK:
        keep = (truth != MASKED).float()
        loss = F.binary_cross_entropy_with_logits(pred, truth.clamp(min=0), reduction="none")
        return (loss * keep).sum() / keep.sum().clamp(min=1)
    if type_ in (MASK_ONE, CATEGORICAL):
        masked_truth = truth * (truth != MASKED).float()
        return -(masked_truth * F.log_softmax(pred, dim=-1)).sum() / (truth == 1).sum().clamp(min=1)
    if _pointer_like(type_):
        return F.cross_entropy(pred.flatten(0, -2), truth.flatten())
    raise ValueError(f"unsupported output type {type_!r}")


def hard_prediction(type_: str, pred: torch.Tensor) -> np.ndarray:
    """``decoders.postprocess(hard=True)``: indices, 0/1 masks, one-hot, values."""
    if _pointer_like(type_):
        return pred.argmax(-1).cpu().numpy()
    if type_ == MASK:
        return (pred > 0).float().cpu().numpy()
    if type_ in (MASK_ONE, CATEGORICAL):
        return F.one_hot(pred.argmax(-1), pred.shape[-1]).float().cpu().numpy()
    return pred.detach().cpu().numpy()


def _spec_rows(probes: Sequence[Probe]) -> list[tuple[str, str, str, int]]:
    return [(p.name, p.location, p.type_, int(p.data.shape[-1]) if p.type_ == CATEGORICAL else 1)
            for p in probes]


def build_model(data: Dataset, hidden: int, make_activation: ActivationFactory,
                msg_passing_steps: int = 1) -> CLRSNet:
    return CLRSNet(_spec_rows(data.inputs), _spec_rows(data.outputs), hidden, make_activation,
                   msg_passing_steps)


@torch.no_grad()
def evaluate_model(model: CLRSNet, data: Dataset, batch_size: int, device: str) -> dict[str, float]:
    """Per-output scores and ``score`` of ``model`` on all of ``data`` (hard predictions)."""
    model.eval()
    preds: dict[str, list[np.ndarray]] = {p.name: [] for p in data.outputs}
    types_ = {p.name: p.type_ for p in data.outputs}
    for lo in range(0, data.size, batch_size):
        batch = data.take(np.arange(lo, min(lo + batch_size, data.size)))
        out = model(_to_tensors(batch.inputs, device), torch.as_tensor(batch.lengths, device=device),
                    batch.nb_nodes)
        for name, value in out.items():
            preds[name].append(hard_prediction(types_[name], value))
    model.train()
    return evaluate_outputs(data.outputs, {k: np.concatenate(v) for k, v in preds.items()})


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

@register_benchmark
class CLRS:
    """CLRS-30, no hints: one MPNN per algorithm trained on ``train_size`` and scored on ``test_size``.

    Options (configuration only; work happens in :meth:`run`):
        algorithms: CLRS-30 algorithm names (default :data:`DEFAULT_ALGORITHMS`).
        train_size, test_size: nodes per training / test instance (16 and 64, the paper's split).
        train_steps: optimiser steps per algorithm (300); batch_size: samples per step (16).
        hidden: processor width (32); lr: Adam learning rate (3e-3; gradients clipped to norm 1, as
            in clrs).  The CLRS baselines use 128, 32 and 1e-3 for 10,000 steps; these defaults are
            sized for a CPU run of ~13 s (one thread) per activation and seed, the smallest
            setting measured that resolves a log-ratio difference of 0.1 in ~6 seeds.
        num_train_samples: the fixed training set per algorithm (clrs: 1000).
        num_test_samples: test instances per algorithm (clrs: 32), in each of the two test sets:
            OOD (``test_size`` nodes, the score) and ID (``train_size`` nodes, held out, in details).
        msg_passing_steps: processor applications per algorithm step (clrs: 1).
    """

    name: ClassVar[str] = "clrs"
    metric: ClassVar[str] = "score"

    def __init__(self, *, algorithms: Sequence[str] = DEFAULT_ALGORITHMS, train_size: int = 16,
                 test_size: int = 64, train_steps: int = 300, batch_size: int = 16, hidden: int = 32,
                 lr: float = 3e-3, num_train_samples: int = 1000, num_test_samples: int = 32,
                 msg_passing_steps: int = 1):
        if isinstance(algorithms, str):
            algorithms = (algorithms,)
        unknown = [a for a in algorithms if a not in CLRS30_ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"unknown CLRS algorithm(s) {unknown or list(algorithms)}; known: "
                             f"{', '.join(CLRS30_ALGORITHMS)}")
        self.algorithms = tuple(algorithms)
        self.train_size = train_size
        self.test_size = test_size
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.hidden = hidden
        self.lr = lr
        self.num_train_samples = num_train_samples
        self.num_test_samples = num_test_samples
        self.msg_passing_steps = msg_passing_steps

    def check_data(self, data_dir: Path) -> None:
        """The samplers are procedural: nothing to download, but dm-clrs must be importable."""
        import_clrs()

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path,
            device: str) -> BenchmarkScore:
        """Train one model per algorithm; ``score`` is the mean OOD (``test_size``) score.

        ``details`` holds per algorithm the OOD score (``per_algorithm``, per output in
        ``per_output``) and the in-distribution one (``id_per_algorithm``, ``id_per_output``;
        their mean is ``id_score``): a low OOD score means little unless the ID one is high.
        """
        per_algorithm: dict[str, float] = {}
        per_output: dict[str, dict[str, float]] = {}
        id_per_algorithm: dict[str, float] = {}
        id_per_output: dict[str, dict[str, float]] = {}
        final_loss: dict[str, float | None] = {}
        diverged_at: dict[str, int | None] = {}
        seconds: dict[str, float] = {}
        for algorithm in self.algorithms:
            start = time.perf_counter()
            scores, record = self.run_algorithm(algorithm, make_activation, seed, device)
            seconds[algorithm] = round(time.perf_counter() - start, 3)
            per_algorithm[algorithm] = scores.pop("score")
            per_output[algorithm] = scores
            id_scores = dict(record["id_scores"])
            id_per_algorithm[algorithm] = id_scores.pop("score")
            id_per_output[algorithm] = id_scores
            final_loss[algorithm] = record["final_loss"]
            diverged_at[algorithm] = record["diverged_at"]
        score = float(np.mean(list(per_algorithm.values())))
        return BenchmarkScore(score=score, metric=self.metric, details={
            "per_algorithm": per_algorithm, "per_output": per_output,
            "id_score": float(np.mean(list(id_per_algorithm.values()))),
            "id_per_algorithm": id_per_algorithm, "id_per_output": id_per_output,
            "final_train_loss": final_loss, "diverged_at_step": diverged_at, "seconds": seconds,
            "train_size": self.train_size, "test_size": self.test_size, "train_steps": self.train_steps,
            "batch_size": self.batch_size, "hidden": self.hidden,
            "num_test_samples": self.num_test_samples, "hints": False,
        })

    def datasets(self, algorithm: str, seed: int) -> tuple[Dataset, Dataset]:
        """The training set (``train_size`` nodes) and the OOD test set (``test_size``) for ``seed``."""
        _check_algorithm(algorithm)
        train = sample_dataset(algorithm, self.num_train_samples, self.train_size,
                               _derived_seed(seed, algorithm, "train"))
        test = sample_dataset(algorithm, self.num_test_samples, self.test_size,
                              _derived_seed(seed, algorithm, "test"))
        return train, test

    def id_test_set(self, algorithm: str, seed: int) -> Dataset:
        """The in-distribution test set: ``num_test_samples`` fresh instances of ``train_size``
        nodes, drawn from a seed of their own (not the training set's), so they are held out."""
        _check_algorithm(algorithm)
        return sample_dataset(algorithm, self.num_test_samples, self.train_size,
                              _derived_seed(seed, algorithm, "id-test"))

    def run_algorithm(self, algorithm: str, make_activation: ActivationFactory, seed: int,
                      device: str = "cpu", train_steps: int | None = None, score_at: Sequence[int] = (),
                      ) -> tuple[dict[str, float], dict[str, Any]]:
        """Train one model on ``algorithm`` and score it on the OOD and the ID test sets.

        Returns the OOD scores (per output and ``score``) and the record: ``id_scores`` (the same
        on :meth:`id_test_set`), ``final_loss`` (the last 20 losses' mean), ``diverged_at`` (the
        step whose loss was non-finite, or None), and ``seconds`` spent on ``data`` (sampling),
        ``train`` and ``evaluate`` (both test sets).

        ``score_at``: step counts below the run's at which the model is scored too, in
        ``record["scored_at"][k]`` (``score``, ``id_score``, ``train_seconds`` up to step k,
        ``evaluate_seconds``).  Nothing in training depends on the number of steps (no schedule;
        batches come from one RNG stream), so that is exactly what a k-step run would score: one
        long run measures several ``train_steps`` settings (``benchmarks/bench_clrs_power.py``).
        """
        if any(k < 1 for k in score_at):
            raise ValueError(f"score_at: step counts must be at least 1, got {sorted(score_at)}")
        start = time.perf_counter()
        train, test = self.datasets(algorithm, seed)
        id_test = self.id_test_set(algorithm, seed)
        data_seconds = time.perf_counter() - start
        torch.manual_seed(_derived_seed(seed, algorithm, "model"))
        model = build_model(train, self.hidden, make_activation, self.msg_passing_steps).to(device)
        steps = self.train_steps if train_steps is None else train_steps
        scored_at: dict[int, dict[str, float]] = {}
        clock = {"train": 0.0, "since": time.perf_counter()}  # training time, evaluations left out

        def score_now() -> tuple[dict[str, float], dict[str, float], float]:
            begin = time.perf_counter()
            ood, in_dist = (evaluate_model(model, test, self.batch_size, device),
                            evaluate_model(model, id_test, self.batch_size, device))
            return ood, in_dist, time.perf_counter() - begin

        def on_step(done: int) -> None:
            if done in score_at and done < steps:
                clock["train"] += time.perf_counter() - clock["since"]
                ood, in_dist, evaluate_seconds = score_now()
                scored_at[done] = {"score": ood["score"], "id_score": in_dist["score"],
                                   "train_seconds": clock["train"], "evaluate_seconds": evaluate_seconds}
                clock["since"] = time.perf_counter()

        final_loss, diverged_at = train_model(model, train, steps, self.batch_size, self.lr, device,
                                              np.random.RandomState(_derived_seed(seed, algorithm, "batches")),
                                              on_step=on_step if score_at else None)
        clock["train"] += time.perf_counter() - clock["since"]
        ood, in_dist, evaluate_seconds = score_now()
        for k in score_at:  # not reached: training stopped at a non-finite loss, as a k-step run would
            if k < steps and k not in scored_at:
                scored_at[k] = {"score": ood["score"], "id_score": in_dist["score"],
                                "train_seconds": clock["train"], "evaluate_seconds": evaluate_seconds}
        return ood, {"id_scores": in_dist, "final_loss": final_loss, "diverged_at": diverged_at,
                     "seconds": {"data": data_seconds, "train": clock["train"], "evaluate": evaluate_seconds},
                     "scored_at": scored_at}


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in CLRS30_ALGORITHMS:
        raise ValueError(f"unknown CLRS algorithm {algorithm!r}; known: {', '.join(CLRS30_ALGORITHMS)}")


def train_model(model: CLRSNet, train: Dataset, steps: int, batch_size: int, lr: float, device: str,
                rng: np.random.RandomState, on_step: Callable[[int], None] | None = None,
                ) -> tuple[float | None, int | None]:
    """Adam on random batches of ``train`` with randomised ``pos``; ``on_step(k)`` after the k-th update.

    Returns the mean of the last 20 losses (None if there was none) and the step at which the loss
    became non-finite (None if it never did): training stops there, before the update, so the
    model keeps its last finite weights and is scored as it is.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    types_ = {p.name: p.type_ for p in train.outputs}
    recent: list[float] = []
    model.train()
    for step in range(steps):
        batch = randomize_pos(train.take(rng.randint(0, train.size, size=batch_size)), rng)
        preds = model(_to_tensors(batch.inputs, device), torch.as_tensor(batch.lengths, device=device),
                      batch.nb_nodes)
        truths = _to_tensors(batch.outputs, device)
        loss = sum(output_loss(types_[name], preds[name], truths[name]) for name in preds)
        value = float(loss.detach())
        if not math.isfinite(value):
            return (float(np.mean(recent)) if recent else None), step
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        recent = (recent + [value])[-20:]
        if on_step is not None:
            on_step(step + 1)
    return (float(np.mean(recent)) if recent else None), None
