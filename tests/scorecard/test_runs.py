"""Whole scorecard runs on the tiny model through the real service: resume, outputs, card, privacy."""

import json
import tempfile
import threading
import time
from pathlib import Path

import pytest

from adapters.synthetic import write_random_adapter
from answer.ports import Passage, Snapshot
from compose import compose
from core.files import append_line
from engines.base import GenerationParams
from scorecard import ScorecardError, evaluate, evaluate_for_session, load_qa
from scorecard.runner import ANSWERS_FILE, ScorecardRun
from tests.conftest import build_tiny_phi3

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
PARAMS = GenerationParams(0.0, 1.0, 6)
QA = [
    {
        "id": "q1",
        "question": "What is part KX-4471?",
        "answer": "The main bearing seal.",
        "source": "parts.md",
        "language": "en",
        "answerable": True,
        "keys": ["main bearing seal"],
    },
    {
        "id": "q2",
        "question": "정비는 언제입니까?",
        "answer": "매달 첫째 주 월요일.",
        "source": "schedule_ko.md",
        "language": "ko",
        "answerable": True,
        "keys": ["월요일"],
    },
    {
        "id": "n1",
        "question": "What is the stock ticker?",
        "answer": "The documents do not say.",
        "source": None,
        "language": "en",
        "answerable": False,
        "keys": [],
    },
]


class Passages:
    """A stand-in retriever: the KX-4471 passage for questions naming it, nothing for the ticker."""

    snapshot = Snapshot("snap-test", "")

    def search(self, query, top_k=None):
        if "ticker" in query:
            return []
        return [
            Passage("Part KX-4471 is the main bearing seal.", "parts.md", "section Seals", 0.9, "d1", "d1:0"),
            Passage("정비 일정은 매달 첫째 주 월요일입니다.", "schedule_ko.md", "lines 1-2", 0.5, "d2", "d2:0"),
        ]


@pytest.fixture(scope="module")
def app(tiny_settings, tmp_path_factory):
    """The composed app with its adapter catalog and a stand-in index."""
    model = build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3-1k"), context=1024)  # room for Korean sources
    settings = tiny_settings.replace(model=str(model), data_dir=tmp_path_factory.mktemp("scorecard-data"), top_k=2)
    folder = settings.data_dir / "adapters" / "trained" / "tiny-lora"
    composed = compose(settings, parts=("adapters",)).start()
    assert composed.wait_ready(120), composed.service.status_line()
    composed.knowledge = Passages()  # a stand-in index, given to the service as compose.App gives the real one
    composed.service.use_knowledge(composed.knowledge)
    write_random_adapter(folder, composed.adapters.spec, TARGETS, r=4, seed=1, card={"format": "x", "method": "lora"})
    return composed


@pytest.fixture()
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QA), encoding="utf-8")
    return path


def test_a_run_writes_table_json_and_chart_and_scores_only_the_model_text(app, qa_file, tmp_path):
    result = evaluate(app, qa_file, ["Base", "RAG"], out_dir=tmp_path / "runs", params=PARAMS)
    card, folder = result.scorecard, result.scorecard.folder
    assert card.complete and result.outcome.answered == 6
    assert {p.name for p in folder.iterdir()} >= {
        "answers.jsonl",
        "run.json",
        "scorecard.md",
        "scorecard.json",
        "scorecard.png",
    }
    assert (folder / "scorecard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((folder / "scorecard.json").read_text())
    assert data["languages"] == {"en": 2, "ko": 1}
    rag = data["modes"]["RAG"]
    # The random tiny model never writes the key, though the retrieved passage holds it.
    assert rag["overall"]["key_facts_all"] == {"value": 0.0, "n": 2}
    assert rag["overall"]["hit_at_1"] == {"value": 0.5, "n": 2}
    assert rag["by_language"]["ko"]["hit_at_k"] == {"value": 1.0, "n": 1}
    # The ticker question found nothing: RAG declined without asking the model.
    assert rag["overall"]["declined_no_answer"] == {"value": 1.0, "n": 1}
    assert data["modes"]["Base"]["overall"]["hit_at_1"]["n"] == 0
    markdown = (folder / "scorecard.md").read_text()
    assert "| key facts (all) | 0.00 (2) | 0.00 (2) |" in markdown and "**Recommendation.**" in markdown
    assert "Korean (ko)" in markdown and "Weakest language" in markdown


def test_an_interrupted_run_resumes_and_keeps_finished_answers(app, qa_file, tmp_path):
    stop = threading.Event()

    def progress(done, total, message):
        if done >= 2:
            stop.set()

    first = evaluate(app, qa_file, ["Base", "RAG"], out_dir=tmp_path, params=PARAMS, progress=progress, stop=stop)
    assert first.outcome.interrupted and first.outcome.answered == 2 and not first.scorecard.complete
    assert "Partial run" in first.markdown_path.read_text()
    answers = first.scorecard.folder / ANSWERS_FILE
    kept = answers.read_text().splitlines()
    with open(answers, "a") as f:  # a crash in the middle of writing the third answer
        f.write('{"id": "q2", "mode": "Base", "te')
    second = evaluate(app, qa_file, ["Base", "RAG"], out_dir=tmp_path, params=PARAMS)
    assert (second.outcome.reused, second.outcome.answered, second.scorecard.complete) == (2, 4, True)
    lines = answers.read_text().splitlines()
    assert lines[:2] == kept and len(lines) == 6 and all(json.loads(line) for line in lines)
    third = evaluate(app, qa_file, ["Base", "RAG"], out_dir=tmp_path, params=PARAMS)
    assert (third.outcome.answered, third.outcome.reused) == (0, 6)


def test_stopping_mid_answer_discards_that_answer(app, qa_file, tmp_path):
    run = ScorecardRun(app, load_qa(qa_file), ["Base"], tmp_path / "r", params=GenerationParams(0.0, 1.0, 64))
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    outcome = run.run(stop=stop)
    timer.cancel()
    assert outcome.interrupted and len(run.stored()) == outcome.answered < 3


def test_another_setting_means_another_run_folder(app, qa_file, tmp_path):
    a = ScorecardRun.in_folder(tmp_path, app, load_qa(qa_file), ["Base"], params=PARAMS)
    b = ScorecardRun.in_folder(tmp_path, app, load_qa(qa_file), ["Base"], params=GenerationParams(0.0, 1.0, 7))
    assert a.folder != b.folder
    a.run()
    clash = ScorecardRun(app, load_qa(qa_file), ["Base"], a.folder, params=GenerationParams(0.0, 1.0, 7))
    with pytest.raises(ScorecardError, match="other settings"):
        clash.run()


def test_the_result_is_written_into_the_adapter_card_and_listed(app, qa_file, tmp_path):
    result = evaluate(app, qa_file, ["Base", "Fine-tuned", "Hybrid"], "tiny-lora", out_dir=tmp_path, params=PARAMS)
    assert result.card_note.startswith("Recorded in the card of tiny-lora")
    info = app.adapters.resolve("tiny-lora", None)
    card = json.loads((info.path / "adapter_card.json").read_text())
    assert card["method"] == "lora"  # the rest of the card is kept
    evaluation = card["evaluation"]
    assert evaluation["mode"] == "Hybrid" and evaluation["score"] == 0.0 and evaluation["questions"] == 3
    assert evaluation["modes"]["Fine-tuned"]["key_facts_all"]["n"] == 2
    assert info.eval_summary == evaluation["summary"] and "Hybrid 0.00" in info.eval_summary


def test_adapter_modes_need_an_adapter(app, qa_file, tmp_path):
    with pytest.raises(ScorecardError, match="need an adapter"):
        evaluate(app, qa_file, ["Hybrid"], out_dir=tmp_path, params=PARAMS)


def test_a_private_qa_file_never_writes_a_shared_adapter_card(app, qa_file):
    info = app.adapters.resolve("tiny-lora", None)
    before = (info.path / "adapter_card.json").read_bytes()
    result = evaluate_for_session(app, "session-a", qa_file, ["Fine-tuned"], "tiny-lora", limit=1)
    assert "not written into its card" in result.card_note
    assert (info.path / "adapter_card.json").read_bytes() == before
    assert "private" in result.scorecard.folder.parts


def test_a_chat_waits_at_most_one_answer_behind_a_running_scorecard(app, qa_file, tmp_path):
    """The engine's lock is first-come, first-served: a chat that arrives during a long scorecard run
    is answered after the answer in progress, not after the whole run."""
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps({**QA[0], "id": f"q{i}"}) + "\n" for i in range(40)))
    params = GenerationParams(0.0, 1.0, 24)
    done = []
    run = threading.Thread(
        target=lambda: done.append(evaluate(app, many, ["Base"], out_dir=tmp_path / "long", params=params))
    )
    run.start()
    time.sleep(0.5)
    started = time.perf_counter()
    chat = list(app.service.answer("someone-else", "Hello", [], "Base", params))
    waited = time.perf_counter() - started
    run.join()
    stored = done[0].scorecard.folder / ANSWERS_FILE
    per_answer = max(json.loads(line)["total_s"] for line in stored.read_text().splitlines())
    assert chat[-1].done
    assert waited < 2 * per_answer + 0.5, (waited, per_answer)
    assert done[0].outcome.answered == 40


def test_append_line_drops_a_cut_tail(tmp_path):
    log = tmp_path / "a.jsonl"
    append_line(log, {"a": 1})
    with open(log, "a") as f:
        f.write('{"b": ')
    append_line(log, {"c": 3})
    assert log.read_text() == '{"a": 1}\n{"c": 3}\n'


def test_the_command_says_why_it_skips_adapter_modes_when_several_adapters_could_be_meant():
    from scorecard.__main__ import default_adapter

    assert default_adapter(None, ["demo/a"], False) == ("demo/a", "")
    assert default_adapter("trained/b", ["demo/a", "trained/b"], False) == ("trained/b", "")
    adapter, notice = default_adapter(None, ["demo/a", "trained/b"], False)
    assert adapter is None and notice.startswith("Several adapters (demo/a, trained/b)") and "--adapter" in notice
    assert default_adapter(None, [], False) == (None, "")


def test_a_person_measures_on_their_own_documents_without_touching_the_knowledge_base(app, qa_file, tmp_path):
    from core.errors import UserInputError

    own = tmp_path / "upload"
    own.mkdir()
    (own / "seals.md").write_text("# Seals\n\nPart KX-4471 is the main bearing seal of the rotor.\n", encoding="utf-8")
    (own / "notes.rst").write_text("Notes\n=====\n\nThe stock ticker is not listed here.\n", encoding="utf-8")
    knowledge = app.knowledge
    throwaway = Path(tempfile.gettempdir())
    before = set(throwaway.glob("scorecard-corpus-*"))
    result = evaluate_for_session(
        app, "session-b", qa_file, ["RAG"], None, limit=1, documents=[own / "seals.md", own / "notes.rst"]
    )
    answers = [json.loads(line) for line in (result.scorecard.folder / ANSWERS_FILE).read_text().splitlines()]
    assert [s["source"] for s in answers[0]["sources"]][:1] == ["seals.md"], "answered from the uploaded file"
    assert app.knowledge is knowledge and app.service.knowledge is knowledge, "the app's own index is untouched"
    assert "private" in result.scorecard.folder.parts and not result.card_note
    assert not set(throwaway.glob("scorecard-corpus-*")) - before, "the throwaway index is gone"
    with pytest.raises(UserInputError, match="upload a QA file"):
        evaluate_for_session(app, "session-b", None, ["RAG"], None, documents=[own / "seals.md"])
