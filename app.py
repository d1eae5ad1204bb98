"""Gradio UI for the industry-expert chat: layout, event wiring and per-session state only.

Run `python app.py --help` for settings. Everything that thinks lives in `core/`.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out to the internet

import gradio as gr

from core.generation import GenerationParams, UserInputError
from core.pipeline import Mode
from core.service import ExpertService
from core.settings import Settings, SettingsError

MODES = [m.value for m in Mode]
WARNING = "⚠️ "

MODE_HELP = {
    Mode.BASE.value: "The base model alone.",
    Mode.RAG.value: "Answers from your documents, with citations.",
    Mode.FINETUNED.value: "The base model with a LoRA adapter.",
    Mode.HYBRID.value: "Retrieved documents and an adapter together.",
}


def build_demo(service: ExpertService) -> gr.Blocks:
    s = service.settings

    def status(current_max_new: float):
        # Poll while loading; once the model is ready (or failed) stop polling and fit the
        # max-new-tokens slider to the model's context window.
        if not service.ready:
            return service.status_line(), gr.Timer(active=True), gr.Slider()
        limit = service.max_new_tokens_limit
        slider = gr.Slider(maximum=limit, value=min(int(current_max_new), limit))
        return service.status_line(), gr.Timer(active=False), slider

    def respond(
        message: str,
        chat: list,
        model_history: list,
        mode: str,
        system: str,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
        request: gr.Request,
    ):
        chat = list(chat or [])
        if message and message.strip():
            chat.append({"role": "user", "content": message})
        chat.append({"role": "assistant", "content": ""})
        params = GenerationParams(temperature, top_p, max_new_tokens)
        try:
            update = None
            for update in service.answer(request.session_hash, message, model_history, mode, params, system):
                chat[-1] = {"role": "assistant", "content": _format(update)}
                yield "", chat, model_history
        except UserInputError as exc:
            chat[-1] = {"role": "assistant", "content": WARNING + str(exc)}
            yield message, chat, model_history  # keep the text so nothing the user typed is lost
            return
        if update is not None and update.mode == Mode(mode) and update.tokens:
            exchange = [{"role": "user", "content": message.strip()}, {"role": "assistant", "content": update.text}]
            model_history = [*model_history, *exchange]
        yield "", chat, model_history

    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash)

    with gr.Blocks(title="Industry-expert chat", analytics_enabled=False) as demo:
        gr.Markdown("## Industry-expert chat\nAsk the model; choose how it answers with the mode selector.")
        status_md = gr.Markdown(service.status_line(), elem_id="status")
        timer = gr.Timer(1.0)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    height=480, label="Chat", elem_id="chat", buttons=["copy"], group_consecutive_messages=False
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
                mode = gr.Radio(
                    MODES,
                    value=Mode.BASE.value,
                    label="Mode",
                    elem_id="mode",
                    info=" ".join(f"{k}: {v}" for k, v in MODE_HELP.items()),
                )
                with gr.Accordion("Generation settings", open=False):
                    system = gr.Textbox(s.system_prompt, label="System prompt", lines=3)
                    temperature = gr.Slider(
                        0.0,
                        2.0,
                        value=s.temperature,
                        step=0.05,
                        label="Temperature",
                        info="0 = always the most likely token",
                    )
                    top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.05, label="Top-p")
                    max_new = gr.Slider(
                        1,
                        service.max_new_tokens_limit,
                        value=service.default_params().max_new_tokens,
                        step=1,
                        label="Max new tokens",
                    )
        model_history = gr.State([])

        timer.tick(status, inputs=max_new, outputs=[status_md, timer, max_new], api_visibility="private")
        demo.load(lambda: service.start().status_line(), outputs=status_md, api_visibility="private")

        # One public endpoint, /chat, for gradio_client users; the Send button is its private twin.
        inputs = [message, chatbot, model_history, mode, system, temperature, top_p, max_new]
        outputs = [message, chatbot, model_history]
        shared = {"concurrency_id": "model", "concurrency_limit": 1}
        events = [
            message.submit(respond, inputs, outputs, api_name="chat", **shared),
            send.click(respond, inputs, outputs, api_visibility="private", **shared),
        ]
        stop_btn.click(stop, None, None, cancels=events, queue=False, api_visibility="private")
        clear.click(
            lambda: ([], [], ""), None, [chatbot, model_history, message], queue=False, api_visibility="private"
        )
    return demo


def _format(update) -> str:
    text = update.text
    if update.notes:
        text += "\n\n" + "\n".join(f"_{n}_" for n in update.notes)
    return text


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.exit(str(exc))
    service = ExpertService(settings).start()
    demo = build_demo(service)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=settings.host or None,
        server_port=settings.port or None,
        show_error=True,
    )


if __name__ == "__main__":
    main()
