"""Kernel files that are read every tick, kept open between reads.

Opening and closing a file costs more than reading it: at 500 containers a tick reads 3,000
small cgroup and /proc files, and the opens were most of the sampler's time. cgroup files and
/proc's seq files produce fresh content on every read from offset 0, so an open descriptor
re-read with `pread(fd, n, 0)` gives the same figures as a new open.
"""

from __future__ import annotations

import contextlib
import os
import resource

READ_SIZE = 65536
"""Bytes read from a file at most: the files read here hold a few hundred."""
RESERVED_FDS = 256
"""Descriptors left to everything else in the process (engine sockets, log streams, ...)."""
WANTED_FD_LIMIT = 16384
"""The soft limit raised towards when the kept files need it (never above the hard limit)."""


def _read_once(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, READ_SIZE)
    finally:
        os.close(fd)


class OpenFiles:
    """Reads files through descriptors kept open from one tick to the next.

    A file not read during the last `keep_ticks` ticks is closed (`end_tick`), so the
    descriptors held follow the running containers. When the descriptor limit is near, files
    are opened and closed for each read as before: never an error for want of a descriptor.
    """

    def __init__(self, *, keep_ticks: int = 1) -> None:
        self._fds: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._tick = 0
        self.keep_ticks = keep_ticks
        """A file not read for this many ticks is closed."""
        self._cap = self._capacity()

    @staticmethod
    def _capacity() -> int:
        """How many descriptors may be kept; raises the soft limit towards the hard one."""
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (OSError, ValueError):
            return 0
        wanted = WANTED_FD_LIMIT if hard == resource.RLIM_INFINITY else min(WANTED_FD_LIMIT, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
        limit = WANTED_FD_LIMIT if soft == resource.RLIM_INFINITY else soft
        return max(0, limit - RESERVED_FDS)

    def read(self, path: str) -> bytes:
        """The file's whole content (up to READ_SIZE bytes); OSError when it cannot be read."""
        self._last[path] = self._tick
        fd = self._fds.get(path)
        if fd is not None:
            try:
                data = os.pread(fd, READ_SIZE, 0)
            except OSError:
                data = b""
            if data:
                return data
            # The cgroup or the process behind the file went away (ENODEV, ESRCH, or nothing
            # more to read): a fresh open says whether the path names something new.
            self._drop(path)
        if len(self._fds) >= self._cap:
            return _read_once(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, READ_SIZE, 0)
        except OSError:
            os.close(fd)
            raise
        self._fds[path] = fd
        return data

    def end_tick(self) -> None:
        """Close the files no read asked for during the last `keep_ticks` ticks."""
        oldest = self._tick - self.keep_ticks + 1
        last = self._last
        for path in [p for p in self._fds if last.get(p, -1) < oldest]:
            self._drop(path)
        if len(last) > 2 * len(self._fds) + 64:
            self._last = {p: t for p, t in last.items() if t >= oldest}
        self._tick += 1

    def close(self) -> None:
        """Close every kept file."""
        for path in list(self._fds):
            self._drop(path)

    def __len__(self) -> int:
        return len(self._fds)

    def _drop(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
