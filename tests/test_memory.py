"""Memory (issue 14, item 4): what the first frame does not need is not loaded, and nothing
kept per container is larger than what it is kept for.

- the views that only a key opens (serving, up close, events, disk, swarm, help, columns)
  and the log export are not imported by a start with no keymap;
- the NVML bindings are not imported where the NVML library is missing;
- the serving pool keeps only the parts of a container's inspect data that discovery reads,
  and discovery finds the same target in them as in the whole document.
"""

from __future__ import annotations

import ctypes
import pickle
import platform
import subprocess
import sys

import pytest

from tests.helpers import wait_for
from tui.fleet.gpu.nvml import NVML_LIBRARY
from tui.fleet.serving.discover import discover, discovery_attrs

LAZY = (
    "tui.screens.container",
    "tui.screens.serving",
    "tui.screens.events",
    "tui.screens.disk",
    "tui.screens.swarm",
    "tui.screens.columns",
    "tui.disk_view",
    "tui.swarm_view",
    "tui.fleet.logs.export",
    "textual.widgets._data_table",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_a_start_loads_no_view_that_only_a_key_opens(tmp_path):
    # What `aitop` imports before its first frame: the CLI, the watch, the app, the settings
    # checked (with no keymap in the file).
    code = (
        "import tui.cli, tui.watch, tui.app\n"
        "from tui.commands import check_settings\n"
        "from tui.config import load_config\n"
        f"check_settings(load_config({str(tmp_path / 'none.toml')!r}))\n"
        "import tui.app as a\n"
        "assert a.AitopApp\n"
    )
    loaded = loaded_after(code)
    assert "tui.app" in loaded
    assert not loaded & set(LAZY), sorted(loaded & set(LAZY))


def test_a_keymap_is_still_checked_against_every_view(tmp_path):
    from tui.commands import check_settings
    from tui.config import load_config

    path = tmp_path / "config.toml"
    path.write_text('[keymap]\ndisk-refresh = "R"\nno-such = "x"\n', encoding="utf-8")
    config, problems = check_settings(load_config(str(path)))
    assert config.keymap == {"disk-refresh": "R"}  # a binding of the disk view, known
    assert [p for p in problems if "no-such" in str(p)]


def nvml_library_loads() -> bool:
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


@pytest.mark.skipif(nvml_library_loads(), reason="the NVML library is installed here")
def test_without_the_nvml_library_the_bindings_are_not_imported():
    code = (
        "from tui.fleet.gpu.sampler import GpuSampler\n"
        "report = GpuSampler().sample()\n"
        "assert report.state == 'no-library', report.state\n"
        "assert 'libnvidia-ml.so.1' in report.message, report.message\n"
    )
    assert "pynvml" not in loaded_after(code)


def test_the_serving_pool_keeps_what_discovery_reads_and_finds_the_same(engine, run_container):
    cid = run_container(
        ["sh", "-c", "sleep 3600"],
        labels={"aitop.metrics-port": "9400", "aitop.metrics-path": "/m/metrics"},
        environment=["VLLM_PORT=9400", "HF_HOME=/models"],
        ports=[9400],
        port_bindings={9400: None},
    )
    wait_for(lambda: engine.inspect(cid)["State"]["Running"], timeout=10, what="running")
    attrs = engine.inspect(cid)
    slim = discovery_attrs(attrs)
    pid = int(attrs["State"]["Pid"])
    for remote in (None, "gpu-host"):
        whole = discover(attrs, pid=pid, remote_host=remote)
        assert whole is not None
        assert discover(slim, pid=pid, remote_host=remote) == whole
    # Far smaller than the whole document (mounts, host config, graph driver data, ...).
    assert len(pickle.dumps(slim)) * 3 < len(pickle.dumps(dict(attrs)))


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_the_heap_is_trimmed_of_what_was_freed_and_arenas_are_limited():
    # In a fresh interpreter: 60 MB of malloc'd blocks (each above pymalloc's 512 bytes) freed
    # but for one block after them, which keeps glibc from giving back the top of its heap:
    # only a trim returns the pages under it.
    code = (
        "from tui import heap\n"
        "assert heap.limit_arenas()\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as f:\n"
        "        return int(f.read().split()[1]) * 4096\n"
        "blocks = [bytes(1200) for _ in range(50_000)]\n"
        "pin = bytes(1200)\n"
        "del blocks\n"
        "before = rss()\n"
        "heap.trim()\n"
        "print(before - rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 40_000_000
