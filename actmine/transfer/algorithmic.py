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

This module holds the benchmark, the algorithm lists and the loading and sampling of dm-clrs; the
stand-ins it loads dm-clrs with are in ``clrs_stubs``, the in-memory data in ``clrs_data``, the
scores in ``clrs_scores`` and the network with its training in ``clrs_model`` (their public names
re-exported here).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import time
import types
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark
from .clrs_data import (
    CATEGORICAL as CATEGORICAL,
    EDGE as EDGE,
    GRAPH as GRAPH,
    MASK as MASK,
    MASK_ONE as MASK_ONE,
    MASKED as MASKED,
    NODE as NODE,
    POINTER as POINTER,
    SCALAR as SCALAR,
    SHOULD_BE_PERMUTATION as SHOULD_BE_PERMUTATION,
    Dataset as Dataset,
    Probe as Probe,
    _to_tensors as _to_tensors,
    randomize_pos as randomize_pos,
)
from .clrs_model import (
    CLRSNet as CLRSNet,
    MPNNProcessor as MPNNProcessor,
    _Decoder as _Decoder,
    _Encoder as _Encoder,
    build_model as build_model,
    evaluate_model as evaluate_model,
    hard_prediction as hard_prediction,
    output_loss as output_loss,
    train_model as train_model,
)
from .clrs_scores import (
    categorical_accuracy as categorical_accuracy,
    evaluate_outputs as evaluate_outputs,
    mask_f1 as mask_f1,
    pointer_accuracy as pointer_accuracy,
    scalar_mse as scalar_mse,
)
from .clrs_stubs import _stubs

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
    "activity_selector",
    "articulation_points",
    "bellman_ford",
    "bfs",
    "binary_search",
    "bridges",
    "bubble_sort",
    "dag_shortest_paths",
    "dfs",
    "dijkstra",
    "find_maximum_subarray_kadane",
    "floyd_warshall",
    "graham_scan",
    "heapsort",
    "insertion_sort",
    "jarvis_march",
    "kmp_matcher",
    "lcs_length",
    "matrix_chain_order",
    "minimum",
    "mst_kruskal",
    "mst_prim",
    "naive_string_matcher",
    "optimal_bst",
    "quickselect",
    "quicksort",
    "segments_intersect",
    "strongly_connected_components",
    "task_scheduling",
    "topological_sort",
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
_PRED_AS_INPUT = frozenset(
    {
        "binary_search",
        "minimum",
        "find_maximum_subarray",
        "find_maximum_subarray_kadane",
        "matrix_chain_order",
        "lcs_length",
        "optimal_bst",
        "activity_selector",
        "task_scheduling",
        "naive_string_matcher",
        "kmp_matcher",
        "jarvis_march",
    }
)


# --------------------------------------------------------------------------------------------
# Loading the samplers without TensorFlow / JAX
# --------------------------------------------------------------------------------------------

_CLRS: types.SimpleNamespace | None = None


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
    package, placeholder = _clrs_package(_installed_clrs_spec())
    specs, samplers, evaluation = _import_light_modules(placeholder)
    _CLRS = types.SimpleNamespace(
        build_sampler=samplers.build_sampler,
        SPECS=specs.SPECS,
        specs=specs,
        samplers=samplers,
        evaluation=evaluation,
        probing=importlib.import_module("clrs._src.probing"),
    )
    if placeholder:  # `import clrs` elsewhere gets the same light API rather than an empty package
        _publish_light_api(package, _CLRS)
    return _CLRS


def _installed_clrs_spec() -> importlib.machinery.ModuleSpec:
    """Where dm-clrs is installed, found without importing it; :class:`DatasetMissing` when it is not."""
    try:
        spec = importlib.util.find_spec("clrs")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing(
            "the CLRS benchmark needs the procedural samplers of the `dm-clrs` package, which is not "
            f"installed; install it without its TensorFlow/JAX dependencies: {INSTALL_COMMAND}"
        )
    return spec


def _clrs_package(spec: importlib.machinery.ModuleSpec) -> tuple[types.ModuleType, bool]:
    """Step 1 of :func:`import_clrs`: the ``clrs`` package already registered, else a bare one
    registered in its place (``clrs/__init__.py`` not run); and whether it is that placeholder."""
    package = sys.modules.get("clrs")
    placeholder = package is None or not hasattr(package, "__path__")
    if placeholder:
        package = types.ModuleType("clrs", "dm-clrs, loaded by actmine without clrs/__init__.py")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = importlib.machinery.ModuleSpec("clrs", None, is_package=True)
        package.__spec__.submodule_search_locations = package.__path__
        package.__file__ = spec.origin
        sys.modules["clrs"] = package
    return package, placeholder


def _import_light_modules(placeholder: bool) -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """Step 2 of :func:`import_clrs`: ``clrs._src.specs``, ``samplers`` and ``evaluation``, imported
    with the stand-ins of :func:`_stubs` in ``sys.modules`` only meanwhile (then whatever was there
    is put back). :class:`DatasetMissing` when a light dependency is missing."""
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
        raise DatasetMissing(f"could not load the CLRS samplers ({exc}); install them with: {INSTALL_COMMAND}") from exc
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return specs, samplers, evaluation


def _publish_light_api(package: types.ModuleType, clrs: types.SimpleNamespace) -> None:
    """Give the placeholder ``clrs`` package the samplers', specs' and evaluation's public names
    of the real ``clrs`` namespace."""
    for attr in (
        "build_sampler",
        "Sampler",
        "Feedback",
        "Features",
        "Trajectory",
        "CLRS30",
        "process_random_pos",
        "process_pred_as_input",
        "process_permutations",
    ):
        setattr(package, attr, getattr(clrs.samplers, attr))
    for attr in ("SPECS", "Spec", "Stage", "Location", "Type", "OutputClass", "CLRS_30_ALGS_SETTINGS"):
        setattr(package, attr, getattr(clrs.specs, attr))
    package.evaluate, package.evaluate_hints = clrs.evaluation.evaluate, clrs.evaluation.evaluate_hints
    package.DataPoint = clrs.probing.DataPoint


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def _derived_seed(seed: int, *keys: str) -> int:
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def sample_dataset(algorithm: str, num_samples: int, length: int, seed: int) -> Dataset:
    """``num_samples`` trajectories of ``algorithm`` on inputs of ``length`` nodes (CLRS samplers)."""
    clrs = import_clrs()
    sampler, _spec = clrs.build_sampler(algorithm, num_samples, length=length, seed=seed, track_max_steps=False)
    feedback = sampler.next()  # the whole pregenerated set
    inputs = [Probe(dp.name, dp.location, dp.type_, np.asarray(dp.data)) for dp in feedback.features.inputs]
    if algorithm in _PRED_AS_INPUT:  # samplers.process_pred_as_input: the constant pred_h hint
        for dp in feedback.features.hints:
            if dp.name == "pred_h":
                inputs.append(Probe("pred", dp.location, dp.type_, np.asarray(dp.data[0])))
    outputs = [Probe(dp.name, dp.location, dp.type_, np.asarray(dp.data)) for dp in feedback.outputs]
    return Dataset(inputs, outputs, np.asarray(feedback.features.lengths, dtype=np.int64))


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

    def __init__(
        self,
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        train_size: int = 16,
        test_size: int = 64,
        train_steps: int = 300,
        batch_size: int = 16,
        hidden: int = 32,
        lr: float = 3e-3,
        num_train_samples: int = 1000,
        num_test_samples: int = 32,
        msg_passing_steps: int = 1,
    ):
        if isinstance(algorithms, str):
            algorithms = (algorithms,)
        unknown = [a for a in algorithms if a not in CLRS30_ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(
                f"unknown CLRS algorithm(s) {unknown or list(algorithms)}; known: {', '.join(CLRS30_ALGORITHMS)}"
            )
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

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
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
        return BenchmarkScore(
            score=score,
            metric=self.metric,
            details={
                "per_algorithm": per_algorithm,
                "per_output": per_output,
                "id_score": float(np.mean(list(id_per_algorithm.values()))),
                "id_per_algorithm": id_per_algorithm,
                "id_per_output": id_per_output,
                "final_train_loss": final_loss,
                "diverged_at_step": diverged_at,
                "seconds": seconds,
                "train_size": self.train_size,
                "test_size": self.test_size,
                "train_steps": self.train_steps,
                "batch_size": self.batch_size,
                "hidden": self.hidden,
                "num_test_samples": self.num_test_samples,
                "hints": False,
            },
        )

    def datasets(self, algorithm: str, seed: int) -> tuple[Dataset, Dataset]:
        """The training set (``train_size`` nodes) and the OOD test set (``test_size``) for ``seed``."""
        _check_algorithm(algorithm)
        train = sample_dataset(
            algorithm, self.num_train_samples, self.train_size, _derived_seed(seed, algorithm, "train")
        )
        test = sample_dataset(algorithm, self.num_test_samples, self.test_size, _derived_seed(seed, algorithm, "test"))
        return train, test

    def id_test_set(self, algorithm: str, seed: int) -> Dataset:
        """The in-distribution test set: ``num_test_samples`` fresh instances of ``train_size``
        nodes, drawn from a seed of their own (not the training set's), so they are held out."""
        _check_algorithm(algorithm)
        return sample_dataset(
            algorithm, self.num_test_samples, self.train_size, _derived_seed(seed, algorithm, "id-test")
        )

    def run_algorithm(
        self,
        algorithm: str,
        make_activation: ActivationFactory,
        seed: int,
        device: str = "cpu",
        train_steps: int | None = None,
        score_at: Sequence[int] = (),
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

        def on_step(done: int) -> None:
            if done in score_at and done < steps:
                clock["train"] += time.perf_counter() - clock["since"]
                ood, in_dist, evaluate_seconds = self._score_model(model, test, id_test, device)
                scored_at[done] = _scored_at_entry(ood, in_dist, clock["train"], evaluate_seconds)
                clock["since"] = time.perf_counter()

        final_loss, diverged_at = train_model(
            model,
            train,
            steps,
            self.batch_size,
            self.lr,
            device,
            np.random.RandomState(_derived_seed(seed, algorithm, "batches")),
            on_step=on_step if score_at else None,
        )
        clock["train"] += time.perf_counter() - clock["since"]
        ood, in_dist, evaluate_seconds = self._score_model(model, test, id_test, device)
        for k in score_at:  # not reached: training stopped at a non-finite loss, as a k-step run would
            if k < steps and k not in scored_at:
                scored_at[k] = _scored_at_entry(ood, in_dist, clock["train"], evaluate_seconds)
        return ood, {
            "id_scores": in_dist,
            "final_loss": final_loss,
            "diverged_at": diverged_at,
            "seconds": {"data": data_seconds, "train": clock["train"], "evaluate": evaluate_seconds},
            "scored_at": scored_at,
        }

    def _score_model(
        self, model: CLRSNet, test: Dataset, id_test: Dataset, device: str
    ) -> tuple[dict[str, float], dict[str, float], float]:
        """``model``'s scores on the OOD and the ID test sets, and the seconds both took."""
        begin = time.perf_counter()
        ood, in_dist = (
            evaluate_model(model, test, self.batch_size, device),
            evaluate_model(model, id_test, self.batch_size, device),
        )
        return ood, in_dist, time.perf_counter() - begin


def _scored_at_entry(
    ood: dict[str, float], in_dist: dict[str, float], train_seconds: float, evaluate_seconds: float
) -> dict[str, float]:
    """One entry of ``record["scored_at"]`` of :meth:`CLRS.run_algorithm`."""
    return {
        "score": ood["score"],
        "id_score": in_dist["score"],
        "train_seconds": train_seconds,
        "evaluate_seconds": evaluate_seconds,
    }


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in CLRS30_ALGORITHMS:
        raise ValueError(f"unknown CLRS algorithm {algorithm!r}; known: {', '.join(CLRS30_ALGORITHMS)}")
