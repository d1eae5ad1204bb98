"""Pre-flight checks of an adapter folder against the live model, before PEFT sees anything.

An adapter is `adapter_config.json` + `adapter_model.safetensors`. The config is read as
plain JSON (duplicate keys refused) and checked by `adapters.config`. The weights file is then
read header-first with `safetensors.safe_open` (never `torch.load`, never a pickle) and every
tensor must be the lora_A / lora_B of a targeted layer with the shapes that layer needs. The engine
checks the tensors it actually loads once more (`engines.residency`). No torch here: the catalog
validates from file headers. Every refusal is an `AdapterRejected` whose message is one sentence
naming the bad value.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.cards import CARD_FILE
from adapters.config import AdapterConfig, check_config, short_repr
from adapters.errors import AdapterRejected
from adapters.spec import ModelSpec
from adapters.tensors import tensor_problem

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
README_FILE = "README.md"
ADAPTER_FILES = (CONFIG_FILE, WEIGHTS_FILE)
OPTIONAL_FILES = (CARD_FILE, README_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
"""Formats that unpickle (or may) when loaded; refused by name, never opened."""

SMALL_FILE_LIMITS = {CONFIG_FILE: 64 * 1024, CARD_FILE: 1024 * 1024, README_FILE: 256 * 1024}
MAX_HEADER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class CheckedAdapter:
    """An adapter folder whose config and weights fit the live model."""

    config: AdapterConfig
    weights_bytes: int
    notes: tuple[str, ...] = field(default=())


def read_small_file(path: Path, limit: int | None = None) -> bytes:
    """Read a small regular file, refusing links, non-files and anything over its size limit."""
    limit = limit if limit is not None else SMALL_FILE_LIMITS.get(path.name, 64 * 1024)
    if path.is_symlink() or not path.is_file():
        raise AdapterRejected(f"{path.name} is not a regular file.")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise AdapterRejected(f"{path.name} is larger than the {limit // 1024} KiB allowed for it.")
    return data


def parse_json_object(data: bytes, filename: str) -> dict[str, Any]:
    """Parse `data` as one JSON object; refuse invalid JSON, duplicate keys and non-objects."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise AdapterRejected(f"{filename} gives the field {short_repr(key)} twice.")
            seen[key] = value
        return seen

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, AdapterRejected):
            raise
        raise AdapterRejected(f"{filename} is not valid JSON ({short_repr(str(exc), 80)}).") from None
    if not isinstance(value, dict):
        raise AdapterRejected(f"{filename} must hold a JSON object, not {type(value).__name__}.")
    return value


def check_weights_file(path: Path, config: AdapterConfig, spec: ModelSpec, max_bytes: int) -> int:
    """Check the tensor names, shapes and dtypes in a safetensors file from its header only.

    Raises AdapterRejected for a link, a file over `max_bytes`, an unreadable header, or any
    tensor that is not the lora_A/lora_B of a targeted layer with that layer's shapes; returns
    the file size. No tensor data is read.
    """
    if path.is_symlink() or not path.is_file():
        raise AdapterRejected(f"{WEIGHTS_FILE} is missing or not a regular file.")
    size = path.stat().st_size
    if size > max_bytes:
        raise AdapterRejected(f"{WEIGHTS_FILE} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.")
    with path.open("rb") as handle:
        head = handle.read(8)
    header = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
    if not 2 <= header <= min(MAX_HEADER_BYTES, size - 8):
        raise AdapterRejected(f"{WEIGHTS_FILE} is not a valid safetensors file (bad header length).")
    from safetensors import safe_open

    found: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with safe_open(str(path), framework="numpy") as reader:
            for name in reader.keys():
                tensor = reader.get_slice(name)
                found[name] = (tuple(tensor.get_shape()), str(tensor.get_dtype()))
    except Exception as exc:  # safetensors raises its own error types for every malformed header
        raise AdapterRejected(f"{WEIGHTS_FILE} is not a valid safetensors file ({short_repr(str(exc), 80)}).") from None
    problem = tensor_problem(found, config.lora.expected_tensors(spec))
    if problem:
        raise AdapterRejected(f"{WEIGHTS_FILE}: {problem}")
    return size


def check_adapter_folder(folder: Path, spec: ModelSpec, max_rank: int, max_bytes: int) -> CheckedAdapter:
    """Check an adapter folder's config and weights against the live model.

    Raises AdapterRejected (one sentence) when a required file is missing or any check fails.
    Other files in the folder are ignored and never opened.
    """
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.exists():
        raise AdapterRejected(f"The adapter folder has no {CONFIG_FILE}.")
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        pickled = [p.name for p in folder.iterdir() if p.name.lower().endswith(PICKLE_SUFFIXES)]
        hint = f" (only {pickled[0]}, a pickle, which is never loaded)" if pickled else ""
        raise AdapterRejected(f"The adapter folder has no {WEIGHTS_FILE}{hint}.")
    config = check_config(parse_json_object(read_small_file(config_path), CONFIG_FILE), spec, max_rank)
    size = check_weights_file(weights, config, spec, max_bytes)
    return CheckedAdapter(config=config, weights_bytes=size)


def pickle_refusal(filename: str) -> str | None:
    """The one-sentence refusal for a file name that is (or may be) a pickle, else None."""
    if filename.lower().endswith(PICKLE_SUFFIXES):
        return (
            f"{filename} is a pickle-based file, which can run code when loaded and is never opened; "
            f"upload {CONFIG_FILE} and {WEIGHTS_FILE} instead."
        )
    return None
