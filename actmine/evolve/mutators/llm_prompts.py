"""The LLM mutator's prompts: the templates, and the chat messages for one call.

The templates are text files in `actmine/evolve/prompts/` (`string.Template` syntax, so code
braces need no escaping); `load_prompts(prompts_dir)` reads them, each replaced by a file of the
same name in `prompts_dir`. `build_prompt` fills them in for one operator: the task, the parent
with its scores per family, a few inspirations and the refusals that recently cost the search most
(`failure_items`, with the rule each broke and a corrected example from `feedback.FIXES`).
"""

from __future__ import annotations

import math
import string
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Sequence

from .base import Failure, LabContext, Parent
from .feedback import NOT_THE_ANSWER, fix_for, reason_code
from .llm_answers import _one_line

PROMPT_FILES = ("system", "task", "mutate", "crossover", "simplify", "inspirations", "failures")


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


def build_prompt(
    templates: dict[str, string.Template],
    operator: str,
    parent: Parent,
    inspirations: Sequence[Parent],
    failures: Sequence[Failure],
    lab: LabContext,
    other: Parent | None = None,
) -> list[dict[str, str]]:
    """The chat messages for one call: the system prompt and the operator's user prompt."""
    pointwise = (
        "Elementwise only: the output at each position must depend only on the input at that "
        "position (no mean, std, sum or sort over the tensor, no batch statistics)."
        if not lab.allow_batch_dependent
        else "Elementwise functions are preferred; batch statistics are allowed but often fail downstream."
    )
    task = templates["task"].substitute(
        hidden=lab.hidden,
        steps=lab.steps,
        families=", ".join(lab.families),
        pointwise_rule=pointwise,
        max_flops=f"{lab.max_flops_per_element:g}",
        max_chars=lab.max_source_chars,
    )
    shown = [p for p in inspirations if other is None or p.source != other.source]
    programs = "\n".join(
        f"## Fitness {_fitness(p.fitness)} (per family: {_families(p.family_log_ratios)})\n"
        f"```python\n{p.source.strip()}\n```"
        for p in shown
    )
    inspiration_text = templates["inspirations"].substitute(programs=programs) if shown else ""
    items = failure_items(failures)
    failure_text = templates["failures"].substitute(items=items) if items else ""
    values = dict(
        task=task,
        parent_fitness=_fitness(parent.fitness),
        parent_rationale=parent.rationale or "(none)",
        parent_families=_families(parent.family_log_ratios),
        parent_source=parent.source.strip(),
        inspirations=inspiration_text,
        failures=failure_text,
    )
    if operator == "crossover":
        assert other is not None
        values.update(
            other_fitness=_fitness(other.fitness),
            other_rationale=other.rationale or "(none)",
            other_families=_families(other.family_log_ratios),
            other_source=other.source.strip(),
        )
    user = templates[operator].substitute(values)
    return [{"role": "system", "content": templates["system"].template.strip()}, {"role": "user", "content": user}]
