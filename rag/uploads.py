"""Originals of uploaded documents, kept so the index can be rebuilt (`reindex`) from them.

    <data_dir>/uploads/<doc_id>/<file name>        (core.layout.DataLayout.document_uploads)

`doc_id` is derived from the file's SHA-256, so a stored original never changes; it is written
with `core.files.atomic_write_bytes` (temporary name, fsync, rename, fsync the folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import unicodedata
from pathlib import Path, PurePath

from core.files import atomic_write_bytes

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def safe_name(name: str) -> str:
    """The file's base name, without path parts or characters that are unsafe in file names."""
    base = PurePath(name.replace("\\", "/")).name
    base = _UNSAFE.sub("_", unicodedata.normalize("NFC", base)).strip(" .") or "document"
    while len(base.encode("utf-8")) > 200:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[:-1] + dot + suffix) if dot and stem else base[:-1]
    return base


class UploadStore:
    def __init__(self, folder: Path):
        self.root = Path(folder)

    def path(self, doc_id: str, name: str) -> Path:
        return self.root / doc_id / safe_name(name)

    def save(self, doc_id: str, name: str, data: bytes) -> str:
        """Store an original (idempotent: same doc_id means the same bytes); returns where it is kept, relative to
        the data directory (the manifest's `upload`)."""
        final = self.path(doc_id, name)
        if not (final.is_file() and final.stat().st_size == len(data)):
            atomic_write_bytes(final, data)
        return final.relative_to(self.root.parent).as_posix()

    def read(self, doc_id: str, name: str) -> bytes:
        """Raises FileNotFoundError when the original is gone."""
        return self.path(doc_id, name).read_bytes()

    def prune(self, keep_doc_ids: set[str]) -> None:
        """Delete originals of documents no kept snapshot names."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name not in keep_doc_ids:
                shutil.rmtree(folder, ignore_errors=True)

    def disk_bytes(self) -> int:
        return folder_bytes(self.root)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 when it is missing; a file deleted meanwhile counts 0)."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_size
    return total
