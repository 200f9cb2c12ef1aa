"""Log lines built to make the log classifier's patterns backtrack (tests and the benchmark).

Two sources: the corpus `tests/fixtures/hostile_lines.json` (lines aimed at one pattern by
hand), and lines built from every pattern's own words: each alternative's leading literal
text and each keyword of its kind, repeated glued and spaced, half-matched, and followed by
long runs of the characters its quantifiers take. A pattern added to `tui.fleet.logs` gets
the built lines without anyone writing them; the corpus holds what only a person sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tui.fleet.logs import classify
from tui.fleet.logs.splitter import MAX_LINE_BYTES
from tui.fleet.logs.types import LineKind

CORPUS = Path(__file__).resolve().parent / "fixtures" / "hostile_lines.json"
LINE_CAP = MAX_LINE_BYTES
"""How long the built lines are: the longest line the splitter keeps."""
TRACEBACK_RULES = ("traceback-body", "traceback-chain")
"""Rules of the patterns that only run inside a traceback."""
_META = set("\\.^$*+?{}[]()|")


@dataclass(frozen=True)
class HostileLine:
    """One built line and the pattern it aims at."""

    name: str
    rule: str
    """A `LineKind` of `tui.fleet.logs.classify._KIND_RULES`, or one of `TRACEBACK_RULES`."""
    text: str
    expect: str | None = None
    """The kind it must classify as on its own (None: not checked)."""


def patterns() -> list[tuple[str, tuple[str, ...], str]]:
    """Every pattern the classifier runs on log text: (rule, keywords, pattern source)."""
    rules: list[tuple[str, tuple[str, ...], str]] = [
        (kind, tuple(keys), pattern) for kind, keys, pattern in classify._KIND_RULES
    ]
    rules.append(("traceback-body", (), classify._TRACEBACK_BODY.pattern))
    rules.append(("traceback-chain", (), classify._TRACEBACK_CHAIN.pattern))
    return rules


def build(head: str, unit: str, tail: str = "", length: int = LINE_CAP) -> str:
    """`head`, then `unit` repeated, then `tail`: `length` characters at most."""
    room = max(0, length - len(head) - len(tail))
    body = unit * (room // len(unit) + 1) if unit else ""
    return head + body[:room] + tail


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern's source (split at `|` outside groups)."""
    out: list[str] = []
    depth = 0
    in_class = False
    start = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def literal_head(alternative: str) -> str:
    """The literal text an alternative starts with (after anchors), "" if none.

    A leading quantified character counts as the literal: `\\^{1,9}` gives `^`.
    """
    out: list[str] = []
    i = 0
    while i < len(alternative):
        ch = alternative[i]
        if ch == "\\":
            nxt = alternative[i + 1 : i + 2]
            if nxt in ("b", "B", "A") and not out:
                i += 2
                continue
            if not nxt or nxt.isalnum():
                break  # a class (\d, \w, \s) or an anchor: the literal ends
            char, width = nxt, 2
        elif ch == "^" and not out:
            i += 1
            continue
        elif ch in _META:
            break
        else:
            char, width = ch, 1
        if alternative[i + width : i + width + 1] in ("*", "+", "?", "{"):
            # A quantified character is not part of the literal, unless it is all there is
            # (`\^{1,9}`): the lines built from it repeat it anyway.
            if not out:
                out.append(char)
            break
        out.append(char)
        i += width
    return "".join(out)


def _shapes(word: str, key: str) -> Iterator[tuple[str, str, str, str]]:
    """(shape name, head, unit, tail) of the lines built around one word."""
    yield "glued", "", word, ""
    yield "spaced", "", word + " ", ""
    if len(word) > 1:
        # Almost the word, next to a keyword of its kind so the pre-filter lets it through.
        yield "half", "", f"{word[:-1]} {key} ", ""
    yield "word-run", word, "a", ""
    yield "digit-run", word, "7", ""
    yield "dot-run", word, ".", ""
    yield "space-run", word, " ", "x"
    yield "token-run", word, "x_", " ."


def built_lines(length: int = LINE_CAP) -> Iterator[HostileLine]:
    """Lines built from every pattern's literal words and keywords."""
    for rule, keys, pattern in patterns():
        key = keys[0] if keys else ""
        words = dict.fromkeys(
            [w for w in map(literal_head, alternatives(pattern)) if w.strip()]
            + list(keys)
            + [k.upper() for k in keys]
        )
        for word in words:
            for shape, head, unit, tail in _shapes(word, key):
                yield HostileLine(
                    f"{rule}:{word.strip()}:{shape}", rule, build(head, unit, tail, length)
                )


def corpus_lines(length: int = LINE_CAP) -> Iterator[HostileLine]:
    """The hand-made lines of `tests/fixtures/hostile_lines.json`."""
    for entry in json.loads(CORPUS.read_text(encoding="utf-8"))["lines"]:
        yield HostileLine(
            entry["name"],
            entry["rule"],
            build(entry.get("head", ""), entry["unit"], entry.get("tail", ""), length),
            entry.get("expect"),
        )


def all_lines(length: int = LINE_CAP) -> Iterator[HostileLine]:
    """The corpus, then the built lines."""
    yield from corpus_lines(length)
    yield from built_lines(length)


def drawing_payloads(length: int = LINE_CAP) -> list[bytes]:
    """Log payloads that are costly to draw rather than to classify, `length` bytes each:
    wide and combining characters, tabs, a colour change every few characters, ellipses
    (outside the cells Rich measures fast)."""
    units = [
        "\u00e9",
        "\u65e5\u672c",
        "e\u0301",
        "\t\u65e5",
        "\u2026",
        "\t",
        "\x1b[31mred\x1b[0m x\t",
        "\x1b[1;3%dm#",
    ]
    out: list[bytes] = []
    for unit in units:
        if "%d" in unit:
            unit = "".join(unit % (i % 8) for i in range(8))
        data = (unit * (length // len(unit.encode()) + 1)).encode()[:length]
        out.append(data.decode("utf-8", "ignore").encode())  # no character cut in two
    return out


def in_traceback(text: str) -> LineKind:
    """The kind of `text` right after a traceback started (every pattern then runs)."""
    classifier = classify.Classifier()
    classifier.classify("Traceback (most recent call last):", 2)
    return classifier.classify(text, 2)


def best_time(fn: Callable[[], object], runs: int = 5) -> float:
    """The shortest of `runs` timings of `fn()`, in seconds (the least disturbed run)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
