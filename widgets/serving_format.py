"""How a model server's figures are written and when they are warnings: shared by the fleet
table's serving columns and the serving view, so both say the same thing the same way.

Pure functions of plain data (`tui.fleet.serving.types`); no widget state.
"""

from __future__ import annotations

from collections.abc import Sequence

from tui.fleet.serving.types import HistoryPoint, ServingReading

KV_WARNING_PERCENT = 85.0
"""A KV cache this full (percent) is a warning: past it, a server starts preempting or queueing
requests (vLLM's scheduler preempts when it cannot allocate blocks)."""
TTFT_P95_WARNING_S = 2.0
"""A time to first token at p95 this long (seconds) is a warning: an interactive user waits
noticeably, usually because requests queue or prefills are long."""

STATE_COLOURS: dict[str, str] = {
    "ready": "ok",
    "loading": "warn",
    "unhealthy": "bad",
    "unreachable": "bad",
    "metrics-off": "muted",
}
"""The palette entry (`ok`, `warn`, `bad`, `muted`) each server state is drawn in."""

STATE_ORDER: dict[str, int] = {
    "ready": 0,
    "loading": 1,
    "unhealthy": 2,
    "unreachable": 3,
    "metrics-off": 4,
}
"""How states sort: the working ones first."""


def tokens_rate(value: float | None) -> str:
    """Tokens per second, compactly: "3.4", "1234", "12.3k"; None -> "-"."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f}"
    if value < 10_000:
        return f"{value:.0f}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def seconds(value: float | None) -> str:
    """A latency: "420ms" under a second, "1.23s", "12.3s", "123s"; None -> "-"."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 10:
        return f"{value:.2f}s"
    if value < 100:
        return f"{value:.1f}s"
    return f"{value:.0f}s"


def count(value: int | None) -> str:
    """A request count; None -> "-"."""
    return "-" if value is None else str(value)


def requests_text(running: int | None, waiting: int | None) -> str:
    """Running and queued requests as "3/12"; "-" when the server says neither."""
    if running is None and waiting is None:
        return "-"
    return f"{count(running)}/{count(waiting)}"


def kv_warns(percent: float | None) -> bool:
    """True when a KV cache use is at or past `KV_WARNING_PERCENT`."""
    return percent is not None and percent >= KV_WARNING_PERCENT


def ttft_warns(p95: float | None) -> bool:
    """True when a TTFT p95 is at or past `TTFT_P95_WARNING_S`."""
    return p95 is not None and p95 >= TTFT_P95_WARNING_S


def queue_growing(reading: ServingReading, history: Sequence[HistoryPoint]) -> bool:
    """True when more requests wait now than at the history point before the newest.

    The newest point of a container's history is the reading itself (the tracker appends one
    per scrape), so the one before it is the previous scrape. A stale reading says nothing new.
    """
    if reading.stale or reading.requests_waiting is None or len(history) < 2:
        return False
    before = history[-2].requests_waiting
    return before is not None and reading.requests_waiting > before
