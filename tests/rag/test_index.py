"""The persistent index: one document in or out without a rebuild, crash safety, the embedding
model guard, re-indexing, thread safety, first-start seeding, and the typed manifest (today's
format opens, unknown fields survive) with `read_snapshot` for readers that load no model."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import rag.storage
from answer.ports import Retriever, Snapshot, content_id
from core.bm25_tokens import TOKENIZER_VERSION
from rag import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexMismatchError,
    IndexWriteError,
    KnowledgeBase,
    Placement,
    ensure_sample_index,
    read_snapshot,
)
from rag.embedding import get_embedder
from rag.manifest import DocumentEntry, Manifest, ManifestError
from tests.conftest import rag_settings, write_docs

DOCS = {
    "alpha.md": "# Alpha\n\nThe alpha drone carries the turquoise payload over the bay.\n",
    "bravo.md": "# Bravo\n\nThe bravo dock charges batteries at the harbour station.\n",
    "charlie.md": "# Charlie\n\nThe charlie team repairs propellers in the workshop.\n",
}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _kb(tmp_path: Path, docs: dict[str, str] = DOCS, **changes: object) -> KnowledgeBase:
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data", **changes)).open()
    reports = kb.add_files(write_docs(tmp_path / "in", docs))
    assert all(r.ok for r in reports), [r.message for r in reports]
    return kb


def _current_manifest(data_dir: Path) -> dict:
    """Read the manifest the documented way, with nothing but the standard library."""
    pointer = (data_dir / "index" / "CURRENT").read_text(encoding="utf-8").strip()
    return json.loads((data_dir / "index" / pointer / "manifest.json").read_text(encoding="utf-8"))


def _ids(kb: KnowledgeBase, name: str) -> list[str]:
    doc_id = next(d.doc_id for d in kb.list_documents() if d.name == name)
    return [p.chunk_id for p in kb.search(name.split(".")[0], top_k=10, fusion="keyword") if p.doc_id == doc_id]


def test_manifest_is_plain_json_at_the_documented_path(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    manifest = _current_manifest(tmp_path / "data")
    assert manifest["snapshot_id"] == kb.snapshot_id
    assert manifest["embed_model"] == "all-MiniLM-L6-v2" and manifest["dim"] == 384
    assert manifest["created_at"].endswith("Z")
    assert (manifest["chunk_size"], manifest["chunk_overlap"]) == (384, 48)
    assert {d["name"] for d in manifest["documents"]} == set(DOCS)
    for doc in manifest["documents"]:
        assert {"doc_id", "name", "sha256", "chunks", "added_at"} <= set(doc)
        assert (tmp_path / "data" / doc["upload"]).read_text(encoding="utf-8") == DOCS[doc["name"]]


def test_one_document_goes_in_and_out_without_a_rebuild(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    data = tmp_path / "data"
    segments = {p.name: p.stat().st_ino for p in (data / "index" / "segments").iterdir()}
    vectors = kb._live.current().vectors  # the in-memory FAISS store, to show it is patched, not rebuilt
    alpha_ids, snapshot = _ids(kb, "alpha.md"), kb.snapshot_id

    (report,) = kb.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))
    assert report.status == "added" and kb.snapshot_id != snapshot
    assert kb._live.current().vectors is vectors and len(vectors) == 4
    assert _ids(kb, "alpha.md") == alpha_ids  # other documents keep their chunk ids
    after_add = {p.name: p.stat().st_ino for p in (data / "index" / "segments").iterdir()}
    assert {k: after_add[k] for k in segments} == segments and len(after_add) == 4  # old segments untouched

    bravo = next(d.doc_id for d in kb.list_documents() if d.name == "bravo.md")
    snapshot = kb.snapshot_id
    kb.delete(bravo)
    assert kb.snapshot_id != snapshot and kb._live.current().vectors is vectors and len(vectors) == 3
    assert [d.name for d in kb.list_documents()] == ["alpha.md", "charlie.md", "delta.md"]
    assert all(p.source != "bravo.md" for p in kb.search("bravo dock harbour batteries", top_k=10))
    assert kb.search("Which drone carries the turquoise payload?")[0].source == "alpha.md"
    assert (data / "uploads" / bravo).exists()  # a deleted shared document stays restorable (an older snapshot)
    with pytest.raises(DocumentNotFoundError, match="No document with id 'nope'"):
        kb.delete("nope")

    reopened = KnowledgeBase.from_settings(rag_settings(data)).open()
    assert reopened.snapshot_id == kb.snapshot_id
    assert [d.name for d in reopened.list_documents()] == ["alpha.md", "charlie.md", "delta.md"]
    assert reopened.search("Who repairs propellers?")[0].source == "charlie.md"


def test_same_bytes_are_kept_once_and_a_new_version_replaces_the_old_only_when_asked(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    snapshot = kb.snapshot_id
    (same,) = kb.add_files([tmp_path / "in" / "alpha.md"])
    assert same.status == "unchanged" and same.ok and kb.snapshot_id == snapshot

    new = "# Alpha\n\nThe alpha drone now carries the crimson payload.\n"
    (refused,) = kb.add_files(write_docs(tmp_path / "v2", {"alpha.md": new}))
    assert not refused.ok and "already in the shared knowledge base" in refused.message
    assert kb.snapshot_id == snapshot  # a name collision never silently replaces
    (replaced,) = kb.add_files([tmp_path / "v2" / "alpha.md"], placement=Placement(replace=True))
    assert replaced.status == "replaced"
    assert [d.name for d in kb.list_documents()].count("alpha.md") == 1
    assert kb.search("crimson payload", fusion="keyword")[0].source == "alpha.md"
    assert kb.search("turquoise", fusion="keyword") == []


def _fail_writing_manifest(real_write):
    def write(path: Path, data: bytes) -> None:
        if path.name == rag.storage.MANIFEST:
            path.write_bytes(data[: len(data) // 2])  # a torn write, then the crash
            raise OSError(28, "No space left on device")
        real_write(path, data)

    return write


@pytest.mark.parametrize("crash_at", ["stored original", "segment vectors", "manifest", "CURRENT pointer"])
def test_a_crash_mid_save_leaves_the_last_good_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    kb = _kb(tmp_path)
    data, good_snapshot = tmp_path / "data", kb.snapshot_id
    if crash_at == "segment vectors":
        monkeypatch.setattr(rag.storage.np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    elif crash_at == "manifest":
        monkeypatch.setattr(rag.storage, "_write_file", _fail_writing_manifest(rag.storage._write_file))
    else:  # the rename that publishes a file written by core.files.atomic_write_bytes
        real_replace, target = os.replace, "CURRENT" if crash_at == "CURRENT pointer" else "delta.md"
        monkeypatch.setattr(
            os,
            "replace",
            lambda src, dst: (
                (_ for _ in ()).throw(OSError(5, "I/O error")) if Path(dst).name == target else real_replace(src, dst)
            ),
        )

    with pytest.raises(IndexWriteError, match=r"could not be saved .*; the previous version is kept"):
        kb.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))
    monkeypatch.undo()

    assert kb.snapshot_id == good_snapshot  # memory was never patched
    reopened = KnowledgeBase.from_settings(rag_settings(data)).open()
    assert reopened.snapshot_id == good_snapshot
    assert [d.name for d in reopened.list_documents()] == list(DOCS)
    assert reopened.search("Which drone carries the turquoise payload?")[0].source == "alpha.md"

    # The next save works and sweeps away what the crash left behind.
    reports = reopened.add_files([tmp_path / "more" / "delta.md"])
    assert reports[0].status == "added"
    leftovers = [p.name for p in data.rglob("*.tmp*")]
    assert leftovers == []
    manifest = _current_manifest(data)
    on_disk = {p.name for p in (data / "index" / "segments").iterdir()}
    assert on_disk <= {d["segment"] for d in manifest["documents"]} | _older_segments(data)


def _older_segments(data: Path) -> set[str]:
    names = set()
    for manifest in (data / "index" / "snapshots").glob("*/manifest.json"):
        names |= {d["segment"] for d in json.loads(manifest.read_text())["documents"]}
    return names


def test_an_unreadable_current_snapshot_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    first = kb.snapshot_id
    kb.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))
    data = tmp_path / "data"
    (data / "index" / "snapshots" / kb.snapshot_id / "manifest.json").write_text("{ torn")

    reopened = KnowledgeBase.from_settings(rag_settings(data)).open()
    assert reopened.snapshot_id == first and len(reopened.list_documents()) == 3


def test_an_index_built_with_another_embedding_model_is_refused(tmp_path: Path) -> None:
    _kb(tmp_path)
    data = tmp_path / "data"
    other = rag_settings(data, embed_model="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2")
    with pytest.raises(IndexMismatchError, match="built with the embedding model 'all-MiniLM-L6-v2'"):
        KnowledgeBase.from_settings(other).open()
    # Another spelling of the same model is the same model.
    same = KnowledgeBase.from_settings(rag_settings(data, embed_model="sentence-transformers/all-MiniLM-L6-v2")).open()
    assert len(same.list_documents()) == 3

    class WiderEmbedder:  # same name, other dimension: caught when the model is first used
        name, dim, max_tokens = "all-MiniLM-L6-v2", 768, 256

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 768), np.float32) / np.sqrt(768)

    wider = KnowledgeBase.from_settings(rag_settings(data), embedder=WiderEmbedder()).open()
    with pytest.raises(IndexMismatchError, match="384-dimensional vectors"):
        wider.search("turquoise payload")


def test_reindex_rebuilds_everything_with_new_settings(tmp_path: Path) -> None:
    long_doc = {"long.md": "# Long\n\n" + " ".join(f"Sentence {i} about the hangar rota." for i in range(120))}
    kb = _kb(tmp_path, {**DOCS, **long_doc})
    data = tmp_path / "data"
    dates = {d.doc_id: d.added_at for d in kb.list_documents()}
    chunks_before = {d.name: d.chunks for d in kb.list_documents()}
    # Pretend the index came from another model: opening refuses it, reindex rebuilds it.
    pointer = (data / "index" / "CURRENT").read_text().strip()
    manifest_path = data / "index" / pointer / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["embed_model"] = "some-old-model"
    manifest_path.write_text(json.dumps(manifest))
    smaller = rag_settings(data, chunk_size=64, chunk_overlap=8)
    with pytest.raises(IndexMismatchError):
        KnowledgeBase.from_settings(smaller).open()

    rebuilt = KnowledgeBase.from_settings(smaller)
    reports = rebuilt.reindex()
    assert all(r.ok for r in reports) and len(reports) == 4
    assert {d.doc_id: d.added_at for d in rebuilt.list_documents()} == dates
    assert {d.name: d.chunks for d in rebuilt.list_documents()}["long.md"] > chunks_before["long.md"]
    fresh = KnowledgeBase.from_settings(smaller).open()
    assert fresh.stats().effective_chunk_size == 64 and fresh.stats().embed_model == "all-MiniLM-L6-v2"
    assert fresh.search("Which team repairs propellers?")[0].source == "charlie.md"

    shutil.rmtree(data / "uploads" / next(d.doc_id for d in fresh.list_documents() if d.name == "bravo.md"))
    reports = fresh.reindex()
    assert [r.name for r in reports if not r.ok] == ["bravo.md"]
    assert "stored original is missing" in next(r.message for r in reports if not r.ok)
    assert "bravo.md" not in {d.name for d in fresh.list_documents()}


def test_searches_run_while_a_document_is_added(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                results = kb.search("Which drone carries the turquoise payload?")
                assert results and results[0].source == "alpha.md"
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(3):
            doc = {f"extra{n}.md": f"# Extra {n}\n\nExtra note number {n} about the {n}th shift.\n"}
            assert kb.add_files(write_docs(tmp_path / f"x{n}", doc))[0].ok
        kb.delete(next(d.doc_id for d in kb.list_documents() if d.name == "extra0.md"))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(kb.list_documents()) == 5


def test_a_save_by_another_process_is_picked_up_not_overwritten(tmp_path: Path) -> None:
    app = _kb(tmp_path)  # say the running app
    cli = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()  # and `python -m rag ingest` beside it
    cli.add_files(write_docs(tmp_path / "cli", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))

    assert app.refresh() is True and app.refresh() is False
    assert app.search("Which drone flies the night route?")[0].source == "delta.md"
    cli.add_files(write_docs(tmp_path / "cli2", {"echo.md": "# Echo\n\nEcho checks the weather radar.\n"}))
    app.add_files(write_docs(tmp_path / "app", {"foxtrot.md": "# Foxtrot\n\nFoxtrot sorts the mail.\n"}))
    names = {d.name for d in KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open().list_documents()}
    assert {"delta.md", "echo.md", "foxtrot.md"} <= names  # the app reloaded before saving


def test_the_sample_knowledge_base_is_ingested_on_first_start_only(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    write_docs(sample, {"a.md": "# A\n\nSample one.\n", "b.txt": "Sample two.\n", "notes.json": "{}"})
    settings = rag_settings(tmp_path / "data")
    assert KnowledgeBase.from_settings(settings).sample_seeded is False
    kb = ensure_sample_index(KnowledgeBase.from_settings(settings), sample)
    assert sorted(d.name for d in kb.list_documents()) == ["a.md", "b.txt"]
    assert kb.sample_seeded and _current_manifest(settings.data_dir)["sample_seeded"] is True
    snapshot = kb.snapshot_id
    assert (
        ensure_sample_index(KnowledgeBase.from_settings(settings), sample).snapshot_id == snapshot
    )  # second start: nothing to do
    for doc in kb.list_documents():
        kb.delete(doc.doc_id)
    assert (
        ensure_sample_index(KnowledgeBase.from_settings(settings), sample).list_documents() == []
    )  # emptied on purpose stays empty


def test_the_vector_store_speaks_llamaindex_and_deletes_by_document() -> None:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from rag.vector_store import VECTOR_ID_KEY, IdMappedFaissVectorStore

    store = IdMappedFaissVectorStore(dim=4)
    basis = np.eye(4, dtype=np.float32)
    nodes = []
    for i, doc in enumerate(["doc-a", "doc-a", "doc-b"]):
        node = TextNode(text=f"chunk {i}", embedding=basis[i].tolist(), metadata={VECTOR_ID_KEY: 100 + i})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
        nodes.append(node)
    assert store.add(nodes) == ["100", "101", "102"]
    result = store.query(VectorStoreQuery(query_embedding=basis[2].tolist(), similarity_top_k=10))
    assert result.ids[0] == "102" and len(result.ids) == 3  # k is capped at what the index holds
    store.delete("doc-a")
    assert len(store) == 1 and store.search(basis[0], 5) == [(102, 0.0)]


def test_keyword_scores_match_bm25s_through_adds_and_deletes() -> None:
    import bm25s

    from rag.keyword_index import KeywordIndex

    docs = {
        "a": [["drone", "battery", "charge", "battery"], ["drone", "propeller"]],
        "b": [["warranty", "battery", "month"]],
        "c": [["dock", "door", "seal", "dock"], ["weather", "wind", "drone"]],
        "d": [["battery", "dock"]],
    }
    index, next_id = KeywordIndex(), 0
    for key, chunks in docs.items():
        index.add(key, np.arange(next_id, next_id + len(chunks)), chunks)
        next_id += len(chunks)
    index.search(["battery"], 10)  # merges the pending postings of "battery"
    index.remove("d")  # one pending, one merged posting list to take it out of
    kept = [chunk for key in "abc" for chunk in docs[key]]
    reference = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    reference.index(kept, show_progress=False)
    query = ["battery", "drone", "unseen"]
    expected = reference.get_scores(query)
    got = {hit.id: hit.score for hit in index.search(query, 10)}
    assert sorted(got) == [i for i, score in enumerate(expected) if score > 0]
    assert np.allclose([got[i] for i in sorted(got)], expected[expected > 0], rtol=1e-5)


def test_the_embedder_is_shared_and_loaded_once() -> None:
    assert get_embedder("all-MiniLM-L6-v2") is get_embedder("sentence-transformers/all-MiniLM-L6-v2")


# -- the manifest ---------------------------------------------------------------------------------

TODAYS_MANIFEST = {  # exactly what the index has written since format 1 (key order included)
    "format": 1,
    "snapshot_id": "20261130T011355439541-dfada9",
    "parent_snapshot_id": "20261130T011355341417-a88da6",
    "created_at": "2026-11-30T01:13:55Z",
    "embed_model": "all-MiniLM-L6-v2",
    "dim": 384,
    "chunk_size": 384,
    "chunk_overlap": 48,
    "effective_chunk_size": 224,
    "keyword_tokenizer": "terms-v1",
    "next_vector_id": 246,
    "sample_seeded": True,
    "documents": [
        {
            "doc_id": "568bc0e09ec07a07",
            "name": "battery_handling_and_charging.md",
            "sha256": "568bc0e09ec07a07042a685158f77fd65477098c68788ca73d5a36f388ef7794",
            "chunks": 9,
            "added_at": "2026-11-30T01:13:54Z",
            "size_bytes": 2804,
            "segment": "568bc0e09ec07a07-20261130T011354843452-ce193d",
            "upload": "uploads/568bc0e09ec07a07/battery_handling_and_charging.md",
            "note": "",
        },
        {
            "doc_id": "8bd4b8c1b2a6e0f1",
            "name": "legacy_ko.txt",
            "sha256": "8bd4b8c1b2a6e0f1aa2b7a4c1e8e0f7c9a3b3d4e5f60718293a4b5c6d7e8f901",
            "chunks": 1,
            "added_at": "2026-11-29T08:00:00Z",
            "size_bytes": 91,
            "segment": "8bd4b8c1b2a6e0f1-20261129T080000000000-0a1b2c",
            "upload": "uploads/8bd4b8c1b2a6e0f1/legacy_ko.txt",
            "note": "decoded from cp949",
        },
    ],
}


def test_todays_manifest_reads_typed_and_writes_back_byte_for_byte() -> None:
    manifest = Manifest.from_json(json.loads(json.dumps(TODAYS_MANIFEST)))
    pairs = [(d["name"], d["sha256"]) for d in TODAYS_MANIFEST["documents"]]
    assert manifest.snapshot == Snapshot("20261130T011355439541-dfada9", "2026-11-30T01:13:55Z", content_id(pairs))
    assert (manifest.dim, manifest.next_vector_id, manifest.sample_seeded) == (384, 246, True)
    battery, legacy = manifest.documents
    assert isinstance(battery, DocumentEntry) and battery.chunks == 9 and legacy.note == "decoded from cp949"
    assert manifest.document("8bd4b8c1b2a6e0f1") is legacy and manifest.document("nope") is None
    assert manifest.to_json() == TODAYS_MANIFEST
    assert list(manifest.to_json()) == list(TODAYS_MANIFEST)
    assert list(manifest.to_json()["documents"][0]) == list(TODAYS_MANIFEST["documents"][0])
    assert manifest.dumps() == json.dumps(TODAYS_MANIFEST, ensure_ascii=False, indent=1).encode()
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.snapshot_id = "other"  # type: ignore[misc]


def test_unknown_fields_survive_and_missing_optional_ones_get_defaults() -> None:
    newer = json.loads(json.dumps(TODAYS_MANIFEST))
    newer["retention_days"] = 30
    newer["documents"][0]["tags"] = ["battery"]
    manifest = Manifest.from_json(newer)
    assert manifest.extra == {"retention_days": 30} and manifest.documents[0].extra == {"tags": ["battery"]}
    assert manifest.to_json() == newer
    assert dataclasses.replace(manifest, snapshot_id="next").to_json()["retention_days"] == 30

    minimal = {
        "snapshot_id": "s1",
        "embed_model": "all-MiniLM-L6-v2",
        "documents": [{"doc_id": "d", "name": "a.md", "sha256": "d" * 64, "chunks": 2, "segment": "d-1"}],
    }
    manifest = Manifest.from_json(minimal)
    assert (manifest.format, manifest.dim, manifest.created_at, manifest.parent_snapshot_id) == (1, None, "", None)
    assert (manifest.next_vector_id, manifest.sample_seeded, manifest.keyword_tokenizer) == (0, False, "")
    doc = manifest.documents[0]
    assert (doc.note, doc.added_at, doc.size_bytes, doc.upload) == ("", "", 0, "")


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda m: m.pop("snapshot_id"), "no 'snapshot_id'"),
        (lambda m: m.pop("documents"), "no list of documents"),
        (lambda m: m.update(dim="384"), "'dim' in the manifest is not a whole number"),
        (lambda m: m.update(format=2), "format 2, newer than this version reads"),
        (lambda m: m["documents"][0].pop("segment"), "no 'segment'"),
        (lambda m: m["documents"].append("x"), "a document entry is not an object"),
    ],
)
def test_a_manifest_that_cannot_be_trusted_is_refused(change, phrase: str) -> None:
    broken = json.loads(json.dumps(TODAYS_MANIFEST))
    change(broken)
    with pytest.raises(ManifestError, match=phrase):
        Manifest.from_json(broken)
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.parse(b"{ torn")


def _rewrite_manifest(data: Path, edit) -> None:
    """Rewrite the current manifest the way an older (or newer) writer would have left it."""
    path = data / "index" / (data / "index" / "CURRENT").read_text().strip() / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")


def test_an_index_in_todays_format_opens_and_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    _kb(tmp_path)
    data = tmp_path / "data"
    written = _current_manifest(data)
    assert list(written) == list(TODAYS_MANIFEST) and list(written["documents"][0]) == list(
        TODAYS_MANIFEST["documents"][0]
    )
    raw = (data / "index" / (data / "index" / "CURRENT").read_text().strip() / "manifest.json").read_bytes()
    assert raw == json.dumps(written, ensure_ascii=False, indent=1).encode()  # the bytes today's writer made

    def older_and_newer(m: dict) -> None:  # no counter, no tokenizer version or notes; a newer writer's extra
        for key in ("next_vector_id", "keyword_tokenizer", "sample_seeded"):
            m.pop(key)
        for doc in m["documents"]:
            doc.pop("note")
        m["retention_days"] = 30

    _rewrite_manifest(data, older_and_newer)
    reopened = KnowledgeBase.from_settings(rag_settings(data)).open()
    assert reopened.search("Which drone carries the turquoise payload?")[0].source == "alpha.md"
    assert reopened.search("propellers workshop", fusion="keyword")[0].source == "charlie.md"  # terms rebuilt
    (report,) = reopened.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies at night.\n"}))
    assert report.status == "added"
    assert sorted(reopened._live.current().chunks) == [0, 1, 2, 3]  # the lost counter moved past the loaded ids
    saved = _current_manifest(data)
    assert saved["retention_days"] == 30 and saved["next_vector_id"] == 4
    assert saved["keyword_tokenizer"] == TOKENIZER_VERSION and all("note" in d for d in saved["documents"])


def test_a_manifest_of_a_newer_format_is_not_loaded(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    first = kb.snapshot_id
    kb.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))
    data = tmp_path / "data"
    _rewrite_manifest(data, lambda m: m.update(format=2))
    assert KnowledgeBase.from_settings(rag_settings(data)).open().snapshot_id == first  # the older snapshot it can read
    for manifest in (data / "index" / "snapshots").glob("*/manifest.json"):
        manifest.write_text("[]")
    with pytest.raises(IndexCorruptError, match=r"^No snapshot of the index in .* can be read .*; restore"):
        KnowledgeBase.from_settings(rag_settings(data)).open()


def test_the_snapshot_property_says_which_index_answered(tmp_path: Path) -> None:
    empty = KnowledgeBase.from_settings(rag_settings(tmp_path / "empty"))
    assert empty.snapshot == Snapshot("empty", "") and isinstance(empty, Retriever)
    kb = _kb(tmp_path)
    data = tmp_path / "data"
    manifest = _current_manifest(data)
    pairs = [(d["name"], d["sha256"]) for d in manifest["documents"]]
    assert kb.snapshot == Snapshot(kb.snapshot_id, manifest["created_at"], content_id(pairs)) == read_snapshot(data)
    before = kb.snapshot
    kb.delete(kb.list_documents()[0].doc_id)
    assert kb.snapshot != before and kb.snapshot.snapshot_id == kb.snapshot_id
    (data / "index" / "CURRENT").write_text("snapshots/elsewhere\n")  # the property reads memory, not the disk
    assert kb.snapshot.snapshot_id == kb.snapshot_id


def test_read_snapshot_reads_the_disk_without_loading_anything_and_never_raises(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert read_snapshot(data) is None  # no index at all
    kb = _kb(tmp_path)
    first = kb.snapshot
    kb.add_files(write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"}))
    assert read_snapshot(data) == kb.snapshot != first
    assert read_snapshot(str(data), first.snapshot_id) == first  # a named, older snapshot still on disk
    assert read_snapshot(data, "20990101T000000000000-abcdef") is None
    for bad in ("../snapshots/" + first.snapshot_id, "..", "", "a/b", first.snapshot_id + "/.."):
        assert read_snapshot(data, bad) is None, bad

    index = data / "index"
    outside = tmp_path / "outside" / "snapshots" / "evil"
    outside.mkdir(parents=True)
    (outside / "manifest.json").write_text(json.dumps({"snapshot_id": "evil", "created_at": "x"}))
    (index / "snapshots" / "evil").symlink_to(outside, target_is_directory=True)
    pointers = ["../outside/snapshots/evil", "/etc", "snapshots/evil", "segments/x", "snapshots/../../outside"]
    for pointer in pointers:
        (index / "CURRENT").write_text(pointer + "\n")
        assert read_snapshot(data) is None, pointer
    (index / "CURRENT").write_bytes(b"\xff\xfe\x00garbage")
    assert read_snapshot(data) is None

    (index / "CURRENT").write_text(f"snapshots/{kb.snapshot_id}\n")
    path = index / "snapshots" / kb.snapshot_id / "manifest.json"
    for garbage in ("{ torn", "[]", '"text"', json.dumps({"snapshot_id": "another"}), "[" * 100_000):
        path.write_text(garbage)
        assert read_snapshot(data) is None, garbage[:20]
    path.write_text(json.dumps({"snapshot_id": kb.snapshot_id, "documents": 27}))  # only two fields are read
    assert read_snapshot(data) == Snapshot(kb.snapshot_id, "")
    shutil.rmtree(index)
    index.write_text("not a folder")
    assert read_snapshot(data) is None


def test_a_data_directory_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data"))
    assert kb.list_documents() == [] and kb.search("anything") == []
    with pytest.raises(IndexWriteError, match=r"^The index in .* cannot be written \(Not a directory\); check"):
        kb.add_files(write_docs(tmp_path / "in", {"alpha.md": DOCS["alpha.md"]}))


def test_a_running_app_follows_the_disk_within_seconds(tmp_path: Path) -> None:
    """`python -m rag ingest` beside a running app: the app's watcher reloads the new snapshot by itself."""
    import time

    app = _kb(tmp_path).watch(0.1)
    try:
        cli = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
        cli.add_files(write_docs(tmp_path / "cli", {"golf.md": "# Golf\n\nGolf patrols the northern coast.\n"}))
        deadline = time.monotonic() + 10
        while app.snapshot_id != cli.snapshot_id and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.snapshot_id == cli.snapshot_id
        assert app.search("Which drone patrols the northern coast?")[0].source == "golf.md"
    finally:
        app.stop_watching()


# `python -m rag`-like writer killed with SIGKILL at one point of a save (no exception, no cleanup):
KILLED_WHILE_SAVING = """
import os, signal, sys
from pathlib import Path
import rag.storage as storage
from rag import KnowledgeBase
from tests.conftest import rag_settings

data, point, document = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real_write, real_replace, real_save = storage._write_file, os.replace, storage.np.save

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def write(path, payload):
    if point == "manifest" and Path(path).name == storage.MANIFEST:
        Path(path).write_bytes(payload[: len(payload) // 2])  # torn, then killed
        die()
    return real_write(path, payload)

def replace(src, dst):
    if point == "CURRENT pointer" and Path(dst).name == "CURRENT":
        die()
    return real_replace(src, dst)

def save(*args, **kwargs):
    if point == "segment vectors":
        die()
    return real_save(*args, **kwargs)

storage._write_file, os.replace, storage.np.save = write, replace, save
KnowledgeBase.from_settings(rag_settings(data)).open().add_files([document])
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["segment vectors", "manifest", "CURRENT pointer"])
def test_a_writer_killed_with_sigkill_mid_save_leaves_the_last_good_index(tmp_path: Path, point: str) -> None:
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    kb = _kb(tmp_path)
    data, good = tmp_path / "data", kb.snapshot_id
    document = write_docs(tmp_path / "more", {"delta.md": "# Delta\n\nDelta flies the night route.\n"})[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SAVING, str(data), point, str(document)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    reopened = KnowledgeBase.from_settings(rag_settings(data)).open()
    assert reopened.snapshot_id == good
    assert [d.name for d in reopened.list_documents()] == list(DOCS)
    assert reopened.search("Which drone carries the turquoise payload?")[0].source == "alpha.md"
    assert reopened.add_files([document])[0].status == "added"  # and the next save works
    assert reopened.search("Which drone flies the night route?")[0].source == "delta.md"
