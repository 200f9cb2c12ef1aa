"""ssh:// engines: one `ssh -L` forward of the remote engine's socket, which ends with aitop, and
short commands run as sessions on that same connection (`SshTunnel.run`)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import IO

from tui.fleet.engine.errors import EngineError


@dataclass(frozen=True)
class RemoteOutput:
    """What one command run over an ssh connection gave back (`SshTunnel.run`)."""

    returncode: int | None
    """Its exit status (ssh's own 255 when the connection failed); None when it was killed
    at its deadline."""
    stdout: bytes
    """At most `limit` bytes of what it printed."""
    stderr: bytes
    """At most `limit` bytes of its (and ssh's) error output."""
    seconds: float
    """How long the round trip took."""
    truncated: bool = False
    """True when it printed more than `limit` bytes and was cut off."""

    @property
    def timed_out(self) -> bool:
        """True when the command did not finish within its deadline."""
        return self.returncode is None


class SshTunnel:
    """One `ssh -L` forward of a remote engine's socket to a local one, for an ssh:// engine.

    The docker SDK's own ssh:// support needs paramiko, or starts one `ssh ... docker system
    dial-stdio` per connection, each a session counted against the remote sshd's MaxSessions
    (10 by default). One forward carries every request, stream and log follow as channels of a
    single ssh connection, which MaxSessions does not count. The system `ssh` is used, so
    ~/.ssh/config, agents and known hosts apply; the remote socket is the URL's path, else
    /var/run/docker.sock (ssh://me@box/run/user/1000/docker.sock for a rootless engine).

    The forward is also the connection's master (`ControlMaster`, its control socket beside
    the forwarded one), so `run` adds one session to that connection instead of a second
    login; sessions are counted by MaxSessions, so they run one at a time per tunnel.
    """

    REMOTE_SOCKET = "/var/run/docker.sock"
    START_TIMEOUT = 15.0

    _open: weakref.WeakSet[SshTunnel] = weakref.WeakSet()

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or ""
        self.user = parsed.username
        self.port = parsed.port
        self.remote = parsed.path if parsed.path not in ("", "/") else self.REMOTE_SOCKET
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._session = threading.Lock()

    def argv(self, local: str) -> list[str]:
        """The ssh command line that forwards `local` to the remote engine's socket."""
        argv = ["ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
        argv += ["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        # The master of its connection: `run` reaches it through this socket. ControlPersist
        # off: the connection ends with this process, as it always did.
        control = os.path.join(os.path.dirname(local), CONTROL_SOCKET)
        argv += ["-o", "ControlMaster=yes", "-o", f"ControlPath={control}"]
        argv += ["-o", "ControlPersist=no"]
        return [*argv, *self._destination(), "-L", f"{local}:{self.remote}", "--", self.host]

    def _destination(self) -> list[str]:
        argv = []
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv

    def session_argv(self, control: str, command: str) -> list[str]:
        """The ssh command line that runs `command` as one more session on the connection
        whose control socket is `control`.

        It never logs in by itself: should the master be gone, ssh's fallback to a
        connection of its own goes through `ProxyCommand=false` and fails at once.
        """
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ControlMaster=no"]
        argv += ["-o", f"ControlPath={control}", "-o", "ProxyCommand=false"]
        return [*argv, *self._destination(), "--", self.host, command]

    @classmethod
    def holding(cls, url: str) -> SshTunnel | None:
        """A forward of `url` that is running now (its connection can take a session), or
        None when none is."""
        for tunnel in list(cls._open):
            if tunnel.url == url and tunnel.control_path() is not None:
                return tunnel
        return None

    def control_path(self) -> str | None:
        """The control socket of the running forward's connection; None when it is down."""
        proc, folder = self._proc, self._dir
        if proc is None or proc.poll() is not None or folder is None:
            return None
        path = os.path.join(folder, CONTROL_SOCKET)
        return path if os.path.exists(path) else None

    def run(
        self, command: str, *, timeout: float, stdin: bytes = b"", limit: int = 1 << 20
    ) -> RemoteOutput:
        """Run `command` (a command line for the remote login shell) as one session on this
        forward's connection, `stdin` its input; never raises, never waits past `timeout`.

        A connection that is down reads as ssh's own failure (exit status 255). Output past
        `limit` bytes is cut off and the command ended: a host cannot make aitop hold more.
        """
        start = time.monotonic()
        control = self.control_path()
        if control is None:
            return RemoteOutput(255, b"", b"the ssh connection is down", 0.0)
        # One session at a time (MaxSessions counts them); waiting for it counts against the
        # same deadline.
        if not self._session.acquire(timeout=max(0.0, timeout)):
            return RemoteOutput(None, b"", b"", time.monotonic() - start)
        try:
            try:
                proc = spawn_child(
                    self.session_argv(control, command),
                    stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as exc:
                return RemoteOutput(255, b"", str(exc).encode(), time.monotonic() - start)
            if proc.stdin is not None:
                # A few kB: the pipe takes it whole, before anything is read back.
                with contextlib.suppress(OSError):
                    proc.stdin.write(stdin)
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            return _collect(proc, start + timeout, limit, start)
        finally:
            self._session.release()

    def local_url(self) -> str:
        """unix:// URL of the local end, starting the forward if it is not running."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None and self._dir is not None:
                return f"unix://{self._dir}/docker.sock"
            self._stop()
            if not self.host:
                raise EngineError(f"invalid engine address {self.url!r}: use ssh://user@host")
            if shutil.which("ssh") is None:
                raise EngineError(
                    f"cannot reach {self.url}: no ssh client here (install openssh-client)"
                )
            _sweep_stale_forwards()
            self._dir = tempfile.mkdtemp(prefix=f"{_FORWARD_PREFIX}{os.getpid()}-")
            local = f"{self._dir}/docker.sock"
            err = open(f"{self._dir}/ssh.log", "wb")  # noqa: SIM115 - ssh writes while it runs
            try:
                self._proc = spawn_child(self.argv(local), stdout=err, stderr=err)
            finally:
                err.close()
            SshTunnel._open.add(self)
            deadline = time.monotonic() + self.START_TIMEOUT
            while not os.path.exists(local):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    reason = self._log_tail() or "no answer"
                    self._stop()
                    raise EngineError(f"cannot reach {self.url} over ssh: {reason}")
                time.sleep(0.02)
            return f"unix://{local}"

    def _log_tail(self) -> str:
        try:
            with open(f"{self._dir}/ssh.log", "rb") as fh:
                lines = fh.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)
        folder, self._dir = self._dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """End the forward (the next `local_url()` starts a new one)."""
        with self._lock:
            self._stop()

    @classmethod
    def close_all(cls) -> None:
        """End every forward still running (at exit: an ssh -N would outlive aitop)."""
        for tunnel in list(cls._open):
            tunnel.close()


atexit.register(SshTunnel.close_all)

CONTROL_SOCKET = "control"
"""Name of a forward's control socket, in its temporary directory."""


def _collect(
    proc: subprocess.Popen[bytes], deadline: float, limit: int, start: float
) -> RemoteOutput:
    """Read a child's output until it ends, its deadline passes or it says too much; a child
    still running then is killed."""
    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
    chunks: dict[int, list[bytes]] = {s.fileno(): [] for s in streams}
    sizes = dict.fromkeys(chunks, 0)
    truncated = False
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map() and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                keep = data[: max(0, limit - sizes[key.fd])]
                chunks[key.fd].append(keep)
                sizes[key.fd] += len(keep)
                truncated = truncated or len(keep) < len(data)
    returncode: int | None = None
    if truncated:
        proc.kill()
        returncode = proc.wait()
    else:
        # Both pipes closed: it is ending (or handed them on to a child that outlives it).
        with contextlib.suppress(subprocess.TimeoutExpired):
            returncode = proc.wait(max(0.0, min(0.5, deadline - time.monotonic())))
        if returncode is None:
            proc.kill()
            proc.wait()
    out, err = (
        b"".join(chunks[s.fileno()]) if s is not None else b"" for s in (proc.stdout, proc.stderr)
    )
    for stream in streams:
        stream.close()
    return RemoteOutput(returncode, out, err, time.monotonic() - start, truncated)


_FORWARD_PREFIX = "aitop-ssh-"
"""Start of a forward's temporary directory's name; the owner's PID follows."""
_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _die_with_parent(parent: int) -> None:
    """In a child between fork and exec: be sent SIGTERM when aitop ends, however it ends.

    The kernel sends the signal when the thread that forked the child exits, hence
    `spawn_child`'s one long-lived thread. If aitop is gone already, the child ends here.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aitop-spawner")
"""The one thread that starts children that must not outlive aitop (see `_die_with_parent`):
its worker lives as long as aitop, so the children's parent thread does too."""


def spawn_child(
    argv: Sequence[str],
    *,
    stdin: int = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` (stdin from /dev/null unless told) so that it ends when aitop ends,
    SIGKILL included (on Linux: `PR_SET_PDEATHSIG`; elsewhere with aitop's normal exit only)."""
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        _libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            # Runs in the forked child before exec: one prctl call, no lock taken.
            preexec_fn=partial(_die_with_parent, parent),
        )

    return _spawner.submit(start).result()


def _sweep_stale_forwards() -> None:
    """Remove the temporary directories of forwards whose aitop is gone (killed: SIGKILL
    leaves no chance to clean up); run whenever a forward starts."""
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if not entry.name.startswith(_FORWARD_PREFIX) or not entry.is_dir():
                continue
            owner = entry.name[len(_FORWARD_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                shutil.rmtree(entry.path, ignore_errors=True)
