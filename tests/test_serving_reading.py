"""The canonical reading and its tracker, on every server's fixture pages: names per version,
renamed metrics, data-parallel sums, rates, windowed percentiles against hand-computed values,
restarts, staleness, loading and health states, and untrusted labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tui.fleet.serving.parse import parse
from tui.fleet.serving.reading import (
    HISTORY_POINTS,
    STALE_AFTER,
    Contact,
    MetricsAnswer,
    Observation,
    ServingTracker,
    quantile,
)
from tui.fleet.serving.servers import (
    BY_NAME,
    LLAMACPP,
    LMDEPLOY,
    OLLAMA,
    SGLANG,
    TGI,
    TRITON,
    VLLM,
    WANTED,
    Health,
    ServerKind,
    Verdict,
    kind_of_page,
)
from tui.fleet.serving.types import JSON_KEYS, LoadedModel, ServingReading, ServingState

FIXTURES = Path(__file__).parent / "fixtures" / "serving"
T0 = 10_000.0
WALL0 = 1_767_226_200.0
INTERVAL = 15.0  # the .t2 pages are 15 s after the plain ones

Labels = tuple[tuple[str, str], ...]


def text(name: str) -> str:
    return (FIXTURES / f"{name}.metrics").read_text()


def library(name: str) -> dict[tuple[str, Labels], float]:
    """Every sample of a fixture page as prometheus_client reads it: the independent reference."""
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text(name)):
        for sample in family.samples:
            out[(sample.name.replace(":", "_"), tuple(sorted(sample.labels.items())))] = (
                sample.value
            )
    return out


def total(values: dict[tuple[str, Labels], float], name: str, **where: str) -> float:
    """Sum of a sample name's values over the series matching `where`."""
    found = [
        v
        for (n, labels), v in values.items()
        if n == name and all(dict(labels).get(k) == w for k, w in where.items())
    ]
    assert found, f"{name} {where} not on the page"
    return sum(found)


def observe(
    kind: ServerKind | None,
    page_text: str | None,
    at: float,
    *,
    health: Health | None = None,
    contact: Contact = Contact.OK,
    metrics: MetricsAnswer | None = None,
    why: str = "",
    **more: object,
) -> Observation:
    page = parse(page_text, WANTED) if page_text is not None else None
    if metrics is None:
        metrics = MetricsAnswer.PAGE if page is not None else MetricsAnswer.NONE
    return Observation(
        at,
        WALL0 + (at - T0),
        kind,
        "http://192.0.2.1:8000/metrics",
        contact,
        why=why,
        health=health if health is not None or contact is not Contact.OK else Health(Verdict.READY),
        metrics=metrics,
        page=page,
        **more,  # type: ignore[arg-type]
    )


def two_scrapes(kind: ServerKind, name: str) -> ServingReading:
    tracker = ServingTracker()
    tracker.update(observe(kind, text(name), T0))
    return tracker.update(observe(kind, text(f"{name}.t2"), T0 + INTERVAL))


def rate(name: str, sample: str, **where: str) -> float:
    before, after = library(name), library(f"{name}.t2")
    return (total(after, sample, **where) - total(before, sample, **where)) / INTERVAL


def approx(value: float | None) -> object:
    assert value is not None
    return pytest.approx(value, rel=1e-9)


# --- quantiles --------------------------------------------------------------------------------


def test_quantile_interpolates_within_the_bucket():
    bounds = (0.1, 0.5, 1.0, math.inf)
    counts = (2.0, 8.0, 10.0, 10.0)
    # p50: rank 5 falls in (0.1, 0.5], which holds observations 3..8: 0.1 + 0.4 * 3/6.
    assert quantile(0.5, bounds, counts) == pytest.approx(0.3)
    # p95: rank 9.5 falls in (0.5, 1.0], observations 9..10: 0.5 + 0.5 * 1.5/2.
    assert quantile(0.95, bounds, counts) == pytest.approx(0.875)
    # The first bucket starts at zero: rank 1 of 2 in (0, 0.1].
    assert quantile(0.1, bounds, counts) == pytest.approx(0.05)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    assert quantile(0.95, (0.1, math.inf), (1.0, 10.0)) == 0.1
    assert quantile(0.5, (math.inf,), (10.0,)) is None


def test_quantile_of_nothing_is_none():
    assert quantile(0.5, (0.1, math.inf), (0.0, 0.0)) is None
    assert quantile(0.5, (), ()) is None


def histogram_page(
    counts: tuple[float, ...], bounds: tuple[str, ...] = ("0.1", "0.5", "1.0", "+Inf")
) -> str:
    lines = ["# TYPE vllm:time_to_first_token_seconds histogram"]
    for bound, count in zip(bounds, counts, strict=True):
        lines.append(
            f'vllm:time_to_first_token_seconds_bucket{{le="{bound}",model_name="m"}} {count}'
        )
    lines.append(f'vllm:time_to_first_token_seconds_count{{model_name="m"}} {counts[-1]}')
    lines.append('vllm:time_to_first_token_seconds_sum{model_name="m"} 1.0')
    return "\n".join(lines) + "\n"


def test_percentiles_come_from_bucket_deltas_over_the_window():
    tracker = ServingTracker(percentile_window_s=60.0)
    # 100 early observations all under 0.1 s; then 10 in the next 10 s as in the hand example.
    tracker.update(observe(VLLM, histogram_page((100, 100, 100, 100)), T0))
    reading = tracker.update(observe(VLLM, histogram_page((102, 108, 110, 110)), T0 + 10))
    assert reading.ttft_p50_s == pytest.approx(0.3)
    assert reading.ttft_p95_s == pytest.approx(0.875)


def test_percentiles_forget_what_left_the_window():
    tracker = ServingTracker(percentile_window_s=60.0)
    tracker.update(observe(VLLM, histogram_page((0, 0, 0, 0)), T0))
    tracker.update(observe(VLLM, histogram_page((0, 0, 10, 10)), T0 + 5))
    # Slow requests at first (0.5-1 s), then for more than a window only fast ones.
    reading = tracker.update(observe(VLLM, histogram_page((0, 0, 10, 10)), T0 + 30))
    assert reading.ttft_p50_s is not None and reading.ttft_p50_s > 0.5
    tracker.update(observe(VLLM, histogram_page((10, 10, 20, 20)), T0 + 70))
    reading = tracker.update(observe(VLLM, histogram_page((10, 10, 20, 20)), T0 + 100))
    # The window now starts at T0 + 30: only the 10 fast ones are in it.
    assert reading.ttft_p95_s == pytest.approx(0.095)
    reading = tracker.update(observe(VLLM, histogram_page((10, 10, 20, 20)), T0 + 200))
    assert reading.ttft_p50_s is None, "no observation in the last minute: nothing to say"


def test_bucket_layout_change_starts_the_window_again():
    tracker = ServingTracker()
    tracker.update(observe(VLLM, histogram_page((0, 0, 0, 0)), T0))
    other = histogram_page((5, 5, 5), ("0.2", "2", "+Inf"))
    assert tracker.update(observe(VLLM, other, T0 + 1)).ttft_p50_s is None


# --- every server, two snapshots 15 s apart ---------------------------------------------------


def test_vllm_v1():
    name = "vllm_v1"
    after = library(f"{name}.t2")
    reading = two_scrapes(VLLM, name)
    assert reading.kind == "vllm" and str(reading.state) == "ready"
    assert reading.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert reading.requests_running == total(after, "vllm_num_requests_running")
    assert reading.requests_waiting == total(after, "vllm_num_requests_waiting")
    assert reading.kv_cache_percent == approx(total(after, "vllm_kv_cache_usage_perc") * 100)
    assert reading.prompt_tokens_per_s == approx(rate(name, "vllm_prompt_tokens_total"))
    assert reading.generation_tokens_per_s == approx(rate(name, "vllm_generation_tokens_total"))
    assert reading.errors_per_s == approx(
        rate(name, "vllm_request_success_total", finished_reason="error")
    )
    assert reading.preemptions_per_s == approx(rate(name, "vllm_num_preemptions_total"))
    for value in (reading.ttft_p50_s, reading.ttft_p95_s, reading.itl_p50_s, reading.e2e_p95_s):
        assert value is not None and value > 0
    assert reading.loaded_models is None


def hand_quantile(name: str, family: str, q: float) -> float:
    """The q-quantile of a histogram's bucket deltas between a page and its .t2, by hand."""
    before, after = library(name), library(f"{name}.t2")
    bounds = sorted({float(dict(labels)["le"]) for (n, labels) in after if n == f"{family}_bucket"})
    deltas = []
    for bound in bounds:

        def at(values: dict[tuple[str, Labels], float], b: float = bound) -> float:
            return sum(
                v
                for (n, labels), v in values.items()
                if n == f"{family}_bucket" and float(dict(labels)["le"]) == b
            )

        deltas.append(at(after) - at(before))
    rank = q * deltas[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, deltas, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("rank past the last bucket")


@pytest.mark.parametrize(
    ("kind", "name", "ttft", "itl", "e2e"),
    [
        (
            VLLM,
            "vllm_v1",
            "vllm_time_to_first_token_seconds",
            "vllm_inter_token_latency_seconds",
            "vllm_e2e_request_latency_seconds",
        ),
        (
            VLLM,
            "vllm_v1_dp2",
            "vllm_time_to_first_token_seconds",
            "vllm_inter_token_latency_seconds",
            "vllm_e2e_request_latency_seconds",
        ),
        (
            VLLM,
            "vllm_v1_0_9",
            "vllm_time_to_first_token_seconds",
            "vllm_time_per_output_token_seconds",
            "vllm_e2e_request_latency_seconds",
        ),
        (
            VLLM,
            "vllm_v0",
            "vllm_time_to_first_token_seconds",
            "vllm_time_per_output_token_seconds",
            "vllm_e2e_request_latency_seconds",
        ),
        (
            SGLANG,
            "sglang",
            "sglang_time_to_first_token_seconds",
            "sglang_inter_token_latency_seconds",
            "sglang_e2e_request_latency_seconds",
        ),
        (
            SGLANG,
            "sglang_old",
            "sglang_time_to_first_token_seconds",
            "sglang_time_per_output_token_seconds",
            "sglang_e2e_request_latency_seconds",
        ),
        (
            LMDEPLOY,
            "lmdeploy",
            "lmdeploy_time_to_first_token_seconds",
            "lmdeploy_iter_token_latency",
            "lmdeploy_e2e_request_latency_seconds",
        ),
        (TGI, "tgi", None, "tgi_request_mean_time_per_token_duration", "tgi_request_duration"),
    ],
)
def test_percentiles_match_the_hand_computed_ones(kind, name, ttft, itl, e2e):
    reading = two_scrapes(kind, name)
    if ttft is None:
        assert reading.ttft_p50_s is None and reading.ttft_p95_s is None
    else:
        assert reading.ttft_p50_s == approx(hand_quantile(name, ttft, 0.5))
        assert reading.ttft_p95_s == approx(hand_quantile(name, ttft, 0.95))
    assert reading.itl_p50_s == approx(hand_quantile(name, itl, 0.5))
    assert reading.e2e_p95_s == approx(hand_quantile(name, e2e, 0.95))


def test_vllm_data_parallel_engines_are_summed_and_kv_averaged():
    name = "vllm_v1_dp2"
    after = library(f"{name}.t2")
    reading = two_scrapes(VLLM, name)
    engines = {dict(labels)["engine"] for (n, labels) in after if n == "vllm_num_requests_running"}
    assert engines == {"0", "1"}
    assert reading.requests_running == total(after, "vllm_num_requests_running")
    kv = [total(after, "vllm_kv_cache_usage_perc", engine=e) for e in ("0", "1")]
    assert reading.kv_cache_percent == approx(sum(kv) / 2 * 100)
    assert reading.generation_tokens_per_s == approx(rate(name, "vllm_generation_tokens_total"))
    assert reading.model == "Qwen/Qwen2.5-32B-Instruct"


def test_the_large_dp8_page():
    page = text("vllm_large")
    reading = ServingTracker().update(observe(VLLM, page, T0))
    values = library("vllm_large")
    assert reading.requests_running == total(values, "vllm_num_requests_running")
    kv = [v for (n, _), v in values.items() if n == "vllm_kv_cache_usage_perc"]
    assert len(kv) == 8
    assert reading.kv_cache_percent == approx(sum(kv) / 8 * 100)


def test_vllm_0_9_reads_the_newer_of_two_kv_names_and_the_old_itl():
    name = "vllm_v1_0_9"
    after = library(f"{name}.t2")
    assert ("vllm_gpu_cache_usage_perc" in {n for n, _ in after}) and (
        "vllm_kv_cache_usage_perc" in {n for n, _ in after}
    )
    reading = two_scrapes(VLLM, name)
    assert reading.kv_cache_percent == approx(total(after, "vllm_kv_cache_usage_perc") * 100)
    assert reading.itl_p50_s == approx(
        hand_quantile(name, "vllm_time_per_output_token_seconds", 0.5)
    )
    # 0.9/0.10 had no "error" finish reason: errors are not said, not zero.
    assert reading.errors_per_s is None


def test_vllm_v0_reads_gpu_cache_usage():
    name = "vllm_v0"
    after = library(f"{name}.t2")
    reading = two_scrapes(VLLM, name)
    assert reading.kv_cache_percent == approx(total(after, "vllm_gpu_cache_usage_perc") * 100)
    assert reading.model == "mistralai/Mistral-7B-Instruct-v0.3"


def test_the_underscore_form_of_the_names_reads_the_same():
    underscore = text("vllm_v1").replace("vllm:", "vllm_")
    colon = ServingTracker().update(observe(VLLM, text("vllm_v1"), T0))
    renamed = ServingTracker().update(observe(VLLM, underscore, T0))
    assert renamed == colon
    assert kind_of_page(set(parse(underscore, WANTED).families)) is VLLM


def test_sglang_sums_its_queues_and_reads_rank_zero():
    name = "sglang"
    after = library(f"{name}.t2")
    reading = two_scrapes(SGLANG, name)
    assert reading.requests_running == total(after, "sglang_num_running_reqs")
    assert reading.requests_waiting == total(after, "sglang_num_queue_reqs") + total(
        after, "sglang_num_grammar_queue_reqs"
    )
    assert reading.kv_cache_percent == approx(total(after, "sglang_token_usage") * 100)
    assert reading.errors_per_s == approx(rate(name, "sglang_num_aborted_requests_total"))
    assert reading.preemptions_per_s == approx(rate(name, "sglang_num_retracted_requests_total"))
    # With --enable-metrics-for-all-schedulers every TP rank reports: only rank 0 counts.
    all_ranks = text(f"{name}.t2").replace('tp_rank="0"', 'tp_rank="1"') + text(f"{name}.t2")
    doubled = ServingTracker().update(observe(SGLANG, all_ranks, T0))
    assert doubled.requests_running == reading.requests_running


def test_sglang_old_has_no_errors_or_preemptions():
    reading = two_scrapes(SGLANG, "sglang_old")
    assert reading.errors_per_s is None and reading.preemptions_per_s is None
    assert reading.itl_p50_s is not None


def test_tgi():
    name = "tgi"
    after = library(f"{name}.t2")
    reading = two_scrapes(TGI, name)
    assert reading.requests_running == total(after, "tgi_batch_current_size")
    assert reading.requests_waiting == total(after, "tgi_queue_size")
    assert reading.kv_cache_percent is None and reading.preemptions_per_s is None
    assert reading.prompt_tokens_per_s == approx(rate(name, "tgi_request_input_length_sum"))
    assert reading.generation_tokens_per_s == approx(rate(name, "tgi_request_generated_tokens_sum"))
    # Every failure reason counts (prometheus_client calls the samples `_total`).
    assert reading.errors_per_s == approx(rate(name, "tgi_request_failure_total"))
    assert reading.model is None, "TGI names its model on /info, not on the page"


def test_tgi_names_its_model_from_info():
    tracker = ServingTracker()
    reading = tracker.update(
        observe(TGI, text("tgi"), T0, model="meta-llama/Llama-3.1-8B-Instruct")
    )
    assert reading.model == "meta-llama/Llama-3.1-8B-Instruct"
    # The info route is not asked every time: the name stays.
    assert tracker.update(observe(TGI, text("tgi.t2"), T0 + 15)).model == reading.model


def test_llamacpp():
    name = "llamacpp"
    after = library(f"{name}.t2")
    reading = two_scrapes(LLAMACPP, name)
    assert reading.requests_running == total(after, "llamacpp_requests_processing")
    assert reading.requests_waiting == total(after, "llamacpp_requests_deferred")
    assert reading.kv_cache_percent is None
    assert reading.generation_tokens_per_s == approx(rate(name, "llamacpp_tokens_predicted_total"))
    assert reading.ttft_p50_s is None and reading.e2e_p95_s is None


def test_older_llamacpp_reports_its_kv_cache():
    values = library("llamacpp_old")
    reading = ServingTracker().update(observe(LLAMACPP, text("llamacpp_old"), T0))
    assert reading.kv_cache_percent == approx(total(values, "llamacpp_kv_cache_usage_ratio") * 100)


def test_triton_with_tensorrt_llm():
    name = "triton"
    after = library(f"{name}.t2")
    reading = two_scrapes(TRITON, name)
    assert reading.model == "ensemble"
    assert reading.requests_running == total(
        after, "nv_trt_llm_request_metrics", request_type="active"
    )
    assert reading.requests_waiting == total(
        after, "nv_trt_llm_request_metrics", request_type="waiting"
    )
    assert reading.kv_cache_percent == approx(
        total(after, "nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="fraction") * 100
    )
    assert reading.generation_tokens_per_s == approx(rate(name, "nv_llm_output_token_len_sum"))
    # Failures of the ensemble only: its steps fail with it and would count twice.
    assert reading.errors_per_s == approx(
        rate(name, "nv_inference_request_failure_total", model="ensemble")
    )
    # Default metrics config: no latency histograms, so no percentiles.
    assert reading.ttft_p50_s is None and reading.itl_p50_s is None and reading.e2e_p95_s is None


def test_triton_without_tensorrt_llm_reads_the_pending_count():
    page = "\n".join(
        line for line in text("triton").splitlines() if not line.startswith("nv_trt_llm_request")
    )
    values = library("triton")
    reading = ServingTracker().update(observe(TRITON, page + "\n", T0))
    assert reading.requests_running is None
    assert reading.requests_waiting == total(values, "nv_inference_pending_request_count")


def test_lmdeploy_counts_failures_but_not_cancels():
    name = "lmdeploy"
    before, after = library(name), library(f"{name}.t2")
    reading = two_scrapes(LMDEPLOY, name)
    failed = 0.0
    for (n, labels), v in after.items():
        reason = dict(labels).get("finished_reason", "")
        if n == "lmdeploy_request_success_total" and reason not in (
            "ResponseType.SUCCESS",
            "ResponseType.FINISH",
            "ResponseType.CANCEL",
        ):
            failed += v - before[(n, labels)]
    assert reading.errors_per_s == approx(failed / INTERVAL)
    assert reading.kv_cache_percent == approx(total(after, "lmdeploy_gpu_cache_usage_perc") * 100)


def test_ollama_lists_its_loaded_models():
    models = (
        LoadedModel("llama3.1:8b", 6654289920, 6654289920, 8192),
        LoadedModel("qwen2.5:32b", 23735687168, 17179869184, 4096),
    )
    reading = ServingTracker().update(observe(OLLAMA, None, T0, loaded_models=models))
    assert reading.loaded_models == models
    assert reading.model == "llama3.1:8b, qwen2.5:32b"
    assert reading.requests_running is None and reading.generation_tokens_per_s is None
    empty = ServingTracker().update(observe(OLLAMA, None, T0, loaded_models=()))
    assert empty.loaded_models == () and empty.model is None


@pytest.mark.parametrize(
    "name",
    [
        "vllm_v1",
        "sglang",
        "tgi",
        "llamacpp",
        "triton",
        "lmdeploy",
        "vllm_v0",
        "sglang_old",
        "llamacpp_old",
    ],
)
def test_every_page_says_which_server_it_is(name):
    expected = BY_NAME[name.split("_")[0]]
    assert kind_of_page(set(parse(text(name), WANTED).families)) is expected


def test_an_unknown_page_is_ready_with_nothing_to_say():
    reading = ServingTracker().update(observe(None, "some_exporter_metric 1\n", T0))
    assert reading.kind == "unknown"
    assert reading.state == ServingState("ready", "no model-server metrics on the page")
    assert reading.requests_running is None


# --- restarts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (VLLM, "vllm_v1"),
        (VLLM, "vllm_v0"),
        (SGLANG, "sglang"),
        (TGI, "tgi"),
        (LLAMACPP, "llamacpp"),
        (TRITON, "triton"),
        (LMDEPLOY, "lmdeploy"),
    ],
)
def test_a_counter_going_down_is_a_restart_never_a_negative_rate(kind, name):
    tracker = ServingTracker()
    tracker.update(observe(kind, text(name), T0))
    tracker.update(observe(kind, text(f"{name}.t2"), T0 + 15))
    reading = tracker.update(observe(kind, text(f"{name}.restart"), T0 + 80))
    assert tracker.restarts == 1
    assert reading.state == ServingState("ready", "restarted: counters reset")
    assert reading.since == WALL0 + 80
    rates = (
        reading.prompt_tokens_per_s,
        reading.generation_tokens_per_s,
        reading.errors_per_s,
        reading.preemptions_per_s,
    )
    assert all(r is None for r in rates), "no rate across a restart"
    assert reading.ttft_p50_s is None and reading.e2e_p95_s is None
    # The same page again a second later: rates start again from the new counters.
    again = tracker.update(observe(kind, text(f"{name}.restart"), T0 + 81))
    assert all(
        r is None or r == 0.0 for r in (again.prompt_tokens_per_s, again.generation_tokens_per_s)
    )
    assert again.generation_tokens_per_s == 0.0
    assert tracker.restarts == 1
    later = tracker.update(observe(kind, text(f"{name}.restart"), T0 + 200))
    assert later.state == ServingState("ready")


def test_a_moved_process_start_time_is_a_restart_even_when_counters_grew():
    page = text("vllm_v1.t2")
    line = next(x for x in page.splitlines() if x.startswith("process_start_time_seconds "))
    started = float(line.split()[1])
    moved = page.replace(line, f"process_start_time_seconds {started + 1000!r}")
    tracker = ServingTracker()
    tracker.update(observe(VLLM, page, T0))
    tracker.update(observe(VLLM, moved, T0 + 1))
    assert tracker.restarts == 1


# --- health, loading, staleness ---------------------------------------------------------------


def test_loading_since_the_container_started_then_ready():
    tracker = ServingTracker(started_at=WALL0 - 300)
    loading = tracker.update(observe(VLLM, None, T0, contact=Contact.REFUSED, why="refused"))
    assert loading.state == ServingState("loading", "not listening yet")
    assert loading.since == WALL0 - 300
    ready = tracker.update(observe(VLLM, text("vllm_v1"), T0 + 5))
    assert ready.state.name == "ready" and ready.since == WALL0 + 5


def test_refused_after_ready_is_a_miss_then_stale():
    tracker = ServingTracker()
    good = tracker.update(observe(VLLM, text("vllm_v1"), T0))
    for i in range(1, STALE_AFTER):
        kept = tracker.update(
            observe(VLLM, None, T0 + i, contact=Contact.REFUSED, why="nothing listens on port 8000")
        )
        assert kept == good and not kept.stale
    stale = tracker.update(
        observe(
            VLLM,
            None,
            T0 + STALE_AFTER,
            contact=Contact.REFUSED,
            why="nothing listens on port 8000",
        )
    )
    assert stale.stale
    assert stale.state == ServingState("unreachable", "nothing listens on port 8000")
    assert stale.requests_running == good.requests_running
    assert stale.since == WALL0 + STALE_AFTER
    back = tracker.update(observe(VLLM, text("vllm_v1.t2"), T0 + 10))
    assert not back.stale and back.state.name == "ready"


def test_a_timeout_before_any_answer_is_unreachable_at_once():
    reading = ServingTracker().update(
        observe(SGLANG, None, T0, contact=Contact.FAILED, why="no complete answer within 2 s")
    )
    assert reading.state == ServingState("unreachable", "no complete answer within 2 s")
    assert not reading.stale


def test_no_route_says_why():
    why = "listens on 127.0.0.1:30000 inside the container: ..."
    reading = ServingTracker().update(observe(SGLANG, None, T0, contact=Contact.NO_ROUTE, why=why))
    assert reading.state == ServingState("unreachable", why)


def test_not_ready_is_loading_before_the_first_ready_and_unhealthy_after():
    tracker = ServingTracker()
    warming = tracker.update(
        observe(SGLANG, None, T0, health=Health(Verdict.NOT_READY, "/health 503"))
    )
    assert warming.state == ServingState("loading", "/health 503")
    tracker.update(observe(SGLANG, text("sglang"), T0 + 1))
    stuck = tracker.update(
        observe(SGLANG, text("sglang.t2"), T0 + 2, health=Health(Verdict.NOT_READY, "/health 503"))
    )
    assert stuck.state == ServingState("unhealthy", "/health 503")
    assert stuck.requests_running is not None, "an unhealthy server's figures still show"


def test_metrics_off_says_the_flag():
    reading = ServingTracker().update(
        observe(
            LLAMACPP,
            None,
            T0,
            metrics=MetricsAnswer.OFF,
            metrics_why="--metrics (or LLAMA_ARG_ENDPOINT_METRICS=1)",
            model="qwen",
        )
    )
    assert str(reading.state) == "metrics-off: --metrics (or LLAMA_ARG_ENDPOINT_METRICS=1)"
    assert reading.model == "qwen" and reading.requests_running is None


def test_a_failed_metrics_page_is_a_miss_while_healthy():
    tracker = ServingTracker()
    good = tracker.update(observe(VLLM, text("vllm_v1"), T0))
    kept = tracker.update(
        observe(
            VLLM,
            None,
            T0 + 1,
            metrics=MetricsAnswer.FAILED,
            metrics_why="metrics page: answer over 4 MiB",
        )
    )
    assert kept == good
    # The health route keeps answering while the page keeps failing: still stale after a few.
    for i in range(2, STALE_AFTER + 1):
        last = tracker.update(
            observe(VLLM, None, T0 + i, metrics=MetricsAnswer.FAILED, metrics_why="slow page")
        )
    assert last.stale and last.state == ServingState("unreachable", "slow page")
    first = ServingTracker().update(
        observe(
            VLLM,
            None,
            T0,
            metrics=MetricsAnswer.FAILED,
            metrics_why="metrics page: answer over 4 MiB",
        )
    )
    assert first.state == ServingState("unreachable", "metrics page: answer over 4 MiB")


# --- untrusted values -------------------------------------------------------------------------


def test_model_names_from_pages_are_made_safe():
    hostile = "evil\x1b]0;pwned\x07\x1b[2J\u202emodel\x00"
    page = f'vllm:num_requests_running{{model_name="{hostile}"}} 1\n'
    reading = ServingTracker().update(observe(VLLM, page, T0))
    assert reading.model is not None
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in reading.model)
    assert "evil" in reading.model and "model" in reading.model


def test_model_names_lose_their_credentials():
    page = 'vllm:num_requests_running{model_name="https://user:secret@hf.example/m"} 1\n'
    reading = ServingTracker().update(observe(VLLM, page, T0))
    assert reading.model is not None and "secret" not in reading.model


def test_impossible_values_say_nothing():
    page = (
        'vllm:num_requests_running{model_name="m"} -3\n'
        'vllm:num_requests_waiting{model_name="m"} NaN\n'
        'vllm:kv_cache_usage_perc{model_name="m"} 3.5\n'
    )
    reading = ServingTracker().update(observe(VLLM, page, T0))
    assert (reading.requests_running, reading.requests_waiting, reading.kv_cache_percent) == (
        None,
        None,
        None,
    )


# --- JSON and history -------------------------------------------------------------------------


def test_to_json_has_exactly_the_issue_keys_and_is_strict_json():
    reading = two_scrapes(VLLM, "vllm_v1")
    data = reading.to_json()
    assert tuple(data) == JSON_KEYS
    assert len(JSON_KEYS) == 16
    json.dumps(data, allow_nan=False)
    assert data["state"] == "ready" and data["kind"] == "vllm"
    models = (
        LoadedModel(
            "llama3.1:8b", 1, 1, 8192, "2026-01-01T00:14:31.519273644Z", "llama", "8.0B", "Q4_K_M"
        ),
    )
    ollama = ServingTracker().update(observe(OLLAMA, None, T0, loaded_models=models)).to_json()
    assert ollama["loaded_models"] == [
        {
            "name": "llama3.1:8b",
            "size_bytes": 1,
            "vram_bytes": 1,
            "context_length": 8192,
            "expires_at": "2026-01-01T00:14:31.519273644Z",
            "family": "llama",
            "parameter_size": "8.0B",
            "quantization": "Q4_K_M",
        }
    ]
    json.dumps(ollama, allow_nan=False)


def test_the_reading_is_immutable():
    reading = two_scrapes(VLLM, "vllm_v1")
    with pytest.raises(AttributeError):
        reading.requests_running = 3  # type: ignore[misc]


def test_history_is_bounded_and_keeps_the_sparkline_figures():
    tracker = ServingTracker(history_points=10)
    pages = [text("vllm_v1"), text("vllm_v1.t2")]
    for i in range(25):
        tracker.update(observe(VLLM, pages[min(i, 1)], T0 + i))
    history = tracker.history()
    assert len(history) == 10
    assert [p.at for p in history] == [WALL0 + i for i in range(15, 25)]
    last = tracker.reading
    assert last is not None
    assert history[-1].requests_waiting == last.requests_waiting
    assert history[-1].kv_cache_percent == last.kv_cache_percent
    assert HISTORY_POINTS >= 180, "a few minutes at one scrape a second"


def test_scrapes_without_histograms_keep_the_last_percentiles():
    tracker = ServingTracker()
    tracker.update(observe(VLLM, histogram_page((100, 100, 100, 100)), T0))
    first = tracker.update(observe(VLLM, histogram_page((102, 108, 110, 110)), T0 + 5))
    light = Observation(
        T0 + 6,
        WALL0 + 6,
        VLLM,
        None,
        Contact.OK,
        health=Health(Verdict.READY),
        metrics=MetricsAnswer.PAGE,
        page=parse('vllm:num_requests_running{model_name="m"} 4\n', WANTED),
        histograms=False,
    )
    reading = tracker.update(light)
    assert reading.requests_running == 4
    assert (reading.ttft_p50_s, reading.ttft_p95_s) == (first.ttft_p50_s, first.ttft_p95_s)
    # The next page with histograms takes its deltas from the window as before.
    later = tracker.update(observe(VLLM, histogram_page((102, 108, 120, 120)), T0 + 10))
    assert later.ttft_p95_s is not None and later.ttft_p95_s > 0.5


def test_histogram_counts_going_down_start_the_window_again():
    # A page with histograms and no counters: only the buckets can show the restart.
    tracker = ServingTracker()
    tracker.update(observe(VLLM, histogram_page((0, 0, 100, 100)), T0))
    tracker.update(observe(VLLM, histogram_page((0, 0, 200, 200)), T0 + 5))
    restarted = tracker.update(observe(VLLM, histogram_page((0, 0, 0, 0)), T0 + 10))
    assert restarted.ttft_p50_s is None
    after = tracker.update(observe(VLLM, histogram_page((10, 10, 10, 10)), T0 + 15))
    # Only the ten fast requests since the restart: not the slow ones from before it.
    assert after.ttft_p95_s == pytest.approx(0.095)


def test_triton_latency_options_in_their_units():
    # --metrics-config summary_latencies=true: Triton's own quantiles, in microseconds;
    # histogram_latencies=true: first-response buckets in milliseconds.
    extra = (
        "# TYPE nv_inference_request_summary_us summary\n"
        'nv_inference_request_summary_us{model="ensemble",quantile="0.5",version="1"} 2100000\n'
        'nv_inference_request_summary_us{model="ensemble",quantile="0.95",version="1"} 8400000\n'
        'nv_inference_request_summary_us{model="tensorrt_llm",quantile="0.95",version="1"} 9e6\n'
        'nv_inference_request_summary_us_count{model="ensemble",version="1"} 700\n'
        'nv_inference_request_summary_us_sum{model="ensemble",version="1"} 2.4e9\n'
        "# TYPE nv_inference_first_response_histogram_ms histogram\n"
    )

    def first_response(counts: tuple[int, ...]) -> str:
        return "".join(
            f'nv_inference_first_response_histogram_ms_bucket{{le="{le}",model="ensemble",'
            f'version="1"}} {c}\n'
            for le, c in zip(("100", "500", "2000", "5000", "+Inf"), counts, strict=True)
        )

    tracker = ServingTracker()
    tracker.update(observe(TRITON, text("triton") + extra + first_response((0, 0, 0, 0, 0)), T0))
    reading = tracker.update(
        observe(TRITON, text("triton.t2") + extra + first_response((0, 10, 20, 20, 20)), T0 + 15)
    )
    # The ensemble's p95 (what clients wait for), not its step's: 8.4 s.
    assert reading.e2e_p95_s == pytest.approx(8.4)
    # p50: rank 10 of 20 falls at the top of (100, 500] ms.
    assert reading.ttft_p50_s == pytest.approx(0.5)
    idle = extra.replace("8400000", "NaN")
    quiet = ServingTracker().update(observe(TRITON, text("triton") + idle, T0))
    assert quiet.e2e_p95_s is None, "a quantile of nothing (NaN while idle) says nothing"


def test_settled_once_the_first_rates_are_known():
    tracker = ServingTracker()
    seen = [tracker.settled]
    for i, page in enumerate(("vllm_v1", "vllm_v1.t2", "vllm_v1.restart", "vllm_v1.restart")):
        tracker.update(observe(VLLM, text(page), T0 + i))
        seen.append(tracker.settled)
    # Nothing yet; one page (no rate); two; restarted (rates start again); two again.
    assert seen == [False, False, True, False, True]
    loading = ServingTracker()
    loading.update(observe(VLLM, None, T0, contact=Contact.REFUSED))
    assert loading.settled, "a loading server has said all it will"
    ollama = ServingTracker()
    ollama.update(observe(OLLAMA, None, T0, loaded_models=()))
    assert ollama.settled
    unknown = ServingTracker()
    unknown.update(observe(None, "x 1\n", T0))
    assert unknown.settled
