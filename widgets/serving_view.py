"""One container's model server in full: its whole reading, and a few minutes of its figures as
sparklines beside the container's own CPU, memory and GPU memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from tui.fleet.history import EMPTY_HISTORY, ContainerHistory
from tui.fleet.models import ContainerSnapshot
from tui.fleet.serving.types import HistoryPoint, LoadedModel, ServingReading
from tui.fleet.units import format_bytes
from widgets.container_table import gpu_mem
from widgets.formatting import human_duration, percent
from widgets.serving_format import (
    STATE_COLOURS,
    count,
    kv_warns,
    queue_growing,
    seconds,
    tokens_rate,
    ttft_warns,
)
from widgets.static_text import set_text

NOT_SAID = "-"
"""What a figure the server does not give reads."""


@dataclass(frozen=True)
class _Series:
    key: str
    label: str
    server: bool
    """From the server's history (else from the container's, `ContainerHistory`)."""


SERIES: tuple[_Series, ...] = (
    _Series("tok_s", "generated tok/s", True),
    _Series("queue", "queued requests", True),
    _Series("kv", "KV cache %", True),
    _Series("ttft", "TTFT p95", True),
    _Series("cpu", "container CPU %", False),
    _Series("mem", "container memory", False),
    _Series("gpu_mem", "container GPU memory", False),
)
"""The sparklines, top to bottom."""

_SERVER_VALUES: dict[str, Callable[[HistoryPoint], float | int | None]] = {
    "tok_s": lambda p: p.generation_tokens_per_s,
    "queue": lambda p: p.requests_waiting,
    "kv": lambda p: p.kv_cache_percent,
    "ttft": lambda p: p.ttft_p95_s,
}


def _gpu_mem_series(history: ContainerHistory) -> tuple[float | None, ...]:
    """GPU memory over all the container's GPUs, per reading (None where none was known)."""
    if not history.gpus:
        return (None,) * len(history.times)
    sums = []
    for values in zip(*(gpu.mem_bytes for gpu in history.gpus), strict=True):
        known = [v for v in values if v is not None]
        sums.append(sum(known) if known else None)
    return tuple(sums)


_CONTAINER_VALUES: dict[str, Callable[[ContainerHistory], Sequence[float | None]]] = {
    "cpu": lambda h: h.cpu_percent,
    "mem": lambda h: h.mem_bytes,
    "gpu_mem": _gpu_mem_series,
}


def _known(values: Sequence[float | int | None]) -> list[float]:
    # A gap (a stale scrape, a figure not yet known) is left out: the line shows the shape of
    # what was measured, never a zero nobody measured.
    return [float(v) for v in values if v is not None]


def no_server_text(name: str) -> str:
    """What the view says of a container in which no model server was found."""
    return (
        f"no model server found in {name}; set the aitop.metrics-port label (and "
        "aitop.metrics-path, if not /metrics) on the container if it serves one aitop does "
        "not recognise"
    )


class ServingView(Widget):
    """A container's model server: state (with its detail and since when), address, model, every
    figure of the reading (each `-` where the server does not say), Ollama's loaded models, and
    sparklines of generated tok/s, queue, KV cache and TTFT p95 from the server's history next to
    the container's CPU, memory and GPU memory.

    Feed it with `show()` on every fleet snapshot; it never fetches. Everything a reading holds
    is drawn as plain text (a server wrote it).
    """

    DEFAULT_CSS = """
    ServingView {
        height: auto;
    }
    ServingView #serving-heading {
        text-style: bold;
        height: auto;
        margin-bottom: 1;
    }
    ServingView #serving-reading {
        height: auto;
        margin-bottom: 1;
    }
    ServingView #serving-history {
        height: auto;
    }
    ServingView #serving-history.-empty {
        display: none;
    }
    ServingView .series {
        height: 1;
    }
    ServingView .series-label {
        width: 22;
        color: $text-muted;
    }
    ServingView Sparkline {
        width: 1fr;
        height: 1;
        margin: 0 1;
    }
    ServingView Sparkline > .sparkline--max-color {
        color: $warning;
    }
    ServingView Sparkline > .sparkline--min-color {
        color: $success;
    }
    ServingView .series-now {
        width: 16;
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._history: ContainerHistory = EMPTY_HISTORY
        self._text = ""

    def compose(self) -> ComposeResult:
        yield Static(id="serving-heading")
        yield Static(id="serving-reading")
        with Widget(id="serving-history", classes="-empty"):
            for series in SERIES:
                with Horizontal(classes="series"):
                    yield Static(Text(series.label), classes="series-label")
                    yield Sparkline([], id=f"spark-{series.key}")
                    yield Static(id=f"now-{series.key}", classes="series-now")

    @property
    def text(self) -> str:
        """What the view says now, as plain text (the heading and the reading)."""
        return self._text

    def series(self, key: str) -> list[float]:
        """The values a sparkline shows now (`tok_s`, `queue`, `kv`, `ttft`, `cpu`, `mem`,
        `gpu_mem`); none until there are two."""
        return list(self.query_one(f"#spark-{key}", Sparkline).data or [])

    def show(
        self,
        container: ContainerSnapshot | None,
        *,
        name: str,
        now: float,
        history: ContainerHistory = EMPTY_HISTORY,
    ) -> None:
        """Show `container` (None: it is no longer in the fleet) as of `now` (the snapshot's
        time, seconds since the epoch), with the container's own recent figures."""
        heading = self.query_one("#serving-heading", Static)
        body = self.query_one("#serving-reading", Static)
        panel = self.query_one("#serving-history")
        if container is None:
            title = Text(f"Model server · {name}")
            said = Text(f"{name} is no longer in the fleet")
            panel.add_class("-empty")
            self._set(heading, body, title, said)
            return
        self._history = history
        reading = container.serving
        if reading is None:
            title = Text(f"Model server · {name}")
            self._set(heading, body, title, Text(no_server_text(name)))
            panel.add_class("-empty")
            return
        title = Text.assemble(
            (f"Model server · {name} · ", ""),
            (reading.state.name, self._colour(STATE_COLOURS.get(reading.state.name, ""))),
            (" (stale)" if reading.stale else "", self._colour("muted")),
        )
        rows = self._reading_rows(reading, container, now)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(Text(key), value)
        set_text(heading, title)
        body.update(table)
        self._text = "\n".join([title.plain, *(f"{key}: {value.plain}" for key, value in rows)])
        panel.remove_class("-empty")
        self._show_series(container, reading)

    # --- drawing -----------------------------------------------------------------------

    def _set(self, heading: Static, body: Static, title: Text, said: Text) -> None:
        set_text(heading, title)
        set_text(body, said)
        self._text = f"{title.plain}\n{said.plain}"

    def _colour(self, entry: str) -> str:
        """A palette entry (`ok`, `warn`, `bad`, `muted`) as the theme's colour."""
        variables = self.app.theme_variables
        name = {"ok": "success", "warn": "warning", "bad": "error", "muted": "text-muted"}.get(
            entry
        )
        return variables.get(name, "") if name else ""

    def _reading_rows(
        self, reading: ServingReading, container: ContainerSnapshot, now: float
    ) -> list[tuple[str, Text]]:
        """(key, value) of every field of the reading (its JSON keys), then the container's."""
        warn, muted = self._colour("warn"), self._colour("muted")
        rows: list[tuple[str, Text]] = []

        def add(key: str, value: str, style: str = "") -> None:
            rows.append((key, Text(value, style=style or (muted if value == NOT_SAID else ""))))

        state = Text(
            reading.state.name, style=self._colour(STATE_COLOURS.get(reading.state.name, ""))
        )
        if reading.state.detail:
            state.append(f": {reading.state.detail}")
        add("kind", reading.kind)
        rows.append(("state", state))
        if reading.since is not None:
            at = time.strftime("%H:%M:%S", time.localtime(reading.since))
            add("since", f"{at} ({human_duration(now - reading.since)} ago)")
        if reading.stale:
            add("stale", "yes: the last good figures, from scrapes ago", warn)
        add("url", reading.url or NOT_SAID)
        add("model", reading.model or NOT_SAID)
        growing = queue_growing(reading, container.serving_history)
        add("requests_running", count(reading.requests_running))
        add(
            "requests_waiting",
            count(reading.requests_waiting) + (" (growing)" if growing else ""),
            warn if growing else "",
        )
        add(
            "kv_cache_percent",
            percent(reading.kv_cache_percent) if reading.kv_cache_percent is not None else NOT_SAID,
            warn if kv_warns(reading.kv_cache_percent) else "",
        )
        add("prompt_tokens_per_s", _rate(reading.prompt_tokens_per_s, "tok/s"))
        add("generation_tokens_per_s", _rate(reading.generation_tokens_per_s, "tok/s"))
        add("ttft_p50_s", seconds(reading.ttft_p50_s))
        add(
            "ttft_p95_s",
            seconds(reading.ttft_p95_s),
            warn if ttft_warns(reading.ttft_p95_s) else "",
        )
        add("itl_p50_s", seconds(reading.itl_p50_s))
        add("e2e_p95_s", seconds(reading.e2e_p95_s))
        add("errors_per_s", _per_second(reading.errors_per_s))
        add("preemptions_per_s", _per_second(reading.preemptions_per_s))
        if reading.loaded_models is None:
            add("loaded_models", NOT_SAID)
        elif not reading.loaded_models:
            add("loaded_models", "none in memory")
        else:
            for n, model in enumerate(reading.loaded_models):
                rows.append(("loaded_models" if n == 0 else "", Text(_model_line(model))))
        stats = container.stats
        add("container CPU", percent(stats.cpu_percent))
        add("container memory", _mem(stats.mem_bytes, stats.mem_limit_bytes))
        add("container GPU memory", format_bytes(gpu_mem(container), na=NOT_SAID))
        return rows

    def _show_series(self, container: ContainerSnapshot, reading: ServingReading) -> None:
        history = container.serving_history
        # Beside each line, the figure now: the reading's own (the history's newest point is
        # the same scrape, or older while the reading is stale).
        server_now: dict[str, float | int | None] = {
            "tok_s": reading.generation_tokens_per_s,
            "queue": reading.requests_waiting,
            "kv": reading.kv_cache_percent,
            "ttft": reading.ttft_p95_s,
        }
        for series in SERIES:
            if series.server:
                pick = _SERVER_VALUES[series.key]
                data = _known([pick(p) for p in history])
                now_value = server_now[series.key]
            else:
                values = _CONTAINER_VALUES[series.key](self._history)
                data = _known(values)
                now_value = values[-1] if values else None
            # One point draws as a full bar: a line needs two.
            self.query_one(f"#spark-{series.key}", Sparkline).data = data if len(data) > 1 else []
            set_text(
                self.query_one(f"#now-{series.key}", Static), Text(_now_text(series.key, now_value))
            )


def _rate(value: float | None, unit: str) -> str:
    return NOT_SAID if value is None else f"{tokens_rate(value)} {unit}"


def _per_second(value: float | None) -> str:
    return NOT_SAID if value is None else f"{value:.2f}/s"


def _mem(used: int | None, limit: int | None) -> str:
    if used is None:
        return NOT_SAID
    return f"{format_bytes(used)} / {format_bytes(limit, na='-')}"


def _now_text(key: str, value: float | int | None) -> str:
    """The latest value beside a sparkline."""
    if value is None:
        return NOT_SAID
    if key == "tok_s":
        return tokens_rate(float(value))
    if key in ("kv", "cpu"):
        return percent(float(value))
    if key == "ttft":
        return seconds(float(value))
    if key in ("mem", "gpu_mem"):
        return format_bytes(int(value))
    return str(value)


def _model_line(model: LoadedModel) -> str:
    """One of Ollama's loaded models: name, size, what of it is on the GPU, context, expiry."""
    parts = [model.name]
    if model.size_bytes is not None:
        parts.append(format_bytes(model.size_bytes))
    if model.vram_bytes is not None:
        parts.append(f"{format_bytes(model.vram_bytes)} on GPU")
    if model.context_length is not None:
        parts.append(f"context {model.context_length}")
    for extra in (model.parameter_size, model.quantization):
        if extra:
            parts.append(extra)
    if model.expires_at:
        parts.append(f"until {model.expires_at}")
    return " · ".join(parts)
