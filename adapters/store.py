"""Where adapters live on disk, and the only code that writes there.

    <repo>/adapters/demo/<name>/                 shipped demo adapters (read only)
    <data_dir>/adapters/trained/<name>/          written by the training script (--adapter-dir)
    <data_dir>/adapters/uploads/<owner>/<name>/  uploaded by one person (core.identity)
    <data_dir>/adapters/published/<name>/        uploads the operator made public

An adapter's key is its path under those roots (`demo/x`, `trained/x`, `uploads/<owner>/x`,
`published/x`). `<owner>` is `core.identity.owner_id` of the uploader (a signed-in user, or a
browser session), a digest, so no user name or session id is written to disk or shown to anyone;
a signed-in person's uploads are theirs again after a reload or a restart. Every write is a new
folder renamed into place (and every delete a rename out of place), so a crash never leaves a
half-written adapter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import AdapterRejected
from core.files import fsync_dir, publish_dir
from core.identity import owner_id
from core.layout import DataLayout
from core.locks import process_lock

log = logging.getLogger(__name__)

DEMO, TRAINED, UPLOADED, PUBLISHED = "demo", "trained", "uploaded", "published"
DEMO_DIR = Path(__file__).resolve().parent / "demo"
"""The shipped demo adapters (read only)."""
SOURCES = (UPLOADED, TRAINED, PUBLISHED, DEMO)
"""Every source, in the order a bare name is resolved when several share it."""
_FOLDERS = {TRAINED: "trained", UPLOADED: "uploads", PUBLISHED: "published"}
MAX_NAME_CHARS = 64
MAX_UPLOADS_PER_OWNER = 20


def sanitize_name(raw: str) -> str:
    """A safe adapter name from what a user typed: letters, digits, '-', '_' and '.' only.

    Other characters become '-', dots and dashes are trimmed from the ends, and the result is
    cut to 64 characters. Raises AdapterRejected when nothing usable is left.
    """
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    out = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    out = out.strip(".-_ ")[:MAX_NAME_CHARS].rstrip(".-_")
    if not out:
        raise AdapterRejected(f"The adapter name {str(raw)[:40]!r} has no usable characters; use letters and digits.")
    return out


def is_plain_name(text: str) -> bool:
    """Whether `text` is already a sanitized name (so it is safe as one path part)."""
    try:
        return sanitize_name(text) == text
    except AdapterRejected:
        return False


@dataclass(frozen=True)
class StoreEntry:
    """One adapter folder in the store (not yet validated)."""

    key: str
    name: str
    source: str
    owner: str | None
    path: Path


class AdapterStore:
    """The adapter folders on disk: listing, and atomic upload / publish / delete."""

    def __init__(self, data_dir: Path, demo_dir: Path | None = None):
        self.root = DataLayout(data_dir).adapters
        self.demo_dir = Path(demo_dir) if demo_dir is not None else None
        self._write_lock = threading.Lock()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: in this process, and across the replicas that share the store's folder
        (`shared_dir`), so a person's adapter quota and a name's uniqueness hold between them too."""
        with self._write_lock, process_lock(self.root / ".lock"):
            yield

    def folder(self, source: str) -> Path:
        if source == DEMO:
            if self.demo_dir is None:
                raise AdapterRejected("This app ships no demo adapters.")
            return self.demo_dir
        return self.root / _FOLDERS[source]

    def entries(self) -> list[StoreEntry]:
        """Every adapter folder there is now (a fresh directory listing; cheap)."""
        found: list[StoreEntry] = []
        for source in (DEMO, TRAINED, PUBLISHED):
            if source == DEMO and self.demo_dir is None:
                continue
            for name, path in _subfolders(self.folder(source)):
                found.append(StoreEntry(f"{source}/{name}", name, source, None, path))
        for owner, owner_path in _subfolders(self.root / _FOLDERS[UPLOADED]):
            for name, path in _subfolders(owner_path):
                found.append(StoreEntry(f"uploads/{owner}/{name}", name, UPLOADED, owner, path))
        return found

    def entry(self, key: str) -> StoreEntry | None:
        """The folder a key names, or None when the key is malformed or no such folder exists."""
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) == 2 and parts[0] in (DEMO, TRAINED, PUBLISHED) and _safe_part(parts[1]):
            if parts[0] == DEMO and self.demo_dir is None:
                return None
            entry = StoreEntry(key, parts[1], parts[0], None, self.folder(parts[0]) / parts[1])
        elif len(parts) == 3 and parts[0] == "uploads" and _safe_part(parts[1]) and _safe_part(parts[2]):
            entry = StoreEntry(key, parts[2], UPLOADED, parts[1], self.folder(UPLOADED) / parts[1] / parts[2])
        else:
            return None
        return entry if entry.path.is_dir() else None

    def uploads_of(self, owner: str) -> list[str]:
        folder = self.folder(UPLOADED) / owner_id(owner)
        return [name for name, _ in _subfolders(folder)]

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """An empty private folder on the store's filesystem; removed afterwards unless committed."""
        parent = self.root / ".staging"
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=parent))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def commit_upload(
        self, staging: Path, owner: str, name: str, numbered: bool = False, limit: int = MAX_UPLOADS_PER_OWNER
    ) -> StoreEntry:
        """Move a checked staging folder into `owner`'s uploads as `name` (atomically).

        Raises AdapterRejected when the owner already has an adapter of that name (a name the person
        chose is never silently changed or replaced) or has `limit` uploads; the staging folder
        is then left for its context to remove. `numbered`: the name was made up by the app (the upload
        had none), so a taken one becomes `name-2`, `name-3`, ...
        """
        tag = owner_id(owner)
        target = self.folder(UPLOADED) / tag / name
        with self._writing():
            if target.exists() and numbered:
                for i in range(2, limit + 2):
                    if not (target.parent / f"{name}-{i}").exists():
                        name, target = f"{name}-{i}", target.parent / f"{name}-{i}"
                        break
            if target.exists():
                raise AdapterRejected(f"You already have an adapter named {name!r}; delete it or choose another name.")
            if len(self.uploads_of(owner)) >= limit:
                raise AdapterRejected(
                    f"You have {limit} uploaded adapters, the most one person may keep; delete one first."
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            publish_dir(staging, target)
        return StoreEntry(f"uploads/{tag}/{name}", name, UPLOADED, tag, target)

    def publish(self, entry: StoreEntry) -> StoreEntry:
        """Move an upload to `published/` under the same name (atomically); refuse a taken name."""
        if entry.source != UPLOADED:
            raise AdapterRejected(f"Only uploaded adapters can be published; {entry.key!r} is {entry.source}.")
        target = self.folder(PUBLISHED) / entry.name
        with self._writing():
            if target.exists():
                raise AdapterRejected(f"A published adapter named {entry.name!r} already exists; rename one first.")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(entry.path, target)
            fsync_dir(target.parent)
        return StoreEntry(f"{PUBLISHED}/{entry.name}", entry.name, PUBLISHED, None, target)

    # -- abandoned uploads ----------------------------------------------------------------------------
    def _mark(self, entry: StoreEntry) -> Path:
        return self.root / ".last_used" / str(entry.owner) / entry.name

    def touch(self, entry: StoreEntry) -> None:
        """Record that an upload was just used (beside the store, so its folder's signature stays put)."""
        if entry.source != UPLOADED:
            return
        mark = self._mark(entry)
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
        except OSError:
            log.warning("could not record the use of %s", entry.key)

    def abandoned_uploads(self, max_age_s: Callable[[str], float], now: float) -> list[StoreEntry]:
        """Uploads neither made nor used in the last `max_age_s(owner tag)` seconds (0: kept forever)."""
        found = []
        for owner, owner_dir in _subfolders(self.folder(UPLOADED)):
            ttl = max_age_s(owner)
            if ttl <= 0:
                continue
            for name, path in _subfolders(owner_dir):
                entry = StoreEntry(f"uploads/{owner}/{name}", name, UPLOADED, owner, path)
                last = path.stat().st_mtime
                try:
                    last = max(last, self._mark(entry).stat().st_mtime)
                except OSError:
                    pass
                if now - last > ttl:
                    found.append(entry)
        return found

    def delete(self, entry: StoreEntry) -> None:
        """Remove an uploaded or published adapter folder: renamed away first, so it vanishes at once."""
        if entry.source not in (UPLOADED, PUBLISHED):
            raise AdapterRejected(f"Only uploaded or published adapters can be deleted here, not {entry.source} ones.")
        trash = self.root / ".trash"
        trash.mkdir(parents=True, exist_ok=True)
        with self._writing():
            gone = Path(tempfile.mkdtemp(dir=trash)) / entry.name
            os.rename(entry.path, gone)
        shutil.rmtree(gone.parent, ignore_errors=True)
        if entry.source == UPLOADED:
            self._mark(entry).unlink(missing_ok=True)


def _safe_part(text: str) -> bool:
    return is_plain_name(text) and text not in (".", "..")


def _subfolders(folder: Path) -> list[tuple[str, Path]]:
    """(name, path) of the visible sub-folders; hidden ones (staging, '.x.tmp-123') are skipped."""
    try:
        with os.scandir(folder) as it:
            items = [(e.name, Path(e.path)) for e in it if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []
    return sorted(items)
