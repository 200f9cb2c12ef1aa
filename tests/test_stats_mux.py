"""Many containers' stats readings on one thread (`StatsMux`, `ApiStats` over it).

Against a small HTTP server on a unix socket (the engine's wire format: chunked streams,
one-shot answers with a Content-Length on a kept-alive connection, 404 for a container that
went), and against the real engine: one thread for a dozen containers, and a container that
idles read every few seconds instead of every second.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tui.fleet.engine.client import Engine
from tui.fleet.engine.streams import StatsMux, plain_address
from tui.fleet.metrics import apistats
from tui.fleet.metrics.apistats import ApiStats


def _reading(n: int) -> bytes:
    return json.dumps({"cpu_stats": {"cpu_usage": {"total_usage": n}}}).encode()


class FakeEngine:
    """Answers GET /containers/<id>/stats the way dockerd does, and counts what it is asked."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(64)
        self.connections = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # The client closing first (mux.stop()) is an end, not an error.
        with contextlib.suppress(OSError):
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        buf = b""
        n = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                target = head.split(b" ")[1].decode()
                with self._lock:
                    self.requests.append(target)
                cid = target.split("/containers/")[1].split("/")[0]
                if cid == "gone":
                    body = b'{"message":"No such container"}'
                    conn.sendall(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    continue
                if "stream=1" in target:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                    )
                    for i in range(3):
                        line = _reading(100 * (i + 1)) + b"\n"
                        # Split across two chunks, as a flush may cut one reading.
                        for part in (line[:10], line[10:]):
                            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        time.sleep(0.05)
                    conn.sendall(b"0\r\n\r\n")
                    return
                n += 1
                body = _reading(n) + b"\n"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeEngine]:
    server = FakeEngine(tmp_path / "engine.sock")
    yield server
    server.close()


def _usage(line: bytes) -> int:
    return int(json.loads(line)["cpu_stats"]["cpu_usage"]["total_usage"])


def test_plain_addresses() -> None:
    assert plain_address("unix:///var/run/docker.sock") == "/var/run/docker.sock"
    assert plain_address("tcp://127.0.0.1:2375") == ("127.0.0.1", 2375)
    assert plain_address("http://[::1]:2375/") == ("::1", 2375)
    assert plain_address("https://host:2376") is None  # TLS: read the SDK's way
    assert plain_address("tcp://host") is None


def test_a_stream_keeps_the_newest_reading_across_chunks(fake: FakeEngine) -> None:
    mux = StatsMux(url="unix://" + fake.path, api_prefix="/v1.41")
    try:
        mux.follow({"abc": None}, fake.path)
        wait_for(lambda: "abc" in mux.latest() and _usage(mux.latest()["abc"][1]) == 300)
        assert fake.requests[0] == "/v1.41/containers/abc/stats?stream=1"
    finally:
        mux.stop()


def test_one_shot_readings_reuse_one_connection_at_their_period(fake: FakeEngine) -> None:
    mux = StatsMux(url="unix://" + fake.path, api_prefix="/v1.41")
    try:
        mux.follow({"fast": 0.1, "slow": 1.0}, fake.path)
        wait_for(lambda: "fast" in mux.latest() and _usage(mux.latest()["fast"][1]) >= 8)
        seqs = {cid: seq for cid, (seq, _line) in mux.latest().items()}
        asked = {c: sum(f"/containers/{c}/" in r for r in fake.requests) for c in ("fast", "slow")}
        # About 10 a second against 1 a second; each container on one kept-alive connection.
        assert asked["fast"] >= 8 and asked["slow"] <= 3
        assert fake.connections == 2
        assert all("stream=0&one-shot=1" in r for r in fake.requests)
        # A newer reading has a higher counter.
        wait_for(lambda: mux.latest()["fast"][0] > seqs["fast"])
    finally:
        mux.stop()


def test_a_container_that_went_is_asked_again_only_after_a_pause(fake: FakeEngine) -> None:
    mux = StatsMux(url="unix://" + fake.path, api_prefix="/v1.41")
    try:
        mux.follow({"gone": 0.1}, fake.path)
        wait_for(lambda: len(fake.requests) >= 1)
        time.sleep(0.5)
        assert len(fake.requests) == 1  # not a request every 0.1 s
        assert "gone" not in mux.latest()
    finally:
        mux.stop()


def test_stop_ends_the_thread_and_the_connections(fake: FakeEngine) -> None:
    mux = StatsMux(url="unix://" + fake.path, api_prefix="/v1.41")
    mux.follow({f"c{i}": 0.2 for i in range(20)}, fake.path)
    wait_for(lambda: len(mux.latest()) == 20)
    threads = [t for t in threading.enumerate() if t.name == "aitop-api-stats"]
    mux.stop()
    assert not any(t.is_alive() for t in threads if t is mux._thread)


def _api_stats_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "aitop-api-stats")


def test_one_thread_for_many_containers_and_idle_ones_read_less_often(
    engine: Engine, run_container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apistats, "IDLE_PERIOD", 3.0)
    busy = run_container("while :; do :; done")
    idle = [run_container("sleep 600") for _ in range(11)]
    before = _api_stats_threads()
    stats = ApiStats(Engine(engine.url))
    try:
        seen: dict[str, list[object]] = {c: [] for c in [busy, *idle]}
        began = time.monotonic()
        while time.monotonic() - began < 12:
            for cid, raw in stats.follow(seen).items():
                if not seen[cid] or seen[cid][-1] is not raw:
                    seen[cid].append(raw)
            time.sleep(0.25)
        assert stats.followed() == frozenset(seen)
        # One thread reads every container's readings.
        assert _api_stats_threads() - before == 1
        # A stream each, then a kept-alive connection for an idle one's one-shot readings
        # (not a connection per reading).
        assert stats.streams_opened == len(seen) + len(idle)
        # The busy one is read every second (its stream), an idle one about every 3 s once
        # seen idling (its first two readings, a second apart, say so).
        assert len(seen[busy]) >= 9
        assert all(2 <= len(seen[c]) <= 6 for c in idle), {c[:8]: len(seen[c]) for c in idle}
    finally:
        stats.close()
    wait_for(lambda: _api_stats_threads() <= before, timeout=10)
