"""A crash-looping model container's logs, as a newcomer opens them (issue 16, item 1).

Each run's own lines come before the `── container exited with code 3 ──` line that ends it,
and the restart line before the next run's lines: what the pane shows is in time order,
whichever of the event stream and the log stream told aitop first.
"""

from __future__ import annotations

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.logs.types import LineKind
from widgets.container_table import ContainerTable
from widgets.log_pane import LogPane

CRASH_LOOP = 'echo "RuntimeError: CUDA out of memory"; echo Traceback; usleep 300000; exit 3'
"""Runs shorter than the second a log reader waits between asking a stopped container
whether it started again: the engine's events tell of a run's end before its lines come."""


async def test_a_crash_loops_exits_come_after_each_runs_own_lines(
    engine, run_container, session_tag
):
    cid = run_container(CRASH_LOOP, labels={"aitop.model": "x"}, restart_policy={"Name": "always"})
    app = live_app(Engine(engine.url))
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(ContainerTable)
        await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
        await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=15)
        table.move_cursor(row=table.row_keys.index(cid))
        await pilot.press("l")
        pane = app.query_one(LogPane)

        def exits() -> int:
            return sum(line.kind == LineKind.EXITED for line in pane.buffer)

        await pilot_wait_for(pilot, lambda: exits() >= 5, timeout=40, what="five exits")
        await pilot.press("t")  # timestamps on, as the user who saw it did
        assert pane.show_timestamps
        lines = list(pane.buffer)
        shown = [(line.kind, line.text) for line in lines]
        ts = [line.ts for line in lines]
        assert ts == sorted(ts), shown

        # From the first restart seen live (the history before it has no boundaries: the
        # events of runs before the pane opened are not replayed), every run is its restart,
        # its two lines and its exit, in that order.
        first = next(i for i, (kind, _) in enumerate(shown) if kind == LineKind.RESTART)
        runs: list[list[str]] = [[]]
        for kind, text in shown[first:]:
            if kind == LineKind.RESTART:
                assert runs[-1] == [], f"a restart inside a run: {shown}"
                continue
            runs[-1].append(text)
            if kind == LineKind.EXITED:
                runs.append([])
        assert len(runs) >= 4, shown
        for run in runs[:-1]:
            assert run[-1] == "\u2500\u2500 container exited with code 3 \u2500\u2500", shown
            assert run[:-1] == ["RuntimeError: CUDA out of memory", "Traceback"], shown
