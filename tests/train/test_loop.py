"""The training script end to end on the tiny Phi-3: loss falls, the adapter is plain PEFT and changes the output,
the card says what it was trained on, and merging gives the same model as base + adapter."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config, write_data
from train.loop import main, training_function


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


PROBE = torch.tensor([[3, 17, 42, 99, 7, 250, 12, 5]])


def write_snapshot(data_dir: Path, snapshot_id: str, created_at: str) -> None:
    """The RAG store's layout: index/CURRENT holds 'snapshots/<id>', whose manifest.json describes it."""
    snapshot = data_dir / "index" / "snapshots" / snapshot_id
    snapshot.mkdir(parents=True)
    manifest = {"snapshot_id": snapshot_id, "created_at": created_at, "documents": 27}
    (snapshot / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (data_dir / "index" / "CURRENT").write_text(f"snapshots/{snapshot_id}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("train-loop")
    write_snapshot(folder / "appdata", "kb-0007", "2026-01-02T03:04:05+00:00")
    cfg = tiny_config(tiny_model_dir, folder)
    return cfg, training_function(cfg)


def test_a_few_steps_lower_the_loss(trained) -> None:
    _, result = trained
    loss = result.card["loss"]
    assert loss["validation_history"][0][0] == 0  # the base model, before training
    assert loss["validation_final"] < loss["validation_base"] - 0.1
    assert loss["train_history"][-1][1] < loss["train_history"][0][1]


def test_adapter_folder_is_plain_peft_and_changes_the_output(trained, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg, result = trained
    folder = result.adapter_dir
    assert folder == cfg.final_adapter_dir
    names = {p.name for p in folder.iterdir()}
    assert names == {"adapter_config.json", "adapter_model.safetensors", "adapter_card.json", "loss_curve.png"}
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    assert (folder / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    before = logits(base, PROBE)
    adapted = PeftModel.from_pretrained(base, str(folder)).eval()
    assert not torch.allclose(before, logits(adapted, PROBE), atol=1e-3)


def test_card_records_data_snapshot_tokens_and_versions(trained) -> None:
    cfg, result = trained
    card = json.loads((result.adapter_dir / "adapter_card.json").read_text())
    assert card == json.loads(json.dumps(result.card))
    assert card["dataset"]["sha256"] == hashlib.sha256(Path(cfg.data).read_bytes()).hexdigest()
    assert card["dataset"]["format"] == "messages" and card["dataset"]["records"] == 24
    assert card["dataset"]["train_examples"] + card["dataset"]["val_examples"] == 24
    assert card["kb_snapshot"] == {
        "snapshot_id": "kb-0007",
        "created_at": "2026-01-02T03:04:05+00:00",
        "source": "auto",
    }
    assert card["base_model"]["architecture"] == "phi3" and card["method"] == "lora"
    assert card["hyperparameters"]["lora_r"] == 16 and card["hyperparameters"]["total_steps"] == 10
    assert card["tokens"]["real"] > card["tokens"]["assistant"] > 0
    assert card["tokens"]["real_tokens_per_second"] > 0 and card["tokens"]["padding_fraction"] < 0.2
    assert card["training"]["steps"] == 10 and card["training"]["world_size"] == 1
    assert datetime.fromisoformat(card["created_at"]).utcoffset().total_seconds() == 0
    assert {"torch", "transformers", "peft", "accelerate"} <= set(card["versions"])


def test_kb_snapshot_explicit_or_absent(tmp_path: Path) -> None:
    from train.card import read_kb_snapshot

    assert read_kb_snapshot(tmp_path, "auto") is None  # no index yet: training does not need one
    assert read_kb_snapshot(tmp_path, "none") is None
    assert read_kb_snapshot(tmp_path, "kb-9").to_json() == {
        "snapshot_id": "kb-9",
        "created_at": None,
        "source": "explicit",
    }
    write_snapshot(tmp_path, "kb-9", "2026-02-03T00:00:00+00:00")
    explicit = {"snapshot_id": "kb-9", "created_at": "2026-02-03T00:00:00+00:00", "source": "explicit"}
    assert read_kb_snapshot(tmp_path, "kb-9").to_json() == explicit
    (tmp_path / "index" / "CURRENT").write_text("../../etc\n", encoding="utf-8")
    assert read_kb_snapshot(tmp_path, "auto") is None  # a pointer outside the index is not followed


def test_merge_equals_base_plus_adapter(trained, tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.merge import main as merge_main

    _, result = trained
    out = tmp_path / "merged"
    assert merge_main(["--adapter", str(result.adapter_dir), "--out", str(out)]) == 0  # base from the card
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert AutoTokenizer.from_pretrained(out).chat_template
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    adapted = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    expected = logits(adapted, PROBE)
    assert torch.allclose(logits(merged, PROBE), expected, atol=1e-4)
    assert not torch.allclose(logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), PROBE), expected, atol=1e-3)


def test_cli_reports_user_errors_in_one_line(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path / "missing.jsonl"), "--lora-r", "0"]) == 2
    err = capsys.readouterr().err
    assert "data file" in err and "lora_r must be at least 1" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response": "a"}\n{"prompt": 3}\n', encoding="utf-8")
    args = [
        "--data",
        str(bad),
        "--model",
        str(tiny_model_dir),
        "--output-dir",
        str(tmp_path / "run"),
        "--dtype",
        "fp32",
    ]
    assert main(args) == 1
    assert f"{bad}:2: 'prompt' must be a string" in capsys.readouterr().err
    args = ["--data", str(write_data(tmp_path / "ok.jsonl")), "--model", str(tiny_model_dir), "--dtype", "fp32"]
    assert main([*args, "--output-dir", str(tmp_path / "run2"), "--target-modules", "q_proj,v_proj"]) == 1
    assert "['q_proj', 'v_proj'] are not linear layers of this model" in capsys.readouterr().err
