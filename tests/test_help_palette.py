"""Keys, help and the command palette, all from one registry (tui/commands.py), driven with
Textual's Pilot on the recorded demo fleet: a remapped key takes effect (and the old key no
longer does), `?` lists the focused pane's keys with the remapped one, and ctrl+p finds and runs
commands by name."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandInput, CommandList, CommandPalette

from tests.fleet_fixtures import ReplayMonitor, demo_fleet, replay_app, several_engines
from tests.helpers import pilot_wait_for
from tui.app import AitopApp
from tui.commands import ACTION_COMMANDS, COMMANDS, MUTATING_ACTIONS, binding_catalog
from tui.config import Config, ConfigProblem
from tui.fleet.actions import lifecycle as act
from tui.fleet.engine.client import Engine
from tui.screens.help import HelpScreen
from widgets.container_table import ContainerTable
from widgets.log_pane import LogPane

SIZE = (200, 40)
GATHER = CommandPalette._GATHER_COMMANDS_GROUP
"""The group of the palette's workers that gather hits (Textual's own name)."""


def app_with(config: Config | None = None, engine: Engine | None = None, **kw) -> AitopApp:
    return replay_app(demo_fleet(), config=config, engine=engine, **kw)


def rows_by_id(screen: HelpScreen) -> dict[str, tuple[str, str]]:
    """binding id -> (section title, keys shown)."""
    return {
        binding_id: (section.title, row.keys)
        for section in screen.sections
        for row in section.rows
        for binding_id in row.binding_id.split()
    }


async def search_and_pick(pilot, app: AitopApp, text: str) -> None:
    """Type `text` into the open palette, wait for its hits, and run the first."""
    palette = app.screen
    assert isinstance(palette, CommandPalette)
    await pilot.press(*text)

    def listed() -> bool:
        # The palette gathers hits in a worker (one per key typed, the older ones cancelled).
        gathering = [w for w in palette.workers if w.group == GATHER and not w.is_finished]
        box = palette.query_one(CommandInput).value
        return not gathering and box == text and palette.query_one(CommandList).highlighted == 0

    await pilot_wait_for(pilot, listed, what=f"the palette's hits for {text!r}")
    await pilot.press("enter")
    await pilot_wait_for(pilot, lambda: app.screen is not palette, what="the palette closed")
    await pilot.pause()


async def open_palette_and_run(pilot, app: AitopApp, text: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause()
    await search_and_pick(pilot, app, text)


def test_every_registry_command_has_a_unique_id_and_bindings_have_ids():
    ids = [c.id for c in COMMANDS]
    assert len(ids) == len(set(ids))
    # The read-only set is the registry's own flag; every lifecycle action is in it.
    assert {c.action for c in ACTION_COMMANDS if c.id in act.ACTIONS} <= MUTATING_ACTIONS
    assert "inspect_container" not in MUTATING_ACTIONS and "quit" not in MUTATING_ACTIONS
    catalog_ids = {b.id for _, b in binding_catalog()}
    assert {"toggle-all", "sort-invert", "log_pane.follow", "confirm-yes"} <= catalog_ids


async def test_a_remapped_key_works_and_the_old_one_no_longer_does():
    app = app_with(Config(keymap={"toggle-all": "A", "sort-invert": "R"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert table.show_all is False
        await pilot.press("a")
        await pilot.pause()
        assert table.show_all is False
        await pilot.press("A")
        await pilot.pause()
        assert app.query_one(ContainerTable).show_all is True
        # A widget's binding is remapped the same way.
        await pilot.press("I")
        await pilot.pause()
        assert table.sort_reverse is False
        await pilot.press("R")
        await pilot.pause()
        assert table.sort_reverse is True


async def test_help_lists_the_focused_pane_then_the_global_keys_with_the_remapped_key():
    app = app_with(Config(keymap={"toggle-all": "A"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        titles = [s.title for s in screen.sections]
        assert titles == ["Fleet table", "Everywhere"]
        rows = rows_by_id(screen)
        assert rows["toggle-all"] == ("Everywhere", "A")
        assert rows["sort-invert"] == ("Fleet table", "I")
        assert rows["help"] == ("Everywhere", "?")
        assert rows["command-palette"] == ("Everywhere", "^p")
        # Every changing action is listed (not read-only).
        assert {"stop", "kill", "scale-up"} <= rows.keys()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_help_in_the_log_pane_shows_its_keys_and_what_they_shadow():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(LogPane)
        pane.add_class("-open")
        pane.focus()
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        assert screen.sections[0].title == "Log pane"
        rows = rows_by_id(screen)
        assert rows["log_pane.follow"] == ("Log pane", "f end")
        assert rows["log_pane.search"] == ("Log pane", "/")
        # In the log pane, `a` means all replicas: the app's `a` is not listed as active.
        assert rows["log_pane.replicas"] == ("Log pane", "a")
        assert "toggle-all" not in rows


async def test_read_only_hides_changing_actions_from_help_and_palette():
    # Never connected to: the recorded fleet stands in for what it would show.
    engine = Engine("unix:///nonexistent/aitop-test.sock")
    engine.read_only = True
    app = app_with(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        rows = rows_by_id(screen)
        assert not {"stop", "kill", "remove", "scale-up", "mark"} & rows.keys()
        assert "toggle-all" in rows
        await pilot.press("escape")
        await pilot.pause()
        from tui.commands import palette_entries

        titles = {e.title for e in palette_entries(app, app.screen, app.keymap)}
        assert "Toggle all containers" in titles
        assert "Stop container" not in titles and "Kill container (send a signal)" not in titles


async def test_the_palette_finds_and_runs_commands_by_name():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await open_palette_and_run(pilot, app, "toggle all containers")
        assert not isinstance(app.screen, CommandPalette)
        assert table.show_all is True
        # A command of the focused pane, by its pane and label.
        await open_palette_and_run(pilot, app, "fleet table: invert")
        assert table.sort_reverse is True
        # Help, by name.
        await open_palette_and_run(pilot, app, "show the keys")
        assert isinstance(app.screen, HelpScreen)


async def test_the_palette_uses_remapped_keys_in_its_help_line():
    app = app_with(Config(keymap={"toggle-all": "A"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        from tui.commands import palette_entries

        entries = {e.title: e for e in palette_entries(app, app.screen, app.keymap)}
        assert entries["Toggle all containers"].help.endswith("(A)")
        assert entries["Show the keys (help)"].help.endswith("(?)")


async def test_switch_host_names_the_engine_and_the_configured_hosts():
    engine = Engine("tcp://a:2375")
    engine.url_source = "config file"
    app = app_with(Config(hosts=("tcp://a:2375", "tcp://b:2375")), engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_palette_and_run(pilot, app, "switch host")
        (note,) = [n for n in app._notifications if n.title == "Switch host"]
        assert note.message == (
            "Watching tcp://a:2375 (from config file); "
            "configured too: tcp://b:2375 (add --host URL to watch it too)."
        )


async def test_switch_host_jumps_from_one_engines_rows_to_the_next():
    app = AitopApp([ReplayMonitor(fleet) for fleet in several_engines()], config=Config())
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        hosts = [key for key in table.row_keys if key.startswith("host:")]
        assert len(hosts) == 3 and table.cursor_row == table.row_keys.index(hosts[0])
        await open_palette_and_run(pilot, app, "switch host")
        assert table.row_keys[table.cursor_row] == "host:ssh://me@gpu-box"
        assert any("(2 of 3)" in str(n.message) for n in app._notifications)
        await open_palette_and_run(pilot, app, "switch host")
        assert table.row_keys[table.cursor_row] == "host:tcp://10.0.0.7:2376"
        await open_palette_and_run(pilot, app, "switch host")  # and round again
        assert table.row_keys[table.cursor_row] == hosts[0]


async def test_set_theme_opens_the_theme_picker():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_palette_and_run(pilot, app, "set theme")
        assert isinstance(app.screen, CommandPalette)  # the theme picker: a palette too
        await search_and_pick(pilot, app, "nord")
        assert app.theme == "nord"


async def test_config_problems_are_shown_in_the_app_and_its_theme_applies():
    problems = [
        ConfigProblem(
            Path("/x/config.toml"),
            3,
            "refresh.fleet: expected a number, got a string ('fast'); the default applies",
        )
    ]
    app = app_with(Config(theme="nord"), config_problems=problems)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        (note,) = list(app._notifications)
        assert note.severity == "warning"
        assert note.title == "configuration: 1 problem, that setting keeps its default"
        assert note.message == (
            "line 3: refresh.fleet: expected a number, got a string ('fast')\n"
            "`aitop config --check` lists them in full"
        )
        assert note.timeout == 8


async def test_log_retention_comes_from_the_config():
    from tui.config import LogsConfig

    app = app_with(Config(logs=LogsConfig(max_lines=123, max_bytes=4567)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(LogPane)
        assert (pane.buffer.max_lines, pane.buffer.max_bytes) == (123, 4567)


async def test_a_command_asks_first_exactly_when_the_registry_says_so():
    """`confirm` on a lifecycle command: its key opens a question (a signal or a yes) before
    anything is sent; without it, nothing is asked."""
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.signal import SignalScreen

    lifecycle = [c for c in ACTION_COMMANDS if c.id in act.ACTIONS]
    assert {c.id for c in lifecycle if c.confirm} == {"stop", "kill", "remove"}
    # Never connected to: a command that does not ask fails at the engine, harmlessly.
    app = app_with(engine=Engine("unix:///nonexistent/aitop-test.sock"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        snap = demo_fleet()
        burner = next(c.info.id for c in snap.containers if c.info.name == "aitop-demo-burner")
        table.move_cursor(row=table.row_keys.index(burner))
        await pilot.pause()
        for command in lifecycle:
            await pilot.press(command.key)
            await pilot.pause()
            asked = isinstance(app.screen, ConfirmScreen | SignalScreen)
            assert asked is command.confirm, command.id
            if asked:
                await pilot.press("escape")
                await pilot.pause()
            assert table.selection.container_id == burner


async def test_gpu_thresholds_come_from_the_config(tmp_path):
    """The demo GPUs' memory (GPU 1 above 90 %) is critical by default; with the critical
    share set above it, the status line warns of nothing and the GPU pane draws no alarm."""
    from textual.widgets import Static

    from tests.fleet_fixtures import demo_fleet_with_gpus
    from tui.config import ThresholdsConfig
    from widgets.status_line import StatusLine

    fleet = demo_fleet_with_gpus(tmp_path)
    relaxed = ThresholdsConfig(gpu_memory_warning_percent=99, gpu_memory_critical_percent=99.5)
    for config, alarmed in ((Config(), True), (Config(thresholds=relaxed), False)):
        app = replay_app(fleet, config=config)
        async with app.run_test(size=(220, 40)) as pilot:
            await pilot.pause()
            alert = app.query_one(StatusLine).alert
            assert alert.startswith("GPU 1") is alarmed, alert
            critical = [
                s for s in app.query(".gpu-mem").results(Static) if s.has_class("-critical")
            ]
            assert bool(critical) is alarmed
