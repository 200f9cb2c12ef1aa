"""The small formatters every pane shares."""

from __future__ import annotations

import pytest

from tui.fleet.units import format_bytes
from widgets.formatting import counted, human_duration, human_rate, percent


def test_counts_take_the_singular_only_for_one():
    assert counted(1, "new line") == "1 new line"
    assert counted(0, "line") == "0 lines"
    assert counted(2500, "matching line") == "2,500 matching lines"


def test_bytes_rates_durations_and_percents_read_like_docker_stats():
    assert format_bytes(1536) == "1.5K"
    assert format_bytes(None, na="-") == "-"
    assert human_rate(0.0) == "0B/s"
    assert human_duration(3 * 3600 + 5 * 60) == "3h05m"
    assert percent(42.123) == "42.1%"


@pytest.mark.parametrize(
    ("value", "short", "iec"),
    [
        (None, "N/A", "N/A"),
        (0, "0B", "0 B"),
        (512, "512B", "512 B"),
        (1536, "1.5K", "1.5 KiB"),
        (512 * 2**20, "512M", "512 MiB"),
        (19541180416, "18.2G", "18.2 GiB"),
        (80 * 2**30, "80.0G", "80 GiB"),
        (3 * 2**50, "3.0P", "3 PiB"),
        (-1536, "-1.5K", "-1.5 KiB"),
    ],
)
def test_one_byte_formatter_in_two_styles(value, short, iec):
    """The panes and GPU lines read like `docker stats`, the inspect view like a setting."""
    assert format_bytes(value) == short
    assert format_bytes(value, iec=True) == iec
