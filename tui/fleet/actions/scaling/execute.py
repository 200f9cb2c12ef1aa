"""Carrying out a scale plan on the engine: replicas created and started (or removed) in
parallel, a swarm service scaled and watched while it converges, and a result that names every
replica made, removed or failed. Nothing is left half-done: a replica that fails to start is
removed again, and the result names anything a failed rollback left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from tui.fleet.actions.scaling.groups import (
    CLONE_NUMBER,
    KIND_COMPOSE,
    KIND_SWARM,
    Replica,
    ScaleError,
    ScaleGroup,
    entry_name,
    replicas,
)
from tui.fleet.actions.scaling.placement import place_replicas, source_gpus
from tui.fleet.actions.scaling.plan import ScalePlan
from tui.fleet.actions.scaling.spec import ReplicaSpec, replica_spec
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.inventory import CLONE_OF, COMPOSE_NUMBER, format_ports

MAX_PARALLEL = 8
"""Replicas created (or removed) at once."""
SWARM_WAIT_S = 30.0
"""How long to watch a swarm service converge before reporting."""


@dataclass(frozen=True)
class NewReplica:
    """A replica that was created and started."""

    id: str
    name: str
    ports: tuple[str, ...] = ()
    """Published ports as `host->container/proto`."""
    gpus: tuple[str, ...] = ()
    """The GPUs it was given, when placement chose them."""


@dataclass(frozen=True)
class ScaleResult:
    """What scaling did: replicas created and removed, and each failure with its reason."""

    label: str
    kind: str
    before: int
    desired: int
    created: tuple[NewReplica, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    """(replica name, why) for each step that failed and was rolled back."""
    left_behind: tuple[tuple[str, str], ...] = ()
    """(container name, why) for rollbacks that failed: these containers still exist."""
    converged: int | None = None
    """Swarm: tasks running when the result was taken."""
    settled: bool = True
    """Swarm: False when the service had not converged yet (tasks still starting/stopping)."""
    refused: str = ""
    """Why nothing was attempted; "" when it ran."""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when it ran, nothing failed and (swarm) the service converged."""
        if self.refused or self.failed or self.left_behind:
            return False
        return self.converged is None or (self.settled and self.converged == self.desired)

    @property
    def severity(self) -> str:
        """Textual notification severity: "information", "warning" or "error"."""
        if self.ok:
            return "information"
        return "warning" if self.created or self.removed or self.converged else "error"

    @property
    def summary(self) -> str:
        """The notification text."""
        if self.refused:
            return f"Scale {self.label}: {self.refused}"
        lines = []
        if self.kind == KIND_SWARM:
            lines.append(
                f"Scaled {self.label} from {self.before} to {self.desired}: "
                f"{self.converged}/{self.desired} tasks running"
                + ("" if self.settled else " (still converging)")
            )
        else:
            now = self.before + len(self.created) - len(self.removed)
            lines.append(f"{self.label}: {self.before} → {replicas(now)}")
        for new in self.created:
            extra = []
            if new.ports:
                extra.append("ports " + ", ".join(new.ports))
            if new.gpus:
                extra.append("GPU " + ",".join(new.gpus))
            lines.append(f"+ {new.name}" + (f" ({'; '.join(extra)})" if extra else ""))
        lines.extend(f"- {name}" for name in self.removed)
        lines.extend(f"✖ {name}: {why}" for name, why in self.failed)
        lines.extend(f"⚠ left behind {name}: {why}" for name, why in self.left_behind)
        lines.extend(self.notes)
        return "\n".join(lines)


Progress = Callable[[int, int, str], None]
"""Called as (done, total, text) while scaling runs; from worker threads."""


class _RollbackFailed(Exception):
    def __init__(self, reason: str, leftover: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.leftover = leftover


def _create_and_start(engine: Engine, spec: ReplicaSpec) -> NewReplica:
    new_id = engine.create_container(spec.body, name=spec.name, networks=spec.networks)
    try:
        engine.start_container(new_id)
    except EngineError as exc:
        try:
            engine.remove_container(new_id, volumes=True, force=True)
        except EngineError as again:
            raise _RollbackFailed(str(exc), f"removing it failed: {again}") from exc
        raise
    ports: tuple[str, ...] = ()
    try:
        attrs = engine.inspect(new_id)
        ports = format_ports((attrs.get("NetworkSettings") or {}).get("Ports"))
    except EngineError:
        pass
    return NewReplica(new_id, spec.name, ports=ports, gpus=spec.gpus)


def _numbers_and_names(
    engine: Engine, group: ScaleGroup, add: int
) -> list[tuple[int, str, dict[str, str]]]:
    source = engine.inspect(group.source_id)
    labels = dict((source.get("Config") or {}).get("Labels") or {})
    taken = {entry_name(e) for e in engine.list_containers()}
    top = max((r.number for r in group.replicas), default=0)
    out: list[tuple[int, str, dict[str, str]]] = []
    n = top
    while len(out) < add:
        n += 1
        if group.kind == KIND_COMPOSE:
            name = group.name_format.format(n=n)
            new_labels = {**labels, COMPOSE_NUMBER: str(n)}
        else:
            name = f"{group.origin_name}-clone-{n}"
            new_labels = {
                **labels,
                CLONE_OF: group.origin_id or labels.get(CLONE_OF, group.source_id),
                CLONE_NUMBER: str(n),
            }
        if name in taken:
            continue
        out.append((n, name, new_labels))
    return out


def execute_plan(
    engine: Engine,
    plan: ScalePlan,
    *,
    gpu_free: Mapping[str, int | None] | None = None,
    gpu_need: int | None = None,
    force: bool = False,
    volumes: bool = False,
    allow_original: bool = False,
    on_progress: Progress | None = None,
    swarm_wait_s: float = SWARM_WAIT_S,
) -> ScaleResult:
    """Carry out `plan`. Blocking: call it from a worker thread.

    `gpu_free` / `gpu_need`: per-GPU free memory and the source's use per GPU, in bytes, for
    GPU-aware placement (see `place_replicas`); `force` places replicas even where no GPU has
    room. `volumes` also removes the anonymous volumes of removed replicas. Removing a plain
    container's original needs `allow_original` (given after an explicit confirmation).
    Raises ScaleError (PlacementError) when nothing was attempted for a reason to show.
    """
    group = plan.group
    base = ScaleResult(group.label, group.kind, group.count, plan.desired)
    if engine.read_only:
        return replace(base, refused="read-only mode: aitop changes nothing")
    if plan.changes_nothing:
        return replace(base, notes=(plan.describe(),))
    if plan.removes_original and not allow_original:
        raise ScaleError(
            f"scaling {group.label} to {plan.desired} would remove the original container "
            f"{group.origin_name}: confirm that explicitly"
        )
    if group.kind == KIND_SWARM:
        return _scale_swarm(engine, plan, base, on_progress, swarm_wait_s)
    if plan.add:
        return _scale_up(engine, plan, base, gpu_free, gpu_need, force, on_progress)
    return _scale_down(engine, plan, base, volumes, on_progress)


def _scale_swarm(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    on_progress: Progress | None,
    wait_s: float,
) -> ScaleResult:
    group = plan.group
    engine.scale_service(group.service, plan.desired)
    deadline = time.monotonic() + wait_s
    running = 0
    while True:
        tasks = engine.service_tasks(group.service)
        running = sum(
            1
            for t in tasks
            if t.get("DesiredState") == "running"
            and (t.get("Status") or {}).get("State") == "running"
        )
        wanted = sum(1 for t in tasks if t.get("DesiredState") == "running")
        # Tasks told to shut down count until their containers are really gone.
        leaving = sum(
            1
            for t in tasks
            if t.get("DesiredState") != "running"
            and (t.get("Status") or {}).get("State") in ("running", "starting", "preparing")
        )
        if on_progress is not None:
            text = f"{running}/{plan.desired} tasks running"
            if leaving:
                text += f", {leaving} stopping"
            on_progress(running, plan.desired, text)
        converged = running == plan.desired and wanted == plan.desired and not leaving
        if converged or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return replace(base, converged=running, settled=converged)


def _scale_up(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    gpu_free: Mapping[str, int | None] | None,
    gpu_need: int | None,
    force: bool,
    on_progress: Progress | None,
) -> ScaleResult:
    group = plan.group
    source = engine.inspect(group.source_id)
    _, gpus = source_gpus(source)
    placements = place_replicas(plan.add, gpus, gpu_free, gpu_need, force=force, label=group.label)
    notes: list[str] = []
    if gpus and not {g for g, f in (gpu_free or {}).items() if f is not None}:
        notes.append(f"GPUs not visible: new replicas keep the request GPU {','.join(gpus)}")
    specs = [
        replica_spec(source, name=name, labels=labels, gpus=placement if gpus else None)
        for (_, name, labels), placement in zip(
            _numbers_and_names(engine, group, plan.add), placements, strict=True
        )
    ]
    freed = sorted({p for s in specs for p in s.freed_ports})
    if freed:
        notes.append(
            "fixed host ports not copied (" + ", ".join(freed) + "): published on free ports"
        )
    created: list[NewReplica] = []
    failed: list[tuple[str, str]] = []
    left: list[tuple[str, str]] = []
    total = len(specs)

    def one(spec: ReplicaSpec) -> tuple[ReplicaSpec, NewReplica | None, str, str]:
        try:
            return spec, _create_and_start(engine, spec), "", ""
        except _RollbackFailed as exc:
            return spec, None, exc.reason, exc.leftover
        except EngineError as exc:
            return spec, None, str(exc), ""

    if on_progress is not None:
        on_progress(0, total, f"creating {replicas(total)} of {group.label}")
    with ThreadPoolExecutor(min(MAX_PARALLEL, total), thread_name_prefix="aitop-scale") as pool:
        for done, (spec, new, error, leftover) in enumerate(pool.map(one, specs), 1):
            if new is not None:
                created.append(new)
            elif leftover:
                left.append((spec.name, f"{error}; {leftover}"))
            else:
                failed.append((spec.name, f"{error} (rolled back)"))
            if on_progress is not None:
                on_progress(done, total, f"{'created' if new else 'failed'} {spec.name}")
    return replace(
        base,
        created=tuple(created),
        failed=tuple(failed),
        left_behind=tuple(left),
        notes=tuple(notes),
    )


def _scale_down(
    engine: Engine,
    plan: ScalePlan,
    base: ScaleResult,
    volumes: bool,
    on_progress: Progress | None,
) -> ScaleResult:
    removed: list[str] = []
    failed: list[tuple[str, str]] = []
    total = len(plan.remove)

    def one(replica: Replica) -> tuple[Replica, str]:
        try:
            if replica.state in ("running", "paused", "restarting", ""):
                try:
                    engine.stop_container(replica.id)
                except ContainerGone:
                    return replica, ""
                except EngineError:
                    pass  # remove(force) below kills it and says why if that fails too
            engine.remove_container(replica.id, volumes=volumes, force=True)
        except ContainerGone:
            return replica, ""
        except EngineError as exc:
            return replica, str(exc)
        return replica, ""

    if on_progress is not None:
        on_progress(0, total, f"removing {replicas(total)} of {plan.group.label}")
    with ThreadPoolExecutor(min(MAX_PARALLEL, total), thread_name_prefix="aitop-scale") as pool:
        for done, (replica, error) in enumerate(pool.map(one, plan.remove), 1):
            if error:
                failed.append((replica.name, error))
            else:
                removed.append(replica.name)
            if on_progress is not None:
                on_progress(done, total, f"removed {replica.name}")
    return replace(base, removed=tuple(removed), failed=tuple(failed))
