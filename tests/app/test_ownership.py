"""Who owns what, tried through the public API as strangers and attackers would: nobody changes or sees
another person's documents or adapters, the shared knowledge base changes only with the operator's leave, and
a signed-in person's uploads survive a reload and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from adapters.synthetic import write_random_adapter
from tests.conftest import build_tiny_phi3, start_app, write_docs

DOCS = {
    "company_overview.md": "# Overview\n\nSkyharbor builds the Tern T12 delivery drone in Rijeka.\n",
    "parts.md": "# Parts\n\nPart KX-4471 is the main bearing seal of the Tern T6 drone.\n",
}
USERS = "alice:wonderland,bob:builder"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3-own"), context=1024)


def _settings(tiny_settings, model_dir, data_dir, **changes):
    return tiny_settings.replace(
        model=str(model_dir), data_dir=data_dir, top_k=2, max_upload_mb=2.0, adapter_max_mb=2.0, **changes
    )


@pytest.fixture(scope="module")
def public(tiny_settings, model_dir, tmp_path_factory):
    """A public app with no sign-in: every client is a browser session; the shared documents are read-only."""
    folder = tmp_path_factory.mktemp("public")
    url, service, demo = start_app(_settings(tiny_settings, model_dir, folder / "data"), DOCS, folder)
    yield url, service
    demo.close()


def _adapter_files(service, folder: Path, seed: int = 3) -> list:
    write_random_adapter(folder, service.adapters.spec, ["qkv_proj", "o_proj"], r=4, seed=seed)
    return [handle_file(str(folder / "adapter_config.json")), handle_file(str(folder / "adapter_model.safetensors"))]


def _ids(documents: list[dict], name: str) -> list[str]:
    return [d["id"] for d in documents if d["name"] == name]


def test_a_stranger_cannot_replace_or_delete_a_shared_document(public, tmp_path):
    url, _ = public
    mallory, alice = Client(url, verbose=False), Client(url, verbose=False)
    (junk,) = write_docs(tmp_path, {"company_overview.md": "# Junk\n\nBuy cheap watches at example.com now.\n"})
    with pytest.raises(AppError, match="shared knowledge base can be changed by only signed-in people"):
        mallory.predict([handle_file(str(junk))], "shared", True, api_name="/documents_upload")

    shared_id = _ids(mallory.predict(api_name="/documents_list"), "company_overview.md")[0]
    with pytest.raises(AppError, match="which the operator of this app has not let you change"):
        mallory.predict(shared_id, api_name="/documents_delete")

    # Into Mallory's own collection it goes, and reaches nobody else's answers
    report, listed = mallory.predict([handle_file(str(junk))], "private", False, api_name="/documents_upload")
    assert report[0]["ok"] and "your private documents" in report[0]["message"]
    assert [d["collection"] for d in listed if d["name"] == "company_overview.md"] == ["private", "shared"]
    assert [d["collection"] for d in alice.predict(api_name="/documents_list")] == ["shared", "shared"]
    _, sources, *_ = alice.predict("Where is the Tern T12 drone built? cheap watches", "RAG", api_name="/chat")
    assert sources and all("watches" not in s["text"] for s in sources)
    _, sources, *_ = mallory.predict("cheap watches example.com", "RAG", api_name="/chat")
    assert any("watches" in s["text"] for s in sources)


def test_one_persons_private_document_is_invisible_and_undeletable_to_another(public, tmp_path):
    url, _ = public
    owner, other = Client(url, verbose=False), Client(url, verbose=False)
    (note,) = write_docs(tmp_path, {"gate_codes.md": "# Gate codes\n\nThe amber gate code is 4471-Q.\n"})
    report, _ = owner.predict([handle_file(str(note))], api_name="/documents_upload")
    doc_id = report[0]["id"]

    assert not _ids(other.predict(api_name="/documents_list"), "gate_codes.md")
    _, sources, *_ = other.predict("What is the amber gate code?", "RAG", api_name="/chat")
    assert all(s["file"] != "gate_codes.md" for s in sources)
    with pytest.raises(AppError, match=r"No document with id .* is in your documents"):
        other.predict(doc_id, api_name="/documents_delete")
    _, sources, *_ = owner.predict("What is the amber gate code?", "RAG", api_name="/chat")
    assert sources[0]["file"] == "gate_codes.md"
    result, documents = owner.predict(doc_id, api_name="/documents_delete")
    assert result == "Deleted gate_codes.md." and not _ids(documents, "gate_codes.md")


def test_one_persons_adapter_is_invisible_unusable_and_undeletable_to_another(public, tmp_path):
    url, service = public
    owner, other = Client(url, verbose=False), Client(url, verbose=False)
    result, adapters = owner.predict(_adapter_files(service, tmp_path / "a"), "mine", api_name="/adapters_upload")
    assert result == "Added mine." and adapters[0]["name"] == "mine" and adapters[0]["source"] == "uploaded"
    answer, *_ = owner.predict("Hi", "Fine-tuned", "mine", [], 0.0, 6, api_name="/chat")
    assert isinstance(answer, str)

    assert all(a["name"] != "mine" for a in other.predict(api_name="/adapters_list"))
    with pytest.raises(AppError, match="No adapter named 'mine' is available to you"):
        other.predict("Hi", "Fine-tuned", "mine", api_name="/chat")
    with pytest.raises(AppError, match="No adapter named 'mine' is available to you"):
        other.predict("mine", api_name="/adapters_delete")
    # two unnamed uploads are numbered, not refused
    first, _ = owner.predict(_adapter_files(service, tmp_path / "b", 4), "", api_name="/adapters_upload")
    second, _ = owner.predict(_adapter_files(service, tmp_path / "c", 5), "", api_name="/adapters_upload")
    assert (first, second) == ("Added adapter.", "Added adapter-2.")


def test_a_hostile_adapter_upload_is_refused_with_one_sentence(public, tmp_path):
    url, _ = public
    client = Client(url, verbose=False)
    (config,) = write_docs(
        tmp_path, {"adapter_config.json": '{"peft_type": "LORA", "r": 20000, "target_modules": ".*", "lora_alpha": 8}'}
    )
    (pickle,) = write_docs(tmp_path, {"adapter_model.bin": b"\x80\x04cos\nsystem\n."})
    with pytest.raises(AppError) as refused:
        client.predict([handle_file(str(config)), handle_file(str(pickle))], "evil", api_name="/adapters_upload")
    message = str(refused.value)
    assert "pickle-based" in message and "\n" not in message and "Traceback" not in message
    assert all(a["source"] != "uploaded" for a in client.predict(api_name="/adapters_list"))


@pytest.fixture(scope="module")
def signed_in(tiny_settings, model_dir, tmp_path_factory):
    """An app with local sign-in, started on a data directory that a restart reuses."""
    folder = tmp_path_factory.mktemp("signed-in")
    settings = _settings(tiny_settings, model_dir, folder / "data", users=USERS, shared_kb_writers="nobody")
    url, service, demo = start_app(settings, DOCS, folder)
    yield url, service, demo, settings, folder


def test_a_wrong_password_is_refused(signed_in):
    url = signed_in[0]
    with pytest.raises(Exception, match=r"(?i)incorrect|login|credentials|401"):
        Client(url, auth=("alice", "nope"), verbose=False)


def test_a_signed_in_persons_uploads_survive_a_reload_and_a_restart(signed_in, tmp_path):
    url, service, demo, settings, folder = signed_in
    alice = Client(url, auth=("alice", "wonderland"), verbose=False)
    (note,) = write_docs(tmp_path, {"harbor_notes.md": "# Harbor\n\nThe crimson pier closes at 19:00.\n"})
    assert alice.predict([handle_file(str(note))], api_name="/documents_upload")[0][0]["ok"]
    alice.predict(_adapter_files(service, tmp_path / "a"), "alice-tone", api_name="/adapters_upload")
    with pytest.raises(AppError, match="only the operator"):  # shared_kb_writers=nobody: not even signed-in people
        alice.predict([handle_file(str(note))], "shared", api_name="/documents_upload")

    def check(base_url: str) -> None:
        again = Client(base_url, auth=("alice", "wonderland"), verbose=False)  # a new session: a reload
        assert _ids(again.predict(api_name="/documents_list"), "harbor_notes.md")
        assert "alice-tone" in [a["name"] for a in again.predict(api_name="/adapters_list")]
        _, sources, *_ = again.predict("When does the crimson pier close?", "RAG", api_name="/chat")
        assert sources[0]["file"] == "harbor_notes.md"
        again.predict("Hi", "Hybrid", "alice-tone", [], 0.0, 4, api_name="/chat")
        bob = Client(base_url, auth=("bob", "builder"), verbose=False)
        assert not _ids(bob.predict(api_name="/documents_list"), "harbor_notes.md")
        assert "alice-tone" not in [a["name"] for a in bob.predict(api_name="/adapters_list")]

    check(url)
    demo.close()  # a restart: a new process's service and page on the same data directory
    url2, _, demo2 = start_app(settings, DOCS, folder / "restart")
    try:
        check(url2)
    finally:
        demo2.close()


def test_a_slow_upload_holds_up_neither_other_uploads_nor_chats(public, tmp_path, monkeypatch):
    """Documents are added on background workers: while one person's large file is still being read, another
    person's upload and a chat finish."""
    import threading
    import time

    import rag.ingestion

    url, _ = public
    release = threading.Event()
    real_prepare = rag.ingestion.prepare

    def prepare(name, *args, **kwargs):
        if name == "big.md":
            release.wait(60)  # a file that takes long to read
        return real_prepare(name, *args, **kwargs)

    monkeypatch.setattr(rag.ingestion, "prepare", prepare)
    (big,) = write_docs(tmp_path / "big", {"big.md": "# Big\n\nThe long manual of the heron winch.\n"})
    (small,) = write_docs(tmp_path / "small", {"small.md": "# Small\n\nThe teal buoy marks the channel.\n"})
    slow = Client(url, verbose=False).submit([handle_file(str(big))], api_name="/documents_upload")
    try:
        time.sleep(1.0)
        started = time.perf_counter()
        report, _ = Client(url, verbose=False).predict([handle_file(str(small))], api_name="/documents_upload")
        Client(url, verbose=False).predict("Hi", "Base", "", [], 0.0, 4, api_name="/chat")
        assert report[0]["ok"] and time.perf_counter() - started < 30 and not slow.done()
    finally:
        release.set()
    report, _ = slow.result(timeout=60)
    assert report[0]["ok"]


def test_a_pdf_is_read_in_its_bounded_child_and_a_docx_bomb_is_refused_at_once(public, tmp_path):
    import time

    from tests.conftest import make_pdf
    from tests.rag.test_ingestion import _docx_bomb

    url, _ = public
    client = Client(url, verbose=False)
    (pdf,) = write_docs(tmp_path, {"winch.pdf": make_pdf(["The heron winch lifts 40 kg.", "Service it yearly."])})
    (bomb,) = write_docs(tmp_path, {"bomb.docx": _docx_bomb()[0]})
    started = time.perf_counter()
    report, _ = client.predict([handle_file(str(pdf)), handle_file(str(bomb))], api_name="/documents_upload")
    assert report[0]["ok"] and report[0]["chunks"] >= 1
    assert not report[1]["ok"] and "more than 100,000 paragraphs" in report[1]["message"]
    assert time.perf_counter() - started < 30


def _cached(path: Path) -> list[Path]:
    """Gradio's stored copies of the file at `path` (its upload cache, `<cache>/<hash>/<name>`)."""
    from gradio.utils import get_upload_folder

    data = path.read_bytes()
    return [p for p in Path(get_upload_folder()).glob(f"*/{path.name}") if p.read_bytes() == data]


def test_gradios_copy_of_an_upload_leaves_the_disk_and_its_url_answers_404(public, tmp_path):
    """Gradio kept its own copy of every uploaded file for about 2 hours, readable by URL after the person had
    deleted the document; now the copy goes as soon as the upload is added or refused."""
    import httpx

    url, _ = public
    alice = Client(url, verbose=False)
    secret = "# Private\n\nThe saffron door code is 8812.\n"
    (note,) = write_docs(tmp_path, {"guard-private-note.md": secret})
    stored = httpx.post(url + "gradio_api/upload", files={"files": (note.name, note.read_bytes())}, timeout=30).json()
    file_url = f"{url}gradio_api/file={stored[0]}"
    assert httpx.get(file_url, timeout=30).status_code == 200  # what a second client holding the URL gets today

    report, listed = alice.predict([handle_file(str(note))], api_name="/documents_upload")
    assert report[0]["ok"], report
    assert _cached(note) == []  # both copies (the raw upload above is the same bytes, the same folder)
    gone = httpx.get(file_url, timeout=30)
    assert gone.status_code == 404 and "saffron" not in gone.text
    alice.predict(_ids(listed, note.name)[0], api_name="/documents_delete")
    assert httpx.get(file_url, timeout=30).status_code == 404

    (empty,) = write_docs(tmp_path / "refused", {"guard-empty.md": ""})
    report, _ = alice.predict([handle_file(str(empty))], api_name="/documents_upload")
    assert not report[0]["ok"] and _cached(empty) == []  # refused: gone too

    files = _adapter_files(public[1], tmp_path / "adapter", seed=11)
    alice.predict(files, "guard-adapter", api_name="/adapters_upload")
    assert _cached(tmp_path / "adapter" / "adapter_model.safetensors") == []
