"""The public API for `gradio_client`: named endpoints with named inputs and outputs.

    /chat               one answer, streamed; stateless unless a history is passed (and returned)
    /compare            one question answered Base / RAG / Fine-tuned / Hybrid
    /documents_list     /documents_upload     /documents_delete
    /adapters_list      /adapters_upload      /adapters_delete
    /scorecard          run the scorecard on the shipped held-out set (or a limit of it)

The page's own events are private; these endpoints are built on hidden components so that
`Client.view_api()` names every parameter and every output, and lists the choices of modes and shared
adapters. A caller is a person as on the page (`ui.session.who`): a signed-in user (local
`users`, with `Client(url, auth=(name, password))`), or else the client's own session; what they
upload is theirs. Every refusal is one sentence (`gradio_client` raises it as `AppError`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import gradio as gr

from adapters.store import DEMO, PUBLISHED, TRAINED
from answer.types import AnswerUpdate, Mode
from compose import App
from core.errors import UserInputError
from core.identity import Identity
from engines.base import GenerationParams
from ui.evaluate_tab import scorecard_steps
from ui.guard import discard
from ui.knowledge_tab import start_adding
from ui.presentation import MODES, compare_texts, default_adapter, display_text, named_adapter, tagged
from ui.session import (
    MY_DOCS,
    SHARED_KB,
    allowed_collections,
    need_adapters,
    need_knowledge,
    on_the_model,
    who,
)

log = logging.getLogger(__name__)

COLLECTIONS = {"private": MY_DOCS, "shared": SHARED_KB}


def shared_adapter_names(app: App) -> list[str]:
    """The adapters everyone may use (shipped, trained, published), by the names the page shows, read
    from the app's adapter store without loading anything: the choices `view_api()` lists."""
    return sorted({e.name for e in app.store.entries() if e.source in (DEMO, TRAINED, PUBLISHED)})


def document_records(app: App, person: Identity) -> list[dict[str, Any]]:
    kb = need_knowledge(app)
    return [
        {
            "id": d.doc_id,
            "name": d.name,
            "collection": "shared" if d.shared else "private",
            "chunks": d.chunks,
            "added": d.added_at,
            "bytes": d.size_bytes,
        }
        for d in kb.documents_for(person.tag)
    ]


def adapter_records(app: App, person: Identity) -> list[dict[str, Any]]:
    catalog = need_adapters(app)
    return [
        {
            "name": i.name,
            "label": i.label,
            "source": i.source,
            "base_model": i.base_model,
            "rank": i.rank,
            "targets": list(i.target_modules),
            "created_at": i.created_at,
            "eval": i.eval_summary,
        }
        for i in catalog.list_adapters(person.owner)
    ]


def source_records(update: AnswerUpdate | None) -> list[dict[str, Any]]:
    if update is None:
        return []
    cited = set(update.cited)
    return [
        {
            "n": i,
            "file": p.source,
            "location": p.location,
            "score": round(p.score, 4),
            "text": p.text,
            "cited": i in cited,
        }
        for i, p in enumerate(update.sources, 1)
    ]


def public_api(app: App) -> None:
    """Add the API endpoints to the Blocks being built (hidden components; nothing shows on the page). Uploads
    run on the app's document workers, a scorecard on its scorecard worker (shared with the page)."""
    service, a = app.service, app.settings.answer
    with gr.Group(visible=False):
        question = gr.Textbox(label="Question")
        mode = gr.Radio(MODES, value=Mode.RAG.value, label="Mode")
        adapter = gr.Dropdown(  # "" for none; your own uploads by name too
            ["", *shared_adapter_names(app)], value="", label="Adapter", allow_custom_value=True
        )
        history = gr.JSON([], label="History")
        temperature = gr.Number(0.0, label="Temperature")  # checked by GenerationParams, with a sentence naming it
        max_new_tokens = gr.Number(a.max_new_tokens, label="Max new tokens")
        answer = gr.Textbox(label="Answer")
        sources = gr.JSON(label="Sources")
        evidence = gr.JSON(label="Evidence")
        notes = gr.JSON(label="Notes")
        answers = [gr.Textbox(label=m) for m in MODES]
        files = gr.File(file_count="multiple", label="Files")
        collection = gr.Radio(list(COLLECTIONS), value="private", label="Collection")
        replace = gr.Checkbox(False, label="Replace")
        doc_id = gr.Textbox(label="Document ID")
        name = gr.Textbox("", label="Name")
        result = gr.Textbox(label="Result")
        report = gr.JSON(label="Report")
        documents = gr.JSON(label="Documents")
        adapters = gr.JSON(label="Adapters")
        modes = gr.CheckboxGroup(MODES, value=MODES, label="Modes")
        limit = gr.Number(5, label="Questions", precision=0, minimum=0)
        status = gr.Textbox(label="Status")
        scorecard_md = gr.Textbox(label="Scorecard")
        scores = gr.JSON(label="Scores")
        trigger = gr.Button()

    def chat(
        question,
        mode,
        adapter,
        history,
        temperature,
        max_new_tokens,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ):
        """Answer one question, streamed. Pass `history` (the list this endpoint returned last time) to go
        on with a conversation; without it every call starts fresh. `adapter` is needed in Fine-tuned and
        Hybrid mode only. Returns the model's own answer, the passages it was given (numbered as it cites
        them), the source sentences quoted as evidence, notes (e.g. an adapter trained on older documents),
        and the history to pass next time."""
        person = who(request, profile)
        turns = [t for t in (history or []) if isinstance(t, dict)] if isinstance(history, list) else []
        max_new = a.max_new_tokens if max_new_tokens is None else max_new_tokens
        params = GenerationParams(0.0 if temperature is None else temperature, a.top_p, max_new)  # checked there
        update = None
        try:
            answers = service.answer(
                person.session, question, turns, mode, params, None, adapter or None, owner=person.owner
            )
            for update in answers:
                # the history goes back once, with the finished answer: not again with every streamed token
                yield display_text(update), source_records(update), [], list(update.notes), gr.skip()
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        if update is not None:
            exchange = tagged(str(question).strip(), update)
            quotes = [{"n": q.source, "text": q.text, "file": q.file, "location": q.location} for q in update.evidence]
            yield display_text(update), source_records(update), quotes, list(update.notes), [*turns, *exchange]

    def compare(question, adapter, request: gr.Request, profile: gr.OAuthProfile | None):
        """Answer one question in all four modes at once (greedy); each answer as the page shows it, or the
        sentence that says why that mode could not answer. Without `adapter`, Fine-tuned and Hybrid use the
        page's default (your newest upload, else a trained, published or the shipped demo adapter), and their
        notes name it."""
        person = who(request, profile)
        params = GenerationParams(0.0, a.top_p, a.max_new_tokens)
        chosen = default_adapter(app.adapters, person.owner) if not adapter else None
        named = adapter or (chosen.key if chosen else None)
        info = named_adapter(app.adapters, named, person.owner)
        latest: list = [None] * len(MODES)
        for snapshot in service.compare(person.session, question, MODES, params, None, named, person.owner):
            latest = snapshot  # the last list holds the finished answers
        return compare_texts(latest, info)

    def documents_list(request: gr.Request, profile: gr.OAuthProfile | None):
        """The documents you can search: the shared ones and your own private ones."""
        return document_records(app, who(request, profile))

    def documents_upload(files, collection, replace, request: gr.Request, profile: gr.OAuthProfile | None):
        """Add documents (.txt .md .rst .pdf .docx .html .csv .xlsx .pptx) to your private collection, or to the
        shared one if the operator lets you. A file whose name is taken is refused unless `replace`. Returns a
        report per file and the documents you can search."""
        if not files:
            raise gr.Error("Send one or more files.")
        if collection not in COLLECTIONS:
            raise gr.Error(f"collection must be 'private' or 'shared', not {str(collection)[:40]!r}.")
        person = who(request, profile)
        job = start_adding(app, person, files, COLLECTIONS[collection], bool(replace))
        job.wait()
        try:
            reports = job.outcome()
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        rows = [
            {"file": r.name, "ok": r.ok, "status": r.status, "message": r.message, "chunks": r.chunks, "id": r.doc_id}
            for r in reports
        ]
        return rows, document_records(app, person)

    def documents_delete(doc_id, request: gr.Request, profile: gr.OAuthProfile | None):
        """Delete one of your documents by its id (from /documents_list); shared ones only if the operator
        lets you. A deleted shared document stays recoverable by the operator (python -m rag restore)."""
        person = who(request, profile)
        allowed = allowed_collections(app, person)
        try:
            gone = need_knowledge(app).delete(str(doc_id or "").strip(), allowed=allowed)
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return f"Deleted {gone.name}.", document_records(app, person)

    def adapters_list(request: gr.Request, profile: gr.OAuthProfile | None):
        """The adapters you can use: your uploads first, then trained, published and shipped ones."""
        return adapter_records(app, who(request, profile))

    def adapters_upload(files, name, request: gr.Request, profile: gr.OAuthProfile | None):
        """Upload a LoRA adapter (adapter_config.json + adapter_model.safetensors, or one .zip of them). It is
        checked before it is stored (config, shapes, finite weights of a sane size) and is private to you."""
        if not files:
            raise gr.Error("Send adapter_config.json and adapter_model.safetensors, or one .zip of them.")
        person = who(request, profile)
        try:
            info = need_adapters(app).upload(list(files), person.owner, name or None)
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        finally:  # stored (as a checked copy) or refused: Gradio's copy leaves the disk now
            discard(files)
        return f"Added {info.name}.", adapter_records(app, person)

    def adapters_delete(name, request: gr.Request, profile: gr.OAuthProfile | None):
        """Delete one of your uploaded adapters by name."""
        person = who(request, profile)
        try:
            info = need_adapters(app).delete_upload(str(name or ""), person.owner)
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return f"Deleted {info.name}.", adapter_records(app, person)

    def scorecard(modes, adapter, limit, request: gr.Request, profile: gr.OAuthProfile | None):
        """Run the scorecard on the shipped held-out set in the chosen modes (greedy; `limit` questions, 0 for
        all), streaming its status. Finished answers are kept, so a repeated call resumes. Returns the status,
        the scorecard as Markdown, and its figures (overall and per language, per mode)."""
        steps = scorecard_steps(app, who(request, profile).owner, None, modes, adapter, limit, 1.0)
        try:
            with contextlib.closing(steps):  # a cancelled call stops after the current answer
                for step in steps:
                    if step.result is None:
                        yield f"Evaluating: {step.done} of {step.total} answers.", "", None
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        outcome = step.result
        card = outcome.scorecard
        done = f"Done: {card.name}." if card.complete else "Stopped; the answers so far are kept."
        yield done, card.to_markdown(chart_name=None), card.to_json()

    api = {"api_visibility": "public"}
    chat_out = [answer, sources, evidence, notes, history]
    trigger.click(
        chat,
        [question, mode, adapter, history, temperature, max_new_tokens],
        chat_out,
        api_name="chat",
        **on_the_model(app),
        **api,
    )
    trigger.click(compare, [question, adapter], answers, api_name="compare", **on_the_model(app), **api)
    trigger.click(documents_list, None, documents, api_name="documents_list", **api)
    trigger.click(
        documents_upload,
        [files, collection, replace],
        [report, documents],
        api_name="documents_upload",
        concurrency_id="documents",
        concurrency_limit=16,
        **api,
    )
    trigger.click(
        documents_delete,
        doc_id,
        [result, documents],
        api_name="documents_delete",
        concurrency_id="knowledge",
        concurrency_limit=1,
        **api,
    )
    trigger.click(adapters_list, None, adapters, api_name="adapters_list", **api)
    trigger.click(adapters_upload, [files, name], [result, adapters], api_name="adapters_upload", **api)
    trigger.click(adapters_delete, name, [result, adapters], api_name="adapters_delete", **api)
    trigger.click(
        scorecard,
        [modes, adapter, limit],
        [status, scorecard_md, scores],
        api_name="scorecard",
        concurrency_id="scorecard",
        concurrency_limit=1,
        **api,
    )
