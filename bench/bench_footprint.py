"""Resident memory after the first RAG answer, part by part, and the time to "Ready" at a first and a second start.

Each start runs in a fresh process on the app's defaults (embedded SmolLM2, sample knowledge base, demo
adapter) over one data folder: the first start builds the model cache and the index, the second finds them.
Memory is the process's resident set (VmRSS), read after each part is up, so each part's figure is what it
added:

- runtime: Python with everything the app imports (torch, transformers, gradio, LlamaIndex, FAISS);
- model: the engine with its model (for llama.cpp: the tokenizer, the layer shapes and the GGUF; for
  transformers: the torch weights);
- index: the document index opened (built, at a first start);
- embedder: the embedding model, loaded by the first search;
- freed at ready: what the app hands back to the operating system once every part is up (glibc's
  `malloc_trim`: the first start's temporaries), a negative figure;
- answering: the first RAG answer (llama.cpp's context and KV cache, the adapter catalog).

Baseline in the same run: the same starts with `--engine transformers` (the torch weights in memory), the
state the llama.cpp engine was in before it stopped holding them. Target: <= 1.2 GB for the default.

    python bench/bench_footprint.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How big and heavy is an empty CP-3?"  # from dev_qa.jsonl


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(data_dir: str, engine: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(ROOT))
    import app as _app  # noqa: F401  (everything the app imports)
    from compose import SAMPLE_DOCS, compose, release_free_memory
    from core.settings import Settings
    from engines.base import GenerationParams
    from rag.knowledge_base import KnowledgeBase, ensure_sample_index

    marks = {"runtime": rss_mib()}
    settings = Settings.of(data_dir=Path(data_dir), engine=engine)
    app = compose(settings, parts=("adapters",)).start()  # the index is opened below, to measure it apart
    service = app.service
    assert service.wait_ready(600), service.status_line()
    marks["model"] = rss_mib()
    kb = ensure_sample_index(KnowledgeBase.from_settings(settings), SAMPLE_DOCS)
    marks["index"] = rss_mib()
    kb.search("warm-up")
    marks["embedder"] = rss_mib()
    service.use_knowledge(kb)
    release_free_memory()  # as compose.App does once every part is loaded
    marks["freed at ready"] = rss_mib()
    ready = time.perf_counter() - START
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=48)
    final = list(service.answer("bench", QUESTION, [], "RAG", params))[-1]
    assert final.sources and final.text.strip()
    marks["answering"] = rss_mib()
    parts, last = {}, 0.0
    for name, value in marks.items():
        parts[name] = value - last
        last = value
    print(json.dumps({"ready_s": ready, "total_mib": last, "parts": parts, "engine": service.engine.name}))


def start(data_dir: Path, engine: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(data_dir), engine], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.runs):
        for engine in ("auto", "transformers"):
            folder = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
            try:
                results.setdefault((engine, "first"), []).append(start(folder, engine))
                results.setdefault((engine, "second"), []).append(start(folder, engine))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    names = ["runtime", "model", "index", "embedder", "freed at ready", "answering"]
    print(f"medians of {args.runs} runs; resident MiB after the first RAG answer, and what each part added\n")
    print(f"{'engine':>22} {'start':>6} | {'ready s':>7} | {'total':>6} | " + " | ".join(f"{n:>9}" for n in names))
    for (engine, when), runs in results.items():
        label = runs[0]["engine"] + (" (default)" if engine == "auto" else "")
        parts = [statistics.median(r["parts"][n] for r in runs) for n in names]
        ready = statistics.median(r["ready_s"] for r in runs)
        total = statistics.median(r["total_mib"] for r in runs)
        print(f"{label:>22} {when:>6} | {ready:>7.1f} | {total:>6.0f} | " + " | ".join(f"{p:>9.0f}" for p in parts))
    for when in ("first", "second"):
        default = statistics.median(r["total_mib"] for r in results[("auto", when)])
        base = statistics.median(r["total_mib"] for r in results[("transformers", when)])
        print(
            f"{when} start: default engine / torch weights in memory = {default / base:.2f} "
            f"({default:.0f} / {base:.0f} MiB; target <= 1229 MiB)"
        )


if __name__ == "__main__":
    main()
