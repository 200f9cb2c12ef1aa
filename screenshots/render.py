"""Render aitop's screenshots: `python screenshots/render.py` (add `--recorded-only` to skip
the ones that need a Docker engine).

Every picture is the app rendering itself into SVG (`App.save_screenshot`):

- from the recorded demo fleet: tests/fixtures/demo_fleet.json was recorded from a real engine
  running `aitop demo up` (re-record with `python -m tests.record_fleet
  tests/fixtures/demo_fleet.json`), with GPU readings replayed from the recorded NVML fixtures
  (tests/fixtures/nvml): the fleet table, the GPU pane, the help screen, the app at 80x24, the
  serving view, and three engines at once (the recorded fleet replayed as a local, an
  `ssh://` and an unreachable engine);
- from a live demo fleet on the local engine (started here when it is not up, and removed
  again afterwards): the log pane with a search, a scale-down confirmation, a container up
  close (after a minute of its history) and the events view. Only the demo
  fleet's containers are shown, whatever else runs on the engine; the confirmation is
  answered "no", so nothing changes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from textual.pilot import Pilot  # noqa: E402

from tests.fleet_fixtures import (  # noqa: E402
    ReplayMonitor,
    demo_fleet,
    demo_fleet_with_gpus,
    replay_app,
    several_engines,
)
from tui.app import AitopApp  # noqa: E402
from tui.config import Config  # noqa: E402
from tui.fleet.demo import DEMO_LABEL, demo_down, demo_up  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402
from tui.fleet.events import FleetEvent  # noqa: E402
from tui.fleet.models import FleetSnapshot  # noqa: E402
from tui.fleet.monitor import FleetMonitor  # noqa: E402
from tui.screens.confirm import ConfirmScreen  # noqa: E402
from widgets.container_table import GROUP_PREFIX, ContainerTable  # noqa: E402
from widgets.log_pane import LogPane  # noqa: E402

Step = Callable[[AitopApp, Pilot[Any]], Any]


def save(app: AitopApp, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
    print(f"wrote screenshots/{name}.svg")


async def select(app: AitopApp, pilot: Pilot[Any], key: str) -> None:
    """Put the table's cursor on the row `key` (a container id or a group row's key)."""
    table = app.query_one(ContainerTable)
    table.move_cursor(row=table.row_keys.index(key))
    await pilot.pause()


def row_of(snapshot: FleetSnapshot, name: str) -> str:
    return next(c.info.id for c in snapshot.containers if c.info.name == name)


async def until(pilot: Pilot[Any], what: str, check: Callable[[], bool], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"render.py: gave up waiting for {what} after {limit:.0f}s")
        await pilot.pause(0.2)


# --- from recorded data ----------------------------------------------------------------------


async def recorded(
    name: str,
    snapshot: FleetSnapshot,
    size: tuple[int, int],
    keys: tuple[str, ...] = (),
    select_name: str = "",
) -> None:
    app = replay_app(snapshot)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if select_name:
            await select(app, pilot, row_of(snapshot, select_name))
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        save(app, name)


async def render_several_engines() -> None:
    monitors = [ReplayMonitor(fleet) for fleet in several_engines()]
    app = AitopApp(monitors, config=Config())
    async with app.run_test(size=(200, 25)) as pilot:
        await pilot.pause()
        save(app, "several-engines")


async def render_recorded() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gpus = demo_fleet_with_gpus(Path(tmp))
    await recorded("fleet-table", gpus, (200, 40))
    # The GPU pane, with the cursor on the tensor-parallel replica that holds both GPUs (its
    # GPU columns come right after CPU and memory).
    await recorded("gpu-pane", gpus, (150, 23), select_name="aitop-demo-llama-1")
    await recorded("all-containers-filtered", demo_fleet(), (200, 30), ("a", "slash", *"llama"))
    await recorded("help", gpus, (120, 50), ("question_mark",))
    # The first screen at 80x24: name, state, CPU, memory and GPU memory fit.
    await recorded("80x24", gpus, (80, 24))
    # The serving view of the busiest vLLM replica.
    await recorded("serving-view", gpus, (120, 40), ("v",), select_name="aitop-demo-llama-1")
    await render_several_engines()


# --- from a live demo fleet ------------------------------------------------------------------


class DemoOnlyMonitor:
    """The real monitor, passing on only the demo fleet's containers (a shared engine may run
    others: they stay out of the picture)."""

    def __init__(self, monitor: FleetMonitor) -> None:
        self._monitor = monitor
        self.on_snapshot: Callable[[FleetSnapshot], None] | None = None

    @property
    def engine(self) -> Engine:
        return self._monitor.engine

    @staticmethod
    def _only_demo(snapshot: FleetSnapshot) -> FleetSnapshot:
        kept = tuple(c for c in snapshot.containers if DEMO_LABEL in c.info.labels)
        return dataclasses.replace(snapshot, containers=kept)

    def _forward(self, snapshot: FleetSnapshot) -> None:
        if self.on_snapshot is not None:
            self.on_snapshot(self._only_demo(snapshot))

    def start(self) -> None:
        self._monitor.on_snapshot = self._forward
        self._monitor.start()

    def snapshot(self) -> FleetSnapshot:
        return self._only_demo(self._monitor.snapshot())

    def release_details(self) -> None:
        self._monitor.release_details()

    def recent_events(self) -> tuple[FleetEvent, ...]:
        return tuple(e for e in self._monitor.recent_events() if e.container_id in self._demo_ids())

    def _demo_ids(self) -> set[str]:
        return {c.info.id for c in self.snapshot().containers}

    def stop(self) -> None:
        self._monitor.stop()


async def live(engine: Engine, name: str, size: tuple[int, int], steps: Step) -> None:
    app = AitopApp([DemoOnlyMonitor(FleetMonitor(engine))], config=Config())
    async with app.run_test(size=size) as pilot:

        def sampled() -> bool:
            snap = app.last_snapshot
            return snap is not None and any(
                c.stats.cpu_percent is not None for c in snap.containers
            )

        await until(pilot, "the demo fleet's first figures", sampled)
        await steps(app, pilot)
        save(app, name)
        await pilot.press("escape")
        await pilot.pause()


async def log_search(app: AitopApp, pilot: Pilot[Any]) -> None:
    snapshot = app.last_snapshot
    assert snapshot is not None
    await select(app, pilot, row_of(snapshot, "aitop-demo-llama-1"))
    await pilot.press("l")
    pane = app.query_one(LogPane)
    # The server logs a request every 1 to 3 seconds after loading: wait for a few.
    await until(pilot, "request lines in the log pane", lambda: pane.line_count >= 18)
    await pilot.press("slash", *"chat/completions", "enter")
    await until(pilot, "search matches", lambda: pane.match_count >= 3)
    await pilot.pause(0.3)


async def scale_down(app: AitopApp, pilot: Pilot[Any]) -> None:
    table = app.query_one(ContainerTable)
    group = next(k for k in table.row_keys if k.startswith(f"{GROUP_PREFIX}aitop-demo/llama"))
    await select(app, pilot, group)
    await pilot.press("minus")
    await until(pilot, "the confirmation", lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.pause(0.3)


async def up_close(app: AitopApp, pilot: Pilot[Any]) -> None:
    snapshot = app.last_snapshot
    assert snapshot is not None
    cid = row_of(snapshot, "aitop-demo-llama-1")
    # A minute of history first: the view opens on the past.
    await until(
        pilot,
        "a minute of history",
        lambda: len(app.container_view.history.series(cid).times) >= 40,
        limit=120,
    )
    await select(app, pilot, cid)
    await pilot.press("enter")
    screen = app.container_view
    await until(pilot, "its processes", lambda: bool(screen.screen and screen.screen.processes))
    await pilot.pause(0.3)


async def events_view(app: AitopApp, pilot: Pilot[Any]) -> None:
    await pilot.press("h")
    await until(pilot, "the events", lambda: bool(app.recent_events()))
    await pilot.pause(0.3)


async def render_live() -> None:
    engine = Engine()
    try:
        engine.version()
        running = {
            name.lstrip("/")
            for entry in engine.list_containers((DEMO_LABEL,))
            if entry.get("State") == "running"
            for name in entry.get("Names") or ()
        }
    except EngineError as exc:
        raise SystemExit(f"render.py: {exc} (or use --recorded-only)") from None
    started = not {"aitop-demo-llama-1", "aitop-demo-llama-3"} <= running
    if started:
        print("starting the demo fleet (aitop demo up)")
        demo_up(engine, say=lambda _msg: None)
    try:
        await live(engine, "log-search", (140, 40), log_search)
        await live(engine, "scale-down-confirm", (140, 34), scale_down)
        await live(engine, "container-up-close", (120, 36), up_close)
        await live(engine, "events", (140, 30), events_view)
    finally:
        if started:
            demo_down(engine, say=lambda _msg: None)
            print("removed the demo fleet again")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recorded-only", action="store_true", help="skip the pictures that need an engine"
    )
    args = parser.parse_args()
    await render_recorded()
    if not args.recorded_only:
        await render_live()


if __name__ == "__main__":
    asyncio.run(main())
