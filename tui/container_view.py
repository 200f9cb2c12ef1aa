"""The up-close view wired to the fleet: history kept for every container, processes read off
the event loop while the view is open, a signal to one process asked about first.

The app hands every monitor's snapshot to `record` (so the view opens on the past, not from
then on) and to `update` (so an open view follows), and routes the screen's
`SignalRequested` to `ask_signal`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.timer import Timer

from tui.fleet.actions import lifecycle as act
from tui.fleet.actions.inspect import inspect_sections
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.gpu.types import GpuReport
from tui.fleet.history import FleetHistory
from tui.fleet.models import ContainerSnapshot, FleetSnapshot
from tui.fleet.processes import container_processes, signal_process

# The screens are imported when the view opens: the history is kept from the first frame, the
# view (a data table, charts) only when Enter asks for it (issue 14, item 4).
if TYPE_CHECKING:
    from tui.screens.container import ContainerScreen

PROCESS_INTERVAL = 2.0
"""Seconds between two reads of the open view's processes (one `docker top` each)."""


class ContainerController:
    """Opens a container's up-close view and keeps it fed."""

    def __init__(
        self,
        app: App[Any],
        engine_for: Callable[[str], Engine | None],
        *,
        read_only: bool,
    ) -> None:
        self.app = app
        self.engine_for = engine_for
        """The engine that owns a container (None for a recorded fleet)."""
        self.read_only = read_only
        self.history = FleetHistory()
        self._screen: ContainerScreen | None = None
        self._timer: Timer | None = None
        self._gpu: GpuReport | None = None

    @property
    def screen(self) -> ContainerScreen | None:
        """The open view, if any."""
        return self._screen

    def record(self, snapshot: FleetSnapshot, scope: str) -> None:
        """Keep one engine's latest figures (`scope` names the engine)."""
        self.history.record(snapshot, scope)
        if snapshot.gpu is not None:
            self._gpu = snapshot.gpu

    def update(self, snapshot: FleetSnapshot) -> None:
        """Hand the open view its container's latest figures (the whole fleet's snapshot)."""
        screen = self._screen
        if screen is None:
            return
        cid = screen.container.info.id
        found = next((c for c in snapshot.containers if c.info.id == cid), None)
        if found is not None:
            screen.show(found, self.history.series(cid))

    def open(self, container: ContainerSnapshot) -> ContainerScreen:
        """Push the view of one container and start reading its processes."""
        from tui.screens.container import ContainerScreen

        cid = container.info.id
        screen = ContainerScreen(container, self.history.series(cid), read_only=self.read_only)
        self._screen = screen
        self.app.push_screen(screen, lambda _: self._closed(screen))
        engine = self.engine_for(cid)
        if engine is not None:
            self.app.run_worker(lambda: self._read_details(engine, cid), thread=True)
            self._read_processes()
            self._timer = self.app.set_interval(PROCESS_INTERVAL, self._read_processes)
        else:
            screen.show_processes([], "a recorded fleet has no processes to list")
        return screen

    def _read_processes(self) -> None:
        screen = self._screen
        if screen is None:
            return
        cid = screen.container.info.id
        engine = self.engine_for(cid)
        if engine is None:
            return
        gpu = self._gpu
        self.app.run_worker(
            lambda: self._processes(engine, cid, gpu, screen),
            thread=True,
            group="container-processes",
            exclusive=True,
        )

    def _processes(
        self, engine: Engine, cid: str, gpu: GpuReport | None, screen: ContainerScreen
    ) -> None:
        try:
            found, error = container_processes(engine, cid, gpu), None
        except ContainerGone:
            found, error = [], "the container is gone"
        except EngineError as exc:
            found, error = [], str(exc)
        with contextlib.suppress(RuntimeError):  # the app ended meanwhile
            self.app.call_from_thread(screen.show_processes, found, error)

    def _read_details(self, engine: Engine, cid: str) -> None:
        screen = self._screen
        try:
            sections = inspect_sections(engine.inspect(cid))
        except EngineError:
            return  # the view says what the fleet says; the details stay empty
        if screen is not None:
            with contextlib.suppress(RuntimeError):
                self.app.call_from_thread(screen.show_details, sections)

    def ask_signal(self, message: ContainerScreen.SignalRequested) -> None:
        """Ask which signal, then send it to the one process off the event loop."""
        if self.read_only:
            self.app.notify("read-only mode: signal refused", severity="warning", markup=False)
            return
        engine = self.engine_for(message.container_id)
        if engine is None:
            self.app.notify("no engine (a recorded fleet)", severity="warning", markup=False)
            return
        process = message.process
        target = f"process {process.pid} ({process.command[:60]})"

        def picked(signal: str | None) -> None:
            if signal:
                self.app.run_worker(
                    lambda: self._signal(engine, message.container_id, process.pid, signal),
                    thread=True,
                )

        from tui.screens.signal import SignalScreen

        self.app.push_screen(SignalScreen(target, act.SIGNALS), picked)

    def _signal(self, engine: Engine, cid: str, pid: int, signal: str) -> None:
        try:
            signal_process(engine, cid, pid, signal)
        except EngineError as exc:
            text, severity = f"not sent: {exc}", "error"
        else:
            text, severity = f"sent {signal} to process {pid}", "information"
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self.app.notify, text, severity=severity, markup=False)
        self._read_processes_soon()

    def _read_processes_soon(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._read_processes)

    def _closed(self, screen: ContainerScreen) -> None:
        if self._screen is screen:
            self._screen = None
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
