"""Files kept open between ticks: fresh content on every read, closed once no longer read."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.metrics.cgroups import CgroupReader, RawSample
from tui.fleet.metrics.openfiles import OpenFiles


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_kept_file_shows_new_content_and_a_kernel_file_regenerates(tmp_path: Path) -> None:
    files = OpenFiles()
    path = tmp_path / "counter"
    path.write_bytes(b"1\n")
    assert files.read(str(path)) == b"1\n"
    path.write_bytes(b"22\n")  # same inode, rewritten in place
    assert files.read(str(path)) == b"22\n"
    assert len(files) == 1
    # A seq file of the kernel is generated anew on each read from offset 0.
    stat = f"/proc/{os.getpid()}/schedstat"
    first = files.read(stat)
    # Sleeping switches this thread out and back in: its timeslice count (third field) grows
    # for sure, where a few ms of work could fall between two scheduler ticks and show nothing.
    time.sleep(0.01)
    assert files.read(stat) != first
    files.close()


def test_files_not_read_during_a_tick_are_closed(tmp_path: Path) -> None:
    files = OpenFiles()
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    before = open_fds()
    files.read(str(a))
    files.read(str(b))
    assert open_fds() == before + 2
    files.end_tick()
    files.read(str(a))
    files.end_tick()  # b was not read in this tick: closed
    assert len(files) == 1
    assert open_fds() == before + 1
    files.close()
    assert open_fds() == before


def test_a_restarted_container_is_read_afresh_and_a_removed_one_leaves_nothing_open(
    engine: Engine, run_container: Callable[..., str]
) -> None:
    """Docker removes a container's cgroup on stop and makes a new one on start: the kept
    descriptors of the old one go stale (ENODEV) and must be replaced, not read as zeros."""
    cid = run_container("dd if=/dev/zero of=/dev/shm/hold bs=1M count=16 && sleep 600")
    reader = CgroupReader()

    def sample() -> RawSample:
        pid = engine.inspect(cid)["State"]["Pid"]
        paths = reader.locate(pid, cid)
        assert paths is not None
        raw = reader.read(paths, time.monotonic())
        reader.end_tick()
        return raw

    wait_for(lambda: (sample().mem_usage or 0) >= 16 << 20)
    # cpu, memory usage and stat, block I/O, network; the limit on one tick in ten.
    assert 5 <= len(reader._files) <= 6
    subprocess.run(["docker", "restart", "-t", "0", cid], check=True, capture_output=True)
    wait_for(lambda: (sample().mem_usage or 0) >= 16 << 20)
    # The stale cgroup descriptors were replaced, not added to; the old process's network
    # file stays open until `keep_ticks` ticks pass without a read of it.
    assert 5 <= len(reader._files) <= 7
    subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    for _ in range(reader._files.keep_ticks):  # ticks without a read: its files are closed
        reader.end_tick()
    assert len(reader._files) == 0


def test_without_spare_descriptors_files_are_opened_for_each_read(tmp_path: Path) -> None:
    files = OpenFiles()
    files._cap = 0  # as when the process's descriptor limit is nearly used up
    path = tmp_path / "x"
    path.write_bytes(b"42")
    before = open_fds()
    assert files.read(str(path)) == b"42"
    assert len(files) == 0
    assert open_fds() == before
