"""GGUF files for the llama.cpp engine, written in pure Python with the `gguf` package.

- `convert_lora(handle, base_gguf, out)`: a checked PEFT LoRA adapter (the format that is trained,
  uploaded, stored and exchanged) as a GGUF LoRA that llama.cpp applies to `base_gguf`. The q/k LoRA B
  rows of Llama-style models are permuted the way llama.cpp's converter permutes the base q/k weights
  (llama.cpp rotates interleaved pairs where transformers rotates halves); Phi-3's fused `qkv_proj` and
  `gate_up_proj` map onto `attn_qkv` and `ffn_up` as they are. rsLoRA's alpha/sqrt(r) scale is written as
  an alpha that llama.cpp's alpha/r turns into the same number.
- `write_model(model, out, tokenizer)`: a transformers Llama or Phi-3 model and its byte-level BPE
  tokenizer as an F32 GGUF, so tests can check llama.cpp against transformers on a tiny model.

`GgufArch.read(path)` holds what a conversion needs to know about the base GGUF.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.spec import TENSOR_PREFIX, AdapterHandle

SUPPORTED = ("llama", "phi3")

# transformers module path inside a decoder block -> llama.cpp tensor name
_BLOCK_LINEAR = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.qkv_proj": "attn_qkv",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.gate_up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_BLOCK_OTHER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


class GgufError(ValueError):
    """A model or adapter this converter cannot write; the message is one sentence."""


@dataclass(frozen=True)
class GgufArch:
    """What a conversion needs from the base GGUF: its architecture and attention head counts."""

    arch: str
    n_head: int
    n_head_kv: int

    @classmethod
    def from_config(cls, config: Any) -> GgufArch | None:
        """What llama.cpp calls a transformers model with this config (None: an architecture not supported)."""
        arch = {"llama": "llama", "phi3": "phi3"}.get(config.model_type)
        if arch is None:
            return None
        heads = int(config.num_attention_heads)
        return cls(arch, heads, int(getattr(config, "num_key_value_heads", None) or heads))

    @classmethod
    def read(cls, path: str | os.PathLike) -> GgufArch:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        arch = str(reader.fields["general.architecture"].contents())
        heads = int(reader.fields[f"{arch}.attention.head_count"].contents())
        kv = reader.fields.get(f"{arch}.attention.head_count_kv")
        return cls(arch, heads, int(kv.contents()) if kv is not None else heads)


def tensor_name(module: str) -> str:
    """The llama.cpp tensor (without `.weight`) for a transformers linear layer path."""
    if module == "lm_head":
        return "output"
    match = _LAYER.match(module)
    if match and match.group(2) in _BLOCK_LINEAR:
        return f"blk.{match.group(1)}.{_BLOCK_LINEAR[match.group(2)]}"
    raise GgufError(f"llama.cpp has no LoRA target for the layer {module!r}.")


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: within each head, the two rotary halves interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rows_for(module: str, w: np.ndarray, arch: GgufArch) -> np.ndarray:
    if arch.arch == "llama":
        if module.endswith("self_attn.q_proj"):
            return permute_rows(w, arch.n_head)
        if module.endswith("self_attn.k_proj"):
            return permute_rows(w, arch.n_head_kv)
    return w


def lora_digest(handle: AdapterHandle, base_gguf: str | os.PathLike) -> str:
    """Names the converted file: the adapter's weights and scale, and the base GGUF it applies to."""
    h = hashlib.sha256()
    with open(handle.weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    lora = handle.lora
    h.update(f"|{lora.r}|{lora.lora_alpha}|{lora.use_rslora}|{sorted(lora.modules)}".encode())
    stat = os.stat(base_gguf)
    h.update(f"|{Path(base_gguf).name}|{stat.st_size}".encode())
    return h.hexdigest()[:24]


def convert_lora(
    handle: AdapterHandle,
    tensors: Mapping[str, Any],
    base_gguf: str | os.PathLike,
    out: str | os.PathLike,
    arch: GgufArch | None = None,
) -> Path:
    """Write the adapter's checked `tensors` (PEFT names, torch or numpy) as a GGUF LoRA for `base_gguf`.

    Written beside `out` and renamed into place, so a crash never leaves a half-written file that a
    later start would load. Raises GgufError (one sentence) for an architecture or layer llama.cpp
    cannot take. `arch`: the base's facts when the caller knows them (reading them from the file parses its
    whole vocabulary, about a second)."""
    import gguf

    arch = arch or GgufArch.read(base_gguf)
    if arch.arch not in SUPPORTED:
        raise GgufError(f"Adapters for {arch.arch!r} GGUF models are not supported (only {', '.join(SUPPORTED)}).")
    lora = handle.lora
    alpha = float(lora.lora_alpha) * (math.sqrt(lora.r) if lora.use_rslora else 1.0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(staging), arch.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for module in sorted(lora.modules):
        a = _as_numpy(tensors[f"{TENSOR_PREFIX}{module}.lora_A.weight"])
        b = _rows_for(module, _as_numpy(tensors[f"{TENSOR_PREFIX}{module}.lora_B.weight"]), arch)
        name = tensor_name(module)
        writer.add_tensor(f"{name}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{name}.weight.lora_b", np.ascontiguousarray(b))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return out


def _as_numpy(tensor: Any) -> np.ndarray:
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().to("cpu").float().numpy()
    return np.asarray(tensor, dtype=np.float32)


# -- whole models (tests and tools) -------------------------------------------------------------------
def write_model(model: Any, out: str | os.PathLike, tokenizer: Any) -> Path:
    """Write a transformers Llama or Phi-3 causal LM and its byte-level BPE tokenizer as an F32 GGUF, for
    parity tests on tiny models built from a config."""
    import gguf

    config = model.config
    arch_info = GgufArch.from_config(config)
    if arch_info is None:
        raise GgufError(f"Writing {config.model_type!r} models as GGUF is not supported.")
    arch, n_head, n_kv = arch_info.arch, arch_info.n_head, arch_info.n_head_kv
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name("test model")  # not "phi3": llama.cpp then expects the real Phi-3 vocabulary (</s>, <unk>)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    writer.add_rope_freq_base(float(theta))
    writer.add_rope_dimension_count(int(head_dim * float(getattr(config, "partial_rotary_factor", 1.0) or 1.0)))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _write_tokenizer(writer, tokenizer, config.vocab_size)

    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for key, value in state.items():
        if not key.endswith(".weight"):
            continue
        module = key[: -len(".weight")]
        if module == "model.embed_tokens":
            name = "token_embd"
        elif module == "model.norm":
            name = "output_norm"
        elif module == "lm_head":
            if tied:
                continue
            name = "output"
        else:
            match = _LAYER.match(module)
            if match and match.group(2) in _BLOCK_OTHER:
                name = f"blk.{match.group(1)}.{_BLOCK_OTHER[match.group(2)]}"
            else:
                name = tensor_name(module)
                value = _rows_for(module, value, arch_info)
        writer.add_tensor(f"{name}.weight", np.ascontiguousarray(value, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)


def _write_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    """A transformers byte-level BPE tokenizer (GPT-2 style) as llama.cpp's `gpt2` tokenizer fields."""
    import json

    vocab = tokenizer.get_vocab()
    if len(vocab) != vocab_size:
        raise GgufError(f"The tokenizer has {len(vocab)} tokens; the model has {vocab_size}.")
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise GgufError("Only byte-level BPE tokenizers can be written as GGUF here.")
    tokens = [""] * vocab_size
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.all_special_ids)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in special else 1 for i in range(vocab_size)])
    writer.add_token_merges(merges)
    if tokenizer.eos_token_id is not None:
        writer.add_eos_token_id(tokenizer.eos_token_id)
        bos = tokenizer.bos_token_id
        writer.add_bos_token_id(bos if bos is not None else tokenizer.eos_token_id)
    writer.add_add_bos_token(False)
