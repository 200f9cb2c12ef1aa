"""Helpers shared by several test modules (test modules never import each other)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tui.fleet.actions.scaling.execute import ScaleResult, execute_plan
from tui.fleet.actions.scaling.groups import find_group
from tui.fleet.actions.scaling.plan import plan_scale, step_plan
from tui.fleet.engine.client import Engine

_T = TypeVar("_T")


def wait_for(predicate: Callable[[], _T | None], timeout: float = 10.0, step: float = 0.05) -> _T:
    """Poll until `predicate()` is truthy; returns its value or fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)


def swarm_state(engine: Engine) -> str:
    """The engine's swarm membership: "inactive", "active", "pending", "error", "locked"."""
    return str((engine._api().info().get("Swarm") or {}).get("LocalNodeState", ""))


def scale(
    engine: Engine,
    *,
    container_id: str | None = None,
    group: tuple[str, str] | None = None,
    step: int | None = None,
    desired: int | None = None,
    **kwargs: Any,
) -> ScaleResult:
    """Find the group, plan `step` (+1/-1) or `desired`, and carry it out, as the app does
    once the user confirmed. Keyword arguments go to `execute_plan`."""
    found = find_group(engine, container_id=container_id, group=group)
    plan = plan_scale(found, desired) if desired is not None else step_plan(found, step or 1)
    return execute_plan(engine, plan, **kwargs)
