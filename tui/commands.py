"""One registry of aitop's commands, feeding key bindings, the keymap, help and the palette.

Each `Command` is defined once here: the app's `BINDINGS` are made from it (`bindings()`),
its id is what a `[keymap]` entry in the configuration file names, the help screen (`?`) lists
the bindings active in the focused pane (so a remapped key shows its new key), and the command
palette (ctrl+p) offers every command by its title. Whether a command changes containers (and
so is hidden and refused in read-only mode: `MUTATING_ACTIONS`) and whether it asks first are
flags of the command, not lists kept beside it. Widgets keep their own `BINDINGS` (each with
an id): `binding_catalog()` finds them for the keymap check and the default file, and the help
screen and the palette read them from the live binding chain.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen
from textual.theme import BUILTIN_THEMES

import tui.screens
import widgets
from tui.config import Config, ConfigProblem, LoadedConfig
from tui.fleet.actions import lifecycle as act
from tui.screens.help import HelpRow, HelpSection

if TYPE_CHECKING:
    from textual.widget import Widget

    from tui.app import AitopApp


@dataclass(frozen=True)
class Command:
    """One thing the user can do, by key (when it has one) and by name in the palette."""

    id: str
    """The binding's id: what a `[keymap]` entry names to give it other keys."""
    action: str
    """The Textual action it runs on the app."""
    title: str
    """Its name in the command palette."""
    help: str
    """One line on what it does (tooltip, palette help)."""
    key: str = ""
    """Default key(s), comma-separated; "" for a command only the palette offers."""
    description: str = ""
    """Its label in the footer; "" keeps it out of the footer."""
    priority: bool = False
    """Whether the key works even where a focused widget would take it (a text box)."""
    mutates: bool = False
    """Whether it changes containers (or only serves a change: marks): hidden and refused in
    read-only mode."""
    confirm: bool = False
    """Whether it asks before it changes anything (a signal, a count or a yes)."""

    def binding(self) -> Binding:
        """The key binding of this command (it must have a key)."""
        return Binding(
            self.key,
            self.action,
            self.description or self.title,
            show=bool(self.description),
            id=self.id,
            tooltip=self.help,
            priority=self.priority,
        )


APP_COMMANDS: tuple[Command, ...] = (
    # First: at 80 columns the footer has room for a few keys, and this one leads to all.
    Command(
        "help",
        "show_help",
        "Show the keys (help)",
        "Every key of the focused pane and the global ones",
        key="question_mark",
        description="Help",
    ),
    Command("quit", "quit", "Quit", "Leave aitop", key="q", description="Quit"),
    Command(
        "toggle-all",
        "toggle_all",
        "Toggle all containers",
        "Show model containers only, or all containers",
        key="a",
        description="All/models",
    ),
    Command(
        "filter",
        "filter",
        "Filter containers",
        "Filter by name, model, image or label",
        key="slash",
        description="Filter",
    ),
    Command(
        "clear-filter",
        "clear_filter",
        "Clear the filter",
        "Clear the filter and close its box",
        key="escape",
    ),
    Command(
        "logs",
        "toggle_logs",
        "Open or close the logs",
        "Open (or close) the selected container's logs; they follow the selection",
        key="l",
        description="Logs",
    ),
    Command(
        "serving",
        "show_serving",
        "Show the model server",
        "The selected container's model server, live: its reading and history",
        key="v",
    ),
    Command(
        "container",
        "show_container",
        "Show the container up close",
        "The selected container's recent past, processes and details (a group row: fold it)",
        key="enter",
    ),
    Command(
        "events",
        "show_events",
        "Show the events",
        "What happened to the fleet lately (deaths, OOM kills, restarts, health), newest first",
        key="h",
    ),
    Command(
        "disk",
        "show_disk",
        "Show the disk use",
        "Images, volumes and build cache, biggest first; remove or prune (asks)",
        key="d",
    ),
    Command(
        "swarm",
        "show_swarm",
        "Show the swarm",
        "A swarm manager's nodes and every service's tasks on every node; drain or activate a "
        "node (asks)",
        key="W",
    ),
    Command(
        "command-palette",
        "command_palette",
        "Command palette",
        "Run any command by name",
        key="ctrl+p",
        priority=True,
    ),
    Command(
        "columns",
        "pick_columns",
        "Pick the table's columns",
        "Show, hide and order the fleet table's columns (kept in the configuration file)",
        key="c",
    ),
    Command("set-theme", "change_theme", "Set theme", "Pick another colour theme (for this run)"),
    Command(
        "switch-host",
        "switch_host",
        "Switch host",
        "Jump to the next engine's containers (several engines), or name the engine watched",
    ),
)
"""The app's own commands."""

ACTION_COMMANDS: tuple[Command, ...] = (
    Command(
        "start",
        "start_container",
        "Start container",
        "Start the container(s)",
        "u",
        "Start",
        mutates=True,
        confirm=act.ACTIONS[act.START].confirm,
    ),
    Command(
        "stop",
        "stop_container",
        "Stop container",
        "Stop the container(s) (asks)",
        "s",
        "Stop",
        mutates=True,
        confirm=act.ACTIONS[act.STOP].confirm,
    ),
    Command(
        "restart",
        "restart_container",
        "Restart container",
        "Restart the container(s)",
        "r",
        "Restart",
        mutates=True,
        confirm=act.ACTIONS[act.RESTART].confirm,
    ),
    Command(
        "pause",
        "pause_container",
        "Pause or unpause container",
        "Pause or unpause",
        "p",
        "Pause",
        mutates=True,
        confirm=act.ACTIONS[act.PAUSE].confirm or act.ACTIONS[act.UNPAUSE].confirm,
    ),
    Command(
        "kill",
        "kill_container",
        "Kill container (send a signal)",
        "Send a signal (pick one, or type any name or number 1-64; confirms)",
        "K",
        "Kill",
        mutates=True,
        confirm=act.ACTIONS[act.KILL].confirm,
    ),
    Command(
        "remove",
        "remove_container",
        "Remove container",
        "Remove (asks)",
        "D",
        "Remove",
        mutates=True,
        confirm=act.ACTIONS[act.REMOVE].confirm,
    ),
    Command(
        "exec",
        "exec_shell",
        "Shell in container",
        "Open a shell in the container",
        "e",
        "Shell",
        mutates=True,
    ),
    Command(
        "inspect",
        "inspect_container",
        "Inspect container",
        "Show the configuration",
        "i",
        "Inspect",
    ),
    # One more replica asks only when the GPUs cannot hold it (then: place anyway?).
    Command(
        "scale-up",
        "scale_up",
        "Scale up (one replica more)",
        "One replica more",
        "plus",
        "+1",
        mutates=True,
    ),
    Command(
        "scale-down",
        "scale_down",
        "Scale down (one replica fewer)",
        "One replica fewer (asks)",
        "minus",
        "-1",
        mutates=True,
        confirm=True,
    ),
    Command(
        "scale-to",
        "scale_to",
        "Set the replica count",
        "Set the replica count",
        "equals_sign",
        "Replicas",
        mutates=True,
        confirm=True,
    ),
    # Marks change nothing themselves, but only serve the changing actions.
    Command(
        "mark",
        "toggle_mark",
        "Mark or unmark container",
        "Mark/unmark for bulk actions",
        "space",
        "Mark",
        mutates=True,
    ),
)
"""The commands that steer containers (`tui.fleet_actions`)."""

COMMANDS: tuple[Command, ...] = APP_COMMANDS + ACTION_COMMANDS
"""Every command of the app, in the order the palette lists them."""

MUTATING_ACTIONS: frozenset[str] = frozenset(c.action for c in COMMANDS if c.mutates)
"""The actions hidden and refused in read-only mode."""


def bindings(commands: Iterable[Command]) -> list[Binding]:
    """The key bindings of the commands that have a key."""
    return [c.binding() for c in commands if c.key]


# --- every binding, for the keymap ------------------------------------------------------------

SCOPE_TITLES: dict[str, str] = {
    "AitopApp": "Everywhere",
    "Screen": "Everywhere",
    "App": "Everywhere",
    "ContainerTable": "Fleet table",
    "LogPane": "Log pane",
    "_LogLines": "Log pane",
    "GpuPanel": "GPUs",
    "Input": "Text box",
    "ConfirmScreen": "Confirmation",
    "InspectScreen": "Inspect view",
    "ServingScreen": "Serving view",
    "DiskScreen": "Disk view",
    "SwarmScreen": "Swarm view",
    "ContainerScreen": "Container view",
    "EventsScreen": "Events view",
    "ReplicaScreen": "Replica count",
    "SignalScreen": "Signal picker",
    "ColumnsScreen": "Column picker",
    "HelpScreen": "Help",
}
"""How a node's bindings are headed in the help screen and the default file, by class name."""


def scope_title(cls: type[object]) -> str:
    """The heading for the bindings of a class (its nearest known base, else its name)."""
    for base in cls.__mro__:
        if base.__name__ in SCOPE_TITLES:
            return SCOPE_TITLES[base.__name__]
    return cls.__name__.lstrip("_")


def binding_catalog() -> list[tuple[str, Binding]]:
    """(scope, binding) for every binding with an id: the app's and every widget's.

    The widgets and screens are found by walking the `widgets` and `tui.screens` packages, so
    a new one's bindings are known to the keymap check without being listed here.
    """
    found: list[tuple[str, Binding]] = [
        ("Everywhere", b) for b in Binding.make_bindings(bindings(COMMANDS))
    ]
    seen = {(b.id, b.key) for _, b in found}
    modules = [
        *pkgutil.iter_modules(widgets.__path__, prefix="widgets."),
        *pkgutil.iter_modules(tui.screens.__path__, prefix="tui.screens."),
    ]
    for info in modules:
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if not (isinstance(obj, type) and obj.__module__ == module.__name__):
                continue
            for binding in _own_bindings(obj):
                if binding.id and (binding.id, binding.key) not in seen:
                    seen.add((binding.id, binding.key))
                    found.append((scope_title(obj), binding))
    return found


def _own_bindings(cls: type[object]) -> Iterator[Binding]:
    for item in vars(cls).get("BINDINGS", ()):
        if isinstance(item, Binding):
            yield from Binding.make_bindings([item])


def default_keymap_lines() -> list[tuple[str, str, str]]:
    """(id, default keys, what it does) of every remappable binding, for the default file."""
    by_id: dict[str, tuple[str, list[str], str]] = {}
    for scope, binding in binding_catalog():
        assert binding.id is not None
        what = binding.tooltip or binding.description
        entry = by_id.setdefault(binding.id, (scope, [], what))
        entry[1].append(binding.key)
    return [(bid, ",".join(keys), f"{scope}: {what}") for bid, (scope, keys, what) in by_id.items()]


def check_settings(loaded: LoadedConfig) -> tuple[Config, list[ConfigProblem]]:
    """The keymap and theme checked against what Textual and the widgets know.

    Unknown binding ids and themes are reported at their line and dropped.
    """
    config = loaded.config
    problems: list[ConfigProblem] = []
    # The catalog imports every screen and widget module: with no keymap there is nothing to
    # check, and the views that only a key opens stay unloaded (issue 14, item 4).
    known = {b.id for _, b in binding_catalog()} if config.keymap else set()
    keymap: dict[str, str] = {}
    for binding_id, keys in config.keymap.items():
        if binding_id in known:
            keymap[binding_id] = keys
            continue
        close = difflib.get_close_matches(binding_id, sorted(i for i in known if i), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(
            loaded.problem(
                ("keymap", *binding_id.split(".")),
                f"keymap: unknown binding id {binding_id!r}, ignored; {hint}"
                "(`aitop config --print-default` lists them all)",
            )
        )
    problems.extend(_key_conflicts(loaded, keymap))
    theme = config.theme
    if theme not in BUILTIN_THEMES:
        close = difflib.get_close_matches(theme, list(BUILTIN_THEMES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(
            loaded.problem(
                ("theme",),
                f"theme: unknown theme {theme!r}, the default applies; {hint}"
                f"(expected one of {', '.join(sorted(BUILTIN_THEMES))})",
            )
        )
        theme = Config().theme
    return replace(config, keymap=keymap, theme=theme), problems


def _key_conflicts(loaded: LoadedConfig, keymap: dict[str, str]) -> list[ConfigProblem]:
    """Keymap entries that give a key to two bindings of one scope (`quit = "s"` took Stop's
    key and Quit vanished): each is reported with both binding ids and dropped from `keymap`,
    so the other binding keeps its key."""
    if not keymap:
        return []  # nothing remapped: no conflict, and no need of the catalog's imports
    scope_of: dict[str, str] = {}
    defaults: dict[str, list[str]] = {}
    for scope, binding in binding_catalog():
        assert binding.id is not None
        scope_of.setdefault(binding.id, scope)
        defaults.setdefault(binding.id, []).append(binding.key)

    def keys_of(binding_id: str) -> set[str]:
        keys = keymap[binding_id].split(",") if binding_id in keymap else defaults[binding_id]
        return {k.strip() for k in keys}

    problems = []
    for binding_id in list(keymap):
        mine = keys_of(binding_id)
        for other, scope in scope_of.items():
            if other == binding_id or scope != scope_of[binding_id]:
                continue
            shared = mine & keys_of(other)
            if shared:
                key = sorted(shared)[0]
                problems.append(
                    loaded.problem(
                        ("keymap", *binding_id.split(".")),
                        f"keymap: {binding_id} = {keymap[binding_id]!r} gives {key!r} to two "
                        f"bindings ({binding_id} and {other}, {scope}); ignored, "
                        f"{binding_id} keeps its default key",
                    )
                )
                del keymap[binding_id]
                break
    return problems


# --- help -------------------------------------------------------------------------------------


def help_sections(app: App[None], screen: Screen[object]) -> list[HelpSection]:
    """The keys active on `screen` now: the focused pane's first, then the global ones.

    Read from Textual's active bindings, so remapped keys show as remapped, keys a focused
    pane takes over show what they do there, and actions hidden (read-only) are left out.
    """
    # Keys of one action in one pane share a row (`f end`, or Textual's ctrl+q with our q).
    groups: dict[tuple[str, str], list[tuple[Binding, bool]]] = {}
    for active in screen.active_bindings.values():
        if active.binding.system:
            continue
        title = _scope_of(active.node)
        groups.setdefault((title, active.binding.action), []).append(
            (active.binding, active.enabled)
        )
    everywhere = SCOPE_TITLES["App"]
    titles = list(dict.fromkeys(title for title, _ in groups))
    titles.sort(key=lambda title: title == everywhere)
    sections: list[HelpSection] = []
    for title in titles:
        section_rows: list[HelpRow] = []
        for (scope, action), members in groups.items():
            if scope != title:
                continue
            named = [b for b, _ in members if b.id] or [b for b, _ in members]
            main = named[0]
            section_rows.append(
                HelpRow(
                    keys=" ".join(app.get_key_display(b) for b, _ in members),
                    description=main.tooltip or main.description or action,
                    binding_id=" ".join(dict.fromkeys(b.id for b, _ in members if b.id)),
                    enabled=any(enabled for _, enabled in members),
                )
            )
        sections.append(HelpSection(title, tuple(section_rows)))
    return sections


def _scope_of(node: DOMNode) -> str:
    """The heading for a node's bindings: the nearest known pane that holds it."""
    current: DOMNode | None = node
    while current is not None:
        for base in type(current).__mro__:
            if base.__name__ in SCOPE_TITLES:
                return SCOPE_TITLES[base.__name__]
        current = current.parent
    return type(node).__name__.lstrip("_")


# --- the command palette ----------------------------------------------------------------------


@dataclass(frozen=True)
class PaletteEntry:
    """One command as the palette offers it."""

    title: str
    """What it is called (what the search matches)."""
    help: str
    """What it does, and its key when it has one."""
    run: Callable[[], object]
    """What choosing it calls."""


def palette_entries(
    app: App[None], screen: Screen[object], keymap: Mapping[str, str]
) -> list[PaletteEntry]:
    """Every command that can run where the palette was opened.

    The focused pane's own bindings (by scope and label), then the registry's commands,
    hidden when `check_action` hides them (read-only mode).
    """
    entries: list[PaletteEntry] = []
    focused: Widget | None = screen.focused
    titles: set[str] = set()
    if focused is not None:
        for active in screen.active_bindings.values():
            binding, node = active.binding, active.node
            if binding.id is None or node is app or node is screen or not active.enabled:
                continue
            title = f"{_scope_of(node)}: {binding.description or binding.action}"
            if title in titles:
                continue
            titles.add(title)
            shown = app.get_key_display(binding)
            help_text = f"{binding.tooltip}  ({shown})" if binding.tooltip else f"key {shown}"
            entries.append(
                PaletteEntry(title, help_text, partial(app.run_action, binding.action, node))
            )
    for command in COMMANDS:
        # The palette is open already; hidden actions (read-only) are not offered.
        if command.id == "command-palette" or app.check_action(command.action, ()) is False:
            continue
        keys = keymap.get(command.id, command.key)
        help_text = command.help
        if keys:
            shown = " ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
            help_text += f"  ({shown})"
        entries.append(
            PaletteEntry(command.title, help_text, partial(app.run_action, command.action))
        )
    return entries


class AitopCommands(Provider):
    """The command palette's provider of every aitop command (see `palette_entries`)."""

    def _entries(self) -> list[PaletteEntry]:
        # This provider serves aitop's app only (`AitopApp.COMMANDS`).
        app = cast("AitopApp", self.app)
        return palette_entries(app, self.screen, app.keymap)

    async def discover(self) -> Hits:
        """Every command, when nothing is typed yet."""
        for entry in self._entries():
            yield DiscoveryHit(entry.title, entry.run, help=entry.help)

    async def search(self, query: str) -> Hits:
        """The commands whose title matches what is typed."""
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(entry.title)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.title), entry.run, help=entry.help)


def describe_hosts(watched: Sequence[tuple[str, str]], configured: Sequence[str]) -> str:
    """What "switch host" says: the engines watched (URL, where it came from) and the others
    configured."""
    text = "Watching " + ", ".join(f"{url} (from {source})" for url, source in watched)
    urls = {url for url, _ in watched}
    others = [h for h in configured if h not in urls]
    if others:
        text += "; configured too: " + ", ".join(others) + " (add --host URL to watch it too)"
    return text + "."
