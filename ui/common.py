"""What the page (`app.py`) and its public API (`ui.api`) share: who is asking, where their uploads go,
how an answer is shown, and the queue settings of the events that use the model."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from adapters import AdapterCatalog
from core.identity import Identity
from core.jobs import Job, Jobs
from core.pipeline import AnswerUpdate, Mode
from core.service import ExpertService
from rag import FileReport, KnowledgeBase, Placement
from scorecard import ScorecardResult, evaluate_for_session

MODES = [m.value for m in Mode]
WARNING = "⚠️ "
PRIVATE = {"api_visibility": "private"}
SHARED_KB, MY_DOCS = "Shared knowledge base", "My private documents"


def who(request: gr.Request, profile: gr.OAuthProfile | None = None) -> Identity:
    """The person behind a request: signed in with Hugging Face (OAuth on a Space), with a local
    username and password (`users`), or else their browser session."""
    name = getattr(profile, "username", None) or getattr(request, "username", None)
    return Identity.of(request.session_hash, name)


def on_the_model(service: ExpertService) -> dict:
    """Queue settings of the events that generate: as many at once as the engine batches together (beyond
    that, Gradio's queue shows people their place)."""
    return {"concurrency_id": "model", "concurrency_limit": service.settings.engine_batch}


def knowledge_base(service: ExpertService) -> KnowledgeBase | None:
    return service.knowledge if isinstance(service.knowledge, KnowledgeBase) else None


def adapter_catalog(service: ExpertService) -> AdapterCatalog | None:
    return service.adapters if isinstance(service.adapters, AdapterCatalog) else None


def _missing(service: ExpertService, what: str) -> gr.Error:
    if not service.ready:
        return gr.Error(f"{what} is not ready yet; the model is still loading, try again in a moment.")
    return gr.Error(service.status_line())  # loaded without it: the status line says why


def need_knowledge(service: ExpertService) -> KnowledgeBase:
    """The document index, or gr.Error (one sentence) while it is loading or when it could not be."""
    found = knowledge_base(service)
    if found is None:
        raise _missing(service, "The document index")
    return found


def need_adapters(service: ExpertService) -> AdapterCatalog:
    """The adapter catalog, or gr.Error (one sentence) while it is loading or when it could not be."""
    found = adapter_catalog(service)
    if found is None:
        raise _missing(service, "Adapters")
    return found


UNSUPPORTED_MARK = " ⚠️ *(not in the sources)*"


def format_answer(update: AnswerUpdate) -> str:
    """The model's answer as the chat shows it: unsupported sentences marked, the evidence quoted, the
    sources listed, notes last. Source numbers the answer invents are not shown."""
    text = update.display_text()
    for sentence in update.unsupported if update.done else []:
        shown = update.display_text(sentence)
        if shown and shown in text:
            text = text.replace(shown, shown + UNSUPPORTED_MARK, 1)
    if update.evidence:
        title = "Evidence" if update.evidence_supports else "What the sources say"
        quotes = [f"> [{q.source}] “{q.text}” — {q.file}, {q.location}" for q in update.evidence]
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


def file_reports(reports) -> list[list]:
    return [[r.name, ("✅ " if r.ok else "❌ ") + r.message, r.chunks] for r in reports]


def placement_for(service: ExpertService, person: Identity, target: str | None, replace: bool) -> Placement:
    """Where `person`'s upload goes: the shared knowledge base only if they chose it and the operator's
    `shared_kb_writers` lets them; else their private collection. Raises gr.Error (one sentence)."""
    if target == SHARED_KB:
        if not person.may_change_shared(service.settings.shared_kb_writers):
            raise gr.Error(shared_refusal(service.settings.shared_kb_writers))
        return Placement(None, person.tag, bool(replace))
    return Placement(person.tag, person.tag, bool(replace))


def shared_writers(writers: str) -> str:
    """Who may change the shared knowledge base, in words."""
    return {"nobody": "only the operator (with python -m rag)", "signed_in": "only signed-in people"}.get(
        writers, "anyone"
    )


def shared_refusal(writers: str) -> str:
    who_may = shared_writers(writers)
    return f"The shared knowledge base can be changed by {who_may}; add your files to {MY_DOCS} instead."


def start_adding(
    service: ExpertService, jobs: Jobs, person: Identity, paths: Sequence[str], target: str | None, replace: bool
) -> Job[list[FileReport]]:
    """Start adding `paths` to `person`'s chosen collection on a document worker; return the job at once
    (the caller shows its progress). Raises gr.Error (one sentence) when the index is not ready or the
    shared knowledge base is chosen by someone the operator does not let change it."""
    placement = placement_for(service, person, target, replace)
    kb = need_knowledge(service)
    return jobs.submit("documents", lambda report: kb.add_files([Path(p) for p in paths], report, placement=placement))


@dataclass
class ScorecardStep:
    """How far a scorecard run is; the last step carries its result."""

    done: int = 0
    total: int = 1
    message: str = "Starting"
    result: ScorecardResult | None = None


def scorecard_steps(
    service: ExpertService,
    jobs: Jobs,
    owner: str,
    qa_upload: str | None,
    modes: Sequence[str],
    adapter: str | None,
    limit: int | float | None,
    every_s: float = 0.5,
) -> Iterator[ScorecardStep]:
    """Run `scorecard.evaluate_for_session` for `owner` on `jobs` (the page's Evaluate and the API's
    /scorecard share one worker), yielding its progress every `every_s` seconds and, last, the step with
    the result. Raises gr.Error before starting when the model is not ready or no mode is chosen; the run's
    own errors (UserInputError, QAFileError, ...) come from the last step. Closing the iterator (a cancelled
    event) stops the run after its current answer; what it finished is kept."""
    if not service.ready or service.pipeline is None:
        raise gr.Error(service.status_line())
    if not modes:
        raise gr.Error("Choose at least one mode to evaluate.")
    step, stop = ScorecardStep(), threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        step.done, step.total, step.message = done, max(total, 1), message

    job = jobs.submit("scorecard", lambda _: evaluate_for_session(
        service, owner, qa_upload, modes, adapter or None, limit=int(limit or 0) or None, progress=progress,
        stop=stop))  # fmt: skip
    try:
        while not job.wait(every_s):
            yield step
    finally:
        stop.set()
    step.result = job.outcome()
    yield step


def allowed_collections(service: ExpertService, person: Identity) -> set[str | None]:
    """The collections `person` may delete from: their own, and the shared one if the operator allows."""
    return {person.tag} | ({None} if person.may_change_shared(service.settings.shared_kb_writers) else set())


