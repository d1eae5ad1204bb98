"""The Evaluate tab: the scorecard on the shipped held-out set or an uploaded QA file (and, optionally, the person's
own documents in a throwaway index), with progress."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import gradio as gr

from compose import App
from core.errors import UserInputError
from rag.readers import SUPPORTED_EXTENSIONS
from scorecard import SHIPPED_QA, ScorecardResult, evaluate_for_session, load_qa
from ui.adapters_tab import AdaptersView, table_for
from ui.presentation import MODES, WARNING
from ui.session import PRIVATE, who

log = logging.getLogger(__name__)

EVALUATE_HELP = (
    "Runs every question of a keyed QA set through the chat's own answer path in each chosen mode (greedy), "
    "scores only the model's own words, and recommends a mode. Leave the file empty to use the shipped "
    "held-out set. To measure on your own documents, add them with a QA file about them: they are indexed for "
    "this run only and never join the knowledge base. Other people's chats are served between answers. "
    "Finished answers are kept, so a stopped run resumes where it stopped."
)


@dataclass
class ScorecardStep:
    """How far a scorecard run is; the last step carries its result."""

    done: int = 0
    total: int = 1
    message: str = "Starting"
    result: ScorecardResult | None = None


def scorecard_steps(
    app: App,
    owner: str,
    qa_upload: str | None,
    modes: Sequence[str],
    adapter: str | None,
    limit: int | float | None,
    every_s: float = 0.5,
    documents: Sequence[str] = (),
) -> Iterator[ScorecardStep]:
    """Run `scorecard.evaluate_for_session` for `owner` on the app's scorecard worker (the page's Evaluate and
    the API's /scorecard share it), yielding its progress every `every_s` seconds and, last, the step with the
    result. With `documents` (uploaded files), RAG and Hybrid answer from them only, in a throwaway index.
    Raises gr.Error before starting when the model is not ready or no mode is chosen; the run's own
    errors (a UserInputError, such as a bad QA file) come from the last step. Closing the iterator (a cancelled
    event) stops the run after its current answer; what it finished is kept."""
    service = app.service
    if not service.ready or service.engine is None:
        raise gr.Error(service.status_line())
    if not modes:
        raise gr.Error("Choose at least one mode to evaluate.")
    step, stop = ScorecardStep(), threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        step.done, step.total, step.message = done, max(total, 1), message

    def run(_report):
        count = int(limit or 0) or None
        return evaluate_for_session(
            app,
            owner,
            qa_upload,
            modes,
            adapter or None,
            limit=count,
            progress=progress,
            stop=stop,
            documents=documents,
        )

    job = app.scorecards.submit("scorecard", run)
    try:
        while not job.wait(every_s):
            yield step
    finally:
        stop.set()
    step.result = job.outcome()
    yield step


def shipped_qa_summary() -> str:
    try:
        qa = load_qa(SHIPPED_QA)
    except UserInputError as exc:
        return f"{WARNING}{exc}"
    langs = ", ".join(f"{lang} {sum(1 for i in qa.items if i.language == lang)}" for lang in qa.languages)
    no_answer = sum(1 for i in qa.items if not i.answerable)
    return f"Shipped held-out set: {len(qa.items)} questions ({no_answer} with no answer in the documents; {langs})."


def evaluate_tab(app: App, adapters_view: AdaptersView) -> gr.Dropdown:
    gr.Markdown(EVALUATE_HELP)
    gr.Markdown(shipped_qa_summary())
    with gr.Row():
        with gr.Column():
            qa_file = gr.File(label="QA file (.jsonl), optional", file_types=[".jsonl"], elem_id="eval-file")
            docs = gr.File(
                label="Your documents, optional (measured in a throwaway index)",
                file_count="multiple",
                file_types=list(SUPPORTED_EXTENSIONS),
                elem_id="eval-docs",
            )
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
        path,
        documents,
        chosen_modes,
        adapter_name,
        count,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
        progress=gr.Progress(),
    ):
        owner = who(request, profile).owner
        steps = scorecard_steps(app, owner, path, chosen_modes, adapter_name, count, documents=documents or [])
        try:
            with contextlib.closing(steps):  # a cancelled run stops after its current answer; what it finished is kept
                for step in steps:
                    if step.result is None:
                        progress(step.done / step.total, desc=f"{step.done} of {step.total} answers · {step.message}")
                        yield f"Evaluating: {step.done} of {step.total} answers ({step.message}).", gr.skip(), gr.skip()
        except gr.Error:
            raise
        except UserInputError as exc:
            yield f"{WARNING}{exc}", gr.skip(), gr.skip()
            return
        except Exception as exc:  # protects the app: it keeps serving; the log has the traceback
            log.exception("evaluation failed")
            yield f"{WARNING}The evaluation failed ({type(exc).__name__}); try again.", gr.skip(), gr.skip()
            return
        result = step.result
        card = result.scorecard
        lines = [f"Done: {card.name}." if card.complete else "Stopped; the answers so far are kept."]
        if result.card_note:
            lines.append(result.card_note)
        yield " ".join(lines), card.to_markdown(chart_name=None), str(result.chart_path)

    event = run_btn.click(
        run,
        [qa_file, docs, modes, adapter, limit],
        [status, report, chart],
        concurrency_id="scorecard",
        concurrency_limit=1,
        **PRIVATE,
    ).then(table_for(app), None, [adapters_view.table, adapters_view.notes], **PRIVATE)
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)
    return adapter
