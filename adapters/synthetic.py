"""Random LoRA adapters in the standard PEFT folder format, for tests and benchmarks.

Written by hand (safetensors + JSON, no PEFT), so the files are exactly what PEFT's
`save_pretrained` writes for a LoRA adapter, and a test can also write subtly wrong ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from adapters.spec import TENSOR_PREFIX, ModelSpec
from adapters.validate import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE


def lora_config_dict(
    target_modules: Sequence[str], r: int = 4, lora_alpha: float = 8, base_model: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An adapter_config.json as PEFT 0.21 writes it for a plain LoRA adapter, plus `extra` fields."""
    config: dict[str, Any] = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "revision": None,
        "auto_mapping": None,
        "inference_mode": True,
        "r": r,
        "lora_alpha": lora_alpha,
        "lora_dropout": 0.0,
        "target_modules": list(target_modules),
        "exclude_modules": None,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "loftq_config": {},
        "use_dora": False,
        "layer_replication": None,
        "lora_bias": False,
        "trainable_token_indices": None,
        "target_parameters": None,
        "peft_version": "0.21.2",
    }
    config.update(extra)
    return config


def random_lora_tensors(
    spec: ModelSpec,
    target_modules: Sequence[str],
    r: int = 4,
    seed: int = 0,
    scale: float = 0.5,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """lora_A (r, in) and lora_B (out, r) for every linear layer whose last name part is in
    `target_modules`, drawn from N(0, scale^2) with `seed`. B is non-zero (unlike a fresh
    PEFT adapter), so the adapter changes the model's output."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for path, (in_features, out_features) in sorted(spec.linear.items()):
        if path.rsplit(".", 1)[-1] not in target_modules:
            continue
        tensors[f"{TENSOR_PREFIX}{path}.lora_A.weight"] = (torch.randn(r, in_features, generator=generator) * scale).to(
            dtype
        )
        tensors[f"{TENSOR_PREFIX}{path}.lora_B.weight"] = (
            torch.randn(out_features, r, generator=generator) * scale
        ).to(dtype)
    return tensors


def write_adapter(
    folder: Path,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    card: dict[str, Any] | None = None,
) -> Path:
    """Write an adapter folder (config, safetensors weights, optional card) and return it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    if card is not None:
        (folder / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return folder


def write_random_adapter(
    folder: Path,
    spec: ModelSpec,
    target_modules: Sequence[str],
    r: int = 4,
    seed: int = 0,
    scale: float = 0.5,
    card: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Path:
    """A complete random LoRA adapter for the model `spec` describes, written to `folder`."""
    config = lora_config_dict(target_modules, r=r, lora_alpha=2 * r, base_model=base_model)
    return write_adapter(folder, config, random_lora_tensors(spec, target_modules, r, seed, scale), card)
