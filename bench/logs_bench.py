"""How aitop's log pane keeps up with a flooding container, next to `docker logs -f`.

Run it from the repository root:

    .venv/bin/python bench/logs_bench.py                    # all runs (about 8 minutes)
    .venv/bin/python bench/logs_bench.py --runs flood       # 10k and 100k lines/s, 10 s each
    .venv/bin/python bench/logs_bench.py --runs soak --soak-seconds 600
    .venv/bin/python bench/logs_bench.py --runs open --history 1000000 --opens 9
    .venv/bin/python bench/logs_bench.py --rates 10000 --seconds 5
    .venv/bin/python bench/logs_bench.py --json /tmp/logs-bench.json
    .venv/bin/python bench/logs_bench.py --runs classify,hostile     # hostile lines, no engine

For each rate, one container (image `aitop-bench-flood`, built from a static C generator,
labelled `aitop.bench=logs`) writes two identical floods of `--seconds` each: numbered lines of
about 100 bytes, paced per millisecond. Each flood starts on a signal (`docker kill -s USR1`),
once its reader is attached, so both readers follow live:

1. Flood 1 is followed by aitop's real path, in a fresh process (so peak memory is its own):
   a `LogFollower` on the engine feeding a `LogPane` in a headless Textual app through
   `post_batch`, as the app wires it. Reported: lines generated (and the rate the generator
   reached, from the engine's timestamps), flood lines that reached the pane's buffer
   (counted, first and last sequence number checked), lines dropped by backpressure, lines the
   buffer's cap evicted, lines never drawn ("skipped in rendering"), how long after the flood's
   last line was written it reached the pane, the process's CPU (all threads, % of one core from
   the signal until the last line), its peak RSS, the event loop's lag (a 50 ms timer's
   lateness) and, the figure the issue sets aims for, key to screen: `t` (toggle timestamps)
   typed 12.5 times a second over the flood's middle, each timed from when it was due to the
   first screen refresh that shows it (p50, p99, max).
2. Flood 2 is followed by `docker logs -f -t --since <end of flood 1>` on the same container,
   its output read in big chunks and counted: lines, when the last one came, CLI CPU.

Both also read the whole log back without following (aitop through `Engine.open_logs` and the
line splitter; `docker logs -t`): the parsing cost without the generator's pacing.

Two more runs (`--runs flood,soak,open` picks them):

- soak: one flood of `--soak-rate` lines/s for `--soak-seconds`, followed like flood 1, the
  child's RSS (VmRSS) and the pane's retained lines and estimated bytes sampled every
  `--soak-every` seconds, against the buffer's caps (`max_lines`, `max_bytes`). It ends when
  the last line is in or at 1.2 x the flood's length + 30 s, whichever comes first; the lines
  aitop took in are what to compare with an hour at 10,000 lines/s (36 million lines).
- open: a container writes `--history` lines as fast as the engine takes them; then a pane is
  opened on it `--opens` times as the app's `l` does (a `LogFollower` with the "last
  `--tail` lines" preset feeding the pane through `post_batch`), each timed from the open to
  the first screen refresh after the history's last line is in the pane (the median is the
  figure), next to `docker logs --tail` (a process start included).

Two runs need no engine (`--runs classify,hostile`):

- classify: every hostile line of `tests/hostile_lines.py` (the corpus
  `tests/fixtures/hostile_lines.json` and lines built from each pattern's own words, each
  `--hostile-length` characters, the line cap by default) classified `--classify-runs` times;
  the slowest line per pattern, by its best time.
- hostile: key-to-screen latency while a reader thread splits and classifies those lines
  without a pause (as a follower's reader does), the pane fed by a delivery thread every
  0.1 s: `--hostile-keys` presses of `t` over `--hostile-seconds`, each timed from the key
  event to the first screen refresh after the pane took it; and the event loop's lag.

Containers are removed at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402
from tui.fleet.logs.classify import classify  # noqa: E402
from tui.fleet.logs.follower import LogFollower  # noqa: E402
from tui.fleet.logs.splitter import MAX_LINE_BYTES, LineSplitter  # noqa: E402
from tui.fleet.logs.types import LogBatch, LogTarget, parse_timestamp, preset_by_key  # noqa: E402

IMAGE = "aitop-bench-flood:2"
KEYS_PER_S = 12.5
"""Keys typed a second during a followed flood (`t`, toggling timestamps), each timed."""
LABEL = "aitop.bench"

FLOOD_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go = 0;
static void on_usr1(int sig) { (void)sig; go = 1; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* flood RATE SECONDS PHASES: on each SIGUSR1, RATE numbered lines/s for SECONDS. */
int main(int argc, char **argv) {
    long rate = atol(argv[1]);
    double seconds = atof(argv[2]);
    int phases = atoi(argv[3]);
    static char buf[1 << 20];
    sigset_t block, old;
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    signal(SIGUSR1, on_usr1);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (int phase = 1; phase <= phases; phase++) {
        while (!go) sigsuspend(&old);
        go = 0;
        long total = (long)(rate * seconds), i = 0;
        double start = now();
        while (i < total) {
            long due = (long)((now() - start) * rate) + 1;
            if (due > total) due = total;
            for (; i < due; i++)
                printf("phase=%d seq=%ld INFO step loss=0.1234 lr=3e-4 tok/s=12345.6 "
                       "gpu_mem=71.2GiB kv_cache=43.1%% padding\n", phase, i);
            fflush(stdout);
            usleep(1000);
        }
        printf("phase=%d done lines=%ld\n", phase, total);
        fflush(stdout);
    }
    for (;;) pause();
}
"""


def trigger(container_id: str) -> None:
    """Start the next flood."""
    subprocess.run(["docker", "kill", "-s", "USR1", container_id], check=True, capture_output=True)


def build_image(engine: Engine) -> None:
    """Build the flood image (FROM scratch, one static binary) unless it exists."""
    if engine.has_image(IMAGE):
        return
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        sys.exit("logs_bench needs a C compiler (gcc) to build its static flood generator")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "flood.c"
        src.write_text(FLOOD_C)
        binary = Path(tmp) / "flood"
        subprocess.run([cc, "-O2", "-static", "-o", str(binary), str(src)], check=True)
        dockerfile = b'FROM scratch\nCOPY flood /flood\nENTRYPOINT ["/flood"]\n'
        engine.build_image(
            IMAGE, {"Dockerfile": (dockerfile, 0o644), "flood": (binary.read_bytes(), 0o755)}
        )


@dataclass
class _FloodSeen:
    """What the flood run saw of phase 1's lines on their way to the pane."""

    count: int = 0
    first: int | None = None
    """Sequence number of the first line seen."""
    last: int | None = None
    t0: int | None = None
    """Engine timestamps (ns) of the first and the last line seen."""
    t1: int | None = None


def _seq(text: str) -> int:
    return int(text.split()[1].removeprefix("seq="))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- child: aitop's path, in a process of its own -------------------------------------------


def _rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for row in fh:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


def _keyed_pane() -> Any:
    """A LogPane class that calls `answered` after the screen shows a timestamps toggle."""
    from widgets.log_pane import LogPane

    class KeyedPane(LogPane):
        answered: Any = None

        def watch_show_timestamps(self) -> None:
            super().watch_show_timestamps()
            if self.answered is not None:
                self.call_after_refresh(self.answered)

    return KeyedPane


def _type_keys(app: Any, pane: Any, start: float, seconds: float, keys: int) -> list[float]:
    """Type `t` `keys` times spread over `seconds` from `start` (perf_counter), as a
    terminal's input thread does (a `Key` event posted to the app); each key's milliseconds
    from when it was due to the first screen refresh after the pane toggled.

    Each key is due at a set time and timed from then: a thread that wakes late (the GIL
    held elsewhere) is as late as a terminal's input thread would be.
    """
    from textual import events

    latencies: list[float] = []
    for n in range(keys):
        due = start + n * seconds / keys
        time.sleep(max(0.0, due - time.perf_counter()))
        answered = threading.Event()
        pane.answered = answered.set
        app.post_message(events.Key("t", "t"))
        if answered.wait(600):
            latencies.append(1000 * (time.perf_counter() - due))
    return latencies


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def child(
    container_id: str, rate: int, seconds: float, sample_every: float = 0.0, keys: int = 0
) -> dict[str, Any]:
    """Follow flood 1 with a LogFollower into a LogPane in a headless app; return figures.

    With `sample_every` (the soak run), RSS and the buffer's retained lines and bytes are
    sampled that often, and the run ends at the flood's end even if aitop is behind. With
    `keys`, `t` is typed that many times over the flood's middle (from 1 s in to 1 s before
    its end), each timed from when it was due to the screen showing it.
    """
    from textual.app import App, ComposeResult

    LogPane = _keyed_pane()

    expected = int(rate * seconds)
    engine = Engine()
    result: dict[str, Any] = {}
    samples: list[dict[str, float]] = []

    class Bench(App):
        def compose(self) -> ComposeResult:
            yield LogPane(title="flood", id="pane")

        def on_mount(self) -> None:
            self.pane = self.query_one(LogPane)
            self.pane.focus()
            self.lags: list[float] = []
            self._tick_at = time.monotonic()
            self.set_interval(0.05, self._tick)
            self.run_worker(self._drive, thread=True, exit_on_error=True)

        def _tick(self) -> None:
            now = time.monotonic()
            self.lags.append(now - self._tick_at - 0.05)
            self._tick_at = now

        def _drive(self) -> None:
            pane = self.pane
            seen = _FloodSeen()
            done: list[int] = []

            def on_batch(batch: LogBatch) -> None:
                # Count flood 1's lines as they go to the pane (every delivered batch is
                # appended); check the first and last sequence numbers.
                flood = [ln for ln in batch.lines if ln.text.startswith("phase=1 seq=")]
                if flood:
                    seen.count += len(flood)
                    if seen.first is None:
                        seen.first, seen.t0 = _seq(flood[0].text), flood[0].ts
                    seen.last, seen.t1 = _seq(flood[-1].text), flood[-1].ts
                done.extend(ln.ts for ln in batch.lines if ln.text.startswith("phase=1 done"))
                pane.post_batch(batch)

            follower = LogFollower(
                engine,
                LogTarget(container_id, "flood"),
                on_batch=on_batch,
                preset=preset_by_key("all"),
            )
            follower.start()
            while not follower.ready:
                time.sleep(0.01)
            cpu0, wall0 = _cpu_seconds(), time.monotonic()
            trigger(container_id)
            key_ms: list[float] = []
            typist = threading.Thread(
                target=lambda: key_ms.extend(
                    _type_keys(self, pane, time.perf_counter() + 1.0, seconds - 2.0, keys)
                ),
                daemon=True,
            )
            if keys:
                typist.start()
            deadline = wall0 + (seconds * 1.2 + 30 if sample_every else seconds * 10 + 60)
            done_at = None
            next_sample = wall0

            def appended() -> int:
                return pane.line_count + pane.buffer.dropped + pane.dropped_lines

            def sample() -> dict[str, float]:
                buffer = pane.buffer
                return {
                    "t": time.monotonic() - wall0,
                    "rss_mb": _rss_mb(),
                    "retained_lines": len(buffer),
                    "retained_bytes": buffer.nbytes,
                    "lines_taken": appended(),
                }

            while time.monotonic() < deadline:
                time.sleep(0.01)
                if sample_every and time.monotonic() >= next_sample:
                    samples.append(self.call_from_thread(sample))
                    next_sample += sample_every
                if done and self.call_from_thread(appended) >= expected + 1:
                    done_at = time.time()
                    break
            if sample_every:
                samples.append(self.call_from_thread(sample))
            cpu1, wall1 = _cpu_seconds(), time.monotonic()
            follower.close()
            if keys:
                typist.join(60)

            def collect() -> None:
                result.update(
                    expected=expected,
                    reached_buffer=seen.count,
                    first_seq=seen.first,
                    last_seq=seen.last,
                    retained=pane.line_count,
                    evicted_by_cap=pane.buffer.dropped,
                    dropped_backpressure=pane.dropped_lines,
                    skipped_in_rendering=pane.skipped_lines,
                    follower=follower.stats.__dict__,
                    buffer_bytes=pane.buffer.nbytes,
                    max_lines=pane.buffer.max_lines,
                    max_bytes=pane.buffer.max_bytes,
                    lines_taken=appended(),
                )

            self.call_from_thread(collect)
            lags = sorted(self.lags)
            span = ((seen.t1 or 0) - (seen.t0 or 0)) / 1e9
            result.update(
                generator_rate=(seen.count - 1) / span if span > 0 else None,
                done_ts=done[0] if done else None,
                follow_seconds=wall1 - wall0,
                cpu_percent=100 * (cpu1 - cpu0) / (wall1 - wall0),
                finished=done_at is not None,
                tail_latency_s=(done_at - done[0] / 1e9) if done_at and done else None,
                max_loop_lag_ms=1000 * max(lags, default=0.0),
                p99_loop_lag_ms=1000 * lags[int(len(lags) * 0.99)] if lags else 0.0,
                p50_loop_lag_ms=1000 * lags[len(lags) // 2] if lags else 0.0,
                keys=keys,
                key_ms=key_ms,
                key=_percentiles(key_ms),
            )
            self.call_from_thread(self.exit)

    Bench().run(headless=True, size=(160, 50))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if samples:
        result["samples"] = samples
    engine.close()
    return result


def open_child(container_id: str, name: str, opens: int, tail: int) -> dict[str, Any]:
    """Open a pane on a container's long history `opens` times, as the app does; time each.

    One open: a `LogFollower` with the "last `tail` lines" preset, `on_batch` the pane's
    `post_batch`, the pane's session started, the follower started (what the app's `l` does).
    It is shown once the pane holds the history's last line and the screen has been
    refreshed after that (`call_after_refresh`), with the last line in the pane's bottom row.
    """
    from textual.app import App, ComposeResult

    from widgets.log_pane import LogPane

    engine = Engine()
    result: dict[str, Any] = {"opens": []}

    class TimedPane(LogPane):
        """The pane, telling the bench after each batch it took in."""

        after_batch: Callable[[], None] | None = None

        def add_batch(self, batch: LogBatch) -> bool:
            accepted = super().add_batch(batch)
            if self.after_batch is not None:
                self.after_batch()
            return accepted

    class Bench(App):
        def compose(self) -> ComposeResult:
            yield TimedPane(title="history", id="pane", tail=tail)

        def on_mount(self) -> None:
            self.pane = self.query_one(TimedPane)
            self.run_worker(self._drive, thread=True, exit_on_error=True)

        def _drive(self) -> None:
            pane = self.pane
            for _ in range(opens):
                shown = threading.Event()
                marks: dict[str, float] = {}

                def on_batch(batch: LogBatch, marks: dict[str, float] = marks) -> None:
                    marks.setdefault("first_batch", time.perf_counter())
                    pane.post_batch(batch)

                def drawn(marks: dict[str, float] = marks, shown: threading.Event = shown) -> None:
                    view = pane.query_one("#log-lines")
                    bottom = view.render_line(view.size.height - 1).text
                    marks["shown"] = time.perf_counter()
                    marks["bottom_is_last"] = float("phase=1 done" in bottom)
                    shown.set()

                def check(marks: dict[str, float] = marks) -> None:
                    if pane.line_count >= tail and "complete" not in marks:
                        last = pane.buffer.get(pane.buffer.end_seq - 1)
                        if last is not None and last.text.startswith("phase=1 done"):
                            marks["complete"] = time.perf_counter()
                            pane.call_after_refresh(drawn)

                def open_pane(marks: dict[str, float] = marks) -> LogFollower:
                    marks["t0"] = time.perf_counter()
                    follower = LogFollower(
                        engine,
                        LogTarget(container_id, name),
                        on_batch=on_batch,
                        preset=pane.preset,
                    )
                    pane.after_batch = check
                    pane.start_session(follower.session, title=name, show_source=False)
                    follower.start()
                    return follower

                follower = self.call_from_thread(open_pane)
                shown.wait(30)
                follower.stop()
                t0 = marks["t0"]
                result["opens"].append(
                    {
                        "shown_ms": 1000 * (marks["shown"] - t0) if "shown" in marks else None,
                        "first_batch_ms": 1000 * (marks["first_batch"] - t0)
                        if "first_batch" in marks
                        else None,
                        "in_buffer_ms": 1000 * (marks["complete"] - t0)
                        if "complete" in marks
                        else None,
                        "lines": self.call_from_thread(lambda: pane.line_count),
                        "bottom_is_last": bool(marks.get("bottom_is_last")),
                    }
                )
                follower.join(5)
                time.sleep(0.2)
            self.call_from_thread(self.exit)

    Bench().run(headless=True, size=(160, 50))
    engine.close()
    return result


# --- hostile lines: classification cost and key latency --------------------------------


def bench_classify(length: int, runs: int) -> dict[str, Any]:
    """Classify every hostile line (`tests/hostile_lines.py`); the slowest per pattern.

    Each line is timed `runs` times and its best time kept (the least disturbed run). The
    traceback patterns are timed inside a traceback, where they run.
    """
    from tests.hostile_lines import TRACEBACK_RULES, all_lines, best_time, in_traceback

    worst: dict[str, dict[str, Any]] = {}
    count = 0
    for line in all_lines(length):
        fn = in_traceback if line.rule in TRACEBACK_RULES else classify
        text = line.text
        ms = 1000 * best_time(functools.partial(fn, text), runs)
        count += 1
        if ms > worst.get(line.rule, {}).get("ms", -1.0):
            worst[line.rule] = {"ms": ms, "line": line.name}
    return {"length": length, "lines": count, "worst": worst}


def report_classify(r: dict[str, Any]) -> None:
    print(f"\n== classifying {r['lines']} hostile lines of {r['length']:,} characters ==")
    for rule, w in sorted(r["worst"].items(), key=lambda kv: -kv[1]["ms"]):
        print(f"  {rule:<16} worst {w['ms']:9.3f} ms  ({w['line']})")


def hostile_keys(
    length: int, seconds: float, keys: int, batch: int, *, plain: bool = False
) -> dict[str, Any]:
    """Key-to-screen latency while a reader thread splits and classifies hostile lines.

    As a follower does: a reader thread turns messages of hostile lines (every line of
    `tests/hostile_lines.py`, over and over, and every 16th one a line costly to draw: wide
    characters, tabs, dense colours) into `LogLine`s with a `LineSplitter` (split,
    sanitised, classified), `batch` messages at a time, into a bounded pending list; a
    delivery thread hands what is pending to the pane every 0.1 s once the previous batch was
    taken in (with `plain`, ordinary lines of as many bytes in all instead, the reference).
    Meanwhile a third thread types `t` (toggle timestamps) as a terminal's input
    thread does (a `Key` event posted to the app), `keys` times spread over `seconds`, and
    times each from when it was due to the first screen refresh after the pane took it.
    """
    from textual.app import App, ComposeResult

    from tests.hostile_lines import all_lines, drawing_payloads

    KeyedPane = _keyed_pane()

    payloads = [line.text.encode() for line in all_lines(length)]
    drawing = drawing_payloads(length)
    # The lines costly to draw come every 16 lines, so that some are always on screen.
    for at in range(0, len(payloads), 16):
        payloads.insert(at, drawing[(at // 16) % len(drawing)])
    if plain:  # the reference: ordinary lines, as many bytes per batch
        per_line = b"INFO step 100 loss=0.1234 lr=3e-4 tok/s=12345.6 gpu_mem=71.2GiB padding"
        payloads = [per_line] * len(payloads)
        batch = batch * length // len(per_line)
    result: dict[str, Any] = {}

    class Bench(App):
        def compose(self) -> ComposeResult:
            yield KeyedPane(title="hostile", id="pane")

        def on_mount(self) -> None:
            self.pane = self.query_one(KeyedPane)
            self.pane.focus()
            self.lags: list[float] = []
            self._tick_at = time.monotonic()
            self.set_interval(0.05, self._tick)
            self.run_worker(self._drive, thread=True, exit_on_error=True)

        def _tick(self) -> None:
            now = time.monotonic()
            self.lags.append(now - self._tick_at - 0.05)
            self._tick_at = now

        def _drive(self) -> None:
            pane = self.pane
            stop = threading.Event()
            lock = threading.Lock()
            pending: list[Any] = []
            split_ms: list[float] = []
            fed = [0]

            def read() -> None:
                splitter = LineSplitter("hostile")
                i = 0
                while not stop.is_set():
                    messages = []
                    for _ in range(batch):
                        stamp = b"2026-01-01T00:00:%02d.%09dZ " % (i // 10**9 % 60, i % 10**9)
                        messages.append((1, stamp + payloads[i % len(payloads)] + b"\n"))
                        i += 1
                    t0 = time.perf_counter()
                    lines = splitter.feed(messages)
                    split_ms.append(1000 * (time.perf_counter() - t0))
                    with lock:
                        pending.extend(lines)
                        del pending[:-2000]  # bounded, oldest dropped, as a follower does
                        fed[0] += len(lines)

            def deliver() -> None:
                acked = threading.Event()
                acked.set()
                while not stop.is_set():
                    time.sleep(0.1)
                    acked.wait(1.0)  # the follower's ack timeout: then deliver anyway
                    with lock:
                        lines = tuple(pending)
                        pending.clear()
                    if lines:
                        acked = threading.Event()
                        pane.post_batch(LogBatch(0, lines, 0, acked.set))

            threads = [threading.Thread(target=f, daemon=True) for f in (read, deliver)]
            for thread in threads:
                thread.start()
            # From 1 s in: the reader busy, the pane holding lines.
            latencies = _type_keys(self, pane, time.perf_counter() + 1.0, seconds, keys)
            stop.set()
            for thread in threads:
                thread.join(10)
            lags = sorted(self.lags)
            ordered = sorted(latencies)
            result.update(
                length=length,
                plain=plain,
                keys=keys,
                answered=len(latencies),
                key_ms=latencies,
                key_p50_ms=ordered[len(ordered) // 2] if ordered else None,
                key_max_ms=ordered[-1] if ordered else None,
                lines_split=fed[0],
                split_batch_max_ms=max(split_ms, default=0.0),
                split_batches=len(split_ms),
                max_loop_lag_ms=1000 * max(lags, default=0.0),
                p99_loop_lag_ms=1000 * lags[int(len(lags) * 0.99)] if lags else 0.0,
            )
            self.call_from_thread(self.exit)

    Bench().run(headless=True, size=(160, 50))
    return result


def report_hostile(r: dict[str, Any]) -> None:
    what = "ordinary lines" if r["plain"] else f"hostile lines of {r['length']:,} characters"
    print(
        f"\n== keys while a reader splits {what}"
        f" ({r['lines_split']:,} lines split in {r['split_batches']:,} batches) =="
    )
    print(
        f"  key to screen            p50 {_fmt(r['key_p50_ms'], '.0f')} ms,"
        f" max {_fmt(r['key_max_ms'], '.0f')} ms ({r['answered']} of {r['keys']} answered)"
    )
    print(
        f"  event loop lag           p99 {r['p99_loop_lag_ms']:.0f} ms,"
        f" max {r['max_loop_lag_ms']:.0f} ms;"
        f" slowest split batch {r['split_batch_max_ms']:.0f} ms"
    )


# --- parent -----------------------------------------------------------------------------


def docker_logs_follow(container_id: str, since_ns: int, expected: int) -> dict[str, Any]:
    """Follow flood 2 with `docker logs -f -t`, counting its lines as they come."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    since = f"{since_ns // 1_000_000_000}.{since_ns % 1_000_000_000:09d}"
    proc = subprocess.Popen(
        ["docker", "logs", "-f", "-t", "--since", since, container_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    time.sleep(1.0)  # attached before the flood starts
    started = time.monotonic()
    trigger(container_id)
    flood = 0
    done_at = done_ts = None
    pending = b""
    deadline = started + 600
    while time.monotonic() < deadline:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        complete, pending = pending[:cut], pending[cut:]
        flood += complete.count(b" phase=2 seq=")
        at = complete.find(b" phase=2 done")
        if at >= 0:
            done_at = time.time()
            head = complete[:at].rsplit(b"\n", 1)[-1]
            done_ts = parse_timestamp(head)
            break
    elapsed = time.monotonic() - started
    proc.terminate()
    proc.wait(10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "lines": flood,
        "expected": expected,
        "seconds": elapsed,
        "tail_latency_s": (done_at - done_ts / 1e9) if done_at and done_ts else None,
        "cpu_percent": 100 * cpu / elapsed,
    }


def read_back(engine: Engine, container_id: str) -> dict[str, Any]:
    """The whole log read without following: aitop's reader and parser, and `docker logs`."""
    t0 = time.monotonic()
    cpu0 = _cpu_seconds()
    splitter = LineSplitter("flood")
    count = 0
    with engine.open_logs(container_id, follow=False, tty=False) as stream:
        while messages := stream.read():
            count += len(splitter.feed(messages))
    aitop_s = time.monotonic() - t0
    aitop_cpu = _cpu_seconds() - cpu0
    t0 = time.monotonic()
    proc = subprocess.run(["docker", "logs", "-t", container_id], capture_output=True, check=True)
    docker_s = time.monotonic() - t0
    docker_lines = proc.stdout.count(b"\n") + proc.stderr.count(b"\n")
    return {
        "aitop_lines": count,
        "aitop_lines_per_s": count / aitop_s,
        "aitop_cpu_percent": 100 * aitop_cpu / aitop_s,
        "docker_logs_lines": docker_lines,
        "docker_logs_lines_per_s": docker_lines / docker_s,
    }


def _remove(engine: Engine, cid: str) -> None:
    try:
        engine.remove(cid)
    except EngineError as exc:
        print(f"could not remove container {cid[:12]}: {exc}", file=sys.stderr)


def bench_rate(engine: Engine, rate: int, seconds: float) -> dict[str, Any]:
    """One container, two floods: aitop follows the first, `docker logs -f` the second."""
    cid = engine.run(
        IMAGE,
        [str(rate), str(seconds), "2"],
        labels={LABEL: "logs"},
        name=f"aitop-bench-logs-{rate}-{uuid.uuid4().hex[:6]}",
    )
    try:
        keys = max(1, int((seconds - 2.0) * KEYS_PER_S))
        aitop = _child(
            ["--child", cid, str(rate), str(seconds), "--keys", str(keys)], seconds * 10 + 120
        )
        if not aitop.get("done_ts"):
            raise RuntimeError(f"aitop never saw the end of flood 1: {aitop}")
        docker = docker_logs_follow(cid, aitop["done_ts"] + 1, int(rate * seconds))
        back = read_back(engine, cid)
        return {"rate": rate, "seconds": seconds, "aitop": aitop, "docker_logs_f": docker, **back}
    finally:
        _remove(engine, cid)


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run this file with `args` in a fresh process; its last stdout line is the JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_soak(engine: Engine, rate: int, seconds: float, every: float) -> dict[str, Any]:
    """One long flood followed by aitop's path, sampling its memory every `every` seconds."""
    cid = engine.run(
        IMAGE,
        [str(rate), str(seconds), "1"],
        labels={LABEL: "logs"},
        name=f"aitop-bench-soak-{uuid.uuid4().hex[:6]}",
    )
    try:
        aitop = _child(
            ["--child", cid, str(rate), str(seconds), "--sample-every", str(every)],
            seconds * 1.5 + 120,
        )
        return {"rate": rate, "seconds": seconds, "aitop": aitop}
    finally:
        _remove(engine, cid)


def _wait_for_log(cid: str, marker: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = subprocess.run(
            ["docker", "logs", "--tail", "1", cid], capture_output=True, check=True
        ).stdout
        if marker in tail:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the history container did not write {marker!r} in {timeout:.0f} s")


def bench_open(engine: Engine, history: int, opens: int, tail: int) -> dict[str, Any]:
    """A container with `history` lines written: open the pane on it `opens` times."""
    name = f"aitop-bench-history-{uuid.uuid4().hex[:6]}"
    # Written as fast as the engine takes them (the rate is out of reach), then it idles.
    cid = engine.run(IMAGE, [str(history), "1", "1"], labels={LABEL: "logs"}, name=name)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        trigger(cid)
        _wait_for_log(cid, b"phase=1 done", 600)
        written_s = time.monotonic() - t0
        aitop = _child(["--open-child", cid, name, str(opens), str(tail)], 300)
        cli: list[float] = []
        for _ in range(opens):
            t = time.perf_counter()
            subprocess.run(
                ["docker", "logs", "-t", "--tail", str(tail), cid], capture_output=True, check=True
            )
            cli.append(1000 * (time.perf_counter() - t))
        return {
            "history": history,
            "written_s": written_s,
            "tail": tail,
            "aitop": aitop,
            "docker_logs_tail_ms": cli,
        }
    finally:
        _remove(engine, cid)


def _median(values: list[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "n/a"
    return format(value, spec)


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        a, d = r["aitop"], r["docker_logs_f"]
        print(f"\n== {r['rate']:,} lines/s for {r['seconds']:g} s ({a['expected']:,} lines) ==")
        rate = _fmt(a.get("generator_rate"))
        print(f"  generator reached        {rate} lines/s (engine timestamps)")
        print(
            f"  aitop  reached buffer    {a['reached_buffer']:,} / {a['expected']:,}"
            f" (seq {a['first_seq']}..{a['last_seq']}),"
            f" dropped by backpressure {a['dropped_backpressure']:,};"
            f" retained {a['retained']:,}, evicted by the buffer's cap {a['evicted_by_cap']:,}"
        )
        print(f"  aitop  skipped in render {a['skipped_in_rendering']:,} lines never drawn")
        print(
            f"  aitop  last line after   {_fmt(a['tail_latency_s'], '.2f')} s;"
            f" CPU {a['cpu_percent']:.0f}% of a core over {a['follow_seconds']:.1f} s;"
            f" peak RSS {a['peak_rss_mb']:.0f} MB"
        )
        print(
            f"  aitop  event loop lag    p50 {a['p50_loop_lag_ms']:.0f} ms,"
            f" p99 {a['p99_loop_lag_ms']:.0f} ms, max {a['max_loop_lag_ms']:.0f} ms"
        )
        k = a["key"]
        print(
            f"  aitop  key to screen     p50 {_fmt(k['p50'], '.0f')} ms,"
            f" p99 {_fmt(k['p99'], '.0f')} ms, max {_fmt(k['max'], '.0f')} ms"
            f" ({len(a['key_ms'])} of {a['keys']} keys answered)"
        )
        print(
            f"  docker logs -f           {d['lines']:,} / {d['expected']:,} lines;"
            f" last line after {_fmt(d['tail_latency_s'], '.2f')} s;"
            f" CLI CPU {d['cpu_percent']:.0f}% of a core over {d['seconds']:.1f} s"
        )
        print(
            f"  read back (no follow)    aitop {r['aitop_lines_per_s']:,.0f} lines/s"
            f" ({r['aitop_cpu_percent']:.0f}% CPU);  docker logs -t"
            f" {r['docker_logs_lines_per_s']:,.0f} lines/s"
        )


def report_soak(r: dict[str, Any]) -> None:
    a = r["aitop"]
    samples = a["samples"]
    rss = [x["rss_mb"] for x in samples]
    full = next((x for x in samples if x["retained_lines"] >= a["max_lines"]), None)
    after = [x["rss_mb"] for x in samples if full is not None and x["t"] >= full["t"]]
    taken = a["lines_taken"]
    span = samples[-1]["t"] if samples else 0.0
    print(f"\n== soak: {r['rate']:,} lines/s for {r['seconds']:g} s ==")
    print(
        f"  aitop  took in           {taken:,} lines in {span:.0f} s ({taken / span:,.0f} lines/s);"
        f" as many as {taken / 10_000 / 60:.0f} min at 10,000 lines/s"
        if span
        else "  aitop  took in           nothing"
    )
    print(
        f"  aitop  RSS               first {rss[0]:.0f} MB, peak {max(rss):.0f} MB,"
        f" last {rss[-1]:.0f} MB ({len(rss)} samples every {r.get('every', 0):g} s)"
    )
    if full is not None and after:
        print(
            f"  aitop  RSS once full     {full['rss_mb']:.0f} MB at {full['t']:.0f} s (buffer"
            f" at its cap); after that min {min(after):.0f}, max {max(after):.0f},"
            f" last {after[-1]:.0f} MB"
        )
    print(
        f"  aitop  retained          {a['retained']:,} lines (cap {a['max_lines']:,}),"
        f" {a['buffer_bytes'] / 2**20:.1f} MB estimated (cap {a['max_bytes'] / 2**20:.0f} MB);"
        f" evicted {a['evicted_by_cap']:,}, dropped by backpressure {a['dropped_backpressure']:,}"
    )
    print(f"  aitop  CPU               {a['cpu_percent']:.0f}% of a core")


def report_open(r: dict[str, Any]) -> None:
    opens = r["aitop"]["opens"]
    shown = [o["shown_ms"] for o in opens]
    print(
        f"\n== opening the pane on {r['history']:,} lines of history"
        f" (written in {r['written_s']:.0f} s), last {r['tail']:,} lines, {len(opens)} opens =="
    )
    print(
        f"  aitop  shown             median {_fmt(_median(shown), '.0f')} ms"
        f" (each: {', '.join(_fmt(v, '.0f') for v in shown)} ms)"
    )
    print(
        f"  aitop  in the buffer     median {_fmt(_median([o['in_buffer_ms'] for o in opens]))} ms;"
        f" first batch median {_fmt(_median([o['first_batch_ms'] for o in opens]))} ms;"
        f" lines {sorted({o['lines'] for o in opens})};"
        f" last line in the bottom row: {all(o['bottom_is_last'] for o in opens)}"
    )
    cli = r["docker_logs_tail_ms"]
    print(
        f"  docker logs --tail       median {_fmt(_median(cli))} ms"
        f" (the CLI's process start included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="flood,soak,open", help="which runs, in this order")
    parser.add_argument("--rates", default="10000,100000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak-rate", type=int, default=100_000)
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--soak-every", type=float, default=5.0, help="RSS sampling interval")
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--opens", type=int, default=7)
    parser.add_argument("--tail", type=int, default=1000)
    parser.add_argument(
        "--hostile-length", type=int, default=MAX_LINE_BYTES, help="hostile lines' length"
    )
    parser.add_argument("--classify-runs", type=int, default=5, help="timings per hostile line")
    parser.add_argument("--hostile-seconds", type=float, default=20.0)
    parser.add_argument("--hostile-keys", type=int, default=40)
    parser.add_argument("--hostile-batch", type=int, default=64, help="messages per split")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--sample-every", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--open-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cid, rate, seconds = args.child
        print(json.dumps(child(cid, int(rate), float(seconds), args.sample_every, args.keys)))
        return
    if args.open_child:
        cid, name, opens, tail = args.open_child
        print(json.dumps(open_child(cid, name, int(opens), int(tail))))
        return
    runs = args.runs.split(",")
    results: dict[str, Any] = {}
    if "classify" in runs:
        results["classify"] = bench_classify(args.hostile_length, args.classify_runs)
        report_classify(results["classify"])
    if "hostile" in runs:
        print(f"\nkeys while hostile lines are read, {args.hostile_seconds:g} s ...", flush=True)
        results["hostile"] = hostile_keys(
            args.hostile_length, args.hostile_seconds, args.hostile_keys, args.hostile_batch
        )
        report_hostile(results["hostile"])
        print("\nthe same with ordinary lines (the reference) ...", flush=True)
        results["hostile_reference"] = hostile_keys(
            args.hostile_length,
            args.hostile_seconds,
            args.hostile_keys,
            args.hostile_batch,
            plain=True,
        )
        report_hostile(results["hostile_reference"])
    engine: Engine | None = None
    if any(run in runs for run in ("flood", "soak", "open")):
        engine = Engine(timeout=30)
        engine.version()
        build_image(engine)
    if engine is not None and "flood" in runs:
        results["flood"] = []
        for rate in (int(r) for r in args.rates.split(",")):
            print(f"flooding at {rate:,} lines/s ...", flush=True)
            results["flood"].append(bench_rate(engine, rate, args.seconds))
        report(results["flood"])
    if engine is not None and "soak" in runs:
        print(f"\nsoak: {args.soak_rate:,} lines/s for {args.soak_seconds:g} s ...", flush=True)
        results["soak"] = bench_soak(engine, args.soak_rate, args.soak_seconds, args.soak_every)
        results["soak"]["every"] = args.soak_every
        report_soak(results["soak"])
    if engine is not None and "open" in runs:
        print(f"\nwriting {args.history:,} lines of history ...", flush=True)
        results["open"] = bench_open(engine, args.history, args.opens, args.tail)
        report_open(results["open"])
    load = os.getloadavg()
    version = engine.version().get("Version") if engine is not None else None
    meta = {"cpus": os.cpu_count(), "engine": version, "load": load}
    docker = f", Docker {version}" if version else ""
    print(f"\nmachine: {meta['cpus']} CPUs{docker}, load average at the end {load[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        print(f"written to {args.json}")


if __name__ == "__main__":
    threading.current_thread().name = "logs-bench"
    main()
