"""The running app, driven through the real gradio_client and a real headless Chromium."""

import itertools
import shutil

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app
from tests.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    SCREENSHOTS,
    about_the_model,
    build_tiny_phi3,
    free_port,
    start_app,
)
from ui.page import build_page

KB_DOCS = {
    "parts.md": "# Parts\n\n## Seals\n\nPart KX-4471 is the main bearing seal of the Tern T6 drone.\n",
    "codes.txt": "Error code E-PW-131 means the battery pack is below 5 degrees Celsius.\n",
}


@pytest.fixture(scope="module")
def server(tiny_settings, tmp_path_factory):
    # A longer context than the shared tiny model, so numbered sources fit in RAG prompts.
    folder = tmp_path_factory.mktemp("app")
    model_dir = build_tiny_phi3(folder / "tiny-phi3-1k", context=1024)
    settings = tiny_settings.replace(
        model=str(model_dir),
        system_prompt="You are a test assistant.",
        data_dir=folder / "data",
        top_k=2,
        max_upload_mb=2.0,
        adapter_max_mb=2.0,
    )
    url, service, demo = start_app(settings, KB_DOCS, folder)
    yield url, service
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def _last(chat):
    content = chat[-1]["content"]
    return content[0]["text"] if isinstance(content, list) else content


API = [
    "/adapters_delete",
    "/adapters_list",
    "/adapters_upload",
    "/chat",
    "/compare",
    "/documents_delete",
    "/documents_list",
    "/documents_upload",
    "/scorecard",
]


def test_the_public_api_is_named_endpoints_with_named_inputs_and_outputs(client, server):
    info = client.view_api(print_info=False, return_format="dict")
    assert sorted(info["named_endpoints"]) == API and not info["unnamed_endpoints"]
    chat = info["named_endpoints"]["/chat"]
    assert [p["parameter_name"] for p in chat["parameters"]] == [
        "question",
        "mode",
        "adapter",
        "history",
        "temperature",
        "max_new_tokens",
    ]
    assert [r["label"] for r in chat["returns"]] == ["Answer", "Sources", "Evidence", "Notes", "History"]
    optional = {p["parameter_name"] for p in chat["parameters"] if p["parameter_has_default"]}
    assert optional == {"mode", "adapter", "history", "temperature", "max_new_tokens"}  # only the question is required
    assert "Literal['Base', 'RAG', 'Fine-tuned', 'Hybrid']" in chat["parameters"][1]["python_type"]["type"]
    for name, endpoint in info["named_endpoints"].items():
        labels = [r["label"] for r in endpoint["returns"]] + [p["label"] for p in endpoint["parameters"]]
        assert all(label and not label.startswith("value_") for label in labels), name
    printed = client.view_api(print_info=False, return_format="str")
    assert "value_" not in printed and "-> (answer, sources, evidence, notes, history)" in printed
    (server[1].settings.data_dir / "view_api.txt").write_text(printed)  # kept for reading


def test_the_readme_api_examples_run_as_written(server, capsys):
    """README's gradio_client examples, executed against a running app, so they cannot drift from the API."""
    import re

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    examples = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "gradio_client" in b]
    assert len(examples) >= 2 and all('Client("http://127.0.0.1:7860/")' in e for e in examples)
    for example in examples:
        exec(example.replace("http://127.0.0.1:7860/", server[0]), {})  # our own README
    printed = capsys.readouterr().out
    assert printed.strip() and "Traceback" not in printed
    assert "Added 1 chunk to your private documents." in printed and "['harbor_notes.md'" in printed
    assert "Deleted harbor_notes.md." in printed and "Done:" in printed


def test_chat_streams_growing_answers(client):
    job = client.submit("Hello there", "Base", None, [], 1.0, 24, api_name="/chat")
    texts = [answer for answer, *_ in job]
    assert len(texts) >= 3
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert texts[-1]


def test_chat_needs_only_a_question_and_returns_the_history_to_go_on_with(client):
    answer, sources, _, notes, history = client.predict("Hi", api_name="/chat")  # RAG by default
    assert isinstance(answer, str) and isinstance(sources, list) and isinstance(notes, list)
    assert [m["role"] for m in history] == ["user", "assistant"] and history[0]["content"] == "Hi"
    assert [m["mode"] for m in history] == ["RAG", "RAG"]  # Base, Fine-tuned never take RAG's answer as their own
    *_, longer = client.predict("And then?", "Base", None, history, 0.0, 4, api_name="/chat")
    assert [m["content"] for m in longer[::2]] == ["Hi", "And then?"]


def test_empty_message_is_one_sentence(client):
    with pytest.raises(AppError, match=r"^Please type a message first\.$"):
        client.predict("", "Base", api_name="/chat")


def test_too_long_message_is_refused_with_one_sentence(client):
    with pytest.raises(AppError, match="shorten it"):
        client.predict("Ψ" * 1990, "Base", api_name="/chat")  # under the character limit, but 2 tokens a character


def test_invalid_setting_is_refused_and_the_app_keeps_serving(client):
    with pytest.raises(AppError, match="Max new tokens must be a whole number from 1 to 512"):
        client.predict("Hi", "Base", None, [], 0.7, 5000, api_name="/chat")
    with pytest.raises(AppError, match="Temperature"):
        client.predict("Hi", "Base", None, [], 5.0, 8, api_name="/chat")
    with pytest.raises(AppError, match=r"'Poetry'.* is not in the list of choices: \['Base', 'RAG'"):
        client.predict("Hi", "Poetry", api_name="/chat")
    answer, *_ = client.predict("Hi", "Base", None, [], 0.0, 8, api_name="/chat")
    assert answer and not answer.startswith("⚠️")


def test_finetuned_without_adapter_says_what_it_needs(client):
    with pytest.raises(AppError, match="Fine-tuned mode needs an adapter"):
        client.predict("Hi", "Fine-tuned", api_name="/chat")


def test_unknown_adapter_is_one_sentence(client):
    with pytest.raises(AppError, match=r"^No adapter named 'no-such-adapter' is available to you\.$"):
        client.predict("Hi", "Fine-tuned", "no-such-adapter", api_name="/chat")


def test_rag_answer_lists_its_sources_apart_from_the_models_own_text(client):
    answer, sources, evidence, _, _ = client.predict("What is part KX-4471?", "RAG", None, [], 0.0, 8, api_name="/chat")
    assert sources and sources[0]["file"] == "parts.md" and "KX-4471" in sources[0]["text"]
    assert evidence and evidence[0]["file"] == "parts.md"
    assert "**Sources:**" not in answer and "Evidence" not in answer  # the model's words alone


def test_rag_with_nothing_relevant_says_so(client):
    answer, sources, *_ = client.predict("Quelle est la recette de la bouillabaisse ?", "RAG", api_name="/chat")
    assert answer.startswith("I found nothing about this in the documents") and not sources


def test_finetuned_answer_notes_when_the_documents_changed_after_training(client, server, tmp_path):
    from adapters.synthetic import write_random_adapter
    from rag import read_snapshot

    service = server[1]
    snapshot = read_snapshot(service.settings.data_dir)
    card = {"kb_snapshot": {"snapshot_id": snapshot.snapshot_id, "created_at": snapshot.created_at}}
    folder = service.settings.data_dir / "adapters" / "trained" / "kb-tuned"
    write_random_adapter(folder, service.adapters.spec, ["qkv_proj", "o_proj"], r=4, seed=7, card=card)

    _, _, _, notes, _ = client.predict("Hi", "Fine-tuned", "kb-tuned", [], 0.0, 8, api_name="/chat")
    assert notes == []

    (tmp_path / "new.md").write_text("# New\n\nThe Albatross A40 was retired in 2026.\n")
    assert service.knowledge.add_files([tmp_path / "new.md"])[0].ok
    _, _, _, notes, _ = client.predict("Hi", "Fine-tuned", "kb-tuned", [], 0.0, 8, api_name="/chat")
    assert any("the documents have changed since, so its answers may be stale" in n for n in notes)


def _trained(server, name: str, evaluation: dict | None = None):
    """A trained adapter in the app's shared store (with an evaluation on its card when given)."""
    from adapters.synthetic import write_random_adapter

    app = server[1]
    folder = app.settings.data_dir / "adapters" / "trained" / name
    card = {"evaluation": evaluation} if evaluation else None
    write_random_adapter(folder, app.adapters.spec, ["qkv_proj", "o_proj"], r=4, seed=5, card=card)
    return folder


def test_compare_without_an_adapter_uses_the_default_one_and_names_it(client, server):
    folder = _trained(server, "aa-default")  # sorts first of the trained adapters: the page's default
    try:
        base, rag, finetuned, hybrid = client.predict("What is part KX-4471?", api_name="/compare")
        assert base and "[1] parts.md" in rag
        assert "Adapter: aa-default (trained)." in finetuned and "Adapter: aa-default (trained)." in hybrid
        assert "needs an adapter" not in finetuned + hybrid and "Adapter:" not in base + rag
    finally:
        shutil.rmtree(folder)


def test_the_page_opens_in_the_mode_the_adapters_scorecard_recommends(server):
    from core.identity import Identity
    from ui.chat_tab import recommended_mode

    app, person = server[1], Identity.of("visitor", None)
    figures = {"Base": 0.0, "RAG": 0.41, "Fine-tuned": 0.01, "Hybrid": 0.55}
    modes = {m: {"key_facts_all": {"value": v, "n": 101}} for m, v in figures.items()}
    folder = _trained(
        server, "aa-scored", {"score": 0.55, "metric": "key_facts_all", "qa_file": "eval.jsonl", "modes": modes}
    )
    try:
        mode, why = recommended_mode(app, person)
        assert mode == "Hybrid"
        assert why.startswith("Hybrid answered 55% of the 101 answerable questions in eval.jsonl")
        assert "RAG 41%, Fine-tuned 1%, Base 0%" in why and "'aa-scored'" in why
    finally:
        shutil.rmtree(folder)
    mode, why = recommended_mode(app, person)  # no adapter with figures: RAG, and the note says why
    assert mode == "RAG" and why.startswith("RAG: answers from the documents")


def test_the_guide_says_what_the_documents_cover_and_offers_questions_from_their_headings(server):
    from core.identity import Identity
    from ui.chat_tab import coverage, example_questions

    app, person = server[1], Identity.of("guide-reader", None)
    shared = app.knowledge.documents_for(None)
    passages = sum(d.chunks for d in shared)
    assert coverage(app, person).startswith(f"The documents ({len(shared)} shared, {passages} passages): ")
    assert "parts.md" in coverage(app, person) and "codes.txt" in coverage(app, person)
    questions = example_questions(app, person)  # not the sample: made from headings, or the file's name
    assert "What does parts say about Seals?" in questions and "What is codes about?" in questions


def test_the_samples_examples_are_dev_questions_one_per_language():
    import json

    from ui.chat_tab import sample_questions

    docs = REPO / "sample_kb" / "docs"
    names = {f.name for f in docs.rglob("*") if f.is_file()}
    dev = [json.loads(line) for line in (REPO / "sample_kb" / "dev_qa.jsonl").read_text().splitlines()]
    languages = {q["question"]: q["language"] for q in dev if q["answerable"]}
    questions = sample_questions(docs, names)
    assert 4 <= len(questions) <= 6 and all(q in languages for q in questions)
    assert languages[questions[0]] == "en" and len({languages[q] for q in questions}) == len(questions)
    overview = {q["question"] for q in dev if q["source"] == "company_overview.md"}
    only = sample_questions(docs, {"company_overview.md"})  # only questions whose source is in the index
    assert only and all(q in overview for q in only)


@pytest.fixture(scope="module")
def page(server):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server[0])
        about_the_model(page)
        yield page
        browser.close()


@pytest.mark.slow
def test_browser_chat_status_and_stop(page, server):
    status = about_the_model(page)
    assert "cpu" in status and "float32" in status

    page.locator("#message textarea").fill("Hello from the browser")
    page.locator("#send").click()
    bot = page.locator("#chat .message.bot").last
    bot.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => { const m = document.querySelectorAll('#chat .message.bot');"
        " return m.length && m[m.length - 1].innerText.trim().length > 0; }",
        timeout=30_000,
    )
    page.get_by_text("Hello from the browser").wait_for()
    _wait_until_stable(page, bot)  # Send is ignored while an answer is still streaming
    assert "⚠" not in bot.inner_text()  # a real answer, not a refusal

    page.locator("#message textarea").fill("")
    page.locator("#send").click()
    page.get_by_text("Please type a message first.").wait_for(timeout=30_000)

    page.locator("#stop").click()  # nothing running: a no-op, the page stays usable
    page.screenshot(path=str(SCREENSHOTS / "chat.png"), full_page=True)


@pytest.mark.slow
def test_browser_stop_ends_a_streaming_answer(page, server, monkeypatch):
    import time

    model = server[1].service.engine.loaded.model
    forward = model.forward

    def slow_forward(*args, **kwargs):  # about 20 tokens/s, so there is time to press Stop
        time.sleep(0.05)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", slow_forward)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#message textarea").fill("Tell me everything about the Tern T6")
    page.locator("#send").click()
    page.wait_for_function(  # the new answer has started streaming
        "() => { const m = document.querySelectorAll('#chat .message.bot');"
        " return m.length && m[m.length - 1].innerText.trim().length > 0"
        " && document.querySelector('#chat').innerText.includes('Tell me everything'); }",
        timeout=30_000,
    )
    started = time.monotonic()
    page.locator("#stop").click()
    bot = page.locator("#chat .message.bot").last
    _wait_until_stable(page, bot, quiet_ms=1000)
    assert time.monotonic() - started < 10  # unstopped, the 256-token answer takes about 15 s here
    assert server[1].service.engine.loaded.model is model and not server[1].service._stops  # the session's answer ended
    page.locator("#message textarea").fill("")
    page.locator("#send").click()  # the app still answers afterwards
    page.get_by_text("Please type a message first.").last.wait_for(timeout=30_000)


@pytest.mark.slow
def test_browser_knowledge_upload_reports_each_file(page, server, tmp_path):
    good = tmp_path / "wind_limits.md"
    good.write_text("# Wind\n\nThe Tern T12 must land when gusts exceed 38 km/h (rule W-38).\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    odd = tmp_path / "slides.pptx"
    odd.write_bytes(b"PK\x03\x04 not really")
    page.get_by_role("tab", name="Knowledge").click()
    page.locator("#doc-files input[type=file]").set_input_files([str(good), str(empty), str(odd)])
    page.locator("#add-docs").click()
    report = page.locator("#upload-report")
    report.get_by_text("Added").first.wait_for(timeout=60_000)  # the progress bar shows here first
    text = report.inner_text()
    assert "✅" in text and text.count("❌") == 2
    assert "empty.txt" in text and "slides.pptx" in text
    page.wait_for_function("() => document.querySelector('#documents').innerText.includes('wind_limits.md')")
    assert "yours (private)" in page.locator("#documents").inner_text()
    # private to this browser session: the shared index does not have it, this person's answers do
    assert all(p.source != "wind_limits.md" for p in server[1].knowledge.search("Tern T12 gust limit W-38"))
    page.get_by_role("tab", name="Chat").click()
    page.locator("#mode").get_by_text("RAG", exact=True).click()
    page.locator("#message textarea").fill("What is the Tern T12 gust limit W-38?")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("wind_limits.md").first.wait_for(timeout=60_000)  # the answer's sources
    _wait_until_stable(page, page.locator("#chat .message.bot").last)
    page.screenshot(path=str(SCREENSHOTS / "knowledge-upload-cited.png"), full_page=True)


def _wait_until_stable(page, locator, quiet_ms: int = 1500, timeout_s: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if text == last:
            return
        last = text
        page.wait_for_timeout(quiet_ms)
    raise AssertionError("the answer kept changing")


def test_gradios_own_upload_endpoint_refuses_a_file_over_the_apps_largest_limit(server):
    """Without max_file_size Gradio's upload route took 1 GiB with no session; now anything over the largest file
    the app accepts (2 MB here) is refused before it is stored, and a small file still goes through."""
    import httpx

    url = server[0] + "gradio_api/upload"
    big = httpx.post(url, files={"files": ("big.txt", b"x" * (3 * 1024 * 1024), "text/plain")}, timeout=30)
    assert big.status_code == 413, big.text[:200]
    small = httpx.post(url, files={"files": ("small.txt", b"hello", "text/plain")}, timeout=30)
    assert small.status_code == 200


def _raw_call(server, name: str, data: list):
    """Start one call of a named endpoint over raw HTTP, sending what gradio_client cannot: JSON escapes of a
    lone surrogate (json.dumps writes "\\ud800"). Returns the response to the POST."""
    import json

    import httpx

    body = json.dumps({"data": data})
    return httpx.post(
        server[0] + "gradio_api/call/" + name, content=body, headers={"content-type": "application/json"}, timeout=30
    )


@pytest.mark.parametrize(
    ("endpoint", "data", "field"),
    [
        ("chat", ["Hi \ud800", "Base", "", [], 0, 8], "Input 1 of /chat"),
        ("chat", ["Hi", "RAG\ud800", "", [], 0, 8], "Input 2 of /chat"),  # a choice: Gradio never sees it
        ("chat", ["Hi", "Fine-tuned", "my\ud800adapter", [], 0, 8], "Input 3 of /chat"),
        ("chat", ["Hi", "Base", "", [{"role": "user", "content": "a\x00b"}], 0, 8], "Input 4 of /chat"),
        ("compare", ["Hi \udfff", ""], "Input 1 of /compare"),
        ("documents_delete", ["a\x00b"], "Input 1 of /documents_delete"),
        ("documents_upload", [[], "private\ud800", False], "Input 2 of /documents_upload"),
        ("adapters_upload", [None, "my\ud800name"], "Input 2 of /adapters_upload"),
        ("adapters_delete", ["\ud800"], "Input 1 of /adapters_delete"),
        ("scorecard", [["RAG\ud800"], "", 1], "Input 1 of /scorecard"),
    ],
)
def test_text_that_is_not_text_gets_one_sentence_in_every_field(server, endpoint, data, field):
    """A lone surrogate or a NUL, sent over raw HTTP to any field (choices included), is refused before Gradio
    or a handler sees it, with one sentence of ours naming the input; an emoji (a surrogate pair in JSON) is
    text, and the app keeps serving."""
    refused = _raw_call(server, endpoint, data)
    assert refused.status_code == 422, refused.text[:300]
    assert refused.json()["detail"] == f"{field} holds characters that are not text (a lone surrogate or a NUL)."
    assert _raw_call(server, "documents_delete", ["no such id \U0001f600"]).status_code == 200  # an emoji passes


def test_chat_without_a_history_carries_nothing_from_the_last_call(server, client):
    """/chat kept a hidden conversation per client, so one question's text reached the next answer's prompt;
    the API is now stateless unless the caller passes a history."""
    service = server[1].service
    seen: list[str] = []
    real = service.engine.stream

    def stream(prompt_ids, params, stop=None, adapter=None, copy_from=()):
        seen.append(service.engine.tokenizer.decode(prompt_ids))
        return real(prompt_ids, params, stop, adapter, copy_from)

    service.engine.stream = stream
    try:
        client.predict("Remember the word zebra.", "Base", None, [], 0.0, 4, api_name="/chat")
        client.predict("What did I ask before?", "Base", None, [], 0.0, 4, api_name="/chat")
    finally:
        del service.engine.stream
    assert "zebra" in seen[0] and "zebra" not in seen[1]


def test_a_client_beyond_the_queue_limit_is_told_at_once_that_the_app_is_busy():
    """app.serve bounds Gradio's queue (queue_max_size): with one answer running and one waiting, the next
    callers get "Queue is full! Please try again." immediately instead of waiting without end."""
    import threading
    import time

    import gradio as gr
    from gradio_client.utils import QueueError

    release = threading.Event()

    def slow(text):
        release.wait(10)
        return text

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(slow, box, out, api_name="slow", concurrency_limit=1)
    port = free_port()
    app.serve(
        demo,
        app.Settings.of(queue_max_size=1),
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        running = Client(url, verbose=False).submit("first", api_name="/slow")
        time.sleep(0.5)
        waiting = Client(url, verbose=False).submit("second", api_name="/slow")
        time.sleep(0.5)
        started = time.perf_counter()
        with pytest.raises(QueueError, match="Queue is full"):
            Client(url, verbose=False).submit("third", api_name="/slow").result(timeout=10)
        assert time.perf_counter() - started < 5  # at once, while the first is still running
        release.set()
        assert running.result(timeout=10) == "first" and waiting.result(timeout=10) == "second"
    finally:
        release.set()
        demo.close()


def test_on_a_space_with_hf_oauth_the_page_offers_hugging_face_sign_in(server, monkeypatch):
    """With `hf_oauth: true` a Space sets OAUTH_CLIENT_ID (and SPACE_ID): the page gets Gradio's LoginButton, and
    every handler takes the OAuth profile (tests/core/test_identity.py maps it to the person). Elsewhere the
    button would need the internet, so it is left out. (Signing in itself needs huggingface.co: not tested here.)"""
    import gradio as gr

    def buttons(demo) -> int:
        return sum(isinstance(block, gr.LoginButton) for block in demo.blocks.values())

    import gradio.oauth

    monkeypatch.setenv("OAUTH_CLIENT_ID", "test-client")  # on a laptop that happens to have it set: no button
    assert buttons(build_page(server[1])) == 0
    space = {"SYSTEM": "spaces", "SPACE_ID": "someone/industry-expert-chat"}
    for name, value in space.items():
        monkeypatch.setenv(name, value)
    oauth = {
        "OAUTH_CLIENT_ID": "test-client",
        "OAUTH_CLIENT_SECRET": "s",
        "OAUTH_SCOPES": "openid profile",
        "OPENID_PROVIDER_URL": "https://huggingface.co",
    }  # what a Space sets; gradio reads them at import
    for name, value in oauth.items():
        monkeypatch.setattr(gradio.oauth, name, value)
    demo = build_page(server[1])
    assert buttons(demo) == 1
    assert any(getattr(route, "path", "") == "/login/huggingface" for route in demo.app.routes)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\nhf_oauth: true\n" in readme.split("---")[1]


def test_the_page_and_the_api_run_the_scorecard_through_one_helper(server):
    """`ui.evaluate_tab.scorecard_steps`: progress steps while the run goes on, the result last; one sentence before it
    starts when no mode is chosen."""
    import gradio as gr

    from ui.evaluate_tab import scorecard_steps

    composed = server[1]
    with pytest.raises(gr.Error, match=r"Choose at least one mode to evaluate\."):
        next(scorecard_steps(composed, "session:x", None, [], None, 1))
    running = []  # one step object, updated in place: read it as it comes
    for step in scorecard_steps(composed, "session:x", None, ["Base"], None, 2, every_s=0.05):
        running.append(step.result is None)
    assert running[-1] is False and all(running[:-1])
    card = step.result.scorecard
    assert card.complete and card.questions == 2


@pytest.fixture()
def beacon():
    """A local web server that counts every request: the stand-in for a tracking pixel's host."""
    import http.server
    import threading

    hits: list[str] = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def _outside_links(page, beacon_url: str) -> list[str]:
    """Links and images on the page that point at the beacon, or at a file a document named."""
    return page.evaluate(
        "(url) => [...document.querySelectorAll('a[href], img[src]')].map(e => e.href || e.src)"
        ".filter(h => h.startsWith(url) || h.endsWith('x.png'))",
        beacon_url,
    )


@pytest.mark.slow
def test_browser_shows_document_text_as_text_and_loads_nothing_from_outside(page, server, beacon, tmp_path):
    url, hits = beacon
    hostile = tmp_path / "zarquon [p](x.png) #heading.md"
    hostile.write_text(
        "# Zarquon harbour\n\n"
        f"The zarquon ferry leaves at 07:15 from pier Z-9 ![x]({url}/pixel.png) every weekday.\n\n"
        f'The zarquon ferry ticket costs 12 euros <img src="{url}/img.png"> for adults.\n\n'
        f'A lost zarquon pass? <a href="{url}/reset">reset your password here</a>, or see {url}/bare.\n'
    )
    app = server[1]
    (report,) = app.knowledge.add_files([hostile])  # shared: every reader sees it
    try:
        page.reload()
        page.locator("#guide").get_by_text("zarquon").wait_for(timeout=30_000)  # its name, in the guide
        page.get_by_role("tab", name="Chat").click()
        page.locator("#mode").get_by_text("RAG", exact=True).click()
        page.locator("#message textarea").fill("When does the zarquon ferry leave pier Z-9?")
        page.locator("#message textarea").press("Enter")
        page.locator("#chat .message.bot").last.get_by_text("#heading.md").first.wait_for(timeout=60_000)
        _wait_until_stable(page, page.locator("#chat .message.bot").last)
        assert "[p](x.png)" in page.locator("#chat .message.bot").last.inner_text()  # the name, as text
        page.locator("#sources div[role=row]").filter(has_text="zarquon").first.click()
        page.locator("#passage textarea").wait_for(timeout=10_000)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#compare-question textarea").fill("When does the zarquon ferry leave pier Z-9?")
        page.locator("#compare-question textarea").press("Enter")
        page.locator("#compare-rag").get_by_text("#heading.md").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Knowledge").click()
        page.wait_for_function("() => document.querySelector('#documents').innerText.includes('zarquon')")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / "hostile-document-as-text.png"), full_page=True)
        assert hits == [] and _outside_links(page, url) == []
    finally:
        app.knowledge.delete(report.doc_id)


def test_what_the_model_or_a_document_writes_cannot_load_or_link_anything():
    from ui.presentation import inert

    hostile = "![x](http://h/p.png) <img src=x> [a](http://h) [b][1]\n[1]: http://h/ref http://h/bare www.h.com"
    shown = inert(hostile)
    assert "](" not in shown.replace("]\\(", "") and "<" not in shown and "][" not in shown.replace("]\\[", "")
    assert "http://" not in shown and "www." not in shown and "\n\\[1]:" in shown
    assert inert("Seals are replaced every 500 hours [1].") == "Seals are replaced every 500 hours [1]."
