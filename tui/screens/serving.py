"""The serving view: one container's model server in full, live (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer

from tui.fleet.history import EMPTY_HISTORY, ContainerHistory
from tui.fleet.models import ContainerSnapshot, FleetSnapshot
from widgets.serving_view import ServingView


class ServingScreen(ModalScreen[None]):
    """The selected container's model server: its whole reading and a few minutes of history
    beside the container's CPU, memory and GPU memory (`ServingView`).

    The app hands it every fleet snapshot (`update_fleet`) while it is open, so it follows the
    server live; Escape, `q` or `v` again closes it.
    """

    AUTO_FOCUS = "#body"

    DEFAULT_CSS = """
    ServingScreen {
        background: $background 60%;
        align: center middle;
    }
    ServingScreen > #body {
        width: 95%;
        height: 90%;
        border: thick $primary;
        background: $panel;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="serving-close"),
        Binding("q", "close", "Close", id="serving-quit", show=False),
        Binding("v", "close", "Close", id="serving-toggle", show=False),
    ]

    def __init__(
        self,
        container: ContainerSnapshot,
        taken_at: float,
        history_of: Callable[[str], ContainerHistory] = lambda _cid: EMPTY_HISTORY,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`container`: the container as the latest snapshot has it (`taken_at`);
        `history_of`: a container's recent figures by id (the app keeps them)."""
        super().__init__(name=name, id=id, classes=classes)
        self.container_id = container.info.id
        """The container shown (its full id)."""
        self.container_name = container.info.name
        """Its name (kept for when it leaves the fleet)."""
        self._latest: ContainerSnapshot | None = container
        self._taken_at = taken_at
        self._history_of = history_of

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield ServingView(id="serving-view")
        yield Footer()

    def on_mount(self) -> None:
        self._show()

    def update_fleet(self, snapshot: FleetSnapshot) -> None:
        """Follow the container in this newer snapshot (gone: the view says so)."""
        self._latest = next(
            (c for c in snapshot.containers if c.info.id == self.container_id), None
        )
        if self._latest is not None:
            self.container_name = self._latest.info.name
        self._taken_at = snapshot.taken_at
        self._show()

    def _show(self) -> None:
        views = self.query(ServingView)
        if views:  # a screen pushed as the app quits is never composed
            views.first().show(
                self._latest,
                name=self.container_name,
                now=self._taken_at,
                history=self._history_of(self.container_id),
            )

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)
