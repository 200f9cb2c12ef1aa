"""Model detection rules: labels, GPU requests, known server images, and model names."""

from __future__ import annotations

import time

import pytest

from tui.fleet.detect import (
    DEFAULT_RULES,
    MAX_DETECT_CHARS,
    classify,
    image_path,
    model_from_command,
)
from tui.fleet.inventory import container_info, info_from_summary
from tui.fleet.secrets import MASK


def attrs(*, image="busybox", labels=None, cmd=None, entrypoint=None, env=None, host=None):
    return {
        "Name": "/x",
        "Config": {
            "Image": image,
            "Labels": labels or {},
            "Cmd": cmd,
            "Entrypoint": entrypoint,
            "Env": env or [],
        },
        "HostConfig": host or {},
    }


def test_label_marks_a_model_and_names_it():
    assert classify(attrs(labels={"aitop.model": "llama-3"})) == (True, "llama-3")


def test_plain_container_is_not_a_model_and_is_named_by_its_image():
    assert classify(attrs(image="redis:7")) == (False, "redis:7")


@pytest.mark.parametrize(
    "host",
    [
        {"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]},
        {"DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": ["0"]}]},
        {"Runtime": "nvidia"},
    ],
)
def test_gpu_requests_mark_a_model(host):
    assert classify(attrs(host=host))[0] is True


def test_nvidia_visible_devices_marks_a_model_but_void_does_not():
    assert classify(attrs(env=["NVIDIA_VISIBLE_DEVICES=0,1"]))[0] is True
    assert classify(attrs(env=["NVIDIA_VISIBLE_DEVICES=void"]))[0] is False


@pytest.mark.parametrize(
    "image",
    [
        "vllm/vllm-openai:v0.6.3",
        "ghcr.io/huggingface/text-generation-inference:2.4",
        "ollama/ollama",
        "nvcr.io/nvidia/tritonserver:24.08-trtllm-python-py3",
        "lmsysorg/sglang:latest",
        "ghcr.io/ggml-org/llama.cpp:server",
        "localai/localai:latest-gpu-nvidia-cuda-12",
        "nvcr.io/nvidia/tensorrt-llm/release:0.17",
    ],
)
def test_known_inference_servers_are_models(image):
    assert classify(attrs(image=image))[0] is True


@pytest.mark.parametrize(
    ("cmd", "entrypoint", "expected"),
    [
        (["--model", "meta-llama/Llama-3.1-8B"], None, "meta-llama/Llama-3.1-8B"),
        (["--model=Qwen/Qwen2.5-7B"], None, "Qwen/Qwen2.5-7B"),
        (["serve", "mistralai/Mistral-7B", "--port", "8000"], ["vllm"], "mistralai/Mistral-7B"),
        (["-c", "vllm serve google/gemma-2-9b --tp 2"], ["sh"], "google/gemma-2-9b"),
        (["--model-id", "bigscience/bloom"], ["text-generation-launcher"], "bigscience/bloom"),
    ],
)
def test_model_name_from_command(cmd, entrypoint, expected):
    is_model, model = classify(attrs(image="vllm/vllm-openai", cmd=cmd, entrypoint=entrypoint))
    assert is_model and model == expected


def test_model_name_from_environment_when_the_command_names_none():
    found = classify(attrs(image="ollama/ollama", env=["MODEL_ID=phi-3", "PATH=/bin"]))
    assert found == (True, "phi-3")


def test_label_wins_over_command_and_environment():
    found = classify(
        attrs(labels={"aitop.model": "from-label"}, cmd=["--model", "x"], env=["MODEL_ID=y"])
    )
    assert found == (True, "from-label")


def test_rules_extend_with_labels_images_and_name_patterns():
    rules = DEFAULT_RULES.extended(
        labels=["ai.model"], images=["mycorp/infer"], name_patterns=["^llm-"]
    )
    assert classify(attrs(labels={"ai.model": "m"}), rules) == (True, "m")
    assert classify(attrs(image="registry.local:5000/mycorp/infer:1"), rules)[0] is True
    named = {**attrs(), "Name": "/llm-7"}
    assert classify(named, rules)[0] is True
    assert classify(named)[0] is False


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("vllm/vllm-openai:latest", "vllm/vllm-openai"),
        ("nvcr.io/nvidia/tritonserver:24.08", "nvidia/tritonserver"),
        ("localhost:5000/ollama@sha256:abc", "ollama"),
        ("Busybox", "busybox"),
    ],
)
def test_image_path(ref, path):
    assert image_path(ref) == path


def test_flag_without_value_names_nothing():
    assert model_from_command(["--model"]) == ""
    assert model_from_command(["--model", "--port"]) == ""


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (attrs(cmd=["--model", "https://user:tok@host/x"]), "https://host/x"),
        (
            attrs(cmd=["--model=https://u:p@ss@models.example/m.gguf"]),
            "https://models.example/m.gguf",
        ),
        (
            attrs(entrypoint=["sh"], cmd=["-c", "vllm serve s3://AKIA:SeCrEt@bucket/llama --tp 2"]),
            "s3://bucket/llama",
        ),
        (attrs(labels={"aitop.model": "https://hf:hf_abc@hf.co/org/m"}), "https://hf.co/org/m"),
        (
            attrs(image="ollama/ollama", env=["MODEL_ID=https://ghp_A1b2C3d4E5f6G7h8I9@gh.io/o/m"]),
            "https://gh.io/o/m",
        ),
        (
            attrs(cmd=["--model", "https://host/m.bin?sig=SasSig&sv=1"]),
            f"https://host/m.bin?sig={MASK}&sv=1",
        ),
        (attrs(cmd=["--model", "meta-llama/Llama-3.1-8B"]), "meta-llama/Llama-3.1-8B"),
        (attrs(cmd=["--model", "http://localhost:8000/v1"]), "http://localhost:8000/v1"),
        (attrs(cmd=["--model", "ssh://git@github.com/o/m"]), "ssh://git@github.com/o/m"),
    ],
)
def test_model_column_never_shows_url_credentials(found, expected):
    assert classify(found)[1] == expected


def test_model_column_of_the_listing_strips_credentials_too():
    summary = {
        "Id": "a" * 64,
        "Names": ["/m"],
        "Image": "vllm/vllm-openai",
        "Command": "vllm serve https://user:Tok3n@models.example/m --port 8000",
        "Labels": {},
        "State": "running",
        "Status": "Up 1 second",
        "Created": 0,
    }
    info = info_from_summary(summary)
    assert info.model == "https://models.example/m"


def test_model_column_of_a_real_container_strips_credentials(engine, run_container):
    cid = run_container("sleep 600 # --model https://deploy:S3cretTok@models.example/llama")
    info = container_info(engine.inspect(cid))
    assert info.model == "https://models.example/llama"
    assert "S3cretTok" not in repr(info.model)


def best_ms(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def test_detection_is_bounded_on_hostile_commands_and_names():
    # A 1 MB shell word made shlex take 21 s; a config's `.*-gpu` over a 80 KB name took 3 s.
    shell = attrs(entrypoint=["sh"], cmd=["-c", "a" * 1_000_000 + " --model https://u:p@h/m"])
    assert best_ms(lambda: classify(shell)) < 25
    many = attrs(cmd=["--flag"] * 200_000 + ["--model", "m"])
    assert best_ms(lambda: classify(many)) < 25
    rules = DEFAULT_RULES.extended(name_patterns=[".*-gpu"])
    named = {**attrs(), "Name": "/" + "a" * 1_000_000}
    assert best_ms(lambda: classify(named, rules)) < 25
    huge_model = attrs(labels={"aitop.model": "a://u:" * 200_000})
    assert best_ms(lambda: classify(huge_model)) < 25
    assert len(classify(huge_model)[1]) <= MAX_DETECT_CHARS
