"""The adapter card the training script writes: what an adapter was trained from, how, and how well.

The schema is `adapters.cards.AdapterCard` (one typed, versioned card that training writes, the scorecard
extends with its evaluation, and the adapter registry reads). The app shows it next to the adapter and
compares its knowledge-base snapshot with the live index, so a user sees when an adapter was trained
against older documents.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from adapters.cards import AdapterCard, KBSnapshotRef
from adapters.cards import write_card as write_card_file
from rag import read_snapshot

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


def read_kb_snapshot(data_dir: Path, setting: str) -> KBSnapshotRef | None:
    """The knowledge-base snapshot to record (`rag.read_snapshot`, which loads no model).

    `setting` 'auto': the index's current snapshot; None when there is no readable index (training
    does not need one). 'none': None. Any other value is an explicit snapshot id; its `created_at` is
    read from that snapshot when the index still has it. Never raises.
    """
    if setting == "none":
        return None
    if setting == "auto":
        found = read_snapshot(data_dir)
        if found is None:
            return None
        return KBSnapshotRef(found.snapshot_id, found.created_at or None, "auto", found.content_id or None)
    found = read_snapshot(data_dir, setting) if "/" not in setting else None
    created = found.created_at if found and found.snapshot_id == setting else None
    content = found.content_id if found and found.snapshot_id == setting else None
    return KBSnapshotRef(setting, created or None, "explicit", content or None)


def build_card(
    *,
    base: dict[str, Any],
    method: str,
    dataset: dict[str, Any],
    hyperparameters: dict[str, Any],
    loss: dict[str, Any],
    tokens: dict[str, Any],
    training: dict[str, Any],
    kb_snapshot: KBSnapshotRef | None,
) -> AdapterCard:
    """The card, stamped with the date (ISO UTC) and library versions."""
    return AdapterCard(
        created_at=utc_now(),
        base_model=base,
        method=method,
        dataset=dataset,
        hyperparameters=hyperparameters,
        loss=loss,
        tokens=tokens,
        training=training,
        kb_snapshot=kb_snapshot,
        versions=library_versions(),
    )


def write_card(folder: Path, card: AdapterCard) -> Path:
    return write_card_file(folder, card)
