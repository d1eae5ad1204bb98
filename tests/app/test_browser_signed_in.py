"""A person's whole visit in headless Chromium, on an app with local sign-in: sign in, ask in each mode, compare
all four, upload a document and see it cited, upload an adapter and chat with it, see a hostile upload refused,
reload and find their uploads still theirs. Screenshots go to test-output/browser/."""

from __future__ import annotations

import pytest

from adapters.synthetic import write_random_adapter
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, about_the_model, build_tiny_phi3, start_app, write_docs

DOCS = {"parts.md": "# Parts\n\nPart KX-4471 is the main bearing seal of the Tern T6 drone.\n"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tiny_settings, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    folder = tmp_path_factory.mktemp("browser-signed-in")
    model = build_tiny_phi3(folder / "model", context=1024)
    settings = tiny_settings.replace(
        model=str(model),
        data_dir=folder / "data",
        top_k=2,
        max_upload_mb=2.0,
        adapter_max_mb=2.0,
        users="alice:wonderland",
    )
    url, service, demo = start_app(settings, DOCS, folder)
    yield url, service
    demo.close()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _last_answer(page) -> str:
    bot = page.locator("#chat .message.bot").last
    last = None
    for _ in range(60):  # until it stops changing
        text = bot.inner_text()
        if text and text == last:
            return text
        last = text
        page.wait_for_timeout(700)
    raise AssertionError("the answer kept changing")


def _ask(page, mode: str, question: str, adapter: str | None = None) -> str:
    page.get_by_role("tab", name="Chat").click()
    page.locator("#mode").get_by_text(mode, exact=True).click()
    if adapter:
        page.locator("#adapter input").fill(adapter)
        page.locator("#adapter input").press("Enter")
    before = page.locator("#chat .message.bot").count()
    page.locator("#message textarea").fill(question)
    page.locator("#send").click()
    page.wait_for_function(f"() => document.querySelectorAll('#chat .message.bot').length > {before}", timeout=60_000)
    return _last_answer(page)


def _sign_in(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill("alice")
    page.get_by_label("password").fill("wonderland")
    page.get_by_role("button", name="Login").click()
    page.locator("#identity").get_by_text("Signed in as").wait_for(timeout=30_000)
    about_the_model(page)


def test_a_signed_in_visit_end_to_end(app_url, browser, tmp_path):
    url, service = app_url
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.get_by_label("password").wait_for(timeout=30_000)  # the login page comes first
    page.screenshot(path=str(SCREENSHOTS / "signed-in-0-login.png"))
    _sign_in(page, url)
    assert "alice" in page.locator("#identity").inner_text()

    # each mode; Fine-tuned without an adapter says what it needs
    assert not _ask(page, "Base", "Hello there").startswith("⚠")
    assert "parts.md" in _ask(page, "RAG", "What is part KX-4471?")
    page.locator("#adapter input").fill("")
    assert "needs an adapter" in _ask(page, "Fine-tuned", "Hello")
    page.screenshot(path=str(SCREENSHOTS / "signed-in-1-modes.png"), full_page=True)

    # compare all four
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-question textarea").fill("What is part KX-4471?")
    page.get_by_role("button", name="Compare Base / RAG / Fine-tuned / Hybrid").click()
    page.locator("#compare-rag").get_by_text("parts.md").first.wait_for(timeout=60_000)
    page.locator("#compare-hybrid").get_by_text("needs an adapter").wait_for(timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "signed-in-2-compare.png"), full_page=True)

    # a document of her own, then cited in her answer
    (note,) = write_docs(tmp_path, {"harbor_notes.md": "# Harbor\n\nThe crimson pier closes at 19:00 (rule H-19).\n"})
    page.get_by_role("tab", name="Knowledge").click()
    page.locator("#doc-files input[type=file]").set_input_files([str(note)])
    page.locator("#add-docs").click()
    page.wait_for_function(
        "() => document.querySelector('#upload-report').innerText.includes('your private')", timeout=60_000
    )
    assert "harbor_notes.md" in _ask(page, "RAG", "When does the crimson pier close (rule H-19)?")

    # an adapter of her own, and a chat with it
    adapter = tmp_path / "adapter"
    write_random_adapter(adapter, service.adapters.spec, ["qkv_proj", "o_proj"], r=4, seed=11)
    page.get_by_role("tab", name="Adapters").click()
    page.locator("#adapter-files input[type=file]").set_input_files(
        [str(adapter / "adapter_config.json"), str(adapter / "adapter_model.safetensors")]
    )
    page.locator("#adapter-name textarea, #adapter-name input").first.fill("alice-tone")
    page.get_by_role("button", name="Upload adapter").click()
    page.locator("#adapter-result").get_by_text("Added alice-tone").wait_for(timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "signed-in-3-adapter.png"), full_page=True)
    answer = _ask(page, "Fine-tuned", "Hello", adapter="alice-tone")
    assert not answer.startswith("⚠"), answer

    # a hostile upload: refused with one sentence, nothing added
    (evil,) = write_docs(tmp_path / "evil", {"adapter_model.bin": b"\x80\x04cos\nsystem\n."})
    page.get_by_role("tab", name="Adapters").click()
    page.locator("#adapter-files input[type=file]").set_input_files([str(evil)])
    page.get_by_role("button", name="Upload adapter").click()
    page.locator("#adapter-result").get_by_text("pickle-based file").wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "signed-in-4-hostile-refused.png"), full_page=True)

    # a reload: still signed in, and her document and adapter are still hers
    page.reload()
    page.locator("#identity").get_by_text("Signed in as").wait_for(timeout=30_000)
    about_the_model(page)
    page.get_by_role("tab", name="Knowledge").click()
    page.wait_for_function(
        "() => document.querySelector('#documents').innerText.includes('harbor_notes.md')", timeout=30_000
    )
    page.get_by_role("tab", name="Adapters").click()
    page.wait_for_function(
        "() => document.querySelector('#adapter-table').innerText.includes('alice-tone')", timeout=30_000
    )
    page.screenshot(path=str(SCREENSHOTS / "signed-in-5-after-reload.png"), full_page=True)
    answer = _ask(page, "Hybrid", "When does the crimson pier close (rule H-19)?", adapter="alice-tone")
    assert not answer.startswith("⚠") and "harbor_notes.md" in answer  # answered with her adapter and document
    page.screenshot(path=str(SCREENSHOTS / "signed-in-6-hybrid-after-reload.png"), full_page=True)
    context.close()
