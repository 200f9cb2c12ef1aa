"""The demo fleet: `aitop demo up` serves real-format model-server pages that aitop reads as it
reads any server (no special case), `demo up` twice leaves the fleet alone, `demo down` removes
it; `aitop demo replay` shows the recorded fleet without an engine (a real terminal, tmux)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from tests.helpers import aitop, wait_for
from tui.fleet.demo import (
    DEMO_LABEL,
    LLAMA,
    MISTRAL,
    RECORDED,
    RECORDING,
    RecordedFleet,
    demo_down,
    demo_fleet,
    demo_up,
    image_files,
    recorded_fleet,
)
from tui.fleet.engine.client import Engine
from tui.fleet.models import FleetSnapshot
from tui.fleet.monitor import FleetMonitor
from tui.fleet.serving.discover import discover
from tui.fleet.serving.types import ServingReading


@pytest.fixture(scope="module")
def demo(engine: Engine) -> Iterator[Engine]:
    """The demo fleet, up for this module's tests and removed after them."""
    if engine.ids_with_label(DEMO_LABEL):
        pytest.skip("a demo fleet is running here; the tests would replace it")
    demo_up(engine, say=lambda _msg: None)
    try:
        yield engine
    finally:
        demo_down(engine, say=lambda _msg: None)
    assert engine.ids_with_label(DEMO_LABEL) == [], "demo down left containers"


def _serving_by_name(monitor: FleetMonitor) -> dict[str, ServingReading | None]:
    return {c.info.name: c.serving for c in monitor.snapshot().containers}


def _all_read(readings: dict[str, ServingReading | None]) -> bool:
    """Every server ready (or, the dead one, unhealthy) with its rates and percentiles."""
    want = {
        f"aitop-demo-{n}"
        for n in ("llama-1", "llama-2", "llama-3", "mistral-1", "mistral-2", "ollama")
    }
    for name in want:
        r = readings.get(name)
        if r is None or r.state.name != "ready":
            return False
        if name.endswith("ollama"):
            continue
        if not r.generation_tokens_per_s or r.e2e_p95_s is None:
            return False
        if "llama" in name and r.ttft_p95_s is None:
            return False
    dead = readings.get("aitop-demo-unhealthy")
    return dead is not None and dead.state.name == "unhealthy"


def test_the_demo_fleet_serves_and_aitop_reads_it_as_any_server(demo: Engine):
    by_name = {
        demo.inspect(cid)["Name"].lstrip("/"): demo.inspect(cid)
        for cid in demo.ids_with_label(DEMO_LABEL)
    }
    assert set(by_name) == {spec.name for spec in demo_fleet()}
    # Discovery reads the command line and the label, as for a real server.
    kinds = {name: discover(attrs, pid=attrs["State"]["Pid"]) for name, attrs in by_name.items()}
    llama, mistral, ollama = (
        kinds["aitop-demo-llama-1"],
        kinds["aitop-demo-mistral-1"],
        kinds["aitop-demo-ollama"],
    )
    assert llama is not None and llama.kind is not None and llama.kind.name == "vllm"
    assert llama.found_by == "flag" and llama.prefix == "/cgi-bin"
    assert mistral is not None and mistral.kind is not None and mistral.kind.name == "tgi"
    assert mistral.api is not None and mistral.api.port == 80
    assert ollama is not None and ollama.kind is not None and ollama.kind.name == "ollama"
    assert ollama.found_by == "env" and ollama.prefix == ""
    assert kinds["aitop-demo-redis"] is None and kinds["aitop-demo-burner"] is None

    monitor = FleetMonitor(demo)
    try:
        monitor.connect()
        monitor.resync()

        def read() -> dict[str, ServingReading | None] | None:
            monitor.sample()
            monitor.poll_serving()
            readings = _serving_by_name(monitor)
            return readings if _all_read(readings) else None

        readings = wait_for(read, timeout=90, step=1.0, what="every demo server read")
        # The counters keep moving, and only up: the rates stay, and no restart is seen.
        for _ in range(4):
            time.sleep(1.0)  # the passing of time: the pages move with it
            later = read()
            assert later is not None, _serving_by_name(monitor)
            for r in later.values():
                assert r is None or r.state.detail != "restarted: counters reset"
    finally:
        monitor.stop()

    vllm = [readings[f"aitop-demo-llama-{n}"] for n in (1, 2, 3)]
    for r in vllm:
        assert r is not None and r.kind == "vllm" and r.model == LLAMA
        assert r.generation_tokens_per_s and r.prompt_tokens_per_s
        assert r.requests_running is not None and r.kv_cache_percent is not None
        assert r.ttft_p50_s is not None and r.itl_p50_s is not None
    kv = [r.kv_cache_percent for r in vllm if r is not None]
    # Replicas differ: the busiest is past the 85 % mark, the idlest well below half.
    assert kv[0] is not None and kv[0] >= 85 and kv[2] is not None and kv[2] < 40
    busy, quick = vllm[0], vllm[2]
    assert busy is not None and quick is not None
    assert busy.ttft_p95_s is not None and quick.ttft_p95_s is not None
    assert busy.ttft_p95_s > quick.ttft_p95_s
    for n in (1, 2):
        tgi = readings[f"aitop-demo-mistral-{n}"]
        assert tgi is not None and tgi.kind == "tgi" and tgi.model == MISTRAL
        assert tgi.generation_tokens_per_s and tgi.requests_running is not None
        assert tgi.kv_cache_percent is None  # TGI does not say
    served = readings["aitop-demo-ollama"]
    assert served is not None and served.kind == "ollama" and served.loaded_models
    assert [m.name for m in served.loaded_models] == ["llama3.1:8b", "nomic-embed-text:latest"]
    assert served.loaded_models[0].vram_bytes == 6654289920
    dead = readings["aitop-demo-unhealthy"]
    assert dead is not None and "503" in dead.state.detail


def test_a_second_demo_up_leaves_the_fleet_and_says_so(demo: Engine):

    before = sorted(demo.ids_with_label(DEMO_LABEL))
    again = aitop("demo", "up", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout and "aitop demo down" in again.stdout
    assert sorted(demo.ids_with_label(DEMO_LABEL)) == before


def test_the_image_is_rebuilt_when_its_scripts_change():
    from tui.fleet import demo as module

    tag = module.demo_image()
    assert tag.startswith("aitop-demo:") and tag != "aitop-demo:latest"
    files = image_files()
    assert {"bin/vllm", "bin/text-generation-launcher", "bin/ollama"} <= set(files)
    # Every histogram table's shares only grow, ending at the whole (+Inf).
    for path, (content, _mode) in files.items():
        if "/tables/" in path and "." not in path.rsplit("/", 1)[-1]:
            shares = [int(word.rsplit(":", 1)[1]) for word in content.decode().split()]
            assert shares == sorted(shares) and shares[-1] == 1000, path


# --- the recorded fleet -------------------------------------------------------------------------


def test_the_recording_ships_as_package_data_with_gpus_and_serving():
    from importlib import resources

    assert resources.files("tui.fleet").joinpath(RECORDING).is_file()
    snap = recorded_fleet()
    assert snap.engine.version.endswith(RECORDED)
    names = {c.info.name for c in snap.containers}
    assert {"aitop-demo-llama-1", "aitop-demo-mistral-1", "aitop-demo-ollama"} <= names
    assert snap.gpu is not None and len(snap.gpu.devices) == 2
    serving = [c.serving for c in snap.containers if c.serving is not None]
    assert any(r.generation_tokens_per_s for r in serving)
    assert any(r.loaded_models for r in serving)


def test_the_recorded_fleet_publishes_once_and_has_no_engine():
    got: list[FleetSnapshot] = []
    source = RecordedFleet(recorded_fleet())
    source.on_snapshot = got.append
    source.start()
    source.start()
    assert source.engine is None and len(got) == 1 and got[0] is source.snapshot()


def test_demo_replay_needs_a_terminal():

    out = aitop("demo", "replay", "--host", "unix:///nonexistent/docker.sock")
    assert out.returncode == 2 and "needs a terminal" in out.stderr


def test_demo_replay_shows_the_fleet_refuses_changes_and_quits(tmux):
    # No engine anywhere: the replay must not need one.
    term = tmux(
        f"DOCKER_HOST=unix:///nonexistent/docker.sock {sys.executable} -m tui demo replay",
        width=160,
        height=40,
    )
    screen = term.wait_for("aitop-demo-llama-1", timeout=60)
    assert "aitop-demo-mistral-1" in screen and "Traceback" not in screen
    screen = term.wait_for("(recorded)")
    # The recorded GPUs are the recording machine's, shown as this one's.
    assert "GPU 1" in screen and "no GPU data here" not in screen
    term.keys("s")
    screen = term.wait_for("no engine to stop (a recorded fleet)")
    term.keys("q")
    screen = term.wait_for("EXIT=0")
    assert "Traceback" not in screen


def test_no_engine_names_the_replay_in_its_one_line(tmux):
    term = tmux(f"{sys.executable} -m tui --host unix:///nonexistent/docker.sock", width=300)
    screen = term.wait_for("EXIT=2")
    assert "no Docker engine at unix:///nonexistent/docker.sock" in screen
    assert "`aitop demo replay`" in screen and "Traceback" not in screen


def test_demo_up_without_an_engine_names_the_replay():

    out = aitop("demo", "up", "--host", "unix:///nonexistent/docker.sock")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "socket does not exist" in out.stderr and "aitop demo replay" in out.stderr


def test_the_help_names_replay():

    out = aitop("demo", "--help")
    assert out.returncode == 0 and "replay" in out.stdout and "no engine" in out.stdout
