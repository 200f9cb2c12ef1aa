"""Small, pure formatters shared by the widgets (bytes, rates, durations, percents)."""

from __future__ import annotations

NA = "N/A"
_UNITS = ("B", "K", "M", "G", "T", "P")


def human_bytes(value: float | None, *, na: str = "-") -> str:
    """1536 -> "1.5K"; None -> `na`. Binary units, like `docker stats`."""
    if value is None:
        return na
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)}B"
            return f"{size:.1f}{unit}" if abs(size) < 100 else f"{size:.0f}{unit}"
        size /= 1024
    return f"{size:.0f}P"  # pragma: no cover - loop always returns


def human_rate(value: float | None) -> str:
    """Bytes per second as "1.5K/s"; None -> "-"."""
    return "-" if value is None else f"{human_bytes(value)}/s"


def human_duration(seconds: float | None) -> str:
    """A compact age: "45s", "12m", "3h05m", "2d04h"; None -> "-"."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def percent(value: float | None) -> str:
    """42.123 -> "42.1%"; None -> "-"."""
    return "-" if value is None else f"{value:.1f}%"


def counted(n: int, noun: str) -> str:
    """1 -> "1 line", 2500 -> "2,500 lines": a count with its noun, singular when it is one."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
