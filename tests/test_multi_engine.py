"""Several engines in one aitop: two real dockerds (the main one and `second_engine`, on its own
socket and bridge) watched at once, each by its own monitor.

Both fleets are listed under their host rows with a HOST column; the same compose service on
both engines gives two group rows; an action on the second engine's container reaches that
engine only; when the second engine stops, its host row says it is unreachable while the first
engine's fleet keeps updating, and it comes back by itself once the engine does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import TEST_IMAGE, TEST_LABEL
from tui.app import AitopApp
from tui.fleet.engine import Engine
from tui.fleet.monitor import FleetMonitor
from widgets.confirm_screen import ConfirmScreen
from widgets.container_table import HOST_PREFIX, ContainerTable, group_key, host_label
from widgets.status_line import StatusLine

pytestmark = pytest.mark.engine

COMPOSE = {"com.docker.compose.project": "", "com.docker.compose.service": "web"}


def docker(url: str, *args: str) -> str:
    out = subprocess.run(
        ["docker", "-H", url, *args], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


def running(url: str, cid: str) -> bool:
    return docker(url, "inspect", "--format", "{{.State.Running}}", cid) == "true"


def paused(url: str, cid: str) -> bool:
    return docker(url, "inspect", "--format", "{{.State.Paused}}", cid) == "true"


@pytest.fixture
def fleet_pair(engine, second_engine, image, session_tag):
    """A model container and a compose replica on each engine, all named after one prefix."""
    prefix = f"aitop-multi-{uuid.uuid4().hex[:6]}"
    labels = {**COMPOSE, "com.docker.compose.project": prefix, TEST_LABEL: session_tag}
    made: list[tuple[str, str]] = []
    for n, url in enumerate((engine.url, second_engine.url), start=1):
        eng = Engine(url, timeout=30)
        model = eng.run(
            TEST_IMAGE,
            ["sleep", "3600"],
            name=f"{prefix}-model-{n}",
            labels={TEST_LABEL: session_tag, "aitop.model": f"org/model-{n}"},
        )
        web = eng.run(
            TEST_IMAGE,
            ["sleep", "3600"],
            name=f"{prefix}-web-{n}",
            labels={**labels, "com.docker.compose.container-number": "1"},
        )
        made += [(url, model), (url, web)]
        eng.close()
    yield prefix, made
    for url, cid in made:
        subprocess.run(["docker", "-H", url, "rm", "-f", cid], capture_output=True, check=False)


def two_engine_app(first: str, second: str) -> AitopApp:
    monitors = [FleetMonitor(Engine(url), interval=0.5) for url in (first, second)]
    return AitopApp(monitors[0].engine, monitors=monitors, show_all=True)


async def until(pilot, predicate, what: str, timeout: float = 40.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    status = pilot.app.query_one(StatusLine).render()
    pytest.fail(f"{what}: not reached within {timeout}s (status: {status})")


async def test_both_fleets_are_listed_by_host_and_an_action_reaches_the_second_engine(
    engine, second_engine, fleet_pair
):
    prefix, made = fleet_pair
    (_, model_1), (_, web_1), (_, model_2), (_, web_2) = made
    first, second = engine.url, second_engine.url
    app = two_engine_app(first, second)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.query_one(ContainerTable)
        table.filter_text = prefix
        await until(
            pilot,
            lambda: {model_1, web_1, model_2, web_2} <= set(table.row_keys),
            "both engines' containers listed",
        )
        assert table.column_keys[:2] == ("name", "host")
        keys = table.row_keys
        # Grouped by host first: each host row, then that engine's rows only.
        at_1, at_2 = keys.index(HOST_PREFIX + first), keys.index(HOST_PREFIX + second)
        assert at_1 < keys.index(model_1) < at_2 < keys.index(model_2)
        # The same compose service on both engines: one group row each, keyed by host.
        group = (prefix, "web")
        assert group_key(group, first) in keys and group_key(group, second) in keys
        assert table.host_of(web_2) == second and table.host_of(web_1) == first
        host_cells = table.get_row(model_2)
        assert host_cells[1].plain == host_label(second)
        assert "running" in table.get_row(HOST_PREFIX + second)[4].plain

        # An action on a container row goes to the engine that owns it.
        table.move_cursor(row=keys.index(model_2))
        await pilot.pause()
        await pilot.press("p")
        await until(pilot, lambda: paused(second, model_2), "paused on the second engine")
        assert not paused(first, model_1)

        # A group row means that service on its own host: the confirmation names the second
        # engine's replica only, that engine stops it, and the first engine's is left alone.
        table.move_cursor(row=table.row_keys.index(group_key(group, second)))
        await pilot.pause()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "a confirmation")
        items = app.screen.items  # type: ignore[attr-defined]
        assert len(items) == 1 and web_2[:12] in items[0]
        await pilot.press("y")
        await until(pilot, lambda: not running(second, web_2), "stopped on the second engine")
        assert running(first, web_1)


async def test_a_second_engine_that_stops_is_marked_unreachable_and_recovers(
    engine, second_engine, fleet_pair, run_container
):
    prefix, made = fleet_pair
    (_, model_1), _, (_, model_2), _ = made
    first, second = engine.url, second_engine.url
    app = two_engine_app(first, second)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.query_one(ContainerTable)
        status = app.query_one(StatusLine)
        table.filter_text = prefix
        await until(pilot, lambda: model_2 in table.row_keys, "the second engine's fleet")

        def host_state(url: str) -> str:
            return table.get_row(HOST_PREFIX + url)[4].plain

        await asyncio.to_thread(second_engine.stop)
        try:
            await until(
                pilot, lambda: host_state(second) == "unreachable", "second engine unreachable"
            )
            assert "unreachable, retrying" in table.get_row(HOST_PREFIX + second)[2].plain
            assert f"{host_label(second)}: unreachable, retrying" in status.alert
            # Its last known fleet stays listed; the first engine keeps updating meanwhile.
            assert model_2 in table.row_keys
            assert "running" in host_state(first)
            late = run_container("sleep 600", name=f"{prefix}-late")
            await until(pilot, lambda: late in table.row_keys, "the first engine still updates")
            assert table.host_of(late) == first
        finally:
            await asyncio.to_thread(second_engine.start)
        await until(pilot, lambda: "running" in host_state(second), "the second engine is back")
        assert app.engine_for(model_2).url == second
        await until(pilot, lambda: not status.alert, "the alert clears")
        assert model_1 in table.row_keys


def test_snapshot_json_lists_every_host(engine, second_engine, fleet_pair):
    _, made = fleet_pair
    (_, model_1), _, (_, model_2), _ = made
    env = {**os.environ, "DOCKER_HOST": "", "AITOP_CONFIG": "/nonexistent/aitop.toml"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui",
            "--host",
            engine.url,
            "--host",
            second_engine.url,
            "--host",
            "unix:///nonexistent/docker.sock",
            "snapshot",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)["hosts"]
    assert [h["url"] for h in hosts] == [
        engine.url,
        second_engine.url,
        "unix:///nonexistent/docker.sock",
    ]
    ids = [{c["id"] for c in h["containers"]} for h in hosts]
    assert model_1 in ids[0] and model_1 not in ids[1]
    assert model_2 in ids[1] and model_2 not in ids[0]
    assert "error" not in hosts[0] and "socket does not exist" in hosts[2]["error"]
