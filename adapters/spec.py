"""What the live model offers adapters: its linear layers and their shapes, read once.

Uploaded and stored adapters are checked against this, never against what they say about
themselves: the shapes decide whether an adapter fits, the names only produce a note.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

# Sub-modules PEFT adds under a LoRA-wrapped layer; they are not layers of the base model.
_PEFT_PARTS = frozenset(
    {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "lora_dropout"}
)


@dataclass(frozen=True)
class ModelSpec:
    """The live base model's facts an adapter must agree with."""

    linear: Mapping[str, tuple[int, int]]
    """Module path (as in the base model, e.g. `model.layers.0.self_attn.qkv_proj`) -> (in, out) features."""
    other: frozenset[str]
    """Paths of every other module; a target that names one of these is refused."""
    names: tuple[str, ...]
    """What the live model calls itself (display name, `_name_or_path`, architectures), for the loose check."""
    num_layers: int | None

    @classmethod
    def from_model(cls, model: Any, name: str = "") -> ModelSpec:
        """Read the spec of `model` (a plain transformers model or a PeftModel wrapping one)."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        linear: dict[str, tuple[int, int]] = {}
        other: set[str] = set()
        for path, module in base.named_modules():
            parts = path.split(".")
            if not path or _PEFT_PARTS.intersection(parts):
                continue
            if parts[-1] == "base_layer":  # a LoRA-wrapped linear: the real layer sits below it
                path = ".".join(parts[:-1])
            if isinstance(module, nn.Linear):
                linear[path] = (int(module.in_features), int(module.out_features))
            elif path not in linear:
                other.add(path)
        other -= linear.keys()
        config = getattr(base, "config", None)
        names = [name, str(getattr(config, "_name_or_path", "") or "")]
        names += list(getattr(config, "architectures", None) or [])
        layers = getattr(config, "num_hidden_layers", None)
        return cls(
            linear=dict(linear),
            other=frozenset(other),
            names=tuple(n for n in names if n),
            num_layers=layers if isinstance(layers, int) else None,
        )

    def leaf_names(self) -> list[str]:
        """The distinct last path parts of the linear layers (what `target_modules` usually lists)."""
        return sorted({path.rsplit(".", 1)[-1] for path in self.linear})

    def matching(self, target: str) -> tuple[list[str], list[str]]:
        """(linear paths, other paths) that PEFT's list matching would pick for `target`: the path
        itself or any path ending in `.target`. Plain string comparison, never a regex."""
        suffix = "." + target
        lin = [p for p in self.linear if p == target or p.endswith(suffix)]
        oth = [p for p in self.other if p == target or p.endswith(suffix)]
        return lin, oth


def loosely_same_model(claimed: str, spec: ModelSpec) -> bool:
    """Whether a claimed base model name plausibly names the live model (case, punctuation,
    org prefix and file extension ignored; either name may contain the other)."""
    wanted = _squash(claimed.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
    if not wanted:
        return True
    for name in spec.names:
        have = _squash(name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
        if have and (wanted in have or have in wanted):
            return True
    return False


def _squash(text: str) -> str:
    text = re.sub(r"\.(gguf|safetensors)$", "", text.lower())
    return re.sub(r"[^a-z0-9]", "", text)
