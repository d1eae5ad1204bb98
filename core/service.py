"""The app's shared, UI-agnostic state, and the one place a request is understood.

One `ExpertService` per process. It loads the model once, on a background thread with progress, so
the web page is up (and says how far loading got) before the model is ready. Parts that need the
model (the document index, the adapter catalog) attach afterwards through the typed ports core
declares (`core.retrieval.Retriever`, `core.lora.AdapterResolver`).

`request()` turns what a user sent (message, history, mode, generation settings, adapter name) into
an `AnswerRequest`: the mode parsed, the message and settings checked, the adapter resolved for that
user into a checked handle, the retriever chosen, the stale-adapter note decided. Everything after
it (pipeline, engine) receives resolved values and looks nothing up again. Every problem a user can
cause is a `UserInputError` with one sentence.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from core.cards import staleness_note
from core.engines import start_engine
from core.errors import UserInputError
from core.generation import Engine, GenerationParams, Message, is_text, max_new_tokens_limit
from core.identity import owner_id
from core.lora import AdapterResolver
from core.models import LoadedModel, ModelLoadError, Progress
from core.pipeline import AnswerPipeline, AnswerRequest, AnswerUpdate, Mode, PromptStyle
from core.retrieval import CollectionRetriever, Retriever
from core.settings import Settings

log = logging.getLogger(__name__)


Attachment = Callable[["ExpertService", Progress], None]
"""Runs once after the model is loaded to add a part (`attach_knowledge`, `attach_adapters`). If it
raises, the error becomes a warning on the status line and the chat keeps working without that part."""


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the operating system (glibc's `malloc_trim`; nothing elsewhere).
    A first start embeds every sample document and frees the temporaries, but glibc keeps the freed heap:
    trimming once the app is ready returned 199 MiB here (bench/bench_footprint.py)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _uses_documents(mode: Mode | str) -> bool:
    try:
        return Mode.parse(mode).uses_documents
    except UserInputError:
        return False


class _SharedRetrieval:
    """One Compare's retriever: RAG and Hybrid ask the same question, so the search and the embeddings of
    the same texts are computed once (under a lock, so the second asker waits for the first's result),
    instead of twice on threads that compete with the decoding for the CPU."""

    def __init__(self, retriever: Retriever):
        self.retriever = retriever
        self._lock = threading.Lock()
        self._searches: dict[tuple[str, int | None], list] = {}
        self._vectors: dict[tuple[str, ...], object] = {}

    @property
    def snapshot(self):
        return self.retriever.snapshot

    def search(self, query: str, top_k: int | None = None) -> list:
        with self._lock:
            key = (query, top_k)
            if key not in self._searches:
                found = self.retriever.search(query) if top_k is None else self.retriever.search(query, top_k)
                self._searches[key] = list(found)
            return list(self._searches[key])

    def __getattr__(self, name: str):  # `encode` only where the retriever has it (evidence falls back without)
        if name != "encode" or not hasattr(self.retriever, "encode"):
            raise AttributeError(name)
        return self._encode

    def _encode(self, texts: list[str]):
        key = tuple(texts)
        with self._lock:
            if key not in self._vectors:
                self._vectors[key] = self.retriever.encode(list(texts))
            return self._vectors[key]


class _AllOf:
    """Sets every event at once: the session's Stop over the answers of one Compare."""

    def __init__(self, events: Sequence[threading.Event]):
        self.events = list(events)

    def set(self) -> None:
        for event in self.events:
            event.set()


def history_for(mode: Mode, history: Sequence[Message]) -> tuple[tuple[Message, ...], tuple[str, ...]]:
    """What a mode may see of a conversation: (turns, earlier questions).

    A mode never sees answers another mode wrote: a message tagged with a "mode" key (the chat tags
    every exchange) is kept only for that mode; untagged history (an API caller's) is kept as it is.
    RAG and Hybrid see no earlier answers at all, only the earlier questions, so an invented answer
    cannot pass itself off as a source."""
    turns = [m for m in history if isinstance(m, dict) and m.get("role") in ("user", "assistant") and m.get("content")]
    if mode.uses_documents:
        return (), tuple(str(m["content"]) for m in turns if m["role"] == "user")
    own = tuple(m for m in turns if m.get("mode") in (None, mode.value))
    return own, ()


class ExpertService:
    def __init__(self, settings: Settings, attachments: Sequence[Attachment] = ()):
        self.settings = settings
        self.attachments = list(attachments)
        self.warnings: list[str] = []
        self.knowledge: Retriever | None = None
        self.adapters: AdapterResolver | None = None
        self.progress = 0.0
        self.progress_message = "Waiting to load the model."
        self.error: str | None = None
        self.loaded: LoadedModel | None = None
        self.engine: Engine | None = None
        self.pipeline: AnswerPipeline | None = None
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._stops: dict[str, threading.Event | _AllOf] = {}

    @classmethod
    def over(cls, settings: Settings, engine: Engine) -> ExpertService:
        """A ready service over an engine loaded elsewhere (tests, benchmarks, another host program);
        attach parts with `attach_knowledge` / `attach_adapters`."""
        service = cls(settings)
        service.loaded, service.engine = engine.loaded, engine
        service.pipeline = AnswerPipeline(engine, PromptStyle.from_settings(settings))
        service._loader = threading.current_thread()  # nothing to load
        service._report(1.0, "Ready.")
        service._ready.set()
        return service

    # -- loading ---------------------------------------------------------------------------
    def start(self) -> ExpertService:
        """Begin loading the model on a background thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._loader is None:
                self._loader = threading.Thread(target=self._load, name="model-load", daemon=True)
                self._loader.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the model and every part are loaded (or failed); whether the model is usable."""
        self.start()
        self._ready.wait(timeout)
        return self.pipeline is not None and self.ready

    def _report(self, fraction: float, message: str) -> None:
        self.progress, self.progress_message = fraction, message
        log.info("[%3.0f%%] %s", fraction * 100, message)

    def _load(self) -> None:
        try:
            self.engine, fallback = start_engine(self.settings, self._report)
            self.loaded = self.engine.loaded
            if fallback:
                self.warnings.append(fallback)
            self.pipeline = AnswerPipeline(self.engine, PromptStyle.from_settings(self.settings))
        except (ModelLoadError, UserInputError) as exc:  # incl. a model server that did not answer
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
            release_free_memory()
            self._report(1.0, "Ready.")
        finally:
            self._ready.set()

    def attach_knowledge(self, retriever: Retriever) -> None:
        """Use `retriever` (e.g. `rag.KnowledgeBase`) for RAG and Hybrid."""
        self.knowledge = retriever

    def attach_adapters(self, catalog: AdapterResolver) -> None:
        """Resolve adapter names through `catalog` (e.g. `adapters.AdapterCatalog`) for Fine-tuned and Hybrid."""
        self.adapters = catalog

    def status_line(self) -> str:
        if self.error:
            return f"Model failed to load: {self.error}"
        if not self.ready:
            return f"Starting: {self.progress:.0%}. {self.progress_message}"
        parts = [f"Model: {self.loaded.describe()}; engine: {self.engine.describe()}."]
        parts += [f"Unavailable: {w}" for w in self.warnings]
        return " ".join(parts)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- answering -------------------------------------------------------------------------
    @property
    def max_new_tokens_limit(self) -> int:
        """The model's limit once loaded; the generic cap before that."""
        return max_new_tokens_limit(self.engine.context_window) if self.engine else 1024

    def default_params(self) -> GenerationParams:
        s = self.settings
        return GenerationParams(s.temperature, s.top_p, min(s.max_new_tokens, self.max_new_tokens_limit))

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
        if self.error:
            raise UserInputError(f"The model could not be loaded, so no answer is possible: {self.error}")
        if self.engine is None:
            raise UserInputError(f"The model is still loading ({self.progress:.0%}); try again in a moment.")
        mode = Mode.parse(mode)
        message = self.engine.check_message(message)
        params = (params or GenerationParams()).check(self.engine.context_window)
        missing = []
        if mode.uses_documents and self.knowledge is None:
            missing.append("a document index, and none is loaded")
        if mode.uses_adapter and not (isinstance(adapter, str) and adapter.strip()):
            missing.append("an adapter; choose one under Adapters")
        elif mode.uses_adapter and self.adapters is None:
            missing.append("an adapter, and adapters are not available in this app right now")
        if missing:
            raise UserInputError(f"{mode.value} mode needs " + " and ".join(missing) + ".")
        handle = self.adapters.resolve_handle(adapter, owner) if mode.uses_adapter else None
        notes: list[str] = []
        if handle is not None:
            live = self.knowledge.snapshot if self.knowledge is not None else None
            note = staleness_note(handle.kb_snapshot, handle.kb_snapshot_date, live.snapshot_id if live else None,
                                  handle.kb_content_id, live.content_id if live else None)  # fmt: skip
            if note:
                notes.append(note)
        system = self.settings.system_prompt if system_prompt is None else system_prompt
        turns, earlier = history_for(mode, history or ())
        if not all(is_text(str(m["content"])) for m in turns) or not all(map(is_text, earlier)):
            raise UserInputError(
                "The conversation holds characters that are not text (a lone surrogate or a NUL); "
                "clear it and ask again."
            )
        if system and not is_text(system):
            raise UserInputError("The system prompt holds characters that are not text (a lone surrogate or a NUL).")
        return AnswerRequest(
            message=message,
            mode=mode,
            params=params,
            system_prompt=system,
            history=turns,
            adapter=handle,
            retriever=self.retriever_for(owner) if mode.uses_documents else None,
            notes=tuple(notes),
            earlier_questions=earlier,
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
        request = self.request(owner or session, message, history, mode, params, system_prompt, adapter)
        if stop is not None:
            yield from self.pipeline.answer(request, stop)
            return
        stop = threading.Event()
        self._stops[session] = stop
        try:
            yield from self.pipeline.answer(request, stop)
        finally:
            if self._stops.get(session) is stop:
                del self._stops[session]

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
        """Answer `message` in every mode at once; yield the list of latest updates (None: nothing yet, a
        UserInputError: that mode's one-sentence refusal) each time any of them moves on.

        Each answer runs on a thread of its own, so an engine that batches decodes them together. Each has its
        own stop event (an answer that ends stops only itself); the session's Stop sets them all.
        """
        events = [threading.Event() for _ in modes]
        stop = _AllOf(events)
        self._stops[session] = stop
        owner = owner or session
        retriever = self.retriever_for(owner)
        shared = _SharedRetrieval(retriever) if retriever is not None else None
        if shared is not None and any(_uses_documents(m) for m in modes) and isinstance(message, str):
            try:  # search and embed before any decoding starts: on a small CPU they would slow each other
                self.pipeline.evidence_for(shared, message.strip())
            except Exception:  # the answers themselves report it, one sentence each
                pass
        latest: list[AnswerUpdate | UserInputError | None] = [None] * len(modes)
        changed = threading.Condition()
        running, version = [len(modes)], [0]

        def run(i: int, mode: Mode | str) -> None:
            try:
                request = self.request(owner, message, [], mode, params, system_prompt, adapter)
                if request.retriever is not None and shared is not None:
                    request = dataclasses.replace(request, retriever=shared)
                for update in self.pipeline.answer(request, events[i]):
                    with changed:
                        latest[i] = copy.copy(update)
                        version[0] += 1
                        changed.notify()
            except UserInputError as exc:
                with changed:
                    latest[i] = exc
            except Exception as exc:  # one mode failing must not take the others down
                log.exception("compare: %s failed", mode)
                with changed:
                    latest[i] = UserInputError(f"This answer failed ({type(exc).__name__}).")
            finally:
                with changed:
                    running[0] -= 1
                    version[0] += 1
                    changed.notify()

        workers = [threading.Thread(target=run, args=(i, m), name=f"compare-{i}", daemon=True)
                   for i, m in enumerate(modes)]  # fmt: skip
        for worker in workers:
            worker.start()
        try:
            seen = [0]
            while True:
                with changed:
                    changed.wait_for(lambda: version[0] != seen[0])
                    snapshot, finished, seen[0] = list(latest), running[0] == 0, version[0]
                yield snapshot
                if finished:
                    break
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
            if self._stops.get(session) is stop:
                del self._stops[session]

    def stop(self, session: str) -> None:
        """Stop the session's answer in progress, if any."""
        event = self._stops.get(session)
        if event is not None:
            event.set()
