"""What the answer pipeline needs from a retriever, without importing `rag/`.

`rag/` implements `Retriever`; the app hands it to the pipeline. Keeping the contract here
keeps the import direction one way (app -> core, rag; rag -> core) and lets the FAISS
store be swapped for a distributed one without touching the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk and where it came from."""

    text: str
    source: str  # file name as the user uploaded it, e.g. "warranty_policy.md"
    location: str  # human-readable place in the file: "page 3", "section Warranty > Claims", "lines 40-58"
    score: float  # fused relevance score; higher is better
    doc_id: str
    chunk_id: str


class Retriever(Protocol):
    def search(self, query: str, top_k: int | None = None) -> list[Passage]:
        """The most relevant passages for `query`, best first; empty when nothing is relevant."""
        ...

    @property
    def snapshot_id(self) -> str:
        """Identifies the current index contents (changes on every add or delete)."""
        ...


def read_index_manifest(data_dir: Path, snapshot: str | None = None) -> dict[str, Any] | None:
    """The manifest of the document index under `data_dir`, read as plain JSON (no `rag` import).

    The index writes `<data_dir>/index/CURRENT`, one line naming the current snapshot folder
    relative to `index/` (e.g. `snapshots/<id>`), and that folder's `manifest.json` holds at least
    `snapshot_id` and `created_at`. With `snapshot` given, reads `index/snapshots/<snapshot>/`
    instead. None when there is no index, the pointer leaves `index/`, or the manifest is
    unreadable or has no `snapshot_id`. Never raises.
    """
    index = Path(data_dir) / "index"
    try:
        pointer = f"snapshots/{snapshot}" if snapshot else (index / "CURRENT").read_text(encoding="utf-8").strip()
        folder = (index / pointer).resolve()
        if not pointer or not folder.is_relative_to(index.resolve()) or folder == index.resolve():
            return None
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("snapshot_id"):
        return None
    return manifest
