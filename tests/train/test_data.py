"""Training data: every format parses, bad lines name file:line, labels cover exactly the assistant's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import build_tokenizer
from train.batching import LengthGroupedBatchSampler, PadCollator, padding_fraction, split_indices
from train.formats import DataFormatError, read_dataset
from train.masking import IGNORE_INDEX, Example, encode

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

EXPECTED = [
    [{"role": "user", "content": "What is the warranty period?"}, {"role": "assistant", "content": "Two years."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Which part is KX-4471?"},
        {"role": "assistant", "content": "The main bearing seal."},
    ],
]

RECORDS = {
    "messages": [{"messages": conversation} for conversation in EXPECTED],
    "sharegpt": [
        {
            "conversations": [
                {"from": "human", "value": "What is the warranty period?"},
                {"from": "gpt", "value": "Two years."},
            ]
        },
        {
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Which part is KX-4471?"},
                {"from": "gpt", "value": "The main bearing seal."},
            ]
        },
    ],
    "alpaca": [
        {"instruction": "What is the warranty period?", "input": "", "output": "Two years."},
        {"instruction": "Which part is KX-4471?", "output": "The main bearing seal.", "system": "Be brief."},
    ],
    "prompt_response": [
        {"prompt": "What is the warranty period?", "response": "Two years."},
        {"prompt": "Which part is KX-4471?", "response": "The main bearing seal.", "system": "Be brief."},
    ],
}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_format_parses_detected_or_named(tmp_path: Path, name: str) -> None:
    path = write_jsonl(tmp_path / f"{name}.jsonl", RECORDS[name])
    for setting in ("auto", name):
        dataset = read_dataset(path, setting)
        assert dataset.format == name
        assert dataset.conversations == EXPECTED
        assert dataset.lines == [1, 2]


def test_alpaca_input_joins_the_instruction(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"instruction": "Translate.", "input": "Dobar dan", "output": "Good day"}]
    )
    assert read_dataset(path).conversations[0][0] == {"role": "user", "content": "Translate.\n\nDobar dan"}


def test_system_prompt_setting_fills_in_only_where_missing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", RECORDS["messages"])
    conversations = read_dataset(path, system_prompt="House style.").conversations
    assert conversations[0][0] == {"role": "system", "content": "House style."}
    assert conversations[1][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(
    ("lines", "bad_line", "reason"),
    [
        ([RECORDS["messages"][0], "{not json"], 2, "not valid JSON"),
        ([RECORDS["messages"][0], "", "[1, 2]"], 3, "must be a JSON object"),
        ([{"messages": [{"role": "user", "content": "hi"}]}], 1, "no assistant turn"),
        ([RECORDS["messages"][0], {"messages": [{"role": "robot", "content": "x"}]}], 2, "role 'robot'"),
        ([RECORDS["alpaca"][0], {"instruction": "x"}], 2, "'output' must be a string"),
        ([RECORDS["sharegpt"][0], RECORDS["alpaca"][0]], 2, "'conversations' must be a non-empty list"),
        ([{"question": "x", "answer": "y"}], 1, "cannot tell the data format"),
        ([{"prompt": "x", "response": "  "}], 1, "'response' is empty"),
    ],
)
def test_malformed_record_names_file_and_line(tmp_path: Path, lines: list, bad_line: int, reason: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataFormatError) as caught:
        read_dataset(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{bad_line}: ")
    assert reason in message


def test_empty_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataFormatError, match="holds no records"):
        read_dataset(path)


def labelled_runs(tokenizer, example: Example) -> list[str]:
    """The text of each contiguous run of labelled tokens."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(example.input_ids, example.labels, strict=True):
        labelled = label != IGNORE_INDEX
        if labelled:
            assert label == token
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = labelled
    return [tokenizer.decode(run) for run in runs]


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the warranty period?"},
    {"role": "assistant", "content": "The warranty period is two years."},
    {"role": "user", "content": "Which part is KX-4471?"},
    {"role": "assistant", "content": "Part number KX-4471 is the main bearing seal."},
]


def test_labels_are_minus_100_exactly_outside_assistant_turns_phi3(tokenizer) -> None:
    example = encode(tokenizer, CONVERSATION, max_seq_len=512)
    assert labelled_runs(tokenizer, example) == [
        "The warranty period is two years.<|end|>\n",
        "Part number KX-4471 is the main bearing seal.<|end|>\n<|endoftext|>",
    ]
    # what is not learned is exactly what the model is shown: the prompt before each answer
    full = tokenizer.decode(example.input_ids)
    assert full == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)


def test_labels_follow_any_template_chatml(tokenizer) -> None:
    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHATML_TEMPLATE
    example = encode(tokenizer, CONVERSATION, max_seq_len=512)
    assert labelled_runs(tokenizer, example) == [
        "The warranty period is two years.<|im_end|>\n",
        "Part number KX-4471 is the main bearing seal.<|im_end|>\n",
    ]


def test_truncation_keeps_labels_aligned_and_drops_answerless_examples(tokenizer) -> None:
    full = encode(tokenizer, CONVERSATION, max_seq_len=512)
    cut = encode(tokenizer, CONVERSATION, max_seq_len=40)
    assert cut.input_ids == full.input_ids[:40] and cut.labels == full.labels[:40]
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    prompt_only = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert encode(tokenizer, CONVERSATION, max_seq_len=prompt_only) is None


def test_split_is_seeded_disjoint_and_complete() -> None:
    train, val = split_indices(100, 0.1, seed=7)
    assert len(val) == 10 and sorted(train + val) == list(range(100))
    assert (train, val) == split_indices(100, 0.1, seed=7)
    assert val != split_indices(100, 0.1, seed=8)[1]
    assert split_indices(5, 0.01, seed=0)[1] != []  # a fraction above 0 holds out at least one
    assert split_indices(5, 0.0, seed=0)[1] == []


def test_length_buckets_cut_padding_and_replay_per_epoch() -> None:
    import random

    rng = random.Random(0)
    lengths = [rng.randint(20, 400) for _ in range(1000)]
    bucketed = LengthGroupedBatchSampler(lengths, batch_size=8, bucket_batches=50, seed=1)
    plain = LengthGroupedBatchSampler(lengths, batch_size=8, bucket_batches=1, seed=1)
    batches = list(bucketed)
    assert sorted(i for b in batches for i in b) == list(range(1000)) and len(batches) == len(bucketed)
    assert padding_fraction(lengths, batches) < 0.05 < 0.3 < padding_fraction(lengths, list(plain))
    assert list(bucketed) == batches  # same epoch, same order: a resumed run can skip what it consumed
    bucketed.set_epoch(1)
    assert list(bucketed) != batches


def test_collator_pads_right_with_ignored_labels() -> None:
    batch = PadCollator(pad_token_id=0)([Example([5, 6, 7], [-100, 6, 7]), Example([8], [-100])])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
