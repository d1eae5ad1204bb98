"""Retrieval-augmented fine-tuning: examples built from the live index, as the app's RAG prompt shows them."""

import json
import re

import pytest

from answer.prompts import grounded_message
from core.language import DOCUMENTS_DO_NOT_SAY, detect_language
from core.settings import AnswerSettings
from rag import KnowledgeBase
from tests.conftest import rag_settings, write_docs
from train.formats import DataFormatError, read_dataset
from train.raft import augment

DOCS = {
    "parts.md": "# Parts\n\nPart KX-4471 is the main bearing seal of the Tern T6. It costs 120 euros.\n",
    "codes.md": "# Codes\n\nError code E-PW-131 means the battery pack is below 5 degrees Celsius.\n",
    "split_hr.md": "# Split\n\nDostava na otok Vis traje 45 minuta. Ljekarna preuzima pošiljku na heliodromu.\n",
    "weather.md": "# Weather\n\nFlights stop when the wind is above 12 m/s at the launch site.\n",
}
QA = [
    ("What is part KX-4471?", "It is the main bearing seal of the Tern T6.", "parts.md"),
    ("What does E-PW-131 mean?", "The battery pack is below 5 degrees Celsius.", "codes.md"),
    ("Koliko traje dostava na Vis?", "Dostava na Vis traje 45 minuta.", "split_hr.md"),
    ("Above what wind speed do flights stop?", "Above 12 m/s at the launch site.", "weather.md"),
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raft")
    base = KnowledgeBase.from_settings(rag_settings(folder / "data", top_k=3)).open()
    assert all(r.ok for r in base.add_files(write_docs(folder / "docs", DOCS)))
    return base


EVIDENCE = AnswerSettings().evidence_sentences


def dataset(tmp_path, records):
    path = tmp_path / "qa.jsonl"
    lines = [
        json.dumps(
            {
                "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                **({"source": s} if s else {}),
            },
            ensure_ascii=False,
        )
        for q, a, s in records
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_dataset(path, "messages", "sys")


def test_grounded_examples_show_the_right_sentence_and_cite_its_number(kb, tmp_path):
    data, stats = augment(dataset(tmp_path, QA), kb, EVIDENCE, 0.0, 0.0, seed=1)
    assert stats.grounded == 4 and stats.distractor_only == 0 and stats.snapshot_id == kb.snapshot.snapshot_id
    for (question, answer, source), conversation in zip(QA, data.conversations, strict=True):
        system, user, assistant = conversation
        assert system == {"role": "system", "content": "sys"}
        assert user["content"].startswith(f"Question: {question}\n\nSources:\n")  # the app's own prompt
        number = int(re.search(r"\[(\d+)\]", assistant["content"]).group(1))
        cited_line = next(line for line in user["content"].splitlines() if line.startswith(f"[{number}] "))
        fact = {"parts.md": "KX-4471", "codes.md": "E-PW-131", "split_hr.md": "45 minuta", "weather.md": "12 m/s"}
        assert fact[source] in cited_line, (cited_line, answer)
        assert assistant["content"].replace(f" [{number}]", "") == answer


def test_distractor_only_examples_decline_in_the_question_language(kb, tmp_path):
    data, stats = augment(dataset(tmp_path, QA), kb, EVIDENCE, 1.0, 0.0, seed=1)
    assert stats.distractor_only == 4 and stats.grounded == 0
    for (_, _, source), conversation in zip(QA, data.conversations, strict=True):
        user, assistant = conversation[1]["content"], conversation[2]["content"]
        fact = {"parts.md": "KX-4471 is", "codes.md": "below 5", "split_hr.md": "45 minuta", "weather.md": "12 m/s"}
        assert fact[source] not in user.split("Sources:")[1], "no sentence that answers it is shown"
        assert assistant == DOCUMENTS_DO_NOT_SAY["hr" if source == "split_hr.md" else "en"]


def test_plain_examples_keep_the_adapter_useful_without_sources_and_excluded_questions_go(kb, tmp_path):
    exclude = tmp_path / "dev.jsonl"
    exclude.write_text(json.dumps({"question": "What is part  KX-4471?"}) + "\n")
    data, stats = augment(dataset(tmp_path, QA), kb, EVIDENCE, 0.0, 1.0, seed=1, exclude=exclude)
    assert (stats.excluded, stats.grounded, stats.plain) == (1, 3, 3)
    plain = [c for c in data.conversations if "Sources:" not in c[1]["content"]]
    assert [c[1]["content"] for c in plain] == [q for q, _, _ in QA[1:]]


def test_a_record_without_its_source_document_is_refused_with_its_line(kb, tmp_path):
    with pytest.raises(DataFormatError, match=r"qa.jsonl:2: .*'source'"):
        augment(dataset(tmp_path, [QA[0], ("Q?", "A.", None)]), kb, EVIDENCE, 0.0, 0.0, seed=1)


def test_the_prompt_is_the_one_the_app_serves():
    from answer.evidence import Evidence

    question = "Koliko traje dostava?"
    text = grounded_message(
        question, [Evidence(2, "Dostava traje 45 minuta.", 1.0)], language=detect_language(question)
    )
    assert "[2] Dostava traje 45 minuta." in text and "in Croatian" in text
