"""Another machine's GPUs, read over the ssh connection of an ssh:// engine: nothing installed
there but ssh and the NVIDIA driver (whose `nvidia-smi` comes with it).

Each reading is one round trip: one short POSIX sh script (`sh -s` reading it from the
session's input, whatever the login shell), run as one more session on the engine's forward
(`SshTunnel.run`, never a second login), prints `nvidia-smi`'s stable
machine-readable queries (the devices, then the compute processes) and, for each process, its
`/proc/<pid>/cgroup` there, between marker lines. The same `GpuReport` the local NVML sampler
makes comes out of it, processes attributed to that host's containers by their cgroups
(`gpu.attribution.container_id_from_cgroup`). Everything that can go wrong there is a state of
the report, within a deadline: no nvidia-smi, no driver, no GPU (a non-NVIDIA box), a command
that fails, hangs or prints nonsense, and a connection that is down.

nvidia-smi's CSV with `nounits`: memory in MiB, power in W, clocks in MHz, fields separated by
", "; a value it cannot give reads `[N/A]`, `[Not Supported]` (older drivers: `N/A`), which is
None here, as NVML's failures are in the local sampler.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tui.fleet.engine.ssh import RemoteOutput, SshTunnel
from tui.fleet.gpu.attribution import INIT_PID_NAMESPACE, container_id_from_cgroup
from tui.fleet.gpu.sampler import INIT_RETRY
from tui.fleet.gpu.types import (
    ORIGIN_CONTAINER,
    ORIGIN_HOST,
    ORIGIN_UNKNOWN,
    STATE_ERROR,
    STATE_NO_DRIVER,
    STATE_NO_GPU,
    STATE_NO_SMI,
    STATE_OK,
    STATE_PERMISSION_DENIED,
    STATE_TIMEOUT,
    STATE_UNREACHABLE,
    GpuDevice,
    GpuProcess,
    GpuReport,
)
from tui.fleet.sanitize import safe_text

GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "clocks.sm",
    "clocks.max.sm",
    "driver_version",
    "mig.mode.current",
)
"""What `nvidia-smi --query-gpu` is asked for, in this order: the issue's stable fields, then
the driver's version and the MIG mode (per-process memory means nothing under MIG)."""
APP_FIELDS = ("gpu_uuid", "pid", "used_memory")
"""What `nvidia-smi --query-compute-apps` is asked for, in this order."""
TIMEOUT = 5.0
"""Longest a reading may take, ssh round trip included, before it reads as "timeout"."""
HISTORY = 120
"""Samples kept per GPU for the sparklines (as the local sampler keeps)."""
MIN_INTERVAL = 1.0
"""Default shortest gap between two readings, in seconds."""
MAX_OUTPUT = 1 << 20
"""Most bytes a reading may print; a host that prints more is cut off (and reads as an error)."""
MAX_DEVICES = 64
MAX_PROCESSES = 4096
MAX_PIDS = 512
"""Most processes whose cgroup one reading looks up (the script stops there)."""
TIMEOUT_PAUSE = 3.0
"""After a reading timed out, the next waits this many deadlines: a hung nvidia-smi there may
still hold its session (and its sshd's MaxSessions), and readings should not pile up."""
_LASTING = frozenset({STATE_NO_SMI, STATE_NO_DRIVER, STATE_NO_GPU, STATE_PERMISSION_DENIED})
"""States that do not change from one second to the next: read again every INIT_RETRY s."""
MARK = "::aitop-gpu::"
"""Start of the script's marker lines; nothing nvidia-smi or /proc print starts with it."""
MIB = 1024 * 1024


def script(remote_limit: int) -> str:
    """The sh script of one reading; each nvidia-smi call is stopped there after
    `remote_limit` seconds (where `timeout` exists), so a hung one does not pile up."""
    query = ",".join(GPU_FIELDS)
    apps = ",".join(APP_FIELDS)
    return f"""PATH="$PATH:/usr/bin:/bin:/usr/local/bin:/usr/sbin:/sbin:/usr/lib/wsl/lib"
export PATH; LC_ALL=C; export LC_ALL; m='{MARK}'
command -v nvidia-smi >/dev/null 2>&1 || {{ echo "$m no-nvidia-smi"; exit 0; }}
t=; command -v timeout >/dev/null 2>&1 && t="timeout -k 1 {remote_limit}"
g=$($t nvidia-smi --query-gpu={query} --format=csv,noheader,nounits 2>&1)
rc=$?
echo "$m gpus"
printf '%s\\n' "$g"
echo "$m rc $rc"
if [ "$rc" -ne 0 ]; then case $g in [0-9]*) ;; *) echo "$m end"; exit 0;; esac; fi
apps=$($t nvidia-smi --query-compute-apps={apps} --format=csv,noheader,nounits 2>&1)
rc=$?
echo "$m apps"
printf '%s\\n' "$apps"
echo "$m rc $rc"
echo "$m pidns $(readlink /proc/self/ns/pid 2>/dev/null)"
n=0; seen=' '
for pid in $(printf '%s\\n' "$apps" | cut -d, -f2); do
  case $pid in ''|*[!0-9]*) continue;; esac
  case $seen in *" $pid "*) continue;; esac
  seen="$seen$pid "; n=$((n+1)); [ "$n" -gt {MAX_PIDS} ] && break
  echo "$m cgroup $pid"; cat "/proc/$pid/cgroup" 2>/dev/null
  echo "$m comm $pid"; cat "/proc/$pid/comm" 2>/dev/null
done
echo "$m end"
"""


# --- parsing -----------------------------------------------------------------------------------


@dataclass
class Sections:
    """One reading's output cut at its marker lines."""

    no_smi: bool = False
    gpus: list[str] = field(default_factory=list)
    gpus_rc: int | None = None
    apps: list[str] = field(default_factory=list)
    apps_rc: int | None = None
    pidns: str | None = None
    cgroups: dict[int, str] = field(default_factory=dict)
    comms: dict[int, str] = field(default_factory=dict)
    ended: bool = False
    """True when the script's last marker came: the output is whole."""


def split_sections(text: str) -> Sections:
    """Cut a reading's output into its sections; a line that is not a marker belongs to the
    section of the marker before it (lines before the first marker are ignored)."""
    out = Sections()
    current: list[str] | None = None
    pid_text: tuple[dict[int, str], int] | None = None
    buffer: list[str] = []

    def flush() -> None:
        nonlocal pid_text, buffer
        if pid_text is not None:
            target, pid = pid_text
            target[pid] = "\n".join(buffer)
        pid_text, buffer = None, []

    for line in text.splitlines():
        if not line.startswith(MARK):
            if pid_text is not None:
                buffer.append(line)
            elif current is not None:
                current.append(line)
            continue
        flush()
        word, _, rest = line[len(MARK) :].strip().partition(" ")
        rest = rest.strip()
        if word == "no-nvidia-smi":
            out.no_smi, current = True, None
        elif word == "gpus":
            current = out.gpus
        elif word == "apps":
            current = out.apps
        elif word == "rc":
            rc = _int(rest)
            if current is out.gpus:
                out.gpus_rc = rc
            elif current is out.apps:
                out.apps_rc = rc
            current = None
        elif word == "pidns":
            out.pidns, current = rest, None
        elif word in ("cgroup", "comm") and rest.isdigit():
            target = out.cgroups if word == "cgroup" else out.comms
            pid_text, current = (target, int(rest)), None
        elif word == "end":
            out.ended, current = True, None
        else:
            current = None
    flush()
    return out


def smi_value(text: str) -> str | None:
    """One cell of nvidia-smi's CSV, or None for its ways of saying it has none ("[N/A]",
    "[Not Supported]", "[Unknown Error]", a bare "N/A" from older drivers)."""
    text = text.strip()
    if not text or text.startswith("[") or text in ("N/A", "Not Supported"):
        return None
    return text


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _int(text: str | None) -> int | None:
    number = _float(text)
    return int(number) if number is not None and number < 2**63 else None


@dataclass(frozen=True)
class DeviceRow:
    """One line of `--query-gpu`, read."""

    index: int
    uuid: str | None
    name: str | None
    util: float | None
    used: int | None
    total: int | None
    temp: int | None
    power: float | None
    limit: float | None
    clock: int | None
    clock_max: int | None
    driver: str | None
    mig: bool


def parse_gpu_line(line: str) -> DeviceRow | None:
    """A device line of `--query-gpu` (GPU_FIELDS), or None when it is not one (an error
    message, a line cut short, noise)."""
    parts = line.split(",")
    if len(parts) != len(GPU_FIELDS):
        return None
    values = [smi_value(p) for p in parts]
    index = _int(values[0])
    if index is None or index >= 1024 or values[0] is None or not values[0].isdigit():
        return None
    used, total = _float(values[4]), _float(values[5])
    uuid, name, driver = values[1], values[2], values[11]
    return DeviceRow(
        index=index,
        uuid=safe_text(uuid, limit=96) if uuid is not None else None,
        name=safe_text(name, limit=96) if name is not None else None,
        util=_percent(_float(values[3])),
        used=int(used * MIB) if used is not None else None,
        total=int(total * MIB) if total is not None else None,
        temp=_int(values[6]),
        power=_float(values[7]),
        limit=_float(values[8]),
        clock=_int(values[9]),
        clock_max=_int(values[10]),
        driver=safe_text(driver, limit=32) if driver is not None else None,
        mig=values[12] == "Enabled",
    )


def _percent(value: float | None) -> float | None:
    return value if value is not None and value <= 100 else None


def parse_app_line(line: str) -> tuple[str, int, int | None] | None:
    """(GPU UUID, PID, memory in bytes or None) of a `--query-compute-apps` line, or None
    when it is not one."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != len(APP_FIELDS) or not parts[1].isdigit() or not parts[0]:
        return None
    mem = _float(smi_value(parts[2]))
    return parts[0], int(parts[1]), int(mem * MIB) if mem is not None else None


def _first_line(lines: Iterable[str]) -> str:
    text = next((line.strip() for line in lines if line.strip()), "")
    return safe_text(text, limit=200)


def classify_failure(lines: list[str], rc: int | None, host: str) -> tuple[str, str]:
    """(state, message) for a `--query-gpu` that listed no device, from what it printed."""
    text = "\n".join(lines)
    if rc in (124, 137):
        return STATE_TIMEOUT, f"nvidia-smi on {host} did not answer in time (stopped there)"
    if rc == 127:
        return STATE_NO_SMI, _no_smi(host)
    if "couldn't communicate with the NVIDIA driver" in text or "Driver Not Loaded" in text:
        return (
            STATE_NO_DRIVER,
            f"nvidia-smi on {host} cannot reach the NVIDIA kernel driver (not loaded?)",
        )
    if "No devices were found" in text:
        return STATE_NO_GPU, f"the NVIDIA driver on {host} lists no GPU"
    if "Insufficient Permissions" in text or "Permission denied" in text:
        return (
            STATE_PERMISSION_DENIED,
            f"the ssh login on {host} may not use the NVIDIA devices (/dev/nvidia*)",
        )
    if "version mismatch" in text:
        return (
            STATE_ERROR,
            f"the NVIDIA driver and its NVML library on {host} differ in version (a driver "
            "upgrade without a reboot?)",
        )
    said = _first_line(lines) or "no output"
    status = f"exit status {rc}" if rc is not None else "cut short"
    return STATE_ERROR, f"nvidia-smi on {host} failed ({status}): {said}"


def _no_smi(host: str) -> str:
    return (
        f"no nvidia-smi on {host} (not on the ssh login's PATH): no NVIDIA driver installed "
        "there, or not an NVIDIA machine"
    )


# --- the sampler -------------------------------------------------------------------------------


class RemoteGpuSampler:
    """Reads another machine's GPUs through an ssh:// engine's connection: a `GpuSource`.

    `url` is the engine's ssh:// URL: the reading uses the forward that aitop holds for it
    (`SshTunnel.holding`), and waits for one while none runs. `run` replaces the round trip
    (tests). After `warm_up()` the readings are taken on a thread of the sampler's own every
    `min_interval` seconds and `sample_unless_busy()` never waits; without it (a one-shot
    snapshot), `sample_unless_busy()` reads on the caller's thread when a reading is due.
    """

    def __init__(
        self,
        url: str,
        *,
        min_interval: float = MIN_INTERVAL,
        timeout: float = TIMEOUT,
        history: int = HISTORY,
        run: Callable[[str, float], RemoteOutput | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or url
        """The machine's name in messages."""
        self.min_interval = min_interval
        self.timeout = timeout
        self._run = run if run is not None else self._over_ssh
        self._script = script(max(1, int(timeout / 2)))
        self._history = history
        self._clock = clock
        self._lock = threading.Lock()
        self._reading_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: GpuReport | None = None
        self._last_at = -math.inf
        self._gap = min_interval
        """Seconds from the last reading to the next: the interval, longer after a timeout."""
        self._util_history: dict[str, deque[float]] = {}
        self._mem_history: dict[str, deque[float]] = {}

    # --- GpuSource ----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the reading thread (once): it reads at once, then every `min_interval`."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._loop, name="aitop-gpu-ssh", daemon=True)
            self._thread.start()

    def sample_unless_busy(self) -> GpuReport | None:
        """The latest report (None before the first). Without the reading thread, a due
        reading is taken here unless another caller is taking one."""
        if self._thread is not None or not self._reading_lock.acquire(blocking=False):
            return self._last
        try:
            if self._clock() - self._last_at >= self._gap * 0.95:
                self._read()
            return self._last
        finally:
            self._reading_lock.release()

    def close(self) -> None:
        """Stop the reading thread (a reading under way ends by its deadline)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.1)

    # --- readings -----------------------------------------------------------------------------

    def sample(self) -> GpuReport | None:
        """One reading now, on this thread; None while there is no connection and never was
        a reading (the engine has not connected yet). Never raises."""
        with self._reading_lock:
            self._read()
            return self._last

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._reading_lock:
                self._read()
            # Due a gap after the last reading began (drift-free); before the first one
            # (not connected yet), a gap from now.
            start = self._last_at if self._last is not None else self._clock()
            self._stop.wait(max(0.0, start + self._gap - self._clock()))

    def _read(self) -> None:
        now = self._clock()
        output: RemoteOutput | None = None
        try:
            output = self._run(self._script, self.timeout)
            report = self._disconnected() if output is None else self.report_from(output)
        except Exception as exc:  # a bug must not kill the reading thread
            report = GpuReport(
                state=STATE_ERROR,
                message=safe_text(
                    f"reading the GPUs of {self.host} failed unexpectedly: {exc!r}", limit=300
                ),
                taken_at=time.time(),
                host=self.host,
            )
        if report is not None:
            self._last, self._last_at = report, now
            self._gap = self._gap_after(report, output)

    def _gap_after(self, report: GpuReport, output: RemoteOutput | None) -> float:
        if output is not None and output.timed_out:
            # Cut off at our deadline, the command may still run there, holding its session.
            return max(self.min_interval, self.timeout * TIMEOUT_PAUSE)
        if report.state in _LASTING:
            # No nvidia-smi, driver or GPU there: asked again now and then, as the local
            # sampler retries NVML, not every interval.
            return max(self.min_interval, INIT_RETRY)
        return self.min_interval

    def _over_ssh(self, command: str, timeout: float) -> RemoteOutput | None:
        tunnel = SshTunnel.holding(self.url)
        if tunnel is None:
            return None
        # The script goes in on stdin: `sh -s` reads the same under any login shell.
        return tunnel.run("sh -s", timeout=timeout, stdin=command.encode(), limit=MAX_OUTPUT)

    def _disconnected(self) -> GpuReport | None:
        if self._last is None:
            return None  # not connected yet: "waiting for the first reading" says it
        return self._state(
            STATE_UNREACHABLE,
            f"no ssh connection to {self.host} now: its GPUs are read again once it is back",
        )

    def _state(self, state: str, message: str, seconds: float = 0.0) -> GpuReport:
        return GpuReport(
            state=state, message=message, nvml_seconds=seconds, taken_at=time.time(), host=self.host
        )

    def report_from(self, output: RemoteOutput) -> GpuReport:
        """The report of one round trip's output (its histories added to this sampler's)."""
        seconds = output.seconds
        if output.timed_out:
            return self._state(
                STATE_TIMEOUT,
                f"the GPUs of {self.host} did not answer within {self.timeout:g} s "
                "(nvidia-smi or the ssh connection hangs)",
                seconds,
            )
        text = output.stdout.decode("utf-8", "replace")
        parts = split_sections(text)
        if output.truncated:
            return self._state(
                STATE_ERROR, f"the GPU reading of {self.host} printed too much: cut off", seconds
            )
        if parts.no_smi:
            return self._state(STATE_NO_SMI, _no_smi(self.host), seconds)
        if output.returncode == 255 and not parts.gpus and parts.gpus_rc is None:
            said = _first_line(output.stderr.decode("utf-8", "replace").splitlines())
            if "refused" in said and "ession" in said:
                said += " (its sshd's MaxSessions are in use: an earlier reading may still hang)"
            return self._state(
                STATE_UNREACHABLE, f"ssh to {self.host} failed: {said or 'no answer'}", seconds
            )
        if parts.gpus_rc is None:
            said = _first_line(output.stderr.decode("utf-8", "replace").splitlines())
            return self._state(
                STATE_ERROR,
                f"the GPU reading of {self.host} came back incomplete "
                f"(exit status {output.returncode}): {said or 'no output'}",
                seconds,
            )
        rows: dict[int, DeviceRow] = {}
        for line in parts.gpus:
            row = parse_gpu_line(line)
            if row is not None and row.index not in rows and len(rows) < MAX_DEVICES:
                rows[row.index] = row
        if not rows:
            state, message = classify_failure(parts.gpus, parts.gpus_rc, self.host)
            return self._state(state, message, seconds)
        return self._report(rows, parts, seconds)

    def _report(self, rows: dict[int, DeviceRow], parts: Sections, seconds: float) -> GpuReport:
        by_uuid = {row.uuid: index for index, row in rows.items() if row.uuid}
        processes_known = parts.apps_rc == 0
        raw: list[tuple[int, int, int | None]] = []
        for line in parts.apps:
            app = parse_app_line(line)
            if app is None:
                if line.strip():
                    processes_known = False  # an error line: the list may be incomplete
                continue
            uuid, pid, mem = app
            if uuid in by_uuid and len(raw) < MAX_PROCESSES:
                index = by_uuid[uuid]
                # Under MIG a process's figure is its instance's, not the GPU's: N/A, as NVML's.
                raw.append((index, pid, None if rows[index].mig else mem))
        possible, reason = self._possible(parts)
        processes = tuple(
            self._process(index, pid, mem, parts, possible) for index, pid, mem in raw
        )
        devices = []
        for index in sorted(rows):
            row = rows[index]
            key = row.uuid or f"index:{index}"
            self._remember(key, row.util, row.used, row.total)
            devices.append(
                GpuDevice(
                    index=index,
                    uuid=row.uuid,
                    name=row.name,
                    util_percent=row.util,
                    mem_used_bytes=row.used,
                    mem_total_bytes=row.total,
                    temp_c=row.temp,
                    power_w=row.power,
                    power_limit_w=row.limit,
                    clock_sm_mhz=row.clock,
                    clock_sm_max_mhz=row.clock_max,
                    mig_enabled=row.mig,
                    processes_known=processes_known,
                    util_history=tuple(self._util_history.get(key, ())),
                    mem_history=tuple(self._mem_history.get(key, ())),
                )
            )
        return GpuReport(
            state=STATE_OK,
            devices=tuple(devices),
            processes=processes,
            attribution_possible=possible,
            attribution_reason=reason,
            driver_version=next((r.driver for r in rows.values() if r.driver), None),
            nvml_seconds=seconds,
            taken_at=time.time(),
            host=self.host,
        )

    def _possible(self, parts: Sections) -> tuple[bool, str]:
        """Whether nvidia-smi's PIDs are the ones the login's /proc shows (the same test as
        the local sampler's, `gpu.attribution`)."""
        if parts.pidns and parts.pidns != INIT_PID_NAMESPACE:
            return False, (
                f"the ssh login on {self.host} runs in a PID namespace of its own: "
                "nvidia-smi's host PIDs cannot be mapped to containers there"
            )
        return True, ""

    @staticmethod
    def _process(
        index: int, pid: int, mem: int | None, parts: Sections, possible: bool
    ) -> GpuProcess:
        container_id = None
        origin = ORIGIN_UNKNOWN
        cgroup = parts.cgroups.get(pid)
        if possible and cgroup:
            container_id = container_id_from_cgroup(cgroup[:65536])
            origin = ORIGIN_CONTAINER if container_id else ORIGIN_HOST
        command = safe_text(" ".join(parts.comms.get(pid, "").split()), limit=200)
        return GpuProcess(
            pid=pid,
            container_id=container_id,
            mem_bytes=mem,
            util_percent=None,  # nvidia-smi's CSV has no per-process SM share
            gpu_index=index,
            command=command if possible else "",
            origin=origin,
        )

    def _remember(self, key: str, util: float | None, used: int | None, total: int | None) -> None:
        util_hist = self._util_history.setdefault(key, deque(maxlen=self._history))
        mem_hist = self._mem_history.setdefault(key, deque(maxlen=self._history))
        if util is not None:
            util_hist.append(util)
        if used is not None and total:
            mem_hist.append(100.0 * used / total)


def remote_gpu_source(url: str, *, min_interval: float = MIN_INTERVAL) -> RemoteGpuSampler | None:
    """The GPU source of an engine on another machine that aitop reaches over ssh, or None
    for any other engine (its GPUs are this machine's NVML, or out of reach)."""
    return RemoteGpuSampler(url, min_interval=min_interval) if url.startswith("ssh://") else None
