"""Text -> keyword terms for BM25, for any script.

- Latin, Cyrillic and other alphabetic scripts: NFKC, case-folded words with diacritics folded
  (č -> c, đ -> d, й -> и), so a query typed without them still matches; English stop words
  dropped and plain ASCII words stemmed (Snowball English).
- Chinese, Japanese and Korean have no spaces between words: a run of those characters becomes
  overlapping character bigrams (a lone character stays a unigram), as Lucene's CJK analyzer does.
- Part numbers and codes ("E-PW-204", "BX-220", "KC-COM-520") give their parts and the whole code,
  so the exact code scores above documents that merely share a part.

bm25s's default tokenizer keeps only ASCII-ish words and treats a whole CJK sentence as one
token, which is why the keyword index uses this instead.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

TOKENIZER_VERSION = "terms-v5"
TRUNCATE = 5
"""Croatian and Cyrillic-script words longer than this are cut to their first letters: a light stem that
lets inflected forms meet ("letova" / "letovi" -> "letov", "баазад" / "баазын" -> "бааза"), as truncation
stemmers do for Slavic and agglutinative languages."""

_WORD = re.compile(r"[^\W_]+(?:[-./][^\W_]+)*")
_CJK = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]+"
)
_SPLIT_CODE = re.compile(r"[-./]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_EXTRA_FOLD = str.maketrans({"đ": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ı": "i", "þ": "th"})

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    tell please many much"""
    # Croatian and Mongolian question words and particles (folded as `_fold_word` folds them)
    """ koliko koji koja koje kojoj kojem kojim sto sta kako gdje kada tko li je su se u na i za od do iz s sa
    ili ako da ne te to ta taj
    вэ бэ уу үү юу хэдэн хэр хэрхэн хэн хэнд хэзээ хаана яах ямар ямар вэ бол болох""".split()
)
CJK_STOP_TERMS = frozenset(
    # question endings and question words that are never what a question is about
    """나요 까요 니까 습니 인가 가요 은가 는가 ㅂ니 할까 얼마 언제 어디 무엇 어떤 어떻 떻게 누구 몇
    ですか すか ます です のは とは 何で 何を 何が 何時 どの どこ いつ どれ れく くら らい だれ どう うな なり りま
    から まで ませ せん
    什么 么时 多少 怎么 哪个 哪些 哪里 是否 吗""".split()
)


@lru_cache(maxsize=1)
def _stemmer():  # PyStemmer comes with llama-index-retrievers-bm25 / bm25s
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _fold_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.translate(_EXTRA_FOLD))
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", folded)


@lru_cache(maxsize=65536)
def _word_term(word: str, truncate_latin: bool = False) -> str | None:
    """One alphabetic/numeric word -> its term, or None for a stop word or a lone letter."""
    word = _fold_word(word)
    if word in STOP_WORDS or (len(word) == 1 and not word.isdigit()):
        return None
    if word.isalpha() and len(word) > TRUNCATE and (_CYRILLIC.search(word) or (truncate_latin and word.isascii())):
        return word[:TRUNCATE]
    if word.isascii() and word.isalpha():
        return _stemmer().stemWord(word)
    return word


def _cjk_terms(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [t for t in (run[i : i + 2] for i in range(len(run) - 1)) if t not in CJK_STOP_TERMS]


def terms(text: str) -> list[str]:
    """The keyword terms of `text`, in order, with repeats (term frequency matters to BM25)."""
    out: list[str] = []
    truncate_latin = _is_croatian(text)
    text = unicodedata.normalize("NFKC", text).casefold()
    for match in _WORD.finditer(text):
        token = match.group()
        parts = _SPLIT_CODE.split(token) if len(token) > 1 else [token]
        for part in parts:
            position = 0
            for cjk in _CJK.finditer(part):  # "t6는" -> "t6" + CJK "는"
                if cjk.start() > position:
                    term = _word_term(part[position : cjk.start()], truncate_latin)
                    if term:
                        out.append(term)
                out.extend(_cjk_terms(cjk.group()))
                position = cjk.end()
            if position < len(part):
                term = _word_term(part[position:], truncate_latin)
                if term:
                    out.append(term)
        if len(parts) > 1 and any(ch.isdigit() for ch in token) and not _CJK.search(token):
            out.append(_fold_word(token.replace(".", "-").replace("/", "-")))  # the whole code: "e-pw-204"
    return out


def _is_croatian(text: str) -> bool:
    from core.language import detect_language

    return detect_language(text) == "hr"
