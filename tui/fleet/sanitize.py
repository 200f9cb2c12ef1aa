"""Turning untrusted text into text that is safe to put on a terminal.

Everything aitop shows was written by someone else: container logs, but also names, labels,
commands and environment values (image authors choose them), engine error messages (which
echo commands), configuration files. Container logs are the worst case: a line may carry
escape sequences that set the window title (OSC 0/2), write the clipboard (OSC 52), plant
hyperlinks (OSC 8), move the cursor, clear the screen, ask the terminal to answer (device
status `ESC [ 6 n`), start device control strings (DCS), or use the 8-bit C1 forms of all
of these. None of it may reach the terminal.

`sanitize_line` keeps colours only: it returns the plain text (every escape sequence removed,
every other control character but tab replaced by U+FFFD, invalid UTF-8 replaced by U+FFFD)
plus the SGR (colour) changes as positions into that text. The UI rebuilds styles from those
positions; no byte of the original sequence is ever written anywhere.

`safe_text` is the same rule for one-line metadata (names, labels, errors): no escape sequence
survives, and every control character, line separator, bidirectional override and invisible
mark becomes U+FFFD, so that it shows instead of silently reordering or hiding text. The
headless layer applies it where such text enters (inspect data becoming `ContainerInfo`,
engine errors, configuration problems); widgets can then draw any string they are handed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

REPLACEMENT = "\ufffd"
"""What stands in for invalid UTF-8 and control characters."""

MAX_SGR_PARAMS = 64
"""Longer SGR parameter strings are dropped rather than parsed."""

SgrChanges = tuple[tuple[int, str], ...]
"""SGR changes: (offset into the plain text, normalised SGR parameters such as `1;31`)."""

# Bytes that force the slow path: C0 controls but tab, DEL, and anything non-ASCII.
_UNSAFE_ASCII = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

INVISIBLE = (
    # Unicode's format characters (category Cf, Unicode 14): soft hyphen, Arabic number and
    # letter marks, zero-width spaces and joiners, direction marks, embeddings, overrides and
    # isolates, invisible operators, deprecated format controls, the byte-order mark,
    # interlinear annotations, the tag characters...
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
    # ... and the line and paragraph separators, the unassigned U+2065 among the invisible
    # operators and isolates, and the whole tag block.
    "\u2028\u2029\U000e0000-\U000e007f"
)
"""Characters (for a regex character class) that reorder or hide text without showing
themselves. Each is shown instead (U+FFFD here, escaped in the inspect view): a name with one
in it must not look like a name without."""

# One token of terminal syntax (7-bit and 8-bit forms), or one character to replace.
_TOKEN = re.compile(
    r"""
    (?P<csi>(?:\x1b\[|\x9b)(?P<params>[\x30-\x3f]*)(?P<inter>[\x20-\x2f]*)(?P<final>[\x40-\x7e])?)
    | (?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z))
    | (?P<esc>\x1b[\x20-\x2f]*[\x30-\x7e]?)
    | (?P<ctl>[\x00-\x08\x0a-\x1f\x7f-\x9f"""
    + INVISIBLE
    + "])",
    re.VERBOSE | re.DOTALL,
)
# The characters that start a token: every C0/C1 control but tab, DEL, and the invisible and
# reordering characters above.
_SPECIAL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f" + INVISIBLE + "]")
_SGR_SYNTAX = re.compile(r"[0-9;]*")

# SGR attributes that are kept: reset, bold, dim, italic, underline, reverse, strike, their
# resets, and colours. Blink and conceal (hidden text) are dropped.
_KEEP_SGR = frozenset(
    {0, 1, 2, 3, 4, 7, 9, 21, 22, 23, 24, 27, 29, 39, 49}
    | set(range(30, 38))
    | set(range(40, 48))
    | set(range(90, 98))
    | set(range(100, 108))
)


@functools.lru_cache(maxsize=1024)
def _clean_sgr(params: str) -> str | None:
    """The allowed part of one SGR parameter string, or None when nothing is left."""
    if len(params) > MAX_SGR_PARAMS or not _SGR_SYNTAX.fullmatch(params):
        return None
    if not params:
        return "0"
    values = [int(p) if p else 0 for p in params.split(";")]
    kept: list[str] = []
    i = 0
    while i < len(values):
        v = values[i]
        if v in (38, 48, 58):
            mode = values[i + 1] if i + 1 < len(values) else -1
            if mode == 5 and i + 2 < len(values):
                if v != 58 and values[i + 2] < 256:
                    kept.append(f"{v};5;{values[i + 2]}")
                i += 3
                continue
            if mode == 2 and i + 4 < len(values):
                rgb = values[i + 2 : i + 5]
                if v != 58 and all(c < 256 for c in rgb):
                    kept.append(f"{v};2;{rgb[0]};{rgb[1]};{rgb[2]}")
                i += 5
                continue
            break  # a malformed extended colour: the rest cannot be trusted
        if v in _KEEP_SGR:
            kept.append(str(v))
        i += 1
    return ";".join(kept) or None


def sanitize_text(text: str) -> tuple[str, SgrChanges]:
    """Plain text and SGR changes from a decoded line; see the module docstring."""
    search = _SPECIAL.search
    found = search(text)
    if found is None:
        return text, ()
    match = _TOKEN.match
    out: list[str] = []
    sgr: list[tuple[int, str]] = []
    length = 0
    last = 0
    while found is not None:
        start = found.start()
        if start > last:
            piece = text[last:start]
            out.append(piece)
            length += len(piece)
        token = match(text, start)
        if token is None:  # unreachable: every special character starts a token
            out.append(REPLACEMENT)
            length += 1
            last = start + 1
        else:
            last = token.end()
            if token.group("ctl") is not None:
                out.append(REPLACEMENT)
                length += 1
            elif token.group("final") == "m" and token.group("csi") and not token.group("inter"):
                params = _clean_sgr(token.group("params"))
                if params is not None:
                    sgr.append((length, params))
            # Every other token (CSI, OSC/DCS/SOS/PM/APC strings, ESC sequences) vanishes.
        found = search(text, last)
    if last < len(text):
        out.append(text[last:])
    return "".join(out), tuple(sgr)


def sanitize_line(data: bytes) -> tuple[str, SgrChanges]:
    """Safe plain text and SGR changes from one line of untrusted bytes (no newline in it).

    ASCII without control characters (the common case) takes a fast path.
    """
    if data.isascii() and _UNSAFE_ASCII.search(data) is None:
        return data.decode("ascii"), ()
    return sanitize_text(data.decode("utf-8", "replace"))


def to_ansi(text: str, sgr: SgrChanges) -> str:
    """The plain text with its kept SGR sequences put back (input for an ANSI decoder).

    Only sequences rebuilt from validated parameters are inserted: the result holds no escape
    sequence but `ESC [ <digits and ;> m`.
    """
    if not sgr:
        return text
    parts: list[str] = []
    last = 0
    for pos, params in sgr:
        parts.append(text[last:pos])
        parts.append(f"\x1b[{params}m")
        last = pos
    parts.append(text[last:])
    return "".join(parts)


MAX_FIELD_CHARS = 4096
"""Longest one-line field kept (a name, a label value, an error); the rest is cut with `…`."""


def safe_text(value: object, *, limit: int = MAX_FIELD_CHARS) -> str:
    """Untrusted one-line text made safe to draw: escape sequences removed, every control
    character (tab too: it would break a table's columns) and every invisible or reordering
    character shown as U+FFFD, at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    if _SPECIAL.search(text) is None and "\t" not in text:
        return text  # the common case: nothing to do, no copy
    plain, _ = sanitize_text(text)
    return plain.replace("\t", " ")


def safe_mapping(values: Mapping[str, object] | None) -> dict[str, str]:
    """Labels (or any string mapping) with every key and value made safe by `safe_text`."""
    return {safe_text(k): safe_text(v) for k, v in (values or {}).items()}
