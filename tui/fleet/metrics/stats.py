"""From raw cumulative counters to the figures a person reads (pure functions).

The formulas follow the docker CLI: CPU is CPU time over wall time in percent of one core, and
memory is usage less the inactive file cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tui.fleet.metrics.cgroups import RawSample
from tui.fleet.models import ContainerStats


def _rate(cur: int | None, prev: int | None, seconds: float) -> float | None:
    if cur is None or prev is None or seconds <= 0 or cur < prev:
        return None
    return (cur - prev) / seconds


def compute_stats(
    cur: RawSample, prev: RawSample | None, *, mem_total: int, source: str
) -> ContainerStats:
    """Figures for one container from its latest reading and the one before (if any)."""
    mem = None
    if cur.mem_usage is not None:
        mem = max(cur.mem_usage - cur.mem_inactive_file, 0)
    limit = cur.mem_limit
    # "No limit" reads as a huge number (v1) or "max" (v2): the CLI shows the host's memory.
    if limit is None or (mem_total and limit > mem_total):
        limit = mem_total or None
    cpu = rx_rate = tx_rate = None
    if prev is not None:
        cpu_ns_rate = _rate(cur.cpu_ns, prev.cpu_ns, cur.at - prev.at)
        if cpu_ns_rate is not None:
            cpu = cpu_ns_rate / 1e9 * 100.0
        # An idle container's network figures may be carried over from an earlier tick: the
        # rate spans from the reading before to this one, however many ticks that was.
        io_elapsed = cur.io_time - prev.io_time
        if io_elapsed > 0:
            rx_rate = _rate(cur.net_rx, prev.net_rx, io_elapsed)
            tx_rate = _rate(cur.net_tx, prev.net_tx, io_elapsed)
        else:  # the same reading twice: nothing moved that it could show
            rx_rate = 0.0 if cur.net_rx is not None else None
            tx_rate = 0.0 if cur.net_tx is not None else None
    return ContainerStats(
        cpu_percent=cpu,
        mem_bytes=mem,
        mem_limit_bytes=limit,
        net_rx_bytes=cur.net_rx,
        net_tx_bytes=cur.net_tx,
        net_rx_rate=rx_rate,
        net_tx_rate=tx_rate,
        blk_read_bytes=cur.blk_read,
        blk_write_bytes=cur.blk_write,
        source=source,
    )


def raw_from_api(stats: Mapping[str, Any], at: float) -> RawSample:
    """A `RawSample` from one stats-API answer (the fallback for remote engines)."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    mem = stats.get("memory_stats") or {}
    mstat = mem.get("stats") or {}
    # cgroup v1 engines report total_inactive_file, v2 engines inactive_file (as the CLI reads).
    inactive = mstat.get("total_inactive_file", mstat.get("inactive_file", 0)) or 0
    networks = stats.get("networks")
    rx = tx = None
    if networks:
        rx = sum(n.get("rx_bytes", 0) for n in networks.values())
        tx = sum(n.get("tx_bytes", 0) for n in networks.values())
    blk_read = blk_write = None
    entries = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive")
    if entries:
        blk_read = sum(e.get("value", 0) for e in entries if e.get("op", "").lower() == "read")
        blk_write = sum(e.get("value", 0) for e in entries if e.get("op", "").lower() == "write")
    return RawSample(
        at=at,
        cpu_ns=cpu,
        mem_usage=mem.get("usage"),
        mem_inactive_file=inactive,
        mem_limit=mem.get("limit"),
        net_rx=rx,
        net_tx=tx,
        blk_read=blk_read,
        blk_write=blk_write,
    )
