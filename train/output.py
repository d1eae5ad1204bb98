"""Write the finished adapter folder atomically: into a sibling temp folder, then renamed into place.

A crash mid-write leaves the previous adapter (if any) intact and loadable; the folder the
app reads is never half-written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

# PEFT's save_pretrained also writes a README.md model card; the app accepts only known files.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def write_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Call `fill(staging)` on an empty sibling folder, then swap it in as `final`; return `final`.

    If `fill` raises, the staging folder is removed, `final` is untouched and the error propagates.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fill(staging)
        for child in staging.iterdir():
            if child.is_file():
                child.chmod(0o644)  # safetensors writes 0600; the app may run as another user
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def drop_extra_files(folder: Path, keep: tuple[str, ...]) -> None:
    """Remove files `save_pretrained` adds beside the ones named in `keep` (e.g. PEFT's README.md)."""
    for child in Path(folder).iterdir():
        if child.name not in keep:
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
