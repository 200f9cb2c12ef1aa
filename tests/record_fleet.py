"""Record the live demo fleet (`aitop demo up`) as a fixture for snapshot tests.

python -m tests.record_fleet tests/fixtures/demo_fleet.json [seconds]
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from tui.fleet.demo import DEMO_LABEL
from tui.fleet.engine.client import Engine
from tui.fleet.monitor import FleetMonitor
from tui.fleet.recording import dump


def main() -> None:
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    monitor = FleetMonitor(Engine())
    monitor.connect()
    monitor.resync()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        monitor.sample()
        time.sleep(1.0)  # the passing of time: one sample a second, as aitop takes them
    monitor.resync()
    monitor.sample()
    with open(path, "w", encoding="utf-8") as fh:
        snap = monitor.snapshot()
        # Only the demo fleet: whatever else runs on this engine is not part of the picture.
        demo = tuple(c for c in snap.containers if DEMO_LABEL in c.info.labels)
        json.dump(dump(dataclasses.replace(snap, containers=demo)), fh, indent=1, sort_keys=True)
    monitor.stop()


if __name__ == "__main__":
    main()
