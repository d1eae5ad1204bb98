"""Which engine generates the tokens, by one setting (`Settings.engine`).

- `transformers`: `core.generation.Engine`, `generate` on the loaded model (the GPU path, Phi-3 in bf16 or
  nf4, and the fallback).
- `llamacpp`: `core.llamacpp.LlamaCppEngine` over the model's GGUF file (the CPU default for the embedded
  model): about 6x the tokens per second here, and concurrent answers batched per adapter.
- `openai`: `core.openai_engine.OpenAIEngine`, a client of an OpenAI-compatible server (vLLM with
  `--enable-lora`) at `engine_url`, when one machine is not enough.
- `auto`: llama.cpp when the model came from a GGUF and runs on the CPU, else transformers.

When llama.cpp is wanted but cannot run (not installed, its library fails to load, the model has no GGUF)
the app answers with transformers and says so in one sentence on the status line.
"""

from __future__ import annotations

import logging

from core.generation import Engine
from core.layout import DataLayout
from core.models import LoadedModel
from core.settings import Settings

log = logging.getLogger(__name__)


def make_engine(loaded: LoadedModel, settings: Settings) -> tuple[Engine, str | None]:
    """The engine the settings pick, and a one-sentence warning when it had to fall back to transformers."""
    common = dict(max_message_chars=settings.max_message_chars, max_resident_adapters=settings.max_resident_adapters)
    batched = dict(common, batch=settings.engine_batch)
    if settings.engine == "openai":  # no fallback: the operator asked for a server, so its failure is an error
        from core.openai_engine import OpenAIEngine

        url, key = settings.engine_url, settings.engine_api_key or None
        return OpenAIEngine(loaded, url, settings.engine_model or None, key, **common), None
    wanted = settings.engine == "llamacpp" or (
        settings.engine == "auto" and loaded.gguf_path is not None and loaded.device.type == "cpu"
    )
    if not wanted:
        return Engine(loaded, **batched), None
    if loaded.gguf_path is None:
        return Engine(loaded, **batched), (
            "the llama.cpp engine runs GGUF models only (the embedded one); answering with transformers."
        )
    from core.llamacpp import LlamaCppEngine, LlamaCppUnavailable, requantized

    cache = DataLayout(settings.data_dir).model_cache
    try:
        gguf = loaded.gguf_path if settings.engine_gguf == "shipped" else requantized(loaded.gguf_path, cache, "q8_0")
        engine = LlamaCppEngine(
            loaded,
            gguf,
            cache / "gguf-lora",
            threads=settings.engine_threads or None,
            sequences=settings.engine_batch,
            **common,
        )
    except (LlamaCppUnavailable, OSError) as exc:
        log.warning("llama.cpp engine unavailable: %s", exc)
        return Engine(loaded, **batched), f"llama.cpp ({exc}); answering with transformers, about 6x slower."
    if gguf != loaded.gguf_path:
        engine.label = f"{loaded.gguf_path.name} re-encoded as Q8_0"
    return engine, None
