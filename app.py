"""Gradio UI for the industry-expert chat: layout, event wiring and per-session state only.

Run `python app.py --help` for settings. Everything that thinks lives in `core/`, `rag/`, `adapters/`
and `scorecard/`; this file composes them, builds one small function per tab, and formats results.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out to the internet
# Idle OpenMP threads sleep instead of spinning: generation and embedding run on several threads
# of this process, and spinning teams starve each other on a small CPU (bench/bench_streaming.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr

from adapters import AdapterCatalog
from adapters.attach import attach_adapters
from core.errors import UserInputError
from core.generation import GenerationParams
from core.pipeline import AnswerUpdate, Mode
from core.service import ExpertService
from core.settings import Settings, SettingsError
from rag import KnowledgeBase
from rag.attach import SAMPLE_DOCS, knowledge_attachment
from scorecard import SHIPPED_QA, QAFileError, evaluate_for_session, load_qa

log = logging.getLogger("app")

MODES = [m.value for m in Mode]
WARNING = "⚠️ "
MODE_HELP = (
    "Base: the model alone. RAG: answers from your documents, with citations. "
    "Fine-tuned: the model with a LoRA adapter. Hybrid: documents and adapter together."
)
SOURCE_HEADERS = ["#", "File", "Location", "Score", "Passage"]
DOC_HEADERS = ["ID", "Document", "Chunks", "Added"]
ADAPTER_HEADERS = ["Adapter", "Source", "Base model", "Rank", "Targets", "Data sha256", "Date", "Eval (scorecard)"]
EVALUATE_HELP = (
    "Runs every question of a keyed QA set through the chat's own answer path in each chosen mode (greedy), "
    "scores only the model's own words, and recommends a mode. Leave the file empty to use the shipped "
    "held-out set. Other people's chats are served between answers. Finished answers are kept, so a stopped "
    "run resumes where it stopped."
)
PRIVATE = {"api_visibility": "private"}


def on_the_model(service: ExpertService) -> dict:
    """Queue settings of the events that generate: as many at once as the engine batches together (beyond
    that, Gradio's queue shows people their place)."""
    return {"concurrency_id": "model", "concurrency_limit": service.settings.engine_batch}


# -- composition: the parts attached once the model is loaded ------------------------------------
def build_service(settings: Settings) -> ExpertService:
    return ExpertService(settings, attachments=[knowledge_attachment(SAMPLE_DOCS), attach_adapters])


def knowledge_base(service: ExpertService) -> KnowledgeBase | None:
    return service.knowledge if isinstance(service.knowledge, KnowledgeBase) else None


def adapter_catalog(service: ExpertService) -> AdapterCatalog | None:
    return service.adapters if isinstance(service.adapters, AdapterCatalog) else None


# -- formatting ---------------------------------------------------------------------------------
UNSUPPORTED_MARK = " ⚠️ *(not in the sources)*"


def format_answer(update: AnswerUpdate) -> str:
    """The model's answer as the chat shows it: unsupported sentences marked, the evidence quoted, the
    sources listed, notes last. Source numbers the answer invents are not shown."""
    text = update.display_text()
    for sentence in update.unsupported if update.done else []:
        shown = update.display_text(sentence)
        if shown and shown in text:
            text = text.replace(shown, shown + UNSUPPORTED_MARK, 1)
    if update.evidence:
        title = "Evidence" if update.evidence_supports else "What the sources say"
        quotes = [f"> [{q.source}] “{q.text}” — {q.file}, {q.location}" for q in update.evidence]
        text += f"\n\n**{title}:**\n" + "\n".join(quotes)
    if update.sources:
        cited = set(update.cited)
        refs = [
            f"[{i}] {p.source}, {p.location}" + (" (cited)" if i in cited else "")
            for i, p in enumerate(update.sources, 1)
        ]
        text += "\n\n**Sources:** " + " · ".join(refs)
    if update.notes:
        text += "\n\n" + "\n".join(f"_{n}_" for n in update.notes)
    return text


def source_rows(update: AnswerUpdate | None) -> list[list]:
    if update is None:
        return []
    return [
        [i, p.source, p.location, round(p.score, 4), p.text[:300] + ("…" if len(p.text) > 300 else "")]
        for i, p in enumerate(update.sources, 1)
    ]


def document_rows(service: ExpertService):
    kb = knowledge_base(service)
    if kb is None:
        return gr.Dataframe()
    return gr.Dataframe(value=[[d.doc_id, d.name, d.chunks, d.added_date] for d in kb.list_documents()])


def knowledge_summary(service: ExpertService) -> str:
    kb = knowledge_base(service)
    if kb is None:
        return "The document index is not loaded yet."
    st = kb.stats()
    return (
        f"{st.documents} documents, {st.chunks} chunks, embeddings `{st.embed_model}` ({st.dim} dims), "
        f"fusion `{st.fusion}`, last change {st.updated_at or 'never'}."
    )


def adapter_choices(service: ExpertService, session: str, value: str | None = None):
    catalog = adapter_catalog(service)
    if catalog is None:
        return gr.Dropdown(choices=[], value=None)
    choices = [(i.label, i.key) for i in catalog.list_adapters(session)]
    keys = [k for _, k in choices]
    return gr.Dropdown(choices=choices, value=value if value in keys else (keys[0] if keys else None))


def adapter_table(service: ExpertService, session: str) -> tuple[list[list], str]:
    catalog = adapter_catalog(service)
    if catalog is None:
        return [], "Adapters are not loaded yet."
    rows = [
        [i.name, i.source, i.base_model or "?", i.rank, ", ".join(i.target_modules), (i.data_sha256 or "")[:12],
         (i.created_at or "")[:10], i.eval_summary or ""]
        for i in catalog.list_adapters(session)
    ]  # fmt: skip
    skipped = catalog.problems(session)
    notes = "\n".join(f"- skipped `{p.name}` ({p.source}): {p.reason}" for p in skipped)
    return rows, notes or "No adapter folders were skipped."


def file_reports(reports) -> list[list]:
    return [[r.name, ("✅ " if r.ok else "❌ ") + r.message, r.chunks] for r in reports]


# -- tabs ------------------------------------------------------------------------------------------
@dataclass
class Shared:
    """Components several tabs read: the adapter choice and the generation settings."""

    adapter: gr.Dropdown
    system: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    max_new: gr.Slider

    @property
    def settings(self) -> list:
        return [self.system, self.temperature, self.top_p, self.max_new]


def chat_tab(service: ExpertService) -> tuple[Shared, gr.Button]:
    s = service.settings
    model_history = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                height=460, label="Chat", elem_id="chat", buttons=["copy"], group_consecutive_messages=False
            )
            message = gr.Textbox(
                placeholder="Ask a question and press Enter", show_label=False, lines=2, max_lines=8,
                elem_id="message", submit_btn=False,
            )  # fmt: skip
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="send")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                clear = gr.Button("Clear", elem_id="clear")
        with gr.Column(scale=1):
            mode = gr.Radio(MODES, value=Mode.BASE.value, label="Mode", elem_id="mode", info=MODE_HELP)
            adapter = gr.Dropdown([], label="Adapter (Fine-tuned, Hybrid)", elem_id="adapter", allow_custom_value=True)
            with gr.Accordion("Generation settings", open=False):
                system = gr.Textbox(s.system_prompt, label="System prompt", lines=3)
                temperature = gr.Slider(
                    0.0, 2.0, value=s.temperature, step=0.05, label="Temperature",
                    info="0 = always the most likely token",
                )  # fmt: skip
                top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.05, label="Top-p")
                max_new = gr.Slider(
                    1, service.max_new_tokens_limit, value=service.default_params().max_new_tokens, step=1,
                    label="Max new tokens",
                )  # fmt: skip
    sources = gr.Dataframe(
        headers=SOURCE_HEADERS, label="Sources of the last answer", interactive=False, wrap=True, elem_id="sources"
    )
    shared = Shared(adapter, system, temperature, top_p, max_new)

    def respond(text, chat, history, mode, adapter, system, temperature, top_p, max_new, request: gr.Request):
        chat = list(chat or [])
        if not chat:  # a new conversation (an API caller passing [], or after Clear): no hidden earlier turns
            history = []
        if text and text.strip():
            chat.append({"role": "user", "content": text})
        chat.append({"role": "assistant", "content": ""})
        params = GenerationParams(temperature, top_p, max_new)
        update = None
        try:
            for update in service.answer(request.session_hash, text, history, mode, params, system, adapter):
                chat[-1] = {"role": "assistant", "content": format_answer(update)}
                yield "", chat, history, source_rows(update)
        except UserInputError as exc:
            chat[-1] = {"role": "assistant", "content": WARNING + str(exc)}
            yield text, chat, history, []  # keep the text so nothing the user typed is lost
            return
        except Exception as exc:  # never a traceback in the chat; the app keeps serving
            log.exception("answer failed")
            chat[-1] = {"role": "assistant", "content": f"{WARNING}Answering failed ({type(exc).__name__}); try again."}
            yield text, chat, history, []
            return
        if update is not None and update.tokens:
            exchange = [{"role": "user", "content": text.strip()}, {"role": "assistant", "content": update.text}]
            history = [*history, *exchange]
        yield "", chat, history, source_rows(update)

    inputs = [message, chatbot, model_history, mode, adapter, *shared.settings]
    outputs = [message, chatbot, model_history, sources]
    # One public endpoint, /chat, for gradio_client users; the Send button is its private twin.
    events = [
        message.submit(respond, inputs, outputs, api_name="chat", **on_the_model(service)),
        send.click(respond, inputs, outputs, **PRIVATE, **on_the_model(service)),
    ]
    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash)

    stop_btn.click(stop, None, None, cancels=events, queue=False, **PRIVATE)
    clear.click(lambda: ([], [], "", []), None, [chatbot, model_history, message, sources], queue=False, **PRIVATE)
    return shared, stop_btn


def compare_tab(service: ExpertService, shared: Shared, stop_btn: gr.Button) -> None:
    question = gr.Textbox(label="One question, answered four ways", lines=2, elem_id="compare-question")
    compare_btn = gr.Button("Compare Base / RAG / Fine-tuned / Hybrid", variant="primary")
    columns = []
    with gr.Row():
        for m in MODES:
            with gr.Column():
                gr.Markdown(f"### {m}")
                columns.append(gr.Markdown(elem_id=f"compare-{m.lower()}"))

    def compare(question, adapter, system, temperature, top_p, max_new, request: gr.Request):
        params = GenerationParams(temperature, top_p, max_new)
        for latest in service.compare(request.session_hash, question, MODES, params, system, adapter):
            yield [
                "" if item is None else WARNING + str(item) if isinstance(item, UserInputError) else format_answer(item)
                for item in latest
            ]

    event = compare_btn.click(
        compare, [question, shared.adapter, *shared.settings], columns, api_name="compare", **on_the_model(service)
    )
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)


@dataclass
class KnowledgeView:
    summary: gr.Markdown
    documents: gr.Dataframe


def knowledge_tab(service: ExpertService) -> KnowledgeView:
    summary = gr.Markdown(knowledge_summary(service))
    files = gr.File(file_count="multiple", label="Add documents (.txt .md .pdf .docx .html)", elem_id="doc-files")
    add_btn = gr.Button("Add to index", variant="primary", elem_id="add-docs")
    report = gr.Dataframe(
        headers=["File", "Result", "Chunks"], label="Last upload", interactive=False, elem_id="upload-report"
    )
    documents = gr.Dataframe(headers=DOC_HEADERS, label="Documents", interactive=False, wrap=True, elem_id="documents")
    with gr.Row():
        doc_id = gr.Textbox(label="Document ID to delete", scale=3)
        delete_btn = gr.Button("Delete document", variant="stop", scale=1)
        reindex_btn = gr.Button("Re-index everything", scale=1)

    def kb() -> KnowledgeBase:
        found = knowledge_base(service)
        if found is None:
            raise gr.Error("The document index is not ready yet." if not service.ready else service.status_line())
        return found

    def add_documents(paths, progress=gr.Progress()):
        if not paths:
            raise gr.Error("Choose one or more files first.")
        reports = kb().add_files([Path(p) for p in paths], progress=lambda f, m: progress(f, desc=m))
        return file_reports(reports), document_rows(service), knowledge_summary(service), None

    def delete_document(doc):
        if not doc or not str(doc).strip():
            raise gr.Error("Type the ID of the document to delete (first column).")
        try:
            kb().delete(str(doc).strip())
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return document_rows(service), knowledge_summary(service), ""

    def reindex(progress=gr.Progress()):
        reports = kb().reindex(progress=lambda f, m: progress(f, desc=m))
        return file_reports(reports), document_rows(service), knowledge_summary(service)

    one_writer = {"concurrency_id": "knowledge", "concurrency_limit": 1, **PRIVATE}
    add_btn.click(add_documents, files, [report, documents, summary, files], **one_writer)
    delete_btn.click(delete_document, doc_id, [documents, summary, doc_id], **one_writer)
    reindex_btn.click(reindex, None, [report, documents, summary], **one_writer)
    return KnowledgeView(summary, documents)


@dataclass
class AdaptersView:
    table: gr.Dataframe
    notes: gr.Markdown


def adapters_tab(service: ExpertService, shared: Shared) -> AdaptersView:
    notes = gr.Markdown("Adapters appear here as soon as they are written to the store.")
    table = gr.Dataframe(headers=ADAPTER_HEADERS, label="Adapters you can use", interactive=False)
    refresh = gr.Button("Refresh")
    files = gr.File(file_count="multiple", label="Upload adapter_config.json + adapter_model.safetensors, or a .zip")
    name = gr.Textbox(label="Name (optional)")
    with gr.Row():
        upload_btn = gr.Button("Upload adapter", variant="primary")
        delete_btn = gr.Button("Delete the chosen upload", variant="stop")
    result = gr.Markdown()

    def catalog() -> AdapterCatalog:
        found = adapter_catalog(service)
        if found is None:
            raise gr.Error("Adapters are not loaded yet.")
        return found

    def upload(paths, new_name, chosen, request: gr.Request):
        session = request.session_hash
        if not paths:
            raise gr.Error("Choose adapter_config.json and adapter_model.safetensors, or one .zip of them.")
        try:
            info = catalog().upload(list(paths), session, new_name or None)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(service, session), adapter_choices(service, session, chosen), None
        message = f"✅ Added {info.label}. It is private to this browser session."
        return message, *adapter_table(service, session), adapter_choices(service, session, info.key), None

    def delete(chosen, request: gr.Request):
        session = request.session_hash
        if not chosen:
            raise gr.Error("Choose one of your uploaded adapters first.")
        try:
            info = catalog().delete_upload(chosen, session)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(service, session), adapter_choices(service, session, chosen)
        return f"Deleted {info.name}.", *adapter_table(service, session), adapter_choices(service, session)

    def table_for(request: gr.Request):
        return adapter_table(service, request.session_hash)

    outputs = [result, table, notes, shared.adapter]
    refresh.click(table_for, None, [table, notes], **PRIVATE)
    upload_btn.click(upload, [files, name, shared.adapter], [*outputs, files], **PRIVATE)
    delete_btn.click(delete, shared.adapter, outputs, **PRIVATE)
    return AdaptersView(table, notes)


def shipped_qa_summary() -> str:
    try:
        qa = load_qa(SHIPPED_QA)
    except QAFileError as exc:
        return f"{WARNING}{exc}"
    langs = ", ".join(f"{lang} {sum(1 for i in qa.items if i.language == lang)}" for lang in qa.languages)
    no_answer = sum(1 for i in qa.items if not i.answerable)
    return f"Shipped held-out set: {len(qa.items)} questions ({no_answer} with no answer in the documents; {langs})."


def evaluate_tab(service: ExpertService, adapters_view: AdaptersView) -> gr.Dropdown:
    gr.Markdown(EVALUATE_HELP)
    gr.Markdown(shipped_qa_summary())
    with gr.Row():
        qa_file = gr.File(label="QA file (.jsonl), optional", file_types=[".jsonl"], elem_id="eval-file")
        with gr.Column():
            modes = gr.CheckboxGroup(MODES, value=MODES, label="Modes", elem_id="eval-modes")
            adapter = gr.Dropdown([], label="Adapter (Fine-tuned, Hybrid)", elem_id="eval-adapter")
            limit = gr.Number(0, label="Questions (0 = all)", precision=0, minimum=0, elem_id="eval-limit")
    with gr.Row():
        run_btn = gr.Button("Run scorecard", variant="primary", elem_id="eval-run")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="eval-stop")
    status = gr.Markdown(elem_id="eval-status")
    chart = gr.Image(label="Scorecard", type="filepath", interactive=False, elem_id="eval-chart")
    report = gr.Markdown(elem_id="eval-report")

    def run(path, chosen_modes, adapter_name, count, request: gr.Request, progress=gr.Progress()):
        if not service.ready or service.pipeline is None:
            raise gr.Error(service.status_line())
        if not chosen_modes:
            raise gr.Error("Choose at least one mode to evaluate.")
        state = {"done": 0, "total": 1, "message": "Starting"}
        box: dict = {}
        stop = threading.Event()

        def work() -> None:
            try:
                box["result"] = evaluate_for_session(
                    service, request.session_hash, path, chosen_modes, adapter_name, limit=int(count or 0) or None,
                    progress=lambda done, total, message: state.update(done=done, total=total, message=message),
                    stop=stop,
                )  # fmt: skip
            except (UserInputError, QAFileError) as exc:
                box["error"] = str(exc)
            except Exception as exc:  # the app keeps serving; the log has the traceback
                log.exception("evaluation failed")
                box["error"] = f"The evaluation failed ({type(exc).__name__}); try again."

        worker = threading.Thread(target=work, name="scorecard", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.5)
                done, total = state["done"], max(state["total"], 1)
                progress(done / total, desc=f"{done} of {total} answers · {state['message']}")
                yield f"Evaluating: {done} of {total} answers ({state['message']}).", gr.skip(), gr.skip()
        finally:
            stop.set()  # a cancelled run stops after its current answer; what it finished is kept
        if "error" in box:
            yield f"{WARNING}{box['error']}", gr.skip(), gr.skip()
            return
        result = box["result"]
        card = result.scorecard
        lines = [f"Done: {card.name}." if card.complete else "Stopped; the answers so far are kept."]
        if result.card_note:
            lines.append(result.card_note)
        yield " ".join(lines), card.to_markdown(chart_name=None), str(result.chart_path)

    def table_for(request: gr.Request):
        return adapter_table(service, request.session_hash)

    event = run_btn.click(
        run, [qa_file, modes, adapter, limit], [status, report, chart],
        concurrency_id="scorecard", concurrency_limit=1, **PRIVATE,
    ).then(table_for, None, [adapters_view.table, adapters_view.notes], **PRIVATE)  # fmt: skip
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)
    return adapter


# -- the page -------------------------------------------------------------------------------------
def build_demo(service: ExpertService) -> gr.Blocks:
    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## Industry-expert chat\nBase model, RAG over your documents, a LoRA adapter, or both.")
        status_md = gr.Markdown(service.status_line(), elem_id="status")
        timer = gr.Timer(1.0)
        with gr.Tab("Chat"):
            shared, stop_btn = chat_tab(service)
        with gr.Tab("Compare"):
            compare_tab(service, shared, stop_btn)
        with gr.Tab("Knowledge"):
            knowledge = knowledge_tab(service)
        with gr.Tab("Adapters"):
            adapters_view = adapters_tab(service, shared)
        with gr.Tab("Evaluate") as evaluate:
            eval_adapter = evaluate_tab(service, adapters_view)

        def status(current_max_new: float, request: gr.Request):
            # Poll while loading; once ready (or failed) stop polling, fit the max-new-tokens slider to the
            # model's context window, and fill the per-session lists.
            if not service.ready:
                waiting = gr.Slider(), gr.Dropdown(), gr.Dataframe(), gr.skip()
                return service.status_line(), gr.Timer(active=True), *waiting
            limit = service.max_new_tokens_limit
            slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
            lists = adapter_choices(service, request.session_hash), document_rows(service), knowledge_summary(service)
            return service.status_line(), gr.Timer(active=False), slider, *lists

        status_outputs = [status_md, timer, shared.max_new, shared.adapter, knowledge.documents, knowledge.summary]
        timer.tick(status, inputs=shared.max_new, outputs=status_outputs, **PRIVATE)
        demo.load(lambda: service.start().status_line(), outputs=status_md, **PRIVATE)
        def adapters_for(request: gr.Request):
            return adapter_table(service, request.session_hash)

        def eval_choices(current: str | None, request: gr.Request):
            return adapter_choices(service, request.session_hash, current)

        demo.load(adapters_for, None, [adapters_view.table, adapters_view.notes], **PRIVATE)
        demo.load(lambda: knowledge_summary(service), None, knowledge.summary, **PRIVATE)
        evaluate.select(eval_choices, eval_adapter, eval_adapter, **PRIVATE)
    return demo


def serve(demo: gr.Blocks, settings: Settings, **launch) -> None:
    """Queue and launch with the limits that hold under abuse: no upload larger than the largest file the
    app accepts (Gradio's own upload endpoint took 1 GiB without them), and a bounded queue, beyond which a
    client is told at once that the app is busy."""
    largest_mb = max(settings.max_upload_mb, settings.adapter_max_mb)
    demo.queue(default_concurrency_limit=4, max_size=settings.queue_max_size).launch(
        max_file_size=int(largest_mb * 1024 * 1024), show_error=True, **launch
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.exit(str(exc))
    service = build_service(settings).start()
    demo = build_demo(service)
    serve(demo, settings, server_name=settings.host or None, server_port=settings.port or None)


if __name__ == "__main__":
    main()
