"""The plain data of model-server awareness: what a container's server says, as the headless
layer hands it on (to snapshots, the JSON of `aitop snapshot --json`, widgets).

Immutable values only, nothing that fetches: widgets may import this module, as they import
`tui.fleet.gpu.types` and `tui.fleet.logs.types`. `reading.ServingTracker` makes them;
`scrape.ServingPool` holds the latest per container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StateName = Literal["loading", "ready", "unhealthy", "metrics-off", "unreachable"]


@dataclass(frozen=True)
class ServingState:
    """A server's state, and what more there is to say about it."""

    name: StateName
    detail: str = ""
    """For `metrics-off` the flag that turns metrics on; for `unreachable`, why; otherwise
    what the server said (`loading model`, `restarted: counters reset`), or ""."""

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name


@dataclass(frozen=True)
class LoadedModel:
    """One model an Ollama server holds in memory (`GET /api/ps`)."""

    name: str
    size_bytes: int | None = None
    vram_bytes: int | None = None
    """Bytes of it on the GPU: less than `size_bytes` when part of it runs on the CPU."""
    context_length: int | None = None
    """Ollama 0.10 and later."""
    expires_at: str | None = None
    """When Ollama unloads it, RFC 3339 as the server wrote it."""
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None

    def to_json(self) -> dict[str, object]:
        """The model as plain JSON data."""
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "vram_bytes": self.vram_bytes,
            "context_length": self.context_length,
            "expires_at": self.expires_at,
            "family": self.family,
            "parameter_size": self.parameter_size,
            "quantization": self.quantization,
        }


JSON_KEYS: tuple[str, ...] = (
    "kind",
    "state",
    "url",
    "model",
    "requests_running",
    "requests_waiting",
    "kv_cache_percent",
    "prompt_tokens_per_s",
    "generation_tokens_per_s",
    "ttft_p50_s",
    "ttft_p95_s",
    "itl_p50_s",
    "e2e_p95_s",
    "errors_per_s",
    "preemptions_per_s",
    "loaded_models",
)
"""The keys of `ServingReading.to_json`, in order (issue 11, item 3)."""


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class ServingReading:
    """What one container's model server says, now; every figure None where it says nothing."""

    kind: str
    """A `ServerKind.name`, or `unknown` (a labelled endpoint whose page names no server)."""
    state: ServingState
    url: str | None = None
    """Where aitop reads it (inside the container's network namespace for a server bound to
    127.0.0.1 there)."""
    model: str | None = None
    requests_running: int | None = None
    requests_waiting: int | None = None
    kv_cache_percent: float | None = None
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    itl_p50_s: float | None = None
    e2e_p95_s: float | None = None
    errors_per_s: float | None = None
    preemptions_per_s: float | None = None
    loaded_models: tuple[LoadedModel, ...] | None = None
    """Ollama's models in memory; None for servers that do not list them."""
    since: float | None = None
    """When the state began, seconds since the epoch ("loading since ...")."""
    stale: bool = False
    """The figures are the last good ones, from scrapes ago (the server stopped answering)."""

    def to_json(self) -> dict[str, object]:
        """The reading as `aitop snapshot --json` gives it: exactly `JSON_KEYS`."""
        return {
            "kind": self.kind,
            "state": str(self.state),
            "url": self.url,
            "model": self.model,
            "requests_running": self.requests_running,
            "requests_waiting": self.requests_waiting,
            "kv_cache_percent": _rounded(self.kv_cache_percent, 2),
            "prompt_tokens_per_s": _rounded(self.prompt_tokens_per_s, 2),
            "generation_tokens_per_s": _rounded(self.generation_tokens_per_s, 2),
            "ttft_p50_s": _rounded(self.ttft_p50_s, 4),
            "ttft_p95_s": _rounded(self.ttft_p95_s, 4),
            "itl_p50_s": _rounded(self.itl_p50_s, 5),
            "e2e_p95_s": _rounded(self.e2e_p95_s, 4),
            "errors_per_s": _rounded(self.errors_per_s, 3),
            "preemptions_per_s": _rounded(self.preemptions_per_s, 3),
            "loaded_models": (
                None
                if self.loaded_models is None
                else [model.to_json() for model in self.loaded_models]
            ),
        }


@dataclass(frozen=True)
class HistoryPoint:
    """One point of a server's recent history (for sparklines)."""

    at: float
    """Seconds since the epoch."""
    generation_tokens_per_s: float | None
    requests_waiting: int | None
    kv_cache_percent: float | None
    ttft_p95_s: float | None
