"""The llama.cpp engine against its baselines, each measured in the same run, medians of several runs.

In the app's own process (app.py's environment, OMP_WAIT_POLICY=PASSIVE included), on the embedded GGUF:

1. decode speed: the app's answer path (`ExpertService.answer`, Base and Fine-tuned with the demo adapter)
   / raw llama-cpp-python (`Llama.generate`) on the same GGUF, prompt and greedy settings, with the adapter
   as a GGUF LoRA (targets >= 0.9 without adapter, >= 0.75 with); and / today's transformers engine
   (expect >= 3x);
2. time to first token of each;
3. adapter switching: first-token time when every answer alternates base / adapter, / when it does not;
4. Compare: the four modes in one pass / one RAG answer (target <= 2.0), the four one after another beside it;
5. 4 users at once (threads, same adapter): total tokens/s / one user's (target >= 2), beside what llama.cpp
   itself allows here: one decode step of 4 sequences / of 1 (raw C API, no app code).

    python bench/bench_engine.py [--runs 3] [--new-tokens 64] [--data-dir data]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from answer.prompts import Prompter
from compose import compose
from core.settings import Settings
from engines.base import GenerationParams
from engines.loading import load_model
from engines.transformers_engine import TransformersEngine

PROMPT = "Write a detailed paragraph about how cold-chain drones keep vaccines cold during long flights."
QUESTION = "What is the maximum payload of the Tern T12?"
ADAPTER = "demo/smollm2-sample-kb"
USER_PROMPTS = [
    PROMPT,
    "Explain in detail why drones need batteries that work in the cold.",
    "Describe a long delivery flight from a warehouse to a remote clinic.",
    "Write a careful paragraph about maintaining a fleet of delivery drones.",
]

Run = tuple[float, float, int]  # (first token s, total s, tokens)


def answer_run(service, message: str, mode: str, params: GenerationParams, adapter: str | None = None) -> Run:
    started, first, tokens = time.perf_counter(), None, 0
    for update in service.answer("bench", message, [], mode, params, None, adapter):
        if first is None and update.text:
            first = time.perf_counter() - started
        tokens = update.tokens
    return first or 0.0, time.perf_counter() - started, tokens


def stream_run(engine: TransformersEngine, prompt: list[int], params: GenerationParams, adapter=None) -> Run:
    started, first, tokens = time.perf_counter(), None, 0
    for delta in engine.stream(prompt, params, adapter=adapter):
        tokens += 1
        if first is None and delta:
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started, tokens


def raw_run(llm, prompt: list[int], params: GenerationParams, stop_ids: set[int]) -> Run:
    llm.reset()  # no prompt cache from the previous run (the app's engine keeps none either)
    started, first, tokens = time.perf_counter(), None, 0
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        if token in stop_ids:
            break
        tokens += 1
        if first is None:
            first = time.perf_counter() - started
        if tokens >= params.max_new_tokens:
            break
    return first or 0.0, time.perf_counter() - started, tokens


def tps(rows: list[Run]) -> float:
    return statistics.median(r[2] / r[1] for r in rows)


def ttft(rows: list[Run]) -> float:
    return statistics.median(r[0] for r in rows)


def rotate(paths: dict[str, Callable[[], Run]], runs: int) -> dict[str, list[Run]]:
    """Warm each path once, then run them in rotating order so machine noise hits all alike."""
    rows: dict[str, list[Run]] = {name: [] for name in paths}
    for run in paths.values():
        run()
    order = list(paths)
    for i in range(runs):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            rows[name].append(paths[name]())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    import llama_cpp

    app = compose(Settings.of(data_dir=Path(args.data_dir), engine="llamacpp")).start()
    service = app.service
    if not service.wait_ready():
        sys.exit(service.status_line())
    fast = service.engine
    if fast.name != "llama.cpp":
        sys.exit(f"The llama.cpp engine did not start: {service.status_line()}")
    slow = TransformersEngine(load_model(app.settings))  # the app's process holds no torch weights beside llama.cpp
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=args.new_tokens)
    handle = app.adapters.resolve_handle(ADAPTER, None)
    lora_file = fast.lora_file(handle)
    prompt, _ = Prompter(fast.tokenizer, fast.context_window).build(
        app.settings.answer.system_prompt, [], PROMPT, args.new_tokens
    )
    stop_ids = set(fast.loaded.stop_token_ids)
    common = dict(n_threads=fast.threads, n_threads_batch=fast.threads, n_ctx=4096, verbose=False)
    raw = llama_cpp.Llama(model_path=str(fast.gguf_path), **common)
    raw_lora = llama_cpp.Llama(model_path=str(fast.gguf_path), lora_path=str(lora_file), **common)
    print(f"{service.status_line()}")
    print(f"prompt {len(prompt)} tokens, up to {args.new_tokens} new, greedy; medians of {args.runs} runs\n")

    rows = rotate(
        {
            "raw llama.cpp": lambda: raw_run(raw, prompt, params, stop_ids),
            "app, Base": lambda: answer_run(service, PROMPT, "Base", params),
            "transformers engine": lambda: stream_run(slow, prompt, params),
            "raw llama.cpp + LoRA": lambda: raw_run(raw_lora, prompt, params, stop_ids),
            "app, Fine-tuned": lambda: answer_run(service, PROMPT, "Fine-tuned", params, ADAPTER),
            "transformers engine + adapter": lambda: stream_run(slow, prompt, params, handle),
        },
        args.runs,
    )
    print(f"{'path':<32}{'tokens':>8}{'tokens/s':>10}{'first token ms':>16}")
    for name, runs in rows.items():
        print(f"{name:<32}{runs[0][2]:>8}{tps(runs):>10.1f}{ttft(runs) * 1000:>16.1f}")
    base = tps(rows["app, Base"]) / tps(rows["raw llama.cpp"])
    lora = tps(rows["app, Fine-tuned"]) / tps(rows["raw llama.cpp + LoRA"])
    print()
    print(f"app / raw llama.cpp, no adapter:    {base:.2f}  (target >= 0.90)")
    print(f"app / raw llama.cpp, with adapter:  {lora:.2f}  (target >= 0.75)")
    print(f"app / transformers, no adapter:     {tps(rows['app, Base']) / tps(rows['transformers engine']):.2f}x")
    print(
        f"app / transformers, with adapter:   "
        f"{tps(rows['app, Fine-tuned']) / tps(rows['transformers engine + adapter']):.2f}x"
    )
    print(f"first token, app / raw llama.cpp:   {ttft(rows['app, Base']) / ttft(rows['raw llama.cpp']):.2f}")

    # -- switching adapters per answer ------------------------------------------------------------
    short = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=8)
    same, alternating = [], []
    for _ in range(args.runs * 3):
        same.append(stream_run(fast, prompt, short, handle)[0])
        same.append(stream_run(fast, prompt, short, handle)[0])
        alternating.append(stream_run(fast, prompt, short, None)[0])
        alternating.append(stream_run(fast, prompt, short, handle)[0])
    switch = statistics.median(alternating) / statistics.median(same)
    print(
        f"first token alternating base/adapter / same adapter: {switch:.2f} "
        f"({statistics.median(alternating) * 1000:.1f} vs {statistics.median(same) * 1000:.1f} ms)"
    )

    together, one, apart = compare_ratio(service, params, args.runs)
    print(
        f"\nCompare (4 modes) / one RAG answer: {together / one:.2f}  (target <= 2.0; "
        f"{together:.2f} s vs {one:.2f} s; one after another {apart:.2f} s = {apart / one:.2f}x)"
    )

    many, single = users_ratio(service, params, args.runs)
    print(
        f"4 users at once, total tokens/s / one user's: {many / single:.2f}  (target >= 2; "
        f"{many:.1f} vs {single:.1f} tokens/s)"
    )
    one = statistics.median(raw_step_ms(llama_cpp, str(fast.gguf_path), fast.threads, 1) for _ in range(args.runs))
    four = statistics.median(raw_step_ms(llama_cpp, str(fast.gguf_path), fast.threads, 4) for _ in range(args.runs))
    print(
        f"llama.cpp alone: a decode step of 4 sequences {four:.1f} ms / of 1 {one:.1f} ms = {four / one:.2f}; "
        f"the most 4 users can gain over 1 here is {4 * one / four:.2f}x"
    )


def compare_ratio(service, params: GenerationParams, runs: int) -> tuple[float, float, float]:
    """Median seconds of (Compare's four modes in one pass, one RAG answer, the four one after another)."""
    modes = ["Base", "RAG", "Fine-tuned", "Hybrid"]

    def compare_run() -> Run:
        started = time.perf_counter()
        latest: list = []
        for latest in service.compare("bench", QUESTION, modes, params, None, ADAPTER):  # noqa: B007
            pass
        return 0.0, time.perf_counter() - started, sum(getattr(u, "tokens", 0) for u in latest)

    def sequential_run() -> Run:
        started, tokens = time.perf_counter(), 0
        for mode in modes:
            tokens += answer_run(service, QUESTION, mode, params, ADAPTER)[2]
        return 0.0, time.perf_counter() - started, tokens

    four = rotate(
        {
            "one RAG answer": lambda: answer_run(service, QUESTION, "RAG", params),
            "Compare, one pass": compare_run,
            "four one after another": sequential_run,
        },
        runs,
    )
    return (
        statistics.median(r[1] for r in four["Compare, one pass"]),
        statistics.median(r[1] for r in four["one RAG answer"]),
        statistics.median(r[1] for r in four["four one after another"]),
    )


def users_ratio(service, params: GenerationParams, runs: int, n: int = 4) -> tuple[float, float]:
    """Median total tokens/s of `n` users answered at once (threads, Base), and of one user alone."""

    def users(count: int) -> Run:
        results: list[Run] = [None] * count  # type: ignore[list-item]

        def user(i: int) -> None:
            results[i] = answer_run(service, USER_PROMPTS[i % len(USER_PROMPTS)], "Base", params)

        started = time.perf_counter()
        threads = [threading.Thread(target=user, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 0.0, time.perf_counter() - started, sum(r[2] for r in results)

    load = rotate({"1 user": lambda: users(1), f"{n} users": lambda: users(n)}, runs)
    return tps(load[f"{n} users"]), tps(load["1 user"])


def raw_step_ms(llama_cpp, gguf: str, threads: int, sequences: int, steps: int = 40) -> float:
    """Milliseconds of one llama_decode step with `sequences` sequences of one token each (after a 50-token
    prompt each), through llama.cpp's C API alone."""
    model = llama_cpp.llama_model_load_from_file(gguf.encode(), llama_cpp.llama_model_default_params())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, 4096, 512, sequences
    params.n_threads = params.n_threads_batch = threads
    params.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(4096, 0, 1)

    def put(n: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, logits
        batch.seq_id[n][0] = seq

    n = 0
    for seq in range(sequences):
        for i in range(50):
            put(n, 100 + i, i, seq, i == 49)
            n += 1
    batch.n_tokens = n
    llama_cpp.llama_decode(ctx, batch)
    started = time.perf_counter()
    for k in range(steps):
        for seq in range(sequences):
            put(seq, 200 + k, 50 + k, seq, True)
        batch.n_tokens = sequences
        llama_cpp.llama_decode(ctx, batch)
    elapsed = (time.perf_counter() - started) / steps
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return elapsed * 1000


if __name__ == "__main__":
    main()
