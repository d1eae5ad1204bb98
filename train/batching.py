"""Batches with little padding: a seeded split, length-bucketed batch order and per-batch dynamic padding.

Conversations differ a lot in length. Random batches padded to the longest member waste
most of their tokens on padding; sorting everything by length would make every epoch see
the same batches in the same order. The middle way (as in Hugging Face's length-grouped
sampler): shuffle, cut into buckets of `bucket_batches` batches, sort inside each bucket,
shuffle the batches. Each batch is then padded only to its own longest member.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from train.masking import IGNORE_INDEX, Example


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/validation split of `count` records; returns (train, validation) indices.

    With a fraction above 0 the validation side gets at least one record (when there are at
    least two); the training side always keeps at least one.
    """
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_val = round(count * val_fraction)
    if val_fraction > 0 and count >= 2:
        n_val = min(max(n_val, 1), count - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


class LengthGroupedBatchSampler:
    """Yields lists of example indices; batches hold examples of similar length.

    The order depends only on (seed, epoch), so every process of a data-parallel run sees the
    same sequence of batches (Accelerate then deals them out) and a resumed run can skip the
    batches it already trained on. Call `set_epoch` before each epoch. There is deliberately no
    `batch_size` attribute: batch sizes vary (the last batch of a bucket is short), and
    Accelerate handles such samplers only when it does not assume a fixed size.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, bucket_batches: int, seed: int, shuffle: bool = True):
        self.lengths = list(lengths)
        self.size = batch_size
        self.bucket = max(1, bucket_batches) * batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        if not self.shuffle:  # validation: one sorted pass, the least padding possible
            order.sort(key=lambda i: self.lengths[i], reverse=True)
            return [order[i : i + self.size] for i in range(0, len(order), self.size)]
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        rng.shuffle(order)
        batches: list[list[int]] = []
        for b in range(0, len(order), self.bucket):
            bucket = sorted(order[b : b + self.bucket], key=lambda i: self.lengths[i], reverse=True)
            batches.extend(bucket[i : i + self.size] for i in range(0, len(bucket), self.size))
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.bucket)
        return full * (self.bucket // self.size) + -(-rest // self.size)


class PadCollator:
    """Pads a list of Examples to the longest one (right padding) into model-ready tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)  # (b, t)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)  # (b, t)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)  # (b, t)
        for row, e in enumerate(examples):
            n = len(e.input_ids)
            input_ids[row, :n] = torch.tensor(e.input_ids)
            labels[row, :n] = torch.tensor(e.labels)
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded tokens that are padding, for this batch order."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    return 0.0 if padded == 0 else 1 - real / padded
