"""A live picture of one engine's fleet, kept by two threads and published as snapshots.

- The *watcher* thread follows the engine's event stream: containers created, started,
  stopped, removed or changing health are re-inspected at once and a snapshot is published
  within milliseconds. When the engine goes away it marks it unreachable, retries with
  backoff and, once the engine answers again, resynchronises the whole inventory.
- The *sampler* thread reads CPU, memory, network and block I/O on a drift-free schedule,
  from the kernel's cgroup files when the engine is local, else from the stats API. Each tick
  it also hands the model servers' scrapes to a `ServingPool` (its own few threads; the tick
  never waits for them), and now and then a round of small log reads (`LogWatch`, on the
  engine pool) of the running model containers: what their logs say of their state where
  the servers' pages say nothing, and how many events (CUDA OOMs, NCCL failures, ...) each
  logged since its start.
- The events also tell why containers died (`ExitLog`): the last exit code, an OOM kill,
  and the restarts of the last 10 minutes, seeded from the engine's event history at connect.

Nothing here knows about the UI: snapshots go to an `on_snapshot` callback.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from tui.fleet.detect import DEFAULT_RULES, DetectionRules
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.events import SEED_WINDOW_S, EventLog, FleetEvent
from tui.fleet.exits import ExitLog
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.gpu.types import GpuReport, GpuSource, container_gpu_usage
from tui.fleet.inventory import container_info, info_from_summary, parse_time, with_clone_groups
from tui.fleet.metrics.apistats import ApiStats
from tui.fleet.metrics.cgroups import CgroupPaths, CgroupReader, RawSample
from tui.fleet.metrics.host import HostSampler
from tui.fleet.metrics.stats import compute_stats
from tui.fleet.models import (
    NO_LOG_EVENTS,
    NO_STATS,
    ContainerInfo,
    ContainerSnapshot,
    ContainerStats,
    EngineStatus,
    FleetSnapshot,
    HostSnapshot,
)
from tui.fleet.serving.logstate import LOG_ROUND_S, LogWatch, WatchCounts, merge, needs_log
from tui.fleet.serving.scrape import ServingPool

# Event actions that change what the table shows. Health checks also emit exec_* events
# every interval; those change nothing we show and are ignored.
RELEVANT_ACTIONS = frozenset(
    {
        "create",
        "start",
        "restart",
        "stop",
        "die",
        "kill",
        "pause",
        "unpause",
        "rename",
        "update",
        "oom",
        "destroy",
        "health_status",
    }
)

FIRST_INTERVAL = 0.1
"""Gap between the first two samples, so CPU figures appear well within a second."""
DETAILS_WAIT = 3.0
"""Longest a deferred first resync waits for `release_details()`."""
FIRST_FIGURES_WAIT = 1.0
"""Longest a first resync holds its inspects back for the first figures."""
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
BACKOFF_MAX_LOCAL = 0.5
"""Longest wait between two tries of an engine on this machine: a refused local socket costs
nothing to try, and a restarted dockerd should be back on screen within a second of
answering (a remote engine's tries cost a connection over the network: up to BACKOFF_MAX)."""
INSPECT_WORKERS = 8
SSH_WORKERS = 2
"""Parallel inspects of an ssh:// engine: they share one ssh connection (see SshTunnel), and a
first listing's hundreds of them over a slow link should not flood it."""
SERVING_GAP = 0.5
"""Least seconds between two scrapes of the model servers (the first two samples are 0.1 s
apart; a rate over a tenth of a second says little)."""


RUN_LOG_MARGIN_NS = 1_000_000_000
"""How long before its recorded start a run's first lines may be stamped: the engine stamps
StartedAt after the process began writing."""


def run_log_start(attrs: Mapping[str, Any]) -> int:
    """Where the log of a container's current run begins, in ns since the epoch: a little
    before its start, but after the previous run finished (its last lines are not this
    run's); 0 when the start is not known."""
    state = attrs.get("State") or {}
    started = parse_time(state.get("StartedAt"))
    if not started:
        return 0
    begin = int(started * 1e9) - RUN_LOG_MARGIN_NS
    finished = parse_time(state.get("FinishedAt"))
    if finished and finished < started:
        begin = max(begin, int(finished * 1e9) + 1_000)  # parse_time keeps microseconds
    return max(begin, 1)


def read_log(
    engine: Engine, cid: str, tail: int, since_ns: int, max_bytes: int, *, tty: bool
) -> list[tuple[int, bytes]]:
    """The engine's log messages of one container: the last `tail` since `since_ns`, at most
    `max_bytes` of them (the stream is closed there). What `LogWatch` reads with."""
    messages: list[tuple[int, bytes]] = []
    size = 0
    with engine.open_logs(cid, follow=False, tail=tail, since_ns=since_ns, tty=tty) as stream:
        while size < max_bytes:
            batch = stream.read()
            if not batch:
                break
            for message in batch:
                messages.append(message)
                size += len(message[1])
    return messages


def remote_host(url: str) -> str | None:
    """The host a remote engine's published ports are on (None for a local engine)."""
    if url.startswith(("unix://", "npipe://")):
        return None
    return urlsplit(url).hostname or ""


def next_tick(due: float, now: float, interval: float) -> float:
    """When the next sampling tick is due, given when this one was due and the time now.

    Drift-free: ticks are `interval` apart from when they were due, not from when the last
    one ended (a tick that takes a third of the interval does not stretch it by a third).
    A tick that ran past the next one's time is followed at once, and the ticks it missed
    are skipped rather than run back to back to catch up.
    """
    due += interval
    return due if due > now else now


class FleetMonitor:
    """Keeps the inventory and figures of one engine and publishes `FleetSnapshot`s."""

    def __init__(
        self,
        engine: Engine,
        *,
        rules: DetectionRules = DEFAULT_RULES,
        interval: float = 1.0,
        on_snapshot: Callable[[FleetSnapshot], None] | None = None,
        cgroups: CgroupReader | None = None,
        host: HostSampler | None = None,
        gpu: GpuSource | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.interval = interval
        self.on_snapshot = on_snapshot
        self._cgroups = cgroups if cgroups is not None else CgroupReader()
        self._host_sampler = host if host is not None else HostSampler()
        # NVML work is batched in the sampler's tick; the GPU sampler throttles itself.
        self._gpu_sampler = gpu if gpu is not None else GpuSampler()
        self._gpu: GpuReport | None = None
        self._mem_total = self._host_sampler.mem_total()
        self._lock = threading.Lock()
        self._containers: dict[str, ContainerInfo] = {}
        self._stats: dict[str, ContainerStats] = {}
        self._host = HostSnapshot()
        self._status = EngineStatus(url=engine.url)
        self._sampled = False
        # Sampler-thread state: previous readings and where each container's files are.
        self._raw: dict[str, RawSample] = {}
        self._paths: dict[str, CgroupPaths | None] = {}
        workers = SSH_WORKERS if engine.url.startswith("ssh://") else INSPECT_WORKERS
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aitop-engine")
        self._api_stats = ApiStats(engine)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._online = threading.Event()
        self._first_sample = threading.Event()
        self._first_figures = threading.Event()
        self._details_go = threading.Event()
        self._details_go.set()
        self._threads: list[threading.Thread] = []
        # Model servers: scraped on the pool's own threads; their logs read on the engine pool.
        self._serving = ServingPool(remote_host=remote_host(engine.url))
        # Running containers' log framing (TTY or not) and where their current run's log
        # begins (ns), from their inspect data.
        self._log_source: dict[str, tuple[bool, int]] = {}
        # Model containers that stopped while their log was read: when the stop was seen
        # (time.monotonic()) while their last lines (why they died, often) are still to be
        # read once, None once they were; their counts stay until they start again or go.
        self._log_final: dict[str, float | None] = {}
        self._logs = LogWatch(self._read_log)
        self._exits = ExitLog()
        self._events = EventLog()
        self._logs_busy = threading.Lock()
        self._serving_at = -SERVING_GAP
        self._logs_at: float | None = None

    # --- public API -----------------------------------------------------------------------

    def start(self, *, defer_details: bool = False) -> None:
        """Start the watcher and sampler threads (daemon threads; `stop()` ends them).

        Starting twice is harmless: the CLI starts the monitor before the UI has loaded, so
        the first figures are ready by the time the screen is. With `defer_details`, the
        inspects that complete the first listing wait for `release_details()` (at most
        DETAILS_WAIT seconds): hundreds of them beside the UI's imports slow both down.
        """
        if self._threads:
            return
        if defer_details:
            self._details_go.clear()
        # NVML loads while the engine lists its containers, not in the way of the first sample.
        self._gpu_sampler.warm_up()
        for target, name in ((self._watch, "aitop-events"), (self._sample_loop, "aitop-sampler")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def release_details(self) -> None:
        """Let a deferred first resync inspect the containers (see `start`)."""
        self._details_go.set()

    def wait_for_first_sample(self, timeout: float) -> bool:
        """Wait until the first sample is in (the listing read once); False on `timeout`.

        The CLI waits here, briefly, before loading the UI. The first sample opens every
        container's files, thousands of calls that each give up and take back the interpreter
        lock, and beside an import that holds it they take many times longer. The second
        sample, FIRST_INTERVAL later, reads open files only: it runs well beside the import,
        so the figures are in when the UI is.
        """
        return self._first_sample.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both threads and close the engine's streams (a second call does nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._online.set()
        self._first_sample.set()
        self._first_figures.set()
        self._details_go.set()
        self.engine.reset()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._serving.close()
        self._api_stats.close()
        self._gpu_sampler.close()
        self._cgroups.close()

    def connect(self) -> EngineStatus:
        """Ask the engine for its version; raises EngineError when it does not answer."""
        version = self.engine.version()
        local = self.engine.is_local and self._cgroups.available
        status = EngineStatus(
            url=self.engine.url,
            reachable=True,
            version=self.engine.product_version or str(version.get("Version", "")),
            api_version=str(version.get("ApiVersion", "")),
            stats_source="cgroup" if local else "api",
            product=self.engine.product or "Docker",
        )
        with self._lock:
            self._status = status
        return status

    def resync(self, *, on_listed: Callable[[], None] | None = None) -> None:
        """Replace the whole inventory with what the engine lists now.

        One listing call gives a first, partial picture at once (`on_listed` runs then, so
        the screen can show it); inspecting each container then fills in the rest.
        """
        quick = {
            s["Id"]: info_from_summary(s, self.rules) for s in self.engine.container_summaries()
        }
        with self._lock:
            old = self._containers
            # What an earlier inspect knew stays while the state is the same.
            self._containers = {
                cid: old[cid] if cid in old and old[cid].state == info.state else info
                for cid, info in quick.items()
            }
            self._stats = {k: v for k, v in self._stats.items() if k in quick}
        if on_listed is not None:
            on_listed()
            # Inspecting hundreds of containers competes for the interpreter with the first
            # two samples: let those finish first, so figures show within a second.
            self._first_figures.wait(FIRST_FIGURES_WAIT)
            self._details_go.wait(DETAILS_WAIT)
        infos = [i for i in self._pool.map(self._inspect, list(quick)) if i is not None]
        with self._lock:
            gone = set(self._containers).union(old) - {info.id for info in infos}
            self._containers = {info.id: info for info in infos}
            self._stats = {k: v for k, v in self._stats.items() if k in self._containers}
        for cid in gone:
            self._forget_serving(cid)

    def sample(self) -> None:
        """Take one reading of the host, its GPUs and every running container."""
        host = self._host_sampler.sample()
        gpu = self._gpu_sampler.sample_unless_busy()
        with self._lock:
            running = [c for c in self._containers.values() if c.running]
            status = self._status
        now = time.monotonic()
        readings: dict[str, RawSample] = {}
        remote: list[ContainerInfo] = []
        for info in running:
            paths = self._locate(info) if status.stats_source == "cgroup" else None
            if paths is None:
                remote.append(info)
                continue
            readings[info.id] = self._cgroups.read(paths, now, self._raw.get(info.id))
        self._cgroups.end_tick()
        if status.reachable:
            readings.update(self._api_stats.follow(c.id for c in remote))
        with self._lock:
            before = self._stats
        stats: dict[str, ContainerStats] = {}
        remote_ids = {c.id for c in remote}
        for cid, raw in readings.items():
            prev = self._raw.get(cid)
            if raw is prev and cid in before:
                # A stats stream sent nothing new since the last tick: its figures stand.
                stats[cid] = before[cid]
                continue
            source = "api" if cid in remote_ids else "cgroup"
            stats[cid] = compute_stats(raw, prev, mem_total=self._mem_total, source=source)
        sampled = bool(self._raw) or not readings
        self._raw = readings
        self._paths = {k: v for k, v in self._paths.items() if k in readings}
        with self._lock:
            self._host = host
            self._gpu = gpu
            self._stats = stats
            self._sampled = self._sampled or sampled
        self._first_sample.set()
        if sampled:
            self._first_figures.set()

    def poll_serving(self) -> None:
        """Start a scrape of every model server (never waits for them), and a round of log
        reads when one is due and none is running. The sampler calls it each tick."""
        now = time.monotonic()
        if now - self._serving_at < SERVING_GAP:
            return
        self._serving_at = now
        self._serving.poll()
        if self._logs_at is None:
            # The first scrapes say which servers need their logs read: a round later.
            self._logs_at = now
        elif now - self._logs_at >= LOG_ROUND_S and not self._logs_busy.locked():
            wanted = self._log_wanted()
            if wanted:
                self._logs_at = now
                with contextlib.suppress(RuntimeError):  # the pool shut down: stopping
                    self._pool.submit(self._log_round, wanted)

    def read_serving_logs(self, budget: float | None = None) -> int:
        """Read every running model container's log once now, on the calling thread
        (`aitop snapshot --json`), in as many rounds as that takes, starting no round after
        `budget` seconds (None: no limit); returns how many containers' logs were read."""
        wanted = self._log_wanted()
        began = time.monotonic()
        read = 0
        while read < len(wanted):
            if budget is not None and read and time.monotonic() - began >= budget:
                break
            done = self._log_round(wanted)
            if not done:
                break
            read += done
        return read

    def serving_settled(self) -> bool:
        """True once every model server's reading says all it will (its first rates, or a
        state that has none): what a one-shot snapshot waits for."""
        return self._serving.settled()

    @property
    def log_counts(self) -> WatchCounts:
        """What the log reads cost so far (`LogWatch.counts`)."""
        return self._logs.counts

    def seed_history(self) -> int:
        """Take in what the engine kept of the last `SEED_WINDOW_S` seconds (what happened
        before aitop connected): the events view's past, and the last exits and recent
        restarts; returns how many events were new. Blocking: one engine call."""
        now = time.time()
        fresh = 0
        for event in self.engine.events(
            filters={"type": "container"}, since=now - SEED_WINDOW_S, until=now
        ):
            if self._events.take(event):
                self._exits.record(event)
                fresh += 1
        return fresh

    def recent_events(self) -> tuple[FleetEvent, ...]:
        """The engine's recent container events, newest first (the events view)."""
        return self._events.recent()

    def snapshot(self) -> FleetSnapshot:
        """The current picture, as an immutable snapshot."""
        readings = self._serving.readings()
        signals = self._logs.signals()
        sources = self._log_source.copy()  # other threads change it
        events = self._logs.events({cid: source[1] for cid, source in sources.items()})
        now = time.time()
        with self._lock:
            usage = container_gpu_usage(self._gpu) if self._gpu is not None else {}
            containers = tuple(
                ContainerSnapshot(
                    self._exits.complete(info, now),
                    self._stats.get(info.id, NO_STATS),
                    usage.get(info.id, ()),
                    # What a stopped container's log said of its server is not its state.
                    merge(
                        readings.get(info.id),
                        signals.get(info.id) if info.state == "running" else None,
                    ),
                    self._serving.history(info.id) if info.id in readings else (),
                    events.get(info.id, NO_LOG_EVENTS),
                )
                # Clones under their origin, as compose replicas under their service.
                for info in with_clone_groups(
                    sorted(self._containers.values(), key=lambda i: i.name)
                )
            )
            return FleetSnapshot(
                engine=self._status,
                host=self._host,
                containers=containers,
                taken_at=time.time(),
                sampled=self._sampled,
                gpu=self._gpu,
            )

    def apply_event(self, event: Mapping[str, Any]) -> bool:
        """Bring the inventory up to date with one engine event; True if anything changed."""
        if event.get("Type") != "container":
            return False
        if self._events.take(event):  # the history and the live stream overlap at the seam
            self._exits.record(event)
        action = str(event.get("Action") or event.get("status") or "")
        if action.split(":", 1)[0] not in RELEVANT_ACTIONS:
            return False
        cid = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not cid:
            return False
        info = None if action == "destroy" else self._inspect(cid)
        if info is None:
            self._forget_serving(cid)
        with self._lock:
            if info is None:
                self._containers.pop(cid, None)
                self._stats.pop(cid, None)
            else:
                self._containers[cid] = info
                if not info.running:
                    self._stats.pop(cid, None)
        return True

    # --- threads -----------------------------------------------------------------------------

    def _publish(self) -> None:
        if self.on_snapshot is not None and not self._stop.is_set():
            self.on_snapshot(self.snapshot())

    def _watch(self) -> None:
        backoff = BACKOFF_START
        while not self._stop.is_set():
            try:
                self.connect()
                # Subscribe before listing, so nothing that happens in between is missed.
                events = self.engine.events(filters={"type": "container"})
                self.resync(on_listed=self._listed)
                self._publish()
                # After the first frame: the past (exits, restarts, the events view) follows.
                self.seed_history()
                backoff = BACKOFF_START
                for event in events:
                    if self._stop.is_set():
                        return
                    if self.apply_event(event):
                        self._publish()
                raise EngineError(f"the Docker engine at {self.engine.url} closed its event stream")
            except EngineError as exc:
                if self._stop.is_set():
                    return
                self._online.clear()
                self.engine.reset()
                with self._lock:
                    self._status = replace(
                        self._status, reachable=False, error=str(exc), retry_in=backoff
                    )
                    self._stats = {}
                self._raw = {}
                self._publish()
                self._stop.wait(backoff)
                longest = BACKOFF_MAX_LOCAL if self.engine.is_local else BACKOFF_MAX
                backoff = min(backoff * 2, longest)

    def _sample_loop(self) -> None:
        due = time.monotonic()  # when the tick about to run was due
        while not self._stop.is_set():
            if not self._online.is_set():
                self._online.wait()
                due = time.monotonic()  # back online: the schedule starts again
            if self._stop.is_set():
                return
            self._wake.clear()
            first = not self._raw
            with contextlib.suppress(Exception):
                self.sample()
            with contextlib.suppress(Exception):
                self.poll_serving()
            self._publish()
            if first:
                self._stop.wait(FIRST_INTERVAL)
                due = time.monotonic()
                continue
            due = next_tick(due, time.monotonic(), self.interval)
            while not self._stop.is_set() and (left := due - time.monotonic()) > 0:
                if self._wake.wait(left):
                    self._wake.clear()
                    if not self._raw:
                        due = time.monotonic()  # resynchronised: sample it at once
                        break

    # --- helpers ---------------------------------------------------------------------------

    def _listed(self) -> None:
        # The listing is in: sample and show it while the inspects run.
        self._online.set()
        self._wake.set()
        self._publish()

    def _inspect(self, cid: str) -> ContainerInfo | None:
        try:
            attrs = self.engine.inspect(cid)
        except ContainerGone:
            return None
        info = container_info(attrs, self.rules)
        # A paused server cannot answer: its scrapes would hold a worker to the deadline.
        serving = info.state == "running"
        self._serving.watch(cid, attrs, info.pid if serving else 0)
        if serving:
            tty = bool((attrs.get("Config") or {}).get("Tty"))
            self._log_source[cid] = (tty, run_log_start(attrs))
            self._log_final.pop(cid, None)
        elif cid in self._log_final:
            pass  # stopped before: its last lines are read (or to be)
        elif cid in self._log_source and info.is_model:
            self._log_final[cid] = time.monotonic()
        else:
            self._log_source.pop(cid, None)
            self._logs.forget(cid)
        return info

    def _forget_serving(self, cid: str) -> None:
        self._serving.forget(cid)
        self._logs.forget(cid)
        self._log_source.pop(cid, None)
        self._log_final.pop(cid, None)
        self._exits.forget(cid)

    def _log_wanted(self) -> list[tuple[str, int]]:
        """The running model containers, each with the start of its current run (ns), and
        those that stopped since their last read. `LogWatch` reads the longest unread first,
        so every one is read in turn (for its event counts); among those never read, the
        ones whose state their server's pages do not tell go first (their log is the only
        witness)."""
        readings = self._serving.readings()
        with self._lock:
            infos = [c for c in self._containers.values() if c.is_model and c.state == "running"]
        sources = self._log_source
        wanted = [(info.id, sources[info.id][1]) for info in infos if info.id in sources]
        wanted.sort(key=lambda item: not needs_log(readings.get(item[0])))
        for cid, stopped in list(self._log_final.items()):
            source = sources.get(cid)
            if stopped is not None and source is not None:
                wanted.append((cid, source[1]))
        return wanted

    def _log_round(self, wanted: list[tuple[str, int]]) -> int:
        with self._logs_busy:
            read = self._logs.round(wanted)
            for cid, stopped in list(self._log_final.items()):
                last = self._logs.read_at(cid)
                if stopped is not None and last is not None and last > stopped:
                    self._log_final[cid] = None
            return read

    def _read_log(
        self, cid: str, tail: int, since_ns: int, max_bytes: int
    ) -> list[tuple[int, bytes]]:
        return read_log(self.engine, cid, tail, since_ns, max_bytes, tty=self._log_source[cid][0])

    def _locate(self, info: ContainerInfo) -> CgroupPaths | None:
        paths = self._paths.get(info.id)
        if paths is None or (info.pid and paths.pid != info.pid):
            if info.pid:
                paths = self._cgroups.locate(info.pid, info.id)
            # Not inspected yet (no PID known), or its cgroup is not where its PID says:
            # look the container up by id in the hierarchy.
            if paths is None:
                paths = self._cgroups.find(info.id)
            self._paths[info.id] = paths
        return paths
