"""The tracker that turns successive scrapes of one model server into its canonical reading.

`types.ServingReading` is the headless layer's immutable snapshot of a container's server:
what kind it is, its state (`loading`, `ready`, `unhealthy`, `metrics-off` with the flag that
turns them on, `unreachable` with why), and its figures, each None where the server does not
say. This module makes it: reading a page through a server's alias table (`extract`), and

`ServingTracker`, which turns successive `Observation`s (what one scrape saw) into readings:

- gauges are read as they are, summed over data-parallel engines and ranks (the KV cache is
  averaged, as vLLM's own log line does);
- counters become rates over a short window (`ServerKind.rate_window_s`);
- histograms become percentiles from the deltas of their cumulative buckets over a rolling
  window (`PERCENTILE_WINDOW_S`), interpolated linearly within a bucket as Prometheus's
  `histogram_quantile` does;
- a counter (or a histogram count) that goes down, or a process start time that moves, means
  the server restarted: the windows start again (no rate is ever negative) and the reading
  says `restarted` for a while;
- a failed scrape keeps the last good reading; after `STALE_AFTER` failures in a row it is
  shown as unreachable, with the old figures marked stale;
- a bounded history (`HISTORY_POINTS`) of tok/s, queue, KV % and TTFT p95 feeds sparklines.

A tracker is used by one thread at a time (the pool runs one scrape per container at once);
its `reading` is replaced, never changed, so any thread may read it.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol, TypeVar

from tui.fleet.detect import model_display_name
from tui.fleet.sanitize import safe_text
from tui.fleet.serving.parse import Family, HistogramSeries, LabelKey, Page, finite
from tui.fleet.serving.servers import (
    RESTART_MARKER,
    Alias,
    Combine,
    Health,
    Reading,
    ServerKind,
    Shape,
    Term,
    Verdict,
)
from tui.fleet.serving.types import (
    HistoryPoint,
    LoadedModel,
    ServingReading,
    ServingState,
    StateName,
)

PERCENTILE_WINDOW_S = 60.0
"""Span of the bucket deltas percentiles are taken from."""
STALE_AFTER = 3
"""Failed scrapes in a row after which the last good reading is shown as stale."""
RESTART_NOTE_S = 60.0
"""How long a reading says the server restarted."""
HISTORY_POINTS = 300
"""Points of history kept: five minutes at the default one-second interval."""
MAX_MODEL_CHARS = 256
"""Longest model name a reading carries."""
MAX_MODELS_NAMED = 8
"""Most distinct model names collected from one page."""
_WINDOW_POINTS = 1024
"""Hard bound on a window's snapshots, whatever the interval."""


# --- what one scrape saw ----------------------------------------------------------------------


class Contact(str, Enum):
    """How talking to the server went."""

    OK = "ok"
    """It answered HTTP (whatever the status)."""
    REFUSED = "refused"
    """Nothing listens on the port."""
    FAILED = "failed"
    """A timeout, a reset, an answer that is not HTTP."""
    NO_ROUTE = "no-route"
    """aitop cannot reach it at all (bound to 127.0.0.1 in its namespace, no address)."""


class MetricsAnswer(str, Enum):
    """What the metrics route gave."""

    PAGE = "page"
    OFF = "off"
    """The server says its metrics are off (SGLang's 404, llama.cpp's 501)."""
    NONE = "none"
    """Not asked: the server has no metrics page (Ollama), or it is not up."""
    FAILED = "failed"
    """An answer that could not be used: too large, never ending, an error status."""


@dataclass(frozen=True)
class Observation:
    """What one scrape of one container's server saw."""

    at: float
    """time.monotonic() when the scrape began."""
    wall: float
    """time.time() at the same moment."""
    kind: ServerKind | None
    """The server as discovered, or as its page said; None: unknown."""
    url: str | None
    contact: Contact
    why: str = ""
    """Why the contact failed (refused, timed out, no route: what to do)."""
    health: Health | None = None
    """The health answer, read; None when health was not asked this time."""
    metrics: MetricsAnswer = MetricsAnswer.NONE
    metrics_why: str = ""
    """For OFF the flag that turns metrics on; for FAILED why."""
    page: Page | None = None
    histograms: bool = True
    """Whether the page was read with its latency histograms (they are read every few
    scrapes): when not, the percentiles stay as the last histograms made them."""
    model: str | None = None
    """The model an info route named (TGI `/info`, llama.cpp `/v1/models`), already safe."""
    loaded_models: tuple[LoadedModel, ...] | None = None


# --- reading a page through a server's alias table --------------------------------------------


@dataclass(frozen=True)
class HistogramSnapshot:
    """A histogram summed over its series: upper bounds (scaled), cumulative counts."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]


SeriesKey = tuple[str, LabelKey]
"""One cumulative series: (normalised family name and part, its labels)."""


@dataclass
class Extract:
    """The figures of one page, through one server's alias table."""

    gauges: dict[Reading, float]
    counters: dict[Reading, float]
    """Totals, scaled."""
    histograms: dict[Reading, HistogramSnapshot]
    series: dict[SeriesKey, float]
    """Every cumulative series' own value (counters, histogram counts), for restart checks."""
    model: str | None
    start_time: float | None


class _Labelled(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...


_S = TypeVar("_S", bound=_Labelled)


def _kept(term: Term, series: Iterable[_S]) -> list[_S]:
    """The series of a term that count, in page order."""
    keep = term.keep
    chosen = list(series) if keep is None else [s for s in series if keep(s.labels)]
    if term.prefer is not None and chosen:
        label, value = term.prefer
        preferred = [s for s in chosen if s.labels.get(label) == value]
        if preferred:
            return preferred
    return chosen


def _series_of(shape: Shape, family: Family) -> Iterable[_Labelled]:
    if shape in (Shape.GAUGE, Shape.COUNTER):
        return family.samples
    return family.histograms.values()


def _source_for(alias: Alias, page: Page) -> tuple[Term, ...] | None:
    """The first source of an alias whose first term has series on the page."""
    for source in alias.sources:
        family = page.families.get(source[0].key)
        if family is not None and _kept(source[0], _series_of(alias.shape, family)):
            return source
    return None


def _scalar_values(term: Term, family: Family) -> list[tuple[SeriesKey, float]]:
    out: list[tuple[SeriesKey, float]] = []
    scale = term.scale
    for sample in _kept(term, family.samples):
        value = sample.value
        if math.isfinite(value):
            out.append(((term.key, sample.key), value * scale))
    return out


def _histogram(
    term_series: list[tuple[Term, Family]], series: dict[SeriesKey, float]
) -> HistogramSnapshot | None:
    """Sum the kept histogram series of the terms (over bounds every series has)."""
    kept: list[tuple[Term, HistogramSeries]] = []
    for term, family in term_series:
        count_key = term.key + "_count"
        for hist in _kept(term, family.histograms.values()):
            if hist.buckets:
                kept.append((term, hist))
                total = hist.count if hist.count is not None else hist.buckets[-1][1]
                series[(count_key, hist.key)] = total
    if not kept:
        return None
    if len(kept) == 1 and kept[0][0].scale == 1.0:
        # One series (no data parallelism): its buckets as they are.
        buckets = [(b, c) for b, c in kept[0][1].buckets if not math.isnan(b)]
        bounds = tuple(b for b, _ in buckets)
        counts = tuple(c for _, c in buckets)
    else:
        sums: dict[float, float] = {}
        seen: dict[float, int] = {}
        for term, hist in kept:
            for bound, count in hist.buckets:
                scaled = bound * term.scale if math.isfinite(bound) else bound
                sums[scaled] = sums.get(scaled, 0.0) + count
                seen[scaled] = seen.get(scaled, 0) + 1
        n = len(kept)
        bounds = tuple(sorted(b for b, c in seen.items() if c == n and not math.isnan(b)))
        counts = tuple(sums[b] for b in bounds)
    if not bounds or not all(math.isfinite(c) for c in counts):
        return None
    return HistogramSnapshot(bounds, counts)


def _histogram_sum(term: Term, family: Family, series: dict[SeriesKey, float]) -> float | None:
    total = 0.0
    found = False
    sum_key = term.key + "_sum"
    for hist in _kept(term, family.histograms.values()):
        value = finite(hist.sum)
        if value is not None:
            found = True
            series[(sum_key, hist.key)] = value
            total += value * term.scale
    return total if found else None


def _page_models(kind: ServerKind, page: Page) -> str | None:
    """The model the page's series name (the kind's model label), made safe, or None."""
    label = kind.model_label
    if label is None:
        return None
    names = _label_values(kind, page, label)
    if not names:
        return None
    if kind.model_prefer is not None and kind.model_prefer in names:
        names = [kind.model_prefer]
    return safe_model_name(", ".join(names))


def _label_values(kind: ServerKind, page: Page, label: str) -> list[str]:
    """Distinct values of a label over the kind's families on the page (a few, page order)."""
    names: list[str] = []
    for alias in kind.aliases.values():
        for source in alias.sources:
            for term in source:
                family = page.families.get(term.key)
                if family is None:
                    continue
                labelled = [s.labels for s in family.samples] + [
                    h.labels for h in family.histograms.values()
                ]
                for labels in labelled:
                    value = labels.get(label)
                    if value and value not in names:
                        names.append(value)
                        if len(names) >= MAX_MODELS_NAMED:
                            return names
    return names


@functools.lru_cache(maxsize=256)
def safe_model_name(name: str) -> str:
    """A model name from a server, fit to show: no credentials, no control characters, short."""
    return safe_text(model_display_name(name), limit=MAX_MODEL_CHARS)


def _combined(values: list[float], combine: Combine) -> float:
    if combine is Combine.MEAN:
        return sum(values) / len(values)
    if combine is Combine.MAX:
        return max(values)
    return sum(values)


def extract(kind: ServerKind, page: Page) -> Extract:
    """The figures a page gives, read through the kind's alias table."""
    out = Extract({}, {}, {}, {}, _page_models(kind, page), None)
    marker = page.families.get(RESTART_MARKER)
    if marker is not None and marker.samples:
        out.start_time = finite(marker.samples[0].value)
    for reading, alias in kind.aliases.items():
        source = _source_for(alias, page)
        if source is None:
            continue
        present = [(t, f) for t in source if (f := page.families.get(t.key)) is not None]
        if alias.shape is Shape.GAUGE:
            values = [v for t, f in present for _, v in _scalar_values(t, f)]
            if values:
                out.gauges[reading] = _combined(values, alias.combine)
        elif alias.shape is Shape.COUNTER:
            pairs = [p for t, f in present for p in _scalar_values(t, f)]
            if pairs:
                out.series.update(pairs)
                out.counters[reading] = sum(v for _, v in pairs)
        elif alias.shape is Shape.HISTOGRAM_SUM:
            sums = [s for t, f in present if (s := _histogram_sum(t, f, out.series)) is not None]
            if sums:
                out.counters[reading] = sum(sums)
        else:
            hist = _histogram(present, out.series)
            if hist is not None:
                out.histograms[reading] = hist
    return out


def quantile(q: float, bounds: tuple[float, ...], counts: tuple[float, ...]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated within its bucket.

    As Prometheus's `histogram_quantile`: the first bucket starts at 0 (when its bound is
    positive); a rank in the `+Inf` bucket answers the highest finite bound; no observations:
    None.
    """
    if not counts:
        return None
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    previous_bound = 0.0
    previous_count = 0.0
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        if count >= rank:
            if math.isinf(bound):
                return bounds[i - 1] if i > 0 and math.isfinite(bounds[i - 1]) else None
            lower = previous_bound if i > 0 or bound > 0 else bound
            in_bucket = count - previous_count
            if in_bucket <= 0:
                return bound
            return lower + (bound - lower) * (rank - previous_count) / in_bucket
        previous_bound, previous_count = bound, count
    return None


# --- the tracker ------------------------------------------------------------------------------


def _went_down(before: tuple[float, ...], after: tuple[float, ...]) -> bool:
    return any(a < b for a, b in zip(after, before, strict=True))


def _count(value: float | None) -> int | None:
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return round(value)


def _seconds(value: float | None) -> float | None:
    return value if value is not None and value >= 0 else None


def _percent(fraction: float | None) -> float | None:
    # A fraction outside 0-1 is nonsense (or a hostile page): say nothing rather than 350 %.
    if fraction is None or not 0.0 <= fraction <= 1.0 + 1e-9:
        return None
    return min(fraction, 1.0) * 100.0


class ServingTracker:
    """Successive observations of one container's server -> its current reading."""

    def __init__(
        self,
        *,
        started_at: float | None = None,
        percentile_window_s: float = PERCENTILE_WINDOW_S,
        stale_after: int = STALE_AFTER,
        history_points: int = HISTORY_POINTS,
    ) -> None:
        self.reading: ServingReading | None = None
        """The latest reading (replaced on every update, never changed)."""
        self._started_at = started_at
        self._percentile_window = percentile_window_s
        self._stale_after = stale_after
        self._history: deque[HistoryPoint] = deque(maxlen=history_points)
        # The worker appends while another thread may copy: under the GIL both are single C
        # calls, the lock keeps it so on a free-threaded Python.
        self._history_lock = threading.Lock()
        self._counters: dict[Reading, deque[tuple[float, float]]] = {}
        self._hists: dict[Reading, deque[tuple[float, HistogramSnapshot]]] = {}
        self._last_percentiles: dict[tuple[Reading, float], float] = {}
        self._series: dict[SeriesKey, float] = {}
        self._start_time: float | None = None
        self._restarted_at: float | None = None
        self._seen_ready = False
        self._last_good: ServingReading | None = None
        self._last_health: Health | None = None
        self._misses = 0
        self._state: StateName | None = None
        self._since: float | None = None
        self._info_model: str | None = None
        self._restarts = 0
        self._pages = 0

    @property
    def settled(self) -> bool:
        """True once the reading says all it will: it is not ready (loading, metrics off,
        unreachable...), or it is and its rates are known (two pages read since the start or
        the last restart; a server without a metrics page needs one answer)."""
        reading = self.reading
        if reading is None:
            return False
        if reading.state.name != "ready" or reading.loaded_models is not None:
            return True
        return self._pages >= 2 or (reading.kind == "unknown" and self._pages >= 1)

    @property
    def restarts(self) -> int:
        """Restarts seen (counters that went down, a start time that moved)."""
        return self._restarts

    def history(self) -> tuple[HistoryPoint, ...]:
        """The recent history, oldest first."""
        with self._history_lock:
            return tuple(self._history)

    # -- the update ----------------------------------------------------------------------------

    def update(self, obs: Observation) -> ServingReading:
        """Take one observation; returns (and keeps as `reading`) the reading it makes."""
        kind = obs.kind.name if obs.kind is not None else "unknown"
        if obs.model is not None:
            self._info_model = obs.model
        if obs.contact is Contact.NO_ROUTE:
            self._forget_windows()
            return self._publish(
                obs, ServingReading(kind, self._enter("unreachable", obs.why, obs), obs.url)
            )
        if obs.contact is not Contact.OK:
            if (
                obs.contact is Contact.REFUSED
                and obs.kind is not None
                and obs.kind.closed_while_loading
                and not self._seen_ready
            ):
                state = self._enter("loading", "not listening yet", obs)
                return self._publish(obs, ServingReading(kind, state, obs.url))
            return self._miss(obs, kind, obs.why)
        health = obs.health if obs.health is not None else self._last_health
        self._last_health = health
        verdict = health.verdict if health is not None else Verdict.READY
        detail = health.detail if health is not None else ""
        if verdict is Verdict.NOT_READY:
            verdict = Verdict.UNHEALTHY if self._seen_ready else Verdict.LOADING
        if verdict is Verdict.READY and obs.metrics is MetricsAnswer.FAILED:
            return self._miss(obs, kind, obs.metrics_why)
        self._misses = 0
        figures = self._figures(obs, kind)
        if verdict is Verdict.LOADING:
            state = self._enter("loading", detail, obs)
        elif verdict is Verdict.UNHEALTHY:
            state = self._enter("unhealthy", detail, obs)
        elif obs.metrics is MetricsAnswer.OFF:
            self._seen_ready = True
            state = self._enter("metrics-off", obs.metrics_why, obs)
        else:
            self._seen_ready = True
            state = self._enter("ready", self._ready_detail(obs, detail), obs)
        reading = replace(figures, state=state, since=self._since)
        if verdict is Verdict.READY:
            self._last_good = reading
        return self._publish(obs, reading)

    def _ready_detail(self, obs: Observation, health_detail: str) -> str:
        if self._restarted_at is not None and obs.wall - self._restarted_at < RESTART_NOTE_S:
            return "restarted: counters reset"
        if obs.metrics is MetricsAnswer.PAGE and obs.kind is None:
            return "no model-server metrics on the page"
        return health_detail

    def _miss(self, obs: Observation, kind: str, why: str) -> ServingReading:
        """A scrape that read nothing: keep the last good reading, stale after a few."""
        self._misses += 1
        last = self._last_good
        if last is None:
            state = self._enter("unreachable", why, obs)
            return self._publish(obs, ServingReading(kind, state, obs.url))
        if self._misses < self._stale_after:
            return self._publish(obs, last)
        self._forget_windows()
        state = self._enter("unreachable", why, obs)
        return self._publish(obs, replace(last, state=state, stale=True))

    def _enter(self, name: StateName, detail: str, obs: Observation) -> ServingState:
        if name != self._state:
            # A server already loading when aitop started has been loading since its start.
            first_loading = self._state is None and name == "loading"
            self._since = self._started_at if first_loading and self._started_at else obs.wall
            self._state = name
        return ServingState(name, detail)

    def _publish(self, obs: Observation, reading: ServingReading) -> ServingReading:
        if reading.since != self._since:
            reading = replace(reading, since=self._since)
        self.reading = reading
        fresh = not reading.stale
        with self._history_lock:
            self._history.append(
                HistoryPoint(
                    obs.wall,
                    reading.generation_tokens_per_s if fresh else None,
                    reading.requests_waiting if fresh else None,
                    reading.kv_cache_percent if fresh else None,
                    reading.ttft_p95_s if fresh else None,
                )
            )
        return reading

    # -- figures -------------------------------------------------------------------------------

    def _figures(self, obs: Observation, kind: str) -> ServingReading:
        """The figures of an answered scrape (its state is filled in by the caller)."""
        model = self._info_model
        if obs.loaded_models is not None:
            names = ", ".join(m.name for m in obs.loaded_models)
            model = safe_model_name(names) if names else None
        base = ServingReading(
            kind, ServingState("ready"), obs.url, model, loaded_models=obs.loaded_models
        )
        if obs.page is not None:
            self._pages += 1
        if obs.page is None or obs.kind is None:
            return base
        ex = extract(obs.kind, obs.page)
        self._check_restart(ex, obs)
        rates = self._rates(ex, obs)
        if obs.histograms:
            self._last_percentiles = self._percentiles(ex, obs)
        pct = self._last_percentiles
        gauges = ex.gauges
        return replace(
            base,
            model=ex.model or model,
            requests_running=_count(gauges.get(Reading.REQUESTS_RUNNING)),
            requests_waiting=_count(gauges.get(Reading.REQUESTS_WAITING)),
            kv_cache_percent=_percent(gauges.get(Reading.KV_CACHE)),
            prompt_tokens_per_s=rates.get(Reading.PROMPT_TOKENS),
            generation_tokens_per_s=rates.get(Reading.GENERATION_TOKENS),
            ttft_p50_s=pct.get((Reading.TTFT, 0.5)),
            ttft_p95_s=pct.get((Reading.TTFT, 0.95)),
            itl_p50_s=pct.get((Reading.ITL, 0.5)),
            # A server that says its own p95 (Triton's summary) rather than buckets.
            e2e_p95_s=pct.get((Reading.E2E, 0.95), _seconds(gauges.get(Reading.E2E))),
            errors_per_s=rates.get(Reading.ERRORS),
            preemptions_per_s=rates.get(Reading.PREEMPTIONS),
        )

    def _check_restart(self, ex: Extract, obs: Observation) -> None:
        restarted = False
        if ex.start_time is not None:
            if self._start_time is not None and ex.start_time > self._start_time + 0.5:
                restarted = True
            self._start_time = ex.start_time
        previous = self._series
        for key, value in ex.series.items():
            before = previous.get(key)
            if before is not None and value < before:
                restarted = True
                break
        self._series = ex.series
        if restarted:
            self._pages = 1
            self._restarts += 1
            self._restarted_at = obs.wall
            self._since = obs.wall
            self._forget_windows()

    def _forget_windows(self) -> None:
        self._counters.clear()
        self._hists.clear()
        self._last_percentiles = {}

    def _rates(self, ex: Extract, obs: Observation) -> dict[Reading, float]:
        window = obs.kind.rate_window_s if obs.kind is not None else 5.0
        rates: dict[Reading, float] = {}
        for reading in list(self._counters):
            if reading not in ex.counters:
                del self._counters[reading]
        for reading, total in ex.counters.items():
            points = self._counters.get(reading)
            if points is None:
                points = self._counters[reading] = deque(maxlen=_WINDOW_POINTS)
            points.append((obs.at, total))
            # Keep the newest point at or before the window's start as its base.
            while len(points) > 2 and points[1][0] <= obs.at - window:
                points.popleft()
            if len(points) >= 2:
                t0, v0 = points[0]
                span = obs.at - t0
                if span > 0:
                    rates[reading] = max(0.0, (total - v0) / span)
        return rates

    def _percentiles(self, ex: Extract, obs: Observation) -> dict[tuple[Reading, float], float]:
        out: dict[tuple[Reading, float], float] = {}
        for reading in list(self._hists):
            if reading not in ex.histograms:
                del self._hists[reading]
        for reading, hist in ex.histograms.items():
            points = self._hists.get(reading)
            if (
                points is None
                or (points and points[-1][1].bounds != hist.bounds)
                or (points and _went_down(points[-1][1].counts, hist.counts))
            ):
                # New, laid out anew, or counted from zero again (a restart the counters
                # did not show): the window starts here.
                points = self._hists[reading] = deque(maxlen=_WINDOW_POINTS)
            points.append((obs.at, hist))
            while len(points) > 2 and points[1][0] <= obs.at - self._percentile_window:
                points.popleft()
            if len(points) < 2:
                continue
            base = points[0][1]
            delta = tuple(max(0.0, c - b) for c, b in zip(hist.counts, base.counts, strict=True))
            for q in (0.5, 0.95):
                value = quantile(q, hist.bounds, delta)
                if value is not None:
                    out[(reading, q)] = value
        return out
