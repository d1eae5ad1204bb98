"""Sentences as evidence: which source sentences a question needs, and which an answer rests on.

One module decides "supported" for the whole app, so the chat's evidence and unsupported marks, the
citation rule and the scorecard's grounding figure agree.

- `candidates` splits retrieved passages into sentences (a Markdown table row becomes one sentence
  that names its columns: "Part: KX-4471; Name: main bearing seal; Price: €120").
- `select_evidence` picks the few sentences that match a question best (embedding cosine plus the
  share of the question's key terms they hold), so a small model reads 3 short sentences instead of
  4 whole chunks.
- `support` says whether a source sentence supports an answer sentence: it must hold at least
  `MIN_COVERAGE` of the answer sentence's content terms (`core.bm25_tokens`: stemmed words, CJK bigrams,
  codes), or be close in meaning (cosine ≥ `MIN_COSINE`) with half of them; and it must hold every
  number the answer sentence states. Numbers are where a small model goes wrong ("20 days" when the
  source says 30), so one wrong number makes a sentence unsupported however many words match.
  Sentences with fewer than two content terms and no number ("Sure.") are not judged.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.bm25_tokens import terms

MIN_COVERAGE = 0.6
MIN_COSINE = 0.75
COSINE_WEIGHT = 0.1
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
    """One sentence of a retrieved passage; `source` is the passage's number (from 1) as the prompt shows it.
    `heading` is the section it sits under (from the passage's own headings, or the location's), which
    helps a short line ("Range: 118 km") say what it is about."""

    source: int
    text: str
    position: int  # order within its passage
    heading: str = ""

    @property
    def shown(self) -> str:
        """The sentence as the prompt and the chat show it: a fragment ("Range: 118 km", a table row, a
        few words) carries its heading, a full sentence stands alone."""
        fragment = len(self.text.split()) <= 4 or ": " in self.text[:25] or "; " in self.text
        if self.heading and fragment and self.heading.casefold() not in self.text.casefold():
            return f"{self.heading}: {self.text}"
        return self.text


def _is_rule(cells: list[str]) -> bool:
    return all(set(c) <= set("-: ") for c in cells)


def _table_rows(lines: list[str]) -> list[str]:
    """Markdown table lines -> one "column: value; ..." sentence per data row. A table cut off above its
    header (a chunk can start inside a table) gives "value; value" rows."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    has_header = len(cells) > 1 and _is_rule(cells[1])
    header = cells[0] if has_header else []
    rows = [r for r in (cells[2:] if has_header else cells) if not _is_rule(r)]
    out = []
    for row in rows:
        pairs = [f"{h}: {v}" if h else v for h, v in zip(header or [""] * len(row), row, strict=False) if v]
        if pairs:
            out.append("; ".join(pairs))
    return out


_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)]|[a-z][.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*)$")


def _location_heading(location: str) -> str:
    """ "section Fleet > Tern T12" -> "Tern T12"; other locations give no heading."""
    if location.startswith("section "):
        return location.removeprefix("section ").split(">")[-1].strip()
    return ""


def candidates(passages: Sequence[str], locations: Sequence[str] = ()) -> list[Candidate]:
    """The sentences of each passage, numbered by passage from 1: prose re-joined across hard line breaks
    and split into sentences; list items, headings and text-table lines one each; Markdown tables row by
    row. Each sentence keeps the heading it sits under."""
    out: list[Candidate] = []
    for number, text in enumerate(passages, 1):
        heading = _location_heading(locations[number - 1]) if number <= len(locations) else ""
        pieces: list[tuple[str, str]] = []
        table: list[str] = []
        paragraph: list[str] = []
        item: list[str] = []  # a list item, which may go on over indented lines
        for line in [*(text or "").splitlines(), ""]:
            stripped = line.strip()
            if item and stripped and line[:1].isspace() and not _LIST_ITEM.match(stripped) and "  " not in stripped:
                item.append(stripped)  # the indented rest of a list item
                continue
            if item:
                pieces.extend((sentence, heading) for sentence in split_sentences(" ".join(item)))
                item = []
            title = _HEADING.match(stripped)
            listed = bool(_LIST_ITEM.match(stripped))
            single = bool(title) or listed or "  " in stripped or stripped.isupper()
            if paragraph and (not stripped or stripped.startswith("|") or single):
                pieces.extend((sentence, heading) for sentence in split_sentences(" ".join(paragraph)))
                paragraph = []
            if stripped.startswith("|"):
                table.append(stripped)
                continue
            if table:
                pieces.extend((row, heading) for row in _table_rows(table))
                table = []
            if not stripped:
                continue
            if title:
                heading = title.group(1).strip().strip("*").strip()
                pieces.append((heading, ""))
            elif listed:
                item = [_LIST_ITEM.sub("", stripped)]
            elif single:  # an aligned text-table line or a shouted heading: one line each
                pieces.extend((sentence, heading) for sentence in split_sentences(stripped))
            else:
                paragraph.append(stripped)
        for position, (piece, under) in enumerate(pieces):
            out.append(Candidate(number, piece, position, under))
    return out


@dataclass(frozen=True)
class Evidence:
    source: int  # passage number, from 1
    text: str
    score: float


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    judged: bool  # False for sentences too short to judge
    supported: bool
    source: int | None  # passage number (from 1) of the best supporting sentence
    evidence: str | None  # that sentence
    coverage: float  # share of the answer sentence's content terms found in it
    sources: tuple[int, ...] = ()  # every passage with a sentence that supports it


class SourceSentences:
    """The sentences of the passages one answer was built from, embedded once (when `encode` is given)
    and used both to pick the prompt's evidence and to judge the answer."""

    def __init__(self, passages: Sequence[str], encode: Encoder | None = None, locations: Sequence[str] = ()):
        self.encode = encode
        pool = candidates(passages, locations)
        self.pool = [c for c in pool if len(content_terms(c.text)) >= 2 or numbers(c.text)]
        # each sentence is read under the heading it sits under
        self._context_terms = [content_terms(c.text) | content_terms(c.heading) for c in self.pool]
        self._context_numbers = [numbers(c.shown) for c in self.pool]
        self._vectors: np.ndarray | None = None

    def _cosines(self, text: str) -> np.ndarray:
        if self.encode is None or not self.pool:
            return np.zeros(len(self.pool))
        if self._vectors is None:
            self._vectors = self.encode([c.shown for c in self.pool])
        query = self.encode([text])[0]
        return self._vectors @ query

    def select(self, question: str, k: int = 4, per_passage: int | None = None) -> list[Evidence]:
        """The `k` sentences that match `question` best, best first (at most `per_passage` from one passage).

        Score: the share of the question's content terms the sentence (with its heading) holds, each term
        weighted by how rare it is among these sentences (so "E-PW-162" counts more than "aircraft"),
        plus a tenth of the embedding cosine to break ties, plus a small prior for better-ranked passages.
        Measured on the development set, key terms alone found the sentence holding the answer far more
        often than the cosine of an English-only embedding model (`bench/bench_grounded.py`)."""
        if not self.pool:
            return []
        query_terms = content_terms(question)
        frequency: dict[str, int] = {}
        for sentence_terms in self._context_terms:
            for term in sentence_terms & query_terms:
                frequency[term] = frequency.get(term, 0) + 1
        weight = {t: math.log(1 + len(self.pool) / (1 + frequency.get(t, 0))) for t in query_terms}
        total = sum(weight.values()) or 1.0
        keyword = np.array([sum(weight[t] for t in query_terms & terms_) / total for terms_ in self._context_terms])
        rank_prior = np.array([0.02 / c.source for c in self.pool])  # ties go to the better-ranked passage
        scores = keyword + COSINE_WEIGHT * self._cosines(question) + rank_prior
        cap = per_passage or k
        chosen: list[Evidence] = []
        used: dict[int, int] = {}
        for i in np.argsort(-scores, kind="stable"):
            c = self.pool[int(i)]
            if used.get(c.source, 0) >= cap:
                continue
            used[c.source] = used.get(c.source, 0) + 1
            chosen.append(Evidence(c.source, c.shown, float(scores[i])))
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
        # A sentence is read under its heading: an answer that copies "Tern T6 (TN6-1000): Maximum
        # payload: 6 kg" is supported by the row "Maximum payload: 6 kg" of the section "Tern T6 (TN6-1000)".
        coverage = np.array(
            [len(sentence_terms & t) / len(sentence_terms) if sentence_terms else 1.0 for t in self._context_terms]
        )
        numbers_ok = np.array([sentence_numbers <= n for n in self._context_numbers])
        cosine = self._cosines(clean)
        ok = numbers_ok & ((coverage >= MIN_COVERAGE) | ((cosine >= MIN_COSINE) & (coverage >= MIN_COVERAGE / 2)))
        best = int(np.argmax(ok * 10 + coverage + cosine))
        c = self.pool[best]
        supporting = tuple(sorted({self.pool[int(i)].source for i in np.flatnonzero(ok)}))
        return SentenceSupport(sentence, True, bool(ok[best]), c.source, c.text, float(coverage[best]), supporting)

    def judge(self, answer: str) -> list[SentenceSupport]:
        """`support` for every sentence of an answer (citation markers ignored)."""
        return [self.support(s) for s in split_sentences(answer)]


def select_evidence(
    question: str, passages: Sequence[str], encode: Encoder | None = None, k: int = 4, per_passage: int | None = None
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
    "do not say",
    "don't say",
    "does not say",
    "doesn't say",
    "not mentioned",
    "no information",
    "not specified",
    "don't know",
    "do not know",
    "not in the documents",
    "not in the sources",
    "cannot find",
    "can't find",
    "could not find",
    "couldn't find",
    "not provided",
    "no mention",
    "does not mention",
    "doesn't mention",
    "do not mention",
    "don't mention",
    "not stated",
    "found nothing",
    "not contain",
    "no data on",
    "not covered",
    "no details",
    "not documented",
    # ko
    "문서에 없",
    "나와 있지 않",
    "알 수 없",
    "정보가 없",
    "언급되어 있지 않",
    "언급이 없",
    "모릅니다",
    "찾을 수 없",
    "명시되어 있지 않",
    "포함되어 있지 않",
    # ja
    "記載されていません",
    "記載がありません",
    "記載はありません",
    "わかりません",
    "分かりません",
    "情報がありません",
    "見つかりません",
    "書かれていません",
    "言及されていません",
    # zh
    "没有提到",
    "未提及",
    "没有相关信息",
    "不知道",
    "文档中没有",
    "未说明",
    "无法找到",
    "没有说明",
    "找不到",
    "没有提供",
    "未提供",
    # hr
    "ne navode",
    "ne navodi",
    "ne spominj",
    "nema podataka",
    "nema informacija",
    "ne znam",
    "nije navedeno",
    "ne sadrž",
    "ne kažu",
    "ne kaže",
    "nisam pronaš",
    "nisam naš",
    # mn
    "дурдаагүй",
    "мэдээлэл байхгүй",
    "мэдэхгүй",
    "олдсонгүй",
    "заагаагүй",
    "тусгаагүй",
    # ru
    "не сказано",
    "нет информации",
    "не указано",
    "не знаю",
)


def is_decline(text: str) -> bool:
    """Whether an answer says it does not know or that the documents do not say."""
    folded = unicodedata.normalize("NFKC", text or "").casefold().replace("’", "'")
    return any(phrase in folded for phrase in DECLINE_PHRASES)
