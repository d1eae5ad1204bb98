"""The adapter card: what an adapter was trained from, how, and how well (`adapter_card.json`).

The app shows it next to the adapter and compares its knowledge-base snapshot with the
live index, so a user sees when an adapter was trained against older documents.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from core.retrieval import read_index_manifest

CARD_FILE = "adapter_card.json"
CARD_FORMAT = "industry-expert-chat/adapter-card@1"
VERSIONED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors")


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def library_versions() -> dict[str, str | None]:
    """Python and the training libraries' versions (None for one that is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_kb_snapshot(data_dir: Path, setting: str) -> dict[str, Any] | None:
    """The knowledge-base snapshot to record, from the RAG index manifest (read without importing rag).

    `setting` 'auto': `<data_dir>/index/CURRENT` names the current snapshot folder relative to
    `index/` (the RAG store writes `snapshots/<id>`), whose `manifest.json` holds `snapshot_id`
    and `created_at`; None when there is no index, no CURRENT, a pointer outside the index, or
    an unreadable manifest (training does not need an index). 'none': None. Any other value is
    an explicit snapshot id; its `created_at` is read from `index/snapshots/<id>/` when that
    snapshot is there, else left None. Never raises.
    """
    if setting == "none":
        return None
    if setting == "auto":
        manifest = read_index_manifest(data_dir)
        if manifest is None:
            return None
        return {"snapshot_id": manifest["snapshot_id"], "created_at": manifest.get("created_at"), "source": "auto"}
    manifest = read_index_manifest(data_dir, setting) if "/" not in setting else None
    created = manifest.get("created_at") if manifest and manifest["snapshot_id"] == setting else None
    return {"snapshot_id": setting, "created_at": created, "source": "explicit"}


def build_card(
    *,
    base: dict[str, Any],
    method: str,
    dataset: dict[str, Any],
    hyperparameters: dict[str, Any],
    loss: dict[str, Any],
    tokens: dict[str, Any],
    training: dict[str, Any],
    kb_snapshot: dict[str, Any] | None,
) -> dict[str, Any]:
    """The card as a JSON-able dict, stamped with the date (ISO UTC) and library versions."""
    return {
        "format": CARD_FORMAT,
        "created_at": utc_now(),
        "base_model": base,
        "method": method,
        "dataset": dataset,
        "hyperparameters": hyperparameters,
        "loss": loss,
        "tokens": tokens,
        "training": training,
        "kb_snapshot": kb_snapshot,
        "versions": library_versions(),
    }


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    path = Path(folder) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
