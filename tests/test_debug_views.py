"""The three debugging views in the real app against the real engine (issue 17): Enter opens
the selected container up close, `h` the fleet's events (Enter there goes to the container
and its logs), `d` the disk; Escape comes back; read-only hides what changes things."""

from __future__ import annotations

from tests.fleet_fixtures import demo_fleet, live_app, replay_app
from tests.helpers import pilot_wait_for, wait_for
from tui.fleet.engine.client import Engine
from tui.screens.container import ContainerScreen
from tui.screens.disk import DiskScreen
from tui.screens.events import EventsScreen
from widgets.container_table import ContainerTable
from widgets.log_pane import LogPane

SIZE = (120, 36)


async def select(pilot, app, cid: str) -> None:
    table = app.query_one(ContainerTable)
    await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=20, what="its row")
    table.move_cursor(row=table.row_keys.index(cid))
    await pilot.pause()


async def test_enter_opens_the_container_up_close_with_its_past(engine, run_container):
    cid = run_container("sleep 1000 & sleep 1001 & wait", labels={"aitop.model": "tree"})
    app = live_app(Engine(engine.url))
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, cid)
        # The history was kept from the first frame on.
        await pilot_wait_for(
            pilot, lambda: len(app.container_view.history.series(cid).times) >= 2, timeout=20
        )
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ContainerScreen))
        screen = app.screen
        assert isinstance(screen, ContainerScreen)
        await pilot_wait_for(pilot, lambda: len(screen.processes) == 3, timeout=15)
        assert len(screen.history.times) >= 2
        # The fleet's keys do not reach the table behind the view: no Stop question.
        await pilot.press("s", "D")
        await pilot.pause()
        assert isinstance(app.screen, ContainerScreen)
        before = len(screen.history.times)
        # It follows the fleet while open.
        await pilot_wait_for(pilot, lambda: len(screen.history.times) > before, timeout=15)
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: not isinstance(app.screen, ContainerScreen))
        assert app.container_view.screen is None


async def test_the_events_view_shows_what_happened_before_and_goes_to_the_logs(
    engine, run_container
):
    cid = run_container("echo the end; exit 7", labels={"aitop.model": "dies"})
    wait_for(lambda: engine.inspect(cid)["State"]["Status"] == "exited", timeout=20)
    app = live_app(Engine(engine.url))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        # Seeded from the engine's history: it died before aitop started.
        await pilot_wait_for(
            pilot,
            lambda: any(e.container_id == cid and e.action == "die" for e in screen.events),
            timeout=20,
        )
        name = engine.inspect(cid)["Name"].lstrip("/")
        await pilot.press("slash", *name, "space", *"die", "enter")
        await pilot_wait_for(pilot, lambda: len(screen.shown) == 1)
        (died,) = screen.shown
        assert (died.container_id, died.action, died.detail) == (cid, "die", "exit 7")
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: not isinstance(app.screen, EventsScreen))
        pane = app.query_one(LogPane)
        assert app.query_one(ContainerTable).selection.container_id == cid
        assert pane.has_class("-open") and pane.show_timestamps
        assert pane.preset_key == "5m"


async def test_d_opens_the_disk_view_and_read_only_hides_removal(engine):
    read_only = Engine(engine.url)
    read_only.read_only = True  # as `aitop --read-only` makes its engines
    app = live_app(read_only)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, DiskScreen))
        screen = app.screen
        assert isinstance(screen, DiskScreen)
        await pilot_wait_for(pilot, lambda: screen.row_names, timeout=30, what="the survey")
        assert screen.check_action("remove", ()) is False
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: not isinstance(app.screen, DiskScreen))


async def test_a_recorded_fleet_says_it_has_no_disk_and_no_processes():
    app = replay_app(demo_fleet())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DiskScreen)
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ContainerScreen))
        screen = app.screen
        assert isinstance(screen, ContainerScreen)
        assert screen.processes_error == "a recorded fleet has no processes to list"
        await pilot.press("h")  # the view's own keys only: h does nothing there
        await pilot.press("escape")
        await pilot.press("h")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        events = app.screen
        assert isinstance(events, EventsScreen) and events.events == ()


def test_the_three_views_in_the_real_command_at_80x24(tmux, run_container):
    """The real `aitop` in a terminal of 80x24: Enter, `h` and `d` open the three views and
    Escape comes back from each, with nothing but the views on screen."""
    import sys
    import uuid

    name = f"views-{uuid.uuid4().hex[:6]}"
    run_container("sleep 600", labels={"aitop.model": name}, name=name)
    term = tmux(f"{sys.executable} -m tui", width=80, height=24)
    term.wait_for(" shown")
    term.keys("/")
    term.wait_for("filter by name")
    term.keys(*name)
    term.keys("Enter")
    term.wait_for(f"filter: '{name}'")
    term.keys("Enter")  # the filtered row is selected: up close
    screen = term.wait_for(f"{name} · ")
    assert "CPU " in screen and "Memory " in screen
    term.wait_for("processes (k: signal one)")
    term.keys("Escape")
    term.wait_gone("processes (k: signal one)", timeout=10)
    term.keys("h")
    screen = term.wait_for("Events: ")
    assert name in screen  # its create and start, seeded from the engine's history
    term.keys("Escape")
    term.wait_gone("Events: ", timeout=10)
    term.keys("d")
    screen = term.wait_for("Disk of ", timeout=30)
    term.wait_for("data root ", timeout=60)
    term.keys("Escape")
    term.wait_gone("Disk of ", timeout=10)
    term.keys("q")
    assert "Traceback" not in term.wait_for("EXIT=0")
