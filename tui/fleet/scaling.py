"""Scaling a compose service, a swarm service or a plain container by replicas.

- A compose service grows the way `docker compose up --scale` does: the next container
  numbers, the service's labels and configuration (taken from its lowest-numbered container),
  so `docker compose ps`, `logs` and `down` see the new replicas as members. It shrinks from
  the highest numbers. A service with a fixed `container_name` cannot be scaled.
- A swarm service is scaled through the swarm (`docker service scale`); the result says how
  many tasks run of how many are wanted.
- A plain container's replicas are clones of its configuration, named `<name>-clone-<n>`,
  labelled `aitop.clone-of=<origin id>`. Shrinking removes the newest clone first and the
  original only when that was confirmed explicitly.

A clone never copies a fixed host port: it publishes the same container ports on host ports
the engine picks free, and the result shows them. When the source holds specific GPUs and
their free memory is known, each new replica goes to the GPU with the most free memory that
can hold another copy (`place_replicas`, a pure function of plain numbers).

Nothing is left half-done: a replica that fails to start is removed again, and the result
names every failure (and anything a failed rollback left behind). Headless, no UI imports.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.inspect_view import human_size
from tui.fleet.inventory import COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE, format_ports
from tui.fleet.sanitize import safe_text

KIND_COMPOSE = "compose"
KIND_SWARM = "swarm"
KIND_CLONE = "clone"

CLONE_OF = "aitop.clone-of"
"""Label on a clone: the full id of the container it was cloned from."""
CLONE_NUMBER = "aitop.clone-number"
"""Label on a clone: its number among the origin's clones (1, 2, ...)."""
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
SWARM_SERVICE_NAME = "com.docker.swarm.service.name"
SWARM_SERVICE_ID = "com.docker.swarm.service.id"

MAX_PARALLEL = 8
"""Replicas created (or removed) at once."""
SWARM_WAIT_S = 30.0
"""How long to watch a swarm service converge before reporting."""

# Fields of `Config` (inspect) that `POST /containers/create` takes back as they are.
CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)
DEFAULT_NETWORKS = frozenset({"bridge", "host", "none", "default"})


class ScaleError(EngineError):
    """Scaling was not done; `str()` says why, in words for the user."""


class PlacementError(ScaleError):
    """No GPU can hold another copy of the source; nothing was created."""


@dataclass(frozen=True)
class Replica:
    """One member of a scalable group."""

    id: str
    name: str
    number: int
    """Compose container number, clone number (0 for the original), swarm task slot."""
    state: str = ""


@dataclass(frozen=True)
class ScaleGroup:
    """What `+`, `-` and `=` act on: a compose service, a swarm service or a plain container
    with its clones, as the engine lists it now."""

    kind: str
    label: str
    """How to name it to the user: "project/service", "swarm service web", "container x"."""
    replicas: tuple[Replica, ...] = ()
    """Members, lowest number first (swarm: the tasks that should run)."""
    source_id: str = ""
    """The container whose configuration new replicas copy."""
    project: str = ""
    service: str = ""
    name_format: str = ""
    """Compose: how replicas are named, with `{n}` for the number."""
    fixed_name: str = ""
    """Compose: the fixed `container_name` of a service that cannot scale; "" otherwise."""
    origin_id: str = ""
    """Clones: the original container ("" once it was removed)."""
    origin_name: str = ""
    desired: int = 0
    """Swarm: the replicas the service asks for."""
    running: int = 0
    """Swarm: tasks running now."""

    @property
    def count(self) -> int:
        """The replica count `+`/`-` start from (swarm: the desired count)."""
        return self.desired if self.kind == KIND_SWARM else len(self.replicas)


@dataclass(frozen=True)
class ScalePlan:
    """What scaling `group` to `desired` replicas will do."""

    group: ScaleGroup
    desired: int
    add: int = 0
    remove: tuple[Replica, ...] = ()
    """Replicas that will be stopped and removed, highest number first."""

    @property
    def removes_original(self) -> bool:
        """True when a plain container's original would be removed (needs explicit consent)."""
        return self.group.kind == KIND_CLONE and any(
            r.id == self.group.origin_id for r in self.remove
        )

    @property
    def needs_confirmation(self) -> bool:
        """True when something will go: replicas removed or swarm tasks scaled down."""
        if self.group.kind == KIND_SWARM:
            return self.desired < self.group.count
        return bool(self.remove)

    @property
    def changes_nothing(self) -> bool:
        """True when the group already has `desired` replicas."""
        return self.desired == self.group.count

    def describe(self) -> str:
        """One line saying what will happen."""
        g = self.group
        if self.changes_nothing:
            return f"{g.label} already has {g.count} replica{_s(g.count)}"
        head = f"Scale {g.label} from {g.count} to {self.desired}"
        if g.kind == KIND_SWARM:
            return head
        if self.add:
            return f"{head}: create {self.add} replica{_s(self.add)}"
        names = ", ".join(r.name for r in self.remove)
        text = f"{head}: stop and remove {names}"
        if self.removes_original:
            text += f" (including the ORIGINAL container {g.origin_name})"
        return text


@dataclass(frozen=True)
class NewReplica:
    """A replica that was created and started."""

    id: str
    name: str
    ports: tuple[str, ...] = ()
    """Published ports as `host->container/proto`."""
    gpus: tuple[str, ...] = ()
    """The GPUs it was given, when placement chose them."""


@dataclass(frozen=True)
class ScaleResult:
    """What scaling did: replicas created and removed, and each failure with its reason."""

    label: str
    kind: str
    before: int
    desired: int
    created: tuple[NewReplica, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    """(replica name, why) for each step that failed and was rolled back."""
    left_behind: tuple[tuple[str, str], ...] = ()
    """(container name, why) for rollbacks that failed: these containers still exist."""
    converged: int | None = None
    """Swarm: tasks running when the result was taken."""
    settled: bool = True
    """Swarm: False when the service had not converged yet (tasks still starting/stopping)."""
    refused: str = ""
    """Why nothing was attempted; "" when it ran."""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when it ran, nothing failed and (swarm) the service converged."""
        if self.refused or self.failed or self.left_behind:
            return False
        return self.converged is None or (self.settled and self.converged == self.desired)

    @property
    def severity(self) -> str:
        """Textual notification severity: "information", "warning" or "error"."""
        if self.ok:
            return "information"
        return "warning" if self.created or self.removed or self.converged else "error"

    @property
    def summary(self) -> str:
        """The notification text."""
        if self.refused:
            return f"Scale {self.label}: {self.refused}"
        lines = []
        if self.kind == KIND_SWARM:
            lines.append(
                f"Scaled {self.label} from {self.before} to {self.desired}: "
                f"{self.converged}/{self.desired} tasks running"
                + ("" if self.settled else " (still converging)")
            )
        else:
            now = self.before + len(self.created) - len(self.removed)
            lines.append(f"{self.label}: {self.before} → {now} replica{_s(now)}")
        for new in self.created:
            extra = []
            if new.ports:
                extra.append("ports " + ", ".join(new.ports))
            if new.gpus:
                extra.append("GPU " + ",".join(new.gpus))
            lines.append(f"+ {new.name}" + (f" ({'; '.join(extra)})" if extra else ""))
        lines.extend(f"- {name}" for name in self.removed)
        lines.extend(f"✖ {name}: {why}" for name, why in self.failed)
        lines.extend(f"⚠ left behind {name}: {why}" for name, why in self.left_behind)
        lines.extend(self.notes)
        return "\n".join(lines)


Progress = Callable[[int, int, str], None]
"""Called as (done, total, text) while scaling runs; from worker threads."""


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# --- finding the group ---------------------------------------------------------------------


def _name(entry: Mapping[str, Any]) -> str:
    names = entry.get("Names") or [""]
    return str(names[0]).lstrip("/")


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def compose_group(engine: Engine, project: str, service: str) -> ScaleGroup:
    """A compose service's containers (not `run` one-offs), as the engine lists them now."""
    entries = engine.list_containers(
        [f"{COMPOSE_PROJECT}={project}", f"{COMPOSE_SERVICE}={service}"]
    )
    entries = [e for e in entries if (e.get("Labels") or {}).get(COMPOSE_ONEOFF) != "True"]
    if not entries:
        raise ScaleError(f"compose service {project}/{service} has no containers to copy")
    replicas = sorted(
        (
            Replica(
                e["Id"],
                _name(e),
                _int((e.get("Labels") or {}).get(COMPOSE_NUMBER), 1),
                str(e.get("State") or ""),
            )
            for e in entries
        ),
        key=lambda r: (r.number, r.name),
    )
    pattern = re.compile(rf"^{re.escape(project)}([_-]){re.escape(service)}\1(\d+)$")
    name_format = ""
    fixed = ""
    for r in replicas:
        m = pattern.match(r.name)
        if m:
            sep = m.group(1)
            name_format = f"{project}{sep}{service}{sep}{{n}}"
            break
    else:
        fixed = replicas[0].name
    return ScaleGroup(
        KIND_COMPOSE,
        # Compose labels are anyone's text (an image's too): the label is shown, so made safe.
        safe_text(f"{project}/{service}"),
        tuple(replicas),
        source_id=replicas[0].id,
        project=project,
        service=service,
        name_format=name_format,
        fixed_name=fixed,
    )


def swarm_group(engine: Engine, service: str) -> ScaleGroup:
    """A swarm service with its desired and running task counts."""
    svc = engine.inspect_service(service)
    spec = svc.get("Spec") or {}
    name = spec.get("Name") or service
    mode = spec.get("Mode") or {}
    if "Replicated" not in mode:
        kind = next(iter(mode), "global")
        raise ScaleError(
            f"swarm service {name} runs in {kind.lower()} mode (one task per node): "
            "it has no replica count to change"
        )
    desired = _int((mode.get("Replicated") or {}).get("Replicas"), 0)
    tasks = engine.service_tasks(svc["ID"])
    wanted = [t for t in tasks if t.get("DesiredState") == "running"]
    replicas = tuple(
        sorted(
            (
                Replica(
                    ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID", ""),
                    f"{name}.{t.get('Slot', '')}",
                    _int(t.get("Slot")),
                    str((t.get("Status") or {}).get("State") or ""),
                )
                for t in wanted
            ),
            key=lambda r: r.number,
        )
    )
    running = sum(1 for r in replicas if r.state == "running")
    return ScaleGroup(
        KIND_SWARM,
        f"swarm service {name}",
        replicas,
        service=svc["ID"],
        desired=desired,
        running=running,
    )


def clone_group(engine: Engine, attrs: Mapping[str, Any]) -> ScaleGroup:
    """A plain container (or one of its clones) with all the clones of its origin."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    origin_id = labels.get(CLONE_OF) or attrs["Id"]
    origin: Replica | None = None
    if origin_id == attrs["Id"]:
        origin = Replica(attrs["Id"], str(attrs.get("Name") or "").lstrip("/"), 0)
    else:
        try:
            o = engine.inspect(origin_id)
            origin = Replica(o["Id"], str(o.get("Name") or "").lstrip("/"), 0)
        except ContainerGone:
            origin = None
    clones = [
        Replica(
            e["Id"],
            _name(e),
            _int((e.get("Labels") or {}).get(CLONE_NUMBER), 1),
            str(e.get("State") or ""),
        )
        for e in engine.list_containers([f"{CLONE_OF}={origin_id}"])
    ]
    replicas = tuple(sorted(([origin] if origin else []) + clones, key=lambda r: r.number))
    origin_name = origin.name if origin else str(attrs.get("Name") or "").lstrip("/")
    origin_name = re.sub(r"-clone-\d+$", "", origin_name) if origin is None else origin_name
    return ScaleGroup(
        KIND_CLONE,
        f"container {origin_name}",
        replicas,
        source_id=origin.id if origin else replicas[0].id,
        origin_id=origin.id if origin else "",
        origin_name=origin_name,
    )


def find_group(
    engine: Engine,
    *,
    container_id: str | None = None,
    group: tuple[str, str] | None = None,
) -> ScaleGroup:
    """The scalable group of a selected container or of a (project, service) group row.

    A group row ("swarm", name) is a swarm service; (project, service) a compose service.
    """
    if group is not None and group != ("", ""):
        project, service = group
        if project == "swarm":
            return swarm_group(engine, service)
        if not service:
            raise ScaleError(f"pick one service of project {project} to scale")
        return compose_group(engine, project, service)
    if container_id is None:
        raise ScaleError("no container selected")
    attrs = engine.inspect(container_id)
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(COMPOSE_PROJECT) and labels.get(COMPOSE_SERVICE):
        if labels.get(COMPOSE_ONEOFF) == "True":
            raise ScaleError("a `docker compose run` container is not a replica of its service")
        return compose_group(engine, labels[COMPOSE_PROJECT], labels[COMPOSE_SERVICE])
    if labels.get(SWARM_SERVICE_ID) or labels.get(SWARM_SERVICE_NAME):
        return swarm_group(engine, labels.get(SWARM_SERVICE_ID) or labels[SWARM_SERVICE_NAME])
    return clone_group(engine, attrs)


# --- planning -------------------------------------------------------------------------------


def plan_scale(group: ScaleGroup, desired: int) -> ScalePlan:
    """What scaling `group` to `desired` replicas will do; ScaleError when it cannot."""
    if desired < 0:
        raise ScaleError("a replica count cannot be negative")
    if group.kind == KIND_COMPOSE and group.fixed_name and desired > 1:
        raise ScaleError(
            f"compose service {group.label} has a fixed container_name "
            f"({group.fixed_name}): a name is unique, so it cannot run more than one replica. "
            "Remove container_name from the compose file to scale it"
        )
    if group.kind == KIND_SWARM:
        return ScalePlan(group, desired)
    count = group.count
    if desired >= count:
        return ScalePlan(group, desired, add=desired - count)
    # Highest numbers go first; for clones the original (number 0) is last.
    doomed = sorted(group.replicas, key=lambda r: r.number, reverse=True)[: count - desired]
    return ScalePlan(group, desired, remove=tuple(doomed))


def step_plan(group: ScaleGroup, step: int) -> ScalePlan:
    """`+` (step 1) or `-` (step -1): one replica more or fewer."""
    if step < 0 and group.count == 0:
        raise ScaleError(f"{group.label} has no replica to remove")
    return plan_scale(group, group.count + step)


# --- GPU placement (pure) -------------------------------------------------------------------


def place_replicas(
    count: int,
    source_gpus: Sequence[str],
    free: Mapping[str, int | None] | None,
    need: int | None,
    *,
    force: bool = False,
    label: str = "the source",
) -> tuple[tuple[str, ...], ...]:
    """The GPUs each of `count` new replicas gets.

    `source_gpus` are the GPUs the source was given (ids as in its request: indices or
    UUIDs); `free` maps GPU ids (the same kind) to free memory in bytes (None: unknown);
    `need` is the memory the source uses on each of its GPUs (None: unknown). Each replica
    takes as many GPUs as the source, those with the most free memory that can hold another
    copy, and what it takes is counted for the next replica. When GPUs are not visible
    (`free` empty or None) or the source holds no specific GPUs, every replica keeps the
    source's request. When no GPU can hold another copy: PlacementError, or with `force`
    the source's request is kept.
    """
    keep = tuple(source_gpus)
    known = {g: f for g, f in (free or {}).items() if f is not None}
    if not keep or not known or count <= 0:
        return (keep,) * max(count, 0)
    width = len(keep)
    remaining = dict(known)
    out: list[tuple[str, ...]] = []
    for _ in range(count):
        fits = [g for g, f in remaining.items() if need is None or f >= need]
        fits.sort(key=lambda g: (-remaining[g], _natural(g)))
        if len(fits) < width:
            if force:
                out.append(keep)
                continue
            best = max(remaining, key=lambda g: remaining[g])
            made = f" after placing {len(out)}" if out else ""
            raise PlacementError(
                f"no GPU can hold another copy of {label}{made}: it uses "
                f"{human_size(need)} per GPU and the most free is GPU {best} with "
                f"{human_size(remaining[best])}. Nothing was created (force to place it on "
                f"GPU {','.join(keep)} anyway)"
            )
        chosen = tuple(fits[:width])
        for g in chosen:
            remaining[g] -= need or 0
        out.append(chosen)
    return tuple(out)


def _natural(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


def source_gpus(attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Where a container's specific GPUs are set and which: ("request", ids) for `--gpus
    device=...`, ("env", ids) for NVIDIA_VISIBLE_DEVICES under the nvidia runtime, else
    ("", ()) (no GPUs, all GPUs, or a count the engine picks)."""
    host = attrs.get("HostConfig") or {}
    for request in host.get("DeviceRequests") or ():
        caps = request.get("Capabilities") or ()
        is_gpu = request.get("Driver") == "nvidia" or any("gpu" in (c or ()) for c in caps)
        ids = [str(i) for i in request.get("DeviceIDs") or () if str(i) != "all"]
        if is_gpu and ids:
            return "request", tuple(ids)
    if str(host.get("Runtime") or "").startswith("nvidia"):
        for item in (attrs.get("Config") or {}).get("Env") or ():
            name, _, value = str(item).partition("=")
            if name == "NVIDIA_VISIBLE_DEVICES":
                ids = [p.strip() for p in value.split(",") if p.strip()]
                if ids and not {"all", "none", "void"} & set(ids):
                    return "env", tuple(ids)
    return "", ()


# --- building a replica's configuration (pure) ----------------------------------------------


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything needed to create one replica."""

    name: str
    body: dict[str, Any]
    """The `POST /containers/create` body."""
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Further networks to join before it starts."""
    freed_ports: tuple[str, ...] = ()
    """Container ports whose fixed host port was not copied (published on a free port)."""
    gpus: tuple[str, ...] = ()


def _links(links: Sequence[str] | None) -> list[str] | None:
    # Inspect shows "/db:/web/db"; create takes "db:db".
    out = []
    for link in links or ():
        target, _, alias = str(link).partition(":")
        out.append(f"{target.lstrip('/')}:{alias.rsplit('/', 1)[-1] or target.lstrip('/')}")
    return out or None


def replica_spec(
    attrs: Mapping[str, Any],
    *,
    name: str,
    labels: Mapping[str, str],
    gpus: tuple[str, ...] | None = None,
) -> ReplicaSpec:
    """The configuration of a new replica of the container described by `attrs`.

    Same image, command, environment, mounts, resources, restart policy and networks; its own
    name, the given labels (replacing the source's), no fixed host ports (each published port
    gets a free host port), no fixed IP or MAC address. `gpus` replaces the source's specific
    GPUs (None keeps its request).
    """
    config = attrs.get("Config") or {}
    body: dict[str, Any] = {k: copy.deepcopy(config[k]) for k in CONFIG_KEYS if k in config}
    source_id = str(attrs.get("Id") or "")
    if body.get("Hostname") == source_id[:12]:
        body.pop("Hostname")  # the engine's default (the id); the replica gets its own
    body["Labels"] = dict(labels)
    host: dict[str, Any] = copy.deepcopy(dict(attrs.get("HostConfig") or {}))
    freed: list[str] = []
    bindings = host.get("PortBindings") or {}
    for port, entries in bindings.items():
        for entry in entries or ():
            if entry.get("HostPort"):
                freed.append(f"{entry['HostPort']}->{port}")
                entry["HostPort"] = ""
    host["Links"] = _links(host.get("Links"))
    host.pop("ContainerIDFile", None)
    kind, ids = source_gpus(attrs)
    if gpus is not None and kind and tuple(gpus) != ids:
        if kind == "request":
            for request in host.get("DeviceRequests") or ():
                if request.get("DeviceIDs"):
                    request["DeviceIDs"] = list(gpus)
        else:
            body["Env"] = [
                f"NVIDIA_VISIBLE_DEVICES={','.join(gpus)}"
                if str(e).startswith("NVIDIA_VISIBLE_DEVICES=")
                else e
                for e in body.get("Env") or ()
            ]
    body["HostConfig"] = host

    mode = str(host.get("NetworkMode") or "default")
    networks: dict[str, dict[str, Any]] = {}
    if not mode.startswith("container:"):
        drop = {source_id[:12], source_id, str(attrs.get("Name") or "").lstrip("/")}
        drop.add(str(config.get("Hostname") or ""))
        for net, endpoint in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if net in DEFAULT_NETWORKS:
                networks[net] = {}
                continue
            aliases = [a for a in endpoint.get("Aliases") or () if a not in drop]
            networks[net] = {
                k: v for k, v in (("Aliases", aliases), ("Links", endpoint.get("Links"))) if v
            }
    primary = mode if mode in networks else next(iter(networks), "")
    if primary:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary: networks.pop(primary)}}
    return ReplicaSpec(
        name=name,
        body=body,
        networks={n: e for n, e in networks.items() if n not in DEFAULT_NETWORKS},
        freed_ports=tuple(freed),
        gpus=tuple(gpus) if gpus is not None and kind else (),
    )


# --- running a plan -------------------------------------------------------------------------


class _RollbackFailed(Exception):
    def __init__(self, reason: str, leftover: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.leftover = leftover


def _create_and_start(engine: Engine, spec: ReplicaSpec) -> NewReplica:
    new_id = engine.create_container(spec.body, name=spec.name, networks=spec.networks)
    try:
        engine.start_container(new_id)
    except EngineError as exc:
        try:
            engine.remove_container(new_id, volumes=True, force=True)
        except EngineError as again:
            raise _RollbackFailed(str(exc), f"removing it failed: {again}") from exc
        raise
    ports: tuple[str, ...] = ()
    try:
        attrs = engine.inspect(new_id)
        ports = format_ports((attrs.get("NetworkSettings") or {}).get("Ports"))
    except EngineError:
        pass
    return NewReplica(new_id, spec.name, ports=ports, gpus=spec.gpus)


def _numbers_and_names(
    engine: Engine, group: ScaleGroup, add: int
) -> list[tuple[int, str, dict[str, str]]]:
    source = engine.inspect(group.source_id)
    labels = dict((source.get("Config") or {}).get("Labels") or {})
    taken = {_name(e) for e in engine.list_containers()}
    top = max((r.number for r in group.replicas), default=0)
    out: list[tuple[int, str, dict[str, str]]] = []
    n = top
    while len(out) < add:
        n += 1
        if group.kind == KIND_COMPOSE:
            name = group.name_format.format(n=n)
            new_labels = {**labels, COMPOSE_NUMBER: str(n)}
        else:
            name = f"{group.origin_name}-clone-{n}"
            new_labels = {
                **labels,
                CLONE_OF: group.origin_id or labels.get(CLONE_OF, group.source_id),
                CLONE_NUMBER: str(n),
            }
        if name in taken:
            continue
        out.append((n, name, new_labels))
    return out


def execute_plan(
    engine: Engine,
    plan: ScalePlan,
    *,
    gpu_free: Mapping[str, int | None] | None = None,
    gpu_need: int | None = None,
    force: bool = False,
    volumes: bool = False,
    allow_original: bool = False,
    on_progress: Progress | None = None,
    swarm_wait_s: float = SWARM_WAIT_S,
) -> ScaleResult:
    """Carry out `plan`. Blocking: call it from a worker thread.

    `gpu_free` / `gpu_need`: per-GPU free memory and the source's use per GPU, in bytes, for
    GPU-aware placement (see `place_replicas`); `force` places replicas even where no GPU has
    room. `volumes` also removes the anonymous volumes of removed replicas. Removing a plain
    container's original needs `allow_original` (given after an explicit confirmation).
    Raises ScaleError (PlacementError) when nothing was attempted for a reason to show.
    """
    group = plan.group
    base = ScaleResult(group.label, group.kind, group.count, plan.desired)
    if engine.read_only:
        return _replace(base, refused="read-only mode: aitop changes nothing")
    if plan.changes_nothing:
        return _replace(base, notes=(plan.describe(),))
    if plan.removes_original and not allow_original:
        raise ScaleError(
            f"scaling {group.label} to {plan.desired} would remove the original container "
            f"{group.origin_name}: confirm that explicitly"
        )
    if group.kind == KIND_SWARM:
        return _scale_swarm(engine, plan, base, on_progress, swarm_wait_s)
    if plan.add:
        return _scale_up(engine, plan, base, gpu_free, gpu_need, force, on_progress)
    return _scale_down(engine, plan, base, volumes, on_progress)


def _replace(result: ScaleResult, **changes: Any) -> ScaleResult:
    return replace(result, **changes)


def _scale_swarm(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    on_progress: Progress | None,
    wait_s: float,
) -> ScaleResult:
    group = plan.group
    engine.scale_service(group.service, plan.desired)
    deadline = time.monotonic() + wait_s
    running = 0
    while True:
        tasks = engine.service_tasks(group.service)
        running = sum(
            1
            for t in tasks
            if t.get("DesiredState") == "running"
            and (t.get("Status") or {}).get("State") == "running"
        )
        wanted = sum(1 for t in tasks if t.get("DesiredState") == "running")
        # Tasks told to shut down count until their containers are really gone.
        leaving = sum(
            1
            for t in tasks
            if t.get("DesiredState") != "running"
            and (t.get("Status") or {}).get("State") in ("running", "starting", "preparing")
        )
        if on_progress is not None:
            text = f"{running}/{plan.desired} tasks running"
            if leaving:
                text += f", {leaving} stopping"
            on_progress(running, plan.desired, text)
        converged = running == plan.desired and wanted == plan.desired and not leaving
        if converged or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return _replace(base, converged=running, settled=converged)


def _scale_up(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    gpu_free: Mapping[str, int | None] | None,
    gpu_need: int | None,
    force: bool,
    on_progress: Progress | None,
) -> ScaleResult:
    group = plan.group
    source = engine.inspect(group.source_id)
    _, gpus = source_gpus(source)
    placements = place_replicas(plan.add, gpus, gpu_free, gpu_need, force=force, label=group.label)
    notes: list[str] = []
    if gpus and not {g for g, f in (gpu_free or {}).items() if f is not None}:
        notes.append(f"GPUs not visible: new replicas keep the request GPU {','.join(gpus)}")
    specs = [
        replica_spec(source, name=name, labels=labels, gpus=placement if gpus else None)
        for (_, name, labels), placement in zip(
            _numbers_and_names(engine, group, plan.add), placements, strict=True
        )
    ]
    freed = sorted({p for s in specs for p in s.freed_ports})
    if freed:
        notes.append(
            "fixed host ports not copied (" + ", ".join(freed) + "): published on free ports"
        )
    created: list[NewReplica] = []
    failed: list[tuple[str, str]] = []
    left: list[tuple[str, str]] = []
    total = len(specs)

    def one(spec: ReplicaSpec) -> tuple[ReplicaSpec, NewReplica | None, str, str]:
        try:
            return spec, _create_and_start(engine, spec), "", ""
        except _RollbackFailed as exc:
            return spec, None, exc.reason, exc.leftover
        except EngineError as exc:
            return spec, None, str(exc), ""

    if on_progress is not None:
        on_progress(0, total, f"creating {total} replica{_s(total)} of {group.label}")
    with ThreadPoolExecutor(min(MAX_PARALLEL, total), thread_name_prefix="aitop-scale") as pool:
        for done, (spec, new, error, leftover) in enumerate(pool.map(one, specs), 1):
            if new is not None:
                created.append(new)
            elif leftover:
                left.append((spec.name, f"{error}; {leftover}"))
            else:
                failed.append((spec.name, f"{error} (rolled back)"))
            if on_progress is not None:
                on_progress(done, total, f"{'created' if new else 'failed'} {spec.name}")
    return _replace(
        base,
        created=tuple(created),
        failed=tuple(failed),
        left_behind=tuple(left),
        notes=tuple(notes),
    )


def _scale_down(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    volumes: bool,
    on_progress: Progress | None,
) -> ScaleResult:
    removed: list[str] = []
    failed: list[tuple[str, str]] = []
    total = len(plan.remove)

    def one(replica: Replica) -> tuple[Replica, str]:
        try:
            if replica.state in ("running", "paused", "restarting", ""):
                try:
                    engine.stop_container(replica.id)
                except ContainerGone:
                    return replica, ""
                except EngineError:
                    pass  # remove(force) below kills it and says why if that fails too
            engine.remove_container(replica.id, volumes=volumes, force=True)
        except ContainerGone:
            return replica, ""
        except EngineError as exc:
            return replica, str(exc)
        return replica, ""

    if on_progress is not None:
        on_progress(0, total, f"removing {total} replica{_s(total)} of {plan.group.label}")
    with ThreadPoolExecutor(min(MAX_PARALLEL, total), thread_name_prefix="aitop-scale") as pool:
        for done, (replica, error) in enumerate(pool.map(one, plan.remove), 1):
            if error:
                failed.append((replica.name, error))
            else:
                removed.append(replica.name)
            if on_progress is not None:
                on_progress(done, total, f"removed {replica.name}")
    return _replace(base, removed=tuple(removed), failed=tuple(failed))


def scale(
    engine: Engine,
    *,
    container_id: str | None = None,
    group: tuple[str, str] | None = None,
    step: int | None = None,
    desired: int | None = None,
    **kwargs: Any,
) -> ScaleResult:
    """Find the group, plan `step` (+1/-1) or `desired`, and carry it out (no confirmation:
    the caller asks first). Keyword arguments go to `execute_plan`."""
    found = find_group(engine, container_id=container_id, group=group)
    plan = plan_scale(found, desired) if desired is not None else step_plan(found, step or 1)
    return execute_plan(engine, plan, **kwargs)
