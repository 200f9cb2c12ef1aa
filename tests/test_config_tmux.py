"""The configuration file, help and palette in a real terminal (tmux), as a person meets them:
a mistake in the file is told and aitop starts anyway; the remapped key works, `?` shows it,
and ctrl+p runs a command by name."""

from __future__ import annotations

import sys
from collections.abc import Callable


def only_hit(typed: str, hit: str) -> Callable[[str], bool]:
    """A screen condition: the palette's box holds `typed` and its first hit is `hit` (what
    Enter would run)."""

    def shows(screen: str) -> bool:
        lines = [line.strip() for line in screen.splitlines()]
        box = next((n for n, line in enumerate(lines) if line == f"🔎 {typed}"), None)
        if box is None:
            return False
        hits = [line for line in lines[box + 1 :] if line]
        return bool(hits) and hits[0] == hit

    return shows


def test_a_config_mistake_is_told_and_the_keymap_help_and_palette_work(
    tmux,
    tmp_path,
    engine,
):
    config = tmp_path / "config.toml"
    config.write_text('[refresh]\nfleet = "fast"\n\n[keymap]\ntoggle-all = "A"\n')
    # A relative path keeps the message short enough not to wrap inside the notification.
    term = tmux(f"cd {tmp_path} && {sys.executable} -m tui --config config.toml", height=64)
    screen = term.wait_for("configuration: 1 problem, that setting keeps its default")
    assert "line 2: refresh.fleet: expected a number" in screen
    term.wait_for("updated ")
    # The old key does nothing: keys are taken in order, so once help (typed after it) is
    # open, `a` has been handled. Help lists the remapped key with its id.
    term.keys("a", "?")
    screen = term.wait_for("Everywhere")
    row = next(line for line in screen.splitlines() if "toggle-all" in line)
    assert " A " in row
    term.keys("Escape")
    screen = term.wait_gone("Everywhere", timeout=10)
    assert "updated " in screen and "· all containers ·" not in screen
    # The new key switches to all containers.
    term.keys("A")
    term.wait_for("· all containers ·")
    # The palette runs a command by name: back to model containers only. Under load keys may
    # land late, and Enter before the search narrowed would pick another command.
    term.keys("C-p")
    term.wait_for("Search for commands")
    term.keys(*"toggle all containers")
    term.wait_until(
        only_hit("toggle all containers", "Toggle all containers"), "the one hit", timeout=30
    )
    term.keys("Enter")
    term.wait_for("model containers (", timeout=60)
    term.keys("q")
    screen = term.wait_for("EXIT=0")
    assert "Traceback" not in screen
    # The message was printed before the screen opened too (it is on the terminal after exit).
    assert "aitop: " in screen
