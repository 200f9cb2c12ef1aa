"""Clones group under their source as compose replicas do under their service (issue 16,
item 15): `+` on a plain container made a clone that stood as a separate row."""

from __future__ import annotations

from tests.fleet_fixtures import live_app
from tests.helpers import pilot_wait_for, scale
from tui.fleet.engine.client import Engine
from tui.fleet.inventory import with_clone_groups
from tui.fleet.models import ContainerInfo
from tui.fleet.monitor import FleetMonitor
from widgets.container_table import ContainerTable


def info(cid: str, name: str, *, clone_of: str = "", project: str = "") -> ContainerInfo:
    return ContainerInfo(
        cid, name, "img", "m", True, "running", clone_of=clone_of, compose_project=project
    )


def test_an_origin_and_its_clones_share_a_group_and_others_keep_theirs():
    grouped = with_clone_groups(
        [
            info("o", "web"),
            info("c1", "web-clone-1", clone_of="o"),
            info("c2", "web-clone-2", clone_of="o"),
            info("x", "lone"),
            info("lost", "api-clone-3", clone_of="gone"),  # its origin was removed
        ]
    )
    groups = {i.id: i.group for i in grouped}
    assert groups["o"] == groups["c1"] == groups["c2"] == ("clones", "web")
    assert groups["x"] == ("", "")
    assert groups["lost"] == ("clones", "api")


def test_a_scaled_plain_container_and_its_clone_are_one_group_that_scales(engine, run_container):
    origin = run_container("sleep 600", labels={"aitop.model": "cloned"}, stop_signal="SIGKILL")
    result = scale(engine, container_id=origin, step=1)
    assert result.ok, result.summary
    (clone,) = result.created
    try:
        monitor = FleetMonitor(Engine(engine.url))
        try:
            monitor.connect()
            monitor.resync()
            by_id = {c.info.id: c.info for c in monitor.snapshot().containers}
        finally:
            monitor.stop()
        name = by_id[origin].name
        assert by_id[origin].group == by_id[clone.id].group == ("clones", name)
        # The group row scales the group: one more makes three.
        again = scale(engine, group=("clones", name), step=1)
        assert again.ok, again.summary
        assert len(again.created) == 1
        for made in again.created:
            engine.remove(made.id)
    finally:
        engine.remove(clone.id)


async def test_the_table_shows_clones_under_their_source(engine, run_container):
    origin = run_container("sleep 600", labels={"aitop.model": "cloned"}, stop_signal="SIGKILL")
    result = scale(engine, container_id=origin, step=1)
    assert result.ok, result.summary
    (clone,) = result.created
    try:
        name = engine.inspect(origin)["Name"].lstrip("/")
        app = live_app(Engine(engine.url))
        async with app.run_test(size=(200, 40)) as pilot:
            table = app.query_one(ContainerTable)

            def header() -> list[str] | None:
                for key in table.row_keys:
                    cells = [str(c) for c in table.get_row(key)]
                    if any(f"clones/{name}" in c for c in cells):
                        return cells
                return None

            cells = await pilot_wait_for(pilot, header, timeout=20, what="the clone group row")
            assert any("2/2" in c for c in cells)
            keys = table.row_keys
            assert keys.index(clone.id) == keys.index(origin) + 1  # under one header
    finally:
        engine.remove(clone.id)
