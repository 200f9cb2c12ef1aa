"""The swarm view: a Docker Swarm seen from its manager, as one fleet (issue 13).

The nodes (hostname, role, availability, state, engine version, the GPUs they advertise) and
every task of every service, grouped under its service with `running/desired`, the node it
runs on, its state, desired state and error (what `docker node ls` and `docker service ps`
show). Under them, where one more task of the selected service would go, or why no node can
take it. The screen shows what it is handed (`show`) and asks for work by message: a new read
(`RefreshRequested`) and a node drained or activated (`AvailabilityRequested`), which the app
asks about first and runs off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from tui.fleet.swarm import (
    SwarmNode,
    SwarmService,
    SwarmSnapshot,
    SwarmTask,
    placement_for_one_more,
)

MAX_TASK_ROWS = 2000
"""Most task rows drawn (services and their history together): the table stays quick to
update every read."""

NODE_COLUMNS = (
    ("HOSTNAME", "hostname"),
    ("ROLE", "role"),
    ("AVAILABILITY", "availability"),
    ("STATE", "state"),
    ("ENGINE", "engine"),
    ("GPUS", "gpus"),
)
TASK_COLUMNS = (
    ("SERVICE / TASK", "task"),
    ("NODE", "node"),
    ("STATE", "state"),
    ("DESIRED", "desired"),
    ("ERROR", "error"),
)


@dataclass(frozen=True)
class SwarmState:
    """What the view shows: the last snapshot, why the engine is no manager, the last error."""

    snapshot: SwarmSnapshot | None = None
    """The last read of the swarm; None before the first one (or when it is no manager)."""
    not_manager: str | None = None
    """Why the engine is no swarm manager, in a line; None while it is one (or unknown)."""
    error: str | None = None
    """Why the last read failed (the engine's words); None when it did not."""


def node_gpus(node: SwarmNode) -> str:
    """The GPUs a node advertises: "2 gpu", "1 gpu, 2 NVIDIA-GPU"; "" for none."""
    return ", ".join(f"{g.count} {g.kind}" for g in node.gpus)


def next_availability(node: SwarmNode) -> str:
    """What `x` sets a node to: an active node is drained, a drained or paused one activated."""
    return "drain" if node.availability == "active" else "active"


def placement_text(swarm: SwarmSnapshot, service: SwarmService) -> str:
    """Where one more task of `service` would go, or why no node can take it."""
    place = placement_for_one_more(swarm, service)
    if not place.fits:
        return f"One more task of {service.name}: {place.reason}"
    others = "; ".join(f"{host}: {why}" for host, why in place.refused)
    return f"One more task of {service.name}: {place.reason}" + (
        f" (not elsewhere: {others})" if others else ""
    )


def _same(new: Text, was: object) -> bool:
    # Text's == compares the characters and spans, not the style of the whole text.
    return isinstance(was, Text) and (new.plain, str(new.style), new.spans) == (
        was.plain,
        str(was.style),
        was.spans,
    )


def _task_label(service: SwarmService, task: SwarmTask) -> str:
    # `docker service ps` marks a slot's older tasks with \_ under its current one.
    if task.desired_state == "running":
        return f"  {service.name}{task.name}"
    return f"   \\_ {service.name}{task.name}"


class SwarmScreen(ModalScreen[None]):
    """A swarm's nodes and every task of every service, as its manager knows them.

    `x` drains the selected node, or activates it again (asking first, naming the tasks that
    move); `r` reads the swarm again; Escape goes back. Tab moves between the nodes and the
    tasks; the line at the bottom says where one more task of the selected service would go.
    Modal, so that the fleet's keys (stop, remove, scale) never act on a selection hidden
    behind it; it fills the terminal all the same.
    """

    AUTO_FOCUS = "#swarm-nodes"

    DEFAULT_CSS = """
    SwarmScreen {
        background: $background;
    }
    SwarmScreen #swarm-heading {
        height: auto;
        text-style: bold;
        padding: 0 1;
    }
    SwarmScreen #swarm-nodes {
        height: auto;
        max-height: 12;
        margin-bottom: 1;
    }
    SwarmScreen #swarm-tasks {
        height: 1fr;
    }
    SwarmScreen #swarm-placement {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="swarm-close"),
        Binding("q", "close", "Back", id="swarm-quit", show=False),
        Binding("r", "refresh", "Read again", id="swarm-refresh"),
        Binding(
            "x",
            "availability",
            "Drain/activate",
            id="swarm-availability",
            tooltip="Drain the selected node (its tasks move to other nodes), or activate it "
            "again (asks first)",
        ),
    ]

    class RefreshRequested(Message):
        """The user wants the swarm read again now."""

    class AvailabilityRequested(Message):
        """The user wants `node` set to `availability` ("drain" or "active")."""

        def __init__(self, node: SwarmNode, availability: str) -> None:
            super().__init__()
            self.node = node
            self.availability = availability

    def __init__(self, host: str, state: SwarmState, *, read_only: bool = False) -> None:
        super().__init__()
        self.host = host
        """The manager's engine URL."""
        self.read_only = read_only
        self.state = state
        self._services: dict[str, SwarmService] = {}
        """Each task row's key (service and task rows alike) -> its service."""
        self._ready = False
        """True once mounted: a state handed in before is drawn by on_mount."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="swarm-heading")
            yield DataTable(id="swarm-nodes", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="swarm-tasks", cursor_type="row", zebra_stripes=True)
            yield Static(id="swarm-placement")
        yield Footer()

    def on_mount(self) -> None:
        if not self.query("#swarm-tasks"):  # pushed as the app quits: never composed
            return
        nodes = self.query_one("#swarm-nodes", DataTable)
        for label, key in NODE_COLUMNS:
            nodes.add_column(label, key=key)
        tasks = self.query_one("#swarm-tasks", DataTable)
        for label, key in TASK_COLUMNS:
            tasks.add_column(label, key=key)
        self._ready = True
        self.show(self.state)
        self.set_interval(1.0, self._heading)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only mode hides draining and activating."""
        return not (action == "availability" and self.read_only)

    # --- what the app hands in -----------------------------------------------------------

    def show(self, state: SwarmState) -> None:
        """Show a new state (a read ended or failed)."""
        self.state = state
        if not self._ready:
            return
        self._heading()
        swarm = state.snapshot
        if swarm is None:
            if state.not_manager is not None:
                self._sync(self.query_one("#swarm-nodes", DataTable), [])
                self._sync(self.query_one("#swarm-tasks", DataTable), [])
                self._services = {}
            self._placement()
            return
        self._sync(
            self.query_one("#swarm-nodes", DataTable),
            [(n.id, self._node_cells(swarm, n)) for n in swarm.nodes],
        )
        rows: list[tuple[str, tuple[Text, ...]]] = []
        services: dict[str, SwarmService] = {}
        for service in swarm.services:
            key = f"service:{service.id}"
            services[key] = service
            rows.append((key, self._service_cells(service)))
            for task in service.tasks:
                key = f"task:{task.id}"
                services[key] = service
                rows.append((key, self._task_cells(task, service)))
        self._services = services
        self._sync(self.query_one("#swarm-tasks", DataTable), rows[:MAX_TASK_ROWS])
        self._placement()

    @staticmethod
    def _sync(table: DataTable[Text], rows: Sequence[tuple[str, tuple[Text, ...]]]) -> None:
        """Make the table hold `rows`: the cells that changed when the rows are the same,
        else rebuilt, the cursor kept on its row (or where it was)."""
        keys = [key for key, _ in rows]
        current = [str(row.value) for row in table.rows]
        if keys == current:
            columns = list(table.columns)
            for key, cells in rows:
                old = table.get_row(key)
                for column, new, was in zip(columns, cells, old, strict=True):
                    if not _same(new, was):
                        table.update_cell(key, column, new)
            return
        keep: str | None = None
        row = table.cursor_row
        if table.row_count and 0 <= row < table.row_count:
            keep = current[row]
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if keep is not None and keep in keys:
            table.move_cursor(row=keys.index(keep))
        elif rows:
            table.move_cursor(row=min(row, len(rows) - 1))

    def _node_cells(self, swarm: SwarmSnapshot, node: SwarmNode) -> tuple[Text, ...]:
        warning = self.app.theme_variables.get("warning", "yellow")
        role = node.role + (" (leader)" if node.leader else "")
        if node.id == swarm.node_id:
            role += " *"  # the engine aitop talks to
        return (
            Text(node.hostname),
            Text(role),
            Text(node.availability, style="" if node.availability == "active" else warning),
            Text(node.state, style="" if node.state == "ready" else f"bold {warning}"),
            Text(node.engine_version),
            Text(node_gpus(node)),
        )

    def _service_cells(self, service: SwarmService) -> tuple[Text, ...]:
        warning = self.app.theme_variables.get("warning", "yellow")
        count = f"{service.running}/{service.desired}"
        return (
            Text(service.name, style="bold"),
            Text(service.image, style="dim"),
            Text(count, style="bold" if service.converged else f"bold {warning}"),
            Text(service.mode, style="dim"),
            Text(""),
        )

    def _task_cells(self, task: SwarmTask, service: SwarmService) -> tuple[Text, ...]:
        error_style = self.app.theme_variables.get("error", "red")
        current = task.desired_state == "running"
        dim = "" if current else "dim"
        bad = task.state in ("failed", "rejected") or (current and bool(task.error))
        return (
            Text(_task_label(service, task), style=dim),
            Text(task.node_hostname or ("(no node)" if not task.node_id else task.node_id[:12])),
            Text(task.state, style=error_style if bad else dim),
            Text(task.desired_state, style=dim),
            Text(task.error, style=error_style if bad else dim),
        )

    def _heading(self) -> None:
        if not self._ready:
            return
        state = self.state
        swarm = state.snapshot
        if state.not_manager is not None:
            heading = f"Swarm of {self.host}: {state.not_manager}"
        elif swarm is None:
            heading = f"Swarm of {self.host}: reading"
        else:
            tasks = sum(1 for s in swarm.services for t in s.tasks if t.desired_state == "running")
            down = sum(1 for n in swarm.nodes if n.state != "ready")
            heading = (
                f"Swarm of {self.host} · {len(swarm.nodes)} nodes"
                + (f" ({down} not ready)" if down else "")
                + f" · {len(swarm.services)} services · {tasks} tasks"
                + f" · read {max(time.time() - swarm.taken_at, 0):.0f} s ago"
            )
        if state.error:
            heading += f" · read failed: {state.error}"
        self.query_one("#swarm-heading", Static).update(Text(heading))

    def _placement(self) -> None:
        swarm = self.state.snapshot
        service = self.selected_service
        text = ""
        if swarm is not None and service is not None:
            text = placement_text(swarm, service)
        elif swarm is not None and not swarm.services:
            text = "no services"
        self.query_one("#swarm-placement", Static).update(Text(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "swarm-tasks":
            self._placement()

    # --- what the user sees and does -----------------------------------------------------

    @property
    def selected_node(self) -> SwarmNode | None:
        """The node under the nodes table's cursor."""
        swarm = self.state.snapshot
        if not self._ready or swarm is None:
            return None
        table = self.query_one("#swarm-nodes", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((n for n in swarm.nodes if n.id == key), None)

    @property
    def selected_service(self) -> SwarmService | None:
        """The service of the task table's cursor row (its header or one of its tasks)."""
        if not self._ready:
            return None
        table = self.query_one("#swarm-tasks", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._services.get(str(key))

    def select_node(self, hostname: str) -> bool:
        """Put the nodes table's cursor on the node with this hostname (False: no such node)."""
        swarm = self.state.snapshot
        node = swarm.node(hostname) if swarm is not None else None
        if node is None or not self._ready:
            return False
        table = self.query_one("#swarm-nodes", DataTable)
        table.move_cursor(row=table.get_row_index(node.id))
        return True

    def select_service(self, name: str) -> bool:
        """Put the tasks table's cursor on this service's header (False: no such service)."""
        swarm = self.state.snapshot
        service = swarm.service(name) if swarm is not None else None
        if service is None or not self._ready:
            return False
        table = self.query_one("#swarm-tasks", DataTable)
        key = f"service:{service.id}"
        if key not in {str(row.value) for row in table.rows}:
            return False
        table.move_cursor(row=table.get_row_index(key))
        self._placement()
        return True

    def rows(self, table_id: str) -> list[tuple[str, ...]]:
        """The plain text of a table's rows, top to bottom ("swarm-nodes" or "swarm-tasks")."""
        if not self._ready:
            return []
        table = self.query_one(f"#{table_id}", DataTable)
        return [
            tuple(str(cell).strip() for cell in table.get_row_at(n)) for n in range(table.row_count)
        ]

    @property
    def placement_line(self) -> str:
        """The placement line as drawn."""
        if not self._ready:
            return ""
        return str(self.query_one("#swarm-placement", Static).render())

    @property
    def heading_line(self) -> str:
        """The heading as drawn."""
        if not self._ready:
            return ""
        return str(self.query_one("#swarm-heading", Static).render())

    def action_close(self) -> None:
        """Back to the fleet."""
        self.dismiss(None)

    def action_refresh(self) -> None:
        """Read the swarm again now."""
        self.post_message(self.RefreshRequested())

    def action_availability(self) -> None:
        """Ask to drain the selected node, or to activate it again."""
        node = self.selected_node
        if node is None:
            return
        self.post_message(self.AvailabilityRequested(node, next_availability(node)))
