"""The layering holds: the headless layer never imports Textual or Rich, each outside-world
library has exactly one importer, and widgets never reach around the headless layer's data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "tui" / "fleet"

# Each outside library and the one place (a module, or a package: a folder) that may import it.
OWNERS = {
    "docker": "engine/",
    "requests": "engine/",
    "pynvml": "gpu/nvml.py",
    "psutil": "metrics/host.py",
}
UI_LIBS = ("textual", "rich")
# What widgets may import from the application package: plain data, never I/O.
WIDGET_ALLOWED = (
    "tui.fleet.models",
    "tui.fleet.gpu.types",
    "tui.fleet.logs.types",
    "tui.fleet.sanitize",
    "tui.fleet.units",
    "tui.fleet.serving.types",
    "tui.fleet.history",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def python_files(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in sorted(d.rglob("*.py"))]


def module_name(path: Path) -> str:
    """The dotted name of a module file of the project (`tui.fleet.engine.client`)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_each_outside_library_has_one_importer():
    for path in python_files(ROOT / "tui", ROOT / "widgets"):
        where = path.relative_to(FLEET).as_posix() if path.is_relative_to(FLEET) else ""
        for module in imports_of(path):
            top = module.split(".")[0]
            if top in OWNERS:
                owner = OWNERS[top]
                allowed = where.startswith(owner) if owner.endswith("/") else where == owner
                assert allowed, (
                    f"{path.relative_to(ROOT)} imports {module}; only tui/fleet/{owner} may"
                )


def test_headless_layer_never_imports_the_ui():
    for path in python_files(FLEET):
        for module in imports_of(path):
            assert module.split(".")[0] not in UI_LIBS, f"{path.name} imports {module}"
            assert not module.startswith(("widgets", "tui.app", "tui.screens", "tui.messages")), (
                f"{path.name} imports {module}"
            )


def test_widgets_only_receive_data():
    for path in python_files(ROOT / "widgets"):
        for module in imports_of(path):
            if module.startswith("tui"):
                assert module in WIDGET_ALLOWED, f"widgets/{path.name} imports {module}"


def test_importing_the_headless_layer_loads_no_ui_in_a_fresh_interpreter():
    modules = [module_name(p) for p in python_files(FLEET)]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
    assert "Warning" not in out.stderr
