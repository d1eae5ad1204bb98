"""Streamed tokens/s and time to first token: the app's answer path vs raw `model.generate`.

Both sides use the same loaded model, prompt and greedy settings. The app path is what a
chat request runs (`ExpertService.answer`: checks, chat template, history trimming, worker
thread, incremental detokenization); the baseline is `model.generate` on the already
tokenized prompt with a streamer that only timestamps tokens, called on the main thread and,
as a second baseline, on a fresh worker thread (where Gradio and the app run it: on this CPU
the main thread has been measured faster for the same call). Runs rotate between the paths so
machine noise hits all alike; medians are reported.

    python bench/bench_streaming.py [--runs 7] [--new-tokens 64] [--model embedded]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from transformers.generation.streamers import BaseStreamer

from answer.prompts import Prompter
from answer.service import ExpertService
from compose import compose
from core.settings import Settings
from engines.base import GenerationParams

PROMPT = "Write a detailed paragraph about how cold-chain drones keep vaccines cold during long flights."


class _Clock(BaseStreamer):
    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # the first put is the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def raw_run(service: ExpertService, prompt_ids: list[int], params: GenerationParams) -> tuple[float, float, int]:
    loaded = service.engine.loaded
    clock = _Clock()
    ids = torch.tensor([prompt_ids])
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            streamer=clock,
            eos_token_id=loaded.stop_token_ids,
            pad_token_id=loaded.stop_token_ids[0],
            **params.generate_kwargs(),
        )
    total = time.perf_counter() - started
    tokens = out.shape[1] - ids.shape[1]
    return clock.first - started, total, tokens


def app_run(service: ExpertService, params: GenerationParams) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    tokens = 0
    for update in service.answer("bench", PROMPT, [], "Base", params):
        if first is None:
            first = time.perf_counter() - started
        tokens = update.tokens
    total = time.perf_counter() - started
    return first, total, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per path (after one warm-up each)")
    parser.add_argument("--new-tokens", type=int, default=64, help="max new tokens per run (greedy)")
    parser.add_argument("--model", default="embedded", help="model setting, as for the app")
    parser.add_argument("--data-dir", default="data", help="data directory (holds the embedded model cache)")
    args = parser.parse_args()

    settings = Settings.of(model=args.model, data_dir=Path(args.data_dir), engine="transformers")
    service = compose(settings, parts=()).start().service
    if not service.wait_ready():
        sys.exit(service.status_line())
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=args.new_tokens)
    prompt_ids, _ = Prompter(service.engine.tokenizer, service.engine.context_window).build(
        settings.answer.system_prompt, [], PROMPT, args.new_tokens
    )
    print(f"model: {service.engine.loaded.describe()}; torch threads: {torch.get_num_threads()}")
    print(f"prompt: {len(prompt_ids)} tokens; up to {args.new_tokens} new tokens, greedy; {args.runs} runs each")

    def threaded_run() -> tuple[float, float, int]:
        box: list = []
        worker = threading.Thread(target=lambda: box.append(raw_run(service, prompt_ids, params)))
        worker.start()
        worker.join()
        return box[0]

    paths = {
        "raw": lambda: raw_run(service, prompt_ids, params),
        "thread": threaded_run,
        "app": lambda: app_run(service, params),
    }
    rows: dict[str, list] = {name: [] for name in paths}
    for run in paths.values():  # warm-up
        run()
    order = list(paths)
    for i in range(args.runs):
        for name in order[i % 3 :] + order[: i % 3]:
            rows[name].append(paths[name]())
    raw, thread, app = rows["raw"], rows["thread"], rows["app"]

    def summary(rows: list[tuple[float, float, int]]) -> tuple[float, float, int]:
        ttft = statistics.median(r[0] for r in rows)
        tps = statistics.median(r[2] / r[1] for r in rows)
        return ttft, tps, rows[0][2]

    raw_ttft, raw_tps, raw_tokens = summary(raw)
    thread_ttft, thread_tps, thread_tokens = summary(thread)
    app_ttft, app_tps, app_tokens = summary(app)
    print()
    print(f"{'path':<38}{'tokens':>8}{'tokens/s':>12}{'first token (ms)':>20}")
    for label, tokens, tps, ttft in (
        ("raw model.generate, main thread", raw_tokens, raw_tps, raw_ttft),
        ("raw model.generate, worker thread", thread_tokens, thread_tps, thread_ttft),
        ("app answer path (streamed)", app_tokens, app_tps, app_ttft),
    ):
        print(f"{label:<38}{tokens:>8}{tps:>12.1f}{ttft * 1000:>20.1f}")
    print()
    for label, base_tps, base_ttft in (("main", raw_tps, raw_ttft), ("worker", thread_tps, thread_ttft)):
        ratio = app_tps / base_tps
        overhead_ms = (app_ttft - base_ttft) * 1000
        verdict = "PASS" if ratio >= 0.95 else "FAIL"
        print(
            f"vs raw on the {label} thread: throughput ratio app/raw {ratio:.3f} (target >= 0.95: {verdict}); "
            f"first-token overhead {overhead_ms:+.1f} ms (target < 50 ms: {'PASS' if overhead_ms < 50 else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
