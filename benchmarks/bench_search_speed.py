"""What does a CPU-minute of search buy? The default configuration against the one before issue 19's
fused kernels and racing, at the same CPU time, several run seeds, judged on the unseen test suites.

    python benchmarks/bench_search_speed.py [--cpu-minutes 10] [--seeds 0 1 2] [--workers 2] [--baseline DIR] [--keep DIR]

Each run is a default search (`actmine search` in a child process) whose search phase stops at
`--cpu-minutes` of worker time (the time limit is cpu-minutes × 60 ÷ workers of wall-clock time,
the proposal budget large enough never to bind); the end of the run (validation of the top list,
tests) is not counted. `after` is this checkout's default config. `before` is the code of
`--baseline DIR` (a checkout of the commit to compare with, e.g. `git worktree add /tmp/base
cbfd8cd`) with its default config; without `--baseline`, this checkout with `lab.fused: false`. A
baseline older than the three-way split (issue 13), such as 173b6cf, the code when issue 19 was filed
(the fixed `lab` suite, 6 training seeds, eager), has no test suites: its winner (its best search
fitness, as that code chose) is scored on this checkout's unseen suites in a sandboxed worker, and
its "validation" is its held-out suite's fitness. Prints per run the
proposals and rounds it scored, rounds per CPU-minute, the winner's validation fitness and its test
fitness on "all unseen" (−mean log-ratio vs ReLU over the test suites drawn from generators the
search never uses; a pre-split baseline's winner that this checkout's lab refuses, e.g. for NaN at
huge inputs that its probes let through, gives way to its next best program, and the report says
so); then per run seed the paired difference after − before on those unseen tasks
(the two winners per task and seed, 95% cluster-bootstrap interval; below 0 = `after`'s winner
extrapolates better), and the mean of each over run seeds with a t-interval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml
from scipy.stats import t as t_distribution

from actmine.config import Config
from actmine.lab.estimate import paired_interval

HERE = Path(__file__).resolve().parents[1]
MAX_REFUSED = 10  # a pre-split baseline's best programs tried in order when this checkout refuses one


def run(code: Path, lab: dict, seed: int, cpu_minutes: float, workers: int, keep: Path | None = None) -> dict:
    """One search with the code of checkout `code` in a child process; what it found. With `keep`,
    the finished run directory is copied there (for offline studies: bench_kinds.py, bench_winner_rules.py)."""
    config = {
        "search": {"budget": 100_000, "time_limit": round(cpu_minutes * 60 / workers)},
        "executor": {"workers": workers},
        **({"lab": lab} if lab else {}),
    }
    with tempfile.TemporaryDirectory(prefix="actmine-bench-speed-") as run_dir:
        path = Path(run_dir) / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "PYTHONPATH": str(code)}
        # Not from this checkout's directory: `python -m` puts the working directory first on the
        # path, ahead of PYTHONPATH, and the child would run this checkout whatever `code` is.
        check_imports(code, env, run_dir)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "actmine.cli",
                "search",
                "--config",
                str(path),
                "--run-dir",
                str(Path(run_dir) / "run"),
                "--seed",
                str(seed),
                "--quiet",
            ],
            env=env,
            cwd=run_dir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if keep is not None:
            shutil.copytree(Path(run_dir) / "run", keep)
        final = json.loads((Path(run_dir) / "run" / "heldout.json").read_text())
        database = sqlite3.connect(f"file:{Path(run_dir) / 'run' / 'programs.sqlite'}?mode=ro", uri=True)
        try:
            proposals = database.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
            if isinstance(final, list):  # code older than the split (issue 13): one round per proposal
                rounds = database.execute("SELECT COUNT(*) FROM programs WHERE status != 'duplicate'").fetchone()[0]
                ranked = database.execute(
                    "SELECT id, source FROM programs WHERE status = 'ok' ORDER BY fitness DESC, id ASC LIMIT ?",
                    (MAX_REFUSED + 1,),
                ).fetchall()
            else:
                rounds = database.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        finally:
            database.close()
    against: dict[str, dict] = {}  # the winner against each reference on "all unseen" (issue 13's bar)
    refused: list[str] = []
    if isinstance(final, list):
        # Its winner was its best search fitness; its check scored a fixed suite, not the unseen ones.
        winner, tasks, refused = first_accepted(ranked, unseen_scores)
        validation = next((r["heldout_fitness"] for r in final if r.get("program_id") == winner), None)
    else:
        winner = final["winner"]
        unseen = list(Config().tasks.test)  # the suites of generators the search never draws
        tests = {r["suite"]: r for r in final["test"] if r["program_id"] == winner}
        tasks = {f"{suite}/{t}": v for suite in unseen for t, v in tests[suite]["tasks"].items()}
        validation = next((r["heldout_fitness"] for r in final["validation"] if r.get("winner")), None)
        against = {c["against"]: c for c in final["comparisons"] if c["suite"] == "all unseen"}
    scores = [min(max(statistics.fmean(v), -3.0), 3.0) for v in tasks.values()]
    return {
        "proposals": proposals,
        "rounds": rounds,
        "validation": validation,
        "unseen": -statistics.fmean(scores),
        "tasks": tasks,
        "winner": winner,
        "against": against,
        "refused": refused,
    }


def first_accepted(
    ranked: list[tuple[int, str]], score: Callable[[str, str], tuple[dict | None, str]]
) -> tuple[int, dict, list[str]]:
    """The first of a pre-split baseline's programs (best first) that this checkout's lab accepts:
    (its id, its unseen scores, the refusals before it). A program today's lab refuses (e.g. NaN at
    inputs of 1e19, which the old probes let through) is no winner a user could take today: the next
    of its ranking stands in."""
    refused = []
    for winner, source in ranked:
        tasks, error = score(source, f"program {winner}")
        if tasks is not None:
            return winner, tasks, refused
        refused.append(f"#{winner} ({error})")
    raise RuntimeError(f"the {len(ranked)} best programs of the run are all refused: {'; '.join(refused)}")


def check_imports(code: Path, env: dict[str, str], cwd: str) -> None:
    """Refuse to measure a child that would import `actmine` from anywhere but checkout `code`."""
    found = subprocess.run(
        [sys.executable, "-c", "import actmine; print(actmine.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(code.resolve()):
        sys.exit(f"error: the search would import actmine from {found}, not from {code}")


def unseen_scores(source: str, name: str) -> tuple[dict[str, list[float]] | None, str]:
    """A program's per-seed log-ratios on this checkout's unseen test suites (the default config's
    `tasks.test`, the tasks and seeds a run's final check uses), scored in a sandboxed worker; (None,
    the reason) when this checkout's lab refuses it."""
    from actmine.candidate.sandbox import SandboxPool
    from actmine.evolve.search_tasks import SearchTasks

    config = Config()
    tests = SearchTasks.from_config(config, progress=False).tests
    scores: dict[str, list[float]] = {}
    with SandboxPool(1, config.sandbox_limits()) as pool:
        for suite in config.tasks.test:
            evaluation = pool.evaluate(source, tests[suite], name)
            if not evaluation.ok:
                error = evaluation.error or {}
                return None, f"{suite}: {error.get('code')} at {error.get('stage')}"
            scores.update({f"{suite}/{t.name}": list(t.seed_log_ratios) for t in evaluation.tasks})
    return scores, ""


def t_interval(values: list[float], form: str = "+.3f") -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:{form}}"
    half = t_distribution.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:{form}} [{mean - half:{form}}, {mean + half:{form}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the code to compare with (default: this checkout with lab.fused: false)",
    )
    parser.add_argument("--keep", type=Path, help="copy each finished run to KEEP/<before|after>-seed<N>")
    args = parser.parse_args()
    if args.keep is not None and any(
        (args.keep / f"{label}-seed{seed}").exists() for seed in args.seeds for label in ("before", "after")
    ):
        parser.error(f"--keep {args.keep}: a run of these seeds is already kept there; choose another directory")
    before = (args.baseline.resolve(), {}) if args.baseline else (HERE, {"fused": False})
    runs: dict[tuple[str, int], dict] = {}
    for seed in args.seeds:
        for label, (code, lab) in (("before", before), ("after", (HERE, {}))):
            kept = None if args.keep is None else args.keep / f"{label}-seed{seed}"
            r = runs[label, seed] = run(code, lab, seed, args.cpu_minutes, args.workers, kept)
            print(
                f"{label:<6} seed {seed}: {r['proposals']} proposals, {r['rounds']} rounds "
                f"({r['rounds'] / args.cpu_minutes:.1f} per CPU-minute); winner #{r['winner']} validation "
                f"{'n/a' if r['validation'] is None else format(r['validation'], '+.3f')}, all unseen {r['unseen']:+.3f}",
                flush=True,
            )
            for refusal in r["refused"]:
                print(f"         (its best program {refusal} is refused by this checkout's lab: the next stands in)")
            for reference, c in r["against"].items():
                print(f"         vs {reference}: {c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]", flush=True)
    print(f"\nover run seeds (mean, 95% t-interval), {args.cpu_minutes:g} CPU-minutes of search each:")
    for label in ("before", "after"):
        print(
            f"  {label:<6} rounds per CPU-minute "
            f"{t_interval([runs[label, s]['rounds'] / args.cpu_minutes for s in args.seeds], '.1f')}; "
            f"validation {t_interval([v for s in args.seeds if (v := runs[label, s]['validation']) is not None])}; "
            f"all unseen {t_interval([runs[label, s]['unseen'] for s in args.seeds])}"
        )
    print("\nafter's winner − before's on the unseen test tasks (paired by task and seed; below 0 = after better):")
    differences = []
    for seed in args.seeds:
        interval = paired_interval(runs["after", seed]["tasks"], runs["before", seed]["tasks"])
        differences.append(interval["mean"])
        print(f"  seed {seed}: {interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]")
    print(f"  over run seeds: {t_interval(differences)}")


if __name__ == "__main__":
    main()
