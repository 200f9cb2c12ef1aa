"""A developer's own configuration changes no test: every test has a configuration directory of
its own (tests/conftest.py, `_own_configuration`), which the `aitop` processes and terminals it
starts inherit.

The proof puts a hostile file where aitop looks on a developer's machine (~/.config/aitop/ and
the file AITOP_CONFIG names), checks that aitop started there does read it, and runs tests of
this suite in a pytest of their own in that environment: an app started as the command starts
it, `aitop` on the command line and `aitop config` in a real terminal; each of them fails there
when the configuration is not the test's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fleet_fixtures import demo_fleet, replay_app
from tui.commands import check_settings
from tui.config import CONFIG_ENV, Config, load_config
from widgets.container_table import ContainerTable

ROOT = Path(__file__).resolve().parent.parent

HOSTILE_CONFIG = """\
theme = "nord"
read_only = true
hosts = ["tcp://192.0.2.1:2375"]

[refresh]
fleet = "fast"

[keymap]
toggle-all = "A"

[detection]
name_patterns = [".*"]
"""
"""A file that changes what a test sees: another theme, read-only mode, an engine that does
not answer, a mistake reported on every start, a remapped key, every container a model."""

HERE = "tests/test_own_configuration.py"
INSIDE = [
    f"{HERE}::test_an_app_started_as_the_command_starts_it_has_the_defaults",
    f"{HERE}::test_aitop_in_a_terminal_finds_no_configuration",
    "tests/test_cli.py::test_engine_errors_are_one_line_and_exit_2"
    "[bogus://x-invalid engine address]",
]
"""Tests whose outcome the hostile file would change, were it read."""


async def test_an_app_started_as_the_command_starts_it_has_the_defaults():
    # What `aitop` does before its first frame: read the file, check it against Textual.
    loaded = load_config()
    config, problems = check_settings(loaded)
    assert (loaded.exists, loaded.problems, problems) == (False, (), [])
    assert config == Config()
    app = replay_app(demo_fleet(), config=config)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        assert app.theme == Config().theme
        assert list(app._notifications) == []  # no "configuration: 1 problem"
        assert app.check_action("stop_container", ()) is True  # not read-only
        table = app.query_one(ContainerTable)
        assert "aitop-demo-redis" not in table.row_keys  # model containers only
        await pilot.press("a")
        assert table.show_all is True  # the default key


def test_aitop_in_a_terminal_finds_no_configuration(tmux):
    term = tmux(f"{sys.executable} -m tui config --check")
    screen = term.wait_for("EXIT=")
    assert "no configuration file; the defaults apply" in screen and "EXIT=0" in screen


def test_a_developers_own_configuration_changes_no_test(tmp_path, monkeypatch):
    home = tmp_path / "home"
    default_place = home / ".config" / "aitop" / "config.toml"
    default_place.parent.mkdir(parents=True)
    default_place.write_text(HOSTILE_CONFIG)
    named = tmp_path / "mine.toml"
    named.write_text(HOSTILE_CONFIG)
    # A developer's machine: no XDG_CONFIG_HOME, so ~/.config/aitop/config.toml is the file.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert load_config().path == default_place
    assert load_config().config.read_only  # aitop started here reads it
    # Or AITOP_CONFIG names one (as a developer's shell profile might).
    monkeypatch.setenv(CONFIG_ENV, str(named))
    assert load_config().path == named and load_config().config.theme == "nord"

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "inside"),
            *INSIDE,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    passed = re.match(r"(\d+) passed", summary)
    assert passed is not None and int(passed[1]) == len(INSIDE), out.stdout
