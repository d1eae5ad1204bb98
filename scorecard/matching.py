"""Key facts found in an answer however it writes them: one normalizer and a boundary-aware matcher.

A question's `keys` list the facts a correct answer must contain. Each key is a string, or a list
of alternative strings (any one is enough). A key matches when its normalized form occurs in the
normalized answer at word boundaries, so "12 kg" is found in "twelve kilograms" and in "１２ｋｇ",
"1,250" in "1250", but "12" is not found in "120" or "1.12".

`normalize` makes these the same:
- width and compatibility forms (NFKC): full-width digits and letters, "℃", "㎏";
- case, and the diacritics of Latin and Cyrillic letters ("Šegvić" = "segvic"); Korean, Japanese
  and Chinese characters are kept as they are (dropping a Japanese voicing mark changes a word);
- dashes and minus signs ("−25" = "-25"), quotes, and runs of whitespace;
- numbers: thousands separators ("1,250", "1 250", "1'250" -> "1250"), a decimal comma before one
  or two digits ("2,5" -> "2.5"), trailing decimal zeros ("8.0" -> "8"), English number words up to
  ninety-nine ("twenty-two" -> "22", "six-digit" -> "6-digit"), Chinese numerals before a counter
  ("四条" -> "4条"), millions ("11.8 million" -> "11800000");
- clock times: a leading zero ("06:00" -> "6:00"), Korean and Japanese hours ("오후 5시", "午後5時" -> "17:00");
- dates in English, Korean, Japanese, Chinese, Croatian and Mongolian ("14 March 2016", "March 14th, 2016",
  "2016년 3월 14일", "2016年3月14日", "14. ožujka 2016.", "2016 оны 3 дугаар сарын 14" -> "2016-03-14";
  "March 2016" -> "2016-03"; "2 November", "11월 2일" -> "11-02");
- units and currencies after a number, in the languages of the sample knowledge base, to one
  spelling without a space: "12 kilograms" = "12kg", "−25 degrees Celsius" = "영하 25도" = "-25°c",
  "30 minutes" = "30분" = "30-minute" = "30min", "€120" = "120 EUR" = "120eur", "CNY 520" = "520元",
  "85 per cent" = "85%"; a range shares its unit ("82–85 %" -> "82% - 85%").

Known limits: a dot as thousands separator ("1.904" in Croatian) reads as a decimal; case endings of
names ("Radića") and number words outside English are not undone; "分" after a score (points) reads as
minutes. Keys list alternatives for such cases.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

Key = str | Sequence[str]
"""One key fact: a string, or alternative strings of which any one is enough."""

# -- characters --------------------------------------------------------------------------------
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-")
_QUOTES = {
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\uff07"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02"), '"'),
}
_EXTRA_FOLD = str.maketrans({"đ": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ı": "i"})
_CJK = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)


def is_cjk(ch: str) -> bool:
    return bool(_CJK.match(ch))


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """Drop the diacritics of a Latin or Cyrillic letter; leave every other character alone."""
    if ch.isascii() or not ch.isalpha():
        return ch
    name = unicodedata.name(ch, "")
    if not (name.startswith("LATIN") or name.startswith("CYRILLIC")):
        return ch
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", base)


# -- numbers -----------------------------------------------------------------------------------
_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_UNITS_WORDS = "one|two|three|four|five|six|seven|eight|nine"
_COMPOUND_WORD = re.compile(rf"(?<![\w-])({_TENS})[- ]({_UNITS_WORDS})(?![\w])")
_NUMBER_WORD = re.compile(r"(?<![\w-])(" + "|".join(_NUMBER_WORDS) + r")(?![\w])")  # "six-digit" -> "6-digit"
_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
# Chinese numerals only before a counter, where they cannot be part of a word (十分 "very", 一般 "usual").
_ZH_NUMBER = re.compile(
    r"([零〇一二两兩三四五六七八九十百]+)"
    r"(?=个|個|条|條|次|台|架|天|年|名|人|小时|小時|分钟|分鐘|周|週|级|級|类|類|批|项|項|位|家|种|種|层|層|道|件|张|張|块|塊)"
)
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:[,' ]\d{3})+)(?![\d]|[.,]\d)")
_DECIMAL_COMMA = re.compile(r"(?<![\d,])(\d+),(\d{1,2})(?![\d,])")
_TRAILING_ZEROS = re.compile(r"(?<![\d.])(\d+)\.(\d*?)0+(?![\d])")  # "8.0" -> "8", "8.50" -> "8.5"
_MILLIONS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(million|millions|mln|billion|bn)(?![a-z])")
_CLOCK = re.compile(r"(?<![\d:])0(\d:\d\d)")
# 17시, 17時, 오후 5시, 午後5時 30分 -> 17:00, 17:30 (시간 / 時間 are hours, not clock times)
_CJK_CLOCK = re.compile(
    r"(?:(오후|午後|오전|午前)\s*)?(\d{1,2})\s*[시時](?![간間])(?:\s*(\d{1,2})\s*[분分](?![钟鐘]))?"
)


def _zh_number(text: str) -> str:
    """A Chinese numeral up to 999 ("二十五" -> "25"); the text as is when it is not one."""
    total, current = 0, 0
    for ch in text:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
    return str(total + current)


def _cjk_clock(m: re.Match[str]) -> str:
    hour = int(m[2])
    if m[1] in ("오후", "午後") and hour < 12:
        hour += 12
    return f"{hour}:{int(m[3] or 0):02d}"


def _millions(m: re.Match[str]) -> str:
    factor = 10**9 if m[2] in ("billion", "bn") else 10**6
    value = round(float(m[1]) * factor)
    return str(value)


# -- dates -------------------------------------------------------------------------------------
_EN_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_HR_MONTHS = [
    "siječnja|sijecnja|siječanj|sijecanj",
    "veljače|veljace|veljača|veljaca",
    "ožujka|ozujka|ožujak|ozujak",
    "travnja|travanj",
    "svibnja|svibanj",
    "lipnja|lipanj",
    "srpnja|srpanj",
    "kolovoza|kolovoz",
    "rujna|rujan",
    "listopada|listopad",
    "studenoga|studenog|studeni",
    "prosinca|prosinac",
]
_EN_MONTH = "|".join(m + ("" if len(m) <= 4 else f"|{m[:3]}\\.?") for m in _EN_MONTHS) + "|sept\\.?"
_HR_MONTH = "|".join(_HR_MONTHS)
_ANY_MONTH = f"{_EN_MONTH}|{_HR_MONTH}"
_MN_ORDINAL = r"(?:\s*-?\s*р|\s*(?:дугаар|дүгээр))?"


def _month_number(word: str) -> int:
    word = word.rstrip(".")
    for i, m in enumerate(_EN_MONTHS, 1):
        if word == m or (len(word) >= 3 and m.startswith(word)):
            return i
    for i, forms in enumerate(_HR_MONTHS, 1):
        if word in forms.split("|"):
            return i
    raise ValueError(word)


def _date(year: str | None, month: int, day: str | None = None) -> str:
    head = f"{int(year):04d}-{month:02d}" if year else f"{month:02d}"
    return head + (f"-{int(day):02d}" if day else "")


_DATE_RULES: list[tuple[re.Pattern[str], object]] = [
    # 14 March 2016, 14th of March 2016, 14. ožujka 2016.
    (
        re.compile(rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?({_ANY_MONTH})\s*,?\s+(\d{{4}})\.?(?!\d)"),
        lambda m: _date(m[3], _month_number(m[2]), m[1]),
    ),
    # March 14, 2016 / March 14th 2016
    (
        re.compile(rf"(?<![\w])({_EN_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)"),
        lambda m: _date(m[3], _month_number(m[1]), m[2]),
    ),
    # 2016년 3월 14일, 2016年3月14日, 2016 年 3 月 14 日
    (
        re.compile(r"(?<!\d)(\d{4})\s*[년年]\s*(\d{1,2})\s*[월月]\s*(\d{1,2})\s*[일日号號]"),
        lambda m: _date(m[1], int(m[2]), m[3]),
    ),
    (re.compile(r"(?<!\d)(\d{4})\s*[년年]\s*(\d{1,2})\s*[월月](?!\s*\d)"), lambda m: _date(m[1], int(m[2]))),
    # 2024 оны 1 дүгээр сарын 17, 2024 оны 1-р сарын 17, 2024 оны 12 дугаар сар
    (
        re.compile(rf"(?<!\d)(\d{{4}})\s*оны\s*(\d{{1,2}}){_MN_ORDINAL}\s*сарын\s*(\d{{1,2}})(?!\d)"),
        lambda m: _date(m[1], int(m[2]), m[3]),
    ),
    (re.compile(rf"(?<!\d)(\d{{4}})\s*оны\s*(\d{{1,2}}){_MN_ORDINAL}\s*сар"), lambda m: _date(m[1], int(m[2]))),
    # March 2016, ožujka 2016.
    (re.compile(rf"(?<![\w])({_ANY_MONTH})\s+(\d{{4}})(?!\d)"), lambda m: _date(m[2], _month_number(m[1]))),
    # without a year: 2 November, 2nd of November, 2. studenoga, November 2, 11월 2일, 11月2日 -> 11-02
    (
        re.compile(rf"(?<![\d.-])(\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?({_ANY_MONTH})(?![\w])"),
        lambda m: _date(None, _month_number(m[2]), m[1]),
    ),
    (
        re.compile(rf"(?<![\w])({_EN_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?(?![\d:])"),
        lambda m: _date(None, _month_number(m[1]), m[2]),
    ),
    (re.compile(r"(?<![\d-])(\d{1,2})\s*[월月]\s*(\d{1,2})\s*[일日号號]"), lambda m: _date(None, int(m[1]), m[2])),
]

# -- units and currencies (after a number) --------------------------------------------------------
_CYR = "[\u0400-\u04ff]*"  # a Cyrillic case ending ("минутын", "градусаас")
_UNITS: list[tuple[str, str]] = [
    (
        "°c",
        r"°\s*c(?:elsius)?|º\s*c|degrees?\s+(?:celsius|centigrade|c)|deg\.?\s*c|stupnjeva(?:\s+celzijusa)?"
        rf"|градус{_CYR}|도|度",
    ),
    ("km/h", r"km\s*/\s*h|kph|kmh|kilomet(?:er|re)s?\s+(?:per|an|an\s+)\s*hour"),
    ("m/s", r"m\s*/\s*s|mps|met(?:er|re)s?\s+(?:per|a)\s+second"),
    ("%", rf"%|percent|per\s+cent|pct|posto|퍼센트|パーセント|个百分点|хувь{_CYR}"),
    ("kwh", r"kwh|kilowatt[\s-]*hours?|квт\.?\s*ц"),
    ("wh", r"wh|watt[\s-]*hours?"),
    ("mah", r"mah|milliamp(?:ere)?[\s-]*hours?"),
    ("kw", r"kw|kilowatts?|квт"),
    ("dbm", r"dbm"),
    ("mv", r"mv|millivolts?"),
    ("mω", r"mω|mohm|milliohms?"),
    ("n·m", r"n\s*[·.]?\s*m|newton[\s-]*met(?:er|re)s?"),
    ("kg", rf"kg|kgs|kilo(?:gram(?:me)?s?)?|킬로그램|킬로|キログラム|キロ|公斤|千克|кг|килограмм{_CYR}"),
    ("km", rf"km|kilomet(?:er|re)s?|킬로미터|キロメートル|公里|千米|км|километр{_CYR}"),
    ("cm", r"cm|centimet(?:er|re)s?|센티미터|センチ(?:メートル)?|厘米|см"),
    ("mm", r"mm|millimet(?:er|re)s?|밀리미터|ミリ(?:メートル)?|毫米|мм"),
    ("m", rf"m|met(?:er|re)s?|metara|미터|メートル|米|метр{_CYR}"),
    ("g", r"g|grams?|grammes?|그램|グラム|克"),
    ("l", rf"l|lit(?:er|re)s?|리터|リットル|升|литр{_CYR}"),
    ("min", rf"min|mins|minutes?|minut[aeiu]?|분|分钟|分鐘|分間|分|минут{_CYR}"),
    ("h", rf"h|hrs?|hours?|sati|sata|sat|시간|時間|小时|小時|цаг{_CYR}"),
    ("s", rf"s|secs?|seconds?|sekundi|초|秒|секунд{_CYR}"),
    ("d", rf"d|days?|dana|dan|일|日|天|өдөр{_CYR}|хоног{_CYR}"),
    ("wk", rf"wks?|weeks?|tjedna|tjedan|주|週間|周|долоо\s+хоног{_CYR}"),
    ("mo", r"mos?|months?|mjeseci|mjeseca|개월|か月|ヶ月|カ月|ケ月|个月|個月"),
    ("y", rf"yrs?|years?|godina|godine|년|年|жил{_CYR}"),
    ("v", r"v|volts?"),
    ("w", r"w|watts?"),
    ("eur", r"eur|euros?|€"),
    ("usd", rf"usd|us\s*dollars?|dollars?|\$|ам\.?\s*доллар{_CYR}|доллар{_CYR}"),
    ("krw", r"krw|won|원|₩"),
    ("jpy", r"jpy|yen|円"),
    ("cny", r"cny|rmb|yuan|元"),
    ("mnt", rf"mnt|tugriks?|tögrögs?|төгрөг{_CYR}|₮"),
]
# A unit must not run on into Latin or Cyrillic letters ("5 min" is a unit, "5 minor" is not); Korean
# and Japanese particles may follow directly, and the Cyrillic units take their case endings along.
# "14-day" is "14d" too.
_UNIT_RE = re.compile(
    r"(?<![0-9a-z.\u0400-\u04ff])(-?\d+(?:\.\d+)?)(?:\s*-\s*(?=[a-z])|\s*)(?:"
    + "|".join(f"(?P<u{i}>{pattern})" for i, (_, pattern) in enumerate(_UNITS))
    + r")(?![a-z\u0400-\u04ff/])"
)
_CURRENCY_BEFORE = re.compile(r"(€|\$|₩|₮|eur|usd|krw|mnt|jpy|cny|rmb)\s?(\d+(?:\.\d+)?)(?![\d])")
_CURRENCY_CODES = {"€": "eur", "$": "usd", "₩": "krw", "₮": "mnt", "rmb": "cny"}
_BELOW_ZERO = re.compile(r"(?:영하|零下|マイナス)\s*(?=\d)")
_TEMPERATURE_WORD = re.compile(r"(?:섭씨|摄氏|攝氏|セ氏|セッシ)\s*(?=[-\d])")
_PLUS = re.compile(r"(?<![\w+])\+(?=\d)")
_CANONICAL_UNITS = "|".join(re.escape(c) for c, _ in sorted(_UNITS, key=lambda u: -len(u[0])))
# "82-85%", "15 to 25°c", "2~6°c": the unit of the second number belongs to the first too.
_RANGE = re.compile(
    rf"(?<![\d.])(-?\d+(?:\.\d+)?)(\s*(?:-|~|to|do|до)\s*)(-?\d+(?:\.\d+)?)({_CANONICAL_UNITS})(?![a-z])"
)


def _unit(match: re.Match[str]) -> str:
    for i, (canonical, _) in enumerate(_UNITS):
        if match.group(f"u{i}") is not None:
            return match.group(1) + canonical
    return match.group(0)


def normalize(text: str) -> str:
    """The comparable form of `text` (see the module docstring); idempotent."""
    text = unicodedata.normalize("NFKC", str(text)).translate(_DASHES).translate(_QUOTES).casefold()
    text = "".join(_fold_char(ch) for ch in text.translate(_EXTRA_FOLD))
    text = re.sub(r"\s+", " ", text).strip()
    text = _COMPOUND_WORD.sub(lambda m: str(_NUMBER_WORDS[m[1]] + _NUMBER_WORDS[m[2]]), text)
    text = _NUMBER_WORD.sub(lambda m: str(_NUMBER_WORDS[m[1]]), text)
    # a space before the digits, so "40分钟一台" does not become "40min1台"
    text = _ZH_NUMBER.sub(
        lambda m: (" " if m.start() and m.string[m.start() - 1] != " " else "") + _zh_number(m[1]), text
    )
    text = _THOUSANDS.sub(lambda m: m[1] + re.sub(r"[,' ]", "", m[2]), text)
    text = _DECIMAL_COMMA.sub(r"\1.\2", text)
    text = _TRAILING_ZEROS.sub(lambda m: m[1] + (f".{m[2]}" if m[2] else ""), text)
    text = _CJK_CLOCK.sub(_cjk_clock, text)
    text = _CLOCK.sub(r"\1", text)
    for pattern, replace in _DATE_RULES:
        text = pattern.sub(replace, text)  # type: ignore[arg-type]
    text = _MILLIONS.sub(_millions, text)
    text = _BELOW_ZERO.sub("-", text)
    text = _TEMPERATURE_WORD.sub("", text)
    text = _PLUS.sub("", text)
    text = _CURRENCY_BEFORE.sub(lambda m: m[2] + _CURRENCY_CODES.get(m[1], m[1]), text)
    text = _UNIT_RE.sub(_unit, text)
    text = _RANGE.sub(lambda m: f"{m[1]}{m[4]} - {m[3]}{m[4]}", text)
    return text


# -- matching ----------------------------------------------------------------------------------
def _is_word(ch: str) -> bool:
    return ch.isalnum() and not is_cjk(ch)


def contains(haystack: str, needle: str) -> bool:
    """Whether normalized `needle` occurs in normalized `haystack` at word boundaries.

    Both are already normalized. An edge of the needle that is a letter or digit must not touch
    another letter or digit of the same kind: "12" is not in "120", "spu" not in "spur", "t6" not
    in "t60"; a number is not found inside a decimal ("12" in "1.12" or "12.5"), a code ("t12",
    "cp-12") or a negative number ("-12"), but is as the end of a range ("10-12"). A number may be
    followed by a letter ("12" is in "12kg"); Korean, Japanese and Chinese characters need no boundary.
    """
    if not needle:
        return False
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        before = haystack[start - 1] if start else ""
        after = haystack[end] if end < len(haystack) else ""
        ok = True
        first, last = needle[0], needle[-1]
        if first.isdigit():
            two_before = haystack[start - 2] if start >= 2 else ""
            ok &= not before.isdigit() and not (before in ".," and two_before.isdigit())
            ok &= not _is_word(before)  # "12" is not in the code "t12"
            ok &= not (before == "-" and not two_before.isdigit())  # nor in "cp-12" or "-12"; "10-12" is a range
        elif _is_word(first):
            ok &= not _is_word(before)
        if last.isdigit():
            ok &= not after.isdigit()
            ok &= not (after in ".," and end + 1 < len(haystack) and haystack[end + 1].isdigit())
        elif _is_word(last):
            ok &= not (after.isalpha() and not is_cjk(after))
            ok &= not (last.isalpha() and after.isdigit())
        if ok:
            return True
        start = haystack.find(needle, start + 1)
    return False


def alternatives(key: Key) -> list[str]:
    """The alternative spellings of one key (a lone string is a list of one)."""
    if isinstance(key, str):
        return [key]
    return [str(k) for k in key]


def key_found(text_normalized: str, key: Key) -> bool:
    return any(contains(text_normalized, normalize(alt)) for alt in alternatives(key))


def keys_found(text: str, keys: Iterable[Key]) -> list[bool]:
    """For each key, whether `text` contains it."""
    normalized = normalize(text)
    return [key_found(normalized, key) for key in keys]


def describe(key: Key) -> str:
    """A key as a person reads it: 'a' or 'a | b'."""
    return " | ".join(alternatives(key))
