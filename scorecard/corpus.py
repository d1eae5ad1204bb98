"""Measuring on any corpus: a folder of documents indexed into a throwaway knowledge base, and an app view that
answers from it, without touching the app's own knowledge base or what anyone else sees.

    with corpus_app(app, "sample_kb/real_docs/docs") as (view, reports):
        evaluate(view, "sample_kb/real_docs/dev_qa.jsonl", ["RAG"], ...)

The view shares the app's engine (the one owner of the model) and adapter catalog; it has its own
`ExpertService` whose retriever is the throwaway index, so the running app's chat keeps answering from its own
documents while a run is on. The index lives in a temporary folder that is removed when the run ends.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from answer.service import ExpertService
from core.errors import UserInputError
from rag import FileReport, KnowledgeBase, Progress
from rag.records import no_progress

if TYPE_CHECKING:
    from compose import App
    from core.settings import Settings


def index_documents(
    settings: Settings, documents: Path | Sequence[Path], folder: Path, progress: Progress = no_progress
) -> tuple[KnowledgeBase, list[FileReport]]:
    """A knowledge base in `folder` (a fresh, empty one) over `documents` (a folder, read recursively, or files),
    with the app's retrieval settings. Raises UserInputError when no document could be read."""
    kb = KnowledgeBase.from_settings(settings.replace(data_dir=folder))
    kb.open()
    if isinstance(documents, Path) and documents.is_dir():
        reports = kb.add_folder(documents, progress, recursive=True)
    elif isinstance(documents, Path):
        raise UserInputError(f"{documents} is not a folder of documents.")
    else:
        reports = kb.add_files(list(documents), progress=progress)
    if not any(r.ok for r in reports):
        problems = "; ".join(r.message for r in reports[:3]) or "the folder holds no documents"
        raise UserInputError(f"None of the documents could be indexed ({problems}).")
    return kb, reports


@contextmanager
def corpus_app(
    app: App, documents: Path | Sequence[Path], progress: Progress = no_progress
) -> Iterator[tuple[App, list[FileReport]]]:
    """An app view whose RAG and Hybrid answers search `documents` only (see the module docstring), and the
    report of each file. The index is removed on exit."""
    engine = app.service.check_ready()
    folder = Path(tempfile.mkdtemp(prefix="scorecard-corpus-"))
    try:
        kb, reports = index_documents(app.settings, documents, folder, progress)
        service = ExpertService.over(app.settings.answer, engine)
        service.use_knowledge(kb)
        if app.adapters is not None:
            service.use_adapters(app.adapters)
        yield dataclasses.replace(app, service=service, knowledge=kb, sample_docs=None), reports
    finally:
        shutil.rmtree(folder, ignore_errors=True)
