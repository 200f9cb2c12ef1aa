"""What happened to the fleet lately (issue 17, item 2): the engine's container events, kept
once each (the history and the live stream overlap), seeded from the engine's history so that
what happened before aitop connected is there too: the events view, and the last exits and
restarts of `aitop snapshot --json`."""

from __future__ import annotations

import json
import time

from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.events import MAX_EVENTS, EventLog, FleetEvent, fleet_event
from tui.fleet.monitor import FleetMonitor
from tui.fleet.snapshot import snapshot_json


def raw(action: str, cid: str = "c" * 64, *, nano: int = 1_700_000_000_000_000_000, **attributes):
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": cid, "Attributes": {"name": "web", "image": "img", **attributes}},
        "timeNano": nano,
    }


def shown(event: dict) -> FleetEvent:
    found = fleet_event(event)
    assert found is not None
    return found


def test_what_each_event_says():
    assert shown(raw("die", exitCode="137")).detail == "exit 137"
    assert shown(raw("kill", signal="15")).detail == "SIGTERM"
    assert shown(raw("kill", signal="99")).detail == "signal 99"
    health = shown(raw("health_status: unhealthy"))
    assert (health.action, health.detail, health.alarming) == ("health_status", "unhealthy", True)
    assert shown(raw("die", exitCode="0")).alarming is False
    assert shown(raw("oom")).alarming is True
    assert fleet_event(raw("exec_start: sh -c true")) is None
    assert fleet_event({"Type": "network", "Action": "connect"}) is None
    event = shown(raw("start", nano=1_700_000_000_500_000_000))
    assert event.at == 1_700_000_000.5 and event.name == "web" and event.image == "img"


def test_names_from_an_image_author_are_made_safe():
    event = shown(raw("start", name="\x1b]0;owned\x07evil[/]"))
    assert "\x1b" not in event.name and "\x07" not in event.name


def test_each_event_once_newest_first_and_bounded():
    log = EventLog(limit=3)
    assert log.take(raw("start", nano=1)) and log.take(raw("die", nano=2, exitCode="3"))
    assert not log.take(raw("start", nano=1))  # the same event again (history, then live)
    assert log.take(raw("exec_create", nano=3))  # new, but not shown
    for n in range(4, 8):
        log.take(raw("start", nano=n))
    assert len(log) == 3
    assert [e.at for e in log.recent()] == [7e-9, 6e-9, 5e-9]


def test_the_history_seeds_what_happened_before_aitop_connected(engine, run_container):
    cid = run_container("sleep 1; exit 3", restart_policy={"Name": "always"})
    # Two restarts happen before any monitor exists.
    # RestartCount counts a restart before its start event is out: at 3, the second
    # restart's start is at least a run (1 s) old.
    wait_for(lambda: engine.inspect(cid)["RestartCount"] >= 3, timeout=60, what="three restarts")
    monitor = FleetMonitor(Engine(engine.url))
    try:
        monitor.connect()
        first = monitor.seed_history()
        assert first > 0
        # Again (a reconnect): only what happened since is new, nothing is held twice.
        assert monitor.seed_history() < first
        monitor.resync()
        mine = [e for e in monitor.recent_events() if e.container_id == cid]
        assert len({(e.at, e.action) for e in mine}) == len(mine)
        actions = [e.action for e in mine]
        assert actions.count("die") >= 2 and "create" in actions
        assert all(e.detail == "exit 3" for e in mine if e.action == "die")
        assert [e.at for e in mine] == sorted((e.at for e in mine), reverse=True)
        info = next(c.info for c in monitor.snapshot().containers if c.info.id == cid)
        assert info.restarts_recent >= 2
        assert info.last_exit is not None and info.last_exit.code == 3
    finally:
        monitor.stop()


def test_snapshot_json_knows_restarts_from_before_it_ran(engine, run_container):
    cid = run_container("sleep 1; exit 3", restart_policy={"Name": "always"})
    wait_for(lambda: engine.inspect(cid)["RestartCount"] >= 3, timeout=60, what="three restarts")
    began = time.monotonic()
    doc = json.loads(json.dumps(snapshot_json(Engine(engine.url), include_all=True)))
    assert time.monotonic() - began < 30
    mine = next(c for c in doc["hosts"][0]["containers"] if c["id"] == cid)
    assert mine["restarts_recent"] >= 2
    assert mine["exit_code"] == 3


def test_the_log_is_bounded_by_default():
    log = EventLog()
    for n in range(MAX_EVENTS + 50):
        log.take(raw("start", nano=n + 1))
    assert len(log) == MAX_EVENTS
