"""Which engine the settings pick, and the one-sentence fallback when llama.cpp cannot run."""

from __future__ import annotations

import copy

import pytest

from answer.service import ExpertService
from core.settings import Settings, SettingsError
from engines import llamacpp
from engines.factory import make_engine
from engines.transformers_engine import TransformersEngine


def test_a_model_without_gguf_uses_transformers_without_a_warning(tiny_loaded, tiny_settings):
    engine, warning = make_engine(tiny_loaded, tiny_settings)
    assert type(engine) is TransformersEngine and warning is None


def test_asking_for_llamacpp_on_a_model_without_gguf_falls_back_with_one_sentence(tiny_loaded, tiny_settings):
    engine, warning = make_engine(tiny_loaded, tiny_settings.replace(engine="llamacpp"))
    assert type(engine) is TransformersEngine
    assert "GGUF" in warning and "transformers" in warning and warning.count(". ") == 0


def test_llamacpp_whose_library_cannot_load_falls_back_and_the_status_line_says_so(
    tiny_loaded, tiny_settings, monkeypatch, tmp_path
):
    """llama-cpp-python pointed at a folder without its libraries: the child check fails, nothing is imported
    in this process, and the status line says why in one sentence."""
    empty = tmp_path / "no-libs"
    empty.mkdir()
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(empty))
    loaded = copy.copy(tiny_loaded)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    loaded.gguf_path = gguf
    engine, warning = make_engine(loaded, tiny_settings.replace(data_dir=tmp_path))
    assert type(engine) is TransformersEngine
    assert warning.startswith("llama.cpp failed its start-up check (") and "answering with transformers" in warning
    assert "make engine" in warning and warning.count(". ") == 0
    service = ExpertService.over(tiny_settings.answer, engine)
    service.warnings.append(warning)
    status = service.status_line()
    assert "engine: transformers" in status and "start-up check" in status


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"engine": "vllm"}, "engine must be"),
        ({"engine": "openai"}, "engine_url"),
        ({"engine": "openai", "engine_url": "gpu:8000"}, "engine_url"),
        ({"engine_batch": 0}, "engine_batch"),
    ],
)
def test_bad_engine_settings_are_named(changes, words):
    with pytest.raises(SettingsError, match=words):
        Settings.of(**changes).check()


def test_with_a_model_server_only_the_tokenizer_and_layer_shapes_load(tiny_settings, tiny_loaded):
    from adapters.spec import ModelSpec
    from engines.loading import load_model

    loaded = load_model(tiny_settings.replace(engine="openai", engine_url="http://127.0.0.1:9"))
    assert loaded.model is None and not loaded.has_weights  # no model at all, not even on the meta device
    assert loaded.spec.linear == ModelSpec.from_model(tiny_loaded.model).linear
    assert loaded.stop_token_ids == tiny_loaded.stop_token_ids
    assert "weights on the model server" in loaded.describe()


def test_the_embedded_gguf_is_re_encoded_once_as_q8_0(embedded_data_dir, tmp_path):
    """llama.cpp runs the embedded weights as Q8_0 by default (written once, reused), or the file as shipped."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from engines.embedded import embedded_gguf_path

    first = llamacpp.requantized(embedded_gguf_path(), tmp_path)
    assert first.is_file() and first.stat().st_size > embedded_gguf_path().stat().st_size  # 8 bits > 4 bits
    mtime = first.stat().st_mtime_ns
    assert llamacpp.requantized(embedded_gguf_path(), tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.tmp-*"))


def test_the_thread_tuner_leaves_a_busy_core_and_comes_back_when_it_is_free():
    """Each step runs on 1 thread or on every core, whichever decodes faster now: 2 threads are faster on an
    idle machine, 3.6x slower beside a busy process (bench/bench_busy.py)."""
    from engines.threads import ThreadTuner

    tuner = ThreadTuner(2, explore_every=8)
    cost = {1: 0.010, 2: 0.006}  # idle: two threads win

    def run(steps: int) -> list[int]:
        picked = []
        for _ in range(steps):
            n = tuner.pick(rows=1)
            tuner.record(n, 1, cost[n])
            picked.append(n)
        return picked

    assert run(40)[-8:].count(2) >= 7  # mostly 2 threads, one exploring step in 8
    cost[2] = 0.050  # a neighbour takes a core
    assert run(40)[-16:].count(1) >= 14
    cost[2] = 0.006  # gone again
    assert run(80)[-16:].count(2) >= 14
    assert ThreadTuner(1).pick(rows=3) == 1 and "1 thread" == ThreadTuner(1).describe()
