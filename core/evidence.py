"""Sentences as evidence: which source sentences a question needs, and which an answer rests on.

One module decides "supported" for the whole app, so the chat's evidence and unsupported marks, the
citation rule and the scorecard's grounding figure agree.

- `candidates` splits retrieved passages into sentences (a Markdown table row becomes one sentence
  that names its columns: "Part: KX-4471; Name: main bearing seal; Price: €120").
- `select_evidence` picks the few sentences that match a question best (embedding cosine plus the
  share of the question's key terms they hold), so a small model reads 3 short sentences instead of
  4 whole chunks.
- `support` says whether a source sentence supports an answer sentence: it must hold at least
  `MIN_COVERAGE` of the answer sentence's content terms (`core.terms`: stemmed words, CJK bigrams,
  codes), or be close in meaning (cosine ≥ `MIN_COSINE`) with half of them; and it must hold every
  number the answer sentence states. Numbers are where a small model goes wrong ("20 days" when the
  source says 30), so one wrong number makes a sentence unsupported however many words match.
  Sentences with fewer than two content terms and no number ("Sure.") are not judged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.terms import terms

MIN_COVERAGE = 0.6
MIN_COSINE = 0.75
Encoder = Callable[[list[str]], np.ndarray]
"""Embeds texts as unit-length rows (the index's embedding model), for cosine similarity."""

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
class Candidate:
    """One sentence of a retrieved passage; `source` is the passage's number (from 1) as the prompt shows it."""

    source: int
    text: str
    position: int  # order within its passage


def _table_rows(lines: list[str]) -> list[str]:
    """Markdown table lines -> one "column: value; ..." sentence per data row."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, rows = cells[0], [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    out = []
    for row in rows:
        pairs = [f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v]
        if pairs:
            out.append("; ".join(pairs))
    return out


def candidates(passages: Sequence[str]) -> list[Candidate]:
    """The sentences of each passage (tables row by row), numbered by passage from 1."""
    out: list[Candidate] = []
    for number, text in enumerate(passages, 1):
        pieces: list[str] = []
        table: list[str] = []
        for line in [*(text or "").splitlines(), ""]:
            if line.strip().startswith("|"):
                table.append(line)
                continue
            if table:
                pieces += _table_rows(table) if len(table) > 1 else table
                table = []
            line = line.strip().lstrip("#").strip()
            if line:
                pieces += split_sentences(line)
        for position, piece in enumerate(pieces):
            out.append(Candidate(number, piece, position))
    return out


@dataclass(frozen=True)
class Evidence:
    source: int  # passage number, from 1
    text: str
    score: float


def _keyword_share(query_terms: set[str], sentence_terms: set[str]) -> float:
    return len(query_terms & sentence_terms) / len(query_terms) if query_terms else 0.0


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    judged: bool  # False for sentences too short to judge
    supported: bool
    source: int | None  # passage number (from 1) of the best supporting sentence
    evidence: str | None  # that sentence
    coverage: float  # share of the answer sentence's content terms found in it


class SourceSentences:
    """The sentences of the passages one answer was built from, embedded once (when `encode` is given)
    and used both to pick the prompt's evidence and to judge the answer."""

    def __init__(self, passages: Sequence[str], encode: Encoder | None = None):
        self.encode = encode
        self.pool = [c for c in candidates(passages) if len(content_terms(c.text)) >= 2 or numbers(c.text)]
        self._terms = [content_terms(c.text) for c in self.pool]
        self._numbers = [numbers(c.text) for c in self.pool]
        self._vectors: np.ndarray | None = None

    def _cosines(self, text: str) -> np.ndarray:
        if self.encode is None or not self.pool:
            return np.zeros(len(self.pool))
        if self._vectors is None:
            self._vectors = self.encode([c.text for c in self.pool])
        query = self.encode([text])[0]
        return self._vectors @ query

    def select(self, question: str, k: int = 3, per_passage: int = 2) -> list[Evidence]:
        """The `k` sentences that match `question` best, best first, at most `per_passage` from one
        passage. Score: cosine with the question plus the share of the question's content terms held."""
        if not self.pool:
            return []
        query_terms = content_terms(question)
        keyword = np.array([_keyword_share(query_terms, t) for t in self._terms])
        rank_prior = np.array([0.02 / c.source for c in self.pool])  # ties go to the better-ranked passage
        scores = self._cosines(question) + keyword + rank_prior
        chosen: list[Evidence] = []
        used: dict[int, int] = {}
        for i in np.argsort(-scores, kind="stable"):
            c = self.pool[int(i)]
            if used.get(c.source, 0) >= per_passage:
                continue
            used[c.source] = used.get(c.source, 0) + 1
            chosen.append(Evidence(c.source, c.text, float(scores[i])))
            if len(chosen) == k:
                break
        return chosen

    def support(self, sentence: str) -> SentenceSupport:
        """How well the best source sentence supports one answer sentence."""
        clean = _CITATION.sub(" ", sentence)
        sentence_terms, sentence_numbers = content_terms(clean), numbers(clean)
        if len(sentence_terms) < 2 and not sentence_numbers:
            return SentenceSupport(sentence, False, False, None, None, 0.0)
        if not self.pool:
            return SentenceSupport(sentence, True, False, None, None, 0.0)
        coverage = np.array([len(sentence_terms & t) / len(sentence_terms) if sentence_terms else 1.0
                             for t in self._terms])  # fmt: skip
        numbers_ok = np.array([sentence_numbers <= n for n in self._numbers])
        cosine = self._cosines(clean)
        ok = numbers_ok & ((coverage >= MIN_COVERAGE) | ((cosine >= MIN_COSINE) & (coverage >= MIN_COVERAGE / 2)))
        best = int(np.argmax(ok * 10 + coverage + cosine))
        c = self.pool[best]
        return SentenceSupport(sentence, True, bool(ok[best]), c.source, c.text, float(coverage[best]))

    def judge(self, answer: str) -> list[SentenceSupport]:
        """`support` for every sentence of an answer (citation markers ignored)."""
        return [self.support(s) for s in split_sentences(answer)]


def select_evidence(
    question: str, passages: Sequence[str], encode: Encoder | None = None, k: int = 3, per_passage: int = 2
) -> list[Evidence]:
    return SourceSentences(passages, encode).select(question, k, per_passage)


def judge_answer(answer: str, passages: Sequence[str], encode: Encoder | None = None) -> list[SentenceSupport]:
    return SourceSentences(passages, encode).judge(answer)


def grounding_of(judged: Sequence[SentenceSupport]) -> float | None:
    """The share of judged sentences that are supported; None when none could be judged."""
    counted = [s for s in judged if s.judged]
    return sum(s.supported for s in counted) / len(counted) if counted else None


def grounding(answer: str, passages: Sequence[str], encode: Encoder | None = None) -> float | None:
    """The share of the answer's judged sentences that some passage supports; None when no
    sentence can be judged (an empty or one-word answer) or there are no passages."""
    if not passages:
        return None
    return grounding_of(judge_answer(answer, passages, encode))


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
    # ru
    "не сказано", "нет информации", "не указано", "не знаю",
)  # fmt: skip


def is_decline(text: str) -> bool:
    """Whether an answer says it does not know or that the documents do not say."""
    folded = unicodedata.normalize("NFKC", text or "").casefold().replace("’", "'")
    return any(phrase in folded for phrase in DECLINE_PHRASES)
