"""The progress of a reproduction on the terminal: a rich bar per part on a terminal (stderr), one
line per part elsewhere. The parts report through it; `actmine validate` uses it as well."""

from __future__ import annotations

from typing import Any

from ..terminal import progress_bar, progress_text, terminal_text


class Progress:
    """A rich progress bar per part on a terminal (stderr); one line per part elsewhere."""

    def __init__(self, console: Any = None, enabled: bool = True):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._bar = None
        self._task = None

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(terminal_text(message), markup=False, highlight=False)

    def start(self, part: str, total: int) -> None:
        if self.enabled and self.console.is_terminal:
            self._bar = progress_bar(f"{part:9s}", self.console)
            self._task = self._bar.add_task("", total=total)
            self._bar.start()

    def advance(self, description: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=progress_text(description))

    def describe(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=progress_text(description))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
