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

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\s\da-z])|(?<=[。！？])|\n+")
_CITATION = re.compile(r"\[\d+\]")
_BULLET = re.compile(r"^(?:[-*•]+(?:\s+|$))+")  # "- item", "* item"; not the hyphen of "-m" or "-20 °C"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, stripped; empty pieces dropped. Knows CJK full stops and
    line breaks; a dot between digits ("2.5") or before a digit does not end a sentence."""
    parts = (_BULLET.sub("", p.strip()) for p in _SENTENCE_END.split(text or "") if p)
    return [p for p in parts if p]


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
    helps a short line ("Range: 118 km") say what it is about. `kind` says what it is: "text" (prose), "item" (a
    list item), "row" (a table row: Markdown, or aligned text with its continuation lines), "heading",
    "code" (a code block, or a line that is only code) or "link" (a link target, a badge); headings and links
    are never evidence, code only when the question asks for code (`asks_for_code`)."""

    source: int
    text: str
    position: int  # order within its passage
    heading: str = ""
    kind: str = "text"

    @property
    def shown(self) -> str:
        """The sentence as the prompt and the chat show it: a fragment ("Range: 118 km", a table row, a
        few words, a list item) carries its heading, a full sentence stands alone."""
        fragment = len(self.text.split()) <= 4 or ": " in self.text[:25] or "; " in self.text
        fragment = fragment or self.kind == "item"  # a list item belongs to its section ("man-db 2.11.2: Fix…")
        if (
            self.kind in ("text", "item", "row")
            and self.heading
            and fragment
            and self.heading.casefold() not in self.text.casefold()
        ):
            return f"{self.heading}: {self.text}"
        return self.text


def _is_rule(cells: list[str]) -> bool:
    return all(set(c) <= set("-: ") for c in cells)


def _table_rows(lines: list[str]) -> list[str]:
    """Markdown table lines -> one "column: value; ..." sentence per data row. A table cut off above its
    header (a chunk can start inside a table) gives "value; value" rows."""
    cells = [[plain(c.strip()) for c in line.strip().strip("|").split("|")] for line in lines]
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
_SETEXT = re.compile(r"^\s*(?:=+|-+)\s*$")  # the line under a heading ("Patches\n-------"), or a rule
_FENCE = re.compile(r"^\s*(```|~~~)")
_ALIGNED = re.compile(r"[^\s.!?。！？:;,)]\s{2,}\S")  # columns of a text table, not two spaces after a full stop
_LINK_TARGET = re.compile(r"^\s*\[[^\]]+\]:\s*\S+")  # [zlib]: https://www.zlib.net/
_ONLY_CODE = re.compile(r"^\s*(?:`[^`]+`\s*)+$|^\s*(?:\$|>|#!)\s*\S")  # `zstd -D dict FILE`, "$ make"
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)|!\[([^\]]*)\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)|\[([^\]]+)\]\[[^\]]*\]")
_EMPTY_LINK = re.compile(r"\[\s*\](?:\[[^\]]*\]|\([^)]*\))")  # what is left of a badge: "[][travisLink]"
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_EMPHASIS_MARKS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def _shouted(line: str) -> bool:
    """A line in capitals ("BUG REPORTS", "OPTIONEN"): at least three cased letters, all upper case (Japanese
    text around "YYYY-MM-DD" is not shouting)."""
    letters = [ch for ch in line if ch.isalpha()]
    cased = [ch for ch in letters if ch.lower() != ch.upper()]
    return len(cased) >= 3 and len(cased) >= 0.8 * len(letters) and all(ch.isupper() for ch in cased)


def plain(text: str) -> str:
    """Markdown and HTML markup reduced to what a reader sees: link text without its target, no images, no
    tags, no bold marks. Inline code keeps its backticks (they say "type this")."""
    text = _EMPTY_LINK.sub("", _IMAGE.sub("", text))
    text = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = _TAG.sub("", text)
    text = _EMPHASIS_MARKS.sub(r"\2", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _location_heading(location: str) -> str:
    """ "section Fleet > Tern T12" -> "Tern T12"; other locations give no heading."""
    if location.startswith("section "):
        return location.removeprefix("section ").split(">")[-1].strip()
    return ""


def candidates(passages: Sequence[str], locations: Sequence[str] = ()) -> list[Candidate]:
    """The sentences of each passage, numbered by passage from 1: prose re-joined across hard line breaks
    and split into sentences; list items, headings and text-table lines one each; Markdown tables row by
    row; a code block whole. Markup is stripped (`plain`). Each sentence keeps the heading it sits under."""
    out: list[Candidate] = []
    for number, text in enumerate(passages, 1):
        heading = _location_heading(locations[number - 1]) if number <= len(locations) else ""
        pieces: list[tuple[str, str, str]] = []
        table: list[str] = []
        paragraph: list[str] = []
        item: list[str] = []  # a list item, which may go on over indented lines
        code: list[str] | None = None  # the lines of a fenced code block being read
        row: list[str] = []  # an aligned text-table row, which may go on over more deeply indented lines
        row_indent = 0

        def prose(lines: list[str], under: str, kind: str = "text", pieces: list = pieces) -> None:
            pieces.extend((sentence, under, kind) for sentence in split_sentences(plain(" ".join(lines))))

        for line in [*(text or "").splitlines(), ""]:
            stripped = line.strip()
            if code is not None:  # inside a fence: everything up to the closing fence is one block
                if _FENCE.match(stripped):
                    pieces.append((" ".join(c for c in code if c), heading, "code"))
                    code = None
                else:
                    code.append(stripped)
                continue
            indent = len(line) - len(line.lstrip())
            if row and stripped and indent > row_indent and not _ALIGNED.search(stripped):
                row.append(stripped)  # "E-PW-162  RED  GX-9 range extender failed to start or stopped in" + "flight…"
                continue
            if row:
                unit = plain(" ".join(row))
                if len(unit) <= 400:  # a row is one unit, with every column and its continuation
                    pieces.append((unit, heading, "row"))
                else:
                    prose(row, heading)
                row = []
            if item and stripped and line[:1].isspace() and not _LIST_ITEM.match(stripped):
                if not _ALIGNED.search(stripped):
                    item.append(stripped)  # the indented rest of a list item
                    continue
            if item:
                prose(item, heading, "item")
                item = []
            if _SETEXT.match(stripped) and len(stripped) >= 3:
                if paragraph:  # "Patches\n-------": the paragraph's last line is a heading
                    title_line = paragraph.pop()
                    if paragraph:
                        prose(paragraph, heading)
                    paragraph = []
                    heading = plain(title_line).strip("# ")
                    pieces.append((heading, "", "heading"))
                continue
            title = _HEADING.match(stripped)
            listed = bool(_LIST_ITEM.match(stripped))
            fence = bool(_FENCE.match(stripped))
            link = bool(_LINK_TARGET.match(stripped)) or (
                bool(stripped) and not plain(stripped).strip(" |")
            )  # a link target, or a line that is only markup (a badge, an image, a tag)
            single = bool(title) or listed or fence or link or bool(_ALIGNED.search(stripped)) or _shouted(stripped)
            if paragraph and (not stripped or stripped.startswith("|") or single):
                prose(paragraph, heading)
                paragraph = []
            if stripped.startswith("|"):
                table.append(stripped)
                continue
            if table:
                pieces.extend((row, heading, "row") for row in _table_rows(table))
                table = []
            if not stripped:
                continue
            if fence:
                code = []
            elif link:
                pieces.append((stripped, heading, "link"))
            elif title:
                heading = plain(title.group(1)).strip().strip("*").strip()
                pieces.append((heading, "", "heading"))
            elif listed:
                item = [_LIST_ITEM.sub("", stripped)]
            elif _ONLY_CODE.match(stripped):
                pieces.append((stripped, heading, "code"))
            elif _ALIGNED.search(stripped):
                row, row_indent = [stripped], indent
            elif single:  # an aligned text-table line or a shouted heading: one line each
                kind = "heading" if _shouted(stripped) and len(stripped.split()) <= 6 else "text"
                pieces.extend((sentence, heading, kind) for sentence in split_sentences(plain(stripped)))
            else:
                paragraph.append(stripped)
        if code:
            pieces.append((" ".join(c for c in code if c), heading, "code"))
        if row:
            pieces.append((plain(" ".join(row)), heading, "row"))
        for position, (piece, under, kind) in enumerate(pieces):
            if kind in ("text", "item", "row") and _ONLY_CODE.match(piece):
                kind = "code"  # a list item that is only a command
            out.append(Candidate(number, piece, position, under, kind))
    return out


_REFERS_BACK = re.compile(
    r"^(?:it|its|this|these|that|those|they|their|there|such|here|then|thus|hence|so|also|"
    r"es|dies|das|diese|dieser|er|sie|damit|dann|"
    r"ce|cela|il|elle|ils|"
    r"to|ta|te|ovo|ono|"
    r"그|이|이것|그것|"
    r"それ|これ|この|その|"
    r"它|这|该|其|此)\b|^(?:それ|これ|この|その|它|这|该|其|此|그|이)",
    re.IGNORECASE,
)
_UNFINISHED = re.compile(r"[,:;、，：]\s*$|\b(?:and|or|the|a|of|to|with|und|oder)\s*$")
_NO_FULL_STOP = re.compile(r"[^\s.!?。！？)\]\"'`]$")
_CODE_WORDS = re.compile(
    r"\b(?:command|commands|code|snippet|syntax|example|examples|invoke|invocation|call it|shell|type|run|"
    r"install|installs|usage|script|befehl|kommando|aufruf|beispiel|naredb|komand)\b|"
    r"コマンド|命令|명령|コード|代码|示例|例",
    re.IGNORECASE,
)


def asks_for_code(question: str) -> bool:
    """Whether a question asks for code (a command, an example, a call), so code blocks may be its evidence."""
    return bool(_CODE_WORDS.search(question or ""))


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
        self.all = candidates(passages, locations)
        self.pool = [c for c in self.all if len(content_terms(c.text)) >= 2 or numbers(c.text)]
        self._at = {(c.source, c.position): c for c in self.all}
        self._code = [_squeeze(c.text) for c in self.all if c.kind == "code"]  # read per streamed token (`unusable`)
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
        usable = {"text", "item", "row", "code"} if asks_for_code(question) else {"text", "item", "row"}
        cap = per_passage or k
        chosen: list[Evidence] = []
        used: dict[int, int] = {}
        taken: set[tuple[int, int]] = set()
        for i in np.argsort(-scores, kind="stable"):
            c = self.pool[int(i)]
            if c.kind not in usable or (c.source, c.position) in taken or used.get(c.source, 0) >= cap:
                continue
            used[c.source] = used.get(c.source, 0) + 1
            text = c.shown
            for neighbour in self._continuation(c):  # the sentence before or after that completes it
                taken.add((neighbour.source, neighbour.position))
                text = f"{neighbour.text} {text}" if neighbour.position < c.position else f"{text} {neighbour.text}"
            taken.add((c.source, c.position))
            chosen.append(Evidence(c.source, text, float(scores[i])))
            if len(chosen) == k:
                break
        return chosen

    def _continuation(self, c: Candidate) -> list[Candidate]:
        """The neighbouring prose sentence a chosen one needs: the one before when it begins by referring
        back ("It had uid 37."), the one after when it stops short ("There are two new status values,") or
        the next one refers back to it ("Das ist die Voreinstellung.")."""
        if c.kind not in ("text", "item"):
            return []
        out = []
        before, after = self._at.get((c.source, c.position - 1)), self._at.get((c.source, c.position + 1))
        if before is not None and before.kind == c.kind and _REFERS_BACK.match(c.text):
            out.append(before)
        if (
            after is not None
            and after.kind == c.kind
            and (
                _UNFINISHED.search(c.text)
                or _REFERS_BACK.match(after.text)
                # prose that runs on without a full stop into a lower-case line (not a list item without one)
                or (c.kind == "text" and _NO_FULL_STOP.search(c.text) and after.text[:1].islower())
            )
        ):
            out.append(after)
        return out

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

    def unusable(self, answer: str, question: str) -> str | None:
        """Why an answer is not worth showing, or None: "empty", "markers" (only citation markers and punctuation, or
        more markers than words: "[1]: [1]: [2]:", "[1] [1] [2] [8.1]"), "markup" (a directive, a fence, a
        table line, mostly symbols) or "code" (a copied code line or shell prompt, when the question does not
        ask for code). The pipeline quotes the best evidence instead (`answer.pipeline`)."""
        return unusable(answer, question, self._code)

    def judge(self, answer: str) -> list[SentenceSupport]:
        """`support` for every sentence of an answer (citation markers ignored)."""
        return [self.support(s) for s in split_sentences(answer)]


_SHORT_MARKER = re.compile(r"\[[^\[\]\n]{0,12}\]")  # [1], [8.1], [a], [*]
_ANSWER_WORD = re.compile(r"[^\W\d_]{2,}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|\d+")
_MARKUP_LINE = re.compile(r"^\s*(?:\.\.\s+[\w-]+::|```|~~~|\|.*\|\s*$|:[\w-]+:\s*$|[-=~^*#]{3,}|</?[a-z]+[^>]*>\s*$)")
_CODE_SYMBOL = re.compile(r"[=(){}<>$|;\\]|\s--?\w|^--?\w|\.\w+\(")
_CODE_LINE = re.compile(r"^\s*(?:>>>|\$\s|#!|%\s|In \[\d+\]:)")


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def unusable(answer: str, question: str, code: Sequence[str] = ()) -> str | None:
    """See `SourceSentences.unusable`; `code` holds the code blocks and code lines of the sources, each with its
    runs of white space squeezed to one space."""
    text = (answer or "").strip()
    if not text:
        return "empty"
    markers = _SHORT_MARKER.findall(text)
    rest = _SHORT_MARKER.sub(" ", text)
    words = _ANSWER_WORD.findall(rest)
    if _MARKUP_LINE.match(rest) and len(words) <= 4:  # a fence before a real sentence is only untidy
        return "markup"
    if not words or (len(markers) >= 3 and len(markers) > len(words)):
        return "markers"
    visible = [ch for ch in rest if not ch.isspace()]
    if len(visible) >= 12 and sum(not ch.isalnum() for ch in visible) > 0.5 * len(visible):
        return "markup"
    if not asks_for_code(question):
        squeezed = _squeeze(rest).strip(" .。")
        if _CODE_LINE.match(squeezed) or (
            len(squeezed) >= 8 and _CODE_SYMBOL.search(squeezed) and any(squeezed in block for block in code)
        ):
            return "code"
    return None


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
    # de
    "sagen dazu nichts",
    "nicht erwähnt",
    "keine angaben",
    "keine informationen",
    "nicht angegeben",
    "weiß ich nicht",
    "weiß nicht",
    "nicht beschrieben",
)


def is_decline(text: str) -> bool:
    """Whether an answer says it does not know or that the documents do not say."""
    folded = unicodedata.normalize("NFKC", text or "").casefold().replace("’", "'")
    return any(phrase in folded for phrase in DECLINE_PHRASES)
