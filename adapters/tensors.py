"""The one rule an adapter's tensors must pass, at upload (from the safetensors header, `adapters.validate`)
and again at load (on the tensors actually read, `engines.residency` and the GGUF converter): every tensor a
LoRA weight of a targeted layer, of the shape the live model needs, in F32, F16 or BF16, none missing; finite
values and an update in proportion to the layer it changes. torch is imported inside the functions that need it,
so the catalog stays free of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from adapters.spec import TENSOR_PREFIX, AdapterHandle, LoraSpec, ModelSpec
from core.errors import AdapterUnusable

FLOAT_NAMES = ("F32", "F16", "BF16")


def _float_dtypes() -> dict[Any, str]:
    import torch

    return {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def tensor_problem(
    found: Mapping[str, tuple[tuple[int, ...], str]], expected: Mapping[str, tuple[int, int]]
) -> str | None:
    """The first thing wrong with the tensors `found` (name -> (shape, dtype name)) against the ones a complete
    adapter holds (`LoraSpec.expected_tensors`), in one sentence; None when they match."""
    for name, (shape, dtype) in found.items():
        if name not in expected:
            return (
                f"The weights hold the tensor {name[:120]!r}, "
                "which is not a LoRA weight of a targeted layer of the live model."
            )
        if tuple(shape) != expected[name]:
            return f"Tensor {name!r} has shape {list(shape)}, but the live model needs {list(expected[name])}."
        if dtype not in FLOAT_NAMES:
            return f"Tensor {name!r} has dtype {dtype}; only F32, F16 and BF16 are accepted."
    missing = [name for name in expected if name not in found]
    if missing:
        return f"The weights have no tensor {missing[0]!r} ({len(missing)} missing), so they do not fit the live model."
    return None


def load_weights(handle: AdapterHandle) -> dict[str, Any]:
    """Read a safetensors file into new CPU tensors (no pickle, no mmap), refusing one over the limit.

    The file is read into memory and parsed with `safetensors.torch.load`: `load_file` and
    `safe_open(...).get_tensor` keep ~9 KB of RSS per call alive in safetensors 0.8 (its issue #369),
    which 200 load/remove cycles turned into a visible leak."""
    import torch
    from safetensors.torch import load

    try:
        with handle.weights.open("rb") as f:
            data = f.read(handle.max_bytes + 1)
    except OSError as exc:
        raise AdapterUnusable(f"The weights of {handle.name!r} could not be read ({exc.strerror or exc}).") from None
    if len(data) > handle.max_bytes:
        raise AdapterUnusable(f"The weights of {handle.name!r} grew past the size limit; refused.")
    try:
        with torch.inference_mode(False):  # plain tensors even if a caller entered inference_mode first
            return load(data)
    except Exception as exc:  # safetensors' own error types
        raise AdapterUnusable(f"The weights of {handle.name!r} could not be read ({str(exc)[:80]}).") from None


def check_tensors(tensors: Mapping[str, Any], lora: LoraSpec, spec: ModelSpec) -> None:
    """The decisive check on the tensors actually loaded (before PEFT or the GGUF converter sees them): the
    upload rule (`tensor_problem`) on their names, shapes and dtypes, then finite values."""
    import torch

    found = {
        name: (tuple(t.shape), _float_dtypes().get(t.dtype, str(t.dtype).removeprefix("torch.")))
        for name, t in tensors.items()
    }
    problem = tensor_problem(found, lora.expected_tensors(spec))
    if problem:
        raise AdapterUnusable(problem)
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise AdapterUnusable(f"Tensor {name!r} holds NaN or infinite values.")


def check_update_sizes(
    tensors: Mapping[str, Any], lora: LoraSpec, base_norms: Mapping[str, float], max_ratio: float
) -> None:
    """Refuse an adapter whose update to some layer is out of proportion to the layer: |scale * B @ A| over
    |W| (Frobenius) above `max_ratio`. Trained adapters stay near 0.06 here; weights multiplied by 50 (or by
    1e30, which overflows to infinity) give gibberish or empty answers. The refusal names the layer."""
    import math

    import torch

    scale = lora.lora_alpha / (math.sqrt(lora.r) if lora.use_rslora else lora.r)
    for path in lora.modules:
        base = base_norms.get(path)
        if not base:
            continue
        a = tensors[f"{TENSOR_PREFIX}{path}.lora_A.weight"].float()
        b = tensors[f"{TENSOR_PREFIX}{path}.lora_B.weight"].float()
        ratio = float(torch.linalg.matrix_norm(b @ a)) * scale / base
        if not math.isfinite(ratio) or ratio > max_ratio:
            size = "an infinite" if not math.isfinite(ratio) else f"{ratio:.3g}x the"
            raise AdapterUnusable(
                f"Tensor {TENSOR_PREFIX}{path}.lora_B.weight makes {size} change of the layer it adapts "
                f"(at most {max_ratio:g}x is accepted); its weights look scaled or corrupted."
            )


def weights_checker(
    spec: ModelSpec, base_norms: Callable[[], Mapping[str, float]]
) -> Callable[[AdapterHandle, float], None]:
    """The upload-time check of an adapter's numbers (`AdapterCatalog(check_weights=...)`): the tensors read and
    checked (`check_tensors`), and no layer's update out of proportion to the layer. `base_norms` gives each
    linear layer's weight norm (`engines.loading.base_norms`), computed on first use."""

    def check_weights(adapter: AdapterHandle, max_update: float) -> None:
        tensors = load_weights(adapter)
        check_tensors(tensors, adapter.lora, spec)
        check_update_sizes(tensors, adapter.lora, base_norms(), max_update)

    return check_weights
