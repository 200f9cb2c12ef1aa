"""Lifecycle actions: target resolution and confirmations (pure), each action against the real
engine as `docker inspect` reports it, bulk actions, failures in the engine's words, the shell,
and read-only mode proven by the engine's event stream."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import uuid

import pytest

from tests.helpers import TEST_LABEL, wait_for
from tui.fleet.actions import lifecycle as act
from tui.fleet.actions.scaling.execute import execute_plan
from tui.fleet.actions.scaling.groups import find_group
from tui.fleet.actions.scaling.plan import plan_scale
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.models import ContainerInfo

TRAP_TERM = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


def info(cid: str, name: str, state: str = "running", group=("", "")) -> ContainerInfo:
    project, service = group
    return ContainerInfo(
        id=cid,
        name=name,
        image="img",
        model="",
        is_model=False,
        state=state,
        compose_project=project if project != "swarm" else "",
        compose_service=service if project != "swarm" else "",
        swarm_service=service if project == "swarm" else "",
    )


FLEET = (
    info("a" * 64, "web-1", group=("shop", "web")),
    info("b" * 64, "web-2", "paused", group=("shop", "web")),
    info("c" * 64, "db-1", group=("shop", "db")),
    info("d" * 64, "lone", "exited"),
    info("e" * 64, "api.1", group=("swarm", "api")),
)


# --- pure ---------------------------------------------------------------------------------


def test_marked_containers_win_over_the_selection():
    got = act.resolve_targets(FLEET, marked={"c" * 64, "d" * 64}, selected_id="a" * 64)
    assert [c.name for c in got] == ["db-1", "lone"]


def test_stale_marks_fall_back_to_the_selection():
    got = act.resolve_targets(FLEET, marked={"gone"}, selected_id="d" * 64)
    assert [c.name for c in got] == ["lone"]


def test_a_service_row_applies_to_all_its_containers_and_a_project_row_to_all_services():
    got = act.resolve_targets(FLEET, selected_group=("shop", "web"))
    assert [c.name for c in got] == ["web-1", "web-2"]
    got = act.resolve_targets(FLEET, selected_group=("shop", ""))
    assert [c.name for c in got] == ["db-1", "web-1", "web-2"]
    got = act.resolve_targets(FLEET, selected_group=("swarm", "api"))
    assert [c.name for c in got] == ["api.1"]
    assert act.resolve_targets(FLEET) == ()


def test_pause_pauses_the_running_else_unpauses_the_paused():
    web = act.resolve_targets(FLEET, selected_group=("shop", "web"))
    assert act.pause_or_unpause(web) == (act.PAUSE, (FLEET[0],))
    assert act.pause_or_unpause((FLEET[1],)) == (act.UNPAUSE, (FLEET[1],))
    assert act.pause_or_unpause((FLEET[3],)) == (act.UNPAUSE, ())


def test_confirmations_name_exactly_what_will_go():
    targets = (FLEET[0], FLEET[3])
    stop = act.confirmation(act.STOP, targets)
    assert stop is not None and stop.title == "Stop 2 containers?"
    assert stop.items == (
        f"web-1  ({'a' * 12}, img, running)",
        f"lone  ({'d' * 12}, img, exited)",
    )
    kill = act.confirmation(act.KILL, (FLEET[0],), signal="SIGTERM")
    assert kill is not None and kill.title == "Send SIGTERM to web-1?"
    assert kill.yes == "Send SIGTERM"  # a signal, which may not end it (issue 16, item 8)
    remove = act.confirmation(act.REMOVE, targets)
    assert remove is not None
    assert remove.title == "Remove 2 containers? (1 running: they are killed first)"
    assert remove.option == "also remove anonymous volumes"
    assert act.confirmation(act.START, targets) is None
    assert act.confirmation(act.RESTART, targets) is None


def test_results_say_what_happened_and_why_not():
    ok = act.ActionResult(act.STOP, succeeded=(act.Outcome("1", "a"), act.Outcome("2", "b")))
    assert ok.ok and ok.severity == "information"
    assert ok.summary == "Stopped: a, b"
    mixed = act.ActionResult(
        act.KILL,
        succeeded=(act.Outcome("1", "a"),),
        failed=(act.Outcome("2", "b", "the engine said no"),),
        detail="SIGHUP",
    )
    assert mixed.severity == "warning"
    assert mixed.summary == (
        "Sent SIGHUP: a\nSending SIGHUP failed for 1 of 2:\n• b: the engine said no"
    )
    # What the engine reported instead: said per container, not claimed as done.
    noted = act.ActionResult(
        act.START,
        succeeded=(
            act.Outcome("1", "a"),
            act.Outcome("2", "b", note=act.ALREADY_RUNNING),
            act.Outcome("3", "c", note=act.UNPAUSED),
        ),
    )
    assert noted.summary == (
        "Started: a\nb: already running, nothing to start\nc: was paused: unpaused"
    )
    refused = act.ActionResult(act.REMOVE, refused="read-only mode: aitop changes nothing")
    assert refused.severity == "error"
    assert refused.summary == "Remove: read-only mode: aitop changes nothing"


def test_shell_command_is_bash_or_sh_and_configurable(monkeypatch):
    monkeypatch.delenv(act.SHELL_ENV, raising=False)
    assert act.shell_command() == act.DEFAULT_SHELL
    monkeypatch.setenv(act.SHELL_ENV, "exec ash -l")
    assert act.shell_command() == "exec ash -l"
    assert "exit code 127" in act.shell_exit_text("x", 127, ["docker", "-H", "u", "exec"])


# --- against the real engine --------------------------------------------------------------


def inspect(cid: str) -> dict:
    out = subprocess.run(
        ["docker", "inspect", cid], capture_output=True, text=True, check=False
    ).stdout
    found = json.loads(out or "[]")
    return found[0] if found else {}


def targets_of(engine: Engine, *ids: str) -> tuple[ContainerInfo, ...]:
    from tui.fleet.inventory import container_info

    return tuple(container_info(engine.inspect(i)) for i in ids)


def test_each_lifecycle_action_changes_what_docker_inspect_reports(engine, run_container):
    cid = run_container(TRAP_TERM)
    name = inspect(cid)["Name"].lstrip("/")
    first_start = inspect(cid)["State"]["StartedAt"]
    steps: list[str] = []

    def step(action: str, **kw) -> None:
        result = act.run_action(
            engine,
            action,
            targets_of(engine, cid),
            on_progress=lambda d, t, text: steps.append(f"{d}/{t} {text}"),
            **kw,
        )
        assert result.ok, result.summary

    step(act.PAUSE)
    assert inspect(cid)["State"]["Status"] == "paused"
    step(act.UNPAUSE)
    assert inspect(cid)["State"]["Status"] == "running"
    step(act.STOP)
    state = inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    step(act.START)
    second_start = inspect(cid)["State"]["StartedAt"]
    assert inspect(cid)["State"]["Running"] and second_start != first_start
    step(act.RESTART)
    assert inspect(cid)["State"]["StartedAt"] != second_start
    step(act.KILL, signal="SIGKILL")
    state = inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    step(act.REMOVE)
    assert inspect(cid) == {}
    assert steps[:2] == [f"0/1 pausing {name}", f"1/1 pausing {name}"]


def test_stop_waits_for_a_slow_container_past_the_client_timeout(engine, run_container):
    # PID 1 ignores SIGTERM: the engine waits the 7 s grace, longer than a 5 s client timeout.
    cid = run_container("sleep 600", stop_timeout=7)
    short = Engine(engine.url, timeout=5)
    try:
        result = act.run_action(short, act.STOP, targets_of(engine, cid))
    finally:
        short.close()
    assert result.ok, result.summary
    assert inspect(cid)["State"]["ExitCode"] == 137


def test_kill_sends_the_chosen_signal(engine, run_container):
    cid = run_container("trap 'exit 42' USR1; while :; do sleep 0.1; done")
    result = act.run_action(engine, act.KILL, targets_of(engine, cid), signal="SIGUSR1")
    assert result.ok and result.summary.startswith("Sent SIGUSR1: ")
    wait_for(lambda: not inspect(cid)["State"]["Running"])
    assert inspect(cid)["State"]["ExitCode"] == 42


def test_remove_keeps_or_removes_anonymous_volumes_as_asked(engine, run_container):
    keep = run_container("sleep 600", volumes=["/data"])
    drop = run_container("sleep 600", volumes=["/data"])
    keep_vol = inspect(keep)["Mounts"][0]["Name"]
    drop_vol = inspect(drop)["Mounts"][0]["Name"]
    try:
        assert act.run_action(engine, act.REMOVE, targets_of(engine, keep)).ok
        assert act.run_action(engine, act.REMOVE, targets_of(engine, drop), volumes=True).ok

        def volume_exists(name: str) -> bool:
            return (
                subprocess.run(
                    ["docker", "volume", "inspect", name], capture_output=True, check=False
                ).returncode
                == 0
            )

        assert inspect(keep) == {} and inspect(drop) == {}
        assert volume_exists(keep_vol)
        assert not volume_exists(drop_vol)
    finally:
        subprocess.run(["docker", "volume", "rm", keep_vol], capture_output=True, check=False)


def test_bulk_action_names_each_failure_in_the_engines_words(engine, run_container):
    running = [run_container(TRAP_TERM) for _ in range(3)]
    stopped = run_container("true")
    wait_for(lambda: not inspect(stopped)["State"]["Running"])
    targets = targets_of(engine, *running, stopped)
    result = act.run_action(engine, act.KILL, targets, signal="SIGKILL")
    assert {o.container_id for o in result.succeeded} == set(running)
    assert [o.container_id for o in result.failed] == [stopped]
    assert "is not running" in result.failed[0].error
    assert result.severity == "warning"
    for cid in running:
        assert inspect(cid)["State"]["ExitCode"] == 137
    # A container removed between the table and the action is named, not a crash.
    gone = run_container("sleep 600")
    gone_targets = targets_of(engine, gone)
    engine.remove(gone)
    result = act.run_action(engine, act.STOP, gone_targets)
    assert result.failed[0].error == "it no longer exists"


def test_bulk_stop_runs_in_parallel(engine, run_container):
    # Each needs its full 4 s grace (PID 1 ignores SIGTERM): 16 s one after the other.
    ids = [run_container("sleep 600", stop_timeout=4) for _ in range(4)]
    started = time.monotonic()
    result = act.run_action(engine, act.STOP, targets_of(engine, *ids))
    assert result.ok and len(result.succeeded) == 4
    assert time.monotonic() - started < 10


def test_shell_argv_opens_an_interactive_shell_on_the_same_engine(engine, run_container):
    cid = run_container("sleep 600")
    argv = act.shell_argv(engine, cid)
    assert argv[1:3] == ["-H", engine.url]
    # `--` ends docker's options: whatever an id held, it could not pass as one.
    assert argv[argv.index("--") + 1] == cid
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes docker exec
        os.execv(argv[0], argv)
    output = b""
    try:
        os.write(fd, b"echo marker-$((40+2)); exit 3\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"marker-42" in output
    assert os.waitstatus_to_exitcode(status) == 3


# --- read-only: nothing reaches the engine ------------------------------------------------


def engine_events(since: float, until: float, *filters: str) -> list[dict]:
    # The engine stamps events in nanoseconds: microseconds tell the test's calls apart.
    args = ["docker", "events", "--since", f"{since:.6f}", "--until", f"{until:.6f}"]
    for f in filters:
        args += ["--filter", f]
    out = subprocess.run(
        [*args, "--format", "{{json .}}"], capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_read_only_makes_no_changing_call(engine, run_container, session_tag):
    cid = run_container("sleep 600", labels={"aitop.model": "m"})
    ro = Engine(engine.url)
    ro.read_only = True
    since = time.time()
    targets = targets_of(engine, cid)
    for action in act.ACTIONS:
        result = act.run_action(ro, action, targets, signal="SIGKILL")
        assert result.refused.startswith("read-only mode"), action
    calls = [
        lambda: ro.start_container(cid),
        lambda: ro.stop_container(cid),
        lambda: ro.restart_container(cid),
        lambda: ro.pause_container(cid),
        lambda: ro.unpause_container(cid),
        lambda: ro.kill_container(cid, "SIGKILL"),
        lambda: ro.remove_container(cid, force=True),
        lambda: ro.create_container({"Image": "x"}, name="nope"),
        lambda: ro.scale_service("nope", 3),
        lambda: act.shell_argv(ro, cid),
        lambda: ro.run("x", ["true"]),
        lambda: ro.remove(cid),
        lambda: ro.build_image("aitop-ro-nope:1", {"Dockerfile": (b"FROM scratch\n", 0o644)}),
    ]
    for call in calls:
        with pytest.raises(EngineError, match=r"^read-only mode: "):
            call()
    group = find_group(ro, container_id=cid)  # reading is allowed
    for desired in (3, 0):
        scaled = execute_plan(ro, plan_scale(group, desired), allow_original=True)
        assert scaled.refused.startswith("read-only mode")
    ro.close()
    # Every call above was answered: an event it caused is in the engine's log by now.
    until = time.time()
    mine = engine_events(since, until, f"label={TEST_LABEL}={session_tag}")
    assert mine == []
    created = [
        e
        for e in engine_events(since, until, "type=container", "event=create")
        if (e.get("Actor") or {}).get("Attributes", {}).get(TEST_LABEL) == session_tag
    ]
    assert created == []
    assert inspect(cid)["State"]["Running"] is True


def test_a_container_name_no_one_uses_is_gone_in_the_engines_words(engine):
    name = f"aitop-test-nothing-{uuid.uuid4().hex[:6]}"
    result = act.run_action(engine, act.START, (info(name, name, "exited"),))
    assert result.failed and result.failed[0].error == "it no longer exists"


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("usr2", "SIGUSR2"),
        ("SIGHUP", "SIGHUP"),
        (" term ", "SIGTERM"),
        ("9", "9"),
        ("64", "64"),
        ("rtmin+3", "SIGRTMIN+3"),
        ("SIGRTMAX-1", "SIGRTMAX-1"),
    ],
)
def test_a_typed_signal_is_sent_as_the_engine_names_it(typed: str, sent: str):
    assert act.parse_signal(typed) == sent


@pytest.mark.parametrize(
    ("typed", "word"),
    [
        ("", "type a signal"),
        ("0", "1 to 64"),
        ("65", "1 to 64"),
        ("SIGFOO", "unknown signal"),
        ("RTMIN+16", "unknown signal"),
        ("-9", "unknown signal"),
    ],
)
def test_an_unknown_signal_is_refused_in_a_clear_word(typed: str, word: str):
    with pytest.raises(act.BadSignal, match=word):
        act.parse_signal(typed)
