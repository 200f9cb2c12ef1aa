"""What scales together: a compose service's containers, a swarm service's tasks, or a plain
container with its clones, found as the engine lists them now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.inventory import CLONE_OF, COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE
from tui.fleet.sanitize import safe_text

KIND_COMPOSE = "compose"
KIND_SWARM = "swarm"
KIND_CLONE = "clone"

CLONE_NUMBER = "aitop.clone-number"
"""Label on a clone: its number among the origin's clones (1, 2, ...)."""
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
SWARM_SERVICE_NAME = "com.docker.swarm.service.name"
SWARM_SERVICE_ID = "com.docker.swarm.service.id"


class ScaleError(EngineError):
    """Scaling was not done; `str()` says why, in words for the user."""


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


def replicas(n: int) -> str:
    """ "1 replica", "3 replicas"."""
    return f"{n} replica" + ("" if n == 1 else "s")


def entry_name(entry: Mapping[str, Any]) -> str:
    """A container's name in the engine's listing (`docker ps`), without the leading slash."""
    names = entry.get("Names") or [""]
    return str(names[0]).lstrip("/")


def as_int(value: object, default: int = 0) -> int:
    """A label or field as a whole number, `default` when it is none."""
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
                entry_name(e),
                as_int((e.get("Labels") or {}).get(COMPOSE_NUMBER), 1),
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
    desired = as_int((mode.get("Replicated") or {}).get("Replicas"), 0)
    tasks = engine.service_tasks(svc["ID"])
    wanted = [t for t in tasks if t.get("DesiredState") == "running"]
    replicas = tuple(
        sorted(
            (
                Replica(
                    ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID", ""),
                    f"{name}.{t.get('Slot', '')}",
                    as_int(t.get("Slot")),
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
            entry_name(e),
            as_int((e.get("Labels") or {}).get(CLONE_NUMBER), 1),
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

    A group row ("swarm", name) is a swarm service, ("clones", name) a plain container with
    its clones; (project, service) a compose service.
    """
    if group is not None and group != ("", ""):
        project, service = group
        if project == "swarm":
            return swarm_group(engine, service)
        if project == "clones":
            return clone_group(engine, engine.inspect(service))  # by the origin's name
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
