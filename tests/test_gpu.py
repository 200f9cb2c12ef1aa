"""The GPU layer against recorded NVML readings (tests/fixtures/nvml) and real containers.

There is no GPU here: NVML is replaced at the `pynvml` boundary by a fake module that answers
with readings built from NVML's documented structures and raises NVML's errors.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.nvml.fake_nvml import (
    CID_A,
    CID_B,
    PID_A,
    PID_B,
    PID_HOST,
    PIDS,
    FakeNvml,
    SlowInitNvml,
    fake_proc,
    load_reading,
)
from tests.helpers import TEST_LABEL, unavailable, wait_for
from tui.fleet.gpu.attribution import container_id_from_cgroup
from tui.fleet.gpu.nvml import load_pynvml
from tui.fleet.gpu.sampler import INIT_RETRY, GpuSampler
from tui.fleet.gpu.types import (
    STATE_LABELS,
    ContainerGpu,
    GpuDevice,
    GpuProcess,
    GpuReport,
    container_gpu_usage,
    container_gpus_json,
    format_assigned,
    format_gpu_usage,
    gpus_assigned,
    pressure_warnings,
    report_status_json,
    report_to_json,
)
from tui.fleet.units import format_bytes

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sampler_for(name: str, tmp_path: Path, **kw) -> tuple[GpuSampler, FakeNvml]:
    fake = FakeNvml.from_fixture(name, PIDS)
    proc_root = kw.pop("proc_root", None) or fake_proc(tmp_path)
    return GpuSampler(fake, proc_root=proc_root, **kw), fake


@pytest.fixture
def quiet(capsys, recwarn):
    """Asserts, after the test, that nothing reached stdout/stderr and nothing warned."""
    yield
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    # A ResourceWarning comes from whatever object the collector happens to free now, often
    # one an earlier test left behind: it says nothing about this test.
    assert [str(w.message) for w in recwarn if not issubclass(w.category, ResourceWarning)] == []


# --- the headless module stays headless ---------------------------------------------------------


def test_importing_the_module_loads_neither_nvml_nor_the_ui():
    code = (
        "import sys, tui.fleet.gpu.sampler, tui.fleet.gpu.types; "
        "bad = {'pynvml', 'textual', 'rich'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --- a healthy machine --------------------------------------------------------------------------


def test_devices_carry_every_gauge(tmp_path, quiet):
    sampler, _ = sampler_for("h100_a100.json", tmp_path)
    report = sampler.sample()
    assert report.state == "ok" and report.ok and report.message == ""
    assert report.driver_version == "550.54.15"
    h100, a100 = report.devices
    assert (h100.index, h100.name, h100.uuid) == (
        0,
        "NVIDIA H100 80GB HBM3",
        "GPU-5b0e3f1c-8a2d-4c6e-9f71-2d3b4a5c6e7f",
    )
    assert h100.util_percent == 87.0
    assert (h100.mem_used_bytes, h100.mem_total_bytes) == (21151793152, 81559 * 2**20)
    assert (h100.temp_c, h100.temp_slowdown_c) == (64, 89)
    assert (h100.power_w, h100.power_limit_w) == (612.345, 700.0)
    assert (h100.clock_sm_mhz, h100.clock_mem_mhz) == (1980, 2619)
    assert h100.mig_enabled is False and h100.lost is False
    # A datacenter GPU has no fan: N/A, and not an error worth reporting.
    assert h100.fan_percent is None and h100.error == ""
    assert a100.name == "NVIDIA A100-SXM4-80GB"
    assert (a100.mem_level, a100.temp_level) == ("critical", "warning")
    assert (h100.mem_level, h100.temp_level, h100.power_level) == ("", "", "")


def test_histories_are_bounded_and_only_hold_known_values(tmp_path):
    clock = Clock()
    sampler, fake = sampler_for("h100_a100.json", tmp_path, history=3, clock=clock)
    for util in (10, 20, 30, 40):
        fake.reading["devices"][0]["utilization"]["gpu"] = util
        sampler.sample()
        clock.now += 1.0
    fake.reading["devices"][0]["errors"]["nvmlDeviceGetUtilizationRates"] = "UNKNOWN"
    report = sampler.sample()
    assert report.devices[0].util_history == (20.0, 30.0, 40.0)
    assert report.devices[0].util_percent is None
    assert len(report.devices[0].mem_history) == 3


def test_calls_closer_than_the_interval_reuse_the_last_reading(tmp_path):
    clock = Clock()
    sampler, fake = sampler_for("h100_a100.json", tmp_path, clock=clock, min_interval=1.0)
    first = sampler.sample()
    calls = len(fake.calls)
    clock.now += 0.5
    assert sampler.sample() is first
    assert len(fake.calls) == calls
    clock.now += 0.5
    assert sampler.sample() is not first
    assert len(fake.calls) > calls
    assert fake.calls.count("nvmlInit") == 1


def test_a_slow_first_reading_warms_up_aside_and_keeps_no_one_waiting(tmp_path):
    fake = SlowInitNvml(load_reading("h100_a100.json"), PIDS)
    sampler = GpuSampler(fake, proc_root=fake_proc(tmp_path), min_interval=0.0)
    sampler.warm_up()
    assert fake.entered.wait(10)
    # Initialising on its own thread: a monitor's tick gets "no reading yet" at once.
    started = time.monotonic()
    assert sampler.sample_unless_busy() is None
    assert time.monotonic() - started < 1.0
    fake.go_on.set()
    # Once the first reading is in, a tick gets a reading (no longer the "none yet").
    first = wait_for(sampler.sample_unless_busy, 10)
    assert first.state == "ok" and len(first.devices) == 2
    sampler.warm_up()  # once only
    assert fake.calls.count("nvmlInit") == 1


def test_nvml_time_is_measured_per_tick_and_per_gpu(tmp_path):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["latency_s"] = 0.002
    report = sampler.sample()
    per_gpu = [d.nvml_seconds for d in report.devices]
    calls_gpu0 = fake.calls.count("nvmlDeviceGetMemoryInfo")  # one per device
    assert calls_gpu0 == 2
    # Each device makes at least a dozen calls of 2 ms each.
    assert all(s >= 12 * 0.002 for s in per_gpu)
    assert report.nvml_seconds >= sum(per_gpu)


def test_static_facts_are_read_once_per_device(tmp_path):
    clock = Clock()
    sampler, fake = sampler_for("h100_a100.json", tmp_path, clock=clock)
    for _ in range(3):
        sampler.sample()
        clock.now += 1
    assert fake.calls.count("nvmlDeviceGetName") == 2
    assert fake.calls.count("nvmlDeviceGetTemperatureThreshold") == 2
    assert fake.calls.count("nvmlDeviceGetMemoryInfo") == 6


# --- per-process figures ----------------------------------------------------------------------


def test_processes_are_attributed_to_their_containers(tmp_path):
    sampler, _ = sampler_for("h100_a100.json", tmp_path)
    report = sampler.sample()
    assert report.attribution_possible and report.attribution_reason == ""
    by = {(p.gpu_index, p.pid): p for p in report.processes}
    assert by[0, PID_A].container_id == CID_A and by[0, PID_A].origin == "container"
    assert by[1, PID_B].container_id == CID_B
    assert by[0, PID_HOST].container_id is None and by[0, PID_HOST].origin == "host"
    assert by[0, PID_A].command == "python3 -m vllm.entrypoints"
    usage = container_gpu_usage(report)
    assert set(usage) == {CID_A, CID_B}
    assert format_gpu_usage(usage[CID_A]) == "0:18.2G 1:18.1G"
    assert format_gpu_usage(usage[CID_B]) == "1:54.0G"
    assert usage[CID_A][0].uuid == report.devices[0].uuid


def test_per_process_utilisation_takes_each_pids_latest_sample(tmp_path):
    clock = Clock()
    sampler, _ = sampler_for("h100_a100.json", tmp_path, clock=clock)
    report = sampler.sample()
    util = {(p.gpu_index, p.pid): p.util_percent for p in report.processes}
    assert util == {(0, PID_A): 84.0, (0, PID_HOST): 3.0, (1, PID_A): 38.0, (1, PID_B): 61.0}
    usage = container_gpu_usage(report)
    assert [u.util_percent for u in usage[CID_A]] == [84.0, 38.0]
    # The next tick asks only for newer samples; with none, a busy GPU's shares are N/A ...
    clock.now += 1
    report = sampler.sample()
    assert {p.util_percent for p in report.processes} == {None}
    assert report.devices[0].error == ""


def test_an_idle_gpu_without_samples_gives_its_processes_zero(tmp_path, quiet):
    sampler, _ = sampler_for("rtx_workstation.json", tmp_path)
    report = sampler.sample()
    (device,) = report.devices
    assert device.util_percent == 0.0 and device.fan_percent == 30
    assert device.mig_enabled is False  # MIG mode Not Supported on a GeForce card
    assert {p.util_percent for p in report.processes} == {0.0}


def test_a_process_listed_as_compute_and_graphics_counts_once(tmp_path):
    sampler, _ = sampler_for("rtx_workstation.json", tmp_path)
    report = sampler.sample()
    mem = {p.pid: p.mem_bytes for p in report.processes}
    assert mem == {PID_A: 8 * 2**30, PID_HOST: 256 * 2**20}
    assert len(report.processes) == 2


def test_mig_mode_shows_na_never_a_wrong_zero(tmp_path, quiet):
    sampler, _ = sampler_for("mig_a100.json", tmp_path)
    report = sampler.sample()
    (device,) = report.devices
    assert device.mig_enabled is True
    assert device.util_percent is None
    assert device.mem_used_bytes == 22 * 2**30  # device memory is still known
    assert device.error == ""  # Not Supported is N/A, not a failure
    # NVML said 0 for one process: under MIG that is not a real figure.
    assert [(p.mem_bytes, p.util_percent) for p in report.processes] == [(None, None)] * 2
    usage = container_gpu_usage(report)
    assert usage[CID_A] == (ContainerGpu(0, device.uuid, None, None),)
    assert format_gpu_usage(usage[CID_A]) == "0:N/A"
    gpus = report_to_json(report)
    assert gpus[0]["util_percent"] is None
    assert [p["mem_bytes"] for p in gpus[0]["processes"]] == [None, None]
    assert container_gpus_json(usage[CID_A])[0]["mem_bytes"] is None
    assert 0 not in json.loads(json.dumps(gpus))[0]["processes"][0].values()


def test_usage_is_na_when_any_process_of_the_container_is_unknown():
    report = GpuReport(
        state="ok",
        devices=(GpuDevice(index=0, uuid="GPU-x"),),
        processes=(
            GpuProcess(1, CID_A, 2**30, 10.0, 0),
            GpuProcess(2, CID_A, None, 20.0, 0),
            GpuProcess(3, CID_B, 2**30, 30.0, 0),
            GpuProcess(4, CID_B, 2**30, 40.0, 0),
        ),
    )
    usage = container_gpu_usage(report)
    assert usage[CID_A] == (ContainerGpu(0, "GPU-x", None, 30.0),)
    assert usage[CID_B] == (ContainerGpu(0, "GPU-x", 2 * 2**30, 70.0),)


# --- every state is a labelled report, never an exception or stderr ------------------------------


@pytest.mark.parametrize(
    ("case", "state", "words"),
    [
        ("no_library", "no-library", "libnvidia-ml.so.1"),
        ("no_driver", "no-driver", "not loaded"),
        ("permission_init", "permission-denied", "permission"),
        ("version_mismatch", "error", "reboot"),
        ("init_unknown", "error", "Unknown Error"),
        ("no_gpu", "no-gpu", "no GPU"),
        ("count_fails", "error", "count"),
        ("devices_denied", "permission-denied", "denies access"),
    ],
)
def test_each_failure_is_a_labelled_state(case, state, words, tmp_path, quiet):
    sampler, _ = sampler_for(f"states.json#{case}", tmp_path)
    report = sampler.sample()
    assert report.state == state
    assert words in report.message
    assert report.devices == () and report.processes == ()
    assert report.label == STATE_LABELS[state]
    assert report_to_json(report) == []
    assert report_status_json(report)["state"] == state


def test_no_bindings_installed_is_a_state(monkeypatch, quiet):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    report = GpuSampler().sample()
    assert report.state == "no-library"
    assert "nvidia-ml-py" in report.message


@pytest.mark.may_skip  # a CI machine with a GPU has nothing to show here
def test_the_real_bindings_on_this_machine(quiet):
    """The default path: the real `pynvml` against whatever this machine has."""
    sampler = GpuSampler()
    report = sampler.sample()
    if report.ok:
        pytest.skip("this machine has a working NVIDIA driver")
    assert report.state in ("no-library", "no-driver", "no-gpu", "permission-denied")
    assert report.message
    sampler.close()


def test_a_driver_loaded_later_is_found_after_the_retry_delay(tmp_path):
    clock = Clock()
    sampler, fake = sampler_for("h100_a100.json", tmp_path, clock=clock)
    fake.reading["errors"] = {"nvmlInit": "DRIVER_NOT_LOADED"}
    assert sampler.sample().state == "no-driver"
    clock.now += 1
    fake.reading["errors"] = {}
    assert sampler.sample().state == "no-driver"  # not retried at once
    assert fake.calls.count("nvmlInit") == 1
    clock.now += INIT_RETRY
    assert sampler.sample().state == "ok"


def test_a_gpu_fallen_off_the_bus_is_marked_lost(tmp_path, quiet):
    clock = Clock()
    sampler, fake = sampler_for("h100_a100.json", tmp_path, clock=clock)
    sampler.sample()
    clock.now += 1
    fake.reading["devices"][1]["errors"] = {"nvmlDeviceGetHandleByIndex": "GPU_IS_LOST"}
    report = sampler.sample()
    assert report.state == "ok"
    ok, lost = report.devices
    assert ok.lost is False and ok.util_percent == 87.0
    assert lost.lost is True and "fallen off the bus" in lost.error
    # What was known of it stays: its name and uuid, and the history up to the loss.
    assert lost.name == "NVIDIA A100-SXM4-80GB" and lost.uuid
    assert lost.util_history == (100.0,)
    assert (lost.util_percent, lost.mem_used_bytes, lost.temp_c) == (None, None, None)
    assert report.processes_on(1) == ()
    assert report_status_json(report)["lost"] == [1]


def test_a_gpu_lost_between_calls_is_marked_lost(tmp_path):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][0]["errors"] = {"nvmlDeviceGetTemperature": "GPU_IS_LOST"}
    report = sampler.sample()
    assert report.devices[0].lost is True and report.devices[0].util_percent is None
    assert report.devices[1].lost is False


def test_a_lost_gpu_from_the_first_tick_has_no_name(tmp_path, quiet):
    sampler, _ = sampler_for("gpu_lost.json", tmp_path)
    report = sampler.sample()
    assert report.devices[1].lost and report.devices[1].name is None
    assert report.devices[0].name == "NVIDIA H100 80GB HBM3"


def test_one_device_denied_is_an_error_of_that_device(tmp_path):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][0]["errors"] = {"nvmlDeviceGetHandleByIndex": "NO_PERMISSION"}
    report = sampler.sample()
    assert report.state == "ok"
    assert report.devices[0].error == "device handle: no permission"
    assert report.devices[1].util_percent == 100.0


FIELD_OF_CALL = {
    "nvmlDeviceGetUUID": ("uuid", "uuid"),
    "nvmlDeviceGetName": ("name", "name"),
    "nvmlDeviceGetMemoryInfo": ("mem_used_bytes", "memory"),
    "nvmlDeviceGetUtilizationRates": ("util_percent", "utilisation"),
    "nvmlDeviceGetTemperature": ("temp_c", "temperature"),
    "nvmlDeviceGetTemperatureThreshold": ("temp_slowdown_c", "slowdown threshold"),
    "nvmlDeviceGetPowerUsage": ("power_w", "power"),
    "nvmlDeviceGetEnforcedPowerLimit": ("power_limit_w", "power limit"),
    "nvmlDeviceGetClockInfo": ("clock_sm_mhz", "clocks"),
}


@pytest.mark.parametrize("call", sorted(FIELD_OF_CALL))
@pytest.mark.parametrize("error", ["UNKNOWN", "NO_PERMISSION", "TIMEOUT"])
def test_each_call_failing_alone_is_na_and_named(call, error, tmp_path, quiet):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][0]["errors"] = {call: error}
    report = sampler.sample()
    field, label = FIELD_OF_CALL[call]
    device = report.devices[0]
    assert report.state == "ok"
    assert getattr(device, field) is None
    assert device.error.startswith(f"{label}: ")
    # Everything else of the device is still there.
    others = {f for f, _ in FIELD_OF_CALL.values()} - {field}
    assert all(getattr(device, f) is not None for f in others)
    assert report.devices[1].error == ""


@pytest.mark.parametrize(
    "call",
    [
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
        "nvmlDeviceGetProcessUtilization",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetFanSpeed",
    ],
)
def test_process_and_mode_calls_failing_alone_are_named(call, tmp_path, quiet):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][0]["errors"] = {call: "UNKNOWN"}
    report = sampler.sample()
    assert report.state == "ok"
    assert report.devices[0].error.endswith(": Unknown Error")
    assert report.devices[0].util_percent == 87.0
    if call == "nvmlDeviceGetProcessUtilization":
        assert {p.util_percent for p in report.processes_on(0)} == {None}


def test_calls_missing_from_old_bindings_are_na(tmp_path, quiet, monkeypatch):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    # As if the bindings predated these calls.
    monkeypatch.setattr(fake, "nvmlDeviceGetProcessUtilization", None)
    monkeypatch.setattr(fake, "nvmlDeviceGetMigMode", None)
    report = sampler.sample()
    assert report.state == "ok" and report.devices[0].error == ""
    assert report.devices[0].mig_enabled is False
    assert {p.util_percent for p in report.processes} == {None}


def test_process_lists_fall_back_to_the_v2_entry_points(tmp_path, quiet, monkeypatch):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    # An older driver: the bindings' default (_v3) entry point is missing, _v2 answers.
    v2 = fake.nvmlDeviceGetComputeRunningProcesses
    monkeypatch.setattr(fake, "nvmlDeviceGetComputeRunningProcesses_v2", v2, raising=False)
    monkeypatch.setattr(fake, "nvmlDeviceGetComputeRunningProcesses", None)
    report = sampler.sample()
    assert report.devices[0].error == "" and report.devices[0].processes_known
    assert len(report.processes) == 4


def test_an_unreadable_process_list_is_not_an_empty_one(tmp_path, quiet):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    dev = fake.reading["devices"][1]
    dev["errors"] = {"nvmlDeviceGetComputeRunningProcesses": "NOT_SUPPORTED"}
    report = sampler.sample()
    a100 = report.devices[1]
    assert a100.processes_known is False
    assert a100.error == "compute processes: Not Supported"
    assert report.processes_on(1) == ()
    (line,) = pressure_warnings(report, {})
    assert line.endswith("its processes cannot be listed (see the GPU's error)")


def test_the_newer_temperature_call_is_preferred(tmp_path, quiet, monkeypatch):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    monkeypatch.setattr(fake, "nvmlDeviceGetTemperatureV", lambda handle, sensor: 55, raising=False)
    report = sampler.sample()
    assert [d.temp_c for d in report.devices] == [55, 55]
    assert "nvmlDeviceGetTemperature" not in fake.calls
    assert report.devices[0].error == ""


def test_the_names_the_sampler_calls_exist_in_the_real_bindings():
    """The fake mirrors the real `pynvml`: same functions, arities, constants, error codes."""
    real = load_pynvml()
    if real is None:
        unavailable("nvidia-ml-py", "not installed (a dependency of aitop)")
    fake = FakeNvml({})
    for name in dir(FakeNvml):
        if name.startswith("nvml"):
            ours = inspect.signature(getattr(fake, name)).parameters
            theirs = inspect.signature(getattr(real, name)).parameters
            required = [p for p in theirs.values() if p.default is inspect.Parameter.empty]
            assert len(ours) == len(required), name
        elif name.startswith("NVML_"):
            assert getattr(real, name) == getattr(fake, name), name
    for name in dir(fake):
        if name.startswith("NVML_ERROR_"):
            assert getattr(real, name) == getattr(fake, name), name
    for name in ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetComputeRunningProcesses_v2"):
        assert callable(getattr(real, name))


def test_a_bug_below_becomes_an_error_state_not_a_crash(tmp_path, quiet):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][0]["errors"] = {"nvmlDeviceGetMemoryInfo": "RAISE_PYTHON"}
    report = sampler.sample()
    assert report.state == "error"
    assert "a bug in the bindings" in report.message


# --- attribution: where it is impossible ----------------------------------------------------------


def test_in_a_pid_namespace_of_its_own_aitop_says_it_cannot_attribute(tmp_path, quiet):
    proc_root = fake_proc(tmp_path, pid_ns="pid:[4026532801]")
    sampler, _ = sampler_for("h100_a100.json", tmp_path, proc_root=proc_root)
    report = sampler.sample()
    assert report.state == "ok"
    assert report.attribution_possible is False
    assert "--pid=host" in report.attribution_reason
    assert {p.origin for p in report.processes} == {"unknown"}
    assert {p.container_id for p in report.processes} == {None}
    assert {p.command for p in report.processes} == {""}
    assert container_gpu_usage(report) == {}
    # Memory per process is still real: it is who holds it that is unknown.
    assert report.processes[0].mem_bytes == 19541180416
    (line,) = pressure_warnings(report, {})
    assert "cannot be attributed" in line


def test_without_a_readable_namespace_missing_pids_mean_no_attribution(tmp_path):
    proc_root = fake_proc(tmp_path, procs={}, pid_ns=None)
    sampler, _ = sampler_for("h100_a100.json", tmp_path, proc_root=proc_root)
    report = sampler.sample()
    assert report.attribution_possible is False and report.attribution_reason


def test_without_a_readable_namespace_visible_pids_are_attributed(tmp_path):
    proc_root = fake_proc(tmp_path, pid_ns=None)
    sampler, _ = sampler_for("h100_a100.json", tmp_path, proc_root=proc_root)
    report = sampler.sample()
    assert report.attribution_possible is True
    assert set(container_gpu_usage(report)) == {CID_A, CID_B}


def test_a_pid_that_vanished_is_unknown_not_host(tmp_path):
    procs = {PID_A: (f"0::/docker/{CID_A}\n", "python3")}
    sampler, _ = sampler_for("h100_a100.json", tmp_path, proc_root=fake_proc(tmp_path, procs))
    report = sampler.sample()
    origins = {p.pid: p.origin for p in report.processes}
    assert origins == {PID_A: "container", PID_HOST: "unknown", PID_B: "unknown"}


def test_commands_are_stripped_of_control_characters(tmp_path):
    procs = {PID_A: (f"0::/docker/{CID_A}\n", "evil\x1b]0;title\x07\0--flag")}
    sampler, _ = sampler_for("h100_a100.json", tmp_path, proc_root=fake_proc(tmp_path, procs))
    command = sampler.sample().processes[0].command
    assert command == "evil ]0;title --flag"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"12:memory:/docker/{CID_A}\n", CID_A),
        (f"0::/system.slice/docker-{CID_A}.scope\n", CID_A),
        (f"0::/machine.slice/libpod-{CID_A}.scope/container\n", CID_A),
        (f"0::/libpod_parent/libpod-{CID_A}\n", CID_A),
        (f"0::/machine.slice/libpod-conmon-{CID_A}.scope\n", None),
        (f"11:memory:/kubepods/besteffort/pod1234-5678/{CID_A}\n", CID_A),
        (
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/"
            f"cri-containerd-{CID_A}.scope\n",
            CID_A,
        ),
        (f"0::/kubepods.slice/kubepods-pod1.slice/crio-{CID_A}.scope\n", CID_A),
        (f"0::/user.slice/user-1000.slice/user@1000.service/docker-{CID_A}.scope\n", CID_A),
        (f"0::/docker/{CID_B}/docker/{CID_A}\n", CID_A),
        ("0::/init.scope\n", None),
        ("0::/user.slice/user-1000.slice/session-2.scope\n", None),
        ("4:memory:/process_api/8e496cbe89860444a07bf63121f68091\n0::/\n", None),
        ("", None),
    ],
)
def test_container_id_from_cgroup(text, expected):
    assert container_id_from_cgroup(text) == expected


# --- attribution end to end with real containers -------------------------------------------------


def test_real_containers_get_their_own_gpu_memory(engine, run_container, quiet):
    cid_a = run_container("sleep 3600")
    cid_b = run_container("sleep 3600")
    pid_a = engine.inspect(cid_a)["State"]["Pid"]
    pid_b = engine.inspect(cid_b)["State"]["Pid"]
    assert pid_a > 0 and pid_b > 0
    fake = FakeNvml.from_fixture("h100_a100.json", {"$a": pid_a, "$b": pid_b, "$host": os.getpid()})
    report = GpuSampler(fake, proc_root="/proc").sample()
    if not report.attribution_possible:
        unavailable("host PIDs", report.attribution_reason)
    usage = container_gpu_usage(report)
    assert set(usage) == {cid_a, cid_b}
    assert [(u.index, u.mem_bytes) for u in usage[cid_a]] == [(0, 19541180416), (1, 19434628710)]
    assert [(u.index, u.mem_bytes) for u in usage[cid_b]] == [(1, 54 * 2**30)]
    assert format_gpu_usage(usage[cid_a]) == "0:18.2G 1:18.1G"
    (host,) = [p for p in report.processes if p.pid == os.getpid()]
    assert host.container_id is None and host.origin == "host"
    assert "sleep" in {p.command.split(" ")[0] for p in report.processes if p.container_id}
    names = {cid_b: "llm-b"}
    (line,) = pressure_warnings(report, names)
    assert line.startswith("GPU 1 (NVIDIA A100-SXM4-80GB) memory at 93%")
    assert line.endswith("most is held by container llm-b: 54.0G")
    gpus = report_to_json(report)
    assert {p["container_id"] for p in gpus[0]["processes"]} == {cid_a, None}


def test_gpus_assigned_reads_the_engines_device_requests(engine, image, session_tag, docker_cli):
    made = []
    try:
        for flag, expected in (('"device=0,2"', ("0", "2")), ("2", ("0", "1")), ("all", ("all",))):
            label = f"{TEST_LABEL}={session_tag}"
            cid = subprocess.run(
                [docker_cli, "create", "--label", label, "--gpus", flag, image, "true"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            made.append(cid)
            assert gpus_assigned(engine.inspect(cid)) == expected
    finally:
        for cid in made:
            engine.remove(cid)


def test_a_plain_container_has_no_gpu(engine, run_container):
    assert gpus_assigned(engine.inspect(run_container("sleep 60"))) == ()


# --- assigned versus used -------------------------------------------------------------------------


def _attrs(requests=None, env=None, runtime="runc"):
    return {
        "HostConfig": {"DeviceRequests": requests, "Runtime": runtime},
        "Config": {"Env": env},
    }


GPU_CAPS = [["gpu"]]


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (_attrs(), ()),
        (_attrs([{"Driver": "", "Count": -1, "Capabilities": GPU_CAPS}]), ("all",)),
        (_attrs([{"Driver": "", "Count": 2, "Capabilities": GPU_CAPS}]), ("0", "1")),
        (_attrs([{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1", "3"]}]), ("1", "3")),
        (
            _attrs([{"Driver": "", "DeviceIDs": ["GPU-5b0e3f1c"], "Capabilities": GPU_CAPS}]),
            ("GPU-5b0e3f1c",),
        ),
        (_attrs([{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]}]), ("all",)),
        (
            _attrs([{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]}]),
            ("0", "1"),
        ),
        (_attrs([{"Driver": "", "Count": 1, "Capabilities": [["tpu"]]}]), ()),
        # CUDA images carry NVIDIA_VISIBLE_DEVICES=all: without the nvidia runtime it means nothing.
        (_attrs(env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"]), ()),
        (_attrs(env=["NVIDIA_VISIBLE_DEVICES=all"], runtime="nvidia"), ("all",)),
        (_attrs(env=["NVIDIA_VISIBLE_DEVICES=0,1"], runtime="nvidia"), ("0", "1")),
        (_attrs(env=["NVIDIA_VISIBLE_DEVICES=none"], runtime="nvidia"), ()),
        (_attrs(env=["NVIDIA_VISIBLE_DEVICES=void"], runtime="nvidia"), ()),
        (_attrs(runtime="nvidia"), ()),
        # A device request wins over the variable.
        (
            _attrs(
                [{"Count": 1, "Capabilities": GPU_CAPS}], ["NVIDIA_VISIBLE_DEVICES=all"], "nvidia"
            ),
            ("0",),
        ),
        ({}, ()),
    ],
)
def test_gpus_assigned(attrs, expected):
    assert gpus_assigned(attrs) == expected


def test_assigned_gpus_are_formatted_for_the_table():
    assert (format_assigned(("0", "1")), format_assigned(("all",)), format_assigned(())) == (
        "0,1",
        "all",
        "none",
    )


# --- pressure, JSON, formatting -------------------------------------------------------------------


def test_pressure_warning_names_the_gpu_and_the_biggest_holder(tmp_path):
    report = sampler_for("h100_a100.json", tmp_path)[0].sample()
    assert pressure_warnings(report, {CID_B: "llama-70b"}) == [
        "GPU 1 (NVIDIA A100-SXM4-80GB) memory at 93% (74.1G of 80.0G): "
        "most is held by container llama-70b: 54.0G"
    ]
    # Unknown names fall back to the short id.
    assert pressure_warnings(report, {})[0].endswith(f"container {CID_B[:12]}: 54.0G")


def test_pressure_warning_for_a_host_process_and_for_mig(tmp_path):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    dev = fake.reading["devices"][0]
    dev["memory"]["used"] = int(dev["memory"]["total"] * 0.95)
    dev["compute_processes"][1]["usedGpuMemory"] = 60 * 2**30
    lines = sampler.sample()
    assert pressure_warnings(lines, {})[0].endswith(
        f"most is held by host process {PID_HOST} (python3): 60.0G"
    )
    sampler, fake = sampler_for("mig_a100.json", tmp_path / "mig")
    fake.reading["devices"][0]["memory"]["used"] = 80 * 2**30
    (line,) = pressure_warnings(sampler.sample(), {})
    assert line.endswith("per-process memory is N/A (MIG mode)")


def test_no_pressure_below_the_threshold(tmp_path):
    sampler, fake = sampler_for("h100_a100.json", tmp_path)
    fake.reading["devices"][1]["memory"]["used"] = int(0.9 * 81920 * 2**20)
    assert pressure_warnings(sampler.sample(), {}) == []


def test_report_to_json_has_the_documented_keys(tmp_path):
    report = sampler_for("h100_a100.json", tmp_path)[0].sample()
    gpus = json.loads(json.dumps(report_to_json(report)))
    assert [set(g) for g in gpus] == [
        {
            "index",
            "uuid",
            "name",
            "util_percent",
            "mem_used_bytes",
            "mem_total_bytes",
            "temp_c",
            "power_w",
            "power_limit_w",
            "processes",
        }
    ] * 2
    assert gpus[0]["processes"] == [
        {"pid": PID_A, "container_id": CID_A, "mem_bytes": 19541180416},
        {"pid": PID_HOST, "container_id": None, "mem_bytes": 2**30},
    ]
    usage = container_gpu_usage(report)
    assert container_gpus_json(usage[CID_A]) == [
        {
            "index": 0,
            "uuid": report.devices[0].uuid,
            "mem_bytes": 19541180416,
            "util_percent": 84.0,
        },
        {
            "index": 1,
            "uuid": report.devices[1].uuid,
            "mem_bytes": 19434628710,
            "util_percent": 38.0,
        },
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "N/A"),
        (0, "0B"),
        (512 * 2**20, "512M"),
        (19541180416, "18.2G"),
        (80 * 2**30, "80.0G"),
    ],
)
def test_format_bytes(value, text):
    assert format_bytes(value) == text


def test_fixture_readings_are_plain_json():
    for name in ("h100_a100.json", "mig_a100.json", "rtx_workstation.json", "gpu_lost.json"):
        assert load_reading(name)["devices"]
