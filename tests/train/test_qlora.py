"""QLoRA: the base loads in 4-bit nf4 with double quantization and a LoRA step trains on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config
from train.loop import training_function
from train.modeling import add_lora, load_base

pytest.importorskip("bitsandbytes")


def test_base_loads_in_4bit_nf4_with_double_quantization(tiny_model_dir: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb

    base = load_base(str(tiny_model_dir), tmp_path, "fp32", four_bit=True, device=torch.device("cpu"))
    layer = base.model.model.layers[0].self_attn.qkv_proj
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert layer.weight.quant_state.quant_type == "nf4"
    assert layer.weight.quant_state.nested  # double quantization: the scales are quantized too
    model = add_lora(base, r=4, alpha=8, dropout=0.0, target_modules=None, gradient_checkpointing=False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_qlora_trains_steps_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    cfg = tiny_config(tiny_model_dir, tmp_path, method="qlora", max_steps=3, eval_every=0, learning_rate=1e-2)
    result = training_function(cfg)
    card = result.card
    assert card["base_model"]["quantization"] == "4-bit nf4 (double quantization)"
    assert card["method"] == "qlora" and card["training"]["steps"] == 3
    assert card["loss"]["validation_final"] < card["loss"]["validation_base"]
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: nonzero means it trained
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 16


def test_gradients_survive_a_validation_pass(tiny_model_dir: Path, tmp_path: Path) -> None:
    """bitsandbytes repacks 4-bit weights for a backward-less CPU kernel in eval mode; training must not see it."""
    base = load_base(str(tiny_model_dir), tmp_path, "fp32", four_bit=True, device=torch.device("cpu"))
    model = add_lora(base, r=4, alpha=8, dropout=0.0, target_modules=None, gradient_checkpointing=False)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)  # B = 0 would hide the gradient path through A
    ids = torch.tensor([[3, 17, 42, 99, 7, 250, 12, 5]])
    first_layer_a = model.base_model.model.model.layers[0].self_attn.qkv_proj.lora_A["default"].weight

    def grad() -> torch.Tensor:
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return first_layer_a.grad.clone()

    model.train()
    before = grad()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    model.train()
    assert torch.allclose(grad(), before, atol=1e-6)
