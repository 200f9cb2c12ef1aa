"""The CI switch: with CI=true (or AITOP_REQUIRE_ENGINE=1) a skipped test fails the run, so a
green CI means every test ran; a developer without an engine or a tool just sees skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest
from tests.helpers import require_tools

def test_needs_a_tool_that_is_not_here():
    require_tools("no-such-tool-aitop")

@pytest.mark.may_skip
def test_whose_skip_is_right_anywhere():
    pytest.skip("nothing to show on this machine")
"""


def run_sample(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "tests"
    shutil.copytree(ROOT / "tests", tests, ignore=shutil.ignore_patterns("test_*", "__snapshots__"))
    (tests / "test_sample.py").write_text(SAMPLE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "AITOP_REQUIRE_ENGINE")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sample.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )


def test_a_laptop_without_the_tool_skips(tmp_path):
    out = run_sample(tmp_path)
    assert out.returncode == 0, out.stdout
    assert "2 skipped" in out.stdout


def test_ci_turns_the_skip_into_a_failure_but_keeps_an_allowed_one(tmp_path):
    out = run_sample(tmp_path, CI="true")
    assert out.returncode == 1, out.stdout
    assert "1 failed, 1 skipped" in out.stdout
    assert "requires it to run: Skipped: no no-such-tool-aitop: not installed" in out.stdout
