"""What a running search shows on the terminal: its state and the rich live view of it.

`SearchState` is what the controller updates as results arrive; `render` draws it (progress, LLM
spend, confirmation rounds, the top 5, the generalisation gap, failures by reason). Where the output
is not a terminal (a log file, a pipe), `ProgressLines` writes one plain line now and then instead.
Every text a model, a worker or the database wrote goes through `terminal_text` and rich's `Text`,
never markup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from ..terminal import terminal_text
from .database import ProgramRecord


@dataclass
class SearchState:
    """What the live view shows; updated by the controller as results arrive."""

    budget: int
    evaluated: int = 0
    started: float = field(default_factory=time.monotonic)
    busy_seconds: float = 0.0  # summed evaluation time of finished work (for idle fraction)
    capacity: int = 1
    failures: dict[str, int] = field(default_factory=dict)
    top: list[ProgramRecord] = field(default_factory=list)
    last: str = ""
    llm: dict[str, Any] = field(default_factory=dict)  # the LLM mutator's spend, when there is one
    rounds: dict[str, int] = field(default_factory=dict)  # scored rounds by kind (search, confirm, pooled)
    unsettled: int = 0  # programs waiting for confirmation
    gap: dict[str, Any] = field(default_factory=dict)  # the latest validation of the best

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.evaluated / elapsed if elapsed > 0 else 0.0


def progress_line(state: SearchState) -> str:
    """One plain line of a search's progress: evaluations, rate, the best program, what waits."""
    line = f"evaluated {state.evaluated}/{state.budget} · {state.rate():.2f} evals/s"
    if state.top:
        best = state.top[0]
        line += f" · best #{best.id} {best.fitness:+.3f} ± {best.fitness_se or 0:.3f} ({best.rounds} rounds)"
    line += f" · {state.unsettled} waiting for confirmation · {sum(state.failures.values())} refused"
    return terminal_text(line, keep_newlines=False)


class ProgressLines:
    """A search's progress as plain lines on a stream that is not a terminal (`tail -f` on a log):
    a line whenever the evaluations pass another tenth of the budget, and at most every
    `interval_s` seconds in between while they move; nothing while nothing changes."""

    def __init__(
        self,
        state: SearchState,
        stream: TextIO,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.state, self.stream, self.interval_s, self.clock = state, stream, interval_s, clock
        self._printed = state.evaluated  # a resumed run says nothing until it moves
        self._printed_at = clock()

    def __enter__(self) -> "ProgressLines":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def update(self, _renderable: object = None) -> None:
        evaluated, now = self.state.evaluated, self.clock()
        tenth = max(1, self.state.budget // 10)
        passed_a_tenth = evaluated // tenth > self._printed // tenth
        if evaluated != self._printed and (passed_a_tenth or now - self._printed_at >= self.interval_s):
            print(progress_line(self.state), file=self.stream, flush=True)
            self._printed, self._printed_at = evaluated, now


def live_view(state: SearchState, live: bool, log: TextIO | None = None):
    """A rich Live display of `render(state)`; without `live`, plain `ProgressLines` on `log`, or a
    quiet stand-in when there is no `log` either."""
    from contextlib import nullcontext

    from rich.live import Live

    if not live and log is not None:
        return ProgressLines(state, log)
    if not live:

        class _Quiet(nullcontext):
            def update(self, *_):
                pass

        return _Quiet()
    return Live(render(state), refresh_per_second=2, transient=False)


def render(state: SearchState):
    """The live view: progress, LLM spend, rounds, the top 5, the generalisation gap, failures."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    # Text, not markup, and control characters escaped (`terminal_text`): rationales, model names
    # and reason codes are text a model or a worker wrote.
    header = Text(
        f"evaluated {state.evaluated}/{state.budget}  ·  {state.rate():.2f} evals/s  ·  "
        f"{state.capacity} workers  ·  last: {terminal_text(state.last, keep_newlines=False)}"
    )
    if state.llm:
        calls = sum(m["calls"] for m in state.llm["models"].values())
        cap = f" of ${state.llm['budget_usd']:g}" if state.llm.get("budget_usd") is not None else ""
        tokens_cap = f" of {state.llm['budget_tokens']:,}" if state.llm.get("budget_tokens") is not None else ""
        header.append(
            f"\nLLM: {calls} calls  ·  {state.llm['tokens']:,}{tokens_cap} tokens  ·  ${state.llm['usd']:.4f}{cap}"
        )
    rounds = state.rounds
    header.append(
        f"\nrounds: {rounds.get('search', 0)} first, {rounds.get('confirm', 0)} confirmations, "
        f"{rounds.get('pooled', 0)} pooled  ·  {state.unsettled} waiting for confirmation"
    )
    top = Table(title="top 5 (by score = fitness − z·se)", expand=False)
    for column in ("id", "fitness ± se", "rounds", "mutator", "rationale"):
        top.add_column(column, overflow="ellipsis", no_wrap=True, max_width=70 if column == "rationale" else None)
    for record in state.top:
        top.add_row(
            str(record.id),
            f"{record.fitness:+.3f} ± {record.fitness_se or 0:.3f}",
            str(record.rounds),
            Text(terminal_text(record.mutator or "", False)),
            Text(terminal_text(record.rationale or "", keep_newlines=False)),
        )
    failures = Table(title="failures by reason", expand=False)
    failures.add_column("stage:code")
    failures.add_column("count", justify="right")
    for reason, count in sorted(state.failures.items(), key=lambda kv: -kv[1])[:6]:
        failures.add_row(Text(terminal_text(reason, keep_newlines=False)), str(count))
    parts = [header, ProgressBar(total=state.budget, completed=state.evaluated, width=60), top]
    if state.gap:
        parts.append(gap_table(state.gap))
    return Group(*parts, failures)


def gap_table(gap: dict[str, Any]):
    """The best program's search estimate beside its validation score, overall and per family."""
    from rich.table import Table

    table = Table(
        title=f"generalisation gap: program {gap['program_id']} (validated at {gap['evaluated']})", expand=False
    )
    for column in ("", "search", "validation", "gap"):
        table.add_column(column, justify="right" if column else "left")

    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:+.3f}"

    search, validation = gap.get("search_fitness"), gap.get("fitness")
    table.add_row(
        "fitness",
        number(search),
        number(validation),
        number(None if search is None or validation is None else search - validation),
    )
    search_families = gap["result"].get("search_families", {})
    for family, log_ratio in sorted(gap["result"].get("families", {}).items()):
        mine = search_families.get(family)
        table.add_row(
            terminal_text(str(family), False),
            number(None if mine is None else -mine),
            number(-log_ratio),
            number(None if mine is None else log_ratio - mine),
        )
    return table
