"""Training throughput of `python -m train` against TRL's SFTTrainer + PEFT, and peak memory of LoRA vs QLoRA.

    python bench/bench_train.py                  # embedded SmolLM2, sample_kb/train_qa.jsonl, 3 runs each
    python bench/bench_train.py --runs 5 --steps 10 --threads 2

Both sides train the same base (same weights and dtype), the same data (the app's system
prompt added), the same LoRA (rank, alpha, dropout, target layers), batch size, max length,
learning rate and number of optimizer steps, on the same CPU threads. Throughput is real
(non-padding) tokens per second of the training loop: loading the model and tokenizing the
data are excluded on both sides. Every measurement runs in a fresh process (so peak RSS is
that run's own); the medians of `--runs` runs are compared. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_ours(args: argparse.Namespace, method: str, workdir: Path) -> dict[str, Any]:
    from train.config import TrainConfig
    from train.loop import training_function

    cfg = TrainConfig(
        data=Path(args.data),
        model=args.model,
        data_dir=Path(args.data_dir),
        system_prompt=args.system_prompt,
        val_fraction=0.0,
        max_seq_len=args.max_seq_len,
        method=method,
        dtype=args.dtype,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_dropout=0.05,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        max_steps=args.steps,
        batch_size=args.batch_size,
        output_dir=workdir / "run",
        log_every=args.steps,
        save_every=0,
        resume=False,
        kb_snapshot="none",
    ).check()
    card = training_function(cfg).card
    real, rate = card["tokens"]["real"], card["tokens"]["real_tokens_per_second"]  # rate: loop time only
    return {"real_tokens": real, "seconds": real / rate, "padding_fraction": card["tokens"]["padding_fraction"]}


def run_trl(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from train.formats import read_dataset
    from train.modeling import load_base, target_modules_for

    base = load_base(args.model, Path(args.data_dir), args.dtype, four_bit=False, device=torch.device("cpu"))
    conversations = read_dataset(Path(args.data), "auto", args.system_prompt).conversations
    dataset = Dataset.from_list([{"messages": c} for c in conversations])
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_dropout=0.05,
        target_modules=target_modules_for(base.model, None),
        bias="none",
        task_type="CAUSAL_LM",
    )
    config = SFTConfig(
        output_dir=str(workdir / "trl"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        max_length=args.max_seq_len,
        bf16=False,  # the weights already are in the benchmark dtype; no autocast on either side
        fp16=False,
        gradient_checkpointing=False,  # TRL turns it on by default; ours is off by default
        logging_steps=args.steps,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=42,
    )
    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            clock["start"] = time.perf_counter()

        def on_train_end(self, *_: Any, **__: Any) -> None:
            clock["end"] = time.perf_counter()

    trainer = SFTTrainer(
        model=base.model,
        args=config,
        train_dataset=dataset,
        processing_class=base.tokenizer,
        peft_config=lora,
        callbacks=[Clock()],
    )
    trainer.train()
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    return {"real_tokens": int(tokens[-1]), "seconds": clock["end"] - clock["start"], "padding_fraction": None}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        if args.worker == "trl-lora":
            result = run_trl(args, Path(tmp))
        else:
            result = run_ours(args, args.worker.split("-")[1], Path(tmp))
    result["tokens_per_second"] = result["real_tokens"] / result["seconds"]
    result["peak_rss_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result), flush=True)


def measure(kind: str, args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Base model ('embedded', an id or a folder).")
    parser.add_argument("--data", default="sample_kb/train_qa.jsonl", help="Chat JSONL training data.")
    parser.add_argument("--data-dir", default="data", help="The app's data folder (embedded model cache).")
    parser.add_argument(
        "--system-prompt",
        default="You are a helpful, precise assistant. Answer briefly and say when you do not know.",
        help="System message added to every conversation (the app's default).",
    )
    parser.add_argument("--dtype", default="bf16", help="Base weight dtype on both sides (QLoRA compute dtype).")
    parser.add_argument("--steps", type=int, default=8, help="Optimizer steps per run.")
    parser.add_argument("--batch-size", type=int, default=8, help="Conversations per step.")
    parser.add_argument("--max-seq-len", type=int, default=256, help="Longest tokenized conversation.")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank (alpha = 2r) on every linear layer.")
    parser.add_argument("--runs", type=int, default=3, help="Runs per side; medians are compared.")
    parser.add_argument("--qlora-steps", type=int, default=3, help="Steps of the LoRA-vs-QLoRA memory runs.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (1 is steadier on busy cores).")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    shared = ["--model", args.model, "--data", args.data, "--data-dir", args.data_dir, "--dtype", args.dtype]
    shared += ["--system-prompt", args.system_prompt, "--batch-size", str(args.batch_size)]
    shared += ["--max-seq-len", str(args.max_seq_len), "--lora-r", str(args.lora_r), "--threads", str(args.threads)]
    steps = ["--steps", str(args.steps)]
    print(
        f"model={args.model} dtype={args.dtype} data={args.data} steps={args.steps} batch={args.batch_size} "
        f"max_len={args.max_seq_len} lora_r={args.lora_r} threads={args.threads} runs={args.runs}",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {"ours-lora": [], "trl-lora": []}
    for run in range(args.runs):  # interleaved, so a change in machine load hits both sides alike
        for kind in results:
            result = measure(kind, args, shared + steps)
            results[kind].append(result)
            padding = f" padding {result['padding_fraction']:.1%}" if result["padding_fraction"] is not None else ""
            print(
                f"  run {run + 1} {kind:9s} {result['real_tokens']:6d} real tokens in {result['seconds']:6.1f} s "
                f"= {result['tokens_per_second']:6.1f} tok/s, peak RSS {result['peak_rss_mib']:.0f} MiB{padding}",
                flush=True,
            )
    ours = statistics.median(r["tokens_per_second"] for r in results["ours-lora"])
    trl = statistics.median(r["tokens_per_second"] for r in results["trl-lora"])
    print(f"real tokens/s, median of {args.runs}: ours {ours:.1f}, TRL SFTTrainer {trl:.1f}, ratio {ours / trl:.2f}")

    qlora_steps = ["--steps", str(args.qlora_steps)]
    memory = {kind: measure(kind, args, shared + qlora_steps) for kind in ("ours-lora", "ours-qlora")}
    for kind, result in memory.items():
        print(
            f"{kind:10s} peak RSS {result['peak_rss_mib']:.0f} MiB ({args.qlora_steps} steps, "
            f"{result['tokens_per_second']:.1f} real tok/s)",
            flush=True,
        )
    ratio = memory["ours-qlora"]["peak_rss_mib"] / memory["ours-lora"]["peak_rss_mib"]
    print(f"peak RSS QLoRA / LoRA: {ratio:.2f}")


if __name__ == "__main__":
    main()
