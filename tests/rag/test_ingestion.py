"""Ingestion: every format keeps its location, every bad file gets its own sentence and changes
nothing, legacy encodings decode to the right characters, and chunking never breaks a character."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import KnowledgeBase
from rag.chunking import Chunker
from rag.decoding import decode_text
from rag.embedding import get_embedder
from rag.errors import IngestError
from rag.records import Section
from tests.conftest import FORMAT_DOCS, MULTILINGUAL_DOCS, REPO, make_pdf, rag_settings, write_docs

SAMPLE_DOCS = REPO / "sample_kb" / "docs"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _index_files(data_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(data_dir)): p.stat().st_mtime_ns for p in data_dir.rglob("*") if p.is_file()}


def test_every_format_ingests_with_its_location(tmp_path: Path) -> None:
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
    seen: list[float] = []
    reports = kb.add_files(write_docs(tmp_path / "in", FORMAT_DOCS), progress=lambda f, m: seen.append(f))

    assert [r.status for r in reports] == ["added"] * len(FORMAT_DOCS), [r.message for r in reports]
    assert seen == sorted(seen) and seen[-1] == 1.0
    expected = {
        "zebracorn": ("notes.txt", "lines 1-6"),
        "quillfeather": ("battery.md", "section Charging > Cold weather"),
        "quokkaberry": ("policy.html", "section Returns > Refunds"),
        "marmalade": ("report.pdf", "page 2"),
        "snorkelbird": ("warranty.docx", "section Claims"),
    }
    for word, (source, location) in expected.items():
        top = kb.search(word, fusion="keyword")[0]
        assert (top.source, top.location) == (source, location)
        assert word in top.text
    assert kb.search("scriptword", fusion="keyword") == []  # <script> text is not indexed
    table = kb.search("Battery Months", fusion="keyword")[0]
    assert table.source == "warranty.docx" and "Battery | 12" in table.text  # docx tables kept as rows


def test_bad_files_get_their_own_sentence_and_leave_the_index_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = KnowledgeBase.from_settings(rag_settings(data, max_upload_mb=0.05)).open()
    kb.add_files(write_docs(tmp_path / "first", {"first.md": "# First\n\nThe first document.\n"}))
    before = kb.snapshot_id
    bad = {
        "empty.txt": b"",
        "blank.md": b"  \n\n  ",
        "binary.txt": bytes(range(256)) * 4,
        "photo.txt": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "broken.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage",
        "scan.pdf": make_pdf([""]),
        "broken.docx": b"PK\x03\x04 this is not a zip archive",
        "huge.txt": b"word " * 20_000,
        "sheet.xlsx": b"PK\x03\x04",
        "mystery.txt": b"\x81\x8d\x8f\x90\x9d" * 40,
    }
    good = {
        "good.md": b"# Good\n\nThis one goes in.\n",
        "legacy_ko.txt": "배터리 충전 규정: 영하 10도 이하에서는 충전하지 마십시오.".encode("cp949"),
    }
    reports = kb.add_files(write_docs(tmp_path / "batch", {**bad, **good}))

    by_name = {r.name: r for r in reports}
    phrases = {
        "empty.txt": "is empty",
        "blank.md": "is empty",
        "binary.txt": "binary",
        "photo.txt": "PNG image",
        "broken.pdf": "could not be read as a PDF",
        "scan.pdf": "no extractable text",
        "broken.docx": "could not be read as a Word document",
        "huge.txt": "upload limit",
        "sheet.xlsx": "could not be read as an Excel workbook",
        "mystery.txt": "encoding could not be recognised",
    }
    for name, phrase in phrases.items():
        report = by_name[name]
        assert not report.ok and report.status == "error" and report.chunks == 0
        assert phrase in report.message and report.message.startswith(name), report.message
    assert len({by_name[n].message for n in phrases if n != "blank.md"}) == len(phrases) - 1
    assert by_name["good.md"].ok and by_name["legacy_ko.txt"].ok
    assert "decoded from cp949" in by_name["legacy_ko.txt"].message
    assert sorted(d.name for d in kb.list_documents()) == ["first.md", "good.md", "legacy_ko.txt"]
    assert kb.snapshot_id != before
    assert "영하 10도" in kb.search("충전 규정 영하", fusion="keyword")[0].text

    # A batch of nothing but bad files writes nothing at all.
    files_before, snapshot = _index_files(data), kb.snapshot_id
    reports = kb.add_files(write_docs(tmp_path / "bad_only", bad))
    assert not any(r.ok for r in reports)
    assert kb.snapshot_id == snapshot and _index_files(data) == files_before
    assert sorted(p.name for p in (data / "uploads").iterdir()) == sorted(d.doc_id for d in kb.list_documents())


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("배터리 팩은 섭씨 15도에서 25도 사이의 건조한 창고에 보관해야 합니다.", "euc_kr"),
        ("배터리 팩은 섭씨 15도에서 25도 사이의 건조한 창고에 보관해야 합니다.", "cp949"),
        ("飛行前にバッテリーの残量が八十パーセント以上であることを確認します。", "cp932"),
        ("飛行前にバッテリーの残量が八十パーセント以上であることを確認します。", "euc_jp"),
        ("每台无人机出厂前必须完成十五分钟的自动试飞。", "gb18030"),
        ("Dispečer obavještava bolnice o kašnjenju; ručak košta pet eura, đaci plaćaju manje.", "cp1250"),
        ("Аккумуляторы нельзя заряжать при отрицательной температуре.", "cp1251"),
        ("The café’s naïve “smart quotes” – and a résumé.", "cp1252"),
        ("Өвлийн нислэгийн журам: батерейг халаана.", "utf-16"),
        ("Өвлийн нислэгийн журам: батерейг халаана.", "utf-8-sig"),
    ],
)
def test_legacy_encodings_decode_to_the_right_characters(text: str, encoding: str) -> None:
    decoded, _ = decode_text(text.encode(encoding), "doc.txt")
    assert decoded == text
    assert "\ufffd" not in decoded


@pytest.mark.parametrize("text", ["Café", "Die Größe der Drohne: 12 kg. Prüfung täglich.", "Öl wechseln"])
def test_a_short_latin1_text_with_umlauts_is_read_not_refused(text: str) -> None:
    """Too few accented bytes for a statistical guess, but accents inside ASCII words read as cp1252."""
    assert decode_text(text.encode("latin-1"), "notes.txt") == (text, "cp1252")


def test_undecidable_or_binary_text_is_refused_not_garbled() -> None:
    for data, phrase in [
        ("Да нет".encode("cp1251"), "too little non-ASCII text"),  # short Cyrillic: no guess, no mojibake
        (b"\x00\x01\x02binary\x00" * 20, "binary"),
        (b"%PDF-1.7 renamed", "is a PDF"),
    ]:
        with pytest.raises(IngestError, match=phrase):
            decode_text(data, "doc.txt")


def _language_texts() -> dict[str, str]:
    """The sample knowledge base's documents in each language when present, else the test corpus."""
    wanted = {"ko": None, "ja": None, "zh": None, "hr": None, "mn": None}
    if SAMPLE_DOCS.is_dir():
        for path in sorted(SAMPLE_DOCS.iterdir()):
            lang = path.stem.rsplit("_", 1)[-1]
            if lang in wanted and wanted[lang] is None and path.suffix in (".md", ".txt"):
                wanted[lang] = path.read_text(encoding="utf-8")
    for name, text in MULTILINGUAL_DOCS.items():
        lang = name[:2]
        if wanted[lang] is None:
            wanted[lang] = text * 4
    return {lang: text for lang, text in wanted.items() if text}


@pytest.mark.parametrize("lang", ["ko", "ja", "zh", "hr", "mn"])
def test_multilingual_chunks_keep_every_character(lang: str) -> None:
    text = _language_texts()[lang]
    chunker = Chunker(48, 8, get_embedder("all-MiniLM-L6-v2").tokenize)
    chunks = chunker.chunk([Section(text)])

    assert len(chunks) > 2
    covered = [False] * len(text)
    for chunk in chunks:
        assert "\ufffd" not in chunk.text
        start = text.find(chunk.text)
        assert start >= 0, "a chunk is not an exact substring of the document"
        covered[start : start + len(chunk.text)] = [True] * len(chunk.text)
        json.loads(json.dumps(chunk.text, ensure_ascii=False))  # survives the manifest's JSON
    missing = [ch for ch, seen in zip(text, covered, strict=True) if not seen and not ch.isspace()]
    assert missing == []


@pytest.mark.parametrize("chunk_size", [48, 384])
def test_long_paragraphs_are_split_to_fit_the_embedding_window(tmp_path: Path, chunk_size: int) -> None:
    # One 600-token paragraph: every chunk must fit what the embedding model reads, measured with
    # its real tokenizer (not the padded/truncated one the model uses when embedding).
    sentence = "The Tern T6 drone carries a CryoPod CP-3 container on routes of up to 42 kilometres. "
    (tmp_path / "long.txt").write_text(sentence * 35)
    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data", chunk_size=chunk_size, chunk_overlap=8)).open()
    [report] = kb.add_files([tmp_path / "long.txt"])
    assert report.ok, report.message
    limit = min(chunk_size, kb.stats().effective_chunk_size)
    sizes = [len(kb.embedder.tokenize(p.text)) for p in kb.search("Tern T6 CryoPod CP-3 route length", top_k=50)]
    assert report.chunks >= 600 // limit and sizes and max(sizes) <= limit


@pytest.mark.parametrize(
    "text",
    [
        "😀" * 30_000,  # one unknown token to the tokenizer: 30,000 characters
        "a" * 60_000,  # one 60,000-character word
        "电池在充电前必须检查温度" * 500,  # Chinese without punctuation
        ("Gusts above 38 km/h ground the Tern T12 " * 1500).replace(" ", "\u00a0"),  # one 60,000-character line
        "Seals are replaced every 500 hours. " * 1200 + "\n\n" + "x" * 25_000,  # past a 20,000-character block
    ],
    ids=["emoji", "one-word", "chinese", "one-line", "blocks"],
)
def test_no_chunk_exceeds_the_chunk_size_whatever_the_script_or_breaks(text: str) -> None:
    from rag.chunking import CHARS_PER_TOKEN

    tokenize = get_embedder("all-MiniLM-L6-v2").tokenize
    chunks = Chunker(48, 8, tokenize).chunk([Section(text)])
    assert len(chunks) > 2
    assert max(len(c.text) for c in chunks) <= 48 * CHARS_PER_TOKEN
    assert max(len(tokenize(c.text)) for c in chunks) <= 48
    assert all(text.find(c.text) >= 0 for c in chunks)  # still exact substrings, so places can be cited


@pytest.mark.slow
def test_several_large_texts_ingested_at_once_are_all_added(tmp_path: Path) -> None:
    """Three 1.99M-character texts at once: two were refused with "could not be read (TimeoutError)" (NLTK's
    regex time limit inside the sentence splitter, under contention). Three texts of the kinds that were slowest
    (prose, Chinese without punctuation, one long line; 150,000-200,000 characters each, since the splitter reads
    at most 20,000 characters at a time whatever the size), added by three threads at once as the app's document
    workers do, are all added now."""
    import threading

    kb = KnowledgeBase.from_settings(rag_settings(tmp_path / "data")).open()
    texts = {
        "prose.txt": "The crimson pier closes at 19:00 and reopens at dawn for the drone crews " * 2_500,
        "chinese.txt": "电池在充电前必须检查温度并记录在日志中" * 8_000,
        "line.txt": ("Gusts above 38 km/h ground the Tern T12 " * 5_000).replace(" ", "\u00a0"),
    }
    paths = write_docs(tmp_path / "big", texts)
    reports: dict[str, list] = {}
    threads = [threading.Thread(target=lambda p=p: reports.update({p.name: kb.add_files([p])})) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert sorted(reports) == sorted(texts)
    assert all(r[0].ok for r in reports.values()), [r[0].message for r in reports.values()]
    assert {d.name for d in kb.list_documents()} == set(texts)


def _docx_bomb() -> tuple[bytes, bytes]:
    """(a .docx of 2 million empty paragraphs, 327 KB zipped; the small document it was made from)."""
    import io
    import zipfile

    from tests.conftest import make_docx

    base = make_docx("Title", [("Intro", ["Hello world."])])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"</w:body>", b"<w:p/>" * 2_000_000 + b"</w:body>")
            zout.writestr(item.filename, data)
    return out.getvalue(), base


def test_a_docx_with_two_million_empty_paragraphs_is_refused_in_a_second() -> None:
    """It ran for 25 minutes at 3.9 GB inside python-docx; now its markup is counted first, in the bounded
    child process the app reads it in."""
    import time

    from rag.readers.bounded import ReadBounds, read_sections_bounded
    from rag.readers.docx_reader import read_docx

    bomb, base = _docx_bomb()
    started = time.perf_counter()
    with pytest.raises(IngestError, match="more than 100,000 paragraphs"):
        read_sections_bounded("bomb.docx", bomb, ReadBounds())
    assert time.perf_counter() - started < 5
    assert read_docx("fine.docx", base)[0][0].text == "Intro\nHello world."


def test_structured_files_are_read_within_a_deadline_and_a_memory_ceiling() -> None:
    """PDF, DOCX and HTML are parsed in a child process that is killed at `parse_timeout_s` and cannot map more
    than `parse_memory_mb`; either way the file gets one sentence and the caller goes on."""
    import time

    from rag.readers.bounded import ReadBounds, read_sections_bounded
    from tests.conftest import make_docx

    docx = make_docx("Title", [("Intro", ["Hello world."])])
    sections, _ = read_sections_bounded("fine.docx", docx, ReadBounds(60, 2048))
    assert sections[0].text == "Intro\nHello world."  # read in the child, returned whole

    started = time.perf_counter()
    with pytest.raises(IngestError, match=r"^slow\.docx took longer than 0\.001 s to read, so reading it was stopped"):
        read_sections_bounded("slow.docx", docx, ReadBounds(0.001, 2048))
    assert time.perf_counter() - started < 10
    with pytest.raises(IngestError, match=r"^big\.docx needs more than 16 MB of memory to read"):
        read_sections_bounded("big.docx", docx, ReadBounds(60, 16))
    with pytest.raises(IngestError, match=r"^damaged\.docx"):  # the reader's own sentence comes back from the child
        read_sections_bounded("damaged.docx", b"PK\x03\x04 not a zip", ReadBounds(60, 2048))


def test_a_document_with_more_text_than_the_limit_is_refused_before_embedding() -> None:
    from rag.readers import MAX_DOCUMENT_CHARS, read_sections

    line = "Batteries are stored between 15 and 25 degrees Celsius in a dry room.\n"
    huge = line * (MAX_DOCUMENT_CHARS // len(line) + 10)
    with pytest.raises(IngestError, match="the limit is 2,000,000"):
        read_sections("huge.txt", huge.encode())
    assert read_sections("fine.txt", (line * 100).encode())[0]
