"""The action screens and keys driven with Pilot: on their own, and on the real engine.

`ActionsApp` is the smallest app built on `FleetActions` the way `AitopApp` is: a ContainerTable
fed with snapshots built from the engine, an ActionProgress line, the action bindings.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.widgets import Checkbox, Input, OptionList

from tests.fleet_fixtures import demo_fleet
from tests.helpers import TEST_LABEL, pilot_wait_for, scale
from tui.commands import ACTION_COMMANDS, bindings
from tui.fleet.engine.client import Engine
from tui.fleet.inventory import container_info
from tui.fleet.models import ContainerSnapshot, EngineStatus, FleetSnapshot
from tui.fleet_actions import ACTIONS_GROUP, FleetActions, gpu_inputs
from tui.fleets import Fleets
from tui.screens.confirm import ConfirmAnswer, ConfirmScreen
from tui.screens.inspect import InspectScreen
from tui.screens.replica import ReplicaScreen, count_error
from tui.screens.signal import SignalScreen
from widgets.action_progress import ActionProgress
from widgets.container_table import ContainerTable

# --- the screens on their own ---------------------------------------------------------------


class ScreenHost(App):
    """Pushes one screen and keeps what it was dismissed with."""

    def __init__(self, screen) -> None:
        super().__init__()
        self.to_push = screen
        self.answers: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.to_push, self.answers.append)


async def test_confirm_declined_with_escape_answers_no():
    app = ScreenHost(ConfirmScreen("Stop 2 containers?", ["a (1)", "b (2)"], yes="Stop"))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.answers == [ConfirmAnswer(False, False)]


async def test_confirm_enter_lands_on_cancel_first():
    app = ScreenHost(ConfirmScreen("Remove x?", ["x"], option="also remove anonymous volumes"))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("enter")  # Cancel has the focus: a stray Enter declines
        await pilot.pause()
    assert app.answers == [ConfirmAnswer(False, False)]


async def test_confirm_lists_every_item_and_returns_the_option():
    app = ScreenHost(
        ConfirmScreen("Remove 2 containers?", ["one", "two"], option="also remove volumes")
    )
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfirmScreen)
        shown = [str(s.render()) for s in screen.query(".item")]
        assert shown == ["• one", "• two"]
        screen.query_one("#option", Checkbox).value = True
        await pilot.click("#yes")
        await pilot.pause()
    assert app.answers == [ConfirmAnswer(True, True)]


async def test_signal_picker_returns_the_chosen_signal_or_none():
    signals = [("SIGTERM", "stop"), ("SIGKILL", "now"), ("SIGHUP", "reload")]
    app = ScreenHost(SignalScreen("web", signals))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.screen.query_one(OptionList).option_count == 3
        await pilot.press("down", "down", "enter")
        await pilot.pause()
    assert app.answers == ["SIGHUP"]
    app = ScreenHost(SignalScreen("web", signals))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.answers == [None]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "type a number of replicas"),
        ("abc", "'abc' is not a whole number of replicas (0 or more)"),
        ("-2", "'-2' is not a whole number of replicas (0 or more)"),
        ("2.5", "'2.5' is not a whole number of replicas (0 or more)"),
        ("999", "at most 256 replicas"),
        ("²", "'²' is not a whole number of replicas (0 or more)"),
        ("٣", "'٣' is not a whole number of replicas (0 or more)"),
        ("9" * 5000, "at most 256 replicas"),
        ("x" * 5000, f"'{'x' * 20}…' is not a whole number of replicas (0 or more)"),
        ("0003", ""),
        ("3", ""),
        (" 0 ", ""),
    ],
)
def test_count_errors(text, error):
    assert count_error(text, 256) == error


async def test_invalid_count_shows_an_inline_error_and_keeps_the_screen():
    app = ScreenHost(ReplicaScreen("demo/llama", 2))
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplicaScreen)
        box = screen.query_one("#count", Input)
        assert box.value == "2"
        box.value = ""
        await pilot.press(*"x1", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ReplicaScreen) and app.screen is screen  # still open
        assert screen.error_text == "'x1' is not a whole number of replicas (0 or more)"
        assert screen.query_one("#error").has_class("-shown")
        await pilot.press("backspace", "backspace")
        await pilot.pause()
        assert screen.error_text == ""  # typing clears it
        await pilot.press("4", "enter")
        await pilot.pause()
    assert app.answers == [4]


async def test_inspect_screen_masks_until_m_and_masks_again():
    from tui.fleet.actions.inspect import inspect_sections

    attrs = {
        "Id": "f" * 64,
        "Name": "/llm",
        "Config": {"Image": "vllm", "Env": ["HF_TOKEN=hf_secret", "MODEL=llama"]},
    }
    app = ScreenHost(InspectScreen("llm", lambda reveal: inspect_sections(attrs, reveal=reveal)))
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        assert "hf_secret" not in screen.section_text()
        assert "MODEL: llama" in screen.section_text()
        assert screen.masked_rows == 1
        await pilot.press("m")
        await pilot.pause()
        assert "HF_TOKEN: hf_secret" in screen.section_text()
        await pilot.press("m")
        await pilot.pause()
        assert "hf_secret" not in screen.section_text()
        await pilot.press("escape")
        await pilot.pause()
    assert app.answers == [None]


def test_gpu_inputs_from_a_recorded_two_gpu_fleet(tmp_path):
    from tests.fleet_fixtures import demo_fleet_with_gpus

    snap = demo_fleet_with_gpus(tmp_path)
    by_name = {c.info.name: c for c in snap.containers}
    mistral = by_name["aitop-demo-mistral-1"]
    free, need = gpu_inputs(snap, mistral.info.id)
    assert free is not None and snap.gpu is not None
    assert set(free) == {str(d.index) for d in snap.gpu.devices}
    for d in snap.gpu.devices:
        assert d.mem_total_bytes is not None and d.mem_used_bytes is not None
        assert free[str(d.index)] == d.mem_total_bytes - d.mem_used_bytes
    assert need == max(g.mem_bytes or 0 for g in mistral.gpus)
    assert gpu_inputs(demo_fleet(), mistral.info.id) == (None, None)


# --- the keys on the real engine --------------------------------------------------------------


class ActionsApp(FleetActions):
    """A table of this test run's containers with the action keys."""

    BINDINGS: ClassVar[list[BindingType]] = [*bindings(ACTION_COMMANDS)]

    def __init__(self, engine: Engine, session_tag: str) -> None:
        super().__init__(Fleets([(engine.url, engine)]))
        self.engine = engine
        self.session_tag = session_tag

    def compose(self) -> ComposeResult:
        yield ContainerTable(id="containers")
        yield ActionProgress(id="action-progress")

    def on_mount(self) -> None:
        table = self.query_one(ContainerTable)
        table.show_all = True
        table.focus()

    def refresh_fleet(self) -> None:
        """Read this run's containers from the engine (the test's stand-in for the monitor)."""
        ids = self.engine.ids_with_label(f"{TEST_LABEL}={self.session_tag}")
        infos = []
        for cid in ids:
            try:
                infos.append(container_info(self.engine.inspect(cid)))
            except Exception:
                continue
        snap = FleetSnapshot(
            engine=EngineStatus(url=self.engine.url, reachable=True),
            containers=tuple(ContainerSnapshot(i) for i in infos),
            taken_at=time.time(),
        )
        self.fleets.update(0, snap)
        self.query_one(ContainerTable).update_snapshot(snap)

    def select(self, container_id: str) -> None:
        table = self.query_one(ContainerTable)
        table.move_cursor(row=table.row_keys.index(container_id), animate=False)


def state(cid: str) -> dict:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{json .State}}", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


async def settle(pilot, app: ActionsApp, until, timeout: float = 20.0) -> None:
    """Wait for the engine to reach a state, then show it in the table."""
    await pilot_wait_for(pilot, until, timeout, step=0.1, what="the engine's expected state")
    app.refresh_fleet()
    await pilot.pause()


async def answered(pilot, app: App) -> None:
    """Wait until the keys pressed were handled: no question open, no action running (one
    that the keys started would have changed the engine by then)."""
    await pilot.pause()

    def idle() -> bool:
        asked = isinstance(app.screen, ConfirmScreen | SignalScreen | ReplicaScreen)
        running = [w for w in app.workers if w.group == ACTIONS_GROUP and not w.is_finished]
        return not asked and not running

    await pilot_wait_for(pilot, idle, what="no question open and no action running")


async def test_stop_declined_changes_nothing_then_confirmed_stops(
    engine, run_container, session_tag
):
    cid = run_container("trap 'exit 0' TERM; while :; do sleep 0.1; done")
    app = ActionsApp(Engine(engine.url), session_tag)
    async with app.run_test(size=(200, 40)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(cid)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert any(cid[:12] in item for item in app.screen.items)
        await pilot.press("escape")
        await answered(pilot, app)
        assert state(cid)["Running"] is True
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app, lambda: not state(cid)["Running"])
        await pilot.press("u")
        await settle(pilot, app, lambda: state(cid)["Running"])


async def test_marked_containers_are_paused_together_and_marks_are_consumed(
    engine, run_container, session_tag
):
    a = run_container("sleep 600")
    b = run_container("sleep 600")
    c = run_container("sleep 600")
    app = ActionsApp(Engine(engine.url), session_tag)
    async with app.run_test(size=(200, 40)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(a)
        await pilot.press("space")
        app.select(b)
        await pilot.press("space")
        await pilot.pause()
        assert app.marked == {a, b}
        assert app.query_one(ActionProgress).marked == 2
        app.select(c)  # the selection does not matter while some are marked
        await pilot.press("p")
        await settle(pilot, app, lambda: state(a)["Paused"] and state(b)["Paused"])
        assert state(c)["Paused"] is False
        assert app.marked == set()
        # Unmarked again: `p` on the paused selection unpauses it alone.
        app.select(a)
        await pilot.press("p")
        await settle(pilot, app, lambda: not state(a)["Paused"])
        assert state(b)["Paused"] is True


async def test_kill_asks_the_signal_then_confirms(engine, run_container, session_tag):
    cid = run_container("trap 'exit 42' HUP; while :; do sleep 0.1; done")
    app = ActionsApp(Engine(engine.url), session_tag)
    async with app.run_test(size=(200, 40)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(cid)
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, SignalScreen)
        await pilot.press("down", "down", "down", "enter")  # SIGHUP
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "SIGHUP" in app.screen.question
        await pilot.press("y")
        await settle(pilot, app, lambda: not state(cid)["Running"])
        assert state(cid)["ExitCode"] == 42


async def test_inspect_key_opens_the_view_with_secrets_masked(engine, run_container, session_tag):
    cid = run_container("sleep 600", environment={"HF_TOKEN": "hf_abcdef", "MODEL": "m"})
    app = ActionsApp(Engine(engine.url), session_tag)
    async with app.run_test(size=(160, 50)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(cid)
        await pilot.press("i")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, InspectScreen))
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        assert "hf_abcdef" not in screen.section_text()
        await pilot.press("m")
        await pilot.pause()
        assert "HF_TOKEN: hf_abcdef" in screen.section_text()


async def test_scale_down_declined_keeps_the_clone(engine, run_container, session_tag):
    from tui.fleet.actions.scaling.groups import find_group

    cid = run_container("sleep 600", stop_signal="SIGKILL")
    scale(engine, container_id=cid, step=1)
    app = ActionsApp(Engine(engine.url), session_tag)
    async with app.run_test(size=(200, 40)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(cid)
        await pilot.press("minus")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert isinstance(app.screen, ConfirmScreen)
        assert "clone-1" in app.screen.items[0]
        await pilot.press("escape")
        await answered(pilot, app)
        assert len(find_group(engine, container_id=cid).replicas) == 2
        await pilot.press("equals_sign")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ReplicaScreen))
        assert isinstance(app.screen, ReplicaScreen)
        assert app.screen.current == 2
        await pilot.press("backspace", "3", "enter")
        await settle(pilot, app, lambda: len(find_group(engine, container_id=cid).replicas) == 3)


async def test_read_only_hides_and_refuses_every_changing_key(engine, run_container, session_tag):
    cid = run_container("sleep 600")
    ro = Engine(engine.url)
    ro.read_only = True
    app = ActionsApp(ro, session_tag)
    since = time.time()
    async with app.run_test(size=(200, 40)) as pilot:
        app.refresh_fleet()
        await pilot.pause()
        app.select(cid)
        for action in ("stop_container", "remove_container", "scale_up", "exec_shell"):
            assert app.check_action(action, ()) is False
        assert app.check_action("inspect_container", ()) is True
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "stop_container" not in shown and "inspect_container" in shown
        await pilot.press("s", "D", "K", "p", "r", "plus", "minus", "equals_sign", "space")
        await answered(pilot, app)  # and none opened a question
        # Called directly (a command palette, a script): still refused, before the engine.
        app.action_stop_container()
        app.action_scale_up()
        await answered(pilot, app)
    # Every call an action made has been answered: its event is in the engine's log by now.
    until = time.time()
    events = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.6f}",
            "--until",
            f"{until:.6f}",
            "--filter",
            f"label={TEST_LABEL}={session_tag}",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert [e for e in events if cid in e] == []
    assert state(cid)["Running"] is True
