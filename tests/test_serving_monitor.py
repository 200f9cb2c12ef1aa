"""Model servers through the monitor, on the real engine: FleetMonitor publishes each container's
serving reading and its history, `aitop snapshot --json` carries exactly the issue's keys (null
for a container that serves nothing), recorded fleets keep them, and the logs of servers whose
pages say nothing tell their state: loading, ready, dead until the next start (issue 11, issue
18 item 3). The stand-in servers are busybox httpd in the serving rig's image
(tests/fixtures/serving/rig.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.serving.rig import (
    docker_exec,
    serve_command,
    server_command,
)
from tests.helpers import Latest, wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.monitor import INSPECT_WORKERS, FleetMonitor
from tui.fleet.recording import dump, load
from tui.fleet.serving.logstate import MAX_BYTES, PER_ROUND, TAIL_LINES
from tui.fleet.serving.types import JSON_KEYS
from tui.fleet.snapshot import snapshot_json

Run = Callable[..., str]

VLLM_WORDS = ("vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "9001")


@pytest.fixture
def live(engine: Engine) -> Iterator[tuple[FleetMonitor, Latest]]:
    latest = Latest()
    monitor = FleetMonitor(Engine(engine.url), on_snapshot=latest)
    monitor.start()
    yield monitor, latest
    monitor.stop()


def serving_of(latest: Latest, cid: str, check: Callable[[Any], bool], timeout: float = 15.0):
    """The container's published serving reading once `check(reading)` holds."""

    def seen() -> Any:
        c = latest.container(cid)
        return c.serving if c is not None and c.serving is not None and check(c.serving) else None

    return wait_for(seen, timeout, what=lambda: f"serving of {cid[:12]}: {latest.container(cid)}")


def test_the_monitor_publishes_readings_and_history(engine, run_server, live):
    monitor, latest = live
    server = run_server(server_command(serve_command(9001, metrics="vllm_v1.metrics"), *VLLM_WORDS))
    plain = run_server(["sleep", "3600"], labels={"aitop.model": "org/not-a-server"})
    reading = serving_of(latest, server, lambda r: r.state.name == "ready")
    assert reading.kind == "vllm"
    assert reading.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert reading.requests_running == 24 and reading.requests_waiting is not None
    assert reading.kv_cache_percent is not None
    history = wait_for(
        lambda: (c := latest.container(server)) is not None and len(c.serving_history) >= 2,
        what="two points of history",
    )
    assert history
    entry = latest.container(server)
    assert entry is not None and entry.serving_history[-1].kv_cache_percent is not None
    # A container that serves nothing (and logs nothing telling) has no reading.
    time.sleep(1.0)  # the passing of time: scrapes and a log round that find nothing
    other = latest.container(plain)
    assert other is not None and other.serving is None and other.serving_history == ()

    # Gone: its reading goes with it.
    engine.remove(server)
    wait_for(lambda: latest.container(server) is None, what="the removed server gone")
    assert server not in {c.info.id for c in monitor.snapshot().containers}


def test_a_stopped_server_has_no_reading(engine, run_server, live):
    _, latest = live
    server = run_server(server_command(serve_command(9001, metrics="vllm_v1.metrics"), *VLLM_WORDS))
    serving_of(latest, server, lambda r: r.state.name == "ready")
    engine.stop_container(server, timeout=1)
    wait_for(
        lambda: (
            (c := latest.container(server)) is not None
            and c.info.state == "exited"
            and c.serving is None
        ),
        what="the stopped server without a reading",
    )


def test_snapshot_json_has_serving_with_exactly_the_issues_keys(engine, run_server, session_tag):
    server = run_server(server_command(serve_command(9001, metrics="vllm_v1.metrics"), *VLLM_WORDS))
    plain = run_server(["sleep", "3600"])
    wait_for(lambda: engine.inspect(server)["State"]["Running"], what="the server running")
    began = time.monotonic()
    doc = snapshot_json(Engine(engine.url), include_all=True)
    took = time.monotonic() - began
    (host,) = doc["hosts"]
    mine = {c["id"]: c for c in host["containers"]}
    entry = mine[server]["serving"]
    assert entry is not None and tuple(entry) == JSON_KEYS
    assert entry["kind"] == "vllm" and entry["state"] == "ready"
    assert entry["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert entry["requests_running"] == 24
    # It waited for the first rates (the page does not move: zero, not unknown).
    assert entry["generation_tokens_per_s"] == 0.0 and entry["prompt_tokens_per_s"] == 0.0
    assert mine[plain]["serving"] is None
    assert "serving" in mine[plain]
    assert took < 15, f"snapshot --json took {took:.1f} s"
    json.dumps(doc)  # plain JSON all the way down


def test_a_recorded_fleet_keeps_its_serving_readings(engine, run_server, live):
    _, latest = live
    server = run_server(server_command(serve_command(9001, metrics="vllm_v1.metrics"), *VLLM_WORDS))
    serving_of(latest, server, lambda r: r.state.name == "ready")
    wait_for(
        lambda: (c := latest.container(server)) is not None and len(c.serving_history) >= 2,
        what="history",
    )
    snap = latest.snapshot
    assert snap is not None
    again = load(json.loads(json.dumps(dump(snap))))
    assert again == snap
    entry = next(c for c in again.containers if c.info.id == server)
    assert entry.serving is not None and entry.serving.state.name == "ready"


# --- what the logs say ------------------------------------------------------------------------

STEPS = (
    'echo "Loading safetensors checkpoint shards: 10% Completed | 1/10"',
    'echo "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"',
    'echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"',
    'echo "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"',
)


def stepped_log() -> str:
    """A shell script that prints each of STEPS once /step<n> exists (a test touches them)."""
    parts = []
    for n, step in enumerate(STEPS):
        if n:
            parts.append(f"until [ -f /step{n} ]; do sleep 0.1; done")
        parts.append(step)
    parts.append("exec sleep 3600")
    return "; ".join(parts)


def test_the_log_tells_loading_ready_and_dead_until_the_next_start(engine, run_server, live):
    """A model container with no server aitop can read: its log is the only witness."""
    _, latest = live
    cid = run_server(["sh", "-c", stepped_log()], labels={"aitop.model": "org/log-only"})
    loading = serving_of(latest, cid, lambda r: r.state.name == "loading")
    assert loading.kind == "unknown" and loading.state.detail == "from its log"
    assert loading.since is not None and abs(loading.since - time.time()) < 60
    docker_exec(cid, "touch /step1")
    serving_of(latest, cid, lambda r: r.state.name == "ready")
    docker_exec(cid, "touch /step2")
    dead = serving_of(latest, cid, lambda r: r.state.name == "unhealthy")
    assert "CUDA out of memory" in dead.state.detail
    # Ready again in the same run: still unhealthy until the container starts anew.
    docker_exec(cid, "touch /step3")
    time.sleep(2 * 2.0 + 0.5)  # the passing of time: two log rounds read the ready line
    entry = latest.container(cid)
    assert entry is not None and entry.serving is not None
    assert entry.serving.state.name == "unhealthy"
    # The next run loads again (the steps start over: their files go first).
    docker_exec(cid, "rm /step1 /step2 /step3")
    engine.restart_container(cid, timeout=1)
    serving_of(
        latest, cid, lambda r: r.state.name == "loading" and r.since > dead.since, timeout=20
    )


def test_the_log_stands_in_for_an_unreachable_server(engine, run_server, live):
    """Labelled with a port nothing listens on: the pages say unreachable (and why), the log
    says ready; the state is ready and the reason stays in the detail."""
    _, latest = live
    script = f"{STEPS[1]}; exec sleep 3600"
    cid = run_server(
        ["sh", "-c", script], labels={"aitop.model": "org/m", "aitop.metrics-port": "9009"}
    )
    reading = serving_of(latest, cid, lambda r: r.state.name == "ready")
    assert reading.state.detail.startswith("from its log; metrics: ")
    assert "9009" in reading.state.detail


def test_log_reads_are_bounded(engine, run_server, live):
    """A model container that floods its log: each read takes at most MAX_BYTES, the rounds
    run on the monitor's engine pool (no thread of their own) and read at most PER_ROUND."""
    monitor, latest = live
    flood = (
        "i=0; while [ $i -lt 4000 ]; do echo 'request served tokens=128 padding padding'; "
        "i=$((i+1)); done; exec sleep 3600"
    )
    ids = [run_server(["sh", "-c", flood], labels={"aitop.model": "org/flood"}) for _ in range(3)]
    wait_for(lambda: monitor.log_counts.reads >= 6, timeout=20, what="two rounds of log reads")
    counts = monitor.log_counts
    assert counts.bytes <= counts.reads * MAX_BYTES
    assert counts.lines <= counts.reads * TAIL_LINES
    assert counts.reads <= counts.rounds * PER_ROUND
    names = [t.name for t in threading.enumerate()]
    assert not any(n.startswith("aitop-logs") for n in names), names
    engine_threads = [n for n in names if n.startswith("aitop-engine")]
    assert len(engine_threads) <= INSPECT_WORKERS
    # Nothing telling in those lines: no state made up.
    for cid in ids:
        entry = latest.container(cid)
        assert entry is not None and entry.serving is None


def test_snapshot_json_reads_the_logs_of_servers_that_say_nothing(engine, run_server):
    cid = run_server(["sh", "-c", f"{STEPS[0]}; exec sleep 3600"], labels={"aitop.model": "org/m"})
    wait_for(lambda: engine.inspect(cid)["State"]["Running"], what="running")
    wait_for(lambda: b"Loading" in _logs(engine, cid), what="the load line written")
    doc = snapshot_json(Engine(engine.url))
    entry = next(c for c in doc["hosts"][0]["containers"] if c["id"] == cid)
    serving = entry["serving"]
    assert serving is not None and serving["state"] == "loading: from its log"
    assert serving["kind"] == "unknown"


def _logs(engine: Engine, cid: str) -> bytes:
    with engine.open_logs(cid, follow=False, tail=10) as stream:
        return b"".join(payload for _, payload in stream.read())
