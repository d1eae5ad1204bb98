"""The llama.cpp engine: the CPU default for GGUF models, with PEFT adapters converted and batched per adapter.

`LlamaCppEngine` is an `engines.base.Engine` whose generation runs in llama.cpp (llama-cpp-python's C API); it
holds no torch weights:

- **One model, one context per adapter setting.** llama.cpp applies a LoRA per context, so the bare base
  and each adapter in use get a context of their own on the one shared model (at most
  `max_resident_adapters` adapter contexts, the least recently used idle one freed first). A context is
  never switched to another adapter, so no cached prompt state can leak from one adapter into another.
- **Continuous batching.** One scheduler thread owns every context. Requests that arrive together with the
  same adapter become sequences of one context and are decoded together, one token each per step; a new
  request joins at the next step (its prompt is evaluated in that step's batch). Each context's KV cache
  is shared by its sequences; a request reserves its prompt plus its token budget, and waits if the
  context is full. When a request ends (done, stopped, or the reader went away) its sequence is removed.
- **Adapters stay PEFT folders.** On first use an adapter's checked tensors are converted to a GGUF LoRA
  (`engines.gguf`), cached on disk under the content hash of its weights, its scale and the base GGUF.

Sampling (greedy, or temperature / top-p) and the answer path's logits processors (repetition guard,
copy bias) run in numpy/torch on each sequence's logits, exactly as the transformers engine applies them.
The app gives it a model without torch weights (`load_model(weights=False)`: tokenizer, config, layer names and
shapes for the adapter checks). Each decoding step runs on 1 thread or on
`threads`, whichever decodes faster at the moment (`ThreadTuner`), when `adaptive_threads` is set.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adapters.spec import AdapterHandle
from core.errors import AdapterUnusable
from engines.base import GenerationParams
from engines.decoding import IncrementalDecoder, answer_processors
from engines.llamacpp_lib import LlamaCppUnavailable, import_llama_cpp, quiet, requantized
from engines.loading import LoadedModel
from engines.threads import ThreadTuner

__all__ = ["LlamaCppEngine", "LlamaCppUnavailable", "import_llama_cpp", "requantized"]

log = logging.getLogger(__name__)

_DONE = object()

DEFAULT_CONTEXT = 4096
"""Cells of one llama.cpp context (its KV cache), shared by the answers batched in it, unless the model's own
context is shorter. Each adapter in use has a context of its own, and SmolLM2's 8192 cells cost 180 MiB of
f16 KV cache each; a RAG prompt with its answer takes under 2,000 (bench/bench_footprint.py)."""


@dataclass(eq=False)
class _Job:
    prompt: list[int]
    params: GenerationParams
    stop: threading.Event
    stop_ids: frozenset[int]
    processors: list[Any]
    key: str | None
    lora_path: Path | None
    out: queue.Queue = field(default_factory=queue.Queue)
    generated: list[int] = field(default_factory=list)
    seq: int = -1
    pending: list[int] = field(default_factory=list)
    """Tokens to evaluate at the next step (the prompt, then each sampled token)."""
    pos: int = 0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    @property
    def cells(self) -> int:
        return len(self.prompt) + self.params.max_new_tokens


class _Context:
    """One llama.cpp context on the shared model, with one adapter (or none) for its whole life."""

    def __init__(
        self,
        lib: Any,
        model: Any,
        key: str | None,
        lora: Any,
        lora_file: Path | None,
        n_ctx: int,
        n_seq: int,
        threads: int,
    ):
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_ctx
        params.n_ubatch = min(512, n_ctx)
        params.n_seq_max = n_seq
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True  # the sequences share one KV cache of n_ctx cells
        params.no_perf = True
        ctx = lib.llama_init_from_model(model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self.lib, self.ctx, self.key, self.lora = lib, ctx, key, lora
        self.n_ctx, self.n_seq, self.threads = n_ctx, n_seq, threads
        self.lora_file = lora_file  # the converted file `lora` was loaded from
        if lora is not None:
            adapters = (lib.llama_adapter_lora_p_ctypes * 1)(lora)
            scales = (ctypes.c_float * 1)(1.0)
            if lib.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
                lib.llama_free(ctx)
                raise RuntimeError("llama.cpp refused to apply the adapter")
        self.mem = lib.llama_get_memory(ctx)
        self.batch = lib.llama_batch_init(n_ctx, 0, 1)
        self.jobs: dict[int, _Job] = {}
        self.free_seqs = list(range(n_seq))
        self.used = 0
        self.last_used = time.monotonic()

    def admit(self, job: _Job) -> bool:
        if not self.free_seqs or self.used + job.cells > self.n_ctx:
            return False
        job.seq = self.free_seqs.pop(0)
        job.pending = list(job.prompt)
        job.pos = 0
        self.used += job.cells
        self.jobs[job.seq] = job
        return True

    def release(self, job: _Job) -> None:
        self.jobs.pop(job.seq, None)
        self.lib.llama_memory_seq_rm(self.mem, job.seq, -1, -1)
        self.free_seqs.append(job.seq)
        self.free_seqs.sort()
        self.used -= job.cells
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        if self.lora is not None:
            self.lib.llama_adapter_lora_free(self.lora)


class LlamaCppEngine:
    """An `engines.base.Engine` whose tokens come from llama.cpp over `gguf_path`; see the module docstring."""

    def __init__(
        self,
        loaded: LoadedModel,
        gguf_path: str | os.PathLike,
        cache_dir: str | os.PathLike,
        max_resident_adapters: int = 4,
        threads: int | None = None,
        sequences: int = 4,
        context_size: int | None = None,
        adaptive_threads: bool = False,
    ):
        self.loaded = loaded
        self.lib = import_llama_cpp()
        quiet(self.lib)
        self.gguf_path = Path(gguf_path)
        self.label = ""
        self.cache_dir = Path(cache_dir)
        self.threads = threads or max(1, len(os.sched_getaffinity(0)))
        """The most threads a step uses; with `adaptive_threads` each step uses 1 or this, whichever decodes
        faster now (`ThreadTuner`), else always this."""
        self.tuner = ThreadTuner(self.threads) if adaptive_threads else None
        self.sequences = max(1, sequences)
        self.max_resident_adapters = max(1, max_resident_adapters)
        self.n_ctx = int(context_size or min(loaded.context_window, DEFAULT_CONTEXT))
        mparams = self.lib.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = self.lib.llama_model_load_from_file(str(self.gguf_path).encode(), mparams)
        if not self.model:
            raise LlamaCppUnavailable(f"llama.cpp could not load {self.gguf_path.name}")
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model))
        self.arch = self._arch()
        self._converted: dict[tuple[str, tuple[Any, ...]], Path] = {}
        self._convert_lock = threading.Lock()
        self._contexts: OrderedDict[str | None, _Context] = OrderedDict()
        self._waiting: list[_Job] = []
        self._commands: list[str] = []
        self._wake = threading.Condition()
        self._closed = False
        self.steps = 0
        self.batched_tokens = 0
        self._worker = threading.Thread(target=self._loop, name="llama.cpp", daemon=True)
        self._worker.start()

    name = "llama.cpp"

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def spec(self) -> Any:
        """The base model's linear layers and names (`adapters.spec.ModelSpec`), read at load."""
        return self.loaded.spec

    @property
    def context_window(self) -> int:
        """The cells of each llama.cpp context, which the answers batched in it share: prompts are fitted to it."""
        return self.n_ctx

    def describe(self) -> str:
        source = self.label or self.gguf_path.name
        threads = self.tuner.describe() if self.tuner else f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"llama.cpp over {source}, {threads}, up to {self.sequences} answers batched in {self.n_ctx} tokens"

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode() if n >= 0 else None

    def _arch(self) -> Any:
        """The base's architecture and head counts, from llama.cpp's own reading of the file."""
        from engines.gguf import GgufArch

        arch = self._meta("general.architecture") or ""
        heads = int(self._meta(f"{arch}.attention.head_count") or 0)
        kv = self._meta(f"{arch}.attention.head_count_kv")
        return GgufArch(arch, heads, int(kv) if kv else heads)

    # -- adapters -------------------------------------------------------------------------------------
    def lora_file(self, adapter: AdapterHandle) -> Path:
        """The GGUF LoRA for `adapter`, converted (and cached on disk) on first use. Raises AdapterUnusable."""
        from adapters.tensors import check_tensors, load_weights
        from engines.gguf import GgufError, convert_lora, lora_digest

        cache_key = (adapter.key, adapter.version)
        with self._convert_lock:
            path = self._converted.get(cache_key)
            if path is not None and path.is_file():
                return path
            try:
                digest = lora_digest(adapter, self.gguf_path)
            except OSError as exc:
                raise AdapterUnusable(f"The weights of {adapter.name!r} could not be read ({exc.strerror}).") from None
            path = self.cache_dir / f"{_key_prefix(adapter.key)}-{digest}.gguf"
            if not path.is_file():
                tensors = load_weights(adapter)
                check_tensors(tensors, adapter.lora, self.spec)
                started = time.perf_counter()
                try:
                    convert_lora(adapter, tensors, self.gguf_path, path, self.arch)
                except GgufError as exc:
                    raise AdapterUnusable(str(exc)) from None
                log.info("adapter %s converted to GGUF in %.2f s", adapter.key, time.perf_counter() - started)
            self._converted[cache_key] = path
            return path

    @property
    def resident(self) -> list[str]:
        with self._wake:
            return [k for k in self._contexts if k is not None]

    def unload(self, key: str) -> bool:
        """Free the adapter's context once its answers are done, and delete its converted files (a deleted upload
        leaves no copy of its weights behind)."""
        with self._wake:
            was = key in self._contexts
            self._commands.append(key)
            self._converted = {k: v for k, v in self._converted.items() if k[0] != key}
            self._wake.notify()
        with self._convert_lock:
            for path in self.cache_dir.glob(f"{_key_prefix(key)}-*.gguf"):
                path.unlink(missing_ok=True)
        return was

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._worker.join(timeout=10)

    # -- generation -----------------------------------------------------------------------------------
    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        stop: threading.Event | None = None,
        adapter: AdapterHandle | None = None,
        copy_from: Sequence[Sequence[int]] = (),
    ) -> Iterator[str]:
        """Queue the request now and return an iterator of text deltas (see `Engine.stream`). An adapter
        that cannot be converted raises AdapterUnusable from the iterator before any text."""
        stop = stop or threading.Event()
        try:
            lora_path = self.lora_file(adapter) if adapter is not None else None
        except AdapterUnusable as exc:
            return _raises(exc)
        processors = answer_processors(params, copy_from, 0)  # `_pick` passes the generated tokens only
        job = _Job(
            prompt=list(prompt_ids),
            params=params,
            stop=stop,
            stop_ids=frozenset(self.loaded.stop_token_ids),
            processors=processors,
            key=adapter.key if adapter is not None else None,
            lora_path=lora_path,
        )
        with self._wake:
            self._waiting.append(job)
            self._wake.notify()
        return self._deltas(job)

    def _deltas(self, job: _Job) -> Iterator[str]:
        decoder = IncrementalDecoder(self.tokenizer, skip_ids=self.loaded.stop_token_ids)
        try:
            while True:
                item = job.out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield decoder.push(item)
            rest = decoder.flush()
            if rest:
                yield rest
        finally:
            job.stop.set()  # the reader went away or we are done: the scheduler frees the sequence
            with self._wake:
                self._wake.notify()

    # -- the scheduler thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._commands and not self._active():
                    self._wake.wait()
                if self._closed:
                    break
                waiting, self._waiting = self._waiting, []
                commands, self._commands = self._commands, []
            for key in commands:
                self._forget(key)
            waiting = [job for job in waiting if not self._admit(job)]
            if waiting:
                with self._wake:
                    self._waiting[:0] = waiting
            busy = [c for c in self._contexts.values() if c.jobs]
            for context in busy:
                self._step(context)
            if waiting and not busy:  # nothing can free room: wait for the next submission or stop
                with self._wake:
                    self._wake.wait(0.05)
        for context in self._contexts.values():
            for job in list(context.jobs.values()):
                job.out.put(RuntimeError("The engine was closed."))
            context.close()

    def _active(self) -> bool:
        return any(c.jobs for c in self._contexts.values())

    def _forget(self, key: str) -> None:
        context = self._contexts.get(key)
        if context is not None and not context.jobs:
            del self._contexts[key]
            context.close()

    def _context_for(self, job: _Job) -> _Context | None:
        context = self._contexts.get(job.key)
        if context is not None and (job.key is None or context.lora_file == job.lora_path):
            self._contexts.move_to_end(job.key)
            return context
        if context is not None:  # the adapter's files changed: a new context once the old one is idle
            if context.jobs:
                return None
            self._forget(job.key)
        adapters = [k for k in self._contexts if k is not None]
        while job.key is not None and len(adapters) >= self.max_resident_adapters:
            idle = [k for k in adapters if not self._contexts[k].jobs]
            if not idle:
                return None
            self._forget(idle[0])
            adapters.remove(idle[0])
        lora = None
        if job.lora_path is not None:
            lora = self.lib.llama_adapter_lora_init(self.model, str(job.lora_path).encode())
            if not lora:
                raise AdapterUnusable("llama.cpp could not load the converted adapter.")
        try:
            context = _Context(
                self.lib, self.model, job.key, lora, job.lora_path, self.n_ctx, self.sequences, self.threads
            )
        except Exception:  # protects memory: the LoRA the failed context would have owned is freed, then re-raised
            if lora is not None:
                self.lib.llama_adapter_lora_free(lora)
            raise
        self._contexts[job.key] = context
        return context

    def _admit(self, job: _Job) -> bool:
        """Give the job a sequence, or leave it waiting (False). A job that can never run is failed."""
        if job.stop.is_set():
            job.out.put(_DONE)
            return True
        if job.cells > self.n_ctx:
            job.out.put(RuntimeError(f"The request needs {job.cells} tokens of context; the engine has {self.n_ctx}."))
            return True
        try:
            context = self._context_for(job)
        except Exception as exc:  # adapter or context creation failed: this request only
            if not isinstance(exc, AdapterUnusable):
                log.exception("llama.cpp context for %s failed", job.key)
                exc = AdapterUnusable(f"The adapter could not be used ({exc}).")
            job.out.put(exc)
            return True
        return context is not None and context.admit(job)

    def _step(self, context: _Context) -> None:
        """Evaluate every sequence's pending tokens in one batch, then sample one token for each."""
        lib, batch = self.lib, context.batch
        rows: list[tuple[_Job, int]] = []
        n = 0
        for job in list(context.jobs.values()):
            if job.stop.is_set():
                job.out.put(_DONE)
                context.release(job)
                continue
            for i, token in enumerate(job.pending):
                batch.token[n] = token
                batch.pos[n] = job.pos + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = job.seq
                batch.logits[n] = i == len(job.pending) - 1
                n += 1
            job.pos += len(job.pending)
            rows.append((job, n - 1))
            job.pending = []
        if not rows:
            return
        batch.n_tokens = n
        decoding = n == len(rows)  # one new token per sequence: the steps the tuner compares
        if self.tuner is not None:
            threads = self.tuner.pick(len(rows))
            if threads != context.threads:
                lib.llama_set_n_threads(context.ctx, threads, threads)
                context.threads = threads
        started = time.perf_counter()
        status = lib.llama_decode(context.ctx, batch)
        if self.tuner is not None and decoding and status == 0:
            self.tuner.record(context.threads, len(rows), time.perf_counter() - started)
        self.steps += 1
        self.batched_tokens += len(rows)
        if status != 0:
            for job, _ in rows:
                job.out.put(RuntimeError(f"llama.cpp could not decode (status {status})."))
                context.release(job)
            return
        for job, index in rows:
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(context.ctx, index), shape=(self.n_vocab,))
            token = _pick(logits, job)
            if token in job.stop_ids:
                job.out.put([token])
                job.out.put(_DONE)
                context.release(job)
                continue
            job.generated.append(token)
            job.out.put([token])
            if len(job.generated) >= job.params.max_new_tokens:
                job.out.put(_DONE)
                context.release(job)
            else:
                job.pending = [token]


def _pick(logits: np.ndarray, job: _Job) -> int:
    """The next token: the answer path's logits processors, then greedy or temperature / top-p sampling."""
    if job.processors:
        scores = torch.from_numpy(np.array(logits, dtype=np.float32))[None]
        ids = torch.tensor([job.generated], dtype=torch.long)
        for processor in job.processors:
            scores = processor(ids, scores)
        logits = scores[0].numpy()
    params = job.params
    if params.temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / params.temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p)
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), params.top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(job.rng.choice(len(p), p=p))


def _key_prefix(key: str) -> str:
    """The part of a converted file's name that says which adapter it belongs to."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _raises(exc: BaseException) -> Iterator[str]:
    raise exc
    yield ""  # pragma: no cover - makes this a generator
