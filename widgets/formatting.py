"""Small, pure formatters shared by the widgets (rates, durations, percents, counts); byte sizes
are `tui.fleet.units.format_bytes`."""

from __future__ import annotations

from tui.fleet.units import format_bytes


def human_rate(value: float | None) -> str:
    """Bytes per second as "1.5K/s"; None -> "-"."""
    return "-" if value is None else f"{format_bytes(value)}/s"


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
