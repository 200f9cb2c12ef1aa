"""How aitop's log pane keeps up with a flooding container, next to `docker logs -f`.

Run it from the repository root:

    .venv/bin/python bench/logs_bench.py                    # 10k and 100k lines/s, 10 s each
    .venv/bin/python bench/logs_bench.py --rates 10000 --seconds 5
    .venv/bin/python bench/logs_bench.py --json /tmp/logs-bench.json

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
   the signal until the last line), its peak RSS, and the event loop's lag (a 50 ms timer's
   lateness: how responsive the UI stayed).
2. Flood 2 is followed by `docker logs -f -t --since <end of flood 1>` on the same container,
   its output read in big chunks and counted: lines, when the last one came, CLI CPU.

Both also read the whole log back without following (aitop through `Engine.open_logs` and the
line splitter; `docker logs -t`): the parsing cost without the generator's pacing.
The container is removed at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tui.fleet.engine import Engine, EngineError  # noqa: E402
from tui.fleet.logs import (  # noqa: E402
    LineSplitter,
    LogFollower,
    LogTarget,
    parse_timestamp,
    preset_by_key,
)

IMAGE = "aitop-bench-flood:2"
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


def _seq(text: str) -> int:
    return int(text.split()[1].removeprefix("seq="))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- child: aitop's path, in a process of its own -------------------------------------------


def child(container_id: str, rate: int, seconds: float) -> dict[str, Any]:
    """Follow flood 1 with a LogFollower into a LogPane in a headless app; return figures."""
    from textual.app import App, ComposeResult

    from widgets.log_pane import LogPane

    expected = int(rate * seconds)
    engine = Engine()
    result: dict[str, Any] = {}

    class Bench(App):
        def compose(self) -> ComposeResult:
            yield LogPane(title="flood", id="pane")

        def on_mount(self) -> None:
            self.pane = self.query_one(LogPane)
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
            seen = {"count": 0, "first": None, "last": None, "t0": None, "t1": None}
            done: list[int] = []

            def on_batch(batch: Any) -> None:
                # Count flood 1's lines as they go to the pane (every delivered batch is
                # appended); check the first and last sequence numbers.
                flood = [ln for ln in batch.lines if ln.text.startswith("phase=1 seq=")]
                if flood:
                    seen["count"] += len(flood)
                    if seen["first"] is None:
                        seen["first"], seen["t0"] = _seq(flood[0].text), flood[0].ts
                    seen["last"], seen["t1"] = _seq(flood[-1].text), flood[-1].ts
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
            deadline = wall0 + seconds * 10 + 60
            done_at = None

            def appended() -> int:
                return pane.line_count + pane.buffer.dropped + pane.dropped_lines

            while time.monotonic() < deadline:
                time.sleep(0.01)
                if done and self.call_from_thread(appended) >= expected + 1:
                    done_at = time.time()
                    break
            cpu1, wall1 = _cpu_seconds(), time.monotonic()
            follower.close()

            def collect() -> None:
                result.update(
                    expected=expected,
                    reached_buffer=seen["count"],
                    first_seq=seen["first"],
                    last_seq=seen["last"],
                    retained=pane.line_count,
                    evicted_by_cap=pane.buffer.dropped,
                    dropped_backpressure=pane.dropped_lines,
                    skipped_in_rendering=pane.skipped_lines,
                    follower=follower.stats.__dict__,
                    buffer_bytes=pane.buffer.nbytes,
                )

            self.call_from_thread(collect)
            lags = sorted(self.lags)
            span = ((seen["t1"] or 0) - (seen["t0"] or 0)) / 1e9
            result.update(
                generator_rate=(seen["count"] - 1) / span if span > 0 else None,
                done_ts=done[0] if done else None,
                follow_seconds=wall1 - wall0,
                cpu_percent=100 * (cpu1 - cpu0) / (wall1 - wall0),
                finished=done_at is not None,
                tail_latency_s=(done_at - done[0] / 1e9) if done_at and done else None,
                max_loop_lag_ms=1000 * max(lags, default=0.0),
                p99_loop_lag_ms=1000 * lags[int(len(lags) * 0.99)] if lags else 0.0,
                p50_loop_lag_ms=1000 * lags[len(lags) // 2] if lags else 0.0,
            )
            self.call_from_thread(self.exit)

    Bench().run(headless=True, size=(160, 50))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.close()
    return result


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
        out = subprocess.run(
            [sys.executable, __file__, "--child", cid, str(rate), str(seconds)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            timeout=seconds * 10 + 120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"child failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        aitop = json.loads(out.stdout.strip().splitlines()[-1])
        if not aitop.get("done_ts"):
            raise RuntimeError(f"aitop never saw the end of flood 1: {aitop}")
        docker = docker_logs_follow(cid, aitop["done_ts"] + 1, int(rate * seconds))
        back = read_back(engine, cid)
        return {"rate": rate, "seconds": seconds, "aitop": aitop, "docker_logs_f": docker, **back}
    finally:
        _remove(engine, cid)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10000,100000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cid, rate, seconds = args.child
        print(json.dumps(child(cid, int(rate), float(seconds))))
        return
    engine = Engine(timeout=30)
    engine.version()
    build_image(engine)
    results = []
    for rate in (int(r) for r in args.rates.split(",")):
        print(f"flooding at {rate:,} lines/s ...", flush=True)
        results.append(bench_rate(engine, rate, args.seconds))
    report(results)
    meta = {"cpus": os.cpu_count(), "engine": engine.version().get("Version")}
    print(f"\nmachine: {meta['cpus']} CPUs, Docker {meta['engine']}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        print(f"written to {args.json}")


if __name__ == "__main__":
    threading.current_thread().name = "logs-bench"
    main()
