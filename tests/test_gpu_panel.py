"""GpuPanel in a running app (Pilot), fed with reports sampled from recorded NVML readings."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import Sparkline, Static

from tests.fixtures.nvml.fake_nvml import CID_A, CID_B, PIDS, FakeNvml, fake_proc
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.gpu.types import GpuReport
from widgets.gpu_panel import GpuPanel


class PanelApp(App):
    """Just the panel."""

    def compose(self) -> ComposeResult:
        yield GpuPanel(id="gpus")


def report_from(name: str, tmp_path: Path, **kw) -> GpuReport:
    proc_root = kw.pop("proc_root", None) or fake_proc(tmp_path)
    return GpuSampler(FakeNvml.from_fixture(name, PIDS), proc_root=proc_root, **kw).sample()


def text(widget: Static) -> str:
    return str(widget.render())


def block_texts(panel: GpuPanel) -> list[dict[str, str]]:
    """Each block's texts; "note" is the block's notes followed by its holders line."""
    blocks = []
    for block in panel.query(".gpu-block"):
        texts = {
            kind: text(block.query_one(f".gpu-{kind}", Static))
            for kind in ("title", "util", "mem", "temp", "power", "fan", "clocks", "note")
        }
        holders = text(block.query_one(".gpu-holders", Static))
        texts["note"] = "\n".join(t for t in (texts["note"], holders) if t)
        blocks.append(texts)
    return blocks


async def test_healthy_gpus_show_every_gauge(tmp_path):
    report = report_from("h100_a100.json", tmp_path)
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report, {CID_A: "vllm-a", CID_B: "llama-70b"})
        await pilot.pause()
        state = panel.query_one("#gpu-state", Static)
        assert text(state) == "2 GPUs · driver 550.54.15 · NVML " + (
            f"{report.nvml_seconds * 1000:.1f} ms"
        )
        assert not state.has_class("-problem")
        h100, a100 = block_texts(panel)
        assert h100["title"] == "GPU 0 · NVIDIA H100 80GB HBM3"
        assert h100["util"] == "SM 87%"
        assert h100["mem"] == "MEM 19.7G/79.6G 25%"
        assert h100["temp"] == "TEMP 64°C (slowdown 89°C)"
        assert h100["power"] == "POWER 612/700W"
        assert h100["fan"] == "FAN N/A"
        assert h100["clocks"] == "CLK 1980/2619 MHz"
        assert h100["note"] == "vllm-a 18.2G · host:python3 1.0G"
        assert a100["note"].splitlines() == [
            "GPU 1 (NVIDIA A100-SXM4-80GB) memory at 93% (74.1G of 80.0G): "
            "most is held by container llama-70b: 54.0G",
            "llama-70b 54.0G · vllm-a 18.1G",
        ]
        blocks = list(panel.query(".gpu-block"))
        assert blocks[1].query_one(".gpu-mem").has_class("-critical")
        assert blocks[1].query_one(".gpu-temp").has_class("-warning")
        assert blocks[1].query_one(".gpu-note").has_class("-critical")
        assert not blocks[0].query_one(".gpu-mem").has_class("-warning", "-critical")
        sparks = list(blocks[0].query(Sparkline))
        assert [s.data for s in sparks] == [[87.0], list(report.devices[0].mem_history)]


async def test_mig_shows_na_not_zero(tmp_path):
    report = report_from("mig_a100.json", tmp_path)
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report, {CID_A: "vllm-a", CID_B: "whisper"})
        await pilot.pause()
        (block,) = block_texts(panel)
        assert block["title"] == "GPU 0 · NVIDIA A100-SXM4-80GB · MIG"
        assert block["util"] == "SM N/A"
        assert block["mem"] == "MEM 22.0G/80.0G 28%"
        assert block["note"] == "vllm-a N/A · whisper N/A"
        assert "0B" not in block["note"] and " 0%" not in block["util"]
        # No utilisation history: no sparkline drawing a floor that would read as zero.
        util_spark, mem_spark = panel.query(Sparkline)
        assert (util_spark.display, mem_spark.display) == (False, True)


async def test_no_driver_is_a_labelled_state_line(tmp_path):
    report = report_from("states.json#no_driver", tmp_path)
    async with PanelApp().run_test() as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report)
        await pilot.pause()
        state = panel.query_one("#gpu-state", Static)
        assert text(state).startswith("GPU: no NVIDIA driver: the NVIDIA kernel driver is not")
        assert state.has_class("-problem")
        assert list(panel.query(".gpu-block")) == []


async def test_a_problem_takes_one_line_on_a_small_screen_and_its_tooltip_has_it_all(tmp_path):
    report = report_from("states.json#no_driver", tmp_path)
    async with PanelApp().run_test(size=(60, 15)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report)
        await pilot.pause()
        state = panel.query_one("#gpu-state", Static)
        assert len(text(state)) > 60  # longer than the screen is wide
        assert state.region.height == 1
        assert state.tooltip == text(state)


async def test_before_any_report_it_says_it_waits():
    async with PanelApp().run_test() as pilot:
        panel = pilot.app.query_one(GpuPanel)
        assert text(panel.query_one("#gpu-state", Static)) == "GPUs: waiting for the first reading"


async def test_a_lost_gpu_keeps_its_block_and_says_so(tmp_path):
    report = report_from("gpu_lost.json", tmp_path)
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report)
        await pilot.pause()
        _, lost = block_texts(panel)
        assert lost["title"] == "GPU 1 · N/A · LOST"
        assert (lost["util"], lost["mem"], lost["power"], lost["clocks"]) == (
            "SM N/A",
            "MEM N/A",
            "POWER N/A",
            "CLK N/A",
        )
        assert "fallen off the bus" in lost["note"]
        assert list(panel.query(".gpu-block"))[1].has_class("-lost")


async def test_without_host_pids_the_panel_says_it_cannot_attribute(tmp_path):
    proc_root = fake_proc(tmp_path, pid_ns="pid:[4026532801]")
    report = report_from("h100_a100.json", tmp_path, proc_root=proc_root)
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report)
        await pilot.pause()
        state = panel.query_one("#gpu-state", Static)
        assert "no per-container figures: aitop runs in a PID namespace" in text(state)
        assert state.has_class("-problem")
        assert block_texts(panel)[0]["note"] == "2 processes, owners unknown"


async def test_ticks_update_blocks_in_place_and_states_clear_them(tmp_path):
    fake = FakeNvml.from_fixture("h100_a100.json", PIDS)
    sampler = GpuSampler(fake, proc_root=fake_proc(tmp_path), min_interval=0)
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(sampler.sample())
        await pilot.pause()
        before = list(panel.query(".gpu-block"))
        fake.reading["devices"][0]["utilization"]["gpu"] = 12
        panel.update_report(sampler.sample())
        await pilot.pause()
        assert list(panel.query(".gpu-block")) == before
        assert block_texts(panel)[0]["util"] == "SM 12%"
        assert before[0].query(Sparkline).first().data == [87.0, 12.0]
        panel.update_report(GpuReport(state="no-gpu", message="the driver lists no GPU"))
        await pilot.pause()
        assert list(panel.query(".gpu-block")) == []


async def test_names_and_commands_are_shown_literally(tmp_path):
    procs = {
        4101: (f"0::/docker/{CID_A}\n", "python3"),
        4103: ("0::/init.scope\n", "[bold]x"),
    }
    report = report_from("h100_a100.json", tmp_path, proc_root=fake_proc(tmp_path, procs))
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report, {CID_A: "[red]evil[/red]"})
        await pilot.pause()
        assert block_texts(panel)[0]["note"] == "[red]evil[/red] 18.2G · host:[bold]x 1.0G"


async def test_an_unreadable_process_list_reads_na(tmp_path):
    fake = FakeNvml.from_fixture("h100_a100.json", PIDS)
    fake.reading["devices"][0]["errors"] = {"nvmlDeviceGetComputeRunningProcesses": "UNKNOWN"}
    report = GpuSampler(fake, proc_root=fake_proc(tmp_path)).sample()
    async with PanelApp().run_test(size=(120, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report)
        await pilot.pause()
        assert block_texts(panel)[0]["note"].splitlines() == [
            "compute processes: Unknown Error",
            "processes N/A",
        ]


async def test_a_narrow_terminal_ends_the_holders_with_an_ellipsis_not_mid_word(tmp_path):
    report = report_from("h100_a100.json", tmp_path)
    names = {CID_A: "vllm-a-rather-long-name", CID_B: "llama-70b-instruct-replica-one"}
    async with PanelApp().run_test(size=(80, 30)) as pilot:
        panel = pilot.app.query_one(GpuPanel)
        panel.update_report(report, names)
        await pilot.pause()
        holders = panel.query(".gpu-holders").last(Static)
        full = text(holders)
        assert len(full) > holders.size.width  # it does not fit: the case at hand
        (line,) = holders.render_lines(Region(0, 0, holders.size.width, 1))
        shown = line.text.rstrip()
        assert shown.endswith("…")
        assert full.startswith(shown[:-1])
