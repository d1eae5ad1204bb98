"""Dense vectors in FAISS behind LlamaIndex's vector-store interface, with per-document add/delete.

LlamaIndex's `FaissVectorStore` numbers vectors by position and cannot delete. This subclass keeps
an `IndexIDMap2` over `IndexFlatIP`: every chunk has a stable int64 id, one document's vectors go in
or out without touching the rest, and inner product on unit vectors is cosine similarity. Swapping
FAISS for a distributed store means replacing this module only.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryResult
from llama_index.vector_stores.faiss import FaissVectorStore

VECTOR_ID_KEY = "vector_id"
"""Node metadata key holding the chunk's int64 FAISS id when nodes are added through `add`."""


class IdMappedFaissVectorStore(FaissVectorStore):
    """`FaissVectorStore` over `faiss.IndexIDMap2(faiss.IndexFlatIP(dim))`. Not thread-safe on its
    own (FAISS is not safe to search while it is being modified): the knowledge base locks it."""

    _doc_vectors: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    def __init__(self, dim: int) -> None:
        super().__init__(faiss_index=faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))
        self._doc_vectors = {}

    @property
    def dim(self) -> int:
        return int(self._faiss_index.d)

    def __len__(self) -> int:
        return int(self._faiss_index.ntotal)

    def add_vectors(self, ref_doc_id: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add one document's vectors ((n, dim) float32, unit length) under their chunk ids.
        Raises ValueError on a shape mismatch or an id that is already present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        if ref_doc_id in self._doc_vectors:
            raise ValueError(f"document {ref_doc_id} is already in the vector store")
        self._faiss_index.add_with_ids(vectors, ids)
        self._doc_vectors[ref_doc_id] = ids

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        """LlamaIndex interface: nodes carry an embedding, a source document, and `metadata["vector_id"]`."""
        by_doc: dict[str, list[BaseNode]] = {}
        for node in nodes:
            by_doc.setdefault(node.ref_doc_id or node.node_id, []).append(node)
        for ref_doc_id, doc_nodes in by_doc.items():
            ids = np.asarray([int(n.metadata[VECTOR_ID_KEY]) for n in doc_nodes], np.int64)
            vectors = np.asarray([n.get_embedding() for n in doc_nodes], np.float32)
            if ref_doc_id in self._doc_vectors:  # more chunks for a document already present
                self._faiss_index.add_with_ids(vectors, ids)
                self._doc_vectors[ref_doc_id] = np.concatenate([self._doc_vectors[ref_doc_id], ids])
            else:
                self.add_vectors(ref_doc_id, ids, vectors)
        return [str(n.metadata[VECTOR_ID_KEY]) for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every vector of one document; an unknown id does nothing."""
        ids = self._doc_vectors.pop(ref_doc_id, None)
        if ids is not None and len(ids):
            self._faiss_index.remove_ids(faiss.IDSelectorBatch(ids))

    def document_ids(self, ref_doc_id: str) -> np.ndarray:
        """The chunk ids of one document (empty when unknown)."""
        return self._doc_vectors.get(ref_doc_id, np.zeros(0, np.int64))

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` nearest chunks as (id, cosine), best first."""
        if not len(self) or k < 1:
            return []
        result = self.query(VectorStoreQuery(query_embedding=query_vector.tolist(), similarity_top_k=k))
        return [(int(i), float(s)) for i, s in zip(result.ids or [], result.similarities or [], strict=True)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """LlamaIndex interface; `k` is capped at the number of vectors (FAISS pads with -1 otherwise)."""
        capped = min(query.similarity_top_k, max(len(self), 1))
        if capped != query.similarity_top_k:
            query = VectorStoreQuery(query_embedding=query.query_embedding, similarity_top_k=capped)
        return super().query(query, **kwargs)
