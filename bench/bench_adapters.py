"""Adapter hot-swap vs reloading the base model, and memory over many load/remove cycles.

On the embedded SmolLM2-135M (loaded through `engines.loading.load_model` from its safetensors
cache), with two random LoRA adapters of realistic size (r=16 on every linear layer of the
decoder, saved in PEFT's format) plus the shipped demo adapter when adapters/demo/ has one:

- switch: entering `engine.using(handle)` for an adapter already resident (what each
  generation does), alternating adapters; the baseline is a full reload of the base model.
  Target: switch / reload <= 0.01. A cold load (read, check, inject) is reported too.
- memory: RSS and the live model's tensor bytes before and after N load/remove cycles
  (gc.collect + malloc_trim before each reading). Target: back to the start.

    python bench/bench_adapters.py [--reloads 3] [--switches 200] [--cycles 200]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from adapters import DEMO_DIR, AdapterCatalog
from adapters.store import AdapterStore
from adapters.synthetic import write_random_adapter
from answer.prompts import Prompter
from core.settings import Settings
from engines.base import GenerationParams
from engines.loading import load_model
from engines.transformers_engine import TransformersEngine

LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def settle() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so RSS readings compare."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def tensor_mib(model: torch.nn.Module) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Base model setting (default: the embedded SmolLM2).")
    parser.add_argument("--reloads", type=int, default=3, help="Base model reloads timed (the baseline).")
    parser.add_argument("--switches", type=int, default=200, help="Adapter switches timed.")
    parser.add_argument("--cycles", type=int, default=200, help="Load/remove cycles for the memory check.")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank of the random adapters.")
    args = parser.parse_args()

    base_settings = Settings.of(model=args.model, data_dir=Path("data"))
    reloads = []
    for _ in range(args.reloads):  # the baseline: what switching would cost without hot-swap
        started = time.perf_counter()
        loaded = load_model(base_settings, progress=lambda *_: None)
        reloads.append(time.perf_counter() - started)
        del loaded
        settle()
    loaded = load_model(base_settings, progress=lambda *_: None)
    print(f"model: {loaded.describe()}")
    print(f"base model reload: median {median_ms(reloads):.0f} ms of {args.reloads}")

    work = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    try:
        run_adapters(args, loaded, base_settings, reloads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_adapters(
    args: argparse.Namespace, loaded: Any, base_settings: Settings, reloads: list[float], work: Path
) -> None:
    """Switch timing, answers and the memory cycles, with the adapter store in the scratch folder `work`."""
    settings = base_settings.replace(data_dir=work, max_resident_adapters=4)
    engine = TransformersEngine(loaded, max_resident_adapters=settings.engine.max_resident_adapters)
    demo = DEMO_DIR if DEMO_DIR.is_dir() else None
    catalog = AdapterCatalog(engine.spec, AdapterStore(settings.data_dir, demo), settings.uploads, unload=engine.unload)
    targets = [t for t in LLAMA_LINEAR if t in catalog.spec.leaf_names()] or ["qkv_proj", "o_proj"]
    keys = []
    for name, seed in (("rand-a", 1), ("rand-b", 2)):
        folder = work / "adapters" / "trained" / name
        write_random_adapter(folder, catalog.spec, targets, r=args.rank, seed=seed, scale=0.05)
        keys.append(f"trained/{name}")
    size_mib = (work / "adapters" / "trained" / "rand-a" / "adapter_model.safetensors").stat().st_size / 2**20
    print(f"adapters: r={args.rank} on {', '.join(targets)} ({size_mib:.1f} MiB each)")
    demos = [i for i in catalog.list_adapters(None) if i.source == "demo"]
    for info in demos:
        print(f"demo adapter: {info.key} (r={info.rank}, {', '.join(info.target_modules)})")
    keys += [i.key for i in demos]
    for problem in catalog.problems(None):
        print(f"skipped {problem.key}: {problem.reason}")

    handles = {key: catalog.resolve_handle(key, None) for key in keys}
    handles[None] = None

    def load(key: str) -> None:
        with engine.using(handles[key]):
            pass

    cold = []
    for _ in range(5):
        started = time.perf_counter()
        load(keys[0])
        cold.append(time.perf_counter() - started)
        engine.unload(keys[0])
    for key in keys:
        load(key)

    switches = []
    for i in range(args.switches):
        key = keys[i % len(keys)] if i % 5 else None  # every fifth switch goes back to the bare base
        started = time.perf_counter()
        with engine.using(handles[key]):
            pass
        switches.append(time.perf_counter() - started)
    switch_ms, reload_ms = median_ms(switches), median_ms(reloads)
    ratio = switch_ms / reload_ms
    print(f"adapter switch (resident): median {switch_ms:.3f} ms of {args.switches}")
    print(f"adapter cold load (read + check + inject): median {median_ms(cold):.1f} ms of {len(cold)}")
    print(f"switch / reload = {ratio:.5f} (target <= 0.01): {'PASS' if ratio <= 0.01 else 'FAIL'}")
    print(f"cold load / reload = {median_ms(cold) / reload_ms:.4f}")

    greedy = GenerationParams(temperature=0, max_new_tokens=16)
    prompt, _ = Prompter(engine.tokenizer, engine.context_window).build(
        settings.answer.system_prompt, [], "What's the Kestrava motto?", greedy.max_new_tokens
    )
    outputs = {key: "".join(engine.stream(prompt, greedy, adapter=handles[key])) for key in [None, *keys]}
    print(f"greedy answers differ per adapter: {len(set(outputs.values())) == len(outputs)}")
    for key, text in outputs.items():
        print(f"  {key or 'base'}: {text.strip()[:70]!r}")

    for key in list(engine.resident):
        engine.unload(key)
    for label, keep in (("from the bare model", None), ("beside a resident adapter", keys[1])):
        if keep:
            load(keep)
        settle()
        rss0, tensors0 = rss_mib(), tensor_mib(engine.loaded.model)
        started = time.perf_counter()
        for cycle in range(args.cycles):
            load(keys[0])
            engine.unload(keys[0])
            if cycle + 1 == args.cycles // 2:  # a leak keeps growing; allocator slack does not
                settle()
                rss_mid = rss_mib()
        elapsed = time.perf_counter() - started
        settle()
        rss1, tensors1 = rss_mib(), tensor_mib(engine.loaded.model)
        ok = abs(tensors1 - tensors0) < 1e-9 and rss1 - rss0 < 8
        print(
            f"{args.cycles} load/remove cycles {label} ({elapsed / args.cycles * 1000:.0f} ms each): "
            f"tensors {tensors0:.2f} -> {tensors1:.2f} MiB; RSS {rss0:.1f} -> {rss_mid:.1f} (half way) "
            f"-> {rss1:.1f} MiB ({rss1 - rss0:+.1f}): {'PASS' if ok else 'FAIL'}"
        )
        if keep:
            engine.unload(keep)
    print(f"model is bare again: {type(engine.loaded.model).__name__}")


if __name__ == "__main__":
    main()
