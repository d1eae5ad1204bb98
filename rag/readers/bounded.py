"""Reading an untrusted file with a deadline and a memory ceiling.

The structured formats (PDF, DOCX, HTML, reStructuredText, CSV, XLSX, PPTX) are parsed by libraries that a
crafted file can keep busy for
minutes or make allocate gigabytes (a 327 KB .docx of 2 million empty paragraphs ran for 25 minutes at
3.9 GB). So they are read by a fresh Python process (`python -m rag.readers.bounded`, which imports only
the readers), with `RLIMIT_AS` set to `parse_memory_mb`, killed when `parse_timeout_s` passes. The file
goes in on stdin; the sections come back as JSON on stdout (never a pickle: the child handles hostile
bytes, so the parent trusts nothing it says beyond plain data). A timeout, an out-of-memory or a crash
becomes one sentence; the app and its other uploads go on. Plain text and Markdown are decoded
in-process: their cost is linear in their (already capped) size.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import PurePath

from core.child import ROOT, module_command
from rag.errors import IngestError
from rag.readers import read_sections
from rag.records import Section

IN_PROCESS = (".txt", ".text", ".md", ".markdown")


@dataclass(frozen=True)
class ReadBounds:
    """What reading one file may take: seconds of wall time (0: read in-process, unbounded) and MiB of
    address space."""

    timeout_s: float = 60.0
    memory_mb: int = 2048


def read_sections_bounded(name: str, data: bytes, bounds: ReadBounds | None) -> tuple[list[Section], str]:
    """`read_sections`, in a child process within `bounds` for the structured formats. Raises IngestError
    (one sentence naming the file) for what `read_sections` refuses, and for a file that takes too long or
    too much memory to read."""
    if bounds is None or bounds.timeout_s <= 0 or PurePath(name).suffix.lower() in IN_PROCESS:
        return read_sections(name, data)
    command, env = module_command(
        "rag.readers.bounded", str(int(bounds.memory_mb)), name, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"
    )
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=bounds.timeout_s, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise IngestError(
            f"{name} took longer than {bounds.timeout_s:g} s to read, so reading it was stopped; "
            "save it again (or as plain text) and upload that."
        ) from None
    try:
        reply = json.loads(done.stdout.decode("utf-8"))
        kind = reply["kind"]
    except (ValueError, KeyError, TypeError):  # killed for memory, or a crash in a parser's C code
        kind, reply = "memory", {}
    if kind == "ok":
        return [Section(**s) for s in reply["sections"]], str(reply["note"])
    if kind == "refused":
        raise IngestError(str(reply["message"]))
    if kind == "memory":
        raise IngestError(
            f"{name} needs more than {bounds.memory_mb} MB of memory to read, so it was refused; "
            "split it into smaller files."
        )
    raise IngestError(f"{name} could not be read ({str(reply.get('error', 'error'))[:60]}).")


def _child(memory_mb: int, name: str) -> dict:
    """In the child: read stdin as the file `name` under the memory ceiling; the reply as plain data."""
    import resource

    import docutils.core  # noqa: F401 -- the parsers load before the ceiling, so no import fails under it
    import docx  # noqa: F401
    import openpyxl  # noqa: F401
    import pptx  # noqa: F401
    import pypdf  # noqa: F401

    data = sys.stdin.buffer.read()
    if memory_mb > 0:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        sections, note = read_sections(name, data)
        return {"kind": "ok", "sections": [asdict(s) for s in sections], "note": note}
    except IngestError as exc:  # a reader's sentence, unless what it caught was the ceiling ("damaged" is wrong)
        return {"kind": "memory"} if _out_of_memory(exc) else {"kind": "refused", "message": str(exc)}
    except MemoryError:
        return {"kind": "memory"}
    except Exception as exc:  # a parser's own bug, reported by its type only
        return {"kind": "failed", "error": type(exc).__name__}


def _out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` was raised while handling the memory ceiling: a MemoryError, an ENOMEM OSError, zlib's
    Z_MEM_ERROR ("Error -4 while decompressing") or lxml's "Memory allocation failed", anywhere in its chain (a
    reader's `raise IngestError(...) from None` keeps it)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
            return True
        if isinstance(exc, zlib.error) and str(exc).startswith("Error -4 "):
            return True
        if "memory allocation failed" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


if __name__ == "__main__":
    reply = _child(int(sys.argv[1]), sys.argv[2])
    try:
        out = json.dumps(reply, ensure_ascii=False)
    except MemoryError:
        out = '{"kind": "memory"}'
    sys.stdout.write(out)
