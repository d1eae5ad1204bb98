"""Okapi BM25 with an inverted index that takes one document in or out without a rebuild.

bm25s precomputes every (chunk, term) score with corpus-wide IDF, so any change means re-indexing
everything; here IDF is applied at query time instead. Each term keeps one merged posting block
plus the blocks of documents added since (merged on the term's next query), so adding a document
only appends, and deleting one drops its pending blocks or filters the merged postings of its own
terms. Scores follow the Lucene BM25 that bm25s uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

K1 = 1.5
B = 0.75


@dataclass
class KeywordHit:
    id: int  # vector id of the chunk
    score: float  # BM25
    coverage: float  # share of the query's IDF mass that this chunk matches, in [0, 1]


@dataclass
class _Block:
    ids: np.ndarray  # (m,) int64 chunk ids containing the term
    tf: np.ndarray  # (m,) float32 term frequency in each
    lengths: np.ndarray  # (m,) float32 terms in each chunk


@dataclass
class _Postings:
    merged: _Block | None = None
    pending: dict[str, _Block] = field(default_factory=dict)  # document key -> its block, not merged yet

    def block(self) -> _Block:
        """All postings of the term as one block (merging pending ones)."""
        if self.pending:
            blocks = ([self.merged] if self.merged is not None else []) + list(self.pending.values())
            self.merged = _Block(*(np.concatenate([getattr(b, f) for b in blocks]) for f in ("ids", "tf", "lengths")))
            self.pending = {}
        assert self.merged is not None
        return self.merged

    def remove(self, key: str, ids: np.ndarray) -> bool:
        """Drop one document's postings; returns True when none are left."""
        if self.pending.pop(key, None) is None and self.merged is not None:
            keep = ~np.isin(self.merged.ids, ids)
            self.merged = _Block(self.merged.ids[keep], self.merged.tf[keep], self.merged.lengths[keep])
        if self.merged is not None and not len(self.merged.ids):
            self.merged = None
        return self.merged is None and not self.pending


@dataclass
class _Document:
    ids: np.ndarray
    doc_freq: Counter[str]  # term -> chunks of this document containing it
    length: float  # total terms


class KeywordIndex:
    """BM25 over chunks grouped by document `key`. Not thread-safe: the knowledge base locks it."""

    def __init__(self) -> None:
        self._postings: dict[str, _Postings] = {}
        self._documents: dict[str, _Document] = {}
        self._doc_freq: Counter[str] = Counter()
        self._chunks = 0
        self._total_length = 0.0

    def __len__(self) -> int:
        return self._chunks

    def add(self, key: str, ids: np.ndarray, chunk_terms: list[list[str]]) -> None:
        """Index one document's chunks (`chunk_terms[i]` are the terms of chunk `ids[i]`).
        Replaces an earlier document under the same key."""
        self.remove(key)
        ids = np.asarray(ids, np.int64)
        lengths = np.asarray([len(c) for c in chunk_terms], np.float32)
        rows: dict[str, list[int]] = {}
        freqs: dict[str, list[int]] = {}
        for row, chunk in enumerate(chunk_terms):
            for term, count in Counter(chunk).items():
                rows.setdefault(term, []).append(row)
                freqs.setdefault(term, []).append(count)
        for term, term_rows in rows.items():
            r = np.asarray(term_rows, np.int64)
            block = _Block(ids[r], np.asarray(freqs[term], np.float32), lengths[r])
            self._postings.setdefault(term, _Postings()).pending[key] = block
        doc_freq = Counter({t: len(r) for t, r in rows.items()})
        self._documents[key] = _Document(ids, doc_freq, float(lengths.sum()))
        self._doc_freq.update(doc_freq)
        self._chunks += len(ids)
        self._total_length += float(lengths.sum())

    def remove(self, key: str) -> None:
        """Forget one document's chunks; an unknown key does nothing."""
        document = self._documents.pop(key, None)
        if document is None:
            return
        for term in document.doc_freq:
            if self._postings[term].remove(key, document.ids):
                del self._postings[term]
        self._doc_freq.subtract(document.doc_freq)
        for term in document.doc_freq:
            if self._doc_freq[term] <= 0:
                del self._doc_freq[term]
        self._chunks -= len(document.ids)
        self._total_length -= document.length

    def _idf(self, term: str) -> float:
        df = self._doc_freq.get(term, 0)
        return float(np.log1p((self._chunks - df + 0.5) / (df + 0.5)))

    def search(self, query_terms: list[str], k: int) -> list[KeywordHit]:
        """The `k` best chunks for the query terms, best first; only chunks matching at least one term.

        `coverage` is the summed IDF of the query terms a chunk contains over that of all query
        terms, where a term the index never saw counts with the largest possible IDF."""
        unique = list(dict.fromkeys(query_terms))
        if not unique or not self._chunks:
            return []
        idf = {t: self._idf(t) for t in unique}
        query_mass = sum(idf.values())
        avg_length = self._total_length / self._chunks
        all_ids, all_scores, all_idf = [], [], []
        for term in unique:
            if term not in self._postings:
                continue
            block = self._postings[term].block()
            norm = K1 * (1 - B + B * block.lengths / avg_length)
            all_ids.append(block.ids)
            all_scores.append(idf[term] * block.tf / (block.tf + norm))  # Lucene drops the (k1 + 1) factor
            all_idf.append(np.full(len(block.ids), idf[term]))
        if not all_ids:
            return []
        ids, inverse = np.unique(np.concatenate(all_ids), return_inverse=True)
        scores = np.bincount(inverse, weights=np.concatenate(all_scores))
        matched = np.bincount(inverse, weights=np.concatenate(all_idf))
        k = min(k, len(ids))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [KeywordHit(int(ids[i]), float(scores[i]), float(matched[i] / query_mass)) for i in best]
