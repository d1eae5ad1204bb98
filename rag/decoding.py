"""Turn the bytes of an uploaded text file into a `str`, or refuse with one clear sentence.

Order: byte-order marks (UTF-8/16/32), known binary signatures and NUL bytes (refused, or UTF-16
without a BOM), strict UTF-8, then a guess among legacy encodings (EUC-KR/cp949, Shift-JIS/cp932,
EUC-JP, GB18030, cp1250, cp1251, cp1252, ...) ranked by `charset_normalizer`. A guess is accepted
only if it decodes strictly, without control codes or private-use characters, and reads as that
encoding's script: mostly Hangul with spaces for Korean, some kana for Japanese, Han without spaces
between characters for Chinese; cp1252 and cp1250 are told apart by the Nordic letters and
symbols (ć -> æ, đ -> ð) that Central European text turns into when read as cp1252. Anything else is
refused with a sentence asking for UTF-8, rather than indexed as mojibake.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from rag.errors import IngestError

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel file)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x1f\x8b", "a gzip archive"),
)
_SAMPLE = 64 * 1024
_MIN_EVIDENCE = 6  # non-ASCII bytes needed before a legacy encoding is guessed
# UTF-16/32 without a BOM are only accepted from their NUL pattern (below); guessing them from
# text bytes turns short Latin-1 files into CJK-looking nonsense.
_NOT_GUESSED = ["utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be", "utf_7"]
_SCRIPTS = (
    (0x00A0, 0x00BF, "symbol"),
    (0x00C0, 0x024F, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x1E00, 0x1EFF, "latin"),
    (0x2000, 0x2BFF, "symbol"),
    (0x1100, 0x11FF, "hangul"),
    (0x3130, 0x318F, "hangul"),
    (0xAC00, 0xD7AF, "hangul"),
    (0x3000, 0x303F, "cjk-symbol"),
    (0x3040, 0x30FF, "kana"),
    (0x31F0, 0x31FF, "kana"),
    (0x3200, 0x33FF, "cjk-symbol"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xF900, 0xFAFF, "han"),
    (0xFF00, 0xFFEF, "cjk-symbol"),
)
_WESTERN = {"cp1252", "cp1250", "latin_1", "iso8859_15", "iso8859_2", "cp1254", "mac_roman", "cp850"}
_CENTRAL_AS_WESTERN = re.compile("[æÆðÐþÞøØ¹³¾¼½Ÿ¥]")
_SPACED_HAN = re.compile(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])")
_CJK_COMMON = {"han", "cjk-symbol", "symbol"}
_KOREAN = {"cp949", "euc_kr", "johab", "iso2022_kr"}
_JAPANESE = {"cp932", "shift_jis", "euc_jp", "euc_jis_2004", "shift_jis_2004", "iso2022_jp"}
_EXPECTED = {
    **{name: _CJK_COMMON | {"hangul"} for name in _KOREAN},
    **{name: _CJK_COMMON | {"kana", "latin", "greek", "cyrillic"} for name in _JAPANESE},
    **{name: _CJK_COMMON | {"latin", "greek", "cyrillic"} for name in ("gb18030", "gbk", "gb2312", "big5")},
}
_MAX_MESS = 0.2  # charset_normalizer's "chaos" ratio above which a guess is not trusted
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_BAD_DECODED = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff]")


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """Return `(text, encoding)` for the bytes of a text file called `name`.

    The text is NFC-normalized with `\\n` line ends. Raises `IngestError` with one sentence when
    the file is empty, looks binary, or is not UTF-8 and no legacy encoding decodes it cleanly.
    """
    if not data.strip():
        raise IngestError(f"{name} is empty.")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _clean(data.decode(encoding), name), encoding.removesuffix("-sig")
            except UnicodeDecodeError:
                raise IngestError(
                    f"{name} starts with a {encoding} byte-order mark but is not valid {encoding}."
                ) from None
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise IngestError(f"{name} is {kind}, not a text file; upload it with its real extension.")
    sample = data[:_SAMPLE]
    if b"\x00" in sample:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return _clean(utf16[0], name), utf16[1]
        raise IngestError(f"{name} looks like a binary file, not text.")
    try:
        return _clean(data.decode("utf-8"), name), "utf-8"
    except UnicodeDecodeError:
        pass
    controls = sum(1 for byte in sample if byte < 0x20 and byte not in b"\t\n\r\f\x1b")
    if controls > 0.01 * len(sample):
        raise IngestError(f"{name} looks like a binary file, not text.")
    return _guess_legacy(data, name)


def _guess_legacy(data: bytes, name: str) -> tuple[str, str]:
    import charset_normalizer

    refusal = f"{name} is not UTF-8 and its encoding could not be recognised; save it as UTF-8 and upload it again."
    if sum(1 for byte in data[:_SAMPLE] if byte >= 0x80) < _MIN_EVIDENCE:
        accented = _accented_latin(data)
        if accented is not None:
            return _clean(accented, name), "cp1252"
        raise IngestError(
            f"{name} is not UTF-8 and has too little non-ASCII text to tell its encoding; save it as UTF-8."
        )
    for match in charset_normalizer.from_bytes(data, cp_exclusion=_NOT_GUESSED):
        if match.chaos > _MAX_MESS:
            break  # matches come best first
        encoding = codecs.lookup(match.encoding).name
        if encoding in _WESTERN:
            western = _western_or_central(data)
            if western is not None:
                return _clean(western[0], name), western[1]
            continue
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if not _BAD_DECODED.search(text) and _plausible(text, encoding):
            return _clean(text, name), encoding
    raise IngestError(refusal)


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _accented_latin(data: bytes) -> str | None:
    """A short Western European text ("Größe", "Prüfung") read as cp1252, when every run of non-ASCII bytes
    becomes accented Latin letters that touch an ASCII letter: too few bytes for a statistical guess, but
    a word of Cyrillic, Greek or CJK bytes never reads as accents inside ASCII words."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    for run in _NON_ASCII_RUN.finditer(text):
        if any(not ("\u00c0" <= ch <= "\u00ff") or ch in "\u00d7\u00f7" for ch in run.group()):
            return None
        before = text[run.start() - 1] if run.start() else ""
        after = text[run.end()] if run.end() < len(text) else ""
        if not (before.isascii() and before.isalpha()) and not (after.isascii() and after.isalpha()):
            return None
    return text


def _western_or_central(data: bytes) -> tuple[str, str] | None:
    """cp1252 (Western Europe) or cp1250 (Central Europe: Croatian, Polish, Czech). Most bytes of the
    two agree; where they differ, Central European letters read as cp1252 come out as letters of
    Nordic or symbols (ć -> æ, đ -> ð, ř -> ø, ą -> ¹), which Western text hardly ever has."""
    readings = {}
    for encoding in ("cp1252", "cp1250"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not _BAD_DECODED.search(text):
            readings[encoding] = text
    if "cp1252" in readings and ("cp1250" not in readings or not _CENTRAL_AS_WESTERN.search(readings["cp1252"])):
        return readings["cp1252"], "cp1252"
    if "cp1250" in readings:
        return readings["cp1250"], "cp1250"
    return None


def _script(ch: str) -> str:
    code = ord(ch)
    for low, high, script in _SCRIPTS:
        if low <= code <= high:
            return script
    return "other"


def _plausible(text: str, encoding: str) -> bool:
    """Most non-ASCII characters must be in the scripts the encoding is for: bytes of one CJK
    encoding read as another come out as real but unrelated characters of the wrong script."""
    counts: dict[str, int] = {}
    for ch in text:
        if ord(ch) >= 0x80:
            script = _script(ch)
            counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values()) or 1
    expected = _EXPECTED.get(codecs.lookup(encoding).name, {"latin", "cyrillic", "greek", "symbol"})
    if sum(n for script, n in counts.items() if script in expected) < 0.95 * total:
        return False
    if codecs.lookup(encoding).name in _JAPANESE:  # Japanese prose always has kana
        return counts.get("kana", 0) > 0.05 * total
    hangul, han = counts.get("hangul", 0), counts.get("han", 0)
    if codecs.lookup(encoding).name in _KOREAN:  # Korean puts spaces between words; Chinese read as Korean has none
        return hangul > 0.5 * total and text.count(" ") > 0.1 * hangul
    if han > 0.5 * total:  # Chinese has no spaces between characters; Korean read as Chinese keeps its spaces
        return len(_SPACED_HAN.findall(text)) < 0.05 * han
    return True


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 without a BOM shows as a NUL in every other byte of mostly-ASCII text."""
    even_nuls = data[0::2].count(0)
    odd_nuls = data[1::2].count(0)
    half = len(data) // 2 or 1
    for encoding, nuls in (("utf-16-le", odd_nuls), ("utf-16-be", even_nuls)):
        if nuls > 0.3 * half and len(data) % 2 == 0:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if not _BAD_DECODED.search(text):
                return text, encoding
    return None


def _clean(text: str, name: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").lstrip("\ufeff")
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    if not text.strip():
        raise IngestError(f"{name} is empty.")
    return text


def clean_extracted(text: str) -> str:
    """Tidy text extracted from PDF/DOCX/HTML: NFC, `\\n` line ends, no control codes or U+FFFD."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\ufffd", "")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))
