"""How an answer reads in the chat and in Compare: evidence quoted, unsupported sentences marked, no invented
source numbers."""

from answer.evidence import SourceSentences
from answer.pipeline import judge
from answer.ports import Passage
from answer.types import AnswerUpdate, Mode
from ui.presentation import UNSUPPORTED_MARK, format_answer

SOURCES = [
    Passage("Seals are replaced every 500 hours.", "seals.md", "section Seals", 0.9, "d1", "d1:0"),
    Passage("Part KX-4471 is the main bearing seal.", "parts.md", "lines 3-4", 0.5, "d2", "d2:0"),
]


def judged(text: str) -> AnswerUpdate:
    update = AnswerUpdate(text, Mode.RAG, done=True, sources=SOURCES)
    judge(update, SourceSentences([p.text for p in SOURCES]), [])
    return update


def test_the_evidence_is_quoted_with_its_number_file_and_place():
    shown = format_answer(judged("Part KX-4471 is the main bearing seal [2]."))
    assert shown.startswith("Part KX-4471 is the main bearing seal [2].\n\n**Evidence:**\n")
    assert "> [2] “Part KX-4471 is the main bearing seal.” — parts.md, lines 3-4" in shown
    assert "**Sources:** [1] seals.md, section Seals · [2] parts.md, lines 3-4 (cited)" in shown
    assert UNSUPPORTED_MARK not in shown


def test_unsupported_sentences_are_marked_and_invented_source_numbers_never_shown():
    shown = format_answer(judged("Part KX-4471 is the main bearing seal [2]. It costs 90 euros [7]."))
    assert f"It costs 90 euros .{UNSUPPORTED_MARK}" in shown and "[7]" not in shown
    assert "(cited)" in shown and "[1] seals.md, section Seals ·" in shown


def test_an_answer_nothing_supports_shows_what_the_sources_say_instead():
    update = AnswerUpdate("Bananas are yellow.", Mode.RAG, done=True, sources=SOURCES)
    from answer.evidence import Evidence

    judge(update, SourceSentences([p.text for p in SOURCES]), [Evidence(1, SOURCES[0].text, 1.0)])
    shown = format_answer(update)
    assert "**What the sources say:**\n> [1] “Seals are replaced every 500 hours.”" in shown
    assert f"Bananas are yellow.{UNSUPPORTED_MARK}" in shown and "(cited)" not in shown


def test_a_marker_on_the_wrong_source_moves_to_the_source_that_supports_the_sentence():
    shown = format_answer(judged("Part KX-4471 is the main bearing seal [1]. Seals are replaced every 500 hours [1]."))
    assert shown.startswith("Part KX-4471 is the main bearing seal [2]. Seals are replaced every 500 hours [1].")
    assert "(cited)" in shown.split("**Sources:**")[1]


def test_markdown_bold_in_a_quoted_list_item_does_not_break_the_quote():
    item = "- **Tern T12** – hybrid VTOL, 12 kg payload, regional routes."
    sources = [Passage(item, "overview.md", "section Fleet", 0.9, "d1", "d1:0")]
    update = AnswerUpdate("The Tern T12 carries a 12 kg payload [1].", Mode.RAG, done=True, sources=sources)
    judge(update, SourceSentences([p.text for p in sources]), [])
    assert "> [1] “Tern T12 – hybrid VTOL, 12 kg payload, regional routes.” — overview.md" in format_answer(update)


def test_sources_read_as_words_with_the_whole_passage_on_demand():
    from ui.presentation import PASSAGE_SHOWN, passage_text, source_rows

    long = "The CryoPod CP-D keeps vaccines between 2 and 8 degrees. " * 12
    sources = [*SOURCES, Passage(long, "pods.md", "section CP-D", 0.2, "d3", "d3:0")]
    update = AnswerUpdate("Part KX-4471 is the main bearing seal [2].", Mode.RAG, done=True, sources=sources)
    judge(update, SourceSentences([p.text for p in sources]), [])
    rows = source_rows(update)
    assert [r[1] for r in rows] == ["best match", "related · cited", "weak"]  # no raw fusion scores
    assert [r[2:4] for r in rows] == [
        ["seals.md", "section Seals"],
        ["parts.md", "lines 3-4"],
        ["pods.md", "section CP-D"],
    ]
    assert rows[2][4].endswith(" …") and len(rows[2][4]) <= PASSAGE_SHOWN + 2 and not rows[2][4][-3].isspace()
    assert rows[2][4][:-2] == long[: len(rows[2][4]) - 2]  # cut at a word boundary, not mid-word
    assert passage_text(update, 3) == f"[3] pods.md, section CP-D\n\n{long}"  # the whole passage, on a click
    assert passage_text(update, 9) == "" and source_rows(None) == []


def test_compare_names_the_adapter_under_fine_tuned_and_hybrid_only():
    from pathlib import Path

    from adapters.registry import AdapterInfo
    from adapters.spec import LoraSpec
    from core.errors import UserInputError
    from ui.presentation import compare_texts

    info = AdapterInfo(
        "demo/x", "x", "demo", Path("."), None, LoraSpec(4, 8.0, False, ("q_proj",)), ("q_proj",), 8.0, 1, None
    )
    answers = [AnswerUpdate("Hi.", mode, done=True) for mode in Mode]
    shown = compare_texts(answers, info)
    assert ["Adapter: x (demo)." in s for s in shown] == [False, False, True, True]
    assert compare_texts([None, UserInputError("Fine-tuned mode needs an adapter.")], None) == [
        "",
        "⚠️ Fine-tuned mode needs an adapter.",
    ]


def test_the_chats_history_is_tagged_with_the_mode_that_answered():
    from answer.prompts import history_for
    from ui.presentation import tagged

    history = tagged("How often is the vent valve changed?", AnswerUpdate("Every 200 flights [1].", Mode.RAG))
    assert [m["mode"] for m in history] == ["RAG", "RAG"]
    assert history_for(Mode.BASE, history)[0] == ()  # Base never takes RAG's answer as its own
