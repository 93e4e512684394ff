"""Pools of drawn tasks: the learnability filter, and reference numbers cached once per draw.

A generator (`actmine.lab.generators`) is a distribution of tasks; a pool is a reproducible
sample of it that a search can draw from. Two things make a draw usable:

- **Learnability** (the calibration rule of docs/lab.md, applied per draw): an OOD score means
  nothing unless the network learned the ID data, so a draw is kept only if ReLU **and** GELU
  reach normalised ID error < `LEARNABLE_ID_ERROR` (0.05) on every seed under the pool's protocol.
- **Reference numbers**: scoring a candidate on a sample of pool tasks pairs it with ReLU on the
  same (task, seed, data, initial weights). ReLU's (and GELU's) ID and OOD errors per seed are
  computed once per draw and cached on disk in the lab's cache directory (`default_cache_dir()`),
  under a key built like `Lab.reference_key`: the protocol, the seeds, the torch version and a hash
  of the lab's code (here with the generator modules and this one), plus the generator's name and
  parameters; each index is an entry of that file. A later build of any pool over the same draws
  trains nothing.

`Pool(generator, params, size, start)` is the first `size` learnable draws at indexes start,
start + 1, …, in order: deterministic, so every process that builds it gets the same tasks.
Building trains the draws in chunks, each chunk's ReLU and GELU as one batched `train_ensemble`
call (all its tasks × seeds at once), with a progress bar on a terminal.

Reference numbers are those of the chunk's batched training. A candidate trained later on a
different batch of tasks (other widths, other companions) computes the same models up to float
rounding (the padded inputs are exact zeros), so the paired log-ratios of ReLU against its cached
self are 0 to ~1e-6, not bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic_files import write_cache_file
from .ensemble import TrainingProtocol, TrainResult, build_workload, train_ensemble
from .fitness import Lab, _lab_code_hash, default_cache_dir
from .generators import GeneratorError, TaskGenerator, get_generator
from .tasks import Suite, SuiteError, Task, generate

LEARNABLE_ID_ERROR = 0.05
#: The activations trained on every draw: ReLU is the search's reference, GELU the filter's second
#: witness (a draw only one smooth or one piecewise-linear network can fit is not kept).
REFERENCES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": torch.relu, "gelu": F.gelu}
POOL_CACHE_FORMAT = 1
DEFAULT_CHUNK = 64


class PoolError(ValueError):
    """A pool cannot be built as asked; the message says why and what to change."""


@dataclass(frozen=True)
class TaskReference:
    """The reference activations' normalised errors on one drawn task, per seed (the pool's seeds)."""

    name: str
    index: int
    seeds: tuple[int, ...]
    id_error: Mapping[str, tuple[float, ...]]  # activation → per-seed normalised ID error
    ood_error: Mapping[str, tuple[float, ...]]  # activation → per-seed normalised OOD error

    def worst_id_error(self) -> float:
        """The largest ID error of any reference activation on any seed (what the filter tests)."""
        return max(max(errors) for errors in self.id_error.values())


@dataclass
class Draw:
    """What the build learned about one index: kept, or why not."""

    index: int
    name: str | None
    status: str  # "kept", or a rejection reason (see `REJECTIONS`)
    message: str = ""
    reference: TaskReference | None = None


#: Why a draw is not in a pool.
REJECTIONS = {
    "draw_failed": "the generator found no valid target for this index (its own domain checks)",
    "data_failed": "the target is not finite or is constant on the points the lab draws",
    "non_finite": "a reference network's loss, parameters or output stopped being finite",
    "unlearnable": f"ReLU or GELU missed normalised ID error < {LEARNABLE_ID_ERROR} on some seed",
}


def is_learnable(reference: TaskReference, threshold: float = LEARNABLE_ID_ERROR) -> bool:
    """The calibration rule per draw: every reference activation, every seed, ID error < threshold."""
    return all(math.isfinite(e) and e < threshold for errors in reference.id_error.values() for e in errors)


def _pool_code_hash(generator: TaskGenerator) -> str:
    """The lab's code hash plus the generator's module and this one: a change to how tasks are drawn
    or filtered must not be answered from numbers cached by the previous code."""
    digest = hashlib.sha256(_lab_code_hash().encode())
    modules = {
        Path(__file__),
        Path(__file__).with_name("generators.py"),
        Path(sys.modules[type(generator).__module__].__file__ or __file__),
    }
    for path in sorted(modules):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def measure(
    tasks: Sequence[Task],
    seeds: Sequence[int],
    protocol: TrainingProtocol,
    threshold: float = LEARNABLE_ID_ERROR,
    indexes: Sequence[int] | None = None,
) -> list[Draw]:
    """The learnability filter on a batch of tasks: ReLU and GELU trained once each on all
    tasks × seeds (one `train_ensemble` call per activation), then each task kept or rejected."""
    indexes = list(indexes) if indexes is not None else list(range(len(tasks)))
    draws: dict[int, Draw] = {}
    trainable: list[tuple[int, Task]] = []
    for index, task in zip(indexes, tasks):
        try:  # `generate` is cached: build_workload below reuses these points
            for seed in seeds:
                generate(task, seed, protocol.n_train, protocol.n_eval)
        except SuiteError as exc:
            draws[index] = Draw(index, task.name, "data_failed", str(exc))
            continue
        trainable.append((index, task))
    if trainable:
        workload = build_workload(Suite("pool-chunk", tuple(t for _, t in trainable), tuple(seeds)), protocol)
        results = {name: train_ensemble(fn, workload) for name, fn in REFERENCES.items()}
        n = len(seeds)
        for position, (index, task) in enumerate(trainable):
            rows = slice(position * n, (position + 1) * n)  # build_workload orders models task-major
            reference = TaskReference(
                task.name,
                index,
                tuple(seeds),
                id_error={a: tuple(float(e) for e in r.id_error[rows]) for a, r in results.items()},
                ood_error={a: tuple(float(e) for e in r.ood_error[rows]) for a, r in results.items()},
            )
            diverged = [a for a, r in results.items() if any(m in range(rows.start, rows.stop) for m in r.non_finite)]
            if diverged:
                draws[index] = Draw(index, task.name, "non_finite", f"{', '.join(diverged)} diverged", reference)
            elif not is_learnable(reference, threshold):
                draws[index] = Draw(
                    index,
                    task.name,
                    "unlearnable",
                    f"worst ID error {reference.worst_id_error():.3g} ≥ {threshold}",
                    reference,
                )
            else:
                draws[index] = Draw(index, task.name, "kept", "", reference)
    return [draws[i] for i in indexes]


class Pool:
    """The first `size` learnable draws of a generator from index `start` on, with their cached
    ReLU and GELU reference numbers (see the module docstring).

    generator: a registry name (with `params`) or a generator object; seeds: the training seeds
    every task is run with (the filter requires every one to be learned, and references are per
    seed); protocol: the lab's protocol (defaults to `TrainingProtocol()`); max_draws: how many indexes to
    try before giving up (default 20·size + 100); chunk_size: draws trained per batched call;
    progress: a progress bar on stderr (default: when stderr is a terminal).
    """

    def __init__(
        self,
        generator: str | TaskGenerator,
        params: Mapping[str, Any] | None = None,
        size: int = 100,
        start: int = 0,
        *,
        seeds: Sequence[int] = (0, 1, 2),
        protocol: TrainingProtocol | None = None,
        cache_dir: str | Path | None = None,
        threshold: float = LEARNABLE_ID_ERROR,
        chunk_size: int = DEFAULT_CHUNK,
        max_draws: int | None = None,
        progress: bool | None = None,
    ):
        if isinstance(generator, str):
            generator = get_generator(generator, **dict(params or {}))
        elif params:
            raise PoolError("give either a generator name with params, or a generator object without params")
        for field_name, value, minimum in (("size", size, 1), ("start", start, 0), ("chunk_size", chunk_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise PoolError(f"pool field {field_name!r} must be an integer >= {minimum}, got {value!r}")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise PoolError(f"pool field 'seeds' must be a non-empty list of integers, got {seeds!r}")
        if not 0 < threshold <= 1:
            raise PoolError(f"pool field 'threshold' must be in (0, 1], got {threshold!r}")
        self.generator = generator
        self.params = generator.params()
        self.size, self.start, self.seeds = size, start, tuple(seeds)
        self.protocol = protocol or TrainingProtocol()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.threshold = threshold
        self.chunk_size = chunk_size
        self.max_draws = max_draws if max_draws is not None else 20 * size + 100
        self.trainings = 0  # batched chunks trained by this build (0: all from the cache)
        self.draws: list[Draw] = []  # every index the build looked at, in order
        self._references: dict[str, TaskReference] = {}
        self.tasks: tuple[Task, ...] = ()
        self._build(sys.stderr.isatty() if progress is None else progress)

    # -- cache ---------------------------------------------------------------------------------

    def cache_key(self) -> str:
        """A hash of everything that changes the reference numbers of a draw, except its index."""
        payload = {
            "format": POOL_CACHE_FORMAT,
            "references": sorted(REFERENCES),
            "generator": self.generator.name,
            "params": self.params,
            "seeds": list(self.seeds),
            "protocol": self.protocol.to_dict(),
            "torch": torch.__version__,
            "code": _pool_code_hash(self.generator),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / f"pool-{self.generator.name}-{self.cache_key()}.json"

    def _read_cache(self) -> dict[int, dict[str, Any]]:
        try:
            entries = json.loads(self.cache_path.read_text())["draws"]
            return {int(index): entry for index, entry in entries.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # missing or damaged: recomputed and overwritten

    def _write_cache(self, draws: Sequence[Draw]) -> None:
        """Merge the new entries into the file (another process may have added its own) atomically."""
        entries = {str(i): e for i, e in self._read_cache().items()}
        for draw in draws:
            entry: dict[str, Any] = {"name": draw.name, "status": draw.status, "message": draw.message}
            if draw.reference is not None:
                entry["id_error"] = {a: list(v) for a, v in draw.reference.id_error.items()}
                entry["ood_error"] = {a: list(v) for a, v in draw.reference.ood_error.items()}
            entries[str(draw.index)] = entry
        write_cache_file(  # a read-only or full cache: computed again next time
            self.cache_path,
            json.dumps(
                {
                    "key": self.cache_key(),
                    "generator": self.generator.name,
                    "params": self.params,
                    "seeds": list(self.seeds),
                    "draws": entries,
                }
            ),
        )

    def _from_cache(self, index: int, entry: Mapping[str, Any]) -> Draw | None:
        """A cached entry as a Draw; None when it does not match what this build expects."""
        try:
            reference = None
            if "id_error" in entry:
                reference = TaskReference(
                    str(entry["name"]),
                    index,
                    self.seeds,
                    {a: tuple(float(e) for e in entry["id_error"][a]) for a in REFERENCES},
                    {a: tuple(float(e) for e in entry["ood_error"][a]) for a in REFERENCES},
                )
                per_seed = (*reference.id_error.values(), *reference.ood_error.values())
                if any(len(v) != len(self.seeds) for v in per_seed):
                    return None
            status = str(entry["status"])
            if status in ("kept", "unlearnable") and reference is not None:  # the threshold is this pool's
                status = "kept" if is_learnable(reference, self.threshold) else "unlearnable"
            if status not in ("kept", *REJECTIONS) or (status == "kept" and reference is None):
                return None
            return Draw(index, entry.get("name"), status, str(entry.get("message", "")), reference)
        except (KeyError, TypeError, ValueError):
            return None

    # -- build ---------------------------------------------------------------------------------

    def _limit(self) -> int:
        """One past the last index to try: the draw budget, and the generator's length if finite."""
        limit = self.start + self.max_draws
        if hasattr(self.generator, "__len__"):
            limit = min(limit, len(self.generator))  # type: ignore[arg-type]
        return limit

    def _build(self, show_progress: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        cached = self._read_cache()
        kept: list[Task] = []
        index, limit = self.start, self._limit()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} kept"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            transient=True,
            disable=not show_progress,
        ) as progress:
            bar = progress.add_task(f"pool {self.generator.name}", total=self.size, status="")
            while len(kept) < self.size and index < limit:
                # a chunk: enough indexes to probably fill the pool, from the cache where possible
                want = min(self.chunk_size, limit - index)
                chunk = range(index, index + want)
                index += want
                draws, to_train, tasks = {}, [], {}
                for i in chunk:
                    entry = self._from_cache(i, cached[i]) if i in cached else None
                    if entry is not None:
                        draws[i] = entry
                        continue
                    try:
                        tasks[i] = self.generator.draw(i)
                    except GeneratorError as exc:
                        draws[i] = Draw(i, None, "draw_failed", str(exc))
                        continue
                    to_train.append(i)
                new = [d for d in draws.values() if d.index not in cached]
                if to_train:
                    progress.update(bar, description=f"pool {self.generator.name}: training {len(to_train)} draws")
                    new += measure([tasks[i] for i in to_train], self.seeds, self.protocol, self.threshold, to_train)
                    self.trainings += 1
                    draws.update({d.index: d for d in new})
                if new:
                    self._write_cache(new)
                for i in chunk:
                    draw = draws[i]
                    if len(kept) >= self.size:
                        break
                    self.draws.append(draw)
                    if draw.status == "kept":
                        task = tasks[i] if i in tasks else self.generator.draw(i)
                        kept.append(task)
                        self._references[task.name] = draw.reference
                looked = len(self.draws)
                progress.update(
                    bar,
                    completed=len(kept),
                    description=f"pool {self.generator.name}",
                    status=f"{looked} drawn, {len(kept) / max(1, looked):.0%} learnable",
                )
        if len(kept) < self.size:
            counts = self.rejections()
            rejected = ", ".join(f"{r}: {n}" for r, n in counts.items()) or "none rejected"
            raise PoolError(
                f"pool {self.generator.name} {self.params}: only {len(kept)} learnable draws in indexes "
                f"{self.start}..{index - 1} ({rejected}); "
                f"ask for fewer tasks, raise max_draws, or change the generator's parameters"
            )
        self.tasks = tuple(kept)

    # -- use -----------------------------------------------------------------------------------

    @property
    def indexes(self) -> tuple[int, ...]:
        """The generator indexes of the pool's tasks, in order."""
        return tuple(d.index for d in self.draws if d.status == "kept")

    def rejections(self) -> dict[str, int]:
        """How many draws the build dropped, per reason (`REJECTIONS`)."""
        counts: dict[str, int] = {}
        for draw in self.draws:
            if draw.status != "kept":
                counts[draw.status] = counts.get(draw.status, 0) + 1
        return counts

    @property
    def learnable_fraction(self) -> float:
        """Kept ÷ looked at (every draw the build looked at, including failed ones)."""
        return len(self.tasks) / len(self.draws) if self.draws else 0.0

    def reference(self, task: Task | str) -> TaskReference:
        """The cached reference numbers of a pool task (by task or name)."""
        name = task if isinstance(task, str) else task.name
        if name not in self._references:
            raise KeyError(f"task {name!r} is not in pool {self.generator.name} (size {self.size}, start {self.start})")
        return self._references[name]

    def sample(self, rng: np.random.Generator | int, k: int) -> list[Task]:
        """k distinct pool tasks, drawn with `rng` (a numpy Generator or a seed), in pool order."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.tasks):
            raise PoolError(f"sample size must be an integer in [1, {len(self.tasks)}] (the pool size), got {k!r}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        chosen = np.sort(rng.choice(len(self.tasks), size=k, replace=False))
        return [self.tasks[int(i)] for i in chosen]

    def suite(self, tasks: Sequence[Task] | None = None, name: str | None = None) -> Suite:
        """A suite of pool tasks (all of them by default) with the pool's seeds."""
        chosen = tuple(tasks if tasks is not None else self.tasks)
        return Suite(name or f"pool-{self.generator.name}", chosen, self.seeds)

    def reference_result(self, tasks: Sequence[Task], activation: str = "relu") -> TrainResult:
        """The cached errors of `activation` on `tasks` × seeds in workload order (task-major), as a
        TrainResult for `Lab.use_reference` (no losses: the cache keeps the final errors only)."""
        if activation not in REFERENCES:
            raise PoolError(f"no cached reference for {activation!r}; the pool caches {', '.join(REFERENCES)}")
        references = [self.reference(t) for t in tasks]
        id_error = torch.tensor([e for r in references for e in r.id_error[activation]])
        ood_error = torch.tensor([e for r in references for e in r.ood_error[activation]])
        return TrainResult(torch.empty(0, len(ood_error)), id_error, ood_error, [])

    def lab(self, tasks: Sequence[Task] | None = None, **lab_options: Any) -> Lab:
        """A Lab over pool tasks (default: all) scored against the cached ReLU numbers: no ReLU training."""
        tasks = list(tasks if tasks is not None else self.tasks)
        lab = Lab(self.suite(tasks), protocol=self.protocol, cache_dir=self.cache_dir, **lab_options)
        lab.use_reference(self.reference_result(tasks))
        return lab
