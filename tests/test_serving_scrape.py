"""Scraping with hard limits, against small local servers that misbehave on purpose: slow,
dripping, huge, never-ending, not HTTP, closed; keep-alive reuse; gzip; the Accept header;
Ollama's /api/ps; the namespace switch; and the pool's bounds (threads, one scrape per
container at a time). The same against real containers is in test_serving_containers.py."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tui.fleet.serving.discover import Route, Target
from tui.fleet.serving.reading import Contact, MetricsAnswer
from tui.fleet.serving.scrape import (
    METRICS_ACCEPT,
    HttpClient,
    Limits,
    Scraper,
    ServingPool,
    loaded_models,
    socket_in_netns,
)
from tui.fleet.serving.servers import TRITON, VLLM

FIXTURES = Path(__file__).parent / "fixtures" / "serving"
FAST = Limits(connect_timeout_s=0.5, read_timeout_s=0.3, deadline_s=0.8, max_page_bytes=1 << 20)

Handler = Callable[[socket.socket, bytes], None]


class LocalServer:
    """A TCP server on 127.0.0.1 whose every connection runs `handler(conn, request)`."""

    def __init__(self, handler: Handler, *, keep_alive: bool = False) -> None:
        self.handler = handler
        self.keep_alive = keep_alive
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def route(self) -> Route:
        return Route("127.0.0.1", self.port)

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        try:
            with conn:
                buffer = b""
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    request, _, buffer = buffer.partition(b"\r\n\r\n")
                    with self._lock:
                        self.requests.append(request)
                    self.handler(conn, request)
                    if not self.keep_alive:
                        return
        except OSError:
            pass
        finally:
            with self._lock:
                self.open_now -= 1

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def start(handler: Handler, **kw: bool) -> LocalServer:
        server = LocalServer(handler, **kw)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def answer(status: int, body: bytes, *, headers: str = "", close: bool = True) -> Handler:
    def handle(conn: socket.socket, request: bytes) -> None:
        connection = "Connection: close\r\n" if close else ""
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{connection}{headers}\r\n"
        conn.sendall(head.encode() + body)

    return handle


def path_of(request: bytes) -> str:
    return request.split(b" ", 2)[1].decode()


def routes(table: dict[str, tuple[int, bytes]], *, close: bool = True) -> Handler:
    def handle(conn: socket.socket, request: bytes) -> None:
        status, body = table.get(path_of(request), (404, b"not found"))
        answer(status, body, close=close)(conn, request)

    return handle


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


# --- one request ------------------------------------------------------------------------------


def test_a_page_is_read_and_the_text_format_asked_for(serve):
    server = serve(answer(200, b"vllm:num_requests_running 3\n"))
    got = HttpClient(server.route, FAST).get("/metrics", accept=METRICS_ACCEPT)
    assert (got.contact, got.status, got.body) == (
        Contact.OK,
        200,
        b"vllm:num_requests_running 3\n",
    )
    request = server.requests[0].decode().lower()
    assert "accept: text/plain;version=0.0.4" in request
    assert "gzip" not in request, "a gzipped page must not be asked for"


def test_nothing_listening_is_refused():
    got = HttpClient(Route("127.0.0.1", closed_port()), FAST).get("/health")
    assert got.contact is Contact.REFUSED and "nothing listens" in got.why


def test_a_server_that_never_answers_is_cut_at_the_deadline(serve):
    server = serve(lambda conn, request: time.sleep(5))
    start = time.monotonic()
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED and "within 0.8 s" in got.why
    assert time.monotonic() - start < FAST.deadline_s + 0.5


def test_a_server_that_drips_is_cut_at_the_deadline(serve):
    def drip(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"x")
            time.sleep(0.1)  # each read is quick: only the deadline stops it

    server = serve(drip)
    start = time.monotonic()
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED
    assert time.monotonic() - start < FAST.deadline_s + 0.5


def test_headers_that_drip_are_cut_at_the_deadline_too(serve):
    def drip(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(100):
            conn.sendall(f"X-{i}: y\r\n".encode())
            time.sleep(0.1)

    server = serve(drip)
    start = time.monotonic()
    assert HttpClient(server.route, FAST).get("/").contact is Contact.FAILED
    assert time.monotonic() - start < FAST.deadline_s + 0.5


def test_a_huge_declared_page_is_refused_unread(serve):
    def huge(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\n\r\n")
        conn.sendall(b"x" * 65536)
        time.sleep(2)

    server = serve(huge)
    start = time.monotonic()
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED and got.why == "answer over 1 MiB"
    assert time.monotonic() - start < 0.5


def test_a_page_that_never_ends_is_cut_at_the_cap(serve):
    def endless(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"vllm:num_requests_running 1\n" * 1000
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while True:
            conn.sendall(frame)

    server = serve(endless)
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED and got.why == "answer over 1 MiB"


def test_an_answer_that_is_not_http(serve):
    server = serve(lambda conn, request: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\x1b[2J"))
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED
    assert "\x1b" not in got.why


def test_keep_alive_connections_are_reused(serve):
    server = serve(answer(200, b"ok", close=False), keep_alive=True)
    client = HttpClient(server.route, FAST)
    for _ in range(5):
        assert client.get("/metrics").body == b"ok"
    assert server.connections == 1 and len(server.requests) == 5


def test_a_kept_connection_the_server_dropped_is_opened_again(serve):
    def once_then_drop(conn: socket.socket, request: bytes) -> None:
        answer(200, b"ok", close=False)(conn, request)
        conn.shutdown(socket.SHUT_RDWR)  # as an idle keep-alive timeout does

    server = serve(once_then_drop, keep_alive=True)
    client = HttpClient(server.route, FAST)
    assert client.get("/a").body == b"ok"
    time.sleep(0.05)
    assert client.get("/b").body == b"ok"
    assert server.connections == 2


def test_a_gzipped_page_is_inflated_within_the_cap(serve):
    page = b"vllm:num_requests_running 1\n" * 100
    server = serve(answer(200, gzip.compress(page), headers="Content-Encoding: gzip\r\n"))
    assert HttpClient(server.route, FAST).get("/metrics").body == page
    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB inflated from a few KB
    server = serve(answer(200, bomb, headers="Content-Encoding: gzip\r\n"))
    got = HttpClient(server.route, FAST).get("/metrics")
    assert got.contact is Contact.FAILED and "over 1 MiB" in got.why


# --- Ollama -----------------------------------------------------------------------------------


def test_ollama_ps_fixtures():
    current = loaded_models(json.loads((FIXTURES / "ollama_ps.json").read_text()))
    assert current is not None and [m.name for m in current] == [
        "llama3.1:8b",
        "qwen2.5:32b",
        "nomic-embed-text:latest",
    ]
    qwen = current[1]
    assert (qwen.size_bytes, qwen.vram_bytes, qwen.context_length) == (
        23735687168,
        17179869184,
        4096,
    )
    assert (qwen.family, qwen.parameter_size, qwen.quantization) == ("qwen2", "32.8B", "Q4_K_M")
    assert qwen.expires_at == "2026-01-01T00:09:58.002110873Z"
    older = loaded_models(json.loads((FIXTURES / "ollama_ps_pre_0_10.json").read_text()))
    assert older is not None and all(m.context_length is None for m in older)
    assert loaded_models(json.loads((FIXTURES / "ollama_ps_empty.json").read_text())) == ()


def test_ollama_ps_hostile():
    assert loaded_models({"models": "nope"}) is None
    assert loaded_models([1, 2]) is None
    many = {"models": [{"name": f"m{i}", "size": -5, "size_vram": True} for i in range(500)]}
    models = loaded_models(many)
    assert models is not None and len(models) == 64
    assert models[0].size_bytes is None and models[0].vram_bytes is None
    evil = loaded_models(
        {"models": [{"name": "x\x1b]52;c;AAAA\x07y", "details": {"family": "\u202e"}}]}
    )
    assert evil is not None
    assert "\x1b" not in evil[0].name and evil[0].family == "\ufffd"


# --- one container ----------------------------------------------------------------------------


def test_scraper_reads_health_and_metrics(serve):
    page = (FIXTURES / "vllm_v1.metrics").read_bytes()
    server = serve(routes({"/health": (200, b""), "/metrics": (200, page)}))
    target = Target(VLLM, server.route, server.route)
    obs = Scraper(target, FAST).scrape()
    assert obs.contact is Contact.OK and obs.metrics is MetricsAnswer.PAGE
    assert obs.health is not None and obs.health.verdict.value == "ready"
    assert obs.page is not None and obs.page.family("vllm:num_requests_running") is not None
    assert obs.url == f"http://127.0.0.1:{server.port}/metrics"


def test_scraper_asks_a_ready_servers_health_now_and_then(serve):
    page = (FIXTURES / "vllm_v1.metrics").read_bytes()
    server = serve(routes({"/health": (200, b""), "/metrics": (200, page)}))
    scraper = Scraper(Target(VLLM, server.route, server.route), FAST)
    for _ in range(10):
        scraper.scrape()
    asked = [path_of(r) for r in server.requests]
    assert asked.count("/metrics") == 10
    assert 2 <= asked.count("/health") <= 3


def test_scraper_page_corrects_the_kind(serve):
    page = (FIXTURES / "sglang.metrics").read_bytes()
    server = serve(routes({"/health": (200, b""), "/metrics": (200, page)}))
    scraper = Scraper(Target(VLLM, server.route, server.route), FAST)
    obs = scraper.scrape()
    assert obs.kind is not None and obs.kind.name == "sglang"
    assert scraper.kind is obs.kind


def test_triton_with_its_metrics_port_closed_has_metrics_off(serve):
    api = serve(routes({"/v2/health/ready": (200, b"")}))
    target = Target(TRITON, api.route, Route("127.0.0.1", closed_port()))
    obs = Scraper(target, FAST).scrape()
    assert obs.contact is Contact.OK and obs.metrics is MetricsAnswer.OFF
    assert obs.metrics_why == "--allow-metrics=true"


def test_an_unreachable_target_is_no_route():
    obs = Scraper(Target(VLLM, None, None, unreachable="why not"), FAST).scrape()
    assert (obs.contact, obs.why) == (Contact.NO_ROUTE, "why not")


# --- the namespace switch ---------------------------------------------------------------------


@pytest.mark.may_skip
def test_socket_in_netns_connects_from_inside_a_namespace(serve):
    if os.geteuid() != 0:
        pytest.skip("entering a network namespace needs root")
    server = serve(answer(200, b"inside"))
    # Our own namespace: the switch is the same call, and the server is reachable there.
    sock = socket_in_netns(os.getpid(), "127.0.0.1", server.port, 1.0)
    with sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"inside" in sock.recv(4096)
    # The thread that switched has ended: this thread never left its namespace.
    assert not [t for t in threading.enumerate() if t.name == "aitop-netns"]
    client = HttpClient(Route("127.0.0.1", server.port, netns_pid=os.getpid()), FAST)
    assert client.get("/").body == b"inside"


def test_socket_in_netns_of_a_gone_process_fails_cleanly():
    with pytest.raises(OSError):
        socket_in_netns(2**22 + 12345, "127.0.0.1", 80, 0.5)


# --- many containers --------------------------------------------------------------------------


def pool_of(targets: dict[str, Target], **kw: object) -> ServingPool:
    pool = ServingPool(
        discover_target=lambda attrs, **_: targets[attrs["Id"]],
        limits=FAST,
        **kw,  # type: ignore[arg-type]
    )
    for cid in targets:
        pool.watch(cid, {"Id": cid, "State": {}}, 100)
    return pool


class Slow:
    """A handler that thinks for a while before answering, and counts who waits on it."""

    def __init__(self, delay: float, body: bytes = b"vllm:num_requests_running 1\n") -> None:
        self.delay = delay
        self.body = body
        self.waiting = 0
        self.most_waiting = 0
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        with self._lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        time.sleep(self.delay)
        with self._lock:
            self.waiting -= 1
        answer(200, self.body)(conn, request)


def test_one_scrape_per_container_at_a_time(serve):
    server = serve(Slow(0.2))
    pool = pool_of({"a": Target(None, server.route, server.route, found_by="label")})
    try:
        assert pool.poll() == 1
        assert pool.poll() == 0, "the first scrape has not finished: skipped"
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert pool.poll() == 1
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert [path_of(r) for r in server.requests].count("/metrics") == 2
        reading = pool.reading("a")
        assert reading is not None and reading.state.name == "ready"
    finally:
        pool.close()


def test_the_pool_runs_a_bounded_number_of_scrapes_at_once(serve):
    slow = Slow(0.2)
    server = serve(slow)
    targets = {
        f"c{i}": Target(None, server.route, server.route, found_by="label") for i in range(20)
    }
    pool = pool_of(targets, workers=4)
    try:
        assert pool.poll() == 20
        wait_for(lambda: pool.busy() == 0, timeout=10)
        assert slow.most_waiting == 4, "four workers, and all of them busy"
        assert len(pool.readings()) == 20
    finally:
        pool.close()


def test_a_failing_scrape_does_not_stop_the_pool(serve):
    def broken(attrs: dict, **_: object) -> Target:
        raise RuntimeError("boom \x1b[2J")

    pool = ServingPool(discover_target=broken, limits=FAST)
    try:
        pool.watch("x", {"State": {}}, 1)
        pool.poll()
        wait_for(lambda: pool.busy() == 0, timeout=3)
        reading = pool.reading("x")
        assert reading is not None and reading.state.name == "unreachable"
        assert "RuntimeError" in reading.state.detail and "\x1b" not in reading.state.detail
    finally:
        pool.close()


def test_a_container_that_serves_nothing_is_not_scraped_again():
    calls = []

    def nothing(attrs: dict, **_: object) -> None:
        calls.append(attrs)

    pool = ServingPool(discover_target=nothing, limits=FAST)
    try:
        pool.watch("x", {"State": {}}, 1)
        pool.poll()
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert pool.poll() == 0 and pool.readings() == {} and len(calls) == 1
        pool.watch("x", {"State": {}}, 1)  # re-inspected: looked at again
        assert pool.poll() == 1
    finally:
        pool.close()


def test_forget_and_close(serve):
    server = serve(answer(200, b"vllm:num_requests_running 1\n"))
    pool = pool_of({"a": Target(None, server.route, server.route, found_by="label")})
    pool.poll()
    wait_for(lambda: pool.busy() == 0, timeout=3)
    assert pool.history("a")
    pool.forget("a")
    assert pool.reading("a") is None and pool.history("a") == () and pool.poll() == 0
    pool.close()
    assert pool.poll() == 0


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("keep_alive", [False, True], ids=["close", "keep-alive"])
def test_no_descriptor_is_left_open(serve, keep_alive):
    server = serve(answer(200, b"x" * 100_000, close=not keep_alive), keep_alive=keep_alive)
    client = HttpClient(server.route, FAST)
    client.get("/warm-up")
    before = open_descriptors()
    for _ in range(200):
        assert len(client.get("/metrics").body) == 100_000
    assert open_descriptors() <= before + 1
    client.close()
    huge = serve(answer(200, b"y" * (2 << 20)))
    for _ in range(20):
        assert HttpClient(huge.route, FAST).get("/").contact is Contact.FAILED
    assert open_descriptors() <= before + 1


def test_a_container_that_stopped_is_forgotten(serve):
    server = serve(answer(200, b"vllm:num_requests_running 1\n"))
    pool = pool_of({"a": Target(None, server.route, server.route, found_by="label")})
    try:
        pool.poll()
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert pool.reading("a") is not None
        pool.watch("a", {"Id": "a", "State": {}}, 0)
        assert pool.reading("a") is None and pool.poll() == 0
    finally:
        pool.close()


def test_the_pool_is_settled_once_every_server_has_rates(serve):
    page = (FIXTURES / "vllm_v1.metrics").read_bytes()
    server = serve(routes({"/health": (200, b""), "/metrics": (200, page)}))
    loading = Route("127.0.0.1", closed_port())
    pool = pool_of(
        {
            "ready": Target(VLLM, server.route, server.route, found_by="flag"),
            "loading": Target(VLLM, loading, loading, found_by="flag"),
        }
    )
    try:
        assert not pool.settled()
        pool.poll()
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert not pool.settled(), "one page: no rates yet"
        pool.poll()
        wait_for(lambda: pool.busy() == 0, timeout=3)
        assert pool.settled()
        ready = pool.reading("ready")
        assert ready is not None and ready.prompt_tokens_per_s is not None
        still_loading = pool.reading("loading")
        assert still_loading is not None and still_loading.state.name == "loading"
    finally:
        pool.close()
