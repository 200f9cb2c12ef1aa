"""A Docker Swarm seen from its manager, as one fleet (issue 13): the nodes (with the GPUs they
advertise as generic resources), the services and every task of every service, as immutable
snapshots; draining or activating a node; and where one more task of a service can go.

`read_swarm(engine)` makes three list calls on the manager (nodes, services, all tasks: what
`docker node ls` and one `docker service ps` per service show) and returns None for an engine
that is no swarm manager. Every name in it is the engine's untrusted text, made safe here.

GPUs: a node advertises them as generic resources (`dockerd --node-generic-resource
gpu=GPU-uuid`, named; or `gpu=2`, a count); a kind whose name has "gpu" in it (any case:
"gpu", "NVIDIA-GPU") counts as GPUs. A service reserves them with `--generic-resource gpu=1`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.sanitize import safe_text

AVAILABILITIES = ("active", "pause", "drain")
"""What a node's availability can be set to (`docker node update --availability`)."""
TERMINAL_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "remove", "orphaned"})
"""Task states after which a task holds nothing on its node (the swarm's names)."""


# --- the snapshot -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenericResource:
    """One kind of generic resource a node advertises or a task reserves."""

    kind: str
    """Its name ("gpu", "NVIDIA-GPU", ...)."""
    count: int
    """How many: the number of named ids, or a discrete count."""
    ids: tuple[str, ...] = ()
    """The named resources (GPU UUIDs); empty for a discrete count."""

    @property
    def is_gpu(self) -> bool:
        """True for a kind that names GPUs (see the module docstring)."""
        return "gpu" in self.kind.lower()


@dataclass(frozen=True)
class SwarmNode:
    """One node of the swarm, as the manager knows it."""

    id: str
    hostname: str
    role: str
    """ "manager" or "worker"."""
    availability: str
    """ "active", "pause" or "drain"."""
    state: str
    """ "ready", "down", "unknown" or "disconnected"."""
    engine_version: str
    addr: str = ""
    leader: bool = False
    resources: tuple[GenericResource, ...] = ()
    """The generic resources it advertises, one entry per kind."""
    labels: Mapping[str, str] | None = None
    """Its node labels (`docker node update --label-add`)."""
    engine_labels: Mapping[str, str] | None = None
    """Its engine's labels (`dockerd --label`)."""
    os: str = ""
    arch: str = ""
    nano_cpus: int = 0
    memory_bytes: int = 0

    @property
    def gpus(self) -> tuple[GenericResource, ...]:
        """The generic resources that are GPUs."""
        return tuple(r for r in self.resources if r.is_gpu)

    def advertised(self, kind: str) -> int:
        """How many of `kind` it advertises."""
        return sum(r.count for r in self.resources if r.kind == kind)


@dataclass(frozen=True)
class SwarmTask:
    """One task of a service (a row of `docker service ps`)."""

    id: str
    service_id: str
    slot: int | None
    """Its replica slot; None for a global service's task (one per node)."""
    node_id: str
    """"" while it is not assigned to a node."""
    node_hostname: str
    """The node's hostname; "" when not assigned or the node is gone."""
    state: str
    """As the swarm names it: "new", "pending", "assigned", "preparing", "starting",
    "running", "complete", "shutdown", "failed", "rejected", "orphaned", ..."""
    desired_state: str
    error: str
    """`Status.Err`: why it failed or was rejected; "" when nothing went wrong."""
    container_id: str
    """"" until the node created its container."""
    message: str = ""
    """`Status.Message`: what it is doing ("started", "preparing", ...)."""
    updated_at: str = ""
    reserves: tuple[GenericResource, ...] = ()
    """The generic resources it reserves (its spec's, as the service had it then)."""
    reserves_nano_cpus: int = 0
    reserves_memory_bytes: int = 0

    @property
    def holds(self) -> bool:
        """True while it holds its reservations on its node: meant to run, not yet ended."""
        return (
            bool(self.node_id)
            and self.desired_state in ("running", "ready", "accepted")
            and self.state not in TERMINAL_STATES
        )

    @property
    def name(self) -> str:
        """`docker service ps`'s NAME without the service: ".3" or ".<node id>"."""
        return f".{self.slot}" if self.slot is not None else f".{self.node_id[:12]}"


@dataclass(frozen=True)
class SwarmService:
    """One service with all its tasks (history included, newest first within a slot)."""

    id: str
    name: str
    mode: str
    """ "replicated", "global", "replicated-job" or "global-job"."""
    desired: int
    """Replicated: its replica count; global: the tasks meant to run (one per node)."""
    running: int
    """Tasks meant to run that run now."""
    tasks: tuple[SwarmTask, ...]
    image: str = ""
    constraints: tuple[str, ...] = ()
    """Its placement constraints ("node.role==worker", "node.labels.gpu==yes", ...)."""
    max_per_node: int = 0
    """Its placement's MaxReplicas (0: no limit)."""
    reserves: tuple[GenericResource, ...] = ()
    """What each task reserves (TaskTemplate.Resources.Reservations.GenericResources)."""
    reserves_nano_cpus: int = 0
    reserves_memory_bytes: int = 0

    @property
    def converged(self) -> bool:
        """True when every task meant to run runs."""
        return self.running == self.desired


@dataclass(frozen=True)
class SwarmSnapshot:
    """A swarm as its manager saw it at `taken_at`."""

    url: str
    """The manager's engine URL."""
    node_id: str
    """The manager's own node id."""
    nodes: tuple[SwarmNode, ...]
    services: tuple[SwarmService, ...]
    taken_at: float

    def node(self, node_id: str) -> SwarmNode | None:
        """The node with this id (or hostname)."""
        return next((n for n in self.nodes if node_id in (n.id, n.hostname)), None)

    def service(self, name: str) -> SwarmService | None:
        """The service with this name (or id)."""
        return next((s for s in self.services if name in (s.name, s.id)), None)

    def tasks_on(self, node_id: str) -> tuple[SwarmTask, ...]:
        """Every service's tasks on one node that are meant to run there now."""
        return tuple(
            t
            for s in self.services
            for t in s.tasks
            if t.node_id == node_id and t.desired_state == "running"
        )

    def task_of(self, container_id: str) -> SwarmTask | None:
        """The task whose container this is (full id), on whichever node: how a container
        aitop watches directly (several engines) is matched to its task."""
        if not container_id:
            return None
        return next(
            (t for s in self.services for t in s.tasks if t.container_id == container_id), None
        )

    def swarm_json(self) -> SwarmJson:
        """The `"swarm"` value of `aitop snapshot --json` (issue 13)."""
        return {
            "nodes": [_node_json(n) for n in self.nodes],
            "services": [_service_json(s) for s in self.services],
        }


# --- JSON ---------------------------------------------------------------------------------------


class GpuJson(TypedDict):
    """One GPU kind a node advertises: its named ids (empty for a plain count) and count."""

    kind: str
    ids: list[str]
    count: int


class NodeJson(TypedDict):
    """One entry of `swarm.nodes[]`."""

    id: str
    hostname: str
    role: str
    availability: str
    state: str
    engine_version: str
    gpus: list[GpuJson]


class TaskJson(TypedDict):
    """One entry of a service's `tasks[]` (a row of `docker service ps`)."""

    id: str
    slot: int | None
    node_id: str
    node_hostname: str
    state: str
    desired_state: str
    error: str
    container_id: str


class ServiceJson(TypedDict):
    """One entry of `swarm.services[]`."""

    name: str
    mode: str
    desired: int
    running: int
    tasks: list[TaskJson]


class SwarmJson(TypedDict):
    """A manager host's `"swarm"` in `aitop snapshot --json`."""

    nodes: list[NodeJson]
    services: list[ServiceJson]


def _node_json(n: SwarmNode) -> NodeJson:
    return {
        "id": n.id,
        "hostname": n.hostname,
        "role": n.role,
        "availability": n.availability,
        "state": n.state,
        "engine_version": n.engine_version,
        "gpus": [{"kind": g.kind, "ids": list(g.ids), "count": g.count} for g in n.gpus],
    }


def _service_json(s: SwarmService) -> ServiceJson:
    return {
        "name": s.name,
        "mode": s.mode,
        "desired": s.desired,
        "running": s.running,
        "tasks": [
            {
                "id": t.id,
                "slot": t.slot,
                "node_id": t.node_id,
                "node_hostname": t.node_hostname,
                "state": t.state,
                "desired_state": t.desired_state,
                "error": t.error,
                "container_id": t.container_id,
            }
            for t in s.tasks
        ],
    }


# --- reading ------------------------------------------------------------------------------------


def is_manager(engine: Engine) -> bool:
    """True when the engine is an active swarm's manager (it can list nodes and tasks)."""
    member = engine.swarm_membership()
    return member.get("LocalNodeState") == "active" and bool(member.get("ControlAvailable"))


def read_swarm(engine: Engine) -> SwarmSnapshot | None:
    """The swarm as `engine` (its manager) knows it now; None when it is no swarm manager.

    Raises EngineError when the engine does not answer (each call has the engine's timeout:
    a node that is down never makes this wait, the manager answers for it)."""
    member = engine.swarm_membership()
    if member.get("LocalNodeState") != "active" or not member.get("ControlAvailable"):
        return None
    return build_snapshot(
        engine.url,
        str(member.get("NodeID") or ""),
        engine.nodes(),
        engine.services(),
        engine.tasks(),
    )


def build_snapshot(
    url: str,
    node_id: str,
    nodes: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
) -> SwarmSnapshot:
    """A snapshot from the engine's JSON: `GET /nodes`, `/services`, `/tasks`."""
    swarm_nodes = tuple(sorted((_node(n) for n in nodes), key=lambda n: (n.hostname, n.id)))
    hostnames = {n.id: n.hostname for n in swarm_nodes}
    by_service: dict[str, list[SwarmTask]] = {}
    for raw in tasks:
        task = _task(raw, hostnames)
        by_service.setdefault(task.service_id, []).append(task)
    made = tuple(
        sorted(
            (_service(s, by_service.get(str(s.get("ID") or ""), [])) for s in services),
            key=lambda s: s.name,
        )
    )
    return SwarmSnapshot(safe_text(url), safe_text(node_id), swarm_nodes, made, time.time())


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _labels(value: object) -> dict[str, str]:
    return {safe_text(k): safe_text(v) for k, v in _dict(value).items()}


def generic_resources(entries: object) -> tuple[GenericResource, ...]:
    """The engine's GenericResources list (named and discrete specs), one entry per kind."""
    counts: dict[str, int] = {}
    ids: dict[str, list[str]] = {}
    for entry in entries if isinstance(entries, list) else ():
        named = _dict(_dict(entry).get("NamedResourceSpec"))
        discrete = _dict(_dict(entry).get("DiscreteResourceSpec"))
        if named:
            kind = safe_text(named.get("Kind") or "")
            counts[kind] = counts.get(kind, 0) + 1
            ids.setdefault(kind, []).append(safe_text(named.get("Value") or ""))
        elif discrete:
            kind = safe_text(discrete.get("Kind") or "")
            counts[kind] = counts.get(kind, 0) + _int(discrete.get("Value"))
    return tuple(
        GenericResource(kind, counts[kind], tuple(sorted(ids.get(kind, ())))) for kind in counts
    )


def _node(raw: Mapping[str, Any]) -> SwarmNode:
    spec = _dict(raw.get("Spec"))
    desc = _dict(raw.get("Description"))
    status = _dict(raw.get("Status"))
    engine = _dict(desc.get("Engine"))
    platform = _dict(desc.get("Platform"))
    res = _dict(desc.get("Resources"))
    return SwarmNode(
        id=safe_text(raw.get("ID") or ""),
        hostname=safe_text(desc.get("Hostname") or ""),
        role=safe_text(spec.get("Role") or ""),
        availability=safe_text(spec.get("Availability") or ""),
        state=safe_text(status.get("State") or ""),
        engine_version=safe_text(engine.get("EngineVersion") or ""),
        addr=safe_text(status.get("Addr") or ""),
        leader=bool(_dict(raw.get("ManagerStatus")).get("Leader")),
        resources=generic_resources(res.get("GenericResources")),
        labels=_labels(spec.get("Labels")),
        engine_labels=_labels(engine.get("Labels")),
        os=safe_text(platform.get("OS") or ""),
        arch=safe_text(platform.get("Architecture") or ""),
        nano_cpus=_int(res.get("NanoCPUs")),
        memory_bytes=_int(res.get("MemoryBytes")),
    )


def _reservations(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(_dict(_dict(spec.get("Resources")).get("Reservations")))


def _task(raw: Mapping[str, Any], hostnames: Mapping[str, str]) -> SwarmTask:
    status = _dict(raw.get("Status"))
    reserve = _reservations(_dict(raw.get("Spec")))
    node_id = safe_text(raw.get("NodeID") or "")
    slot = raw.get("Slot")
    return SwarmTask(
        id=safe_text(raw.get("ID") or ""),
        service_id=safe_text(raw.get("ServiceID") or ""),
        slot=_int(slot) if slot else None,
        node_id=node_id,
        node_hostname=hostnames.get(node_id, ""),
        state=safe_text(status.get("State") or ""),
        desired_state=safe_text(raw.get("DesiredState") or ""),
        error=safe_text(status.get("Err") or ""),
        container_id=safe_text(_dict(status.get("ContainerStatus")).get("ContainerID") or ""),
        message=safe_text(status.get("Message") or ""),
        updated_at=safe_text(raw.get("UpdatedAt") or ""),
        reserves=generic_resources(reserve.get("GenericResources")),
        reserves_nano_cpus=_int(reserve.get("NanoCPUs")),
        reserves_memory_bytes=_int(reserve.get("MemoryBytes")),
    )


def _mode(mode: Mapping[str, Any]) -> str:
    if "Global" in mode:
        return "global"
    if "ReplicatedJob" in mode:
        return "replicated-job"
    if "GlobalJob" in mode:
        return "global-job"
    return "replicated"


def _service(raw: Mapping[str, Any], tasks: list[SwarmTask]) -> SwarmService:
    spec = _dict(raw.get("Spec"))
    template = _dict(spec.get("TaskTemplate"))
    placement = _dict(template.get("Placement"))
    reserve = _reservations(template)
    mode_spec = _dict(spec.get("Mode"))
    mode = _mode(mode_spec)
    meant = [t for t in tasks if t.desired_state == "running"]
    if mode == "replicated":
        desired = _int(_dict(mode_spec.get("Replicated")).get("Replicas"))
    elif mode == "replicated-job":
        desired = _int(_dict(mode_spec.get("ReplicatedJob")).get("TotalCompletions") or 1)
    else:
        desired = len(meant)
    # `docker service ps`'s order: by slot (or node), the current task first, then its history.
    ordered = sorted(
        tasks,
        key=lambda t: (
            t.slot if t.slot is not None else 0,
            t.node_hostname if t.slot is None else "",
            t.desired_state != "running",
            _negated(t.updated_at),
        ),
    )
    image = safe_text(_dict(template.get("ContainerSpec")).get("Image") or "")
    return SwarmService(
        id=safe_text(raw.get("ID") or ""),
        name=safe_text(spec.get("Name") or ""),
        mode=mode,
        desired=desired,
        running=sum(1 for t in meant if t.state == "running"),
        tasks=tuple(ordered),
        image=image.split("@", 1)[0],
        constraints=tuple(safe_text(c) for c in placement.get("Constraints") or ()),
        max_per_node=_int(placement.get("MaxReplicas")),
        reserves=generic_resources(reserve.get("GenericResources")),
        reserves_nano_cpus=_int(reserve.get("NanoCPUs")),
        reserves_memory_bytes=_int(reserve.get("MemoryBytes")),
    )


def _negated(stamp: str) -> tuple[int, ...]:
    """A sort key that puts later RFC 3339 stamps first (they sort as text)."""
    return tuple(-ord(c) for c in stamp)


# --- draining and activating a node -------------------------------------------------------------


def availability_plan(swarm: SwarmSnapshot, node_id: str, availability: str) -> str:
    """What setting a node's availability will do, in words to ask the user with: the node,
    and for a drain the tasks that move away from it."""
    node = swarm.node(node_id)
    if node is None:
        return f"no node {safe_text(node_id)} in the swarm"
    if availability not in AVAILABILITIES:
        return f"unknown availability {safe_text(availability)}"
    if node.availability == availability:
        return f"node {node.hostname} is already {availability}: nothing changes"
    names = {s.id: s.name for s in swarm.services}
    tasks = [
        f"{names.get(t.service_id, t.service_id[:12])}{t.name}"
        for t in swarm.tasks_on(node.id)
        if t.state not in TERMINAL_STATES
    ]
    if availability == "drain":
        if not tasks:
            return (
                f"Drain node {node.hostname}: no task runs there; no new task will be placed on it"
            )
        return (
            f"Drain node {node.hostname}: its {len(tasks)} task"
            f"{'' if len(tasks) == 1 else 's'} stop there and move to other nodes "
            f"({', '.join(tasks)}); no new task will be placed on it"
        )
    if availability == "pause":
        return (
            f"Pause node {node.hostname}: its {len(tasks)} running tasks stay; no new task "
            "will be placed on it"
        )
    return (
        f"Activate node {node.hostname}: the swarm may place tasks on it again (running tasks "
        "do not move back by themselves)"
    )


def set_availability(engine: Engine, node_id: str, availability: str) -> None:
    """Drain, pause or activate a node (read-only mode refuses: EngineError); ask first."""
    engine.update_node_availability(node_id, availability)


# --- where one more task can go ------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one more task of a service can go: a node, or why none can."""

    service: str
    node: SwarmNode | None
    """The node the swarm can put it on (the one with the most free GPUs); None if none."""
    reason: str
    """Why that node, or why no node can take it (each node's reason)."""
    refused: tuple[tuple[str, str], ...] = ()
    """(hostname, why not) for each node that cannot take it."""

    @property
    def fits(self) -> bool:
        """True when some node can take one more task."""
        return self.node is not None


_CONSTRAINT_OPS = ("==", "!=")


def constraint_matches(node: SwarmNode, constraint: str) -> bool | None:
    """Whether a node satisfies one placement constraint ("node.role==worker"); None when
    the constraint names an attribute this does not know."""
    for op in _CONSTRAINT_OPS:
        key, found, want = constraint.partition(op)
        if found:
            break
    else:
        return None
    key, want = key.strip(), want.strip()
    value: str | None
    if key in ("node.id",):
        value = node.id
    elif key == "node.hostname":
        value = node.hostname
    elif key == "node.role":
        value = node.role
    elif key == "node.platform.os":
        value = node.os
    elif key == "node.platform.arch":
        value = node.arch
    elif key.startswith("node.labels."):
        value = (node.labels or {}).get(key[len("node.labels.") :])
    elif key.startswith("engine.labels."):
        value = (node.engine_labels or {}).get(key[len("engine.labels.") :])
    else:
        return None
    # The swarm compares names case-insensitively (node roles, hostnames, labels' values).
    same = value is not None and value.lower() == want.lower()
    return same if op == "==" else not same


def _why_not(swarm: SwarmSnapshot, service: SwarmService, node: SwarmNode) -> str:
    if node.state != "ready":
        return f"it is {node.state}"
    if node.availability != "active":
        return f"it is {'drained' if node.availability == 'drain' else 'paused'}"
    for constraint in service.constraints:
        match = constraint_matches(node, constraint)
        if match is None:
            return f"constraint {constraint} is not understood here"
        if not match:
            return f"constraint {constraint} does not hold"
    held = [t for s in swarm.services for t in s.tasks if t.node_id == node.id and t.holds]
    mine = sum(1 for t in held if t.service_id == service.id)
    if service.max_per_node and mine >= service.max_per_node:
        return f"it runs {mine} of {service.name}'s tasks, its most per node"
    if service.mode in ("global", "global-job") and mine:
        return f"{service.name} is global and runs there already"
    for want in service.reserves:
        have = node.advertised(want.kind)
        taken = sum(r.count for t in held for r in t.reserves if r.kind == want.kind)
        if have - taken < want.count:
            return (
                f"{max(have - taken, 0)} of {want.count} {want.kind} free "
                f"({have} advertised, {taken} reserved)"
            )
    if service.reserves_memory_bytes:
        free = node.memory_bytes - sum(t.reserves_memory_bytes for t in held)
        if free < service.reserves_memory_bytes:
            return "not enough memory left unreserved"
    if service.reserves_nano_cpus:
        free = node.nano_cpus - sum(t.reserves_nano_cpus for t in held)
        if free < service.reserves_nano_cpus:
            return "not enough CPUs left unreserved"
    return ""


def _free(swarm: SwarmSnapshot, node: SwarmNode, kind: str) -> int:
    held = [t for s in swarm.services for t in s.tasks if t.node_id == node.id and t.holds]
    return node.advertised(kind) - sum(r.count for t in held for r in t.reserves if r.kind == kind)


def placement_for_one_more(swarm: SwarmSnapshot, service: SwarmService | str) -> Placement:
    """On which node one more task of `service` can fit, or why none can: a node must be
    ready and active, satisfy the service's constraints and its most tasks per node, and
    have the generic resources (GPUs), memory and CPUs it reserves free (advertised minus
    what its tasks that hold them reserve). Of the nodes that fit, the one with the most
    free of the first reserved kind, then the fewest tasks of the service (the swarm
    spreads), then by hostname."""
    found = swarm.service(service) if isinstance(service, str) else service
    if found is None:
        return Placement(safe_text(str(service)), None, f"no service {safe_text(service)}")
    refused: list[tuple[str, str]] = []
    fits: list[SwarmNode] = []
    for node in swarm.nodes:
        why = _why_not(swarm, found, node)
        if why:
            refused.append((node.hostname, why))
        else:
            fits.append(node)
    if not fits:
        listed = "; ".join(f"{host}: {why}" for host, why in refused) or "the swarm has no nodes"
        return Placement(
            found.name,
            None,
            f"no node can take another task of {found.name}: {listed}",
            tuple(refused),
        )
    kind = found.reserves[0].kind if found.reserves else ""

    def rank(node: SwarmNode) -> tuple[int, int, str]:
        mine = sum(1 for t in swarm.tasks_on(node.id) if t.service_id == found.id and t.holds)
        return (-_free(swarm, node, kind) if kind else 0, mine, node.hostname)

    best = min(fits, key=rank)
    if kind:
        free = _free(swarm, best, kind)
        why = f"{best.hostname} has {free} {kind} free of {best.advertised(kind)}"
    else:
        why = f"{best.hostname} is ready and runs the fewest of {found.name}'s tasks"
    return Placement(found.name, best, why, tuple(refused))


def placement_before_scaling(engine: Engine, service: str) -> Placement | None:
    """Where one more task of `service` (name or id) can go, read from `engine` now, before
    `+` asks the swarm for it; None when the engine is no swarm manager or does not answer
    (the scaling itself then says what is wrong)."""
    try:
        swarm = read_swarm(engine)
    except EngineError:
        return None
    return placement_for_one_more(swarm, service) if swarm is not None else None
