"""Suites of synthetic regression tasks: a named list of tasks plus the training seeds.

A suite entry is a task of one of the four families (`polynomial`, `harmonic`, `feynman`, `formula`:
constructors of one `Task`, with an in-distribution (ID) and an out-of-distribution (OOD) split, in
`task_families.py`) or a generator entry that draws tasks (`generators.py`). `generate(task, seed,
...)` draws the points deterministically from (task, seed) and standardises inputs and targets with
statistics of the ID training points only, so nothing about the OOD split leaks into training.

The task families are re-exported here, so `actmine.lab.tasks` stays the one import for tasks and
suites; `task_families` and `generators` import nothing from this module (no import cycle).
"""

from __future__ import annotations

import inspect
import json
import reprlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import sympy  # noqa: F401  (part of this module's namespace before the split; tests patch `tasks.sympy`)
import yaml

from ..yaml_text import UnreadableFile, load_yaml, read_small_text, yaml_error_text
from .generators import get_generator
from .task_families import (  # noqa: F401  (re-exported: the task families were defined here)
    FAMILIES,
    Box,
    FeynmanEquation,
    SuiteError,
    Task,
    TaskData,
    _check_formula_syntax,
    _check_range,
    _check_seed,
    _generate,
    _sample_box,
    feynman,
    feynman_equations,
    formula,
    generate,
    harmonic,
    parse_expression,
    polynomial,
    stable_seed,
)


# The fields of a suite entry that names a generator (see docs/lab.md, "Task generators").
GENERATOR_ENTRY_FIELDS = ("generator", "params", "index", "indexes", "start", "count", "name", "family")
MAX_DRAWS_PER_ENTRY = 100_000
MAX_SEEDS = 1000  # training seeds of a suite: each is a model per task
# Draws already made in this process, by (generator, params, index): a draw is a pure function of
# those, and a worker rebuilds the 48 tasks of every sample it is sent from their specs (an
# expression draw re-runs its domain checks: ~3 ms each, 0.13 s a sample, a fifth of an evaluation).
DRAW_MEMO_SIZE = 4096
_drawn: OrderedDict[tuple[str, str, int], Task] = OrderedDict()


def draw_task(generator: Any, index: int) -> Task:
    """`generator.draw(index)`, remembered (`DRAW_MEMO_SIZE` draws, the oldest forgotten first)."""
    key = (generator.name, json.dumps(generator.params(), sort_keys=True), int(index))
    task = _drawn.get(key)
    if task is None:
        task = _drawn[key] = generator.draw(index)
        if len(_drawn) > DRAW_MEMO_SIZE:
            _drawn.popitem(last=False)
    return task


def _entry_indexes(args: Mapping[str, Any], label: str) -> range:
    """The draw indexes a generator entry asks for: one of 'index', 'indexes: [start, stop]' or
    'count' (+ 'start'), each checked."""

    def integer(field_name: str, minimum: int) -> int:
        value = args[field_name]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise SuiteError(f"{label}: field {field_name!r} must be an integer >= {minimum}, got {value!r}")
        return value

    forms = [f for f in ("index", "indexes", "count") if f in args]
    if len(forms) != 1:
        raise SuiteError(
            f"{label}: give exactly one of 'index' (one task), 'indexes: [start, stop]' (the "
            f"indexes start..stop-1) or 'count' (with an optional 'start'); got "
            f"{', '.join(forms) or 'none'}"
        )
    if "start" in args and "count" not in args:
        raise SuiteError(f"{label}: field 'start' goes with 'count'; with 'indexes' write [start, stop]")
    if "name" in args and "index" not in args:
        raise SuiteError(f"{label}: field 'name' names one task; use it with 'index', not with a range")
    if "index" in args:
        indexes = range(integer("index", 0), args["index"] + 1)
    elif "count" in args:
        start = integer("start", 0) if "start" in args else 0
        indexes = range(start, start + integer("count", 1))
    else:
        pair = args["indexes"]
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            or not 0 <= pair[0] < pair[1]
        ):
            raise SuiteError(
                f"{label}: field 'indexes' must be [start, stop] with 0 <= start < stop (the indexes "
                f"start..stop-1, as Python's range), got {pair!r}"
            )
        indexes = range(pair[0], pair[1])
    return indexes


def expand_generator_entry(definition: Mapping[str, Any], where: str = "task") -> list[Task]:
    """The tasks of a suite entry {generator, params, index | indexes: [start, stop) | count (+ start)}.

    A drawn task's own `to_dict()` ({family, generator, params, index, name}) is such an entry with
    one index, so this also rebuilds drawn tasks.
    """
    args = dict(definition)
    generator = args.get("generator")
    label = f"{where} (generator {generator!r})"
    unknown = sorted(set(args) - set(GENERATOR_ENTRY_FIELDS))
    if unknown:
        raise SuiteError(
            f"{label}: unknown field(s) {', '.join(unknown)} for a generator entry; "
            f"allowed: {', '.join(GENERATOR_ENTRY_FIELDS)}"
        )
    if not isinstance(generator, str):
        raise SuiteError(f"{where}: field 'generator' must be a generator name, got {generator!r}")
    params = args.get("params", {})
    if not isinstance(params, Mapping):
        raise SuiteError(f"{label}: field 'params' must be a mapping of parameter names to values, got {params!r}")

    indexes = _entry_indexes(args, label)
    if len(indexes) > MAX_DRAWS_PER_ENTRY:
        raise SuiteError(f"{label}: {len(indexes)} draws in one entry; at most {MAX_DRAWS_PER_ENTRY}")
    try:
        chosen = get_generator(generator, **dict(params))
        family = args.get("family", chosen.family)
        if family != chosen.family:
            raise SuiteError(
                f"field 'family' is {family!r}, but generator {generator!r} draws "
                f"{chosen.family!r} tasks; drop the field or fix it"
            )
        drawn = [draw_task(chosen, i) for i in indexes]
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if "name" in args and args["name"] != drawn[0].name:
        task = drawn[0]
        drawn = [
            Task(
                str(args["name"]),
                task.family,
                task.variables,
                task.target,
                task.id_box,
                task.ood_box,
                {**task.spec, "name": str(args["name"])},
                task.description,
            )
        ]
    return drawn


def build_task(definition: Mapping[str, Any], where: str = "task") -> Task:
    """Build a task from a mapping {"family": ..., **arguments}, as found in a suite file.

    A mapping with a "generator" field is a drawn task ({generator, params, index}; see
    `expand_generator_entry`), which is how a drawn task's `to_dict()` is rebuilt.
    """
    if not isinstance(definition, Mapping):
        raise SuiteError(f"{where}: must be a mapping with a 'family' field, got {definition!r}")
    if "generator" in definition:
        tasks = expand_generator_entry(definition, where)
        if len(tasks) != 1:
            raise SuiteError(
                f"{where}: a single task was expected; this generator entry draws {len(tasks)} "
                "(use 'index', or put the entry in a suite's task list)"
            )
        return tasks[0]
    args = dict(definition)
    family = args.pop("family", None)
    label = f"{where} ({args['name']!r})" if "name" in args else where
    if family not in FAMILIES:
        raise SuiteError(
            f"{label}: field 'family' must be one of {', '.join(FAMILIES)}, got {family!r} "
            "(or draw tasks with a 'generator' field; see docs/lab.md)"
        )
    constructor = FAMILIES[family]
    parameters = inspect.signature(constructor).parameters
    unknown = sorted(set(args) - set(parameters))
    if unknown:
        raise SuiteError(
            f"{label}: unknown field(s) {', '.join(unknown)} for family {family!r}; "
            f"allowed: {', '.join(p for p in parameters if p != 'family')}"
        )
    missing = [p.name for p in parameters.values() if p.default is inspect.Parameter.empty and p.name not in args]
    if missing:
        raise SuiteError(f"{label}: missing field(s) {', '.join(missing)} for family {family!r}")
    try:
        return constructor(**args)
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{label}: {exc}") from None


@dataclass(frozen=True)
class Suite:
    """A named list of tasks and the training seeds every task is run with."""

    name: str
    tasks: tuple[Task, ...]
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise SuiteError(f"suite {self.name!r}: field 'tasks' is empty")
        if not self.seeds:
            raise SuiteError(f"suite {self.name!r}: field 'seeds' is empty")
        names = [t.name for t in self.tasks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SuiteError(f"suite {self.name!r}: task names must be unique; repeated: {', '.join(duplicated)}")

    @property
    def families(self) -> list[str]:
        return sorted({t.family for t in self.tasks})

    def with_seeds(self, n: int) -> "Suite":
        """The same tasks with seeds 0..n-1."""
        if not 1 <= n <= MAX_SEEDS:
            raise SuiteError(f"the number of seeds must be at least 1 and at most {MAX_SEEDS:,}, got {n:,}")
        return Suite(self.name, self.tasks, tuple(range(n)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seeds": list(self.seeds), "tasks": [t.to_dict() for t in self.tasks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "suite") -> "Suite":
        if not isinstance(data, Mapping):
            raise SuiteError(f"{source}: the top level must be a mapping with 'name', 'seeds' and 'tasks'")
        unknown = sorted(set(data) - {"name", "seeds", "tasks"})
        if unknown:
            raise SuiteError(f"{source}: unknown field(s) {', '.join(unknown)}; allowed: name, seeds, tasks")
        name = data.get("name", Path(source).stem)
        seeds = data.get("seeds", [0, 1, 2])
        if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds <= MAX_SEEDS:
            seeds = list(range(seeds))  # a count; a larger one is refused below, not built (10**9: gigabytes)
        if (
            not isinstance(seeds, list)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(seeds) > MAX_SEEDS
        ):
            raise SuiteError(
                f"{source}: field 'seeds' must be a list of at most {MAX_SEEDS:,} integers or a count up to "
                f"{MAX_SEEDS:,}, got {reprlib.repr(seeds)}"
            )
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise SuiteError(f"{source}: field 'tasks' must be a non-empty list of task mappings")
        built: list[Task] = []
        for i, entry in enumerate(tasks):
            where = f"{source}: task {i + 1}"
            if isinstance(entry, Mapping) and "generator" in entry:
                built += expand_generator_entry(entry, where)  # one entry may draw many tasks
            else:
                built.append(build_task(entry, where=where))
        return cls(str(name), tuple(built), tuple(seeds))


def load_suite_file(path: str | Path) -> Suite:
    """Load a suite from a .yaml/.yml/.toml/.json file (see docs/lab.md for the format)."""
    path = Path(path)
    if not path.exists():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    try:
        text = read_small_text(path)
    except UnreadableFile as exc:
        raise SuiteError(f"suite file {str(path)!r} cannot be used: {exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            data = load_yaml(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise SuiteError(f"suite file {str(path)!r}: use a .yaml, .yml, .toml or .json file")
    except SuiteError:
        raise
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite file {str(path)!r} is not valid YAML: {yaml_error_text(exc)}") from None
    except Exception as exc:  # the parsers' own errors carry the line
        raise SuiteError(f"suite file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from None
    return Suite.from_dict(data, source=str(path))


# --------------------------------------------------------------------------------------------
# The default suite
# --------------------------------------------------------------------------------------------

# Feynman equations of the default suite, 1 to 5 variables; see docs/lab.md for why these.
LAB_FEYNMAN = ("I.6.2a", "I.29.4", "II.8.31", "I.14.3", "I.47.23", "III.17.37", "I.13.4", "I.18.4", "II.2.42")


def lab_suite() -> Suite:
    """The default suite `lab`: every family, several seeds (the protocol is in docs/lab.md)."""
    tasks = [polynomial(dim=1, seed=s) for s in range(3)]
    tasks += [polynomial(dim=20, seed=s, degree=2, n_terms=(3, 6)) for s in range(2)]
    tasks += [harmonic(seed=s) for s in range(3)]
    tasks += [feynman(eq) for eq in LAB_FEYNMAN]
    tasks.append(formula("exp(-x/4)*sin(3*x) + x/2", id={"x": [0, 2]}, ood={"x": [2, 3]}, name="damped-oscillation"))
    return Suite("lab", tuple(tasks), (0, 1, 2))


# Held-out Feynman equations: none of them is in LAB_FEYNMAN.
HELDOUT_FEYNMAN = ("I.25.13", "I.34.27", "I.39.1", "I.43.31", "II.34.2", "III.15.27", "I.18.14", "II.34.29b")


def lab_heldout_suite() -> Suite:
    """The held-out suite `lab-heldout`: the same families as `lab` with other tasks and seeds.

    A search selects on `lab`; its winners are re-scored here, so that a function that only
    overfits the search suite's particular tasks and seeds shows it.
    """
    tasks = [polynomial(dim=1, seed=s) for s in range(10, 13)]
    tasks += [polynomial(dim=20, seed=s, degree=2, n_terms=(3, 6)) for s in range(10, 12)]
    tasks += [harmonic(seed=s) for s in range(10, 13)]
    tasks += [feynman(eq) for eq in HELDOUT_FEYNMAN]
    tasks.append(formula("x*exp(-x/3) + sin(2*x)/2", id={"x": [0, 2]}, ood={"x": [2, 3]}, name="decaying-ramp"))
    return Suite("lab-heldout", tuple(tasks), (100, 101, 102))


SUITES: dict[str, Callable[[], Suite]] = {"lab": lab_suite, "lab-heldout": lab_heldout_suite}


def get_suite(name_or_path: str | Suite) -> Suite:
    """A suite by registry name (`lab`) or from a file path."""
    if isinstance(name_or_path, Suite):
        return name_or_path
    if name_or_path in SUITES:
        return SUITES[name_or_path]()
    if Path(name_or_path).suffix in (".yaml", ".yml", ".toml", ".json"):
        return load_suite_file(name_or_path)
    raise SuiteError(
        f"unknown suite {name_or_path!r}: use one of {', '.join(SUITES)} or a path to a .yaml/.toml/.json suite file"
    )
