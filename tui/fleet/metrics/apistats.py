"""Stats-API readings of containers whose cgroup files are out of reach (a remote engine).

Docker answers a one-shot stats call at its collector's next round, up to a second later,
so calls made one after another cost a second each: 50 containers through two workers took
25 s a sweep. Instead each running container gets one stream, as `docker stats` does, read
on a daemon thread of its own; the engine sends every stream a reading a second, and a
tick takes the latest of each without waiting on the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.engine.streams import EventStream
from tui.fleet.metrics.cgroups import RawSample
from tui.fleet.metrics.stats import raw_from_api

RETRY_AFTER = 2.0
"""Seconds before a container whose stream ended or failed is followed again."""


class _Follow:
    """One container's stream, from the moment it is wanted (None until it is open)."""

    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream: EventStream | None = None


class ApiStats:
    """Follows the stats streams of a set of containers and keeps each one's latest reading.

    Thread-safe. `follow(ids)` is called once a tick with the containers wanted now: streams
    open for new ones and close for those no longer wanted. `close()` ends them all.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._follows: dict[str, _Follow] = {}
        self._latest: dict[str, RawSample] = {}
        self._retry_at: dict[str, float] = {}

    def follow(self, container_ids: Iterable[str]) -> dict[str, RawSample]:
        """Follow exactly these containers; returns the latest reading of each that has one."""
        wanted = set(container_ids)
        now = time.monotonic()
        with self._lock:
            gone = [cid for cid in self._follows if cid not in wanted]
            closing = [self._follows.pop(cid).stream for cid in gone]
            for cid in gone:
                self._latest.pop(cid, None)
            self._retry_at = {c: t for c, t in self._retry_at.items() if c in wanted}
            new = {
                cid: _Follow()
                for cid in wanted
                if cid not in self._follows and self._retry_at.get(cid, 0.0) <= now
            }
            self._follows.update(new)
            latest = {cid: self._latest[cid] for cid in wanted if cid in self._latest}
        for stream in closing:
            if stream is not None:
                stream.close()
        for cid, follow in new.items():
            threading.Thread(
                target=self._read, args=(cid, follow), name="aitop-api-stats", daemon=True
            ).start()
        return latest

    def close(self) -> None:
        """Stop following every container."""
        self.follow(())

    def _read(self, cid: str, follow: _Follow) -> None:
        stream: EventStream | None = None
        try:
            stream = self.engine.stats_stream(cid)
            with self._lock:
                wanted = self._follows.get(cid) is follow
                if wanted:
                    follow.stream = stream
            if not wanted:  # no longer wanted while it opened
                return
            for answer in stream:
                reading = raw_from_api(answer, time.monotonic())
                with self._lock:
                    if self._follows.get(cid) is not follow:
                        return
                    self._latest[cid] = reading
        except EngineError:
            pass
        finally:
            with self._lock:
                if self._follows.get(cid) is follow:
                    # Ended on its own (the container stopped, the engine went): the next
                    # tick that still wants it opens a new one, after a pause.
                    del self._follows[cid]
                    self._retry_at[cid] = time.monotonic() + RETRY_AFTER
            if stream is not None:
                stream.close()
