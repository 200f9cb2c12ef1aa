"""Model servers on screen (issue 11 item 4): the fleet table's serving columns (state, running /
queued, generated tok/s, KV %, TTFT p95), their warning colours, the sums on a service's header
row, and the serving view (`v`, or the palette) that follows its container live. Replayed
fleets carry readings made here; one test runs a real stand-in vLLM server (busybox httpd in the
serving rig's image, tests/fixtures/serving/rig.py) under a live app."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator

import pytest
from rich.style import Style
from rich.text import Text
from textual.command import CommandInput, CommandList, CommandPalette

from tests.fixtures.serving.rig import serve_command, server_command
from tests.fleet_fixtures import ReplayMonitor, demo_fleet, live_app, replay_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.app import AitopApp
from tui.commands import palette_entries
from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.models import FleetSnapshot
from tui.fleet.serving.types import (
    JSON_KEYS,
    HistoryPoint,
    LoadedModel,
    ServingReading,
    ServingState,
)
from tui.screens.serving import ServingScreen
from widgets.container_table import COLUMN_KEYS, GROUP_PREFIX, ContainerTable
from widgets.serving_format import KV_WARNING_PERCENT, TTFT_P95_WARNING_S
from widgets.serving_view import ServingView

SIZE = (240, 50)
SERVING = ("serving", "requests", "tok_s", "kv", "ttft")
NOW = demo_fleet().taken_at

BUSY = ServingReading(
    kind="vllm",
    state=ServingState("ready"),
    url="http://172.17.0.5:8000/metrics",
    model="meta-llama/Llama-3.1-8B-Instruct",
    requests_running=3,
    requests_waiting=12,
    kv_cache_percent=91.0,
    prompt_tokens_per_s=5012.0,
    generation_tokens_per_s=1234.4,
    ttft_p50_s=0.8,
    ttft_p95_s=2.5,
    itl_p50_s=0.021,
    e2e_p95_s=14.0,
    errors_per_s=0.0,
    preemptions_per_s=0.25,
    since=NOW - 3600,
)
"""A ready server past every threshold: KV 91 %, TTFT p95 2.5 s, and (with BUSY_HISTORY) a
queue that grew from 10 to 12."""
BUSY_HISTORY = (
    HistoryPoint(NOW - 2, 1100.0, 8, 88.0, 2.1),
    HistoryPoint(NOW - 1, 1200.0, 10, 90.0, 2.4),
    HistoryPoint(NOW, 1234.4, 12, 91.0, 2.5),
)
LOADING = ServingReading(
    kind="vllm", state=ServingState("loading", "loading model"), since=NOW - 125
)
GONE_QUIET = ServingReading(
    kind="vllm",
    state=ServingState("unreachable", "connection refused"),
    requests_running=1,
    requests_waiting=0,
    kv_cache_percent=10.0,
    generation_tokens_per_s=40.0,
    stale=True,
)
CALM_A = ServingReading(
    kind="tgi",
    state=ServingState("ready"),
    requests_running=2,
    requests_waiting=1,
    kv_cache_percent=40.0,
    generation_tokens_per_s=100.0,
    ttft_p95_s=0.3,
)
CALM_B = dataclasses.replace(
    CALM_A,
    requests_running=1,
    requests_waiting=0,
    kv_cache_percent=60.0,
    generation_tokens_per_s=50.0,
)
OLLAMA = ServingReading(
    kind="ollama",
    state=ServingState("ready"),
    url="http://172.17.0.9:11434/api/ps",
    model="llama3.2:3b",
    loaded_models=(
        LoadedModel(
            "llama3.2:3b", 3_338_801_664, 3_338_801_664, 4096, "2026-12-02T17:40:00Z", "llama"
        ),
    ),
)


def serving_fleet(**readings: tuple[ServingReading, tuple[HistoryPoint, ...]]) -> FleetSnapshot:
    """The demo fleet with these readings (by the container's name without `aitop-demo-`)."""
    fleet = demo_fleet()
    containers = []
    for c in fleet.containers:
        short = c.info.name.removeprefix("aitop-demo-").replace("-", "_")
        if short in readings:
            reading, history = readings[short]
            c = dataclasses.replace(c, serving=reading, serving_history=history)
        containers.append(c)
    return dataclasses.replace(fleet, containers=tuple(containers))


def the_fleet() -> FleetSnapshot:
    return serving_fleet(
        llama_1=(BUSY, BUSY_HISTORY),
        llama_2=(LOADING, ()),
        llama_3=(GONE_QUIET, ()),
        mistral_1=(CALM_A, ()),
        mistral_2=(CALM_B, ()),
        unhealthy=(OLLAMA, ()),
    )


def ids(fleet: FleetSnapshot) -> dict[str, str]:
    return {c.info.name.removeprefix("aitop-demo-"): c.info.id for c in fleet.containers}


def serving_cells(table: ContainerTable, key: str) -> dict[str, Text]:
    row = table.get_row(key)
    return {col: row[table.column_keys.index(col)] for col in SERVING}


def style_of(table: ContainerTable, name: str) -> Style:
    return table.get_component_rich_style(f"container-table--{name}", partial=True)


def styles_in(text: Text) -> list[Style | str]:
    return [span.style for span in text.spans if span.start < span.end]


def says(view: ServingView, wanted: str) -> Callable[[], bool]:
    """Whether the view's text holds `wanted`, now (for pilot_wait_for)."""
    return lambda: wanted in view.text


async def test_the_serving_columns_show_state_requests_rate_kv_and_ttft():
    fleet = the_fleet()
    app = replay_app(fleet)
    by = ids(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        assert [table.header_label(k) for k in SERVING] == [
            "SERVING",
            "RUN/Q",
            "TOK/S",
            "KV%",
            "TTFT95",
        ]
        busy = serving_cells(table, by["llama-1"])
        assert [str(busy[k]) for k in SERVING] == ["ready", "3/12", "1234", "91.0%", "2.50s"]
        loading = serving_cells(table, by["llama-2"])
        assert [str(loading[k]) for k in SERVING] == ["loading", "-", "-", "-", "-"]
        stale = serving_cells(table, by["llama-3"])
        assert [str(stale[k]) for k in SERVING] == [
            "unreachable stale",
            "1/0",
            "40",
            "10.0%",
            "-",
        ]
        calm = serving_cells(table, by["mistral-1"])
        assert [str(calm[k]) for k in SERVING] == ["ready", "2/1", "100", "40.0%", "300ms"]
        # Ollama gives no figures of this kind: its state only.
        assert str(serving_cells(table, by["unhealthy"])["serving"]) == "ready"
        # A container without a model server: blank, as the GPU columns are without GPUs.
        burner = serving_cells(table, by["burner"])
        assert [str(burner[k]) for k in SERVING] == ["", "", "", "", ""]


async def test_the_serving_columns_colour_states_and_thresholds():
    assert KV_WARNING_PERCENT == 85.0 and TTFT_P95_WARNING_S == 2.0
    fleet = the_fleet()
    app = replay_app(fleet)
    by = ids(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        warn, ok, bad, muted = (style_of(table, n) for n in ("warn", "ok", "bad", "muted"))
        assert len({warn, ok, bad, muted}) == 4
        busy = serving_cells(table, by["llama-1"])
        assert styles_in(busy["serving"]) == [ok]
        # The queue grew (10 -> 12 since the previous point): the queued part is a warning.
        requests = busy["requests"]
        assert [(requests.plain[s.start : s.end], s.style) for s in requests.spans] == [
            ("12", warn)
        ]
        assert styles_in(busy["kv"]) == [warn]  # 91 % >= 85 %
        assert styles_in(busy["ttft"]) == [warn]  # 2.5 s >= 2 s
        assert styles_in(busy["tok_s"]) == []
        assert styles_in(serving_cells(table, by["llama-2"])["serving"]) == [warn]  # loading
        stale = serving_cells(table, by["llama-3"])
        assert styles_in(stale["serving"]) == [bad, muted]  # unreachable, "stale"
        assert all(styles_in(stale[k]) == [muted] for k in ("requests", "tok_s", "kv"))
        calm = serving_cells(table, by["mistral-1"])
        assert all(styles_in(calm[k]) == [] for k in ("requests", "tok_s", "kv", "ttft"))


async def test_a_service_header_sums_its_servers():
    fleet = the_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        mistral = serving_cells(table, f"{GROUP_PREFIX}aitop-demo/mistral")
        # Running and queued and tok/s summed (2+1, 1+0, 100+50), the fullest KV cache.
        assert [str(mistral[k]) for k in SERVING] == ["2/2 ready", "3/1", "150", "60.0%", "300ms"]
        assert styles_in(mistral["serving"]) == [style_of(table, "ok")]
        llama = serving_cells(table, f"{GROUP_PREFIX}aitop-demo/llama")
        # One ready of three; the stale reading's old figures are not added to the live ones.
        assert [str(llama[k]) for k in SERVING] == ["1/3 ready", "3/12", "1234", "91.0%", "2.50s"]
        warn = style_of(table, "warn")
        assert styles_in(llama["serving"]) == [warn]
        assert styles_in(llama["kv"]) == [warn] and styles_in(llama["ttft"]) == [warn]
        assert [s.style for s in llama["requests"].spans] == [warn]  # a replica's queue grows


async def test_sorting_by_tok_s_puts_the_busiest_server_first():
    fleet = the_fleet()
    app = replay_app(fleet)
    by = ids(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(ContainerTable)
        table.sort_column = "tok_s"
        table.sort_reverse = True
        await pilot.pause()
        keys = table.row_keys
        # The llama group ranks by its busiest member (1234 tok/s), ahead of mistral (100).
        assert keys.index(by["llama-1"]) < keys.index(by["mistral-1"]) < keys.index(by["burner"])
        assert COLUMN_KEYS.index("tok_s") > COLUMN_KEYS.index("gpus")


async def open_view(pilot, app: AitopApp, container_id: str) -> ServingView:
    table = app.query_one(ContainerTable)
    table.move_cursor(row=table.row_keys.index(container_id))
    await pilot.pause()
    await pilot.press("v")
    await pilot_wait_for(pilot, lambda: isinstance(app.screen, ServingScreen), what="the view")
    await pilot.pause()
    return app.screen.query_one(ServingView)


async def test_v_opens_the_full_reading_with_history_and_escape_closes_it():
    fleet = the_fleet()
    app = replay_app(fleet)
    busy = ids(fleet)["llama-1"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, busy)
        lines = dict(line.split(": ", 1) for line in view.text.splitlines()[1:])
        assert view.text.splitlines()[0] == "Model server · aitop-demo-llama-1 · ready"
        for key in JSON_KEYS:
            assert key in lines, key
        assert lines["kind"] == "vllm"
        assert lines["url"] == "http://172.17.0.5:8000/metrics"
        assert lines["model"] == "meta-llama/Llama-3.1-8B-Instruct"
        assert lines["requests_waiting"] == "12 (growing)"
        assert lines["kv_cache_percent"] == "91.0%"
        assert lines["generation_tokens_per_s"] == "1234 tok/s"
        assert lines["ttft_p95_s"] == "2.50s" and lines["itl_p50_s"] == "21ms"
        assert lines["preemptions_per_s"] == "0.25/s"
        assert lines["loaded_models"] == "-"  # vLLM lists none
        assert lines["since"].endswith("(1h00m ago)")
        assert lines["container CPU"].endswith("%")
        # The server's history as sparklines, the container's figures beside them.
        assert view.series("tok_s") == [1100.0, 1200.0, 1234.4]
        assert view.series("queue") == [8.0, 10.0, 12.0]
        assert view.series("kv") == [88.0, 90.0, 91.0]
        assert view.series("ttft") == [2.1, 2.4, 2.5]
        assert view.series("cpu") == []  # one point so far: the view keeps them from now on
        await pilot.press("escape")
        await pilot_wait_for(
            pilot, lambda: not isinstance(app.screen, ServingScreen), what="the view closed"
        )
        await open_view(pilot, app, busy)
        await pilot.press("v")  # v again closes it too
        await pilot_wait_for(
            pilot, lambda: not isinstance(app.screen, ServingScreen), what="closed by v"
        )


async def test_the_view_follows_new_snapshots():
    fleet = the_fleet()
    monitor = ReplayMonitor(fleet)
    app = AitopApp([monitor], config=Config())
    busy = ids(fleet)["llama-1"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, busy)
        assert "requests_running: 3" in view.text
        for step in range(1, 4):
            later = NOW + step
            reading = dataclasses.replace(
                BUSY, requests_running=3 + step, generation_tokens_per_s=2000.0 + step
            )
            history = (
                *BUSY_HISTORY,
                *(HistoryPoint(NOW + s, 2000.0 + s, 12, 91.0, 2.5) for s in range(1, step + 1)),
            )
            snap = dataclasses.replace(serving_fleet(llama_1=(reading, history)), taken_at=later)
            snap = dataclasses.replace(
                snap,
                containers=tuple(
                    dataclasses.replace(
                        c, stats=dataclasses.replace(c.stats, cpu_percent=10.0 * step)
                    )
                    if c.info.id == busy
                    else c
                    for c in snap.containers
                ),
            )
            monitor.publish(snap)
            wanted = f"requests_running: {3 + step}"
            await pilot_wait_for(pilot, says(view, wanted), what=wanted)
        assert view.series("tok_s")[-3:] == [2001.0, 2002.0, 2003.0]
        # The container's own figures, kept by the view while it is open.
        assert view.series("cpu")[-3:] == [10.0, 20.0, 30.0]
        assert "container CPU: 30.0%" in view.text
        # The container goes: the view says so.
        gone = dataclasses.replace(
            fleet,
            containers=tuple(c for c in fleet.containers if c.info.id != busy),
            taken_at=NOW + 9,
        )
        monitor.publish(gone)
        await pilot_wait_for(
            pilot, lambda: "aitop-demo-llama-1 is no longer in the fleet" in view.text, what="gone"
        )


async def test_a_loading_server_says_since_when():
    fleet = the_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, ids(fleet)["llama-2"])
        lines = dict(line.split(": ", 1) for line in view.text.splitlines()[1:])
        assert lines["state"] == "loading: loading model"
        assert lines["since"].endswith("(2m ago)")


async def test_ollama_lists_its_loaded_models():
    fleet = the_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, ids(fleet)["unhealthy"])
        assert (
            "loaded_models: llama3.2:3b · 3.1G · 3.1G on GPU · context 4096 · "
            "until 2026-12-02T17:40:00Z"
        ) in view.text


async def test_a_container_without_a_server_says_how_to_point_aitop_at_one():
    fleet = the_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, ids(fleet)["burner"])
        assert "no model server found in aitop-demo-burner; set the aitop.metrics-port label" in (
            view.text
        )
        assert view.query_one("#serving-history").has_class("-empty")


async def test_reading_text_is_never_markup():
    hostile = dataclasses.replace(
        BUSY, model="[bold red]x[/] [@click=app.quit]y[/]", state=ServingState("unhealthy", "[/]")
    )
    fleet = serving_fleet(llama_1=(hostile, ()))
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = await open_view(pilot, app, ids(fleet)["llama-1"])
        assert "model: [bold red]x[/] [@click=app.quit]y[/]" in view.text
        assert "state: unhealthy: [/]" in view.text
        await pilot.pause()
        assert app.is_running


async def test_the_palette_opens_the_view():
    fleet = the_fleet()
    app = replay_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        entries = {e.title: e for e in palette_entries(app, app.screen, app.keymap)}
        assert entries["Show the model server"].help.endswith("(v)")
        await pilot.press("ctrl+p")
        await pilot.pause()
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        text = "show the model server"
        await pilot.press(*text)

        def listed() -> bool:
            gathering = [w for w in palette.workers if w.group == palette._GATHER_COMMANDS_GROUP]
            return (
                not [w for w in gathering if not w.is_finished]
                and palette.query_one(CommandInput).value == text
                and palette.query_one(CommandList).highlighted == 0
            )

        await pilot_wait_for(pilot, listed, what="the palette's hits")
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ServingScreen), what="the view")


# --- a real stand-in server ---------------------------------------------------------------------


@pytest.fixture
def vllm_container(engine: Engine, serving_image: str, session_tag: str) -> Iterator[str]:
    """A stand-in vLLM server (its command line says `vllm serve ... --port 9001`; busybox
    httpd serves vLLM v1's metrics page there)."""
    words = ("vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "9001")
    cid = engine.run(
        serving_image,
        server_command(serve_command(9001, metrics="vllm_v1.metrics"), *words),
        labels={TEST_LABEL: session_tag},
        name=f"aitop-test-serving-ui-{uuid.uuid4().hex[:8]}",
    )
    yield cid
    engine.remove(cid)


async def test_a_live_app_shows_a_real_servers_state_and_figures(engine, vllm_container):
    app = live_app(Engine(engine.url), show_all=True)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(ContainerTable)

        def cells() -> dict[str, Text] | None:
            if vllm_container not in table.row_keys:
                return None
            found = serving_cells(table, vllm_container)
            return found if str(found["serving"]) == "ready" and str(found["kv"]) != "-" else None

        found = await pilot_wait_for(pilot, cells, timeout=30, what="the server ready in its row")
        # vllm_v1.metrics: 24 running; the queue and KV cache as the page says them.
        running, _, queued = str(found["requests"]).partition("/")
        assert running == "24" and queued.isdigit()
        assert str(found["kv"]).endswith("%")
        view = await open_view(pilot, app, vllm_container)
        assert "kind: vllm" in view.text and "model: meta-llama/Llama-3.1-8B-Instruct" in view.text
