"""What counting the events in model containers' logs costs aitop (issue 18, item 4).

Run it from the repository root:

    .venv/bin/python bench/log_events_bench.py                  # 50 containers, 60 s
    .venv/bin/python bench/log_events_bench.py --containers 50 --seconds 120 --rate 20
    .venv/bin/python bench/log_events_bench.py --cleanup        # remove what a killed run left

`--containers` busybox containers labelled as model containers each log `--rate` lines a
second (an ordinary request line; every 100th line an error, every 500th a CUDA OOM). A
`LogWatch` reads them exactly as the monitor does, at the monitor's cadence: a round every
`LOG_ROUND_S` seconds, at most `PER_ROUND` containers a round (the longest unread first), each
read the last `TAIL_LINES` lines since the previous one (`tui.fleet.monitor.read_log`, the
engine's `since` cursor), classified, its events counted. Printed:

- *aitop CPU*: this process's CPU time (all threads) over the window, % of one core: the
  reads, the splitting, the classification and the counting (nothing else runs here);
- *per read*: that CPU time divided by the reads, and the wall time a read takes (the
  engine's answer included: what a one-shot `aitop snapshot --json` waits per container);
- *dockerd+*: the engine's extra CPU while the reads run (`dockerd`'s CPU over the window minus
  its CPU over a window of the same length just before, with the same containers logging and
  no reads), % of one core; N/A where the engine's process cannot be read;
- the reads, lines and bytes, how often each container was read, and the counts one container
  ended with (a check that the counting ran).

Containers are labelled `aitop.bench-log-events=<run id>` and removed at the end (on Ctrl-C too).

One run (2 CPUs, Docker 20.10.24, json-file, a machine shared with other test runs), the
defaults (50 containers, 10 lines/s each, 60 s): 30 rounds, 480 reads, each container read
every 6.3 s, 35,385 lines, 3.7 MB; **aitop 1.15 % of one core, 1.44 ms a read**; dockerd +2.5 %
of one core (8.1 % with the 50 containers logging and no reads). With `--rate 50` (busybox's
sleep held it near 21 lines/s) and 30 s: 1.46 % of one core, 1.82 ms a read; dockerd+ was
within the noise. Counts are partial (a lower bound) for a container that logs more than
TAIL_LINES lines between two of its reads, and for one whose run logged more than that before
its first read.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from functools import partial
from pathlib import Path

# The benchmark watches the engine's process from outside aitop; the app's psutil rule does
# not apply.
import psutil  # noqa: TID251

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui.fleet.demo import build_busybox_image  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402
from tui.fleet.monitor import read_log, run_log_start  # noqa: E402
from tui.fleet.serving.logstate import LOG_ROUND_S, PER_ROUND, TAIL_LINES, LogWatch  # noqa: E402

LABEL = "aitop.bench-log-events"
IMAGE = "aitop-bench-busybox:latest"


def logging_command(rate: float) -> list[str]:
    """A shell that logs `rate` lines a second: requests, an error every 100th, a CUDA OOM
    every 500th."""
    script = (
        "i=0; while :; do i=$((i+1)); "
        'echo "INFO:     10.0.0.1:5000 - \\"POST /v1/completions HTTP/1.1\\" 200 OK req=$i"; '
        '[ $((i % 100)) -eq 0 ] && echo "ERROR 12-02 17:00:00 [engine.py:42] request $i failed"; '
        '[ $((i % 500)) -eq 0 ] && echo "torch.OutOfMemoryError: CUDA out of memory. '
        'Tried to allocate 2.00 GiB"; '
        f"sleep {1 / rate:.3f}; done"
    )
    return ["sh", "-c", script]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dockerd() -> psutil.Process | None:
    """The engine's process, if this user may read its CPU times."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "dockerd":
            try:
                proc.cpu_times()
            except psutil.Error:
                return None
            return proc
    return None


def engine_cpu(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def remove_labelled(engine: Engine, value: str | None = None) -> int:
    wanted = f"{LABEL}={value}" if value else LABEL
    ids = engine.ids_with_label(wanted)
    for cid in ids:
        try:
            engine.remove(cid)
        except EngineError as exc:
            print(f"  could not remove {cid[:12]}: {exc}")
    return len(ids)


def run(engine: Engine, n: int, seconds: float, rate: float) -> None:
    if not engine.has_image(IMAGE):
        build_busybox_image(engine, IMAGE)
    run_id = uuid.uuid4().hex[:6]
    print(f"{n} model containers logging {rate:g} lines/s each; window {seconds:g} s")
    ids: list[str] = []
    try:
        for k in range(n):
            ids.append(
                engine.run(
                    IMAGE,
                    logging_command(rate),
                    labels={LABEL: run_id, "aitop.model": "bench/log-events"},
                    name=f"aitop-bench-logev-{run_id}-{k:03d}",
                    network_mode="none",
                )
            )
        wanted = [(cid, run_log_start(engine.inspect(cid))) for cid in ids]
        watch = LogWatch(partial(_read, engine))
        proc = dockerd()
        time.sleep(3.0)  # the passing of time: the containers' first lines are written
        # Baseline: the engine with the same containers logging and no reads.
        e0 = engine_cpu(proc)
        time.sleep(seconds)
        e1 = engine_cpu(proc)
        # The window: rounds at the monitor's cadence.
        c0, w0 = cpu_seconds(), time.monotonic()
        due = w0
        while time.monotonic() - w0 < seconds:
            watch.round(wanted)
            due += LOG_ROUND_S
            time.sleep(max(0.0, due - time.monotonic()))
        c1, w1 = cpu_seconds(), time.monotonic()
        e2 = engine_cpu(proc)
        wall = w1 - w0
        counts = watch.counts
        cpu = 100 * (c1 - c0) / wall
        print(f"  rounds {counts.rounds}, reads {counts.reads} (at most {PER_ROUND} a round, every")
        every = wall * n / max(counts.reads, 1)
        print(f"  {LOG_ROUND_S:g} s: each container read every {every:.1f} s),")
        print(f"  lines {counts.lines:,} (at most {TAIL_LINES} a read), bytes {counts.bytes:,}")
        per_read = 1000 * (c1 - c0) / max(counts.reads, 1)
        wall_read = 1000 * counts.seconds / max(counts.reads, 1)
        print(f"  aitop CPU: {cpu:.2f} % of one core; {per_read:.2f} ms a read")
        print(f"  wall time a read (engine's answer included): {wall_read:.2f} ms")
        if e0 is not None and e1 is not None and e2 is not None:
            extra = 100 * ((e2 - e1) - (e1 - e0)) / wall
            print(
                f"  dockerd+: {extra:.2f} % of one core (baseline {100 * (e1 - e0) / wall:.2f} %)"
            )
        else:
            print("  dockerd+: N/A (the engine's process cannot be read)")
        events = watch.events()
        sample = events.get(ids[0])
        print(
            f"  counts of one container: {sample.as_dict() if sample else None}"
            f"{' (partial)' if sample and sample.partial else ''}"
        )
    finally:
        print(f"removing {len(ids)} containers")
        remove_labelled(engine, run_id)


def _read(engine: Engine, cid: str, tail: int, since_ns: int, max_bytes: int):
    return read_log(engine, cid, tail, since_ns, max_bytes, tty=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10.0, help="lines a second per container")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    engine = Engine()
    if args.cleanup:
        print(f"removed {remove_labelled(engine)} containers")
        return
    try:
        run(engine, args.containers, args.seconds, args.rate)
    except KeyboardInterrupt:
        print("interrupted")


if __name__ == "__main__":
    main()
