"""What every translation datamodule shares: splits, length checks, max-tokens loaders, and the
facts the pipeline passes on to the supernet (vocabulary sizes, special tokens) and to the
training module (the vocabularies themselves, stored in checkpoints).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from supernet.data.translation.batching import (
    PairDataset,
    Pairs,
    PairSubset,
    TokenBatchSampler,
    collate_pairs,
)
from supernet.data.translation.vocab import Vocabulary
from supernet.transformer.errors import SequenceTooLongError, TranslationDataError

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


def encode_pairs(
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
) -> PairDataset:
    """Tokenise raw sentence pairs (end-of-sentence appended); the raw targets are the refs."""

    def ids(vocab: Vocabulary, texts: Sequence[str]) -> list[torch.Tensor]:
        return [
            torch.tensor([*seq, vocab.eos_index], dtype=torch.long)
            for seq in vocab.encode_batch(texts)
        ]

    return PairDataset(ids(src_vocab, src_texts), ids(tgt_vocab, tgt_texts), list(tgt_texts))


class TranslationDataModule(L.LightningDataModule):
    """Base of the translation datamodules; subclasses implement `_load()`.

    After `prepare_data()` and `setup()`, `supernet_kwargs()` gives the vocabulary facts the
    supernet's constructor needs and `module_kwargs()` the vocabularies for the module.

    Args:
        max_tokens: padded tokens per training batch.
        max_tokens_valid: padded tokens per evaluation batch (default: `max_tokens`).
        max_positions: longest sentence in tokens; longer training pairs are dropped, longer
            evaluation pairs raise an error unless `skip_long_eval`.
        skip_long_eval: drop (with a warning) instead of failing on long evaluation pairs.
        num_workers: loader worker processes.
        seed: seed of the batch order.
    """

    shards_batches = True  # its batch sampler splits batches across ranks (not Lightning's)

    def __init__(
        self,
        max_tokens: int = 4096,
        max_tokens_valid: int | None = None,
        max_positions: int = 256,
        skip_long_eval: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.max_tokens_valid = max_tokens_valid or max_tokens
        self.max_positions = max_positions
        self.skip_long_eval = skip_long_eval
        self.num_workers = num_workers
        self.seed = seed
        self.src_vocab: Vocabulary | None = None
        self.tgt_vocab: Vocabulary | None = None
        self.datasets: dict[str, Pairs] = {}
        self._fixed_vocab: tuple[Vocabulary, Vocabulary] | None = None

    # --- to implement -------------------------------------------------------------------------
    def _load(
        self, fixed: tuple[Vocabulary, Vocabulary] | None
    ) -> tuple[Vocabulary, Vocabulary, dict[str, Pairs]]:
        """Vocabularies and the three splits; use `fixed` vocabularies when given."""
        raise NotImplementedError

    # --- set-up -------------------------------------------------------------------------------
    def use_vocabulary(self, src_vocab: Vocabulary, tgt_vocab: Vocabulary) -> None:
        """Tokenise with these vocabularies (a checkpoint's) instead of learning new ones."""
        self._fixed_vocab = (src_vocab, tgt_vocab)
        self.datasets = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        src_vocab, tgt_vocab, datasets = self._load(self._fixed_vocab)
        for split in SPLITS:
            if split not in datasets or len(datasets[split]) == 0:
                raise TranslationDataError(f"the {split} split of {self._describe()} is empty")
        datasets["train"] = self._filter(datasets["train"], "train", drop=True)
        for split in ("valid", "test"):
            datasets[split] = self._filter(datasets[split], split, drop=self.skip_long_eval)
        self.src_vocab, self.tgt_vocab, self.datasets = src_vocab, tgt_vocab, datasets
        log.info(
            "%s: %s pairs; vocabularies %d / %d",
            self._describe(),
            " / ".join(f"{s} {len(datasets[s])}" for s in SPLITS),
            len(src_vocab),
            len(tgt_vocab),
        )

    def _describe(self) -> str:
        return type(self).__name__

    def _filter(self, data: Pairs, split: str, drop: bool) -> Pairs:
        long = (data.src_sizes > self.max_positions) | (data.tgt_sizes > self.max_positions)
        if not long.any():
            return data
        count = int(long.sum())
        if not drop:
            raise SequenceTooLongError(
                f"{count} {split} pairs of {self._describe()} exceed max_positions="
                f"{self.max_positions} tokens; raise data.max_positions (and "
                "supernet.max_positions) or set data.skip_long_eval=true"
            )
        log.warning("dropping %d %s pairs longer than %d tokens", count, split, self.max_positions)
        return PairSubset(data, np.flatnonzero(~long))

    def _ready(self) -> None:
        if not self.datasets:
            self.setup("fit")

    # --- what the pipeline reads --------------------------------------------------------------
    @property
    def src_vocab_size(self) -> int:
        self._ready()
        assert self.src_vocab is not None
        return len(self.src_vocab)

    @property
    def tgt_vocab_size(self) -> int:
        self._ready()
        assert self.tgt_vocab is not None
        return len(self.tgt_vocab)

    @property
    def pad_index(self) -> int:
        self._ready()
        assert self.tgt_vocab is not None
        return self.tgt_vocab.pad_index

    def supernet_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of `TransformerSupernet` that only the data knows."""
        self._ready()
        assert self.src_vocab is not None and self.tgt_vocab is not None
        src, tgt = self.src_vocab, self.tgt_vocab
        if (src.pad_index, src.eos_index) != (tgt.pad_index, tgt.eos_index):
            raise TranslationDataError(
                "source and target dictionaries disagree on the padding / end-of-sentence ids"
            )
        return {
            "src_vocab_size": len(src),
            "tgt_vocab_size": len(tgt),
            "pad_index": tgt.pad_index,
            "bos_index": tgt.bos_index,
            "eos_index": tgt.eos_index,
        }

    def module_kwargs(self) -> dict[str, Any]:
        """The vocabularies, for decoding BLEU and for the checkpoint."""
        self._ready()
        return {"src_vocab": self.src_vocab, "tgt_vocab": self.tgt_vocab}

    # --- loaders ------------------------------------------------------------------------------
    def loader(
        self, split: str, shuffle: bool = False, max_tokens: int | None = None
    ) -> DataLoader:
        """A max-tokens loader over `split` (train, valid or test)."""
        self._ready()
        data = self.datasets[split]
        replicas, rank = 1, 0
        trainer = getattr(self, "trainer", None)
        if trainer is not None:  # under DDP each rank takes its share of the batches
            replicas, rank = trainer.world_size, trainer.global_rank
        sampler = TokenBatchSampler(
            data.src_sizes,
            data.tgt_sizes,
            max_tokens or (self.max_tokens if split == "train" else self.max_tokens_valid),
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=replicas,
            rank=rank,
        )
        assert self.tgt_vocab is not None
        collate = partial(collate_pairs, pad=self.tgt_vocab.pad_index, bos=self.tgt_vocab.bos_index)
        return DataLoader(
            data,  # type: ignore[arg-type]
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
