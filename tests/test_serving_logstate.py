"""What a container's log says of its server (issue 18, item 3), without an engine: the signal of
every line of the real-output corpus, dead that sticks until the next start, the bounded
rounds of LogWatch and how a log signal merges with the pages' reading."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from tests.hostile_lines import all_lines
from tui.fleet.logs.classify import classify
from tui.fleet.logs.types import LogLine
from tui.fleet.serving.logstate import (
    LogSignal,
    LogWatch,
    latest_signal,
    merge,
    needs_log,
    signal_of,
)
from tui.fleet.serving.types import ServingReading, ServingState

CORPUS = Path(__file__).parent / "fixtures" / "log_events" / "corpus.jsonl"

DEATHS = (
    "(APIServer pid=1) ERROR 05-05 12:36:59 [serving.py:1173] vllm.v1.engine.exceptions."
    "EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
    "ERROR 07-10 14:49:36 [core.py:515] EngineCore failed to start.",
    "2024-10-16T10:52:07.118204Z ERROR text_generation_launcher: Shard 1 crashed",
    "2024-04-18T22:45:20.211000Z ERROR text_generation_launcher: Webserver Crashed",
)


def line(text: str, ts: int = 1_700_000_000_000_000_000) -> LogLine:
    return LogLine(ts, text, (), classify(text))


def corpus() -> list[dict[str, str]]:
    return [json.loads(row) for row in CORPUS.read_text(encoding="utf-8").splitlines() if row]


def test_every_corpus_line_gives_the_signal_of_its_kind():
    expected = {
        "model-load": "loading",
        "model-ready": "ready",
        "cuda-oom": "dead",
        "oom-killed": "dead",
    }
    counts: dict[str, int] = {}
    for row in corpus():
        found = signal_of(line(row["line"]))
        want = expected.get(row["kind"])
        if row["kind"] in ("error", "traceback") and found is not None:
            # The engine's death among the errors: only the lines that say it died.
            assert found.state == "dead", row
            counts["death"] = counts.get("death", 0) + 1
            continue
        assert (found.state if found else None) == want, row
        if want:
            counts[want] = counts.get(want, 0) + 1
    assert counts["loading"] >= 40 and counts["ready"] >= 20 and counts["dead"] >= 40
    assert counts["death"] >= 3


@pytest.mark.parametrize("text", DEATHS)
def test_an_engines_death_is_dead(text):
    found = signal_of(line(text))
    assert found is not None and found.state == "dead"
    assert found.detail.startswith("the engine died: ")


def test_what_a_hostile_line_says_is_short_and_safe():
    for hostile in all_lines(length=8192):
        found = signal_of(line(hostile.text))
        if found is not None:
            assert len(found.detail) <= 160, hostile.name
            assert all(ch.isprintable() for ch in found.detail), hostile.name


def test_dead_stays_dead_and_the_last_signal_wins_otherwise():
    load, ready = line("Loading safetensors checkpoint shards: 10%"), line("Uvicorn running on x")
    oom = line("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    first = latest_signal([load, ready, load], None)
    assert first is not None and first.state == "loading"
    dead = latest_signal([ready, oom, ready], None)
    assert dead is not None and dead.state == "dead"
    assert latest_signal([ready], dead) is dead


class FakeLogs:
    """An engine's log of a few containers: messages in the engine's timestamped format."""

    def __init__(self) -> None:
        self.lines: dict[str, list[tuple[int, str]]] = {}
        self.calls: list[tuple[str, int, int, int]] = []

    def write(self, cid: str, ts: int, text: str) -> None:
        self.lines.setdefault(cid, []).append((ts, text))

    def __call__(self, cid: str, tail: int, since: int, max_bytes: int):
        self.calls.append((cid, tail, since, max_bytes))
        out = []
        for ts, text in self.lines.get(cid, [])[-tail:]:
            if ts < since:
                continue
            stamp = _stamp(ts)
            out.append((1, f"{stamp} {text}\n".encode()))
        return out


def _stamp(ts: int) -> str:
    seconds, ns = divmod(ts, 1_000_000_000)
    day = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return day.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


BASE = 1_700_000_000_000_000_000


def test_a_watch_reads_from_where_it_left_off_and_a_new_start_forgets():
    logs = FakeLogs()
    watch = LogWatch(logs, tail=50)
    logs.write("a", BASE + 1, "Loading safetensors checkpoint shards: 10%")
    watch.round([("a", BASE)])
    assert logs.calls[-1] == ("a", 50, BASE, watch.max_bytes)
    signal = watch.signal("a")
    assert signal is not None and signal.state == "loading"
    logs.write("a", BASE + 5, "torch.OutOfMemoryError: CUDA out of memory.")
    watch.round([("a", BASE)])
    assert logs.calls[-1][2] == BASE + 2, "the next read starts past the newest line read"
    signal = watch.signal("a")
    assert signal is not None and signal.state == "dead"
    # The container started again: what the old run said is forgotten.
    logs.write("a", BASE + 10, "INFO: Uvicorn running on http://0.0.0.0:8000")
    watch.round([("a", BASE + 9)])
    signal = watch.signal("a")
    assert signal is not None and signal.state == "ready"


def test_a_round_reads_at_most_per_round_the_longest_unread_first():
    logs = FakeLogs()
    watch = LogWatch(logs, per_round=3)
    wanted = [(f"c{n}", BASE) for n in range(7)]
    assert watch.round(wanted) == 3
    assert watch.round(wanted) == 3
    assert watch.round(wanted) == 3
    read = [call[0] for call in logs.calls]
    assert set(read) == {f"c{n}" for n in range(7)}, "every container gets its turn"
    assert watch.counts.rounds == 3 and watch.counts.reads == 9


def test_a_read_that_fails_is_that_containers_only():
    def failing(cid, tail, since, max_bytes):
        raise OSError("gone")

    watch = LogWatch(failing)
    assert watch.round([("a", BASE)]) == 1
    assert watch.signal("a") is None


READY = ServingReading("vllm", ServingState("ready"), "http://x/metrics", requests_running=3)
UNREACHABLE = ServingReading("llamacpp", ServingState("unreachable", "publish port 8080"))


def test_merge():
    ready = LogSignal("ready", 5.0, "Uvicorn running on")
    loading = LogSignal("loading", 6.0, "Loading weights")
    dead = LogSignal("dead", 7.0, "CUDA out of memory: ...")
    assert merge(READY, None) is READY
    assert merge(None, None) is None
    assert merge(READY, loading) is READY, "the pages know better than the log"
    made = merge(None, ready)
    assert made is not None and made.kind == "unknown" and made.state.name == "ready"
    assert made.since == 5.0
    stood_in = merge(UNREACHABLE, loading)
    assert stood_in is not None and stood_in.state.name == "loading"
    assert stood_in.state.detail == "from its log; metrics: publish port 8080"
    sick = merge(READY, dead)
    assert sick is not None and sick.state.name == "unhealthy"
    assert sick.requests_running == 3 and sick.since == 7.0
    assert sick.state.detail == "log: CUDA out of memory: ..."


def test_which_readings_need_the_log():
    assert needs_log(None) and needs_log(UNREACHABLE)
    assert not needs_log(READY)
    assert not needs_log(ServingReading("sglang", ServingState("metrics-off", "--enable-metrics")))
