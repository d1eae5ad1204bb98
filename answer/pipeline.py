"""The four-mode answer pipeline, as named stages: retrieve → gate → prompt → decode → check → judge.

`AnswerPipeline.answer` takes an `AnswerRequest` the service already resolved (mode, checked message and
settings, the question's language, adapter handle, retriever, the history this mode may see) and yields
`AnswerUpdate`s whose text grows as tokens stream in.

- **retrieve** (RAG, Hybrid): the retriever's passages, their sentences, and the few that match the question
  best (`answer.evidence`).
- **gate**: nothing found, or nothing above the evidence floor → one finished update that says so, in the
  question's language, without asking the model.
- **prompt** (`answer.prompts`): the question, the numbered source sentences, the question again, fitted to
  the context window; greedy decoding with a repetition guard, the copy bias and an answer-length budget.
- **decode**: the engine's text deltas; the answer's first line only, without a repeat of the question.
- **check**: an empty answer, or one made of markers, markup or a copied code line, is replaced by the best
  source sentence, quoted with its citation ("The documents say: …"); while the text so far is such, nothing
  is shown.
- **judge**: every answer sentence matched to the source sentences: the evidence to quote, the sentences
  nothing supports, the sources cited because their sentences support it (a printed "[n]" alone proves nothing).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from answer.evidence import Evidence, SourceSentences
from answer.ports import Passage, Retriever
from answer.prompts import NOTHING_FOUND, NOTHING_FOUND_HINT, Prompter
from answer.types import AnswerRequest, AnswerUpdate, Quote
from core.language import documents_do_not_say, documents_say
from engines.base import Engine, GenerationParams

_EMPHASIS = re.compile(r"\*\*|__")
_UNUSABLE = {
    "empty": "empty",
    "markers": "only citation markers",
    "markup": "markup, not words",
    "code": "a copied line of code",
}


@dataclass(frozen=True)
class PromptStyle:
    """How RAG and Hybrid build their prompt and decode (`Settings.answer`, `core.settings.AnswerSettings`)."""

    context: str
    evidence_sentences: int
    max_new_tokens: int
    no_repeat_ngram: int
    evidence_floor: float
    """With an embedding model: decline without asking the model when even the best source sentence
    scores below this (`answer.evidence.SourceSentences.select`)."""
    one_line: bool
    """End the answer at its first line break: asked for one sentence, a small model goes on to list the
    sources again line after line. A first line that only repeats the question is dropped instead."""
    copy_bias: float
    """Favour continuing a source span the answer has started to copy (`engines.decoding`)."""

    @classmethod
    def from_settings(cls, answer: object) -> PromptStyle:
        """The style of an answer settings group (`core.settings.AnswerSettings`)."""
        return cls(
            context=answer.rag_context,
            evidence_sentences=answer.evidence_sentences,
            max_new_tokens=answer.grounded_max_new_tokens,
            no_repeat_ngram=answer.no_repeat_ngram,
            evidence_floor=answer.evidence_floor,
            one_line=answer.one_line_answers,
            copy_bias=answer.copy_bias,
        )


@dataclass
class Retrieved:
    """What the retrieve stage found: the passages, their sentences (None: nothing found) and the best ones."""

    passages: list[Passage]
    sentences: SourceSentences | None
    chosen: list[Evidence]
    encoded: bool
    """Whether sentences were scored with the embedding model (the evidence floor applies only then)."""


def retrieve(retriever: Retriever, message: str, evidence_sentences: int) -> Retrieved:
    """The passages `retriever` finds for `message`, their sentences, and the ones that match it best (no
    sentences when nothing was found). Compare calls it once before its answers start."""
    passages = retriever.search(message)
    encode = getattr(retriever, "encode", None)
    if not passages:
        return Retrieved([], None, [], encode is not None)
    sentences = SourceSentences([p.text for p in passages], encode, [p.location for p in passages])
    return Retrieved(passages, sentences, sentences.select(message, evidence_sentences), encode is not None)


def judge(update: AnswerUpdate, sentences: SourceSentences, shown: Sequence[Evidence]) -> None:
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
            rest = said[len(echo) :].lstrip("?？.。:：,， \t")
            return rest if rest.strip() else text
    return text


class AnswerPipeline:
    """Answers resolved requests on the one engine."""

    def __init__(self, engine: Engine, style: PromptStyle):
        self.engine = engine
        self.style = style
        self.prompter = Prompter(engine.tokenizer, engine.context_window)

    def answer(self, request: AnswerRequest, stop: threading.Event | None = None) -> Iterator[AnswerUpdate]:
        """Stream the answer to `request`, stage by stage (see the module docstring).

        Raises UserInputError (one sentence) when the prompt cannot fit the context window, or the retriever
        or adapter cannot be used.
        """
        found = self.retrieve(request) if request.retriever is not None else None
        declined = self.gate(request, found) if found is not None else None
        if declined is not None:
            yield declined
            return
        prompt_ids, params, update, shown = self.prompt(request, found)
        hold = None
        if found is not None:  # a grounded answer that is so far empty, markers or markup is not shown yet
            sentences = found.sentences
            hold = lambda text: sentences.unusable(text, request.message) is not None  # noqa: E731
        yield from self.decode(request, prompt_ids, params, update, shown, stop, grounded=found is not None, hold=hold)
        if found is not None:
            update.text = _without_echo(update.text, request.message)
            self.check(request, update, found.sentences, shown)
            judge(update, found.sentences, shown)
        update.done = True
        yield update

    # -- the stages ---------------------------------------------------------------------------------------
    def retrieve(self, request: AnswerRequest) -> Retrieved:
        return retrieve(request.retriever, request.message, self.style.evidence_sentences)

    def gate(self, request: AnswerRequest, found: Retrieved) -> AnswerUpdate | None:
        """The finished update that declines without the model, or None to go on: nothing found; or, with an
        embedding model, not even the best sentence above the evidence floor ("the documents do not say",
        with the sentences that came closest)."""
        notes = list(request.notes)
        if found.sentences is None:
            if request.language == "en":
                return AnswerUpdate(NOTHING_FOUND, request.mode, done=True, notes=notes, status="nothing_found")
            # the decline in the question's language; the hint on what to do next as a note
            notes.append(NOTHING_FOUND_HINT)
            text = documents_do_not_say(request.language)
            return AnswerUpdate(text, request.mode, done=True, notes=notes, status="nothing_found")
        floor = self.style.evidence_floor if found.encoded else 0.0
        if floor and (not found.chosen or found.chosen[0].score < floor):
            update = AnswerUpdate(
                documents_do_not_say(request.language),
                request.mode,
                done=True,
                notes=notes,
                sources=found.passages,
                status="nothing_found",
            )
            judge(update, found.sentences, found.chosen)
            update.support, update.evidence_supports = [], False
            return update
        return None

    def check(
        self, request: AnswerRequest, update: AnswerUpdate, sentences: SourceSentences, shown: Sequence[Evidence]
    ) -> None:
        """Replace an empty or unusable grounded answer (markers, markup, a copied code line:
        `SourceSentences.unusable`) by the best source sentence the model was shown, quoted with its citation
        in the question's language ("The documents say: "…" [1]"); status "quoted"."""
        reason = sentences.unusable(update.text, request.message)
        if reason is None or not shown:
            return
        best = shown[0]
        open_, close = ("「", "」") if request.language in ("ja", "zh") else ("“", "”")
        update.text = f"{documents_say(request.language)} {open_}{best.text}{close} [{best.source}]"
        update.status = "quoted"
        update.notes.append(f"The model's answer was {_UNUSABLE[reason]}; the documents are quoted instead.")

    def prompt(
        self, request: AnswerRequest, found: Retrieved | None
    ) -> tuple[list[int], GenerationParams, AnswerUpdate, list[Evidence]]:
        """The prompt's token ids, the decoding settings, the update the answer grows in, and the source
        sentences shown. RAG and Hybrid decode greedily, within the grounded length budget."""
        params, passages, chosen = request.params, [], []
        if found is not None:
            passages, chosen = found.passages, found.chosen
            latin = request.language in ("en", "hr")
            params = replace(
                params,
                temperature=0.0,
                max_new_tokens=min(params.max_new_tokens, self.style.max_new_tokens),
                # byte-level tokens: a Korean syllable is 2-3 of them, so count longer n-grams there
                no_repeat_ngram=self.style.no_repeat_ngram * (1 if latin else 3),
                copy_bias=self.style.copy_bias,
            )
        in_prompt = chosen if self.style.context == "sentences" else []
        prompt_ids, dropped, passages, shown = self.prompter.fit(request, passages, in_prompt, params.max_new_tokens)
        notes = list(request.notes)
        if dropped:
            notes.append(f"Dropped the {dropped} oldest messages to fit the context window.")
        return prompt_ids, params, AnswerUpdate("", request.mode, notes=notes, sources=passages), shown

    def decode(
        self,
        request: AnswerRequest,
        prompt_ids: list[int],
        params: GenerationParams,
        update: AnswerUpdate,
        shown: Sequence[Evidence],
        stop: threading.Event | None,
        grounded: bool,
        hold: Callable[[str], bool] | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Stream the engine's deltas into `update`. A grounded answer ends at its first line break (a first
        line that only repeats the question is dropped instead) and loses a verbatim repeat of the question.
        While `hold(text)` is true the text so far is not yielded (the final update always is)."""
        copy_from = [self.prompter.token_ids(" " + e.text) for e in shown]
        started = time.perf_counter()
        one_line = grounded and self.style.one_line
        echo_checked = not grounded
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
            if hold is None or not hold(update.text):
                yield update
        update.text = update.text.rstrip()
        update.elapsed_s = time.perf_counter() - started
