"""The fleet table: one row per container, grouped by compose project / service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import count

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets._data_table import ColumnKey, RowKey, TwoWayDict

from tui.fleet.gpu_types import GpuReport, format_assigned, format_gpu_usage
from tui.fleet.models import ContainerSnapshot, FleetSnapshot
from widgets.formatting import human_bytes, human_duration, human_rate, percent

GROUP_PREFIX = "group:"


def _num(value: float | None) -> float:
    return -1.0 if value is None else float(value)


def gpu_mem(c: ContainerSnapshot) -> int | None:
    """GPU memory a container holds over all GPUs; None if unknown or none."""
    known = [g.mem_bytes for g in c.gpus if g.mem_bytes is not None]
    return sum(known) if known else None


def gpu_util(c: ContainerSnapshot) -> float | None:
    """Sum of a container's share of GPU utilisation; None where the driver does not say."""
    known = [g.util_percent for g in c.gpus if g.util_percent is not None]
    return sum(known) if known else None


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its key, header, sort key and whether it holds numbers (right-aligned)."""

    key: str
    label: str
    sort_key: Callable[[ContainerSnapshot], object]
    numeric: bool = False


COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("name", "NAME", lambda c: c.info.name),
    ColumnSpec("model", "MODEL", lambda c: c.info.model.lower()),
    ColumnSpec("image", "IMAGE", lambda c: c.info.image),
    ColumnSpec("state", "STATE", lambda c: (c.info.state, c.info.health)),
    ColumnSpec("uptime", "UP", lambda c: -(c.info.started_at or 0) if c.info.running else 1),
    ColumnSpec("restarts", "RST", lambda c: c.info.restart_count, numeric=True),
    ColumnSpec("cpu", "CPU%", lambda c: _num(c.stats.cpu_percent), numeric=True),
    ColumnSpec("mem", "MEM / LIMIT", lambda c: _num(c.stats.mem_bytes), numeric=True),
    ColumnSpec("gpu_mem", "GPU MEM", lambda c: _num(gpu_mem(c))),
    ColumnSpec("gpu_util", "GPU%", lambda c: _num(gpu_util(c)), numeric=True),
    ColumnSpec("gpus", "GPUS", lambda c: c.info.gpus_assigned),
    ColumnSpec("rx", "NET RX", lambda c: _num(c.stats.net_rx_rate), numeric=True),
    ColumnSpec("tx", "NET TX", lambda c: _num(c.stats.net_tx_rate), numeric=True),
    ColumnSpec("ports", "PORTS", lambda c: c.info.ports),
    ColumnSpec("group", "PROJECT/SERVICE", lambda c: c.info.group),
)
COLUMN_KEYS = tuple(col.key for col in COLUMNS)


def matches(container: ContainerSnapshot, needle: str) -> bool:
    """True when `needle` (lower-case) occurs in the name, model, image or labels."""
    if not needle:
        return True
    info = container.info
    haystack = [info.name, info.model, info.image]
    haystack.extend(f"{k}={v}" for k, v in info.labels.items())
    return any(needle in text.lower() for text in haystack)


def visible_containers(
    snapshot: FleetSnapshot, *, show_all: bool, needle: str
) -> list[ContainerSnapshot]:
    """The containers the table shows: model containers (or all), filtered by text."""
    needle = needle.strip().lower()
    return [c for c in snapshot.containers if (show_all or c.info.is_model) and matches(c, needle)]


def group_label(group: tuple[str, str]) -> str:
    """ "project/service" for a group key; "" for lone containers."""
    return "/".join(part for part in group if part)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _sum(values: Iterable[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


class ContainerTable(DataTable):
    """A live table of containers, grouped by compose project / service or swarm service.

    Feed it snapshots with `update_snapshot()`; it never fetches. Rows are keyed by container
    id (group headers by `group:<project>/<service>`), and each refresh touches only the cells
    whose value changed, unless rows appeared, vanished or moved.
    """

    DEFAULT_CSS = """
    ContainerTable {
        height: 1fr;
        background: $surface;
    }
    ContainerTable > .datatable--header {
        background: $panel;
        color: $text;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding(">", "sort_next", "Sort next", id="sort-next", tooltip="Sort by the next column"),
        Binding(
            "<", "sort_prev", "Sort prev", id="sort-prev", tooltip="Sort by the previous column"
        ),
        Binding("I", "sort_invert", "Invert", id="sort-invert", tooltip="Reverse the sort order"),
    ]

    sort_column: reactive[str] = reactive("name")
    """Key of the column rows are sorted by."""
    sort_reverse: reactive[bool] = reactive(False)
    """Sort descending when True."""
    filter_text: reactive[str] = reactive("")
    """Only rows whose name, model, image or labels contain this text (case-insensitive)."""
    show_all: reactive[bool] = reactive(False)
    """Show every container, not only model containers."""
    marked: reactive[frozenset[str]] = reactive(frozenset())
    """Ids of the containers marked for a bulk action (drawn with a mark)."""

    class ContainerHighlighted(Message):
        """The cursor moved to a container (or a group header: `container_id` is None)."""

        def __init__(self, container_id: str | None, group: tuple[str, str] | None) -> None:
            self.container_id = container_id
            self.group = group
            super().__init__()

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            cursor_type="row",
            zebra_stripes=False,
            name=name,
            id=id,
            classes=classes,
            disabled=disabled,
        )
        self._snapshot: FleetSnapshot | None = None
        self._order: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._groups: dict[str, tuple[str, str]] = {}
        self.visible_count = 0
        # Rendered cells, kept across updates: DataTable drops all of its cached cells on any
        # change, which re-renders every visible cell through Rich on every refresh.
        self._versions: dict[tuple[str, str], int] = {}
        self._version = count(1)
        self._rendered: dict[tuple, object] = {}
        self._row_cache: dict[str, tuple[tuple, tuple[Text, ...]]] = {}
        self._palette_cache: tuple[tuple, dict[str, str]] | None = None

    def on_mount(self) -> None:
        # Fixed widths that this widget sets itself from the plain text: DataTable's own
        # auto-width measures whole columns through Rich on every changed cell, which costs
        # seconds a refresh at 500 rows.
        for col in COLUMNS:
            label = self._header(col)
            self.add_column(label, key=col.key, width=label.cell_len)

    # --- public ------------------------------------------------------------------------------

    def update_snapshot(self, snapshot: FleetSnapshot) -> None:
        """Show this snapshot."""
        self._snapshot = snapshot
        self._rebuild()

    @property
    def selected_container_id(self) -> str | None:
        """Id of the container under the cursor, or None (a group header, or no rows)."""
        key = self._cursor_key()
        return None if key is None or key.startswith(GROUP_PREFIX) else key

    @property
    def selected_group(self) -> tuple[str, str] | None:
        """The (project, service) of a group header under the cursor, else None."""
        key = self._cursor_key()
        return self._groups.get(key) if key is not None else None

    @property
    def row_keys(self) -> list[str]:
        """Keys of the rows in display order (container ids and group keys)."""
        return list(self._order)

    # --- actions -------------------------------------------------------------------------------

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        self._step_sort(1)

    def action_sort_prev(self) -> None:
        """Sort by the previous column."""
        self._step_sort(-1)

    def action_sort_invert(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse

    def _step_sort(self, step: int) -> None:
        index = COLUMN_KEYS.index(self.sort_column)
        self.sort_column = COLUMN_KEYS[(index + step) % len(COLUMN_KEYS)]

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = key

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        if key is None:
            self.post_message(self.ContainerHighlighted(None, None))
        elif key.startswith(GROUP_PREFIX):
            self.post_message(self.ContainerHighlighted(None, self._groups.get(key)))
        else:
            self.post_message(self.ContainerHighlighted(key, None))

    def watch_sort_column(self) -> None:
        self._relabel()
        self._rebuild()

    def watch_sort_reverse(self) -> None:
        self._relabel()
        self._rebuild()

    def watch_filter_text(self) -> None:
        self._rebuild()

    def watch_show_all(self) -> None:
        self._rebuild()

    def watch_marked(self) -> None:
        self._rebuild()

    def set_marked(self, ids: frozenset[str]) -> None:
        """Draw these containers as marked."""
        self.marked = ids

    # --- building rows -------------------------------------------------------------------

    def _header(self, col: ColumnSpec) -> Text:
        label = col.label
        if col.key == self.sort_column:
            label += " ▼" if self.sort_reverse else " ▲"
        return Text(label, justify="right" if col.numeric else "left")

    def _relabel(self) -> None:
        if not self.columns:
            return
        for col in COLUMNS:
            column = self.columns.get(col.key)  # type: ignore[call-overload]
            if column is not None:
                column.label = self._header(col)
        self._require_update_dimensions = True
        self.refresh()

    def _cursor_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def _palette(self) -> dict[str, str]:
        variables = self.app.theme_variables if self.is_attached else {}
        key = tuple(
            variables.get(k) for k in ("success", "warning", "error", "text-muted", "accent")
        )
        if self._palette_cache is not None and self._palette_cache[0] == key:
            return self._palette_cache[1]
        palette = {
            "ok": variables.get("success", "green"),
            "warn": variables.get("warning", "yellow"),
            "bad": variables.get("error", "red"),
            "muted": variables.get("text-muted", "grey50"),
            "accent": variables.get("accent", "cyan"),
        }
        self._palette_cache = (key, palette)
        return palette

    def _state_cell(self, c: ContainerSnapshot, palette: dict[str, str]) -> Text:
        info = c.info
        state = info.state
        if state == "exited":
            state = f"exited ({info.exit_code})"
        if info.oom_killed:
            state += " OOMKilled"
        text = Text(state)
        if info.state == "running":
            text.stylize(palette["ok"])
        elif info.state in ("paused", "restarting", "created"):
            text.stylize(palette["warn"])
        elif info.oom_killed or info.state == "dead" or info.exit_code not in (0, 137, 143):
            text.stylize(palette["bad"])
        else:
            text.stylize(palette["muted"])
        if info.health:
            colour = {"healthy": "ok", "unhealthy": "bad"}.get(info.health, "warn")
            text.append(f" {info.health}", style=palette[colour])
        return text

    def _container_row(
        self, c: ContainerSnapshot, palette: dict[str, str], now: float, indent: bool
    ) -> tuple[Text, ...]:
        """A container's cells, rebuilt only when something shown in them changed."""
        info, stats = c.info, c.stats
        uptime = now - info.started_at if info.running and info.started_at else None
        # Most of a large fleet looks the same from one tick to the next: compare what is
        # shown (formatted), and reuse the same cells (the same objects) when nothing is new.
        shown = (
            info,
            human_duration(uptime),
            percent(stats.cpu_percent),
            stats.mem_bytes and human_bytes(stats.mem_bytes),
            human_bytes(stats.mem_limit_bytes),
            human_rate(stats.net_rx_rate),
            human_rate(stats.net_tx_rate),
            c.gpus,
            info.id in self.marked,
            indent,
            self._snapshot.gpu if self._snapshot is not None and info.gpus_assigned else None,
            id(palette),
        )
        cached = self._row_cache.get(info.id)
        if cached is not None and cached[0] == shown:
            return cached[1]
        cells = self._container_cells(c, palette, now, indent)
        self._row_cache[info.id] = (shown, cells)
        return cells

    def _container_cells(
        self, c: ContainerSnapshot, palette: dict[str, str], now: float, indent: bool
    ) -> tuple[Text, ...]:
        info, stats = c.info, c.stats
        uptime = now - info.started_at if info.running and info.started_at else None
        mem = "-"
        if stats.mem_bytes is not None:
            mem = f"{human_bytes(stats.mem_bytes)} / {human_bytes(stats.mem_limit_bytes)}"
        mark = "✓ " if info.id in self.marked else ("  " if indent else "")
        name = mark + _clip(info.name, 30)
        report = self._snapshot.gpu if self._snapshot is not None else None
        cpu = Text(percent(stats.cpu_percent), justify="right")
        if stats.cpu_percent is not None and stats.cpu_percent >= 90:
            cpu.stylize(palette["warn"])
        return (
            Text(name),
            Text(_clip(info.model, 36), style=palette["accent"] if info.is_model else ""),
            Text(_clip(info.image, 30)),
            self._state_cell(c, palette),
            Text(human_duration(uptime)),
            Text(str(info.restart_count), justify="right"),
            cpu,
            Text(mem, justify="right"),
            Text(format_gpu_usage(c.gpus)),
            Text(percent(gpu_util(c)) if c.gpus else "", justify="right"),
            self._assigned_cell(c, report, palette),
            Text(human_rate(stats.net_rx_rate), justify="right"),
            Text(human_rate(stats.net_tx_rate), justify="right"),
            Text(_clip(", ".join(info.ports), 28)),
            Text(group_label(info.group), style=palette["muted"]),
        )

    @staticmethod
    def _assigned_cell(
        c: ContainerSnapshot, report: GpuReport | None, palette: dict[str, str]
    ) -> Text:
        assigned = c.info.gpus_assigned
        if not assigned:
            return Text("")
        text = Text(format_assigned(assigned))
        # A running container sitting on GPUs it does not use: worth a glance.
        if (
            c.info.state == "running"
            and not c.gpus
            and report is not None
            and report.ok
            and report.attribution_possible
        ):
            text.append(" idle", style=palette["warn"])
        return text

    def _group_cells(
        self,
        group: tuple[str, str],
        members: Sequence[ContainerSnapshot],
        everyone: Sequence[ContainerSnapshot],
        palette: dict[str, str],
    ) -> tuple[Text, ...]:
        running = sum(1 for c in everyone if c.info.state == "running")
        unhealthy = sum(1 for c in everyone if c.info.health == "unhealthy")
        state = Text(f"{running}/{len(everyone)} running")
        state.stylize(palette["ok"] if running == len(everyone) else palette["warn"])
        if unhealthy:
            state.append(f" {unhealthy} unhealthy", style=palette["bad"])
        models = sorted({c.info.model for c in members})
        images = sorted({c.info.image for c in members})
        mem = _sum(c.stats.mem_bytes for c in members)
        return (
            Text("▾ " + _clip(group_label(group), 30), style="bold"),
            Text(_clip(", ".join(models), 36), style="bold"),
            Text(_clip(", ".join(images), 30)),
            state,
            Text(""),
            Text(str(sum(c.info.restart_count for c in members)), justify="right"),
            Text(percent(_sum(c.stats.cpu_percent for c in members)), justify="right"),
            Text(human_bytes(mem), justify="right"),
            Text(human_bytes(_sum(gpu_mem(c) for c in members), na="")),
            Text(""),
            Text(""),
            Text(human_rate(_sum(c.stats.net_rx_rate for c in members)), justify="right"),
            Text(human_rate(_sum(c.stats.net_tx_rate for c in members)), justify="right"),
            Text(""),
            Text(group_label(group), style="bold"),
        )

    def _rows(self) -> list[tuple[str, tuple[Text, ...]]]:
        snapshot = self._snapshot
        if snapshot is None:
            return []
        visible = visible_containers(snapshot, show_all=self.show_all, needle=self.filter_text)
        self.visible_count = len(visible)
        spec = next(col for col in COLUMNS if col.key == self.sort_column)
        reverse = self.sort_reverse

        def order(c: ContainerSnapshot) -> tuple[object, str]:
            return (spec.sort_key(c), c.info.name)

        grouped: dict[tuple[str, str], list[ContainerSnapshot]] = {}
        lone: list[ContainerSnapshot] = []
        for c in visible:
            if c.info.group == ("", ""):
                lone.append(c)
            else:
                grouped.setdefault(c.info.group, []).append(c)
        # Groups and lone containers are ordered together: a group ranks by its best member.
        blocks: list[tuple[tuple[object, str], tuple[str, str] | None, list]] = []
        for group, members in grouped.items():
            members.sort(key=order, reverse=reverse)
            head = order(members[0])
            blocks.append(((head[0], group_label(group)), group, members))
        blocks.extend(((order(c)), None, [c]) for c in lone)
        blocks.sort(key=lambda b: b[0], reverse=reverse)

        palette = self._palette()
        now = snapshot.taken_at or time.time()
        everyone: dict[tuple[str, str], list[ContainerSnapshot]] = {}
        for c in snapshot.containers:
            everyone.setdefault(c.info.group, []).append(c)
        rows: list[tuple[str, tuple[Text, ...]]] = []
        self._groups = {}
        for _, group, members in blocks:
            if group is not None:
                key = GROUP_PREFIX + group_label(group)
                self._groups[key] = group
                rows.append((key, self._group_cells(group, members, everyone[group], palette)))
            rows.extend(
                (c.info.id, self._container_row(c, palette, now, group is not None))
                for c in members
            )
        if len(self._row_cache) > 2 * len(snapshot.containers) + 64:
            present = {c.info.id for c in snapshot.containers}
            self._row_cache = {k: v for k, v in self._row_cache.items() if k in present}
        return rows

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list:
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_key.value,
            column_key.value,
            self._versions.get((row_key.value, column_key.value), 0),
            row_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._rendered.get(key)
        if lines is None:
            if len(self._rendered) > 20_000:
                self._rendered.clear()
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered[key] = lines
        return lines  # type: ignore[return-value]

    def _fit_columns(self, rows: list[tuple[str, tuple[Text, ...]]]) -> None:
        if len(rows) == len(self._cells) and all(
            self._cells.get(key) is cells for key, cells in rows
        ):
            return
        widths = [self._header(col).cell_len for col in COLUMNS]
        for _, cells in rows:
            for i, cell in enumerate(cells):
                widths[i] = max(widths[i], cell.cell_len)
        changed = False
        for col, width in zip(COLUMNS, widths, strict=True):
            column = self.columns.get(col.key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width = width
                changed = True
        if changed:
            self._require_update_dimensions = True
            self.refresh()

    def _rebuild(self) -> None:
        if not self.is_mounted:
            return
        rows = self._rows()
        keys = [key for key, _ in rows]
        self._fit_columns(rows)
        if set(keys) == set(self._order):
            changed = False
            for key, cells in rows:
                old = self._cells.get(key, ())
                if cells is old:
                    continue
                data = self._data[RowKey(key)]
                for col_key, new, before in zip(COLUMN_KEYS, cells, old, strict=False):
                    if new != before:
                        # What update_cell does, less a refresh per cell: one follows below.
                        self._versions[(key, col_key)] = next(self._version)
                        data[ColumnKey(col_key)] = new
                        changed = True
                self._cells[key] = cells
            if changed:
                self._update_count += 1
                self.refresh()
            if keys != self._order:
                # Same rows, new order (a sort by CPU reorders every tick): move them in
                # place, as DataTable.sort does, instead of rebuilding the table.
                selected = self._cursor_key()
                self._order = keys
                self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(keys)})
                self._update_count += 1
                self.refresh()
                if selected is not None:
                    self.move_cursor(row=keys.index(selected), animate=False)
            return
        selected = self._cursor_key()
        self.clear()
        self._order = keys
        self._cells = dict(rows)
        self._versions.clear()
        self._rendered.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if selected in self._cells:
            self.move_cursor(row=keys.index(selected), animate=False)
        elif keys:
            self.move_cursor(row=min(self.cursor_row, len(keys) - 1), animate=False)
