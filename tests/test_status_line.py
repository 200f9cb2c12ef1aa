"""The status line on narrow terminals: the less important parts go first, nothing is cut
mid-word, and what must be seen (a GPU memory alert, an unreachable engine) stays."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tests.fleet_fixtures import demo_fleet, demo_fleet_with_gpus, replay_app, unreachable
from tui.fleet.models import FleetSnapshot
from widgets.status_line import Part, StatusLine, fit, shorten


def test_shorten_cuts_at_a_word_boundary() -> None:
    text = Text("most is held by container aitop-demo-mistral-1: 54.0G")
    assert shorten(text, 20).plain == "most is held by…"
    assert shorten(text, 200) is text
    # A single word wider than the line is the only thing ever cut inside a word.
    assert shorten(Text("aitop-demo-mistral-1"), 8).plain == "aitop-d…"


def test_fit_drops_the_most_dispensable_parts_first() -> None:
    parts = [
        Part(Text("● Docker 20.10")),
        Part(Text(" @ unix:///var/run/docker.sock"), drop=2),
        Part(Text(" · stats: cgroup"), drop=5),
        Part(Text(" · a: toggle"), drop=9),
    ]
    full = "● Docker 20.10 @ unix:///var/run/docker.sock · stats: cgroup · a: toggle"
    assert fit(parts, 200).plain == full
    assert fit(parts, 60).plain == "● Docker 20.10 @ unix:///var/run/docker.sock · stats: cgroup"
    assert fit(parts, 45).plain == "● Docker 20.10 @ unix:///var/run/docker.sock"
    assert fit(parts, 30).plain == "● Docker 20.10"
    # Not laid out yet: everything.
    assert fit(parts, 0).plain.endswith("a: toggle")


async def status_at(snapshot: FleetSnapshot, width: int) -> str:
    app = replay_app(snapshot)
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        line = app.query_one(StatusLine)
        return str(line.render())


def assert_whole_words(narrow: str, wide: str, width: int) -> None:
    assert 0 < len(narrow) <= width - 2  # padding 0 1
    words = set(wide.split())
    for word in narrow.split():
        assert word in words or (word.endswith("…") and word[:-1] in words), (word, narrow)


async def test_at_80_columns_the_status_line_keeps_whole_words(tmp_path: Path) -> None:
    plain = demo_fleet()
    narrow, wide = await status_at(plain, 80), await status_at(plain, 220)
    assert_whole_words(narrow, wide, 80)
    assert "Docker" in narrow and "shown" in narrow
    assert "stats:" in wide and "stats:" not in narrow

    # The GPU memory alert is what stays; the engine's details give way to it.
    gpus = demo_fleet_with_gpus(tmp_path)
    narrow, wide = await status_at(gpus, 80), await status_at(gpus, 220)
    assert_whole_words(narrow, wide, 80)
    assert narrow.startswith("⚠ GPU 1") and narrow.endswith("…")

    gone = unreachable(plain)
    narrow, wide = await status_at(gone, 80), await status_at(gone, 220)
    assert_whole_words(narrow, wide, 80)
    assert narrow.startswith("✖ engine unreachable (retrying in 4s): the Docker engine")


async def test_read_only_mode_is_said_first_and_stays_on_a_narrow_line() -> None:
    """Issue 16, item 11: read-only mode is seen, at 60 columns too, and while unreachable."""
    for snapshot in (demo_fleet(), unreachable(demo_fleet())):
        app = replay_app(snapshot)
        async with app.run_test(size=(60, 24)) as pilot:
            line = app.query_one(StatusLine)
            line.read_only = True
            await pilot.pause()
            shown = str(line.render())
            assert shown.startswith("read-only · "), shown
            line.read_only = False
            await pilot.pause()
            assert "read-only" not in str(line.render())
