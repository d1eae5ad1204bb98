"""The Chat tab: one conversation, in the mode the person picks, streamed, with its sources below."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gradio as gr

from answer.types import Mode
from compose import App
from core.errors import UserInputError
from engines.base import GenerationParams
from ui.presentation import MODES, WARNING, format_answer, source_rows
from ui.session import PRIVATE, on_the_model, who

log = logging.getLogger(__name__)

MODE_HELP = (
    "Base: the model alone. RAG: answers from your documents, with citations. "
    "Fine-tuned: the model with a LoRA adapter. Hybrid: documents and adapter together."
)
SOURCE_HEADERS = ["#", "File", "Location", "Score", "Passage"]


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


def chat_tab(app: App) -> tuple[Shared, gr.Button]:
    service, a = app.service, app.settings.answer
    model_history = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                height=460, label="Chat", elem_id="chat", buttons=["copy"], group_consecutive_messages=False
            )
            message = gr.Textbox(
                placeholder="Ask a question and press Enter",
                show_label=False,
                lines=2,
                max_lines=8,
                elem_id="message",
                submit_btn=False,
            )
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="send")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                clear = gr.Button("Clear", elem_id="clear")
        with gr.Column(scale=1):
            mode = gr.Radio(MODES, value=Mode.BASE.value, label="Mode", elem_id="mode", info=MODE_HELP)
            adapter = gr.Dropdown([], label="Adapter (Fine-tuned, Hybrid)", elem_id="adapter", allow_custom_value=True)
            with gr.Accordion("Generation settings", open=False):
                system = gr.Textbox(a.system_prompt, label="System prompt", lines=3)
                temperature = gr.Slider(
                    0.0,
                    2.0,
                    value=a.temperature,
                    step=0.05,
                    label="Temperature",
                    info="0 = always the most likely token",
                )
                top_p = gr.Slider(0.05, 1.0, value=a.top_p, step=0.05, label="Top-p")
                max_new = gr.Slider(
                    1,
                    service.max_new_tokens_limit,
                    value=service.default_params().max_new_tokens,
                    step=1,
                    label="Max new tokens",
                )
    sources = gr.Dataframe(
        headers=SOURCE_HEADERS, label="Sources of the last answer", interactive=False, wrap=True, elem_id="sources"
    )
    shared = Shared(adapter, system, temperature, top_p, max_new)

    def respond(
        text,
        chat,
        history,
        mode,
        adapter,
        system,
        temperature,
        top_p,
        max_new,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ):
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
            answers = service.answer(person.session, text, history, mode, params, system, adapter, owner=person.owner)
            for update in answers:
                chat[-1] = {"role": "assistant", "content": format_answer(update)}
                yield "", chat, history, source_rows(update)
        except UserInputError as exc:
            chat[-1] = {"role": "assistant", "content": WARNING + str(exc)}
            yield text, chat, history, []  # keep the text so nothing the user typed is lost
            return
        except Exception as exc:  # protects the chat: never a traceback, and the app keeps serving
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
        message.submit(respond, inputs, outputs, **PRIVATE, **on_the_model(app)),
        send.click(respond, inputs, outputs, **PRIVATE, **on_the_model(app)),
    ]

    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash)

    stop_btn.click(stop, None, None, cancels=events, queue=False, **PRIVATE)
    clear.click(lambda: ([], [], "", []), None, [chatbot, model_history, message, sources], queue=False, **PRIVATE)
    return shared, stop_btn
