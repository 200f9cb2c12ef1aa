"""The NVML boundary (the only importer of `pynvml`, from nvidia-ml-py): every NVML call goes
through `Nvml.query`, which turns an NVML error into None, meaning "N/A" everywhere: shown as
N/A and serialised as null, never as 0. The errors are noted, for per-device error texts.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, SupportsIndex, SupportsInt

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

NVML_LIBRARY = "libnvidia-ml.so.1"
"""The NVML library, by the name the bindings load it on Linux."""


def nvml_library_found() -> bool:
    """Whether the NVML library loads, as the bindings would load it (on Linux).

    Asked before the bindings are imported: on a machine without NVIDIA's driver they would
    be about 1 MB of Python kept for nothing (issue 14, item 4). Elsewhere the bindings look
    in places of their own: True, and they say.
    """
    if not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL(NVML_LIBRARY)  # the bindings' own load of it then finds it loaded
    except OSError:
        return False
    return True


def pynvml_installed() -> bool:
    """Whether `import pynvml` would find the bindings, without importing them."""
    if "pynvml" in sys.modules:
        return sys.modules["pynvml"] is not None  # None: an import that is made to fail
    return importlib.util.find_spec("pynvml") is not None


def load_pynvml() -> ModuleType | None:
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


class Nvml:
    """Every NVML call goes through `query`: an NVML error becomes None and is noted."""

    def __init__(self, module: object) -> None:
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

    def query(self, call: str, *args: object) -> Any:
        """`pynvml.<call>(*args)`, or None when it fails (the failure is noted in `errors`).

        The answer is the bindings' own (a number, a string, a ctypes structure, a list of
        them): untyped, as pynvml is.
        """
        fn = getattr(self.module, call, None)
        if fn is None:
            self.errors.append((call, "NVML_ERROR_FUNCTION_NOT_FOUND", "Function Not Found"))
            return None
        start = time.perf_counter()
        try:
            value = fn(*args)
        except self.error_type as exc:
            code = getattr(exc, "value", None)
            self.errors.append((call, self._names.get(code, ""), error_text(exc)))
            return None
        except (UnicodeDecodeError, OSError) as exc:
            self.errors.append((call, "", error_text(exc)))
            return None
        finally:
            self.seconds += time.perf_counter() - start
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value

    def query_first(self, *calls: tuple[str, tuple[object, ...]]) -> Any:
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


def error_text(exc: BaseException) -> str:
    """What an exception says, or its type's name when it says nothing (or cannot)."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


def nvml_int(value: object) -> int | None:
    """An NVML integer, or None for NVML's "not available" sentinels (all bits set)."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, str | bytes | SupportsInt | SupportsIndex):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    if number < 0 or number in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None
    return number


def nvml_percent(value: object) -> float | None:
    """An NVML percentage (0-100), or None when it is unknown or out of range."""
    number = nvml_int(value)
    return float(number) if number is not None and number <= 100 else None


def device_error(errors: Iterable[tuple[str, str, str]]) -> str:
    """One device's failed NVML calls in words ("power: no permission; fan: ..."), each once;
    values that only do not exist on the device (not supported) are left out."""
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
