"""The four modes through the service, with a stand-in retriever and adapter catalog.

The real FAISS/BM25 retriever and PEFT adapters have their own tests; these check what the answer
path does with them: numbered sources in the prompt, refusal when nothing is found, the adapter
resolved once and handed to the engine per mode, and the stale-adapter note.
"""

from pathlib import Path
from typing import NamedTuple

import pytest

from adapters.spec import AdapterHandle, LoraSpec
from answer.ports import Passage, Retriever, Snapshot
from answer.prompts import NOTHING_FOUND, Prompter
from answer.types import Mode
from core.errors import UserInputError
from engines.base import GenerationParams
from tests.conftest import ask, forced_model

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=8)


class FakeRetriever:
    snapshot = Snapshot("snap-1", "2026-11-05T08:00:00Z")

    def __init__(self, passages):
        self.passages = passages
        self.queries = []

    def search(self, query, top_k=None):
        self.queries.append(query)
        return list(self.passages)


def _passage(i: int, text: str = "Part KX-4471 is the main bearing seal.") -> Passage:
    return Passage(text, f"doc{i}.md", f"section Parts > {i}", 1.0 / i, f"d{i}", f"d{i}-0")


class FakeCatalog:
    """Resolves any name to a handle (its files are never read: the `prompts` fixture keeps the engine
    on the bare base) and records who asked."""

    def __init__(self, kb_snapshot=None):
        self.kb_snapshot = kb_snapshot
        self.calls = []

    def resolve_handle(self, name, session):
        self.calls.append((name, session))
        if name == "missing":
            raise UserInputError("No adapter named 'missing' is available to you.")
        lora = LoraSpec(4, 8.0, False, ("model.layers.0.self_attn.o_proj",))
        return AdapterHandle(
            f"demo/{name}",
            name,
            "demo",
            Path("/nowhere"),
            Path("/nowhere/w"),
            lora,
            1,
            kb_snapshot=self.kb_snapshot,
            kb_snapshot_date="2026-11-01T08:00:00Z",
        )


class Generation(NamedTuple):
    prompt: str
    adapter: AdapterHandle | None
    params: GenerationParams


@pytest.fixture()
def prompts(engine, monkeypatch):
    """Records the decoded prompt, the adapter handle and the decoding settings of every generation (run on
    the bare base)."""
    seen = []
    real = engine.stream

    def stream(prompt_ids, params, stop=None, adapter=None, copy_from=()):
        seen.append(Generation(engine.tokenizer.decode(prompt_ids), adapter, params))
        return real(prompt_ids, params, stop, None, copy_from)

    monkeypatch.setattr(engine, "stream", stream)
    return seen


def test_the_stand_ins_fit_the_ports():
    assert isinstance(FakeRetriever([]), Retriever)


def test_rag_shows_the_matching_source_sentences_between_the_question_twice(service, prompts):
    chunk = "# Parts\n\nThe fox is quick. Part KX-4471 is the main bearing seal. The dog is lazy and brown."
    retriever = FakeRetriever([_passage(1, chunk), _passage(2, "Seals are replaced every 500 hours.")])
    service.use_knowledge(retriever)
    final = ask(service, "What is KX-4471?", mode=Mode.RAG, params=GREEDY)[-1]
    prompt, adapter, _ = prompts[-1]
    user = prompt.split("<|user|>\n")[1]
    assert user.startswith("Question: What is KX-4471?\n\nSources:\n[1] Part KX-4471 is the main bearing seal.\n")
    assert "\nQuestion: What is KX-4471?\nAnswer in one short sentence, using the sources" in user
    assert user.count("\n[") <= 4, "at most evidence_sentences (4) sentences"
    assert [p.source for p in final.sources] == ["doc1.md", "doc2.md"]
    assert adapter is None and retriever.queries == ["What is KX-4471?"]


def test_rag_with_whole_chunks_when_set(engine, tiny_settings, prompts):
    from answer.service import ExpertService

    service = ExpertService.over(tiny_settings.replace(rag_context="chunks", system_prompt="sys").answer, engine)
    service.use_knowledge(FakeRetriever([_passage(1), _passage(2, "Seals are replaced every 500 hours.")]))
    ask(service, "What is KX-4471?", mode=Mode.RAG, params=GREEDY)
    prompt = prompts[-1][0]
    assert "[1] doc1.md, section Parts > 1:\nPart KX-4471 is the main bearing seal." in prompt
    assert "[2] doc2.md" in prompt and "cite the sources" in prompt


def test_rag_answers_greedily_within_the_length_budget_in_the_question_language(service, prompts):
    service.use_knowledge(FakeRetriever([_passage(1, "정비 일정은 매달 첫째 주 월요일입니다.")]))
    ask(service, "정비는 언제입니까?", mode=Mode.RAG, params=GenerationParams(1.2, 0.5, 120))
    prompt, _, params = prompts[-1]
    assert (params.temperature, params.max_new_tokens, params.no_repeat_ngram) == (0.0, 96, 12)
    assert "Answer in one short sentence in Korean" in prompt


def test_the_repetition_guard_counts_only_the_answer(tiny_loaded):
    """A model forced to say "The" forever, behind a 2-gram guard: the answer says "The The" (the prompt
    is full of "The The", which does not count) and then may not repeat that pair."""
    from engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(forced_model(tiny_loaded, "The"))
    ids = Prompter(engine.tokenizer, engine.context_window).build("", [], "The The The The", 8)[0]
    free = "".join(engine.stream(ids, GenerationParams(0.0, 1.0, 8)))
    guarded = "".join(engine.stream(ids, GenerationParams(0.0, 1.0, 8, no_repeat_ngram=2)))
    assert free.count("The") == 8 and guarded.count("The") == 2


def test_rag_with_nothing_relevant_says_so_without_generating(service, prompts):
    service.use_knowledge(FakeRetriever([]))
    updates = ask(service, "Who won the 1998 World Cup?", mode=Mode.RAG, params=GREEDY)
    assert [u.text for u in updates] == [NOTHING_FOUND] and not prompts
    assert updates[0].status == "nothing_found"
    german = ask(service, "Wer hat die Weltmeisterschaft 1998 gewonnen?", mode=Mode.RAG, params=GREEDY)[-1]
    assert german.text == "Die Dokumente sagen dazu nichts." and german.status == "nothing_found", "in its language"
    assert german.notes[-1].startswith("Try other words")


def test_lowest_ranked_passages_are_dropped_to_fit_the_context(engine, tiny_settings):
    from answer.service import ExpertService

    service = ExpertService.over(tiny_settings.replace(rag_context="chunks", system_prompt="sys").answer, engine)
    long_text = "Blade inspections follow the FROST checklist every 500 hours. " * 2
    service.use_knowledge(FakeRetriever([_passage(i, long_text) for i in range(1, 6)]))
    final = ask(service, "When are blades inspected?", mode=Mode.RAG, params=GREEDY)[-1]
    assert 1 <= len(final.sources) < 5
    assert [p.source for p in final.sources] == [f"doc{i}.md" for i in range(1, len(final.sources) + 1)]


def test_base_ignores_retriever_and_adapter(service, prompts):
    retriever, catalog = FakeRetriever([_passage(1)]), FakeCatalog()
    service.use_knowledge(retriever)
    service.use_adapters(catalog)
    ask(service, "Hi", mode=Mode.BASE, params=GREEDY, adapter="demo")
    assert prompts[-1].adapter is None and "Sources:" not in prompts[-1].prompt
    assert retriever.queries == [] and catalog.calls == []


def test_finetuned_and_hybrid_resolve_the_adapter_once_and_note_staleness(service, prompts):
    catalog = FakeCatalog(kb_snapshot="snap-0")
    service.use_knowledge(FakeRetriever([_passage(1)]))
    service.use_adapters(catalog)
    fine = ask(service, "Hi", mode=Mode.FINETUNED, params=GREEDY, adapter="demo", session="alice")[-1]
    hybrid = ask(service, "Hi", mode=Mode.HYBRID, params=GREEDY, adapter="demo", session="alice")[-1]
    assert catalog.calls == [("demo", "alice"), ("demo", "alice")]
    assert [g.adapter.key for g in prompts] == ["demo/demo", "demo/demo"]
    assert "Sources:" not in prompts[0][0] and "Sources:" in prompts[1][0]
    stale = "This adapter was trained against the knowledge base of 2026-11-01; the documents have changed since"
    assert fine.notes[0].startswith(stale) and hybrid.notes[0].startswith(stale)
    assert not fine.sources and hybrid.sources
    catalog.kb_snapshot = "snap-1"  # trained on the live snapshot: no note
    assert ask(service, "Hi", mode=Mode.FINETUNED, params=GREEDY, adapter="demo")[-1].notes == []


def test_an_adapter_that_cannot_be_resolved_is_one_sentence_before_any_generation(service, prompts):
    service.use_adapters(FakeCatalog())
    with pytest.raises(UserInputError, match="No adapter named 'missing'"):
        ask(service, "Hi", mode=Mode.FINETUNED, adapter="missing")
    assert not prompts


def test_modes_say_what_they_need(service):
    texts = {}
    for m in Mode:
        if m != Mode.BASE:
            with pytest.raises(UserInputError) as err:
                ask(service, "Hi", mode=m, params=GREEDY)
            texts[m] = str(err.value)
    assert texts[Mode.RAG] == "RAG mode needs a document index, and none is loaded."
    assert texts[Mode.FINETUNED] == "Fine-tuned mode needs an adapter; choose one under Adapters."
    assert "document index" in texts[Mode.HYBRID] and "adapter" in texts[Mode.HYBRID]


def test_a_failed_search_reaches_the_user_as_one_sentence(service):
    class Broken(FakeRetriever):
        def search(self, query, top_k=None):
            from rag.errors import IndexMismatchError

            raise IndexMismatchError("The index was built with another embedding model; rebuild it.")

    service.use_knowledge(Broken([]))
    with pytest.raises(UserInputError, match="rebuild it"):
        ask(service, "Hi", mode=Mode.RAG)


def test_a_source_counts_as_cited_when_it_supports_the_answer_not_when_its_number_is_printed():
    from answer.evidence import SourceSentences
    from answer.pipeline import judge
    from answer.types import AnswerUpdate
    from ui.presentation import display_text, printed_citations

    sources = [_passage(1, "Seals are replaced every 500 hours."), _passage(2)]
    update = AnswerUpdate(
        "Part KX-4471 is the main bearing seal [1]. It costs 90 euros [9].", Mode.RAG, sources=sources
    )
    judge(update, SourceSentences([p.text for p in sources]), [])
    assert printed_citations(update) == [1]
    assert update.cited == [2], "supported by source 2, whatever the model printed"
    assert update.unsupported == ["It costs 90 euros [9]."]
    assert [q.text for q in update.evidence] == ["Part KX-4471 is the main bearing seal."]
    assert update.evidence[0].file == "doc2.md" and update.evidence_supports
    # the reader sees the marker on the source that supports the sentence, and never the invented [9]
    assert display_text(update) == "Part KX-4471 is the main bearing seal [2]. It costs 90 euros ."


def test_when_nothing_is_supported_the_evidence_shows_what_the_sources_say():
    from answer.evidence import Evidence, SourceSentences
    from answer.pipeline import judge
    from answer.types import AnswerUpdate

    sources = [_passage(1)]
    update = AnswerUpdate("Bananas are yellow and long.", Mode.RAG, sources=sources)
    shown = [Evidence(1, "Part KX-4471 is the main bearing seal.", 1.0)]
    judge(update, SourceSentences([p.text for p in sources]), shown)
    assert not update.evidence_supports and update.cited == []
    assert [(q.source, q.text) for q in update.evidence] == [(1, "Part KX-4471 is the main bearing seal.")]


def test_each_mode_sees_only_its_own_answers_and_rag_only_the_questions():
    from answer.prompts import history_for

    history = [
        {"role": "user", "content": "q1", "mode": "Base"},
        {"role": "assistant", "content": "a1", "mode": "Base"},
        {"role": "user", "content": "q2", "mode": "RAG"},
        {"role": "assistant", "content": "a2", "mode": "RAG"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
    ]
    base, _, _ = history_for(Mode.BASE, history)
    fine, _, _ = history_for(Mode.FINETUNED, history)
    rag, earlier, _ = history_for(Mode.RAG, history)
    assert [m["content"] for m in base] == ["q1", "a1", "q3", "a3"]
    assert [m["content"] for m in fine] == ["q3", "a3"]
    assert rag == () and earlier == ("q1", "q2", "q3")


def test_rag_prompt_carries_the_earlier_questions_not_the_answers(service, prompts):
    service.use_knowledge(FakeRetriever([_passage(1)]))
    history = [
        {"role": "user", "content": "Which seal is it?"},
        {"role": "assistant", "content": "An invented answer."},
    ]
    ask(service, "What is KX-4471?", mode=Mode.RAG, params=GREEDY, history=history)
    prompt = prompts[-1][0]
    assert "Earlier questions in this conversation: Which seal is it?" in prompt
    assert "An invented answer" not in prompt


class EncodingRetriever(FakeRetriever):
    """A stand-in with an embedding model: every text the same direction (so only key terms decide)."""

    def encode(self, texts):
        import numpy as np

        return np.ones((len(texts), 2)) / np.sqrt(2)


def test_with_no_source_sentence_on_the_question_rag_declines_in_its_language_without_the_model(
    engine, tiny_settings, prompts
):
    from answer.service import ExpertService

    service = ExpertService.over(tiny_settings.replace(system_prompt="sys", evidence_floor=0.5).answer, engine)
    service.use_knowledge(EncodingRetriever([_passage(1, "Seals are replaced every 500 hours.")]))
    final = ask(service, "Koliko košta lopatica rotora?", mode=Mode.RAG)[-1]
    assert final.text == "Dokumenti to ne navode." and final.status == "nothing_found" and not prompts
    assert final.evidence and not final.evidence_supports, "the closest source sentences are still shown"
    answered = ask(service, "When are seals replaced?", mode=Mode.RAG)[-1]
    assert answered.status == "answer" and prompts


def test_an_index_rebuilt_from_the_same_documents_does_not_make_an_adapter_stale():
    from adapters.cards import staleness_note

    assert staleness_note("s1", "2026-11-01T00:00:00Z", "s2", "docs-a", "docs-a") is None
    assert staleness_note("s1", "2026-11-01T00:00:00Z", "s2", "docs-a", "docs-b").startswith("This adapter was")
    assert staleness_note("s1", None, "s2").startswith("This adapter was trained against an earlier")


def test_the_copy_bias_favours_finishing_a_quote_it_has_started():
    import torch

    from engines.decoding import _CopyBias

    bias = _CopyBias([[5, 6, 7, 8]], prompt_length=2, bias=3.0)
    scores = bias(torch.tensor([[1, 2, 9, 5]]), torch.zeros(1, 10))  # answer so far: 9, 5
    assert scores[0, 6] == 1.0 and scores[0].sum() == 1.0  # one token matched: a third of the bias
    scores = bias(torch.tensor([[1, 2, 5, 6, 7]]), torch.zeros(1, 10))  # three tokens matched
    assert scores[0, 8] == 3.0 and scores[0].sum() == 3.0
    assert bias(torch.tensor([[1, 2]]), torch.zeros(1, 10)).sum() == 0, "nothing to continue yet"


def test_a_first_line_that_only_repeats_the_question_is_not_the_answer():
    from answer.pipeline import _echoes

    assert _echoes("모터 베어링은 언제 교체하나요?", "모터 베어링은 언제 교체하나요?")
    assert _echoes("Question: When are seals replaced?", "When are seals replaced?")
    assert not _echoes("Seals are replaced every 500 hours [1].", "When are seals replaced?")


def test_an_answer_that_begins_by_repeating_the_question_keeps_only_the_answer():
    from answer.pipeline import _without_echo

    question = "L2 정기 점검은 몇 시간마다 하나요?"
    assert _without_echo("L2 정기 점검은 몇 시간마다 하나요? 비행 50시간마다 [1].", question) == "비행 50시간마다 [1]."
    assert _without_echo("Tko je izradio protokol za buru. Ana Perić [1].", "Tko je izradio protokol za buru?") == (
        "Ana Perić [1]."
    )
    assert _without_echo(question, question) == question, "nothing else said: left as it was"
    assert _without_echo("Seals are replaced every 500 hours.", "When are seals replaced?") == (
        "Seals are replaced every 500 hours."
    )


def test_compare_gives_each_mode_the_answer_it_gives_alone(service, prompts):
    """Compare's four answers run at once; one that ends (or closes its stream at the line's end) must not
    stop the others."""
    service.use_knowledge(FakeRetriever([_passage(1), _passage(2, "The warranty period is two years.")]))
    service.use_adapters(FakeCatalog())
    modes = ["Base", "RAG", "Fine-tuned", "Hybrid"]
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=24)
    alone = [ask(service, "What is part KX-4471?", m, params, adapter="demo")[-1].text for m in modes]
    assert all(alone)
    final = list(service.compare("tester", "What is part KX-4471?", modes, params, None, "demo"))[-1]
    assert [u.text for u in final] == alone


def test_an_answer_of_markers_is_never_shown_the_documents_are_quoted_instead(tiny_settings, tiny_loaded):
    from answer.service import ExpertService
    from engines.transformers_engine import TransformersEngine
    from ui.presentation import format_answer

    engine = TransformersEngine(forced_model(tiny_loaded, "["))  # "[[[[[[…": markers, no words
    service = ExpertService.over(tiny_settings.replace(system_prompt="").answer, engine)
    service.use_knowledge(FakeRetriever([_passage(1, "Seals are replaced every 500 hours.")]))
    updates = ask(service, "When are seals replaced?", mode=Mode.RAG)
    assert all(not u.text or u.done for u in updates), "nothing of the markers is streamed to the reader"
    final = updates[-1]
    assert final.status == "quoted" and final.text == "The documents say: “Seals are replaced every 500 hours.” [1]"
    assert final.cited == [1] and "quoted instead" in final.notes[-1]
    shown = format_answer(final)
    assert shown.startswith("The documents say:") and "**Evidence:**" not in shown, "the quote is not repeated"
    korean = ask(service, "씰은 언제 교체하나요?", mode=Mode.RAG)[-1]
    assert korean.status in ("quoted", "nothing_found") and korean.text.startswith(("문서에 따르면", "문서에 나와"))


def test_an_empty_grounded_answer_quotes_the_documents(tiny_settings, tiny_loaded):
    from answer.service import ExpertService
    from engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(forced_model(tiny_loaded, "<|end|>"))  # stops before saying anything
    service = ExpertService.over(tiny_settings.replace(system_prompt="").answer, engine)
    service.use_knowledge(FakeRetriever([_passage(1, "Seals are replaced every 500 hours.")]))
    final = ask(service, "When are seals replaced?", mode=Mode.RAG)[-1]
    assert final.status == "quoted" and final.text == "The documents say: “Seals are replaced every 500 hours.” [1]"
    assert "was empty" in final.notes[-1]
    base = ask(service, "When are seals replaced?", mode=Mode.BASE)[-1]
    assert base.text == "" and base.status == "answer", "without documents there is nothing to quote"
