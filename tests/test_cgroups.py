"""Reading container figures from cgroup files: v2 + systemd and v1 + cgroupfs file trees
built the way the kernel lays them out, and the real engine's files on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from tui.fleet.metrics.cgroups import IDLE_FULL_EVERY, CgroupReader
from tui.fleet.metrics.stats import compute_stats

CID = "a" * 64


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_proc(tmp: Path, pid: int, cgroup: str, mounts: str) -> Path:
    proc = tmp / "proc"
    write(proc / str(pid) / "cgroup", cgroup)
    write(proc / "self" / "mounts", mounts)
    write(
        proc / str(pid) / "net" / "dev",
        "Inter-|   Receive |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes\n"
        "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
        "  eth0: 5000 10 0 0 0 0 0 0 7000 12 0 0 0 0 0 0\n",
    )
    return proc


def systemd_v2_container(tmp_path: Path, files: dict[str, str]):
    """A container's cgroup v2 scope under systemd (`docker-<id>.scope`) holding `files`, the
    /proc of its process 4242, and a reader located on it: (scope dir, proc root, reader, paths)."""
    base = tmp_path / "sys" / "system.slice" / f"docker-{CID}.scope"
    for name, text in files.items():
        write(base / name, text)
    proc = fake_proc(
        tmp_path,
        4242,
        f"0::/system.slice/docker-{CID}.scope\n",
        f"cgroup2 {tmp_path / 'sys'} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n",
    )
    reader = CgroupReader(proc_root=str(proc))
    paths = reader.locate(4242, CID)
    assert paths is not None and paths.version == 2
    return base, proc, reader, paths


def test_cgroup_v2_systemd_layout(tmp_path):
    base, _, reader, paths = systemd_v2_container(
        tmp_path,
        {
            "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
            "memory.current": "104857600\n",
            "memory.max": "max\n",
            "memory.stat": "anon 73400320\nfile 31457280\ninactive_file 20971520\n",
            "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n",
        },
    )
    first = reader.read(paths, at=10.0)
    assert first.cpu_ns == 2_500_000_000
    assert (first.mem_usage, first.mem_inactive_file, first.mem_limit) == (
        104857600,
        20971520,
        None,
    )
    assert (first.blk_read, first.blk_write) == (4096, 8192)
    assert (first.net_rx, first.net_tx) == (5000, 7000)

    write(base / "cpu.stat", "usage_usec 3000000\n")
    second = reader.read(paths, at=11.0)
    stats = compute_stats(second, first, mem_total=8 << 30, source="cgroup")
    # 0.5 s of CPU over 1 s of wall time: 50 % of one core; memory less inactive file cache.
    assert stats.cpu_percent == 50.0
    assert stats.mem_bytes == 104857600 - 20971520
    assert stats.mem_limit_bytes == 8 << 30


def test_an_idle_container_is_read_in_full_one_tick_in_five_and_its_rates_span_the_gap(
    tmp_path,
):
    base, proc, reader, paths = systemd_v2_container(
        tmp_path,
        {
            "cpu.stat": "usage_usec 1000000\n",
            "memory.current": "1000\n",
            "memory.max": "max\n",
            "memory.stat": "inactive_file 0\n",
            "io.stat": "",
        },
    )
    prev = reader.read(paths, at=0.0)
    # No CPU time used: memory and network are carried over, not read (the file changed).
    write(base / "memory.current", "2000\n")
    samples = [prev]
    for tick in range(1, IDLE_FULL_EVERY):
        samples.append(reader.read(paths, at=float(tick), prev=samples[-1]))
        assert samples[-1].mem_usage == 1000 and samples[-1].idle_ticks == tick
        stats = compute_stats(samples[-1], samples[-2], mem_total=8 << 30, source="cgroup")
        assert (stats.cpu_percent, stats.net_rx_rate) == (0.0, 0.0)
    # The fifth tick reads everything; 5,000 more bytes came in over the 5 s since the last
    # full reading: 1,000 B/s, not 5,000 B/s in the last second.
    net = proc / "4242" / "net" / "dev"
    net.write_text(net.read_text().replace("eth0: 5000", "eth0: 10000"))
    full = reader.read(paths, at=float(IDLE_FULL_EVERY), prev=samples[-1])
    assert full.mem_usage == 2000 and full.idle_ticks == 0 and full.io_at is None
    stats = compute_stats(full, samples[-1], mem_total=8 << 30, source="cgroup")
    assert stats.net_rx_rate == 1000.0
    # Any CPU time at all: read in full at once.
    write(base / "cpu.stat", "usage_usec 1000001\n")
    write(base / "memory.current", "3000\n")
    busy = reader.read(paths, at=6.0, prev=full)
    assert busy.mem_usage == 3000


def test_cgroup_v1_cgroupfs_layout_with_combined_cpu_mount(tmp_path):
    sys_root = tmp_path / "sys"
    cpu = sys_root / "cpu,cpuacct" / "docker" / CID
    mem = sys_root / "memory" / "docker" / CID
    blk = sys_root / "blkio" / "docker" / CID
    write(cpu / "cpuacct.usage", "1000000000\n")
    write(mem / "memory.usage_in_bytes", "50000000\n")
    write(mem / "memory.limit_in_bytes", "268435456\n")
    write(mem / "memory.stat", "cache 1000\ntotal_inactive_file 10000000\n")
    write(blk / "blkio.throttle.io_service_bytes", "8:0 Read 100\n8:0 Write 200\nTotal 300\n")
    mounts = (
        f"cgroup {sys_root / 'cpu,cpuacct'} cgroup rw,cpu,cpuacct 0 0\n"
        f"cgroup {sys_root / 'memory'} cgroup rw,memory 0 0\n"
        f"cgroup {sys_root / 'blkio'} cgroup rw,blkio 0 0\n"
    )
    cgroup = (
        f"4:memory:/docker/{CID}\n3:blkio:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n"
        f"0::/docker/{CID}\n"
    )
    reader = CgroupReader(proc_root=str(fake_proc(tmp_path, 7, cgroup, mounts)))
    paths = reader.locate(7, CID)
    assert paths is not None and paths.version == 1
    raw = reader.read(paths, at=0.0)
    assert raw.cpu_ns == 1_000_000_000
    stats = compute_stats(raw, None, mem_total=8 << 30, source="cgroup")
    assert stats.mem_bytes == 40_000_000
    assert stats.mem_limit_bytes == 268435456
    assert stats.cpu_percent is None  # one reading cannot give a rate
    assert (stats.blk_read_bytes, stats.blk_write_bytes) == (100, 200)


def test_a_pid_whose_cgroup_does_not_name_the_container_is_refused(tmp_path):
    proc = fake_proc(tmp_path, 9, "0::/user.slice/session-1.scope\n", "cgroup2 /x cgroup2 rw 0 0\n")
    assert CgroupReader(proc_root=str(proc)).locate(9, CID) is None


def test_reads_the_real_engines_files(engine, run_container):
    cid = run_container("sleep 60", mem_limit="64m")
    pid = engine.inspect(cid)["State"]["Pid"]
    reader = CgroupReader()
    paths = reader.locate(pid, cid)
    assert paths is not None, Path(f"/proc/{pid}/cgroup").read_text()
    raw = reader.read(paths, at=0.0)
    assert raw.cpu_ns is not None and raw.mem_usage is not None
    assert raw.mem_limit == 64 * 1024 * 1024
    assert raw.net_rx is not None  # its own network namespace
    assert os.path.exists(f"/proc/{pid}")


def test_a_container_is_found_by_id_before_its_pid_is_known(tmp_path):
    base = tmp_path / "sys" / "system.slice" / f"docker-{CID}.scope"
    write(base / "cgroup.procs", "4242\n4243\n")
    write(base / "cpu.stat", "usage_usec 1000\n")
    write(base / "memory.current", "4096\n")
    proc = fake_proc(
        tmp_path,
        4242,
        f"0::/system.slice/docker-{CID}.scope\n",
        f"cgroup2 {tmp_path / 'sys'} cgroup2 rw 0 0\n",
    )
    reader = CgroupReader(proc_root=str(proc))
    paths = reader.find(CID)
    assert paths is not None
    assert (paths.version, paths.pid, paths.memory) == (2, 4242, str(base))
    assert reader.read(paths, at=0.0).cpu_ns == 1_000_000
    assert reader.find("b" * 64) is None


def test_the_real_engines_container_is_found_by_id(engine, run_container):
    cid = run_container("sleep 60")
    pid = engine.inspect(cid)["State"]["Pid"]
    paths = CgroupReader().find(cid)
    assert paths is not None and paths.pid == pid
