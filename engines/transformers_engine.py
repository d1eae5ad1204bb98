"""The transformers engine: `generate` on the torch weights (the GPU path, Phi-3 in bf16 or nf4, and the fallback).

`TransformersEngine` is the model's single owner. Every generation goes through `stream`, which
runs `model.generate` on a worker thread under one lock (adapter switching and PEFT's hooks are
global state, so two generations at once can leak into each other) and hands decoded text
back to the caller as it is produced. Requests waiting with the same settings share one `generate`, each row
with its own adapter (PEFT `adapter_names`). Adapters are loaded and switched only by the engine
(`engines.residency`, the LRU of PEFT adapters), from checked `AdapterHandle`s the catalog resolved.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from adapters.spec import AdapterHandle, ModelSpec
from core.locks import FairRLock
from engines.base import GenerationParams
from engines.decoding import IncrementalDecoder, answer_processors
from engines.loading import LoadedModel
from engines.residency import LoraResidency

log = logging.getLogger(__name__)

try:  # On a ZeroGPU Space, GPU work must run inside spaces.GPU; elsewhere this is a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host

    def gpu(fn):  # type: ignore[no-redef]
        return fn


class _TokenQueue(BaseStreamer):
    """Receives new token ids from generate(); the prompt's ids (the first put) are skipped."""

    _DONE = object()

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(self._DONE)


class TransformersEngine:
    """The single owner of the loaded torch model: streamed, batched generation and adapter residency.

    Everything that changes or runs the model holds `lock` (first come, first served): generation,
    loading, switching and unloading adapters (`engines.residency`, which only the engine calls).
    Callers hand it resolved values (`AdapterHandle`s from the catalog), never hooks.
    """

    def __init__(self, loaded: LoadedModel, max_resident_adapters: int = 4, batch: int = 1):
        self.loaded = loaded
        self.lock = FairRLock()  # first come, first served: a batch never starves a chat
        self.residency = LoraResidency(loaded, max_resident_adapters)
        self.batch = max(1, batch)
        """Requests waiting for the model that may run as one `generate` call (same settings; adapters mixed
        per row through PEFT's `adapter_names`); 1 runs each alone."""
        self._pending: list[_Request] = []
        self._pending_lock = threading.Lock()
        self.batch_window_s = 0.02
        self.batches = self.batched_rows = self.mixed_batches = 0

    name = "transformers"

    def describe(self) -> str:
        """The engine in a few words, for the status line."""
        return "transformers generate, one answer at a time"

    def close(self) -> None:
        """Free what the engine holds beyond the model (nothing, for transformers)."""

    @property
    def spec(self) -> ModelSpec:
        """The base model's linear layers and names, which adapters are checked against."""
        return self.residency.spec

    @property
    def resident(self) -> list[str]:
        """Keys of the adapters loaded on the model, least recently used first."""
        with self.lock:
            return self.residency.resident

    def unload(self, key: str) -> bool:
        """Take an adapter off the model (after its files were deleted or replaced); whether it was on."""
        with self.lock:
            return self.residency.unload(key)

    @contextlib.contextmanager
    def using(self, adapter: AdapterHandle | None) -> Iterator[Any]:
        """Hold the model with `adapter` active (None: the bare base) and yield it, for direct forward
        passes (tests, benchmarks). Raises AdapterUnusable before yielding if it cannot be loaded, and
        RuntimeError when this process holds no torch weights (llama.cpp or a model server runs them)."""
        if not self.loaded.has_weights:
            raise RuntimeError(f"The {self.name} engine holds no torch weights to run directly.")
        with self.lock:
            self.residency.activate(adapter)
            yield self.loaded.model

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def context_window(self) -> int:
        return self.loaded.context_window

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        stop: threading.Event | None = None,
        adapter: AdapterHandle | None = None,
        copy_from: Sequence[Sequence[int]] = (),
    ) -> Iterator[str]:
        """Yield one text delta per generated token, as it is generated, with `adapter` active.
        `copy_from`: token ids of source sentences that `params.copy_bias` favours continuing.

        A delta is empty while a multi-byte character is still incomplete and for the stop
        token. Closing the iterator (or setting `stop`) stops generation. An adapter that
        cannot be used raises AdapterUnusable (a UserInputError) from the iterator before any text.
        """
        return _stream(self, list(prompt_ids), params, stop or threading.Event(), adapter, copy_from)

    def _generate(self, request: _Request) -> None:
        """Run `request` once the model is free, together with compatible requests waiting by then; a request
        another worker already took into its batch is left to that batch."""
        if self.batch == 1:
            self._run_alone(request)
            return
        with self._pending_lock:
            self._pending.append(request)
        time.sleep(self.batch_window_s)  # requests sent together (Compare's four) arrive within it
        with self.lock:
            with self._pending_lock:
                if request not in self._pending:
                    return
                group = self._take_group(request)
            if len(group) == 1:
                self._run_alone(request)
            else:
                self._run_group(group)

    def _take_group(self, first: _Request) -> list[_Request]:
        """`first` and the waiting requests that can share its `generate` call (same settings, at most the
        resident-adapter limit of distinct adapters), removed from the waiting list. Holds `_pending_lock`."""
        group, adapters = [first], {first.adapter.key if first.adapter else None}
        for other in self._pending:
            if len(group) >= self.batch:
                break
            key = other.adapter.key if other.adapter else None
            if other is first or other.params != first.params:
                continue
            if key not in adapters and len([a for a in adapters | {key} if a]) > self.residency.max_resident:
                continue
            group.append(other)
            adapters.add(key)
        self._pending = [r for r in self._pending if r not in group]
        return group

    def _run_alone(self, request: _Request) -> None:
        try:
            with self.lock:
                self.residency.activate(request.adapter)
                with torch.inference_mode():
                    self._run_rows([request], None)
        except BaseException as exc:  # surfaced to the consumer, never lost in the thread
            request.errors.append(exc)
        finally:
            request.streamer.end()

    def _run_group(self, group: list[_Request]) -> None:
        """One left-padded `generate` for the group; each row with its own adapter (PEFT `adapter_names`), its
        own stop event and logits processors; each row's tokens go to its own stream. Holds `lock`."""
        names: list[str] = []
        rows: list[_Request] = []
        for request in group:  # load every adapter first; one that fails is that request's error alone
            try:
                self.residency.activate(request.adapter)
            except BaseException as exc:  # protects the batch: this request's adapter fails it alone
                request.errors.append(exc)
                request.streamer.end()
                continue
            rows.append(request)
        if not rows:
            return
        for request in rows:
            key = request.adapter.key if request.adapter else None
            names.append(self.residency.adapter_name(key) if key else "__base__")
        try:
            adapted = next((r.adapter for r in rows if r.adapter is not None), None)
            self.residency.activate(adapted)  # LoRA layers on (rows choose their own adapter below)
            with torch.inference_mode():
                self._run_rows(rows, names if adapted is not None else None)
            self.batches += 1
            self.batched_rows += len(rows)
            self.mixed_batches += len(set(names)) > 1
        except BaseException as exc:  # protects the readers: each row's stream raises it, none waits forever
            for request in rows:
                request.errors.append(exc)
        finally:
            for request in rows:
                request.streamer.end()

    def _run_rows(self, rows: list[_Request], adapter_names: list[str] | None) -> None:
        """One `generate` over `rows` (left-padded), each row with its own stop event, logits processors and
        stream; `adapter_names` picks each row's adapter (None: whatever the model has active)."""
        width = max(len(r.prompt) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.loaded.stop_token_ids[0]
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt) :] = 1
        params = rows[0].params
        per_row = [answer_processors(params, r.copy_from, width) for r in rows]
        device = self.loaded.device
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        self.loaded.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            streamer=_RowRouter([r.streamer for r in rows], self.loaded.stop_token_ids, [r.stop for r in rows]),
            logits_processor=LogitsProcessorList([_PerRow(per_row)]),
            stopping_criteria=StoppingCriteriaList([_StopRows([r.stop for r in rows])]),
            eos_token_id=self.loaded.stop_token_ids,
            pad_token_id=pad,
            **params.generate_kwargs(),
            **extra,
        )


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    params: GenerationParams
    stop: threading.Event
    adapter: AdapterHandle | None
    copy_from: Sequence[Sequence[int]]
    streamer: _TokenQueue
    errors: list[BaseException]


class _PerRow(LogitsProcessor):
    """Each row's own logits processors, applied to that row only."""

    def __init__(self, rows: list[list[LogitsProcessor]]):
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for i, processors in enumerate(self.rows):
            for processor in processors:
                scores[i : i + 1] = processor(input_ids[i : i + 1], scores[i : i + 1])
        return scores


class _StopRows(StoppingCriteria):
    """Ends each row when its own stop event is set (the reader went away, or Stop)."""

    def __init__(self, events: list[threading.Event]):
        self.events = events

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.tensor([e.is_set() for e in self.events], dtype=torch.bool, device=input_ids.device)


class _RowRouter(BaseStreamer):
    """Sends each row's new token to that row's stream, until the row ends (a stop token; later puts are padding)."""

    def __init__(self, streams: list[_TokenQueue], stop_ids: Sequence[int], events: list[threading.Event]):
        self.streams, self.stop_ids, self.events = streams, set(stop_ids), events
        self.live = [True] * len(streams)
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if self.live[i] and not self.events[i].is_set():
                self.streams[i].queue.put([token])
                self.live[i] = token not in self.stop_ids

    def end(self) -> None:
        pass  # each row's stream is ended by the engine, after errors are recorded


@gpu
def _stream(
    engine: TransformersEngine,
    prompt_ids: list[int],
    params: GenerationParams,
    stop: threading.Event,
    adapter: AdapterHandle | None,
    copy_from: Sequence[Sequence[int]] = (),
) -> Iterator[str]:
    streamer = _TokenQueue()
    errors: list[BaseException] = []
    request = _Request(prompt_ids, params, stop, adapter, copy_from, streamer, errors)
    worker = threading.Thread(target=engine._generate, args=(request,), name="generate", daemon=True)
    decoder = IncrementalDecoder(engine.tokenizer, skip_ids=engine.loaded.stop_token_ids)
    started = time.perf_counter()
    worker.start()
    try:
        while True:
            item = streamer.queue.get()
            if item is _TokenQueue._DONE:
                break
            yield decoder.push(item)
        if errors:
            raise errors[0]
        rest = decoder.flush()
        if rest:
            yield rest
    finally:
        stop.set()  # the consumer went away (Stop button, closed tab) or we are done
        worker.join()
        log.debug("generated %d tokens in %.2f s", len(decoder.ids), time.perf_counter() - started)
