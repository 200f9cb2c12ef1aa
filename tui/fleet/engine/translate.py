"""Turning SDK and transport failures into `EngineError`s that say what is wrong and what to do."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from types import TracebackType

import docker
import docker.errors
import requests
import requests.exceptions

from tui.fleet.engine import urls
from tui.fleet.engine.errors import ContainerGone, EngineError

# URLs where a Podman service answered: error messages name Podman there, not Docker.
PODMAN_URLS: set[str] = set()


def _is_podman_url(url: str) -> bool:
    return url in PODMAN_URLS or "/podman/" in url or url.endswith("podman.sock")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo.extend([cur.__cause__, cur.__context__])
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))


def explain(exc: BaseException, url: str) -> str:
    """One line that says why `url` cannot be used and what to do about it."""
    text = " ".join(str(c) for c in _causes(exc))
    path = url[len("unix://") :] if url.startswith("unix://") else ""
    podman = _is_podman_url(url)
    name = "Podman service" if podman else "Docker engine"
    for cause in _causes(exc):
        if isinstance(cause, PermissionError) or getattr(cause, "errno", None) == errno.EACCES:
            if podman:
                return (
                    f"permission denied on {path or url}: a rootful Podman socket needs root; "
                    "use your own (systemctl --user start podman.socket) or run aitop with sudo"
                )
            return (
                f"permission denied on {path or url}: add your user to the docker group "
                "(sudo usermod -aG docker $USER, then log in again) or run aitop with sudo"
            )
        if isinstance(cause, FileNotFoundError) or getattr(cause, "errno", None) == errno.ENOENT:
            if podman:
                return (
                    f"no Podman service at {url}: the socket does not exist. Start it with "
                    "`podman system service --time=0` (or systemctl start podman.socket)"
                )
            return (
                f"no Docker engine at {url}: the socket does not exist. Is dockerd running "
                "(sudo systemctl start docker)? Point aitop elsewhere with --host or DOCKER_HOST"
                + _NO_PODMAN_EITHER
                * (url == urls.DEFAULT_URL)
            )
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) in (
            errno.ECONNREFUSED,
        ):
            return (
                f"the {name} at {url} refused the connection: is "
                + ("`podman system service`" if podman else "dockerd")
                + " running and listening there?"
                + _NO_PODMAN_EITHER * (url == urls.DEFAULT_URL)
            )
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host in {url}: check --host / DOCKER_HOST"
        if isinstance(cause, requests.exceptions.Timeout | TimeoutError | socket.timeout):
            return f"the {name} at {url} did not answer within {urls.DEFAULT_TIMEOUT:g}s"
    if "Invalid bind address" in text or ("invalid" in text.lower() and "url" in text.lower()):
        return (
            f"invalid engine address {url!r}: use unix:///path, tcp://host:port or ssh://user@host"
        )
    if "Connection aborted" in text or "Connection reset" in text or "RemoteDisconnected" in text:
        return f"the {name} at {url} closed the connection: it may be restarting"
    if isinstance(exc, docker.errors.APIError):
        return f"the {name} at {url} answered: {exc.explanation or exc}"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot use the {name} at {url}: {first}"


_NO_PODMAN_EITHER = (
    " (no Podman socket answers either: `podman system service --time=0` starts one)"
)


def _container_gone(exc: BaseException) -> bool:
    """Whether an answer about one container says that it no longer exists."""
    if isinstance(exc, docker.errors.NotFound):
        return True
    # Podman 4 answers 500 "... does not exist in database: no such container" to an inspect
    # that meets a removal half-way (seen on a busy machine, right after a forced remove).
    return isinstance(exc, docker.errors.APIError) and "no such container" in str(
        exc.explanation or ""
    )


class Translate(contextlib.AbstractContextManager["Translate"]):
    """Turn any SDK/transport failure inside the block into an EngineError."""

    def __init__(self, url: str, container: str | None = None) -> None:
        self.url = url
        self.container = container

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, EngineError):
            return
        if self.container and _container_gone(exc):
            raise ContainerGone(f"container {self.container[:12]} no longer exists") from exc
        if isinstance(exc, Exception):
            raise EngineError(explain(exc, self.url)) from exc
