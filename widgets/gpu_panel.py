"""GPU pane: one block per device with gauges, sparklines and who holds its memory, this
machine's first, then each other machine's (an ssh:// engine's) under a line of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from tui.fleet.gpu.types import (
    DEFAULT_THRESHOLDS,
    NA,
    GpuDevice,
    GpuProcess,
    GpuReport,
    Thresholds,
    pressure_warnings,
)
from tui.fleet.units import format_bytes
from widgets.static_text import set_text

HOLDERS_SHOWN = 3
"""How many holders of a GPU's memory its block names."""


def _na(value: float | None, fmt: str) -> str:
    return NA if value is None else fmt.format(value)


def _pair(first: float | None, second: float | None, fmt: str, unit: str) -> str:
    """ "612/700W"; "N/A/700W" when one side is unknown; "N/A" when both are."""
    if first is None and second is None:
        return NA
    return f"{_na(first, fmt)}/{_na(second, fmt)}{unit}"


@dataclass(frozen=True)
class _Block:
    """The widgets of one device's block, kept so a tick updates them in place."""

    root: Vertical
    title: Static
    util: Static
    util_spark: Sparkline
    mem: Static
    mem_spark: Sparkline
    temp: Static
    power: Static
    fan: Static
    clocks: Static
    holders: Static
    note: Static


class GpuPanel(Widget):
    """The machine's GPUs, one block per device. Feed it with `update_report()`; it never fetches.

    A block shows the device's name and index, SM utilisation and memory with short
    histories, temperature against the driver's slowdown threshold, power against its limit,
    fan and clocks, and who holds the memory. A figure NVML cannot give reads N/A. When NVML
    cannot be used at all, a labelled state line says why instead. Other machines' reports
    (`GpuReport.others`, or a report whose `host` is set) get the same blocks, each machine
    under a state line that names it.
    """

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        background: $panel;
        padding: 0 1;
    }
    GpuPanel #gpu-state {
        height: auto;
        color: $text-muted;
    }
    GpuPanel #gpu-state.-problem {
        color: $warning;
        /* One line on any screen ("no NVML library ..." took three at 60 columns); the whole
           text is the line's tooltip and in aitop snapshot --json's gpu_status. */
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    GpuPanel #gpu-devices {
        height: auto;
    }
    GpuPanel {
        max-height: 50%;
        overflow-y: auto;
    }
    GpuPanel .gpu-block {
        height: auto;
    }
    GpuPanel .gpu-host {
        height: auto;
        color: $text-muted;
        text-style: bold;
    }
    GpuPanel .gpu-host.-problem {
        color: $warning;
    }
    GpuPanel .gpu-title {
        width: 34;
        text-style: bold;
        color: $text;
    }
    GpuPanel .gpu-holders {
        width: 1fr;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    GpuPanel .gpu-block.-lost .gpu-title {
        color: $error;
    }
    GpuPanel .gpu-row {
        height: 1;
    }
    GpuPanel .gpu-metric {
        width: auto;
        margin-right: 2;
        color: $text;
    }
    GpuPanel .gpu-util {
        width: 9;
        margin-right: 1;
    }
    GpuPanel .gpu-mem {
        width: 23;
        margin-right: 1;
    }
    GpuPanel Sparkline {
        width: 1fr;
        height: 1;
        margin-right: 2;
    }
    GpuPanel Sparkline > .sparkline--max-color {
        color: $warning;
    }
    GpuPanel Sparkline > .sparkline--min-color {
        color: $success;
    }
    GpuPanel .gpu-metric.-warning {
        color: $warning;
    }
    GpuPanel .gpu-metric.-critical {
        color: $error;
        text-style: bold;
    }
    GpuPanel .gpu-note {
        height: auto;
        color: $text-muted;
    }
    GpuPanel .gpu-note.-critical {
        color: $error;
    }
    """

    report: reactive[GpuReport | None] = reactive(None)
    """The GPU report on show; None until the first one arrives."""
    remote_hosts: reactive[tuple[str, ...]] = reactive(())
    """Engines watched on other machines. Those whose GPUs no report covers (not reached
    over ssh) are named in the state line: their GPU data needs aitop running on that host."""

    def __init__(
        self,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.thresholds = thresholds
        """When memory and temperature are drawn as warnings (from the configuration)."""
        self._names: Mapping[str, str] = {}
        self._blocks: dict[tuple[str, int], _Block] = {}
        """Each device's block, by (host, index); host "" is this machine."""
        self._headers: dict[str, Static] = {}
        """The state line of each other machine shown below the first, by host."""
        self._layout: tuple[tuple[str, int | None], ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("GPUs: waiting for the first reading", id="gpu-state", markup=False)
        yield Vertical(id="gpu-devices")

    def on_mount(self) -> None:
        self._show(self.report)

    def update_report(
        self, report: GpuReport, container_names: Mapping[str, str] | None = None
    ) -> None:
        """Show this report; `container_names` maps container ids to the names to show."""
        if container_names is not None:
            self._names = dict(container_names)
        self.report = report

    def watch_report(self, report: GpuReport | None) -> None:
        if self.is_mounted:
            self._show(report)

    def watch_remote_hosts(self) -> None:
        if self.is_mounted:
            self._show(self.report)

    # --- rendering ----------------------------------------------------------------------------

    def _show(self, report: GpuReport | None) -> None:
        state = self.query_one("#gpu-state", Static)
        line = self._state_line(report)
        set_text(state, line)
        problem = report is not None and _problem(report)
        state.set_class(problem, "-problem")
        state.tooltip = line if problem else None
        machines = (report, *report.others) if report is not None else ()
        layout: list[tuple[str, int | None]] = []
        for position, machine in enumerate(machines):
            if position:
                layout.append((machine.host, None))
            layout.extend((machine.host, d.index) for d in _devices(machine))
        if tuple(layout) != self._layout:
            self._rebuild(tuple(layout))
        for position, machine in enumerate(machines):
            if position:
                header = self._headers[machine.host]
                set_text(header, f"{machine.host}: {self._report_line(machine)}")
                header.set_class(_problem(machine), "-problem")
            alone = replace(machine, others=()) if machine.others else machine
            warnings = pressure_warnings(alone, self._names, self.thresholds)
            for device in _devices(machine):
                self._fill(self._blocks[(machine.host, device.index)], device, machine, warnings)

    def _state_line(self, report: GpuReport | None) -> str:
        line = self._report_line(report)
        covered = {m.host for m in (report, *report.others)} if report is not None else set()
        if report is not None and report.host:
            line = f"{report.host}: {line}"
        elif self.remote_hosts or (report is not None and report.others):
            line = f"this machine: {line}"
        missing = [h for h in self.remote_hosts if h not in covered]
        if missing:
            hosts = ", ".join(missing)
            line = f"{line}\n{hosts}: no GPU data here; it needs aitop on that host"
        return line

    def _report_line(self, report: GpuReport | None) -> str:
        if report is None:
            return "GPUs: waiting for the first reading"
        if not report.ok:
            return f"GPU: {report.label}: {report.message}"
        count = len(report.devices)
        parts = [f"{count} GPU{'s' if count != 1 else ''}"]
        if report.driver_version:
            parts.append(f"driver {report.driver_version}")
        if report.host:
            parts.append(f"nvidia-smi over ssh {report.nvml_seconds * 1000:.0f} ms")
        else:
            parts.append(f"NVML {report.nvml_seconds * 1000:.1f} ms")
        if not report.attribution_possible:
            parts.append(f"no per-container figures: {report.attribution_reason}")
        return " · ".join(parts)

    def _rebuild(self, layout: tuple[tuple[str, int | None], ...]) -> None:
        holder = self.query_one("#gpu-devices", Vertical)
        holder.remove_children()
        self._layout = layout
        self._blocks, self._headers = {}, {}
        widgets: list[Widget] = []
        for host, index in layout:
            if index is None:
                header = Static("", classes="gpu-host", markup=False)
                self._headers[host] = header
                widgets.append(header)
            else:
                block = self._new_block()
                self._blocks[(host, index)] = block
                widgets.append(block.root)
        if widgets:
            holder.mount_all(widgets)

    @staticmethod
    def _new_block() -> _Block:
        def metric(kind: str) -> Static:
            return Static("", classes=f"gpu-metric {kind}", markup=False)

        title = Static("", classes="gpu-title", markup=False)
        holders = Static("", classes="gpu-holders", markup=False)
        util, mem = metric("gpu-util"), metric("gpu-mem")
        util_spark = Sparkline([], classes="gpu-util-spark")
        mem_spark = Sparkline([], classes="gpu-mem-spark")
        temp, power, fan, clocks = (
            metric("gpu-temp"),
            metric("gpu-power"),
            metric("gpu-fan"),
            metric("gpu-clocks"),
        )
        note = Static("", classes="gpu-note", markup=False)
        # Two lines a GPU, so an 8-GPU machine still leaves room for the fleet table.
        root = Vertical(
            Horizontal(title, util, util_spark, mem, mem_spark, classes="gpu-row"),
            Horizontal(temp, power, fan, clocks, holders, classes="gpu-row"),
            note,
            classes="gpu-block",
        )
        return _Block(
            root, title, util, util_spark, mem, mem_spark, temp, power, fan, clocks, holders, note
        )

    def _fill(
        self, block: _Block, device: GpuDevice, report: GpuReport, warnings: list[str]
    ) -> None:
        title = f"{device.label} · {device.name or NA}"
        if device.mig_enabled:
            title += " · MIG"
        if device.lost:
            title += " · LOST"
        set_text(block.title, title)
        block.root.set_class(device.lost, "-lost")

        set_text(block.util, f"SM {_na(device.util_percent, '{:.0f}%')}")
        _history(block.util_spark, device.util_history)
        if device.mem_used_bytes is None and device.mem_total_bytes is None:
            mem = f"MEM {NA}"
        else:
            mem = (
                f"MEM {format_bytes(device.mem_used_bytes)}/{format_bytes(device.mem_total_bytes)}"
            )
        if device.mem_percent is not None:
            mem += f" {device.mem_percent:.0f}%"
        set_text(block.mem, mem)
        _history(block.mem_spark, device.mem_history)
        _level(block.mem, self.thresholds.mem_level(device))

        temp = f"TEMP {_na(device.temp_c, '{}°C')}"
        if device.temp_slowdown_c is not None:
            temp += f" (slowdown {device.temp_slowdown_c}°C)"
        set_text(block.temp, temp)
        _level(block.temp, self.thresholds.temp_level(device))
        set_text(block.power, f"POWER {_pair(device.power_w, device.power_limit_w, '{:.0f}', 'W')}")
        _level(block.power, device.power_level)
        set_text(block.fan, f"FAN {_na(device.fan_percent, '{}%')}")
        if device.clock_mem_mhz is None and device.clock_sm_max_mhz is not None:
            # nvidia-smi's reading: the SM clock against its maximum (no memory clock).
            clocks = f"{_na(device.clock_sm_mhz, '{}')}/{device.clock_sm_max_mhz} MHz max"
        else:
            clocks = _pair(device.clock_sm_mhz, device.clock_mem_mhz, "{}", " MHz")
        set_text(block.clocks, f"CLK {clocks}")

        prefix = f"{device.label} "
        pressure = [w for w in warnings if w.startswith(prefix)]
        lines = list(pressure)
        if device.lost or device.error:
            lines.append(device.error)
        set_text(block.holders, "" if device.lost else self._holders(report, device))
        set_text(block.note, "\n".join(line for line in lines if line))
        block.note.display = any(lines)
        block.note.set_class(bool(pressure) or device.lost, "-critical")

    def _holders(self, report: GpuReport, device: GpuDevice) -> str:
        procs = report.processes_on(device.index)
        if not device.processes_known and not procs:
            return f"processes {NA}"
        if not procs:
            return "no processes"
        if not report.attribution_possible:
            return f"{len(procs)} process{'es' if len(procs) != 1 else ''}, owners unknown"
        held: dict[str, int | None] = {}
        for proc in procs:
            who = self._who(proc)
            if who in held:
                mem = held[who]
                held[who] = None if mem is None or proc.mem_bytes is None else mem + proc.mem_bytes
            else:
                held[who] = proc.mem_bytes
        ranked = sorted(held.items(), key=lambda kv: -(kv[1] or 0))
        shown = [f"{who} {format_bytes(mem)}" for who, mem in ranked[:HOLDERS_SHOWN]]
        if len(ranked) > HOLDERS_SHOWN:
            shown.append(f"+{len(ranked) - HOLDERS_SHOWN} more")
        return " · ".join(shown)

    def _who(self, proc: GpuProcess) -> str:
        if proc.container_id is not None:
            return self._names.get(proc.container_id) or proc.container_id[:12]
        command = proc.command.split(" ", 1)[0].rsplit("/", 1)[-1] or str(proc.pid)
        return f"host:{command}" if proc.origin == "host" else f"pid {proc.pid}"


def _devices(report: GpuReport) -> tuple[GpuDevice, ...]:
    """The devices to draw a block for: none unless the report's state is "ok"."""
    return report.devices if report.ok else ()


def _problem(report: GpuReport) -> bool:
    """True when a report's line is drawn as a problem (no GPUs read, or no attribution)."""
    return not report.ok or not report.attribution_possible


def _history(spark: Sparkline, history: tuple[float, ...]) -> None:
    # An empty sparkline draws a floor line that reads as zero: hide it instead.
    spark.data = list(history)
    spark.display = bool(history)


def _level(widget: Static, level: str) -> None:
    widget.set_class(level == "warning", "-warning")
    widget.set_class(level == "critical", "-critical")
