"""Token-id sentence pairs, max-tokens batching, and the batch layout of translation loaders.

A batch is a dict: `src` (B, S) right-padded source ids ending in end-of-sentence, `prev`
(B, T) the target shifted right behind beginning-of-sentence, `target` (B, T) the target
ending in end-of-sentence, `ntokens` (target tokens), `index` (positions in the split) and
`refs` (reference sentences, detokenised, for BLEU).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from supernet.errors import ConfigError

Batch = dict[str, Any]


class Pairs(Protocol):
    """A dataset of (index, source ids, target ids, reference or None) with length arrays."""

    src_sizes: np.ndarray
    tgt_sizes: np.ndarray

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor, str | None]: ...


class PairDataset(Dataset):
    """Sentence pairs as id tensors (end-of-sentence appended) with their reference texts.

    Args:
        src, tgt: id sequences, each ending in end-of-sentence.
        refs: reference target sentences (detokenised); None to decode them from `tgt`.
    """

    def __init__(
        self,
        src: Sequence[torch.Tensor],
        tgt: Sequence[torch.Tensor],
        refs: Sequence[str] | None = None,
    ) -> None:
        if len(src) != len(tgt) or (refs is not None and len(refs) != len(src)):
            raise ValueError("source, target and references must have the same length")
        self.src, self.tgt, self.refs = list(src), list(tgt), None if refs is None else list(refs)
        self.src_sizes = np.array([len(s) for s in self.src], dtype=np.int64)
        self.tgt_sizes = np.array([len(t) for t in self.tgt], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor, str | None]:
        return i, self.src[i], self.tgt[i], None if self.refs is None else self.refs[i]


class PairSubset(Dataset):
    """Some pairs of a pair dataset (those within the length limit), indexed from 0."""

    def __init__(self, base: Pairs, keep: Sequence[int] | np.ndarray) -> None:
        self.base, self.keep = base, np.asarray(keep, dtype=np.int64)
        self.src_sizes = base.src_sizes[self.keep]
        self.tgt_sizes = base.tgt_sizes[self.keep]

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor, str | None]:
        _, src, tgt, ref = self.base[int(self.keep[i])]
        return i, src, tgt, ref


class TokenBatchSampler(Sampler[list[int]]):
    """Batches of similar-length pairs holding at most `max_tokens` padded tokens.

    Pairs are sorted by (target, source) length and cut into batches whose padded size
    `n × max(len)` stays within `max_tokens`; training shuffles the batch order every epoch
    with a generator seeded by (seed, epoch), so every rank sees the same order and takes
    every `num_replicas`-th batch. Training ranks get equally many batches (the remainder is
    left out, since every step synchronises gradients); evaluation (no shuffling) covers every
    batch, the first ranks taking one more, so the gathered scores are the whole split's.
    """

    def __init__(
        self,
        src_sizes: np.ndarray,
        tgt_sizes: np.ndarray,
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        longest = int(np.maximum(src_sizes, tgt_sizes).max()) if len(src_sizes) else 0
        if max_tokens < longest:
            raise ConfigError(
                f"max_tokens={max_tokens} is below the longest sentence ({longest} tokens); "
                "raise data.max_tokens"
            )
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        order = np.lexsort((src_sizes, tgt_sizes))
        sizes = np.maximum(src_sizes, tgt_sizes)[order]
        self.batches: list[list[int]] = []
        batch: list[int] = []
        longest_in_batch = 0
        for idx, size in zip(order.tolist(), sizes.tolist(), strict=True):
            grown = max(longest_in_batch, size)
            full = max_sentences is not None and len(batch) >= max_sentences
            if batch and (grown * (len(batch) + 1) > max_tokens or full):
                self.batches.append(batch)
                batch, grown = [], size
            batch.append(idx)
            longest_in_batch = grown
        if batch:
            self.batches.append(batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[list[int]]:
        batches = self.batches
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        if self.num_replicas > 1:
            usable = len(batches) - len(batches) % self.num_replicas if self.shuffle else None
            batches = batches[self.rank : usable : self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._order())

    def __len__(self) -> int:
        return len(self._order())


def collate_pairs(
    items: Sequence[tuple[int, torch.Tensor, torch.Tensor, str | None]], pad: int, bos: int
) -> Batch:
    """Pad a list of pairs into the batch layout described in the module docstring."""
    index = torch.tensor([i for i, *_ in items], dtype=torch.long)
    srcs = [s for _, s, _, _ in items]
    tgts = [t for _, _, t, _ in items]
    src = torch.full((len(items), max(len(s) for s in srcs)), pad, dtype=torch.long)
    target = torch.full((len(items), max(len(t) for t in tgts)), pad, dtype=torch.long)
    prev = target.clone()
    for row, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[row, : len(s)] = s
        target[row, : len(t)] = t
        prev[row, 0] = bos
        prev[row, 1 : len(t)] = t[:-1]
    return {
        "src": src,
        "prev": prev,
        "target": target,
        "ntokens": int(sum(len(t) for t in tgts)),
        "index": index,
        "refs": [r for *_, r in items],
    }
