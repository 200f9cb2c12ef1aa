"""The `aitop` command line: the TUI, `aitop snapshot --json`, `aitop demo up|down` and
`aitop config`."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

from tui import __version__
from tui.config import (
    CONFIG_ENV,
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


LOW_BANDWIDTH_FPS = 8
"""Frames a second at most with `--low-bandwidth` (Textual's default is 60)."""
LOW_BANDWIDTH_INTERVAL = 2.0
"""Seconds between fleet samples with `--low-bandwidth`, unless set otherwise."""
FIRST_SAMPLE_WAIT = 0.6
"""Longest the CLI waits for the first sample before loading the UI."""


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
    demo = sub.add_parser("demo", parents=[common], help="start or remove a demo fleet")
    demo.add_argument("action", choices=["up", "down"])
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


def _run(args: argparse.Namespace) -> int:
    loaded = load_config(getattr(args, "config", None))
    if args.command == "config":
        return _config_command(args, loaded)
    config = loaded.config
    contexts = [(context_url(name), f"context {name}") for name in getattr(args, "context", [])]
    chosen = choose_hosts(getattr(args, "host", None) or [], loaded, contexts=contexts)
    problems = list(loaded.problems)
    _warn(problems)
    engines = []
    for url, source in chosen:
        engine = Engine(url)
        if url is not None:
            engine.url_source = source
        engine.read_only = bool(getattr(args, "read_only", False)) or config.read_only
        engines.append(engine)
    engine = engines[0]
    rules = config.detection_rules()
    if args.command == "snapshot":
        from tui.fleet.snapshot import snapshot_json

        json.dump(
            snapshot_json(engines, include_all=getattr(args, "all", False), rules=rules),
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    if args.command == "demo":
        if len(engines) > 1:
            print(
                "aitop: `aitop demo` works on one engine: give one --host or --context",
                file=sys.stderr,
            )
            return EXIT_ENGINE
        if engine.read_only:
            print(
                "aitop: read-only mode: `aitop demo` would start and remove containers",
                file=sys.stderr,
            )
            return EXIT_ENGINE
        from tui.fleet.demo import demo_down, demo_up

        if args.action == "up":
            demo_up(engine)
            print("demo fleet is up: run `aitop` to see it, `aitop demo down` to remove it")
        else:
            demo_down(engine)
        return 0
    low_bandwidth = bool(getattr(args, "low_bandwidth", False)) or config.low_bandwidth
    if low_bandwidth:
        # Read by Textual when it is first imported, which is below: a user's own values win.
        os.environ.setdefault("TEXTUAL_FPS", str(LOW_BANDWIDTH_FPS))
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "standard")
    interval = args.interval if args.interval is not None else config.refresh.fleet
    if low_bandwidth and args.interval is None and config.refresh.fleet == RefreshConfig().fleet:
        interval = LOW_BANDWIDTH_INTERVAL
    gpu_interval = args.gpu_interval if args.gpu_interval is not None else config.refresh.gpu
    for flag, value in (("--interval", interval), ("--gpu-interval", gpu_interval)):
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
        engine.version()
    from tui.fleet.gpu.sampler import GpuSampler
    from tui.fleet.monitor import FleetMonitor

    # One NVML sampler for all: it throttles itself, so engines together read NVML once a tick.
    gpu = GpuSampler(min_interval=gpu_interval)
    # Start watching now: the engines are listed and sampled while Textual loads.
    monitors = [FleetMonitor(e, rules=rules, interval=interval, gpu=gpu) for e in engines]
    for monitor in monitors:
        monitor.start(defer_details=True)
    # The first sample comes several times faster alone than beside the UI's imports (see
    # FleetMonitor.wait_for_first_sample): a short wait here shows figures sooner, not later.
    deadline = time.monotonic() + FIRST_SAMPLE_WAIT
    for monitor in monitors:
        monitor.wait_for_first_sample(max(0.0, deadline - time.monotonic()))
    from tui.app import AitopApp
    from tui.commands import check_settings

    config, more = check_settings(loaded)
    _warn(more)
    problems.extend(more)
    try:
        AitopApp(
            engine,
            show_all=args.all,
            monitors=monitors,
            config=config,
            config_problems=[str(p) for p in problems],
        ).run()
    finally:
        for monitor in monitors:
            monitor.stop()
    return 0


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
        return 130
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
