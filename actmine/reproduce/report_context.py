"""`_Report`: what every section of the reproduction report (`markdown`, `downstream_sections`) reads.

The run's settings, parts, claims and facts, the command that made the report, and links to the
output directory relative to the report. It lives apart from `markdown`, which joins the
sections, so that the section modules can read it without importing the module that imports them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .claims import Claim
from .settings import Settings


@dataclass(frozen=True)
class _Report:
    """What every section reads: the report's path, the run's output directory, settings, parts,
    claims and facts (``info``: date, machine, times), and the command that made it."""

    path: Path
    out_dir: Path
    settings: Settings
    parts: Mapping[str, Any]
    claims: Sequence[Claim]
    info: Mapping[str, Any]
    command: str

    def link(self, name: str) -> str:
        """A file of the output directory, relative to the report."""
        return os.path.relpath(self.out_dir / name, self.path.parent).replace(os.sep, "/")

    @property
    def winner(self) -> Mapping[str, Any] | None:
        return (self.parts.get("search") or {}).get("winner")
