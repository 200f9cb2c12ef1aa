"""A modal list of the fleet table's columns: which are shown, and in what order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from tui.config import CannotWrite, save_table_columns
from widgets.container_table import ContainerTable


class ColumnsScreen(ModalScreen[tuple[str, ...] | None]):
    """Pick and order the fleet table's columns (`c`). Dismisses with the keys of the ticked
    columns in the order listed, or None on Escape.

    Space ticks or unticks the highlighted column, `[` and `]` (or shift+up/down) move it up
    or down the list; Enter keeps the choice. The name is always the first column, so it is
    not offered.
    """

    DEFAULT_CSS = """
    ColumnsScreen {
        align: center middle;
        background: $background 60%;
    }
    ColumnsScreen > #dialog {
        width: 60;
        max-width: 95%;
        height: auto;
        max-height: 95%;
        border: thick $primary;
        background: $panel;
        padding: 0 1;
    }
    ColumnsScreen #columns-title {
        text-style: bold;
    }
    ColumnsScreen #columns-hint {
        width: 100%;
        color: $text-muted;
    }
    ColumnsScreen SelectionList {
        height: auto;
        max-height: 24;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="columns.cancel"),
        Binding("enter", "keep", "Keep", priority=True, id="columns.keep"),
        Binding("left_square_bracket,shift+up", "move(-1)", "Move up", id="columns.up"),
        Binding("right_square_bracket,shift+down", "move(1)", "Move down", id="columns.down"),
    ]

    def __init__(
        self,
        choices: Sequence[tuple[str, str]],
        shown: Sequence[str],
        blank: Sequence[str] = (),
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`choices`: (key, header) of every column; `shown`: the keys picked now, in order;
        `blank`: those of them not drawn because every row leaves them blank."""
        super().__init__(name=name, id=id, classes=classes)
        labels = {key: label for key, label in choices if key != "name"}
        ticked = [k for k in dict.fromkeys(shown) if k in labels]
        self._order: list[str] = ticked + [k for k in labels if k not in ticked]
        """Every column offered, in the order listed."""
        self._labels = labels
        self._ticked = set(ticked)
        self._blank = frozenset(blank)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text("Columns of the table"), id="columns-title")
            yield Label(
                Text("space shows/hides · [ ] move · enter keeps · esc cancels"),
                id="columns-hint",
            )
            yield SelectionList[str](*self._selections(), id="columns-list")

    def _selections(self) -> list[Selection[str]]:
        return [
            Selection(
                Text.assemble(
                    f"{self._labels[k]}  ({k})",
                    ("  (blank: not drawn)" if k in self._blank else "", "dim"),
                ),
                k,
                k in self._ticked,
                id=k,
            )
            for k in self._order
        ]

    @property
    def blank(self) -> frozenset[str]:
        """The columns picked but not drawn: every row leaves them blank (said in the list)."""
        return self._blank

    @property
    def order(self) -> tuple[str, ...]:
        """Every column offered, in the order listed now."""
        return tuple(self._order)

    def action_move(self, step: int) -> None:
        """Move the highlighted column up (-1) or down (1) the list."""
        options = self.query_one(SelectionList)
        at = options.highlighted
        if at is None or not 0 <= at + step < len(self._order):
            return
        self._ticked = set(options.selected)
        self._order[at], self._order[at + step] = self._order[at + step], self._order[at]
        options.clear_options()
        options.add_options(self._selections())
        options.highlighted = at + step

    def action_keep(self) -> None:
        """Close with the ticked columns, in the order listed (the name first)."""
        ticked = set(self.query_one(SelectionList).selected)
        self.dismiss(("name", *(k for k in self._order if k in ticked)))

    def action_cancel(self) -> None:
        """Close, changing nothing."""
        self.dismiss(None)


def pick_columns(app: App[None], table: ContainerTable, config_path: Path) -> None:
    """Open the column picker on `table`; the columns kept are shown at once and written to
    `[table] columns` of the configuration file at `config_path` (off the event loop), the
    rest of that file left as it was. A file aitop cannot change safely is said, not
    touched."""

    async def save(columns: tuple[str, ...]) -> None:
        try:
            await asyncio.to_thread(save_table_columns, config_path, columns)
        except CannotWrite as exc:
            app.notify(
                f"columns not saved in {config_path}: {exc}",
                severity="warning",
                markup=False,
            )
        else:
            app.notify(f"columns saved in {config_path} ([table] columns)", markup=False)

    def chosen(columns: tuple[str, ...] | None) -> None:
        if columns is None or columns == table.columns:
            return
        table.columns = columns
        app.run_worker(
            save(columns),
            group="columns",
            exclusive=True,
            exit_on_error=False,
            description="write [table] columns",
        )

    blank = [k for k in table.columns if k not in table.shown_columns]
    app.push_screen(ColumnsScreen(table.column_choices, table.columns, blank), chosen)
