"""The aitop application: wires the headless fleet layer to the widgets.

Data flows one way: each `FleetSource` (a `FleetMonitor` on a live engine) publishes snapshots
from its threads; they arrive here as `FleetUpdated` messages, go into the `Fleets` (which
engine owns which container, all of them as one picture) and on to the widgets. With several
engines there is one source per engine; their fleets are shown together, grouped by host, and
every action or log stream goes to the engine that owns the container. User intent flows back
as messages (`ContainerTable.SelectionChanged`, `ContainerTable.ViewChanged`, the log pane's)
and key bindings. Nothing on the event loop talks to the engine, the kernel or psutil.

The configuration arrives checked and complete (`tui.cli` folds the flags into it, and made
the engines and monitors from it): the app only reads what it draws with.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from tui import heap
from tui.commands import (
    ACTION_COMMANDS,
    APP_COMMANDS,
    AitopCommands,
    bindings,
    describe_hosts,
    help_sections,
)
from tui.config import Config, ConfigProblem, config_notice, find_config
from tui.container_view import ContainerController
from tui.fleet.engine.client import Engine
from tui.fleet.engine.ssh import SshTunnel
from tui.fleet.gpu.types import pressure_warnings
from tui.fleet.logs.follower import LogFollower, ReplicaSetFollower
from tui.fleet.logs.types import PRESETS, LogTarget
from tui.fleet.models import FleetSnapshot
from tui.fleet.source import FleetSource
from tui.fleet_actions import FleetActions
from tui.fleets import Fleets, is_local_url, unreachable_notes
from tui.messages import FleetUpdated
from widgets.action_progress import ActionProgress
from widgets.container_table import (
    ContainerTable,
    Selection,
    TableView,
    group_key,
    host_label,
)
from widgets.gpu_panel import GpuPanel
from widgets.host_gauges import HostGauges
from widgets.key_footer import KeyFooter
from widgets.log_pane import LogPane
from widgets.status_line import StatusLine

# What only a key opens (a view, a dialog, an export) is imported when it is opened: the first
# frame does not need it, and each costs memory for as long as aitop runs (issue 14, item 4).
if TYPE_CHECKING:
    from tui.disk_view import DiskController
    from tui.fleet.events import FleetEvent
    from tui.screens.container import ContainerScreen
    from tui.screens.disk import DiskScreen
    from tui.screens.events import EventsScreen
    from tui.screens.swarm import SwarmScreen
    from tui.swarm_view import SwarmController

SHUTDOWN_GRACE = 3.0
"""Seconds a SIGTERM leaves Textual to restore the terminal before the process just ends."""
GC_OFF_LONGEST = 5.0
"""Seconds after mounting by which the collector is on again, first figures or not."""
LOG_FOLLOW_DEBOUNCE = 0.15
"""Least seconds between two switches of the log pane to another container."""
FIRST_FRAME_ENV = "AITOP_FIRST_FRAME_FILE"
"""When set, the wall-clock time of the first frame with CPU figures is written there."""


def view_text(view: TableView) -> str:
    """The status line's account of what the table shows."""
    kind = (
        "all containers" if view.show_all else f"model containers ({view.models} of {view.total})"
    )
    text = f"{view.shown} shown · {kind} · a: toggle"
    if view.filter_text:
        text += f" · filter: {view.filter_text!r}"
    return text


class AitopApp(FleetActions):
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
    #logs {
        display: none;
    }
    #logs.-open {
        display: block;
    }
    """

    # Made from the one command registry (tui/commands.py), which also feeds help and palette.
    BINDINGS: ClassVar[list[BindingType]] = [*bindings(APP_COMMANDS), *bindings(ACTION_COMMANDS)]
    COMMANDS = App.COMMANDS | {AitopCommands}

    def __init__(
        self,
        monitors: Sequence[FleetSource],
        *,
        config: Config,
        config_problems: Sequence[ConfigProblem] = (),
        show_all: bool = False,
        config_path: Path | None = None,
    ) -> None:
        """`monitors`: one source per engine, in the order the hosts were given; `config`: the
        settings, checked and with the command line's flags folded in; `config_path`: the
        file they came from (where `c` writes the columns; default: `find_config()`'s)."""
        super().__init__(Fleets.of(monitors))
        self.monitors: tuple[FleetSource, ...] = tuple(monitors)
        """One source per engine watched."""
        self.config = config
        """The settings (already checked; see tui/config.py and tui/cli.py)."""
        self.config_problems = tuple(config_problems)
        """What was wrong with the configuration file (shown once mounted)."""
        self.config_path = config_path
        """The configuration file the settings came from; None: wherever `find_config` says."""
        self.keymap: dict[str, str] = dict(config.keymap)
        """Keys by binding id, over the registry's defaults."""
        if self.keymap:
            self.set_keymap(self.keymap)
        self.theme = config.theme
        self.thresholds = config.thresholds.value()
        """When GPU figures are warnings, for the GPU pane and the status line."""
        self._mounted_once = False
        for index, each in enumerate(self.monitors):
            each.on_snapshot = partial(self._from_monitor, index)
        self._show_all = show_all
        self._first_frame_file = os.environ.get(FIRST_FRAME_ENV)
        self._gc_frozen = False
        self._follower: LogFollower | None = None
        self._logs_of: tuple[str, ...] = ()
        self._last_follow = 0.0
        self._follow_timer: Timer | None = None
        self.container_view = ContainerController(
            self, lambda cid: self.fleets.engine_for(cid), read_only=self.read_only
        )
        """The up-close view (Enter), and the history it opens on, kept for every container."""

    @cached_property
    def disk_view(self) -> DiskController:
        """The disk view (d): each engine's disk use, and removals asked about first."""
        from tui.disk_view import DiskController

        return DiskController(self, read_only=self.read_only)

    @cached_property
    def swarm_view(self) -> SwarmController:
        """The swarm view (W): a manager's nodes and every task, read every 2 s while open."""
        from tui.swarm_view import SwarmController

        return SwarmController(self, read_only=self.read_only)

    def compose(self) -> ComposeResult:
        yield HostGauges(id="host")
        yield GpuPanel(id="gpus", thresholds=self.thresholds)
        yield ContainerTable(id="containers")
        logs = self.config.logs
        yield LogPane(id="logs", max_lines=logs.max_lines, max_bytes=logs.max_bytes)
        yield Input(placeholder="filter by name, model, image or label (Esc clears)", id="filter")
        yield ActionProgress(id="action-progress")
        yield StatusLine(id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        # A closed SSH session (SIGHUP) or a `kill` (SIGTERM) ends aitop as `q` does: the
        # monitors stop, ssh forwards end and their temporary directories go.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._end_on_signal, sig)
        table = self.query_one(ContainerTable)
        table.show_all = self._show_all
        table.columns = self.config.table.columns
        toggle = next(c.key for c in APP_COMMANDS if c.id == "toggle-all")
        table.toggle_key = self.keymap.get("toggle-all", toggle).split(",")[0].strip()
        table.focus()
        self._mounted_once = True
        # The CLI starts with the collector off; the first figures turn it on, or this.
        self.set_timer(GC_OFF_LONGEST, gc.enable)
        if self.config_problems:
            # One short line a problem, in line order, for a few seconds; `aitop config
            # --check` (named in it) has them all in full.
            notice = config_notice(self.config_problems)
            self.notify(
                notice.message,
                title=notice.title,
                severity="warning",
                timeout=notice.timeout,
                markup=False,
            )
        remote = [host_label(u) for u in self.fleets.urls if not is_local_url(u)]
        self.query_one(GpuPanel).remote_hosts = tuple(remote)
        for index, each in enumerate(self.monitors):
            each.start()
            # The monitor may have started before the screen existed: show what it has now.
            snapshot = each.snapshot()
            if snapshot.engine.reachable:
                self.post_message(FleetUpdated(snapshot, index))

    def _end_on_signal(self, sig: signal.Signals) -> None:
        """SIGTERM ends aitop as `q` does; SIGHUP (the terminal went away: a closed SSH
        session) at once, since there is no terminal left to restore and Textual's shutdown
        would wait forever on writes to it. Either way the ssh forwards end and their
        directories go, and a shutdown that hangs still ends the process."""
        SshTunnel.close_all()
        if sig == signal.SIGHUP:
            os._exit(128 + sig)
        self.exit()
        watchdog = threading.Timer(SHUTDOWN_GRACE, os._exit, args=(128 + sig,))
        watchdog.daemon = True  # a clean exit does not wait for it
        watchdog.start()

    def on_unmount(self) -> None:
        self._stop_logs()
        for each in self.monitors:
            each.stop()

    # Called on the monitors' threads: post_message is thread-safe and never blocks.
    def _from_monitor(self, index: int, snapshot: FleetSnapshot) -> None:
        # Before mounting there is no screen to update; on_mount pulls the latest instead.
        if self._mounted_once:
            self.post_message(FleetUpdated(snapshot, index))

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        try:
            table = self.query_one(ContainerTable)
            gauges = self.query_one(HostGauges)
            gpus = self.query_one(GpuPanel)
            status = self.query_one(StatusLine)
        except NoMatches:
            return  # shutting down: a monitor published after the screen went
        snapshot = self.fleets.update(message.index, message.snapshot)
        self.container_view.record(message.snapshot, str(message.index))
        self.forget_gone_marks(snapshot)
        names = {c.info.id: c.info.name for c in snapshot.containers}
        with self.batch_update():
            table.update_fleets(self.fleets.shown)
            gauges.update_host(snapshot.host)
            if snapshot.gpu is not None:
                gpus.update_report(snapshot.gpu, names)
            self._update_status(status, snapshot)
            if len(self.screen_stack) > 1:
                self._update_views(snapshot)
            self.container_view.update(snapshot)
        if snapshot.sampled and not self._gc_frozen:
            # What exists now (Textual's DOM and styles, the fleet) lives as long as the app:
            # out of the collector's sight, the full collections that a large fleet's churn
            # sets off every few seconds no longer walk all of it.
            self._gc_frozen = True
            gc.freeze()
            gc.enable()  # off since the CLI's start (tui.cli.main)
            # Once the first figures are drawn, the inspects that a CLI start held back may
            # run (they would slow this first frame down: FleetMonitor.start).
            for each in self.monitors:
                self.call_after_refresh(each.release_details)
            # The start's garbage (import-time objects, the first listing) is freed by now:
            # its pages go back to the system instead of staying in the peak.
            self.call_after_refresh(heap.trim)
        if (
            self._first_frame_file
            and snapshot.sampled
            and any(c.stats.cpu_percent is not None for c in snapshot.containers)
        ):
            path, self._first_frame_file = self._first_frame_file, None
            self.call_after_refresh(self._record_first_frame, path)

    def _update_views(self, snapshot: FleetSnapshot) -> None:
        """Hand the snapshot to the open serving and events views."""
        # Imported here: these modules are loaded once a key has opened one of the views.
        from tui.screens.events import EventsScreen
        from tui.screens.serving import ServingScreen

        for screen in self.screen_stack:
            if isinstance(screen, ServingScreen):
                screen.update_fleet(snapshot)
            elif isinstance(screen, EventsScreen):
                screen.show(self.recent_events())

    def _record_first_frame(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f}\n")

    def _update_status(self, status: StatusLine, snapshot: FleetSnapshot) -> None:
        status.update_status(snapshot.engine, snapshot.taken_at)
        names = {c.info.id: c.info.name for c in snapshot.containers}
        warnings = (
            pressure_warnings(snapshot.gpu, names, self.thresholds)
            if snapshot.gpu is not None
            else []
        )
        if self.fleets.several and snapshot.engine.reachable:
            # The line stays in the normal colours while another engine answers: say which not.
            warnings = unreachable_notes(self.fleets.latest) + warnings
        status.alert = " · ".join(warnings)

    def on_container_table_view_changed(self, message: ContainerTable.ViewChanged) -> None:
        # Posted by the table as the screen goes too: the status line may be gone already.
        for status in self.query(StatusLine):
            status.view = view_text(message.view)

    # --- actions -------------------------------------------------------------------------------

    def action_toggle_all(self) -> None:
        """Switch between model containers and all containers."""
        table = self.query_one(ContainerTable)
        table.show_all = not table.show_all

    def action_filter(self) -> None:
        """Open the filter box."""
        box = self.query_one("#filter", Input)
        box.add_class("-active")
        box.focus()

    def action_show_help(self) -> None:
        """Show every key of the focused pane and the global ones."""
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(help_sections(self, self.screen)))

    def action_show_serving(self) -> None:
        """Open the serving view on the selected container (its model server, live)."""
        snapshot = self.fleets.snapshot
        selected = self.query_one(ContainerTable).selection.container_id
        container = None
        if snapshot is not None and selected is not None:
            container = next((c for c in snapshot.containers if c.info.id == selected), None)
        if snapshot is None or container is None:
            self.notify(
                "Select one container to see its model server", severity="warning", markup=False
            )
            return
        from tui.screens.serving import ServingScreen

        self.push_screen(
            ServingScreen(container, snapshot.taken_at, self.container_view.history.series)
        )

    def action_show_container(self) -> None:
        """Open the selected container up close: its recent past, processes and details; on a
        group row, fold or unfold the group."""
        snapshot = self.fleets.snapshot
        table = self.query_one(ContainerTable)
        selection = table.selection
        if selection.kind == "group" and selection.group is not None:
            table.toggle_fold(group_key(selection.group, selection.host or ""))
            return
        selected = selection.container_id
        container = None
        if snapshot is not None and selected is not None:
            container = next((c for c in snapshot.containers if c.info.id == selected), None)
        if container is None:
            self.notify("Select one container to see it up close", severity="warning", markup=False)
            return
        self.container_view.open(container)

    def on_container_screen_signal_requested(
        self, message: ContainerScreen.SignalRequested
    ) -> None:
        self.container_view.ask_signal(message)

    def action_show_disk(self) -> None:
        """Open the disk view of the selected container's engine (else the first engine)."""
        engine = self._selected_engine()
        if engine is None:
            self.notify("no engine (a recorded fleet)", severity="warning", markup=False)
            return
        self.disk_view.open(engine)

    def on_disk_screen_refresh_requested(self, message: DiskScreen.RefreshRequested) -> None:
        self.disk_view.refresh()

    def on_disk_screen_remove_requested(self, message: DiskScreen.RemoveRequested) -> None:
        self.disk_view.ask_remove(message)

    def action_show_swarm(self) -> None:
        """Open the swarm view of the selected container's engine (else the first engine)."""
        engine = self._selected_engine()
        if engine is None:
            self.notify("no engine (a recorded fleet)", severity="warning", markup=False)
            return
        self.swarm_view.open(engine)

    def on_swarm_screen_refresh_requested(self, message: SwarmScreen.RefreshRequested) -> None:
        self.swarm_view.refresh()

    def on_swarm_screen_availability_requested(
        self, message: SwarmScreen.AvailabilityRequested
    ) -> None:
        self.swarm_view.ask_availability(message)

    def _selected_engine(self) -> Engine | None:
        """The selected container's engine, else the first engine (None: a recorded fleet)."""
        selected = self.query_one(ContainerTable).selection.container_id
        engine = self.fleets.engine_for(selected) if selected else None
        return engine or next((e for e in self.fleets.engines if e is not None), None)

    def recent_events(self) -> tuple[FleetEvent, ...]:
        """Every engine's recent container events, newest first."""
        events = [event for each in self.monitors for event in each.recent_events()]
        events.sort(key=lambda e: e.at, reverse=True)
        return tuple(events)

    def action_pick_columns(self) -> None:
        """Pick and order the table's columns; kept in the configuration file."""
        from tui.screens.columns import pick_columns

        path = self.config_path or find_config()[0]
        pick_columns(self, self.query_one(ContainerTable), path)

    def action_show_events(self) -> None:
        """Open the events view: what happened to the fleet lately, newest first."""
        from tui.screens.events import EventsScreen

        self.push_screen(EventsScreen(self.recent_events()))

    def on_events_screen_jump_requested(self, message: EventsScreen.JumpRequested) -> None:
        """Go to the event's container, and open its logs on a history that holds the moment
        (with timestamps, to find it)."""
        event = message.event
        table = self.query_one(ContainerTable)
        if event.container_id not in table.row_keys and not table.show_all:
            table.show_all = True  # not a model container: show all to reach it
        if event.container_id not in table.row_keys:
            self.notify(f"{event.name} is gone", severity="warning", markup=False)
            return
        table.move_cursor(row=table.row_keys.index(event.container_id))
        pane = self.query_one(LogPane)
        age = time.time() - event.at
        cover = next((p for p in PRESETS if p.since_seconds and age < p.since_seconds), None)
        pane.preset_key = cover.key if cover is not None else "all"
        pane.show_timestamps = True
        if not pane.has_class("-open"):
            self.action_toggle_logs()

    def action_switch_host(self) -> None:
        """Jump to the next engine's rows (several engines); else say which engine is watched."""
        table = self.query_one(ContainerTable)
        jumped = table.cursor_to_next_host()
        if jumped is not None:
            url, place, count = jumped
            table.focus()
            self.notify(f"{host_label(url)} ({place} of {count})", markup=False)
            return
        watched = [e for e in self.fleets.engines if e is not None]
        if not watched:
            self.notify("no engine: this is a recorded fleet", severity="warning", markup=False)
            return
        text = describe_hosts([(e.url, e.url_source) for e in watched], self.config.hosts)
        self.notify(text, title="Switch host", timeout=10, markup=False)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's palette commands, less those the registry offers itself (quit, keys, theme)."""
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Keys", "Theme"):
                yield command

    def action_clear_filter(self) -> None:
        """Clear the filter and close its box."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-active")
        self.query_one(ContainerTable).focus()

    # --- logs ------------------------------------------------------------------------------

    def action_toggle_logs(self) -> None:
        """Open the log pane on the selected container, or close it."""
        pane = self.query_one(LogPane)
        if pane.has_class("-open"):
            pane.remove_class("-open")
            self._stop_logs()
            self.query_one(ContainerTable).focus()
            return
        if all(e is None for e in self.fleets.engines):
            self.notify(
                "no engine to read logs from (a recorded fleet)", severity="warning", markup=False
            )
            return
        pane.add_class("-open")
        self._follow_selection(force=True)
        pane.focus()

    def on_container_table_selection_changed(
        self, message: ContainerTable.SelectionChanged
    ) -> None:
        # As the screen goes, the table's last rebuild may still post one: no pane, nothing to do.
        if not any(pane.has_class("-open") for pane in self.query(LogPane)):
            return
        # Each switch starts reader threads and streams: while the cursor runs down the table,
        # follow at once only when the last switch is a while ago, else once it rests.
        if self._follow_timer is not None:
            self._follow_timer.stop()
            self._follow_timer = None
        wait = self._last_follow + LOG_FOLLOW_DEBOUNCE - time.monotonic()
        if wait <= 0:
            self._follow_selection(message.selection)
        else:
            self._follow_timer = self.set_timer(wait, self._follow_after_rest)

    def _follow_after_rest(self) -> None:
        self._follow_timer = None
        if any(pane.has_class("-open") for pane in self.query(LogPane)):
            self._follow_selection()

    def on_log_pane_preset_changed(self, message: LogPane.PresetChanged) -> None:
        self._follow_selection(force=True)

    def on_log_pane_replicas_toggled(self, message: LogPane.ReplicasToggled) -> None:
        self._follow_selection(force=True)

    def on_log_pane_export_requested(self, message: LogPane.ExportRequested) -> None:
        self._export_logs(message)

    @work(thread=True, exit_on_error=False, group="logs", description="export logs")
    def _export_logs(self, message: LogPane.ExportRequested) -> None:
        from tui.fleet.logs.export import export_lines, export_path

        path = export_path(Path.cwd(), message.name)
        try:
            export_lines(message.lines, path, timestamps=message.timestamps, source=message.source)
        except OSError as exc:
            self.notify(
                f"could not write {path}: {exc.strerror or exc}", severity="error", markup=False
            )
            return
        self.notify(f"wrote {len(message.lines)} lines to {path}", markup=False)

    def _log_targets(self, selection: Selection) -> tuple[list[LogTarget], str]:
        """What the pane should follow for `selection`: the container, its replicas, or a group
        (replicas and groups on the selected row's host only)."""
        by_id = {i.id: i for i in self.fleets.containers(selection.host)}
        selected = by_id.get(selection.container_id or "")
        group = selected.group if selected is not None else selection.group
        if (self.query_one(LogPane).replicas or selected is None) and group and group != ("", ""):
            members = [i for i in by_id.values() if i.group == group]
            members.sort(key=lambda i: (i.compose_number, i.name))
            return [LogTarget(i.id, i.name) for i in members], "/".join(p for p in group if p)
        if selected is None:
            return [], ""
        return [LogTarget(selected.id, selected.name)], selected.name

    def _follow_selection(self, selection: Selection | None = None, *, force: bool = False) -> None:
        """Point the log pane at `selection` (default: the table's, now)."""
        if selection is None:
            selection = self.query_one(ContainerTable).selection
        targets, title = self._log_targets(selection)
        ids = tuple(t.container_id for t in targets)
        if not force and ids == self._logs_of:
            return
        self._stop_logs()
        self._logs_of = ids
        self._last_follow = time.monotonic()
        pane = self.query_one(LogPane)
        if not targets:
            pane.start_session(None, title="no container selected", show_source=False)
            return
        engine = self.fleets.engine_for(targets[0].container_id)
        if engine is None:
            pane.start_session(None, title="no engine (a recorded fleet)", show_source=False)
            return
        follower: LogFollower
        if len(targets) > 1:
            follower = ReplicaSetFollower(
                engine, targets, on_batch=pane.post_batch, preset=pane.preset
            )
        else:
            follower = LogFollower(engine, targets[0], on_batch=pane.post_batch, preset=pane.preset)
        pane.start_session(follower.session, title=title, show_source=len(targets) > 1)
        self._follower = follower
        # stop() on a follower returns at once (it closes its streams); start only spawns.
        follower.start()

    def _stop_logs(self) -> None:
        follower, self._follower = self._follower, None
        self._logs_of = ()
        if follower is not None:
            follower.stop()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_one(ContainerTable).filter_text = event.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.remove_class("-active")
            self.query_one(ContainerTable).focus()
