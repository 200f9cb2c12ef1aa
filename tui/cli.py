"""The `aitop` command line: the TUI, `aitop snapshot --json`, `aitop demo up|down|replay`
and `aitop config`."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace

from tui import __version__
from tui.config import (
    CONFIG_ENV,
    Config,
    ConfigProblem,
    LoadedConfig,
    RefreshConfig,
    choose_hosts,
    default_file,
    default_path,
    interval_problem,
    load_config,
)
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.engine.urls import context_url

EXIT_ENGINE = 2
"""Exit code of an engine that cannot be used, or of a usage the engine would refuse."""
EXIT_INTERRUPTED = 130
"""Exit code after ctrl+c before the interactive view took the terminal."""


LOW_BANDWIDTH_FPS = 8
"""Frames a second at most with `--low-bandwidth` (Textual's default is 60)."""
LOW_BANDWIDTH_INTERVAL = 2.0
"""Seconds between fleet samples with `--low-bandwidth`, unless set otherwise."""
FIRST_SAMPLE_WAIT = 0.6
"""Longest the CLI waits for the first sample before loading the UI."""
NO_ENGINE_HINT = "; `aitop demo replay` shows a recorded fleet without one"
"""Added to the one line that says the engine cannot be used, where aitop would show a fleet."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render `aitop --help`)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's own --host must not reset one given before it.
    common.add_argument(
        "--host",
        metavar="URL",
        action="append",
        default=argparse.SUPPRESS,
        help="engine to watch (unix:///path, tcp://host:port, ssh://user@host); give it "
        "several times to watch several engines at once; default: DOCKER_HOST, else the "
        "configuration file's hosts, else the active docker context, else the local Docker "
        "socket, else a Podman socket",
    )
    common.add_argument(
        "--context",
        metavar="NAME",
        action="append",
        default=argparse.SUPPRESS,
        help="watch the engine of this docker context (`docker context ls`); repeatable, and "
        "combines with --host",
    )
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: ${CONFIG_ENV}, else {default_path()})",
    )
    parser = argparse.ArgumentParser(
        prog="aitop",
        description="top for AI model containers: see and steer the model containers "
        "on this machine.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"aitop {__version__}")
    parser.add_argument(
        "--all", action="store_true", help="start showing all containers, not only models"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="sampling interval (default: the configuration file's, else 1.0)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="change nothing: hide every action that would change a container, and refuse "
        "them below the UI too",
    )
    parser.add_argument(
        "--low-bandwidth",
        action="store_true",
        help="for slow links: fewer frames a second, 16 colours, the fleet sampled every 2 s",
    )
    parser.add_argument(
        "--gpu-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="least time between two NVML readings (default: the configuration file's, else 1.0)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    snap = sub.add_parser(
        "snapshot", parents=[common], help="print the fleet once, as JSON, and exit"
    )
    snap.add_argument("--json", action="store_true", required=True, help="JSON output")
    snap.add_argument(
        "--all", action="store_true", default=argparse.SUPPRESS, help="include non-model containers"
    )
    snap.add_argument(
        "--disk",
        action="store_true",
        help="add each engine's disk use (images, volumes, build cache; volume sizes can take a "
        "while to compute)",
    )
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="start or remove a demo fleet, or replay a recorded one (no engine needed)",
        description="up: start a demo fleet of stand-in model servers on the engine (it is left "
        "alone when one is up already); down: remove it; replay: show the demo fleet as "
        "recorded, GPUs included, with no engine (nothing can be changed)",
    )
    demo.add_argument("action", choices=["up", "down", "replay"])
    config = sub.add_parser(
        "config", parents=[common], help="show, check or print the configuration file"
    )
    what = config.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--print-default",
        action="store_true",
        help="print a commented configuration file holding every default",
    )
    what.add_argument(
        "--path", action="store_true", help="print where aitop looks for its configuration file"
    )
    what.add_argument(
        "--check",
        action="store_true",
        help="report every mistake in the configuration file (exit code 1 when there is one)",
    )
    return parser


def _warn(problems: Sequence[ConfigProblem]) -> None:
    for problem in problems:
        print(f"aitop: {problem}", file=sys.stderr)


def _config_command(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.print_default:
        from tui.commands import default_keymap_lines

        sys.stdout.write(default_file(default_keymap_lines()))
        return 0
    if args.path:
        state = "exists" if loaded.exists else "does not exist"
        print(f"{loaded.path}  ({state}; from {loaded.source})")
        return 0
    from tui.commands import check_settings

    _, problems = check_settings(loaded)
    found = [*loaded.problems, *problems]
    if not loaded.exists and not found:
        print(f"{loaded.path}: no configuration file; the defaults apply")
        return 0
    for problem in found:
        print(problem)
    if found:
        return 1
    print(f"{loaded.path}: ok")
    return 0


def _with_flags(args: argparse.Namespace, config: Config) -> Config:
    """The configuration with the command line's flags folded in: a flag wins over the file.

    `--low-bandwidth` samples every LOW_BANDWIDTH_INTERVAL seconds unless `--interval` or a
    `refresh.fleet` other than the default says otherwise.
    """
    low_bandwidth = args.low_bandwidth or config.low_bandwidth
    fleet = args.interval if args.interval is not None else config.refresh.fleet
    if low_bandwidth and args.interval is None and config.refresh.fleet == RefreshConfig().fleet:
        fleet = LOW_BANDWIDTH_INTERVAL
    gpu = args.gpu_interval if args.gpu_interval is not None else config.refresh.gpu
    return replace(
        config,
        read_only=args.read_only or config.read_only,
        low_bandwidth=low_bandwidth,
        refresh=RefreshConfig(fleet=fleet, gpu=gpu),
    )


def _chosen_hosts(args: argparse.Namespace, loaded: LoadedConfig) -> list[tuple[str | None, str]]:
    """The engines the flags, DOCKER_HOST or the file name (see `choose_hosts`)."""
    contexts = [(context_url(name), f"context {name}") for name in getattr(args, "context", [])]
    return choose_hosts(getattr(args, "host", None) or [], loaded, contexts=contexts)


def _snapshot_command(
    args: argparse.Namespace, loaded: LoadedConfig, config: Config, engines: Sequence[Engine]
) -> int:
    """`aitop snapshot --json`: every engine's fleet once, as JSON on stdout."""
    from tui.fleet.snapshot import snapshot_json

    document = snapshot_json(
        engines, include_all=getattr(args, "all", False), rules=config.detection_rules()
    )
    if args.disk:
        from tui.fleet.disk.survey import survey
        from tui.fleet.disk.types import disk_json

        for host, engine in zip(document["hosts"], engines, strict=True):
            if "error" in host:
                continue  # it did not answer: nothing to survey
            try:
                host["disk"] = disk_json(survey(engine))
            except EngineError as exc:
                host["disk_error"] = str(exc)
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _demo_command(
    args: argparse.Namespace, loaded: LoadedConfig, config: Config, engines: Sequence[Engine]
) -> int:
    """`aitop demo up|down|replay`: start or remove the demo fleet on one engine, or show the
    recorded one without any."""
    if args.action == "replay":
        return _replay_command(args, loaded, config)
    if len(engines) > 1:
        print(
            "aitop: `aitop demo` works on one engine: give one --host or --context",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    (engine,) = engines
    if engine.read_only:
        print(
            "aitop: read-only mode: `aitop demo` would start and remove containers",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    from tui.fleet.demo import demo_down, demo_ids, demo_up

    if args.action == "down":
        demo_down(engine)
        return 0
    try:
        existing = demo_ids(engine)
    except EngineError as exc:
        raise EngineError(f"{exc}{NO_ENGINE_HINT}") from exc
    if existing:
        # A second `up` must not wipe a fleet someone is looking at: say so, and leave it.
        print(
            f"the demo fleet is already up ({len(existing)} containers): run `aitop` to see "
            "it; `aitop demo down` removes it (then `aitop demo up` starts it afresh)"
        )
        return 0
    demo_up(engine)
    print("demo fleet is up: run `aitop` to see it, `aitop demo down` to remove it")
    return 0


def _replay_command(args: argparse.Namespace, loaded: LoadedConfig, config: Config) -> int:
    """`aitop demo replay`: the interactive view on the recorded demo fleet; no engine."""
    if not sys.stdout.isatty():
        print("aitop: `aitop demo replay` needs a terminal", file=sys.stderr)
        return EXIT_ENGINE
    from tui.app import AitopApp
    from tui.commands import check_settings
    from tui.fleet.demo import RecordedFleet, recorded_fleet

    config, more = check_settings(replace(loaded, config=config))
    _warn(more)
    problems = [*loaded.problems, *more]
    AitopApp(
        [RecordedFleet(recorded_fleet())],
        config=config,
        config_problems=problems,
        config_path=loaded.path,
        show_all=getattr(args, "all", False),
    ).run()
    return 0


def _tui_command(
    args: argparse.Namespace, loaded: LoadedConfig, config: Config, engines: Sequence[Engine]
) -> int:
    """`aitop`: the interactive view, until the user quits."""
    if config.low_bandwidth:
        # Read by Textual when it is first imported, which is below: a user's own values win.
        os.environ.setdefault("TEXTUAL_FPS", str(LOW_BANDWIDTH_FPS))
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "standard")
    refresh = config.refresh
    for flag, value in (("--interval", refresh.fleet), ("--gpu-interval", refresh.gpu)):
        problem = interval_problem(value)
        if problem is not None:
            print(f"aitop: {flag} {value:g}: expected {problem}", file=sys.stderr)
            return EXIT_ENGINE
    if not sys.stdout.isatty():
        print(
            "aitop: the interactive view needs a terminal; try `aitop snapshot --json`",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    # Fail fast, before the screen switches, with one readable line. With several engines
    # one that is down is shown as such and retried, like an engine that goes away later.
    if len(engines) == 1:
        try:
            engines[0].version()
        except EngineError as exc:
            raise EngineError(f"{exc}{NO_ENGINE_HINT}") from exc
    from tui import heap
    from tui.watch import monitors_for

    heap.limit_arenas()  # before the monitors' threads: each would get an arena of its own
    # Start watching now: the engines are listed and sampled while Textual loads.
    monitors = monitors_for(engines, config)
    for monitor in monitors:
        monitor.start(defer_details=True)
    # The first sample comes several times faster alone than beside the UI's imports (see
    # FleetMonitor.wait_for_first_sample): a short wait here shows figures sooner, not later.
    deadline = time.monotonic() + FIRST_SAMPLE_WAIT
    for monitor in monitors:
        monitor.wait_for_first_sample(max(0.0, deadline - time.monotonic()))
    from tui.app import AitopApp
    from tui.commands import check_settings

    # The keymap and theme are checked against what Textual knows, now that it is loaded.
    config, more = check_settings(replace(loaded, config=config))
    _warn(more)
    problems = [*loaded.problems, *more]
    try:
        AitopApp(
            monitors,
            config=config,
            config_problems=problems,
            config_path=loaded.path,
            show_all=args.all,
        ).run()
    finally:
        for monitor in monitors:
            monitor.stop()
    return 0


Command = Callable[[argparse.Namespace, LoadedConfig, Config, Sequence[Engine]], int]
"""A subcommand: the arguments, the file as read, the settings with the flags folded in, and
an engine for each host chosen."""

SUBCOMMANDS: dict[str | None, Command] = {
    "snapshot": _snapshot_command,
    "demo": _demo_command,
    None: _tui_command,
}
"""What runs each subcommand (None: no subcommand, the interactive view); `config` is apart:
it reports on the file instead of using it."""


def _run(args: argparse.Namespace) -> int:
    loaded = load_config(getattr(args, "config", None))
    if args.command == "config":
        return _config_command(args, loaded)
    # An unknown --context is the one line printed; a bad URL comes after the file's problems.
    chosen = _chosen_hosts(args, loaded)
    _warn(loaded.problems)
    from tui.watch import engines_for

    config = _with_flags(args, loaded.config)
    return SUBCOMMANDS[args.command](args, loaded, config, engines_for(chosen, config))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aitop` console script; returns the exit code."""
    # A start allocates hundreds of thousands of objects that live as long as aitop (the UI's
    # modules, Textual's styles, the first listing); collections during it only walk them
    # (~50 ms at 500 containers). The app turns the collector back on at its first frame.
    gc.disable()
    args = build_parser().parse_args(argv)
    if args.command is not None:
        gc.enable()  # one-shot commands: nothing to draw
    try:
        return _run(args)
    except EngineError as exc:
        print(f"aitop: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `aitop snapshot --json | head` closed the pipe: nothing to report.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        fd, path = tempfile.mkstemp(prefix="aitop-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        print(f"aitop: internal error: {exc!r} (details in {path})", file=sys.stderr)
        return 1
    finally:
        gc.enable()  # for a caller that goes on (a test, say) after an early return
