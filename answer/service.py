"""The one place a request is understood, answered and stopped.

One `ExpertService` per process. `compose.App` builds it and gives it its parts as they load (the engine, then
the document index and the adapter catalog, through the ports `answer.ports.Retriever` and
`answer.ports.AdapterResolver`); until the engine is there, every request gets one sentence saying how far
loading got.

`request()` turns what a user sent (message, history, mode, generation settings, adapter name) into an
`AnswerRequest`: the mode parsed, the message and settings checked, the question's language detected, the
adapter resolved for that user into a checked handle, the retriever chosen, the stale-adapter note decided.
Everything after it (pipeline, engine) receives resolved values and looks nothing up again. Every problem a
user can cause is a `UserInputError` with one sentence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

from adapters.cards import staleness_note
from answer.compare import compare
from answer.pipeline import AnswerPipeline, PromptStyle
from answer.ports import AdapterResolver, CollectionRetriever, Retriever
from answer.prompts import read_input
from answer.types import AnswerRequest, AnswerUpdate, Message, Mode
from core.errors import UserInputError
from core.identity import owner_id
from core.settings import AnswerSettings
from engines.base import Engine, GenerationParams, max_new_tokens_limit

log = logging.getLogger(__name__)


class ExpertService:
    """Answers for everyone, on the one engine; see the module docstring."""

    def __init__(self, settings: AnswerSettings):
        """`settings`: the answer group (the defaults a chat starts from, and how RAG and Hybrid answer)."""
        self.settings = settings
        self.warnings: list[str] = []
        self.knowledge: Retriever | None = None
        self.adapters: AdapterResolver | None = None
        self.progress = 0.0
        self.progress_message = "Waiting to load the model."
        self.error: str | None = None
        self.engine: Engine | None = None
        self.context_window = 0
        self.pipeline: AnswerPipeline | None = None
        self._ready = threading.Event()
        self._stops: dict[str, threading.Event] = {}

    @classmethod
    def over(cls, settings: AnswerSettings, engine: Engine) -> ExpertService:
        """A ready service over an engine loaded elsewhere (tests, benchmarks, another host program); give it
        parts with `use_knowledge` / `use_adapters`."""
        service = cls(settings)
        service.serve(engine)
        service.finish()
        return service

    # -- what compose.App tells it while the app starts ------------------------------------------------------
    def report(self, fraction: float, message: str) -> None:
        """How far starting the app got (the status line, and the sentence a request gets until then). The share
        never goes back: the embedded model's first-start step (10%) comes before the generic "Loading" (5%)."""
        self.progress, self.progress_message = max(self.progress, fraction), message
        log.info("[%3.0f%%] %s", fraction * 100, message)

    def serve(self, engine: Engine) -> None:
        """Answer on `engine` from now on."""
        self.engine = engine
        self.context_window = engine.context_window  # fixed for an engine's life
        self.pipeline = AnswerPipeline(engine, PromptStyle.from_settings(self.settings))

    def use_knowledge(self, retriever: Retriever) -> None:
        """Search `retriever` (e.g. `rag.KnowledgeBase`) for RAG and Hybrid."""
        self.knowledge = retriever

    def use_adapters(self, catalog: AdapterResolver) -> None:
        """Resolve adapter names through `catalog` (e.g. `adapters.AdapterCatalog`) for Fine-tuned and Hybrid."""
        self.adapters = catalog

    def fail(self, message: str) -> None:
        """The model could not be loaded: every request gets `message`."""
        self.error = message
        self._ready.set()

    def finish(self) -> None:
        """Every part that could load has loaded."""
        self.report(1.0, "Ready.")
        self._ready.set()

    # -- state -------------------------------------------------------------------------------------------------
    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the model and every part are loaded (or failed); whether the model is usable."""
        self._ready.wait(timeout)
        return self.engine is not None and self.ready

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def status_line(self) -> str:
        if self.error:
            return f"Model failed to load: {self.error}"
        if not self.ready or self.engine is None:
            return f"Starting: {self.progress:.0%}. {self.progress_message}"
        parts = [f"Model: {self.engine.loaded.describe()}; engine: {self.engine.describe()}."]
        parts += [f"Unavailable: {w}" for w in self.warnings]
        return " ".join(parts)

    def check_ready(self) -> Engine:
        """The engine, or UserInputError (one sentence) while the model loads or when it could not be loaded."""
        if self.error:
            raise UserInputError(f"The model could not be loaded, so no answer is possible: {self.error}")
        if self.engine is None:
            raise UserInputError(f"The model is still loading ({self.progress:.0%}); try again in a moment.")
        return self.engine

    # -- answering -----------------------------------------------------------------------------------------------
    @property
    def max_new_tokens_limit(self) -> int:
        """The model's limit once loaded; the generic cap before that."""
        return max_new_tokens_limit(self.context_window) if self.engine else 1024

    def default_params(self) -> GenerationParams:
        a = self.settings
        return GenerationParams(a.temperature, a.top_p, min(a.max_new_tokens, self.max_new_tokens_limit))

    def retriever_for(self, owner: str | None) -> Retriever | None:
        """What `owner`'s RAG and Hybrid answers search: the shared documents and their private ones
        (the shared ones alone for None), when the knowledge base keeps collections."""
        if isinstance(self.knowledge, CollectionRetriever):
            return self.knowledge.for_owner(owner_id(owner) if owner else None)
        return self.knowledge

    def request(
        self,
        owner: str | None,
        message: str,
        history: Sequence[Message],
        mode: Mode | str,
        params: GenerationParams,
        system_prompt: str | None = None,
        adapter: str | None = None,
    ) -> AnswerRequest:
        """Understand one request, once. Raises UserInputError (one sentence) for anything wrong with it.

        `owner` is the person asking (`core.identity.Identity.owner`): `adapter`, the name (or key) they
        chose, is resolved for them, so another person's upload is refused, and RAG searches the shared
        documents and their private ones. Modes that need a part the app lacks are refused here too.
        """
        self.check_ready()
        mode = Mode.parse(mode)
        documents, adapted = mode.uses_documents, mode.uses_adapter
        system = self.settings.system_prompt if system_prompt is None else system_prompt
        a = self.settings
        typed = read_input(
            mode, message, history, system, a.max_message_chars, a.max_history_messages, a.max_history_chars
        )
        params = (params or GenerationParams()).check(self.context_window)
        missing = []
        if documents and self.knowledge is None:
            missing.append("a document index, and none is loaded")
        if adapted and not (isinstance(adapter, str) and adapter.strip()):
            missing.append("an adapter; choose one under Adapters")
        elif adapted and self.adapters is None:
            missing.append("an adapter, and adapters are not available in this app right now")
        if missing:
            raise UserInputError(f"{mode.value} mode needs " + " and ".join(missing) + ".")
        handle = self.adapters.resolve_handle(adapter, owner) if adapted else None
        notes: list[str] = [typed.note] if typed.note else []
        if handle is not None:
            live = self.knowledge.snapshot if self.knowledge is not None else None
            note = staleness_note(
                handle.kb_snapshot,
                handle.kb_snapshot_date,
                live.snapshot_id if live else None,
                handle.kb_content_id,
                live.content_id if live else None,
            )
            if note:
                notes.append(note)
        return AnswerRequest(
            message=typed.message,
            mode=mode,
            params=params,
            system_prompt=typed.system_prompt,
            history=typed.history,
            adapter=handle,
            retriever=self.retriever_for(owner) if documents else None,
            notes=tuple(notes),
            earlier_questions=typed.earlier_questions,
            language=typed.language,
        )

    def answer(
        self,
        session: str,
        message: str,
        history: Sequence[Message],
        mode: Mode | str,
        params: GenerationParams,
        system_prompt: str | None = None,
        adapter: str | None = None,
        stop: threading.Event | None = None,
        owner: str | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Stream an answer for one user's session. Raises UserInputError with one sentence.

        `owner` is whose adapters and private documents the answer may use (default: the session's own).
        Without `stop`, the session's Stop button (`stop()`) ends the answer; a caller with its own
        `stop` event (a scorecard run) is not stopped by the session's chat Stop.
        """
        with self.stoppable(session, stop) as stop:
            request = self.request(owner or session, message, history, mode, params, system_prompt, adapter)
            yield from self.pipeline.answer(request, stop)

    def compare(
        self,
        session: str,
        message: str,
        modes: Sequence[Mode | str],
        params: GenerationParams,
        system_prompt: str | None = None,
        adapter: str | None = None,
        owner: str | None = None,
    ) -> Iterator[list[AnswerUpdate | UserInputError | None]]:
        """Answer `message` in every mode at once (`answer.compare.compare`)."""
        return compare(self, session, message, modes, params, system_prompt, adapter, owner)

    def stoppable(self, session: str, event: threading.Event | None = None) -> _Stoppable:
        """A context in which the session's Stop sets a new event, which it yields. A caller's own `event` (a
        scorecard run's) is yielded as it is, and the session's Stop does not reach it."""
        if event is not None:
            return _Stoppable({}, session, event)
        return _Stoppable(self._stops, session, threading.Event())

    def stop(self, session: str) -> None:
        """Stop the session's answer in progress, if any."""
        event = self._stops.get(session)
        if event is not None:
            event.set()


class _Stoppable:
    def __init__(self, stops: dict, session: str, event):
        self.stops, self.session, self.event = stops, session, event

    def __enter__(self):
        self.stops[self.session] = self.event
        return self.event

    def __exit__(self, *exc) -> None:
        if self.stops.get(self.session) is self.event:
            del self.stops[self.session]
