"""A connection to one Docker (or Podman) engine: the engine's plain JSON (dicts) out, every
failure an `EngineError`. Every non-streaming call has a short timeout so a slow engine cannot
hang a caller for long.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tarfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import docker.errors
from docker.types.daemon import CancellableStream

from tui.fleet.engine.errors import ContainerGone, EngineError, LogsUnavailable, Unsupported
from tui.fleet.engine.ssh import SshTunnel
from tui.fleet.engine.streams import (
    PODMAN_FILTER_EVENTS,
    Address,
    Closable,
    ClosableIterable,
    EventStream,
    Json,
    LogStream,
    Mapped,
    StatsMux,
    api_time,
    decoded_stream,
    docker_event,
    open_stream,
    plain_address,
)
from tui.fleet.engine.translate import PODMAN_URLS, Translate
from tui.fleet.engine.urls import DEFAULT_TIMEOUT, PODMAN_COMPONENT, check_url, resolve_url
from tui.fleet.sanitize import safe_text


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
        self._streams: set[Closable] = set()
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
                with Translate(self.url):
                    self._client = docker.DockerClient(
                        base_url=self._base_url(),
                        # The SDK hands it to requests, which takes seconds as a float (the
                        # stubs say int).
                        timeout=self.timeout,  # type: ignore[arg-type]
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
        with Translate(self.url):
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
            PODMAN_URLS.add(self.url)
            self.product_version = safe_text(podman.get("Version") or answer.get("Version") or "")
        else:
            PODMAN_URLS.discard(self.url)
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
        out["event"] = [PODMAN_FILTER_EVENTS.get(n, n) for n in names]
        return out

    def container_summaries(self) -> list[dict[str, Any]]:
        """The engine's one-call listing of all containers (what `docker ps -a` shows)."""
        with Translate(self.url):
            return self._api().containers(all=True, trunc=False)

    def inspect(self, container_id: str) -> dict[str, Any]:
        """The engine's inspect data for one container; ContainerGone if it was removed."""
        with Translate(self.url, container_id):
            return self._api().inspect_container(container_id)

    def stats_stream(self, container_id: str) -> EventStream:
        """Follow a container's stats-API readings, one a second (what `docker stats` reads;
        used only where cgroup files are not local).

        Iterate it for decoded readings; it ends when the container stops, and `close()` from
        any thread (or `reset()`) ends it at once. A one-shot call is no cheaper: Docker
        answers it at its stats collector's next round too, up to a second later.
        """
        with Translate(self.url, container_id):
            api = self._api()
            # The SDK's stats() hands out a bare generator, which no other thread can close;
            # its events() wraps the same request in a CancellableStream, as done here.
            response = open_stream(api, "/containers/{0}/stats", container_id, {"stream": True})
            readings = decoded_stream(api, response)
        stream = EventStream(
            Mapped(readings, self._stats_answer), url=self.url, on_close=self._forget_stream
        )
        with self._lock:
            self._streams.add(stream)
        return stream

    def stats_mux(self) -> StatsMux | None:
        """A reader of many containers' stats streams on one thread (`StatsMux`), for an
        engine reached over plain HTTP (unix socket, TCP, an ssh forward); None over TLS,
        whose streams `stats_stream` reads one thread each."""
        with Translate(self.url):
            address = plain_address(self._base_url())
            if address is None:
                return None
            version = self._api().api_version
        return StatsMux(url=self.url, api_prefix=f"/v{version}")

    def stats_one_shot(self) -> bool:
        """True when the engine answers a one-shot stats reading at once (Docker's API 1.41,
        engine 20.10, and later); elsewhere a single reading waits for two collector rounds,
        so only streams are worth it."""
        with Translate(self.url):
            version = str(self._api().api_version)
        if self.is_podman:
            return False
        try:
            major, minor = (int(p) for p in version.split(".")[:2])
        except ValueError:
            return False
        return (major, minor) >= (1, 41)

    def stats_address(self) -> Address | None:
        """Where `stats_mux` connects now (an ssh forward moves when it restarts)."""
        with Translate(self.url):
            return plain_address(self._base_url())

    def decode_stats(self, line: bytes) -> Json:
        """One stats reading from a `StatsMux`, decoded as `stats_stream` hands them out."""
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError("a stats reading is a JSON object")
        return self._stats_answer(answer)

    def _stats_answer(self, answer: Json) -> Json:
        if self._swaps_net_stats() and isinstance(answer, dict):  # the engine's JSON: check
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

    def events(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Subscribe to the engine's event stream now; iterate it to receive decoded events.

        With `since` (seconds since the epoch) the engine first replays what it kept from
        then on; with `until` the stream ends by itself at that time (the history only).
        Iteration ends (or raises EngineError) when the engine goes; `reset()` closes the
        stream from another thread.
        """
        with Translate(self.url):
            wanted = self._podman_filters(filters or {})
            # Whole seconds (what docker-py takes), widened: the history covers the window.
            stream = self._api().events(
                decode=True,
                filters=wanted,
                since=None if since is None else math.floor(since),
                until=None if until is None else math.ceil(until),
            )
        with self._lock:
            self._streams.add(stream)
        return self._follow(stream)

    def _follow(self, stream: CancellableStream[Json]) -> Iterator[Json]:
        try:
            with Translate(self.url):
                if self.product == "Podman":
                    yield from map(docker_event, stream)
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
        with Translate(self.url):
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
        with Translate(self.url):
            for chunk in self._api().build(
                fileobj=buf, custom_context=True, tag=tag, rm=True, decode=True, timeout=120
            ):
                if "error" in chunk:
                    raise EngineError(f"building {tag} failed: {chunk['error'].strip()}")

    def run(self, image: str, command: list[str] | None = None, **kwargs: Any) -> str:
        """Create and start a detached container; returns its id."""
        self.check_writable(f"run a container of {image}")
        with Translate(self.url):
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
        with contextlib.suppress(ContainerGone), Translate(self.url, container_id):
            self._api().remove_container(container_id, force=force, v=True)

    def ids_with_label(self, label: str) -> list[str]:
        """Ids of all containers carrying `label` (a key or `key=value`)."""
        with Translate(self.url):
            found = self._api().containers(all=True, filters={"label": label})
            return [c["Id"] for c in found]

    # --- changes: lifecycle, containers created for scaling, swarm services ---------------

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
            with Translate(self.url):
                client = docker.APIClient(
                    base_url=self._base_url(),
                    version=base.api_version,
                    timeout=self.action_timeout,  # type: ignore[arg-type]  # float seconds, as above
                )
            self._actions_client = client
            self._actions_base = base
            return client

    def start_container(self, container_id: str) -> None:
        """Start a created or stopped container (`docker start`)."""
        self.check_writable(f"start {container_id[:12]}")
        with Translate(self.url, container_id):
            self._actions_api().start(container_id)

    def stop_container(self, container_id: str, *, timeout: int | None = None) -> None:
        """Stop a container (`docker stop`): its stop signal, then SIGKILL after `timeout` s.

        None: the container's own stop timeout (10 s unless it was created with another).
        """
        self.check_writable(f"stop {container_id[:12]}")
        with Translate(self.url, container_id):
            api = self._actions_api()
            if timeout is None:
                config = api.inspect_container(container_id).get("Config") or {}
                timeout = int(config.get("StopTimeout") or 10)
            api.stop(container_id, timeout=timeout)

    def restart_container(self, container_id: str, *, timeout: int | None = None) -> None:
        """Restart a container (`docker restart`), stopping it as `stop_container` does."""
        self.check_writable(f"restart {container_id[:12]}")
        with Translate(self.url, container_id):
            api = self._actions_api()
            if timeout is None:
                config = api.inspect_container(container_id).get("Config") or {}
                timeout = int(config.get("StopTimeout") or 10)
            api.restart(container_id, timeout=timeout)

    def pause_container(self, container_id: str) -> None:
        """Freeze every process of a running container (`docker pause`)."""
        self.check_writable(f"pause {container_id[:12]}")
        with Translate(self.url, container_id):
            self._actions_api().pause(container_id)

    def unpause_container(self, container_id: str) -> None:
        """Thaw a paused container (`docker unpause`)."""
        self.check_writable(f"unpause {container_id[:12]}")
        with Translate(self.url, container_id):
            self._actions_api().unpause(container_id)

    def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send `signal` (a name such as "SIGTERM" or a number) to the container's main process."""
        self.check_writable(f"kill {container_id[:12]} with {signal}")
        with Translate(self.url, container_id):
            self._actions_api().kill(container_id, signal=signal)

    def remove_container(
        self, container_id: str, *, volumes: bool = False, force: bool = False
    ) -> None:
        """Remove a container (`docker rm`); ContainerGone when it no longer exists.

        `volumes` also removes its anonymous volumes; `force` kills it first if it runs.
        """
        self.check_writable(f"remove {container_id[:12]}")
        with Translate(self.url, container_id):
            self._actions_api().remove_container(container_id, v=volumes, force=force)

    def list_containers(self, labels: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
        """The engine's list entries (`docker ps -a`) of the containers with all `labels`.

        Each label is a key or `key=value`; no labels lists every container.
        """
        with Translate(self.url):
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
        with Translate(self.url):
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

    def _require_swarm(self, service: str) -> None:
        if self.is_podman:
            raise Unsupported(
                f"Podman's Docker-compatible API has no swarm services (asked for {service})"
            )

    def inspect_service(self, service: str) -> dict[str, Any]:
        """The swarm's inspect data for one service (by name or id)."""
        self._require_swarm(service)
        with Translate(self.url):
            return self._actions_api().inspect_service(service)

    def service_tasks(self, service: str) -> list[dict[str, Any]]:
        """The swarm's tasks of one service (`docker service ps`)."""
        self._require_swarm(service)
        with Translate(self.url):
            return self._actions_api().tasks(filters={"service": service})

    def scale_service(self, service: str, replicas: int) -> None:
        """Set a replicated swarm service's replica count (`docker service scale`)."""
        self.check_writable(f"scale service {service} to {replicas}")
        self._require_swarm(service)
        with Translate(self.url):
            api = self._actions_api()
            # The service's own spec goes back with only the count changed, as the CLI does:
            # `fetch_current_spec=True` would post the spec with the engine's defaults filled
            # in (StopGracePeriod, RestartPolicy, ...), a changed task template, and the swarm
            # would replace running tasks one by one (a rolling update).
            current = api.inspect_service(service)
            spec = current["Spec"]
            api.update_service(
                current["ID"],
                current["Version"]["Index"],
                task_template=spec.get("TaskTemplate"),
                name=spec.get("Name"),
                labels=spec.get("Labels"),
                mode={"Replicated": {"Replicas": int(replicas)}},
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"),
                fetch_current_spec=False,
            )

    # --- logs and per-container events ----------------------------------------------------

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
            params["since"] = api_time(since_ns)
        if until_ns:
            params["until"] = api_time(until_ns)
        with Translate(self.url, container_id):
            api = self._api()
            try:
                response = open_stream(api, "/containers/{0}/logs", container_id, params)
            except docker.errors.NotFound:
                raise
            except docker.errors.APIError as exc:
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
        with Translate(self.url):
            stream: ClosableIterable[Json] = self._api().events(
                decode=True, filters=self._podman_filters(filters)
            )
            if self.product == "Podman":
                stream = Mapped(stream, docker_event)
        events = EventStream(stream, url=self.url, on_close=self._forget_stream)
        with self._lock:
            self._streams.add(events)
        return events

    def _forget_stream(self, stream: Closable) -> None:
        with self._lock:
            self._streams.discard(stream)

    # --- disk: images, volumes, build cache (`docker system df`) -------------------------

    def disk_usage(self) -> dict[str, Any]:
        """What the engine's data takes (`docker system df -v`): images, containers,
        volumes (their sizes are computed by the engine, which can take a while) and build
        cache, with the engine's data root (`DockerRootDir`). Blocking: call it off the UI."""
        with Translate(self.url):
            api = self._actions_api()
            usage: dict[str, Any] = api.df()
            usage["DockerRootDir"] = str(api.info().get("DockerRootDir") or "")
            return usage

    def remove_image(self, image_id: str) -> None:
        """Remove an image by id (`docker rmi`); an image a container uses is refused."""
        self.check_writable(f"remove image {image_id.removeprefix('sha256:')[:12]}")
        with Translate(self.url):
            self._actions_api().remove_image(image_id, force=False)

    def remove_volume(self, name: str) -> None:
        """Remove a volume (`docker volume rm`); a volume a container mounts is refused."""
        self.check_writable(f"remove volume {name}")
        with Translate(self.url):
            self._actions_api().remove_volume(name, force=False)

    def prune_build_cache(self) -> int:
        """Remove the build cache no image needs (`docker builder prune`); bytes freed."""
        self.check_writable("prune the build cache")
        with Translate(self.url):
            answer = self._actions_api().prune_builds()
        return int((answer or {}).get("SpaceReclaimed") or 0)

    # --- processes ------------------------------------------------------------------------

    TOP_COLUMNS = "pid,ppid,pcpu,rss,etimes,args"
    """What `top` asks the engine's `ps` for: host PID, parent, CPU % (over the process's
    life, as ps counts it), resident KiB, seconds since it started, command line."""

    def top(self, container_id: str) -> dict[str, Any]:
        """The container's processes as the engine's host sees them (`docker top`, with
        `TOP_COLUMNS`): {"Titles": [...], "Processes": [[...], ...]}."""
        with Translate(self.url, container_id):
            answer = self._api().top(container_id, ps_args=f"-o {self.TOP_COLUMNS}")
            return {"Titles": answer["Titles"], "Processes": answer["Processes"]}

    # --- a swarm seen from its manager: nodes, services, tasks (issue 13) -----------------

    def swarm_membership(self) -> dict[str, Any]:
        """This engine's part in a swarm (`docker info`'s Swarm): `LocalNodeState` ("inactive",
        "active", ...), `ControlAvailable` (True on a manager), `NodeID`; {} on Podman."""
        if self.is_podman:
            return {}
        with Translate(self.url):
            return dict(self._api().info().get("Swarm") or {})

    def nodes(self) -> list[dict[str, Any]]:
        """The swarm's nodes (`docker node ls`, inspect data each); a manager only."""
        self._require_swarm("nodes")
        with Translate(self.url):
            return self._api().nodes()

    def services(self) -> list[dict[str, Any]]:
        """The swarm's services (`docker service ls`, inspect data each); a manager only."""
        self._require_swarm("services")
        with Translate(self.url):
            return self._api().services()

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The swarm's tasks (`docker service ps`), all services' unless `filters` (the
        engine's: "service", "node", "desired-state", ...) say otherwise; a manager only."""
        self._require_swarm("tasks")
        with Translate(self.url):
            return self._api().tasks(filters=dict(filters or {}))

    def update_node_availability(self, node_id: str, availability: str) -> None:
        """Set a node's availability (`docker node update --availability`): "active",
        "pause" (no new tasks) or "drain" (its tasks move to other nodes)."""
        if availability not in ("active", "pause", "drain"):
            raise EngineError(f"unknown node availability {availability!r}")
        self.check_writable(f"set node {node_id[:12]} to {availability}")
        self._require_swarm(f"node {node_id[:12]}")
        with Translate(self.url):
            api = self._actions_api()
            node = api.inspect_node(node_id)
            spec = dict(node.get("Spec") or {})
            spec["Availability"] = availability
            # The engine's whole spec goes back (labels, role): more than the stubs' TypedDict.
            api.update_node(node["ID"], node["Version"]["Index"], node_spec=spec)  # type: ignore[arg-type]
