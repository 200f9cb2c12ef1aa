"""Another machine's GPUs over an ssh:// engine's connection (issue 13, item 1).

The parser reads nvidia-smi's CSV in the form real drivers print it (tests/fixtures/nvidia_smi/,
whose SOURCES.md says where the format comes from); the reading script runs under a real `sh`
with a stand-in `nvidia-smi` on its PATH; and end to end, a FleetMonitor of an ssh:// engine
(a private sshd on loopback, MaxSessions 1, in front of this machine's engine) gets the
devices and each container's GPU memory, the stand-in printing the PIDs of real containers,
and every failure (no nvidia-smi, no driver, a hang, a wedged call, garbage) as a labelled
state within the deadline, over the one ssh login the engine's forward made.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.helpers import pilot_wait_for, unavailable, wait_for
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.engine.ssh import RemoteOutput, SshTunnel
from tui.fleet.gpu.attribution import INIT_PID_NAMESPACE
from tui.fleet.gpu.remote import (
    APP_FIELDS,
    GPU_FIELDS,
    MARK,
    RemoteGpuSampler,
    parse_gpu_line,
    remote_gpu_source,
    script,
)
from tui.fleet.gpu.sampler import INIT_RETRY, GpuSampler
from tui.fleet.gpu.types import (
    ORIGIN_CONTAINER,
    ORIGIN_HOST,
    ORIGIN_UNKNOWN,
    STATE_ERROR,
    STATE_NO_DRIVER,
    STATE_NO_GPU,
    STATE_NO_SMI,
    STATE_OK,
    STATE_PERMISSION_DENIED,
    STATE_TIMEOUT,
    STATE_UNREACHABLE,
    GpuReport,
    GpuSource,
    Thresholds,
    container_gpu_usage,
    pressure_warnings,
)
from tui.fleet.models import EngineStatus, FleetSnapshot
from tui.fleet.snapshot import host_to_json
from tui.fleet.units import format_bytes
from tui.fleets import Fleets
from tui.watch import monitors_for
from widgets.container_table import ContainerTable, host_label
from widgets.gpu_panel import GpuPanel

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia_smi"
MIB = 1024 * 1024
CID_A = "a" * 64
CID_B = "b" * 64
URL = "ssh://me@box:2200"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def reading(
    gpus: str,
    gpus_rc: int = 0,
    apps: str = "",
    apps_rc: int = 0,
    pidns: str = INIT_PID_NAMESPACE,
    procs: dict[int, tuple[str, str]] | None = None,
) -> RemoteOutput:
    """What the reading script prints for these nvidia-smi outputs (the script's own output
    is checked against this form in `test_the_script_under_sh_prints_what_the_parser_reads`)."""
    lines = [f"{MARK} gpus", *gpus.splitlines(), f"{MARK} rc {gpus_rc}"]
    lines += [f"{MARK} apps", *apps.splitlines(), f"{MARK} rc {apps_rc}", f"{MARK} pidns {pidns}"]
    for pid, (cgroup, comm) in (procs or {}).items():
        lines += [f"{MARK} cgroup {pid}", cgroup, f"{MARK} comm {pid}", comm]
    lines.append(f"{MARK} end")
    return RemoteOutput(0, ("\n".join(lines) + "\n").encode(), b"", 0.042)


def h100_procs() -> dict[int, tuple[str, str]]:
    return {
        412233: (f"0::/system.slice/docker-{CID_A}.scope", "python3"),
        412301: (f"12:pids:/docker/{CID_B}\n0::/docker/{CID_B}", "vllm"),
        5871: ("0::/user.slice/user-1000.slice/session-3.scope", "Xorg"),
    }


# --- parsing recorded output ---------------------------------------------------------------


def test_two_h100s_with_their_processes_attributed_by_cgroup():
    sampler = RemoteGpuSampler(URL)
    out = reading(
        fixture("query_gpu_h100x2_550.csv"),
        apps=fixture("compute_apps_h100x2_550.csv"),
        procs=h100_procs(),
    )
    report = sampler.report_from(out)
    assert report.state == STATE_OK and report.host == "box"
    assert report.driver_version == "550.90.07"
    assert report.nvml_seconds == pytest.approx(0.042)
    first, second = report.devices
    assert (first.index, first.name) == (0, "NVIDIA H100 80GB HBM3")
    assert first.uuid == "GPU-6f0e3a6c-8d4b-9f1e-2a7c-41b5d2e9c803"
    assert first.util_percent == 87.0
    assert (first.mem_used_bytes, first.mem_total_bytes) == (72790 * MIB, 81559 * MIB)
    assert (first.temp_c, first.power_w, first.power_limit_w) == (64, 612.48, 700.0)
    assert (first.clock_sm_mhz, first.clock_sm_max_mhz, first.clock_mem_mhz) == (1980, 1980, None)
    assert first.temp_slowdown_c is None and first.fan_percent is None  # not asked: not guessed
    assert (second.util_percent, second.clock_sm_mhz, second.temp_c) == (0.0, 345, 32)
    assert first.util_history == (87.0,) and second.util_history == (0.0,)
    assert report.attribution_possible
    by_pid = {p.pid: p for p in report.processes}
    assert by_pid[412233].container_id == CID_A and by_pid[412233].origin == ORIGIN_CONTAINER
    assert by_pid[412301].container_id == CID_B
    assert by_pid[5871].origin == ORIGIN_HOST and by_pid[5871].command == "Xorg"
    assert by_pid[412233].mem_bytes == 54272 * MIB and by_pid[412233].util_percent is None
    usage = container_gpu_usage(report)
    assert [(u.index, u.mem_bytes) for u in usage[CID_A]] == [(0, 54272 * MIB)]
    assert [(u.index, u.mem_bytes) for u in usage[CID_B]] == [(0, 17408 * MIB)]
    # The histories grow reading by reading, as the local sampler's do.
    again = sampler.report_from(out)
    assert again.devices[0].util_history == (87.0, 87.0)


def test_na_and_not_supported_read_none_never_zero():
    report = RemoteGpuSampler(URL).report_from(reading(fixture("query_gpu_h200_570_na.csv")))
    assert report.state == STATE_OK and report.driver_version == "570.124.06"
    busy, odd = report.devices
    assert busy.name == "NVIDIA H200" and busy.power_w is None and busy.power_limit_w == 700.0
    assert busy.mem_total_bytes == 143771 * MIB
    assert odd.util_percent is None and odd.temp_c is None
    assert (odd.power_w, odd.power_limit_w, odd.clock_sm_mhz) == (None, None, None)
    assert odd.clock_sm_max_mhz == 1980 and odd.util_history == ()


def test_mig_process_memory_is_na_and_the_sum_is_not_partial():
    out = reading(
        fixture("query_gpu_a100_mig_535.csv"),
        apps=fixture("compute_apps_a100_mig_535.csv"),
        procs={34965: (f"0::/docker/{CID_A}", "python"), 56597: (f"0::/docker/{CID_A}", "py")},
    )
    report = RemoteGpuSampler(URL).report_from(out)
    assert report.devices[0].util_percent is None and report.devices[0].mig_enabled
    # nvidia-smi gives a MIG instance's figure; per GPU it is N/A, as the NVML sampler says.
    assert [p.mem_bytes for p in report.processes] == [None, None]
    assert [u.mem_bytes for u in container_gpu_usage(report)[CID_A]] == [None]


@pytest.mark.parametrize(
    ("name", "rc", "state", "words"),
    [
        ("no_driver.txt", 9, STATE_NO_DRIVER, "cannot reach the NVIDIA kernel driver"),
        ("no_devices.txt", 6, STATE_NO_GPU, "lists no GPU"),
        ("no_permission.txt", 4, STATE_PERMISSION_DENIED, "may not use the NVIDIA devices"),
        ("version_mismatch.txt", 18, STATE_ERROR, "differ in version"),
    ],
)
def test_nvidia_smi_failures_are_labelled_states(name, rc, state, words):
    report = RemoteGpuSampler(URL).report_from(reading(fixture(name), gpus_rc=rc))
    assert report.state == state and words in report.message and "box" in report.message
    assert report.devices == () and report.host == "box"


def test_a_device_nvidia_smi_cannot_open_leaves_the_others():
    report = RemoteGpuSampler(URL).report_from(reading(fixture("lost_gpu_550.csv"), gpus_rc=15))
    assert report.state == STATE_OK and [d.index for d in report.devices] == [0]


def test_an_unknown_failure_says_what_nvidia_smi_said():
    out = reading("Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost", 15)
    report = RemoteGpuSampler(URL).report_from(out)
    assert report.state == STATE_ERROR
    assert report.message.startswith("nvidia-smi on box failed (exit status 15): Unable to")


def test_no_nvidia_smi_a_timeout_a_cut_and_a_dead_connection_are_states():
    sampler = RemoteGpuSampler(URL)
    no_smi = sampler.report_from(RemoteOutput(0, f"{MARK} no-nvidia-smi\n".encode(), b"", 0.01))
    assert no_smi.state == STATE_NO_SMI and no_smi.label == "no nvidia-smi"
    late = sampler.report_from(RemoteOutput(None, b"", b"", 5.0))
    assert late.state == STATE_TIMEOUT and "within 5 s" in late.message
    cut = sampler.report_from(RemoteOutput(-9, b"x" * 100, b"", 0.3, truncated=True))
    assert cut.state == STATE_ERROR and "too much" in cut.message
    ssh = sampler.report_from(RemoteOutput(255, b"", b"Connection closed by 10.0.0.2\n", 0.1))
    assert ssh.state == STATE_UNREACHABLE and "Connection closed" in ssh.message
    half = sampler.report_from(RemoteOutput(0, f"{MARK} gpus\n0, GPU-x".encode(), b"", 0.1))
    assert half.state == STATE_ERROR and "incomplete" in half.message
    remote_timeout = sampler.report_from(reading("", gpus_rc=124))
    assert remote_timeout.state == STATE_TIMEOUT


def test_hostile_output_is_made_safe_and_bounded():
    name = "\x1b]52;c;aGVsbG8=\x07NVIDIA \x1b[2JH100\u202e"
    lines = [
        f"0, GPU-1, {name}, 50, 1, 2, 3, 4, 5, 6, 7, 550\x1b[31m, Disabled",
        "1, GPU-2, too, few, fields",
        "x, GPU-3, NaN-index, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1",
        "2, GPU-4, weird, nan, inf, -5, 1e400, 1, 1, 1, 1, 1, 1",
        "0, GPU-dup, second line for index 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1",
        f"{MARK} nonsense marker",
        "A" * 100_000,
    ]
    apps = "GPU-1, 12ab, 5\nGPU-9, 77, 5\nGPU-1, 99, \x1b[0m\n"
    out = reading("\n".join(lines[:5]), apps=apps, procs={99: ("0::/", "\x1b]0;title\x07sh")})
    report = RemoteGpuSampler(URL).report_from(out)
    assert report.state == STATE_OK
    assert [d.index for d in report.devices] == [0, 2]
    first, weird = report.devices
    assert "\x1b" not in (first.name or "") and "H100" in (first.name or "")
    assert first.uuid == "GPU-1" and first.util_percent == 50
    assert (weird.util_percent, weird.mem_used_bytes, weird.mem_total_bytes) == (None, None, None)
    assert weird.temp_c is None
    # Only the line with a numeric PID on a listed GPU counts; its command is made safe.
    assert [(p.pid, p.mem_bytes) for p in report.processes] == [(99, None)]
    assert "\x1b" not in report.processes[0].command
    assert not report.devices[0].processes_known  # an unreadable line: the list may be short
    junk = RemoteGpuSampler(URL).report_from(reading("\n".join(lines[1:]), gpus_rc=0))
    assert junk.state == STATE_ERROR and len(junk.message) < 400 and "\x1b" not in junk.message


def test_a_login_in_a_pid_namespace_of_its_own_attributes_nothing():
    out = reading(
        fixture("query_gpu_h100x2_550.csv"),
        apps=fixture("compute_apps_h100x2_550.csv"),
        pidns="pid:[4026532999]",
        procs=h100_procs(),
    )
    report = RemoteGpuSampler(URL).report_from(out)
    assert not report.attribution_possible and "PID namespace" in report.attribution_reason
    assert {p.origin for p in report.processes} == {ORIGIN_UNKNOWN}
    assert container_gpu_usage(report) == {}


def test_the_query_is_the_stable_one():
    assert GPU_FIELDS[11:] == ("driver_version", "mig.mode.current")
    assert ",".join(GPU_FIELDS[:11]) == (
        "index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,"
        "power.draw,power.limit,clocks.sm,clocks.max.sm"
    )
    assert APP_FIELDS == ("gpu_uuid", "pid", "used_memory")
    assert parse_gpu_line(fixture("query_gpu_h100x2_550.csv").splitlines()[0]) is not None


# --- the script under a real sh ----------------------------------------------------------------

STAND_IN = """#!/bin/sh
# A stand-in nvidia-smi: prints the recorded outputs in {dir}; {dir}/mode says how to fail.
dir='{dir}'
echo "$*" >> "$dir/calls"
mode=$(cat "$dir/mode" 2>/dev/null)
case "$mode" in
  nodriver) cat "$dir/no_driver.txt"; exit 9;;
  hang) exec sleep 30;;
  wedged) sleep 12 & exit 0;;
  garbage) printf '\\033]0;pwned\\007\\033[2J%s\\n' "not, a, device"; exit 3;;
esac
case "$*" in
  *--query-gpu=*) cat "$dir/gpus.csv";;
  *--query-compute-apps=*) cat "$dir/apps.csv";;
  *) echo "unexpected arguments: $*" >&2; exit 2;;
esac
"""


def stand_in(folder: Path, pids: dict[int, int] | None = None) -> Path:
    """A folder with a stand-in `nvidia-smi` printing the H100 recording, its placeholder
    PIDs replaced by `pids` (recorded -> real)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("no_driver.txt",):
        shutil.copy(FIXTURES / name, folder / name)
    shutil.copy(FIXTURES / "query_gpu_h100x2_550.csv", folder / "gpus.csv")
    apps = fixture("compute_apps_h100x2_550.csv")
    for recorded, real in (pids or {}).items():
        apps = apps.replace(f", {recorded},", f", {real},")
    (folder / "apps.csv").write_text(apps)
    tool = folder / "nvidia-smi"
    tool.write_text(STAND_IN.format(dir=folder))
    tool.chmod(0o755)
    return folder


def local_sh(folder: Path):
    """A `run` for RemoteGpuSampler: the script under this machine's sh, the stand-in first
    on its PATH (what the ssh session does, without ssh)."""

    def run(command: str, timeout: float) -> RemoteOutput:
        start = time.monotonic()
        env = {"PATH": f"{folder}:/usr/bin:/bin"}
        try:
            done = subprocess.run(
                ["sh", "-s"], input=command.encode(), capture_output=True, env=env, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return RemoteOutput(None, b"", b"", time.monotonic() - start)
        return RemoteOutput(done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    return run


def test_the_script_under_sh_prints_what_the_parser_reads(tmp_path):
    me = os.getpid()
    folder = stand_in(tmp_path / "bin", {412233: me, 412301: me, 5871: 999_999_999})
    sampler = RemoteGpuSampler(URL, run=local_sh(folder))
    report = sampler.sample()
    assert report is not None and report.state == STATE_OK, report
    assert [d.name for d in report.devices] == ["NVIDIA H100 80GB HBM3"] * 2
    calls = (folder / "calls").read_text().splitlines()
    assert calls == [
        f"--query-gpu={','.join(GPU_FIELDS)} --format=csv,noheader,nounits",
        f"--query-compute-apps={','.join(APP_FIELDS)} --format=csv,noheader,nounits",
    ]
    # This process (twice in the list: one lookup) is a host process here; a gone one unknown.
    by_pid = {p.pid: p for p in report.processes}
    assert by_pid[me].origin in (ORIGIN_HOST, ORIGIN_CONTAINER)
    assert by_pid[me].command == Path(f"/proc/{me}/comm").read_text().strip()
    assert by_pid[999_999_999].origin == ORIGIN_UNKNOWN
    assert report.attribution_possible == (os.readlink("/proc/self/ns/pid") == INIT_PID_NAMESPACE)


def test_the_script_without_nvidia_smi_and_with_failures(tmp_path):
    folder = stand_in(tmp_path / "bin")
    sampler = RemoteGpuSampler(URL, run=local_sh(folder), min_interval=0)
    (folder / "mode").write_text("nodriver")
    report = sampler.sample()
    assert report is not None and report.state == STATE_NO_DRIVER
    assert len((folder / "calls").read_text().splitlines()) == 1  # no second call after it
    (folder / "mode").write_text("garbage")
    report = sampler.sample()
    assert report is not None and report.state == STATE_ERROR and "\x1b" not in report.message
    (folder / "nvidia-smi").unlink()
    if shutil.which("nvidia-smi", path="/usr/bin:/bin") is None:
        report = sampler.sample()
        assert report is not None and report.state == STATE_NO_SMI


def test_a_hung_nvidia_smi_is_stopped_there(tmp_path):
    if shutil.which("timeout") is None:
        unavailable("timeout", "the script stops a hung nvidia-smi with timeout(1)")
    folder = stand_in(tmp_path / "bin")
    (folder / "mode").write_text("hang")
    sampler = RemoteGpuSampler(URL, run=local_sh(folder), timeout=2.0)
    start = time.monotonic()
    report = sampler.sample()
    assert report is not None and report.state == STATE_TIMEOUT
    assert time.monotonic() - start < 3.0
    assert 't="timeout -k 1 1"' in script(1)


def test_without_warm_up_it_reads_on_the_caller_and_after_it_never_waits(tmp_path):
    calls: list[float] = []

    def slow(command: str, timeout: float) -> RemoteOutput:
        calls.append(time.monotonic())
        time.sleep(0.3)
        return reading(fixture("query_gpu_h100x2_550.csv"))

    sampler: GpuSource = RemoteGpuSampler(URL, run=slow, min_interval=10)
    first = sampler.sample_unless_busy()
    assert first is not None and first.ok and len(calls) == 1
    assert sampler.sample_unless_busy() is first  # not due yet
    sampler.close()

    threaded = RemoteGpuSampler(URL, run=slow, min_interval=0.2)
    threaded.warm_up()
    start = time.monotonic()
    assert threaded.sample_unless_busy() is None  # the first reading is under way
    assert time.monotonic() - start < 0.1
    got = wait_for(threaded.sample_unless_busy, timeout=3, what="the thread's first reading")
    assert got.ok
    threaded.close()


def test_no_connection_waits_then_says_it_is_gone():
    answers: list[RemoteOutput | None] = [None, reading(fixture("query_gpu_h100x2_550.csv")), None]
    sampler = RemoteGpuSampler(URL, run=lambda command, timeout: answers.pop(0), min_interval=0)
    assert sampler.sample() is None  # not connected yet: nothing to say
    ok = sampler.sample()
    assert ok is not None and ok.ok
    gone = sampler.sample()
    assert gone is not None and gone.state == STATE_UNREACHABLE and "box" in gone.message


def test_lasting_states_and_timeouts_are_read_again_later_not_every_interval():
    now = [100.0]
    answers = [
        RemoteOutput(0, f"{MARK} no-nvidia-smi\n".encode(), b"", 0.01),
        RemoteOutput(None, b"", b"", 5.0),
        reading(fixture("query_gpu_h100x2_550.csv")),
        reading(fixture("query_gpu_h100x2_550.csv")),
    ]
    sampler = RemoteGpuSampler(
        URL, run=lambda command, timeout: answers.pop(0), min_interval=1.0, clock=lambda: now[0]
    )

    def at(t: float) -> str | None:
        now[0] = t
        report = sampler.sample_unless_busy()
        return report.state if report is not None else None

    assert at(100.0) == STATE_NO_SMI
    assert at(102.0) == STATE_NO_SMI and len(answers) == 3  # not asked again yet
    assert at(100.0 + INIT_RETRY) == STATE_TIMEOUT  # our deadline cut it off
    assert at(100.0 + INIT_RETRY + 10.0) == STATE_TIMEOUT and len(answers) == 2
    assert at(100.0 + INIT_RETRY + 15.0) == STATE_OK
    assert at(100.0 + INIT_RETRY + 16.0) == STATE_OK and answers == []
    refused = sampler.report_from(
        RemoteOutput(255, b"", b"session request failed: Session open refused by peer\n", 0.01)
    )
    assert refused.state == STATE_UNREACHABLE and "MaxSessions" in refused.message
    assert refused.label == "ssh failed"


def test_only_ssh_engines_get_a_remote_source():
    assert isinstance(remote_gpu_source("ssh://me@box"), RemoteGpuSampler)
    assert remote_gpu_source("unix:///var/run/docker.sock") is None
    assert remote_gpu_source("tcp://box:2376") is None
    sampler: GpuSource = GpuSampler()  # both satisfy the monitor's Protocol
    sampler.close()


def test_the_forward_is_the_master_and_a_session_never_logs_in():
    tunnel = SshTunnel("ssh://me@box:2200/run/user/1000/docker.sock")
    argv = tunnel.argv("/tmp/aitop-ssh-x/docker.sock")
    assert "ControlMaster=yes" in argv and "ControlPath=/tmp/aitop-ssh-x/control" in argv
    assert "ControlPersist=no" in argv
    session = tunnel.session_argv("/tmp/aitop-ssh-x/control", "sh -s")
    assert "ControlMaster=no" in session and "ProxyCommand=false" in session
    assert session[-3:] == ["--", "box", "sh -s"] and "-N" not in " ".join(session)
    assert SshTunnel.holding("ssh://me@nowhere") is None
    assert tunnel.run("true", timeout=1).returncode == 255  # not running: no session


# --- what the UI makes of it -----------------------------------------------------------------


def remote_report(host: str = "box") -> GpuReport:
    out = reading(
        fixture("query_gpu_h100x2_550.csv"),
        apps=fixture("compute_apps_h100x2_550.csv"),
        procs=h100_procs(),
    )
    return RemoteGpuSampler(f"ssh://root@{host}").report_from(out)


def fleet(url: str, gpu: GpuReport | None) -> FleetSnapshot:
    return FleetSnapshot(engine=EngineStatus(url=url, reachable=True), gpu=gpu, sampled=True)


def test_fleets_keep_each_machine_s_gpus_and_combine_them():
    local = "unix:///var/run/docker.sock"
    remote, tcp = "ssh://root@box", "tcp://other:2376"
    here = GpuReport(state="no-library", message="no NVML here")
    fleets = Fleets([(local, None), (remote, None), (tcp, None)])
    fleets.update(0, fleet(local, here))
    fleets.update(1, fleet(remote, remote_report()))
    combined = fleets.update(2, fleet(tcp, here))  # the shared local sampler's: not that host's
    assert combined.gpu is not None and combined.gpu.state == "no-library"
    assert [o.host for o in combined.gpu.others] == [host_label(remote)]
    shown = fleets.shown
    assert shown[1].gpu is not None and shown[1].gpu.host == host_label(remote)
    assert shown[2].gpu is None
    # One ssh:// engine alone: its own machine's report, named as the table names it.
    alone = Fleets([(remote, None)]).update(0, fleet(remote, remote_report()))
    assert alone.gpu is not None and alone.gpu.host == host_label(remote)
    # Only remote engines: the first one's report leads.
    two = Fleets([(remote, None), ("ssh://root@b2", None)])
    two.update(0, fleet(remote, remote_report()))
    both = two.update(1, fleet("ssh://root@b2", remote_report("b2")))
    assert both.gpu is not None and both.gpu.host == "root@box"
    assert [o.host for o in both.gpu.others] == ["root@b2"]


class PanelApp(App):
    def compose(self) -> ComposeResult:
        yield GpuPanel(id="gpus")


async def test_the_panel_shows_the_remote_host_s_devices_under_its_name():
    local = GpuReport(state="no-library", message="no NVML here")
    remote = remote_report()
    critical = remote.devices[0]
    assert critical.mem_percent is not None and critical.mem_percent > 85
    combined = replace(local, others=(replace(remote, host="root@box"),))
    async with PanelApp().run_test(size=(140, 40)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.remote_hosts = ("root@box", "other:2376")
        panel.update_report(combined, {CID_A: "vllm-a", CID_B: "llama"})
        await pilot.pause()
        state = str(panel.query_one("#gpu-state", Static).render())
        assert state.splitlines() == [
            "this machine: GPU: no NVML library: no NVML here",
            "other:2376: no GPU data here; it needs aitop on that host",
        ]
        header = str(panel.query_one(".gpu-host", Static).render())
        assert header == "root@box: 2 GPUs · driver 550.90.07 · nvidia-smi over ssh 42 ms"
        blocks = list(panel.query(".gpu-block"))
        assert len(blocks) == 2
        title = str(blocks[0].query_one(".gpu-title", Static).render())
        assert title == "GPU 0 · NVIDIA H100 80GB HBM3"
        clocks = str(blocks[1].query_one(".gpu-clocks", Static).render())
        assert clocks == "CLK 345/1980 MHz max"
        holders = str(blocks[0].query_one(".gpu-holders", Static).render())
        assert holders == "vllm-a 53.0G · llama 17.0G · host:Xorg 1.0G"
        assert str(blocks[0].query_one(".gpu-mem", Static).render()) == "MEM 71.1G/79.6G 89%"
        assert blocks[0].query_one(".gpu-mem").has_class("-warning")
        # The status line's pressure warnings name the other machine's GPU by its host.
        warnings = pressure_warnings(combined, {CID_A: "vllm-a"}, Thresholds(88.0, 88.5))
        assert warnings == [
            "root@box: GPU 0 (NVIDIA H100 80GB HBM3) memory at 89% (71.1G of 79.6G): "
            "most is held by container vllm-a: 53.0G"
        ]
        # The same blocks are updated in place on the next reading.
        panel.update_report(replace(combined, taken_at=1.0), {})
        await pilot.pause()
        assert list(panel.query(".gpu-block")) == blocks
        # A lone ssh:// engine: its report leads, under its host's name.
        panel.remote_hosts = ("root@box",)
        panel.update_report(replace(remote, host="root@box"), {})
        await pilot_wait_for(
            pilot,
            lambda: str(panel.query_one("#gpu-state", Static).render()).startswith(
                "root@box: 2 GPUs"
            ),
            what="the remote host's line",
        )
        await pilot.pause()
        assert not panel.query(".gpu-host") and len(panel.query(".gpu-block")) == 2


# --- end to end over a private sshd --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gpu_sshd(tmp_path, monkeypatch, engine):
    """A private sshd on loopback in front of this machine's engine (MaxSessions 1), whose
    logins find a stand-in `nvidia-smi` first on their PATH (`<tmp>/remote-bin`).

    Yields (ssh:// URL of the engine, the stand-in's folder, sshd's log).
    """
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(binary) or shutil.which("ssh") is None or os.geteuid() != 0:
        unavailable(
            "sshd", "an ssh:// engine test needs root, sshd and ssh (openssh-server/-client)"
        )
    if not engine.url.startswith("unix://"):
        unavailable("local engine", "the ssh:// engine is this machine's engine's socket")
    port = _free_port()
    for name in ("hostkey", "clientkey"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True
        )
    shutil.copy(tmp_path / "clientkey.pub", tmp_path / "authorized_keys")
    remote_bin = tmp_path / "remote-bin"
    remote_bin.mkdir()
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/hostkey\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nMaxSessions 1\nPidFile {tmp_path}/sshd.pid\n"
        f"SetEnv PATH={remote_bin}:/usr/local/bin:/usr/bin:/bin\n"
    )
    (tmp_path / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {tmp_path}/clientkey\n"
        f"  UserKnownHostsFile {tmp_path}/known_hosts\n  StrictHostKeyChecking accept-new\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {tmp_path}/ssh_config "$@"\n')
    wrapper.chmod(0o755)
    os.makedirs("/run/sshd", exist_ok=True)
    log = tmp_path / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(tmp_path / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=10, what=f"sshd on port {port}")
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        yield f"ssh://root@127.0.0.1:{port}{engine.url[len('unix://') :]}", remote_bin, log
    finally:
        proc.terminate()
        proc.wait(10)


def _logins(log: Path) -> int:
    return log.read_text(errors="replace").count("Accepted publickey")


def test_an_ssh_engine_s_gpus_and_container_memory_over_its_one_connection(
    engine, run_container, gpu_sshd
):
    url, remote_bin, log = gpu_sshd
    cid_a, cid_b = run_container(), run_container()
    pid_a = int(engine.inspect(cid_a)["State"]["Pid"])
    pid_b = int(engine.inspect(cid_b)["State"]["Pid"])
    host_pid = os.getpid()  # a process of the host (this test), in no container
    stand_in(remote_bin, {412233: pid_a, 412301: pid_b, 5871: host_pid})
    config = Config()
    (monitor,) = monitors_for([Engine(url)], config)
    monitor.start()
    try:

        def with_gpus() -> FleetSnapshot | None:
            snap = monitor.snapshot()
            rows = {c.info.id: c for c in snap.containers}
            if snap.gpu is None or cid_a not in rows or not rows[cid_a].gpus:
                return None
            return snap

        snap = wait_for(with_gpus, timeout=30, what="the remote GPUs and the containers' share")
        gpu = snap.gpu
        assert gpu is not None and gpu.state == STATE_OK and gpu.host == "127.0.0.1"
        assert [d.name for d in gpu.devices] == ["NVIDIA H100 80GB HBM3"] * 2
        assert gpu.attribution_possible, gpu.attribution_reason
        rows = {c.info.id: c for c in snap.containers}
        assert [(g.index, g.mem_bytes) for g in rows[cid_a].gpus] == [(0, 54272 * MIB)]
        assert [(g.index, g.mem_bytes) for g in rows[cid_b].gpus] == [(0, 17408 * MIB)]
        by_pid = {p.pid: p for p in gpu.processes}
        assert by_pid[pid_a].container_id == cid_a and by_pid[pid_b].container_id == cid_b
        assert by_pid[host_pid].origin == ORIGIN_HOST and by_pid[host_pid].container_id is None
        # `aitop snapshot --json` writes a host's GPUs from its monitor's snapshot.
        entry = host_to_json(snap, include_all=True)
        assert [g["uuid"] for g in entry["gpus"]] == [d.uuid for d in gpu.devices]
        procs = {p["pid"]: p["container_id"] for p in entry["gpus"][0]["processes"]}
        assert procs[pid_a] == cid_a and procs[pid_b] == cid_b
        assert entry["gpu_status"] is not None and entry["gpu_status"]["state"] == STATE_OK
        gpus_json = {c["id"]: c["gpus"] for c in entry["containers"]}
        assert gpus_json[cid_a][0]["mem_bytes"] == 54272 * MIB

        # The readings go on at the GPU interval, as sessions of the engine's one login.
        calls = remote_bin / "calls"
        wait_for(lambda: len(calls.read_text().splitlines()) >= 6, timeout=10, what="readings")
        assert _logins(log) == 1

        def reaches(state: str, within: float) -> GpuReport:
            start = time.monotonic()

            def there() -> GpuReport | None:
                report = monitor.snapshot().gpu
                return report if report is not None and report.state == state else None

            report = wait_for(
                there, timeout=within, what=lambda: f"the state {state}: {monitor.snapshot().gpu}"
            )
            return report if time.monotonic() - start < within else pytest.fail("late")

        bound = config.refresh.gpu + 5.0 + 2.0  # one interval, the deadline, the tick
        (remote_bin / "mode").write_text("garbage")
        assert "\x1b" not in reaches(STATE_ERROR, bound).message
        (remote_bin / "mode").write_text("hang")
        hung = reaches(STATE_TIMEOUT, bound)
        assert hung.nvml_seconds < 5.0 and "stopped there" in hung.message
        (remote_bin / "mode").write_text("nodriver")
        assert "NVIDIA kernel driver" in reaches(STATE_NO_DRIVER, bound).message
        # A machine without a driver (or nvidia-smi) is asked again every INIT_RETRY s only.
        lasting = INIT_RETRY + 5.0 + 2.0
        (remote_bin / "mode").write_text("")
        reaches(STATE_OK, lasting)
        (remote_bin / "nvidia-smi").rename(remote_bin / "gone")
        reaches(STATE_NO_SMI, bound)
        (remote_bin / "gone").rename(remote_bin / "nvidia-smi")
        # Last: a call that returns but leaves a child holding the output open. Only the
        # deadline ends that reading, and the session it held ends with the child.
        # The next reading waits (TIMEOUT_PAUSE deadlines): the state stands meanwhile.
        (remote_bin / "mode").write_text("wedged")
        wedged = reaches(STATE_TIMEOUT, lasting + 1.0)
        assert "within 5 s" in wedged.message and wedged.nvml_seconds < 5.5
        time.sleep(2 * config.refresh.gpu)
        assert monitor.snapshot().gpu == wedged
        assert _logins(log) == 1
        assert monitor.snapshot().engine.reachable
    finally:
        monitor.stop()


def test_a_dead_master_means_no_reading_not_a_second_login(gpu_sshd):
    url, remote_bin, log = gpu_sshd
    stand_in(remote_bin)
    engine = Engine(url)
    try:
        engine.version()
        sampler = RemoteGpuSampler(url, min_interval=0)
        report = sampler.sample()
        assert report is not None and report.ok and _logins(log) == 1
        tunnel = SshTunnel.holding(url)
        assert tunnel is not None
        control = tunnel.control_path()
        assert control is not None
        # Sessions take turns (MaxSessions 1); the wait for one counts against the deadline.
        busy = threading.Thread(target=tunnel.run, args=("sleep 2",), kwargs={"timeout": 5})
        busy.start()
        time.sleep(0.3)
        start = time.monotonic()
        waited = tunnel.run("true", timeout=1.0)
        assert waited.timed_out and time.monotonic() - start < 1.5
        busy.join()
        assert tunnel.run("echo hi", timeout=5).stdout == b"hi\n"
        engine.reset()  # the forward (the master) ends
        assert SshTunnel.holding(url) is None
        gone = sampler.sample()
        assert gone is not None and gone.state == STATE_UNREACHABLE
        # Even at a stale control socket, a session does not log in by itself.
        start = time.monotonic()
        done = subprocess.run(tunnel.session_argv(control, "true"), capture_output=True, timeout=10)
        assert done.returncode == 255 and time.monotonic() - start < 5
        assert _logins(log) == 1
    finally:
        engine.close()


async def test_aitop_on_an_ssh_engine_shows_that_host_s_gpus_and_who_holds_them(
    engine, run_container, gpu_sshd
):
    """The app as `aitop --host ssh://...` starts it: the GPU pane shows the remote host's
    devices under its name, and the table the GPU memory its containers hold there."""
    url, remote_bin, _ = gpu_sshd
    cid = run_container()
    pid = int(engine.inspect(cid)["State"]["Pid"])
    stand_in(remote_bin, {412233: pid})
    name = engine.inspect(cid)["Name"].lstrip("/")
    config = Config()
    app = AitopApp(monitors_for([Engine(url)], config), config=config, show_all=True)
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.query_one(ContainerTable)
        table.filter_text = name

        def held() -> bool:
            return cid in table.row_keys and any(
                cell.plain == f"0:{format_bytes(54272 * MIB)}" for cell in table.get_row(cid)
            )

        def said() -> str:
            row = [c.plain for c in table.get_row(cid)] if cid in table.row_keys else None
            return f"GPU memory in {row} ({app.query_one('#gpu-state', Static).render()})"

        await pilot_wait_for(pilot, held, timeout=40, what=said)
        state = str(app.query_one("#gpu-state", Static).render())
        assert state.startswith(f"{host_label(url)}: 2 GPUs · driver 550.90.07 · nvidia-smi")
        assert "no GPU data" not in state
        blocks = list(app.query(".gpu-block"))
        assert len(blocks) == 2
        holders = str(blocks[0].query_one(".gpu-holders", Static).render())
        assert holders.startswith(f"{name} 53.0G")
