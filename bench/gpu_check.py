"""Real GPU check: aitop's NVML figures against nvidia-smi, a PyTorch process and nvitop.

One run of at most `--seconds` (default 240) on a machine with NVIDIA GPUs. It:

1. reads every GPU through aitop's own GPU layer (`tui.fleet.gpu.GpuSampler`) and through
   `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` at the same moment (an aitop
   reading just before and one just after nvidia-smi), prints both side by side and names every
   figure that differs by more than sampling explains (see TOLERANCES);
2. starts a PyTorch process (this file with `--worker`) on the GPU with the most free memory,
   which allocates `--gib` GiB (default 8) and runs bf16 matrix products for `--load-seconds`
   (default 20), and checks that aitop lists that PID, that its memory grew by the allocation
   (+-5 %), that its SM share is high, and that the memory is released once it exits; the
   comparison with nvidia-smi is repeated under that load;
3. times aitop's NVML sampling per GPU per tick (the aim: <= 5 ms) next to nvitop's
   (`Device.as_snapshot()` + `GpuProcess.take_snapshots()`, and nvitop reading only the
   fields aitop reads) in the same run, while the worker runs;
4. renders the GPU pane and a fleet-table row made of those readings to SVG (Textual's
   screenshot export; the app is fed a replay of what was read, through
   `tests.fleet_fixtures.ReplayMonitor` and `tui.fleet.recording`). There is no Docker here:
   the PyTorch worker, a host process, is shown as the table's one row;
5. records every NVML call the GPU layer made, with its answer or its NVML error, as a fixture
   in the format of tests/fixtures/nvml/ (`nvml-recording.json`: readings "idle", "load" and
   "released", loadable with `FakeNvml(json.load(f)["load"], {"$worker": pid})`; the worker's
   PID is the placeholder "$worker"), plus the raw call log `nvml-calls.jsonl`.

It prints a summary and exits 0 when no check failed, 1 otherwise. A missing nvidia-smi,
PyTorch or nvitop is a labelled SKIP line, never a traceback. Everything is written to `--out`
(default bench/results/gpu-check-YYYYmmdd-HHMMSS/): gpu-check.txt (the printed text),
gpu-check.json (every figure), the NVML recording, fleet.json (the replayed fleet), the SVGs,
worker.stderr and gpu-check.log (details of anything that failed unexpectedly).

`--dry-run` runs every step here, without a GPU, against the tests' fake NVML
(tests/fixtures/nvml/fake_nvml.py, reading `--fixture`, default h100_a100.json): nvidia-smi's
answer is made from the fake's reading, the PyTorch process is a stand-in process whose GPU
memory and SM share are simulated entries in the fake (every such line says SIMULATED), and
nvitop, which reads only a real driver, is skipped.

On the GPU machine (no network there; PyTorch, nvidia-ml-py, psutil present):

Here, from the repository root, gather the wheels into an ignored folder (PYV: the GPU
machine's Python, e.g. 3.11; its `python3 -V`):

    rm -rf bench/results/wheels
    .venv/bin/pip wheel --no-deps --wheel-dir bench/results/wheels .
    .venv/bin/pip download --dest bench/results/wheels --only-binary=:all: \\
        --python-version "$PYV" --platform manylinux2014_x86_64 \\
        textual==8.2.8 'docker>=7.1,<8' nvitop==1.7.2   # (add tomli for Python 3.10)

There, in the repository root of the copied working tree (the `run` tool: carry
`bench/results/wheels`; results come back through `$OUT`):

    python3 -m venv --system-site-packages /tmp/gc      # sees the machine's torch
    /tmp/gc/bin/pip install -q --no-index --find-links bench/results/wheels aitop nvitop==1.7.2
    /tmp/gc/bin/python bench/gpu_check.py --out "$OUT" --seconds 240

Here, without a GPU:

    .venv/bin/python bench/gpu_check.py --dry-run --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui.fleet.gpu.nvml import load_pynvml  # noqa: E402
from tui.fleet.gpu.remote import smi_value  # noqa: E402
from tui.fleet.gpu.sampler import GpuSampler  # noqa: E402
from tui.fleet.gpu.types import ORIGIN_CONTAINER, GpuDevice, GpuReport  # noqa: E402
from tui.fleet.units import format_bytes  # noqa: E402

GIB = 2**30
MIB = 2**20
SMI_FIELDS = (
    "index",
    "uuid",
    "name",
    "driver_version",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "clocks.sm",
    "clocks.max.sm",
    "mig.mode.current",
)
SMI_COMMAND = (
    "nvidia-smi",
    "--query-gpu=" + ",".join(SMI_FIELDS),
    "--format=csv,noheader,nounits",
)


@dataclass(frozen=True)
class Tolerance:
    """How far aitop's figure may be from nvidia-smi's before it counts as a difference."""

    absolute: float = 0.0
    relative: float = 0.0
    """A share of nvidia-smi's value (power, clocks)."""
    of_total: float = 0.0
    """A share of the GPU's total memory (memory: the used figure is near 0 on an idle GPU)."""

    def allowed(self, smi: float, total: float | None) -> float:
        """The largest difference that sampling explains, for this nvidia-smi value."""
        return max(self.absolute, self.relative * abs(smi), self.of_total * (total or 0.0))

    def describe(self, margin: str) -> str:
        """In words, with the margin it makes for this value ("+-10% = 61.2 W")."""
        if self.of_total:
            return f"+-{self.of_total:.0%} of total = {margin}"
        if self.relative:
            return f"+-{self.relative:.0%} = {margin}"
        return f"+-{margin}"


# Two tools read the same counters at instants a few hundred ms apart (nvidia-smi takes that
# long to start): utilisation is an average over the driver's last sample period and swings
# by tens of points under bursty load; power is averaged over about a second; clocks move
# with the boost state; temperature drifts by a degree or so; memory only moves if something
# allocates in between. Identity fields (name, driver, MIG mode) must match exactly.
TOLERANCES: Mapping[str, Tolerance] = {
    "utilisation": Tolerance(absolute=15.0),
    "memory used": Tolerance(of_total=0.01),
    "memory total": Tolerance(of_total=0.01),
    "temperature": Tolerance(absolute=2.0),
    "power draw": Tolerance(relative=0.10),
    "power limit": Tolerance(relative=0.10),
    "SM clock": Tolerance(relative=0.10),
}
MEMORY_SHARE = 0.05
"""The worker's GPU memory must grow by its allocation within this share."""
HIGH_SM_PERCENT = 50.0
"""The worker's median SM share under load must reach this (bf16 matmuls saturate the SMs)."""
SAMPLING_AIM_MS = 5.0
"""The aim for aitop's NVML sampling, per GPU per tick (median)."""
MATMUL_N = 8192
SIM_CONTEXT_BYTES = 500 * MIB
"""Dry run: the CUDA context a simulated worker holds before its allocation."""
SIM_SM_PERCENT = 97
"""Dry run: the SM share the fake NVML reports for the simulated worker."""


# --- output ------------------------------------------------------------------------------------


@dataclass
class Check:
    """One verdict of the run."""

    name: str
    status: str
    """PASS, FAIL or SKIP."""
    detail: str
    simulated: bool = False


@dataclass
class Log:
    """What the run prints, the verdicts and the figures that go into gpu-check.json."""

    out: Path
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str = "") -> None:
        with self._lock:
            self.lines.append(line)
            # A closed stdout (`| head`) must not end the run: gpu-check.txt still gets it all.
            with contextlib.suppress(OSError):
                print(line, flush=True)

    def check(self, name: str, ok: bool | None, detail: str, *, simulated: bool = False) -> None:
        """A verdict: ok True is PASS, False is FAIL, None is SKIP."""
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
        self.checks.append(Check(name, status, detail, simulated))
        self.say(_check_line(self.checks[-1]))

    def detail(self, text: str) -> None:
        """Details (a traceback) for gpu-check.log only."""
        with self._lock, (self.out / "gpu-check.log").open("a", encoding="utf-8") as fh:
            fh.write(text.rstrip() + "\n")

    @property
    def failed(self) -> bool:
        return any(c.status == "FAIL" for c in self.checks)


def _check_line(check: Check) -> str:
    label = " (SIMULATED)" if check.simulated else ""
    return f"{check.status}  {check.name}{label}: {check.detail}"


class Budget:
    """The run's time: every step's timeout is cut to what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def cap(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.left()))


class StepTimeout(Exception):
    """A step ran past its timeout."""


def run_step(log: Log, name: str, timeout: float, fn: Callable[[], Any]) -> Any:
    """`fn()` on a thread of its own, given up after `timeout` seconds (an NVML call can hang
    on a failing GPU, and nothing can interrupt it). A crash is one FAIL line; the traceback
    goes to gpu-check.log."""
    if timeout <= 1:
        log.check(name, None, "out of time (--seconds budget spent)")
        return None
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:
            box["error"] = exc
            log.detail(f"--- {name}\n{traceback.format_exc()}")

    thread = threading.Thread(target=target, name=f"gpu-check {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.check(name, False, f"timed out after {timeout:.0f}s")
        return None
    if "error" in box:
        exc = box["error"]
        log.check(name, False, f"failed: {type(exc).__name__}: {exc} (see gpu-check.log)")
        return None
    return box.get("value")


# --- recording every NVML call -----------------------------------------------------------------

# The fixture key each call's answer goes to (tests/fixtures/nvml/fake_nvml.py's names).
_DEVICE_KEYS: Mapping[str, str] = {
    "nvmlDeviceGetUUID": "uuid",
    "nvmlDeviceGetName": "name",
    "nvmlDeviceGetMemoryInfo": "memory",
    "nvmlDeviceGetUtilizationRates": "utilization",
    "nvmlDeviceGetTemperature": "temperature",
    "nvmlDeviceGetTemperatureV": "temperature",
    "nvmlDeviceGetTemperatureThreshold": "temperature_threshold_slowdown",
    "nvmlDeviceGetPowerUsage": "power_usage_mw",
    "nvmlDeviceGetEnforcedPowerLimit": "enforced_power_limit_mw",
    "nvmlDeviceGetFanSpeed": "fan_speed",
    "nvmlDeviceGetClockInfo": "clocks",
    "nvmlDeviceGetMigMode": "mig_mode",
    "nvmlDeviceGetComputeRunningProcesses": "compute_processes",
    "nvmlDeviceGetComputeRunningProcesses_v2": "compute_processes",
    "nvmlDeviceGetGraphicsRunningProcesses": "graphics_processes",
    "nvmlDeviceGetGraphicsRunningProcesses_v2": "graphics_processes",
    "nvmlDeviceGetProcessUtilization": "process_utilization",
}
# The fake answers only the plain entry points; a newer or older form the driver answered is
# recorded under the call the fake has (the sampler falls back to it, with the same answer).
_FAKE_CALL: Mapping[str, str] = {
    "nvmlDeviceGetTemperatureV": "nvmlDeviceGetTemperature",
    "nvmlDeviceGetComputeRunningProcesses_v2": "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses_v2": "nvmlDeviceGetGraphicsRunningProcesses",
}
_LISTS = frozenset({"compute_processes", "graphics_processes"})
_KEY_ORDER = (
    "name",
    "uuid",
    "memory",
    "utilization",
    "temperature",
    "temperature_threshold_slowdown",
    "power_usage_mw",
    "enforced_power_limit_mw",
    "fan_speed",
    "clocks",
    "mig_mode",
    "compute_processes",
    "graphics_processes",
    "process_utilization",
)


def plain(value: Any) -> Any:
    """An NVML answer as JSON: ctypes structures and the bindings' objects become dicts."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    fields = getattr(value, "_fields_", None)
    if fields is not None:
        return {f[0]: plain(getattr(value, f[0])) for f in fields}
    if hasattr(value, "__dict__"):
        return {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return repr(value)


class RecordingNvml:
    """Stands in front of the `pynvml` module (or the fake) for aitop's GPU layer: every NVML
    call passes through unchanged, and its answer or NVML error is recorded, both as a raw
    log (`calls`) and folded into readings in the fake NVML's fixture format (`reading()`)."""

    def __init__(self, module: Any, known_errors: Iterable[str] = ()) -> None:
        self._module = module
        self._error_type = getattr(module, "NVMLError", Exception)
        self._error_names = {
            getattr(module, name): name[len("NVML_ERROR_") :]
            for name in dir(module)
            if name.startswith("NVML_ERROR_") and isinstance(getattr(module, name), int)
        }
        self._known_errors = frozenset(known_errors)
        self._lock = threading.Lock()
        self._handles: dict[int, Any] = {}
        self.calls: list[dict[str, Any]] = []
        """Every call: {"tick", "call", "args", "seconds", and "value" or "error"}."""
        self.tick = 0
        self._tick_start = 0
        self.count: int | None = None
        self.driver_version: str | None = None
        self.errors: dict[str, str] = {}
        self.devices: dict[int, dict[str, Any]] = {}
        self._error_ticks: dict[tuple[int, str], int] = {}
        self.notes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self._module, name)
        except AttributeError:
            if name.startswith("nvml"):
                with self._lock:
                    self.calls.append(
                        {"tick": self.tick, "call": name, "error": "not in the bindings"}
                    )
            raise
        if name.startswith("nvml") and callable(value) and not isinstance(value, type):

            def call(*args: Any) -> Any:
                return self._call(name, value, args)

            return call
        return value

    def _call(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        start = time.perf_counter()
        try:
            value = fn(*args)
        except self._error_type as exc:
            code = getattr(exc, "value", None)
            self._note(name, args, time.perf_counter() - start, error=self._error_name(code))
            raise
        except Exception as exc:
            self._note(
                name, args, time.perf_counter() - start, error=f"python {type(exc).__name__}"
            )
            raise
        self._note(name, args, time.perf_counter() - start, value=value)
        return value

    def _error_name(self, code: Any) -> str:
        return self._error_names.get(code, f"CODE_{code}")

    def _index_of(self, handle: Any) -> int | None:
        return next((i for i, h in self._handles.items() if h is handle), None)

    def _note(
        self,
        name: str,
        args: tuple[Any, ...],
        seconds: float,
        *,
        value: Any = None,
        error: str = "",
    ) -> None:
        with self._lock:
            if name == "nvmlDeviceGetCount":
                self.tick += 1
                self._tick_start = len(self.calls)
            index = self._index_of(args[0]) if args else None
            shown_args = [
                f"handle:{index}" if i == 0 and index is not None else plain(a)
                for i, a in enumerate(args)
            ]
            entry: dict[str, Any] = {
                "tick": self.tick,
                "call": name,
                "args": shown_args,
                "seconds": round(seconds, 7),
            }
            if error:
                entry["error"] = error
            elif name == "nvmlDeviceGetHandleByIndex":
                entry["value"] = f"handle:{args[0]}"
            else:
                entry["value"] = plain(value)
            self.calls.append(entry)
            self._fold(name, args, index, value, error)

    def _fixture_error(self, error: str) -> str:
        if error in self._known_errors or not self._known_errors:
            return error
        note = f"NVML error {error} is not one the fake knows: recorded as UNKNOWN"
        if note not in self.notes:
            self.notes.append(note)
        return "UNKNOWN"

    def _fold(self, name: str, args: tuple[Any, ...], index: int | None, value: Any, error: str):
        """Fold one answer into the readings' state (the fake's format)."""
        if name == "nvmlDeviceGetHandleByIndex":
            position = int(args[0])
            device = self.devices.setdefault(position, {"errors": {}})
            if error:
                device["errors"][name] = self._fixture_error(error)
            else:
                self._handles[position] = value
                device["errors"].pop(name, None)
            return
        if index is None or name not in _DEVICE_KEYS:
            self._fold_global(name, value, error)
            return
        device = self.devices.setdefault(index, {"errors": {}})
        key = _DEVICE_KEYS[name]
        call = _FAKE_CALL.get(name, name)
        if name == "nvmlDeviceGetClockInfo":
            self._fold_clock(device, args, value, error)
            return
        if error == "NOT_SUPPORTED" and key not in _LISTS:
            # The fake raises NOT_SUPPORTED for a null value, as the existing fixtures say it.
            device[key] = None
            device["errors"].pop(call, None)
        elif error == "NOT_FOUND" and key == "process_utilization":
            # No sample newer than the last one: the fake raises NOT_FOUND for an empty list.
            device[key] = []
            device["errors"].pop(call, None)
        elif error:
            device["errors"][call] = self._fixture_error(error)
            self._error_ticks[(index, call)] = self.tick
        else:
            device[key] = plain(value)
            device["errors"].pop(call, None)

    def _fold_clock(
        self, device: dict[str, Any], args: tuple[Any, ...], value: Any, error: str
    ) -> None:
        which = {
            getattr(self._module, "NVML_CLOCK_SM", 1): "sm",
            getattr(self._module, "NVML_CLOCK_MEM", 2): "mem",
        }.get(args[1] if len(args) > 1 else None)
        if which is None:
            return
        clocks = device.setdefault("clocks", {})
        if clocks is None:
            clocks = device["clocks"] = {}
        clocks[which] = None if error else plain(value)
        if error and error != "NOT_SUPPORTED":
            # The fake keys errors by call, not by clock: it will raise this for both clocks.
            device["errors"]["nvmlDeviceGetClockInfo"] = self._fixture_error(error)
            note = f"nvmlDeviceGetClockInfo({which}) raised {error}: the fake raises it for both"
            if note not in self.notes:
                self.notes.append(note)

    def _fold_global(self, name: str, value: Any, error: str) -> None:
        if name == "nvmlSystemGetDriverVersion" and not error:
            self.driver_version = plain(value)
        elif name == "nvmlDeviceGetCount" and not error:
            self.count = int(value)
        if name in ("nvmlInit", "nvmlDeviceGetCount", "nvmlSystemGetDriverVersion"):
            if error:
                self.errors[name] = self._fixture_error(error)
            else:
                self.errors.pop(name, None)

    def reading(self, description: str, pids: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The state now, as one reading the fake NVML loads; the raw calls of the last tick
        under "nvml_calls". PIDs in `pids` become placeholders ("$worker")."""
        pids = pids or {}
        with self._lock:
            devices = []
            for index in range(self.count or 0):
                state = copy.deepcopy(self.devices.get(index, {"errors": {}}))
                device = {k: state[k] for k in _KEY_ORDER if k in state}
                for key in ("compute_processes", "graphics_processes", "process_utilization"):
                    for entry in device.get(key) or ():
                        if entry.get("pid") in pids:
                            entry["pid"] = pids[entry["pid"]]
                device["errors"] = state.get("errors", {})
                devices.append(device)
            reading: dict[str, Any] = {"description": description}
            if self.driver_version is not None:
                reading["driver_version"] = self.driver_version
            if self.errors:
                reading["errors"] = dict(self.errors)
            reading["devices"] = devices
            if self.notes:
                reading["recording_notes"] = list(self.notes)
            reading["nvml_calls"] = copy.deepcopy(self.calls[self._tick_start :])
            return reading


# --- nvidia-smi --------------------------------------------------------------------------------


def parse_smi(text: str) -> list[dict[str, str | None]]:
    """nvidia-smi's CSV (noheader, nounits) as one dict per GPU, keyed by SMI_FIELDS."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        # Names hold no commas (nvidia-smi's own CSV does not quote them either).
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(SMI_FIELDS):
            raise ValueError(f"nvidia-smi printed {len(cells)} fields, not {len(SMI_FIELDS)}")
        rows.append({f: smi_value(c) for f, c in zip(SMI_FIELDS, cells, strict=True)})
    return rows


def smi_from_fake(reading: Mapping[str, Any]) -> str:
    """Dry run: what nvidia-smi would print for the fake NVML's reading (its units: MiB, W)."""

    def cell(value: Any, fmt: str = "{}") -> str:
        return "[N/A]" if value is None else fmt.format(value)

    lines = []
    for index, device in enumerate(reading.get("devices", ())):
        memory = device.get("memory") or {}
        util = device.get("utilization") or {}
        clocks = device.get("clocks") or {}
        power, limit = device.get("power_usage_mw"), device.get("enforced_power_limit_mw")
        mig = device.get("mig_mode")
        cells = [
            str(index),
            cell(device.get("uuid")),
            cell(device.get("name")),
            cell(reading.get("driver_version")),
            cell(util.get("gpu")),
            cell(memory["used"] // MIB if "used" in memory else None),
            cell(memory["total"] // MIB if "total" in memory else None),
            cell(device.get("temperature")),
            cell(power / 1000 if power is not None else None, "{:.2f}"),
            cell(limit / 1000 if limit is not None else None, "{:.2f}"),
            cell(clocks.get("sm")),
            "[N/A]",  # the fake has no maximum clock
            cell(None if mig is None else ("Enabled" if mig[0] == 1 else "Disabled")),
        ]
        lines.append(", ".join(cells))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Figure:
    """One row of the side-by-side table."""

    name: str
    aitop: str
    smi: str
    allowed: str
    ok: bool | None
    """True: within tolerance; False: a difference sampling does not explain; None: shown only."""


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "N/A"
    text = (
        f"{value:.0f}" if abs(value - round(value)) < 0.05 or abs(value) >= 100 else f"{value:.1f}"
    )
    return f"{text} {unit}".rstrip()


def compare_device(
    before: GpuDevice, after: GpuDevice, row: Mapping[str, str | None], driver: str | None
) -> list[Figure]:
    """aitop's figures (its readings just before and just after nvidia-smi's) against
    nvidia-smi's row for the same GPU. A figure agrees when nvidia-smi's value lies within the
    tolerance of the span of aitop's two readings."""
    total_mib = (after.mem_total_bytes or 0) / MIB or _number(row.get("memory.total"))

    def mib(value: int | None) -> float | None:
        return value / MIB if value is not None else None

    numeric = (
        ("utilisation", "%", before.util_percent, after.util_percent, "utilization.gpu"),
        (
            "memory used",
            "MiB",
            mib(before.mem_used_bytes),
            mib(after.mem_used_bytes),
            "memory.used",
        ),
        (
            "memory total",
            "MiB",
            mib(before.mem_total_bytes),
            mib(after.mem_total_bytes),
            "memory.total",
        ),
        ("temperature", "C", before.temp_c, after.temp_c, "temperature.gpu"),
        ("power draw", "W", before.power_w, after.power_w, "power.draw"),
        ("power limit", "W", before.power_limit_w, after.power_limit_w, "power.limit"),
        ("SM clock", "MHz", before.clock_sm_mhz, after.clock_sm_mhz, "clocks.sm"),
    )
    figures = []
    for name, unit, a, b, smi_field in numeric:
        smi = _number(row.get(smi_field))
        tolerance = TOLERANCES[name]
        known = [v for v in (a, b) if v is not None]
        if not known:
            shown = "N/A"
        elif len(known) == 2 and _fmt(a, unit) != _fmt(b, unit):
            shown = f"{_fmt(min(known), '')}..{_fmt(max(known), unit)}"
        else:
            shown = _fmt(known[-1], unit)
        if smi is None or not known:
            # N/A on both sides agrees; N/A on one side only is a difference to look at.
            ok = smi is None and not known
            allowed = "both N/A" if ok else "one side N/A"
        else:
            margin = tolerance.allowed(smi, total_mib)
            ok = min(known) - margin <= smi <= max(known) + margin
            # An absolute margin on a percentage is in points, not a share of the value.
            allowed = tolerance.describe(_fmt(margin, "points" if unit == "%" else unit))
        figures.append(Figure(name, shown, _fmt(smi, unit), allowed, ok))
    figures.append(
        Figure("SM clock max", "not read", _fmt(_number(row.get("clocks.max.sm")), "MHz"), "", None)
    )
    smi_mig = row.get("mig.mode.current")
    # "[N/A]": the GPU has no MIG mode; aitop reads that as MIG disabled.
    smi_enabled = smi_mig is not None and smi_mig.lower() == "enabled"
    figures.append(
        Figure(
            "MIG mode",
            "enabled" if after.mig_enabled else "disabled",
            smi_mig or "N/A",
            "exact",
            smi_enabled == after.mig_enabled,
        )
    )
    figures.append(
        Figure(
            "name",
            after.name or "N/A",
            row.get("name") or "N/A",
            "exact",
            after.name == row.get("name"),
        )
    )
    figures.append(
        Figure(
            "driver",
            driver or "N/A",
            row.get("driver_version") or "N/A",
            "exact",
            driver == row.get("driver_version"),
        )
    )
    return figures


# --- backends: the real machine, or the fake NVML ------------------------------------------------


class RealBackend:
    """The machine's own NVML, nvidia-smi, PyTorch and nvitop."""

    simulated = False

    def __init__(self) -> None:
        self.module: Any = None

    def nvml_module(self) -> tuple[Any | None, str]:
        self.module = load_pynvml()
        if self.module is None:
            return None, "nvidia-ml-py (the pynvml module) is not installed"
        return self.module, ""

    def known_errors(self) -> tuple[str, ...]:
        return _fake_error_names()

    def smi(self, timeout: float) -> tuple[str | None, str]:
        if shutil.which("nvidia-smi") is None:
            return None, "nvidia-smi is not on PATH"
        try:
            done = subprocess.run(
                SMI_COMMAND, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None, f"nvidia-smi did not answer within {timeout:.0f}s"
        except OSError as exc:
            return None, f"nvidia-smi could not run: {exc}"
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
            return None, f"nvidia-smi exited {done.returncode}: {tail[0][:200]}"
        return done.stdout, ""

    def worker_command(self, args: argparse.Namespace) -> tuple[list[str] | None, str]:
        if importlib.util.find_spec("torch") is None:
            return None, "PyTorch is not installed (import torch fails)"
        return [sys.executable, str(Path(__file__).resolve()), *worker_args(args)], ""

    def on_worker(self, phase: str, message: Mapping[str, Any], index: int) -> None:
        """Nothing to do: the real driver sees the real process."""

    def before_sample(self) -> None:
        """Nothing to do: the real driver samples by itself."""

    def worker_gone(self) -> None:
        """Nothing to do: the driver frees the memory."""

    def nvitop(self) -> tuple[Any | None, str]:
        try:
            return importlib.import_module("nvitop"), ""
        except ImportError as exc:
            return None, f"nvitop is not installed ({exc}); take nvitop==1.7.2 along as a wheel"

    def reserved_note(self, index: int) -> str:
        """NVML's v2 memory figures: nvidia-smi leaves the driver's reserved memory out of
        memory.used, NVML's v1 `used` (what aitop reads) includes it."""
        module = self.module
        version = getattr(module, "nvmlMemory_v2", None)
        if module is None or version is None:
            return ""
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            info = module.nvmlDeviceGetMemoryInfo(handle, version=version)
        except Exception as exc:
            return f"NVML v2 memory info not available: {type(exc).__name__}"
        reserved = getattr(info, "reserved", None)
        used = getattr(info, "used", None)
        if reserved is None or used is None:
            return ""
        return (
            f"NVML v2: used {used / MIB:.0f} MiB + reserved {reserved / MIB:.0f} MiB "
            "(nvidia-smi's memory.used is the v2 `used`; aitop reads v1, which counts both)"
        )


def _fake_error_names() -> tuple[str, ...]:
    from tests.fixtures.nvml.fake_nvml import ERROR_CODES

    return tuple(ERROR_CODES)


class DryBackend:
    """Every GPU answer from the tests' fake NVML; the worker's GPU use simulated in it."""

    simulated = True

    def __init__(self, fixture: str) -> None:
        from tests.fixtures.nvml.fake_nvml import FakeNvml, load_reading

        reading = load_reading(fixture)
        placeholders = sorted(_placeholders(reading))
        # The fixture's placeholder PIDs ("$a") name no process here, as in the tests.
        self.fake = FakeNvml(reading, {p: 4101 + i for i, p in enumerate(placeholders)})
        self.fixture = fixture
        self._worker: tuple[int, int] | None = None
        self._saved: dict[str, Any] = {}
        self._loaded = False

    def nvml_module(self) -> tuple[Any | None, str]:
        return self.fake, ""

    def known_errors(self) -> tuple[str, ...]:
        return _fake_error_names()

    def smi(self, timeout: float) -> tuple[str | None, str]:
        return smi_from_fake(self.fake.reading), ""

    def worker_command(self, args: argparse.Namespace) -> tuple[list[str] | None, str]:
        return [sys.executable, str(Path(__file__).resolve()), *worker_args(args), "--simulate"], ""

    def _device(self, index: int) -> dict[str, Any]:
        return self.fake.reading["devices"][index]

    def on_worker(self, phase: str, message: Mapping[str, Any], index: int) -> None:
        """The driver's view of the stand-in worker, written into the fake's reading."""
        device = self._device(index)
        memory = device["memory"]
        if phase == "context":
            pid = int(message["pid"])
            self._worker = (pid, index)
            self._saved = {
                "memory": dict(memory),
                "utilization": dict(device.get("utilization") or {}),
            }
            device.setdefault("compute_processes", []).append(
                {
                    "pid": pid,
                    "usedGpuMemory": SIM_CONTEXT_BYTES,
                    "gpuInstanceId": 0xFFFFFFFF,
                    "computeInstanceId": 0xFFFFFFFF,
                }
            )
            memory["used"] += SIM_CONTEXT_BYTES
            memory["free"] -= SIM_CONTEXT_BYTES
        elif phase == "allocated" and self._worker is not None:
            grown = int(message["reserved"]) - int(message.get("reserved_before", 0))
            for proc in device["compute_processes"]:
                if proc["pid"] == self._worker[0]:
                    proc["usedGpuMemory"] += grown
            memory["used"] += grown
            memory["free"] -= grown
            device["utilization"] = {"gpu": 100, "memory": 60}
            self._loaded = True

    def before_sample(self) -> None:
        """A fresh per-process utilisation sample for the worker, as the driver takes them."""
        if not self._loaded or self._worker is None:
            return
        pid, index = self._worker
        samples = self._device(index).setdefault("process_utilization", [])
        if samples is None:
            return
        samples.append(
            {
                "pid": pid,
                "timeStamp": time.time_ns() // 1000,
                "smUtil": SIM_SM_PERCENT,
                "memUtil": 60,
                "encUtil": 0,
                "decUtil": 0,
            }
        )
        del samples[:-16]

    def worker_gone(self) -> None:
        if self._worker is None:
            return
        pid, index = self._worker
        device = self._device(index)
        device["compute_processes"] = [p for p in device["compute_processes"] if p["pid"] != pid]
        if device.get("process_utilization"):
            device["process_utilization"] = [
                s for s in device["process_utilization"] if s["pid"] != pid
            ]
        device["memory"] = self._saved["memory"]
        device["utilization"] = self._saved["utilization"]
        self._worker, self._loaded = None, False

    def nvitop(self) -> tuple[Any | None, str]:
        return None, "dry run: nvitop reads the real NVML library only, not the fake"

    def reserved_note(self, index: int) -> str:
        return ""


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["pid"]} if isinstance(value.get("pid"), str) else set()
        return found.union(*(_placeholders(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value))
    return set()


Backend = RealBackend | DryBackend


# --- the worker (this file with --worker) ------------------------------------------------------


def worker_args(args: argparse.Namespace) -> list[str]:
    return ["--worker", "--gib", str(args.gib), "--max-seconds", str(int(args.seconds))]


def worker_main(args: argparse.Namespace) -> int:
    """Allocate `--gib` GiB on the one visible GPU and run matmuls until told to stop.

    Talks JSON lines: prints {"phase": "context"} once CUDA is up (and waits for "alloc" on
    stdin), {"phase": "allocated"} once the block is held (then computes until "stop", the end
    of stdin or --max-seconds), {"phase": "done"} at the end, {"phase": "error"} on failure.
    """
    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("stop")  # the parent went away

    threading.Thread(target=read_stdin, daemon=True).start()
    deadline = time.monotonic() + args.max_seconds

    def emit(**message: Any) -> None:
        print(json.dumps(message), flush=True)

    def wait_for(word: str) -> bool:
        while True:
            try:
                got = commands.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if got == word:
                return True
            if got == "stop":
                return False

    allocation = args.gib * GIB
    if args.simulate:
        emit(phase="context", pid=os.getpid(), reserved=0, simulated=True)
        if wait_for("alloc"):
            emit(phase="allocated", reserved_before=0, reserved=allocation, simulated=True)
            wait_for("stop")
        emit(phase="done", iterations=0, seconds=0.0, tflops=0.0, simulated=True)
        return 0
    try:
        import torch
    except Exception as exc:
        emit(phase="error", message=f"import torch failed: {type(exc).__name__}: {exc}")
        return 2
    try:
        if not torch.cuda.is_available():
            emit(phase="error", message="torch.cuda.is_available() is False")
            return 2
        torch.cuda.set_device(0)
        a = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=torch.bfloat16)
        c = torch.matmul(a, b)
        torch.cuda.synchronize()
        before = torch.cuda.memory_reserved()
        emit(
            phase="context",
            pid=os.getpid(),
            reserved=before,
            device=torch.cuda.get_device_name(0),
            torch=torch.__version__,
            cuda=torch.version.cuda,
        )
        if not wait_for("alloc"):
            emit(phase="done", iterations=0, seconds=0.0, tflops=0.0)
            return 0
        block = torch.empty(allocation, dtype=torch.uint8, device="cuda")
        block.fill_(1)
        torch.cuda.synchronize()
        emit(
            phase="allocated",
            reserved_before=before,
            reserved=torch.cuda.memory_reserved(),
            allocated=block.numel(),
        )
        iterations, start = 0, time.monotonic()
        while time.monotonic() < deadline and commands.empty():
            for _ in range(20):
                torch.matmul(a, b, out=c)
            torch.cuda.synchronize()
            iterations += 20
        seconds = time.monotonic() - start
        flops = 2.0 * MATMUL_N**3 * iterations
        emit(
            phase="done",
            iterations=iterations,
            seconds=round(seconds, 3),
            tflops=round(flops / seconds / 1e12, 1) if seconds else 0.0,
        )
        del block
        return 0
    except Exception as exc:
        emit(phase="error", message=f"{type(exc).__name__}: {exc}"[:500])
        return 2


class WorkerFailed(Exception):
    """The worker said it failed, exited early or went silent."""


class Worker:
    """The parent's side of the worker: its process, its JSON lines, and its end."""

    def __init__(self, command: list[str], env: Mapping[str, str], stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr = stderr.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=dict(env),
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="gpu-check worker stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    self.messages.put(message)
        self.messages.put(None)

    def expect(self, phase: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise WorkerFailed(f"no '{phase}' from the worker within {timeout:.0f}s") from None
            if message is None:
                raise WorkerFailed(f"the worker exited before '{phase}': {self.stderr_tail()}")
            if message.get("phase") == "error":
                raise WorkerFailed(str(message.get("message", "")))
            if message.get("phase") == phase:
                return message

    def send(self, word: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        self._stderr.flush()
        text = self._stderr_path.read_text(encoding="utf-8", errors="replace").strip()
        return (text.splitlines()[-1] if text else "nothing on stderr")[:300]

    def stop(self, timeout: float) -> int | None:
        """Ask it to stop, then kill it (by its own PID) if it does not go."""
        self.send("stop")
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._stderr.close()
        return code


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """What the steps share."""

    args: argparse.Namespace
    log: Log
    budget: Budget
    backend: Backend
    recorder: RecordingNvml | None = None
    sampler: GpuSampler | None = None
    module: Any = None
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, GpuReport] = field(default_factory=dict)
    worker: Worker | None = None
    worker_pid: int | None = None
    worker_cpu: dict[str, float] = field(default_factory=dict)
    host_sampler: Any = None
    host: Any = None
    """This machine's last HostSnapshot (aitop's own host sampler), for the picture."""

    @property
    def simulated(self) -> bool:
        return self.backend.simulated

    def sample(self) -> GpuReport:
        assert self.sampler is not None
        self.backend.before_sample()
        return self.sampler.sample()

    def record(self, label: str, description: str) -> None:
        if self.recorder is None:
            return
        pids = {self.worker_pid: "$worker"} if self.worker_pid is not None else {}
        self.readings[label] = self.recorder.reading(description, pids)


def step_read(run: Run) -> None:
    log = run.log
    module, why = run.backend.nvml_module()
    if module is None:
        log.check("aitop reads the GPUs", False, why)
        return
    run.module = module
    run.recorder = RecordingNvml(module, run.backend.known_errors())
    run.sampler = GpuSampler(run.recorder, min_interval=0.0)
    report = run.sample()
    run.reports["idle"] = report
    # Recorded whatever the state: a driver's refusal is a fixture too (states.json).
    run.record(
        "idle", f"gpu_check: every GPU idle, before the PyTorch worker started; {report.label}"
    )
    if not report.ok:
        log.check("aitop reads the GPUs", False, f"{report.label}: {report.message}")
        return
    names = ", ".join(f"{d.index}: {d.name or 'N/A'}" for d in report.devices)
    log.check(
        "aitop reads the GPUs",
        all(d.error == "" for d in report.devices),
        f"{len(report.devices)} GPU(s), driver {report.driver_version or 'N/A'} ({names})"
        + "".join(f"; GPU {d.index}: {d.error}" for d in report.devices if d.error),
        simulated=run.simulated,
    )
    if not report.attribution_possible:
        log.say(f"      note: {report.attribution_reason}")
    for device in report.devices:
        if device.lost:
            log.say(f"      GPU {device.index}: lost ({device.error})")


def step_compare(run: Run, label: str) -> None:
    """aitop against nvidia-smi, side by side; `label` says when ("idle", "under load")."""
    log = run.log
    name = f"aitop vs nvidia-smi ({label})"
    before = run.sample()
    text, why = run.backend.smi(timeout=run.budget.cap(20))
    after = run.sample()
    if text is None:
        log.check(name, None, why)
        return
    rows = parse_smi(text)
    if run.simulated:
        log.say("      nvidia-smi (SIMULATED): its CSV made from the fake NVML's reading")
    by_uuid = {r["uuid"]: r for r in rows}
    problems: list[str] = []
    table: list[dict[str, Any]] = []
    for device in after.devices:
        row = by_uuid.get(device.uuid)
        if row is None:
            problems.append(f"GPU {device.index} ({device.uuid}) is not in nvidia-smi's list")
            continue
        first = before.device(device.index) or device
        figures = compare_device(first, device, row, after.driver_version)
        log.say(f"  GPU {device.index} · {device.name or 'N/A'} · {device.uuid or 'N/A'}")
        if row.get("index") != str(device.index):
            problems.append(f"GPU {device.index} is index {row.get('index')} in nvidia-smi")
        head = Figure("figure", "aitop", "nvidia-smi", "tolerance", None)
        widths = [
            max(len(getattr(f, key)) for f in (head, *figures)) + 2
            for key in ("name", "aitop", "smi", "allowed")
        ]
        for fig in (head, *figures):
            verdict = "" if fig is head else {True: "ok", False: "DIFFERS", None: ""}[fig.ok]
            cells = (fig.name, fig.aitop, fig.smi, fig.allowed)
            log.say(
                "    " + "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + verdict
            )
            if fig.ok is False:
                problems.append(f"GPU {device.index} {fig.name}: aitop {fig.aitop}, smi {fig.smi}")
        differs = next((f for f in figures if f.name == "memory used"), None)
        if differs is not None and differs.aitop != differs.smi:
            note = run.backend.reserved_note(device.index)
            if note:
                log.say(f"    note: {note}")
        table.append({"index": device.index, "figures": [dataclasses.asdict(f) for f in figures]})
    seen = {d.uuid for d in after.devices}
    problems += [
        f"nvidia-smi lists {r['uuid']}, aitop does not" for r in rows if r["uuid"] not in seen
    ]
    run.log.figures.setdefault("comparisons", {})[label] = {"smi_csv": text, "gpus": table}
    detail = "every figure within tolerance" if not problems else "; ".join(problems)
    log.check(name, not problems, detail, simulated=run.simulated)


def _worker_entry(report: GpuReport, pid: int, index: int) -> Any:
    return next((p for p in report.processes_on(index) if p.pid == pid), None)


def pick_gpu(report: GpuReport, need: int) -> tuple[GpuDevice | None, str]:
    """The GPU with the most free memory that can hold `need` bytes and reports per-process
    memory (not MIG), or why there is none."""
    fits = [
        d
        for d in report.devices
        if not d.lost
        and not d.mig_enabled
        and d.mem_total_bytes is not None
        and d.mem_used_bytes is not None
        and d.mem_total_bytes - d.mem_used_bytes >= need
    ]
    if not fits:
        return None, f"no GPU outside MIG mode has {format_bytes(need)} free"
    return max(fits, key=lambda d: (d.mem_total_bytes or 0) - (d.mem_used_bytes or 0)), ""


def step_worker(run: Run) -> bool:
    """The PyTorch process: PID, memory, SM share, release. True when it reached its load."""
    log, args = run.log, run.args
    sim = run.simulated
    idle = run.reports.get("idle")
    if idle is None or not idle.ok:
        log.check("PyTorch worker", None, "aitop has no GPU reading to check it against")
        return False
    command, why = run.backend.worker_command(args)
    if command is None:
        log.check("PyTorch worker", None, why)
        return False
    allocation = args.gib * GIB
    device, why = pick_gpu(idle, int(allocation * 1.1) + SIM_CONTEXT_BYTES)
    if device is None:
        log.check("PyTorch worker", None, why)
        return False
    index = device.index
    env = dict(os.environ)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = device.uuid or str(index)
    what = "a stand-in process, its GPU use written into the fake NVML" if sim else "PyTorch"
    log.say(f"  worker on GPU {index} ({device.name}): {args.gib} GiB, {what}")
    worker = run.worker = Worker(command, env, run.log.out / "worker.stderr")
    run.worker_pid = worker.pid
    # Importing torch and starting CUDA: seconds, tens of them on a cold machine.
    context = worker.expect("context", run.budget.cap(90))
    if "torch" in context:
        log.say(
            f"  worker up: torch {context['torch']}, CUDA {context['cuda']}, {context['device']}"
        )
    run.backend.on_worker("context", context, index)
    time.sleep(0.5)
    r0 = run.sample()
    e0 = _worker_entry(r0, worker.pid, index)
    worker.send("alloc")
    allocated = worker.expect("allocated", run.budget.cap(60))
    run.backend.on_worker("allocated", allocated, index)
    time.sleep(1.0)
    r1 = run.sample()
    e1 = _worker_entry(r1, worker.pid, index)
    grown_torch = int(allocated["reserved"]) - int(allocated.get("reserved_before", 0))
    run.log.figures["worker"] = {
        "pid": worker.pid,
        "gpu": index,
        "torch_reserved_before": allocated.get("reserved_before"),
        "torch_reserved_after": allocated["reserved"],
        "nvml_mem_before": e0.mem_bytes if e0 else None,
        "nvml_mem_after": e1.mem_bytes if e1 else None,
    }
    # PID: NVML reports host PIDs; in a PID namespace of its own this run cannot match them.
    if e1 is None:
        new = [p for p in r1.processes_on(index) if p.pid not in {q.pid for q in idle.processes}]
        if not r1.attribution_possible and len(new) == 1:
            log.check(
                "worker PID listed by aitop",
                None,
                f"NVML lists PID {new[0].pid}, the worker is PID {worker.pid} in this PID "
                f"namespace ({r1.attribution_reason}); checking that entry",
            )
            e0 = next((p for p in r0.processes_on(index) if p.pid == new[0].pid), None)
            e1 = new[0]
            run.worker_pid = e1.pid
        else:
            listed = ", ".join(str(p.pid) for p in r1.processes_on(index)) or "none"
            log.check(
                "worker PID listed by aitop", False, f"PID {worker.pid} not listed ({listed})"
            )
    else:
        log.check(
            "worker PID listed by aitop",
            True,
            f"PID {worker.pid} on GPU {index}, {format_bytes(e1.mem_bytes)}, "
            f"origin {e1.origin}, command {e1.command[:60]!r}",
            simulated=sim,
        )
    if e1 is not None:
        before = e0.mem_bytes if e0 is not None else None
        if e0 is None:
            log.check(
                f"worker memory +{args.gib} GiB (+-5%)",
                False,
                "the worker was not listed with its CUDA context alone, before the allocation: "
                f"the growth cannot be told (after it: {format_bytes(e1.mem_bytes)})",
            )
        elif e1.mem_bytes is None or before is None:
            log.check(
                f"worker memory +{args.gib} GiB (+-5%)",
                False,
                f"per-process memory N/A (before {format_bytes(before)}, "
                f"after {format_bytes(e1.mem_bytes)})",
            )
        else:
            grown = e1.mem_bytes - before
            ok = abs(grown - allocation) <= MEMORY_SHARE * allocation
            log.check(
                f"worker memory +{args.gib} GiB (+-5%)",
                ok,
                f"{format_bytes(before)} (CUDA context) -> {format_bytes(e1.mem_bytes)}: "
                f"+{grown / GIB:.2f} GiB (torch reserved +{grown_torch / GIB:.2f} GiB)",
                simulated=sim,
            )
    psutil_proc = _process(worker.pid)
    utils: list[float] = []
    device_utils: list[float] = []
    end = time.monotonic() + args.load_seconds
    while time.monotonic() < end and run.budget.left() > 30:
        time.sleep(1.0)
        report = run.sample()
        entry = _worker_entry(report, e1.pid if e1 is not None else worker.pid, index)
        if entry is not None and entry.util_percent is not None:
            utils.append(entry.util_percent)
        dev = report.device(index)
        if dev is not None and dev.util_percent is not None:
            device_utils.append(dev.util_percent)
        run.reports["load"] = report
        _host_sample(run)
    if psutil_proc is not None:
        with contextlib.suppress(Exception):
            times = psutil_proc.cpu_times()
            run.worker_cpu = {
                "cpu_percent": psutil_proc.cpu_percent(interval=None),
                "cpu_seconds": times.user + times.system,
                "rss": float(psutil_proc.memory_info().rss),
            }
    run.log.figures["worker"].update(
        {"nvml_pid": run.worker_pid, "sm_samples": utils, "device_util_samples": device_utils}
    )
    if utils:
        median = statistics.median(utils)
        log.check(
            f"worker SM share high (>= {HIGH_SM_PERCENT:.0f}%)",
            median >= HIGH_SM_PERCENT,
            f"median {median:.0f}% over {len(utils)} samples (GPU {index} utilisation median "
            f"{statistics.median(device_utils) if device_utils else float('nan'):.0f}%)",
            simulated=sim,
        )
    else:
        log.check(
            f"worker SM share high (>= {HIGH_SM_PERCENT:.0f}%)",
            False,
            "aitop had no SM share for the worker in any sample (N/A)",
        )
    run.record(
        "load",
        f"gpu_check: the PyTorch worker ($worker) holds {args.gib} GiB on GPU {index} and "
        "runs bf16 matmuls" + (" (SIMULATED in a dry run)" if sim else ""),
    )
    return True


def _process(pid: int) -> Any:
    # The check watches its own worker from outside aitop; the app's psutil rule does not apply.
    try:
        import psutil  # noqa: TID251

        proc = psutil.Process(pid)
        proc.cpu_percent(interval=None)
        return proc
    except Exception:
        return None


def _host_sample(run: Run) -> None:
    try:
        from tui.fleet.metrics.host import HostSampler
    except ImportError:
        return
    if run.host_sampler is None:
        run.host_sampler = HostSampler()
    run.host = run.host_sampler.sample()


def step_release(run: Run) -> None:
    log, worker = run.log, run.worker
    if worker is None:
        return
    done: dict[str, Any] = {}
    with contextlib.suppress(WorkerFailed):
        worker.send("stop")
        done = worker.expect("done", run.budget.cap(30))
    code = worker.stop(timeout=run.budget.cap(20))
    run.worker = None
    run.backend.worker_gone()
    if done.get("tflops"):
        log.say(
            f"  worker done: {done['iterations']} matmuls in {done['seconds']}s, "
            f"{done['tflops']} TFLOP/s bf16, exit {code}"
        )
    run.log.figures.setdefault("worker", {}).update({"done": done, "exit_code": code})
    figures = run.log.figures["worker"]
    # NVML's PID: the worker's own, unless this run sits in a PID namespace of its own.
    index, pid = figures["gpu"], figures.get("nvml_pid") or figures["pid"]
    idle = run.reports["idle"].device(index)
    baseline = idle.mem_used_bytes if idle is not None else None
    total = idle.mem_total_bytes if idle is not None else None
    slack = max(0.01 * (total or 0), 256 * MIB)
    deadline = time.monotonic() + run.budget.cap(20)
    report = run.sample()
    while time.monotonic() < deadline:
        listed = _worker_entry(report, pid, index) is not None
        device = report.device(index)
        used = device.mem_used_bytes if device is not None else None
        if not listed and used is not None and baseline is not None and used <= baseline + slack:
            break
        time.sleep(0.5)
        report = run.sample()
    run.reports["released"] = report
    device = report.device(index)
    used = device.mem_used_bytes if device is not None else None
    listed = _worker_entry(report, pid, index) is not None
    ok = not listed and used is not None and baseline is not None and used <= baseline + slack
    log.check(
        "memory released after the worker exited",
        ok,
        f"GPU {index} {format_bytes(used)} used (idle before: {format_bytes(baseline)}, "
        f"slack {format_bytes(int(slack))}); PID {pid} "
        + ("still listed" if listed else "gone from the list"),
        simulated=run.simulated,
    )
    run.record("released", "gpu_check: after the PyTorch worker exited")


@dataclass
class Timing:
    """Per GPU per tick, in milliseconds."""

    tool: str
    ticks: int
    median_ms: float
    p95_ms: float
    nvml_median_ms: float | None = None


def _timing(tool: str, walls: list[float], gpus: int, inside: list[float] | None) -> Timing:
    per_gpu = sorted(w / gpus * 1000 for w in walls)
    p95 = per_gpu[min(len(per_gpu) - 1, int(0.95 * len(per_gpu)))]
    nvml = statistics.median(i / gpus * 1000 for i in inside) if inside else None
    return Timing(tool, len(walls), statistics.median(per_gpu), p95, nvml)


def time_aitop(module: Any, seconds: float, max_ticks: int = 500) -> Timing | None:
    """aitop's sampler on the bare module (no recording), every tick taken anew."""
    sampler = GpuSampler(module, min_interval=0.0)
    first = sampler.sample()  # NVML's start and the per-device static reads: not a tick
    if not first.ok or not first.devices:
        return None
    walls: list[float] = []
    inside: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(walls) < max_ticks:
        start = time.perf_counter()
        report = sampler.sample()
        walls.append(time.perf_counter() - start)
        inside.append(report.nvml_seconds)
    sampler.close()
    return _timing("aitop GpuSampler.sample()", walls, len(first.devices), inside)


def time_nvitop(nvitop: Any, seconds: float, max_ticks: int = 500) -> list[Timing]:
    """nvitop's snapshot API per tick: its full device and process snapshots, and its
    accessors for only the figures aitop reads."""
    devices = nvitop.Device.all()
    if not devices:
        return []

    def full() -> None:
        for device in devices:
            device.as_snapshot()
            nvitop.GpuProcess.take_snapshots(device.processes().values(), failsafe=True)

    def same_fields() -> None:
        for device in devices:
            with device.oneshot():
                device.name()
                device.uuid()
                device.memory_info()
                device.utilization_rates()
                device.temperature()
                device.power_usage()
                device.power_limit()
                device.fan_speed()
                device.clock_infos()
                device.mig_mode()
            device.processes()

    timings = []
    for tool, fn in (
        ("nvitop as_snapshot + take_snapshots", full),
        ("nvitop, aitop's fields only", same_fields),
    ):
        fn()  # the first call opens NVML and the devices
        walls: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end and len(walls) < max_ticks:
            start = time.perf_counter()
            fn()
            walls.append(time.perf_counter() - start)
        timings.append(_timing(tool, walls, len(devices), None))
    return timings


def step_timing(run: Run, when: str) -> None:
    log, args = run.log, run.args
    if run.module is None:
        log.check("NVML sampling time", None, "no NVML module")
        return
    seconds = args.timing_seconds
    mine = time_aitop(run.module, seconds)
    if mine is None:
        log.check("NVML sampling time", False, "aitop's sampler read no GPU")
        return
    timings = [mine]
    nvitop, why = run.backend.nvitop()
    if nvitop is None:
        log.check("nvitop timing", None, why)
    else:
        try:
            timings += time_nvitop(nvitop, seconds)
        except Exception as exc:
            log.detail(f"--- nvitop timing\n{traceback.format_exc()}")
            log.check("nvitop timing", False, f"nvitop failed: {type(exc).__name__}: {exc}")
    log.say(f"  per GPU per tick, {when}, {seconds:g} s each:")
    for t in timings:
        inside = f", inside NVML {t.nvml_median_ms:.2f} ms" if t.nvml_median_ms is not None else ""
        log.say(
            f"    {t.tool:<38} median {t.median_ms:7.3f} ms  p95 {t.p95_ms:7.3f} ms"
            f"{inside}  ({t.ticks} ticks)"
        )
    if len(timings) > 1:
        ratios = ", ".join(f"{mine.median_ms / t.median_ms:.2f}x {t.tool}" for t in timings[1:])
        log.say(f"    aitop / nvitop (below 1x: aitop is faster): {ratios}")
    run.log.figures["timing"] = {"when": when, "timings": [dataclasses.asdict(t) for t in timings]}
    note = " (against the fake NVML: says nothing of a real driver)" if run.simulated else ""
    log.check(
        f"aitop NVML sampling <= {SAMPLING_AIM_MS:g} ms per GPU per tick",
        mine.median_ms <= SAMPLING_AIM_MS,
        f"median {mine.median_ms:.3f} ms, p95 {mine.p95_ms:.3f} ms{note}",
        simulated=run.simulated,
    )


# --- the picture -------------------------------------------------------------------------------


def replay_fleet(run: Run) -> Any:
    """A fleet snapshot of what was read: the GPU report under load (or idle), this machine's
    host figures, and the worker, a host process, as the one row (there is no Docker here)."""
    from tui.fleet.gpu.types import container_gpu_usage
    from tui.fleet.models import (
        ContainerInfo,
        ContainerSnapshot,
        ContainerStats,
        EngineStatus,
        FleetSnapshot,
        HostSnapshot,
    )

    report = run.reports.get("load") or run.reports["idle"]
    figures = run.log.figures.get("worker", {})
    pid, index = figures.get("nvml_pid") or figures.get("pid"), figures.get("gpu")
    containers = []
    if pid is not None and "load" in run.reports:
        row_id = f"{pid:064x}"
        processes = tuple(
            dataclasses.replace(p, container_id=row_id, origin=ORIGIN_CONTAINER)
            if p.pid == pid
            else p
            for p in report.processes
        )
        report = dataclasses.replace(report, processes=processes)
        info = ContainerInfo(
            id=row_id,
            name=f"{'sim' if run.simulated else 'torch'}-worker-{pid}",
            image="(host process, no container)",
            model=f"PyTorch bf16 matmul, {run.args.gib} GiB"
            + (" (SIMULATED)" if run.simulated else ""),
            is_model=True,
            state="running",
            started_at=report.taken_at - run.args.load_seconds,
            pid=pid,
            gpus_assigned=(str(index),),
            labels={"aitop.gpu_check": "a host process shown as a row"},
        )
        stats = ContainerStats(
            cpu_percent=run.worker_cpu.get("cpu_percent"),
            mem_bytes=int(run.worker_cpu["rss"]) if "rss" in run.worker_cpu else None,
            source="psutil",
        )
        usage = container_gpu_usage(report)
        containers.append(ContainerSnapshot(info=info, stats=stats, gpus=usage.get(row_id, ())))
    return FleetSnapshot(
        engine=EngineStatus(
            # unix:// : the app takes the GPUs as this machine's (tui.app.is_local_url).
            url="unix:// (no engine here: a gpu_check replay)",
            reachable=True,
            version="-",
            stats_source="psutil",
        ),
        host=run.host if isinstance(run.host, HostSnapshot) else HostSnapshot(),
        containers=tuple(containers),
        taken_at=report.taken_at,
        sampled=True,
        gpu=report,
    )


async def _render(snapshot: Any, out: Path, gpus: int) -> list[Path]:
    from screenshots.render import row_of, select
    from tests.fleet_fixtures import ReplayMonitor
    from tui.app import AitopApp
    from tui.config import Config

    written = []
    height = max(40, 24 + 5 * gpus)
    shots = (
        ("gpu-check-fleet", (200, height), ()),
        # Scrolled sideways so that the row's GPU columns show whole (as screenshots/render.py).
        ("gpu-check-gpu-pane", (150, max(23, 10 + 5 * gpus)), ("right",) * 40),
    )
    for name, size, keys in shots:
        app = AitopApp([ReplayMonitor(snapshot)], config=Config())
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            if snapshot.containers:
                await select(app, pilot, row_of(snapshot, snapshot.containers[0].info.name))
            for key in keys:
                await pilot.press(key)
            await pilot.pause()
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
        written.append(out / f"{name}.svg")
    return written


def step_render(run: Run) -> None:
    log = run.log
    if "idle" not in run.reports or not run.reports["idle"].ok:
        log.check("SVG of the GPU pane and the fleet row", None, "no GPU reading to show")
        return
    try:
        from tui.fleet.recording import dump, load
    except ImportError as exc:
        log.check("SVG of the GPU pane and the fleet row", None, f"cannot render: {exc}")
        return
    fleet = replay_fleet(run)
    # The app is fed the recording, not the objects: what the SVG shows is what a replay shows.
    path = log.out / "fleet.json"
    path.write_text(json.dumps(dump(fleet), indent=1) + "\n", encoding="utf-8")
    replayed = load(json.loads(path.read_text(encoding="utf-8")))
    gpu = replayed.gpu
    if gpu is None:
        log.check(
            "SVG of the GPU pane and the fleet row", False, "the replayed fleet lost its GPUs"
        )
        return
    try:
        written = asyncio.run(_render(replayed, log.out, len(gpu.devices)))
    except ImportError as exc:
        log.check("SVG of the GPU pane and the fleet row", None, f"cannot render: {exc}")
        return
    svg = written[0].read_text(encoding="utf-8")
    first = gpu.devices[0]
    shown = (first.name or "").replace(" ", "&#160;") in svg
    if replayed.containers:
        shown = shown and replayed.containers[0].info.name in svg
    log.check(
        "SVG of the GPU pane and the fleet row",
        shown,
        ", ".join(p.name for p in written)
        + ("" if shown else ": the GPU's name or the worker's row is missing from the picture"),
        simulated=run.simulated,
    )


def write_recording(run: Run) -> None:
    if run.recorder is None:
        return
    fixture = {
        "description": (
            "Recorded by bench/gpu_check.py"
            + (
                f" in a DRY RUN against the fake NVML ({run.backend.fixture}): not a real GPU"
                if isinstance(run.backend, DryBackend)
                else " on a real machine"
            )
            + f", {time.strftime('%Y-%m-%d %H:%M:%S')}. Each key is one reading in the format "
            "of tests/fixtures/nvml (load one with fake_nvml.load_reading('file.json#load')); "
            "the PyTorch worker's PID is the placeholder $worker; nvml_calls lists the last "
            "tick's calls as they were made."
        ),
        **run.readings,
    }
    path = run.log.out / "nvml-recording.json"
    path.write_text(json.dumps(fixture, indent=2) + "\n", encoding="utf-8")
    with (run.log.out / "nvml-calls.jsonl").open("w", encoding="utf-8") as fh:
        for call in run.recorder.calls:
            fh.write(json.dumps(call) + "\n")
    calls = len(run.recorder.calls)
    errors = sum(1 for c in run.recorder.calls if "error" in c)
    run.log.say(
        f"  recorded {calls} NVML calls ({errors} answered with an error) in "
        f"{len(run.readings)} readings ({', '.join(run.readings)}): {path}"
    )


def versions(run: Run) -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    import tui

    found = {
        "python": platform.python_version(),
        "aitop": tui.__version__,
        "textual": version("textual"),
        "nvidia-ml-py": version("nvidia-ml-py"),
        "torch": version("torch"),
        "nvitop": version("nvitop"),
        "nvidia-smi": shutil.which("nvidia-smi") or "not on PATH",
    }
    if run.simulated:
        found["nvidia-smi"] += " (dry run: simulated from the fake)"
    return found


def summary(run: Run) -> None:
    log = run.log
    log.say("")
    log.say("SUMMARY" + (" (DRY RUN: fake NVML, SIMULATED GPU use)" if run.simulated else ""))
    for check in log.checks:
        log.say("  " + _check_line(check))
    counts = {s: sum(1 for c in log.checks if c.status == s) for s in ("PASS", "FAIL", "SKIP")}
    elapsed = time.monotonic() - run.budget.start
    log.say(
        f"  {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
        f"in {elapsed:.0f}s; results in {log.out}"
    )


STEPS_AFTER_READING = (
    "aitop vs nvidia-smi",
    "PyTorch worker",
    "NVML sampling time",
    "SVG of the GPU pane and the fleet row",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="no GPU: the tests' fake NVML")
    parser.add_argument(
        "--fixture", default="h100_a100.json", help="dry run: the fake's reading (file.json#key)"
    )
    parser.add_argument("--out", help="where results go (default bench/results/gpu-check-*)")
    parser.add_argument("--seconds", type=float, default=240.0, help="the whole run's budget")
    parser.add_argument("--load-seconds", type=float, help="matmul time (default 20; dry run 4)")
    parser.add_argument("--timing-seconds", type=float, help="per tool (default 3; dry run 1)")
    parser.add_argument("--gib", type=int, default=8, help="what the worker allocates")
    parser.add_argument("--no-worker", action="store_true", help="skip the PyTorch process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=240.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.load_seconds is None:
        args.load_seconds = 4.0 if args.dry_run else 20.0
    if args.timing_seconds is None:
        args.timing_seconds = 1.0 if args.dry_run else 3.0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or ROOT / "bench" / "results" / f"gpu-check-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out)
    budget = Budget(args.seconds)
    backend: Backend = DryBackend(args.fixture) if args.dry_run else RealBackend()
    run = Run(args=args, log=log, budget=budget, backend=backend)

    def overrun() -> None:
        # A step stuck inside NVML cannot be interrupted: end the run with what it has.
        log.say(f"gave up: the run went {args.seconds + 30:.0f}s past its start")
        finish(run)
        os._exit(1)

    watchdog = threading.Timer(args.seconds + 30, overrun)
    watchdog.daemon = True
    watchdog.start()
    head = "gpu_check DRY RUN: the tests' fake NVML, no GPU" if args.dry_run else "gpu_check"
    log.say(f"{head} ({time.strftime('%Y-%m-%d %H:%M:%S')}, budget {args.seconds:.0f}s)")
    found = versions(run)
    log.figures["versions"] = found
    log.say("  " + ", ".join(f"{k} {v}" for k, v in found.items()))
    try:
        run_step(log, "aitop reads the GPUs", budget.cap(60), lambda: step_read(run))
        if run.reports.get("idle") is not None and run.reports["idle"].ok:
            run_step(
                log, "aitop vs nvidia-smi (idle)", budget.cap(40), lambda: step_compare(run, "idle")
            )
            loaded = False
            if args.no_worker:
                log.check("PyTorch worker", None, "--no-worker")
            else:
                limit = budget.cap(90 + 60 + args.load_seconds + 10)
                loaded = bool(run_step(log, "PyTorch worker", limit, lambda: step_worker(run)))
            if loaded:
                run_step(
                    log,
                    "aitop vs nvidia-smi (under load)",
                    budget.cap(40),
                    lambda: step_compare(run, "under load"),
                )
            when = "the worker running" if loaded else "idle"
            run_step(log, "NVML sampling time", budget.cap(60), lambda: step_timing(run, when))
            if loaded:
                run_step(log, "worker release", budget.cap(60), lambda: step_release(run))
            run_step(
                log,
                "SVG of the GPU pane and the fleet row",
                budget.cap(90),
                lambda: step_render(run),
            )
        else:
            for name in STEPS_AFTER_READING:
                log.check(name, None, "aitop has no GPU reading")
    finally:
        watchdog.cancel()
        finish(run)
    return 1 if log.failed else 0


def finish(run: Run) -> None:
    """Stop a worker still running, write the recording and the results, print the summary."""
    if run.worker is not None:
        with contextlib.suppress(Exception):
            run.worker.stop(timeout=10)
        run.worker = None
    with contextlib.suppress(Exception):
        write_recording(run)
    summary(run)
    results = {
        "checks": [dataclasses.asdict(c) for c in run.log.checks],
        "dry_run": run.simulated,
        **run.log.figures,
    }
    (run.log.out / "gpu-check.json").write_text(json.dumps(results, indent=1) + "\n")
    (run.log.out / "gpu-check.txt").write_text("\n".join(run.log.lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
