"""The machine aitop runs on (the only importer of `psutil`)."""

from __future__ import annotations

import os
from collections import deque

import psutil

from tui.fleet.models import HostSnapshot

HISTORY = 120
"""Samples kept for the host sparklines."""


class HostSampler:
    """Samples host CPU, memory and load; keeps a short, bounded history for sparklines."""

    def __init__(self, history: int = HISTORY) -> None:
        self._cpu: deque[float] = deque(maxlen=history)
        self._mem: deque[float] = deque(maxlen=history)
        # The first cpu_percent(None) call only arms psutil's delta; its 0.0 is meaningless.
        psutil.cpu_percent(interval=None, percpu=True)

    @staticmethod
    def mem_total() -> int:
        """Total physical memory in bytes."""
        return int(psutil.virtual_memory().total)

    def sample(self) -> HostSnapshot:
        """CPU since the last call, memory and load now."""
        per_cpu = tuple(psutil.cpu_percent(interval=None, percpu=True))
        total = sum(per_cpu) / len(per_cpu) if per_cpu else 0.0
        vm = psutil.virtual_memory()
        used = int(vm.total - vm.available)
        try:
            load = os.getloadavg()
        except OSError:
            load = (0.0, 0.0, 0.0)
        self._cpu.append(total)
        self._mem.append(100.0 * used / vm.total if vm.total else 0.0)
        return HostSnapshot(
            cpu_percent=total,
            per_cpu_percent=per_cpu,
            mem_used_bytes=used,
            mem_total_bytes=int(vm.total),
            load_average=(load[0], load[1], load[2]),
            cpu_history=tuple(self._cpu),
            mem_history=tuple(self._mem),
        )
