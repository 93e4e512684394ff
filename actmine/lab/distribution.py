"""The lab as a task distribution: pool specs, mixtures of pools, samples, and the three-way split.

A search must not fit a fixed list of tasks (docs/lab.md, "The split"). Here:

- `PoolSpec` names one pool (`pools.Pool`): a generator with parameters, how many learnable draws,
  the first index, and the training seeds. Plain data, so it lives in the run's config.
- `TaskDistribution` is several pools as one distribution: its tasks, the cached ReLU numbers of
  each, and `sample(rng, k)`: k distinct tasks stratified by pool (each pool's share of a sample is
  its `weight`'s share, by largest remainder; by default a pool weighs its size), so every sample
  covers every generator. A sample's mean then estimates the weighted mixture of the pools.
- `Split` holds the three sides: the search distribution (selection pressure), the validation
  distribution (picks the winner and the top list) and the test distributions (reported only).
  `check_split` refuses a split in which any (generator, parameters, index) of the validation or
  test side could be drawn by the search: pools of one generator with the same parameters must
  cover disjoint index ranges (a pool looks at indexes start … start + max_draws − 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .ensemble import TrainingProtocol, TrainResult
from .fitness import Lab
from .generators import get_generator
from .pools import Pool, PoolError
from .tasks import Suite, Task

#: Where the default validation pools start: far beyond any index a search pool looks at.
VALIDATION_START = 1_000_000


@dataclass(frozen=True)
class PoolSpec:
    """One pool: `size` learnable draws of `generator(**params)` from index `start`, trained with `seeds`;
    `weight` is its share of a sample (relative to the other pools' weights; None: its size)."""

    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    size: int = 100
    start: int = 0
    seeds: tuple[int, ...] = (0,)
    weight: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "pool") -> "PoolSpec":
        if not isinstance(data, Mapping) or "generator" not in data:
            raise PoolError(
                f"{where}: a pool is a mapping with at least 'generator' "
                f"(and optionally params, size, start, seeds, weight), got {data!r}"
            )
        unknown = sorted(set(data) - {"generator", "params", "size", "start", "seeds", "weight"})
        if unknown:
            raise PoolError(
                f"{where}: unknown pool field {unknown[0]!r}; known: generator, params, size, start, seeds, weight"
            )
        params, seeds = data.get("params") or {}, data.get("seeds", (0,))
        if not isinstance(params, Mapping):
            raise PoolError(f"{where}: pool field 'params' must be a mapping of generator parameters, got {params!r}")
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple)):
            raise PoolError(f"{where}: pool field 'seeds' must be a non-empty list of integers, got {seeds!r}")
        spec = cls(
            str(data["generator"]),
            dict(params),
            data.get("size", 100),
            data.get("start", 0),
            tuple(seeds),
            data.get("weight"),
        )
        spec.check(where)
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = {
            "generator": self.generator,
            "params": dict(self.params),
            "size": self.size,
            "start": self.start,
            "seeds": list(self.seeds),
        }
        return data if self.weight is None else {**data, "weight": self.weight}

    def check(self, where: str = "pool") -> None:
        """Field types and ranges, and the generator's own parameter checks (no training)."""
        for name, value, minimum in (("size", self.size, 1), ("start", self.start, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise PoolError(f"{where}: pool field {name!r} must be an integer >= {minimum}, got {value!r}")
        if self.weight is not None and (
            isinstance(self.weight, bool)
            or not isinstance(self.weight, (int, float))
            or not math.isfinite(self.weight)
            or self.weight <= 0
        ):
            raise PoolError(
                f"{where}: pool field 'weight' must be a positive number (its share of a sample), got {self.weight!r}"
            )
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise PoolError(
                f"{where}: pool field 'seeds' must be a non-empty list of integers, got {list(self.seeds)!r}"
            )
        try:
            get_generator(self.generator, **dict(self.params))
        except ValueError as exc:
            raise PoolError(f"{where}: {exc}") from None

    def identity(self) -> tuple[str, str]:
        """(generator, canonical parameters): two specs with the same identity draw the same tasks."""
        generator = get_generator(self.generator, **dict(self.params))
        return generator.name, json.dumps(generator.params(), sort_keys=True)

    def index_range(self) -> range:
        """Every index the pool may look at while it fills itself (its draw budget, `Pool.max_draws`)."""
        return range(self.start, self.start + 20 * self.size + 100)

    def build(
        self, protocol: TrainingProtocol, cache_dir: str | Path | None = None, progress: bool | None = None
    ) -> Pool:
        return Pool(
            self.generator,
            dict(self.params),
            size=self.size,
            start=self.start,
            seeds=self.seeds,
            protocol=protocol,
            cache_dir=cache_dir,
            progress=progress,
        )


class TaskDistribution:
    """Several pools (with the same seeds and protocol) as one distribution of tasks."""

    def __init__(self, name: str, pools: Sequence[Pool], weights: Sequence[float | None] | None = None):
        if not pools:
            raise PoolError(f"distribution {name!r} has no pools")
        weights = list(weights) if weights is not None else [None] * len(pools)
        if len(weights) != len(pools) or any(w is not None and not (w > 0 and math.isfinite(w)) for w in weights):
            raise PoolError(f"distribution {name!r}: one positive weight (or None) per pool, got {weights!r}")
        seeds = {pool.seeds for pool in pools}
        if len(seeds) != 1:
            raise PoolError(f"distribution {name!r}: every pool must use the same seeds, got {sorted(seeds)}")
        self.name = name
        self.pools = tuple(pools)
        # a pool's share of a sample; None: its size (the mixture is the union of the tasks)
        self.weights = tuple(float(len(p.tasks)) if w is None else float(w) for p, w in zip(self.pools, weights))
        self.seeds = pools[0].seeds
        self.protocol = pools[0].protocol
        self._pool_of = {task.name: pool for pool in self.pools for task in pool.tasks}
        if len(self._pool_of) != sum(len(p.tasks) for p in self.pools):
            raise PoolError(
                f"distribution {name!r}: two pools hold the same task (the same generator, "
                "parameters and indexes twice)"
            )

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(task for pool in self.pools for task in pool.tasks)

    def shares(self, k: int) -> list[int]:
        """How many of k sampled tasks come from each pool: proportional to the pools' weights (by
        default their sizes) by largest remainder, no pool asked for more than it holds (the excess
        goes to the others by weight); when k ≥ the number of pools, a pool whose share rounds to 0
        still gets one (taken from the largest share), so every sample covers every generator."""
        sizes = np.array([len(p.tasks) for p in self.pools], dtype=int)
        weights = np.array(self.weights, dtype=float)
        k = min(k, int(sizes.sum()))
        counts = np.zeros(len(sizes), dtype=int)
        open_ = np.ones(len(sizes), dtype=bool)
        while int(counts.sum()) < k:
            left = k - int(counts.sum())
            exact = left * weights * open_ / (weights * open_).sum()
            full = open_ & (counts + exact >= sizes)
            if full.any():  # these pools give all their tasks; share the rest among the others
                counts[full], open_ = sizes[full], open_ & ~full
                continue
            add = np.floor(exact).astype(int)
            for i in np.argsort(-(exact - add), kind="stable")[: left - int(add.sum())]:
                add[i] += 1
            counts += add
        if k >= len(sizes):  # a pool too small for its own share still gets one task, from the largest share
            for i in np.flatnonzero(counts == 0):
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
        return [int(c) for c in counts]

    def sample(self, rng: np.random.Generator | int, k: int) -> list[Task]:
        """k distinct tasks (all of them when k ≥ the distribution's size), stratified by pool."""
        total = len(self._pool_of)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise PoolError(f"sample size must be a positive integer, got {k!r}")
        if k >= total:
            return list(self.tasks)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        chosen: list[Task] = []
        for pool, count in zip(self.pools, self.shares(k)):
            if count:
                chosen += pool.sample(rng, count)
        return chosen

    def reference_result(self, tasks: Sequence[Task], activation: str = "relu") -> TrainResult:
        """The cached errors of `activation` on `tasks` × seeds, in workload order (task-major)."""
        parts = [self._pool_of[t.name].reference_result([t], activation) for t in tasks]
        return TrainResult(
            torch.empty(0, 0), torch.cat([p.id_error for p in parts]), torch.cat([p.ood_error for p in parts]), []
        )

    def control_offsets(self, activation: str = "gelu", **lab_options: Any) -> dict[str, float]:
        """{task: the reference's fitness on it − its mean fitness over the task's pool}, from the
        pools' cached errors (nothing trains): a control variate for any estimate made on samples of
        this distribution. A sample is stratified by pool, so each offset has mean 0 over the draws of
        its pool, and a program's task score minus β times the offset keeps its expectation while
        losing the spread the reference's scores explain (docs/lab.md, "GELU as a control variate")."""
        lab = self.lab(**lab_options)
        _, scores = lab.score(self.reference_result(self.tasks, activation))
        fitness = {s.name: -s.log_ratio for s in scores}
        offsets: dict[str, float] = {}
        for pool in self.pools:
            pool_mean = float(np.mean([fitness[t.name] for t in pool.tasks]))
            offsets.update({t.name: fitness[t.name] - pool_mean for t in pool.tasks})
        return offsets

    def lab(self, tasks: Sequence[Task] | None = None, name: str | None = None, **lab_options: Any) -> Lab:
        """A Lab over these tasks (default: all) scored against the cached ReLU numbers."""
        tasks = list(tasks if tasks is not None else self.tasks)
        missing = [t.name for t in tasks if t.name not in self._pool_of]
        if missing:
            raise PoolError(f"distribution {self.name!r} has no task {missing[0]!r}")
        lab = Lab(Suite(name or self.name, tuple(tasks), self.seeds), protocol=self.protocol, **lab_options)
        lab.use_reference(self.reference_result(tasks))
        return lab

    def describe(self) -> list[dict[str, Any]]:
        """Per pool: generator, parameters, tasks, seeds and the learnable fraction of its build."""
        return [
            {
                "generator": p.generator.name,
                "params": p.params,
                "tasks": len(p.tasks),
                "start": p.start,
                "seeds": list(p.seeds),
                "learnable": round(p.learnable_fraction, 3),
            }
            for p in self.pools
        ]


@dataclass(frozen=True)
class SplitSpec:
    """The three sides of a search's tasks, as pool specs (see the module docstring)."""

    search: tuple[PoolSpec, ...]
    validation: tuple[PoolSpec, ...]
    test: tuple[tuple[str, tuple[PoolSpec, ...]], ...] = ()  # (suite name, its pools)


def split_spec_from(
    search: Sequence[Mapping],
    validation: Sequence[Mapping],
    test: Mapping[str, Sequence[Mapping]],
    where: str = "tasks",
) -> SplitSpec:
    """A split from config data (lists of pool mappings); validation defaults to the search
    generators from `VALIDATION_START`, a third of their size each (at least 10), seeds 0 and 1."""
    search_specs = tuple(PoolSpec.from_dict(p, f"{where}.search") for p in search)
    if validation:
        validation_specs = tuple(PoolSpec.from_dict(p, f"{where}.validation") for p in validation)
    else:
        validation_specs = tuple(
            PoolSpec(s.generator, dict(s.params), max(10, s.size // 3), VALIDATION_START, (0, 1)) for s in search_specs
        )
    test_specs = tuple(
        (name, tuple(PoolSpec.from_dict(p, f"{where}.test.{name}") for p in pools)) for name, pools in test.items()
    )
    return SplitSpec(search_specs, validation_specs, test_specs)


def check_split(split: SplitSpec) -> None:
    """Refuse a split in which two sides could share a draw: a validation or test pool and a search
    pool, or a test pool and a validation pool (test tasks must never help choose), of the same
    generator and parameters with overlapping index ranges. Also refuses an empty search side."""
    if not split.search:
        raise PoolError("the search side has no pools: name at least one in tasks.search")
    sides = [("search", spec) for spec in split.search] + [("validation", spec) for spec in split.validation]
    sides += [(f"test suite {name!r}", spec) for name, specs in split.test for spec in specs]
    for i, (side, spec) in enumerate(sides):
        for earlier_side, earlier in sides[:i]:
            if earlier_side == side or earlier_side.startswith("test") and side.startswith("test"):
                continue  # pools of one side (or two test suites) may share draws: nothing chooses on them
            if spec.identity() != earlier.identity():
                continue
            mine, used = spec.index_range(), earlier.index_range()
            if mine.start < used.stop and used.start < mine.stop:
                raise PoolError(
                    f"the {side} pool {spec.generator} (start {spec.start}, size {spec.size}) may draw indexes "
                    f"{mine.start}..{mine.stop - 1}, which overlap the {earlier_side} pool's "
                    f"{used.start}..{used.stop - 1} of the same generator and parameters: start it at "
                    f"{used.stop} or later (validation pools default to start {VALIDATION_START})"
                )


@dataclass
class Split:
    """The built split: the search and validation distributions and the test distributions by name."""

    search: TaskDistribution
    validation: TaskDistribution
    test: dict[str, TaskDistribution]

    @classmethod
    def build(
        cls,
        spec: SplitSpec,
        protocol: TrainingProtocol,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> "Split":
        check_split(spec)

        def distribution(name: str, specs: Sequence[PoolSpec]) -> TaskDistribution:
            return TaskDistribution(
                name, [s.build(protocol, cache_dir, progress) for s in specs], [s.weight for s in specs]
            )

        split = cls(
            distribution("search", spec.search),
            distribution("validation", spec.validation),
            {name: distribution(name, specs) for name, specs in spec.test},
        )
        split.check_content()
        return split

    def check_content(self) -> None:
        """No validation or test task computes the same target on the same boxes as a search task,
        and no test task as a validation task, whatever its name (two generators' parameters may
        select the same Feynman equation)."""

        def key(task: Task) -> tuple:
            return task.family, task.description, tuple(task.id_box), tuple(task.ood_box)

        chosen_on = {key(t): ("search", t.name) for t in self.search.tasks}
        sides = [("validation", self.validation)] + [(f"test suite {n!r}", d) for n, d in self.test.items()]
        for side, distribution in sides:
            for task in distribution.tasks:
                if key(task) in chosen_on:
                    other, name = chosen_on[key(task)]
                    raise PoolError(
                        f"the {side} task {task.name!r} is the {other} task {name!r} (the same target "
                        "and boxes): change the pools' parameters so that the sides share no task"
                    )
            if side == "validation":
                chosen_on.update({key(t): ("validation", t.name) for t in distribution.tasks})

    def task_names(self) -> dict[str, set[str]]:
        """The task names of each side ("search", "validation", "test:<name>")."""
        names = {"search": {t.name for t in self.search.tasks}, "validation": {t.name for t in self.validation.tasks}}
        names.update({f"test:{n}": {t.name for t in d.tasks} for n, d in self.test.items()})
        return names
