"""The four-mode answer pipeline: Base, RAG, Fine-tuned and Hybrid.

`AnswerPipeline.answer` takes an `AnswerRequest` the service already resolved (mode, checked
message and settings, adapter handle, retriever, the history this mode may see), builds the prompt
for the mode, and yields `AnswerUpdate`s whose text grows as tokens stream in.

RAG and Hybrid are built for small models (`PromptStyle`): the few source sentences that match the
question best (`core.evidence`), numbered by the passage they come from, between the question stated
before and after; an instruction to answer in one sentence, in the question's language, citing the
number; greedy decoding with a repetition guard and an answer-length budget. When the answer is done,
every answer sentence is judged against the source sentences: the update carries the one to three
sentences that support it (its evidence), the answer sentences nothing supports, and the sources it
cites because its content is supported by them (a printed "[n]" alone proves nothing).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from core.errors import UserInputError
from core.evidence import Evidence, SentenceSupport, SourceSentences
from core.generation import Engine, GenerationParams, Message
from core.language import detect_language, documents_do_not_say, language_name
from core.lora import AdapterHandle
from core.retrieval import Passage, Retriever

CITATION = re.compile(r"\[(\d+)\]")
_EMPHASIS = re.compile(r"\*\*|__")


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
    where the text came from: "answer" (the model) or "nothing_found" (RAG found no relevant passage
    and declined without asking the model).

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

    @property
    def printed_citations(self) -> list[int]:
        """The "[n]" numbers the model wrote that name a retrieved source, in order (not proof of support)."""
        seen: list[int] = []
        for match in CITATION.finditer(self.text):
            number = int(match.group(1))
            if 1 <= number <= len(self.sources) and number not in seen:
                seen.append(number)
        return seen

    def display_text(self, text: str | None = None) -> str:
        """The model's text (or a piece of it) as the reader sees it: a "[n]" the model put on a sentence that
        source n does not support moves to the source that does; markers that name no retrieved source go."""
        text = self.text if text is None else text
        for judged in self.support:
            marks = {int(m) for m in CITATION.findall(judged.sentence)}
            if not (judged.supported and judged.source and marks) or marks & set(judged.sources or (judged.source,)):
                continue
            text = text.replace(judged.sentence, _marks_moved(judged.sentence, judged.source))
        return CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(self.sources) else "", text)


def _marks_moved(sentence: str, source: int) -> str:
    """The sentence with its first citation marker naming `source` and any others removed."""
    markers = iter(range(len(CITATION.findall(sentence))))
    return CITATION.sub(lambda m: f"[{source}]" if next(markers) == 0 else "", sentence)


RAG_INSTRUCTION = (
    "Answer the question using only the numbered sources below, and cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that the documents do not say."
)
NOTHING_FOUND = (
    "I found nothing about this in the documents, so I will not guess. "
    "Try other words, or add a document that covers it in the Knowledge tab."
)


def rag_message(question: str, passages: Sequence[Passage], earlier: Sequence[str] = ()) -> str:
    """The user turn with whole passages: instruction, numbered sources, then the question."""
    blocks = [f"[{i}] {p.source}, {p.location}:\n{p.text.strip()}" for i, p in enumerate(passages, 1)]
    return (f"{RAG_INSTRUCTION}\n\n" + _earlier(earlier) + "Sources:\n" + "\n\n".join(blocks)
            + f"\n\nQuestion: {question}")  # fmt: skip


def grounded_message(question: str, evidence: Sequence[Evidence], earlier: Sequence[str] = ()) -> str:
    """The user turn for small models: the question, the few matching source sentences numbered by their
    passage, the question again, and a one-sentence answer instruction in the question's language."""
    language = detect_language(question)
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


def _echoes(line: str, question: str) -> bool:
    """Whether a line only repeats (most of) the question."""
    squeeze = re.compile(r"[\W_]+")
    said, asked = squeeze.sub("", line.casefold()), squeeze.sub("", question.casefold())
    if not said or not asked:
        return False
    return said in asked or (asked in said and len(said) <= len(asked) + 12)


def _without_echo(text: str, question: str) -> str:
    """The answer without a verbatim repeat of the question at its start (a small model often begins by
    copying the question, then answers on the same line); unchanged when nothing would be left."""
    asked, said = question.strip(), text.lstrip()
    for echo in (asked, asked.rstrip("?？ ")):
        if echo and said.startswith(echo):
            rest = said[len(echo):].lstrip("?？.。:：,， \t")
            return rest if rest.strip() else text
    return text


def attach_evidence(update: AnswerUpdate, sentences: SourceSentences, shown: Sequence[Evidence]) -> None:
    """Judge the answer against the source sentences and choose the evidence to quote under it: the
    sentences that support it, or, when nothing it says is supported, the ones the model was shown."""
    update.support = sentences.judge(update.text)
    quotes: list[Quote] = []
    for judged in update.support:
        if judged.supported and judged.evidence and all(q.text != judged.evidence for q in quotes):
            quotes.append(_quote(update, judged.source, judged.evidence))
    update.evidence_supports = bool(quotes)
    if not quotes:
        quotes = [_quote(update, e.source, e.text) for e in shown]
    update.evidence = quotes[:3]


def _quote(update: AnswerUpdate, source: int | None, text: str) -> Quote:
    passage = update.sources[source - 1] if source and 1 <= source <= len(update.sources) else None
    text = _EMPHASIS.sub("", text)  # Markdown bold around a list item's name would break the quote's own markup
    return Quote(source or 0, text, passage.source if passage else "?", passage.location if passage else "")


@dataclass(frozen=True)
class PromptStyle:
    """How RAG and Hybrid build their prompt and decode (from `Settings`)."""

    context: str = "sentences"  # or "chunks"
    evidence_sentences: int = 4
    max_new_tokens: int = 96
    no_repeat_ngram: int = 4
    evidence_floor: float = 0.0
    """With an embedding model: decline without asking the model when even the best source sentence
    scores below this (`core.evidence.SourceSentences.select`)."""
    one_line: bool = True
    """End the answer at its first line break: asked for one sentence, a small model goes on to list the
    sources again line after line. A first line that only repeats the question is dropped instead."""
    copy_bias: float = 0.0
    """Favour continuing a source span the answer has started to copy (`core.generation._CopyBias`)."""

    @classmethod
    def from_settings(cls, settings: object) -> PromptStyle:
        return cls(
            context=getattr(settings, "rag_context", cls.context),
            evidence_sentences=getattr(settings, "evidence_sentences", cls.evidence_sentences),
            max_new_tokens=getattr(settings, "grounded_max_new_tokens", cls.max_new_tokens),
            no_repeat_ngram=getattr(settings, "no_repeat_ngram", cls.no_repeat_ngram),
            evidence_floor=getattr(settings, "evidence_floor", cls.evidence_floor),
            one_line=getattr(settings, "one_line_answers", cls.one_line),
            copy_bias=getattr(settings, "copy_bias", cls.copy_bias),
        )


@dataclass(frozen=True)
class AnswerRequest:
    """One request, understood once by the service: nothing in it is looked up again.

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


class AnswerPipeline:
    """Answers resolved requests on the one engine."""

    def __init__(self, engine: Engine, style: PromptStyle | None = None):
        self.engine = engine
        self.style = style or PromptStyle()

    def answer(self, request: AnswerRequest, stop: threading.Event | None = None) -> Iterator[AnswerUpdate]:
        """Stream the answer to `request`.

        RAG and Hybrid with nothing relevant retrieved yield one finished update that says so
        instead of letting the model invent an answer. Raises UserInputError (one sentence) when the
        prompt cannot fit the context window, or the retriever or adapter cannot be used.
        """
        mode = request.mode
        notes = list(request.notes)
        params = request.params
        passages: list[Passage] = []
        sentences: SourceSentences | None = None
        chosen: list[Evidence] = []
        if request.retriever is not None:
            passages, sentences, chosen = self.evidence_for(request.retriever, request.message)
            if sentences is None:
                yield AnswerUpdate(NOTHING_FOUND, mode, done=True, notes=notes, status="nothing_found")
                return
            encode = getattr(request.retriever, "encode", None)
            floor = self.style.evidence_floor if encode is not None else 0.0
            if floor and (not chosen or chosen[0].score < floor):
                update = AnswerUpdate(documents_do_not_say(request.message), mode, done=True, notes=notes,
                                      sources=passages, status="nothing_found")  # fmt: skip
                attach_evidence(update, sentences, chosen)
                update.support, update.evidence_supports = [], False
                yield update
                return
            latin = detect_language(request.message) in ("en", "hr")
            params = replace(
                params,
                temperature=0.0,
                max_new_tokens=min(params.max_new_tokens, self.style.max_new_tokens),
                # byte-level tokens: a Korean syllable is 2-3 of them, so count longer n-grams there
                no_repeat_ngram=self.style.no_repeat_ngram * (1 if latin else 3),
                copy_bias=self.style.copy_bias,
            )
        in_prompt = chosen if self.style.context == "sentences" else []
        prompt_ids, dropped, passages, shown = self._fit(request, passages, in_prompt, params.max_new_tokens)
        tokenizer = self.engine.tokenizer
        copy_from = [tokenizer(" " + e.text, add_special_tokens=False)["input_ids"] for e in shown]
        if dropped:
            notes.append(f"Dropped the {dropped} oldest messages to fit the context window.")

        started = time.perf_counter()
        update = AnswerUpdate("", mode, notes=notes, sources=passages)
        one_line = sentences is not None and self.style.one_line
        echo_checked = sentences is None
        stream = self.engine.stream(prompt_ids, params, stop, request.adapter, copy_from)
        for delta in stream:
            update.tokens += 1
            if not delta:
                continue
            if one_line and "\n" in delta and update.text.strip():
                line = update.text + delta.split("\n", 1)[0]
                if _echoes(line, request.message):  # the model repeated the question: its answer comes next
                    update.text = delta.split("\n", 1)[1]
                    continue
                update.text = line
                stream.close()  # the answer's line is done; the model would only go on listing sources
                break
            update.text += delta
            if not echo_checked and len(update.text.strip()) > len(request.message.strip()) + 1:
                update.text, echo_checked = _without_echo(update.text, request.message), True
            if update.first_token_s is None:
                update.first_token_s = time.perf_counter() - started
            update.elapsed_s = time.perf_counter() - started
            yield update
        update.text = update.text.rstrip()
        if sentences is not None:
            update.text = _without_echo(update.text, request.message)
            attach_evidence(update, sentences, shown)
        update.done = True
        update.elapsed_s = time.perf_counter() - started
        yield update

    def evidence_for(
        self, retriever: Retriever, message: str
    ) -> tuple[list[Passage], SourceSentences | None, list[Evidence]]:
        """The passages `retriever` finds for `message`, their sentences, and the ones that match it best
        (no sentences when nothing was found). Compare calls it once before its answers start."""
        passages = retriever.search(message)
        if not passages:
            return [], None, []
        encode = getattr(retriever, "encode", None)
        sentences = SourceSentences([p.text for p in passages], encode, [p.location for p in passages])
        return passages, sentences, sentences.select(message, self.style.evidence_sentences)  # best first

    def _fit(
        self, request: AnswerRequest, passages: list[Passage], evidence: list[Evidence], max_new_tokens: int
    ) -> tuple[list[int], int, list[Passage], list[Evidence]]:
        """Build the prompt from the evidence sentences, or else the whole passages; drop the lowest-ranked
        sentences (or passages) until it fits."""
        message, earlier = request.message, request.earlier_questions
        while True:
            if evidence:
                user = grounded_message(message, evidence, earlier)
            elif passages:
                user = rag_message(message, passages, earlier)
            else:
                user = message
            try:
                ids, dropped = self.engine.build_prompt(request.system_prompt, request.history, user, max_new_tokens)
                return ids, dropped, passages, evidence
            except UserInputError:
                if len(evidence) > 1:
                    evidence = evidence[:-1]
                    continue
                if not evidence and len(passages) > 1:
                    passages = passages[:-1]
                    continue
                if passages:
                    self.engine.build_prompt(request.system_prompt, (), message, max_new_tokens)  # the question alone?
                    raise UserInputError(
                        "The retrieved passage does not fit this model's context window with your question; "
                        "lower max new tokens or the chunk size."
                    ) from None
                raise
