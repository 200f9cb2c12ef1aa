"""Turning the engine's inspect data into `ContainerInfo` (pure functions, no I/O).

This is where container metadata enters aitop, so this is where it is made safe: names,
images, labels, the model name (from labels, the command or the environment, all chosen by
whoever built the image) and ports pass `safe_text` here, once. Nothing downstream has to
sanitise them again, and nothing downstream may show a container's metadata any other way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from tui.fleet.detect import DEFAULT_RULES, DetectionRules, classify
from tui.fleet.gpu.types import gpus_assigned
from tui.fleet.models import ContainerInfo, LastExit
from tui.fleet.sanitize import safe_mapping, safe_text

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
CLONE_OF = "aitop.clone-of"
"""Label on a clone aitop made (`+` on a plain container): the full id of its origin."""
COMPOSE_NUMBER = "com.docker.compose.container-number"
SWARM_SERVICE = "com.docker.swarm.service.name"


def parse_time(value: str | None) -> float | None:
    """An engine timestamp (RFC 3339 with nanoseconds) as epoch seconds; None for the zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.rstrip("Z")
    offset = "+00:00"
    # Keep an explicit offset, then cut nanoseconds to what fromisoformat takes on 3.10.
    for sign in ("+", "-"):
        pos = text.rfind(sign)
        if pos > 10:
            text, offset = text[:pos], text[pos:]
            break
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6].ljust(6, '0')}"
    try:
        return datetime.fromisoformat(text + offset).timestamp()
    except ValueError:
        return None


def format_ports(port_map: Mapping[str, Any] | None) -> tuple[str, ...]:
    """`NetworkSettings.Ports` as short strings, published ones first, sorted and de-duplicated."""
    published: list[str] = []
    exposed: list[str] = []
    for container_port, bindings in sorted((port_map or {}).items()):
        if not bindings:
            exposed.append(container_port)
            continue
        seen: set[str] = set()
        for binding in bindings:
            host_port = binding.get("HostPort", "")
            # IPv4 and IPv6 bindings of the same port read the same to a person: show one.
            if host_port in seen:
                continue
            seen.add(host_port)
            published.append(f"{host_port}->{container_port}")
    return tuple(safe_text(p) for p in published + exposed)


def last_exit(state: Mapping[str, Any]) -> LastExit | None:
    """How the last run ended, from inspect's `State`; None when no run ended yet.

    While a container runs again the engine has reset `ExitCode` and `OOMKilled`: the code
    is then unknown here (the monitor fills it in from the engine's `die` events).
    """
    finished = parse_time(state.get("FinishedAt"))
    if finished is None:
        return None
    # A restarting container still counts as running, but its code is the run that ended.
    if state.get("Running") and not state.get("Restarting"):
        return LastExit(None, at=finished)
    return LastExit(int(state.get("ExitCode") or 0), bool(state.get("OOMKilled")), finished)


def container_info(
    attrs: Mapping[str, Any], rules: DetectionRules = DEFAULT_RULES
) -> ContainerInfo:
    """A `ContainerInfo` from one container's inspect data."""
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    raw_labels = config.get("Labels") or {}
    labels = safe_mapping(raw_labels)
    is_model, model = classify(attrs, rules)
    health = safe_text((state.get("Health") or {}).get("Status", ""))
    status = state.get("Status", "")
    if state.get("Restarting"):
        status = "restarting"
    try:
        number = int(labels.get(COMPOSE_NUMBER, "0"))
    except ValueError:
        number = 0
    return ContainerInfo(
        id=safe_text(attrs["Id"]),
        name=safe_text((attrs.get("Name") or "").lstrip("/")),
        image=safe_text(config.get("Image") or attrs.get("Image", "")),
        model=safe_text(model),
        is_model=is_model,
        state=safe_text(status),
        health=health,
        created=parse_time(attrs.get("Created")) or 0.0,
        started_at=parse_time(state.get("StartedAt")),
        restart_count=int(attrs.get("RestartCount") or 0),
        ports=format_ports((attrs.get("NetworkSettings") or {}).get("Ports")),
        labels=MappingProxyType(labels),
        compose_project=labels.get(COMPOSE_PROJECT, ""),
        compose_service=labels.get(COMPOSE_SERVICE, ""),
        compose_number=number,
        swarm_service=labels.get(SWARM_SERVICE, ""),
        clone_of=safe_text(labels.get(CLONE_OF, "")),
        pid=int(state.get("Pid") or 0),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        gpus_assigned=tuple(safe_text(g) for g in gpus_assigned(attrs)),
        finished_at=parse_time(state.get("FinishedAt")),
        last_exit=last_exit(state),
    )


_HEALTH_IN_STATUS = (
    ("(unhealthy)", "unhealthy"),
    ("(healthy)", "healthy"),
    ("(health: starting)", "starting"),
)


def info_from_summary(
    summary: Mapping[str, Any], rules: DetectionRules = DEFAULT_RULES
) -> ContainerInfo:
    """A first, partial `ContainerInfo` from the engine's listing (`docker ps -a`).

    One listing call covers the whole fleet, so the first frame needs no per-container
    inspect. What the listing lacks (PID, start time, restart count, environment, GPU
    requests) stays unknown until the container is inspected.
    """
    raw_labels: dict[str, str] = dict(summary.get("Labels") or {})
    name = ((summary.get("Names") or [""])[0] or "").lstrip("/")
    image = summary.get("Image", "")
    command = summary.get("Command") or ""
    attrs = {
        "Name": name,
        "Config": {"Image": image, "Labels": raw_labels, "Cmd": [command] if command else None},
    }
    is_model, model = classify(attrs, rules)
    labels = safe_mapping(raw_labels)
    status = summary.get("Status") or ""
    health = next((h for text, h in _HEALTH_IN_STATUS if text in status), "")
    ports: dict[str, list[dict[str, str]] | None] = {}
    for port in summary.get("Ports") or ():
        key = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            ports.setdefault(key, []).append({"HostPort": str(port["PublicPort"])})  # type: ignore[union-attr]
        else:
            ports.setdefault(key, None)
    try:
        number = int(labels.get(COMPOSE_NUMBER, "0"))
    except ValueError:
        number = 0
    return ContainerInfo(
        id=safe_text(summary["Id"]),
        name=safe_text(name),
        image=safe_text(image),
        model=safe_text(model),
        is_model=is_model,
        state=safe_text(summary.get("State", "")),
        health=health,
        created=float(summary.get("Created") or 0),
        ports=format_ports(ports),
        labels=MappingProxyType(labels),
        compose_project=labels.get(COMPOSE_PROJECT, ""),
        compose_service=labels.get(COMPOSE_SERVICE, ""),
        compose_number=number,
        swarm_service=labels.get(SWARM_SERVICE, ""),
        clone_of=safe_text(labels.get(CLONE_OF, "")),
    )


def with_clone_groups(infos: Sequence[ContainerInfo]) -> list[ContainerInfo]:
    """The containers with each plain container that has clones, and its clones, grouped
    under the origin's name (`ContainerInfo.clone_group`), as compose replicas are under
    their service; the others as they are."""
    origins = {info.clone_of for info in infos if info.clone_of}
    if not origins:
        return list(infos)
    names = {info.id: info.name for info in infos if info.id in origins}
    grouped = []
    for info in infos:
        origin = info.clone_of or (info.id if info.id in origins else "")
        if origin and not info.compose_project and not info.swarm_service:
            # A clone whose origin is gone keeps the name the origin had (its own, less -clone-N).
            name = names.get(origin) or re.sub(r"-clone-\d+$", "", info.name)
            info = replace(info, clone_group=name)
        grouped.append(info)
    return grouped
