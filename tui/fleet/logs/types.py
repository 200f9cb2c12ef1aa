"""The log layer's plain data: lines, presets, the bounded buffer, searches, batches.

Everything here is pure (no I/O, no threads, no UI) so that widgets may import it: the
`LogPane` receives `LogBatch`es of `LogLine`s and keeps them in a `LogBuffer`. The reading
side (streams, followers, classification) lives in the other modules of `tui.fleet.logs`.
"""

from __future__ import annotations

import calendar
import itertools
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from tui.fleet.sanitize import SgrChanges

DEFAULT_TAIL = 1000
"""Lines shown at once when a pane opens."""
DEFAULT_MAX_LINES = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LINE_OVERHEAD = 160
"""Estimated bytes a retained line costs besides its text (tuple, str header, list slot)."""


class LineKind(str, Enum):
    """What a line is, for highlighting and for jumping between the lines that matter.

    The values are the plain strings lines have always carried (`""` for an ordinary line),
    so comparisons with strings, `str()`, f-strings and JSON give the value. `jump` says
    whether the "next highlight" key stops at lines of the kind (`JUMP_KINDS`).
    """

    jump: bool
    """Whether the "next highlight" key stops at lines of this kind."""

    def __new__(cls, value: str, jump: bool = False) -> LineKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.jump = jump
        return member

    def __str__(self) -> str:
        # Since Python 3.11, str() of a str-mixin Enum is its name ("LineKind.ERROR"), and
        # since 3.12 format() follows str(): lines are styled and exported by their value.
        return str.__str__(self)

    NORMAL = ""
    CUDA_OOM = "cuda-oom", True
    NCCL = "nccl", True
    TRACEBACK = "traceback", True
    OOM_KILLED = "oom-killed", True
    MODEL_LOAD = "model-load", True
    MODEL_READY = "model-ready", True
    """The server says it is ready to serve (after loading, or after a restart)."""
    ERROR = "error", True
    RESTART = "restart", True
    """A boundary line aitop adds when the container (re)started."""
    EXITED = "exited", True
    """A line aitop adds when the container stopped."""
    NOTICE = "notice"
    """A line aitop adds about the stream itself (container removed, engine unreachable)."""


JUMP_KINDS: frozenset[LineKind] = frozenset(kind for kind in LineKind if kind.jump)
"""Kinds the "next highlight" key stops at (those whose `jump` is set)."""


class LogLine(NamedTuple):
    """One log line, safe to display: `text` holds no control character but tab."""

    ts: int
    """Engine timestamp, nanoseconds since the epoch (0 when unknown)."""
    text: str
    sgr: SgrChanges = ()
    """Colour changes as (offset into text, SGR parameters)."""
    kind: LineKind = LineKind.NORMAL
    source: str = ""
    """The container (replica) name the line came from."""
    stream: int = 1
    """1 stdout, 2 stderr, 3 an engine message in the stream, 0 a TTY or aitop's own line."""


class LogTarget(NamedTuple):
    """A container to follow and the name its lines carry."""

    container_id: str
    name: str


@dataclass(frozen=True)
class LogPreset:
    """How much history a pane opens with."""

    key: str
    label: str
    tail: int | None = None
    """Last lines to show; None for no line limit."""
    since_seconds: float | None = None
    """Only messages of the last this-many seconds."""
    since_start: bool = False
    """Only messages since the container's last (re)start."""

    def window(self, started_at_ns: int, now_ns: int | None = None) -> tuple[int | None, int]:
        """The `(tail, since_ns)` to open the stream with (since 0: from the beginning)."""
        if self.since_start:
            return self.tail, started_at_ns
        if self.since_seconds is not None:
            now_ns = time.time_ns() if now_ns is None else now_ns
            return self.tail, max(1, now_ns - int(self.since_seconds * 1e9))
        return self.tail, 0


def tail_preset(lines: int = DEFAULT_TAIL) -> LogPreset:
    """The "last N lines" preset for a configured N."""
    return LogPreset("tail", f"last {lines:,} lines", tail=lines)


PRESETS: tuple[LogPreset, ...] = (
    tail_preset(DEFAULT_TAIL),
    LogPreset("5m", "last 5 min", since_seconds=300),
    LogPreset("1h", "last hour", since_seconds=3600),
    LogPreset("start", "since the last (re)start", since_start=True),
    LogPreset("all", "everything"),
)
"""The presets a pane cycles through, in order."""
DEFAULT_PRESET = PRESETS[0]


def preset_by_key(key: str, tail: int = DEFAULT_TAIL) -> LogPreset:
    """The preset with this key (the tail preset with the configured line count)."""
    if key == "tail":
        return tail_preset(tail)
    for preset in PRESETS:
        if preset.key == key:
            return preset
    raise KeyError(key)


# --- timestamps ---------------------------------------------------------------------------

SECONDS_CACHE: dict[bytes, int] = {}
"""Epoch seconds of `YYYY-MM-DDTHH:MM:SS` heads seen lately (a flood repeats one second)."""


def _epoch_seconds(head: bytes) -> int | None:
    """`YYYY-MM-DDTHH:MM:SS` (UTC) as epoch seconds, cached: a flood repeats the same second."""
    sec = SECONDS_CACHE.get(head)
    if sec is not None:
        return sec
    if len(head) != 19 or head[4] != 45 or head[7] != 45 or head[10] not in (84, 32):
        return None
    try:
        sec = calendar.timegm(
            (
                int(head[0:4]),
                int(head[5:7]),
                int(head[8:10]),
                int(head[11:13]),
                int(head[14:16]),
                int(head[17:19]),
                0,
                0,
                0,
            )
        )
    except ValueError:
        return None
    if len(SECONDS_CACHE) > 4096:
        SECONDS_CACHE.clear()
    SECONDS_CACHE[head] = sec
    return sec


def parse_timestamp(value: bytes | str) -> int | None:
    """An RFC 3339 timestamp (the engine's, nanoseconds optional) as ns since the epoch.

    None when `value` is not a timestamp, and for the engine's zero time (year 1).
    """
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) < 20 or raw.startswith(b"0001-"):
        return None
    sec = _epoch_seconds(raw[:19])
    if sec is None:
        return None
    rest = raw[19:]
    frac = b""
    if rest[:1] == b".":
        end = 1
        while end < len(rest) and 48 <= rest[end] <= 57:
            end += 1
        frac, rest = rest[1:end], rest[end:]
    if rest == b"Z":
        offset = 0
    elif len(rest) == 6 and rest[0] in (43, 45) and rest[3] == 58:
        try:
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == 43 else -1)
        except ValueError:
            return None
    else:
        return None
    ns = int(frac[:9].ljust(9, b"0")) if frac else 0
    return (sec - offset) * 1_000_000_000 + ns


def format_timestamp(ts: int, *, precision: int = 3) -> str:
    """ns since the epoch as `YYYY-MM-DDTHH:MM:SS.fffZ` (UTC; `precision` fraction digits)."""
    if ts <= 0:
        return "-" * (20 + (precision + 1 if precision else 0))
    sec, ns = divmod(ts, 1_000_000_000)
    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if not precision:
        return head + "Z"
    return f"{head}.{ns:09d}"[: 20 + precision] + "Z"


# --- the retained lines -------------------------------------------------------------------


def line_cost(line: LogLine) -> int:
    """Estimated bytes one retained line costs."""
    return len(line.text) + LINE_OVERHEAD + (24 * len(line.sgr) if line.sgr else 0)


_TEXT = operator.itemgetter(1)
_SGR = operator.itemgetter(2)


Row = tuple[int, str, SgrChanges, str, str, int]
"""A retained line as `LogBuffer` keeps it: a `LogLine`'s fields in a plain tuple, with the
kind as its plain string (an Enum member, an object with attributes, would keep the tuple
tracked by the garbage collector)."""

_ROW_KIND: dict[str, str] = {kind: kind.value for kind in LineKind}
_LINE_KIND: dict[str, LineKind] = {kind.value: kind for kind in LineKind}


def lines_cost(lines: Sequence[LogLine] | Sequence[Row]) -> int:
    """`line_cost` summed over lines (`LogLine`s or retained rows), computed in bulk."""
    texts = sum(map(len, map(_TEXT, lines)))
    sgr = sum(map(len, map(_SGR, lines)))
    return texts + LINE_OVERHEAD * len(lines) + 24 * sgr


def _as_row(line: LogLine) -> Row:
    ts, text, sgr, kind, source, stream = line
    return (ts, text, sgr, _ROW_KIND[kind], source, stream)


_new_line = tuple.__new__


def _as_line(row: Row) -> LogLine:
    """A retained row as a `LogLine`, without NamedTuple's argument handling."""
    ts, text, sgr, kind, source, stream = row
    return _new_line(LogLine, (ts, text, sgr, _LINE_KIND[kind], source, stream))


def _row_cost(row: Row) -> int:
    return len(row[1]) + LINE_OVERHEAD + 24 * len(row[2])


class LogBuffer:
    """The retained lines, oldest first, bounded by `max_lines` and by `max_bytes`.

    Every line gets a sequence number (`first_seq` is the oldest retained one's); numbers stay
    valid while older lines are evicted, so views can refer to lines by number. Indexing is
    O(1). Not thread-safe: one owner (the UI thread, say) uses it.

    Lines are kept as plain tuples (`Row`: the kind as its plain string) and handed out as
    `LogLine`s: the cyclic garbage collector stops tracking a plain tuple of strings and
    numbers, but tracks every NamedTuple instance (and every tuple holding an Enum member)
    for good, and each full collection would walk all the retained lines (at 100,000 lines,
    pauses of 100 ms and more while a flood keeps triggering them).
    """

    def __init__(
        self, max_lines: int = DEFAULT_MAX_LINES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_lines = max(1, max_lines)
        self.max_bytes = max(1, max_bytes)
        self._lines: list[Row] = []
        self._head = 0
        self.first_seq = 0
        """Sequence number of the oldest retained line."""
        self.nbytes = 0
        """Estimated bytes of the retained lines (see `line_cost`)."""
        self.dropped = 0
        """Lines evicted to stay within the bounds."""

    def __len__(self) -> int:
        return len(self._lines) - self._head

    def __iter__(self) -> Iterator[LogLine]:
        return map(_as_line, itertools.islice(self._lines, self._head, None))

    def __getitem__(self, index: int) -> LogLine:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return _as_line(self._lines[self._head + index])

    @property
    def end_seq(self) -> int:
        """Sequence number the next line will get."""
        return self.first_seq + len(self)

    def texts(self) -> Iterator[str]:
        """The retained lines' texts, oldest first (a search's fast path)."""
        return map(_TEXT, itertools.islice(self._lines, self._head, None))

    def get(self, seq: int) -> LogLine | None:
        """The line with this sequence number, or None if it was evicted (or not yet seen)."""
        index = seq - self.first_seq
        if 0 <= index < len(self):
            return _as_line(self._lines[self._head + index])
        return None

    def extend(self, lines: Iterable[LogLine]) -> int:
        """Append lines (evicting the oldest beyond the bounds); returns how many were evicted."""
        added = list(map(_as_row, lines))
        self._lines.extend(added)
        self.nbytes += lines_cost(added)
        return self._evict()

    def _evict(self) -> int:
        lines = self._lines
        head = self._head
        excess = len(lines) - head - self.max_lines
        if excess > 0:
            self.nbytes -= lines_cost(lines[head : head + excess])
            head += excess
        # Keep at least the newest line, however large.
        while self.nbytes > self.max_bytes and len(lines) - head > 1:
            self.nbytes -= _row_cost(lines[head])
            head += 1
        evicted = head - self._head
        if evicted:
            self.first_seq += evicted
            self.dropped += evicted
            if head > 4096 and head * 2 > len(lines):
                del lines[:head]
                head = 0
            self._head = head
        return evicted

    def take_from(self, seq: int) -> list[LogLine]:
        """Remove and return the lines from sequence number `seq` to the newest (for putting
        a late line back in its place: the next `extend` numbers them again from `seq`)."""
        index = max(0, seq - self.first_seq)
        if index >= len(self):
            return []
        cut = self._head + index
        taken = self._lines[cut:]
        del self._lines[cut:]
        self.nbytes -= lines_cost(taken)
        return [_as_line(row) for row in taken]

    def clear(self) -> None:
        """Forget every line (sequence numbers go on from where they were)."""
        self.first_seq = self.end_seq
        self._lines = []
        self._head = 0
        self.nbytes = 0

    def snapshot(self) -> tuple[LogLine, ...]:
        """The retained lines as an immutable tuple (for export from another thread)."""
        return tuple(self)


# --- search -------------------------------------------------------------------------------


class InvalidQuery(ValueError):
    """A search that cannot be compiled; `str()` says why, for an inline message."""


@dataclass(frozen=True)
class LogQuery:
    """A search: plain text or a regular expression, case-sensitive or not."""

    pattern: str = ""
    regex: bool = False
    case_sensitive: bool = False

    def compile(self) -> re.Pattern[str] | None:
        """The compiled pattern (None for an empty search); raises InvalidQuery."""
        if not self.pattern:
            return None
        flags = 0 if self.case_sensitive else re.IGNORECASE
        if not self.regex:
            return re.compile(re.escape(self.pattern), flags)
        try:
            compiled = re.compile(self.pattern, flags)
        except re.error as exc:
            where = f" at position {exc.pos}" if exc.pos is not None else ""
            raise InvalidQuery(f"invalid regex: {exc.msg}{where}") from None
        except (OverflowError, RecursionError, ValueError) as exc:
            raise InvalidQuery(f"invalid regex: {exc}") from None
        return compiled


@dataclass(frozen=True)
class LogBatch:
    """Lines a follower hands over at once; call `consumed()` once they are displayed."""

    session: int
    """The follower that produced it (drop batches of a follower you replaced)."""
    lines: tuple[LogLine, ...]
    dropped: int = 0
    """Lines dropped before this batch because the consumer fell behind."""
    _ack: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def consumed(self) -> None:
        """Tell the follower the batch was taken in, so it may deliver the next one."""
        if self._ack is not None:
            self._ack()
