"""`aitop snapshot --json`: the same data the screen shows, as plain JSON for scripts.

Secrets are masked as the inspect view masks them: a label whose name looks secret
(`*_TOKEN`, `*_API_KEY`, `GH_PAT`, ...) reads `••••••••`, and a URL password or connection-
string secret inside any other label value is masked in place (`tui.fleet.secrets`). The JSON
goes to scripts, logs and tickets; nothing in it should need redacting by hand.

Each container's `serving` is what its model server says (`ServingReading.to_json`: exactly
`tui.fleet.serving.types.JSON_KEYS`), null for a container that serves no model; the snapshot
waits for the servers' first rates as it waits for the CPU figures.

Each container also says why it last died (`exit_code`, `oom_killed`, `finished_at`,
`restarts_recent`, from its inspect data and the engine's events) and how many events its
log holds since its current start (`log_events`, by kind; running model containers).

A host whose engine is a swarm manager also has `"swarm"` (`tui.fleet.swarm.SwarmJson`): its
nodes (with the GPUs they advertise) and every task of every service, on whichever node it
runs. The key is absent, not null, on a host that is no swarm manager (a worker, no swarm,
Podman) and when the manager did not answer the swarm's calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from tui.fleet.detect import DEFAULT_RULES, DetectionRules
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.gpu.remote import remote_gpu_source
from tui.fleet.gpu.types import container_gpus_json, report_status_json, report_to_json
from tui.fleet.models import ContainerSnapshot, FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from tui.fleet.secrets import mask_labels
from tui.fleet.swarm import SwarmJson, read_swarm

SETTLE = 0.25
"""Seconds between the two readings a one-shot snapshot's CPU figures come from."""
API_SETTLE = 4.0
"""Longest wait for the figures of an engine read through its stats API: its streams send a
reading a second, and the rates need two."""
SERVING_SETTLE = 5.0
"""Longest wait for the model servers' first rates (two pages each; a slow server's scrape
gives up within its 2 s deadline)."""
SERVING_GAP = 0.5
"""Seconds between two scrapes of the servers while waiting."""
LOGS_SETTLE = 3.0
"""Longest the model containers' log reads go on (a read takes about 5 ms: some 600
containers); a container whose log was not read has `log_events` null."""


class ContainerJson(TypedDict):
    """One entry of a host's `containers[]`: what the table shows of a container; a figure
    aitop does not know is null."""

    id: str
    name: str
    image: str
    model: str
    is_model: bool
    state: str
    health: str
    restart_count: int
    started_at: float | None
    """Epoch seconds."""
    ports: list[str]
    cpu_percent: float | None
    mem_bytes: int | None
    mem_limit_bytes: int | None
    net_rx_bytes: int | None
    net_tx_bytes: int | None
    blk_read_bytes: int | None
    blk_write_bytes: int | None
    compose_project: str
    compose_service: str
    swarm_service: str
    labels: dict[str, str]
    """Secrets masked (see the module docstring)."""
    gpus: list[dict[str, Any]]
    """What it holds on each GPU (`gpu.types.container_gpus_json`)."""
    gpus_assigned: list[str]
    serving: dict[str, object] | None
    """What its model server says (`ServingReading.to_json`); null when it serves none."""
    exit_code: int | None
    """How its last run ended; null when no run ended (or, for one that runs again, when
    the code is not known: it restarted before aitop watched it)."""
    oom_killed: bool
    """Its last run was ended by the OOM killer."""
    finished_at: float | None
    """When its last run ended, epoch seconds; null when none did."""
    restarts_recent: int
    """Restarts in the last 10 minutes (`models.RESTART_WINDOW_S`), from the engine's events."""
    log_events: dict[str, int] | None
    """Event lines its log holds since its current start, by kind (`models.EVENT_KINDS`:
    "cuda-oom", "nccl", "oom-killed", "traceback", "error"; kinds not seen are left out);
    null when its log was not read (not a running model container)."""


class HostFiguresJson(TypedDict):
    """A host's own figures (`hosts[].host`)."""

    cpu_percent: float
    mem_used_bytes: int
    mem_total_bytes: int
    load_average: list[float]


class _HostJsonBase(TypedDict):
    url: str
    engine_version: str
    stats_source: str
    host: HostFiguresJson
    gpus: list[dict[str, Any]]
    """Each GPU (`gpu.types.report_to_json`)."""
    gpu_status: dict[str, Any] | None
    """The GPU layer's state (`gpu.types.report_status_json`); null without a reading."""
    containers: list[ContainerJson]


class HostJson(_HostJsonBase, total=False):
    """One engine's entry of `hosts[]` (`engine` and `engine_limitations` once connected)."""

    engine: str
    """Which engine answered: "Docker" or "Podman"."""
    engine_limitations: list[str]
    """What that engine's API lacks that aitop would otherwise show, one line each."""
    swarm: SwarmJson
    """A swarm manager's nodes, services and tasks; absent on any other engine."""
    disk: dict[str, object]
    """With `--disk`: the disk view's data (`tui.fleet.disk.types.disk_json`)."""
    disk_error: str
    """With `--disk`, when the engine could not say: why."""


class UnreachableHostJson(TypedDict):
    """The `hosts[]` entry of an engine that did not answer (several engines only)."""

    url: str
    error: str
    """Why, in words."""
    containers: list[ContainerJson]
    """Always empty."""


class SnapshotJson(TypedDict):
    """The whole document `aitop snapshot --json` prints."""

    hosts: list[HostJson | UnreachableHostJson]


def container_to_json(c: ContainerSnapshot) -> ContainerJson:
    """One container as the JSON snapshot's `containers[]` entry."""
    info, stats = c.info, c.stats
    last = info.last_exit
    return {
        "id": info.id,
        "name": info.name,
        "image": info.image,
        "model": info.model,
        "is_model": info.is_model,
        "state": info.state,
        "health": info.health,
        "restart_count": info.restart_count,
        "started_at": info.started_at,
        "ports": list(info.ports),
        "cpu_percent": None if stats.cpu_percent is None else round(stats.cpu_percent, 2),
        "mem_bytes": stats.mem_bytes,
        "mem_limit_bytes": stats.mem_limit_bytes,
        "net_rx_bytes": stats.net_rx_bytes,
        "net_tx_bytes": stats.net_tx_bytes,
        "blk_read_bytes": stats.blk_read_bytes,
        "blk_write_bytes": stats.blk_write_bytes,
        "compose_project": info.compose_project,
        "compose_service": info.compose_service,
        "swarm_service": info.swarm_service,
        "labels": mask_labels(info.labels),
        "gpus": container_gpus_json(c.gpus),
        "gpus_assigned": list(info.gpus_assigned),
        "serving": c.serving.to_json() if c.serving is not None else None,
        "exit_code": last.code if last is not None else None,
        "oom_killed": last.oom_killed if last is not None else False,
        "finished_at": last.at if last is not None else info.finished_at,
        "restarts_recent": info.restarts_recent,
        "log_events": c.log_events.as_dict() if c.log_events.read else None,
    }


def host_to_json(snap: FleetSnapshot, *, include_all: bool) -> HostJson:
    """One engine's entry of the JSON snapshot's `hosts[]`."""
    host = snap.host
    return {
        "url": snap.engine.url,
        "engine_version": snap.engine.version,
        "stats_source": snap.engine.stats_source,
        "host": {
            "cpu_percent": round(host.cpu_percent, 2),
            "mem_used_bytes": host.mem_used_bytes,
            "mem_total_bytes": host.mem_total_bytes,
            "load_average": list(host.load_average),
        },
        "gpus": report_to_json(snap.gpu) if snap.gpu is not None else [],
        "gpu_status": report_status_json(snap.gpu) if snap.gpu is not None else None,
        "containers": [
            container_to_json(c) for c in snap.containers if include_all or c.info.is_model
        ],
    }


def collect(
    engine: Engine, *, settle: float = SETTLE, rules: DetectionRules = DEFAULT_RULES
) -> FleetSnapshot:
    """Connect, list and sample `settle` seconds apart until every running container has its
    figures (twice from cgroup files; through the stats API, for up to API_SETTLE seconds),
    and its model server its first rates (up to SERVING_SETTLE seconds); raises EngineError."""
    monitor = FleetMonitor(engine, rules=rules, gpu=remote_gpu_source(engine.url))
    try:
        monitor.connect()
        monitor.seed_history()  # the last exits and recent restarts, before aitop ran
        monitor.resync()
        monitor.poll_serving()
        monitor.sample()
        time.sleep(settle)
        monitor.sample()
        deadline = time.monotonic() + API_SETTLE
        while not _figures_in(monitor.snapshot()) and time.monotonic() < deadline:
            time.sleep(settle)
            monitor.sample()
        deadline = time.monotonic() + SERVING_SETTLE
        while not monitor.serving_settled() and time.monotonic() < deadline:
            time.sleep(SERVING_GAP)
            monitor.poll_serving()
        # What the logs say of the servers whose pages said nothing (or that have none), and
        # every model container's event counts.
        monitor.read_serving_logs(budget=LOGS_SETTLE)
        return monitor.snapshot()
    finally:
        monitor.stop()


def _figures_in(snapshot: FleetSnapshot) -> bool:
    """Whether every running container has its CPU figure (cgroup figures: at once)."""
    return all(c.stats.cpu_percent is not None for c in snapshot.containers if c.info.running)


def _host_json(engine: Engine, include_all: bool, rules: DetectionRules) -> HostJson:
    host = host_to_json(collect(engine, rules=rules), include_all=include_all)
    # Known once connected: "Docker" or "Podman", and what that engine's API lacks.
    host["engine"] = engine.product
    host["engine_limitations"] = list(engine.limitations)
    with contextlib.suppress(EngineError):
        swarm = read_swarm(engine)
        if swarm is not None:
            host["swarm"] = swarm.swarm_json()
    return host


def snapshot_json(
    engines: Engine | Sequence[Engine],
    *,
    include_all: bool = False,
    rules: DetectionRules = DEFAULT_RULES,
) -> SnapshotJson:
    """The whole JSON document: one `hosts[]` entry per engine (model containers by `rules`).

    With one engine, an engine that does not answer raises EngineError. With several, the
    engines are read at the same time, and one that does not answer is listed with its URL,
    `"error"` (why, in words) and no containers, so the others still come out.
    """
    if isinstance(engines, Engine):
        engines = [engines]
    if len(engines) == 1:
        return {"hosts": [_host_json(engines[0], include_all, rules)]}

    def one(engine: Engine) -> HostJson | UnreachableHostJson:
        try:
            return _host_json(engine, include_all, rules)
        except EngineError as exc:
            return {"url": engine.url, "error": str(exc), "containers": []}

    with ThreadPoolExecutor(len(engines), thread_name_prefix="aitop-snapshot") as pool:
        return {"hosts": list(pool.map(one, engines))}
