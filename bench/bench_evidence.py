"""Does the fact reach the prompt? The retrieve and gate stages of RAG/Hybrid, without the model, on a corpus.

    python bench/bench_evidence.py [--corpus sample|real|both] [--split dev|eval] [--evidence-sentences N]
                                   [--evidence-floor F] [--calibrate]

For each keyed question of the split, the corpus's documents are indexed into a throwaway index
(`scorecard.corpus.index_documents`) and the answer pipeline's own `retrieve` picks the source sentences the
prompt would show (`answer.pipeline.retrieve`). Printed, overall and per language, with n:

- fact in the passages: every key in the retrieved passages (what retrieval allows; the baseline);
- fact in the prompt: every key in the chosen sentences (what the model is shown);
- ratio prompt / passages: how much of what retrieval found the sentence choice keeps;
- declined by the gate: no-answer questions the evidence floor declines without the model, and answerable
  questions it wrongly declines.

`--calibrate` (on the dev split) prints the decline rates of a grid of evidence floors and the highest floor
that wrongly declines at most 5% of the answerable questions (all corpora together): the app's `evidence_floor`.

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
            top = found.chosen[0].score if found.chosen else -1.0  # -1: retrieval found nothing
            for group in ("all", item.language):
                row = rows[group]
                row["top_answerable" if item.answerable else "top_no_answer"].append(top)
                if item.answerable:
                    row["passages"].append(all(keys_found(" ".join(p.text for p in found.passages), item.keys)))
                    row["prompt"].append(all(keys_found(" ".join(e.text for e in found.chosen), item.keys)))
                    row["wrongly_declined"].append(gated)
                else:
                    row["declined"].append(gated)
    return rows


MAX_WRONGLY = 0.05
GRID = [round(0.02 * i, 2) for i in range(0, 26)]


def calibrate(by_corpus: dict[str, dict[str, dict[str, list]]]) -> float:
    """Print, per evidence floor, each corpus's share of no-answer questions declined and of answerable ones
    wrongly declined; return the highest floor that wrongly declines at most `MAX_WRONGLY` of the answerable
    questions of all corpora together (one corpus's 39 questions make 5% a question and a half)."""
    names = " ".join(f"{name + ' declined':>16s} {name + ' wrongly':>15s}" for name in by_corpus)
    print(f"\n{'floor':>6s} {names} {'pooled wrongly':>15s}")
    best = 0.0
    for floor in GRID:
        cells, pooled = [], []
        for rows in by_corpus.values():
            declined = [t < floor for t in rows["all"]["top_no_answer"]]
            wrongly = [t < floor for t in rows["all"]["top_answerable"]]
            pooled += wrongly
            cells.append(f"{sum(declined) / len(declined):16.2f} {sum(wrongly) / len(wrongly):15.2f}")
        best = floor if sum(pooled) / len(pooled) <= MAX_WRONGLY else best
        print(f"{floor:6.2f} " + " ".join(cells) + f" {sum(pooled) / len(pooled):15.3f}")
    print(f"highest floor with at most {MAX_WRONGLY:.0%} of all answerable questions declined: {best}")
    return best


def rate(values: list[bool]) -> str:
    return f"{sum(values) / len(values):.2f} (n={len(values)})" if values else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=["sample", "real", "both"], default="both")
    parser.add_argument("--split", choices=["dev", "eval"], default="dev")
    parser.add_argument("--evidence-sentences", type=int, default=None, help="(default: the app's setting)")
    parser.add_argument("--evidence-floor", type=float, default=None, help="(default: the app's setting)")
    parser.add_argument(
        "--calibrate", action="store_true", help="also print the decline rates of a grid of evidence floors"
    )
    args = parser.parse_args()
    names = ["sample", "real"] if args.corpus == "both" else [args.corpus]
    by_corpus = {}
    for name in names:
        started = time.perf_counter()
        changes = {"evidence_sentences": args.evidence_sentences} if args.evidence_sentences else {}
        if args.evidence_floor is not None:
            changes["evidence_floor"] = args.evidence_floor
        rows = by_corpus[name] = measure(name, args.split, **changes)
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
    if args.calibrate:
        calibrate(by_corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
