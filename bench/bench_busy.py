"""Answers while the machine is busy: the llama.cpp engine's decode speed with one CPU-bound process beside it,
over its speed on an idle machine, for the app's default (adaptive: each step on 1 thread or on every core,
whichever decodes faster at the moment) and for fixed thread counts; then Compare / one RAG answer and
4 users / 1 on the default, idle and busy. Medians of several runs.

llama.cpp's threads meet at a barrier after every layer and spin there while they wait, so a thread that
shares its core with a busy neighbour (the embedder, Gradio, another tenant of a shared vCPU) holds up the
others at every step. The neighbour here is one Python process spinning on the CPU, started and stopped by
this script (and bounded in time by itself). Targets: tok/s busy / idle >= 0.4 for the default; Compare /
one RAG answer <= 2.0 and 4 users / 1 >= 2.0.

    python bench/bench_busy.py [--runs 3] [--data-dir data]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import PROMPT, answer_run, compare_ratio, users_ratio
from compose import compose
from core.settings import Settings
from engines.base import GenerationParams


@contextmanager
def neighbour():
    """One CPU-bound process beside the app for the duration (it stops by itself after 10 minutes anyway)."""
    spin = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"
    hog = subprocess.Popen([sys.executable, "-c", spin])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def decode_tps(service, params: GenerationParams, runs: int) -> float:
    rows = [answer_run(service, PROMPT, "Base", params) for _ in range(runs)]
    return statistics.median(tokens / max(total - first, 1e-6) for first, total, tokens in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=args.new_tokens)
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; one CPU-bound neighbour; {args.new_tokens} greedy tokens; medians of {args.runs}\n")
    print(f"{'threads':>22} | {'idle tok/s':>10} | {'busy tok/s':>10} | busy / idle")
    default = None
    for label, threads in (("adaptive (default)", 0), ("1, fixed", 1), (f"{cores}, fixed", cores)):
        if threads == 1 and cores == 1:
            continue
        settings = Settings.of(data_dir=Path(args.data_dir), engine="llamacpp", engine_threads=threads)
        service = compose(settings).start().service
        if not service.wait_ready() or service.engine.name != "llama.cpp":
            sys.exit(service.status_line())
        answer_run(service, PROMPT, "Base", params)  # warm
        idle = decode_tps(service, params, args.runs)
        with neighbour():
            busy = decode_tps(service, params, args.runs)
        print(f"{label:>22} | {idle:>10.1f} | {busy:>10.1f} | {busy / idle:.2f}", flush=True)
        if threads == 0:
            default = service
        else:
            service.engine.close()
    service = default
    print(f"\nthe default ({service.engine.describe()}):")
    for when in ("idle", "busy"):
        with neighbour() if when == "busy" else nullcontext():
            together, one, apart = compare_ratio(service, params, args.runs)
            many, single = users_ratio(service, params, args.runs)
        print(
            f"  {when}: Compare / one RAG answer {together / one:.2f} (one after another {apart / one:.2f}); "
            f"4 users / 1 {many / single:.2f} ({many:.1f} vs {single:.1f} tok/s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
