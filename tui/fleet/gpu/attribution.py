"""Which container holds a GPU process: NVML reports host PIDs, and a process belongs to the
container whose id appears in its `/proc/<pid>/cgroup`; one whose cgroup names no container is
a host process.

Attribution needs our `/proc` to show the host's processes. The sound test is the PID
namespace: the kernel's initial PID namespace always has inode 0xEFFFFFFC (4026531836,
PROC_PID_INIT_INO), so `/proc/self/ns/pid` reading `pid:[4026531836]` means aitop sees host
PIDs (on the host, or in a container run with `--pid=host`). Any other namespace means NVML's
PIDs cannot be mapped from here, and the report says so instead of guessing. Where the
namespace link cannot be read, attribution is refused when none of NVML's PIDs exists in our
`/proc`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from tui.fleet.gpu.types import (
    ORIGIN_CONTAINER,
    ORIGIN_HOST,
    ORIGIN_UNKNOWN,
    GpuProcess,
)

INIT_PID_NAMESPACE = "pid:[4026531836]"
"""`readlink /proc/self/ns/pid` in the kernel's initial PID namespace (PROC_PID_INIT_INO)."""


_CONTAINER_COMPONENT = re.compile(r"^(?:[\w.-]*?[-_:])?([0-9a-f]{64})(?:\.scope|\.slice)?$")


def container_id_from_cgroup(text: str) -> str | None:
    """The 64-hex container id in the text of a `/proc/<pid>/cgroup`, or None.

    Understands the cgroupfs layout (`/docker/<id>`), systemd scopes (`docker-<id>.scope`),
    podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`), containerd and CRI-O under
    Kubernetes (`/kubepods/.../<id>`, `cri-containerd-<id>.scope`, `crio-<id>.scope`).
    Monitor processes (`libpod-conmon-<id>`) are not containers. When containers nest
    (`/docker/<outer>/docker/<inner>`), the innermost id is returned.
    """
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        found = None
        for component in path.split("/"):
            if "conmon" in component:
                continue
            match = _CONTAINER_COMPONENT.match(component)
            if match:
                found = match.group(1)
        if found:
            return found
    return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


_NO_HOST_PIDS_MESSAGE = (
    "aitop runs in a PID namespace of its own (a container without --pid=host): NVML's host "
    "PIDs cannot be mapped to containers from here; run aitop on the host or with --pid=host"
)


class Attributor:
    """Maps NVML's host PIDs to containers through `/proc` below `proc_root`.

    `host_pid_namespace` overrides the detection of whether that `/proc` shows host PIDs
    (None: detect, see the module docstring; the answer is kept once known).
    """

    def __init__(self, proc_root: str = "/proc", host_pid_namespace: bool | None = None) -> None:
        self.proc_root = proc_root
        self._host_pidns = host_pid_namespace

    def possible(self, pids: Iterable[int]) -> tuple[bool, str]:
        """(True, "") when NVML's PIDs can be mapped to containers from here, else (False, why)."""
        host = self._host_pidns
        if host is None:
            try:
                link = os.readlink(os.path.join(self.proc_root, "self", "ns", "pid"))
            except OSError:
                link = None
            if link is not None:
                host = link == INIT_PID_NAMESPACE
                self._host_pidns = host
        if host is True:
            return True, ""
        if host is False:
            return False, _NO_HOST_PIDS_MESSAGE
        pids = list(pids)
        if pids and not any(os.path.exists(os.path.join(self.proc_root, str(p))) for p in pids):
            return False, _NO_HOST_PIDS_MESSAGE
        return True, ""

    def process(self, raw: tuple[int, int, int | None, float | None], possible: bool) -> GpuProcess:
        """One NVML process entry (index, pid, mem, util) with its command and container."""
        index, pid, mem, util = raw
        base = os.path.join(self.proc_root, str(pid))
        command = ""
        origin = ORIGIN_UNKNOWN
        container_id = None
        if possible:
            cmdline = _read_text(os.path.join(base, "cmdline"))
            if not cmdline or not cmdline.strip("\0"):
                cmdline = _read_text(os.path.join(base, "comm")) or ""
            # Untrusted text: no control characters (escape sequences) reach the UI.
            printable = "".join(c if c.isprintable() else " " for c in cmdline)
            command = " ".join(printable.split())[:200]
            cgroup = _read_text(os.path.join(base, "cgroup"))
            if cgroup is not None:
                container_id = container_id_from_cgroup(cgroup)
                origin = ORIGIN_CONTAINER if container_id else ORIGIN_HOST
        return GpuProcess(
            pid=pid,
            container_id=container_id,
            mem_bytes=mem,
            util_percent=util,
            gpu_index=index,
            command=command,
            origin=origin,
        )
