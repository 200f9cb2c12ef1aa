"""A hostile fleet against the real `aitop` in a real terminal: containers whose labels,
commands, environment, health checks and logs carry escape sequences (window title, clipboard,
screen clears), bidirectional overrides, markup and lines built to make patterns backtrack.

Tried as an attacker would: the pane's title, the terminal's clipboard and the screen stay
aitop's own, aitop stays alive, and keys answer within 200 ms throughout, with the log pane
streaming the hostile lines and the inspect view showing the hostile configuration.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid

from tests.helpers import wait_for
from tests.terminal import KNOWN_TITLE
from tui.fleet.logs.types import parse_timestamp

ESC = "\x1b"
TITLE = f"{ESC}]0;pwned-title\x07{ESC}]2;pwned-title2{ESC}\\"
CLIPBOARD = f"{ESC}]52;c;cHduZWQ=\x07"  # "pwned"
CLEAR = f"{ESC}[2J{ESC}[H{ESC}[?1049l"
MARKUP = "[/][@click=app.quit]x[/]"
BIDI = "\u202eevil\u2066\u200b"
HOSTILE = TITLE + CLIPBOARD + CLEAR + MARKUP + BIDI
"""What every field of the hostile containers holds, on top of its own text."""
KEY_ANSWER = 0.2
"""Longest a key may take to show on screen, in seconds."""

# A loop the busybox shell runs in the container: every half second, lines with raw escapes
# (printf's octal forms) and lines that half-match the log patterns for 16 KiB.
LOG_LOOP = (
    "nccl=$(printf 'ProcessGroupNCCL %.0s' $(seq 1000)); "
    "load=$(printf 'Loading model %.0s' $(seq 1200)); "
    "while :; do "
    r"printf 'title \033]0;pwned-log\007 clip \033]52;c;cHduZWQ=\007 clear \033[2J end\n'; "
    r"printf 'bidi \342\200\256evil\n'; "
    'echo "$nccl"; echo "$load"; echo "Traceback ${nccl}"; '
    "echo '[/] [@click=app.quit]markup[/]'; "
    "sleep 0.5; done"
)


def hostile_fleet(run_container, tag: str) -> list[str]:
    """Start the hostile containers; their ids."""
    labels = {
        "aitop.model": f"model-{tag}{HOSTILE}",
        "com.docker.compose.project": f"proj-{tag}{HOSTILE}",
        "com.docker.compose.service": f"svc{HOSTILE}",
        f"x.hostile{HOSTILE}": HOSTILE,
    }
    loud = run_container(
        ["sh", "-c", LOG_LOOP, f"argv0{HOSTILE}", f"--api-key=sk-{HOSTILE}"],
        labels=labels,
        name=f"hostile-{tag}-loud",
        environment=[f"MODEL_ID=env{HOSTILE}", f"HF_TOKEN=hf_{HOSTILE}"],
        healthcheck={
            "Test": ["CMD-SHELL", r"printf 'health \033]0;pwned-health\007 \033]52;c;eA==\007'"],
            "Interval": 1_000_000_000,
            "Timeout": 1_000_000_000,
        },
    )
    quiet = run_container(
        ["sh", "-c", "sleep 3600", f"--model=hf/{tag}{HOSTILE}"],
        labels={"aitop.model": ""},
        name=f"hostile-{tag}-quiet",
        environment=[f"MODEL_ID={HOSTILE}"],
    )
    return [loud, quiet]


def health_checks_since(engine, cid: str, since_ns: int) -> int:
    """How many health checks of the container began after `since_ns` (the engine keeps the
    last five)."""
    log = (engine.inspect(cid)["State"].get("Health") or {}).get("Log") or []
    return sum(1 for entry in log if (parse_timestamp(entry.get("Start") or "") or 0) > since_ns)


def assert_terminal_untouched(term, where: str) -> None:
    screen = term.screen()
    assert term.title() == KNOWN_TITLE, where
    assert term.buffers().strip() == "", where
    # Escaped forms (`\x1b]0;pwned`) may show; a raw sequence never reaches the pane.
    assert "\x1b" not in term.colours().replace("\x1b[", ""), where
    assert "Traceback (most" not in screen, where
    assert "updated " in screen or "Inspect" in screen, f"{where}: the screen was cleared"


def test_a_hostile_fleet_cannot_take_over_the_terminal(tmux, engine, run_container):
    tag = uuid.uuid4().hex[:6]
    loud, _ = hostile_fleet(run_container, tag)
    term = tmux(f"{sys.executable} -m tui --all", width=160, height=45)
    term.wait_for("updated ")
    term.keys("/")
    term.wait_for("filter by name")
    term.keys(*f"hostile-{tag}-loud")
    term.keys("Enter")
    term.wait_for(f"filter: 'hostile-{tag}-loud'")
    term.wait_for("· 1 shown ·")
    assert_terminal_untouched(term, "the table")

    # The log pane on the loud container: hostile lines stream in while keys are pressed.
    term.keys("End", "l")
    term.wait_for(f"logs · hostile-{tag}-loud")
    term.wait_for(" end")  # the first hostile line arrived (its escapes gone)
    assert_terminal_untouched(term, "the log pane")

    # Keys answer while the reader thread works on the lines: `t` shows timestamps, `t` hides.
    answers = []
    for _ in range(5):
        answers.append(term.answer_time("t", "timestamps"))
        answers.append(term.answer_time("t", "timestamps", gone=True))
        time.sleep(0.3)  # the passing of time: more hostile lines come in between the keys
    assert max(answers) <= KEY_ANSWER, [f"{a * 1000:.0f} ms" for a in answers]
    assert_terminal_untouched(term, "keys in the log pane")

    # The inspect view shows the hostile configuration, health output included.
    # `l` closes the pane (Escape first would clear the table's filter too).
    term.keys("l")
    term.wait_gone(f"logs · hostile-{tag}-loud")
    term.keys("i")
    term.wait_for(f"Inspect hostile-{tag}")
    # While the view is open, hostile health checks run (and their events come in).
    opened = time.time_ns()
    wait_for(lambda: health_checks_since(engine, loud, opened) >= 2, timeout=10)
    assert_terminal_untouched(term, "the inspect view")
    term.answer_time("Escape", f"Inspect hostile-{tag}", gone=True)
    term.keys("q")
    screen = term.wait_for("EXIT=")
    assert "EXIT=0" in screen and "Traceback" not in screen
    assert term.title() == KNOWN_TITLE and term.buffers().strip() == ""
    print("key answers (ms):", statistics.median(answers) * 1000, max(answers) * 1000)
