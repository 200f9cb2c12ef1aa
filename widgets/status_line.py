"""The status line: which engine, how it answers, what is shown, when it last updated."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.fleet.models import EngineStatus
from widgets.static_text import set_text


class StatusLine(Static):
    """One line about the engine and the view. Feed it with `update_status()`."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    StatusLine.-alert {
        background: $warning;
        color: $text;
    }
    StatusLine.-unreachable {
        background: $error;
        color: $text;
    }
    """

    view: reactive[str] = reactive("")
    """What the table shows (e.g. "5 of 12 containers · model containers · filter: llama")."""
    alert: reactive[str] = reactive("")
    """A warning that must be seen (GPU memory pressure), shown first; "" for none."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__("", name=name, id=id, classes=classes, disabled=disabled)
        self._engine: EngineStatus | None = None
        self._updated = 0.0

    def update_status(self, engine: EngineStatus, updated: float) -> None:
        """Show the engine's state and the time of the last refresh."""
        self._engine = engine
        self._updated = updated
        self._redraw()

    def watch_view(self) -> None:
        self._redraw()

    def watch_alert(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        engine = self._engine
        if engine is None:
            set_text(self, Text("connecting…"))
            return
        self.set_class(not engine.reachable, "-unreachable")
        if not engine.reachable:
            retry = f"; retrying in {engine.retry_in:.0f}s" if engine.retry_in else ""
            set_text(self, Text(f"✖ engine unreachable: {engine.error}{retry}"))
            return
        clock = time.strftime("%H:%M:%S", time.localtime(self._updated)) if self._updated else "-"
        self.set_class(bool(self.alert), "-alert")
        text = Text.assemble(
            (f"⚠ {self.alert} · ", "bold") if self.alert else "",
            ("● ", "bold"),
            f"{engine.product} {engine.version} @ {engine.url}",
            " (Docker-compatible API)" if engine.product != "Docker" else "",
            f" · stats: {engine.stats_source}",
            f" · {self.view}" if self.view else "",
            f" · updated {clock}",
        )
        set_text(self, text)
