"""The application's own messages: a fleet arrived from a monitor's thread, and what the action
workers report back. Posted with `post_message` (thread-safe, never blocks); the widgets' own
messages are nested in the widgets that send them (`ContainerTable.SelectionChanged`)."""

from __future__ import annotations

from collections.abc import Mapping

from textual.message import Message
from textual.notifications import SeverityLevel

from tui.fleet.actions.scaling.groups import ScaleGroup
from tui.fleet.actions.scaling.plan import ScalePlan
from tui.fleet.engine.client import Engine
from tui.fleet.models import FleetSnapshot


class FleetUpdated(Message):
    """A new fleet snapshot arrived from a monitor's threads (`index`: which engine's)."""

    def __init__(self, snapshot: FleetSnapshot, index: int = 0) -> None:
        self.snapshot = snapshot
        self.index = index
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        # Only the newest picture of an engine matters: a queued older one is dropped.
        return isinstance(message, FleetUpdated) and message.index == self.index


class ActionProgressed(Message):
    """A running action made progress (posted from its worker thread)."""

    def __init__(self, text: str, done: int = 0, total: int = 0) -> None:
        self.text = text
        self.done = done
        self.total = total
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ActionProgressed)


class ActionCompleted(Message):
    """An action ended: what to tell the user, and how loudly."""

    def __init__(
        self, text: str, severity: SeverityLevel = "information", *, ends: bool = True
    ) -> None:
        self.text = text
        self.severity: SeverityLevel = severity
        self.ends = ends
        """False for an answer that ended no progress display (an inspect that failed)."""
        super().__init__()


class ScaleAsked(Message):
    """A scale group was found; the next step needs the user (a count or a confirmation)."""

    def __init__(self, group: ScaleGroup, plan: ScalePlan | None, engine: Engine) -> None:
        self.group = group
        self.plan = plan
        self.engine = engine
        """The engine the group runs on."""
        super().__init__()


class PlacementBlocked(Message):
    """No GPU can hold another replica; the user may force it."""

    def __init__(self, plan: ScalePlan, reason: str, engine: Engine) -> None:
        self.plan = plan
        self.reason = reason
        self.engine = engine
        """The engine the plan runs on."""
        super().__init__()


class InspectFetched(Message):
    """A container's inspect data arrived."""

    def __init__(self, name: str, attrs: Mapping[str, object]) -> None:
        self.name = name
        self.attrs = attrs
        super().__init__()
