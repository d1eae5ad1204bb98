"""What a long conversation costs, and whether it delays anybody else.

    python bench/bench_history.py [--runs 5] [--turns 500,2000,4000]

Starts the app as shipped (embedded model on llama.cpp, the sample documents) on a free port and talks to it
through the real `gradio_client`, as an API user does:

1. `/chat` in Base mode with a history of N short turns (greedy, 16 new tokens), against the same question with
   no history (the baseline, measured in the same run): median seconds, and the ratio.
2. Another person's Base `/chat` (no history) while one client sends 4,000-turn histories back to back:
   p50 / p95 seconds against the same person's latency when the app is idle (the baseline), and the ratio.
   The issue's target: p95 under abuse <= 2x idle. For scale, the same client sending plain questions (no
   history) back to back: what any busy neighbour costs on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTION = "How often is the CP-D vent valve changed?"


def history(turns: int) -> list[dict[str, str]]:
    out = []
    for i in range(turns // 2):
        out += [{"role": "user", "content": f"Question {i} about the fleet?"}]
        out += [{"role": "assistant", "content": f"{i}."}]
    return out


def timed(client, turns: list) -> float:
    started = time.perf_counter()
    client.predict(QUESTION, "Base", "", turns, 0.0, 16, api_name="/chat")
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", default="500,2000,4000")
    parser.add_argument("--samples", type=int, default=20, help="another person's answers per phase")
    args = parser.parse_args()

    from gradio_client import Client

    import app as launcher
    from compose import compose
    from core.settings import Settings
    from tests.conftest import free_port
    from ui.page import build_page

    settings = Settings.of(data_dir=Path(tempfile.mkdtemp(prefix="bench-history-")))
    composed = compose(settings).start()
    if not composed.wait_ready(900):
        sys.exit(composed.service.status_line())
    page = build_page(composed)
    port = free_port()
    launcher.serve(page, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    client, other = Client(url, verbose=False), Client(url, verbose=False)
    timed(client, [])  # warm-up

    print(f"1. /chat Base with a long history (median of {args.runs}; baseline: no history, same run)")
    base = statistics.median(timed(client, []) for _ in range(args.runs))
    print(f"   no history: {base:.3f} s")
    for n in (int(t) for t in args.turns.split(",")):
        turns = history(n)
        cost = statistics.median(timed(client, turns) for _ in range(args.runs))
        print(f"   {n:5d} turns: {cost:.3f} s  ({cost / base:.2f}x the no-history answer)")

    print(f"\n2. another person's Base /chat, {args.samples} answers idle, then while 4,000-turn histories stream in")
    idle = [timed(other, []) for _ in range(args.samples)]

    def beside(turns: list) -> list[float]:
        """Another person's latencies while one client sends `turns` as history back to back."""
        stop = threading.Event()

        def busy() -> None:
            while not stop.is_set():
                timed(client, turns)

        thread = threading.Thread(target=busy, daemon=True)
        thread.start()
        time.sleep(1.0)
        values = [timed(other, []) for _ in range(args.samples)]
        stop.set()
        thread.join(timeout=60)
        return values

    loaded, plain = beside(history(4000)), beside([])
    phases = (("idle", idle), ("beside 4,000-turn histories", loaded), ("beside plain questions", plain))
    for name, values in phases:
        print(f"   {name:28s} p50 {percentile(values, 0.5):.3f} s, p95 {percentile(values, 0.95):.3f} s")
    for name, values, why in (("long histories", loaded, "target <= 2x"), ("plain questions", plain, "no history")):
        ratio = percentile(values, 0.95) / percentile(idle, 0.95)
        print(f"   p95 beside {name} / idle p95: {ratio:.2f}x ({why})")
    page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
