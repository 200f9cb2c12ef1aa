"""Keys that steer the fleet: lifecycle actions, exec, inspect, scaling and marks.

`FleetActions` is an `App` that `AitopApp` subclasses: it holds the `Fleets` (which engine owns
which container, the latest snapshot) and the marks, and acts on what the `ContainerTable` it
composes has under its cursor (`ContainerTable.selection`, read when the key is pressed: an
action must hit the row the user sees, not the last one a message reported). An
`ActionProgress` widget, when the app composes one, shows progress. The bindings come from the
command registry (`tui.commands.ACTION_COMMANDS`); the app lists them in its `BINDINGS`.

Every engine call runs in a `@work(thread=True, group="actions")` worker that reports back
with `post_message` (`tui.messages`); confirmations, pickers and the inspect view are modal
screens. In read-only mode every changing action (`MUTATING_ACTIONS`) is hidden
(`check_action`) and refused if invoked anyway, and the engine itself refuses below that.
"""

from __future__ import annotations

import subprocess
import time

from textual import events, work
from textual.app import App, SuspendNotSupported
from textual.css.query import NoMatches
from textual.keys import _character_to_key
from textual.notifications import SeverityLevel
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from tui import input_fix
from tui.commands import MUTATING_ACTIONS
from tui.fleet.actions import lifecycle as act
from tui.fleet.actions.inspect import inspect_sections
from tui.fleet.actions.scaling.execute import execute_plan
from tui.fleet.actions.scaling.groups import KIND_SWARM, find_group
from tui.fleet.actions.scaling.placement import PlacementError
from tui.fleet.actions.scaling.plan import ScalePlan, plan_scale, step_plan
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.models import ContainerInfo, FleetSnapshot
from tui.fleet.swarm import placement_before_scaling
from tui.fleets import Fleets
from tui.messages import (
    ActionCompleted,
    ActionProgressed,
    InspectFetched,
    PlacementBlocked,
    ScaleAsked,
)
from tui.screens.confirm import ConfirmAnswer, ConfirmScreen
from tui.screens.inspect import InspectScreen
from tui.screens.replica import ReplicaScreen
from tui.screens.signal import SignalScreen
from widgets.action_progress import ActionProgress
from widgets.container_table import ContainerTable, Selection
from widgets.status_line import StatusLine

ACTIONS_GROUP = "actions"
"""Worker group of every action."""

FOCUS_ACTIONS = frozenset(
    {
        # The app's: a box, a pane, the palette, help, the serving view, or a question.
        "filter",
        "clear_filter",
        "toggle_logs",
        "command_palette",
        "show_help",
        "show_serving",
        "show_container",
        "show_events",
        "show_disk",
        "show_swarm",
        "pick_columns",
        "stop_container",
        "kill_container",
        "remove_container",
        "scale_down",
        "scale_to",
        # The log pane's: its search box.
        "search",
        "escape",
    }
)
"""Actions whose key opens or closes something: the keys typed right behind it wait until
it did (`input_fix.HeldKeys`), so that they go where the user saw them go."""

PRINTABLE_KEYS = frozenset(_character_to_key(chr(code)) for code in range(32, 127))
"""Textual's names of the keys that type a character ("a", "plus", "slash", "space", ...)."""

_SEVERITIES: dict[str, SeverityLevel] = {
    "information": "information",
    "warning": "warning",
    "error": "error",
}


def notice_level(severity: str) -> SeverityLevel:
    """A result's severity ("information", "warning", "error") as Textual's notify takes it."""
    return _SEVERITIES.get(severity, "error")


def gpu_inputs(
    snapshot: FleetSnapshot | None, source_id: str
) -> tuple[dict[str, int | None] | None, int | None]:
    """Per-GPU free memory and the source's use per GPU, for `place_replicas`.

    Keys are GPU indices, or UUIDs when the source was given GPUs by UUID. (None, None) when
    the GPUs are not visible.
    """
    report = snapshot.gpu if snapshot is not None else None
    if snapshot is None or report is None or not report.ok or not report.devices:
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
    known = [m for m in used if m is not None]
    need = max(known) if used and len(known) == len(used) else None
    return free, need


class FleetActions(App[None]):
    """Lifecycle, exec, inspect, scaling and marks for the app (see the module docstring)."""

    def __init__(self, fleets: Fleets) -> None:
        super().__init__()
        # Keys typed in one burst stay in their order (Textual issue 6605, tui/input_fix.py).
        input_fix.install()
        self._held_keys = input_fix.HeldKeys()
        self._typed: frozenset[str] | None = None
        self.fleets = fleets
        """The engines watched and what they hold (read by the action workers too)."""
        self.marked: set[str] = set()
        """Ids of the containers marked for a bulk action."""
        self._in_flight = 0

    # --- state -------------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True when aitop must change nothing (`aitop --read-only`)."""
        return self.fleets.read_only

    @property
    def last_snapshot(self) -> FleetSnapshot | None:
        """The latest picture of every engine together; None before the first."""
        return self.fleets.snapshot

    def engine_for(
        self, container_id: str | None = None, *, host: str | None = None
    ) -> Engine | None:
        """The engine that owns a container (or a host's rows); None for a recorded fleet."""
        return self.fleets.engine_for(container_id, host=host)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide every changing action in read-only mode, and while a text box has the focus
        the app's keys that type into it (the footer showed `+ +1` in the filter box)."""
        if action in MUTATING_ACTIONS and self.read_only:
            return False
        focused = self.focused
        # The fleet's own text boxes only (the filter): the palette's box looks up commands
        # by what check_action allows.
        on_fleet = len(self.screen_stack) == 1
        if isinstance(focused, Input) and on_fleet and action in self._typed_actions():
            return False
        return super().check_action(action, parameters)

    def _typed_actions(self) -> frozenset[str]:
        """The app's actions whose every key is a printable character (the keymap applied)."""
        if self._typed is None:
            bindings = self._bindings.copy()
            if self._keymap:
                bindings.apply_keymap(self._keymap)
            keys: dict[str, list[str]] = {}
            for key, found in bindings.key_to_bindings.items():
                for binding in found:
                    keys.setdefault(binding.action, []).append(key)
            self._typed = frozenset(
                action for action, ks in keys.items() if all(k in PRINTABLE_KEYS for k in ks)
            )
        return self._typed

    async def on_event(self, event: events.Event) -> None:
        """Keys in one burst, as typed (tui/input_fix.py): an Esc read together with the next
        key came as Alt+key: it is Escape then the key, unless something binds that Alt+key;
        and the keys behind one that opens or closes something wait until it did."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            held = self._held_keys
            if held.holding:
                held.hold(event)
                return
            where = (self.screen, self.focused)
            keys = input_fix.split_escape(event, self._is_bound)
            if keys is not None:
                escape, key = keys
                escape.set_sender(self)
                key.set_sender(self)
                await super().on_event(escape)
                held.start(where, key)
                self.set_timer(0.01, self._release_keys)
                return
            moves = self._moves_focus(event)
            await super().on_event(event)
            if moves:
                held.start(where)
                self.set_timer(0.01, self._release_keys)
            return
        await super().on_event(event)

    def _moves_focus(self, event: events.Key) -> bool:
        """Whether the key, where the focus is, opens or closes a screen or a box (in a text
        box a printable key types itself: `-` in the filter is a character, not Scale down)."""
        if event.is_printable and isinstance(self.focused, Input):
            return False
        active = self.screen.active_bindings.get(event.key)
        return active is not None and active.binding.action in FOCUS_ACTIONS

    async def _release_keys(self) -> None:
        if not self.screen_stack:
            return  # aitop is ending (the key that closed the last screen was `q`): drop them
        held = self._held_keys.release((self.screen, self.focused))
        if held is None:
            self.set_timer(0.01, self._release_keys)
            return
        for key in held:
            # In order; one of them may hold the rest again.
            await self.on_event(key)

    def _is_bound(self, key: str) -> bool:
        """Whether a binding where the focus is (the user's keymap applied) takes `key`."""
        return key in self.screen.active_bindings

    def on_mount(self) -> None:
        """Say read-only mode in the status line, from the start."""
        for status in self.query(StatusLine):
            status.read_only = self.read_only

    def on_key(self, event: events.Key) -> None:
        """A changing key in read-only mode: its binding is hidden (`check_action`), so the
        key reaches the app unhandled; say why nothing happens instead of ignoring it."""
        if not self.read_only:
            return
        bindings = self._bindings.copy()
        if self._keymap:
            bindings.apply_keymap(self._keymap)
        for binding in bindings.key_to_bindings.get(event.key, ()):
            if binding.action in MUTATING_ACTIONS:
                event.stop()
                what = (binding.description or binding.action.replace("_", " ")).lower()
                self.notify(
                    f"read-only mode: {what} refused (aitop --read-only changes nothing)",
                    severity="warning",
                    timeout=4,
                    markup=False,
                )
                return

    def _refuse(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only mode: {what} refused", severity="warning", markup=False)
            return True
        if self.fleets.engine is None:
            self.notify(f"no engine to {what} (a recorded fleet)", severity="warning", markup=False)
            return True
        return False

    def key_of(self, action: str, default: str) -> str:
        """The key the user presses for `action` here (their keymap's), for a hint."""
        for active in self.screen.active_bindings.values():
            if active.binding.action == action:
                return self.get_key_display(active.binding)
        return default

    def _table(self) -> ContainerTable:
        return self.query_one(ContainerTable)

    def _selection(self) -> Selection:
        return self._table().selection

    def _targets(self) -> tuple[ContainerInfo, ...]:
        selection = self._selection()
        everyone = self.fleets.containers()
        # A group row means that group on its own host (the same project may run on two);
        # marks may span hosts.
        marks = self.marked & {c.id for c in everyone}
        host = selection.host
        pool = everyone if marks or host is None else self.fleets.containers(host)
        return act.resolve_targets(
            pool,
            marked=self.marked,
            selected_id=selection.container_id,
            selected_group=selection.group,
        )

    def _selected_container(self) -> ContainerInfo | None:
        selected = self._selection().container_id
        return next((c for c in self.fleets.containers() if c.id == selected), None)

    def _progress_widget(self) -> ActionProgress | None:
        try:
            return self.query_one(ActionProgress)
        except NoMatches:
            return None

    def _show_marks(self) -> None:
        widget = self._progress_widget()
        if widget is not None:
            widget.marked = len(self.marked)
        self._table().marked = frozenset(self.marked)

    def forget_gone_marks(self, snapshot: FleetSnapshot) -> None:
        """Drop the marks of containers no longer in `snapshot`: a removed container's mark
        would act on nothing (or on a reused id). An inspect view open on one says it went."""
        alive = {c.info.id for c in snapshot.containers}
        if snapshot.engine.reachable:
            for screen in self.screen_stack:
                if (
                    isinstance(screen, InspectScreen)
                    and screen.container_id
                    and screen.container_id not in alive
                ):
                    screen.mark_gone()
        if not self.marked:
            return
        if not self.marked <= alive:
            self.marked &= alive
            self._show_marks()

    def _report(self, done: int, total: int, text: str) -> None:
        self.post_message(ActionProgressed(text, done, total))

    def _started(self, text: str) -> None:
        self._in_flight += 1
        widget = self._progress_widget()
        if widget is not None:
            widget.show_progress(text)
        else:
            self.notify(text, timeout=3, markup=False)

    # --- marks -------------------------------------------------------------------------------

    def action_toggle_mark(self) -> None:
        """Mark or unmark the selected container (a group row: all its containers)."""
        selection = self._selection()
        ids = {
            c.id
            for c in act.resolve_targets(
                self.fleets.containers(),
                selected_id=selection.container_id,
                selected_group=selection.group,
            )
        }
        if not ids:
            return
        if ids <= self.marked:
            self.marked.difference_update(ids)
        else:
            self.marked.update(ids)
        self._show_marks()
        if selection.kind == "container":
            self._table().action_cursor_down()

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
        if self._refuse(action):
            return
        targets = self._targets()
        if not targets:
            self.notify("Select a container or mark some (space)", severity="warning", markup=False)
            return
        if action == act.PAUSE:
            action, targets = act.pause_or_unpause(targets)
            if not targets:
                self.notify(
                    "Nothing to pause or unpause: none of them runs",
                    severity="warning",
                    markup=False,
                )
                return
        if action == act.KILL:

            def picked(signal: str | None) -> None:
                if signal:
                    self._confirm_then_run(act.KILL, targets, signal)

            self.push_screen(SignalScreen(act.describe(targets), act.SIGNALS), picked)
            return
        self._confirm_then_run(action, targets, "")

    def _confirm_then_run(
        self, action: str, targets: tuple[ContainerInfo, ...], signal: str
    ) -> None:
        question = act.confirmation(action, targets, signal=signal)
        if question is None:
            self._run_lifecycle(action, targets, signal, False)
            return

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self._run_lifecycle(action, targets, signal, answer.option)
            else:
                self.notify(
                    f"{act.ACTIONS[action].verb}: cancelled, nothing changed",
                    timeout=3,
                    markup=False,
                )

        self.push_screen(
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
        by_engine: dict[int, tuple[Engine, list[ContainerInfo]]] = {}
        unowned: list[ContainerInfo] = []
        for info in targets:
            engine = self.fleets.engine_for(info.id)
            if engine is None:
                unowned.append(info)
                continue
            by_engine.setdefault(id(engine), (engine, []))[1].append(info)
        results = [
            act.run_action(
                engine,
                action,
                mine,
                signal=signal,
                volumes=volumes,
                on_progress=self._report,
            )
            for engine, mine in by_engine.values()
        ]
        if unowned:
            # Only a recorded fleet beside live ones has containers no engine owns.
            failed = tuple(
                act.Outcome(i.id, i.name, "no engine (a recorded fleet)") for i in unowned
            )
            results.append(act.ActionResult(action, failed=failed))
        result = results[0]
        if len(results) > 1:
            result = act.ActionResult(
                result.action,
                succeeded=tuple(o for r in results for o in r.succeeded),
                failed=tuple(o for r in results for o in r.failed),
                refused=result.refused if all(r.refused for r in results) else "",
                detail=result.detail,
            )
        self.post_message(ActionCompleted(result.summary, notice_level(result.severity)))

    # --- exec --------------------------------------------------------------------------------

    def action_exec_shell(self) -> None:
        """Suspend the UI and open an interactive shell in the selected container."""
        if self._refuse("exec a shell"):
            return
        info = self._selected_container()
        if info is None:
            self.notify("Select one container to open a shell in", severity="warning", markup=False)
            return
        if info.state != "running":
            if info.state == "paused":
                # The engine refuses to start a paused container: `p` (or `u`) thaws it.
                hint = f"unpause it first ({self.key_of('pause_container', 'p')})"
            else:
                hint = f"start it first ({self.key_of('start_container', 'u')})"
            self.notify(f"{info.name} is {info.state}: {hint}", severity="warning", markup=False)
            return
        engine = self.fleets.engine_for(info.id)
        if engine is None:
            self.notify(
                "no engine to exec a shell (a recorded fleet)", severity="warning", markup=False
            )
            return
        try:
            argv = act.shell_argv(engine, info.id)
        except EngineError as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        started = time.monotonic()
        try:
            with self.suspend():
                # The terminal belongs to the shell until it exits.
                code = subprocess.call(argv)
        except SuspendNotSupported:
            self.notify(
                "This terminal cannot be handed over to a shell", severity="error", markup=False
            )
            return
        except OSError as exc:
            self.notify(f"Cannot run the docker client: {exc}", severity="error", markup=False)
            return
        text = act.shell_exit_text(info.name, code, argv)
        if code and time.monotonic() - started < 2:
            self.notify(text, severity="error", timeout=10, markup=False)
        else:
            self.notify(
                text, severity="information" if code == 0 else "warning", timeout=4, markup=False
            )

    # --- inspect -----------------------------------------------------------------------------

    def action_inspect_container(self) -> None:
        """Show the selected container's configuration (secrets masked; `m` reveals)."""
        if self.fleets.engine is None:
            self.notify("no engine to inspect (a recorded fleet)", severity="warning", markup=False)
            return
        info = self._selected_container()
        engine = self.fleets.engine_for(info.id) if info is not None else None
        if info is None or engine is None:
            self.notify("Select one container to inspect", severity="warning", markup=False)
            return
        self._inspect_worker(engine, info.id, info.name)

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="inspect")
    def _inspect_worker(self, engine: Engine, container_id: str, name: str) -> None:
        try:
            attrs = engine.inspect(container_id)
        except EngineError as exc:
            self.post_message(ActionCompleted(f"Inspect {name}: {exc}", "error", ends=False))
            return
        self.post_message(InspectFetched(name, attrs))

    def on_inspect_fetched(self, message: InspectFetched) -> None:
        attrs = message.attrs
        self.push_screen(
            InspectScreen(
                message.name,
                lambda reveal: inspect_sections(attrs, reveal=reveal),
                container_id=str(attrs.get("Id") or ""),
            )
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
        if self._refuse("scale"):
            return
        selection = self._selection()
        if selection.container_id is None and selection.group is None:
            self.notify(
                "Select a service or a container to scale", severity="warning", markup=False
            )
            return
        engine = self.fleets.engine_for(selection.container_id, host=selection.host)
        if engine is None:
            self.notify("no engine to scale (a recorded fleet)", severity="warning", markup=False)
            return
        self._started("looking up replicas…")
        self._scale_find_worker(selection, step, engine)

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="find replicas")
    def _scale_find_worker(self, selection: Selection, step: int | None, engine: Engine) -> None:
        try:
            found = find_group(engine, container_id=selection.container_id, group=selection.group)
            plan = step_plan(found, step) if step is not None else None
        except EngineError as exc:
            self.post_message(ActionCompleted(f"Scale: {exc}", "error"))
            return
        if plan is not None and not plan.needs_confirmation:
            self._execute_scale(plan, force=False, volumes=False, engine=engine)
            return
        self.post_message(ScaleAsked(found, plan, engine))

    def on_scale_asked(self, message: ScaleAsked) -> None:
        self._finish_progress()
        engine = message.engine
        if message.plan is not None:
            self._confirm_scale(message.plan, engine)
            return
        group = message.group

        def counted(count: int | None) -> None:
            if count is None:
                self.notify("Scale: cancelled, nothing changed", timeout=3, markup=False)
                return
            try:
                plan = plan_scale(group, count)
            except EngineError as exc:
                self.notify(f"Scale: {exc}", severity="error", timeout=10, markup=False)
                return
            if plan.changes_nothing:
                self.notify(plan.describe(), timeout=4, markup=False)
            elif plan.needs_confirmation:
                self._confirm_scale(plan, engine)
            else:
                self._started(plan.describe() + "…")
                self._scale_worker(plan, False, False, engine)

        self.push_screen(ReplicaScreen(group.label, group.count), counted)

    def _confirm_scale(self, plan: ScalePlan, engine: Engine) -> None:
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
                self.notify("Scale: cancelled, nothing changed", timeout=3, markup=False)

        self.push_screen(ConfirmScreen(title, items, option=option, yes="Scale down"), answered)

    def on_placement_blocked(self, message: PlacementBlocked) -> None:
        self._finish_progress()
        plan = message.plan

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self._started(plan.describe() + " (forced)…")
                self._scale_worker(plan, True, False, message.engine)
            else:
                self.notify("Scale: nothing was created", timeout=4, markup=False)

        item = (
            f"{plan.add} more task(s) of {plan.group.label}: the swarm keeps them pending "
            "until a node can take them"
            if plan.group.kind == KIND_SWARM
            else f"{plan.add} new replica(s) of {plan.group.label} on the source's GPUs"
        )
        self.push_screen(ConfirmScreen(message.reason, [item], yes="Place anyway"), answered)

    @work(thread=True, exit_on_error=False, group=ACTIONS_GROUP, description="scale")
    def _scale_worker(self, plan: ScalePlan, force: bool, volumes: bool, engine: Engine) -> None:
        self._execute_scale(plan, force=force, volumes=volumes, engine=engine)

    def _execute_scale(
        self, plan: ScalePlan, *, force: bool, volumes: bool, engine: Engine
    ) -> None:
        """Carry out a plan on `engine` on a worker thread, and post the outcome."""
        free: dict[str, int | None] | None = None
        need: int | None = None
        # The GPUs known here are this machine's: they say nothing of a remote engine's.
        if engine.is_local:
            free, need = gpu_inputs(self.fleets.snapshot, plan.group.source_id)
        where = ""
        if plan.group.kind == KIND_SWARM and plan.add and not force:
            # Where the swarm can put one more task (its GPUs, constraints, memory), before
            # asking it to: a task no node can take would only stay pending.
            placement = placement_before_scaling(engine, plan.group.service)
            if placement is not None and not placement.fits:
                self.post_message(PlacementBlocked(plan, placement.reason, engine))
                return
            if placement is not None:
                where = f" ({placement.reason})"
        try:
            result = execute_plan(
                engine,
                plan,
                gpu_free=free,
                gpu_need=need,
                force=force,
                volumes=volumes,
                allow_original=plan.removes_original,
                on_progress=self._report,
            )
        except PlacementError as exc:
            self.post_message(PlacementBlocked(plan, str(exc), engine))
            return
        except EngineError as exc:
            self.post_message(ActionCompleted(f"Scale {plan.group.label}: {exc}", "error"))
            return
        self.post_message(ActionCompleted(result.summary + where, notice_level(result.severity)))

    # --- reporting ---------------------------------------------------------------------------

    def on_action_progressed(self, message: ActionProgressed) -> None:
        widget = self._progress_widget()
        if widget is not None:
            widget.show_progress(message.text, message.done, message.total)

    def on_action_completed(self, message: ActionCompleted) -> None:
        if message.ends:
            self._finish_progress()
        timeout = 5 if message.severity == "information" else 15
        self.notify(message.text, severity=message.severity, timeout=timeout, markup=False)

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
        self._finish_progress()
        self.notify(
            f"{worker.description} failed: {worker.error!r}",
            severity="error",
            timeout=15,
            markup=False,
        )
