"""Retrieval benchmarks for rag/: ingestion speed, add-one-document vs full rebuild, query latency
against raw FAISS, and hit@5 of dense-only vs hybrid retrieval on the sample knowledge base.

    python bench/bench_rag.py [--runs 3] [--chunks 10000] [--big 100000]

1. Ingestion: `sample_kb/docs` through the real MiniLM, split into read+chunk, embed, and the
   whole `add_folder` (which also saves the snapshot).
2. Add vs rebuild, EMBEDDING EXCLUDED ON BOTH SIDES: the index holds >= --chunks chunks of
   synthetic documents whose vectors come from a stand-in embedder (deterministic random unit
   vectors, the real tokenizer for chunk sizing), so what is timed is index work: reading,
   chunking, FAISS, BM25 and the snapshot save. "Add" is `add_files([one document])`; "rebuild" is
   `reindex()` over the same documents. A second row times the in-memory index structures alone.
3. Query latency at --chunks and --big chunks: raw `faiss.IndexFlatIP.search` on the same vectors
   vs `KnowledgeBase.search_with_vector` (dense only, and hybrid dense + BM25 + RRF + floor).
   Queries are the eval questions, embedded once by MiniLM (their own latency is reported apart).
4. hit@5 on sample_kb/eval_qa.jsonl: the named source document among the top 5 passages.

Medians over --runs; latencies are p50/p95 over every query of every run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on shared cores
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from core.bm25_tokens import terms  # noqa: E402
from core.settings import Settings  # noqa: E402
from rag import Floors, KnowledgeBase  # noqa: E402
from rag.chunking import context_text  # noqa: E402
from rag.embedding import Embedder, get_embedder  # noqa: E402
from rag.keyword_index import KeywordIndex  # noqa: E402
from rag.preparation import PreparedDocument, prepare  # noqa: E402
from rag.records import Chunk  # noqa: E402
from rag.vector_store import IdMappedFaissVectorStore  # noqa: E402

SAMPLE_DOCS = REPO / "sample_kb" / "docs"
EVAL = REPO / "sample_kb" / "eval_qa.jsonl"


class SyntheticEmbedder:
    """Stands in for the model where index work is measured: unit vectors seeded by the text."""

    def __init__(self, real: Embedder):
        self.name, self.dim, self.max_tokens, self.tokenize = real.name, real.dim, real.max_tokens, real.tokenize

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate([header, *rows]):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  " + "  ".join(cells))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


# -- 1. ingestion ---------------------------------------------------------------------------------
class TimedEmbedder:
    """The real embedder, adding up the time spent in `encode` (to split a whole ingest by stage)."""

    def __init__(self, real: Embedder):
        self.real, self.seconds = real, 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.real.encode(texts)
        finally:
            self.seconds += time.perf_counter() - start


def bench_ingestion(root: Path, runs: int, embedder: Embedder) -> Path:
    files = sorted(p for p in SAMPLE_DOCS.iterdir() if p.is_file())
    chunker = KnowledgeBase.from_settings(Settings.of(data_dir=root / "probe"), embedder=embedder)._ingestion.chunker
    read, embed, full, chunks = [], [], [], 0
    for run in range(runs):
        read.append(timed(lambda: [prepare(p.name, p.read_bytes(), chunker, 20.0) for p in files])[0])
        timed_embedder = TimedEmbedder(embedder)
        kb = KnowledgeBase.from_settings(Settings.of(data_dir=root / f"sample{run}"), embedder=timed_embedder).open()
        seconds, reports = timed(kb.add_folder, SAMPLE_DOCS)
        assert all(r.ok for r in reports), [r.message for r in reports if not r.ok]
        full.append(seconds)
        embed.append(timed_embedder.seconds)
        chunks = kb.stats().chunks
    rows = []
    stages = [
        ("read + chunk + keyword terms (no embedding)", read),
        ("embedding (MiniLM, batches of 32), inside add_folder", embed),
        ("add_folder: all stages + snapshot save", full),
    ]
    for name, times in stages:
        median = statistics.median(times)
        rows.append([name, f"{median:.2f}", f"{chunks / median:,.0f}"])
    table(
        f"1. Ingestion: sample_kb/docs, {len(files)} files, {chunks} chunks (median of {runs})",
        ["stage", "seconds", "chunks/s"],
        rows,
    )
    return root / "sample0"


# -- 2. add one document vs full rebuild ----------------------------------------------------------
def sentence_pool() -> list[str]:
    pool = []
    for path in SAMPLE_DOCS.glob("*.md"):
        for para in path.read_text(encoding="utf-8").split("\n\n"):
            if len(para) > 80 and not para.lstrip().startswith(("#", "|")):
                pool.append(" ".join(para.split()))
    return pool


def synthetic_docs(n_docs: int, paragraphs: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    pool = sentence_pool()
    docs = {}
    for d in range(n_docs):
        body = "\n\n".join(f"{rng.choice(pool)} Reference SYN-{d}-{k}." for k in range(paragraphs))
        docs[f"synthetic_{d:05d}.txt"] = f"Synthetic document {d}\n\n{body}\n"
    return docs


def bench_add_vs_rebuild(root: Path, runs: int, target_chunks: int, real: Embedder) -> None:
    fake = SyntheticEmbedder(real)
    folder = root / "synthetic"
    folder.mkdir()
    probe = KnowledgeBase.from_settings(Settings.of(data_dir=root / "probe"), embedder=fake)._ingestion.chunker
    sample = synthetic_docs(n_docs=40, paragraphs=12, seed=1)
    per_doc = statistics.mean(len(prepare(n, t.encode(), probe, 20.0).chunks) for n, t in sample.items())
    docs = synthetic_docs(n_docs=int(target_chunks / per_doc * 1.03) + 1, paragraphs=12, seed=1)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.from_settings(Settings.of(data_dir=root / "addvs"), embedder=fake).open()
    kb.add_folder(folder)
    base_chunks = kb.stats().chunks
    extra = root / "extra"
    extra.mkdir()
    adds, deletes, rebuilds = [], [], []
    for run in range(runs):
        ((name, text),) = synthetic_docs(1, 12, seed=100 + run).items()
        path = extra / f"new_{run}_{name}"
        path.write_text(text, encoding="utf-8")
        seconds, reports = timed(kb.add_files, [path])
        adds.append(seconds)
        seconds, _ = timed(kb.delete, reports[0].doc_id)
        deletes.append(seconds)
        rebuilds.append(timed(kb.reindex)[0])

    # The same comparison for the in-memory structures alone, from the stored vectors and terms.
    state = kb._live.current()
    ids_by_doc: dict[str, list[int]] = {}
    for vid, chunk in state.chunks.items():
        ids_by_doc.setdefault(chunk.doc_id, []).append(vid)
    vectors = {d: state.vectors.client.reconstruct_batch(np.asarray(v, np.int64)) for d, v in ids_by_doc.items()}
    doc_terms = {d: [terms(state.chunks[v].text) for v in ids] for d, ids in ids_by_doc.items()}
    new_ids = np.arange(10**9, 10**9 + 9, dtype=np.int64)
    new_vecs = fake.encode([f"new chunk {i}" for i in range(9)])
    new_terms = [terms(f"new chunk {i} about the SYN-new-{i} reference") for i in range(9)]

    def build_all() -> tuple[IdMappedFaissVectorStore, KeywordIndex]:
        store, keywords = IdMappedFaissVectorStore(fake.dim), KeywordIndex()
        for d, ids in ids_by_doc.items():
            store.add_vectors(d, np.asarray(ids, np.int64), vectors[d])
            keywords.add(d, np.asarray(ids, np.int64), doc_terms[d])
        return store, keywords

    mem_adds, mem_builds = [], []
    for _ in range(runs):
        seconds, (store, keywords) = timed(build_all)
        mem_builds.append(seconds)
        start = time.perf_counter()
        store.add_vectors("new", new_ids, new_vecs)
        keywords.add("new", new_ids, new_terms)
        mem_adds.append(time.perf_counter() - start)

    add, rebuild, delete = (statistics.median(x) for x in (adds, rebuilds, deletes))
    mem_add, mem_build = statistics.median(mem_adds), statistics.median(mem_builds)
    table(
        f"2. One document (~9 chunks) into an index of {base_chunks:,} chunks vs a full rebuild "
        f"(embedding EXCLUDED on both sides: synthetic vectors; median of {runs})",
        ["what is timed", "add one doc", "full rebuild", "add / rebuild"],
        [
            [
                "KnowledgeBase: read, chunk, FAISS, BM25, snapshot save",
                f"{add * 1e3:.0f} ms",
                f"{rebuild:.2f} s",
                f"{add / rebuild:.4f}",
            ],
            [
                "index structures only (IDMap2 FAISS + BM25, in memory)",
                f"{mem_add * 1e3:.2f} ms",
                f"{mem_build * 1e3:.0f} ms",
                f"{mem_add / mem_build:.4f}",
            ],
        ],
    )
    print(f"  delete one document: {delete * 1e3:.0f} ms (median); target ratio <= 0.02")


# -- 3. query latency -----------------------------------------------------------------------------
def synthetic_index(
    root: Path, n_chunks: int, fake: SyntheticEmbedder, keep_vectors: bool = True, **changes: object
) -> tuple[KnowledgeBase, np.ndarray | None]:
    """A knowledge base of `n_chunks` chunks built without chunking: chunk texts drawn from the
    sample documents (each with a unique code), written through the normal save path, and its vectors (None
    unless `keep_vectors`: 1.5 GB at 1M chunks). `changes`: settings (the index backend)."""
    pool = sentence_pool()
    pool_terms = [terms(t) for t in pool]
    rng = random.Random(7)
    kb = KnowledgeBase.from_settings(Settings.of(data_dir=root / f"latency{n_chunks}", **changes), embedder=fake).open()
    per_doc, batch, all_vectors = 100, [], []
    for d in range(n_chunks // per_doc):
        picks = [rng.randrange(len(pool)) for _ in range(per_doc)]
        texts = [f"{pool[j]} Reference SYN-{d}-{k}." for k, j in enumerate(picks)]
        chunks = [Chunk(t, k, f"chunk {k + 1}") for k, t in enumerate(texts)]
        name = f"synthetic_{d:05d}.txt"
        data = "\n\n".join(texts).encode()
        contexts = [context_text(name, c) for c in chunks]
        chunk_terms = [pool_terms[j] + ["syn", str(d), str(k), f"syn-{d}-{k}"] for k, j in enumerate(picks)]
        doc = PreparedDocument(name, data, hashlib.sha256(data).hexdigest(), chunks, contexts, chunk_terms)
        vectors = fake.encode(contexts)
        if keep_vectors:
            all_vectors.append(vectors)
        batch.append((d, doc, vectors))
        if len(batch) == 200:
            kb._ingestion.commit(batch)  # the save path of add_files, minus reading and chunking
            batch = []
    if batch:
        kb._ingestion.commit(batch)
    return kb, np.concatenate(all_vectors) if keep_vectors else None


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3


def bench_latency(root: Path, runs: int, sizes: list[int], real: Embedder) -> None:
    questions = [json.loads(line)["question"] for line in EVAL.read_text(encoding="utf-8").splitlines()]
    embed_times = []
    for _ in range(runs):
        for q in questions:
            embed_times.append(timed(real.encode, [q])[0])
    query_vectors = real.encode(questions)
    fake = SyntheticEmbedder(real)
    rows = []
    for n in sizes:
        build_s, (kb, vectors) = timed(synthetic_index, root, n, fake)
        open_s, kb = timed(lambda: KnowledgeBase(kb.index_dir.parent, kb.retrieval, kb.limits, embedder=fake).open())  # noqa: B023
        raw = faiss.IndexFlatIP(vectors.shape[1])
        raw.add(vectors)
        k = kb.settings.retrieval.dense_k
        samples: dict[str, list[float]] = {"raw": [], "dense": [], "rrf": []}
        kb.search_with_vector(questions[0], query_vectors[0])  # warm the background vectors
        calls = {
            "raw": lambda q, v: raw.search(v[None, :], k),  # noqa: B023
            "dense": lambda q, v: kb.search_with_vector(q, v, None, "dense"),  # noqa: B023
            "rrf": lambda q, v: kb.search_with_vector(q, v, None, "rrf"),  # noqa: B023
        }
        order = random.Random(n)
        for _ in range(runs):
            for q, v in zip(questions, query_vectors, strict=True):
                for key in order.sample(list(calls), 3):  # interleaved, in random order: noise hits all alike
                    samples[key].append(timed(calls[key], q, v)[0])
        raw_p, dense_p, rrf_p = (percentiles(samples[key]) for key in ("raw", "dense", "rrf"))
        rows.append(
            [
                f"{kb.stats().chunks:,}",
                *(f"{p50:.2f} / {p95:.2f}" for p50, p95 in (raw_p, dense_p, rrf_p)),
                f"{rrf_p[0] / raw_p[0]:.1f}x",
                f"{build_s:.0f} s / {open_s:.1f} s",
            ]
        )
    table(
        f"3. Query latency in ms, p50 / p95 over {len(questions)} questions x {runs} runs (query vectors precomputed)",
        ["chunks", "raw FAISS flat", "KB dense-only", "KB hybrid (dense+BM25+RRF)", "hybrid/raw p50", "build / reopen"],
        rows,
    )
    p50, p95 = percentiles(embed_times)
    print(f"  + embedding one query with MiniLM: p50 {p50:.1f} ms, p95 {p95:.1f} ms (add it for search() end to end)")


# -- 4. hit@5 -------------------------------------------------------------------------------------
def bench_hits(data_dir: Path, embedder: Embedder) -> None:
    rows_in = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines()]
    rows_in = [r for r in rows_in if r.get("answerable", True) and r.get("source")]  # no-answer items have no source
    languages = list(dict.fromkeys(r["language"] for r in rows_in))
    vectors = embedder.encode([r["question"] for r in rows_in])
    rows = []
    for floor_name, floors in [("shipped floor", Floors()), ("no floor", Floors.off())]:
        kb = KnowledgeBase.from_settings(Settings.of(data_dir=data_dir), embedder=embedder, floors=floors).open()
        for mode, label in [("dense", "dense only"), ("keyword", "BM25 only"), ("rrf", "hybrid (RRF)")]:
            hits, totals, empty = Counter(), Counter(), 0
            for r, v in zip(rows_in, vectors, strict=True):
                found = kb.search_with_vector(r["question"], v, top_k=5, fusion=mode)
                totals[r["language"]] += 1
                hits[r["language"]] += any(p.source == r["source"] for p in found)
                empty += not found
            rows.append(
                [
                    f"{label}, {floor_name}",
                    f"{sum(hits.values()) / len(rows_in):.3f}",
                    *[f"{hits[lang]}/{totals[lang]}" for lang in languages],
                    str(empty),
                ]
            )
    table(
        f"4. hit@5 on sample_kb/eval_qa.jsonl ({len(rows_in)} questions; hit = named source document in the top 5)",
        ["retrieval", "hit@5", *languages, "no result"],
        rows,
    )
    dense = float(rows[0][1])
    hybrid = float(rows[2][1])
    print(
        f"  hybrid / dense-only hit@5 with the shipped floor: {hybrid / dense:.2f}x; "
        f"without a floor: {float(rows[5][1]) / float(rows[3][1]):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks in the index for sections 2 and 3")
    parser.add_argument("--big", type=int, default=100_000, help="chunks in the larger latency index")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP threads for torch and FAISS (one shared pool). On 2 shared cores one thread is faster: "
        "a single-query FAISS search at 10k chunks took 0.3 ms with 1 thread and 2 ms with 2.",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)  # also sets FAISS's: both use the same libgomp

    started = time.perf_counter()
    load_s, real = timed(lambda: get_embedder("all-MiniLM-L6-v2").model and get_embedder("all-MiniLM-L6-v2"))
    print(
        f"RAG benchmark: {os.cpu_count()} CPU cores (shared), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, faiss "
        f"{faiss.__version__}; MiniLM import + load {load_s:.1f} s"
    )
    with tempfile.TemporaryDirectory(prefix="bench_rag_") as tmp:
        root = Path(tmp)
        sample_dir = bench_ingestion(root, args.runs, real)
        bench_add_vs_rebuild(root, args.runs, args.chunks, real)
        bench_latency(root, args.runs, [args.chunks, args.big], real)
        bench_hits(sample_dir, real)
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
