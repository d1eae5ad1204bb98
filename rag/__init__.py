"""Retrieval-augmented generation: the company's documents as a searchable, persistent index.

    from rag import KnowledgeBase, ensure_sample_index
    kb = ensure_sample_index(KnowledgeBase.from_settings(settings), "sample_kb/docs")   # or ….open()
    reports = kb.add_files(paths, progress=lambda fraction, message: ...)   # list[FileReport]
    passages = kb.search("What does E-PW-131 mean?")         # list[answer.ports.Passage]
    kb.list_documents(); kb.delete(doc_id); kb.reindex(); kb.stats(); kb.snapshot; kb.refresh()
    kb.add_files(paths, placement=Placement(owner=tag, added_by=tag))   # one person's private collection
    kb.search(query, viewer=tag); kb.for_owner(tag); kb.documents_for(tag); kb.snapshots(); kb.restore(id)
    kb.shared_history(); kb.restore_document(name)             # a deleted or replaced shared document
    read_snapshot(settings.data_dir)                          # Snapshot(id, created_at) | None, no model loaded

    python -m rag ingest <folder> | add <files> [--replace] | list | delete <doc_id> | search "<query>"
                  | reindex | stats | snapshots | restore <snapshot_id|previous> | restore --document <name>

Pipeline: file -> `preparation` (`readers`: txt, md, pdf, docx, html -> sections with page/heading;
`chunking`: LlamaIndex SentenceSplitter, sized in the embedding model's tokens) -> `ingestion`
(`embedding`: sentence-transformers, normalized; batches saved as snapshots) -> `memory_index`
(`vector_store`: FAISS IndexIDMap2 over IndexFlatIP through LlamaIndex's FaissVectorStore, and
`keyword_index`: BM25 over `terms`, CJK-aware) -> `search` (`fusion`: relevance floor,
reciprocal-rank fusion). `manifest`, `storage` and `uploads` keep it on disk; `knowledge_base` is
the facade over all of it.

On disk, under `settings.data_dir` (folders from `core.layout.DataLayout`; other parts may read
these without importing `rag`, and `read_snapshot` reads the current snapshot for them):

    index/CURRENT                           one line naming the current snapshot: "snapshots/<snapshot_id>"
    index/snapshots/<snapshot_id>/manifest.json
    index/segments/<segment_id>/            chunks.jsonl + vectors.npy of one document (immutable)
    uploads/<doc_id>/<file name>            the original of every indexed document

So the current manifest is `<data_dir>/index/` + the line in CURRENT + `/manifest.json`. It is plain
JSON (typed as `rag.manifest.Manifest`) with: `format`, `snapshot_id` (changes on every add, delete
or reindex), `parent_snapshot_id`, `created_at` (ISO 8601 UTC), `embed_model`, `dim`, `chunk_size`,
`chunk_overlap`, `effective_chunk_size`, `keyword_tokenizer`, `next_vector_id`, `sample_seeded`, and
`documents`: a list of {`doc_id`, `name`, `sha256`, `chunks`, `added_at`, `size_bytes`, `segment`, `upload`, `note`},
plus `owner` and `added_by` (`core.identity.owner_id` tags) on a document of someone's private collection.
Files are only ever replaced by rename, so a reader never sees a half-written manifest.

With `index_backend` 'postgres' the same index lives in PostgreSQL with pgvector at `database_url` instead
(`rag.database`: the tables; `rag.pg_storage`: snapshots, segments and originals; `rag.pg_index`: dense search
through LlamaIndex's PGVectorStore with HNSW, BM25 in SQL), shared by every app replica on that database;
`python -m rag migrate --to postgres|faiss` copies an index between the two without re-embedding.

Nothing heavy happens at import: the embedding model loads on the first add or search.
"""

from rag.errors import (
    DocumentNotFoundError,
    EmbeddingModelError,
    IndexCorruptError,
    IndexMismatchError,
    IndexUnavailableError,
    IndexWriteError,
    IngestError,
    NotAllowedError,
    RagError,
)
from rag.fusion import Floors
from rag.knowledge_base import KnowledgeBase, ensure_sample_index
from rag.manifest import read_snapshot
from rag.readers import SUPPORTED_EXTENSIONS
from rag.records import DocumentInfo, FileReport, IndexStats, Placement, Progress

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "DocumentInfo",
    "DocumentNotFoundError",
    "EmbeddingModelError",
    "FileReport",
    "Floors",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexStats",
    "IndexUnavailableError",
    "IndexWriteError",
    "IngestError",
    "KnowledgeBase",
    "NotAllowedError",
    "Placement",
    "Progress",
    "RagError",
    "ensure_sample_index",
    "read_snapshot",
]
