"""Which log lines matter: CUDA out-of-memory, NCCL errors, Python tracebacks, OOM kills,
model-load progress, errors. Every pattern runs in linear time on hostile text: its
quantifiers are bounded and it reads a bounded prefix of the line (`CLASSIFY_CHARS`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tui.fleet.logs.types import LineKind

# --- classification -----------------------------------------------------------------------

CLASSIFY_CHARS = 4096
"""How much of a line classification reads: its first this-many characters.

Log text is untrusted and Python's `re` holds the GIL while it runs (the event loop waits
too), so each pattern runs on a bounded prefix and has no unbounded quantifier: a hostile
line costs the same as an ordinary 4 KiB one. What marks a line (an exception name, "CUDA
out of memory", an NCCL error) comes first in every real log line.
"""
_CUT = "\x00"
"""Put after a cut prefix: no character the patterns end on (space, word, `$`), so a
pattern anchored at the line's end never matches where the prefix was cut."""

# Each kind: lower-case keywords one of which the line must hold (a cheap test that rules
# out almost every line), then the pattern that decides. Earlier kinds win. Every quantifier
# is bounded (tests/test_classify_bounded.py holds them to it, on the lines of
# tests/hostile_lines.py).
_KIND_RULES: tuple[tuple[LineKind, tuple[str, ...], str], ...] = (
    (
        LineKind.CUDA_OOM,
        ("memory", "cublas_status_alloc", "tried to allocate"),
        r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory"
        r"|cudaErrorMemoryAllocation|CUBLAS_STATUS_ALLOC_FAILED|HIP out of memory"
        r"|out of memory on device|Tried to allocate [\d.]{1,32} [KMGT]i?B",
    ),
    (
        LineKind.NCCL,
        ("nccl",),
        # The window after "ProcessGroupNCCL" ends at the next one: a line of glued
        # repeats costs one pass, not a window's scan per repeat.
        r"NCCL (?:WARN|ERROR|error)|\bnccl\w{0,64}Error\b|ncclSystemError|ncclInternalError"
        r"|ProcessGroupNCCL(?:(?!ProcessGroupNCCL).){0,240}?(?:[Tt]imeout|[Ee]rror|[Aa]bort)"
        r"|Watchdog caught collective operation timeout|NCCL communicator was aborted",
    ),
    (
        LineKind.OOM_KILLED,
        ("oom", "out of memory", "killed"),
        r"\bOOMKilled\b|Out of memory: Kill(?:ed)? process|\boom-kill(?:er)?\b"
        r"|invoked oom-killer|Memory cgroup out of memory|^Killed\s{0,64}$",
    ),
    (LineKind.TRACEBACK, ("traceback",), r"^Traceback \(most recent call last\):"),
    (
        LineKind.MODEL_LOAD,
        ("load", "fetching", "captur"),
        r"Loading checkpoint shards|Loading safetensors checkpoint|Loading (?:model )?weights"
        r"|Loading model|[Mm]odel load(?:ing|ed)|Loaded model|llama_model_load|load_tensors:"
        r"|llm_load_tensors|Downloading (?:shards|model|weights)|Fetching \d{1,9} files"
        r"|Starting to load model|weights loaded|[Cc]apturing (?:CUDA )?graphs?",
    ),
    (
        LineKind.ERROR,
        ("error", "fatal", "critical", "panic", "segmentation fault", "core dumped", "exception"),
        r"\b(?:ERROR|FATAL|CRITICAL|PANIC)\b|\bpanic:|Segmentation fault|core dumped"
        r"|CUDA error|^[\w.]{0,256}(?:Error|Exception): ",
    ),
)
_KINDS = tuple(
    (kind, keys, re.compile(pattern, re.MULTILINE)) for kind, keys, pattern in _KIND_RULES
)
_KEYS = tuple(dict.fromkeys(key for _, keys, _ in _KINDS for key in keys))
_ALL_KEYS = tuple(k for k in _KEYS if not any(o != k and o in k for o in _KEYS))
"""Every keyword but those holding another ("out of memory" holds "memory")."""
_TRACEBACK_BODY = re.compile(r"[ \t]|\^{1,4096}\s{0,64}$|~{1,4096}\s{0,64}$|$")
_TRACEBACK_CHAIN = re.compile(
    r"During handling of the above exception|The above exception was the direct cause"
)


def _head(text: str) -> str:
    """The part of a line classification reads (`CLASSIFY_CHARS`, marked when cut)."""
    return text if len(text) <= CLASSIFY_CHARS else text[:CLASSIFY_CHARS] + _CUT


def _kind(head: str) -> LineKind:
    low = head.lower()
    for kind, keys, pattern in _KINDS:
        for key in keys:
            if key in low:
                if pattern.search(head) is not None:
                    return kind
                break
    return LineKind.NORMAL


def classify(text: str) -> LineKind:
    """The kind of one line on its own (no traceback context); `NORMAL` for an ordinary line.

    Only the first `CLASSIFY_CHARS` characters count.
    """
    return _kind(_head(text))


class Classifier:
    """Classifies lines, following Python tracebacks across lines (one state per stream)."""

    def __init__(self) -> None:
        self._in_traceback: set[object] = set()

    def classify(self, text: str, key: object = None) -> LineKind:
        """The kind of this line, given the lines of the same `key` (stream) before it."""
        text = _head(text)
        kind = _kind(text)
        if key in self._in_traceback:
            if kind in (LineKind.NORMAL, LineKind.ERROR) and (
                _TRACEBACK_BODY.match(text) or _TRACEBACK_CHAIN.search(text)
            ):
                return LineKind.TRACEBACK
            # The exception line closes the traceback.
            if not _TRACEBACK_BODY.match(text):
                self._in_traceback.discard(key)
            return kind if kind not in (LineKind.NORMAL, LineKind.ERROR) else LineKind.TRACEBACK
        if kind == LineKind.TRACEBACK:
            self._in_traceback.add(key)
        return kind

    def classify_many(self, texts: Sequence[str], keys: Sequence[object]) -> list[LineKind]:
        """The kinds of consecutive lines (`keys[i]` is line i's stream), as `classify` gives.

        A flood is mostly ordinary lines: the keywords are looked for once in the whole run
        of lines, and only the lines that hold one are classified one by one.
        """
        if not self._in_traceback:
            if max(map(len, texts), default=0) > CLASSIFY_CHARS:
                texts = [_head(text) for text in texts]
            low = "\n".join(texts).lower()  # keywords hold no newline: no match spans lines
            present = [key for key in _ALL_KEYS if key in low]
            if not present:
                return [LineKind.NORMAL] * len(texts)
            if "traceback" not in present:
                # No line can start a traceback, so no state changes: lines are independent.
                kinds = [LineKind.NORMAL] * len(texts)
                for i, text in enumerate(texts):
                    lowered = text.lower()
                    for key in present:
                        if key in lowered:
                            kinds[i] = _kind(text)
                            break
                return kinds
        return [self.classify(text, key) for text, key in zip(texts, keys, strict=True)]

    def reset(self, key: object = None) -> None:
        """Forget the traceback state of one stream (or of all with no key)."""
        if key is None:
            self._in_traceback.clear()
        else:
            self._in_traceback.discard(key)
