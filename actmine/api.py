"""actmine from Python: run a search, read a run, score activations (docs/api.md).

    import actmine
    run = actmine.search({"search": {"budget": 50}}, run_dir="runs/try")   # or a Config, a YAML path, None
    run = actmine.open_run("runs/try")          # read-only; works while a search writes the run
    run.programs()                              # pandas.DataFrame, one row per proposal
    run.best(5)                                 # the top 5 by selection score
    act = run.best_module()                     # the winner as an nn.Module, through the candidate policy
    run.lineage(act.program_id)                 # the program and its ancestors (first parents), newest first
    run.heldout().validation                    # the end-of-run validation rows
    actmine.evaluate("gelu_sine", suite="lab")  # the numbers of `actmine evaluate gelu_sine --json`
    actmine.compare(["relu", "gelu", "pack.py"])

The top layer, beside `cli.py`: it imports from every layer and nothing imports it except
`actmine/__init__.py` (lazily, so that `import actmine` stays light) and `serve` (the viewer reads
runs through `open_run`). `evaluate` and `compare`
build the lab and run the targets with the functions the CLI uses (`targets.lab_for`,
`targets.evaluate_targets`, `targets.pack_members`), so they give what `actmine evaluate/compare --json`
give. Program sources from a run are untrusted: `best_module` compiles one only through the
candidate policy (`candidate.loader.compile_programs`: `check_source` then the restricted
namespace), never by running its text as plain code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from .candidate.probes import ProbeBudget
from .candidate.sandbox import SandboxLimits
from .config import Config
from .evolve.controller import Search
from .run_files import CONFIG_SNAPSHOT, DATABASE, stored_config
from .evolve.database import ProgramDatabase, ProgramRecord
from .lab.fitness import Evaluation, Lab
from .targets import UsageError, evaluate_targets, lab_for, object_target, pack_members, scoring_config

__all__ = ["Heldout", "Run", "compare", "evaluate", "open_run", "search"]

#: The columns of `Run.programs()`, in order (ProgramRecord's fields, `parent_id` = the first parent).
PROGRAM_COLUMNS = (
    "id",
    "proposal_index",
    "status",
    "fitness",
    "fitness_se",
    "score",
    "rounds",
    "settled",
    "ood_log_ratio",
    "island",
    "cell",
    "generation",
    "parent_id",
    "parent_ids",
    "mutator",
    "model",
    "rationale",
    "failure_stage",
    "failure_code",
    "failure_message",
    "duplicate_of",
    "fingerprint",
    "family_log_ratios",
    "seconds",
    "created_at",
    "source",
)
_INTEGER_COLUMNS = {
    "id": "int64",
    "proposal_index": "int64",
    "rounds": "int64",
    "island": "int64",
    "generation": "int64",
    "parent_id": "Int64",
    "duplicate_of": "Int64",
}
_NUMBER_COLUMNS = ("fitness", "fitness_se", "score", "ood_log_ratio", "seconds", "created_at")

ConfigLike = Config | Mapping[str, Any] | str | os.PathLike | None
Activation = str | os.PathLike | nn.Module | Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Search and runs
# --------------------------------------------------------------------------------------------


def load_config(config: ConfigLike = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """A validated `Config` from a Config, a dict shaped like the YAML file, a YAML file's path, or
    None (the embedded defaults); `overrides` replace dotted keys ({"search.budget": 50}). A bad
    key or value raises `ConfigError` (a ValueError) with the message the CLI prints."""
    if isinstance(config, Config):
        loaded = config
    elif isinstance(config, Mapping):
        loaded = Config.from_dict(dict(config), source="config dict")
    else:
        loaded = Config.load(config)
    return loaded.with_overrides(dict(overrides)) if overrides else loaded


def search(
    config: ConfigLike = None,
    run_dir: str | os.PathLike = "runs/default",
    *,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> "Run":
    """Run a search in `run_dir` (an existing run there is resumed, as `actmine search --run-dir`;
    with `config=None`, from that run's own config.yaml) and return its handle, with the search's
    summary in `Run.summary`. `progress`: the live view on the terminal. In the main thread Ctrl-C,
    SIGTERM and SIGHUP stop the search cleanly; another thread may call it too (no handlers there).

    Raises `ConfigError` for a bad config, `RunLocked` when another search holds the directory,
    `DatabaseError` / `RunDirError` for a run directory that cannot be used."""
    config = stored_config(run_dir) if config is None else config
    summary = Search(load_config(config, overrides), Path(run_dir), live=progress).run()
    return Run(Path(run_dir), int(summary["run_id"]), summary)


def open_run(run_dir: str | os.PathLike) -> "Run":
    """The latest run in `run_dir`, opened read-only (each method reads a fresh snapshot, so a run
    that a search is writing can be read). FileNotFoundError when the directory holds no run
    database; `DatabaseError` when the file is damaged or from a newer actmine."""
    run_dir = Path(run_dir)
    if not (run_dir / DATABASE).is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a run directory (no {DATABASE}); give the run directory "
            "of an `actmine search` or of actmine.search()"
        )
    with ProgramDatabase(run_dir / DATABASE, readonly=True) as db:
        run = db.latest_run()
    if run is None:
        raise FileNotFoundError(f"{str(run_dir)!r} holds no run yet")
    return Run(run_dir, run.id)


@dataclass(frozen=True, eq=False)  # DataFrames have no single truth value to compare by
class Heldout:
    """The end-of-run results (`report.html.final_results`): the winner chosen on the validation
    pools (None before the check), and the validation, test and comparison rows as DataFrames (one
    row per result dict as recorded; text in them is untrusted)."""

    winner: int | None
    winner_chosen_by: str | None
    validation: pd.DataFrame
    test: pd.DataFrame
    comparisons: pd.DataFrame
    # the validation's choice blended with a reference: {reference, weight, chosen, program_id (the
    # blend, the winner), error (why there is no blend)}; None when the run does not blend
    blend: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Run:
    """A handle on one run in a run directory. It holds no open connection: every method opens the
    database read-only, reads, and closes it."""

    run_dir: Path
    run_id: int
    summary: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)  # from search()

    def _database(self) -> ProgramDatabase:
        return ProgramDatabase(self.run_dir / DATABASE, readonly=True)

    def status(self) -> str:
        """ "running", "finished" or "interrupted" ("interrupted" too for a run the database still calls
        running whose controller is gone: killed by SIGKILL or out of memory, with nothing left to say so)."""
        with self._database() as db:
            return db.get_run(self.run_id).status

    def config(self) -> Config:
        """The run's configuration (its config.yaml snapshot, else the database's copy)."""
        snapshot = self.run_dir / CONFIG_SNAPSHOT
        if snapshot.is_file():
            return Config.load(snapshot)
        with self._database() as db:
            return Config.from_dict(db.get_run(self.run_id).config, source=str(self.run_dir / DATABASE))

    def programs(self, status: str | None = None) -> pd.DataFrame:
        """Every proposal of the run in insertion order, one row each (`PROGRAM_COLUMNS`), or only
        those of one status ("ok", "failed", "duplicate")."""
        with self._database() as db:
            return _frame(db.programs(self.run_id, status=status))

    def best(self, n: int = 5) -> pd.DataFrame:
        """The n best settled ok programs by selection score (the lower confidence bound of the
        fitness), best first: the search's own ranking (`ProgramDatabase.top`)."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"best(n): n is how many programs, a whole number ≥ 0; got {n!r}")
        with self._database() as db:  # more than the run holds is all of them (SQLite's LIMIT stops at int64)
            return _frame(db.top(self.run_id, min(int(n), 2**62)))

    def lineage(self, program_id: int) -> pd.DataFrame:
        """The program and its ancestors through each one's first parent (the program it was
        mutated from; the others are inspirations), newest first, as in the report's lineage."""
        with self._database() as db:
            chain, record, seen = [], self._program(db, program_id), set()
            while record is not None and record.id not in seen:
                seen.add(record.id)
                chain.append(record)
                record = db.get(record.parent_ids[0]) if record.parent_ids else None
        return _frame(chain)

    def heldout(self) -> Heldout:
        """The end-of-run validation and test results (heldout.json, else the database)."""
        from .report.html import final_results

        with self._database() as db:
            results = final_results(self.run_dir, db, self.run_id)
        return Heldout(
            results["winner"],
            results.get("winner_chosen_by"),
            *(_results_frame(results[key]) for key in ("validation", "test", "comparisons")),
            results.get("blend"),
        )

    def best_module(self, program_id: int | None = None) -> nn.Module:
        """A program as an `nn.Module`: `program_id`, else the winner chosen on validation, else
        (before the end-of-run check) the best by selection score. The source goes through the
        candidate policy and the restricted namespace (as `actmine export` + `load_pack`), and the
        module's class carries the program's data (`program_id`, `search_fitness`,
        `heldout_fitness`, `formula`, `info`). It runs in this process without the sandbox's limits.
        LookupError when there is no such program; `CandidateError` when the policy refuses it."""
        from .candidate.loader import compile_programs, module_name_for
        from .language.files import ProgramFile
        from .report.export import program_entry
        from .report.html import heldout_results

        with self._database() as db:
            record = self._program(db, program_id if program_id is not None else self._default_program(db))
            validation = heldout_results(self.run_dir, db, self.run_id)[0].get(record.id)
        entry = program_entry(record, self.run_dir.resolve(), validation)
        path = (self.run_dir / DATABASE).resolve()
        classes = compile_programs(ProgramFile((entry,)), f"{path} (program {record.id})", module_name_for(path))
        return classes[entry.name]()

    def _default_program(self, db: ProgramDatabase) -> int:
        from .report.html import final_results

        winner = final_results(self.run_dir, db, self.run_id)["winner"]
        if winner is not None:
            return winner
        best = db.best(self.run_id)
        if best is None:
            raise LookupError(f"{self.run_dir} has no scored program yet")
        return best.id

    def _program(self, db: ProgramDatabase, program_id: int) -> ProgramRecord:
        record = db.get(int(program_id))
        if record is None or record.run_id != self.run_id:
            raise LookupError(f"no program {program_id} in the run of {self.run_dir}")
        return record


def _results_frame(rows: list[dict]) -> pd.DataFrame:
    """Result rows as a DataFrame; `program_id` as integers (<NA> for a library reference)."""
    frame = pd.DataFrame(rows)
    if "program_id" in frame.columns:
        frame["program_id"] = pd.array([_program_id(value) for value in frame["program_id"]], dtype="Int64")
    return frame


def _program_id(value: Any) -> int | None:
    """A result row's program id as an integer, or None: a library reference, or a hand-edited
    heldout.json's id that no SQLite row can have (beyond int64 it was an OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if value != int(value) or not -(2**63) <= int(value) < 2**63:
        return None
    return int(value)


def _frame(records: Iterable[ProgramRecord]) -> pd.DataFrame:
    """ProgramRecords as a DataFrame with `PROGRAM_COLUMNS` (ids as integers; missing numbers NaN,
    a missing parent or original <NA>), also when there are none."""
    rows = [
        {**record.to_dict(), "parent_id": record.parent_ids[0] if record.parent_ids else None} for record in records
    ]
    frame = pd.DataFrame(
        [{column: row[column] for column in PROGRAM_COLUMNS} for row in rows], columns=list(PROGRAM_COLUMNS)
    )
    frame = frame.astype(_INTEGER_COLUMNS)
    frame[list(_NUMBER_COLUMNS)] = frame[list(_NUMBER_COLUMNS)].astype("float64")
    return frame.astype({"settled": "bool"})


# --------------------------------------------------------------------------------------------
# Scoring activations (the CLI's `evaluate` and `compare`)
# --------------------------------------------------------------------------------------------


def evaluate(
    activation: Activation,
    *,
    suite: str = "lab",
    seeds: int | None = None,
    steps: int | None = None,
    device: str = "cpu",
    max_flops: float = ProbeBudget.max_flops_per_element,
    allow_batch_dependent: bool = False,
    timeout: float = SandboxLimits.timeout_s,
    memory_mb: int = SandboxLimits.memory_mb,
    name: str | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score one activation on the lab, as `actmine evaluate TARGET --json` with the same options
    (`Evaluation.to_dict()` is that JSON). `activation`: a registry name, a .py file defining
    `activation_function(x)` or `PACK.py:NAME` (run only in a sandboxed worker, under `timeout`
    seconds and `memory_mb`), or your own nn.Module or callable (trusted: it runs here, named
    `name`; a program compiled from a file or a run -- `Run.best_module()`, a pack program,
    `best_activation.activation_function` -- is not yours, and runs in a sandboxed worker). A refused
    candidate is returned with `ok` False, not raised; bad options raise ValueError."""
    lab, limits = _lab_and_limits(suite, seeds, steps, device, max_flops, allow_batch_dependent, timeout, memory_mb)
    (evaluation,) = _score([activation], lab, limits, [name], progress, expand_packs=False)
    return evaluation


def compare(
    targets: Sequence[Activation],
    *,
    suite: str = "lab",
    seeds: int | None = None,
    steps: int | None = None,
    device: str = "cpu",
    max_flops: float = ProbeBudget.max_flops_per_element,
    allow_batch_dependent: bool = False,
    timeout: float = SandboxLimits.timeout_s,
    memory_mb: int = SandboxLimits.memory_mb,
    progress: bool = False,
) -> list[Evaluation]:
    """Score several activations on one lab, as `actmine compare A B … --json`: one Evaluation per
    target in order, an export pack given alone standing for each of its programs."""
    if isinstance(targets, (str, os.PathLike)) or not targets:
        raise ValueError(
            "compare: give a list of one or more activations (registry names, .py files, "
            "PACK.py:NAME, modules or callables)"
        )
    lab, limits = _lab_and_limits(suite, seeds, steps, device, max_flops, allow_batch_dependent, timeout, memory_mb)
    return _score(list(targets), lab, limits, [None] * len(targets), progress, expand_packs=True)


def _lab_and_limits(
    suite: str,
    seeds: int | None,
    steps: int | None,
    device: str,
    max_flops: float,
    allow_batch_dependent: bool,
    timeout: float,
    memory_mb: int,
) -> tuple[Lab, SandboxLimits]:
    """The CLI's lab and sandbox limits for these options (`targets.scoring_config`, `lab_for`); its
    usage errors as ValueError."""
    try:
        config = scoring_config(
            str(suite),
            seeds=seeds,
            steps=steps,
            max_flops=max_flops,
            allow_batch_dependent=allow_batch_dependent,
            timeout=timeout,
            memory_mb=memory_mb,
        )
        return lab_for(config, device), config.sandbox_limits()
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _score(
    targets: list[Activation],
    lab: Lab,
    limits: SandboxLimits,
    names: list[str | None],
    progress: bool,
    expand_packs: bool,
) -> list[Evaluation]:
    """Texts (names, files, pack programs) through `targets.evaluate_targets` (as the CLI) in one batch;
    modules and callables evaluated here. Results in the order of the (expanded) targets."""
    plan: list[tuple[str, Any]] = []  # ("text", a text or a program's Target) or ("object", a module's Target)
    for target, name in zip(targets, names):
        if isinstance(target, (str, os.PathLike)):
            texts = pack_members([os.fspath(target)]) if expand_packs else [os.fspath(target)]
            plan += [("text", text) for text in texts]
        elif isinstance(target, nn.Module) or callable(target):
            resolved = object_target(target, name or _object_name(target))
            # a program compiled here (best_module, a pack's) is scored in a sandboxed worker
            plan.append(("text", resolved) if resolved.source is not None else ("object", resolved))
        else:
            raise ValueError(
                f"cannot evaluate {target!r}: give a registry name, a .py file, PACK.py:NAME, an "
                "nn.Module or a callable"
            )
    texts = [target for kind, target in plan if kind == "text"]
    try:  # no sandbox pool to start when every target is an object
        scored = iter(evaluate_targets(lab, texts, limits, show_progress=progress) if texts else [])
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return [next(scored) if kind == "text" else lab.evaluate(t.module, name=t.name) for kind, t in plan]


def _object_name(target: Any) -> str:
    """A readable name for a module or callable given without one."""
    return getattr(target, "__name__", None) or type(target).__name__
