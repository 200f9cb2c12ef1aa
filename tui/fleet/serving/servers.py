"""What aitop knows about each kind of model server: one table per server.

Each `ServerKind` says how the server is recognised (the image's repository path, the words of
its command line), where it listens (default ports, the flags and environment variables that
change the port and the host), how its health route answers in each state, where its metrics
are and which flag turns them on when they are off, and its alias table: each canonical
reading and the metric names that carry it across versions, with their units and scale.

Every name, port, flag and answer here was read in the server's own source; the sources, with
commits, are listed in `tests/fixtures/serving/SOURCES.md`, whose tables these follow.

Metric names are compared with every `:` taken as `_` (`normalise`): an OpenMetrics-style
scrape or a downstream collector may rewrite `vllm:num_requests_running` as
`vllm_num_requests_running`, and the early vLLM releases printed the underscore form themselves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from tui.fleet.sanitize import safe_text

# --- readings ---------------------------------------------------------------------------------


class Reading(str, Enum):
    """The canonical readings a metrics page can give (the reading's fields, before rates)."""

    REQUESTS_RUNNING = "requests_running"
    REQUESTS_WAITING = "requests_waiting"
    KV_CACHE = "kv_cache"
    """KV-cache use, as a fraction 0-1 after scaling (the reading shows it in percent)."""
    PROMPT_TOKENS = "prompt_tokens"
    """Prompt (prefill) tokens, cumulative: a rate is taken."""
    GENERATION_TOKENS = "generation_tokens"
    """Generated tokens, cumulative: a rate is taken."""
    TTFT = "ttft"
    """Time to first token, seconds (a histogram)."""
    ITL = "itl"
    """Inter-token latency, seconds (a histogram)."""
    E2E = "e2e"
    """End-to-end request latency, seconds (a histogram)."""
    ERRORS = "errors"
    """Failed requests, cumulative: a rate is taken."""
    PREEMPTIONS = "preemptions"
    """Preempted (or retracted) requests, cumulative: a rate is taken."""


class Shape(str, Enum):
    """How a reading is read from its metric family."""

    GAUGE = "gauge"
    """The sample value, now."""
    COUNTER = "counter"
    """A cumulative sample value: a rate is taken between scrapes."""
    HISTOGRAM = "histogram"
    """Cumulative buckets: percentiles from bucket deltas over a window."""
    HISTOGRAM_SUM = "histogram_sum"
    """A histogram's `_sum`, used as a counter (TGI's and Triton's token totals)."""


class Combine(str, Enum):
    """How the series of one reading (engines, ranks, models) are put together."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    """The worst: quantiles of several series cannot be added."""


LabelTest = Callable[[Mapping[str, str]], bool]
"""Whether one series (by its labels) counts towards a reading."""


def label_in(name: str, *values: str) -> LabelTest:
    """Series whose label `name` is one of `values`."""
    allowed = frozenset(values)
    return lambda labels: labels.get(name) in allowed


def label_not_in(name: str, *values: str) -> LabelTest:
    """Series whose label `name` is none of `values` (a missing label counts as none)."""
    refused = frozenset(values)
    return lambda labels: labels.get(name) not in refused


def normalise(name: str) -> str:
    """A metric name compared colon/underscore-agnostic: every `:` becomes `_`."""
    return name.replace(":", "_") if ":" in name else name


@dataclass(frozen=True)
class Term:
    """One metric family's series, filtered by label, scaled to the reading's unit."""

    name: str
    """The family as the server prints it (`vllm:num_requests_running`); matched normalised."""
    scale: float = 1.0
    """Multiplier to the reading's unit (Triton's microseconds: 1e-6; milliseconds: 1e-3)."""
    keep: LabelTest | None = None
    """Only series this accepts count (a finish reason, a request type, a reporting rank)."""
    prefer: tuple[str, str] | None = None
    """(label, value): when any series carries it, only those count (Triton's ensemble, which
    is what clients call, so that its steps are not counted again)."""

    @functools.cached_property
    def key(self) -> str:
        """The normalised family name the parser is asked for."""
        return normalise(self.name)


@dataclass(frozen=True)
class Alias:
    """Where one canonical reading comes from, newest names first.

    `sources` are alternatives: the first whose first term's family is on the page wins (a
    0.9/0.10 vLLM page carries both `kv_cache_usage_perc` and the deprecated
    `gpu_cache_usage_perc`; the newer is read). The terms of one source are summed (SGLang's
    waiting requests are its queue plus its grammar queue).
    """

    shape: Shape
    sources: tuple[tuple[Term, ...], ...]
    combine: Combine = Combine.SUM
    unit: str = ""
    """What the reading is in once scaled, for the reader of this table."""


def one(
    shape: Shape,
    *names: str,
    unit: str = "",
    scale: float = 1.0,
    keep: LabelTest | None = None,
    prefer: tuple[str, str] | None = None,
) -> Alias:
    """An alias whose sources are single terms, newest name first, with the same options."""
    terms = tuple((Term(n, scale=scale, keep=keep, prefer=prefer),) for n in names)
    return Alias(shape, terms, unit=unit)


# --- health -----------------------------------------------------------------------------------


class Verdict(str, Enum):
    """What a health answer says."""

    READY = "ready"
    LOADING = "loading"
    UNHEALTHY = "unhealthy"
    NOT_READY = "not-ready"
    """Not ready, without saying why: loading when the server was never ready, else unhealthy
    (SGLang's 503 during warm-up and when it stopped answering; Triton's 400)."""


@dataclass(frozen=True)
class Health:
    """A health answer, read: the verdict and, where the server said more, what."""

    verdict: Verdict
    detail: str = ""


MAX_HEALTH_BYTES = 64 * 1024
"""Longest health (or info) answer read."""


def _json_body(body: bytes) -> object:
    """The body as JSON, or None when it is not JSON (health bodies are small: bounded)."""
    try:
        return json.loads(body[:MAX_HEALTH_BYTES])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _status_only(status: int) -> str:
    return f"health answered HTTP {status}"


def vllm_health(status: int, body: bytes) -> Health:
    """vLLM `/health`: 200 empty when ready; 503 when the engine is dead (or, newest, paused)."""
    if status == 200:
        return Health(Verdict.READY)
    if status == 503:
        return Health(Verdict.UNHEALTHY, "engine not running (/health 503)")
    return Health(Verdict.UNHEALTHY, _status_only(status))


def sglang_health(status: int, body: bytes) -> Health:
    """SGLang `/health`: 503 while warming up and when a test generation times out."""
    if status == 200:
        return Health(Verdict.READY)
    if status == 503:
        return Health(Verdict.NOT_READY, "/health 503")
    return Health(Verdict.UNHEALTHY, _status_only(status))


def tgi_health(status: int, body: bytes) -> Health:
    """TGI `/health`: 200 empty; 503 `{"error":"unhealthy","error_type":"healthcheck"}`.

    TGI opens its port only after every shard is ready, so a 503 is never loading.
    """
    if status == 200:
        return Health(Verdict.READY)
    data = _json_body(body)
    said = data.get("error") if isinstance(data, dict) else None
    why = safe_text(said, limit=80) if isinstance(said, str) else _status_only(status)
    return Health(Verdict.UNHEALTHY, why)


def llamacpp_health(status: int, body: bytes) -> Health:
    """llama.cpp `/health`: 503 `{"error":{"message":"Loading model",...}}`, then 200."""
    if status == 200:
        return Health(Verdict.READY)
    data = _json_body(body)
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if status == 503 and isinstance(message, str) and "loading" in message.lower():
        return Health(Verdict.LOADING, "loading model")
    if isinstance(message, str):
        return Health(Verdict.UNHEALTHY, safe_text(message, limit=80))
    return Health(Verdict.UNHEALTHY, _status_only(status))


def triton_health(status: int, body: bytes) -> Health:
    """Triton `/v2/health/ready`: 200, or 400 (empty) while models load or when not ready."""
    if status == 200:
        return Health(Verdict.READY)
    if status == 400:
        return Health(Verdict.NOT_READY, "/v2/health/ready 400")
    return Health(Verdict.UNHEALTHY, _status_only(status))


def lmdeploy_health(status: int, body: bytes) -> Health:
    """LMDeploy `/health`: v0.14+ `{"status": "healthy"|"sleeping"|"initializing"|...}`;
    before v0.14, 200 with an empty body."""
    data = _json_body(body)
    said = data.get("status") if isinstance(data, dict) else None
    said = said if isinstance(said, str) else ""
    if status == 200:
        return Health(Verdict.READY, "sleeping" if said == "sleeping" else "")
    if said == "initializing":
        return Health(Verdict.LOADING, "initializing")
    if said:
        return Health(Verdict.UNHEALTHY, safe_text(said, limit=80))
    return Health(Verdict.NOT_READY, _status_only(status))


def ollama_health(status: int, body: bytes) -> Health:
    """Ollama `GET /`: 200 `Ollama is running`."""
    if status == 200:
        return Health(Verdict.READY)
    return Health(Verdict.UNHEALTHY, _status_only(status))


# --- model names from info routes -------------------------------------------------------------


def tgi_info_model(data: object) -> str | None:
    """TGI `GET /info`: `model_id`."""
    value = data.get("model_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def openai_models_model(data: object) -> str | None:
    """An OpenAI-style `GET /v1/models` (llama.cpp): the first entry's `id`."""
    entries = data.get("data") if isinstance(data, dict) else None
    first = entries[0] if isinstance(entries, list) and entries else None
    value = first.get("id") if isinstance(first, dict) else None
    return value if isinstance(value, str) and value else None


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ServerKind:
    """One kind of model server: how to recognise it, reach it and read it."""

    name: str
    """Short id: `vllm`, `sglang`, `tgi`, `llamacpp`, `triton`, `lmdeploy`, `ollama`."""
    title: str
    """How people write it: vLLM, llama.cpp."""
    images: tuple[str, ...]
    """Substrings of the image's repository path (registry and tag stripped)."""
    commands: tuple[tuple[str, ...], ...]
    """Word sequences of the command line (the first matched on its base name):
    `("vllm", "serve")`, `("sglang.launch_server",)` (after `python -m`)."""
    default_port: int
    port_flags: tuple[str, ...] = ("--port",)
    port_env: tuple[str, ...] = ()
    host_flags: tuple[str, ...] = ("--host",)
    host_env: tuple[str, ...] = ()
    hostport_env: tuple[str, ...] = ()
    """Variables holding `host:port` (Ollama's `OLLAMA_HOST`, maybe with a scheme)."""
    default_host: str = "0.0.0.0"
    """Where it binds unless told: `127.0.0.1` for SGLang, llama.cpp and Ollama."""
    metrics_port: int | None = None
    """A separate metrics port (Triton: 8002); None: the API port."""
    metrics_port_flags: tuple[str, ...] = ()
    health_path: str | None = "/health"
    health: Callable[[int, bytes], Health] = vllm_health
    closed_while_loading: bool = False
    """The port stays closed while the model loads (vLLM, SGLang, TGI, LMDeploy): a refused
    connection before the first ready answer means loading, not dead."""
    metrics_path: str | None = "/metrics"
    """None: no Prometheus page (Ollama)."""
    metrics_flag: str = ""
    """What turns the metrics page on when it is off ("" when it is always on)."""
    metrics_flag_env: str = ""
    """The environment variable that does the same, if any."""
    metrics_off_flag: str = ""
    """A flag that turns an always-on page off (its presence is the hint to give)."""
    metrics_off_status: frozenset[int] = frozenset()
    """HTTP statuses of the metrics route that mean "metrics are off"."""
    info_path: str | None = None
    """A route that names the model when the page does not (TGI `/info`, llama.cpp)."""
    info_model: Callable[[object], str | None] | None = None
    model_label: str | None = "model_name"
    """The label of the page's series that names the model."""
    model_prefer: str | None = None
    """A model label value to name when present (Triton's `ensemble`: what clients call)."""
    aliases: Mapping[Reading, Alias] = field(default_factory=dict)
    page_prefixes: tuple[str, ...] = ()
    """Normalised name prefixes that identify this server on a page."""
    rate_window_s: float = 5.0
    """Span over which counter rates are taken (longer where counters print coarsely)."""
    host_hint: str = "--host 0.0.0.0"
    """How to make it listen on every interface (for the 127.0.0.1-bound message)."""

    def metrics_hint(self, words: tuple[str, ...] = ()) -> str:
        """What to tell a user whose server has its metrics off, given its command line."""
        if self.metrics_off_flag and self.metrics_off_flag in words:
            return f"remove {self.metrics_off_flag}"
        if self.metrics_flag_env and self.metrics_flag:
            return f"{self.metrics_flag} (or {self.metrics_flag_env}=1)"
        return self.metrics_flag


# vLLM: vllm/v1/metrics/loggers.py (0.11/0.12, 0.9/0.10, 0.8), vllm/engine/metrics.py (v0).
VLLM = ServerKind(
    name="vllm",
    title="vLLM",
    images=("vllm",),
    commands=(
        ("vllm", "serve"),
        ("vllm.entrypoints.openai.api_server",),
        ("vllm.entrypoints.api_server",),
    ),
    default_port=8000,
    health=vllm_health,
    closed_while_loading=True,
    aliases={
        Reading.REQUESTS_RUNNING: one(Shape.GAUGE, "vllm:num_requests_running", unit="requests"),
        Reading.REQUESTS_WAITING: one(Shape.GAUGE, "vllm:num_requests_waiting", unit="requests"),
        # A fraction 0-1 despite `_perc`; averaged over data-parallel engines, as vLLM's log does.
        Reading.KV_CACHE: Alias(
            Shape.GAUGE,
            ((Term("vllm:kv_cache_usage_perc"),), (Term("vllm:gpu_cache_usage_perc"),)),
            Combine.MEAN,
            "fraction",
        ),
        Reading.PROMPT_TOKENS: one(Shape.COUNTER, "vllm:prompt_tokens_total", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.COUNTER, "vllm:generation_tokens_total", unit="tokens"
        ),
        Reading.TTFT: one(Shape.HISTOGRAM, "vllm:time_to_first_token_seconds", unit="s"),
        # Not request_time_per_output_token_seconds: that one is a per-request mean.
        Reading.ITL: one(
            Shape.HISTOGRAM,
            "vllm:inter_token_latency_seconds",
            "vllm:time_per_output_token_seconds",
            unit="s",
        ),
        Reading.E2E: one(Shape.HISTOGRAM, "vllm:e2e_request_latency_seconds", unit="s"),
        # finished_reason="abort" is the client going away, not the server failing.
        Reading.ERRORS: one(
            Shape.COUNTER,
            "vllm:request_success_total",
            unit="requests",
            keep=label_in("finished_reason", "error"),
        ),
        Reading.PREEMPTIONS: one(Shape.COUNTER, "vllm:num_preemptions_total", unit="requests"),
    },
    page_prefixes=("vllm_",),
)


def sglang_reporting_rank(labels: Mapping[str, str]) -> bool:
    """SGLang scheduler series that report for the whole server: TP rank 0 (every rank reports
    with --enable-metrics-for-all-schedulers), or every DP-attention group's (`dp_rank`)."""
    return "dp_rank" in labels or labels.get("tp_rank", "0") == "0"


# SGLang: python/sglang/srt/metrics/collector.py (current and about 0.3/0.4).
SGLANG = ServerKind(
    name="sglang",
    title="SGLang",
    images=("sglang",),
    commands=(("sglang.launch_server",), ("sglang", "serve")),
    default_port=30000,
    default_host="127.0.0.1",
    health=sglang_health,
    closed_while_loading=True,
    metrics_flag="--enable-metrics",
    metrics_off_status=frozenset({404}),
    aliases={
        Reading.REQUESTS_RUNNING: one(
            Shape.GAUGE, "sglang:num_running_reqs", unit="requests", keep=sglang_reporting_rank
        ),
        Reading.REQUESTS_WAITING: Alias(
            Shape.GAUGE,
            (
                (
                    Term("sglang:num_queue_reqs", keep=sglang_reporting_rank),
                    Term("sglang:num_grammar_queue_reqs", keep=sglang_reporting_rank),
                ),
            ),
            unit="requests",
        ),
        Reading.KV_CACHE: Alias(
            Shape.GAUGE,
            ((Term("sglang:token_usage", keep=sglang_reporting_rank),),),
            Combine.MEAN,
            "fraction",
        ),
        Reading.PROMPT_TOKENS: one(Shape.COUNTER, "sglang:prompt_tokens_total", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.COUNTER, "sglang:generation_tokens_total", unit="tokens"
        ),
        Reading.TTFT: one(Shape.HISTOGRAM, "sglang:time_to_first_token_seconds", unit="s"),
        # The current ITL `_sum` adds whole intervals while buckets count tokens: buckets only.
        Reading.ITL: one(
            Shape.HISTOGRAM,
            "sglang:inter_token_latency_seconds",
            "sglang:time_per_output_token_seconds",
            unit="s",
        ),
        Reading.E2E: one(Shape.HISTOGRAM, "sglang:e2e_request_latency_seconds", unit="s"),
        Reading.ERRORS: one(Shape.COUNTER, "sglang:num_aborted_requests_total", unit="requests"),
        Reading.PREEMPTIONS: one(
            Shape.COUNTER,
            "sglang:num_retracted_requests_total",
            unit="requests",
            keep=sglang_reporting_rank,
        ),
    },
    page_prefixes=("sglang_",),
)

# TGI: router/src/server.rs, router/src/validation.rs, router/src/infer/mod.rs, backends/v3.
TGI = ServerKind(
    name="tgi",
    title="TGI",
    images=("text-generation-inference", "huggingface/tgi"),
    commands=(("text-generation-launcher",), ("text-generation-router",)),
    default_port=3000,
    port_env=("PORT",),
    host_flags=("--hostname",),
    health=tgi_health,
    closed_while_loading=True,
    info_path="/info",
    info_model=tgi_info_model,
    model_label=None,
    host_hint="--hostname 0.0.0.0",
    aliases={
        Reading.REQUESTS_RUNNING: one(Shape.GAUGE, "tgi_batch_current_size", unit="requests"),
        Reading.REQUESTS_WAITING: one(Shape.GAUGE, "tgi_queue_size", unit="requests"),
        Reading.PROMPT_TOKENS: one(Shape.HISTOGRAM_SUM, "tgi_request_input_length", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.HISTOGRAM_SUM, "tgi_request_generated_tokens", unit="tokens"
        ),
        # A per-request mean time per token: the nearest TGI has to an inter-token latency.
        Reading.ITL: one(Shape.HISTOGRAM, "tgi_request_mean_time_per_token_duration", unit="s"),
        Reading.E2E: one(Shape.HISTOGRAM, "tgi_request_duration", unit="s"),
        Reading.ERRORS: one(Shape.COUNTER, "tgi_request_failure", unit="requests"),
    },
    page_prefixes=("tgi_",),
)

# llama.cpp: tools/server/server-context.cpp get_metrics (and the older server.cpp block).
LLAMACPP = ServerKind(
    name="llamacpp",
    title="llama.cpp",
    images=("llama.cpp", "llama-cpp", "llamacpp"),
    commands=(("llama-server",),),
    default_port=8080,
    port_env=("LLAMA_ARG_PORT",),
    host_env=("LLAMA_ARG_HOST",),
    default_host="127.0.0.1",
    health=llamacpp_health,
    metrics_flag="--metrics",
    metrics_flag_env="LLAMA_ARG_ENDPOINT_METRICS",
    metrics_off_status=frozenset({501}),
    info_path="/v1/models",
    info_model=openai_models_model,
    model_label=None,
    # Counters print with %g (6 significant digits): a 1 s delta of 1.31216e+06 is noise.
    rate_window_s=15.0,
    aliases={
        Reading.REQUESTS_RUNNING: one(Shape.GAUGE, "llamacpp:requests_processing", unit="requests"),
        Reading.REQUESTS_WAITING: one(Shape.GAUGE, "llamacpp:requests_deferred", unit="requests"),
        Reading.KV_CACHE: Alias(
            Shape.GAUGE, ((Term("llamacpp:kv_cache_usage_ratio"),),), Combine.MEAN, "fraction"
        ),
        Reading.PROMPT_TOKENS: one(Shape.COUNTER, "llamacpp:prompt_tokens_total", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.COUNTER, "llamacpp:tokens_predicted_total", unit="tokens"
        ),
    },
    page_prefixes=("llamacpp_",),
)

# Triton: core src/metrics.cc, metric_model_reporter.cc; TensorRT-LLM's custom_metrics_reporter.
TRITON = ServerKind(
    name="triton",
    title="Triton",
    images=("tritonserver", "triton-inference-server"),
    commands=(("tritonserver",),),
    default_port=8000,
    port_flags=("--http-port",),
    host_flags=("--http-address",),
    metrics_port=8002,
    metrics_port_flags=("--metrics-port",),
    health_path="/v2/health/ready",
    health=triton_health,
    metrics_flag="--allow-metrics=true",
    model_label="model",
    model_prefer="ensemble",
    host_hint="--http-address 0.0.0.0",
    aliases={
        Reading.REQUESTS_RUNNING: one(
            Shape.GAUGE,
            "nv_trt_llm_request_metrics",
            unit="requests",
            keep=label_in("request_type", "active"),
        ),
        Reading.REQUESTS_WAITING: Alias(
            Shape.GAUGE,
            (
                (Term("nv_trt_llm_request_metrics", keep=label_in("request_type", "waiting")),),
                (Term("nv_inference_pending_request_count"),),
            ),
            unit="requests",
        ),
        Reading.KV_CACHE: Alias(
            Shape.GAUGE,
            (
                (
                    Term(
                        "nv_trt_llm_kv_cache_block_metrics",
                        keep=label_in("kv_cache_block_type", "fraction"),
                    ),
                ),
            ),
            Combine.MEAN,
            "fraction",
        ),
        Reading.PROMPT_TOKENS: one(Shape.HISTOGRAM_SUM, "nv_llm_input_token_len", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.HISTOGRAM_SUM, "nv_llm_output_token_len", unit="tokens"
        ),
        # Only with --metrics-config histogram_latencies=true; in milliseconds.
        Reading.TTFT: one(
            Shape.HISTOGRAM,
            "nv_inference_first_response_histogram_ms",
            unit="s",
            scale=1e-3,
            prefer=("model", "ensemble"),
        ),
        # Only with --metrics-config summary_latencies=true: Triton's own p95 (microseconds,
        # NaN while idle). Without it Triton gives a mean only, which is no p95: None.
        Reading.E2E: Alias(
            Shape.GAUGE,
            (
                (
                    Term(
                        "nv_inference_request_summary_us",
                        scale=1e-6,
                        keep=label_in("quantile", "0.95"),
                        prefer=("model", "ensemble"),
                    ),
                ),
            ),
            Combine.MAX,
            "s",
        ),
        Reading.ERRORS: one(
            Shape.COUNTER,
            "nv_inference_request_failure",
            unit="requests",
            prefer=("model", "ensemble"),
        ),
    },
    page_prefixes=("nv_inference_", "nv_trt_llm_"),
)

# LMDeploy: lmdeploy/metrics/loggers.py, lmdeploy/messages.py (ResponseType).
LMDEPLOY = ServerKind(
    name="lmdeploy",
    title="LMDeploy",
    images=("lmdeploy",),
    commands=(("lmdeploy", "serve", "api_server"), ("lmdeploy.serve.openai.api_server",)),
    default_port=23333,
    port_flags=("--server-port",),
    host_flags=("--server-name",),
    health=lmdeploy_health,
    closed_while_loading=True,
    metrics_flag="--enable-metrics",
    metrics_off_flag="--disable-metrics",
    metrics_off_status=frozenset({404}),
    host_hint="--server-name 0.0.0.0",
    aliases={
        Reading.REQUESTS_RUNNING: one(
            Shape.GAUGE, "lmdeploy:num_requests_running", unit="requests"
        ),
        Reading.REQUESTS_WAITING: one(
            Shape.GAUGE, "lmdeploy:num_requests_waiting", unit="requests"
        ),
        Reading.KV_CACHE: Alias(
            Shape.GAUGE, ((Term("lmdeploy:gpu_cache_usage_perc"),),), Combine.MEAN, "fraction"
        ),
        Reading.PROMPT_TOKENS: one(Shape.COUNTER, "lmdeploy:prompt_tokens_total", unit="tokens"),
        Reading.GENERATION_TOKENS: one(
            Shape.COUNTER, "lmdeploy:generation_tokens_total", unit="tokens"
        ),
        Reading.TTFT: one(Shape.HISTOGRAM, "lmdeploy:time_to_first_token_seconds", unit="s"),
        # No `_seconds` suffix, but seconds; time_per_output_token_seconds is per iteration.
        Reading.ITL: one(Shape.HISTOGRAM, "lmdeploy:iter_token_latency", unit="s"),
        Reading.E2E: one(Shape.HISTOGRAM, "lmdeploy:e2e_request_latency_seconds", unit="s"),
        # Every finish reason but success, finish and a client's cancel is a failure.
        Reading.ERRORS: one(
            Shape.COUNTER,
            "lmdeploy:request_success_total",
            unit="requests",
            keep=label_not_in(
                "finished_reason",
                "ResponseType.SUCCESS",
                "ResponseType.FINISH",
                "ResponseType.CANCEL",
            ),
        ),
    },
    page_prefixes=("lmdeploy_",),
)

# Ollama: envconfig/config.go, server/routes.go (PsHandler), api/types.go. No Prometheus page.
OLLAMA = ServerKind(
    name="ollama",
    title="Ollama",
    images=("ollama",),
    commands=(("ollama", "serve"),),
    default_port=11434,
    port_flags=(),
    host_flags=(),
    hostport_env=("OLLAMA_HOST",),
    default_host="127.0.0.1",
    health_path="/",
    health=ollama_health,
    metrics_path=None,
    model_label=None,
    host_hint="OLLAMA_HOST=0.0.0.0:11434",
)

KINDS: tuple[ServerKind, ...] = (VLLM, SGLANG, TGI, LLAMACPP, TRITON, LMDEPLOY, OLLAMA)
"""Every server kind, in the order their images and commands are tried."""

BY_NAME: Mapping[str, ServerKind] = {kind.name: kind for kind in KINDS}

OLLAMA_PS_PATH = "/api/ps"
RESTART_MARKER = "process_start_time_seconds"
"""prometheus_client's start time of the serving process: when it moves, the server restarted."""


def wanted_families() -> dict[str, Shape]:
    """Every family any server's table reads (normalised name -> shape), for the parser."""
    wanted: dict[str, Shape] = {normalise(RESTART_MARKER): Shape.GAUGE}
    for kind in KINDS:
        for alias in kind.aliases.values():
            for source in alias.sources:
                for term in source:
                    wanted[term.key] = alias.shape
    return wanted


WANTED = wanted_families()
"""The families the parser keeps: the union over every kind, so that a page can say which
server it comes from whatever the image said."""

WANTED_WITHOUT_HISTOGRAMS = {name: s for name, s in WANTED.items() if s is not Shape.HISTOGRAM}
"""The same without the latency histograms: most scrapes read only these (percentiles are
taken over a minute, so their buckets are read every few scrapes; see scrape.HISTOGRAM_EVERY),
and the parser passes over the histograms' many bucket lines without reading them."""


def kind_of_page(names: set[str] | frozenset[str]) -> ServerKind | None:
    """The server whose families a page carries (normalised names), or None."""
    best: ServerKind | None = None
    best_count = 0
    for kind in KINDS:
        if not kind.page_prefixes:
            continue
        count = sum(1 for n in names if n.startswith(kind.page_prefixes))
        if count > best_count:
            best, best_count = kind, count
    return best
