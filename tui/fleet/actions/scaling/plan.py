"""What scaling a group to a replica count will do: how many replicas come or go, and which
(the highest numbers, the newest clones first; the original only when confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.fleet.actions.scaling.groups import (
    KIND_CLONE,
    KIND_COMPOSE,
    KIND_SWARM,
    Replica,
    ScaleError,
    ScaleGroup,
    replicas,
)


@dataclass(frozen=True)
class ScalePlan:
    """What scaling `group` to `desired` replicas will do."""

    group: ScaleGroup
    desired: int
    add: int = 0
    remove: tuple[Replica, ...] = ()
    """Replicas that will be stopped and removed, highest number first."""

    @property
    def removes_original(self) -> bool:
        """True when a plain container's original would be removed (needs explicit consent)."""
        return self.group.kind == KIND_CLONE and any(
            r.id == self.group.origin_id for r in self.remove
        )

    @property
    def needs_confirmation(self) -> bool:
        """True when something will go: replicas removed or swarm tasks scaled down."""
        if self.group.kind == KIND_SWARM:
            return self.desired < self.group.count
        return bool(self.remove)

    @property
    def changes_nothing(self) -> bool:
        """True when the group already has `desired` replicas."""
        return self.desired == self.group.count

    def describe(self) -> str:
        """One line saying what will happen."""
        g = self.group
        if self.changes_nothing:
            return f"{g.label} already has {replicas(g.count)}"
        head = f"Scale {g.label} from {g.count} to {self.desired}"
        if g.kind == KIND_SWARM:
            return head
        if self.add:
            return f"{head}: create {replicas(self.add)}"
        names = ", ".join(r.name for r in self.remove)
        text = f"{head}: stop and remove {names}"
        if self.removes_original:
            text += f" (including the ORIGINAL container {g.origin_name})"
        return text


def plan_scale(group: ScaleGroup, desired: int) -> ScalePlan:
    """What scaling `group` to `desired` replicas will do; ScaleError when it cannot."""
    if desired < 0:
        raise ScaleError("a replica count cannot be negative")
    if group.kind == KIND_COMPOSE and group.fixed_name and desired > 1:
        raise ScaleError(
            f"compose service {group.label} has a fixed container_name "
            f"({group.fixed_name}): a name is unique, so it cannot run more than one replica. "
            "Remove container_name from the compose file to scale it"
        )
    if group.kind == KIND_SWARM:
        return ScalePlan(group, desired)
    count = group.count
    if desired >= count:
        return ScalePlan(group, desired, add=desired - count)
    # Highest numbers go first; for clones the original (number 0) is last.
    doomed = sorted(group.replicas, key=lambda r: r.number, reverse=True)[: count - desired]
    return ScalePlan(group, desired, remove=tuple(doomed))


def step_plan(group: ScaleGroup, step: int) -> ScalePlan:
    """`+` (step 1) or `-` (step -1): one replica more or fewer."""
    if step < 0 and group.count == 0:
        raise ScaleError(f"{group.label} has no replica to remove")
    return plan_scale(group, group.count + step)
