"""`LogPane`: Pilot tests of what a person does with it, and the bytes it writes to a terminal.

The terminal test runs the pane in a real pseudo-terminal (a child process, as `aitop` runs)
with the hostile corpus and seeded random bytes, and reads back every byte the app wrote.
It compares the escape sequences with those of a run on harmless lines: the hostile run may
use only the kinds of sequences Textual itself uses to draw, and none of the payloads.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import math
import os
import random
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult

from tests.helpers import FORBIDDEN_TEXT, HOSTILE_OUTPUT, pilot_wait_for
from tests.hostile_lines import corpus_lines, drawing_payloads
from tui.fleet.logs.splitter import LineSplitter
from tui.fleet.logs.types import LineKind, LogBatch, LogLine
from widgets.log_pane import DISPLAY_CHARS, LogPane

NS = 1_000_000_000
T0 = 1767225600 * NS
ROOT = Path(__file__).resolve().parent.parent


def lines(n: int, start: int = 0, text: str = "line {i}", **kw) -> list[LogLine]:
    return [LogLine(T0 + i * 1000, text.format(i=i), **kw) for i in range(start, start + n)]


class PaneApp(App):
    """A screen with one pane; records the messages the pane posts."""

    def __init__(self, **pane_kw) -> None:
        super().__init__()
        self.pane_kw = pane_kw
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        yield LogPane(title="web-1", id="pane", **self.pane_kw)

    def on_mount(self) -> None:
        self.query_one(LogPane).focus()

    def on_log_pane_export_requested(self, message: LogPane.ExportRequested) -> None:
        self.messages.append(message)

    def on_log_pane_preset_changed(self, message: LogPane.PresetChanged) -> None:
        self.messages.append(message)

    def on_log_pane_replicas_toggled(self, message: LogPane.ReplicasToggled) -> None:
        self.messages.append(message)


def status(app: App) -> str:
    return str(app.query_one("#log-status").render())


def screen_text(pane: LogPane) -> list[str]:
    view = pane.query_one("#log-lines")
    return [view.render_line(y).text for y in range(view.size.height)]


def cursor_line(pane: LogPane) -> LogLine:
    """The line the pane's search cursor is on (there must be one)."""
    assert pane.cursor_seq is not None
    line = pane.buffer.get(pane.cursor_seq)
    assert line is not None
    return line


def following(pane: LogPane) -> bool:
    # A call, not the attribute: mypy would keep the attribute narrowed across the awaits.
    return pane.following


def filter_mode(pane: LogPane) -> str:
    return pane.filter_mode


async def test_hostile_lines_render_as_plain_text():
    app = PaneApp()
    async with app.run_test(size=(120, 70)) as pilot:
        pane = app.query_one(LogPane)
        splitter = LineSplitter("evil")
        messages = [
            (1, b"2026-01-01T00:00:00.%09dZ " % i + payload + b"\n")
            for i, payload in enumerate(HOSTILE_OUTPUT.values())
        ]
        pane.add_lines(splitter.feed(messages))
        await pilot.pause()
        rows = screen_text(pane)
        visible = "\n".join(rows)
        assert visible.count("after") >= len(HOSTILE_OUTPUT) - 1  # the sgr-huge line is cut
        for forbidden in FORBIDDEN_TEXT:
            assert forbidden not in visible
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", visible)
        svg = app.export_screenshot()
        assert "PWNED" not in svg and "evil.example" not in svg


async def test_scrolling_up_pauses_and_counts_new_lines():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(300))
        await pilot.pause()
        assert pane.following and "line 299" in screen_text(pane)[-1]
        await pilot.press("pageup")
        await pilot.pause()
        assert not following(pane)
        top = screen_text(pane)[0]
        pane.add_lines(lines(25, start=300))
        await pilot.pause()
        assert pane.new_lines == 25
        assert "25 new lines" in status(app)
        assert screen_text(pane)[0] == top  # the view stays where the user put it
        await pilot.press("f")
        await pilot.pause()
        assert pane.following and pane.new_lines == 0
        assert "line 324" in screen_text(pane)[-1]
        await pilot.press("up")
        await pilot.pause()
        assert not following(pane)
        await pilot.press("end")
        await pilot.pause()
        assert following(pane)


async def test_a_paused_view_keeps_its_lines_while_old_ones_are_evicted():
    app = PaneApp(max_lines=500)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(500))
        await pilot.pause()
        await pilot.press("pageup", "pageup")
        await pilot.pause()
        top = screen_text(pane)[0]
        pane.add_lines(lines(100, start=500))
        await pilot.pause()
        assert pane.line_count == 500 and pane.buffer.dropped == 100
        assert screen_text(pane)[0] == top


async def test_search_counts_highlights_and_jumps():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(100))
        await pilot.pause()
        await pilot.press("slash", *"line 1", "enter")
        await pilot.pause()
        # line 1, line 10..19, line 100? no: 0..99 -> 1 and 10..19
        assert pane.match_count == 11
        assert "of 11" in status(app)
        first = pane._cursor_seq
        await pilot.press("n")
        await pilot.pause()
        assert pane._cursor_seq == pane.buffer.first_seq + 10 or pane._cursor_seq != first
        await pilot.press("N")
        await pilot.pause()
        assert pane._cursor_seq == first
        assert not pane.following
        # Case: "LINE 1" matches until the search tells case apart.
        await pilot.press("slash", "ctrl+u", *"LINE 1", "enter")
        await pilot.pause()
        assert pane.match_count == 11
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert pane.match_count == 0


async def test_an_invalid_regex_is_an_inline_error():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(20))
        await pilot.press("ctrl+r")
        assert pane.regex
        await pilot.press("slash", *"line (", "enter")
        await pilot.pause()
        assert pane.search_error.startswith("invalid regex")
        assert "invalid regex" in status(app)
        assert app.query_one("#log-status").has_class("-error")
        assert pane.has_class("-searching")  # still open, to fix the pattern
        await pilot.press("backspace", *r"\d+$", "enter")
        await pilot.pause()
        assert pane.search_error == ""
        assert pane.match_count == 20
        assert not pane.has_class("-searching")


async def test_filter_shows_matching_then_other_lines():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(50))
        pane.add_lines(lines(5, start=50, text="error {i}"))
        pane.set_query("error")
        await pilot.press("ampersand")
        await pilot.pause()
        assert pane.filter_mode == "match" and pane.view_count == 5
        assert all("error" in row for row in screen_text(pane) if row.strip())
        pane.add_lines(lines(2, start=55, text="error {i}") + lines(3, start=57))
        assert pane.view_count == 7
        await pilot.press("ampersand")
        await pilot.pause()
        assert filter_mode(pane) == "exclude" and pane.view_count == 53
        await pilot.press("ampersand")
        assert filter_mode(pane) == "off" and pane.view_count == 60
        await pilot.press("escape")  # clears the search
        assert pane.search_query.pattern == "" and pane.match_count == 0


async def test_a_late_line_goes_back_to_its_place_in_time():
    """A boundary that arrives after lines newer than it (issue 16): shown where its time
    puts it, searched and filtered there."""
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(3) + lines(2, start=5, text="error {i}"))
        pane.set_query("error")
        late = LogLine(T0 + 3500, "\u2500\u2500 container exited with code 3 \u2500\u2500")
        late_error = LogLine(T0 + 4000, "error late")
        pane.add_lines([late, late_error])
        await pilot.pause()
        texts = [line.text for line in pane.buffer]
        assert texts == [
            "line 0",
            "line 1",
            "line 2",
            late.text,
            "error late",
            "error 5",
            "error 6",
        ]
        assert pane.match_count == 3
        await pilot.press("ampersand")
        await pilot.pause()
        assert [row.strip() for row in screen_text(pane) if row.strip()] == [
            "error late",
            "error 5",
            "error 6",
        ]


async def test_timestamps_wrap_and_full_screen_toggle():
    app = PaneApp()
    async with app.run_test(size=(80, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines([*lines(3), LogLine(T0 + 9000, "x" * 500)])
        await pilot.pause()
        view = pane.query_one("#log-lines")
        assert view.virtual_size.height == 4
        assert view.virtual_size.width == 500  # the widest line scrolls sideways
        await pilot.press("t")
        await pilot.pause()
        assert screen_text(pane)[0].startswith("2026-01-01T00:00:00.000Z line 0")
        await pilot.press("w")
        await pilot.pause()
        width = view.scrollable_content_region.width
        assert view.virtual_size.height == 3 + math.ceil((25 + 500) / width)
        assert view.virtual_size.width == view.scrollable_content_region.width
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is pane
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None


async def test_highlight_jump_goes_from_event_to_event():
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(LogPane)
        splitter = LineSplitter("vllm")
        raw = [
            b"INFO starting",
            b"Loading checkpoint shards: 100%",
            *[b"INFO step %d" % i for i in range(40)],
            b"Traceback (most recent call last):",
            b'  File "x.py", line 1',
            b"torch.OutOfMemoryError: CUDA out of memory.",
            *[b"INFO more %d" % i for i in range(40)],
            b"NCCL WARN Call to ibv_reg_mr failed",
        ]
        messages = [(2, b"2026-01-01T00:00:00.%09dZ " % i + r + b"\n") for i, r in enumerate(raw)]
        pane.add_lines(splitter.feed(messages))
        await pilot.pause()
        await pilot.press("home")
        kinds = []
        for _ in range(5):
            await pilot.press("e")
            kinds.append(cursor_line(pane).kind)
        assert kinds == [
            LineKind.MODEL_LOAD,
            LineKind.TRACEBACK,
            LineKind.CUDA_OOM,
            LineKind.NCCL,
            LineKind.MODEL_LOAD,  # round again
        ]
        await pilot.press("E")
        assert cursor_line(pane).kind == LineKind.NCCL


async def test_intents_are_posted_as_messages():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(10) + lines(3, start=10, text="error {i}"))
        pane.set_query("error")
        pane.filter_mode = "match"
        await pilot.press("x", "X", "p", "a")
        await pilot.pause()
        export_view, export_all, preset, replicas = app.messages
        assert isinstance(export_view, LogPane.ExportRequested)
        assert isinstance(export_all, LogPane.ExportRequested)
        assert export_view.scope == "view" and len(export_view.lines) == 3
        assert export_all.scope == "all" and len(export_all.lines) == 13
        assert export_view.name == "web-1"
        assert isinstance(preset, LogPane.PresetChanged) and preset.preset.key == "5m"
        assert isinstance(replicas, LogPane.ReplicasToggled) and replicas.enabled
        assert pane.show_source is False  # the app decides, when it restarts the stream


async def test_batches_of_a_replaced_session_are_dropped_and_consumed():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.start_session(2, title="new", show_source=True)
        consumed: list[int] = []
        stale = LogBatch(1, tuple(lines(5)), 0, lambda: consumed.append(1))
        fresh = LogBatch(2, tuple(lines(3, source="web-2")), 7, lambda: consumed.append(2))
        assert pane.add_batch(stale) is False
        # From another thread, as a follower's callback does.
        thread = threading.Thread(target=pane.post_batch, args=(fresh,))
        thread.start()
        thread.join()
        await pilot.pause()
        assert consumed == [1, 2]
        assert pane.line_count == 3 and pane.dropped_lines == 7
        assert screen_text(pane)[0].startswith("web-2 \u2502 line 0")
        assert "7 dropped" in status(app)


async def test_a_flood_counts_lines_never_drawn():
    app = PaneApp(max_lines=20_000)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        for n in range(20):
            pane.add_lines(lines(2000, start=n * 2000))
            await pilot.pause()
        assert pane.line_count == 20_000 and pane.buffer.dropped == 20_000
        assert pane.skipped_lines > 30_000
        assert "line 39999" in screen_text(pane)[-1]


async def test_a_line_redrawn_after_a_carriage_return_shows_and_exports_its_earlier_text():
    app = PaneApp()
    async with app.run_test(size=(80, 10)) as pilot:
        pane = app.query_one(LogPane)
        splitter = LineSplitter("p")
        stamp = b"2026-01-01T00:00:00.000000001Z "
        pane.add_lines(splitter.feed([(1, stamp + b"hello world"), (1, stamp + b"\rbye\n")]))
        await pilot.pause()
        assert screen_text(pane)[0].rstrip() == "byelo world"
        await pilot.press("x")
        await pilot.pause()
        (export,) = app.messages
        assert isinstance(export, LogPane.ExportRequested)
        assert [line.text for line in export.lines] == ["byelo world"]


async def test_a_triple_click_on_the_status_line_selects_without_a_crash():
    """Text selection calls `DOMNode.query()` up the tree: a `LogPane.query` property that
    shadowed it made a triple-click on the status line crash the app."""
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(lines(30))
        pane.set_query("line 2")
        await pilot.pause()
        assert await pilot.click("#log-status", offset=(3, 0), times=3)
        await pilot.pause()
        assert await pilot.click("#log-lines", offset=(3, 2), times=3)
        await pilot.pause()
        assert app.is_running and app._exception is None
        assert pane.search_query.pattern == "line 2"
        assert "matching line" in status(app)
        await pilot.press("f")  # still answering keys
        assert pane.following


async def test_keys_are_answered_while_a_reader_splits_hostile_lines():
    """The reader thread's work (split, sanitise, classify) holds the GIL a little at a time:
    a line that made a pattern backtrack held it for minutes, the event loop waiting."""
    app = PaneApp()
    async with app.run_test(size=(160, 50)) as pilot:
        pane = app.query_one(LogPane)
        payloads = [line.text.encode() for line in corpus_lines()] + drawing_payloads()
        stop = threading.Event()
        split = [0]

        def read() -> None:
            splitter = LineSplitter("hostile")
            n = 0
            while not stop.is_set():
                messages = []
                for _ in range(16):
                    stamp = b"2026-01-01T00:00:00.%09dZ " % n
                    messages.append((1, stamp + payloads[n % len(payloads)] + b"\n"))
                    n += 1
                batch = splitter.feed(messages)
                split[0] += len(batch)
                taken = threading.Event()
                pane.post_batch(LogBatch(0, tuple(batch), 0, taken.set))
                taken.wait(1.0)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        spent: list[float] = []
        try:
            await pilot_wait_for(pilot, lambda: pane.line_count > 0, what="the reader's lines")
            for _ in range(12):
                # As a terminal's input thread does (Pilot's press waits for the process to
                # go idle, which a busy reader never lets it): the key event, then the first
                # screen refresh after the pane took it.
                shown = pane.show_timestamps
                t0 = time.perf_counter()
                app.post_message(events.Key("t", "t"))
                while pane.show_timestamps is shown and time.perf_counter() - t0 < 30:
                    await asyncio.sleep(0.002)
                refreshed = asyncio.Event()
                app.call_after_refresh(refreshed.set)
                await refreshed.wait()
                spent.append(time.perf_counter() - t0)
                await asyncio.sleep(0.1)  # the passing of time: the reader splits between keys
        finally:
            stop.set()
            reader.join(5)
        assert split[0] > len(payloads)  # every hostile line went through meanwhile
        assert pane.line_count > len(payloads)
        # Every key but the slowest (a collection, a busy CI neighbour) within 200 ms; the
        # slowest within a second (a backtracking pattern held the loop for minutes).
        figures = [round(1000 * s) for s in spent]
        assert sorted(spent)[-2] < 0.2 and max(spent) < 1.0, figures


async def test_a_long_line_shows_its_start_and_exports_whole():
    app = PaneApp()
    text = "".join(f"w{i:05d} " for i in range(9000))  # 63,000 characters
    async with app.run_test(size=(200, 40)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines([LogLine(T0, text), *lines(2, start=1)])
        pane.set_query("w08999")  # past what is drawn: still found
        assert pane.match_count == 1
        pane.set_query("")
        await pilot.press("w")  # wrap: every drawn character is on screen
        await pilot.pause()
        assert pane._rows.rows < 60
        await pilot.press("home")
        await pilot.pause()
        rows = "".join(row.rstrip() for row in screen_text(pane) if "line" not in row)
        assert rows.startswith("w00000 w00001")
        assert "w08999" not in rows
        assert f"[... {len(text) - DISPLAY_CHARS:,} more characters]" in rows
        await pilot.press("X")
        await pilot.pause()
        (export,) = app.messages
        assert isinstance(export, LogPane.ExportRequested)
        assert export.lines[0].text == text


async def test_tabs_colours_and_matches_line_up():
    app = PaneApp()
    async with app.run_test(size=(80, 10)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(
            [
                LogLine(T0, "a\tb\tend"),
                LogLine(T0 + 1, "xy\tred\tplain", sgr=((3, "31"), (6, "0"))),
            ]
        )
        await pilot.pause()
        view = pane.query_one("#log-lines")
        assert [view.render_line(y).text.rstrip() for y in (0, 1)] == [
            "a       b       end",
            "xy      red     plain",
        ]
        red = [
            seg.text
            for seg in view.render_line(1)
            if seg.text.strip() and seg.style is not None and seg.style.color
        ]
        assert red == ["red"]
        pane.set_query("b|plain", regex=True)
        await pilot.pause()
        match = app.query_one("#log-lines").get_component_rich_style("log-pane--match")
        found = [
            (y, seg.text)
            for y in (0, 1)
            for seg in view.render_line(y)
            if seg.style and seg.style.bgcolor == match.bgcolor
        ]
        assert found == [(0, "b"), (1, "plain")]
        assert view.render_line(0).text.rstrip() == "a       b       end"


# --- what reaches the terminal ---------------------------------------------------------

PTY_APP = """
import json, sys
from textual.app import App
from widgets.log_pane import LogPane
from tui.fleet.logs.splitter import LineSplitter

payloads = [bytes.fromhex(h) for h in json.load(open(sys.argv[1]))]
mode = sys.argv[2]


class Demo(App):
    def compose(self):
        yield LogPane(title="evil \\x1b]0;PWNED\\x07", id="pane")

    def on_mount(self):
        pane = self.query_one(LogPane)
        if mode == "decorated":
            pane.wrap = True
            pane.show_timestamps = True
            pane.show_source = True
        splitter = LineSplitter("evil\\x1b]0;PWNED\\x07")
        messages = [
            (1 + i % 2, b"2026-01-01T00:00:00.%09dZ " % i + p + b"\\n")
            for i, p in enumerate(payloads)
        ]
        pane.add_lines(splitter.feed(messages))
        pane.set_query("after")
        # The first frame lays the pane out (wrapped lines are rebuilt for the width it got),
        # the second draws them all: leave once it is on the terminal.
        self.call_after_refresh(lambda: self.call_after_refresh(self.exit))


Demo().run()
"""

# Every escape sequence, as terminals parse them (strings end at BEL or ST).
_SEQUENCE = re.compile(
    rb"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    rb"|\x1b[\]PX^_].*?(?:\x07|\x1b\\)"
    rb"|\x1b[\x20-\x2f]*[\x30-\x7e]",
    re.S,
)


def _kind(sequence: bytes) -> bytes:
    """A sequence's kind: CSI by introducer and final byte; private modes and strings whole."""
    if sequence.startswith(b"\x1b[") and sequence[2:3] not in (b"?", b">", b"<", b"="):
        body = sequence[2:]
        if body.endswith(b"m"):
            assert re.fullmatch(rb"[0-9;]*m", body), sequence
        return b"CSI " + re.sub(rb"[0-9;]", b"", body)
    return sequence


def run_in_terminal(tmp_path: Path, payloads: list[bytes], mode: str) -> bytes:
    """Every byte the pane's app writes to a 200x200 pseudo-terminal."""
    script = tmp_path / "pty_app.py"
    script.write_text(PTY_APP)
    data = tmp_path / f"payloads-{mode}-{len(payloads)}.json"
    data.write_text(json.dumps([p.hex() for p in payloads]))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 200, 200, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data), mode],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 0, out[-2000:].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return bytes(out)


def _random_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = [*range(256)] + [0x1B] * 30 + [0x9B, 0x9D, 0x90, 0x07] * 8
    out = []
    for _ in range(count):
        line = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 120)))
        out.append(b"after " + line.replace(b"\n", b" "))
    return out


@pytest.mark.parametrize("mode", ["plain", "decorated"])
def test_only_textuals_own_sequences_reach_the_terminal(tmp_path: Path, mode: str):
    hostile = [*HOSTILE_OUTPUT.values(), *_random_lines(99, 120)]
    benign = [
        b"after \x1b[1;31mbold red\x1b[0m \x1b[38;5;208mcolour\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[m x"
    ] * len(hostile)
    baseline = run_in_terminal(tmp_path, benign, mode)
    written = run_in_terminal(tmp_path, hostile, mode)

    assert written.count(b"after") >= 100  # the lines were drawn
    allowed = {_kind(s) for s in _SEQUENCE.findall(baseline)}
    used = {_kind(s) for s in _SEQUENCE.findall(written)}
    assert used <= allowed, sorted(used - allowed)
    for forbidden in FORBIDDEN_TEXT:
        assert forbidden.encode() not in written
    for payload in (b"\x1b[6n", b"\x1b[2J", b"\x1b]52", b"\x1b]8;", b"\x1bP", b"\x1b_"):
        assert written.count(payload) == baseline.count(payload), payload
    # Outside escape sequences: valid UTF-8 without C0/C1 controls (newlines aside).
    text = _SEQUENCE.sub(b"", written).decode("utf-8")
    assert "\x1b" not in text
    assert not re.search(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)


async def test_replica_name_colours_are_readable_on_the_background():
    """Each replica's name colour in the interleaved log stands out from the background
    (issue 16, item 16: one was dark blue on near-black): 4.5:1 at least, as WCAG asks of
    text, in the default theme."""
    from textual.app import App
    from textual.color import Color

    from widgets.log_pane import LogPane

    def luminance(c: Color) -> float:
        def channel(x: int) -> float:
            v = x / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)

    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LogPane()

    app = PaneApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        lines = app.query_one("#log-lines")  # the pane's lines draw the names
        background = Color.parse(app.theme_variables["background"])
        for n in range(6):
            style = lines.get_component_rich_style(f"log-pane--source-{n}")
            assert style.color is not None and style.color.triplet is not None
            colour = Color(*style.color.triplet)
            high, low = sorted((luminance(colour), luminance(background)), reverse=True)
            assert (high + 0.05) / (low + 0.05) >= 4.5, (n, colour.hex)
