"""The inspect view's content: a container's inspect data as titled sections of (key, value) rows.

Pure functions, no I/O. Secrets are masked unless `reveal=True` is asked for on purpose: values
whose names look secret (environment variables, labels, command-line options such as
`HF_TOKEN`, `*_API_KEY`, `--password`) and secrets inside any value (URL passwords, connection
strings, headers, webhook URLs, options of `sh -c` lines, health checks and their output); the
rules live in `tui.fleet.secrets`. Every value is untrusted text from the container's
configuration: control characters and invisible or reordering marks are shown escaped, never
passed through, and at most `MAX_SCAN_CHARS` of a value are shown.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui.fleet.inventory import parse_time
from tui.fleet.sanitize import INVISIBLE
from tui.fleet.secrets import (
    ELLIPSIS,
    MASK,
    MAX_NAME_CHARS,
    MAX_SCAN_CHARS,
    cut,
    looks_secret,
    mask_secrets,
    mask_words,
)
from tui.fleet.units import format_bytes

HEALTH_LOG_ENTRIES = 5
"""Health-check results shown, newest last."""
MAX_COMMAND_WORDS = 512
"""Words of a command line shown; the rest is `…`."""

_MASK_TOKEN = "AITOPMASKEDVALUE"
# C0 and C1 controls, and the characters that hide or reorder text without showing themselves:
# soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width spaces and joiners,
# direction marks, line and paragraph separators, bidirectional embeddings, overrides and
# isolates, invisible operators, the byte-order mark, and the tag characters.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + INVISIBLE + "]")
_UNSAFE_IN_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f" + INVISIBLE + "]")
"""`_UNSAFE` but the line feed: a value of several lines (a script, a label) shows them."""


@dataclass(frozen=True)
class InspectRow:
    """One line of the inspect view."""

    key: str
    value: str
    masked: bool = False
    """True when the value hides a secret (shown as MASK or with its secret part masked)."""


@dataclass(frozen=True)
class InspectSection:
    """A titled group of rows."""

    title: str
    rows: tuple[InspectRow, ...]


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(text: object, *, limit: int = MAX_SCAN_CHARS, lines: bool = False) -> str:
    """Untrusted text made safe to show on one line: control characters, invisible marks and
    bidirectional controls escaped (`\\x1b`, `\\u202e`, `\\U000e0041`), at most `limit`
    characters of it (`…` when cut).

    With `lines` (a value, not a name), line breaks stay line breaks (`\\r\\n` as one):
    `\\x0a` in the middle of a shell script reads as noise; every other control is escaped
    still, the Unicode line and paragraph separators too."""
    shown = cut(str(text), limit)
    if lines:
        return _UNSAFE_IN_LINES.sub(_escape, shown.replace("\r\n", "\n"))
    return _UNSAFE.sub(_escape, shown)


def _secret_value(name: str, value: str, reveal: bool) -> InspectRow:
    key = clean(name, limit=MAX_NAME_CHARS)
    if looks_secret(name):
        return InspectRow(key, clean(value, lines=True) if reveal else MASK, masked=True)
    hidden, found = mask_secrets(value)
    return InspectRow(key, clean(value if reveal else hidden, lines=True), masked=found)


def mask_argv(argv: Sequence[str], *, reveal: bool = False) -> tuple[str, bool]:
    """A command line as one string with its secrets masked (see `secrets.mask_words`).

    Handles `--token=abc`, `--token abc`, `HF_TOKEN=abc`, URL passwords and words that are
    shell lines (`sh -c "serve --api-key abc"`); returns (text, masked_any). At most
    `MAX_COMMAND_WORDS` words and `MAX_SCAN_CHARS` characters are shown.
    """
    words = [str(w) for w in argv[:MAX_COMMAND_WORDS]]
    hidden, masked = mask_words(words)
    shown = [cut(w) for w in words] if reveal else hidden
    # shlex would quote the mask's bullets: join with an ASCII stand-in, then swap it back.
    joined = shlex.join(a.replace(MASK, _MASK_TOKEN) for a in shown)
    if len(argv) > MAX_COMMAND_WORDS:
        joined += " " + ELLIPSIS
    return clean(joined.replace(_MASK_TOKEN, MASK), lines=True), masked


def _when(value: str | None) -> str:
    stamp = parse_time(value)
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def human_size(value: int | float | None) -> str:
    """Bytes as "512 MiB", "1.5 GiB"; "unlimited" for 0 or None (a limit that is not set)."""
    return format_bytes(value, iec=True) if value else "unlimited"


def _argv(value: object) -> list[str]:
    """A command as a list of words (the API gives a list; a bare string is one shell line)."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(word) for word in value]
    return [str(value)]


def _rows(pairs: Iterable[tuple[str, object]]) -> tuple[InspectRow, ...]:
    return tuple(InspectRow(clean(k), clean(v, lines=True)) for k, v in pairs)


def _container_section(attrs: Mapping[str, Any], reveal: bool) -> InspectSection:
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    image_id = str(attrs.get("Image") or "")
    status = str(state.get("Status") or "")
    if status == "exited":
        status += f" (exit code {state.get('ExitCode', 0)})"
    if state.get("OOMKilled"):
        status += ", OOM-killed"
    if state.get("Error"):
        status += f": {state['Error']}"
    # The engine's error echoes the command that failed, secrets and all.
    hidden_status, masked_state = mask_secrets(status)
    command, masked_cmd = mask_argv(
        [attrs.get("Path") or "", *_argv(attrs.get("Args"))], reveal=reveal
    )
    entrypoint, masked_ep = mask_argv(_argv(config.get("Entrypoint")), reveal=reveal)
    cmd, masked_c = mask_argv(_argv(config.get("Cmd")), reveal=reveal)
    rows = list(
        _rows(
            [
                ("name", (attrs.get("Name") or "").lstrip("/")),
                ("id", attrs.get("Id", "")),
                ("image", config.get("Image") or image_id),
                ("image id", image_id.removeprefix("sha256:")[:12] or "-"),
                ("created", _when(attrs.get("Created"))),
            ]
        )
    )
    rows.append(
        InspectRow(
            "state", clean(status if reveal else hidden_status, lines=True), masked=masked_state
        )
    )
    rows.extend(
        _rows(
            [
                ("started", _when(state.get("StartedAt"))),
                ("finished", _when(state.get("FinishedAt"))),
                ("restarts", attrs.get("RestartCount", 0)),
            ]
        )
    )
    rows.append(InspectRow("command", command or "-", masked=masked_cmd))
    rows.append(InspectRow("entrypoint", entrypoint or "-", masked=masked_ep))
    rows.append(InspectRow("cmd", cmd or "-", masked=masked_c))
    rows.extend(
        _rows(
            [
                ("working dir", config.get("WorkingDir") or "/"),
                ("user", config.get("User") or "root (image default)"),
                ("tty", "yes" if config.get("Tty") else "no"),
            ]
        )
    )
    return InspectSection("Container", tuple(rows))


def _environment_section(attrs: Mapping[str, Any], reveal: bool) -> InspectSection:
    rows = []
    for item in (attrs.get("Config") or {}).get("Env") or ():
        name, _, value = str(item).partition("=")
        rows.append(_secret_value(name, value, reveal))
    return InspectSection("Environment", tuple(rows))


def _mounts_section(attrs: Mapping[str, Any]) -> InspectSection:
    rows = []
    for mount in attrs.get("Mounts") or ():
        kind = mount.get("Type", "")
        source = mount.get("Name") if kind == "volume" else mount.get("Source")
        mode = "rw" if mount.get("RW", True) else "ro"
        extra = f", {mount['Mode']}" if mount.get("Mode") else ""
        rows.append((mount.get("Destination", ""), f"{kind} {source or '-'} ({mode}{extra})"))
    for tmpfs, opts in ((attrs.get("HostConfig") or {}).get("Tmpfs") or {}).items():
        rows.append((tmpfs, f"tmpfs ({opts or 'defaults'})"))
    return InspectSection("Mounts", _rows(rows))


def _ports_section(attrs: Mapping[str, Any]) -> InspectSection:
    live = (attrs.get("NetworkSettings") or {}).get("Ports")
    ports = live if live else (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    exposed = (attrs.get("Config") or {}).get("ExposedPorts") or {}
    rows = []
    for port in sorted(set(ports) | set(exposed)):
        bindings = ports.get(port)
        if not bindings:
            rows.append((port, "not published"))
            continue
        seen = []
        for b in bindings:
            host_ip = b.get("HostIp") or "0.0.0.0"
            host_port = b.get("HostPort") or "(any free port)"
            text = f"[{host_ip}]:{host_port}" if ":" in host_ip else f"{host_ip}:{host_port}"
            if text not in seen:
                seen.append(text)
        rows.append((port, ", ".join(seen)))
    return InspectSection("Ports", _rows(rows))


def _networks_section(attrs: Mapping[str, Any]) -> InspectSection:
    settings = attrs.get("NetworkSettings") or {}
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or "default"
    rows: list[tuple[str, object]] = [("mode", mode)]
    for name, net in sorted((settings.get("Networks") or {}).items()):
        parts = []
        if net.get("IPAddress"):
            parts.append(f"{net['IPAddress']}/{net.get('IPPrefixLen', '')}")
        if net.get("Gateway"):
            parts.append(f"gateway {net['Gateway']}")
        if net.get("Aliases"):
            parts.append("aliases " + ", ".join(net["Aliases"]))
        if net.get("MacAddress"):
            parts.append(f"mac {net['MacAddress']}")
        rows.append((name, "; ".join(parts) or "not connected"))
    return InspectSection("Networks", _rows(rows))


def _labels_section(attrs: Mapping[str, Any], reveal: bool) -> InspectSection:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return InspectSection(
        "Labels", tuple(_secret_value(k, str(v), reveal) for k, v in sorted(labels.items()))
    )


def _restart_section(attrs: Mapping[str, Any]) -> InspectSection:
    host = attrs.get("HostConfig") or {}
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name == "on-failure" and policy.get("MaximumRetryCount"):
        name += f" (at most {policy['MaximumRetryCount']} retries)"
    return InspectSection(
        "Restart policy",
        _rows(
            [
                ("policy", name),
                ("restarts so far", attrs.get("RestartCount", 0)),
                ("removed on exit", "yes" if host.get("AutoRemove") else "no"),
            ]
        ),
    )


def gpu_request_text(request: Mapping[str, Any]) -> str:
    """One device request (`--gpus`) as text: driver, which devices, capabilities."""
    ids = request.get("DeviceIDs") or []
    count = request.get("Count") or 0
    if ids:
        which = "GPUs " + ",".join(str(i) for i in ids)
    elif count == -1:
        which = "all GPUs"
    elif count:
        which = f"{count} GPU{'s' if count != 1 else ''}"
    else:
        which = "no count"
    caps = "; ".join(",".join(group) for group in request.get("Capabilities") or [] if group)
    driver = request.get("Driver") or "default driver"
    return f"{which} ({driver}{', capabilities ' + caps if caps else ''})"


def _resources_section(attrs: Mapping[str, Any]) -> InspectSection:
    host = attrs.get("HostConfig") or {}
    cpus = "unlimited"
    if host.get("NanoCpus"):
        cpus = f"{host['NanoCpus'] / 1e9:g}"
    elif host.get("CpuQuota") and host.get("CpuPeriod"):
        cpus = f"{host['CpuQuota'] / host['CpuPeriod']:g}"
    swap = host.get("MemorySwap")
    rows: list[tuple[str, object]] = [
        ("memory limit", human_size(host.get("Memory"))),
        (
            "memory reservation",
            human_size(host.get("MemoryReservation")) if host.get("MemoryReservation") else "none",
        ),
        ("memory+swap", "unlimited" if swap in (None, 0, -1) else human_size(swap)),
        ("cpus", cpus),
        ("cpu shares", host.get("CpuShares") or "default"),
        ("cpuset", host.get("CpusetCpus") or "any"),
        ("shm size", human_size(host.get("ShmSize"))),
        ("pids limit", host.get("PidsLimit") or "unlimited"),
        ("runtime", host.get("Runtime") or "default"),
    ]
    for ulimit in host.get("Ulimits") or ():
        rows.append((f"ulimit {ulimit.get('Name')}", f"{ulimit.get('Soft')}:{ulimit.get('Hard')}"))
    requests = host.get("DeviceRequests") or ()
    for n, request in enumerate(requests, 1):
        rows.append((f"device request {n}", gpu_request_text(request)))
    for device in host.get("Devices") or ():
        rows.append(("device", f"{device.get('PathOnHost')} -> {device.get('PathInContainer')}"))
    env = {
        k: v
        for k, _, v in (str(e).partition("=") for e in (attrs.get("Config") or {}).get("Env") or ())
    }
    if "NVIDIA_VISIBLE_DEVICES" in env:
        rows.append(("NVIDIA_VISIBLE_DEVICES", env["NVIDIA_VISIBLE_DEVICES"]))
    if not requests and "NVIDIA_VISIBLE_DEVICES" not in env:
        rows.append(("GPUs", "none requested"))
    return InspectSection("Resources and GPUs", _rows(rows))


def _health_check_text(test: Sequence[object], reveal: bool) -> tuple[str, bool]:
    """`Config.Healthcheck.Test` as text: `CMD` and its words, or `CMD-SHELL` and its line."""
    kind, args = str(test[0]), [str(a) for a in test[1:]]
    if kind == "CMD":
        text, masked = mask_argv(args, reveal=reveal)
        return f"{clean(kind)} {text}", masked
    line = " ".join(args)
    hidden, masked = mask_secrets(line)
    return clean(f"{kind} {line if reveal else hidden}", lines=True), masked


def _health_section(attrs: Mapping[str, Any], reveal: bool) -> InspectSection:
    health = (attrs.get("State") or {}).get("Health")
    check = (attrs.get("Config") or {}).get("Healthcheck") or {}
    if not health and not check:
        return InspectSection("Health", _rows([("health check", "none")]))
    test = check.get("Test") or []
    rows: list[InspectRow] = []
    if test:
        text, masked = _health_check_text(test, reveal)
        rows.append(InspectRow("check", text, masked=masked))
    if check.get("Interval"):
        rows.extend(_rows([("interval", f"{check['Interval'] / 1e9:g}s")]))
    if health:
        rows.extend(
            _rows(
                [
                    ("status", health.get("Status", "")),
                    ("failing streak", health.get("FailingStreak", 0)),
                ]
            )
        )
        for entry in (health.get("Log") or [])[-HEALTH_LOG_ENTRIES:]:
            # The check's output echoes what it ran and what answered: tokens included.
            raw = str(entry.get("Output") or "")
            hidden, masked = mask_secrets(raw)
            output = " ".join((cut(raw) if reveal else hidden).split())
            if len(output) > 200:
                output = output[:199] + ELLIPSIS
            rows.append(
                InspectRow(
                    clean(_when(entry.get("Start"))),
                    clean(f"exit {entry.get('ExitCode')}: {output or '(no output)'}"),
                    masked=masked,
                )
            )
    return InspectSection("Health", tuple(rows))


def inspect_sections(
    attrs: Mapping[str, Any], *, reveal: bool = False
) -> tuple[InspectSection, ...]:
    """A container's inspect data as the inspect view shows it.

    Sections: Container (image, command, entrypoint), Environment, Mounts, Ports, Networks,
    Labels, Restart policy, Resources and GPUs, Health. Secrets are masked unless `reveal`.
    """
    sections = (
        _container_section(attrs, reveal),
        _environment_section(attrs, reveal),
        _mounts_section(attrs),
        _ports_section(attrs),
        _networks_section(attrs),
        _labels_section(attrs, reveal),
        _restart_section(attrs),
        _resources_section(attrs),
        _health_section(attrs, reveal),
    )
    return tuple(
        s if s.rows else InspectSection(s.title, (InspectRow("", "none"),)) for s in sections
    )
