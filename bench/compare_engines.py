"""Two scorecard runs of the same questions on two engines, question by question.

Prints, per mode: key-fact recall (all keys) of each run, how many answers are word for word the same, how
many questions only one run got right, and McNemar's exact p for the difference.

    python bench/compare_engines.py RUN_A RUN_B [--qa sample_kb/eval_qa.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scorecard.matching import keys_found
from scorecard.qa import load_qa
from scorecard.recommend import mcnemar_p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2, type=Path, help="two run folders (each with answers.jsonl)")
    parser.add_argument("--qa", default="sample_kb/eval_qa.jsonl")
    args = parser.parse_args()
    qa = {item.id: item for item in load_qa(args.qa).items}
    runs = [{(d["id"], d["mode"]): d for d in map(json.loads, open(r / "answers.jsonl"))} for r in args.runs]
    names = [r.name for r in args.runs]
    print(f"{'mode':<12}{names[0]:>14}{names[1]:>14}{'same text':>12}{'only A':>8}{'only B':>8}{'p':>8}")
    for mode in ("Base", "RAG", "Fine-tuned", "Hybrid"):
        ids = [i for i, item in qa.items() if item.answerable and (i, mode) in runs[0] and (i, mode) in runs[1]]
        if not ids:
            continue
        right = [[all(keys_found(run[(i, mode)]["text"], qa[i].keys)) for i in ids] for run in runs]
        same = sum(runs[0][(i, mode)]["text"] == runs[1][(i, mode)]["text"] for i in ids)
        only_a = sum(a and not b for a, b in zip(*right, strict=True))
        only_b = sum(b and not a for a, b in zip(*right, strict=True))
        recall = [sum(r) / len(ids) for r in right]
        print(
            f"{mode:<12}{recall[0]:>14.2f}{recall[1]:>14.2f}{same:>8}/{len(ids):<3}{only_a:>8}{only_b:>8}"
            f"{mcnemar_p(*right):>8.2f}"
        )


if __name__ == "__main__":
    main()
