"""The aitop application: wires the headless fleet layer to the widgets.

Data flows one way: the `FleetMonitor`'s threads publish snapshots, which arrive here as
`FleetUpdated` messages and are handed to the widgets. User intent flows back as messages
and key bindings. Nothing on the event loop talks to the engine, the kernel or psutil.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Footer, Input

from tui.action_mixin import ACTION_BINDINGS, ActionsMixin
from tui.fleet.detect import DEFAULT_RULES, DetectionRules
from tui.fleet.engine import Engine
from tui.fleet.gpu import GpuSampler
from tui.fleet.gpu_types import pressure_warnings
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from widgets.action_progress import ActionProgress
from widgets.container_table import ContainerTable
from widgets.gpu_panel import GpuPanel
from widgets.host_gauges import HostGauges
from widgets.status_line import StatusLine

FIRST_FRAME_ENV = "AITOP_FIRST_FRAME_FILE"
"""When set, the wall-clock time of the first frame with CPU figures is written there."""


class FleetUpdated(Message):
    """A new fleet snapshot arrived from the monitor's threads."""

    def __init__(self, snapshot: FleetSnapshot) -> None:
        self.snapshot = snapshot
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        # Only the newest picture matters: a queued older one is dropped.
        return isinstance(message, FleetUpdated)


class AitopApp(ActionsMixin, App):
    """top for AI model containers."""

    TITLE = "aitop"
    CSS = """
    Screen {
        layout: vertical;
    }
    #filter {
        dock: bottom;
        height: 3;
        display: none;
    }
    #filter.-active {
        display: block;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave aitop"),
        Binding(
            "a", "toggle_all", "All/models", id="toggle-all", tooltip="Model containers or all"
        ),
        Binding("slash", "filter", "Filter", id="filter", tooltip="Filter by text"),
        Binding("escape", "clear_filter", "Clear filter", id="clear-filter", show=False),
        *ACTION_BINDINGS,
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        rules: DetectionRules = DEFAULT_RULES,
        interval: float = 1.0,
        gpu_interval: float = 1.0,
        show_all: bool = False,
        monitor: FleetMonitor | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.monitor = monitor or FleetMonitor(
            engine,
            rules=rules,
            interval=interval,
            gpu=GpuSampler(min_interval=gpu_interval),
        )
        self._mounted_once = False
        self.monitor.on_snapshot = self._from_monitor
        self._show_all = show_all
        self._first_frame_file = os.environ.get(FIRST_FRAME_ENV)
        self.last_snapshot: FleetSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield HostGauges(id="host")
        yield GpuPanel(id="gpus")
        yield ContainerTable(id="containers")
        yield Input(placeholder="filter by name, model, image or label (Esc clears)", id="filter")
        yield ActionProgress(id="action-progress")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(ContainerTable)
        table.show_all = self._show_all
        table.focus()
        self._mounted_once = True
        self.monitor.start()
        # The monitor may have started before the screen existed: show what it has now.
        snapshot = self.monitor.snapshot()
        if snapshot.engine.reachable:
            self.post_message(FleetUpdated(snapshot))

    def on_unmount(self) -> None:
        self.monitor.stop()

    # Called on the monitor's threads: post_message is thread-safe and never blocks.
    def _from_monitor(self, snapshot: FleetSnapshot) -> None:
        # Before mounting there is no screen to update; on_mount pulls the latest instead.
        if self._mounted_once:
            self.post_message(FleetUpdated(snapshot))

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        snapshot = message.snapshot
        self.last_snapshot = snapshot
        table = self.query_one(ContainerTable)
        names = {c.info.id: c.info.name for c in snapshot.containers}
        with self.batch_update():
            table.update_snapshot(snapshot)
            self.query_one(HostGauges).update_host(snapshot.host)
            if snapshot.gpu is not None:
                self.query_one(GpuPanel).update_report(snapshot.gpu, names)
            self._update_status()
        if (
            self._first_frame_file
            and snapshot.sampled
            and any(c.stats.cpu_percent is not None for c in snapshot.containers)
        ):
            path, self._first_frame_file = self._first_frame_file, None
            self.call_after_refresh(self._record_first_frame, path)

    def _record_first_frame(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f}\n")

    def _update_status(self) -> None:
        snapshot = self.last_snapshot
        if snapshot is None:
            return
        table = self.query_one(ContainerTable)
        total = len(snapshot.containers)
        models = sum(1 for c in snapshot.containers if c.info.is_model)
        kind = "all containers" if table.show_all else f"model containers ({models} of {total})"
        view = f"{table.visible_count} shown · {kind} · a: toggle"
        if table.filter_text:
            view += f" · filter: {table.filter_text!r}"
        status = self.query_one(StatusLine)
        status.update_status(snapshot.engine, snapshot.taken_at)
        status.view = view
        names = {c.info.id: c.info.name for c in snapshot.containers}
        warnings = pressure_warnings(snapshot.gpu, names) if snapshot.gpu is not None else []
        status.alert = " · ".join(warnings)

    # --- actions -------------------------------------------------------------------------------

    def action_toggle_all(self) -> None:
        """Switch between model containers and all containers."""
        table = self.query_one(ContainerTable)
        table.show_all = not table.show_all
        self._update_status()

    def action_filter(self) -> None:
        """Open the filter box."""
        box = self.query_one("#filter", Input)
        box.add_class("-active")
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and close its box."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-active")
        self.query_one(ContainerTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_one(ContainerTable).filter_text = event.value
            self._update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.remove_class("-active")
            self.query_one(ContainerTable).focus()
