"""Finding and masking secrets in untrusted text: names that look secret, and secrets inside values.

One place for the rules the inspect view, the MODEL column (`detect`) and `snapshot --json` share.
A name looks secret by its words (`HF_TOKEN`, `*_API_KEY`, `GH_PAT`, `--password`); a value hides
a secret when it holds a URL with a password (`postgres://u:p@h`), a connection-string or query
pair (`AccountKey=...;`, `password=...`, `?sig=...`), a header (`Authorization: Bearer x`), an
option of a shell line (`sh -c "serve --api-key X"`) or a webhook URL (Slack, Discord, Teams).

Every pattern here runs on text from containers and images, on whatever thread, so each is
linear: bounded quantifiers only, never an unbounded one before an optional one, and at most
`MAX_SCAN_CHARS` of a value is looked at (longer values are cut, so nothing unscanned is shown).
Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

MASK = "••••••••"
"""What a masked value reads (the same length whatever the secret's length)."""
MAX_SCAN_CHARS = 8192
"""Longest value scanned and returned; the rest is cut and ends with `…`."""
MAX_NAME_CHARS = 256
"""Longest name judged by `looks_secret` (names are short; a longer one is judged by its start)."""
ELLIPSIS = "…"

SUBSTRING_WORDS = (
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "COOKIE",
    "SIGNATURE",
    "JWT",
    "BEARER",
    "WEBHOOK",
    "APIKEY",
    "CONNECTIONSTRING",
    "CONNSTR",
)
"""Words that make a name look secret wherever they appear in it (`DBPASSWORD`, `JWT_KEY`)."""
PART_WORDS = frozenset(
    {"KEY", "KEYS", "PAT", "SK", "TOK", "PW", "PSK", "SIG", "SALT", "DSN", "PRIVATE"}
)
"""Words that make a name look secret only as a whole part of it (`GH_PAT`, `OPENAI_SK`, `X_TOK`):
as substrings they are everywhere (`PATH`, `DISK`, `SALTSTACK`)."""
ABOUT_A_SECRET = frozenset({"NAME", "FILE", "PATH", "DIR", "TYPE", "LEN", "LENGTH", "SIZE"})
"""Last words of names that say where a secret is or what it is like, not what it is
(`SharedAccessKeyName`, `HF_TOKEN_PATH`, `PASSWORD_FILE`): their values stay visible."""
NOT_SECRET = frozenset({"PWD", "OLDPWD", "KEYBOARD", "HOSTNAME", "PATH", "PASSTHROUGH"})
"""Whole names that contain a secret word but are well-known harmless variables."""

# camelCase humps become part boundaries: `ghPat` -> `gh_Pat`, `AccountKey` -> `Account_Key`.
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PART_SPLIT = re.compile(r"[^A-Z0-9]+")


def looks_secret(name: str) -> bool:
    """True when a variable, label or option name looks like it holds a secret.

    Matches `HF_TOKEN`, `OPENAI_API_KEY`, `apiKey`, `--password`, `GH_PAT`, `JWT`, `BEARER`,
    `*_SK`, `*_TOK`, `Authorization`, `AccountKey`; leaves `PATH`, `PWD`, `KEYBOARD`,
    `TOKENIZERS_PARALLELISM`, `--max-num-batched-tokens`, `--session-len` and
    `org.opencontainers.image.authors` alone.
    """
    return _looks_secret(name[:MAX_NAME_CHARS].lstrip("-"))


@functools.lru_cache(maxsize=4096)
def _looks_secret(name: str) -> bool:
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    parts = [p for p in _PART_SPLIT.split(_HUMP.sub("_", name).upper()) if p]
    if len(parts) > 1 and parts[-1] in ABOUT_A_SECRET:
        return False
    joined = "".join(parts)
    if any(word in joined for word in SUBSTRING_WORDS):
        return True
    for n, part in enumerate(parts):
        nxt = parts[n + 1] if n + 1 < len(parts) else ""
        if part == "SESSION":
            # The session itself (`SESSION`, `SESSION_ID`), not its settings (`--session-len`).
            if nxt in ("", "ID"):
                return True
            continue
        if part in PART_WORDS:
            return True
        if "TOKEN" in part and part != "TOKENS" and "TOKENIZ" not in part:
            return True  # `HF_TOKEN`, `ACCESSTOKEN`; not counts (`MAX_TOKENS`) or tokenizers
        if "AUTH" in part and ("AUTHOR" not in part or "AUTHORIZ" in part):
            return True  # `AUTH`, `OAUTH`, `AUTHORIZATION`; not `AUTHORS` or `AUTHORITY`
        if part.endswith(("KEY", "PASS", "PWD", "DSN")) and part not in ("BYPASS", "COMPASS"):
            return True  # `ACCESSKEY`, `PGPASS`, `MYSQLPWD`, `SENTRYDSN`
        if part in ("PASS", "PWD"):
            return True
    return False


def cut(text: str, limit: int = MAX_SCAN_CHARS) -> str:
    """`text` at most `limit` characters long, ending with `…` when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


# --- URLs with credentials -------------------------------------------------------------------

_AUTHORITY_CHARS = 2048
# What follows `://` up to the path: user, password, hosts (several, for MongoDB), port.
_AUTHORITY = re.compile(rf"[^/?#\s\"'<>`]{{0,{_AUTHORITY_CHARS}}}")
_USER_ONLY_SECRET = 16
"""A user name without a password this long is a token (`https://ghp_...@github.com`)."""


def _userinfo_spans(text: str, *, cut_end: bool) -> list[tuple[int, int, int]]:
    """(userinfo start, password start or -1, userinfo end) of each URL's credentials.

    A password may hold `@`: the last `@` of the authority ends it. An authority that runs to
    the end of a value that was cut (or past the scan bound) may have lost its `@`: its part
    after the first `:` counts as a password, so a cut never shows half a secret.
    """
    spans = []
    pos = 0
    while (found := text.find("://", pos)) >= 0:
        start = found + 3
        authority_match = _AUTHORITY.match(text, start)  # `{0,n}`: always matches
        end = authority_match.end() if authority_match else start
        authority = text[start:end]
        at = authority.rfind("@")
        if at >= 0:
            colon = authority.find(":", 0, at)
            if colon >= 0:
                spans.append((start, start + colon + 1, start + at))
            elif at >= _USER_ONLY_SECRET:
                spans.append((start, -1, start + at))
        elif (end == len(text) and cut_end) or end - start == _AUTHORITY_CHARS:
            colon = authority.find(":")
            if colon >= 0:
                # The cut's `…` stays, to say the value goes on.
                spans.append((start, start + colon + 1, end - (end == len(text) and cut_end)))
        pos = max(end, found + 3)
    return spans


def _mask_urls(value: str, *, cut_end: bool) -> str:
    """`scheme://user:password@host` with the password masked (`user:••••••••@host`), a
    token-long user name without password masked whole; other text unchanged."""
    out = []
    pos = 0
    for start, pw, end in _userinfo_spans(value, cut_end=cut_end):
        out.append(value[pos : pw if pw >= 0 else start])
        out.append(MASK)
        pos = end
    out.append(value[pos:])
    return "".join(out)


def strip_url_credentials(value: str) -> str:
    """Every URL's `user:password@` (or `token@`) removed: `https://u:t@host/x` -> `https://host/x`.

    For places that never show credentials, not even masked (the MODEL column).
    """
    text = cut(value)
    out = []
    pos = 0
    for start, _pw, end in _userinfo_spans(text, cut_end=len(text) < len(value)):
        out.append(text[pos:start])
        pos = end + 1 if end < len(text) and text[end] == "@" else end
    out.append(text[pos:])
    return "".join(out)


# --- Webhooks -----------------------------------------------------------------------------------

_WEBHOOK = re.compile(
    r"(?i)(?:hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/"
    r"|\.webhook\.office\.com/webhookb2/"
    r"|api\.telegram\.org/bot)"
    rf"[^\s\"'<>?#]{{1,{_AUTHORITY_CHARS}}}"
)
_WEBHOOK_PATH = re.compile(r"(?i)(?:/services/|/workflows/|/triggers/|/webhooks/|/webhookb2/|/bot)")


def _mask_webhook(m: re.Match[str]) -> str:
    text = m.group()
    head = _WEBHOOK_PATH.search(text)
    return text[: head.end()] + MASK if head else MASK


# --- Name/value pairs, options, headers -----------------------------------------------------

# A name that may look secret: it holds one of the words `looks_secret` knows (a cheap
# prefilter; `looks_secret` decides). Bounded on both sides of the word, and tried only where
# a name can start (the look-behind), so a long run of name characters costs one attempt.
_CANDIDATE = re.compile(
    r"(?<![\w.\-])(?P<q>[\"']?)(?P<name>-{0,2}(?=[A-Za-z_])[\w.\-]{0,64}?"
    r"(?:tok|secret|pass|pwd|pw|key|auth|credential|private|session|cookie|signature|salt|jwt"
    r"|bearer|pat|sk|sig|dsn|webhook|connstr|connection)"
    r"[\w.\-]{0,64})(?P=q)"
    r"(?P<sep>[ \t]{0,3}=[ \t]{0,3}|[ \t]{0,3}:[ \t]{0,3}|[ \t]{1,8})",
    re.IGNORECASE,
)
_VALUE = re.compile(
    rf"\"[^\"\n]{{0,{MAX_SCAN_CHARS}}}\"?|'[^'\n]{{0,{MAX_SCAN_CHARS}}}'?"
    rf"|[^\s;&\"'<>]{{1,{MAX_SCAN_CHARS}}}"
)
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey", "ssws"})
_SCHEME_GAP = re.compile(r"[ \t]{1,8}")
_PATH_LIKE = ("/", "~", "$", ".")
_SPACE = re.compile(r"\s")
# `NAME=value` and `--name=value` words; not URLs or lines that merely hold an `=`.
_WORD_NAME = re.compile(rf"-{{0,2}}[A-Za-z_][\w.\-]{{0,{MAX_NAME_CHARS}}}")


def _pair_value_start(text: str, m: re.Match[str]) -> int:
    """Where the secret value of a candidate starts, or -1 when this candidate names none."""
    name, sep, quoted = m.group("name"), m.group("sep"), bool(m.group("q"))
    start = m.start("q")
    if text[max(0, start - 2) : start] == "//" or text[max(0, start - 1) : start] == "@":
        return -1  # a host name (`http://tokenserver:8080`), not a pair
    vstart = m.end()
    if vstart >= len(text) or text.startswith(MASK, vstart):
        return -1
    if "=" in sep:
        pass  # `password=x`, `--token=x`, `AccountKey=x;`
    elif ":" in sep:
        # `Authorization: Bearer x`, `"password": "x"`, `key: x`; never `image:tag`, `host:port`.
        if not quoted and sep.endswith(":"):
            return -1
    elif not (name.startswith("-") or name.lower() == "bearer") or text[vstart] == "-":
        # A word and a space: only an option takes its value that way, and `--token --verbose`
        # is an option without one.
        return -1
    bare = name.lstrip("-")
    if bare.lower() == "bearer":
        return vstart
    if bare.upper() in ("PWD", "PW") and "=" in sep:
        # `Pwd=secret;` of a connection string, not the shell's `PWD=/app`.
        return -1 if text.startswith(_PATH_LIKE, vstart) else vstart
    return vstart if looks_secret(bare) else -1


def _mask_pairs(text: str) -> str:
    out = []
    shown = 0  # text before this index is in `out`
    pos = 0  # where the next candidate is looked for
    while (m := _CANDIDATE.search(text, pos)) is not None:
        vstart = _pair_value_start(text, m)
        value = _VALUE.match(text, vstart) if vstart >= 0 else None
        if value is None:
            # Not a secret pair: the next name may start inside this one's separator or value
            # (`user=a password=b`), never inside the name itself (the look-behind).
            pos = m.end("name")
            continue
        vend = value.end()
        word = value.group().strip("\"'")
        if word.lower() in _AUTH_SCHEMES and (gap := _SCHEME_GAP.match(text, vend)):
            # `Authorization: Bearer x`: the scheme stays, the credential after it goes.
            after = _VALUE.match(text, gap.end())
            if after is not None:
                vstart, vend = after.start(), after.end()
        out.append(text[shown:vstart])
        quote = text[vstart] if text[vstart] in "\"'" else ""
        # A quoted value keeps its quotes (`"password": "••••••••"`).
        out.append(quote + MASK + (quote if quote and text[vend - 1 : vend] == quote else ""))
        shown = pos = vend
    out.append(text[shown:])
    return "".join(out)


# `curl -u user:password`, `--user=user:password`: what follows the user name's `:` goes.
_USER_OPTION = re.compile(
    r"(?<![\w.\-])(?:-u|--user)(?:[ \t]{1,8}|=)[\"']?(?P<user>[^\s:\"'@/]{1,256}):"
    rf"(?P<pw>[^\s\"']{{1,{MAX_SCAN_CHARS}}})"
)
USER_OPTIONS = ("-u", "--user")
"""Options whose value is `user:password` (curl, wget, httpie)."""


def _uid_gid(user: str, password: str) -> bool:
    """`docker run --user 1000:1000` names a user and a group, not a password."""
    return user.isdigit() and password.strip("\"'").isdigit()


def _mask_user_option(m: re.Match[str]) -> str:
    if _uid_gid(m.group("user"), m.group("pw")):
        return m.group()
    return m.group()[: m.start("pw") - m.start()] + MASK


def mask_secrets(value: str) -> tuple[str, bool]:
    """A value with every secret inside it masked, and whether there was one.

    Masks URL passwords (`postgres://u:••••••••@h`, passwords with `@` too), token user names
    (`https://••••••••@github.com`), secret pairs of connection strings, DSNs and query strings
    (`AccountKey=`, `SharedAccessSignature=`, `password=`, `?sig=`), headers
    (`Authorization: Bearer ••••••••`), secret options of shell lines
    (`sh -c "serve --api-key ••••••••"`, `HF_TOKEN=••••••••`, `curl -u admin:••••••••`) and
    webhook paths. At most
    `MAX_SCAN_CHARS` of the value are scanned and returned.
    """
    text = cut(value)
    masked = _mask_urls(text, cut_end=len(text) < len(value))
    masked = _WEBHOOK.sub(_mask_webhook, masked)
    masked = _USER_OPTION.sub(_mask_user_option, masked)
    masked = _mask_pairs(masked)
    return masked, masked != text


def mask_text(value: str) -> str:
    """`value` with every secret inside it masked (see `mask_secrets`)."""
    return mask_secrets(value)[0]


def mask_words(argv: Sequence[str]) -> tuple[list[str], bool]:
    """A command line's words with secrets masked, and whether there was one.

    `--token abc` (the word after a secret-looking option), `--token=abc`, `HF_TOKEN=abc`,
    `-u user:abc`, and
    every secret inside a word (a URL's password; a word that is itself a shell line, as in
    `sh -c "serve --api-key X"`, is masked as text).
    """
    out: list[str] = []
    masked = False
    hide_next = False
    previous = ""
    for arg in argv:
        text = str(arg)
        after, previous = previous, text
        user, colon, password = text[:MAX_SCAN_CHARS].partition(":")
        if after in USER_OPTIONS and colon and password and not _uid_gid(user, password):
            masked = True
            out.append(cut(user, MAX_NAME_CHARS) + ":" + MASK)
            continue
        if hide_next:
            hide_next = False
            if text and not text.startswith("-"):
                masked = True
                out.append(MASK)
                continue
        name, sep, value = text.partition("=")
        # One `NAME=value` word: all of the value goes (`--password=a;b&c`). A word holding
        # spaces is a shell line, masked as text below.
        if (
            sep
            and value
            and _WORD_NAME.fullmatch(name)
            and looks_secret(name)
            and not _SPACE.search(value)
        ):
            masked = True
            out.append(f"{cut(name, MAX_NAME_CHARS)}={MASK}")
            continue
        if text.startswith("-") and not sep and looks_secret(text):
            hide_next = True
        hidden, found = mask_secrets(text)
        masked = masked or found
        out.append(hidden)
    return out, masked


def mask_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels with secret-looking names masked whole and secrets inside other values masked."""
    return {k: MASK if looks_secret(k) else mask_text(str(v)) for k, v in labels.items()}
