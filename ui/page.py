"""The page: the header, the status line, one tab per file (`ui/*_tab.py`) and the public API (`ui/api.py`),
and the events that fill a person's own lists once the model is ready."""

from __future__ import annotations

import os

import gradio as gr

from answer.service import ExpertService
from compose import App
from ui.adapters_tab import adapters_tab, table_for
from ui.api import public_api
from ui.chat_tab import chat_tab
from ui.compare_tab import compare_tab
from ui.evaluate_tab import evaluate_tab
from ui.knowledge_tab import knowledge_tab
from ui.presentation import adapter_choices, document_rows, knowledge_summary
from ui.session import PRIVATE, identity_line, who


def oauth_configured() -> bool:
    """Hugging Face sign-in works on a Space (SYSTEM=spaces, as Gradio itself checks) whose README front matter
    has `hf_oauth: true` (the Space then sets OAUTH_CLIENT_ID); elsewhere Gradio's login button would fake a
    user from a local Hugging Face token, which needs the internet."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def short_status(service: ExpertService) -> str:
    """The line every visitor sees: loading progress, a failure, or what is unavailable; nothing once all is well
    (the engine, model and threads are in "About this model")."""
    if service.error or not service.ready:
        return service.status_line()
    return " ".join(f"Unavailable: {w}" for w in service.warnings)


def build_page(app: App) -> gr.Blocks:
    """The whole page over `app` (which may still be loading: the status line says how far it got)."""
    service = app.service
    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            "## Industry-expert chat\nAnswers from your company's documents (RAG), from a model fine-tuned on them "
            "(a LoRA adapter), or both (Hybrid); Compare shows all four side by side."
        )
        with gr.Row():
            identity_md = gr.Markdown(elem_id="identity")
            if oauth_configured():
                gr.LoginButton(scale=0)
        status_md = gr.Markdown(short_status(service), elem_id="status")
        with gr.Accordion("About this model", open=False):
            about_md = gr.Markdown(service.status_line(), elem_id="about-model")
        timer = gr.Timer(1.0)
        with gr.Tab("Chat"):
            shared, stop_btn, guide = chat_tab(app)
        with gr.Tab("Compare"):
            compare_tab(app, shared, stop_btn)
        with gr.Tab("Knowledge"):
            knowledge = knowledge_tab(app)
        with gr.Tab("Adapters"):
            adapters_view = adapters_tab(app, shared)
        with gr.Tab("Evaluate") as evaluate:
            eval_adapter = evaluate_tab(app, adapters_view)

        public_api(app)

        def status(current_max_new: float, request: gr.Request, profile: gr.OAuthProfile | None):
            # Poll while loading; once ready (or failed) stop polling, fit the max-new-tokens slider to the
            # model's context window, and fill the person's own lists.
            if not service.ready:
                waiting = (gr.skip(),) * (4 + len(guide.outputs))
                return short_status(service), service.status_line(), gr.Timer(active=True), *waiting
            limit = service.max_new_tokens_limit
            slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
            person = who(request, profile)
            lists = (
                adapter_choices(app.adapters, person.owner),
                document_rows(app.knowledge, person),
                knowledge_summary(app.knowledge, person),
            )
            ready = short_status(service), service.status_line(), gr.Timer(active=False)
            return *ready, slider, *lists, *guide.fill(app, person)

        def eval_choices(current: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            return adapter_choices(app.adapters, who(request, profile).owner, current)

        def identity_for(request: gr.Request, profile: gr.OAuthProfile | None) -> str:
            return identity_line(who(request, profile), app.settings.access.shared_kb_writers)

        status_outputs = [status_md, about_md, timer, shared.max_new, shared.adapter]
        status_outputs += [knowledge.documents, knowledge.summary, *guide.outputs]
        timer.tick(status, inputs=shared.max_new, outputs=status_outputs, **PRIVATE)
        page.load(lambda: short_status(app.start().service), outputs=status_md, **PRIVATE)
        page.load(identity_for, None, identity_md, **PRIVATE)
        page.load(table_for(app), None, [adapters_view.table, adapters_view.notes], **PRIVATE)
        evaluate.select(eval_choices, eval_adapter, eval_adapter, **PRIVATE)
    return page
