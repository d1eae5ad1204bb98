"""The adapter card file (`adapter_card.json`) beside an adapter's weights: updating its evaluation.

The training script writes the card; the scorecard adds its latest result under "evaluation"
(read back by the adapter registry for the Adapters tab's eval column). Updates replace the file
atomically, so a reader sees the old card or the new one, never a mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.files import atomic_write_json

CARD_FILE = "adapter_card.json"
MAX_CARD_BYTES = 1024 * 1024
EVALUATION_KEY = "evaluation"


class CardWriteError(OSError):
    """The card could not be updated; the message says why."""


def read_card_dict(folder: Path) -> dict[str, Any]:
    """The card as a dict; an absent, oversized or unreadable card reads as {}."""
    path = Path(folder) / CARD_FILE
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return {}
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def record_evaluation(folder: Path, evaluation: dict[str, Any]) -> Path:
    """Set the card's "evaluation" block (the latest scorecard result), keeping everything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CardWriteError(f"The adapter folder {folder} does not exist.")
    card = read_card_dict(folder)
    card[EVALUATION_KEY] = evaluation
    try:
        return atomic_write_json(folder / CARD_FILE, card)
    except OSError as exc:
        raise CardWriteError(f"The adapter card in {folder} could not be written ({exc.strerror or exc}).") from exc
