"""What the application knows of the engines it watches: the latest fleet of each, the fleets as
one picture, and which engine owns each container (the one place that knows).

Plain data, no Textual: the app updates it on the event loop from `FleetUpdated` messages, and
action workers read it from their threads. Every update replaces its values whole, never
changes one in place, so a reader on another thread sees either the old picture or the new.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from tui.fleet.engine.client import Engine
from tui.fleet.gpu.types import GpuReport
from tui.fleet.models import ContainerInfo, EngineStatus, FleetSnapshot
from tui.fleet.source import FleetSource
from widgets.container_table import host_label


def is_local_url(url: str) -> bool:
    """True when an engine URL names this machine (its GPUs are the ones NVML sees here)."""
    return url.startswith(("unix://", "npipe://"))


def combined_status(fleets: Sequence[FleetSnapshot]) -> EngineStatus:
    """One status for several engines, for the status line: reachable while any answers."""
    up = [f.engine for f in fleets if f.engine.reachable]
    down = [f.engine for f in fleets if not f.engine.reachable]

    def joined(values: Iterable[str]) -> str:
        return "/".join(dict.fromkeys(v for v in values if v))

    labels = ", ".join(host_label(f.engine.url) for f in fleets)
    return EngineStatus(
        url=f"{len(fleets)} engines: {labels}",
        reachable=bool(up),
        version=joined(e.version for e in up),
        api_version=joined(e.api_version for e in up),
        error="; ".join(f"{host_label(e.url)}: {e.error or 'connecting'}" for e in down),
        retry_in=min((e.retry_in for e in down if e.retry_in), default=0.0),
        stats_source=joined(e.stats_source for e in up),
        product=joined(e.product for e in up) or "Docker",
    )


def unreachable_notes(fleets: Sequence[FleetSnapshot]) -> list[str]:
    """ "<host>: unreachable, retrying in 4s" for each engine of several that does not answer."""
    notes = []
    for fleet in fleets:
        engine = fleet.engine
        if not engine.reachable and engine.error:
            retry = f" in {engine.retry_in:.0f}s" if engine.retry_in else ""
            notes.append(f"{host_label(engine.url)}: unreachable, retrying{retry}")
    return notes


def own_gpus(url: str, snapshot: FleetSnapshot) -> GpuReport | None:
    """The report of the GPUs of the machine an engine runs on, named as the table names its
    host; None where that machine's GPUs are out of reach.

    A local engine's report is this machine's. A remote engine's is its own only when it was
    read there (an ssh:// engine: nvidia-smi over ssh, `host` set); a report of this
    machine's NVML says nothing of another machine's containers, and is dropped.
    """
    gpu = snapshot.gpu
    if gpu is None or is_local_url(url):
        return gpu
    return replace(gpu, host=host_label(url)) if gpu.host else None


class Fleets:
    """The engines watched (in the order given), the latest snapshot of each, and their union.

    With one engine the union is that engine's snapshot and no container has a host (`host_of`
    is None): there is nothing to tell apart.
    """

    def __init__(self, engines: Sequence[tuple[str, Engine | None]]) -> None:
        """`engines`: (URL, engine) of each engine watched; None for a recorded fleet."""
        self.urls: tuple[str, ...] = tuple(url for url, _ in engines)
        """The URL of each engine watched, in order."""
        self.engines: tuple[Engine | None, ...] = tuple(engine for _, engine in engines)
        """The engine of each URL (None for a recorded fleet)."""
        self._latest: tuple[FleetSnapshot | None, ...] = (None,) * len(self.urls)
        self._shown: tuple[FleetSnapshot, ...] = ()
        self._snapshot: FleetSnapshot | None = None
        self._owners: dict[str, str] = {}

    @classmethod
    def of(cls, sources: Sequence[FleetSource]) -> Fleets:
        """The fleets of these sources (each one's URL read from its current snapshot)."""
        return cls([(source.snapshot().engine.url, source.engine) for source in sources])

    # --- what is known ---------------------------------------------------------------------

    @property
    def several(self) -> bool:
        """True when more than one engine is watched (rows are grouped by host)."""
        return len(self.urls) > 1

    @property
    def engine(self) -> Engine | None:
        """The first engine (the only one, usually); None for a recorded fleet."""
        return self.engines[0] if self.engines else None

    @property
    def read_only(self) -> bool:
        """True when an engine refuses every change (`aitop --read-only`): the UI hides them."""
        return any(e is not None and e.read_only for e in self.engines)

    @property
    def snapshot(self) -> FleetSnapshot | None:
        """Every engine's latest fleet as one snapshot; None before the first arrives."""
        return self._snapshot

    @property
    def shown(self) -> tuple[FleetSnapshot, ...]:
        """Each engine's fleet as the table shows it (one per engine, in order)."""
        return self._shown

    @property
    def latest(self) -> tuple[FleetSnapshot, ...]:
        """The snapshots that arrived so far, one per engine that sent one."""
        return tuple(f for f in self._latest if f is not None)

    def host_of(self, container_id: str) -> str | None:
        """The URL of the engine a container belongs to; None with one engine."""
        return self._owners.get(container_id)

    def engine_for(
        self, container_id: str | None = None, *, host: str | None = None
    ) -> Engine | None:
        """The engine that owns a container, or the engine of a host's rows."""
        if not self.several:
            return self.engine
        if host is None and container_id is not None:
            host = self.host_of(container_id)
        if host in self.urls:
            return self.engines[self.urls.index(host)]
        return self.engine

    def containers(self, host: str | None = None) -> tuple[ContainerInfo, ...]:
        """The containers of every engine, or of the engine `host` only."""
        snapshot = self._snapshot
        if snapshot is None:
            return ()
        infos = (c.info for c in snapshot.containers)
        if host is None:
            return tuple(infos)
        return tuple(i for i in infos if self.host_of(i.id) == host)

    # --- updates ---------------------------------------------------------------------------

    def update(self, index: int, snapshot: FleetSnapshot) -> FleetSnapshot:
        """Take engine `index`'s new snapshot; returns the union now shown."""
        latest = list(self._latest)
        latest[index] = snapshot
        self._latest = tuple(latest)
        if not self.several:
            url, gpu = self.urls[index], snapshot.gpu
            if gpu is not None and gpu.host and not is_local_url(url):
                # Its own machine's GPUs, named as the table names the host. (A report of
                # this machine's NVML stays, for the one engine watched: its pane says whose.)
                snapshot = replace(snapshot, gpu=own_gpus(url, snapshot))
            self._shown = (snapshot,)
            self._snapshot = snapshot
            return snapshot
        combined, shown = self._combine()
        self._owners = {c.info.id: f.engine.url for f in shown for c in f.containers}
        self._shown = shown
        self._snapshot = combined
        return combined

    def _combine(self) -> tuple[FleetSnapshot, tuple[FleetSnapshot, ...]]:
        """Several engines' latest fleets as one snapshot (all containers, this machine's
        host figures, a combined engine status, every machine's GPUs), and each engine's
        fleet to show (with the GPUs of its own machine only, `own_gpus`).

        The combined GPU report is this machine's, the other machines' in its `others`
        (in the engines' order); with no local engine, the first remote one's leads."""
        fleets = []
        for url, fleet in zip(self.urls, self._latest, strict=True):
            if fleet is None:
                fleet = FleetSnapshot(engine=EngineStatus(url=url))
            elif not is_local_url(url):
                fleet = replace(fleet, gpu=own_gpus(url, fleet))
            fleets.append(fleet)
        local = [f for f in fleets if is_local_url(f.engine.url)] or fleets
        here = next((f.gpu for f in fleets if is_local_url(f.engine.url) and f.gpu), None)
        elsewhere = [f.gpu for f in fleets if not is_local_url(f.engine.url) and f.gpu]
        if here is None and elsewhere:
            here = elsewhere.pop(0)
        combined = FleetSnapshot(
            engine=combined_status(fleets),
            host=local[0].host,
            containers=tuple(c for f in fleets for c in f.containers),
            taken_at=max(f.taken_at for f in fleets),
            sampled=all(f.sampled for f in fleets if f.engine.reachable),
            gpu=replace(here, others=tuple(elsewhere)) if here is not None else None,
        )
        return combined, tuple(fleets)
