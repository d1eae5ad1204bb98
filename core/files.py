"""Durable writes: a file is replaced only by a complete new copy, never rewritten in place.

`atomic_write_bytes` writes `<name>.tmp-<pid>-<n>` beside the target, fsyncs it, renames it over
the target and fsyncs the folder, so a crash at any moment leaves either the old file or the new
one, both whole. `append_line` adds one record to a log whose last line may have been cut by a
crash (`read_lines` drops such a tail, and the next append starts on a fresh line).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

_counter = itertools.count()


def fsync_dir(folder: str | os.PathLike) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Replace `path` with `data` atomically and durably; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_counter)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def append_line(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON record as a line and fsync it. A tail cut off by an earlier crash is removed first."""
    path = Path(path)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "ab+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":  # a crash cut the last record: drop it
                f.seek(0)
                keep = f.read().rfind(b"\n") + 1
                f.truncate(keep)
                f.seek(keep)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_lines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete JSON records of a log written by `append_line` (a cut or garbled line is skipped)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    complete = raw[: raw.rfind(b"\n") + 1]
    for line in complete.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records
