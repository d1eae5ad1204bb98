"""A newcomer's first five minutes, in headless Chromium, on the app as shipped: the embedded model, the sample
documents and the demo adapter. Screenshots go to test-output/browser/first-visit-*.png."""

import json
import shutil

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, SCREENSHOTS, about_the_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shipped(embedded_data_dir, tmp_path_factory):
    """The app with every default (llama.cpp, the sample documents, the demo adapter) on a free port."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    import app as launcher
    from compose import compose
    from core.settings import Settings
    from tests.conftest import free_port
    from ui.page import build_page

    data = tmp_path_factory.mktemp("first-visit") / "data"
    shutil.copytree(embedded_data_dir / "model_cache", data / "model_cache")
    settings = Settings.of(data_dir=data)
    composed = compose(settings).start()  # the page is served while it loads, as `python app.py` does
    page = build_page(composed)
    port = free_port()
    launcher.serve(page, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", composed
    page.close()


def _answer(page, where: str, done: str = "Sources:") -> str:
    """The text at `where` once it holds `done` and stops changing (an answer streams in)."""
    last = None
    for _ in range(120):
        text = page.locator(where).last.inner_text()
        if text and text == last and done in text:
            return text
        last = text
        page.wait_for_timeout(700)
    raise AssertionError(f"no finished answer at {where}: {last!r}")


def test_the_first_five_minutes(shipped):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    url, app = shipped
    dev = {q["question"]: q for q in map(json.loads, (REPO / "sample_kb" / "dev_qa.jsonl").read_text().splitlines())}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        # open the page: it says how far loading got, then what the documents cover
        page.goto(url)
        page.locator("#guide").get_by_text("passages").wait_for(timeout=300_000)
        shared = app.knowledge.documents_for(None)
        guide = page.locator("#guide").inner_text()
        assert f"{len(shared)} shared, {sum(d.chunks for d in shared)} passages" in guide
        assert "company_overview.md" in guide
        assert page.locator("#status").inner_text().strip() == ""  # all is well: no engineer's line
        assert "llama.cpp" in about_the_model(page)  # that is under "About this model"

        # the recommended mode, from the demo adapter's card
        card = json.loads((REPO / "adapters" / "demo" / "smollm2-sample-kb" / "adapter_card.json").read_text())
        figures = {m: f["key_facts_all"]["value"] for m, f in card["evaluation"]["modes"].items()}
        best = max(figures, key=figures.get)
        assert page.locator("#mode input:checked").get_attribute("value") == best == "Hybrid"
        note = page.locator("#mode-note").inner_text()
        assert (
            note.startswith(f"Hybrid answered {figures['Hybrid']:.0%} of the") and f"RAG {figures['RAG']:.0%}" in note
        )
        page.screenshot(path=str(SCREENSHOTS / "first-visit-1-guide.png"), full_page=True)

        # click an example: it fills the box, in its language, from the sample's dev set
        examples = page.locator("#examples button")
        assert 4 <= examples.count() <= 6
        shown = [examples.nth(i).inner_text().strip() for i in range(examples.count())]
        assert all(q in dev for q in shown) and dev[shown[0]]["language"] == "en"
        assert len({dev[q]["language"] for q in shown}) == len(shown)
        examples.first.click()
        box = page.locator("#message textarea")
        page.wait_for_function("() => document.querySelector('#message textarea').value.length > 0")
        question = box.input_value()
        assert question == shown[0]

        # Enter sends (Shift+Enter would have made a new line): the question, then a cited answer
        box.press("Enter")
        page.locator("#chat .message.user").get_by_text(question).wait_for(timeout=30_000)
        answer = _answer(page, "#chat .message.bot")
        assert "(cited)" in answer and dev[question]["source"] in answer and "Evidence" in answer, answer
        assert box.input_value() == ""
        page.screenshot(path=str(SCREENSHOTS / "first-visit-2-answer.png"), full_page=True)

        # sources a reader understands: a label, not a fusion score; the whole passage on a click
        relevance = page.evaluate(
            "() => [...document.querySelectorAll('#sources div[role=row]')].map(r => r.children[1].innerText.trim())"
        )
        assert relevance and relevance[0].startswith("best match") and not any("0.0" in r for r in relevance)
        row = page.locator("#sources div[role=row]").filter(has_text=dev[question]["source"]).first
        row.click()
        page.locator("#passage textarea").wait_for(timeout=10_000)
        assert dev[question]["source"] in page.locator("#passage textarea").input_value()
        page.screenshot(path=str(SCREENSHOTS / "first-visit-3-passage.png"), full_page=True)

        # Shift+Enter makes a new line and sends nothing
        box.fill("two")
        box.press("Shift+Enter")
        assert box.input_value() == "two\n" and page.locator("#chat .message.user").count() == 1
        box.fill("")

        # Compare: four answers, with the demo adapter named under Fine-tuned and Hybrid, sent with Enter
        page.get_by_role("tab", name="Compare").click()
        compare_box = page.locator("#compare-question textarea")
        compare_box.fill(question)
        compare_box.press("Enter")
        columns = {m: f"#compare-{m.lower()}" for m in ("Base", "RAG", "Fine-tuned", "Hybrid")}
        done = {"Base": "", "RAG": "Sources:", "Fine-tuned": "Adapter:", "Hybrid": "Sources:"}
        answers = {m: _answer(page, where, done[m]) for m, where in columns.items()}
        for mode in ("Fine-tuned", "Hybrid"):
            assert "Adapter: smollm2-sample-kb (demo)." in answers[mode], answers[mode]
        assert "⚠" not in "".join(answers.values()), answers
        page.screenshot(path=str(SCREENSHOTS / "first-visit-4-compare.png"), full_page=True)
        browser.close()
