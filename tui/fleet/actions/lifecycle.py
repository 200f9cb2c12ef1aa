"""Lifecycle actions on containers: which containers an action applies to, what to confirm,
running it off the event loop, and a result that says what happened to each container.

Headless: plain data in, frozen dataclasses out, no Textual or Rich. Every engine call goes
through `Engine`, which refuses every change in read-only mode before any call is made; the
functions here refuse earlier still, without a single engine call.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import ContainerGone, EngineError
from tui.fleet.models import ContainerInfo

START = "start"
STOP = "stop"
RESTART = "restart"
PAUSE = "pause"
UNPAUSE = "unpause"
KILL = "kill"
REMOVE = "remove"


@dataclass(frozen=True)
class ActionSpec:
    """How one lifecycle action reads and behaves."""

    key: str
    verb: str
    """Imperative, capitalised: "Stop"."""
    past: str
    """Past tense: "stopped"."""
    progressive: str
    """While it runs: "stopping"."""
    confirm: bool
    """True when it asks before it runs (it ends or destroys something)."""


ACTIONS = MappingProxyType(
    {
        START: ActionSpec(START, "Start", "started", "starting", confirm=False),
        STOP: ActionSpec(STOP, "Stop", "stopped", "stopping", confirm=True),
        RESTART: ActionSpec(RESTART, "Restart", "restarted", "restarting", confirm=False),
        PAUSE: ActionSpec(PAUSE, "Pause", "paused", "pausing", confirm=False),
        UNPAUSE: ActionSpec(UNPAUSE, "Unpause", "unpaused", "unpausing", confirm=False),
        KILL: ActionSpec(KILL, "Kill", "sent", "signalling", confirm=True),
        REMOVE: ActionSpec(REMOVE, "Remove", "removed", "removing", confirm=True),
    }
)
"""Every lifecycle action by key."""

SIGNALS: tuple[tuple[str, str], ...] = (
    ("SIGTERM", "ask it to stop (handlers may clean up)"),
    ("SIGKILL", "end it now, no clean-up"),
    ("SIGINT", "interrupt, as Ctrl+C"),
    ("SIGHUP", "hang up (many servers reload their configuration)"),
    ("SIGQUIT", "quit (many runtimes dump their threads)"),
    ("SIGUSR1", "user signal 1"),
    ("SIGUSR2", "user signal 2"),
)
"""The signals `K` offers, with what each usually means (any other may be typed)."""

SIGNAL_NAMES: frozenset[str] = frozenset(
    [
        "ABRT",
        "ALRM",
        "BUS",
        "CHLD",
        "CLD",
        "CONT",
        "FPE",
        "HUP",
        "ILL",
        "INT",
        "IO",
        "IOT",
        "KILL",
        "PIPE",
        "POLL",
        "PROF",
        "PWR",
        "QUIT",
        "SEGV",
        "STKFLT",
        "STOP",
        "SYS",
        "TERM",
        "TRAP",
        "TSTP",
        "TTIN",
        "TTOU",
        "URG",
        "USR1",
        "USR2",
        "VTALRM",
        "WINCH",
        "XCPU",
        "XFSZ",
        "RTMIN",
        "RTMAX",
    ]
    + [f"RTMIN+{n}" for n in range(1, 16)]
    + [f"RTMAX-{n}" for n in range(1, 15)]
)
"""The signal names the engine knows, without "SIG" (Linux's table, as Docker's: the
container runs on Linux whatever this machine runs, so Python's own `signal` is no guide)."""
MAX_SIGNAL = 64
"""The highest signal number (Linux)."""


class BadSignal(ValueError):
    """A typed signal the engine would not know; `str()` says why in a line."""


def parse_signal(text: str) -> str:
    """A typed signal ("usr2", "SIGHUP", "9", "RTMIN+3") as the engine takes it: "SIGUSR2",
    "SIGHUP", "9", "SIGRTMIN+3". Raises `BadSignal` for anything else."""
    typed = text.strip()
    if not typed:
        raise BadSignal("type a signal's name (SIGUSR2, HUP) or number (1-64)")
    if typed.isdigit():
        number = int(typed)
        if not 1 <= number <= MAX_SIGNAL:
            raise BadSignal(f"no signal {typed}: signal numbers go from 1 to {MAX_SIGNAL}")
        return str(number)
    name = typed.upper()
    name = name.removeprefix("SIG")
    if name not in SIGNAL_NAMES:
        shown = typed if len(typed) <= 20 else typed[:20] + "…"
        raise BadSignal(f"unknown signal {shown!r}: try a name such as SIGUSR2 or a number 1-64")
    return f"SIG{name}"


MAX_WORKERS = 8
"""Containers acted on at once in a bulk action."""

DEFAULT_SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"
"""What `e` runs in the container (with `sh -c`): bash where it exists, else sh."""
SHELL_ENV = "AITOP_SHELL"
"""Environment variable that replaces DEFAULT_SHELL (a command line run with `sh -c`)."""


# --- which containers --------------------------------------------------------------------


def resolve_targets(
    containers: Iterable[ContainerInfo],
    *,
    marked: Collection[str] = (),
    selected_id: str | None = None,
    selected_group: tuple[str, str] | None = None,
) -> tuple[ContainerInfo, ...]:
    """The containers an action applies to, in a stable order (by name).

    The marked containers when some are marked (marks of containers that no longer exist are
    ignored), else every container of the selected group (a compose service or project row),
    else the selected container, else none.
    """
    fleet = list(containers)
    if marked:
        chosen = [c for c in fleet if c.id in marked]
        if chosen:
            return tuple(sorted(chosen, key=lambda c: c.name))
    if selected_group is not None and selected_group != ("", ""):
        project, service = selected_group
        chosen = [
            c for c in fleet if c.group[0] == project and (not service or c.group[1] == service)
        ]
        return tuple(sorted(chosen, key=lambda c: c.name))
    if selected_id is not None:
        return tuple(c for c in fleet if c.id == selected_id)
    return ()


def pause_or_unpause(targets: Sequence[ContainerInfo]) -> tuple[str, tuple[ContainerInfo, ...]]:
    """What `p` does: pause the running targets if any runs, else unpause the paused ones."""
    running = tuple(c for c in targets if c.state == "running")
    if running:
        return PAUSE, running
    return UNPAUSE, tuple(c for c in targets if c.state == "paused")


def describe(targets: Sequence[ContainerInfo]) -> str:
    """ "name" for one container, "3 containers" for more."""
    if len(targets) == 1:
        return targets[0].name
    return f"{len(targets)} containers"


@dataclass(frozen=True)
class Confirmation:
    """What to ask before a destructive action: a question and exactly what will go."""

    title: str
    items: tuple[str, ...]
    """One line per container that will be affected: name, short id, image, state."""
    option: str = ""
    """Label of an extra choice the user may tick ("" for none)."""
    yes: str = "Yes"
    """Label of the button that goes ahead."""


def item_line(info: ContainerInfo) -> str:
    """One container as a confirmation lists it."""
    return f"{info.name}  ({info.short_id}, {info.image}, {info.state})"


def confirmation(
    action: str, targets: Sequence[ContainerInfo], *, signal: str = ""
) -> Confirmation | None:
    """The question to ask before `action` on `targets`; None when it needs no confirmation."""
    spec = ACTIONS[action]
    if not spec.confirm or not targets:
        return None
    what = describe(targets)
    items = tuple(item_line(c) for c in targets)
    if action == KILL:
        sent = signal or "SIGKILL"
        return Confirmation(f"Send {sent} to {what}?", items, yes=f"Send {sent}")
    if action == REMOVE:
        running = sum(1 for c in targets if c.running)
        title = f"Remove {what}?"
        if running:
            title += f" ({running} running: they are killed first)"
        return Confirmation(title, items, option="also remove anonymous volumes", yes="Remove")
    return Confirmation(f"{spec.verb} {what}?", items, yes=spec.verb)


# --- running an action --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to one container."""

    container_id: str
    name: str
    error: str = ""
    """Why it failed, in the engine's own words; "" when it succeeded."""
    note: str = ""
    """What the engine reported instead of the action itself ("already running"); "" when
    the action was done as asked."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did: the containers it succeeded on and those it failed on, and why."""

    action: str
    succeeded: tuple[Outcome, ...] = ()
    failed: tuple[Outcome, ...] = ()
    refused: str = ""
    """Why nothing was attempted (read-only mode, nothing to act on); "" when it ran."""
    detail: str = ""
    """A qualifier for the summary: the signal sent (KILL)."""

    @property
    def ok(self) -> bool:
        """True when it ran and nothing failed."""
        return not self.refused and not self.failed

    @property
    def severity(self) -> str:
        """Textual notification severity: "information", "warning" or "error"."""
        if self.ok:
            return "information"
        return "warning" if self.succeeded else "error"

    @property
    def summary(self) -> str:
        """The notification text: what happened, then each failure in the engine's words."""
        spec = ACTIONS[self.action]
        if self.action == KILL:
            # A signal is sent, not a kill: SIGUSR2 or SIGHUP leave the container running.
            signal = self.detail or "SIGKILL"
            done, verb = f"Sent {signal}", f"Sending {signal}"
        else:
            done, verb = spec.past.capitalize(), spec.verb
        if self.refused:
            return f"{verb}: {self.refused}"
        lines: list[str] = []
        plain = [o.name for o in self.succeeded if not o.note]
        if plain:
            lines.append(f"{done}: {', '.join(plain)}")
        notes: dict[str, list[str]] = {}
        for outcome in self.succeeded:
            if outcome.note:
                notes.setdefault(outcome.note, []).append(outcome.name)
        lines.extend(f"{', '.join(names)}: {note}" for note, names in notes.items())
        if self.failed:
            total = len(self.failed) + len(self.succeeded)
            lines.append(f"{verb} failed for {len(self.failed)} of {total}:")
            lines.extend(f"\u2022 {o.name}: {o.error}" for o in self.failed)
        return "\n".join(lines)


Progress = Callable[[int, int, str], None]
"""Called as (done, total, text) while an action runs; from worker threads."""


ALREADY_RUNNING = "already running, nothing to start"
UNPAUSED = "was paused: unpaused"
NOT_RUNNING = "not running, nothing to stop"


def _status(engine: Engine, cid: str) -> str:
    """The container's state as the engine reports it now ("running", "paused", ...)."""
    state = engine.inspect(cid).get("State") or {}
    return str(state.get("Status") or "")


def _call(engine: Engine, action: str, cid: str, signal: str, volumes: bool) -> str:
    """Do `action` on one container; returns a note when the engine's state made it do
    something else (see `Outcome.note`). The engine answers a start of a running container
    and a stop of a stopped one with "not modified", and refuses to start a paused one: it
    is asked first, so that the result says what happened."""
    if action == START:
        status = _status(engine, cid)
        if status == "running":
            return ALREADY_RUNNING
        if status == "paused":
            engine.unpause_container(cid)
            return UNPAUSED
        engine.start_container(cid)
    elif action == STOP:
        if _status(engine, cid) not in ("running", "paused", "restarting"):
            return NOT_RUNNING
        engine.stop_container(cid)
    elif action == RESTART:
        engine.restart_container(cid)
    elif action == PAUSE:
        engine.pause_container(cid)
    elif action == UNPAUSE:
        engine.unpause_container(cid)
    elif action == KILL:
        engine.kill_container(cid, signal or "SIGKILL")
    elif action == REMOVE:
        engine.remove_container(cid, volumes=volumes, force=True)
    else:  # pragma: no cover - guarded by run_action
        raise ValueError(action)
    return ""


def run_action(
    engine: Engine,
    action: str,
    targets: Sequence[ContainerInfo],
    *,
    signal: str = "",
    volumes: bool = False,
    on_progress: Progress | None = None,
) -> ActionResult:
    """Run `action` on each target (in parallel) and say what happened to each.

    Blocking: call it from a worker thread. `signal` is for KILL, `volumes` for REMOVE
    (also remove the containers' anonymous volumes). A failure on one container does not
    stop the others; each failure is named with the engine's own words.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    detail = (signal or "SIGKILL") if action == KILL else ""
    if engine.read_only:
        return ActionResult(action, refused="read-only mode: aitop changes nothing", detail=detail)
    if not targets:
        return ActionResult(action, refused="no container to act on", detail=detail)
    total = len(targets)
    done = 0
    spec = ACTIONS[action]

    def one(info: ContainerInfo) -> Outcome:
        try:
            note = _call(engine, action, info.id, signal, volumes)
        except ContainerGone:
            return Outcome(info.id, info.name, "it no longer exists")
        except EngineError as exc:
            return Outcome(info.id, info.name, str(exc))
        return Outcome(info.id, info.name, note=note)

    if on_progress is not None:
        on_progress(0, total, f"{spec.progressive} {describe(targets)}")
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(min(MAX_WORKERS, total), thread_name_prefix="aitop-action") as pool:
        for outcome in pool.map(one, targets):
            outcomes.append(outcome)
            done += 1
            if on_progress is not None:
                on_progress(done, total, f"{spec.progressive} {outcome.name}")
    return ActionResult(
        action,
        succeeded=tuple(o for o in outcomes if not o.error),
        failed=tuple(o for o in outcomes if o.error),
        detail=detail,
    )


# --- exec a shell -------------------------------------------------------------------------


def shell_command() -> str:
    """The command line `e` runs in a container: $AITOP_SHELL, else bash-or-sh."""
    return os.environ.get(SHELL_ENV, "").strip() or DEFAULT_SHELL


def shell_argv(engine: Engine, container_id: str, command: str | None = None) -> list[str]:
    """The docker CLI command that opens an interactive shell in a container.

    It talks to the same engine (`-H` with the engine's URL). Raises EngineError in read-only
    mode (an exec changes the container) and when the docker CLI is not installed.
    """
    engine.check_writable(f"exec a shell in {container_id[:12]}")
    docker = shutil.which("docker")
    if docker is None:
        raise EngineError(
            "the docker command-line client is needed to open a shell; install it "
            "(apt-get install docker.io or docker-ce-cli)"
        )
    return [
        docker,
        "-H",
        engine.url,
        "exec",
        "-it",
        "--",  # whatever the id holds, it is never read as an option
        container_id,
        "sh",
        "-c",
        command or shell_command(),
    ]


def shell_exit_text(name: str, code: int, argv: Sequence[str]) -> str:
    """The notification after the shell ended with `code`."""
    if code == 0:
        return f"Left the shell in {name}"
    hint = ""
    if code in (126, 127):
        hint = " (no sh in the image? set AITOP_SHELL)"
    return f"The shell in {name} ended with exit code {code}{hint}: {shlex.join(argv[3:])}"
