"""The configuration file, help and palette in a real terminal (tmux), as a person meets them:
a mistake in the file is told and aitop starts anyway; the remapped key works, `?` shows it,
and ctrl+p runs a command by name."""

from __future__ import annotations

import sys
import time


def wait_gone(term, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text in term.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text not in term.screen()


def test_a_config_mistake_is_told_and_the_keymap_help_and_palette_work(
    tmux,
    tmp_path,
    engine,
):
    config = tmp_path / "config.toml"
    config.write_text('[refresh]\nfleet = "fast"\n\n[keymap]\ntoggle-all = "A"\n')
    # A relative path keeps the message short enough not to wrap inside the notification.
    term = tmux(f"cd {tmp_path} && {sys.executable} -m tui --config config.toml", height=50)
    screen = term.wait_for("configuration: 1 problem, defaults used")
    assert "config.toml:2: refresh.fleet: expected a number" in screen
    term.wait_for("updated ")
    # The old key does nothing, the new one switches to all containers.
    term.keys("a")
    time.sleep(0.5)
    assert "· all containers ·" not in term.screen()
    term.keys("A")
    term.wait_for("· all containers ·")
    # Help lists the remapped key with its id.
    term.keys("?")
    screen = term.wait_for("Everywhere")
    row = next(line for line in screen.splitlines() if "toggle-all" in line)
    assert " A " in row
    term.keys("Escape")
    wait_gone(term, "Everywhere")
    # The palette runs a command by name: back to model containers only.
    term.keys("C-p")
    term.wait_for("Search for commands")
    term.keys(*"toggle all containers")
    # The typed text in the box (lower case) and the hit it found: under load keys may land
    # late, and Enter before the search narrowed would pick another command.
    term.wait_for("toggle all containers")
    time.sleep(1.0)
    term.wait_for("Toggle all containers")
    term.keys("Enter")
    term.wait_for("model containers (", timeout=60)
    term.keys("q")
    screen = term.wait_for("EXIT=0")
    assert "Traceback" not in screen
    # The message was printed before the screen opened too (it is on the terminal after exit).
    assert "aitop: " in screen
