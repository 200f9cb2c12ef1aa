"""How long aitop takes to scale a service from 1 to 8 replicas, next to 8 `docker run -d`.

Run it from the repository root:

    .venv/bin/python bench/scale_bench.py              # 5 rounds
    .venv/bin/python bench/scale_bench.py --rounds 10 --replicas 8
    .venv/bin/python bench/scale_bench.py --json out.json

Each round, on the local engine, with the busybox test image (`command: sleep 3600`):

- **docker run x8**: 8 sequential `docker run -d` of the same configuration (labels, command,
  one published container port on a free host port), timed from the first command to the
  last one's return;
- **aitop compose 1->8**: a compose service brought up with one replica by docker-compose,
  then find, plan and carry out (`tui.fleet.actions.scaling`), timed around it: it reads the
  service, creates and starts 7 replicas in parallel, and inspects each for its ports;
- **aitop clone 1->8**: the same for a plain container (7 clones);
- **docker-compose --scale 8** (reference): `docker-compose up -d --scale app=8` on the
  same one-replica project.

Every container is labelled `aitop.bench-scale=<run id>` and removed after each round (also
on Ctrl-C); compose projects are `down`-ed. The engine is shared and busy machines are noisy:
medians are reported with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui.fleet.actions.scaling.execute import ScaleResult, execute_plan  # noqa: E402
from tui.fleet.actions.scaling.groups import find_group  # noqa: E402
from tui.fleet.actions.scaling.plan import plan_scale  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402

IMAGE = "aitop-test-busybox:latest"
LABEL = "aitop.bench-scale"

COMPOSE = """\
version: "2.4"
services:
  app:
    image: {image}
    command: sleep 3600
    stop_grace_period: 1s
    labels:
      {label}: "{run}"
    ports:
      - "80"
"""


def ensure_image(engine: Engine) -> None:
    """Build the busybox test image from the host's static busybox if it is missing."""
    if engine.has_image(IMAGE):
        return
    busybox = shutil.which("busybox") or "/bin/busybox"
    dockerfile = (
        b"FROM scratch\nCOPY busybox /bin/busybox\n"
        b'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["sh"]\n'
    )
    engine.build_image(
        IMAGE,
        {"Dockerfile": (dockerfile, 0o644), "busybox": (Path(busybox).read_bytes(), 0o755)},
    )


def remove_labelled(run: str) -> None:
    """Remove every container of this run."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}={run}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


def scale_to(engine: Engine, *, desired: int, **where: object) -> ScaleResult:
    """What aitop does on `=` once the count is confirmed: find, plan, carry out."""
    found = find_group(engine, **where)  # type: ignore[arg-type]
    return execute_plan(engine, plan_scale(found, desired))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds `fn` took, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def docker_run_sequential(run: str, count: int) -> float:
    """`count` sequential `docker run -d` of the service's configuration."""

    def go() -> None:
        for n in range(count):
            subprocess.run(
                [
                    "docker", "run", "-d", "--name", f"aitop-bench-scale-{run}-run-{n}",
                    "--label", f"{LABEL}={run}", "-p", "80", "--stop-timeout", "1",
                    IMAGE, "sleep", "3600",
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip

    seconds, _ = timed(go)
    remove_labelled(run)
    return seconds


class ComposeProject:
    """A one-replica compose project in a temporary directory."""

    def __init__(self, run: str, tmp: Path) -> None:
        self.name = f"aitopbench{run}{uuid.uuid4().hex[:4]}"
        self.path = tmp / f"{self.name}.yml"
        self.path.write_text(COMPOSE.format(image=IMAGE, label=LABEL, run=run))

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-p", self.name, "-f", str(self.path), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )

    def __enter__(self) -> ComposeProject:
        self("up", "-d")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["docker-compose", "-p", self.name, "-f", str(self.path), "down", "-t", "1"],
            capture_output=True,
            check=False,
        )


def aitop_compose(engine: Engine, run: str, tmp: Path, count: int) -> float:
    with ComposeProject(run, tmp) as project:
        seconds, result = timed(
            lambda: scale_to(engine, group=(project.name, "app"), desired=count)
        )
        assert isinstance(result, ScaleResult)
        if not result.ok or len(result.created) != count - 1:
            raise SystemExit(f"compose scaling failed:\n{result.summary}")
        listed = project("ps", "-q", "app").stdout.split()
        if len(listed) != count:
            raise SystemExit(f"docker-compose ps lists {len(listed)} replicas, not {count}")
    return seconds


def compose_scale(run: str, tmp: Path, count: int) -> float:
    with ComposeProject(run, tmp) as project:
        seconds, _ = timed(lambda: project("up", "-d", "--scale", f"app={count}"))
    return seconds


def aitop_clone(engine: Engine, run: str, count: int) -> float:
    origin = engine.run(
        IMAGE,
        ["sleep", "3600"],
        name=f"aitop-bench-scale-{run}-origin",
        labels={LABEL: run},
        ports=[80],
        port_bindings={80: None},
        stop_timeout=1,
    )
    try:
        seconds, result = timed(lambda: scale_to(engine, container_id=origin, desired=count))
        assert isinstance(result, ScaleResult)
        if not result.ok or len(result.created) != count - 1:
            raise SystemExit(f"clone scaling failed:\n{result.summary}")
    finally:
        remove_labelled(run)
    return seconds


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max, in seconds."""
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON there")
    args = parser.parse_args()
    if shutil.which("docker-compose") is None:
        print("docker-compose is needed (apt-get install docker-compose)", file=sys.stderr)
        return 2
    engine = Engine(timeout=60)
    ensure_image(engine)
    run = uuid.uuid4().hex[:6]
    times: dict[str, list[float]] = {
        f"docker run x{args.replicas} (sequential)": [],
        f"aitop compose 1->{args.replicas}": [],
        f"aitop clone 1->{args.replicas}": [],
        f"docker-compose --scale {args.replicas} (reference)": [],
    }
    keys = list(times)
    with tempfile.TemporaryDirectory(prefix="aitop-scale-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            for n in range(args.rounds):
                # Alternate the order so a slow spell of the shared engine hits each alike.
                jobs = [
                    (keys[0], lambda: docker_run_sequential(run, args.replicas)),
                    (keys[1], lambda: aitop_compose(engine, run, tmp, args.replicas)),
                    (keys[2], lambda: aitop_clone(engine, run, args.replicas)),
                    (keys[3], lambda: compose_scale(run, tmp, args.replicas)),
                ]
                if n % 2:
                    jobs.reverse()
                for key, job in jobs:
                    times[key].append(job())
                print(
                    f"round {n + 1}: "
                    + ", ".join(f"{k.split(' (')[0]} {v[-1]:.2f}s" for k, v in times.items()),
                    flush=True,
                )
        finally:
            remove_labelled(run)
            engine.close()
    figures = {k: summary(v) for k, v in times.items()}
    base = figures[keys[0]]["median_s"]
    print(f"\n{args.rounds} rounds, {os.cpu_count()} CPUs, engine {engine.url}")
    print(f"{'':44} {'median':>8} {'min':>8} {'max':>8} {'vs docker run':>14}")
    for key, fig in figures.items():
        ratio = fig["median_s"] / base if base else float("nan")
        print(
            f"{key:44} {fig['median_s']:7.2f}s {fig['min_s']:7.2f}s {fig['max_s']:7.2f}s "
            f"{ratio:13.2f}x"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rounds": args.rounds, "replicas": args.replicas, "figures": figures}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
