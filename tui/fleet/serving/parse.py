"""A small, filtered parser of the Prometheus text format (0.0.4), for pages from outside.

It keeps only the families it is asked for (by normalised name: `vllm:x` and `vllm_x` are one
name), so that a 265 KB vLLM page with eight data-parallel engines is read in about a
millisecond instead of the tens of milliseconds a full `prometheus_client` parse takes (see
`bench/serving_bench.py`). What it keeps: plain samples (gauges, counters, untyped), and
histograms (cumulative buckets, `_sum`, `_count`), with their labels (escapes `\\\\`, `\\"`,
`\\n` undone) and values (`1.2e+06`, `NaN`, `+Inf`, `-Inf`); timestamps are ignored.

A metrics page is written by someone else and may be hostile: the parser has no regular
expression, looks at every character a bounded number of times, and has hard limits
(`MAX_PAGE_CHARS`, `MAX_LINE_CHARS`, `MAX_LABELS`, `MAX_SAMPLES`). A line it cannot read is
counted and skipped; a page past a limit is cut there and marked truncated. Label values are
returned as the page wrote them: whoever shows one must pass it through `safe_text`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tui.fleet.serving.servers import Shape, normalise

MAX_PAGE_CHARS = 4 * 1024 * 1024
"""Longest page parsed; the scraper refuses longer ones before they get here."""
MAX_LINE_CHARS = 16 * 1024
"""Longest line read (the longest in the fixtures, vLLM's cache_config_info, has 351)."""
MAX_LABELS = 64
"""Most labels on one sample."""
MAX_SAMPLES = 50_000
"""Most samples kept from one page (a DP=8 vLLM page keeps about 600)."""

_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
_HISTOGRAM_TYPES = frozenset({"histogram", "gaugehistogram", "summary"})

LabelKey = tuple[tuple[str, str], ...]
"""A series' labels, sorted, without `le`: the identity of one series of a family."""


@dataclass(slots=True)
class Sample:
    """One plain sample: its labels and value."""

    labels: dict[str, str]
    value: float
    key: LabelKey = ()
    """The labels, sorted: the series' identity."""


@dataclass(slots=True)
class HistogramSeries:
    """One histogram series: cumulative buckets by upper bound, ascending, and sum and count."""

    labels: dict[str, str]
    key: LabelKey = ()
    """The labels (without `le`), sorted: the series' identity."""
    buckets: list[tuple[float, float]] = field(default_factory=list)
    sum: float | None = None
    count: float | None = None


@dataclass(slots=True)
class Family:
    """The kept samples of one family (normalised name)."""

    name: str
    type: str = ""
    """The page's TYPE for it, "" when the page gave none."""
    samples: list[Sample] = field(default_factory=list)
    histograms: dict[LabelKey, HistogramSeries] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    """What was kept from one page."""

    families: dict[str, Family] = field(default_factory=dict)
    lines: int = 0
    """Lines looked at."""
    skipped: int = 0
    """Lines of wanted families that could not be read (too long, malformed)."""
    truncated: bool = False
    """A limit cut the page short: what is here is only its beginning."""

    def family(self, name: str) -> Family | None:
        """A kept family by name, as the server prints it or normalised."""
        return self.families.get(normalise(name))


@functools.lru_cache(maxsize=1024)
def valid_label_name(key: str) -> bool:
    """`[a-zA-Z_][a-zA-Z0-9_]*`, checked without a pattern (and remembered: pages repeat)."""
    return bool(key) and key.isascii() and not key[0].isdigit() and key.replace("_", "a").isalnum()


def parse_labels(line: str, start: int) -> tuple[dict[str, str], int] | None:
    """The labels of `line` from just after its `{`: (labels, index after `}`), or None.

    Linear: each step moves past a key, a quote or an escape with `str.find`; a line without
    a backslash (nearly all) takes the short way, where a value ends at the next quote.
    """
    labels: dict[str, str] = {}
    escapes = line.find("\\", start) >= 0
    i = start
    end = len(line)
    while True:
        while i < end and line[i] in " ,":
            i += 1
        if i >= end:
            return None
        if line[i] == "}":
            return labels, i + 1
        eq = line.find("=", i)
        if eq < 0:
            return None
        opening = eq + 1
        while opening < end and line[opening] == " ":
            opening += 1
        if opening >= end or line[opening] != '"':
            return None
        key = line[i:eq]
        if not valid_label_name(key):
            key = key.strip()
            if not valid_label_name(key):
                return None
        if len(labels) >= MAX_LABELS:
            return None
        if escapes:
            found = _escaped_value(line, opening + 1)
            if found is None:
                return None
            labels[key], i = found
        else:
            quote = line.find('"', opening + 1)
            if quote < 0:
                return None
            labels[key] = line[opening + 1 : quote]
            i = quote + 1


def _escaped_value(line: str, j: int) -> tuple[str, int] | None:
    """A quoted value from index `j` with its escapes undone: (value, index after the quote)."""
    parts: list[str] = []
    while True:
        quote = line.find('"', j)
        if quote < 0:
            return None
        slash = line.find("\\", j, quote)
        if slash < 0:
            parts.append(line[j:quote])
            return "".join(parts), quote + 1
        parts.append(line[j:slash])
        escaped = line[slash + 1 : slash + 2]
        if escaped == "n":
            parts.append("\n")
        elif escaped in ('"', "\\"):
            parts.append(escaped)
        else:
            # An unknown escape stays as written (prometheus_client does the same).
            parts.append("\\" + escaped)
        j = slash + 2


def parse_value(text: str) -> float | None:
    """A sample value (`12`, `1.2e+06`, `NaN`, `+Inf`), or None when it is not a number."""
    if not text or len(text) > 64:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _type_line(line: str) -> tuple[str, str] | None:
    # "# TYPE name type"
    parts = line.split(None, 4)
    if len(parts) == 4 and parts[1] == "TYPE":
        return normalise(parts[2]), parts[3]
    return None


def _read_type(
    line: str, wanted: Mapping[str, Shape] | None
) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """A TYPE line read, and, when its family is not wanted, how its sample lines start."""
    typed = _type_line(line[:MAX_LINE_CHARS])
    if typed is None or wanted is None or typed[0] in wanted:
        return typed, ()
    name = line.split(None, 3)[2]
    parts = ("",) + (_HISTOGRAM_PARTS if typed[1] in _HISTOGRAM_TYPES else ())
    return typed, tuple(f"{name}{part}{end}" for part in parts for end in ("{", " "))


_Prefix = tuple[dict[str, str], LabelKey, float | None]
"""A sample line's part before its value, read: labels (without `le`), their key, `le`."""

EMPTY_LABELS: dict[str, str] = {}
"""The labels of a sample without any (shared: never changed)."""


class ParseCache:
    """What one server's pages repeat from scrape to scrape, read once: names, TYPE lines, and
    each sample line's labels (everything before its value).

    A server prints the same series every time with new values, so a scraper that keeps one
    of these parses its pages in a fraction of the time. Bounded: past `MAX_ENTRIES` distinct
    entries (a page whose labels change every time) it starts again empty. The label dicts it
    hands out are shared between pages: nobody may change them.
    """

    MAX_ENTRIES = 20_000

    def __init__(self) -> None:
        self.wanted: Mapping[str, Shape] | None = None
        self.names: dict[str, tuple[str | None, str]] = {}
        self.types: dict[str, tuple[tuple[str, str] | None, tuple[str, ...]]] = {}
        """A TYPE line -> (normalised name, type), and the line starts of an unwanted family."""
        self.prefixes: dict[str, _Prefix] = {}

    def fit(self, wanted: Mapping[str, Shape] | None) -> None:
        """Make the cache fit a parse for `wanted` (emptied when it was for another, or full)."""
        size = len(self.names) + len(self.types) + len(self.prefixes)
        if self.wanted is not wanted or size > self.MAX_ENTRIES:
            self.wanted = wanted
            self.names = {}
            self.types = {}
            self.prefixes = {}


def parse(
    text: str, wanted: Mapping[str, Shape] | None = None, cache: ParseCache | None = None
) -> Page:
    """Parse a text-format page, keeping the `wanted` families (normalised name -> shape).

    With `wanted` None every family is kept, and a name's `_bucket`, `_sum` and `_count`
    belong to a histogram (or summary) when the page's TYPE line says so. `cache` (one per
    server) remembers what the page repeats between scrapes.
    """
    page = Page()
    if len(text) > MAX_PAGE_CHARS:
        text = text[:MAX_PAGE_CHARS]
        page.truncated = True
    if cache is None:
        cache = ParseCache()
    cache.fit(wanted)
    # Names repeat (one per bucket, and page after page): each is classified once.
    names, type_lines, prefixes = cache.names, cache.types, cache.prefixes
    families = page.families
    types: dict[str, str] = {}
    kept = 0
    lines = text.split("\n")
    page.lines = len(lines)
    # The line starts of the unwanted family being passed over: its samples are skipped with
    # one startswith() each, without reading their names.
    skip: tuple[str, ...] = ()
    for line in lines:
        if not line or (skip and line.startswith(skip)):
            continue
        if line[0] == "#":
            if line.startswith("# TYPE"):
                known_type = type_lines.get(line)
                if known_type is None:
                    known_type = _read_type(line, wanted)
                    if len(line) <= MAX_LINE_CHARS and len(type_lines) < ParseCache.MAX_ENTRIES:
                        type_lines[line] = known_type
                typed, skip = known_type
                if typed is not None and (wanted is None or typed[0] in wanted):
                    types[typed[0]] = typed[1]
            continue
        skip = ()
        # The name ends at the first `{` before the first space, else at that space.
        space = line.find(" ", 0, MAX_LINE_CHARS)
        brace = line.find("{", 0, space if space >= 0 else MAX_LINE_CHARS)
        stop = brace if brace >= 0 else space
        if stop < 0:
            stop = min(len(line), MAX_LINE_CHARS)  # a name and no value: malformed if wanted
        if stop == 0:
            continue
        raw = line[:stop]
        known = names.get(raw)
        if known is None:
            known = _classify(normalise(raw), wanted, types)
            if len(names) < ParseCache.MAX_ENTRIES:
                names[raw] = known
        family_name, part = known
        if family_name is None:
            continue
        if len(line) > MAX_LINE_CHARS:
            page.skipped += 1
            continue
        if kept >= MAX_SAMPLES:
            page.truncated = True
            break
        if brace >= 0:
            # The labels end at the line's last `}` (values cannot hold one; label values
            # may, and the label reader checks that it ends exactly there).
            close = line.rfind("}")
            prefix = line[: close + 1]
            read = prefixes.get(prefix)
            if read is None:
                read = _read_prefix(line, brace, close, part)
                if read is None:
                    page.skipped += 1
                    continue
                if len(prefixes) < ParseCache.MAX_ENTRIES:
                    prefixes[prefix] = read
            rest = close + 1
        else:
            read = (EMPTY_LABELS, (), None)
            rest = stop
        fields = line[rest:].split()
        value = parse_value(fields[0]) if 1 <= len(fields) <= 2 else None
        if value is None:
            page.skipped += 1
            continue
        labels, key, bound = read
        if part == "_bucket" and bound is None:
            page.skipped += 1
            continue
        family = families.get(family_name)
        if family is None:
            family = families[family_name] = Family(family_name, types.get(family_name, ""))
        kept += 1
        if not part:
            family.samples.append(Sample(labels, value, key))
            continue
        series = family.histograms.get(key)
        if series is None:
            series = family.histograms[key] = HistogramSeries(labels, key)
        if bound is not None:
            series.buckets.append((bound, value))
        elif part == "_sum":
            series.sum = value
        else:
            series.count = value
    for family in families.values():
        for series in family.histograms.values():
            series.buckets.sort(key=_bound)
    return page


def _read_prefix(line: str, brace: int, close: int, part: str) -> _Prefix | None:
    """The labels of a sample line whose `{` is at `brace` and last `}` at `close`."""
    if close < brace:
        return None
    parsed = parse_labels(line, brace + 1)
    if parsed is None or parsed[1] != close + 1:
        return None
    labels = parsed[0]
    bound: float | None = None
    if part == "_bucket":
        bound = parse_value(labels.pop("le", ""))
    return labels, tuple(sorted(labels.items())), bound


def _bound(bucket: tuple[float, float]) -> float:
    return bucket[0]


def _classify(
    name: str, wanted: Mapping[str, Shape] | None, types: Mapping[str, str]
) -> tuple[str | None, str]:
    """(family, histogram part) of a normalised sample name; family None: not kept."""
    if wanted is None:
        for part in _HISTOGRAM_PARTS:
            if name.endswith(part):
                base = name[: -len(part)]
                if types.get(base) in _HISTOGRAM_TYPES:
                    return base, part
        return name, ""
    shape = wanted.get(name)
    if shape is not None and shape not in (Shape.HISTOGRAM, Shape.HISTOGRAM_SUM):
        return name, ""
    for part in _HISTOGRAM_PARTS:
        if name.endswith(part):
            base = name[: -len(part)]
            wanted_as = wanted.get(base)
            # Of a histogram read for its sum (TGI's token totals), the buckets are not kept.
            if wanted_as is Shape.HISTOGRAM or (
                wanted_as is Shape.HISTOGRAM_SUM and part != "_bucket"
            ):
                return base, part
    return None, ""


def finite(value: float | None) -> float | None:
    """The value when it is a finite number, else None (NaN and infinities say nothing)."""
    return value if value is not None and math.isfinite(value) else None
