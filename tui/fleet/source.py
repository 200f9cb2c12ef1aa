"""What the application needs of whatever feeds it fleets: the `FleetSource` protocol.

`FleetMonitor` (a live engine) satisfies it, and so does any stand-in that replays recorded
snapshots (the tests' `ReplayMonitor`); mypy checks both where they are handed to the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tui.fleet.engine.client import Engine
from tui.fleet.events import FleetEvent
from tui.fleet.models import FleetSnapshot

SnapshotCallback = Callable[[FleetSnapshot], None]
"""Called with each new snapshot, on the source's own threads."""


class FleetSource(Protocol):
    """One engine's fleet as a stream of immutable snapshots.

    The app sets `on_snapshot` before `start()`, reads `snapshot()` once mounted (a source
    may have started before the screen existed), calls `release_details()` after its first
    frame and `stop()` on exit. `engine` is where actions and log streams go; None for a
    recorded fleet, which can be looked at but not steered.
    """

    on_snapshot: SnapshotCallback | None
    """Where new snapshots go; it must not block (the app posts a message)."""

    @property
    def engine(self) -> Engine | None:
        """The engine watched; None for a recorded fleet."""
        ...

    def start(self) -> None:
        """Begin publishing snapshots (a second call does nothing)."""
        ...

    def stop(self) -> None:
        """Stop publishing and release the source's threads and streams."""
        ...

    def snapshot(self) -> FleetSnapshot:
        """The current picture."""
        ...

    def recent_events(self) -> tuple[FleetEvent, ...]:
        """The engine's recent container events, newest first (none for a recorded fleet)."""
        ...

    def release_details(self) -> None:
        """Let work held back for the first frame (inspects of a large fleet) go ahead."""
        ...
