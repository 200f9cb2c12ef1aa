"""The events view: what happened to the fleet lately, newest first, filterable.

The engine's container events (die, oom, kill, restart, health changes, create/destroy, ...)
of every engine watched, including the hour before aitop started (the monitors seed it from
the engines' history). The screen shows what it is handed (`show`); Enter on an event asks
the app to go to that container and its logs around that moment (`JumpRequested`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from tui.fleet.events import FleetEvent

MAX_ROWS = 1000
"""Most events drawn (the newest): the table stays quick to rebuild each second."""


def event_time(at: float, now: float) -> str:
    """Clock time today, with the date before that."""
    moment = time.localtime(at)
    if time.localtime(now)[:3] == moment[:3]:
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%m-%d %H:%M", moment)


def matches(event: FleetEvent, words: Sequence[str]) -> bool:
    """Every word is in the event's container name, action, detail or image (any case)."""
    text = f"{event.name} {event.action} {event.detail} {event.image}".lower()
    return all(word in text for word in words)


class EventsScreen(ModalScreen[None]):
    """The fleet's recent container events, newest first.

    `/` filters by container, kind or detail (`die`, `oom`, `unhealthy`, a name); Enter goes
    to the selected event's container and its logs; Escape goes back.
    """

    AUTO_FOCUS = "#events-table"

    DEFAULT_CSS = """
    EventsScreen {
        background: $background;
    }
    EventsScreen #events-heading {
        height: 1;
        text-style: bold;
        padding: 0 1;
    }
    EventsScreen #events-filter {
        height: 3;
    }
    EventsScreen #events-table {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="events-close"),
        Binding("enter", "jump", "Go to container", id="events-jump", priority=True),
        Binding("slash", "filter", "Filter", id="events-filter"),
    ]

    class JumpRequested(Message):
        """Go to this event's container and its logs around that moment."""

        def __init__(self, event: FleetEvent) -> None:
            super().__init__()
            self.event = event

    def __init__(self, events: Sequence[FleetEvent]) -> None:
        super().__init__()
        self.events: tuple[FleetEvent, ...] = tuple(events)
        self.shown: tuple[FleetEvent, ...] = ()
        """The events drawn, top to bottom."""
        self._ready = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="events-heading")
            yield Input(placeholder="filter: a name, die, oom, kill, unhealthy", id="events-filter")
            yield DataTable(id="events-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        if not self.query("#events-table"):  # pushed as the app quits: never composed
            return
        table = self.query_one(DataTable)
        for label, key in (
            ("TIME", "time"),
            ("CONTAINER", "name"),
            ("EVENT", "action"),
            ("DETAIL", "detail"),
            ("IMAGE", "image"),
        ):
            table.add_column(label, key=key)
        self._ready = True
        self._draw()

    def show(self, events: Sequence[FleetEvent]) -> None:
        """The latest events of every engine, newest first."""
        events = tuple(events)
        if events == self.events:
            return
        self.events = events
        if self._ready:
            self._draw()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(DataTable).focus()

    def _draw(self) -> None:
        words = self.query_one(Input).value.lower().split()
        shown = tuple(e for e in self.events if matches(e, words))[:MAX_ROWS]
        table = self.query_one(DataTable)
        keep = self.selected
        table.clear()
        now = time.time()
        warning = f"bold {self.app.theme_variables.get('warning', 'yellow')}"
        for n, event in enumerate(shown):
            style = warning if event.alarming else ""
            table.add_row(
                Text(event_time(event.at, now)),
                Text(event.name),
                Text(event.action, style=style),
                Text(event.detail, style=style),
                Text(event.image, style="dim"),
                key=str(n),
            )
        self.shown = shown
        if keep is not None and keep in shown:
            table.move_cursor(row=shown.index(keep))
        total = len(self.events)
        heading = f"Events: {len(shown)} of {total}" if words else f"Events: {total}"
        alarming = sum(e.alarming for e in shown)
        if alarming:
            heading += f" · {alarming} deaths or failed health checks"
        self.query_one("#events-heading", Static).update(Text(heading))

    @property
    def selected(self) -> FleetEvent | None:
        """The event under the cursor."""
        if not self._ready or not self.shown:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)

    def action_filter(self) -> None:
        """Type a filter."""
        self.query_one(Input).focus()

    def action_jump(self) -> None:
        """Go to the selected event's container."""
        if self.focused is self.query_one(Input):
            self.query_one(DataTable).focus()
            return
        event = self.selected
        if event is not None:
            self.post_message(self.JumpRequested(event))
            self.dismiss(None)
