"""The adapter card (`adapter_card.json` beside an adapter's weights): one typed, versioned schema.

Written by the training script (what the adapter was trained from, how, against which knowledge-base
snapshot) and by the scorecard (its latest result under `evaluation`); read by the adapter registry
for the Adapters tab. Reading is tolerant: a card from an older version, or an uploaded card with
odd or missing fields, reads with None where it does not say, and its unknown keys are kept as
they are when the card is written back. Writes replace the file atomically.

    {"format": "industry-expert-chat/adapter-card@1", "created_at": "...", "base_model": {...},
     "method": "lora", "dataset": {"sha256": ...}, "hyperparameters": {...}, "loss": {...},
     "tokens": {...}, "training": {...}, "kb_snapshot": {"snapshot_id": ..., "created_at": ...},
     "versions": {...}, "evaluation": {"score": 0.27, "metric": "key_facts_all", "summary": ...}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.dates import parse_date
from core.files import atomic_write_json

CARD_FILE = "adapter_card.json"
CARD_FORMAT = "industry-expert-chat/adapter-card@1"
CARD_VERSION = 1
MAX_CARD_BYTES = 1024 * 1024


class CardWriteError(OSError):
    """The card could not be written; the message says why."""


def _text(value: Any, limit: int = 512) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class KBSnapshotRef:
    """The knowledge-base snapshot an adapter was trained against."""

    snapshot_id: str
    created_at: str | None = None
    source: str | None = None  # "auto" (read from the index) or "explicit" (given by the user)
    content_id: str | None = None  # digest of the documents' names and contents (`answer.ports.content_id`)

    @classmethod
    def from_json(cls, value: Any) -> KBSnapshotRef | None:
        if not isinstance(value, dict) or not _text(value.get("snapshot_id")):
            return None
        return cls(
            str(value["snapshot_id"])[:200],
            _text(value.get("created_at")),
            _text(value.get("source")),
            _text(value.get("content_id"), 64),
        )

    def to_json(self) -> dict[str, Any]:
        out = {"snapshot_id": self.snapshot_id, "created_at": self.created_at, "source": self.source}
        if self.content_id:
            out["content_id"] = self.content_id
        return out


@dataclass(frozen=True)
class Evaluation:
    """The latest scorecard result: a headline score plus every overall figure per mode."""

    score: float | None
    metric: str
    mode: str | None = None
    summary: str | None = None
    qa_file: str | None = None
    qa_sha256: str | None = None
    questions: int | None = None
    model: str | None = None
    run: str | None = None
    date: str | None = None
    recommendation: str | None = None
    modes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> Evaluation | None:
        if _number(value) is not None:  # older cards: "evaluation": 0.7
            return cls(_number(value), "score")
        if not isinstance(value, dict):
            return None
        score = next(
            (_number(value.get(k)) for k in ("score", "accuracy", "mean_score") if _number(value.get(k)) is not None),
            None,
        )
        questions = value.get("questions")
        return cls(
            score=score,
            metric=_text(value.get("metric")) or "score",
            mode=_text(value.get("mode")),
            summary=_text(value.get("summary"), 300),
            qa_file=_text(value.get("qa_file")),
            qa_sha256=_text(value.get("qa_sha256")),
            questions=questions if isinstance(questions, int) and not isinstance(questions, bool) else None,
            model=_text(value.get("model")),
            run=_text(value.get("run")),
            date=_text(value.get("date")),
            recommendation=_text(value.get("recommendation"), 2000),
            modes=_mapping(value.get("modes")),
        )

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str | None:
        if self.summary:
            return self.summary
        return None if self.score is None else f"{self.score:.3f}"


_KNOWN = (
    "format",
    "created_at",
    "base_model",
    "method",
    "dataset",
    "hyperparameters",
    "loss",
    "tokens",
    "training",
    "kb_snapshot",
    "versions",
    "evaluation",
)


@dataclass(frozen=True)
class AdapterCard:
    """A parsed card. Nested training details stay plain JSON objects; the fields the app reads are typed."""

    format: str = CARD_FORMAT
    created_at: str | None = None
    base_model: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    kb_snapshot: KBSnapshotRef | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept so a rewrite loses nothing."""

    # -- reading --------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, value: Any) -> AdapterCard:
        card = value if isinstance(value, dict) else {}
        base = card.get("base_model")
        return cls(
            format=_text(card.get("format")) or CARD_FORMAT,
            created_at=_text(card.get("created_at")),
            base_model=_mapping(base) if isinstance(base, dict) else ({"name": base[:512]} if _text(base) else {}),
            method=_text(card.get("method")),
            dataset=_mapping(card.get("dataset")),
            hyperparameters=_mapping(card.get("hyperparameters")),
            loss=_mapping(card.get("loss")),
            tokens=_mapping(card.get("tokens")),
            training=_mapping(card.get("training")),
            kb_snapshot=KBSnapshotRef.from_json(card.get("kb_snapshot")),
            versions=_mapping(card.get("versions")),
            evaluation=Evaluation.from_json(card.get("evaluation", card.get("eval", card.get("eval_score")))),
            extra={k: v for k, v in card.items() if k not in _KNOWN},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            format=self.format,
            created_at=self.created_at,
            base_model=self.base_model,
            method=self.method,
            dataset=self.dataset,
            hyperparameters=self.hyperparameters,
            loss=self.loss,
            tokens=self.tokens,
            training=self.training,
            kb_snapshot=self.kb_snapshot.to_json() if self.kb_snapshot else None,
            versions=self.versions,
            evaluation=self.evaluation.to_json() if self.evaluation else None,
        )
        return out

    # -- what the app shows ---------------------------------------------------------------------------
    @property
    def base_model_name(self) -> str | None:
        b = self.base_model
        return _text(b.get("hub_id")) or _text(b.get("name")) or _text(b.get("setting"))

    @property
    def data_sha256(self) -> str | None:
        return _text(self.dataset.get("sha256")) or _text(self.extra.get("dataset_sha256"))

    @property
    def train_loss(self) -> float | None:
        return _number(self.loss.get("train_final", self.extra.get("train_loss")))

    @property
    def val_loss(self) -> float | None:
        return _number(self.loss.get("validation_final", self.extra.get("val_loss")))

    @property
    def eval_score(self) -> float | None:
        return self.evaluation.score if self.evaluation else None

    @property
    def eval_summary(self) -> str | None:
        return self.evaluation.describe() if self.evaluation else None


def read_card(folder: Path) -> tuple[AdapterCard | None, str | None]:
    """(card, problem): the parsed card; None and None when there is none; None and why when it is
    unreadable (a link, too large, not JSON, not an object)."""
    path = Path(folder) / CARD_FILE
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return None, f"{CARD_FILE} is not a small regular file"
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"{CARD_FILE} is unreadable ({type(exc).__name__})"
    if not isinstance(value, dict):
        return None, f"{CARD_FILE} is not a JSON object"
    return AdapterCard.from_json(value), None


def write_card(folder: Path, card: AdapterCard) -> Path:
    """Write the card into `folder` atomically. Raises CardWriteError."""
    try:
        return atomic_write_json(Path(folder) / CARD_FILE, card.to_json())
    except OSError as exc:
        raise CardWriteError(f"The adapter card in {folder} could not be written ({exc.strerror or exc}).") from exc


def record_evaluation(folder: Path, evaluation: Evaluation) -> Path:
    """Set the card's evaluation (the latest scorecard result), keeping everything else. Raises CardWriteError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CardWriteError(f"The adapter folder {folder} does not exist.")
    card, _ = read_card(folder)
    card = card or AdapterCard()
    return write_card(folder, replace(card, evaluation=evaluation))


def staleness_note(
    trained_on: str | None,
    trained_on_date: str | None,
    live_snapshot: str | None,
    trained_content: str | None = None,
    live_content: str | None = None,
) -> str | None:
    """One sentence when an adapter was trained against other documents than the live index holds.

    When both sides know the documents' content id, stale means the documents differ (an index rebuilt
    from the same files is not stale). Otherwise it means the snapshot ids differ (every add, delete or
    re-index makes a new id; comparing dates instead would miss a change made within the same second).
    None when the card names no snapshot, there is no live index, or they match.
    """
    if not trained_on or not live_snapshot:
        return None
    if trained_content and live_content:
        if trained_content == live_content:
            return None
    elif trained_on == live_snapshot:
        return None
    trained = parse_date(trained_on_date)
    if trained is None:
        return (
            f"This adapter was trained against an earlier knowledge base (snapshot {trained_on[:40]}); "
            "the documents have changed since, so its answers may be stale."
        )
    return (
        f"This adapter was trained against the knowledge base of {trained.date().isoformat()}; "
        "the documents have changed since, so its answers may be stale."
    )
