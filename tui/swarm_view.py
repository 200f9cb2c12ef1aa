"""The swarm view wired to a manager: reads off the event loop, a node drained after asking.

`SwarmController` opens the `SwarmScreen` of one engine, reads the swarm (`read_swarm`: four
short API calls) on a worker thread every `INTERVAL_S` while the view is open, one read at a
time (the next is armed only when the last one ended, so a slow manager never piles reads
up), and hands each snapshot to the screen. It answers the screen's messages: a read now, and
draining or activating a node, asked about with a `ConfirmScreen` that names the node and the
tasks that move (`availability_plan`), then done on a worker; the engine's answer is a toast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.notifications import SeverityLevel
from textual.timer import Timer

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.sanitize import safe_text
from tui.fleet.swarm import SwarmSnapshot, availability_plan, read_swarm, set_availability
from tui.screens.confirm import ConfirmAnswer, ConfirmScreen
from tui.screens.swarm import SwarmScreen, SwarmState

INTERVAL_S = 2.0
"""Seconds from the end of one read of the swarm to the start of the next."""


def not_manager_reason(engine: Engine) -> str:
    """Why `engine` is no swarm manager, plainly ("not a swarm manager: ..."). Blocking: it
    asks the engine (`docker info`'s Swarm)."""
    member = engine.swarm_membership()
    state = safe_text(member.get("LocalNodeState") or "")
    if engine.is_podman:
        why = "Podman has no swarm"
    elif state in ("", "inactive"):
        why = "this engine is in no swarm (docker swarm init or join makes it part of one)"
    elif state == "active":
        why = "this engine is a worker node; point aitop at a manager to see the swarm"
    else:
        why = f"its swarm state is {state}"
    return f"not a swarm manager: {why}"


class SwarmController:
    """Opens the swarm view of an engine, keeps it read, and does what it asks."""

    def __init__(self, app: App[Any], *, read_only: bool) -> None:
        self.app = app
        self.read_only = read_only
        self._screen: SwarmScreen | None = None
        self._engine: Engine | None = None
        self._state = SwarmState()
        self._reading = False
        """True while a read runs on a worker (one at a time)."""
        self._timer: Timer | None = None

    @property
    def screen(self) -> SwarmScreen | None:
        """The open swarm view, if any."""
        return self._screen

    @property
    def polling(self) -> bool:
        """True while a read runs or the next one is armed (only while the view is open)."""
        return self._reading or self._timer is not None

    def open(self, engine: Engine) -> SwarmScreen:
        """Push the swarm view of `engine` and start reading it."""
        if self._engine is not engine:
            self._state = SwarmState()
        self._engine = engine
        screen = SwarmScreen(engine.url, self._state, read_only=self.read_only)
        self._screen = screen
        self.app.push_screen(screen, lambda _: self._closed(screen))
        self.refresh()
        return screen

    def refresh(self) -> None:
        """Read the open view's swarm now (unless a read runs: its end arms the next)."""
        engine = self._engine
        if self._screen is None or engine is None or self._reading:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._reading = True
        self.app.run_worker(
            lambda: self._read(engine),
            thread=True,
            group="swarm",
            exit_on_error=False,
            description=f"read the swarm of {engine.url}",
        )

    def _read(self, engine: Engine) -> None:
        # On a worker thread.
        snapshot: SwarmSnapshot | None = None
        not_manager: str | None = None
        error: str | None = None
        try:
            snapshot = read_swarm(engine)
            if snapshot is None:
                not_manager = not_manager_reason(engine)
        except EngineError as exc:
            error = str(exc)
        self._on_loop(lambda: self._read_done(engine, snapshot, not_manager, error))

    def _read_done(
        self,
        engine: Engine,
        snapshot: SwarmSnapshot | None,
        not_manager: str | None,
        error: str | None,
    ) -> None:
        self._reading = False
        if engine is not self._engine:
            # The view was opened on another engine meanwhile: its first read starts now.
            self.refresh()
            return
        if error is not None:
            # Keep the last snapshot on screen and say the read failed.
            self._state = SwarmState(self._state.snapshot, self._state.not_manager, error)
        else:
            self._state = SwarmState(snapshot, not_manager, None)
        if self._screen is None:
            return
        self._screen.show(self._state)
        self._timer = self.app.set_timer(INTERVAL_S, self.refresh, name="swarm-read")

    def ask_availability(self, message: SwarmScreen.AvailabilityRequested) -> None:
        """Ask before draining or activating a node, then do it off the event loop."""
        if self.read_only:
            self.app.notify(
                "read-only mode: draining and activating nodes refused",
                severity="warning",
                markup=False,
            )
            return
        engine = self._engine
        snapshot = self._state.snapshot
        if engine is None or snapshot is None:
            return
        node, availability = message.node, message.availability
        plan = availability_plan(snapshot, node.id, availability)
        verb = {"drain": "Drain", "active": "Activate", "pause": "Pause"}.get(availability, "Set")

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self.app.run_worker(
                    lambda: self._set(engine, node.id, node.hostname, availability),
                    thread=True,
                    group="swarm-actions",
                    exit_on_error=False,
                    description=f"set node {node.hostname} to {availability}",
                )

        self.app.push_screen(
            ConfirmScreen(f"{verb} node {node.hostname}?", [plan], yes=verb), answered
        )

    def _set(self, engine: Engine, node_id: str, hostname: str, availability: str) -> None:
        # On a worker thread.
        try:
            set_availability(engine, node_id, availability)
        except EngineError as exc:
            text = f"node {hostname} not set to {availability}: {exc}"
            self._on_loop(lambda: self._toast(text, "error"))
            return
        text = f"node {hostname} set to {availability}"
        self._on_loop(lambda: self._toast(text, "information"))
        self._on_loop(self.refresh)

    def _toast(self, text: str, severity: SeverityLevel) -> None:
        self.app.notify(text, severity=severity, markup=False)

    def _on_loop(self, call: Callable[[], None]) -> None:
        # From a worker thread; the app may be gone (quitting while a read ran).
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(call)

    def _closed(self, screen: SwarmScreen) -> None:
        if self._screen is screen:
            self._screen = None
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
