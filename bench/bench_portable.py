"""The portable llama.cpp build (x86-64-v3, what requirements.txt installs) against a native build
(-march=native, llama.cpp's default) on this machine, in one run: decode tokens/s, medians of several runs,
the two builds interleaved so drift hits both alike. Target: portable / native >= 0.9.

Each measurement runs in a fresh child process with LLAMA_CPP_LIB_PATH pointing at one build's libraries,
raw llama-cpp-python (`Llama.generate`, greedy) on the app's served GGUF (the embedded model re-encoded as
Q8_0), at 1 thread (the app's default on 2 cores) and at every core.

    python bench/bench_portable.py --native-lib DIR     # DIR: a native build's llama_cpp/lib
    python bench/bench_portable.py --build-native       # builds one first under bench/results/ (~5 min)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Write a detailed paragraph about how cold-chain drones keep vaccines cold during long flights."
NATIVE_ARGS = (
    "-DGGML_NATIVE=ON;-DGGML_BACKEND_DL=OFF;-DGGML_OPENMP=OFF;-DLLAVA_BUILD=OFF;-DLLAMA_BUILD_TESTS=OFF;"
    "-DLLAMA_BUILD_EXAMPLES=OFF;-DLLAMA_BUILD_TOOLS=OFF;-DLLAMA_BUILD_SERVER=OFF;-DLLAMA_CURL=OFF"
)


def child(model: str, threads: int, tokens: int) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(PROMPT.encode())
    started = first = None
    count = 0
    started = time.perf_counter()
    for _ in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
        count += 1
        if first is None:
            first = time.perf_counter()
        if count >= tokens:
            break
    end = time.perf_counter()
    print(json.dumps({"tok_s": (count - 1) / (end - first), "first_s": first - started}))


def measure(lib: Path, model: Path, threads: int, tokens: int) -> float:
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=str(lib))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(model), str(threads), str(tokens)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["tok_s"]


def build_native(folder: Path) -> Path:
    lib = folder / "llama_cpp" / "lib"
    if lib.is_dir():
        return lib
    req = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("llama-cpp"))
    version = req.split()[0]
    wheels = folder / "wheel"
    print(f"building {version} with GGML_NATIVE=ON (about 5 minutes)...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-cache-dir",
            version,
            "-w",
            str(wheels),
            f"--config-settings=cmake.args={NATIVE_ARGS}",
        ],
        check=True,
    )
    with zipfile.ZipFile(next(wheels.glob("*.whl"))) as z:
        z.extractall(folder)
    return lib


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native-lib", type=Path, help="a native build's llama_cpp/lib folder")
    parser.add_argument("--build-native", action="store_true", help="build one under bench/results/native")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()

    from core import cpu_check
    from engines.embedded import embedded_gguf_path
    from engines.llamacpp_lib import library_dir, requantized

    portable = library_dir()
    native = args.native_lib or (build_native(ROOT / "bench" / "results" / "native") if args.build_native else None)
    if native is None:
        sys.exit("Give --native-lib DIR or --build-native.")
    for name, lib in (("portable", portable), ("native", native)):
        found = cpu_check.check_library(lib)
        above = "; ".join(f"{f}: {', '.join(k for k, _ in c.most_common(3))}" for f, c in found.items()) or "none"
        print(f"{name:9s} {lib}\n          above x86-64-v3: {above}")
    model = requantized(embedded_gguf_path(), Path(tempfile.gettempdir()) / "bench-portable")
    cores = len(os.sched_getaffinity(0))
    print(f"\nmodel {model.name}, {args.tokens} greedy tokens, medians of {args.runs} (builds interleaved)\n")
    print(f"{'threads':>7} | {'portable tok/s':>14} | {'native tok/s':>12} | portable / native")
    for threads in sorted({1, cores}):
        speeds: dict[str, list[float]] = {"portable": [], "native": []}
        for _ in range(args.runs):
            speeds["portable"].append(measure(portable, model, threads, args.tokens))
            speeds["native"].append(measure(native, model, threads, args.tokens))
        p, n = statistics.median(speeds["portable"]), statistics.median(speeds["native"])
        print(f"{threads:>7} | {p:>14.1f} | {n:>12.1f} | {p / n:.2f}", flush=True)


if __name__ == "__main__":
    main()
