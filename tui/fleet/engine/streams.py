"""Streams from the engine: events, stats readings and container logs, each closable from any
thread; and the SDK's private request helpers, used here only, so that an SDK release that
renames them breaks this one module.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import docker
import docker.errors
import requests
import requests.exceptions
from docker.types.daemon import CancellableStream

from tui.fleet.engine.errors import EngineError
from tui.fleet.engine.translate import Translate, explain

# Podman's compatible API names some container events as libpod does internally: it filters
# on "died" and reports a removal as "remove". Callers see Docker's names only.
PODMAN_FILTER_EVENTS = {"die": "died", "destroy": "remove"}
PODMAN_EVENT_ACTIONS = {"remove": "destroy", "died": "die"}


Json = dict[str, Any]
"""One decoded JSON object of an engine stream (an event, a stats reading)."""

_T = TypeVar("_T")
_U = TypeVar("_U")
_T_co = TypeVar("_T_co", covariant=True)


class Closable(Protocol):
    """A stream the engine keeps, to close it from any thread (`Engine.reset()`)."""

    def close(self) -> None:
        """End the stream now."""


class ClosableIterable(Closable, Protocol[_T_co]):
    """A stream to iterate that may be closed from another thread."""

    def __iter__(self) -> Iterator[_T_co]:
        """Its items, as they come."""


def docker_event(event: Json) -> Json:
    """A Podman event under Docker's action names (Podman says "remove" for "destroy")."""
    action = event.get("Action")
    if action in PODMAN_EVENT_ACTIONS:
        event = {**event, "Action": PODMAN_EVENT_ACTIONS[action]}
        if event.get("status") == action:
            event["status"] = event["Action"]
    return event


class Mapped(Generic[_T, _U]):
    """A stream whose items pass through `fn` (Podman's events in Docker's names, say);
    `close()` closes the stream below."""

    def __init__(self, stream: ClosableIterable[_T], fn: Callable[[_T], _U]) -> None:
        self._stream = stream
        self._fn = fn

    def __iter__(self) -> Iterator[_U]:
        return map(self._fn, self._stream)

    def close(self) -> None:
        """Close the stream below."""
        self._stream.close()


class EventStream:
    """An engine event subscription: iterate it for events; `close()` from any thread ends it."""

    def __init__(
        self,
        stream: ClosableIterable[Json],
        *,
        url: str,
        on_close: Callable[[EventStream], None] | None = None,
    ) -> None:
        self._stream = stream
        self._url = url
        self._on_close = on_close
        self._close_lock = threading.Lock()
        self._closed = False

    def __iter__(self) -> Iterator[Json]:
        try:
            with Translate(self._url):
                yield from self._stream
        except EngineError:
            if not self._closed:
                raise
        finally:
            self.close()

    def close(self) -> None:
        """End the subscription now (idempotent, thread-safe)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self._stream.close()
        if self._on_close is not None:
            self._on_close(self)


# --- the SDK's private request helpers, used here only: an SDK release that renames them
# breaks these two functions, nothing else.


class _RequestHelpers(Protocol):
    """The private helpers of docker-py's `APIClient` (7.x) that the streams below need: its
    public calls either do not stream (stats) or hand out a generator no other thread can
    close. docker's type stubs leave them out."""

    def _url(self, pathfmt: str, *args: str, versioned_api: bool = True) -> str: ...
    def _get(self, url: str, *, params: Mapping[str, Any], stream: bool) -> requests.Response: ...
    def _raise_for_status(self, response: requests.Response) -> None: ...
    def _stream_helper(
        self, response: requests.Response, decode: Literal[True]
    ) -> Iterator[Json]: ...


def open_stream(
    api: docker.APIClient, path: str, container_id: str, params: Mapping[str, Any]
) -> requests.Response:
    """GET a streaming endpoint of one container (`path` with `{0}` for its id); raises the
    SDK's APIError (NotFound for a missing container) and closes the response on an error."""
    sdk = cast(_RequestHelpers, api)
    url = sdk._url(path, container_id)  # noqa: SLF001 - the SDK's URL, with its API version
    response = sdk._get(url, params=dict(params), stream=True)  # noqa: SLF001 - GET, streamed
    try:
        sdk._raise_for_status(response)  # noqa: SLF001 - the SDK's errors (NotFound, APIError)
    except BaseException:
        response.close()
        raise
    return response


def decoded_stream(api: docker.APIClient, response: requests.Response) -> CancellableStream[Json]:
    """A streaming response's JSON objects, one by one, closable from any thread (the SDK's
    own stats() hands out a bare generator, which no other thread can close)."""
    sdk = cast(_RequestHelpers, api)
    objects = sdk._stream_helper(response, decode=True)  # noqa: SLF001 - as the SDK's events()
    return CancellableStream(objects, response)


LOG_READ_SIZE = 256 * 1024
"""Bytes asked of the socket per read: large, so a flood costs few system calls."""


def api_time(ns: int) -> str:
    """Nanoseconds since the epoch as the engine's `seconds.nanoseconds` query value."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class _BufferedReader(Protocol):
    """The buffered reader under an HTTP response (http.client's)."""

    def read1(self, size: int, /) -> bytes:
        """At most `size` bytes, with at most one read of the socket."""


class _Socket(Protocol):
    """The connection's socket, to shut down from another thread."""

    def shutdown(self, how: int, /) -> None:
        """Shut down one or both halves of the connection."""

    def settimeout(self, value: float | None, /) -> None:
        """Set (None: clear) the timeout of blocking reads."""


def _response_reader(response: requests.Response) -> tuple[_BufferedReader | None, _Socket | None]:
    """The buffered reader under an HTTP response and the socket to shut down to unblock it.

    They sit inside urllib3's and http.client's objects, found by duck typing: a version
    that moves them leaves both None and the stream still works, read through urllib3.
    """
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    if fp is None or not hasattr(fp, "read1"):
        return None, None
    raw = getattr(fp, "raw", None)
    sock = None
    for candidate in (getattr(raw, "_sock", None), getattr(raw, "sock", None), raw):
        if candidate is not None and hasattr(candidate, "shutdown"):
            sock = candidate
            break
    if sock is not None:
        # The client's timeout would end a quiet follow stream; close() unblocks reads instead.
        with contextlib.suppress(Exception):
            sock.settimeout(None)
    return fp, sock


class LogStream:
    """One open container log stream, read in large chunks.

    `read()` returns the messages that arrived, as `(stream, payload)`: stream 1 is stdout,
    2 stderr, 3 an error the engine reports in the stream, 0 a TTY container's output (which
    has no frames: each HTTP chunk the engine sends is one message). It blocks until at least
    one message arrived and returns `[]` once the stream ended or was closed.
    `close()` may be called from any thread; it unblocks a `read()` in progress.
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        tty: bool,
        url: str,
        container_id: str,
        on_close: Callable[[LogStream], None] | None = None,
    ) -> None:
        self.tty = tty
        self.container_id = container_id
        self.reads = 0
        """Socket reads so far (with `bytes_read`, shows the stream is read in big chunks)."""
        self.bytes_read = 0
        self._response = response
        self._url = url
        self._on_close = on_close
        self._close_lock = threading.Lock()
        self._closed = False
        self._eof = False
        self._chunked = (response.headers.get("Transfer-Encoding") or "").lower() == "chunked"
        self._left: int | None = None
        """Body bytes still to come when the engine sent a Content-Length, else None."""
        length = response.headers.get("Content-Length")
        if not self._chunked and length is not None:
            with contextlib.suppress(ValueError):
                self._left = int(length)
        self._fp, self._sock = _response_reader(response)
        if self._fp is None:
            # No buffered reader to reach: let urllib3 undo the chunking.
            self._chunked = False
        self._wire = bytearray()
        self._body = bytearray()
        self._ready: list[tuple[int, bytes]] = []

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the stream now (idempotent, thread-safe); a blocked `read()` returns `[]`."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
        if self._on_close is not None:
            self._on_close(self)

    def read(self) -> list[tuple[int, bytes]]:
        """The next messages; `[]` at the end of the stream. Raises EngineError if it breaks."""
        while True:
            if self._ready:
                out, self._ready = self._ready, []
                return out
            if self._eof or self._closed:
                self.close()
                return []
            data = self._recv()
            if not data:
                self._eof = True
                if self.tty and self._body:
                    self._ready.append((0, bytes(self._body)))
                    self._body.clear()
                continue
            self.reads += 1
            self.bytes_read += len(data)
            if self._chunked:
                self._wire += data
                chunks = self._dechunk()
                if self.tty:
                    # One HTTP chunk is one log message (the engine flushes each one).
                    self._ready.extend((0, chunk) for chunk in chunks)
                else:
                    self._body += b"".join(chunks)
                    self._frames()
            elif self.tty:
                self._ready.append((0, data))  # without chunks, what arrived is one unit
            else:
                self._body += data
                self._frames()

    def _recv(self) -> bytes:
        # Podman answers a finished log with a Content-Length and keeps the connection open:
        # reading past the body would wait forever.
        size = LOG_READ_SIZE if self._left is None else min(LOG_READ_SIZE, self._left)
        if size <= 0:
            return b""
        try:
            reader = self._fp if self._fp is not None else self._response.raw
            data = reader.read1(size)
            if self._left is not None:
                self._left -= len(data)
            return data
        except Exception as exc:
            if self._closed:
                return b""
            raise EngineError(
                f"the log stream of {self.container_id[:12]} broke: {explain(exc, self._url)}"
            ) from exc

    def _dechunk(self) -> list[bytes]:
        buf = self._wire
        pos = 0
        out: list[bytes] = []
        find = buf.find
        while True:
            nl = find(b"\r\n", pos)
            if nl < 0:
                break
            try:
                size = int(buf[pos:nl].split(b";", 1)[0], 16)
            except ValueError:
                raise EngineError(
                    f"the log stream of {self.container_id[:12]} is not valid HTTP chunking"
                ) from None
            if size == 0:
                self._eof = True
                pos = len(buf)
                break
            end = nl + 2 + size
            if len(buf) < end + 2:
                break
            out.append(bytes(buf[nl + 2 : end]))
            pos = end + 2
        if pos:
            del buf[:pos]
        return out

    def _frames(self) -> None:
        buf = self._body
        n = len(buf)
        pos = 0
        ready = self._ready
        while n - pos >= 8:
            kind = buf[pos]
            if kind > 3 or buf[pos + 1] or buf[pos + 2] or buf[pos + 3]:
                # Not the multiplexed format after all: hand the rest over as raw output.
                self.tty = True
                ready.append((0, bytes(buf[pos:])))
                pos = n
                break
            end = pos + 8 + int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end > n:
                break
            ready.append((kind, bytes(buf[pos + 8 : end])))
            pos = end
        if pos:
            del buf[:pos]


# --- many stats streams on one thread ------------------------------------------------------

MUX_READ_SIZE = 64 * 1024
"""Bytes asked of a stats connection's socket per read (a reading is 2 to 4 kB)."""
MUX_OPENING_LIMIT = 1024
"""Connections whose first answer is awaited at one time. The engine answers them all at
its collector's next round, so a fleet of 1000 gets its first readings within a second or
two; the bound only keeps a larger one from opening thousands at once."""
MUX_SCAN_EVERY = 0.1
"""Seconds between two looks for one-shot readings that are due: a look goes through every
connection, so it is not taken at each of the hundreds of socket events a second."""
MUX_RETRY_AFTER = 2.0
"""Seconds before a container whose stream ended or failed is followed again."""

Address = str | tuple[str, int]
"""Where the engine listens: a unix socket's path, or a TCP host and port."""


def plain_address(url: str) -> Address | None:
    """The socket address of an engine URL that speaks plain HTTP (unix://, tcp://,
    http://), or None (TLS, a named pipe): those streams are read the SDK's way."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "unix":
        return rest if rest.startswith("/") else "/" + rest
    if scheme in ("tcp", "http"):
        host, _, port = rest.split("/", 1)[0].rpartition(":")
        if not host or not port.isdigit():
            return None
        return host.strip("[]"), int(port)
    return None


class _MuxConn:
    """One container's stats connection inside a StatsMux: its socket and parse state.

    `period` None: one stream, the engine sends a reading a second. A number: one-shot
    readings asked every `period` seconds on a kept-alive connection.
    """

    __slots__ = (
        "body",
        "chunked",
        "cid",
        "due",
        "first",
        "headers_done",
        "left",
        "out",
        "period",
        "sock",
        "waiting",
        "wire",
    )

    def __init__(self, cid: str, sock: socket.socket, period: float | None) -> None:
        self.cid = cid
        self.sock = sock
        self.period = period
        self.due = 0.0
        self.out = memoryview(b"")
        self.waiting = False
        """A request is out and its answer not complete."""
        self.first = True
        self.headers_done = False
        self.chunked = False
        self.left: int | None = None
        self.wire = bytearray()
        self.body = bytearray()


class StatsMux:
    """The stats readings of many containers, read by one thread through one selector.

    A thread per stream cost a stack, a urllib3 response and a generator each, and hundreds
    of wake-ups a second that all compete for the interpreter. Here each container has one
    non-blocking socket: the request is written by hand (plain HTTP over the engine's unix
    socket or TCP port), the chunked body undone, and only the newest complete reading of
    each container is kept, as bytes; it is decoded when someone asks (`latest`), so a
    reading that a newer one replaced before the next tick is never parsed.

    Each container is followed either by a stream (period None) or, where the engine
    answers one-shot readings (Docker API 1.41+), by one request every `period` seconds
    on a kept-alive connection: a container that idles can be read every few seconds,
    which costs the engine a fraction of the stream's reading a second.

    Thread-safe: `follow(periods, address)` from any thread says which containers to
    follow now, and how; `latest()` hands out each one's newest reading with a counter
    that grows with every new one; `close()` drops every connection (they reopen on the
    next `follow`); `stop()` ends the thread.
    """

    def __init__(self, *, url: str, api_prefix: str) -> None:
        self._url = url
        self._prefix = api_prefix.rstrip("/")
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._wanted: dict[str, float | None] = {}
        self._address: Address | None = None
        self._conns: dict[str, _MuxConn] = {}
        self._opening = 0
        self._latest: dict[str, tuple[int, bytes]] = {}
        self._seq = 0
        self._retry_at: dict[str, float] = {}
        self._drop_all = False
        self._stopped = False
        self._changed = True
        """`follow` or `close` was called since the thread last looked."""
        self._scan_at = 0.0
        self.opened = 0
        """Connections opened so far (each restart of one counts)."""
        self.requests = 0
        """Requests sent so far (streams and one-shot readings)."""
        self._thread = threading.Thread(target=self._run, name="aitop-api-stats", daemon=True)
        self._thread.start()

    def follow(self, periods: Mapping[str, float | None], address: Address) -> None:
        """Follow exactly these containers at `address`: each by a stream (None) or by a
        one-shot reading every so many seconds; new ones open, the others close."""
        with self._lock:
            self._changed = self._changed or periods != self._wanted
            self._wanted = dict(periods)
            if address != self._address:
                self._address = address
                self._drop_all = self._drop_all or bool(self._conns)
            self._latest = {c: v for c, v in self._latest.items() if c in self._wanted}
        self._wake()

    def latest(self) -> dict[str, tuple[int, bytes]]:
        """Each followed container's newest reading (a counter, the JSON bytes)."""
        with self._lock:
            return dict(self._latest)

    def close(self) -> None:
        """Drop every connection now (the engine reset): wanted ones reopen after a pause."""
        with self._lock:
            self._drop_all = self._changed = True
        self._wake()

    def stop(self) -> None:
        """End the thread and every connection."""
        with self._lock:
            self._stopped = True
            self._wanted = {}
        self._wake()
        self._thread.join(timeout=2.0)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # --- the thread

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopped:
                        break
                timeout = self._reconcile()
                for key, events in self._selector.select(timeout):
                    conn = key.data
                    if conn is None:
                        with contextlib.suppress(OSError):
                            while self._wake_r.recv(4096):
                                pass
                        continue
                    assert isinstance(conn, _MuxConn)
                    if events & selectors.EVENT_WRITE:
                        self._send(conn)
                    elif events & selectors.EVENT_READ:
                        self._recv(conn)
        finally:
            for conn in list(self._conns.values()):
                self._end(conn, retry=None)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _reconcile(self) -> float | None:
        """Open, close and ask as wanted; returns how long the selector may wait."""
        now = time.monotonic()
        with self._lock:
            changed, self._changed = self._changed, False
            retry = min(self._retry_at.values(), default=self._scan_at)
            if not changed and now < self._scan_at and now < retry:
                return max(0.0, min(self._scan_at, retry) - now)
            self._scan_at = now + MUX_SCAN_EVERY
            wanted = dict(self._wanted)
            address = self._address
            drop_all, self._drop_all = self._drop_all, False
        for conn in list(self._conns.values()):
            if drop_all or conn.cid not in wanted:
                self._end(conn, retry=now + MUX_RETRY_AFTER if drop_all else None)
            elif (wanted[conn.cid] is None) != (conn.period is None):
                self._end(conn, retry=now)  # a stream becomes polls, or the other way
            elif conn.period is not None:
                period = wanted[conn.cid]
                assert period is not None
                conn.period = period
                conn.due = min(conn.due, now + period)
        self._retry_at = {c: t for c, t in self._retry_at.items() if c in wanted and t > now}
        wait: float | None = min(self._retry_at.values(), default=None)
        if address is None:
            return None if wait is None else max(0.0, wait - now)
        for cid in sorted(wanted):
            if self._opening >= MUX_OPENING_LIMIT:
                wait = now + 0.1 if wait is None else min(wait, now + 0.1)
                break
            if cid not in self._conns and cid not in self._retry_at:
                self._open(cid, address, wanted[cid], now)
        polled = False
        for conn in self._conns.values():
            if conn.period is None or conn.waiting:
                continue
            polled = True
            if conn.due <= now:
                self._ask(conn, now)
            else:
                wait = conn.due if wait is None else min(wait, conn.due)
        if wait is not None:
            wait = max(wait, self._scan_at)  # due ones wait for the next look
        elif polled or self._opening:
            wait = self._scan_at
        return None if wait is None else max(0.0, wait - now)

    def _request(self, cid: str, one_shot: bool) -> bytes:
        query = "stream=0&one-shot=1" if one_shot else "stream=1"
        return (
            f"GET {self._prefix}/containers/{cid}/stats?{query} HTTP/1.1\r\n"
            "Host: docker\r\nUser-Agent: aitop\r\nAccept: application/json\r\n\r\n"
        ).encode()

    def _open(self, cid: str, address: Address, period: float | None, now: float) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        if not isinstance(address, str) and ":" in address[0]:
            family = socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        conn = _MuxConn(cid, sock, period)
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            sock.close()
            self._retry_at[cid] = now + MUX_RETRY_AFTER
            return
        self._conns[cid] = conn
        self._opening += 1
        self.opened += 1
        self._selector.register(sock, selectors.EVENT_WRITE, conn)
        conn.out = memoryview(self._request(cid, period is not None))
        conn.waiting = True
        conn.due = now + (period or 0.0)
        self.requests += 1

    def _ask(self, conn: _MuxConn, now: float) -> None:
        conn.out = memoryview(self._request(conn.cid, True))
        conn.waiting = True
        conn.due = now + (conn.period or 0.0)
        self.requests += 1
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _send(self, conn: _MuxConn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._end(conn, retry=time.monotonic() + MUX_RETRY_AFTER)
            return
        conn.out = conn.out[n:]
        if not conn.out:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _recv(self, conn: _MuxConn) -> None:
        try:
            data = conn.sock.recv(MUX_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = time.monotonic()
        if not data:
            # Ended: the container stopped, the engine went, or an idle connection was
            # closed between two readings (asked again when due, on a new one).
            idle = conn.period is not None and not conn.waiting
            self._end(conn, retry=max(conn.due, now) if idle else now + MUX_RETRY_AFTER)
            return
        conn.wire += data
        if not conn.headers_done and not self._headers(conn):
            return
        complete = False
        if conn.chunked:
            ok, complete = self._dechunk(conn)
            if not ok:
                self._end(conn, retry=now + MUX_RETRY_AFTER)
                return
        else:
            take = len(conn.wire) if conn.left is None else min(conn.left, len(conn.wire))
            conn.body += conn.wire[:take]
            del conn.wire[:take]
            if conn.left is not None:
                conn.left -= take
                complete = conn.left <= 0
        if conn.period is None:
            self._stream_lines(conn)
            if complete:
                self._end(conn, retry=now + MUX_RETRY_AFTER)
            return
        if complete:
            self._keep(conn, bytes(conn.body).strip())
            conn.body.clear()
            conn.wire.clear()
            conn.waiting = False
            conn.headers_done = False
            conn.chunked = False
            conn.left = None

    def _stream_lines(self, conn: _MuxConn) -> None:
        body = conn.body
        end = body.rfind(b"\n")
        if end < 0:
            return
        start = body.rfind(b"\n", 0, end) + 1
        line = bytes(body[start:end])
        del body[: end + 1]
        self._keep(conn, line)

    def _keep(self, conn: _MuxConn, line: bytes) -> None:
        if not line.strip():
            return
        with self._lock:
            if conn.cid in self._wanted:
                self._seq += 1
                self._latest[conn.cid] = (self._seq, line)

    def _headers(self, conn: _MuxConn) -> bool:
        end = conn.wire.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.wire) > 64 * 1024:
                self._end(conn, retry=time.monotonic() + MUX_RETRY_AFTER)
            return False
        head = bytes(conn.wire[:end]).decode("latin-1").split("\r\n")
        del conn.wire[: end + 4]
        conn.headers_done = True
        if conn.first:
            conn.first = False
            self._opening -= 1
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            # 404: the container went; 409: it is not running. Tried again after a pause.
            self._end(conn, retry=time.monotonic() + MUX_RETRY_AFTER)
            return False
        for header in head[1:]:
            name, _, value = header.partition(":")
            name = name.strip().lower()
            if name == "transfer-encoding" and "chunked" in value.lower():
                conn.chunked = True
            elif name == "content-length":
                with contextlib.suppress(ValueError):
                    conn.left = int(value.strip())
        return True

    def _dechunk(self, conn: _MuxConn) -> tuple[bool, bool]:
        """Undo the chunking of what arrived: (valid, the body is complete)."""
        buf = conn.wire
        pos = 0
        complete = False
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                break
            try:
                size = int(buf[pos:nl].split(b";", 1)[0], 16)
            except ValueError:
                return False, False
            if size == 0:
                if len(buf) < nl + 4:
                    break  # the last chunk's closing line is still to come
                complete = True
                pos = nl + 4
                break
            end = nl + 2 + size
            if len(buf) < end + 2:
                break
            conn.body += buf[nl + 2 : end]
            pos = end + 2
        if pos:
            del buf[:pos]
        return True, complete

    def _end(self, conn: _MuxConn, *, retry: float | None) -> None:
        if self._conns.get(conn.cid) is conn:
            del self._conns[conn.cid]
        if conn.first:
            conn.first = False
            self._opening -= 1
        with contextlib.suppress(Exception):
            self._selector.unregister(conn.sock)
        conn.sock.close()
        if retry is not None:
            self._retry_at[conn.cid] = retry
