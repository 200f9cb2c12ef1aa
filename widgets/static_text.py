"""Updating a Static cheaply: live panes rewrite their labels every tick."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static


def _extent(content: object) -> tuple[int, int]:
    lines = str(content).split("\n")
    return max(cell_len(line) for line in lines), len(lines)


def set_text(static: Static, content: Text | str) -> None:
    """Show `content` in `static`.

    Nothing happens when it already shows that; a layout (which repaints the whole screen) is
    asked for only when the text's width or number of lines changes.
    """
    old = static.content
    if type(old) is type(content) and old == content:
        return
    static.update(content, layout=_extent(old) != _extent(content))
