"""The llama.cpp engine against the transformers engine on tiny models written as F32 GGUF.

Parity: the same prompt, greedy, through base -> adapter -> base again gives the same tokens from both
engines (for a Llama-style model, whose q/k rows llama.cpp permutes, and for Phi-3's fused layers).
Then what the answer path relies on: requests batched together keep their own adapter, a stopped
request frees its sequence, a converted adapter is cached by content, a bad adapter fails alone.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from answer.prompts import Prompter

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make install builds it)")

from adapters.spec import AdapterHandle  # noqa: E402
from adapters.validate import WEIGHTS_FILE, check_adapter_folder  # noqa: E402
from core.errors import AdapterUnusable  # noqa: E402
from engines.base import GenerationParams  # noqa: E402
from engines.gguf import GgufArch, write_model  # noqa: E402
from engines.llamacpp import LlamaCppEngine  # noqa: E402
from engines.loading import LoadedModel, stop_token_ids  # noqa: E402
from engines.transformers_engine import TransformersEngine  # noqa: E402
from tests.conftest import build_tokenizer  # noqa: E402

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=12)
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def _peaked(model: torch.nn.Module, seed: int) -> None:
    """Random weights with a wide spread, so greedy choices are far from ties (F32 rounding cannot flip them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def _tiny(arch: str, seed: int = 0):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    else:
        model = Phi3ForCausalLM(Phi3Config(**common, tie_word_embeddings=False))
    _peaked(model, seed)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id)
    model.eval()
    loaded = LoadedModel(model, tokenizer, f"tiny-{arch}", torch.device("cpu"), torch.float32)
    loaded.stop_token_ids = stop_token_ids(tokenizer, model)
    return loaded


def _adapter(loaded: LoadedModel, folder: Path, targets: list[str], seed: int, rslora: bool = False) -> AdapterHandle:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False, use_rslora=rslora)
    import copy

    peft = get_peft_model(copy.deepcopy(loaded.model), config)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape) * 0.3)
    peft.save_pretrained(folder)
    config_file = folder / "adapter_config.json"  # PEFT names the class of a model without a Hub id; the
    raw = json.loads(config_file.read_text())  # adapter checks refuse that field, as for any upload
    raw.pop("auto_mapping", None)
    config_file.write_text(json.dumps(raw))
    spec = TransformersEngine(loaded).spec
    checked = check_adapter_folder(folder, spec, 64, 1 << 30)
    return AdapterHandle(
        f"trained/{folder.name}",
        folder.name,
        "trained",
        folder,
        folder / WEIGHTS_FILE,
        checked.config.lora,
        1 << 30,
        version=(seed,),
    )


def _tokens(engine: TransformersEngine, prompt: list[int], adapter: AdapterHandle | None, params=GREEDY) -> str:
    """The greedy answer's text (token for token: each delta is one token's text)."""
    return "|".join(engine.stream(prompt, params, adapter=adapter))


@pytest.fixture(params=["llama", "phi3"])
def pair(request, tmp_path):
    loaded = _tiny(request.param)
    gguf = write_model(loaded.model, tmp_path / f"tiny-{request.param}.gguf", loaded.tokenizer)
    targets = LLAMA_TARGETS if request.param == "llama" else PHI3_TARGETS
    adapter = _adapter(loaded, tmp_path / "adapter-a", targets, seed=1)
    reference = TransformersEngine(loaded)
    fast = LlamaCppEngine(loaded, gguf, tmp_path / "lora-cache", threads=1)
    yield reference, fast, adapter, targets, tmp_path, loaded
    fast.close()


def _prompt(engine: TransformersEngine, text: str) -> list[int]:
    return Prompter(engine.tokenizer, engine.context_window).build("sys", [], text, GREEDY.max_new_tokens)[0]


def test_greedy_tokens_match_transformers_for_base_adapter_and_base_again(pair):
    reference, fast, adapter, *_ = pair
    prompt = _prompt(reference, "What is the warranty period?")
    assert _tokens(reference, prompt, adapter) != _tokens(reference, prompt, None), "the adapter changes nothing"
    for handle in (None, adapter, None, adapter):
        want = _tokens(reference, prompt, handle)
        assert want, "the reference produced nothing; the test model is degenerate"
        assert _tokens(fast, prompt, handle) == want, f"mismatch with adapter={handle and handle.name}"


def test_rslora_scale_matches(pair):
    reference, fast, _, targets, tmp_path, loaded = pair
    adapter = _adapter(loaded, tmp_path / "adapter-rs", targets, seed=5, rslora=True)
    prompt = _prompt(reference, "Part number KX-4471?")
    assert _tokens(fast, prompt, adapter) == _tokens(reference, prompt, adapter)


def test_concurrent_requests_with_different_adapters_keep_their_own(pair):
    """Which requests share a batch depends on timing, and a batch's size changes llama.cpp's matmul kernels
    (sums in another order), so a near-tie late in a long answer may flip; 6 tokens, where every adapter
    already answers differently, show a request that got another adapter without that noise."""
    reference, fast, adapter, targets, tmp_path, loaded = pair
    short = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=6)
    other = _adapter(loaded, tmp_path / "adapter-b", targets, seed=2)
    prompts = [_prompt(reference, q) for q in ("What is the warranty period?", "Tidal turbines need what?")]
    cases = [(p, h) for p in prompts for h in (None, adapter, other)] * 2
    want = {(tuple(p), h and h.key): _tokens(reference, p, h, short) for p, h in cases[:6]}
    assert len(set(want.values())) == len(want), "each prompt and adapter must answer differently"
    got: dict[int, str] = {}

    def run(i: int) -> None:
        p, h = cases[i]
        got[i] = _tokens(fast, p, h, short)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, (p, h) in enumerate(cases):
        assert got[i] == want[(tuple(p), h and h.key)], f"request {i} (adapter {h and h.name}) got another answer"
    assert fast.batched_tokens > fast.steps, "requests that arrived together were never decoded in one batch"


def test_closing_a_stream_frees_its_sequence(pair):
    reference, fast, *_ = pair
    prompt = _prompt(reference, "What is the warranty period?")
    long = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=100)
    for _ in range(fast.sequences * 3):  # more than the context has sequences: each must be given back
        stream = fast.stream(prompt, long)
        next(stream)
        stream.close()
    assert _tokens(fast, prompt, None) == _tokens(reference, prompt, None)


def test_converted_adapter_is_cached_by_content(pair):
    _, fast, adapter, *_ = pair
    assert fast.arch == GgufArch.read(fast.gguf_path)  # llama.cpp's reading of the file, as gguf reads it
    first = fast.lora_file(adapter)
    mtime = first.stat().st_mtime_ns
    fast._converted.clear()
    assert fast.lora_file(adapter) == first and first.stat().st_mtime_ns == mtime


def test_an_adapter_whose_weights_changed_on_disk_fails_alone(pair):
    reference, fast, adapter, *_ = pair
    prompt = _prompt(reference, "What is the warranty period?")
    broken = AdapterHandle(
        adapter.key + "-broken",
        "broken",
        "trained",
        adapter.folder,
        adapter.folder / "missing.safetensors",
        adapter.lora,
        adapter.max_bytes,
    )
    with pytest.raises(AdapterUnusable):
        list(fast.stream(prompt, GREEDY, adapter=broken))
    assert _tokens(fast, prompt, adapter) == _tokens(reference, prompt, adapter)


def test_unloading_an_adapter_deletes_its_converted_copy(pair):
    """A deleted upload leaves no copy of its weights in the conversion cache, even one from an earlier run."""
    reference, fast, adapter, *_ = pair
    path = fast.lora_file(adapter)
    prompt = _prompt(reference, "What is the warranty period?")
    assert _tokens(fast, prompt, adapter)
    assert fast.unload(adapter.key)
    assert not path.exists()
    assert _tokens(fast, prompt, adapter) == _tokens(reference, prompt, adapter)  # converted again when asked
