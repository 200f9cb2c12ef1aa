"""A real multi-node Docker Swarm on this machine, for the tests (issue 13): three dockerds, each
in a network namespace of its own, joined into one swarm.

The layout (a random tag keeps parallel runs and leftovers apart):

- a bridge `aitopsw<tag>` with 10.213.X.1/24 (X random) in the host's namespace;
- per node n: a network namespace `aitop-sw<tag>-<n>`, a veth pair whose inner end has
  10.213.X.1n/24, and a dockerd started with `nsenter --net=... unshare --uts` (its own
  hostname `node<n>`; `ip netns exec` would remount /sys and dockerd then finds no cgroups),
  its socket, data and exec roots under /tmp/aitop-sw<tag>-<n> (short: a unix socket path
  holds at most 108 bytes);
- one rule `iptables -I FORWARD 1 -i <bridge> -o <bridge> -j ACCEPT`: the host's FORWARD
  policy is DROP and bridge-nf-call-iptables is on, so the nodes could not talk without it.

Node 1 initialises the swarm and is its only manager; the others join as workers. Each node
builds the test image itself (there is no registry: services use the local image as is).
Nothing touches the host's own dockerd, its docker0 or its other rules: every dockerd runs
with `--iptables=false`, and its docker0 is inside its own namespace. `teardown()` undoes
everything, also after a failed `setup()`, and may be called twice; a run killed before its
teardown leaves an owner file naming its pid, and the next `setup()` sweeps that rig away.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.helpers import TEST_IMAGE, TEST_LABEL, dockerd_argv, poll, start_daemon, stop_daemon
from tui.fleet.demo import build_busybox_image
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.swarm import SwarmService, SwarmSnapshot, read_swarm

TOOLS = ("ip", "iptables", "dockerd", "docker", "nsenter", "unshare")
"""What the rig runs (besides root)."""
START_TIMEOUT = 60.0
"""Seconds a node's dockerd has to answer."""
READY_TIMEOUT = 60.0
"""Seconds the nodes have to be Ready in the swarm."""
SWARM_GPUS: dict[int, tuple[str, ...]] = {
    2: ("GPU-5e1f0a2b-0000-4000-8000-000000000201",),
    3: ("GPU-5e1f0a2b-0000-4000-8000-000000000301", "GPU-5e1f0a2b-0000-4000-8000-000000000302"),
}
"""The GPUs the tests' nodes advertise (`gpu` generic resources): none on node1, one on
node2, two on node3. Made-up UUIDs: the swarm only counts and hands them out."""


class RigError(RuntimeError):
    """The rig could not be set up; `str()` says which step and the engine's words."""


def missing() -> str | None:
    """Why the rig cannot run here (not root, a tool missing), or None when it can."""
    if os.geteuid() != 0:
        return "a multi-node swarm needs root (network namespaces, dockerds)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return f"a multi-node swarm needs {', '.join(absent)}"
    return None


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise RigError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass
class Node:
    """One dockerd of the swarm, in its network namespace."""

    number: int
    tag: str
    subnet: int
    gpus: tuple[str, ...] = ()
    """GPU ids it advertises as the generic resource `gpu` (`--node-generic-resource`)."""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def hostname(self) -> str:
        """Its hostname inside its UTS namespace (the swarm's node hostname)."""
        return f"node{self.number}"

    @property
    def netns(self) -> str:
        """Its network namespace's name."""
        return f"aitop-sw{self.tag}-{self.number}"

    @property
    def root(self) -> Path:
        """Its socket, data and exec directories (and the dockerd log)."""
        return Path(f"/tmp/aitop-sw{self.tag}-{self.number}")

    @property
    def url(self) -> str:
        """Its engine's URL."""
        return f"unix://{self.root}/docker.sock"

    @property
    def addr(self) -> str:
        """Its address on the rig's bridge."""
        return f"10.213.{self.subnet}.{10 + self.number}"

    @property
    def veth(self) -> tuple[str, str]:
        """The host end and the namespace end of its veth pair (15 characters at most)."""
        return f"as{self.tag}{self.number}h", f"as{self.tag}{self.number}n"

    def argv(self) -> list[str]:
        """How its dockerd is started: in its own network and UTS namespaces."""
        dockerd = dockerd_argv(
            self.root, self.url, *(f"--node-generic-resource=gpu={g}" for g in self.gpus)
        )
        script = f"hostname {self.hostname}; exec {' '.join(dockerd)}"
        return [
            "nsenter",
            f"--net=/var/run/netns/{self.netns}",
            "unshare",
            "--uts",
            "sh",
            "-c",
            script,
        ]

    def start(self) -> None:
        """Start its dockerd and wait until it answers; RigError (with its log) if not."""
        self.root.mkdir(exist_ok=True)
        self.proc, failed = start_daemon(
            self.argv(), self.root / "dockerd.log", self.url, START_TIMEOUT
        )
        if failed is not None:
            raise RigError(f"{self.hostname}'s dockerd did not start:\n{failed}")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop its dockerd (SIGTERM, then SIGKILL after `timeout` s); the node goes down."""
        stop_daemon(self.proc, timeout)
        self.proc = None

    @property
    def running(self) -> bool:
        """True while its dockerd runs."""
        return self.proc is not None and self.proc.poll() is None

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Docker's own command against this node."""
        return _run(["docker", "-H", self.url, *args], check=check)


class SwarmRig:
    """Three dockerds in network namespaces of their own, one swarm: node1 the manager.

    `gpus` maps a node number to the GPU ids it advertises (`gpu` generic resources).
    """

    def __init__(self, count: int = 3, *, gpus: Mapping[int, Sequence[str]] | None = None) -> None:
        self.tag = secrets.token_hex(2)
        while owner_file(self.tag).exists():  # another run's (or a dead run's, until swept)
            self.tag = secrets.token_hex(2)
        self.subnet = self._free_subnet()
        self.bridge = f"aitopsw{self.tag}"
        self.nodes = [
            Node(n, self.tag, self.subnet, tuple((gpus or {}).get(n, ())))
            for n in range(1, count + 1)
        ]
        self._forward = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        self._made: list[Callable[[], object]] = []
        """What to undo, in the order it was done (undone last first)."""

    @property
    def manager(self) -> Node:
        """The node that initialised the swarm (its only manager)."""
        return self.nodes[0]

    def node(self, hostname: str) -> Node:
        """The node with this hostname."""
        return next(n for n in self.nodes if n.hostname == hostname)

    @staticmethod
    def _free_subnet() -> int:
        used = _run(["ip", "-4", "-o", "addr"], check=False).stdout
        for _ in range(50):
            x = secrets.randbelow(250) + 1
            if f"10.213.{x}." not in used:
                return x
        raise RigError("no free 10.213.X.0/24 subnet")

    # --- setting up -----------------------------------------------------------------------

    def setup(self) -> None:
        """Bridge, namespaces, dockerds (started in parallel), the test image on each, the
        swarm, and every node Ready. On a failure everything made so far is undone."""
        sweep_stale()
        try:
            self._claim()
            self._network()
            # Registered first: a node that fails to start must not leave the others running.
            self._made.append(self._stop_all)
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(lambda n: n.start(), self.nodes))
                list(pool.map(self._build_image, self.nodes))
            self._form_swarm()
            self.wait_ready()
        except BaseException:
            self.teardown()
            raise

    @property
    def owner_file(self) -> Path:
        """Who made this rig (its pid) and how many nodes: a later run sweeps the rig of a
        run that was killed before its teardown (`sweep_stale`)."""
        return owner_file(self.tag)

    def _claim(self) -> None:
        self.owner_file.write_text(json.dumps({"pid": os.getpid(), "nodes": len(self.nodes)}))
        self._made.append(partial(self.owner_file.unlink, missing_ok=True))

    def _network(self) -> None:
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self._made.append(lambda: _run(["ip", "link", "del", self.bridge], check=False))
        _run(["ip", "addr", "add", f"10.213.{self.subnet}.1/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        _run(["iptables", "-I", *self._forward[:1], "1", *self._forward[1:]])
        self._made.append(lambda: _run(["iptables", "-D", *self._forward], check=False))
        for node in self.nodes:
            host_end, inner = node.veth
            _run(["ip", "netns", "add", node.netns])
            self._made.append(partial(_run, ["ip", "netns", "del", node.netns], check=False))
            _run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", inner])
            self._made.append(partial(_run, ["ip", "link", "del", host_end], check=False))
            _run(["ip", "link", "set", inner, "netns", node.netns])
            inside = ["ip", "-n", node.netns]
            _run([*inside, "addr", "add", f"{node.addr}/24", "dev", inner])
            _run([*inside, "link", "set", inner, "up"])
            _run([*inside, "link", "set", "lo", "up"])
            _run(["ip", "link", "set", host_end, "master", self.bridge])
            _run(["ip", "link", "set", host_end, "up"])
            self._made.append(partial(_remove_root, node.root))

    @staticmethod
    def _build_image(node: Node) -> None:
        eng = Engine(node.url, timeout=60)
        try:
            build_busybox_image(eng, TEST_IMAGE)
        except EngineError as exc:
            raise RigError(f"building the test image on {node.hostname} failed: {exc}") from exc
        finally:
            eng.close()

    def _form_swarm(self) -> None:
        mgr = self.manager
        mgr.docker("swarm", "init", "--advertise-addr", mgr.addr)
        token = mgr.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            joins = [
                pool.submit(n.docker, "swarm", "join", "--token", token, f"{mgr.addr}:2377")
                for n in self.nodes[1:]
            ]
            for join in joins:
                join.result()

    def node_states(self) -> dict[str, str]:
        """Each node's hostname and state as the manager sees it ("ready", "down", ...)."""
        out = self.manager.docker(
            "node", "ls", "--format", "{{.Hostname}} {{.Status}}", check=False
        ).stdout
        return {
            host: state.lower()
            for host, _, state in (line.partition(" ") for line in out.splitlines())
        }

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every node is Ready in the swarm; RigError saying which are not."""
        want = {n.hostname for n in self.nodes}

        def ready() -> bool:
            states = self.node_states()
            return all(states.get(h) == "ready" for h in want)

        if not poll(ready, timeout, step=0.2):
            raise RigError(f"swarm nodes not Ready within {timeout}s: {self.node_states()}")

    def restart(self, node: Node) -> None:
        """Start a stopped node's dockerd again and wait until the swarm has it Ready."""
        node.start()
        self.wait_ready()

    # --- tearing down ---------------------------------------------------------------------

    def _stop_all(self) -> None:
        # The services first, so that the dockerds have no containers left to stop.
        if self.manager.running:
            names = self.manager.docker("service", "ls", "-q", check=False).stdout.split()
            if names:
                self.manager.docker("service", "rm", *names, check=False)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.stop(), self.nodes))

    def teardown(self) -> None:
        """Undo everything `setup()` did, last step first; errors are ignored (it runs after
        failures too), and a second call does nothing."""
        while self._made:
            undo = self._made.pop()
            with contextlib.suppress(Exception):
                undo()


def owner_file(tag: str) -> Path:
    """The file that names the process owning the rig with this tag."""
    return Path(f"/tmp/aitop-sw{tag}.owner")


def _alive(pid: int) -> bool:
    """True while the process exists and is no zombie (a killed run nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _gone(pid: int) -> bool:
    return not _alive(pid)


def sweep_stale() -> list[str]:
    """Remove the rigs of runs that died before their teardown (killed by a timeout, say):
    their dockerds (by pid file), directories, veths, namespaces, FORWARD rule and bridge,
    all found by the tag in their names. Returns the tags swept."""
    swept: list[str] = []
    for path in Path("/tmp").glob("aitop-sw*.owner"):
        tag = path.name[len("aitop-sw") : -len(".owner")]
        try:
            owner = json.loads(path.read_text())
            pid, count = int(owner["pid"]), int(owner["nodes"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid):
            continue
        nodes = [Node(n, tag, 0) for n in range(1, count + 1)]
        for node in nodes:
            with contextlib.suppress(OSError, ValueError):
                daemon = int((node.root / "docker.pid").read_text())
                os.kill(daemon, signal.SIGTERM)
                if poll(partial(_gone, daemon), 30, 0.2) is None:
                    os.kill(daemon, signal.SIGKILL)
        bridge = f"aitopsw{tag}"
        for node in nodes:
            _remove_root(node.root)
            _run(["ip", "link", "del", node.veth[0]], check=False)
            _run(["ip", "netns", "del", node.netns], check=False)
        rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
        _run(["iptables", "-D", *rule], check=False)
        _run(["ip", "link", "del", bridge], check=False)
        path.unlink(missing_ok=True)
        swept.append(tag)
    return swept


def _remove_root(root: Path) -> None:
    """Unmount what a dockerd left mounted under `root` (deepest first), then remove it."""
    prefix = f"{root}/"
    for _ in range(3):
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)
        ]
        if not mounts:
            break
        for mount in sorted(mounts, key=len, reverse=True):
            _run(["umount", "-l", mount], check=False)
        time.sleep(0.1)  # lazy unmounts finish in the background
    shutil.rmtree(root, ignore_errors=True)


# --- what the swarm tests share ------------------------------------------------------------

HOSTS = ("node1", "node2", "node3")
"""The rig's nodes' hostnames."""


def read(engine: Engine) -> SwarmSnapshot:
    """The swarm as its manager knows it now (a test fails when it is no manager)."""
    snap = read_swarm(engine)
    assert snap is not None, "the manager said it is no swarm manager"
    return snap


@contextmanager
def service(
    rig: SwarmRig, replicas: int, *extra: str, command: str = "sleep 3600"
) -> Iterator[str]:
    """A replicated service of the test image, removed afterwards (its tasks with it)."""
    name = f"aitop-test-{uuid.uuid4().hex[:6]}"
    rig.manager.docker(
        "service", "create", "--detach", "--name", name, "--label", f"{TEST_LABEL}=swarm",
        "--replicas", str(replicas), "--no-resolve-image", "--stop-grace-period", "1s",
        *extra, TEST_IMAGE, "sh", "-c", command,
    )  # fmt: skip
    try:
        yield name
    finally:
        rig.manager.docker("service", "rm", name, check=False)


def converged(engine: Engine, name: str, count: int) -> Callable[[], SwarmService | None]:
    """A predicate: the service, once `count` tasks meant to run all run (and no others)."""

    def check() -> SwarmService | None:
        svc = read(engine).service(name)
        if svc is None or svc.desired != count or svc.running != count:
            return None
        meant = [t for t in svc.tasks if t.desired_state == "running"]
        return svc if len(meant) == count else None

    return check
