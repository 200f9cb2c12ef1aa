"""Stats-API readings of containers whose cgroup files are out of reach (a remote engine).

Docker answers a one-shot stats call at its collector's next round, up to a second later,
so calls made one after another cost a second each: 50 containers through two workers took
25 s a sweep. Instead each running container gets one stream, as `docker stats` does; the
engine sends every stream a reading a second, and a tick takes the latest of each without
waiting on the engine.

The streams are read by one thread (`StatsMux`, one selector over plain sockets) wherever
the engine speaks plain HTTP (unix socket, TCP, an ssh forward); a reading is decoded only
when a tick takes it. Where the engine answers one-shot readings (Docker API 1.41+), a
container whose last two readings show it idling leaves its stream for a one-shot reading
every IDLE_PERIOD seconds, and goes back to a stream once a reading shows it working: the
engine's collector then reads a sleeping fleet a fifth as often. At 500 containers through
tcp, a thread per stream (the way left for TLS engines) cost 500 threads, 6.4 % of a core in
aitop, 50 % in the engine and 109 MB; this, 4 %, 20 % and 66 MB (bench/README.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.engine.streams import EventStream, StatsMux
from tui.fleet.metrics.cgroups import RawSample
from tui.fleet.metrics.stats import raw_from_api

RETRY_AFTER = 2.0
"""Seconds before a container whose stream ended or failed is followed again."""
IDLE_PERIOD = 5.0
"""Seconds between two readings of a container that idles: at 500 sleeping containers the
engine's reading a second each cost it more than aitop itself."""
IDLE_CPU = 0.5
"""Below this CPU (% of one core) over its last two readings, and below IDLE_BYTES_PER_S of
network and disk traffic, a container idles."""
IDLE_BYTES_PER_S = 1024.0
"""A bridge network's neighbour chatter reaches every container (100 B/s here): not work."""


def _idles(prev: RawSample, cur: RawSample) -> bool:
    """True when a container did next to nothing between two readings."""
    seconds = cur.at - prev.at
    if seconds <= 0 or cur.cpu_ns is None or prev.cpu_ns is None:
        return False
    if (cur.cpu_ns - prev.cpu_ns) / 1e9 / seconds * 100.0 >= IDLE_CPU:
        return False
    moved = sum(
        max(0, a - b)
        for a, b in (
            (cur.net_rx, prev.net_rx),
            (cur.net_tx, prev.net_tx),
            (cur.blk_read, prev.blk_read),
            (cur.blk_write, prev.blk_write),
        )
        if a is not None and b is not None
    )
    return moved / seconds < IDLE_BYTES_PER_S


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
        self._mux: StatsMux | None = None
        self._mux_tried = False
        self._one_shot = False
        self._idle: set[str] = set()
        self._decoded: dict[str, tuple[int, RawSample]] = {}
        """Each container's last decoded reading and its counter: the same reading twice is
        the same object (the monitor keeps its figures then)."""

    def follow(self, container_ids: Iterable[str]) -> dict[str, RawSample]:
        """Follow exactly these containers; returns the latest reading of each that has one."""
        wanted = set(container_ids)
        if not self._mux_tried:
            self._mux_tried = True
            try:
                self._mux = self.engine.stats_mux()
                self._one_shot = self._mux is not None and self.engine.stats_one_shot()
            except EngineError:
                self._mux_tried = False  # the engine is away: asked again next tick
        if self._mux is not None:
            return self._follow_mux(wanted, self._mux)
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

    def _follow_mux(self, wanted: set[str], mux: StatsMux) -> dict[str, RawSample]:
        try:
            address = self.engine.stats_address() if wanted else None
        except EngineError:
            address = None
        with self._lock:
            # What is followed, as the thread-per-stream way keeps it (`followed()`).
            for cid in [c for c in self._follows if c not in wanted or address is None]:
                del self._follows[cid]
            if address is not None:
                for cid in wanted.difference(self._follows):
                    self._follows[cid] = _Follow()
        if address is None:
            mux.follow({}, ("", 0))
        elif self._one_shot:
            idle = self._idle
            # A stream for each container that works (a reading each collector round, and the
            # first figures as soon as a stream's), one-shot readings for those that idle.
            mux.follow({c: IDLE_PERIOD if c in idle else None for c in wanted}, address)
        else:
            mux.follow(dict.fromkeys(wanted), address)
        out: dict[str, RawSample] = {}
        decoded: dict[str, tuple[int, RawSample]] = {}
        for cid, (seq, line) in mux.latest().items():
            if cid not in wanted:
                continue
            known = self._decoded.get(cid)
            if known is not None and known[0] == seq:
                decoded[cid] = known
                out[cid] = known[1]
                continue
            try:
                reading = raw_from_api(self.engine.decode_stats(line), time.monotonic())
            except ValueError:  # a reading the engine cut or garbled: the next one will do
                if known is not None:
                    decoded[cid] = known
                    out[cid] = known[1]
                continue
            decoded[cid] = (seq, reading)
            out[cid] = reading
            if known is not None:
                if _idles(known[1], reading):
                    self._idle.add(cid)
                else:
                    self._idle.discard(cid)
        self._decoded = decoded
        self._idle &= wanted
        return out

    def followed(self) -> frozenset[str]:
        """The containers whose readings are followed now (open or opening)."""
        with self._lock:
            return frozenset(self._follows)

    @property
    def streams_opened(self) -> int:
        """Stats streams opened so far (each restart of one counts)."""
        return self._mux.opened if self._mux is not None else 0

    def close(self) -> None:
        """Stop following every container."""
        if self._mux is not None:
            self._mux.stop()
            self._mux, self._mux_tried = None, True
            self._decoded = {}
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
