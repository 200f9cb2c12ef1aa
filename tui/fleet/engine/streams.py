"""Streams from the engine: events, stats readings and container logs, each closable from any
thread; and the SDK's private request helpers, used here only, so that an SDK release that
renames them breaks this one module.
"""

from __future__ import annotations

import contextlib
import socket
import threading
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
