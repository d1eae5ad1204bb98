"""The Adapters tab: the adapters a person may use; upload one (private to them) or delete their own."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from compose import App
from core.errors import UserInputError
from ui.chat_tab import Shared
from ui.guard import discard
from ui.presentation import WARNING, adapter_choices, adapter_table
from ui.session import PRIVATE, need_adapters, who

ADAPTER_HEADERS = ["Adapter", "Source", "Base model", "Rank", "Targets", "Data sha256", "Date", "Eval (scorecard)"]


@dataclass
class AdaptersView:
    table: gr.Dataframe
    notes: gr.Markdown


def table_for(app: App):
    """The event handler that fills the adapter table and its notes for the person asking."""

    def fill(request: gr.Request, profile: gr.OAuthProfile | None):
        return adapter_table(app.adapters, who(request, profile).owner)

    return fill


def adapters_tab(app: App, shared: Shared) -> AdaptersView:
    notes = gr.Markdown("Adapters appear here as soon as they are written to the store.")
    table = gr.Dataframe(
        headers=ADAPTER_HEADERS, label="Adapters you can use", interactive=False, elem_id="adapter-table"
    )
    refresh = gr.Button("Refresh")
    files = gr.File(
        file_count="multiple",
        label="Upload adapter_config.json + adapter_model.safetensors, or a .zip",
        elem_id="adapter-files",
    )
    name = gr.Textbox(label="Name (optional)", elem_id="adapter-name")
    with gr.Row():
        upload_btn = gr.Button("Upload adapter", variant="primary")
        delete_btn = gr.Button("Delete the chosen upload", variant="stop")
    result = gr.Markdown(elem_id="adapter-result")

    def lists(owner: str, chosen: str | None = None) -> tuple:
        return *adapter_table(app.adapters, owner), adapter_choices(app.adapters, owner, chosen)

    def upload(paths, new_name, chosen, request: gr.Request, profile: gr.OAuthProfile | None):
        person = who(request, profile)
        if not paths:
            raise gr.Error("Choose adapter_config.json and adapter_model.safetensors, or one .zip of them.")
        try:
            info = need_adapters(app).upload(list(paths), person.owner, new_name or None)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *lists(person.owner, chosen), None
        finally:  # stored (as a checked copy) or refused: Gradio's copy leaves the disk now
            discard(paths)
        whose = "you; it stays after a reload" if person.signed_in else "this browser tab"
        return f"✅ Added {info.label}. It is private to {whose}.", *lists(person.owner, info.key), None

    def delete(chosen, request: gr.Request, profile: gr.OAuthProfile | None):
        owner = who(request, profile).owner
        if not chosen:
            raise gr.Error("Choose one of your uploaded adapters first.")
        try:
            info = need_adapters(app).delete_upload(chosen, owner)
        except UserInputError as exc:
            return f"{WARNING}{exc}", *lists(owner, chosen)
        return f"Deleted {info.name}.", *lists(owner)

    outputs = [result, table, notes, shared.adapter]
    refresh.click(table_for(app), None, [table, notes], **PRIVATE)
    upload_btn.click(upload, [files, name, shared.adapter], [*outputs, files], **PRIVATE)
    delete_btn.click(delete, shared.adapter, outputs, **PRIVATE)
    return AdaptersView(table, notes)
