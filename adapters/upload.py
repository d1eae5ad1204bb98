"""Turn an upload (the adapter's files, or one .zip holding them) into a plain staging folder.

Only the two adapter files (plus an optional adapter_card.json / README.md) are accepted; a
pickle-based file is refused by name and never opened. A zip is inspected before anything is
extracted: its end-of-central-directory record first (entry count, directory size, no ZIP64),
then every entry (no absolute paths, no `..`, no links or special files, no duplicates, no
encryption, at most one top-level folder, capped sizes). Entry names are never used as paths:
each accepted file is written to `staging/<its known name>` with a byte counter, so a lying
size or a zip-slip name cannot write anywhere else. Refusals are `AdapterRejected`, one sentence.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from adapters.errors import AdapterRejected
from adapters.validate import (
    ADAPTER_FILES,
    CONFIG_FILE,
    OPTIONAL_FILES,
    SMALL_FILE_LIMITS,
    WEIGHTS_FILE,
    pickle_refusal,
)

ALLOWED_FILES = ADAPTER_FILES + OPTIONAL_FILES
MAX_ZIP_ENTRIES = 8
MAX_CENTRAL_DIRECTORY = 64 * 1024
ZIP_OVERHEAD = 1024 * 1024
CHUNK = 1024 * 1024
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def stage_upload(files: Sequence[str | os.PathLike], staging: Path, max_bytes: int) -> str | None:
    """Copy an uploaded adapter into the empty folder `staging`; return a name it suggests (or None).

    `files` are local paths (Gradio's temporary copies keep the original file names): either
    the adapter files themselves or a single `.zip`. Raises AdapterRejected, one sentence, for
    anything not accepted; `staging` may then hold partial files and is the caller's to remove.
    """
    paths = [Path(os.fspath(f)) for f in files]
    if not paths:
        raise AdapterRejected(f"Choose {CONFIG_FILE} and {WEIGHTS_FILE}, or one .zip holding them.")
    if len(paths) > len(ALLOWED_FILES):
        raise AdapterRejected(f"{len(paths)} files were uploaded; an adapter is {CONFIG_FILE} and {WEIGHTS_FILE}.")
    zips = [p for p in paths if p.name.lower().endswith(".zip")]
    if zips and len(paths) > 1:
        raise AdapterRejected("Upload one .zip on its own, or the adapter files without a zip.")
    if zips:
        return _stage_zip(paths[0], staging, max_bytes)
    _stage_files(paths, staging, max_bytes)
    return None


def _limit(name: str, max_bytes: int) -> int:
    return max_bytes if name == WEIGHTS_FILE else SMALL_FILE_LIMITS[name]


def _check_name(name: str) -> None:
    refusal = pickle_refusal(name)
    if refusal:
        raise AdapterRejected(refusal)
    if name not in ALLOWED_FILES:
        raise AdapterRejected(
            f"{name[:80]!r} is not part of an adapter; upload only {CONFIG_FILE} and {WEIGHTS_FILE} "
            f"(an {OPTIONAL_FILES[0]} or {OPTIONAL_FILES[1]} may come with them)."
        )


def _require_both(names: set[str]) -> None:
    for required in ADAPTER_FILES:
        if required not in names:
            raise AdapterRejected(f"The upload has no {required}; an adapter needs {CONFIG_FILE} and {WEIGHTS_FILE}.")


def _stage_files(paths: list[Path], staging: Path, max_bytes: int) -> None:
    names: set[str] = set()
    for path in paths:
        _check_name(path.name)
        if path.name in names:
            raise AdapterRejected(f"{path.name} was uploaded twice.")
        names.add(path.name)
    _require_both(names)
    for path in paths:
        limit = _limit(path.name, max_bytes)
        _too_big(path.name, _regular_file_size(path), limit)
        with path.open("rb") as src:
            _copy_bounded(src, staging / path.name, limit)


def _regular_file_size(path: Path) -> int:
    """The size of an uploaded file; refuses links, devices and folders without following them."""
    try:
        info = os.lstat(path)
    except OSError:
        raise AdapterRejected(f"The uploaded file {path.name} could not be read.") from None
    if not stat.S_ISREG(info.st_mode):
        raise AdapterRejected(f"The uploaded {path.name} is not a regular file.")
    return info.st_size


def _stage_zip(path: Path, staging: Path, max_bytes: int) -> str | None:
    size = _regular_file_size(path)
    _too_big(path.name, size, max_bytes + ZIP_OVERHEAD)
    _check_end_record(path, size)
    try:
        with zipfile.ZipFile(path) as archive:
            members, top = _check_members(archive, max_bytes)
            for member in members:
                name = member.filename.rsplit("/", 1)[-1]
                with archive.open(member) as src:
                    _copy_bounded(src, staging / name, min(member.file_size, _limit(name, max_bytes)))
    except AdapterRejected:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error, OSError):
        raise AdapterRejected(
            f"{path.name} is not a readable zip archive (damaged, encrypted or unsupported)."
        ) from None
    return top or path.name[: -len(".zip")]


def _check_end_record(path: Path, size: int) -> None:
    """Read the end-of-central-directory record before zipfile does: few entries, small directory, no ZIP64."""
    tail_len = min(size, 22 + 65535)
    with path.open("rb") as handle:
        handle.seek(size - tail_len)
        tail = handle.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise AdapterRejected(f"{path.name} is not a zip archive.")
    entries, directory_size, directory_offset = struct.unpack("<HII", tail[at + 10 : at + 20])
    if entries == 0xFFFF or directory_offset == 0xFFFFFFFF or (at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR):
        raise AdapterRejected(f"{path.name} is a ZIP64 archive; an adapter zip is small and needs none.")
    if entries > MAX_ZIP_ENTRIES:
        raise AdapterRejected(f"{path.name} has {entries} entries; an adapter zip holds at most {MAX_ZIP_ENTRIES}.")
    if directory_size > MAX_CENTRAL_DIRECTORY:
        raise AdapterRejected(f"{path.name} has an oversized directory ({directory_size} bytes); refused.")


def _check_members(archive: zipfile.ZipFile, max_bytes: int) -> tuple[list[zipfile.ZipInfo], str | None]:
    """The file entries to extract and the single top-level folder (if any); refuse everything else."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise AdapterRejected(f"The zip has {len(infos)} entries; an adapter zip holds at most {MAX_ZIP_ENTRIES}.")
    seen: set[str] = set()
    tops: set[str | None] = set()
    files: list[zipfile.ZipInfo] = []
    total = 0
    for info in infos:
        name = info.filename
        shown = name[:80]
        if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise AdapterRejected(f"The zip entry {shown!r} has an absolute or Windows-style path; refused.")
        parts = name.rstrip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise AdapterRejected(f"The zip entry {shown!r} climbs out of its folder ('..' or an empty part); refused.")
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise AdapterRejected(f"The zip entry {shown!r} is a symbolic link; refused.")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise AdapterRejected(f"The zip entry {shown!r} is a special file, not a regular one; refused.")
        if info.flag_bits & 0x1:
            raise AdapterRejected(f"The zip entry {shown!r} is encrypted; refused.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise AdapterRejected(f"The zip entry {shown!r} uses an unsupported compression; use deflate.")
        folded = name.rstrip("/").casefold()
        if folded in seen:
            raise AdapterRejected(f"The zip holds {shown!r} twice; refused.")
        seen.add(folded)
        if info.is_dir() or kind == stat.S_IFDIR:
            if len(parts) != 1:
                raise AdapterRejected(
                    f"The zip entry {shown!r} is a nested folder; put the files in one folder at most."
                )
            tops.add(parts[0])
            continue
        if len(parts) > 2:
            raise AdapterRejected(f"The zip entry {shown!r} is nested too deep; put the files in one folder at most.")
        _check_name(parts[-1])
        tops.add(parts[0] if len(parts) == 2 else None)
        _too_big(parts[-1], info.file_size, _limit(parts[-1], max_bytes))
        total += info.file_size
        files.append(info)
    if len(tops) > 1:
        raise AdapterRejected("The zip mixes files from several folders; put the adapter files in one folder at most.")
    if total > max_bytes:
        raise AdapterRejected(f"The zip expands to {total / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.")
    _require_both({info.filename.rsplit("/", 1)[-1] for info in files})
    top = next(iter(tops), None)
    return files, top


def _too_big(name: str, size: int, limit: int) -> None:
    if size > limit:
        unit, scale = ("MiB", 2**20) if limit >= 2**20 else ("KiB", 1024)
        raise AdapterRejected(f"{name[:80]} is {size / scale:.1f} {unit}; the limit is {limit / scale:.0f} {unit}.")


def _copy_bounded(src: BinaryIO, target: Path, limit: int) -> None:
    """Copy a stream into a new file, refusing once more than `limit` bytes arrive."""
    written = 0
    with target.open("xb") as dst:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise AdapterRejected(f"{target.name} is larger than it claims or than the limit allows; refused.")
            dst.write(chunk)
