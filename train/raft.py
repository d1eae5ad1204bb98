"""Retrieval-augmented fine-tuning: training examples built from the live document index.

For every question/answer record (it must name its `source` document), the index is searched exactly
as the app's RAG mode searches it, and the prompt is the one the app builds (`answer.prompts.
grounded_message` over `answer.evidence.SourceSentences`), so the adapter learns on what it will be
served. The right document is always among the passages (added from a wider search when the top
results miss it), and the source sentence that supports the reference answer is always among the
sentences shown; the target answer is the reference answer citing that sentence's number.

A share of the questions (`raft_distractor_share`) is shown no sentence that answers them, with the
target "the documents do not say" in the question's language, so the adapter learns to decline instead
of inventing: half of them see the nearest other documents, half the right document with every sentence
that carries the answer cut out (the near miss, where a small model is most tempted to guess). A share
(`raft_plain_share`) is also kept as a plain question/answer example, so the same adapter still answers
in the Fine-tuned mode, which shows it no sources.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from answer.evidence import Evidence, SourceSentences, candidates, content_terms, numbers, split_sentences
from answer.ports import Passage
from answer.prompts import grounded_message
from core.language import detect_language, documents_do_not_say
from rag import Floors
from train.formats import Conversation, DataFormatError, Dataset

WIDE_SEARCH = 24


@dataclass(frozen=True)
class RaftStats:
    questions: int
    grounded: int
    distractor_only: int
    plain: int
    gold_added: int  # the right document was not in the top results and was added from a wider search
    skipped: int  # no passage of the right document could be found
    excluded: int  # left out because the exclusion file asks the same question
    snapshot_id: str
    top_k: int
    evidence_sentences: int

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def _sources(path: Path, lines: Sequence[int]) -> list[str | None]:
    """The `source` field of each record, by its file line."""
    by_line: dict[int, str | None] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                by_line[number] = value.get("source") if isinstance(value, dict) else None
    return [by_line.get(line) for line in lines]


def _excluded_questions(path: Path | None) -> set[str]:
    if path is None:
        return set()
    out = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict) and isinstance(value.get("question"), str):
                out.add(" ".join(value["question"].split()).casefold())
    return out


def _split(conversation: Conversation) -> tuple[str | None, str, str] | None:
    """(system, question, answer) of a one-question conversation; None for anything longer."""
    turns = [m for m in conversation if m["role"] in ("user", "assistant")]
    system = next((m["content"] for m in conversation if m["role"] == "system"), None)
    if len(turns) != 2 or turns[0]["role"] != "user" or turns[1]["role"] != "assistant":
        return None
    return system, turns[0]["content"], turns[1]["content"]


def _with_gold(kb: Any, question: str, passages: list[Passage], source: str, top_k: int) -> tuple[list[Passage], bool]:
    """`passages` with a passage of `source` among them (the best one a wider search finds); added?"""
    if any(p.source == source for p in passages):
        return passages, False
    wider = [p for p in kb.search(question, top_k=WIDE_SEARCH, floors=Floors.off()) if p.source == source]
    if not wider:
        return [], False
    return [*passages[: max(top_k - 1, 0)], wider[0]], True


def _without_answer(passages: Sequence[Passage], answer: str) -> list[Passage]:
    """`passages` with every sentence that could carry the answer cut out: any that supports one of the
    answer's sentences, holds one of its numbers, or shares half of its content terms."""
    answer_numbers = numbers(answer) - {n for n in numbers(answer) if len(n) == 1}
    answer_terms = content_terms(answer)
    pool = SourceSentences([p.text for p in passages])
    carries = {j.evidence for j in pool.judge(answer) if j.supported and j.evidence}
    out = []
    for p in passages:
        kept = [
            c.text
            for c in candidates([p.text])
            if c.text not in carries
            and not (answer_numbers & numbers(c.text))
            and not (answer_terms and len(answer_terms & content_terms(c.text)) >= len(answer_terms) / 2)
        ]
        if kept:
            out.append(replace(p, text="\n".join(kept)))
    return out


def _cite(answer: str, number: int) -> str:
    """The answer with "[n]" after its first sentence."""
    sentences = split_sentences(answer)
    if not sentences:
        return f"{answer.strip()} [{number}]"
    first = sentences[0]
    head = answer.strip()
    at = head.find(first)
    if at < 0:
        return f"{head} [{number}]"
    end = at + len(first)
    mark = end - 1 if first[-1:] in ".!?。！？" else end
    return head[:mark] + f" [{number}]" + head[mark:]


def augment(
    dataset: Dataset,
    kb: Any,
    evidence_sentences: int,
    share_distractor: float,
    share_plain: float,
    seed: int,
    exclude: Path | None = None,
) -> tuple[Dataset, RaftStats]:
    """The dataset rebuilt as retrieval-augmented examples over the open knowledge base `kb` (searched with its own
    `top_k`), with `evidence_sentences` source sentences in each prompt, as the app's answers have.

    Raises DataFormatError naming `file:line` for a record without a `source`.
    """
    sources = _sources(dataset.path, dataset.lines)
    skip = _excluded_questions(exclude)
    rng = random.Random(seed)
    top_k, k = kb.retrieval.top_k, evidence_sentences
    conversations: list[Conversation] = []
    lines: list[int] = []
    counts = dict.fromkeys(("grounded", "distractor_only", "plain", "gold_added", "skipped", "excluded"), 0)
    for conversation, line, source in zip(dataset.conversations, dataset.lines, sources, strict=True):
        parts = _split(conversation)
        if parts is None:
            raise DataFormatError(
                f"{dataset.path}:{line}: retrieval-augmented training needs one question and one answer."
            )
        system, question, answer = parts
        if not source:
            raise DataFormatError(
                f"{dataset.path}:{line}: retrieval-augmented training needs a 'source' document name."
            )
        if " ".join(question.split()).casefold() in skip:
            counts["excluded"] += 1
            continue
        head = [{"role": "system", "content": system}] if system else []
        passages = kb.search(question, top_k=top_k)
        if rng.random() < share_distractor:
            if rng.random() < 0.5:  # near miss: the right document, without the sentences that answer
                gold_passages, _ = _with_gold(kb, question, passages, source, top_k)
                distractors = _without_answer(gold_passages, answer)
            else:  # the nearest other documents
                wide = kb.search(question, top_k=WIDE_SEARCH, floors=Floors.off())
                distractors = [p for p in wide if p.source != source][:top_k]
            if distractors:
                sentences = SourceSentences([p.text for p in distractors], kb.encode, [p.location for p in distractors])
                evidence = sentences.select(question, k)
                decline = documents_do_not_say(detect_language(question))
                conversations.append(
                    [
                        *head,
                        {
                            "role": "user",
                            "content": grounded_message(question, evidence, language=detect_language(question)),
                        },
                        {"role": "assistant", "content": decline},
                    ]
                )
                lines.append(line)
                counts["distractor_only"] += 1
        else:
            passages, added = _with_gold(kb, question, passages, source, top_k)
            if not passages:
                counts["skipped"] += 1
            else:
                counts["gold_added"] += added
                sentences = SourceSentences([p.text for p in passages], kb.encode, [p.location for p in passages])
                evidence = sentences.select(question, k)
                gold = _gold_sentence(sentences, answer, passages, source)
                if gold is not None and all(e.text != gold.text for e in evidence):
                    evidence = [*evidence[: k - 1], gold]
                number = (
                    gold.source
                    if gold is not None
                    else next(i for i, p in enumerate(passages, 1) if p.source == source)
                )
                conversations.append(
                    [
                        *head,
                        {
                            "role": "user",
                            "content": grounded_message(question, evidence, language=detect_language(question)),
                        },
                        {"role": "assistant", "content": _cite(answer, number)},
                    ]
                )
                lines.append(line)
                counts["grounded"] += 1
        if rng.random() < share_plain:
            conversations.append(list(conversation))
            lines.append(line)
            counts["plain"] += 1
    stats = RaftStats(
        questions=len(dataset.conversations),
        snapshot_id=kb.snapshot.snapshot_id,
        top_k=top_k,
        evidence_sentences=k,
        **counts,
    )
    return replace(dataset, conversations=conversations, lines=lines), stats


def _gold_sentence(
    sentences: SourceSentences, answer: str, passages: Sequence[Passage], source: str
) -> Evidence | None:
    """The sentence of the right document that best supports the reference answer."""
    best: Evidence | None = None
    best_coverage = -1.0
    for sentence in split_sentences(answer):
        judged = sentences.support(sentence)
        if judged.source is None or judged.evidence is None:
            continue
        if passages[judged.source - 1].source != source:
            continue
        if judged.coverage > best_coverage:
            best, best_coverage = Evidence(judged.source, judged.evidence, judged.coverage), judged.coverage
    return best
