"""Hot-swapping adapters on the one base model: outputs, LRU eviction, freeing memory, the
registry (corrupt folders, new folders without a restart), privacy, publishing and staleness."""

from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path

import pytest
import torch

import adapters.registry
from adapters import AdapterNotAvailable
from adapters.synthetic import lora_config_dict, random_lora_tensors, write_adapter, write_random_adapter
from adapters.validate import CONFIG_FILE, WEIGHTS_FILE
from core.errors import AdapterUnusable
from engines.base import GenerationParams
from engines.loading import load_model
from engines.residency import LoraResidency
from tests.conftest import AdapterRig

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
GREEDY = GenerationParams(temperature=0, max_new_tokens=8)


@pytest.fixture()
def manager(tiny_settings, tmp_path) -> AdapterRig:
    # A fresh model per test: adapters change a model in place, so never the session-wide one.
    settings = tiny_settings.replace(data_dir=tmp_path / "data", max_resident_adapters=2)
    return AdapterRig(settings, demo_dir=tmp_path / "demo")


def trained(manager: AdapterRig, name: str, seed: int, card: dict | None = None) -> str:
    write_random_adapter(manager.store.root / "trained" / name, manager.spec, TARGETS, r=4, seed=seed, card=card)
    return f"trained/{name}"


def answer(manager: AdapterRig, adapter: str | None = None, session: str | None = None) -> str:
    return manager.answer(adapter, session)


def logits(manager: AdapterRig) -> torch.Tensor:
    return manager.logits(None)


def param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_swapping_changes_the_output_and_switching_back_restores_it(manager):
    base_model, base_text, base_logits = manager.engine.loaded.model, answer(manager), logits(manager)
    one, two = trained(manager, "one", seed=1), trained(manager, "two", seed=2)
    first, second = answer(manager, one), answer(manager, two)
    assert len({base_text, first, second}) == 3, "adapters from different seeds must answer differently"
    assert answer(manager, None) == base_text
    assert torch.equal(logits(manager), base_logits), "the base must be bit-identical while adapters are loaded"
    assert answer(manager, one) == first and answer(manager, two) == second
    assert manager.resident == [one, two]
    manager.engine.unload(one)
    manager.engine.unload(two)
    assert manager.engine.loaded.model is base_model and type(base_model).__name__ == "Phi3ForCausalLM"
    assert torch.equal(logits(manager), base_logits)
    assert answer(manager) == base_text


def test_least_recently_used_adapter_is_evicted_at_the_cap(manager):
    a, b, c = (trained(manager, n, seed=s) for n, s in (("a", 1), ("b", 2), ("c", 3)))
    expected = {key: answer(manager, key) for key in (a, b)}
    answer(manager, a)  # a is now the most recently used
    assert manager.resident == [b, a]
    answer(manager, c)
    assert manager.resident == [a, c], "b was the least recently used"
    assert answer(manager, b) == expected[b]  # reloaded on demand, same output
    assert manager.resident == [c, b]


def test_remove_frees_the_adapter_memory(manager):
    model = manager.engine.loaded.model
    bare = param_bytes(model)
    one, two = trained(manager, "one", seed=1), trained(manager, "two", seed=2)
    manager.load(one)
    with_one = param_bytes(manager.engine.loaded.model)
    manager.load(two)
    lora_weights = [p for n, p in manager.engine.loaded.model.named_parameters() if "lora_B" in n]
    refs = [weakref.ref(p) for p in lora_weights]
    del lora_weights
    assert manager.engine.unload(two) is True
    gc.collect()
    assert param_bytes(manager.engine.loaded.model) == with_one
    alive = sum(ref() is not None for ref in refs)
    assert alive == len(refs) // 2, "only the remaining adapter's weights may stay alive"
    assert manager.engine.unload(one) is True and manager.engine.unload(one) is False
    gc.collect()
    assert all(ref() is None for ref in refs)
    assert manager.engine.loaded.model is model and param_bytes(model) == bare


def test_corrupt_store_folders_are_skipped_with_a_reason(manager, caplog):
    good = trained(manager, "good", seed=1)
    root = manager.store.root / "trained"
    write_random_adapter(root / "badjson", manager.spec, TARGETS, seed=2)
    (root / "badjson" / CONFIG_FILE).write_text("{oops")
    write_random_adapter(root / "noweights", manager.spec, TARGETS, seed=3)
    (root / "noweights" / WEIGHTS_FILE).unlink()
    write_random_adapter(root / "truncated", manager.spec, TARGETS, seed=4)
    data = (root / "truncated" / WEIGHTS_FILE).read_bytes()
    (root / "truncated" / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    wrong = random_lora_tensors(manager.spec, TARGETS, r=4, seed=5)
    wrong = {k: torch.zeros(v.shape[0], 32) if "lora_A" in k else v for k, v in wrong.items()}  # a 32-wide model's
    write_adapter(root / "othermodel", lora_config_dict(TARGETS, r=4), wrong)
    with caplog.at_level(logging.WARNING, logger="adapters.registry"):
        listed = [i.key for i in manager.catalog.list_adapters(None)]
    reasons = {p.name: p.reason for p in manager.catalog.problems(None)}
    assert listed == [good]
    assert set(reasons) == {"badjson", "noweights", "truncated", "othermodel"}
    assert "not valid JSON" in reasons["badjson"] and "no adapter_model.safetensors" in reasons["noweights"]
    assert "safetensors" in reasons["truncated"] and "shape" in reasons["othermodel"]
    assert all("\n" not in r and r.endswith(".") for r in reasons.values())
    assert sum("skipped" in r.message for r in caplog.records) == 4
    with pytest.raises(AdapterNotAvailable, match=r"cannot be used: .*shape"):
        answer(manager, "othermodel")


def test_a_new_folder_appears_without_a_restart_and_listing_is_cached(manager, monkeypatch):
    assert manager.catalog.list_adapters(None) == []
    first = trained(manager, "fresh", seed=1, card={"created_at": "2026-11-02T10:00:00+00:00"})
    listed = manager.catalog.list_adapters(None)
    assert [i.key for i in listed] == [first] and listed[0].created_at == "2026-11-02T10:00:00+00:00"
    calls = []
    real = adapters.registry.check_adapter_folder
    monkeypatch.setattr(adapters.registry, "check_adapter_folder", lambda *a: calls.append(a) or real(*a))
    manager.catalog.list_adapters(None)
    assert calls == [], "an unchanged folder is not re-validated"
    trained(manager, "second", seed=2)
    assert [i.name for i in manager.catalog.list_adapters(None)] == ["fresh", "second"] and len(calls) == 1
    (manager.store.root / "trained" / "fresh" / CONFIG_FILE).write_text("[]")  # replaced in place
    assert [i.name for i in manager.catalog.list_adapters(None)] == ["second"]
    assert [p.name for p in manager.catalog.problems(None)] == ["fresh"]


def test_card_fields_are_listed_and_missing_keys_tolerated(manager):
    card = {
        "created_at": "2026-11-01T09:00:00+00:00",
        "base_model": {"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "name": "SmolLM2"},
        "dataset": {"sha256": "ab" * 32},
        "loss": {"train_final": 1.25, "validation_final": 1.5},
        "evaluation": {"score": 0.72},
        "kb_snapshot": {"snapshot_id": "snap-1", "created_at": "2026-11-01T08:00:00+00:00"},
    }
    trained(manager, "carded", seed=1, card=card)
    trained(manager, "bare", seed=2)
    (manager.store.root / "trained" / "odd").mkdir()
    write_random_adapter(manager.store.root / "trained" / "odd", manager.spec, TARGETS, seed=3)
    (manager.store.root / "trained" / "odd" / "adapter_card.json").write_text('{"created_at": 5, "loss": []}')
    info = {i.name: i for i in manager.catalog.list_adapters(None)}
    carded = info["carded"]
    assert (carded.rank, carded.target_modules, carded.eval_score) == (4, tuple(TARGETS), 0.72)
    assert carded.data_sha256 == "ab" * 32 and carded.val_loss == 1.5
    assert carded.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert any("trained for" in n for n in carded.notes), "a different claimed base is noted, not refused"
    assert info["bare"].eval_score is None and info["bare"].kb_snapshot is None and info["bare"].created_at
    assert info["odd"].created_at and info["odd"].train_loss is None


def test_the_card_snapshot_reaches_the_handle_for_the_staleness_note(manager):
    from adapters.cards import staleness_note

    trained(manager, "old", seed=1, card={"kb_snapshot": {"snapshot_id": "s1", "created_at": "2026-11-01T08:00:00Z"}})
    trained(manager, "nokb", seed=3, card={"kb_snapshot": None})
    old, nokb = manager.handle("old"), manager.handle("nokb")
    assert (old.kb_snapshot, old.kb_snapshot_date) == ("s1", "2026-11-01T08:00:00Z") and nokb.kb_snapshot is None
    assert staleness_note(old.kb_snapshot, old.kb_snapshot_date, None) is None, "no index: nothing to compare"
    assert staleness_note(old.kb_snapshot, old.kb_snapshot_date, "s2") == (
        "This adapter was trained against the knowledge base of 2026-11-01; "
        "the documents have changed since, so its answers may be stale."
    )
    assert staleness_note(old.kb_snapshot, old.kb_snapshot_date, "s1") is None
    assert staleness_note(old.kb_snapshot, None, "s2").startswith("This adapter was trained against an earlier")
    assert staleness_note(nokb.kb_snapshot, None, "s2") is None


def upload_files(manager: AdapterRig, folder: Path, seed: int) -> list[Path]:
    write_random_adapter(folder, manager.spec, TARGETS, r=4, seed=seed)
    return [folder / CONFIG_FILE, folder / WEIGHTS_FILE]


def test_uploads_are_private_to_their_session_until_published(manager, tmp_path):
    info = manager.catalog.upload(upload_files(manager, tmp_path / "up", seed=7), "alice", name="secret")
    assert "alice" not in info.key and info.owner is not None
    mine = answer(manager, "secret", "alice")
    assert [i.key for i in manager.catalog.list_adapters("alice")] == [info.key]
    assert manager.catalog.list_adapters("bob") == [] and manager.catalog.list_adapters(None) == []
    for name in ("secret", info.key):
        with pytest.raises(AdapterNotAvailable, match="available to you"):
            manager.catalog.resolve(name, "bob")
    with pytest.raises(AdapterNotAvailable):
        answer(manager, "secret")  # a bare name reaches only public adapters
    with pytest.raises(AdapterNotAvailable, match="available to you"):
        manager.catalog.delete_upload(info.key, "bob")

    manager.catalog.publish_uploads = True  # the operator shares every upload
    assert [i.key for i in manager.catalog.list_adapters("bob")] == [info.key]
    assert answer(manager, "secret", "bob") == mine
    manager.catalog.publish_uploads = False

    published = manager.catalog.publish("secret", owner="alice")
    assert published.key == "published/secret" and published.source == "published"
    assert manager.catalog.resolve("secret", "bob").key == "published/secret"
    assert answer(manager, "secret") == mine
    assert manager.catalog.list_adapters("alice")[0].key == "published/secret"


def test_demo_adapters_are_listed_for_everyone(manager):
    write_random_adapter(manager.store.demo_dir / "demo-tone", manager.spec, TARGETS, seed=9)
    listed = manager.catalog.list_adapters("anyone")
    assert [(i.name, i.source) for i in listed] == [("demo-tone", "demo")]
    assert answer(manager, "demo-tone") != answer(manager)


def test_fast_switch_matches_peft_set_adapter(manager):
    one, two = trained(manager, "one", seed=1), trained(manager, "two", seed=2)
    ours = {key: logits_with(manager, key) for key in (one, two, None)}
    peft_model = manager.engine.loaded.model
    names = {key: manager.engine.residency.adapter_name(key) for key in (one, two)}
    ids = torch.tensor([manager.engine.tokenizer("Part number KX-4471")["input_ids"]])
    with manager.engine.lock, torch.inference_mode():
        peft_model.base_model.enable_adapter_layers()  # the last switch (to None) disabled them
        for key in (one, two):
            peft_model.set_adapter(names[key], inference_mode=True)  # PEFT's own, slow path
            assert torch.equal(peft_model(input_ids=ids).logits, ours[key])
        with peft_model.disable_adapter():
            assert torch.equal(peft_model(input_ids=ids).logits, ours[None])
    assert not torch.equal(ours[one], ours[two])


def logits_with(manager: AdapterRig, key: str | None) -> torch.Tensor:
    return manager.logits(key)


def test_a_resident_adapter_rewritten_on_disk_is_reloaded(manager):
    key = trained(manager, "retrained", seed=1)
    before = answer(manager, key)
    trained(manager, "retrained", seed=2)  # the training script wrote a new version in place
    after = answer(manager, key)
    assert after != before and manager.resident == [key]
    trained(manager, "other", seed=2)
    assert answer(manager, "trained/other") == after


@pytest.mark.parametrize("resident_before", [False, True])
@pytest.mark.parametrize("failure", ["weights", "layer-set"])
def test_a_load_that_fails_inside_peft_leaves_the_model_as_it_was(manager, monkeypatch, resident_before, failure):
    base_text, base_logits = answer(manager), logits(manager)
    keep = trained(manager, "keep", seed=1)
    kept = answer(manager, keep) if resident_before else None
    bad = trained(manager, "bad", seed=2)
    if failure == "weights":

        def broken(*args, **kwargs):
            raise RuntimeError("simulated failure while copying weights")

        monkeypatch.setattr("peft.set_peft_model_state_dict", broken)
    else:  # PEFT would adapt other layers than the checks selected
        monkeypatch.setattr(LoraResidency, "_adapted_modules", lambda self, adapter: set())
    model_before = manager.engine.loaded.model
    with pytest.raises(AdapterUnusable, match=r"could not be loaded|PEFT would adapt"):
        answer(manager, bad)
    monkeypatch.undo()
    assert manager.engine.loaded.model is model_before
    assert manager.resident == ([keep] if resident_before else [])
    left = {name for module in model_before.modules() for name in getattr(module, "lora_A", {})}
    assert left == ({manager.engine.residency.adapter_name(keep)} if resident_before else set()), "no half-loaded"
    assert answer(manager) == base_text and torch.equal(logits(manager), base_logits)
    if resident_before:
        assert answer(manager, keep) == kept


def test_adapters_with_dropout_answer_deterministically(manager):
    root = manager.store.root / "trained" / "dropout"
    config = lora_config_dict(TARGETS, r=4, lora_alpha=8, lora_dropout=0.5)
    write_adapter(root, config, random_lora_tensors(manager.spec, TARGETS, r=4, seed=4))
    first = logits_with(manager, "trained/dropout")
    assert all(torch.equal(logits_with(manager, "trained/dropout"), first) for _ in range(3))
    assert not any(module.training for module in manager.engine.loaded.model.modules())


def test_on_a_bf16_base_outputs_match_peft_own_loader_exactly(tiny_settings, tmp_path):
    from peft import PeftModel

    settings = tiny_settings.replace(data_dir=tmp_path / "data", dtype="bf16")
    manager = AdapterRig(settings, demo_dir=None)
    key = trained(manager, "fp32-weights", seed=5)
    reference = PeftModel.from_pretrained(load_model(settings).model, str(manager.store.root / key)).eval()
    ids = torch.tensor([manager.engine.tokenizer("Part number KX-4471")["input_ids"]])
    with torch.inference_mode():
        expected = reference(input_ids=ids).logits
    assert torch.equal(logits_with(manager, key), expected), "LoRA weights must stay fp32, as PEFT keeps them"
