"""The page: the header, the status line, one tab per file (`ui/*_tab.py`) and the public API (`ui/api.py`),
and the events that fill a person's own lists once the model is ready."""

from __future__ import annotations

import os

import gradio as gr

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


def build_page(app: App) -> gr.Blocks:
    """The whole page over `app` (which may still be loading: the status line says how far it got)."""
    service = app.service
    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## Industry-expert chat\nBase model, RAG over your documents, a LoRA adapter, or both.")
        with gr.Row():
            identity_md = gr.Markdown(elem_id="identity")
            if oauth_configured():
                gr.LoginButton(scale=0)
        status_md = gr.Markdown(service.status_line(), elem_id="status")
        timer = gr.Timer(1.0)
        with gr.Tab("Chat"):
            shared, stop_btn = chat_tab(app)
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
                waiting = gr.Slider(), gr.Dropdown(), gr.Dataframe(), gr.skip()
                return service.status_line(), gr.Timer(active=True), *waiting
            limit = service.max_new_tokens_limit
            slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
            person = who(request, profile)
            lists = (
                adapter_choices(app.adapters, person.owner),
                document_rows(app.knowledge, person),
                knowledge_summary(app.knowledge, person),
            )
            return service.status_line(), gr.Timer(active=False), slider, *lists

        def eval_choices(current: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            return adapter_choices(app.adapters, who(request, profile).owner, current)

        def identity_for(request: gr.Request, profile: gr.OAuthProfile | None) -> str:
            return identity_line(who(request, profile), app.settings.access.shared_kb_writers)

        status_outputs = [status_md, timer, shared.max_new, shared.adapter, knowledge.documents, knowledge.summary]
        timer.tick(status, inputs=shared.max_new, outputs=status_outputs, **PRIVATE)
        page.load(lambda: app.start().service.status_line(), outputs=status_md, **PRIVATE)
        page.load(identity_for, None, identity_md, **PRIVATE)
        page.load(table_for(app), None, [adapters_view.table, adapters_view.notes], **PRIVATE)
        evaluate.select(eval_choices, eval_adapter, eval_adapter, **PRIVATE)
    return page
