"""Counting the events in a container's log: how many CUDA OOMs, NCCL failures, OOM kills,
tracebacks and errors it logged (issue 18, item 4).

An event is a run of consecutive lines of one counted kind (`EVENT_KINDS`): a traceback's
twenty lines (the classifier marks each of them) are one traceback, and the exception line
that ends it (`torch.OutOfMemoryError: CUDA out of memory`) is one CUDA OOM. An `EventTally`
is fed the classified lines of one run of a container, batch after batch, and remembers the
kind of the last line, so a run cut between two reads is still counted once.
"""

from __future__ import annotations

from collections.abc import Iterable

from tui.fleet.logs.types import LineKind, LogLine
from tui.fleet.models import EVENT_KINDS, LogEventCounts

_COUNTED = frozenset(EVENT_KINDS)


class EventTally:
    """The event counts of one container's current run (one owner: not thread-safe)."""

    def __init__(self) -> None:
        self._counts: dict[LineKind, int] = {}
        self._last: dict[int, LineKind] = {}
        """The kind of the last line of each stream (stdout and stderr interleave)."""
        self.read = False
        """True once a read of this run was counted."""
        self.partial = False
        """True once some lines of this run went unread (see `feed`)."""

    def feed(self, lines: Iterable[LogLine], *, complete: bool = True) -> None:
        """Count the events in these lines (the next lines of the run, in order). Pass
        `complete=False` when the read that gave them may have left lines out (it hit its
        line or byte cap): the counts are then a lower bound."""
        counts = self._counts
        last = self._last
        for line in lines:
            kind = line.kind
            if kind in _COUNTED and last.get(line.stream) is not kind:
                counts[kind] = counts.get(kind, 0) + 1
            last[line.stream] = kind
        self.read = True
        self.partial = self.partial or not complete

    def counts(self) -> LogEventCounts:
        """The counts so far, as an immutable value."""
        return LogEventCounts.of(self._counts, read=self.read, partial=self.partial)
