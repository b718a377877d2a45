"""Checks of a downloaded model directory that need no torch: what a retry cannot fix is a
JobInputError (exit 2) naming the file or the dimension."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import JobInputError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def load_config(model_dir: Path, label: str) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise JobInputError(f"{label} has no config.json: not a transformers model")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise JobInputError(f"{label}: config.json is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise JobInputError(f"{label}: config.json is not a JSON object")
    return config


def architecture(config: dict[str, Any]) -> str | None:
    architectures = config.get("architectures") or []
    return architectures[0] if architectures else None


def require_tokenizer(model_dir: Path, label: str) -> None:
    if any((model_dir / name).is_file() for name in TOKENIZER_FILES) or any(model_dir.glob("*.tiktoken")):
        return
    raise JobInputError(
        f"{label} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}, *.tiktoken): "
        "the model's tokenizer files must be stored next to its weights"
    )


def linear_input_dimensions(config: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(config key, value, which Linear layers take it as input dimension) for the dimensions
    group quantization splits into groups."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    dims: list[tuple[str, int, str]] = []

    def add(key: str, value: Any, layers: str) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            dims.append((key, value, layers))

    hidden = text.get("hidden_size")
    add("hidden_size", hidden, "the attention q/k/v and MLP gate/up projections")
    if architecture(config) == "QWenLMHeadModel":  # Qwen v1: w1/w2 are intermediate_size / 2 wide
        inter = text.get("intermediate_size")
        if isinstance(inter, int):
            add("intermediate_size/2", inter // 2, "every mlp.c_proj")
    else:
        add("intermediate_size", text.get("intermediate_size"), "every mlp.down_proj")
    add("moe_intermediate_size", text.get("moe_intermediate_size"), "every expert's down_proj")
    add("shared_expert_intermediate_size", text.get("shared_expert_intermediate_size"), "the shared expert's down_proj")
    heads = text.get("num_attention_heads")
    head_dim = text.get("head_dim")
    if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
        if not isinstance(head_dim, int):
            head_dim = hidden // heads
        add("num_attention_heads*head_dim", heads * head_dim, "every self_attn.o_proj")
    return dims


def check_group_size(config: dict[str, Any], group_size: int, label: str) -> None:
    for key, value, layers in linear_input_dimensions(config):
        if value % group_size != 0:
            raise JobInputError(
                f"{label}: {key}={value} is not divisible by --group-size {group_size} "
                f"(it is the input dimension of {layers}); choose a group size that divides it"
            )
