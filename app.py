"""Gradio UI for the industry-expert chat: layout, event wiring and per-session state only.

Run `python app.py --help` for settings. Everything that thinks lives in `core/`, `rag/`, `adapters/`
and `scorecard/`; this file composes them, builds one small function per tab, and formats results.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out to the internet
# Idle OpenMP threads sleep instead of spinning: generation and embedding run on several threads
# of this process, and spinning teams starve each other on a small CPU (bench/bench_streaming.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr

from adapters.attach import attach_adapters
from core.errors import UserInputError
from core.generation import GenerationParams
from core.identity import Identity
from core.jobs import Jobs
from core.pipeline import AnswerUpdate, Mode
from core.service import ExpertService
from core.settings import Settings, SettingsError
from rag.attach import SAMPLE_DOCS, knowledge_attachment
from scorecard import SHIPPED_QA, QAFileError, load_qa
from ui.api import public_api
from ui.common import (
    MODES,
    MY_DOCS,
    PRIVATE,
    SHARED_KB,
    WARNING,
    adapter_catalog,
    allowed_collections,
    file_reports,
    format_answer,
    knowledge_base,
    need_adapters,
    need_knowledge,
    on_the_model,
    scorecard_steps,
    shared_writers,
    start_adding,
    who,
)

log = logging.getLogger("app")

MODE_HELP = (
    "Base: the model alone. RAG: answers from your documents, with citations. "
    "Fine-tuned: the model with a LoRA adapter. Hybrid: documents and adapter together."
)
SOURCE_HEADERS = ["#", "File", "Location", "Score", "Passage"]
DOC_HEADERS = ["ID", "Document", "Collection", "Chunks", "Added"]
ADAPTER_HEADERS = ["Adapter", "Source", "Base model", "Rank", "Targets", "Data sha256", "Date", "Eval (scorecard)"]
EVALUATE_HELP = (
    "Runs every question of a keyed QA set through the chat's own answer path in each chosen mode (greedy), "
    "scores only the model's own words, and recommends a mode. Leave the file empty to use the shipped "
    "held-out set. Other people's chats are served between answers. Finished answers are kept, so a stopped "
    "run resumes where it stopped."
)


def identity_line(person: Identity, writers: str) -> str:
    shared = " (you may also add to the shared knowledge base)" if person.may_change_shared(writers) else ""
    if person.signed_in:
        return (f"Signed in as **{person.name}**: your documents and adapters are private to you{shared} and "
                "stay after a reload.")  # fmt: skip
    return (f"Not signed in: your documents and adapters are private to this browser tab{shared}; a reload "
            "starts afresh.")  # fmt: skip


# -- composition: the parts attached once the model is loaded ------------------------------------
def build_service(settings: Settings) -> ExpertService:
    return ExpertService(settings, attachments=[knowledge_attachment(SAMPLE_DOCS), attach_adapters])


# -- formatting ---------------------------------------------------------------------------------
def source_rows(update: AnswerUpdate | None) -> list[list]:
    if update is None:
        return []
    return [
        [i, p.source, p.location, round(p.score, 4), p.text[:300] + ("…" if len(p.text) > 300 else "")]
        for i, p in enumerate(update.sources, 1)
    ]


def document_rows(service: ExpertService, person: Identity):
    kb = knowledge_base(service)
    if kb is None:
        return gr.Dataframe()
    rows = [[d.doc_id, d.name, "shared" if d.shared else "yours (private)", d.chunks, d.added_date]
            for d in kb.documents_for(person.tag)]  # fmt: skip
    return gr.Dataframe(value=rows)


def knowledge_summary(service: ExpertService, person: Identity | None = None) -> str:
    kb = knowledge_base(service)
    if kb is None:
        return "The document index is not loaded yet."
    st = kb.stats()
    docs = kb.documents_for(person.tag if person else None)
    mine = sum(1 for d in docs if not d.shared)
    return (
        f"{len(docs) - mine} shared documents" + (f" and {mine} of your own" if mine else "")
        + f"; embeddings `{st.embed_model}` ({st.dim} dims), fusion `{st.fusion}`, last change "
        f"{st.updated_at or 'never'}."
    )


def adapter_choices(service: ExpertService, owner: str, value: str | None = None):
    catalog = adapter_catalog(service)
    if catalog is None:
        return gr.Dropdown(choices=[], value=None)
    choices = [(i.label, i.key) for i in catalog.list_adapters(owner)]
    keys = [k for _, k in choices]
    return gr.Dropdown(choices=choices, value=value if value in keys else (keys[0] if keys else None))


def adapter_table(service: ExpertService, owner: str) -> tuple[list[list], str]:
    catalog = adapter_catalog(service)
    if catalog is None:
        return [], "Adapters are not loaded yet."
    rows = [
        [i.name, i.source, i.base_model or "?", i.rank, ", ".join(i.target_modules), (i.data_sha256 or "")[:12],
         (i.created_at or "")[:10], i.eval_summary or ""]
        for i in catalog.list_adapters(owner)
    ]  # fmt: skip
    skipped = catalog.problems(owner)
    notes = "\n".join(f"- skipped `{p.name}` ({p.source}): {p.reason}" for p in skipped)
    return rows, notes or "No adapter folders were skipped."


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

    def respond(
        text, chat, history, mode, adapter, system, temperature, top_p, max_new,
        request: gr.Request, profile: gr.OAuthProfile | None,
    ):  # fmt: skip
        chat = list(chat or [])
        if not chat:  # a new conversation (an API caller passing [], or after Clear): no hidden earlier turns
            history = []
        if text and text.strip():
            chat.append({"role": "user", "content": text})
        chat.append({"role": "assistant", "content": ""})
        params = GenerationParams(temperature, top_p, max_new)
        update = None
        try:
            person = who(request, profile)
            for update in service.answer(person.session, text, history, mode, params, system, adapter,
                                         owner=person.owner):  # fmt: skip
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
    # The page's own events; gradio_client users get the stateless /chat of `api.py` instead.
    events = [
        message.submit(respond, inputs, outputs, **PRIVATE, **on_the_model(service)),
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

    def answer_four_ways(
        question, adapter, system, temperature, top_p, max_new, request: gr.Request, profile: gr.OAuthProfile | None
    ):
        params = GenerationParams(temperature, top_p, max_new)
        person = who(request, profile)
        for latest in service.compare(person.session, question, MODES, params, system, adapter, owner=person.owner):
            yield [
                "" if item is None else WARNING + str(item) if isinstance(item, UserInputError) else format_answer(item)
                for item in latest
            ]

    event = compare_btn.click(
        answer_four_ways, [question, shared.adapter, *shared.settings], columns, **PRIVATE, **on_the_model(service)
    )
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)


@dataclass
class KnowledgeView:
    summary: gr.Markdown
    documents: gr.Dataframe


def knowledge_tab(service: ExpertService, jobs: Jobs) -> KnowledgeView:
    summary = gr.Markdown(knowledge_summary(service))
    files = gr.File(file_count="multiple", label="Add documents (.txt .md .pdf .docx .html)", elem_id="doc-files")
    with gr.Row():
        target = gr.Radio([MY_DOCS, SHARED_KB], value=MY_DOCS, label="Add to", elem_id="doc-target", scale=2)
        replace = gr.Checkbox(
            False, label="Replace a document of the same name", elem_id="doc-replace", scale=1,
            info="A replaced shared document stays recoverable by the operator (python -m rag restore).",
        )  # fmt: skip
    add_btn = gr.Button("Add to index", variant="primary", elem_id="add-docs")
    report = gr.Dataframe(
        headers=["File", "Result", "Chunks"], label="Last upload", interactive=False, elem_id="upload-report"
    )
    documents = gr.Dataframe(headers=DOC_HEADERS, label="Documents", interactive=False, wrap=True, elem_id="documents")
    with gr.Row():
        doc_id = gr.Textbox(label="Document ID to delete", scale=3, elem_id="doc-id")
        delete_btn = gr.Button("Delete document", variant="stop", scale=1, elem_id="delete-doc")
        reindex_btn = gr.Button("Re-index everything", scale=1)

    def add_documents(
        paths, target, replace, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()
    ):
        if not paths:
            raise gr.Error("Choose one or more files first.")
        person = who(request, profile)
        job = start_adding(service, jobs, person, paths, target, replace)
        while not job.wait(0.5):  # the job runs on its own worker; this only shows how far it is
            progress(job.fraction, desc=job.message)
        try:
            reports = job.outcome()
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return file_reports(reports), document_rows(service, person), knowledge_summary(service, person), None

    def delete_document(doc, request: gr.Request, profile: gr.OAuthProfile | None):
        if not doc or not str(doc).strip():
            raise gr.Error("Type the ID of the document to delete (first column).")
        person = who(request, profile)
        try:
            need_knowledge(service).delete(str(doc).strip(), allowed=allowed_collections(service, person))
        except UserInputError as exc:
            raise gr.Error(str(exc)) from None
        return document_rows(service, person), knowledge_summary(service, person), ""

    def reindex(request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        person = who(request, profile)
        if not person.may_change_shared(service.settings.shared_kb_writers):
            writers = shared_writers(service.settings.shared_kb_writers)
            raise gr.Error(f"Re-indexing rebuilds the shared knowledge base, which {writers} may change.")
        reports = need_knowledge(service).reindex(progress=lambda f, m: progress(f, desc=m))
        return file_reports(reports), document_rows(service, person), knowledge_summary(service, person)

    # Uploads wait on their job, not on each other: many may wait at once while the workers embed.
    waiting = {"concurrency_id": "documents", "concurrency_limit": 16, **PRIVATE}
    one_writer = {"concurrency_id": "knowledge", "concurrency_limit": 1, **PRIVATE}
    add_btn.click(add_documents, [files, target, replace], [report, documents, summary, files], **waiting)
    delete_btn.click(delete_document, doc_id, [documents, summary, doc_id], **one_writer)
    reindex_btn.click(reindex, None, [report, documents, summary], **one_writer)
    return KnowledgeView(summary, documents)


@dataclass
class AdaptersView:
    table: gr.Dataframe
    notes: gr.Markdown


def adapters_tab(service: ExpertService, shared: Shared) -> AdaptersView:
    notes = gr.Markdown("Adapters appear here as soon as they are written to the store.")
    table = gr.Dataframe(
        headers=ADAPTER_HEADERS, label="Adapters you can use", interactive=False, elem_id="adapter-table"
    )
    refresh = gr.Button("Refresh")
    files = gr.File(
        file_count="multiple", label="Upload adapter_config.json + adapter_model.safetensors, or a .zip",
        elem_id="adapter-files",
    )  # fmt: skip
    name = gr.Textbox(label="Name (optional)", elem_id="adapter-name")
    with gr.Row():
        upload_btn = gr.Button("Upload adapter", variant="primary")
        delete_btn = gr.Button("Delete the chosen upload", variant="stop")
    result = gr.Markdown(elem_id="adapter-result")

    def upload(paths, new_name, chosen, request: gr.Request, profile: gr.OAuthProfile | None):
        person = who(request, profile)
        owner = person.owner
        if not paths:
            raise gr.Error("Choose adapter_config.json and adapter_model.safetensors, or one .zip of them.")
        try:
            info = need_adapters(service).upload(list(paths), owner, new_name or None)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(service, owner), adapter_choices(service, owner, chosen), None
        whose = "you; it stays after a reload" if person.signed_in else "this browser tab"
        message = f"✅ Added {info.label}. It is private to {whose}."
        return message, *adapter_table(service, owner), adapter_choices(service, owner, info.key), None

    def delete(chosen, request: gr.Request, profile: gr.OAuthProfile | None):
        owner = who(request, profile).owner
        if not chosen:
            raise gr.Error("Choose one of your uploaded adapters first.")
        try:
            info = need_adapters(service).delete_upload(chosen, owner)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(service, owner), adapter_choices(service, owner, chosen)
        return f"Deleted {info.name}.", *adapter_table(service, owner), adapter_choices(service, owner)

    def table_for(request: gr.Request, profile: gr.OAuthProfile | None):
        return adapter_table(service, who(request, profile).owner)

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


def evaluate_tab(service: ExpertService, adapters_view: AdaptersView, scorecards: Jobs) -> gr.Dropdown:
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

    def run(
        path, chosen_modes, adapter_name, count, request: gr.Request, profile: gr.OAuthProfile | None,
        progress=gr.Progress(),
    ):  # fmt: skip
        steps = scorecard_steps(service, scorecards, who(request, profile).owner, path, chosen_modes, adapter_name,
                                count)  # fmt: skip
        try:
            with contextlib.closing(steps):  # a cancelled run stops after its current answer; what it finished is kept
                for step in steps:
                    if step.result is None:
                        progress(step.done / step.total, desc=f"{step.done} of {step.total} answers · {step.message}")
                        yield f"Evaluating: {step.done} of {step.total} answers ({step.message}).", gr.skip(), gr.skip()
        except gr.Error:
            raise
        except (UserInputError, QAFileError) as exc:
            yield f"{WARNING}{exc}", gr.skip(), gr.skip()
            return
        except Exception as exc:  # the app keeps serving; the log has the traceback
            log.exception("evaluation failed")
            yield f"{WARNING}The evaluation failed ({type(exc).__name__}); try again.", gr.skip(), gr.skip()
            return
        result = step.result
        card = result.scorecard
        lines = [f"Done: {card.name}." if card.complete else "Stopped; the answers so far are kept."]
        if result.card_note:
            lines.append(result.card_note)
        yield " ".join(lines), card.to_markdown(chart_name=None), str(result.chart_path)

    def table_for(request: gr.Request, profile: gr.OAuthProfile | None):
        return adapter_table(service, who(request, profile).owner)

    event = run_btn.click(
        run, [qa_file, modes, adapter, limit], [status, report, chart],
        concurrency_id="scorecard", concurrency_limit=1, **PRIVATE,
    ).then(table_for, None, [adapters_view.table, adapters_view.notes], **PRIVATE)  # fmt: skip
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)
    return adapter


# -- the page -------------------------------------------------------------------------------------
def oauth_configured() -> bool:
    """Hugging Face sign-in works on a Space (SYSTEM=spaces, as Gradio itself checks) whose README front matter
    has `hf_oauth: true` (the Space then sets OAUTH_CLIENT_ID); elsewhere Gradio's login button would fake a
    user from a local Hugging Face token, which needs the internet."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def build_demo(service: ExpertService, jobs: Jobs | None = None) -> gr.Blocks:
    jobs = jobs or Jobs(workers=2, name="ingest")
    scorecards = Jobs(workers=1, name="scorecard")  # one run at a time (page and API), never on the document workers
    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## Industry-expert chat\nBase model, RAG over your documents, a LoRA adapter, or both.")
        with gr.Row():
            identity_md = gr.Markdown(elem_id="identity")
            if oauth_configured():
                gr.LoginButton(scale=0)
        status_md = gr.Markdown(service.status_line(), elem_id="status")
        timer = gr.Timer(1.0)
        with gr.Tab("Chat"):
            shared, stop_btn = chat_tab(service)
        with gr.Tab("Compare"):
            compare_tab(service, shared, stop_btn)
        with gr.Tab("Knowledge"):
            knowledge = knowledge_tab(service, jobs)
        with gr.Tab("Adapters"):
            adapters_view = adapters_tab(service, shared)
        with gr.Tab("Evaluate") as evaluate:
            eval_adapter = evaluate_tab(service, adapters_view, scorecards)

        public_api(service, jobs, scorecards)

        def status(current_max_new: float, request: gr.Request, profile: gr.OAuthProfile | None):
            # Poll while loading; once ready (or failed) stop polling, fit the max-new-tokens slider to the
            # model's context window, and fill the person's own lists.
            if not service.ready:
                waiting = gr.Slider(), gr.Dropdown(), gr.Dataframe(), gr.skip()
                return service.status_line(), gr.Timer(active=True), *waiting
            limit = service.max_new_tokens_limit
            slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
            person = who(request, profile)
            lists = (adapter_choices(service, person.owner), document_rows(service, person),
                     knowledge_summary(service, person))  # fmt: skip
            return service.status_line(), gr.Timer(active=False), slider, *lists

        status_outputs = [status_md, timer, shared.max_new, shared.adapter, knowledge.documents, knowledge.summary]
        timer.tick(status, inputs=shared.max_new, outputs=status_outputs, **PRIVATE)
        demo.load(lambda: service.start().status_line(), outputs=status_md, **PRIVATE)
        def adapters_for(request: gr.Request, profile: gr.OAuthProfile | None):
            return adapter_table(service, who(request, profile).owner)

        def eval_choices(current: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            return adapter_choices(service, who(request, profile).owner, current)

        def identity_for(request: gr.Request, profile: gr.OAuthProfile | None) -> str:
            return identity_line(who(request, profile), service.settings.shared_kb_writers)

        demo.load(identity_for, None, identity_md, **PRIVATE)
        demo.load(adapters_for, None, [adapters_view.table, adapters_view.notes], **PRIVATE)
        evaluate.select(eval_choices, eval_adapter, eval_adapter, **PRIVATE)
    return demo


def serve(demo: gr.Blocks, settings: Settings, **launch) -> None:
    """Queue and launch with the limits that hold under abuse: no upload larger than the largest file the
    app accepts (Gradio's own upload endpoint took 1 GiB without them), and a bounded queue, beyond which a
    client is told at once that the app is busy."""
    largest_mb = max(settings.max_upload_mb, settings.adapter_max_mb)
    accounts = settings.accounts()
    if accounts:  # local sign-in: Gradio's login page, then `request.username` names the person
        launch.setdefault("auth", accounts)
        launch.setdefault("auth_message", "Sign in to keep your uploads across reloads and restarts.")
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
