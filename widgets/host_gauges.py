"""Host gauges: CPU (total and per core), memory and load, with short sparkline histories."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from tui.fleet.models import HostSnapshot
from tui.fleet.units import format_bytes
from widgets.static_text import set_text

BARS = " ▁▂▃▄▅▆▇█"


def cores_per_bar(cores: int, width: int) -> int:
    """How many adjacent cores one character stands for so that `cores` fit in `width`
    characters (1 when they fit or when the width is not known yet)."""
    if width <= 0 or cores <= width:
        return 1
    return math.ceil(cores / width)


def core_bars(per_cpu: tuple[float, ...], per_bar: int = 1) -> str:
    """One block character per core (or per run of `per_bar` adjacent cores), its height the
    load. A run shows its busiest core, so one hot core is never averaged away."""
    loads = [max(per_cpu[i : i + per_bar]) for i in range(0, len(per_cpu), max(1, per_bar))]
    return "".join(BARS[min(len(BARS) - 1, round(p / 100 * (len(BARS) - 1)))] for p in loads)


class HostGauges(Widget):
    """The machine's CPU, memory and load. Feed it with `update_host()`; it never fetches."""

    DEFAULT_CSS = """
    HostGauges {
        height: 2;
        background: $panel;
        padding: 0 1;
    }
    HostGauges Horizontal {
        height: 1;
    }
    HostGauges .gauge-label {
        width: 24;
        color: $text;
    }
    HostGauges Sparkline {
        width: 1fr;
        height: 1;
        margin: 0 1;
    }
    HostGauges Sparkline > .sparkline--max-color {
        color: $error;
    }
    HostGauges Sparkline > .sparkline--min-color {
        color: $success;
    }
    HostGauges .gauge-extra {
        width: auto;
        max-width: 50%;
        color: $text-muted;
    }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static("CPU", id="cpu-label", classes="gauge-label")
            yield Sparkline([], id="cpu-spark")
            yield Static("", id="cpu-cores", classes="gauge-extra")
        with Horizontal():
            yield Static("MEM", id="mem-label", classes="gauge-label")
            yield Sparkline([], id="mem-spark")
            yield Static("", id="load", classes="gauge-extra")

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._host: HostSnapshot | None = None

    def on_resize(self) -> None:
        # How many cores one bar stands for depends on the width.
        if self._host is not None:
            self._show_cores(self._host)

    def _show_cores(self, host: HostSnapshot) -> None:
        cores = len(host.per_cpu_percent)
        label = f"{cores} cores "
        # The cores' text may take half the line (`max-width: 50%`); keep room for the label
        # and its "(N per bar)" note so the bars are never clipped.
        room = self.content_size.width // 2 - len(label) - len("(999 per bar) ")
        per_bar = cores_per_bar(cores, room) if self.content_size.width else 1
        if per_bar > 1:
            label += f"({per_bar} per bar) "
        set_text(
            self.query_one("#cpu-cores", Static),
            Text(label + core_bars(host.per_cpu_percent, per_bar)),
        )

    def update_host(self, host: HostSnapshot) -> None:
        """Show these host figures."""
        self._host = host
        set_text(
            self.query_one("#cpu-label", Static),
            Text.assemble(("CPU ", "bold"), f"{host.cpu_percent:5.1f}%"),
        )
        self.query_one("#cpu-spark", Sparkline).data = list(host.cpu_history)
        self._show_cores(host)
        mem_pct = 100.0 * host.mem_used_bytes / host.mem_total_bytes if host.mem_total_bytes else 0
        set_text(
            self.query_one("#mem-label", Static),
            Text.assemble(
                ("MEM ", "bold"),
                f"{format_bytes(host.mem_used_bytes)}/{format_bytes(host.mem_total_bytes)}"
                f" {mem_pct:.0f}%",
            ),
        )
        self.query_one("#mem-spark", Sparkline).data = list(host.mem_history)
        one, five, fifteen = host.load_average
        set_text(self.query_one("#load", Static), Text(f"load {one:.2f} {five:.2f} {fifteen:.2f}"))
