"""The app's shared, UI-agnostic state: settings, the background model load, the pipeline.

One `ExpertService` per process. It loads the model once, on a background thread with
progress, so the web page is up (and says how far loading got) before the model is ready.
Per-user state (mode, history, stop requests) is keyed by the caller's session id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from core.generation import Engine, GenerationParams, Message, UserInputError, max_new_tokens_limit
from core.models import LoadedModel, ModelLoadError, Progress, load_model
from core.pipeline import AnswerPipeline, AnswerUpdate, Mode
from core.settings import Settings

log = logging.getLogger(__name__)


Attachment = Callable[["ExpertService", Progress], None]
"""Runs once after the model is loaded to add a part (the document index, the adapter store).
It may set `service.knowledge`, `service.adapters` and the pipeline's hooks. If it raises, the
error becomes a warning on the status line and the chat keeps working without that part."""


class ExpertService:
    def __init__(self, settings: Settings, attachments: Sequence[Attachment] = ()):
        self.settings = settings
        self.attachments = list(attachments)
        self.warnings: list[str] = []
        self.knowledge: Any = None  # a rag.KnowledgeBase once attached
        self.adapters: Any = None  # an adapters manager once attached
        self.progress = 0.0
        self.progress_message = "Waiting to load the model."
        self.error: str | None = None
        self.loaded: LoadedModel | None = None
        self.pipeline: AnswerPipeline | None = None
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._stops: dict[str, threading.Event] = {}

    # -- loading ---------------------------------------------------------------------------
    def start(self) -> ExpertService:
        """Begin loading the model on a background thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._loader is None:
                self._loader = threading.Thread(target=self._load, name="model-load", daemon=True)
                self._loader.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        self.start()
        self._ready.wait(timeout)
        return self.pipeline is not None

    def _report(self, fraction: float, message: str) -> None:
        self.progress, self.progress_message = fraction, message
        log.info("[%3.0f%%] %s", fraction * 100, message)

    def _load(self) -> None:
        try:
            self.loaded = load_model(self.settings, self._report)
            engine = Engine(self.loaded, max_message_chars=self.settings.max_message_chars)
            self.pipeline = AnswerPipeline(engine, self.settings.system_prompt)
        except ModelLoadError as exc:
            self.error = str(exc)
            log.error("model load failed: %s", exc)
        except Exception as exc:  # anything else still leaves a page that says what happened
            self.error = f"The model failed to load: {type(exc).__name__}: {exc}"
            log.exception("model load failed")
        else:
            for attach in self.attachments:
                try:
                    attach(self, self._report)
                except Exception as exc:  # one missing part must not take the chat down
                    self.warnings.append(f"{getattr(attach, '__doc__', None) or attach.__name__}: {exc}")
                    log.exception("attachment %s failed", attach.__name__)
            self._report(1.0, "Ready.")
        finally:
            self._ready.set()

    def status_line(self) -> str:
        if self.error:
            return f"Model failed to load: {self.error}"
        if not self.ready:
            return f"Starting: {self.progress:.0%}. {self.progress_message}"
        parts = [f"Model: {self.loaded.describe()}."]
        parts += [f"Unavailable: {w}" for w in self.warnings]
        return " ".join(parts)

    def attach_knowledge(self, retriever: Any) -> None:
        """Use `retriever` (a `core.retrieval.Retriever`, e.g. `rag.KnowledgeBase`) for RAG and Hybrid."""
        self.knowledge = retriever
        if self.pipeline is not None:
            self.pipeline.retriever = retriever

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- answering -------------------------------------------------------------------------
    @property
    def max_new_tokens_limit(self) -> int:
        """The model's limit once loaded; the generic cap before that."""
        return max_new_tokens_limit(self.loaded.context_window) if self.loaded else 1024

    def default_params(self) -> GenerationParams:
        s = self.settings
        return GenerationParams(s.temperature, s.top_p, min(s.max_new_tokens, self.max_new_tokens_limit))

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
    ) -> Iterator[AnswerUpdate]:
        """Stream an answer for one user's session. Raises UserInputError with one sentence.

        `adapter` is the name the session chose; it is resolved for that session (another
        session's upload is refused) before the pipeline sees its key. Without `stop`, the
        session's Stop button (`stop()`) ends the answer; a caller with its own `stop` event (a
        scorecard run) is not stopped by the session's chat Stop.
        """
        if self.error:
            raise UserInputError(f"The model could not be loaded, so no answer is possible: {self.error}")
        if self.pipeline is None:
            raise UserInputError(f"The model is still loading ({self.progress:.0%}); try again in a moment.")
        key = note = None
        if adapter and Mode.parse(mode).uses_adapter:
            if self.adapters is None:
                raise UserInputError("Adapters are not available in this app right now.")
            info = self.adapters.resolve(adapter, session)
            key, note = info.key, self.adapters.staleness_note(info)
        if stop is not None:
            yield from self.pipeline.answer(message, history, mode, params, stop, system_prompt, key, note)
            return
        stop = threading.Event()
        self._stops[session] = stop
        try:
            yield from self.pipeline.answer(message, history, mode, params, stop, system_prompt, key, note)
        finally:
            if self._stops.get(session) is stop:
                del self._stops[session]

    def stop(self, session: str) -> None:
        """Stop the session's answer in progress, if any."""
        event = self._stops.get(session)
        if event is not None:
            event.set()
