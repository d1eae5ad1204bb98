"""Generation on the one model: prompt building with history trimming, and token streaming.

`Engine` is the model's single owner. Every generation goes through `Engine.stream`, which
runs `model.generate` on a worker thread under one lock (adapter switching and PEFT's hooks are
global state, so two generations at once can leak into each other) and hands decoded text
back to the caller as it is produced. Adapters are loaded and switched only by the engine
(`core.residency`), from checked `AdapterHandle`s the catalog resolved.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from core.errors import UserInputError
from core.locks import FairRLock
from core.lora import AdapterHandle, ModelSpec
from core.models import LoadedModel
from core.residency import LoraResidency

log = logging.getLogger(__name__)

try:  # On a ZeroGPU Space, GPU work must run inside spaces.GPU; elsewhere this is a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host

    def gpu(fn):  # type: ignore[no-redef]
        return fn


MAX_NEW_TOKENS_CAP = 4096

_NOT_TEXT = re.compile("[\ud800-\udfff\x00]")


def is_text(value: str) -> bool:
    """Whether `value` is text a tokenizer can take: no lone UTF-16 surrogate (which no UTF-8 encodes, and
    which the tokenizer refuses with an internal message) and no NUL."""
    return _NOT_TEXT.search(value) is None


def max_new_tokens_limit(context_window: int) -> int:
    """The most new tokens one answer may ask for: half the context, so a question fits too."""
    return max(1, min(MAX_NEW_TOKENS_CAP, context_window // 2))


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    no_repeat_ngram: int = 0
    """Forbid repeating any n-gram of the answer itself (0 = off). Unlike transformers' own
    `no_repeat_ngram_size`, the prompt does not count, so copying a source sentence stays possible."""
    copy_bias: float = 0.0
    """Added to the logit of the token that continues a span of a source sentence the answer has started
    to copy (0 = off): a small model then copies a fact whole instead of garbling it halfway."""

    def check(self, context_window: int) -> GenerationParams:
        """Raise UserInputError naming the bad value; return self when all are usable."""
        try:
            temperature, top_p, max_new = float(self.temperature), float(self.top_p), self.max_new_tokens
        except (TypeError, ValueError):
            raise UserInputError("Temperature and top-p must be numbers.") from None
        if not (0.0 <= temperature <= 2.0):
            raise UserInputError(f"Temperature must be between 0 and 2 (got {self.temperature}).")
        if not (0.0 < top_p <= 1.0):
            raise UserInputError(f"Top-p must be above 0 and at most 1 (got {self.top_p}).")
        if isinstance(max_new, float) and max_new.is_integer():
            max_new = int(max_new)
        limit = max_new_tokens_limit(context_window)
        if not isinstance(max_new, int) or isinstance(max_new, bool) or not (1 <= max_new <= limit):
            raise UserInputError(
                f"Max new tokens must be a whole number from 1 to {limit} (got {self.max_new_tokens})."
            )
        return GenerationParams(temperature, top_p, max_new, int(self.no_repeat_ngram or 0), float(self.copy_bias or 0))

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": 0,
            "max_new_tokens": self.max_new_tokens,
        }


Message = dict[str, str]


class _NoRepeatInAnswer(LogitsProcessor):
    """Bans the token that would repeat an n-gram already in the generated part (not the prompt)."""

    def __init__(self, n: int, prompt_length: int):
        self.n, self.start = n, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            generated = input_ids[row, self.start :].tolist()
            if len(generated) < self.n:
                continue
            prefix = tuple(generated[-(self.n - 1) :]) if self.n > 1 else ()
            banned = {
                generated[i + self.n - 1]
                for i in range(len(generated) - self.n + 1)
                if tuple(generated[i : i + self.n - 1]) == prefix
            }
            if banned:
                scores[row, list(banned)] = -float("inf")
        return scores


class _CopyBias(LogitsProcessor):
    """Favours the token that continues a source span the answer is copying.

    After each step, the answer's last 1-3 tokens are looked up in the source token sequences; every
    token that follows a match gets `bias` (a longer match, more of it), so once the answer has begun
    to quote "14 hours" or "KX-4471" it finishes the quote rather than drifting to a neighbour."""

    def __init__(self, sources: Sequence[Sequence[int]], prompt_length: int, bias: float, longest: int = 3):
        self.start, self.bias, self.longest = prompt_length, bias, longest
        self.follow: dict[tuple[int, ...], set[int]] = {}
        for ids in sources:
            ids = list(ids)
            for n in range(1, longest + 1):
                for i in range(len(ids) - n):
                    self.follow.setdefault(tuple(ids[i : i + n]), set()).add(ids[i + n])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            generated = input_ids[row, self.start :].tolist()
            for n in range(min(self.longest, len(generated)), 0, -1):
                nexts = self.follow.get(tuple(generated[-n:]))
                if nexts:
                    scores[row, list(nexts)] += self.bias * n / self.longest
                    break
        return scores


def answer_processors(
    params: GenerationParams, copy_from: Sequence[Sequence[int]], prompt_length: int
) -> list[LogitsProcessor]:
    """The answer path's logits processors for one answer whose generated tokens start at `prompt_length`:
    the copy bias toward `copy_from` and the in-answer repetition guard, each when `params` turns it on."""
    processors: list[LogitsProcessor] = []
    if params.copy_bias and copy_from:
        processors.append(_CopyBias(copy_from, prompt_length, params.copy_bias))
    if params.no_repeat_ngram:
        processors.append(_NoRepeatInAnswer(params.no_repeat_ngram, prompt_length))
    return processors


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


class IncrementalDecoder:
    """Turns a growing list of token ids into text deltas without re-decoding everything.

    Holds text back while it ends in an incomplete UTF-8 sequence (decoded as U+FFFD), so a
    Korean syllable split across byte tokens never reaches the user half-made.
    """

    def __init__(self, tokenizer: Any, skip_ids: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.skip = set(skip_ids)
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, new_ids: Sequence[int]) -> str:
        self.ids.extend(i for i in new_ids if i not in self.skip)
        decode = self.tokenizer.decode
        prefix_text = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        full_text = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return full_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever was held back at the end (an incomplete character is shown as U+FFFD)."""
        prefix_text = self.tokenizer.decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        full_text = self.tokenizer.decode(self.ids[self.prefix :], skip_special_tokens=True)
        self.prefix = self.read = len(self.ids)
        return full_text[len(prefix_text) :]


class Engine:
    """The single owner of the loaded model: prompts, trimming, streamed generation and adapters.

    Everything that changes or runs the model holds `lock` (first come, first served): generation,
    loading, switching and unloading adapters (`core.residency`, which only the engine calls).
    Callers hand it resolved values (`AdapterHandle`s from the catalog), never hooks.
    """

    def __init__(
        self, loaded: LoadedModel, max_message_chars: int = 8000, max_resident_adapters: int = 4, batch: int = 1
    ):
        self.loaded = loaded
        self.max_message_chars = max_message_chars
        self.lock = FairRLock()  # first come, first served: a batch never starves a chat
        self.residency = LoraResidency(loaded, max_resident_adapters)
        self._base_norms: dict[str, float] | None = None
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

    def check_weights(self, adapter: AdapterHandle, max_update: float) -> None:
        """The upload-time check of an adapter's numbers: every tensor named, shaped, float and finite, and
        no layer's update out of proportion to the layer (`core.residency.check_update_sizes`). Raises
        AdapterUnusable naming the tensor. Reads the base weights, never changes the model."""
        from core.residency import check_tensors, check_update_sizes, load_weights

        tensors = load_weights(adapter)
        check_tensors(tensors, adapter.lora, self.spec)
        check_update_sizes(tensors, adapter.lora, self.base_norms(), max_update)

    def base_norms(self) -> dict[str, float]:
        """Frobenius norm of each linear layer's base weight (computed once): from the model, or, when it holds
        no weights (llama.cpp runs them), from its safetensors file one tensor at a time. Empty when neither is
        here: a model server's weights, or 4-bit packed ones."""
        if self._base_norms is None:
            norms: dict[str, float] = {}
            if self.loaded.has_weights and not self.loaded.quantization:
                base = self.residency.base
                modules = dict(base.named_modules())
                with torch.inference_mode():
                    for path in self.spec.linear:
                        layer = modules.get(path)
                        weight = getattr(getattr(layer, "base_layer", layer), "weight", None)
                        if weight is not None:
                            norms[path] = float(torch.linalg.matrix_norm(weight.float()))
            elif self.loaded.weights_file is not None and self.loaded.weights_file.is_file():
                from safetensors import safe_open

                tied = {"lm_head.weight": "model.embed_tokens.weight"}  # a tied head is saved once, as the embedding
                with safe_open(str(self.loaded.weights_file), framework="pt") as f, torch.inference_mode():
                    names = set(f.keys())
                    for path in self.spec.linear:
                        name = f"{path}.weight"
                        name = name if name in names else tied.get(name, "")
                        if name in names:
                            norms[path] = float(torch.linalg.matrix_norm(f.get_tensor(name).float()))
            self._base_norms = norms
        return self._base_norms

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

    def check_message(self, message: Any) -> str:
        if not isinstance(message, str) or not message.strip():
            raise UserInputError("Please type a message first.")
        if not is_text(message):
            raise UserInputError(
                "Your message holds characters that are not text (a lone surrogate or a NUL); please type it again."
            )
        if len(message) > self.max_message_chars:
            raise UserInputError(
                f"Your message is {len(message):,} characters long; the limit is {self.max_message_chars:,}."
            )
        return message.strip()

    def _encode(self, messages: list[Message]) -> list[int]:
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:  # some templates (Gemma) reject a system role
            if messages and messages[0]["role"] == "system" and "system" in str(exc).lower():
                merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
                return self._encode(merged + messages[2:])
            raise
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def build_prompt(
        self, system: str | None, history: Sequence[Message], user: str, max_new_tokens: int
    ) -> tuple[list[int], int]:
        """Chat-template the conversation, dropping the oldest turns until it fits.

        Returns the prompt ids and how many history messages were dropped. Raises
        UserInputError when even the newest message alone does not fit.
        """
        budget = self.context_window - max_new_tokens
        head = [{"role": "system", "content": system}] if system else []
        turns = [
            {"role": m["role"], "content": str(m["content"])}
            for m in history
            if m.get("role") in ("user", "assistant") and m.get("content")
        ]
        tail = [{"role": "user", "content": user}]
        dropped = 0
        while True:
            ids = self._encode(head + turns + tail)
            if len(ids) <= budget:
                return ids, dropped
            if not turns:
                alone = len(self._encode(head + tail))
                raise UserInputError(
                    f"Your message is about {alone:,} tokens, but this model reads at most {budget:,} "
                    f"tokens when it may answer with {max_new_tokens:,}; shorten it or lower max new tokens."
                )
            # Drop the oldest exchange: a user message and the replies up to the next user message.
            cut = 1
            while cut < len(turns) and turns[cut]["role"] != "user":
                cut += 1
            dropped += cut
            turns = turns[cut:]

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
            except BaseException as exc:
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
        except BaseException as exc:
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
    engine: Engine,
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
