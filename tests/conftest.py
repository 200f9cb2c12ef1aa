"""Shared test rig: a real Docker engine, a local scratch + busybox image, labelled containers,
and each test's own configuration.

Every test that uses an engine fixture (`engine`, `second_engine`, the Podman service, the
`docker` command, or any fixture built on them: `image`, `run_container`, `sshd`, ...) is marked
`engine` by `pytest_collection_modifyitems` below, so `pytest -m "not engine"` runs without any
Docker. Engine tests skip when no engine answers on a developer's laptop (so do tests needing
tmux, ssh, podman, docker-compose, ...); under CI (CI=true) or with AITOP_REQUIRE_ENGINE=1 every
skip is turned into a failure (`pytest_runtest_makereport`), so a green CI means they ran. A
test whose skip is right on some CI machines says so with `@pytest.mark.may_skip`.

Every test runs with a configuration directory of its own (`_own_configuration`): what a
developer keeps in ~/.config/aitop/config.toml or names by AITOP_CONFIG never changes a test.
Shared helpers live in tests/helpers.py; this file holds fixtures and hooks only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pluggy
import pytest

from tests.fixtures.serving.rig import build_serving_image
from tests.helpers import (
    TEST_IMAGE,
    TEST_LABEL,
    dockerd_argv,
    require_tools,
    start_daemon,
    stop_daemon,
    unavailable,
)
from tests.swarm_rig import SWARM_GPUS, RigError, SwarmRig, missing
from tests.terminal import Tmux
from tui.app import FIRST_FRAME_ENV
from tui.config import CONFIG_ENV
from tui.fleet.actions.lifecycle import SHELL_ENV
from tui.fleet.demo import build_busybox_image as build_image
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError

REQUIRE_ENGINE = bool(os.environ.get("AITOP_REQUIRE_ENGINE") or os.environ.get("CI"))

ENGINE_FIXTURES = frozenset({"engine", "second_engine", "podman_service", "docker_cli"})
"""The fixtures that need a container engine (or Docker's own command); a test using any of
them, directly or through another fixture, is an engine test."""

USER_SETTINGS = (CONFIG_ENV, SHELL_ENV, FIRST_FRAME_ENV)
"""aitop's own environment variables: a developer's values would change what a test sees."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `engine` every test that uses an engine fixture, before `-m` selects.

    `fixturenames` is the whole closure (fixtures of fixtures included), so a new fixture
    built on `engine` marks its tests too."""
    for item in items:
        if ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Under CI / AITOP_REQUIRE_ENGINE a skip is a failure: nothing is silently left untested."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ENGINE and report.skipped and item.get_closest_marker("may_skip") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI / AITOP_REQUIRE_ENGINE requires it to run: {reason}"


@pytest.fixture(autouse=True)
def _own_configuration(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An empty configuration directory of the test's own (XDG_CONFIG_HOME), and none of
    aitop's variables: the developer's config file is never read, by the test or by the
    `aitop` processes it starts (they inherit the environment).

    Not HOME nor DOCKER_CONFIG: they name the engine under test (a docker context), which the
    engine fixtures, the `docker` command and `aitop` all follow alike."""
    config_home = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return config_home


def _no_engine(reason: str) -> NoReturn:
    unavailable("Docker engine", reason)


@pytest.fixture(scope="session")
def engine(session_tag: str) -> Iterator[Engine]:
    """A connection to the real engine (DOCKER_HOST, the docker context or the default socket).

    At the end of the session it removes whatever this run labelled and a failing test left
    behind: only this run's label value, other runs (a second terminal, a helper) keep theirs.
    """
    eng = Engine(timeout=30)
    try:
        eng.version()
    except EngineError as exc:
        _no_engine(str(exc))
    yield eng
    with contextlib.suppress(EngineError):
        for cid in eng.ids_with_label(f"{TEST_LABEL}={session_tag}"):
            eng.remove(cid)
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
            dockerd_argv(self.root, self.url, "--bridge", self.BRIDGE),
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


@pytest.fixture
def docker_cli() -> str:
    """The path of Docker's own `docker` command, for what only it does (a context store)."""
    require_tools("docker")
    path = shutil.which("docker")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def swarm(engine: Engine) -> Iterator[SwarmRig]:
    """A real three-node swarm (tests/swarm_rig.py): dockerds in network namespaces of their
    own, node1 the manager, node2 and node3 advertising GPUs (`SWARM_GPUS`). Torn down at
    the end of the session, failed tests or not. It asks for `engine` only so that its tests
    are engine tests; it never touches that engine."""
    why = missing()
    if why is not None:
        _no_engine(why)
    rig = SwarmRig(gpus=SWARM_GPUS)
    try:
        rig.setup()
    except RigError as exc:
        pytest.fail(f"the swarm rig did not come up: {exc}")
    try:
        yield rig
    finally:
        rig.teardown()


@pytest.fixture(scope="session")
def serving_image(engine: Engine) -> str:
    """The stand-in model servers' image (tests/fixtures/serving/rig.py), built once."""
    try:
        return build_serving_image(engine)
    except EngineError as exc:
        _no_engine(f"no serving image: {exc}")


@pytest.fixture
def run_server(
    engine: Engine, serving_image: str, session_tag: str
) -> Iterator[Callable[..., str]]:
    """Run containers of the serving image (labelled, removed after the test)."""
    made: list[str] = []

    def run(command: list[str], *, labels: dict[str, str] | None = None, **kw: Any) -> str:
        cid = engine.run(
            serving_image,
            command,
            labels={TEST_LABEL: session_tag, **(labels or {})},
            name=f"aitop-test-serving-{uuid.uuid4().hex[:8]}",
            **kw,
        )
        made.append(cid)
        return cid

    yield run
    for cid in made:
        engine.remove(cid)


@pytest.fixture(scope="session")
def manager(swarm: SwarmRig) -> Iterator[Engine]:
    """The swarm manager's engine, as aitop would hold it."""
    eng = Engine(swarm.manager.url, timeout=10)
    yield eng
    eng.close()
