"""Streams from the engine: events, stats readings and container logs, each closable from any
thread; and the SDK's private request helpers, used here only, so that an SDK release that
renames them breaks this one module.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

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


def docker_event(event: Any) -> Any:
    """A Podman event under Docker's action names (Podman says "remove" for "destroy")."""
    if isinstance(event, dict):
        action = event.get("Action")
        if action in PODMAN_EVENT_ACTIONS:
            event = {**event, "Action": PODMAN_EVENT_ACTIONS[action]}
            if event.get("status") == action:
                event["status"] = event["Action"]
    return event


class Mapped:
    """A stream whose items pass through `fn` (Podman's events in Docker's names, say);
    `close()` closes the stream below."""

    def __init__(self, stream: Any, fn: Any) -> None:
        self._stream = stream
        self._fn = fn

    def __iter__(self) -> Iterator[Any]:
        return map(self._fn, self._stream)

    def close(self) -> None:
        self._stream.close()


class EventStream:
    """An engine event subscription: iterate it for events; `close()` from any thread ends it."""

    def __init__(self, stream: Any, *, url: str, on_close: Any = None) -> None:
        self._stream = stream
        self._url = url
        self._on_close = on_close
        self._close_lock = threading.Lock()
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
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


def open_stream(
    api: docker.APIClient, path: str, container_id: str, params: Mapping[str, Any]
) -> requests.Response:
    """GET a streaming endpoint of one container (`path` with `{0}` for its id); raises the
    SDK's APIError (NotFound for a missing container) and closes the response on an error."""
    response = api._get(api._url(path, container_id), params=dict(params), stream=True)
    try:
        api._raise_for_status(response)
    except BaseException:
        response.close()
        raise
    return response


def decoded_stream(api: docker.APIClient, response: requests.Response) -> CancellableStream:
    """A streaming response's JSON objects, one by one, closable from any thread (the SDK's
    own stats() hands out a bare generator, which no other thread can close)."""
    return CancellableStream(api._stream_helper(response, decode=True), response)


LOG_READ_SIZE = 256 * 1024
"""Bytes asked of the socket per read: large, so a flood costs few system calls."""


def api_time(ns: int) -> str:
    """Nanoseconds since the epoch as the engine's `seconds.nanoseconds` query value."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _response_reader(response: Any) -> tuple[Any, Any]:
    """The buffered reader under an HTTP response and the socket to shut down to unblock it."""
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
        response: Any,
        *,
        tty: bool,
        url: str,
        container_id: str,
        on_close: Any = None,
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
        if not self._chunked:
            with contextlib.suppress(TypeError, ValueError):
                self._left = int(response.headers.get("Content-Length"))
        self._fp, self._sock = _response_reader(response)
        if self._fp is None:
            # No buffered reader to reach: let urllib3 undo the chunking.
            self._chunked = False
        self._wire = bytearray()
        self._body = bytearray()
        self._ready: list[tuple[int, bytes]] = []

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

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
