"""A new replica's configuration (pure): the source's inspect data as a `POST /containers/create`
body with the replica's name, number, labels, ports and GPUs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.fleet.actions.scaling.placement import source_gpus

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
