"""The Knowledge tab: the person's documents and the shared ones; add, replace, delete, re-index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from compose import App
from core.errors import UserInputError
from core.identity import Identity
from core.jobs import Job
from rag import FileReport
from ui.guard import discard
from ui.presentation import document_rows, file_reports, knowledge_summary
from ui.session import (
    MY_DOCS,
    PRIVATE,
    SHARED_KB,
    allowed_collections,
    need_knowledge,
    placement_for,
    shared_writers,
    who,
)

DOC_HEADERS = ["ID", "Document", "Collection", "Chunks", "Added"]


def start_adding(
    app: App, person: Identity, paths: Sequence[str], target: str | None, replace: bool
) -> Job[list[FileReport]]:
    """Start adding `paths` to `person`'s chosen collection on a document worker; return the job at once
    (the caller shows its progress). Raises gr.Error (one sentence) when the index is not ready or the
    shared knowledge base is chosen by someone the operator does not let change it."""
    placement = placement_for(app, person, target, replace)
    kb = need_knowledge(app)

    def add(report) -> list[FileReport]:
        try:
            return kb.add_files([Path(p) for p in paths], report, placement=placement)
        finally:  # added (the index keeps its own original) or refused: Gradio's copy leaves the disk now
            discard(paths)

    return app.jobs.submit("documents", add)


@dataclass
class KnowledgeView:
    summary: gr.Markdown
    documents: gr.Dataframe


def knowledge_tab(app: App) -> KnowledgeView:
    summary = gr.Markdown(knowledge_summary(app.knowledge))
    kinds = ".txt .md .rst .pdf .docx .html .csv .xlsx .pptx"
    files = gr.File(file_count="multiple", label=f"Add documents ({kinds})", elem_id="doc-files")
    with gr.Row():
        target = gr.Radio([MY_DOCS, SHARED_KB], value=MY_DOCS, label="Add to", elem_id="doc-target", scale=2)
        replace = gr.Checkbox(
            False,
            label="Replace a document of the same name",
            elem_id="doc-replace",
            scale=1,
            info="A replaced shared document stays recoverable by the operator (python -m rag restore).",
        )
    add_btn = gr.Button("Add to index", variant="primary", elem_id="add-docs")
    report = gr.Dataframe(
        headers=["File", "Result", "Chunks"], label="Last upload", interactive=False, elem_id="upload-report"
    )
    documents = gr.Dataframe(headers=DOC_HEADERS, label="Documents", interactive=False, wrap=True, elem_id="documents")
    with gr.Row():
        doc_id = gr.Textbox(label="Document ID to delete", scale=3, elem_id="doc-id")
        delete_btn = gr.Button("Delete document", variant="stop", scale=1, elem_id="delete-doc")
        reindex_btn = gr.Button("Re-index everything", scale=1)

    def lists(person: Identity) -> tuple:
        return document_rows(app.knowledge, person), knowledge_summary(app.knowledge, person)

    def add_documents(
        paths, target, replace, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()
    ):
        if not paths:
            raise gr.Error("Choose one or more files first.")
        person = who(request, profile)
        job = start_adding(app, person, paths, target, replace)
        while not job.wait(0.5):  # the job runs on its own worker; this only shows how far it is
            progress(job.fraction, desc=job.message)
        try:
            reports = job.outcome()
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return file_reports(reports), *lists(person), None

    def delete_document(doc, request: gr.Request, profile: gr.OAuthProfile | None):
        if not doc or not str(doc).strip():
            raise gr.Error("Type the ID of the document to delete (first column).")
        person = who(request, profile)
        try:
            need_knowledge(app).delete(str(doc).strip(), allowed=allowed_collections(app, person))
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return *lists(person), ""

    def reindex(request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        person = who(request, profile)
        writers = app.settings.access.shared_kb_writers
        if not person.may_change_shared(writers):
            raise gr.Error(
                f"Re-indexing rebuilds the shared knowledge base, which {shared_writers(writers)} may change."
            )
        reports = need_knowledge(app).reindex(progress=lambda f, m: progress(f, desc=m))
        return file_reports(reports), *lists(person)

    # Uploads wait on their job, not on each other: many may wait at once while the workers embed.
    waiting = {"concurrency_id": "documents", "concurrency_limit": 16, **PRIVATE}
    one_writer = {"concurrency_id": "knowledge", "concurrency_limit": 1, **PRIVATE}
    add_btn.click(add_documents, [files, target, replace], [report, documents, summary, files], **waiting)
    delete_btn.click(delete_document, doc_id, [documents, summary, doc_id], **one_writer)
    reindex_btn.click(reindex, None, [report, documents, summary], **one_writer)
    return KnowledgeView(summary, documents)
