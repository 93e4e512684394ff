"""The paper's claims, each measured on the parts of a run and decided by an explicit rule.

`CLAIMS` is the table: one small `ClaimCheck` per claim, with the claim's text, where the paper
states it, the part it is measured on, its verdict rule in words, and `measure`, the function that
reads the parts and returns what we measured with the verdict (a `rules.rule_*` function decides
it). `build_claims` walks the table in order; `CLAIM_RULES` is the table's rules by claim id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .rules import (
    LAB_SECONDS_LIMIT,
    NOT_CHECKABLE,
    _ci_text,
    paired_ci,
    rule_all_beat,
    rule_alpha,
    rule_batch_statistics,
    rule_below_zero,
    rule_best,
    rule_no_failures,
    rule_not_above_zero,
    rule_probe,
    rule_seconds,
    rule_validity,
    short,
)
from .settings import PAPER_FUNCTIONS, REFERENCE, Settings

Verdict = tuple[str, str]  # (verdict, why), as the `rule_*` functions return it
Measurement = tuple[str, Verdict]  # (what we measured, the verdict)


@dataclass
class Claim:
    id: str
    claim: str
    source: str
    measured: str
    verdict: str
    why: str
    rule: str
    part: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validity_measured(validity: Mapping[str, Any] | None) -> str:
    """The validity study's numbers as the claim's "measured" text."""
    if not validity:
        return "validity study not found (run `actmine validate --out validity`)"
    cells = ", ".join(
        f"{b}: {v['rho']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]"
        for b, v in validity["per_benchmark"].items()
        if isinstance(v, Mapping) and all(isinstance(v.get(k), (int, float)) for k in ("rho", "low", "high"))
    )
    if not validity.get("overall") or validity["overall"].get("rho") is None:
        # a study, but no ρ to quote: undefined (a constant side), or a cell without its interval or count
        return (
            f"validity study ({validity['path']}): no pooled Spearman ρ with a 95% interval and a count of "
            f"functions to decide by; per benchmark: {cells or 'none either'}"
        )
    c = validity["overall"]
    benchmarks = validity["benchmarks"] or ["its benchmark"]
    scope = "mean over " + ", ".join(benchmarks) if len(benchmarks) > 1 else benchmarks[0]
    return (
        f"validity study ({validity['path']}): Spearman ρ = {c['rho']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
        f"over {c['n']} functions ({scope}); per benchmark: {cells}"
    )


def _lab_functions(lab_part: Mapping | None, suite: str) -> dict[str, Any]:
    if not lab_part:
        return {}
    return lab_part["suites"].get(suite, {}).get("functions", {})


# ------------------------------------------------------------------------------------------------
# What the claims are measured on
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """The parts of a run, and what several claims read from them: the lab entries on both suites,
    the transfer rows and the benchmarks they cover."""

    settings: Settings
    parts: Mapping[str, Any]
    lab: Mapping[str, Any]  # {function: entry} on the search suite
    heldout: Mapping[str, Any]  # {function: entry} on the held-out suite
    transfer_rows: list
    benchmarks: list

    @classmethod
    def of(cls, settings: Settings, parts: Mapping[str, Any]) -> Evidence:
        lab_part, transfer_part = parts.get("lab"), parts.get("transfer")
        return cls(
            settings,
            parts,
            _lab_functions(lab_part, settings.suite),
            _lab_functions(lab_part, settings.heldout_suite),
            (transfer_part or {}).get("rows") or [],
            (transfer_part or {}).get("benchmarks") or [],
        )

    def transfer_row(self, activation: str, benchmark: str) -> Mapping[str, Any] | None:
        return next(
            (r for r in self.transfer_rows if r["activation"] == activation and r["benchmark"] == benchmark), None
        )


def _interval_list(entries: Mapping[str, Any], key: str) -> str:
    """Each of the paper's functions with its interval ``key`` (a function left out of the run is
    "not measured")."""
    return "; ".join(f"{short(n)} {_ci_text(entries[n].get(key) if entries.get(n) else None)}" for n in PAPER_FUNCTIONS)


# ------------------------------------------------------------------------------------------------
# How each claim is measured: `measure(evidence)` -> (measured, verdict), or None (not stated)
# ------------------------------------------------------------------------------------------------


def _beats_relu(e: Evidence) -> Measurement:
    s = e.settings
    cis = {n: (e.lab[n]["ci"] if e.lab.get(n, {}).get("ok") else None) for n in PAPER_FUNCTIONS}
    return (
        f"ood_log_ratio on `{s.suite}`: {_interval_list(e.lab, 'ci')}; on `{s.heldout_suite}`: "
        f"{_interval_list(e.heldout, 'ci')}",
        rule_all_beat(cis),
    )


def _beats_gelu(e: Evidence) -> Measurement:
    s = e.settings
    cis = {n: (e.lab[n].get("vs_gelu") if e.lab.get(n, {}).get("ok") else None) for n in PAPER_FUNCTIONS}
    return (
        f"score − GELU's on `{s.suite}`: {_interval_list(e.lab, 'vs_gelu')}; on `{s.heldout_suite}`: "
        f"{_interval_list(e.heldout, 'vs_gelu')}",
        rule_all_beat(cis),
    )


def _alpha(e: Evidence) -> Measurement:
    alpha_part = e.parts.get("alpha")
    if not alpha_part:
        return "not run", (NOT_CHECKABLE, "not run")
    points = alpha_part["points"]
    means = [p["ci"]["mean"] if p["ok"] else None for p in points]
    best = alpha_part["best_alpha"]
    best_point = next((p for p in points if p.get("alpha") == best), None)
    target = next((p for p in points if p.get("alpha") == 0.1), None)
    vs = paired_ci(target["per_seed"], best_point["per_seed"]) if best_point and target and target["ok"] else None
    measured = (
        f"optimum of the grid α* = {best:g} ({_ci_text(best_point['ci'])}); α = 0.1: "
        f"{_ci_text(target['ci']) if target and target['ok'] else '—'}; α = 0.1 minus α*: {_ci_text(vs)}"
        if best_point
        else "no α scored"
    )
    return measured, rule_alpha(alpha_part["alphas"], means, vs)


def _turbulent_in_batches(e: Evidence, row: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether Turbulent, scored in batches, beats every pointwise function in the lab; the text."""
    in_batches = row["in_batches"]
    pointwise_means = {
        n: entry["ci"]["mean"] for n, entry in e.lab.items() if entry.get("ok") and entry.get("pointwise")
    }
    if not (in_batches.get("ok") and pointwise_means):
        return False, "in batches: " + (in_batches.get("error") or {}).get("message", "failed")
    best_pointwise = min(pointwise_means, key=pointwise_means.get)
    return (
        in_batches["ci"]["mean"] < pointwise_means[best_pointwise],
        f"lab in batches {_ci_text(in_batches['ci'])}, per example "
        f"{_ci_text(row['per_example']['ci']) if row.get('per_example') else '—'}; best pointwise "
        f"{short(best_pointwise)} {pointwise_means[best_pointwise]:+.3f}",
    )


def _turbulent_downstream(transfer_rows: list) -> tuple[bool, str]:
    """Whether Turbulent fails downstream (a failed job, or a mean log-ratio above 0); the text."""
    rows = [r for r in transfer_rows if r["activation"] == "turbulent"]
    failed = sum(r["failed"] for r in rows)
    ratios = [r["log_ratio_vs_relu"] for r in rows if r["log_ratio_vs_relu"] is not None]
    mean = sum(ratios) / len(ratios) if ratios else None
    return (
        failed > 0 or (mean is not None and mean > 0),
        "; downstream "
        + ", ".join(f"{r['benchmark']} {_ci_text(r['ci'])}" for r in rows)
        + (f", {failed} failed jobs" if failed else ""),
    )


def _batch_statistics(e: Evidence) -> Measurement:
    """Turbulent wins the lab (in batches) and fails downstream."""
    batch_part, transfer_part = e.parts.get("batch"), e.parts.get("transfer")
    if not (batch_part and "turbulent" in batch_part["suites"].get(e.settings.suite, {})):
        return "Turbulent not in the comparison", rule_batch_statistics(None, None)
    wins, measured = _turbulent_in_batches(e, batch_part["suites"][e.settings.suite]["turbulent"])
    fails = None
    if transfer_part and transfer_part.get("rows"):
        fails, downstream = _turbulent_downstream(transfer_part["rows"])
        measured += downstream
    return measured, rule_batch_statistics(wins, fails)


def _probe(e: Evidence) -> Measurement | None:
    batch_part = e.parts.get("batch")
    if not batch_part:
        return None
    flags = {n: v["pointwise"] for n, v in batch_part["probe"].items()}
    import actmine.activations as activations

    expected = {n: activations.info(n).pointwise for n in flags}
    return (
        "pointwise probe: " + ", ".join(f"{short(n)} {'yes' if v else 'NO'}" for n, v in flags.items()),
        rule_probe(flags, expected),
    )


def _gsp_best(e: Evidence) -> Measurement:
    means: dict[str, float | None] = {}
    for name in e.settings.functions:
        ratios = [
            0.0 if name == REFERENCE else r["log_ratio_vs_relu"]
            for r in e.transfer_rows
            if r["activation"] == name and r["n"]
        ]
        means[name] = (
            sum(ratios) / len(ratios) if ratios and None not in ratios and len(ratios) == len(e.benchmarks) else None
        )
    scored = sorted(((n, v) for n, v in means.items() if v is not None), key=lambda nv: nv[1])
    measured = (
        ("mean log-ratio over " + ", ".join(e.benchmarks) + ": " + ", ".join(f"{short(n)} {v:+.3f}" for n, v in scored))
        if e.transfer_rows
        else "transfer not run"
    )
    return measured, rule_best(means, "gelu_sinc_perturbation")


def _gsp_clrs(e: Evidence) -> Measurement:
    clrs = e.transfer_row("gelu_sinc_perturbation", "clrs")
    return (
        f"clrs log-ratio vs ReLU {_ci_text(clrs['ci'])}" if clrs else "clrs not run",
        rule_below_zero(clrs["ci"] if clrs else None),
    )


def _gsp_imagenet(e: Evidence) -> Measurement:
    imagenet = e.transfer_row("gelu_sinc_perturbation", "imagenet")
    if imagenet:
        return f"imagenet log-ratio vs ReLU {_ci_text(imagenet['ci'])}", rule_not_above_zero(imagenet["ci"])
    why = ((e.parts.get("transfer") or {}).get("missing") or {}).get("imagenet", "not run in this mode")
    return f"ImageNet not run: {why}", (NOT_CHECKABLE, "ImageNet was not run")


def _pointwise_transfer(e: Evidence) -> Measurement:
    failures = None
    if e.transfer_rows:
        failures = {}
        flags = (e.parts.get("batch") or {}).get("probe", {})
        for r in e.transfer_rows:
            if r["activation"] in e.settings.functions and flags.get(r["activation"], {}).get("pointwise", True):
                failures[r["activation"]] = failures.get(r["activation"], 0) + r["failed"]
    return (
        f"{sum((failures or {}).values())} failed jobs of {len(failures or {})} pointwise functions on "
        f"{', '.join(e.benchmarks) or 'no benchmark'}"
        if failures is not None
        else "transfer not run",
        rule_no_failures(failures),
    )


def _lab_predicts(e: Evidence) -> Measurement:
    """Decided by the validity study; this run's own correlation is shown for information only."""
    validity, corr = e.parts.get("validity"), e.parts.get("analysis") or {}
    measured, verdict = _validity_measured(validity), rule_validity((validity or {}).get("overall"))
    overall = corr.get("correlations", {}).get("mean") or next(iter(corr.get("correlations", {}).values()), None)
    key = "mean" if corr.get("correlations", {}).get("mean") else (e.benchmarks[0] if e.benchmarks else None)
    if overall and overall.get("rho") is not None:
        measured += (
            f"; for information only, this run's own functions (part 5): ρ = {overall['rho']:+.2f} "
            f"(p = {overall['p_value']:.3f}, {overall['n']} functions, "
            f"{'mean over benchmarks' if key == 'mean' else key})"
        )
    return measured, verdict


def _search(e: Evidence) -> Measurement:
    s, search_part = e.settings, e.parts.get("search")
    winner = (search_part or {}).get("winner") if search_part else None
    if not winner:
        return (
            "search skipped" if search_part is None else "the search found no program",
            (NOT_CHECKABLE, "no search winner"),
        )
    held = winner["suites"].get(s.heldout_suite, {})
    on_lab = winner["suites"].get(s.suite, {})
    return (
        f"winner (program #{winner['program_id']}, search fitness {winner['search_fitness']:+.3f}): "
        f"`{s.heldout_suite}` {_ci_text(held.get('ci'))}, `{s.suite}` {_ci_text(on_lab.get('ci'))}",
        rule_below_zero(held.get("ci") if held.get("ok") else None),
    )


def _lab_seconds(e: Evidence) -> Measurement:
    seconds = sorted(entry["seconds"] for entry in e.lab.values() if entry.get("ok") and entry.get("pointwise"))
    median = seconds[len(seconds) // 2] if seconds else None
    suite_info = (e.parts.get("lab") or {}).get("suites", {}).get(e.settings.suite, {})
    return (
        f"median {median:.1f} s per pointwise function ({suite_info.get('tasks', 0) * len(suite_info.get('seeds', []))} "
        f"MLPs, {suite_info.get('steps')} steps, one process)"
        if median is not None
        else "not run",
        rule_seconds(median),
    )


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimCheck:
    """One claim of the paper: its text, where it is stated, the part (JSON) that measures it, its
    verdict rule in words, and how it is measured (``measure``: None when the run does not state it)."""

    id: str
    claim: str
    source: str
    part: str
    rule: str
    measure: Callable[[Evidence], Measurement | None]

    def check(self, evidence: Evidence) -> Claim | None:
        measured = self.measure(evidence)
        if measured is None:
            return None
        text, (verdict, why) = measured
        return Claim(self.id, self.claim, self.source, text, verdict, why, self.rule, self.part)


CLAIMS = (
    ClaimCheck(
        "beats_relu",
        "Every function the search discovered (GELUSine, GSP, GMTU, Turbulent) has a lower "
        "OOD error than ReLU in the lab.",
        "issue #8's reading of the paper (the functions were selected on lab fitness)",
        "lab",
        "reproduced iff the 95% t-interval over seeds of every discovered function's ood_log_ratio "
        "(vs ReLU) on the search suite lies below 0",
        _beats_relu,
    ),
    ClaimCheck(
        "beats_gelu",
        "Every discovered function has a lower OOD error than GELU in the lab.",
        "issue #8's reading of the paper",
        "lab",
        "reproduced iff the 95% paired t-interval of every discovered function's per-seed score minus "
        "GELU's lies below 0 on the search suite",
        _beats_gelu,
    ),
    ClaimCheck(
        "alpha",
        "GELUSine's α = 0.1 is near optimal.",
        "Appendix C (sweep of α)",
        "alpha",
        "reproduced iff the grid optimum α* of GELUSine lies in [0.05, 0.2], or α* > 0 and α = 0.1 is not "
        "significantly worse than α* (paired 95% interval includes 0)",
        _alpha,
    ),
    ClaimCheck(
        "batch_statistics",
        "Functions that use batch statistics (Turbulent) win in the lab and fail downstream.",
        "paper (secondary sources)",
        "batch",
        "reproduced iff Turbulent, scored with batch statistics, beats every pointwise function of "
        "the comparison on the search suite (mean) AND downstream it fails a job or its mean "
        "log-ratio over the benchmarks is above 0 (worse than ReLU)",
        _batch_statistics,
    ),
    ClaimCheck(
        "probe",
        "Batch dependence can be detected before any downstream compute is spent.",
        "paper (recommendation, secondary sources)",
        "batch",
        "reproduced iff the batch-dependence probe flags exactly the functions that are not pointwise",
        _probe,
    ),
    ClaimCheck(
        "gsp_best",
        "GELU-Sinc-Perturbation transfers best overall.",
        "paper (secondary sources; benchmarks CIFAR-10, ImageNet, CLRS-30, ogbg-molhiv)",
        "transfer",
        "reproduced iff GSP has the lowest mean downstream log-ratio (over the benchmarks run) of the "
        "registry functions compared",
        _gsp_best,
    ),
    ClaimCheck(
        "gsp_clrs",
        "GSP gives clear gains on CLRS-30 (trained on 16 nodes, tested on 64).",
        "paper (secondary sources)",
        "transfer",
        "reproduced iff GSP's 95% t-interval over seeds of its CLRS log-ratio vs ReLU lies below 0",
        _gsp_clrs,
    ),
    ClaimCheck(
        "gsp_imagenet",
        "GSP shows no loss on ImageNet.",
        "paper (secondary sources)",
        "transfer",
        "reproduced iff the 95% interval of GSP's ImageNet log-ratio vs ReLU does not lie above 0",
        _gsp_imagenet,
    ),
    ClaimCheck(
        "pointwise_transfer",
        "Pointwise functions transfer: they train downstream without failing.",
        "paper (secondary sources)",
        "transfer",
        "reproduced iff every downstream job of every pointwise function finished with a finite score",
        _pointwise_transfer,
    ),
    ClaimCheck(
        "lab_predicts",
        "Lab fitness predicts the downstream ranking (a small-scale lab is enough).",
        "abstract (the premise of the lab)",
        "analysis",
        "decided by the validity study (`actmine validate`, docs/validity.md): reproduced iff the "
        "bootstrap 95% interval of Spearman's ρ between lab fitness on the unseen test suites and "
        "downstream fitness (mean over its benchmarks) lies above 0; not checkable without the study",
        _lab_predicts,
    ),
    ClaimCheck(
        "search",
        "An evolutionary search started from ReLU finds functions that extrapolate better than "
        "ReLU (the paper's mutator is an LLM; here the offline symbolic mutator).",
        "abstract",
        "search",
        "reproduced iff the 95% interval of the search winner's ood_log_ratio on the held-out suite lies below 0",
        _search,
    ),
    ClaimCheck(
        "lab_seconds",
        "The lab is small-scale: seconds per evaluation.",
        "abstract",
        "lab",
        f"reproduced iff the median time to score one function on the search suite is below {LAB_SECONDS_LIMIT:g} s",
        _lab_seconds,
    ),
)

CLAIM_RULES = {check.id: check.rule for check in CLAIMS}


def build_claims(settings: Settings, parts: Mapping[str, Any]) -> list[Claim]:
    """Every claim of `CLAIMS` that this run states, in the table's order, measured on ``parts``."""
    evidence = Evidence.of(settings, parts)
    return [claim for claim in (check.check(evidence) for check in CLAIMS) if claim is not None]
