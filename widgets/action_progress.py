"""One line that shows the actions in progress and how many containers are marked."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class ActionProgress(Static):
    """Shows what a running action is doing ("stopping 2/3: llama-2") and the marks.

    Hidden while nothing runs and nothing is marked. Feed it with `show_progress()`,
    `finish()` and the `marked` reactive; it never talks to the engine.
    """

    DEFAULT_CSS = """
    ActionProgress {
        height: 1;
        background: $boost;
        color: $text;
        padding: 0 1;
        display: none;
    }
    ActionProgress.-visible {
        display: block;
    }
    ActionProgress.-busy {
        background: $primary 30%;
    }
    """

    marked: reactive[int] = reactive(0)
    """How many containers are marked for a bulk action."""
    busy: reactive[str] = reactive("")
    """What the running action is doing now; "" while none runs."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__("", name=name, id=id, classes=classes, disabled=disabled)
        self._frame = 0

    def on_mount(self) -> None:
        self.set_interval(0.1, self._spin)

    def show_progress(self, text: str, done: int = 0, total: int = 0) -> None:
        """Show a running action's step: `text`, with `done`/`total` when known."""
        self.busy = f"{text} ({done}/{total})" if total else text

    def finish(self) -> None:
        """No action runs any more."""
        self.busy = ""

    def watch_marked(self) -> None:
        self._redraw()

    def watch_busy(self) -> None:
        self._redraw()

    def _spin(self) -> None:
        if self.busy:
            self._frame = (self._frame + 1) % len(SPINNER)
            self._redraw()

    def _redraw(self) -> None:
        parts: list[str] = []
        if self.busy:
            parts.append(f"{SPINNER[self._frame]} {self.busy}")
        if self.marked:
            plural = "s" if self.marked != 1 else ""
            parts.append(
                f"{self.marked} container{plural} marked (space: unmark, actions apply to them)"
            )
        self.set_class(bool(parts), "-visible")
        self.set_class(bool(self.busy), "-busy")
        self.update(Text(" · ".join(parts)))
