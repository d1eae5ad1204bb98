"""Who owns which documents: private collections searched with the shared one, deletes only of what is yours,
per-person quotas, name collisions that never silently replace, and `restore` of earlier snapshots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.identity import Identity
from rag import DocumentNotFoundError, IndexCorruptError, KnowledgeBase, NotAllowedError, Placement
from tests.conftest import rag_cli, rag_settings, write_docs

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REPO = Path(__file__).resolve().parents[2]
SHARED = {
    "company_overview.md": "# Overview\n\nSkyharbor builds the Tern T12 delivery drone in Rijeka.\n",
    "warranty.md": "# Warranty\n\nThe battery warranty lasts 24 months from delivery.\n",
}
ALICE, BOB = Identity("tab-a", "alice").tag, Identity("tab-b", "bob").tag


def _kb(tmp_path: Path, **changes: object) -> KnowledgeBase:
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data", **changes)).open()
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    return kb


def _private(kb: KnowledgeBase, tmp_path: Path, owner: str, docs: dict[str, str], **kw: object) -> list:
    placement = Placement(owner=owner, added_by=owner, **kw)  # type: ignore[arg-type]
    return kb.add_files(write_docs(tmp_path / owner, docs), placement=placement)


def test_a_private_upload_is_searched_only_by_its_owner_together_with_the_shared_documents(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    (report,) = _private(kb, tmp_path, ALICE, {"harbor_notes.md": "# Notes\n\nThe crimson pier closes at 19:00.\n"})
    assert report.ok and "your private documents" in report.message

    assert kb.search("When does the crimson pier close?", fusion="keyword", viewer=ALICE)[0].source == "harbor_notes.md"
    for viewer in (BOB, None):  # another person, and the shared index alone
        found = kb.search("When does the crimson pier close?", fusion="keyword", viewer=viewer)
        assert all(p.source != "harbor_notes.md" for p in found)
    # the owner still finds the shared documents, ranked as without the private one
    assert kb.search("battery warranty months", viewer=ALICE)[0].source == "warranty.md"
    assert [d.name for d in kb.documents_for(ALICE)] == ["harbor_notes.md", "company_overview.md", "warranty.md"]
    assert [d.name for d in kb.documents_for(BOB)] == ["company_overview.md", "warranty.md"]
    assert kb.for_owner(BOB).search("crimson pier") == [] or all(
        p.source != "harbor_notes.md" for p in kb.for_owner(BOB).search("crimson pier")
    )


def test_the_same_file_in_two_private_collections_is_two_documents_that_reveal_nothing(tmp_path: Path) -> None:
    """Nobody learns from an upload's report that someone else holds the same file; only what the uploader
    can search anyway (the shared documents) is named."""
    kb = _kb(tmp_path)
    same = {"plan.md": "# Plan\n\nThe violet launch window opens on 3 May.\n"}
    (a,) = _private(kb, tmp_path, ALICE, same)
    (b,) = _private(kb, tmp_path, BOB, same)
    assert a.status == b.status == "added" and a.doc_id != b.doc_id  # no "already in the index" for Bob
    # a private copy of a shared file is not stored twice (it would be retrieved twice): the shared one serves
    (c,) = _private(kb, tmp_path, BOB, {"my_warranty.md": SHARED["warranty.md"]})
    assert c.status == "unchanged" and c.message == (
        "my_warranty.md is already in the shared knowledge base as warranty.md, unchanged."
    )
    assert [d.name for d in kb.documents_for(BOB)] == ["plan.md", "company_overview.md", "warranty.md"]


def test_one_person_cannot_delete_another_persons_or_the_shared_documents(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    (mine,) = _private(kb, tmp_path, ALICE, {"notes.md": "# Notes\n\nThe amber gate code is 4471.\n"})
    shared_id = next(d.doc_id for d in kb.list_documents() if d.name == "company_overview.md")

    with pytest.raises(DocumentNotFoundError, match="is in your documents"):  # Bob learns nothing about it
        kb.delete(mine.doc_id, allowed={BOB})
    with pytest.raises(NotAllowedError, match="shared knowledge base"):
        kb.delete(shared_id, allowed={BOB})
    assert {d.name for d in kb.list_documents()} == {"company_overview.md", "warranty.md", "notes.md"}

    assert kb.delete(mine.doc_id, allowed={ALICE}).name == "notes.md"
    assert kb.delete(shared_id, allowed={ALICE, None}).name == "company_overview.md"  # a permitted shared writer


def test_a_name_collision_is_refused_unless_replace_is_chosen_and_the_old_version_can_be_restored(
    tmp_path: Path,
) -> None:
    kb = _kb(tmp_path)
    original = kb.snapshot_id
    junk = write_docs(tmp_path / "junk", {"company_overview.md": "# Junk\n\nBuy cheap watches now.\n"})
    (refused,) = kb.add_files(junk)
    assert not refused.ok and "already in the shared knowledge base" in refused.message
    assert kb.snapshot_id == original

    (replaced,) = kb.add_files(junk, placement=Placement(replace=True))
    assert replaced.status == "replaced"
    assert kb.search("cheap watches", fusion="keyword")[0].source == "company_overview.md"
    assert kb.search("Tern T12 Rijeka", fusion="keyword") == []

    before, after = kb.restore(original)
    assert before.snapshot_id != after.snapshot_id == kb.snapshot_id  # a new snapshot: the restore can be undone
    top = kb.search("Tern T12 Rijeka", fusion="keyword")[0]
    assert top.source == "company_overview.md" and "Rijeka" in top.text
    reopened = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
    assert "Rijeka" in reopened.search("Tern T12 Rijeka", fusion="keyword")[0].text


def test_restore_keeps_todays_private_documents_and_a_deleted_private_document_leaves_the_disk(
    tmp_path: Path,
) -> None:
    kb = _kb(tmp_path)
    original = kb.snapshot_id
    (gone,) = _private(kb, tmp_path, BOB, {"secret.md": "# Secret\n\nThe jade vault opens on Fridays.\n"})
    kb.delete(gone.doc_id, allowed={BOB})
    (kept,) = _private(kb, tmp_path, ALICE, {"notes.md": "# Notes\n\nThe amber gate code is 4471.\n"})
    assert kept.ok
    shared_id = next(d.doc_id for d in kb.list_documents() if d.name == "warranty.md")
    kb.delete(shared_id)  # the operator

    data = tmp_path / "data"
    assert not (data / "uploads" / gone.doc_id).exists()  # Bob's deleted upload: gone from disk at once
    assert (data / "uploads" / shared_id).exists()  # the shared one: kept for restore
    assert all(gone.doc_id not in (s / "manifest.json").read_text() for s in (data / "index" / "snapshots").iterdir())

    kb.restore(original)
    assert sorted(d.name for d in kb.list_documents()) == ["company_overview.md", "notes.md", "warranty.md"]
    with pytest.raises(IndexCorruptError, match="No snapshot"):
        kb.restore("20000101T000000000000-000000")


def test_per_person_document_quotas(tmp_path: Path) -> None:
    kb = _kb(tmp_path, max_documents_per_user=2, max_document_mb_per_user=0.001)  # 1,048 bytes
    first = _private(kb, tmp_path / "1", ALICE, {"a.md": "# A\n\nOne.\n", "b.md": "# B\n\nTwo.\n"})
    assert all(r.ok for r in first)
    (third,) = _private(kb, tmp_path / "2", ALICE, {"c.md": "# C\n\nThree.\n"})
    assert not third.ok and "you have 2 documents, the most one person may keep" in third.message
    (big,) = _private(kb, tmp_path / "3", BOB, {"big.md": "# Big\n\n" + "word " * 400})
    assert not big.ok and "MB one person may keep" in big.message
    # replacing one of your own documents does not count twice
    (again,) = _private(kb, tmp_path / "4", ALICE, {"a.md": "# A\n\nOne, revised.\n"}, replace=True)
    assert again.status == "replaced"
    # the operator has no quota
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "op", {"c.md": "# C\n\nThree.\n"})))


def test_a_person_at_their_quota_is_refused_before_anything_is_read_or_embedded(tmp_path: Path, monkeypatch) -> None:
    import time

    import rag.ingestion

    kb = _kb(tmp_path, max_documents_per_user=2)
    assert all(r.ok for r in _private(kb, tmp_path / "1", ALICE, {"a.md": "# A\n\nOne.\n", "b.md": "# B\n\nTwo.\n"}))
    read = []
    real = rag.ingestion.prepare
    monkeypatch.setattr(rag.ingestion, "prepare", lambda name, *a, **k: read.append(name) or real(name, *a, **k))
    started = time.perf_counter()
    big = "The crimson pier closes at 19:00. " * 55_000  # 1.9 million characters
    (report,) = _private(kb, tmp_path / "2", ALICE, {"big.txt": big})
    assert not report.ok and "you have 2 documents, the most one person may keep" in report.message
    assert read == [] and time.perf_counter() - started < 2  # refused before reading, chunking or embedding
    (same,) = _private(kb, tmp_path / "3", ALICE, {"a.md": "# A\n\nOne.\n"})  # the same bytes: unchanged
    assert same.ok and same.status == "unchanged"
    batch = {"c.md": "# C\n\nThree.\n", "d.md": "# D\n\nFour.\n", "e.md": "# E\n\nFive.\n"}
    two = _private(kb, tmp_path / "4", BOB, batch)
    assert [r.ok for r in two] == [True, True, False] and read[-2:] == ["c.md", "d.md"]  # one batch counts too


def test_the_cli_lists_snapshots_and_restores_the_previous_one(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    junk = write_docs(tmp_path / "junk", {"warranty.md": "# Junk\n\nNo warranty at all.\n"})
    assert kb.add_files(junk, placement=Placement(replace=True))[0].status == "replaced"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return rag_cli(tmp_path / "data", *args)

    listed = cli("snapshots")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "+warranty.md -warranty.md" in listed.stdout and "snapshots kept" in listed.stdout
    restored = cli("restore", "previous")
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert "Restored the shared documents" in restored.stdout and "To undo: python -m rag restore" in restored.stdout
    assert kb.refresh() and "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    refused = cli("add", str(junk[0]))
    assert refused.returncode == 1 and "not added" in refused.stdout


def test_abandoned_private_documents_expire_by_their_owners_kind(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    kb = _kb(tmp_path, upload_ttl_hours=24, user_upload_ttl_days=90)
    tab = Identity("tab-x").tag  # a browser session nobody can reach once the tab is closed
    (gone,) = _private(kb, tmp_path / "s", tab, {"scratch.md": "# Scratch\n\nThe olive crate is in bay 3.\n"})
    (kept,) = _private(kb, tmp_path / "u", ALICE, {"notes.md": "# Notes\n\nThe amber gate code is 4471.\n"})
    now = datetime.now(timezone.utc)
    assert kb.expire_abandoned(now + timedelta(hours=1)) == []
    expired = kb.expire_abandoned(now + timedelta(hours=25))
    assert [d.doc_id for d in expired] == [gone.doc_id]
    assert kb.documents_for(ALICE)[0].name == "notes.md"
    assert [d.doc_id for d in kb.expire_abandoned(now + timedelta(days=91))] == [kept.doc_id]
    assert not (tmp_path / "data" / "uploads" / gone.doc_id).exists()
    assert sorted(d.name for d in kb.list_documents()) == ["company_overview.md", "warranty.md"]


def test_a_reindex_keeps_every_document_in_its_own_collection(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    (mine,) = _private(kb, tmp_path, ALICE, {"notes.md": "# Notes\n\nThe amber gate code is 4471.\n"})
    before = {d.doc_id: (d.name, d.owner) for d in kb.list_documents()}
    assert all(r.ok for r in kb.reindex())
    assert {d.doc_id: (d.name, d.owner) for d in kb.list_documents()} == before
    assert kb.search("amber gate code", fusion="keyword", viewer=BOB) == []
    assert kb.search("amber gate code", fusion="keyword", viewer=ALICE)[0].doc_id == mine.doc_id
