"""What the answer needs from the parts it does not own: a retriever (`rag/` implements `Retriever`) and an
adapter catalog (`adapters/` implements `AdapterResolver`).

Keeping the contracts here keeps imports one way (`rag` and `adapters` never import the service, and the
service never imports them) and lets the FAISS store be swapped for a distributed one without touching the
pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from adapters.spec import AdapterHandle


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk and where it came from."""

    text: str
    source: str  # file name as the user uploaded it, e.g. "warranty_policy.md"
    location: str  # human-readable place in the file: "page 3", "section Warranty > Claims", "lines 40-58"
    score: float  # fused relevance score; higher is better
    doc_id: str
    chunk_id: str


@dataclass(frozen=True)
class Snapshot:
    """Which version of the document index answered: `snapshot_id` changes on every add, delete or
    re-index; `content_id` only when the documents themselves differ (two indexes built from the same
    files have different snapshot ids but the same content id)."""

    snapshot_id: str
    created_at: str  # ISO 8601 UTC; "" for an index never saved
    content_id: str = ""


def content_id(documents: list[tuple[str, str]]) -> str:
    """A digest of (file name, sha256) pairs: the same documents give the same id, whatever their order."""
    import hashlib

    digest = hashlib.sha256()
    for name, sha in sorted(documents):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()[:16]


@runtime_checkable
class Retriever(Protocol):
    def search(self, query: str, top_k: int | None = None) -> list[Passage]:
        """The most relevant passages for `query`, best first; empty when nothing is relevant.
        Raises a `core.errors.UserInputError` (one sentence) when the index cannot be searched."""
        ...

    @property
    def snapshot(self) -> Snapshot:
        """The index contents searched now (read from memory, never from disk per call)."""
        ...


@runtime_checkable
class CollectionRetriever(Retriever, Protocol):
    """A retriever that keeps people's private collections beside the shared one (`rag.KnowledgeBase`)."""

    def for_owner(self, viewer: str | None) -> Retriever:
        """A retriever over the shared documents plus those of `viewer` (a `core.identity.owner_id` tag)."""
        ...


class SentenceEncoder(Protocol):
    """What a retriever may also offer: its embedding model, to match sentences to questions and answers
    (`answer.evidence`). Without it, evidence is matched on key terms alone."""

    def encode(self, texts: list[str]) -> Any:
        """Unit-length embeddings, one row per text (a numpy array)."""
        ...


@runtime_checkable
class AdapterResolver(Protocol):
    """What the service needs from the adapter catalog (implemented by `adapters.AdapterCatalog`)."""

    def resolve_handle(self, name: str, session: str | None) -> AdapterHandle:
        """The adapter `name` as `session` may use it. Raises a `core.errors.UserInputError` (one
        sentence) for an unknown name, another person's upload, or a folder that fails its checks."""
        ...
