"""Which language a question is written in, from its script and a few tell-tale words.

Enough to ask the model to answer in the question's language and to score per language: Korean
(Hangul), Japanese (kana, or kanji with Japanese particles), Chinese (Han without kana), Mongolian
and other Cyrillic, Croatian (its diacritics or common words), German (its common words, umlauts), else
English. It never guesses a
language the app does not name; `LANGUAGE_NAMES` holds those it can tell apart.
"""

from __future__ import annotations

import re

LANGUAGE_NAMES = {
    "en": "English",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "hr": "Croatian",
    "mn": "Mongolian",
    "ru": "Russian",
    "de": "German",
}

_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_MONGOLIAN_LETTERS = re.compile(r"[өүӨҮ]")
_CROATIAN_LETTERS = re.compile(r"[čćžšđČĆŽŠĐ]")
_CROATIAN_WORDS = re.compile(
    r"\b(je|su|li|tko|koji|koja|koje|kojem|što|sto|kako|koliko|gdje|kada|zašto|mora|moraju|treba|nakon|prije|"
    r"tijekom|za|na|od|do|iz|se|i|u|s|sa|ili|ako|kod|ima|imaju|ukupno|baza|baze|bazi|bura|jugo|otok|otoka|let|"
    r"leta|letova|dostava|ljekarn\w*)\b",
    re.IGNORECASE,
)
_MONGOLIAN_WORDS = re.compile(r"(вэ|бэ|уу|үү|юу|ын|ийн|баазад|хэдэн|хэр|ямар)\b", re.IGNORECASE)
_RUSSIAN_WORDS = re.compile(r"\b(что|как|где|какой|какая|сколько|почему|когда|это|для|или)\b", re.IGNORECASE)
_GERMAN_LETTERS = re.compile(r"[äöüßÄÖÜ]")
_GERMAN_WORDS = re.compile(
    r"\b(der|die|das|den|dem|des|und|ist|sind|welche|welcher|welches|wie|wer|wann|warum|mit|von|zu|zum|zur|"
    r"nicht|ein|eine|einer|einen|auf|für|gibt|muss|kann|wird|werden|seine|ihre|oder|bei|wenn|sich|wieviel|"
    r"viele|ohne|zusammen|angegeben|welchen|welchem)\b",
    re.IGNORECASE,
)
_ENGLISH_WORDS = re.compile(r"\b(the|is|are|what|which|how|when|where|who|does|do|of|to|and|for|in|on)\b", re.I)


def detect_language(text: str) -> str:
    """A language code for `text` ("en" when there is nothing to go on)."""
    text = text or ""
    counts = {
        "ko": len(_HANGUL.findall(text)),
        "kana": len(_KANA.findall(text)),
        "han": len(_HAN.findall(text)),
        "cyr": len(_CYRILLIC.findall(text)),
    }
    if counts["ko"] and counts["ko"] >= counts["han"]:
        return "ko"
    if counts["kana"]:
        return "ja"
    if counts["han"]:
        return "zh"
    if counts["cyr"]:
        if _MONGOLIAN_LETTERS.search(text) or _MONGOLIAN_WORDS.search(text):
            return "mn"
        return "ru" if _RUSSIAN_WORDS.search(text) else "mn"
    if _CROATIAN_LETTERS.search(text):
        return "hr"
    croatian, english = len(_CROATIAN_WORDS.findall(text)), len(_ENGLISH_WORDS.findall(text))
    german = len(_GERMAN_WORDS.findall(text)) + bool(_GERMAN_LETTERS.search(text))
    if german > english and german > croatian:
        return "de"
    return "hr" if croatian > english else "en"


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


DOCUMENTS_DO_NOT_SAY = {
    "en": "The documents do not say.",
    "ko": "문서에 나와 있지 않습니다.",
    "ja": "資料には記載されていません。",
    "zh": "文档中没有提到。",
    "hr": "Dokumenti to ne navode.",
    "mn": "Баримт бичигт энэ талаар дурдаагүй байна.",
    "ru": "В документах об этом не сказано.",
    "de": "Die Dokumente sagen dazu nichts.",
}
"""How the app (and an adapter trained to read documents) says the documents hold no answer, per language;
each is recognised by `answer.evidence.is_decline`."""


def documents_do_not_say(language: str) -> str:
    """ "The documents do not say." in `language` (a code from `detect_language`), English for any other."""
    return DOCUMENTS_DO_NOT_SAY.get(language, DOCUMENTS_DO_NOT_SAY["en"])


DOCUMENTS_SAY = {
    "en": "The documents say:",
    "ko": "문서에 따르면:",
    "ja": "資料によると:",
    "zh": "文档中写道:",
    "hr": "Dokumenti navode:",
    "mn": "Баримт бичигт:",
    "ru": "В документах сказано:",
    "de": "In den Dokumenten steht:",
}
"""What goes before a quoted source sentence when the app quotes the documents instead of a failed answer."""


def documents_say(language: str) -> str:
    """ "The documents say:" in `language`, English for any other."""
    return DOCUMENTS_SAY.get(language, DOCUMENTS_SAY["en"])
