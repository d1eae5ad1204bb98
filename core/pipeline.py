"""The four-mode answer pipeline: Base, RAG, Fine-tuned and Hybrid.

`AnswerPipeline.answer` validates the input, builds the prompt for the chosen mode, and
yields `AnswerUpdate`s whose text grows as tokens stream in. Modes whose parts are not
available (no document index, no adapter) say so in one sentence instead of answering.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from core.generation import Engine, GenerationParams, Message, UserInputError


class Mode(str, Enum):
    BASE = "Base"
    RAG = "RAG"
    FINETUNED = "Fine-tuned"
    HYBRID = "Hybrid"

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise UserInputError(f"Unknown mode {value!r}; choose one of {names}.") from None


@dataclass
class AnswerUpdate:
    """The answer so far. `text` is cumulative; `notes` are short remarks shown with it."""

    text: str
    mode: Mode
    done: bool = False
    notes: list[str] = field(default_factory=list)
    tokens: int = 0
    first_token_s: float | None = None
    elapsed_s: float = 0.0


NOT_BUILT = {
    Mode.RAG: "RAG mode needs a document index, and none is available in this build yet.",
    Mode.FINETUNED: "Fine-tuned mode needs a LoRA adapter, and adapters are not available in this build yet.",
    Mode.HYBRID: "Hybrid mode needs both a document index and an adapter, and neither is available yet.",
}


class AnswerPipeline:
    def __init__(self, engine: Engine, system_prompt: str = ""):
        self.engine = engine
        self.system_prompt = system_prompt

    def answer(
        self,
        message: str,
        history: Sequence[Message] = (),
        mode: Mode | str = Mode.BASE,
        params: GenerationParams | None = None,
        stop: threading.Event | None = None,
        system_prompt: str | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Stream the answer to `message`. Raises UserInputError (one sentence) on bad input,
        before any generation starts."""
        mode = Mode.parse(mode)
        message = self.engine.check_message(message)
        params = (params or GenerationParams()).check(self.engine.context_window)
        if mode in NOT_BUILT:
            yield AnswerUpdate(NOT_BUILT[mode], mode, done=True)
            return
        system = self.system_prompt if system_prompt is None else system_prompt
        prompt_ids, dropped = self.engine.build_prompt(system, history, message, params.max_new_tokens)
        notes = [f"Dropped the {dropped} oldest messages to fit the context window."] if dropped else []
        started = time.perf_counter()
        update = AnswerUpdate("", mode, notes=notes)
        for delta in self.engine.stream(prompt_ids, params, stop):
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
