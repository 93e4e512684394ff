"""The run-level pages of `actmine serve`: the runs overview, a run's page, its leaderboard, and two runs compared.

All are built from `runs.Snapshot`s, around one reading of a run's progress (`progress`: counts by
status, the budget, evaluations per minute, the best and the winner, the LLM spend against its
caps) that the overview, the run page and the comparison each lay out their own way. Figures are
`image` blocks whose URL carries the snapshot's version; app.py draws them.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any, Mapping, Sequence

from ..evolve.database import ProgramRecord
from ..evolve.program_records import BLEND_MUTATOR
from .pages import (
    cell,
    count,
    failure_text,
    fields,
    finite,
    grid_url,
    image,
    leaderboard_url,
    num,
    program_cell,
    run_url,
    selection_score,
    short,
    table,
    with_se,
)
from .runs import Snapshot, config_value

RECENT_S = 300.0  # "evaluations per minute, recently": the programs of the last five minutes


# ---- progress (overview, run page, comparison) ------------------------------------------------


def progress(snapshot: Snapshot, now: float | None = None) -> dict[str, Any]:
    """How far the run is: counts by status, the budget, evaluations per minute over the run and
    over the last `RECENT_S` seconds (while it runs), the best program, the LLM spend and caps."""
    now = time.time() if now is None else now
    records = snapshot.records
    statuses = Counter(record.status for record in records)
    times = sorted(record.created_at for record in records if finite(record.created_at) is not None)
    elapsed = times[-1] - snapshot.run.created_at if times else 0.0
    recent = None
    if snapshot.run.status == "running":
        recent = sum(1 for t in times if t >= now - RECENT_S) / (RECENT_S / 60)
    budget = config_value(snapshot.run.config, "search", "budget")
    return {
        "status": snapshot.run.status,
        # against the budget: a final check's blend is one more program, not one of the proposals
        "evaluated": sum(1 for record in records if record.mutator != BLEND_MUTATOR),
        "budget": budget if isinstance(budget, int) and not isinstance(budget, bool) else None,
        "ok": statuses["ok"],
        "failed": statuses["failed"],
        "duplicate": statuses["duplicate"],
        "rate": len(records) / elapsed * 60 if elapsed > 0 else None,
        "recent_rate": recent,
        "best": snapshot.top[0] if snapshot.top else None,
        "winner": snapshot.results["winner"],
        "mutator": config_value(snapshot.run.config, "mutator", "kind"),
        "llm": llm_spend(snapshot),
    }


def llm_spend(snapshot: Snapshot) -> dict[str, Any] | None:
    """The LLM calls' dollars and tokens against the run's caps (`mutator.options.budget_usd`,
    `budget_tokens`); None for a run that neither is an LLM run nor recorded a call."""
    options = config_value(snapshot.run.config, "mutator", "options")
    if not snapshot.llm_calls and config_value(snapshot.run.config, "mutator", "kind") != "llm":
        return None
    usd = sum(finite(call.get("cost")) or 0.0 for call in snapshot.llm_calls)
    tokens = sum(
        int(call.get("prompt_tokens") or 0) + int(call.get("completion_tokens") or 0) for call in snapshot.llm_calls
    )
    return {
        "calls": len(snapshot.llm_calls),
        "usd": usd,
        "tokens": tokens,
        "budget_usd": finite(config_value(options, "budget_usd")),
        "budget_tokens": finite(config_value(options, "budget_tokens")),
    }


def _of_cap(spent: float, cap: float | None, money: bool) -> str:
    shown = f"${spent:.4f}" if money else f"{int(spent):,}"
    if cap is None:
        return shown + " (no cap)"
    capped = f"${cap:g}" if money else f"{int(cap):,}"
    return f"{shown} of {capped} ({spent / cap:.0%})" if cap > 0 else f"{shown} of {capped}"


def _evaluated_text(state: dict[str, Any]) -> str:
    budget = state["budget"]
    return f"{state['evaluated']:,} / {budget:,}" if budget else f"{state['evaluated']:,}"


def _rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1f}"


def progress_fields(snapshot: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """The run's progress as labelled cells (run page, comparison)."""
    state = progress(snapshot)
    best = state["best"]
    key = snapshot.served.key
    pairs = [
        ("status", cell(state["status"])),
        ("evaluated / budget", cell(_evaluated_text(state), sort=state["evaluated"])),
        ("ok · failed · duplicates", cell(f"{state['ok']:,} · {state['failed']:,} · {state['duplicate']:,}")),
        ("evaluations per minute (whole run)", cell(_rate_text(state["rate"]))),
        ("evaluations per minute (last 5 minutes)", cell(_rate_text(state["recent_rate"]))),
        (
            "rounds (first · confirmations · pooled)",
            cell(" · ".join(f"{snapshot.rounds.get(kind, 0):,}" for kind in ("search", "confirm", "pooled"))),
        ),
        ("mutator", cell(state["mutator"] or "—")),
        ("best by score", program_cell(key, best.id) if best else cell("no scored program yet")),
        ("best fitness", cell(with_se(best.fitness, best.fitness_se) if best else "—")),
        (
            "winner (validation)",
            program_cell(key, state["winner"]) if state["winner"] is not None else cell("not chosen yet"),
        ),
    ]
    if state["llm"] is not None:
        llm = state["llm"]
        pairs += [
            ("LLM calls", count(llm["calls"])),
            ("LLM spend", cell(_of_cap(llm["usd"], llm["budget_usd"], money=True))),
            ("LLM tokens", cell(_of_cap(llm["tokens"], llm["budget_tokens"], money=False))),
        ]
    return pairs


def failures_table(snapshot: Snapshot) -> dict[str, Any]:
    rows = [[cell(stage or "—"), cell(code or "—"), count(n)] for (stage, code), n in snapshot.failures.items()]
    return table(["stage", "reason", "count"], rows, sortable=True, empty="no failures")


# ---- pages ----------------------------------------------------------------------------------


def overview_blocks(snapshots: Sequence[Snapshot]) -> dict[str, Any]:
    """The runs overview: one row per run, then each run's failures by reason."""
    rows = []
    for snapshot in snapshots:
        state, key = progress(snapshot), snapshot.served.key
        best, llm = state["best"], state["llm"]
        spend = "—" if llm is None else _of_cap(llm["usd"], llm["budget_usd"], money=True)
        rows.append(
            [
                cell(snapshot.served.name, href=run_url(key)),
                cell(state["status"]),
                cell(_evaluated_text(state), sort=state["evaluated"], cls="num"),
                count(state["ok"]),
                count(state["failed"]),
                count(state["duplicate"]),
                cell(_rate_text(state["rate"]), sort=state["rate"], cls="num"),
                cell(_rate_text(state["recent_rate"]), sort=state["recent_rate"], cls="num"),
                program_cell(key, best.id) if best else cell("—"),
                num(best.fitness if best else None),
                cell(spend),
                cell("leaderboard", href=leaderboard_url(key)),
                cell("grid", href=grid_url(key)),
            ]
        )
    blocks: dict[str, Any] = {
        "runs": table(
            [
                "run",
                "status",
                "evaluated / budget",
                "ok",
                "failed",
                "duplicates",
                "evals/min",
                "evals/min (5 min)",
                "best",
                "best fitness",
                "LLM spend",
                "",
                "",
            ],
            rows,
            sortable=True,
            empty="no runs",
        )
    }
    blocks["failures"] = {
        "type": "sections",
        "sections": [
            {"title": f"{snapshot.served.name}: failures by reason", "table": failures_table(snapshot)}
            for snapshot in snapshots
        ],
    }
    return blocks


def run_blocks(snapshot: Snapshot, baseline: Snapshot | None = None) -> dict[str, Any]:
    """One run: progress, fitness over evaluations (with the random-search baseline), the
    generalisation gap, failures, the end-of-run validation."""
    key = snapshot.served.key
    version = snapshot.version + (f"-{baseline.version}" if baseline else "")
    shown_baseline = (
        cell(baseline.served.name, href=run_url(baseline.served.key))
        if baseline
        else cell("none: serve a run of `--mutator random` beside this one")
    )
    blocks = {
        "summary": fields(progress_fields(snapshot)),
        "fitness": image(f"/run/{key}/fitness.png?v={version}", "fitness over evaluations"),
        "baseline": fields([("random-search baseline", shown_baseline)]),
        "gap": image(
            f"/run/{key}/gap.png?v={snapshot.version}", "generalisation gap: search estimate vs validation fitness"
        ),
        "gap_table": gap_table(snapshot),
        "failures": failures_table(snapshot),
        "validation": validation_table(snapshot),
    }
    return blocks


def gap_table(snapshot: Snapshot) -> dict[str, Any]:
    """The latest validation of the best: search estimate, validation fitness and their gap (search −
    validation; positive when the search promised more than unseen tasks gave), overall and per
    family (log-ratios: validation − search)."""
    if not snapshot.validations:
        return table(["", "search", "validation", "gap"], [], empty="no validation of the best yet")
    latest = snapshot.validations[-1]
    search, validation = finite(latest.get("search_fitness")), finite(latest.get("fitness"))
    rows = [
        [
            cell(f"fitness (program #{latest.get('program_id')}, after {latest.get('evaluated')} proposals)"),
            cell(with_se(search, latest.get("search_se")), sort=search, cls="num"),
            num(validation),
            num(None if search is None or validation is None else search - validation),
        ]
    ]
    result = latest.get("result") if isinstance(latest.get("result"), dict) else {}
    searched = result.get("search_families") if isinstance(result.get("search_families"), dict) else {}
    validated = result.get("families") if isinstance(result.get("families"), dict) else {}
    for family in sorted({str(f) for f in (*searched, *validated)}):
        low, high = finite(searched.get(family)), finite(validated.get(family))
        rows.append(
            [
                cell(f"{family} log-ratio"),
                num(low, 3),
                num(high, 3),
                num(None if low is None or high is None else high - low, 3),
            ]
        )
    return table(["", "search", "validation", "gap"], rows)


def validation_table(snapshot: Snapshot) -> dict[str, Any]:
    """The end-of-run validation rows (the top list and the references; the winner marked)."""
    key, winner = snapshot.served.key, snapshot.results["winner"]
    rows = []
    for row in snapshot.results["validation"]:
        pid = row.get("program_id")
        chosen = row.get("winner") is True or (winner is not None and pid == winner)
        rows.append(
            [
                cell("winner" if chosen else ""),
                cell(row.get("name")),
                program_cell(key, pid),
                cell(
                    with_se(row.get("search_fitness"), row.get("search_se")), sort=row.get("search_fitness"), cls="num"
                ),
                num(row.get("heldout_fitness")),
            ]
        )
    return table(
        ["", "name", "program", "search fitness", "validation fitness"],
        rows,
        sortable=True,
        empty="not available: no end-of-run validation yet",
    )


LEADERBOARD_COLUMNS = (
    "rank",
    "program",
    "status",
    "fitness",
    "± se",
    "score",
    "rounds",
    "island",
    "cell",
    "parent",
    "mutator",
    "model",
    "failure",
    "rationale",
)


def leaderboard_blocks(snapshot: Snapshot) -> dict[str, Any]:
    """Every proposal of the run, ranked by selection score (settled ok programs), sortable by any
    column, filterable by text and by status, mutator and island."""
    key = snapshot.served.key
    ranks = _ranks(snapshot.records)
    rows = [
        _leaderboard_row(key, record, ranks.get(record.id))
        for record in sorted(snapshot.records, key=lambda r: (ranks.get(r.id, math.inf), r.id))
    ]
    facets = [LEADERBOARD_COLUMNS.index(name) for name in ("status", "island", "mutator")]
    return {
        "summary": fields(progress_fields(snapshot)[:3]),
        "leaderboard": table(
            LEADERBOARD_COLUMNS, rows, sortable=True, filterable=True, facets=facets, empty="no program yet"
        ),
    }


def _ranks(records: Sequence[ProgramRecord]) -> dict[int, int]:
    """Program id → rank (1 = best) by selection score, for the settled ok programs that have one."""
    ranked = sorted(
        (r for r in records if r.status == "ok" and r.settled and selection_score(r) is not None),
        key=lambda r: (-selection_score(r), r.id),
    )
    return {record.id: rank for rank, record in enumerate(ranked, 1)}


def _leaderboard_row(key: str, record: ProgramRecord, rank: int | None) -> list[dict[str, Any]]:
    """One proposal's cells, in the order of `LEADERBOARD_COLUMNS`."""
    status = record.status if record.settled or record.status != "ok" else "ok (unsettled)"
    return [
        cell("—" if rank is None else str(rank), sort=rank, cls="num"),
        program_cell(key, record.id),
        cell(status),
        num(record.fitness),
        num(record.fitness_se, 4, signed=False),
        num(record.score),
        count(record.rounds),
        count(record.island),
        cell(record.cell or "—"),
        program_cell(key, record.parent_ids[0] if record.parent_ids else None),
        cell(record.mutator),
        cell(record.model or "—"),
        cell(failure_text(record)),
        cell(short(record.rationale), cls="rationale"),
    ]


# ---- comparison of two runs --------------------------------------------------------------------


def _flat(config: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted key: JSON text of the value}."""
    if not isinstance(config, Mapping):
        return {prefix: json.dumps(config, default=str, sort_keys=True)}
    flat: dict[str, str] = {}
    for name, value in config.items():
        flat.update(_flat(value, f"{prefix}.{name}" if prefix else str(name)))
    return flat


def top_table(snapshot: Snapshot) -> dict[str, Any]:
    key = snapshot.served.key
    rows = [
        [
            count(rank),
            program_cell(key, r.id),
            cell(with_se(r.fitness, r.fitness_se), sort=r.fitness, cls="num"),
            num(r.score),
            cell(r.mutator),
            cell(short(r.rationale, 100), cls="rationale"),
        ]
        for rank, r in enumerate(snapshot.top, 1)
    ]
    return table(
        ["rank", "program", "fitness ± se", "score", "mutator", "rationale"], rows, empty="no scored program yet"
    )


def compare_blocks(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """Two runs side by side: progress, the settings that differ, each one's fitness over
    evaluations, top programs and failures."""
    left, right = dict(progress_fields(a)), dict(progress_fields(b))
    labels = list(dict.fromkeys([*left, *right]))
    rows = [[cell(label), left.get(label, cell("—")), right.get(label, cell("—"))] for label in labels]
    config_a, config_b = _flat(a.run.config), _flat(b.run.config)
    differences = [
        [cell(name), cell(config_a.get(name, "—")), cell(config_b.get(name, "—"))]
        for name in sorted(set(config_a) | set(config_b))
        if config_a.get(name) != config_b.get(name)
    ]
    return {
        "progress": table(["", a.served.name, b.served.name], rows),
        "config": table(["setting", a.served.name, b.served.name], differences, empty="the same settings"),
        "fitness_a": _fitness_image(a),
        "fitness_b": _fitness_image(b),
        "top_a": top_table(a),
        "top_b": top_table(b),
        "failures_a": failures_table(a),
        "failures_b": failures_table(b),
    }


def _fitness_image(snapshot: Snapshot) -> dict[str, Any]:
    key = snapshot.served.key
    return image(f"/run/{key}/fitness.png?v={snapshot.version}", f"fitness over evaluations: {snapshot.served.name}")
