"""The transformers engine's batches: requests sent together share one generate, each row keeping its adapter."""

from __future__ import annotations

import threading

import pytest

from adapters.synthetic import write_random_adapter
from engines.base import GenerationParams
from tests.conftest import AdapterRig

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
GREEDY = GenerationParams(temperature=0, max_new_tokens=6)


@pytest.mark.usefixtures("single_torch_thread")
def test_base_and_adapter_sent_together_share_one_generate_and_match_alone(tiny_settings, tmp_path):
    settings = tiny_settings.replace(data_dir=tmp_path / "data")
    rig = AdapterRig(settings, engine="transformers-batched")
    write_random_adapter(rig.store.root / "trained" / "s1", rig.spec, TARGETS, r=4, seed=1)
    handle = rig.handle("trained/s1")
    engine = rig.engine
    prompts = [engine.tokenizer(q)["input_ids"] for q in ("What is the warranty period?", "Part number KX-4471")]
    cases = [(p, h) for p in prompts for h in (None, handle)]  # Compare's pairs: Base + Fine-tuned, per prompt
    alone = ["".join(engine.stream(p, GREEDY, adapter=h)) for p, h in cases]
    assert alone[0] != alone[1], "the adapter must change the answer"
    batches_before = engine.batches
    together: dict[int, str] = {}

    def run(i: int) -> None:
        p, h = cases[i]
        together[i] = "".join(engine.stream(p, GREEDY, adapter=h))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [together[i] for i in range(len(cases))] == alone
    assert engine.batches == batches_before + 1 and engine.mixed_batches >= 1  # all four in one generate
