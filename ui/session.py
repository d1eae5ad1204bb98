"""Who is asking, and what they may do: the person behind a request, where their uploads go, who may change the
shared knowledge base, and the one sentence they get while a part is not there yet. Shared by the page's tabs
and the public API (`ui/api.py`)."""

from __future__ import annotations

import gradio as gr

from adapters import AdapterCatalog
from compose import App
from core.identity import Identity
from rag import KnowledgeBase, Placement

PRIVATE = {"api_visibility": "private"}
SHARED_KB, MY_DOCS = "Shared knowledge base", "My private documents"


def who(request: gr.Request, profile: gr.OAuthProfile | None = None) -> Identity:
    """The person behind a request: signed in with Hugging Face (OAuth on a Space), with a local
    username and password (`users`), or else their browser session."""
    name = getattr(profile, "username", None) or getattr(request, "username", None)
    return Identity.of(request.session_hash, name)


def identity_line(person: Identity, writers: str) -> str:
    shared = " (you may also add to the shared knowledge base)" if person.may_change_shared(writers) else ""
    if person.signed_in:
        return (
            f"Signed in as **{person.name}**: your documents and adapters are private to you{shared} and "
            "stay after a reload."
        )
    return (
        f"Not signed in: your documents and adapters are private to this browser tab{shared}; a reload starts afresh."
    )


def on_the_model(app: App) -> dict:
    """Queue settings of the events that generate: as many at once as the engine batches together (beyond
    that, Gradio's queue shows people their place)."""
    return {"concurrency_id": "model", "concurrency_limit": app.settings.engine.engine_batch}


def _missing(app: App, what: str) -> gr.Error:
    if not app.service.ready:
        return gr.Error(f"{what} is not ready yet; the model is still loading, try again in a moment.")
    return gr.Error(app.service.status_line())  # loaded without it: the status line says why


def need_knowledge(app: App) -> KnowledgeBase:
    """The document index, or gr.Error (one sentence) while it is loading or when it could not be."""
    if app.knowledge is None:
        raise _missing(app, "The document index")
    return app.knowledge


def need_adapters(app: App) -> AdapterCatalog:
    """The adapter catalog, or gr.Error (one sentence) while it is loading or when it could not be."""
    if app.adapters is None:
        raise _missing(app, "Adapters")
    return app.adapters


def shared_writers(writers: str) -> str:
    """Who may change the shared knowledge base, in words."""
    return {"nobody": "only the operator (with python -m rag)", "signed_in": "only signed-in people"}.get(
        writers, "anyone"
    )


def shared_refusal(writers: str) -> str:
    who_may = shared_writers(writers)
    return f"The shared knowledge base can be changed by {who_may}; add your files to {MY_DOCS} instead."


def placement_for(app: App, person: Identity, target: str | None, replace: bool) -> Placement:
    """Where `person`'s upload goes: the shared knowledge base only if they chose it and the operator's
    `shared_kb_writers` lets them; else their private collection. Raises gr.Error (one sentence)."""
    writers = app.settings.access.shared_kb_writers
    if target == SHARED_KB:
        if not person.may_change_shared(writers):
            raise gr.Error(shared_refusal(writers))
        return Placement(None, person.tag, bool(replace))
    return Placement(person.tag, person.tag, bool(replace))


def allowed_collections(app: App, person: Identity) -> set[str | None]:
    """The collections `person` may delete from: their own, and the shared one if the operator allows."""
    return {person.tag} | ({None} if person.may_change_shared(app.settings.access.shared_kb_writers) else set())
