"""The LLM mutator's models: their configuration, the record of a call to one, and which one to ask.

`ModelSpec` is one model of the ensemble (`mutator.options.models`), read by `parse_models`, which
refuses a bad entry with an `LLMConfigError` naming the key and the fix. `LLMCall` is one HTTP
attempt as the run records it. `ModelChooser` picks the model for the next proposal, by fixed
weights or by a bandit on improvement per unit cost, from the calls and children it is told of.
`actmine.evolve.mutators.llm` uses all of them; they are importable from there too.
"""

from __future__ import annotations

import math
import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from .spend import cost_usd


class LLMConfigError(ValueError):
    """A bad `mutator.options` for the llm mutator; the message names the key and the fix."""


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


_FIELD_TYPES = {
    "name": (str,),
    "base_url": (str, None),
    "api_key_env": (str, None),
    "label": (str, None),
    "weight": (float,),
    "temperature": (float, None),
    "max_tokens": (int,),
    "token_parameter": (str,),
    "price_in": (float,),
    "price_out": (float,),
}


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
            wanted = " or ".join(
                "null" if k is None else {str: "a string", float: "a number", int: "an integer"}[k] for k in kinds
            )
            raise LLMConfigError(f"{where}.{key} must be {wanted}, got {value!r}")
    if "name" not in kwargs:
        raise LLMConfigError(f"{where}.name is missing: the model's name at its endpoint, e.g. gpt-4.1-mini")
    return ModelSpec(**kwargs)


def parse_models(models: Any) -> tuple[ModelSpec, ...]:
    if isinstance(models, str):
        models = [{"name": models}]
    if not isinstance(models, (list, tuple)) or not models:
        raise LLMConfigError(
            "mutator.options.models must list at least one model, e.g. "
            "[{name: gpt-4.1-mini, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}]"
        )
    specs = []
    for i, entry in enumerate(models):
        spec = _model_spec(entry, f"mutator.options.models[{i}]")
        if not spec.name:
            raise LLMConfigError(f"mutator.options.models[{i}].name must be the model's name at its endpoint")
        if spec.weight < 0 or spec.max_tokens <= 0 or spec.price_in < 0 or spec.price_out < 0:
            raise LLMConfigError(f"mutator.options.models[{i}]: weight, prices must be >= 0 and max_tokens > 0")
        if spec.token_parameter not in ("max_tokens", "max_completion_tokens"):
            raise LLMConfigError(
                f"mutator.options.models[{i}].token_parameter must be max_tokens or max_completion_tokens"
            )
        if spec.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(spec.api_key_env)):
            raise LLMConfigError(
                f"mutator.options.models[{i}].api_key_env must be the NAME of an environment "
                "variable (e.g. OPENAI_API_KEY), never the key itself"
            )
        specs.append(spec)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise LLMConfigError("mutator.options.models: two models share a name; give one a distinct `label`")
    return tuple(specs)


# Outcomes recorded per call: ok, no_code, rate_limited, server_error, timeout, connection_error,
# client_error, cancelled (the search stopped during the call; "budget" is a call not made, never recorded).
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


@dataclass
class ModelStats:
    children: int = 0  # evaluated proposals (refusals count, with reward 0)
    reward: float = 0.0  # summed improvement over the parent's fitness (>= 0 each)
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

    def __init__(
        self, models: Sequence[ModelSpec], mode: str = "weights", exploration: float = 1.0, min_trials: int = 3
    ):
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
            return {
                m.key: (self.stats[m.key].reward / self.stats[m.key].children / self._unit_cost(self.stats[m.key]))
                if self.stats[m.key].children
                else 0.0
                for m in self.models
            }

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
