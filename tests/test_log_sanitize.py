"""Container output is hostile: only colours (SGR) may survive the sanitiser.

The corpus (`HOSTILE_OUTPUT` in tests/helpers.py, which the log pane's tests share) holds the
payloads that do harm on a real terminal (title and clipboard writes, hyperlinks, cursor
moves, screen clears, status queries that make the terminal type an answer, device control
strings, 8-bit C1 controls), plus broken UTF-8, NULs, a 2 MB line and seeded random bytes.
What comes out must hold no control character but tab, and its SGR changes must be rebuilt
from digits and semicolons only.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from tests.helpers import FORBIDDEN_TEXT, HOSTILE_OUTPUT
from tui.fleet.logs.export import export_lines
from tui.fleet.logs.splitter import MAX_LINE_BYTES, LineSplitter
from tui.fleet.logs.types import LogLine
from tui.fleet.sanitize import REPLACEMENT, sanitize_line, to_ansi

ESC = b"\x1b"


_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f"  # every C0 and C1 control but tab, and DEL
    # What reorders or hides text without showing itself: the soft hyphen, the Arabic letter
    # mark, zero-width spaces and joiners, direction marks, line and paragraph separators,
    # bidirectional embeddings, overrides and isolates, invisible operators, the byte-order
    # mark, the tag characters.
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\U000e0000-\U000e007f]"
)


def is_safe(text: str) -> bool:
    """True when `text` holds no control character but tab, and nothing that reorders or
    hides text: what the sanitiser promises of every line it hands out."""
    return _UNSAFE.search(text) is None


def _assert_safe(text: str, sgr: tuple[tuple[int, str], ...]) -> None:
    assert is_safe(text), repr(text)
    assert "\x1b" not in text and "\x9b" not in text
    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", text)
    for pos, params in sgr:
        assert 0 <= pos <= len(text)
        assert re.fullmatch(r"[0-9;]+", params), params
    rebuilt = to_ansi(text, sgr)
    # The only escape sequences handed to the ANSI decoder are plain SGR ones.
    assert re.sub(r"\x1b\[[0-9;]+m", "", rebuilt) == text


@pytest.mark.parametrize("name", sorted(HOSTILE_OUTPUT))
def test_hostile_payload_keeps_nothing_but_text_and_sgr(name: str):
    text, sgr = sanitize_line(HOSTILE_OUTPUT[name])
    _assert_safe(text, sgr)
    for forbidden in FORBIDDEN_TEXT:
        assert forbidden not in text, (name, text)
    assert "after" in text  # the visible text around a payload survives


def test_colours_survive_as_sgr_positions():
    text, sgr = sanitize_line(b"ok \x1b[1;31mred\x1b[0m \x1b[38;5;208morange\x1b[m end")
    assert text == "ok red orange end"
    assert sgr == ((3, "1;31"), (6, "0"), (7, "38;5;208"), (13, "0"))


def test_blink_and_conceal_are_dropped_from_sgr():
    text, sgr = sanitize_line(b"\x1b[5;8;32mhidden?")
    assert text == "hidden?"
    assert sgr == ((0, "32"),)


def test_controls_become_replacement_characters_and_tab_stays():
    text, _ = sanitize_line(b"a\tb\x00c\x07d\x7fe")
    assert text == f"a\tb{REPLACEMENT}c{REPLACEMENT}d{REPLACEMENT}e"


def test_invalid_utf8_is_replaced():
    text, _ = sanitize_line(b"caf\xc3\xa9 \xff ok")
    assert text == f"caf\u00e9 {REPLACEMENT} ok"


def test_plain_ascii_takes_the_fast_path_unchanged():
    line = b"2026-01-01 INFO loaded 32 layers in 1.2s"
    assert sanitize_line(line) == (line.decode(), ())


def test_a_two_megabyte_line_is_cut_and_stays_safe():
    rng = random.Random(7)
    payload = bytes(rng.randrange(256) for _ in range(2 * 1024 * 1024)).replace(b"\n", b"x")
    splitter = LineSplitter("big")
    lines = splitter.feed([(1, b"2026-01-01T00:00:00.000000000Z " + payload + b"\n")])
    assert len(lines) == 1
    line = lines[0]
    _assert_safe(line.text, line.sgr)
    assert line.text.endswith(f"[{len(payload) - MAX_LINE_BYTES:,} bytes cut]")
    assert len(line.text) <= MAX_LINE_BYTES + 64


def test_a_long_line_split_by_the_engine_is_joined_then_cut():
    splitter = LineSplitter("big")
    chunk = b"a" * 16 * 1024
    messages = [(1, b"2026-01-01T00:00:00.%09dZ " % i + chunk) for i in range(8)]
    messages.append((1, b"2026-01-01T00:00:01.000000000Z tail\n"))
    lines = splitter.feed(messages)
    assert len(lines) == 1
    assert lines[0].text.startswith("a" * 1000)
    assert lines[0].text.endswith(f"[{8 * len(chunk) + 4 - MAX_LINE_BYTES:,} bytes cut]")
    assert lines[0].ts == 1767225600 * 10**9  # the first fragment's timestamp


def test_carriage_return_progress_shows_what_a_terminal_would():
    splitter = LineSplitter("p")
    raw = b"2026-01-01T00:00:00.000000000Z \rLoading  10%\rLoading  50%\rLoading 100%\x1b[K\r\n"
    (line,) = splitter.feed([(0, raw)])
    assert line.text == "Loading 100%"


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_never_leave_a_control_character(seed: int):
    rng = random.Random(seed)
    alphabet = [*range(256)] + [0x1B] * 40 + [0x9B, 0x9D, 0x90] * 10
    for _ in range(300):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 400)))
        text, sgr = sanitize_line(data.replace(b"\n", b""))
        _assert_safe(text, sgr)


def test_random_sequences_built_from_escape_grammar_stay_safe():
    rng = random.Random(1234)
    pieces = [
        b"\x1b[",
        b"\x1b]",
        b"\x1bP",
        b"\x1b\\",
        b"\x07",
        b"\x9b",
        b"\x9c",
        b"\xc2\x9b",
        b"\xc2\x9d",
        b";",
        b"1",
        b"31",
        b"m",
        b"H",
        b"J",
        b"?",
        b"text",
        b"\x00",
        b"\xff",
        b"\t",
    ]
    for _ in range(2000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30)))
        _assert_safe(*sanitize_line(data))


def test_a_message_of_two_lines_then_one_without_a_newline_splits_in_three():
    # The bulk path counts one newline per message over the whole run: a message holding
    # two lines and one holding none add up to the same count.
    splitter = LineSplitter("x")
    stamp = b"2026-01-01T00:00:00.000000001Z "
    got = splitter.feed([(1, stamp + b"one\ntwo\n"), (1, stamp + b"partial")])
    got += splitter.flush()
    assert [line.text for line in got] == ["one", "two", "partial"]


@pytest.mark.parametrize("seed", range(4))
def test_no_raw_newline_reaches_a_line_or_an_export(seed: int, tmp_path):
    rng = random.Random(seed)
    pieces = [b"plain", b" text", b"\n", b"\n", b"\r", b"\r\n", b"\t", b"\x1b[31m", b"\xc3\xa9"]
    for run in range(200):
        messages = []
        for i in range(rng.randrange(1, 12)):
            body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 6)))
            if rng.random() < 0.7:
                body += b"\n"
            stream = rng.choice((1, 1, 2, 3)) if rng.random() < 0.1 else rng.choice((1, 2))
            stamp = b"2026-01-01T00:00:00.%09dZ " % (run * 100 + i)
            messages.append((stream, body if stream == 3 else stamp + body))
        bulk, single = LineSplitter("x"), LineSplitter("x")
        got = bulk.feed(messages) + bulk.flush()
        want = [line for m in messages for line in single.feed([m])] + single.flush()
        assert got == want, messages
        for line in got:
            assert "\n" not in line.text and "\r" not in line.text, (messages, line)
            _assert_safe(line.text, line.sgr)
        if got:
            result = export_lines(got, tmp_path / f"run-{run}.log", source=True)
            exported = result.path.read_text(encoding="utf-8")
            assert exported.count("\n") == len(got) == result.lines


# --- carriage returns: what a terminal shows ---------------------------------------------

STAMP = b"2026-01-01T00:00:00.000000001Z "


def _one_line(*payloads: bytes) -> LogLine:
    splitter = LineSplitter("p")
    lines = splitter.feed([(1, STAMP + payload) for payload in payloads]) + splitter.flush()
    assert len(lines) == 1, lines
    _assert_safe(lines[0].text, lines[0].sgr)
    return lines[0]


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        (b"hello world\rbye\n", "byelo world"),
        (b"hello world\r\n", "hello world"),
        (b"Loading 100%\rdone\n", "doneing 100%"),
        (b"Loading 100%\r\x1b[Kdone\n", "done"),  # erase in line: the old text is gone
        (b"Loading 100%\rdo\x1b[2Kne\n", "done"),
        (b"a long first line\rshort\r\r\rmid length\n", "mid lengthst line"),
        ("日本語\rab\n".encode(), "ab本語"),
        ("日本語\ra\n".encode(), "a 本語"),  # half a wide character overwritten: blank
        ("e\u0301abc\rX\n".encode(), "Xabc"),  # a combining mark goes with its base
    ],
)
def test_a_line_redrawn_after_carriage_returns_keeps_what_a_terminal_shows(payload, shown):
    assert _one_line(payload).text == shown


def test_an_overwritten_line_keeps_the_colours_of_what_still_shows():
    line = _one_line(b"\x1b[31mred text\x1b[0m tail\rAB\n")
    assert line.text == "ABd text tail"
    assert line.sgr == ((2, "31"), (8, "0"))
    line = _one_line(b"plain text\r\x1b[32mok\n")
    assert line.text == "okain text"
    assert line.sgr == ((0, "32"), (2, "0"))


def test_the_earlier_text_survives_across_partial_messages_and_into_an_export(tmp_path):
    line = _one_line(b"hello world", b"\rbye", b"\n")
    assert line.text == "byelo world"
    result = export_lines([line], tmp_path / "out.log", timestamps=False)
    assert result.path.read_text(encoding="utf-8") == "byelo world\n"


def test_a_progress_bar_longer_than_the_cap_is_not_cut():
    # Redrawn for 200 KiB in 16 KiB partial messages, no newline until the end: only the
    # segments that still show are kept, so the line stays within the cap.
    body = b"".join(b"\rstep %06d of 100000" % i for i in range(10_000))
    chunks = [body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)]
    line = _one_line(*chunks, b" done\n")
    assert line.text == "step 009999 of 100000 done"
    assert "cut" not in line.text


@pytest.mark.parametrize(
    "body",
    [
        b"\r" * MAX_LINE_BYTES,
        b"a\r" * (MAX_LINE_BYTES // 2),
        b"\t\r" * (MAX_LINE_BYTES // 2),
        b"\x1b[31mab\r" * (MAX_LINE_BYTES // 8),
        b"".join(b"%d\r" % i for i in range(20_000))[:MAX_LINE_BYTES],
        b"".join(b"x" * k + b"\r" for k in range(1, 360))[:MAX_LINE_BYTES],
        b"".join(b"x" * k + b"\r" for k in range(360, 0, -1))[:MAX_LINE_BYTES],
    ],
    ids=["crs", "one-char", "tabs", "colours", "distinct", "growing", "shrinking"],
)
def test_overlaying_carriage_returns_costs_milliseconds(body: bytes):
    message = [(1, STAMP + body + b"\n")]

    def split() -> None:
        LineSplitter("p").feed(message)

    best = min(_timed(split) for _ in range(3))
    assert best < 0.1, f"{1000 * best:.1f} ms"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
