"""The validity study's functions: which ones, where each came from, and as what it runs.

- the library: every *pointwise* registry activation (the paper's functions among them);
  non-pointwise ones (Turbulent normalises with batch statistics) are skipped, with the reason;
- functions the user names (``--functions``): registry names, candidate ``.py`` files, ``PACK.py:NAME``;
- search winners (``--run RUN_DIR``): ``RUN_DIR/best_activation.py``;
- random programs: draws of the offline random mutator (`RandomMutator`, seeded, so a rerun draws
  the same ones), later chosen stratified by lab fitness (`stats.stratified_choice`).

Registry activations are trusted code (they run in this process in the lab). Every program is
untrusted: it is read here as data only (`resolve_activation`: read, checked with the static
policy, never compiled here), copied as a plain candidate file to ``DIR/functions/NAME.py`` (the
transfer runner reads it from there, and the file's stem is the name every output uses), scored in
the lab only through the sandbox and trained only in the transfer runner's confined job processes.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..atomic_files import write_text_atomically
from ..run_files import BEST_PROGRAM

__all__ = [
    "Draw",
    "Function",
    "ValidityInputError",
    "library_functions",
    "named_functions",
    "pool_functions",
    "program_name",
    "random_pool",
    "registry_function",
    "winner_functions",
    "write_program",
]

WINNER_FILE = BEST_PROGRAM  # what a finished `actmine search` leaves in its run directory


class ValidityInputError(ValueError):
    """Bad input to the study (unknown name, missing file, too few functions): nothing has been
    lost; the CLI prints it as one line and exits with status 2."""


@dataclass(frozen=True)
class Function:
    """One function of the study.

    name: unique; a registry name, or the stem of the program's file under ``DIR/functions/``.
    origin: why it is in the study: ``library``, ``paper`` (the paper's functions), ``given``
        (``--functions``), ``winner`` (a search's winner) or ``random`` (a random draw).
    reference: what the transfer runner receives: the registry name or the program file's path.
    source: a program's text (untrusted: scored in the sandbox only); None for a registry activation.
    given: what the user named (a file, a run directory), or the random draw's description.
    """

    name: str
    origin: str
    reference: str
    source: str | None = None
    given: str = ""

    @property
    def trusted(self) -> bool:
        return self.source is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        data["kind"] = "registry" if self.trusted else "program"
        return data


def registry_function(name: str, origin: str | None = None) -> Function:
    import actmine.activations as activations
    from ..reproduce import PAPER_FUNCTIONS

    canonical = activations.info(name).name
    return Function(
        canonical, origin or ("paper" if canonical in PAPER_FUNCTIONS else "library"), canonical, given=name
    )


def library_functions() -> tuple[list[Function], dict[str, str]]:
    """Every pointwise registry activation, and ``{name: why skipped}`` for the others."""
    import actmine.activations as activations

    functions, skipped = [], {}
    for name in activations.list():
        if activations.info(name).pointwise:
            functions.append(registry_function(name))
        else:
            skipped[name] = (
                "not pointwise (it uses batch statistics): the lab scores element-wise functions, "
                "and its result would depend on the batch"
            )
    return functions, skipped


def program_name(stem: str, taken: set[str]) -> str:
    """A unique file stem for a program: ``stem`` with path separators, ``:`` and non-printable
    characters replaced by ``_`` (other characters are kept: reports escape them), never a
    registry name (the transfer runner would not take a file for one), suffixed ``_2``, ``_3``, …
    on a clash."""
    import actmine.activations as activations

    cleaned = "".join(c if c.isprintable() and c not in "/\\:" else "_" for c in stem).strip() or "program"
    cleaned = cleaned.lstrip(".") or "program"
    name, i = cleaned, 1
    while name in taken or name in activations.REGISTRY:
        i += 1
        name = f"{cleaned}_{i}"
    taken.add(name)
    return name


def write_program(directory: Path, name: str, source: str, origin: str, given: str) -> Function:
    """Write ``source`` to ``directory/NAME.py`` (atomically) and read it back the way the
    transfer runner will (`resolve_activation`: as data, checked by the static policy), so that
    the lab and the transfer score the same text."""
    from ..transfer.runner import TransferInputError, resolve_activation

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    if not (path.is_file() and path.read_text(encoding="utf-8") == source):
        write_text_atomically(path, source)
    try:
        spec = resolve_activation(str(path))
    except TransferInputError as exc:
        raise ValidityInputError(f"{given}: {exc}") from None
    return Function(spec.name, origin, str(path), spec.source, given)


def _program(text: str, what: str):
    """A program named by the user (file or PACK.py:NAME): (stem, source), read as data and checked."""
    from ..transfer.runner import TransferInputError, resolve_activation

    try:
        spec = resolve_activation(text)
    except TransferInputError as exc:
        raise ValidityInputError(f"{what} {text!r}: {exc}") from None
    return spec.name, spec.source


def named_functions(items: Sequence[str], directory: Path, taken: set[str]) -> list[Function]:
    """``--functions``: registry names (trusted) and program files or pack entries (copied to
    ``directory``)."""
    import actmine.activations as activations
    from ..language.files import split_program_reference

    functions = []
    for item in items:
        item = item.strip()
        if item.endswith(".py") or os.sep in item or split_program_reference(item) is not None:
            stem, source = _program(item, "--functions")
            functions.append(write_program(directory, program_name(stem, taken), source, "given", item))
            continue
        try:
            functions.append(registry_function(item))
        except activations.UnknownActivationError as exc:
            raise ValidityInputError(
                f"--functions {item!r}: {exc}. Give registry names (see `actmine list`), "
                ".py files defining activation_function(x) or PACK.py:NAME"
            ) from None
    return functions


def winner_functions(run_dirs: Sequence[str], directory: Path, taken: set[str]) -> list[Function]:
    """``--run RUN_DIR``: each search's ``best_activation.py``, named ``winner_<run directory>``."""
    functions = []
    for run_dir in run_dirs:
        path = Path(run_dir).expanduser()
        if not path.is_dir():
            raise ValidityInputError(f"--run {run_dir!r}: no such directory; give the --run-dir of an `actmine search`")
        winner = path / WINNER_FILE
        if not winner.is_file():
            raise ValidityInputError(
                f"--run {run_dir!r}: no {WINNER_FILE} there; a search writes it when it ends "
                "(let the search finish, or resume it with `actmine search --run-dir` first)"
            )
        _, source = _program(str(winner), "--run")
        name = program_name(f"winner_{path.resolve().name}", taken)
        functions.append(write_program(directory, name, source, "winner", str(run_dir)))
    return functions


@dataclass(frozen=True)
class Draw:
    """One program of the random pool: its position, source and the mutator's description."""

    index: int
    source: str
    rationale: str


def random_pool(seed: int, size: int, attempts_per_draw: int = 20) -> list[Draw]:
    """``size`` distinct programs of the offline random mutator that pass the static policy, drawn
    from ``random.Random(seed)``: the same seed gives the same pool, and a larger pool starts with
    the smaller one (so a resumed study with more draws keeps the ones it scored)."""
    from ..candidate.source import CandidateError, check_source
    from ..evolve.mutators.random_search import RandomMutator

    rng, mutator = random.Random(seed), RandomMutator()
    draws: list[Draw] = []
    seen: set[str] = set()
    for _ in range(size * attempts_per_draw):
        if len(draws) == size:
            break
        proposal = mutator.propose(None, [], rng)
        if proposal.source in seen:
            continue
        seen.add(proposal.source)
        try:
            check_source(proposal.source)
        except CandidateError:
            continue
        draws.append(Draw(len(draws), proposal.source, proposal.rationale))
    return draws


def pool_functions(draws: Sequence[Draw], seed: int, directory: Path) -> list[Function]:
    """The random pool as program files ``random<seed>_<index>.py`` (named first: fixed names)."""
    taken: set[str] = set()
    return [
        write_program(directory, program_name(f"random{seed}_{d.index:03d}", taken), d.source, "random", d.rationale)
        for d in draws
    ]
