"""`actmine llm check --config FILE`: one real request per configured model before a paid run.

A search with the LLM mutator finds out only after it has started that a key is missing, a model
name is misspelt or a URL points nowhere -- and a wrong price makes the budget mean nothing. This
check reads the same config file as `actmine search --config`, and for each model of its llm
mutator makes ONE call through the mutator's own path (`LLMMutator.propose`: the real prompt, the
official `openai` client, `parse_response` and the normaliser), then:

- says whether the endpoint, key and model answered, or which of them is wrong and how to fix it
  (`diagnose`: connection refused / unknown host = URL, HTTP 401/403 = key, 404 or "model not
  found" = model name, a missing environment variable, a timeout);
- shows the program parsed from the answer and the static policy's verdict on it (`check_source`,
  as the controller does; the program is never run);
- gives the call's tokens and cost at the model's configured prices, the worst case a proposal
  reserves, and what the run's proposals would cost and how many the budget lets through
  (`estimate_costs`, on `spend.Spend` / `worst_case` / `cost_usd`).

Everything the model or the server wrote is untrusted: `format_check` prints it through
`terminal_text`, and the key (read from the environment as the mutator does) is blanked out of
every text kept here, should a server echo it.

Exit status (`exit_status`): 0 every model answered with a program the policy accepts; 1 a model
answered, but with no program or one the policy refuses; 3 a model could not be used (URL, key,
model name, timeout, service). Configuration errors raise `CheckConfigError` before any call (the
CLI's exit status 2).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from ...candidate.source import CandidateError, check_source
from ...config import Config, ConfigError
from ...terminal import terminal_text
from ..seeds import seed_source
from .base import LabContext, Parent, Proposal
from .llm import LLMCall, LLMConfigError, LLMMutator, ModelSpec, build_prompt, parse_models
from .llm_http import REFUSED_ANSWER
from .spend import Reservation, Spend, prompt_tokens_estimate, worst_case

EXIT_OK = 0
EXIT_REFUSED = 1  # a model answered, but with no program or one the policy refuses
EXIT_UNAVAILABLE = 3  # a model could not be used: URL, key, model name, timeout, service

ANSWERED = ("ok", "refused", "no_program")
UNAVAILABLE = (
    "no_key",
    "unreachable",
    "key",
    "model",
    "timeout",
    "rate_limited",
    "server_error",
    "client_error",
    "error",
)
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
_MODEL_UNKNOWN = re.compile(
    r"model\b.*\b(not found|does not exist|not exist|unknown|not available|invalid)"
    r"|unknown model|no such model|model_not_found",
    re.I | re.S,
)


class CheckConfigError(ValueError):
    """The config cannot be checked (bad file, no llm mutator, bad options); nothing was sent."""


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """What one model would cost the run, from the check's call and the model's configured prices."""

    call_usd: float  # the check's call: its real tokens at the configured prices
    worst_case: Reservation  # what each proposal reserves before its call (prompt estimate + max_tokens)
    proposals: int  # the run's LLM proposals: search.budget minus the seeds
    run_usd: float  # proposals x call_usd: if every proposal went to this model and cost the same
    budget_usd: float | None
    budget_tokens: int | None
    budget_allows: int  # proposals the caps let through, one after another (at most `proposals`)


@dataclass(frozen=True)
class ModelCheck:
    """One model's check. `status`: ok, refused, no_program (it answered) or one of `UNAVAILABLE`;
    `message` says what is wrong and how to fix it (it may quote the server: untrusted)."""

    spec: ModelSpec  # the model as configured (its prices, max_tokens)
    index: int  # its position in mutator.options.models
    endpoint: str  # its base URL, without any user:password part
    status: str
    message: str = ""
    latency_s: float = 0.0
    program: str | None = None  # the normalised program from the answer (untrusted)
    rationale: str = ""  # untrusted
    answer: str | None = None  # the raw answer when it held no program (untrusted)
    policy_code: str | None = None  # the policy's reason code when it refused the program
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: CostEstimate | None = None

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

    @property
    def model(self) -> str:
        """The name its calls and programs are recorded under (label or name)."""
        return self.spec.key


@dataclass(frozen=True)
class CheckPlan:
    """What the check needs from the config, validated before any call is made."""

    path: str
    config: Config
    options: dict  # mutator.options, as configured
    models: tuple[ModelSpec, ...]
    lab: LabContext
    parent: Parent | None
    inspirations: tuple[Parent, ...]
    proposals: int  # the run's LLM proposals (search.budget minus the seeds)


# ------------------------------------------------------------------------------------------------
# Step 1: the plan (configuration errors here, before any call)
# ------------------------------------------------------------------------------------------------


def load_plan(path: str) -> CheckPlan:
    """The models to check and the prompt's context, from a `actmine search --config` file."""
    try:
        config = Config.load(path)
    except ConfigError as exc:
        raise CheckConfigError(str(exc)) from None
    options = llm_options(config, path)
    models = validated_models(options)
    seeds = [_seed_parent(name) for name in config.search.initial_programs]
    parent = seeds[0] if seeds else None
    inspirations = tuple(seeds[1 : 1 + config.search.inspirations])
    return CheckPlan(
        str(path),
        config,
        options,
        models,
        lab_context(config),
        parent,
        inspirations,
        max(0, config.search.budget - len(config.search.initial_programs)),
    )


def llm_options(config: Config, path: str) -> dict:
    """`mutator.options` of the config's llm mutator. A config of another kind that carries
    `models` counts too: `actmine search --mutator llm --config FILE` runs it as the llm mutator."""
    options = dict(config.mutator.options)
    if config.mutator.kind != "llm" and "models" not in options:
        raise CheckConfigError(
            f"{path}: no llm mutator to check (mutator.kind is {config.mutator.kind!r} and "
            "mutator.options has no models); set mutator.kind: llm and list "
            "mutator.options.models, as in examples/openai.yaml"
        )
    return options


def validated_models(options: dict) -> tuple[ModelSpec, ...]:
    """The configured models, after every option has been validated as `LLMMutator` does -- without
    reading any key (a missing key is a per-model finding, not a configuration error)."""
    try:
        models = parse_models(options.get("models"))
        LLMMutator(**_check_options(options, [_keyless(spec) for spec in models]))
    except LLMConfigError as exc:
        raise CheckConfigError(str(exc)) from None
    except TypeError as exc:  # an option the mutator does not take
        raise CheckConfigError(f"mutator.options for 'llm': {exc}") from None
    return models


def lab_context(config: Config) -> LabContext:
    """What the prompt says about the lab, as the controller fills it, without building any pool."""
    from ...lab.generators import get_generator
    from ...lab.tasks import SuiteError, get_suite

    try:
        if config.lab.suite is not None:
            families = {t.family for t in get_suite(config.lab.suite).tasks}
        else:
            families = {get_generator(p["generator"], **p.get("params", {})).family for p in config.tasks.search}
    except (SuiteError, ValueError, KeyError, TypeError) as exc:
        raise CheckConfigError(f"the config's tasks: {exc}") from None
    return LabContext(
        families=tuple(sorted(families)),
        hidden=config.lab.hidden,
        steps=config.lab.steps,
        max_flops_per_element=config.probes.max_flops_per_element,
        max_source_chars=config.candidate.max_source_chars,
        allow_batch_dependent=config.probes.allow_batch_dependent,
    )


def _seed_parent(name: str) -> Parent:
    try:
        return Parent(source=seed_source(name), rationale=f"seed: {name}")
    except ValueError as exc:
        raise CheckConfigError(f"search.initial_programs: {exc}") from None


def _keyless(spec: ModelSpec) -> dict[str, Any]:
    return {**dataclasses.asdict(spec), "api_key_env": None}


def _check_options(options: dict, models: list[dict[str, Any]]) -> dict:
    """The mutator's options for the check: these models, one `mutate` call, no retry, and no run
    budget (the check's own call is bounded by `max_tokens`; the budget is estimated instead)."""
    return {
        **options,
        "models": models,
        "operators": {"mutate": 1.0},
        "max_retries": 0,
        "concurrency": 1,
        "budget_usd": None,
        "budget_tokens": None,
    }


# ------------------------------------------------------------------------------------------------
# Step 2: one call per model
# ------------------------------------------------------------------------------------------------


def check_model(plan: CheckPlan, spec: ModelSpec, index: int) -> ModelCheck:
    """One real request to `spec` through the mutator's own path, and what came of it."""
    base = dict(spec=spec, index=index, endpoint=endpoint_text(spec.base_url))
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        return ModelCheck(
            **base,
            status="no_key",
            message=f"environment variable {spec.api_key_env} is not set: export "
            f"{spec.api_key_env}=… with the key for {base['endpoint']} (the key is never "
            "read from the config file)",
        )
    mutator = LLMMutator(**_check_options(plan.options, [dataclasses.asdict(spec)]))
    mutator.setup(plan.lab)
    try:
        proposal = mutator.propose(plan.parent, plan.inspirations, random.Random(plan.config.search.seed))
    except Exception as exc:  # noqa: BLE001 -- as in the controller: a failure of the call is a finding
        return _redacted(
            ModelCheck(**base, status="error", message=f"the call failed: {type(exc).__name__}: {exc}"), key
        )
    call = proposal.calls[-1] if proposal.calls else None
    if call is None or call.outcome not in ("ok", "no_code"):
        status, message = diagnose(call, spec, index, mutator.timeout_s)
        return _redacted(
            ModelCheck(**base, status=status, message=message, latency_s=call.latency_s if call else 0.0), key
        )
    return _redacted(_answered(plan, spec, base, proposal, call, mutator), key)


def _answered(
    plan: CheckPlan, spec: ModelSpec, base: dict, proposal: Proposal, call: LLMCall, mutator: LLMMutator
) -> ModelCheck:
    """The check of a model that answered: its program, the policy's verdict and the costs."""
    messages = build_prompt(mutator.templates, "mutate", plan.parent or _relu(), plan.inspirations, [], mutator.lab)
    cost = estimate_costs(plan, spec, call, prompt_tokens_estimate(messages))
    usage = dict(
        latency_s=call.latency_s,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cost=cost,
        rationale=proposal.rationale,
    )
    if proposal.failure is not None:  # no program in the answer: `source` is the raw answer
        return ModelCheck(
            **base,
            **usage,
            status="no_program",
            answer=proposal.original_answer,
            message=f"the answer holds no program: {proposal.failure.get('message', '')}",
        )
    code, verdict = policy_verdict(proposal.source, plan.config.candidate.max_source_chars)
    return ModelCheck(
        **base,
        **usage,
        status="ok" if code is None else "refused",
        program=proposal.source,
        policy_code=code,
        message=verdict,
    )


def _relu() -> Parent:
    # what `LLMMutator.propose` starts from when the config has no seeds
    return Parent(
        source="def activation_function(x):\n    return torch.relu(x)\n", fitness=0.0, rationale="ReLU, the reference"
    )


def policy_verdict(source: str, max_chars: int) -> tuple[str | None, str]:
    """The static policy's verdict on a program, as the controller checks proposals: (None,
    "accepted ...") or (reason code, the refusal's message). The program is only parsed, never run."""
    try:
        check_source(source, max_chars=max_chars)
    except CandidateError as exc:
        return exc.code, f"refused [{exc.code}]: {exc}"
    return None, "accepted by the static policy (the search would evaluate it in the sandbox)"


def diagnose(call: LLMCall | None, spec: ModelSpec, index: int, timeout_s: float) -> tuple[str, str]:
    """(status, message): which of URL, key, model name or service failed, and how to fix it."""
    where = f"mutator.options.models[{index}]"
    endpoint = endpoint_text(spec.base_url)
    error = (call.error if call is not None else None) or "no call was made"
    outcome = call.outcome if call is not None else "error"
    status_code = _http_status(error)
    if outcome == "connection_error":
        return "unreachable", (
            f"cannot connect to {endpoint} ({error}); check {where}.base_url (scheme, host, "
            "port and path, usually ending in /v1) and that the server is running"
        )
    if outcome == "timeout":
        return "timeout", (
            f"{endpoint} gave no answer within {timeout_s:g} s; check that the server is up, or "
            "raise mutator.options.timeout_s for a slow model"
        )
    if status_code in (401, 403):
        source = (
            f"the key in {spec.api_key_env}"
            if spec.api_key_env
            else f"no key ({where}.api_key_env is not set: name the environment variable that holds the key)"
        )
        return "key", (
            f"{endpoint} refused {source} ({error}); check that the key is valid, belongs to this "
            "endpoint and may use the model"
        )
    if status_code == 404 or _MODEL_UNKNOWN.search(error):
        return "model", (
            f"model {spec.name!r} is not known at {endpoint} ({error}); check {where}.name against "
            f"the provider's model list (a 404 can also mean a wrong path in {where}.base_url)"
        )
    if outcome == "rate_limited":
        return "rate_limited", (
            f"{endpoint} answered with a rate limit or quota error ({error}): the URL, key and "
            "model look right; check the account's quota and billing, or try again later"
        )
    if REFUSED_ANSWER in error:
        return "server_error", (
            f"{endpoint} answered, but not as actmine accepts ({error}); check that the server, or a proxy "
            f"in front of it, honours `Accept-Encoding: identity` (no compression) and {where}.max_tokens"
        )
    if outcome == "server_error":
        return "server_error", f"{endpoint} failed ({error}); try again later"
    if status_code is not None and 300 <= status_code < 400:
        return "client_error", (
            f"{endpoint} redirects elsewhere ({error}); actmine sends the key only to the address "
            f"configured: set {where}.base_url to the new one if you trust it"
        )
    if outcome == "client_error":
        return "client_error", (
            f"{endpoint} refused the request ({error}); check {where}'s temperature (null omits "
            "it), max_tokens and token_parameter (max_completion_tokens for reasoning models)"
        )
    return "error", f"the call failed ({error})"


def _http_status(error: str) -> int | None:
    match = re.match(r"HTTP (\d{3})\b", error)
    return int(match.group(1)) if match else None


def endpoint_text(base_url: str | None) -> str:
    """The base URL to show, without a user:password part (it may hold a credential)."""
    if base_url is None:
        return f"the openai client's default (OPENAI_BASE_URL or {OPENAI_DEFAULT_URL})"
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)) if parts.scheme else base_url
    except ValueError:
        return base_url


def _redacted(check: ModelCheck, key: str | None) -> ModelCheck:
    """The check with the key blanked out of every text, should a server or model have echoed it."""
    if not key or len(key) < 4:
        return check
    changes = {
        f.name: getattr(check, f.name).replace(key, "***")
        for f in dataclasses.fields(check)
        if isinstance(getattr(check, f.name), str)
    }
    return dataclasses.replace(check, **changes)


# ------------------------------------------------------------------------------------------------
# Step 3: costs
# ------------------------------------------------------------------------------------------------


def estimate_costs(plan: CheckPlan, spec: ModelSpec, call: LLMCall, prompt_estimate: int) -> CostEstimate:
    """The call's cost, a proposal's worst case and the run's estimate at `spec`'s prices."""
    reserve = worst_case(prompt_estimate, spec.max_tokens, spec.price_in, spec.price_out)
    budget_usd, budget_tokens = plan.options.get("budget_usd"), plan.options.get("budget_tokens")
    allows = proposals_within_budget(
        plan.proposals, reserve, call.cost, call.prompt_tokens + call.completion_tokens, budget_usd, budget_tokens
    )
    return CostEstimate(
        call.cost, reserve, plan.proposals, plan.proposals * call.cost, budget_usd, budget_tokens, allows
    )


def proposals_within_budget(
    proposals: int,
    reserve: Reservation,
    call_usd: float,
    call_tokens: int,
    budget_usd: float | None,
    budget_tokens: int | None,
) -> int:
    """How many of `proposals` calls, one after another, the caps let through when each reserves
    `reserve` and then spends `call_usd` / `call_tokens`: the run's own `Spend`, replayed."""
    spend = Spend(budget_usd, budget_tokens)
    allowed = 0
    while allowed < proposals and spend.reserve(reserve.usd, reserve.tokens):
        spend.settle(reserve.usd, reserve.tokens, call_usd, call_tokens)
        allowed += 1
    return allowed


# ------------------------------------------------------------------------------------------------
# Step 4: the verdict and the text
# ------------------------------------------------------------------------------------------------


def exit_status(checks: Sequence[ModelCheck]) -> int:
    """3 when a model could not be used, else 1 when one gave no acceptable program, else 0."""
    if any(c.status in UNAVAILABLE for c in checks):
        return EXIT_UNAVAILABLE
    if any(c.status != "ok" for c in checks):
        return EXIT_REFUSED
    return EXIT_OK


_HEADLINES = {
    "ok": "OK: answered with a program the policy accepts",
    "refused": "REFUSED: the policy refuses the program",
    "no_program": "NO PROGRAM in the answer",
    "no_key": "NO KEY",
    "unreachable": "UNREACHABLE URL",
    "key": "KEY REFUSED",
    "model": "UNKNOWN MODEL",
    "timeout": "TIMEOUT",
    "rate_limited": "RATE LIMITED",
    "server_error": "SERVER ERROR",
    "client_error": "REQUEST REFUSED",
    "error": "ERROR",
}


def _line(text: object) -> str:
    return terminal_text(text, keep_newlines=False)


def _usd(value: float) -> str:
    return f"${value:.6f}"


def format_check(check: ModelCheck) -> str:
    """The check as terminal-safe text: every untrusted part goes through `terminal_text`."""
    spec = check.spec
    key = f"key from {spec.api_key_env}" if spec.api_key_env else "no key"
    lines = [
        f"model {_line(check.model)} ({_line(spec.name)} at {_line(check.endpoint)}, {key}): {_HEADLINES[check.status]}"
    ]
    if check.message:
        lines.append(f"  {_line(check.message)}")
    if not check.answered:
        return "\n".join(lines)
    lines.append(f"  answered in {check.latency_s:.2f} s; rationale: {_line(check.rationale)}")
    if check.program is not None:
        lines.append("  program (normalised, never run here):")
        lines += [f"    {terminal_text(line)}" for line in check.program.rstrip("\n").split("\n")]
    elif check.answer is not None:
        lines.append(f"  answer: {_line(check.answer[:400])}")
    lines += _cost_lines(check)
    return "\n".join(lines)


def _cost_lines(check: ModelCheck) -> list[str]:
    cost, spec = check.cost, check.spec
    lines = [
        f"  tokens: {check.prompt_tokens:,} in, {check.completion_tokens:,} out; this call {_usd(cost.call_usd)} "
        f"at ${spec.price_in:g} / ${spec.price_out:g} per million tokens in / out"
    ]
    if spec.price_in == 0 and spec.price_out == 0:
        lines.append("  prices are 0 (a free or local model): budget_usd cannot limit it")
    lines.append(
        f"  one proposal: about {_usd(cost.call_usd)}; reserves up to {_usd(cost.worst_case.usd)} "
        f"({cost.worst_case.tokens:,} tokens: the prompt's estimate + max_tokens {spec.max_tokens:,})"
    )
    run = (
        f"  the run's {cost.proposals:,} LLM proposals (search.budget minus the seeds), all by this model: "
        f"about {_usd(cost.run_usd)}"
    )
    caps = [
        f"budget_usd ${cost.budget_usd:g}" if cost.budget_usd is not None else "",
        f"budget_tokens {cost.budget_tokens:,}" if cost.budget_tokens is not None else "",
    ]
    caps_text = " and ".join(c for c in caps if c)
    if not caps_text:
        lines += [run, "  no budget_usd or budget_tokens: nothing caps the spend but search.budget"]
    elif cost.budget_allows >= cost.proposals:
        lines.append(run + f"; {caps_text} lets all of them through")
    else:
        lines.append(run + f"; {caps_text} stops it after about {cost.budget_allows:,} proposals")
    return lines
