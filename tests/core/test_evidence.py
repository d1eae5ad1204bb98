"""The evidence matcher: which source sentences a question needs and which ones an answer rests on."""

import numpy as np

from answer.evidence import SourceSentences, candidates, grounding, is_decline, select_evidence, split_sentences

CHUNK = """## Payload classes

| Pod | Class | Hold time |
|---|---|---|
| CP-3 | R | 14 h |
| CP-5A | F | 9 h |

The CP-3 holds PB-5 bricks. It weighs 2.1 kg empty."""
KOREAN = "강서 정비동은 매주 월요일에 점검합니다. 변경 요청은 목요일 17:00까지 보내야 합니다."


def test_prose_is_rejoined_across_line_breaks_and_list_items_keep_their_continuation():
    text = (
        "Every TEX-3 opens a CAPA record with an ID of\nthe form CAPA-TEX-YYYY-NNN. A second sentence.\n\n"
        "- An aircraft in flight when lightning is seen within 16 km\n  returns to the nearest Nestbox.\n"
        "- No launch in rain.\n"
    )
    texts = [c.text for c in candidates([text])]
    assert texts == [
        "Every TEX-3 opens a CAPA record with an ID of the form CAPA-TEX-YYYY-NNN.",
        "A second sentence.",
        "An aircraft in flight when lightning is seen within 16 km returns to the nearest Nestbox.",
        "No launch in rain.",
    ]


def test_a_table_cut_above_its_header_gives_plain_rows_and_short_lines_carry_their_heading():
    cut = "| KX-5108 | MX-22 motor | 689 |\n| KX-5109 | Prop | 146 |"
    assert [c.text for c in candidates([cut])] == ["KX-5108; MX-22 motor; 689", "KX-5109; Prop; 146"]
    spec = candidates(["Range: 118 km"], ["section Fleet > Tern T12"])[0]
    assert spec.shown == "Tern T12: Range: 118 km"


def test_table_rows_become_sentences_that_name_their_columns():
    texts = [c.text for c in candidates([CHUNK])]
    assert "Pod: CP-3; Class: R; Hold time: 14 h" in texts and "Pod: CP-5A; Class: F; Hold time: 9 h" in texts
    assert "The CP-3 holds PB-5 bricks." in texts and not any("---" in t for t in texts)


def test_sentences_split_in_every_script():
    assert split_sentences("It is 2.5 kg. Next one! 세 번째입니다。次です。\n- item") == [
        "It is 2.5 kg.",
        "Next one!",
        "세 번째입니다。",
        "次です。",
        "item",
    ]


def test_the_best_matching_sentences_are_chosen_rare_terms_first():
    chosen = select_evidence("What is the hold time of the CP-3?", [CHUNK, KOREAN], k=3)
    assert chosen[0].text == "Payload classes: Pod: CP-3; Class: R; Hold time: 14 h" and chosen[0].source == 1
    capped = select_evidence("What is the hold time of the CP-3?", [CHUNK, KOREAN], k=3, per_passage=1)
    assert [e.source for e in capped] == [1, 2]
    korean = select_evidence("변경 요청은 언제까지 보내야 합니까?", [CHUNK, KOREAN], k=1)
    assert korean[0].source == 2 and "목요일 17:00" in korean[0].text


def test_an_encoder_adds_meaning_to_the_key_terms():
    calls = []

    def encode(texts):
        calls.append(len(texts))
        about_filling = [("brick" in t.lower() or "filled" in t.lower()) for t in texts]
        vectors = np.array([[1.0, 0.0] if hit else [0.0, 1.0] for hit in about_filling])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    sources = SourceSentences([CHUNK], encode)
    # the sentence after it refers back to it ("It weighs…"), so it comes along
    assert sources.select("Is it filled?", k=1)[0].text.startswith("The CP-3 holds PB-5 bricks.")
    assert sources.select("Anything else?", k=1) and calls[0] > 1 and all(n == 1 for n in calls[1:])


def test_support_needs_the_terms_and_every_number():
    sources = SourceSentences([CHUNK])
    answers = ("The CP-3 holds 14 h [1].", "The CP-3 holds 20 h.", "Bananas grow fast.", "Yes.")
    ok, wrong_number, unrelated, short = (sources.support(s) for s in answers)
    assert ok.supported and ok.source == 1 and ok.evidence == "Pod: CP-3; Class: R; Hold time: 14 h"
    assert not wrong_number.supported and wrong_number.judged
    assert not unrelated.supported and not short.judged
    assert grounding("The CP-3 holds 14 h. Bananas grow fast.", [CHUNK]) == 0.5
    assert grounding("Yes.", [CHUNK]) is None


def test_an_answer_that_copies_a_row_with_its_heading_is_supported_by_that_row():
    rows = [
        "## Tern T12 (part number TN12-2000)\nMaximum payload: 12 kg",
        "## Tern T6 (part number TN6-1000)\nMaximum payload: 6 kg",
    ]
    sources = SourceSentences(rows)
    copied = sources.support("[1] Tern T6 (part number TN6-1000): Maximum payload: 6 kg")
    assert copied.supported and copied.source == 2 and copied.sources == (2,)
    assert not sources.support("Tern T6 (part number TN6-2000): Maximum payload: 6 kg").supported  # wrong number


def test_declines_in_every_language():
    declines = [
        "The documents do not say.",
        "문서에 나와 있지 않습니다.",
        "資料には記載されていません。",
        "文档中没有提到。",
        "Dokumenti to ne navode.",
        "Баримт бичигт энэ талаар дурдаагүй байна.",
    ]
    for text in declines:
        assert is_decline(text), text
    assert not is_decline("The CP-3 holds 14 h.")


README = """Zstandard
=========

[![Build Status][travisBadge]][travisLink]

[travisLink]: https://travis-ci.org/facebook/zstd

Zstandard is a fast lossless compression algorithm. It is backed by a very fast entropy stage.

```
zstd --train FullPathToTrainingSet/* -o dictionaryName
```

| Compressor name | Ratio | Compression |
| --------------- | ----- | ----------- |
| zstd 1.5.1 -1   | 2.887 | 530 MB/s    |

- `-m`, `--mebi`: show the amounts in mebibytes
"""


def test_structure_is_read_as_units_and_headings_links_and_code_are_never_evidence():
    from answer.evidence import candidates

    kinds = {c.text: c.kind for c in candidates([README])}
    assert kinds["Zstandard"] == "heading", "a setext heading"
    assert kinds["[travisLink]: https://travis-ci.org/facebook/zstd"] == "link"
    assert kinds["zstd --train FullPathToTrainingSet/* -o dictionaryName"] == "code", "a fenced block is one unit"
    row = next(c for c in candidates([README]) if c.kind == "row")
    assert row.text == "Compressor name: zstd 1.5.1 -1; Ratio: 2.887; Compression: 530 MB/s", "a row with its header"
    assert kinds["[![Build Status][travisBadge]][travisLink]"] == "link", "a badge is markup, not text"
    chosen = select_evidence("What is Zstandard?", [README], k=4)
    assert all(kinds.get(e.text.split(": ", 1)[-1]) != "link" for e in chosen)
    assert not any(e.text.startswith("zstd --train") for e in chosen), "code only when the question asks for code"
    asked = select_evidence("Which command trains a dictionary?", [README], k=2)
    assert any("zstd --train" in e.text for e in asked)


def test_a_sentence_that_refers_back_comes_with_the_one_before_it():
    passage = "The user games has uid 5. It owns the high score files of old games. Nothing else uses it."
    chosen = select_evidence("What does the high score file belong to?", [passage], k=1)
    assert chosen[0].text.startswith("The user games has uid 5. It owns the high score files")


def test_an_answer_of_markers_markup_or_copied_code_is_unusable():
    from answer.evidence import unusable

    code = [">>> import yq", "yq -y .foo input.yml"]
    for garbage, reason in [
        ("  ", "empty"),
        ("[1]: [1]: [2]: [3]: [4]: : : :", "markers"),
        ("[1] [1] [2] [3] [4] [8.1] [9.1]", "markers"),
        (".. code-block:: bash", "markup"),
        ("| --- | --- | --- |", "markup"),
        (">>> import yq", "code"),
        ("yq -y .foo input.yml", "code"),
    ]:
        assert unusable(garbage, "What does yq do?", code) == reason, garbage
    for answer in [
        "[1] ``` pip3 install yq ``` Before using yq, you also have to install jq.",
        "Woody [1].",
        "12",
        "-s (--seconds).",
        "jq.",
        "資料によると 2011-02-06 です。",
        "Use -m [1].",
    ]:
        assert unusable(answer, "What does yq do?", code) is None, answer
    assert unusable("yq -y .foo input.yml", "Which command prints YAML?", code) is None, "asked for a command"
