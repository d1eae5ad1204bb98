"""Whether a code change leaves every greedy answer as it was: the scorecard's answers on a QA set, in all four
modes, on each engine, recorded once and compared with a later recording.

    python bench/same_answers.py record before.json               # at the old commit
    python bench/same_answers.py record after.json                # at the new one
    python bench/same_answers.py compare before.json after.json   # prints the differences; exit 1 if any

`record` runs `python -m scorecard` (greedy, no card written) once per engine in a fresh data directory, so
the index is built the same way each time, and keeps what an answer shows of the model's work: the text, its
status, the sources and their places, the cited sources, the evidence quoted, and the notes. Timings are left
out. The demo adapter (smollm2-sample-kb) serves Fine-tuned and Hybrid. Options: --qa (default
sample_kb/dev_qa.jsonl), --engines (default llamacpp,transformers), --limit N (the first N questions).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEPT = ("text", "status", "cited", "notes", "evidence", "evidence_supports")


def record(out: Path, qa: Path, engines: list[str], limit: int | None) -> int:
    answers: dict[str, dict] = {}
    for engine in engines:
        with tempfile.TemporaryDirectory(prefix=f"same-answers-{engine}-") as data:
            command = [
                sys.executable,
                "-m",
                "scorecard",
                "--qa",
                str(qa),
                "--modes",
                "Base,RAG,Fine-tuned,Hybrid",
                "--adapter",
                "smollm2-sample-kb",
                "--no-card",
                "--name",
                engine,
                "--out",
                str(Path(data) / "runs"),
                "--engine",
                engine,
                "--data-dir",
                data,
            ]
            if limit:
                command += ["--limit", str(limit)]
            started = time.perf_counter()
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=dict(os.environ, HF_HUB_OFFLINE="1"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            lines = (Path(data) / "runs" / engine / "answers.jsonl").read_text(encoding="utf-8").splitlines()
            for line in lines:
                item = json.loads(line)
                kept = {k: item.get(k) for k in KEPT}
                kept["sources"] = [(s.get("source"), s.get("location")) for s in item.get("sources", [])]
                answers[f"{engine} {item['mode']} {item['id']}"] = kept
            print(f"{engine}: {len(lines)} answers in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out.write_text(json.dumps(answers, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    print(f"{len(answers)} answers written to {out}")
    return 0


def compare(before: Path, after: Path) -> int:
    old = json.loads(before.read_text(encoding="utf-8"))
    new = json.loads(after.read_text(encoding="utf-8"))
    differ = [key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    for key in differ[:20]:
        print(
            f"{key}:\n  before: {json.dumps(old.get(key), ensure_ascii=False)[:400]}\n"
            f"  after:  {json.dumps(new.get(key), ensure_ascii=False)[:400]}"
        )
    by_engine: dict[str, int] = {}
    for key in old:
        by_engine[key.split()[0]] = by_engine.get(key.split()[0], 0) + 1
    counts = ", ".join(f"{engine} {n}" for engine, n in sorted(by_engine.items()))
    print(
        f"{len(old)} answers before ({counts}), {len(new)} after; identical: {len(old) - len(differ)} / {len(old)}"
        f" ({'all' if not differ else f'{len(differ)} differ'})"
    )
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--qa", type=Path, default=ROOT / "sample_kb" / "dev_qa.jsonl")
    rec.add_argument("--engines", default="llamacpp,transformers")
    rec.add_argument("--limit", type=int, default=None)
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        return record(args.out.resolve(), args.qa.resolve(), args.engines.split(","), args.limit)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
