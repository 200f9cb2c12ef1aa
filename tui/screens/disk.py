"""The disk view: where an engine's disk went (images, volumes, build cache), biggest first.

Like `docker system df -v`, sorted and kept fresh. The screen shows what it is handed
(`show`) and asks for work by message: a new survey (`RefreshRequested`) or a removal
(`RemoveRequested`), which the app asks about first and runs off the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from tui.fleet.disk.types import (
    DiskImage,
    DiskReport,
    DiskVolume,
    Removal,
    Target,
    refusal,
    removal,
)
from tui.fleet.units import format_bytes

REFRESH_S = 30.0
"""Seconds between two surveys while the view is open (each can take long: volume sizes)."""


@dataclass(frozen=True)
class DiskState:
    """What the view shows: the last report, whether a survey runs, and its last error."""

    report: DiskReport | None
    running_since: float | None = None
    """time.monotonic() when the survey in progress began; None when none runs."""
    error: str | None = None


def _row_key(target: Target) -> str:
    if isinstance(target, DiskImage):
        return f"image:{target.id}"
    if isinstance(target, DiskVolume):
        return f"volume:{target.name}"
    return "build-cache"


class DiskScreen(ModalScreen[None]):
    """Images, volumes and the build cache of one engine, biggest first, with what removing
    each frees. `x` removes the selected one (asking first), `r` surveys again, Escape closes.
    """

    AUTO_FOCUS = "#disk-table"

    DEFAULT_CSS = """
    DiskScreen {
        background: $background 60%;
        align: center middle;
    }
    DiskScreen > #body {
        width: 95%;
        height: 90%;
        border: thick $primary;
        background: $panel;
        padding: 0 1;
    }
    DiskScreen #disk-heading {
        height: auto;
        text-style: bold;
    }
    DiskScreen #disk-summary {
        height: auto;
        color: $text-muted;
        margin-bottom: 1;
    }
    DiskScreen #disk-table {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="disk-close"),
        Binding("q", "close", "Close", id="disk-quit", show=False),
        Binding("r", "refresh", "Survey again", id="disk-refresh"),
        Binding(
            "x,delete",
            "remove",
            "Remove",
            id="disk-remove",
            tooltip="Remove the selected image or volume, or prune the build cache (asks first)",
        ),
    ]

    class RefreshRequested(Message):
        """The user wants a new survey."""

    class RemoveRequested(Message):
        """The user wants `target` removed; `removal` says exactly what goes."""

        def __init__(self, target: Target, removal: Removal) -> None:
            super().__init__()
            self.target = target
            self.removal = removal

    def __init__(self, host: str, state: DiskState, *, read_only: bool = False) -> None:
        super().__init__()
        self.host = host
        """Which engine's disk this is."""
        self.read_only = read_only
        self.state = state
        self._targets: dict[str, Target] = {}
        self._ready = False
        """True once mounted: a state handed in before is drawn by on_mount."""

    def compose(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(id="disk-heading")
            yield Static(id="disk-summary")
            yield DataTable(id="disk-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        if not self.query("#disk-table"):  # pushed as the app quits: never composed
            return
        table = self.query_one(DataTable)
        for label, key in (
            ("KIND", "kind"),
            ("NAME", "name"),
            ("SIZE", "size"),
            ("FREES", "frees"),
            ("USED BY", "used"),
            ("WHAT", "what"),
        ):
            table.add_column(label, key=key)
        self._ready = True
        self.show(self.state)
        self.set_interval(1.0, self._tick)
        self.set_interval(REFRESH_S, self.action_refresh)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only mode hides removal."""
        return not (action == "remove" and self.read_only)

    # --- what the app hands in -----------------------------------------------------------

    def show(self, state: DiskState) -> None:
        """Show a new state (a survey began, ended or failed)."""
        self.state = state
        if not self._ready:
            return
        self._heading()
        report = state.report
        if report is None:
            return
        table = self.query_one(DataTable)
        selected = self.selected
        keep = _row_key(selected) if selected is not None else None
        table.clear()
        self._targets = {}
        rows: list[tuple[int, Target, tuple[Text, ...]]] = []
        for image in report.images:
            freed = image.unique_size if image.unique_size is not None else image.size
            what = "dangling" if image.dangling else ""
            users = "—" if image.containers is None else f"{image.containers} container(s)"
            cells = self._cells("image", image.name, image.size, freed, users, what)
            rows.append((image.size, image, cells))
        for volume in report.volumes:
            users = ", ".join(volume.used_by) or "no container"
            what = volume.cache or ""
            cells = self._cells("volume", volume.name, volume.size, volume.size, users, what)
            rows.append((volume.size or 0, volume, cells))
        if report.build_cache_entries:
            cells = self._cells(
                "cache",
                f"build cache ({report.build_cache_entries} entries)",
                report.build_cache_size,
                report.build_cache_reclaimable,
                "",
                "",
            )
            rows.append((report.build_cache_size, "build-cache", cells))
        rows.sort(key=lambda row: -row[0])
        for _, target, cells in rows:
            key = _row_key(target)
            self._targets[key] = target
            table.add_row(*cells, key=key)
        if keep is not None and keep in self._targets:
            table.move_cursor(row=table.get_row_index(keep))

    @staticmethod
    def _cells(
        kind: str, name: str, size: int | None, freed: int | None, users: str, what: str
    ) -> tuple[Text, ...]:
        return (
            Text(kind),
            Text(name),
            Text(format_bytes(size), justify="right"),
            Text(format_bytes(freed), justify="right"),
            Text(users),
            Text(what, style="bold" if what and what != "dangling" else ""),
        )

    def _heading(self) -> None:
        state = self.state
        heading = f"Disk of {self.host}"
        if state.running_since is not None:
            heading += f" · surveying ({time.monotonic() - state.running_since:.0f} s)"
        if state.error:
            heading += f" · survey failed: {state.error}"
        self.query_one("#disk-heading", Static).update(Text(heading))
        report = state.report
        if report is None:
            summary = "computing sizes: volumes are walked file by file, this can take a while"
        else:
            free = ""
            if report.disk_total is not None and report.disk_free is not None:
                free = (
                    f" ({format_bytes(report.disk_free)} free of {format_bytes(report.disk_total)})"
                )
            age = time.time() - report.taken_at
            summary = (
                f"data root {report.data_root}{free} · images {format_bytes(report.layers_size)}"
                f" · containers {format_bytes(report.containers_size)}"
                f" · volumes {format_bytes(report.volumes_size)}"
                f" · build cache {format_bytes(report.build_cache_size)}"
                f" · surveyed {age:.0f} s ago in {report.seconds:.1f} s"
            )
        self.query_one("#disk-summary", Static).update(Text(summary))

    def _tick(self) -> None:
        self._heading()

    # --- what the user does --------------------------------------------------------------

    @property
    def selected(self) -> Target | None:
        """The image, volume or build cache under the cursor."""
        if not self._ready:
            return None
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._targets.get(str(key))

    @property
    def row_names(self) -> list[str]:
        """The NAME column, top to bottom (for tests); empty before the screen is mounted."""
        if not self._ready:
            return []
        table = self.query_one(DataTable)
        return [str(table.get_row_at(n)[1]) for n in range(table.row_count)]

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)

    def action_refresh(self) -> None:
        """Survey again (the engine may take a while)."""
        self.post_message(self.RefreshRequested())

    def action_remove(self) -> None:
        """Ask to remove what is selected."""
        target = self.selected
        report = self.state.report
        if target is None or report is None:
            return
        why_not = refusal(target)
        if why_not is not None:
            self.notify(why_not, severity="warning", markup=False)
            return
        self.post_message(self.RemoveRequested(target, removal(report, target)))
