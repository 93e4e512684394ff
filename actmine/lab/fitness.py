"""The lab's score: how well MLPs that use a candidate extrapolate, relative to ReLU.

For each task and seed, the OOD error is the mean-squared error of the trained MLP on the OOD
split divided by the variance of the OOD targets. A candidate's `ood_log_ratio` is the mean over
tasks of ln(its OOD error ÷ ReLU's OOD error on the same task, seeds and initial weights), and
`fitness = −ood_log_ratio`: 0 is ReLU, +0.69 halves ReLU's error.

Per task, the log-ratio is the mean over seeds of the per-seed log-ratios (so the task's error is
the geometric mean over seeds), clipped to ±`log_ratio_clip` (default 3, a factor of ~20): one
task on which a candidate explodes (or shines) by orders of magnitude moves the mean by at most
clip ÷ number of tasks, and the rest of the suite still decides. Errors are floored at 1e-8 so that
a perfect fit cannot produce an infinite ratio. Non-finite anything is a failure, never a score.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Collection

import torch

from ..atomic_files import write_cache_file
from .ensemble import TrainingProtocol, TrainResult, Workload, build_workload, train_ensemble
from ..candidate.probes import MESSAGE_LIMIT, ProbeBudget, cap_message
from .tasks import Suite, get_suite

ERROR_FLOOR = 1e-8
REFERENCE = "relu"
CACHE_FORMAT = 1


@functools.lru_cache(maxsize=1)
def _lab_code_hash() -> str:
    """A hash of the lab's own source: a change to how tasks are drawn or models trained must not
    be answered from a reference cached by the previous code. Every module of the package counts
    (a fixed list once missed a module that tasks moved into); a change to one that does not touch
    ReLU's numbers only costs a recomputation."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where reference numbers are cached: $ACTMINE_CACHE_DIR, else ~/.cache/actmine."""
    return Path(os.environ.get("ACTMINE_CACHE_DIR") or Path.home() / ".cache" / "actmine")


@dataclass
class TaskScore:
    name: str
    family: str
    ood_error: float  # geometric mean over seeds of the normalised OOD error
    id_error: float  # geometric mean over seeds of the normalised held-out ID error
    log_ratio: float  # mean over seeds of ln(ood_error / ReLU's), clipped
    seed_log_ratios: tuple[float, ...] = ()  # per seed, unclipped (log_ratio = their mean, clipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "ood_error": self.ood_error,
            "id_error": self.id_error,
            "log_ratio": self.log_ratio,
            "seed_log_ratios": list(self.seed_log_ratios),
        }


@dataclass
class Evaluation:
    """One candidate's result; `to_dict()` is the `actmine evaluate --json` contract."""

    activation: str
    ok: bool
    error: dict[str, str] | None = None
    fitness: float | None = None
    ood_log_ratio: float | None = None
    tasks: list[TaskScore] = field(default_factory=list)
    probes: dict[str, Any] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stage: str = "policy"  # the last stage reached: policy, probes, screen, train, done
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent in each stage

    def to_dict(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "ok": self.ok,
            "error": self.error,
            "fitness": self.fitness,
            "ood_log_ratio": self.ood_log_ratio,
            "tasks": [t.to_dict() for t in self.tasks],
            "probes": self.probes,
            "workload": self.workload,
            "seconds": self.seconds,
            "stage": self.stage,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Evaluation":
        """Rebuild an evaluation from `to_dict()` output, checking every field's type: the data may
        come from a sandboxed worker that ran hostile code, so nothing is taken on trust."""

        def number(value: Any, allow_none: bool = True) -> float | None:
            if value is None and allow_none:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value!r}")
            return float(value)

        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            raise ValueError("not an evaluation record")
        error = data.get("error")
        if error is not None and not (
            isinstance(error, dict) and len(error) <= 8 and all(isinstance(v, str) for v in error.values())
        ):
            raise ValueError(f"malformed error field {cap_message(repr(error), 200)}")
        if error is not None:  # a worker's text is capped here too, whatever the worker did
            error = {cap_message(str(k), 64): cap_message(v, MESSAGE_LIMIT) for k, v in error.items()}
        tasks = [
            TaskScore(
                str(t["name"]),
                str(t["family"]),
                number(t["ood_error"], False),
                number(t["id_error"], False),
                number(t["log_ratio"], False),
                tuple(number(v, False) for v in (t.get("seed_log_ratios") or ())[:1000]),
            )
            for t in data.get("tasks", [])
        ]
        evaluation = cls(
            activation=cap_message(str(data.get("activation", "candidate")), 256),
            ok=data["ok"],
            error=error,
            fitness=number(data.get("fitness")),
            ood_log_ratio=number(data.get("ood_log_ratio")),
            tasks=tasks,
            probes=dict(data.get("probes") or {}),
            workload=dict(data.get("workload") or {}),
            seconds=number(data.get("seconds", 0.0), False),
            stage=cap_message(str(data.get("stage", "policy")), 64),
            timings={str(k): number(v, False) for k, v in (data.get("timings") or {}).items()},
        )
        if evaluation.ok and (evaluation.fitness is None or not tasks):
            raise ValueError("an evaluation marked ok must carry a fitness and task scores")
        return evaluation

    def fail(self, stage: str, code: str, message: str) -> "Evaluation":
        """Mark refused at `stage` with reason `code`; the message is capped at MESSAGE_LIMIT characters
        (it may quote a candidate's exception, which can be any size)."""
        self.ok, self.stage = False, stage
        self.error = {"code": code, "message": cap_message(message), "stage": stage}
        return self

    def by_family(self) -> dict[str, dict[str, float]]:
        """Per family: geometric-mean OOD and ID error and mean log-ratio over its tasks."""
        families: dict[str, list[TaskScore]] = {}
        for task in self.tasks:
            families.setdefault(task.family, []).append(task)
        return {
            family: {
                "ood_error": geometric_mean([t.ood_error for t in tasks]),
                "id_error": geometric_mean([t.id_error for t in tasks]),
                "log_ratio": sum(t.log_ratio for t in tasks) / len(tasks),
            }
            for family, tasks in sorted(families.items())
        }

    def family_log_ratios(self) -> dict[str, float]:
        """Per family: the mean log-ratio over its tasks (the part of `by_family` records keep)."""
        return {family: scores["log_ratio"] for family, scores in self.by_family().items()}


def _run_stage(evaluation: Evaluation, stage: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` as `evaluation`'s stage ``stage``; the candidate's failure (a probe's refusal or its own
    exception) fails the evaluation there and gives None."""
    from ..candidate import probes

    evaluation.stage = stage
    try:
        return fn()
    except probes.ProbeFailure as failure:
        evaluation.fail(stage, failure.code, str(failure))
    except Exception as exc:  # the candidate's own code raised (MemoryError included)
        evaluation.fail(stage, probes.exception_code(exc), f"{type(exc).__name__}: {exc}")
    return None


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(max(v, ERROR_FLOOR)) for v in values) / len(values))


class Lab:
    """A suite, a training protocol and the ReLU reference: evaluates activations.

    The constructor only stores configuration; the workload (all datasets, minibatches and initial
    weights) is built on first use and shared by every evaluation, and ReLU's numbers are computed
    once per configuration and cached on disk under `cache_dir`.
    """

    def __init__(
        self,
        suite: str | Suite = "lab",
        protocol: TrainingProtocol | None = None,
        seeds: int | None = None,
        cache_dir: str | Path | None = None,
        log_ratio_clip: float = 3.0,
        budget: ProbeBudget | None = None,
        screen_max_id_error: float | None = 0.5,
        max_source_chars: int = 20_000,
        fused: bool = True,
    ):
        self.suite = get_suite(suite)
        if seeds is not None:
            self.suite = self.suite.with_seeds(seeds)
        self.protocol = protocol or TrainingProtocol()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.log_ratio_clip = log_ratio_clip
        self.budget = budget or ProbeBudget()
        self.screen_max_id_error = screen_max_id_error  # None: no screening stage
        self.max_source_chars = max_source_chars
        self.fused = fused  # train elementwise candidates with a compiled kernel (actmine.candidate.fused)

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this lab elsewhere (a worker process), as plain data."""
        return {
            "suite": self.suite.to_dict(),
            "protocol": self.protocol.to_dict(),
            "log_ratio_clip": self.log_ratio_clip,
            "budget": self.budget.to_dict(),
            "screen_max_id_error": self.screen_max_id_error,
            "max_source_chars": self.max_source_chars,
            "fused": self.fused,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], cache_dir: str | Path | None = None) -> "Lab":
        return cls(
            Suite.from_dict(spec["suite"]),
            protocol=TrainingProtocol(**spec["protocol"]),
            cache_dir=cache_dir,
            log_ratio_clip=spec["log_ratio_clip"],
            budget=ProbeBudget(**spec["budget"]),
            screen_max_id_error=spec["screen_max_id_error"],
            max_source_chars=spec["max_source_chars"],
            fused=bool(spec.get("fused", True)),
        )

    def use_reference(self, reference: TrainResult) -> None:
        """Score against a reference computed elsewhere (a worker gets it from its trusted parent)."""
        expected = len(self.suite.tasks) * len(self.suite.seeds)
        if reference.ood_error.shape != (expected,):
            raise ValueError(f"reference has {tuple(reference.ood_error.shape)} errors, the workload {expected} models")
        self.__dict__["reference"] = reference

    @cached_property
    def screen_workload(self) -> Workload:
        """The cascade's cheap stage: the suite's first task, first seed (one MLP)."""
        return build_workload(
            Suite(self.suite.name + "-screen", self.suite.tasks[:1], self.suite.seeds[:1]), self.protocol
        )

    @cached_property
    def workload(self) -> Workload:
        return build_workload(self.suite, self.protocol)

    def training_shape(self) -> tuple[int, int, int]:
        """The shape of the tensors the activation gets in training: models × batch × hidden."""
        return (len(self.suite.tasks) * len(self.suite.seeds), self.protocol.batch_size, self.protocol.hidden)

    def workload_summary(self) -> dict[str, Any]:
        return {
            "models": len(self.suite.tasks) * len(self.suite.seeds),
            "steps": self.protocol.steps,
            "batch_size": self.protocol.batch_size,
            "hidden": self.protocol.hidden,
            "tasks": len(self.suite.tasks),
            "seeds": len(self.suite.seeds),
            "suite": self.suite.name,
        }

    def reference_key(self) -> str:
        """A hash of everything that changes ReLU's numbers."""
        payload = {
            "format": CACHE_FORMAT,
            "reference": REFERENCE,
            "suite": self.suite.to_dict(),
            "protocol": self.protocol.to_dict(),
            "torch": torch.__version__,
            "code": _lab_code_hash(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    @cached_property
    def reference(self) -> TrainResult:
        """ReLU's result on this workload, from the disk cache when it is there."""
        path = self.cache_dir / f"reference-{REFERENCE}-{self.reference_key()}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                return TrainResult(
                    torch.tensor(data["losses"]), torch.tensor(data["id_error"]), torch.tensor(data["ood_error"]), []
                )
            except (ValueError, KeyError):
                pass  # a damaged cache entry is recomputed and overwritten
        result = train_ensemble(torch.relu, self.workload)
        if result.non_finite:
            raise RuntimeError(f"ReLU diverged on {self._describe(result.non_finite)}: the protocol is unstable")
        write_cache_file(  # a read-only or full cache: computed again next time
            path,
            json.dumps(
                {
                    "losses": result.losses.tolist(),
                    "id_error": result.id_error.tolist(),
                    "ood_error": result.ood_error.tolist(),
                    "key": self.reference_key(),
                }
            ),
        )
        return result

    @staticmethod
    def _trainer(
        activation: Callable[[torch.Tensor], torch.Tensor],
        fused: Any,
        check: Any,
        evaluation: Evaluation,
        pointwise: bool,
    ) -> Callable[[Workload], TrainResult]:
        """train_ensemble for this candidate: with its fused kernel where that agrees with the
        candidate (`fused.agreement`; a disagreement seen in training retrains eagerly), else eagerly."""
        from ..candidate import fused as fusion

        if isinstance(fused, fusion.FusedActivation):
            problem = fusion.agreement(fused, activation)
            fused = fused if problem is None else f"eager: {problem}"
        evaluation.workload["kernel"] = "fused" if isinstance(fused, fusion.FusedActivation) else str(fused or "eager")

        def train(workload: Workload) -> TrainResult:
            if isinstance(fused, fusion.FusedActivation) and evaluation.workload["kernel"] == "fused":
                try:
                    return train_ensemble(fused, workload, check=fusion.fused_check(check, activation))
                except fusion.FusedMismatch as exc:
                    evaluation.workload["kernel"] = f"eager: {exc}"
            return train_ensemble(activation, workload, pointwise=pointwise, per_example=not pointwise, check=check)

        return train

    def _describe(self, models: list[int]) -> str:
        labels = [f"{self.workload.labels[m][0]} (seed {self.workload.labels[m][1]})" for m in models[:3]]
        more = f" and {len(models) - 3} more" if len(models) > 3 else ""
        return ", ".join(labels) + more

    def log_ratios(self, ood_error: torch.Tensor) -> torch.Tensor:
        """ln(OOD error ÷ ReLU's) per model (task-major, as `build_workload` orders them), unclipped."""
        return (
            ood_error.double().clamp_min(ERROR_FLOOR).log()
            - self.reference.ood_error.double().clamp_min(ERROR_FLOOR).log()
        )

    def score(self, result: TrainResult) -> tuple[float, list[TaskScore]]:
        """`ood_log_ratio` and per-task scores of a finished training against the ReLU reference."""
        seeds = len(self.suite.seeds)
        log_ratios = self.log_ratios(result.ood_error)
        scores = []
        for i, task in enumerate(self.suite.tasks):
            rows = slice(i * seeds, (i + 1) * seeds)  # build_workload orders models task-major
            ratio = float(log_ratios[rows].mean().clamp(-self.log_ratio_clip, self.log_ratio_clip))
            scores.append(
                TaskScore(
                    task.name,
                    task.family,
                    ood_error=float(result.ood_error[rows].double().clamp_min(ERROR_FLOOR).log().mean().exp()),
                    id_error=float(result.id_error[rows].double().clamp_min(ERROR_FLOOR).log().mean().exp()),
                    log_ratio=ratio,
                    seed_log_ratios=tuple(float(v) for v in log_ratios[rows]),
                )
            )
        return sum(s.log_ratio for s in scores) / len(scores), scores

    def evaluate_source(
        self, source: str, name: str = "candidate", skip_fingerprints: Collection[str] = ()
    ) -> Evaluation:
        """The whole cascade for program text: static policy, compile, then `evaluate`.

        Runs the candidate's code in this process: call it only inside a sandboxed worker
        (`actmine.candidate.sandbox`), never in the controller.
        """
        from ..candidate.source import CandidateError, compile_candidate

        started = time.perf_counter()
        try:
            function = compile_candidate(source, name, max_chars=self.max_source_chars)
        except CandidateError as exc:
            evaluation = Evaluation(activation=name, ok=False, workload=self.workload_summary())
            evaluation.fail("policy", exc.code, str(exc))
            evaluation.timings["policy"] = evaluation.seconds = round(time.perf_counter() - started, 4)
            return evaluation
        policy_seconds = time.perf_counter() - started
        evaluation = self.evaluate(function, name=name, skip_fingerprints=skip_fingerprints, source=source)
        evaluation.timings = {"policy": round(policy_seconds, 4), **evaluation.timings}
        evaluation.seconds = round(evaluation.seconds + policy_seconds, 4)
        return evaluation

    def _fused(self, source: str | None, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        """The candidate's fused kernel (`actmine.candidate.fused`), or why it trains eagerly."""
        if source is None:
            return "eager: a callable without its source"
        if not self.fused:
            return "eager: the lab's fused kernels are off"
        if self.protocol.torch_dtype != torch.float32 or self.protocol.device != "cpu":
            return "eager: fused kernels are float32 CPU only"
        from ..candidate.fused import fused_or_reason

        return fused_or_reason(source, function, self.cache_dir)

    def evaluate(
        self,
        activation: Callable[[torch.Tensor], torch.Tensor],
        name: str = "candidate",
        skip_fingerprints: Collection[str] = (),
        source: str | None = None,
    ) -> Evaluation:
        """The cascade for a callable: probes → a short training on one task → the full suite.

        Each stage's time is recorded in `timings`; a refusal records its stage and reason code.
        The probes measure batch dependence (on the training shape too); a batch-dependent activation
        is refused unless the budget allows it; then it trains on each model's batch separately (so
        that models do not share statistics) and is scored one example at a time, as it would be
        used at inference. Both trainings (screen and train) check a few of the candidate's calls
        against what the probes saw (`probes.TrainingCheck`: codes `modifies_input`,
        `nondeterministic`, `inconsistent_function` at the stage that caught it). A candidate whose
        fingerprint is in `skip_fingerprints` (the search's already-evaluated functions) stops after
        the probes with code `duplicate`: it is not trained again. With the candidate's `source`
        (`evaluate_source`), a pointwise candidate that passed the probes trains with its compiled
        kernel once the kernel agrees with it (`actmine.candidate.fused`; nothing is compiled for a
        candidate refused earlier); `workload["kernel"]` says which path trained it.
        """
        from ..candidate import probes

        started = time.perf_counter()
        evaluation = Evaluation(activation=name, ok=False, workload=self.workload_summary())

        def stage(name_: str, since: float) -> float:
            now = time.perf_counter()
            evaluation.timings[name_] = round(now - since, 4)
            return now

        evaluation.probes = (
            _run_stage(
                evaluation,
                "probes",
                lambda: probes.run_probes(
                    activation, dtype=self.protocol.torch_dtype, budget=self.budget, shapes=(self.training_shape(),)
                ),
            )
            or {}
        )
        clock = stage("probes", started)
        if not evaluation.error and evaluation.probes.get("fingerprint") in skip_fingerprints:
            evaluation.fail(
                "probes",
                "duplicate",
                "computes the same function as an already evaluated program "
                f"(fingerprint {evaluation.probes['fingerprint']})",
            )
        if evaluation.error:
            evaluation.seconds = round(clock - started, 4)
            return evaluation
        batch_wise = not evaluation.probes["pointwise"]
        # Both trainings check, on a few calls, that the candidate computes the function its probes
        # recorded (probes.TrainingCheck): the probes' tensors are not training's.
        check = probes.TrainingCheck(activation, evaluation.probes["curve"], pointwise=not batch_wise)
        fused = "eager: batch-dependent" if batch_wise else self._fused(source, activation)
        train = self._trainer(activation, fused, check, evaluation, pointwise=not batch_wise)
        if self.screen_max_id_error is not None:
            screen = _run_stage(evaluation, "screen", lambda: train(self.screen_workload))
            clock = stage("screen", clock)
            if screen is not None:
                self._judge_screen(evaluation, screen)
            if evaluation.error:
                evaluation.seconds = round(clock - started, 4)
                return evaluation
        result = _run_stage(evaluation, "train", lambda: train(self.workload))
        clock = stage("train", clock)
        if result is not None:
            self._judge_training(evaluation, result)
        evaluation.seconds = round(clock - started, 4)
        return evaluation

    def _judge_screen(self, evaluation: Evaluation, screen: TrainResult) -> None:
        """Fail `evaluation` at the screen unless the one-task training was finite and learnt its task."""
        if screen.non_finite:
            evaluation.fail(
                "screen",
                "non_finite",
                f"non-finite loss, gradient, parameters or output on {self.suite.tasks[0].name} (the screening task)",
            )
        elif not float(screen.id_error[0]) <= self.screen_max_id_error:
            evaluation.fail(
                "screen",
                "screen_failed",
                f"the MLP did not learn the screening task {self.suite.tasks[0].name}: normalised ID "
                f"error {float(screen.id_error[0]):.3g} > {self.screen_max_id_error}",
            )

    def _judge_training(self, evaluation: Evaluation, result: TrainResult) -> None:
        """Score the suite's training into `evaluation` (ok, fitness, per-task scores), or fail it."""
        if result.non_finite:
            evaluation.fail(
                "train",
                "non_finite",
                f"non-finite loss, gradient, parameters or output on {self._describe(result.non_finite)}",
            )
        else:
            evaluation.ood_log_ratio, evaluation.tasks = self.score(result)
            evaluation.fitness = 0.0 - evaluation.ood_log_ratio  # 0.0 - x: no "-0.0" for ReLU
            evaluation.ok, evaluation.stage = True, "done"
