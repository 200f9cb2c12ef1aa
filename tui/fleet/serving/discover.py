"""Which model server a container runs, and where aitop can reach it.

From the engine's plain inspect data (and the container's host PID), without configuration:

1. **Which server**: the words of its command line (`vllm serve`, `python -m
   sglang.launch_server`, `text-generation-launcher`, ...), else its image's repository path.
   The metrics page confirms it later (`servers.kind_of_page`); a container labelled
   `aitop.metrics-port` is scraped even when neither says, and its page names the server.
2. **Which port**: labels first (`aitop.metrics-port`, `aitop.metrics-path`,
   `prometheus.io/port`, `prometheus.io/path`), then the server's own flags and environment
   (`--port`, `PORT`, `LLAMA_ARG_PORT`, `OLLAMA_HOST`, Triton's `--http-port` and
   `--metrics-port`, ...), then the published and the exposed ports, then the sockets its
   network namespace listens on (`/proc/<pid>/net/tcp` and `tcp6`, state 0A), then the
   server's default port.
3. **Which address**: the container's IP on its network; else a published host port; for a
   server listening on 127.0.0.1 inside the container, the container's own network namespace
   (entered by the scraper, which needs root), else an `unreachable` target that says how to
   publish it.

A metrics path label that ends with the server's own metrics path sets a prefix for all its
routes (`/llm/metrics` -> `/llm/health`): a server behind a path-prefixing proxy.

Everything read here was written by an image author: every word and value is bounded before it
is looked at, and ports and paths are validated before they are used.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.fleet.detect import env_map, image_path
from tui.fleet.inventory import parse_time
from tui.fleet.serving.servers import KINDS, ServerKind

PORT_LABELS = ("aitop.metrics-port", "prometheus.io/port")
PATH_LABELS = ("aitop.metrics-path", "prometheus.io/path")

MAX_WORD_CHARS = 4096
"""Longest command word looked at (shlex time grows fast with the length)."""
MAX_WORDS = 256
"""Words of a command line looked at."""
MAX_PATH_CHARS = 256
"""Longest metrics path a label may give."""
MAX_SOCKET_LINES = 4096
"""Lines of /proc/<pid>/net/tcp{,6} read (a host-network container sees the host's)."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "ip6-localhost"})
ANY_HOSTS = frozenset({"", "0.0.0.0", "::", "*", "[::]"})
_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Route:
    """Where one port of a server is reached: an address, or 127.0.0.1 in a namespace."""

    host: str
    port: int
    netns_pid: int = 0
    """Non-zero: connect from inside the network namespace of this host PID."""

    def url(self, path: str = "") -> str:
        """The URL of `path` on this route (as the server itself would see it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


@dataclass(frozen=True)
class Target:
    """A container's server as discovered: its kind, routes and paths, or why it is unreachable."""

    kind: ServerKind | None
    """None: not recognised, but labelled with a metrics port (the page will say)."""
    api: Route | None
    """The server's own port: health, info routes, Ollama's API."""
    metrics: Route | None
    """The metrics page's port (Triton: its own port; else the API port)."""
    metrics_path: str = "/metrics"
    prefix: str = ""
    """Put before every route's path (a server behind a path-prefixing proxy)."""
    metrics_hint: str = ""
    """What turns metrics on, for this container's command line."""
    unreachable: str = ""
    """Why aitop cannot reach it ("" when it can); then `api` and `metrics` are None."""
    found_by: str = ""
    """How the port was found: label, flag, env, published, exposed, listening, default."""
    started_at: float | None = None
    """When the container started (seconds since the epoch)."""

    @property
    def pinned(self) -> bool:
        """True when the port was given (label, flag, env) rather than guessed."""
        return self.found_by in ("label", "flag", "env")


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket of a network namespace."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Only reachable from inside the namespace."""
        return self.host.startswith("127.") or self.host == "::1"


# --- the command line -------------------------------------------------------------------------


def command_words(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """The container's entrypoint and command as words, shell strings split (bounded)."""
    config = attrs.get("Config") or {}
    words: list[str] = []
    for part in (config.get("Entrypoint"), config.get("Cmd")):
        if isinstance(part, str):
            words.extend(part[:MAX_WORD_CHARS].split())
        elif isinstance(part, list):
            words.extend(str(w)[:MAX_WORD_CHARS] for w in part[:MAX_WORDS])
    out: list[str] = []
    for word in words[:MAX_WORDS]:
        # `sh -c "vllm serve X --port 9000"` hides the real command in one word.
        if " " in word:
            try:
                out.extend(shlex.split(word))
            except ValueError:
                out.extend(word.split())
        else:
            out.append(word)
    return tuple(out[:MAX_WORDS])


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _matches(words: Sequence[str], pattern: tuple[str, ...]) -> bool:
    n = len(pattern)
    for i in range(len(words) - n + 1):
        if _basename(words[i]) == pattern[0] and tuple(words[i + 1 : i + n]) == pattern[1:]:
            return True
    return False


def recognise(attrs: Mapping[str, Any], words: Sequence[str] | None = None) -> ServerKind | None:
    """The server a container runs, by its command line, else by its image; None: no server."""
    words = command_words(attrs) if words is None else words
    for kind in KINDS:
        if any(_matches(words, pattern) for pattern in kind.commands):
            return kind
    config = attrs.get("Config") or {}
    path = image_path(str(config.get("Image") or attrs.get("Image") or ""))
    for kind in KINDS:
        if any(part in path for part in kind.images):
            return kind
    return None


def flag_value(words: Sequence[str], flags: Iterable[str]) -> str | None:
    """The value of the last of `flags` on the command line (`--port 9000`, `--port=9000`)."""
    found: str | None = None
    wanted = tuple(flags)
    for i, word in enumerate(words):
        for flag in wanted:
            if word == flag and i + 1 < len(words):
                found = words[i + 1]
            elif word.startswith(flag + "="):
                found = word[len(flag) + 1 :]
    return found


def parse_port(value: object) -> int | None:
    """A TCP port from text (`8000`, `8000/tcp`), or None when it is not one."""
    text = str(value).strip().split("/", 1)[0]
    if not text.isdigit() or len(text) > 5:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def split_hostport(value: str) -> tuple[str, int | None]:
    """`OLLAMA_HOST`-style `[scheme://]host[:port][/path]` -> (host, port)."""
    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, parse_port(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, parse_port(port)
    return text, None


def valid_path(value: object) -> str | None:
    """A metrics path from a label, when it is a plain absolute path."""
    text = str(value)
    if not text.startswith("/") or len(text) > MAX_PATH_CHARS:
        return None
    if not text.isascii() or not all(c.isprintable() and c not in " #?" for c in text):
        return None
    return text


# --- sockets ----------------------------------------------------------------------------------


def _hex_ipv4(text: str) -> str:
    raw = bytes.fromhex(text)
    return ".".join(str(b) for b in reversed(raw))


def _hex_ipv6(text: str) -> str:
    # Four 32-bit words, each in host (little-endian) order.
    raw = b"".join(bytes.fromhex(text[i : i + 8])[::-1] for i in range(0, 32, 8))
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in raw[12:])
    groups = [raw[i : i + 2].hex() for i in range(0, 16, 2)]
    text6 = ":".join(g.lstrip("0") or "0" for g in groups)
    return "::" if text6 == "0:0:0:0:0:0:0:0" else ("::1" if text6 == "0:0:0:0:0:0:0:1" else text6)


def parse_proc_net_tcp(text: str, *, ipv6: bool) -> list[Listener]:
    """Listening sockets (state 0A) of a `/proc/<pid>/net/tcp` or `tcp6` table."""
    out: list[Listener] = []
    for line in text.splitlines()[1 : MAX_SOCKET_LINES + 1]:
        fields = line.split(None, 4)
        if len(fields) < 4 or fields[3] != _TCP_LISTEN:
            continue
        address, _, port_hex = fields[1].partition(":")
        try:
            host = _hex_ipv6(address) if ipv6 else _hex_ipv4(address)
            port = int(port_hex, 16)
        except ValueError:
            continue
        out.append(Listener(host, port))
    return out


def listening(pid: int, proc: Path = Path("/proc")) -> list[Listener]:
    """The TCP sockets listening in the network namespace of host PID `pid` ([] unknown)."""
    if pid <= 0:
        return []
    out: list[Listener] = []
    for name, ipv6 in (("tcp", False), ("tcp6", True)):
        try:
            with open(proc / str(pid) / "net" / name, encoding="ascii", errors="replace") as f:
                text = f.read(MAX_SOCKET_LINES * 160)
        except OSError:
            continue
        out.extend(parse_proc_net_tcp(text, ipv6=ipv6))
    return out


# --- ports and addresses ----------------------------------------------------------------------


def published_ports(attrs: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """Container TCP port -> (host IP, host port) for every published port."""
    settings = attrs.get("NetworkSettings") or {}
    out: dict[int, tuple[str, int]] = {}
    for key, bindings in (settings.get("Ports") or {}).items():
        port = parse_port(key)
        if port is None or not str(key).endswith("/tcp") or not bindings:
            continue
        for binding in bindings:
            host_port = parse_port((binding or {}).get("HostPort", ""))
            if host_port is not None:
                out.setdefault(port, (str(binding.get("HostIp") or ""), host_port))
    return out


def exposed_ports(attrs: Mapping[str, Any]) -> list[int]:
    """Container TCP ports the image or the run exposed."""
    config = attrs.get("Config") or {}
    ports = {
        p
        for key in (config.get("ExposedPorts") or {})
        if str(key).endswith("/tcp") and (p := parse_port(key)) is not None
    }
    return sorted(ports)


def container_ip(attrs: Mapping[str, Any]) -> str:
    """The container's IP address on its (first) network, "" when it has none."""
    settings = attrs.get("NetworkSettings") or {}
    for network in (settings.get("Networks") or {}).values():
        ip = (network or {}).get("IPAddress")
        if ip:
            return str(ip)
    return str(settings.get("IPAddress") or "")


def _choose(candidates: Sequence[int], default: int, listening_ports: set[int]) -> int | None:
    if not candidates:
        return None
    if default in candidates:
        return default
    if len(candidates) == 1:
        return candidates[0]
    live = [p for p in candidates if p in listening_ports]
    return min(live) if live else min(candidates)


@dataclass(frozen=True)
class _Found:
    port: int
    by: str


def _api_port(
    kind: ServerKind | None,
    attrs: Mapping[str, Any],
    words: Sequence[str],
    env: Mapping[str, str],
    label_port: int | None,
    listeners: Sequence[Listener],
) -> _Found | None:
    if kind is None:
        return _Found(label_port, "label") if label_port is not None else None
    flagged = parse_port(flag_value(words, kind.port_flags) or "")
    if flagged is not None:
        return _Found(flagged, "flag")
    for name in kind.port_env:
        port = parse_port(env.get(name, ""))
        if port is not None:
            return _Found(port, "env")
    for name in kind.hostport_env:
        _, port = split_hostport(env.get(name, ""))
        if port is not None:
            return _Found(port, "env")
    if label_port is not None and kind.metrics_port is None:
        return _Found(label_port, "label")
    live = {listener.port for listener in listeners}
    published = sorted(published_ports(attrs))
    if (port := _choose(published, kind.default_port, live)) is not None:
        return _Found(port, "published")
    if (port := _choose(exposed_ports(attrs), kind.default_port, live)) is not None:
        return _Found(port, "exposed")
    if kind.default_port in live:
        return _Found(kind.default_port, "listening")
    others = sorted(live - {kind.metrics_port} if kind.metrics_port else live)
    if len(others) == 1:
        return _Found(others[0], "listening")
    return _Found(kind.default_port, "default")


def _bound_host(kind: ServerKind | None, words: Sequence[str], env: Mapping[str, str]) -> str:
    """Where the command line says the server binds ("" when it does not say)."""
    if kind is None:
        return ""
    host = flag_value(words, kind.host_flags)
    if host is not None:
        return host
    for name in kind.host_env:
        if env.get(name):
            return env[name]
    for name in kind.hostport_env:
        if env.get(name):
            return split_hostport(env[name])[0]
    return kind.default_host


def _loopback_only(port: int, listeners: Sequence[Listener], bound: str) -> bool:
    """True when the server on `port` is reachable only from inside its namespace."""
    on_port = [listener for listener in listeners if listener.port == port]
    if on_port:
        return all(listener.loopback for listener in on_port)
    return bound.strip("[]") in LOOPBACK_HOSTS or bound.startswith("127.")


def loopback_advice(kind: ServerKind | None, port: int) -> str:
    """What to tell a user whose server listens on 127.0.0.1 inside its container."""
    flag = kind.host_hint if kind is not None else "the server's host option set to 0.0.0.0"
    return (
        f"listens on 127.0.0.1:{port} inside the container: start it with {flag} "
        f"(and publish it: -p {port}:{port}), or run aitop as root to read it there"
    )


def _route(
    port: int,
    *,
    kind: ServerKind | None,
    attrs: Mapping[str, Any],
    pid: int,
    listeners: Sequence[Listener],
    bound: str,
    may_enter_netns: bool,
    remote_host: str | None,
) -> Route | str:
    """The route to one port of the container, or why there is none."""
    published = published_ports(attrs).get(port)
    if remote_host is not None:
        if published is not None:
            return Route(remote_host, published[1])
        return f"port {port} is not published, and the engine is remote: publish it (-p {port})"
    network_mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
    if network_mode == "host":
        return Route("127.0.0.1", port)
    in_namespace = Route("127.0.0.1", port, netns_pid=pid) if may_enter_netns and pid else None
    if _loopback_only(port, listeners, bound):
        return in_namespace or loopback_advice(kind, port)
    ip = container_ip(attrs)
    if ip:
        return Route(ip, port)
    if published is not None:
        host_ip, host_port = published
        return Route("127.0.0.1" if host_ip in ANY_HOSTS else host_ip, host_port)
    if in_namespace is not None:
        return in_namespace
    mode = network_mode or "none"
    return (
        f"the container has no address aitop can reach (network {mode}): "
        f"publish port {port} (-p {port}), or run aitop as root to read it inside the container"
    )


def _label(labels: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = labels.get(name)
        if value is not None:
            # One past the longest path allowed: a longer one is refused, not cut to fit.
            return str(value)[: MAX_PATH_CHARS + 1]
    return None


def discovery_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a container's inspect data that `discover` reads, and only those.

    The pool keeps this for every running container, to discover again later: the whole
    inspect document (mounts, the full host config, graph driver data) is about 20 KB of
    Python objects a container, 10 MB at 500 containers; these parts are a few hundred bytes
    (its environment and labels aside).
    """
    config = attrs.get("Config") or {}
    settings = attrs.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    return {
        "Id": attrs.get("Id"),
        "Image": attrs.get("Image"),
        "Config": {
            key: config.get(key)
            for key in ("Entrypoint", "Cmd", "Image", "Labels", "Env", "ExposedPorts")
        },
        "State": {"StartedAt": (attrs.get("State") or {}).get("StartedAt")},
        "NetworkSettings": {
            "Ports": settings.get("Ports"),
            "IPAddress": settings.get("IPAddress"),
            "Networks": {
                name: {"IPAddress": (network or {}).get("IPAddress")}
                for name, network in networks.items()
            },
        },
        "HostConfig": {"NetworkMode": (attrs.get("HostConfig") or {}).get("NetworkMode")},
    }


def discover(
    attrs: Mapping[str, Any],
    *,
    pid: int = 0,
    may_enter_netns: bool = False,
    remote_host: str | None = None,
    proc: Path = Path("/proc"),
) -> Target | None:
    """The model server a container runs and how to reach it; None when it runs none.

    `pid` is the container's main process on the host (0: not running or not known): it
    locates the container's network namespace (its listening sockets, and the way in for a
    server bound to 127.0.0.1 when `may_enter_netns`). `remote_host`: the engine is not on
    this machine; only published ports, on that host, can be reached.
    """
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    label_port = parse_port(_label(labels, PORT_LABELS) or "")
    raw_path = _label(labels, PATH_LABELS)
    label_path = valid_path(raw_path) if raw_path is not None else None
    words = command_words(attrs)
    kind = recognise(attrs, words)
    if kind is None and label_port is None:
        return None
    started_at = parse_time((attrs.get("State") or {}).get("StartedAt"))
    env = env_map(config.get("Env") if isinstance(config.get("Env"), list) else None)
    listeners = [] if remote_host is not None else listening(pid, proc)
    api = _api_port(kind, attrs, words, env, label_port, listeners)
    if api is None:
        return None
    metrics_port, found_by = api.port, api.by
    if label_port is not None:
        metrics_port, found_by = label_port, "label"
    elif kind is not None and kind.metrics_port is not None:
        flagged = parse_port(flag_value(words, kind.metrics_port_flags) or "")
        metrics_port = flagged if flagged is not None else kind.metrics_port
    prefix, metrics_path = "", (kind.metrics_path if kind is not None else None) or "/metrics"
    if label_path is not None:
        own = kind.metrics_path if kind is not None and kind.metrics_path else "/metrics"
        if label_path.endswith(own) and label_path != own:
            prefix = label_path[: -len(own)]
        else:
            metrics_path = label_path
    bound = _bound_host(kind, words, env)
    routes = [
        _route(
            port,
            kind=kind,
            attrs=attrs,
            pid=pid,
            listeners=listeners,
            bound=bound,
            may_enter_netns=may_enter_netns,
            remote_host=remote_host,
        )
        for port in (api.port, metrics_port)
    ]
    hint = kind.metrics_hint(tuple(words)) if kind is not None else ""
    api_route, metrics_route = routes
    why = next((r for r in (metrics_route, api_route) if isinstance(r, str)), "")
    if why:
        return Target(kind, None, None, metrics_path, prefix, hint, why, found_by, started_at)
    assert isinstance(api_route, Route) and isinstance(metrics_route, Route)
    return Target(
        kind, api_route, metrics_route, metrics_path, prefix, hint, "", found_by, started_at
    )
