"""Training data formats: read a JSONL file and turn every record into a chat conversation.

Four formats, one record per line:

- `messages`: `{"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}` (OpenAI chat)
- `sharegpt`: `{"conversations": [{"from": "system|human|gpt", "value": "..."}, ...]}`
- `alpaca`: `{"instruction": "...", "input": "...", "output": "..."}` (`input` and `system` optional)
- `prompt_response`: `{"prompt": "...", "response": "..."}` (`system` optional)

Every conversation comes out as a list of `{"role", "content"}` dicts that ends with an
assistant turn. Any bad line raises `DataFormatError` naming `file:line` and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Message = dict[str, str]
Conversation = list[Message]

FORMAT_KEYS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_response": ("prompt", "response"),
}
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
}
CHAT_ROLES = ("system", "user", "assistant")


class DataFormatError(ValueError):
    """A training record cannot be used; the message starts with `file:line`."""


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    format: str
    conversations: list[Conversation]
    lines: list[int]
    """The file line each conversation came from, for error messages further down."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_format(record: Any) -> str | None:
    """The format whose keys the record has, or None when it matches none of them."""
    if not isinstance(record, dict):
        return None
    for name, keys in FORMAT_KEYS.items():
        if all(key in record for key in keys):
            return name
    return None


def read_dataset(path: Path, data_format: str = "auto", system_prompt: str | None = None) -> Dataset:
    """Read a JSONL file into conversations.

    With `data_format='auto'` the first record decides the format and every later record must
    match it. Blank lines are skipped. Raises DataFormatError (`file:line: reason`) on the first
    line that is not JSON, not an object, or not a valid record of the format; raises it
    naming the file when the file is missing or holds no records.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: the training data file does not exist.") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    chosen = None if data_format == "auto" else data_format
    if chosen is not None and chosen not in FORMAT_KEYS:
        raise DataFormatError(f"{path}: unknown data format {data_format!r}; use one of {', '.join(FORMAT_KEYS)}.")
    conversations: list[Conversation] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: a record must be a JSON object, not {type(record).__name__}.")
        if chosen is None:
            chosen = detect_format(record)
            if chosen is None:
                raise DataFormatError(
                    f"{where}: cannot tell the data format from the keys {sorted(record)}; expected "
                    "messages, conversations, instruction/output or prompt/response."
                )
        try:
            conversation = PARSERS[chosen](record)
        except DataFormatError as exc:
            raise DataFormatError(f"{where}: {exc} ({chosen} format).") from None
        if system_prompt and conversation[0]["role"] != "system":
            conversation.insert(0, {"role": "system", "content": system_prompt})
        conversations.append(conversation)
        lines.append(number)
    if not conversations:
        raise DataFormatError(f"{path}: the file holds no records.")
    return Dataset(path, file_sha256(path), chosen or data_format, conversations, lines)


def _text(record: dict[str, Any], key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(f"{key!r} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise DataFormatError(f"{key!r} is empty")
    return value


def _check_turns(conversation: Conversation) -> Conversation:
    if not any(m["role"] == "assistant" for m in conversation):
        raise DataFormatError("the conversation has no assistant turn to learn from")
    if not any(m["role"] == "user" for m in conversation):
        raise DataFormatError("the conversation has no user turn")
    # Turns after the last assistant answer would only be masked out: drop them.
    last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    return conversation[: last + 1]


def parse_messages(record: dict[str, Any]) -> Conversation:
    turns = record.get("messages")
    if not isinstance(turns, list) or not turns:
        raise DataFormatError("'messages' must be a non-empty list")
    conversation = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataFormatError(f"messages[{i}] must be an object")
        role = turn.get("role")
        if role not in CHAT_ROLES:
            raise DataFormatError(f"messages[{i}] has role {role!r}; expected one of {', '.join(CHAT_ROLES)}")
        try:
            content = _text(turn, "content")
        except DataFormatError as exc:
            raise DataFormatError(f"messages[{i}]: {exc}") from None
        conversation.append({"role": role, "content": content})
    return _check_turns(conversation)


def parse_sharegpt(record: dict[str, Any]) -> Conversation:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataFormatError("'conversations' must be a non-empty list")
    conversation = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataFormatError(f"conversations[{i}] must be an object")
        speaker = turn.get("from")
        if speaker not in SHAREGPT_ROLES:
            raise DataFormatError(
                f"conversations[{i}] is from {speaker!r}; expected one of {', '.join(SHAREGPT_ROLES)}"
            )
        try:
            content = _text(turn, "value")
        except DataFormatError as exc:
            raise DataFormatError(f"conversations[{i}]: {exc}") from None
        conversation.append({"role": SHAREGPT_ROLES[speaker], "content": content})
    return _check_turns(conversation)


def _with_system(record: dict[str, Any], user: str, assistant: str) -> Conversation:
    system = _text(record, "system", required=False)
    head = [{"role": "system", "content": system}] if system.strip() else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def parse_alpaca(record: dict[str, Any]) -> Conversation:
    instruction = _text(record, "instruction")
    extra = _text(record, "input", required=False)
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return _with_system(record, user, _text(record, "output"))


def parse_prompt_response(record: dict[str, Any]) -> Conversation:
    return _with_system(record, _text(record, "prompt"), _text(record, "response"))


PARSERS: dict[str, Callable[[dict[str, Any]], Conversation]] = {
    "messages": parse_messages,
    "sharegpt": parse_sharegpt,
    "alpaca": parse_alpaca,
    "prompt_response": parse_prompt_response,
}
