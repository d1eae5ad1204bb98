"""Chat-template a conversation into token ids whose labels cover only the assistant's tokens.

The spans come from rendering the conversation prefix by prefix with the tokenizer's own
chat template, so they are exact for any template (Phi-3, ChatML, Llama 3, ...) without
knowing its markers:

- an assistant turn starts where `render(turns before it, add_generation_prompt=True)` stops
  matching the full conversation's tokens: everything up to there is what the model is shown
  at inference time;
- it ends where `render(turns up to and including it)` stops matching: its closing marker
  (`<|end|>`, `<|im_end|>`, ...) is inside the span, so the model learns to stop.

Every other token (system, user, template markup, padding) gets the label -100, which the
loss ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from train.formats import Conversation

IGNORE_INDEX = -100


class TemplateError(ValueError):
    """The tokenizer cannot chat-template this conversation; the message says which and why."""


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def assistant_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _ids(tokenizer: Any, conversation: Conversation, add_generation_prompt: bool) -> list[int]:
    # Render to text first, then tokenize without adding specials: the template already holds
    # them, and this is how the app tokenizes its prompts at inference time.
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def assistant_spans(tokenizer: Any, conversation: Conversation) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the whole conversation and the [start, end) token span of every assistant turn.

    Raises TemplateError when the tokenizer has no chat template or the template rejects the
    conversation (some refuse a system role or require strict user/assistant alternation).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat template; use an instruct/chat model")
    try:
        full = _ids(tokenizer, conversation, add_generation_prompt=False)
        spans = []
        for i, message in enumerate(conversation):
            if message["role"] != "assistant":
                continue
            prompt = _ids(tokenizer, conversation[:i], add_generation_prompt=True)
            upto = _ids(tokenizer, conversation[: i + 1], add_generation_prompt=False)
            start, end = _common_prefix(prompt, full), _common_prefix(upto, full)
            if end > start:
                spans.append((start, end))
    except (jinja2.TemplateError, ValueError, TypeError, KeyError) as exc:  # e.g. "roles must alternate"
        raise TemplateError(f"the chat template rejected the conversation: {exc}") from exc
    return full, spans


def encode(tokenizer: Any, conversation: Conversation, max_seq_len: int) -> Example | None:
    """Token ids and labels (-100 outside assistant spans), cut to `max_seq_len` tokens.

    Returns None when nothing of an assistant turn is left within `max_seq_len` (the caller
    counts and reports such drops). Raises TemplateError as `assistant_spans` does.
    """
    ids, spans = assistant_spans(tokenizer, conversation)
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        labels[start:end] = ids[start:end]
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    # The model predicts token t from tokens < t, so a label on the first token teaches nothing.
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return None
    return Example(ids, labels)
