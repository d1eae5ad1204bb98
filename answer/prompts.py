"""Everything about the text the model reads: what a mode may see of the conversation, the checks on what a
user typed, the RAG and grounded user turns, and fitting the chat-templated prompt to the context window.

No engine builds prompts or checks messages: the pipeline hands an engine the token ids made here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from answer.evidence import Evidence
from answer.ports import Passage
from answer.types import AnswerRequest, Message, Mode
from core.errors import UserInputError
from core.language import detect_language, language_name

RAG_INSTRUCTION = (
    "Answer the question using only the numbered sources below, and cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that the documents do not say."
)
NOTHING_FOUND_HINT = "Try other words, or add a document that covers it in the Knowledge tab."
NOTHING_FOUND = f"I found nothing about this in the documents, so I will not guess. {NOTHING_FOUND_HINT}"

_NOT_TEXT = re.compile("[\ud800-\udfff\x00]")


def is_text(value: str) -> bool:
    """Whether `value` is text a tokenizer can take: no lone UTF-16 surrogate (which no UTF-8 encodes, and
    which the tokenizer refuses with an internal message) and no NUL."""
    return _NOT_TEXT.search(value) is None


def check_message(message: Any, max_chars: int) -> str:
    """The message, stripped; UserInputError (one sentence) when it is empty, not text, or too long."""
    if not isinstance(message, str) or not message.strip():
        raise UserInputError("Please type a message first.")
    if not is_text(message):
        raise UserInputError(
            "Your message holds characters that are not text (a lone surrogate or a NUL); please type it again."
        )
    if len(message) > max_chars:
        raise UserInputError(f"Your message is {len(message):,} characters long; the limit is {max_chars:,}.")
    return message.strip()


def history_for(
    mode: Mode, history: Sequence[Message], max_messages: int = 16, max_chars: int = 16000
) -> tuple[tuple[Message, ...], tuple[str, ...], int]:
    """What a mode may see of a conversation: (turns, earlier questions, messages left out).

    Only the newest `max_messages` messages, and no more than `max_chars` characters of them, are read at all:
    a long conversation costs no more than a short one (the oldest messages would not fit the context window
    anyway). A mode never sees answers another mode wrote: a message tagged with a "mode" key (the chat tags
    every exchange) is kept only for that mode; untagged history (an API caller's) is kept as it is.
    RAG and Hybrid see no earlier answers at all, only the earlier questions, so an invented answer
    cannot pass itself off as a source. UserInputError when a kept turn is not text."""
    history = list(history) if isinstance(history, (list, tuple)) else []
    newest = history[-max_messages:]
    kept_chars, start = 0, len(newest)
    while start > 0:
        content = newest[start - 1].get("content") if isinstance(newest[start - 1], dict) else None
        kept_chars += len(content) if isinstance(content, str) else 0
        if kept_chars > max_chars:
            break
        start -= 1
    newest, left_out = newest[start:], len(history) - len(newest) + start
    turns = [m for m in newest if isinstance(m, dict) and m.get("role") in ("user", "assistant") and m.get("content")]
    if mode.uses_documents:
        kept, earlier = (), tuple(str(m["content"]) for m in turns if m["role"] == "user")
    else:
        kept, earlier = tuple(m for m in turns if m.get("mode") in (None, mode.value)), ()
    if not all(is_text(str(m["content"])) for m in kept) or not all(map(is_text, earlier)):
        raise UserInputError(
            "The conversation holds characters that are not text (a lone surrogate or a NUL); clear it and ask again."
        )
    return kept, earlier, left_out


@dataclass(frozen=True)
class UserInput:
    """What a person typed, checked once: the message, the turns and earlier questions the mode may see, the
    system prompt, and the question's language (detected here, once)."""

    message: str
    history: tuple[Message, ...]
    earlier_questions: tuple[str, ...]
    system_prompt: str
    language: str
    note: str | None = None
    """Says how many of the oldest messages were left out, when any were."""


def read_input(
    mode: Mode,
    message: Any,
    history: Sequence[Message],
    system: str,
    max_chars: int,
    max_history_messages: int = 16,
    max_history_chars: int = 16000,
) -> UserInput:
    """Check everything a person typed for `mode` (`check_message`, `history_for`, the system prompt) and detect
    the question's language. Raises UserInputError (one sentence) for the first thing wrong."""
    message = check_message(message, max_chars)
    turns, earlier, left_out = history_for(mode, history or (), max_history_messages, max_history_chars)
    if system and not is_text(system):
        raise UserInputError("The system prompt holds characters that are not text (a lone surrogate or a NUL).")
    note = None
    if left_out:
        note = (
            f"Only the newest messages of this conversation were read (at most {max_history_messages:,} messages "
            f"and {max_history_chars:,} characters); the {left_out:,} oldest were left out."
        )
    return UserInput(message, turns, earlier, system, detect_language(message), note)


def rag_message(question: str, passages: Sequence[Passage], earlier: Sequence[str] = ()) -> str:
    """The user turn with whole passages: instruction, numbered sources, then the question."""
    blocks = [f"[{i}] {p.source}, {p.location}:\n{p.text.strip()}" for i, p in enumerate(passages, 1)]
    sources = "\n\n".join(blocks)
    return f"{RAG_INSTRUCTION}\n\n{_earlier(earlier)}Sources:\n{sources}\n\nQuestion: {question}"


def grounded_message(
    question: str, evidence: Sequence[Evidence], earlier: Sequence[str] = (), language: str = "en"
) -> str:
    """The user turn for small models: the question, the few matching source sentences numbered by their
    passage, the question again, and a one-sentence answer instruction in the question's `language`."""
    in_language = "" if language == "en" else f" in {language_name(language)}"
    lines = [f"Question: {question}", "", "Sources:"]
    lines += [f"[{e.source}] {e.text}" for e in evidence]
    instruction = f"Answer in one short sentence{in_language}, using the sources, and cite the source number like [1]."
    lines += ["", f"Question: {question}", instruction]
    return _earlier(earlier) + "\n".join(lines)


def _earlier(questions: Sequence[str]) -> str:
    if not questions:
        return ""
    return "Earlier questions in this conversation: " + " | ".join(q.strip()[:300] for q in questions[-3:]) + "\n\n"


def _oldest_exchange(turns: Sequence[Message]) -> int:
    """How many messages the oldest exchange is: a user message and the replies up to the next user message."""
    cut = 1
    while cut < len(turns) and turns[cut]["role"] != "user":
        cut += 1
    return cut


class Prompter:
    """Chat-templates prompts with the model's tokenizer and fits them to its context window."""

    def __init__(self, tokenizer: Any, context_window: int):
        self.tokenizer, self.context_window = tokenizer, context_window

    def token_ids(self, text: str) -> list[int]:
        """`text` as the model's tokens, without special tokens (what the copy bias follows)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode(self, messages: list[Message]) -> list[int]:
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:  # some templates (Gemma) reject a system role: merge it into the first turn
            if messages and messages[0]["role"] == "system" and "system" in str(exc).lower():
                merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
                return self._encode(merged + messages[2:])
            raise
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def build(
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
        turns, dropped = self._surely_too_old(head, turns, tail, budget)
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
            cut = _oldest_exchange(turns)
            dropped += cut
            turns = turns[cut:]

    def _surely_too_old(
        self, head: list[Message], turns: list[Message], tail: list[Message], budget: int
    ) -> tuple[list[Message], int]:
        """Drop, before any chat-templating, the oldest exchanges that cannot fit even by their text's tokens
        alone (a lower bound of what the template makes of them): the exact fitting after it re-encodes the
        conversation a few times, not once per exchange of a long one. Returns (turns kept, messages dropped)."""
        if not turns:
            return turns, 0
        encoded = self.tokenizer([t["content"] for t in turns], add_special_tokens=False)["input_ids"]
        lengths = [len(ids) for ids in encoded]
        total, dropped = len(self._encode(head + tail)) + sum(lengths), 0
        while turns and total > budget:
            cut = _oldest_exchange(turns)
            total -= sum(lengths[:cut])
            turns, lengths, dropped = turns[cut:], lengths[cut:], dropped + cut
        return turns, dropped

    def fit(
        self, request: AnswerRequest, passages: list[Passage], evidence: list[Evidence], max_new_tokens: int
    ) -> tuple[list[int], int, list[Passage], list[Evidence]]:
        """The prompt of `request` from the evidence sentences, or else the whole passages, or else the question:
        (ids, history messages dropped, passages kept, sentences kept). The lowest-ranked sentences (or passages)
        are dropped until it fits."""
        message, earlier = request.message, request.earlier_questions
        while True:
            if evidence:
                user = grounded_message(message, evidence, earlier, request.language)
            elif passages:
                user = rag_message(message, passages, earlier)
            else:
                user = message
            try:
                ids, dropped = self.build(request.system_prompt, request.history, user, max_new_tokens)
                return ids, dropped, passages, evidence
            except UserInputError:
                if len(evidence) > 1:
                    evidence = evidence[:-1]
                    continue
                if not evidence and len(passages) > 1:
                    passages = passages[:-1]
                    continue
                if passages:
                    self.build(request.system_prompt, (), message, max_new_tokens)  # the question alone?
                    raise UserInputError(
                        "The retrieved passage does not fit this model's context window with your question; "
                        "lower max new tokens or the chunk size."
                    ) from None
                raise
