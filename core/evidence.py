"""Which sentences of an answer the retrieved passages support, and whether an answer declines.

Used by the answer path's consumers (the scorecard's grounding figure) so that "supported" means
one thing everywhere. A sentence is *supported* by a passage when the passage holds at least
`MIN_COVERAGE` of the sentence's content terms (`core.terms`: stemmed words, CJK bigrams, codes)
and every number the sentence states. Numbers are where a small model goes wrong ("20 days" when
the source says 30), so one wrong number makes a sentence unsupported however many words match.
Sentences with fewer than two content terms and no number ("Sure.") are not judged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from core.terms import terms

MIN_COVERAGE = 0.6

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\s\d])|(?<=[。！？])|\n+")
_CITATION = re.compile(r"\[\d+\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, stripped; empty pieces dropped. Knows CJK full stops and
    line breaks; a dot between digits ("2.5") or before a digit does not end a sentence."""
    parts = _SENTENCE_END.split(text or "")
    return [p.strip(" \t-*•") for p in parts if p and p.strip(" \t-*•")]


def numbers(text: str) -> set[str]:
    """The numbers in `text`, with thousands separators removed and a decimal comma read as a point."""
    found = set()
    for raw in _NUMBER.findall(unicodedata.normalize("NFKC", text)):
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", raw):
            raw = raw.replace(",", "")
        found.add(raw.replace(",", "."))
    return found


def content_terms(text: str) -> set[str]:
    return set(terms(_CITATION.sub(" ", text)))


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    judged: bool  # False for sentences too short to judge
    supported: bool
    passage: int | None  # 0-based index of the best supporting passage
    coverage: float  # share of the sentence's content terms found in that passage


def support(sentence: str, passages: Sequence[str]) -> SentenceSupport:
    """How well the best of `passages` supports one answer sentence."""
    sentence_terms = content_terms(sentence)
    sentence_numbers = numbers(_CITATION.sub(" ", sentence))
    if len(sentence_terms) < 2 and not sentence_numbers:
        return SentenceSupport(sentence, False, False, None, 0.0)
    best: tuple[bool, float, int | None] = (False, 0.0, None)
    for i, passage in enumerate(passages):
        passage_terms = content_terms(passage)
        coverage = len(sentence_terms & passage_terms) / len(sentence_terms) if sentence_terms else 1.0
        ok = coverage >= MIN_COVERAGE and sentence_numbers <= numbers(passage)
        if (ok, coverage) > best[:2]:
            best = (ok, coverage, i)
    return SentenceSupport(sentence, True, best[0], best[2], best[1])


def grounding(answer: str, passages: Sequence[str]) -> float | None:
    """The share of the answer's judged sentences that some passage supports; None when no
    sentence can be judged (an empty or one-word answer) or there are no passages."""
    if not passages:
        return None
    judged = [s for s in (support(x, passages) for x in split_sentences(answer)) if s.judged]
    if not judged:
        return None
    return sum(s.supported for s in judged) / len(judged)


# -- declining -------------------------------------------------------------------------------------
DECLINE_PHRASES = (
    # en
    "do not say", "don't say", "does not say", "doesn't say", "not mentioned", "no information", "not specified",
    "don't know", "do not know", "not in the documents", "not in the sources", "cannot find", "can't find",
    "could not find", "couldn't find", "not provided", "no mention", "does not mention", "doesn't mention",
    "do not mention", "don't mention", "not stated", "found nothing", "not contain", "no data on",
    "not covered", "no details", "not documented",
    # ko
    "문서에 없", "나와 있지 않", "알 수 없", "정보가 없", "언급되어 있지 않", "언급이 없", "모릅니다", "찾을 수 없",
    "명시되어 있지 않", "포함되어 있지 않",
    # ja
    "記載されていません", "記載がありません", "記載はありません", "わかりません", "分かりません", "情報がありません",
    "見つかりません", "書かれていません", "言及されていません",
    # zh
    "没有提到", "未提及", "没有相关信息", "不知道", "文档中没有", "未说明", "无法找到", "没有说明", "找不到",
    "没有提供", "未提供",
    # hr
    "ne navode", "ne navodi", "ne spominj", "nema podataka", "nema informacija", "ne znam", "nije navedeno",
    "ne sadrž", "ne kažu", "ne kaže", "nisam pronaš", "nisam naš",
    # mn
    "дурдаагүй", "мэдээлэл байхгүй", "мэдэхгүй", "олдсонгүй", "заагаагүй", "тусгаагүй",
)  # fmt: skip


def is_decline(text: str) -> bool:
    """Whether an answer says it does not know or that the documents do not say."""
    folded = unicodedata.normalize("NFKC", text or "").casefold().replace("’", "'")
    return any(phrase in folded for phrase in DECLINE_PHRASES)
