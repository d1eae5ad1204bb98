"""Recovery of shared documents: the shared history keeps every deleted or replaced shared document
restorable by name for `shared_history_days`, whatever private churn or a re-index does to the snapshots,
and a whole snapshot restores across a re-index."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from core.identity import Identity
from rag import DocumentNotFoundError, KnowledgeBase, Placement
from tests.conftest import rag_cli, rag_settings, write_docs

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REPO = Path(__file__).resolve().parents[2]
SHARED = {
    "company_overview.md": "# Overview\n\nSkyharbor builds the Tern T12 delivery drone in Rijeka.\n",
    "warranty.md": "# Warranty\n\nThe battery warranty lasts 24 months from delivery.\n",
}
ALICE = Identity("tab-a", "alice").tag


def _kb(tmp_path: Path, **changes: object) -> KnowledgeBase:
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data", **changes)).open()
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    return kb


def _doc_id(kb: KnowledgeBase, name: str) -> str:
    return next(d.doc_id for d in kb.list_documents() if d.name == name)


def _churn(kb: KnowledgeBase, tmp_path: Path, n: int) -> None:
    """`n` private uploads by one person, one snapshot each (attack 8 of issue 21 made 11 in one second)."""
    for i in range(n):
        docs = write_docs(tmp_path / f"churn{i}", {f"note{i}.md": f"# Note {i}\n\nPallet {i} waits in bay {i}.\n"})
        assert kb.add_files(docs, placement=Placement(ALICE, ALICE))[0].ok


def test_private_churn_cannot_flush_a_deleted_shared_document(tmp_path: Path) -> None:
    kb = _kb(tmp_path, index_snapshots_kept=3, max_documents_per_user=50)
    warranty = _doc_id(kb, "warranty.md")
    kb.delete(warranty, allowed={ALICE, None})  # a permitted shared writer
    _churn(kb, tmp_path, 11)

    assert all("warranty.md" not in [d.name for d in m.documents] for m in kb.snapshots())  # the snapshots forgot
    assert [h.entry.name for h in kb.shared_history()] == ["warranty.md"]  # the shared history did not
    assert (tmp_path / "data" / "uploads" / warranty).is_dir()

    report = kb.restore_document("warranty.md")
    assert report.ok and report.doc_id == warranty
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    assert kb.shared_history() == ()  # back in the index: no longer in the history
    assert len(kb.documents_for(ALICE)) == 13  # the private documents are untouched


def test_a_replaced_shared_document_comes_back_by_name_and_the_restore_can_be_undone(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    junk = write_docs(tmp_path / "junk", {"warranty.md": "# Junk\n\nNo warranty at all.\n"})
    assert kb.add_files(junk, placement=Placement(replace=True))[0].status == "replaced"

    back = kb.restore_document("warranty.md")
    assert back.ok and back.status == "replaced"
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    (kept,) = kb.shared_history()  # the junk version is now the one kept: the restore can be undone
    assert kb.restore_document(kept.entry.doc_id).ok
    reopened = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
    assert "No warranty" in reopened.search("no warranty at all", fusion="keyword")[0].text
    with pytest.raises(DocumentNotFoundError, match=r"No deleted or replaced shared document named 'manual\.md'"):
        kb.restore_document("manual.md")


def test_a_re_index_keeps_the_shared_history_and_earlier_snapshots_restore_across_it(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    original = kb.snapshot_id
    kb.delete(_doc_id(kb, "warranty.md"))
    assert all(r.ok for r in kb.reindex())
    assert [h.entry.name for h in kb.shared_history()] == ["warranty.md"]

    _, after = kb.restore(original)  # the snapshot from before the re-index (its vector ids were reused)
    assert sorted(d.name for d in kb.list_documents()) == ["company_overview.md", "warranty.md"]
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    assert "Rijeka" in kb.search("Tern T12 Rijeka", fusion="keyword")[0].text
    reopened = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
    assert reopened.stats().chunks == kb.stats().chunks == sum(d.chunks for d in after.documents)

    kb.delete(_doc_id(kb, "warranty.md"))
    assert all(r.ok for r in kb.reindex())
    assert kb.restore_document("warranty.md").ok  # by name, across a second re-index
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text


def test_the_shared_history_expires_after_its_days_and_never_holds_private_documents(tmp_path: Path) -> None:
    kb = _kb(tmp_path, index_snapshots_kept=1, shared_history_days=2 / 86400)  # two seconds
    warranty = _doc_id(kb, "warranty.md")
    kb.delete(warranty)
    (mine,) = kb.add_files(
        write_docs(tmp_path / "p", {"secret.md": "# Secret\n\nThe jade vault opens on Fridays.\n"}),
        placement=Placement(ALICE, ALICE),
    )
    kb.delete(mine.doc_id, allowed={ALICE})
    assert [h.entry.name for h in kb.shared_history()] == ["warranty.md"]  # the private one is not kept
    assert not (tmp_path / "data" / "uploads" / mine.doc_id).exists()
    assert (tmp_path / "data" / "uploads" / warranty).is_dir()

    time.sleep(3)
    _churn(kb, tmp_path, 1)  # the next save drops what is past its days, and prunes its original
    assert kb.shared_history() == ()
    assert not (tmp_path / "data" / "uploads" / warranty).exists()
    with pytest.raises(DocumentNotFoundError, match="restorable now: none"):
        kb.restore_document("warranty.md")


def test_the_cli_restores_one_document_and_lists_the_shared_history(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    kb.delete(_doc_id(kb, "warranty.md"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return rag_cli(tmp_path / "data", *args)

    listed = cli("snapshots")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "Deleted or replaced shared documents" in listed.stdout and "warranty.md" in listed.stdout
    unclear = cli("restore")
    assert unclear.returncode == 2 and "--document NAME" in unclear.stderr
    missing = cli("restore", "--document", "manual.md")
    assert missing.returncode == 1 and "No deleted or replaced shared document named 'manual.md'" in missing.stderr
    restored = cli("restore", "--document", "warranty.md")
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert "warranty.md" in restored.stdout and "Added" in restored.stdout
    assert kb.refresh() and "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
