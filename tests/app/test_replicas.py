"""Two real app processes (`python app.py`) on one PostgreSQL database and one shared folder, as replicas behind a
load balancer: what one person uploads through replica A is searchable through replica B, a delete on B is seen
by A, one person's quota holds across both (two uploads at once, one to each), an adapter uploaded on A is used
on B, and a replica killed in the middle of an ingest leaves nothing half-written: the survivor keeps answering
and the killed one, restarted, sees the committed state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from adapters.synthetic import write_random_adapter
from tests.conftest import REPO, build_tiny_phi3, free_port, write_docs

pytestmark = pytest.mark.slow

USERS = "alice:wonderland"


class Replica:
    def __init__(self, name: str, tmp_path: Path, model_dir: Path, database_url: str, shared: Path, **env: str):
        self.name, self.log_path, self.port = name, tmp_path / f"{name}.log", free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EXPERT_")}
        self.env.update(
            HF_HUB_OFFLINE="1",
            EXPERT_INDEX_BACKEND="postgres",
            EXPERT_DATABASE_URL=database_url,  # as the README says: the address in the environment, not a flag
            EXPERT_SHARED_DIR=str(shared),
            EXPERT_DATA_DIR=str(tmp_path / f"data-{name}"),  # each replica's own model cache
            EXPERT_INDEX_WATCH_S="0.5",
            **env,
        )
        flags = ["--model", str(model_dir), "--device", "cpu", "--dtype", "fp32", "--users", USERS]
        flags += ["--adapter-max-update", "1e4"]  # random test adapters move a random tiny model (see conftest)
        self.argv = [sys.executable, "app.py", *flags, "--host", "127.0.0.1", "--port", str(self.port)]
        self.process: subprocess.Popen | None = None

    def start(self) -> Replica:
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def client(self, timeout: float = 300) -> Client:
        """A signed-in client, once the replica answers with its documents loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                client = Client(self.url, auth=tuple(USERS.split(":")), verbose=False)
                if client.predict(api_name="/documents_list"):
                    return client
            except Exception:  # not up yet, or its parts still loading
                pass
            time.sleep(1)
        raise AssertionError(f"replica {self.name} did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.log.close()


def _ask(client: Client, question: str, mode: str = "RAG", adapter: str = "") -> tuple:
    """/chat with a short greedy answer (the tiny test model reads 256 tokens)."""
    return client.predict(question, mode, adapter, [], 0.0, 16, api_name="/chat")


def _names(documents: list[dict]) -> set[str]:
    return {d["name"] for d in documents}


def _until(check, timeout: float = 15.0) -> float:
    """Seconds until `check()` is true (AssertionError after `timeout`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - started


def test_two_replicas_share_documents_quotas_and_adapters(tmp_path, tiny_model_dir, tiny_loaded, database_url):
    shared = tmp_path / "shared"
    a = Replica("a", tmp_path, tiny_model_dir, database_url, shared, EXPERT_MAX_DOCUMENTS_PER_USER="1").start()
    b = Replica("b", tmp_path, tiny_model_dir, database_url, shared, EXPERT_MAX_DOCUMENTS_PER_USER="1").start()
    try:
        on_a, on_b = a.client(), b.client()
        assert _names(on_a.predict(api_name="/documents_list")) == _names(on_b.predict(api_name="/documents_list"))

        # one person, two uploads at once, one to each replica: the quota of one document holds across both
        files = [write_docs(tmp_path / n, {f"{n}.md": f"# {n}\n\nPallet {n} waits in bay Q{n}.\n"})[0] for n in "12"]
        reports: dict[str, list] = {}

        def upload(client: Client, name: str, path: Path) -> None:
            reports[name] = client.predict([handle_file(str(path))], api_name="/documents_upload")[0]

        pairs = zip((on_a, on_b), "ab", files, strict=True)
        threads = [threading.Thread(target=upload, args=(c, n, f)) for c, n, f in pairs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        oks = [r[0]["ok"] for r in reports.values()]
        assert sorted(oks) == [False, True], reports
        refused = next(r[0]["message"] for r in reports.values() if not r[0]["ok"])
        assert "the most one person may keep" in refused
        kept = next(r[0]["file"] for r in reports.values() if r[0]["ok"])
        uploader, other = (on_a, on_b) if reports["a"][0]["ok"] else (on_b, on_a)

        # searchable through the other replica within its watch interval, and in its list
        seen_s = _until(lambda: kept in _names(other.predict(api_name="/documents_list")))
        _, sources, *_ = _ask(other, f"Where does pallet {kept[0]} wait?")
        assert any(s["file"] == kept for s in sources), sources
        print(f"\nan upload on one replica was listed on the other after {seen_s:.2f} s")

        # deleted through the other replica: gone from the uploader's answers and list
        doc_id = next(d["id"] for d in other.predict(api_name="/documents_list") if d["name"] == kept)
        other.predict(doc_id, api_name="/documents_delete")
        _until(lambda: kept not in _names(uploader.predict(api_name="/documents_list")))
        _, sources, *_ = _ask(uploader, f"Where does pallet {kept[0]} wait?")
        assert all(s["file"] != kept for s in sources)

        # an adapter uploaded on A lives in the shared folder: B lists it and answers with it
        folder = tmp_path / "adapter"
        write_random_adapter(folder, tiny_loaded.spec, ["qkv_proj", "o_proj"], r=4, seed=3)
        upload_files = [handle_file(str(folder / n)) for n in ("adapter_config.json", "adapter_model.safetensors")]
        result, _ = on_a.predict(upload_files, "mine", api_name="/adapters_upload")
        assert "mine" in result, result
        assert any(x["name"] == "mine" for x in on_b.predict(api_name="/adapters_list"))
        answer, *_ = _ask(on_b, "Which part seals the bearing?", "Fine-tuned", "mine")
        assert isinstance(answer, str)
    finally:
        a.stop()
        b.stop()


def test_a_replica_killed_in_the_middle_of_an_ingest_loses_nothing(tmp_path, database_url):
    model_dir = build_tiny_phi3(tmp_path / "tiny-1024", context=1024)  # room for a sample passage in the prompt
    shared = tmp_path / "shared"
    a = Replica("a", tmp_path, model_dir, database_url, shared).start()
    b = Replica("b", tmp_path, model_dir, database_url, shared).start()
    try:
        on_a, on_b = a.client(), b.client()
        before = _names(on_b.predict(api_name="/documents_list"))
        # a large upload to A (seconds of reading and embedding), and A killed while it works
        big = write_docs(tmp_path / "big", {"big.md": "# Big\n\n" + "Pallet 9 waits in bay Z9. " * 40_000})[0]
        job = on_a.submit([handle_file(str(big))], api_name="/documents_upload")
        time.sleep(3)
        assert not job.done()
        a.stop(signal.SIGKILL)

        # the survivor answers, sees no half-written document, and can write itself
        assert _names(on_b.predict(api_name="/documents_list")) == before
        _, sources, *_ = _ask(on_b, "How often is the CP-D vent valve changed?")
        assert sources
        small = write_docs(tmp_path / "small", {"small.md": "# Small\n\nThe spare key is in drawer 4.\n"})[0]
        report, _ = on_b.predict([handle_file(str(small))], api_name="/documents_upload")
        assert report[0]["ok"], report

        # the killed replica, restarted, sees the committed state (and not its own lost upload)
        a.start()
        restarted = a.client()
        assert _names(restarted.predict(api_name="/documents_list")) == before | {"small.md"}
        _, sources, *_ = _ask(restarted, "Where is the spare key?")
        assert any(s["file"] == "small.md" for s in sources)
    finally:
        a.stop()
        b.stop()


def test_a_replica_started_while_its_database_is_away_attaches_it_when_it_comes_back(
    tmp_path, tiny_settings, tmp_path_factory, monkeypatch
):
    import pgserver

    import compose
    from core.errors import UserInputError
    from tests.conftest import ask, database_url_in

    monkeypatch.setattr(compose, "KNOWLEDGE_RETRY_S", 0.2)
    pgdata = tmp_path_factory.mktemp("away")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = database_url_in(server, "away")
    server.cleanup()  # the database is away when the replica starts
    docs = tmp_path / "docs"
    write_docs(docs, {"warranty.md": "# Warranty\n\nThe battery warranty lasts 24 months from delivery.\n"})
    settings = tiny_settings.replace(data_dir=tmp_path / "data", index_backend="postgres", database_url=url)
    app = compose.compose(settings, sample_docs=docs).start()
    try:
        assert app.wait_ready(180)
        assert app.knowledge is None
        assert any("cannot be used right now" in w for w in app.service.warnings), app.service.warnings
        assert "Unavailable: Document index" in app.service.status_line()
        assert ask(app.service, "How long is the battery warranty?", "Base")[-1].done  # the rest answers
        with pytest.raises(UserInputError, match="RAG mode needs a document index"):
            ask(app.service, "How long is the battery warranty?", "RAG")

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # back: attached without a restart
        _until(lambda: app.knowledge is not None, timeout=60)
        assert not app.service.warnings
        assert ask(app.service, "How long is the battery warranty?", "RAG")[-1].sources
    finally:
        if app.knowledge is not None:
            app.knowledge.stop_watching()
        server.cleanup()
