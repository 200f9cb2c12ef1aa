"""Scaling: plans, GPU placement and replica configuration (pure); compose services made by
Debian's docker-compose, a swarm service on a single-node swarm, and plain containers with a
fixed host port, against the real engine."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    TEST_IMAGE,
    TEST_LABEL,
    poll,
    require_tools,
    scale,
    swarm_state,
    unavailable,
    wait_for,
)
from tui.fleet.actions.scaling.execute import NewReplica, ScaleResult, execute_plan
from tui.fleet.actions.scaling.groups import (
    KIND_CLONE,
    KIND_COMPOSE,
    KIND_SWARM,
    Replica,
    ScaleError,
    ScaleGroup,
    find_group,
)
from tui.fleet.actions.scaling.placement import PlacementError, place_replicas, source_gpus
from tui.fleet.actions.scaling.plan import plan_scale, step_plan
from tui.fleet.actions.scaling.spec import replica_spec
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.inventory import CLONE_OF, COMPOSE_NUMBER, parse_time

GIB = 1 << 30


# --- pure: placement ----------------------------------------------------------------------


def test_each_replica_goes_to_the_gpu_with_most_free_memory_that_fits():
    free = {"0": 10 * GIB, "1": 30 * GIB, "2": 20 * GIB}
    got = place_replicas(3, ("0",), free, 8 * GIB)
    # 1 (30 -> 22), 1 again (22 > 20 -> 14), then 2 (20 > 14).
    assert got == (("1",), ("1",), ("2",))


def test_no_gpu_that_fits_is_refused_unless_forced():
    free = {"0": 4 * GIB, "1": 6 * GIB}
    with pytest.raises(PlacementError) as err:
        place_replicas(1, ("0",), free, 8 * GIB, label="demo/llama")
    text = str(err.value)
    assert "no GPU can hold another copy of demo/llama" in text
    assert "8 GiB per GPU" in text and "GPU 1 with 6 GiB" in text
    assert place_replicas(1, ("0",), free, 8 * GIB, force=True) == (("0",),)


def test_the_second_replica_may_not_fit_after_the_first():
    with pytest.raises(PlacementError, match="after placing 1"):
        place_replicas(2, ("0",), {"0": 5 * GIB, "1": 12 * GIB}, 8 * GIB)


def test_invisible_gpus_or_no_specific_gpus_keep_the_request():
    assert place_replicas(2, ("0", "1"), None, 8 * GIB) == (("0", "1"), ("0", "1"))
    assert place_replicas(2, ("0",), {"0": None}, 8 * GIB) == (("0",), ("0",))
    assert place_replicas(2, (), {"0": 80 * GIB}, 8 * GIB) == ((), ())


def test_a_multi_gpu_source_gets_as_many_gpus_and_unknown_use_picks_the_most_free():
    free = {"0": 10 * GIB, "1": 40 * GIB, "2": 30 * GIB, "3": 5 * GIB}
    assert place_replicas(1, ("0", "3"), free, 8 * GIB) == (("1", "2"),)
    assert place_replicas(1, ("0",), free, None) == (("1",),)


# --- pure: what a replica copies ----------------------------------------------------------


SOURCE: dict[str, Any] = {
    "Id": "0123456789ab" + "f" * 52,
    "Name": "/llm",
    "Config": {
        "Hostname": "0123456789ab",
        "Image": "vllm:latest",
        "Cmd": ["serve"],
        "Env": ["NVIDIA_VISIBLE_DEVICES=0", "HF_TOKEN=x"],
        "Labels": {"a": "1"},
        "ExposedPorts": {"8000/tcp": {}, "9000/tcp": {}},
    },
    "HostConfig": {
        "NetworkMode": "shop_default",
        "PortBindings": {
            "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}],
            "9000/tcp": [{"HostIp": "", "HostPort": ""}],
        },
        "Links": ["/db:/llm/database"],
        "DeviceRequests": [
            {"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]]}
        ],
        "ContainerIDFile": "",
        "Memory": 1 << 30,
    },
    "NetworkSettings": {
        "Networks": {
            "shop_default": {"Aliases": ["llm", "0123456789ab", "api"], "IPAMConfig": {}},
            "extra": {"Aliases": ["0123456789ab"], "Links": None},
        }
    },
}


def test_a_replica_copies_the_configuration_but_no_fixed_host_port():
    spec = replica_spec(SOURCE, name="llm-clone-1", labels={"b": "2"}, gpus=("3",))
    body = spec.body
    assert body["Image"] == "vllm:latest" and body["Cmd"] == ["serve"]
    assert "Hostname" not in body  # the source's own id-derived hostname is not copied
    assert body["Labels"] == {"b": "2"}
    host = body["HostConfig"]
    assert host["PortBindings"]["8000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert host["PortBindings"]["9000/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert spec.freed_ports == ("8000->8000/tcp",)
    assert host["Links"] == ["db:database"]
    assert host["DeviceRequests"][0]["DeviceIDs"] == ["3"]
    assert host["Memory"] == 1 << 30 and "ContainerIDFile" not in host
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"shop_default": {"Aliases": ["api"]}}}
    assert spec.networks == {"extra": {}}
    assert spec.gpus == ("3",)
    # The source is untouched.
    assert SOURCE["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostPort"] == "8000"
    assert SOURCE["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ["0"]


def test_gpus_given_by_environment_under_the_nvidia_runtime_are_rewritten_there():
    attrs = json.loads(json.dumps(SOURCE))
    attrs["HostConfig"]["DeviceRequests"] = None
    attrs["HostConfig"]["Runtime"] = "nvidia"
    assert source_gpus(attrs) == ("env", ("0",))
    spec = replica_spec(attrs, name="x", labels={}, gpus=("2",))
    assert "NVIDIA_VISIBLE_DEVICES=2" in spec.body["Env"]
    attrs["HostConfig"]["Runtime"] = "runc"
    assert source_gpus(attrs) == ("", ())
    assert source_gpus(SOURCE) == ("request", ("0",))


# --- pure: plans ----------------------------------------------------------------------------


def replicas(*numbers: int) -> tuple[Replica, ...]:
    return tuple(Replica(f"id{n}", f"r{n}", n, "running") for n in numbers)


def test_compose_scales_down_from_the_highest_number():
    group = ScaleGroup(KIND_COMPOSE, "p/s", replicas(1, 2, 3, 5))
    plan = plan_scale(group, 2)
    assert [r.number for r in plan.remove] == [5, 3]
    assert plan.needs_confirmation
    assert plan.describe() == "Scale p/s from 4 to 2: stop and remove r5, r3"
    up = step_plan(group, 1)
    assert up.add == 1 and not up.needs_confirmation


def test_a_fixed_container_name_cannot_scale():
    group = ScaleGroup(KIND_COMPOSE, "p/s", replicas(1), fixed_name="my-fixed-name")
    with pytest.raises(ScaleError, match=r"fixed container_name \(my-fixed-name\)"):
        step_plan(group, 1)


def test_clones_go_newest_first_and_the_original_last():
    group = ScaleGroup(
        KIND_CLONE, "container r0", replicas(0, 1, 2), origin_id="id0", origin_name="r0"
    )
    plan = step_plan(group, -1)
    assert [r.name for r in plan.remove] == ["r2"] and not plan.removes_original
    plan = plan_scale(group, 0)
    assert [r.name for r in plan.remove] == ["r2", "r1", "r0"] and plan.removes_original
    assert "ORIGINAL container r0" in plan.describe()
    with pytest.raises(ScaleError, match="negative"):
        plan_scale(group, -1)


def test_results_show_new_ports_and_failures():
    result = ScaleResult(
        "container web",
        KIND_CLONE,
        1,
        3,
        created=(NewReplica("x", "web-clone-1", ports=("32768->80/tcp",)),),
        failed=(("web-clone-2", "boom (rolled back)"),),
    )
    assert result.severity == "warning"
    assert result.summary.splitlines() == [
        "container web: 1 → 2 replicas",
        "+ web-clone-1 (ports 32768->80/tcp)",
        "✖ web-clone-2: boom (rolled back)",
    ]


# --- the real engine: plain containers ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def inspect(cid: str) -> dict:
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True).stdout
    found = json.loads(out or "[]")
    return found[0] if found else {}


def host_ports(attrs: dict) -> set[str]:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {b["HostPort"] for bindings in ports.values() for b in bindings or ()}


def test_a_container_with_a_fixed_host_port_scales_to_three(engine, run_container):
    port = free_port()
    origin = run_container("sleep 600", ports=[80], port_bindings={80: port}, stop_signal="SIGKILL")
    before = set(engine.ids_with_label(CLONE_OF))
    result = scale(engine, container_id=origin, desired=3)
    try:
        assert result.ok, result.summary
        assert [n.name for n in result.created] == [
            f"{inspect(origin)['Name'][1:]}-clone-1",
            f"{inspect(origin)['Name'][1:]}-clone-2",
        ]
        assert f"fixed host ports not copied ({port}->80/tcp)" in result.summary
        assert host_ports(inspect(origin)) == {str(port)}
        seen = {str(port)}
        for new in result.created:
            attrs = inspect(new.id)
            assert attrs["State"]["Running"]
            assert attrs["Config"]["Labels"][CLONE_OF] == origin
            assert attrs["Config"]["Cmd"] == inspect(origin)["Config"]["Cmd"]
            ports = host_ports(attrs)
            assert len(ports) == 1 and not ports & seen  # its own free port, shown
            seen |= ports
            assert new.ports == (f"{ports.pop()}->80/tcp",)
        # No stray container: exactly the two clones exist.
        assert set(engine.ids_with_label(CLONE_OF)) - before == {n.id for n in result.created}
        group = find_group(engine, container_id=result.created[0].id)
        assert group.count == 3 and group.source_id == origin
        down = scale(engine, container_id=origin, step=-1)
        assert down.removed == (result.created[1].name,)  # the newest clone goes first
        down = scale(engine, container_id=origin, step=-1)
        assert down.removed == (result.created[0].name,)
        with pytest.raises(ScaleError, match="original container"):
            scale(engine, container_id=origin, step=-1)
        assert inspect(origin)["State"]["Running"]
    finally:
        for new in result.created:
            engine.remove(new.id)


def test_a_replica_that_fails_to_start_is_rolled_back_and_named(engine, run_container, monkeypatch):
    origin = run_container("sleep 600", stop_signal="SIGKILL")
    flaky = Engine(engine.url, timeout=30)
    real_start = flaky.start_container
    name = inspect(origin)["Name"][1:]

    def start(cid: str) -> None:
        if inspect(cid)["Name"][1:] == f"{name}-clone-2":
            raise EngineError("the Docker engine answered: port is already allocated")
        real_start(cid)

    monkeypatch.setattr(flaky, "start_container", start)
    result = scale(flaky, container_id=origin, desired=4)
    try:
        assert [n.name for n in result.created] == [f"{name}-clone-1", f"{name}-clone-3"]
        assert result.failed == (
            (
                f"{name}-clone-2",
                "the Docker engine answered: port is already allocated (rolled back)",
            ),
        )
        assert result.severity == "warning"
        assert inspect(f"{name}-clone-2") == {}  # nothing half-done
    finally:
        for new in result.created:
            engine.remove(new.id)
        flaky.close()


def _time(value: str) -> float:
    """An engine timestamp that must be set, as epoch seconds."""
    when = parse_time(value)
    assert when is not None, value
    return when


def test_replicas_are_created_in_parallel(engine, run_container):
    origin = run_container("sleep 600", stop_signal="SIGKILL")
    group = find_group(engine, container_id=origin)
    steps: list[tuple[int, int, str]] = []
    result = execute_plan(engine, plan_scale(group, 6), on_progress=lambda *a: steps.append(a))
    try:
        assert result.ok and len(result.created) == 5
        assert steps[0][:2] == (0, 5) and steps[-1][:2] == (5, 5)
        created = sorted(_time(inspect(n.id)["Created"]) for n in result.created)
        started = sorted(_time(inspect(n.id)["State"]["StartedAt"]) for n in result.created)
        # A second replica was created before the first one had started: side by side.
        assert created[1] < started[0]
    finally:
        for new in result.created:
            engine.remove(new.id)


# --- the real engine: docker-compose ------------------------------------------------------


COMPOSE = """\
version: "2.4"
services:
  app:
    image: {image}
    command: sleep 3600
    stop_grace_period: 1s
    labels:
      {label}: "{tag}"
    ports:
      - "80"
  fixed:
    image: {image}
    command: sleep 3600
    container_name: {project}-fixed
    stop_grace_period: 1s
    labels:
      {label}: "{tag}"
"""


@pytest.fixture
def compose_project(image, session_tag, tmp_path: Path):
    """A compose project started by Debian's docker-compose; always `down`-ed afterwards."""
    require_tools("docker-compose")
    project = f"aitoptest{uuid.uuid4().hex[:8]}"
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        COMPOSE.format(image=TEST_IMAGE, label=TEST_LABEL, tag=session_tag, project=project)
    )

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-p", project, "-f", str(path), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    try:
        compose("up", "-d")
        yield project, compose
    finally:
        compose("down", "-v", "--remove-orphans", check=False)


def test_a_compose_service_scaled_up_and_down_is_seen_by_docker_compose(engine, compose_project):
    project, compose = compose_project
    group = find_group(engine, group=(project, "app"))
    assert group.count == 1 and group.name_format == f"{project}_app_{{n}}"
    up = scale(engine, group=(project, "app"), step=1)
    assert up.ok, up.summary
    assert [n.name for n in up.created] == [f"{project}_app_2"]
    up = scale(engine, group=(project, "app"), desired=4)
    assert up.ok, up.summary
    assert sorted(n.name for n in up.created) == [f"{project}_app_3", f"{project}_app_4"]
    new = inspect(f"{project}_app_4")
    first = inspect(f"{project}_app_1")
    assert new["Config"]["Labels"][COMPOSE_NUMBER] == "4"
    same = {k: v for k, v in first["Config"]["Labels"].items() if k != COMPOSE_NUMBER}
    assert {k: v for k, v in new["Config"]["Labels"].items() if k != COMPOSE_NUMBER} == same
    assert "app" in new["NetworkSettings"]["Networks"][f"{project}_default"]["Aliases"]

    ps = compose("ps", "-q", "app").stdout.split()
    assert len(ps) == 4
    assert {inspect(i)["Name"][1:] for i in ps} == {f"{project}_app_{n}" for n in range(1, 5)}
    logs = compose("logs", "--no-color", "app").stdout
    assert f"{project}_app_4" in logs and f"{project}_app_3" in logs

    down = scale(engine, group=(project, "app"), desired=2)
    assert down.ok, down.summary
    assert down.removed == (f"{project}_app_4", f"{project}_app_3")
    ps = compose("ps", "-q", "app").stdout.split()
    assert {inspect(i)["Name"][1:] for i in ps} == {f"{project}_app_1", f"{project}_app_2"}
    assert f"{project}_app_2" in compose("ps").stdout

    compose("down")
    left = engine.list_containers([f"com.docker.compose.project={project}"])
    assert left == []  # docker-compose itself removed our replica


def test_a_service_with_a_fixed_container_name_is_refused(engine, compose_project):
    project, _ = compose_project
    with pytest.raises(ScaleError, match="fixed container_name"):
        scale(engine, container_id=f"{project}-fixed", step=1)
    assert len(engine.list_containers([f"com.docker.compose.project={project}"])) == 2


# --- the real engine: swarm -----------------------------------------------------------------


@pytest.fixture
def swarm(engine):
    """A single-node swarm: this engine's own, or one initialised (and left) by the test."""
    state = swarm_state(engine)
    made = False
    if state == "inactive":
        for extra in ([], ["--advertise-addr", "127.0.0.1"]):
            run = subprocess.run(
                ["docker", "swarm", "init", *extra], capture_output=True, text=True
            )
            if run.returncode == 0:
                made = True
                break
        else:
            unavailable("swarm", f"cannot initialise one here: {run.stderr.strip()}")
    elif state != "active":
        unavailable("swarm", f"this engine's swarm is {state}")
    try:
        yield
    finally:
        if made:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)


def service_replicas(name: str) -> str:
    return subprocess.run(
        ["docker", "service", "ls", "--filter", f"name={name}", "--format", "{{.Replicas}}"],
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_a_swarm_service_scales_through_the_swarm(engine, image, session_tag, swarm):
    name = f"aitop-test-svc-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "docker", "service", "create", "--detach", "--name", name,
            "--label", f"{TEST_LABEL}={session_tag}",
            "--container-label", f"{TEST_LABEL}={session_tag}",
            "--replicas", "1", "--no-resolve-image", "--stop-grace-period", "1s",
            image, "sleep", "3600",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        wait_for(lambda: service_replicas(name) == "1/1", timeout=60, step=0.2)
        group = find_group(engine, group=("swarm", name))
        assert group.kind == KIND_SWARM and group.count == 1 and group.running == 1
        progress: list[str] = []
        up = execute_plan(
            engine, plan_scale(group, 3), on_progress=lambda d, t, s: progress.append(s)
        )
        assert up.converged == 3 and up.ok, up.summary
        assert up.summary.startswith(f"Scaled swarm service {name} from 1 to 3: 3/3 tasks")
        assert progress[-1] == "3/3 tasks running"
        assert service_replicas(name) == "3/3"
        # From one of its task containers, `-` scales the service, not the container.
        task = engine.ids_with_label(f"com.docker.swarm.service.name={name}")[0]
        group = find_group(engine, container_id=task)
        plan = step_plan(group, -1)
        assert plan.needs_confirmation and plan.desired == 2
        down = execute_plan(engine, plan)
        assert down.converged == 2 and down.ok, down.summary
        assert service_replicas(name) == "2/2"
    finally:
        subprocess.run(["docker", "service", "rm", name], capture_output=True)
        # Its tasks' containers go a moment later (best effort: a clean-up must not fail).
        poll(lambda: not engine.ids_with_label(f"com.docker.swarm.service.name={name}"), 30, 0.2)
