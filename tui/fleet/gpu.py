"""GPUs through NVML (the only importer of `pynvml`): device gauges and who uses which GPU.

`GpuSampler.sample()` takes one batched reading of every device and returns an immutable
`GpuReport`. Everything that can go wrong is a labelled state of that report, never an
exception or a line on stderr: no Python bindings, no NVML library, no driver, no GPU, no
permission, a GPU fallen off the bus, MIG mode, and any single NVML call failing.

Rules of the data:

- Every NVML call goes through one wrapper (`_Nvml.query`) that turns an NVML error into
  None. None means "N/A" everywhere: it is shown as N/A and serialised as null, never as 0.
- NVML reports host PIDs. A GPU process belongs to the container whose id appears in its
  `/proc/<pid>/cgroup`; a process whose cgroup names no container is a host process.
- Per-process memory and utilisation are not available on MIG-enabled GPUs: they are None.
- Attribution needs our `/proc` to show the host's processes. The sound test is the PID
  namespace: the kernel's initial PID namespace always has inode 0xEFFFFFFC (4026531836,
  PROC_PID_INIT_INO), so `/proc/self/ns/pid` reading `pid:[4026531836]` means aitop sees host
  PIDs (on the host, or in a container run with `--pid=host`). Any other namespace means
  NVML's PIDs cannot be mapped from here, and the report says so instead of guessing. Where
  the namespace link cannot be read, attribution is refused when none of NVML's PIDs exists
  in our `/proc`.

The snapshots and the pure functions on them (attribution per container, assigned GPUs,
pressure warnings, JSON) live in `tui.fleet.gpu_types`, which widgets may import; they are
re-exported here.

Sampling cost: `sample()` is meant to run on a thread of its own (see `GpuPoller`), at most
once per `min_interval` seconds; the time spent inside NVML is measured per tick and per GPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tui.fleet.gpu_types import (
    MEM_CRITICAL_PERCENT,
    MEM_WARNING_PERCENT,
    NA,
    ORIGIN_CONTAINER,
    ORIGIN_HOST,
    ORIGIN_UNKNOWN,
    STATE_ERROR,
    STATE_LABELS,
    STATE_NO_DRIVER,
    STATE_NO_GPU,
    STATE_NO_LIBRARY,
    STATE_OK,
    STATE_PERMISSION_DENIED,
    TEMP_WARNING_MARGIN_C,
    ContainerGpu,
    GpuDevice,
    GpuProcess,
    GpuReport,
    assigned_indices,
    container_gpu_usage,
    container_gpus_json,
    format_assigned,
    format_bytes,
    format_gpu_usage,
    gpus_assigned,
    pressure_warnings,
    report_status_json,
    report_to_json,
)

__all__ = [
    "HISTORY",
    "INIT_PID_NAMESPACE",
    "INIT_RETRY",
    "MEM_CRITICAL_PERCENT",
    "MEM_WARNING_PERCENT",
    "MIN_INTERVAL",
    "NA",
    "ORIGIN_CONTAINER",
    "ORIGIN_HOST",
    "ORIGIN_UNKNOWN",
    "STATE_ERROR",
    "STATE_LABELS",
    "STATE_NO_DRIVER",
    "STATE_NO_GPU",
    "STATE_NO_LIBRARY",
    "STATE_OK",
    "STATE_PERMISSION_DENIED",
    "TEMP_WARNING_MARGIN_C",
    "ContainerGpu",
    "GpuDevice",
    "GpuPoller",
    "GpuProcess",
    "GpuReport",
    "GpuSampler",
    "assigned_indices",
    "container_gpu_usage",
    "container_gpus_json",
    "container_id_from_cgroup",
    "format_assigned",
    "format_bytes",
    "format_gpu_usage",
    "gpus_assigned",
    "load_pynvml",
    "pressure_warnings",
    "report_status_json",
    "report_to_json",
]


HISTORY = 120
"""Samples kept per GPU for the utilisation and memory sparklines."""
MIN_INTERVAL = 1.0
"""Default shortest gap between two NVML readings, in seconds."""
INIT_RETRY = 10.0
"""Seconds between attempts to initialise NVML after it failed (a driver may be loaded later)."""
INIT_PID_NAMESPACE = "pid:[4026531836]"
"""`readlink /proc/self/ns/pid` in the kernel's initial PID namespace (PROC_PID_INIT_INO)."""

# NVML's return codes (nvml.h); read from the module when it has them.
_ERROR_CODES = {
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_ERROR_RESET_REQUIRED": 16,
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
}
# Errors that only mean "this value does not exist here": N/A, not a problem to report.
_QUIET_ERRORS = frozenset({"NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND"})

# A process list that cannot be read is never a quiet N/A: "no processes" would be a lie.
_PROCESS_LISTS = frozenset(
    {
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
        "nvmlDeviceGetComputeRunningProcesses_v2",
        "nvmlDeviceGetGraphicsRunningProcesses_v2",
    }
)

# What each NVML call reads, for per-device error texts.
_CALL_LABELS: Mapping[str, str] = {
    "nvmlDeviceGetHandleByIndex": "device handle",
    "nvmlDeviceGetUUID": "uuid",
    "nvmlDeviceGetName": "name",
    "nvmlDeviceGetMemoryInfo": "memory",
    "nvmlDeviceGetUtilizationRates": "utilisation",
    "nvmlDeviceGetTemperature": "temperature",
    "nvmlDeviceGetTemperatureV": "temperature",
    "nvmlDeviceGetTemperatureThreshold": "slowdown threshold",
    "nvmlDeviceGetPowerUsage": "power",
    "nvmlDeviceGetEnforcedPowerLimit": "power limit",
    "nvmlDeviceGetFanSpeed": "fan",
    "nvmlDeviceGetClockInfo": "clocks",
    "nvmlDeviceGetMigMode": "MIG mode",
    "nvmlDeviceGetComputeRunningProcesses": "compute processes",
    "nvmlDeviceGetGraphicsRunningProcesses": "graphics processes",
    "nvmlDeviceGetComputeRunningProcesses_v2": "compute processes",
    "nvmlDeviceGetGraphicsRunningProcesses_v2": "graphics processes",
    "nvmlDeviceGetProcessUtilization": "process utilisation",
}

# --- the NVML boundary -------------------------------------------------------------------------


def load_pynvml() -> Any | None:
    """The `pynvml` module, or None when it is not installed. Import warnings are silenced.

    (The deprecated PyPI package named `pynvml` warns on import; `nvidia-ml-py` provides the
    same module name without the warning.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pynvml
        except ImportError:
            return None
    return pynvml


class _Nvml:
    """Every NVML call goes through `query`: an NVML error becomes None and is noted."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.error_type: type[BaseException] = getattr(module, "NVMLError", Exception)
        self.codes = {name: getattr(module, name, code) for name, code in _ERROR_CODES.items()}
        self._names = {code: name for name, code in self.codes.items()}
        self.errors: list[tuple[str, str, str]] = []
        """(call, error name or "", message) of each failed call since the last `take()`."""
        self.seconds = 0.0

    def const(self, name: str, default: int) -> int:
        """A constant of the bindings (`NVML_CLOCK_SM`), or NVML's documented value."""
        value = getattr(self.module, name, default)
        return value if isinstance(value, int) else default

    def query(self, call: str, *args: Any) -> Any:
        """`pynvml.<call>(*args)`, or None when it fails (the failure is noted in `errors`)."""
        fn = getattr(self.module, call, None)
        if fn is None:
            self.errors.append((call, "NVML_ERROR_FUNCTION_NOT_FOUND", "Function Not Found"))
            return None
        start = time.perf_counter()
        try:
            value = fn(*args)
        except self.error_type as exc:
            code = getattr(exc, "value", None)
            self.errors.append((call, self._names.get(code, ""), _error_text(exc)))
            return None
        except (UnicodeDecodeError, OSError) as exc:
            self.errors.append((call, "", _error_text(exc)))
            return None
        finally:
            self.seconds += time.perf_counter() - start
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value

    def query_first(self, *calls: tuple[str, tuple[Any, ...]]) -> Any:
        """The first of `calls` the driver has: a newer entry point, then older ones.

        Only a missing function moves on to the next call; the misses are forgotten once one
        answers. Any other failure ends the search with None, as `query` does.
        """
        mark = len(self.errors)
        for call, args in calls:
            before = len(self.errors)
            value = self.query(call, *args)
            if value is not None:
                del self.errors[mark:before]
                return value
            if not self.failed_with(self.errors[before:], "NVML_ERROR_FUNCTION_NOT_FOUND"):
                return None
        return None

    def take(self) -> list[tuple[str, str, str]]:
        """The errors noted since the last call, and forget them."""
        errors, self.errors = self.errors, []
        return errors

    def failed_with(self, errors: Iterable[tuple[str, str, str]], name: str) -> bool:
        """True when one of `errors` is the NVML error `name` (`NVML_ERROR_GPU_IS_LOST`)."""
        return any(err == name for _, err, _ in errors)


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


def _num(value: Any) -> int | None:
    """An NVML integer, or None for NVML's "not available" sentinels (all bits set)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    if number < 0 or number in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None
    return number


def _percent(value: Any) -> float | None:
    number = _num(value)
    return float(number) if number is not None and number <= 100 else None


# --- attribution -------------------------------------------------------------------------------

_CONTAINER_COMPONENT = re.compile(r"^(?:[\w.-]*?[-_:])?([0-9a-f]{64})(?:\.scope|\.slice)?$")


def container_id_from_cgroup(text: str) -> str | None:
    """The 64-hex container id in the text of a `/proc/<pid>/cgroup`, or None.

    Understands the cgroupfs layout (`/docker/<id>`), systemd scopes (`docker-<id>.scope`),
    podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`), containerd and CRI-O under
    Kubernetes (`/kubepods/.../<id>`, `cri-containerd-<id>.scope`, `crio-<id>.scope`).
    Monitor processes (`libpod-conmon-<id>`) are not containers. When containers nest
    (`/docker/<outer>/docker/<inner>`), the innermost id is returned.
    """
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        found = None
        for component in path.split("/"):
            if "conmon" in component:
                continue
            match = _CONTAINER_COMPONENT.match(component)
            if match:
                found = match.group(1)
        if found:
            return found
    return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


# --- the sampler -------------------------------------------------------------------------------


@dataclass
class _Static:
    """What does not change while a GPU stays on the bus; read once per device."""

    name: str | None
    slowdown: int | None


class GpuSampler:
    """Takes batched NVML readings and attributes GPU processes to containers.

    `nvml` is the `pynvml` module or an object that behaves like it (tests build one from
    recorded readings); None loads the real bindings lazily on the first `sample()`.
    `proc_root` is where `/proc` is read. `host_pid_namespace` overrides the detection of
    whether that `/proc` shows host PIDs (None: detect, see the module docstring).

    Not meant for the event loop: the first call initialises NVML (up to seconds on a large
    machine) and a failing GPU can make NVML calls slow. Thread-safe; calls closer together
    than `min_interval` (less 5 %, for timer jitter) return the previous report without
    touching NVML, so several callers together still read NVML at most once per interval.
    """

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        proc_root: str = "/proc",
        min_interval: float = MIN_INTERVAL,
        history: int = HISTORY,
        host_pid_namespace: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc_root = proc_root
        self.min_interval = min_interval
        self._module = nvml
        self._history = history
        self._host_pidns = host_pid_namespace
        self._clock = clock
        self._lock = threading.Lock()
        self._warming = False
        self._nvml: _Nvml | None = None
        self._initialised = False
        self._failure: tuple[str, str] | None = None
        self._failed_at = 0.0
        self._driver_version: str | None = None
        self._static: dict[str, _Static] = {}
        self._known: dict[int, tuple[str | None, str | None]] = {}
        self._util_history: dict[str, deque[float]] = {}
        self._mem_history: dict[str, deque[float]] = {}
        self._util_seen: dict[str, int] = {}
        self._last: GpuReport | None = None
        self._last_at = 0.0

    # --- public API -----------------------------------------------------------------------

    def warm_up(self) -> None:
        """Take the first reading on a thread of its own, once: loading NVML and opening the
        devices can take a second, and a monitor's first figures need not wait for it."""
        with self._lock:
            if self._warming or self._last is not None:
                return
            self._warming = True
        threading.Thread(target=self.sample, name="aitop-nvml-first", daemon=True).start()

    def sample_unless_busy(self) -> GpuReport | None:
        """`sample()`, or, while another thread is taking one, the last report (None before
        the first): a caller's own figures never wait on NVML."""
        if not self._lock.acquire(blocking=False):
            return self._last
        try:
            return self._reading()
        finally:
            self._lock.release()

    def sample(self) -> GpuReport:
        """One reading of every GPU; never raises, every failure is a state of the report."""
        with self._lock:
            return self._reading()

    def _reading(self) -> GpuReport:
        """`sample()` with the lock held."""
        now = self._clock()
        if self._last is not None and now - self._last_at < self.min_interval * 0.95:
            return self._last
        try:
            report = self._sample(now)
        except Exception as exc:  # a bug must not kill the sampling thread
            report = GpuReport(
                state=STATE_ERROR,
                message=f"reading the GPUs failed unexpectedly: {_error_text(exc)}",
                taken_at=time.time(),
            )
        self._last, self._last_at = report, now
        return report

    @property
    def latest(self) -> GpuReport | None:
        """The last report taken, without touching NVML."""
        return self._last

    def close(self) -> None:
        """Shut NVML down if this sampler initialised it."""
        with self._lock:
            if self._initialised and self._nvml is not None:
                self._nvml.query("nvmlShutdown")
            self._initialised = False

    # --- one tick -------------------------------------------------------------------------

    def _sample(self, now: float) -> GpuReport:
        taken_at = time.time()
        if self._nvml is not None:
            self._nvml.seconds = 0.0
        failure = self._ensure_init(now)
        nvml = self._nvml
        if failure is not None or nvml is None:
            state, message = failure or (STATE_ERROR, "NVML is not initialised")
            seconds = nvml.seconds if nvml is not None else 0.0
            return GpuReport(state=state, message=message, nvml_seconds=seconds, taken_at=taken_at)
        nvml.take()
        count = nvml.query("nvmlDeviceGetCount")
        errors = nvml.take()
        if count is None:
            state, message = self._count_failure(nvml, errors)
            return GpuReport(
                state=state,
                message=message,
                driver_version=self._driver_version,
                nvml_seconds=nvml.seconds,
                taken_at=taken_at,
            )
        if count == 0:
            return GpuReport(
                state=STATE_NO_GPU,
                message="the NVIDIA driver is loaded but lists no GPU",
                driver_version=self._driver_version,
                nvml_seconds=nvml.seconds,
                taken_at=taken_at,
            )
        devices: list[GpuDevice] = []
        raw_procs: list[tuple[int, int, int | None, float | None]] = []
        denied = 0
        for index in range(int(count)):
            device, procs, was_denied = self._device(nvml, index)
            devices.append(device)
            raw_procs.extend(procs)
            denied += was_denied
        if denied == len(devices):
            return GpuReport(
                state=STATE_PERMISSION_DENIED,
                message=(
                    f"NVML lists {len(devices)} GPU(s) but denies access to them: run aitop as "
                    "a user who may open /dev/nvidia* (the video group, or root)"
                ),
                driver_version=self._driver_version,
                nvml_seconds=nvml.seconds,
                taken_at=taken_at,
            )
        possible, reason = self._attribution_possible(pid for _, pid, _, _ in raw_procs)
        processes = tuple(self._process(raw, possible) for raw in raw_procs)
        return GpuReport(
            state=STATE_OK,
            devices=tuple(devices),
            processes=processes,
            attribution_possible=possible,
            attribution_reason=reason,
            driver_version=self._driver_version,
            nvml_seconds=nvml.seconds,
            taken_at=taken_at,
        )

    def _ensure_init(self, now: float) -> tuple[str, str] | None:
        """None once NVML is initialised, else the (state, message) of why it is not."""
        if self._initialised:
            return None
        if self._failure is not None:
            bindings_missing = self._nvml is None
            if bindings_missing or now - self._failed_at < INIT_RETRY:
                return self._failure
        if self._nvml is None:
            module = self._module if self._module is not None else load_pynvml()
            if module is None:
                self._failure = (
                    STATE_NO_LIBRARY,
                    "the Python NVML bindings are not installed (pip install nvidia-ml-py): "
                    "GPUs cannot be read",
                )
                self._failed_at = now
                return self._failure
            self._nvml = _Nvml(module)
        nvml = self._nvml
        nvml.take()
        nvml.query("nvmlInit")
        errors = nvml.take()
        if errors:
            self._failure = _init_failure(errors[0])
            self._failed_at = now
            return self._failure
        self._initialised = True
        self._failure = None
        self._driver_version = nvml.query("nvmlSystemGetDriverVersion")
        nvml.take()
        return None

    def _count_failure(self, nvml: _Nvml, errors: list[tuple[str, str, str]]) -> tuple[str, str]:
        if nvml.failed_with(errors, "NVML_ERROR_NO_PERMISSION"):
            return STATE_PERMISSION_DENIED, _PERMISSION_MESSAGE
        if nvml.failed_with(errors, "NVML_ERROR_DRIVER_NOT_LOADED"):
            self._initialised = False
            return STATE_NO_DRIVER, _NO_DRIVER_MESSAGE
        if nvml.failed_with(errors, "NVML_ERROR_UNINITIALIZED"):
            self._initialised = False
        text = errors[0][2] if errors else "unknown error"
        return STATE_ERROR, f"NVML cannot count the GPUs: {text}"

    def _device(
        self, nvml: _Nvml, index: int
    ) -> tuple[GpuDevice, list[tuple[int, int, int | None, float | None]], bool]:
        """One device's figures and its raw processes (index, pid, mem, util)."""
        start = nvml.seconds
        nvml.take()
        handle = nvml.query("nvmlDeviceGetHandleByIndex", index)
        if handle is None:
            errors = nvml.take()
            lost = nvml.failed_with(errors, "NVML_ERROR_GPU_IS_LOST")
            denied = nvml.failed_with(errors, "NVML_ERROR_NO_PERMISSION")
            uuid, name = self._known.get(index, (None, None))
            device = GpuDevice(
                index=index,
                uuid=uuid,
                name=name,
                lost=lost,
                error=_LOST_MESSAGE if lost else _device_error(errors),
                nvml_seconds=nvml.seconds - start,
                **self._histories(uuid, index),
            )
            return device, [], denied
        uuid = nvml.query("nvmlDeviceGetUUID", handle)
        if nvml.failed_with(nvml.errors, "NVML_ERROR_GPU_IS_LOST"):
            return self._lost(nvml, index, start), [], False
        key = uuid or f"index:{index}"
        static = self._static.get(key)
        if static is None:
            threshold = nvml.const("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1)
            static = _Static(
                name=nvml.query("nvmlDeviceGetName", handle),
                slowdown=_num(nvml.query("nvmlDeviceGetTemperatureThreshold", handle, threshold)),
            )
            if static.name is not None:
                self._static[key] = static
        self._known[index] = (uuid, static.name)
        memory = nvml.query("nvmlDeviceGetMemoryInfo", handle)
        rates = nvml.query("nvmlDeviceGetUtilizationRates", handle)
        sensor = nvml.const("NVML_TEMPERATURE_GPU", 0)
        # nvmlDeviceGetTemperature is deprecated (to go in CUDA 14): prefer the V form.
        temp = nvml.query_first(
            ("nvmlDeviceGetTemperatureV", (handle, sensor)),
            ("nvmlDeviceGetTemperature", (handle, sensor)),
        )
        power = _num(nvml.query("nvmlDeviceGetPowerUsage", handle))
        limit = _num(nvml.query("nvmlDeviceGetEnforcedPowerLimit", handle))
        fan = nvml.query("nvmlDeviceGetFanSpeed", handle)
        clock_sm = nvml.query("nvmlDeviceGetClockInfo", handle, nvml.const("NVML_CLOCK_SM", 1))
        clock_mem = nvml.query("nvmlDeviceGetClockInfo", handle, nvml.const("NVML_CLOCK_MEM", 2))
        mig = nvml.query("nvmlDeviceGetMigMode", handle)
        mig_enabled = bool(mig) and mig[0] == nvml.const("NVML_DEVICE_MIG_ENABLE", 1)
        if nvml.failed_with(nvml.errors, "NVML_ERROR_GPU_IS_LOST"):
            return self._lost(nvml, index, start), [], False
        util = _percent(getattr(rates, "gpu", None))
        used = _num(getattr(memory, "used", None))
        total = _num(getattr(memory, "total", None))
        procs, procs_known = self._processes(nvml, handle, index, key, mig_enabled, util)
        errors = nvml.take()
        self._remember(key, util, used, total)
        device = GpuDevice(
            index=index,
            uuid=uuid,
            name=static.name,
            util_percent=util,
            mem_used_bytes=used,
            mem_total_bytes=total,
            temp_c=_num(temp),
            temp_slowdown_c=static.slowdown,
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            fan_percent=_num(fan),
            clock_sm_mhz=_num(clock_sm),
            clock_mem_mhz=_num(clock_mem),
            mig_enabled=mig_enabled,
            processes_known=procs_known,
            error=_device_error(errors),
            nvml_seconds=nvml.seconds - start,
            **self._histories(uuid, index),
        )
        return device, procs, False

    def _lost(self, nvml: _Nvml, index: int, start: float) -> GpuDevice:
        nvml.take()
        uuid, name = self._known.get(index, (None, None))
        return GpuDevice(
            index=index,
            uuid=uuid,
            name=name,
            lost=True,
            error=_LOST_MESSAGE,
            nvml_seconds=nvml.seconds - start,
            **self._histories(uuid, index),
        )

    def _processes(
        self,
        nvml: _Nvml,
        handle: Any,
        index: int,
        key: str,
        mig_enabled: bool,
        device_util: float | None,
    ) -> tuple[list[tuple[int, int, int | None, float | None]], bool]:
        """(index, pid, mem, util) of each process on one device, compute and graphics merged,
        and whether both lists could be read."""
        mems: dict[int, int | None] = {}
        known = True
        for call in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            # A driver older than the bindings lacks their (_v3) entry point: ask for _v2.
            listed = nvml.query_first((call, (handle,)), (f"{call}_v2", (handle,)))
            if listed is None:
                known = False
                continue
            for proc in listed:
                pid = _num(getattr(proc, "pid", None))
                if pid is None:
                    continue
                mem = None if mig_enabled else _num(getattr(proc, "usedGpuMemory", None))
                if pid in mems and mems[pid] is not None:
                    # Listed as compute and graphics: the same memory, not twice as much.
                    mem = max(mems[pid] or 0, mem or 0)
                mems[pid] = mem
        if not mems:
            return [], known
        utils: dict[int, float | None] = dict.fromkeys(mems)
        if not mig_enabled:
            utils = self._process_utilisation(nvml, handle, key, mems, device_util)
        return [(index, pid, mem, utils.get(pid)) for pid, mem in mems.items()], known

    def _process_utilisation(
        self,
        nvml: _Nvml,
        handle: Any,
        key: str,
        pids: Iterable[int],
        device_util: float | None,
    ) -> dict[int, float | None]:
        """SM utilisation per PID from the samples NVML took since the last tick."""
        pids = list(pids)
        samples = nvml.query("nvmlDeviceGetProcessUtilization", handle, self._util_seen.get(key, 0))
        # An idle GPU has no samples to give: its processes provably used nothing.
        idle = 0.0 if device_util == 0 else None
        if samples is None:
            # NOT_FOUND: no sample since the last tick. Anything else: not reported here.
            no_samples = nvml.failed_with(nvml.errors[-1:], "NVML_ERROR_NOT_FOUND")
            return dict.fromkeys(pids, idle if no_samples else None)
        latest: dict[int, tuple[int, float | None]] = {}
        newest = self._util_seen.get(key, 0)
        for sample in samples:
            pid = _num(getattr(sample, "pid", None))
            stamp = _num(getattr(sample, "timeStamp", None)) or 0
            newest = max(newest, stamp)
            if pid is None or (pid in latest and latest[pid][0] > stamp):
                continue
            latest[pid] = (stamp, _percent(getattr(sample, "smUtil", None)))
        self._util_seen[key] = newest
        return {pid: latest[pid][1] if pid in latest else idle for pid in pids}

    def _remember(self, key: str, util: float | None, used: int | None, total: int | None) -> None:
        util_hist = self._util_history.setdefault(key, deque(maxlen=self._history))
        mem_hist = self._mem_history.setdefault(key, deque(maxlen=self._history))
        if util is not None:
            util_hist.append(util)
        if used is not None and total:
            mem_hist.append(100.0 * used / total)

    def _histories(self, uuid: str | None, index: int) -> dict[str, tuple[float, ...]]:
        key = uuid or f"index:{index}"
        return {
            "util_history": tuple(self._util_history.get(key, ())),
            "mem_history": tuple(self._mem_history.get(key, ())),
        }

    # --- attribution ----------------------------------------------------------------------

    def _attribution_possible(self, pids: Iterable[int]) -> tuple[bool, str]:
        host = self._host_pidns
        if host is None:
            try:
                link = os.readlink(os.path.join(self.proc_root, "self", "ns", "pid"))
            except OSError:
                link = None
            if link is not None:
                host = link == INIT_PID_NAMESPACE
                self._host_pidns = host
        if host is True:
            return True, ""
        if host is False:
            return False, _NO_HOST_PIDS_MESSAGE
        pids = list(pids)
        if pids and not any(os.path.exists(os.path.join(self.proc_root, str(p))) for p in pids):
            return False, _NO_HOST_PIDS_MESSAGE
        return True, ""

    def _process(
        self, raw: tuple[int, int, int | None, float | None], possible: bool
    ) -> GpuProcess:
        index, pid, mem, util = raw
        base = os.path.join(self.proc_root, str(pid))
        command = ""
        origin = ORIGIN_UNKNOWN
        container_id = None
        if possible:
            cmdline = _read_text(os.path.join(base, "cmdline"))
            if not cmdline or not cmdline.strip("\0"):
                cmdline = _read_text(os.path.join(base, "comm")) or ""
            # Untrusted text: no control characters (escape sequences) reach the UI.
            printable = "".join(c if c.isprintable() else " " for c in cmdline)
            command = " ".join(printable.split())[:200]
            cgroup = _read_text(os.path.join(base, "cgroup"))
            if cgroup is not None:
                container_id = container_id_from_cgroup(cgroup)
                origin = ORIGIN_CONTAINER if container_id else ORIGIN_HOST
        return GpuProcess(
            pid=pid,
            container_id=container_id,
            mem_bytes=mem,
            util_percent=util,
            gpu_index=index,
            command=command,
            origin=origin,
        )


_LOST_MESSAGE = "GPU has fallen off the bus (NVML: GPU is lost); a reset or reboot is needed"
_NO_DRIVER_MESSAGE = (
    "the NVIDIA kernel driver is not loaded (NVML: Driver Not Loaded): is the nvidia module "
    "installed and loaded (nvidia-smi)?"
)
_PERMISSION_MESSAGE = (
    "no permission to use the NVIDIA devices (/dev/nvidia*): run aitop as a user in the "
    "video group, or as root"
)
_NO_HOST_PIDS_MESSAGE = (
    "aitop runs in a PID namespace of its own (a container without --pid=host): NVML's host "
    "PIDs cannot be mapped to containers from here; run aitop on the host or with --pid=host"
)


def _init_failure(error: tuple[str, str, str]) -> tuple[str, str]:
    _, name, text = error
    if name == "NVML_ERROR_LIBRARY_NOT_FOUND":
        return (
            STATE_NO_LIBRARY,
            "the NVML library (libnvidia-ml.so.1) was not found: no NVIDIA driver is installed "
            "on this machine",
        )
    if name == "NVML_ERROR_DRIVER_NOT_LOADED":
        return STATE_NO_DRIVER, _NO_DRIVER_MESSAGE
    if name == "NVML_ERROR_NO_PERMISSION":
        return STATE_PERMISSION_DENIED, _PERMISSION_MESSAGE
    if name == "NVML_ERROR_LIB_RM_VERSION_MISMATCH":
        return (
            STATE_ERROR,
            "the NVIDIA driver and its NVML library differ in version (a driver upgrade "
            "without a reboot?): reload the nvidia module or reboot",
        )
    return STATE_ERROR, f"NVML failed to start: {text}"


def _device_error(errors: Iterable[tuple[str, str, str]]) -> str:
    parts: list[str] = []
    for call, name, text in errors:
        if name in _QUIET_ERRORS and call not in _PROCESS_LISTS:
            continue
        if name == "NVML_ERROR_NOT_FOUND" and call == "nvmlDeviceGetProcessUtilization":
            continue  # no sample since the last tick: not a failure
        if name == "NVML_ERROR_NO_PERMISSION":
            text = "no permission"
        part = f"{_CALL_LABELS.get(call, call)}: {text}"
        if part not in parts:
            parts.append(part)
    return "; ".join(parts)


# --- a thread of its own -----------------------------------------------------------------------


class GpuPoller:
    """Runs a `GpuSampler` on a daemon thread on a drift-free schedule.

    Each report goes to `on_report` (from the poller's thread: post a message from there,
    do not touch widgets). `stop()` ends the thread and shuts NVML down.
    """

    def __init__(
        self,
        sampler: GpuSampler,
        *,
        on_report: Callable[[GpuReport], None],
        interval: float = MIN_INTERVAL,
    ) -> None:
        self.sampler = sampler
        self.on_report = on_report
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="aitop-gpu", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sampling and wait for the thread (at most `timeout` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.sampler.close()

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            report = self.sampler.sample()
            if self._stop.is_set():
                return
            with contextlib.suppress(Exception):
                self.on_report(report)
            # Drift-free: the next tick is a fixed time after this one started; a tick that
            # ran late is skipped rather than piled up.
            deadline += self.interval
            now = time.monotonic()
            if deadline < now:
                deadline = now
            self._stop.wait(deadline - now)
