"""Durable writes: a file is replaced only by a complete new copy, never rewritten in place.

`atomic_write_bytes` writes `<name>.tmp-<pid>-<n>` beside the target, fsyncs it, renames it over
the target and fsyncs the folder, so a crash at any moment leaves either the old file or the new
one, both whole. `append_line` adds one record to a log whose last line may have been cut by a
crash (`read_lines` drops such a tail, and the next append starts on a fresh line).

Folders: `publish_dir` renames a fully written `<name>.tmp` folder into place (fsyncing its files
first), and `replace_dir` swaps a new folder for an existing one in a single atomic exchange
(Linux `renameat2(RENAME_EXCHANGE)`), so a reader never sees the folder missing. Every writer of the
app (index, uploads, adapters, training output, checkpoints, caches, cards, scorecards) goes
through these functions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import json
import os
import shutil
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
    except BaseException:  # protects the folder: no temporary file is left behind, whatever stopped the write
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


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under `folder` (and `folder` itself)."""
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def publish_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Make a fully written folder `tmp` durable and rename it to `final`, which must not exist."""
    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return final


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the fully written folder `new` in place of `final` (which may or may not exist).

    With an existing `final`, both are exchanged in one atomic step, so a reader sees the old folder
    or the new one and never neither; the old one is then deleted. Where the file system cannot
    exchange, the old folder is renamed aside first (a short moment with no folder). Durable:
    everything is fsynced before the switch.
    """
    new, final = Path(new), Path(final)
    fsync_tree(new)
    if not final.exists():
        os.rename(new, final)
        fsync_dir(final.parent)
        return final
    if _exchange(new, final):
        fsync_dir(final.parent)
        shutil.rmtree(new, ignore_errors=True)  # `new` now names the old folder
        return final
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{next(_counter)}")
    os.rename(final, old)
    os.rename(new, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    return final
