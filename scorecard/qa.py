"""A keyed QA set: one JSON object per line.

    {"id": "q001", "question": "...", "answer": "reference answer", "source": "company_overview.md",
     "language": "en", "answerable": true, "keys": ["14 March 2016", ["Seoul", "서울"]]}
    {"id": "n001", "question": "...", "answer": "The documents do not say.", "source": null,
     "language": "en", "answerable": false, "keys": []}

`keys` are the facts a correct answer must contain (see `scorecard.matching`); an item with
`answerable: false` (or with no source and no keys) has its answer in no document, and the right
answer declines. `source` and `language` are optional for a user's own set (language defaults to
"?" and retrieval figures then skip the item). Problems are reported with file and line, all at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserInputError
from scorecard.matching import Key, alternatives, normalize

MAX_QA_BYTES = 4 * 2**20
MAX_ITEMS = 5000


class QAFileError(UserInputError):
    """The QA file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answer: str
    source: str | None
    language: str
    answerable: bool
    keys: tuple[Key, ...]


@dataclass(frozen=True)
class QASet:
    path: Path
    sha256: str
    items: tuple[QAItem, ...]
    total: int = 0  # questions in the file; more than len(items) when a limit took the first few

    @property
    def limited(self) -> bool:
        return self.total > len(self.items)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def languages(self) -> list[str]:
        return sorted({i.language for i in self.items}, key=lambda lang: (lang != "en", lang))


def load_qa(path: str | Path, limit: int | None = None) -> QASet:
    """Read and check a QA file. Raises QAFileError naming every bad line (up to ten)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_QA_BYTES:
            raise QAFileError(f"{path.name} is {size / 2**20:.1f} MiB; a QA file may be at most 4 MiB.")
        raw = path.read_bytes()
    except OSError as exc:
        raise QAFileError(f"{path.name} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QAFileError(f"{path.name} is not UTF-8 text; save it as UTF-8 JSON Lines.") from None
    items: list[QAItem] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = _item(json.loads(line), number)
        except (ValueError, TypeError) as exc:
            problems.append(
                f"line {number}: {exc}"
                if not isinstance(exc, json.JSONDecodeError)
                else f"line {number}: not valid JSON ({exc.msg})"
            )
            continue
        if item.id in seen:
            problems.append(f"line {number}: the id {item.id!r} is used twice")
            continue
        seen.add(item.id)
        items.append(item)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise QAFileError(f"{path.name} has problems: " + "; ".join(problems[:10]) + more + ".")
    if not items:
        raise QAFileError(f"{path.name} holds no questions; write one JSON object per line with a 'question'.")
    if len(items) > MAX_ITEMS:
        raise QAFileError(f"{path.name} has {len(items):,} questions; the limit is {MAX_ITEMS:,}.")
    total = len(items)
    if limit:
        items = items[:limit]
    return QASet(path, hashlib.sha256(raw).hexdigest(), tuple(items), total)


def _item(value: object, number: int) -> QAItem:
    if not isinstance(value, dict):
        raise ValueError("each line must be a JSON object")
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be non-empty text")
    keys = value.get("keys", [])
    if not isinstance(keys, list) or not all(_valid_key(k) for k in keys):
        raise ValueError("'keys' must be a list of strings or of lists of strings")
    source = value.get("source")
    if source is not None and not isinstance(source, str):
        raise ValueError("'source' must be a file name or null")
    answerable = value.get("answerable")
    if answerable is None:
        answerable = bool(keys) or bool(source)
    if not isinstance(answerable, bool):
        raise ValueError("'answerable' must be true or false")
    if answerable and not keys:
        raise ValueError("an answerable question needs at least one key fact in 'keys'")
    item_id = value.get("id", f"line{number}")
    return QAItem(
        id=str(item_id),
        question=question.strip(),
        answer=str(value.get("answer", "")),
        source=source or None,
        language=str(value.get("language") or "?"),
        answerable=answerable,
        keys=tuple(k if isinstance(k, str) else tuple(k) for k in keys),
    )


def _valid_key(key: object) -> bool:
    if isinstance(key, str):
        return bool(normalize(key))
    return (
        isinstance(key, Sequence) and bool(key) and all(isinstance(k, str) and normalize(k) for k in alternatives(key))  # type: ignore[arg-type]
    )
