"""Which engine to talk to: the URL from `--host`, `DOCKER_HOST`, a docker context, the default
socket or a Podman socket, and whether a URL can name an engine at all.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
from collections.abc import Mapping, Sequence

from docker.context import ContextAPI

from tui.fleet.engine.errors import EngineError
from tui.fleet.sanitize import safe_text

DEFAULT_URL = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 5.0
PODMAN_ROOTFUL_SOCKET = "/run/podman/podman.sock"
"""Where `podman system service` (or podman.socket) listens when run as root."""
PODMAN_COMPONENT = "Podman Engine"
"""The component name in `/version` by which Podman's Docker-compatible API is recognised."""


def podman_sockets(env: Mapping[str, str] | None = None, uid: int | None = None) -> list[str]:
    """Paths where a Podman API service listens by default, in the order they are tried.

    The user's own (rootless) socket, `$XDG_RUNTIME_DIR/podman/podman.sock` or
    `/run/user/<uid>/podman/podman.sock`, and the rootful `/run/podman/podman.sock`;
    root tries the rootful one first, other users their own.
    """
    env = os.environ if env is None else env
    uid = os.getuid() if uid is None else uid
    rootless = [f"/run/user/{uid}/podman/podman.sock"]
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        rootless.insert(0, os.path.join(runtime_dir, "podman", "podman.sock"))
    ordered = [PODMAN_ROOTFUL_SOCKET, *rootless] if uid == 0 else [*rootless, PODMAN_ROOTFUL_SOCKET]
    return list(dict.fromkeys(ordered))


def _socket_answers(path: str) -> bool:
    """True when something accepts connections on the unix socket at `path`.

    A connect costs microseconds and sends nothing: a missing socket, a refused connection
    (no process behind it) or a permission error all read as "does not answer".
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def resolve_url(host: str | None = None, *, podman: Sequence[str] | None = None) -> tuple[str, str]:
    """The engine URL to use and where it came from.

    Order: `--host`, then `DOCKER_HOST`, then the active docker context, then the default
    Docker socket. When that socket does not answer (missing, refused), the first Podman
    socket that does is used instead (`podman`: the paths to try, default `podman_sockets()`).
    """
    if host:
        return host, "--host"
    env = os.environ.get("DOCKER_HOST")
    if env:
        return env, "DOCKER_HOST"
    # A broken ~/.docker/config.json or context store must not stop aitop: fall through.
    with contextlib.suppress(Exception):
        ctx = ContextAPI.get_current_context()
        url = getattr(ctx, "Host", None) if ctx is not None else None
        if url and ctx.Name != "default":
            return url, f"context {ctx.Name}"
    default = DEFAULT_URL
    if default.startswith("unix://") and not _socket_answers(default[len("unix://") :]):
        for path in podman_sockets() if podman is None else podman:
            if _socket_answers(path):
                kind = "rootful" if path == PODMAN_ROOTFUL_SOCKET else "rootless"
                return f"unix://{path}", f"podman socket ({kind})"
    return default, "default"


def check_url(url: str) -> None:
    """Raise EngineError (one line) unless `url` can name an engine: no control characters,
    and for tcp:// and ssh:// a host and, when given, a port from 1 to 65535."""
    usage = "use unix:///path, tcp://host:port or ssh://user@host"
    if safe_text(url) != url:
        raise EngineError(f"invalid engine address {url!r}: it holds control characters; {usage}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("tcp", "ssh", "http", "https"):
        return
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0 or (port is None and parsed.netloc.endswith(":")):
        raise EngineError(
            f"invalid engine address {url!r}: the port must be a number from 1 to 65535"
        )
    if not parsed.hostname:
        raise EngineError(f"invalid engine address {url!r}: {usage}")


def context_url(name: str) -> str:
    """The engine URL of the docker context `name` (`docker context ls`); EngineError if none."""
    try:
        ctx = ContextAPI.get_context(name)
    except Exception as exc:  # a broken context store: say so in one line
        raise EngineError(f"cannot read docker context {name!r}: {exc}") from exc
    url = getattr(ctx, "Host", None) if ctx is not None else None
    if not url:
        raise EngineError(f"no docker context named {name!r} (see `docker context ls`)")
    return str(url)
