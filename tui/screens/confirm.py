"""A modal question before something destructive, naming exactly what will go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Static

from widgets.key_footer import KeyFooter


@dataclass(frozen=True)
class ConfirmAnswer:
    """What the user answered: go ahead or not, and whether the extra option was ticked."""

    confirmed: bool
    option: bool = False


class ConfirmScreen(ModalScreen[ConfirmAnswer]):
    """Asks before an action that ends or destroys something.

    Lists one line per thing that will be affected and offers an optional checkbox (such as
    "also remove anonymous volumes"). Dismisses with a `ConfirmAnswer`; Escape, `n` and the
    Cancel button (focused first, so a stray Enter declines) answer no.
    """

    AUTO_FOCUS = "#no"
    """What has focus when the screen opens (no query in on_mount: a screen pushed as the
    app quits is never composed)."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > #dialog {
        width: 90;
        max-width: 95%;
        height: auto;
        max-height: 85%;
        border: thick $error;
        background: $panel;
        padding: 1 2;
    }
    ConfirmScreen #title {
        text-style: bold;
        color: $text;
        width: 1fr;
        margin-bottom: 1;
    }
    ConfirmScreen #items {
        height: auto;
        max-height: 16;
        background: $surface;
        padding: 0 1;
    }
    ConfirmScreen #option {
        margin-top: 1;
    }
    ConfirmScreen #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm-cancel"),
        Binding("y", "confirm", "Yes", id="confirm-yes"),
        Binding("n", "cancel", "No", id="confirm-no"),
    ]

    def __init__(
        self,
        title: str,
        items: Sequence[str],
        *,
        option: str = "",
        yes: str = "Yes",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.question = title
        """The question, e.g. "Stop 3 containers?"."""
        self.items = tuple(items)
        """One line per container (or replica) that will be affected."""
        self.option_label = option
        """Label of the optional checkbox; "" for none."""
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.question), id="title")
            with VerticalScroll(id="items"):
                for item in self.items:
                    yield Static(Text(f"• {item}"), classes="item")
            if self.option_label:
                yield Checkbox(Text(self.option_label), False, id="option")
            with Horizontal(id="buttons"):
                yield Button(Text(self.yes_label), variant="error", id="yes")
                yield Button("Cancel", variant="primary", id="no")
        # The dialog's own keys (y, n, Esc), not the fleet's underneath it.
        yield KeyFooter()

    def _option(self) -> bool:
        if not self.option_label:
            return False
        return self.query_one("#option", Checkbox).value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "yes":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        """Go ahead."""
        self.dismiss(ConfirmAnswer(True, self._option()))

    def action_cancel(self) -> None:
        """Change nothing."""
        self.dismiss(ConfirmAnswer(False, False))
