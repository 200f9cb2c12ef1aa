"""Asking an engine where its disk went (`docker system df -v`), and removing what was named.

The engine computes volume sizes by walking them, which can take minutes on a box full of
weights: `DiskSurvey` runs the call on a thread of its own, one at a time, keeps the last
report and says since when the next one is being computed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from tui.fleet.disk.types import DiskImage, DiskReport, Target, report_from
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError


def survey(engine: Engine) -> DiskReport:
    """Ask the engine now (blocking, seconds to minutes); raises EngineError."""
    began = time.monotonic()
    usage = engine.disk_usage()
    seconds = time.monotonic() - began
    root = str(usage.get("DockerRootDir") or "")
    return report_from(usage, seconds=seconds, space=_space(root) if engine.is_local else None)


def _space(path: str) -> tuple[int, int] | None:
    """(total, free) bytes of the filesystem holding `path`, or None where it is unreadable."""
    if not path:
        return None
    try:
        fs = os.statvfs(path)
    except OSError:  # not readable here (another user's engine): the figures stay unknown
        return None
    return fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize


class DiskSurvey:
    """The last disk report of one engine, and at most one survey running for the next.

    `refresh()` starts a survey on a thread of its own unless one runs; `on_done` is called
    there when it ends. Everything else is safe from any thread and never blocks.
    """

    def __init__(self, engine: Engine, on_done: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_done = on_done
        self._lock = threading.Lock()
        self._report: DiskReport | None = None
        self._error: str | None = None
        self._running_since: float | None = None

    @property
    def report(self) -> DiskReport | None:
        """The last report (None before the first survey ended)."""
        return self._report

    @property
    def error(self) -> str | None:
        """Why the last survey failed, or None."""
        return self._error

    @property
    def running_since(self) -> float | None:
        """time.monotonic() when the survey in progress began, or None."""
        return self._running_since

    def refresh(self) -> bool:
        """Start a survey unless one runs; True when one was started."""
        with self._lock:
            if self._running_since is not None:
                return False
            self._running_since = time.monotonic()
        threading.Thread(target=self._run, name="aitop-disk", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            report = survey(self.engine)
        except EngineError as exc:
            self._error = str(exc)
        else:
            self._report, self._error = report, None
        finally:
            with self._lock:
                self._running_since = None
        if self.on_done is not None:
            self.on_done()


def remove(engine: Engine, target: Target) -> int:
    """Remove `target`; the bytes freed (as the engine says for the build cache, else as the
    report said); raises EngineError."""
    if target == "build-cache":
        return engine.prune_build_cache()
    if isinstance(target, DiskImage):
        engine.remove_image(target.id)
        return target.unique_size if target.unique_size is not None else target.size
    engine.remove_volume(target.name)
    return target.size or 0
