"""Plain data of the GPU layer: the snapshots `tui.fleet.gpu` publishes, and pure functions.

Nothing here does I/O or imports NVML, so widgets may import it. A value NVML cannot give is
None everywhere: it reads "N/A" and serialises as null, never as 0. A report is this
machine's (NVML, `gpu.sampler`) or another's (`host` set: nvidia-smi over ssh, `gpu.remote`);
`GpuSource` is what a fleet monitor reads either through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tui.fleet.units import format_bytes

NA = "N/A"
"""How a missing value reads."""
MEM_WARNING_PERCENT = 80.0
"""By default, memory use above this share of a GPU's memory is shown as a warning."""
MEM_CRITICAL_PERCENT = 90.0
"""By default, memory use above this share is critical and raises a pressure warning."""
TEMP_WARNING_MARGIN_C = 5
"""By default, a temperature this close to the driver's slowdown threshold is a warning."""

STATE_OK = "ok"
STATE_NO_LIBRARY = "no-library"
STATE_NO_DRIVER = "no-driver"
STATE_NO_GPU = "no-gpu"
STATE_PERMISSION_DENIED = "permission-denied"
STATE_ERROR = "error"
STATE_NO_SMI = "no-nvidia-smi"
"""Another machine: no `nvidia-smi` on its PATH (no NVIDIA driver installed there)."""
STATE_TIMEOUT = "timeout"
"""Another machine: its reading did not come back within the deadline."""
STATE_UNREACHABLE = "unreachable"
"""Another machine: ssh could not run the reading (the connection is down, or its sshd
refused one more session)."""

STATE_LABELS: Mapping[str, str] = {
    STATE_OK: "GPUs",
    STATE_NO_LIBRARY: "no NVML library",
    STATE_NO_DRIVER: "no NVIDIA driver",
    STATE_NO_GPU: "no GPU",
    STATE_PERMISSION_DENIED: "permission denied",
    STATE_ERROR: "NVML error",
    STATE_NO_SMI: "no nvidia-smi",
    STATE_TIMEOUT: "no answer in time",
    STATE_UNREACHABLE: "ssh failed",
}
"""A short label for each report state, for a status line."""

ORIGIN_CONTAINER = "container"
ORIGIN_HOST = "host"
ORIGIN_UNKNOWN = "unknown"


@dataclass(frozen=True)
class GpuProcess:
    """One process NVML lists on one GPU, with the container it belongs to."""

    pid: int
    """Host PID, as NVML reports it."""
    container_id: str | None
    """Full id of the container holding the process; None for a host or unknown process."""
    mem_bytes: int | None
    """GPU memory the process holds; None where NVML cannot tell (MIG mode, WDDM)."""
    util_percent: float | None
    """Its SM utilisation over the last interval; None where the driver does not report it."""
    gpu_index: int
    command: str = ""
    """The command line from /proc, "" when it cannot be read."""
    origin: str = ORIGIN_UNKNOWN
    """Who owns it: "container", "host", or "unknown" (no attribution, /proc unreadable)."""


@dataclass(frozen=True)
class GpuDevice:
    """One GPU at one instant. Every figure is None when NVML cannot give it."""

    index: int
    uuid: str | None = None
    name: str | None = None
    util_percent: float | None = None
    """SM utilisation over the driver's last sample period."""
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    temp_c: int | None = None
    temp_slowdown_c: int | None = None
    """The temperature at which the driver starts to slow the GPU down."""
    power_w: float | None = None
    power_limit_w: float | None = None
    """The enforced power limit."""
    fan_percent: int | None = None
    clock_sm_mhz: int | None = None
    clock_mem_mhz: int | None = None
    clock_sm_max_mhz: int | None = None
    """The SM clock's maximum (nvidia-smi's `clocks.max.sm`; NVML readings leave it None)."""
    mig_enabled: bool = False
    lost: bool = False
    """True when the GPU has fallen off the bus (NVML: GPU is lost)."""
    processes_known: bool = True
    """False when NVML could not list the device's processes: the list may be incomplete."""
    error: str = ""
    """What failed on this device in words, "" when nothing did (unsupported values are N/A)."""
    util_history: tuple[float, ...] = ()
    """Utilisation in percent, oldest first."""
    mem_history: tuple[float, ...] = ()
    """Memory use in percent of total, oldest first."""
    nvml_seconds: float = 0.0
    """Time spent inside NVML for this device in this tick."""

    @property
    def label(self) -> str:
        """`GPU 0`, the name users know a device by."""
        return f"GPU {self.index}"

    @property
    def mem_percent(self) -> float | None:
        """Memory use in percent of total; None when either figure is unknown."""
        if self.mem_used_bytes is None or not self.mem_total_bytes:
            return None
        return 100.0 * self.mem_used_bytes / self.mem_total_bytes

    @property
    def mem_level(self) -> str:
        """Memory level at the default thresholds (`Thresholds.mem_level` for others)."""
        return DEFAULT_THRESHOLDS.mem_level(self)

    @property
    def temp_level(self) -> str:
        """Temperature level at the default thresholds (`Thresholds.temp_level` for others)."""
        return DEFAULT_THRESHOLDS.temp_level(self)

    @property
    def power_level(self) -> str:
        """Power level: "warning" when the draw reaches the enforced limit (power-capped)."""
        if self.power_w is None or not self.power_limit_w:
            return ""
        return "warning" if self.power_w >= self.power_limit_w else ""


@dataclass(frozen=True)
class Thresholds:
    """When a GPU's figures are drawn as a warning: a value handed to whoever draws them (the
    configuration file's `[thresholds]` make one; the defaults are the constants above)."""

    mem_warning_percent: float = MEM_WARNING_PERCENT
    """Memory use above this share of a GPU's memory is a warning."""
    mem_critical_percent: float = MEM_CRITICAL_PERCENT
    """Memory use above this share is critical and raises a pressure warning."""
    temp_warning_margin_c: int = TEMP_WARNING_MARGIN_C
    """A temperature this close to the driver's slowdown threshold is a warning."""

    def mem_level(self, device: GpuDevice) -> str:
        """ "critical" above the critical share, "warning" above the warning one, else ""."""
        pct = device.mem_percent
        if pct is None:
            return ""
        if pct > self.mem_critical_percent:
            return "critical"
        return "warning" if pct > self.mem_warning_percent else ""

    def temp_level(self, device: GpuDevice) -> str:
        """ "critical" at or above the slowdown threshold, "warning" within the margin of it.

        Without a threshold from the driver there is no level: it is not guessed.
        """
        if device.temp_c is None or device.temp_slowdown_c is None:
            return ""
        if device.temp_c >= device.temp_slowdown_c:
            return "critical"
        near = device.temp_c >= device.temp_slowdown_c - self.temp_warning_margin_c
        return "warning" if near else ""


DEFAULT_THRESHOLDS = Thresholds()
"""The built-in warning levels."""


@dataclass(frozen=True)
class GpuReport:
    """Everything one NVML tick found: a state, the devices and their processes."""

    state: str
    """One of "ok", "no-library", "no-driver", "no-gpu", "permission-denied", "error"; for
    another machine's GPUs also "no-nvidia-smi", "timeout", "unreachable"."""
    message: str = ""
    """What the state means and what to do, in words for the user; "" when all is well."""
    devices: tuple[GpuDevice, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    attribution_possible: bool = True
    """False when NVML's host PIDs cannot be mapped to containers from where aitop runs."""
    attribution_reason: str = ""
    """Why attribution is impossible, "" when it is possible."""
    driver_version: str | None = None
    nvml_seconds: float = 0.0
    """Time spent inside NVML in this tick, all devices together."""
    taken_at: float = 0.0
    """Wall-clock time of the reading, seconds since the epoch."""
    host: str = ""
    """Whose GPUs: "" for this machine's (NVML here), else the other machine's name (read
    with nvidia-smi over ssh; `nvml_seconds` is then that whole round trip)."""
    others: tuple[GpuReport, ...] = field(default=(), compare=False)
    """Other machines' reports shown beside this one: set only on the combined picture of
    several engines (`tui.fleets`), never by a sampler, so a recording never holds any."""

    @property
    def ok(self) -> bool:
        """True when NVML answered and listed the devices."""
        return self.state == STATE_OK

    @property
    def label(self) -> str:
        """A short label of the state ("no NVIDIA driver")."""
        return STATE_LABELS.get(self.state, self.state)

    def device(self, index: int) -> GpuDevice | None:
        """The device with this NVML index, if listed."""
        return next((d for d in self.devices if d.index == index), None)

    def processes_on(self, index: int) -> tuple[GpuProcess, ...]:
        """The processes NVML lists on GPU `index`."""
        return tuple(p for p in self.processes if p.gpu_index == index)


class GpuSource(Protocol):
    """What a fleet monitor reads GPUs through: this machine's NVML (`gpu.sampler.GpuSampler`)
    or another machine's nvidia-smi over ssh (`gpu.remote.RemoteGpuSampler`)."""

    def warm_up(self) -> None:
        """Start the first reading off the caller's thread, so the first figures need not
        wait for it."""
        ...

    def sample_unless_busy(self) -> GpuReport | None:
        """The latest report without waiting on a reading another thread is taking (None
        before the first)."""
        ...

    def close(self) -> None:
        """Release what the source holds (NVML, a thread); a monitor calls it as it stops."""
        ...


@dataclass(frozen=True)
class ContainerGpu:
    """What one container holds on one GPU."""

    index: int
    uuid: str | None
    mem_bytes: int | None
    """Sum over its processes; None when any of them is unknown (never a partial sum)."""
    util_percent: float | None
    """Sum of its processes' SM utilisation; None when any of them is unknown."""


def container_gpu_usage(report: GpuReport) -> dict[str, tuple[ContainerGpu, ...]]:
    """What each container holds on each GPU, from the processes of one report.

    Host and unattributed processes are left out. Memory and utilisation are sums over the
    container's processes on that GPU, or None as soon as one of them is unknown.
    """
    sums: dict[str, dict[int, tuple[int | None, float | None]]] = {}
    for proc in report.processes:
        if proc.container_id is None:
            continue
        per_gpu = sums.setdefault(proc.container_id, {})
        if proc.gpu_index not in per_gpu:
            per_gpu[proc.gpu_index] = (proc.mem_bytes, proc.util_percent)
            continue
        mem, util = per_gpu[proc.gpu_index]
        per_gpu[proc.gpu_index] = (
            None if mem is None or proc.mem_bytes is None else mem + proc.mem_bytes,
            None if util is None or proc.util_percent is None else util + proc.util_percent,
        )
    usage: dict[str, tuple[ContainerGpu, ...]] = {}
    for cid, per_gpu in sums.items():
        entries = []
        for index in sorted(per_gpu):
            mem, util = per_gpu[index]
            device = report.device(index)
            entries.append(
                ContainerGpu(
                    index=index,
                    uuid=device.uuid if device is not None else None,
                    mem_bytes=mem,
                    util_percent=min(util, 100.0) if util is not None else None,
                )
            )
        usage[cid] = tuple(entries)
    return usage


def _env(attrs: Mapping[str, Any], key: str) -> str | None:
    for item in (attrs.get("Config") or {}).get("Env") or ():
        name, sep, value = str(item).partition("=")
        if sep and name == key:
            return value
    return None


def _split_ids(values: Iterable[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            # CDI names (Docker 25+ with CDI): nvidia.com/gpu=0, nvidia.com/gpu=all.
            if "=" in part and "/" in part.split("=", 1)[0]:
                part = part.split("=", 1)[1]
            if part and part not in ids:
                ids.append(part)
    return ids


def _is_gpu_request(request: Mapping[str, Any]) -> bool:
    driver = str(request.get("Driver") or "")
    if driver == "nvidia":
        return True
    if driver == "cdi":
        return any(str(d).startswith("nvidia.com/gpu") for d in request.get("DeviceIDs") or ())
    caps = request.get("Capabilities") or ()
    return any("gpu" in (group or ()) for group in caps)


def gpus_assigned(inspect_attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """The GPUs a container was given, from the engine's inspect data.

    `("all",)` for every GPU, `("0", "1")` for host indices, UUIDs (`"GPU-..."`) or MIG ids as
    they were given, `()` for none. Sources, in the engine's order of precedence: GPU device
    requests (`--gpus`: `Count` -1 is all, `Count` n is GPUs 0..n-1 as Docker picks them,
    `DeviceIDs` as listed, CDI names `nvidia.com/gpu=<id>`), then, only under the nvidia
    runtime, `NVIDIA_VISIBLE_DEVICES` ("all", a list, "none"/"void" for none). Without the
    nvidia runtime that variable does nothing (CUDA images set it to "all" for everyone).
    """
    host = inspect_attrs.get("HostConfig") or {}
    requested: list[str] = []
    gpu_request = False
    for request in host.get("DeviceRequests") or ():
        if not _is_gpu_request(request):
            continue
        gpu_request = True
        ids = _split_ids(request.get("DeviceIDs") or ())
        count = int(request.get("Count") or 0)
        if ids:
            requested.extend(i for i in ids if i not in requested)
        elif count < 0:
            return ("all",)
        elif count > 0:
            requested.extend(str(i) for i in range(count) if str(i) not in requested)
    if gpu_request:
        return ("all",) if "all" in requested else tuple(requested)
    if str(host.get("Runtime") or "").startswith("nvidia"):
        visible = _env(inspect_attrs, "NVIDIA_VISIBLE_DEVICES")
        if visible is None or visible.strip() in ("", "none", "void"):
            return ()
        ids = _split_ids([visible])
        return ("all",) if "all" in ids else tuple(ids)
    return ()


def format_assigned(assigned: tuple[str, ...]) -> str:
    """`("0", "1")` -> "0,1"; `("all",)` -> "all"; `()` -> "none"."""
    return ",".join(assigned) if assigned else "none"


def format_gpu_usage(usage: Iterable[ContainerGpu]) -> str:
    """`index:memory` per GPU: "0:18.2G 1:18.1G"; an unknown amount reads "0:N/A"."""
    return " ".join(f"{u.index}:{format_bytes(u.mem_bytes)}" for u in usage)


def pressure_warnings(
    report: GpuReport,
    container_names: Mapping[str, str],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[str]:
    """One line per GPU whose memory use is above the critical share of `thresholds`.

    Each names the GPU and the biggest holder of its memory: a container (by name from
    `container_names`, else its short id) or a host process; or says why it cannot tell.
    The other machines' GPUs (`report.others`) follow, each line led by its host.
    """
    lines: list[str] = []
    for device in report.devices:
        pct = device.mem_percent
        if pct is None or pct <= thresholds.mem_critical_percent:
            continue
        head = (
            f"{device.label} ({device.name or NA}) memory at {pct:.0f}% "
            f"({format_bytes(device.mem_used_bytes)} of {format_bytes(device.mem_total_bytes)})"
        )
        lines.append(f"{head}: {_biggest_holder(report, device, container_names)}")
    for other in report.others:
        lines += [
            f"{other.host}: {w}" for w in pressure_warnings(other, container_names, thresholds)
        ]
    return lines


def _biggest_holder(report: GpuReport, device: GpuDevice, names: Mapping[str, str]) -> str:
    procs = report.processes_on(device.index)
    if not device.processes_known:
        return "its processes cannot be listed (see the GPU's error)"
    if not procs:
        return "no process is listed on it"
    if not report.attribution_possible:
        return "its holders cannot be attributed from here (aitop lacks the host's PIDs)"
    if any(p.mem_bytes is None for p in procs):
        why = "MIG mode" if device.mig_enabled else "the driver does not report it"
        return f"per-process memory is N/A ({why})"
    holders: dict[str, int] = {}
    for proc in procs:
        if proc.container_id is not None:
            who = f"container {names.get(proc.container_id) or proc.container_id[:12]}"
        else:
            kind = "host" if proc.origin == ORIGIN_HOST else "unattributed"
            command = proc.command.split(" ", 1)[0].rsplit("/", 1)[-1]
            who = f"{kind} process {proc.pid}" + (f" ({command})" if command else "")
        holders[who] = holders.get(who, 0) + (proc.mem_bytes or 0)
    who, mem = max(holders.items(), key=lambda kv: kv[1])
    return f"most is held by {who}: {format_bytes(mem)}"


def report_to_json(report: GpuReport) -> list[dict[str, Any]]:
    """The per-host `"gpus"` list of `aitop snapshot --json`; unknown values are null."""
    return [
        {
            "index": d.index,
            "uuid": d.uuid,
            "name": d.name,
            "util_percent": d.util_percent,
            "mem_used_bytes": d.mem_used_bytes,
            "mem_total_bytes": d.mem_total_bytes,
            "temp_c": d.temp_c,
            "power_w": d.power_w,
            "power_limit_w": d.power_limit_w,
            "processes": [
                {"pid": p.pid, "container_id": p.container_id, "mem_bytes": p.mem_bytes}
                for p in report.processes_on(d.index)
            ],
        }
        for d in report.devices
    ]


def report_status_json(report: GpuReport) -> dict[str, Any]:
    """The state of the GPU layer for JSON output: state, message and attribution."""
    return {
        "state": report.state,
        "message": report.message,
        "driver_version": report.driver_version,
        "attribution_possible": report.attribution_possible,
        "attribution_reason": report.attribution_reason,
        "lost": [d.index for d in report.devices if d.lost],
        "nvml_seconds": round(report.nvml_seconds, 6),
    }


def container_gpus_json(usage: Iterable[ContainerGpu]) -> list[dict[str, Any]]:
    """A container's `"gpus"` list in JSON: index, uuid, mem_bytes, util_percent."""
    return [
        {"index": u.index, "uuid": u.uuid, "mem_bytes": u.mem_bytes, "util_percent": u.util_percent}
        for u in usage
    ]
