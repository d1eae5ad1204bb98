"""Load: 8 `gradio_client` users at once against a running app on loopback, for a bounded time.

Each user loops over (question, mode, adapter) cases (Base, RAG, Fine-tuned and Hybrid with two adapters),
through the public `/chat` endpoint, greedily, a fresh session per question. Before the load, every case
is answered once alone; under load each answer is compared with it:

- **wrong adapter**: the answer equals another adapter's answer to the same question and mode (the error
  this checks for: a request served with someone else's adapter);
- **differs**: neither (batch composition changes llama.cpp's summation order, so a near-tie may flip);
- errors (anything but an answer), latency p50/p95 (submit to last output), queue wait p50/p95 (submit to
  the moment the queue starts the request), first output p50/p95 (queue wait + first token), answers per
  minute, against one user alone in the same run.

    python bench/bench_load.py [--users 8] [--seconds 90] [--data-dir data]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app
from compose import compose
from core.settings import Settings
from ui.page import build_page

QUESTIONS = [
    "What is the maximum payload of the Tern T12?",
    "Which error code means the battery pack is too cold?",
    "Where is the Split office?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def ask(client, question: str, mode: str, adapter: str, max_new: int) -> tuple[str, float, float, float]:
    """(answer text, seconds waiting in the queue, seconds to the first streamed output, seconds to the end),
    in a fresh session, through the public stateless /chat."""
    from gradio_client.utils import Status

    client.reset_session()
    started = time.perf_counter()
    job = client.submit(question, mode, adapter, [], 0.0, max_new, api_name="/chat")
    queued = first = None
    while not job.done():
        now = time.perf_counter() - started
        if queued is None and job.status().code in (Status.PROCESSING, Status.ITERATING, Status.PROGRESS):
            queued = now
        if first is None and job.outputs():
            first = now
        time.sleep(0.01)
    answer = job.result()[0]
    total = time.perf_counter() - started
    first = first if first is not None else total
    return str(answer), min(queued if queued is not None else first, first), first, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--adapters", default="", help="comma-separated adapter keys (default: the first two)")
    args = parser.parse_args()

    from gradio_client import Client

    settings = Settings.of(data_dir=Path(args.data_dir), engine_batch=max(4, args.users))
    composed = compose(settings).start()
    service = composed.service
    if not service.wait_ready():
        sys.exit(service.status_line())
    adapters = [a for a in args.adapters.split(",") if a] or [
        info.key for info in composed.adapters.list_adapters(None)
    ][:2]
    demo = build_page(composed)
    port = 7900 + os.getpid() % 80
    app.serve(demo, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    print(service.status_line())
    print(f"{args.users} users for {args.seconds:.0f} s; adapters {adapters}; greedy, {args.max_new_tokens} new tokens")

    cases = [(q, "Base", "") for q in QUESTIONS] + [(q, "RAG", "") for q in QUESTIONS]
    cases += [(q, mode, a) for q in QUESTIONS for mode in ("Fine-tuned", "Hybrid") for a in adapters]
    alone_client = Client(url, verbose=False)
    expected: dict[tuple[str, str, str], str] = {}
    alone_times = []
    for case in cases:
        text, _, _, total = ask(alone_client, *case, args.max_new_tokens)
        expected[case] = text
        alone_times.append(total)
    print(f"{len(cases)} cases answered alone: median {statistics.median(alone_times):.2f} s each")

    results: list[tuple[tuple[str, str, str], str | None, float, float, float, str | None]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def user(index: int) -> None:
        client = Client(url, verbose=False)
        for case in itertools.islice(itertools.cycle(cases), index, None):
            if time.monotonic() > deadline:
                return
            try:
                text, queued, first, total = ask(client, *case, args.max_new_tokens)
                error = None
            except Exception as exc:  # counted, not raised: the load goes on
                text, error = None, f"{type(exc).__name__}: {exc}"[:200]
                queued = first = total = float("nan")
            with lock:
                results.append((case, text, queued, first, total, error))

    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(i * 3,)) for i in range(args.users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    errors = [r for r in results if r[5]]
    answered = [r for r in results if not r[5]]
    wrong = differs = 0
    for case, text, *_ in answered:
        if text == expected[case]:
            continue
        question, mode, adapter = case
        others = [expected[(question, mode, a)] for a in adapters if a != adapter and (question, mode, a) in expected]
        if text in others:
            wrong += 1
        else:
            differs += 1
    queued = [r[2] for r in answered]
    waits = [r[3] for r in answered]
    totals = [r[4] for r in answered]
    print()
    alone = statistics.median(alone_times)
    print(
        f"answers {len(results)} in {elapsed:.0f} s: {60 * len(answered) / elapsed:.1f}/min, one user alone "
        f"{60 / alone:.1f}/min, ratio {len(answered) / elapsed * alone:.2f}"
    )
    print(f"errors {len(errors)}; wrong adapter {wrong}; differs from the answer alone {differs}")
    print(
        f"latency p50 {percentile(totals, 0.5):.2f} s, p95 {percentile(totals, 0.95):.2f} s "
        f"(alone: median {statistics.median(alone_times):.2f} s)"
    )
    print(f"queue wait p50 {percentile(queued, 0.5):.2f} s, p95 {percentile(queued, 0.95):.2f} s")
    print(
        f"first output (queue wait + first token) p50 {percentile(waits, 0.5):.2f} s, "
        f"p95 {percentile(waits, 0.95):.2f} s"
    )
    for error in errors[:5]:
        print("  error:", error[0], error[5])
    demo.close()
    service.engine.close()


if __name__ == "__main__":
    main()
