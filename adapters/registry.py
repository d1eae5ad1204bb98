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

from adapters.card import read_card, summarize_card
from adapters.errors import AdapterRejected
from adapters.spec import ModelSpec, loosely_same_model
from adapters.store import UPLOADED, AdapterStore, StoreEntry, is_plain_name, owner_id
from adapters.validate import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, check_adapter_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterInfo:
    """One usable adapter and its card. `key` is what `Engine.stream(adapter=...)` takes."""

    key: str
    name: str
    source: str
    """'demo', 'trained', 'uploaded' or 'published'."""
    path: Path
    owner: str | None
    """Digest of the uploading session (uploads only)."""
    base_model: str | None
    rank: int
    lora_alpha: float
    target_modules: tuple[str, ...]
    data_sha256: str | None
    created_at: str | None
    eval_score: float | None
    eval_summary: str | None
    kb_snapshot: dict[str, Any] | None
    train_loss: float | None
    val_loss: float | None
    size_bytes: int
    notes: tuple[str, ...] = ()
    card: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """A short display label, e.g. 'support-tone (trained, r=16)'."""
        return f"{self.name} ({self.source}, r={self.rank})"


@dataclass(frozen=True)
class SkippedAdapter:
    """A folder in the store that is not offered, and why (one sentence)."""

    key: str
    name: str
    source: str
    owner: str | None
    path: Path
    reason: str


def visible_to(item: AdapterInfo | SkippedAdapter | StoreEntry, session: str | None, publish_uploads: bool) -> bool:
    """Whether a session may see (and use) an adapter: uploads only by their owner, unless published."""
    if item.source != UPLOADED or publish_uploads:
        return True
    return bool(session) and item.owner == owner_id(session)


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
        result = self._check(entry)
        if isinstance(result, SkippedAdapter):
            log.warning("adapter %s skipped: %s", entry.key, result.reason)
        with self._lock:
            self._cache[entry.key] = (signature, result)
        return result

    def _check(self, entry: StoreEntry) -> AdapterInfo | SkippedAdapter:
        if not is_plain_name(entry.name):
            return _skip(entry, "Its folder name has characters other than letters, digits, '-', '_' and '.'.")
        try:
            checked = check_adapter_folder(entry.path, self.spec, self.max_rank, self.max_bytes)
        except AdapterRejected as exc:
            return _skip(entry, str(exc))
        except OSError as exc:
            return _skip(entry, f"Its files could not be read ({type(exc).__name__}: {exc.strerror or exc}).")
        card, card_problem = read_card(entry.path)
        summary = summarize_card(card)
        notes: list[str] = []
        if card_problem:
            notes.append(f"Its card is ignored: {card_problem}.")
        claims = [c for c in (checked.config.base_model, summary.base_model) if c]
        if claims and not any(loosely_same_model(c, self.spec) for c in claims):
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
            base_model=summary.base_model or checked.config.base_model,
            rank=checked.config.r,
            lora_alpha=checked.config.lora_alpha,
            target_modules=checked.config.target_modules,
            data_sha256=summary.data_sha256,
            created_at=summary.created_at or _mtime_iso(entry.path / WEIGHTS_FILE),
            eval_score=summary.eval_score,
            eval_summary=summary.eval_summary,
            kb_snapshot=summary.kb_snapshot,
            train_loss=summary.train_loss,
            val_loss=summary.val_loss,
            size_bytes=checked.weights_bytes,
            notes=tuple(notes),
            card=card,
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
