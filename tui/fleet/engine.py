"""The one module that talks to a Docker engine (the only importer of `docker`).

It hands out the engine's plain JSON (dicts) and turns every SDK or transport failure into an
`EngineError` whose message says what is wrong and what to do, in words for the user.
Every non-streaming call has a short timeout so a slow engine cannot hang a caller for long.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.context import ContextAPI
from docker.types.daemon import CancellableStream

from tui.fleet.sanitize import safe_text

DEFAULT_URL = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 5.0
PODMAN_ROOTFUL_SOCKET = "/run/podman/podman.sock"
"""Where `podman system service` (or podman.socket) listens when run as root."""
PODMAN_COMPONENT = "Podman Engine"
"""The component name in `/version` by which Podman's Docker-compatible API is recognised."""

# Podman's compatible API names some container events as libpod does internally: it filters
# on "died" and reports a removal as "remove". Callers see Docker's names only.
_PODMAN_FILTER_EVENTS = {"die": "died", "destroy": "remove"}
_PODMAN_EVENT_ACTIONS = {"remove": "destroy", "died": "die"}
# URLs where a Podman service answered: error messages name Podman there, not Docker.
_podman_urls: set[str] = set()


class EngineError(Exception):
    """The engine cannot be used; `str()` is one line for the user.

    The message is made safe here (`safe_text`): engines echo what they were given (a
    container's command, a label) in their errors, so an error is untrusted text too.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(safe_text(message))


class ContainerGone(EngineError):
    """The container no longer exists (removed between two calls)."""


class Unsupported(EngineError):
    """The engine's API lacks what was asked (Podman has no swarm services, for instance)."""


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


class SshTunnel:
    """One `ssh -L` forward of a remote engine's socket to a local one, for an ssh:// engine.

    The docker SDK's own ssh:// support needs paramiko, or starts one `ssh ... docker system
    dial-stdio` per connection, each a session counted against the remote sshd's MaxSessions
    (10 by default). One forward carries every request, stream and log follow as channels of a
    single ssh connection, which MaxSessions does not count. The system `ssh` is used, so
    ~/.ssh/config, agents and known hosts apply; the remote socket is the URL's path, else
    /var/run/docker.sock (ssh://me@box/run/user/1000/docker.sock for a rootless engine).
    """

    REMOTE_SOCKET = "/var/run/docker.sock"
    START_TIMEOUT = 15.0

    _open: weakref.WeakSet[SshTunnel] = weakref.WeakSet()

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or ""
        self.user = parsed.username
        self.port = parsed.port
        self.remote = parsed.path if parsed.path not in ("", "/") else self.REMOTE_SOCKET
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._lock = threading.Lock()

    def argv(self, local: str) -> list[str]:
        """The ssh command line that forwards `local` to the remote engine's socket."""
        argv = ["ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
        argv += ["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return [*argv, "-L", f"{local}:{self.remote}", "--", self.host]

    def local_url(self) -> str:
        """unix:// URL of the local end, starting the forward if it is not running."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None and self._dir is not None:
                return f"unix://{self._dir}/docker.sock"
            self._stop()
            if not self.host:
                raise EngineError(f"invalid engine address {self.url!r}: use ssh://user@host")
            if shutil.which("ssh") is None:
                raise EngineError(
                    f"cannot reach {self.url}: no ssh client here (install openssh-client)"
                )
            _sweep_stale_forwards()
            self._dir = tempfile.mkdtemp(prefix=f"{_FORWARD_PREFIX}{os.getpid()}-")
            local = f"{self._dir}/docker.sock"
            err = open(f"{self._dir}/ssh.log", "wb")  # noqa: SIM115 - ssh writes while it runs
            try:
                self._proc = spawn_child(self.argv(local), stdout=err, stderr=err)
            finally:
                err.close()
            SshTunnel._open.add(self)
            deadline = time.monotonic() + self.START_TIMEOUT
            while not os.path.exists(local):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    reason = self._log_tail() or "no answer"
                    self._stop()
                    raise EngineError(f"cannot reach {self.url} over ssh: {reason}")
                time.sleep(0.02)
            return f"unix://{local}"

    def _log_tail(self) -> str:
        try:
            with open(f"{self._dir}/ssh.log", "rb") as fh:
                lines = fh.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)
        folder, self._dir = self._dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """End the forward (the next `local_url()` starts a new one)."""
        with self._lock:
            self._stop()

    @classmethod
    def close_all(cls) -> None:
        """End every forward still running (at exit: an ssh -N would outlive aitop)."""
        for tunnel in list(cls._open):
            tunnel.close()


atexit.register(SshTunnel.close_all)

_FORWARD_PREFIX = "aitop-ssh-"
"""Start of a forward's temporary directory's name; the owner's PID follows."""
_PR_SET_PDEATHSIG = 1
_libc: Any = None


def _die_with_parent(parent: int) -> None:
    """In a child between fork and exec: be sent SIGTERM when aitop ends, however it ends.

    The kernel sends the signal when the thread that forked the child exits, hence
    `spawn_child`'s one long-lived thread. If aitop is gone already, the child ends here.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aitop-spawner")
"""The one thread that starts children that must not outlive aitop (see `_die_with_parent`):
its worker lives as long as aitop, so the children's parent thread does too."""


def spawn_child(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start `argv` (stdin from /dev/null) so that it ends when aitop ends, SIGKILL included
    (on Linux: `PR_SET_PDEATHSIG`; elsewhere it ends with aitop's normal exit only)."""
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        _libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    return _spawner.submit(
        subprocess.Popen,
        list(argv),
        stdin=subprocess.DEVNULL,
        # Runs in the forked child before exec: one prctl call, no lock taken.
        preexec_fn=partial(_die_with_parent, parent),
        **kwargs,
    ).result()


def _sweep_stale_forwards() -> None:
    """Remove the temporary directories of forwards whose aitop is gone (killed: SIGKILL
    leaves no chance to clean up); run whenever a forward starts."""
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if not entry.name.startswith(_FORWARD_PREFIX) or not entry.is_dir():
                continue
            owner = entry.name[len(_FORWARD_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                shutil.rmtree(entry.path, ignore_errors=True)


def _is_podman_url(url: str) -> bool:
    return url in _podman_urls or "/podman/" in url or url.endswith("podman.sock")


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
                * (url == DEFAULT_URL)
            )
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) in (
            errno.ECONNREFUSED,
        ):
            return (
                f"the {name} at {url} refused the connection: is "
                + ("`podman system service`" if podman else "dockerd")
                + " running and listening there?"
                + _NO_PODMAN_EITHER * (url == DEFAULT_URL)
            )
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host in {url}: check --host / DOCKER_HOST"
        if isinstance(cause, requests.exceptions.Timeout | TimeoutError | socket.timeout):
            return f"the {name} at {url} did not answer within {DEFAULT_TIMEOUT:g}s"
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


class _Translate(contextlib.AbstractContextManager["_Translate"]):
    """Turn any SDK/transport failure inside the block into an EngineError."""

    def __init__(self, url: str, container: str | None = None) -> None:
        self.url = url
        self.container = container

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, EngineError):
            return
        if self.container and _container_gone(exc):
            raise ContainerGone(f"container {self.container[:12]} no longer exists") from exc
        if isinstance(exc, Exception):
            raise EngineError(explain(exc, self.url)) from exc


class Engine:
    """A connection to one Docker engine.

    Thread-safe in the way the SDK is: each call makes its own HTTP request from a pool.
    """

    def __init__(self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url, self.url_source = resolve_url(url)
        check_url(self.url)
        self.timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._streams: set[Any] = set()
        self._tunnel = SshTunnel(self.url) if self.url.startswith("ssh://") else None
        self.product = ""
        """Which engine answered: "Docker" or "Podman"; "" until the first `version()`."""
        self.product_version = ""
        """That engine's own version (Podman's, not the Docker API level it speaks)."""

    @property
    def is_local(self) -> bool:
        """True when the engine runs on this machine, so its kernel files are readable here."""
        return self.url.startswith("unix://") or self.url.startswith("npipe://")

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                with _Translate(self.url):
                    self._client = docker.DockerClient(
                        base_url=self._base_url(), timeout=self.timeout
                    )
            return self._client.api

    def _base_url(self) -> str:
        # An ssh:// engine is reached through a local forward of its socket (see SshTunnel).
        return self._tunnel.local_url() if self._tunnel is not None else self.url

    def reset(self) -> None:
        """Drop the connection pool and open streams (and an ssh forward); the next call
        reconnects."""
        with self._lock:
            client, self._client = self._client, None
            actions, self._actions_client = self._actions_client, None
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()
        for old in (client, actions):
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
        if self._tunnel is not None:
            self._tunnel.close()

    close = reset

    def version(self) -> dict[str, Any]:
        """The engine's `/version` answer; raises EngineError when it does not answer.

        It also tells Docker from Podman (`product`): Podman lists a "Podman Engine" component.
        """
        with _Translate(self.url):
            answer = self._api().version()
        for key in ("Version", "ApiVersion"):
            if key in answer:
                answer[key] = safe_text(answer[key])
        podman = next(
            (
                c
                for c in answer.get("Components") or ()
                if isinstance(c, dict) and c.get("Name") == PODMAN_COMPONENT
            ),
            None,
        )
        if podman is not None:
            _podman_urls.add(self.url)
            self.product_version = safe_text(podman.get("Version") or answer.get("Version") or "")
        else:
            _podman_urls.discard(self.url)
            self.product_version = safe_text(answer.get("Version") or "")
        self.product = "Podman" if podman is not None else "Docker"
        return answer

    @property
    def is_podman(self) -> bool:
        """True when the engine is Podman's Docker-compatible API (asks the engine once)."""
        if not self.product:
            self.version()
        return self.product == "Podman"

    @property
    def limitations(self) -> tuple[str, ...]:
        """What this engine's API lacks that aitop would otherwise show, one line each."""
        if self.product != "Podman":
            return ()
        return (
            "Podman has no swarm services (scaling works on compose and plain containers)",
            "Podman sends no health events here: health shows what the last inspect saw "
            "(its health checks run from systemd timers)",
        )

    def _podman_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Event filters in Podman's names when the engine is Podman, else unchanged."""
        out = dict(filters)
        events = out.get("event")
        if not self.is_podman or events is None:
            return out
        names = [events] if isinstance(events, str) else list(events)
        out["event"] = [_PODMAN_FILTER_EVENTS.get(n, n) for n in names]
        return out

    def container_summaries(self) -> list[dict[str, Any]]:
        """The engine's one-call listing of all containers (what `docker ps -a` shows)."""
        with _Translate(self.url):
            return self._api().containers(all=True, trunc=False)

    def container_ids(self) -> list[str]:
        """Ids of all the engine's containers, in every state."""
        return [c["Id"] for c in self.container_summaries()]

    def inspect(self, container_id: str) -> dict[str, Any]:
        """The engine's inspect data for one container; ContainerGone if it was removed."""
        with _Translate(self.url, container_id):
            return self._api().inspect_container(container_id)

    def stats_stream(self, container_id: str) -> EventStream:
        """Follow a container's stats-API readings, one a second (what `docker stats` reads;
        used only where cgroup files are not local).

        Iterate it for decoded readings; it ends when the container stops, and `close()` from
        any thread (or `reset()`) ends it at once. A one-shot call is no cheaper: Docker
        answers it at its stats collector's next round too, up to a second later.
        """
        with _Translate(self.url, container_id):
            api = self._api()
            # The SDK's stats() hands out a bare generator, which no other thread can close;
            # its events() wraps the same request in a CancellableStream, as done here.
            response = api._get(
                api._url("/containers/{0}/stats", container_id),
                params={"stream": True},
                stream=True,
            )
            api._raise_for_status(response)
            readings = CancellableStream(api._stream_helper(response, decode=True), response)
        stream = EventStream(
            _Mapped(readings, self._stats_answer), url=self.url, on_close=self._forget_stream
        )
        with self._lock:
            self._streams.add(stream)
        return stream

    def _stats_answer(self, answer: Any) -> Any:
        if self._swaps_net_stats() and isinstance(answer, dict):
            # Podman before 4.4 reports what a container sent as received and the other way
            # round (containers/podman#16618); /proc/<pid>/net/dev is the truth.
            for net in (answer.get("networks") or {}).values():
                if isinstance(net, dict):
                    net["rx_bytes"], net["tx_bytes"] = net.get("tx_bytes"), net.get("rx_bytes")
        return answer

    def _swaps_net_stats(self) -> bool:
        if self.product != "Podman":
            return False
        try:
            major, minor = (int(p) for p in self.product_version.split(".")[:2])
        except ValueError:
            return False
        return (major, minor) < (4, 4)

    def events(self, filters: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Subscribe to the engine's event stream now; iterate it to receive decoded events.

        Iteration ends (or raises EngineError) when the engine goes; `reset()` closes the
        stream from another thread.
        """
        with _Translate(self.url):
            wanted = self._podman_filters(filters or {})
            stream = self._api().events(decode=True, filters=wanted)
        with self._lock:
            self._streams.add(stream)
        return self._follow(stream)

    def _follow(self, stream: Any) -> Iterator[dict[str, Any]]:
        try:
            with _Translate(self.url):
                if self.product == "Podman":
                    yield from map(_docker_event, stream)
                else:
                    yield from stream
        finally:
            with self._lock:
                self._streams.discard(stream)
            with contextlib.suppress(Exception):
                stream.close()

    # --- used by `aitop demo` and the tests' fixtures -------------------------------------

    def has_image(self, tag: str) -> bool:
        """True when the engine holds an image with this tag."""
        with _Translate(self.url):
            try:
                self._api().inspect_image(tag)
            except docker.errors.ImageNotFound:
                return False
            return True

    def build_image(self, tag: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        """Build `tag` from an in-memory context: {path: (content, mode)}, with a Dockerfile."""
        self.check_writable(f"build image {tag}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, (content, mode) in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(content)
                info.mode = mode
                tar.addfile(info, io.BytesIO(content))
        buf.seek(0)
        with _Translate(self.url):
            for chunk in self._api().build(
                fileobj=buf, custom_context=True, tag=tag, rm=True, decode=True, timeout=120
            ):
                if "error" in chunk:
                    raise EngineError(f"building {tag} failed: {chunk['error'].strip()}")

    def run(self, image: str, command: list[str] | None = None, **kwargs: Any) -> str:
        """Create and start a detached container; returns its id."""
        self.check_writable(f"run a container of {image}")
        with _Translate(self.url):
            client = self._api()
            host_keys = {
                "mem_limit",
                "nano_cpus",
                "port_bindings",
                "restart_policy",
                "init",
                "network_mode",
                "device_requests",
                "shm_size",
                "cap_add",
                "pid_mode",
                "runtime",
            }
            host_config = client.create_host_config(
                **{k: kwargs.pop(k) for k in list(kwargs) if k in host_keys}
            )
            created = client.create_container(
                image, command=command, host_config=host_config, detach=True, **kwargs
            )
            client.start(created["Id"])
            return created["Id"]

    def remove(self, container_id: str, *, force: bool = True) -> None:
        """Remove a container (force: kill it first); a vanished one is not an error."""
        self.check_writable(f"remove {container_id[:12]}")
        with contextlib.suppress(ContainerGone), _Translate(self.url, container_id):
            self._api().remove_container(container_id, force=force, v=True)

    def ids_with_label(self, label: str) -> list[str]:
        """Ids of all containers carrying `label` (a key or `key=value`)."""
        with _Translate(self.url):
            found = self._api().containers(all=True, filters={"label": label})
            return [c["Id"] for c in found]

    # --- actions: this block is owned by the actions/scaling work; add lifecycle methods here

    read_only: bool = False
    """When True every method that would change the engine refuses before any call is made."""
    action_timeout: float = 120.0
    """Read timeout of lifecycle and scaling calls, in seconds (a stop waits its grace period)."""
    _actions_client: docker.APIClient | None = None
    _actions_base: docker.APIClient | None = None

    def check_writable(self, what: str) -> None:
        """Raise EngineError when the engine is read-only: `what` names the refused change."""
        if self.read_only:
            raise EngineError(f"read-only mode: {what} refused (aitop runs with --read-only)")

    def _actions_api(self) -> docker.APIClient:
        """A client for actions, with a long timeout: a stop may wait its grace period.

        It shares the engine's URL and API version and is replaced after `reset()`.
        """
        base = self._api()
        with self._lock:
            current = self._actions_client
            if current is not None and self._actions_base is base:
                return current
            if current is not None:
                with contextlib.suppress(Exception):
                    current.close()
            with _Translate(self.url):
                client = docker.APIClient(
                    base_url=self._base_url(),
                    version=base.api_version,
                    timeout=self.action_timeout,
                )
            self._actions_client = client
            self._actions_base = base
            return client

    def start_container(self, container_id: str) -> None:
        """Start a created or stopped container (`docker start`)."""
        self.check_writable(f"start {container_id[:12]}")
        with _Translate(self.url, container_id):
            self._actions_api().start(container_id)

    def stop_container(self, container_id: str, *, timeout: int | None = None) -> None:
        """Stop a container (`docker stop`): its stop signal, then SIGKILL after `timeout` s.

        None: the container's own stop timeout (10 s unless it was created with another).
        """
        self.check_writable(f"stop {container_id[:12]}")
        with _Translate(self.url, container_id):
            api = self._actions_api()
            if timeout is None:
                config = api.inspect_container(container_id).get("Config") or {}
                timeout = int(config.get("StopTimeout") or 10)
            api.stop(container_id, timeout=timeout)

    def restart_container(self, container_id: str, *, timeout: int | None = None) -> None:
        """Restart a container (`docker restart`), stopping it as `stop_container` does."""
        self.check_writable(f"restart {container_id[:12]}")
        with _Translate(self.url, container_id):
            api = self._actions_api()
            if timeout is None:
                config = api.inspect_container(container_id).get("Config") or {}
                timeout = int(config.get("StopTimeout") or 10)
            api.restart(container_id, timeout=timeout)

    def pause_container(self, container_id: str) -> None:
        """Freeze every process of a running container (`docker pause`)."""
        self.check_writable(f"pause {container_id[:12]}")
        with _Translate(self.url, container_id):
            self._actions_api().pause(container_id)

    def unpause_container(self, container_id: str) -> None:
        """Thaw a paused container (`docker unpause`)."""
        self.check_writable(f"unpause {container_id[:12]}")
        with _Translate(self.url, container_id):
            self._actions_api().unpause(container_id)

    def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send `signal` (a name such as "SIGTERM" or a number) to the container's main process."""
        self.check_writable(f"kill {container_id[:12]} with {signal}")
        with _Translate(self.url, container_id):
            self._actions_api().kill(container_id, signal=signal)

    def remove_container(
        self, container_id: str, *, volumes: bool = False, force: bool = False
    ) -> None:
        """Remove a container (`docker rm`); ContainerGone when it no longer exists.

        `volumes` also removes its anonymous volumes; `force` kills it first if it runs.
        """
        self.check_writable(f"remove {container_id[:12]}")
        with _Translate(self.url, container_id):
            self._actions_api().remove_container(container_id, v=volumes, force=force)

    def list_containers(self, labels: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
        """The engine's list entries (`docker ps -a`) of the containers with all `labels`.

        Each label is a key or `key=value`; no labels lists every container.
        """
        with _Translate(self.url):
            filters = {"label": list(labels)} if labels else {}
            return self._actions_api().containers(all=True, trunc=False, filters=filters)

    def create_container(
        self,
        body: Mapping[str, Any],
        *,
        name: str | None = None,
        networks: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> str:
        """Create (not start) a container from a raw `POST /containers/create` body.

        `networks` are further networks to join before it starts, `{name: {"Aliases": [...],
        "Links": [...]}}` (the engine takes one network at creation). If joining one fails, the
        new container is removed again and the error raised. Returns the new container's id.
        """
        self.check_writable(f"create {name or 'a container'}")
        with _Translate(self.url):
            api = self._actions_api()
            created = api.create_container_from_config(dict(body), name=name)
            new_id = created["Id"]
            try:
                for network, endpoint in (networks or {}).items():
                    api.connect_container_to_network(
                        new_id,
                        network,
                        aliases=list(endpoint.get("Aliases") or []) or None,
                        links=list(endpoint.get("Links") or []) or None,
                    )
            except Exception:
                with contextlib.suppress(Exception):
                    api.remove_container(new_id, v=True, force=True)
                raise
            return new_id

    def swarm_state(self) -> str:
        """This engine's swarm membership: "inactive", "active", "pending", "error", "locked"."""
        with _Translate(self.url):
            return str((self._api().info().get("Swarm") or {}).get("LocalNodeState", ""))

    def _require_swarm(self, service: str) -> None:
        if self.is_podman:
            raise Unsupported(
                f"Podman's Docker-compatible API has no swarm services (asked for {service})"
            )

    def inspect_service(self, service: str) -> dict[str, Any]:
        """The swarm's inspect data for one service (by name or id)."""
        self._require_swarm(service)
        with _Translate(self.url):
            return self._actions_api().inspect_service(service)

    def service_tasks(self, service: str) -> list[dict[str, Any]]:
        """The swarm's tasks of one service (`docker service ps`)."""
        self._require_swarm(service)
        with _Translate(self.url):
            return self._actions_api().tasks(filters={"service": service})

    def scale_service(self, service: str, replicas: int) -> None:
        """Set a replicated swarm service's replica count (`docker service scale`)."""
        self.check_writable(f"scale service {service} to {replicas}")
        self._require_swarm(service)
        with _Translate(self.url):
            api = self._actions_api()
            current = api.inspect_service(service)
            api.update_service(
                current["ID"],
                current["Version"]["Index"],
                mode={"Replicated": {"Replicas": int(replicas)}},
                fetch_current_spec=True,
            )

    # --- logs: this block is owned by the log-pane work; add log-stream methods here -------

    def container_tty(self, container_id: str) -> bool:
        """True when the container runs with a TTY: its logs are raw bytes, not 8-byte frames."""
        return bool((self.inspect(container_id).get("Config") or {}).get("Tty"))

    def open_logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        tail: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        timestamps: bool = True,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool | None = None,
    ) -> LogStream:
        """Open the engine's log stream of one container (`GET /containers/{id}/logs`).

        `tail` is the number of last lines (None: all of them); `since_ns` / `until_ns` bound
        the messages' timestamps in nanoseconds since the epoch (`since` is inclusive, at full
        nanosecond precision). `tty` says how the body is framed (None: ask the engine).
        Raises ContainerGone when the container does not exist and LogsUnavailable when the
        engine answers with an error (a logging driver that cannot be read, for instance).
        """
        if tty is None:
            tty = self.container_tty(container_id)
        params: dict[str, Any] = {
            "stdout": int(stdout),
            "stderr": int(stderr),
            "timestamps": int(timestamps),
            "follow": int(follow),
            "tail": "all" if tail is None else str(max(0, int(tail))),
        }
        if since_ns:
            params["since"] = _api_time(since_ns)
        if until_ns:
            params["until"] = _api_time(until_ns)
        with _Translate(self.url, container_id):
            api = self._api()
            response = api._get(
                api._url("/containers/{0}/logs", container_id), params=params, stream=True
            )
            try:
                api._raise_for_status(response)
            except docker.errors.NotFound:
                response.close()
                raise
            except docker.errors.APIError as exc:
                response.close()
                raise LogsUnavailable(
                    f"the engine cannot read the logs of {container_id[:12]}: "
                    f"{exc.explanation or exc}"
                ) from exc
        stream = LogStream(
            response,
            tty=tty,
            url=self.url,
            container_id=container_id,
            on_close=self._forget_stream,
        )
        with self._lock:
            self._streams.add(stream)
        return stream

    def container_events(self, container_ids: list[str] | tuple[str, ...]) -> EventStream:
        """Subscribe to the start, die, oom and destroy events of some containers, from now.

        Iterate the result for decoded events; `close()` from any thread ends the iteration.
        """
        filters = {
            "type": ["container"],
            "container": list(container_ids),
            "event": ["start", "die", "oom", "destroy"],
        }
        with _Translate(self.url):
            stream = self._api().events(decode=True, filters=self._podman_filters(filters))
            if self.product == "Podman":
                stream = _Mapped(stream, _docker_event)
        events = EventStream(stream, url=self.url, on_close=self._forget_stream)
        with self._lock:
            self._streams.add(events)
        return events

    def _forget_stream(self, stream: Any) -> None:
        with self._lock:
            self._streams.discard(stream)


def _docker_event(event: Any) -> Any:
    """A Podman event under Docker's action names (Podman says "remove" for "destroy")."""
    if isinstance(event, dict):
        action = event.get("Action")
        if action in _PODMAN_EVENT_ACTIONS:
            event = {**event, "Action": _PODMAN_EVENT_ACTIONS[action]}
            if event.get("status") == action:
                event["status"] = event["Action"]
    return event


class _Mapped:
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
            with _Translate(self._url):
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


class LogsUnavailable(EngineError):
    """The engine answered a logs request with an error (e.g. a logging driver it cannot read)."""


LOG_READ_SIZE = 256 * 1024
"""Bytes asked of the socket per read: large, so a flood costs few system calls."""


def _api_time(ns: int) -> str:
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
