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
    body = _container_config(attrs, labels)
    host, freed = _host_config(attrs)
    kind, ids = source_gpus(attrs)
    if gpus is not None and kind and tuple(gpus) != ids:
        _give_gpus(kind, gpus, body, host)
    body["HostConfig"] = host
    networks = _networks_to_join(attrs, host)
    primary = _primary_network(host, networks)
    if primary:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary: networks.pop(primary)}}
    return ReplicaSpec(
        name=name,
        body=body,
        networks={n: e for n, e in networks.items() if n not in DEFAULT_NETWORKS},
        freed_ports=tuple(freed),
        gpus=tuple(gpus) if gpus is not None and kind else (),
    )


def _container_config(attrs: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """The source's `Config` fields that creation takes back, with the replica's labels and
    without the hostname the engine derived from the source's id."""
    config = attrs.get("Config") or {}
    body: dict[str, Any] = {k: copy.deepcopy(config[k]) for k in CONFIG_KEYS if k in config}
    if body.get("Hostname") == str(attrs.get("Id") or "")[:12]:
        body.pop("Hostname")  # the engine's default (the id); the replica gets its own
    body["Labels"] = dict(labels)
    return body


def _host_config(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of the source's `HostConfig` for the replica (no fixed host port, links as
    creation takes them, no container-id file), and the host ports it gave up."""
    host: dict[str, Any] = copy.deepcopy(dict(attrs.get("HostConfig") or {}))
    freed = _free_host_ports(host)
    host["Links"] = _links(host.get("Links"))
    host.pop("ContainerIDFile", None)
    return host, freed


def _free_host_ports(host: dict[str, Any]) -> list[str]:
    """Clear every fixed host port of `host`'s port bindings (the engine then picks a free
    one); returns them as `host->container` ("8000->8000/tcp")."""
    freed: list[str] = []
    for port, entries in (host.get("PortBindings") or {}).items():
        for entry in entries or ():
            if entry.get("HostPort"):
                freed.append(f"{entry['HostPort']}->{port}")
                entry["HostPort"] = ""
    return freed


def _links(links: Sequence[str] | None) -> list[str] | None:
    """Legacy links as creation takes them: inspect shows "/db:/web/db", create takes "db:db"."""
    out = []
    for link in links or ():
        target, _, alias = str(link).partition(":")
        out.append(f"{target.lstrip('/')}:{alias.rsplit('/', 1)[-1] or target.lstrip('/')}")
    return out or None


def _give_gpus(kind: str, gpus: Sequence[str], body: dict[str, Any], host: dict[str, Any]) -> None:
    """Point the replica at `gpus` where the source names its own (`source_gpus`' `kind`):
    the device request's ids, or NVIDIA_VISIBLE_DEVICES under the nvidia runtime."""
    if kind == "request":
        for request in host.get("DeviceRequests") or ():
            if request.get("DeviceIDs"):
                request["DeviceIDs"] = list(gpus)
        return
    body["Env"] = [
        f"NVIDIA_VISIBLE_DEVICES={','.join(gpus)}"
        if str(e).startswith("NVIDIA_VISIBLE_DEVICES=")
        else e
        for e in body.get("Env") or ()
    ]


def _networks_to_join(
    attrs: Mapping[str, Any], host: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The source's networks with their endpoint settings for the replica: its aliases but
    those naming the source itself (id, name, hostname), its links; no fixed address. No
    network for a container that shares another's network stack (`container:<id>`)."""
    if str(host.get("NetworkMode") or "default").startswith("container:"):
        return {}
    source_id = str(attrs.get("Id") or "")
    drop = {source_id[:12], source_id, str(attrs.get("Name") or "").lstrip("/")}
    drop.add(str((attrs.get("Config") or {}).get("Hostname") or ""))
    networks: dict[str, dict[str, Any]] = {}
    for net, endpoint in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
        if net in DEFAULT_NETWORKS:
            networks[net] = {}
            continue
        aliases = [a for a in endpoint.get("Aliases") or () if a not in drop]
        networks[net] = {
            k: v for k, v in (("Aliases", aliases), ("Links", endpoint.get("Links"))) if v
        }
    return networks


def _primary_network(host: Mapping[str, Any], networks: Mapping[str, object]) -> str:
    """The network the replica is created on (the engine takes one at creation): its network
    mode when that is one of `networks`, else the first of them; "" for none."""
    mode = str(host.get("NetworkMode") or "default")
    return mode if mode in networks else next(iter(networks), "")
