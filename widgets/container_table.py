"""The fleet table: one row per container, grouped by compose project / service.

With several engines, a HOST column appears and rows are grouped by host first: each host's
rows follow a host row saying how that engine answers (or that it is unreachable).

A Line-API widget: every refresh sorts and measures all rows from plain strings, but styles and
renders only the rows on screen, so a fleet of 500 costs about what the 40 visible rows cost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.fleet.gpu.types import GpuReport, format_assigned, format_gpu_usage
from tui.fleet.logs.types import LineKind
from tui.fleet.models import (
    ContainerInfo,
    ContainerSnapshot,
    FleetSnapshot,
    LogEventCounts,
)
from tui.fleet.serving.types import ServingReading
from tui.fleet.units import format_bytes
from widgets.formatting import human_duration, human_rate, percent
from widgets.serving_format import (
    STATE_COLOURS,
    STATE_ORDER,
    kv_warns,
    queue_growing,
    requests_text,
    seconds,
    tokens_rate,
    ttft_warns,
)

GROUP_PREFIX = "group:"
"""Key prefix of a group row: `group:<project>/<service>` (`@<engine url>` with several)."""
HOST_PREFIX = "host:"
"""Key prefix of a host row (several engines): `host:<engine url>`."""
HOST_WIDTH = 40
"""Widest a host's name is drawn (a socket path in a temporary directory fits)."""
CELL_PADDING = 1
"""Blank cells on each side of a column's text."""


RowKind = Literal["container", "group", "host", "none"]
"""What a table row stands for; "none" when there is no row under the cursor."""


@dataclass(frozen=True)
class Selection:
    """The row under the table's cursor: what the actions, the log pane and the palette act on."""

    kind: RowKind = "none"
    """A container's row, a compose or swarm group's header, a host's row (several engines)."""
    container_id: str | None = None
    """The container's full id (a container row only)."""
    group: tuple[str, str] | None = None
    """The (project, service) of a group row (a group row only)."""
    host: str | None = None
    """The URL of the engine the row belongs to; None with one engine."""


NO_SELECTION = Selection()
"""No row under the cursor (an empty table)."""


@dataclass(frozen=True)
class TableView:
    """What the table shows, for the status line."""

    shown: int = 0
    """Containers the filter and the all/models toggle let through (group rows not counted)."""
    total: int = 0
    """Containers in the fleets."""
    models: int = 0
    """Model containers in the fleets."""
    show_all: bool = False
    """Whether every container is shown, not only model containers."""
    filter_text: str = ""
    """The filter in effect ("" for none)."""


def _num(value: float | None) -> float:
    return -1.0 if value is None else float(value)


def gpu_mem(c: ContainerSnapshot) -> int | None:
    """GPU memory a container holds over all GPUs; None if unknown or none."""
    known = [g.mem_bytes for g in c.gpus if g.mem_bytes is not None]
    return sum(known) if known else None


def _serving_order(c: ContainerSnapshot) -> tuple[int, bool]:
    s = c.serving
    return (len(STATE_ORDER), False) if s is None else (STATE_ORDER[s.state.name], s.stale)


def _serving_figure(
    pick: Callable[[ServingReading], float | int | None],
) -> Callable[[ContainerSnapshot], float]:
    """A sort key of one serving figure: containers without it sort as -1 (last, descending)."""

    def key(c: ContainerSnapshot) -> float:
        return -1.0 if c.serving is None else _num(pick(c.serving))

    return key


def _requests(s: ServingReading) -> int | None:
    if s.requests_running is None and s.requests_waiting is None:
        return None
    return (s.requests_running or 0) + (s.requests_waiting or 0)


def _events_order(events: LogEventCounts) -> tuple[int, int]:
    return (events.alarming, events.total) if events.read else (-1, -1)


def _exit_order(info: ContainerInfo) -> tuple[int, float]:
    last = info.last_exit
    return (info.restarts_recent, -1.0 if last is None else (last.at or 0.0))


def gpu_util(c: ContainerSnapshot) -> float | None:
    """Sum of a container's share of GPU utilisation; None where the driver does not say."""
    known = [g.util_percent for g in c.gpus if g.util_percent is not None]
    return sum(known) if known else None


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its key, header, sort key, whether it holds numbers (right-aligned), the
    width its figures' format needs, and which way it sorts first."""

    key: str
    label: str
    sort_key: Callable[[ContainerSnapshot], object]
    numeric: bool = False
    width: int = 0
    """The widest its format usually gets (`100.0%`, `1008K / 256M`): the column is at least
    this wide, so that figures crossing a digit (`99.7%` -> `100.0%`) do not shift the table."""
    descending_first: bool = False
    """Sorted by for the first time, biggest first (busiest, fullest, slowest: as top does);
    else A to Z."""


_DIGIT_RUNS = re.compile(r"([0-9]+)")


@lru_cache(maxsize=4096)
def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key that orders the numbers inside text by value: `nc-2` before `nc-10`,
    case-insensitive. Digit runs compare by length and then digits (no int() of a run an
    image author made 4,000 digits long)."""
    key: list[tuple[int, int, str]] = []
    for n, part in enumerate(_DIGIT_RUNS.split(text.lower())):
        if n % 2:  # a run of digits
            digits = part.lstrip("0") or "0"
            key.append((1, len(digits), digits))
        elif part:
            key.append((0, 0, part))
    return tuple(key)


COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("name", "NAME", lambda c: natural_key(c.info.name)),
    ColumnSpec("model", "MODEL", lambda c: natural_key(c.info.model)),
    ColumnSpec("image", "IMAGE", lambda c: natural_key(c.info.image)),
    ColumnSpec("state", "STATE", lambda c: (c.info.state, c.info.health)),
    ColumnSpec("uptime", "UP", lambda c: -(c.info.started_at or 0) if c.info.running else 1),
    ColumnSpec(
        "restarts", "RST", lambda c: c.info.restart_count, numeric=True, descending_first=True
    ),
    # CPU is in percent of one core: 16 busy cores read 1600.0%.
    ColumnSpec(
        "cpu",
        "CPU%",
        lambda c: _num(c.stats.cpu_percent),
        numeric=True,
        width=len("1600.0%"),
        descending_first=True,
    ),
    ColumnSpec(
        "mem",
        "MEM / LIMIT",
        lambda c: _num(c.stats.mem_bytes),
        numeric=True,
        width=len("1008K / 1008K"),
        descending_first=True,
    ),
    ColumnSpec("gpu_mem", "GPU MEM", lambda c: _num(gpu_mem(c)), descending_first=True),
    ColumnSpec(
        "gpu_util",
        "GPU%",
        lambda c: _num(gpu_util(c)),
        numeric=True,
        width=len("100.0%"),
        descending_first=True,
    ),
    ColumnSpec("gpus", "GPUS", lambda c: c.info.gpus_assigned),
    ColumnSpec("serving", "SERVING", _serving_order),
    ColumnSpec(
        "requests",
        "RUN/Q",
        _serving_figure(_requests),
        numeric=True,
        width=len("99/999"),
        descending_first=True,
    ),
    ColumnSpec(
        "tok_s",
        "TOK/S",
        _serving_figure(lambda s: s.generation_tokens_per_s),
        numeric=True,
        width=len("12.3k"),
        descending_first=True,
    ),
    ColumnSpec(
        "kv",
        "KV%",
        _serving_figure(lambda s: s.kv_cache_percent),
        numeric=True,
        width=len("100.0%"),
        descending_first=True,
    ),
    ColumnSpec(
        "ttft",
        "TTFT95",
        _serving_figure(lambda s: s.ttft_p95_s),
        numeric=True,
        width=len("420ms"),
        descending_first=True,
    ),
    ColumnSpec("events", "EVENTS", lambda c: _events_order(c.log_events), descending_first=True),
    ColumnSpec("exit", "LAST EXIT", lambda c: _exit_order(c.info), descending_first=True),
    ColumnSpec(
        "rx",
        "NET RX",
        lambda c: _num(c.stats.net_rx_rate),
        numeric=True,
        width=len("1008K/s"),
        descending_first=True,
    ),
    ColumnSpec(
        "tx",
        "NET TX",
        lambda c: _num(c.stats.net_tx_rate),
        numeric=True,
        width=len("1008K/s"),
        descending_first=True,
    ),
    ColumnSpec("ports", "PORTS", lambda c: c.info.ports),
    ColumnSpec("group", "PROJECT/SERVICE", lambda c: tuple(map(natural_key, c.info.group))),
)
COLUMN_KEYS = tuple(col.key for col in COLUMNS)
HOST_COLUMN = ColumnSpec("host", "HOST", lambda c: "")
"""Shown with several engines only, right after the name; rows are grouped by host anyway."""
_ALL = (*COLUMNS, HOST_COLUMN)
_HOST = len(COLUMNS)
_ONE_ENGINE = tuple(range(len(COLUMNS)))
_SEVERAL_ENGINES = (0, _HOST, *range(1, len(COLUMNS)))
_STATE, _CPU, _GPUS = (COLUMN_KEYS.index(k) for k in ("state", "cpu", "gpus"))
DEFAULT_COLUMNS: tuple[str, ...] = (
    "name",
    "state",
    "cpu",
    "mem",
    "gpu_mem",
    "gpu_util",
    "gpus",
    "serving",
    "tok_s",
    "requests",
    "kv",
    "ttft",
    "model",
    "uptime",
    "restarts",
    "events",
    "exit",
    "image",
    "rx",
    "tx",
    "ports",
    "group",
)
"""The columns shown, in order, unless the user picks (`c`, `[table] columns`): what a glance
needs first (state, CPU, memory, GPUs, serving figures), so that they fit 80 columns; the wide
text columns last."""
ALWAYS_SHOWN = frozenset({"name", "state"})
"""Columns drawn even when every row leaves them blank (name stays put when scrolling)."""
SHRINK_ORDER: tuple[tuple[str, int], ...] = (
    ("image", 10),
    ("ports", 8),
    ("group", 10),
    ("model", 12),
)
"""Text columns that give up width when the table is wider than its window, first to last,
and the narrowest each gets (its text is then cut with `…`)."""
GLANCE = 6
"""How many columns (the name first) a glance needs: the name and the state give up width,
down to `GLANCE_SHRINK`, only as far as these need to fit the window, never for the columns
past them (a `→` away anyway)."""
GLANCE_SHRINK: tuple[tuple[str, int], ...] = (("name", 16), ("state", 12))
"""The name and the state, and the narrowest each gets to let the first `GLANCE` columns fit."""
_SERVING, _REQUESTS, _TOK_S, _KV, _TTFT, _EVENTS, _EXIT = (
    COLUMN_KEYS.index(k) for k in ("serving", "requests", "tok_s", "kv", "ttft", "events", "exit")
)


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


def host_label(url: str) -> str:
    """How a host is named in the table: `user@box` for ssh://, `box:2376` for tcp://, the
    socket's path for unix://."""
    for scheme in ("ssh://", "tcp://", "http://", "https://"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url[len("unix://") :] if url.startswith("unix://") else url


def group_key(group: tuple[str, str], host: str = "") -> str:
    """A group row's key: `group:<project>/<service>`, and `@<engine url>` with several
    engines (the same compose project may run on two hosts)."""
    return GROUP_PREFIX + group_label(group) + (f"@{host}" if host else "")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _sum(values: Iterable[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _state_text(info: ContainerInfo) -> str:
    state = f"exited ({info.exit_code})" if info.state == "exited" else info.state
    return state + " OOMKilled" if info.oom_killed else state


def _state_colour(info: ContainerInfo) -> str:
    """The palette entry a container's state is drawn in."""
    if info.state == "running":
        return "ok"
    if info.state in ("paused", "restarting", "created"):
        return "warn"
    if info.oom_killed or info.state == "dead" or info.exit_code not in (0, 137, 143):
        return "bad"
    return "muted"


def _serving_plain(reading: ServingReading | None) -> tuple[str, ...]:
    """The serving columns' text: state, running/queued, generated tok/s, KV %, TTFT p95;
    blank for a container without a model server."""
    if reading is None:
        return ("", "", "", "", "")
    return (
        reading.state.name + (" stale" if reading.stale else ""),
        requests_text(reading.requests_running, reading.requests_waiting),
        tokens_rate(reading.generation_tokens_per_s),
        percent(reading.kv_cache_percent),
        seconds(reading.ttft_p95_s),
    )


def _serving_cells(reading: ServingReading | None, growing: bool) -> tuple[Cell, ...]:
    """The serving columns coloured: the state by what it is; a growing queue, a KV cache past
    `KV_WARNING_PERCENT` and a TTFT p95 past `TTFT_P95_WARNING_S` as warnings; the figures of a
    stale reading muted (they are old)."""
    plain = _serving_plain(reading)
    if reading is None:
        return tuple(((text, ""),) for text in plain)
    name = reading.state.name
    state: Cell = ((name, STATE_COLOURS.get(name, "")),)
    if reading.stale:
        return (
            (*state, (" stale", "muted")),
            *(((text, "muted"),) for text in plain[1:]),
        )
    requests: Cell = ((plain[1], ""),)
    if growing:
        running, _, queued = plain[1].partition("/")
        requests = ((running + "/", ""), (queued, "warn"))
    return (
        state,
        requests,
        ((plain[2], ""),),
        ((plain[3], "warn" if kv_warns(reading.kv_cache_percent) else ""),),
        ((plain[4], "warn" if ttft_warns(reading.ttft_p95_s) else ""),),
    )


def events_cell(events: LogEventCounts) -> Cell:
    """A row's log events since its start: out-of-memory (CUDA's and the kernel's) and NCCL
    failures named, in the warning colour (`2 OOM 1 NCCL`, then `+3` more events), else a plain
    count; `≥` in front when some lines went unread (at least that many); blank while its log
    was not read."""
    if not events.read:
        return (("", ""),)
    least = "≥" if events.partial else ""
    oom = events.get(LineKind.CUDA_OOM) + events.get(LineKind.OOM_KILLED)
    nccl = events.get(LineKind.NCCL)
    if not oom and not nccl:
        return ((f"{least}{events.total}", ""),)
    alarm = " ".join(f"{n} {word}" for n, word in ((oom, "OOM"), (nccl, "NCCL")) if n)
    rest = events.total - events.alarming
    return ((least, ""), (alarm, "warn"), (f" +{rest}" if rest else "", ""))


def exit_cell(info: ContainerInfo, now: float) -> Cell:
    """How the last run ended: its exit code (`?` when not known), `OOM` when the OOM killer
    ended it, how long ago (`137 OOM 2m`), and `↻3` for 3 restarts in the last
    `RESTART_WINDOW_S` (10 minutes). A kill by OOM is drawn as bad, any other failure (not
    0, 137 or 143: a stop) as a warning, as are recent restarts; blank for a first run."""
    last = info.last_exit
    if last is None:
        return (("", ""),)
    code = "?" if last.code is None else str(last.code)
    colour = "muted" if last.code == 0 else ""
    if last.code is not None and last.code not in (0, 137, 143):
        colour = "warn"
    cell: list[Piece] = [(code, colour)]
    if last.oom_killed:
        cell.append((" OOM", "bad"))
    if last.at is not None:
        cell.append((f" {human_duration(now - last.at)}", "muted"))
    if info.restarts_recent:
        cell.append((f" ↻{info.restarts_recent}", "warn"))
    return tuple(cell)


def _fit(cell: Sequence[Piece], width: int) -> Sequence[Piece]:
    """A cell cut to `width` cells, ending in `…` when it was wider (a shrunk column)."""
    total = sum(cell_len(text) for text, _ in cell)
    if total <= width:
        return cell
    room = max(0, width - 1)
    out: list[Piece] = []
    for text, colour in cell:
        size = cell_len(text)
        if size <= room:
            out.append((text, colour))
            room -= size
            continue
        if room:
            out.append((set_cell_size(text, room), colour))
        break
    out.append(("…", ""))
    return out


def _plain(cell: Cell) -> str:
    return "".join(text for text, _ in cell)


def _max(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _group_events(members: Sequence[ContainerSnapshot]) -> Cell:
    """A service's log events: its replicas' counts added up, drawn as one replica's are."""
    read = [c.log_events for c in members if c.log_events.read]
    if not read:
        return (("", ""),)
    totals: dict[LineKind, int] = {}
    for counted in read:
        for kind, n in counted.counts:
            totals[kind] = totals.get(kind, 0) + n
    summed = LogEventCounts.of(totals, read=True, partial=any(e.partial for e in read))
    return events_cell(summed)


def _group_serving(
    members: Sequence[ContainerSnapshot],
) -> tuple[tuple[str, ...], tuple[Cell, ...]]:
    """A service's serving columns: how many of its servers are ready, running and queued
    requests and generated tok/s summed, the fullest KV cache and the slowest TTFT p95 (the
    replica that needs a look); blank when none of its replicas serves."""
    readings = [c.serving for c in members if c.serving is not None]
    if not readings:
        return ("", "", "", "", ""), ((("", ""),),) * 5
    fresh = [r for r in readings if not r.stale]
    ready = sum(1 for r in fresh if r.state.name == "ready")
    running = _sum(r.requests_running for r in fresh)
    waiting = _sum(r.requests_waiting for r in fresh)
    kv = _max(r.kv_cache_percent for r in fresh)
    ttft = _max(r.ttft_p95_s for r in fresh)
    plain = (
        f"{ready}/{len(readings)} ready",
        requests_text(
            None if running is None else int(running), None if waiting is None else int(waiting)
        ),
        tokens_rate(_sum(r.generation_tokens_per_s for r in fresh)),
        percent(kv),
        seconds(ttft),
    )
    growing = any(
        c.serving is not None and queue_growing(c.serving, c.serving_history) for c in members
    )
    requests: Cell = ((plain[1], ""),)
    if growing and "/" in plain[1]:
        head, _, queued = plain[1].partition("/")
        requests = ((head + "/", ""), (queued, "warn"))
    cells: tuple[Cell, ...] = (
        ((plain[0], "ok" if ready == len(readings) else "warn"),),
        requests,
        ((plain[2], ""),),
        ((plain[3], "warn" if kv_warns(kv) else ""),),
        ((plain[4], "warn" if ttft_warns(ttft) else ""),),
    )
    return plain, cells


PALETTE = ("ok", "warn", "bad", "muted", "accent", "bold")
"""Names of the styles a cell's text may be drawn in (component classes of the table)."""
_NOT_DRAWN = object()
Piece = tuple[str, str]
"""A run of a cell's text and the palette entry it is drawn in ("" for the row's own style)."""
Cell = tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class _Row:
    """One line of the table: what each column shows (plain), and how it is coloured."""

    key: str
    plain: tuple[str, ...]
    cells: Callable[[], tuple[Cell, ...]]
    group: tuple[str, str] | None = None
    host: str = ""
    """The engine URL the row belongs to; "" with one engine."""
    widths: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Most cells are ASCII (figures, names), whose width is their length: a third of the
        # time of cell_len on every cell of every row, each refresh.
        widths = tuple([len(t) if t.isascii() else cell_len(t) for t in self.plain])
        object.__setattr__(self, "widths", widths)


class ContainerTable(ScrollView, can_focus=True):
    """A live table of containers, grouped by compose project / service or swarm service.

    Feed it snapshots with `update_snapshot()` (one engine) or `update_fleets()` (several); it
    never fetches. Rows are keyed by container id (group headers by `group:<project>/<service>`,
    with `@<engine url>` appended and host rows keyed `host:<engine url>` when there are several
    engines). The name column stays in place while the others scroll sideways. The cursor
    follows its container when rows move; `SelectionChanged` is posted whenever the row under
    it changes, and `ViewChanged` whenever what it shows does (counts, toggle, filter).
    """

    COMPONENT_CLASSES = {
        "container-table--header",
        "container-table--cursor",
        "container-table--ok",
        "container-table--warn",
        "container-table--bad",
        "container-table--muted",
        "container-table--accent",
        "container-table--bold",
    }
    """Header line; the cursor's row; the colours of states, warnings, models and groups."""

    DEFAULT_CSS = """
    ContainerTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        & > .container-table--header {
            background: $panel;
            color: $foreground;
            text-style: bold;
        }
        & > .container-table--cursor {
            background: $block-cursor-blurred-background;
        }
        &:focus > .container-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .container-table--ok { color: $success; }
        & > .container-table--warn { color: $warning; }
        & > .container-table--bad { color: $error; }
        & > .container-table--muted { color: $text-muted; }
        & > .container-table--accent { color: $accent; }
        & > .container-table--bold { text-style: bold; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="table.cursor_up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="table.cursor_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("home", "first_row", "First", show=False, id="table.first"),
        Binding("end", "last_row", "Last", show=False, id="table.last"),
        Binding("left", "scroll_left", "Left", show=False, id="table.left"),
        Binding("right", "scroll_right", "Right", show=False, id="table.right"),
        # Textual's own, given ids so that the keymap, the README and `?` name them alike.
        Binding("ctrl+pageup", "page_left", "Page left", show=False, id="table.page_left"),
        Binding("ctrl+pagedown", "page_right", "Page right", show=False, id="table.page_right"),
        # Out of the footer (it has room for few keys); `?` lists them, a header click sorts.
        Binding(
            ">",
            "sort_next",
            "Sort next",
            show=False,
            id="sort-next",
            tooltip="Sort by the next column",
        ),
        Binding(
            "<",
            "sort_prev",
            "Sort prev",
            show=False,
            id="sort-prev",
            tooltip="Sort by the previous column",
        ),
        Binding(
            "I",
            "sort_invert",
            "Invert",
            show=False,
            id="sort-invert",
            tooltip="Reverse the sort order",
        ),
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
    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)
    """Index of the row under the cursor."""
    columns: reactive[tuple[str, ...]] = reactive(DEFAULT_COLUMNS)
    """The columns the user wants, in order (`c` picks them, `[table] columns` sets them);
    unknown keys are skipped, the name always comes first. Of these, the ones blank in every
    row are not drawn (no GPUs here: no GPU columns), nor HOST (the host rows say it)."""
    toggle_key: reactive[str] = reactive("a", repaint=False)
    """The key that shows all containers (named when the model view is empty; the app sets
    the user's)."""

    class SelectionChanged(Message):
        """The cursor is on another row: a container, a group header, a host row or none."""

        def __init__(self, selection: Selection) -> None:
            self.selection = selection
            super().__init__()

    class ViewChanged(Message):
        """What the table shows changed: how many containers, which, and the filter."""

        def __init__(self, view: TableView) -> None:
            self.view = view
            super().__init__()

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._snapshot: FleetSnapshot | None = None
        self._fleets: tuple[FleetSnapshot, ...] = ()
        self._order: tuple[int, ...] = _ONE_ENGINE
        self._rows: list[_Row] = []
        self._index: dict[str, int] = {}
        self._widths: tuple[int, ...] = tuple(len(col.label) for col in COLUMNS)
        # What is drawn: indexes into _ALL in display order, and each one's width on screen.
        self._shown: tuple[int, ...] = (0,)
        self._shown_widths: tuple[int, ...] = (len(COLUMNS[0].label),)
        self._posted: Selection | None = None  # None: nothing posted yet
        self._view = TableView()
        self._posted_view: TableView | None = None
        # The parts of a row that come from the container's configuration: the engine hands
        # out the same info object until the container changes, so they are kept by object.
        self._info_text: dict[str, tuple[ContainerInfo, tuple[str, ...]]] = {}
        # Rendered lines of the rows, kept while what they show is unchanged.
        self._strips: dict[str, tuple[tuple, Strip]] = {}
        self._row_cache: dict[str, tuple[tuple, _Row]] = {}
        self._base_style: Style | None = None
        self._frame_palette: dict[str, Style] | None = None
        self._drawn: dict[int, object] = {}
        self.folded: set[str] = set()
        """Keys of the group rows folded (their members hidden under them)."""

    # --- public ------------------------------------------------------------------------------

    def toggle_fold(self, key: str) -> bool:
        """Fold the group row `key` (its members hidden under it), or unfold it; False for a
        key that is no group row."""
        if not key.startswith(GROUP_PREFIX) or key not in self._index:
            return False
        if key in self.folded:
            self.folded.discard(key)
        else:
            self.folded.add(key)
        self._rebuild()
        return True

    def update_snapshot(self, snapshot: FleetSnapshot) -> None:
        """Show this snapshot (one engine)."""
        self.update_fleets((snapshot,))

    def update_fleets(self, fleets: Sequence[FleetSnapshot]) -> None:
        """Show the fleets of several engines, in this order (one: as `update_snapshot`)."""
        self._fleets = tuple(fleets)
        self._snapshot = self._fleets[0] if self._fleets else None
        self._order = _SEVERAL_ENGINES if len(self._fleets) > 1 else _ONE_ENGINE
        self._rebuild()

    @property
    def selection(self) -> Selection:
        """The row under the cursor now (what `SelectionChanged` last said, or is about to)."""
        if not 0 <= self.cursor_row < len(self._rows):
            return NO_SELECTION
        row = self._rows[self.cursor_row]
        host = row.host or None
        if row.key.startswith(HOST_PREFIX):
            return Selection("host", host=host)
        if row.group is not None:
            return Selection("group", group=row.group, host=host)
        return Selection("container", container_id=row.key, host=host)

    @property
    def view(self) -> TableView:
        """What the table shows now (what `ViewChanged` last said, or is about to)."""
        return self._view

    def host_of(self, container_id: str) -> str | None:
        """The engine URL of a shown container's row; None with one engine (or not shown)."""
        index = self._index.get(container_id)
        return (self._rows[index].host or None) if index is not None else None

    def cursor_to_next_host(self) -> tuple[str, int, int] | None:
        """Put the cursor on the next host's row (after the last, the first again).

        Returns (its engine URL, its place counting from 1, how many hosts); None, and the
        cursor stays, with fewer than two hosts.
        """
        hosts = [i for i, row in enumerate(self._rows) if row.key.startswith(HOST_PREFIX)]
        if len(hosts) < 2:
            return None
        target = next((i for i in hosts if i > self.cursor_row), hosts[0])
        self.move_cursor(row=target)
        return self._rows[target].host, hosts.index(target) + 1, len(hosts)

    @property
    def row_keys(self) -> list[str]:
        """Keys of the rows in display order (container ids and group keys)."""
        return [row.key for row in self._rows]

    @property
    def row_count(self) -> int:
        """How many rows the table shows (group headers included)."""
        return len(self._rows)

    def get_row(self, key: str) -> list[Text]:
        """The cells of a row as styled text (what the row shows, column by column)."""
        row = self._rows[self._index[key]]
        palette = self._palette()
        cells = row.cells()
        return [
            Text.assemble(*((text, palette.get(colour, Style())) for text, colour in cells[i]))
            for i in self._order
        ]

    @property
    def empty_text(self) -> str:
        """What the table says when it shows no row (with a fleet in hand): how to see some."""
        fleets = self._fleets
        if self._rows or not any(f.engine.reachable for f in fleets):
            return ""  # nothing known yet, or the engine is away (the status line says so)
        if self.filter_text.strip():
            return "nothing matches the filter: Esc clears it"
        if not self.show_all:
            return (
                f"no model containers: `{self.toggle_key}` shows all, `aitop demo up` starts a demo"
            )
        return "no containers: `aitop demo up` starts a demo"

    @property
    def column_widths(self) -> tuple[int, ...]:
        """The widths the columns' text takes, in `column_keys` order (without the padding):
        what each column needs, before a narrow window shrinks the text columns."""
        return self._widths

    @property
    def column_keys(self) -> tuple[str, ...]:
        """Keys of every column a row has, in the order `get_row` returns its cells (`host`
        second with several engines); `shown_columns` says which are drawn, and where."""
        return tuple(_ALL[i].key for i in self._order)

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """Keys of the columns drawn, left to right."""
        return tuple(_ALL[i].key for i in self._shown)

    @property
    def shown_widths(self) -> tuple[int, ...]:
        """The width each drawn column has on screen (its text, without the padding)."""
        return self._shown_widths

    @property
    def column_choices(self) -> tuple[tuple[str, str], ...]:
        """(key, header) of every column the user may pick, in the table's data order."""
        return tuple((col.key, col.label) for col in COLUMNS)

    def header_label(self, key: str) -> str:
        """A column's header as shown, with the sort arrow on the sorted column."""
        return self._header(next(col for col in _ALL if col.key == key))

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on row `row` (clamped) and scroll it into view."""
        self.cursor_row = max(0, min(row, len(self._rows) - 1))
        self._scroll_to_cursor(animate=animate)

    # --- actions -------------------------------------------------------------------------------

    def action_cursor_up(self) -> None:
        """Cursor one row up."""
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        """Cursor one row down."""
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        """Cursor one screen up."""
        self.move_cursor(row=self.cursor_row - self._page())

    def action_page_down(self) -> None:
        """Cursor one screen down."""
        self.move_cursor(row=self.cursor_row + self._page())

    def action_first_row(self) -> None:
        """Cursor to the first row."""
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        """Cursor to the last row."""
        self.move_cursor(row=len(self._rows) - 1)

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
        # Along the columns as drawn: a hidden one (no GPUs here) would sort by nothing seen.
        keys = [k for k in self.shown_columns if k != HOST_COLUMN.key] or list(COLUMN_KEYS)
        index = keys.index(self.sort_column) if self.sort_column in keys else -1 if step > 0 else 0
        self._sort_anew(keys[(index + step) % len(keys)])

    def sort_by(self, key: str) -> None:
        """Sort by column `key` (a figure biggest first, text A to Z); the column already
        sorted by flips its order."""
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self._sort_anew(key)

    def _sort_anew(self, key: str) -> None:
        """Sort by another column, in the order it sorts first (one rebuild, not two)."""
        spec = COLUMNS[COLUMN_KEYS.index(key)]
        self.set_reactive(ContainerTable.sort_reverse, spec.descending_first)
        self.sort_column = key

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = self._column_at(offset.x)
            # Rows are grouped by host first: the host column sorts nothing.
            if column is not None and self._shown[column] != _HOST:
                self.sort_by(_ALL[self._shown[column]].key)
        else:
            row = int(self.scroll_offset.y) + offset.y - 1
            self.move_cursor(row=row)
            # A click on a group row's ▾ / ▸ folds or unfolds it.
            if offset.x < 2 and 0 <= row < len(self._rows):
                self.toggle_fold(self._rows[row].key)

    def watch_sort_column(self) -> None:
        self._rebuild()

    def watch_sort_reverse(self) -> None:
        self._rebuild()

    def watch_filter_text(self) -> None:
        self._rebuild()

    def watch_show_all(self) -> None:
        self._rebuild()

    def watch_marked(self) -> None:
        self._rebuild()

    def watch_columns(self) -> None:
        self._rebuild()

    def on_resize(self, event: events.Resize) -> None:
        # A narrower window shrinks the text columns; a shorter one keeps the cursor's row
        # on screen (the view would otherwise stay where it was, the cursor below it).
        self._layout()
        self.refresh()
        self.call_after_refresh(self._scroll_to_cursor, animate=False)

    def action_scroll_right(self) -> None:
        """A screen's worth of columns to the right: the first one cut at the right edge
        comes to stand next to the name."""
        spans = self._column_spans()
        if len(spans) < 2:
            return
        fixed = spans[0][1]
        x = int(self.scroll_offset.x)
        edge = x + self.scrollable_content_region.width
        target = next((start - fixed for start, end in spans[1:] if end > edge), None)
        if target is None or target <= x:
            target = x + max(1, self.scrollable_content_region.width - fixed)
        self.scroll_to(x=min(target, int(self.max_scroll_x)), animate=False, immediate=True)

    def action_scroll_left(self) -> None:
        """A screen's worth of columns to the left (back to the first at the start)."""
        spans = self._column_spans()
        x = int(self.scroll_offset.x)
        if len(spans) < 2 or x <= 0:
            self.scroll_to(x=0, animate=False, immediate=True)
            return
        fixed = spans[0][1]
        room = self.scrollable_content_region.width - fixed
        first = next((i for i, (start, _) in enumerate(spans[1:], 1) if start - fixed >= x), None)
        end = spans[first][0] if first is not None else x + fixed
        target = next((start - fixed for start, _ in spans[1:] if end - start <= room), 0)
        self.scroll_to(x=max(0, min(target, x - 1)), animate=False, immediate=True)

    def watch_cursor_row(self, old: int, new: int) -> None:
        if old != new:
            self._refresh_row(old)
            self._refresh_row(new)
        self._post_selection()

    def _on_focus(self, event: events.Focus) -> None:
        self._strips.clear()  # the cursor's colour depends on focus
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._strips.clear()
        self.refresh()

    # --- geometry ------------------------------------------------------------------------------

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def _scroll_to_cursor(self, *, animate: bool) -> None:
        # The header takes the first line of the view: row r is on screen while
        # top <= r < top + height - 1.
        shown = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=animate, immediate=True)
        elif self.cursor_row >= top + shown:
            self.scroll_to(y=self.cursor_row - shown + 1, animate=animate, immediate=True)

    def _refresh_row(self, index: int) -> None:
        self.refresh_line(index + 1)

    def _column_spans(self) -> list[tuple[int, int]]:
        """Where each column starts and ends on the unscrolled line."""
        spans, x = [], 0
        for width in self._shown_widths:
            spans.append((x, x + width + 2 * CELL_PADDING))
            x += width + 2 * CELL_PADDING
        return spans

    def _column_at(self, x: int) -> int | None:
        spans = self._column_spans()
        fixed_end = spans[0][1]
        line_x = x if x < fixed_end else x + int(self.scroll_offset.x)
        for i, (start, end) in enumerate(spans):
            if start <= line_x < end:
                return i
        return None

    # --- building rows -------------------------------------------------------------------

    def _header(self, col: ColumnSpec) -> str:
        if col.key != self.sort_column:
            return col.label
        return col.label + (" ▼" if self.sort_reverse else " ▲")

    def _cursor_key(self) -> str | None:
        if not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row].key

    def _palette(self) -> dict[str, Style]:
        """The styles cells are drawn in, by name, from the theme (via DEFAULT_CSS)."""
        palette = {"": Style()}
        if self.is_attached:
            for name in PALETTE:
                palette[name] = self.get_component_rich_style(
                    f"container-table--{name}", partial=True
                )
        return palette

    def _info_columns(self, info: ContainerInfo) -> tuple[str, ...]:
        """name, model, image, state, restarts, ports and group: they change with the info."""
        cached = self._info_text.get(info.id)
        if cached is not None and cached[0] is info:
            return cached[1]
        state = _state_text(info) + (f" {info.health}" if info.health else "")
        text = (
            _clip(info.name, 30),
            _clip(info.model, 36),
            _clip(info.image, 30),
            state,
            str(info.restart_count),
            _clip(", ".join(info.ports), 28),
            group_label(info.group),
        )
        self._info_text[info.id] = (info, text)
        return text

    def _container_row(
        self, c: ContainerSnapshot, now: float, indent: bool, host: str = "", gpu: bool = True
    ) -> _Row:
        """A container's row; the same object as last time while nothing shown changed."""
        info, stats = c.info, c.stats
        uptime = now - info.started_at if info.running and info.started_at else None
        uptime_text = human_duration(uptime)
        idle = gpu and bool(info.gpus_assigned) and self._sits_idle(c)
        last = info.last_exit
        exit_age = human_duration(now - last.at) if last is not None and last.at else ""
        # Most of a large fleet idles: the same figures as a tick ago, nothing to format.
        key = (
            info,
            uptime_text,
            stats.cpu_percent,
            stats.mem_bytes,
            stats.mem_limit_bytes,
            stats.net_rx_rate,
            stats.net_tx_rate,
            c.gpus,
            c.serving,
            c.serving is not None and queue_growing(c.serving, c.serving_history),
            c.log_events,
            exit_age,
            info.id in self.marked,
            indent,
            idle,
            host,
        )
        cached = self._row_cache.get(info.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        row = self._format_row(c, uptime_text, indent, idle, host, now)
        self._row_cache[info.id] = (key, row)
        return row

    def _format_row(
        self, c: ContainerSnapshot, uptime: str, indent: bool, idle: bool, host: str, now: float
    ) -> _Row:
        info, stats = c.info, c.stats
        name, model, image, state, restarts, ports, group = self._info_columns(info)
        mem = "-"
        if stats.mem_bytes is not None:
            limit = format_bytes(stats.mem_limit_bytes, na="-")
            mem = f"{format_bytes(stats.mem_bytes)} / {limit}"
        mark = "✓ " if info.id in self.marked else ("  " if indent else "")
        assigned = format_assigned(info.gpus_assigned) if info.gpus_assigned else ""
        if assigned and idle:
            assigned += " idle"
        growing = c.serving is not None and queue_growing(c.serving, c.serving_history)
        logged, exited = events_cell(c.log_events), exit_cell(info, now)
        plain = (
            mark + name,
            model,
            image,
            state,
            uptime,
            restarts,
            percent(stats.cpu_percent),
            mem,
            format_gpu_usage(c.gpus),
            percent(gpu_util(c)) if c.gpus else "",
            assigned,
            *_serving_plain(c.serving),
            _plain(logged),
            _plain(exited),
            human_rate(stats.net_rx_rate),
            human_rate(stats.net_tx_rate),
            ports,
            group,
            _clip(host_label(host), HOST_WIDTH),
        )

        def cells() -> tuple[Cell, ...]:
            styled: list[Cell] = [((text, ""),) for text in plain]
            styled[1] = ((plain[1], "accent" if info.is_model else ""),)
            state_text = _state_text(info)
            styled[_STATE] = ((state_text, _state_colour(info)),)
            if info.health:
                colour = {"healthy": "ok", "unhealthy": "bad"}.get(info.health, "warn")
                styled[_STATE] += ((f" {info.health}", colour),)
            if stats.cpu_percent is not None and stats.cpu_percent >= 90:
                styled[_CPU] = ((plain[_CPU], "warn"),)
            if assigned.endswith(" idle"):
                styled[_GPUS] = ((assigned[:-5], ""), (" idle", "warn"))
            styled[_SERVING : _TTFT + 1] = _serving_cells(c.serving, growing)
            styled[_EVENTS] = logged
            styled[_EXIT] = exited
            styled[_HOST - 1] = ((plain[_HOST - 1], "muted"),)
            styled[_HOST] = ((plain[_HOST], "muted"),)
            return tuple(styled)

        return _Row(info.id, plain, cells, host=host)

    def _sits_idle(self, c: ContainerSnapshot) -> bool:
        """A running container holding GPUs it does not use: worth a glance."""
        report: GpuReport | None = self._snapshot.gpu if self._snapshot is not None else None
        return (
            c.info.state == "running"
            and not c.gpus
            and report is not None
            and report.ok
            and report.attribution_possible
        )

    def _group_row(
        self,
        group: tuple[str, str],
        members: Sequence[ContainerSnapshot],
        everyone: Sequence[ContainerSnapshot],
        host: str = "",
        folded: bool = False,
    ) -> _Row:
        running = sum(1 for c in everyone if c.info.state == "running")
        unhealthy = sum(1 for c in everyone if c.info.health == "unhealthy")
        state = f"{running}/{len(everyone)} running"
        health = f" {unhealthy} unhealthy" if unhealthy else ""
        label = group_label(group)
        mem = _sum(c.stats.mem_bytes for c in members)
        serving, serving_cells = _group_serving(members)
        group_events = _group_events(members)
        plain = (
            ("▸ " if folded else "▾ ") + _clip(label, 30),
            _clip(", ".join(sorted({c.info.model for c in members})), 36),
            _clip(", ".join(sorted({c.info.image for c in members})), 30),
            state + health,
            "",
            str(sum(c.info.restart_count for c in members)),
            percent(_sum(c.stats.cpu_percent for c in members)),
            format_bytes(mem, na="-"),
            format_bytes(_sum(gpu_mem(c) for c in members), na=""),
            "",
            "",
            *serving,
            _plain(group_events),
            "",
            human_rate(_sum(c.stats.net_rx_rate for c in members)),
            human_rate(_sum(c.stats.net_tx_rate for c in members)),
            "",
            label,
            _clip(host_label(host), HOST_WIDTH),
        )

        def cells() -> tuple[Cell, ...]:
            styled: list[Cell] = [((text, ""),) for text in plain]
            for i in (0, 1, _HOST - 1):
                styled[i] = ((plain[i], "bold"),)
            styled[_STATE] = ((state, "ok" if running == len(everyone) else "warn"),)
            if health:
                styled[_STATE] += ((health, "bad"),)
            styled[_SERVING : _TTFT + 1] = serving_cells
            styled[_EVENTS] = group_events
            return tuple(styled)

        return _Row(group_key(group, host), plain, cells, group, host)

    def _host_row(self, snapshot: FleetSnapshot, visible: Sequence[ContainerSnapshot]) -> _Row:
        """A host's first line (several engines): how its engine answers, or why not."""
        engine = snapshot.engine
        label = host_label(engine.url)
        total = len(snapshot.containers)
        running = sum(1 for c in snapshot.containers if c.info.state == "running")
        if engine.reachable:
            about = f"{engine.product} {engine.version}".strip()
            state, colour = f"{running}/{total} running", "ok"
            source = f"stats: {engine.stats_source}" if engine.stats_source else ""
        elif engine.error:
            retry = f" in {engine.retry_in:.0f}s" if engine.retry_in else ""
            about, state, colour = f"unreachable, retrying{retry}", "unreachable", "bad"
            source = _clip(engine.error, 30)
        else:
            about, state, colour, source = "connecting…", "connecting…", "warn", ""
        mem = _sum(c.stats.mem_bytes for c in visible)
        plain = (
            "▣ " + _clip(label, HOST_WIDTH),
            about,
            source,
            state,
            "",
            "",
            percent(_sum(c.stats.cpu_percent for c in visible)),
            format_bytes(mem, na="-"),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            human_rate(_sum(c.stats.net_rx_rate for c in visible)),
            human_rate(_sum(c.stats.net_tx_rate for c in visible)),
            "",
            "",
            _clip(label, HOST_WIDTH),
        )

        def cells() -> tuple[Cell, ...]:
            styled: list[Cell] = [((text, ""),) for text in plain]
            styled[0] = ((plain[0], "bold"),)
            styled[1] = ((about, colour if colour == "bad" else "bold"),)
            styled[_STATE] = ((state, colour),)
            styled[_HOST] = ((plain[_HOST], "bold"),)
            return tuple(styled)

        return _Row(HOST_PREFIX + engine.url, plain, cells, host=engine.url)

    def _build_rows(self) -> list[_Row]:
        fleets = self._fleets
        several = len(fleets) > 1
        rows: list[_Row] = []
        shown = 0
        for snapshot in fleets:
            visible = visible_containers(snapshot, show_all=self.show_all, needle=self.filter_text)
            shown += len(visible)
            if several:
                rows.append(self._host_row(snapshot, visible))
            rows.extend(self._fleet_rows(snapshot, visible, snapshot.engine.url if several else ""))
        present = sum(len(snapshot.containers) for snapshot in fleets)
        self._view = TableView(
            shown=shown,
            total=present,
            models=sum(1 for f in fleets for c in f.containers if c.info.is_model),
            show_all=self.show_all,
            filter_text=self.filter_text,
        )
        if len(self._row_cache) > 2 * present + 64:
            ids = {c.info.id for snapshot in fleets for c in snapshot.containers}
            self._info_text = {k: v for k, v in self._info_text.items() if k in ids}
            self._row_cache = {k: v for k, v in self._row_cache.items() if k in ids}
        return rows

    def _fleet_rows(
        self, snapshot: FleetSnapshot, visible: list[ContainerSnapshot], host: str
    ) -> list[_Row]:
        """One engine's rows: groups and lone containers, in the sort order."""
        spec = COLUMNS[COLUMN_KEYS.index(self.sort_column)]
        reverse = self.sort_reverse
        # The GPU report is this machine's: it says nothing of another host's containers.
        gpu = snapshot.gpu is not None

        def order(c: ContainerSnapshot) -> tuple[object, tuple[tuple[int, int, str], ...]]:
            return (spec.sort_key(c), natural_key(c.info.name))

        grouped: dict[tuple[str, str], list[ContainerSnapshot]] = {}
        lone: list[ContainerSnapshot] = []
        for c in visible:
            if c.info.group == ("", ""):
                lone.append(c)
            else:
                grouped.setdefault(c.info.group, []).append(c)
        # Groups and lone containers are ordered together: a group ranks by its best member.
        blocks: list[tuple[tuple[object, object], tuple[str, str] | None, list]] = []
        for group, members in grouped.items():
            members.sort(key=order, reverse=reverse)
            head = order(members[0])
            blocks.append(((head[0], natural_key(group_label(group))), group, members))
        blocks.extend(((order(c)), None, [c]) for c in lone)
        blocks.sort(key=lambda b: b[0], reverse=reverse)

        now = snapshot.taken_at or time.time()
        everyone: dict[tuple[str, str], list[ContainerSnapshot]] = {}
        for c in snapshot.containers:
            everyone.setdefault(c.info.group, []).append(c)
        self._snapshot = snapshot  # what _sits_idle looks at
        rows: list[_Row] = []
        for _, block_group, members in blocks:
            if block_group is not None:
                folded = group_key(block_group, host) in self.folded
                rows.append(
                    self._group_row(block_group, members, everyone[block_group], host, folded)
                )
                if folded:
                    continue
            indent = block_group is not None
            rows.extend(self._container_row(c, now, indent, host, gpu) for c in members)
        return rows

    def _rebuild(self) -> None:
        selected = self._cursor_key()
        rows = self._build_rows()
        self._rows = rows
        self._index = {row.key: i for i, row in enumerate(rows)}
        order = self._order
        widths = [max(cell_len(self._header(_ALL[i])), _ALL[i].width) for i in order]
        if rows:
            widths = list(map(max, widths, *([row.widths[i] for i in order] for row in rows)))
        self._widths = tuple(widths)
        if len(self._strips) > 2 * len(rows) + 64:
            self._strips = {k: v for k, v in self._strips.items() if k in self._index}
        self._layout()
        if not self.is_mounted:
            return
        # The cursor follows its row when rows move; when its row is gone it stays put.
        if selected in self._index:
            index = self._index[selected]
            if index != self.cursor_row:
                self.move_cursor(row=index)
        elif rows and self.cursor_row >= len(rows):
            self.move_cursor(row=len(rows) - 1)
        self._post_selection()
        if self._view != self._posted_view:
            self._posted_view = self._view
            self.post_message(self.ViewChanged(self._view))
        self._refresh_changed()

    def _layout(self) -> None:
        """Which columns are drawn, where, and how wide, for the rows and the window now."""
        at = {_ALL[i].key: n for n, i in enumerate(self._order)}
        wanted = ["name", *(k for k in self.columns if k != "name")]
        # With several engines the host rows head each engine's rows: HOST would repeat them.
        picked = [k for k in dict.fromkeys(wanted) if k in at and k != HOST_COLUMN.key]
        rows = self._rows
        if rows:
            picked = [
                k
                for k in picked
                if k in ALWAYS_SHOWN or any(row.widths[self._order[at[k]]] for row in rows)
            ]
        widths = {k: self._widths[at[k]] for k in picked}
        room = self.scrollable_content_region.width if self.is_mounted else 0

        def shrink(order: tuple[tuple[str, int], ...], keys: Sequence[str]) -> None:
            excess = sum(widths[k] + 2 * CELL_PADDING for k in keys) - room
            for key, narrowest in order:
                if room <= 0 or excess <= 0:
                    break
                if key in widths and widths[key] > narrowest:
                    given = min(excess, widths[key] - narrowest)
                    widths[key] -= given
                    excess -= given

        shrink(SHRINK_ORDER, picked)
        shrink(GLANCE_SHRINK, picked[:GLANCE])
        self._shown = tuple(self._order[at[k]] for k in picked)
        self._shown_widths = tuple(widths[k] for k in picked)
        total = sum(self._shown_widths) + 2 * CELL_PADDING * len(picked)
        self.virtual_size = Size(total, len(rows) + 1)

    def _line_token(self, y: int, top: int) -> object:
        """What screen line `y` shows when the view starts at row `top`: equal tokens, equal
        lines."""
        if y == 0:
            return (self._shown_widths, self._shown, self.sort_column, self.sort_reverse)
        index = top + y - 1
        if not 0 <= index < len(self._rows):
            return ("empty", self.empty_text) if y == 1 and not self._rows else None
        row = self._rows[index]
        return (row.key, row.plain, index == self.cursor_row, self._shown_widths, self._shown)

    def _refresh_changed(self) -> None:
        # Most ticks change a few figures of a large fleet: repainting only the lines that
        # changed keeps both the frame and what goes to the terminal small.
        top = int(self.scroll_offset.y)
        for y in range(self.scrollable_content_region.height):
            if self._drawn.get(y, _NOT_DRAWN) != self._line_token(y, top):
                self.refresh_line(top + y)

    def _post_selection(self) -> None:
        selection = self.selection
        if selection != self._posted:
            self._posted = selection
            self.post_message(self.SelectionChanged(selection))

    # --- rendering -----------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's style is computed through its ancestors: once a frame, not once a line.
        self._base_style = self.rich_style
        self._frame_palette = None
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._base_style or self.rich_style
        scroll_x, scroll_y = int(self.scroll_offset.x), int(self.scroll_offset.y)
        self._drawn[y] = self._line_token(y, scroll_y)
        if y == 0:
            line = self._line(
                [[(self._header(_ALL[i]), "")] for i in self._shown],
                base + self.get_component_rich_style("container-table--header"),
                {},
            )
        else:
            index = scroll_y + y - 1
            if y == 1 and not self._rows and self.empty_text:
                muted = self.get_component_rich_style("container-table--muted", partial=True)
                pad = " " * CELL_PADDING
                return Strip([Segment(pad + self.empty_text, base + muted)]).crop_extend(
                    0, width, base
                )
            if not 0 <= index < len(self._rows):
                return Strip.blank(width, base)
            line = self._row_strip(index, base)
        # The name column stays put; the rest scrolls sideways under it.
        fixed = self._shown_widths[0] + 2 * CELL_PADDING
        if scroll_x == 0 or line.cell_length <= fixed:
            return line.crop_extend(0, width, base)
        rest = line.crop_extend(fixed + scroll_x, width + scroll_x, base)
        return Strip.join([line.crop(0, fixed), rest]).crop_extend(0, width, base)

    def _row_strip(self, index: int, base: Style) -> Strip:
        row = self._rows[index]
        cursor = index == self.cursor_row
        shown = (self._shown_widths, self._shown)
        key = (row.plain, cursor, shown, self.app.theme, self.has_focus, hash(base))
        cached = self._strips.get(row.key)
        if cached is not None and cached[0] == key:
            return cached[1]
        style = base
        if cursor:
            style = base + self.get_component_rich_style("container-table--cursor")
        if self._frame_palette is None:
            self._frame_palette = self._palette()
        cells = row.cells()
        strip = self._line([cells[i] for i in self._shown], style, self._frame_palette)
        self._strips[row.key] = (key, strip)
        return strip

    def _line(
        self, cells: Sequence[Sequence[Piece]], style: Style, palette: dict[str, Style]
    ) -> Strip:
        """One table line: each cell padded to its column's width, numbers to the right."""
        # Runs of text in the line's own style are joined: most cells are plain, and fewer
        # segments make every later step of the frame cheaper.
        segments: list[Segment] = []
        run: list[str] = []
        pad = " " * CELL_PADDING
        numerics = (_ALL[i].numeric for i in self._shown)
        for whole, width, numeric in zip(cells, self._shown_widths, numerics, strict=True):
            cell = _fit(whole, width)
            used = sum(cell_len(text) for text, _ in cell)
            gap = " " * max(0, width - used)
            run.append(pad + gap if numeric else pad)
            for text, colour in cell:
                if not colour:
                    run.append(text)
                elif text:
                    if run:
                        segments.append(Segment("".join(run), style))
                        run = []
                    segments.append(Segment(text, style + palette.get(colour, Style())))
            run.append(pad if numeric else gap + pad)
        if run:
            segments.append(Segment("".join(run), style))
        return Strip(segments)
