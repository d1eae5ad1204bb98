"""The Compare tab: one question answered Base / RAG / Fine-tuned / Hybrid at once, side by side."""

from __future__ import annotations

import gradio as gr

from compose import App
from core.errors import UserInputError
from engines.base import GenerationParams
from ui.chat_tab import Shared
from ui.presentation import MODES, WARNING, format_answer
from ui.session import PRIVATE, on_the_model, who


def compare_tab(app: App, shared: Shared, stop_btn: gr.Button) -> None:
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
        answers = app.service.compare(person.session, question, MODES, params, system, adapter, owner=person.owner)
        for latest in answers:
            yield [
                "" if item is None else WARNING + str(item) if isinstance(item, UserInputError) else format_answer(item)
                for item in latest
            ]

    event = compare_btn.click(
        answer_four_ways, [question, shared.adapter, *shared.settings], columns, **PRIVATE, **on_the_model(app)
    )
    stop_btn.click(None, None, None, cancels=[event], **PRIVATE)
