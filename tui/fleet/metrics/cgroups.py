"""Container figures from the kernel's cgroup and /proc files: what the engine itself reads.

A container's cgroup is found from its main process (`/proc/<pid>/cgroup`), never guessed from
the engine's naming, so cgroup v1 and v2, the systemd and cgroupfs drivers and other engines'
layouts all work (Docker's `docker/<id>` or `docker-<id>.scope`, Podman's
`libpod_parent/libpod-<id>` or `machine.slice/libpod-<id>.scope`). Reading a handful of small
files costs microseconds, where the stats API costs a second or two per container.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace

from tui.fleet.metrics.openfiles import OpenFiles

CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
INDEX_DEPTH = 6
"""How deep below a hierarchy's root container cgroups are looked for (kubepods nest deep)."""
INDEX_MIN_AGE = 2.0
"""Seconds before a lookup that missed may rescan the hierarchy."""


@dataclass(frozen=True)
class CgroupPaths:
    """Where one container's accounting files live."""

    version: int
    cpu: str
    memory: str
    io: str
    pid: int


@dataclass(frozen=True)
class RawSample:
    """Cumulative counters read at one instant; rates come from two of them."""

    at: float
    """Monotonic time of the reading, seconds."""
    cpu_ns: int | None
    mem_usage: int | None
    mem_inactive_file: int
    mem_limit: int | None
    net_rx: int | None
    net_tx: int | None
    blk_read: int | None
    blk_write: int | None
    io_at: float | None = None
    """When memory, network and block I/O were read, if earlier than `at` (an idle tick)."""
    idle_ticks: int = 0
    """Ticks in a row these figures were carried over from an idle container's last reading."""

    @property
    def io_time(self) -> float:
        """Monotonic time of the memory, network and block I/O figures."""
        return self.at if self.io_at is None else self.io_at


def _read(path: str) -> bytes:
    # os.open/os.read skip the text layer: this runs for every container every tick.
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _parse_int(text: bytes) -> int | None:
    """A counter file's value; None for "max" (no limit) or anything unreadable."""
    text = text.strip()
    if text == b"max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(data: bytes, key: bytes) -> int | None:
    start = data.find(b"\n" + key + b" ")
    if start < 0:
        if not data.startswith(key + b" "):
            return None
        start = -1
    start += len(key) + 2
    end = data.find(b"\n", start)
    try:
        return int(data[start : end if end >= 0 else None])
    except ValueError:
        return None


def _first_pid(cgroup: str, *, nested: bool = True) -> int | None:
    """A process in `cgroup`, or in a cgroup right below it, or None.

    With cgroup v2 a process may only live in a leaf, so an engine that nests the container's
    processes one level down (Podman's `libpod-<id>.scope/container`) leaves the top empty.
    """
    try:
        first = _read(cgroup + "/cgroup.procs").split(b"\n", 1)[0]
    except OSError:
        return None
    if first.strip():
        try:
            return int(first)
        except ValueError:
            return None
    if not nested:
        return None
    try:
        children = sorted(e.path for e in os.scandir(cgroup) if e.is_dir(follow_symlinks=False))
    except OSError:
        return None
    for child in children:
        pid = _first_pid(child, nested=False)
        if pid is not None:
            return pid
    return None


_MEMORY_FILES = {
    1: ("memory.usage_in_bytes", "memory.limit_in_bytes", b"total_inactive_file"),
    2: ("memory.current", "memory.max", b"inactive_file"),
}
"""By cgroup version: the memory usage and limit files, and memory.stat's inactive-cache key
(the docker CLI's memory is usage less that cache)."""
IDLE_FULL_EVERY = 5
"""A container that uses no CPU has its memory, network and block I/O read one tick in this
many (as cAdvisor's dynamic housekeeping backs off for idle containers)."""
LIMIT_EVERY = 10
"""A container's memory limit is read on one tick in this many."""
LIMITS_CACHE = 4096
"""Memory limits remembered; the cache starts over beyond it."""
NETNS_CACHE = 4096
"""Processes whose network namespace is remembered; the cache starts over beyond it."""


class CgroupReader:
    """Reads container figures from cgroup files below `sys_root` and `/proc` below `proc_root`.

    The roots are parameters so tests can point the reader at recorded file trees.
    """

    def __init__(self, *, proc_root: str = "/proc", mounts_file: str | None = None) -> None:
        self.proc_root = proc_root
        self._mounts_file = mounts_file or os.path.join(proc_root, "self", "mounts")
        self._v1: dict[str, str] = {}
        self._v2: str | None = None
        self._load_mounts()
        self._host_netns = self._netns(1)
        self._index: dict[str, str] = {}
        self._indexed_at = -INDEX_MIN_AGE
        self._files = OpenFiles(keep_ticks=2 * IDLE_FULL_EVERY)
        # A container's main process keeps its network namespace: look it up once per pid.
        self._netns_of: dict[int, str | None] = {}
        self._limits: dict[str, tuple[int, int | None]] = {}

    def end_tick(self) -> None:
        """Close the files of containers not read since the last call (they stopped or left)."""
        self._files.end_tick()

    def close(self) -> None:
        """Close every file kept open for reading."""
        self._files.close()

    def _limit(self, path: str) -> int | None:
        """A memory limit, read again every `LIMIT_EVERY` calls: it changes only with
        `docker update`, and skipping it is one file fewer per container per tick."""
        left, value = self._limits.get(path, (0, None))
        if left > 0:
            self._limits[path] = (left - 1, value)
            return value
        if len(self._limits) > LIMITS_CACHE:
            self._limits.clear()
        value = self._int(path)
        self._limits[path] = (LIMIT_EVERY - 1, value)
        return value

    def _stat(self, path: str) -> bytes:
        """A `key value` stat file's content; empty when it cannot be read."""
        try:
            return self._files.read(path)
        except OSError:
            return b""

    def _int(self, path: str) -> int | None:
        try:
            return _parse_int(self._files.read(path))
        except OSError:
            return None

    def _load_mounts(self) -> None:
        try:
            with open(self._mounts_file, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            fstype, mountpoint, options = parts[2], parts[1], parts[3].split(",")
            if fstype == "cgroup2":
                self._v2 = self._v2 or mountpoint
            elif fstype == "cgroup":
                for opt in options:
                    if opt in ("cpu", "cpuacct", "memory", "blkio"):
                        self._v1.setdefault(opt, mountpoint)

    @property
    def available(self) -> bool:
        """True when some cgroup hierarchy is mounted where this reader can see it."""
        return bool(self._v1) or self._v2 is not None

    def _netns(self, pid: int) -> str | None:
        try:
            return os.readlink(os.path.join(self.proc_root, str(pid), "ns", "net"))
        except OSError:
            return None

    def locate(self, pid: int, container_id: str) -> CgroupPaths | None:
        """The cgroup of the container whose main process is `pid`, or None.

        The container id must appear in the cgroup path: a PID from another machine's engine
        (or one reused after the container died) never matches a local process by accident.
        """
        if pid <= 0:
            return None
        try:
            text = _read(os.path.join(self.proc_root, str(pid), "cgroup")).decode(
                "utf-8", "replace"
            )
        except OSError:
            return None
        if container_id not in text:
            return None
        v1: dict[str, str] = {}
        unified = ""
        for line in text.splitlines():
            hier, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if hier == "0" and controllers == "":
                unified = path
            for ctl in controllers.split(","):
                v1[ctl] = path
        if "memory" in v1 and "memory" in self._v1:

            def where(ctl: str) -> str:
                return self._v1.get(ctl, "") + v1.get(ctl, "")

            return CgroupPaths(1, where("cpuacct"), where("memory"), where("blkio"), pid)
        if unified and self._v2:
            base = self._v2 + unified
            return CgroupPaths(2, base, base, base, pid)
        return None

    def find(self, container_id: str) -> CgroupPaths | None:
        """The cgroup of a container found by its id in the hierarchy, without its PID.

        Used before the engine has told us the PID (the first frame lists containers
        without inspecting each one). The directory's name must hold the full id.
        """
        rel = self._index.get(container_id)
        if rel is None and time.monotonic() - self._indexed_at >= INDEX_MIN_AGE:
            self._reindex()
            rel = self._index.get(container_id)
        if rel is None:
            return None
        if "memory" in self._v1:
            memory = self._v1["memory"] + rel
            paths = (self._v1.get("cpuacct", "") + rel, memory, self._v1.get("blkio", "") + rel)
            version = 1
        elif self._v2 is not None:
            memory = self._v2 + rel
            paths = (memory, memory, memory)
            version = 2
        else:
            return None
        pid = _first_pid(memory)
        if pid is None:
            return None
        return CgroupPaths(version, paths[0], paths[1], paths[2], pid)

    def _reindex(self) -> None:
        self._indexed_at = time.monotonic()
        root = self._v1.get("memory") or self._v2
        index: dict[str, str] = {}
        if root is None:
            self._index = index
            return
        todo = [(root, 0)]
        while todo:
            path, depth = todo.pop()
            try:
                entries = list(os.scandir(path))
            except OSError:
                continue
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                # Podman under systemd gives each container's conmon a cgroup named after the
                # container too (libpod-conmon-<id>.scope): that one is not the container.
                if "conmon" in entry.name:
                    continue
                found = CONTAINER_ID.search(entry.name)
                if found:
                    index[found.group(0)] = entry.path[len(root) :]
                elif depth < INDEX_DEPTH:
                    todo.append((entry.path, depth + 1))
        self._index = index

    def read(self, paths: CgroupPaths, at: float, prev: RawSample | None = None) -> RawSample:
        """Read the cumulative counters of one container.

        With `prev`, its reading of the tick before: a container that used no CPU time since
        has its other figures carried over (one file read instead of six), and read afresh at
        least every `IDLE_FULL_EVERY` ticks. Most of a large fleet idles between requests.
        """
        v1 = paths.version == 1
        if v1:
            cpu_ns = self._int(paths.cpu + "/cpuacct.usage")
        else:
            usec = _stat_value(self._stat(paths.cpu + "/cpu.stat"), b"usage_usec")
            cpu_ns = usec * 1000 if usec is not None else None
        if (
            prev is not None
            and cpu_ns is not None
            and cpu_ns == prev.cpu_ns
            and prev.idle_ticks < IDLE_FULL_EVERY - 1
        ):
            return replace(prev, at=at, io_at=prev.io_time, idle_ticks=prev.idle_ticks + 1)
        usage, limit, inactive_key = _MEMORY_FILES[paths.version]
        mem_usage = self._int(f"{paths.memory}/{usage}")
        mem_limit = self._limit(f"{paths.memory}/{limit}")
        inactive = _stat_value(self._stat(paths.memory + "/memory.stat"), inactive_key) or 0
        blk_read, blk_write = self._blkio_v1(paths.io) if v1 else self._io_v2(paths.io)
        net_rx, net_tx = self._net(paths.pid)
        return RawSample(
            at=at,
            cpu_ns=cpu_ns,
            mem_usage=mem_usage,
            mem_inactive_file=inactive,
            mem_limit=mem_limit,
            net_rx=net_rx,
            net_tx=net_tx,
            blk_read=blk_read,
            blk_write=blk_write,
        )

    def _blkio_v1(self, path: str) -> tuple[int | None, int | None]:
        try:
            data = self._files.read(path + "/blkio.throttle.io_service_bytes")
        except OSError:
            return None, None
        read = write = 0
        for line in data.split(b"\n"):
            parts = line.split()
            if len(parts) == 3:
                if parts[1] == b"Read":
                    read += int(parts[2])
                elif parts[1] == b"Write":
                    write += int(parts[2])
        return read, write

    def _io_v2(self, path: str) -> tuple[int | None, int | None]:
        try:
            data = self._files.read(path + "/io.stat")
        except OSError:
            return None, None
        read = write = 0
        for field in data.split():
            if field.startswith(b"rbytes="):
                read += int(field[7:])
            elif field.startswith(b"wbytes="):
                write += int(field[7:])
        return read, write

    def _net(self, pid: int) -> tuple[int | None, int | None]:
        # A container on the host's network has no traffic of its own: the CLI shows none.
        if pid not in self._netns_of:
            if len(self._netns_of) > NETNS_CACHE:
                self._netns_of.clear()
            self._netns_of[pid] = self._netns(pid)
        ns = self._netns_of[pid]
        if ns is not None and ns == self._host_netns:
            return None, None
        try:
            data = self._files.read(os.path.join(self.proc_root, str(pid), "net", "dev"))
        except OSError:
            return None, None
        rx = tx = 0
        for line in data.split(b"\n")[2:]:
            name, _, rest = line.partition(b":")
            fields = rest.split()
            if len(fields) < 9 or name.strip() == b"lo":
                continue
            rx += int(fields[0])
            tx += int(fields[8])
        return rx, tx
