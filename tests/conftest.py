"""Shared test rig: a real Docker engine, a local scratch + busybox image, labelled containers.

Engine tests skip when no engine answers on a developer's laptop (so do tests needing tmux,
ssh, podman, docker-compose, ...); under CI (CI=true) or with AITOP_REQUIRE_ENGINE=1 every skip
is turned into a failure (`pytest_runtest_makereport` below), so a green CI always means they
ran. A test whose skip is right on some CI machines says so with `@pytest.mark.may_skip`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.terminal import Tmux
from tui.fleet.demo import build_busybox_image as build_image
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError

TEST_LABEL = "aitop.test"
TEST_IMAGE = "aitop-test-busybox:latest"
REQUIRE_ENGINE = bool(os.environ.get("AITOP_REQUIRE_ENGINE") or os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI / AITOP_REQUIRE_ENGINE a skip is a failure: nothing is silently left untested."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ENGINE and report.skipped and item.get_closest_marker("may_skip") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI / AITOP_REQUIRE_ENGINE requires it to run: {reason}"


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip a test that needs `what` (an engine, a tool, a service) which is not here."""
    pytest.skip(f"no {what}: {reason}")


def require_tools(*names: str) -> None:
    """`unavailable` unless every one of these commands is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(", ".join(missing), "not installed")


def _no_engine(reason: str) -> NoReturn:
    unavailable("Docker engine", reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A connection to the real engine (DOCKER_HOST or the default socket)."""
    eng = Engine(timeout=30)
    try:
        eng.version()
    except EngineError as exc:
        _no_engine(str(exc))
    yield eng
    eng.close()


def build_busybox_image(engine: Engine, tag: str) -> None:
    """Build `tag` from the host's static busybox, or fail/skip saying what is missing."""
    try:
        build_image(engine, tag)
    except EngineError as exc:
        _no_engine(str(exc))


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The local test image's tag, built once per session if missing."""
    if not engine.has_image(TEST_IMAGE):
        build_busybox_image(engine, TEST_IMAGE)
    return TEST_IMAGE


@pytest.fixture(scope="session")
def session_tag() -> str:
    """A value of the test label unique to this run, so parallel runs do not collide."""
    return f"run-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def run_container(engine: Engine, image: str, session_tag: str) -> Iterator[Callable[..., str]]:
    """Start labelled containers from the test image; all of them are removed afterwards."""
    made: list[str] = []

    def run(command: list[str] | str = "sleep 3600", *, labels: dict | None = None, **kw) -> str:
        cmd = ["sh", "-c", command] if isinstance(command, str) else command
        all_labels = {TEST_LABEL: session_tag, **(labels or {})}
        name = kw.pop("name", None) or f"aitop-test-{uuid.uuid4().hex[:8]}"
        cid = engine.run(image, cmd, labels=all_labels, name=name, **kw)
        made.append(cid)
        return cid

    yield run
    for cid in made:
        engine.remove(cid)


@pytest.fixture(scope="session", autouse=True)
def _sweep_leftovers(session_tag: str) -> Iterator[None]:
    """Remove whatever this run labelled and a failing test left behind.

    Only this run's label value: other runs (a second terminal, a helper) keep theirs.
    """
    yield
    if shutil.which("docker") is None:
        return
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={TEST_LABEL}={session_tag}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> object:
    """Poll until `predicate()` is truthy; returns its value or fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)


def start_daemon(
    argv: list[str], log: Path, url: str, timeout: float
) -> tuple[subprocess.Popen, str | None]:
    """Start a daemon writing to `log` and wait until the engine API at `url` answers.

    Returns the process and None, or, when it exits or does not answer within `timeout`
    seconds, the process and the end of its log (why not).
    """
    # The daemon writes through its own copy of the descriptor: ours is closed at once.
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    eng = Engine(url, timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                eng.version()
                return proc, None
            except EngineError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    return proc, log.read_text(errors="replace")[-2000:]
                time.sleep(0.2)
    finally:
        eng.close()


def stop_daemon(proc: subprocess.Popen | None, timeout: float) -> None:
    """Terminate a daemon, killing it when it does not end within `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class SecondEngine:
    """A second dockerd on its own socket, data, exec directories and bridge.

    Its own bridge matters: a dockerd started with `--bridge none` deletes the first engine's
    docker0. Tests may stop and start it (an engine restart) without touching the main engine.
    """

    BRIDGE = "aitopbr0"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"unix://{root}/docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.proc, failed = start_daemon(
            [
                "dockerd",
                "--host",
                self.url,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--bridge",
                self.BRIDGE,
                "--iptables=false",
                "--ip6tables=false",
            ],
            self.root / "dockerd.log",
            self.url,
            timeout,
        )
        if failed is not None:
            pytest.fail(f"second dockerd did not start:\n{failed}")

    def stop(self) -> None:
        stop_daemon(self.proc, 30)
        self.proc = None


@pytest.fixture(scope="session")
def second_engine(engine: Engine) -> Iterator[SecondEngine]:
    """A second, private engine (session-wide) with the test image built in it."""
    if shutil.which("dockerd") is None or shutil.which("ip") is None or os.geteuid() != 0:
        _no_engine("a second dockerd needs root, dockerd and iproute2")
    # Short path: unix socket paths are limited to 108 bytes.
    root = Path(f"/tmp/aitop-engine2-{uuid.uuid4().hex[:6]}")
    root.mkdir()
    made_bridge = (
        subprocess.run(
            ["ip", "link", "add", "name", SecondEngine.BRIDGE, "type", "bridge"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if made_bridge:
        subprocess.run(
            ["ip", "addr", "add", "192.168.213.1/24", "dev", SecondEngine.BRIDGE], check=True
        )
        subprocess.run(["ip", "link", "set", SecondEngine.BRIDGE, "up"], check=True)
    second = SecondEngine(root)
    second.start()
    eng = Engine(second.url, timeout=60)
    build_busybox_image(eng, TEST_IMAGE)
    eng.close()
    try:
        yield second
    finally:
        leftovers = subprocess.run(
            ["docker", "-H", second.url, "ps", "-aq"], capture_output=True, text=True, check=False
        ).stdout.split()
        if leftovers:
            subprocess.run(
                ["docker", "-H", second.url, "rm", "-f", *leftovers],
                capture_output=True,
                check=False,
            )
        second.stop()
        shutil.rmtree(root, ignore_errors=True)
        if made_bridge:
            subprocess.run(["ip", "link", "del", SecondEngine.BRIDGE], check=False)


@pytest.fixture
def tmux() -> Iterator[Callable[..., Tmux]]:
    """Start commands in real terminals (tmux, each on a server of its own); all end after."""
    require_tools("tmux")
    sessions: list[Tmux] = []

    def start(command: str, **kw: int) -> Tmux:
        session = Tmux(command, **kw)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()
