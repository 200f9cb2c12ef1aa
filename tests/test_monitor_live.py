"""The monitor against the real engine: figures match what the kernel accounts, and events
reach the published snapshots within a second."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import tui.fleet.monitor as monitor_mod
from tests.fixtures.nvml.fake_nvml import PIDS, SlowInitNvml, fake_proc, load_reading
from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor


class Recorder:
    """Collects published snapshots; `until()` waits for one that satisfies a predicate."""

    def __init__(self) -> None:
        self.latest: FleetSnapshot | None = None
        self.changed = threading.Condition()

    def __call__(self, snap: FleetSnapshot) -> None:
        with self.changed:
            self.latest = snap
            self.changed.notify_all()

    def until(self, predicate, timeout: float = 5.0) -> float:
        """Seconds until a snapshot satisfied `predicate`; fails after `timeout`."""
        start = time.monotonic()
        with self.changed:
            while self.latest is None or not predicate(self.latest):
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    pytest.fail(f"no snapshot satisfied the condition within {timeout}s")
                self.changed.wait(left)
        return time.monotonic() - start


def find(snap: FleetSnapshot, cid: str):
    return next((c for c in snap.containers if c.info.id == cid), None)


@pytest.fixture
def live(engine: Engine):
    rec = Recorder()
    mon = FleetMonitor(Engine(engine.url), on_snapshot=rec)
    mon.start()
    rec.until(lambda s: s.engine.reachable)
    yield rec
    mon.stop()


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of one process, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_a_container_burning_one_core_reads_about_100_percent(engine, run_container):
    cid = run_container("while :; do :; done")
    pid = engine.inspect(cid)["State"]["Pid"]
    mon = FleetMonitor(engine)
    mon.connect()
    mon.resync()
    mon.sample()
    before, started = _cpu_ticks(pid), time.monotonic()
    time.sleep(2.0)  # the passing of time: a CPU share is measured over an interval
    mon.sample()
    truth = (_cpu_ticks(pid) - before) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started)
    stats = find(mon.snapshot(), cid).stats
    assert stats.source == "cgroup"
    # What the kernel says the loop got, as aitop says it: on a quiet machine one whole core.
    assert abs(stats.cpu_percent - 100 * truth) <= 10, (stats.cpu_percent, truth)
    if truth >= 0.9:
        assert 80.0 <= stats.cpu_percent <= 110.0
    else:  # other work shared the cores: the loop did not get a whole one
        assert stats.cpu_percent >= 25.0


def test_memory_of_a_container_holding_48_mib_reads_48_mib(engine, run_container):
    # tmpfs pages are charged to the container and are not inactive file cache.
    cid = run_container("dd if=/dev/zero of=/dev/shm/hold bs=1M count=48 && sleep 600")
    mon = FleetMonitor(engine)
    mon.connect()

    def measured():
        mon.resync()
        mon.sample()
        c = find(mon.snapshot(), cid)
        return c.stats.mem_bytes if c and (c.stats.mem_bytes or 0) >= 48 << 20 else None

    mem = wait_for(measured, timeout=10)
    assert 48 << 20 <= mem <= (48 << 20) + (8 << 20)


def test_idle_container_reads_near_zero_cpu_and_has_network_counters(engine, run_container):
    cid = run_container("sleep 600")
    mon = FleetMonitor(engine)
    mon.connect()
    mon.resync()
    mon.sample()
    time.sleep(1.0)  # the passing of time: a CPU share is measured over an interval
    mon.sample()
    stats = find(mon.snapshot(), cid).stats
    assert stats.cpu_percent is not None and stats.cpu_percent < 5.0
    assert stats.net_rx_bytes is not None and stats.net_rx_rate is not None


def test_start_stop_and_remove_reach_the_snapshot_within_a_second(live, run_container):
    cid = run_container("sleep 600")
    assert live.until(lambda s: (c := find(s, cid)) is not None and c.info.state == "running") < 1
    docker("kill", cid)
    assert live.until(lambda s: find(s, cid).info.state == "exited") < 1
    docker("start", cid)
    assert live.until(lambda s: find(s, cid).info.state == "running") < 1
    docker("rm", "-f", cid)
    assert live.until(lambda s: find(s, cid) is None) < 1


def test_health_changes_reach_the_snapshot(live, run_container):
    cid = run_container(
        "sleep 600",
        healthcheck={
            "test": ["CMD", "test", "-f", "/ok"],
            "interval": 500_000_000,
            "timeout": 500_000_000,
            "retries": 1,
        },
    )
    live.until(lambda s: (c := find(s, cid)) is not None and c.info.health == "unhealthy", 10)
    docker("exec", cid, "touch", "/ok")
    live.until(lambda s: find(s, cid).info.health == "healthy", 10)


def test_restart_count_and_model_label_are_read(engine, run_container):
    cid = run_container(
        "exit 3",
        labels={"aitop.model": "tiny-model"},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    mon = FleetMonitor(engine)
    mon.connect()

    def restarted():
        mon.resync()
        c = find(mon.snapshot(), cid)
        return c if c and c.info.restart_count == 2 and c.info.state == "exited" else None

    c = wait_for(restarted, timeout=20)
    assert c.info.is_model and c.info.model == "tiny-model"
    assert c.info.exit_code == 3


def test_the_listing_is_published_before_the_inspects_and_carries_figures(engine, run_container):
    cid = run_container("sleep 600", labels={"aitop.model": "listed-model"})
    published: list[FleetSnapshot] = []
    mon = FleetMonitor(Engine(engine.url), on_snapshot=published.append)
    mon.connect()
    mon.resync(on_listed=lambda: published.append(mon.snapshot()))
    first = next(c for c in published[0].containers if c.info.id == cid)
    # From the listing alone: name, state and model, but no PID yet.
    assert first.info.model == "listed-model" and first.info.state == "running"
    assert first.info.pid == 0
    mon.sample()

    def inspected_with_figures():
        # The inspects run aside; a CPU share needs a second sample after the first.
        mon.sample()
        full = find(mon.snapshot(), cid)
        return full if full.info.pid > 0 and full.stats.cpu_percent is not None else None

    full = wait_for(inspected_with_figures, timeout=10, step=0.1)
    assert full.info.started_at is not None


def test_a_cli_start_samples_first_and_inspects_once_released(engine, run_container, monkeypatch):
    # The CLI's start: it waits for the first sample, loads the UI while the second is taken,
    # and releases the inspects once the first frame is drawn.
    monkeypatch.setattr(monitor_mod, "DETAILS_WAIT", 60.0)
    cid = run_container("sleep 600", labels={"aitop.model": "cli-start"})
    mon = FleetMonitor(Engine(engine.url))
    mon.start(defer_details=True)
    try:
        assert mon.wait_for_first_sample(20)
        first = find(mon.snapshot(), cid)
        # Read from the cgroup files on the first tick, from the listing alone (no PID yet).
        assert first.stats.mem_bytes is not None and first.info.pid == 0
        wait_for(lambda: find(mon.snapshot(), cid).stats.cpu_percent is not None, 10)
        assert mon.snapshot().sampled and find(mon.snapshot(), cid).info.pid == 0
        mon.release_details()
        wait_for(lambda: find(mon.snapshot(), cid).info.pid > 0, 10)
    finally:
        mon.stop()


def test_first_figures_do_not_wait_for_a_slow_nvml(engine, run_container, tmp_path):
    cid = run_container("sleep 600")
    fake = SlowInitNvml(load_reading("h100_a100.json"), PIDS)
    mon = FleetMonitor(Engine(engine.url), gpu=GpuSampler(fake, proc_root=fake_proc(tmp_path)))
    mon.start()
    try:
        assert fake.entered.wait(20)
        ours = wait_for(lambda: find(mon.snapshot(), cid), 10)
        wait_for(lambda: find(mon.snapshot(), cid).stats.cpu_percent is not None, 10)
        assert ours.stats.mem_bytes is not None
        assert mon.snapshot().gpu is None  # NVML still initialising on its own thread
        fake.go_on.set()
        report = wait_for(lambda: mon.snapshot().gpu, 10)
        assert report.state == "ok" and len(report.devices) == 2
    finally:
        fake.go_on.set()
        mon.stop()
