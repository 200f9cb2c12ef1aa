"""What reading model servers costs aitop: parsing metrics pages, and scraping 50 servers.

Run it from the repository root:

    .venv/bin/python bench/serving_bench.py                 # both parts
    .venv/bin/python bench/serving_bench.py --parse-only    # no engine needed
    .venv/bin/python bench/serving_bench.py --seconds 60 --containers 50
    .venv/bin/python bench/serving_bench.py --cleanup       # remove what a killed run left

**Parse.** Every fixture page of tests/fixtures/serving, three ways, best and median of
`--rounds` runs each:

- *library, full*: `prometheus_client.parser.text_string_to_metric_families` over the whole
  page, every sample consumed (what "use prometheus_client" would cost);
- *library, filtered*: the page's lines filtered first to the families aitop reads (their
  HELP/TYPE lines and samples; the filter is timed too), then the library on what is left;
- *aitop, first*: `tui.fleet.serving.parse.parse(page, WANTED)`, the parser aitop uses, on a
  page it has not seen;
- *aitop, next*: the same with the server's `ParseCache` warm, as on every scrape after the
  first (a server repeats its series with new values: their labels are read once).

The aim (issue 11): a 240 KB vLLM page in under 10 ms (vllm_large.metrics is 265 KB, vLLM
with eight data-parallel engines).

**Scrape.** `--containers` stand-in servers on the local engine (busybox httpd serving the
fixture pages of vLLM, vLLM DP=2 and DP=8, SGLang, TGI, llama.cpp, LMDeploy, and Ollama's
/api/ps; see tests/fixtures/serving/rig.py), discovered from their inspect data and scraped by
one `ServingPool` at a 1 s interval, as the monitor will; the process's CPU time (all its
threads: the pool's workers, the namespace threads, the tracker) over `--seconds` of wall time,
in percent of one core. The aim: under 5 % at 50 containers. busybox httpd closes every
connection, so each request opens a new TCP connection: real servers (uvicorn, axum, the
llama.cpp server) keep connections alive, which costs less. The same scrape minus HTTP (parse
and tracker only, on the same pages) is printed beside it.

Containers are labelled `aitop.bench-serving=<run id>`, started and removed one at a time (the
engine is shared; see bench/README.md on bridge endpoints), and removed on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.fixtures.serving.rig import (  # noqa: E402
    build_serving_image,
    host_python,
    serve_command,
    server_command,
)
from tui.fleet.engine.client import Engine  # noqa: E402
from tui.fleet.engine.errors import EngineError  # noqa: E402
from tui.fleet.serving.parse import ParseCache, parse  # noqa: E402
from tui.fleet.serving.reading import Contact, MetricsAnswer, Observation, ServingTracker  # noqa: E402
from tui.fleet.serving.scrape import HISTOGRAM_EVERY, ServingPool  # noqa: E402
from tui.fleet.serving.servers import (  # noqa: E402
    BY_NAME,
    WANTED,
    WANTED_WITHOUT_HISTOGRAMS,
    Health,
    Shape,
    Verdict,
    normalise,
)

FIXTURES = ROOT / "tests" / "fixtures" / "serving"
LABEL = "aitop.bench-serving"

# --- parse ------------------------------------------------------------------------------------


def _wanted_name(name: str) -> bool:
    n = normalise(name)
    if WANTED.get(n) in (Shape.GAUGE, Shape.COUNTER):
        return True
    for part in ("_bucket", "_sum", "_count"):
        if n.endswith(part) and WANTED.get(n[: -len(part)]) in (
            Shape.HISTOGRAM,
            Shape.HISTOGRAM_SUM,
        ):
            return True
    return False


def filter_lines(text: str) -> str:
    """The page's lines of the families aitop reads (HELP/TYPE lines and samples)."""
    kept: list[str] = []
    for line in text.split("\n"):
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and normalise(parts[2]) in WANTED:
                kept.append(line)
            continue
        space = line.find(" ")
        brace = line.find("{", 0, space if space >= 0 else len(line))
        stop = brace if brace >= 0 else space
        if stop > 0 and _wanted_name(line[:stop]):
            kept.append(line)
    return "\n".join(kept) + "\n"


def library_full(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def library_filtered(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(filter_lines(text)))


def ours(text: str, cache: ParseCache | None = None) -> int:
    page = parse(text, WANTED, cache)
    return sum(
        len(f.samples) + sum(len(h.buckets) + 2 for h in f.histograms.values())
        for f in page.families.values()
    )


def ours_cached() -> Callable[[str], int]:
    cache = ParseCache()
    return lambda text: ours(text, cache)


@dataclass
class Timing:
    best_ms: float
    median_ms: float


def timed(fn: Callable[[str], int], text: str, rounds: int) -> Timing:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(text)
        runs.append((time.perf_counter() - start) * 1000)
    return Timing(min(runs), statistics.median(runs))


def parse_part(rounds: int) -> dict[str, dict[str, float]]:
    print(f"Parse: best / median of {rounds} runs, ms")
    header = (
        f"{'page':<26}{'KB':>7}{'lines':>6}  {'library full':>15}  {'library filtered':>16}"
        f"  {'aitop first':>13}  {'aitop next':>13}  {'full/next':>9}"
    )
    print(header)
    print("-" * len(header))
    results: dict[str, dict[str, float]] = {}
    for path in sorted(FIXTURES.glob("*.metrics")):
        text = path.read_text()
        full = timed(library_full, text, rounds)
        filtered = timed(library_filtered, text, rounds)
        first = timed(ours, text, rounds)
        warm = ours_cached()
        warm(text)
        mine = timed(warm, text, rounds)
        results[path.name] = {
            "bytes": len(text.encode()),
            "library_full_best_ms": full.best_ms,
            "library_full_median_ms": full.median_ms,
            "library_filtered_best_ms": filtered.best_ms,
            "library_filtered_median_ms": filtered.median_ms,
            "aitop_first_best_ms": first.best_ms,
            "aitop_first_median_ms": first.median_ms,
            "aitop_next_best_ms": mine.best_ms,
            "aitop_next_median_ms": mine.median_ms,
        }
        print(
            f"{path.name:<26}{len(text) / 1024:>7.1f}{text.count(chr(10)):>6}"
            f"  {full.best_ms:>6.2f} / {full.median_ms:>6.2f}"
            f"  {filtered.best_ms:>6.2f} / {filtered.median_ms:>7.2f}"
            f"  {first.best_ms:>5.2f} / {first.median_ms:>5.2f}"
            f"  {mine.best_ms:>5.2f} / {mine.median_ms:>5.2f}"
            f"  {full.best_ms / mine.best_ms:>8.1f}x"
        )
    large = results["vllm_large.metrics"]
    worst = max(large["aitop_first_best_ms"], large["aitop_next_best_ms"])
    verdict = "met" if worst < 10 else "NOT met"
    print(
        f"aim: vllm_large.metrics (265 KB) under 10 ms: {large['aitop_first_best_ms']:.2f} ms "
        f"first, {large['aitop_next_best_ms']:.2f} ms next ({verdict}); prometheus_client "
        f"{large['library_full_best_ms']:.2f} ms full, {large['library_filtered_best_ms']:.2f} "
        "ms filtered"
    )
    return results


# --- scrape -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One stand-in server of the fleet."""

    page: str
    """The fixture served as /metrics ("" for none: Ollama)."""
    words: tuple[str, ...]
    """Its command words, which discovery reads."""
    port: int
    routes: tuple[tuple[str, str], ...] = ()
    """More routes: (path, fixture)."""
    count: int = 1


MIX: tuple[Spec, ...] = (
    Spec("vllm_v1.metrics", ("vllm", "serve", "m"), 8000, count=16),
    Spec("vllm_v1_dp2.metrics", ("vllm", "serve", "m", "--data-parallel-size", "2"), 8000, count=6),
    Spec("vllm_large.metrics", ("vllm", "serve", "m", "--data-parallel-size", "8"), 8000, count=2),
    Spec(
        "sglang.metrics",
        ("python3", "-m", "sglang.launch_server", "--host", "0.0.0.0", "--enable-metrics"),
        30000,
        count=8,
    ),
    Spec(
        "tgi.metrics",
        ("text-generation-launcher", "--port", "80"),
        80,
        (("/info", "tgi_info.json"),),
        count=6,
    ),
    Spec("llamacpp.metrics", ("llama-server", "--host", "0.0.0.0", "--metrics"), 8080, count=6),
    Spec("lmdeploy.metrics", ("lmdeploy", "serve", "api_server", "m"), 23333, count=4),
    Spec(
        "",
        ("ollama", "serve"),
        11434,
        (("/api/ps", "ollama_ps.json"), ("/", "ollama_root.txt")),
        count=2,
    ),
)
"""The fleet: mostly vLLM (some data-parallel), then SGLang, TGI, llama.cpp, LMDeploy, Ollama."""

SERVERS = ("busybox", "keepalive")


def fleet_specs(n: int) -> list[Spec]:
    specs = [spec for spec in MIX for _ in range(spec.count)]
    while len(specs) < n:
        specs.extend(specs)
    return specs[:n]


def _busybox_command(spec: Spec) -> list[str]:
    steps = []
    for route, fixture in spec.routes:
        where = "/www/index.html" if route == "/" else f"/www{route}"
        steps.append(f"mkdir -p {Path(where).parent} && cp /fixtures/{fixture} {where}")
    script = serve_command(
        spec.port, metrics=spec.page or None, health=bool(spec.page), extra=" && ".join(steps)
    )
    return server_command(script, *spec.words)


def _keepalive_body(spec: Spec, image: str, run: str) -> dict[str, object]:
    python, binds = host_python()
    routes = {path: f"/fixtures/{fixture}" for path, fixture in spec.routes}
    if spec.page:
        routes |= {"/metrics": f"/fixtures/{spec.page}", "/health": ""}
    return {
        "Image": image,
        "Cmd": [python, "/cgi/standin.py", *spec.words],
        "Env": [f"SERVE_PORT={spec.port}", f"SERVE_ROUTES={json.dumps(routes)}"],
        "Labels": {LABEL: run},
        "HostConfig": {"Binds": binds, "Memory": 128 * 1024 * 1024},
    }


def start_fleet(
    engine: Engine, image: str, run: str, n: int, servers: str = "busybox"
) -> list[str]:
    """Start the stand-ins one at a time; `servers`: busybox httpd, or the keep-alive one."""
    ids: list[str] = []
    try:
        for i, spec in enumerate(fleet_specs(n)):
            name = f"aitop-bench-serving-{run}-{i:03d}"
            if servers == "busybox":
                cid = engine.run(
                    image, _busybox_command(spec), labels={LABEL: run}, name=name, mem_limit="64m"
                )
            else:
                cid = engine.create_container(_keepalive_body(spec, image, run), name=name)
                ids.append(cid)
                engine.start_container(cid)
                continue
            ids.append(cid)
    except BaseException:
        remove_fleet(engine, ids)
        raise
    return ids


def remove_fleet(engine: Engine, ids: list[str]) -> None:
    for cid in ids:
        try:
            engine.remove(cid)
        except EngineError as exc:
            print(f"  could not remove {cid[:12]}: {exc}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_split() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def scrape_part(engine: Engine, n: int, seconds: float, servers: str) -> dict[str, object]:
    run = uuid.uuid4().hex[:6]
    image = build_serving_image(engine)
    how = {
        "busybox": "busybox httpd: a new connection for every request",
        "keepalive": "standin.py: kept-alive connections, as real servers",
    }[servers]
    print(f"\nScrape: {n} stand-in servers ({how}) at a 1 s interval for {seconds:g} s")
    ids: list[str] = []
    pool = ServingPool()
    try:
        started = time.monotonic()
        ids = start_fleet(engine, image, run, n, servers)
        print(f"  started {len(ids)} containers in {time.monotonic() - started:.1f} s")
        for cid in ids:
            attrs = engine.inspect(cid)
            pool.watch(cid, attrs, int(attrs["State"]["Pid"]))
        # Warm up: discovery, first answers, info routes; until every server reads ready.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pool.poll()
            time.sleep(1)
            readings = pool.readings()
            if len(readings) == n and all(r.state.name == "ready" for r in readings.values()):
                break
        readings = pool.readings()
        ready = sum(1 for r in readings.values() if r.state.name == "ready")
        print(f"  ready: {ready} of {n}")
        for cid, reading in readings.items():
            if reading.state.name != "ready":
                print(f"    {cid[:12]} {reading.kind}: {reading.state}")
        (user0, sys0), wall0 = cpu_split(), time.monotonic()
        polls = scrapes = 0
        due = wall0
        while True:
            now = time.monotonic()
            if now - wall0 >= seconds:
                break
            scrapes += pool.poll()
            polls += 1
            due += 1.0
            time.sleep(max(0.0, due - time.monotonic()))
        (user1, sys1), wall = cpu_split(), time.monotonic() - wall0
        user, system = user1 - user0, sys1 - sys0
        cpu = user + system
        percent = cpu / wall * 100
        per_scrape_ms = cpu / max(1, scrapes) * 1000
        print(
            f"  CPU: {percent:.2f} % of one core ({user / wall * 100:.2f} % user, "
            f"{system / wall * 100:.2f} % system; {cpu:.2f} s over {wall:.1f} s; "
            f"{scrapes} scrapes in {polls} polls, {per_scrape_ms:.2f} ms CPU per scrape)"
        )
        verdict = "met" if percent < 5 else "NOT met"
        print(f"  aim: under 5 % of one core at {n} containers: {verdict}")
        parse_only = offline_part(n, seconds=min(seconds, 10))
        return {
            "servers": servers,
            "containers": n,
            "ready": ready,
            "seconds": wall,
            "cpu_seconds": cpu,
            "user_seconds": user,
            "system_seconds": system,
            "cpu_percent_of_one_core": percent,
            "scrapes": scrapes,
            "cpu_ms_per_scrape": per_scrape_ms,
            "parse_and_track_percent": parse_only,
        }
    finally:
        pool.close()
        print(f"  removing {len(ids)} containers")
        remove_fleet(engine, ids)


def offline_part(n: int, seconds: float) -> float:
    """The same fleet's pages through parse + tracker, without HTTP: CPU % at 1 scrape/s each."""
    specs = [spec for spec in fleet_specs(n) if spec.page]
    pages = [(FIXTURES / spec.page).read_text() for spec in specs]
    kinds = [BY_NAME[spec.page.split("_")[0].split(".")[0]] for spec in specs]
    trackers = [ServingTracker() for _ in specs]
    caches = [(ParseCache(), ParseCache()) for _ in specs]

    def scrape_round(r: int) -> None:
        # As the scraper does: latency histograms every HISTOGRAM_EVERY scrapes.
        histograms = r % HISTOGRAM_EVERY == 0
        wanted = WANTED if histograms else WANTED_WITHOUT_HISTOGRAMS
        for page, kind, tracker, cache in zip(pages, kinds, trackers, caches, strict=True):
            tracker.update(
                Observation(
                    float(r),
                    float(r),
                    kind,
                    "http://bench",
                    Contact.OK,
                    health=Health(Verdict.READY),
                    metrics=MetricsAnswer.PAGE,
                    page=parse(page, wanted, cache[histograms]),
                    histograms=histograms,
                )
            )

    # The first round of each kind reads pages not yet seen (as after aitop starts).
    for r in range(2):
        scrape_round(r)
    rounds = max(HISTOGRAM_EVERY, int(seconds) // HISTOGRAM_EVERY * HISTOGRAM_EVERY)
    cpu0 = cpu_seconds()
    for r in range(rounds):
        scrape_round(HISTOGRAM_EVERY + r)
    cpu = cpu_seconds() - cpu0
    percent = cpu / rounds * 100
    print(
        f"  of which parse + tracker (no HTTP), {len(specs)} pages a second: "
        f"{percent:.2f} % of one core"
    )
    return percent


def cleanup(engine: Engine) -> None:
    ids = engine.ids_with_label(LABEL)
    remove_fleet(engine, ids)
    print(f"removed {len(ids)} container(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="parse runs per page")
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured scrape window")
    parser.add_argument("--parse-only", action="store_true", help="no engine: parse part only")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="stand-ins to scrape, comma-separated: busybox (a connection per request), "
        "keepalive (kept-alive connections, run by the host's Python)",
    )
    parser.add_argument("--cleanup", action="store_true", help="remove a killed run's containers")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.cleanup:
        cleanup(Engine())
        return 0
    figures: dict[str, object] = {"parse": parse_part(args.rounds)}
    if not args.parse_only:
        engine = Engine(timeout=60)
        try:
            figures["scrape"] = [
                scrape_part(engine, args.containers, args.seconds, servers)
                for servers in args.servers.split(",")
            ]
        finally:
            engine.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
