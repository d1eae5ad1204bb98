"""Choose the sample's example questions for the page's first-visit guide from a scorecard run on the DEV set.

    python -m scorecard --qa sample_kb/dev_qa.jsonl --docs sample_kb/docs --modes Hybrid --no-card \
        --out /tmp/cards --name dev-hybrid
    python sample_kb/pick_examples.py /tmp/cards/dev-hybrid [--mode Hybrid]

Per language, the first dev question (in file order) whose answer in that run carried every key fact, cited the
question's own source, and was the model's own text (not a quote or a decline). The choice is written to
`sample_kb/guide_examples.json` with the run it came from; `ui/chat_tab.py` reads it and falls back to the
first answerable question per language when the file is missing. Only the dev set is read: the held-out set
stays unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scorecard.matching import keys_found  # noqa: E402
from scorecard.qa import load_qa  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "guide_examples.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a scorecard run folder (holds answers.jsonl) on dev_qa.jsonl")
    parser.add_argument("--mode", default="Hybrid")
    parser.add_argument("--qa", type=Path, default=HERE / "dev_qa.jsonl")
    args = parser.parse_args()

    qa = load_qa(args.qa)
    answers = {}
    for line in (args.run / "answers.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("mode") == args.mode:
            answers[record["id"]] = record
    chosen: dict[str, str] = {}
    for item in qa.items:
        record = answers.get(item.id)
        if not item.answerable or item.language in chosen or record is None or record.get("status") != "answer":
            continue
        names = [s["source"] for s in record.get("sources", [])]
        cited_own = any(1 <= n <= len(names) and names[n - 1] == item.source for n in record.get("cited", []))
        if cited_own and all(keys_found(record["text"], item.keys)):
            chosen[item.language] = item.id
    picked = [{"id": i, "language": lang} for lang, i in sorted(chosen.items(), key=lambda kv: kv[0] != "en")]
    OUT.write_text(
        json.dumps(
            {
                "qa_file": args.qa.name,
                "mode": args.mode,
                "run": args.run.name,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                "rule": "per language, the first dev question whose answer carried every key fact and cited its source",
                "examples": picked,
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"{len(picked)} examples ({', '.join(p['language'] for p in picked)}) -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
