"""Exceptions the knowledge base raises. Every message is one sentence a user can act on."""

from __future__ import annotations

from core.errors import UserInputError


class RagError(UserInputError):
    """Base class for every error raised by `rag`; its message is one sentence for the user."""


class IngestError(RagError):
    """One file could not be ingested (empty, binary, corrupt, too large, unsupported, undecodable)."""


class EmbeddingModelError(RagError):
    """The embedding model could not be found or loaded."""


class IndexMismatchError(RagError):
    """The stored index was built with another embedding model or dimension than the settings ask for."""


class IndexCorruptError(RagError):
    """No stored snapshot of the index could be read."""


class DocumentNotFoundError(RagError, KeyError):
    """No document with the given id is in the index."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class IndexWriteError(RagError):
    """Saving the index failed (disk full, permissions); the previous version is still in place."""


class NotAllowedError(RagError):
    """The person may not change what they asked to change (the shared knowledge base, by the operator's setting)."""


class IndexUnavailableError(RagError):
    """The index's database cannot be used (unreachable, refused, lost, without pgvector, a newer schema); what
    does not need the documents goes on."""
