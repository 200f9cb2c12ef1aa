"""aitop for a long while on a fleet that churns: does it leak, does it stay right?

Run it from the repository root, as root (it starts a private dockerd; CI does not run it):

    .venv/bin/python bench/soak.py                 # one hour
    .venv/bin/python bench/soak.py --minutes 10    # shorter

On a private dockerd (its own socket, data and bridge: the host's engine and its containers
are left alone), `--containers` labelled busybox containers run: most sleep; `--loggers` print
`--rate` lines a second each; one restarts in a loop (`--restart=always`, exits after 2 s);
and `--churn` of them are removed and created again, one every `--churn-every` seconds. The
real `aitop` command runs in a private tmux server at 200x50, its log pane open and following
one of the loggers (`/` filters to it, `l` opens its logs, Esc clears the filter: the pane
follows the selection through the churn). Midway the engine is restarted once.

Every `--every` seconds (30) the aitop process is read: RSS, threads, open descriptors and its
CPU over the interval. At the end: RSS growth after the first five minutes (aim: under 20 MB),
threads and descriptors against their level after the first five minutes (aim: back to it
once the churn stops), tracebacks on aitop's stderr or screen (aim: none), and whether the
screen is right: the status line's `N shown` against the engine's own count of the fleet, and
every running container's name on screen. A text chart of RSS goes to stdout and everything to
bench/results/soak-*.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.restart_bench import IMAGE, PrivateEngine, wait_answers  # noqa: E402
from bench.run import Terminal  # noqa: E402
from tui.fleet.demo import build_busybox_image  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
LABEL = "aitop.bench-soak"
WARM_S = 300.0
"""The first five minutes: what aitop settles to; growth is counted from there."""
AIM_RSS_GROWTH = 20 * 2**20


@dataclass
class Sample:
    """One reading of the aitop process."""

    at: float
    """Seconds since aitop started."""
    rss: int
    threads: int
    fds: int
    cpu_percent: float
    """Over the interval before it, % of one core."""


def docker(url: str, *args: str) -> str:
    out = subprocess.run(
        ["docker", "-H", url, *args], capture_output=True, text=True, timeout=120, check=False
    )
    return out.stdout.strip()


def run_container(url: str, name: str, command: str, *extra: str) -> None:
    """Start one labelled soak container (a model container: aitop shows it by default);
    the engine's restart midway brings it back (unless-stopped), as a real fleet's would."""
    policy = () if any(e.startswith("--restart") for e in extra) else ("--restart=unless-stopped",)
    docker(
        url, "run", "-d", "--name", name, "--label", f"{LABEL}=1",
        "--label", f"aitop.model=soak/{name}", *policy, *extra, IMAGE, "sh", "-c", command,
    )  # fmt: skip


def logger_command(rate: int) -> str:
    """A busybox loop printing about `rate` lines a second (in bursts of a tenth)."""
    burst = max(1, rate // 10)
    return (
        f"n=0; while :; do i=0; while [ $i -lt {burst} ]; do "
        'echo "INFO request $n.$i done in 12 ms: tokens=128 status=200"; '
        "i=$((i+1)); done; n=$((n+1)); sleep 0.1; done"
    )


def chart(samples: Sequence[Sample], width: int = 60, height: int = 10) -> str:
    """RSS over time as a small text chart."""
    if not samples:
        return ""
    low = min(s.rss for s in samples)
    high = max(s.rss for s in samples)
    span = max(high - low, 1)
    columns = [samples[int(i * len(samples) / width)] for i in range(min(width, len(samples)))]
    rows = []
    for level in range(height, 0, -1):
        cut = low + span * (level - 0.5) / height
        label = f"{(low + span * level / height) / 2**20:7.1f} MB |"
        rows.append(label + "".join("█" if s.rss >= cut else " " for s in columns))
    rows.append(" " * 10 + "+" + "-" * len(columns))
    rows.append(f"{'':11}0 min{'':>{max(0, len(columns) - 14)}}{samples[-1].at / 60:.0f} min")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--loggers", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="lines a second per logger")
    parser.add_argument("--churn", type=int, default=4)
    parser.add_argument("--churn-every", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between readings")
    args = parser.parse_args(argv)
    aitop = ROOT / ".venv" / "bin" / "aitop"
    private = PrivateEngine()
    private.make_bridge()
    workdir = Path(tempfile.mkdtemp(prefix="aitop-soak-"))
    term = Terminal(workdir)
    samples: list[Sample] = []
    events: list[str] = []
    try:
        private.start()
        url = private.url
        build_busybox_image(Engine(url, timeout=60), IMAGE)
        tag = uuid.uuid4().hex[:4]
        plain = args.containers - args.loggers - args.churn - 1
        for n in range(args.loggers):
            run_container(url, f"soak-log-{n}", logger_command(args.rate))
        run_container(url, "soak-crashloop", "sleep 2; exit 1", "--restart=always")
        for n in range(plain):
            run_container(url, f"soak-idle-{n}", "exec sleep 100000")
        churned = [f"soak-churn-{n}" for n in range(args.churn)]
        for name in churned:
            run_container(url, f"{name}-{tag}-0", "exec sleep 100000")
        # Textual draws on stderr: aitop's own, in the terminal, where a traceback would show.
        aitop_proc = term.start([str(aitop), "--host", url], {"TERM": "tmux-256color"})
        started = time.monotonic()
        deadline = time.monotonic() + 30
        while "soak-log-0" not in term.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        for keys in (["/"], ["soak-log-0"], ["Enter"], ["l"], ["Escape"]):
            term.keys(*keys)
            time.sleep(0.5)
        end = started + args.minutes * 60
        next_churn = time.monotonic() + args.churn_every
        next_sample = time.monotonic()
        restarted = False
        generation = 0
        cpu_before = sum(aitop_proc.cpu_times()[:2])
        at_before = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_churn:
                generation += 1
                slot = generation % args.churn
                old = f"{churned[slot]}-{tag}-{generation - args.churn}"
                docker(url, "rm", "-f", old)
                run_container(url, f"{churned[slot]}-{tag}-{generation}", "exec sleep 100000")
                next_churn = now + args.churn_every
            if not restarted and now - started >= args.minutes * 30:
                events.append(f"{(now - started) / 60:.1f} min: engine restarted")
                private.stop()
                private.launch()
                wait_answers(Engine(url, timeout=5), time.monotonic() + 60)
                restarted = True
                continue
            if now >= next_sample:
                cpu = sum(aitop_proc.cpu_times()[:2])
                sample = Sample(
                    at=now - started,
                    rss=aitop_proc.memory_info().rss,
                    threads=aitop_proc.num_threads(),
                    fds=aitop_proc.num_fds(),
                    cpu_percent=100 * (cpu - cpu_before) / max(now - at_before, 1e-6),
                )
                cpu_before, at_before = cpu, now
                samples.append(sample)
                print(
                    f"  {sample.at / 60:5.1f} min: RSS {sample.rss / 2**20:6.1f} MB, "
                    f"{sample.threads} threads, {sample.fds} fds, CPU {sample.cpu_percent:.1f} %",
                    flush=True,
                )
                next_sample = now + args.every
            time.sleep(0.2)
        # The churn stops: what aitop holds should go back to its level.
        time.sleep(max(10.0, args.every))
        final = Sample(
            at=time.monotonic() - started,
            rss=aitop_proc.memory_info().rss,
            threads=aitop_proc.num_threads(),
            fds=aitop_proc.num_fds(),
            cpu_percent=0.0,
        )
        screen = term.screen()
        fleet = [n for n in docker(url, "ps", "-a", "--format", "{{.Names}}").split() if n]
        shown = re.search(r"(\d+) shown", screen)
        alive = not term.dead()
        term.keys("Escape", "q")
        time.sleep(2)
        # remain-on-exit keeps what aitop last wrote: a traceback on the way out shows too.
        tracebacks = screen.count("Traceback") + term.screen(history=2000).count("Traceback")
        warm = [s for s in samples if s.at >= WARM_S] or samples[-1:]
        base = warm[0]
        growth = max(s.rss for s in warm) - base.rss
        report = {
            "minutes": args.minutes,
            "containers": args.containers,
            "loggers": args.loggers,
            "rate": args.rate,
            "churn": args.churn,
            "churn_every": args.churn_every,
            "events": events,
            "samples": [asdict(s) for s in samples],
            "final": asdict(final),
            "rss_growth_after_warmup": growth,
            "threads_at_warmup": base.threads,
            "fds_at_warmup": base.fds,
            "tracebacks": tracebacks,
            "alive_at_the_end": alive,
            "shown": int(shown.group(1)) if shown else None,
            "engine_containers": len(fleet),
        }
        print(chart(samples))
        print(
            f"RSS growth after {WARM_S / 60:.0f} min: {growth / 2**20:.1f} MB "
            f"(aim under {AIM_RSS_GROWTH / 2**20:.0f} MB: "
            f"{'yes' if growth < AIM_RSS_GROWTH else 'no'})"
        )
        print(
            f"threads {base.threads} -> {final.threads}, fds {base.fds} -> {final.fds} "
            "(at 5 min -> after the churn stopped)"
        )
        print(f"tracebacks: {tracebacks}")
        print(
            f"screen: {report['shown']} shown, the engine has {len(fleet)} "
            f"({'right' if report['shown'] == len(fleet) else 'WRONG'}); aitop "
            f"{'still ran' if alive else 'had exited'} at the end"
        )
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(report, indent=1))
        print(f"results: {out.relative_to(ROOT)}")
        return 0
    finally:
        term.close()
        private.remove()


if __name__ == "__main__":
    sys.exit(main())
