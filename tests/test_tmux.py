"""The real `aitop` command in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import re
import signal
import sys
import uuid

from tests.helpers import wait_for


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
    term.wait_until(
        lambda screen: any(
            f"m-{model_name}" in line and "%" in line for line in screen.split("\n")
        ),
        "a CPU figure on the model's row",
        timeout=10,
    )
    term.keys("a")
    term.wait_for("all containers")
    term.keys("/")
    term.wait_for("filter: ")
    term.keys("Escape")
    # A key right after Escape would read as Alt+key: wait until Escape took effect.
    term.wait_gone("filter: ", timeout=10)
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


def test_low_bandwidth_mode_draws_in_16_colours(tmux, engine):
    """Over a slow link every byte counts: `--low-bandwidth` sends the 16 basic colours only
    (no 256-colour or 24-bit sequences), where the normal mode uses the theme's true colours."""
    normal = tmux(f"{sys.executable} -m tui")
    normal.wait_for("updated ")
    assert re.search(r"\x1b\[[0-9;]*[34]8;[25];", normal.colours())
    slow = tmux(f"{sys.executable} -m tui --low-bandwidth")
    screen = slow.wait_for("updated ")
    assert "CPU" in screen and "updated " in screen
    colours = slow.colours()
    assert "\x1b[" in colours  # it is in colour, just fewer of them
    assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", colours)


def _aitop_pid(term) -> int:
    """The PID of the aitop process under the pane's shell."""
    shell = int(term.tmux("display-message", "-p", "-t", term.name, "#{pane_pid}").strip())
    with open(f"/proc/{shell}/task/{shell}/children") as fh:
        return int(fh.read().split()[0])


def _ended(pid: int) -> bool:
    """The process is gone or a zombie (it ended; its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_sigterm_ends_aitop_and_gives_the_terminal_back(tmux, engine):
    term = tmux(f"{sys.executable} -m tui")
    term.wait_for("updated ")
    pid = _aitop_pid(term)
    os.kill(pid, signal.SIGTERM)
    screen = term.wait_for("EXIT=", timeout=10)
    wait_for(lambda: _ended(pid), timeout=5, what="aitop ended")
    assert "Traceback" not in screen and "updated " not in screen  # the screen is the shell's


def test_a_terminal_that_goes_away_ends_aitop(tmux, engine):
    """A closed SSH session hangs up the terminal: aitop must not linger without one (it did,
    its shutdown waiting forever on writes to the vanished terminal)."""
    term = tmux(f"{sys.executable} -m tui")
    term.wait_for("updated ")
    pid = _aitop_pid(term)
    term.close()  # kills the tmux server: the pane's terminal hangs up
    wait_for(lambda: _ended(pid), timeout=5, what="aitop ended")
