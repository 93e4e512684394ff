"""The records of a transfer run: a job (`TransferJob`, one training run, plain JSON-able data)
and its result (`TransferResult`, validated when read back). A module of records only, so that
the runner (which makes them) and the summary (which reads them) both import it and not each other.
`_failed` builds the result of a job that failed, for the child and the parent alike.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TransferJob", "TransferResult"]


@dataclass(frozen=True)
class TransferJob:
    """One training run: ``activation`` on ``benchmark`` with ``seed`` (plain data, JSON-able).

    Attributes:
        activation: the display name (registry name, candidate file stem, pack entry).
        benchmark: the registered benchmark name.
        seed: the training seed.
        options: keyword arguments of the benchmark's constructor.
        source: a program's text (a candidate file or a pack entry; untrusted: compiled only in
            the child), or None.
        reference: the registry name ``activations.get`` receives in the child; default
            ``activation``. Unused when ``source`` is set.
        benchmark_class: ``"module:QualName"`` of the benchmark class; the child imports it, so
            plug-in benchmarks (registered outside ``actmine``) work in job processes too.
            None: looked up by name in the child's benchmark registry.
    """

    activation: str
    benchmark: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    reference: str | None = None
    benchmark_class: str | None = None

    @property
    def key(self) -> str:
        """Identity for resuming: activation (and its code), benchmark, seed and options."""
        ident = {
            "activation": self.activation,
            "reference": self.reference,
            "benchmark": self.benchmark,
            "seed": self.seed,
            "options": self.options,
            "source": hashlib.sha256(self.source.encode()).hexdigest() if self.source is not None else None,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferJob":
        return cls(
            **{k: data[k] for k in ("activation", "benchmark", "seed")},
            **{k: data[k] for k in ("options", "source", "reference", "benchmark_class") if k in data},
        )


@dataclass
class TransferResult:
    """What one job produced. ``ok`` with a finite ``score``, or ``error = {code, message}``.

    Codes: ``candidate`` (the program did not compile or misbehaved), ``dataset_missing``,
    ``job_error`` (the benchmark raised), ``non_finite`` (the score was not finite),
    ``timeout`` (the job ran past its wall-clock limit and was killed), ``cpu_limit`` (it used
    more CPU time than allowed), ``memory_limit`` (it ran out of memory: the address-space limit,
    or the GPU's), ``worker_died`` (the job's process died), ``executor_error`` (lost by the
    executor), ``bad_answer`` (the child's answer was malformed).

    ``sandbox``: how the job's process was confined, ``{network_isolated, timeout_s, cpu_s,
    memory_mb}`` (None: no such limit; ``network_isolated`` None when the process died before
    saying): the process's own report, before any untrusted code ran, and the parent's timeout.
    """

    activation: str
    benchmark: str
    seed: int
    ok: bool
    score: float | None = None
    metric: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: dict[str, str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    sandbox: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferResult":
        """Rebuild and validate (children's answers and results.jsonl lines go through here)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a result must be an object, got {type(data).__name__}")
        try:
            result = cls(
                activation=data["activation"],
                benchmark=data["benchmark"],
                seed=data["seed"],
                ok=data["ok"],
                score=data.get("score"),
                metric=data.get("metric", ""),
                details=data.get("details") or {},
                seconds=data.get("seconds", 0.0),
                error=data.get("error"),
                options=data.get("options") or {},
                key=data.get("key", ""),
                sandbox=data.get("sandbox") or {},
            )
        except KeyError as exc:
            raise ValueError(f"a result lacks {exc}") from None
        if not (
            isinstance(result.activation, str)
            and isinstance(result.benchmark, str)
            and isinstance(result.metric, str)
            and isinstance(result.key, str)
        ):
            raise ValueError("activation, benchmark, metric and key must be strings")
        if isinstance(result.seed, bool) or not isinstance(result.seed, int):
            raise ValueError(f"seed must be an integer, got {result.seed!r}")
        if not isinstance(result.ok, bool):
            raise ValueError(f"ok must be true or false, got {result.ok!r}")
        if not all(isinstance(d, dict) for d in (result.details, result.options, result.sandbox)):
            raise ValueError("details, options and sandbox must be objects")
        if isinstance(result.seconds, bool) or not isinstance(result.seconds, (int, float)):
            raise ValueError(f"seconds must be a number, got {result.seconds!r}")
        if result.ok:
            if (
                isinstance(result.score, bool)
                or not isinstance(result.score, (int, float))
                or not math.isfinite(result.score)
            ):
                raise ValueError(f"an ok result needs a finite score, got {result.score!r}")
            if result.error is not None:
                raise ValueError("an ok result has no error")
            result.score = float(result.score)
        else:
            error = result.error
            if not (
                isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            ):
                raise ValueError(f"a failed result needs error = {{code, message}}, got {error!r}")
            result.error = {"code": _printable(error["code"][:64]), "message": _printable(error["message"])}
            result.score = None
        result.seconds = float(result.seconds)
        return result


def _failed(
    job: TransferJob,
    code: str,
    message: str,
    metric: str = "",
    seconds: float = 0.0,
    sandbox: Mapping[str, Any] | None = None,
) -> TransferResult:
    """A failed result of ``job``: ``error = {code, message}``, the message made printable (it may
    come from the job's process, which ran untrusted code)."""
    return TransferResult(
        activation=job.activation,
        benchmark=job.benchmark,
        seed=job.seed,
        ok=False,
        metric=metric,
        seconds=round(seconds, 3),
        error={"code": code, "message": _printable(message)},
        options=dict(job.options),
        key=job.key,
        sandbox=dict(sandbox or {}),
    )


def _printable(text: str) -> str:
    """``text`` with control characters (terminal escapes) written as ``\\xNN``, cut to the
    candidate messages' size (`probes.cap_message`): error messages come from the job's process,
    which ran untrusted code. Applying it twice changes nothing (results are read back through it)."""
    from ..candidate.probes import MESSAGE_LIMIT, cap_message
    from ..terminal import terminal_text

    text = terminal_text(text)
    # the margin holds cap_message's note, so that a cut text is not cut again
    return cap_message(text, MESSAGE_LIMIT) if len(text) > MESSAGE_LIMIT + 64 else text
