"""ssh:// engines: one `ssh -L` forward of the remote engine's socket, which ends with aitop."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
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
from functools import partial
from typing import IO

from tui.fleet.engine.errors import EngineError


class SshTunnel:
    """One `ssh -L` forward of a remote engine's socket to a local one, for an ssh:// engine.

    The docker SDK's own ssh:// support needs paramiko, or starts one `ssh ... docker system
    dial-stdio` per connection, each a session counted against the remote sshd's MaxSessions
    (10 by default). One forward carries every request, stream and log follow as channels of a
    single ssh connection, which MaxSessions does not count. The system `ssh` is used, so
    ~/.ssh/config, agents and known hosts apply; the remote socket is the URL's path, else
    /var/run/docker.sock (ssh://me@box/run/user/1000/docker.sock for a rootless engine).
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

    def argv(self, local: str) -> list[str]:
        """The ssh command line that forwards `local` to the remote engine's socket."""
        argv = ["ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
        argv += ["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return [*argv, "-L", f"{local}:{self.remote}", "--", self.host]

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
    argv: Sequence[str], *, stdout: IO[bytes] | None = None, stderr: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` (stdin from /dev/null) so that it ends when aitop ends, SIGKILL included
    (on Linux: `PR_SET_PDEATHSIG`; elsewhere it ends with aitop's normal exit only)."""
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        _libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
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
