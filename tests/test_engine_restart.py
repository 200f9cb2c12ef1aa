"""An engine that restarts while aitop runs: the screen says so, aitop retries with backoff and
recovers by itself with a full resync once the engine is back."""

from __future__ import annotations

import subprocess

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_IMAGE, pilot_wait_for
from tui.config import Config, RefreshConfig
from tui.fleet.engine.client import Engine
from widgets.container_table import ContainerTable
from widgets.status_line import StatusLine


def docker(url: str, *args: str) -> str:
    out = subprocess.run(
        ["docker", "-H", url, *args], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


async def test_engine_restart_is_shown_and_recovered(second_engine):
    url = second_engine.url
    before = docker(url, "run", "-d", "--label", "aitop.model=before", TEST_IMAGE, "sleep", "600")
    app = live_app(Engine(url), config=Config(refresh=RefreshConfig(fleet=0.5)))
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(ContainerTable)
        status = app.query_one(StatusLine)

        async def until(predicate) -> None:
            await pilot_wait_for(
                pilot, predicate, timeout=30, step=0.1, what=lambda: f"status {status.render()}"
            )

        await until(lambda: before in table.row_keys)
        second_engine.stop()
        await until(lambda: "engine unreachable" in str(status.render()))
        assert status.has_class("-unreachable")
        second_engine.start()
        after = docker(url, "run", "-d", "--label", "aitop.model=after", TEST_IMAGE, "sleep", "600")
        # Reconnected and resynchronised: the new container is there, the old one exited.
        await until(lambda: after in table.row_keys and not status.has_class("-unreachable"))
        snap = app.last_snapshot
        assert snap is not None and snap.engine.reachable
        states = {c.info.id: c.info.state for c in snap.containers}
        assert states[before] == "exited"
        assert "engine unreachable" not in str(status.render())
