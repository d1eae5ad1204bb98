"""How an answer and the app's lists are shown: the chat's Markdown, table rows, one-line summaries.

The answer's data (`answer.types.AnswerUpdate`) holds the model's own text; what a reader sees of it is made
here: a "[n]" the model put on a sentence that source n does not support moves to the source that does,
markers that name no retrieved source go, unsupported sentences are marked, the evidence is quoted and the
sources listed.
"""

from __future__ import annotations

import re
from dataclasses import replace

import gradio as gr

from adapters import AdapterCatalog
from adapters.errors import AdapterError
from adapters.registry import AdapterInfo
from answer.types import AnswerUpdate, Mode
from core.errors import UserInputError
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


def tagged(question: str, update: AnswerUpdate) -> list[dict[str, str]]:
    """One exchange for the conversation's history, tagged with the mode that answered: another mode never
    sees it as its own answer (`answer.prompts.history_for`), so Compare and a mode switch stay honest."""
    mode = update.mode.value
    return [
        {"role": "user", "content": question, "mode": mode},
        {"role": "assistant", "content": update.text, "mode": mode},
    ]


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
    sources listed, notes last. Source numbers the answer invents are not shown. Every piece that comes from a
    document, a file name, an upload or the model goes through `inert`: it shows as text and loads nothing."""
    text = display_text(update)
    for sentence in update.unsupported if update.done else []:
        shown = display_text(update, sentence)
        if shown and shown in text:
            text = text.replace(shown, shown + _MARK_HERE, 1)
    text = inert(text).replace(_MARK_HERE, UNSUPPORTED_MARK)
    # a quoted answer ("The documents say: …") already shows its sentence; the Sources line names its place
    evidence = [q for q in update.evidence if update.status != "quoted" or q.text not in update.text]
    if evidence:
        title = "Evidence" if update.evidence_supports else "What the sources say"
        quotes = [f"> [{q.source}] “{inert(q.text)}” — {inert(q.file)}, {inert(q.location)}" for q in evidence]
        text += f"\n\n**{title}:**\n" + "\n".join(quotes)
    if update.sources:
        cited = set(update.cited)
        refs = [
            f"[{i}] {inert(p.source)}, {inert(p.location)}" + (" (cited)" if i in cited else "")
            for i, p in enumerate(update.sources, 1)
        ]
        text += "\n\n**Sources:** " + " · ".join(refs)
    if update.notes:
        text += "\n\n" + "\n".join(f"_{inert(n)}_" for n in update.notes)
    return text


_MARK_HERE = "\x00unsupported\x00"
_REFERENCE_DEFINITION = re.compile(r"^( {0,3})\[(?=[^\]\n]*\]:)", re.MULTILINE)
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)://|\b(www)\.")


def inert(text: str) -> str:
    """`text` for a Markdown component, shown as the text it is: no raw HTML (`<` is an entity), no image, no
    link (inline, reference or bare URL), so nothing a document, a file name or the model wrote can make a
    reader's browser load or offer anything from outside. Everything else of Markdown (emphasis, lists) stays."""
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = text.replace("![", "!\\[").replace("](", "]\\(").replace("][", "]\\[")
    text = _REFERENCE_DEFINITION.sub(lambda m: m.group(1) + "\\[", text)
    return _AUTOLINK.sub(lambda m: f"{m.group(1)}\\://" if m.group(1) else f"{m.group(2)}\\.", text)


PASSAGE_SHOWN = 240
WEAK_SHARE = 0.75
"""A source whose fused score is under this share of the best one's is a "weak" match: with reciprocal rank
fusion that is, roughly, a passage only one of the two searches (meaning, keywords) ranked high."""


def relevance(update: AnswerUpdate, number: int) -> str:
    """How source `number` (from 1) stands, in words: "best match" (the first), "weak" (well below it, and the
    answer does not rest on it) or "related", and "cited" when the answer's sentences rest on it. The raw fused
    scores stay in the API's `sources` for tools."""
    cited = number in update.cited
    top, score = update.sources[0].score, update.sources[number - 1].score
    weak = not cited and top > 0 and score < WEAK_SHARE * top
    label = "best match" if number == 1 else "weak" if weak else "related"
    return label + (" · cited" if cited else "")


def source_rows(update: AnswerUpdate | None) -> list[list]:
    """The sources table: number, relevance in words, file, place, and the passage's start on one line (the
    whole passage is `passage_text`, shown when a row is clicked)."""
    if update is None:
        return []
    return [
        [i, relevance(update, i), p.source, p.location, _cut(" ".join(p.text.split()), PASSAGE_SHOWN)]
        for i, p in enumerate(update.sources, 1)
    ]


def passage_text(update: AnswerUpdate | None, number: int) -> str:
    """Source `number`'s whole passage, headed by its file and place (plain text)."""
    if update is None or not 1 <= number <= len(update.sources):
        return ""
    p = update.sources[number - 1]
    return f"[{number}] {p.source}, {p.location}\n\n{p.text}"


def _cut(text: str, limit: int) -> str:
    """`text` up to `limit` characters, cut at a word boundary, with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut + " …"


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


def default_adapter(catalog: AdapterCatalog | None, owner: str) -> AdapterInfo | None:
    """The adapter Fine-tuned and Hybrid use when the person names none: the first they may use (their own
    uploads, then trained, published, and the shipped demo adapter), as the page's list preselects it."""
    listed = catalog.list_adapters(owner) if catalog is not None else []
    return listed[0] if listed else None


def named_adapter(catalog: AdapterCatalog | None, name: str | None, owner: str) -> AdapterInfo | None:
    """The adapter `name` as `owner` may use it, to name it beside answers; None when there is none (the
    answers that need it say why themselves)."""
    try:
        return catalog.resolve(name, owner) if catalog is not None and name else None
    except AdapterError:
        return None


def compare_texts(latest: list, adapter: AdapterInfo | None) -> list[str]:
    """Compare's four answers as shown: each formatted, with Fine-tuned and Hybrid naming their adapter in
    the notes, or the sentence that says why that mode could not answer."""
    note = f"Adapter: {adapter.name} ({adapter.source})." if adapter else None
    shown = []
    for item in latest:
        if isinstance(item, UserInputError):
            shown.append(WARNING + inert(str(item)))
        elif isinstance(item, AnswerUpdate):
            named = note and item.mode.uses_adapter and note not in item.notes
            shown.append(format_answer(replace(item, notes=[*item.notes, note]) if named else item))
        else:
            shown.append("")
    return shown


def adapter_choices(catalog: AdapterCatalog | None, owner: str, value: str | None = None):
    if catalog is None:
        return gr.Dropdown(choices=[], value=None)
    choices = [(i.label, i.key) for i in catalog.list_adapters(owner)]
    keys = [k for _, k in choices]  # preselected: keys[0], the `default_adapter` (one scan of the store, not two)
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
