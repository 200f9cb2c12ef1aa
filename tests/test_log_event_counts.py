"""How many events a container logged since its current start (issue 18, item 4): runs of
lines counted once (a traceback's lines are one traceback), counts that go on across reads and
start again with a new run, marked partial where a read hit its cap; and on the real engine, a
model container that logs a CUDA OOM, a traceback and an NCCL error shows those counts, and after
its restart counts again from nothing."""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Iterator

import pytest

from tests.fixtures.serving.rig import docker_exec
from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.logs.classify import Classifier, classify
from tui.fleet.logs.tally import EventTally
from tui.fleet.logs.types import LineKind, LogLine
from tui.fleet.models import LogEventCounts
from tui.fleet.monitor import FleetMonitor
from tui.fleet.serving.logstate import LogWatch
from tui.fleet.snapshot import snapshot_json

TROUBLE = (
    "Traceback (most recent call last):",
    '  File "/app/server.py", line 12, in <module>',
    "    model.load()",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "INFO: retrying with a smaller batch",
    "[rank0]: RuntimeError: NCCL error: unhandled cuda error (run with NCCL_DEBUG=INFO)",
    "INFO: serving",
)
"""One traceback (ended by a CUDA OOM exception line), one NCCL error, ordinary lines."""


def lines(texts: tuple[str, ...] | list[str], stream: int = 1) -> list[LogLine]:
    # Classified as the log splitter does: following the traceback across lines.
    classifier = Classifier()
    return [
        LogLine(n, t, (), classifier.classify(t, stream), "", stream) for n, t in enumerate(texts)
    ]


def test_a_traceback_is_one_event_and_its_exception_line_another():
    tally = EventTally()
    tally.feed(lines(TROUBLE))
    counts = tally.counts()
    assert counts.as_dict() == {"cuda-oom": 1, "nccl": 1, "traceback": 1}
    assert counts.total == 3 and counts.alarming == 2 and counts.read and not counts.partial
    assert counts.get(LineKind.NCCL) == 1 and counts.get(LineKind.ERROR) == 0


def test_events_apart_count_apart_and_a_run_cut_between_reads_counts_once():
    tally = EventTally()
    tally.feed(lines(["ERROR failed to bind", "INFO ok", "ERROR failed to bind"]))
    assert tally.counts().get(LineKind.ERROR) == 2
    # Two reads: the first ends inside a run of error lines, the next goes on with it.
    tally = EventTally()
    tally.feed([LogLine(1, "ERROR a", (), classify("ERROR a"))])
    tally.feed([LogLine(2, "ERROR b", (), classify("ERROR b"))], complete=False)
    counts = tally.counts()
    assert counts.get(LineKind.ERROR) == 1 and counts.partial
    # Model-load and ready lines are progress, not events.
    tally = EventTally()
    tally.feed(lines(["Loading safetensors checkpoint shards: 10% Completed | 1/10"]))
    assert tally.counts() == LogEventCounts((), read=True)


def test_nothing_read_is_not_zero():
    assert not EventTally().counts().read
    assert LogEventCounts().total == 0 and not LogEventCounts().read


def _stamp(ts: int) -> str:
    seconds, ns = divmod(ts, 1_000_000_000)
    day = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return day.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


BASE = 1_700_000_000_000_000_000


class FakeLogs:
    """An engine's log for `LogWatch`: the last `tail` lines since `since`."""

    def __init__(self) -> None:
        self.lines: dict[str, list[tuple[int, str]]] = {}

    def write(self, cid: str, *texts: str) -> None:
        kept = self.lines.setdefault(cid, [])
        for text in texts:
            kept.append((BASE + len(kept) + 1, text))

    def __call__(self, cid: str, tail: int, since: int, max_bytes: int):
        kept = [(ts, text) for ts, text in self.lines.get(cid, []) if ts >= since]
        return [(1, f"{_stamp(ts)} {text}\n".encode()) for ts, text in kept[-tail:]]


def test_a_watch_counts_since_the_current_start_across_reads():
    logs = FakeLogs()
    watch = LogWatch(logs, tail=50)
    logs.write("a", *TROUBLE[:3])
    watch.round([("a", BASE)])
    assert watch.events()["a"].as_dict() == {"traceback": 1}
    logs.write("a", *TROUBLE[3:])  # the traceback ends in the next read
    watch.round([("a", BASE)])
    assert watch.events()["a"].as_dict() == {"cuda-oom": 1, "nccl": 1, "traceback": 1}
    # A new start: counts begin again from what the new run logged.
    restart = BASE + len(logs.lines["a"]) + 1
    logs.write("a", "INFO: serving")
    watch.round([("a", restart)])
    assert watch.events()["a"] == LogEventCounts((), read=True)


def test_a_read_that_hits_its_cap_makes_the_counts_a_lower_bound():
    logs = FakeLogs()
    watch = LogWatch(logs, tail=5)
    logs.write("a", *(f"ERROR request {n} failed" if n % 2 else "INFO ok" for n in range(20)))
    watch.round([("a", BASE)])
    counts = watch.events()["a"]
    assert counts.partial and counts.get(LineKind.ERROR) == 3, "the last 5 lines: 3 errors"


# --- on the real engine -----------------------------------------------------------------------


def trouble_script() -> str:
    """Logs TROUBLE once, unless /quiet exists (then only an ordinary line), then sleeps."""
    echo = "; ".join(f"echo {shlex.quote(t)}" for t in TROUBLE)
    return f"if [ ! -f /quiet ]; then {echo}; fi; echo 'INFO: up'; exec sleep 3600"


@pytest.fixture
def monitor(engine: Engine) -> Iterator[FleetMonitor]:
    mon = FleetMonitor(Engine(engine.url))
    mon.start()
    yield mon
    mon.stop()


def events_of(mon: FleetMonitor, cid: str, check, timeout: float = 30.0) -> LogEventCounts:
    def seen() -> LogEventCounts | None:
        c = next((c for c in mon.snapshot().containers if c.info.id == cid), None)
        return c.log_events if c is not None and check(c.log_events) else None

    return wait_for(seen, timeout, what=f"log events of {cid[:12]}")


def test_a_model_containers_counts_show_and_start_again_after_a_restart(
    engine, run_container, monitor
):
    cid = run_container(trouble_script(), labels={"aitop.model": "org/counted"})
    plain = run_container(trouble_script())
    counts = events_of(monitor, cid, lambda e: e.total >= 3)
    assert counts.as_dict() == {"cuda-oom": 1, "nccl": 1, "traceback": 1}
    assert counts.alarming == 2
    entry = next(c for c in monitor.snapshot().containers if c.info.id == plain)
    assert not entry.log_events.read, "only model containers' logs are read"
    docker_exec(cid, "touch /quiet")
    engine.restart_container(cid, timeout=1)
    again = events_of(monitor, cid, lambda e: e.read and e.total == 0)
    assert again == LogEventCounts((), read=True)


def test_snapshot_json_has_the_log_events(engine, run_container):
    cid = run_container(trouble_script(), labels={"aitop.model": "org/counted"})

    def logged() -> bool:
        with engine.open_logs(cid, follow=False, tail=20) as stream:
            return b"INFO: up" in b"".join(p for _, p in stream.read())

    wait_for(logged, what="its lines written")
    doc = snapshot_json(Engine(engine.url))
    entry = next(c for c in doc["hosts"][0]["containers"] if c["id"] == cid)
    assert entry["log_events"] == {"cuda-oom": 1, "nccl": 1, "traceback": 1}


def test_a_model_container_that_died_keeps_the_counts_of_its_last_run(
    engine, run_container, monitor
):
    """Its last lines (why it died) are read once more after it stopped; no serving state."""
    script = "sleep 2; echo 'torch.OutOfMemoryError: CUDA out of memory.'; exit 1"
    cid = run_container(script, labels={"aitop.model": "org/died"})
    wait_for(
        lambda: any(c.info.id == cid and c.log_events.read for c in monitor.snapshot().containers),
        timeout=20,
        what="its log read while it ran",
    )
    counts = events_of(monitor, cid, lambda e: e.get(LineKind.CUDA_OOM) == 1)
    assert counts.alarming == 1
    entry = next(c for c in monitor.snapshot().containers if c.info.id == cid)
    assert entry.info.state == "exited" and entry.serving is None
    assert entry.info.last_exit is not None and entry.info.last_exit.code == 1


def test_counts_of_an_old_run_are_not_the_new_runs():
    logs = FakeLogs()
    watch = LogWatch(logs)
    logs.write("a", TROUBLE[5])
    assert watch.read_at("a") is None
    watch.round([("a", BASE)])
    read = watch.read_at("a")
    assert read is not None
    assert watch.events({"a": BASE})["a"].get(LineKind.NCCL) == 1
    # It started again and its new run was not read yet: no counts, not the old run's.
    assert watch.events({"a": BASE + 50}) == {}
    assert watch.events()["a"].get(LineKind.NCCL) == 1
