"""The headless log layer: pure parts first, then against real containers.

Engine tests follow real busybox containers through the real engine: tails, live lines,
TTY streams, restarts, OOM kills, replica sets merged in time order, dropped streams resumed
without duplicates, backpressure, and hundreds of open/close cycles leaving no thread or
socket behind.
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.logs import follower as follower_mod
from tui.fleet.logs.classify import Classifier, classify
from tui.fleet.logs.export import export_lines, export_path
from tui.fleet.logs.follower import LogFollower, ReplicaSetFollower
from tui.fleet.logs.splitter import LineSplitter
from tui.fleet.logs.types import (
    DEFAULT_TAIL,
    JUMP_KINDS,
    LINE_OVERHEAD,
    PRESETS,
    InvalidQuery,
    LineKind,
    LogBatch,
    LogBuffer,
    LogLine,
    LogQuery,
    LogTarget,
    format_timestamp,
    parse_timestamp,
    preset_by_key,
    tail_preset,
)

NS = 1_000_000_000
T0 = 1767225600 * NS


def _logs(engine: Engine, cid: str, **kw) -> bytes:
    """Everything a non-following log stream returns, the stream closed afterwards."""
    out: list[bytes] = []
    with engine.open_logs(cid, follow=False, **kw) as stream:
        while messages := stream.read():
            out.extend(payload for _, payload in messages)
    return b"".join(out)


def _msg(ts_ns: int, text: bytes, stream: int = 1) -> tuple[int, bytes]:
    sec, ns = divmod(ts_ns, NS)
    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
    return stream, head + b".%09dZ " % ns + text


# --- pure parts -------------------------------------------------------------------------


def test_timestamps_parse_to_nanoseconds_and_format_back():
    assert parse_timestamp("2026-01-01T00:00:00.123456789Z") == 1767225600 * NS + 123456789
    assert parse_timestamp(b"2026-01-01T00:00:00Z") == 1767225600 * NS
    assert parse_timestamp("2026-01-01T01:00:00.5+01:00") == 1767225600 * NS + NS // 2
    assert parse_timestamp("0001-01-01T00:00:00Z") is None
    assert parse_timestamp("not a timestamp at all") is None
    ts = 1767225600 * NS + 123456789
    assert format_timestamp(ts, precision=9) == "2026-01-01T00:00:00.123456789Z"
    assert format_timestamp(ts) == "2026-01-01T00:00:00.123Z"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "cuda-oom"),
        ("RuntimeError: CUDA error: out of memory", "cuda-oom"),
        ("NCCL WARN NET/IB : Got completion from peer with error 12", "nccl"),
        ("torch.distributed.DistBackendError: NCCL error in: ncclSystemError", "nccl"),
        ("[E ProcessGroupNCCL.cpp:475] Watchdog caught collective operation timeout", "nccl"),
        ("Memory cgroup out of memory: Killed process 1234 (python)", "oom-killed"),
        ("Killed", "oom-killed"),
        ("Traceback (most recent call last):", "traceback"),
        ("Loading checkpoint shards:  50%|#####     | 1/2 [00:03<00:03]", "model-load"),
        ("INFO 01-01 12:00:00 model_runner.py: Loading model weights took 14.9 GiB", "model-load"),
        ("llama_model_load: loaded meta data with 19 key-value pairs", "model-load"),
        ("ERROR: something broke", "error"),
        ("ValueError: bad value", "error"),
        ("INFO: 127.0.0.1:5000 - GET /health 200 OK", ""),
        ("step 100 loss 0.123 lr 3e-4 memory 12GB", ""),
    ],
)
def test_classify(text: str, kind: str):
    assert classify(text) == kind


def test_line_kinds_read_as_their_strings_and_the_jump_list_follows_them():
    # Lines are styled (`log-pane--cuda-oom`) and exported by the kind's value.
    plain: str = LineKind.CUDA_OOM
    assert LineKind("cuda-oom") is LineKind.CUDA_OOM and plain == "cuda-oom"
    assert str(LineKind.NCCL) == f"{LineKind.NCCL}" == "nccl"
    assert json.dumps([LineKind.OOM_KILLED, LineKind.NORMAL]) == '["oom-killed", ""]'
    assert not LineKind.NORMAL and all(kind for kind in LineKind if kind is not LineKind.NORMAL)
    assert {kind for kind in LineKind if kind.jump} == JUMP_KINDS
    # The "next highlight" key stops at what went wrong, loads and boundaries, not at
    # ordinary lines or aitop's notices about the stream.
    assert {
        "cuda-oom", "nccl", "traceback", "oom-killed", "model-load", "model-ready", "error",
        "restart", "exited",
    } == JUMP_KINDS  # fmt: skip
    assert LineKind.NOTICE not in JUMP_KINDS and LineKind.NORMAL not in JUMP_KINDS


def test_a_traceback_is_followed_to_its_exception_line():
    clf = Classifier()
    lines = [
        "Traceback (most recent call last):",
        '  File "serve.py", line 3, in <module>',
        "    load()",
        "torch.OutOfMemoryError: CUDA out of memory.",
        "INFO: shutting down",
    ]
    kinds = [clf.classify(text, 2) for text in lines]
    assert kinds == ["traceback", "traceback", "traceback", "cuda-oom", ""]
    assert clf.classify("  indented but ordinary", 2) == ""


def test_a_run_of_lines_is_classified_as_line_by_line():
    rng = random.Random(7)
    corpus = [
        "INFO step 1 loss 0.1",
        "ERROR: disk full",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "NCCL WARN Call to connect returned Connection refused",
        "Loading checkpoint shards: 50%",
        "Killed",
        "    indented",
        "During handling of the above exception, another exception occurred:",
        "kv cache usage 43% memory fine",
        "caf\u00e9 \u212aILLED",  # non-ASCII that lower() turns into a keyword
    ]
    for _ in range(200):
        texts = [rng.choice(corpus) for _ in range(rng.randrange(1, 30))]
        keys = [rng.choice((1, 2)) for _ in texts]
        one, bulk = Classifier(), Classifier()
        expected = [one.classify(text, key) for text, key in zip(texts, keys, strict=True)]
        assert bulk.classify_many(texts, keys) == expected
        # The traceback state carries over to the next run the same way.
        assert bulk.classify_many(["  tail"], [1]) == [one.classify("  tail", 1)]


def test_lines_split_in_bulk_equal_lines_split_one_message_at_a_time():
    rng = random.Random(11)
    bodies = [
        b"INFO plain line %d",
        b"ERROR: failed %d",
        b"Traceback (most recent call last):",
        b"    frame %d",
        b"colour \x1b[31mred\x1b[0m %d",
        b"title \x1b]0;x\x07 %d",
        b"caf\xc3\xa9 %d",
        b"bad \xff utf8 %d",
        b"tab\there %d",
        b"progress 10%%\rprogress 90%% %d",
    ]
    for run in range(100):
        plain = run % 2 == 0  # every line printable ASCII: the bulk path takes them all
        messages = []
        for i in range(rng.randrange(1, 80)):
            body = rng.choice(bodies[:4] if plain else bodies)
            body = body % i if b"%d" in body else body
            ts = T0 + rng.randrange(0, 3) * NS + i
            end = b"" if not plain and rng.random() < 0.05 else b"\n"  # a partial line
            messages.append(_msg(ts, body + end, rng.choice((1, 2))))
        bulk, single = LineSplitter("x"), LineSplitter("x")
        if plain:
            bulk._feed_each = lambda *_: pytest.fail("not taken in bulk")  # type: ignore[method-assign]
        got = bulk.feed(messages) + bulk.flush()
        want = [line for m in messages for line in single.feed([m])] + single.flush()
        assert got == want
        assert bulk.last_ts == single.last_ts and bulk.messages == single.messages


def test_retained_lines_are_not_tracked_by_the_garbage_collector():
    buf = LogBuffer(max_lines=1000, max_bytes=10**9)
    buf.extend(LogLine(i, f"line {i}", (), LineKind.NORMAL, "web", 1) for i in range(500))
    gc.collect()
    # A NamedTuple stays tracked for good; the buffer's plain tuples are untracked, so a
    # full collection does not walk 100,000 retained lines.
    assert not any(gc.is_tracked(row) for row in buf._lines)
    assert isinstance(buf[0], LogLine) and buf.get(499) == LogLine(
        499, "line 499", (), LineKind.NORMAL, "web"
    )
    assert list(buf.texts())[:2] == ["line 0", "line 1"]


def test_buffer_is_bounded_by_lines():
    buf = LogBuffer(max_lines=100, max_bytes=10**9)
    buf.extend(LogLine(i, f"line {i}") for i in range(250))
    assert len(buf) == 100
    assert buf.dropped == 150
    assert buf.first_seq == 150 and buf.end_seq == 250
    assert buf[0].text == "line 150" and buf[-1].text == "line 249"
    assert buf.get(149) is None and _line(buf, 150).text == "line 150"
    assert [line.ts for line in buf] == list(range(150, 250))


def test_buffer_is_bounded_by_bytes():
    big = "x" * 10_000
    buf = LogBuffer(max_lines=10**6, max_bytes=5 * (10_000 + LINE_OVERHEAD))
    buf.extend(LogLine(i, big) for i in range(20))
    assert len(buf) == 5
    assert buf.nbytes <= buf.max_bytes
    assert buf.dropped == 15
    # One line larger than the whole budget is still kept (the newest line always is).
    buf.extend([LogLine(99, "y" * 100_000)])
    assert len(buf) == 1 and buf[0].ts == 99


def test_buffer_keeps_indexing_right_across_compaction():
    buf = LogBuffer(max_lines=1000, max_bytes=10**9)
    for start in range(0, 20_000, 500):
        buf.extend(LogLine(i, str(i)) for i in range(start, start + 500))
    assert len(buf) == 1000
    assert buf[0].ts == 19_000 and _line(buf, 19_999).ts == 19_999
    buf.clear()
    assert len(buf) == 0 and buf.first_seq == 20_000


def test_resumed_stream_drops_what_was_seen_and_keeps_the_gap():
    t0 = 1767225600 * NS
    splitter = LineSplitter("c")
    first = [_msg(t0 + i * 1000, b"line %d\n" % i) for i in range(10)]
    assert [line.text for line in splitter.feed(first)] == [f"line {i}" for i in range(10)]
    since = splitter.resume_since()
    splitter.expect_replay(since)
    # The engine replays everything from `since`: the 10 seen lines, a line it wrote
    # meanwhile with an older timestamp (stderr lagging stdout), then new ones.
    replay = [*first, _msg(t0 + 5500, b"late stderr\n", 2)]
    replay += [_msg(t0 + (10 + i) * 1000, b"line %d\n" % (10 + i)) for i in range(3)]
    texts = [line.text for line in splitter.feed(replay)]
    assert texts == ["late stderr", "line 10", "line 11", "line 12"]
    assert splitter.skipped == 10


def test_partial_lines_are_joined_per_stream():
    t0 = 1767225600 * NS
    splitter = LineSplitter("c")
    lines = splitter.feed(
        [
            _msg(t0, b"out-part1 ", 1),
            _msg(t0 + 1, b"err whole\n", 2),
            _msg(t0 + 2, b"out-part2\n", 1),
        ]
    )
    assert [(line.stream, line.text) for line in lines] == [
        (2, "err whole"),
        (1, "out-part1 out-part2"),
    ]
    assert lines[1].ts == t0


def test_engine_error_messages_in_the_stream_become_notices():
    (line,) = LineSplitter("c").feed([(3, b"error from daemon in stream: \x1b]0;x\x07gone\n")])
    assert line.kind == LineKind.NOTICE and line.text == "engine: error from daemon in stream: gone"


def test_queries_compile_and_explain_bad_regexes():
    assert LogQuery("").compile() is None
    assert _pattern(LogQuery("a.b")).search("axb") is None  # plain text: the dot is a dot
    assert _pattern(LogQuery("A.B", regex=True)).search("axb") is not None
    assert _pattern(LogQuery("A.B", regex=True, case_sensitive=True)).search("axb") is None
    with pytest.raises(InvalidQuery, match="invalid regex"):
        LogQuery("(unclosed", regex=True).compile()


def test_presets():
    keys = [p.key for p in PRESETS]
    assert keys == ["tail", "5m", "1h", "start", "all"]
    assert preset_by_key("tail").tail == DEFAULT_TAIL
    assert tail_preset(250).label == "last 250 lines"
    assert preset_by_key("5m").window(0, now_ns=1000 * NS) == (None, 700 * NS)
    assert preset_by_key("start").window(42) == (None, 42)
    assert preset_by_key("all").window(42) == (None, 0)


def test_export_writes_plain_lines_and_never_overwrites(tmp_path: Path):
    lines = [
        LogLine(1767225600 * NS, "hello", ((0, "31"),), LineKind.NORMAL, "web-1"),
        LogLine(0, "x"),
    ]
    path = export_path(tmp_path, "web/1 \x1b]0;x", now=0)
    assert path.parent == tmp_path and "/" not in path.name[len("aitop-") :]
    result = export_lines(lines, path, source=True)
    assert result.lines == 2
    content = path.read_text()
    assert content.splitlines()[0] == "2026-01-01T00:00:00.000000000Z web-1 | hello"
    assert result.bytes == len(content.encode())
    with pytest.raises(FileExistsError):
        export_lines(lines, path)


def test_pending_lines_are_bounded_by_count_and_bytes():
    follower = LogFollower(
        Engine("unix:///nonexistent.sock"),
        LogTarget("c" * 64, "c"),
        on_batch=lambda batch: None,
        max_pending_lines=1000,
        max_pending_bytes=50 * (10_000 + LINE_OVERHEAD),
    )
    inbox = follower._inbox
    source = inbox.sources[0]
    inbox.add(source, [LogLine(i, "x") for i in range(1500)])
    assert inbox.pending[0] == 1000
    inbox.add(source, [LogLine(2000 + i, "y" * 10_000) for i in range(80)])
    assert inbox.pending[0] == 50  # the byte bound: only the newest big lines stay
    lines, dropped, _ = inbox.take(time.monotonic())
    assert dropped == 1530 and [ln.ts for ln in lines] == list(range(2030, 2080))
    assert inbox.pending == (0, 0)
    assert follower.stats.dropped == 1530


# --- against the real engine ------------------------------------------------------------


class Sink:
    """Collects a follower's batches (and consumes them, as the pane does)."""

    def __init__(self, ack: bool = True) -> None:
        self.lines: list[LogLine] = []
        self.batches: list[LogBatch] = []
        self.ack = ack
        self._lock = threading.Lock()

    def __call__(self, batch: LogBatch) -> None:
        with self._lock:
            self.batches.append(batch)
            self.lines.extend(batch.lines)
        if self.ack:
            batch.consumed()

    def texts(self, kind: str | None = None) -> list[str]:
        with self._lock:
            return [ln.text for ln in self.lines if kind is None or ln.kind == kind]

    def numbers(self, prefix: str) -> list[int]:
        return [int(t.split()[1]) for t in self.texts() if t.startswith(prefix + " ")]

    def more_than(self, prefix: str, count: int) -> Callable[[], bool]:
        """A condition for `wait_for`: more than `count` numbered lines of `prefix` came."""
        return lambda: len(self.numbers(prefix)) > count


def _all_handed_over(follower: LogFollower, sink: Sink, lines: int) -> Callable[[], bool]:
    """A condition for `wait_for`: the follower delivered its history and `lines` lines at
    least, and every line it read is in the sink (none waits to be handed over)."""

    def done() -> bool:
        stats = follower.stats
        return follower.ready and stats.lines == stats.delivered and len(sink.lines) >= lines

    return done


def _ready(follower: LogFollower) -> Callable[[], bool]:
    """A condition for `wait_for`: the follower delivered its initial history."""
    return lambda: follower.ready


def _line(buffer: LogBuffer, seq: int) -> LogLine:
    """The retained line with this sequence number (the test fails if there is none)."""
    line = buffer.get(seq)
    assert line is not None, seq
    return line


def _pattern(query: LogQuery) -> re.Pattern[str]:
    """A non-empty query's compiled pattern."""
    pattern = query.compile()
    assert pattern is not None, query
    return pattern


def drop_streams(follower: LogFollower) -> None:
    """Close a follower's open streams as a broken connection would: it resumes by itself."""
    for source in follower._inbox.sources:
        if source.reader is not None:
            source.reader.drop_stream()


@pytest.fixture
def followers():
    """Followers started by a test; all of them are closed afterwards."""
    made: list[LogFollower] = []
    yield made
    for follower in made:
        follower.close()


def _follow(followers, engine, cid, name="c", **kw) -> tuple[LogFollower, Sink]:
    sink = Sink(kw.pop("ack", True))
    follower = LogFollower(engine, LogTarget(cid, name), on_batch=sink, **kw).start()
    followers.append(follower)
    return follower, sink


COUNT_TO_50 = "i=0; while [ $i -lt 50 ]; do echo line $i; i=$((i+1)); done"


def test_tail_shows_the_last_lines_at_once(engine: Engine, run_container, followers):
    cid = run_container(COUNT_TO_50 + "; sleep 3600")
    wait_for(lambda: b"line 49" in _logs(engine, cid))
    follower, sink = _follow(followers, engine, cid, preset=tail_preset(10))
    # The history is in and handed over: what more came would be new output (there is none).
    wait_for(_all_handed_over(follower, sink, 10))
    assert sink.texts() == [f"line {i}" for i in range(40, 50)]


def test_following_gets_new_lines(engine: Engine, run_container, followers):
    cid = run_container("i=0; while :; do echo tick $i; i=$((i+1)); usleep 50000; done")
    follower, sink = _follow(followers, engine, cid)
    wait_for(lambda: follower.ready)
    seen = len(sink.numbers("tick"))
    wait_for(lambda: len(sink.numbers("tick")) >= seen + 10)
    ticks = sink.numbers("tick")
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert all(line.source == "c" and line.ts > 0 for line in sink.lines)


def test_a_tty_container_streams_in_big_chunks(engine: Engine, run_container, followers):
    cid = run_container(
        "seq 1 50000; printf 'colour \\033[31mred\\033[0m \\033]0;title\\007\\n'; sleep 3600",
        tty=True,
    )
    assert engine.container_tty(cid)

    wait_for(lambda: b"colour" in _logs(engine, cid, tail=1))
    with engine.open_logs(cid, follow=False) as stream:
        messages = []
        while batch := stream.read():
            messages.extend(batch)
        # TTY output has no frames: one message per engine write. Each read takes whatever
        # arrived, up to 256 KiB (docker-py's TTY reader takes one byte per read).
        assert all(kind == 0 for kind, _ in messages)
        assert stream.bytes_read / stream.reads > 32
    _, sink = _follow(followers, engine, cid, name="tty", preset=preset_by_key("all"))
    wait_for(lambda: len(sink.lines) >= 50_001, timeout=30)
    texts = sink.texts()
    assert texts[:3] == ["1", "2", "3"] and texts[49_999] == "50000"
    last = sink.lines[50_000]
    assert last.text == "colour red " and last.sgr == ((7, "31"), (10, "0"))
    assert not any("\r" in t for t in texts)


def test_a_restart_and_the_exits_are_marked_in_order(engine: Engine, run_container, followers):
    cid = run_container(
        "sleep 1; echo run; sleep 1; exit 3",
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 1},
    )
    follower, sink = _follow(followers, engine, cid)
    wait_for(lambda: len(sink.texts(LineKind.EXITED)) >= 2, timeout=20)
    wait_for(_all_handed_over(follower, sink, 5))
    kinds = [(line.kind, line.text) for line in sink.lines]
    assert [k for k, _ in kinds] == ["", "exited", "restart", "", "exited"]
    assert kinds[1][1] == "\u2500\u2500 container exited with code 3 \u2500\u2500"
    assert "(re)started" in kinds[2][1]
    assert follower.stats.restarts == 1
    ts = [line.ts for line in sink.lines]
    assert ts == sorted(ts)


def test_an_oom_kill_is_marked(engine: Engine, run_container, followers):
    cid = run_container(
        "echo loading; usleep 300000; x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo done",
        mem_limit="16m",
    )
    _, sink = _follow(followers, engine, cid)
    wait_for(lambda: sink.texts(LineKind.OOM_KILLED), timeout=30)
    (marker,) = sink.texts(LineKind.OOM_KILLED)
    assert "OOM-killed" in marker and "137" in marker
    assert engine.inspect(cid)["State"]["OOMKilled"]


def test_opening_a_stopped_container_says_so(engine: Engine, run_container, followers):
    cid = run_container("echo bye; exit 2")
    wait_for(lambda: engine.inspect(cid)["State"]["Status"] == "exited")
    _, sink = _follow(followers, engine, cid)
    wait_for(lambda: len(sink.lines) >= 2)
    assert sink.texts() == [
        "bye",
        "\u2500\u2500 container is not running: it exited with code 2 \u2500\u2500",
    ]


def test_a_removed_container_is_marked(engine: Engine, run_container, followers):
    cid = run_container("echo hi; sleep 3600")
    follower, sink = _follow(followers, engine, cid)
    wait_for(lambda: follower.ready and sink.texts() == ["hi"])
    engine.remove(cid)
    wait_for(lambda: any("container removed" in t for t in sink.texts(LineKind.NOTICE)))


def test_replicas_interleave_in_time_order(engine: Engine, run_container, followers):
    script = (
        "sleep 0.5; i=0; while [ $i -lt 15 ]; do echo {n} $i; i=$((i+1)); usleep 40000; done;"
        " sleep 3600"
    )
    cids = [run_container(script.format(n=f"r{n}")) for n in range(3)]
    # Live: lines arrive while the replicas print.
    sink = Sink()
    targets = [LogTarget(cid, f"svc-{n}") for n, cid in enumerate(cids)]
    live = ReplicaSetFollower(engine, targets, on_batch=sink).start()
    followers.append(live)
    wait_for(_all_handed_over(live, sink, 45), timeout=20)
    assert len(sink.lines) == 45
    ts = [line.ts for line in sink.lines]
    assert ts == sorted(ts)
    for n in range(3):
        mine = [line for line in sink.lines if line.source == f"svc-{n}"]
        assert [line.text for line in mine] == [f"r{n} {i}" for i in range(15)]
    # Backlog: the complete histories are merged before anything is shown.
    later = Sink()
    backlog = ReplicaSetFollower(engine, targets, on_batch=later, preset=preset_by_key("all"))
    followers.append(backlog.start())
    wait_for(lambda: len(later.lines) >= 45)
    assert [line.ts for line in later.lines] == sorted(ts)
    assert {(line.source, line.text) for line in later.lines} == {
        (line.source, line.text) for line in sink.lines
    }


def test_a_dropped_stream_resumes_without_duplicates_or_gaps(
    engine: Engine, run_container, followers
):
    cid = run_container("i=0; while :; do echo n $i; echo e $i >&2; i=$((i+1)); usleep 10000; done")
    follower, sink = _follow(followers, engine, cid)
    wait_for(lambda: follower.ready and len(sink.numbers("n")) > 20)
    for _ in range(5):
        before = len(sink.numbers("n"))
        drop_streams(follower)
        wait_for(sink.more_than("n", before + 10))
    stats = follower.stats
    assert stats.resumes >= 5
    assert stats.skipped_replayed > 0
    for prefix in ("n", "e"):
        numbers = sink.numbers(prefix)
        # Resumed lines can arrive in a later batch than the stream's other half.
        assert sorted(numbers) == list(range(numbers[0], numbers[0] + len(numbers)))
        assert len(set(numbers)) == len(numbers)


def test_a_resume_whose_tail_falls_short_reads_again_without_one(
    engine: Engine, run_container, followers, monkeypatch
):
    """A resumed stream asks only for the log's last lines (a long history is not decoded
    from its start); when more came while it was away, nothing in between may be lost."""
    monkeypatch.setattr(follower_mod, "FOLLOW_TAIL", 3)
    opened_with = []
    read = follower_mod._Reader._read

    def slow_to_reconnect(self, *, follow, tail, since_ns):
        opened_with.append(tail)
        if follow and tail is not None:
            time.sleep(0.1)  # a busy engine: hundreds of lines come in the meantime
        return read(self, follow=follow, tail=tail, since_ns=since_ns)

    monkeypatch.setattr(follower_mod._Reader, "_read", slow_to_reconnect)
    cid = run_container("i=0; while :; do echo n $i; i=$((i+1)); usleep 500; done")
    follower, sink = _follow(followers, engine, cid)
    wait_for(lambda: follower.ready and len(sink.numbers("n")) > 100)
    for _ in range(3):
        before = len(sink.numbers("n"))
        drop_streams(follower)
        wait_for(sink.more_than("n", before + 200))
    assert follower.stats.resumes >= 3
    assert follower.stats.refills >= 3, (follower.stats, opened_with)
    assert opened_with.count(None) >= 3  # each refill read again without a tail
    numbers = sink.numbers("n")
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_backpressure_bounds_what_waits_and_counts_what_it_drops(
    engine: Engine, run_container, followers
):
    cid = run_container("seq 1 20000; sleep 3600")
    wait_for(lambda: b"20000" in _logs(engine, cid, tail=1))
    # The consumer never acknowledges: after the first batch everything waits, bounded.
    follower, sink = _follow(
        followers,
        engine,
        cid,
        ack=False,
        preset=preset_by_key("all"),
        max_pending_lines=500,
        ack_timeout=30,
    )
    wait_for(lambda: follower.stats.lines >= 20_000)
    assert len(sink.batches) == 1
    # The history may be handed over whole (read within HISTORY_HOLD) or in part first:
    # either way what waits stays bounded and every line is delivered or counted as dropped.
    sink.batches[0].consumed()

    def accounted() -> int:
        return sum(b.dropped + len(b.lines) for b in sink.batches)

    wait_for(lambda: accounted() == 20_000)
    assert sink.batches[-1].lines[-1].text == "20000"
    assert all(len(b.lines) <= 500 for b in sink.batches)
    assert follower.stats.dropped == sum(b.dropped for b in sink.batches) > 0


def test_closing_from_another_thread_unblocks_a_read(engine: Engine, run_container):
    cid = run_container("sleep 3600")
    stream = engine.open_logs(cid, follow=True)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(stream.read()))
    reader.start()
    time.sleep(0.3)  # the passing of time: a read with nothing to read does not return
    assert reader.is_alive()
    stream.close()
    reader.join(2)
    assert not reader.is_alive() and got == [[]]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_close_cycles_leave_no_thread_or_socket_behind(engine: Engine, run_container):
    cids = [run_container("i=0; while :; do echo x $i; i=$((i+1)); usleep 20000; done")]
    cids.append(run_container("echo quiet; sleep 3600"))
    # Warm the connection pool and the image of every code path once.
    LogFollower(engine, LogTarget(cids[0], "a"), on_batch=Sink()).start().close()
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = _open_fds()
    streams_before = set(engine._streams)
    for cycle in range(200):
        sink = Sink()
        targets = [LogTarget(cid, f"c{i}") for i, cid in enumerate(cids)]
        follower: LogFollower
        if cycle % 3 == 2:
            follower = ReplicaSetFollower(engine, targets, on_batch=sink)
        else:
            follower = LogFollower(engine, targets[cycle % 2], on_batch=sink)
        follower.start()
        if cycle % 10 == 0:
            wait_for(_ready(follower))
        follower.stop()  # what the app does when the selection moves: returns at once
        assert follower.join(5), f"cycle {cycle}: threads still running"
    leaked = [t for t in threading.enumerate() if t.ident not in threads_before]
    assert leaked == []
    assert _open_fds() <= fds_before + 2
    assert set(engine._streams) <= streams_before
