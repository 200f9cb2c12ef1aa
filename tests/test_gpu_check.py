"""bench/gpu_check.py, the real GPU check, run here without a GPU.

Its dry run goes through every step against the tests' fake NVML (the PyTorch process is a
stand-in whose GPU use is simulated in the fake, and every such line says so); the NVML
recording it writes must load into the fake and give aitop the same figures again. Without
`--dry-run` on this machine (no driver, no nvidia-smi, no PyTorch), the check fails in
labelled lines, never with a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_check import (
    TOLERANCES,
    RecordingNvml,
    compare_device,
    parse_smi,
    smi_from_fake,
)
from tests.fixtures.nvml.fake_nvml import ERROR_CODES, PIDS, FakeNvml, fake_proc, load_reading
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.gpu.types import GpuReport

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.py"
GIB = 2**30


def run_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu-check")
    done = run_check(
        "--dry-run", "--out", str(out), "--load-seconds", "2", "--timing-seconds", "0.3"
    )
    return done, out


def steady(report: GpuReport) -> GpuReport:
    """A report without what varies run to run (time spent, time taken)."""
    return dataclasses.replace(
        report,
        nvml_seconds=0.0,
        taken_at=0.0,
        devices=tuple(dataclasses.replace(d, nvml_seconds=0.0) for d in report.devices),
    )


# --- the dry run, end to end -------------------------------------------------------------------


def test_dry_run_passes_and_labels_what_is_simulated(dry_run):
    done, out = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    verdicts = [line for line in lines if line.startswith(("PASS", "FAIL", "SKIP"))]
    names = [line.split(":", 1)[0] for line in verdicts]
    assert names == [
        "PASS  aitop reads the GPUs (SIMULATED)",
        "PASS  aitop vs nvidia-smi (idle) (SIMULATED)",
        "PASS  worker PID listed by aitop (SIMULATED)",
        "PASS  worker memory +8 GiB (+-5%) (SIMULATED)",
        "PASS  worker SM share high (>= 50%) (SIMULATED)",
        "PASS  aitop vs nvidia-smi (under load) (SIMULATED)",
        "SKIP  nvitop timing",
        "PASS  aitop NVML sampling <= 5 ms per GPU per tick (SIMULATED)",
        "PASS  memory released after the worker exited (SIMULATED)",
        "PASS  SVG of the GPU pane and the fleet row (SIMULATED)",
    ]
    # nvidia-smi's side is simulated too, and says so each time it is shown.
    assert (
        lines.count("      nvidia-smi (SIMULATED): its CSV made from the fake NVML's reading") == 2
    )
    # Both GPUs of the fixture, side by side, each figure with its verdict.
    table = [line.split() for line in lines if line.startswith("    utilisation")]
    # Idle: the H100 at 87 %, the A100 at 100 %; under load (simulated) both at 100 %.
    assert [row[1:4] for row in table] == [
        ["87", "%", "87"],
        ["100", "%", "100"],
        ["100", "%", "100"],
        ["100", "%", "100"],
    ]
    assert all(row[-1] == "ok" for row in table)
    assert lines[-1].startswith("  9 passed, 0 failed, 1 skipped in ")
    assert (out / "gpu-check.txt").read_text().splitlines() == lines


def test_dry_run_results_hold_the_worker_figures(dry_run):
    _, out = dry_run
    results = json.loads((out / "gpu-check.json").read_text())
    assert results["dry_run"] is True
    assert [c["status"] for c in results["checks"]].count("FAIL") == 0
    worker = results["worker"]
    # The stand-in reports the 8 GiB it "allocated"; the fake adds it to a 500 MiB context.
    assert worker["torch_reserved_after"] - worker["torch_reserved_before"] == 8 * GIB
    assert worker["nvml_mem_after"] - worker["nvml_mem_before"] == 8 * GIB
    assert worker["sm_samples"] and set(worker["sm_samples"]) == {97.0}
    assert worker["exit_code"] == 0
    idle = results["comparisons"]["idle"]
    assert parse_smi(idle["smi_csv"])[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert results["timing"]["timings"][0]["tool"] == "aitop GpuSampler.sample()"


def test_dry_run_recording_loads_into_the_fake_nvml(dry_run, tmp_path):
    _, out = dry_run
    recording = json.loads((out / "nvml-recording.json").read_text())
    assert "DRY RUN" in recording["description"]
    assert set(recording) == {"description", "idle", "load", "released"}
    # The idle reading is the source fixture again: aitop reads the same from both.
    proc_root = fake_proc(tmp_path)
    original = GpuSampler(FakeNvml.from_fixture("h100_a100.json", PIDS), proc_root=proc_root)
    replayed = GpuSampler(FakeNvml(recording["idle"], PIDS), proc_root=proc_root)
    assert steady(replayed.sample()) == steady(original.sample())
    # Under load the worker's PID is the placeholder $worker, with its memory and SM share.
    load = GpuSampler(FakeNvml(recording["load"], {**PIDS, "$worker": 4242}), proc_root=proc_root)
    report = load.sample()
    worker = next(p for p in report.processes if p.pid == 4242)
    assert (worker.gpu_index, worker.mem_bytes, worker.util_percent) == (
        0,
        500 * 2**20 + 8 * GIB,
        97.0,
    )
    released = GpuSampler(FakeNvml(recording["released"], PIDS), proc_root=proc_root).sample()
    assert 4242 not in {p.pid for p in released.processes}
    assert released.devices[0].mem_used_bytes == original.sample().devices[0].mem_used_bytes
    # The raw calls of the tick go along, every one with its value or its NVML error.
    calls = recording["load"]["nvml_calls"]
    assert calls[0]["call"] == "nvmlDeviceGetCount"
    assert {"call": "nvmlDeviceGetFanSpeed", "error": "NOT_SUPPORTED"}.items() <= next(
        c for c in calls if c["call"] == "nvmlDeviceGetFanSpeed"
    ).items()
    log = (out / "nvml-calls.jsonl").read_text().splitlines()
    assert json.loads(log[0])["call"] == "nvmlInit"
    assert len(log) > len(calls)


def test_dry_run_renders_the_live_readings(dry_run):
    _, out = dry_run
    fleet = json.loads((out / "fleet.json").read_text())
    (row,) = fleet["containers"]
    assert row["info"]["name"].startswith("sim-worker-")
    assert row["info"]["model"].endswith("(SIMULATED)")
    assert row["gpus"] == [
        {
            "index": 0,
            "uuid": "GPU-5b0e3f1c-8a2d-4c6e-9f71-2d3b4a5c6e7f",
            "mem_bytes": 500 * 2**20 + 8 * GIB,
            "util_percent": 97.0,
        }
    ]
    for name in ("gpu-check-fleet.svg", "gpu-check-gpu-pane.svg"):
        svg = (out / name).read_text()
        assert svg.startswith("<svg")
        assert "GPU&#160;0&#160;·&#160;NVIDIA&#160;H100&#160;80GB&#160;HBM3" in svg
        assert row["info"]["name"] in svg
    # The row's GPU memory as the table shows it: GPU 0 holds 8.5G for the worker.
    assert "0:8.5G" in (out / "gpu-check-fleet.svg").read_text()


def test_without_a_gpu_the_real_check_fails_in_labelled_lines(tmp_path):
    """Here there is no NVIDIA driver: the real run says so and stops, exit 1."""
    done = run_check("--out", str(tmp_path), "--seconds", "60", timeout=90)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("FAIL", "SKIP"))]
    assert verdicts == [
        "FAIL  aitop reads the GPUs: no NVML library: the NVML library (libnvidia-ml.so.1) "
        "was not found: no NVIDIA driver is installed on this machine",
        "SKIP  aitop vs nvidia-smi: aitop has no GPU reading",
        "SKIP  PyTorch worker: aitop has no GPU reading",
        "SKIP  NVML sampling time: aitop has no GPU reading",
        "SKIP  SVG of the GPU pane and the fleet row: aitop has no GPU reading",
    ]
    assert "0 passed, 1 failed, 4 skipped" in done.stdout
    # What the driver answered is recorded all the same, as a fixture the fake replays.
    recording = json.loads((tmp_path / "nvml-recording.json").read_text())
    assert recording["idle"]["errors"] == {"nvmlInit": "LIBRARY_NOT_FOUND"}
    replayed = GpuSampler(FakeNvml(recording["idle"])).sample()
    assert replayed.state == "no-library"


# --- the pieces --------------------------------------------------------------------------------


def fixture_readings() -> list[str]:
    names = ["h100_a100.json", "mig_a100.json", "rtx_workstation.json", "gpu_lost.json"]
    names += [f"states.json#{k}" for k in load_reading("states.json")]
    return names


@pytest.mark.parametrize("name", fixture_readings())
def test_recording_what_aitop_reads_replays_to_the_same_report(name, tmp_path):
    """Every recorded reading, fed back to the fake, gives aitop the same report: the
    recorder keeps each answer and each NVML error where the fake looks for it."""
    proc_root = fake_proc(tmp_path)
    recorder = RecordingNvml(FakeNvml.from_fixture(name, PIDS), ERROR_CODES)
    first = GpuSampler(recorder, proc_root=proc_root).sample()
    pids = {v: k for k, v in PIDS.items()}
    reading = recorder.reading(name, pids)
    again = GpuSampler(FakeNvml(reading, PIDS), proc_root=proc_root).sample()
    assert steady(again) == steady(first)


def test_a_driver_error_the_fake_does_not_know_is_recorded_as_unknown(tmp_path, monkeypatch):
    fake = FakeNvml.from_fixture("h100_a100.json", PIDS)
    # A code of nvml.h the fake has no class for.
    monkeypatch.setattr(fake, "NVML_ERROR_MEMORY", 20, raising=False)

    def power(handle):
        raise fake.NVMLError(20)

    monkeypatch.setattr(fake, "nvmlDeviceGetPowerUsage", power)
    recorder = RecordingNvml(fake, ERROR_CODES)
    report = GpuSampler(recorder, proc_root=fake_proc(tmp_path)).sample()
    assert report.devices[0].power_w is None
    recorded = recorder.reading("test")
    assert [d["errors"] for d in recorded["devices"]] == [
        {"nvmlDeviceGetPowerUsage": "UNKNOWN"},
        {"nvmlDeviceGetPowerUsage": "UNKNOWN"},
    ]
    assert recorded["recording_notes"] == [
        "NVML error MEMORY is not one the fake knows: recorded as UNKNOWN"
    ]
    raw = [c for c in recorded["nvml_calls"] if c["call"] == "nvmlDeviceGetPowerUsage"]
    assert [(c["args"], c["error"]) for c in raw] == [
        (["handle:0"], "MEMORY"),
        (["handle:1"], "MEMORY"),
    ]


def test_smi_cells_that_are_not_values_read_as_none():
    line = (
        "0, GPU-1, NVIDIA H200, 570.86.15, 3, 0, 143771, 31, 73.52, 700.00, 345, 1980, [N/A]\n"
        "1, GPU-2, NVIDIA H200, 570.86.15, [Not Supported], 1, 143771, N/A, [Unknown Error], "
        "700.00, 345, 1980, Disabled\n"
    )
    first, second = parse_smi(line)
    assert first["name"] == "NVIDIA H200" and first["memory.total"] == "143771"
    assert first["mig.mode.current"] is None
    assert second["utilization.gpu"] is None and second["temperature.gpu"] is None
    assert second["power.draw"] is None and second["mig.mode.current"] == "Disabled"
    with pytest.raises(ValueError, match="fields"):
        parse_smi("0, GPU-1\n")


def h100(tmp_path: Path) -> tuple[GpuReport, dict[str, str | None]]:
    fake = FakeNvml.from_fixture("h100_a100.json", PIDS)
    report = GpuSampler(fake, proc_root=fake_proc(tmp_path)).sample()
    return report, parse_smi(smi_from_fake(fake.reading))[0]


def verdicts(figures) -> dict[str, bool | None]:
    return {f.name: f.ok for f in figures}


def test_the_same_reading_agrees_figure_by_figure(tmp_path):
    report, row = h100(tmp_path)
    device = report.devices[0]
    figures = compare_device(device, device, row, report.driver_version)
    assert verdicts(figures) == {
        "utilisation": True,
        "memory used": True,
        "memory total": True,
        "temperature": True,
        "power draw": True,
        "power limit": True,
        "SM clock": True,
        "SM clock max": None,
        "MIG mode": True,
        "name": True,
        "driver": True,
    }
    assert next(f for f in figures if f.name == "memory used").allowed == (
        "+-1% of total = 816 MiB"
    )


def test_differences_beyond_sampling_are_named(tmp_path):
    report, row = h100(tmp_path)
    device = report.devices[0]
    off = {
        **row,
        "utilization.gpu": "70",  # 17 points below aitop's 87
        "memory.used": str(20172 + 900),  # more than 1 % of 81559 MiB
        "temperature.gpu": "67",  # 3 C above
        "power.draw": "540.00",  # 612 W is 13 % above
        "clocks.sm": "1800",  # 1980 is 10 % above 1800: still explained
        "mig.mode.current": "Enabled",
        "driver_version": "550.54.14",
    }
    figures = verdicts(compare_device(device, device, off, report.driver_version))
    assert [name for name, ok in figures.items() if ok is False] == [
        "utilisation",
        "memory used",
        "temperature",
        "power draw",
        "MIG mode",
        "driver",
    ]


def test_a_figure_between_the_two_aitop_readings_is_explained(tmp_path):
    """nvidia-smi reads between aitop's two readings: anything in that span agrees."""
    report, row = h100(tmp_path)
    before = dataclasses.replace(report.devices[0], util_percent=20.0)
    after = dataclasses.replace(report.devices[0], util_percent=95.0)
    figures = compare_device(before, after, {**row, "utilization.gpu": "60"}, "550.54.15")
    util = next(f for f in figures if f.name == "utilisation")
    assert (util.aitop, util.ok) == ("20..95 %", True)
    outside = compare_device(before, after, {**row, "utilization.gpu": "4"}, "550.54.15")
    assert next(f for f in outside if f.name == "utilisation").ok is False


def test_na_on_one_side_only_is_a_difference(tmp_path):
    report, row = h100(tmp_path)
    device = dataclasses.replace(report.devices[0], temp_c=None, power_w=None)
    figures = verdicts(compare_device(device, device, {**row, "power.draw": None}, "550.54.15"))
    assert (figures["temperature"], figures["power draw"]) == (False, True)


def test_tolerances_are_the_ones_the_check_promises():
    assert TOLERANCES["utilisation"].allowed(50, None) == 15
    assert TOLERANCES["memory used"].allowed(0, 81559) == pytest.approx(815.59)
    assert TOLERANCES["temperature"].allowed(64, None) == 2
    assert TOLERANCES["power draw"].allowed(600, None) == pytest.approx(60)
    assert TOLERANCES["SM clock"].allowed(1980, None) == pytest.approx(198)
