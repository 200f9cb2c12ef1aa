"""Untrusted text: what containers, images, engines and configuration files say is made safe
where it enters the headless layer, and nothing aitop draws reads data as markup.

The corpus in tests/fixtures/hostile/metadata.json is what every field must survive: escape
sequences (titles, clipboard, screen clears, 8-bit forms), control characters, bidirectional
overrides, invisible marks, and Rich/Textual markup (`[/]` crashed aitop; `[@click=...]` ran an
action when the toast was clicked).
"""

from __future__ import annotations

import ast
import json
import unicodedata
from pathlib import Path

import pytest
from textual.widgets._toast import Toast

from tests.fleet_fixtures import live_app
from tests.helpers import TEST_LABEL, pilot_wait_for
from tui.config import parse_config
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.inventory import container_info, info_from_summary
from tui.fleet.sanitize import MAX_FIELD_CHARS, safe_mapping, safe_text
from widgets.container_table import ContainerTable

ROOT = Path(__file__).resolve().parents[1]
CORPUS: dict[str, str] = json.loads(
    (ROOT / "tests" / "fixtures" / "hostile" / "metadata.json").read_text()
)


def assert_safe(text: str, where: str = "") -> None:
    """No control character (tab included, in a one-line field), no format character
    (Unicode category Cf: invisible, reordering) and no line or paragraph separator."""
    for ch in text:
        assert unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"), (
            f"{where}: {ch!r} survived in {text!r}"
        )


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_case_is_made_safe(name):
    text = CORPUS[name]
    assert_safe(safe_text(text), name)
    assert_safe(safe_text(f"before {text} after"), name)


def test_visible_text_is_kept_and_marks_show():
    assert safe_text("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    assert safe_text("\x1b]0;pwned\x07llama") == "llama"  # the sequence goes, the text stays
    assert safe_text("[/] [bold]x[/bold]") == "[/] [bold]x[/bold]"  # markup stays literal text
    # Invisible and reordering characters are shown, so look-alikes do not look alike.
    assert safe_text("llama\u200b3") != "llama3"
    assert "\ufffd" in safe_text("model\u202egnp.exe")
    assert safe_text("a\tb") == "a b"
    long = safe_text("A" * (MAX_FIELD_CHARS * 3))
    assert len(long) == MAX_FIELD_CHARS and long.endswith("\u2026")


def hostile_inspect(text: str) -> dict:
    return {
        "Id": "c" * 64,
        "Name": "/hostile",
        "Config": {
            "Image": f"img{text}:latest",
            "Labels": {
                "aitop.model": f"m{text}",
                f"key{text}": f"value{text}",
                "com.docker.compose.project": f"proj{text}",
                "com.docker.compose.service": f"svc{text}",
            },
            "Cmd": ["--model", f"cmd-model{text}"],
            "Env": [f"MODEL_ID=env{text}"],
        },
        "State": {"Status": "running", "Health": {"Status": f"healthy{text}"}},
        "NetworkSettings": {"Ports": {f"80/tcp{text}": [{"HostPort": f"8080{text}"}]}},
    }


def info_strings(info) -> list[str]:
    values = [
        info.id,
        info.name,
        info.image,
        info.model,
        info.state,
        info.health,
        info.compose_project,
        info.compose_service,
        info.swarm_service,
        *info.ports,
        *info.gpus_assigned,
    ]
    return values + [s for kv in info.labels.items() for s in kv]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_container_metadata_is_safe_once_it_is_a_container_info(name):
    attrs = hostile_inspect(CORPUS[name])
    for value in info_strings(container_info(attrs)):
        assert_safe(value, name)
    summary = {
        "Id": attrs["Id"],
        "Names": ["/hostile"],
        "Image": attrs["Config"]["Image"],
        "Command": f"vllm serve model{CORPUS[name]}",
        "Labels": attrs["Config"]["Labels"],
        "State": "running",
        "Status": "Up 2 minutes",
        "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
    }
    for value in info_strings(info_from_summary(summary)):
        assert_safe(value, name)


def test_the_model_name_comes_from_the_command_made_safe():
    info = container_info(
        {
            "Id": "d" * 64,
            "Name": "/x",
            "Config": {"Image": "vllm/vllm-openai", "Cmd": ["vllm", "serve", "m\x1b]0;t\x07x"]},
            "State": {"Status": "running"},
        }
    )
    assert info.model == "mx"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_engine_errors_and_config_problems_are_safe(name):
    text = CORPUS[name]
    assert_safe(str(EngineError(f"the engine answered: {text}")), name)
    loaded = parse_config(f'theme = "x"\n[nope]\n"k{json.dumps(text)[1:-1]}" = 1\n', Path("c"))
    for problem in loaded.problems:
        assert_safe(str(problem), name)
    assert all(safe_text(k) == k for k in safe_mapping({f"k{text}": "v"}))


# --- nothing is read as markup --------------------------------------------------------------

# Calls whose text argument Textual reads as markup unless told otherwise.
MARKUP_READERS = {"notify", "Static", "Label", "Option", "Button", "Checkbox"}


def _is_plain_literal(node: ast.expr) -> bool:
    """A string constant without brackets, or a Text/Content object (never markup)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "[" not in node.value
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in {"Text", "Content", "assemble"}
    return False


def markup_risks(path: Path) -> list[str]:
    """Calls in a module that could read data as markup: `notify(...)` without
    `markup=False`, and widgets built from a non-literal string without `markup=False`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    risks = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in MARKUP_READERS:
            continue
        if any(
            k.arg == "markup" and getattr(k.value, "value", True) is False for k in node.keywords
        ):
            continue
        if name == "notify" or (node.args and not _is_plain_literal(node.args[0])):
            risks.append(f"{path.name}:{node.lineno}: {name}(...)")
    return risks


def test_nothing_hands_data_to_textual_as_markup():
    """A new `notify(...)` (or a Static, Label, Option, Button built from data) must say
    `markup=False`, or pass a Text/Content object: data in markup crashes or runs actions."""
    risks = [
        r for d in ("tui", "widgets") for p in (ROOT / d).rglob("*.py") for r in markup_risks(p)
    ]
    assert risks == []


def test_the_markup_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "app.notify(f'x {y}')\n"
        "Static(name)\n"
        "Label(f'{x}')\n"
        "app.notify('fine', markup=False)\n"
        "Static('no brackets')\n"
        "Static(Text(name))\n"
    )
    risks = markup_risks(bad)
    assert [r.split(":")[1] for r in risks] == ["1", "2", "3"]


# --- the real engine --------------------------------------------------------------------------

HOSTILE_COMMAND = "[/][@click=app.screenshot('aitop-pwned.svg')]x\x1b]0;pwned\x07\x1b[2J"


async def test_an_engine_error_echoing_markup_is_a_plain_toast(
    engine, image, session_tag, tmp_path, monkeypatch
):
    """`u` on a container whose command is markup and escapes: the engine's error echoes the
    command; aitop shows it as plain text (it used to die on `[/]`), and clicking the toast
    (how one dismisses it) runs no action (it used to write a screenshot)."""
    monkeypatch.chdir(tmp_path)
    hostile = "\x1b]0;pwned\x07[bold]m[/]"
    cid = engine.create_container(
        {
            "Image": image,
            "Cmd": [HOSTILE_COMMAND],
            "Labels": {TEST_LABEL: session_tag, "aitop.model": hostile},
        },
        name=f"aitop-test-hostile-{session_tag}",
    )
    try:
        app = live_app(Engine(engine.url))
        async with app.run_test(size=(200, 40), notifications=True) as pilot:
            table = app.query_one(ContainerTable)
            await pilot.press("slash", *f"{TEST_LABEL}={session_tag}", "enter")
            await pilot_wait_for(pilot, lambda: cid in table.row_keys, timeout=20)
            table.move_cursor(row=table.row_keys.index(cid))
            await pilot_wait_for(pilot, lambda: table.selection.container_id == cid)
            await pilot.press("u")

            def the_toast() -> list[Toast]:
                return [t for t in app.screen.query(Toast) if "[/]" in str(t.render())]

            toasts = await pilot_wait_for(
                pilot,
                the_toast,
                timeout=40,
                what=lambda: (
                    f"the error's toast: {[str(t.render()) for t in app.screen.query(Toast)]}"
                ),
            )
            shown = str(toasts[0].render())
            assert "[@click=app.screenshot" in shown  # literally, not as an action
            assert_safe(shown.replace("\n", " "), "toast")
            row = " ".join(str(cell) for cell in table.get_row(cid))
            assert_safe(row, "row")
            assert "[bold]m[/]" in row
            await pilot.click(Toast)
            # The click was handled (it dismissed the toast): whatever it ran has run.
            await pilot_wait_for(pilot, lambda: not the_toast(), what="the toast dismissed")
            assert app.is_running
        assert not list(tmp_path.glob("*.svg"))
    finally:
        engine.remove(cid)
