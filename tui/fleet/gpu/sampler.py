"""GPU readings: `GpuSampler.sample()` takes one batched reading of every device and returns an
immutable `GpuReport`. Everything that can go wrong is a labelled state of that report, never
an exception or a line on stderr: no Python bindings, no NVML library, no driver, no GPU, no
permission, a GPU fallen off the bus, MIG mode, and any single NVML call failing.
Per-process memory and utilisation are not available on MIG-enabled GPUs: they are None.

Sampling cost: `sample()` is meant to run off the event loop (the fleet monitor's thread), at
most once per `min_interval` seconds; the time spent inside NVML is measured per tick and per
GPU.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypedDict

from tui.fleet.gpu.attribution import Attributor
from tui.fleet.gpu.nvml import (
    Nvml,
    device_error,
    error_text,
    load_pynvml,
    nvml_int,
    nvml_library_found,
    nvml_percent,
    pynvml_installed,
)
from tui.fleet.gpu.types import (
    STATE_ERROR,
    STATE_NO_DRIVER,
    STATE_NO_GPU,
    STATE_NO_LIBRARY,
    STATE_OK,
    STATE_PERMISSION_DENIED,
    GpuDevice,
    GpuReport,
)

HISTORY = 120
"""Samples kept per GPU for the utilisation and memory sparklines."""
MIN_INTERVAL = 1.0
"""Default shortest gap between two NVML readings, in seconds."""
INIT_RETRY = 10.0
"""Seconds between attempts to initialise NVML after it failed (a driver may be loaded later)."""


# --- the sampler -------------------------------------------------------------------------------


class _Histories(TypedDict):
    """A device's sparkline histories, as `GpuDevice` takes them."""

    util_history: tuple[float, ...]
    mem_history: tuple[float, ...]


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
        nvml: object | None = None,
        *,
        proc_root: str = "/proc",
        min_interval: float = MIN_INTERVAL,
        history: int = HISTORY,
        host_pid_namespace: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self._module = nvml
        self._history = history
        self._attribution = Attributor(proc_root, host_pid_namespace)
        self._clock = clock
        self._lock = threading.Lock()
        self._warming = False
        self._nvml: Nvml | None = None
        self._initialised = False
        self._failure: tuple[str, str] | None = None
        self._failed_at = 0.0
        self._no_library = False
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
                message=f"reading the GPUs failed unexpectedly: {error_text(exc)}",
                taken_at=time.time(),
            )
        self._last, self._last_at = report, now
        return report

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
        possible, reason = self._attribution.possible(pid for _, pid, _, _ in raw_procs)
        processes = tuple(self._attribution.process(raw, possible) for raw in raw_procs)
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
            # No bindings: that will not change. No library: a driver may be installed later.
            bindings_missing = self._nvml is None and not self._no_library
            if bindings_missing or now - self._failed_at < INIT_RETRY:
                return self._failure
        if self._nvml is None:
            # Without the library the bindings are not imported at all (see nvml_library_found).
            self._no_library = (
                self._module is None and pynvml_installed() and not nvml_library_found()
            )
            if self._no_library:
                self._failure = _init_failure(("nvmlInit", "NVML_ERROR_LIBRARY_NOT_FOUND", ""))
                self._failed_at = now
                return self._failure
            module = self._module if self._module is not None else load_pynvml()
            if module is None:
                self._failure = (
                    STATE_NO_LIBRARY,
                    "the Python NVML bindings are not installed (pip install nvidia-ml-py): "
                    "GPUs cannot be read",
                )
                self._failed_at = now
                return self._failure
            self._nvml = Nvml(module)
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

    def _count_failure(self, nvml: Nvml, errors: list[tuple[str, str, str]]) -> tuple[str, str]:
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
        self, nvml: Nvml, index: int
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
                error=_LOST_MESSAGE if lost else device_error(errors),
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
                slowdown=nvml_int(
                    nvml.query("nvmlDeviceGetTemperatureThreshold", handle, threshold)
                ),
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
        power = nvml_int(nvml.query("nvmlDeviceGetPowerUsage", handle))
        limit = nvml_int(nvml.query("nvmlDeviceGetEnforcedPowerLimit", handle))
        fan = nvml.query("nvmlDeviceGetFanSpeed", handle)
        clock_sm = nvml.query("nvmlDeviceGetClockInfo", handle, nvml.const("NVML_CLOCK_SM", 1))
        clock_mem = nvml.query("nvmlDeviceGetClockInfo", handle, nvml.const("NVML_CLOCK_MEM", 2))
        mig = nvml.query("nvmlDeviceGetMigMode", handle)
        mig_enabled = bool(mig) and mig[0] == nvml.const("NVML_DEVICE_MIG_ENABLE", 1)
        if nvml.failed_with(nvml.errors, "NVML_ERROR_GPU_IS_LOST"):
            return self._lost(nvml, index, start), [], False
        util = nvml_percent(getattr(rates, "gpu", None))
        used = nvml_int(getattr(memory, "used", None))
        total = nvml_int(getattr(memory, "total", None))
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
            temp_c=nvml_int(temp),
            temp_slowdown_c=static.slowdown,
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            fan_percent=nvml_int(fan),
            clock_sm_mhz=nvml_int(clock_sm),
            clock_mem_mhz=nvml_int(clock_mem),
            mig_enabled=mig_enabled,
            processes_known=procs_known,
            error=device_error(errors),
            nvml_seconds=nvml.seconds - start,
            **self._histories(uuid, index),
        )
        return device, procs, False

    def _lost(self, nvml: Nvml, index: int, start: float) -> GpuDevice:
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
        nvml: Nvml,
        handle: object,
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
                pid = nvml_int(getattr(proc, "pid", None))
                if pid is None:
                    continue
                mem = None if mig_enabled else nvml_int(getattr(proc, "usedGpuMemory", None))
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
        nvml: Nvml,
        handle: object,
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
            pid = nvml_int(getattr(sample, "pid", None))
            stamp = nvml_int(getattr(sample, "timeStamp", None)) or 0
            newest = max(newest, stamp)
            if pid is None or (pid in latest and latest[pid][0] > stamp):
                continue
            latest[pid] = (stamp, nvml_percent(getattr(sample, "smUtil", None)))
        self._util_seen[key] = newest
        return {pid: latest[pid][1] if pid in latest else idle for pid in pids}

    def _remember(self, key: str, util: float | None, used: int | None, total: int | None) -> None:
        util_hist = self._util_history.setdefault(key, deque(maxlen=self._history))
        mem_hist = self._mem_history.setdefault(key, deque(maxlen=self._history))
        if util is not None:
            util_hist.append(util)
        if used is not None and total:
            mem_hist.append(100.0 * used / total)

    def _histories(self, uuid: str | None, index: int) -> _Histories:
        key = uuid or f"index:{index}"
        return {
            "util_history": tuple(self._util_history.get(key, ())),
            "mem_history": tuple(self._mem_history.get(key, ())),
        }


_LOST_MESSAGE = "GPU has fallen off the bus (NVML: GPU is lost); a reset or reboot is needed"
_NO_DRIVER_MESSAGE = (
    "the NVIDIA kernel driver is not loaded (NVML: Driver Not Loaded): is the nvidia module "
    "installed and loaded (nvidia-smi)?"
)
_PERMISSION_MESSAGE = (
    "no permission to use the NVIDIA devices (/dev/nvidia*): run aitop as a user in the "
    "video group, or as root"
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
