"""The four-mode answer pipeline: Base, RAG, Fine-tuned and Hybrid.

`AnswerPipeline.answer` validates the input, builds the prompt for the chosen mode, and
yields `AnswerUpdate`s whose text grows as tokens stream in. RAG puts the retrieved passages,
numbered, into the user turn with an instruction to cite them; Fine-tuned runs the chosen
adapter; Hybrid does both. Modes whose parts are missing say so in one sentence.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from core.generation import Engine, GenerationParams, Message, UserInputError
from core.retrieval import Passage, Retriever


class Mode(str, Enum):
    BASE = "Base"
    RAG = "RAG"
    FINETUNED = "Fine-tuned"
    HYBRID = "Hybrid"

    @property
    def uses_documents(self) -> bool:
        return self in (Mode.RAG, Mode.HYBRID)

    @property
    def uses_adapter(self) -> bool:
        return self in (Mode.FINETUNED, Mode.HYBRID)

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise UserInputError(f"Unknown mode {value!r}; choose one of {names}.") from None


@dataclass
class AnswerUpdate:
    """The answer so far. `text` is cumulative; `notes` are short remarks shown with it;
    `sources` are the passages the prompt carried, numbered from 1 as the model saw them.
    `status` says where the text came from: "answer" (the model), "nothing_found" (RAG found no
    relevant passage and declined without asking the model) or "unavailable" (the mode lacks a part)."""

    text: str
    mode: Mode
    done: bool = False
    status: str = "answer"
    notes: list[str] = field(default_factory=list)
    sources: list[Passage] = field(default_factory=list)
    tokens: int = 0
    first_token_s: float | None = None
    elapsed_s: float = 0.0

    @property
    def cited(self) -> list[int]:
        """Source numbers the answer cites as [n], in order of first appearance."""
        seen: list[int] = []
        for match in re.finditer(r"\[(\d+)\]", self.text):
            number = int(match.group(1))
            if 1 <= number <= len(self.sources) and number not in seen:
                seen.append(number)
        return seen


RAG_INSTRUCTION = (
    "Answer the question using only the numbered sources below, and cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that the documents do not say."
)
NOTHING_FOUND = (
    "I found nothing about this in the documents, so I will not guess. "
    "Try other words, or add a document that covers it in the Knowledge tab."
)


def rag_message(question: str, passages: Sequence[Passage]) -> str:
    """The user turn for RAG: instruction, numbered sources, then the question."""
    blocks = [f"[{i}] {p.source}, {p.location}:\n{p.text.strip()}" for i, p in enumerate(passages, 1)]
    return f"{RAG_INSTRUCTION}\n\nSources:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


class AnswerPipeline:
    """Answers in one of four modes on the one engine.

    `retriever` (any `core.retrieval.Retriever`) enables RAG and Hybrid. Adapters are chosen
    per call by the key `Engine.use_adapter` understands.
    """

    def __init__(self, engine: Engine, system_prompt: str = "", retriever: Retriever | None = None):
        self.engine = engine
        self.system_prompt = system_prompt
        self.retriever = retriever

    def answer(
        self,
        message: str,
        history: Sequence[Message] = (),
        mode: Mode | str = Mode.BASE,
        params: GenerationParams | None = None,
        stop: threading.Event | None = None,
        system_prompt: str | None = None,
        adapter: str | None = None,
        adapter_note: str | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Stream the answer to `message`; `adapter_note` is shown with answers that use the adapter.

        Raises UserInputError (one sentence) on bad input before any generation starts. A
        mode whose parts are missing, or RAG with nothing relevant retrieved, yields one
        finished update that says so instead of letting the model invent an answer.
        """
        mode = Mode.parse(mode)
        message = self.engine.check_message(message)
        params = (params or GenerationParams()).check(self.engine.context_window)
        uses_documents, uses_adapter = mode.uses_documents, mode.uses_adapter
        missing = []
        if uses_documents and self.retriever is None:
            missing.append("a document index, and none is loaded")
        if uses_adapter and not adapter:
            missing.append("an adapter; choose one under Adapters")
        if missing:
            message = f"{mode.value} mode needs " + " and ".join(missing) + "."
            yield AnswerUpdate(message, mode, done=True, status="unavailable")
            return

        notes = [adapter_note] if uses_adapter and adapter_note else []
        passages: list[Passage] = []
        if uses_documents:
            passages = self.retriever.search(message)
            if not passages:
                yield AnswerUpdate(NOTHING_FOUND, mode, done=True, notes=notes, status="nothing_found")
                return
        system = self.system_prompt if system_prompt is None else system_prompt
        prompt_ids, dropped, passages = self._fit(system, history, message, passages, params.max_new_tokens)
        if dropped:
            notes.append(f"Dropped the {dropped} oldest messages to fit the context window.")

        started = time.perf_counter()
        update = AnswerUpdate("", mode, notes=notes, sources=passages)
        for delta in self.engine.stream(prompt_ids, params, stop, adapter if uses_adapter else None):
            update.tokens += 1
            if not delta:
                continue
            update.text += delta
            if update.first_token_s is None:
                update.first_token_s = time.perf_counter() - started
            update.elapsed_s = time.perf_counter() - started
            yield update
        update.done = True
        update.elapsed_s = time.perf_counter() - started
        yield update

    def _fit(
        self, system: str, history: Sequence[Message], message: str, passages: list[Passage], max_new_tokens: int
    ) -> tuple[list[int], int, list[Passage]]:
        """Build the prompt; with passages, drop the lowest-ranked ones until it fits."""
        while True:
            user = rag_message(message, passages) if passages else message
            try:
                ids, dropped = self.engine.build_prompt(system, history, user, max_new_tokens)
                return ids, dropped, passages
            except UserInputError:
                if len(passages) > 1:
                    passages = passages[:-1]
                    continue
                if passages:
                    self.engine.build_prompt(system, (), message, max_new_tokens)  # the question alone too long?
                    raise UserInputError(
                        "The retrieved passage does not fit this model's context window with your question; "
                        "lower max new tokens or the chunk size."
                    ) from None
                raise
