"""Following container logs: parsed, safe, classified lines in bounded batches.

Nothing here knows about the UI; the plain data (`LogLine`, `LogBatch`, `LogBuffer`,
`LogQuery`, presets) lives in `tui.fleet.logtypes` and is re-exported here. The pieces, from
the wire up:

- `LineSplitter` turns log messages (`(stream, bytes)` with a timestamp prefix) into lines:
  it joins the engine's 16 KiB partial messages, caps line length (`MAX_LINE_BYTES`, the rest
  is cut and counted), keeps what a terminal would show of a line redrawn after carriage
  returns (a progress bar: later text over earlier text from column 0), and sanitises each
  line (`tui.fleet.sanitize`: only colours survive).
- `Classifier` marks the lines worth seeing: CUDA out-of-memory, NCCL errors, Python
  tracebacks, OOM kills, model-load progress, errors.
- `LogFollower` owns threads that read one container's (or, as `ReplicaSetFollower`, a
  replica set's) stream and hand `LogBatch`es to a callback: at most one batch every
  `batch_interval`, the next only once the previous was consumed (or `ack_timeout` passed),
  what waits in between bounded in lines and bytes (oldest dropped and counted).
  (Re)starts, exits and OOM kills are marked with boundary lines from the engine's events; a
  stream that ends under a running container is resumed from the last timestamp seen
  (`since`), dropping the messages already delivered.
- `export_lines` writes lines to a file.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError, LogsUnavailable
from tui.fleet.engine.streams import EventStream, LogStream
from tui.fleet.logtypes import _SECONDS as _SECONDS
from tui.fleet.logtypes import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINES,
    DEFAULT_PRESET,
    DEFAULT_TAIL,
    JUMP_KINDS,
    LINE_OVERHEAD,
    PRESETS,
    InvalidQuery,
    LineKind,
    LogBatch,
    LogBuffer,
    LogLine,
    LogPreset,
    LogQuery,
    LogTarget,
    format_timestamp,
    line_cost,
    lines_cost,
    parse_timestamp,
    preset_by_key,
    tail_preset,
)
from tui.fleet.sanitize import SgrChanges, sanitize_line, sanitize_text

__all__ = [
    "CLASSIFY_CHARS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LINES",
    "DEFAULT_PRESET",
    "DEFAULT_TAIL",
    "FOLLOW_READ_PAUSE",
    "FOLLOW_TAIL",
    "HISTORY_HOLD",
    "INSPECT_POLL",
    "JUMP_KINDS",
    "LINE_OVERHEAD",
    "MAX_LINE_BYTES",
    "PRESETS",
    "READY_TIMEOUT",
    "RESUME_MARGIN_NS",
    "Classifier",
    "ExportResult",
    "FollowerStats",
    "InvalidQuery",
    "LineKind",
    "LineSplitter",
    "LogBatch",
    "LogBuffer",
    "LogFollower",
    "LogLine",
    "LogPreset",
    "LogQuery",
    "LogTarget",
    "ReplicaSetFollower",
    "classify",
    "export_lines",
    "export_path",
    "format_line",
    "format_timestamp",
    "line_cost",
    "lines_cost",
    "parse_timestamp",
    "preset_by_key",
    "tail_preset",
]

MAX_LINE_BYTES = 64 * 1024
"""Longest line kept; the rest of a longer line is cut (and the cut counted in the line)."""
RESUME_MARGIN_NS = 500_000_000
"""How far before the last timestamp seen a resumed stream starts.

stdout and stderr are written to the log by separate goroutines, so the file is not in
strict timestamp order; resuming a little earlier and dropping what was seen closes that gap.
"""
READY_TIMEOUT = 3.0
"""A replica whose backlog has not arrived by then no longer holds the others back."""
HISTORY_HOLD = 0.5
"""How long a follower keeps the initial history back to hand it over whole."""
INSPECT_POLL = 1.0
"""How often a stopped container is asked whether it started again."""
_PLAIN_BYTES = bytes([9, *range(32, 127)])
"""Bytes a line may hold and still skip sanitising (printable ASCII and tab)."""
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


# --- classification -----------------------------------------------------------------------

CLASSIFY_CHARS = 4096
"""How much of a line classification reads: its first this-many characters.

Log text is untrusted and Python's `re` holds the GIL while it runs (the event loop waits
too), so each pattern runs on a bounded prefix and has no unbounded quantifier: a hostile
line costs the same as an ordinary 4 KiB one. What marks a line (an exception name, "CUDA
out of memory", an NCCL error) comes first in every real log line.
"""
_CUT = "\x00"
"""Put after a cut prefix: no character the patterns end on (space, word, `$`), so a
pattern anchored at the line's end never matches where the prefix was cut."""

# Each kind: lower-case keywords one of which the line must hold (a cheap test that rules
# out almost every line), then the pattern that decides. Earlier kinds win. Every quantifier
# is bounded (tests/test_classify_bounded.py holds them to it, on the lines of
# tests/hostile_lines.py).
_KIND_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        LineKind.CUDA_OOM,
        ("memory", "cublas_status_alloc", "tried to allocate"),
        r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory"
        r"|cudaErrorMemoryAllocation|CUBLAS_STATUS_ALLOC_FAILED|HIP out of memory"
        r"|out of memory on device|Tried to allocate [\d.]{1,32} [KMGT]i?B",
    ),
    (
        LineKind.NCCL,
        ("nccl",),
        # The window after "ProcessGroupNCCL" ends at the next one: a line of glued
        # repeats costs one pass, not a window's scan per repeat.
        r"NCCL (?:WARN|ERROR|error)|\bnccl\w{0,64}Error\b|ncclSystemError|ncclInternalError"
        r"|ProcessGroupNCCL(?:(?!ProcessGroupNCCL).){0,240}?(?:[Tt]imeout|[Ee]rror|[Aa]bort)"
        r"|Watchdog caught collective operation timeout|NCCL communicator was aborted",
    ),
    (
        LineKind.OOM_KILLED,
        ("oom", "out of memory", "killed"),
        r"\bOOMKilled\b|Out of memory: Kill(?:ed)? process|\boom-kill(?:er)?\b"
        r"|invoked oom-killer|Memory cgroup out of memory|^Killed\s{0,64}$",
    ),
    (LineKind.TRACEBACK, ("traceback",), r"^Traceback \(most recent call last\):"),
    (
        LineKind.MODEL_LOAD,
        ("load", "fetching", "captur"),
        r"Loading checkpoint shards|Loading safetensors checkpoint|Loading (?:model )?weights"
        r"|Loading model|[Mm]odel load(?:ing|ed)|Loaded model|llama_model_load|load_tensors:"
        r"|llm_load_tensors|Downloading (?:shards|model|weights)|Fetching \d{1,9} files"
        r"|Starting to load model|weights loaded|[Cc]apturing (?:CUDA )?graphs?",
    ),
    (
        LineKind.ERROR,
        ("error", "fatal", "critical", "panic", "segmentation fault", "core dumped", "exception"),
        r"\b(?:ERROR|FATAL|CRITICAL|PANIC)\b|\bpanic:|Segmentation fault|core dumped"
        r"|CUDA error|^[\w.]{0,256}(?:Error|Exception): ",
    ),
)
_KINDS = tuple(
    (kind, keys, re.compile(pattern, re.MULTILINE)) for kind, keys, pattern in _KIND_RULES
)
_KEYS = tuple(dict.fromkeys(key for _, keys, _ in _KINDS for key in keys))
_ALL_KEYS = tuple(k for k in _KEYS if not any(o != k and o in k for o in _KEYS))
"""Every keyword but those holding another ("out of memory" holds "memory")."""
_TRACEBACK_BODY = re.compile(r"[ \t]|\^{1,4096}\s{0,64}$|~{1,4096}\s{0,64}$|$")
_TRACEBACK_CHAIN = re.compile(
    r"During handling of the above exception|The above exception was the direct cause"
)


def _head(text: str) -> str:
    """The part of a line classification reads (`CLASSIFY_CHARS`, marked when cut)."""
    return text if len(text) <= CLASSIFY_CHARS else text[:CLASSIFY_CHARS] + _CUT


def _kind(head: str) -> str:
    low = head.lower()
    for kind, keys, pattern in _KINDS:
        for key in keys:
            if key in low:
                if pattern.search(head) is not None:
                    return kind
                break
    return LineKind.NORMAL


def classify(text: str) -> str:
    """The kind of one line on its own (no traceback context); "" for an ordinary line.

    Only the first `CLASSIFY_CHARS` characters count.
    """
    return _kind(_head(text))


class Classifier:
    """Classifies lines, following Python tracebacks across lines (one state per stream)."""

    def __init__(self) -> None:
        self._in_traceback: set[object] = set()

    def classify(self, text: str, key: object = None) -> str:
        """The kind of this line, given the lines of the same `key` (stream) before it."""
        text = _head(text)
        kind = _kind(text)
        if key in self._in_traceback:
            if kind in (LineKind.NORMAL, LineKind.ERROR) and (
                _TRACEBACK_BODY.match(text) or _TRACEBACK_CHAIN.search(text)
            ):
                return LineKind.TRACEBACK
            # The exception line closes the traceback.
            if not _TRACEBACK_BODY.match(text):
                self._in_traceback.discard(key)
            return kind if kind not in (LineKind.NORMAL, LineKind.ERROR) else LineKind.TRACEBACK
        if kind == LineKind.TRACEBACK:
            self._in_traceback.add(key)
        return kind

    def classify_many(self, texts: Sequence[str], keys: Sequence[object]) -> list[str]:
        """The kinds of consecutive lines (`keys[i]` is line i's stream), as `classify` gives.

        A flood is mostly ordinary lines: the keywords are looked for once in the whole run
        of lines, and only the lines that hold one are classified one by one.
        """
        if not self._in_traceback:
            if max(map(len, texts), default=0) > CLASSIFY_CHARS:
                texts = [_head(text) for text in texts]
            low = "\n".join(texts).lower()  # keywords hold no newline: no match spans lines
            present = [key for key in _ALL_KEYS if key in low]
            if not present:
                return [LineKind.NORMAL] * len(texts)
            if "traceback" not in present:
                # No line can start a traceback, so no state changes: lines are independent.
                kinds = [LineKind.NORMAL] * len(texts)
                for i, text in enumerate(texts):
                    lowered = text.lower()
                    for key in present:
                        if key in lowered:
                            kinds[i] = _kind(text)
                            break
                return kinds
        return [self.classify(text, key) for text, key in zip(texts, keys, strict=True)]

    def reset(self, key: object = None) -> None:
        """Forget the traceback state of one stream (or of all with no key)."""
        if key is None:
            self._in_traceback.clear()
        else:
            self._in_traceback.discard(key)


# --- splitting messages into lines --------------------------------------------------------

_CR_RUN = re.compile(rb"\r{2,}")
_ERASE_LINE = re.compile(rb"(?:\x1b\[|\xc2\x9b)[02]?K")
"""Erase in line (to its end, or all of it): what was written before on the line is gone."""


def _char_width(ch: str) -> int:
    """Terminal columns of one (sanitised, non-tab) character: 0, 1 or 2."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _visible_from(text: str, column: int) -> tuple[int, int, int]:
    """Where `text`, written from column 0, shows past `column` once later text covers the
    columns before it: (index of its first character there, blank columns before that
    character, the width of the whole text).

    A wide character (or a tab) cut in two by `column` leaves blanks, as on a terminal; a
    combining mark whose base is covered goes with it.
    """
    if text.isascii() and "\t" not in text:
        size = len(text)
        return min(column, size), 0, size
    first = -1
    pad = 0
    col = 0
    for i, ch in enumerate(text):
        width = (col // 8 + 1) * 8 - col if ch == "\t" else _char_width(ch)
        if first < 0 and col >= column and width:
            first, pad = i, col - column
        col += width
    return (len(text) if first < 0 else first), pad, col


def _overlay_plan(segments: Sequence[bytes]) -> list[tuple[int, str, SgrChanges, int, int]]:
    """The segments of a line that still show after carriage returns, newest first.

    Each segment is written from column 0 over those before it (a progress bar redrawing
    itself), so an older one shows only past the columns the newer ones covered, and not
    at all before an erase-in-line. Each entry: (segment index, its text and colours, the
    index of its first character that shows, blank columns before that character). Cost:
    one pass over the bytes; only segments longer than what covers them are sanitised.
    """
    plan: list[tuple[int, str, SgrChanges, int, int]] = []
    covered = 0
    seen: set[bytes] = set()
    for index in range(len(segments) - 1, -1, -1):
        raw = segments[index]
        if not raw or raw in seen:
            continue  # nothing written, or the same as a later segment, which covers it
        seen.add(raw)
        erases = (b"\x1b" in raw or b"\xc2\x9b" in raw) and _ERASE_LINE.search(raw) is not None
        # A character takes at most as many columns as bytes, a tab at most 8: a segment
        # no wider than that cannot show past what covers it.
        if len(raw) + 7 * raw.count(b"\t") > covered:
            text, sgr = sanitize_line(raw)
            first, pad, width = _visible_from(text, covered)
            if width > covered:
                plan.append((index, text, sgr, first, pad))
                covered = width
        if erases:
            break
    return plan


def _overlay(segments: Sequence[bytes]) -> tuple[str, SgrChanges]:
    """What a terminal shows of a line whose segments were each written from column 0.

    `hello world` then `bye` shows `byelo world`. Colours are each segment's own: the
    colours of an older segment's visible part are set again where it starts. A tab covers
    the columns it moves over (a terminal would leave what was there).
    """
    texts: list[str] = []
    sgr: list[tuple[int, str]] = []
    offset = 0
    for _, text, changes, first, pad in _overlay_plan(segments):
        piece = " " * pad + text[first:]
        if changes:
            replay = [params for pos, params in changes if pos <= first]
            if replay or sgr:
                if sgr:
                    sgr.append((offset, "0"))  # back to plain before this segment's state
                sgr.extend((offset, params) for params in replay)
            shift = offset + pad - first
            sgr.extend((pos + shift, params) for pos, params in changes if pos > first)
        elif sgr:
            sgr.append((offset, "0"))
        texts.append(piece)
        offset += len(piece)
    return "".join(texts), tuple(sgr)


def _compact_redraws(data: bytes) -> bytes:
    """A partial line's bytes with the segments that no longer show dropped.

    The last segment may still grow, so it stays, and only the finished ones count as
    covering the older ones: what is dropped could never show again.
    """
    segments = data.split(b"\r")
    done = segments[:-1]
    keep = sorted(index for index, *_ in _overlay_plan(done))
    if (b"\x1b" in segments[-1] or b"\xc2\x9b" in segments[-1]) and _ERASE_LINE.search(
        segments[-1]
    ):
        keep = []
    return b"\r".join([*(done[i] for i in keep), segments[-1]])


class LineSplitter:
    """Turns one container's log messages into `LogLine`s.

    Messages are what `LogStream.read()` returns: `(stream, payload)` where the payload starts
    with the engine's timestamp and a space. A message without a newline at its end is a
    partial line (the engine cuts lines at 16 KiB); the next message of the same stream
    continues it. It also records the timestamps of recent messages so a resumed stream can
    skip those already seen (`expect_replay`).
    """

    def __init__(self, source: str = "", *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.source = sanitize_text(source)[0]
        """The name lines carry (sanitised: names come from outside too)."""
        self.max_line_bytes = max_line_bytes
        self.classifier = Classifier()
        self.last_ts = 0
        """Newest message timestamp seen."""
        self.messages = 0
        self.skipped = 0
        """Messages dropped as already seen after a resume."""
        self._partial: dict[int, tuple[int, bytearray, int]] = {}
        self._recent: deque[int] = deque()
        self._replay: deque[int] = deque()
        self._replay_end = 0

    def resume_since(self, *, margin: bool = True) -> int:
        """The `since_ns` a resumed stream should start at (0: no message seen yet).

        With `margin`, a little before the newest timestamp (see `RESUME_MARGIN_NS`); without,
        exactly at it (right after an initial history, which ends where the file ends).
        """
        if not self.last_ts:
            return 0
        return max(1, self.last_ts - (RESUME_MARGIN_NS if margin else 0))

    @property
    def replay_newest(self) -> int:
        """Timestamp of the newest message a replay should repeat (0: none expected)."""
        return self._replay[-1] if self._replay else 0

    def expect_replay(self, since_ns: int) -> None:
        """The next messages replay the stream from `since_ns`: skip those already seen.

        What was seen since then is a subsequence of what the engine replays (both in file
        order), so seen messages are matched greedily by timestamp; replayed messages that were
        not seen (the gap) go through.
        """
        self._replay = deque(ts for ts in self._recent if ts >= since_ns)
        self._replay_end = self._replay[-1] + RESUME_MARGIN_NS if self._replay else 0

    def feed(self, messages: Iterable[tuple[int, bytes]]) -> list[LogLine]:
        """Lines completed by these messages, in order."""
        batch = messages if isinstance(messages, list) else list(messages)
        out: list[LogLine] = []
        done = 0
        if not self._replay and not self._partial:
            done = self._feed_plain(batch, out)
        if done < len(batch):
            self._feed_each(batch[done:] if done else batch, out)
        return out

    def _feed_plain(self, messages: list[tuple[int, bytes]], out: list[LogLine]) -> int:
        """The common case in bulk: one whole printable-ASCII line per message, each stamped
        in the engine's format. Returns how many leading messages it took (0: none fit)."""
        joined = b"".join([payload for _, payload in messages])
        # One pass over the whole run tells whether any byte needs sanitising: what is left
        # once printable ASCII and tab are deleted must be one newline per message.
        left = joined.translate(None, _PLAIN_BYTES)
        if len(left) != len(messages) or left.count(10) != len(left):
            return 0
        seconds = _SECONDS
        room = self.max_line_bytes + 32
        stamps: list[int] = []
        texts: list[str] = []
        streams: list[int] = []
        for stream, payload in messages:
            # With one newline per message in all, a message ending in one holds no other
            # as long as every message does (see below for when one does not).
            size = len(payload)
            if (
                stream == 3
                or size < 32
                or size > room
                or payload[-1] != 10
                or payload[30] != 32
                or payload[19] != 46
                or payload[29] != 90
            ):
                break
            sec = seconds.get(payload[:19])
            if sec is None:
                ts = parse_timestamp(payload[:30])  # fills the cache for the next ones
                if ts is None:
                    break
            else:
                ts = sec * 1_000_000_000 + int(payload[20:29])
            stamps.append(ts)
            texts.append(payload[31:-1].decode("ascii"))
            streams.append(stream)
        if len(stamps) < len(messages):
            # The count above covered all the messages, so one taken may hold the newlines
            # of those left (one with two lines, then one with none): stop before it.
            for k in range(len(stamps)):
                if messages[k][1].count(10) != 1:
                    del stamps[k:], texts[k:], streams[k:]
                    break
        if not stamps:
            return 0
        kinds = self.classifier.classify_many(texts, streams)
        new = tuple.__new__
        source = self.source
        out.extend(
            [
                new(LogLine, (ts, text, (), kind, source, stream))
                for ts, text, kind, stream in zip(stamps, texts, kinds, streams, strict=True)
            ]
        )
        self.messages += len(stamps)
        top = max(stamps)
        if top > self.last_ts:
            self.last_ts = top
        recent = self._recent
        recent.extend(stamps)
        floor = self.last_ts - RESUME_MARGIN_NS
        while len(recent) > 64 and recent[0] < floor:
            recent.popleft()
        return len(stamps)

    def _feed_each(self, messages: Iterable[tuple[int, bytes]], out: list[LogLine]) -> None:
        """Any messages, one by one (partial lines, replays, escapes, odd timestamps)."""
        recent = self._recent
        replay = self._replay
        seconds = _SECONDS
        partial = self._partial
        cap = self.max_line_bytes
        make = self._line
        for stream, payload in messages:
            if stream == 3:
                self._emit_notice(payload, out)
                continue
            pos = 0
            n = len(payload)
            while pos < n:
                sp = payload.find(b" ", pos, pos + 40)
                ts = None
                if sp == pos + 30 and payload[pos + 19] == 46 and payload[pos + 29] == 90:
                    # The engine's own format, 2006-01-02T15:04:05.000000000Z: the fast path.
                    sec = seconds.get(payload[pos : pos + 19])
                    if sec is not None:
                        ts = sec * 1_000_000_000 + int(payload[pos + 20 : pos + 29])
                if ts is None and sp > pos:
                    ts = parse_timestamp(payload[pos:sp])
                if ts is None:
                    ts = self.last_ts
                    start = pos
                else:
                    start = sp + 1
                nl = payload.find(b"\n", start)
                end = n if nl < 0 else nl
                pos = n if nl < 0 else nl + 1
                if replay:
                    if ts == replay[0]:
                        replay.popleft()
                        self.skipped += 1
                        continue
                    if ts > self._replay_end:
                        replay.clear()  # past the replayed range: what is left was not resent
                self.messages += 1
                if ts > self.last_ts:
                    self.last_ts = ts
                recent.append(ts)
                if len(recent) > 64 and recent[0] < self.last_ts - RESUME_MARGIN_NS:
                    floor = self.last_ts - RESUME_MARGIN_NS
                    while recent and recent[0] < floor:
                        recent.popleft()
                if nl >= 0 and end - start <= cap and stream not in partial:
                    out.append(make(ts, stream, payload[start:end], 0))
                else:
                    self._add(stream, ts, payload[start:end], nl >= 0, out)

    def flush(self) -> list[LogLine]:
        """Lines still waiting for their end (the stream ended inside a line)."""
        out: list[LogLine] = []
        for stream, (ts, buf, cut) in sorted(self._partial.items()):
            out.append(self._line(ts, stream, bytes(buf), cut))
        self._partial.clear()
        return out

    def _add(self, stream: int, ts: int, data: bytes, complete: bool, out: list[LogLine]) -> None:
        pending = self._partial.get(stream)
        cap = self.max_line_bytes
        if pending is None:
            if complete:
                cut = 0
                if len(data) > cap:
                    cut = len(data) - cap
                    data = data[:cap]
                out.append(self._line(ts, stream, data, cut))
                return
            pending = (ts, bytearray(), 0)
            self._partial[stream] = pending
        first_ts, buf, cut = pending
        if b"\r" in data and len(buf) + len(data) > cap:
            # A progress bar redrawing itself without a newline: keep what still shows,
            # so that it stays within the cap however long it goes on.
            data = _compact_redraws(bytes(buf) + data)
            buf.clear()
        room = cap - len(buf)
        if len(data) > room:
            cut += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        buf += data
        if complete:
            del self._partial[stream]
            out.append(self._line(first_ts, stream, bytes(buf), cut))
        else:
            self._partial[stream] = (first_ts, buf, cut)

    def _line(self, ts: int, stream: int, data: bytes, cut: int) -> LogLine:
        if b"\r" not in data:
            text, sgr = sanitize_line(data)
            if cut:
                text += f" \u2026 [{cut:,} bytes cut]"
            return LogLine(
                ts, text, sgr, self.classifier.classify(text, stream), self.source, stream
            )
        # Carriage returns: what a terminal shows, each segment written over the ones before
        # (a run of them is one).
        text, sgr = _overlay(_CR_RUN.sub(b"\r", data).split(b"\r"))
        if cut:
            text += f" \u2026 [{cut:,} bytes cut]"
        kind = self.classifier.classify(text, stream)
        return LogLine(ts, text, sgr, kind, self.source, stream)

    def _emit_notice(self, payload: bytes, out: list[LogLine]) -> None:
        text, _ = sanitize_line(payload.rstrip(b"\r\n").replace(b"\n", b" "))
        out.append(LogLine(self.last_ts, f"engine: {text}", (), LineKind.NOTICE, self.source, 3))


# --- export -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What `export_lines` wrote."""

    path: Path
    lines: int
    bytes: int


def export_path(directory: str | Path, name: str, *, now: float | None = None) -> Path:
    """A fresh file name for exported logs: `aitop-<name>-<YYYYmmdd-HHMMSS>.log`."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "logs"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return Path(directory) / f"aitop-{safe}-{stamp}.log"


def format_line(line: LogLine, *, timestamps: bool = True, source: bool = False) -> str:
    """One line as plain text for a file: `[timestamp ][source | ]text` (no colours)."""
    parts = []
    if timestamps:
        parts.append(format_timestamp(line.ts, precision=9))
    if source and line.source:
        parts.append(f"{line.source} |")
    parts.append(line.text)
    return " ".join(parts)


def export_lines(
    lines: Iterable[LogLine],
    path: str | Path,
    *,
    timestamps: bool = True,
    source: bool = False,
) -> ExportResult:
    """Write lines to `path` (UTF-8, one per line, colours dropped); blocking file I/O.

    The lines are already sanitised, so the file is safe to `cat`. Refuses to overwrite.
    """
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    size = 0
    with open(target, "x", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            text = format_line(line, timestamps=timestamps, source=source) + "\n"
            fh.write(text)
            count += 1
            size += len(text.encode("utf-8"))
    return ExportResult(target, count, size)


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


def _state(attrs: dict[str, Any]) -> _ContainerState:
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


class _Reader(threading.Thread):
    """Reads one container's stream for a follower, through restarts and dropped streams.

    Restart and exit boundaries come from the follower's `_Watcher` (the engine's events): a
    follow stream may go on across a restart, so its end says nothing reliable. The reader
    only resumes: after its stream ends it asks the engine for the container's state and
    follows again from the last timestamp seen, waiting first while the container is down.
    """

    def __init__(self, follower: LogFollower, source: _Source) -> None:
        super().__init__(name=f"aitop-logs-{source.target.name}", daemon=True)
        self.follower = follower
        self.source = source
        self.engine = follower.engine
        self.splitter = LineSplitter(source.target.name, max_line_bytes=follower.max_line_bytes)
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
        try:
            self._run()
        except _StopReader:
            pass
        except Exception as exc:  # never die silently: say it in the pane
            self._notice(f"log stream stopped: {exc}")
        finally:
            self.drop_stream()
            self.follower._source_done(self.source)

    @property
    def _stopping(self) -> bool:
        return self.follower._stop.is_set()

    def _run(self) -> None:
        state = self._inspect()
        if state is None:
            return
        self._tty = state.tty
        tail, since = self.follower.preset.window(state.started_at)
        self._floor = since
        # The initial history first, to its end: then it is known to be complete (replica
        # sets merge complete histories) and following starts exactly where it ended.
        while not self._read(follow=False, tail=tail, since_ns=since or None)[1]:
            if self._inspect() is None or self.follower._stop.wait(0.5):
                return
        if not state.running:
            self._flush()
            self.follower._mark_state(self.source, state, opened=True)
        self.follower._source_ready(self.source)
        since = self.splitter.resume_since(margin=False)
        quick_eofs = 0
        while not self._stopping:
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
                self.follower._count("refills")
                self.splitter.expect_replay(since)
                got, _ = self._read(follow=True, tail=None, since_ns=start)
            if self._stopping:
                return
            since = self.splitter.resume_since()
            state = self._inspect()
            if state is None:
                return
            if not state.running:
                self._flush()
                continue
            # The stream ended under a running container (a broken connection, a restart):
            # follow again from where it stopped.
            self.follower._count("resumes")
            quick = not got and time.monotonic() - began < 0.5
            quick_eofs = quick_eofs + 1 if quick else 0
            if quick_eofs and self.follower._stop.wait(min(5.0, 0.25 * 2**quick_eofs)):
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
        if self._stopping:
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
                    self.follower._intake(self.source, lines)
                if (
                    follow
                    and len(messages) < FOLLOW_SMALL_READ
                    and self.follower._stop.wait(FOLLOW_READ_PAUSE)
                ):
                    break
        except EngineError as exc:
            ok = False
            if not self._stopping:
                self._unreachable(exc)
        finally:
            stream.close()
            with self._lock:
                self._stream = None
        return got, ok

    def _inspect(self) -> _ContainerState | None:
        """The container's state, retrying while the engine is unreachable; None: stop."""
        delay = 0.5
        while not self._stopping:
            try:
                state = _state(self.engine.inspect(self.source.target.container_id))
            except ContainerGone:
                self._flush()
                self.follower._mark_gone(self.source)
                return None
            except EngineError as exc:
                self._unreachable(exc)
                if self.follower._stop.wait(delay):
                    return None
                delay = min(delay * 2, 5.0)
                continue
            self._notice_shown = False
            return state
        return None

    def _wait_for_start(self, started_at: int) -> _ContainerState | None:
        """Wait (polling) until the container runs again; None: stop."""
        while not self.follower._stop.wait(INSPECT_POLL):
            state = self._inspect()
            if state is None:
                return None
            if state.running or state.started_at != started_at:
                return state
        return None

    def _flush(self) -> None:
        lines = self.splitter.flush()
        if lines:
            self.follower._intake(self.source, lines)

    def _notice(self, text: str) -> None:
        self.follower._marker(self.source, LineKind.NOTICE, text, time.time_ns())

    def _unreachable(self, exc: EngineError) -> None:
        if not self._notice_shown and not self._stopping:
            self._notice_shown = True
            self._notice(f"{exc}; retrying")


class _Watcher(threading.Thread):
    """Marks (re)starts, exits, OOM kills and removals from the engine's container events."""

    def __init__(self, follower: LogFollower) -> None:
        super().__init__(name="aitop-logs-events", daemon=True)
        self.follower = follower
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self._ready = threading.Event()
        """Set once subscribed (or given up), so nothing after `start()` is missed."""

    def close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def run(self) -> None:
        follower = self.follower
        by_id = {s.target.container_id: s for s in follower._sources}
        delay = 0.5
        while not follower._stop.is_set():
            try:
                stream = follower.engine.container_events(list(by_id))
            except EngineError:
                self._ready.set()
                if follower._stop.wait(delay):
                    return
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.5
            with self._lock:
                self._stream = stream
            self._ready.set()
            if follower._stop.is_set():
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
            if follower._stop.wait(0.5):
                return

    def _handle(self, source: _Source, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status") or ""
        when = int(event.get("timeNano") or 0) or time.time_ns()
        follower = self.follower
        if action == "destroy":
            follower._mark_gone(source, when)
            return
        if action not in ("start", "die"):
            return  # "oom" comes before "die"; inspect tells OOMKilled then
        try:
            state = _state(follower.engine.inspect(source.target.container_id))
        except EngineError:
            state = None
        if action == "start":
            started = state.started_at if state is not None and state.started_at else when
            follower._count("restarts")
            follower._marker(
                source,
                LineKind.RESTART,
                f"container (re)started at {format_timestamp(started)}",
                started - 1,
            )
            return
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        if state is None:
            state = _ContainerState(False, 0, when, int(attrs.get("exitCode") or 0), False, False)
        follower._mark_state(source, state)


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
        self.max_pending_lines = max(1, max_pending_lines)
        self.max_pending_bytes = max(1, max_pending_bytes)
        self.wait_for_ack = wait_for_ack
        self.ack_timeout = ack_timeout
        self.merge_window = merge_window
        self.max_line_bytes = max_line_bytes
        self._sources = [_Source(i, t) for i, t in enumerate(targets)]
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending = 0
        self._pending_bytes = 0
        self._dropped = 0
        self._ack_due: float | None = None
        self._counters: dict[str, int] = dict.fromkeys(
            (f.name for f in fields(FollowerStats) if f.name != "skipped_replayed"), 0
        )
        self._markers = False
        self._thread = threading.Thread(target=self._deliver, name="aitop-logs", daemon=True)
        self._watcher = _Watcher(self)
        self._started = 0.0

    @property
    def targets(self) -> tuple[LogTarget, ...]:
        """What this follower follows."""
        return tuple(s.target for s in self._sources)

    @property
    def merged(self) -> bool:
        """True when several streams are merged in time order."""
        return len(self._sources) > 1

    @property
    def stats(self) -> FollowerStats:
        """A snapshot of the counters."""
        with self._lock:
            counters = dict(self._counters)
        skipped = sum(s.reader.splitter.skipped for s in self._sources if s.reader is not None)
        return FollowerStats(skipped_replayed=skipped, **counters)

    @property
    def ready(self) -> bool:
        """True once every stream delivered its initial history."""
        return all(s.ready or s.done for s in self._sources)

    def start(self) -> LogFollower:
        """Start the threads; returns self."""
        self._started = time.monotonic()
        self._watcher.start()
        for source in self._sources:
            source.reader = _Reader(self, source)
            source.reader.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following: close the streams now (from any thread); does not wait."""
        self._stop.set()
        self._watcher.close()
        for source in self._sources:
            if source.reader is not None:
                source.reader.drop_stream()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when they all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        threads: list[threading.Thread] = [s.reader for s in self._sources if s.reader]
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
            or any(s.reader is not None and s.reader.is_alive() for s in self._sources)
        )

    def drop_streams(self) -> None:
        """Close the open streams as a broken connection would; following resumes by itself."""
        for source in self._sources:
            if source.reader is not None:
                source.reader.drop_stream()

    # -- called by readers --

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def _intake(self, source: _Source, lines: list[LogLine]) -> None:
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
            if (
                self._pending > self.max_pending_lines
                or self._pending_bytes > self.max_pending_bytes
            ):
                self._drop_oldest()
        self._wake.set()

    def _drop_oldest(self) -> None:
        """Drop the oldest pending lines until within both bounds (lock held)."""
        while self._pending > 1 and (
            self._pending > self.max_pending_lines or self._pending_bytes > self.max_pending_bytes
        ):
            oldest = min((s for s in self._sources if s.chunks), key=lambda s: s.chunks[0][1][0].ts)
            arrival, lines = oldest.chunks[0]
            k = 0
            freed = 0
            excess_lines = self._pending - self.max_pending_lines
            excess_bytes = self._pending_bytes - self.max_pending_bytes
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

    def _marker(self, source: _Source, kind: str, text: str, ts: int) -> None:
        """Add a line of aitop's own (a boundary or a notice) to a source's lines."""
        clean, _ = sanitize_text(text)
        name = sanitize_text(source.target.name)[0]
        line = LogLine(ts, f"\u2500\u2500 {clean} \u2500\u2500", (), kind, name, 0)
        with self._lock:
            self._markers = True
        self._intake(source, [line])

    def _mark_state(self, source: _Source, state: _ContainerState, *, opened: bool = False) -> None:
        """Mark that the container stopped (exit code, OOM kill)."""
        if opened and not state.started_at:
            self._marker(source, LineKind.NOTICE, "container has not started yet", time.time_ns())
            return
        what = "is not running: it" if opened else ""
        # The engine stamps a line when it reads it, which under load can be after the exit
        # it records: the boundary goes after every line already seen.
        seen = source.reader.splitter.last_ts if source.reader is not None else 0
        when = max(state.finished_at or time.time_ns(), seen + 1)
        if state.oom_killed:
            text = f"container {what} was OOM-killed (out of memory), exit code {state.exit_code}"
            self._marker(source, LineKind.OOM_KILLED, " ".join(text.split()), when)
        else:
            text = f"container {what} exited with code {state.exit_code}"
            self._marker(source, LineKind.EXITED, " ".join(text.split()), when)

    def _mark_gone(self, source: _Source, when: int | None = None) -> None:
        """Mark, once, that the container was removed."""
        with self._lock:
            if source.gone_marked:
                return
            source.gone_marked = True
        self._marker(source, LineKind.NOTICE, "container removed", when or time.time_ns())

    def _source_ready(self, source: _Source) -> None:
        with self._lock:
            source.ready = True
        self._wake.set()

    def _source_done(self, source: _Source) -> None:
        with self._lock:
            source.ready = True
            source.done = True
        self._wake.set()

    # -- the delivery thread --

    def _ack(self) -> None:
        with self._lock:
            self._ack_due = None
        self._wake.set()

    def _deliver(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            timeout: float | None = None
            with self._lock:
                ack_due = self._ack_due
            if ack_due is not None and now < ack_due:
                timeout = ack_due - now
            elif not self.ready and now - self._started < HISTORY_HOLD:
                # The initial history goes out in one batch (shown at once, not a part
                # now and the rest a batch interval later), unless it takes long to come.
                timeout = self._started + HISTORY_HOLD - now
            elif now - last < self.batch_interval:
                timeout = last + self.batch_interval - now
            else:
                with self._lock:
                    lines, dropped, timeout = self._take(now)
                if lines or dropped:
                    last = now
                    self._hand_over(lines, dropped)
                    continue
            self._wake.wait(timeout)

    def _hand_over(self, lines: list[LogLine], dropped: int) -> None:
        ack = self._ack if self.wait_for_ack else None
        with self._lock:
            self._counters["delivered"] += len(lines)
            self._counters["batches"] += 1
            if ack is not None:
                self._ack_due = time.monotonic() + self.ack_timeout
        batch = LogBatch(self.session, tuple(lines), dropped, ack)
        if self._stop.is_set():
            return
        with contextlib.suppress(Exception):
            self.on_batch(batch)

    def _take(self, now: float) -> tuple[list[LogLine], int, float | None]:
        """Lines ready to deliver, lines dropped, and when to look again (lock held)."""
        dropped, self._dropped = self._dropped, 0
        if not self._pending:
            return [], dropped, None
        if len(self._sources) == 1:
            source = self._sources[0]
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
        for source in self._sources:
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
        if not all(s.ready or s.done for s in self._sources):
            waited = now - self._started
            if waited < READY_TIMEOUT:
                return -1, READY_TIMEOUT - waited
        window = self.merge_window
        release: float = float("inf")
        for source in self._sources:
            if not source.done and (source.count or now - source.last_arrival < window):
                release = min(release, source.max_ts)
        wake_in: float | None = None
        for source in self._sources:
            for arrival, chunk in source.chunks:
                age = now - arrival
                if age < window:
                    left = window - age
                    wake_in = left if wake_in is None else min(wake_in, left)
                    break
                release = max(release, max(line.ts for line in chunk))
        return release, wake_in


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

    def __init__(
        self,
        engine: Engine,
        targets: Sequence[LogTarget],
        *,
        on_batch: Callable[[LogBatch], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(engine, list(targets), on_batch=on_batch, **kwargs)
