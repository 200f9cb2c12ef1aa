"""Discovery on inspect data: which server (command, image), which port (labels, flags, env,
published, exposed, listening sockets, default), which address (IP, published port, the
container's namespace for 127.0.0.1), and bounded handling of what image authors wrote.
(The same routes against real containers are in test_serving_containers.py.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tui.fleet.serving.discover import (
    Listener,
    Route,
    command_words,
    discover,
    flag_value,
    parse_port,
    parse_proc_net_tcp,
    recognise,
    split_hostport,
    valid_path,
)
from tui.fleet.serving.servers import LLAMACPP, LMDEPLOY, OLLAMA, SGLANG, TGI, TRITON, VLLM

IP = "172.17.0.9"


def inspect(
    *,
    image: str = "busybox",
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    env: list[str] | None = None,
    labels: dict[str, str] | None = None,
    exposed: Sequence[str] = (),
    published: Mapping[str, object] | None = None,
    ip: str = IP,
    network_mode: str = "bridge",
) -> dict[str, Any]:
    return {
        "Config": {
            "Image": image,
            "Cmd": cmd,
            "Entrypoint": entrypoint,
            "Env": env or [],
            "Labels": labels or {},
            "ExposedPorts": {p: {} for p in exposed},
        },
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {
            "Ports": dict(published or {}),
            "Networks": {"bridge": {"IPAddress": ip}} if ip else {},
        },
        "State": {"StartedAt": "2026-01-01T00:00:00.5Z"},
    }


def fake_proc(tmp_path: Path, pid: int, tcp: Sequence[str], tcp6: Sequence[str] = ()) -> Path:
    net = tmp_path / str(pid) / "net"
    net.mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    (net / "tcp").write_text(header + "".join(f"   0: {line}\n" for line in tcp))
    (net / "tcp6").write_text(header + "".join(f"   0: {line}\n" for line in tcp6))
    return tmp_path


REST = "00000000:00000000 00:00000000 00000000     0        0 1234"


def listen4(addr_hex: str, port: int) -> str:
    return f"{addr_hex}:{port:04X} 00000000:0000 0A {REST}"


def established4(addr_hex: str, port: int) -> str:
    return f"{addr_hex}:{port:04X} 0100007F:9C40 01 {REST}"


ANY4, LOOP4 = "00000000", "0100007F"
LOOP6 = "00000000000000000000000001000000"


# --- which server -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "kind"),
    [
        (["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"], VLLM),
        (["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"], VLLM),
        (["python3", "-m", "sglang.launch_server", "--model-path", "m"], SGLANG),
        (["/usr/local/bin/text-generation-launcher", "--model-id", "m"], TGI),
        (["/app/llama-server", "-m", "/models/x.gguf"], LLAMACPP),
        (["tritonserver", "--model-repository=/models"], TRITON),
        (["lmdeploy", "serve", "api_server", "internlm/x"], LMDEPLOY),
        (["/bin/ollama", "serve"], OLLAMA),
        (["sh", "-c", "exec vllm serve m --port 9000"], VLLM),
    ],
)
def test_the_command_line_names_the_server(cmd, kind):
    assert recognise(inspect(cmd=cmd)) is kind


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("vllm/vllm-openai:v0.11.0", VLLM),
        ("lmsysorg/sglang:latest", SGLANG),
        ("ghcr.io/huggingface/text-generation-inference:3.3.6", TGI),
        ("ghcr.io/ggml-org/llama.cpp:server-cuda", LLAMACPP),
        ("nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3", TRITON),
        ("openmmlab/lmdeploy:latest", LMDEPLOY),
        ("ollama/ollama", OLLAMA),
        ("busybox", None),
        ("registry.example:5000/team/redis:7", None),
    ],
)
def test_else_the_image_names_it(image, kind):
    assert recognise(inspect(image=image, cmd=["run"])) is kind


def test_the_command_wins_over_the_image():
    attrs = inspect(image="vllm/vllm-openai", entrypoint=["python3", "-m", "sglang.launch_server"])
    assert recognise(attrs) is SGLANG


def test_a_container_that_serves_nothing_is_not_a_target():
    assert discover(inspect(cmd=["sleep", "3600"])) is None


# --- which port -------------------------------------------------------------------------------


def test_labels_come_first():
    attrs = inspect(
        cmd=["vllm", "serve", "m"],
        labels={"aitop.metrics-port": "9100", "aitop.metrics-path": "/custom/stats"},
    )
    target = discover(attrs)
    assert target is not None and target.found_by == "label"
    assert target.metrics == Route(IP, 9100)
    assert target.api == Route(IP, 9100), "vLLM serves metrics on its own port"
    assert (target.prefix, target.metrics_path) == ("", "/custom/stats")


def test_prometheus_labels_are_read_too():
    attrs = inspect(cmd=["vllm", "serve", "m"], labels={"prometheus.io/port": "8001"})
    target = discover(attrs)
    assert target is not None and target.metrics == Route(IP, 8001)


def test_a_metrics_path_ending_in_the_servers_own_is_a_prefix_for_every_route():
    attrs = inspect(cmd=["vllm", "serve", "m"], labels={"aitop.metrics-path": "/llm/metrics"})
    target = discover(attrs)
    assert target is not None
    assert (target.prefix, target.metrics_path) == ("/llm", "/metrics")


def test_a_label_alone_makes_an_unknown_target():
    target = discover(inspect(cmd=["my-server"], labels={"aitop.metrics-port": "9400"}))
    assert target is not None and target.kind is None
    assert target.metrics == Route(IP, 9400) and target.metrics_path == "/metrics"


@pytest.mark.parametrize("bad", ["0", "65536", "http", "80x", "-1", "9" * 50, "8000/tcp"])
def test_bad_port_labels_are_ignored(bad):
    target = discover(inspect(cmd=["vllm", "serve", "m"], labels={"aitop.metrics-port": bad}))
    assert target is not None
    expected = 8000 if parse_port(bad) is None else parse_port(bad)
    assert target.metrics is not None and target.metrics.port == expected


@pytest.mark.parametrize("bad", ["metrics", "/a b", "/x?y=1", "/\x1b[2J", "/" + "a" * 300])
def test_bad_path_labels_are_ignored(bad):
    assert valid_path(bad) is None
    target = discover(inspect(cmd=["vllm", "serve", "m"], labels={"aitop.metrics-path": bad}))
    assert target is not None and (target.prefix, target.metrics_path) == ("", "/metrics")


@pytest.mark.parametrize(
    ("cmd", "env", "port"),
    [
        (["vllm", "serve", "m", "--port", "9001"], [], 9001),
        (["vllm", "serve", "m", "--port=9002"], [], 9002),
        (["sh", "-c", "vllm serve m --host 0.0.0.0 --port 9003"], [], 9003),
        (
            ["python3", "-m", "sglang.launch_server", "--host", "0.0.0.0", "--port", "31000"],
            [],
            31000,
        ),
        (["text-generation-launcher"], ["PORT=80"], 80),
        (["text-generation-launcher", "--port", "8088"], ["PORT=80"], 8088),
        (["llama-server", "-m", "x"], ["LLAMA_ARG_PORT=8090", "LLAMA_ARG_HOST=0.0.0.0"], 8090),
        (["lmdeploy", "serve", "api_server", "m", "--server-port", "24444"], [], 24444),
        (["ollama", "serve"], ["OLLAMA_HOST=0.0.0.0:11500"], 11500),
        (["ollama", "serve"], ["OLLAMA_HOST=http://0.0.0.0:11600"], 11600),
    ],
)
def test_then_the_servers_flags_and_env(cmd, env, port):
    target = discover(inspect(cmd=cmd, env=env))
    assert target is not None and target.found_by in ("flag", "env")
    assert target.api == Route(IP, port)


def test_triton_has_an_http_port_and_a_metrics_port():
    default = discover(inspect(cmd=["tritonserver", "--model-repository=/m"]))
    assert default is not None
    assert (default.api, default.metrics) == (Route(IP, 8000), Route(IP, 8002))
    moved = discover(inspect(cmd=["tritonserver", "--http-port", "9000", "--metrics-port=9002"]))
    assert moved is not None
    assert (moved.api, moved.metrics) == (Route(IP, 9000), Route(IP, 9002))


def test_then_published_ports_prefer_the_default():
    published = {
        "7000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32001"}],
        "8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32002"}],
    }
    target = discover(inspect(cmd=["vllm", "serve", "m"], published=published))
    assert target is not None and target.found_by == "published"
    assert target.api == Route(IP, 8000)
    only = discover(
        inspect(
            cmd=["vllm", "serve", "m"],
            published={"7000/tcp": [{"HostIp": "", "HostPort": "32001"}]},
        )
    )
    assert only is not None and only.api == Route(IP, 7000)


def test_without_an_ip_the_published_host_port_is_used():
    published = {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32002"}]}
    target = discover(inspect(cmd=["vllm", "serve", "m"], published=published, ip=""))
    assert target is not None and target.api == Route("127.0.0.1", 32002)


def test_then_exposed_ports():
    target = discover(
        inspect(
            image="ollama/ollama", cmd=["serve"], exposed=["11434/tcp"], env=["OLLAMA_HOST=0.0.0.0"]
        )
    )
    assert target is not None and target.found_by == "exposed"
    assert target.api == Route(IP, 11434)


def test_then_the_listening_sockets(tmp_path):
    proc = fake_proc(tmp_path, 4242, [listen4(ANY4, 9123), established4("0900A8C0", 9123)])
    target = discover(inspect(cmd=["vllm", "serve", "m"]), pid=4242, proc=proc)
    assert target is not None and target.found_by == "listening"
    assert target.api == Route(IP, 9123)


def test_then_the_default_port(tmp_path):
    # Still loading: nothing listens yet; the default is where it will.
    proc = fake_proc(tmp_path, 4242, [])
    target = discover(inspect(cmd=["vllm", "serve", "m"]), pid=4242, proc=proc)
    assert target is not None and target.found_by == "default"
    assert target.api == Route(IP, 8000)


# --- 127.0.0.1 inside the container -----------------------------------------------------------


def test_a_loopback_socket_is_reached_in_the_namespace_by_root(tmp_path):
    proc = fake_proc(tmp_path, 4242, [listen4(LOOP4, 30000)])
    attrs = inspect(cmd=["python3", "-m", "sglang.launch_server", "--model-path", "m"])
    target = discover(attrs, pid=4242, may_enter_netns=True, proc=proc)
    assert target is not None
    assert target.api == Route("127.0.0.1", 30000, netns_pid=4242)
    assert target.api.url("/metrics") == "http://127.0.0.1:30000/metrics"


def test_a_loopback_socket_without_root_says_how_to_publish_it(tmp_path):
    proc = fake_proc(
        tmp_path,
        4242,
        [],
        [f"{LOOP6}:{30000:04X} 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0"],
    )
    attrs = inspect(cmd=["python3", "-m", "sglang.launch_server", "--model-path", "m"])
    target = discover(attrs, pid=4242, may_enter_netns=False, proc=proc)
    assert target is not None and target.api is None and target.metrics is None
    assert "127.0.0.1:30000 inside the container" in target.unreachable
    assert "--host 0.0.0.0" in target.unreachable and "-p 30000:30000" in target.unreachable


def test_the_default_host_tells_before_the_socket_exists(tmp_path):
    # SGLang binds 127.0.0.1 unless told: loading, nothing listens yet.
    proc = fake_proc(tmp_path, 4242, [])
    attrs = inspect(cmd=["python3", "-m", "sglang.launch_server", "--model-path", "m"])
    target = discover(attrs, pid=4242, proc=proc)
    assert target is not None and "127.0.0.1:30000" in target.unreachable
    told = discover(
        inspect(cmd=["python3", "-m", "sglang.launch_server", "--host", "0.0.0.0"]),
        pid=4242,
        proc=proc,
    )
    assert told is not None and told.api == Route(IP, 30000)


def test_the_llamacpp_image_env_binds_every_interface():
    target = discover(inspect(cmd=["llama-server"], env=["LLAMA_ARG_HOST=0.0.0.0"]))
    assert target is not None and target.api == Route(IP, 8080)
    loop = discover(inspect(cmd=["llama-server"]))
    assert loop is not None and loop.api is None and "--host 0.0.0.0" in loop.unreachable


def test_host_network_containers_are_on_localhost():
    target = discover(inspect(cmd=["vllm", "serve", "m"], ip="", network_mode="host"))
    assert target is not None and target.api == Route("127.0.0.1", 8000)


def test_no_address_and_no_root_says_so(tmp_path):
    target = discover(inspect(cmd=["vllm", "serve", "m"], ip="", network_mode="none"))
    assert target is not None and target.api is None
    assert "no address" in target.unreachable and "network none" in target.unreachable
    inside = discover(
        inspect(cmd=["vllm", "serve", "m"], ip="", network_mode="none"),
        pid=77,
        may_enter_netns=True,
        proc=fake_proc(tmp_path, 77, []),
    )
    assert inside is not None and inside.api == Route("127.0.0.1", 8000, netns_pid=77)


def test_a_remote_engine_reaches_published_ports_only():
    published = {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32002"}]}
    target = discover(inspect(cmd=["vllm", "serve", "m"], published=published), remote_host="gpu1")
    assert target is not None and target.api == Route("gpu1", 32002)
    unpublished = discover(inspect(cmd=["vllm", "serve", "m"]), remote_host="gpu1")
    assert unpublished is not None and "not published" in unpublished.unreachable


def test_metrics_hints_follow_the_command_line():
    off = discover(inspect(cmd=["lmdeploy", "serve", "api_server", "m", "--disable-metrics"]))
    assert off is not None and off.metrics_hint == "remove --disable-metrics"
    old = discover(inspect(cmd=["lmdeploy", "serve", "api_server", "m"]))
    assert old is not None and old.metrics_hint == "--enable-metrics"
    llama = discover(inspect(cmd=["llama-server"], env=["LLAMA_ARG_HOST=0.0.0.0"]))
    assert llama is not None and llama.metrics_hint == "--metrics (or LLAMA_ARG_ENDPOINT_METRICS=1)"


def test_started_at_is_read():
    target = discover(inspect(cmd=["vllm", "serve", "m"]))
    assert target is not None and target.started_at == pytest.approx(1767225600.5)


# --- the pieces -------------------------------------------------------------------------------


def test_proc_net_tcp_tables():
    v4 = parse_proc_net_tcp(
        "header\n"
        f"   0: {listen4(LOOP4, 8080)}\n"
        f"   1: {listen4(ANY4, 8000)}\n"
        f"   2: {established4('0900A8C0', 8000)}\n"
        "   3: garbage\n"
        "   4: ZZZZZZZZ:1F90 00000000:0000 0A\n",
        ipv6=False,
    )
    assert v4 == [Listener("127.0.0.1", 8080), Listener("0.0.0.0", 8000)]
    assert v4[0].loopback and not v4[1].loopback
    v6 = parse_proc_net_tcp(
        "header\n"
        f"   0: {LOOP6}:1F90 00000000000000000000000000000000:0000 0A\n"
        "   1: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A\n"
        "   2: 0000000000000000FFFF00000100007F:1F41 00000000000000000000000000000000:0000 0A\n",
        ipv6=True,
    )
    assert v6 == [Listener("::1", 8080), Listener("::", 8000), Listener("127.0.0.1", 8001)]
    assert v6[0].loopback and v6[2].loopback


def test_flag_values_and_hostports():
    words = ("vllm", "serve", "--port", "1", "--port=2")
    assert flag_value(words, ("--port",)) == "2", "the last one wins, as argparse does"
    assert flag_value(("--port",), ("--port",)) is None
    assert split_hostport("0.0.0.0:11434") == ("0.0.0.0", 11434)
    assert split_hostport("http://[::]:11434/") == ("::", 11434)
    assert split_hostport("0.0.0.0") == ("0.0.0.0", None)


def test_command_words_are_bounded():
    huge = "x" * 1_000_000
    words = command_words(inspect(cmd=["sh", "-c", f"vllm serve '{huge}"] + ["w"] * 10_000))
    assert len(words) <= 256
    assert all(len(w) <= 4096 for w in words)
    assert words[:3] == ("sh", "-c", "vllm")


def test_shell_form_commands_are_split():
    attrs = inspect(cmd=None, entrypoint=None)
    attrs["Config"]["Cmd"] = "vllm serve m --port 9005"
    target = discover(attrs)
    assert target is not None and target.api == Route(IP, 9005)
