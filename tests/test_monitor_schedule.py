"""The fleet sampler's schedule: ticks `interval` apart from when they were due, however long
each takes (within the interval), and a late tick skips the ones it missed."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.monitor import FleetMonitor, next_tick


def test_the_next_tick_is_due_an_interval_after_this_one_was_due():
    # A tick due at 10.0 that ended at 10.3: the next is due at 11.0, not at 11.3.
    assert next_tick(10.0, 10.3, 1.0) == 11.0
    # Ticks that end early keep the same grid: no drift over many ticks.
    due = 10.0
    for _ in range(1000):
        due = next_tick(due, due + 0.25, 1.0)
    assert due == pytest.approx(1010.0)


def test_a_tick_that_ran_late_is_followed_at_once_and_the_missed_ones_are_skipped():
    # Due at 10.0, ended at 13.5: the next runs at once (13.5), not at 11, 12 and 13 in a row.
    assert next_tick(10.0, 13.5, 1.0) == 13.5
    assert next_tick(next_tick(10.0, 13.5, 1.0), 13.6, 1.0) == 14.5


class _SlowTicks(FleetMonitor):
    """A monitor whose every tick takes `extra` seconds more, and that notes when each began."""

    extra = 0.0
    began: list[float]

    def sample(self) -> None:
        self.began.append(time.monotonic())
        super().sample()
        time.sleep(self.extra)  # the passing of time: a tick that takes long


@pytest.mark.parametrize("extra", [0.15, 0.6])
def test_the_sampler_keeps_its_interval_however_long_a_tick_takes(engine, run_container, extra):
    run_container("sleep 600")  # a running container: ticks read figures (not a first look)
    interval = 0.4
    mon = _SlowTicks(Engine(engine.url), interval=interval)
    mon.extra, mon.began = extra, []
    mon.start()
    try:
        wait_for(lambda: len(mon.began) >= 8, timeout=20)
    finally:
        mon.stop()
    gaps = [b - a for a, b in zip(mon.began[2:], mon.began[3:], strict=False)]
    taken = extra + 0.02  # at least the sleep; the reading itself costs a little more
    if extra < interval:
        # Ticks start an interval apart: the time a tick takes is not added to the interval.
        assert statistics.median(gaps) < interval + 0.08, gaps
    else:
        # Each tick runs past the next one's time: the next starts as soon as it ended, and
        # no missed tick is run in a burst to catch up (no gap shorter than a tick).
        assert min(gaps) >= extra, gaps
        assert statistics.median(gaps) < taken + 0.1, gaps
