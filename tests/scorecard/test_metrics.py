"""Per-answer scores and figures against hand-computed values; only the model's own words count."""

import pytest

from scorecard.metrics import AnswerRecord, figures, percentile, rouge_l, score, token_f1, tokenize
from scorecard.qa import QAItem
from scorecard.recommend import mcnemar_p, recommend

ITEM = QAItem("q1", "What is the maximum payload of the Tern T12?", "12 kg.", "fleet.md", "en", True, ("12 kg",))
NO_ANSWER = QAItem("n1", "What is Kestrava's stock ticker?", "The documents do not say.", None, "en", False, ())
PASSAGE = {
    "source": "fleet.md",
    "location": "section Payload",
    "score": 0.9,
    "text": "The Tern T12 has a maximum payload of 12 kg. It cruises at 22 m/s.",
}
OTHER = {"source": "battery.md", "location": "lines 1-3", "score": 0.5, "text": "Battery packs weigh 3 kg."}


def test_tokenize_splits_cjk_per_character_and_keeps_units_together():
    assert tokenize("The T12 carries 12 kilograms.") == ["t12", "carries", "12kg"]
    assert tokenize("최대 12kg입니다") == ["최", "대", "12kg", "입", "니", "다"]
    assert tokenize("積載量は12kg") == ["積", "載", "量", "は", "12kg"]


def test_token_f1_by_hand():
    # prediction: [max, payload, is, 12kg] (4); reference: [12kg] (1); overlap 1 -> P=1/4, R=1, F1=0.4
    assert token_f1("The max payload is 12 kg", "12 kg.") == pytest.approx(0.4)
    assert token_f1("nothing", "12 kg") == 0.0
    assert token_f1("12 kg", "twelve kilograms") == 1.0


def test_rouge_l_by_hand_and_per_character_for_cjk():
    # reference [a, b, c, d], prediction [a, c, d, e]: LCS = 3 -> P = R = 3/4 -> F = 0.75
    assert rouge_l("apple cherry date elder", "apple banana cherry date") == pytest.approx(0.75)
    # 最大積載量 vs 最大容量: LCS 最,大,量 = 3; P = 3/4, R = 3/5 -> F = 2PR/(P+R) = 0.6667
    assert rouge_l("最大容量", "最大積載量") == pytest.approx(2 * 0.75 * 0.6 / 1.35, abs=1e-4)


def test_key_recall_all_and_any():
    item = QAItem(
        "q2", "When and where was it founded?", "14 March 2016, Seoul.", "co.md", "en", True, ("14 March 2016", "Seoul")
    )
    both = score(item, AnswerRecord("q2", "Base", "It was founded in Seoul on March 14, 2016."), False)
    one = score(item, AnswerRecord("q2", "Base", "It was founded in Seoul."), False)
    assert (both.keys_all, both.keys_any, both.keys_share) == (True, True, 1.0)
    assert (one.keys_all, one.keys_any, one.keys_share) == (False, True, 0.5)


def test_footer_sources_and_notes_never_count():
    record = AnswerRecord(
        "q1", "RAG", "The payload is large.", sources=[PASSAGE], notes=["Sources: fleet.md, section Payload: 12 kg"]
    )
    scored = score(ITEM, record, uses_documents=True)
    assert scored.keys_all is False and scored.keys_any is False
    assert scored.rank == 1  # retrieval is still credited


def test_retrieval_rank_citation_and_grounding():
    record = AnswerRecord("q1", "RAG", "The Tern T12 carries 12 kg [2].", sources=[OTHER, PASSAGE], cited=[2])
    scored = score(ITEM, record, uses_documents=True)
    assert scored.rank == 2 and scored.cited_right is True and scored.grounding == 1.0 and scored.keys_all
    wrong = AnswerRecord(
        "q1",
        "RAG",
        "The Tern T12 carries 40 kg [1]. Battery packs weigh 3 kg [1].",
        sources=[OTHER, PASSAGE],
        cited=[1],
    )
    scored = score(ITEM, wrong, uses_documents=True)
    assert scored.cited_right is False and scored.grounding == 0.5  # 40 kg is supported nowhere
    missed = score(ITEM, AnswerRecord("q1", "RAG", "No idea.", sources=[OTHER]), uses_documents=True)
    assert missed.rank == 0


def test_no_answer_questions_are_scored_on_declining():
    declined = score(NO_ANSWER, AnswerRecord("n1", "RAG", "The documents do not say."), True)
    refused = score(NO_ANSWER, AnswerRecord("n1", "RAG", "I found nothing…", status="nothing_found"), True)
    invented = score(NO_ANSWER, AnswerRecord("n1", "RAG", "It is KSTR on NASDAQ."), True)
    assert (declined.declined_right, refused.declined_right, invented.declined_right) == (True, True, False)
    assert declined.keys_all is None and declined.rank is None
    wrongly = score(ITEM, AnswerRecord("q1", "RAG", "I found nothing…", status="nothing_found"), True)
    assert wrongly.declined_wrongly is True and wrongly.rank == 0


def test_figures_carry_counts_and_latency_percentiles():
    rows = [
        score(
            ITEM, AnswerRecord("q1", "RAG", "12 kg", sources=[PASSAGE], tokens=10, generation_s=1.0, total_s=1.0), True
        ),
        score(
            ITEM,
            AnswerRecord("q1", "RAG", "40 kg", sources=[OTHER, PASSAGE], tokens=30, generation_s=1.0, total_s=3.0),
            True,
        ),
        score(
            NO_ANSWER,
            AnswerRecord("n1", "RAG", "The documents do not say.", tokens=5, generation_s=0.5, total_s=2.0),
            True,
        ),
    ]
    f = figures(rows, k=1, uses_documents=True)
    assert (f["key_facts_all"].value, f["key_facts_all"].n) == (0.5, 2)
    assert (f["hit_at_1"].value, f["hit_at_k"].value, f["mrr"].value) == (0.5, 0.5, 0.75)
    assert (f["declined_no_answer"].value, f["declined_no_answer"].n) == (1.0, 1)
    assert f["latency_p50_s"].value == 2.0 and f["latency_p95_s"].value == pytest.approx(2.9)
    assert f["tokens_per_s"].value == pytest.approx(45 / 2.5)
    base = figures(rows, k=1, uses_documents=False)
    assert base["hit_at_1"].value is None and base["hit_at_1"].n == 0
    assert percentile([], 50) is None


def test_mcnemar_exact_by_hand():
    # 6 discordant pairs, all one way: p = 2 * (1/2)^6 = 0.03125
    assert mcnemar_p([True] * 6 + [False] * 4, [False] * 6 + [False] * 4) == pytest.approx(0.03125)
    assert mcnemar_p([True, False], [False, True]) == 1.0
    assert mcnemar_p([True], [True]) == 1.0


def _scored(mode, hits, language="en"):
    rows = []
    for i, hit in enumerate(hits):
        item = QAItem(f"q{i}-{language}", "q", "12 kg", "f.md", language, True, ("12 kg",))
        rows.append(score(item, AnswerRecord(item.id, mode, "12 kg" if hit else "no"), False))
    return rows


def test_recommendation_names_its_numbers_and_the_weakest_language():
    scored = {"RAG": _scored("RAG", [True] * 20), "Base": _scored("Base", [False] * 20)}
    scored["RAG"] += _scored("RAG", [False] * 4, "ko")
    scored["Base"] += _scored("Base", [False] * 4, "ko")
    overall = {m: figures(rows, 4, m == "RAG") for m, rows in scored.items()}
    by_language = {
        m: {lang: figures([r for r in rows if r.item.language == lang], 4, m == "RAG") for lang in ("en", "ko")}
        for m, rows in scored.items()
    }
    rec = recommend(overall, by_language, scored)
    assert rec.best_mode == "RAG" and rec.weakest_language == "ko"
    assert "Use RAG for facts" in rec.text and "RAG 83%" in rec.text and "ko (0% of 4 questions)" in rec.text
    low = {"RAG": _scored("RAG", [True] * 3 + [False] * 7), "Base": _scored("Base", [False] * 10)}
    overall = {m: figures(rows, 4, False) for m, rows in low.items()}
    rec = recommend(overall, {m: {"en": overall[m]} for m in low}, low)
    assert rec.text.startswith("None is good enough yet: the best mode, RAG, carries every key fact in 30% of 10")
    assert "not clearly ahead of Base (p=0.25)" in rec.text


def test_evidence_recall_is_reported_apart_from_the_answer():
    record = AnswerRecord(
        "q1",
        "RAG",
        "The payload is large.",
        sources=[PASSAGE],
        evidence=["The Tern T12 has a maximum payload of 12 kg."],
        judged=1,
        supported=0,
    )
    scored = score(ITEM, record, uses_documents=True)
    assert scored.keys_all is False and scored.evidence_keys_all is True
    assert scored.grounding == 0.0, "the pipeline's own judgement is used when it was recorded"


def test_a_quote_in_place_of_the_answer_is_counted_apart_and_never_scored_as_the_model_s():
    record = AnswerRecord(
        "q1",
        "RAG",
        "The documents say: “The Tern T12 has a maximum payload of 12 kg.” [1]",
        status="quoted",
        sources=[PASSAGE],
        cited=[1],
        evidence=["The Tern T12 has a maximum payload of 12 kg."],
    )
    scored = score(ITEM, record, uses_documents=True)
    assert scored.quoted and scored.keys_all is False and scored.cited_right is False and not scored.declined
    assert scored.evidence_keys_all is True, "what was quoted is still reported apart"
    assert figures([scored], 4, True)["quoted_instead"].value == 1.0
