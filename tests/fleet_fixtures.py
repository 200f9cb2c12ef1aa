"""Replaying recorded fleets into the app: a monitor stand-in that publishes fixed snapshots."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.app import AitopApp
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.events import FleetEvent
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.gpu.types import container_gpu_usage
from tui.fleet.models import EngineStatus, FleetSnapshot
from tui.fleet.recording import load
from tui.watch import monitors_for

FIXTURES = Path(__file__).parent / "fixtures"


def demo_fleet() -> FleetSnapshot:
    """The demo fleet as recorded from a real engine by tests/record_fleet.py."""
    return load(json.loads((FIXTURES / "demo_fleet.json").read_text()))


def unreachable(snapshot: FleetSnapshot) -> FleetSnapshot:
    """The same fleet, with the engine gone."""
    engine = dataclasses.replace(
        snapshot.engine,
        reachable=False,
        error=f"the Docker engine at {snapshot.engine.url} closed the connection: "
        "it may be restarting",
        retry_in=4.0,
    )
    return dataclasses.replace(snapshot, engine=engine)


def several_engines() -> tuple[FleetSnapshot, FleetSnapshot, FleetSnapshot]:
    """Three engines: the recorded demo fleet on the local socket, part of it again (other ids)
    on `ssh://me@gpu-box` (stats from the API), and `tcp://10.0.0.7:2376`, which does not
    answer and never did (no containers)."""
    local = demo_fleet()
    keep = ("aitop-demo-llama-1", "aitop-demo-llama-2", "aitop-demo-burner")
    remote = dataclasses.replace(
        local,
        engine=dataclasses.replace(local.engine, url="ssh://me@gpu-box", stats_source="api"),
        containers=tuple(
            dataclasses.replace(c, info=dataclasses.replace(c.info, id="f" + c.info.id[1:]))
            for c in local.containers
            if c.info.name in keep
        ),
    )
    down = unreachable(
        dataclasses.replace(
            local, engine=dataclasses.replace(local.engine, url="tcp://10.0.0.7:2376")
        )
    )
    down = dataclasses.replace(
        down,
        containers=(),
        engine=dataclasses.replace(
            down.engine,
            retry_in=8.0,
            error="the Docker engine at tcp://10.0.0.7:2376 refused the connection",
        ),
    )
    return local, remote, down


def demo_fleet_with_gpus(tmp_path: Path) -> FleetSnapshot:
    """The demo fleet on a two-GPU machine (an H100 and an A100, recorded NVML readings):
    llama-1 runs tensor-parallel on both GPUs, mistral-1 on GPU 1, a host process holds 1G of
    GPU 0, and llama-2 sits idle on its reserved GPU 0. GPU 1 is above 90 % memory."""
    from tests.fixtures.nvml.fake_nvml import CID_A, CID_B, PIDS, FakeNvml, fake_proc

    fleet = demo_fleet()
    by_name = {c.info.name: c for c in fleet.containers}
    llama1, llama2 = by_name["aitop-demo-llama-1"].info, by_name["aitop-demo-llama-2"].info
    mistral1 = by_name["aitop-demo-mistral-1"].info
    sampler = GpuSampler(
        FakeNvml.from_fixture("h100_a100.json", PIDS), proc_root=fake_proc(tmp_path)
    )
    report = sampler.sample()
    ids = {CID_A: llama1.id, CID_B: mistral1.id}
    # Timings vary run to run; pin them so the picture is stable.
    report = dataclasses.replace(
        report,
        nvml_seconds=0.0021,
        taken_at=fleet.taken_at,
        devices=tuple(dataclasses.replace(d, nvml_seconds=0.001) for d in report.devices),
        processes=tuple(
            dataclasses.replace(p, container_id=ids.get(p.container_id or "", p.container_id))
            for p in report.processes
        ),
    )
    assigned = {llama1.id: ("0", "1"), mistral1.id: ("1",), llama2.id: ("0",)}
    usage = container_gpu_usage(report)
    containers = tuple(
        dataclasses.replace(
            c,
            info=dataclasses.replace(c.info, gpus_assigned=assigned.get(c.info.id, ())),
            gpus=usage.get(c.info.id, ()),
        )
        for c in fleet.containers
    )
    return dataclasses.replace(fleet, containers=containers, gpu=report)


class ReplayMonitor:
    """Stands in for FleetMonitor (a `FleetSource`): publishes the given snapshots when started.

    `engine` is where actions and logs would go; None (the default) makes a recorded fleet
    that can be looked at but not steered.
    """

    def __init__(self, *snapshots: FleetSnapshot, engine: Engine | None = None) -> None:
        self.snapshots = list(snapshots)
        self.on_snapshot: Callable[[FleetSnapshot], None] | None = None
        self.stopped = False
        self._engine = engine

    @property
    def engine(self) -> Engine | None:
        return self._engine

    def start(self) -> None:
        for snap in self.snapshots:
            self.publish(snap)

    def publish(self, snap: FleetSnapshot) -> None:
        assert self.on_snapshot is not None
        self.on_snapshot(snap)

    def snapshot(self) -> FleetSnapshot:
        return self.snapshots[-1] if self.snapshots else FleetSnapshot(engine=NO_ENGINE)

    def release_details(self) -> None:
        """Nothing is held back in a replay."""

    def recent_events(self) -> tuple[FleetEvent, ...]:
        """A replay has no engine events."""
        return ()

    def stop(self) -> None:
        self.stopped = True


NO_ENGINE = EngineStatus(url="unix:///var/run/docker.sock")

UNCONNECTED = "unix:///nonexistent/aitop-test.sock"
"""The URL of an engine that is never connected to (an app that must believe it has one)."""


def replay_app(
    *snapshots: FleetSnapshot,
    config: Config | None = None,
    engine: Engine | None = None,
    **kwargs: Any,
) -> AitopApp:
    """The app on one recorded fleet (the snapshots published in turn), with `config`."""
    monitor = ReplayMonitor(*snapshots, engine=engine)
    return AitopApp([monitor], config=config or Config(), **kwargs)


def live_app(*engines: Engine, config: Config | None = None, **kwargs: Any) -> AitopApp:
    """The app watching real engines, as the command line builds it from `config`."""
    settings = config or Config()
    return AitopApp(monitors_for(engines, settings), config=settings, **kwargs)
