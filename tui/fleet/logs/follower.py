"""Following container logs in threads of their own, handing bounded `LogBatch`es to a callback.

`LogFollower` reads one container's stream (`ReplicaSetFollower`: a replica set's, merged in
time order) and hands batches to a callback: at most one batch every `batch_interval`, the
next only once the previous was consumed (or `ack_timeout` passed), what waits in between
bounded in lines and bytes (oldest dropped and counted). (Re)starts, exits and OOM kills are
marked with boundary lines from the engine's events; a stream that ends under a running
container is resumed from the last timestamp seen (`since`), dropping the messages already
delivered.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError, LogsUnavailable
from tui.fleet.engine.streams import EventStream, LogStream
from tui.fleet.logs.splitter import MAX_LINE_BYTES, LineSplitter
from tui.fleet.logs.types import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINES,
    DEFAULT_PRESET,
    LineKind,
    LogBatch,
    LogLine,
    LogPreset,
    LogTarget,
    format_timestamp,
    line_cost,
    lines_cost,
    parse_timestamp,
)
from tui.fleet.sanitize import sanitize_text

READY_TIMEOUT = 3.0
"""A replica whose backlog has not arrived by then no longer holds the others back."""
HISTORY_HOLD = 0.5
"""How long a follower keeps the initial history back to hand it over whole."""
INSPECT_POLL = 1.0
"""How often a stopped container is asked whether it started again (a start event wakes
its reader sooner)."""
MARKER_HOLD = 5.0
"""Longest a boundary line from the event stream waits for its reader to catch up (see
`_Inbox.marker`): a stalled stream does not hide a restart for long."""


FOLLOW_TAIL = 10_000
"""Lines a resumed stream asks for back from the end of the log, with `since` filtering them:
without a tail, the engine decodes the whole file from its start to find `since` (seconds of
its CPU, and of waiting, on a long history). Should more lines have come since, the stream is
opened again without the tail, so nothing is missed."""
FOLLOW_READ_PAUSE = 0.005
FOLLOW_SMALL_READ = 256
"""After a read of fewer messages than this, a follower waits `FOLLOW_READ_PAUSE` seconds
before the next one: the engine sends each line on its own, and reading them one by one costs
a system call and a parse round each. Lines gather in the socket meanwhile."""


# --- following ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowerStats:
    """Counters of one follower."""

    lines: int = 0
    """Lines parsed from the streams."""
    delivered: int = 0
    dropped: int = 0
    """Lines dropped while the consumer was behind (backpressure)."""
    batches: int = 0
    resumes: int = 0
    """Dropped streams resumed from the last timestamp seen."""
    restarts: int = 0
    refills: int = 0
    """Resumed streams opened again without a tail: more than `FOLLOW_TAIL` lines had come."""
    skipped_replayed: int = 0
    """Replayed messages dropped as already seen."""


class _ContainerState(NamedTuple):
    running: bool
    started_at: int
    finished_at: int
    exit_code: int
    oom_killed: bool
    tty: bool


def _state(attrs: Mapping[str, Any]) -> _ContainerState:
    state = attrs.get("State") or {}
    return _ContainerState(
        running=bool(state.get("Running")),
        started_at=parse_timestamp(state.get("StartedAt") or "") or 0,
        finished_at=parse_timestamp(state.get("FinishedAt") or "") or 0,
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        tty=bool((attrs.get("Config") or {}).get("Tty")),
    )


class _Source:
    """One followed container inside a follower: its pending lines and reader thread."""

    def __init__(self, index: int, target: LogTarget) -> None:
        self.index = index
        self.target = target
        self.chunks: deque[tuple[float, list[LogLine]]] = deque()
        self.count = 0
        self.max_ts = 0
        self.last_arrival = 0.0
        self.ready = False
        self.done = False
        self.gone_marked = False
        self.reader: _Reader | None = None
        self.held: list[tuple[float, LogLine]] = []
        """Boundary lines from the event stream waiting for the reader to reach their time."""
        self.reached = 0
        """Timestamp up to which the reader has read the container's log."""
        self.last_exit = 0
        """Timestamp of the newest exit boundary (a restart's goes after it)."""
        self.kick = threading.Event()
        """Set when the container (re)started: wakes a reader waiting for it."""


class _Inbox:
    """What a follower's reader and watcher threads hand lines to, and its delivery thread
    takes them from: each source's pending lines, bounded in lines and bytes (the oldest
    dropped and counted), the boundary lines, and the counters. Thread-safe.

    This is the whole of what the threads see of their follower, besides its stop event.
    """

    def __init__(
        self,
        targets: Sequence[LogTarget],
        *,
        max_lines: int,
        max_bytes: int,
        merge_window: float,
    ) -> None:
        self.sources = [_Source(i, t) for i, t in enumerate(targets)]
        self.max_lines = max(1, max_lines)
        self.max_bytes = max(1, max_bytes)
        self.merge_window = merge_window
        self.wake = threading.Event()
        """Set whenever there is something new for the delivery thread."""
        self.opened_at = 0.0
        """When the follower started (monotonic): the initial histories are waited for."""
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_bytes = 0
        self._dropped = 0
        self._counters: dict[str, int] = dict.fromkeys(
            (f.name for f in fields(FollowerStats) if f.name != "skipped_replayed"), 0
        )
        self._markers = False
        self._held = False
        """Whether any source holds boundary lines back (see `marker`)."""

    @property
    def pending(self) -> tuple[int, int]:
        """Lines waiting for delivery, and their estimated bytes."""
        with self._lock:
            return self._pending, self._pending_bytes

    @property
    def ready(self) -> bool:
        """True once every source delivered its initial history (or ended)."""
        return all(s.ready or s.done for s in self.sources)

    def counters(self) -> dict[str, int]:
        """A copy of the counters, by `FollowerStats` field name."""
        with self._lock:
            return dict(self._counters)

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to the counter `name` (a `FollowerStats` field)."""
        with self._lock:
            self._counters[name] += n

    def add(self, source: _Source, lines: list[LogLine]) -> None:
        """Queue a source's new lines (dropping the oldest beyond the bounds)."""
        now = time.monotonic()
        with self._lock:
            self._counters["lines"] += len(lines)
            source.chunks.append((now, lines))
            source.count += len(lines)
            source.last_arrival = now
            top = max(line.ts for line in lines)
            if top > source.max_ts:
                source.max_ts = top
            self._pending += len(lines)
            self._pending_bytes += lines_cost(lines)
            if self._pending > self.max_lines or self._pending_bytes > self.max_bytes:
                self._drop_oldest()
        self.wake.set()

    def marker(
        self, source: _Source, kind: LineKind, text: str, ts: int, *, hold: bool = False
    ) -> None:
        """Add a line of aitop's own (a boundary or a notice) to a source's lines.

        With `hold` (boundaries the event stream tells of), the line waits until the reader
        has read the log up to its time (`reached`), the reader ended, or `MARKER_HOLD`
        passed: the events come sooner than the log's lines, and a boundary handed over
        before the lines of the run it ends would be drawn above them.
        """
        clean, _ = sanitize_text(text)
        name = sanitize_text(source.target.name)[0]
        line = LogLine(ts, f"\u2500\u2500 {clean} \u2500\u2500", (), kind, name, 0)
        with self._lock:
            self._markers = True
            if kind in (LineKind.EXITED, LineKind.OOM_KILLED):
                source.last_exit = max(source.last_exit, ts)
            held = hold and not source.done and ts > source.reached
            if held:
                source.held.append((time.monotonic(), line))
                self._held = True
        if held:
            self.wake.set()
        else:
            self.add(source, [line])

    def reached(self, source: _Source, ts: int) -> None:
        """The reader has read the log up to `ts`: boundaries held until then may go."""
        with self._lock:
            if ts <= source.reached:
                return
            source.reached = ts
            waiting = any(line.ts <= ts for _, line in source.held)
        if waiting:
            self.wake.set()

    def mark_state(
        self,
        source: _Source,
        state: _ContainerState,
        *,
        opened: bool = False,
        hold: bool = False,
    ) -> None:
        """Mark that the container stopped (exit code, OOM kill); `hold`: see `marker`."""
        if opened and not state.started_at:
            self.marker(source, LineKind.NOTICE, "container has not started yet", time.time_ns())
            return
        what = "is not running: it" if opened else ""
        # The engine stamps a line when it reads it, which under load can be after the exit
        # it records: the boundary goes after every line already seen.
        seen = source.reader.splitter.last_ts if source.reader is not None else 0
        when = max(state.finished_at or time.time_ns(), seen + 1)
        if state.oom_killed:
            text = f"container {what} was OOM-killed (out of memory), exit code {state.exit_code}"
            self.marker(source, LineKind.OOM_KILLED, " ".join(text.split()), when, hold=hold)
        else:
            text = f"container {what} exited with code {state.exit_code}"
            self.marker(source, LineKind.EXITED, " ".join(text.split()), when, hold=hold)

    def mark_gone(self, source: _Source, when: int | None = None, *, hold: bool = False) -> None:
        """Mark, once, that the container was removed; `hold`: see `marker`."""
        with self._lock:
            if source.gone_marked:
                return
            source.gone_marked = True
        when = when or time.time_ns()
        self.marker(source, LineKind.NOTICE, "container removed", when, hold=hold)

    def source_ready(self, source: _Source) -> None:
        """The source's initial history is all in."""
        with self._lock:
            source.ready = True
        self.wake.set()

    def source_done(self, source: _Source) -> None:
        """The source's reader ended: it holds no other source back any more."""
        with self._lock:
            source.ready = True
            source.done = True
        source.kick.set()
        self.wake.set()

    def delivered(self, lines: int) -> None:
        """Count a batch of `lines` handed over."""
        with self._lock:
            self._counters["delivered"] += lines
            self._counters["batches"] += 1

    def take(self, now: float) -> tuple[list[LogLine], int, float | None]:
        """Lines ready to deliver, lines dropped, and when to look again."""
        with self._lock:
            return self._take(now)

    def _drop_oldest(self) -> None:
        """Drop the oldest pending lines until within both bounds (lock held)."""
        while self._pending > 1 and (
            self._pending > self.max_lines or self._pending_bytes > self.max_bytes
        ):
            oldest = min((s for s in self.sources if s.chunks), key=lambda s: s.chunks[0][1][0].ts)
            arrival, lines = oldest.chunks[0]
            k = 0
            freed = 0
            excess_lines = self._pending - self.max_lines
            excess_bytes = self._pending_bytes - self.max_bytes
            while k < len(lines) and (k < excess_lines or freed < excess_bytes):
                freed += line_cost(lines[k])
                k += 1
            k = min(k, self._pending - 1)
            if k == len(lines):
                oldest.chunks.popleft()
            else:
                oldest.chunks[0] = (arrival, lines[k:])
            oldest.count -= k
            self._pending -= k
            self._pending_bytes -= freed
            self._dropped += k
            self._counters["dropped"] += k

    def _release_held(self, now: float) -> float | None:
        """Queue the held boundary lines whose time the reader reached (lock held); returns
        when the next held one is due anyway (`MARKER_HOLD`), None when none waits."""
        if not self._held:
            return None
        due: float | None = None
        for source in self.sources:
            keep: list[tuple[float, LogLine]] = []
            for arrival, line in source.held:
                if source.done or line.ts <= source.reached or now - arrival >= MARKER_HOLD:
                    source.chunks.append((arrival, [line]))
                    source.count += 1
                    source.max_ts = max(source.max_ts, line.ts)
                    self._pending += 1
                    self._pending_bytes += line_cost(line)
                    self._counters["lines"] += 1
                    self._markers = True
                else:
                    keep.append((arrival, line))
                    left = MARKER_HOLD - (now - arrival)
                    due = left if due is None else min(due, left)
            source.held = keep
        self._held = due is not None
        return due

    def _take(self, now: float) -> tuple[list[LogLine], int, float | None]:
        """`take` with the lock held."""
        held_due = self._release_held(now)
        lines, dropped, wake_in = self._take_pending(now)
        if held_due is not None:
            wake_in = held_due if wake_in is None else min(wake_in, held_due)
        return lines, dropped, wake_in

    def _take_pending(self, now: float) -> tuple[list[LogLine], int, float | None]:
        """The queued lines `take` may hand over (lock held)."""
        dropped, self._dropped = self._dropped, 0
        if not self._pending:
            return [], dropped, None
        if len(self.sources) == 1:
            source = self.sources[0]
            lines = [line for _, chunk in source.chunks for line in chunk]
            source.chunks.clear()
            source.count = 0
            self._pending = 0
            self._pending_bytes = 0
            if self._markers:
                # Boundary lines come from the event stream: put them where they belong.
                self._markers = False
                lines.sort(key=_line_ts)
            return lines, dropped, None
        release, wake_in = self._release_point(now)
        parts: list[list[LogLine]] = []
        for source in self.sources:
            taken: list[LogLine] = []
            while source.chunks:
                arrival, chunk = source.chunks[0]
                if chunk[-1].ts <= release:
                    taken.extend(chunk)
                    source.chunks.popleft()
                    continue
                k = 0
                while k < len(chunk) and chunk[k].ts <= release:
                    k += 1
                if k:
                    taken.extend(chunk[:k])
                    source.chunks[0] = (arrival, chunk[k:])
                break
            source.count -= len(taken)
            self._pending -= len(taken)
            self._pending_bytes -= lines_cost(taken)
            if taken:
                parts.append(taken)
        if not parts:
            return [], dropped, wake_in
        merged = list(heapq.merge(*parts, key=_line_ts)) if len(parts) > 1 else parts[0]
        merged.sort(key=_line_ts)  # nearly sorted already: stdout/stderr skew, boundary lines
        return merged, dropped, wake_in

    def _release_point(self, now: float) -> tuple[float, float | None]:
        """Timestamp up to which merged lines may go out, and when to look again (lock held).

        A replica holds the others back while it may still send older lines: until its
        initial history arrived (at most `READY_TIMEOUT`), and while it has lines waiting or
        sent some within `merge_window` (its next ones come after its newest). Lines that
        waited `merge_window` go out anyway, with everything older than them.
        """
        if not self.ready:
            waited = now - self.opened_at
            if waited < READY_TIMEOUT:
                return -1, READY_TIMEOUT - waited
        window = self.merge_window
        release: float = float("inf")
        for source in self.sources:
            if not source.done and (source.count or now - source.last_arrival < window):
                release = min(release, source.max_ts)
        wake_in: float | None = None
        for source in self.sources:
            for arrival, chunk in source.chunks:
                age = now - arrival
                if age < window:
                    left = window - age
                    wake_in = left if wake_in is None else min(wake_in, left)
                    break
                release = max(release, max(line.ts for line in chunk))
        return release, wake_in


class _Reader(threading.Thread):
    """Reads one container's stream for a follower, through restarts and dropped streams.

    Restart and exit boundaries come from the follower's `_Watcher` (the engine's events): a
    follow stream may go on across a restart, so its end says nothing reliable. The reader
    only resumes: after its stream ends it asks the engine for the container's state and
    follows again from the last timestamp seen, waiting first while the container is down.
    """

    def __init__(
        self,
        engine: Engine,
        source: _Source,
        inbox: _Inbox,
        stop: threading.Event,
        *,
        preset: LogPreset,
        max_line_bytes: int,
    ) -> None:
        super().__init__(name=f"aitop-logs-{source.target.name}", daemon=True)
        self.engine = engine
        self.source = source
        self.inbox = inbox
        self.stop = stop
        self.preset = preset
        self.splitter = LineSplitter(source.target.name, max_line_bytes=max_line_bytes)
        self._lock = threading.Lock()
        self._stream: LogStream | None = None
        self._tty = False
        self._notice_shown = False
        self._floor = 0

    def drop_stream(self) -> None:
        """Close the current stream as a broken connection would (the reader resumes)."""
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def run(self) -> None:
        """Follow the container until the follower stops (or the container is removed)."""
        try:
            self._run()
        except _StopReader:
            pass
        except Exception as exc:  # never die silently: say it in the pane
            self._notice(f"log stream stopped: {exc}")
        finally:
            self.drop_stream()
            self.inbox.source_done(self.source)

    def _run(self) -> None:
        state = self._inspect()
        if state is None:
            return
        self._tty = state.tty
        tail, since = self.preset.window(state.started_at)
        self._floor = since
        # The initial history first, to its end: then it is known to be complete (replica
        # sets merge complete histories) and following starts exactly where it ended.
        while not self._read(follow=False, tail=tail, since_ns=since or None)[1]:
            if self._inspect() is None or self.stop.wait(0.5):
                return
        if not state.running:
            self._flush()
            self.inbox.mark_state(self.source, state, opened=True)
            self.inbox.reached(self.source, max(state.finished_at, self.splitter.last_ts) + 1)
        self.inbox.source_ready(self.source)
        since = self.splitter.resume_since(margin=False)
        quick_eofs = 0
        while not self.stop.is_set():
            if not state.running:
                state = self._wait_for_start(state.started_at)
                if state is None:
                    return
            began = time.monotonic()
            if since:
                self.splitter.expect_replay(since)
            start = max(since, self._floor) or None
            try:
                got, _ = self._read(
                    follow=True,
                    tail=FOLLOW_TAIL if since and not self._tty else None,
                    since_ns=start,
                )
            except _TailTooShort:
                self.inbox.count("refills")
                self.splitter.expect_replay(since)
                got, _ = self._read(follow=True, tail=None, since_ns=start)
            if self.stop.is_set():
                return
            since = self.splitter.resume_since()
            followed = state.started_at
            state = self._inspect()
            if state is None:
                return
            if not state.running:
                self._flush()
                if state.started_at == followed:
                    # The run followed ended and its stream was read to the end: every line
                    # up to its exit is in, and so may be the boundary that marks it.
                    self.inbox.reached(
                        self.source, max(state.finished_at, self.splitter.last_ts) + 1
                    )
                continue
            # The stream ended under a running container (a broken connection, a restart):
            # follow again from where it stopped.
            self.inbox.count("resumes")
            quick = not got and time.monotonic() - began < 0.5
            quick_eofs = quick_eofs + 1 if quick else 0
            if quick_eofs and self.stop.wait(min(5.0, 0.25 * 2**quick_eofs)):
                return

    def _read(self, *, follow: bool, tail: int | None, since_ns: int | None) -> tuple[int, bool]:
        """Read one stream to its end: (lines it gave, whether it ended normally)."""
        target = self.source.target
        try:
            stream = self.engine.open_logs(
                target.container_id,
                follow=follow,
                tail=tail,
                since_ns=since_ns,
                tty=self._tty,
            )
        except ContainerGone:
            return 0, False
        except LogsUnavailable as exc:
            self._notice(str(exc))
            raise _StopReader from exc
        except EngineError as exc:
            self._unreachable(exc)
            return 0, False
        with self._lock:
            self._stream = stream
        if self.stop.is_set():
            stream.close()
        got = 0
        ok = True
        # With a tail, the replay must reach back to what was last seen: a first message newer
        # than that means the tail began after it, and lines in between would be missed.
        seen = self.splitter.replay_newest if tail is not None and follow else 0
        try:
            while True:
                messages = stream.read()
                if not messages:
                    break
                if seen:
                    first = _first_timestamp(messages)
                    if first is not None and first > seen:
                        raise _TailTooShort
                    seen = 0
                lines = self.splitter.feed(messages)
                if lines:
                    got += len(lines)
                    self.inbox.add(self.source, lines)
                if follow:
                    self.inbox.reached(self.source, self.splitter.last_ts)
                if (
                    follow
                    and len(messages) < FOLLOW_SMALL_READ
                    and self.stop.wait(FOLLOW_READ_PAUSE)
                ):
                    break
        except EngineError as exc:
            ok = False
            if not self.stop.is_set():
                self._unreachable(exc)
        finally:
            stream.close()
            with self._lock:
                self._stream = None
        return got, ok

    def _inspect(self) -> _ContainerState | None:
        """The container's state, retrying while the engine is unreachable; None: stop."""
        delay = 0.5
        while not self.stop.is_set():
            try:
                state = _state(self.engine.inspect(self.source.target.container_id))
            except ContainerGone:
                self._flush()
                self.inbox.mark_gone(self.source)
                return None
            except EngineError as exc:
                self._unreachable(exc)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 5.0)
                continue
            self._notice_shown = False
            return state
        return None

    def _wait_for_start(self, started_at: int) -> _ContainerState | None:
        """Wait (polling, or woken by the start event) until the container runs again;
        None: stop."""
        kick = self.source.kick
        while not self.stop.is_set():
            kick.wait(INSPECT_POLL)
            kick.clear()
            if self.stop.is_set():
                return None
            state = self._inspect()
            if state is None:
                return None
            if state.running or state.started_at != started_at:
                return state
        return None

    def _flush(self) -> None:
        lines = self.splitter.flush()
        if lines:
            self.inbox.add(self.source, lines)

    def _notice(self, text: str) -> None:
        self.inbox.marker(self.source, LineKind.NOTICE, text, time.time_ns())

    def _unreachable(self, exc: EngineError) -> None:
        if not self._notice_shown and not self.stop.is_set():
            self._notice_shown = True
            self._notice(f"{exc}; retrying")


class _Watcher(threading.Thread):
    """Marks (re)starts, exits, OOM kills and removals from the engine's container events."""

    def __init__(self, engine: Engine, inbox: _Inbox, stop: threading.Event) -> None:
        super().__init__(name="aitop-logs-events", daemon=True)
        self.engine = engine
        self.inbox = inbox
        self.stop = stop
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self._ready = threading.Event()
        """Set once subscribed (or given up), so nothing after `start()` is missed."""

    def close(self) -> None:
        """Close the event stream (the thread ends once `stop` is set)."""
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def run(self) -> None:
        """Follow the followed containers' events until `stop` is set."""
        by_id = {s.target.container_id: s for s in self.inbox.sources}
        delay = 0.5
        while not self.stop.is_set():
            try:
                stream = self.engine.container_events(list(by_id))
            except EngineError:
                self._ready.set()
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.5
            with self._lock:
                self._stream = stream
            self._ready.set()
            if self.stop.is_set():
                stream.close()
            try:
                for event in stream:
                    source = by_id.get(event.get("id") or "")
                    if source is not None:
                        self._handle(source, event)
            except EngineError:
                pass
            finally:
                stream.close()
            if self.stop.wait(0.5):
                return

    def _handle(self, source: _Source, event: Mapping[str, Any]) -> None:
        action = event.get("Action") or event.get("status") or ""
        when = int(event.get("timeNano") or 0) or time.time_ns()
        inbox = self.inbox
        if action == "destroy":
            inbox.mark_gone(source, when, hold=True)
            return
        if action not in ("start", "die"):
            return  # "oom" comes before "die"; inspect tells OOMKilled then
        try:
            state = _state(self.engine.inspect(source.target.container_id))
        except EngineError:
            state = None
        if action == "start":
            started = state.started_at if state is not None and state.started_at else when
            inbox.count("restarts")
            source.kick.set()
            # The engine records StartedAt once the process runs, after its first lines may
            # be stamped: the boundary goes just after the previous run's end instead.
            ended = state.finished_at if state is not None else 0
            previous = max(ended if ended < started else 0, source.last_exit)
            inbox.marker(
                source,
                LineKind.RESTART,
                f"container (re)started at {format_timestamp(started)}",
                previous + 1 if 0 < previous < started else started - 1,
                hold=True,
            )
            return
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        if state is None:
            state = _ContainerState(False, 0, when, int(attrs.get("exitCode") or 0), False, False)
        inbox.mark_state(source, state, hold=True)


class LogFollower:
    """Follows one container's logs in threads of its own and hands batches to `on_batch`.

    `on_batch(LogBatch)` runs on the follower's delivery thread; it must not block (post a
    message to the UI). With `wait_for_ack` the next batch waits until `batch.consumed()`
    was called (or `ack_timeout` passed) and lines gather meanwhile, at most
    `max_pending_lines` of them and `max_pending_bytes` (estimated, see `line_cost`); the
    oldest are dropped and counted in the next batch.
    `stop()` closes the streams at once; `join()` waits for the threads to end.
    """

    _sessions = itertools.count(1)

    def __init__(
        self,
        engine: Engine,
        target: LogTarget | Sequence[LogTarget],
        *,
        on_batch: Callable[[LogBatch], None],
        preset: LogPreset = DEFAULT_PRESET,
        batch_interval: float = 0.1,
        max_pending_lines: int = DEFAULT_MAX_LINES,
        max_pending_bytes: int = DEFAULT_MAX_BYTES,
        wait_for_ack: bool = True,
        ack_timeout: float = 1.0,
        merge_window: float = 0.3,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        targets = [target] if isinstance(target, LogTarget) else list(target)
        if not targets:
            raise ValueError("nothing to follow")
        self.engine = engine
        self.session = next(self._sessions)
        """Identifies this follower's batches."""
        self.preset = preset
        self.on_batch = on_batch
        self.batch_interval = batch_interval
        self.wait_for_ack = wait_for_ack
        self.ack_timeout = ack_timeout
        self.max_line_bytes = max_line_bytes
        self._inbox = _Inbox(
            targets,
            max_lines=max_pending_lines,
            max_bytes=max_pending_bytes,
            merge_window=merge_window,
        )
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()
        self._ack_due: float | None = None
        self._thread = threading.Thread(target=self._deliver, name="aitop-logs", daemon=True)
        self._watcher = _Watcher(engine, self._inbox, self._stop)

    @property
    def stats(self) -> FollowerStats:
        """A snapshot of the counters."""
        sources = self._inbox.sources
        skipped = sum(s.reader.splitter.skipped for s in sources if s.reader is not None)
        return FollowerStats(skipped_replayed=skipped, **self._inbox.counters())

    @property
    def ready(self) -> bool:
        """True once every stream delivered its initial history."""
        return self._inbox.ready

    def start(self) -> LogFollower:
        """Start the threads; returns self."""
        self._inbox.opened_at = time.monotonic()
        self._watcher.start()
        for source in self._inbox.sources:
            source.reader = _Reader(
                self.engine,
                source,
                self._inbox,
                self._stop,
                preset=self.preset,
                max_line_bytes=self.max_line_bytes,
            )
            source.reader.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following: close the streams now (from any thread); does not wait."""
        self._stop.set()
        self._watcher.close()
        for source in self._inbox.sources:
            source.kick.set()
            if source.reader is not None:
                source.reader.drop_stream()
        self._inbox.wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when they all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        threads: list[threading.Thread] = [s.reader for s in self._inbox.sources if s.reader]
        threads += [self._thread, self._watcher]
        for thread in threads:
            if not thread.is_alive() or thread is threading.current_thread():
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not self.is_alive()

    def close(self, timeout: float = 5.0) -> bool:
        """`stop()` then `join(timeout)`."""
        self.stop()
        return self.join(timeout)

    def is_alive(self) -> bool:
        """True while any of its threads runs."""
        return (
            self._thread.is_alive()
            or self._watcher.is_alive()
            or any(s.reader is not None and s.reader.is_alive() for s in self._inbox.sources)
        )

    # -- the delivery thread --

    def _ack(self) -> None:
        with self._ack_lock:
            self._ack_due = None
        self._inbox.wake.set()

    def _deliver(self) -> None:
        inbox = self._inbox
        last = 0.0
        while not self._stop.is_set():
            inbox.wake.clear()
            now = time.monotonic()
            timeout: float | None = None
            with self._ack_lock:
                ack_due = self._ack_due
            if ack_due is not None and now < ack_due:
                timeout = ack_due - now
            elif not inbox.ready and now - inbox.opened_at < HISTORY_HOLD:
                # The initial history goes out in one batch (shown at once, not a part
                # now and the rest a batch interval later), unless it takes long to come.
                timeout = inbox.opened_at + HISTORY_HOLD - now
            elif now - last < self.batch_interval:
                timeout = last + self.batch_interval - now
            else:
                lines, dropped, timeout = inbox.take(now)
                if lines or dropped:
                    last = now
                    self._hand_over(lines, dropped)
                    continue
            inbox.wake.wait(timeout)

    def _hand_over(self, lines: list[LogLine], dropped: int) -> None:
        ack = self._ack if self.wait_for_ack else None
        self._inbox.delivered(len(lines))
        if ack is not None:
            with self._ack_lock:
                self._ack_due = time.monotonic() + self.ack_timeout
        batch = LogBatch(self.session, tuple(lines), dropped, ack)
        if self._stop.is_set():
            return
        with contextlib.suppress(Exception):
            self.on_batch(batch)


class _StopReader(Exception):
    """Ends a reader thread whose stream cannot be read (internal)."""


class _TailTooShort(Exception):
    """A resumed stream's tail did not reach back to the last line seen (internal)."""


def _first_timestamp(messages: Sequence[tuple[int, bytes]]) -> int | None:
    """The engine's timestamp on the first log message (not a notice), if it has one."""
    for stream, payload in messages:
        if stream != 3:
            space = payload.find(b" ", 0, 40)
            return parse_timestamp(payload[:space]) if space > 0 else None
    return None


def _line_ts(line: LogLine) -> int:
    return line.ts


class ReplicaSetFollower(LogFollower):
    """Follows every replica of a service, merged in time order (like `docker compose logs`).

    Each line's `source` names its replica. Lines wait up to `merge_window` seconds for the
    other replicas to catch up, and the initial histories are merged before any is shown.
    """
