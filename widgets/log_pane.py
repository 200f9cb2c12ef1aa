"""`LogPane`: a container's logs, live, searchable, and safe to show.

The pane displays what it is given (`add_batch` on the UI thread, `post_batch` from any
thread) and never fetches: a `tui.fleet.logs.LogFollower` owned by the app reads the engine.
Lines arrive sanitised (no escape sequence but colours survives `tui.fleet.sanitize`); the
pane rebuilds colours from validated SGR parameters, so nothing a container wrote reaches
the terminal as a control sequence.

Rendering is lazy (a line-API `ScrollView`): only the rows on screen are turned into strips,
with a small LRU cache, so a flood costs the pane an append per line, not a render per line.
Lines that scroll past between two frames are never drawn and are counted in
`skipped_lines`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
from collections.abc import Iterable
from typing import ClassVar, Literal

from rich.ansi import AnsiDecoder
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.content import Content
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Static

from tui.fleet.logs.types import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINES,
    DEFAULT_TAIL,
    JUMP_KINDS,
    PRESETS,
    InvalidQuery,
    LineKind,
    LogBatch,
    LogBuffer,
    LogLine,
    LogPreset,
    LogQuery,
    format_timestamp,
    preset_by_key,
)
from tui.fleet.sanitize import sanitize_text, to_ansi
from widgets.formatting import counted

FilterMode = Literal["off", "match", "exclude"]
ExportScope = Literal["view", "all"]

_FILTER_CYCLE: dict[str, FilterMode] = {"off": "match", "match": "exclude", "exclude": "off"}
_SOURCE_COLOURS = 6
_NO_STYLE = Style()
_TIMESTAMP_WIDTH = len(format_timestamp(1)) + 1
_KINDS = tuple(kind for kind in LineKind if kind is not LineKind.NORMAL)
"""Every kind a line can be drawn as (each has a component class)."""


DISPLAY_CHARS = 4096
"""Most characters of one line the pane draws; a longer line shows its start and how many
characters it holds past that (searches and exports have it whole). Rows are drawn on the UI
thread, and Rich measures non-ASCII text a character at a time: a line at the splitter's
64 KiB cap cost tens of milliseconds per row drawn, most of a second when made of tabs."""
MAX_HIGHLIGHTS = 200
"""Most search matches highlighted in one line."""
MAX_DRAWN_SGR = 256
"""Most colour changes drawn in one line (the colour in effect then stays to its end)."""
REORDER_LINES = 2000
"""How far back a line that arrives late (older than lines already shown: a boundary from
the event stream, a stream read behind it) is put back in its place by time; older than
that, it is shown where it arrived."""


def _by_time(line: LogLine) -> int:
    return line.ts


def _plain(value: str) -> str:
    """Text from outside (names, patterns) made safe for a title or the status line."""
    return sanitize_text(value)[0]


def _shown(text: str) -> str:
    """What the pane draws of a line's text (`DISPLAY_CHARS` at most, tabs unexpanded)."""
    if len(text) <= DISPLAY_CHARS:
        return text
    return text[:DISPLAY_CHARS] + f" [... {len(text) - DISPLAY_CHARS:,} more characters]"


@functools.lru_cache(maxsize=1024)
def _long_cells(text: str) -> int:
    return cell_len(text)


def _cells(text: str) -> int:
    """Terminal cells of `text`; remembered for long texts (Rich remembers short ones), whose
    width every rebuild asks for again."""
    return cell_len(text) if len(text) < 512 else _long_cells(text)


def _chunked(segments: Iterable[Segment]) -> list[Segment]:
    """Segments with long non-ASCII texts cut into short pieces that draw the same.

    Cropping a row measures each segment up to the crop's end: Rich measures a long
    non-ASCII text a character at a time, but short ones once (it remembers them).
    """
    out: list[Segment] = []
    for segment in segments:
        text = segment.text
        if len(text) <= 256 or text.isascii():
            out.append(segment)
        else:
            style = segment.style
            out.extend(Segment(text[i : i + 256], style) for i in range(0, len(text), 256))
    return out


def _after_tabs(text: str, offsets: Iterable[int]) -> list[int]:
    """Where offsets into `text` (ascending) land once its tabs are expanded.

    Tabs expand as `str.expandtabs(8)` does (what `_height` measures), in one pass: Rich's
    `Text.expand_tabs` builds a `Text` per tab, which a line of tabs made cost most of a
    second.
    """
    moved: list[int] = []
    column = 0
    last = 0
    for offset in offsets:
        lead = column % 8
        column += len((" " * lead + text[last:offset]).expandtabs(8)) - lead
        last = offset
        moved.append(column)
    return moved


class _Rows:
    """What the pane shows: which retained lines (all, or those a filter keeps) on which rows.

    Entries are buffer sequence numbers; with wrapping each entry has a height and a start
    row. Evicted lines leave from the front without renumbering anything.
    """

    def __init__(self, buffer: LogBuffer) -> None:
        self.buffer = buffer
        self.seqs: list[int] | None = None
        """Sequence numbers shown when filtering; None: every retained line."""
        self.head = 0
        self.starts: list[int] | None = None
        """With wrapping: the (absolute) first row of each entry."""
        self.shead = 0
        self.total_rows = 0
        self.removed = 0
        """Entries that ever left from the front (keeps ordinals monotonic)."""
        self._first_seen = buffer.first_seq

    def __len__(self) -> int:
        if self.seqs is None:
            return len(self.buffer)
        return len(self.seqs) - self.head

    def seq(self, index: int) -> int:
        if self.seqs is None:
            return self.buffer.first_seq + index
        return self.seqs[self.head + index]

    def ordinal(self, index: int) -> int:
        """A number that grows with every entry ever shown (for counting undrawn lines)."""
        return self.removed + index

    def index_of(self, seq: int) -> int | None:
        """Where a line is shown, or None when the view leaves it out."""
        if self.seqs is None:
            index = seq - self.buffer.first_seq
            return index if 0 <= index < len(self.buffer) else None
        pos = bisect.bisect_left(self.seqs, seq, self.head)
        if pos < len(self.seqs) and self.seqs[pos] == seq:
            return pos - self.head
        return None

    @property
    def rows(self) -> int:
        if self.starts is None:
            return len(self)
        if self.shead >= len(self.starts):
            return 0
        return self.total_rows - self.starts[self.shead]

    def locate(self, row: int) -> tuple[int, int]:
        """(entry index, row within the entry) of a row."""
        if self.starts is None:
            return row, 0
        base = self.starts[self.shead] if self.shead < len(self.starts) else self.total_rows
        pos = bisect.bisect_right(self.starts, base + row, self.shead) - 1
        return pos - self.shead, base + row - self.starts[pos]

    def row_of(self, index: int) -> int:
        if self.starts is None:
            return index
        return self.starts[self.shead + index] - self.starts[self.shead]

    def append(self, seq: int, height: int) -> None:
        if self.seqs is not None:
            self.seqs.append(seq)
        if self.starts is not None:
            self.starts.append(self.total_rows)
            self.total_rows += height

    def evict(self) -> int:
        """Drop entries whose lines the buffer evicted; returns the rows that went."""
        first = self.buffer.first_seq
        if self.seqs is None:
            # Unfiltered: entries are the buffer's own lines; count what left since last time.
            gone = first - self._first_seen
            self._first_seen = first
        else:
            old = self.head
            self.head = bisect.bisect_left(self.seqs, first, self.head)
            gone = self.head - old
            if self.head > 4096 and self.head * 2 > len(self.seqs):
                del self.seqs[: self.head]
                self.head = 0
        if gone <= 0:
            return 0
        self.removed += gone
        if self.starts is None:
            return gone
        old_start = self.starts[self.shead] if self.shead < len(self.starts) else self.total_rows
        self.shead = min(self.shead + gone, len(self.starts))
        new_start = self.starts[self.shead] if self.shead < len(self.starts) else self.total_rows
        if self.shead > 4096 and self.shead * 2 > len(self.starts):
            del self.starts[: self.shead]
            self.shead = 0
        return new_start - old_start


class _LogLines(ScrollView, can_focus=True, inherit_bindings=False):
    """The scrolling lines of a `LogPane` (its private part: the line API, drawn lazily)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Up", show=False, id="log_pane.scroll_up"),
        Binding("down,j", "scroll_down", "Down", show=False, id="log_pane.scroll_down"),
        Binding("left", "scroll_left", "Left", show=False, id="log_pane.scroll_left"),
        Binding("right", "scroll_right", "Right", show=False, id="log_pane.scroll_right"),
        Binding("home,g", "scroll_home", "Top", show=False, id="log_pane.top"),
        Binding("pageup", "page_up", "Page up", show=False, id="log_pane.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="log_pane.page_down"),
    ]
    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-pane--timestamp",
        "log-pane--stderr",
        "log-pane--match",
        "log-pane--cursor",
        *(f"log-pane--source-{i}" for i in range(_SOURCE_COLOURS)),
        *(f"log-pane--{kind}" for kind in _KINDS),
    }

    def __init__(self, pane: LogPane) -> None:
        super().__init__(id="log-lines")
        self.pane = pane
        self._cache: LRUCache[tuple[int, int, bool], list[Strip]] = LRUCache(256)
        self._adjusting = 0
        self._base_style: Style | None = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._base_style = None

    @property
    def base_style(self) -> Style:
        """The widget's own Rich style (computed once per style change, not once per row)."""
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def text_width(self) -> int:
        """Columns available to a line."""
        return max(1, self.scrollable_content_region.width)

    def set_scroll_y(self, y: float) -> None:
        """Scroll without it counting as the user scrolling."""
        self._adjusting += 1
        try:
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        finally:
            self._adjusting -= 1

    def to_end(self) -> None:
        self._adjusting += 1
        try:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        finally:
            self._adjusting -= 1

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting:
            return
        if new_value < old_value and new_value < self.max_scroll_y:
            self.pane.following = False
        elif new_value > old_value and new_value >= self.max_scroll_y:
            self.pane.following = True

    def on_resize(self, event: Resize) -> None:
        self.pane.lines_resized()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        style = self.base_style
        rows = self.pane.shown_rows
        row = scroll_y + y
        if row >= rows.rows or row < 0:
            return Strip.blank(width, style)
        index, sub = rows.locate(row)
        if not 0 <= index < len(rows):
            return Strip.blank(width, style)
        self.pane.line_drawn(rows.ordinal(index))
        seq = rows.seq(index)
        line = self.pane.buffer.get(seq)
        if line is None:
            return Strip.blank(width, style)
        strips = self._strips(seq, line)
        strip = strips[sub] if sub < len(strips) else Strip.blank(width, style)
        if self.pane.wrap:
            return strip.extend_cell_length(width, style)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _strips(self, seq: int, line: LogLine) -> list[Strip]:
        pane = self.pane
        cursor = seq == pane.cursor_seq
        key = (seq, pane.render_generation, cursor)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if cursor or line.sgr or pane.search_pattern is not None:
            text = self._rich_line(line, cursor)
            length = _cells(text.plain)
            strip = Strip(_chunked(text.render(self.app.console)), length)
        else:
            # The common line (no colours, no match) needs no Rich Text: its segments are its
            # prefixes and its text, each in one style.
            segments = self._segments(line)
            length = sum(_cells(segment.text) for segment in segments)
            strip = Strip(_chunked(segments), length)
        if pane.wrap and length > self.text_width:
            width = self.text_width
            cuts = [*range(width, length, width), length]
            strips = list(strip.divide(cuts))
        else:
            strips = [strip]
        self._cache[key] = strips
        return strips

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name)

    def _segments(self, line: LogLine) -> list[Segment]:
        """A plain line's segments, as `_rich_line` would render them."""
        pane = self.pane
        out: list[Segment] = []
        if pane.show_timestamps:
            out.append(Segment(format_timestamp(line.ts) + " ", self._style("log-pane--timestamp")))
        if pane.show_source:
            label, colour = pane.source_label(line.source)
            out.append(
                Segment(
                    f"{label:<{pane.source_width}} \u2502 ",
                    self._style(f"log-pane--source-{colour % _SOURCE_COLOURS}"),
                )
            )
        if line.kind:
            style: Style | None = self._style(f"log-pane--{line.kind}")
        elif line.stream == 2:
            style = self._style("log-pane--stderr")
        else:
            style = _NO_STYLE if out else None  # what Rich's Text gives, to the letter
        text = _shown(line.text)
        if "\t" in text:
            text = text.expandtabs(8)
        if text or not out:
            out.append(Segment(text, style))
        return out

    def _rich_line(self, line: LogLine, cursor: bool) -> Text:
        pane = self.pane
        out = Text(no_wrap=True, end="")
        if pane.show_timestamps:
            out.append(format_timestamp(line.ts) + " ", self._style("log-pane--timestamp"))
        if pane.show_source:
            label, colour = pane.source_label(line.source)
            out.append(
                f"{label:<{pane.source_width}} \u2502 ",
                self._style(f"log-pane--source-{colour % _SOURCE_COLOURS}"),
            )
        text = _shown(line.text)
        drawn = min(len(line.text), DISPLAY_CHARS)
        sgr = [change for change in line.sgr[:MAX_DRAWN_SGR] if change[0] <= drawn]
        spans: list[tuple[int, int]] = []
        pattern = pane.search_pattern
        if pattern is not None:
            found = itertools.islice(pattern.finditer(line.text, 0, drawn), MAX_HIGHLIGHTS)
            spans = [m.span() for m in found if m.end() > m.start()]
        if "\t" in text:
            moved = _after_tabs(text, [offset for offset, _ in sgr])
            sgr = [(at, params) for at, (_, params) in zip(moved, sgr, strict=True)]
            ends = _after_tabs(text, [end for span in spans for end in span])
            spans = list(zip(ends[::2], ends[1::2], strict=True))
            text = text.expandtabs(8)
        if sgr:
            body = AnsiDecoder().decode_line(to_ansi(text, tuple(sgr)))
            body.end = ""
        else:
            body = Text(text, end="")
        if line.kind:
            body.stylize_before(self._style(f"log-pane--{line.kind}"))
        elif line.stream == 2:
            body.stylize_before(self._style("log-pane--stderr"))
        if spans:
            match_style = self._style("log-pane--match")
            for start, end in spans:
                body.stylize(match_style, start, end)
        out.append_text(body)
        if cursor:
            out.stylize(self._style("log-pane--cursor"))
        return out


class LogPane(Widget):
    """A container's logs: live, searchable, filterable, with AI-aware highlights.

    Feed it with `add_batch` (UI thread) or `post_batch` (any thread, e.g. a follower's
    `on_batch`). It follows new lines until the user scrolls up, then counts what arrived;
    `f` or End resume. It posts `ExportRequested`, `PresetChanged` and `ReplicasToggled` for
    the app to act on.
    """

    DEFAULT_CSS = """
    LogPane {
        height: 1fr;
        border: round $panel;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        &:focus-within {
            border: round $accent;
        }
        #log-search {
            dock: top;
            display: none;
            height: 1;
            border: none;
            padding: 0 1;
            background: $boost;
        }
        &.-searching #log-search {
            display: block;
        }
        #log-lines {
            height: 1fr;
            background: $surface;
        }
        #log-status {
            dock: bottom;
            height: 1;
            padding: 0 1;
            background: $panel;
            color: $text-muted;
        }
        #log-status.-paused {
            color: $warning;
        }
        #log-status.-error {
            color: $error;
            text-style: bold;
        }
        .log-pane--timestamp { color: $text-muted; }
        .log-pane--stderr { color: $text; }
        .log-pane--match { background: $warning 60%; color: $text; }
        .log-pane--cursor { text-style: reverse; }
        /* The themes' text colours: readable on the background ($secondary was dark blue on
           near-black, 1.9:1), and six hues a replica's name is told by. */
        .log-pane--source-0 { color: $text-primary; text-style: bold; }
        .log-pane--source-1 { color: $text-success; text-style: bold; }
        .log-pane--source-2 { color: $text-accent; text-style: bold; }
        .log-pane--source-3 { color: $text-secondary; text-style: bold; }
        .log-pane--source-4 { color: $text-error; text-style: bold; }
        .log-pane--source-5 { color: $foreground; text-style: bold; }
        .log-pane--cuda-oom { color: $error; text-style: bold; }
        .log-pane--nccl { color: $error; text-style: bold; }
        .log-pane--oom-killed { background: $error 40%; color: $text; text-style: bold; }
        .log-pane--traceback { color: $warning; }
        .log-pane--model-load { color: $success; }
        .log-pane--model-ready { color: $success; text-style: bold; }
        .log-pane--error { color: $error; }
        .log-pane--restart { background: $primary 40%; color: $text; text-style: bold; }
        .log-pane--exited { background: $warning 40%; color: $text; text-style: bold; }
        .log-pane--notice { color: $text-muted; text-style: italic; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f,end", "follow", "Follow", id="log_pane.follow"),
        Binding("slash", "search", "Search", id="log_pane.search"),
        Binding("n", "next_match", "Next match", id="log_pane.next_match"),
        Binding("N", "previous_match", "Prev match", id="log_pane.previous_match"),
        Binding("ampersand", "cycle_filter", "Filter", id="log_pane.filter"),
        Binding("ctrl+r", "toggle_regex", "Regex", show=False, id="log_pane.regex"),
        Binding("ctrl+t", "toggle_case", "Case", show=False, id="log_pane.case"),
        Binding("e", "next_highlight", "Next event", id="log_pane.next_highlight"),
        Binding("E", "previous_highlight", "Prev event", show=False, id="log_pane.prev_highlight"),
        Binding("t", "toggle_timestamps", "Timestamps", id="log_pane.timestamps"),
        Binding("w", "toggle_wrap", "Wrap", id="log_pane.wrap"),
        Binding("z", "toggle_fullscreen", "Full screen", id="log_pane.fullscreen"),
        Binding("p", "cycle_preset", "History", id="log_pane.preset"),
        Binding("a", "toggle_replicas", "All replicas", id="log_pane.replicas"),
        Binding("x", "export('view')", "Export", id="log_pane.export"),
        Binding("X", "export('all')", "Export all", show=False, id="log_pane.export_all"),
        Binding("escape", "escape", "Close search", show=False, id="log_pane.escape"),
    ]
    ALLOW_MAXIMIZE = True

    following: reactive[bool] = reactive(True)
    """Whether new lines scroll into view; scrolling up pauses, `f` or End resume."""
    show_timestamps: reactive[bool] = reactive(False)
    """Whether each line starts with its engine timestamp (UTC)."""
    wrap: reactive[bool] = reactive(False)
    """Whether long lines wrap instead of scrolling sideways."""
    show_source: reactive[bool] = reactive(False)
    """Whether each line starts with its container (replica) name."""
    replicas: reactive[bool] = reactive(False)
    """Whether the pane shows every replica of the service (the app acts on the change)."""
    filter_mode: reactive[FilterMode] = reactive[FilterMode]("off")
    """"off" shows every line, "match" only lines matching the search, "exclude" the others."""
    regex: reactive[bool] = reactive(False)
    """Whether the search is a regular expression (else plain text)."""
    case_sensitive: reactive[bool] = reactive(False)
    """Whether the search tells upper from lower case."""
    preset_key: reactive[str] = reactive("tail")
    """The history preset in use (a `tui.fleet.logs.PRESETS` key)."""
    new_lines: reactive[int] = reactive(0)
    """Lines that arrived while paused."""

    class LinesArrived(Message):
        """A batch on its way to the pane (what `post_batch` sends; handled by the pane)."""

        def __init__(self, batch: LogBatch) -> None:
            super().__init__()
            self.batch = batch

    class ExportRequested(Message):
        """The user asked to save lines to a file; the app writes them (`export_lines`)."""

        def __init__(
            self,
            pane: LogPane,
            lines: tuple[LogLine, ...],
            scope: ExportScope,
            *,
            timestamps: bool,
            source: bool,
            name: str,
        ) -> None:
            super().__init__()
            self.pane = pane
            self.lines = lines
            """The lines, taken when the key was pressed."""
            self.scope = scope
            """"view": the lines the pane shows (filter applied); "all": every retained line."""
            self.timestamps = timestamps
            self.source = source
            self.name = name
            """What the logs are of (for the file name)."""

        @property
        def control(self) -> LogPane:
            """The pane that sent it."""
            return self.pane

    class PresetChanged(Message):
        """The user picked another history preset; the app reopens the stream with it."""

        def __init__(self, pane: LogPane, preset: LogPreset) -> None:
            super().__init__()
            self.pane = pane
            self.preset = preset

        @property
        def control(self) -> LogPane:
            """The pane that sent it."""
            return self.pane

    class ReplicasToggled(Message):
        """The user asked for all replicas of the service (or back to one container)."""

        def __init__(self, pane: LogPane, enabled: bool) -> None:
            super().__init__()
            self.pane = pane
            self.enabled = enabled

        @property
        def control(self) -> LogPane:
            """The pane that sent it."""
            return self.pane

    def __init__(
        self,
        *,
        title: str = "",
        max_lines: int = DEFAULT_MAX_LINES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        tail: int = DEFAULT_TAIL,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """A log pane.

        Args:
            title: What the logs are of (a container or service name).
            max_lines: Most lines retained.
            max_bytes: Most bytes (estimated) retained.
            tail: Lines of the "last N lines" preset.
            name: The name of the widget.
            id: The ID of the widget in the DOM.
            classes: The CSS classes of the widget.
            disabled: Whether the widget is disabled.
        """
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._title = _plain(title)
        self._tail = tail
        self._buffer = LogBuffer(max_lines, max_bytes)
        self._rows = _Rows(self._buffer)
        self._session: int | None = None
        self._query = LogQuery()
        self._pattern: re.Pattern[str] | None = None
        self._query_error = ""
        self._matches: list[int] = []
        self._match_head = 0
        self._cursor_seq: int | None = None
        self._render_gen = 0
        self._sources: dict[str, tuple[str, int]] = {}
        """Each source's safe label and colour number."""
        self._source_width = 0
        self._drawn_hi = -1
        self._max_cells = 0
        self._text_width = 0
        self.skipped_lines = 0
        """Lines that went past while following without ever being drawn."""
        self.dropped_lines = 0
        """Lines dropped before reaching the pane (the follower's backpressure)."""
        self._status_text = ""
        self._lines = _LogLines(self)

    # --- composition and public API -----------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._lines
        yield Input(
            placeholder="search (Enter: find, Esc: close, ctrl+r: regex, ctrl+t: case)",
            id="log-search",
            disabled=True,
        )
        yield Static(id="log-status")

    def on_mount(self) -> None:
        self._update_title()
        self._update_status()

    def focus(self, scroll_visible: bool = True) -> LogPane:
        """Focus the lines (the pane itself takes no focus)."""
        self._lines.focus(scroll_visible)
        return self

    @property
    def buffer(self) -> LogBuffer:
        """The retained lines (read them on the UI thread only)."""
        return self._buffer

    # --- what the lines widget draws (read on every frame, on the UI thread) ----------------

    @property
    def shown_rows(self) -> _Rows:
        """The lines shown (all, or those the filter keeps) and the screen rows each takes."""
        return self._rows

    @property
    def cursor_seq(self) -> int | None:
        """The line the search cursor is on (drawn highlighted); None for none."""
        return self._cursor_seq

    @property
    def render_generation(self) -> int:
        """Bumped whenever every line must be drawn anew (a toggle, a new search)."""
        return self._render_gen

    @property
    def search_pattern(self) -> re.Pattern[str] | None:
        """The compiled search whose matches are highlighted; None without a search."""
        return self._pattern

    @property
    def source_width(self) -> int:
        """Cells of the widest source label (the column before each line's text)."""
        return self._source_width

    def source_label(self, source: str) -> tuple[str, int]:
        """A source's safe label and colour number (("", 0) for one not seen)."""
        return self._sources.get(source, ("", 0))

    def lines_resized(self) -> None:
        """The lines widget changed size: rewrap, or stay at the end while following."""
        self._resized()

    def line_drawn(self, ordinal: int) -> None:
        """The lines widget drew the line at this place (counts lines that went past unseen)."""
        self._drawn(ordinal)

    @property
    def line_count(self) -> int:
        """Lines retained."""
        return len(self._buffer)

    @property
    def view_count(self) -> int:
        """Lines shown (what the filter keeps)."""
        return len(self._rows)

    @property
    def match_count(self) -> int:
        """Retained lines matching the search."""
        return len(self._matches) - self._match_head

    @property
    def search_error(self) -> str:
        """Why the search cannot be used ("" when it can)."""
        return self._query_error

    @property
    def search_query(self) -> LogQuery:
        """The search in effect (not `query`: that is `DOMNode.query()`, which Textual's
        text selection calls)."""
        return self._query

    @property
    def session(self) -> int | None:
        """The follower session whose batches are accepted (None: any)."""
        return self._session

    @property
    def preset(self) -> LogPreset:
        """The history preset in use."""
        return preset_by_key(self.preset_key, self._tail)

    def start_session(
        self, session: int | None, *, title: str | None = None, show_source: bool | None = None
    ) -> None:
        """Start over for a new stream: clear the lines, accept only `session`'s batches."""
        self._session = session
        if title is not None:
            self._title = _plain(title)
        if show_source is not None:
            self.show_source = show_source
        self.clear()
        self.following = True

    def clear(self) -> None:
        """Forget every line (settings and the search stay)."""
        self._buffer.clear()
        self._matches = []
        self._match_head = 0
        self._cursor_seq = None
        self._sources = {}
        self._source_width = 0
        self.skipped_lines = 0
        self.dropped_lines = 0
        self.new_lines = 0
        self._rebuild()
        self._update_title()

    def post_batch(self, batch: LogBatch) -> None:
        """Hand a batch over from any thread (use as a follower's `on_batch`)."""
        if not self.post_message(self.LinesArrived(batch)):
            batch.consumed()

    @on(LinesArrived)
    def _on_lines_arrived(self, message: LinesArrived) -> None:
        message.stop()
        self.add_batch(message.batch)

    def add_batch(self, batch: LogBatch) -> bool:
        """Take a follower's batch in (UI thread); False when it is of a replaced session."""
        try:
            if self._session is not None and batch.session != self._session:
                return False
            self.dropped_lines += batch.dropped
            self.add_lines(batch.lines)
            return True
        finally:
            batch.consumed()

    def add_lines(self, lines: Iterable[LogLine]) -> None:
        """Append lines (UI thread): they are retained, searched, filtered and shown.

        Lines are kept in time order: one older than lines already shown (within the last
        `REORDER_LINES`) goes back to its place, as a restart's boundary must go after the
        lines of the run before it whichever came first."""
        new = list(lines)
        if not new:
            return
        buffer = self._buffer
        if len(buffer) and min(line.ts for line in new) < buffer[-1].ts:
            self._insert_late(new)
            return
        rows = self._rows
        first_new = buffer.end_seq
        buffer.extend(new)
        skip = max(0, buffer.first_seq - first_new)
        kept = new[skip:] if skip else new
        sources = {line.source for line in kept}
        width_changed = not sources.issubset(self._sources)
        if width_changed:
            for source in sorted(sources.difference(self._sources)):
                self._add_source(source)
        pattern = self._pattern
        mode = self.filter_mode if pattern is not None else "off"
        wrap = rows.starts is not None
        if pattern is None and not wrap:
            added = len(kept)  # every line shows on one row: nothing to index
        else:
            added = 0
            search = pattern.search if pattern is not None else None
            matches = self._matches
            for offset in range(skip, len(new)):
                line = new[offset]
                seq = first_new + offset
                matched = search is not None and search(line.text) is not None
                if matched:
                    matches.append(seq)
                if (mode == "match" and not matched) or (mode == "exclude" and matched):
                    continue
                rows.append(seq, self._height(line) if wrap else 1)
                added += 1
        self._measure(kept)
        removed_rows = rows.evict()
        self._evict_matches()
        if width_changed and (self.show_source and wrap):
            self._rebuild()
            removed_rows = 0
        self._update_virtual_size()
        if self.following:
            self._lines.to_end()
        else:
            if removed_rows:
                self._lines.set_scroll_y(max(0, self._lines.scroll_y - removed_rows))
            self.new_lines += added
        self._lines.refresh()
        self._update_status()

    def _insert_late(self, new: list[LogLine]) -> None:
        """`add_lines` of lines some older than the newest shown: merged in by time."""
        buffer = self._buffer
        oldest = min(line.ts for line in new)
        start = max(buffer.first_seq, buffer.end_seq - REORDER_LINES)
        seq = buffer.end_seq
        while seq > start and buffer[seq - 1 - buffer.first_seq].ts > oldest:
            seq -= 1
        # Stable: of lines with one time, those shown stay first.
        merged = sorted([*buffer.take_from(seq), *new], key=_by_time)
        buffer.extend(merged)
        for source in sorted({line.source for line in new}.difference(self._sources)):
            self._add_source(source)
        pattern = self._pattern
        matches = self._matches
        del matches[bisect.bisect_left(matches, seq, self._match_head) :]
        if pattern is not None:
            search = pattern.search
            first = buffer.first_seq
            for at in range(max(seq, first), buffer.end_seq):
                if search(buffer[at - first].text) is not None:
                    matches.append(at)
        self._evict_matches()
        if self._cursor_seq is not None and self._cursor_seq >= seq:
            self._cursor_seq = None
        if not self.following:
            self.new_lines += len(new)
        self._rebuild()

    def set_query(
        self,
        pattern: str,
        *,
        regex: bool | None = None,
        case_sensitive: bool | None = None,
    ) -> bool:
        """Search for `pattern` (plain text or regex); False, with `search_error`, if invalid."""
        if regex is not None:
            self.set_reactive(LogPane.regex, regex)
        if case_sensitive is not None:
            self.set_reactive(LogPane.case_sensitive, case_sensitive)
        query = LogQuery(pattern, self.regex, self.case_sensitive)
        try:
            compiled = query.compile()
        except InvalidQuery as exc:
            self._query_error = str(exc)
            self._update_status()
            return False
        self._query_error = ""
        self._query = query
        self._pattern = compiled
        self._cursor_seq = None
        self._matches = []
        self._match_head = 0
        if compiled is not None:
            search = compiled.search
            first = self._buffer.first_seq
            self._matches = [
                first + i for i, text in enumerate(self._buffer.texts()) if search(text) is not None
            ]
        self._rebuild()
        return True

    def next_match(self, direction: int = 1) -> bool:
        """Move to the next (1) or previous (-1) matching line; False when there is none."""
        matches = self._matches
        if self.match_count == 0:
            return False
        origin = self._origin_seq()
        if direction > 0:
            pos = bisect.bisect_right(matches, origin, self._match_head)
            candidates = [*range(pos, len(matches)), *range(self._match_head, pos)]
        else:
            pos = bisect.bisect_left(matches, origin, self._match_head)
            candidates = [*range(pos - 1, self._match_head - 1, -1)]
            candidates += range(len(matches) - 1, pos - 1, -1)
        for i in candidates:
            if self._rows.index_of(matches[i]) is not None:
                self._go_to(matches[i])
                return True
        return False

    def next_highlight(self, direction: int = 1) -> bool:
        """Move to the start of the next (1) or previous (-1) highlighted event."""
        buffer = self._buffer
        if not len(buffer):
            return False
        origin = self._origin_seq()
        first, end = buffer.first_seq, buffer.end_seq
        order = range(origin + 1, end) if direction > 0 else range(origin - 1, first - 1, -1)
        wrapped = range(first, origin + 1) if direction > 0 else range(end - 1, origin - 1, -1)
        for seq in itertools.chain(order, wrapped):
            line = buffer.get(seq)
            if line is None or line.kind not in JUMP_KINDS:
                continue
            before = buffer.get(seq - 1)
            if before is not None and before.kind == line.kind and line.kind != LineKind.RESTART:
                continue
            if self._rows.index_of(seq) is None:
                continue
            self._go_to(seq)
            return True
        return False

    # --- actions --------------------------------------------------------------------------

    def action_follow(self) -> None:
        """Resume following the newest lines."""
        self._cursor_seq = None
        self._bump()
        self.following = True

    def action_search(self) -> None:
        """Open the search field."""
        search = self.query_one("#log-search", Input)
        self.add_class("-searching")
        search.disabled = False
        search.value = self._query.pattern
        search.focus()

    def action_escape(self) -> None:
        """Close the search field, else clear the search; otherwise let the key through."""
        if self.has_class("-searching"):
            self._close_search()
        elif self._query.pattern or self.filter_mode != "off":
            self.filter_mode = "off"
            self.set_query("")
        else:
            raise SkipAction()

    def action_next_match(self) -> None:
        """Jump to the next match."""
        self.next_match(1)

    def action_previous_match(self) -> None:
        """Jump to the previous match."""
        self.next_match(-1)

    def action_cycle_filter(self) -> None:
        """Show all lines, only matching lines, or only the others."""
        self.filter_mode = _FILTER_CYCLE[self.filter_mode]

    def action_toggle_regex(self) -> None:
        """Search with a regular expression or plain text."""
        self.regex = not self.regex

    def action_toggle_case(self) -> None:
        """Tell upper from lower case in the search, or not."""
        self.case_sensitive = not self.case_sensitive

    def action_next_highlight(self) -> None:
        """Jump to the next highlighted event (OOM, NCCL, traceback, restart, ...)."""
        self.next_highlight(1)

    def action_previous_highlight(self) -> None:
        """Jump to the previous highlighted event."""
        self.next_highlight(-1)

    def action_toggle_timestamps(self) -> None:
        """Show or hide timestamps."""
        self.show_timestamps = not self.show_timestamps

    def action_toggle_wrap(self) -> None:
        """Wrap long lines or scroll sideways."""
        self.wrap = not self.wrap

    def action_toggle_fullscreen(self) -> None:
        """Fill the screen with the pane, or go back."""
        screen = self.screen
        if screen.maximized is self:
            screen.minimize()
        else:
            screen.maximize(self, container=False)

    def action_cycle_preset(self) -> None:
        """Pick the next history preset (the app reopens the stream)."""
        keys = [p.key for p in PRESETS]
        pos = keys.index(self.preset_key) if self.preset_key in keys else -1
        self.preset_key = keys[(pos + 1) % len(keys)]

    def action_toggle_replicas(self) -> None:
        """Show every replica of the service, or only the selected container."""
        self.replicas = not self.replicas

    def action_export(self, scope: ExportScope = "view") -> None:
        """Ask the app to save the shown lines ("view") or every retained line ("all")."""
        if scope == "all":
            lines = self._buffer.snapshot()
        else:
            get = self._buffer.get
            rows = self._rows
            lines = tuple(line for i in range(len(rows)) if (line := get(rows.seq(i))))
        self.post_message(
            self.ExportRequested(
                self,
                lines,
                scope,
                timestamps=True,
                source=self.show_source,
                name=self._title or "logs",
            )
        )

    # --- watchers -------------------------------------------------------------------------

    def watch_following(self, following: bool) -> None:
        if following:
            self.new_lines = 0
            self._lines.to_end()
        self._update_status()

    def watch_show_timestamps(self) -> None:
        self._rebuild()

    def watch_wrap(self) -> None:
        self._rebuild()

    def watch_show_source(self) -> None:
        self._rebuild()

    def watch_filter_mode(self) -> None:
        self._rebuild()

    def watch_regex(self) -> None:
        self._requery()

    def watch_case_sensitive(self) -> None:
        self._requery()

    def watch_new_lines(self) -> None:
        self._update_status()

    def watch_preset_key(self, old: str, new: str) -> None:
        if old != new and self.is_mounted:
            self.post_message(self.PresetChanged(self, self.preset))
        self._update_title()

    def watch_replicas(self, old: bool, new: bool) -> None:
        if old != new and self.is_mounted:
            self.post_message(self.ReplicasToggled(self, new))
        self._update_title()

    # --- search field ---------------------------------------------------------------------

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        try:
            LogQuery(event.value, self.regex, self.case_sensitive).compile()
        except InvalidQuery as exc:
            self._query_error = str(exc)
        else:
            self._query_error = ""
        self._update_status()

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.set_query(event.value):
            return
        self._close_search()
        if self._pattern is not None and self.filter_mode == "off":
            self.next_match(1)

    def _close_search(self) -> None:
        self.remove_class("-searching")
        self.query_one("#log-search", Input).disabled = True
        self._query_error = ""  # an invalid pattern typed there was never applied
        self._lines.focus()
        self._update_status()

    # --- internals ------------------------------------------------------------------------

    def _requery(self) -> None:
        search = self.query_one("#log-search", Input) if self.is_mounted else None
        if search is not None and self.has_class("-searching"):
            try:
                LogQuery(search.value, self.regex, self.case_sensitive).compile()
            except InvalidQuery as exc:
                self._query_error = str(exc)
            else:
                self._query_error = ""
        if self._query.pattern:
            self.set_query(self._query.pattern)
        self._update_status()

    def _origin_seq(self) -> int:
        """Where n/N and e/E start: the current match, else the top line on screen."""
        if self._cursor_seq is not None and self._buffer.get(self._cursor_seq) is not None:
            return self._cursor_seq
        rows = self._rows
        if not len(rows):
            return self._buffer.first_seq
        index, _ = rows.locate(int(self._lines.scroll_y))
        index = min(max(index, 0), len(rows) - 1)
        return rows.seq(index) - 1

    def _go_to(self, seq: int) -> None:
        index = self._rows.index_of(seq)
        if index is None:
            return
        self._cursor_seq = seq
        self._bump()
        self.following = False
        view = self._lines
        row = self._rows.row_of(index)
        height = view.scrollable_content_region.height or 1
        view.set_scroll_y(max(0, row - height // 2))
        view.refresh()
        self._update_status()

    def _drawn(self, ordinal: int) -> None:
        hi = self._drawn_hi
        if ordinal > hi:
            if hi >= 0 and ordinal > hi + 1 and self.following:
                self.skipped_lines += ordinal - hi - 1
            self._drawn_hi = ordinal

    def _add_source(self, source: str) -> None:
        label = _plain(source)
        self._sources[source] = (label, len(self._sources))
        self._source_width = max(self._source_width, cell_len(label))
        self._bump()

    def _prefix_width(self) -> int:
        width = _TIMESTAMP_WIDTH if self.show_timestamps else 0
        if self.show_source:
            width += self._source_width + 3
        return width

    def _height(self, line: LogLine) -> int:
        text = _shown(line.text)
        cells = _cells(text.expandtabs(8) if "\t" in text else text)
        return max(1, math.ceil((self._prefix_width() + cells) / self._text_width))

    def _evict_matches(self) -> None:
        first = self._buffer.first_seq
        matches = self._matches
        head = bisect.bisect_left(matches, first, self._match_head)
        if head > 4096 and head * 2 > len(matches):
            del matches[:head]
            head = 0
        self._match_head = head

    def _bump(self) -> None:
        self._render_gen += 1

    def _rebuild(self) -> None:
        """Recompute which lines show on which rows (after a filter, wrap or size change)."""
        self._bump()
        buffer = self._buffer
        rows = _Rows(buffer)
        pattern = self._pattern
        mode = self.filter_mode if pattern is not None else "off"
        if mode != "off":
            first = buffer.first_seq
            matched = set(self._matches[self._match_head :])
            keep = mode == "match"
            rows.seqs = [first + i for i in range(len(buffer)) if ((first + i) in matched) == keep]
        wrap = self.wrap
        if wrap:
            self._text_width = self._lines.text_width if self.is_mounted else 80
            rows.starts = []
            if rows.seqs is None:
                for line in buffer:
                    rows.append(0, self._height(line))
            else:
                get = buffer.get
                for seq in rows.seqs:
                    found = get(seq)
                    rows.starts.append(rows.total_rows)
                    rows.total_rows += self._height(found) if found is not None else 1
        self._rows = rows
        self._drawn_hi = -1
        self._max_cells = 0
        if rows.seqs is None:
            self._measure(buffer)
        else:
            get = buffer.get
            self._measure(kept for seq in rows.seqs[rows.head :] if (kept := get(seq)))
        if not self.is_mounted:
            return
        self._lines.clear_cache()
        self._update_virtual_size()
        if self.following:
            self._lines.to_end()
        elif self._cursor_seq is not None:
            self._go_to(self._cursor_seq)
        self._lines.refresh()
        self._update_status()
        self._update_title()

    def _resized(self) -> None:
        if self.wrap and self._lines.text_width != self._text_width:
            self._rebuild()
        elif self.following:
            self._lines.to_end()

    def _measure(self, lines: Iterable[LogLine]) -> None:
        """Widen the widest-line figure (for sideways scrolling) with these lines."""
        widest = self._max_cells
        for line in lines:
            text = line.text
            size = len(text)
            if size * 2 <= widest:
                continue  # a character takes at most two cells: it cannot be wider
            if size > DISPLAY_CHARS:
                text = _shown(text)
                size = len(text)
            if text.isascii() and "\t" not in text:
                widest = max(widest, size)
            else:
                widest = max(widest, _cells(text.expandtabs(8)))
        self._max_cells = widest

    def _update_virtual_size(self) -> None:
        if not self.is_mounted:
            return
        wrap = self.wrap
        width = self._lines.text_width if wrap else self._prefix_width() + self._max_cells
        self._lines.virtual_size = Size(width, self._rows.rows)

    def _update_title(self) -> None:
        if not self.is_mounted:
            return
        what = self._title or "logs"
        mode = " \u00b7 all replicas" if self.replicas else ""
        self.border_title = Content(f"logs \u00b7 {what}{mode}")
        flags = [self.preset.label]
        if self.show_timestamps:
            flags.append("timestamps")
        if self.wrap:
            flags.append("wrap")
        self.border_subtitle = Content(" \u00b7 ".join(flags))

    def _update_status(self) -> None:
        if not self.is_mounted:
            return
        status = self.query_one("#log-status", Static)
        parts: list[str] = []
        if self.following:
            parts.append("\u25cf following")
        else:
            waiting = f" \u2014 {counted(self.new_lines, 'new line')}" if self.new_lines else ""
            parts.append(f"\u275a\u275a paused{waiting} (f to follow)")
        if self._query_error:
            parts.append(self._query_error)
        elif self._query.pattern:
            kind = "regex" if self._query.regex else "text"
            case = ", case" if self._query.case_sensitive else ""
            found = counted(self.match_count, "matching line")
            position = self._match_position()
            if position is not None:
                found = f"match {position:,} of {self.match_count:,}"
            parts.append(f"/{_plain(self._query.pattern)}/ ({kind}{case}): {found}")
        if self.filter_mode == "match":
            parts.append("filter: matching only")
        elif self.filter_mode == "exclude":
            parts.append("filter: hiding matches")
        parts.append(counted(len(self._buffer), "line"))
        if self.dropped_lines or self._buffer.dropped:
            parts.append(f"{self.dropped_lines + self._buffer.dropped:,} dropped")
        text = "  \u00b7  ".join(parts)
        if text != self._status_text:
            self._status_text = text
            # One row docked at the bottom: its size never depends on the text.
            status.update(Content(text), layout=False)
        status.set_class(bool(self._query_error), "-error")
        status.set_class(not self.following and not self._query_error, "-paused")

    def _match_position(self) -> int | None:
        """1-based position of the current line among the matches, if it is one."""
        if self._cursor_seq is None:
            return None
        pos = bisect.bisect_left(self._matches, self._cursor_seq, self._match_head)
        if pos < len(self._matches) and self._matches[pos] == self._cursor_seq:
            return pos - self._match_head + 1
        return None
