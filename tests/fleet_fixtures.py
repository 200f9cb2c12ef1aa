"""Replaying recorded fleets into the app: a monitor stand-in that publishes fixed snapshots."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from tui.fleet.models import EngineStatus, FleetSnapshot
from tui.fleet.recording import load

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


class ReplayMonitor:
    """Stands in for FleetMonitor: publishes the given snapshots when started."""

    def __init__(self, *snapshots: FleetSnapshot) -> None:
        self.snapshots = list(snapshots)
        self.on_snapshot: Callable[[FleetSnapshot], None] | None = None
        self.stopped = False

    def start(self) -> None:
        for snap in self.snapshots:
            self.publish(snap)

    def publish(self, snap: FleetSnapshot) -> None:
        assert self.on_snapshot is not None
        self.on_snapshot(snap)

    def stop(self) -> None:
        self.stopped = True


NO_ENGINE = EngineStatus(url="unix:///var/run/docker.sock")
