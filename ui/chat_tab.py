"""The Chat tab: a first-visit guide (what the documents cover, example questions to click), one conversation in
the mode the scorecard recommends or the one the person picks, streamed, with its sources below.

How the guide is drawn from what is loaded:
- **What the documents cover**: the names and counts of the documents this person sees, from the index.
- **Example questions**: when the index holds shipped sample documents, the first answerable question per
  language of the sample's dev set (`sample_kb/dev_qa.jsonl`) whose source is in the index; otherwise one
  question per document made from its first section heading below the title (or from its file name when the
  format has no headings), newest documents first.
- **The mode it opens in**: the one with the highest key-fact recall on the default adapter's card
  (`evaluation.modes`, written by `python -m scorecard`) among the modes this person can use; RAG when there is
  no usable adapter or no figures, Base when there are no documents.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePath

import gradio as gr

from adapters.cards import Evaluation
from answer.types import Mode
from compose import App
from core.errors import UserInputError
from core.identity import Identity
from engines.base import GenerationParams
from ui.presentation import (
    MODES,
    WARNING,
    default_adapter,
    format_answer,
    inert,
    passage_text,
    source_rows,
    tagged,
)
from ui.session import PRIVATE, on_the_model, who

log = logging.getLogger(__name__)

MODE_HELP = (
    "Base: the model alone. RAG: answers from your documents, with citations. "
    "Fine-tuned: the model with a LoRA adapter. Hybrid: documents and adapter together."
)
SOURCE_HEADERS = ["#", "Relevance", "File", "Location", "Passage"]
EXAMPLES_SHOWN = 6
NAMES_SHOWN = 8
PLACEHOLDER = "Ask a question and press Enter (Shift+Enter for a new line)"


def recommended_mode(app: App, person: Identity) -> tuple[str, str]:
    """The mode the page opens in for `person`, and one line saying why (figures from the adapter's card)."""
    documents = app.knowledge.documents_for(person.tag) if app.knowledge else []
    if not documents:
        return Mode.BASE.value, "Base: there are no documents yet; add some in the Knowledge tab to answer from them."
    adapter = default_adapter(app.adapters, person.owner)
    usable = [Mode.BASE, Mode.RAG, Mode.FINETUNED, Mode.HYBRID] if adapter else [Mode.BASE, Mode.RAG]
    evaluation = adapter.card.evaluation if adapter else None
    key_facts = {m: _key_facts(evaluation, m) for m in usable}
    figures = {m: float(f["value"]) for m, f in key_facts.items() if isinstance(f.get("value"), (int, float))}
    if not figures or max(figures.values()) <= 0:
        why = "no adapter is usable" if adapter is None else f"the adapter {inert(adapter.name)!r} has no scorecard yet"
        return Mode.RAG.value, f"RAG: answers from the documents, with citations ({why})."
    best = max(figures, key=lambda m: (figures[m], m.uses_documents, m.uses_adapter))
    others = ", ".join(f"{m.value} {figures[m]:.0%}" for m in sorted(figures, key=lambda m: -figures[m]) if m != best)
    counted = key_facts[best].get("n")
    asked = f"the {counted} answerable questions" if isinstance(counted, int) else "the questions"
    qa_file = inert(evaluation.qa_file or "its QA file")
    return best.value, (
        f"{best.value} answered {figures[best]:.0%} of {asked} in {qa_file} with every key fact"
        + (f", {others}" if others else "")
        + f" (scorecard of the adapter {inert(adapter.name)!r})."
    )


def _key_facts(evaluation: Evaluation | None, mode: Mode) -> dict:
    """The card's key-fact recall of `mode` ({"value": 0.55, "n": 101}), or {} when it has none."""
    figure = ((evaluation.modes if evaluation else {}).get(mode.value) or {}).get("key_facts_all")
    return figure if isinstance(figure, dict) else {}


def coverage(app: App, person: Identity) -> str:
    """One sentence on what the documents this person sees are, from the index."""
    if app.knowledge is None:
        return "The documents are still loading."
    documents = app.knowledge.documents_for(person.tag)
    if not documents:
        return "There are no documents yet: add some in the Knowledge tab, then ask about them."
    mine = sum(1 for d in documents if not d.shared)
    names = ", ".join(inert(d.name) for d in documents[:NAMES_SHOWN])
    more = f" and {len(documents) - NAMES_SHOWN} more" if len(documents) > NAMES_SHOWN else ""
    whose = f"{len(documents) - mine} shared" + (f" and {mine} of your own" if mine else "")
    passages = sum(d.chunks for d in documents)
    return f"The documents ({whose}, {passages} passages): {names}{more}. Ask about them, or click an example."


def example_questions(app: App, person: Identity) -> list[str]:
    """What the first-visit guide offers to click (see the module's docstring for how they are chosen)."""
    if app.knowledge is None:
        return []
    documents = app.knowledge.documents_for(person.tag)
    names = {d.name for d in documents}
    sample = sample_questions(app.sample_docs, names)
    if sample:
        return sample
    headings = app.knowledge.headings(person.tag)
    return [_about(d.name, headings.get(d.doc_id, [])) for d in documents[:EXAMPLES_SHOWN]]


def sample_questions(sample_docs: Path | None, names: set[str]) -> list[str]:
    """One answerable question per language of the sample's dev set whose source is in `names`: the ones
    `sample_kb/pick_examples.py` chose from a dev scorecard run (answered with every key fact, citing their
    source) where it chose one, else the first in the file."""
    folder = sample_docs.parent if sample_docs else None
    if folder is None or not (folder / "dev_qa.jsonl").is_file():
        return []
    guide = folder / "guide_examples.json"
    picked = {e["id"] for e in json.loads(guide.read_text())["examples"]} if guide.is_file() else set()
    rows = [json.loads(line) for line in (folder / "dev_qa.jsonl").read_text(encoding="utf-8").splitlines() if line]
    usable = [q for q in rows if q.get("answerable", True) and q.get("source") in names]
    chosen: dict[str, str] = {}
    for item in [q for q in usable if q.get("id") in picked] + usable:  # the picked ones first, then the file's
        chosen.setdefault(item.get("language", "?"), item["question"])
    ordered = sorted(chosen, key=lambda lang: lang != "en")  # English first, then the file's order
    return [chosen[lang] for lang in ordered][:EXAMPLES_SHOWN]


def _about(name: str, headings: list[str]) -> str:
    """A question about one document: its first section below the title, or the document itself."""
    title = PurePath(name).stem.replace("_", " ").replace("-", " ")
    nested = [[p.strip() for p in h.split(">") if p.strip()] for h in headings]
    below = next((parts for parts in nested if len(parts) > 1), None)
    if below:
        return f"What does {below[0]} say about {below[-1]}?"
    if headings:  # flat headings: the first is often the title
        return f"What does {title} say about {headings[1] if len(headings) > 1 else headings[0]}?"
    return f"What is {title} about?"


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


@dataclass
class Guide:
    """The first-visit guide's components, filled for each person once the app is ready (`fill`)."""

    text: gr.Markdown
    examples: gr.Examples
    mode: gr.Radio
    mode_note: gr.Markdown

    @property
    def outputs(self) -> list:
        return [self.text, self.examples.dataset, self.mode, self.mode_note]

    @staticmethod
    def fill(app: App, person: Identity) -> tuple:
        """Updates for `outputs`: what the documents cover, the examples, and the recommended mode with why."""
        questions = example_questions(app, person)
        mode, why = recommended_mode(app, person)
        samples = gr.Dataset(samples=[[q] for q in questions], visible=bool(questions))
        return coverage(app, person), samples, gr.Radio(value=mode), why


def chat_tab(app: App) -> tuple[Shared, gr.Button, Guide]:
    service, a = app.service, app.settings.answer
    model_history = gr.State([])
    passages = gr.State([])  # the last answer's sources, whole, for the passage viewer
    with gr.Row():
        with gr.Column(scale=3):
            guide_md = gr.Markdown("The documents are still loading.", elem_id="guide")
            chatbot = gr.Chatbot(
                height=420, label="Chat", elem_id="chat", buttons=["copy"], group_consecutive_messages=False
            )
            message = gr.Textbox(
                placeholder=PLACEHOLDER,
                show_label=False,
                lines=1,  # Enter sends, Shift+Enter makes a new line (Gradio's rule for one-line boxes)
                max_lines=8,
                elem_id="message",
                submit_btn=False,
            )
            # Filled from the loaded documents once ready; until then the sample's own questions, if shipped.
            first = sample_questions(app.sample_docs, _files(app.sample_docs)) or ["What do the documents cover?"]
            examples = gr.Examples(
                [[q] for q in first],
                inputs=[message],
                label="Examples: click one, then press Enter",
                examples_per_page=EXAMPLES_SHOWN,
                elem_id="examples",
                api_visibility="private",
            )
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="send")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                clear = gr.Button("Clear", elem_id="clear")
        with gr.Column(scale=1):
            mode = gr.Radio(MODES, value=Mode.RAG.value, label="Mode", elem_id="mode", info=MODE_HELP)
            mode_note = gr.Markdown(elem_id="mode-note")
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
        headers=SOURCE_HEADERS,
        label="Sources of the last answer (click a row to read its whole passage)",
        interactive=False,
        wrap=True,
        column_widths=["5%", "13%", "17%", "20%", "45%"],
        elem_id="sources",
    )
    passage = gr.Textbox(label="Passage", lines=4, max_lines=20, interactive=False, visible=False, elem_id="passage")
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
                yield "", chat, history, source_rows(update), []
        except UserInputError as exc:
            chat[-1] = {"role": "assistant", "content": WARNING + inert(str(exc))}
            yield text, chat, history, [], []  # keep the text so nothing the user typed is lost
            return
        except Exception as exc:  # protects the chat: never a traceback, and the app keeps serving
            log.exception("answer failed")
            chat[-1] = {"role": "assistant", "content": f"{WARNING}Answering failed ({type(exc).__name__}); try again."}
            yield text, chat, history, [], []
            return
        if update is not None and update.tokens:
            exchange = tagged(text.strip(), update)
            history = [*history, *exchange]
        whole = [passage_text(update, i) for i in range(1, len(update.sources) + 1)] if update else []
        yield "", chat, history, source_rows(update), whole

    def show_passage(whole: list[str], event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        text = whole[row] if isinstance(row, int) and 0 <= row < len(whole) else ""
        return gr.Textbox(value=text, visible=bool(text))

    inputs = [message, chatbot, model_history, mode, adapter, *shared.settings]
    outputs = [message, chatbot, model_history, sources, passages]

    # The page's own events; gradio_client users get the stateless /chat of `api.py` instead.
    def hide_passage():
        return gr.Textbox(value="", visible=False)

    events = [
        trigger(hide_passage, None, passage, queue=False, **PRIVATE).then(
            respond, inputs, outputs, **PRIVATE, **on_the_model(app)
        )
        for trigger in (message.submit, send.click)
    ]
    sources.select(show_passage, passages, passage, queue=False, **PRIVATE)

    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash)

    stop_btn.click(stop, None, None, cancels=events, queue=False, **PRIVATE)
    clear.click(lambda: ([], [], "", [], []), None, [chatbot, model_history, message, sources, passages], **PRIVATE)
    clear.click(hide_passage, None, passage, queue=False, **PRIVATE)
    return shared, stop_btn, Guide(guide_md, examples, mode, mode_note)


def _files(folder: Path | None) -> set[str]:
    return {f.name for f in folder.rglob("*") if f.is_file()} if folder and folder.is_dir() else set()
