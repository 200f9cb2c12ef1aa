"""The small formatters every pane shares."""

from __future__ import annotations

from widgets.formatting import counted, human_bytes, human_duration, human_rate, percent


def test_counts_take_the_singular_only_for_one():
    assert counted(1, "new line") == "1 new line"
    assert counted(0, "line") == "0 lines"
    assert counted(2500, "matching line") == "2,500 matching lines"


def test_bytes_rates_durations_and_percents_read_like_docker_stats():
    assert human_bytes(1536) == "1.5K"
    assert human_bytes(None) == "-"
    assert human_rate(0.0) == "0B/s"
    assert human_duration(3 * 3600 + 5 * 60) == "3h05m"
    assert percent(42.123) == "42.1%"
