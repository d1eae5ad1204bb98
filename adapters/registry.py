"""The adapter registry: every adapter folder in the store, checked against the live model, with its card.

Each listing rescans the store, so an adapter the training script just wrote appears without
a restart; a folder is re-validated only when its files' mtimes or sizes change. A folder that
fails (bad JSON, missing weights, wrong shapes) is skipped with its reason logged once and kept
in `SkippedAdapter.reason` for the UI.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adapters.cards import CARD_FILE, AdapterCard, read_card
from adapters.errors import AdapterRejected
from adapters.spec import AdapterHandle, LoraSpec, ModelSpec
from adapters.store import UPLOADED, AdapterStore, StoreEntry, is_plain_name
from adapters.validate import CONFIG_FILE, WEIGHTS_FILE, check_adapter_folder
from core.identity import owner_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterInfo:
    """One usable adapter: where it is, what it adapts, and its card. `handle` is what the engine loads."""

    key: str
    name: str
    source: str
    """'demo', 'trained', 'uploaded' or 'published'."""
    path: Path
    owner: str | None
    """Digest of the uploader's identity (uploads only)."""
    lora: LoraSpec
    target_modules: tuple[str, ...]
    lora_alpha: float
    size_bytes: int
    created_at: str | None
    """The card's date, else the weights file's modification time."""
    card: AdapterCard = field(default_factory=AdapterCard, compare=False, repr=False)
    notes: tuple[str, ...] = ()
    version: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    max_bytes: int = field(default=0, compare=False, repr=False)

    @property
    def rank(self) -> int:
        return self.lora.r

    @property
    def base_model(self) -> str | None:
        return self.card.base_model_name

    @property
    def data_sha256(self) -> str | None:
        return self.card.data_sha256

    @property
    def eval_score(self) -> float | None:
        return self.card.eval_score

    @property
    def eval_summary(self) -> str | None:
        return self.card.eval_summary

    @property
    def kb_snapshot(self) -> dict[str, Any] | None:
        ref = self.card.kb_snapshot
        return ref.to_json() if ref else None

    @property
    def train_loss(self) -> float | None:
        return self.card.train_loss

    @property
    def val_loss(self) -> float | None:
        return self.card.val_loss

    @property
    def label(self) -> str:
        """A short display label, e.g. 'support-tone (trained, r=16)'."""
        return f"{self.name} ({self.source}, r={self.rank})"

    @property
    def handle(self) -> AdapterHandle:
        ref = self.card.kb_snapshot
        return AdapterHandle(
            key=self.key,
            name=self.name,
            source=self.source,
            folder=self.path,
            weights=self.path / WEIGHTS_FILE,
            lora=self.lora,
            max_bytes=self.max_bytes,
            version=self.version,
            kb_snapshot=ref.snapshot_id if ref else None,
            kb_snapshot_date=ref.created_at if ref else None,
            kb_content_id=ref.content_id if ref else None,
            label=self.label,
        )


@dataclass(frozen=True)
class SkippedAdapter:
    """A folder in the store that is not offered, and why (one sentence)."""

    key: str
    name: str
    source: str
    owner: str | None
    path: Path
    reason: str


def visible_to(item: AdapterInfo | SkippedAdapter | StoreEntry, owner: str | None, publish_uploads: bool) -> bool:
    """Whether a person (`core.identity.Identity.owner`) may see and use an adapter: uploads only by their
    owner, unless published."""
    if item.source != UPLOADED or publish_uploads:
        return True
    return bool(owner) and item.owner == owner_id(owner)


class AdapterRegistry:
    """Lists the store's adapters, validated against `spec`, cached by file mtimes."""

    def __init__(self, store: AdapterStore, spec: ModelSpec, max_rank: int, max_bytes: int):
        self.store = store
        self.spec = spec
        self.max_rank = max_rank
        self.max_bytes = max_bytes
        self._cache: dict[str, tuple[tuple, AdapterInfo | SkippedAdapter]] = {}
        self._lock = threading.Lock()

    def reset(self, spec: ModelSpec) -> None:
        """Forget every cached result (the live model changed)."""
        with self._lock:
            self.spec = spec
            self._cache.clear()

    def scan(self) -> tuple[list[AdapterInfo], list[SkippedAdapter]]:
        """All adapters in the store now: (usable, skipped). Never raises for a bad folder."""
        usable: list[AdapterInfo] = []
        skipped: list[SkippedAdapter] = []
        entries = self.store.entries()
        for entry in entries:
            result = self.lookup(entry)
            (usable if isinstance(result, AdapterInfo) else skipped).append(result)
        with self._lock:  # forget folders that are gone
            live = {e.key for e in entries}
            for key in [k for k in self._cache if k not in live]:
                del self._cache[key]
        return usable, skipped

    def lookup(self, entry: StoreEntry) -> AdapterInfo | SkippedAdapter:
        """The checked result for one folder, re-validated only when its files changed."""
        signature = _signature(entry.path)
        with self._lock:
            cached = self._cache.get(entry.key)
            if cached is not None and cached[0] == signature:
                return cached[1]
        result = self._check(entry, signature)
        if isinstance(result, SkippedAdapter):
            log.warning("adapter %s skipped: %s", entry.key, result.reason)
        with self._lock:
            self._cache[entry.key] = (signature, result)
        return result

    def _check(self, entry: StoreEntry, signature: tuple) -> AdapterInfo | SkippedAdapter:
        if not is_plain_name(entry.name):
            return _skip(entry, "Its folder name has characters other than letters, digits, '-', '_' and '.'.")
        try:
            checked = check_adapter_folder(entry.path, self.spec, self.max_rank, self.max_bytes)
        except AdapterRejected as exc:
            return _skip(entry, str(exc))
        except OSError as exc:
            return _skip(entry, f"Its files could not be read ({type(exc).__name__}: {exc.strerror or exc}).")
        card, card_problem = read_card(entry.path)
        card = card or AdapterCard()
        notes: list[str] = []
        if card_problem:
            notes.append(f"Its card is ignored: {card_problem}.")
        claims = [c for c in (checked.config.base_model, card.base_model_name) if c]
        if claims and not any(self.spec.loosely_names(c) for c in claims):
            notes.append(
                f"It says it was trained for {claims[0][:80]!r}, not the live model, "
                "but its layer shapes fit this model."
            )
        return AdapterInfo(
            key=entry.key,
            name=entry.name,
            source=entry.source,
            path=entry.path,
            owner=entry.owner,
            lora=checked.config.lora,
            target_modules=checked.config.target_modules,
            lora_alpha=checked.config.lora_alpha,
            size_bytes=checked.weights_bytes,
            created_at=card.created_at or _mtime_iso(entry.path / WEIGHTS_FILE),
            card=card,
            notes=tuple(notes),
            version=signature[1:3],  # config and weights: a new card alone does not reload the adapter
            max_bytes=self.max_bytes,
        )


def _skip(entry: StoreEntry, reason: str) -> SkippedAdapter:
    return SkippedAdapter(entry.key, entry.name, entry.source, entry.owner, entry.path, reason)


def _signature(folder: Path) -> tuple:
    """What must change for a folder to be checked again: the folder's and its files' stats."""
    parts: list[Any] = []
    for path in (folder, folder / CONFIG_FILE, folder / WEIGHTS_FILE, folder / CARD_FILE):
        try:
            st = os.stat(path)
            parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append(None)
    return tuple(parts)


def _mtime_iso(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(microsecond=0).isoformat()
    except OSError:
        return None
