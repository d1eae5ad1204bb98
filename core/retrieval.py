"""What the answer pipeline needs from a retriever, without importing `rag/`.

`rag/` implements `Retriever`; the app hands it to the pipeline. Keeping the contract here
keeps the import direction one way (app -> core, rag; rag -> core) and lets the FAISS
store be swapped for a distributed one without touching the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
