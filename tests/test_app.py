"""The app driven with keys (Textual's Pilot), on a recorded fleet and on the real engine."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import subprocess
import time
from collections.abc import Callable

import tui.app as app_mod
from tests.fleet_fixtures import (
    UNCONNECTED,
    ReplayMonitor,
    demo_fleet,
    live_app,
    replay_app,
    unreachable,
)
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.models import EngineStatus, FleetSnapshot
from widgets.action_progress import ActionProgress
from widgets.container_table import GROUP_PREFIX, ContainerTable, natural_key
from widgets.status_line import StatusLine


def names(table: ContainerTable, snap) -> list[str]:
    by_id = {c.info.id: c.info.name for c in snap.containers}
    return [by_id.get(k, k) for k in table.row_keys]


async def test_rows_are_grouped_by_compose_service_with_replica_counts():
    snap = demo_fleet()
    app = replay_app(snap)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        rows = names(table, snap)
        assert rows[:4] == [
            "aitop-demo-burner",
            f"{GROUP_PREFIX}aitop-demo/llama",
            "aitop-demo-llama-1",
            "aitop-demo-llama-2",
        ]
        assert "aitop-demo-redis" not in rows  # not a model container
        header = table.get_row(f"{GROUP_PREFIX}aitop-demo/llama")
        assert str(header[3]) == "3/3 running"


async def test_a_toggles_all_containers_and_slash_filters():
    snap = demo_fleet()
    app = replay_app(snap)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("a")
        assert "aitop-demo-redis" in names(table, snap)
        await pilot.press("a")
        assert "aitop-demo-redis" not in names(table, snap)
        await pilot.press("slash", *"mistral")
        await pilot.pause()
        assert names(table, snap) == [
            f"{GROUP_PREFIX}aitop-demo/mistral",
            "aitop-demo-mistral-1",
            "aitop-demo-mistral-2",
        ]
        assert "filter: 'mistral'" in str(app.query_one(StatusLine).render())
        await pilot.press("escape")
        await pilot.pause()
        assert len(names(table, snap)) > 3


async def test_filter_matches_labels_and_images():
    snap = demo_fleet()
    app = replay_app(snap)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *"com.docker.compose.service=llama", "enter")
        await pilot.pause()
        assert [n for n in names(table, snap) if not n.startswith(GROUP_PREFIX)] == [
            "aitop-demo-llama-1",
            "aitop-demo-llama-2",
            "aitop-demo-llama-3",
        ]
        assert table.has_focus


async def test_sorting_by_cpu_puts_the_burner_first_and_i_reverses():
    snap = demo_fleet()
    app = replay_app(snap)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        while table.sort_column != "cpu":
            await pilot.press("greater_than_sign")
        await pilot.pause()
        # A figure sorts biggest first the first time, as in top (issue 16 item 2).
        assert table.sort_reverse is True
        assert names(table, snap)[0] == "aitop-demo-burner"
        assert table.header_label("cpu") == "CPU% ▼"
        await pilot.press("I")
        await pilot.pause()
        assert names(table, snap)[-1] == "aitop-demo-burner"
        assert table.header_label("cpu") == "CPU% ▲"
        # Text sorts A to Z the first time; back on a figure, biggest first again.
        await pilot.press("greater_than_sign")
        await pilot.pause()
        assert (table.sort_column, table.sort_reverse) == ("mem", True)
        table.sort_by("name")
        await pilot.pause()
        assert (table.sort_column, table.sort_reverse) == ("name", False)
        table.sort_by("name")  # the same column again flips it
        await pilot.pause()
        assert table.sort_reverse is True


def numbered_fleet(count: int, *, cpu: Callable[[int], float | None] | None = None):
    """`count` lone model containers nc-1 .. nc-<count> (ids shuffled against their names),
    with CPU figures from `cpu(n)`."""
    base = demo_fleet()
    template = next(c for c in base.containers if c.info.name == "aitop-demo-burner")
    containers = []
    for n in range(1, count + 1):
        info = dataclasses.replace(template.info, id=f"{(n * 7919) % 1000:064d}", name=f"nc-{n}")
        stats = dataclasses.replace(template.stats, cpu_percent=cpu(n) if cpu else 1.0)
        containers.append(dataclasses.replace(template, info=info, stats=stats))
    return dataclasses.replace(base, containers=tuple(containers))


async def test_names_sort_naturally():
    snap = numbered_fleet(19)
    app = replay_app(snap)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert names(table, snap) == [f"nc-{n}" for n in range(1, 20)]
        table.sort_by("name")
        await pilot.pause()
        assert names(table, snap) == [f"nc-{n}" for n in range(19, 0, -1)]


def test_natural_key_orders_numbers_by_value_and_stays_bounded():
    words = ["nc-10", "nc-2", "NC-1", "nc-002b", "nc-2a", "llama-3.1-70b", "llama-3.1-8b", "nc"]
    assert sorted(words, key=natural_key) == [
        "llama-3.1-8b",
        "llama-3.1-70b",
        "nc",
        "NC-1",
        "nc-2",
        "nc-2a",
        "nc-002b",
        "nc-10",
    ]
    # A name of 4,000 digits is compared by length and digits, never converted.
    long = "9" * 4000
    assert natural_key("x" + long) > natural_key("x" + "1" + "0" * 3998)


def first_at(value: float) -> Callable[[int], float | None]:
    """CPU figures: `value` for nc-1, none for the others."""
    return lambda n: value if n == 1 else None


async def test_numeric_columns_keep_their_width_while_figures_cross_a_digit():
    # CPU figures that cross a digit (9.9 -> 10.0 -> 100.0 %): the columns stay where they are.
    steps = [0.5, 9.9, 10.0, 99.7, 100.0, 250.5]
    snaps = [numbered_fleet(3, cpu=first_at(value)) for value in steps]
    monitor = ReplayMonitor(snaps[0])
    app = AitopApp([monitor], config=Config())
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        layouts = set()
        for snap in snaps:
            monitor.publish(snap)
            await pilot.pause()
            layouts.add(table.column_widths)
        assert len(layouts) == 1, layouts
        widths = dict(zip(table.column_keys, next(iter(layouts)), strict=True))
        assert widths["cpu"] == len("1600.0%") and widths["kv"] == len("100.0%")
        assert widths["rx"] == len("1008K/s") and widths["mem"] == len("1008K / 1008K")


async def test_an_empty_model_view_says_how_to_see_containers():
    empty = FleetSnapshot(engine=EngineStatus(url=UNCONNECTED, reachable=True))
    app = replay_app(empty, config=Config(keymap={"toggle-all": "A"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        wanted = "no model containers: `A` shows all, `aitop demo up` starts a demo"
        assert table.empty_text == wanted  # the user's key for "all containers"
        line = table.render_line(1)
        assert line.text.strip() == wanted[: table.size.width - 2].strip()
        muted = table.get_component_rich_style("container-table--muted", partial=True)
        assert any(seg.style is not None and seg.style.color == muted.color for seg in line)
        await pilot.press("A")
        await pilot.pause()
        assert table.empty_text == "no containers: `aitop demo up` starts a demo"


async def test_a_filter_that_matches_nothing_says_how_to_clear_it():
    app = replay_app(demo_fleet())
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert table.empty_text == ""  # rows are shown
        await pilot.press("slash", *"no-such-thing")
        await pilot.pause()
        assert table.row_count == 0
        assert table.empty_text == "nothing matches the filter: Esc clears it"
        assert "nothing matches the filter" in table.render_line(1).text
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count > 0 and table.empty_text == ""


async def test_an_unreachable_engine_with_no_fleet_is_not_called_empty():
    gone = FleetSnapshot(engine=EngineStatus(url=UNCONNECTED, reachable=False, error="refused"))
    app = replay_app(gone)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.query_one(ContainerTable).empty_text == ""


async def test_selection_survives_refreshes_and_a_removed_container_leaves():
    snap = demo_fleet()
    monitor = ReplayMonitor(snap)
    app = AitopApp([monitor], config=Config())
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("down", "down", "down")
        selected = table.selection.container_id
        assert selected is not None
        monitor.publish(snap)
        await pilot.pause()
        assert table.selection.container_id == selected
        gone = snap.__class__(
            engine=snap.engine,
            host=snap.host,
            containers=tuple(c for c in snap.containers if c.info.id != selected),
            taken_at=snap.taken_at,
            sampled=True,
        )
        monitor.publish(gone)
        await pilot.pause()
        assert selected not in table.row_keys
        assert table.cursor_row < len(table.row_keys)


async def test_an_unreachable_engine_is_said_on_the_status_line():
    snap = demo_fleet()
    app = replay_app(snap, unreachable(snap))
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        status = app.query_one(StatusLine)
        assert "engine unreachable" in str(status.render())
        assert status.has_class("-unreachable")


async def test_the_collector_the_cli_turned_off_is_on_again_after_the_first_figures():
    snap = demo_fleet()
    assert snap.sampled
    gc.disable()  # as tui.cli.main leaves it
    try:
        app = replay_app(snap)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert gc.isenabled()
    finally:
        gc.enable()


async def test_the_collector_is_on_again_without_figures_too(monkeypatch):
    monkeypatch.setattr(app_mod, "GC_OFF_LONGEST", 1.5)
    snap = demo_fleet()
    gc.disable()
    try:
        gone = dataclasses.replace(unreachable(snap), sampled=False)
        app = replay_app(gone)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert not gc.isenabled()  # no figures yet: still off
            await pilot_wait_for(pilot, gc.isenabled, what="the collector on again")
    finally:
        gc.enable()


async def test_the_table_lists_exactly_what_docker_ps_lists(engine, run_container, session_tag):
    run_container("sleep 600", labels={"aitop.model": "m1"})
    run_container("sleep 600", labels={"aitop.model": "m2"})
    run_container("sleep 600")
    stopped = run_container("true")
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 40)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")

        def docker_ps(*extra: str) -> set[str]:
            out = subprocess.run(
                [
                    "docker",
                    "ps",
                    "-a",
                    "-q",
                    "--no-trunc",
                    "--filter",
                    f"label={TEST_LABEL}={session_tag}",
                    *extra,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            return set(out.stdout.split())

        def shown() -> set[str]:
            return {k for k in table.row_keys if not k.startswith(GROUP_PREFIX)}

        models = docker_ps("--filter", "label=aitop.model")
        await pilot_wait_for(pilot, lambda: shown() == models, what=lambda: f"{shown()}")
        await pilot.press("a")
        everything = docker_ps()
        assert stopped in everything
        await pilot_wait_for(pilot, lambda: shown() == everything, what=lambda: f"{shown()}")


async def test_the_mark_of_a_container_that_went_is_dropped():
    """A removed container's mark would leave a bulk action aimed at nothing (or at a reused
    id) and the count saying so: it goes with the container."""
    snap = demo_fleet()
    monitor = ReplayMonitor(snap)
    app = AitopApp([monitor], config=Config())
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        first = next(k for k in table.row_keys if not k.startswith(GROUP_PREFIX))
        table.move_cursor(row=table.row_keys.index(first))
        await pilot.press("space")
        assert app.marked == {first}
        assert app.query_one(ActionProgress).marked == 1
        rest = tuple(c for c in snap.containers if c.info.id != first)
        monitor.publish(dataclasses.replace(snap, containers=rest))
        await pilot.pause()
        assert app.marked == set()
        assert app.query_one(ActionProgress).marked == 0
        assert table.marked == frozenset()


class CountingFollower:
    """Stands in for LogFollower: counts how many were started (each starts reader threads)."""

    started = 0

    def __init__(self, engine, target, *, on_batch, preset) -> None:
        self.session = None

    def start(self) -> CountingFollower:
        CountingFollower.started += 1
        return self

    def stop(self) -> None:
        pass


async def test_following_the_selection_is_debounced_while_the_cursor_runs(monkeypatch):
    """Holding the down key starts reader threads for a few rows, not for every row passed,
    and the pane ends on the row the cursor rests on."""
    monkeypatch.setattr(app_mod, "LogFollower", CountingFollower)
    monkeypatch.setattr(app_mod, "ReplicaSetFollower", CountingFollower)
    CountingFollower.started = 0
    snap = demo_fleet()
    app = replay_app(snap, engine=Engine(UNCONNECTED))
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("l")
        opened = CountingFollower.started
        table.focus()
        rows = [k for k in table.row_keys if not k.startswith(GROUP_PREFIX)]
        assert len(rows) >= 8
        # A key held down (or a burst over a laggy link): the cursor passes every row at once.
        started = time.monotonic()
        for row in range(len(table.row_keys)):
            table.move_cursor(row=row)
            await asyncio.sleep(0.01)  # the passing of time: a key's auto-repeat
        elapsed = time.monotonic() - started
        passed = CountingFollower.started - opened
        # At most one switch per debounce interval (and one at the start), whatever the rows.
        assert passed <= elapsed / app_mod.LOG_FOLLOW_DEBOUNCE + 1, (passed, elapsed)
        assert passed < len(rows) / 2, passed
        # Once the cursor rests, the pane follows the row it rests on (and nothing more starts).
        await pilot_wait_for(pilot, lambda: app._logs_of == (table.selection.container_id,))
        assert CountingFollower.started - opened <= 3
