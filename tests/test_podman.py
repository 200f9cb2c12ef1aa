"""Podman: found when no Docker engine answers, used through its Docker-compatible API.

A private `podman system service` is started on its own socket below a private
XDG_RUNTIME_DIR, so nothing of the machine's own engines is touched; resolution is pointed at
test-controlled paths instead of depending on the real Docker socket going away. The engine
tests skip where podman is not installed, unless CI / AITOP_REQUIRE_ENGINE make that a failure.
The cgroup layout tests need no Podman: they read file trees laid out as the kernel does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import docker.errors  # noqa: TID251 - to raise the SDK's own error, as a Podman answer does
import pytest

import tui.fleet.engine.urls as urls_mod
from tests.helpers import (
    TEST_LABEL,
    pilot_wait_for,
    start_daemon,
    stop_daemon,
    swarm_state,
    unavailable,
    wait_for,
)
from tui.fleet.demo import build_busybox_image
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError, Unsupported
from tui.fleet.engine.urls import podman_sockets, resolve_url
from tui.fleet.metrics.cgroups import CgroupReader
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from tui.fleet.snapshot import snapshot_json

PODMAN_IMAGE = "aitop-test-busybox:latest"
CID = "b" * 64


# --- resolution (no Podman needed) ------------------------------------------------------------


def test_podman_socket_order_root_and_user():
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert podman_sockets(env, uid=1000) == [
        "/run/user/1000/podman/podman.sock",
        "/run/podman/podman.sock",
    ]
    env = {"XDG_RUNTIME_DIR": "/tmp/xdg"}
    assert podman_sockets(env, uid=0) == [
        "/run/podman/podman.sock",
        "/tmp/xdg/podman/podman.sock",
        "/run/user/0/podman/podman.sock",
    ]


@pytest.fixture
def no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DOCKER_HOST, no docker context, and a default Docker socket that refuses."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    # A socket file nobody listens on: connecting is refused, as with a stopped dockerd.
    refusing = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(refusing))
    sock.close()
    monkeypatch.setattr(urls_mod, "DEFAULT_URL", f"unix://{refusing}")
    monkeypatch.setattr(urls_mod, "PODMAN_ROOTFUL_SOCKET", str(tmp_path / "no-rootful.sock"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-xdg"))
    return refusing


def test_nothing_answers_says_so_naming_podman(no_docker: Path, monkeypatch):
    url, source = resolve_url(podman=[str(no_docker.parent / "missing.sock")])
    assert (url, source) == (f"unix://{no_docker}", "default")
    eng = Engine(timeout=2)
    monkeypatch.setattr(urls_mod, "podman_sockets", lambda: [])
    with pytest.raises(EngineError) as err:
        eng.version()
    message = str(err.value)
    assert "\n" not in message
    assert "refused the connection" in message and "no Podman socket answers either" in message


# --- cgroup layouts (recorded file trees) -----------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class _RemovedHalfway:
    """An SDK client that answers inspect as Podman 4.3 did for a container removed mid-request."""

    def inspect_container(self, container_id: str) -> dict:
        raise docker.errors.APIError(
            "500 Server Error: Internal Server Error",
            explanation=f"container {container_id} does not exist in database: no such container",
        )


def test_inspect_meeting_a_removal_is_container_gone_not_engine_lost(monkeypatch):
    # Recorded under load on Podman 4.3.1: the "die" event's inspect got this 500, and the
    # monitor took the engine for lost (closing every stream) instead of dropping one row.
    eng = Engine("unix:///nonexistent/podman.sock")
    monkeypatch.setattr(eng, "_api", _RemovedHalfway)
    with pytest.raises(ContainerGone):
        eng.inspect(CID)
    monitor = FleetMonitor(eng)
    event = {"Type": "container", "Action": "die", "id": CID, "Actor": {"ID": CID}}
    assert monitor.apply_event(event) is True
    assert monitor.snapshot().containers == ()
    # Any other 500 still says the engine failed.
    monkeypatch.setattr(
        eng, "_api", lambda: _raise(docker.errors.APIError("500", explanation="database is locked"))
    )
    with pytest.raises(EngineError) as failed:
        eng.inspect(CID)
    assert not isinstance(failed.value, ContainerGone)


def _raise(exc: BaseException) -> NoReturn:
    raise exc


def test_cgroup_v1_cgroupfs_libpod_parent(tmp_path):
    sys_root = tmp_path / "sys"
    rel = f"libpod_parent/libpod-{CID}"
    _write(sys_root / "cpuacct" / rel / "cpuacct.usage", "7000000000\n")
    mem = sys_root / "memory" / rel
    _write(mem / "memory.usage_in_bytes", "83886080\n")
    _write(mem / "memory.limit_in_bytes", "268435456\n")
    _write(mem / "memory.stat", "cache 0\ntotal_inactive_file 4194304\n")
    _write(mem / "cgroup.procs", "4242\n")
    # conmon shares one cgroup for every container under cgroupfs: it must not be indexed.
    _write(sys_root / "memory" / "libpod_parent" / "conmon" / "cgroup.procs", "4000\n")
    mounts = "".join(
        f"cgroup {sys_root / ctl} cgroup rw,nosuid,nodev,noexec,relatime,{ctl} 0 0\n"
        for ctl in ("cpuacct", "memory", "blkio")
    )
    proc = tmp_path / "proc"
    _write(proc / "self" / "mounts", mounts)
    _write(
        proc / "4242" / "cgroup",
        "".join(f"{n}:{ctl}:/{rel}\n" for n, ctl in enumerate(("cpuacct", "memory", "blkio"), 1))
        + f"0::/{rel}\n",
    )
    reader = CgroupReader(proc_root=str(proc))
    by_pid = reader.locate(4242, CID)
    by_id = reader.find(CID)
    assert by_pid is not None and by_id is not None
    assert by_pid == by_id
    assert by_pid.memory == str(mem) and by_pid.version == 1
    raw = reader.read(by_pid, at=1.0)
    assert (raw.cpu_ns, raw.mem_usage, raw.mem_inactive_file, raw.mem_limit) == (
        7_000_000_000,
        83886080,
        4194304,
        268435456,
    )


def test_cgroup_v2_systemd_skips_conmon_and_finds_nested_container(tmp_path):
    sys_root = tmp_path / "sys"
    slice_ = sys_root / "machine.slice"
    # Podman under systemd: conmon in its own scope named after the container, the container's
    # processes one level down in the scope (cgroup v2 keeps processes in leaves).
    _write(slice_ / f"libpod-conmon-{CID}.scope" / "cgroup.procs", "3999\n")
    _write(slice_ / f"libpod-conmon-{CID}.scope" / "memory.current", "1000000\n")
    scope = slice_ / f"libpod-{CID}.scope"
    _write(scope / "cgroup.procs", "")
    _write(scope / "memory.current", "52428800\n")
    _write(scope / "memory.max", "max\n")
    _write(scope / "cpu.stat", "usage_usec 1500000\n")
    _write(scope / "container" / "cgroup.procs", "5151\n")
    proc = tmp_path / "proc"
    _write(proc / "self" / "mounts", f"cgroup2 {sys_root} cgroup2 rw,nosuid,nodev 0 0\n")
    reader = CgroupReader(proc_root=str(proc))
    found = reader.find(CID)
    assert found is not None
    assert found.memory == str(scope) and found.pid == 5151
    raw = reader.read(found, at=1.0)
    assert (raw.cpu_ns, raw.mem_usage, raw.mem_limit) == (1_500_000_000, 52428800, None)


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of one process, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# --- a real Podman service ------------------------------------------------------------------


def _no_podman(reason: str) -> NoReturn:
    unavailable("Podman", reason)


class PodmanService:
    """`podman system service` on a private socket below a private XDG_RUNTIME_DIR."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime_dir = root / "xdg"
        self.socket = self.runtime_dir / "podman" / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.socket.parent.mkdir(parents=True)
        self.proc, failed = start_daemon(
            ["podman", "system", "service", "--time=0", self.url],
            self.root / "service.log",
            self.url,
            timeout,
        )
        if failed is not None:
            _no_podman(f"podman system service did not start:\n{failed}")

    def stop(self) -> None:
        stop_daemon(self.proc, 20)


@pytest.fixture(scope="module")
def podman_service(session_tag: str) -> Iterator[PodmanService]:
    """A private Podman service with the test image in its storage."""
    if shutil.which("podman") is None:
        _no_podman("podman is not installed (apt-get install podman)")
    # Short path: unix socket paths are limited to 108 bytes.
    root = Path(f"/tmp/aitop-podman-{uuid.uuid4().hex[:6]}")
    root.mkdir()
    service = PodmanService(root)
    try:
        service.start()
        eng = Engine(service.url, timeout=120)
        if not eng.has_image(PODMAN_IMAGE):
            build_busybox_image(eng, PODMAN_IMAGE)
        eng.close()
        yield service
    finally:
        leftovers = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={TEST_LABEL}={session_tag}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if leftovers:
            subprocess.run(["podman", "rm", "-f", *leftovers], capture_output=True, check=False)
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def podman(podman_service: PodmanService) -> Iterator[Engine]:
    """An engine on the private Podman socket (by its URL)."""
    eng = Engine(podman_service.url, timeout=30)
    yield eng
    eng.close()


@pytest.fixture
def run_podman(podman: Engine, session_tag: str) -> Iterator:
    """Start labelled containers on Podman (no network: none is needed); removed afterwards."""
    made: list[str] = []

    def run(command: str, **kw) -> str:
        labels = {TEST_LABEL: session_tag, **kw.pop("labels", {})}
        cid = podman.run(
            PODMAN_IMAGE,
            ["sh", "-c", command],
            labels=labels,
            name=f"aitop-pm-{uuid.uuid4().hex[:8]}",
            network_mode="none",
            **kw,
        )
        made.append(cid)
        return cid

    yield run
    for cid in made:
        podman.remove(cid)


def test_discovery_without_docker_finds_rootless_socket(
    podman_service: PodmanService, no_docker: Path, monkeypatch
):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(podman_service.runtime_dir))
    eng = Engine(timeout=10)
    try:
        assert eng.url == podman_service.url
        assert eng.url_source == "podman socket (rootless)"
        answer = eng.version()
        assert eng.product == "Podman" and eng.is_podman
        names = [c["Name"] for c in answer["Components"]]
        assert "Podman Engine" in names
        assert eng.product_version == answer["Version"]
    finally:
        eng.close()


def test_fleet_figures_from_podman_cgroups(podman: Engine, run_podman):
    busy = run_podman("while :; do :; done", labels={"aitop.model": "busy"})
    # 48 MiB written to /dev/shm is memory the container holds (shmem, never "inactive file").
    holder = run_podman(
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && sleep 3600",
        labels={"aitop.model": "holder"},
        mem_limit="256m",
    )
    monitor = FleetMonitor(podman)
    status = monitor.connect()
    assert status.stats_source == "cgroup"
    monitor.resync()
    pid = podman.inspect(busy)["State"]["Pid"]

    def figures():
        # The busy loop's own CPU time, read beside each sample: what the figure must match.
        monitor.sample()
        ticks0, at0 = _cpu_ticks(pid), time.monotonic()
        time.sleep(1.0)  # the passing of time: a CPU share is measured over an interval
        monitor.sample()
        ticks1, at1 = _cpu_ticks(pid), time.monotonic()
        snap = {c.info.id: c for c in monitor.snapshot().containers}
        held = snap[holder].stats.mem_bytes or 0
        expected = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / (at1 - at0) * 100
        return (snap, expected) if held >= 48 << 20 else None

    snap, expected = wait_for(figures, timeout=30, step=0.1)
    monitor.stop()
    busy_stats, held_stats = snap[busy].stats, snap[holder].stats
    assert busy_stats.source == "cgroup"
    # ~100% on an idle machine; on a contended one the loop gets less, and the figure says so.
    assert busy_stats.cpu_percent is not None
    assert abs(busy_stats.cpu_percent - expected) <= 10.0, (busy_stats.cpu_percent, expected)
    assert busy_stats.cpu_percent >= 25.0
    assert held_stats.cpu_percent is not None and held_stats.cpu_percent < 5.0
    assert 48 << 20 <= held_stats.mem_bytes <= 64 << 20
    assert held_stats.mem_limit_bytes == 256 << 20
    # Podman's own stats API reads the same cgroup: usage agrees within a few MiB.
    readings = podman.stats_stream(holder)
    api_usage = next(iter(readings))["memory_stats"]["usage"]
    readings.close()
    assert abs(api_usage - held_stats.mem_bytes) <= 8 << 20

    # The cgroup is the one the process lives in, found by PID and by id alike.
    reader = CgroupReader()
    by_pid, by_id = reader.locate(pid, busy), reader.find(busy)
    assert by_pid is not None and by_id is not None
    assert by_pid.memory == by_id.memory and busy in by_pid.memory
    text = Path(f"/proc/{pid}/cgroup").read_text()
    assert by_pid.memory.endswith(text.split(":memory:", 1)[1].splitlines()[0])


def test_events_use_docker_names_and_removal_leaves_the_fleet(podman: Engine, run_podman):
    cid = run_podman("sleep 3600")
    stream = podman.container_events([cid])
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(e.get("Action", "") for e in stream), daemon=True
    )
    reader.start()
    snapshots: list[FleetSnapshot] = []
    monitor = FleetMonitor(podman, on_snapshot=snapshots.append)
    monitor.start()
    try:
        wait_for(lambda: any(cid in {c.info.id for c in s.containers} for s in snapshots), 30)
        podman.remove(cid)
        # Podman says "remove"; the monitor must see Docker's "destroy" and drop the container.
        wait_for(lambda: cid not in {c.info.id for c in monitor.snapshot().containers}, 15)
        # Podman hands events out through its event log: on a loaded machine (the whole suite
        # on two cores) a subscriber has seen them arrive over 10 s late.
        wait_for(lambda: "destroy" in seen, 30)
    finally:
        monitor.stop()
        stream.close()
    assert "die" in seen and "remove" not in seen


def test_snapshot_json_and_status_line_name_podman(podman: Engine, run_podman):
    run_podman("sleep 3600", labels={"aitop.model": "tiny-llm"})
    doc = json.loads(json.dumps(snapshot_json(podman)))
    host = doc["hosts"][0]
    assert host["engine"] == "Podman"
    assert host["engine_version"] == podman.product_version
    assert any("swarm" in line for line in host["engine_limitations"])
    assert any(c["model"] == "tiny-llm" for c in host["containers"])


async def test_status_line_says_podman(podman: Engine, run_podman):
    from tui.app import AitopApp
    from tui.config import Config
    from widgets.status_line import StatusLine

    run_podman("sleep 3600", labels={"aitop.model": "tiny-llm"})
    podman.version()
    app = AitopApp([FleetMonitor(podman)], config=Config())
    async with app.run_test(size=(200, 40)) as pilot:
        line = app.query_one(StatusLine)
        await pilot_wait_for(pilot, lambda: "Podman" in str(line.render()), timeout=10)
        text = str(line.render())
    assert f"Podman {podman.product_version}" in text
    assert podman.url in text


def test_lacking_api_reported_not_crashing(podman: Engine, run_podman):
    with pytest.raises(Unsupported) as err:
        podman.inspect_service("llama")
    assert "Podman" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(Unsupported):
        podman.scale_service("llama", 3)
    assert swarm_state(podman) == "inactive"
    # A finished, empty log: Podman answers with Content-Length 0 and keeps the connection
    # open. Reading it must end at once rather than wait for more.
    quiet = run_podman("sleep 3600")
    started = time.monotonic()
    with podman.open_logs(quiet, follow=False, tail=10) as logs:
        assert logs.read() == []
    assert time.monotonic() - started < 3.0


def test_service_stopped_is_one_line_naming_podman(tmp_path):
    eng = Engine(f"unix://{tmp_path}/podman/podman.sock", timeout=2)
    with pytest.raises(EngineError) as err:
        eng.version()
    message = str(err.value)
    assert "no Podman service" in message and "podman system service" in message
    assert "\n" not in message and str(tmp_path) in message
