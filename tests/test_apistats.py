"""Figures from the stats API (an engine whose cgroup files are out of reach): one stream per
running container, read aside, on the real engine.

The engine here is local, so the monitor is given a cgroup reader that finds no cgroup
mounts: it then reads every container as it reads a remote engine's.
"""

from __future__ import annotations

import threading
from pathlib import Path

import tui.fleet.snapshot as snapshot_mod
from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.metrics.apistats import ApiStats
from tui.fleet.metrics.cgroups import CgroupReader
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor


def _no_cgroups(tmp_path: Path) -> CgroupReader:
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    return CgroupReader(mounts_file=str(mounts))


def _stats_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "aitop-api-stats")


def _followed(stats: ApiStats) -> frozenset[str]:
    """The containers whose stats stream is open or opening."""
    with stats._lock:
        return frozenset(stats._follows)


def _figures(snap: FleetSnapshot, ids: set[str]) -> dict:
    return {c.info.id: c.stats for c in snap.containers if c.info.id in ids}


def test_every_container_gets_figures_each_tick_through_one_stream_each(
    engine, run_container, tmp_path
):
    # More containers than the monitor has engine workers (8): a one-shot call each, which
    # Docker answers at its collector's next round, would take seconds a sweep.
    busy = run_container("while :; do :; done")
    idle = {run_container("sleep 600") for _ in range(11)}
    ours = {busy, *idle}
    threads_before = _stats_threads()
    mon = FleetMonitor(Engine(engine.url), cgroups=_no_cgroups(tmp_path))
    assert mon.connect().stats_source == "api"
    mon.resync()
    try:

        def all_figures():
            mon.sample()
            figures = _figures(mon.snapshot(), ours)
            if len(figures) == len(ours) and all(
                s.cpu_percent is not None for s in figures.values()
            ):
                return figures
            return None

        # A tick every half second, as the monitor's own loop would take them.
        figures = wait_for(all_figures, timeout=30, step=0.5)
        assert all(s.source == "api" for s in figures.values())
        assert figures[busy].cpu_percent >= 25.0
        assert all(figures[c].cpu_percent < 5.0 for c in idle)
        assert all(s.mem_bytes is not None and s.mem_limit_bytes for s in figures.values())
        assert ours <= _followed(mon._api_stats)

        # A container that stops leaves: its stream closes.
        stopped = next(iter(idle))
        engine.stop_container(stopped, timeout=1)
        wait_for(lambda: mon.apply_event({"Type": "container", "Action": "die", "id": stopped}))

        def closed():
            mon.sample()
            return stopped not in _followed(mon._api_stats)

        wait_for(closed, timeout=10, step=0.2)
    finally:
        mon.stop()
    # Stopping the monitor ends every stream and its thread.
    wait_for(lambda: _stats_threads() <= threads_before, timeout=10)


def test_snapshot_json_of_a_stats_api_engine_has_cpu_figures(
    engine, run_container, tmp_path, monkeypatch
):
    busy = run_container("while :; do :; done")
    reader = _no_cgroups(tmp_path)
    real = FleetMonitor

    def monitor(*args, **kw):
        return real(*args, cgroups=reader, **kw)

    monkeypatch.setattr(snapshot_mod, "FleetMonitor", monitor)
    snap = snapshot_mod.collect(Engine(engine.url))
    assert snap.engine.stats_source == "api"
    stats = _figures(snap, {busy})[busy]
    assert stats.source == "api" and stats.cpu_percent is not None
    assert stats.cpu_percent >= 25.0
