"""What an `adapter_config.json` may say: an allowlist of standard LoRA fields, checked against the live model.

LoRA only, rank under a cap, `target_modules` a plain list of names of the live model's linear
layers (a string would be a regular expression and is refused without ever being matched), and
nothing that imports or fetches code, adds trainable modules or changes the architecture. Any
field not on the allowlist is refused. Matching is done with plain string comparison, so a
check costs microseconds whatever the file says. Every refusal is an `AdapterRejected` whose
message is one sentence naming the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterRejected
from adapters.spec import TENSOR_PREFIX, LoraSpec, ModelSpec

MAX_TARGETS = 64
MAX_TARGET_CHARS = 128
MAX_ALPHA = 4096.0
__all__ = ["TENSOR_PREFIX", "AdapterConfig", "check_config", "short_repr"]

# Fields that must be absent, null or empty, and why (each would import or fetch code, add
# trainable modules, change the architecture, match regexes, or pick a LoRA variant not served).
_MUST_BE_EMPTY = {
    "auto_mapping": "it names a model class for PEFT to import",
    "revision": "it asks for a base model revision to be fetched from the Hub",
    "modules_to_save": "it adds trainable copies of whole modules (such as a new head)",
    "layer_replication": "it changes the architecture by duplicating layers",
    "trainable_token_indices": "it replaces rows of the embedding matrix",
    "target_parameters": "it adapts raw parameters instead of linear layers",
    "megatron_config": "it makes PEFT import Megatron code",
    "rank_pattern": "its keys are regular expressions matched against every layer name",
    "alpha_pattern": "its keys are regular expressions matched against every layer name",
    "exclude_modules": "it may be a regular expression matched against every layer name",
    "loftq_config": "LoftQ initialisation rewrites the base weights",
    "eva_config": "EVA initialisation is a variant this app does not serve",
    "corda_config": "CorDA initialisation rewrites the base weights",
    "lora_ga_config": "LoRA-GA initialisation is a variant this app does not serve",
    "velora_config": "VeLoRA is a variant this app does not serve",
    "monteclora_config": "MonteCLoRA is a variant this app does not serve",
    "arrow_config": "Arrow routing is a variant this app does not serve",
    "kasa_config": "KaSA is a variant this app does not serve",
    "alora_invocation_tokens": "activated LoRA is a variant this app does not serve",
    "use_bdlora": "BD-LoRA is a variant this app does not serve",
}
_MUST_BE_FALSE = {
    "use_dora": "DoRA adds magnitude vectors this app does not serve",
    "use_qalora": "QA-LoRA is a variant this app does not serve",
    "lora_bias": "it adds trainable biases to the base layers",
    "fan_in_fan_out": "it is for Conv1D layers, which the live model does not use",
    "ensure_weight_tying": "it ties adapter weights across modules",
}
_FREE_TEXT = ("base_model_name_or_path", "peft_version")  # recorded only: never used to load anything
_SPECIAL = (
    "peft_type",
    "task_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "layers_to_transform",
    "layers_pattern",
    "bias",
    "use_rslora",
    "inference_mode",
    "init_lora_weights",
    "megatron_core",
    "runtime_config",
    "qalora_group_size",
)
KNOWN_KEYS = frozenset(_MUST_BE_EMPTY) | frozenset(_MUST_BE_FALSE) | frozenset(_FREE_TEXT) | frozenset(_SPECIAL)


@dataclass(frozen=True)
class AdapterConfig:
    """A LoRA config that passed every check; the only config the app ever hands to PEFT."""

    r: int
    lora_alpha: float
    lora_dropout: float
    use_rslora: bool
    target_modules: tuple[str, ...]
    layers_to_transform: tuple[int, ...] | None
    layers_pattern: str | None
    base_model: str | None
    modules: tuple[str, ...]
    """The live model's linear layers this adapter adapts (resolved by plain string matching)."""

    @property
    def lora(self) -> LoraSpec:
        """What the engine loads: the checked rank, scaling and layers (the file's other fields are dropped)."""
        return LoraSpec(r=self.r, lora_alpha=self.lora_alpha, use_rslora=self.use_rslora, modules=self.modules)


def check_config(raw: Mapping[str, Any], spec: ModelSpec, max_rank: int) -> AdapterConfig:
    """Check a parsed adapter_config.json against the allowlist and the live model.

    Raises AdapterRejected naming the first bad field; cheap (no tensors, no regexes) whatever
    the values, so `r=20000` or a pathological pattern costs nothing.
    """
    for key in raw:
        if key not in KNOWN_KEYS:
            raise AdapterRejected(
                f"The adapter config has the unknown field {short_repr(key)}; only standard LoRA fields are accepted."
            )
    for key, why in _MUST_BE_EMPTY.items():
        if not _empty(raw.get(key)):
            raise AdapterRejected(f"The adapter config sets {key} to {short_repr(raw[key])}, which is refused: {why}.")
    for key, why in _MUST_BE_FALSE.items():
        if raw.get(key) not in (None, False):
            raise AdapterRejected(f"The adapter config sets {key} to {short_repr(raw[key])}, which is refused: {why}.")
    if raw.get("peft_type") != "LORA":
        raise AdapterRejected(f"Only LoRA adapters are accepted, but peft_type is {short_repr(raw.get('peft_type'))}.")
    if raw.get("task_type") not in (None, "CAUSAL_LM"):
        raise AdapterRejected(f"task_type must be CAUSAL_LM, not {short_repr(raw['task_type'])}.")
    for key in _FREE_TEXT:
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 512):
            raise AdapterRejected(f"{key} must be a short string, not {short_repr(value)}.")
    if raw.get("bias", "none") != "none":
        raise AdapterRejected(
            f"bias must be 'none' (adapters may not train base biases), not {short_repr(raw['bias'])}."
        )
    for key in ("use_rslora", "inference_mode"):
        if not isinstance(raw.get(key, False), bool):
            raise AdapterRejected(f"{key} must be true or false, not {short_repr(raw[key])}.")
    if raw.get("init_lora_weights", True) not in (True, False, "gaussian"):
        raise AdapterRejected(
            f"init_lora_weights {short_repr(raw['init_lora_weights'])} is refused: that initialisation rewrites "
            "or reads the base weights."
        )
    if raw.get("megatron_core") not in (None, "megatron.core"):
        raise AdapterRejected(f"megatron_core {short_repr(raw['megatron_core'])} names a module to import; refused.")
    runtime = raw.get("runtime_config")
    if runtime not in (None, {}) and not (
        isinstance(runtime, dict)
        and set(runtime) <= {"ephemeral_gpu_offload"}
        and runtime.get("ephemeral_gpu_offload") in (None, False)
    ):
        raise AdapterRejected(f"runtime_config {short_repr(runtime)} is refused.")
    if not isinstance(raw.get("qalora_group_size", 16), int):
        raise AdapterRejected(f"qalora_group_size must be a whole number, not {short_repr(raw['qalora_group_size'])}.")

    r = raw.get("r", 8)
    if type(r) is not int or r < 1:
        raise AdapterRejected(f"The adapter's rank r must be a positive whole number, not {short_repr(r)}.")
    if r > max_rank:
        raise AdapterRejected(f"The adapter's rank r={short_repr(r)} is above this app's limit of {max_rank}.")
    alpha = raw.get("lora_alpha", 8)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha <= MAX_ALPHA):
        raise AdapterRejected(
            f"lora_alpha must be a number above 0 and at most {MAX_ALPHA:g}, not {short_repr(alpha)}."
        )
    dropout = raw.get("lora_dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (0 <= dropout < 1):
        raise AdapterRejected(f"lora_dropout must be a number from 0 to below 1, not {short_repr(dropout)}.")

    targets = _check_targets(raw.get("target_modules"), spec)
    layers = _check_layers(raw.get("layers_to_transform"), spec)
    pattern = _check_pattern(raw.get("layers_pattern"), spec)
    modules = _select_modules(targets, layers, pattern, spec)
    if not modules:
        raise AdapterRejected(
            f"target_modules {list(targets)} with layers_to_transform {list(layers or [])} "
            "selects no layer of the live model."
        )
    return AdapterConfig(
        r=r,
        lora_alpha=float(alpha),
        lora_dropout=float(dropout),
        use_rslora=bool(raw.get("use_rslora", False)),
        target_modules=targets,
        layers_to_transform=layers,
        layers_pattern=pattern,
        base_model=raw.get("base_model_name_or_path"),
        modules=modules,
    )


def _check_targets(value: Any, spec: ModelSpec) -> tuple[str, ...]:
    have = ", ".join(spec.leaf_names())
    if isinstance(value, str):
        # PEFT would re.fullmatch a string against every module name; it is never matched here.
        raise AdapterRejected(
            f"target_modules is the single string {short_repr(value)}, which PEFT treats as a regular expression; "
            f"give a list of layer names instead (this model has: {have})."
        )
    if not isinstance(value, list) or not value or len(value) > MAX_TARGETS:
        raise AdapterRejected(
            f"target_modules must be a list of 1 to {MAX_TARGETS} layer names, not {short_repr(value)} "
            f"(this model has: {have})."
        )
    targets: list[str] = []
    for item in value:
        if not _plain_name(item):
            raise AdapterRejected(
                f"target_modules entry {short_repr(item)} is not a plain layer name (letters, digits, '_' and '.')."
            )
        linear, other = spec.matching(item)
        if other:
            raise AdapterRejected(
                f"target_modules entry {item!r} names {other[0]!r}, which is not a linear layer; only linear layers "
                "may be adapted."
            )
        if not linear:
            raise AdapterRejected(
                f"target_modules entry {item!r} names no linear layer of the live model (it has: {have})."
            )
        if item not in targets:
            targets.append(item)
    return tuple(targets)


def _check_layers(value: Any, spec: ModelSpec) -> tuple[int, ...] | None:
    if _empty(value):
        return None
    items = [value] if isinstance(value, int) else value
    n = spec.num_layers
    if (
        n is None
        or not isinstance(items, list)
        or not all(type(i) is int and 0 <= i < n for i in items)
        or len(set(items)) != len(items)
    ):
        raise AdapterRejected(
            f"layers_to_transform must be distinct layer indexes from 0 to {(n or 1) - 1}, not {short_repr(value)}."
        )
    return tuple(sorted(items))


def _check_pattern(value: Any, spec: ModelSpec) -> str | None:
    if _empty(value):
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    known = {
        parts[i - 1]
        for parts in (p.split(".") for p in spec.linear)
        for i in range(1, len(parts))
        if parts[i].isdigit()
    }
    if not isinstance(value, str) or not value.isidentifier() or not value.isascii() or value not in known:
        raise AdapterRejected(
            f"layers_pattern must name the model's layer list ({', '.join(sorted(known)) or 'none'}), "
            f"not {short_repr(value)}."
        )
    return value


def _layer_index(path: str, pattern: str | None) -> int | None:
    """The layer number PEFT reads from `path`: the first numbered part (after `pattern` when given),
    as its lazy `.*?\\.[^.]*\\.(\\d+)\\.` / `(?:^|.*?\\.){pattern}\\.(\\d+)\\.` match finds it, done by hand."""
    parts = path.split(".")
    first = 1 if pattern is not None else 2
    for i in range(first, len(parts) - 1):
        if parts[i].isdigit() and (pattern is None or parts[i - 1] == pattern):
            return int(parts[i])
    return None


def _select_modules(
    targets: tuple[str, ...], layers: tuple[int, ...] | None, pattern: str | None, spec: ModelSpec
) -> tuple[str, ...]:
    chosen = []
    for path in spec.linear:
        if path in targets:  # a full path is taken as is, as PEFT does
            chosen.append(path)
        elif any(path.endswith("." + t) for t in targets):
            if layers is None or _layer_index(path, pattern) in layers:
                chosen.append(path)
    return tuple(chosen)


def _plain_name(value: Any) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TARGET_CHARS or not value.isascii():
        return False
    if value.startswith(".") or value.endswith(".") or ".." in value:
        return False
    return all(c.isalnum() or c in "_." for c in value)


def _empty(value: Any) -> bool:
    return value is None or value is False or value == "" or (isinstance(value, (list, dict)) and not value)


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
