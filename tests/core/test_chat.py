"""Chat behaviour a user notices: the template, streaming, trimming, stopping, bad input."""

import itertools
import threading

import pytest
import torch

from answer.prompts import Prompter
from answer.service import ExpertService
from answer.types import Mode
from core.errors import UserInputError
from engines.base import GenerationParams
from engines.transformers_engine import TransformersEngine
from tests.conftest import ask, forced_model

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=12)


def test_phi3_chat_template_with_system_prompt(engine):
    ids, dropped = Prompter(engine.tokenizer, engine.context_window).build(
        "Be brief.", [], "What is KX-4471?", max_new_tokens=16
    )
    text = engine.tokenizer.decode(ids)
    assert text == "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is KX-4471?<|end|>\n<|assistant|>\n"
    assert dropped == 0


def _service(tiny_settings, loaded) -> ExpertService:
    return ExpertService.over(tiny_settings.replace(system_prompt="").answer, TransformersEngine(loaded))


def test_streaming_yields_growing_text(service):
    params = GenerationParams(temperature=1.0, top_p=1.0, max_new_tokens=24)
    torch.manual_seed(0)
    updates = [u.text for u in ask(service, "Hello", params=params)]
    assert len(updates) >= 3
    for before, after in itertools.pairwise(updates[:-1]):  # the last repeats, marked done
        assert after.startswith(before) and len(after) > len(before)


def test_generation_stops_on_phi3_end_token(tiny_settings, tiny_loaded):
    final = ask(_service(tiny_settings, forced_model(tiny_loaded, "<|end|>")), "Hello", params=GREEDY)[-1]
    assert final.done and final.tokens == 1 and final.text == ""


def test_generation_runs_to_max_new_tokens_without_a_stop_token(tiny_settings, tiny_loaded):
    final = ask(_service(tiny_settings, forced_model(tiny_loaded, "The")), "Hello", params=GREEDY)[-1]
    assert final.tokens == GREEDY.max_new_tokens and final.text.count("The") == GREEDY.max_new_tokens


def test_long_history_is_trimmed_to_fit_the_context(engine, service):
    history = []
    for i in range(40):
        history += [
            {"role": "user", "content": f"Question {i} about turbines"},
            {"role": "assistant", "content": f"Answer {i}: inspect the blades every 500 hours."},
        ]
    ids, dropped = Prompter(engine.tokenizer, engine.context_window).build(
        "sys", history, "Newest question", max_new_tokens=64
    )
    assert len(ids) <= engine.context_window - 64
    assert dropped > 0 and dropped % 2 == 0  # whole exchanges go, oldest first
    text = engine.tokenizer.decode(ids)
    assert text.rstrip().endswith("Newest question<|end|>\n<|assistant|>")
    assert "Question 39" in text and "Question 0 " not in text
    final = ask(service, "Newest question", history=history, params=GREEDY)[-1]
    assert final.done and any("oldest messages" in n for n in final.notes)


def test_fitting_drops_exactly_what_one_exchange_at_a_time_would(engine):
    history = []
    for i in range(40):
        history += [
            {"role": "user", "content": f"Question {i} about turbines " * (1 + i % 3)},
            {"role": "assistant", "content": f"Answer {i}: inspect the blades every 500 hours."},
        ]
    prompter = Prompter(engine.tokenizer, engine.context_window)
    budget = engine.context_window - 64
    naive = list(history)

    def whole(turns):
        return prompter._encode([{"role": "system", "content": "sys"}, *turns, {"role": "user", "content": "Q"}])

    while len(whole(naive)) > budget:
        naive = naive[2:]
    ids, dropped = prompter.build("sys", history, "Q", max_new_tokens=64)
    assert dropped == len(history) - len(naive) > 0 and ids == whole(naive)


def test_a_four_thousand_message_history_costs_under_a_second_and_is_said(service):
    import time

    history = []
    for i in range(2000):
        history += [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]
    request = service.request("owner", "Newest question", history, "Base", GREEDY)
    kept = service.settings.max_history_messages
    assert len(request.history) == kept and request.history[-1]["content"] == "A1999"
    started = time.perf_counter()
    final = ask(service, "Newest question", history=history, params=GREEDY)[-1]  # read, fitted and answered
    assert time.perf_counter() - started < 1.0
    assert final.done and any(f"the {4000 - kept:,} oldest were left out" in n for n in final.notes)


def test_stop_event_ends_generation_early(tiny_settings, tiny_loaded):
    service = _service(tiny_settings, forced_model(tiny_loaded, "The"))
    stop = threading.Event()
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=100)
    seen = 0
    for update in service.answer("s", "Hello", [], "Base", params, stop=stop):
        seen = update.tokens
        stop.set()
    assert seen < 10


def test_closing_the_stream_releases_the_model(engine):
    stream = engine.stream(
        Prompter(engine.tokenizer, engine.context_window).build("", [], "Hi", 50)[0], GenerationParams(1.0, 1.0, 50)
    )
    next(stream)
    stream.close()  # a closed browser tab: the worker stops and the lock is free again
    assert engine.lock.acquire(timeout=5)
    engine.lock.release()


@pytest.mark.parametrize(
    ("message", "params", "expected"),
    [
        ("", GREEDY, "Please type a message first."),
        ("   \n ", GREEDY, "Please type a message first."),
        ("x" * 2001, GREEDY, "the limit is 2,000"),
        ("turbine " * 200, GREEDY, "shorten it or lower max new tokens"),
        ("Hi", GenerationParams(-1, 0.9, 10), "Temperature must be between 0 and 2"),
        ("Hi", GenerationParams(0.7, 0.0, 10), "Top-p must be above 0"),
        ("Hi", GenerationParams(0.7, 0.9, 0), "Max new tokens must be a whole number from 1 to 128"),
        ("Hi", GenerationParams(0.7, 0.9, 10_000), "from 1 to 128"),
        ("Hi", GenerationParams(0.7, 0.9, 2.5), "whole number"),
        ("Hi", GenerationParams("hot", 0.9, 10), "must be numbers"),
        ("Hi \ud800 there", GREEDY, "not text (a lone surrogate or a NUL)"),
        ("Hi\x00", GREEDY, "not text (a lone surrogate or a NUL)"),
    ],
)
def test_bad_input_gets_one_sentence_and_the_model_keeps_serving(service, message, params, expected):
    with pytest.raises(UserInputError) as err:
        ask(service, message, params=params)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert ask(service, "Hi", params=GREEDY)[-1].done


def test_invalid_text_in_the_history_gets_one_sentence(service):
    """A lone surrogate in an earlier turn reached the tokenizer, which answered with its own internal message."""
    history = [{"role": "user", "content": "broken \ud800"}, {"role": "assistant", "content": "ok"}]
    with pytest.raises(UserInputError, match=r"^The conversation holds characters that are not text") as err:
        service.request(None, "Hi", history, "Base", GREEDY)
    assert "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="system prompt holds characters"):
        service.request(None, "Hi", [], "Base", GREEDY, system_prompt="sys\x00")


def test_unknown_mode_is_refused(service):
    with pytest.raises(UserInputError, match="Unknown mode 'Magic'"):
        ask(service, "Hi", mode="Magic")


def test_modes_not_built_say_so_plainly(service):
    for mode in (Mode.RAG, Mode.FINETUNED, Mode.HYBRID):
        with pytest.raises(UserInputError, match=" mode needs "):
            ask(service, "Hi", mode=mode, adapter="demo")


def test_concurrent_users_all_get_complete_answers(service):
    results, errors = {}, []

    def user(i: int) -> None:
        try:
            final = ask(service, f"Question {i}", params=GREEDY, session=f"user{i}")[-1]
            results[i] = final.text
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 6
    # Greedy decoding under the one-owner lock: the same question alone gives the same text.
    assert results[3] == ask(service, "Question 3", params=GREEDY)[-1].text


def test_service_stop_ends_only_that_sessions_answer(tiny_settings, tiny_loaded, monkeypatch):
    from compose import compose
    from engines import factory as engines

    forced = forced_model(tiny_loaded, "The")
    monkeypatch.setattr(engines, "load_model", lambda settings, progress, weights=True: forced)
    service = compose(tiny_settings, parts=()).start().service
    assert service.wait_ready(timeout=60)
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=100)
    answer = service.answer("alice", "Hello", [], "Base", params)
    first = next(answer)
    service.stop("bob")  # someone else's Stop button does nothing to Alice
    service.stop("alice")
    final = [first, *answer][-1]
    assert final.tokens < 20
    assert list(service.answer("alice", "Hello", [], "Base", params))[-1].tokens == 100
