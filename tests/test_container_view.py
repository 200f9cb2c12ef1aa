"""One container up close (issue 17, item 1): bounded histories kept for every running
container, its processes (a known PID tree on the real engine) with the GPU memory each
holds, a signal to one process that asks first, and the view that shows them."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from tests.helpers import pilot_wait_for, wait_for
from tui.container_view import ContainerController
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.gpu.types import ContainerGpu, GpuProcess, GpuReport
from tui.fleet.history import FleetHistory
from tui.fleet.models import (
    ContainerInfo,
    ContainerSnapshot,
    ContainerStats,
    EngineStatus,
    FleetSnapshot,
)
from tui.fleet.monitor import FleetMonitor
from tui.fleet.processes import container_processes, parse_top, signal_number, signal_process
from tui.screens.container import ContainerScreen
from tui.screens.signal import SignalScreen

MIB = 1024 * 1024


def info(cid: str = "c1", *, state: str = "running", started: float = 100.0) -> ContainerInfo:
    return ContainerInfo(cid, cid, "img", "m", True, state, started_at=started)


def fleet(at: float, *containers: ContainerSnapshot) -> FleetSnapshot:
    return FleetSnapshot(
        EngineStatus("unix:///test.sock", True), containers=containers, taken_at=at
    )


def reading(cid: str, cpu: float, *, blk: int = 0, gpus=(), **kw) -> ContainerSnapshot:
    stats = ContainerStats(cpu_percent=cpu, mem_bytes=10 * MIB, blk_read_bytes=blk, **kw)
    return ContainerSnapshot(info(cid), stats, gpus)


def test_histories_are_bounded_oldest_first_and_rates_come_from_counters():
    history = FleetHistory(points=4)
    for n in range(6):
        history.record(fleet(1000.0 + n, reading("c1", float(n), blk=n * 4096)))
    series = history.series("c1")
    assert series.cpu_percent == (2.0, 3.0, 4.0, 5.0)
    assert series.times == (1002.0, 1003.0, 1004.0, 1005.0)
    assert series.blk_read_rate == (4096.0, 4096.0, 4096.0, 4096.0)
    assert series.mem_bytes == (10.0 * MIB,) * 4


def test_a_reading_within_the_gap_is_not_a_new_point():
    history = FleetHistory()
    history.record(fleet(1000.0, reading("c1", 1.0)))
    history.record(fleet(1000.2, reading("c1", 1.0)))  # an event's publish, same figures
    history.record(fleet(1001.0, reading("c1", 2.0)))
    assert history.series("c1").cpu_percent == (1.0, 2.0)


def test_nothing_is_kept_past_a_container_or_its_run():
    history = FleetHistory()
    history.record(fleet(1.0, reading("c1", 1.0), reading("c2", 1.0)))
    history.record(fleet(2.0, reading("c1", 2.0), reading("c2", 2.0)))
    stopped = replace(reading("c2", 0.0), info=info("c2", state="exited"))
    history.record(fleet(3.0, reading("c1", 3.0), stopped))
    assert history.series("c2").times == () and len(history) == 1
    restarted = replace(reading("c1", 9.0), info=info("c1", started=200.0))
    history.record(fleet(4.0, restarted))
    assert history.series("c1").cpu_percent == (9.0,)


def test_engines_keep_their_own_containers():
    history = FleetHistory()
    history.record(fleet(1.0, reading("a", 1.0)), scope="0")
    history.record(fleet(1.0, reading("b", 5.0)), scope="1")
    history.record(fleet(2.0, reading("a", 2.0)), scope="0")  # b is not this engine's
    assert history.series("b").cpu_percent == (5.0,)
    assert history.series("a").cpu_percent == (1.0, 2.0)


def test_a_gpu_taken_on_later_starts_with_gaps():
    history = FleetHistory()
    history.record(fleet(1.0, reading("c1", 1.0)))
    gpu = ContainerGpu(0, "GPU-0", 512 * MIB, 30.0)
    history.record(fleet(2.0, reading("c1", 1.0, gpus=(gpu,))))
    (held,) = history.series("c1").gpus
    assert held.index == 0
    assert held.mem_bytes == (None, 512.0 * MIB) and held.util_percent == (None, 30.0)


TOP = {
    "Titles": ["PID", "PPID", "%CPU", "RSS", "ELAPSED", "COMMAND"],
    "Processes": [
        ["4100", "4000", "97.5", "2048000", "3725", "python -m vllm.entrypoints.openai.api_server"],
        ["4200", "4100", "0.1", "1024", "12", "sleep \x1b]0;owned\x07 10"],
        ["junk", "1", "x", "y", "z", "not a pid"],
    ],
}


def test_processes_get_their_gpu_memory_and_safe_commands():
    gpu = GpuReport(
        "ok",
        processes=(
            GpuProcess(4100, "c1", 30 * 1024 * MIB, 80.0, 0),
            GpuProcess(4100, "c1", 2 * 1024 * MIB, 10.0, 1),
            GpuProcess(9999, None, MIB, None, 0),
        ),
    )
    main, child = parse_top(TOP, gpu)
    assert (main.pid, main.ppid, main.cpu_percent) == (4100, 4000, 97.5)
    assert main.rss_bytes == 2048000 * 1024 and main.elapsed_s == 3725
    assert main.gpu_mem_bytes == 32 * 1024 * MIB and main.gpus == (0, 1)
    assert child.gpu_mem_bytes is None and child.gpus == ()
    assert "\x1b" not in child.command and "\x07" not in child.command


@pytest.mark.parametrize(
    ("given", "number"),
    [
        *[("SIGTERM", 15), ("term", 15), ("9", 9), ("64", 64)],
        *[("0", None), ("65", None), ("SIGNOPE", None), ("", None)],
    ],
)
def test_signal_names_and_numbers(given, number):
    assert signal_number(given) == number


@pytest.fixture
def tree(run_container) -> str:
    """A container whose shell has two sleeping children."""
    cid = run_container("sleep 1000 & sleep 1001 & wait")
    return cid


def commands(engine: Engine, cid: str) -> dict[str, int]:
    return {p.command: p.pid for p in container_processes(engine, cid)}


def test_a_known_pid_tree_and_a_signal_to_one_process(engine, tree):
    found: dict[str, int] = wait_for(
        lambda: commands(engine, tree) if len(container_processes(engine, tree)) == 3 else None
    )
    shell = next(pid for command, pid in found.items() if command.startswith("sh -c"))
    by_pid = {p.pid: p for p in container_processes(engine, tree)}
    assert {by_pid[found["sleep 1000"]].ppid, by_pid[found["sleep 1001"]].ppid} == {shell}
    assert all(p.rss_bytes and p.rss_bytes > 0 for p in by_pid.values())
    # The host sees these PIDs: the same process there.
    assert os.path.exists(f"/proc/{found['sleep 1001']}")
    signal_process(engine, tree, found["sleep 1001"], "SIGTERM")
    wait_for(lambda: "sleep 1001" not in commands(engine, tree), what="sleep 1001 to end")
    assert set(commands(engine, tree)) == {
        next(c for c in found if c.startswith("sh")),
        "sleep 1000",
    }


def test_a_signal_is_refused_for_a_pid_not_in_the_container_and_in_read_only(engine, tree):
    with pytest.raises(EngineError, match="no longer in"):
        signal_process(engine, tree, os.getpid(), "SIGTERM")
    read_only = Engine(engine.url)
    read_only.read_only = True
    pid = wait_for(lambda: commands(engine, tree).get("sleep 1000"))
    with pytest.raises(EngineError, match="read-only mode"):
        signal_process(read_only, tree, pid, "SIGKILL")
    assert "sleep 1000" in commands(engine, tree)


class ViewApp(App[None]):
    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        super().__init__()
        self.view = ContainerController(self, lambda _cid: engine, read_only=read_only)

    def compose(self) -> ComposeResult:
        yield Static("fleet")

    def on_container_screen_signal_requested(
        self, message: ContainerScreen.SignalRequested
    ) -> None:
        self.view.ask_signal(message)


def sampled(engine: Engine, rounds: int) -> list[FleetSnapshot]:
    """Snapshots of a real monitor, a second apart (it is not started: no threads)."""
    monitor = FleetMonitor(engine)
    try:
        monitor.connect()
        monitor.resync()
        snapshots = []
        for _ in range(rounds):
            monitor.sample()
            snapshots.append(monitor.snapshot())
            time.sleep(0.6)
        return snapshots
    finally:
        monitor.stop()


async def test_the_view_opens_on_the_past_lists_processes_and_signals_one(engine, tree):
    app = ViewApp(engine)
    snapshots = sampled(engine, 4)
    for snapshot in snapshots:
        app.view.record(snapshot, "0")
    container = next(c for c in snapshots[-1].containers if c.info.id == tree)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.view.open(container)
        await pilot_wait_for(pilot, lambda: len(screen.processes) == 3, timeout=15)
        # The past is there at once: several readings of this container.
        assert len(screen.history.times) >= 3
        labels = screen.chart_labels()
        assert any(label.startswith("CPU ") for label in labels)
        assert any(label.startswith("Memory ") and "M" in label for label in labels)
        heading = str(screen.query_one("#heading", Static).render())
        assert container.info.name in heading and "running" in heading
        await pilot_wait_for(
            pilot, lambda: "Restart policy" in {s.title for s in screen.details}, timeout=15
        )
        table = screen.query_one("#processes", DataTable)
        target = next(p for p in screen.processes if p.command == "sleep 1001")
        table.move_cursor(row=[p.pid for p in screen.processes].index(target.pid))
        await pilot.press("k")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, SignalScreen))
        await pilot.press("enter")  # the first offered: SIGTERM
        await pilot_wait_for(
            pilot, lambda: all(p.command != "sleep 1001" for p in screen.processes), timeout=15
        )
        assert len(screen.processes) == 2
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: app.view.screen is None)


async def test_read_only_hides_the_signal(engine, tree):
    app = ViewApp(engine, read_only=True)
    (snapshot,) = sampled(engine, 1)
    container = next(c for c in snapshot.containers if c.info.id == tree)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.view.open(container)
        await pilot_wait_for(pilot, lambda: len(screen.processes) == 3, timeout=15)
        await pilot.press("k")
        await pilot.pause()
        assert app.screen is screen and screen.check_action("signal", ()) is False
        assert "sleep 1001" in commands(engine, tree)
