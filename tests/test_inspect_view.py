"""The inspect view's content: every section, secrets masked until revealed, escapes shown."""

from __future__ import annotations

import time

import pytest

from tui.fleet.actions.inspect import clean, inspect_sections, mask_argv
from tui.fleet.secrets import MASK, MAX_SCAN_CHARS, looks_secret, mask_text

ATTRS = {
    "Id": "abc123def456" + "0" * 52,
    "Name": "/vllm-1",
    "Created": "2026-01-02T03:04:05.123456789Z",
    "Path": "python",
    "Args": ["-m", "vllm", "--api-key", "sk-live-1", "--hf-token=hf_xyz", "--port", "8000"],
    "Image": "sha256:0123456789abcdef",
    "RestartCount": 2,
    "State": {
        "Status": "running",
        "StartedAt": "2026-01-02T03:04:06Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {
            "Status": "unhealthy",
            "FailingStreak": 3,
            "Log": [
                {"Start": "2026-01-02T03:05:00Z", "ExitCode": 0, "Output": "ok"},
                {"Start": "2026-01-02T03:06:00Z", "ExitCode": 1, "Output": "down\x1b]0;pwn\x07"},
            ],
        },
    },
    "Config": {
        "Image": "vllm/vllm-openai:latest",
        "Entrypoint": ["python", "-m", "vllm"],
        "Cmd": ["--model", "meta-llama/Llama-3-8B"],
        "WorkingDir": "/app",
        "Env": [
            "HF_TOKEN=hf_secret",
            "OPENAI_API_KEY=sk-abc",
            "DB_PASSWORD=hunter2",
            "DATABASE_URL=postgres://app:pa55@db:5432/app",
            "MODEL=llama",
            "PATH=/usr/bin",
        ],
        "Labels": {"com.example.auth-token": "t0k", "team": "ml"},
        "ExposedPorts": {"8000/tcp": {}, "9090/tcp": {}},
        "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost:8000"], "Interval": 5e9},
    },
    "HostConfig": {
        "NetworkMode": "llm_default",
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
        "Memory": 8 << 30,
        "NanoCpus": 4_000_000_000,
        "ShmSize": 1 << 30,
        "PidsLimit": 512,
        "Runtime": "runc",
        "DeviceRequests": [
            {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}
        ],
        "Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}],
    },
    "Mounts": [
        {"Type": "volume", "Name": "hf-cache", "Destination": "/root/.cache", "RW": True},
        {"Type": "bind", "Source": "/models", "Destination": "/models", "RW": False},
    ],
    "NetworkSettings": {
        "Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}], "9090/tcp": None},
        "Networks": {
            "llm_default": {
                "IPAddress": "172.20.0.2",
                "IPPrefixLen": 16,
                "Gateway": "172.20.0.1",
                "Aliases": ["vllm", "abc123def456"],
            }
        },
    },
}


def as_dict(reveal: bool = False) -> dict[str, dict[str, str]]:
    return {
        s.title: {r.key: r.value for r in s.rows} for s in inspect_sections(ATTRS, reveal=reveal)
    }


def test_every_section_is_there_in_order():
    assert [s.title for s in inspect_sections(ATTRS)] == [
        "Container",
        "Environment",
        "Mounts",
        "Ports",
        "Networks",
        "Labels",
        "Restart policy",
        "Resources and GPUs",
        "Health",
    ]


def test_image_command_entrypoint_and_state():
    c = as_dict()["Container"]
    assert c["image"] == "vllm/vllm-openai:latest"
    assert c["image id"] == "0123456789ab"
    assert c["entrypoint"] == "python -m vllm"
    assert c["cmd"] == "--model meta-llama/Llama-3-8B"
    assert c["command"].startswith("python -m vllm --api-key ")
    assert "sk-live-1" not in c["command"] and "hf_xyz" not in c["command"]
    assert "--port 8000" in c["command"]
    assert c["state"] == "running"
    assert c["restarts"] == "2"
    assert c["working dir"] == "/app"


def test_secret_looking_environment_is_masked_until_revealed():
    env = as_dict()["Environment"]
    assert env["HF_TOKEN"] == MASK
    assert env["OPENAI_API_KEY"] == MASK
    assert env["DB_PASSWORD"] == MASK
    assert env["DATABASE_URL"] == f"postgres://app:{MASK}@db:5432/app"
    assert env["MODEL"] == "llama"
    assert env["PATH"] == "/usr/bin"
    shown = as_dict(reveal=True)["Environment"]
    assert shown["HF_TOKEN"] == "hf_secret"
    assert shown["DATABASE_URL"] == "postgres://app:pa55@db:5432/app"
    assert "--api-key sk-live-1" in as_dict(reveal=True)["Container"]["command"]
    sections = inspect_sections(ATTRS)
    # HF_TOKEN, OPENAI_API_KEY, DB_PASSWORD, DATABASE_URL, the label, the command line.
    assert sum(1 for s in sections for r in s.rows if r.masked) == 6
    everything = repr(sections)
    for secret in ("hf_secret", "sk-abc", "hunter2", "pa55", "t0k", "sk-live-1", "hf_xyz"):
        assert secret not in everything


def test_labels_mounts_ports_networks():
    view = as_dict()
    assert view["Labels"] == {"com.example.auth-token": MASK, "team": "ml"}
    assert view["Mounts"] == {
        "/root/.cache": "volume hf-cache (rw)",
        "/models": "bind /models (ro)",
    }
    assert view["Ports"] == {"8000/tcp": "0.0.0.0:8000", "9090/tcp": "not published"}
    assert view["Networks"]["mode"] == "llm_default"
    assert view["Networks"]["llm_default"] == (
        "172.20.0.2/16; gateway 172.20.0.1; aliases vllm, abc123def456"
    )


def test_restart_policy_resources_and_gpu_requests():
    view = as_dict()
    assert view["Restart policy"]["policy"] == "on-failure (at most 5 retries)"
    r = view["Resources and GPUs"]
    assert r["memory limit"] == "8 GiB"
    assert r["cpus"] == "4"
    assert r["shm size"] == "1 GiB"
    assert r["pids limit"] == "512"
    assert r["ulimit memlock"] == "-1:-1"
    assert r["device request 1"] == "GPUs 0,1 (nvidia, capabilities gpu)"


def test_health_log_is_shown_with_escapes_made_visible():
    health = as_dict()["Health"]
    assert health["status"] == "unhealthy"
    assert health["failing streak"] == "3"
    assert health["check"] == "CMD-SHELL curl -f localhost:8000"
    outputs = [v for k, v in health.items() if k.startswith("2026-")]
    assert outputs[0] == "exit 0: ok"
    assert outputs[1] == "exit 1: down\\x1b]0;pwn\\x07"
    assert all("\x1b" not in v for v in outputs)


def test_empty_sections_say_none():
    minimal = {s.title: [(r.key, r.value) for r in s.rows] for s in inspect_sections({"Id": "x"})}
    assert minimal["Mounts"] == [("", "none")]
    assert minimal["Environment"] == [("", "none")]
    assert minimal["Health"] == [("health check", "none")]
    assert minimal["Resources and GPUs"][-1] == ("GPUs", "none requested")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("HUGGING_FACE_HUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("api_key", True),
        ("--api-key", True),
        ("MYSQL_ROOT_PASSWORD", True),
        ("PGPASSWD", True),
        ("GITHUB_AUTH", True),
        ("PWD", False),
        ("MODEL", False),
        ("CUDA_VISIBLE_DEVICES", False),
        ("PATH", False),
    ],
)
def test_secret_names(name, secret):
    assert looks_secret(name) is secret


def test_argv_and_url_masking_and_cleaning():
    assert mask_argv(["serve", "--token", "abc", "--verbose"]) == (
        f"serve --token {MASK} --verbose",
        True,
    )
    assert mask_argv(["serve", "--token", "--verbose"]) == ("serve --token --verbose", False)
    assert mask_argv(["serve"]) == ("serve", False)
    assert mask_text("redis://:pw@r:6379/0") == f"redis://:{MASK}@r:6379/0"
    assert mask_text("http://host/path") == "http://host/path"
    assert clean("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\x0ac"


@pytest.mark.parametrize("size", [80_000, 1_000_000])
@pytest.mark.parametrize(
    "unit", ["a", "a://:", "a://u:", "a://u:@"], ids=["letters", "colons", "heads", "ats"]
)
def test_hostile_values_mask_in_a_few_ms_both_ways(unit, size):
    """The old URL-password pattern took 8.6 s on 80 KB of letters and 12 s on `a://:` repeated,
    on the UI thread, at every `m`; both views of the worst values now build in milliseconds."""
    value = unit * (size // len(unit))
    attrs = {
        "Id": "x",
        "Config": {"Env": [f"DATABASE_URL={value}"], "Labels": {"l": value}, "Cmd": [value]},
    }
    for reveal in (False, True):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            sections = inspect_sections(attrs, reveal=reveal)
            best = min(best, time.perf_counter() - start)
        assert best < 0.05, f"{best * 1000:.1f} ms"
        env = {s.title: s for s in sections}["Environment"].rows[0].value
        assert len(env) <= MAX_SCAN_CHARS and env.endswith("…")
