"""The log classifier against real servers' output: tests/fixtures/log_events/corpus.jsonl holds
real lines of vLLM, SGLang, TGI, llama.cpp, Ollama, Triton, LMDeploy, PyTorch, NCCL, the
kernel's OOM killer, shells and supervisors (each with its source: an issue thread where a
user pasted it, or the format string that prints it), with the kind each must get, and
ordinary lines (traps included) that must get none. See its README for how it was built.

Lines go through the sanitiser first, as the log follower sends them (colour codes included).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tui.fleet.logs.classify import Classifier
from tui.fleet.logs.types import LineKind
from tui.fleet.sanitize import sanitize_line

CORPUS = Path(__file__).parent / "fixtures" / "log_events" / "corpus.jsonl"


def entries() -> list[dict[str, str]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def kind_of(line: str) -> LineKind:
    """The kind a line gets when it arrives on its own (a fresh stream)."""
    text, _ = sanitize_line(line.encode())
    return Classifier().classify(text, 1)


def test_the_corpus_is_big_enough_and_sourced():
    found = entries()
    per_kind = Counter(e["kind"] for e in found)
    for kind in LineKind:
        if kind.jump and kind not in (LineKind.RESTART, LineKind.EXITED):
            assert per_kind[kind.value] >= 10, (kind, per_kind)
    assert per_kind[""] >= 50
    assert all(e["source"] and e["server"] for e in found)


def test_every_event_line_gets_its_kind_and_no_ordinary_line_gets_one():
    wrong = []
    for entry in entries():
        got = kind_of(entry["line"])
        if got.value != entry["kind"]:
            wrong.append(
                f"{entry['server']}: want {entry['kind']!r}, got {got.value!r}: {entry['line']!r}"
            )
    assert wrong == [], f"{len(wrong)} lines misread:\n" + "\n".join(wrong)
