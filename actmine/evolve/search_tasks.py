"""Where a search's evaluations get their tasks: the search side, the validation side, the tests.

`SearchTasks.from_config` reads the config's `lab` and `tasks` sections:

- **pools** (`lab.suite` null, the default): the split of `tasks` (`lab.distribution.Split`). Round r
  is scored on `tasks.sample` tasks drawn from the search distribution, paired with ReLU's cached
  numbers on the same draws: every proposal i draws its own sample per round (seed: run seed, i, r);
  with `tasks.shared_samples` the sample of round r is the same for every program (seed: run seed,
  r), so programs are compared on the same tasks (and the search can fit those few samples). Validation is the whole validation distribution; the test suites are
  the `tasks.test` distributions plus `lab.heldout_suite` (a fixed suite, reported beside them).
- **a fixed suite** (`lab.suite` set): every round on all of its tasks, round r with training seeds
  shifted by 1000·r (a fresh draw of data and initial weights for a confirmation); validation is
  `lab.heldout_suite`; there are no test suites (the mode of small checks and of older runs).

Every lab is built here, in the trusted controller: ReLU's numbers are cached (pools) or computed
once per suite (fixed), and workers receive them with each request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..lab.distribution import Split, SplitSpec, split_spec_from
from ..lab.fitness import Lab
from ..lab.tasks import stable_seed

SEED_SHIFT = 1000  # fixed suites: round r trains with seeds + SEED_SHIFT·r


def split_spec(config: Config) -> SplitSpec:
    """The config's split as pool specs (`lab.distribution.split_spec_from`)."""
    return split_spec_from(config.tasks.search, config.tasks.validation, config.tasks.test)


@dataclass
class SearchTasks:
    """The labs of one run: `lab_for(index, round)`, `validation`, `tests`."""

    config: Config
    split: Split | None = None  # pools mode
    suite_lab: Lab | None = None  # fixed-suite mode: round 0's lab
    validation: Lab | None = None
    tests: dict[str, Lab] = field(default_factory=dict)
    # {search task: GELU's score on it − its pool's mean}; empty: no control variate (a fixed suite,
    # or tasks.control_beta = 0)
    control: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, progress: bool | None = None) -> "SearchTasks":
        if config.lab.suite is not None:
            validation = config.build_lab(config.lab.heldout_suite) if config.lab.heldout_suite else None
            return cls(config, None, config.build_lab(), validation, {})
        protocol = config.protocol()
        options = config.lab_options()
        split = Split.build(split_spec(config), protocol, progress=progress)
        tests = {name: distribution.lab(name=name, **options) for name, distribution in split.test.items()}
        if config.lab.heldout_suite:
            fixed = config.build_lab(config.lab.heldout_suite)
            if fixed.suite.name in tests:
                raise ConfigError(
                    f"the held-out suite {fixed.suite.name!r} (lab.heldout_suite) has the name of a "
                    "test suite of tasks.test: rename that test suite"
                )
            tests[fixed.suite.name] = fixed
        control = split.search.control_offsets("gelu", **options) if config.tasks.control_beta else {}
        return cls(config, split, None, split.validation.lab(name="validation", **options), tests, control)

    @property
    def mode(self) -> str:
        return "pools" if self.split is not None else "suite"

    def lab_for(self, index: int, round: int) -> Lab:
        """The lab of round `round` of proposal `index` (deterministic in the run seed, index, round)."""
        if self.split is None:
            if round == 0:
                return self.suite_lab
            suite = self.suite_lab.suite
            shifted = type(suite)(suite.name, suite.tasks, tuple(s + SEED_SHIFT * round for s in suite.seeds))
            return Lab(
                shifted,
                protocol=self.suite_lab.protocol,
                cache_dir=self.suite_lab.cache_dir,
                **self.config.lab_options(),
            )
        # shared samples: round r is the same tasks for every program (paired comparisons)
        key = (round,) if self.config.tasks.shared_samples else (index, round)
        rng = np.random.default_rng(stable_seed("search-sample", self.config.search.seed, *key))
        tasks = self.split.search.sample(rng, self.sample_size(round))
        return self.split.search.lab(tasks, name=f"search-{index}-{round}", **self.config.lab_options())

    def sample_size(self, round: int) -> int:
        """Tasks of round `round` of a program: `tasks.first_sample` for the first (racing), else `tasks.sample`."""
        first = self.config.tasks.first_sample
        return first if round == 0 and first is not None else self.config.tasks.sample

    def unseen_tests(self) -> list[str]:
        """The test suites drawn from pools (generators the search never draws), by name."""
        return [name for name in self.tests if name in self.config.tasks.test]

    def describe(self) -> dict[str, Any]:
        """What the run scores on, for the summary and the report."""
        if self.split is None:
            return {
                "mode": "suite",
                "suite": self.suite_lab.suite.name,
                "tasks": len(self.suite_lab.suite.tasks),
                "seeds": list(self.suite_lab.suite.seeds),
                "validation": self.validation.suite.name if self.validation else None,
                "tests": {n: len(lab.suite.tasks) for n, lab in self.tests.items()},
            }
        return {
            "mode": "pools",
            "sample": self.config.tasks.sample,
            "first_sample": self.config.tasks.first_sample,
            "control": {"reference": "gelu", "beta": self.config.tasks.control_beta} if self.control else None,
            "search": self.split.search.describe(),
            "validation": self.split.validation.describe(),
            "tests": {n: len(lab.suite.tasks) for n, lab in self.tests.items()},
        }
