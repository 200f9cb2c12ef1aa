"""Keys held behind one that opens or closes something (tui/input_fix.HeldKeys) are dropped,
not replayed, once aitop is ending: the release timer fired after the last screen went and
raised ScreenStackError (seen rendering the screenshots: Escape, then the app closed)."""

from __future__ import annotations

from textual import events

from tests.fleet_fixtures import demo_fleet, replay_app


async def test_keys_held_as_aitop_ends_are_dropped():
    app = replay_app(demo_fleet())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app._held_keys.start((app.screen, app.focused), events.Key("x", "x"))
    assert not app.screen_stack  # the app has ended
    await app._release_keys()  # raised ScreenStackError before
