"""Gradio UI for the industry-expert chat: layout, event wiring and per-session state only.

Run `python app.py --help` for settings. Everything that thinks lives in `core/`, `rag/` and
`adapters/`; this file composes them and formats their results.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out to the internet
# Idle OpenMP threads sleep instead of spinning: generation and embedding run on several threads
# of this process, and spinning teams starve each other on a small CPU (bench/bench_streaming.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr

from adapters.attach import attach_adapters
from core.generation import GenerationParams, UserInputError
from core.pipeline import AnswerUpdate, Mode
from core.service import ExpertService
from core.settings import Settings, SettingsError
from rag import KnowledgeBase, RagError
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


# -- composition: the parts attached once the model is loaded ------------------------------------
def build_service(settings: Settings) -> ExpertService:
    return ExpertService(settings, attachments=[knowledge_attachment(SAMPLE_DOCS), attach_adapters])


# -- formatting ---------------------------------------------------------------------------------
def format_answer(update: AnswerUpdate) -> str:
    text = update.text
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


def build_demo(service: ExpertService) -> gr.Blocks:
    s = service.settings

    # -- status -----------------------------------------------------------------------------------
    def status(current_max_new: float, request: gr.Request):
        # Poll while loading; once ready (or failed) stop polling, fit the max-new-tokens slider to
        # the model's context window, and fill the per-session lists.
        if not service.ready:
            return service.status_line(), gr.Timer(active=True), gr.Slider(), gr.Dropdown(), gr.Dataframe(), gr.skip()
        limit = service.max_new_tokens_limit
        slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
        lists = adapter_choices(request), document_rows(), knowledge_summary()
        return service.status_line(), gr.Timer(active=False), slider, *lists

    # -- chat -------------------------------------------------------------------------------------
    def respond(message, chat, model_history, mode, adapter, system, temperature, top_p, max_new, request: gr.Request):
        chat = list(chat or [])
        if message and message.strip():
            chat.append({"role": "user", "content": message})
        chat.append({"role": "assistant", "content": ""})
        params = GenerationParams(temperature, top_p, max_new)
        update = None
        try:
            for update in service.answer(request.session_hash, message, model_history, mode, params, system, adapter):
                chat[-1] = {"role": "assistant", "content": format_answer(update)}
                yield "", chat, model_history, source_rows(update)
        except UserInputError as exc:
            chat[-1] = {"role": "assistant", "content": WARNING + str(exc)}
            yield message, chat, model_history, []  # keep the text so nothing the user typed is lost
            return
        except Exception as exc:  # never a traceback in the chat; the app keeps serving
            log.exception("answer failed")
            chat[-1] = {"role": "assistant", "content": f"{WARNING}Answering failed ({type(exc).__name__}); try again."}
            yield message, chat, model_history, []
            return
        if update is not None and update.tokens:
            exchange = [{"role": "user", "content": message.strip()}, {"role": "assistant", "content": update.text}]
            model_history = [*model_history, *exchange]
        yield "", chat, model_history, source_rows(update)

    def compare(question, adapter, system, temperature, top_p, max_new, request: gr.Request):
        params = GenerationParams(temperature, top_p, max_new)
        answers = [""] * len(MODES)
        for i, mode in enumerate(MODES):
            try:
                for update in service.answer(request.session_hash, question, [], mode, params, system, adapter):
                    answers[i] = format_answer(update)
                    yield answers
            except UserInputError as exc:
                answers[i] = WARNING + str(exc)
                yield answers

    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash)

    # -- knowledge --------------------------------------------------------------------------------
    def knowledge() -> KnowledgeBase:
        if service.knowledge is None:
            raise gr.Error("The document index is not ready yet." if not service.ready else service.status_line())
        return service.knowledge

    def document_rows():
        if service.knowledge is None:
            return gr.Dataframe()
        docs = service.knowledge.list_documents()
        return gr.Dataframe(value=[[d.doc_id, d.name, d.chunks, d.added_date] for d in docs])

    def knowledge_summary() -> str:
        if service.knowledge is None:
            return "The document index is not loaded yet."
        st = service.knowledge.stats()
        return (
            f"{st.documents} documents, {st.chunks} chunks, embeddings `{st.embed_model}` ({st.dim} dims), "
            f"fusion `{st.fusion}`, last change {st.updated_at or 'never'}."
        )

    def add_documents(files, progress=gr.Progress()):
        if not files:
            raise gr.Error("Choose one or more files first.")
        kb = knowledge()
        reports = kb.add_files([Path(f) for f in files], progress=lambda f, m: progress(f, desc=m))
        rows = [[r.name, ("✅ " if r.ok else "❌ ") + r.message, r.chunks] for r in reports]
        return rows, document_rows(), knowledge_summary(), None

    def delete_document(doc_id):
        if not doc_id or not str(doc_id).strip():
            raise gr.Error("Type the ID of the document to delete (first column).")
        try:
            knowledge().delete(str(doc_id).strip())
        except (RagError, KeyError) as exc:
            raise gr.Error(str(exc).strip("'\"")) from None
        return document_rows(), knowledge_summary(), ""

    def reindex(progress=gr.Progress()):
        reports = knowledge().reindex(progress=lambda f, m: progress(f, desc=m))
        rows = [[r.name, ("✅ " if r.ok else "❌ ") + r.message, r.chunks] for r in reports]
        return rows, document_rows(), knowledge_summary()

    # -- adapters ---------------------------------------------------------------------------------
    def adapter_choices(request: gr.Request, value: str | None = None):
        if service.adapters is None:
            return gr.Dropdown(choices=[], value=None)
        infos = service.adapters.list_adapters(request.session_hash)
        choices = [(i.label, i.key) for i in infos]
        keys = [k for _, k in choices]
        return gr.Dropdown(choices=choices, value=value if value in keys else (keys[0] if keys else None))

    def adapter_table(request: gr.Request):
        if service.adapters is None:
            return [], "Adapters are not loaded yet."
        rows = [
            [
                i.name, i.source, i.base_model or "?", i.rank, ", ".join(i.target_modules),
                (i.data_sha256 or "")[:12], (i.created_at or "")[:10],
                i.eval_summary or "",
            ]
            for i in service.adapters.list_adapters(request.session_hash)
        ]  # fmt: skip
        skipped = service.adapters.problems(request.session_hash)
        notes = "\n".join(f"- skipped `{p.name}` ({p.source}): {p.reason}" for p in skipped)
        return rows, notes or "No adapter folders were skipped."

    def upload_adapter(files, name, chosen, request: gr.Request):
        if service.adapters is None:
            raise gr.Error("Adapters are not loaded yet.")
        if not files:
            raise gr.Error("Choose adapter_config.json and adapter_model.safetensors, or one .zip of them.")
        try:
            info = service.adapters.upload(list(files), request.session_hash, name or None)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(request), adapter_choices(request, chosen), None
        message = f"✅ Added {info.label}. It is private to this browser session."
        return message, *adapter_table(request), adapter_choices(request, info.key), None

    def delete_adapter(chosen, request: gr.Request):
        if service.adapters is None or not chosen:
            raise gr.Error("Choose one of your uploaded adapters first.")
        try:
            info = service.adapters.resolve(chosen, request.session_hash)
            service.adapters.delete_upload(info.key, request.session_hash)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *adapter_table(request), adapter_choices(request, chosen)
        return f"Deleted {info.name}.", *adapter_table(request), adapter_choices(request)

    # -- evaluate -------------------------------------------------------------------------------------
    def evaluation_adapters(request: gr.Request, current: str | None):
        return adapter_choices(request, current)

    def run_evaluation(qa_file, modes, adapter_name, limit, request: gr.Request, progress=gr.Progress()):
        if not service.ready or service.pipeline is None:
            raise gr.Error(service.status_line())
        if not modes:
            raise gr.Error("Choose at least one mode to evaluate.")
        state = {"done": 0, "total": 1, "message": "Starting"}
        box: dict = {}
        stop = threading.Event()

        def work() -> None:
            try:
                box["result"] = evaluate_for_session(
                    service, request.session_hash, qa_file, modes, adapter_name, limit=int(limit or 0) or None,
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

    def shipped_qa_summary() -> str:
        try:
            qa = load_qa(SHIPPED_QA)
        except QAFileError as exc:
            return f"{WARNING}{exc}"
        langs = ", ".join(f"{lang} {sum(1 for i in qa.items if i.language == lang)}" for lang in qa.languages)
        no_answer = sum(1 for i in qa.items if not i.answerable)
        return (
            f"Shipped held-out set: {len(qa.items)} questions "
            f"({no_answer} with no answer in the documents; {langs})."
        )

    # -- layout -----------------------------------------------------------------------------------
    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## Industry-expert chat\nBase model, RAG over your documents, a LoRA adapter, or both.")
        status_md = gr.Markdown(service.status_line(), elem_id="status")
        timer = gr.Timer(1.0)
        model_history = gr.State([])
        with gr.Tab("Chat"):
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
                    adapter = gr.Dropdown(
                        [], label="Adapter (Fine-tuned, Hybrid)", elem_id="adapter", allow_custom_value=True
                    )
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
                headers=SOURCE_HEADERS, label="Sources of the last answer", interactive=False, wrap=True,
                elem_id="sources",
            )  # fmt: skip
        with gr.Tab("Compare"):
            question = gr.Textbox(label="One question, answered four ways", lines=2, elem_id="compare-question")
            compare_btn = gr.Button("Compare Base / RAG / Fine-tuned / Hybrid", variant="primary")
            columns = []
            with gr.Row():
                for m in MODES:
                    with gr.Column():
                        gr.Markdown(f"### {m}")
                        columns.append(gr.Markdown(elem_id=f"compare-{m.lower()}"))
        with gr.Tab("Knowledge"):
            kb_summary = gr.Markdown(knowledge_summary())
            doc_files = gr.File(
                file_count="multiple", label="Add documents (.txt .md .pdf .docx .html)", elem_id="doc-files"
            )
            add_btn = gr.Button("Add to index", variant="primary", elem_id="add-docs")
            report = gr.Dataframe(
                headers=["File", "Result", "Chunks"], label="Last upload", interactive=False, elem_id="upload-report"
            )
            documents = gr.Dataframe(
                headers=DOC_HEADERS, label="Documents", interactive=False, wrap=True, elem_id="documents"
            )
            with gr.Row():
                doc_id = gr.Textbox(label="Document ID to delete", scale=3)
                delete_btn = gr.Button("Delete document", variant="stop", scale=1)
                reindex_btn = gr.Button("Re-index everything", scale=1)
        with gr.Tab("Adapters"):
            adapters_md = gr.Markdown("Adapters appear here as soon as they are written to the store.")
            adapters_df = gr.Dataframe(headers=ADAPTER_HEADERS, label="Adapters you can use", interactive=False)
            refresh_adapters = gr.Button("Refresh")
            adapter_files = gr.File(
                file_count="multiple", label="Upload adapter_config.json + adapter_model.safetensors, or a .zip"
            )
            adapter_name = gr.Textbox(label="Name (optional)")
            with gr.Row():
                upload_btn = gr.Button("Upload adapter", variant="primary")
                delete_adapter_btn = gr.Button("Delete the chosen upload", variant="stop")
            upload_result = gr.Markdown()
        with gr.Tab("Evaluate") as evaluate_tab:
            gr.Markdown(EVALUATE_HELP)
            gr.Markdown(shipped_qa_summary())
            with gr.Row():
                eval_file = gr.File(label="QA file (.jsonl), optional", file_types=[".jsonl"], elem_id="eval-file")
                with gr.Column():
                    eval_modes = gr.CheckboxGroup(MODES, value=MODES, label="Modes", elem_id="eval-modes")
                    eval_adapter = gr.Dropdown([], label="Adapter (Fine-tuned, Hybrid)", elem_id="eval-adapter")
                    eval_limit = gr.Number(0, label="Questions (0 = all)", precision=0, minimum=0, elem_id="eval-limit")
            with gr.Row():
                eval_btn = gr.Button("Run scorecard", variant="primary", elem_id="eval-run")
                eval_stop = gr.Button("Stop", variant="stop", elem_id="eval-stop")
            eval_status = gr.Markdown(elem_id="eval-status")
            eval_chart = gr.Image(label="Scorecard", type="filepath", interactive=False, elem_id="eval-chart")
            eval_report = gr.Markdown(elem_id="eval-report")

        # -- wiring -------------------------------------------------------------------------------
        private = {"api_visibility": "private"}
        status_outputs = [status_md, timer, max_new, adapter, documents, kb_summary]
        timer.tick(status, inputs=max_new, outputs=status_outputs, **private)
        demo.load(lambda: service.start().status_line(), outputs=status_md, **private)

        # One public endpoint, /chat, for gradio_client users; the Send button is its private twin.
        inputs = [message, chatbot, model_history, mode, adapter, system, temperature, top_p, max_new]
        outputs = [message, chatbot, model_history, sources]
        shared = {"concurrency_id": "model", "concurrency_limit": 1}
        events = [
            message.submit(respond, inputs, outputs, api_name="chat", **shared),
            send.click(respond, inputs, outputs, **private, **shared),
        ]
        stop_btn.click(stop, None, None, cancels=events, queue=False, **private)
        clear.click(lambda: ([], [], "", []), None, [chatbot, model_history, message, sources], queue=False, **private)
        compare_event = compare_btn.click(
            compare, [question, adapter, system, temperature, top_p, max_new], columns, api_name="compare", **shared
        )
        stop_btn.click(None, None, None, cancels=[compare_event], **private)

        kb_lock = {"concurrency_id": "knowledge", "concurrency_limit": 1, **private}
        add_btn.click(add_documents, doc_files, [report, documents, kb_summary, doc_files], **kb_lock)
        delete_btn.click(delete_document, doc_id, [documents, kb_summary, doc_id], **kb_lock)
        reindex_btn.click(reindex, None, [report, documents, kb_summary], **kb_lock)

        adapter_outputs = [upload_result, adapters_df, adapters_md, adapter]
        refresh_adapters.click(adapter_table, None, [adapters_df, adapters_md], **private)
        upload_btn.click(
            upload_adapter, [adapter_files, adapter_name, adapter], [*adapter_outputs, adapter_files], **private
        )
        delete_adapter_btn.click(delete_adapter, adapter, adapter_outputs, **private)
        demo.load(adapter_table, None, [adapters_df, adapters_md], **private)

        evaluate_tab.select(evaluation_adapters, eval_adapter, eval_adapter, **private)
        eval_event = eval_btn.click(
            run_evaluation, [eval_file, eval_modes, eval_adapter, eval_limit], [eval_status, eval_report, eval_chart],
            concurrency_id="scorecard", concurrency_limit=1, **private,
        ).then(adapter_table, None, [adapters_df, adapters_md], **private)
        eval_stop.click(None, None, None, cancels=[eval_event], **private)
        demo.load(knowledge_summary, None, kb_summary, **private)
    return demo


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.exit(str(exc))
    service = build_service(settings).start()
    demo = build_demo(service)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=settings.host or None, server_port=settings.port or None, show_error=True
    )


if __name__ == "__main__":
    main()
