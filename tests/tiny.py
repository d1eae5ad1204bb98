"""A tiny random Phi-3 with a real byte-level BPE tokenizer, built offline in about a second.

The tokenizer is trained on a few sentences so that text round-trips exactly (byte-level,
so Korean and Mongolian survive too) and carries Phi-3's special tokens and chat template.
"""

from __future__ import annotations

from pathlib import Path

import torch

PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Tidal turbines need blade inspections every 500 hours of operation.",
    "What is the warranty period? The warranty period is two years.",
    "Part number KX-4471 is the main bearing seal.",
    "안녕하세요. 정비 일정은 매달 첫째 주 월요일입니다.",
    "Сайн байна уу. Үйлдвэрийн хяналт өдөр бүр хийгдэнэ.",
    "Održavanje se obavlja svaki četvrtak u Splitu.",
    "こんにちは。点検は毎週行います。",
    "你好，维护每周进行一次。",
]


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


def build_tiny_phi3(folder: Path, context: int = 256, seed: int = 0) -> Path:
    """Save a tiny random Phi-3 (2 layers, 64 dims) and its tokenizer to `folder`."""
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer()
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        original_max_position_embeddings=context,
        sliding_window=None,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
