"""Render aitop's screenshots from the recorded demo fleet: `python screenshots/render.py`.

The fleet in tests/fixtures/demo_fleet.json was recorded from a real engine running
`aitop demo up` (re-record with `python -m tests.record_fleet tests/fixtures/demo_fleet.json`);
the GPU readings come from recorded NVML fixtures. The app renders itself into SVG.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.fleet_fixtures import ReplayMonitor, demo_fleet, demo_fleet_with_gpus  # noqa: E402
from tui.app import AitopApp  # noqa: E402
from tui.fleet.models import FleetSnapshot  # noqa: E402


async def shoot(
    name: str, snapshot: FleetSnapshot, size: tuple[int, int], keys: tuple[str, ...] = ()
) -> None:
    app = AitopApp(None, monitor=ReplayMonitor(snapshot))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
        print(f"wrote screenshots/{name}.svg")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gpus = demo_fleet_with_gpus(Path(tmp))
    await shoot("fleet-table", gpus, (200, 40))
    await shoot("all-containers-filtered", demo_fleet(), (200, 30), ("a", "slash", *"llama"))
    await shoot("80x24", gpus, (80, 24))


if __name__ == "__main__":
    asyncio.run(main())
