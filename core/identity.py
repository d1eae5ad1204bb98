"""Who is asking: the one description of a person's identity, and of what they may change.

Three ways to be someone, from the strongest:

- signed in with Hugging Face on a Space (Gradio OAuth, `hf_oauth: true` in README's front matter);
- signed in with a local username and password (the `users` setting; Gradio's own login page);
- neither: the browser session (a page reload is a new person, as before sign-in existed).

What a person uploads (documents, adapters, scorecard runs) belongs to their `owner` string and
is stored under `owner_id(owner)`, a digest, so no user name or session id is ever written to disk
or shown to anyone. A signed-in person's uploads survive reloads and restarts; a browser session's
are reachable only from that tab and expire (`upload_ttl_hours`).

Who may change the shared knowledge base is the operator's choice (`shared_kb_writers`):
'nobody' (only the operator, with `python -m rag`), 'signed_in', or 'anyone'. Everyone else's
document uploads go into a private collection, searched together with the shared one and
visible to its owner alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

USER, SESSION = "user", "session"
WRITERS = ("nobody", "signed_in", "anyone")
"""The values of the `shared_kb_writers` setting."""


def owner_id(owner: str) -> str:
    """The folder name / stored tag of one owner's uploads: a digest, prefixed by the kind of identity
    ('u-' signed in, 's-' browser session) so expiry can treat the two differently without knowing who."""
    kind = "u" if owner.startswith(f"{USER}:") else "s"
    return f"{kind}-" + hashlib.sha256(b"expert-owner\0" + owner.encode("utf-8")).hexdigest()[:24]


def is_signed_in_owner(owner_tag: str | None) -> bool:
    """Whether a stored owner tag (`owner_id`) belongs to a signed-in person."""
    return bool(owner_tag) and str(owner_tag).startswith("u-")


@dataclass(frozen=True)
class Identity:
    """One request's person. `session` is the browser tab (its Stop button stops its own answer);
    `owner` is whom uploads belong to; `name` is what the page shows (None when not signed in)."""

    session: str
    name: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.name is not None

    @property
    def owner(self) -> str:
        return f"{USER}:{self.name}" if self.name is not None else f"{SESSION}:{self.session}"

    @property
    def tag(self) -> str:
        """`owner_id(self.owner)`: how this person's uploads are marked on disk."""
        return owner_id(self.owner)

    def may_change_shared(self, writers: str) -> bool:
        """Whether this person's document uploads and deletions go to the shared knowledge base."""
        return writers == "anyone" or (writers == "signed_in" and self.signed_in)

    @classmethod
    def of(cls, session: str | None, username: str | None = None) -> Identity:
        """From what Gradio knows of a request: its session hash and the signed-in user name, if any
        (local login or Hugging Face OAuth)."""
        name = str(username).strip() if username and str(username).strip() else None
        return cls(session or "", name)
