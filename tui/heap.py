"""The C heap kept small (issue 14, item 4): glibc's allocator asked for fewer arenas, and to
hand back what the start freed.

aitop runs about 20 threads (event streams, samplers, the serving and engine pools). glibc
gives each thread that allocates an arena of its own, up to eight per core, and memory freed
in one is not used by another; two are enough here, since Python's own allocator serves the
small objects. The start (imports, the first listing) frees a great deal at once: a trim once
the first frame is drawn returns those pages to the system.

Both are no-ops where the C library is not glibc (musl, macOS): nothing is asked, nothing fails.
"""

from __future__ import annotations

import ctypes
import sys

M_ARENA_MAX = -8
"""mallopt's parameter for the most arenas (malloc.h)."""
ARENAS = 2
"""Arenas at most: one for the event loop, one shared by the threads."""


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)  # the symbols already in the process: its C library
    except OSError:
        return None


def limit_arenas(count: int = ARENAS) -> bool:
    """Ask glibc for at most `count` malloc arenas; call it before threads start. Whether it
    took (False: not glibc)."""
    libc = _glibc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    return bool(mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(count)))


def trim() -> bool:
    """Return the C heap's free pages to the system. Whether any were (False: not glibc, or
    nothing to return)."""
    libc = _glibc()
    malloc_trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if malloc_trim is None:
        return False
    return bool(malloc_trim(ctypes.c_size_t(0)))
