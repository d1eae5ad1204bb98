"""What a long conversation costs, and whether it delays anybody else.

    python bench/bench_history.py [--runs 5] [--turns 500,2000,4000]

Starts the app as shipped (embedded model on llama.cpp, the sample documents) on a free port and talks to it
through the real `gradio_client`, as an API user does:

1. `/chat` in Base mode with a history of N short turns (greedy, 16 new tokens), against the same question with
   no history (the baseline, measured in the same run): median seconds, and the ratio.
2. Another person's Base `/chat` (no history) while one client sends 4,000-turn histories back to back:
   p50 / p95 seconds against the same person's latency when the app is idle (the baseline), and the ratio.
   The issue's target: p95 under abuse <= 2x idle. For scale, the same client sending plain questions (no
   history) back to back, and 16-message histories (the most any answer uses: an ordinary long conversation)
   back to back: what any busy neighbour costs on this machine.
3. The same person's latency while clients flood Gradio's upload route (four processes posting 1 MiB files
   back to back; `ui/guard.py` refuses them per address before their bytes are read once past its limits).

Every abusing client runs in a process of its own, as a real one would (in the server's process it would take
the server's interpreter lock); on this 2-core machine they still take CPU from the server, which one elsewhere
would not.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
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


def abuse(kind: str, url: str, stop) -> None:
    """One abusing client, in a process of its own, until `stop` is set: `history4000` / `history16` / `plain`
    /chat questions, or `flood`: 1 MiB files posted to Gradio's upload route."""
    import httpx
    from gradio_client import Client

    client = Client(url, verbose=False)
    turns = {"history4000": history(4000), "history16": history(16), "plain": []}.get(kind, [])
    data = os.urandom(2**20)
    while not stop.is_set():
        if kind == "flood":
            httpx.post(url + "gradio_api/upload", files={"files": ("flood.txt", data, "text/plain")}, timeout=60)
        else:
            timed(client, turns)


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

    def beside(kind: str, processes: int = 1) -> list[float]:
        """Another person's latencies while `processes` other processes (clients apart from the server's
        process, as real abusers are) run `kind` of abuse back to back."""
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        running = [spawn.Process(target=abuse, args=(kind, url, stop), daemon=True) for _ in range(processes)]
        for process in running:
            process.start()
        time.sleep(8.0)  # the abusers import gradio_client and start
        values = [timed(other, []) for _ in range(args.samples)]
        stop.set()
        for process in running:
            process.join(timeout=60)
        return values

    phases = {
        "idle": idle,
        "beside 4,000-turn histories": beside("history4000"),
        "beside 16-message histories": beside("history16"),
        "beside plain questions": beside("plain"),
    }
    print("   (each phase: one abusing client back to back)")
    for name, values in phases.items():
        print(f"   {name:30s} p50 {percentile(values, 0.5):.3f} s, p95 {percentile(values, 0.95):.3f} s")
    print("\n3. the same person's Base /chat while four processes flood Gradio's upload route with 1 MiB files")
    phases["beside an upload flood"] = beside("flood", processes=4)
    values = phases["beside an upload flood"]
    name = "beside an upload flood"
    print(f"   {name:30s} p50 {percentile(values, 0.5):.3f} s, p95 {percentile(values, 0.95):.3f} s")
    print("\n   p95 / idle p95 (target <= 2x under abuse):")
    for name, values in phases.items():
        if name != "idle":
            print(f"   {name:30s} {percentile(values, 0.95) / percentile(idle, 0.95):.2f}x")
    page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
