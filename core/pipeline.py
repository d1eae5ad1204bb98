"""The four-mode answer pipeline: Base, RAG, Fine-tuned and Hybrid.

`AnswerPipeline.answer` takes an `AnswerRequest` the service already resolved (mode, checked
message and settings, adapter handle, retriever), builds the prompt for the mode, and yields
`AnswerUpdate`s whose text grows as tokens stream in. RAG puts the retrieved passages, numbered,
into the user turn with an instruction to cite them; Fine-tuned runs the adapter; Hybrid does both.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from core.errors import UserInputError
from core.generation import Engine, GenerationParams, Message
from core.lora import AdapterHandle
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
    `status` says where the text came from: "answer" (the model) or "nothing_found" (RAG found no
    relevant passage and declined without asking the model)."""

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


@dataclass(frozen=True)
class AnswerRequest:
    """One request, understood once by the service: nothing in it is looked up again."""

    message: str
    mode: Mode
    params: GenerationParams
    system_prompt: str
    history: tuple[Message, ...] = ()
    adapter: AdapterHandle | None = None
    retriever: Retriever | None = None
    notes: tuple[str, ...] = ()


class AnswerPipeline:
    """Answers resolved requests on the one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def answer(self, request: AnswerRequest, stop: threading.Event | None = None) -> Iterator[AnswerUpdate]:
        """Stream the answer to `request`.

        RAG and Hybrid with nothing relevant retrieved yield one finished update that says so
        instead of letting the model invent an answer. Raises UserInputError (one sentence) when the
        prompt cannot fit the context window, or the retriever or adapter cannot be used.
        """
        mode = request.mode
        notes = list(request.notes)
        passages: list[Passage] = []
        if request.retriever is not None:
            passages = request.retriever.search(request.message)
            if not passages:
                yield AnswerUpdate(NOTHING_FOUND, mode, done=True, notes=notes, status="nothing_found")
                return
        params = request.params
        prompt_ids, dropped, passages = self._fit(
            request.system_prompt, request.history, request.message, passages, params.max_new_tokens
        )
        if dropped:
            notes.append(f"Dropped the {dropped} oldest messages to fit the context window.")

        started = time.perf_counter()
        update = AnswerUpdate("", mode, notes=notes, sources=passages)
        for delta in self.engine.stream(prompt_ids, params, stop, request.adapter):
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
