"""What happened to the fleet lately: the engine's container events, newest first (issue 17).

The events view lists them (die, oom, kill, restart, health changes, create/destroy, ...),
seeded from the engine's event history when aitop connects (`SEED_WINDOW_S`), so that what
happened before aitop started is there too. `EventLog` is bounded (`MAX_EVENTS`) and drops
an event it already holds (the history and the live stream overlap at the seam, and a
reconnect replays the history again). Names and details come from the engine's event
attributes, which an image author controls: made safe here.
"""

from __future__ import annotations

import contextlib
import signal as signals
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui.fleet.exits import event_time
from tui.fleet.sanitize import safe_text

MAX_EVENTS = 2000
"""Most events kept per engine."""
SEED_WINDOW_S = 3600.0
"""How far back the engine's history is read when aitop connects."""

SHOWN_ACTIONS = frozenset(
    {
        "create",
        "start",
        "restart",
        "die",
        "oom",
        "kill",
        "stop",
        "pause",
        "unpause",
        "destroy",
        "rename",
        "health_status",
    }
)
"""The actions kept (exec_*, attach, resize, ... say nothing of the container's life)."""


@dataclass(frozen=True)
class FleetEvent:
    """One thing that happened to one container."""

    at: float
    """When, seconds since the epoch (the engine's nanosecond stamp)."""
    container_id: str
    name: str
    """The container's name at the time (safe text)."""
    action: str
    """The engine's action: die, oom, kill, start, health_status, ..."""
    detail: str = ""
    """What more the event says: "exit 137", "SIGTERM", "unhealthy" (safe text)."""
    image: str = ""

    @property
    def alarming(self) -> bool:
        """A death that was not asked for: an OOM kill, a non-zero exit, an unhealthy check."""
        if self.action == "oom" or self.detail == "unhealthy":
            return True
        return self.action == "die" and self.detail not in ("", "exit 0")


def fleet_event(raw: Mapping[str, Any]) -> FleetEvent | None:
    """The event the view shows for one engine event, or None for one it does not show."""
    if raw.get("Type") != "container":
        return None
    full = str(raw.get("Action") or raw.get("status") or "")
    action, _, rest = full.partition(":")
    if action not in SHOWN_ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    cid = str(actor.get("ID") or raw.get("id") or "")
    if not cid:
        return None
    attributes = actor.get("Attributes") or {}
    if action == "die":
        detail = f"exit {attributes.get('exitCode', '?')}"
    elif action == "kill":
        detail = _signal_name(str(attributes.get("signal", "")))
    elif action == "health_status":
        detail = rest.strip()
    elif action == "rename":
        detail = f"was {attributes.get('oldName', '?')}"
    else:
        detail = ""
    return FleetEvent(
        at=event_time(raw),
        container_id=cid,
        name=safe_text(str(attributes.get("name") or cid[:12]), limit=200),
        action=action,
        detail=safe_text(detail, limit=200),
        image=safe_text(str(attributes.get("image") or ""), limit=200),
    )


def _signal_name(signal: str) -> str:
    """The engine writes the signal's number ("15"); a name reads better ("SIGTERM")."""
    if signal.isdigit():
        with contextlib.suppress(ValueError):
            return signals.Signals(int(signal)).name
        return f"signal {signal}"
    return signal


def event_key(raw: Mapping[str, Any]) -> tuple[object, ...]:
    """What makes one engine event itself: its time, container and action."""
    actor = raw.get("Actor") or {}
    when = raw.get("timeNano") or raw.get("time")
    return (when, actor.get("ID") or raw.get("id"), raw.get("Action") or raw.get("status"))


class EventLog:
    """The latest `MAX_EVENTS` shown events of one engine, each once (thread-safe)."""

    def __init__(self, limit: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: deque[FleetEvent] = deque(maxlen=limit)
        self._keys: deque[tuple[object, ...]] = deque(maxlen=limit * 4)
        self._seen: set[tuple[object, ...]] = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def take(self, raw: Mapping[str, Any]) -> bool:
        """Take in one engine event (kept when it is one the view shows); False when it was
        taken before, of any kind: the monitor's other consumers take each event once too."""
        key = event_key(raw)
        event = fleet_event(raw)
        with self._lock:
            if key in self._seen:
                return False
            if len(self._keys) == self._keys.maxlen:
                self._seen.discard(self._keys[0])
            self._keys.append(key)
            self._seen.add(key)
            if event is not None:
                self._events.append(event)
            return True

    def recent(self) -> tuple[FleetEvent, ...]:
        """Every event held, newest first."""
        with self._lock:
            events = list(self._events)
        events.sort(key=lambda e: e.at, reverse=True)
        return tuple(events)
