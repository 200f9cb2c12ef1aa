"""The configuration file: found where XDG, AITOP_CONFIG and --config say; good, broken and
partial files; every mistake reported as file:line with what was expected, the rest applied;
the commented default file parsing back to the defaults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tui.commands import check_settings, default_keymap_lines
from tui.config import (
    CONFIG_ENV,
    CannotWrite,
    Config,
    RefreshConfig,
    TableConfig,
    ThresholdsConfig,
    choose_hosts,
    default_file,
    find_config,
    key_lines,
    load_config,
    parse_config,
    save_table_columns,
)
from tui.fleet.detect import classify
from tui.fleet.gpu import types as gpu_types

AITOP = [sys.executable, "-m", "tui"]


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def aitop(*args: str, env: dict | None = None):
    return subprocess.run(
        [*AITOP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


GOOD = """
    theme = "nord"
    read_only = true
    hosts = ["tcp://box:2375"]

    [refresh]
    fleet = 2.5
    gpu = 3

    [detection]
    labels = ["com.example.model"]
    images = ["MyOrg/Inference-Server"]
    name_patterns = ["^llm-"]

    [logs]
    max_lines = 5000
    max_bytes = 1048576

    [thresholds]
    gpu_memory_warning_percent = 70
    gpu_memory_critical_percent = 85.5
    gpu_temperature_margin_c = 8

    [keymap]
    toggle-all = "A"
    log_pane.follow = "F,end"
    "sort-invert" = "R"
"""


def test_a_good_file_sets_everything(tmp_path):
    path = write(tmp_path, GOOD)
    loaded = load_config(str(path))
    assert loaded.problems == ()
    assert loaded.exists and loaded.source == "--config"
    c = loaded.config
    assert (c.theme, c.read_only, c.hosts) == ("nord", True, ("tcp://box:2375",))
    assert (c.refresh.fleet, c.refresh.gpu) == (2.5, 3.0)
    assert (c.logs.max_lines, c.logs.max_bytes) == (5000, 1048576)
    assert c.thresholds.gpu_memory_critical_percent == 85.5
    assert c.thresholds.gpu_temperature_margin_c == 8
    # A dotted key is a nested table in TOML; binding ids contain dots, so it is joined back.
    assert c.keymap == {"toggle-all": "A", "log_pane.follow": "F,end", "sort-invert": "R"}

    rules = c.detection_rules()

    def attrs(name: str = "x", image: str = "busybox", labels: dict | None = None) -> dict:
        return {"Name": f"/{name}", "Config": {"Image": image, "Labels": labels or {}}}

    assert classify(attrs(labels={"com.example.model": "org/m"}), rules) == (True, "org/m")
    assert classify(attrs(image="reg.local:5000/myorg/inference-server:1"), rules)[0]
    assert classify(attrs(name="llm-7b"), rules)[0]
    assert not classify(attrs(name="redis"), rules)[0]
    # The built-in rules stay.
    assert classify(attrs(labels={"aitop.model": "m"}), rules) == (True, "m")
    assert check_settings(loaded)[1] == []


def test_no_file_at_the_default_place_means_defaults_quietly(tmp_path):
    loaded = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert loaded.path == tmp_path / "aitop" / "config.toml"
    assert (loaded.config, loaded.problems, loaded.exists) == (Config(), (), False)


def test_a_named_file_that_is_missing_is_reported(tmp_path):
    loaded = load_config(str(tmp_path / "nope.toml"))
    assert loaded.config == Config()
    (problem,) = loaded.problems
    assert str(problem) == f"{tmp_path / 'nope.toml'}: no such file (named by --config)"


def test_where_the_file_is_looked_for(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    assert find_config(None, env) == (tmp_path / "xdg" / "aitop" / "config.toml", "default")
    # A relative XDG_CONFIG_HOME is invalid by the spec: ignored.
    relative = find_config(None, {"XDG_CONFIG_HOME": "rel"})[0]
    assert relative == Path.home() / ".config" / "aitop" / "config.toml"
    env[CONFIG_ENV] = str(tmp_path / "env.toml")
    assert find_config(None, env) == (tmp_path / "env.toml", CONFIG_ENV)
    assert find_config(str(tmp_path / "flag.toml"), env) == (tmp_path / "flag.toml", "--config")


def test_a_syntax_error_names_the_line_and_everything_stays_default(tmp_path):
    path = write(
        tmp_path,
        """
        theme = "nord"

        [refresh
        fleet = 2
        """,
    )
    loaded = load_config(str(path))
    assert loaded.config == Config()
    (problem,) = loaded.problems
    assert problem.line == 3
    assert str(problem).startswith(f"{path}:3: not valid TOML: Expected ']'")
    assert "defaults apply" in str(problem)


def test_a_partial_file_applies_what_is_right_and_names_each_mistake(tmp_path):
    path = write(
        tmp_path,
        """
        theme = "nord"
        read_only = "yes"

        [refresh]
        fleet = 2
        gpu = -1
        fleett = 3

        [detection]
        name_patterns = ["(unclosed"]
        labels = ["ok.label"]

        [logs]
        max_lines = 10.5

        [thresholds]
        gpu_memory_warning_percent = 95

        [keymap]
        toggle-all = "A"
        log_pane.follow = ""
        stop = 5

        [colours]
        x = 1
        """,
    )
    loaded = load_config(str(path))
    messages = [str(p) for p in loaded.problems]
    assert messages == [
        f"{path}:2: read_only: expected true or false, got a string ('yes'); the default applies",
        f"{path}:6: refresh.gpu: expected a number of seconds from 0.05 to 3600, got a whole "
        "number (-1); the default applies",
        f"{path}:7: unknown setting 'refresh.fleett', ignored; did you mean 'fleet'? "
        "(expected at [refresh]: fleet, gpu)",
        f"{path}:10: detection.name_patterns: expected regular expressions; '(unclosed' is not "
        "one (missing ), unterminated subpattern at position 0); the default applies",
        f"{path}:14: logs.max_lines: expected a whole number, got a number (10.5); the default "
        "applies",
        f"{path}:17: thresholds.gpu_memory_warning_percent (95) must not be above "
        "thresholds.gpu_memory_critical_percent (90); both keep their defaults",
        f'{path}:21: keymap: \'log_pane.follow\': expected keys like "ctrl+r" or "f,end", got a '
        "string (''); ignored",
        f"{path}:22: keymap: 'stop': expected a string, got a whole number (5); ignored",
        f"{path}:24: unknown setting 'colours', ignored; (expected at the top level: theme, "
        "read_only, low_bandwidth, hosts, refresh, detection, logs, thresholds, table, "
        "keymap)",
    ]
    c = loaded.config
    # What was right applies; each mistake left its own setting at the default.
    assert c.theme == "nord" and c.read_only is False
    assert (c.refresh.fleet, c.refresh.gpu) == (2.0, 1.0)
    assert c.detection.labels == ("ok.label",) and c.detection.name_patterns == ()
    assert c.logs.max_lines == Config().logs.max_lines
    assert c.thresholds == Config().thresholds
    assert c.keymap == {"toggle-all": "A"}


def test_unknown_binding_ids_and_themes_are_reported_at_their_line(tmp_path):
    path = write(
        tmp_path,
        """
        theme = "nordd"

        [keymap]
        toggle-al = "A"
        log_pane.folow = "F"
        quit = "ctrl+x"
        """,
    )
    config, problems = check_settings(load_config(str(path)))
    messages = [str(p) for p in problems]
    assert messages[:2] == [
        f"{path}:4: keymap: unknown binding id 'toggle-al', ignored; did you mean 'toggle-all'? "
        "(`aitop config --print-default` lists them all)",
        f"{path}:5: keymap: unknown binding id 'log_pane.folow', ignored; did you mean "
        "'log_pane.follow'? (`aitop config --print-default` lists them all)",
    ]
    assert messages[2].startswith(
        f"{path}:1: theme: unknown theme 'nordd', the default applies; did you mean 'nord'? "
        "(expected one of "
    )
    assert "textual-light" in messages[2] and len(messages) == 3
    assert config.keymap == {"quit": "ctrl+x"}
    assert config.theme == Config().theme


def test_the_default_file_parses_back_to_the_defaults(tmp_path):
    text = default_file(default_keymap_lines())
    loaded = parse_config(text, tmp_path / "d.toml")
    assert loaded.problems == ()
    assert loaded.config == Config()
    # Every field is explained, and every remappable binding is listed (commented out).
    assert "# Seconds between two samples of the containers" in text
    assert '# toggle-all = "a"' in text and '# "log_pane.follow" = "f,end"' in text
    # Uncommenting the keymap examples gives the default keys: still valid, still defaults.
    uncommented = text.replace("\n# toggle-all", "\ntoggle-all")
    assert parse_config(uncommented, tmp_path / "d.toml").config.keymap == {"toggle-all": "a"}


def test_aitop_config_print_default_path_and_check(tmp_path):
    out = aitop("config", "--print-default", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert parse_config(out.stdout, tmp_path / "x.toml").config == Config()

    path = write(tmp_path, "[refresh]\nfleet = 'fast'\n")
    out = aitop("config", "--path", env={CONFIG_ENV: str(path)})
    assert out.stdout.strip() == f"{path}  (exists; from {CONFIG_ENV})"
    out = aitop("--config", str(path), "config", "--check")
    assert out.returncode == 1
    assert out.stdout.strip() == (
        f"{path}:2: refresh.fleet: expected a number, got a string ('fast'); the default applies"
    )
    good = write(tmp_path, GOOD, "good.toml")
    out = aitop("config", "--check", "--config", str(good))
    assert (out.returncode, out.stdout.strip()) == (0, f"{good}: ok")


def test_mistakes_are_told_on_stderr_and_aitop_goes_on(tmp_path):
    path = write(tmp_path, "[refresh]\nfleet = 'fast'\n")
    out = aitop("--config", str(path), "--host", "unix:///nonexistent/d.sock", "snapshot", "--json")
    lines = out.stderr.strip().splitlines()
    assert lines[0] == (
        f"aitop: {path}:2: refresh.fleet: expected a number, got a string ('fast'); "
        "the default applies"
    )
    # It went on to the engine (which is missing here): the file did not stop it.
    assert out.returncode == 2 and "socket does not exist" in lines[1]
    assert "Traceback" not in out.stderr


def test_flags_win_over_the_file(tmp_path):
    path = write(tmp_path, "[refresh]\nfleet = 2\n")
    # A flag's bad interval is refused although the file's is fine: the flag is what is used.
    out = aitop("--config", str(path), "--interval", "-1", env={"DOCKER_HOST": ""})
    assert out.returncode == 2 and "--interval -1: expected a number of seconds" in out.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e-300", "0", "-1", "1e9"])
def test_an_interval_that_is_no_usable_number_is_refused_in_the_file_and_on_the_line(
    tmp_path, value
):
    path = write(tmp_path, f"[refresh]\nfleet = {value}\ngpu = {value}\n")
    loaded = load_config(str(path))
    assert loaded.config.refresh == RefreshConfig()  # both fell back to the defaults
    assert [p.line for p in loaded.problems] == [2, 3]
    assert "expected a number of seconds from 0.05 to 3600" in str(loaded.problems[0])
    for flag in ("--interval", "--gpu-interval"):
        out = aitop(f"{flag}={value}", env={"DOCKER_HOST": ""})
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert lines[0].startswith(f"aitop: {flag} ") and "expected a number of seconds" in lines[0]


HOSTILE_FILES = {
    "deep-arrays": ("a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    "deep-tables": ("x = " + "{a=" * 3000 + "1" + "}" * 3000, "nested too deeply"),
    "huge": ("k = '" + "x" * (1024 * 1024 + 1) + "'", "larger than 1024 KiB"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_a_deeply_nested_or_huge_file_is_one_clear_line(tmp_path, case):
    text, says = HOSTILE_FILES[case]
    path = write(tmp_path, text)
    out = aitop("--config", str(path), "config", "--check")
    assert out.returncode == 1
    assert out.stdout.strip().splitlines() == [f"{path}: {out.stdout.split(': ', 1)[1].strip()}"]
    assert says in out.stdout and "the whole file is ignored" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("keymap", "dropped", "other"),
    [
        ('quit = "s"', "quit", "stop"),
        ('stop = "q"', "stop", "quit"),
        ('log_pane.follow = "e"', "log_pane.follow", "log_pane.next_highlight"),
    ],
)
def test_a_keymap_that_gives_one_key_to_two_bindings_is_reported(tmp_path, keymap, dropped, other):
    path = write(tmp_path, f"[keymap]\n{keymap}\n")
    config, problems = check_settings(load_config(str(path)))
    assert dropped not in config.keymap  # the other binding keeps its key
    assert [p.line for p in problems] == [2]
    assert f"({dropped} and {other}," in problems[0].message
    out = aitop("--config", str(path), "config", "--check")
    assert out.returncode == 1 and f"({dropped} and {other}," in out.stdout


def test_the_hosts_come_from_flags_then_docker_host_then_the_file(tmp_path):
    path = write(tmp_path, 'hosts = ["tcp://a:2375", "tcp://b:2375", "tcp://a:2375"]\n')
    loaded = load_config(str(path))
    source = f"config file {path}"
    # Every host of the file is watched, each once.
    assert choose_hosts([], loaded, {}) == [("tcp://a:2375", source), ("tcp://b:2375", source)]
    assert choose_hosts([], loaded, {"DOCKER_HOST": "tcp://env:1"}) == [(None, "DOCKER_HOST")]
    assert choose_hosts(
        ["tcp://flag:1", "tcp://flag:2"],
        loaded,
        {"DOCKER_HOST": "x"},
        contexts=[("ssh://me@box", "context box")],
    ) == [("tcp://flag:1", "--host"), ("tcp://flag:2", "--host"), ("ssh://me@box", "context box")]
    assert choose_hosts([], load_config(str(tmp_path / "none.toml")), {}) == [(None, "default")]


def test_thresholds_change_the_gpu_levels():
    device = gpu_types.GpuDevice(
        index=0, mem_used_bytes=75, mem_total_bytes=100, temp_c=80, temp_slowdown_c=90
    )
    assert (device.mem_level, device.temp_level) == ("", "")
    thresholds = ThresholdsConfig(
        gpu_memory_warning_percent=70,
        gpu_memory_critical_percent=74,
        gpu_temperature_margin_c=10,
    ).value()
    assert (thresholds.mem_level(device), thresholds.temp_level(device)) == ("critical", "warning")
    assert ThresholdsConfig().value() == gpu_types.DEFAULT_THRESHOLDS
    # A value, not a setting of the process: the defaults still apply everywhere else.
    assert (device.mem_level, device.temp_level) == ("", "")
    report = gpu_types.GpuReport(state=gpu_types.STATE_OK, devices=(device,))
    assert gpu_types.pressure_warnings(report, {}) == []
    (line,) = gpu_types.pressure_warnings(report, {}, thresholds)
    assert line.startswith("GPU 0 (N/A) memory at 75%")


def test_key_lines_finds_tables_dotted_and_quoted_keys():
    text = textwrap.dedent(
        """
        a = 1
        [refresh]  # comment
          fleet=2
        [keymap]
        "log_pane.follow" = "F"
        log_pane.search = "s"
        'x y' = "z"
        """
    )
    assert key_lines(text) == {
        ("a",): 2,
        ("refresh",): 3,
        ("refresh", "fleet"): 4,
        ("keymap",): 5,
        ("keymap", "log_pane.follow"): 6,
        ("keymap", "log_pane", "search"): 7,
        ("keymap", "x y"): 8,
    }


def test_the_config_module_loads_without_textual():
    code = "import sys, tui.config; sys.exit('textual' in sys.modules or 'rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.parametrize("value", ["[1, 2]", "true"])
def test_a_section_that_is_not_a_table_is_reported(tmp_path, value):
    path = write(tmp_path, f"refresh = {value}\n")
    loaded = load_config(str(path))
    (problem,) = loaded.problems
    assert str(problem).startswith(f"{path}:1: refresh: expected a table ([refresh]), got a ")
    assert loaded.config.refresh == Config().refresh


def test_an_inline_table_is_a_table(tmp_path):
    loaded = load_config(str(write(tmp_path, "refresh = {fleet = 4}\n")))
    assert loaded.problems == () and loaded.config.refresh.fleet == 4.0


def test_the_readme_example_is_a_valid_file(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    example = section.split("```toml", 1)[1].split("```", 1)[0]
    loaded = parse_config(example, tmp_path / "readme.toml")
    assert loaded.problems == ()
    config, problems = check_settings(loaded)
    assert problems == [] and config.keymap == {"toggle-all": "A", "log_pane.follow": "f,end"}
    assert config.detection.name_patterns == ("^llm-",)


def test_an_unreadable_file_is_reported_and_an_unreachable_default_is_not(tmp_path):
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    (problem,) = load_config(str(folder)).problems
    assert str(problem) == f"{folder}: cannot be read (Is a directory); the defaults apply"
    binary = tmp_path / "latin1.toml"
    binary.write_bytes(b"theme = '\xe9'\n")
    (problem,) = load_config(str(binary)).problems
    assert str(problem).startswith(f"{binary}: cannot be read (") and "utf-8" in str(problem)
    # XDG_CONFIG_HOME is a file, so the default place cannot exist: quietly the defaults.
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("", encoding="utf-8")
    loaded = load_config(environ={"XDG_CONFIG_HOME": str(not_a_dir)})
    assert (loaded.config, loaded.problems) == (Config(), ())


def test_the_apps_notice_is_one_short_line_per_problem_in_line_order(tmp_path):
    """Issue 16, item 13: what the popup says (the app shows `config_notice`)."""
    from tui.config import NOTICE_LINES, NOTICE_SECONDS, NOTICE_WIDTH, config_notice

    path = write(
        tmp_path,
        """
        read_only = "yes"
        [refresh]
        gpu = -1
        fleett = 3
        [keymap]
        toggle-al = "A"
        """,
    )
    loaded = load_config(str(path))
    _, more = check_settings(loaded)
    # The keymap's problems come after the file's: the notice puts them in line order.
    notice = config_notice([*more, *loaded.problems])
    assert notice.title == "configuration: 4 problems, those settings keep their defaults"
    assert notice.message.split("\n") == [
        "line 1: read_only: expected true or false, got a string ('yes')",
        "line 3: refresh.gpu: expected a number of seconds from 0.05 to 3600, go\u2026",
        "line 4: unknown setting 'refresh.fleett', ignored",
        "line 6: keymap: unknown binding id 'toggle-al', ignored",
        "`aitop config --check` lists them in full",
    ]
    assert all(len(line) <= NOTICE_WIDTH for line in notice.message.split("\n"))
    assert notice.timeout == NOTICE_SECONDS <= 10
    (one,) = loaded.problems[:1]
    assert config_notice([one]).title == "configuration: 1 problem, that setting keeps its default"
    many = config_notice(loaded.problems * 3)
    assert many.message.split("\n")[NOTICE_LINES] == f"\u2026 and {3 * 3 - NOTICE_LINES} more"


def test_the_notice_of_an_ignored_file_says_the_defaults_apply(tmp_path):
    from tui.config import config_notice

    path = write(tmp_path, "[refresh\n")
    notice = config_notice(load_config(str(path)).problems)
    assert notice.title == "configuration: 1 problem, the file is ignored: defaults apply"
    assert notice.message.startswith("line 1: not valid TOML")


def test_table_columns_are_read_and_unknown_or_repeated_names_reported(tmp_path):
    good = parse_config('[table]\ncolumns = ["name", "cpu", "gpu_mem"]\n', tmp_path / "c.toml")
    assert not good.problems
    assert good.config.table.columns == ("name", "cpu", "gpu_mem")
    bad = write(tmp_path, '# columns\n[table]\ncolumns = ["name", "cpux", "state"]\n')
    out = aitop("--config", str(bad), "config", "--check")
    assert out.returncode == 1
    line = out.stdout.strip()
    assert line.startswith(f"{bad}:3: table.columns: expected known column keys; 'cpux' is not")
    assert "did you mean 'cpu'?" in line and line.endswith("the default applies")
    twice = parse_config('[table]\ncolumns = ["cpu", "cpu"]\n', tmp_path / "c.toml")
    assert [(p.line, "'cpu' is named twice" in p.message) for p in twice.problems] == [(2, True)]
    assert twice.config.table.columns == TableConfig().columns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", '[table]\ncolumns = ["name", "cpu"]\n'),
        (
            'theme = "nord"  # kept\n[refresh]\nfleet = 2',
            'theme = "nord"  # kept\n[refresh]\nfleet = 2\n\n[table]\ncolumns = ["name", "cpu"]\n',
        ),
        (
            '[table]\ncolumns = [\n  "state", # a ] in a comment\n  "mem",\n]\n# after\n'
            "[logs]\nmax_lines = 3\n",
            '[table]\ncolumns = ["name", "cpu"]\n# after\n[logs]\nmax_lines = 3\n',
        ),
        (
            "[table]\r\n\r\n[keymap]\r\nquit = 'x'\r\n",
            '[table]\r\ncolumns = ["name", "cpu"]\r\n\r\n[keymap]\r\nquit = \'x\'\r\n',
        ),
    ],
)
def test_the_columns_are_written_into_the_file_and_nothing_else_changes(tmp_path, text, expected):
    path = tmp_path / "config.toml"
    if text:
        path.write_bytes(text.encode())
    save_table_columns(path, ("name", "cpu"))
    assert path.read_bytes() == expected.encode()
    assert load_config(str(path)).config.table.columns == ("name", "cpu")


@pytest.mark.parametrize(
    "text",
    ["table.columns = ['name']\n", "table = { columns = ['name'] }\n", "x = [", "table = 3\n"],
)
def test_a_file_aitop_cannot_edit_safely_is_left_alone(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(CannotWrite):
        save_table_columns(path, ("name", "cpu"))
    assert path.read_text() == text
    assert list(tmp_path.iterdir()) == [path]


def test_a_linked_configuration_file_is_changed_where_it_lives(tmp_path):
    real = tmp_path / "dotfiles" / "aitop.toml"
    real.parent.mkdir()
    real.write_text('theme = "nord"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_table_columns(link, ("name", "gpu_mem"))
    assert link.is_symlink()
    assert real.read_text() == 'theme = "nord"\n\n[table]\ncolumns = ["name", "gpu_mem"]\n'
