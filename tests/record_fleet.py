"""Record the live demo fleet (`aitop demo up`) as a fixture for snapshot tests, and as the
fleet `aitop demo replay` shows (package data, with the tests' two recorded GPUs added).

python -m tests.record_fleet tests/fixtures/demo_fleet.json [seconds] [replay.json]

The replay file (default tui/fleet/demo_fleet.json) is written when the fixture is
tests/fixtures/demo_fleet.json, the one the screenshots use. Its serving readings and their history
come from the stand-in servers' pages, scraped once a second as aitop does.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from tui.fleet.demo import DEMO_LABEL, RECORDING
from tui.fleet.engine.client import Engine
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from tui.fleet.recording import dump

REPLAY = Path(__file__).resolve().parent.parent / "tui" / "fleet" / RECORDING


def record(seconds: float) -> FleetSnapshot:
    """The demo fleet on the local engine after `seconds` of sampling and scraping."""
    monitor = FleetMonitor(Engine())
    try:
        monitor.connect()
        monitor.resync()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            monitor.sample()
            monitor.poll_serving()
            time.sleep(1.0)  # the passing of time: one sample a second, as aitop takes them
        monitor.resync()
        monitor.sample()
        monitor.read_serving_logs()
        snap = monitor.snapshot()
    finally:
        monitor.stop()
    # Only the demo fleet: whatever else runs on this engine is not part of the picture.
    demo = tuple(c for c in snap.containers if DEMO_LABEL in c.info.labels)
    return dataclasses.replace(snap, containers=demo)


def write(path: Path, snapshot: FleetSnapshot) -> None:
    """`snapshot` as the recording format, stable across runs (sorted keys)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(dump(snapshot), fh, indent=1, sort_keys=True)
        fh.write("\n")


def main() -> None:
    path = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    replay = Path(sys.argv[3]) if len(sys.argv) > 3 else REPLAY
    write(path, record(seconds))
    from tests.fleet_fixtures import FIXTURES, demo_fleet_with_gpus

    if path.resolve() != (FIXTURES / "demo_fleet.json").resolve():
        return  # the replay is made from the fixture the screenshots use, not another file
    # The GPUs the screenshots show, from the tests' recorded NVML readings, on this recording.
    with tempfile.TemporaryDirectory() as tmp:
        write(replay, demo_fleet_with_gpus(Path(tmp)))


if __name__ == "__main__":
    main()
