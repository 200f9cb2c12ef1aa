"""Fleet snapshots to and from plain JSON-able dicts: recorded fleets for snapshot tests,
screenshots and bug reports, replayed exactly as the monitor published them."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from tui.fleet.gpu.types import ContainerGpu, GpuDevice, GpuProcess, GpuReport
from tui.fleet.logs.types import LineKind
from tui.fleet.models import (
    ContainerInfo,
    ContainerSnapshot,
    ContainerStats,
    EngineStatus,
    FleetSnapshot,
    HostSnapshot,
    LastExit,
    LogEventCounts,
)
from tui.fleet.serving.types import HistoryPoint, LoadedModel, ServingReading, ServingState


def dump(snapshot: FleetSnapshot) -> dict[str, Any]:
    """A snapshot as nested dicts and lists (labels become a plain dict)."""

    def plain(value: object) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, MappingProxyType | dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(snapshot)


def _tuples(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**data, **{n: tuple(data[n]) for n in names if n in data}}


def load_gpu(data: dict[str, Any] | None) -> GpuReport | None:
    """The GPU report `dump()` produced (None stays None)."""
    if data is None:
        return None
    devices = tuple(
        GpuDevice(**_tuples(d, "util_history", "mem_history")) for d in data.get("devices", ())
    )
    processes = tuple(GpuProcess(**p) for p in data.get("processes", ()))
    return GpuReport(**{**data, "devices": devices, "processes": processes})


def load_serving(data: dict[str, Any] | None) -> ServingReading | None:
    """The serving reading `dump()` produced (None stays None)."""
    if data is None:
        return None
    models = data.get("loaded_models")
    return ServingReading(
        **{
            **data,
            "state": ServingState(**data["state"]),
            "loaded_models": None if models is None else tuple(LoadedModel(**m) for m in models),
        }
    )


def load_info(data: dict[str, Any]) -> ContainerInfo:
    """The container info `dump()` produced (recordings older than a field get its default)."""
    exit_data = data.get("last_exit")
    return ContainerInfo(
        **{
            **_tuples(data, "ports", "gpus_assigned"),
            "labels": MappingProxyType(dict(data.get("labels", {}))),
            "last_exit": None if exit_data is None else LastExit(**exit_data),
        }
    )


def load_log_events(data: dict[str, Any] | None) -> LogEventCounts:
    """The log event counts `dump()` produced (none in older recordings)."""
    if data is None:
        return LogEventCounts()
    counts = tuple((LineKind(kind), int(n)) for kind, n in data.get("counts", ()))
    return LogEventCounts(counts, bool(data.get("read", False)), bool(data.get("partial", False)))


def load(data: dict[str, Any]) -> FleetSnapshot:
    """The snapshot `dump()` produced."""
    containers = tuple(
        ContainerSnapshot(
            info=load_info(c["info"]),
            stats=ContainerStats(**c["stats"]),
            gpus=tuple(ContainerGpu(**g) for g in c.get("gpus", ())),
            serving=load_serving(c.get("serving")),
            serving_history=tuple(HistoryPoint(**p) for p in c.get("serving_history", ())),
            log_events=load_log_events(c.get("log_events")),
        )
        for c in data.get("containers", ())
    )
    host = HostSnapshot(
        **_tuples(data["host"], "per_cpu_percent", "load_average", "cpu_history", "mem_history")
    )
    return FleetSnapshot(
        engine=EngineStatus(**data["engine"]),
        host=host,
        containers=containers,
        taken_at=data.get("taken_at", 0.0),
        sampled=data.get("sampled", False),
        gpu=load_gpu(data.get("gpu")),
    )
