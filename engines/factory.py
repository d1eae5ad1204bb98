"""Which engine generates the tokens, by one setting (`Settings.engine`), and the fallback when it cannot.

- `transformers`: `engines.transformers_engine.TransformersEngine`, `generate` on the loaded model (the GPU path,
  Phi-3 in bf16 or nf4, and the fallback).
- `llamacpp`: `engines.llamacpp.LlamaCppEngine` over the model's GGUF file (the CPU default for the embedded
  model): about 4x the tokens per second here, and concurrent answers batched per adapter. The process then
  holds no torch copy of the weights: the model is loaded as a skeleton (tokenizer, layer names and shapes).
- `openai`: `engines.openai_client.OpenAIEngine`, a client of an OpenAI-compatible server (vLLM with
  `--enable-lora`) at `engine_url`, when one machine is not enough.
- `auto`: llama.cpp for the embedded GGUF on the CPU, else transformers.

Before the app serves on llama.cpp, `engines.probe` runs the real model in a child process (cached per
library build and CPU). When llama.cpp is wanted but cannot run (not installed, its library fails to load or
crashes on this CPU, the model has no GGUF) the app loads the torch weights, answers with transformers, and
says why in one sentence on the status line.
"""

from __future__ import annotations

import logging
import os

from core.layout import DataLayout
from core.settings import Settings
from engines.base import Engine
from engines.loading import EMBEDDED_MODEL, LoadedModel, Progress, load_model, pick_device, resolve_model_name
from engines.transformers_engine import TransformersEngine

log = logging.getLogger(__name__)


def default_threads() -> int:
    """The most llama.cpp threads when the setting says 0: every core this process may use, up to 8. Each
    step then runs on 1 or that many, whichever decodes faster at the moment (`engines.llamacpp.ThreadTuner`):
    on 2 cores, 2 threads decode 1.4x faster than one on an idle machine and 3.6x slower than one beside a
    busy process (bench/bench_busy.py)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _embedded_on_cpu(settings: Settings) -> bool:
    """Whether the settings load the embedded GGUF model on the CPU (what llama.cpp runs in this process)."""
    try:
        device = pick_device(settings.model.device)
    except Exception:  # a wrong device setting is load_model's to report
        return False
    return device.type == "cpu" and resolve_model_name(settings.model.model, device) == EMBEDDED_MODEL


def start_engine(settings: Settings, progress: Progress | None = None) -> tuple[Engine, str | None]:
    """Load the model and make the engine the settings pick (the app's start-up): llama.cpp over the embedded
    GGUF after its child-process check, with no torch weights loaded; else the model's weights and
    transformers. Returns the engine and a one-sentence warning when it had to fall back. Raises
    ModelLoadError (one sentence) when no model can be loaded at all."""
    if settings.engine.engine in ("auto", "llamacpp") and _embedded_on_cpu(settings):
        skeleton = load_model(settings, progress, weights=False)
        try:
            return llamacpp_engine(skeleton, settings, progress), None
        except _Unavailable as exc:
            warning = str(exc)
        if progress is not None:
            progress(0.8, "llama.cpp cannot run here: loading the weights for transformers")
        loaded = load_model(settings, progress)
        return TransformersEngine(loaded, **_batched(settings)), warning
    loaded = load_model(settings, progress)
    return make_engine(loaded, settings, progress)


def make_engine(loaded: LoadedModel, settings: Settings, progress: Progress | None = None) -> tuple[Engine, str | None]:
    """The engine the settings pick over an already loaded model, and a one-sentence warning when it had to
    fall back to transformers."""
    if settings.engine.engine == "openai":  # no fallback: the operator asked for a server, so its failure is an error
        from engines.openai_client import OpenAIEngine

        url, key = settings.engine.engine_url, settings.engine.engine_api_key or None
        return OpenAIEngine(loaded, url, settings.engine.engine_model or None, key), None
    wanted = settings.engine.engine == "llamacpp" or (
        settings.engine.engine == "auto" and loaded.gguf_path is not None and loaded.device.type == "cpu"
    )
    if not wanted:
        return TransformersEngine(loaded, **_batched(settings)), None
    try:
        return llamacpp_engine(loaded, settings, progress), None
    except _Unavailable as exc:
        return TransformersEngine(loaded, **_batched(settings)), str(exc)


class _Unavailable(RuntimeError):
    """llama.cpp will not serve; the message is the status line's sentence."""


def llamacpp_engine(loaded: LoadedModel, settings: Settings, progress: Progress | None = None) -> Engine:
    """The llama.cpp engine over `loaded`'s GGUF, once the child-process check passed. Raises _Unavailable with
    the status line's sentence."""
    from engines.llamacpp_lib import LlamaCppUnavailable, requantized
    from engines.probe import check_engine, fallback_sentence

    if loaded.gguf_path is None:
        raise _Unavailable(
            "the llama.cpp engine runs GGUF models only (the embedded one); answering with transformers."
        )
    if not loaded.gguf_path.is_file():
        raise _Unavailable(f"llama.cpp (the model file {loaded.gguf_path} is missing); answering with transformers.")
    cache = DataLayout(settings.data_dir).model_cache
    threads = settings.engine.engine_threads or default_threads()
    if progress is not None:
        progress(0.7, "Checking llama.cpp on this CPU (once per library build)")
    verdict = check_engine(loaded, loaded.gguf_path, settings.engine.engine_gguf, cache, threads)
    if not verdict.ok:
        log.warning("llama.cpp will not serve: %s", verdict.reason)
        raise _Unavailable(fallback_sentence(verdict))
    try:
        from engines.llamacpp import LlamaCppEngine

        shipped = settings.engine.engine_gguf == "shipped"
        gguf = loaded.gguf_path if shipped else requantized(loaded.gguf_path, cache, settings.engine.engine_gguf)
        engine = LlamaCppEngine(
            loaded,
            gguf,
            cache / "gguf-lora",
            threads=threads,
            sequences=settings.engine.engine_batch,
            adaptive_threads=not settings.engine.engine_threads,
            **_common(settings),
        )
    except (LlamaCppUnavailable, OSError) as exc:
        log.warning("llama.cpp engine unavailable: %s", exc)
        raise _Unavailable(f"llama.cpp ({exc}); answering with transformers, about 4x slower.") from None
    if not shipped:
        engine.label = f"{loaded.gguf_path.name} re-encoded as {settings.engine.engine_gguf.upper()}"
    return engine


def _common(settings: Settings) -> dict:
    return dict(max_resident_adapters=settings.engine.max_resident_adapters)


def _batched(settings: Settings) -> dict:
    return dict(_common(settings), batch=settings.engine.engine_batch)
