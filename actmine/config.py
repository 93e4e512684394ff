"""Validated configuration of a search: unknown keys and bad values are errors that name the key.

A config file (YAML) mirrors the dataclasses below; every section and key is optional and
defaults to the embedded values, so an empty file (or none) is the default search:

    search:   {budget: 300, time_limit: 360, seed: 0, islands: 2, initial_programs: [relu, gelu, ...], ...}
    mutator:  {kind: symbolic, options: {}}
    executor: {kind: local, workers: null, scheduler: null}
    lab:      {suite: null, training_seeds: 6, steps: 50, hidden: 64, lr: 0.03, adam_eps: 1.0e-08,
              heldout_suite: lab-heldout, fused: true}
    tasks:    {search: [...pools], sample: 48, first_sample: null, shared_samples: false, validation: [], test: {...},
               confirm_rounds: 2, lcb_z: 1.0, control_beta: 0.5}
    probes:   {max_flops_per_element: 200, max_saved_bytes_per_element: 64, allow_batch_dependent: false}
    sandbox:  {timeout_s: 300, cpu_s: 300, memory_mb: 4096, max_tasks_per_worker: 200}
    candidate: {max_source_chars: 20000}
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .yaml_text import UnreadableFile, load_yaml_file, yaml_error_text

# A value quoted in an error message, cut to a readable size (a config's value can be a huge list).
_REPR = reprlib.Repr()  # Python 3.11's takes no keywords
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 6, 6, 120, 120
_shown = _REPR.repr


#: Keys renamed since an earlier version: `section.old` -> the new key in the same section. A config
#: file, an override or a run's stored config that still says the old name means the new one, so
#: that older runs resume (issue 18: `search.seed`, `search.seeds` and `lab.seeds` meant three things).
RENAMED_KEYS: dict[str, str] = {"search.seeds": "search.initial_programs", "lab.seeds": "lab.training_seeds"}


class ConfigError(ValueError):
    """A configuration problem; the message names the key and says what is expected."""


@dataclass(frozen=True)
class SearchSection:
    budget: int = 300  # proposals (every one counts, refused ones included; confirmation
    # rounds and validations come on top, see docs/lab.md). 600 gave no better winner on 16 runs
    # (docs/lab.md, "Twice the proposals").
    time_limit: float = 360.0  # seconds of search before the validation and tests; 0 = none
    seed: int = 0  # the run's seed: mutations and parent choices derive from it
    islands: int = 2  # sub-populations with ring migration of elites
    migration_interval: int = 40  # evaluations between migrations
    # Registry names or .py files that start the search: as the paper's database, seeded with known
    # activations (the classic ones and the paper's three pointwise functions). Formerly `search.seeds`.
    initial_programs: tuple[str, ...] = (
        "relu",
        "gelu",
        "silu",
        "elu",
        "mish",
        "softplus",
        "tanh",
        "gelu_sine",
        "gelu_sinc_perturbation",
        "gmtu",
    )
    inspirations: int = 2  # other elites shown to the mutator with the parent
    exploitation: float = 0.6  # probability of a fitness-ranked parent
    exploration: float = 0.3  # probability of a uniform parent over the grid
    heldout_top: int = 16  # the top list: programs scored on the validation pool at the end
    validate_every: int = 25  # evaluations between validations of a new best (the gap over the run)
    winner_rule: str = "softmin"  # how validation picks the winner: mean | family_mean | maximin | softmin | references
    # (lab.estimate.WINNER_RULES; docs/lab.md "Which rule picks the winner")
    # The winner is the validation's choice blended with `blend_reference`: (1 − w)·choice + w·reference
    # (evolve/blend.py; docs/lab.md "Shrinking the winner toward GELU"); 0 = the choice as it is.
    # Pools mode only: a fixed suite has no test suites to report the blend on.
    winner_blend: float = 0.5
    blend_reference: str = "gelu"  # a registry name with a source form (evolve/seeds.SEED_EXPRESSIONS)


@dataclass(frozen=True)
class MutatorSection:
    kind: str = "symbolic"  # a registered mutator: symbolic | random | llm (evolve/mutators)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorSection:
    kind: str = "local"  # a registered executor: local (sandboxed process pool) | dask (executors/)
    workers: int | None = None  # None: one per core
    scheduler: str | None = None  # a Dask scheduler address; None starts a LocalCluster


# lab.hidden at most: one model's 4096 × 4096 layer is 64 MB of float32, ×4 with its gradient and Adam's moments
MAX_HIDDEN = 4096


@dataclass(frozen=True)
class LabSection:
    # A suite name or file: every evaluation on all of its tasks (a fixed suite; confirmations use
    # new training seeds). None (the default): the task distribution of the `tasks` section.
    suite: str | None = None
    # Training seeds 0..N-1 for the search suite (None: the suite's own). 6, not the suite's 3: with
    # 3 seeds the search fits the seeds' noise (its winners scored −0.12…+0.08 on the held-out
    # suite); with 6 its top 5 scored +0.13…+0.46 (docs/lab.md, "Noise"). Formerly `lab.seeds`.
    training_seeds: int | None = 6
    steps: int = 50
    # Width of the MLPs' two hidden layers. 64: wider nets at the lab's learning rate extrapolate with
    # more training noise, not less (256: the paired noise to GELU 2.4-4.7x larger; docs/lab.md, "Is
    # any simple function better than both references?").
    hidden: int = 64
    # Adam's peak learning rate (5 warm-up steps, cosine decay to a tenth): 3e-2 learns every task of
    # the lab suite in 50 steps (docs/lab.md, "Calibration"). Lower rates train with less noise
    # between similar activations and learn fewer draws ("Is any simple function better ...").
    lr: float = 3e-2
    # Adam's ε (torch's default). Larger values damp Adam's first, sign-like steps, and with them some
    # of the training noise between similar activations (docs/lab.md, "Is any simple function ...").
    adam_eps: float = 1e-8
    # With a fixed suite: the validation suite. With pools: reported with the test suites.
    heldout_suite: str | None = "lab-heldout"
    # Train elementwise candidates with a compiled kernel of f and f' (actmine.candidate.fused): the
    # same fitness to ~1e-4, evaluations 1.8-2× faster on the lab suite; a whole search was not
    # measurably faster yet (docs/lab.md, "Fused kernels"). False: every candidate trains eagerly.
    fused: bool = True


#: The search's pools (docs/lab.md, "The split"): random expressions without the `bump` group (held
#: out for a test suite), harmonics and polynomials; one training seed per task (more tasks beat
#: more seeds for estimating a distribution's mean).
_SEARCH_GROUPS = ["polynomial", "exp_log", "rational", "periodic", "saturating", "kinked"]
DEFAULT_SEARCH_POOLS = (
    {"generator": "expression", "params": {"operators": _SEARCH_GROUPS}, "size": 300, "seeds": [0]},
    {"generator": "harmonic", "size": 60, "seeds": [0]},
    {"generator": "polynomial", "size": 60, "seeds": [0]},
)
#: Test suites: generators the search never draws (the AI Feynman equations; expressions made of the
#: held-out `bump` group; response curves of classic models: oscillators, resonances, saturations,
#: pulses, waves), three seeds each; reported only, never used to choose.
DEFAULT_TEST_POOLS = {
    "feynman": [{"generator": "feynman", "size": 60, "seeds": [0, 1, 2]}],
    "expression-bump": [{"generator": "expression", "params": {"operators": ["bump"]}, "size": 40, "seeds": [0, 1, 2]}],
    "response": [{"generator": "response", "size": 60, "seeds": [0, 1, 2]}],
}


@dataclass(frozen=True)
class TasksSection:
    """The search's task distribution and its three-way split (used when `lab.suite` is null)."""

    search: tuple[dict, ...] = DEFAULT_SEARCH_POOLS  # pools the search samples from
    sample: int = 48  # tasks per evaluation round, stratified over the search pools
    # Tasks of a program's first round (racing): a program that cannot reach the top list settles
    # after these few; one that could is confirmed on rounds of `sample` tasks (the confirmation
    # rule projects its standard error to all of them). None: the first round has `sample` tasks too.
    first_sample: int | None = None
    # false: a fresh sample per proposal and round; true: round r of every program is the same
    # sample (programs compared on the same tasks). Measured: shared samples let the search fit its
    # few samples (gap search − validation of the top 16: 0.25 against 0.17; docs/lab.md).
    shared_samples: bool = False
    # Validation pools; empty: the search pools' generators from index 1,000,000 (a third of their
    # size each, at least 10, seeds 0 and 1).
    validation: tuple[dict, ...] = ()
    test: dict = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_TEST_POOLS.items()})
    # How a program's task scores become its fitness (lab.estimate.OBJECTIVES): mean (over tasks) |
    # softmin (a smooth worst family of the per-family means, the winner rule's aggregate) | bounded
    # (the mean of the task scores clipped to ±1). Each alternative was measured on fresh runs against
    # the mean and gave no better winners (docs/lab.md, "The objective").
    objective: str = "mean"
    confirm_rounds: int = 2  # extra rounds at most for a program that would change a decision
    lcb_z: float = 1.0  # selection ranks by fitness − lcb_z · standard error
    # GELU's cached task scores as a control variate: each task score of a program minus
    # control_beta × (GELU's score on the task − GELU's mean over the task's pool). The same expected
    # fitness, a smaller standard error (pools mode only; 0 turns it off). 0.5 is the within-program
    # regression coefficient measured on three default runs (0.50, 0.48, 0.50; docs/lab.md).
    control_beta: float = 0.5


@dataclass(frozen=True)
class ProbesSection:
    max_flops_per_element: float = 200.0
    max_saved_bytes_per_element: float = 64.0
    allow_batch_dependent: bool = False


@dataclass(frozen=True)
class SandboxSection:
    timeout_s: float = 300.0
    cpu_s: float = 300.0
    memory_mb: int = 4096
    max_tasks_per_worker: int = 200  # a fresh worker costs ~2 s; docs/lab.md, "Sandbox workers"


@dataclass(frozen=True)
class CandidateSection:
    max_source_chars: int = 20_000


@dataclass(frozen=True)
class Config:
    search: SearchSection = field(default_factory=SearchSection)
    mutator: MutatorSection = field(default_factory=MutatorSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    lab: LabSection = field(default_factory=LabSection)
    tasks: TasksSection = field(default_factory=TasksSection)
    probes: ProbesSection = field(default_factory=ProbesSection)
    sandbox: SandboxSection = field(default_factory=SandboxSection)
    candidate: CandidateSection = field(default_factory=CandidateSection)

    # Keys that may change when a run is resumed: they change how long and where it runs, not
    # what it computes. Any other difference is refused.
    RESUMABLE_CHANGES = (
        "search.budget",
        "search.time_limit",
        "executor.kind",
        "executor.workers",
        "executor.scheduler",
        "sandbox.timeout_s",
        "sandbox.cpu_s",
        "mutator.options.budget_usd",
        "mutator.options.budget_tokens",
        "mutator.options.concurrency",
        "mutator.options.timeout_s",
        "mutator.options.max_retries",
    )

    def __post_init__(self) -> None:
        _check_values(self)

    def sandbox_limits(self):
        """The `sandbox` section as the workers' `SandboxLimits` (the search's executor and its final
        check both use this one)."""
        from .candidate.sandbox import SandboxLimits  # lazy: the config stays light to import

        s = self.sandbox
        return SandboxLimits(
            timeout_s=s.timeout_s, cpu_s=s.cpu_s, memory_mb=s.memory_mb, max_tasks_per_worker=s.max_tasks_per_worker
        )

    def probe_budget(self):
        """The `probes` section as the candidates' `ProbeBudget`."""
        from .candidate.probes import ProbeBudget

        p = self.probes
        return ProbeBudget(
            max_flops_per_element=p.max_flops_per_element,
            max_saved_bytes_per_element=p.max_saved_bytes_per_element,
            allow_batch_dependent=p.allow_batch_dependent,
        )

    def lab_options(self) -> dict[str, Any]:
        """The probe budget, source limit and kernel choice every `Lab` of this config shares (the
        search's pools build their labs with them too)."""
        return {
            "budget": self.probe_budget(),
            "max_source_chars": self.candidate.max_source_chars,
            "fused": self.lab.fused,
        }

    def protocol(self, device: str = "cpu"):
        """How this config's MLPs are trained (`lab.steps`, `hidden`, `lr`, `adam_eps`; the rest `TrainingProtocol`'s
        defaults): every lab and pool of the config is trained under it."""
        from .lab.ensemble import TrainingProtocol

        lab = self.lab
        return TrainingProtocol(device=device, steps=lab.steps, hidden=lab.hidden, lr=lab.lr, adam_eps=lab.adam_eps)

    def build_lab(self, suite: Any = None, *, device: str = "cpu"):
        """A fixed suite as a `Lab` of this config: `suite` (a name, a suite file or a `Suite`) with its
        own seeds, else `lab.suite` with `lab.training_seeds` (the default suite `lab` when that is
        null: the search itself then samples pools), trained for `lab.steps` on `device`, under
        `lab_options`.
        The one way settings become a lab: the search, `actmine evaluate`/`compare` and the API
        (`targets.scoring_config`), the validity study, the report and `reproduce` all build it here."""
        from .lab.fitness import Lab

        return Lab(
            suite or self.lab.suite or "lab",
            protocol=self.protocol(device),
            seeds=self.lab.training_seeds if suite is None else None,
            **self.lab_options(),
        )

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {
            section.name: {k: plain(v) for k, v in dataclasses.asdict(getattr(self, section.name)).items()}
            for section in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> "Config":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: the top level must be a mapping of sections "
                f"({', '.join(f.name for f in dataclasses.fields(cls))})"
            )
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section {unknown[0]!r}; known sections: {', '.join(sections)}")
        data = _renamed(data, source)
        built = {}
        for name, section_field in sections.items():
            section_type = typing.get_type_hints(cls)[name]
            built[name] = _build_section(section_type, data.get(name) or {}, f"{source}: {name}", name)
        return cls(**built)

    @classmethod
    def load(cls, path: str | Path | None) -> "Config":
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = load_yaml_file(path)
        except UnreadableFile as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be used: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {yaml_error_text(exc)}") from None
        return cls.from_dict(data, source=str(path))

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        """A copy with dotted keys replaced, e.g. {"search.budget": 50}; None values are ignored."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = RENAMED_KEYS.get(dotted, dotted).split(".")
            data[section][key] = value
        return Config.from_dict(data, source="command line")

    def resume_conflicts(self, previous: "Config") -> list[str]:
        """Keys that differ from the run's snapshot and may not change on resume."""
        now, before = _flatten(self.to_dict()), _flatten(previous.to_dict())
        return sorted(
            k for k in set(now) | set(before) if now.get(k) != before.get(k) and k not in self.RESUMABLE_CHANGES
        )


def _renamed(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` with the old names of `RENAMED_KEYS` moved to the new ones (a copy; `data` is untouched).
    Both names at once is an error: which one is meant cannot be told."""
    data = dict(data)
    for old, new in RENAMED_KEYS.items():
        section, old_key = old.split(".")
        values = data.get(section)
        if not isinstance(values, dict) or old_key not in values:
            continue
        new_key = new.split(".")[1]
        if new_key in values:
            raise ConfigError(f"{source}: both {old} and {new} are set; {old} is the old name of {new}: keep one")
        values = dict(values)
        values[new_key] = values.pop(old_key)
        data[section] = values
    return data


def _flatten(data: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`section.key` -> value; the mutator's options one level deeper, so that its budgets may change."""
    flat = {}
    for section, values in data.items():
        for key, value in values.items():
            if (section, key) == ("mutator", "options") and isinstance(value, dict):
                flat.update({f"mutator.options.{k}": v for k, v in value.items()})
            else:
                flat[f"{section}.{key}"] = value
    return flat


def _build_section(section_type: type, values: Any, where: str, name: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a mapping of keys, got {_shown(values)}")
    hints = typing.get_type_hints(section_type)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key {name}.{unknown[0]}; known keys: {', '.join(hints)}")
    converted = {key: _convert(value, hints[key], f"{name}.{key}") for key, value in values.items()}
    return section_type(**converted)


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the field's type; the only conversions are int → float and list → tuple."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _convert(value, options[0], key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {_shown(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {_shown(value)}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {_shown(value)}")
        return tuple(_convert(v, args[0], key) for v in value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {_shown(value)}")
        return dict(value)
    return value


#: the largest sandbox limits: a year of seconds, 16 TiB of memory, requests per worker
SANDBOX_BOUNDS = {"timeout_s": 31_536_000, "cpu_s": 31_536_000, "memory_mb": 16 * 2**20, "max_tasks_per_worker": 10**9}


def _check_values(config: Config) -> None:
    """Range checks that types alone cannot express."""

    def positive(
        key: str,
        value: float | int | None,
        allow_zero: bool = False,
        at_most: float | None = None,
        finite: bool = False,
    ) -> None:
        # NaN passes every comparison: refused first; infinity where a bound or `finite` says so
        if value is not None and (
            (isinstance(value, float) and (math.isnan(value) or (finite and math.isinf(value))))
            or value < 0
            or (value == 0 and not allow_zero)
            or (at_most is not None and value > at_most)
        ):
            bound = f" and at most {at_most:,}" if at_most is not None else " and finite" if finite else ""
            raise ConfigError(
                f"config key {key!r} must be {'non-negative' if allow_zero else 'positive'}{bound}, got {_shown(value)}"
            )

    s = config.search
    for key in ("budget", "islands", "migration_interval", "heldout_top", "validate_every"):
        positive(f"search.{key}", getattr(s, key))
    positive("search.time_limit", s.time_limit, allow_zero=True)
    positive("search.inspirations", s.inspirations, allow_zero=True)
    if not s.initial_programs:
        raise ConfigError("config key 'search.initial_programs' must list at least one registry name or .py file")
    for key in ("exploitation", "exploration"):
        if not 0 <= getattr(s, key) <= 1:
            raise ConfigError(f"config key 'search.{key}' must lie in [0, 1], got {getattr(s, key)!r}")
    if s.exploitation + s.exploration > 1:
        raise ConfigError("config keys 'search.exploitation' + 'search.exploration' must not exceed 1")
    from .lab.estimate import WINNER_RULES  # numpy only: no cycle

    if s.winner_rule not in WINNER_RULES:
        raise ConfigError(
            f"config key 'search.winner_rule' must be one of {', '.join(WINNER_RULES)}, got {s.winner_rule!r}"
        )
    if not (isinstance(s.winner_blend, (int, float)) and 0 <= s.winner_blend < 1):
        raise ConfigError(f"config key 'search.winner_blend' must lie in [0, 1) (0: no blend), got {s.winner_blend!r}")
    from .evolve.seeds import SEED_EXPRESSIONS

    if s.blend_reference not in SEED_EXPRESSIONS:
        raise ConfigError(
            f"config key 'search.blend_reference' must be one of {', '.join(SEED_EXPRESSIONS)}, "
            f"got {s.blend_reference!r}"
        )
    from .evolve.mutators import mutator_names  # the registries: a new plug-in is a valid choice at once
    from .executors import executor_names

    for key, kind, names in (
        ("mutator.kind", config.mutator.kind, mutator_names()),
        ("executor.kind", config.executor.kind, executor_names()),
    ):
        if kind not in names:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(names)}, got {kind!r}")
    positive("executor.workers", config.executor.workers)
    if config.executor.kind == "local":  # here, before a run directory is made (SandboxPool refuses too)
        from .candidate.sandbox import check_local_workers

        try:
            check_local_workers(config.executor.workers, "config key 'executor.workers':")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from .lab.tasks import MAX_SEEDS

    for key, bound in (("training_seeds", MAX_SEEDS), ("steps", None), ("hidden", MAX_HIDDEN)):
        positive(f"lab.{key}", getattr(config.lab, key), at_most=bound)
    for key in ("lr", "adam_eps"):
        positive(f"lab.{key}", getattr(config.lab, key), finite=True)
    for key in ("max_flops_per_element", "max_saved_bytes_per_element"):
        positive(f"probes.{key}", getattr(config.probes, key), finite=True)
    # the worker turns these into rlimits (whole seconds, bytes): beyond the bounds they overflow there,
    # and every evaluation of the run would fail
    for key, bound in SANDBOX_BOUNDS.items():
        positive(f"sandbox.{key}", getattr(config.sandbox, key), at_most=bound)
    positive("candidate.max_source_chars", config.candidate.max_source_chars)
    _check_tasks(config.tasks)


def _check_tasks(tasks: TasksSection) -> None:
    """Pool specs are checked as the lab reads them (generator names and parameters included)."""
    from .lab.distribution import PoolSpec
    from .lab.pools import PoolError

    if tasks.sample < 1:
        raise ConfigError(f"config key 'tasks.sample' must be positive, got {tasks.sample!r}")
    if tasks.first_sample is not None and tasks.first_sample < 2:
        raise ConfigError(
            f"config key 'tasks.first_sample' must be at least 2 (a standard error needs two "
            f"tasks) or null, got {tasks.first_sample!r}"
        )
    from .lab.estimate import OBJECTIVES  # numpy only: no cycle

    if tasks.objective not in OBJECTIVES:
        raise ConfigError(
            f"config key 'tasks.objective' must be one of {', '.join(OBJECTIVES)}, got {tasks.objective!r}"
        )
    if tasks.confirm_rounds < 0:
        raise ConfigError(f"config key 'tasks.confirm_rounds' must be non-negative, got {tasks.confirm_rounds!r}")
    if not tasks.lcb_z >= 0:
        raise ConfigError(f"config key 'tasks.lcb_z' must be non-negative, got {tasks.lcb_z!r}")
    if not 0 <= tasks.control_beta <= 1:
        raise ConfigError(
            f"config key 'tasks.control_beta' must be between 0 (no control variate) and 1 (the plain "
            f"difference from GELU), got {tasks.control_beta!r}"
        )
    sides = [("tasks.search", tasks.search), ("tasks.validation", tasks.validation)]
    for name, pools in tasks.test.items():
        if not isinstance(pools, (list, tuple)) or not pools:
            raise ConfigError(f"config key 'tasks.test.{name}' must be a non-empty list of pools")
        sides.append((f"tasks.test.{name}", pools))
    for where, pools in sides:
        for i, pool in enumerate(pools):
            try:
                PoolSpec.from_dict(pool, f"config key '{where}[{i}]'")
            except PoolError as exc:
                raise ConfigError(str(exc)) from None
    from .lab.distribution import check_split, split_spec_from

    try:  # index ranges only, no training: a bad split is refused before a run directory is written
        check_split(split_spec_from(tasks.search, tasks.validation, tasks.test))
    except PoolError as exc:
        raise ConfigError(f"config section 'tasks': {exc}") from None
