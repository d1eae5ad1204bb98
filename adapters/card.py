"""The adapter card (`adapter_card.json`, written by the training script) read tolerantly, and
the staleness note that compares its knowledge-base snapshot with the live index.

The card is optional and any key may be missing or odd: every reader here returns None for
what it cannot find and never raises. The index is read as plain JSON (`<data_dir>/index/CURRENT`
names the current snapshot folder, whose `manifest.json` has `snapshot_id` and `created_at`),
so `adapters` never imports `rag`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adapters.validate import CARD_FILE, SMALL_FILE_LIMITS
from core.retrieval import read_index_manifest


@dataclass(frozen=True)
class CardSummary:
    """What the UI shows from a card; None where the card does not say."""

    base_model: str | None
    data_sha256: str | None
    created_at: str | None
    eval_score: float | None
    eval_summary: str | None
    kb_snapshot: dict[str, Any] | None
    train_loss: float | None
    val_loss: float | None


def read_card(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(card, problem): the parsed card, or None and why it was unreadable (None when absent)."""
    path = Path(folder) / CARD_FILE
    if not path.exists():
        return None, None
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > SMALL_FILE_LIMITS[CARD_FILE]:
            return None, f"{CARD_FILE} is not a small regular file"
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"{CARD_FILE} is unreadable ({type(exc).__name__})"
    if not isinstance(card, dict):
        return None, f"{CARD_FILE} is not a JSON object"
    return card, None


def summarize_card(card: dict[str, Any] | None) -> CardSummary:
    """The card's fields the UI shows, tolerating any missing or oddly typed key."""
    card = card if isinstance(card, dict) else {}
    base = card.get("base_model")
    if isinstance(base, dict):
        base = base.get("hub_id") or base.get("name") or base.get("setting")
    dataset = card.get("dataset") if isinstance(card.get("dataset"), dict) else {}
    loss = card.get("loss") if isinstance(card.get("loss"), dict) else {}
    snapshot = card.get("kb_snapshot")
    return CardSummary(
        base_model=_text(base),
        data_sha256=_text(dataset.get("sha256") or card.get("dataset_sha256")),
        created_at=_text(card.get("created_at")),
        eval_score=_eval_score(card),
        eval_summary=_eval_summary(card),
        kb_snapshot=snapshot if isinstance(snapshot, dict) else None,
        train_loss=_number(loss.get("train_final") or card.get("train_loss")),
        val_loss=_number(loss.get("validation_final") or card.get("val_loss")),
    )


def _eval_score(card: dict[str, Any]) -> float | None:
    for key in ("evaluation", "eval"):
        block = card.get(key)
        if isinstance(block, dict):
            for inner in ("score", "accuracy", "mean_score"):
                if _number(block.get(inner)) is not None:
                    return _number(block.get(inner))
        elif _number(block) is not None:
            return _number(block)
    return _number(card.get("eval_score", card.get("score")))


def _eval_summary(card: dict[str, Any]) -> str | None:
    """The scorecard's one-line summary ("key facts: Base 0.00 · RAG 0.15 … (eval_qa.jsonl, 86 q)")."""
    block = card.get("evaluation")
    if isinstance(block, dict) and isinstance(block.get("summary"), str):
        return block["summary"][:200]
    score = _eval_score(card)
    return None if score is None else f"{score:.3f}"


def current_snapshot(data_dir: Path) -> dict[str, Any] | None:
    """The live index's snapshot {snapshot_id, created_at}, or None when there is no readable index."""
    manifest = read_index_manifest(data_dir)
    if manifest is None:
        return None
    return {"snapshot_id": str(manifest["snapshot_id"]), "created_at": _text(manifest.get("created_at"))}


def staleness_note(kb_snapshot: dict[str, Any] | None, data_dir: Path) -> str | None:
    """One sentence when the adapter was trained against an older knowledge-base snapshot, else None.

    Stale means: the card names a snapshot and the live index has a different snapshot id (every
    add, delete or re-index makes a new id, so the documents changed after training; comparing
    dates instead would miss a change made within the same second). None when the card names
    no snapshot, there is no index, or the ids match. Never raises.
    """
    if not isinstance(kb_snapshot, dict) or not kb_snapshot.get("snapshot_id"):
        return None
    live = current_snapshot(data_dir)
    if live is None or str(kb_snapshot["snapshot_id"]) == live["snapshot_id"]:
        return None
    trained = _parse_date(kb_snapshot.get("created_at"))
    if trained is None:
        return (
            "This adapter was trained against an earlier knowledge base "
            f"(snapshot {str(kb_snapshot['snapshot_id'])[:40]}); "
            "the documents have changed since, so its answers may be stale."
        )
    return (
        f"This adapter was trained against the knowledge base of {trained.date().isoformat()}; "
        "the documents have changed since, so its answers may be stale."
    )


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    return value[:512] if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
