"""Plain progress lines where a search's output is not a terminal (`ProgressLines`): a line at every
tenth of the budget, at most every `interval_s` seconds in between while the count moves, nothing
while it stands still, and text of models and workers escaped."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.live_view import ProgressLines, SearchState, progress_line
from actmine.evolve.program_records import ProgramRecord


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def printed_counts(log: io.StringIO) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in log.getvalue().splitlines()]


def test_a_line_at_each_tenth_of_the_budget_when_updates_are_quick():
    state, clock, log = SearchState(budget=300), Clock(), io.StringIO()
    lines = ProgressLines(state, log, interval_s=30.0, clock=clock)
    for evaluated in range(1, 301):
        state.evaluated, clock.now = evaluated, evaluated * 0.05  # 15 s in all: never 30 s between lines
        lines.update()
    assert printed_counts(log) == list(range(30, 301, 30))


def test_a_line_every_interval_between_tenths_and_none_while_nothing_moves():
    state, clock, log = SearchState(budget=1000), Clock(), io.StringIO()
    lines = ProgressLines(state, log, interval_s=30.0, clock=clock)
    state.evaluated, clock.now = 5, 31.0
    lines.update()  # 31 s since the start and the count moved: a line
    clock.now = 100.0
    lines.update()  # the count stood still: nothing, however long
    state.evaluated, clock.now = 6, 110.0
    lines.update()  # moved, 79 s after the last line: a line
    state.evaluated, clock.now = 7, 120.0
    lines.update()  # moved, but only 10 s after the last line and no tenth passed: nothing
    assert printed_counts(log) == [5, 6]


def test_a_resumed_run_says_nothing_until_it_moves():
    state, clock, log = SearchState(budget=100, evaluated=40), Clock(), io.StringIO()
    lines = ProgressLines(state, log, clock=clock)
    clock.now = 500.0
    lines.update()
    assert log.getvalue() == ""
    state.evaluated = 41
    lines.update()
    assert printed_counts(log) == [41]


@settings(max_examples=50, deadline=None)
@given(budget=st.integers(1, 2000), steps=st.lists(st.integers(0, 40), max_size=80))
def test_counts_only_rise_and_every_tenth_passed_is_printed(budget, steps):
    state, clock, log = SearchState(budget=budget), Clock(), io.StringIO()
    lines = ProgressLines(state, log, interval_s=1e9, clock=clock)  # only the tenths print
    for step in steps:
        state.evaluated = min(budget, state.evaluated + step)
        lines.update()
    counts, tenth = printed_counts(log), max(1, budget // 10)
    assert counts == sorted(set(counts))
    assert len(counts) == len({c // tenth for c in counts})  # one line per tenth reached
    assert state.evaluated // tenth == 0 or (counts and counts[-1] // tenth == state.evaluated // tenth)


def test_the_line_escapes_what_a_model_wrote():
    record = ProgramRecord(
        run_id=1,
        proposal_index=3,
        source="x",
        id=7,
        fitness=0.25,
        fitness_se=0.05,
        rounds=2,
        rationale="\x1b]0;owned\x07",
    )
    state = SearchState(budget=10, evaluated=3, top=[record], failures={"probes:\x1b[31m": 2}, unsettled=1)
    line = progress_line(state)
    assert line.startswith("evaluated 3/10 · ") and "best #7 +0.250 ± 0.050 (2 rounds)" in line
    assert "1 waiting for confirmation · 2 refused" in line and "\x1b" not in line


def test_a_live_search_writes_no_plain_lines(tmp_path):
    """On a terminal the rich view shows everything; the plain lines are for a log or a pipe."""
    from actmine.config import Config
    from actmine.evolve.controller import Search

    log = io.StringIO()
    assert Search(Config(), tmp_path / "run", live=True, log=log).log is None
    assert Search(Config(), tmp_path / "run", live=False, log=log).log is log
