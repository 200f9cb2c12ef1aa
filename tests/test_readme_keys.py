"""The README's key map is generated from the binding registry, so the two never drift.

The block between the README's `<!-- keymap:start -->` and `<!-- keymap:end -->` markers must
equal `key_map_markdown()`. After changing a binding, rewrite it with
`python -m tests.test_readme_keys`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App

from tui.commands import binding_catalog

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- keymap:start -->", "<!-- keymap:end -->"

SCOPE_ORDER = (
    "Everywhere",
    "Fleet table",
    "Log pane",
    "Confirmation",
    "Replica count",
    "Signal picker",
    "Column picker",
    "Inspect view",
    "Serving view",
    "Disk view",
    "Swarm view",
    "Container view",
    "Events view",
    "Help",
)
"""Where each scope's table goes; a scope not named here comes last, in catalog order."""

SCOPE_NOTES = {
    "Everywhere": "the container actions act on the marked containers, else on the table's "
    "selection; on a service's header row, on all its containers",
    "Fleet table": "while it has the focus",
    "Log pane": "while it has the focus; Tab moves between panes",
}
"""A word after a scope's heading."""


def key_map_markdown() -> str:
    """Markdown tables of every binding with an id, one per scope, keys of one id together."""
    display: App[None] = App()  # only for get_key_display: how the footer and `?` write a key
    scopes: dict[str, dict[str, tuple[list[str], str]]] = {}
    for scope, binding in binding_catalog():
        assert binding.id is not None
        rows = scopes.setdefault(scope, {})
        keys, _ = rows.setdefault(binding.id, ([], binding.tooltip or binding.description))
        keys.append(f"`{display.get_key_display(binding)}`")
    order = sorted(
        scopes,
        key=lambda s: SCOPE_ORDER.index(s) if s in SCOPE_ORDER else len(SCOPE_ORDER),
    )
    out: list[str] = []
    for scope in order:
        heading = f"**{scope}**" + (f" ({SCOPE_NOTES[scope]})" if scope in SCOPE_NOTES else "")
        out += [heading, "", "| key | what it does | binding id |", "| --- | --- | --- |"]
        for binding_id, (keys, what) in scopes[scope].items():
            what = what.replace("|", "\\|")
            out.append(f"| {' '.join(dict.fromkeys(keys))} | {what} | `{binding_id}` |")
        out.append("")
    return "\n".join(out)


def readme_block(text: str) -> str:
    """What the README holds between the markers (without them)."""
    start = text.index(START) + len(START)
    return text[start : text.index(END)].strip("\n")


def test_readme_key_map_matches_the_registry() -> None:
    block = readme_block(README.read_text(encoding="utf-8"))
    assert block == key_map_markdown().strip("\n"), (
        "README key map is out of date: run `python -m tests.test_readme_keys`"
    )


def test_every_registry_command_with_a_key_is_in_the_readme() -> None:
    from tui.commands import COMMANDS

    block = readme_block(README.read_text(encoding="utf-8"))
    for command in COMMANDS:
        if command.key:
            assert f"`{command.id}`" in block


def write_readme() -> None:
    """Replace the README's key map block with the generated one."""
    text = README.read_text(encoding="utf-8")
    start = text.index(START) + len(START)
    end = text.index(END)
    README.write_text(
        text[:start] + "\n" + key_map_markdown().strip("\n") + "\n" + text[end:], encoding="utf-8"
    )
    print(f"rewrote the key map in {README}", file=sys.stderr)


if __name__ == "__main__":
    write_readme()
