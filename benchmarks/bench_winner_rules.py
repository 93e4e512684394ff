"""Which rule should pick a run's winner from its validation rows? Judged on the unseen test suites.

    python benchmarks/bench_winner_rules.py RUN_DIR [RUN_DIR ...] [--scores winner_rules.json]

A finished run's `heldout.json` holds every final-check candidate (the top list and the seeds) with
its validation fitness and per-family log-ratios. This script scores every candidate (sandboxed) on
the default config's unseen test suites, per task and seed (journalled in `--scores`, so a second
call scores nothing twice), then prints per run:

* for each rule, the candidate it picks and that candidate's mean paired log-ratio against ReLU,
  GELU and GELUSine on all unseen test tasks (below 0 = the pick is better; the references' numbers
  are the run's own test rows);
* Spearman's ρ across the run's candidates between each validation statistic (the fitness, each
  family, the worst family) and the test fitness per suite: which validation signal ranks the
  candidates as the unseen tests do.

The rules (`actmine.lab.estimate.WINNER_RULES`, the config's `search.winner_rule`) read only
validation rows, never the tests: `mean` (the highest validation fitness), `family_mean` (each
family weighs the same), `maximin` (the best worst family: distributionally robust over the
validation families), `softmin` (a smooth maximin, temperature 0.1) and `references` (the softmin of
the paired differences to the hardest library reference, from the references' own validation rows).
A rule chosen on some runs must be confirmed on runs it did not see.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from actmine.atomic_files import write_text_atomically
from actmine.candidate.sandbox import SandboxLimits, SandboxPool
from actmine.config import Config
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.final_check import reference_families
from actmine.evolve.search_tasks import SearchTasks
from actmine.lab.estimate import WINNER_RULES, paired_interval
from actmine.lab.fitness import Lab

REFERENCES = ("relu", "gelu", "gelu_sine")


def _worst(row: dict) -> float:
    return max(row["families"].values())


def _rank(rule: str, row: dict, references: dict[str, dict] | None = None) -> float:
    """`row`'s score under winner rule `rule`; `references`: the references' validation families
    ({name: families}, `validation_references`)."""
    return WINNER_RULES[rule](row["heldout_fitness"], row["families"], references or {})


def validation_references(final: dict) -> dict[str, dict]:
    """{reference: its per-family validation log-ratios} from a run's heldout.json, as the final
    check hands them to the winner rule (`final_check.reference_families`)."""
    return reference_families(final.get("validation", []))


def finished_runs_arguments(parser: argparse.ArgumentParser, journal: str) -> None:
    """The arguments of a benchmark that reads finished runs: the run directories, the score journal
    (default `journal`) and the sandbox workers that fill it."""
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (heldout.json, programs.sqlite)")
    parser.add_argument("--scores", type=Path, default=Path(journal), help="journal of scores")
    parser.add_argument("--workers", type=int, default=2)


def refuse_unfinished(parser: argparse.ArgumentParser, run_dirs: list[Path]) -> None:
    """Exit with a usage error naming the first of `run_dirs` that is not a finished run directory."""
    for run_dir in run_dirs:
        if not (run_dir / "heldout.json").is_file() or not (run_dir / "programs.sqlite").is_file():
            parser.error(
                f"{run_dir} is not a finished run directory (it needs heldout.json and programs.sqlite): "
                f"finish it with `actmine search --run-dir {run_dir}`"
            )


def candidates(run_dir: Path) -> tuple[dict, list[dict]]:
    """The run's heldout.json and its final-check candidates' validation rows: the top list and the
    seeds, not the blend of the choice (`search.winner_blend`), which no rule chooses."""
    final = json.loads((run_dir / "heldout.json").read_text())
    blended = (final.get("blend") or {}).get("program_id")
    rows = [
        r
        for r in final.get("validation", [])
        if r.get("program_id") not in (None, blended) and r.get("heldout_fitness") is not None and r.get("families")
    ]
    return final, rows


def reference_rows(final: dict, names=REFERENCES) -> dict[str, dict]:
    """{reference: {suite: its per-task, per-seed log-ratios}} from a run's heldout.json test rows."""
    references: dict[str, dict] = {}
    for row in final["test"]:
        if row["program_id"] is None and row["name"] in names:
            references.setdefault(row["name"], {})[row["suite"]] = row["tasks"]
    return references


def source_digest(source: str) -> str:
    """The first 16 hex digits of the source's SHA-256: what a journal key was scored for."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class CandidateScores:
    """Programs' per-task, per-seed log-ratios on named labs (by default the default config's unseen
    test suites), scored in sandboxed workers and journalled (`scores`: {run#program: {lab: {task:
    log-ratios}}}). A source scored once on a lab is not scored on it again (the seeds are candidates
    in every run; runs find the same function): the same program on the same tasks gives the same
    numbers in any worker; a journal entry that lacks one of the labs is scored on that lab only. The
    journal is rewritten (atomically: an interrupted call leaves the last whole one) after each
    program trained, and at the end for programs that only reused a score.

    A key names a place (a run directory and a program id), not a source: a run directory reused for
    another run holds other programs under the same keys. So the journal has a companion,
    `JOURNAL.sources.json`, with each key's `source_digest`; an entry whose digest differs from the
    source now at its key is dropped and scored again. Entries of a journal written before the
    companion existed have no digest and are kept."""

    def __init__(self, journal: Path, workers: int, labs: dict[str, Lab] | None = None):
        if labs is None:
            tasks = SearchTasks.from_config(Config(), progress=False)
            labs = {name: tasks.tests[name] for name in tasks.unseen_tests()}
        self.journal, self.labs = journal, labs
        self.scores: dict[str, dict] = json.loads(journal.read_text()) if journal.exists() else {}
        self.digests_path = journal.with_name(journal.name + ".sources.json")
        self.digests: dict[str, str] = json.loads(self.digests_path.read_text()) if self.digests_path.exists() else {}
        self.by_source: dict[str, dict] = {}
        self.sources: dict[str, str] = {}  # run#program (or a library key) -> its source, as scored
        self.unsaved = False
        self.pool = SandboxPool(workers=workers, limits=SandboxLimits(timeout_s=900, cpu_s=1800, memory_mb=4096))

    def __enter__(self) -> "CandidateScores":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.close()
        self.save()

    def save(self) -> None:
        if self.unsaved:
            write_text_atomically(self.journal, json.dumps(self.scores))
            write_text_atomically(self.digests_path, json.dumps(self.digests))
            self.unsaved = False

    def score(self, run_dir: Path, program_ids: list[int]) -> None:
        database = ProgramDatabase(run_dir / "programs.sqlite", readonly=True)
        try:
            for program_id in program_ids:
                self.score_source(f"{run_dir}#{program_id}", database.get(program_id).source)
        finally:
            database.close()

    def score_source(self, key: str, source: str) -> dict[str, dict | None]:
        """The scores of `source` on every lab, journalled under `key`; only the labs that neither the
        journal's entry nor another key of the same source holds are trained."""
        self.sources[key] = source
        digest = source_digest(source)
        if self.digests.get(key, digest) != digest:  # the key's entry was scored for another source
            print(f"journal entry {key} was scored for another source: scoring it again", flush=True)
            self.scores.pop(key, None)
        if self.digests.get(key) != digest:
            self.digests[key], self.unsaved = digest, True
        known = self.by_source.setdefault(source, {})
        known.update(self.scores.get(key, {}))
        missing = [name for name in self.labs if name not in known]
        if missing:
            futures = {
                name: self.pool.submit(source, self.labs[name], "#" + key.rsplit("#", 1)[-1]) for name in missing
            }
            for name, future in futures.items():
                result = future.result()
                known[name] = {t.name: list(t.seed_log_ratios) for t in result.tasks} if result.ok else None
            print(f"scored {key}" + (f" on {', '.join(missing)}" if len(missing) < len(self.labs) else ""), flush=True)
        entry = {**self.scores.get(key, {}), **{name: known[name] for name in self.labs}}
        if entry != self.scores.get(key):
            self.scores[key], self.unsaved = entry, True
        if missing:
            self.save()
        return entry


def score_candidates(run_dirs: list[Path], journal: Path, workers: int) -> dict[str, dict]:
    """{run#program: {suite: {task: per-seed log-ratios}}} for every final-check candidate."""
    with CandidateScores(journal, workers) as unseen:
        for run_dir in run_dirs:
            unseen.score(run_dir, [row["program_id"] for row in candidates(run_dir)[1]])
    return unseen.scores


def flat(by_suite: dict) -> dict[str, list[float]]:
    return {f"{suite}/{task}": v for suite, tasks in by_suite.items() if tasks for task, v in tasks.items()}


def suite_fitness(tasks: dict[str, list[float]]) -> float:
    """The lab's fitness of one suite: −mean over tasks of the clipped mean log-ratio."""
    return -float(np.mean([np.clip(np.mean(v), -3, 3) for v in tasks.values()]))


def report(run_dir: Path, scores: dict[str, dict]) -> None:
    final, rows = candidates(run_dir)
    rows = [r for r in rows if scores.get(f"{run_dir}#{r['program_id']}")]
    references = reference_rows(final)
    print(f"\n{run_dir}: {len(rows)} candidates")
    known = validation_references(final)
    for name in WINNER_RULES:
        pick = max(rows, key=lambda row: _rank(name, row, known))
        mine = flat(scores[f"{run_dir}#{pick['program_id']}"])
        against = "  ".join(
            f"{ref} {paired_interval(mine, flat(references[ref]))['mean']:+.3f}"
            for ref in REFERENCES
            if ref in references
        )
        print(
            f"  {name:<12} picks {pick['name']:<13} validation {pick['heldout_fitness']:+.3f}  "
            f"worst family {_worst(pick):+.2f} | unseen vs {against}"
        )
    if len(rows) < 4:
        return
    statistics = {"fitness": [r["heldout_fitness"] for r in rows], "worst family": [-_worst(r) for r in rows]}
    for family in rows[0]["families"]:
        statistics[family] = [-r["families"].get(family, 0.0) for r in rows]
    suites = sorted(scores[f"{run_dir}#{rows[0]['program_id']}"])
    tests = {s: [suite_fitness(scores[f"{run_dir}#{r['program_id']}"][s]) for r in rows] for s in suites}
    print("  Spearman ρ across candidates, validation statistic vs test fitness: " + ", ".join(suites))
    for name, values in statistics.items():
        print(f"    {name:<14} " + "  ".join(f"{spearmanr(values, tests[s])[0]:+.2f}" for s in suites))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "winner_rules.json")
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    scores = score_candidates(args.runs, args.scores, args.workers)
    for run_dir in args.runs:
        report(run_dir, scores)


if __name__ == "__main__":
    main()
