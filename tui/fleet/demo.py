"""`aitop demo up|down|replay`: a small living fleet of labelled model-server containers.

The image is built locally FROM scratch with the host's static busybox, so no registry is
needed. Every demo container carries the `aitop.demo` label; `down` removes exactly those.
`replay` needs no engine: it shows the demo fleet as recorded (`demo_fleet.json`, next to this
module, written by `tests/record_fleet.py`; the screenshots' fleet, GPUs included).

The model servers are stand-ins that answer as the real ones do, so that the serving columns
fill at once: three vLLM replicas (`vllm serve MODEL --port 8000`), two TGI replicas
(`text-generation-launcher --model-id MODEL --port 80`) and an Ollama (`ollama serve`, with
the official image's `OLLAMA_HOST=0.0.0.0:11434`). Each command word is a shell script in the
image that logs a model loading, then runs busybox `httpd`: its pages are CGI scripts that
print the real servers' formats (the names and buckets of `tests/fixtures/serving`, whose
SOURCES.md cites each server's source) with counters computed from the time since the server
started, so that rates, percentiles and the KV cache move. aitop finds them as it finds any
server: by the command line, and, because busybox runs CGI scripts under `/cgi-bin` only, by
the label `aitop.metrics-path=/cgi-bin/metrics` (a path that ends in the server's own metrics
path makes the rest a prefix of every route, as for a server behind a proxy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.events import FleetEvent
from tui.fleet.models import FleetSnapshot
from tui.fleet.recording import load
from tui.fleet.source import SnapshotCallback

DEMO_LABEL = "aitop.demo"
DEMO_REPO = "aitop-demo"
DEMO_PROJECT = "aitop-demo"
METRICS_PATH = "/cgi-bin/metrics"
"""Where the stand-ins' pages are (busybox httpd runs CGI scripts under /cgi-bin only)."""

# --- the stand-in servers, as shell scripts in the image ---------------------------------------

LIB = r"""# The demo's stand-in model servers (aitop demo up): a model loads, then pages move.
demo_load() {
  echo "INFO Starting inference server for $MODEL"
  i=0
  while [ $i -lt 10 ]; do
    i=$((i+1))
    echo "Loading safetensors checkpoint shards: $((i*10))% Completed | $i/10"
    sleep 0.3
  done
}
# demo_serve PORT PAGES...: copy the pages, note the start, listen.
demo_serve() {
  port=$1; shift
  mkdir -p /www/cgi-bin /tmp
  for page in "$@"; do cp "/demo/cgi/$page" "/www/cgi-bin/${page#*-}"; done
  read up _ < /proc/uptime
  echo "${up%.*}${up#*.}" > /tmp/demo-start
  date +%s > /tmp/demo-epoch
  httpd -p "$port" -h /www
}
demo_requests() {
  while :; do
    echo "INFO: 172.17.0.1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK tokens=$((RANDOM % 512))"
    sleep $((RANDOM % 3 + 1))
  done
}
# The value after a flag on the command line ($2 of "--port 8000").
demo_flag() {
  flag=$1; shift
  while [ $# -gt 0 ]; do
    [ "$1" = "$flag" ] && [ $# -gt 1 ] && { echo "$2"; return; }
    shift
  done
}
"""

VLLM = r"""#!/bin/sh
# A stand-in for `vllm serve MODEL --port PORT` (aitop's demo fleet): vLLM's pages, moving.
. /demo/lib.sh
MODEL=${2:-$MODEL}
port=$(demo_flag --port "$@"); port=${port:-8000}
demo_load
echo "INFO:     Started server process [1]"
echo "INFO:     Uvicorn running on http://0.0.0.0:$port (Press CTRL+C to quit)"
demo_serve "$port" vllm-metrics vllm-health
demo_requests
"""

TGI = r"""#!/bin/sh
# A stand-in for `text-generation-launcher --model-id MODEL --port PORT` (aitop's demo fleet).
. /demo/lib.sh
MODEL=$(demo_flag --model-id "$@"); MODEL=${MODEL:-bigscience/bloom-560m}
port=$(demo_flag --port "$@"); port=${port:-${PORT:-80}}
echo "INFO text_generation_launcher: Args { model_id: \"$MODEL\", port: $port }"
demo_load
echo "INFO text_generation_router::server: Connected"
demo_serve "$port" tgi-metrics vllm-health tgi-info
demo_requests
"""

OLLAMA = r"""#!/bin/sh
# A stand-in for `ollama serve` (aitop's demo fleet): GET / and /api/ps as Ollama answers them.
. /demo/lib.sh
hostport=${OLLAMA_HOST:-127.0.0.1:11434}
port=${hostport##*:}
mkdir -p /www/api
echo "Ollama is running" > /www/index.html
expires=$(date -u -d "@$(( $(date +%s) + 86400 ))" +%Y-%m-%dT%H:%M:%S.000000000Z)
sed "s/EXPIRES/$expires/g" /demo/ollama-ps.json > /www/api/ps
at=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
echo "time=$at level=INFO source=routes.go msg=\"Listening on [::]:$port (version 0.12.3)\""
httpd -p "$port" -h /www
demo_requests
"""

CGI_LIB = r"""# Sourced by the demo's pages: how much has happened since the server started.
read up _ < /proc/uptime
now=${up%.*}${up#*.}
read start < /tmp/demo-start
read epoch < /tmp/demo-epoch
U=$((now - start))
[ $U -lt 0 ] && U=0
# The load, in percent of the mean, over eight spells of 10 s each (it repeats).
W="100 125 140 115 85 65 90 110"
WSUM=830
K=$(( (U % 8000) / 1000 ))
PREF=0; i=0
for m in $W; do
  [ $i -eq $K ] && { MK=$m; break; }
  PREF=$((PREF + m)); i=$((i + 1))
done
# Load-weighted time so far: U centiseconds at MK percent each, times 100.
LOAD=$(( (U / 8000) * WSUM * 1000 + PREF * 1000 + MK * (U % 1000) ))
# How many of something that happens $1 times a second on average (every value only grows).
count() { echo $(( $1 * LOAD / 10000 )); }
# The same for $1 hundredths a second.
count100() { echo $(( $1 * LOAD / 1000000 )); }
# A gauge about $1 that follows the load (and wobbles by up to $2; 0 stays 0: an idle server).
gauge() { [ "$1" -eq 0 ] && echo 0 || echo $(( $1 * MK / 100 + (U / 100) % ($2 + 1) )); }
# $1 thousandths as a decimal.
milli() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }
# hist NAME N TABLE: the buckets of N observations spread as TABLE's cumulative shares (per
# mille, "le:share" words); HEAD and TAIL are the labels before and after `le` (sorted, as
# prometheus_client prints them), DOT what follows a count ("" or ".0").
hist() {
  for b in $3; do
    echo "$1_bucket{${HEAD}le=\"${b%:*}\"$TAIL} $(( $2 * ${b#*:} / 1000 ))$DOT"
  done
}
"""

VLLM_METRICS = r"""#!/bin/sh
# vLLM's /metrics (v1 engine, 0.11 names: vllm/v1/metrics/loggers.py), from the time since start.
. /demo/cgi-lib.sh
printf 'Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\r\n'
L="engine=\"0\",model_name=\"$MODEL\""
T=/demo/tables/$DEMO_PROFILE
gen=$(count "$DEMO_GEN"); prompt=$(count "$DEMO_PROMPT"); n=$(count100 "$DEMO_REQ")
kv=$(( DEMO_KV * 10 + (MK - 100) + (U / 300) % 7 * 3 ))
[ $kv -gt 1000 ] && kv=1000
[ $kv -lt 0 ] || [ "$DEMO_KV" -eq 0 ] && kv=0
cat <<EOF
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds $epoch.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{$L} $(gauge "$DEMO_RUNNING" 3).0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{$L} $(( DEMO_WAITING * MK / 100 + (U / 700) % 2 * DEMO_WAITING )).0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{$L} $(milli $kv)
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{$L} $(( n * DEMO_PREEMPT / 1000 )).0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{$L} $prompt.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{$L} $gen.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
EOF
for r in stop:700 length:280 abort:12 error:8 repetition:0; do
  labels="engine=\"0\",finished_reason=\"${r%:*}\",model_name=\"$MODEL\""
  echo "vllm:request_success_total{$labels} $(( n * ${r#*:} / 1000 )).0"
done
DOT=.0
HEAD='engine="0",'
TAIL=",model_name=\"$MODEL\""
for h in time_to_first_token_seconds:n:ttft inter_token_latency_seconds:gen:itl \
    e2e_request_latency_seconds:n:e2e; do
  name=vllm:${h%%:*}; rest=${h#*:}; what=${rest%%:*}; table=${rest#*:}
  [ "$what" = n ] && obs=$n || obs=$gen
  read mean < "$T/vllm-$table.mean"
  echo "# HELP $name $(cat "$T/vllm-$table.help")"
  echo "# TYPE $name histogram"
  hist "$name" "$obs" "$(cat "$T/vllm-$table")"
  echo "${name}_count{$L} $obs.0"
  echo "${name}_sum{$L} $(milli $(( obs * mean )))"
done
"""

TGI_METRICS = r"""#!/bin/sh
# TGI's /metrics (router/src/server.rs, metrics-exporter-prometheus), from the time since start.
. /demo/cgi-lib.sh
printf 'Content-Type: text/plain\r\n\r\n'
T=/demo/tables/$DEMO_PROFILE
n=$(count100 "$DEMO_REQ"); gen=$(count "$DEMO_GEN"); prompt=$(count "$DEMO_PROMPT")
cat <<EOF
# HELP tgi_request_count Total number of requests
# TYPE tgi_request_count counter
tgi_request_count $n

# TYPE tgi_request_failure counter
tgi_request_failure{err="incomplete"} $(( n * 6 / 1000 ))
tgi_request_failure{err="validation"} $(( n * 2 / 1000 ))

# HELP tgi_request_success Number of successful requests
# TYPE tgi_request_success counter
tgi_request_success $(( n * 992 / 1000 ))

# HELP tgi_queue_size Current queue size
# TYPE tgi_queue_size gauge
tgi_queue_size $(( DEMO_WAITING * MK / 100 + (U / 700) % 2 * (DEMO_WAITING > 0) ))

# HELP tgi_batch_current_size Current batch size
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size $(gauge "$DEMO_RUNNING" 2)

EOF
DOT=
HEAD=
TAIL=
for h in request_duration:n:e2e request_mean_time_per_token_duration:n:itl \
    request_queue_duration:n:queue request_input_length:prompt:input \
    request_generated_tokens:gen:generated; do
  name=tgi_${h%%:*}; rest=${h#*:}; what=${rest%%:*}; table=${rest#*:}
  case $what in
    n) total=$(( n * $(cat "$T/tgi-$table.mean") ));;
    prompt) total=$(( prompt * 1000 ));;
    gen) total=$(( gen * 1000 ));;
  esac
  echo "# HELP $name $(cat "$T/tgi-$table.help")"
  echo "# TYPE $name histogram"
  hist "$name" "$n" "$(cat "$T/tgi-$table")"
  echo "${name}_sum $(milli "$total")"
  echo "${name}_count $n"
  echo
done
"""

HEALTH = r"""#!/bin/sh
# /health: 200 with an empty body, or what DEMO_HEALTH says (vLLM: 503 when its engine died).
printf 'Status: %s X\r\nContent-Type: application/json\r\n\r\n' "${DEMO_HEALTH:-200}"
"""

TGI_INFO = r"""#!/bin/sh
# TGI's GET /info (router/src/lib.rs Info), shortened.
printf 'Content-Type: application/json\r\n\r\n'
printf '{"model_id":"%s","model_sha":null,"model_pipeline_tag":"text-generation",' "$MODEL"
printf '"max_concurrent_requests":128,"max_input_tokens":8191,"max_total_tokens":8192,'
printf '"router":"text-generation-router","version":"3.3.6"}'
"""

OLLAMA_PS = (
    '{"models":[{"name":"llama3.1:8b","model":"llama3.1:8b","size":6654289920,'
    '"digest":"46e0c10c039e019119339687c3c1757cc81b9da49709a3b3924863ba87ca666e",'
    '"details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],'
    '"parameter_size":"8.0B","quantization_level":"Q4_K_M"},"expires_at":"EXPIRES",'
    '"size_vram":6654289920,"context_length":8192},'
    '{"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","size":849346560,'
    '"digest":"0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f",'
    '"details":{"parent_model":"","format":"gguf","family":"nomic-bert",'
    '"families":["nomic-bert"],"parameter_size":"137M","quantization_level":"F16"},'
    '"expires_at":"EXPIRES","size_vram":849346560,"context_length":2048}]}'
)
"""Ollama's `/api/ps` (server/routes.go PsHandler, api/types.go), expiring a day after start."""

# --- the latency histograms: bucket bounds and how the observations spread ---------------------


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(word) for word in text.split())


def _vllm_bounds() -> dict[str, tuple[float, ...]]:
    # vllm/v1/metrics/loggers.py
    return {
        "ttft": _floats(
            "0.001 0.005 0.01 0.02 0.04 0.06 0.08 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10 20 40 80 160 "
            "640 2560"
        ),
        "itl": _floats(
            "0.01 0.025 0.05 0.075 0.1 0.15 0.2 0.3 0.4 0.5 0.75 1 2.5 5 7.5 10 20 40 80"
        ),
        "e2e": _floats("0.3 0.5 0.8 1 1.5 2 2.5 5 10 15 20 30 40 50 60 120 240 480 960 1920 7680"),
    }


def _tgi_bounds() -> dict[str, tuple[float, ...]]:
    # metrics-rs buckets as TGI sets them (router/src/server.rs): durations 1.5x from 150 us,
    # token counts in 100 steps up to the limits (8191 input, 8192 total tokens).
    durations: list[float] = []
    bound = 0.00015
    for _ in range(35):
        durations.append(bound)
        bound *= 1.5
    return {
        "e2e": tuple(durations),
        "itl": tuple(durations),
        "queue": tuple(durations),
        "input": tuple(8191 * (i + 1) / 100 for i in range(100)),
        "generated": tuple(8192 * (i + 1) / 100 for i in range(100)),
    }


VLLM_HELP = {
    "ttft": "Histogram of time to first token in seconds.",
    "itl": "Histogram of inter-token latency in seconds.",
    "e2e": "Histogram of e2e request latency in seconds.",
}
TGI_HELP = {
    "e2e": "Request total time",
    "itl": "Mean time per token per request",
    "queue": "Request queue duration",
    "input": "Input token length per request",
    "generated": "Generated tokens per request",
}


@dataclass(frozen=True)
class Profile:
    """How slow one server is: the median and spread (lognormal) of each latency."""

    medians: Mapping[str, float]
    sigma: float = 0.6


PROFILES = {
    "quick": Profile({"ttft": 0.06, "itl": 0.012, "e2e": 1.6, "queue": 0.004}),
    "steady": Profile({"ttft": 0.16, "itl": 0.022, "e2e": 3.2, "queue": 0.03}),
    "busy": Profile({"ttft": 0.55, "itl": 0.041, "e2e": 7.5, "queue": 0.4}, sigma=0.8),
}
TOKEN_MEDIANS = {"input": 620.0, "generated": 240.0}


def _shares(bounds: tuple[float, ...], median: float, sigma: float) -> str:
    """`le:share` words: the lognormal's cumulative share below each bound, per mille."""
    words = []
    for bound in bounds:
        z = (math.log(bound) - math.log(median)) / sigma
        words.append(f"{bound!r}:{round(500 * (1 + math.erf(z / math.sqrt(2))))}")
    words.append("+Inf:1000")
    return " ".join(words)


def _tables() -> dict[str, bytes]:
    """Files under /demo/tables/<profile>/: each histogram's shares, mean (ms) and help."""
    files: dict[str, bytes] = {}
    for name, profile in PROFILES.items():
        for server, bounds_of, helps in (
            ("vllm", _vllm_bounds(), VLLM_HELP),
            ("tgi", _tgi_bounds(), TGI_HELP),
        ):
            for table, bounds in bounds_of.items():
                median = TOKEN_MEDIANS.get(table) or profile.medians[table]
                mean_ms = round(1000 * median * math.exp(profile.sigma**2 / 2))
                base = f"demo/tables/{name}/{server}-{table}"
                files[base] = _shares(bounds, median, profile.sigma).encode()
                files[f"{base}.mean"] = f"{mean_ms}\n".encode()
                files[f"{base}.help"] = f"{helps[table]}\n".encode()
    return files


def image_files() -> dict[str, tuple[bytes, int]]:
    """The demo image's files but busybox (path in the build context -> content, mode)."""
    executable, plain = 0o755, 0o644
    files: dict[str, tuple[bytes, int]] = {
        "demo/lib.sh": (LIB.encode(), plain),
        "demo/cgi-lib.sh": (CGI_LIB.encode(), plain),
        "demo/cgi/vllm-metrics": (VLLM_METRICS.encode(), executable),
        "demo/cgi/vllm-health": (HEALTH.encode(), executable),
        "demo/cgi/tgi-metrics": (TGI_METRICS.encode(), executable),
        "demo/cgi/tgi-info": (TGI_INFO.encode(), executable),
        "demo/ollama-ps.json": (OLLAMA_PS.encode(), plain),
        "bin/vllm": (VLLM.encode(), executable),
        "bin/text-generation-launcher": (TGI.encode(), executable),
        "bin/ollama": (OLLAMA.encode(), executable),
    }
    files.update({path: (content, plain) for path, content in _tables().items()})
    return files


DOCKERFILE = (
    b"FROM scratch\n"
    b"COPY busybox /bin/busybox\n"
    b'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    b"COPY demo /demo\n"
    b"COPY bin /usr/local/bin\n"
    b'ENV PATH="/usr/local/bin:/bin"\n'
    b'CMD ["sh"]\n'
)


def demo_image() -> str:
    """The demo image's tag: it changes when its scripts do (an old image is never reused)."""
    digest = hashlib.sha256(DOCKERFILE)
    for path, (content, mode) in sorted(image_files().items()):
        digest.update(f"{path}\0{mode}\0".encode() + hashlib.sha256(content).digest())
    return f"{DEMO_REPO}:{digest.hexdigest()[:12]}"


# --- the fleet ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoContainer:
    """One container of the demo fleet."""

    name: str
    command: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Load:
    """How hard one stand-in server works: token and request rates, batch, queue, KV cache."""

    generation: int
    """Generated tokens a second, on average."""
    prompt: int
    """Prompt tokens a second, on average."""
    requests: int
    """Finished requests a second, in hundredths."""
    running: int
    waiting: int
    kv_percent: int = 0
    profile: str = "steady"
    preempt: int = 0
    """Preemptions per thousand requests."""

    def env(self) -> dict[str, str]:
        """The environment the stand-in's pages read."""
        return {
            "DEMO_GEN": str(self.generation),
            "DEMO_PROMPT": str(self.prompt),
            "DEMO_REQ": str(self.requests),
            "DEMO_RUNNING": str(self.running),
            "DEMO_WAITING": str(self.waiting),
            "DEMO_KV": str(self.kv_percent),
            "DEMO_PROFILE": self.profile,
            "DEMO_PREEMPT": str(self.preempt),
        }


def _compose(service: str, number: int) -> dict[str, str]:
    return {
        "com.docker.compose.project": DEMO_PROJECT,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "False",
    }


def _vllm(name: str, model: str, load: Load, labels: dict[str, str], **kw: Any) -> DemoContainer:
    return DemoContainer(
        name=name,
        command=("vllm", "serve", model, "--port", "8000"),
        labels={"aitop.model": model, "aitop.metrics-path": METRICS_PATH, **labels},
        env={"MODEL": model, **load.env(), **kw.pop("env", {})},
        ports=(8000,),
        **kw,
    )


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
QWEN = "Qwen/Qwen2.5-7B-Instruct"

LLAMA_LOADS = (
    Load(1450, 4200, 310, 28, 4, kv_percent=88, profile="busy", preempt=25),
    Load(820, 2600, 190, 14, 1, kv_percent=57, profile="steady", preempt=4),
    Load(260, 900, 110, 4, 0, kv_percent=19, profile="quick"),
)
MISTRAL_LOADS = (
    Load(640, 1900, 160, 9, 2, profile="steady"),
    Load(380, 1200, 95, 5, 0, profile="quick"),
)


def demo_fleet() -> list[DemoContainer]:
    """The containers `aitop demo up` starts."""
    fleet = [
        _vllm(f"{DEMO_PROJECT}-llama-{n}", LLAMA, load, _compose("llama", n))
        for n, load in enumerate(LLAMA_LOADS, start=1)
    ]
    fleet += [
        DemoContainer(
            name=f"{DEMO_PROJECT}-mistral-{n}",
            command=("text-generation-launcher", "--model-id", MISTRAL, "--port", "80"),
            labels={
                "aitop.model": MISTRAL,
                "aitop.metrics-path": METRICS_PATH,
                **_compose("mistral", n),
            },
            env={"MODEL": MISTRAL, **load.env()},
            ports=(80,),
        )
        for n, load in enumerate(MISTRAL_LOADS, start=1)
    ]
    fleet.append(
        DemoContainer(
            name=f"{DEMO_PROJECT}-ollama",
            command=("ollama", "serve"),
            labels={"aitop.model": "llama3.1:8b"},
            # As the official image sets it: Ollama alone listens on 127.0.0.1.
            env={"OLLAMA_HOST": "0.0.0.0:11434", "MODEL": "llama3.1:8b"},
            ports=(11434,),
        )
    )
    fleet.append(DemoContainer(name=f"{DEMO_PROJECT}-redis", command=("sleep", "2147483647")))
    fleet.append(
        DemoContainer(
            name=f"{DEMO_PROJECT}-burner",
            command=("sh", "-c", "while :; do :; done"),
            labels={"aitop.model": "cpu-burner (busy loop)"},
        )
    )
    # A vLLM whose engine died: /health answers 503 and Docker's own check fails.
    fleet.append(
        _vllm(
            f"{DEMO_PROJECT}-unhealthy",
            QWEN,
            Load(0, 0, 0, 0, 0, kv_percent=0),
            {},
            env={"DEMO_HEALTH": "503"},
            healthcheck={
                "test": ["CMD", "sh", "-c", "exit 1"],
                "interval": 2_000_000_000,
                "timeout": 1_000_000_000,
                "retries": 1,
            },
        )
    )
    return fleet


# --- the image ----------------------------------------------------------------------------------


def host_busybox() -> Path | None:
    """The host's busybox binary, if any (it must be static to run FROM scratch)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def _busybox_bytes() -> bytes:
    busybox = host_busybox()
    if busybox is None:
        raise EngineError(
            "building a local image needs a static busybox on this machine "
            "(e.g. sudo apt-get install busybox-static)"
        )
    return busybox.read_bytes()


def build_busybox_image(engine: Engine, tag: str) -> None:
    """Build `tag` FROM scratch with the host's static busybox: no registry needed."""
    dockerfile = (
        b"FROM scratch\n"
        b"COPY busybox /bin/busybox\n"
        b'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        b'CMD ["sh"]\n'
    )
    engine.build_image(
        tag, {"Dockerfile": (dockerfile, 0o644), "busybox": (_busybox_bytes(), 0o755)}
    )


def ensure_image(engine: Engine) -> str:
    """Build the demo image (busybox and the stand-in servers) unless the engine has it."""
    tag = demo_image()
    if not engine.has_image(tag):
        files = {"Dockerfile": (DOCKERFILE, 0o644), "busybox": (_busybox_bytes(), 0o755)}
        engine.build_image(tag, {**files, **image_files()})
    return tag


def demo_ids(engine: Engine) -> list[str]:
    """The ids of the demo containers on this engine (running or not)."""
    return engine.ids_with_label(DEMO_LABEL)


def demo_up(engine: Engine, say: Callable[[str], None] = print) -> list[str]:
    """Start the demo fleet (replacing an earlier one); returns the new container ids."""
    demo_down(engine, say=lambda _msg: None)
    image = ensure_image(engine)
    ids: list[str] = []
    try:
        for spec in demo_fleet():
            ids.append(
                engine.run(
                    image,
                    list(spec.command),
                    name=spec.name,
                    labels={DEMO_LABEL: "1", **spec.labels},
                    environment=spec.env,
                    healthcheck=spec.healthcheck,
                    ports=list(spec.ports),
                    port_bindings={p: None for p in spec.ports},
                    mem_limit="256m",
                )
            )
            say(f"started {spec.name}")
    except EngineError:
        # Leave nothing half-done: a partial fleet is removed before the error is reported.
        for cid in ids:
            engine.remove(cid)
        raise
    return ids


def demo_down(engine: Engine, say: Callable[[str], None] = print) -> int:
    """Remove every container carrying the demo label; returns how many were removed."""
    ids = demo_ids(engine)
    for cid in ids:
        engine.remove(cid)
    say(f"removed {len(ids)} demo container(s)")
    return len(ids)


# --- the recorded fleet -------------------------------------------------------------------------

RECORDING = "demo_fleet.json"
"""The recorded demo fleet, package data of `tui.fleet` (written by tests/record_fleet.py)."""
RECORDED = " (recorded)"
"""Put after the recorded engine's version, which the status line keeps longest: it is no
engine aitop can reach. The URL is kept, so that the recorded GPUs stay the (recording's)
machine's own."""


def recorded_fleet() -> FleetSnapshot:
    """The demo fleet as recorded on a real engine, GPUs included, named as a recording."""
    text = resources.files("tui.fleet").joinpath(RECORDING).read_text(encoding="utf-8")
    snapshot = load(json.loads(text))
    engine = snapshot.engine
    return dataclasses.replace(
        snapshot, engine=dataclasses.replace(engine, version=engine.version + RECORDED)
    )


class RecordedFleet:
    """A `FleetSource` that publishes one recorded snapshot: looked at, never steered.

    Its `engine` is None, so every action that would change a container is refused, saying
    that this is a recorded fleet, and logs and shells are not offered.
    """

    def __init__(self, snapshot: FleetSnapshot) -> None:
        self._snapshot = snapshot
        self.on_snapshot: SnapshotCallback | None = None
        self._started = False

    @property
    def engine(self) -> Engine | None:
        """None: a recording has no engine."""
        return None

    def start(self) -> None:
        """Publish the recording (once)."""
        if self._started or self.on_snapshot is None:
            return
        self._started = True
        self.on_snapshot(self._snapshot)

    def stop(self) -> None:
        """Nothing runs: nothing to stop."""

    def snapshot(self) -> FleetSnapshot:
        """The recording."""
        return self._snapshot

    def release_details(self) -> None:
        """Nothing is held back in a recording."""

    def recent_events(self) -> tuple[FleetEvent, ...]:
        """A recording keeps no engine events."""
        return ()
