"""Scraping model servers: HTTP with hard limits, off the event loop, a few threads at most.

- `HttpClient`: GET over one keep-alive connection (the standard library's `http.client`),
  with a connect timeout, a read timeout and a deadline for the whole answer (a server that
  drips one byte a second is cut at the deadline, not after hours), a byte cap (a page that is
  huge or never ends is a labelled failure, not a memory blow-up), `Accept:
  text/plain;version=0.0.4` for metrics, and no reliance on Content-Type.
- `socket_in_netns`: a connection made from inside a container's network namespace, for a
  server bound to 127.0.0.1 there: `setns(CLONE_NEWNET)` (through ctypes) on a short-lived
  thread of its own, which opens the socket and ends; the socket stays in that namespace.
- `Scraper`: one container's server: its health route, its metrics page, the route that names
  its model (TGI, llama.cpp), Ollama's `/api/ps`; one `Observation` per scrape.
- `ServingPool`: the containers of one engine, scraped concurrently by a bounded pool of
  worker threads, one scrape per container at a time (a container whose previous scrape has
  not finished is skipped), each feeding its `ServingTracker`.

Scraped text is untrusted: model names and labels pass `safe_text` where they enter (the
tracker does it for page labels; this module for info routes and Ollama's answers).
"""

from __future__ import annotations

import ctypes
import functools
import http.client
import io
import ipaddress
import json
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.fleet.inventory import parse_time
from tui.fleet.sanitize import safe_text
from tui.fleet.serving.discover import Route, Target, discover, discovery_attrs
from tui.fleet.serving.parse import MAX_PAGE_CHARS, ParseCache, parse
from tui.fleet.serving.reading import (
    Contact,
    MetricsAnswer,
    Observation,
    ServingTracker,
    safe_model_name,
)
from tui.fleet.serving.servers import (
    MAX_HEALTH_BYTES,
    OLLAMA,
    OLLAMA_PS_PATH,
    WANTED,
    WANTED_WITHOUT_HISTOGRAMS,
    Health,
    ServerKind,
    Verdict,
    kind_of_page,
)
from tui.fleet.serving.types import HistoryPoint, LoadedModel, ServingReading, ServingState

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

METRICS_ACCEPT = "text/plain;version=0.0.4"
"""What the metrics request accepts: prometheus_client answers OpenMetrics only when asked."""
MAX_PS_BYTES = 1024 * 1024
"""Longest `/api/ps` answer read."""
MAX_LOADED_MODELS = 64
"""Most models kept from one `/api/ps` answer."""
HISTOGRAM_EVERY = 5
"""The latency histograms are read every this many scrapes (percentiles cover a minute)."""
HEALTH_EVERY = 10
"""A ready server's health is asked every this many scrapes (and whenever it is not ready,
or its metrics page did not answer): its metrics page answering says it is up meanwhile."""
INFO_EVERY_S = 60.0
"""How often the route that names the model is asked again."""
REDISCOVER_S = 5.0
"""How often a target whose port was guessed is discovered again while it does not answer."""
WORKERS = 8
"""Scrapes running at once, at most."""
_MAX_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """The bounds of one HTTP request."""

    connect_timeout_s: float = 0.5
    read_timeout_s: float = 1.0
    """Longest wait for any one read."""
    deadline_s: float = 2.0
    """Longest time for the whole answer, headers and body."""
    max_page_bytes: int = MAX_PAGE_CHARS


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, or why there is none."""

    contact: Contact
    status: int = 0
    body: bytes = b""
    why: str = ""

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", "replace")


# --- network namespaces -----------------------------------------------------------------------

CLONE_NEWNET = 0x40000000


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def socket_in_netns(
    pid: int, host: str, port: int, timeout: float, proc: Path = Path("/proc")
) -> socket.socket:
    """A TCP connection to host:port made inside the network namespace of host PID `pid`.

    The switch happens on a thread made for it, which ends once the socket is connected:
    no other thread ever runs in the container's namespace, and the socket keeps it.
    """
    outcome: list[socket.socket | OSError] = []
    lock = threading.Lock()
    abandoned = threading.Event()

    def connect() -> None:
        try:
            fd = os.open(proc / str(pid) / "ns" / "net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            with lock:
                outcome.append(exc)
            return
        with lock:
            if abandoned.is_set():
                sock.close()
            else:
                outcome.append(sock)

    thread = threading.Thread(target=connect, name="aitop-netns", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    with lock:
        if not outcome:
            abandoned.set()
            raise TimeoutError(f"no connection inside the container within {timeout:g} s")
        result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result


# --- HTTP -------------------------------------------------------------------------------------


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, each read waiting at most until the socket's deadline."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock
        self._wait = -1.0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self._sock.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("answer not finished by the deadline")
        wait = min(remaining, self._sock.read_timeout)
        # Setting a timeout is a system call: only when it changes (near the deadline).
        if wait != self._wait:
            self._sock.settimeout(wait)
            self._wait = wait
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._sock.reader_closed()
        super().close()


class _DeadlineSocket(socket.socket):
    """A connected socket whose buffered reader (what http.client reads) obeys a deadline."""

    deadline: float = math.inf
    read_timeout: float = 1.0
    readers: int = 0
    close_pending: bool = False

    # http.client reads answers through makefile("rb"): that reader is the one bounded.
    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            raise ValueError("only the binary reader that http.client uses is bounded")
        self.readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        # http.client closes the connection as soon as the server says `Connection: close`,
        # while the answer is still to be read: the descriptor lives until its reader is done.
        if self.readers > 0:
            self.close_pending = True
            return
        super().close()

    def reader_closed(self) -> None:
        """A reader from `makefile` is done with the socket."""
        self.readers -= 1
        if self.readers <= 0 and self.close_pending:
            self.close_pending = False
            super().close()


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection over a `Route` (inside a namespace when it says so)."""

    def __init__(self, route: Route, limits: Limits) -> None:
        super().__init__(route.host, route.port, timeout=limits.connect_timeout_s)
        self.route = route
        self.limits = limits
        self.deadline = math.inf

    def connect(self) -> None:
        route, timeout = self.route, self.limits.connect_timeout_s
        family = _numeric_family(route.host)
        if route.netns_pid or family is None:
            # Inside a namespace, or a host name to resolve: connect, then adopt the socket.
            if route.netns_pid:
                raw = socket_in_netns(route.netns_pid, route.host, route.port, timeout)
            else:
                raw = socket.create_connection((route.host, route.port), timeout=timeout)
            sock = _DeadlineSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            sock.settimeout(timeout)
        else:
            # An address (nearly always): one socket, no resolver (a connection per scrape
            # to servers that close them, such as busybox httpd, makes this count).
            sock = _DeadlineSocket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect((route.host, route.port))
            except BaseException:
                sock.close()
                raise
        sock.deadline = self.deadline
        sock.read_timeout = self.limits.read_timeout_s
        self.sock = sock


@functools.lru_cache(maxsize=1024)
def _numeric_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an address, None for a name."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


class HttpClient:
    """GET requests to one route over one kept-alive connection, each bounded (see Limits)."""

    def __init__(self, route: Route, limits: Limits = DEFAULT_LIMITS) -> None:
        self.route = route
        self.limits = limits
        self._conn = _Connection(route, limits)

    def close(self) -> None:
        """Close the connection (a later request opens another)."""
        self._conn.close()

    def get(self, path: str, *, accept: str = "*/*", max_bytes: int | None = None) -> Answer:
        """GET `path`; an Answer whose contact says whether the server answered at all."""
        cap = self.limits.max_page_bytes if max_bytes is None else max_bytes
        deadline = time.monotonic() + self.limits.deadline_s
        self._conn.deadline = deadline
        for attempt in range(2):
            reused = self._conn.sock is not None
            if reused and isinstance(self._conn.sock, _DeadlineSocket):
                self._conn.sock.deadline = deadline
            try:
                return self._exchange(path, accept, cap)
            except ConnectionRefusedError:
                self.close()
                return Answer(Contact.REFUSED, why=f"nothing listens on port {self.route.port}")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # A kept-alive connection the server closed while idle: try once more afresh.
                if reused and attempt == 0 and time.monotonic() < deadline:
                    continue
                return Answer(Contact.FAILED, why="the server closed the connection")
            except TimeoutError:
                self.close()
                return Answer(
                    Contact.FAILED, why=f"no complete answer within {self.limits.deadline_s:g} s"
                )
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.close()
                return Answer(
                    Contact.FAILED, why=safe_text(f"{type(exc).__name__}: {exc}", limit=160)
                )
        return Answer(Contact.FAILED, why="the server closed the connection")

    def _exchange(self, path: str, accept: str, cap: int) -> Answer:
        conn = self._conn
        conn.request("GET", path, headers={"Accept": accept, "User-Agent": "aitop"})
        response = conn.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > cap:
            self.close()
            return Answer(Contact.FAILED, response.status, why=f"answer over {_mib(cap)}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read(min(_MAX_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                self.close()
                return Answer(Contact.FAILED, response.status, why=f"answer over {_mib(cap)}")
        body = b"".join(chunks)
        if (response.getheader("Content-Encoding") or "").strip().lower() == "gzip":
            unzipped = _gunzip(body, cap)
            if unzipped is None:
                return Answer(Contact.FAILED, response.status, why=f"answer over {_mib(cap)}")
            body = unzipped
        return Answer(Contact.OK, response.status, body)


def _gunzip(body: bytes, cap: int) -> bytes | None:
    """A gzip body inflated, at most `cap` bytes (None past it or when it is not gzip)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        return None
    return None if len(out) > cap or inflater.unconsumed_tail else out


# --- Ollama -----------------------------------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: object, limit: int = 128) -> str | None:
    return safe_text(value, limit=limit) if isinstance(value, str) and value else None


def loaded_models(data: object) -> tuple[LoadedModel, ...] | None:
    """Ollama's `/api/ps` answer as LoadedModels (every text made safe); None if not one."""
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    out: list[LoadedModel] = []
    for entry in entries[:MAX_LOADED_MODELS]:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str) or not name:
            continue
        details = entry.get("details")
        details = details if isinstance(details, dict) else {}
        out.append(
            LoadedModel(
                name=safe_model_name(name),
                size_bytes=_int(entry.get("size")),
                vram_bytes=_int(entry.get("size_vram")),
                context_length=_int(entry.get("context_length")),
                expires_at=_text(entry.get("expires_at"), 64),
                family=_text(details.get("family")),
                parameter_size=_text(details.get("parameter_size"), 32),
                quantization=_text(details.get("quantization_level"), 32),
            )
        )
    return tuple(out)


def _json(answer: Answer) -> object:
    try:
        return json.loads(answer.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


# --- one container ----------------------------------------------------------------------------


class Scraper:
    """Scrapes one container's model server; one `Observation` per call of `scrape`."""

    def __init__(self, target: Target, limits: Limits = DEFAULT_LIMITS) -> None:
        self.target = target
        self.kind: ServerKind | None = target.kind
        """The server as discovered, corrected by what its page says."""
        self._limits = limits
        self._clients: dict[Route, HttpClient] = {}
        self._scrapes = 0
        self._last_verdict: Verdict | None = None
        self._metrics_failed = False
        self._model: str | None = None
        self._info_at = -math.inf
        self._parse_caches = (ParseCache(), ParseCache())

    def close(self) -> None:
        """Close every connection."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, route: Route) -> HttpClient:
        client = self._clients.get(route)
        if client is None:
            client = self._clients[route] = HttpClient(route, self._limits)
        return client

    def _health_due(self) -> bool:
        # Ollama's /api/ps, asked every time, says it is up as well as its root route does.
        return (
            self._last_verdict is not Verdict.READY
            or self._metrics_failed
            or self._scrapes % HEALTH_EVERY == 0
        )

    def scrape(self) -> Observation:
        """Ask the server (health, metrics, model, loaded models) and say what it answered."""
        at, wall = time.monotonic(), time.time()
        target = self.target
        self._scrapes += 1
        kind = self.kind
        if target.api is None or target.metrics is None:
            return Observation(at, wall, kind, None, Contact.NO_ROUTE, why=target.unreachable)
        api, metrics_route = target.api, target.metrics
        url = (
            api.url(target.prefix or "/")
            if kind is not None and kind.metrics_path is None
            else metrics_route.url(target.prefix + target.metrics_path)
        )
        health: Health | None = None
        if kind is not None and kind.health_path is not None and self._health_due():
            answer = self._client(api).get(
                target.prefix + kind.health_path, max_bytes=MAX_HEALTH_BYTES
            )
            if answer.contact is not Contact.OK:
                self._last_verdict = None
                return Observation(at, wall, kind, url, answer.contact, why=answer.why)
            health = kind.health(answer.status, answer.body)
            self._last_verdict = health.verdict
        if health is not None and health.verdict is Verdict.LOADING:
            return Observation(at, wall, kind, url, Contact.OK, health=health)
        fields: dict[str, Any] = {}
        if kind is None or kind.metrics_path is not None:
            early = self._read_metrics(kind, metrics_route, api, health, fields)
            if early is not None:
                return Observation(at, wall, kind, url, early.contact, why=early.why)
            kind = self.kind
        if kind is not None:
            early = self._read_model(kind, api, health, fields)
            if early is not None:
                return Observation(at, wall, kind, url, early.contact, why=early.why)
        return Observation(at, wall, kind, url, Contact.OK, health=health, **fields)

    def _read_metrics(
        self,
        kind: ServerKind | None,
        route: Route,
        api: Route,
        health: Health | None,
        fields: dict[str, Any],
    ) -> Answer | None:
        """Read the metrics page into `fields`; an Answer when the server did not answer."""
        target = self.target
        answer = self._client(route).get(
            target.prefix + target.metrics_path,
            accept=METRICS_ACCEPT,
            max_bytes=self._limits.max_page_bytes,
        )
        self._metrics_failed = answer.contact is not Contact.OK or answer.status != 200
        # Whether the API port answered, this time or at the last health probe.
        api_answered = health is not None or self._last_verdict is not None
        if answer.contact is Contact.REFUSED and route != api and api_answered:
            # The API port answers and the separate metrics port is closed: metrics are off.
            fields["metrics"] = MetricsAnswer.OFF
            fields["metrics_why"] = kind.metrics_hint() if kind is not None else ""
            return None
        if answer.contact is not Contact.OK:
            if not api_answered:
                return answer
            fields["metrics"] = MetricsAnswer.FAILED
            fields["metrics_why"] = f"metrics page: {answer.why}"
            return None
        if answer.status == 200:
            # The first two scrapes read them, so that percentiles come with the first rates.
            histograms = self._scrapes <= 2 or self._scrapes % HISTOGRAM_EVERY == 1
            wanted = WANTED if histograms else WANTED_WITHOUT_HISTOGRAMS
            page = parse(answer.text, wanted, self._parse_caches[histograms])
            fields["histograms"] = histograms
            # The page confirms the server, or says which it is (asked again only when the
            # page stops carrying the families of the server it was taken for).
            if kind is None or not any(n.startswith(kind.page_prefixes) for n in page.families):
                said = kind_of_page(set(page.families))
                if said is not None:
                    self.kind = said
            fields["metrics"] = MetricsAnswer.PAGE
            fields["page"] = page
            if page.truncated:
                fields["metrics"] = MetricsAnswer.FAILED
                fields["metrics_why"] = "metrics page too long: cut short"
                fields["page"] = None
        elif kind is not None and answer.status in kind.metrics_off_status:
            fields["metrics"] = MetricsAnswer.OFF
            fields["metrics_why"] = target.metrics_hint or kind.metrics_hint()
        else:
            fields["metrics"] = MetricsAnswer.FAILED
            fields["metrics_why"] = f"metrics page answered HTTP {answer.status}"
        return None

    def _read_model(
        self, kind: ServerKind, api: Route, health: Health | None, fields: dict[str, Any]
    ) -> Answer | None:
        """The model an info route names (now and then), and Ollama's loaded models; an
        Answer when Ollama, whose health was not asked this time, did not answer."""
        if kind is OLLAMA:
            answer = self._client(api).get(
                self.target.prefix + OLLAMA_PS_PATH, max_bytes=MAX_PS_BYTES
            )
            self._metrics_failed = answer.contact is not Contact.OK or answer.status != 200
            if answer.contact is not Contact.OK and health is None:
                return answer
            if not self._metrics_failed:
                fields["loaded_models"] = loaded_models(_json(answer))
            return None
        if kind.info_path is None or kind.info_model is None:
            return None
        now = time.monotonic()
        if self._model is None or now - self._info_at >= INFO_EVERY_S:
            self._info_at = now
            answer = self._client(api).get(
                self.target.prefix + kind.info_path, max_bytes=MAX_HEALTH_BYTES
            )
            if answer.contact is Contact.OK and answer.status == 200:
                named = kind.info_model(_json(answer))
                if named:
                    self._model = safe_model_name(named)
        if self._model is not None:
            fields["model"] = self._model
        return None


# --- many containers --------------------------------------------------------------------------


def may_enter_namespaces() -> bool:
    """Whether this process may enter other network namespaces (it needs CAP_SYS_ADMIN)."""
    return os.geteuid() == 0


@dataclass
class _Watched:
    """One container in the pool; touched by one worker at a time (`busy`)."""

    attrs: Mapping[str, Any]
    pid: int
    tracker: ServingTracker
    target: Target | None = None
    scraper: Scraper | None = None
    discovered_at: float = -math.inf
    busy: bool = False
    retired: bool = False
    gone: bool = False
    """Discovery said it serves nothing: no scrapes until it is watched again."""


Discover = Callable[..., Target | None]


class ServingPool:
    """Scrapes the model servers of many containers, a few at a time, off the event loop.

    `watch` a container when it is inspected (its inspect data and host PID), `forget` it when
    it is gone, call `poll` once per sampling interval from any thread (it only submits work),
    and read `readings()` and `history(id)`: immutable values, safe from any thread.
    """

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        limits: Limits = DEFAULT_LIMITS,
        may_enter_netns: bool | None = None,
        remote_host: str | None = None,
        discover_target: Discover = discover,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aitop-serving")
        self._limits = limits
        self._may_enter = may_enter_namespaces() if may_enter_netns is None else may_enter_netns
        self._remote_host = remote_host
        self._discover = discover_target
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._closed = False

    def watch(self, container_id: str, attrs: Mapping[str, Any], pid: int) -> None:
        """Start (or keep) watching a container, from its latest inspect data and the host PID
        of its main process; a container that does not run (`pid` 0) serves nothing."""
        if pid <= 0:
            self.forget(container_id)
            return
        # Only what discovery reads is kept: the whole inspect document is ~20 KB a container.
        attrs = discovery_attrs(attrs)
        with self._lock:
            current = self._watched.get(container_id)
            if current is not None and current.pid == pid:
                current.attrs = attrs
                current.discovered_at = -math.inf
                current.gone = False
                return
            if current is not None:
                self._retire(current)
            started = _started_at(attrs)
            self._watched[container_id] = _Watched(attrs, pid, ServingTracker(started_at=started))

    def forget(self, container_id: str) -> None:
        """Stop watching a container (its connections close once any scrape in flight ends)."""
        with self._lock:
            watched = self._watched.pop(container_id, None)
            if watched is not None:
                self._retire(watched)

    def _retire(self, watched: _Watched) -> None:
        watched.retired = True
        if not watched.busy and watched.scraper is not None:
            watched.scraper.close()

    def poll(self) -> int:
        """Start a scrape for every watched container that is not being scraped; how many."""
        with self._lock:
            if self._closed:
                return 0
            due = [w for w in self._watched.values() if not w.busy and not w.gone]
            for watched in due:
                watched.busy = True
        for watched in due:
            self._executor.submit(self._run, watched)
        return len(due)

    def readings(self) -> dict[str, ServingReading]:
        """The latest reading of every container that serves a model."""
        with self._lock:
            items = list(self._watched.items())
        return {cid: w.tracker.reading for cid, w in items if w.tracker.reading is not None}

    def reading(self, container_id: str) -> ServingReading | None:
        """The latest reading of one container, None when it serves nothing (or not yet)."""
        with self._lock:
            watched = self._watched.get(container_id)
        return watched.tracker.reading if watched is not None else None

    def history(self, container_id: str) -> tuple[HistoryPoint, ...]:
        """The recent history of one container's server, oldest first."""
        with self._lock:
            watched = self._watched.get(container_id)
        return watched.tracker.history() if watched is not None else ()

    def settled(self) -> bool:
        """True once every watched container's reading says all it will (see
        `ServingTracker.settled`): what `aitop snapshot --json` waits for, as for CPU."""
        with self._lock:
            watched = [w for w in self._watched.values() if not w.gone]
        return all(w.tracker.settled for w in watched)

    def busy(self) -> int:
        """Scrapes in flight."""
        with self._lock:
            return sum(1 for w in self._watched.values() if w.busy)

    def close(self) -> None:
        """Stop: no new scrapes; connections close as the scrapes in flight end."""
        with self._lock:
            self._closed = True
            watched = list(self._watched.values())
            self._watched.clear()
            for w in watched:
                self._retire(w)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the worker ----------------------------------------------------------------------------

    def _run(self, watched: _Watched) -> None:
        try:
            self._scrape(watched)
        except Exception as exc:  # one container's trouble must not stop the others
            why = safe_text(f"aitop could not read it: {type(exc).__name__}: {exc}", limit=200)
            kind = watched.target.kind.name if watched.target and watched.target.kind else "unknown"
            watched.tracker.reading = ServingReading(kind, ServingState("unreachable", why))
        finally:
            with self._lock:
                watched.busy = False
                if watched.retired and watched.scraper is not None:
                    watched.scraper.close()

    def _scrape(self, watched: _Watched) -> None:
        now = time.monotonic()
        reading = watched.tracker.reading
        answering = reading is not None and reading.state.name in ("ready", "metrics-off")
        target = watched.target
        if target is None or (
            not target.pinned and not answering and now - watched.discovered_at >= REDISCOVER_S
        ):
            watched.discovered_at = now
            target = self._discover(
                watched.attrs,
                pid=watched.pid,
                may_enter_netns=self._may_enter,
                remote_host=self._remote_host,
            )
            if target is None:
                watched.gone = True
                return
            if watched.target != target or watched.scraper is None:
                if watched.scraper is not None:
                    watched.scraper.close()
                watched.target = target
                watched.scraper = Scraper(target, self._limits)
        if watched.retired or watched.scraper is None:
            return
        watched.tracker.update(watched.scraper.scrape())


def _started_at(attrs: Mapping[str, Any]) -> float | None:
    return parse_time((attrs.get("State") or {}).get("StartedAt"))
