"""The adapter errors. Each message is one sentence a user can act on.

They subclass core's `AdapterUnusable` (a `UserInputError`), so the answer pipeline and the UI show them like any
other bad input instead of a traceback.
"""

from __future__ import annotations

from core.errors import AdapterUnusable


class AdapterError(AdapterUnusable):
    """An adapter cannot be stored, listed, loaded or used; the message is one sentence."""


class AdapterRejected(AdapterError):
    """An adapter failed validation: nothing was written and the live model is unchanged."""


class AdapterNotAvailable(AdapterError):
    """No adapter of that name is visible to the requesting session (unknown, or another session's)."""
