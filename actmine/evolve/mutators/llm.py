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
"""

from __future__ import annotations

import ast
import math
import os
import random
import re
import string
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ...language.normalise import normalise
from .base import Failure, LabContext, Parent, Proposal, register_mutator
from .feedback import NOT_THE_ANSWER, fix_for, reason_code
from .spend import Spend, cost_usd, prompt_tokens_estimate, tokens_in, worst_case

OPERATORS = ("mutate", "crossover", "simplify")
PROMPT_FILES = ("system", "task", "mutate", "crossover", "simplify", "inspirations", "failures")
# Outcomes recorded per call: ok, no_code, rate_limited, server_error, timeout, connection_error,
# client_error (and "budget" for a call not made, which is never recorded).


class LLMConfigError(ValueError):
    """A bad `mutator.options` for the llm mutator; the message names the key and the fix."""


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """One model of the ensemble (a `mutator.options.models` entry).

    `price_in` / `price_out` are US dollars per million prompt / completion tokens (0 = free, e.g.
    a local server). `api_key_env` names the environment variable with the key; None for servers
    that need none. `token_parameter` is `max_tokens`, or `max_completion_tokens` for OpenAI's
    reasoning models; `temperature: null` omits the parameter for models that refuse it.
    """

    name: str
    base_url: str | None = None
    api_key_env: str | None = None
    label: str | None = None
    weight: float = 1.0
    temperature: float | None = 0.8
    max_tokens: int = 1024
    token_parameter: str = "max_tokens"
    price_in: float = 0.0
    price_out: float = 0.0

    @property
    def key(self) -> str:
        """The name calls and programs are recorded under."""
        return self.label or self.name

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return cost_usd(prompt_tokens, completion_tokens, self.price_in, self.price_out)


_FIELD_TYPES = {"name": (str,), "base_url": (str, None), "api_key_env": (str, None), "label": (str, None),
                "weight": (float,), "temperature": (float, None), "max_tokens": (int,),
                "token_parameter": (str,), "price_in": (float,), "price_out": (float,)}


def _model_spec(values: Any, where: str) -> ModelSpec:
    """A `ModelSpec` from a config mapping, refusing unknown keys and wrong types by the key's name."""
    if isinstance(values, str):
        values = {"name": values}
    if not isinstance(values, dict):
        raise LLMConfigError(f"{where} must be a mapping (name, base_url, api_key_env, ...), got {values!r}")
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
        raise LLMConfigError(f"unknown key {where}.{unknown[0]}; known keys: {', '.join(_FIELD_TYPES)}")
    kwargs = {}
    for key, value in values.items():
        kinds = _FIELD_TYPES[key]
        if value is None and None in kinds:
            kwargs[key] = None
        elif str in kinds and isinstance(value, str):
            kwargs[key] = value
        elif float in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
            kwargs[key] = float(value)
        elif int in kinds and isinstance(value, int) and not isinstance(value, bool):
            kwargs[key] = value
        else:
            wanted = " or ".join("null" if k is None else {str: "a string", float: "a number",
                                                            int: "an integer"}[k] for k in kinds)
            raise LLMConfigError(f"{where}.{key} must be {wanted}, got {value!r}")
    if "name" not in kwargs:
        raise LLMConfigError(f"{where}.name is missing: the model's name at its endpoint, e.g. gpt-4.1-mini")
    return ModelSpec(**kwargs)


def parse_models(models: Any) -> tuple[ModelSpec, ...]:
    if isinstance(models, str):
        models = [{"name": models}]
    if not isinstance(models, (list, tuple)) or not models:
        raise LLMConfigError("mutator.options.models must list at least one model, e.g. "
                             "[{name: gpt-4.1-mini, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}]")
    specs = []
    for i, entry in enumerate(models):
        spec = _model_spec(entry, f"mutator.options.models[{i}]")
        if not spec.name:
            raise LLMConfigError(f"mutator.options.models[{i}].name must be the model's name at its endpoint")
        if spec.weight < 0 or spec.max_tokens <= 0 or spec.price_in < 0 or spec.price_out < 0:
            raise LLMConfigError(f"mutator.options.models[{i}]: weight, prices must be >= 0 and max_tokens > 0")
        if spec.token_parameter not in ("max_tokens", "max_completion_tokens"):
            raise LLMConfigError(f"mutator.options.models[{i}].token_parameter must be max_tokens or "
                                 "max_completion_tokens")
        if spec.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(spec.api_key_env)):
            raise LLMConfigError(f"mutator.options.models[{i}].api_key_env must be the NAME of an environment "
                                 "variable (e.g. OPENAI_API_KEY), never the key itself")
        specs.append(spec)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise LLMConfigError("mutator.options.models: two models share a name; give one a distinct `label`")
    return tuple(specs)


# ------------------------------------------------------------------------------------------------
# Prompts
# ------------------------------------------------------------------------------------------------

def load_prompts(prompts_dir: str | Path | None = None) -> dict[str, string.Template]:
    """The packaged templates, each replaced by `prompts_dir/NAME.txt` where that file exists."""
    package = resources.files("actmine.evolve") / "prompts"
    templates = {}
    for name in PROMPT_FILES:
        text = (package / f"{name}.txt").read_text(encoding="utf-8")
        if prompts_dir is not None:
            override = Path(prompts_dir) / f"{name}.txt"
            if override.is_file():
                text = override.read_text(encoding="utf-8")
        templates[name] = string.Template(text)
    return templates


def _fitness(value: float | None) -> str:
    return "not scored" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def _families(ratios: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:+.3f}" for k, v in sorted(ratios.items())) or "not available"


def failure_items(failures: Sequence[Failure], shown: int = 5) -> str:
    """The most frequent refusals, each with one of its messages, the rule it broke and a corrected
    example (`feedback.FIXES`); failures of the service (`feedback.NOT_THE_ANSWER`) are left out.
    An example shared by two reasons is written once."""
    relevant = [f for f in failures if reason_code(f.reason) not in NOT_THE_ANSWER]
    counts = Counter(f.reason for f in relevant)
    messages: dict[str, str] = {}
    for f in relevant:
        messages.setdefault(f.reason, f.message)
    lines, examples = [], set()
    for reason, n in counts.most_common(shown):
        lines.append(f"- {reason} ({n}x): {_one_line(messages[reason], 300)}")
        fix = fix_for(reason)
        if fix is None:
            continue
        lines.append(f"  Rule: {fix.rule}")
        if fix.example in examples:
            lines.append("  Corrected example: as above.")
        else:
            examples.add(fix.example)
            lines.append(f"  Corrected example:\n```python\n{fix.example.strip()}\n```")
    return "\n".join(lines)


def build_prompt(templates: dict[str, string.Template], operator: str, parent: Parent,
                 inspirations: Sequence[Parent], failures: Sequence[Failure], lab: LabContext,
                 other: Parent | None = None) -> list[dict[str, str]]:
    """The chat messages for one call: the system prompt and the operator's user prompt."""
    pointwise = ("Elementwise only: the output at each position must depend only on the input at that "
                 "position (no mean, std, sum or sort over the tensor, no batch statistics)."
                 if not lab.allow_batch_dependent else
                 "Elementwise functions are preferred; batch statistics are allowed but often fail downstream.")
    task = templates["task"].substitute(hidden=lab.hidden, steps=lab.steps, families=", ".join(lab.families),
                                        pointwise_rule=pointwise, max_flops=f"{lab.max_flops_per_element:g}",
                                        max_chars=lab.max_source_chars)
    shown = [p for p in inspirations if other is None or p.source != other.source]
    programs = "\n".join(f"## Fitness {_fitness(p.fitness)} (per family: {_families(p.family_log_ratios)})\n"
                         f"```python\n{p.source.strip()}\n```" for p in shown)
    inspiration_text = templates["inspirations"].substitute(programs=programs) if shown else ""
    items = failure_items(failures)
    failure_text = templates["failures"].substitute(items=items) if items else ""
    values = dict(task=task, parent_fitness=_fitness(parent.fitness),
                  parent_rationale=parent.rationale or "(none)", parent_families=_families(parent.family_log_ratios),
                  parent_source=parent.source.strip(), inspirations=inspiration_text, failures=failure_text)
    if operator == "crossover":
        assert other is not None
        values.update(other_fitness=_fitness(other.fitness), other_rationale=other.rationale or "(none)",
                      other_families=_families(other.family_log_ratios), other_source=other.source.strip())
    user = templates[operator].substitute(values)
    return [{"role": "system", "content": templates["system"].template.strip()},
            {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------------------
# Parsing answers
# ------------------------------------------------------------------------------------------------

ENTRY = "activation_function"
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|\Z)", re.S | re.I)
_CODE_START = re.compile(r"^(def |async def |import |from \S+ import |@|[A-Za-z_]\w*\s*(:[^=]+)?=[^=]|#)")


@dataclass(frozen=True)
class ParsedAnswer:
    source: str | None       # the normalised program; None: none could be found (the proposal fails as `no_code`)
    rationale: str
    error: str | None = None
    changes: tuple[str, ...] = ()    # what the normaliser changed in the chosen code, one line each


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _defines_entry(code: str) -> bool:
    return re.search(rf"^\s*def\s+{ENTRY}\s*\(", code, re.M) is not None


def _unfenced_program(text: str) -> str | None:
    """The code around `def activation_function` in an answer without fences."""
    lines = text.splitlines()
    entry = next((i for i, line in enumerate(lines) if re.match(rf"\s*def\s+{ENTRY}\s*\(", line)), None)
    if entry is None:
        return None
    start = entry
    while start > 0 and (not lines[start - 1].strip() or lines[start - 1].startswith((" ", "\t"))
                         or _CODE_START.match(lines[start - 1])):
        start -= 1
    end = entry + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t"))
                                or _CODE_START.match(lines[end])):
        end += 1
    # trim prose picked up at either end until the block parses
    for lo in range(start, entry + 1):
        for hi in range(end, entry, -1):
            code = "\n".join(lines[lo:hi]).strip("\n")
            if _parses(code) and _defines_entry(code):
                return code + "\n"
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip().strip("#*: ").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _defines_entry_at_top(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == ENTRY for node in tree.body)


def parse_response(text: str | None) -> ParsedAnswer:
    """The program and rationale in a model's answer.

    Thinking sections are dropped, and each fenced code block is normalised
    (`actmine.language.normalise`) before it is judged: of the blocks, the last one whose
    normalised form parses and defines `activation_function` at its top level wins (models often
    show the parent first; a block whose only problem is boilerplate the normaliser removes, such
    as a `__main__` self-test or an nn.Module wrapper it turns into a function, still counts).
    Failing that, the last block that mentions `def activation_function` is taken anyway, so that
    the policy says what is wrong with it (a syntax error, a method instead of a function).
    Without fences the code around `def activation_function` is taken. The rationale is the prose
    before the program (or after it, when there is none before), as one line. `changes` lists what
    the normaliser changed in the chosen code.
    """
    if not text or not text.strip():
        return ParsedAnswer(None, "", "the answer was empty")
    visible = _THINK.sub("", text)
    if "</think>" in visible:      # an opening tag cut off by the server's chat template
        visible = visible.rsplit("</think>", 1)[1]
    blocks = [(m.start(), m.end(), normalise(m.group(2).strip("\n") + "\n")) for m in _FENCE.finditer(visible)
              if m.group(1).lower() in ("", "python", "py", "python3", "pytorch")]
    chosen = next((block for block in reversed(blocks) if _defines_entry_at_top(block[2].source)), None)
    if chosen is None:   # one that defines it but does not parse, or not at the top level: the policy says why
        chosen = next((block for block in reversed(blocks) if _defines_entry(block[2].source)), None)
    if chosen is not None:
        start, end, normalised = chosen
        before, after = visible[:start], visible[end:]
        rationale = _one_line(_FENCE.sub(" ", before)) or _one_line(_FENCE.sub(" ", after))
        return ParsedAnswer(normalised.source, rationale or "(no rationale given)", changes=normalised.changes)
    code = _unfenced_program(visible)
    if code is not None:
        rationale = _one_line(visible.split(code.strip().splitlines()[0])[0])
        normalised = normalise(code)
        return ParsedAnswer(normalised.source, rationale or "(no rationale given)", changes=normalised.changes)
    why = "no code block" if not blocks else f"no code block defines {ENTRY}(x)"
    return ParsedAnswer(None, _one_line(visible), f"{why} in the answer")


# ------------------------------------------------------------------------------------------------
# Choosing a model: fixed weights or a bandit on improvement per unit cost
# ------------------------------------------------------------------------------------------------

@dataclass
class ModelStats:
    children: int = 0            # evaluated proposals (refusals count, with reward 0)
    reward: float = 0.0          # summed improvement over the parent's fitness (>= 0 each)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class ModelChooser:
    """Which model writes the next proposal.

    `weights`: drawn by the configured weights. `bandit`: UCB1 on *improvement per unit cost* —
    a model's value is its mean reward (a child's fitness gain over its parent, 0 when the child
    is worse or refused) divided by its mean cost per call (US dollars when every model has a
    price, else thousands of tokens), plus an exploration bonus; each model is tried
    `min_trials` times first.
    """

    def __init__(self, models: Sequence[ModelSpec], mode: str = "weights", exploration: float = 1.0,
                 min_trials: int = 3):
        self.models = list(models)
        self.mode = mode
        self.exploration = exploration
        self.min_trials = min_trials
        self.stats = {m.key: ModelStats() for m in models}
        self.disabled: dict[str, str] = {}
        self._lock = threading.Lock()

    def available(self) -> list[ModelSpec]:
        return [m for m in self.models if m.key not in self.disabled]

    def _unit_cost(self, stats: ModelStats) -> float:
        priced = all(m.price_in > 0 or m.price_out > 0 for m in self.models)
        if stats.calls == 0:
            return 1.0
        if priced:
            return max(stats.cost / stats.calls, 1e-9)
        return max((stats.prompt_tokens + stats.completion_tokens) / stats.calls / 1000.0, 1e-9)

    def values(self) -> dict[str, float]:
        """Each model's estimated improvement per unit cost (the bandit's exploitation term)."""
        with self._lock:
            return {m.key: (self.stats[m.key].reward / self.stats[m.key].children
                            / self._unit_cost(self.stats[m.key])) if self.stats[m.key].children else 0.0
                    for m in self.models}

    def choose(self, rng: random.Random) -> ModelSpec | None:
        models = self.available()
        if not models:
            return None
        if self.mode == "weights" or len(models) == 1:
            weights = [m.weight for m in models]
            return rng.choices(models, weights=weights)[0] if sum(weights) > 0 else rng.choice(models)
        with self._lock:
            untried = [m for m in models if self.stats[m.key].children < self.min_trials]
            if untried:
                return rng.choice(untried)
            total = sum(self.stats[m.key].children for m in models)
        values = self.values()
        scale = max(max(values[m.key] for m in models), 1e-12)
        def ucb(m: ModelSpec) -> float:
            n = self.stats[m.key].children
            return values[m.key] + self.exploration * scale * math.sqrt(2 * math.log(total) / n)
        best = max(ucb(m) for m in models)
        return rng.choice([m for m in models if ucb(m) >= best - 1e-12])

    def record_call(self, call: "LLMCall") -> None:
        with self._lock:
            stats = self.stats.setdefault(call.model, ModelStats())
            stats.calls += 1
            stats.prompt_tokens += call.prompt_tokens
            stats.completion_tokens += call.completion_tokens
            stats.cost += call.cost

    def record_child(self, model: str, fitness: float | None, parent_fitness: float | None) -> None:
        reward = 0.0
        if fitness is not None and math.isfinite(fitness):
            reward = max(0.0, fitness - (parent_fitness if parent_fitness is not None else 0.0))
        with self._lock:
            stats = self.stats.setdefault(model, ModelStats())
            stats.children += 1
            stats.reward += reward


# ------------------------------------------------------------------------------------------------
# The mutator
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LLMCall:
    """One HTTP attempt, as recorded in the run's `llm_calls` table."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    outcome: str = "ok"
    error: str | None = None


class LLMMutator:
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

    def __init__(self, models: Any = None, selection: str = "weights", exploration: float = 1.0,
                 operators: dict[str, float] | None = None, concurrency: int = 4, timeout_s: float = 120.0,
                 max_retries: int = 4, backoff_s: float = 2.0, max_backoff_s: float = 60.0,
                 budget_usd: float | None = None, budget_tokens: int | None = None, failures_shown: int = 30,
                 prompts_dir: str | None = None):
        if models is None:
            raise LLMConfigError("the llm mutator needs mutator.options.models (see examples/openai.yaml)")
        self.models = parse_models(models)
        if selection not in ("weights", "bandit"):
            raise LLMConfigError(f"mutator.options.selection must be weights or bandit, got {selection!r}")
        operators = dict(operators) if operators is not None else {"mutate": 0.7, "crossover": 0.2, "simplify": 0.1}
        unknown = sorted(set(operators) - set(OPERATORS))
        if unknown or not operators or any(not isinstance(v, (int, float)) or v < 0 for v in operators.values()) \
                or sum(operators.values()) <= 0:
            raise LLMConfigError(f"mutator.options.operators must map some of {', '.join(OPERATORS)} to "
                                 f"non-negative probabilities, got {operators!r}")
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
        for spec in self.models:      # fail at start, not mid-run, when a key is missing
            self._api_key(spec)

    # -- the controller's hooks ------------------------------------------------------------
    def setup(self, lab: LabContext) -> None:
        self.lab = lab

    def restore(self, calls: Sequence[dict[str, Any]], children: Sequence[tuple[str, float | None, float | None]],
                failures: Sequence[Failure]) -> None:
        """Continue a resumed run: its past spend counts against the caps, its history feeds the bandit."""
        for row in calls:
            call = LLMCall(row.get("model") or "", int(row.get("prompt_tokens") or 0),
                           int(row.get("completion_tokens") or 0), float(row.get("latency_s") or 0),
                           float(row.get("cost") or 0), row.get("outcome") or "ok")
            self.spend.add(call.cost, call.prompt_tokens + call.completion_tokens)
            self.chooser.record_call(call)
        for model, fitness, parent_fitness in children:
            self.chooser.record_child(model, fitness, parent_fitness)
        for failure in failures:
            self.failures.append(failure)

    def observe(self, proposal: Proposal, fitness: float | None, parent_fitness: float | None,
                failure: Failure | None) -> None:
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

    def usage(self) -> dict[str, Any]:
        with self.chooser._lock:
            per_model = {k: {"calls": s.calls, "tokens": s.prompt_tokens + s.completion_tokens,
                             "cost": round(s.cost, 6), "children": s.children, "reward": round(s.reward, 4)}
                         for k, s in self.chooser.stats.items()}
        return {"usd": round(self.spend.usd, 6), "tokens": self.spend.tokens, "budget_usd": self.spend.budget_usd,
                "budget_tokens": self.spend.budget_tokens, "models": per_model}

    # -- proposing -------------------------------------------------------------------------
    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        if parent is None:   # no seed survived: start from ReLU
            parent = Parent(source="def activation_function(x):\n    return torch.relu(x)\n", fitness=0.0,
                            rationale="ReLU, the reference")
        operator = rng.choices(list(self.operators), weights=list(self.operators.values()))[0]
        other = inspirations[0] if operator == "crossover" and inspirations else None
        if operator == "crossover" and other is None:
            operator = "mutate"
        with self._failures_lock:
            failures = list(self.failures)
        messages = build_prompt(self.templates, operator, parent, inspirations, failures, self.lab, other)
        spec = self.chooser.choose(rng)
        if spec is None:
            return Proposal("", self.exhausted() or "no model available", self.name, None,
                            failure={"code": "budget", "message": self.exhausted() or "no model available"})
        text, calls = self._complete(spec, messages, rng)
        tag = f"[{operator}] "
        if text is None:
            last = calls[-1] if calls else None
            if last is not None and last.outcome == "budget":
                return Proposal("", last.error or "", self.name, spec.key, calls=tuple(calls[:-1]),
                                failure={"code": "budget", "message": last.error or ""})
            message = last.error if last is not None else "no call was made"
            return Proposal("", tag + f"the model gave no answer ({message})", self.name, spec.key,
                            calls=tuple(c for c in calls if c.outcome != "budget"),
                            failure={"code": "llm_unavailable", "message": message})
        parsed = parse_response(text)
        if parsed.source is None:   # the raw answer is the source: there is no program to show instead
            return Proposal(text, tag + (parsed.rationale or "(no rationale)"), self.name, spec.key,
                            calls=tuple(calls), failure={"code": "no_code", "message": parsed.error or "no code"},
                            original_answer=text)
        return Proposal(parsed.source, tag + parsed.rationale, self.name, spec.key, calls=tuple(calls),
                        original_answer=text, normalisation_changes=parsed.changes)

    # -- HTTP ------------------------------------------------------------------------------
    def _api_key(self, spec: ModelSpec) -> str:
        if spec.api_key_env is None:
            return "no-key"          # local servers (llama.cpp, vLLM, Ollama) accept anything
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise LLMConfigError(f"model {spec.key!r}: environment variable {spec.api_key_env} is not set; "
                                 f"export {spec.api_key_env}=… (the key is never read from the config file)")
        return key

    def _client(self, spec: ModelSpec):
        with self._client_lock:
            client = self._clients.get(spec.key)
            if client is None:
                from openai import OpenAI

                # The client's own retries are off: every attempt is made (and recorded) here.
                client = OpenAI(api_key=self._api_key(spec), base_url=spec.base_url, timeout=self.timeout_s,
                                max_retries=0)
                self._clients[spec.key] = client
            return client

    def _complete(self, spec: ModelSpec, messages: list[dict[str, str]],
                  rng: random.Random) -> tuple[str | None, list[LLMCall]]:
        """The answer's text (None when every attempt failed) and one `LLMCall` per attempt."""
        import openai

        prompt_estimate = prompt_tokens_estimate(messages)
        # the worst case (prompt + a full max_tokens completion): concurrent calls cannot overshoot the cap
        reserve = worst_case(prompt_estimate, spec.max_tokens, spec.price_in, spec.price_out)
        calls: list[LLMCall] = []
        kwargs: dict[str, Any] = {spec.token_parameter: spec.max_tokens}
        if spec.temperature is not None:
            kwargs["temperature"] = spec.temperature
        for attempt in range(self.max_retries + 1):
            if not self.spend.reserve(reserve.usd, reserve.tokens):
                calls.append(LLMCall(spec.key, outcome="budget", error=self.spend.exhausted))
                return None, calls
            started = time.monotonic()
            retry_after = None
            spent_usd, spent_tokens = 0.0, 0
            try:   # the reservation is settled whatever happens: waiting calls depend on it
                try:
                    response = self._client(spec).chat.completions.create(model=spec.name, messages=messages,
                                                                          **kwargs)
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    outcome = "rate_limited" if status == 429 else "server_error" if status >= 500 else "client_error"
                    call = LLMCall(spec.key, latency_s=time.monotonic() - started, outcome=outcome,
                                   error=f"HTTP {status}: {_one_line(str(exc.message), 200)}")
                    retry_after = _retry_after(exc.response)
                except openai.APITimeoutError:
                    call = LLMCall(spec.key, latency_s=time.monotonic() - started, outcome="timeout",
                                   error=f"no answer within {self.timeout_s:g} s")
                except openai.APIConnectionError as exc:
                    call = LLMCall(spec.key, latency_s=time.monotonic() - started, outcome="connection_error",
                                   error=_one_line(f"{exc}: {exc.__cause__ or ''}", 200))
                else:
                    usage = getattr(response, "usage", None)
                    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else prompt_estimate
                    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
                    text = response.choices[0].message.content if response.choices else None
                    if not usage:     # no usage reported: count the answer's length instead
                        completion_tokens = tokens_in(text)
                    call = LLMCall(spec.key, prompt_tokens, completion_tokens, time.monotonic() - started,
                                   spec.cost(prompt_tokens, completion_tokens),
                                   "ok" if parse_response(text).source else "no_code")
                    spent_usd, spent_tokens = call.cost, prompt_tokens + completion_tokens
                    self.chooser.record_call(call)
                    calls.append(call)
                    return text or "", calls
            finally:
                self.spend.settle(reserve.usd, reserve.tokens, spent_usd, spent_tokens)
            self.chooser.record_call(call)
            calls.append(call)
            if call.outcome == "client_error":
                if call.error and call.error.startswith(("HTTP 401", "HTTP 403", "HTTP 404")):
                    # a wrong key, model name or URL will not fix itself: stop using this model
                    self.chooser.disabled[spec.key] = call.error
                return None, calls
            if attempt < self.max_retries:
                delay = retry_after if retry_after is not None else self.backoff_s * 2 ** attempt
                time.sleep(min(self.max_backoff_s, delay * (1 + 0.25 * rng.random())))
        return None, calls


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


register_mutator("llm", LLMMutator)
