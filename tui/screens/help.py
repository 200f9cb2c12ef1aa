"""The help screen: every key active where `?` was pressed, and the binding id a keymap uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpRow(NamedTuple):
    """One binding: its key(s) as shown, what it does, and its id."""

    keys: str
    """The key(s), as the footer shows them ("^r", "f end")."""
    description: str
    """What the key does."""
    binding_id: str
    """The id a `[keymap]` entry names; "" for Textual's own keys, which have none."""
    enabled: bool = True
    """False when the key does nothing right now (drawn dim)."""


class HelpSection(NamedTuple):
    """The keys of one pane ("Fleet table", "Log pane") or of the whole app ("Everywhere")."""

    title: str
    """The pane's name."""
    rows: Sequence[HelpRow]
    """Its keys, in binding order."""


class HelpScreen(ModalScreen[None]):
    """A list of the keys of the focused pane, then the global ones, with their binding ids.

    It only shows what it is given (the app reads the active bindings, so remapped keys show
    their new key). Escape, `q` or `?` closes it.
    """

    DEFAULT_CSS = """
    HelpScreen {
        background: $background 60%;
        align: center middle;
    }
    HelpScreen > #help-body {
        width: 90;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        border-title-style: bold;
        background: $panel;
        padding: 0 1;
    }
    HelpScreen .help-section {
        height: auto;
        margin-bottom: 1;
    }
    HelpScreen #help-hint {
        color: $text-muted;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help-close"),
        Binding("q,question_mark", "close", "Close", id="help-quit", show=False),
    ]

    def __init__(
        self,
        sections: Sequence[HelpSection],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.sections = tuple(sections)
        """What is listed, in order."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys"
            for n, _ in enumerate(self.sections):
                yield Static(
                    classes="help-section", id=f"help-section-{n}", expand=True, shrink=True
                )
            yield Static(
                Text(
                    "Give a key another binding in the configuration file's [keymap] by its id, "
                    'e.g. toggle-all = "A". ctrl+p runs any command by name. Esc closes.'
                ),
                id="help-hint",
            )

    def on_mount(self) -> None:
        variables = self.app.theme_variables
        muted = variables.get("text-muted", "grey50")
        accent = variables.get("accent", "cyan")
        for n, section in enumerate(self.sections):
            table = Table.grid(padding=(0, 2), expand=True)
            table.add_column(no_wrap=True, min_width=10)
            table.add_column(ratio=1, overflow="fold")
            table.add_column(no_wrap=True, justify="right")
            for row in section.rows:
                dim = "" if row.enabled else " dim"
                table.add_row(
                    Text(row.keys, style=f"bold {accent}{dim}"),
                    Text(row.description, style=dim.strip()),
                    Text(row.binding_id, style=muted),
                )
            outer = Table.grid(expand=True)
            outer.add_column()
            outer.add_row(Text(section.title, style="bold underline"))
            outer.add_row(table)
            self.query_one(f"#help-section-{n}", Static).update(outer)
        self.query_one("#help-body").focus()

    def text(self) -> str:
        """The listing as plain text (for tests and copying)."""
        lines: list[str] = []
        for section in self.sections:
            lines.append(f"[{section.title}]")
            lines.extend(f"{r.keys}  {r.description}  {r.binding_id}" for r in section.rows)
        return "\n".join(lines)

    def action_close(self) -> None:
        """Back to where `?` was pressed."""
        self.dismiss(None)
