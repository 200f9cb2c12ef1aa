"""The action keys as a newcomer meets them (issue 16, items 7 and 8), in the whole app on the
real engine: a paused container's hints and `u` know it is paused; the toasts say what the
engine did ("already running", "sent SIGUSR2"), not what was asked."""

from __future__ import annotations

import json
import subprocess

from textual.app import App
from textual.widgets._toast import Toast

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.app import AitopApp
from tui.fleet.engine.client import Engine
from tui.screens.confirm import ConfirmScreen
from tui.screens.signal import SignalScreen
from widgets.container_table import ContainerTable


def status(cid: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{json .State}}", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return str(json.loads(out)["Status"])


def toasts(app: App[None]) -> list[str]:
    """The notifications on screen, as a person reads them."""
    return [str(toast.render()) for toast in app.screen.query(Toast)]


async def open_on(pilot, app: AitopApp, session_tag: str, cid: str) -> None:
    """Filter the table to this run's containers and put the cursor on `cid`."""
    table = app.query_one(ContainerTable)
    await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
    await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=15)
    table.move_cursor(row=table.row_keys.index(cid))
    table.focus()


async def toast_saying(pilot, app: App[None], text: str) -> str:
    return await pilot_wait_for(
        pilot,
        lambda: next((t for t in toasts(app) if text in t), None),
        timeout=15,
        what=lambda: f"a toast saying {text!r}; on screen: {toasts(app)}",
    )


async def test_a_paused_containers_hint_says_unpause_and_u_unpauses_it(
    engine, run_container, session_tag
):
    cid = run_container("sleep 600", labels={"aitop.model": "x"})
    engine.pause_container(cid)
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await open_on(pilot, app, session_tag, cid)
        table = app.query_one(ContainerTable)
        await pilot_wait_for(
            pilot, lambda: table.selection.container_id == cid, what="the paused row selected"
        )
        await pilot.press("e")
        hint = await toast_saying(pilot, app, "is paused")
        assert "unpause it first (p)" in hint and "start it first" not in hint
        await pilot.press("u")
        note = await toast_saying(pilot, app, "unpaused")
        assert "cannot start" not in note
        await pilot_wait_for(pilot, lambda: status(cid) == "running", what="the container thawed")


async def test_start_of_a_running_container_and_a_harmless_signal_say_what_happened(
    engine, run_container, session_tag
):
    cid = run_container("sleep 600", labels={"aitop.model": "x"})
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await open_on(pilot, app, session_tag, cid)
        await pilot.press("u")
        started = await toast_saying(pilot, app, "already running")
        assert "Started" not in started

        await pilot.press("K")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, SignalScreen))
        await pilot.press(*["down"] * 6, "enter")  # the seventh offered: SIGUSR2
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        sent = await toast_saying(pilot, app, "Sent SIGUSR2")
        assert "Killed" not in sent
        # busybox sleep as PID 1 has no handler for it: the container goes on running.
        assert status(cid) == "running"


async def test_any_signal_can_be_typed_and_an_unknown_one_is_refused(
    engine, run_container, session_tag
):
    """README: "kill (any signal)": the picker takes any name or number 1-64 (issue 16, 9)."""
    cid = run_container(
        "trap 'exit 42' USR2; while :; do usleep 100000; done", labels={"aitop.model": "x"}
    )
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await open_on(pilot, app, session_tag, cid)
        await pilot.press("K")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, SignalScreen))
        screen = app.screen

        def said() -> str:
            return str(screen.query_one("#signal-error").render())

        for typed in ("SIGFOO", "65", "0"):
            await pilot.press(*typed, "enter")
            await pilot_wait_for(pilot, said, what=f"a word on {typed!r}")
            assert app.screen is screen  # refused: still asking
            await pilot.press(*["backspace"] * len(typed))
        await pilot.press(*"SIGFOO", "enter")
        await pilot_wait_for(pilot, lambda: "unknown signal 'SIGFOO'" in said())
        await pilot.press(*["backspace"] * 6)
        assert said() == ""  # typing again clears the word
        await pilot.press(*"usr2", "enter")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Send SIGUSR2 to" in str(app.screen.query_one("#title").render())
        await pilot.press("y")
        await toast_saying(pilot, app, "Sent SIGUSR2")
        await pilot_wait_for(pilot, lambda: status(cid) == "exited", what="the trap ran")
