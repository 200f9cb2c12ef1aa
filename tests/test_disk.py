"""Where the disk went (issue 17, item 3): images and volumes of known sizes on the real engine,
the model caches among them named, removals that take exactly what was named, asked first,
refused in read-only mode."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from tests.helpers import TEST_LABEL, pilot_wait_for, wait_for
from tui.disk_view import DiskController
from tui.fleet.demo import host_busybox
from tui.fleet.disk.survey import DiskSurvey, remove, survey
from tui.fleet.disk.types import DiskImage, DiskReport, DiskVolume, model_cache, refusal, removal
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.screens.confirm import ConfirmScreen
from tui.screens.disk import DiskScreen

MIB = 1024 * 1024


def docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def weights(engine: Engine, image: str, session_tag: str, docker_cli: str) -> Iterator[dict]:
    """An image with 3 MiB of its own, a volume holding 2 MiB mounted where Hugging Face keeps
    its cache by a stopped container, and an empty volume that nothing mounts."""
    busybox = host_busybox()
    assert busybox is not None, "the test image needs the host's static busybox"
    tag = f"aitop-test-disk-{uuid.uuid4().hex[:8]}"
    blob = bytes(range(256)) * (3 * MIB // 256)
    dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY weights.bin /weights.bin\n"
    engine.build_image(
        f"{tag}:latest",
        {
            "Dockerfile": (dockerfile, 0o644),
            "busybox": (busybox.read_bytes(), 0o755),
            "weights.bin": (blob, 0o644),
        },
    )
    cache, spare = f"{tag}-hf", f"{tag}-spare"
    for name in (cache, spare):
        docker("volume", "create", "--label", f"{TEST_LABEL}={session_tag}", name)
    writer = f"{tag}-writer"
    docker(
        "run", "--name", writer, "--label", f"{TEST_LABEL}={session_tag}",
        "-v", f"{cache}:/root/.cache/huggingface", image,
        "sh", "-c", "dd if=/dev/zero of=/root/.cache/huggingface/model.safetensors bs=1M count=2",
    )  # fmt: skip
    made = {"image": f"{tag}:latest", "cache": cache, "spare": spare, "writer": writer}
    yield made
    subprocess.run(["docker", "rm", "-f", writer], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", cache, spare], capture_output=True)
    subprocess.run(["docker", "rmi", "-f", made["image"]], capture_output=True)


def find_image(report: DiskReport, tag: str) -> DiskImage:
    return next(i for i in report.images if tag in i.tags)


def find_volume(report: DiskReport, name: str) -> DiskVolume:
    return next(v for v in report.volumes if v.name == name)


def test_the_survey_knows_sizes_users_and_model_caches(engine, weights):
    report = survey(engine)
    image = find_image(report, weights["image"])
    # Its own layer holds the weights; the busybox layer is shared with the test image.
    assert image.unique_size is not None and 3 * MIB <= image.unique_size < 4 * MIB
    assert image.size > image.unique_size
    assert image.containers == 0 and not image.dangling
    cache = find_volume(report, weights["cache"])
    assert cache.size is not None and 2 * MIB <= cache.size < 3 * MIB
    assert cache.used_by == (weights["writer"],)
    assert cache.cache == "Hugging Face cache"
    spare = find_volume(report, weights["spare"])
    assert spare.size == 0 and spare.used_by == () and spare.cache is None
    # Biggest first.
    assert [i.size for i in report.images] == sorted((i.size for i in report.images), reverse=True)
    sizes = [v.size or 0 for v in report.volumes]
    assert sizes == sorted(sizes, reverse=True)
    assert report.data_root and report.disk_total and report.disk_free is not None


def test_a_removal_takes_exactly_what_was_named(engine, weights):
    report = survey(engine)
    cache = find_volume(report, weights["cache"])
    assert (
        refusal(cache)
        == f"volume {cache.name} is mounted by {weights['writer']}: remove them first"
    )
    plan = removal(report, cache)
    assert plan.question == f"Remove volume {cache.name}?"
    assert "Hugging Face cache" in plan.item and plan.freed == cache.size
    docker("rm", weights["writer"])
    image = find_image(report, weights["image"])
    plan = removal(report, image)
    assert plan.freed == image.unique_size and weights["image"] in plan.item
    before = {v.name for v in survey(engine).volumes}
    assert remove(engine, cache) == cache.size
    assert remove(engine, image) == image.unique_size
    after = survey(engine)
    assert {v.name for v in after.volumes} == before - {weights["cache"]}
    assert not any(weights["image"] in i.tags for i in after.images)
    assert any(i.tags for i in after.images)  # the others stay


def test_read_only_refuses_every_removal(engine, weights):
    report = survey(engine)
    read_only = Engine(engine.url)
    read_only.read_only = True
    for target in (find_volume(report, weights["spare"]), find_image(report, weights["image"])):
        with pytest.raises(EngineError, match="read-only mode"):
            remove(read_only, target)
    with pytest.raises(EngineError, match="read-only mode"):
        remove(read_only, "build-cache")
    assert weights["spare"] in {v.name for v in survey(engine).volumes}


def test_the_build_cache_question_says_what_goes():
    report = DiskReport((), (), 0, 0, 5 * MIB, 3 * MIB, 7, "/var/lib/docker", None, None, 0, 0)
    plan = removal(report, "build-cache")
    assert plan.question == "Prune the build cache?"
    assert plan.item == "7 cache entries; the 3.0M no image uses goes" and plan.freed == 3 * MIB


@pytest.mark.parametrize(
    ("destination", "what"),
    [
        ("/root/.cache/huggingface", "Hugging Face cache"),
        ("/data/HuggingFace/hub", "Hugging Face cache"),
        ("/root/.ollama", "Ollama models"),
        ("/usr/share/ollama/models", "Ollama models"),
        ("/root/.cache/vllm", "vLLM cache"),
        ("/root/.cache/torch", "torch cache"),
        ("/data", None),
    ],
)
def test_model_caches_are_named_from_where_they_are_mounted(destination, what):
    assert model_cache([destination]) == what


class DiskApp(App[None]):
    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.disk = DiskController(self, read_only=read_only)

    def compose(self) -> ComposeResult:
        yield Static("fleet")

    def on_disk_screen_refresh_requested(self, message: DiskScreen.RefreshRequested) -> None:
        self.disk.refresh()

    def on_disk_screen_remove_requested(self, message: DiskScreen.RemoveRequested) -> None:
        self.disk.ask_remove(message)


async def test_the_disk_view_asks_then_frees_the_selected_volume(engine, weights):
    app = DiskApp(engine)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = app.disk.open(engine)
        await pilot_wait_for(pilot, lambda: weights["spare"] in screen.row_names, timeout=30)
        # The heading says which engine and the summary where the disk is.
        assert "Disk of unix://" in str(screen.query_one("#disk-heading", Static).render())
        assert "data root /" in str(screen.query_one("#disk-summary", Static).render())
        names = screen.row_names
        screen.query_one(DataTable).move_cursor(row=names.index(weights["spare"]))
        await pilot.press("x")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == f"Remove volume {weights['spare']}?"
        await pilot.press("n")  # no: nothing goes
        await pilot_wait_for(pilot, lambda: app.screen is screen)
        assert weights["spare"] in {v.name for v in survey(engine).volumes}
        await pilot.press("x")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await pilot_wait_for(pilot, lambda: weights["spare"] not in screen.row_names, timeout=30)
        assert weights["spare"] not in {v.name for v in survey(engine).volumes}
        assert weights["cache"] in screen.row_names
        # A mounted volume is refused with the reason, and nothing is asked.
        screen.query_one(DataTable).move_cursor(row=screen.row_names.index(weights["cache"]))
        await pilot.press("x")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: not isinstance(app.screen, DiskScreen))


async def test_read_only_hides_removal_in_the_disk_view(engine, weights):
    app = DiskApp(engine, read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = app.disk.open(engine)
        await pilot_wait_for(pilot, lambda: weights["spare"] in screen.row_names, timeout=30)
        screen.query_one(DataTable).move_cursor(row=screen.row_names.index(weights["spare"]))
        await pilot.press("x")
        await pilot.pause()
        assert app.screen is screen
        assert screen.check_action("remove", ()) is False
        assert weights["spare"] in {v.name for v in survey(engine).volumes}


def test_a_survey_runs_once_at_a_time_and_keeps_the_last_report(engine, weights):
    done: list[bool] = []
    disk = DiskSurvey(engine, on_done=lambda: done.append(True))
    assert disk.running_since is None and disk.error is None  # nothing asked yet
    assert disk.refresh() is True
    # A second refresh while the first runs starts nothing (unless the first already ended).
    assert disk.refresh() is False or done
    wait_for(lambda: done, timeout=30, what="the survey to end")
    report = disk.report
    assert report is not None and disk.error is None
    assert weights["cache"] in {v.name for v in report.volumes}


def test_snapshot_json_disk_has_the_disk_views_data(engine, weights):
    import json
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "tui", "snapshot", "--json", "--disk"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (host,) = json.loads(out.stdout)["hosts"]
    disk = host["disk"]
    assert disk["data_root"] and disk["layers_bytes"] > 0
    image = next(i for i in disk["images"] if weights["image"] in i["tags"])
    assert 3 * MIB <= image["unique_bytes"] < 4 * MIB and image["dangling"] is False
    cache = next(v for v in disk["volumes"] if v["name"] == weights["cache"])
    assert cache["model_cache"] == "Hugging Face cache"
    assert cache["used_by"] == [weights["writer"]] and cache["size_bytes"] >= 2 * MIB
    assert set(disk["build_cache"]) == {"entries", "bytes", "reclaimable_bytes"}
    # Without --disk there is none (volume sizes cost time).
    plain = subprocess.run(
        [sys.executable, "-m", "tui", "snapshot", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "disk" not in json.loads(plain.stdout)["hosts"][0]
