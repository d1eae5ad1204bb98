"""The four modes on the pipeline, with a stand-in retriever and adapter hook.

The real FAISS/BM25 retriever and PEFT adapters have their own tests; these check what the
pipeline does with them: numbered sources in the prompt, refusal when nothing is found,
the adapter chosen per mode, and the stale-adapter note.
"""

import contextlib

import pytest

from core.generation import GenerationParams
from core.pipeline import NOTHING_FOUND, AnswerPipeline, Mode
from core.retrieval import Passage

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=8)


class FakeRetriever:
    snapshot_id = "snap-1"

    def __init__(self, passages):
        self.passages = passages
        self.queries = []

    def search(self, query, top_k=None):
        self.queries.append(query)
        return list(self.passages)


def _passage(i: int, text: str = "Part KX-4471 is the main bearing seal.") -> Passage:
    return Passage(text, f"doc{i}.md", f"section Parts > {i}", 1.0 / i, f"d{i}", f"d{i}-0")


@pytest.fixture()
def prompts(engine, monkeypatch):
    """Records the decoded prompt and the adapter of every generation."""
    seen = []
    real = engine.stream

    def stream(prompt_ids, params, stop=None, adapter=None):
        seen.append((engine.tokenizer.decode(prompt_ids), adapter))
        return real(prompt_ids, params, stop, adapter)

    monkeypatch.setattr(engine, "stream", stream)
    return seen


def test_rag_puts_numbered_sources_in_the_prompt_and_returns_them(engine, prompts):
    retriever = FakeRetriever([_passage(1), _passage(2, "Seals are replaced every 500 hours.")])
    pipeline = AnswerPipeline(engine, "sys", retriever=retriever)
    final = list(pipeline.answer("What is KX-4471?", mode=Mode.RAG, params=GREEDY))[-1]
    prompt, adapter = prompts[-1]
    assert "[1] doc1.md, section Parts > 1:\nPart KX-4471 is the main bearing seal." in prompt
    assert "[2] doc2.md" in prompt and "Question: What is KX-4471?" in prompt
    assert "cite the sources" in prompt
    assert [p.source for p in final.sources] == ["doc1.md", "doc2.md"]
    assert adapter is None and retriever.queries == ["What is KX-4471?"]


def test_rag_with_nothing_relevant_says_so_without_generating(engine, prompts):
    pipeline = AnswerPipeline(engine, "sys", retriever=FakeRetriever([]))
    updates = list(pipeline.answer("Who won the 1998 World Cup?", mode=Mode.RAG, params=GREEDY))
    assert [u.text for u in updates] == [NOTHING_FOUND] and not prompts


def test_lowest_ranked_passages_are_dropped_to_fit_the_context(engine):
    long_text = "Blade inspections follow the FROST checklist every 500 hours. " * 2
    retriever = FakeRetriever([_passage(i, long_text) for i in range(1, 6)])
    pipeline = AnswerPipeline(engine, "sys", retriever=retriever)
    final = list(pipeline.answer("When are blades inspected?", mode=Mode.RAG, params=GREEDY))[-1]
    assert 1 <= len(final.sources) < 5
    assert [p.source for p in final.sources] == [f"doc{i}.md" for i in range(1, len(final.sources) + 1)]


def test_base_ignores_retriever_and_adapter(engine, prompts):
    retriever = FakeRetriever([_passage(1)])
    pipeline = AnswerPipeline(engine, "sys", retriever=retriever)
    list(pipeline.answer("Hi", mode=Mode.BASE, params=GREEDY, adapter="demo"))
    assert prompts[-1] == (prompts[-1][0], None) and "Sources:" not in prompts[-1][0]
    assert retriever.queries == []


def test_finetuned_and_hybrid_pass_the_adapter_and_note_staleness(engine, prompts):
    active = []

    @contextlib.contextmanager
    def use_adapter(name):
        active.append(name)
        yield

    engine.use_adapter = use_adapter
    pipeline = AnswerPipeline(engine, "sys", retriever=FakeRetriever([_passage(1)]))
    note = "demo may be stale."
    fine = list(pipeline.answer("Hi", mode=Mode.FINETUNED, params=GREEDY, adapter="demo", adapter_note=note))[-1]
    hybrid = list(pipeline.answer("Hi", mode=Mode.HYBRID, params=GREEDY, adapter="demo", adapter_note=note))[-1]
    assert active == ["demo", "demo"]
    assert "Sources:" not in prompts[0][0] and "Sources:" in prompts[1][0]
    assert fine.notes == ["demo may be stale."] and hybrid.notes == ["demo may be stale."]
    assert not fine.sources and hybrid.sources


def test_modes_say_what_they_need(engine):
    pipeline = AnswerPipeline(engine, "sys")
    texts = {m: list(pipeline.answer("Hi", mode=m, params=GREEDY))[-1].text for m in Mode if m != Mode.BASE}
    assert texts[Mode.RAG] == "RAG mode needs a document index, and none is loaded."
    assert texts[Mode.FINETUNED] == "Fine-tuned mode needs an adapter; choose one under Adapters."
    assert "document index" in texts[Mode.HYBRID] and "adapter" in texts[Mode.HYBRID]


def test_cited_numbers_are_read_from_the_answer():
    from core.pipeline import AnswerUpdate

    update = AnswerUpdate("Seal KX-4471 [2] lasts 500 h [1][2] [9].", Mode.RAG, sources=[_passage(1), _passage(2)])
    assert update.cited == [2, 1]
