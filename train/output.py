"""Write the finished adapter folder atomically: into a sibling staging folder, then swapped into place.

`core.files.replace_dir` fsyncs the staging folder's files and exchanges it with the previous
folder in one atomic step: a crash at any moment leaves the previous adapter (if any) or the new
one, whole and loadable, and a reader never finds the folder missing or half-written.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from core.files import replace_dir

# PEFT's save_pretrained also writes a README.md model card; the app accepts only known files.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")

_counter = itertools.count()


def write_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Call `fill(staging)` on an empty sibling folder, then swap it in as `final`; return `final`.

    If `fill` raises, the staging folder is removed, `final` is untouched and the error propagates.
    Until the swap, `final` stays as it was and readable.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}-{next(_counter)}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fill(staging)
        for child in staging.rglob("*"):
            if child.is_file() and not child.is_symlink():
                child.chmod(0o644)  # safetensors writes 0600; the app may run as another user
        replace_dir(staging, final)  # after the swap `staging` names the old folder, which it deletes
    except BaseException:  # protects the store: a half-written staging folder never stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def drop_extra_files(folder: Path, keep: tuple[str, ...]) -> None:
    """Remove files `save_pretrained` adds beside the ones named in `keep` (e.g. PEFT's README.md)."""
    for child in Path(folder).iterdir():
        if child.name not in keep:
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
