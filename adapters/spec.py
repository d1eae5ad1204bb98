"""What a LoRA adapter is: the live model's facts it must agree with (`ModelSpec`), its checked configuration
(`LoraSpec`), and the handle one request carries (`AdapterHandle`).

The catalog (`adapters/`) checks an adapter's files against the live model's `ModelSpec` and hands
the service an `AdapterHandle`: a checked weights file plus the `LoraSpec` it must match. The
engine (`engines.residency`, `engines.llamacpp`) is the only thing that loads it. Nothing here imports torch
at module level, so the catalog stays free of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TENSOR_PREFIX = "base_model.model."
"""Tensor names in a PEFT adapter file start with this, then the module path in the base model."""

# Sub-modules PEFT adds under a LoRA-wrapped layer; they are not layers of the base model.
_PEFT_PARTS = frozenset(
    {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "lora_dropout"}
)


@dataclass(frozen=True)
class ModelSpec:
    """The live base model's facts an adapter must agree with (read once from the model)."""

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
        from torch import nn

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

    def loosely_names(self, claimed: str) -> bool:
        """Whether a claimed base model name plausibly names this model (case, punctuation, org prefix
        and file extension ignored; either name may contain the other)."""
        wanted = _squash(claimed.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
        if not wanted:
            return True
        for name in self.names:
            have = _squash(name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
            if have and (wanted in have or have in wanted):
                return True
        return False


def _squash(text: str) -> str:
    text = re.sub(r"\.(gguf|safetensors)$", "", text.lower())
    return re.sub(r"[^a-z0-9]", "", text)


@dataclass(frozen=True)
class LoraSpec:
    """A checked LoRA configuration: the only one the engine ever hands to PEFT."""

    r: int
    lora_alpha: float
    use_rslora: bool
    modules: tuple[str, ...]
    """Full paths of the live model's linear layers the adapter adapts."""

    def expected_tensors(self, spec: ModelSpec) -> dict[str, tuple[int, int]]:
        """Tensor name -> shape that a complete adapter file holds for this adapter on `spec`."""
        shapes: dict[str, tuple[int, int]] = {}
        for path in self.modules:
            in_features, out_features = spec.linear[path]
            shapes[f"{TENSOR_PREFIX}{path}.lora_A.weight"] = (self.r, in_features)
            shapes[f"{TENSOR_PREFIX}{path}.lora_B.weight"] = (out_features, self.r)
        return shapes


@dataclass(frozen=True)
class AdapterHandle:
    """One adapter resolved for one request: what to load and what it must match.

    `version` changes when the files on disk change (the training script rewrote the adapter), so
    the engine reloads a resident adapter whose handle has a new version. `kb_snapshot` is the
    knowledge-base snapshot its card says it was trained against (None: not recorded).
    """

    key: str
    name: str
    source: str
    folder: Path
    weights: Path
    lora: LoraSpec
    max_bytes: int
    version: tuple[Any, ...] = ()
    kb_snapshot: str | None = None
    kb_snapshot_date: str | None = None
    kb_content_id: str | None = None
    label: str = field(default="", compare=False)
