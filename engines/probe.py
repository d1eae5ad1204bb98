"""Before the app serves on llama.cpp, the real model runs in a child process, so a library that faults on
this CPU can never take the app down.

A llama.cpp library built for one machine can die on another with SIGILL (an instruction the CPU lacks) or a
general protection fault (AMX advertised by a VM but not enabled), and it dies inside the process that called
it: in the app, every user's session at once. So the app imports `llama_cpp` only after
`python -m engines.probe` has done, in a process of its own, what answering does: load the GGUF the app
will serve (re-encoding it first when that is the setting), apply a LoRA adapter that covers every linear
layer, evaluate a chat prompt of over 200 tokens in one batch, and decode tokens greedily. A crash (by
signal), a hang (past `timeout_s`), non-finite logits or an empty answer is a failed check, and the app then
starts on transformers with one sentence saying why and how to rebuild.

The verdict is kept in `<data_dir>/model_cache/engine-checks.json`, keyed by the library build (a digest of
its bytes), this CPU (model name and flags), the model file and the check's own version: about a second the
first time, nothing on later starts, and a new check after any rebuild, on other hardware (a Space whose
persistent /data moves to another machine), or with another model file.
"""

from __future__ import annotations

import json
import logging
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.child import module_command
from engines.llamacpp_lib import LlamaCppUnavailable, import_llama_cpp, library_dir, library_id, quiet, requantized

log = logging.getLogger(__name__)

CHECK_VERSION = 1
NEW_TOKENS = 24
TIMEOUT_S = 60.0
REBUILD = "build it for this machine with `make engine`"

PROMPT_SOURCES = (
    "[1] The Tern T12 cold-chain drone carries up to 4.5 kg and keeps its hold between 2 and 8 °C for 14 hours.",
    "[2] Every battery pack is rated for 600 charge cycles and must be replaced after 36 months in service.",
    "[3] Der Kundendienst ist montags bis freitags von 8 bis 18 Uhr erreichbar; Notfälle rund um die Uhr.",
    "[4] 倉庫の温度は毎時記録され、異常があれば担当者に自動で通知されます。",
    "[5] Le contrat de maintenance couvre deux inspections par an et le remplacement des hélices usées.",
    "[6] 배송 경로는 기상 조건에 따라 매일 아침 다시 계산됩니다.",
    "[7] Firmware updates are signed, staged to 5% of the fleet first, and rolled back after two failures.",
    "[8] A clinic may reorder insulin through the portal; orders placed before noon fly the same day.",
)
PROMPT_QUESTION = "How long does the Tern T12 keep vaccines cold, and how often are batteries replaced?"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str = ""
    """Why not, as one sentence for the status line (empty when ok)."""
    seconds: float = 0.0


def cpu_identity() -> str:
    """This CPU as far as code generation cares: its architecture, model name and feature flags."""
    model = flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "CPU part") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return f"{platform.machine()}|{model}|{flags}"


def probe_prompt(tokenizer: Any) -> list[int]:
    """A RAG-shaped chat prompt of at least 200 tokens in several scripts, as the answer path builds them."""
    sources = "\n".join(PROMPT_SOURCES)
    content = f"{PROMPT_QUESTION}\n\nSources:\n{sources}\n\nQuestion: {PROMPT_QUESTION}"
    messages = [
        {"role": "system", "content": "Answer from the numbered sources only, and cite them."},
        {"role": "user", "content": content},
    ]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    while len(ids) < 200:  # a tokenizer with very long tokens: repeat the sources
        ids = ids[:1] + list(tokenizer.encode(sources, add_special_tokens=False)) + ids[1:]
    return ids


def probe_lora(loaded: Any, base_gguf: Path, folder: Path, rank: int = 8) -> Path | None:
    """A LoRA adapter on every linear layer llama.cpp can adapt (small random weights, fixed seed) as a GGUF
    LoRA for `base_gguf`, written once under `folder`. None for an architecture the converter does not write."""
    import numpy as np

    from adapters.spec import TENSOR_PREFIX, AdapterHandle, LoraSpec
    from engines.gguf import GgufArch, GgufError, convert_lora, tensor_name

    info = GgufArch.from_config(loaded.config)
    if info is None:
        return None
    spec = loaded.spec
    modules = []
    for path in sorted(spec.linear):
        try:
            if tensor_name(path).startswith("blk."):  # decoder blocks (a tied lm_head has no tensor of its own)
                modules.append(path)
        except GgufError:
            continue
    out = folder / f"engine-probe-{info.arch}-r{rank}-{len(modules)}.gguf"
    if out.is_file():
        return out
    rng = np.random.default_rng(0)
    tensors = {}
    for path in modules:
        fan_in, fan_out = spec.linear[path]
        tensors[f"{TENSOR_PREFIX}{path}.lora_A.weight"] = rng.normal(0, 0.02, (rank, fan_in)).astype(np.float32)
        tensors[f"{TENSOR_PREFIX}{path}.lora_B.weight"] = rng.normal(0, 0.02, (fan_out, rank)).astype(np.float32)
    lora = LoraSpec(rank, float(2 * rank), False, tuple(modules))
    handle = AdapterHandle("engine-probe", "engine probe", "probe", folder, out, lora, 0)
    return convert_lora(handle, tensors, base_gguf, out, info)


def check_engine(
    loaded: Any,
    model_gguf: Path,
    kind: str,
    cache_dir: Path,
    threads: int,
    timeout_s: float = TIMEOUT_S,
) -> ProbeResult:
    """Whether llama.cpp runs `model_gguf` (re-encoded as `kind`, or 'shipped' as it is) on this machine: the
    cached verdict for this library build, CPU and model, else a fresh check in a child process."""
    folder = library_dir()
    if folder is None or not folder.is_dir():
        return ProbeResult(False, "llama-cpp-python is not installed")
    started = time.perf_counter()
    stat = model_gguf.stat()
    key = "|".join([str(CHECK_VERSION), library_id(folder), cpu_identity(), model_gguf.name, str(stat.st_size), kind])
    record = cache_dir / "engine-checks.json"
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if key in known and isinstance(known[key], dict):
        seen = known[key]
        return ProbeResult(bool(seen.get("ok")), str(seen.get("reason", "")), time.perf_counter() - started)
    job = {
        "model": str(model_gguf),
        "kind": kind,
        "cache": str(cache_dir),
        "lora": str(probe_lora(loaded, model_gguf, cache_dir / "gguf-lora") or ""),
        "prompt": probe_prompt(loaded.tokenizer),
        "new_tokens": NEW_TOKENS,
        "threads": threads,
    }
    result = _run_child(job, loaded.stop_token_ids, timeout_s)
    result = ProbeResult(result.ok, result.reason, time.perf_counter() - started)
    log.info("llama.cpp start-up check: %s in %.1f s", "passed" if result.ok else result.reason, result.seconds)
    known[key] = {"ok": result.ok, "reason": result.reason, "seconds": round(result.seconds, 2), "when": time.time()}
    try:
        from core.files import atomic_write_json

        atomic_write_json(record, known)
    except OSError as exc:  # a read-only data folder: check again next start
        log.warning("could not record the llama.cpp check in %s: %s", record, exc)
    return result


def _run_child(job: dict[str, Any], stop_ids: Sequence[int], timeout_s: float) -> ProbeResult:
    command, env = module_command("engines.probe")
    try:
        child = subprocess.run(
            command, input=json.dumps(job), capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"llama.cpp did not finish its start-up check within {timeout_s:.0f} s (it hung)")
    if child.returncode < 0:
        number = -child.returncode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
        what = {
            "SIGILL": "an instruction this CPU does not allow",
            "SIGSEGV": "a memory or protection fault",
            "SIGBUS": "a bus error",
            "SIGFPE": "an arithmetic fault",
            "SIGKILL": "killed, perhaps out of memory",
        }.get(name, "killed by a signal")
        return ProbeResult(False, f"llama.cpp crashed in its start-up check on this CPU ({name}: {what})")
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return ProbeResult(False, f"llama.cpp failed its start-up check (exit {child.returncode}: {tail})")
    if report.get("error"):
        return ProbeResult(False, f"llama.cpp failed its start-up check ({report['error']})")
    tokens = [int(t) for t in report.get("tokens", [])]
    if not report.get("finite", False):
        return ProbeResult(False, "llama.cpp computed non-finite numbers in its start-up check")
    if not tokens or tokens[0] in set(stop_ids):
        return ProbeResult(False, "llama.cpp gave an empty answer in its start-up check")
    return ProbeResult(True)


def fallback_sentence(result: ProbeResult) -> str:
    """The status line's one sentence for a failed check."""
    return f"{result.reason}; answering with transformers, about 4x slower; {REBUILD}."


# -- the child ------------------------------------------------------------------------------------------
def _child(job: dict[str, Any]) -> dict[str, Any]:
    import ctypes

    import numpy as np

    lib = import_llama_cpp()
    quiet(lib)
    path = Path(job["model"])
    if job["kind"] != "shipped":
        path = requantized(path, job["cache"], job["kind"])
    mparams = lib.llama_model_default_params()
    mparams.n_gpu_layers = 0
    model = lib.llama_model_load_from_file(str(path).encode(), mparams)
    if not model:
        return {"error": f"could not load {path.name}"}
    n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model))
    prompt = [int(t) for t in job["prompt"]]
    n_ctx = len(prompt) + int(job["new_tokens"]) + 8
    params = lib.llama_context_default_params()
    params.n_ctx = params.n_batch = n_ctx
    params.n_ubatch = min(512, n_ctx)
    params.n_threads = params.n_threads_batch = max(1, int(job["threads"]))
    params.no_perf = True
    ctx = lib.llama_init_from_model(model, params)
    if not ctx:
        return {"error": "could not create a context"}
    if job.get("lora"):
        lora = lib.llama_adapter_lora_init(model, job["lora"].encode())
        if not lora:
            return {"error": "could not load a LoRA adapter"}
        adapters = (lib.llama_adapter_lora_p_ctypes * 1)(lora)
        if lib.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(1.0)) != 0:
            return {"error": "could not apply a LoRA adapter"}
    batch = lib.llama_batch_init(n_ctx, 0, 1)
    tokens: list[int] = []
    finite = True
    pending, pos = prompt, 0
    for _ in range(int(job["new_tokens"])):
        for i, token in enumerate(pending):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(pending) - 1
        batch.n_tokens = len(pending)
        if lib.llama_decode(ctx, batch) != 0:
            return {"error": "decoding failed", "tokens": tokens}
        pos += len(pending)
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, len(pending) - 1), shape=(n_vocab,))
        finite = finite and bool(np.isfinite(logits).all())
        token = int(np.argmax(logits))
        tokens.append(token)
        pending = [token]
    return {"tokens": tokens, "finite": finite}


def main() -> int:
    job = json.loads(sys.stdin.read())
    started = time.perf_counter()
    try:
        report = _child(job)
    except LlamaCppUnavailable as exc:
        report = {"error": str(exc)}
    report["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
