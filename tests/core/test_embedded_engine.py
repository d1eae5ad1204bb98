"""The path that crashed in the field: the real embedded GGUF on the default in-process engine (llama.cpp after
its start-up check), a RAG prompt of over 200 tokens, the demo adapter, and no torch copy of the weights."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow


def test_a_hybrid_answer_on_the_embedded_gguf_with_the_demo_adapter(embedded_data_dir, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from compose import compose
    from core.settings import Settings
    from engines.base import GenerationParams

    data = tmp_path / "data"
    shutil.copytree(embedded_data_dir / "model_cache", data / "model_cache")
    service = compose(Settings.of(data_dir=data)).start().service  # every default: engine auto
    assert service.wait_ready(300), service.status_line()
    assert service.engine.name == "llama.cpp" and not service.warnings, service.status_line()
    assert not service.engine.loaded.has_weights and service.engine.loaded.model is None  # llama.cpp holds them
    assert "weights in llama.cpp, none in torch" in service.status_line()

    prompts: list[int] = []
    real = service.engine.stream

    def stream(prompt_ids, params, stop=None, adapter=None, copy_from=()):
        prompts.append(len(prompt_ids))
        assert adapter is not None and adapter.name == "smollm2-sample-kb"
        return real(prompt_ids, params, stop, adapter, copy_from)

    service.engine.stream = stream
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=48)
    question = "How big and heavy is an empty CP-3?"  # from dev_qa.jsonl
    final = list(service.answer("t", question, [], "Hybrid", params, None, "demo/smollm2-sample-kb"))[-1]
    assert prompts and prompts[0] >= 200, prompts
    assert final.done and final.tokens > 0 and final.text.strip(), final
    assert any(p.source == "cryopod_payload_containers.md" for p in final.sources), final.sources
