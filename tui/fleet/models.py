"""Immutable snapshots the headless layer hands to the UI and to `aitop snapshot --json`.

Everything here is a frozen dataclass built from plain values: the UI may keep a snapshot as
long as it likes, and no thread ever mutates one after it was published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tui.fleet.gpu.types import ContainerGpu, GpuReport
from tui.fleet.serving.types import HistoryPoint, ServingReading

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ContainerInfo:
    """What the engine says about one container; refreshed on its events, not every tick."""

    id: str
    name: str
    image: str
    model: str
    is_model: bool
    state: str
    """Engine state: created, running, paused, restarting, exited, dead."""
    health: str = ""
    """Health-check status: "", "starting", "healthy" or "unhealthy"."""
    created: float = 0.0
    """Creation time, seconds since the epoch."""
    started_at: float | None = None
    """Start of the current (or last) run, seconds since the epoch."""
    restart_count: int = 0
    ports: tuple[str, ...] = ()
    """Published ports as `host:port->container/proto`, or `container/proto` when unpublished."""
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    compose_project: str = ""
    compose_service: str = ""
    compose_number: int = 0
    swarm_service: str = ""
    pid: int = 0
    """Host PID of the container's main process; 0 when it does not run."""
    exit_code: int = 0
    oom_killed: bool = False
    gpus_assigned: tuple[str, ...] = ()
    """GPUs the container was given: () none, ("all",) all, else ids as requested."""

    @property
    def short_id(self) -> str:
        """The 12-character id the docker CLI prints."""
        return self.id[:12]

    @property
    def running(self) -> bool:
        """True while the container's processes exist (running, paused or restarting)."""
        return self.state in ("running", "paused", "restarting")

    @property
    def group(self) -> tuple[str, str]:
        """The (project, service) a container is grouped under; ("", "") for a lone one."""
        if self.compose_project:
            return (self.compose_project, self.compose_service)
        if self.swarm_service:
            return ("swarm", self.swarm_service)
        return ("", "")


@dataclass(frozen=True)
class ContainerStats:
    """Resource use of one container over the last sampling interval."""

    cpu_percent: float | None = None
    """CPU time over wall time, in percent of one core (the docker CLI's figure)."""
    mem_bytes: int | None = None
    """Memory in use, less the inactive file cache (the docker CLI's figure)."""
    mem_limit_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    net_rx_rate: float | None = None
    """Bytes per second received over the last interval."""
    net_tx_rate: float | None = None
    blk_read_bytes: int | None = None
    blk_write_bytes: int | None = None
    source: str = ""
    """Where the figures came from: "cgroup" (kernel files), "api" (engine stats API) or ""."""


NO_STATS = ContainerStats()


@dataclass(frozen=True)
class ContainerSnapshot:
    """One container as the UI shows it: identity plus the latest figures."""

    info: ContainerInfo
    stats: ContainerStats = NO_STATS
    gpus: tuple[ContainerGpu, ...] = ()
    """What the container holds on each GPU, from NVML's process list."""
    serving: ServingReading | None = None
    """What its model server says (and its log, where the server says nothing); None for a
    container that serves no model (or not known yet)."""
    serving_history: tuple[HistoryPoint, ...] = ()
    """The server's recent figures, oldest first (for sparklines)."""


@dataclass(frozen=True)
class HostSnapshot:
    """The machine aitop runs on, with short histories for sparklines."""

    cpu_percent: float = 0.0
    per_cpu_percent: tuple[float, ...] = ()
    mem_used_bytes: int = 0
    mem_total_bytes: int = 0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpu_history: tuple[float, ...] = ()
    mem_history: tuple[float, ...] = ()
    """Memory use in percent of total, oldest first."""


@dataclass(frozen=True)
class EngineStatus:
    """Whether and how the engine answers."""

    url: str
    reachable: bool = False
    version: str = ""
    api_version: str = ""
    error: str = ""
    """Why the engine is unreachable, in words for the user; "" while it answers."""
    retry_in: float = 0.0
    """Seconds until the next reconnection attempt while unreachable."""
    stats_source: str = ""
    """"cgroup" when figures come from local kernel files, "api" when from the stats API."""
    product: str = "Docker"
    """Which engine answers: "Docker", or "Podman" (through its Docker-compatible API)."""


@dataclass(frozen=True)
class FleetSnapshot:
    """Everything one refresh of aitop shows."""

    engine: EngineStatus
    host: HostSnapshot = field(default_factory=HostSnapshot)
    containers: tuple[ContainerSnapshot, ...] = ()
    taken_at: float = 0.0
    """Wall-clock time of the refresh, seconds since the epoch."""
    sampled: bool = False
    """True once container figures come from at least two samples (CPU and rates are known)."""
    gpu: GpuReport | None = None
    """The latest NVML reading; None until the first one (or when GPU sampling is off)."""
