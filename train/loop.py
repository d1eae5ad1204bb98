"""Fine-tune a LoRA / QLoRA adapter on chat data with Accelerate; reads top to bottom.

    get_dataloaders   JSONL -> conversations -> token ids with assistant-only labels -> length-bucketed batches
    training_function load the base, add LoRA, prepare with Accelerate, train/validate/checkpoint, write the adapter
    main              settings from YAML + flags, user errors printed as one line

The same file runs on one CPU, under `accelerate launch` on GPUs (DDP, FSDP, DeepSpeed) and
under `torchrun --nproc_per_node 2` on a CPU-only machine (the Accelerator joins the gloo
process group and averages gradients).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from adapters.cards import AdapterCard
from core.errors import ModelLoadError
from train import checkpoints
from train.batching import LengthGroupedBatchSampler, PadCollator, split_indices
from train.card import build_card, read_kb_snapshot, write_card
from train.checkpoints import CheckpointError, TrainState
from train.config import RESUME_NEUTRAL, ConfigError, TrainConfig, load_config
from train.formats import DataFormatError, read_dataset
from train.masking import IGNORE_INDEX, TemplateError, encode
from train.metrics import JOURNAL_FILE, Journal, RunningWindow
from train.modeling import DTYPE_NAMES, add_lora, load_base
from train.output import ADAPTER_FILES, drop_extra_files, write_atomically
from train.plot import PLOT_FILE, plot_loss

logger = get_logger(__name__)

SCHEDULER_NAMES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class DataInfo:
    path: str
    sha256: str
    format: str
    records: int
    train_examples: int
    val_examples: int
    dropped_too_long: int
    retrieval_augmented: dict[str, Any] | None = None


@dataclass
class TrainResult:
    adapter_dir: Path
    card: dict[str, Any]


def get_dataloaders(
    cfg: TrainConfig, tokenizer: Any, accelerator: Accelerator
) -> tuple[DataLoader, DataLoader | None, LengthGroupedBatchSampler, DataInfo]:
    """Training and validation loaders (validation None when val_fraction is 0), the training sampler, and a summary.

    Raises DataFormatError naming `file:line` for a malformed record or one the chat template
    rejects, and naming the file when no example keeps an assistant token within max_seq_len.
    """
    dataset = read_dataset(Path(cfg.data), cfg.data_format, cfg.system_prompt)
    raft_stats = None
    if cfg.retrieval_augmented:
        dataset, raft_stats = retrieval_augmented(cfg, dataset)
    train_ids, val_ids = split_indices(len(dataset.conversations), cfg.val_fraction, cfg.seed)

    def tokenize(indices: list[int]) -> tuple[list, int]:
        examples, dropped = [], 0
        for i in indices:
            try:
                example = encode(tokenizer, dataset.conversations[i], cfg.max_seq_len)
            except TemplateError as exc:
                raise DataFormatError(f"{dataset.path}:{dataset.lines[i]}: {exc}.") from exc
            if example is None:
                dropped += 1
            else:
                examples.append(example)
        return examples, dropped

    train, dropped_train = tokenize(train_ids)
    val, dropped_val = tokenize(val_ids)
    if not train:
        raise DataFormatError(
            f"{dataset.path}: no training conversation keeps an assistant token within max_seq_len={cfg.max_seq_len}."
        )
    collate = PadCollator(tokenizer.pad_token_id)
    sampler = LengthGroupedBatchSampler([len(e.input_ids) for e in train], cfg.batch_size, cfg.bucket_batches, cfg.seed)
    train_dl = DataLoader(train, batch_sampler=sampler, collate_fn=collate)
    val_dl = None
    if val:
        # Each process validates its own slice and the sums are added up across processes, so every
        # example counts exactly once (Accelerate's sharding would repeat some to even out batches).
        mine = val[accelerator.process_index :: accelerator.num_processes]
        val_sampler = LengthGroupedBatchSampler(
            [len(e.input_ids) for e in mine], cfg.batch_size, 1, cfg.seed, shuffle=False
        )
        val_dl = DataLoader(mine, batch_sampler=val_sampler, collate_fn=collate)
    info = DataInfo(
        path=str(cfg.data),
        sha256=dataset.sha256,
        format=dataset.format,
        records=len(dataset.conversations),
        train_examples=len(train),
        val_examples=len(val),
        dropped_too_long=dropped_train + dropped_val,
        retrieval_augmented=raft_stats.to_json() if raft_stats else None,
    )
    return train_dl, val_dl, sampler, info


def retrieval_augmented(cfg: TrainConfig, dataset: Any) -> tuple[Any, Any]:
    """The dataset rebuilt from the live index in `cfg.data_dir` (`train.raft`). Raises DataFormatError
    (one sentence) when there is no index to build from."""
    from core.settings import AnswerSettings, Settings
    from rag import KnowledgeBase
    from train.raft import augment

    kb = KnowledgeBase.from_settings(Settings.of(data_dir=Path(cfg.data_dir), device="cpu")).open()
    if not kb.list_documents():
        raise DataFormatError(
            f"Retrieval-augmented training needs the document index in {cfg.data_dir}, and it is empty; "
            "add documents first (python -m rag ingest <folder> --data-dir ...)."
        )
    return augment(
        dataset,
        kb,
        AnswerSettings().evidence_sentences,  # as the app's answers show them
        cfg.raft_distractor_share,
        cfg.raft_plain_share,
        cfg.seed,
        Path(cfg.raft_exclude) if cfg.raft_exclude else None,
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, val_dl: DataLoader, accelerator: Accelerator) -> float:
    """Mean loss per assistant token over the whole validation set, all processes together."""
    model.eval()
    totals = torch.zeros(2, device=accelerator.device, dtype=torch.float64)  # [loss sum, assistant tokens]
    for batch in val_dl:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        count = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()  # the model shifts labels left by one
        if count == 0:
            continue
        loss = model(**batch).loss  # mean over this batch's assistant tokens
        totals += torch.stack([loss.double() * count, count.double()])
    totals = accelerator.reduce(totals, reduction="sum")
    model.train()
    return float(totals[0] / totals[1].clamp(min=1))


def training_function(cfg: TrainConfig) -> TrainResult:
    """Train an adapter as `cfg` says and write it (atomically) to `cfg.final_adapter_dir`.

    Resumes from the newest checkpoint in `cfg.output_dir` when `cfg.resume` is set. Raises
    ConfigError, DataFormatError, ModelLoadError or CheckpointError with a message for the user.
    """
    # Accelerate reads the launcher's choices (process count, mixed precision) from the environment.
    # Under torchrun on a machine without a GPU it joins the (gloo) process group only when told
    # that it runs on the CPU; otherwise every process would train alone.
    on_cpu_cluster = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, cpu=on_cpu_cluster)
    # Seed before building anything, so that the seed also controls the LoRA weights' initialization.
    set_seed(cfg.seed)

    base = load_base(cfg.model, cfg.data_dir, cfg.dtype, cfg.method == "qlora", accelerator.device)
    train_dl, val_dl, sampler, data = get_dataloaders(cfg, base.tokenizer, accelerator)
    try:
        model = add_lora(
            base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, cfg.gradient_checkpointing
        )
    except ValueError as exc:
        raise ConfigError(f"Invalid training settings: {exc}.") from exc
    targets = sorted(model.peft_config["default"].target_modules)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    model, optimizer, train_dl = accelerator.prepare(model, optimizer, train_dl)

    # After prepare, each process sees 1/num_processes of the batches; grad_accum batches make one step.
    steps_per_epoch = math.ceil(len(train_dl) / cfg.grad_accum)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    warmup_steps = round(cfg.warmup_ratio * total_steps)
    # A prepared scheduler advances num_processes times per optimizer step (it assumes the step count
    # of a single process), so its warmup and horizon are given in those units.
    scheduler = get_scheduler(
        SCHEDULER_NAMES[cfg.lr_scheduler],
        optimizer,
        num_warmup_steps=warmup_steps * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)
    checkpoints.register_adapter_only_hooks(accelerator, model)

    settings = {**cfg.to_dict(), "dataset_sha256": data.sha256, "world_size": accelerator.num_processes}
    state = TrainState(settings=settings)
    if not cfg.resume and accelerator.is_main_process:
        checkpoints.clear(cfg.output_dir)  # starting over: older checkpoints would win the keep-newest pruning
    resumed_from = checkpoints.latest(cfg.output_dir) if cfg.resume else None
    accelerator.wait_for_everyone()  # nobody writes a checkpoint before every process has looked
    if resumed_from is not None:
        saved = checkpoints.read_state(resumed_from)
        checkpoints.check_compatible(resumed_from, saved.settings, settings, RESUME_NEUTRAL)
        accelerator.load_state(str(resumed_from))
        state = saved
        state.settings = settings  # same values but for the resume-neutral ones, which this run may change
        logger.info(
            f"Resuming from {resumed_from}: step {state.step}, epoch {state.epoch}, "
            f"skipping {state.batches_in_epoch} consumed batches"
        )
    logger.info(
        f"{data.train_examples} training / {data.val_examples} validation conversations ({data.format}); "
        f"{total_steps} steps of {cfg.batch_size} x {cfg.grad_accum} x {accelerator.num_processes} processes; "
        f"LoRA r={cfg.lora_r} on {targets}; base {base.name} ({DTYPE_NAMES[base.dtype]}, {base.quantization or 'full'})"
    )
    journal = Journal(Path(cfg.output_dir) / JOURNAL_FILE, accelerator.is_main_process, fresh=resumed_from is None)
    if val_dl is not None and state.step == 0:
        state.val_history.append([0, evaluate(model, val_dl, accelerator)])  # the base model, for comparison
        logger.info(f"step 0 validation loss {state.val_history[-1][1]:.4f} (the base model)")
        journal.write(step=0, val_loss=state.val_history[-1][1])

    model.train()
    progress = tqdm(
        total=total_steps,
        initial=state.step,
        desc="training",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    window = RunningWindow(accelerator)
    tick = time.perf_counter()
    for epoch in range(state.epoch, epochs):
        # The batch order depends only on (seed, epoch): a resumed run rebuilds the order it was killed in.
        # Accelerate's loader keeps an epoch counter of its own and hands it to the sampler when it is
        # not wrapped (one process), so both are set: a resumed process has not counted the epochs before.
        train_dl.set_epoch(epoch)
        sampler.set_epoch(epoch)
        batches = train_dl
        if state.batches_in_epoch:
            batches = accelerator.skip_first_batches(train_dl, state.batches_in_epoch)
        for batch in batches:
            # accumulate() skips the gradient all-reduce and lets the optimizer and scheduler calls
            # pass until grad_accum batches (or the epoch's last batch) have added up their gradients.
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            window.add(loss, batch)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            progress.update(1)
            last = state.step >= total_steps
            if state.step % cfg.log_every == 0 or last:
                state.train_seconds += time.perf_counter() - tick
                mean_loss = window.flush(state)
                state.train_history.append([state.step, mean_loss])
                rate = state.real_tokens / max(state.train_seconds, 1e-9)
                lr = scheduler.get_last_lr()[0]
                progress.set_postfix(loss=f"{mean_loss:.3f}", tok_s=f"{rate:.0f}")
                logger.info(
                    f"step {state.step}/{total_steps} loss {mean_loss:.4f} lr {lr:.2e} real tokens/s {rate:.0f}"
                )
                journal.write(
                    step=state.step,
                    loss=mean_loss,
                    lr=lr,
                    real_tokens=state.real_tokens,
                    real_tokens_per_s=rate,
                    world_size=accelerator.num_processes,
                )
                tick = time.perf_counter()
            epoch_end = state.batches_in_epoch == len(train_dl)
            if val_dl is not None and (last or (state.step % cfg.eval_every == 0 if cfg.eval_every else epoch_end)):
                state.train_seconds += time.perf_counter() - tick
                state.val_history.append([state.step, evaluate(model, val_dl, accelerator)])
                logger.info(f"step {state.step} validation loss {state.val_history[-1][1]:.4f}")
                journal.write(step=state.step, val_loss=state.val_history[-1][1])
                tick = time.perf_counter()
            if cfg.save_every and state.step % cfg.save_every == 0 and not last:
                state.train_seconds += time.perf_counter() - tick
                window.flush_tokens(state)
                checkpoints.save(accelerator, Path(cfg.output_dir), state, cfg.keep_checkpoints)
                tick = time.perf_counter()
            if last:
                break
        if state.step >= total_steps:
            break
        state.epoch, state.batches_in_epoch = epoch + 1, 0
    progress.close()

    # Under FSDP / DeepSpeed ZeRO-3 gathering the weights is collective: every process must call this.
    state_dict = accelerator.get_state_dict(model)
    adapter_dir = cfg.final_adapter_dir
    card = _card(cfg, base, data, state, targets, total_steps, warmup_steps, steps_per_epoch, accelerator, resumed_from)
    if accelerator.is_main_process:
        peft_model = accelerator.unwrap_model(model)

        def fill(folder: Path) -> None:
            peft_model.save_pretrained(
                folder, state_dict=state_dict, safe_serialization=True, save_embedding_layers=False
            )
            drop_extra_files(folder, ADAPTER_FILES)
            write_card(folder, card)
            plot_loss(
                state.train_history,
                state.val_history,
                folder / PLOT_FILE,
                f"{base.name} · {cfg.method} r={cfg.lora_r} · {total_steps} steps",
            )

        write_atomically(adapter_dir, fill)
        logger.info(
            f"Adapter written to {adapter_dir} (train loss {card.loss['train_final']}, "
            f"validation loss {card.loss['validation_final']}, "
            f"{card.tokens['real_tokens_per_second']} real tokens/s)"
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(adapter_dir, card.to_json())


def _card(
    cfg: TrainConfig,
    base: Any,
    data: DataInfo,
    state: TrainState,
    targets: list[str],
    total_steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    accelerator: Accelerator,
    resumed_from: Path | None,
) -> AdapterCard:
    rate = state.real_tokens / max(state.train_seconds, 1e-9)
    train = [[int(step), round(loss, 5)] for step, loss in state.train_history]
    val = [[int(step), round(loss, 5)] for step, loss in state.val_history]
    return build_card(
        base={
            "setting": cfg.model,
            "name": base.name,
            "hub_id": base.hub_id,
            "architecture": base.architecture,
            "dtype": DTYPE_NAMES[base.dtype],
            "quantization": base.quantization,
        },
        method=cfg.method,
        dataset={**vars(data), "system_prompt": cfg.system_prompt, "val_fraction": cfg.val_fraction},
        hyperparameters={
            "lora_r": cfg.lora_r,
            "lora_alpha": cfg.lora_alpha,
            "lora_dropout": cfg.lora_dropout,
            "target_modules": targets,
            "learning_rate": cfg.learning_rate,
            "weight_decay": cfg.weight_decay,
            "lr_scheduler": cfg.lr_scheduler,
            "warmup_ratio": cfg.warmup_ratio,
            "warmup_steps": warmup_steps,
            "epochs": cfg.epochs,
            "max_steps": cfg.max_steps,
            "total_steps": total_steps,
            "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
            "effective_batch_size": cfg.batch_size * cfg.grad_accum * accelerator.num_processes,
            "max_seq_len": cfg.max_seq_len,
            "max_grad_norm": cfg.max_grad_norm,
            "seed": cfg.seed,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "bucket_batches": cfg.bucket_batches,
        },
        loss={
            "train_final": train[-1][1] if train else None,
            "validation_final": val[-1][1] if val else None,
            "validation_base": val[0][1] if val and val[0][0] == 0 else None,
            "train_history": train,
            "validation_history": val,
        },
        tokens={
            "real": state.real_tokens,
            "assistant": state.assistant_tokens,
            "padding_fraction": round(1 - state.real_tokens / state.padded_tokens, 4) if state.padded_tokens else 0.0,
            "real_tokens_per_second": round(rate, 1),
        },
        training={
            "steps": state.step,
            "steps_per_epoch": steps_per_epoch,
            "epochs_run": round(state.step / steps_per_epoch, 3),
            "train_seconds": round(state.train_seconds, 2),
            "world_size": accelerator.num_processes,
            "real_tokens_per_process": state.tokens_per_process,
            "distributed_type": str(accelerator.distributed_type).rsplit(".", 1)[-1],
            "mixed_precision": accelerator.mixed_precision,
            "device": str(accelerator.device),
            "resumed_from": str(resumed_from) if resumed_from else None,
        },
        kb_snapshot=read_kb_snapshot(Path(cfg.data_dir), cfg.kb_snapshot),
    )


USER_ERRORS = (ConfigError, DataFormatError, ModelLoadError, CheckpointError)


def main(argv: Sequence[str] | None = None) -> int:
    """Train from `--config` and flags; print a user error as one line and return 1 (2 for bad settings)."""
    # Only the first process talks; the others would print every line again.
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    try:
        cfg = load_config(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        training_function(cfg)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
