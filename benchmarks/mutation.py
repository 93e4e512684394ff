"""Mutation testing of the core modules: how many single-line mistakes would the tests catch?

    make mutation                                  # every core module (slow: an hour or more on 2 cores)
    python benchmarks/mutation.py actmine/evolve/selection.py [--children 2] [--report FILE]

For each chosen module of `CORE` this runs mutmut (https://mutmut.readthedocs.io) in a scratch copy
of the working tree (`.mutation/`, ignored by git): mutmut writes one mutant per operator, constant,
comparison or string of the module and runs, for each, the module's test files of `CORE` that
executed the mutated function. A mutant is *killed* when those tests fail and *survives* when they
pass; a timeout is listed with the survivors (see `KILLED`), and the module's score is
killed ÷ (killed + survived + no tests + timeout).

The report (default `benchmarks/results/mutation.md`, and `.json` beside it) gives the score per
module and every surviving mutant with its diff line and, where `benchmarks/mutation_equivalent.toml`
names it, why it is equivalent or harmless; a second score leaves those explained survivors out
(killed ÷ non-equivalent mutants, the usual definition). A report of some modules keeps the other modules'
rows of the previous report, so modules can be run one at a time.

mutmut runs a mutant's tests by node id, so every test id must be selectable from pytest's command line:
an id holding an escape (`\\n`, `\\xe9`) is not, and mutmut reports its mutants as timeouts.
tests/conftest.py builds readable ids for text parameters and refuses a collection with such an id.

Slow by design: it is not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The probes and their parts (probes.py, probe_calls.py, cost.py, descriptors.py) share one set of tests.
PROBE_TESTS = [
    "tests/test_probes.py",
    "tests/test_op_counter.py",
    "tests/test_probe_descriptors.py",
    "tests/test_probe_pointwise.py",
    "tests/test_probe_failures.py",
]

# The candidate policy and its parts (source.py, policy_*.py) share one set of tests.
POLICY_TESTS = [
    "tests/test_source.py",
    "tests/test_policy.py",
    "tests/test_policy_denylist.py",
    "tests/test_policy_attributes.py",
    "tests/test_policy_bounds.py",
    "tests/test_policy_files_and_constants.py",
    "tests/test_policy_names.py",
    "tests/test_policy_program.py",
    "tests/test_policy_statements.py",
]

# The program database and its parts (database.py, program_records.py, database_schema.py, database_file.py).
DATABASE_TESTS = ["tests/test_database.py", "tests/test_database_rounds.py"]

#: Core module → the test files that test it (mutmut runs, per mutant, the ones that executed the
#: mutated function). One place: adding a module to mutation testing is one entry here.
CORE: dict[str, list[str]] = {
    "actmine/lab/tasks.py": ["tests/test_tasks.py", "tests/test_task_laws.py", "tests/test_lab_aggregation.py"],
    "actmine/lab/task_families.py": ["tests/test_tasks.py", "tests/test_task_laws.py", "tests/test_lab_aggregation.py"],
    "actmine/lab/ensemble.py": ["tests/test_ensemble.py", "tests/test_lab_aggregation.py"],
    "actmine/lab/fitness.py": ["tests/test_fitness.py", "tests/test_lab_aggregation.py", "tests/test_fused.py"],
    "actmine/lab/estimate.py": ["tests/test_estimate.py"],
    "actmine/candidate/source.py": POLICY_TESTS,
    "actmine/candidate/policy_lists.py": POLICY_TESTS,
    "actmine/candidate/policy_scopes.py": POLICY_TESTS,
    "actmine/candidate/policy_values.py": POLICY_TESTS,
    "actmine/candidate/policy_checker.py": POLICY_TESTS,
    "actmine/candidate/probes.py": PROBE_TESTS,
    "actmine/candidate/probe_calls.py": PROBE_TESTS,
    "actmine/candidate/cost.py": PROBE_TESTS,
    "actmine/candidate/descriptors.py": PROBE_TESTS,
    "actmine/evolve/selection.py": ["tests/test_selection.py"],
    "actmine/evolve/cells.py": ["tests/test_selection.py", "tests/test_database.py"],
    "actmine/evolve/database.py": DATABASE_TESTS,
    "actmine/evolve/program_records.py": DATABASE_TESTS,
    "actmine/evolve/database_schema.py": DATABASE_TESTS,
    "actmine/evolve/database_file.py": DATABASE_TESTS,
    "actmine/evolve/database_results.py": DATABASE_TESTS,
    "actmine/evolve/mutators/spend.py": ["tests/test_llm_spend.py"],
    "actmine/transfer/summary.py": ["tests/test_transfer_summary.py"],
    "actmine/reproduce/rules.py": ["tests/test_reproduce_rules.py"],
}

#: mutmut's statuses, grouped for the score (the others, e.g. "skipped", do not count). "timeout"
#: is not counted as killed: mutmut 3.8.1 also reports a test run that raised inside its forked
#: runner as a timeout (a mutant of the policy that survives the tests was seen so reported), so a
#: timeout is listed with the survivors, to be checked by hand, and lowers the score.
KILLED = {"killed", "segfault", "caught by type check", "suspicious"}
NOT_KILLED = {"survived", "no tests", "timeout"}

WORK = ROOT / ".mutation"  # default scratch place (--work): one per concurrent run
DEFAULT_REPORT = ROOT / "benchmarks" / "results" / "mutation.md"
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.toml"
MUTMUT = Path(sys.executable).with_name("mutmut")  # installed beside this Python (make mutation)


def scratch_copy(modules: list[str], work: Path, extra_tests: list[str], again: bool = False) -> Path:
    """The working tree (tracked and untracked, not ignored files) copied to `.mutation/tree`, with
    a `[tool.mutmut]` section for the chosen modules and their tests.

    `again`: over the tree of an earlier run, keeping mutmut's results (`mutants/`): the copies of
    the modules that are not mutated are removed there so that mutmut copies them afresh, and the
    test statistics so that it learns again which tests run which function."""
    tree = work / "tree"
    if again:
        mutated = {tree / "mutants" / m for m in modules}
        for stale in (tree / "mutants" / "actmine").rglob("*.py"):
            if stale not in mutated:
                stale.unlink()
        (tree / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(tree, ignore_errors=True)
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    tests = sorted({t for m in modules for t in CORE[m]} | set(extra_tests))
    tests = [t for t in tests if (tree / t).is_file()]  # a planned test file may not exist yet
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["actmine"]\n'
        f"only_mutate = {json.dumps(modules)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        # torch and the sandbox's worker processes are not fork-safe from a process that ran tests
        'process_isolation = "forkserver"\n'
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
    )
    with open(tree / "pyproject.toml", "a") as handle:
        handle.write(section)
    return tree


def run_mutmut(tree: Path, children: int, work: Path, names: list[str] = ()) -> float:
    """`mutmut run`: every mutant without a result, or (`names`) these mutants again."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    with open(work / "mutmut.log", "a") as log:
        subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(children), *names],
            cwd=tree,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return time.monotonic() - started


def run_again(tree: Path, children: int, work: Path) -> float:
    """Test again, with the current tests, the mutants an earlier run did not kill; mutants of
    functions changed since then have no result yet and are tested first."""
    not_killed = [name for name, status in statuses(tree).items() if status in NOT_KILLED]
    seconds = run_mutmut(tree, children, work)
    still_there = set(statuses(tree))
    return seconds + run_mutmut(tree, children, work, [n for n in not_killed if n in still_there])


def statuses(tree: Path) -> dict[str, str]:
    """mutant name → status, from `mutmut results --all true`."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+(\S+): (.+)$", out, re.M)}


def diff_line(tree: Path, name: str) -> str:
    """The mutant's changed line (the `+` line of `mutmut show`)."""
    out = subprocess.run([str(MUTMUT), "show", name], cwd=tree, capture_output=True, text=True).stdout
    added = [line[1:].strip() for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(added)[:200]


def module_of(name: str, modules: list[str]) -> str | None:
    dotted = {m[:-3].replace("/", "."): m for m in modules}
    prefix = name.split(".x_")[0].split(".xǁ")[0]
    return dotted.get(prefix)


def summarise(tree: Path, modules: list[str], seconds: float) -> dict[str, dict]:
    rows: dict[str, dict] = {
        m: {"killed": 0, "survived": 0, "no tests": 0, "timeout": 0, "other": 0, "survivors": []} for m in modules
    }
    for name, status in sorted(statuses(tree).items()):
        module = module_of(name, modules)
        if module is None:
            continue
        row = rows[module]
        if status in KILLED:
            row["killed"] += 1
        elif status in NOT_KILLED:
            row[status] += 1
            row["survivors"].append({"name": name, "status": status, "diff": diff_line(tree, name)})
        else:
            row["other"] += 1
    for row in rows.values():
        counted = row["killed"] + row["survived"] + row["no tests"] + row["timeout"]
        row["score"] = row["killed"] / counted if counted else None
        row["seconds_share"] = seconds / len(modules)
    return rows


def write_report(rows: dict[str, dict], path: Path) -> None:
    """The report's json and markdown: these rows over the previous report's other modules, every
    survivor with its reason from `mutation_equivalent.toml` (read now, so a reason added later shows)."""
    json_path = path.with_suffix(".json")
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged = {m: r for m, r in previous.items() if m in CORE}
    merged.update(rows)
    equivalent = tomllib.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    for module, row in merged.items():
        for survivor in row["survivors"]:
            survivor["why"] = equivalent.get(module, {}).get(survivor["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(merged, indent=1, sort_keys=True))
    lines = [
        "# Mutation testing of the core modules",
        "",
        "`python benchmarks/mutation.py [MODULE …]` (mutmut; see the script's docstring). Score = killed ÷ "
        "(killed + survived + no tests + timeout). *Explained*: survivors that mutation_equivalent.toml says are "
        "equivalent (the same behaviour) or harmless; the last column leaves them out of the count (the "
        "usual mutation score, killed ÷ non-equivalent mutants).",
        "",
        "| module | mutants | killed | survived | no tests | timeout | explained | score | score, explained left out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for module in sorted(merged):
        r = merged[module]
        timeouts = r.get("timeout", 0)
        total = r["killed"] + r["survived"] + r["no tests"] + timeouts
        explained = sum(1 for s in r["survivors"] if s["why"])
        score = f"{100 * r['score']:.1f}%" if r["score"] is not None else "–"
        net = f"{100 * r['killed'] / (total - explained):.1f}%" if total > explained else "–"
        lines.append(
            f"| `{module}` | {total} | {r['killed']} | {r['survived']} | {r['no tests']} | {timeouts} | "
            f"{explained} | {score} | {net} |"
        )
    missing = [m for m in CORE if m not in merged]
    if missing:
        lines += [
            "",
            "Not measured in this report (run `python benchmarks/mutation.py MODULE`): "
            + ", ".join(f"`{m}`" for m in missing)
            + ".",
        ]
    for module in sorted(merged):
        survivors = merged[module]["survivors"]
        if not survivors:
            continue
        lines += ["", f"## Survivors in `{module}`", ""]
        for s in survivors:
            why = s["why"] or "not yet explained"
            lines.append(f"- `{s['name']}` ({s['status']}): `{s['diff']}`: {why}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"core modules (default: all of {len(CORE)})")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--work", type=Path, default=WORK, help="scratch directory (default .mutation/)")
    parser.add_argument("--tests", nargs="*", default=[], help="more test files to run (beside CORE's)")
    parser.add_argument(
        "--again",
        action="store_true",
        help="in the --work tree of an earlier run: test its survivors again with the current "
        "tests (and the mutants of functions changed since)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="run nothing: merge these earlier reports' modules into --report",
    )
    args = parser.parse_args(argv)
    if args.merge:
        rows = {}
        for path in args.merge:
            rows.update({m: r for m, r in json.loads(path.read_text()).items() if m in CORE})
        write_report(rows, args.report)
        print(f"{len(rows)} modules merged into {args.report}")
        return 0
    modules = args.modules or list(CORE)
    unknown = [m for m in modules if m not in CORE]
    if unknown:
        print(
            f"not a core module: {unknown[0]} (known: {', '.join(CORE)}; add it to CORE with its tests)",
            file=sys.stderr,
        )
        return 2
    if args.again and not (args.work / "tree" / "mutants").is_dir():
        print(f"--again needs the tree of an earlier run in {args.work}; run without --again first", file=sys.stderr)
        return 2
    tree = scratch_copy(modules, args.work, args.tests, again=args.again)
    seconds = (run_again if args.again else run_mutmut)(tree, args.children, args.work)
    rows = summarise(tree, modules, seconds)
    write_report(rows, args.report)
    for module, r in rows.items():
        score = f"{100 * r['score']:.1f}%" if r["score"] is not None else "–"
        print(
            f"{module}: {score} ({r['killed']} killed, {r['survived']} survived, {r['no tests']} no tests, "
            f"{r['timeout']} timeouts)"
        )
    print(f"{seconds:.0f} s; report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
