"""The llama.cpp shared library, without torch: where it is installed, which build it is, loading it, and
re-encoding a GGUF with it.

This module imports nothing heavy, so the child process that checks the library before the app serves on it
(`engines.probe`) starts in a fraction of a second. Importing `llama_cpp` loads native code built for
some CPU baseline; the app does that only after that child has run the same code on this machine.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LIB_PATH_ENV = "LLAMA_CPP_LIB_PATH"
"""llama-cpp-python's own variable: the folder it loads libllama and the ggml libraries from."""


class LlamaCppUnavailable(RuntimeError):
    """llama.cpp cannot run here; the message is one sentence for the status line."""


def library_dir() -> Path | None:
    """The folder whose libllama / libggml* llama-cpp-python would load, found without importing it (None: the
    package is not installed)."""
    if os.environ.get(LIB_PATH_ENV):
        return Path(os.environ[LIB_PATH_ENV])
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "lib"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _libraries(folder: Path) -> dict[str, Path]:
    """{digest: path} of the shared libraries in `folder`, each once (a wheel installs libggml.so, .so.0 and
    .so.0.25.3 as three copies of the same bytes) under its shortest name, sorted by name."""
    seen: dict[str, Path] = {}
    for path in sorted(list(folder.glob("*.so*")) + list(folder.glob("*.dylib")), key=lambda p: (len(p.name), p.name)):
        if path.is_file():
            seen.setdefault(_digest(path), path)
    return dict(sorted(seen.items(), key=lambda item: item[1].name))


def library_files(folder: Path) -> list[Path]:
    """The shared libraries in `folder`, each once, sorted by name."""
    return list(_libraries(folder).values())


def library_id(folder: Path) -> str:
    """A digest of the library build in `folder` (every library's bytes): a rebuild gets a new id."""
    h = hashlib.sha256()
    for digest, path in _libraries(folder).items():
        h.update(path.name.encode() + b"\0" + digest.encode())
    return h.hexdigest()[:24]


def import_llama_cpp() -> Any:
    """The llama_cpp module, or LlamaCppUnavailable saying why not."""
    try:
        import llama_cpp
    except ImportError:
        raise LlamaCppUnavailable("llama-cpp-python is not installed") from None
    except OSError as exc:  # the shared library failed to load (wrong CPU, missing symbol)
        raise LlamaCppUnavailable(f"llama-cpp-python is installed but its library did not load ({exc})") from None
    return llama_cpp


_LOG_CALLBACK: Any = None


def quiet(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to this module's logger at debug level (once per process)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = callback  # ctypes callbacks must outlive their registration
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()


def requantized_path(source: str | os.PathLike, folder: str | os.PathLike, kind: str = "q8_0") -> Path:
    """Where `requantized` writes (or finds) `source` re-encoded as `kind`: named by the source's size and time."""
    source = Path(source)
    stat = source.stat()
    return Path(folder) / f"{source.stem}.{kind}-{stat.st_size:x}-{int(stat.st_mtime):x}.gguf"


def requantized(source: str | os.PathLike, folder: str | os.PathLike, kind: str = "q8_0") -> Path:
    """`source` re-encoded by llama.cpp as `kind` (Q8_0: about 0.6 s for SmolLM2), written once under `folder`
    beside-then-renamed, and reused while the source file is unchanged. Raises LlamaCppUnavailable."""
    out = requantized_path(source, folder, kind)
    if out.is_file():
        return out
    lib = import_llama_cpp()
    quiet(lib)
    source = Path(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    params = lib.llama_model_quantize_default_params()
    params.ftype = {"q8_0": lib.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    params.allow_requantize = True
    params.nthread = max(1, len(os.sched_getaffinity(0)))
    started = time.perf_counter()
    try:
        if lib.llama_model_quantize(str(source).encode(), str(staging).encode(), ctypes.byref(params)) != 0:
            raise LlamaCppUnavailable(f"llama.cpp could not re-encode {source.name} as {kind}")
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    log.info("%s re-encoded as %s in %.1f s", source.name, kind, time.perf_counter() - started)
    return out
