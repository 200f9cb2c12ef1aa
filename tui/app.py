"""The aitop application: wires the headless fleet layer to the widgets.

Data flows one way: the `FleetMonitor`'s threads publish snapshots, which arrive here as
`FleetUpdated` messages and are handed to the widgets. With several engines there is one
monitor per engine; their fleets are shown together, grouped by host, and every action or
log stream goes to the engine that owns the container. User intent flows back as messages
and key bindings. Nothing on the event loop talks to the engine, the kernel or psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input

from tui.action_mixin import ACTION_BINDINGS, ActionsMixin
from tui.commands import APP_COMMANDS, AitopCommands, bindings, describe_hosts, help_sections
from tui.config import Config
from tui.fleet.detect import DEFAULT_RULES, DetectionRules
from tui.fleet.engine.client import Engine
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.gpu.types import pressure_warnings
from tui.fleet.logs.export import export_lines, export_path
from tui.fleet.logs.follower import LogFollower, ReplicaSetFollower
from tui.fleet.logs.types import LogTarget
from tui.fleet.models import EngineStatus, FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from tui.screens.help import HelpScreen
from widgets.action_progress import ActionProgress
from widgets.container_table import HOST_PREFIX, ContainerTable, host_label
from widgets.gpu_panel import GpuPanel
from widgets.host_gauges import HostGauges
from widgets.log_pane import LogPane
from widgets.status_line import StatusLine

GC_OFF_LONGEST = 5.0
"""Seconds after mounting by which the collector is on again, first figures or not."""
LOG_FOLLOW_DEBOUNCE = 0.15
"""Least seconds between two switches of the log pane to another container."""
FIRST_FRAME_ENV = "AITOP_FIRST_FRAME_FILE"
"""When set, the wall-clock time of the first frame with CPU figures is written there."""


class FleetUpdated(Message):
    """A new fleet snapshot arrived from a monitor's threads (`index`: which engine's)."""

    def __init__(self, snapshot: FleetSnapshot, index: int = 0) -> None:
        self.snapshot = snapshot
        self.index = index
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        # Only the newest picture of an engine matters: a queued older one is dropped.
        return isinstance(message, FleetUpdated) and message.index == self.index


def is_local_url(url: str) -> bool:
    """True when an engine URL names this machine (its GPUs are the ones NVML sees here)."""
    return url.startswith(("unix://", "npipe://"))


def combined_status(fleets: Sequence[FleetSnapshot]) -> EngineStatus:
    """One status for several engines, for the status line: reachable while any answers."""
    up = [f.engine for f in fleets if f.engine.reachable]
    down = [f.engine for f in fleets if not f.engine.reachable]

    def joined(values: Iterable[str]) -> str:
        return "/".join(dict.fromkeys(v for v in values if v))

    labels = ", ".join(host_label(f.engine.url) for f in fleets)
    return EngineStatus(
        url=f"{len(fleets)} engines: {labels}",
        reachable=bool(up),
        version=joined(e.version for e in up),
        api_version=joined(e.api_version for e in up),
        error="; ".join(f"{host_label(e.url)}: {e.error or 'connecting'}" for e in down),
        retry_in=min((e.retry_in for e in down if e.retry_in), default=0.0),
        stats_source=joined(e.stats_source for e in up),
        product=joined(e.product for e in up) or "Docker",
    )


def unreachable_notes(fleets: Sequence[FleetSnapshot]) -> list[str]:
    """ "<host>: unreachable, retrying in 4s" for each engine of several that does not answer."""
    notes = []
    for fleet in fleets:
        engine = fleet.engine
        if not engine.reachable and engine.error:
            retry = f" in {engine.retry_in:.0f}s" if engine.retry_in else ""
            notes.append(f"{host_label(engine.url)}: unreachable, retrying{retry}")
    return notes


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
    #logs {
        display: none;
    }
    #logs.-open {
        display: block;
    }
    """

    # Made from the one command registry (tui/commands.py), which also feeds help and palette.
    BINDINGS: ClassVar[list[BindingType]] = [*bindings(APP_COMMANDS), *ACTION_BINDINGS]
    COMMANDS = App.COMMANDS | {AitopCommands}

    def __init__(
        self,
        engine: Engine,
        *,
        rules: DetectionRules = DEFAULT_RULES,
        interval: float = 1.0,
        gpu_interval: float = 1.0,
        show_all: bool = False,
        monitor: FleetMonitor | None = None,
        config: Config | None = None,
        config_problems: Sequence[str] = (),
        hosts: Sequence[str] = (),
        monitors: Sequence[Any] = (),
    ) -> None:
        super().__init__()
        self.engine = engine
        """The first engine (the only one, usually); None for a recorded fleet."""
        self.config = config or Config()
        """The settings from the configuration file (already checked; see tui/config.py)."""
        self.config_problems = tuple(config_problems)
        """What was wrong with the configuration file, one line each (shown once mounted)."""
        self.hosts = tuple(hosts) or self.config.hosts
        """The engines the user configured."""
        self.keymap = dict(self.config.keymap)
        """Keys by binding id, over the registry's defaults."""
        if self.keymap:
            self.set_keymap(self.keymap)
        self.theme = self.config.theme
        self.thresholds = self.config.thresholds.value()
        """When GPU figures are warnings, for the GPU pane and the status line."""
        if config is not None:
            rules = self.config.detection_rules(rules)
            interval = self.config.refresh.fleet
            gpu_interval = self.config.refresh.gpu
        self.monitors: list[Any] = list(monitors) or [
            monitor
            or FleetMonitor(
                engine,
                rules=rules,
                interval=interval,
                gpu=GpuSampler(min_interval=gpu_interval),
            )
        ]
        """One monitor per engine watched, in the order the hosts were given."""
        self.monitor = self.monitors[0]
        self.engines: list[Engine | None] = [
            getattr(m, "engine", None) or (engine if i == 0 else None)
            for i, m in enumerate(self.monitors)
        ]
        """The engine of each monitor (None for a recorded fleet)."""
        if self.config.read_only:
            for each in self.engines:
                if each is not None:
                    each.read_only = True
        self._urls = [m.snapshot().engine.url for m in self.monitors]
        self._fleets: list[FleetSnapshot | None] = [None] * len(self.monitors)
        # Read by action workers too: replaced whole, never changed in place.
        self._host_by_id: dict[str, str] = {}
        self._mounted_once = False
        for index, each in enumerate(self.monitors):
            each.on_snapshot = partial(self._from_monitor, index)
        self._show_all = show_all
        self._first_frame_file = os.environ.get(FIRST_FRAME_ENV)
        self.last_snapshot: FleetSnapshot | None = None
        self._gc_frozen = False
        self._follower: LogFollower | None = None
        self._logs_of: tuple[str, ...] = ()
        self._last_follow = 0.0
        self._follow_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield HostGauges(id="host")
        yield GpuPanel(id="gpus", thresholds=self.thresholds)
        yield ContainerTable(id="containers")
        logs = self.config.logs
        yield LogPane(id="logs", max_lines=logs.max_lines, max_bytes=logs.max_bytes)
        yield Input(placeholder="filter by name, model, image or label (Esc clears)", id="filter")
        yield ActionProgress(id="action-progress")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        # A closed SSH session (SIGHUP) or a `kill` (SIGTERM) ends aitop as `q` does: the
        # monitors stop, ssh forwards end and their temporary directories go.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.exit)
        table = self.query_one(ContainerTable)
        table.show_all = self._show_all
        table.focus()
        self._mounted_once = True
        # The CLI starts with the collector off; the first figures turn it on, or this.
        self.set_timer(GC_OFF_LONGEST, gc.enable)
        if self.config_problems:
            count = len(self.config_problems)
            head = f"configuration: {count} problem{'s' if count != 1 else ''}, defaults used"
            self.notify(
                "\n".join(self.config_problems),
                title=head,
                severity="warning",
                timeout=20,
                markup=False,
            )
        remote = [host_label(u) for u in self._urls if not is_local_url(u)]
        self.query_one(GpuPanel).remote_hosts = tuple(remote)
        for index, each in enumerate(self.monitors):
            each.start()
            # The monitor may have started before the screen existed: show what it has now.
            snapshot = each.snapshot()
            if snapshot.engine.reachable:
                self.post_message(FleetUpdated(snapshot, index))

    def on_unmount(self) -> None:
        self._stop_logs()
        for each in self.monitors:
            each.stop()

    # Called on the monitors' threads: post_message is thread-safe and never blocks.
    def _from_monitor(self, index: int, snapshot: FleetSnapshot) -> None:
        # Before mounting there is no screen to update; on_mount pulls the latest instead.
        if self._mounted_once:
            self.post_message(FleetUpdated(snapshot, index))

    def _combine(self) -> tuple[FleetSnapshot, tuple[FleetSnapshot, ...]]:
        """Several engines' latest fleets as one snapshot (all containers, this machine's
        host and GPU figures, a combined engine status), and each engine's fleet to show."""
        fleets = []
        for url, fleet in zip(self._urls, self._fleets, strict=True):
            if fleet is None:
                fleet = FleetSnapshot(engine=EngineStatus(url=url))
            elif not is_local_url(url):
                # This machine's NVML says nothing of another machine's containers.
                fleet = FleetSnapshot(
                    engine=fleet.engine,
                    host=fleet.host,
                    containers=fleet.containers,
                    taken_at=fleet.taken_at,
                    sampled=fleet.sampled,
                )
            fleets.append(fleet)
        local = [f for f in fleets if is_local_url(f.engine.url)] or fleets
        combined = FleetSnapshot(
            engine=combined_status(fleets),
            host=local[0].host,
            containers=tuple(c for f in fleets for c in f.containers),
            taken_at=max(f.taken_at for f in fleets),
            sampled=all(f.sampled for f in fleets if f.engine.reachable),
            gpu=next((f.gpu for f in local if f.gpu is not None), None),
        )
        return combined, tuple(fleets)

    def engine_for(self, container_id: str | None = None, *, host: str | None = None) -> Any:
        """The engine that owns a container, or the engine of a host's rows."""
        if len(self.engines) == 1:
            return self.engine
        if host is None and container_id is not None:
            host = self.host_of(container_id)
        if host in self._urls:
            return self.engines[self._urls.index(host)]
        return self.engine

    def host_of(self, container_id: str) -> str | None:
        """The engine URL a container belongs to; None with one engine."""
        return self._host_by_id.get(container_id)

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._fleets[message.index] = message.snapshot
        try:
            table = self.query_one(ContainerTable)
        except NoMatches:
            return  # shutting down: a monitor published after the screen went
        if len(self.monitors) == 1:
            snapshot, fleets = message.snapshot, (message.snapshot,)
        else:
            snapshot, fleets = self._combine()
            self._host_by_id = {c.info.id: f.engine.url for f in fleets for c in f.containers}
        self.last_snapshot = snapshot
        if self.marked:
            # A removed container's mark would act on nothing (or on a reused id): drop it.
            alive = {c.info.id for c in snapshot.containers}
            if not self.marked <= alive:
                self.marked &= alive
                self._show_marks()
        names = {c.info.id: c.info.name for c in snapshot.containers}
        with self.batch_update():
            table.update_fleets(fleets)
            self.query_one(HostGauges).update_host(snapshot.host)
            if snapshot.gpu is not None:
                self.query_one(GpuPanel).update_report(snapshot.gpu, names)
            self._update_status()
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
        warnings = (
            pressure_warnings(snapshot.gpu, names, self.thresholds)
            if snapshot.gpu is not None
            else []
        )
        if len(self.monitors) > 1:
            # The line stays in the normal colours while another engine answers: say which not.
            warnings = (
                unreachable_notes(
                    [f for f in self._fleets if f is not None and snapshot.engine.reachable]
                )
                + warnings
            )
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

    def action_show_help(self) -> None:
        """Show every key of the focused pane and the global ones."""
        self.push_screen(HelpScreen(help_sections(self, self.screen)))

    def action_switch_host(self) -> None:
        """Jump to the next engine's rows (several engines); else say which engine is watched."""
        table = self.query_one(ContainerTable)
        keys = table.row_keys
        hosts = [i for i, key in enumerate(keys) if key.startswith(HOST_PREFIX)]
        if len(hosts) > 1:
            target = next((i for i in hosts if i > table.cursor_row), hosts[0])
            table.move_cursor(row=target)
            table.focus()
            url = keys[target][len(HOST_PREFIX) :]
            self.notify(
                f"{host_label(url)} ({hosts.index(target) + 1} of {len(hosts)})", markup=False
            )
            return
        watched = [e for e in self.engines if e is not None]
        if not watched:
            self.notify("no engine: this is a recorded fleet", severity="warning", markup=False)
            return
        text = describe_hosts([(e.url, e.url_source) for e in watched], self.hosts)
        self.notify(text, title="Switch host", timeout=10, markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
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
        if all(e is None for e in self.engines):
            self.notify(
                "no engine to read logs from (a recorded fleet)", severity="warning", markup=False
            )
            return
        pane.add_class("-open")
        self._follow_selection(force=True)
        pane.focus()

    def on_container_table_container_highlighted(
        self, message: ContainerTable.ContainerHighlighted
    ) -> None:
        if not self.query_one(LogPane).has_class("-open"):
            return
        # Each switch starts reader threads and streams: while the cursor runs down the table,
        # follow at once only when the last switch is a while ago, else once it rests.
        if self._follow_timer is not None:
            self._follow_timer.stop()
            self._follow_timer = None
        wait = self._last_follow + LOG_FOLLOW_DEBOUNCE - time.monotonic()
        if wait <= 0:
            self._follow_selection()
        else:
            self._follow_timer = self.set_timer(wait, self._follow_after_rest)

    def _follow_after_rest(self) -> None:
        self._follow_timer = None
        if self.query_one(LogPane).has_class("-open"):
            self._follow_selection()

    def on_log_pane_preset_changed(self, message: LogPane.PresetChanged) -> None:
        self._follow_selection(force=True)

    def on_log_pane_replicas_toggled(self, message: LogPane.ReplicasToggled) -> None:
        self._follow_selection(force=True)

    def on_log_pane_export_requested(self, message: LogPane.ExportRequested) -> None:
        self._export_logs(message)

    @work(thread=True, exit_on_error=False, group="logs", description="export logs")
    def _export_logs(self, message: LogPane.ExportRequested) -> None:
        path = export_path(Path.cwd(), message.name)
        try:
            export_lines(message.lines, path, timestamps=message.timestamps, source=message.source)
        except OSError as exc:
            self.notify(
                f"could not write {path}: {exc.strerror or exc}", severity="error", markup=False
            )
            return
        self.notify(f"wrote {len(message.lines)} lines to {path}", markup=False)

    def _log_targets(self) -> tuple[list[LogTarget], str]:
        """What the pane should follow now: the selected container, its replicas, or a group
        (replicas and groups on the selected row's host only)."""
        snapshot = self.last_snapshot
        table = self.query_one(ContainerTable)
        pane = self.query_one(LogPane)
        if snapshot is None:
            return [], ""
        host = table.selected_host
        by_id = {
            c.info.id: c.info
            for c in snapshot.containers
            if host is None or table.host_of(c.info.id) == host
        }
        selected = by_id.get(table.selected_container_id or "")
        group = selected.group if selected is not None else table.selected_group
        if (pane.replicas or selected is None) and group and group != ("", ""):
            members = [i for i in by_id.values() if i.group == group]
            members.sort(key=lambda i: (i.compose_number, i.name))
            return [LogTarget(i.id, i.name) for i in members], "/".join(p for p in group if p)
        if selected is None:
            return [], ""
        return [LogTarget(selected.id, selected.name)], selected.name

    def _follow_selection(self, *, force: bool = False) -> None:
        targets, title = self._log_targets()
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
        several = len(targets) > 1
        cls = ReplicaSetFollower if several else LogFollower
        engine = self.engine_for(targets[0].container_id)
        if engine is None:
            pane.start_session(None, title="no engine (a recorded fleet)", show_source=False)
            return
        follower = cls(
            engine,
            targets if several else targets[0],
            on_batch=pane.post_batch,
            preset=pane.preset,
        )
        pane.start_session(follower.session, title=title, show_source=several)
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
            self._update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.remove_class("-active")
            self.query_one(ContainerTable).focus()
