"""The Compare tab: one question answered Base / RAG / Fine-tuned / Hybrid at once, side by side."""

from __future__ import annotations

import gradio as gr

from compose import App
from engines.base import GenerationParams
from ui.chat_tab import PLACEHOLDER, Shared
from ui.presentation import MODES, compare_texts, named_adapter
from ui.session import PRIVATE, on_the_model, who


def compare_tab(app: App, shared: Shared, stop_btn: gr.Button) -> None:
    question = gr.Textbox(
        label="One question, answered four ways",
        placeholder=PLACEHOLDER,
        lines=1,  # Enter sends, Shift+Enter makes a new line
        max_lines=8,
        elem_id="compare-question",
    )
    compare_btn = gr.Button("Compare Base / RAG / Fine-tuned / Hybrid", variant="primary")
    columns = []
    with gr.Row():
        for m in MODES:
            with gr.Column(min_width=200):
                gr.Markdown(f"### {m}")
                columns.append(gr.Markdown(elem_id=f"compare-{m.lower()}"))

    def answer_four_ways(
        question, adapter, system, temperature, top_p, max_new, request: gr.Request, profile: gr.OAuthProfile | None
    ):
        params = GenerationParams(temperature, top_p, max_new)
        person = who(request, profile)
        info = named_adapter(app.adapters, adapter, person.owner)  # named in the Fine-tuned and Hybrid notes
        answers = app.service.compare(person.session, question, MODES, params, system, adapter, owner=person.owner)
        for latest in answers:
            yield compare_texts(latest, info)

    inputs = [question, shared.adapter, *shared.settings]
    events = [
        trigger(answer_four_ways, inputs, columns, **PRIVATE, **on_the_model(app))
        for trigger in (question.submit, compare_btn.click)
    ]
    stop_btn.click(None, None, None, cancels=events, **PRIVATE)
