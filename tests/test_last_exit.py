"""Why a container died (issue 17, items 2 and 4), on the real engine: an OOM-killed container
shows `oom_killed` and exit code 137, a crash loop its exit code while it runs again and its
restarts of the last 10 minutes, `aitop snapshot --json` carries the keys; and, without an
engine, how `ExitLog` reads the events and what inspect's State gives."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Latest, wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.exits import ExitLog
from tui.fleet.inventory import container_info, last_exit
from tui.fleet.logs.types import LineKind
from tui.fleet.models import (
    NO_LOG_EVENTS,
    ContainerInfo,
    LastExit,
    LogEventCounts,
)
from tui.fleet.monitor import FleetMonitor
from tui.fleet.recording import dump, load
from tui.fleet.snapshot import snapshot_json

FILL_MEMORY = "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"
"""A shell that doubles a string until the OOM killer ends it."""
CRASH = "sleep 1; exit 3"


@pytest.fixture
def live(engine: Engine) -> Iterator[Latest]:
    latest = Latest()
    monitor = FleetMonitor(Engine(engine.url), on_snapshot=latest)
    monitor.start()
    yield latest
    monitor.stop()


def info_of(latest: Latest, cid: str, check: Any, timeout: float = 20.0) -> ContainerInfo:
    def seen() -> ContainerInfo | None:
        c = latest.container(cid)
        return c.info if c is not None and check(c.info) else None

    return wait_for(seen, timeout, what=lambda: f"{cid[:12]}: {latest.container(cid)}")


def test_an_oom_killed_container_says_so(engine, run_container, live):
    cid = run_container(FILL_MEMORY, mem_limit="8m")
    info = info_of(live, cid, lambda i: i.state == "exited")
    assert info.last_exit is not None
    assert info.last_exit.oom_killed and info.last_exit.code == 137
    assert info.last_exit.signal == 9
    assert info.finished_at is not None and abs(info.finished_at - time.time()) < 60
    assert info.last_exit.at == info.finished_at
    assert info.restarts_recent == 0


def test_a_crash_loop_shows_its_exit_code_and_recent_restarts(engine, run_container, live):
    cid = run_container(CRASH, restart_policy={"Name": "always"})
    info = info_of(live, cid, lambda i: i.restarts_recent >= 2)
    assert info.last_exit is not None and info.last_exit.code == 3
    assert not info.last_exit.oom_killed and info.last_exit.signal is None
    # While it runs again the engine has reset ExitCode; the events still tell the code.
    running = info_of(live, cid, lambda i: i.state == "running" and i.restarts_recent >= 2)
    assert running.exit_code == 0
    assert running.last_exit is not None and running.last_exit.code == 3
    assert running.restart_count >= running.restarts_recent


def test_snapshot_json_says_how_each_container_last_ended(engine, run_container):
    killed = run_container(FILL_MEMORY, mem_limit="8m")
    sleeping = run_container("sleep 3600")
    wait_for(lambda: engine.inspect(killed)["State"]["Status"] == "exited", what="killed")
    doc = snapshot_json(Engine(engine.url), include_all=True)
    mine = {c["id"]: c for c in doc["hosts"][0]["containers"]}
    dead = mine[killed]
    assert dead["exit_code"] == 137 and dead["oom_killed"] is True
    assert isinstance(dead["finished_at"], float)
    assert dead["restarts_recent"] == 0 and dead["log_events"] is None
    alive = mine[sleeping]
    assert alive["exit_code"] is None and alive["oom_killed"] is False
    assert alive["finished_at"] is None and alive["restarts_recent"] == 0
    json.dumps(doc)


# --- without an engine ------------------------------------------------------------------------

T0 = 1_700_000_000.0


def event(action: str, cid: str = "c1", at: float = T0, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": cid, "Attributes": attributes},
        "timeNano": int(at * 1e9),
    }


def test_restarts_are_starts_after_a_die_within_the_window():
    log = ExitLog(window=600.0)
    log.record(event("start", at=T0))  # its first start: no restart
    for n in range(3):
        log.record(event("die", at=T0 + 10 * n + 1, exitCode="3"))
        log.record(event("start", at=T0 + 10 * n + 2))
    assert log.restarts("c1", now=T0 + 30) == 3
    assert log.restarts("c1", now=T0 + 612 + 1) == 1, "restarts older than the window drop out"
    assert log.restarts("other", now=T0) == 0
    assert log.last_exit("c1") == LastExit(3, False, T0 + 21)


def test_an_oom_event_marks_the_exit_that_follows():
    log = ExitLog()
    log.record(event("start", at=T0))
    log.record(event("oom", at=T0 + 1))
    log.record(event("die", at=T0 + 1.01, exitCode="137"))
    assert log.last_exit("c1") == LastExit(137, True, T0 + 1.01)
    log.record(event("start", at=T0 + 2))
    log.record(event("die", at=T0 + 3, exitCode="0"))
    assert log.last_exit("c1") == LastExit(0, False, T0 + 3), "the oom was the earlier run's"
    log.record(event("destroy", at=T0 + 4))
    assert log.last_exit("c1") is None and log.restarts("c1", now=T0 + 4) == 0


def test_what_inspect_says_of_the_last_exit():
    never = {"Running": True, "FinishedAt": "0001-01-01T00:00:00Z", "ExitCode": 0}
    assert last_exit(never) is None
    exited = {
        "Running": False,
        "ExitCode": 137,
        "OOMKilled": True,
        "FinishedAt": "2026-12-02T17:13:24.974641242Z",
    }
    found = last_exit(exited)
    assert found is not None and found.code == 137 and found.oom_killed and found.at is not None
    again = {**exited, "Running": True, "ExitCode": 0, "OOMKilled": False}
    assert last_exit(again) == LastExit(None, False, found.at), "the code is gone once it runs"
    restarting = {**exited, "Running": True, "Restarting": True, "ExitCode": 3}
    assert last_exit(restarting) == LastExit(3, True, found.at)


def test_the_events_fill_in_the_code_inspect_no_longer_has():
    attrs = {
        "Id": "c1",
        "Name": "/loop",
        "Config": {"Image": "busybox"},
        "State": {
            "Status": "running",
            "Running": True,
            "ExitCode": 0,
            "FinishedAt": "2026-12-02T17:13:24.034827011Z",
        },
    }
    info = container_info(attrs)
    assert info.last_exit is not None and info.last_exit.code is None
    finished = info.last_exit.at
    assert finished is not None
    log = ExitLog()
    log.record(event("die", at=finished - 0.001, exitCode="3"))
    log.record(event("start", at=finished + 0.1))
    done = log.complete(info, now=finished + 1)
    assert done.last_exit == LastExit(3, False, finished) and done.restarts_recent == 1
    # A die long before the FinishedAt inspect gives is an earlier run's: not this code.
    stale = ExitLog()
    stale.record(event("die", at=finished - 60, exitCode="9"))
    assert stale.complete(info, now=finished).last_exit == info.last_exit
    assert ExitLog().complete(info) is info, "nothing to add: the same object"


FIXTURE = Path(__file__).parent / "fixtures" / "demo_fleet.json"


def test_recordings_keep_the_last_exit_and_the_log_events_and_old_ones_load():
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    # A recording made before these fields: the same fleet without them.
    for c in data["containers"]:
        c.pop("log_events", None)
        for key in ("finished_at", "last_exit", "restarts_recent"):
            c["info"].pop(key, None)
    old = load(data)
    assert old.containers, "the recording holds containers"
    for c in old.containers:
        assert c.info.last_exit is None and c.info.finished_at is None
        assert c.info.restarts_recent == 0 and c.log_events == NO_LOG_EVENTS
    first, *rest = old.containers
    info = replace(first.info, finished_at=T0, last_exit=LastExit(137, True, T0), restarts_recent=4)
    events = LogEventCounts.of({LineKind.NCCL: 2, LineKind.TRACEBACK: 1}, partial=True)
    snap = replace(old, containers=(replace(first, info=info, log_events=events), *rest))
    again = load(json.loads(json.dumps(dump(snap))))
    assert again == snap
    assert again.containers[0].log_events.get(LineKind.NCCL) == 2
    assert again.containers[0].info.last_exit == LastExit(137, True, T0)
