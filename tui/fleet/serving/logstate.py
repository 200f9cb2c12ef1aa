"""What a model container's log says of its server: loading, ready, or dead (issue 18, item 3).

Where a server has no health route, its metrics are off, or aitop cannot reach it, its own log
still says how it is doing: a model-load line (`LineKind.MODEL_LOAD`) means it is loading, a
ready line (`LineKind.MODEL_READY`: "Uvicorn running on", TGI's "Connected", llama.cpp's
"starting the main loop", ...) that it serves, and a CUDA out-of-memory, an OOM kill or an
engine's death (vLLM's `EngineDeadError`, TGI's "Shard 0 crashed", ...) that it is unhealthy
until the container starts again.

- `signal_of`: the signal one classified log line gives, if any.
- `LogWatch`: the latest signal of each container, and the events its log holds since its
  current start (`tui.fleet.logs.tally`: CUDA OOMs, NCCL failures, tracebacks, ..., issue 18
  item 4), kept from small, bounded reads of the engine's log: at most `per_round`
  containers a round, those read longest ago first, each read the last `tail` lines since
  the previous read (the engine's `since` cursor), cut at `max_bytes`. It runs on a thread
  its caller lends it (the monitor's engine pool): no thread of its own.
- `merge`: a reading from the server's pages with what the log says.

Log text is untrusted: lines come from `LineSplitter` (sanitised, classified on a bounded
prefix) and the patterns here are bounded alternations run on the first `CLASSIFY_CHARS`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from tui.fleet.logs.classify import CLASSIFY_CHARS, Classifier
from tui.fleet.logs.splitter import LineSplitter
from tui.fleet.logs.tally import EventTally
from tui.fleet.logs.types import LineKind, LogLine
from tui.fleet.models import LogEventCounts
from tui.fleet.sanitize import safe_text
from tui.fleet.serving.types import ServingReading, ServingState

LOG_ROUND_S = 2.0
"""Least seconds between two rounds of log reads."""
TAIL_LINES = 200
"""Most lines one read asks for: the first read of a container is its last this-many lines
(since its start), every later one the last this-many since the previous read."""
MAX_BYTES = 256 * 1024
"""Most bytes one read takes; the rest of the answer is dropped."""
PER_ROUND = 16
"""Most containers read in one round (the longest unread go first)."""
MAX_DETAIL_CHARS = 120
"""Longest piece of a log line a signal carries."""

Signal = Literal["loading", "ready", "dead"]

ReadLogs = Callable[[str, int, int, int], list[tuple[int, bytes]]]
"""`(container id, tail lines, since ns (0: the whole run), byte cap)` -> the engine's log
messages as `LogStream.read()` gives them (timestamps on)."""

_DEATH = re.compile(
    # vLLM (V0 and V1 engines), SGLang's scheduler, TGI's launcher, llama.cpp, Triton:
    r"EngineDeadError|Engine loop has died|EngineCore failed to start"
    r"|Engine core initialization failed|Scheduler hit an exception"
    r"|Received sigquit from a child process|Shard \d{1,4} (?:crashed|failed to start)"
    r"|Webserver Crashed|exiting due to model loading error|error: creating server"
)
"""An engine's death, as the servers print it (tests/fixtures/log_events/corpus.jsonl)."""

_DEAD_KINDS = {
    LineKind.CUDA_OOM: "CUDA out of memory",
    LineKind.OOM_KILLED: "killed (out of memory)",
}


@dataclass(frozen=True)
class LogSignal:
    """What the latest telling line of a container's log said."""

    state: Signal
    at: float
    """When the line was written, seconds since the epoch (the engine's timestamp)."""
    detail: str = ""
    """What happened, with the start of the line (safe text)."""


def signal_of(line: LogLine) -> LogSignal | None:
    """The signal of one classified line: loading, ready, dead; None for any other line."""
    at = line.ts / 1e9 if line.ts else time.time()
    kind = line.kind
    if kind is LineKind.MODEL_LOAD:
        return LogSignal("loading", at, safe_text(line.text, limit=MAX_DETAIL_CHARS))
    if kind is LineKind.MODEL_READY:
        return LogSignal("ready", at, safe_text(line.text, limit=MAX_DETAIL_CHARS))
    label = _DEAD_KINDS.get(kind)
    dying = kind in (LineKind.ERROR, LineKind.TRACEBACK)
    if label is None and dying and _DEATH.search(line.text, 0, CLASSIFY_CHARS) is not None:
        label = "the engine died"
    if label is None:
        return None
    return LogSignal("dead", at, f"{label}: {safe_text(line.text, limit=MAX_DETAIL_CHARS)}")


def latest_signal(lines: Iterable[LogLine], current: LogSignal | None) -> LogSignal | None:
    """The signal after these lines: the last one's, except that dead stays dead."""
    for line in lines:
        if current is not None and current.state == "dead":
            return current
        found = signal_of(line)
        if found is not None:
            current = found
    return current


@dataclass
class _Followed:
    started_ns: int
    """The start of the run being read: a new start forgets what the old run said."""
    cursor_ns: int = 0
    """The newest timestamp read (0: nothing read yet)."""
    signal: LogSignal | None = None
    read_at: float = 0.0
    """time.monotonic() of the last read."""
    tally: EventTally = field(default_factory=EventTally)
    events: LogEventCounts = field(default_factory=LogEventCounts)
    """`tally`'s counts after the last read (the value other threads read)."""
    classifier: Classifier = field(default_factory=Classifier)
    """Kept from read to read, so a traceback cut between two reads goes on."""


@dataclass(frozen=True)
class WatchCounts:
    """What the log reads cost so far (for the benchmark and the tests)."""

    rounds: int = 0
    reads: int = 0
    bytes: int = 0
    lines: int = 0
    seconds: float = 0.0
    """Wall time spent in rounds."""


class LogWatch:
    """The latest loading / ready / dead signal of each container, and the events its log
    holds since its current start, from bounded log reads.

    `round(wanted)` reads the logs of up to `per_round` of the wanted containers (blocking:
    run it on a worker thread, one round at a time); `signal(id)`, `signals()` and
    `events()` are safe from any thread.
    """

    def __init__(
        self,
        read: ReadLogs,
        *,
        tail: int = TAIL_LINES,
        max_bytes: int = MAX_BYTES,
        per_round: int = PER_ROUND,
    ) -> None:
        self._read = read
        self.tail = tail
        self.max_bytes = max_bytes
        self.per_round = per_round
        self._lock = threading.Lock()
        self._followed: dict[str, _Followed] = {}
        self._counts = WatchCounts()

    @property
    def counts(self) -> WatchCounts:
        """Rounds, reads, bytes and lines so far."""
        return self._counts

    def signal(self, container_id: str) -> LogSignal | None:
        """What the container's log said last (since its current start); None: nothing."""
        with self._lock:
            followed = self._followed.get(container_id)
        return followed.signal if followed is not None else None

    def signals(self) -> dict[str, LogSignal]:
        """Every container's latest signal."""
        with self._lock:
            items = list(self._followed.items())
        return {cid: f.signal for cid, f in items if f.signal is not None}

    def events(self, runs: Mapping[str, int] | None = None) -> dict[str, LogEventCounts]:
        """Every read container's event counts since its current start; with `runs`
        ({container id: start of its current run in ns}), only those whose counts are of
        that run (a container that started again has none until its new run is read)."""
        with self._lock:
            items = list(self._followed.items())
        return {
            cid: f.events
            for cid, f in items
            if f.events.read and (runs is None or runs.get(cid) == f.started_ns)
        }

    def read_at(self, container_id: str) -> float | None:
        """When its log was last read (`time.monotonic()`); None: not yet."""
        with self._lock:
            followed = self._followed.get(container_id)
        return followed.read_at if followed is not None and followed.read_at else None

    def forget(self, container_id: str) -> None:
        """Drop a container (gone, or stopped)."""
        with self._lock:
            self._followed.pop(container_id, None)

    def retain(self, container_ids: Iterable[str]) -> None:
        """Drop every container but these."""
        keep = set(container_ids)
        with self._lock:
            self._followed = {k: v for k, v in self._followed.items() if k in keep}

    def round(self, wanted: Sequence[tuple[str, int]]) -> int:
        """Read the logs of the wanted `(container id, start in ns)`, at most `per_round` of
        them, those read longest ago first; returns how many were read."""
        began = time.monotonic()
        with self._lock:
            chosen: list[tuple[str, _Followed]] = []
            for cid, started_ns in wanted:
                followed = self._followed.get(cid)
                if followed is None or followed.started_ns != started_ns:
                    followed = self._followed[cid] = _Followed(started_ns)
                chosen.append((cid, followed))
        chosen.sort(key=lambda item: item[1].read_at)
        reads = total_bytes = total_lines = 0
        for cid, followed in chosen[: self.per_round]:
            since = followed.cursor_ns + 1 if followed.cursor_ns else followed.started_ns
            try:
                messages = self._read(cid, self.tail, since, self.max_bytes)
            except Exception:  # one container's trouble (gone, driver without logs) is its own
                messages = []
            followed.read_at = time.monotonic()
            reads += 1
            size = sum(len(payload) for _, payload in messages)
            total_bytes += size
            splitter = LineSplitter()
            splitter.classifier = followed.classifier
            lines = splitter.feed(messages) + splitter.flush()
            total_lines += len(lines)
            signal = latest_signal(lines, followed.signal)
            # A read that hit a cap may have left lines of the run out.
            followed.tally.feed(lines, complete=len(messages) < self.tail and size < self.max_bytes)
            events = followed.tally.counts()
            with self._lock:
                followed.cursor_ns = max(followed.cursor_ns, splitter.last_ts)
                followed.signal = signal
                followed.events = events
        counts = self._counts
        self._counts = WatchCounts(
            counts.rounds + 1,
            counts.reads + reads,
            counts.bytes + total_bytes,
            counts.lines + total_lines,
            counts.seconds + time.monotonic() - began,
        )
        return reads


def needs_log(reading: ServingReading | None) -> bool:
    """Whether a model container's state is not known from its server's pages: nothing read
    (yet, or it serves nothing aitop recognises), or its server cannot be reached."""
    return reading is None or reading.state.name == "unreachable"


def merge(reading: ServingReading | None, signal: LogSignal | None) -> ServingReading | None:
    """A container's reading with what its log says.

    Dead (a CUDA OOM, an OOM kill, the engine's death) makes any reading unhealthy until the
    next start. Loading or ready stand in for a state the pages could not tell: no reading,
    or an unreachable server (whose reason stays in the detail).
    """
    if signal is None:
        return reading
    if signal.state == "dead":
        state = ServingState("unhealthy", f"log: {signal.detail}")
        if reading is None:
            return ServingReading("unknown", state, since=signal.at)
        return replace(reading, state=state, since=signal.at)
    if reading is None:
        return ServingReading(
            "unknown", ServingState(signal.state, "from its log"), since=signal.at
        )
    if reading.state.name != "unreachable":
        return reading
    why = reading.state.detail
    detail = f"from its log; metrics: {why}" if why else "from its log"
    return replace(reading, state=ServingState(signal.state, detail), since=signal.at)
