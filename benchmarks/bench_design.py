"""Is any simple function better than GELU *and* GELUSine where each is strong? And where is the noise?

    python benchmarks/bench_design.py [--size 100] [--start 4000000] [--scores design.json] [--only NAME ...]
                                      [--runs RUN_DIR ... [--against RUN_DIR ...]] [--set lab.hidden=128 ...]

Issue 13's bar is two bars: a winner must beat GELU on "all unseen" (60% Feynman equations, where GELU
extrapolates best of the references) and GELUSine on the kinds the filing named (oscillating,
saturating, kinked, bump-shaped; `bench_blend.ISSUE_13_KINDS`), where GELUSine does. The searches'
winners trade one for the other (docs/lab.md). This script asks the same question of functions
written by hand, chosen before they were scored (`FUNCTIONS`: GELU and GELUSine with their constants
moved, the sine gated or localised, other small terms, the library's other functions): each is
scored (sandboxed, journalled in `--scores`) on fresh draws of every kind the search draws
(`bench_kinds.kind_labs`: `--size` tasks × seeds 0 and 1 per kind from index `--start`) and on the
unseen test suites, and compared with GELU and GELUSine, paired by task (mean paired log-ratio with a
95% cluster-bootstrap interval, `lab.estimate.paired_interval`; below 0 = better), on three groups:
**search kinds**, **issue 13's kinds** and **all unseen**. A function meets "both bars" when its mean
is below 0 against GELU on all unseen and against GELUSine on issue 13's kinds.

Then the noise of those comparisons, per function against GELU on the kinds' tasks: the variance of
one seed's paired difference *within* a task (training noise: the same data and initial weights,
another activation) and the variance left *between* tasks (what the tasks themselves say), and from
their sum the tasks of one seed each a search would need to resolve a mean difference of 0.02 or
0.05 at two standard errors. `--set lab.hidden=W` (any `Config` override) scores under another
protocol, its pools built for it. `--runs` adds the winner of each finished run (heldout.json's
`winner`, as `run:DIR`) to the same tables: where the searches' winners sit among the hand-written;
`--against` as many other runs (`against:DIR`: e.g. the same run seeds searched with another config)
pairs them in order and prints each difference with a t-interval over the pairs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench_blend import interval_text, kind_groups, t_interval
from bench_kinds import KINDS_START, kind_labs
from bench_search import settings_argument
from bench_winner_rules import CandidateScores, source_digest

from actmine.config import Config
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.seeds import program
from actmine.lab.estimate import paired_interval

CLIP = 3.0  # the lab's per-task clip
DESIGN_START = KINDS_START + 1_000_000  # fresh draws: neither the search, a validation nor bench_kinds looks here
REFERENCES = ("gelu", "gelu_sine")
#: name: (expression, why it is here). Fixed before any was scored; GELU and GELUSine are the references.
FUNCTIONS = {
    "gelu": ("F.gelu(x)", "reference"),
    "gelu_sine": ("F.gelu(x, approximate='tanh') + 0.1 * torch.sin(x)", "reference (the paper's)"),
    "relu": ("torch.relu(x)", "the lab's baseline"),
    "gelu_tanh": ("F.gelu(x, approximate='tanh')", "GELU's tanh form: a near-copy, the noise floor"),
    "gs03": ("F.gelu(x) + 0.03 * torch.sin(x)", "GELUSine's amplitude moved"),
    "gs05": ("F.gelu(x) + 0.05 * torch.sin(x)", "GELUSine's amplitude moved (= GELU, GELUSine averaged)"),
    "gs20": ("F.gelu(x) + 0.2 * torch.sin(x)", "GELUSine's amplitude moved"),
    "gs_slow": ("F.gelu(x) + 0.1 * torch.sin(0.5 * x)", "GELUSine's frequency moved"),
    "gs_fast": ("F.gelu(x) + 0.1 * torch.sin(2 * x)", "GELUSine's frequency moved"),
    "gs_pos": ("F.gelu(x) + 0.1 * torch.sin(x) * torch.sigmoid(x)", "the sine on the positive side only"),
    "gs_neg": ("F.gelu(x) + 0.1 * torch.sin(x) * torch.sigmoid(-x)", "the sine on the negative side only"),
    "gs_local": ("F.gelu(x) + 0.1 * torch.sin(x) * torch.exp(-x * x / 8)", "the sine near 0 only"),
    "gs_tanh2": ("F.gelu(x) + 0.1 * torch.sin(x) * torch.tanh(x) ** 2", "the sine away from 0 only"),
    "gs_linear": ("F.gelu(x) + 0.1 * torch.sin(x) + 0.05 * x", "GELUSine with a linear leak"),
    "g_sin2": ("F.gelu(x) + 0.1 * torch.sin(x) ** 2", "an even periodic term"),
    "g_cos": ("F.gelu(x) + 0.1 * torch.cos(x) - 0.1", "an even periodic term, 0 at 0"),
    "g_xsin": ("F.gelu(x) + 0.05 * x * torch.sin(x)", "a growing periodic term"),
    "g_tanh": ("F.gelu(x) + 0.1 * torch.tanh(x)", "a saturating term"),
    "g_abs": ("F.gelu(x) + 0.05 * torch.abs(x)", "a kinked term"),
    "g_rational": ("F.gelu(x) + 0.3 * x / (1 + x * x)", "a rational bump"),
    "g_square": ("F.gelu(x) + 0.02 * x * x", "a growing even term"),
    "gelu_sharp": ("F.gelu(1.5 * x)", "a sharper GELU (searches found gelu(1.7x), gelu(2x))"),
    "gelu_soft": ("F.gelu(0.7 * x)", "a softer GELU"),
    "silu": ("F.silu(x)", "library"),
    "mish": ("F.mish(x)", "library"),
    "softplus": ("F.softplus(x)", "library"),
    "elu": ("F.elu(x)", "library"),
    "silu_sine": ("F.silu(x) + 0.1 * torch.sin(x)", "GELUSine's term on SiLU"),
    "mish_sine": ("F.mish(x) + 0.1 * torch.sin(x)", "GELUSine's term on Mish"),
    "gsp": ("F.gelu(x, approximate='tanh') * (1 + 0.5 * torch.sinc(x))", "the paper's GSP"),
    "gmtu": ("torch.tanh(1.5 * x) * torch.exp(-0.2 * x * x) + 0.1 * x", "the paper's GMTU"),
    "snake": ("x + torch.sin(x) ** 2", "library: a periodic activation"),
}


def journal_key(name: str, settings: list[tuple[str, object]], source: str) -> str:
    """The journal's key of `source` scored under `settings`: the settings (the same kinds trained
    under another protocol, `--set lab.hidden=…`, must not reuse this protocol's numbers) and the
    source's digest. The journal itself drops a key's scores when the source at the key changes
    (`CandidateScores`); the digest in the key lets both versions stay (two studies' "run:50", a
    function whose expression was edited), so going back to one does not score it again."""
    return "design" + "".join(f"[{key}={value}]" for key, value in settings) + f"#{name}#{source_digest(source)}"


def run_winners(run_dirs: list[Path], prefix: str = "run") -> dict[str, str]:
    """{"PREFIX:DIR": the source of its winner} for finished runs (heldout.json names the winner); DIR
    is the directory's name, or its whole path where two of the runs share a name."""
    sources = {}
    names = [run_dir.name for run_dir in run_dirs]
    for run_dir in run_dirs:
        final = json.loads((run_dir / "heldout.json").read_text())
        label = run_dir.name if names.count(run_dir.name) == 1 else str(run_dir)
        with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as database:
            sources[f"{prefix}:{label}"] = database.get(final["winner"]).source
    return sources


def groups(kind_of: dict[str, str], suites: list[str]) -> dict[str, set[str]]:
    """The groups compared, as sets of kinds (a test suite is a kind of its own): bench_blend's two,
    all unseen, and each unseen suite alone ("suite NAME")."""
    return kind_groups(kind_of) | {"all unseen": set(suites)} | {f"suite {name}": {name} for name in suites}


def by_kind(entry: dict, kind_of: dict[str, str], suites: list[str]) -> dict[str, list[float]]:
    """{kind|task: per-seed log-ratios} of a journal entry over the kind labs and the unseen suites."""
    out = {}
    for lab, tasks in entry.items():
        for task, values in (tasks or {}).items():
            kind = lab if lab in suites else kind_of.get(task)
            if kind is not None:
                out[f"{kind}|{task}"] = values
    return out


def in_group(scores: dict[str, list[float]], kinds: set[str]) -> dict[str, list[float]]:
    return {key: v for key, v in scores.items() if key.split("|", 1)[0] in kinds}


def noise(scores: dict[str, list[float]], gelu: dict[str, list[float]], kinds: set[str]) -> dict[str, float]:
    """Within-task (one seed's training noise) and between-task variance of the paired difference to
    GELU on the tasks of `kinds` (each seed's log-ratio clipped to ±3, as the lab clips a task's), and
    the one-seed tasks needed to resolve 0.02 and 0.05 at two standard errors."""
    rows = [
        np.clip(scores[key], -CLIP, CLIP) - np.clip(gelu[key], -CLIP, CLIP)
        for key in in_group(scores, kinds)
        if len(scores[key]) > 1
    ]
    differences = np.array(rows)  # tasks × seeds
    within = float(differences.var(axis=1, ddof=1).mean())
    between = max(float(differences.mean(axis=1).var(ddof=1)) - within / differences.shape[1], 0.0)
    per_task = within + between
    need = {gap: int(np.ceil(per_task * (2 / gap) ** 2)) for gap in (0.02, 0.05)}
    return {"within": within, "between": between, "need 0.02": need[0.02], "need 0.05": need[0.05]}


def compare(scores: dict, references: dict[str, dict], group_kinds: dict[str, set[str]]) -> dict[str, dict]:
    """{"GROUP vs REF": paired_interval} for every group and reference."""
    return {
        f"{group} vs {ref}": paired_interval(in_group(scores, kinds), in_group(references[ref], kinds))
        for group, kinds in group_kinds.items()
        for ref in REFERENCES
    }


def both_bars(row: dict) -> str:
    unseen, kinds = row["all unseen vs gelu"], row["issue 13's kinds vs gelu_sine"]
    if unseen["high"] < 0 and kinds["high"] < 0:
        return "both, at 95%"
    return "both" if unseen["mean"] < 0 and kinds["mean"] < 0 else ""


def report(rows: dict[str, dict], noises: dict[str, dict], suites: list[str]) -> None:
    def cell(c: dict) -> str:
        return f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"

    print("\nmean paired log-ratio, below 0 = better (95% cluster-bootstrap intervals)")
    header = ["search kinds vs gelu", "issue 13's kinds vs gelu_sine", "all unseen vs gelu"]
    print(f"{'function':<12} | " + " | ".join(f"{h:<26}" for h in header) + " | bars")
    order = sorted(rows, key=lambda n: max(rows[n]["all unseen vs gelu"]["mean"], rows[n][header[1]]["mean"]))
    for name in order:
        row = rows[name]
        print(f"{name:<12} | " + " | ".join(f"{cell(row[h]):<26}" for h in header) + f" | {both_bars(row)}")
    print(
        "\nthe other comparisons (means): search kinds vs gelu_sine, issue 13's kinds vs gelu, all unseen vs gelu_sine"
    )
    for name in order:
        row = rows[name]
        print(
            f"{name:<12} "
            + "  ".join(
                f"{row[k]['mean']:+.3f}"
                for k in ("search kinds vs gelu_sine", "issue 13's kinds vs gelu", "all unseen vs gelu_sine")
            )
        )
    print("\neach unseen suite alone (means): " + ", ".join(f"{s} vs gelu, vs gelu_sine" for s in suites))
    for name in order:
        row = rows[name]
        print(
            f"{name:<12} " + "  ".join(f"{row[f'suite {s} vs {r}']['mean']:+.3f}" for s in suites for r in REFERENCES)
        )
    print("\nnoise of the paired difference to GELU on the kinds' tasks (one seed of one task):")
    print(f"{'function':<12} within-task  between-task  within share  one-seed tasks to resolve 0.02 / 0.05")
    for name in order:
        n = noises.get(name)
        if n is None:
            continue
        share = n["within"] / (n["within"] + n["between"])
        print(
            f"{name:<12} {n['within']:>11.3f}  {n['between']:>12.3f}  {share:>11.0%}  {n['need 0.02']:>7,} / {n['need 0.05']:,}"
        )
    shares = [n["within"] / (n["within"] + n["between"]) for n in noises.values()]
    if shares:
        print(f"median within-task share over {len(shares)} functions: {np.median(shares):.0%}")
    for prefix in ("run:", "against:"):
        report_winners(rows, prefix)


def report_by_model(scores: dict[str, dict], tasks: list, suite: str) -> None:
    """Per model of a suite whose task descriptions start with their model (`response`): the mean
    over its tasks of the clipped task score minus GELU's, for the runs' winners (their mean), GELUSine
    and ReLU."""
    model_of = {task.name: task.description.split(" ", 1)[0] for task in tasks}
    columns = {
        "the runs' winners": [n for n in scores if n.startswith("run:")],
        "gelu_sine": ["gelu_sine"],
        "relu": ["relu"],
    }
    columns = {label: names for label, names in columns.items() if names and all(n in scores for n in names)}

    def gap(name: str, task: str) -> float:
        key = f"{suite}|{task}"
        return float(
            np.clip(np.mean(scores[name][key]), -CLIP, CLIP) - np.clip(np.mean(scores["gelu"][key]), -CLIP, CLIP)
        )

    print(f"\n{suite} per model, minus GELU (mean over the model's tasks; below 0 = better):")
    print(f"{'model':<20} tasks  " + "  ".join(f"{label:>18}" for label in columns))
    for model in sorted(set(model_of.values())):
        members = [t for t, m in model_of.items() if m == model]
        cells = [np.mean([np.mean([gap(n, t) for n in names]) for t in members]) for names in columns.values()]
        print(f"{model:<20} {len(members):>5}  " + "  ".join(f"{c:>+18.3f}" for c in cells))


def report_winners(rows: dict[str, dict], prefix: str) -> None:
    runs = [row for name, row in rows.items() if name.startswith(prefix)]
    if runs:
        unseen = [row["all unseen vs gelu"]["mean"] for row in runs]
        kinds = [row["issue 13's kinds vs gelu_sine"]["mean"] for row in runs]
        print(
            f"\nthe {len(runs)} {'runs' if prefix == 'run:' else '--against runs'}' winners: all unseen vs gelu {np.mean(unseen):+.3f} (below 0 in "
            f"{sum(u < 0 for u in unseen)}), issue 13's kinds vs gelu_sine {np.mean(kinds):+.3f} (below 0 in "
            f"{sum(k < 0 for k in kinds)}), both bars in {sum(bool(both_bars(row)) for row in runs)}"
        )


def report_pairs(rows: dict[str, dict], runs: list[str], against: list[str]) -> None:
    """Each --runs winner minus the --against winner in the same place, per group (t-interval over the
    pairs; below 0 = the --runs winner is better), and how many of each meet both bars."""
    pairs = [(a, b) for a, b in zip(runs, against) if a in rows and b in rows]
    print(f"\n--runs minus --against, paired in order ({len(pairs)} pairs; below 0 = the --runs winner is better):")
    for key in ("search kinds vs gelu", "issue 13's kinds vs gelu_sine", "all unseen vs gelu"):
        differences = [rows[a][key]["mean"] - rows[b][key]["mean"] for a, b in pairs]
        print(f"  {key:<30} {interval_text(*t_interval(differences))}")
    met = [sum(bool(both_bars(rows[p[i]])) for p in pairs) for i in (0, 1)]
    print(f"  both bars met: --runs {met[0]}, --against {met[1]} of {len(pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100, help="tasks per kind (seeds 0 and 1)")
    parser.add_argument("--start", type=int, default=DESIGN_START, help="first index of the kinds' draws")
    parser.add_argument("--scores", type=Path, default=Path("design.json"), help="journal of scores")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--only", nargs="+", choices=sorted(FUNCTIONS), help="score these functions (and GELU, GELUSine)"
    )
    parser.add_argument("--runs", nargs="+", type=Path, default=[], help="finished runs whose winners to add")
    parser.add_argument(
        "--against", nargs="+", type=Path, default=[], help="as many finished runs, paired with --runs in order"
    )
    settings_argument(parser, "a config key to change, e.g. lab.hidden=128")
    args = parser.parse_args()
    if args.against and len(args.against) != len(args.runs):
        parser.error(f"--against names {len(args.against)} runs and --runs {len(args.runs)}: pair them one to one")
    config = Config().with_overrides(dict(args.settings))
    labs, kind_of, suites = kind_labs(config, args.size, start=args.start)
    names = list(dict.fromkeys([*REFERENCES, *(args.only or FUNCTIONS)]))
    runs, against = run_winners(args.runs), run_winners(args.against, "against")
    sources = {name: program(FUNCTIONS[name][0]) for name in names} | runs | against
    with CandidateScores(args.scores, args.workers, labs) as scorer:
        entries = {
            name: scorer.score_source(journal_key(name, args.settings, source), source)
            for name, source in sources.items()
        }
    scores = {
        name: by_kind(entry, kind_of, suites) for name, entry in entries.items() if all(entry.get(lab) for lab in labs)
    }
    for name in set(sources) - set(scores):
        print(f"{name}: refused or failed on some lab; left out")
    group_kinds = groups(kind_of, suites)
    references = {ref: scores[ref] for ref in REFERENCES}
    rows = {name: compare(s, references, group_kinds) for name, s in scores.items()}
    noises = {n: noise(s, scores["gelu"], group_kinds["search kinds"]) for n, s in scores.items() if n != "gelu"}
    report(rows, noises, suites)
    if "response" in suites:
        report_by_model(scores, list(labs["response"].suite.tasks), "response")
    if against:
        report_pairs(rows, list(runs), list(against))


if __name__ == "__main__":
    main()
