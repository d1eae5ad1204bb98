"""Plugs the knowledge base into the app's service (`core.service.Attachment`), as the app and the
scorecard command both do."""

from __future__ import annotations

from pathlib import Path

from core.models import Progress
from core.service import Attachment, ExpertService
from rag.knowledge_base import ensure_sample_index

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_kb" / "docs"


def knowledge_attachment(sample_dir: Path = SAMPLE_DOCS) -> Attachment:
    """An attachment that opens the index (seeding it once from `sample_dir`) and gives it to the service."""

    def attach_knowledge(service: ExpertService, progress: Progress) -> None:
        """Document index"""
        kb = ensure_sample_index(service.settings, sample_dir, progress=lambda f, m: progress(f, f"Documents: {m}"))
        progress(0.95, "Documents: loading the embedding model")
        kb.search("warm-up")  # loads the embedding model now, not during the first user's question
        service.attach_knowledge(kb.watch(service.settings.index_watch_s))

    return attach_knowledge
