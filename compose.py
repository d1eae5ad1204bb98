"""The one place that wires the app: the engine, the document index, the adapter catalog and the service.

`compose(settings)` returns an `App` at once; `App.start()` loads its parts on a background thread, with
progress on the service's status line, so the web page is up (and says how far loading got) before the model
is ready. The UI, the public API and the scorecard command receive the `App`'s typed parts; nothing attaches
itself to the service, and nothing down-casts a port back to a class.

    app = compose(settings).start()
    app.wait_ready()
    app.service.answer(...)            # answer.service.ExpertService
    app.knowledge                      # rag.KnowledgeBase | None (None until loaded, or when it failed)
    app.adapters                       # adapters.AdapterCatalog | None
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters import AdapterCatalog
from adapters.store import DEMO_DIR, AdapterStore
from adapters.tensors import weights_checker
from answer.service import ExpertService
from core.errors import ModelLoadError, UserInputError
from core.jobs import Jobs
from core.settings import Settings
from engines.base import Engine
from engines.factory import start_engine
from engines.loading import base_norms
from rag import IndexUnavailableError, KnowledgeBase, ensure_sample_index

log = logging.getLogger(__name__)

SAMPLE_DOCS = Path(__file__).resolve().parent / "sample_kb" / "docs"
KNOWLEDGE_LABEL = "Document index"
KNOWLEDGE_RETRY_S = 15.0
"""How often a replica whose index database was away at start tries it again."""


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


@dataclass
class App:
    """The app's parts, typed. `knowledge` and `adapters` are None until loaded (or when they could not be: the
    status line says why, and the chat works without them)."""

    settings: Settings
    service: ExpertService
    store: AdapterStore
    """The adapter folders (shipped, trained, uploaded): the catalog's store, read by the API's adapter list."""
    sample_docs: Path | None = SAMPLE_DOCS
    """Seeds an empty index once (None: start with no documents)."""
    jobs: Jobs = field(default_factory=lambda: Jobs(workers=2, name="ingest"))
    """Document workers (uploads from the page and the API)."""
    scorecards: Jobs = field(default_factory=lambda: Jobs(workers=1, name="scorecard"))
    """One scorecard run at a time, page and API, never on the document workers."""
    knowledge: KnowledgeBase | None = None
    adapters: AdapterCatalog | None = None
    parts: tuple[str, ...] = ("knowledge", "adapters")
    """Which parts load after the engine (a benchmark of the engine alone leaves them out)."""
    _loader: threading.Thread | None = field(default=None, repr=False)
    _start_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> App:
        """Begin loading on a background thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._loader is None:
                self._loader = threading.Thread(target=self._load, name="model-load", daemon=True)
                self._loader.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the model and every part are loaded (or failed); whether the model is usable."""
        self.start()
        return self.service.wait_ready(timeout)

    def _load(self) -> None:
        service = self.service
        try:
            engine, fallback = start_engine(self.settings, service.report)
            if fallback:
                service.warnings.append(fallback)
            service.serve(engine)
        except (ModelLoadError, UserInputError) as exc:  # incl. a model server that did not answer
            log.error("model load failed: %s", exc)
            service.fail(str(exc))
            return
        except Exception as exc:  # protects the page: it still loads and says what happened
            log.exception("model load failed")
            service.fail(f"The model failed to load: {type(exc).__name__}: {exc}")
            return
        parts = {"knowledge": (KNOWLEDGE_LABEL, self._open_knowledge), "adapters": ("Adapters", self._open_adapters)}
        for label, part in (parts[name] for name in self.parts):
            try:
                part(engine)
            except Exception as exc:  # protects the chat: one missing part is a warning, not a dead app
                service.warnings.append(f"{label}: {exc}")
                log.exception("%s failed to load", label)
        release_free_memory()
        service.finish()

    def _open_knowledge(self, engine: Engine) -> None:
        try:
            self._attach_knowledge()
        except IndexUnavailableError:  # the index's database is away: RAG waits for it, the rest answers now
            threading.Thread(target=self._retry_knowledge, name="index-retry", daemon=True).start()
            raise

    def _retry_knowledge(self) -> None:
        """Try the index's database again every `KNOWLEDGE_RETRY_S` until it answers, then attach the documents and
        drop the status line's warning: a replica that started while its database was away needs no restart."""
        while self.knowledge is None:
            time.sleep(KNOWLEDGE_RETRY_S)
            try:
                self._attach_knowledge()
            except IndexUnavailableError:
                continue
            except Exception:  # anything else is for the operator: the log says what, and the warning stays
                log.exception("the document index could not be attached")
                return
            self.service.warnings[:] = [w for w in self.service.warnings if not w.startswith(KNOWLEDGE_LABEL)]
            log.warning("the document index's database answers: RAG and Hybrid work again")

    def _attach_knowledge(self) -> None:
        report = self.service.report
        kb = KnowledgeBase.from_settings(self.settings)
        if self.sample_docs is not None:
            ensure_sample_index(kb, self.sample_docs, lambda f, m: report(f, f"Documents: {m}"))
        else:
            kb.open()
        report(0.95, "Documents: loading the embedding model")
        kb.search("warm-up")  # loads the embedding model now, not during the first user's question
        self.knowledge = kb.watch(self.settings.retrieval.index_watch_s)
        self.service.use_knowledge(self.knowledge)

    def _open_adapters(self, engine: Engine) -> None:
        self.service.report(0.97, "Scanning adapters")
        loaded = engine.loaded
        self.adapters = AdapterCatalog(
            engine.spec,
            self.store,
            self.settings.uploads,
            self.settings.access.publish_uploads,
            unload=engine.unload,
            check_weights=weights_checker(engine.spec, functools.cache(lambda: base_norms(loaded, engine.spec))),
        )
        self.service.use_adapters(self.adapters)


def compose(
    settings: Settings,
    sample_docs: Path | None = SAMPLE_DOCS,
    demo_dir: Path | None = DEMO_DIR,
    parts: tuple[str, ...] = ("knowledge", "adapters"),
) -> App:
    """The app over `settings`, not yet loading (call `start()`). `sample_docs` seeds an empty index once;
    `demo_dir` holds the shipped demo adapters; `parts` are what loads after the engine (`()`: the engine alone)."""
    store = AdapterStore(settings.shared_dir, demo_dir)
    return App(settings, ExpertService(settings.answer), store, sample_docs, parts=tuple(parts))
