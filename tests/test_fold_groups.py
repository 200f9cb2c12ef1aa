"""Group rows fold (issue 16, item 16: they showed ▾ but could not fold): Enter on a group's
header row hides its members under it (▸) and shows them again; a click on the mark too."""

from __future__ import annotations

from tests.fleet_fixtures import demo_fleet, replay_app
from tests.helpers import pilot_wait_for
from widgets.container_table import GROUP_PREFIX, ContainerTable

SIZE = (160, 30)


async def test_enter_on_a_group_row_folds_and_unfolds_it():
    fleet = demo_fleet()
    members = {c.info.id for c in fleet.containers if c.info.group == ("aitop-demo", "llama")}
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        header = next(k for k in table.row_keys if k == f"{GROUP_PREFIX}aitop-demo/llama")
        table.move_cursor(row=table.row_keys.index(header))
        await pilot.pause()
        assert members <= set(table.row_keys)
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: not members & set(table.row_keys), what="folded")
        assert str(table.get_row(header)[0]).startswith("▸ ")
        assert table.selection.group == ("aitop-demo", "llama")  # the cursor stays on it
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: members <= set(table.row_keys), what="unfolded")
        assert str(table.get_row(header)[0]).startswith("▾ ")


async def test_a_click_on_the_mark_folds_the_group():
    fleet = demo_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        header = f"{GROUP_PREFIX}aitop-demo/llama"
        row = table.row_keys.index(header)
        await pilot.click(ContainerTable, offset=(0, row + 1))  # +1: the header line
        await pilot.pause()
        assert header in table.folded
        assert str(table.get_row(header)[0]).startswith("▸ ")
