"""The "not in the documents" gate: calibrated on the development set, then measured once on the held-out set.

    .venv/bin/python bench/bench_gate.py [--data-dir data]

The gate is the relevance floor of `rag.fusion`: a question whose retrieved candidates all fall
below it gets no passages, and RAG says it found nothing instead of letting the model guess.

1. Calibration on `sample_kb/dev_qa.jsonl` (questions from the training data plus no-answer questions in
   every language, never the held-out set): for each language group, the highest keyword-coverage bar
   that still lets at least 95% of the group's answerable questions through. Printed beside the values
   in `rag.fusion.COVERAGE_BY_GROUP`, which must be the same.
2. Measurement on `sample_kb/eval_qa.jsonl`, once, with the floors in the code and with the floors as
   they were before calibration (one bar, 0.5, for every language): per language, hit@5 of the
   question's document, the share of answerable questions let through, and the gate's precision and
   recall as a refuser of no-answer questions.

Needs the sample index in `<data dir>` (built on first use). Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compose import SAMPLE_DOCS
from core.bm25_tokens import terms
from core.language import detect_language
from core.settings import Settings
from rag import Floors, KnowledgeBase, ensure_sample_index
from rag.fusion import BACKGROUND_TEXTS, COVERAGE_BY_GROUP, LANGUAGE_GROUPS, fuse

REPO = Path(__file__).resolve().parent.parent
DEV, EVAL = REPO / "sample_kb" / "dev_qa.jsonl", REPO / "sample_kb" / "eval_qa.jsonl"
TARGET_PASS = 0.95
GRID = [round(0.05 * i, 2) for i in range(1, 13)]
BEFORE = Floors(coverage_by_group=())  # one bar for every language, as before calibration


@dataclass
class Candidates:
    language: str
    answerable: bool
    source: str | None
    dense: list
    keyword: list
    background: float


def candidates(kb, path: Path) -> list[Candidates]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    index = kb._live.current()
    background_vectors = kb.encode(list(BACKGROUND_TEXTS))
    out = []
    for row in rows:
        vector = kb.encode([row["question"]])[0]
        out.append(
            Candidates(
                language=row.get("language") or detect_language(row["question"]),
                answerable=row.get("answerable", True),
                source=row.get("source"),
                dense=index.vectors.search(vector, kb.settings.retrieval.dense_k),
                keyword=index.keywords.search(terms(row["question"]), kb.settings.retrieval.keyword_k),
                background=float((background_vectors @ vector).max()),
            )
        )
    return out


def passes(kb, c: Candidates, floors: Floors, top_k: int = 5) -> tuple[bool, bool]:
    """(let through, the right document among the first `top_k`)."""
    index = kb._live.current()
    ranked = fuse(c.dense, c.keyword, "rrf", top_k, floors, c.background)
    names = [index.names[index.chunks[i].doc_id] for i, _ in ranked]
    return bool(ranked), c.source in names


def group_of(language: str) -> str:
    return LANGUAGE_GROUPS.get(language, "latin")


def calibrate(kb, dev: list[Candidates]) -> dict[str, float]:
    chosen = {}
    for group in sorted({group_of(c.language) for c in dev} - {"latin"}):
        answerable = [c for c in dev if group_of(c.language) == group and c.answerable]
        best = GRID[0]
        for bar in GRID:
            floors = replace(Floors(), coverage=bar, coverage_by_group=())
            through = sum(passes(kb, c, floors)[0] for c in answerable) / len(answerable)
            if through >= TARGET_PASS:
                best = bar
        chosen[group] = best
    return chosen


def report(kb, rows: list[Candidates], label: str, floors_for) -> dict[str, dict[str, float]]:
    by = defaultdict(lambda: defaultdict(int))
    for c in rows:
        let_through, hit = passes(kb, c, floors_for(c))
        s = by[c.language]
        if c.answerable:
            s["answerable"] += 1
            s["through"] += let_through
            s["hit5"] += hit
        else:
            s["no_answer"] += 1
            s["refused_right"] += not let_through
        s["refused"] += not let_through
    print(f"\n{label}")
    print("| language | hit@5 | answerable let through | refusal precision | refusal recall |")
    print("|---|---|---|---|---|")
    total = defaultdict(int)
    for language in sorted(by, key=lambda lang: (lang != "en", lang)):
        s = by[language]
        for key, value in s.items():
            total[key] += value
        print(_row(language, s))
    print(_row("all", total))
    return by


def _row(name: str, s: dict[str, int]) -> str:
    def ratio(a: int, b: int) -> str:
        return f"{a / b:.2f} ({a}/{b})" if b else "–"

    return (
        f"| {name} | {ratio(s['hit5'], s['answerable'])} | {ratio(s['through'], s['answerable'])} | "
        f"{ratio(s['refused_right'], s['refused'])} | {ratio(s['refused_right'], s['no_answer'])} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dev-only", action="store_true", help="calibrate only; do not touch the held-out set")
    args = parser.parse_args()
    kb = ensure_sample_index(KnowledgeBase.from_settings(Settings.of(data_dir=Path(args.data_dir))), SAMPLE_DOCS)
    dev = candidates(kb, DEV)
    chosen = calibrate(kb, dev)
    print("calibrated on the development set (highest bar letting >= 95% of answerable questions through):")
    for group, bar in chosen.items():
        in_code = COVERAGE_BY_GROUP.get(group)
        verdict = "same" if in_code == bar else "DIFFERS"
        print(f"  {group}: {bar:.2f} (rag.fusion.COVERAGE_BY_GROUP: {in_code}) {verdict}")
    report(kb, dev, "development set, floors in the code", lambda c: Floors().for_query_language(c.language))
    if args.dev_only:
        return
    held_out = candidates(kb, EVAL)
    before = report(kb, held_out, "held-out set, one bar for every language (before)", lambda c: BEFORE)
    after = report(
        kb, held_out, "held-out set, floors in the code (after)", lambda c: Floors().for_query_language(c.language)
    )
    answerable = [c for c in held_out if c.answerable]
    hit_before = sum(before[lang]["hit5"] for lang in before) / len(answerable)
    hit_after = sum(after[lang]["hit5"] for lang in after) / len(answerable)
    print(f"\nheld-out hit@5 after / before = {hit_after:.3f} / {hit_before:.3f} = {hit_after / hit_before:.3f}")


if __name__ == "__main__":
    main()
