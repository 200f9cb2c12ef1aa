"""The log pane inside the app, on real containers: `l` opens it on the selection, it follows
the selection, shows a compose service's replicas interleaved, and exports to a file."""

from __future__ import annotations

import os

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.fleet.engine.client import Engine
from widgets.container_table import GROUP_PREFIX, ContainerTable
from widgets.log_pane import LogPane


def texts(pane: LogPane) -> list[str]:
    return [line.text for line in pane.buffer]


async def test_l_opens_the_selected_containers_logs_and_they_follow_the_selection(
    engine, run_container, session_tag, tmp_path, monkeypatch
):
    first = run_container(
        "for i in 1 2 3; do echo first-$i; done; sleep 600", labels={"aitop.model": "m-a"}
    )
    second = run_container(
        "echo second-1; printf 'evil \\033]0;title\\007 \\033[2J end\\n'; sleep 600",
        labels={"aitop.model": "m-b"},
    )
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
        await pilot_wait_for(pilot, lambda: {first, second} <= set(table.row_keys), timeout=15)
        table.move_cursor(row=table.row_keys.index(first))
        await pilot.press("l")
        pane = app.query_one(LogPane)
        assert pane.display and pane.has_focus_within
        await pilot_wait_for(
            pilot, lambda: texts(pane)[-3:] == ["first-1", "first-2", "first-3"], timeout=15
        )

        table.focus()  # back to the table: the pane follows the selection
        table.move_cursor(row=table.row_keys.index(second))
        await pilot_wait_for(pilot, lambda: "second-1" in texts(pane), timeout=15)
        assert "first-1" not in texts(pane)
        hostile = next(t for t in texts(pane) if t.startswith("evil"))
        assert "\x1b" not in hostile and "\x07" not in hostile

        monkeypatch.chdir(tmp_path)
        pane.focus()
        await pilot.press("X")
        await pilot_wait_for(
            pilot, lambda: any(p.startswith("aitop-") for p in os.listdir(tmp_path)), timeout=15
        )
        (exported,) = os.listdir(tmp_path)
        content = (tmp_path / exported).read_text()
        assert "second-1" in content and "\x1b" not in content

        await pilot.press("l")
        assert not pane.display


async def test_a_compose_service_row_shows_its_replicas_interleaved(
    engine, run_container, session_tag
):
    labels = {
        "aitop.model": "svc-model",
        "com.docker.compose.project": f"logs-{session_tag}",
        "com.docker.compose.service": "api",
    }
    for n in (1, 2):
        run_container(
            f"echo replica-{n}; sleep 600",
            labels={**labels, "com.docker.compose.container-number": str(n)},
        )
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"logs-{session_tag}", "enter")
        group = f"{GROUP_PREFIX}logs-{session_tag}/api"
        await pilot_wait_for(pilot, lambda: group in table.row_keys, timeout=15)
        table.move_cursor(row=table.row_keys.index(group))
        await pilot.press("l")
        pane = app.query_one(LogPane)
        await pilot_wait_for(
            pilot, lambda: {"replica-1", "replica-2"} <= set(texts(pane)), timeout=15
        )
        sources = {line.source for line in pane.buffer}
        assert len(sources - {""}) == 2
