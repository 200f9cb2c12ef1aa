"""A full-screen view of one container's configuration, with secrets masked until revealed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class RowLike(Protocol):
    """One (key, value) row; `masked` says the value hides a secret (read-only: a frozen
    dataclass such as `InspectRow` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def masked(self) -> bool: ...


class SectionLike(Protocol):
    """A titled group of rows."""

    @property
    def title(self) -> str: ...

    @property
    def rows(self) -> Sequence[RowLike]: ...


SectionSource = Callable[[bool], Sequence[SectionLike]]
"""Gives the sections, with secrets revealed when called with True. Must not do I/O."""


class InspectScreen(ModalScreen[None]):
    """Image, command, environment, mounts, ports, networks, labels, restart policy,
    resources and GPUs, and health log of one container.

    Values that look secret are masked; `m` reveals them on purpose (and hides them again).
    Escape or `q` closes the view. What it shows was read when it opened: once the container
    is removed (`mark_gone`, from the app's next fleet) the heading says so.
    """

    AUTO_FOCUS = "#body"
    """What has focus when the screen opens (no query in on_mount: a screen pushed as the
    app quits is never composed)."""

    DEFAULT_CSS = """
    InspectScreen {
        background: $background 60%;
        align: center middle;
    }
    InspectScreen > #body {
        width: 95%;
        height: 90%;
        border: thick $primary;
        background: $panel;
        padding: 0 1;
    }
    InspectScreen #heading {
        text-style: bold;
        height: auto;
        margin-bottom: 1;
    }
    InspectScreen #heading.-revealed {
        color: $warning;
    }
    InspectScreen #heading.-gone {
        color: $error;
    }
    InspectScreen .section {
        height: auto;
        margin-bottom: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="inspect-close"),
        Binding("q", "close", "Close", id="inspect-quit", show=False),
        Binding(
            "m",
            "toggle_reveal",
            "Reveal/mask secrets",
            id="inspect-reveal",
            tooltip="Show the masked secrets (press again to mask them)",
        ),
    ]

    revealed: reactive[bool] = reactive(False, init=False)
    """True while secret values are shown in clear."""
    gone: reactive[bool] = reactive(False, init=False)
    """True once the container was removed: the view shows what it was."""

    def __init__(
        self,
        title: str,
        sections: SectionSource,
        *,
        container_id: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.heading = title
        """What is inspected, e.g. the container's name."""
        self.container_id = container_id
        """The container shown ("" when not a container's)."""
        self._source = sections
        self._gone_at = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static(id="heading")
            for n, _ in enumerate(self._source(False)):
                yield Static(classes="section", id=f"section-{n}")
        yield Footer()

    def on_mount(self) -> None:
        if self.query("#body"):  # a screen pushed as the app quits is never composed
            self._render_sections()

    def watch_revealed(self) -> None:
        self._render_sections()

    def watch_gone(self) -> None:
        self._render_sections()

    def mark_gone(self) -> None:
        """The container was removed: say so above what it was."""
        if not self.gone:
            self._gone_at = time.strftime("%H:%M:%S")
            self.gone = True

    def action_toggle_reveal(self) -> None:
        """Show or hide the secret values."""
        self.revealed = not self.revealed

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)

    @property
    def masked_rows(self) -> int:
        """How many rows hold a secret."""
        return sum(1 for s in self._source(False) for r in s.rows if r.masked)

    def section_text(self) -> str:
        """The sections as plain text, as shown now (for tests and copying)."""
        lines = []
        for section in self._source(self.revealed):
            lines.append(f"[{section.title}]")
            lines.extend(f"{row.key}: {row.value}" for row in section.rows)
        return "\n".join(lines)

    def _render_sections(self) -> None:
        sections = self._source(self.revealed)
        secrets = sum(1 for s in sections for r in s.rows if r.masked)
        heading = self.query_one("#heading", Static)
        state = "shown" if self.revealed else "masked"
        hint = (
            f" · {secrets} secret value{'s' if secrets != 1 else ''} {state} (m)" if secrets else ""
        )
        gone = f" \u00b7 removed at {self._gone_at}: as it was before" if self.gone else ""
        heading.update(Text(f"Inspect {self.heading}{gone}{hint}"))
        heading.set_class(self.revealed and bool(secrets), "-revealed")
        heading.set_class(self.gone, "-gone")
        variables = self.app.theme_variables
        warn = variables.get("warning", "yellow")
        muted = variables.get("text-muted", "grey50")
        for n, section in enumerate(sections):
            table = Table.grid(padding=(0, 2), expand=True)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(overflow="fold", ratio=1)
            for row in section.rows:
                value = Text(row.value)
                if row.masked:
                    value.stylize(warn)
                table.add_row(Text(row.key, style=muted), value)
            title = Text(section.title, style="bold underline")
            widget = self.query(f"#section-{n}")
            if widget:
                widget.first(Static).update(_stack(title, table))


def _stack(title: Text, table: Table) -> Table:
    outer = Table.grid(expand=True)
    outer.add_column()
    outer.add_row(title)
    outer.add_row(table)
    return outer
