"""Who is asking: identities, owner tags, who may change the shared knowledge base, and the `users` setting."""

from __future__ import annotations

import pytest

from core.identity import Identity, is_signed_in_owner, owner_id
from core.settings import Settings, SettingsError


def test_a_signed_in_person_is_the_same_owner_in_every_tab_and_a_session_is_its_own():
    alice_tab1, alice_tab2 = Identity.of("tab-1", "alice"), Identity.of("tab-2", "alice")
    anon_tab1, anon_tab2 = Identity.of("tab-1"), Identity.of("tab-2", "  ")
    assert alice_tab1.owner == alice_tab2.owner == "user:alice" and alice_tab1.session != alice_tab2.session
    assert anon_tab1.owner != anon_tab2.owner and not anon_tab2.signed_in
    assert is_signed_in_owner(alice_tab1.tag) and not is_signed_in_owner(anon_tab1.tag)
    # a digest: no name or session id on disk, and a session cannot pose as a user of the same text
    assert "alice" not in alice_tab1.tag and owner_id("session:alice") != owner_id("user:alice")


@pytest.mark.parametrize(
    ("writers", "anonymous", "signed_in"),
    [("nobody", False, False), ("signed_in", False, True), ("anyone", True, True)],
)
def test_who_may_change_the_shared_knowledge_base(writers, anonymous, signed_in):
    assert Identity.of("tab").may_change_shared(writers) is anonymous
    assert Identity.of("tab", "alice").may_change_shared(writers) is signed_in


def test_the_page_takes_the_hugging_face_name_over_the_local_one():
    from types import SimpleNamespace

    from ui.session import who

    request = SimpleNamespace(session_hash="abc", username=None)
    assert who(request, None).owner == "session:abc"  # not signed in
    assert who(SimpleNamespace(session_hash="abc", username="bob"), None).owner == "user:bob"  # local login
    profile = SimpleNamespace(username="alice-hf")  # what gr.OAuthProfile carries on a Space
    assert who(request, profile).owner == "user:alice-hf"


def test_the_users_setting_is_checked_without_printing_a_password():
    assert Settings.of(users="alice:wonder land, bob:b:c").access.accounts() == [
        ("alice", "wonder land"),
        ("bob", "b:c"),
    ]
    with pytest.raises(SettingsError) as bad:
        Settings.load(["--users", "alice:secret1,bob", "--shared-kb-writers", "everyone"], env={})
    message = str(bad.value)
    assert "users entry 2 must be 'name:password'" in message and "secret1" not in message
    assert "shared_kb_writers must be one of nobody, signed_in, anyone" in message
