"""Keys that arrive in one burst (a laggy SSH link, a paste of keys, a fast typist), kept in
the order they were typed: a workaround for Textual issue 6605 (fix proposed in PR 6631) in
the Textual version aitop pins.

Two things go wrong there:

- **Editing keys in a text box apply after the characters that follow them.** A text box
  (`Input`) inserts a character when its key reaches it, but its own bindings (Backspace,
  Delete, Home, ctrl+u, Enter) run only once the key has bubbled back up to the app, which
  by then has handed the next characters to the box: `ab`, Backspace, `c` gave `ab` (the `c`
  went in, then Backspace took it out). `install()` makes the box run its own bindings when
  the key reaches it, in turn with the characters.
- **An Esc followed at once by a key reads as Alt+key.** Terminals send Alt+x as ESC x, so
  Textual's parser reads an Escape with the next key in the same read as Alt+that key: Esc
  meant to close the palette left it open with junk in it. aitop binds no Alt+key of its own:
  `split_escape()` turns an Alt+key that nothing binds back into Escape and the key.
- **Keys behind one that opens or closes something go where the focus was.** `HeldKeys`
  holds them until the screen or the focus moved (or a moment passed).

Both apply to the Textual versions in `AFFECTED_VERSIONS` only: once the pin moves to a
release with the fix, they stand aside (and the burst tests in tests/test_newcomer_input.py
say whether the fix is there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import textual
from textual import events
from textual.binding import BindingsMap
from textual.widgets import Input

AFFECTED_VERSIONS = frozenset({"8.2.8"})
"""Textual versions with issue 6605 (the one aitop pins)."""

_installed = False


def affected(version: str = textual.__version__) -> bool:
    """Whether this Textual version needs the workaround."""
    return version in AFFECTED_VERSIONS


def _own_bindings(widget: Input) -> BindingsMap:
    """The box's own bindings, with the user's keymap applied as Textual's chain does."""
    bindings = widget._bindings.copy()  # noqa: SLF001 - Textual's, not ours
    keymap = widget.app._keymap  # noqa: SLF001 - Textual's, not ours
    if keymap:
        bindings.apply_keymap(keymap)
    return bindings


def install() -> bool:
    """Make text boxes run their own key bindings in the order the keys arrive (once per
    process; only on an affected Textual). Returns whether it is in place."""
    global _installed
    if _installed:
        return True
    if not affected():
        return False
    original: Callable[[Input, events.Key], Awaitable[None]] = Input._on_key  # noqa: SLF001

    async def _on_key(self: Input, event: events.Key) -> None:
        if not event.is_printable:
            # The box's own bindings, now rather than after the keys that came next.
            for binding in _own_bindings(self).key_to_bindings.get(event.key, ()):
                if binding.priority:
                    continue  # run by the app before the key got here
                if await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()
                    return
        await original(self, event)

    Input._on_key = _on_key  # type: ignore[method-assign]  # noqa: SLF001 - the workaround
    _installed = True
    return True


def split_escape(event: events.Key, bound: Callable[[str], bool]) -> list[events.Key] | None:
    """Escape and the key, for an Alt+key that stands for them (`bound(key)` says whether
    anything binds that key, which then keeps it); None to keep the event as it is.

    Only an Alt+key of one character comes from an ESC read with the next key: Alt with
    arrows or function keys have sequences of their own."""
    if not affected() or not event.key.startswith("alt+") or bound(event.key):
        return None
    character = event.character
    if character is None or len(character) != 1 or not character.isprintable():
        return None
    plain = event.key.removeprefix("alt+")
    if plain.startswith("shift+") and character.isupper():
        plain = character  # ESC P: a capital P, which Textual names "P" when alone
    return [events.Key("escape", "\x1b"), events.Key(plain, character)]


ESCAPE_SETTLE = 0.2
"""Longest held keys wait for what the key before them opens or closes (seconds)."""


class HeldKeys:
    """Keys held back behind a key that opens or closes something (an Escape split off an
    Alt+key, `/`, ctrl+p, a key that asks a question), until the screen or the focus changed
    or `ESCAPE_SETTLE` passed.

    The app routes a key to where the focus is when it reads it, but what a key opens takes
    effect a few messages later: in one burst, the keys behind `/` went to the table, not
    into the filter box, and those behind an Escape into the palette it was closing."""

    def __init__(self) -> None:
        self._held: list[events.Key] | None = None
        self._since = 0.0
        self._before: tuple[object, object] = (None, None)

    @property
    def holding(self) -> bool:
        """Whether keys wait (new ones must queue behind them)."""
        return self._held is not None

    def start(self, where: tuple[object, object], key: events.Key | None = None) -> None:
        """Hold the keys from now on (`key` first, if given); `where` is the (screen, focused
        widget) before the key that opens or closes something was routed."""
        self._held = [] if key is None else [key]
        self._since = time.monotonic()
        self._before = where

    def hold(self, key: events.Key) -> None:
        """Queue a key behind the held ones."""
        assert self._held is not None
        self._held.append(key)

    def release(self, where: tuple[object, object]) -> list[events.Key] | None:
        """The held keys, once the screen or the focus moved (`where`) or they waited long
        enough; None while they still wait."""
        if self._held is None:
            return []
        settled = where[0] is not self._before[0] or where[1] is not self._before[1]
        if not settled and time.monotonic() - self._since < ESCAPE_SETTLE:
            return None
        held, self._held = self._held, None
        return held
