"""The real `aitop` command in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import require_tools

pytestmark = pytest.mark.engine


class Tmux:
    def __init__(self, command: str, width: int = 200, height: int = 40) -> None:
        self.name = f"aitop-{uuid.uuid4().hex[:6]}"
        # Textual draws on stderr, so nothing is redirected: the pane is the whole truth.
        # `; sleep` keeps the pane open after aitop exits, so its last words can be read.
        wrapped = f"{command}; echo EXIT=$?; sleep 30"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                wrapped,
            ],
            check=True,
            env={**os.environ, "TERM": "xterm-256color"},
        )

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not on screen within {timeout}s:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


@pytest.fixture
def tmux():
    require_tools("tmux")
    sessions: list[Tmux] = []

    def start(command: str, **kw) -> Tmux:
        session = Tmux(command, **kw)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def test_aitop_shows_the_fleet_and_quits_cleanly(tmux, run_container):
    model_name = f"tmux-model-{uuid.uuid4().hex[:6]}"
    run_container("sleep 600", labels={"aitop.model": model_name}, name=f"m-{model_name}")
    run_container("sleep 600")
    term = tmux(f"{sys.executable} -m tui")
    screen = term.wait_for("updated ")
    assert "CPU" in screen and "MEM" in screen and "docker" in screen
    # Other containers may fill the screen: filter down to ours, as a person would, typing
    # only once the box is open (before that, letters are action keys).
    term.keys("/")
    term.wait_for("filter by name")
    term.keys(*model_name)
    term.keys("Enter")
    screen = term.wait_for(f"filter: '{model_name}'")
    assert "· 1 shown ·" in screen
    # Figures arrive: the model's row gets a CPU percentage.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = next((line for line in term.screen().splitlines() if f"m-{model_name}" in line), "")
        if "%" in row:
            break
        time.sleep(0.2)
    assert "%" in row
    term.keys("a")
    term.wait_for("all containers")
    term.keys("/")
    term.wait_for("filter: ")
    term.keys("Escape")
    # A key right after Escape would read as Alt+key: wait until Escape took effect.
    deadline = time.monotonic() + 10
    while "filter: " in term.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    term.keys("q")
    screen = term.wait_for("EXIT=0")
    assert "Traceback" not in screen


def test_a_missing_engine_is_one_line_in_the_terminal(tmux):
    term = tmux(f"{sys.executable} -m tui --host unix:///nonexistent.sock")
    screen = term.wait_for("EXIT=2")
    assert "Traceback" not in screen
    assert "no Docker engine at unix:///nonexistent.sock" in screen


def test_an_action_key_right_after_quit_leaves_no_traceback(tmux, run_container):
    """`q` then `s` at once: the stop confirmation is pushed while the app shuts down and is
    never composed; it must not look for its buttons (it did: NoMatches in the terminal)."""
    run_container("sleep 600", labels={"aitop.model": "quit-race"})
    term = tmux(f"{sys.executable} -m tui")
    term.wait_for("updated ")
    term.keys("q", "s")
    screen = term.wait_for("EXIT=")
    assert "EXIT=0" in screen
    assert "Traceback" not in screen and "NoMatches" not in screen and "Error" not in screen


def _colours(term: Tmux) -> str:
    """The pane with its colours, as SGR sequences (tmux capture-pane -e)."""
    return subprocess.run(
        ["tmux", "capture-pane", "-e", "-p", "-t", term.name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_low_bandwidth_mode_draws_in_16_colours(tmux, engine):
    """Over a slow link every byte counts: `--low-bandwidth` sends the 16 basic colours only
    (no 256-colour or 24-bit sequences), where the normal mode uses the theme's true colours."""
    normal = tmux(f"{sys.executable} -m tui")
    normal.wait_for("updated ")
    assert re.search(r"\x1b\[[0-9;]*[34]8;[25];", _colours(normal))
    slow = tmux(f"{sys.executable} -m tui --low-bandwidth")
    screen = slow.wait_for("updated ")
    assert "CPU" in screen and "updated " in screen
    colours = _colours(slow)
    assert "\x1b[" in colours  # it is in colour, just fewer of them
    assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", colours)
