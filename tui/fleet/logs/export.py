"""Writing log lines to a file: safe to `cat` (the lines are sanitised), never overwriting."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tui.fleet.logs.types import (
    LogLine,
    format_timestamp,
)

# --- export -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What `export_lines` wrote."""

    path: Path
    lines: int
    bytes: int


def export_path(directory: str | Path, name: str, *, now: float | None = None) -> Path:
    """A fresh file name for exported logs: `aitop-<name>-<YYYYmmdd-HHMMSS>.log`."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "logs"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return Path(directory) / f"aitop-{safe}-{stamp}.log"


def format_line(line: LogLine, *, timestamps: bool = True, source: bool = False) -> str:
    """One line as plain text for a file: `[timestamp ][source | ]text` (no colours)."""
    parts = []
    if timestamps:
        parts.append(format_timestamp(line.ts, precision=9))
    if source and line.source:
        parts.append(f"{line.source} |")
    parts.append(line.text)
    return " ".join(parts)


def export_lines(
    lines: Iterable[LogLine],
    path: str | Path,
    *,
    timestamps: bool = True,
    source: bool = False,
) -> ExportResult:
    """Write lines to `path` (UTF-8, one per line, colours dropped); blocking file I/O.

    The lines are already sanitised, so the file is safe to `cat`. Refuses to overwrite.
    """
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    size = 0
    with open(target, "x", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            text = format_line(line, timestamps=timestamps, source=source) + "\n"
            fh.write(text)
            count += 1
            size += len(text.encode("utf-8"))
    return ExportResult(target, count, size)
