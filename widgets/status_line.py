"""The status line: which engine, how it answers, what is shown, when it last updated."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.cells import cell_len
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
    read_only: reactive[bool] = reactive(False)
    """Whether aitop changes nothing (`--read-only`): said first, never left out."""

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

    def watch_read_only(self) -> None:
        self._redraw()

    def on_resize(self) -> None:
        # What fits depends on the width: re-choose the parts when it changes.
        self._redraw()

    def _redraw(self) -> None:
        engine = self._engine
        mode = [Part(Text("read-only · ", "bold"))] if self.read_only else []
        if engine is None:
            set_text(self, fit([*mode, Part(Text("connecting…"))], self.content_size.width))
            return
        width = self.content_size.width
        self.set_class(not engine.reachable, "-unreachable")
        if not engine.reachable:
            # The retry goes first: on a narrow line the engine's error is what is shortened.
            retry = f" (retrying in {engine.retry_in:.0f}s)" if engine.retry_in else ""
            parts = [
                *mode,
                Part(Text(f"✖ engine unreachable{retry}: ")),
                Part(Text(engine.error), shrink=True),
            ]
            set_text(self, fit(parts, width))
            return
        clock = time.strftime("%H:%M:%S", time.localtime(self._updated)) if self._updated else "-"
        self.set_class(bool(self.alert), "-alert")
        parts = [*mode]
        if self.alert:
            parts.append(Part(Text(f"⚠ {self.alert}", "bold"), shrink=True))
        parts += [
            Part(
                Text.assemble(
                    " · " if self.alert else "",
                    ("● ", "bold"),
                    f"{engine.product} {engine.version}",
                ),
                drop=1,
            ),
            # The URL goes before the view mode: which containers are shown matters more at
            # 80 columns than where the engine is (the host rows and `?` say it).
            Part(Text(f" @ {engine.url}"), drop=6),
        ]
        if engine.product != "Docker":
            parts.append(Part(Text(" (Docker-compatible API)"), drop=7))
        parts.append(Part(Text(f" · stats: {engine.stats_source}"), drop=8))
        parts += [
            Part(Text(f" · {piece}"), drop=_view_drop(i, piece))
            for i, piece in enumerate(p for p in self.view.split(" · ") if p)
        ]
        parts.append(Part(Text(f" · updated {clock}"), drop=5))
        set_text(self, fit(parts, width))


@dataclass(frozen=True)
class Part:
    """One piece of the status line and how it gives way when the line is too narrow."""

    text: Text
    """What it shows."""
    drop: int = 0
    """0: always shown; otherwise the higher, the sooner it is left out when space runs short."""
    shrink: bool = False
    """Whether it may be shortened at a word boundary (with "…") once nothing more can go."""


def _view_drop(index: int, piece: str) -> int:
    """How soon a piece of the view description goes: key hints first, the filter last."""
    if piece.startswith("filter:"):
        return 2
    if index == 0:
        return 3
    if piece.endswith(": toggle"):
        return 9
    return 4


def shorten(text: Text, width: int) -> Text:
    """`text` cut to `width` cells at a word boundary, marked with "…" when cut."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text("…"[:width])
    plain = text.plain
    keep = len(plain)
    while keep and cell_len(plain[:keep]) > width - 1:
        keep -= 1
    space = plain.rfind(" ", 0, keep + 1)
    if space > 0:
        keep = space
    while keep and plain[keep - 1] in " ·:;,(":
        keep -= 1
    cut = text[:keep]
    cut.append("…")
    return cut


def fit(parts: list[Part], width: int) -> Text:
    """The parts joined, leaving out the most dispensable until they fit `width` cells.

    When only parts that are always shown remain and they still do not fit, the first
    shrinkable one is shortened at a word boundary; nothing is cut mid-word unless a single
    word is wider than the line. A width of 0 (not laid out yet) keeps everything.
    """
    kept = list(parts)

    def total() -> int:
        return sum(p.text.cell_len for p in kept)

    if width > 0:
        while total() > width and any(p.drop for p in kept):
            worst = max(range(len(kept)), key=lambda i: (kept[i].drop, i))
            del kept[worst]
        flexible = next((i for i, p in enumerate(kept) if p.shrink), None)
        if total() > width and flexible is not None:
            room = width - (total() - kept[flexible].text.cell_len)
            kept[flexible] = Part(shorten(kept[flexible].text, max(0, room)))
    line = Text()
    for part in kept:
        line.append_text(part.text)
    if width > 0 and line.cell_len > width:
        line = shorten(line, width)
    return line
