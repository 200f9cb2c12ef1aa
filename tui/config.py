"""aitop's configuration file: where it lives, what it holds, and how a mistake in it is reported.

The file is TOML, at `$XDG_CONFIG_HOME/aitop/config.toml` (default `~/.config/aitop/config.toml`),
or wherever `AITOP_CONFIG` or `aitop --config PATH` points. Every setting is optional.

A mistake never stops aitop: a file that is not valid TOML is reported with its line and ignored
as a whole; an unknown setting or a value of the wrong type is reported with its line and what
was expected, and that setting keeps its default while the rest applies. Precedence is
command-line flag over environment variable over this file over the built-in default.

This module must not import Textual: the command line reads the file before Textual loads.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import itertools
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from tui.fleet.detect import DEFAULT_RULES, DetectionRules
from tui.fleet.gpu import types as gpu_types
from tui.fleet.logs.types import DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES
from tui.fleet.sanitize import safe_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_ENV = "AITOP_CONFIG"
"""Environment variable naming the configuration file (instead of the XDG location)."""

Check = Callable[[Any], "str | None"]
"""A value check: None when fine, else what was expected."""


SHORTEST_INTERVAL = 0.05
LONGEST_INTERVAL = 3600.0
"""Sampling intervals aitop takes, in seconds (below it would only burn CPU; above, a fleet
that is never looked at)."""


def interval_problem(value: float) -> str | None:
    """None for a usable sampling interval, else what is expected (`nan`, `inf` and
    `1e-300` are floats too: each is refused)."""
    if math.isfinite(value) and SHORTEST_INTERVAL <= value <= LONGEST_INTERVAL:
        return None
    return f"a number of seconds from {SHORTEST_INTERVAL:g} to {LONGEST_INTERVAL:g}"


def _at_least_one(value: int) -> str | None:
    return None if value >= 1 else "a whole number of at least 1"


def _percent(value: float) -> str | None:
    return None if 0 < value <= 100 else "a percentage above 0 and at most 100"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else "a whole number of degrees, 0 or more"


def _regexes(value: Sequence[str]) -> str | None:
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"regular expressions; {pattern!r} is not one ({exc})"
    return None


def _non_empty_strings(value: Sequence[str]) -> str | None:
    return None if all(v.strip() for v in value) else "non-empty strings"


def _keys(value: Mapping[str, str]) -> str | None:
    for keys in value.values():
        if not keys.strip() or any(not k.strip() for k in keys.split(",")):
            return 'keys like "ctrl+r" or "f,end"'
    return None


def _check(check: Check) -> dict[str, Check]:
    return {"check": check}


@dataclass(frozen=True)
class RefreshConfig:
    """How often aitop looks."""

    fleet: float = field(default=1.0, metadata=_check(interval_problem))
    """Seconds between two samples of the containers (CPU, memory, network); `--interval`."""
    gpu: float = field(default=1.0, metadata=_check(interval_problem))
    """Least seconds between two NVML readings of the GPUs; `--gpu-interval`."""


@dataclass(frozen=True)
class DetectionConfig:
    """What makes a container a model container, besides the built-in rules (which stay)."""

    labels: tuple[str, ...] = field(default=(), metadata=_check(_non_empty_strings))
    """Extra labels that mark a model container; the label's value names the model."""
    images: tuple[str, ...] = field(default=(), metadata=_check(_non_empty_strings))
    """Extra image names of inference servers (matched anywhere in the image's repository path)."""
    name_patterns: tuple[str, ...] = field(default=(), metadata=_check(_regexes))
    """Regular expressions; a container whose name matches one is a model container."""


@dataclass(frozen=True)
class LogsConfig:
    """How much of a container's log the log pane keeps (the oldest lines go first)."""

    max_lines: int = field(default=DEFAULT_MAX_LINES, metadata=_check(_at_least_one))
    """Most lines kept in the log pane."""
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, metadata=_check(_at_least_one))
    """Most bytes (estimated) kept in the log pane."""


@dataclass(frozen=True)
class ThresholdsConfig:
    """When a figure is drawn as a warning."""

    gpu_memory_warning_percent: float = field(
        default=gpu_types.MEM_WARNING_PERCENT, metadata=_check(_percent)
    )
    """GPU memory use above this share is drawn in the warning colour."""
    gpu_memory_critical_percent: float = field(
        default=gpu_types.MEM_CRITICAL_PERCENT, metadata=_check(_percent)
    )
    """GPU memory use above this share is critical: the status line names who holds it."""
    gpu_temperature_margin_c: int = field(
        default=gpu_types.TEMP_WARNING_MARGIN_C, metadata=_check(_not_negative)
    )
    """A GPU this many degrees below its driver's slowdown temperature is drawn as a warning."""

    def value(self) -> gpu_types.Thresholds:
        """These levels as the value the GPU pane and the status line are handed."""
        return gpu_types.Thresholds(
            mem_warning_percent=self.gpu_memory_warning_percent,
            mem_critical_percent=self.gpu_memory_critical_percent,
            temp_warning_margin_c=self.gpu_temperature_margin_c,
        )


TABLE_COLUMNS: tuple[str, ...] = (
    "name",
    "state",
    "cpu",
    "mem",
    "gpu_mem",
    "gpu_util",
    "gpus",
    "serving",
    "tok_s",
    "requests",
    "kv",
    "ttft",
    "model",
    "uptime",
    "restarts",
    "events",
    "exit",
    "image",
    "rx",
    "tx",
    "ports",
    "group",
)
"""The fleet table's columns by key, in the order it shows them unless `[table] columns`
says otherwise (`widgets.container_table` draws each)."""


def _table_columns(value: Sequence[str]) -> str | None:
    """None for a list of known, distinct column keys, else what is expected."""
    unknown = [v for v in value if v not in TABLE_COLUMNS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], TABLE_COLUMNS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"known column keys; {unknown[0]!r} is not one{hint}: {', '.join(TABLE_COLUMNS)}"
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        return f"each column once; {repeated[0]!r} is named twice"
    return None


@dataclass(frozen=True)
class TableConfig:
    """The fleet table."""

    columns: tuple[str, ...] = field(default=TABLE_COLUMNS, metadata=_check(_table_columns))
    """The columns shown, in order (the name always comes first); `c` in aitop picks them.
    Columns blank in every row (GPU ones without GPUs) are not drawn."""


@dataclass(frozen=True)
class Config:
    """Everything the configuration file can set."""

    theme: str = "textual-dark"
    """A Textual theme: textual-dark, textual-light, nord, gruvbox, dracula, tokyo-night, ..."""
    read_only: bool = False
    """Change nothing: hide every action that would change a container (like `--read-only`)."""
    low_bandwidth: bool = False
    """For slow links (like `--low-bandwidth`): fewer frames a second, 16 colours, and the fleet
    sampled every 2 seconds unless `--interval` or a `refresh.fleet` other than 1 says otherwise."""
    hosts: tuple[str, ...] = field(default=(), metadata=_check(_non_empty_strings))
    """Engines to watch together (unix://, tcp://, ssh://). `--host`, `--context` and DOCKER_HOST
    come first; without any, the active docker context, then the local socket."""
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    """How often aitop looks."""
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    """What makes a container a model container, besides the built-in rules (which stay)."""
    logs: LogsConfig = field(default_factory=LogsConfig)
    """How much of a container's log the log pane keeps (the oldest lines go first)."""
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)
    """When a figure is drawn as a warning."""
    table: TableConfig = field(default_factory=TableConfig)
    """The fleet table."""
    keymap: dict[str, str] = field(default_factory=dict, metadata=_check(_keys))
    """Keys by binding id, e.g. "toggle-all" = "A" or "log_pane.follow" = "f,end"; `?` in aitop
    shows each key's id. Several keys are separated by commas."""

    def detection_rules(self, base: DetectionRules = DEFAULT_RULES) -> DetectionRules:
        """The built-in detection rules extended with this file's labels, images and names."""
        d = self.detection
        # Images are matched against a lower-cased repository path.
        images = (i.lower() for i in d.images)
        return base.extended(labels=d.labels, images=images, name_patterns=d.name_patterns)


# --- where the file is ------------------------------------------------------------------------


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/aitop/config.toml`, else `~/.config/aitop/config.toml`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "aitop" / "config.toml"


def find_config(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """The file to read and why: `--config PATH`, then `AITOP_CONFIG`, then the XDG location."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser(), "--config"
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser(), CONFIG_ENV
    return default_path(env), "default"


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration file, located as precisely as it can be."""

    path: Path
    """The file."""
    line: int | None
    """1-based line of the mistake; None when it cannot be told."""
    message: str
    """What is wrong and what was expected, in one line."""

    def __str__(self) -> str:
        # The message quotes the file (keys, values): it is shown on the terminal, so made safe.
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return safe_text(f"{where}: {self.message}")


NOTICE_SECONDS = 8
"""How long the app shows its configuration notice: long enough to read its lines, short
enough not to stand over the table (`aitop config --check` has them all, in full)."""
NOTICE_LINES = 5
"""Problems the notice names; the rest are counted."""
NOTICE_WIDTH = 72
"""Most characters of one problem's line in the notice."""


@dataclass(frozen=True)
class ConfigNotice:
    """The popup the app shows for a configuration with mistakes (`config_notice`)."""

    title: str
    message: str
    """One short line per problem, in line order, then where to see them all."""
    timeout: float = NOTICE_SECONDS


def config_notice(problems: Sequence[ConfigProblem]) -> ConfigNotice:
    """The app's popup for these problems: one short line each, in line order (those of the
    whole file first), at most `NOTICE_LINES`, naming `aitop config --check` for the full
    text. Its title says that only the mistaken settings kept their defaults, unless the
    whole file was ignored."""
    ordered = sorted(problems, key=lambda p: (p.line is not None, p.line or 0))
    lines: list[str] = []
    for problem in ordered[:NOTICE_LINES]:
        where = f"line {problem.line}: " if problem.line else ""
        # The first clause says what is wrong; what was done about it is the title's.
        what = problem.message.split("; ", 1)[0]
        line = safe_text(f"{where}{what}")
        if len(line) > NOTICE_WIDTH:
            line = line[: NOTICE_WIDTH - 1].rstrip() + "\u2026"
        lines.append(line)
    if len(ordered) > NOTICE_LINES:
        lines.append(f"\u2026 and {len(ordered) - NOTICE_LINES} more")
    lines.append("`aitop config --check` lists them in full")
    count = len(ordered)
    title = f"configuration: {count} problem{'s' if count != 1 else ''}"
    if any("whole file is ignored" in p.message for p in ordered):
        title += ", the file is ignored: defaults apply"
    elif count == 1:
        title += ", that setting keeps its default"
    else:
        title += ", those settings keep their defaults"
    return ConfigNotice(title, "\n".join(lines))


@dataclass(frozen=True)
class LoadedConfig:
    """A configuration as read: the settings to use and what was wrong with the file."""

    config: Config
    """The settings: the file's valid ones over the defaults."""
    path: Path
    """The file that was (or would have been) read."""
    source: str
    """Why that file: "--config", "AITOP_CONFIG" or "default"."""
    exists: bool = False
    """Whether the file was there."""
    problems: tuple[ConfigProblem, ...] = ()
    """Every mistake found; each one left its setting at the default."""
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)
    """Line of each key in the file, by its path (`("refresh", "fleet")`)."""

    def problem(self, keys: Sequence[str], message: str) -> ConfigProblem:
        """A problem at a key's line (or its table's, when the key's own cannot be found)."""
        return ConfigProblem(self.path, locate(self.lines, keys), message)


def locate(lines: Mapping[tuple[str, ...], int], keys: Sequence[str]) -> int | None:
    """The line of a key, else of the nearest enclosing table that has one."""
    path = tuple(keys)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


# --- reading ----------------------------------------------------------------------------------

_KEY_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def _parse_key(text: str) -> tuple[tuple[str, ...], str] | None:
    """A (possibly dotted, quoted) TOML key at the start of `text`, and what follows it."""
    parts: list[str] = []
    rest = text
    while True:
        match = _KEY_PART.match(rest)
        if not match or match.end() == 0:
            return None
        quoted, literal, bare = match.groups()
        if quoted is not None:
            # Basic strings may hold escapes; keys in this file rarely do.
            with contextlib.suppress(ValueError, SyntaxError):
                quoted = ast.literal_eval(f'"{quoted}"')
        parts.append(next(p for p in (quoted, literal, bare) if p is not None))
        rest = rest[match.end() :]
        if not rest.startswith("."):
            return tuple(parts), rest
        rest = rest[1:]


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each key and table header is, by its full path (first occurrence wins).

    tomllib does not report positions, so a type mistake in valid TOML is located by reading
    the text again: table headers and `key = value` lines. Lines inside multi-line strings
    may be mistaken for keys; such a key then simply is not found where expected.
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and not line.startswith("[["):
            parsed = _parse_key(line[1:])
            if parsed is not None and parsed[1].lstrip().startswith("]"):
                table = parsed[0]
                found.setdefault(table, number)
            continue
        parsed = _parse_key(line)
        if parsed is not None and parsed[1].startswith("="):
            found.setdefault(table + parsed[0], number)
    return found


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_config(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read the configuration file (see `find_config`); never raises for a bad file.

    A missing file at the default location is no problem; one named by `--config` or
    `AITOP_CONFIG` is reported, and the defaults apply.
    """
    path, source = find_config(explicit, environ)
    try:
        if path.stat().st_size > MAX_CONFIG_CHARS * 4:  # UTF-8: at most 4 bytes a character
            return _ignored(path, source, _TOO_LARGE)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if source == "default":
            return LoadedConfig(Config(), path, source)
        why = f"no such file (named by {source})"
        return LoadedConfig(Config(), path, source, problems=(ConfigProblem(path, None, why),))
    except (OSError, UnicodeDecodeError) as exc:
        try:
            path.stat()
            exists = True
        except OSError:
            exists = False
        # An unreadable ~/.config hides whether there is a file at all: nothing to report.
        if not exists and source == "default":
            return LoadedConfig(Config(), path, source)
        why = getattr(exc, "strerror", None) or str(exc)
        problem = ConfigProblem(path, None, f"cannot be read ({why}); the defaults apply")
        return LoadedConfig(Config(), path, source, exists=exists, problems=(problem,))
    return parse_config(text, path, source)


MAX_CONFIG_CHARS = 1024 * 1024
"""A larger file is no aitop configuration (and would take long to parse): it is ignored."""
_TOO_LARGE = f"larger than {MAX_CONFIG_CHARS // 1024} KiB, not an aitop configuration"


def _ignored(path: Path, source: str, why: str, line: int | None = None) -> LoadedConfig:
    """The defaults, with one problem saying why the whole file was ignored."""
    problem = ConfigProblem(path, line, f"{why}; the whole file is ignored, defaults apply")
    return LoadedConfig(Config(), path, source, exists=True, problems=(problem,))


def parse_config(text: str, path: Path, source: str = "--config") -> LoadedConfig:
    """The settings in `text` (the contents of `path`) over the defaults, and the problems."""
    if len(text) > MAX_CONFIG_CHARS:
        return _ignored(path, source, _TOO_LARGE)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        return _ignored(path, source, "tables or arrays nested too deeply for a configuration")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        match = _TOML_POSITION.search(message)
        if match:
            line = int(match.group(1))
            message = f"{message[: match.start()]} (column {match.group(2)})"
        return _ignored(path, source, f"not valid TOML: {message}", line)
    lines = key_lines(text)
    problems: list[ConfigProblem] = []
    config = _build(
        Config,
        data,
        (),
        lambda keys, msg: problems.append(ConfigProblem(path, locate(lines, keys), msg)),
    )
    problems.sort(key=lambda p: p.line or 0)
    loaded = LoadedConfig(config, path, source, True, tuple(problems), lines)
    extra = list(_cross_checks(loaded))
    if extra:
        config = _undo(config, [keys for reset, _ in extra for keys in reset])
        loaded = replace(
            loaded,
            config=config,
            problems=tuple(
                sorted(loaded.problems + tuple(p for _, p in extra), key=lambda p: p.line or 0)
            ),
        )
    return loaded


def _cross_checks(
    loaded: LoadedConfig,
) -> Iterable[tuple[tuple[tuple[str, ...], ...], ConfigProblem]]:
    """Mistakes that involve two settings: (the settings to reset, the problem)."""
    t = loaded.config.thresholds
    if t.gpu_memory_warning_percent > t.gpu_memory_critical_percent:
        warning = ("thresholds", "gpu_memory_warning_percent")
        critical = ("thresholds", "gpu_memory_critical_percent")
        yield (
            (warning, critical),
            loaded.problem(
                warning,
                f"thresholds.gpu_memory_warning_percent ({t.gpu_memory_warning_percent:g}) "
                "must not be above thresholds.gpu_memory_critical_percent "
                f"({t.gpu_memory_critical_percent:g}); both keep their defaults",
            ),
        )


def _undo(config: Config, paths: Iterable[tuple[str, ...]]) -> Config:
    """`config` with the settings at these paths back at their defaults."""
    default = Config()
    for keys in paths:
        section, name = (keys[0], keys[1]) if len(keys) == 2 else (None, keys[0])
        if section is None:
            config = replace(config, **{name: getattr(default, name)})
        else:
            current = getattr(config, section)
            original = getattr(getattr(default, section), name)
            config = replace(config, **{section: replace(current, **{name: original})})
    return config


Report = Callable[[tuple[str, ...], str], None]


def _build(cls: type[Any], data: Mapping[str, Any], where: tuple[str, ...], report: Report) -> Any:
    """An instance of the dataclass `cls` from a TOML table; mistakes go to `report`."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        keys = (*where, key)
        name = ".".join(keys)
        spec = known.get(key)
        if spec is None:
            report(keys, _unknown(keys, known))
            continue
        hint = hints[key]
        if is_dataclass(hint) or get_origin(hint) is dict:
            if not isinstance(value, dict):
                got = _describe(value)
                report(keys, f"{name}: expected a table ([{name}]), got {got}; ignored")
                continue
            if isinstance(hint, type) and is_dataclass(hint):
                values[key] = _build(hint, value, keys, report)
            else:
                values[key] = _string_table(value, keys, spec.metadata.get("check"), report)
            continue
        converted, expected = _convert(value, hint)
        if expected is None:
            check = spec.metadata.get("check")
            expected = check(converted) if check is not None else None
        if expected is not None:
            got = "" if isinstance(value, (list, dict)) else f", got {_describe(value)}"
            report(keys, f"{name}: expected {expected}{got}; the default applies")
            continue
        values[key] = converted
    return cls(**values)


def _string_table(
    data: Mapping[str, Any], where: tuple[str, ...], check: Check | None, report: Report
) -> dict[str, str]:
    """A table of strings, entry by entry: a bad entry is reported and dropped, not the table.

    Dotted keys (`log_pane.follow = "F"`) make nested tables in TOML; they are joined back
    into one key, since binding ids contain dots.
    """
    out: dict[str, str] = {}
    for key, value in data.items():
        keys = (*where, key)
        if isinstance(value, dict):
            nested = _string_table(value, keys, check, report)
            out.update(nested)
            continue
        label = ".".join(keys[1:])
        expected = None if isinstance(value, str) else "a string"
        if expected is None and check is not None:
            expected = check({label: value})
        if expected is not None:
            got = "" if isinstance(value, (list, dict)) else f", got {_describe(value)}"
            report(keys, f"{where[0]}: {label!r}: expected {expected}{got}; ignored")
            continue
        out[label] = value
    return out


def _unknown(keys: tuple[str, ...], known: Mapping[str, Any]) -> str:
    name = keys[-1]
    where = f"[{'.'.join(keys[:-1])}]" if len(keys) > 1 else "the top level"
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown setting {'.'.join(keys)!r}, ignored; {hint}"
        f"(expected at {where}: {', '.join(known)})"
    )


def _convert(value: Any, hint: Any) -> tuple[Any, str | None]:
    """(converted value, None) or (None, what was expected) for a value of TOML type."""
    origin = get_origin(hint)
    if hint is bool:
        return (value, None) if isinstance(value, bool) else (None, "true or false")
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (None, "a whole number")
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), None) if ok else (None, "a number")
    if hint is str:
        return (value, None) if isinstance(value, str) else (None, "a string")
    if origin is tuple:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return (tuple(value), None) if ok else (None, 'a list of strings, like ["a", "b"]')
    if origin is dict:
        args = get_args(hint)
        ok = isinstance(value, dict) and all(isinstance(v, args[1]) for v in value.values())
        return (dict(value), None) if ok else (None, "a table of strings")
    raise TypeError(f"no conversion for {hint!r}")  # a programming error, not a user's


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (list, dict)) else ""
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} ({shown})" if shown else kind


# --- the default file -------------------------------------------------------------------------


def _field_docs(cls: type[Any]) -> dict[str, str]:
    """The attribute docstrings of a dataclass's fields (read from the source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _comment(text: str) -> list[str]:
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        wrapped = textwrap.wrap(" ".join(paragraph.split()), width=96) or [""]
        out.extend(f"# {line}".rstrip() for line in wrapped)
    return out


def default_file(bindings: Sequence[tuple[str, str, str]] = ()) -> str:
    """A commented configuration file holding every default; it parses back to `Config()`.

    `bindings` are (id, default keys, what it does) for the commented keymap examples.
    """
    out = [
        "# aitop configuration (TOML). Every setting is optional; these are the defaults.",
        f"# aitop reads {default_path()}, or the file named by {CONFIG_ENV} or --config.",
        "# Command-line flags win over environment variables, which win over this file.",
        "",
    ]
    default = Config()
    docs = _field_docs(Config)
    sections = [f for f in fields(Config) if is_dataclass(getattr(default, f.name))]
    for spec in fields(Config):
        value = getattr(default, spec.name)
        if is_dataclass(value) or isinstance(value, dict):
            continue
        out.extend(_comment(docs.get(spec.name, "")))
        out.append(f"{spec.name} = {_toml_value(value)}")
        out.append("")
    for spec in sections:
        section = getattr(default, spec.name)
        section_docs = _field_docs(type(section))
        out.extend(_comment(docs.get(spec.name, "")))
        out.append(f"[{spec.name}]")
        for inner in fields(section):
            out.extend(_comment(section_docs.get(inner.name, "")))
            out.append(f"{inner.name} = {_toml_value(getattr(section, inner.name))}")
        out.append("")
    out.extend(_comment(docs.get("keymap", "")))
    out.append("[keymap]")
    for binding_id, keys, what in bindings:
        out.append(f"# {_toml_key(binding_id)} = {_toml_string(keys)}  # {what}".rstrip())
    return "\n".join(out) + "\n"


# --- writing the table's columns --------------------------------------------------------------


class CannotWrite(Exception):
    """The configuration file could not be changed safely; it was left as it was."""


def _array_end(lines: Sequence[str], start: int) -> int:
    """The index of the line on which the TOML value that starts on `lines[start]` (after its
    `=`) ends: brackets are counted outside strings and comments."""
    depth, quote = 0, ""
    for number in range(start, len(lines)):
        line = lines[number]
        i = line.index("=") + 1 if number == start else 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            i += 1
        if depth <= 0:
            return number
    return len(lines) - 1


def with_table_columns(text: str, columns: Sequence[str]) -> str:
    """`text` (a configuration file) with `[table] columns` set to `columns`: the line (or
    lines) of an existing setting replaced, else the setting added to its `[table]`, else a
    `[table]` appended; every other byte as it was.

    Raises `CannotWrite` unless the result reads back as the same settings with only the
    columns changed (a `table.columns` written some other way, or a file that is not TOML).
    """
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CannotWrite(f"it is not valid TOML ({exc})") from None
    setting = f"columns = {_toml_value(tuple(columns))}"
    lines = text.splitlines(keepends=True)
    header = key_at = None
    for number, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            parsed = _parse_key(line[1:])
            inside = parsed is not None and parsed[0] == ("table",)
            if header is not None and not inside:
                break
            if inside and parsed is not None and parsed[1].lstrip().startswith("]"):
                header = number
            continue
        if header is not None:
            parsed = _parse_key(line)
            if parsed is not None and parsed[0] == ("columns",) and parsed[1].startswith("="):
                key_at = number
                break
    if key_at is not None:
        end = _array_end(lines, key_at)
        ending = "\r\n" if lines[end].endswith("\r\n") else "\n"
        lines[key_at : end + 1] = [setting + ending]
    elif header is not None:
        ending = "\r\n" if lines[header].endswith("\r\n") else "\n"
        if not lines[header].endswith(("\n", "\r")):
            lines[header] += ending
        lines.insert(header + 1, setting + ending)
    else:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        lines.append(("\n" if lines else "") + "[table]\n" + setting + "\n")
    after_text = "".join(lines)
    wanted = dict(before)
    table = dict(wanted.get("table", {})) if isinstance(wanted.get("table"), dict) else None
    if table is None and "table" in wanted:
        raise CannotWrite("its `table` is not a table")
    wanted["table"] = {**(table or {}), "columns": list(columns)}
    try:
        after = tomllib.loads(after_text)
    except tomllib.TOMLDecodeError as exc:
        raise CannotWrite(f"the change would not read back ({exc})") from None
    if after != wanted:
        raise CannotWrite("its [table] is written in a way aitop does not edit")
    return after_text


def save_table_columns(path: Path, columns: Sequence[str]) -> None:
    """Set `[table] columns` in the configuration file at `path` (made when missing), through
    `with_table_columns` and a rename, so that a failure leaves the file as it was. Raises
    `CannotWrite` (with the reason) when that cannot be done."""
    try:
        # Bytes, not text mode: the file's own line endings are kept.
        text = path.read_bytes().decode("utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CannotWrite(f"it cannot be read ({exc})") from None
    new = with_table_columns(text, columns)
    # A linked file (dotfiles kept elsewhere) is changed where it lives, the link kept.
    path = path.resolve()
    part = path.with_name(f".{path.name}.aitop-new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(new.encode("utf-8"))
        if path.exists():
            os.chmod(part, path.stat().st_mode & 0o7777)
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise CannotWrite(f"it cannot be written ({exc.strerror or exc})") from None


# --- the engines ------------------------------------------------------------------------------


def choose_hosts(
    flags: Sequence[str],
    loaded: LoadedConfig,
    environ: Mapping[str, str] | None = None,
    contexts: Sequence[tuple[str, str]] = (),
) -> list[tuple[str | None, str]]:
    """The engines to watch, each with where that choice came from.

    `--host` flags and the `--context` ones (`contexts`: already resolved, as (url, source))
    win together; then DOCKER_HOST (None is returned so the engine reads it); then every host
    of the file; else None with "default", which lets the engine fall back to the docker
    context, the local socket or a Podman socket. The same URL given twice is watched once.
    """
    env = os.environ if environ is None else environ
    chosen: list[tuple[str | None, str]]
    if flags or contexts:
        chosen = [*((flag, "--host") for flag in flags), *contexts]
    elif env.get("DOCKER_HOST"):
        chosen = [(None, "DOCKER_HOST")]
    elif loaded.config.hosts:
        chosen = [(h, f"config file {loaded.path}") for h in loaded.config.hosts]
    else:
        chosen = [(None, "default")]
    seen: set[str | None] = set()
    unique = []
    for url, source in chosen:
        if url not in seen:
            seen.add(url)
            unique.append((url, source))
    return unique
