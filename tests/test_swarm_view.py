"""The swarm view (issue 13, items 2-3) against the real three-node swarm (the `swarm` fixture:
tests/swarm_rig.py): every node and every task shown with its node, a node drained from the
view (asked first) and its tasks shown moving, read-only mode without draining, an engine
that is no manager said so plainly, and where one more GPU task would go."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from tests.helpers import pilot_wait_for, wait_for
from tests.swarm_rig import HOSTS, SwarmRig, converged, read, service
from tui.fleet.engine.client import Engine
from tui.fleet.swarm import set_availability
from tui.screens.confirm import ConfirmScreen
from tui.screens.swarm import SwarmScreen
from tui.swarm_view import SwarmController


class SwarmApp(App[None]):
    """The app's part of the swarm view: the screen's messages routed to the controller. Its
    `s` stands for the fleet's keys, which must not reach behind the view."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "fleet_key", "Stop")]

    def __init__(self, *, read_only: bool = False) -> None:
        super().__init__()
        self.swarm_view = SwarmController(self, read_only=read_only)
        self.fleet_keys = 0

    def action_fleet_key(self) -> None:
        self.fleet_keys += 1

    def compose(self) -> ComposeResult:
        yield Static("fleet")

    def on_swarm_screen_refresh_requested(self, message: SwarmScreen.RefreshRequested) -> None:
        self.swarm_view.refresh()

    def on_swarm_screen_availability_requested(
        self, message: SwarmScreen.AvailabilityRequested
    ) -> None:
        self.swarm_view.ask_availability(message)


def service_rows(screen: SwarmScreen, name: str) -> list[tuple[str, ...]]:
    """The service's header row and its task rows, as drawn."""
    rows = screen.rows("swarm-tasks")
    start = next((n for n, row in enumerate(rows) if row[0] == name), None)
    if start is None:
        return []
    end = next(
        (n for n in range(start + 1, len(rows)) if not rows[n][0].startswith((name, "\\_"))),
        len(rows),
    )
    return rows[start:end]


def current_tasks(screen: SwarmScreen, name: str) -> dict[str, tuple[str, ...]]:
    """The service's tasks meant to run, as drawn: "name.slot" -> (node, state, desired)."""
    return {
        row[0]: row[1:4]
        for row in service_rows(screen, name)[1:]
        if row[0].startswith(f"{name}.") and row[3] == "running"
    }


def node_row(screen: SwarmScreen, hostname: str) -> tuple[str, ...]:
    return next((row for row in screen.rows("swarm-nodes") if row[0] == hostname), ())


async def test_nodes_and_every_task_with_its_node(swarm: SwarmRig, manager: Engine) -> None:
    with service(swarm, 6) as name:
        wait_for(converged(manager, name, 6), 60, 0.25, f"{name} runs 6 tasks")
        app = SwarmApp()
        async with app.run_test(size=(160, 50)) as pilot:
            screen = app.swarm_view.open(manager)
            await pilot_wait_for(
                pilot, lambda: len(current_tasks(screen, name)) == 6, 30, what="6 tasks drawn"
            )
            nodes = {row[0]: row for row in screen.rows("swarm-nodes")}
            assert list(nodes) == list(HOSTS)
            version = manager.version()["Version"]
            assert nodes["node1"][1:5] == ("manager (leader) *", "active", "ready", version)
            assert nodes["node2"][1:] == ("worker", "active", "ready", version, "1 gpu")
            assert nodes["node3"][1:] == ("worker", "active", "ready", version, "2 gpu")
            assert nodes["node1"][5] == ""
            header = service_rows(screen, name)[0]
            assert header[2] == "6/6" and header[3] == "replicated"
            # Each task on the node the swarm names, as `docker service ps` shows it.
            svc = read(manager).service(name)
            assert svc is not None
            want = {
                f"{name}.{t.slot}": (t.node_hostname, "running", "running")
                for t in svc.tasks
                if t.desired_state == "running"
            }
            await pilot_wait_for(pilot, lambda: current_tasks(screen, name) == want, 10)
            assert {node for node, _, _ in want.values()} == set(HOSTS)
            heading = screen.heading_line
            assert heading.startswith(f"Swarm of {manager.url} · 3 nodes · ")
            # The view is modal: the fleet's keys do not act on a selection hidden behind it.
            await pilot.press("s")
            await pilot.pause()
            assert app.fleet_keys == 0
            await pilot.press("escape")
            await pilot_wait_for(pilot, lambda: not isinstance(app.screen, SwarmScreen))
            assert app.swarm_view.screen is None


async def test_draining_a_node_from_the_view_moves_its_tasks(
    swarm: SwarmRig, manager: Engine
) -> None:
    with service(swarm, 6) as name:
        wait_for(converged(manager, name, 6), 60, 0.25, f"{name} runs 6 tasks")
        snap = read(manager)
        node2 = snap.node("node2")
        svc = snap.service(name)
        assert node2 is not None and svc is not None
        there = sorted(
            f"{name}.{t.slot}" for t in snap.tasks_on(node2.id) if t.service_id == svc.id
        )
        assert there
        app = SwarmApp()
        try:
            async with app.run_test(size=(160, 50)) as pilot:
                screen = app.swarm_view.open(manager)
                await pilot_wait_for(pilot, lambda: len(current_tasks(screen, name)) == 6, 30)
                assert screen.select_node("node2")
                await pilot.press("x")
                await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                confirm = app.screen
                assert isinstance(confirm, ConfirmScreen)
                assert confirm.question == "Drain node node2?"
                (plan,) = confirm.items
                assert plan.startswith("Drain node node2: its ")
                assert all(task in plan for task in there), plan
                await pilot.press("n")  # no: nothing changes
                await pilot_wait_for(pilot, lambda: app.screen is screen)
                assert read(manager).node("node2").availability == "active"  # type: ignore[union-attr]
                await pilot.press("x")
                await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("y")

                def moved() -> bool:
                    tasks = current_tasks(screen, name)
                    return (
                        node_row(screen, "node2")[2:3] == ("drain",)
                        and len(tasks) == 6
                        and all(
                            node != "node2" and state == "running"
                            for node, state, _ in tasks.values()
                        )
                    )

                await pilot_wait_for(pilot, moved, 60, 0.1, "node2's tasks shown moved")
                hosts = {node for node, _, _ in current_tasks(screen, name).values()}
                assert hosts == {"node1", "node3"}
                # The tasks that ran on node2 are drawn still, below their slots: shut down.
                rows = service_rows(screen, name)
                assert any(row[0] == f"\\_ {there[0]}" and row[1] == "node2" for row in rows)
                # And back: x on a drained node activates it (asked too).
                await pilot.press("x")
                await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                confirm = app.screen
                assert isinstance(confirm, ConfirmScreen)
                assert confirm.question == "Activate node node2?"
                await pilot.press("y")
                await pilot_wait_for(
                    pilot, lambda: node_row(screen, "node2")[2:3] == ("active",), 30
                )
        finally:
            set_availability(manager, node2.id, "active")


async def test_read_only_hides_draining(swarm: SwarmRig, manager: Engine) -> None:
    app = SwarmApp(read_only=True)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.swarm_view.open(manager)
        await pilot_wait_for(pilot, lambda: len(screen.rows("swarm-nodes")) == 3, 30)
        assert screen.select_node("node2")
        assert screen.check_action("availability", ()) is False
        await pilot.press("x")
        await pilot.pause(0.3)
        assert app.screen is screen
        shown = {b.binding.id for b in screen.active_bindings.values()}
        assert "swarm-availability" not in shown and "swarm-refresh" in shown
        assert read(manager).node("node2").availability == "active"  # type: ignore[union-attr]


async def test_an_engine_that_is_no_manager_says_so(swarm: SwarmRig, engine: Engine) -> None:
    worker = Engine(swarm.node("node2").url, timeout=10)
    app = SwarmApp()
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            # The host's own engine is in no swarm.
            screen = app.swarm_view.open(engine)
            await pilot_wait_for(pilot, lambda: "not a swarm manager" in screen.heading_line, 30)
            assert screen.heading_line == (
                f"Swarm of {engine.url}: not a swarm manager: this engine is in no swarm "
                "(docker swarm init or join makes it part of one)"
            )
            assert screen.rows("swarm-nodes") == [] and screen.rows("swarm-tasks") == []
            await pilot.press("escape")
            await pilot_wait_for(pilot, lambda: not isinstance(app.screen, SwarmScreen))
            # A worker of the swarm is in one, but cannot list it.
            screen = app.swarm_view.open(worker)
            await pilot_wait_for(pilot, lambda: "not a swarm manager" in screen.heading_line, 30)
            assert "this engine is a worker node" in screen.heading_line
    finally:
        worker.close()


async def test_where_one_more_gpu_task_would_go(swarm: SwarmRig, manager: Engine) -> None:
    with service(swarm, 1, "--generic-resource", "gpu=1") as name:
        svc = wait_for(converged(manager, name, 1), 60, 0.25, f"{name} runs 1 task")
        first = next(t for t in svc.tasks if t.desired_state == "running")
        # node2 has one GPU, node3 two (see tests/test_swarm.py's placement test).
        expected = {"node2": "node3", "node3": "node2"}[first.node_hostname]
        free = 2 if expected == "node3" else 1
        app = SwarmApp()
        async with app.run_test(size=(200, 50)) as pilot:
            screen = app.swarm_view.open(manager)
            await pilot_wait_for(pilot, lambda: screen.select_service(name), 30)
            line = screen.placement_line
            assert line.startswith(
                f"One more task of {name}: {expected} has {free} gpu free of {free}"
            ), line
            assert "node1: 0 of 1 gpu free (0 advertised, 0 reserved)" in line
            # Three GPUs in all: with three tasks no node can take a fourth, and the view
            # says why per node once the swarm has converged.
            swarm.manager.docker("service", "scale", "--detach", f"{name}=3")

            def full() -> str:
                text = screen.placement_line
                return text if "no node can take another task" in text else ""

            line = await pilot_wait_for(pilot, full, 60, 0.1, "the placement said full")
            assert line == (
                f"One more task of {name}: no node can take another task of {name}: "
                "node1: 0 of 1 gpu free (0 advertised, 0 reserved); "
                "node2: 0 of 1 gpu free (1 advertised, 1 reserved); "
                "node3: 0 of 1 gpu free (2 advertised, 2 reserved)"
            )
            await pilot_wait_for(pilot, lambda: service_rows(screen, name)[0][2] == "3/3", 60)


async def test_an_engine_that_does_not_answer_is_said_and_read_again(tmp_path) -> None:
    gone = Engine(f"unix://{tmp_path}/docker.sock", timeout=2)
    app = SwarmApp()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.swarm_view.open(gone)
        await pilot_wait_for(pilot, lambda: "read failed" in screen.heading_line, 10)
        assert screen.heading_line == (
            f"Swarm of {gone.url}: reading · read failed: no Docker engine at {gone.url}: the "
            "socket does not exist. Is dockerd running (sudo systemctl start docker)? Point "
            "aitop elsewhere with --host or DOCKER_HOST"
        )
        # It keeps trying, one read at a time, while the view is open; closed, it stops.
        assert app.swarm_view.polling
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: app.swarm_view.screen is None)
        await pilot_wait_for(pilot, lambda: not app.swarm_view.polling, 5)
