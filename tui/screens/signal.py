"""A modal list of signals to pick one from, before a kill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class SignalScreen(ModalScreen[str | None]):
    """Pick the signal `K` sends. Dismisses with the signal's name, or None on Escape.

    Choosing only picks: the kill itself is confirmed afterwards.
    """

    AUTO_FOCUS = "OptionList"
    """What has focus when the screen opens (no query in on_mount: a screen pushed as the
    app quits is never composed)."""

    DEFAULT_CSS = """
    SignalScreen {
        align: center middle;
        background: $background 60%;
    }
    SignalScreen > #dialog {
        width: 64;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        background: $panel;
        padding: 1 2;
    }
    SignalScreen #title {
        text-style: bold;
        margin-bottom: 1;
    }
    SignalScreen OptionList {
        height: auto;
        max-height: 12;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="signal-cancel"),
    ]

    def __init__(
        self,
        target: str,
        signals: Sequence[tuple[str, str]],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.target = target
        """What will be killed, as the title names it."""
        self.signals = tuple(signals)
        """(signal name, what it usually means), in the order offered."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(f"Send which signal to {self.target}?"), id="title")
            yield OptionList(
                *(
                    Option(Text.assemble((sig, "bold"), f"  {meaning}"), id=sig)
                    for sig, meaning in self.signals
                ),
                id="signals",
            )

    def on_mount(self) -> None:
        # query, not query_one: a screen pushed as the app quits is never composed.
        for options in self.query(OptionList):
            options.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Pick nothing."""
        self.dismiss(None)
