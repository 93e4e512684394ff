"""What a reproduction measures: the `Settings` of a run, its `--quick` and full defaults, and the
names and files every part shares (the reference function, the paper's functions, the benchmarks).

A leaf of the package: the parts, the claims and the report all read these, and it reads none of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

REFERENCE = "relu"
PAPER_FUNCTIONS = ("gelu_sine", "gelu_sinc_perturbation", "gmtu", "turbulent")
FUNCTIONS = ("relu", "gelu") + PAPER_FUNCTIONS + ("silu", "mish", "snake")
REQUIRED_BENCHMARKS = ("digits", "clrs")
OPTIONAL_BENCHMARKS = ("cifar10", "imagenet", "molhiv")  # used when their data are present (full runs)
WINNER_FILE = "search_winner.py"
VALIDITY_FILE = "validity/validity.json"  # `actmine validate --out validity`: decides "lab predicts"

# the settings whose non-default values the command line cannot show (`Settings.command` names them)
_HIDDEN_SETTINGS = (
    "suite",
    "heldout_suite",
    "steps",
    "functions",
    "alphas",
    "transfer_seeds",
    "benchmarks",
    "transfer_options",
    "search",
)


@dataclass(frozen=True)
class Settings:
    """Everything that changes what `actmine reproduce` measures (plus where and how fast)."""

    quick: bool = False
    seeds: int = 8  # lab training seeds 0..N-1 (both suites)
    suite: str = "lab"
    heldout_suite: str = "lab-heldout"
    steps: int | None = None  # lab training steps (None: the protocol's 50)
    functions: tuple[str, ...] = FUNCTIONS
    alphas: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5)
    transfer_seeds: int = 3
    benchmarks: tuple[str, ...] = REQUIRED_BENCHMARKS
    optional_benchmarks: tuple[str, ...] = OPTIONAL_BENCHMARKS
    transfer_options: dict = field(default_factory=dict)  # {benchmark: {option: value}}
    search: dict = field(default_factory=dict)  # Config overrides ({} = the default search)
    workers: int = 1
    device: str = "cpu"
    data_dir: str | None = None
    skip_transfer: bool = False
    skip_search: bool = False
    validity: str | None = VALIDITY_FILE  # the validity study that decides "lab predicts"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def command(self) -> str:
        """The `actmine reproduce` command line that gives these settings."""
        base = quick_settings(self.workers) if self.quick else full_settings(self.workers)
        words = ["actmine", "reproduce"] + (["--quick"] if self.quick else [])
        if self.seeds != base.seeds:
            words += ["--seeds", str(self.seeds)]
        if self.data_dir:
            words += ["--data-dir", self.data_dir]
        if self.device != "cpu":
            words += ["--device", self.device]
        if self.skip_transfer:
            words.append("--skip-transfer")
        if self.skip_search:
            words.append("--skip-search")
        if self.validity != base.validity:
            words += ["--validity", str(self.validity)]
        hidden = [name for name in _HIDDEN_SETTINGS if getattr(self, name) != getattr(base, name)]
        text = shlex.join(words)
        return text + (f" (and non-default {', '.join(hidden)})" if hidden else "")


QUICK_TRANSFER_OPTIONS = {
    "digits": {"epochs": 4},
    "clrs": {
        "algorithms": ["bellman_ford"],
        "train_steps": 100,
        "batch_size": 16,
        "hidden": 32,
        "num_train_samples": 100,
        "num_test_samples": 16,
    },
}


def quick_settings(workers: int | None = None) -> Settings:
    """`--quick`: under 10 minutes on a 2-core machine."""
    return Settings(
        quick=True,
        seeds=5,
        alphas=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
        transfer_seeds=3,
        optional_benchmarks=(),
        transfer_options=json.loads(json.dumps(QUICK_TRANSFER_OPTIONS)),
        search={"search.budget": 30, "search.time_limit": 180, "search.heldout_top": 2, "lab.training_seeds": 3},
        workers=workers or os.cpu_count() or 1,
    )


def full_settings(workers: int | None = None) -> Settings:
    """The default: 8 seeds, the default search, the benchmarks' own settings."""
    return Settings(workers=workers or os.cpu_count() or 1)


def _settings_key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _search_config(settings: Settings) -> dict[str, Any]:
    """The search part's effective config (its overrides on today's defaults): a saved search made
    under other defaults (another winner rule, other pools) is not reused."""
    from ..config import Config

    return Config().with_overrides({"executor.workers": settings.workers, **settings.search}).to_dict()
