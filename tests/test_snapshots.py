"""SVG snapshots pinning the look. Each docstring says what a person should see.

The fleet is the demo fleet recorded from a real engine (tests/fixtures/demo_fleet.json);
update the SVGs with `pytest tests/test_snapshots.py --snapshot-update` and look at them.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.fleet_fixtures import (
    ReplayMonitor,
    demo_fleet,
    demo_fleet_with_gpus,
    replay_app,
    several_engines,
    unreachable,
)
from tui.app import AitopApp
from tui.config import Config
from tui.fleet.events import FleetEvent
from tui.fleet.models import ContainerInfo, FleetSnapshot
from tui.fleet.serving.types import HistoryPoint, ServingReading, ServingState


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_fleet_table(snap_compare):
    """Host gauges on top (CPU and memory sparklines, two core bars, load); the fleet table
    with the CPU burner at 100 %, the llama group (3/3 running) and mistral group (2/2)
    under bold header rows with their replicas indented, the unhealthy server in red; the
    serving columns filled from the demo's stand-in servers (llama "3/3 ready" with its
    requests and tok/s summed, KV 87.1% in the warning colour; the unhealthy server
    "unhealthy" in red); numeric columns as wide as their formats (CPU% fits 1600.0%); the
    columns in the default order (NAME, STATE, CPU%, MEM / LIMIT, the serving figures, then
    MODEL and the rest), no GPU columns (no GPUs here), MODEL, IMAGE, PORTS and
    PROJECT/SERVICE cut with `…` to fit 200 columns, the names whole; the status line names
    the engine and says 8 model containers of 9 are shown."""
    app = replay_app(demo_fleet())
    assert snap_compare(app, terminal_size=(200, 30))


def test_fleet_table_with_gpus(snap_compare, tmp_path):
    """A GPU pane with one block per device (H100 and A100: SM, memory, temperature, power,
    fan N/A, clocks, holders); GPU 1's memory above 90 % in the critical colour, and the status
    line warns that GPU 1 is under memory pressure naming aitop-demo-llama-1. In the table,
    llama-1 holds "0:18.2G 1:..." with its SM share, mistral-1 holds GPU 1, and llama-2 shows
    its reserved GPU 0 as idle; GPU MEM, GPU% and GPUS come right after MEM / LIMIT."""
    app = replay_app(demo_fleet_with_gpus(tmp_path))
    assert snap_compare(app, terminal_size=(220, 40))


def test_all_containers_filtered_and_sorted_by_memory(snap_compare):
    """All containers (the plain redis one too) filtered by "demo-", sorted by memory,
    largest first (MEM / LIMIT ▼: a figure sorts biggest first the first time); the filter
    box stays open at the bottom with "demo-"."""
    app = replay_app(demo_fleet())
    keys = ["a", "slash", *"demo-", "enter", *[">"] * 3]
    assert snap_compare(app, terminal_size=(200, 30), press=keys)


def test_engine_unreachable(snap_compare):
    """The last known fleet stays on screen while the status line, in the error colour,
    says the engine is unreachable and when aitop retries."""
    snap = demo_fleet()
    app = replay_app(snap, unreachable(snap))
    assert snap_compare(app, terminal_size=(200, 30))


def test_small_terminal(snap_compare):
    """At 80x24 the table shows what a glance needs first: NAME (long names cut with `…`),
    STATE, CPU%, MEM / LIMIT, SERVING and TOK/S (no GPU columns: no GPUs here); the rest is a
    `→` away.
    The footer ends with whole keys (`u Start`), then the command palette's."""
    app = replay_app(demo_fleet())
    assert snap_compare(app, terminal_size=(80, 24))


def test_small_terminal_with_gpus(snap_compare, tmp_path):
    """At 80x24 on the two-GPU machine: NAME, STATE, CPU%, MEM / LIMIT and GPU MEM (llama-1
    "0:18.2G 1:18.1G", mistral-1 "1:54.0G") on the first screen."""
    app = replay_app(demo_fleet_with_gpus(tmp_path))
    assert snap_compare(app, terminal_size=(80, 24))


def test_help_screen(snap_compare):
    """`?` over the fleet: a dialog titled "Keys" in front of the dimmed fleet. First the
    fleet table's own keys (cursor keys, home/end, page keys, `>` `<` sort, `I` invert), then
    "Everywhere": tab, copy, `^q q` quit, `/` filter, `esc`, `l` logs, `v` the model server,
    `?` help, `^p` palette,
    the container actions `u s r p K D e i + - = space`, and last `A` for all containers,
    remapped from `a` by the configuration's keymap. Each row ends with its binding id in a
    muted colour; a hint at the bottom says how to remap keys."""
    app = replay_app(demo_fleet(), config=Config(keymap={"toggle-all": "A"}))
    assert snap_compare(app, terminal_size=(110, 60), press=["question_mark"])


def test_two_engines_and_one_unreachable(snap_compare):
    """Three engines at 200x60: no HOST column (the host rows say it), the rows grouped by host,
    each host under a bold "▣" host row. First the local socket (/var/run/docker.sock: Docker
    20.10.24+dfsg1, 8/8 running, stats: cgroup) with the demo fleet as in test_fleet_table;
    then me@gpu-box (stats: api) with its own aitop-demo/llama group (2 replicas) and a
    burner, the group row being a separate row from the local llama group; last
    10.0.0.7:2376, whose host row says "unreachable, retrying in 8s" and "unreachable" in the
    error colour, with nothing under it. The GPU pane says the GPU data of me@gpu-box and
    10.0.0.7:2376 needs aitop on that host; the status line warns, first, that 10.0.0.7:2376
    is unreachable and names the three engines."""
    app = AitopApp([ReplayMonitor(fleet) for fleet in several_engines()], config=Config())
    assert snap_compare(app, terminal_size=(200, 60))


def serving_fleet() -> FleetSnapshot:
    """The demo fleet with model servers: llama-1 a busy vLLM (KV 91 %, TTFT p95 2.5 s, its
    queue grown over a minute of history), llama-2 loading for 2 minutes, llama-3 stale, the
    mistral replicas two calm TGI servers; the Ollama and the unhealthy vLLM keep the readings
    the demo fleet was recorded with."""
    fleet = demo_fleet()
    now = fleet.taken_at
    busy = ServingReading(
        kind="vllm",
        state=ServingState("ready"),
        url="http://172.18.0.3:8000/metrics",
        model="meta-llama/Llama-3.1-8B-Instruct",
        requests_running=3,
        requests_waiting=12,
        kv_cache_percent=91.0,
        prompt_tokens_per_s=5012.0,
        generation_tokens_per_s=1234.4,
        ttft_p50_s=0.8,
        ttft_p95_s=2.5,
        itl_p50_s=0.021,
        e2e_p95_s=14.0,
        errors_per_s=0.0,
        preemptions_per_s=0.25,
        since=now - 3600,
    )
    history = tuple(
        HistoryPoint(
            now - 60 + i,
            900.0 + 300.0 * abs(((i % 20) - 10) / 10),
            i // 5,
            60.0 + i / 2,
            1.0 + i / 40,
        )
        for i in range(61)
    )
    calm = ServingReading(
        kind="tgi",
        state=ServingState("ready"),
        model="mistralai/Mistral-7B-Instruct-v0.3",
        requests_running=2,
        requests_waiting=0,
        kv_cache_percent=40.0,
        generation_tokens_per_s=100.0,
        ttft_p95_s=0.3,
    )
    readings = {
        "aitop-demo-llama-1": (busy, history),
        "aitop-demo-llama-2": (
            ServingReading(
                kind="vllm", state=ServingState("loading", "loading model"), since=now - 125
            ),
            (),
        ),
        "aitop-demo-llama-3": (
            ServingReading(
                kind="vllm",
                state=ServingState("unreachable", "connection refused"),
                requests_running=1,
                requests_waiting=0,
                kv_cache_percent=10.0,
                generation_tokens_per_s=40.0,
                stale=True,
            ),
            (),
        ),
        "aitop-demo-mistral-1": (calm, ()),
        "aitop-demo-mistral-2": (dataclasses.replace(calm, generation_tokens_per_s=50.0), ()),
    }
    return dataclasses.replace(
        fleet,
        containers=tuple(
            dataclasses.replace(
                c, serving=readings[c.info.name][0], serving_history=readings[c.info.name][1]
            )
            if c.info.name in readings
            else c
            for c in fleet.containers
        ),
    )


def test_fleet_table_with_model_servers(snap_compare):
    """At 240x30 the serving columns filled: llama-1 "ready" in the ok colour, "3/12" with 12
    in the warning colour (its queue grew), 1234 tok/s, KV 91.0% and TTFT95 2.50s as warnings;
    llama-2 "loading" in the warning colour; llama-3 "unreachable stale" with its old figures
    muted; the mistral replicas ready at 100 and 50 tok/s. The llama header says "1/3 ready",
    mistral's "2/2 ready" with 4/0 requests and 150 tok/s; the Ollama row "ready" with no
    figures of these kinds (`-`), the unhealthy vLLM "unhealthy" in red; the burner's serving
    cells are blank."""
    app = replay_app(serving_fleet())
    assert snap_compare(app, terminal_size=(240, 30))


def test_serving_view(snap_compare):
    """`v` on llama-1: a dialog titled "Model server · aitop-demo-llama-1 · ready" over the
    dimmed fleet; every field of the reading (kind vllm, state ready, since 1h00m ago, the URL,
    the model, 3 running, 12 queued "(growing)" and KV 91.0% and TTFT p95 2.50s in the warning
    colour, token rates, latencies, errors and preemptions, loaded_models "-"), the container's
    CPU, memory and GPU memory; below, sparklines of a minute of generated tok/s (a saw), queue
    (a staircase), KV cache and TTFT (rising) with their latest values, and the container's
    CPU and memory (one point: the view keeps them from when it opened)."""
    app = replay_app(serving_fleet())
    keys = ["down", "down", "v"]
    assert snap_compare(app, terminal_size=(160, 48), press=keys)


class EventfulMonitor(ReplayMonitor):
    """The recorded fleet with a few engine events of a day long gone (2023-11-14, so that
    they read as month-day on any day the test runs)."""

    def recent_events(self) -> tuple[FleetEvent, ...]:
        snap = self.snapshot()
        by_name = {c.info.name: c.info for c in snap.containers}
        unhealthy = by_name["aitop-demo-unhealthy"]
        llama = by_name["aitop-demo-llama-2"]
        at = 1_700_000_000.0

        def event(after: float, who: ContainerInfo, action: str, detail: str = "") -> FleetEvent:
            return FleetEvent(at + after, who.id, who.name, action, detail, who.image)

        return (
            event(50, unhealthy, "health_status", "unhealthy"),
            event(40, llama, "start"),
            event(39, llama, "die", "exit 137"),
            event(38, llama, "oom"),
            event(10, unhealthy, "start"),
            event(0, unhealthy, "create"),
        )


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_events_view(snap_compare, size):
    """`h`: the events view over the fleet, newest first: the unhealthy server's failed health
    check on top (in the warning colour), llama-2's OOM kill and its exit 137 (warning colour)
    and its start again, then the unhealthy server's start and create; times as 11-14 22:13
    (another day than today); the filter box above, the heading counting 6 events and 3
    deaths or failed checks."""
    app = AitopApp([EventfulMonitor(demo_fleet())], config=Config())
    assert snap_compare(app, terminal_size=size, press=["h"])


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_container_up_close(snap_compare, size):
    """Enter on the burner: its name, image and state in the heading with "history starts
    now" (a recorded fleet has one reading), the CPU chart's label near 100 %, memory against
    its 256M limit, network and disk rates, "processes: a recorded fleet has no processes to
    list" above an empty process table, and no details (no engine to inspect)."""
    assert snap_compare(replay_app(demo_fleet()), terminal_size=size, press=["enter"])
