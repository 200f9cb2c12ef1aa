"""GPU placement (pure): which GPU each new replica goes to, the one with the most free memory
that can hold another copy of the source, or why none can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tui.fleet.actions.inspect import human_size
from tui.fleet.actions.scaling.groups import ScaleError


class PlacementError(ScaleError):
    """No GPU can hold another copy of the source; nothing was created."""


def place_replicas(
    count: int,
    source_gpus: Sequence[str],
    free: Mapping[str, int | None] | None,
    need: int | None,
    *,
    force: bool = False,
    label: str = "the source",
) -> tuple[tuple[str, ...], ...]:
    """The GPUs each of `count` new replicas gets.

    `source_gpus` are the GPUs the source was given (ids as in its request: indices or
    UUIDs); `free` maps GPU ids (the same kind) to free memory in bytes (None: unknown);
    `need` is the memory the source uses on each of its GPUs (None: unknown). Each replica
    takes as many GPUs as the source, those with the most free memory that can hold another
    copy, and what it takes is counted for the next replica. When GPUs are not visible
    (`free` empty or None) or the source holds no specific GPUs, every replica keeps the
    source's request. When no GPU can hold another copy: PlacementError, or with `force`
    the source's request is kept.
    """
    keep = tuple(source_gpus)
    known = {g: f for g, f in (free or {}).items() if f is not None}
    if not keep or not known or count <= 0:
        return (keep,) * max(count, 0)
    width = len(keep)
    remaining = dict(known)
    out: list[tuple[str, ...]] = []
    for _ in range(count):
        fits = [g for g, f in remaining.items() if need is None or f >= need]
        fits.sort(key=lambda g: (-remaining[g], _natural(g)))
        if len(fits) < width:
            if force:
                out.append(keep)
                continue
            best = max(remaining, key=lambda g: remaining[g])
            made = f" after placing {len(out)}" if out else ""
            raise PlacementError(
                f"no GPU can hold another copy of {label}{made}: it uses "
                f"{human_size(need)} per GPU and the most free is GPU {best} with "
                f"{human_size(remaining[best])}. Nothing was created (force to place it on "
                f"GPU {','.join(keep)} anyway)"
            )
        chosen = tuple(fits[:width])
        for g in chosen:
            remaining[g] -= need or 0
        out.append(chosen)
    return tuple(out)


def _natural(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


def source_gpus(attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Where a container's specific GPUs are set and which: ("request", ids) for `--gpus
    device=...`, ("env", ids) for NVIDIA_VISIBLE_DEVICES under the nvidia runtime, else
    ("", ()) (no GPUs, all GPUs, or a count the engine picks)."""
    host = attrs.get("HostConfig") or {}
    for request in host.get("DeviceRequests") or ():
        caps = request.get("Capabilities") or ()
        is_gpu = request.get("Driver") == "nvidia" or any("gpu" in (c or ()) for c in caps)
        ids = [str(i) for i in request.get("DeviceIDs") or () if str(i) != "all"]
        if is_gpu and ids:
            return "request", tuple(ids)
    if str(host.get("Runtime") or "").startswith("nvidia"):
        for item in (attrs.get("Config") or {}).get("Env") or ():
            name, _, value = str(item).partition("=")
            if name == "NVIDIA_VISIBLE_DEVICES":
                ids = [p.strip() for p in value.split(",") if p.strip()]
                if ids and not {"all", "none", "void"} & set(ids):
                    return "env", tuple(ids)
    return "", ()
