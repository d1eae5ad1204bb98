"""Search: a query in, cited passages out.

Embeds the query (unless the fusion is keyword-only), measures its background similarity to
everyday sentences for the relevance floor (`rag.fusion`), takes dense candidates from FAISS and
keyword candidates from BM25 in the loaded `MemoryIndex`, fuses them, and builds
`answer.ports.Passage`s. Embedding runs outside the lock; only the lookups hold `LiveIndex.lock`,
so searches proceed while a writer prepares its documents.
"""

from __future__ import annotations

import contextlib

import numpy as np

from answer.ports import Passage
from core.bm25_tokens import terms
from core.settings import RetrievalSettings
from rag.embedding import IndexEmbedder
from rag.fusion import BACKGROUND_TEXTS, Floors, fuse
from rag.memory_index import LiveIndex

MAX_QUERY_CHARS = 2000


class Searcher:
    """Searches one knowledge base's live index. Thread-safe."""

    def __init__(self, retrieval: RetrievalSettings, live: LiveIndex, embedding: IndexEmbedder, floors: Floors):
        self.retrieval = retrieval
        self.floors = floors
        self._live = live
        self._embedding = embedding
        self._background: np.ndarray | None = None  # (len(BACKGROUND_TEXTS), dim), see rag.fusion

    def search(
        self,
        query: str,
        top_k: int | None = None,
        fusion: str | None = None,
        floors: Floors | None = None,
        viewer: str | None = None,
    ) -> list[Passage]:
        """The most relevant passages for `query`, best first; empty when nothing clears the
        relevance floor, when the query is blank, or when the index is empty. `fusion` overrides
        `retrieval.fusion` ('rrf', 'dense' or 'keyword') and `floors` the relevance floor for this call.
        `viewer` (an owner tag) adds that person's private documents to the shared ones searched.
        Raises IndexMismatchError when the embedding model does not fit the index."""
        mode = fusion or self.retrieval.fusion
        query = (query or "").strip()[:MAX_QUERY_CHARS]
        index = self._live.current()
        if not query or not index.chunk_count:
            return []
        vector = self._embedding.checked(index.manifest.dim).encode([query])[0] if mode != "keyword" else None
        return self.search_with_vector(query, vector, top_k, fusion, floors, viewer)

    def search_with_vector(
        self,
        query: str,
        vector: np.ndarray | None,
        top_k: int | None = None,
        fusion: str | None = None,
        floors: Floors | None = None,
        viewer: str | None = None,
    ) -> list[Passage]:
        """`search` for a caller that has already embedded the query with the index's embedder
        (`vector` of shape (dim,), unit length; None is allowed for fusion 'keyword')."""
        mode = fusion or self.retrieval.fusion
        top_k = top_k or self.retrieval.top_k
        query = (query or "").strip()[:MAX_QUERY_CHARS]
        index = self._live.current()
        if not query or not index.chunk_count:
            return []
        background = 0.0
        if mode != "keyword":
            if vector is None:
                raise ValueError(f"fusion {mode!r} needs the query vector")
            if self._background is None:
                self._background = self._embedding.checked(index.manifest.dim).encode(list(BACKGROUND_TEXTS))
            background = float((self._background @ vector).max())
        query_terms = terms(query) if mode != "dense" else []
        # an index in memory is patched in place by writers, so it is read under the lock; the database's
        # (rag.pg_index) answers from its own transaction, and many searches may ask it at once
        with self._live.lock if index.in_memory else contextlib.nullcontext():
            index = self._live.current()  # a rebuild may have swapped it meanwhile
            if not index.chunk_count:
                return []
            r = self.retrieval
            dense, keyword = index.candidates(
                vector if mode != "keyword" else None, query_terms, r.dense_k, r.keyword_k, viewer
            )
            ranked = fuse(dense, keyword, mode, top_k, floors or self.floors.for_query(query), background)
            found = index.found([vector_id for vector_id, _ in ranked])
        return [
            Passage(c.text, c.name, c.location, float(score), c.doc_id, f"{c.doc_id}:{c.position}")
            for vector_id, score in ranked
            if (c := found.get(vector_id)) is not None
        ]

    def forget_background(self) -> None:
        """Drop the cached background vectors (after a rebuild); they are embedded again on next use."""
        self._background = None
