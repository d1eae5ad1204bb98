"""How an answer and the app's lists are shown: the chat's Markdown, table rows, one-line summaries.

The answer's data (`answer.types.AnswerUpdate`) holds the model's own text; what a reader sees of it is made
here: a "[n]" the model put on a sentence that source n does not support moves to the source that does,
markers that name no retrieved source go, unsupported sentences are marked, the evidence is quoted and the
sources listed.
"""

from __future__ import annotations

import re

import gradio as gr

from adapters import AdapterCatalog
from answer.types import AnswerUpdate, Mode
from core.identity import Identity
from rag import KnowledgeBase

MODES = [m.value for m in Mode]
WARNING = "⚠️ "
UNSUPPORTED_MARK = " ⚠️ *(not in the sources)*"
CITATION = re.compile(r"\[(\d+)\]")


def printed_citations(update: AnswerUpdate) -> list[int]:
    """The "[n]" numbers the model wrote that name a retrieved source, in order (not proof of support)."""
    seen: list[int] = []
    for match in CITATION.finditer(update.text):
        number = int(match.group(1))
        if 1 <= number <= len(update.sources) and number not in seen:
            seen.append(number)
    return seen


def display_text(update: AnswerUpdate, text: str | None = None) -> str:
    """The model's text (or a piece of it) as the reader sees it: a "[n]" the model put on a sentence that source
    n does not support moves to the source that does; markers that name no retrieved source go."""
    text = update.text if text is None else text
    for judged in update.support:
        marks = {int(m) for m in CITATION.findall(judged.sentence)}
        if not (judged.supported and judged.source and marks) or marks & set(judged.sources or (judged.source,)):
            continue
        text = text.replace(judged.sentence, _marks_moved(judged.sentence, judged.source))
    return CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(update.sources) else "", text)


def _marks_moved(sentence: str, source: int) -> str:
    """The sentence with its first citation marker naming `source` and any others removed."""
    markers = iter(range(len(CITATION.findall(sentence))))
    return CITATION.sub(lambda m: f"[{source}]" if next(markers) == 0 else "", sentence)


def format_answer(update: AnswerUpdate) -> str:
    """The model's answer as the chat shows it: unsupported sentences marked, the evidence quoted, the
    sources listed, notes last. Source numbers the answer invents are not shown."""
    text = display_text(update)
    for sentence in update.unsupported if update.done else []:
        shown = display_text(update, sentence)
        if shown and shown in text:
            text = text.replace(shown, shown + UNSUPPORTED_MARK, 1)
    # a quoted answer ("The documents say: …") already shows its sentence; the Sources line names its place
    evidence = [q for q in update.evidence if update.status != "quoted" or q.text not in update.text]
    if evidence:
        title = "Evidence" if update.evidence_supports else "What the sources say"
        quotes = [f"> [{q.source}] “{q.text}” — {q.file}, {q.location}" for q in evidence]
        text += f"\n\n**{title}:**\n" + "\n".join(quotes)
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


def file_reports(reports) -> list[list]:
    return [[r.name, ("✅ " if r.ok else "❌ ") + r.message, r.chunks] for r in reports]


def document_rows(kb: KnowledgeBase | None, person: Identity):
    if kb is None:
        return gr.Dataframe()
    rows = [
        [d.doc_id, d.name, "shared" if d.shared else "yours (private)", d.chunks, d.added_date]
        for d in kb.documents_for(person.tag)
    ]
    return gr.Dataframe(value=rows)


def knowledge_summary(kb: KnowledgeBase | None, person: Identity | None = None) -> str:
    if kb is None:
        return "The document index is not loaded yet."
    st = kb.stats()
    docs = kb.documents_for(person.tag if person else None)
    mine = sum(1 for d in docs if not d.shared)
    return (
        f"{len(docs) - mine} shared documents"
        + (f" and {mine} of your own" if mine else "")
        + f"; embeddings `{st.embed_model}` ({st.dim} dims), fusion `{st.fusion}`, last change "
        f"{st.updated_at or 'never'}."
    )


def adapter_choices(catalog: AdapterCatalog | None, owner: str, value: str | None = None):
    if catalog is None:
        return gr.Dropdown(choices=[], value=None)
    choices = [(i.label, i.key) for i in catalog.list_adapters(owner)]
    keys = [k for _, k in choices]
    return gr.Dropdown(choices=choices, value=value if value in keys else (keys[0] if keys else None))


def adapter_table(catalog: AdapterCatalog | None, owner: str) -> tuple[list[list], str]:
    if catalog is None:
        return [], "Adapters are not loaded yet."
    rows = [
        [
            i.name,
            i.source,
            i.base_model or "?",
            i.rank,
            ", ".join(i.target_modules),
            (i.data_sha256 or "")[:12],
            (i.created_at or "")[:10],
            i.eval_summary or "",
        ]
        for i in catalog.list_adapters(owner)
    ]
    skipped = catalog.problems(owner)
    notes = "\n".join(f"- skipped `{p.name}` ({p.source}): {p.reason}" for p in skipped)
    return rows, notes or "No adapter folders were skipped."
