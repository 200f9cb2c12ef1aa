"""Immutable snapshots the headless layer hands to the UI and to `aitop snapshot --json`.

Everything here is a frozen dataclass built from plain values: the UI may keep a snapshot as
long as it likes, and no thread ever mutates one after it was published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tui.fleet.gpu.types import ContainerGpu, GpuReport
from tui.fleet.logs.types import LineKind
from tui.fleet.serving.types import HistoryPoint, ServingReading

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})
RESTART_WINDOW_S = 600.0
"""The window `ContainerInfo.restarts_recent` counts restarts in: the last 10 minutes."""

SIGNAL_BASE = 128
"""A process killed by signal N exits with 128 + N (the shell's and the engine's convention)."""


@dataclass(frozen=True)
class LastExit:
    """How a container's last run ended (issue 17, "why it died")."""

    code: int | None
    """Its exit code; None when not known (a container restarted before aitop watched it)."""
    oom_killed: bool = False
    """The kernel's OOM killer ended it (the engine's `OOMKilled`, or an `oom` event)."""
    at: float | None = None
    """When it ended, seconds since the epoch (`FinishedAt`); None when not known."""

    @property
    def signal(self) -> int | None:
        """The signal that ended it (9 for exit code 137), when the code says one did."""
        if self.code is not None and SIGNAL_BASE < self.code <= SIGNAL_BASE + 64:
            return self.code - SIGNAL_BASE
        return None


EVENT_KINDS: tuple[LineKind, ...] = (
    LineKind.CUDA_OOM,
    LineKind.NCCL,
    LineKind.OOM_KILLED,
    LineKind.TRACEBACK,
    LineKind.ERROR,
)
"""The log line kinds counted as events, in the order a row shows them: trouble, not the
progress lines (model-load, model-ready) a healthy start prints by the dozen."""
ALARMING_KINDS: frozenset[LineKind] = frozenset(
    {LineKind.CUDA_OOM, LineKind.NCCL, LineKind.OOM_KILLED}
)
"""Events a row shows in a warning colour: out of memory (GPU or host) and NCCL failures."""


@dataclass(frozen=True)
class LogEventCounts:
    """How many event lines (`EVENT_KINDS`) a container logged since its current start."""

    counts: tuple[tuple[LineKind, int], ...] = ()
    """(kind, count) for each kind seen at least once, in `EVENT_KINDS` order."""
    read: bool = False
    """True once its log was read since the current start (no counts then means none);
    False while nothing was read (not a model container, or not yet)."""
    partial: bool = False
    """True when some lines of the run went unread (more than a read's line or byte cap
    between two reads, or before the first): the counts are then a lower bound."""

    def get(self, kind: LineKind) -> int:
        """The count of one kind (0 when none)."""
        return next((n for k, n in self.counts if k is kind), 0)

    @property
    def total(self) -> int:
        """Event lines of every kind."""
        return sum(n for _, n in self.counts)

    @property
    def alarming(self) -> int:
        """Event lines of the `ALARMING_KINDS` (CUDA OOM, NCCL, OOM kill)."""
        return sum(n for k, n in self.counts if k in ALARMING_KINDS)

    def as_dict(self) -> dict[str, int]:
        """{kind value: count} (for JSON)."""
        return {k.value: n for k, n in self.counts}

    @staticmethod
    def of(
        counts: Mapping[LineKind, int], *, read: bool = True, partial: bool = False
    ) -> LogEventCounts:
        """Counts from a mapping (kinds outside `EVENT_KINDS` and zero counts are left out)."""
        kept = tuple((k, counts[k]) for k in EVENT_KINDS if counts.get(k, 0) > 0)
        return LogEventCounts(kept, read, partial)


NO_LOG_EVENTS = LogEventCounts()


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
    """Restarts since the container was created (the engine's `RestartCount`)."""
    ports: tuple[str, ...] = ()
    """Published ports as `host:port->container/proto`, or `container/proto` when unpublished."""
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    compose_project: str = ""
    compose_service: str = ""
    compose_number: int = 0
    swarm_service: str = ""
    clone_of: str = ""
    """The origin's id, on a clone aitop made (its `aitop.clone-of` label)."""
    clone_group: str = ""
    """The origin's name, on a plain container with clones and on its clones: they are
    grouped under it (`inventory.with_clone_groups`)."""
    pid: int = 0
    """Host PID of the container's main process; 0 when it does not run."""
    exit_code: int = 0
    """The engine's `State.ExitCode`: the last run's code while stopped, 0 again once it
    runs (see `last_exit`, which keeps it across a restart)."""
    oom_killed: bool = False
    """The engine's `State.OOMKilled` (reset when it runs again; see `last_exit`)."""
    gpus_assigned: tuple[str, ...] = ()
    """GPUs the container was given: () none, ("all",) all, else ids as requested."""
    finished_at: float | None = None
    """End of the last run, seconds since the epoch (`State.FinishedAt`); None if none."""
    last_exit: LastExit | None = None
    """How the last run ended; None while it never ended. While it runs again, the code and
    the OOM kill come from the engine's events (None: not seen)."""
    restarts_recent: int = 0
    """Restarts (a start after a die) in the last `RESTART_WINDOW_S` seconds, from the
    engine's events (seeded from its history when aitop connects)."""

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
        if self.clone_group:
            return ("clones", self.clone_group)
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
    log_events: LogEventCounts = NO_LOG_EVENTS
    """Event lines its log holds since its current start (running model containers)."""


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
