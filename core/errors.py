"""The one error type whose message is shown to the user as it is.

Anything a user can cause (a bad message or setting, an adapter that cannot be used, an index that
cannot answer) is raised as a `UserInputError` subclass with one sentence they can act on; the UI
shows it instead of a generic failure. `rag`, `adapters` and `scorecard` derive their errors from it.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user (message, setting, file), or a state they can act on; one sentence."""


class AdapterUnusable(UserInputError):
    """An adapter cannot be used on the live model (it does not fit, or its weights are bad); the
    model is unchanged. `adapters` derives its errors from this one."""


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message is one sentence for the user."""
