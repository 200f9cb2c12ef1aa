"""The fleet table's EVENTS and LAST EXIT columns (issues 17, 18): the log events a container
printed since its start (out of memory and NCCL failures named, in the warning colour) and how
its last run ended (code, OOM, how long ago, restarts in the last 10 minutes), on a replayed
fleet."""

from __future__ import annotations

import dataclasses

from rich.style import Style
from rich.text import Text

from tests.fleet_fixtures import demo_fleet, replay_app
from tui.fleet.logs.types import LineKind
from tui.fleet.models import FleetSnapshot, LastExit, LogEventCounts
from widgets.container_table import GROUP_PREFIX, ContainerTable

SIZE = (260, 40)


def fleet() -> FleetSnapshot:
    """llama-1 logged 2 CUDA OOMs, an NCCL failure and 3 tracebacks, and its last run was
    OOM-killed 2 minutes ago, 3 restarts in 10 minutes; llama-2 logged 4 errors (some lines
    unread) and last exited with 3 a day ago; llama-3's log was read and held nothing; mistral-1
    was stopped (143) an hour ago; the rest were never read and never exited."""
    snap = demo_fleet()
    now = snap.taken_at
    changes = {
        "aitop-demo-llama-1": (
            LogEventCounts.of(
                {LineKind.CUDA_OOM: 2, LineKind.NCCL: 1, LineKind.TRACEBACK: 3}, read=True
            ),
            LastExit(137, oom_killed=True, at=now - 125),
            3,
        ),
        "aitop-demo-llama-2": (
            LogEventCounts.of({LineKind.ERROR: 4}, read=True, partial=True),
            LastExit(3, at=now - 86400 - 3600),
            0,
        ),
        "aitop-demo-llama-3": (LogEventCounts(read=True), None, 0),
        "aitop-demo-mistral-1": (LogEventCounts(), LastExit(143, at=now - 3600), 0),
    }
    containers = []
    for c in snap.containers:
        if c.info.name in changes:
            events, last, recent = changes[c.info.name]
            info = dataclasses.replace(c.info, last_exit=last, restarts_recent=recent)
            c = dataclasses.replace(c, info=info, log_events=events)
        else:
            c = dataclasses.replace(
                c,
                info=dataclasses.replace(c.info, last_exit=None, restarts_recent=0),
                log_events=LogEventCounts(),
            )
        containers.append(c)
    return dataclasses.replace(snap, containers=tuple(containers))


def cells(table: ContainerTable, key: str) -> tuple[Text, Text]:
    row = table.get_row(key)
    keys = table.column_keys
    return row[keys.index("events")], row[keys.index("exit")]


def pieces(text: Text, table: ContainerTable) -> list[tuple[str, str]]:
    """(text, palette name) of each coloured run of a cell."""
    names = {
        table.get_component_rich_style(f"container-table--{n}", partial=True): n
        for n in ("ok", "warn", "bad", "muted")
    }
    out = []
    for span in text.spans:
        style = span.style
        assert isinstance(style, Style)
        if span.start < span.end:
            out.append((text.plain[span.start : span.end], names[style]))
    return out


async def test_events_and_last_exit_columns():
    snap = fleet()
    by = {c.info.name.removeprefix("aitop-demo-"): c.info.id for c in snap.containers}
    app = replay_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert table.header_label("events") == "EVENTS"
        assert table.header_label("exit") == "LAST EXIT"
        events, exited = cells(table, by["llama-1"])
        assert events.plain == "2 OOM 1 NCCL +3"
        assert pieces(events, table) == [("2 OOM 1 NCCL", "warn")]
        assert exited.plain == "137 OOM 2m ↻3"
        assert pieces(exited, table) == [(" OOM", "bad"), (" 2m", "muted"), (" ↻3", "warn")]
        events, exited = cells(table, by["llama-2"])
        assert events.plain == "≥4" and pieces(events, table) == []  # at least 4, plain
        assert exited.plain == "3 1d01h" and pieces(exited, table)[0] == ("3", "warn")
        events, exited = cells(table, by["llama-3"])
        assert (events.plain, exited.plain) == ("0", "")  # read, none; never exited
        events, exited = cells(table, by["mistral-1"])
        assert events.plain == ""  # its log was not read: not known
        assert exited.plain == "143 1h00m" and pieces(exited, table) == [(" 1h00m", "muted")]
        # A service's row adds up its replicas' events.
        events, exited = cells(table, f"{GROUP_PREFIX}aitop-demo/llama")
        assert events.plain == "≥2 OOM 1 NCCL +7" and exited.plain == ""
        assert pieces(events, table) == [("2 OOM 1 NCCL", "warn")]


async def test_sorting_by_events_puts_the_alarming_first():
    snap = fleet()
    by = {c.info.name.removeprefix("aitop-demo-"): c.info.id for c in snap.containers}
    app = replay_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        table.sort_column = "events"
        table.sort_reverse = True
        await pilot.pause()
        keys = table.row_keys
        assert keys.index(by["llama-1"]) < keys.index(by["llama-2"]) < keys.index(by["llama-3"])
        assert keys.index(by["llama-3"]) < keys.index(by["burner"])
