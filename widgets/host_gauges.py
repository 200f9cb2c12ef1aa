"""Host gauges: CPU (total and per core), memory and load, with short sparkline histories."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from tui.fleet.models import HostSnapshot
from widgets.formatting import human_bytes
from widgets.static_text import set_text

BARS = " ▁▂▃▄▅▆▇█"


def core_bars(per_cpu: tuple[float, ...]) -> str:
    """One block character per core, its height the core's load: scales to 100+ cores."""
    return "".join(BARS[min(len(BARS) - 1, round(p / 100 * (len(BARS) - 1)))] for p in per_cpu)


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

    def update_host(self, host: HostSnapshot) -> None:
        """Show these host figures."""
        set_text(
            self.query_one("#cpu-label", Static),
            Text.assemble(("CPU ", "bold"), f"{host.cpu_percent:5.1f}%"),
        )
        self.query_one("#cpu-spark", Sparkline).data = list(host.cpu_history)
        set_text(
            self.query_one("#cpu-cores", Static),
            Text(f"{len(host.per_cpu_percent)} cores {core_bars(host.per_cpu_percent)}"),
        )
        mem_pct = 100.0 * host.mem_used_bytes / host.mem_total_bytes if host.mem_total_bytes else 0
        set_text(
            self.query_one("#mem-label", Static),
            Text.assemble(
                ("MEM ", "bold"),
                f"{human_bytes(host.mem_used_bytes)}/{human_bytes(host.mem_total_bytes)}"
                f" {mem_pct:.0f}%",
            ),
        )
        self.query_one("#mem-spark", Sparkline).data = list(host.mem_history)
        one, five, fifteen = host.load_average
        set_text(self.query_one("#load", Static), Text(f"load {one:.2f} {five:.2f} {fifteen:.2f}"))
