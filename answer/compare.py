"""Compare: one question answered in every mode at once, each on a thread of its own, so an engine that batches
decodes them together. RAG and Hybrid share one search and one set of embeddings (`_SharedRetrieval`); each
answer has its own stop event, and the session's Stop sets them all."""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from answer.pipeline import retrieve
from answer.ports import Retriever
from answer.types import AnswerUpdate, Mode
from core.errors import UserInputError
from engines.base import GenerationParams

if TYPE_CHECKING:
    from answer.service import ExpertService

log = logging.getLogger(__name__)


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


def compare(
    service: ExpertService,
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
    owner = owner or session
    retriever = service.retriever_for(owner)
    shared = _SharedRetrieval(retriever) if retriever is not None else None
    if shared is not None and any(_uses_documents(m) for m in modes) and isinstance(message, str):
        try:  # search and embed before any decoding starts: on a small CPU they would slow each other
            retrieve(shared, message.strip(), service.pipeline.style.evidence_sentences)
        except Exception:  # whatever failed, each answer below meets it again and reports it in one sentence
            pass
    latest: list[AnswerUpdate | UserInputError | None] = [None] * len(modes)
    changed = threading.Condition()
    running, version = [len(modes)], [0]

    def run(i: int, mode: Mode | str) -> None:
        try:
            request = service.request(owner, message, [], mode, params, system_prompt, adapter)
            if request.retriever is not None and shared is not None:
                request = dataclasses.replace(request, retriever=shared)
            for update in service.pipeline.answer(request, events[i]):
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

    workers = [threading.Thread(target=run, args=(i, m), name=f"compare-{i}", daemon=True) for i, m in enumerate(modes)]
    with service.stoppable(session, stop):
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
