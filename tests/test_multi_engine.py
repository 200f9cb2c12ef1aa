"""Several engines in one aitop: two real dockerds (the main one and `second_engine`, on its own
socket and bridge) watched at once, each by its own monitor.

Both fleets are listed under their host rows with a HOST column; the same compose service on
both engines gives two group rows; an action on the second engine's container reaches that
engine only; when the second engine stops, its host row says it is unreachable while the first
engine's fleet keeps updating, and it comes back by itself once the engine does. An ssh://
engine through a private sshd on loopback (MaxSessions 1) is listed, sampled through the stats
API, paused and followed, its GPUs read there (`monitors_for`, as the CLI builds it), all
over one ssh connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

from tests.helpers import (
    TEST_IMAGE,
    TEST_LABEL,
    pilot_wait_for,
    require_tools,
    unavailable,
    wait_for,
)
from tests.terminal import Tmux
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.engine.ssh import SshTunnel
from tui.fleet.monitor import FleetMonitor
from tui.screens.confirm import ConfirmScreen
from tui.watch import monitors_for
from widgets.container_table import HOST_PREFIX, ContainerTable, group_key, host_label
from widgets.log_pane import LogPane
from widgets.status_line import StatusLine

COMPOSE = {"com.docker.compose.project": "", "com.docker.compose.service": "web"}


def docker(url: str, *args: str) -> str:
    out = subprocess.run(
        ["docker", "-H", url, *args], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


def running(url: str, cid: str) -> bool:
    return docker(url, "inspect", "--format", "{{.State.Running}}", cid) == "true"


def paused(url: str, cid: str) -> bool:
    return docker(url, "inspect", "--format", "{{.State.Paused}}", cid) == "true"


@pytest.fixture
def fleet_pair(engine, second_engine, image, session_tag):
    """A model container and a compose replica on each engine, all named after one prefix."""
    prefix = f"aitop-multi-{uuid.uuid4().hex[:6]}"
    labels = {**COMPOSE, "com.docker.compose.project": prefix, TEST_LABEL: session_tag}
    made: list[tuple[str, str]] = []
    for n, url in enumerate((engine.url, second_engine.url), start=1):
        eng = Engine(url, timeout=30)
        model = eng.run(
            TEST_IMAGE,
            ["sleep", "3600"],
            name=f"{prefix}-model-{n}",
            labels={TEST_LABEL: session_tag, "aitop.model": f"org/model-{n}"},
        )
        web = eng.run(
            TEST_IMAGE,
            ["sleep", "3600"],
            name=f"{prefix}-web-{n}",
            labels={**labels, "com.docker.compose.container-number": "1"},
        )
        made += [(url, model), (url, web)]
        eng.close()
    yield prefix, made
    for url, cid in made:
        subprocess.run(["docker", "-H", url, "rm", "-f", cid], capture_output=True, check=False)


def two_engine_app(first: str, second: str) -> AitopApp:
    monitors = [FleetMonitor(Engine(url), interval=0.5) for url in (first, second)]
    return AitopApp(monitors, config=Config(), show_all=True)


def cli_app(*urls: str) -> AitopApp:
    """The app with its monitors as `aitop --host` builds them (`monitors_for`): an ssh://
    engine's GPUs are read on its machine, over its one connection."""
    config = Config()
    return AitopApp(
        monitors_for([Engine(url) for url in urls], config), config=config, show_all=True
    )


async def until(pilot, predicate, what: str, timeout: float = 40.0) -> None:
    def said() -> str:
        return f"{what} (status: {pilot.app.query_one(StatusLine).render()})"

    await pilot_wait_for(pilot, predicate, timeout, step=0.1, what=said)


async def test_both_fleets_are_listed_by_host_and_an_action_reaches_the_second_engine(
    engine, second_engine, fleet_pair
):
    prefix, made = fleet_pair
    (_, model_1), (_, web_1), (_, model_2), (_, web_2) = made
    first, second = engine.url, second_engine.url
    app = two_engine_app(first, second)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.query_one(ContainerTable)
        table.filter_text = prefix
        await until(
            pilot,
            lambda: {model_1, web_1, model_2, web_2} <= set(table.row_keys),
            "both engines' containers listed",
        )
        assert table.column_keys[:2] == ("name", "host")
        keys = table.row_keys
        # Grouped by host first: each host row, then that engine's rows only.
        at_1, at_2 = keys.index(HOST_PREFIX + first), keys.index(HOST_PREFIX + second)
        assert at_1 < keys.index(model_1) < at_2 < keys.index(model_2)
        # The same compose service on both engines: one group row each, keyed by host.
        group = (prefix, "web")
        assert group_key(group, first) in keys and group_key(group, second) in keys
        assert table.host_of(web_2) == second and table.host_of(web_1) == first
        host_cells = table.get_row(model_2)
        assert host_cells[1].plain == host_label(second)
        assert "running" in table.get_row(HOST_PREFIX + second)[4].plain

        # An action on a container row goes to the engine that owns it.
        table.move_cursor(row=keys.index(model_2))
        await pilot.pause()
        await pilot.press("p")
        await until(pilot, lambda: paused(second, model_2), "paused on the second engine")
        assert not paused(first, model_1)

        # A group row means that service on its own host: the confirmation names the second
        # engine's replica only, that engine stops it, and the first engine's is left alone.
        table.move_cursor(row=table.row_keys.index(group_key(group, second)))
        await pilot.pause()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "a confirmation")
        items = app.screen.items  # type: ignore[attr-defined]
        assert len(items) == 1 and web_2[:12] in items[0]
        await pilot.press("y")
        await until(pilot, lambda: not running(second, web_2), "stopped on the second engine")
        assert running(first, web_1)


async def test_a_second_engine_that_stops_is_marked_unreachable_and_recovers(
    engine, second_engine, fleet_pair, run_container
):
    prefix, made = fleet_pair
    (_, model_1), _, (_, model_2), _ = made
    first, second = engine.url, second_engine.url
    app = two_engine_app(first, second)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.query_one(ContainerTable)
        status = app.query_one(StatusLine)
        table.filter_text = prefix
        await until(pilot, lambda: model_2 in table.row_keys, "the second engine's fleet")

        def host_state(url: str) -> str:
            return table.get_row(HOST_PREFIX + url)[4].plain

        await asyncio.to_thread(second_engine.stop)
        try:
            await until(
                pilot, lambda: host_state(second) == "unreachable", "second engine unreachable"
            )
            assert "unreachable, retrying" in table.get_row(HOST_PREFIX + second)[2].plain
            assert f"{host_label(second)}: unreachable, retrying" in status.alert
            # Its last known fleet stays listed; the first engine keeps updating meanwhile.
            assert model_2 in table.row_keys
            assert "running" in host_state(first)
            late = run_container("sleep 600", name=f"{prefix}-late")
            await until(pilot, lambda: late in table.row_keys, "the first engine still updates")
            assert table.host_of(late) == first
        finally:
            await asyncio.to_thread(second_engine.start)
        await until(pilot, lambda: "running" in host_state(second), "the second engine is back")
        engine_2 = app.engine_for(model_2)
        assert engine_2 is not None and engine_2.url == second
        await until(pilot, lambda: not status.alert, "the alert clears")
        assert model_1 in table.row_keys


def test_snapshot_json_lists_every_host(engine, second_engine, fleet_pair):
    _, made = fleet_pair
    (_, model_1), _, (_, model_2), _ = made
    env = {**os.environ, "DOCKER_HOST": ""}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui",
            "--host",
            engine.url,
            "--host",
            second_engine.url,
            "--host",
            "unix:///nonexistent/docker.sock",
            "snapshot",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)["hosts"]
    assert [h["url"] for h in hosts] == [
        engine.url,
        second_engine.url,
        "unix:///nonexistent/docker.sock",
    ]
    ids = [{c["id"] for c in h["containers"]} for h in hosts]
    assert model_1 in ids[0] and model_1 not in ids[1]
    assert model_2 in ids[1] and model_2 not in ids[0]
    assert "error" not in hosts[0] and "socket does not exist" in hosts[2]["error"]


# --- ssh:// -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ssh_processes(port: int, *, forwards_only: bool = False) -> list[int]:
    """Pids of the ssh clients of this machine connected to `port`; only the ones that
    forward a socket (`-L`, not a session on another's connection) if `forwards_only`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != b"ssh" or str(port).encode() not in argv:
            continue
        if not forwards_only or b"-L" in argv:
            found.append(int(pid))
    return found


@pytest.fixture
def sshd(tmp_path, monkeypatch, second_engine):
    """A private sshd on a loopback port that lets root in with a key made here.

    `ssh` on PATH becomes a wrapper that adds this session's client config (key, known
    hosts), as a user's ~/.ssh/config would. MaxSessions is 1: the engine's API needs none,
    since aitop forwards its socket over one connection instead of one session per request;
    a GPU reading takes that one session for its short `sh -s`, on the same connection.
    """
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(binary) or shutil.which("ssh") is None or os.geteuid() != 0:
        unavailable(
            "sshd", "an ssh:// engine test needs root, sshd and ssh (openssh-server/-client)"
        )
    port = _free_port()
    for name in ("hostkey", "clientkey"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
            check=True,
        )
    shutil.copy(tmp_path / "clientkey.pub", tmp_path / "authorized_keys")
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/hostkey\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nMaxSessions 1\nPidFile {tmp_path}/sshd.pid\n"
    )
    (tmp_path / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {tmp_path}/clientkey\n"
        f"  UserKnownHostsFile {tmp_path}/known_hosts\n  StrictHostKeyChecking accept-new\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {tmp_path}/ssh_config "$@"\n')
    wrapper.chmod(0o755)
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    with open(tmp_path / "sshd.log", "wb") as log:  # sshd writes through its own copy
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(tmp_path / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=10, what=f"sshd on port {port}")
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        # The remote engine is the second dockerd, named by its socket path in the URL.
        socket_path = second_engine.url[len("unix://") :]
        yield f"ssh://root@127.0.0.1:{port}{socket_path}", port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_an_ssh_engine_over_one_connection(engine, second_engine, sshd, session_tag):
    url, port = sshd
    second = second_engine.url
    name = f"aitop-ssh-{uuid.uuid4().hex[:6]}"
    cid = docker(
        second,
        "run",
        "-d",
        "--name",
        name,
        "--label",
        f"{TEST_LABEL}={session_tag}",
        "--label",
        "aitop.model=org/over-ssh",
        TEST_IMAGE,
        "sh",
        "-c",
        "while :; do echo tick; sleep 0.2; done",
    )
    try:
        app = cli_app(engine.url, url)
        async with app.run_test(size=(200, 60)) as pilot:
            table = app.query_one(ContainerTable)
            table.filter_text = name
            await until(pilot, lambda: cid in table.row_keys, "the container listed over ssh")
            assert table.host_of(cid) == url
            host_row = table.get_row(HOST_PREFIX + url)
            assert host_row[3].plain == "stats: api" and "running" in host_row[4].plain
            # No cgroup files over there: the figures come from the stats API.
            await until(pilot, lambda: table.get_row(cid)[7].plain not in ("", "-"), "CPU figures")
            # Its GPUs are read over there, through the same connection: the ssh host has a
            # line of its own in the GPU pane (here: no nvidia-smi on the loopback "host").
            await until(pilot, lambda: app.query(".gpu-host"), "the ssh host's GPU line")
            gpu_host = str(app.query_one(".gpu-host").render())
            assert gpu_host.startswith(f"{host_label(url)}: GPU: no nvidia-smi"), gpu_host
            assert "no GPU data here" not in str(app.query_one("#gpu-state").render())

            # An action and a log stream over the same one connection.
            table.move_cursor(row=table.row_keys.index(cid))
            await pilot.pause()
            await pilot.press("l")
            pane = app.query_one(LogPane)
            await until(pilot, lambda: any(line.text == "tick" for line in pane.buffer), "logs")
            await pilot.press("escape", "p")
            await until(pilot, lambda: paused(second, cid), "paused through ssh")
            # One forward; a GPU reading's session client (`ssh -o ControlPath=...`) may
            # come and go beside it.
            assert len(_ssh_processes(port, forwards_only=True)) == 1
        # Leaving aitop ends the forward; a reading's client caught under way ends with the
        # connection (its master gone), moments later.
        assert _ssh_processes(port, forwards_only=True) == []
        wait_for(lambda: not _ssh_processes(port), timeout=5, what="every ssh client ended")
    finally:
        docker(second, "rm", "-f", cid)


def _forward_dirs(pid: int) -> list[str]:
    base = tempfile.gettempdir()
    return [n for n in os.listdir(base) if n.startswith(f"aitop-ssh-{pid}-")]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_ssh_forward_dies_with_aitop_however_it_ends(sshd, how):
    """A killed aitop takes its `ssh -L` along (PR_SET_PDEATHSIG; it used to outlive a
    SIGKILL until the connection dropped), and the next forward removes the directory the
    dead one left."""
    url, port = sshd
    code = (
        "import time\n"
        "from tui.fleet.engine.client import Engine\n"
        f"Engine({url!r}).version()\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        assert len(_ssh_processes(port)) == 1
        assert _forward_dirs(proc.pid)
        proc.send_signal(how)
        proc.wait(10)
        wait_for(lambda: not _ssh_processes(port), timeout=5, what="the forward ended")
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    engine = Engine(url)
    try:
        engine.version()
        assert _forward_dirs(proc.pid) == []  # swept by the next forward's start
        assert len(_forward_dirs(os.getpid())) == 1
    finally:
        engine.close()
    assert _forward_dirs(os.getpid()) == []


def test_an_ssh_url_names_the_remote_socket_and_a_single_forward():
    tunnel = SshTunnel("ssh://me@box:2200/run/user/1000/docker.sock")
    argv = tunnel.argv("/tmp/aitop-ssh-x/docker.sock")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "box"]
    assert argv[argv.index("-l") : argv.index("-l") + 2] == ["-l", "me"]
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "2200"]
    forward = argv[argv.index("-L") + 1]
    assert forward == "/tmp/aitop-ssh-x/docker.sock:/run/user/1000/docker.sock"
    assert SshTunnel("ssh://box").remote == "/var/run/docker.sock"


def test_an_unreachable_ssh_engine_says_why_in_one_line():
    require_tools("ssh")
    url = f"ssh://root@127.0.0.1:{_free_port()}"
    with pytest.raises(EngineError) as caught:
        Engine(url).version()
    text = str(caught.value)
    assert text.startswith(f"cannot reach {url} over ssh:") and "refused" in text
    assert "\n" not in text


def test_the_real_command_watches_two_engines(engine, second_engine, fleet_pair):
    """`aitop --host A --host B` in a real terminal: both host rows, each engine's container
    under its own (no HOST column: the host rows say it); q quits cleanly."""
    require_tools("tmux")

    prefix, _ = fleet_pair
    second_label = host_label(second_engine.url)
    term = Tmux(
        f"{sys.executable} -m tui --all --host {engine.url} --host {second_engine.url}",
        width=200,
        height=50,
    )
    try:
        term.wait_for("updated ")
        term.keys("/")
        term.wait_for("filter by name")
        term.keys(*prefix)
        term.keys("Enter")
        screen = term.wait_for(f"filter: '{prefix}'")
        screen = term.wait_for(f"{prefix}-model-2")
        lines = screen.splitlines()
        header = next(line for line in lines if "NAME" in line)
        assert header.split()[:2] == ["NAME", "▲"] and "HOST" not in header.split()

        def at(text: str) -> int:
            return next(n for n, line in enumerate(lines) if text in line)

        first_host, second_host = at(f"▣ {host_label(engine.url)}"), at(f"▣ {second_label}")
        assert first_host < at(f"{prefix}-model-1") < second_host < at(f"{prefix}-model-2")
        term.keys("q")
        screen = term.wait_for("EXIT=0")
        assert "Traceback" not in screen
    finally:
        term.close()


def test_host_and_context_are_repeatable_and_an_unknown_context_is_one_line():
    from tui.cli import build_parser

    args = build_parser().parse_args(
        ["--host", "tcp://a:1", "--host", "ssh://me@b", "--context", "c"]
    )
    assert (args.host, args.context) == (["tcp://a:1", "ssh://me@b"], ["c"])
    out = subprocess.run(
        [sys.executable, "-m", "tui", "--context", "no-such-context", "snapshot", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert (
        out.stderr == "aitop: no docker context named 'no-such-context' (see `docker context ls`)\n"
    )
