"""Merge a LoRA adapter into its base model and save the full model + tokenizer (safetensors).

    python -m train merge --adapter adapters/demo/smollm2-sample-kb --out data/merged/smollm2-kb

The base defaults to the one the adapter card names (`embedded`, an id or a folder), else
the adapter config's `base_model_name_or_path`. The base is loaded in full precision even
for a QLoRA adapter: merging into 4-bit weights would round the update away.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from adapters.cards import CARD_FILE
from core.errors import ModelLoadError
from train.modeling import DTYPE_NAMES, load_base
from train.output import write_atomically


class MergeError(RuntimeError):
    """The adapter cannot be merged; the message says which file or setting is the problem."""


def adapter_base(adapter_dir: Path) -> str:
    """The base model the adapter was trained on: the card's `base_model.setting`, else the PEFT config's.

    Raises MergeError when the folder has no readable adapter_config.json.
    """
    card = Path(adapter_dir) / CARD_FILE
    if card.is_file():
        try:
            setting = json.loads(card.read_text(encoding="utf-8"))["base_model"]["setting"]
            if isinstance(setting, str) and setting:
                return setting
        except (ValueError, KeyError, TypeError):
            pass  # fall back to the PEFT config
    try:
        config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{adapter_dir} has no readable adapter_config.json ({exc}).") from exc
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise MergeError(f"{adapter_dir}/adapter_config.json names no base model; pass --base.")
    return base


def merge_adapter(
    adapter_dir: Path, out_dir: Path, base: str | None = None, data_dir: Path = Path("data"), dtype: str = "fp32"
) -> Path:
    """Write base + adapter, merged, to `out_dir` (atomically); return `out_dir`.

    Raises MergeError for a missing or unreadable adapter, ModelLoadError when the base cannot
    be loaded, and ValueError from PEFT when the adapter does not fit the base.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise MergeError(f"{adapter_dir} holds no adapter_model.safetensors.")
    setting = base or adapter_base(adapter_dir)
    loaded = load_base(setting, Path(data_dir), dtype, four_bit=False, device=torch.device("cpu"))
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir))
    merged = model.merge_and_unload()  # W + (alpha / r) * B @ A, folded into each adapted layer

    def fill(folder: Path) -> None:
        merged.save_pretrained(folder, safe_serialization=True)
        loaded.tokenizer.save_pretrained(folder)
        if (adapter_dir / CARD_FILE).is_file():  # provenance travels with the merged model
            shutil.copyfile(adapter_dir / CARD_FILE, folder / CARD_FILE)

    return write_atomically(Path(out_dir), fill)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m train merge --adapter DIR --out DIR [--base ...]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m train merge", description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, required=True, help="Adapter folder (adapter_config.json + weights).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for the merged model; replaced atomically.")
    parser.add_argument(
        "--base", default=None, help="Base model ('embedded', an id or a folder); default: the one the adapter names."
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="The app's data folder (embedded cache).")
    parser.add_argument(
        "--dtype", default="fp32", choices=sorted(set(DTYPE_NAMES.values())), help="dtype of the merged weights."
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        out = merge_adapter(args.adapter, args.out, args.base, args.data_dir, args.dtype)
    except (MergeError, ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Merged model written to {out}")
    return 0
