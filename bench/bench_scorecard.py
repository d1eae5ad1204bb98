"""The scorecard's own cost: a whole evaluation run against the time its answers took.

    .venv/bin/python bench/bench_scorecard.py [--questions 12] [--runs 3] [--modes Base,RAG] [--data-dir data]

Each run answers the first N questions of the shipped eval set in each mode, on the embedded model,
into a fresh run folder, then scores them and writes the Markdown, JSON and chart, all through
`scorecard.evaluate`, exactly as `python -m scorecard` does. Printed per run and as medians:

- run / answers: the run's wall time divided by the sum of its answer calls' times (each call is
  retrieval, prompt and generation, what a chat answer costs); the harness overhead, target <= 1.05;
- run / generation: the same against the sum of the pure decoding times (`AnswerUpdate.elapsed_s`).

The model loads once, before any timing. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compose import compose
from core.settings import Settings
from engines.base import GenerationParams
from scorecard import SHIPPED_QA, evaluate, load_qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="Base,RAG")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    settings = Settings.of(model="embedded", data_dir=Path(args.data_dir))
    app = compose(settings).start()
    service = app.service
    if not service.wait_ready():
        sys.exit(service.status_line())
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    qa = load_qa(SHIPPED_QA, limit=args.questions)
    params = GenerationParams(0.0, 1.0, args.max_new_tokens)
    print(f"model: {service.engine.loaded.describe()}")
    print(
        f"{len(qa.items)} questions x {len(modes)} modes ({', '.join(modes)}), greedy, <= {args.max_new_tokens} tokens"
    )
    to_answers, to_generation = [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = evaluate(app, qa, modes, out_dir=Path(folder), params=params, write_card=False)
            wall = time.perf_counter() - started
            records = result.scorecard.scored
            answers = result.outcome.answer_s
            generation = sum(r.generation_s for rows in records.values() for r in rows)
        to_answers.append(wall / answers)
        to_generation.append(wall / generation)
        print(
            f"run {run}: wall {wall:.1f} s, answer calls {answers:.1f} s, decoding {generation:.1f} s -> "
            f"run/answers {to_answers[-1]:.3f}, run/generation {to_generation[-1]:.3f}"
        )
    ratio = statistics.median(to_answers)
    print(f"median run / answer calls = {ratio:.3f} (target <= 1.05): {'PASS' if ratio <= 1.05 else 'FAIL'}")
    print(
        f"median run / pure decoding = {statistics.median(to_generation):.3f} "
        "(retrieval and prompt building are part of every answer, so this is above 1 by their share)"
    )


if __name__ == "__main__":
    main()
