"""The LLM spend accounting (`actmine.evolve.mutators.spend`): worst-case reservations against hard
caps on dollars and tokens, with exact call counts, exact boundaries and concurrent callers.

Amounts are multiples of 1/8 dollar where the arithmetic must be exact (binary fractions add
without rounding), so that "exactly N calls" and "exactly at the cap" mean what they say.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.mutators import llm
from actmine.evolve.mutators.spend import (
    CHARS_PER_TOKEN,
    PROMPT_OVERHEAD_TOKENS,
    Reservation,
    Spend,
    cost_usd,
    prompt_tokens_estimate,
    tokens_in,
    worst_case,
)


# ---- helpers -----------------------------------------------------------------------------------


def waiters(spend: Spend) -> int:
    """How many threads wait in `reserve` for room (the condition's waiters, CPython's `_waiters`)."""
    return len(spend._settled._waiters)


def wait_for_waiters(spend: Spend, count: int) -> None:
    """Block until ``count`` threads wait in `reserve` (a deadline against a hang, not a timing check)."""
    deadline = time.monotonic() + 10.0
    while waiters(spend) != count:
        assert time.monotonic() < deadline, f"expected {count} waiting reservations, found {waiters(spend)}"
        time.sleep(0.001)


def reserve_in_thread(spend: Spend, usd: float, tokens: int) -> tuple[threading.Thread, list[bool]]:
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(spend.reserve(usd, tokens)), daemon=True)
    thread.start()
    return thread, outcome


def reserve_now(spend: Spend, usd: float, tokens: int) -> bool:
    """`reserve`, which must return without waiting for a settle (fails instead of hanging)."""
    thread, outcome = reserve_in_thread(spend, usd, tokens)
    thread.join(timeout=10.0)
    assert not thread.is_alive(), f"reserve({usd}, {tokens}) waited with nothing to wait for"
    return outcome[0]


def calls_until_refused(
    spend: Spend, reserve_usd: float, reserve_tokens: int, used_usd: float, used_tokens: int, limit: int = 50
) -> int:
    """How many sequential calls are made (at most ``limit``), each reserving the worst case and
    settling with its real usage."""
    for made in range(limit):
        if not reserve_now(spend, reserve_usd, reserve_tokens):
            return made
        spend.settle(reserve_usd, reserve_tokens, used_usd, used_tokens)
    return limit


# ---- estimates and prices ----------------------------------------------------------------------


def test_tokens_are_estimated_from_length_rounded_down():
    assert CHARS_PER_TOKEN == 3.0
    assert tokens_in("abcdef") == 2
    assert tokens_in("abcdefgh") == 2  # 8 / 3 = 2.67: rounded down
    assert tokens_in("abcdefghi") == 3
    assert tokens_in("ab") == 0
    assert tokens_in("") == 0 and tokens_in(None) == 0


def test_prompt_estimate_counts_all_contents_together_plus_the_template():
    messages = [{"role": "system", "content": "a" * 32}, {"role": "user", "content": "b" * 32}]
    # 64 characters / 3 = 21.3 → 21 (each alone would give 10 + 10), plus the template's 16
    assert PROMPT_OVERHEAD_TOKENS == 16
    assert prompt_tokens_estimate(messages) == 21 + 16
    assert prompt_tokens_estimate([]) == 16
    assert prompt_tokens_estimate([{"role": "user", "content": "x" * 300}]) == 116


def test_cost_prices_each_side_per_million_tokens():
    assert cost_usd(1_000_000, 0, 3.0, 15.0) == 3.0
    assert cost_usd(0, 1_000_000, 3.0, 15.0) == 15.0
    assert cost_usd(2000, 500, 3.0, 15.0) == pytest.approx((2000 * 3.0 + 500 * 15.0) / 1e6)
    assert cost_usd(123, 456, 0.0, 0.0) == 0.0
    assert llm.ModelSpec("m", price_in=3.0, price_out=15.0).cost(2000, 500) == pytest.approx(0.0135)


def test_the_worst_case_is_the_prompt_plus_a_full_completion():
    # 1000 prompt tokens at $2/M and 500 completion tokens at $8/M: $0.002 + $0.004
    assert worst_case(1000, 500, 2.0, 8.0) == Reservation(pytest.approx(0.006), 1500)
    # the completion is priced at the output rate: swapping the prices changes the dollars
    assert worst_case(1000, 500, 8.0, 2.0).usd == pytest.approx(0.009)
    assert worst_case(0, 256, 0.0, 0.0) == Reservation(0.0, 256)  # a free local model still uses tokens


def test_llm_reexports_the_spend_class():
    assert llm.Spend is Spend


# ---- sequential budgets: exact call counts -------------------------------------------------------


@pytest.mark.parametrize(
    "budget, worst, used, calls",
    [
        (1.0, 0.25, 0.25, 4),  # each call uses its whole worst case: 4 × 0.25 = 1.0 exactly
        (1.0, 0.25, 0.125, 7),  # after 6 calls $0.75 is spent: the 7th still fits (0.75 + 0.25 = 1.0)
        (1.0, 0.25, 0.0, 50),  # free calls never exhaust a dollar budget
        (1.0, 0.375, 0.25, 3),  # 0.5 + 0.375 ≤ 1 for the 3rd; 0.75 + 0.375 > 1 for the 4th
        (0.25, 0.5, 0.0, 0),  # one worst case is more than the whole budget: no call at all
        (0.0, 0.0, 0.0, 50),  # a zero budget admits free calls
    ],
)
def test_a_dollar_budget_allows_exactly_n_calls(budget, worst, used, calls):
    assert calls_until_refused(Spend(budget_usd=budget), worst, 1, used, 1) == calls


@pytest.mark.parametrize(
    "budget, worst, used, calls",
    [
        (100, 25, 25, 4),
        (100, 25, 10, 8),
        (100, 30, 30, 3),
        (100, 101, 0, 0),
        (100, 100, 100, 1),
    ],
)
def test_a_token_budget_allows_exactly_n_calls(budget, worst, used, calls):
    # with 25 reserved and 10 used: after 7 calls 70 used, 70 + 25 ≤ 100; after 8, 80 + 25 > 100
    assert calls_until_refused(Spend(budget_tokens=budget), 0.0, worst, 0.0, used) == calls


def test_the_dearer_cap_binds_first():
    # dollars allow 4 calls of $0.25, tokens allow 2 of 50: tokens bind
    assert calls_until_refused(Spend(budget_usd=1.0, budget_tokens=100), 0.25, 50, 0.25, 50) == 2
    # dollars allow 2, tokens 10: dollars bind
    assert calls_until_refused(Spend(budget_usd=0.5, budget_tokens=100), 0.25, 10, 0.25, 10) == 2


def test_without_caps_nothing_is_refused():
    spend = Spend()
    assert calls_until_refused(spend, 1e9, 10**12, 1e9, 10**12, limit=20) == 20
    assert spend.exhausted is None and spend.usd == pytest.approx(20 * 1e9) and spend.tokens == 20 * 10**12


def test_settling_replaces_the_reservation_by_the_real_usage():
    spend = Spend(budget_usd=1.0, budget_tokens=1000)
    assert reserve_now(spend, 0.5, 400) and reserve_now(spend, 0.25, 300)
    assert spend.reserved == Reservation(0.75, 700) and spend.in_flight == 2
    spend.settle(0.5, 400, 0.125, 100)  # frees 0.5 - 0.125 dollars and 400 - 100 tokens
    assert spend.reserved == Reservation(0.25, 300) and spend.in_flight == 1
    assert (spend.usd, spend.tokens) == (0.125, 100)
    # exactly what is left now fits: 0.125 + 0.25 + 0.625 = 1.0 and 100 + 300 + 600 = 1000
    assert reserve_now(spend, 0.625, 600)
    assert spend.reserved == Reservation(0.875, 900) and spend.in_flight == 2
    spend.settle(0.25, 300, 0.25, 300)
    spend.settle(0.625, 600, 0.5, 500)
    assert (spend.usd, spend.tokens) == (0.875, 900)
    assert spend.reserved == Reservation(0.0, 0) and spend.in_flight == 0 and spend.exhausted is None


def test_the_last_settle_clears_float_drift_in_the_reservations():
    spend = Spend(budget_usd=10.0)
    for _ in range(3):
        assert reserve_now(spend, 0.1, 1)
    spend.settle(0.1, 1, 0.1, 1)
    assert spend.reserved.usd == pytest.approx(0.2) and spend.reserved.tokens == 2
    spend.settle(0.1, 1, 0.1, 1)
    spend.settle(0.1, 1, 0.1, 1)
    assert spend.reserved == Reservation(0.0, 0)  # exactly zero, not 0.1 + 0.1 + 0.1 - 0.3
    assert spend.usd == pytest.approx(0.3) and spend.tokens == 3


def test_reserved_dollars_never_go_negative():
    spend = Spend(budget_usd=1.0)
    assert reserve_now(spend, 0.25, 0) and reserve_now(spend, 0.25, 0)
    spend.settle(0.75, 0, 0.0, 0)  # a settle that overstates its reservation: clamped at 0, not -0.25
    assert spend.reserved.usd == 0.0 and spend.in_flight == 1
    assert reserve_now(spend, 1.0, 0)  # so the full budget is free again


def test_past_usage_counts_against_the_caps():
    spend = Spend(budget_usd=1.0, budget_tokens=1000)
    spend.add(0.75, 900)
    spend.add(0.125, 50)
    assert (spend.usd, spend.tokens) == (0.875, 950) and spend.reserved == Reservation(0.0, 0)
    assert spend.in_flight == 0
    assert reserve_now(spend, 0.125, 50)  # exactly the rest
    spend.settle(0.125, 50, 0.125, 50)
    assert not reserve_now(spend, 0.0, 1)


# ---- boundaries and exhaustion -----------------------------------------------------------------


def test_a_reservation_exactly_at_the_cap_is_allowed_and_one_just_above_is_refused():
    assert reserve_now(Spend(budget_usd=0.75), 0.75, 0)
    assert not reserve_now(Spend(budget_usd=0.75), math.nextafter(0.75, 1.0), 0)
    assert reserve_now(Spend(budget_tokens=500), 0.0, 500)
    assert not reserve_now(Spend(budget_tokens=500), 0.0, 501)
    spend = Spend(budget_usd=1.0)
    spend.add(0.5, 0)
    assert not reserve_now(spend, 0.5 + 1e-12, 0)  # (nextafter(0.5) would round back to 1.0 in the sum)
    assert reserve_now(Spend(budget_usd=1.0, budget_tokens=10), 1.0, 10)


def test_exhausted_says_which_cap_and_by_how_much():
    spend = Spend(budget_usd=1.0)
    spend.add(0.95, 10)
    assert spend.exhausted is None
    assert not reserve_now(spend, 0.1, 1)
    assert spend.exhausted == "LLM budget reached: $0.9500 spent of $1 (the next call could cost up to $0.1000)"
    tokens = Spend(budget_tokens=2000)
    tokens.add(0.0, 1500)
    assert not reserve_now(tokens, 0.0, 1200)
    assert tokens.exhausted == "LLM token budget reached: 1,500 used of 2,000 (the next call could use up to 1,200)"


def test_with_both_caps_the_message_names_the_one_that_is_short():
    tokens_short = Spend(budget_usd=1.0, budget_tokens=100)
    tokens_short.add(0.5, 90)
    assert not reserve_now(tokens_short, 0.5, 20)  # $1.0 exactly fits; 110 tokens do not
    assert tokens_short.exhausted.startswith("LLM token budget reached: 90 used of 100")
    dollars_short = Spend(budget_usd=1.0, budget_tokens=100)
    dollars_short.add(0.5, 90)
    assert not reserve_now(dollars_short, 0.625, 5)
    assert dollars_short.exhausted.startswith("LLM budget reached: $0.5000 spent of $1 ")


def test_exhaustion_is_final():
    spend = Spend(budget_usd=1.0)
    assert not reserve_now(spend, 2.0, 0)  # more than the whole budget: refused at once
    message = spend.exhausted
    assert message is not None and spend.usd == 0.0
    assert not reserve_now(spend, 0.0, 0)  # even a free call: the controller has stopped
    assert spend.exhausted == message and spend.in_flight == 0


def test_a_refusal_reserves_nothing():
    spend = Spend(budget_tokens=10)
    assert not reserve_now(spend, 0.0, 11)
    assert spend.reserved == Reservation(0.0, 0) and spend.in_flight == 0 and spend.tokens == 0


# ---- concurrent reservations -------------------------------------------------------------------


def test_a_reservation_that_does_not_fit_waits_for_calls_in_flight_then_proceeds():
    spend = Spend(budget_usd=1.0)
    assert reserve_now(spend, 0.5, 0) and reserve_now(spend, 0.5, 0)
    waiter, outcome = reserve_in_thread(spend, 0.5, 0)
    wait_for_waiters(spend, 1)
    assert outcome == [] and spend.exhausted is None
    spend.settle(0.5, 0, 0.25, 0)  # 0.25 spent + 0.5 reserved + 0.5 wanted > 1: still no room
    wait_for_waiters(spend, 1)
    assert outcome == [] and spend.in_flight == 1
    spend.settle(0.5, 0, 0.25, 0)  # 0.5 spent + 0.5 wanted = 1: room
    waiter.join(timeout=10.0)
    assert outcome == [True] and spend.in_flight == 1 and spend.reserved.usd == 0.5
    assert spend.exhausted is None


def test_waiting_reservations_are_refused_when_the_last_call_leaves_no_room():
    spend = Spend(budget_tokens=100)
    assert reserve_now(spend, 0.0, 60)
    first, first_outcome = reserve_in_thread(spend, 0.0, 60)
    second, second_outcome = reserve_in_thread(spend, 0.0, 50)
    wait_for_waiters(spend, 2)
    spend.settle(0.0, 60, 0.0, 60)  # 60 used: neither 60 nor 50 more fit, and nothing is in flight
    first.join(timeout=10.0)
    second.join(timeout=10.0)
    assert first_outcome == [False] and second_outcome == [False]
    assert spend.exhausted.startswith("LLM token budget reached: 60 used of 100")


def test_concurrent_callers_never_overshoot_and_all_finish():
    spend = Spend(budget_usd=2.0, budget_tokens=5000)
    snapshots: list[tuple[float, int]] = []

    def caller(seed: int) -> None:
        step = 0
        while spend.reserve(0.125, 200):
            with spend._settled:
                snapshots.append((spend.usd + spend._reserved_usd, spend.tokens + spend._reserved_tokens))
            step += 1
            spend.settle(0.125, 200, 0.125 * ((seed + step) % 2), 100 * ((seed + step) % 3))

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(t.is_alive() for t in threads)
    assert spend.exhausted is not None and spend.in_flight == 0
    assert spend.usd <= 2.0 and spend.tokens <= 5000
    assert snapshots and all(usd <= 2.0 and tokens <= 5000 for usd, tokens in snapshots)


# ---- the cap holds whatever the order ----------------------------------------------------------

EIGHTHS = st.integers(0, 8).map(lambda n: n / 8)
CALLS = st.lists(st.tuples(EIGHTHS, st.integers(0, 60), st.integers(0, 4), st.booleans()), max_size=25)


@settings(max_examples=150, deadline=None)
@given(
    budget_usd=st.one_of(st.none(), st.integers(0, 24).map(lambda n: n / 8)),
    budget_tokens=st.one_of(st.none(), st.integers(0, 200)),
    calls=CALLS,
)
def test_spent_and_reserved_never_exceed_the_caps(budget_usd, budget_tokens, calls):
    """Calls reserve, and settle (using a quarter-multiple of their reservation) in any order:
    what is spent plus what is reserved never passes a cap, and each reservation is granted
    exactly when it fits (waiting first for the calls in flight to settle when it does not)."""
    spend = Spend(budget_usd, budget_tokens)
    in_flight: deque[tuple[float, int, float, int]] = deque()
    spent_usd, spent_tokens, exhausted = 0.0, 0, False

    def fits(usd: float, tokens: int) -> bool:
        reserved_usd = sum(c[0] for c in in_flight)
        reserved_tokens = sum(c[1] for c in in_flight)
        return (budget_usd is None or spent_usd + reserved_usd + usd <= budget_usd) and (
            budget_tokens is None or spent_tokens + reserved_tokens + tokens <= budget_tokens
        )

    def settle_oldest() -> None:
        nonlocal spent_usd, spent_tokens
        usd, tokens, used_usd, used_tokens = in_flight.popleft()
        spend.settle(usd, tokens, used_usd, used_tokens)
        spent_usd += used_usd
        spent_tokens += used_tokens

    for usd, tokens, quarters, settle_first in calls:
        if settle_first and in_flight:
            settle_oldest()
        while in_flight and not exhausted and not fits(usd, tokens):
            settle_oldest()  # what the waiting caller would wait for
        expected = not exhausted and fits(usd, tokens)
        assert reserve_now(spend, usd, tokens) is expected
        exhausted = exhausted or not expected
        assert (spend.exhausted is not None) is exhausted
        if expected:
            in_flight.append((usd, tokens, usd * quarters / 4, tokens * quarters // 4))
        assert (spend.usd, spend.tokens) == (spent_usd, spent_tokens)
        assert spend.in_flight == len(in_flight)
        reserved = spend.reserved
        if budget_usd is not None:
            assert spend.usd + reserved.usd <= budget_usd
        if budget_tokens is not None:
            assert spend.tokens + reserved.tokens <= budget_tokens
    while in_flight:
        settle_oldest()
    assert spend.reserved == Reservation(0.0, 0)
    assert budget_usd is None or spend.usd <= budget_usd
    assert budget_tokens is None or spend.tokens <= budget_tokens
