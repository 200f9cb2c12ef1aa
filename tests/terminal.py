"""A real terminal for tests: the real `aitop` command in a tmux pane, read as a person sees it.

Each `Tmux` runs on a tmux server of its own (`-L`), so that server options (the clipboard,
titles) and its buffers belong to that test only. What the pane shows, its title and the
clipboard writes it received are what an escape sequence leaking from data would change.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest

KNOWN_TITLE = "aitop-test-title"
"""The pane's title before aitop starts: nothing aitop draws may change it."""


class Tmux:
    """One tmux session running `command`; `; sleep` keeps the pane after it exits."""

    def __init__(self, command: str, width: int = 200, height: int = 40) -> None:
        self.name = f"aitop-{uuid.uuid4().hex[:6]}"
        self.server = self.name
        # Textual draws on stderr, so nothing is redirected: the pane is the whole truth.
        wrapped = f"{command}; echo EXIT=$?; sleep 30"
        self.tmux(
            "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), wrapped
        )
        # OSC 52 from the pane would become a paste buffer; OSC 0/2 would retitle the pane.
        self.tmux("set-option", "-s", "set-clipboard", "on")
        self.tmux("select-pane", "-t", self.name, "-T", KNOWN_TITLE)

    def tmux(self, *args: str) -> str:
        """Run a tmux command against this session's server; its output."""
        # -f /dev/null: a developer's ~/.tmux.conf (status line, keys, terminal) is not read.
        return subprocess.run(
            ["tmux", "-L", self.server, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TERM": "xterm-256color"},
        ).stdout

    def screen(self) -> str:
        """What the pane shows now, as text."""
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def colours(self) -> str:
        """The pane with its colours, as SGR sequences (capture-pane -e)."""
        return self.tmux("capture-pane", "-e", "-p", "-t", self.name)

    def title(self) -> str:
        """The pane's title (an OSC 0/2 from the program would have changed it)."""
        return self.tmux("display-message", "-p", "-t", self.name, "#{pane_title}").strip()

    def buffers(self) -> str:
        """The server's paste buffers (an OSC 52 clipboard write would have made one)."""
        return self.tmux("list-buffers")

    def keys(self, *keys: str) -> None:
        """Type keys into the pane (tmux key names: Enter, Escape, Down, C-p, ...)."""
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_until(
        self, shows: Callable[[str], bool], what: str, timeout: float = 30.0, step: float = 0.05
    ) -> str:
        """The screen once `shows(screen)` holds; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if shows(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not on screen within {timeout}s:\n{screen}")
            time.sleep(step)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The screen once it shows `text`; fails the test after `timeout` seconds."""
        return self.wait_until(lambda screen: text in screen, repr(text), timeout)

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        """The screen once it no longer shows `text`; fails the test after `timeout` seconds."""
        return self.wait_until(lambda screen: text not in screen, f"no {text!r}", timeout)

    def answer_time(
        self, key: str, shows: str, *, gone: bool = False, timeout: float = 5.0
    ) -> float:
        """Seconds from typing `key` until the screen shows `shows` (or, with `gone`, no longer
        shows it), polled every 5 ms."""
        started = time.monotonic()
        self.keys(key)
        while (shows in self.screen()) is gone:
            if time.monotonic() - started > timeout:
                pytest.fail(
                    f"{shows!r} not {'gone' if gone else 'shown'} {timeout}s after "
                    f"{key!r}:\n{self.screen()}"
                )
            time.sleep(0.005)
        return time.monotonic() - started

    def close(self) -> None:
        """End the session and its server."""
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, check=False)
