"""What goes wrong with an engine, as exceptions whose `str()` is one line for the user."""

from __future__ import annotations

from tui.fleet.sanitize import safe_text


class EngineError(Exception):
    """The engine cannot be used; `str()` is one line for the user.

    The message is made safe here (`safe_text`): engines echo what they were given (a
    container's command, a label) in their errors, so an error is untrusted text too.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(safe_text(message))


class ContainerGone(EngineError):
    """The container no longer exists (removed between two calls)."""


class Unsupported(EngineError):
    """The engine's API lacks what was asked (Podman has no swarm services, for instance)."""


class LogsUnavailable(EngineError):
    """The engine answered a logs request with an error (e.g. a logging driver it cannot read)."""
