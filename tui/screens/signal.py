"""A modal list of signals to pick one from, or any signal typed by name or number, before a
kill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.fleet.actions.lifecycle import BadSignal, parse_signal
from widgets.key_footer import KeyFooter


class SignalScreen(ModalScreen[str | None]):
    """Pick the signal `K` sends. Dismisses with the signal's name, or None on Escape.

    Up/Down and Enter pick one of those offered; any other may be typed (a name, with or
    without SIG, or a number 1-64) and Enter sends it, once it is known to be a signal: an
    unknown one is said in a line and the screen stays. Choosing only picks: the kill itself
    is confirmed afterwards.
    """

    AUTO_FOCUS = "#signal-typed"
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
    SignalScreen #signal-typed {
        margin-top: 1;
    }
    SignalScreen #signal-error {
        color: $error;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="signal-cancel"),
        Binding("down", "move(1)", "Next", show=False, id="signal-next"),
        Binding("up", "move(-1)", "Previous", show=False, id="signal-previous"),
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
            yield Input(placeholder="or type any signal: USR2, SIGRTMIN+3, 10", id="signal-typed")
            yield Label(Text(""), id="signal-error")
        yield KeyFooter()  # the dialog's own keys, not the fleet's underneath it

    def on_mount(self) -> None:
        # query, not query_one: a screen pushed as the app quits is never composed.
        for options in self.query(OptionList):
            options.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        """Move the highlight in the list (the typing box keeps the focus)."""
        options = self.query_one(OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one("#signal-error", Label).update(Text(""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: the typed signal if any was typed, else the highlighted one."""
        event.stop()
        if not event.value.strip():
            options = self.query_one(OptionList)
            if options.highlighted is not None:
                self.dismiss(options.get_option_at_index(options.highlighted).id)
            return
        try:
            signal = parse_signal(event.value)
        except BadSignal as exc:
            self.query_one("#signal-error", Label).update(Text(str(exc)))
            return
        self.dismiss(signal)

    def action_cancel(self) -> None:
        """Pick nothing."""
        self.dismiss(None)
