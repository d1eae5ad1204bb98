"""Data-parallel on the CPU: `torchrun --nproc_per_node 2 -m train` trains with two real processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO as ROOT
from tests.conftest import tiny_config


@pytest.mark.slow
def test_torchrun_two_processes_share_the_work_and_write_one_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_model_dir, tmp_path, max_steps=3, save_every=2, eval_every=0, log_every=1)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in cfg.to_dict().items() if v is not None}), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "train", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    card = json.loads((cfg.final_adapter_dir / "adapter_card.json").read_text())
    training = card["training"]
    assert training["world_size"] == 2 and training["distributed_type"] == "MULTI_CPU"
    per_process = training["real_tokens_per_process"]
    assert len(per_process) == 2 and all(n > 0 for n in per_process)  # both ranks trained on their own batches
    assert sum(per_process) == card["tokens"]["real"]
    assert card["hyperparameters"]["effective_batch_size"] == 8

    # Written once, by the main process: one adapter folder, no staging folders, one log line per step.
    assert done.stderr.count("Adapter written to") == 1
    assert [p.name for p in cfg.final_adapter_dir.parent.iterdir()] == [cfg.final_adapter_dir.name]
    assert sorted(p.name for p in cfg.output_dir.iterdir()) == ["checkpoints", "train_log.jsonl"]
    steps = [
        e["step"] for e in map(json.loads, (cfg.output_dir / "train_log.jsonl").read_text().splitlines()) if "loss" in e
    ]
    assert steps == [1, 2, 3]
    # Each rank saved its own RNG state into the one checkpoint.
    assert {p.name for p in (cfg.output_dir / "checkpoints" / "step_2").glob("random_states_*")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
