"""One container up close: the last minutes as charts, its processes with their GPU memory,
and its mounts, ports, restart policy, limits and health.

The screen shows what it is handed: the container's snapshot and history on every fleet
update (`show`), its processes as the app reads them (`show_processes`) and its inspect
sections once (`show_details`). A signal to one process is asked for by message
(`SignalRequested`); the app asks which signal first and sends it off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Sparkline, Static

from tui.fleet.actions.inspect import InspectSection
from tui.fleet.history import POINTS, ContainerHistory
from tui.fleet.models import ContainerSnapshot
from tui.fleet.processes import ContainerProcess
from tui.fleet.units import format_bytes

DETAIL_SECTIONS = ("Mounts", "Ports", "Restart policy", "Resources and GPUs", "Health")
"""The inspect sections the view shows under the processes (the rest is in the inspect view)."""


def _values(series: Sequence[float | None]) -> list[float]:
    # A fixed time axis (the history's length across the width, the newest on the right) and
    # a floor at 0: the chart's scale is 0 to its peak, and a gap (a figure not known, a past
    # before the container ran) draws as the floor, not as a break that shifts the chart.
    values = [v if v is not None else 0.0 for v in series[-POINTS:]]
    return [0.0] * (POINTS - len(values)) + values


def _last(series: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(series) if v is not None), None)


def _peak(series: Sequence[float | None]) -> float | None:
    known = [v for v in series if v is not None]
    return max(known) if known else None


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{format_bytes(value)}/s"


def _elapsed(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


class ContainerScreen(ModalScreen[None]):
    """A container's recent past and present: charts, processes, details.

    Escape (or `q`) goes back to the fleet; `k` sends a signal to the selected process
    (asking which first; hidden in read-only mode).
    """

    AUTO_FOCUS = "#processes"

    DEFAULT_CSS = """
    ContainerScreen {
        background: $background;
        layout: vertical;
        overflow: hidden;
    }
    ContainerScreen #heading {
        height: 1;
        text-style: bold;
        padding: 0 1;
    }
    ContainerScreen #charts {
        grid-size: 2;
        grid-gutter: 0 2;
        grid-rows: 2;
        height: auto;
        max-height: 50%;
        overflow-y: auto;
        padding: 0 1;
    }
    ContainerScreen .chart {
        height: 2;
    }
    ContainerScreen .chart Static, ContainerScreen .chart Sparkline {
        height: 1;
    }
    ContainerScreen #processes-note {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    ContainerScreen #processes {
        height: 1fr;
        min-height: 4;
    }
    ContainerScreen #details {
        height: 1fr;
        max-height: 12;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="container-close"),
        Binding("q", "close", "Back", id="container-quit", show=False),
        Binding(
            "k",
            "signal",
            "Signal process",
            id="container-signal",
            tooltip="Send a signal to the selected process (asks which first)",
        ),
    ]

    CHARTS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("cpu", "CPU"),
        ("mem", "Memory"),
        ("rx", "Net in"),
        ("tx", "Net out"),
        ("read", "Disk read"),
        ("write", "Disk write"),
    )
    """(id, title) of the charts every container has; GPU and serving charts follow."""

    class SignalRequested(Message):
        """The user wants to signal one process of the container."""

        def __init__(self, container_id: str, process: ContainerProcess) -> None:
            super().__init__()
            self.container_id = container_id
            self.process = process

    def __init__(
        self, container: ContainerSnapshot, history: ContainerHistory, *, read_only: bool = False
    ) -> None:
        super().__init__()
        self.container = container
        self.history = history
        self.read_only = read_only
        self.processes: list[ContainerProcess] = []
        self.processes_error: str | None = None
        self.details: tuple[InspectSection, ...] = ()
        self._ready = False
        """True once mounted: what is handed in before is drawn by on_mount."""

    def compose(self) -> ComposeResult:
        yield Static(id="heading")
        with Grid(id="charts"):
            for chart, _ in self.CHARTS:
                with Vertical(classes="chart", id=f"chart-{chart}"):
                    yield Static(classes="label")
                    yield Sparkline([], summary_function=max)
        yield Static(id="processes-note")
        yield DataTable(id="processes", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="details"):
            yield Static(id="details-text")
        yield Footer()

    def on_mount(self) -> None:
        if not self.query("#processes"):  # pushed as the app quits: never composed
            return
        table = self.query_one("#processes", DataTable)
        for label, key in (
            ("PID", "pid"),
            ("PPID", "ppid"),
            ("CPU%", "cpu"),
            ("RSS", "rss"),
            ("GPU MEM", "gpu"),
            ("UP", "up"),
            ("COMMAND", "command"),
        ):
            table.add_column(label, key=key)
        self._ready = True
        self._draw()
        self._draw_processes()
        self._draw_details()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only mode hides the signal."""
        return not (action == "signal" and self.read_only)

    # --- what the app hands in -----------------------------------------------------------

    def show(self, container: ContainerSnapshot, history: ContainerHistory) -> None:
        """The container's latest snapshot and history."""
        self.container, self.history = container, history
        if self._ready:
            self._draw()

    def show_processes(self, processes: Sequence[ContainerProcess], error: str | None) -> None:
        """Its processes as last read (or why they could not be)."""
        self.processes, self.processes_error = list(processes), error
        if self._ready:
            self._draw_processes()

    def show_details(self, sections: Sequence[InspectSection]) -> None:
        """Its inspect sections (the view keeps those of `DETAIL_SECTIONS`)."""
        self.details = tuple(s for s in sections if s.title in DETAIL_SECTIONS)
        if self._ready:
            self._draw_details()

    # --- drawing -------------------------------------------------------------------------

    def _draw(self) -> None:
        info, stats, history = self.container.info, self.container.stats, self.history
        parts = [info.name, info.image, info.state]
        if info.health:
            parts.append(info.health)
        if info.restarts_recent:
            parts.append(f"{info.restarts_recent} restarts in 10 min")
        exit_ = info.last_exit
        if exit_ is not None and exit_.code is not None:
            why = " (OOM killed)" if exit_.oom_killed else ""
            parts.append(f"last exit {exit_.code}{why}")
        span = history.times[-1] - history.times[0] if len(history.times) > 1 else 0.0
        if not span:
            parts.append("history starts now")
        else:
            parts.append(f"last {span:.0f} s" if span < 90 else f"last {span / 60:.1f} min")
        self.query_one("#heading", Static).update(Text(" · ".join(parts)))
        limit = stats.mem_limit_bytes
        mem_now = _last(history.mem_bytes)
        of_limit = ""
        if limit and mem_now is not None:
            of_limit = f" of {format_bytes(limit)} limit ({100 * mem_now / limit:.0f}%)"
        labels: dict[str, tuple[str, Sequence[float | None]]] = {
            "cpu": (f"CPU {_percent(_last(history.cpu_percent))}", history.cpu_percent),
            "mem": (f"Memory {format_bytes(mem_now)}{of_limit}", history.mem_bytes),
            "rx": (f"Net in {_rate(_last(history.net_rx_rate))}", history.net_rx_rate),
            "tx": (f"Net out {_rate(_last(history.net_tx_rate))}", history.net_tx_rate),
            "read": (f"Disk read {_rate(_last(history.blk_read_rate))}", history.blk_read_rate),
            "write": (
                f"Disk write {_rate(_last(history.blk_write_rate))}",
                history.blk_write_rate,
            ),
        }
        for gpu in history.gpus:
            labels[f"gpu{gpu.index}-mem"] = (
                f"GPU {gpu.index} memory {format_bytes(_last(gpu.mem_bytes))}"
                f" (peak {format_bytes(_peak(gpu.mem_bytes))})",
                gpu.mem_bytes,
            )
            labels[f"gpu{gpu.index}-sm"] = (
                f"GPU {gpu.index} SM {_percent(_last(gpu.util_percent))}",
                gpu.util_percent,
            )
        serving = self.container.serving_history
        if serving:
            waiting = [p.requests_waiting for p in serving]
            for chart, title, points in (
                ("tok", "Generated tok/s", [p.generation_tokens_per_s for p in serving]),
                ("queue", "Queued requests", [None if w is None else float(w) for w in waiting]),
                ("kv", "KV cache %", [p.kv_cache_percent for p in serving]),
                ("ttft", "TTFT p95 s", [p.ttft_p95_s for p in serving]),
            ):
                labels[chart] = (f"{title} {_fmt(_last(points))}", points)
        grid = self.query_one("#charts", Grid)
        for chart, (label, values) in labels.items():
            found = self.query(f"#chart-{chart}")
            if found:
                box = found.first(Vertical)
                box.query_one(Static).update(Text(label))
                box.query_one(Sparkline).data = _values(values)
            else:  # a GPU taken on, a server found: its charts join the grid
                grid.mount(
                    Vertical(
                        Static(Text(label), classes="label"),
                        Sparkline(_values(values), summary_function=max),
                        classes="chart",
                        id=f"chart-{chart}",
                    )
                )

    def _draw_processes(self) -> None:
        table = self.query_one("#processes", DataTable)
        selected = self.selected_process
        table.clear()
        note = (
            f"processes: {self.processes_error}"
            if self.processes_error
            else f"{len(self.processes)} processes (k: signal one)"
        )
        self.query_one("#processes-note", Static).update(Text(note))
        for proc in self.processes:
            gpu = "—"
            if proc.gpu_mem_bytes is not None:
                on = ",".join(str(i) for i in proc.gpus)
                gpu = f"{format_bytes(proc.gpu_mem_bytes)} (GPU {on})"
            table.add_row(
                Text(str(proc.pid), justify="right"),
                Text(str(proc.ppid), justify="right"),
                Text(_percent(proc.cpu_percent), justify="right"),
                Text(format_bytes(proc.rss_bytes), justify="right"),
                Text(gpu, justify="right"),
                Text(_elapsed(proc.elapsed_s), justify="right"),
                Text(proc.command),
                key=str(proc.pid),
            )
        if selected is not None and any(p.pid == selected.pid for p in self.processes):
            table.move_cursor(row=table.get_row_index(str(selected.pid)))

    def _draw_details(self) -> None:
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold", ratio=1)
        for section in self.details:
            grid.add_row(Text(section.title, style="bold underline"), Text(""))
            for row in section.rows:
                grid.add_row(Text(row.key), Text(row.value))
        self.query_one("#details-text", Static).update(grid)

    # --- what the user does --------------------------------------------------------------

    @property
    def selected_process(self) -> ContainerProcess | None:
        """The process under the cursor."""
        if not self._ready:
            return None
        table = self.query_one("#processes", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((p for p in self.processes if str(p.pid) == key), None)

    def chart_labels(self) -> list[str]:
        """Every chart's label as shown (for tests)."""
        return [str(s.render()) for s in self.query(".chart Static")]

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)

    def action_signal(self) -> None:
        """Ask to signal the selected process."""
        process = self.selected_process
        if process is not None:
            self.post_message(self.SignalRequested(self.container.info.id, process))


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) or abs(value) >= 10:
        return f"{value:.0f}"  # a count (queued requests), or a figure past ten
    return f"{value:.2f}"
