"""The `aitop` command as a user runs it: --version, --help, snapshot --json, demo, and every
engine error ending in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import AITOP, TEST_LABEL, aitop, require_tools, unavailable
from tui.cli import main


def test_version_and_help():
    from tui import __version__

    out = aitop("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"aitop {__version__}"
    helped = aitop("--help")
    assert helped.returncode == 0
    for word in ("snapshot", "demo", "--host", "--all"):
        assert word in helped.stdout


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("unix:///nonexistent/docker.sock", "socket does not exist"),
        ("tcp://127.0.0.1:1", "refused the connection"),
        ("bogus://x", "invalid engine address"),
        ("tcp://no-such-host.invalid:2375", "cannot resolve"),
        ("ssh://host:abc", "the port must be a number from 1 to 65535"),
        ("ssh://host:99999", "the port must be a number from 1 to 65535"),
        ("tcp://host:0", "the port must be a number from 1 to 65535"),
        ("ssh://", "invalid engine address"),
        ("unix:///x\x1b]0;title\x07", "it holds control characters"),
    ],
)
def test_engine_errors_are_one_line_and_exit_2(host, says):
    for args in (("--host", host, "snapshot", "--json"), ("snapshot", "--json", "--host", host)):
        out = aitop(*args)
        assert out.returncode == 2
        assert says in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert "Traceback" not in out.stderr + out.stdout


def test_docker_host_variable_is_honoured():
    out = aitop("snapshot", "--json", env={"DOCKER_HOST": "unix:///nonexistent/d.sock"})
    assert out.returncode == 2 and "unix:///nonexistent/d.sock" in out.stderr


def test_interactive_view_without_a_terminal_says_so():
    out = aitop(stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "needs a terminal" in out.stderr


def test_permission_denied_socket_says_join_the_docker_group(engine, tmp_path):
    require_tools("setpriv")
    sock = engine.url.removeprefix("unix://")
    if os.stat(sock).st_mode & 0o006:
        pytest.skip("the engine's socket is world-accessible here")
    code = "import sys; from tui.cli import main; sys.exit(main(['snapshot', '--json']))"
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.getcwd(),
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": os.getcwd()},
    )
    if out.returncode == 127 or "error while loading shared libraries" in out.stderr:
        unavailable("unprivileged run", f"this interpreter cannot run so: {out.stderr[:200]}")
    assert out.returncode == 2, out.stderr
    assert "permission denied" in out.stderr and "docker group" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_snapshot_json_lists_model_containers_and_all_with_all(engine, run_container, session_tag):
    model = run_container("sleep 600", labels={"aitop.model": "org/model-a"})
    plain = run_container("sleep 600")
    burner = run_container("while :; do :; done", labels={"aitop.model": "burner"})

    out = aitop("snapshot", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (host,) = doc["hosts"]
    assert {"url", "engine_version", "host", "containers"} <= host.keys()
    assert {"cpu_percent", "mem_used_bytes", "mem_total_bytes"} <= host["host"].keys()
    ids = {c["id"] for c in host["containers"]}
    assert model in ids and burner in ids and plain not in ids

    everything = json.loads(aitop("snapshot", "--json", "--all").stdout)["hosts"][0]
    mine = {
        c["id"]: c for c in everything["containers"] if c["labels"].get(TEST_LABEL) == session_tag
    }
    assert set(mine) >= {model, plain, burner}
    entry = mine[model]
    keys = {
        "id",
        "name",
        "image",
        "model",
        "is_model",
        "state",
        "health",
        "cpu_percent",
        "mem_bytes",
        "mem_limit_bytes",
        "net_rx_bytes",
        "net_tx_bytes",
        "compose_project",
        "compose_service",
        "swarm_service",
        "labels",
    }
    assert keys <= entry.keys()
    assert entry["model"] == "org/model-a" and entry["is_model"] is True
    assert entry["state"] == "running" and entry["mem_bytes"] > 0
    assert mine[plain]["is_model"] is False
    assert mine[burner]["cpu_percent"] > 50


def test_demo_up_and_down(engine):
    from tui.fleet.demo import DEMO_LABEL, demo_fleet

    if engine.ids_with_label(DEMO_LABEL):
        pytest.skip("a demo fleet is running here; the test would replace it")
    try:
        up = aitop("demo", "up", timeout=180)
        assert up.returncode == 0, up.stderr
        ids = engine.ids_with_label(DEMO_LABEL)
        assert len(ids) == len(demo_fleet())
        names = {engine.inspect(i)["Name"].lstrip("/") for i in ids}
        assert "aitop-demo-llama-3" in names and "aitop-demo-burner" in names
    finally:
        down = aitop("demo", "down")
    assert down.returncode == 0
    assert engine.ids_with_label(DEMO_LABEL) == []


def test_the_active_docker_context_is_used_when_no_host_is_given(tmp_path, docker_cli):
    # The context store as Docker's own command writes it, in a config directory of our own.
    full_env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    full_env["DOCKER_CONFIG"] = str(tmp_path)
    for args in (
        ["context", "create", "aitopctx", "--docker", "host=unix:///nonexistent-ctx.sock"],
        ["context", "use", "aitopctx"],
    ):
        subprocess.run([docker_cli, *args], env=full_env, check=True, capture_output=True)
    out = subprocess.run(
        [*AITOP, "snapshot", "--json"], env=full_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "unix:///nonexistent-ctx.sock" in out.stderr
    # --host still wins over the context.
    out = subprocess.run(
        [*AITOP, "--host", "unix:///nonexistent-flag.sock", "snapshot", "--json"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "nonexistent-flag.sock" in out.stderr


def test_read_only_refuses_the_demo_before_touching_the_engine():
    out = aitop("--read-only", "demo", "up", "--host", "unix:///nonexistent.sock")
    assert out.returncode == 2
    assert "read-only mode" in out.stderr


def test_the_collector_is_on_again_after_main_returns_early(capsys):
    # No terminal here: the interactive view refuses before any UI exists.
    assert main(["--host", "unix:///nonexistent/docker.sock"]) == 2
    assert gc.isenabled()
    capsys.readouterr()
