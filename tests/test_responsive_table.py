"""The fleet table fits the window (issue 16, items 4, 5 and 16's HOST column).

At 80 columns what a glance needs comes first (state, CPU, memory, GPU, the serving
figures); columns blank for every row are not drawn; `c` picks and orders the columns and the
choice is written to `[table] columns`; `→` moves a screen's worth of columns; a window made
smaller keeps the cursor's row on screen; HOST is not drawn beside the host rows; the footer
leaves out the keys that do not fit whole.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.widgets._footer import FooterKey

from tests.fleet_fixtures import (
    ReplayMonitor,
    demo_fleet,
    demo_fleet_with_gpus,
    replay_app,
    several_engines,
)
from tui.app import AitopApp
from tui.config import TABLE_COLUMNS, Config, TableConfig, load_config
from tui.fleet.models import FleetSnapshot
from tui.screens.columns import ColumnsScreen
from widgets.container_table import COLUMN_KEYS, DEFAULT_COLUMNS, ContainerTable

SIZES = [(80, 24), (200, 50)]
GPU_COLUMNS = ("gpu_mem", "gpu_util", "gpus")
SERVING_COLUMNS = ("serving", "requests", "tok_s", "kv", "ttft")


def without_servers(fleet: FleetSnapshot) -> FleetSnapshot:
    """The same fleet with no model server answering (and no log events or past exits)."""
    return dataclasses.replace(
        fleet,
        containers=tuple(
            dataclasses.replace(
                c,
                serving=None,
                info=dataclasses.replace(c.info, last_exit=None, restarts_recent=0),
            )
            for c in fleet.containers
        ),
    )


def header(table: ContainerTable) -> str:
    """The table's header line as drawn."""
    return table.render_line(0).text


def on_screen(table: ContainerTable) -> list[str]:
    """Keys of the columns drawn whole within the window, left to right (name first)."""
    width = table.scrollable_content_region.width
    x, scroll = 0, int(table.scroll_offset.x)
    keys = table.shown_columns
    seen: list[str] = []
    for n, (key, w) in enumerate(zip(keys, table.shown_widths, strict=True)):
        start = x if n == 0 else x - scroll
        end = start + w + 2
        if (n == 0 or start >= table.shown_widths[0] + 2) and end <= width:
            seen.append(key)
        x += w + 2
    return seen


@pytest.mark.parametrize("size", SIZES)
async def test_what_matters_fits_first_without_gpus(size):
    app = replay_app(demo_fleet())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        visible = on_screen(table)
        assert visible[:4] == ["name", "state", "cpu", "mem"], visible
        # No GPUs on this machine: no GPU column at all, the serving figures right after.
        assert not set(GPU_COLUMNS) & set(table.shown_columns)
        assert visible[4:6] == ["serving", "tok_s"], visible
        line = header(table)
        for label in ("NAME", "STATE", "CPU%", "MEM / LIMIT", "SERVING"):
            assert label in line, line
        assert "GPU" not in line
        if size == (200, 50):
            assert {"tok_s", "model", "image"} <= set(visible)


@pytest.mark.parametrize("size", SIZES)
async def test_gpu_columns_fit_at_80_where_there_are_gpus(size, tmp_path):
    app = replay_app(demo_fleet_with_gpus(tmp_path))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        visible = on_screen(table)
        assert visible[:5] == ["name", "state", "cpu", "mem", "gpu_mem"], visible
        line = header(table)
        assert "GPU MEM" in line and "CPU%" in line
        if size == (200, 50):
            assert {"gpu_util", "gpus"} <= set(visible)
        # Shrunk names stay readable and end in an ellipsis rather than running over.
        rows = [table.render_line(y).text for y in range(1, 6)]
        assert all(len(r) == table.scrollable_content_region.width for r in rows)


@pytest.mark.parametrize("size", SIZES)
async def test_columns_blank_for_every_row_are_not_drawn(size):
    app = replay_app(without_servers(demo_fleet()))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        shown = set(table.shown_columns)
        assert not shown & set(SERVING_COLUMNS), shown
        assert not shown & set(GPU_COLUMNS)
        assert "exit" not in shown
        assert "SERVING" not in header(table) and "LAST EXIT" not in header(table)
        # get_row still has every column's cell, for whoever reads a row.
        assert set(table.column_keys) == set(COLUMN_KEYS)


@pytest.mark.parametrize("size", SIZES)
async def test_right_moves_a_screen_of_columns(size):
    app = replay_app(demo_fleet())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        first = on_screen(table)
        hidden = [k for k in table.shown_columns if k not in first]
        await pilot.press("right")
        await pilot.pause()
        if not hidden:  # everything fits: nothing to move to
            assert table.scroll_offset.x == 0
            return
        after = on_screen(table)
        # The name stays, and the first column that did not fit comes next to it.
        assert after[0] == "name" and after[1] == hidden[0], (first, after)
        assert table.scroll_offset.x > 5
        await pilot.press("left")
        await pilot.pause()
        assert on_screen(table) == first


async def test_the_cursor_row_stays_on_screen_when_the_window_shrinks():
    base = demo_fleet()
    template = next(c for c in base.containers if c.info.name == "aitop-demo-burner")
    many = tuple(
        dataclasses.replace(
            template,
            info=dataclasses.replace(template.info, id=f"{n:064d}", name=f"nc-{n:02d}"),
        )
        for n in range(1, 61)
    )
    app = replay_app(dataclasses.replace(base, containers=many))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        for _ in range(30):
            await pilot.press("down")
        await pilot.pause()
        assert table.cursor_row == 30
        for size in ((60, 15), (80, 24), (60, 12)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            top = int(table.scroll_offset.y)
            rows = table.scrollable_content_region.height - 1
            assert top <= table.cursor_row < top + rows, (size, top, rows)
            assert f"nc-{31:02d}" in table.render_line(table.cursor_row - top + 1).text


@pytest.mark.parametrize("size", SIZES)
async def test_host_is_not_drawn_beside_the_host_rows(size):
    app = AitopApp([ReplayMonitor(fleet) for fleet in several_engines()], config=Config())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert any(k.startswith("host:") for k in table.row_keys)
        assert "host" not in table.shown_columns
        assert "HOST" not in header(table)
        assert table.shown_columns[:4] == ("name", "state", "cpu", "mem")


@pytest.mark.parametrize("size", SIZES)
async def test_configured_columns_are_shown_in_their_order(size):
    config = Config(table=TableConfig(columns=("model", "cpu", "state")))
    app = replay_app(demo_fleet(), config=config)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert table.shown_columns == ("name", "model", "cpu", "state")


@pytest.mark.parametrize("size", SIZES)
async def test_c_picks_and_orders_the_columns_and_keeps_them(size, tmp_path, monkeypatch):
    config_file = tmp_path / "config.toml"
    original = '# mine\ntheme = "nord"   # a comment kept\n\n[refresh]\nfleet = 2.0\n'
    config_file.write_text(original)
    monkeypatch.setenv("AITOP_CONFIG", str(config_file))
    app = replay_app(demo_fleet())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ColumnsScreen)
        # First offered: state. Untick it, then move the next one (cpu) below mem.
        assert screen.order[:3] == ("state", "cpu", "mem")
        # No GPUs here: their columns are offered, and said to be blank.
        assert set(GPU_COLUMNS) <= screen.blank and "cpu" not in screen.blank
        await pilot.press("space", "down", "right_square_bracket")
        await pilot.pause()
        assert screen.order[:3] == ("state", "mem", "cpu")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ColumnsScreen)
        assert table.shown_columns[:3] == ("name", "mem", "cpu")
        assert "state" not in table.columns
        await app.workers.wait_for_complete()
        await pilot.pause()
    text = config_file.read_text()
    assert text.startswith(original)
    loaded = load_config(str(config_file))
    assert not loaded.problems
    assert loaded.config.table.columns == table.columns
    assert loaded.config.theme == "nord" and loaded.config.refresh.fleet == 2.0


async def test_escape_leaves_the_columns_as_they_were(tmp_path, monkeypatch):
    config_file = tmp_path / "config.toml"
    monkeypatch.setenv("AITOP_CONFIG", str(config_file))
    app = replay_app(demo_fleet())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        await pilot.press("c", "space", "escape")
        await pilot.pause()
        assert table.columns == DEFAULT_COLUMNS
    assert not Path(config_file).exists()


def test_the_config_knows_every_column_of_the_table():
    assert TABLE_COLUMNS == DEFAULT_COLUMNS
    assert set(TABLE_COLUMNS) == set(COLUMN_KEYS)


@pytest.mark.parametrize("size", [(60, 15), *SIZES])
async def test_the_footer_never_ends_in_a_cut_label(size):
    app = replay_app(demo_fleet())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause()
        keys = list(app.query(FooterKey))
        palette = next(k for k in keys if k.has_class("-command-palette"))
        shown = [k for k in keys if k.display and k is not palette]
        assert shown and shown[0].key == "question_mark"
        # Every key drawn is drawn whole, left of the palette's key; the ones after are not.
        assert all(k.region.right <= palette.region.x for k in shown), [
            (k.key, k.region) for k in shown
        ]
        assert keys.index(shown[-1]) == len(shown) - 1
        if size == (80, 24):
            assert not next(k for k in keys if k.key == "s").display
            # Under a dialog too (its keys are composed again, and not laid out there).
            await pilot.press("c")
            await pilot.pause()
            await pilot.pause()
            under = list(app.screen_stack[0].query(FooterKey))
            assert under and not next(k for k in under if k.key == "s").display


@pytest.mark.parametrize("size", SIZES)
async def test_sorting_steps_and_clicks_follow_the_columns_drawn(size):
    app = replay_app(demo_fleet())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        stepped = []
        for _ in table.shown_columns:
            await pilot.press("greater_than_sign")
            stepped.append(table.sort_column)
        # > goes left to right along what is drawn (no GPU column here), back to the name.
        assert tuple(stepped) == (*table.shown_columns[1:], "name")
        # A click on a header sorts by the column drawn there.
        x = sum(w + 2 for w in table.shown_widths[:2]) + 1
        await pilot.click(ContainerTable, offset=(x, 0))
        await pilot.pause()
        assert table.sort_column == table.shown_columns[2] == "cpu"
        assert "CPU% ▼" in header(table)
