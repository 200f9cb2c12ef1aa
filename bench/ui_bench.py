"""How much CPU the UI spends per refresh of a large fleet (no engine needed).

    .venv/bin/python bench/ui_bench.py [containers] [refreshes] [changing]

A recorded-shape fleet of N containers is replayed into the real app (headless, 200x50);
every refresh changes the CPU figure of `changing` containers (default: all of them, the worst
case; a fleet of mostly idle model servers changes a few). Prints the CPU time per refresh,
the figure the rendering path must keep small.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import sys
import time
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleet_fixtures import ReplayMonitor
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.models import (
    ContainerInfo,
    ContainerSnapshot,
    ContainerStats,
    EngineStatus,
    FleetSnapshot,
    HostSnapshot,
)

BASE = 1_764_000_000.0


@functools.cache
def infos(n: int) -> tuple[ContainerInfo, ...]:
    """The fleet's containers: made once, as the monitor keeps them while nothing changes."""
    return tuple(
        ContainerInfo(
            id=f"{i:064x}",
            name=f"bench-{i:04d}",
            image="vllm/vllm-openai:v0.6.3",
            model=f"org/model-{i % 7}",
            is_model=True,
            state="running",
            started_at=BASE - 3600 - i,
            labels=MappingProxyType({"aitop.model": f"org/model-{i % 7}"}),
            compose_project="bench" if i % 3 else "",
            compose_service=f"svc{i % 5}" if i % 3 else "",
            pid=1000 + i,
        )
        for i in range(n)
    )


def fleet(n: int, tick: int, changing: int | None = None) -> FleetSnapshot:
    now = BASE + tick
    containers = tuple(
        ContainerSnapshot(
            info,
            ContainerStats(
                cpu_percent=(i * 7 + step * 13) % 100 / 3,
                mem_bytes=(100 + i) << 20,
                mem_limit_bytes=8 << 30,
                net_rx_rate=float((i + step) % 50),
                net_tx_rate=0.0,
                source="cgroup",
            ),
        )
        for i, info in enumerate(infos(n))
        for step in [tick if changing is None or i < changing else 0]
    )
    host = HostSnapshot(
        cpu_percent=10,
        per_cpu_percent=(10.0, 10.0),
        mem_used_bytes=1 << 30,
        mem_total_bytes=16 << 30,
        cpu_history=(10.0,) * 60,
    )
    engine = EngineStatus(
        url="unix:///var/run/docker.sock", reachable=True, version="x", stats_source="cgroup"
    )
    return FleetSnapshot(
        engine=engine, host=host, containers=containers, taken_at=now, sampled=True
    )


async def main(n: int, refreshes: int, changing: int | None) -> None:
    monitor = ReplayMonitor(fleet(n, 0))
    app = AitopApp([monitor], config=Config())
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.5)
        start_cpu, start = time.process_time(), time.perf_counter()
        for tick in range(1, refreshes + 1):
            monitor.publish(dataclasses.replace(fleet(n, tick, changing)))
            await pilot.pause(0.05)
        cpu = time.process_time() - start_cpu
        wall = time.perf_counter() - start
    print(
        f"{n} containers, {n if changing is None else changing} changing: "
        f"{cpu / refreshes * 1000:.1f} ms CPU per refresh "
        f"({wall / refreshes * 1000:.1f} ms wall)"
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 50,
            int(sys.argv[2]) if len(sys.argv) > 2 else 20,
            int(sys.argv[3]) if len(sys.argv) > 3 else None,
        )
    )
