"""How long a text near the 2,000,000-character limit takes to ingest, and how big its chunks get.

    python bench/bench_ingest_large.py [--runs 3] [--chars 1990000] [--baseline]

Ingests, into a fresh index each time, three texts of `--chars` characters: prose (varied sentences),
emoji with no space or sentence break, and Chinese without punctuation. Prints the median seconds of `--runs`
ingests (reading, chunking, embedding, saving), the chunk count, and the largest chunk in characters and in
the embedding model's tokens. The baseline, measured in the same run, is an ordinary document of 20,000
characters of the same prose (seconds per million characters, so the ratio says whether cost grows faster
than the text). `--baseline` also ingests with the chunker as it was before (no block cutting, no character
cap; stopped after 300 s).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prose(chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = "battery pack drone crew inspection valve pier ferry route weather limit hours gust seal motor".split()
    out, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18))).capitalize() + ". "
        if rng.random() < 0.1:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def ingest(text: str, name: str) -> tuple[float, int, int, int]:
    from core.settings import Settings
    from rag import KnowledgeBase

    folder = Path(tempfile.mkdtemp(prefix="bench-large-"))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    kb = KnowledgeBase.from_settings(Settings.of(data_dir=folder / "data")).open()
    started = time.perf_counter()
    (report,) = kb.add_files([path])
    took = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"{name}: {report.message}")
    chunks = [c.text for c in kb._live.current().chunks.values()]
    tokens = max(len(kb.embedder.tokenize(c)) for c in chunks)
    return took, len(chunks), max(map(len, chunks)), tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chars", type=int, default=1_990_000)
    parser.add_argument("--baseline", action="store_true", help="also time the chunker as it was (slow)")
    args = parser.parse_args()

    ingest(prose(2000), "warm.txt")  # loads the embedding model once
    small = statistics.median(ingest(prose(20_000), "small.txt")[0] for _ in range(args.runs))
    per_million = small / 0.02
    print(f"baseline: 20,000 characters of prose in {small:.2f} s ({per_million:.1f} s per million characters)")
    texts = {
        "prose": prose(args.chars),
        "emoji, no breaks": "😀" * args.chars,
        "Chinese, no punctuation": ("电池在充电前必须检查温度" * (args.chars // 12 + 1))[: args.chars],
    }
    for label, text in texts.items():
        runs = [ingest(text, "large.txt") for _ in range(args.runs)]
        took = statistics.median(r[0] for r in runs)
        _, count, chars, tokens = runs[-1]
        ratio = took / (per_million * len(text) / 1e6)
        print(
            f"{label:24s} {len(text):,} chars: {took:.1f} s (median of {args.runs}; {ratio:.2f}x the baseline's "
            f"rate), {count} chunks, largest {chars} chars / {tokens} tokens"
        )
    if args.baseline:
        import rag.chunking as chunking

        chunking.BLOCK_CHARS, chunking.CHARS_PER_TOKEN = 10**9, 10**9  # the chunker as it was
        for label, text in texts.items():
            try:
                took, count, chars, tokens = ingest(text, "large.txt")
                print(f"before: {label:24s} {took:.1f} s, {count} chunks, largest {chars} chars / {tokens} tokens")
            except SystemExit as exc:
                print(f"before: {label:24s} refused: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
