"""Read-only mode as a newcomer meets it (issue 16, item 11): the status line says it, and a
changing key says why nothing happens instead of doing nothing without a word."""

from __future__ import annotations

from textual.widgets._toast import Toast

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.fleet.engine.client import Engine
from widgets.container_table import ContainerTable
from widgets.status_line import StatusLine


async def test_read_only_is_shown_and_a_changing_key_says_it_is_refused(
    engine, run_container, session_tag
):
    cid = run_container("sleep 600", labels={"aitop.model": "x"})
    ro = Engine(engine.url)
    ro.read_only = True
    app = live_app(ro)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        status = app.query_one(StatusLine)
        table = app.query_one(ContainerTable)
        await pilot_wait_for(pilot, lambda: "@" in str(status.render()), what="engine shown")
        assert str(status.render()).startswith("read-only · ")
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
        await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=15)
        table.focus()

        def toasts() -> list[str]:
            return [str(t.render()) for t in app.screen.query(Toast)]

        await pilot.press("s")
        said = await pilot_wait_for(
            pilot,
            lambda: next((t for t in toasts() if "read-only mode" in t), None),
            what=lambda: f"a read-only toast; on screen: {toasts()}",
        )
        assert "stop refused" in said
        # A key that changes nothing still works, without a word about read-only mode.
        await pilot.press("a")
        assert sum("read-only mode" in t for t in toasts()) == 1


async def test_the_status_line_says_nothing_of_it_when_aitop_may_change_things(
    engine, run_container, session_tag
):
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 50)) as pilot:
        status = app.query_one(StatusLine)
        await pilot_wait_for(pilot, lambda: "@" in str(status.render()), what="engine shown")
        assert "read-only" not in str(status.render())
