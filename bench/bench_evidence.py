"""Does the fact reach the prompt? The retrieve and gate stages of RAG/Hybrid, without the model, on a corpus.

    python bench/bench_evidence.py [--corpus sample|real|both] [--split dev|eval] [--evidence-sentences N]

For each keyed question of the split, the corpus's documents are indexed into a throwaway index
(`scorecard.corpus.index_documents`) and the answer pipeline's own `retrieve` picks the source sentences the
prompt would show (`answer.pipeline.retrieve`). Printed, overall and per language, with n:

- fact in the passages: every key in the retrieved passages (what retrieval allows; the baseline);
- fact in the prompt: every key in the chosen sentences (what the model is shown);
- ratio prompt / passages: how much of what retrieval found the sentence choice keeps;
- declined by the gate: no-answer questions the evidence floor declines without the model, and answerable
  questions it wrongly declines.

Nothing here depends on the model's text or on timing, so one run is exact.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPORA = {
    "sample": (ROOT / "sample_kb" / "docs", ROOT / "sample_kb"),
    "real": (ROOT / "sample_kb" / "real_docs" / "docs", ROOT / "sample_kb" / "real_docs"),
}


def measure(name: str, split: str, **changes: object) -> dict[str, dict[str, list[bool]]]:
    from answer.pipeline import retrieve
    from core.settings import Settings
    from scorecard import load_qa
    from scorecard.corpus import index_documents
    from scorecard.matching import keys_found

    docs, qa_dir = CORPORA[name]
    settings = Settings.of(**changes)
    qa = load_qa(qa_dir / f"{split}_qa.jsonl")
    floor = settings.answer.evidence_floor
    with tempfile.TemporaryDirectory() as folder:
        kb, _ = index_documents(settings, docs, Path(folder))
        rows: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        for item in qa.items:
            found = retrieve(kb, item.question, settings.answer.evidence_sentences)
            gated = not found.chosen or (found.encoded and found.chosen[0].score < floor)
            for group in ("all", item.language):
                row = rows[group]
                if item.answerable:
                    row["passages"].append(all(keys_found(" ".join(p.text for p in found.passages), item.keys)))
                    row["prompt"].append(all(keys_found(" ".join(e.text for e in found.chosen), item.keys)))
                    row["wrongly_declined"].append(gated)
                else:
                    row["declined"].append(gated)
    return rows


def rate(values: list[bool]) -> str:
    return f"{sum(values) / len(values):.2f} (n={len(values)})" if values else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=["sample", "real", "both"], default="both")
    parser.add_argument("--split", choices=["dev", "eval"], default="dev")
    parser.add_argument("--evidence-sentences", type=int, default=None, help="(default: the app's setting)")
    args = parser.parse_args()
    names = ["sample", "real"] if args.corpus == "both" else [args.corpus]
    for name in names:
        started = time.perf_counter()
        changes = {"evidence_sentences": args.evidence_sentences} if args.evidence_sentences else {}
        rows = measure(name, args.split, **changes)
        print(f"\n{name} corpus, {args.split} split ({time.perf_counter() - started:.0f} s)")
        print(
            f"{'group':6s} {'fact in passages':>18s} {'fact in prompt':>18s} {'prompt/passages':>16s} "
            f"{'no-answer declined':>20s} {'answerable declined':>20s}"
        )
        for group, row in sorted(rows.items(), key=lambda kv: (kv[0] != "all", kv[0])):
            passages, prompt = row["passages"], row["prompt"]
            ratio = f"{sum(prompt) / sum(passages):.2f}" if passages and sum(passages) else "–"
            print(
                f"{group:6s} {rate(passages):>18s} {rate(prompt):>18s} {ratio:>16s} "
                f"{rate(row['declined']):>20s} {rate(row['wrongly_declined']):>20s}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
