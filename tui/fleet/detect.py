"""Which containers are model containers, and which model they serve.

All rules live in `DetectionRules`, so a config file can extend them without touching the logic.
The functions take the engine's plain inspect data (a dict), not SDK objects.

Everything read here was written by an image author or whoever started the container, and
detection runs on every inspect: each input is bounded before a pattern or a parser sees it
(`MAX_DETECT_CHARS`, `MAX_COMMAND_WORDS`), and the model name it returns never carries a URL's
credentials (`https://user:token@host/x` is named `https://host/x`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui.fleet.secrets import mask_text, strip_url_credentials

MODEL_LABEL = "aitop.model"

# Images of inference servers, matched against the image's repository path (registry and tag
# stripped). A substring match keeps `myorg/vllm-openai-cuda12` and the like recognised.
KNOWN_SERVER_IMAGES: tuple[str, ...] = (
    "vllm",
    "text-generation-inference",
    "huggingface/tgi",
    "ollama",
    "tritonserver",
    "triton-inference-server",
    "sglang",
    "llama.cpp",
    "llama-cpp",
    "llamacpp",
    "ggml-org/llama",
    "localai",
    "tensorrt-llm",
    "tensorrt_llm",
    "trtllm",
    "lmdeploy",
    "text-embeddings-inference",
    "xinference",
    "mistral.rs",
    "mistralrs",
    "aphrodite",
    "tabbyapi",
    "koboldcpp",
    "nim/",
    "infinity-emb",
    "torchserve",
    "ray-llm",
)

# Command-line flags whose value names the model.
MODEL_FLAGS: tuple[str, ...] = (
    "--model",
    "--model-id",
    "--model_id",
    "--model-path",
    "--model_path",
    "--served-model-name",
    "-m",
)

# Subcommands followed by the model, e.g. `vllm serve MODEL`, `ollama run MODEL`.
MODEL_SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("vllm", "serve"),
    ("ollama", "run"),
    ("ollama", "pull"),
    ("sglang", "serve"),
    ("trtllm-serve", ""),
    ("lmdeploy", "serve"),
)

# Environment variables whose value names the model.
MODEL_ENV: tuple[str, ...] = (
    "MODEL_ID",
    "MODEL_NAME",
    "MODEL",
    "HF_MODEL_ID",
    "SERVED_MODEL_NAME",
    "OLLAMA_MODEL",
    "LLAMA_ARG_MODEL",
    "MODEL_PATH",
)


@dataclass(frozen=True)
class DetectionRules:
    """The rules that make a container a model container and name its model."""

    model_labels: tuple[str, ...] = (MODEL_LABEL,)
    """Labels whose presence marks a model container; the value is the model's name."""
    server_images: tuple[str, ...] = KNOWN_SERVER_IMAGES
    model_flags: tuple[str, ...] = MODEL_FLAGS
    model_subcommands: tuple[tuple[str, str], ...] = MODEL_SUBCOMMANDS
    model_env: tuple[str, ...] = MODEL_ENV
    name_patterns: tuple[str, ...] = ()
    """Regular expressions over the container name that mark a model container."""

    def extended(
        self,
        *,
        labels: Iterable[str] = (),
        images: Iterable[str] = (),
        name_patterns: Iterable[str] = (),
    ) -> DetectionRules:
        """These rules plus extra labels, image substrings and name patterns (from config)."""
        return DetectionRules(
            model_labels=self.model_labels + tuple(labels),
            server_images=self.server_images + tuple(images),
            model_flags=self.model_flags,
            model_subcommands=self.model_subcommands,
            model_env=self.model_env,
            name_patterns=self.name_patterns + tuple(name_patterns),
        )


DEFAULT_RULES = DetectionRules()

MAX_DETECT_CHARS = 4096
"""Longest command word, name or value looked at: model names are short, and shlex and the
name patterns take time that grows faster than the text (a 1 MB shell word took shlex 21 s)."""
MAX_NAME_CHARS = 256
"""Longest part of a container name the config's name patterns see (a pattern such as `.*-gpu`
takes time that grows with the square of the name)."""
MAX_COMMAND_WORDS = 256
"""Words of a command line looked at for the model's name."""


def image_path(image: str) -> str:
    """The repository path of an image reference, lower-cased, without registry, tag or digest."""
    ref = image.lower().split("@", 1)[0]
    parts = ref.split("/")
    # A first component with a dot or colon (or "localhost") is a registry host.
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    path = "/".join(parts)
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path = path[: len(path) - len(last)] + last.split(":", 1)[0]
    return path


def env_map(env: Sequence[str] | None) -> dict[str, str]:
    """`["K=V", ...]` as a dict; entries without `=` map to ""."""
    out: dict[str, str] = {}
    for item in env or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


def requests_gpus(attrs: Mapping[str, Any]) -> bool:
    """True when the container asks for GPUs: device requests, the nvidia runtime or env."""
    host = attrs.get("HostConfig") or {}
    for req in host.get("DeviceRequests") or ():
        caps = [c for group in (req.get("Capabilities") or ()) for c in group]
        if req.get("Driver") == "nvidia" or "gpu" in caps:
            return True
    if host.get("Runtime") == "nvidia":
        return True
    env = env_map((attrs.get("Config") or {}).get("Env"))
    visible = env.get("NVIDIA_VISIBLE_DEVICES", "").strip().lower()
    return visible not in ("", "void", "none")


def _command_words(attrs: Mapping[str, Any]) -> list[str]:
    config = attrs.get("Config") or {}
    words: list[str] = []
    for part in (config.get("Entrypoint"), config.get("Cmd")):
        if isinstance(part, str):
            words.extend(part[:MAX_DETECT_CHARS].split())
        elif part:
            words.extend(str(w)[:MAX_DETECT_CHARS] for w in part[:MAX_COMMAND_WORDS])
    # `sh -c "vllm serve X"` hides the real command in one word: split it too.
    expanded: list[str] = []
    for word in words[:MAX_COMMAND_WORDS]:
        if " " in word:
            try:
                expanded.extend(shlex.split(word))
            except ValueError:
                expanded.extend(word.split())
        else:
            expanded.append(word)
    return expanded[:MAX_COMMAND_WORDS]


def model_from_command(words: Sequence[str], rules: DetectionRules = DEFAULT_RULES) -> str:
    """The model a command line names (`--model X`, `--model=X`, `vllm serve X`), or ""."""
    for i, word in enumerate(words):
        for flag in rules.model_flags:
            if word == flag and i + 1 < len(words) and not words[i + 1].startswith("-"):
                return words[i + 1]
            if flag.startswith("--") and word.startswith(flag + "="):
                return word.split("=", 1)[1]
        base = word.rsplit("/", 1)[-1]
        for program, sub in rules.model_subcommands:
            if base != program:
                continue
            rest = list(words[i + 1 :])
            if sub:
                if not rest or rest[0] != sub:
                    continue
                rest = rest[1:]
            if rest and not rest[0].startswith("-"):
                return rest[0]
    return ""


def is_server_image(image: str, rules: DetectionRules = DEFAULT_RULES) -> bool:
    """True when the image is a known inference server."""
    path = image_path(image)
    return any(pattern in path for pattern in rules.server_images)


def model_display_name(model: str) -> str:
    """A model's name as aitop shows it: no URL credentials (`https://u:t@host/x` ->
    `https://host/x`), other secrets masked (`?token=••••••••`), at most MAX_DETECT_CHARS."""
    return mask_text(strip_url_credentials(str(model)[:MAX_DETECT_CHARS]))


def classify(attrs: Mapping[str, Any], rules: DetectionRules = DEFAULT_RULES) -> tuple[bool, str]:
    """(is_model, model_name) for a container's inspect data.

    The model name is the model label's value, else what the command or environment names,
    else the image; whichever it is, `model_display_name` strips its credentials.
    """
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    image = config.get("Image") or attrs.get("Image") or ""
    # The name patterns come from the config; the name is the engine's: bound what they scan.
    name = str(attrs.get("Name") or "").lstrip("/")[:MAX_NAME_CHARS]

    labelled = ""
    has_label = False
    for label in rules.model_labels:
        if label in labels:
            has_label = True
            labelled = labelled or labels[label]
    is_model = (
        has_label
        or requests_gpus(attrs)
        or is_server_image(image, rules)
        or any(re.search(p, name) for p in rules.name_patterns)
    )
    model = labelled or model_from_command(_command_words(attrs), rules)
    if not model:
        env = env_map(config.get("Env"))
        model = next((env[k] for k in rules.model_env if env.get(k)), "")
    return is_model, model_display_name(model or image)
