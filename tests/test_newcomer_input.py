"""Keys typed in one burst, as over a laggy SSH link (issue 16, item 6; Textual issue 6605):
the real `aitop` in tmux, each burst sent in one `send-keys`, read as a person reads the
screen. Editing keys in a text box act where they were typed, and an Esc with the next key
right behind it is Escape then that key, not Alt+key."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.terminal import Tmux
from tui import input_fix
from tui.fleet.engine.client import Engine


@pytest.fixture
def aitop(tmux: Callable[..., Tmux], engine: Engine) -> Tmux:
    """aitop on the test engine, its first frame drawn."""
    term = tmux(f"{sys.executable} -m tui", width=160, height=40)
    term.wait_for("updated ")
    return term


def test_backspace_in_a_burst_deletes_what_was_typed_before_it(aitop: Tmux):
    aitop.keys("/")
    aitop.wait_for("filter by name")
    aitop.keys("a", "b", "BSpace", "c", "d", "Left", "BSpace", "e")  # one burst
    aitop.keys("Enter")
    screen = aitop.wait_for("filter: '")
    assert "filter: 'aed'" in screen, screen


def test_escape_then_a_key_in_one_burst_is_escape_then_the_key(aitop: Tmux):
    aitop.keys("C-p")
    aitop.wait_for("Search for commands")
    aitop.keys(*"zzz")
    aitop.wait_for("zzz")
    aitop.keys("Escape", "a")  # closes the palette, then shows all containers
    screen = aitop.wait_for("all containers", timeout=10)
    assert "Search for commands" not in screen and "zzz" not in screen, screen


def test_keys_behind_one_that_opens_a_box_go_into_the_box(aitop: Tmux):
    # ctrl+p opens the palette, Escape (with `a` right behind it) closes it, `a` shows all
    # containers, `/` opens the filter box and the rest is typed into it: one burst.
    aitop.keys("C-p", *"zzzz", "Escape", "a", "/", *"xy", "BSpace", "z", "Enter")
    screen = aitop.wait_for("filter: '", timeout=10)
    assert "filter: 'xz'" in screen and "all containers" in screen, screen
    assert "Search for commands" not in screen and "zzzz" not in screen, screen


def test_the_workaround_stands_aside_on_a_textual_with_the_fix():
    assert input_fix.affected("8.2.8")
    assert not input_fix.affected("9.0.0")
