"""The footer shows the keys that work where the focus is (issue 16, item 14): a dialog shows
its own (y Yes, Esc Cancel, which n is too), not the fleet's (q Quit, s Stop) underneath;
the filter box does not show `+ +1` or `a All/models`, which type into it."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from tests.fleet_fixtures import demo_fleet, replay_app
from tests.helpers import pilot_wait_for
from tui.fleet.engine.client import Engine
from tui.screens.confirm import ConfirmScreen
from widgets.container_table import ContainerTable

SIZE = (160, 30)


def footer_keys(screen) -> list[str]:
    return [f"{k.key_display} {k.description}".strip() for k in screen.query(FooterKey)]


async def test_the_filter_box_footer_leaves_out_keys_that_type_into_it():
    app = replay_app(demo_fleet())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = footer_keys(app.screen)
        assert any("+1" in k for k in shown) and any("All/models" in k for k in shown)
        assert app.check_action("scale_up", ()) is not False
        await pilot.press("slash")
        await pilot_wait_for(pilot, lambda: app.focused is not None and app.focused.id == "filter")
        await pilot.pause()
        shown = footer_keys(app.screen)
        assert not any("+1" in k or "All/models" in k or "Stop" in k for k in shown), shown
        assert app.check_action("scale_up", ()) is False
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: isinstance(app.focused, ContainerTable))
        await pilot.pause()
        assert any("+1" in k for k in footer_keys(app.screen))


async def test_a_dialog_shows_its_own_keys(engine, run_container):
    cid = run_container("sleep 600", labels={"aitop.model": "footer"})
    from tests.fleet_fixtures import live_app

    app = live_app(Engine(engine.url))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(ContainerTable)
        await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=20)
        table.move_cursor(row=table.row_keys.index(cid))
        await pilot.press("s")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        shown = footer_keys(app.screen)
        # y answers yes; n and Esc are one action (the footer shows it once).
        assert "y Yes" in shown and "esc Cancel" in shown, shown
        assert not any(k.endswith(("Quit", "Stop", "Remove")) for k in shown), shown
        await pilot.press("n")
