"""Model servers in real containers on the real engine: busybox httpd serves each server's
real-format pages (tests/fixtures/serving, SOURCES.md), and a ServingPool fed with the engine's
inspect data discovers, scrapes and reads them, as the monitor will.

Covered: discovery by each route (label, flag, published port, listening socket only,
127.0.0.1 inside the container, with and without the right to enter it), loading -> ready
(a closed port, llama.cpp's 503), a dead server (unhealthy, then gone and stale), metrics off,
a restart (counters reset), renamed metrics, TGI's /info, Triton's metrics port, Ollama's
/api/ps, a huge page, a page that never ends, a page that drips, a slow server, a hostile page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.serving.rig import (
    HERE,
    docker_exec,
    serve_command,
    server_command,
    set_route,
)
from tui.fleet.engine.client import Engine
from tui.fleet.serving.discover import Target, discover
from tui.fleet.serving.scrape import ServingPool
from tui.fleet.serving.types import ServingReading

CGI_METRICS = {"aitop.metrics-path": "/cgi-bin/srv/metrics"}

Run = Callable[..., str]


@pytest.fixture
def pool() -> Iterator[ServingPool]:
    serving = ServingPool(may_enter_netns=True)
    yield serving
    serving.close()


def watch(pool: ServingPool, engine: Engine, cid: str) -> dict[str, Any]:
    attrs = engine.inspect(cid)
    pool.watch(cid, attrs, int(attrs["State"]["Pid"]))
    return attrs


def settle(
    pool: ServingPool,
    cid: str,
    until: Callable[[ServingReading], bool],
    timeout: float = 15.0,
) -> ServingReading:
    """Poll the pool (as the monitor's sampler does) until the reading satisfies `until`."""
    deadline = time.monotonic() + timeout
    seen: ServingReading | None = None
    while time.monotonic() < deadline:
        pool.poll()
        time.sleep(0.15)
        seen = pool.reading(cid)
        if seen is not None and until(seen):
            return seen
    pytest.fail(f"reading not reached within {timeout} s; last: {seen}")


def ready(reading: ServingReading) -> bool:
    return reading.state.name == "ready" and reading.requests_running is not None


def target_of(pool: ServingPool, engine: Engine, cid: str) -> Target:
    attrs = engine.inspect(cid)
    target = discover(attrs, pid=int(attrs["State"]["Pid"]), may_enter_netns=True)
    assert target is not None
    return target


# --- discovery, by each route -----------------------------------------------------------------


def test_by_label_on_an_unrecognised_container(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(9100, metrics="vllm_v1.metrics")),
        labels={"aitop.metrics-port": "9100"},
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.kind == "vllm", "the page said which server it is"
    assert reading.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert reading.url is not None and reading.url.endswith(":9100/metrics")
    assert target_of(pool, engine, cid).found_by == "label"


def test_by_the_servers_port_flag(engine, run_server, pool):
    cid = run_server(
        server_command(
            serve_command(9001, metrics="vllm_v1.metrics"), "vllm", "serve", "m", "--port", "9001"
        )
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.kind == "vllm" and reading.requests_running == 24
    target = target_of(pool, engine, cid)
    assert target.found_by == "flag" and target.api is not None and target.api.port == 9001


def test_by_a_published_port(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(7000, metrics="vllm_v1.metrics"), "vllm", "serve", "m"),
        ports=[7000],
        port_bindings={7000: None},
    )
    attrs = watch(pool, engine, cid)
    settle(pool, cid, ready)
    target = target_of(pool, engine, cid)
    assert target.found_by == "published" and target.api is not None and target.api.port == 7000
    # Without an address on a network, the published host port is the way in.
    no_ip = dict(attrs, NetworkSettings=dict(attrs["NetworkSettings"], Networks={}, IPAddress=""))
    via_host = ServingPool(discover_target=lambda a, **kw: discover(no_ip, **kw))
    try:
        via_host.watch(cid, no_ip, int(attrs["State"]["Pid"]))
        reading = settle(via_host, cid, ready)
        host_port = attrs["NetworkSettings"]["Ports"]["7000/tcp"][0]["HostPort"]
        assert reading.url == f"http://127.0.0.1:{host_port}/metrics"
    finally:
        via_host.close()


def test_by_the_listening_socket_only(engine, run_server, pool):
    # No flag, nothing exposed or published, not the default port: only the socket tells.
    cid = run_server(
        server_command(serve_command(9123, metrics="vllm_v1.metrics"), "vllm", "serve", "m")
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.url is not None and reading.url.endswith(":9123/metrics")
    target = target_of(pool, engine, cid)
    assert target.found_by == "listening"


SGLANG_WORDS = ("python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen2.5-7B-Instruct")


@pytest.mark.may_skip
def test_bound_to_127_0_0_1_inside_the_container_as_root(engine, run_server, pool):
    if os.geteuid() != 0:
        pytest.skip("entering a container's network namespace needs root")
    cid = run_server(
        server_command(serve_command("127.0.0.1:30000", metrics="sglang.metrics"), *SGLANG_WORDS)
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.kind == "sglang" and reading.model == "Qwen/Qwen2.5-7B-Instruct"
    assert reading.url == "http://127.0.0.1:30000/metrics"
    target = target_of(pool, engine, cid)
    assert target.api is not None and target.api.netns_pid == int(
        engine.inspect(cid)["State"]["Pid"]
    )


def test_bound_to_127_0_0_1_without_the_right_to_enter(engine, run_server):
    cid = run_server(
        server_command(serve_command("127.0.0.1:30000", metrics="sglang.metrics"), *SGLANG_WORDS)
    )
    time.sleep(0.5)  # let httpd bind, so that its socket is what discovery reads
    outsider = ServingPool(may_enter_netns=False)
    try:
        watch(outsider, engine, cid)
        reading = settle(outsider, cid, lambda r: r.state.name == "unreachable")
        assert "listens on 127.0.0.1:30000 inside the container" in reading.state.detail
        assert "--host 0.0.0.0" in reading.state.detail and "-p 30000:30000" in reading.state.detail
    finally:
        outsider.close()


# --- states -----------------------------------------------------------------------------------


def test_loading_while_the_port_is_closed_then_ready(engine, run_server, pool):
    cid = run_server(
        server_command(
            serve_command(8000, metrics="vllm_v1.metrics", delay=4), "vllm", "serve", "m"
        )
    )
    attrs = watch(pool, engine, cid)
    loading = settle(pool, cid, lambda r: r.state.name == "loading", timeout=3)
    assert loading.state.detail == "not listening yet"
    started = time.time()
    assert loading.since is not None and abs(loading.since - started) < 5
    reading = settle(pool, cid, ready)
    assert reading.since is not None and reading.since > loading.since
    assert attrs["State"]["Running"]


def test_llamacpp_loading_503_then_ready(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(8080), "llama-server", "-m", "/models/q.gguf", "--metrics"),
        labels=CGI_METRICS,
        environment={"LLAMA_ARG_HOST": "0.0.0.0"},
    )
    set_route(cid, "/health", 503, body_file="llamacpp_health_loading.json")
    set_route(cid, "/metrics", 503, body_file="llamacpp_health_loading.json")
    set_route(cid, "/v1/models", 503, body_file="llamacpp_health_loading.json")
    watch(pool, engine, cid)
    loading = settle(pool, cid, lambda r: r.state.name == "loading")
    assert loading.kind == "llamacpp" and loading.state.detail == "loading model"
    set_route(cid, "/v1/models", 200, body_file="llamacpp_v1_models.json")
    set_route(cid, "/metrics", 200, body_file="llamacpp.metrics")
    set_route(cid, "/health", 200, body_file="llamacpp_health_ok.json")
    reading = settle(pool, cid, ready)
    assert reading.requests_running == 2 and reading.model == "qwen2.5-7b-instruct-q4_k_m"


def test_a_dead_engine_is_unhealthy(engine, run_server, pool):
    cid = run_server(server_command(serve_command(8000), "vllm", "serve", "m"), labels=CGI_METRICS)
    set_route(cid, "/health", 200)
    set_route(cid, "/metrics", 200, body_file="vllm_v1.metrics")
    watch(pool, engine, cid)
    settle(pool, cid, ready)
    set_route(cid, "/health", 503)  # EngineDeadError
    reading = settle(pool, cid, lambda r: r.state.name == "unhealthy", timeout=20)
    assert reading.state.detail == "engine not running (/health 503)"


def test_a_server_that_died_goes_stale(engine, run_server, pool):
    cid = run_server(
        server_command(
            serve_command(8000, metrics="vllm_v1.metrics", foreground=False), "vllm", "serve", "m"
        )
    )
    watch(pool, engine, cid)
    good = settle(pool, cid, ready)
    docker_exec(cid, "killall httpd")
    stale = settle(pool, cid, lambda r: r.stale)
    assert (
        stale.state.name == "unreachable" and stale.state.detail == "nothing listens on port 8000"
    )
    assert stale.requests_running == good.requests_running, "the last good figures are kept"


def test_sglang_with_metrics_off(engine, run_server, pool):
    cid = run_server(server_command(serve_command(30000), *SGLANG_WORDS, "--host", "0.0.0.0"))
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.state.name == "metrics-off")
    assert str(reading.state) == "metrics-off: --enable-metrics"


def test_llamacpp_with_metrics_off(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(8080), "llama-server", "-m", "/models/q.gguf"),
        labels=CGI_METRICS,
        environment={"LLAMA_ARG_HOST": "0.0.0.0"},
    )
    set_route(cid, "/health", 200, body_file="llamacpp_health_ok.json")
    set_route(cid, "/metrics", 501, body_file="llamacpp_metrics_disabled.json")
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.state.name == "metrics-off")
    assert reading.state.detail == "--metrics (or LLAMA_ARG_ENDPOINT_METRICS=1)"


def test_a_restart_resets_the_counters(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(8000, metrics="vllm_v1.metrics"), "vllm", "serve", "m")
    )
    watch(pool, engine, cid)
    settle(pool, cid, ready)
    docker_exec(cid, "cp /fixtures/vllm_v1.t2.metrics /www/metrics")
    moving = settle(pool, cid, lambda r: (r.generation_tokens_per_s or 0) > 0)
    docker_exec(cid, "cp /fixtures/vllm_v1.restart.metrics /www/metrics")
    restarted = settle(pool, cid, lambda r: r.state.detail == "restarted: counters reset")
    assert restarted.state.name == "ready"
    for value in (
        restarted.prompt_tokens_per_s,
        restarted.generation_tokens_per_s,
        restarted.errors_per_s,
    ):
        assert value is None or value >= 0
    assert (
        restarted.since is not None and moving.since is not None and restarted.since > moving.since
    )


@pytest.mark.parametrize(
    ("page", "kv_name"),
    [
        ("vllm_v0.metrics", "vllm:gpu_cache_usage_perc"),
        ("vllm_v1_0_9.metrics", "vllm:kv_cache_usage_perc"),
    ],
)
def test_renamed_metrics(engine, run_server, pool, page, kv_name):
    cid = run_server(server_command(serve_command(8000, metrics=page), "vllm", "serve", "m"))
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    line = next(x for x in (HERE / page).read_text().splitlines() if x.startswith(kv_name + "{"))
    assert reading.kv_cache_percent == pytest.approx(float(line.split()[-1]) * 100)


def test_tgi_reads_its_model_from_info(engine, run_server, pool):
    cid = run_server(
        server_command(
            serve_command(80, metrics="tgi.metrics", extra="cp /fixtures/tgi_info.json /www/info"),
            "text-generation-launcher",
        ),
        environment={"PORT": "80"},
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: ready(r) and r.model is not None)
    assert reading.kind == "tgi" and reading.model == "meta-llama/Llama-3.1-8B-Instruct"


def test_triton_health_and_metrics_on_their_own_ports(engine, run_server, pool):
    script = (
        "mkdir -p /www/v2/health /m && : > /www/v2/health/ready"
        " && cp /fixtures/triton.metrics /m/metrics"
        " && httpd -p 8000 -h /www && exec httpd -f -p 8002 -h /m"
    )
    cid = run_server(server_command(script, "tritonserver", "--model-repository=/models"))
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.kind == "triton" and reading.model == "ensemble"
    assert reading.url is not None and reading.url.endswith(":8002/metrics")
    assert reading.requests_running == 14


def test_ollama_lists_its_models(engine, run_server, pool):
    extra = (
        "mkdir -p /www/api && cp /fixtures/ollama_ps.json /www/api/ps"
        " && cp /fixtures/ollama_root.txt /www/index.html"
    )
    cid = run_server(
        server_command(serve_command(11434, health=False, extra=extra), "/bin/ollama", "serve"),
        environment={"OLLAMA_HOST": "0.0.0.0:11434"},
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.loaded_models is not None)
    assert reading.kind == "ollama" and reading.state.name == "ready"
    assert reading.loaded_models is not None
    assert [m.name for m in reading.loaded_models] == [
        "llama3.1:8b",
        "qwen2.5:32b",
        "nomic-embed-text:latest",
    ]
    assert reading.model == "llama3.1:8b, qwen2.5:32b, nomic-embed-text:latest"
    assert reading.to_json()["loaded_models"][1]["vram_bytes"] == 17179869184  # type: ignore[index]


# --- hostile servers --------------------------------------------------------------------------


def test_a_huge_page_is_refused(engine, run_server, pool):
    big = "yes 'vllm:num_requests_running{model_name=\"m\"} 1' | head -c 52428800 > /www/metrics"
    cid = run_server(server_command(serve_command(8000, extra=big), "vllm", "serve", "m"))
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.state.name == "unreachable", timeout=30)
    assert reading.state.detail == "metrics page: answer over 4 MiB"


def test_a_page_that_never_ends_is_refused(engine, run_server, pool):
    cid = run_server(server_command(serve_command(8000), "vllm", "serve", "m"), labels=CGI_METRICS)
    set_route(cid, "/health", 200)
    set_route(cid, "/metrics", 200, mode="flood")
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.state.name == "unreachable")
    assert reading.state.detail in (
        "metrics page: answer over 4 MiB",
        "metrics page: no complete answer within 2 s",
    )


def test_a_page_that_drips_is_cut_at_the_deadline(engine, run_server, pool):
    cid = run_server(server_command(serve_command(8000), "vllm", "serve", "m"), labels=CGI_METRICS)
    set_route(cid, "/health", 200)
    set_route(cid, "/metrics", 200, mode="drip")
    watch(pool, engine, cid)
    reading = settle(pool, cid, lambda r: r.state.name == "unreachable")
    assert reading.state.detail == "metrics page: no complete answer within 2 s"


def test_a_slow_server_times_out_then_goes_stale(engine, run_server, pool):
    cid = run_server(server_command(serve_command(8000), "vllm", "serve", "m"), labels=CGI_METRICS)
    set_route(cid, "/health", 200)
    set_route(cid, "/metrics", 200, body_file="vllm_v1.metrics")
    watch(pool, engine, cid)
    good = settle(pool, cid, ready)
    set_route(cid, "/metrics", 200, body_file="vllm_v1.metrics", sleep=5)
    stale = settle(pool, cid, lambda r: r.stale, timeout=30)
    assert stale.state.name == "unreachable" and "within" in stale.state.detail
    assert stale.requests_running == good.requests_running


def test_a_hostile_page(engine, run_server, pool):
    cid = run_server(
        server_command(serve_command(8000, metrics="hostile.metrics"), "vllm", "serve", "m")
    )
    watch(pool, engine, cid)
    reading = settle(pool, cid, ready)
    assert reading.requests_running == 5 and reading.requests_waiting == 1
    assert reading.kv_cache_percent is None, "a KV fraction of 17.5 is nonsense"
    assert reading.model is not None
    for text in (reading.model, str(reading.state)):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in text)
    assert reading.model.startswith("evil")
