"""Running one of the app's own modules in a fresh Python process (`python -m package.module`): the bounded
document reader, the llama.cpp start-up check and the embedded model's cache build each do, so that what they
load (hostile bytes, native code that may fault, a gigabyte of temporary tensors) never lives in the app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Where the app's packages are importable from."""


def module_command(module: str, *args: str, **env: str) -> tuple[list[str], dict[str, str]]:
    """The command that runs `python -m module args...` with this interpreter, and its environment: this
    process's, with the app's root on PYTHONPATH and `env` added."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", module, *args], {**os.environ, "PYTHONPATH": path, **env}
