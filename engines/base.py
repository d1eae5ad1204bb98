"""What every engine is to the rest of the app: the `Engine` protocol and the settings of one generation.

An engine is the single owner of the model's weights wherever they are: in torch (`engines.transformers_engine`),
in llama.cpp (`engines.llamacpp`), or on a model server (`engines.openai_client`). It turns prompt token ids into
text deltas, with an adapter active or not. It builds no prompt and checks no message (`answer.prompts` does),
and no engine inherits another; `engines.factory` picks one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from adapters.spec import AdapterHandle, ModelSpec
from core.errors import UserInputError
from engines.loading import LoadedModel

MAX_NEW_TOKENS_CAP = 4096


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


@runtime_checkable
class Engine(Protocol):
    """The model's single owner. Everything that runs the model or changes which adapters it holds goes
    through one engine; callers hand it token ids and resolved `AdapterHandle`s, never hooks."""

    name: str
    """"transformers", "llama.cpp" or "openai"."""
    loaded: LoadedModel
    """What this process loaded of the model: tokenizer, config, stop tokens and layer shapes; torch weights
    only for the transformers engine."""

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (prompts are chat-templated and counted with it)."""

    @property
    def context_window(self) -> int:
        """How many tokens a prompt and its answer may take together."""

    @property
    def spec(self) -> ModelSpec:
        """The base model's linear layers and names, which adapters are checked against."""

    @property
    def resident(self) -> list[str]:
        """Keys of the adapters the engine holds now, least recently used first."""

    def describe(self) -> str:
        """The engine in a few words, for the status line."""

    def unload(self, key: str) -> bool:
        """Drop every copy of an adapter (its files were deleted or replaced); whether it was held."""

    def close(self) -> None:
        """Free what the engine holds (threads, contexts, connections)."""

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        stop: threading.Event | None = None,
        adapter: AdapterHandle | None = None,
        copy_from: Sequence[Sequence[int]] = (),
    ) -> Iterator[str]:
        """Yield one text delta per generated token, as it is generated, with `adapter` active (None: the bare
        base). `copy_from`: token ids of source sentences that `params.copy_bias` favours continuing.

        A delta is empty while a multi-byte character is still incomplete and for the stop token. Closing the
        iterator (or setting `stop`) stops generation. An adapter that cannot be used raises AdapterUnusable
        (a UserInputError) from the iterator before any text."""
