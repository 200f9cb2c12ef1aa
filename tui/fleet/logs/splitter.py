"""Log messages into lines: `LineSplitter` joins the engine's 16 KiB partial messages, caps line
length (`MAX_LINE_BYTES`, the rest is cut and counted), keeps what a terminal would show of a
line redrawn after carriage returns (a progress bar: later text over earlier text from column
0), sanitises each line (`tui.fleet.sanitize`: only colours survive) and classifies it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Sequence

from tui.fleet.logs.classify import Classifier
from tui.fleet.logs.types import (
    SECONDS_CACHE,
    LineKind,
    LogLine,
    parse_timestamp,
)
from tui.fleet.sanitize import SgrChanges, sanitize_line, sanitize_text

MAX_LINE_BYTES = 64 * 1024
"""Longest line kept; the rest of a longer line is cut (and the cut counted in the line)."""
RESUME_MARGIN_NS = 500_000_000
"""How far before the last timestamp seen a resumed stream starts.

stdout and stderr are written to the log by separate goroutines, so the file is not in
strict timestamp order; resuming a little earlier and dropping what was seen closes that gap.
"""


_PLAIN_BYTES = bytes([9, *range(32, 127)])
"""Bytes a line may hold and still skip sanitising (printable ASCII and tab)."""


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
        seconds = SECONDS_CACHE
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
        seconds = SECONDS_CACHE
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
