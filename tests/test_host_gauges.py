"""Host gauges on many-core machines: the per-core bars fit the line at any width."""

from __future__ import annotations

import dataclasses

from textual.widgets import Static

from tests.fleet_fixtures import demo_fleet, replay_app
from tui.fleet.models import HostSnapshot
from widgets.host_gauges import core_bars, cores_per_bar


def test_one_bar_per_core_when_they_fit() -> None:
    assert core_bars((0.0, 50.0, 100.0)) == " ▄█"
    assert cores_per_bar(8, 40) == 1
    assert cores_per_bar(128, 0) == 1  # width not known yet


def test_a_bar_stands_for_several_cores_and_shows_the_busiest() -> None:
    assert cores_per_bar(128, 30) == 5
    loads = (0.0,) * 7 + (100.0,) + (0.0,) * 8
    assert core_bars(loads, 4) == " █  "


async def test_128_cores_fit_the_line_at_any_width() -> None:
    fleet = demo_fleet()
    loads = tuple(float(i % 100) for i in range(128))
    host = dataclasses.replace(fleet.host, per_cpu_percent=loads)
    for width in (80, 120, 320):
        app = replay_app(dataclasses.replace(fleet, host=host))
        async with app.run_test(size=(width, 24)) as pilot:
            await pilot.pause()
            cores = app.query_one("#cpu-cores", Static)
            text = str(cores.render())
            assert text.startswith("128 cores ")
            # Shown whole on one line: nothing clipped at the pane's edge.
            assert len(text) <= cores.content_size.width
            if width == 320:
                assert "per bar" not in text and len(text) == len("128 cores ") + 128
            else:
                assert "per bar" in text


def test_host_snapshot_default_has_no_cores() -> None:
    assert core_bars(HostSnapshot().per_cpu_percent) == ""
