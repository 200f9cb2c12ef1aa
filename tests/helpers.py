"""Helpers shared by the test modules and tests/conftest.py: test modules import these, never
each other (nor conftest.py, which holds the fixtures and hooks only).

Waiting: a test waits for the condition it needs, with a timeout, never for a fixed time
(`wait_for` in a thread, `pilot_wait_for` inside a Pilot test). A sleep in a test is there for
the passing of time itself (a rate measured over an interval, a key held down) and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, TypeVar

import pytest
from textual.pilot import Pilot

from tui.fleet.actions.scaling.execute import ScaleResult, execute_plan
from tui.fleet.actions.scaling.groups import find_group
from tui.fleet.actions.scaling.plan import plan_scale, step_plan
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.models import ContainerSnapshot, FleetSnapshot

_T = TypeVar("_T")

TEST_LABEL = "aitop.test"
"""The label on every container a test makes; its value is the run's `session_tag`."""
TEST_IMAGE = "aitop-test-busybox:latest"
"""The tests' image: FROM scratch with the host's static busybox (built once a session)."""


# --- what is not here -------------------------------------------------------------------------


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip a test that needs `what` (an engine, a tool, a service) which is not here.

    Under CI / AITOP_REQUIRE_ENGINE=1 the skip fails the test (tests/conftest.py)."""
    pytest.skip(f"no {what}: {reason}")


def require_tools(*names: str) -> None:
    """`unavailable` unless every one of these commands is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(", ".join(missing), "not installed")


# --- waiting for a condition ------------------------------------------------------------------


def poll(
    predicate: Callable[[], _T | None], timeout: float = 10.0, step: float = 0.05
) -> _T | None:
    """`predicate()`'s first truthy value, polled every `step` seconds; None after `timeout`.

    For clean-ups, which must not fail the test; a test's own waits use `wait_for`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(step)


Described: TypeAlias = str | Callable[[], str]
"""What a wait waits for, said in its failure: a text, or a function that says it then (with
the state it found)."""


def _not_met(what: Described, timeout: float) -> NoReturn:
    pytest.fail(f"{what() if callable(what) else what}: not met within {timeout}s")


def wait_for(
    predicate: Callable[[], _T | None],
    timeout: float = 10.0,
    step: float = 0.05,
    what: Described = "condition",
) -> _T:
    """Poll until `predicate()` is truthy; returns its value or fails the test on timeout."""
    value = poll(predicate, timeout, step)
    if not value:
        _not_met(what, timeout)
    return value


async def pilot_wait_for(
    pilot: Pilot[Any],
    predicate: Callable[[], _T | None],
    timeout: float = 10.0,
    step: float = 0.05,
    what: Described = "condition",
) -> _T:
    """`wait_for` inside a Pilot test: the app runs (and handles its messages) between the
    polls. Returns the predicate's truthy value or fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            _not_met(what, timeout)
        await pilot.pause(step)


# --- daemons a test starts --------------------------------------------------------------------


def dockerd_argv(root: Path, url: str, *extra: str) -> list[str]:
    """A private dockerd: its own socket (`url`), data, exec root and pidfile under `root`,
    leaving the host's iptables alone; `extra` flags after (its bridge, generic resources)."""
    return [
        "dockerd",
        "--host",
        url,
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "docker.pid"),
        "--iptables=false",
        "--ip6tables=false",
        *extra,
    ]


def start_daemon(
    argv: list[str], log: Path, url: str, timeout: float
) -> tuple[subprocess.Popen[bytes], str | None]:
    """Start a daemon writing to `log` and wait until the engine API at `url` answers.

    Returns the process and None, or, when it exits or does not answer within `timeout`
    seconds, the process and the end of its log (why not).
    """
    # The daemon writes through its own copy of the descriptor: ours is closed at once.
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    eng = Engine(url, timeout=5)

    def answers_or_died() -> bool:
        try:
            eng.version()
        except EngineError:
            return proc.poll() is not None  # it exited: no use waiting on
        return True

    try:
        up = poll(answers_or_died, timeout, step=0.2) and proc.poll() is None
        return proc, None if up else log.read_text(errors="replace")[-2000:]
    finally:
        eng.close()


def stop_daemon(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Terminate a daemon, killing it when it does not end within `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the engine -------------------------------------------------------------------------------


def swarm_state(engine: Engine) -> str:
    """The engine's swarm membership: "inactive", "active", "pending", "error", "locked"."""
    return str((engine._api().info().get("Swarm") or {}).get("LocalNodeState", ""))


def scale(
    engine: Engine,
    *,
    container_id: str | None = None,
    group: tuple[str, str] | None = None,
    step: int | None = None,
    desired: int | None = None,
    **kwargs: Any,
) -> ScaleResult:
    """Find the group, plan `step` (+1/-1) or `desired`, and carry it out, as the app does
    once the user confirmed. Keyword arguments go to `execute_plan`."""
    found = find_group(engine, container_id=container_id, group=group)
    plan = plan_scale(found, desired) if desired is not None else step_plan(found, step or 1)
    return execute_plan(engine, plan, **kwargs)


# --- hostile container output -----------------------------------------------------------------

HOSTILE_OUTPUT: dict[str, bytes] = {
    "osc0-title-bel": b"\x1b]0;PWNED-TITLE\x07after",
    "osc2-title-st": b"\x1b]2;PWNED-TITLE\x1b\\after",
    "osc52-clipboard": b"\x1b]52;c;cm0gLXJmIH4=\x07after",
    "osc8-hyperlink": b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\after",
    "osc-unterminated": b"after\x1b]0;PWNED-TITLE never ends",
    "csi-cursor-up": b"\x1b[5Aafter",
    "csi-cursor-position": b"\x1b[1;1Hafter",
    "csi-save-restore": b"\x1b[s\x1b[uafter",
    "ed-clear-screen": b"\x1b[2Jafter",
    "el-clear-line": b"\x1b[2Kafter",
    "dsr-cursor-report": b"\x1b[6nafter",
    "da-device-attributes": b"\x1b[cafter",
    "decset-alt-screen": b"\x1b[?1049hafter",
    "decset-mouse": b"\x1b[?1000hafter",
    "dcs-xtgettcap": b"\x1bP+q544e\x1b\\after",
    "dcs-sixel": b"\x1bPq#0;2;0;0;0#1!6~\x1b\\after",
    "apc": b"\x1b_Gf=100;AAAA\x1b\\after",
    "pm": b"\x1b^private\x1b\\after",
    "sos": b"\x1bXstring\x1b\\after",
    "esc-reset": b"\x1bcafter",
    "esc-charset": b"\x1b(0after",
    "esc-decaln": b"\x1b#8after",
    "c1-csi-raw-byte": b"\x9b2Jafter",
    # Raw C1 bytes are invalid UTF-8: they become U+FFFD, their parameters harmless text.
    "c1-osc-raw-byte": b"\x9d0;title\x9cafter",
    "c1-csi-utf8": "\u009b2Jafter".encode(),
    "c1-osc-utf8": "\u009d0;PWNED-TITLE\u009cafter".encode(),
    "c1-dcs-utf8": "\u0090+q\u009cafter".encode(),
    "c1-nel-utf8": "a\u0085after".encode(),
    "nul": b"a\x00after",
    "bell": b"a\x07after",
    "backspace": b"abc\x08\x08\x08after",
    "delete": b"a\x7fafter",
    "vertical-tab-form-feed": b"a\x0b\x0cafter",
    "invalid-utf8": b"\xff\xfe\xc3\x28\xa0\xa1after",
    "truncated-utf8": b"after\xe2\x82",
    "overlong-utf8": b"\xc0\xafafter",
    "surrogate-utf8": b"\xed\xa0\x80after",
    "bidi-override": "\u202eafter\u202c".encode(),
    "line-separator": "a\u2028after".encode(),
    "sgr-with-osc-inside": b"\x1b[31m\x1b]0;PWNED\x07red\x1b[0mafter",
    "sgr-private": b"\x1b[?31mafter",
    "sgr-colon-subparams": b"\x1b[38:2::255:0:0mafter",
    "sgr-huge": b"\x1b[" + b"1;" * 5000 + b"31mafter",
    "lone-esc": b"after\x1b",
    "lone-csi": b"after\x1b[",
}
"""Container output that does harm on a real terminal (title and clipboard writes, hyperlinks,
cursor moves, screen clears, status queries, device control strings, C1 controls) and broken
UTF-8: each payload's harmless text ends in "after"."""

FORBIDDEN_TEXT = ("PWNED", "evil.example", "cm0gLXJmIH4=")
"""Text whose appearance in what was drawn means an escape sequence of HOSTILE_OUTPUT got
through."""


class Latest:
    """A monitor's latest published snapshot (hand it as `on_snapshot`; thread-safe)."""

    def __init__(self) -> None:
        self.snapshot: FleetSnapshot | None = None
        self.lock = threading.Lock()

    def __call__(self, snap: FleetSnapshot) -> None:
        with self.lock:
            self.snapshot = snap

    def container(self, cid: str) -> ContainerSnapshot | None:
        """The container in the latest snapshot (None: not there, or no snapshot yet)."""
        snap = self.snapshot
        return next((c for c in snap.containers if c.info.id == cid), None) if snap else None


AITOP = [sys.executable, "-m", "tui"]
"""The `aitop` command, from this checkout."""


def aitop(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run `aitop ARGS` and capture its output (text), with `env` over the environment."""
    return subprocess.run(
        [*AITOP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )
