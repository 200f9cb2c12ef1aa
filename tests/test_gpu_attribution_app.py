"""GPU attribution end to end: real containers' host PIDs reported by recorded NVML readings
reach the right rows of the fleet table and the JSON snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures.nvml.fake_nvml import FakeNvml
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.monitor import FleetMonitor
from widgets.container_table import COLUMN_KEYS, ContainerTable


async def test_gpu_memory_lands_on_the_rows_of_the_containers_that_hold_it(
    engine, run_container, session_tag
):
    a = run_container("sleep 600", labels={"aitop.model": "tp-model"})
    b = run_container("sleep 600", labels={"aitop.model": "small-model"})
    pids = {
        "$a": engine.inspect(a)["State"]["Pid"],
        "$b": engine.inspect(b)["State"]["Pid"],
        "$host": os.getpid(),
    }
    sampler = GpuSampler(FakeNvml.from_fixture("h100_a100.json", pids))
    monitor = FleetMonitor(Engine(engine.url), gpu=sampler)
    app = AitopApp([monitor], config=Config())
    async with app.run_test(size=(220, 40)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
        gpu_col = COLUMN_KEYS.index("gpu_mem")
        await pilot_wait_for(
            pilot, lambda: a in table.row_keys and str(table.get_row(a)[gpu_col]), timeout=15
        )
        assert str(table.get_row(a)[gpu_col]) == "0:18.2G 1:18.1G"
        assert str(table.get_row(b)[gpu_col]) == "1:54.0G"
        snap = app.last_snapshot
        assert snap is not None and snap.gpu is not None
        host = [p for p in snap.gpu.processes if p.pid == os.getpid()]
        assert host and all(p.container_id is None for p in host)


def test_json_snapshot_has_gpu_keys_and_assigned_gpus(engine, image, session_tag):
    created = subprocess.run(
        [
            "docker",
            "create",
            "--label",
            f"{TEST_LABEL}={session_tag}",
            "--gpus",
            "device=1",
            image,
            "sleep",
            "600",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tui", "snapshot", "--json", "--all"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        host = json.loads(out.stdout)["hosts"][0]
        assert isinstance(host["gpus"], list)
        assert host["gpu_status"]["state"] in ("ok", "no-library", "no-driver", "no-gpu")
        entry = next(c for c in host["containers"] if c["id"] == created)
        assert entry["gpus_assigned"] == ["1"]
        assert entry["is_model"] is True  # it requests a GPU
        assert entry["gpus"] == []
    finally:
        engine.remove(created)
