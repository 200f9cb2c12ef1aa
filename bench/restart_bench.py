"""How fast aitop notices an engine restart and recovers from it, ten times in a row.

Run it from the repository root (as root: it starts a private dockerd):

    .venv/bin/python bench/restart_bench.py                  # 10 restarts, 20 containers
    .venv/bin/python bench/restart_bench.py --restarts 3 --containers 5

A private dockerd (its own socket, data root and bridge, as the tests' second engine) runs
`--containers` labelled busybox containers with `--restart=always`, so that every restart of
the engine brings them back and the fleet must be resynchronised to be right. aitop runs
in-process as the command starts it (`AitopApp` on a `FleetMonitor` at the default interval),
headless under Textual's Pilot. Then, `--restarts` times:

1. the engine is stopped (SIGTERM, as `systemctl restart docker` does): *gone* is when its
   process has exited; *shown* is when the status line first says "engine unreachable";
   `unreachable` = shown - gone (negative: aitop saw the event stream close before the
   process had finished exiting: dockerd closes its streams when told to stop, then waits
   up to 10 s for each container's stop), and shown - SIGTERM beside it;
2. the engine is started again: *answers* is the first time its API answers a ping (polled
   every 20 ms on a thread of its own); *right* is when the table is back: the status line
   no longer says unreachable and the table's rows are exactly the engine's containers with
   the engine's states (its restart policy brings the containers back meanwhile: each look
   compares with the engine's listing of that moment); `back` = right - answers.

The aims (issue 14): unreachable shown within 1 s, the table right within 2 s of the engine
answering, 10 times out of 10. Figures go to stdout and bench/results/restart-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import dockerd_argv, start_daemon, stop_daemon  # noqa: E402
from tui.config import Config  # noqa: E402
from tui.fleet.demo import build_busybox_image  # noqa: E402
from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
IMAGE = "aitop-restart-bench:latest"
BRIDGE = "aitopbrr0"
SUBNET = "192.168.214.1/24"
LABEL = "aitop.bench-restart"
AIM_SHOWN_S = 1.0
AIM_BACK_S = 2.0
STEP = 0.02
"""Seconds between two looks at the screen and at the engine."""


@dataclass
class Restart:
    """The timings of one engine restart, seconds."""

    unreachable: float
    """Status line says unreachable, after the engine process exited (negative: before)."""
    shown_after_stop: float
    """Status line says unreachable, after the engine was told to stop (SIGTERM)."""
    back: float
    """Table right again, after the engine first answered."""
    engine_down: float
    """How long the engine took to stop."""
    engine_up: float
    """How long the engine took to answer again after it was started."""


class PrivateEngine:
    """A dockerd of our own that can be stopped and started without touching the host's."""

    def __init__(self) -> None:
        self.root = Path(f"/tmp/aitop-restart-{uuid.uuid4().hex[:6]}")
        self.root.mkdir()
        self.url = f"unix://{self.root}/docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.made_bridge = False

    def make_bridge(self) -> None:
        """The engine's own bridge: another dockerd must not take docker0 over."""
        made = subprocess.run(
            ["ip", "link", "add", "name", BRIDGE, "type", "bridge"], capture_output=True
        )
        self.made_bridge = made.returncode == 0
        if self.made_bridge:
            subprocess.run(["ip", "addr", "add", SUBNET, "dev", BRIDGE], check=True)
            subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)

    def argv(self) -> list[str]:
        """dockerd on our socket, data and exec roots and bridge."""
        return dockerd_argv(self.root, self.url, "--bridge", BRIDGE)

    def start(self) -> None:
        """Start dockerd; returns once it answers (raises SystemExit when it does not)."""
        self.proc, failed = start_daemon(self.argv(), self.root / "dockerd.log", self.url, 60)
        if failed is not None:
            raise SystemExit(f"the private dockerd did not start:\n{failed}")

    def launch(self) -> None:
        """Start dockerd without waiting for it."""
        with open(self.root / "dockerd.log", "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=out, start_new_session=True
            )

    def stop(self) -> None:
        """Stop dockerd (SIGTERM; SIGKILL after 30 s)."""
        stop_daemon(self.proc, 30)
        self.proc = None

    def remove(self) -> None:
        """Stop it, and remove its data and bridge."""
        if self.proc is None:
            self.launch()
            wait_answers(Engine(self.url, timeout=5), time.monotonic() + 60)
        subprocess.run(
            ["sh", "-c", f"docker -H {self.url} rm -f $(docker -H {self.url} ps -aq)"],
            capture_output=True,
        )
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.made_bridge:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def wait_answers(engine: Engine, deadline: float) -> float:
    """The monotonic time at which the engine first answers a ping (polled every STEP)."""
    while time.monotonic() < deadline:
        try:
            engine.version()
            return time.monotonic()
        except EngineError:
            engine.reset()
            time.sleep(STEP)
    raise SystemExit("the private dockerd did not answer within 60 s")


def engine_states(engine: Engine) -> dict[str, str]:
    """Every container of the engine with its state."""
    return {c["Id"]: c["State"] for c in engine.container_summaries()}


async def run(restarts: int, containers: int) -> list[Restart]:
    """Start the engine, the fleet and aitop, and restart the engine `restarts` times."""
    from tests.fleet_fixtures import live_app
    from widgets.container_table import ContainerTable
    from widgets.status_line import StatusLine

    private = PrivateEngine()
    private.make_bridge()
    try:
        private.start()
        engine = Engine(private.url, timeout=60)
        build_busybox_image(engine, IMAGE)
        for n in range(containers):
            subprocess.run(
                [
                    "docker", "-H", private.url, "run", "-d", "--restart=always",
                    "--label", f"{LABEL}=1", "--label", f"aitop.model=restart-{n}",
                    "--name", f"restart-{n}", IMAGE, "sleep", "100000",
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
        probe = Engine(private.url, timeout=5)
        config = Config()
        app = live_app(Engine(private.url), config=config)
        results: list[Restart] = []
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.query_one(ContainerTable)
            status = app.query_one(StatusLine)

            def unreachable_shown() -> bool:
                return "engine unreachable" in str(status.render())

            def right(expected: dict[str, str]) -> bool:
                snap = app.last_snapshot
                if unreachable_shown() or snap is None or not snap.engine.reachable:
                    return False
                shown = {c.info.id: c.info.state for c in snap.containers}
                return shown == expected and set(table.row_keys) >= set(expected)

            async def until(predicate: Callable[[], bool], timeout: float = 60) -> float:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if predicate():
                        return time.monotonic()
                    await pilot.pause(STEP)
                raise SystemExit(f"timed out waiting (status: {status.render()})")

            await until(lambda: right(engine_states(probe)))
            for number in range(1, restarts + 1):
                stopping = time.monotonic()
                stopper = threading.Thread(target=private.stop)
                stopper.start()
                shown_at = await until(unreachable_shown)
                while stopper.is_alive():
                    await pilot.pause(STEP)
                gone_at = time.monotonic()
                launched = time.monotonic()
                private.launch()
                answered = await asyncio.to_thread(wait_answers, probe, launched + 60)
                # Right: what the engine says at that moment (its restart policy is bringing
                # the containers back meanwhile).
                right_at = await until(lambda: right(engine_states(probe)))
                result = Restart(
                    unreachable=shown_at - gone_at,
                    shown_after_stop=shown_at - stopping,
                    back=right_at - answered,
                    engine_down=gone_at - stopping,
                    engine_up=answered - launched,
                )
                results.append(result)
                print(
                    f"  restart {number:2d}: unreachable shown {result.shown_after_stop:.2f} s "
                    f"after SIGTERM ({result.unreachable:+.2f} s from the exit), "
                    f"table right {result.back:.2f} s after the engine answered "
                    f"(engine: {result.engine_down:.2f} s to stop, {result.engine_up:.2f} s "
                    "to answer)",
                    flush=True,
                )
                # Let the restart policy bring every container back before the next restart.
                await until(lambda: all(s == "running" for s in engine_states(probe).values()))
        return results
    finally:
        private.remove()


def report(results: Sequence[Restart], containers: int) -> str:
    """The summary lines."""
    shown = [max(0.0, r.unreachable) for r in results]
    after_stop = [r.shown_after_stop for r in results]
    back = [r.back for r in results]
    ok_shown = sum(s <= AIM_SHOWN_S for s in shown)
    ok_back = sum(b <= AIM_BACK_S for b in back)
    return "\n".join(
        [
            f"=== {len(results)} engine restarts, {containers} containers ===",
            f"unreachable shown after the engine exited: median {statistics.median(shown):.2f} s,"
            f" max {max(shown):.2f} s; within {AIM_SHOWN_S:.0f} s: {ok_shown}/{len(results)}"
            f" (after SIGTERM: median {statistics.median(after_stop):.2f} s,"
            f" max {max(after_stop):.2f} s)",
            f"table right after the engine answered: median {statistics.median(back):.2f} s, "
            f"max {max(back):.2f} s; within {AIM_BACK_S:.0f} s: {ok_back}/{len(results)}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the restarts and print the figures."""
    parser = argparse.ArgumentParser(prog="bench/restart_bench.py", description=__doc__)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--containers", type=int, default=20)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.restarts, args.containers))
    print(report(results, args.containers))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"restart-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {"containers": args.containers, "restarts": [asdict(r) for r in results]}, indent=1
        )
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
