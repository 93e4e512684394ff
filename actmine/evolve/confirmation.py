"""Selection that resists noise: when a program is scored again before it may change a decision.

A search keeps the best of hundreds of noisy estimates, so whatever looks best after one sample of
tasks is, on average, luckier than it is good (the winner's curse). The rule:

- A program's **score** is the lower confidence bound of its fitness, mean − z·se (`Estimate.lcb`);
  grids, the top list, `best` and parent ranks compare scores, so a program scored on one sample
  does not outrank one scored on three unless its lead is larger than its noise.
- A new program that **could change a decision** is **unsettled**: it enters no grid and no top list,
  and is scored on fresh samples (confirmation rounds) first. The decision is entry to the run's top
  list (`search.heldout_top` programs: the parents exploitation prefers most, and the list the
  validation chooses the winner from); it could change when the program's *projected* score — its
  mean minus z times the standard error it would have after all `rounds` extra rounds, were its mean
  to hold (se·√(rounds done ÷ (rounds + 1))) — beats the score of the list's last place, or while the
  list is not full. A program whose projected score cannot get there settles at once: confirming it
  could not promote it. After each round the pooled estimate is checked again; the program settles
  as soon as its projection no longer beats the bar (a lucky first sample stops there), or after
  `rounds` extra rounds. A settled program is offered to its cell by its score.
- **Racing** (`tasks.first_sample`): the first round may be smaller than the later ones. Most
  proposals cannot reach the top list, and a small first sample is enough to see that; the few
  that could are confirmed on full rounds, and the projection above counts tasks, not rounds.
- Grid cells compare scores too, but a program that cannot reach the top list settles at once: most
  cells are held by programs no decision depends on, and confirming every newcomer would triple the
  cost of a search (measured: 88 confirmations for 89 proposals when cell incumbents were bars too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..lab.estimate import Estimate


@dataclass(frozen=True)
class ConfirmationRule:
    """`rounds`: extra rounds at most; `z`: the bound's multiple of the standard error;
    `first_share`: the first round's size as a share of a later round's (racing: a small first
    sample, `tasks.first_sample` ÷ `tasks.sample`; 1 when every round has the same size)."""

    rounds: int = 2
    z: float = 1.0
    first_share: float = 1.0

    @classmethod
    def from_config(cls, config) -> "ConfirmationRule":  # noqa: ANN001 (a Config; config.py imports evolve)
        """The rule of a run's `tasks` section: `confirm_rounds`, `lcb_z`, `first_sample` ÷ `sample`."""
        tasks = config.tasks
        first = tasks.first_sample
        return cls(tasks.confirm_rounds, tasks.lcb_z, first / tasks.sample if first is not None else 1.0)

    def score(self, estimate: Estimate) -> float:
        return estimate.lcb(self.z)

    def needs_round(self, estimate: Estimate, rounds_done: int, bars: Sequence[float | None]) -> bool:
        """True when the program should be scored on another fresh sample before it settles.

        `rounds_done` counts its scored rounds (1 after the first); `bars` are the scores it would
        displace (None: nothing there, e.g. an empty cell or a top list that is not full)."""
        if rounds_done > self.rounds:
            return False
        relevant = [b for b in bars if b is not None]
        return bool(relevant) and self.projected_score(estimate, rounds_done) > min(relevant)

    def projected_score(self, estimate: Estimate, rounds_done: int) -> float:
        """The score the program would have after all its rounds if its mean held: the standard error
        shrinks with the square root of the tasks pooled (the first round `first_share` of a later
        round's size, the later rounds alike)."""
        done = self.first_share + max(rounds_done - 1, 0)
        return estimate.mean - self.z * estimate.se * (done / (self.first_share + self.rounds)) ** 0.5
