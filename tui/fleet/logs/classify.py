"""Which log lines matter: CUDA out-of-memory, NCCL errors, Python tracebacks, OOM kills,
model-load progress, a server ready to serve, errors, as vLLM, SGLang, TGI, llama.cpp, Ollama,
Triton, LMDeploy and PyTorch print them (tests/fixtures/log_events/corpus.jsonl). Every
pattern runs in linear time on hostile text: its quantifiers are bounded and it reads a
bounded prefix of the line (`CLASSIFY_CHARS`).
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
        # Lines that quote other text: a request log echoing a user's prompt about an OOM,
        # a C++ stack frame naming ProcessGroupNCCL::checkTimeout. They are ordinary.
        LineKind.NORMAL,
        ("received request", "frame #"),
        r"Received request [\w.-]{1,128}: prompt: |^\s{0,16}frame #\d{1,5}: ",
    ),
    (
        # Anywhere in the line: servers put timestamps, levels, ranks and
        # "Scheduler hit an exception: " before it, Ray "[repeated 6x across cluster]" after.
        LineKind.TRACEBACK,
        ("traceback",),
        r"Traceback \(most recent call last\)",
    ),
    (
        LineKind.CUDA_OOM,
        ("memory", "cublas_status_alloc", "tried to allocate", "allocate cuda"),
        r"CUDA out of memory|(?<!attribute ')OutOfMemoryError|CUDA error: out of memory"
        r"|cudaErrorMemoryAllocation|CUBLAS_STATUS_ALLOC_FAILED|HIP out of memory"
        r"|out of memory on device|Tried to allocate [\d.]{1,32} [KMGT]i?B"
        # The driver's and the allocators' own words (vLLM V1, TensorRT-LLM, TurboMind,
        # ggml's cudaMalloc, onnxruntime's "CUDA failure 2"):
        r"|(?i:cuda)[\w ]{0,40}(?:error|failed|failure)[^\n]{0,200}?out of memory"
        r"|(?:failed|unable) to allocate CUDA\d{0,3} buffer"
        # The servers' refusals: no room for the KV cache or the batch.
        r"|No available memory for the cache blocks|less than desired GPU memory utilization"
        r"|Not enough memory(?:\. Please try to increase --mem-fraction-static| to handle)",
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
        # Inside a container an unrequested SIGKILL is the OOM killer's: the kernel's words,
        # a shell's "Killed", supervisors' and launchers' reports of a child killed.
        LineKind.OOM_KILLED,
        ("oom", "out of memory", "killed", "sigkill", "term_memlimit"),
        r"\bOOMKilled\b|Out of memory: Kill(?:ed)? process|\boom[-_]kill(?:ed|er)?\b"
        r"|invoked oom-killer|Memory cgroup out of memory|^Killed\s{0,64}$"
        r"|killed by the OOM killer|line \d{1,9}: {1,8}\d{1,9} Killed\b|TERM_MEMLIMIT"
        r"|Signal 9 \(SIGKILL\) received by PID|terminated with signal SIGKILL"
        r"|\(terminated by SIGKILL|signal: killed|is killed by signal: Killed",
    ),
    (
        LineKind.MODEL_READY,
        (
            "uvicorn running",
            "startup complete",
            "fired up",
            "connected",
            "shard ready",
            "main loop",
            "model loaded",
            "runner started",
            "listening on",
            "started grpc",
            "started http",
            "successfully loaded",
            "please open",
            "vllm server",
            "vllm api server",
        ),
        r"Uvicorn running on|Application startup complete|fired up and ready to roll"
        r"|Starting vLLM (?:API )?server(?: \d{1,3})? on"
        # TGI's router, in text and in --json-output; its shards:
        r"|\.rs:\d{1,6}: Connected\b|\"message\":\"Connected\"|Shard ready in"
        # llama.cpp (not "HTTP server is listening", printed before the model loads):
        r"|starting the main loop|\bmain: model loaded"
        # Ollama serves (and loads models on demand) from "Listening on":
        r"|llama runner started in|msg=\"Listening on "
        r"|Started (?:GRPCInferenceService|HTTPService|GRPCService) at|successfully loaded '"
        r"|Please open \S{1,200} in a browser",
    ),
    (
        LineKind.MODEL_LOAD,
        (
            "load",
            "fetching",
            "captur",
            "init engine",
            "warming up",
            "waiting for shard",
            "starting shard",
            "download",
            "llama server",
            "llama runner",
            "become available",
            "will fit",
            "turbomind format",
        ),
        r"Loading checkpoint shards|Loading safetensors checkpoint|Loading (?:model )?weights"
        r"|Loading model|[Mm]odel load(?:ing|ed)(?! error)|Loaded model|llama_model_load:"
        r"|llama_model_loader: loaded meta data|load_tensors:"
        r"|llm_load_tensors|Downloading (?:shards|model|weights)|Fetching \d{1,9} files"
        r"|Starting to load model|weights loaded|[Cc]apturing (?:CUDA )?graphs?"
        # vLLM's CUDA graphs and engine start; SGLang's weights and graphs:
        r"|Capturing the model for CUDA graphs|Graph capturing finished|init engine \("
        r"|Load weight (?:begin|end)|Capture cuda graph (?:begin|end)|Capturing batches"
        # TGI's launcher and router:
        r"|Waiting for shard to be ready|Starting shard \d|Successfully downloaded weights"
        r"|Starting download process|Warming up model"
        # llama.cpp, Ollama, Triton, LMDeploy:
        r"|load_model: (?:initializing|loading model)|main: loading model"
        r"|msg=\"starting llama server\"|waiting for llama runner to start responding"
        r"|waiting for server to become available|new model will fit in available VRAM"
        r"|\bloading: [\w.-]{1,200}:\d{1,9}|Convert to turbomind format",
    ),
    (
        LineKind.ERROR,
        (
            "error",
            "fatal",
            "critical",
            "panic",
            "segmentation fault",
            "core dumped",
            "exception",
            "failed to",
            "terminate called",
            "sigquit",
            "exitcode",
            "not expected",
        ),
        r"\b(?:ERROR|FATAL|CRITICAL|PANIC)\b|\bpanic:|Segmentation fault|core dumped"
        # An exception's name where a line or a prefix ("[rank1]: ") ends:
        r"|CUDA error|(?:^|[\s:\]])[\w.]{0,256}(?:Error|Exception): "
        r"|failed to (?:start|load|initiali[sz]e|allocate (?!pinned))|model loading error"
        r"|error while loading shared libraries"
        r"|error: creating server|terminate called after throwing"
        r"|Received sigquit from a child process|failed \(exitcode: \d{1,4}\)"
        r"|exit status [1-9]\d{0,2}; not expected",
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
