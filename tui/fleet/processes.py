"""A container's processes, with the GPU memory each holds, and a signal to one of them.

What `docker top` lists (host PIDs, from the engine's own `ps`), joined with NVML's process
list by host PID: nvitop's process table, restricted to one container. Command lines are
written by whoever started the process: untrusted, made safe here.
"""

from __future__ import annotations

import os
import signal as signals
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.gpu.types import GpuReport
from tui.fleet.sanitize import safe_text

MAX_PROCESSES = 500
"""Most processes listed (a fork bomb inside must not fill the view)."""
MAX_COMMAND = 300
"""Longest command line kept."""


@dataclass(frozen=True)
class ContainerProcess:
    """One process of a container, as the host sees it."""

    pid: int
    """Host PID."""
    ppid: int
    cpu_percent: float | None
    """CPU time over its lifetime, % of one core (ps's figure)."""
    rss_bytes: int | None
    elapsed_s: int | None
    """Seconds since it started."""
    command: str
    gpu_mem_bytes: int | None = None
    """GPU memory it holds, summed over its GPUs; None when it holds none (or NVML cannot
    tell)."""
    gpus: tuple[int, ...] = ()
    """Indexes of the GPUs it holds memory on."""


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError:
        return None


def parse_top(answer: Mapping[str, Any], gpu: GpuReport | None = None) -> list[ContainerProcess]:
    """The processes of one `Engine.top()` answer, parents before children, each with the GPU
    memory NVML says it holds."""
    titles = [str(t).upper() for t in answer.get("Titles") or ()]
    column = {name: n for n, name in enumerate(titles)}
    held: dict[int, tuple[int | None, list[int]]] = {}
    for proc in gpu.processes if gpu is not None else ():
        mem, indexes = held.get(proc.pid, (0, []))
        total = None if mem is None or proc.mem_bytes is None else mem + proc.mem_bytes
        held[proc.pid] = (total, [*indexes, proc.gpu_index])

    def cell(row: Sequence[Any], name: str) -> str:
        n = column.get(name)
        return str(row[n]) if n is not None and n < len(row) else ""

    found = []
    for row in list(answer.get("Processes") or ())[:MAX_PROCESSES]:
        pid = _number(cell(row, "PID"), int)
        if pid is None:
            continue
        rss_kib = _number(cell(row, "RSS"), int)
        mem, indexes = held.get(pid, (None, []))
        found.append(
            ContainerProcess(
                pid=pid,
                ppid=_number(cell(row, "PPID"), int) or 0,
                cpu_percent=_number(cell(row, "%CPU"), float),
                rss_bytes=None if rss_kib is None else rss_kib * 1024,
                elapsed_s=_number(cell(row, "ELAPSED"), int),
                command=safe_text(cell(row, "COMMAND") or cell(row, "CMD"), limit=MAX_COMMAND),
                gpu_mem_bytes=mem if indexes else None,
                gpus=tuple(sorted(set(indexes))),
            )
        )
    return found


def container_processes(
    engine: Engine, container_id: str, gpu: GpuReport | None = None
) -> list[ContainerProcess]:
    """The container's processes now (blocking: one engine call); raises EngineError."""
    return parse_top(engine.top(container_id), gpu)


def signal_process(engine: Engine, container_id: str, pid: int, signal: str) -> None:
    """Send `signal` (a name such as "SIGTERM", or a number) to one process of a container.

    Only for an engine on this machine (the host PID is ours to signal), and only when the PID
    is still one of the container's processes (a PID reused by another process since the
    list was read is refused); raises EngineError saying why not.
    """
    engine.check_writable(f"signal process {pid}")
    if not engine.is_local:
        raise EngineError(
            f"a signal to one process needs the engine on this machine ({engine.url} is not)"
        )
    number = signal_number(signal)
    if number is None:
        raise EngineError(f"unknown signal {signal!r}: use a name (SIGTERM) or a number 1-64")
    if pid not in {p.pid for p in container_processes(engine, container_id)}:
        raise EngineError(f"process {pid} is no longer in {container_id[:12]}: nothing sent")
    try:
        os.kill(pid, number)
    except ProcessLookupError as exc:
        raise EngineError(f"process {pid} ended before the signal: nothing sent") from exc
    except PermissionError as exc:
        raise EngineError(f"not allowed to signal process {pid} (run aitop as root)") from exc


def signal_number(signal: str) -> int | None:
    """The number of a signal given by name ("SIGTERM", "term") or number ("15"), or None."""
    text = signal.strip().upper()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 64 else None
    name = text if text.startswith("SIG") else f"SIG{text}"
    found = signals.Signals.__members__.get(name)
    return int(found) if found is not None else None
