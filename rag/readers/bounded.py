"""Reading an untrusted file with a deadline and a memory ceiling.

The structured formats (PDF, DOCX, HTML) are parsed by libraries that a crafted file can keep busy for
minutes or make allocate gigabytes (a 327 KB .docx of 2 million empty paragraphs ran for 25 minutes at
3.9 GB). So they are read in a child process, forked from a small clean server process (multiprocessing's
`forkserver`, which has loaded only the readers), with `RLIMIT_AS` set to `parse_memory_mb`, and killed
when `parse_timeout_s` passes. The child's failure becomes one sentence; the app and its other uploads go
on. Plain text and Markdown are decoded in-process: their cost is linear in their (already capped) size.
"""

from __future__ import annotations

import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import PurePath

from rag.errors import IngestError
from rag.readers import read_sections
from rag.records import Section

IN_PROCESS = (".txt", ".text", ".md", ".markdown")
_CONTEXT = multiprocessing.get_context("forkserver")
# The parsers load in the server, once: a child forks with them in memory (fast, and no import under its ceiling).
_CONTEXT.set_forkserver_preload(["rag.readers", "zipfile", "docx", "docx.table", "pypdf"])


@dataclass(frozen=True)
class ReadBounds:
    """What reading one file may take: seconds of wall time and MiB of address space (0: unbounded, in-process)."""

    timeout_s: float = 60.0
    memory_mb: int = 2048


def read_sections_bounded(name: str, data: bytes, bounds: ReadBounds | None) -> tuple[list[Section], str]:
    """`read_sections`, in a child process within `bounds` for the structured formats. Raises IngestError
    (one sentence naming the file) for what `read_sections` refuses, and for a file that takes too long or
    too much memory to read."""
    if bounds is None or bounds.timeout_s <= 0 or PurePath(name).suffix.lower() in IN_PROCESS:
        return read_sections(name, data)
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_read_in_child, args=(sender, name, data, bounds.memory_mb), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(bounds.timeout_s):
            raise IngestError(
                f"{name} took longer than {bounds.timeout_s:g} s to read, so reading it was stopped; "
                "save it again (or as plain text) and upload that."
            )
        kind, value = receiver.recv()
    except EOFError:  # the child died without a word: killed for memory, or a crash in a parser's C code
        kind, value = "memory", ""
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=5)
    if kind == "ok":
        return value
    if kind == "refused":
        raise IngestError(value)
    if kind == "memory":
        raise IngestError(
            f"{name} needs more than {bounds.memory_mb} MB of memory to read, so it was refused; "
            "split it into smaller files."
        )
    raise IngestError(f"{name} could not be read ({value}).")


def _read_in_child(sender: Connection, name: str, data: bytes, memory_mb: int) -> None:
    try:
        if memory_mb > 0:
            limit = memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        sender.send(("ok", read_sections(name, data)))
    except IngestError as exc:
        sender.send(("refused", str(exc)))
    except MemoryError:
        sender.send(("memory", ""))
    except Exception as exc:  # a parser's own bug, reported by its type only
        sender.send(("failed", type(exc).__name__))
    finally:
        sender.close()
