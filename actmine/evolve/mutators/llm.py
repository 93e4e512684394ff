"""The LLM mutator: any OpenAI-compatible chat model as the mutation operator (AlphaEvolve style).

`LLMMutator(models=[...], operators=..., selection="weights"|"bandit", budget_usd=..., ...)` asks
a model for a *full rewrite* of the parent (never a diff: short programs, and no patch to misapply),
with the parent's scores per family, a few inspirations and the refusals that recently cost the
search most, so that the model learns the rules. Three operators, drawn by configured probability:

- `mutate`: improve one parent;
- `crossover`: combine the parent with an inspiration (mutate when there is none);
- `simplify`: the same idea with fewer operations.

The prompts are text files in `actmine/evolve/prompts/` (`string.Template` syntax, so code braces
need no escaping); `prompts_dir` overrides any of them.

The answer is parsed by `parse_response` (several code blocks, missing fences, `<think>` text), and
the chosen block is normalised (`actmine.language.normalise`: well-meaning boilerplate such as type
hints, `typing` imports, `__main__` self-tests or harmless decorators is removed or rewritten; anything
hostile is left for the static policy to refuse with its reason). The proposal's `source` is the
normalised program -- what is checked, stored, exported and shown -- and the model's whole answer
and the list of changes travel beside it (`Proposal.original_answer`, `normalisation_changes`).
Nothing here runs the model's code: the controller checks it (`check_source`) and evaluates it in
the sandbox.

After a refusal, the next prompts quote the refusal with the precise rule and a corrected example
for its reason code (`feedback.FIXES`, the one table of them).

Reliability and cost: every HTTP call goes through the official `openai` client (its own retries
off, so that each attempt is recorded), with a timeout, retries with exponential backoff on rate
limits, server errors and timeouts (`Retry-After` honoured), and a limit on concurrent calls. Each
attempt becomes one `LLMCall` (model, tokens in and out, latency, cost from the model's prices,
outcome) that the controller writes to the run's `llm_calls` table. A hard budget in US dollars
and/or tokens is enforced by *reserving* each call's worst case (prompt estimate + `max_tokens`)
before it is made, so concurrent calls cannot overshoot it; when the next call would not fit,
`exhausted()` says why and the controller stops proposing.

API keys: each model names the environment variable that holds its key (`api_key_env`); the key is
read here, kept only in the client, and never written to the config snapshot, the database or the
run directory (candidate workers get a scrubbed environment, see `candidate.sandbox`).

The mutator's parts live beside it: the models, the record of a call and the choice of a model in
`llm_models`, the prompts in `llm_prompts`, the reading of answers in `llm_answers`; their public
names stay importable from here.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

from .base import Failure, LabContext, Mutator, Parent, Proposal, register_mutator
from .llm_answers import ENTRY as ENTRY
from .llm_answers import ParsedAnswer as ParsedAnswer
from .llm_answers import _one_line, answer_text, parse_response
from .llm_models import LLMCall, LLMConfigError, ModelChooser, ModelSpec, parse_models
from .llm_models import ModelStats as ModelStats
from .llm_prompts import PROMPT_FILES as PROMPT_FILES
from .llm_prompts import build_prompt, load_prompts
from .llm_prompts import failure_items as failure_items
from .spend import Spend, prompt_tokens_estimate, tokens_in, worst_case

OPERATORS = ("mutate", "crossover", "simplify")
MAX_REPORTED_TOKENS = 10_000_000  # per call: more is an endpoint reporting nonsense


@register_mutator
class LLMMutator(Mutator):
    """Proposals written by chat models behind OpenAI-compatible endpoints.

    Options (`mutator.options` in the config):
        models: the ensemble, a list of `ModelSpec` mappings (or one model name).
        selection: `weights` or `bandit` (see `ModelChooser`); `exploration`: the bandit's bonus.
        operators: probabilities of `mutate`, `crossover`, `simplify`.
        concurrency: calls in flight at once (the controller keeps evaluating meanwhile).
        timeout_s, max_retries, backoff_s, max_backoff_s: per attempt / retry policy.
        budget_usd, budget_tokens: hard caps over the whole run, resumes included.
        failures_shown: how many recent refusals the prompt summarises.
        prompts_dir: a folder whose NAME.txt files replace the packaged templates.
    """

    name = "llm"

    def __init__(
        self,
        models: Any = None,
        selection: str = "weights",
        exploration: float = 1.0,
        operators: dict[str, float] | None = None,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        failures_shown: int = 30,
        prompts_dir: str | None = None,
    ):
        if models is None:
            raise LLMConfigError("the llm mutator needs mutator.options.models (see examples/openai.yaml)")
        self.models = parse_models(models)
        if selection not in ("weights", "bandit"):
            raise LLMConfigError(f"mutator.options.selection must be weights or bandit, got {selection!r}")
        operators = dict(operators) if operators is not None else {"mutate": 0.7, "crossover": 0.2, "simplify": 0.1}
        unknown = sorted(set(operators) - set(OPERATORS))
        if (
            unknown
            or not operators
            or any(not isinstance(v, (int, float)) or v < 0 for v in operators.values())
            or sum(operators.values()) <= 0
        ):
            raise LLMConfigError(
                f"mutator.options.operators must map some of {', '.join(OPERATORS)} to "
                f"non-negative probabilities, got {operators!r}"
            )
        for key, value in (("concurrency", concurrency), ("timeout_s", timeout_s), ("failures_shown", failures_shown)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise LLMConfigError(f"mutator.options.{key} must be positive, got {value!r}")
        for key, value in (("max_retries", max_retries), ("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
            if not isinstance(value, (int, float)) or value < 0:
                raise LLMConfigError(f"mutator.options.{key} must be non-negative, got {value!r}")
        for key, value in (("budget_usd", budget_usd), ("budget_tokens", budget_tokens)):
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise LLMConfigError(f"mutator.options.{key} must be a non-negative number or null, got {value!r}")
        if prompts_dir is not None and not Path(prompts_dir).is_dir():
            raise LLMConfigError(f"mutator.options.prompts_dir {prompts_dir!r} is not a directory")
        self.operators = operators
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.spend = Spend(budget_usd, budget_tokens)
        self.chooser = ModelChooser(self.models, selection, exploration)
        self.templates = load_prompts(prompts_dir)
        self.lab = LabContext()
        self.failures: deque[Failure] = deque(maxlen=int(failures_shown))
        self._failures_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._client_lock = threading.Lock()
        self._stopping = threading.Event()  # set by `stop`: calls in flight end, no new attempt starts
        for spec in self.models:  # fail at start, not mid-run, when a key is missing
            self._api_key(spec)

    # -- the controller's hooks ------------------------------------------------------------
    def setup(self, lab: LabContext) -> None:
        self.lab = lab

    def restore(
        self,
        calls: Sequence[dict[str, Any]],
        children: Sequence[tuple[str, float | None, float | None]],
        failures: Sequence[Failure],
    ) -> None:
        """Continue a resumed run: its past spend counts against the caps, its history feeds the bandit."""
        for row in calls:
            call = LLMCall(
                row.get("model") or "",
                int(row.get("prompt_tokens") or 0),
                int(row.get("completion_tokens") or 0),
                float(row.get("latency_s") or 0),
                float(row.get("cost") or 0),
                row.get("outcome") or "ok",
            )
            self.spend.add(call.cost, call.prompt_tokens + call.completion_tokens)
            self.chooser.record_call(call)
        for model, fitness, parent_fitness in children:
            self.chooser.record_child(model, fitness, parent_fitness)
        for failure in failures:
            self.failures.append(failure)

    def observe(
        self, proposal: Proposal, fitness: float | None, parent_fitness: float | None, failure: Failure | None
    ) -> None:
        """The outcome of one of this mutator's proposals (for the bandit and the prompt)."""
        if proposal.model:
            self.chooser.record_child(proposal.model, fitness, parent_fitness)
        if failure is not None:
            with self._failures_lock:
                self.failures.append(failure)

    def exhausted(self) -> str | None:
        """Why no more proposals can be made (budget spent, every model disabled), or None."""
        if self.spend.exhausted:
            return self.spend.exhausted
        if not self.chooser.available():
            return "every LLM was disabled: " + "; ".join(f"{k}: {v}" for k, v in self.chooser.disabled.items())
        return None

    def stop(self) -> None:
        """The search is stopping: calls in flight end within `llm_http.POLL_S`, retries and backoffs
        are dropped, and the proposals come back with failure code `stopped` (not recorded as
        programs: a resume proposes them again)."""
        self._stopping.set()

    def usage(self) -> dict[str, Any]:
        with self.chooser._lock:
            per_model = {
                k: {
                    "calls": s.calls,
                    "tokens": s.prompt_tokens + s.completion_tokens,
                    "cost": round(s.cost, 6),
                    "children": s.children,
                    "reward": round(s.reward, 4),
                }
                for k, s in self.chooser.stats.items()
            }
        return {
            "usd": round(self.spend.usd, 6),
            "tokens": self.spend.tokens,
            "budget_usd": self.spend.budget_usd,
            "budget_tokens": self.spend.budget_tokens,
            "models": per_model,
        }

    # -- proposing -------------------------------------------------------------------------
    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        if parent is None:  # no seed survived: start from ReLU
            parent = Parent(
                source="def activation_function(x):\n    return torch.relu(x)\n",
                fitness=0.0,
                rationale="ReLU, the reference",
            )
        operator = rng.choices(list(self.operators), weights=list(self.operators.values()))[0]
        other = inspirations[0] if operator == "crossover" and inspirations else None
        if operator == "crossover" and other is None:
            operator = "mutate"
        with self._failures_lock:
            failures = list(self.failures)
        messages = build_prompt(self.templates, operator, parent, inspirations, failures, self.lab, other)
        spec = self.chooser.choose(rng)
        if spec is None:
            return Proposal(
                "",
                self.exhausted() or "no model available",
                self.name,
                None,
                failure={"code": "budget", "message": self.exhausted() or "no model available"},
            )
        text, calls = self._complete(spec, messages, rng)
        tag = f"[{operator}] "
        if text is None and self._stopping.is_set():
            return Proposal(
                "",
                "the search stopped before the model answered",
                self.name,
                spec.key,
                calls=tuple(calls),
                failure={"code": "stopped", "message": "the search stopped before the model answered"},
            )
        if text is None:
            last = calls[-1] if calls else None
            if last is not None and last.outcome == "budget":
                return Proposal(
                    "",
                    last.error or "",
                    self.name,
                    spec.key,
                    calls=tuple(calls[:-1]),
                    failure={"code": "budget", "message": last.error or ""},
                )
            message = last.error if last is not None else "no call was made"
            return Proposal(
                "",
                tag + f"the model gave no answer ({message})",
                self.name,
                spec.key,
                calls=tuple(c for c in calls if c.outcome != "budget"),
                failure={"code": "llm_unavailable", "message": message},
            )
        parsed = parse_response(text)
        if parsed.source is None:  # the raw answer is the source: there is no program to show instead
            return Proposal(
                text,
                tag + (parsed.rationale or "(no rationale)"),
                self.name,
                spec.key,
                calls=tuple(calls),
                failure={"code": "no_code", "message": parsed.error or "no code"},
                original_answer=text,
            )
        return Proposal(
            parsed.source,
            tag + parsed.rationale,
            self.name,
            spec.key,
            calls=tuple(calls),
            original_answer=text,
            normalisation_changes=parsed.changes,
        )

    # -- HTTP ------------------------------------------------------------------------------
    def _api_key(self, spec: ModelSpec) -> str:
        if spec.api_key_env is None:
            return "no-key"  # local servers (llama.cpp, vLLM, Ollama) accept anything
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise LLMConfigError(
                f"model {spec.key!r}: environment variable {spec.api_key_env} is not set; "
                f"export {spec.api_key_env}=… (the key is never read from the config file)"
            )
        return key

    def _client(self, spec: ModelSpec):
        with self._client_lock:
            client = self._clients.get(spec.key)
            if client is None:
                from openai import OpenAI

                from .llm_http import limited_client

                # The client's own retries are off: every attempt is made (and recorded) here. Its
                # HTTP client holds each call to `timeout_s` overall, refuses compressed or huge
                # answers and follows no redirect (see llm_http).
                client = OpenAI(
                    api_key=self._api_key(spec),
                    base_url=spec.base_url,
                    timeout=self.timeout_s,
                    max_retries=0,
                    http_client=limited_client(self.timeout_s),
                )
                self._clients[spec.key] = client
            return client

    def _complete(
        self, spec: ModelSpec, messages: list[dict[str, str]], rng: random.Random
    ) -> tuple[str | None, list[LLMCall]]:
        """The answer's text (None when every attempt failed, or the search is stopping) and one
        `LLMCall` per attempt."""
        prompt_estimate = prompt_tokens_estimate(messages)
        # the worst case (prompt + a full max_tokens completion): concurrent calls cannot overshoot the cap
        reserve = worst_case(prompt_estimate, spec.max_tokens, spec.price_in, spec.price_out)
        calls: list[LLMCall] = []
        for attempt in range(self.max_retries + 1):
            if self._stopping.is_set():
                return None, calls
            if not self.spend.reserve(reserve.usd, reserve.tokens):
                calls.append(LLMCall(spec.key, outcome="budget", error=self.spend.exhausted))
                return None, calls
            spent_usd, spent_tokens = 0.0, 0
            try:  # the reservation is settled whatever happens: waiting calls depend on it
                call, text, retry_after = self._attempt(spec, messages, prompt_estimate)
                if text is not None:
                    spent_usd, spent_tokens = call.cost, call.prompt_tokens + call.completion_tokens
            finally:
                self.spend.settle(reserve.usd, reserve.tokens, spent_usd, spent_tokens)
            self.chooser.record_call(call)
            calls.append(call)
            if text is not None:
                return text, calls
            if call.outcome == "client_error":
                if call.error and call.error.startswith(("HTTP 401", "HTTP 403", "HTTP 404")):
                    # a wrong key, model name or URL will not fix itself: stop using this model
                    self.chooser.disabled[spec.key] = call.error
                return None, calls
            if attempt < self.max_retries:
                delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                self._stopping.wait(min(self.max_backoff_s, delay * (1 + 0.25 * rng.random())))
        return None, calls

    def _attempt(
        self, spec: ModelSpec, messages: list[dict[str, str]], prompt_estimate: int
    ) -> tuple[LLMCall, str | None, float | None]:
        """One HTTP call: its record, the answer's text (None when it failed) and the Retry-After."""
        import openai

        from .llm_http import REFUSED_ANSWER, call_limits

        kwargs: dict[str, Any] = {spec.token_parameter: spec.max_tokens}
        if spec.temperature is not None:
            kwargs["temperature"] = spec.temperature
        started = time.monotonic()

        def failed(outcome: str, error: str, retry_after: float | None = None):
            return (
                LLMCall(spec.key, latency_s=time.monotonic() - started, outcome=outcome, error=error),
                None,
                retry_after,
            )

        try:
            with call_limits(self.timeout_s, self._stopping):
                response = self._client(spec).chat.completions.create(model=spec.name, messages=messages, **kwargs)
        except openai.APIStatusError as exc:
            status = exc.status_code
            outcome = "rate_limited" if status == 429 else "server_error" if status >= 500 else "client_error"
            return failed(outcome, f"HTTP {status}: {_status_message(exc)}", _retry_after(exc.response))
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            if self._stopping.is_set():
                return failed("cancelled", "the search stopped")
            if isinstance(exc, openai.APITimeoutError):
                return failed("timeout", f"no answer within {self.timeout_s:g} s")
            if REFUSED_ANSWER in str(exc.__cause__ or ""):  # connected and answered, but not acceptably
                return failed("server_error", _one_line(str(exc.__cause__), 200))
            return failed("connection_error", _one_line(f"{exc}: {exc.__cause__ or ''}", 200))
        except (openai.APIResponseValidationError, ValueError) as exc:  # a body that is not JSON
            return failed("server_error", _one_line(f"HTTP 200 without a chat completion: {exc}", 200))
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list):  # an HTML page, plain text, `{}`: no chat completion at all
            shown = response if isinstance(response, str) else type(response).__name__
            return failed("server_error", _one_line(f"HTTP 200 without a chat completion: {shown!r}", 200))
        usage = getattr(response, "usage", None)
        prompt_tokens = _token_count(getattr(usage, "prompt_tokens", 0)) if usage else prompt_estimate
        completion_tokens = _token_count(getattr(usage, "completion_tokens", 0)) if usage else 0
        message = getattr(choices[0], "message", None) if choices else None
        text = answer_text(getattr(message, "content", None))
        if not usage:  # no usage reported: count the answer's length instead
            completion_tokens = tokens_in(text)
        call = LLMCall(
            spec.key,
            prompt_tokens,
            completion_tokens,
            time.monotonic() - started,
            spec.cost(prompt_tokens, completion_tokens),
            "ok" if parse_response(text).source else "no_code",
        )
        return call, text or "", None


def _status_message(exc: Any) -> str:
    """An error status's message, one line; a redirect says where to (followed it is not: the
    endpoint's configured address is the one the key is sent to)."""
    message = _one_line(str(exc.message), 200)
    location = exc.response.headers.get("location") if 300 <= exc.status_code < 400 else None
    if location:
        message += f" (the endpoint redirects to {_one_line(location, 200)}: set base_url to that if you trust it)"
    return message


def _token_count(value: Any) -> int:
    """A token count the endpoint reported, as a count: not a number, negative (which would refund
    the budget) or absurd → 0 or the cap."""
    try:
        count = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(count, 0), MAX_REPORTED_TOKENS)


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
