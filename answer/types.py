"""The answer's data: the four modes, a request as the service understood it, and the answer as it grows.

Nothing here formats anything for a reader: the UI's presentation code (`ui/presentation.py`) turns an
`AnswerUpdate` into what the chat shows, and the API returns its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from adapters.spec import AdapterHandle
from answer.evidence import SentenceSupport
from answer.ports import Passage, Retriever
from core.errors import UserInputError
from engines.base import GenerationParams

Message = dict[str, str]
"""One chat turn: {"role": "user" | "assistant", "content": ...}, optionally tagged with the "mode" that wrote it."""


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


@dataclass(frozen=True)
class Quote:
    """A source sentence shown under an answer: its passage number, text, file and place in the file."""

    source: int
    text: str
    file: str
    location: str


@dataclass
class AnswerUpdate:
    """The answer so far. `text` is the model's own text, cumulative; `notes` are short remarks shown
    with it; `sources` are the passages retrieved, numbered from 1 as the model saw them. `status` says
    where the text came from: "answer" (the model), "nothing_found" (RAG found no relevant passage
    and declined without asking the model) or "quoted" (the model's grounded answer was empty, only markers,
    markup or a copied code line, so the best source sentence is quoted instead: "The documents say: …").

    Set on the final update of RAG and Hybrid answers: `support` (each answer sentence judged against
    the source sentences), `evidence` (the source sentences that support the answer, or, when nothing
    does, the ones the model was shown), `evidence_supports` (which of the two)."""

    text: str
    mode: Mode
    done: bool = False
    status: str = "answer"
    notes: list[str] = field(default_factory=list)
    sources: list[Passage] = field(default_factory=list)
    tokens: int = 0
    first_token_s: float | None = None
    elapsed_s: float = 0.0
    support: list[SentenceSupport] = field(default_factory=list)
    evidence: list[Quote] = field(default_factory=list)
    evidence_supports: bool = False

    @property
    def cited(self) -> list[int]:
        """Sources the answer cites: those whose sentences support its content, in order of first use."""
        seen: list[int] = []
        for judged in self.support:
            if judged.supported and judged.source is not None and judged.source not in seen:
                seen.append(judged.source)
        return seen

    @property
    def unsupported(self) -> list[str]:
        """Answer sentences that no retrieved sentence supports."""
        return [s.sentence for s in self.support if s.judged and not s.supported]


@dataclass(frozen=True)
class AnswerRequest:
    """One request, understood once by the service: nothing in it is looked up or detected again.

    `history` holds the earlier turns this mode may see; `earlier_questions` the conversation's earlier
    questions, which RAG and Hybrid see instead of answers (their own or another mode's)."""

    message: str
    mode: Mode
    params: GenerationParams
    system_prompt: str
    history: tuple[Message, ...] = ()
    adapter: AdapterHandle | None = None
    retriever: Retriever | None = None
    notes: tuple[str, ...] = ()
    earlier_questions: tuple[str, ...] = ()
    language: str = "en"
    """The question's language (`core.language.detect_language`), detected once, by the service."""
