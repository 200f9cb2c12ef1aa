"""Where the disk went, as plain data (issue 17): images, volumes, build cache and the engine's
data root, biggest first, with the model caches among the volumes named (a volume mounted where
Hugging Face, Ollama, vLLM or torch keep their files), and what removing one of them takes away
and frees (`removal`, for the question asked first). No I/O: `tui.fleet.disk.survey` asks the
engine; screens may import this module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tui.fleet.sanitize import safe_text
from tui.fleet.units import format_bytes

MODEL_CACHES: tuple[tuple[str, str], ...] = (
    ("huggingface", "Hugging Face cache"),
    ("/.ollama", "Ollama models"),
    ("/ollama/models", "Ollama models"),
    ("/.cache/vllm", "vLLM cache"),
    ("/.cache/torch", "torch cache"),
    ("/torch/hub", "torch cache"),
)
"""(piece of a mount's path inside the container, what the volume holds): the default cache
directories of huggingface_hub (HF_HOME, ~/.cache/huggingface), Ollama (~/.ollama/models),
vLLM (~/.cache/vllm) and torch hub (~/.cache/torch/hub)."""

NO_TAG = "<none>:<none>"


@dataclass(frozen=True)
class DiskImage:
    """One image and what it takes."""

    id: str
    tags: tuple[str, ...]
    """Its repository:tag names (safe text); empty for a dangling image."""
    size: int
    """Bytes of all its layers."""
    unique_size: int | None
    """Bytes only it uses (what removing it frees); None when the engine did not say."""
    containers: int | None
    """How many containers use it; None when the engine did not say."""
    created: float

    @property
    def dangling(self) -> bool:
        """No name: a build's leftover, removable unless a container uses it."""
        return not self.tags

    @property
    def name(self) -> str:
        """Its first tag, or its short id."""
        return self.tags[0] if self.tags else self.id.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class DiskVolume:
    """One volume and what it takes."""

    name: str
    driver: str
    size: int | None
    """Bytes in it; None where the engine cannot tell (a remote driver)."""
    used_by: tuple[str, ...]
    """Names of the containers that mount it."""
    cache: str | None
    """What model files it holds, from where it is mounted ("Hugging Face cache"), or None."""


@dataclass(frozen=True)
class DiskReport:
    """What the engine's data takes on disk, biggest first."""

    images: tuple[DiskImage, ...]
    volumes: tuple[DiskVolume, ...]
    layers_size: int
    """Bytes of all image layers (shared layers once)."""
    containers_size: int
    """Bytes the containers wrote to their own layers."""
    build_cache_size: int
    build_cache_reclaimable: int
    """Bytes of build cache no image uses."""
    build_cache_entries: int
    data_root: str
    """The engine's data directory (DockerRootDir)."""
    disk_total: int | None
    """Size of the filesystem holding the data root, when it is on this machine."""
    disk_free: int | None
    taken_at: float
    seconds: float
    """How long the engine took to answer."""

    @property
    def volumes_size(self) -> int:
        """Bytes of the volumes whose size is known."""
        return sum(v.size or 0 for v in self.volumes)


def _volume_users(containers: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Volume name -> [(container name, where it is mounted)]."""
    users: dict[str, list[tuple[str, str]]] = {}
    for container in containers:
        names = container.get("Names") or ["?"]
        name = safe_text(str(names[0]).lstrip("/"))
        for mount in container.get("Mounts") or ():
            if mount.get("Type") == "volume" and mount.get("Name"):
                users.setdefault(str(mount["Name"]), []).append(
                    (name, str(mount.get("Destination") or ""))
                )
    return users


def model_cache(destinations: Sequence[str]) -> str | None:
    """What model files a volume mounted at these paths holds, or None."""
    for destination in destinations:
        lowered = destination.lower()
        for piece, what in MODEL_CACHES:
            if piece in lowered:
                return what
    return None


def _known(value: object) -> int | None:
    """The engine writes -1 for a figure it did not compute."""
    return value if isinstance(value, int) and value >= 0 else None


def report_from(
    usage: Mapping[str, Any], *, seconds: float, space: tuple[int, int] | None = None
) -> DiskReport:
    """The report of one `Engine.disk_usage()` answer; `space` is (total, free) bytes of the
    filesystem holding the data root, when known."""
    images = tuple(
        sorted(
            (
                DiskImage(
                    id=str(image.get("Id") or ""),
                    tags=tuple(
                        safe_text(tag) for tag in image.get("RepoTags") or () if tag != NO_TAG
                    ),
                    size=_known(image.get("Size")) or 0,
                    unique_size=(
                        None
                        if _known(image.get("SharedSize")) is None
                        else max(0, (image.get("Size") or 0) - image["SharedSize"])
                    ),
                    containers=_known(image.get("Containers")),
                    created=float(image.get("Created") or 0),
                )
                for image in usage.get("Images") or ()
            ),
            key=lambda i: (-i.size, i.name),
        )
    )
    users = _volume_users(usage.get("Containers") or ())
    volumes = tuple(
        sorted(
            (
                DiskVolume(
                    name=safe_text(str(volume.get("Name") or "")),
                    driver=safe_text(str(volume.get("Driver") or "")),
                    size=_known((volume.get("UsageData") or {}).get("Size")),
                    used_by=tuple(name for name, _ in users.get(str(volume.get("Name")), ())),
                    cache=model_cache([dest for _, dest in users.get(str(volume.get("Name")), ())]),
                )
                for volume in usage.get("Volumes") or ()
            ),
            key=lambda v: (-(v.size or 0), v.name),
        )
    )
    cache = usage.get("BuildCache") or ()
    data_root = str(usage.get("DockerRootDir") or "")
    total, free = space if space is not None else (None, None)
    return DiskReport(
        images=images,
        volumes=volumes,
        layers_size=_known(usage.get("LayersSize")) or 0,
        containers_size=sum(_known(c.get("SizeRw")) or 0 for c in usage.get("Containers") or ()),
        build_cache_size=sum(_known(b.get("Size")) or 0 for b in cache),
        build_cache_reclaimable=sum(
            _known(b.get("Size")) or 0 for b in cache if not b.get("InUse") and not b.get("Shared")
        ),
        build_cache_entries=len(cache),
        data_root=safe_text(data_root),
        disk_total=total,
        disk_free=free,
        taken_at=time.time(),
        seconds=seconds,
    )


Target = DiskImage | DiskVolume | Literal["build-cache"]
"""What one removal takes away: an image, a volume, or the build cache no image uses."""


@dataclass(frozen=True)
class Removal:
    """What removing one target takes away, for the question asked first."""

    question: str
    """e.g. "Remove image 72ac3764b395?"."""
    item: str
    """Exactly what goes: its names, what it holds, what it frees."""
    freed: int
    """Bytes it frees (for the build cache: what no image uses)."""


def removal(report: DiskReport, target: Target) -> Removal:
    """What removing `target` takes away and frees."""
    if target == "build-cache":
        freed = report.build_cache_reclaimable
        return Removal(
            "Prune the build cache?",
            f"{report.build_cache_entries} cache entries; the {format_bytes(freed)} no image "
            "uses goes",
            freed,
        )
    if isinstance(target, DiskImage):
        freed = target.unique_size if target.unique_size is not None else target.size
        names = ", ".join(target.tags) if target.tags else "dangling, no name"
        short = target.id.removeprefix("sha256:")[:12]
        return Removal(f"Remove image {short}?", f"{names}: frees {format_bytes(freed)}", freed)
    freed = target.size or 0
    what = f", {target.cache}" if target.cache else ""
    size = format_bytes(freed) if target.size is not None else "an unknown amount"
    return Removal(
        f"Remove volume {target.name}?", f"{target.name}{what}, all its data: frees {size}", freed
    )


def refusal(target: Target) -> str | None:
    """Why `target` cannot be removed as it is, or None."""
    if isinstance(target, DiskImage) and target.containers:
        return f"image {target.name} is used by {target.containers} container(s): remove them first"
    if isinstance(target, DiskVolume) and target.used_by:
        return f"volume {target.name} is mounted by {', '.join(target.used_by)}: remove them first"
    return None


def disk_json(report: DiskReport) -> dict[str, object]:
    """The disk view's data as `aitop snapshot --json --disk` gives it (bytes; null where the
    engine did not say)."""
    return {
        "data_root": report.data_root,
        "disk_total_bytes": report.disk_total,
        "disk_free_bytes": report.disk_free,
        "layers_bytes": report.layers_size,
        "containers_bytes": report.containers_size,
        "volumes_bytes": report.volumes_size,
        "build_cache": {
            "entries": report.build_cache_entries,
            "bytes": report.build_cache_size,
            "reclaimable_bytes": report.build_cache_reclaimable,
        },
        "images": [
            {
                "id": image.id,
                "tags": list(image.tags),
                "size_bytes": image.size,
                "unique_bytes": image.unique_size,
                "containers": image.containers,
                "dangling": image.dangling,
                "created": image.created,
            }
            for image in report.images
        ],
        "volumes": [
            {
                "name": volume.name,
                "driver": volume.driver,
                "size_bytes": volume.size,
                "used_by": list(volume.used_by),
                "model_cache": volume.cache,
            }
            for volume in report.volumes
        ],
        "surveyed_in_s": round(report.seconds, 3),
    }
