"""Keys that steer the fleet: lifecycle actions, exec, inspect, scaling and marks.

`ActionsMixin` is mixed into the application class (`class AitopApp(ActionsMixin, App)`),
whose `BINDINGS` include `ACTION_BINDINGS`. It expects the app to have `engine` (an `Engine`,
or None for a recorded fleet), `last_snapshot` (the latest `FleetSnapshot`) and one
`ContainerTable`; an `ActionProgress` widget, when the app composes one, shows progress.
An app watching several engines overrides `engine_for` and `host_of`, so that every call
goes to the engine that owns the container.

Every engine call runs in a `@work(thread=True, group="actions")` worker that reports back
with `post_message`; confirmations, pickers and the inspect view are modal screens. In
read-only mode (`engine.read_only`) every changing action is hidden (`check_action`) and
refused if invoked anyway, and the engine itself refuses below that.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from typing import Any

from textual import work
from textual.app import SuspendNotSupported
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import Worker, WorkerState

from tui.commands import ACTION_COMMANDS, bindings
from tui.fleet.actions import lifecycle as act
from tui.fleet.actions.inspect import inspect_sections
from tui.fleet.actions.scaling.execute import execute_plan
from tui.fleet.actions.scaling.groups import KIND_SWARM, ScaleGroup, find_group
from tui.fleet.actions.scaling.placement import PlacementError
from tui.fleet.actions.scaling.plan import ScalePlan, plan_scale, step_plan
from tui.fleet.engine.errors import EngineError
from tui.fleet.models import ContainerInfo, FleetSnapshot
from tui.screens.confirm import ConfirmAnswer, ConfirmScreen
from tui.screens.inspect import InspectScreen
from tui.screens.replica import ReplicaScreen
from tui.screens.signal import SignalScreen
from widgets.action_progress import ActionProgress
from widgets.container_table import ContainerTable

ACTION_BINDINGS: list[Binding] = bindings(ACTION_COMMANDS)
"""The bindings of the actions; add them to the app's BINDINGS."""

MUTATING_ACTIONS = frozenset(
    {
        "start_container",
        "stop_container",
        "restart_container",
        "pause_container",
        "kill_container",
        "remove_container",
        "exec_shell",
        "scale_up",
        "scale_down",
        "scale_to",
        "toggle_mark",
    }
)
"""Actions hidden and refused in read-only mode (marks only serve changing actions)."""

ACTIONS_GROUP = "actions"
"""Worker group of every action."""


class ActionProgressed(Message):
    """A running action made progress (posted from its worker thread)."""

    def __init__(self, text: str, done: int = 0, total: int = 0) -> None:
        self.text = text
        self.done = done
        self.total = total
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ActionProgressed)


class ActionCompleted(Message):
    """An action ended: what to tell the user, and how loudly."""

    def __init__(self, text: str, severity: str = "information", *, ends: bool = True) -> None:
        self.text = text
        self.severity = severity
        self.ends = ends
        """False for an answer that ended no progress display (an inspect that failed)."""
        super().__init__()


class ScaleAsked(Message):
    """A scale group was found; the next step needs the user (a count or a confirmation)."""

    def __init__(self, group: ScaleGroup, plan: ScalePlan | None, engine: Any = None) -> None:
        self.group = group
        self.plan = plan
        self.engine = engine
        """The engine the group runs on."""
        super().__init__()


class PlacementBlocked(Message):
    """No GPU can hold another replica; the user may force it."""

    def __init__(self, plan: ScalePlan, reason: str, engine: Any = None) -> None:
        self.plan = plan
        self.reason = reason
        self.engine = engine
        """The engine the plan runs on."""
        super().__init__()


class InspectFetched(Message):
    """A container's inspect data arrived."""

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        self.name = name
        self.attrs = attrs
        super().__init__()


def gpu_inputs(
    snapshot: FleetSnapshot | None, source_id: str
) -> tuple[dict[str, int | None] | None, int | None]:
    """Per-GPU free memory and the source's use per GPU, for `place_replicas`.

    Keys are GPU indices, or UUIDs when the source was given GPUs by UUID. (None, None) when
    the GPUs are not visible.
    """
    report = snapshot.gpu if snapshot is not None else None
    if report is None or not report.ok or not report.devices:
        return None, None
    container = next((c for c in snapshot.containers if c.info.id == source_id), None)
    assigned = container.info.gpus_assigned if container is not None else ()
    by_uuid = any(a.startswith("GPU-") for a in assigned)
    free: dict[str, int | None] = {}
    for device in report.devices:
        key = device.uuid if by_uuid else str(device.index)
        if key is None:
            continue
        if device.mem_total_bytes is None or device.mem_used_bytes is None:
            free[key] = None
        else:
            free[key] = device.mem_total_bytes - device.mem_used_bytes
    used = [g.mem_bytes for g in container.gpus] if container is not None else []
    need = max(used) if used and all(m is not None for m in used) else None  # type: ignore[type-var]
    return free, need


class ActionsMixin:
    """Lifecycle, exec, inspect, scaling and marks for the app (see the module docstring)."""

    engine: Any
    last_snapshot: FleetSnapshot | None

    # --- state -------------------------------------------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marked: set[str] = set()
        """Ids of the containers marked for a bulk action."""
        self._in_flight = 0

    @property
    def read_only(self) -> bool:
        """True when aitop must change nothing (`aitop --read-only`)."""
        return bool(getattr(self.engine, "read_only", False))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide every changing action in read-only mode."""
        if action in MUTATING_ACTIONS and self.read_only:
            return False
        parent = getattr(super(), "check_action", None)
        return parent(action, parameters) if parent is not None else True

    def _refuse(self, what: str) -> bool:
        app: Any = self
        if self.read_only:
            app.notify(f"read-only mode: {what} refused", severity="warning", markup=False)
            return True
        if self.engine is None:
            app.notify(f"no engine to {what} (a recorded fleet)", severity="warning", markup=False)
            return True
        return False

    def _table(self) -> ContainerTable:
        app: Any = self
        return app.query_one(ContainerTable)

    def engine_for(self, container_id: str | None = None, *, host: str | None = None) -> Any:
        """The engine that owns a container (or a host's rows): here, the one engine."""
        return self.engine

    def host_of(self, container_id: str) -> str | None:
        """The engine URL a container belongs to; None with one engine."""
        return None

    def _selection(self) -> tuple[str | None, tuple[str, str] | None]:
        """(selected container id, selected group) under the table's cursor."""
        table = self._table()
        return table.selected_container_id, table.selected_group

    def _containers(self, host: str | None = None) -> tuple[ContainerInfo, ...]:
        """The containers of every engine, or of the engine `host` only."""
        snapshot = self.last_snapshot
        if snapshot is None:
            return ()
        infos = (c.info for c in snapshot.containers)
        if host is None:
            return tuple(infos)
        return tuple(i for i in infos if self.host_of(i.id) == host)

    def _targets(self) -> tuple[ContainerInfo, ...]:
        selected, group = self._selection()
        everyone = self._containers()
        host = self._table().selected_host
        # A group row means that group on its own host (the same project may run on two);
        # marks may span hosts.
        marks = self.marked & {c.id for c in everyone}
        pool = everyone if marks or host is None else self._containers(host)
        return act.resolve_targets(
            pool, marked=self.marked, selected_id=selected, selected_group=group
        )

    def _progress_widget(self) -> ActionProgress | None:
        app: Any = self
        try:
            return app.query_one(ActionProgress)
        except NoMatches:
            return None

    def _show_marks(self) -> None:
        widget = self._progress_widget()
        if widget is not None:
            widget.marked = len(self.marked)
        table = self._table()
        setter = getattr(table, "set_marked", None)
        if setter is not None:
            setter(frozenset(self.marked))

    def _report(self, done: int, total: int, text: str) -> None:
        app: Any = self
        app.post_message(ActionProgressed(text, done, total))

    def _started(self, text: str) -> None:
        self._in_flight += 1
        widget = self._progress_widget()
        if widget is not None:
            widget.show_progress(text)
        else:
            app: Any = self
            app.notify(text, timeout=3, markup=False)

    # --- marks -------------------------------------------------------------------------------

    def action_toggle_mark(self) -> None:
        """Mark or unmark the selected container (a group row: all its containers)."""
        selected, group = self._selection()
        ids = {
            c.id
            for c in act.resolve_targets(
                self._containers(), selected_id=selected, selected_group=group
            )
        }
        if not ids:
            return
        if ids <= self.marked:
            self.marked.difference_update(ids)
        else:
            self.marked.update(ids)
        self._show_marks()
        table = self._table()
        if selected is not None and table.cursor_row < len(table.row_keys) - 1:
            table.move_cursor(row=table.cursor_row + 1)

    # --- lifecycle ---------------------------------------------------------------------------

    def action_start_container(self) -> None:
        """Start the marked or selected container(s)."""
        self._lifecycle(act.START)

    def action_stop_container(self) -> None:
        """Stop the marked or selected container(s), after a confirmation."""
        self._lifecycle(act.STOP)

    def action_restart_container(self) -> None:
        """Restart the marked or selected container(s)."""
        self._lifecycle(act.RESTART)

    def action_pause_container(self) -> None:
        """Pause the running targets, or unpause them when none runs."""
        self._lifecycle(act.PAUSE)

    def action_kill_container(self) -> None:
        """Pick a signal, confirm, and send it to the marked or selected container(s)."""
        self._lifecycle(act.KILL)

    def action_remove_container(self) -> None:
        """Remove the marked or selected container(s), after a confirmation."""
        self._lifecycle(act.REMOVE)

    def _lifecycle(self, action: str) -> None:
        app: Any = self
        if self._refuse(action):
            return
        targets = self._targets()
        if not targets:
            app.notify("Select a container or mark some (space)", severity="warning", markup=False)
            return
        if action == act.PAUSE:
            action, targets = act.pause_or_unpause(targets)
            if not targets:
                app.notify(
                    "Nothing to pause or unpause: none of them runs",
                    severity="warning",
                    markup=False,
                )
                return
        if action == act.KILL:

            def picked(signal: str | None) -> None:
                if signal:
                    self._confirm_then_run(act.KILL, targets, signal)

            app.push_screen(SignalScreen(act.describe(targets), act.SIGNALS), picked)
            return
        self._confirm_then_run(action, targets, "")

    def _confirm_then_run(
        self, action: str, targets: tuple[ContainerInfo, ...], signal: str
    ) -> None:
        app: Any = self
        question = act.confirmation(action, targets, signal=signal)
        if question is None:
            self._run_lifecycle(action, targets, signal, False)
            return

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self._run_lifecycle(action, targets, signal, answer.option)
            else:
                app.notify(
                    f"{act.ACTIONS[action].verb}: cancelled, nothing changed",
                    timeout=3,
                    markup=False,
                )

        app.push_screen(
            ConfirmScreen(question.title, question.items, option=question.option, yes=question.yes),
            answered,
        )

    def _run_lifecycle(
        self, action: str, targets: tuple[ContainerInfo, ...], signal: str, volumes: bool
    ) -> None:
        consumed = {c.id for c in targets} & self.marked
        if consumed:
            self.marked.difference_update(consumed)
            self._show_marks()
        spec = act.ACTIONS[action]
        self._started(f"{spec.progressive} {act.describe(targets)}…")
        self._lifecycle_worker(action, targets, signal, volumes)

    @work(
        thread=True,
        exit_on_error=False,
        group=ACTIONS_GROUP,
        description="lifecycle action",
    )
    def _lifecycle_worker(
        self, action: str, targets: tuple[ContainerInfo, ...], signal: str, volumes: bool
    ) -> None:
        by_engine: dict[int, tuple[Any, list[ContainerInfo]]] = {}
        for info in targets:
            engine = self.engine_for(info.id)
            by_engine.setdefault(id(engine), (engine, []))[1].append(info)
        results = [
            act.run_action(
                engine,
                action,
                mine,
                signal=signal,
                volumes=volumes,
                on_progress=self._report_step,
            )
            for engine, mine in by_engine.values()
        ]
        result = results[0]
        if len(results) > 1:
            result = act.ActionResult(
                result.action,
                succeeded=tuple(o for r in results for o in r.succeeded),
                failed=tuple(o for r in results for o in r.failed),
                refused=result.refused if all(r.refused for r in results) else "",
                detail=result.detail,
            )
        app: Any = self
        app.post_message(ActionCompleted(result.summary, result.severity))

    def _report_step(self, done: int, total: int, text: str) -> None:
        self._report(done, total, text)

    # --- exec --------------------------------------------------------------------------------

    def action_exec_shell(self) -> None:
        """Suspend the UI and open an interactive shell in the selected container."""
        app: Any = self
        if self._refuse("exec a shell"):
            return
        selected, _ = self._selection()
        info = next((c for c in self._containers() if c.id == selected), None)
        if info is None:
            app.notify("Select one container to open a shell in", severity="warning", markup=False)
            return
        if info.state != "running":
            app.notify(
                f"{info.name} is {info.state}: start it first (u)", severity="warning", markup=False
            )
            return
        try:
            argv = act.shell_argv(self.engine_for(info.id), info.id)
        except EngineError as exc:
            app.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        started = time.monotonic()
        try:
            with app.suspend():
                # The terminal belongs to the shell until it exits.
                code = subprocess.call(argv)
        except SuspendNotSupported:
            app.notify(
                "This terminal cannot be handed over to a shell", severity="error", markup=False
            )
            return
        except OSError as exc:
            app.notify(f"Cannot run the docker client: {exc}", severity="error", markup=False)
            return
        text = act.shell_exit_text(info.name, code, argv)
        if code and time.monotonic() - started < 2:
            app.notify(text, severity="error", timeout=10, markup=False)
        else:
            app.notify(
                text, severity="information" if code == 0 else "warning", timeout=4, markup=False
            )

    # --- inspect -----------------------------------------------------------------------------

    def action_inspect_container(self) -> None:
        """Show the selected container's configuration (secrets masked; `m` reveals)."""
        app: Any = self
        if self.engine is None:
            app.notify("no engine to inspect (a recorded fleet)", severity="warning", markup=False)
            return
        selected, _ = self._selection()
        info = next((c for c in self._containers() if c.id == selected), None)
        if info is None:
            app.notify("Select one container to inspect", severity="warning", markup=False)
            return
        self._inspect_worker(info.id, info.name)

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="inspect")
    def _inspect_worker(self, container_id: str, name: str) -> None:
        app: Any = self
        try:
            attrs = self.engine_for(container_id).inspect(container_id)
        except EngineError as exc:
            app.post_message(ActionCompleted(f"Inspect {name}: {exc}", "error", ends=False))
            return
        app.post_message(InspectFetched(name, attrs))

    def on_inspect_fetched(self, message: InspectFetched) -> None:
        app: Any = self
        attrs = message.attrs
        app.push_screen(
            InspectScreen(message.name, lambda reveal: inspect_sections(attrs, reveal=reveal))
        )

    # --- scaling -----------------------------------------------------------------------------

    def action_scale_up(self) -> None:
        """One replica more of the selected service or container."""
        self._scale_begin(1)

    def action_scale_down(self) -> None:
        """One replica fewer (asks, naming the replica that goes)."""
        self._scale_begin(-1)

    def action_scale_to(self) -> None:
        """Ask for an exact replica count."""
        self._scale_begin(None)

    def _scale_begin(self, step: int | None) -> None:
        app: Any = self
        if self._refuse("scale"):
            return
        selected, group = self._selection()
        if selected is None and group is None:
            app.notify("Select a service or a container to scale", severity="warning", markup=False)
            return
        engine = self.engine_for(selected, host=self._table().selected_host)
        self._started("looking up replicas…")
        self._scale_find_worker(selected, group, step, engine)

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="find replicas")
    def _scale_find_worker(
        self,
        selected: str | None,
        group: tuple[str, str] | None,
        step: int | None,
        engine: Any = None,
    ) -> None:
        app: Any = self
        engine = engine if engine is not None else self.engine
        try:
            found = find_group(engine, container_id=selected, group=group)
            plan = step_plan(found, step) if step is not None else None
        except EngineError as exc:
            app.post_message(ActionCompleted(f"Scale: {exc}", "error"))
            return
        if plan is not None and not plan.needs_confirmation:
            self._execute_scale(plan, force=False, volumes=False, engine=engine)
            return
        app.post_message(ScaleAsked(found, plan, engine))

    def on_scale_asked(self, message: ScaleAsked) -> None:
        app: Any = self
        self._finish_progress()
        engine = message.engine
        if message.plan is not None:
            self._confirm_scale(message.plan, engine)
            return
        group = message.group

        def counted(count: int | None) -> None:
            if count is None:
                app.notify("Scale: cancelled, nothing changed", timeout=3, markup=False)
                return
            try:
                plan = plan_scale(group, count)
            except EngineError as exc:
                app.notify(f"Scale: {exc}", severity="error", timeout=10, markup=False)
                return
            if plan.changes_nothing:
                app.notify(plan.describe(), timeout=4, markup=False)
            elif plan.needs_confirmation:
                self._confirm_scale(plan, engine)
            else:
                self._started(plan.describe() + "…")
                self._scale_worker(plan, False, False, engine)

        app.push_screen(ReplicaScreen(group.label, group.count), counted)

    def _confirm_scale(self, plan: ScalePlan, engine: Any = None) -> None:
        app: Any = self
        group = plan.group
        if group.kind == KIND_SWARM:
            items = [
                f"{group.count - plan.desired} of {group.count} tasks of {group.label} "
                "(the swarm picks which)"
            ]
            option = ""
        else:
            items = [
                f"{r.name}  ({r.id[:12]}, {r.state or 'unknown state'})"
                + ("  ← the ORIGINAL container" if r.id == group.origin_id else "")
                for r in plan.remove
            ]
            option = "also remove their anonymous volumes"
        title = plan.describe() + "?"

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self._started(plan.describe() + "…")
                self._scale_worker(plan, False, answer.option, engine)
            else:
                app.notify("Scale: cancelled, nothing changed", timeout=3, markup=False)

        app.push_screen(ConfirmScreen(title, items, option=option, yes="Scale down"), answered)

    def on_placement_blocked(self, message: PlacementBlocked) -> None:
        app: Any = self
        self._finish_progress()
        plan = message.plan

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self._started(plan.describe() + " (forced)…")
                self._scale_worker(plan, True, False, message.engine)
            else:
                app.notify("Scale: nothing was created", timeout=4, markup=False)

        app.push_screen(
            ConfirmScreen(
                message.reason,
                [f"{plan.add} new replica(s) of {plan.group.label} on the source's GPUs"],
                yes="Place anyway",
            ),
            answered,
        )

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="scale")
    def _scale_worker(
        self, plan: ScalePlan, force: bool, volumes: bool, engine: Any = None
    ) -> None:
        self._execute_scale(plan, force=force, volumes=volumes, engine=engine)

    def _execute_scale(
        self, plan: ScalePlan, *, force: bool, volumes: bool, engine: Any = None
    ) -> None:
        """Carry out a plan on `engine` (default: the one engine) on a worker thread, and post
        the outcome."""
        app: Any = self
        engine = engine if engine is not None else self.engine
        free, need = None, None
        # The GPUs known here are this machine's: they say nothing of a remote engine's.
        if getattr(engine, "is_local", True):
            free, need = gpu_inputs(self.last_snapshot, plan.group.source_id)
        try:
            result = execute_plan(
                engine,
                plan,
                gpu_free=free,
                gpu_need=need,
                force=force,
                volumes=volumes,
                allow_original=plan.removes_original,
                on_progress=self._report_step,
            )
        except PlacementError as exc:
            app.post_message(PlacementBlocked(plan, str(exc), engine))
            return
        except EngineError as exc:
            app.post_message(ActionCompleted(f"Scale {plan.group.label}: {exc}", "error"))
            return
        app.post_message(ActionCompleted(result.summary, result.severity))

    # --- reporting ---------------------------------------------------------------------------

    def on_action_progressed(self, message: ActionProgressed) -> None:
        widget = self._progress_widget()
        if widget is not None:
            widget.show_progress(message.text, message.done, message.total)

    def on_action_completed(self, message: ActionCompleted) -> None:
        app: Any = self
        if message.ends:
            self._finish_progress()
        timeout = 5 if message.severity == "information" else 15
        app.notify(message.text, severity=message.severity, timeout=timeout, markup=False)

    def _finish_progress(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        widget = self._progress_widget()
        if widget is not None and not self._in_flight:
            widget.finish()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An action's worker failed unexpectedly: say so instead of failing silently."""
        worker = event.worker
        if worker.group != ACTIONS_GROUP or event.state != WorkerState.ERROR:
            return
        app: Any = self
        self._finish_progress()
        app.notify(
            f"{worker.description} failed: {worker.error!r}",
            severity="error",
            timeout=15,
            markup=False,
        )
