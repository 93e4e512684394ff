"""The LLM mutator's spend accounting: a hard cap on US dollars and tokens over a whole run.

Each call first *reserves* its worst case (`worst_case`: the prompt's estimated tokens plus a full
`max_tokens` completion, priced at the model's rates) with `Spend.reserve`, and `Spend.settle`
replaces the reservation by the call's real usage when it returns. Reserving the worst case, not
an expected cost, is what keeps concurrent calls from overshooting the cap: the sum of what has
been spent and what is reserved never exceeds it. A reservation that does not fit waits while
other calls are in flight (they usually cost far less than reserved); with nothing in flight it is
refused, and `Spend.exhausted` says why, for good.

Token counts of prompts are estimated from their length (`CHARS_PER_TOKEN`), deliberately low, so
that the estimate errs on the side of reserving too much.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Mapping

CHARS_PER_TOKEN = 3.0  # a deliberately low estimate, so that budget reservations err on the safe side
PROMPT_OVERHEAD_TOKENS = 16  # the chat template's own tokens around the messages
PER_MILLION = 1e6  # prices are US dollars per million tokens


def tokens_in(text: str | None) -> int:
    """The estimated number of tokens of ``text`` (its length / `CHARS_PER_TOKEN`, rounded down)."""
    return int(len(text or "") / CHARS_PER_TOKEN)


def prompt_tokens_estimate(messages: Iterable[Mapping[str, str]]) -> int:
    """The estimated prompt tokens of chat ``messages``: their contents' tokens plus the template's."""
    return tokens_in("".join(m["content"] for m in messages)) + PROMPT_OVERHEAD_TOKENS


def cost_usd(prompt_tokens: int, completion_tokens: int, price_in: float, price_out: float) -> float:
    """What a call costs in US dollars, at ``price_in`` / ``price_out`` dollars per million prompt /
    completion tokens."""
    return (prompt_tokens * price_in + completion_tokens * price_out) / PER_MILLION


@dataclass(frozen=True)
class Reservation:
    """What one call reserves before it is made: dollars and tokens."""

    usd: float
    tokens: int


def worst_case(prompt_tokens: int, max_tokens: int, price_in: float, price_out: float) -> Reservation:
    """The most one call can cost: its prompt and a completion of the full ``max_tokens``.

    Reserving less (the prompt alone, say) lets concurrent or successive calls spend past the cap:
    the completion is usually the dearer part.
    """
    return Reservation(cost_usd(prompt_tokens, max_tokens, price_in, price_out), prompt_tokens + max_tokens)


class Spend:
    """Spent and reserved dollars and tokens, thread-safe.

    A call first reserves its worst case. If that does not fit under the caps while other calls
    are in flight, it waits for them to settle (they usually cost far less than reserved); if it
    does not fit with nothing in flight, no call is made and `exhausted` says why. A reservation
    is replaced by the real usage when its call returns. A cap of None is no cap.
    """

    def __init__(self, budget_usd: float | None = None, budget_tokens: int | None = None):
        self.budget_usd = budget_usd
        self.budget_tokens = budget_tokens
        self.usd = 0.0
        self.tokens = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._in_flight = 0  # reservations not yet settled (counted: float sums don't return to 0)
        self.exhausted: str | None = None
        self._settled = threading.Condition()

    @property
    def reserved(self) -> Reservation:
        """What the calls in flight have reserved together."""
        with self._settled:
            return Reservation(self._reserved_usd, self._reserved_tokens)

    @property
    def in_flight(self) -> int:
        """How many reservations are not yet settled."""
        with self._settled:
            return self._in_flight

    def _fits(self, usd: float, tokens: int) -> bool:
        return (self.budget_usd is None or self.usd + self._reserved_usd + usd <= self.budget_usd) and (
            self.budget_tokens is None or self.tokens + self._reserved_tokens + tokens <= self.budget_tokens
        )

    def _exhaustion(self, usd: float, tokens: int) -> str:
        """Why a reservation of ``usd`` and ``tokens`` can never fit (nothing is in flight)."""
        if self.budget_usd is not None and self.usd + usd > self.budget_usd:
            return (
                f"LLM budget reached: ${self.usd:.4f} spent of ${self.budget_usd:g} "
                f"(the next call could cost up to ${usd:.4f})"
            )
        return (
            f"LLM token budget reached: {self.tokens:,} used of {self.budget_tokens:,} "
            f"(the next call could use up to {tokens:,})"
        )

    def reserve(self, usd: float, tokens: int) -> bool:
        """Reserve one call's worst case; False (and `exhausted` set) when it can never fit.

        Blocks while it does not fit and other reservations are in flight."""
        with self._settled:
            while not self.exhausted and not self._fits(usd, tokens):
                if self._in_flight:
                    self._settled.wait()  # calls in flight may leave room when they settle
                    continue
                self.exhausted = self._exhaustion(usd, tokens)
                self._settled.notify_all()  # calls waiting for room: there will be none
            if self.exhausted:
                return False
            self._reserved_usd += usd
            self._reserved_tokens += tokens
            self._in_flight += 1
            return True

    def settle(self, reserved_usd: float, reserved_tokens: int, usd: float, tokens: int) -> None:
        """Replace one reservation by what its call really used."""
        with self._settled:
            self._in_flight -= 1
            self._reserved_usd = max(0.0, self._reserved_usd - reserved_usd) if self._in_flight else 0.0
            self._reserved_tokens = self._reserved_tokens - reserved_tokens if self._in_flight else 0
            self.usd += max(usd, 0.0)  # a call never refunds the budget, whatever its usage said
            self.tokens += max(tokens, 0)
            self._settled.notify_all()

    def add(self, usd: float, tokens: int) -> None:
        """Usage from before this process (a resumed run's recorded calls)."""
        with self._settled:
            self.usd += usd
            self.tokens += tokens
