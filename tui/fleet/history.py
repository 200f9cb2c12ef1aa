"""The last minutes of every running container's figures, for the up-close view's charts.

aitop samples every running container anyway; `FleetHistory.record` keeps each reading of a
snapshot in fixed-size rings of 32-bit floats (`POINTS` per series: 4 bytes a value, about
7 KB a container), so opening a container's view shows its past at once, not
from then on. A container that stops or goes is dropped at the next record: nothing is kept
past its container. `series()` copies one container's rings into an immutable
`ContainerHistory`, oldest first, None where a figure was not known.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tui.fleet.models import ContainerSnapshot, FleetSnapshot

POINTS = 300
"""Readings kept per series: five minutes at the default 1 s interval."""
MIN_GAP = 0.5
"""Least seconds between two readings of a container: a monitor also publishes on every
event, with the same figures."""

SERIES = (
    "cpu_percent",
    "mem_bytes",
    "net_rx_rate",
    "net_tx_rate",
    "blk_read_rate",
    "blk_write_rate",
)
"""The per-container series, in `ContainerHistory` field order."""


class Ring:
    """The last `size` values of one series, None kept as NaN, in 4 bytes each (8 with
    typecode "d", for times: a float32 holds an epoch second to within two minutes)."""

    __slots__ = ("_next", "_size", "_values")

    def __init__(self, size: int = POINTS, typecode: Literal["f", "d"] = "f") -> None:
        self._values: array[float] = array(typecode)
        self._size = size
        self._next = 0

    def append(self, value: float | None) -> None:
        """Add the newest value (the oldest falls out once the ring is full)."""
        stored = math.nan if value is None else value
        if len(self._values) < self._size:
            self._values.append(stored)
        else:
            self._values[self._next] = stored
            self._next = (self._next + 1) % self._size

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[float | None]:
        values = self._values
        for n in range(len(values)):
            value = values[(self._next + n) % len(values)]
            yield None if math.isnan(value) else value

    def last(self) -> float | None:
        """The newest value (None when empty or not known)."""
        if not self._values:
            return None
        value = self._values[(self._next - 1) % len(self._values)]
        return None if math.isnan(value) else value

    def values(self) -> tuple[float | None, ...]:
        """The values, oldest first."""
        return tuple(self)


@dataclass(frozen=True)
class GpuHistory:
    """One container's use of one GPU, oldest first."""

    index: int
    mem_bytes: tuple[float | None, ...]
    util_percent: tuple[float | None, ...]
    """Its share of the GPU's SM time (NVML's per-process utilisation)."""


@dataclass(frozen=True)
class ContainerHistory:
    """One container's recent figures, oldest first; every series has one value per reading
    (None where it was not known), `gpus` from the first reading that held the GPU on."""

    times: tuple[float, ...]
    """When each reading was taken, seconds since the epoch."""
    cpu_percent: tuple[float | None, ...]
    mem_bytes: tuple[float | None, ...]
    net_rx_rate: tuple[float | None, ...]
    net_tx_rate: tuple[float | None, ...]
    blk_read_rate: tuple[float | None, ...]
    """Bytes per second read from block devices, from the counters' deltas."""
    blk_write_rate: tuple[float | None, ...]
    gpus: tuple[GpuHistory, ...] = ()
    mem_limit_bytes: int | None = None
    """The memory limit at the latest reading (a line on the chart)."""


EMPTY_HISTORY = ContainerHistory((), (), (), (), (), (), ())


class _Kept:
    __slots__ = ("blk", "gpus", "limit", "rings", "started", "times")

    def __init__(self, started: float | None, points: int) -> None:
        self.started = started
        self.times = Ring(points, "d")
        self.rings = tuple(Ring(points) for _ in SERIES)
        self.gpus: dict[int, tuple[Ring, Ring]] = {}
        self.blk: tuple[float, int | None, int | None] | None = None
        self.limit: int | None = None


def _rate(now: float, value: int | None, before: float, old: int | None) -> float | None:
    if value is None or old is None or now <= before or value < old:
        return None
    return (value - old) / (now - before)


class FleetHistory:
    """Bounded histories of every running container, fed one snapshot at a time.

    Thread-safe: the monitor's thread records while the UI thread reads `series`.
    """

    def __init__(self, points: int = POINTS) -> None:
        self.points = points
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, _Kept]] = {}
        """Scope (one engine's monitor) -> container id -> its rings."""

    def __len__(self) -> int:
        with self._lock:
            return sum(len(kept) for kept in self._kept.values())

    def record(self, snapshot: FleetSnapshot, scope: str = "") -> None:
        """Add one reading of each running container of one engine's snapshot (`scope` names
        that engine); drop that engine's containers that stopped, went or started again (a
        new run's figures do not continue the old one's)."""
        now = snapshot.taken_at
        with self._lock:
            before = self._kept.get(scope, {})
            alive: dict[str, _Kept] = {}
            for container in snapshot.containers:
                info = container.info
                if info.state != "running":
                    continue
                kept = before.get(info.id)
                if kept is None or kept.started != info.started_at:
                    kept = _Kept(info.started_at, self.points)
                alive[info.id] = kept
                last = kept.times.last()
                if last is None or now - last >= MIN_GAP:
                    self._add(kept, container, now)
            self._kept[scope] = alive

    def _add(self, kept: _Kept, container: ContainerSnapshot, now: float) -> None:
        stats = container.stats
        read = write = None
        if kept.blk is not None:
            before, old_read, old_write = kept.blk
            read = _rate(now, stats.blk_read_bytes, before, old_read)
            write = _rate(now, stats.blk_write_bytes, before, old_write)
        kept.blk = (now, stats.blk_read_bytes, stats.blk_write_bytes)
        values = (
            stats.cpu_percent,
            stats.mem_bytes,
            stats.net_rx_rate,
            stats.net_tx_rate,
            read,
            write,
        )
        for ring, value in zip(kept.rings, values, strict=True):
            ring.append(None if value is None else float(value))
        kept.times.append(now)
        kept.limit = stats.mem_limit_bytes
        held = {gpu.index: gpu for gpu in container.gpus}
        for index in held.keys() - kept.gpus.keys():
            # A GPU taken on later: its rings start with "not held" up to now.
            mem, util = Ring(self.points), Ring(self.points)
            for _ in range(len(kept.times) - 1):
                mem.append(None)
                util.append(None)
            kept.gpus[index] = (mem, util)
        for index, (mem, util) in kept.gpus.items():
            gpu = held.get(index)
            mem.append(None if gpu is None or gpu.mem_bytes is None else float(gpu.mem_bytes))
            util.append(None if gpu is None else gpu.util_percent)

    def series(self, container_id: str) -> ContainerHistory:
        """A copy of one container's history (empty for one not running)."""
        with self._lock:
            kept = next((k[container_id] for k in self._kept.values() if container_id in k), None)
            if kept is None:
                return EMPTY_HISTORY
            times = tuple(t or 0.0 for t in kept.times)
            cpu, mem, rx, tx, read, write = (ring.values() for ring in kept.rings)
            gpus = tuple(
                GpuHistory(index, mem.values(), util.values())
                for index, (mem, util) in sorted(kept.gpus.items())
            )
            limit = kept.limit
        return ContainerHistory(times, cpu, mem, rx, tx, read, write, gpus, limit)
