"""Decoding helpers every in-process engine shares: the answer path's logits processors (the in-answer
repetition guard and the copy bias), applied the same way by transformers' `generate` and by the llama.cpp
scheduler's sampler, and the incremental detokenizer that turns token ids into text deltas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from engines.base import GenerationParams


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
