"""A modal input for an exact replica count (`=`), with an inline error on invalid input."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from widgets.key_footer import KeyFooter


def count_error(text: str, maximum: int) -> str:
    """Why `text` is not a replica count from 0 to `maximum`; "" when it is one."""
    value = text.strip()
    if not value:
        return "type a number of replicas"
    # str.isdigit() takes "²" and other digits int() refuses: only ASCII 0-9 count.
    if not (value.isascii() and value.isdigit()):
        shown = value if len(value) <= 20 else value[:20] + "…"
        return f"{shown!r} is not a whole number of replicas (0 or more)"
    # Compared as text first: int() of thousands of digits is slow, then refused.
    if len(value.lstrip("0")) > len(str(maximum)) or int(value) > maximum:
        return f"at most {maximum} replicas"
    return ""


class ReplicaScreen(ModalScreen[int | None]):
    """Ask for the number of replicas a group should have.

    Enter with a valid count dismisses with it; invalid input shows an error under the box and
    keeps the screen open; Escape dismisses with None.
    """

    AUTO_FOCUS = "#count"
    """What has focus when the screen opens (no query in on_mount: a screen pushed as the
    app quits is never composed)."""

    DEFAULT_CSS = """
    ReplicaScreen {
        align: center middle;
        background: $background 60%;
    }
    ReplicaScreen > #dialog {
        width: 64;
        max-width: 95%;
        height: auto;
        border: thick $primary;
        background: $panel;
        padding: 1 2;
    }
    ReplicaScreen #title {
        text-style: bold;
        margin-bottom: 1;
    }
    ReplicaScreen #error {
        color: $error;
        height: auto;
        display: none;
    }
    ReplicaScreen #error.-shown {
        display: block;
    }
    ReplicaScreen #hint {
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="replicas-cancel"),
    ]

    def __init__(
        self,
        target: str,
        current: int,
        *,
        maximum: int = 256,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.target = target
        """What is scaled, as the title names it."""
        self.current = current
        """Its replica count now (the box starts with it)."""
        self.maximum = maximum
        """The largest count accepted."""
        self._error = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(f"Replicas of {self.target} (now {self.current})"), id="title")
            yield Input(value=str(self.current), placeholder="number of replicas", id="count")
            yield Static("", id="error")
            yield Static("Enter: scale · Esc: cancel", id="hint")
        yield KeyFooter()  # the dialog's own keys, not the fleet's underneath it

    def _show_error(self, message: str) -> None:
        self._error = message
        error = self.query_one("#error", Static)
        error.update(Text(message))
        error.set_class(bool(message), "-shown")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._show_error("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        message = count_error(event.value, self.maximum)
        if message:
            self._show_error(message)
            return
        self.dismiss(int(event.value.strip()))

    @property
    def error_text(self) -> str:
        """The inline error shown now ("" when none)."""
        return self._error

    def action_cancel(self) -> None:
        """Change nothing."""
        self.dismiss(None)
