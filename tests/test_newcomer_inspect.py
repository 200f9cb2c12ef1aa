"""The inspect view as a newcomer reads it (issue 16, item 16): a script's line breaks are
line breaks (not `\\x0a`), other controls are still escaped, and a container removed while
its view is open is said to be gone instead of shown as if it still ran."""

from __future__ import annotations

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.fleet.actions.inspect import clean
from tui.fleet.engine.client import Engine
from tui.screens.inspect import InspectScreen
from widgets.container_table import ContainerTable


def test_values_keep_their_line_breaks_and_escape_every_other_control():
    assert clean("echo a\necho b", lines=True) == "echo a\necho b"
    assert clean("a\r\nb", lines=True) == "a\nb"
    assert clean("a\rb\x1b[2J\u2028c\td", lines=True) == "a\\x0db\\x1b[2J\\u2028c\\x09d"
    assert clean("a\nb") == "a\\x0ab"  # a name stays on one line


async def test_a_multi_line_script_reads_as_lines_and_a_removed_container_is_said_gone(
    engine, run_container, session_tag
):
    cid = run_container(
        "echo loading\necho serving\necho '\x1b]0;title\x07'; sleep 600",
        labels={"aitop.model": "x"},
    )
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
        await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=15)
        table.move_cursor(row=table.row_keys.index(cid))
        table.focus()
        await pilot.press("i")
        screen = await pilot_wait_for(
            pilot, lambda: app.screen if isinstance(app.screen, InspectScreen) else None
        )
        text = screen.section_text()
        assert "\\x0a" not in text
        assert "echo loading\necho serving\necho" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b]0;title\\x07" in text

        def heading() -> str:
            return str(screen.query_one("#heading").render())

        assert "removed" not in heading()
        engine.remove(cid)
        await pilot_wait_for(
            pilot, lambda: "removed at" in heading(), timeout=15, what=lambda: heading()
        )
        assert screen.section_text() == text  # what it was, kept to read
