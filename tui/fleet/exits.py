"""Why containers died, from the engine's events: the last exit of each container and how
often it restarted lately (issue 17, item 2).

Inspect data alone cannot tell either while a container runs again: the engine resets
`ExitCode` and `OOMKilled` when it starts, and `RestartCount` counts every restart since the
container was created. The events can: a `die` carries the exit code (`exitCode`), an `oom`
comes before the `die` of a run the OOM killer ended, and a `start` after a `die` is a
restart. `ExitLog` keeps, per container, the last exit and the times of its restarts within
`RESTART_WINDOW_S` (bounded), fed by the monitor's event thread (and the engine's event
history at connect) and read by its sampler thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tui.fleet.models import RESTART_WINDOW_S, ContainerInfo, LastExit

MAX_RESTARTS_KEPT = 256
"""Most restart times kept per container (a container restarting faster than this many per
window shows this many)."""

SAME_EXIT_S = 2.0
"""How far apart a die event's time and inspect's FinishedAt may be for the same exit."""


def event_time(event: Mapping[str, Any]) -> float:
    """When an engine event happened, seconds since the epoch (now when it does not say)."""
    nano = event.get("timeNano")
    if isinstance(nano, int) and nano > 0:
        return nano / 1e9
    seconds = event.get("time")
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else time.time()


def _exit_code(event: Mapping[str, Any]) -> int | None:
    raw = ((event.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


class ExitLog:
    """Each container's last exit and recent restarts, from its `oom`, `die` and `start`
    events (thread-safe: one thread records, any reads)."""

    def __init__(self, window: float = RESTART_WINDOW_S) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._exits: dict[str, LastExit] = {}
        self._restarts: dict[str, deque[float]] = {}
        self._died: set[str] = set()
        """Containers whose last event was a die (their next start is a restart)."""
        self._oom: set[str] = set()
        """Containers with an `oom` event since their last start."""

    def record(self, event: Mapping[str, Any]) -> None:
        """Take in one container event (others, and other actions, are ignored)."""
        if event.get("Type") != "container":
            return
        action = str(event.get("Action") or event.get("status") or "")
        cid = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not cid or action not in ("oom", "die", "start", "destroy"):
            return
        at = event_time(event)
        with self._lock:
            if action == "oom":
                self._oom.add(cid)
            elif action == "die":
                oom = cid in self._oom
                self._exits[cid] = LastExit(_exit_code(event), oom, at)
                self._died.add(cid)
            elif action == "start":
                self._oom.discard(cid)
                if cid in self._died:
                    self._died.discard(cid)
                    times = self._restarts.setdefault(cid, deque(maxlen=MAX_RESTARTS_KEPT))
                    times.append(at)
            else:
                self._forget(cid)

    def forget(self, container_id: str) -> None:
        """Drop a container (removed)."""
        with self._lock:
            self._forget(container_id)

    def _forget(self, cid: str) -> None:
        self._exits.pop(cid, None)
        self._restarts.pop(cid, None)
        self._died.discard(cid)
        self._oom.discard(cid)

    def restarts(self, container_id: str, now: float | None = None) -> int:
        """Restarts of this container within the window before `now` (default: the time)."""
        now = time.time() if now is None else now
        with self._lock:
            times = self._restarts.get(container_id)
            if not times:
                return 0
            while times and times[0] < now - self.window:
                times.popleft()
            return len(times)

    def last_exit(self, container_id: str) -> LastExit | None:
        """The last exit its events told (None: no `die` seen)."""
        with self._lock:
            return self._exits.get(container_id)

    def complete(self, info: ContainerInfo, now: float | None = None) -> ContainerInfo:
        """`info` with its recent restarts, and with the last exit its events told where
        inspect no longer can (a container that runs again)."""
        restarts = self.restarts(info.id, now)
        last = info.last_exit
        seen = self.last_exit(info.id)
        if seen is not None and (last is None or last.code is None):
            # The engine stamps FinishedAt and sends the die together: a die well before the
            # FinishedAt inspect gives is of an earlier run (a later die was missed).
            finished = last.at if last is not None else None
            if finished is None or seen.at is None or seen.at >= finished - SAME_EXIT_S:
                last = replace(seen, at=finished if finished is not None else seen.at)
        if restarts == info.restarts_recent and last is info.last_exit:
            return info
        return replace(info, restarts_recent=restarts, last_exit=last)
