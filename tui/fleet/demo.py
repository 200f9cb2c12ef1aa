"""`aitop demo up|down`: a small living fleet of labelled "model server" containers.

The image is built locally FROM scratch with the host's static busybox, so no registry is
needed. Every demo container carries the `aitop.demo` label; `down` removes exactly those.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError

DEMO_LABEL = "aitop.demo"
DEMO_IMAGE = "aitop-demo:latest"
DEMO_PROJECT = "aitop-demo"

# A model server's life in a busybox shell: load shards, then serve requests forever.
SERVER_SCRIPT = r"""
echo "INFO Starting inference server for $MODEL"
i=0
while [ $i -lt 10 ]; do
  i=$((i+1))
  echo "Loading safetensors checkpoint shards: $((i*10))% Completed | $i/10"
  sleep 0.3
done
echo "INFO Model loaded; Uvicorn running on http://0.0.0.0:8000"
mkdir -p /www && echo ok > /www/health
httpd -p 8000 -h /www
while :; do
  echo "INFO: 172.17.0.1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK tokens=$((RANDOM % 512))"
  sleep $((RANDOM % 3 + 1))
done
"""


@dataclass(frozen=True)
class DemoContainer:
    """One container of the demo fleet."""

    name: str
    command: str
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: dict | None = None
    ports: tuple[int, ...] = ()


def _replica(service: str, number: int, model: str) -> DemoContainer:
    return DemoContainer(
        name=f"{DEMO_PROJECT}-{service}-{number}",
        command=SERVER_SCRIPT,
        labels={
            "aitop.model": model,
            "com.docker.compose.project": DEMO_PROJECT,
            "com.docker.compose.service": service,
            "com.docker.compose.container-number": str(number),
            "com.docker.compose.oneoff": "False",
        },
        env={"MODEL": model},
        ports=(8000,),
    )


def demo_fleet() -> list[DemoContainer]:
    """The containers `aitop demo up` starts."""
    fleet = [_replica("llama", n, "meta-llama/Llama-3.1-8B-Instruct") for n in (1, 2, 3)]
    fleet += [_replica("mistral", n, "mistralai/Mistral-7B-Instruct-v0.3") for n in (1, 2)]
    fleet.append(DemoContainer(name=f"{DEMO_PROJECT}-redis", command="sleep 2147483647"))
    fleet.append(
        DemoContainer(
            name=f"{DEMO_PROJECT}-burner",
            command="while :; do :; done",
            labels={"aitop.model": "cpu-burner (busy loop)"},
        )
    )
    fleet.append(
        DemoContainer(
            name=f"{DEMO_PROJECT}-unhealthy",
            command=SERVER_SCRIPT,
            labels={"aitop.model": "Qwen/Qwen2.5-7B-Instruct"},
            env={"MODEL": "Qwen/Qwen2.5-7B-Instruct"},
            healthcheck={
                "test": ["CMD", "sh", "-c", "exit 1"],
                "interval": 2_000_000_000,
                "timeout": 1_000_000_000,
                "retries": 1,
            },
        )
    )
    return fleet


def host_busybox() -> Path | None:
    """The host's busybox binary, if any (it must be static to run FROM scratch)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def build_busybox_image(engine: Engine, tag: str) -> None:
    """Build `tag` FROM scratch with the host's static busybox: no registry needed."""
    busybox = host_busybox()
    if busybox is None:
        raise EngineError(
            "building a local image needs a static busybox on this machine "
            "(e.g. sudo apt-get install busybox-static)"
        )
    dockerfile = (
        b"FROM scratch\n"
        b"COPY busybox /bin/busybox\n"
        b'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        b'CMD ["sh"]\n'
    )
    engine.build_image(
        tag, {"Dockerfile": (dockerfile, 0o644), "busybox": (busybox.read_bytes(), 0o755)}
    )


def ensure_image(engine: Engine) -> None:
    """Build the demo image unless the engine already has it."""
    if not engine.has_image(DEMO_IMAGE):
        build_busybox_image(engine, DEMO_IMAGE)


def demo_up(engine: Engine, say: Callable[[str], None] = print) -> list[str]:
    """Start the demo fleet (replacing an earlier one); returns the new container ids."""
    demo_down(engine, say=lambda _msg: None)
    ensure_image(engine)
    ids: list[str] = []
    try:
        for spec in demo_fleet():
            ids.append(
                engine.run(
                    DEMO_IMAGE,
                    ["sh", "-c", spec.command],
                    name=spec.name,
                    labels={DEMO_LABEL: "1", **spec.labels},
                    environment=spec.env,
                    healthcheck=spec.healthcheck,
                    ports=list(spec.ports),
                    port_bindings={p: None for p in spec.ports},
                    mem_limit="256m",
                )
            )
            say(f"started {spec.name}")
    except EngineError:
        # Leave nothing half-done: a partial fleet is removed before the error is reported.
        for cid in ids:
            engine.remove(cid)
        raise
    return ids


def demo_down(engine: Engine, say: Callable[[str], None] = print) -> int:
    """Remove every container carrying the demo label; returns how many were removed."""
    ids = engine.ids_with_label(DEMO_LABEL)
    for cid in ids:
        engine.remove(cid)
    say(f"removed {len(ids)} demo container(s)")
    return len(ids)
