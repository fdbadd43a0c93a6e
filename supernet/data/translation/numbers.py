"""English → French number phrases: a synthetic, offline translation corpus.

Numbers are drawn with a fixed seed (the digit count uniform in 1..`max_digits`, then the
value uniform among numbers of that many digits), deduplicated and split disjointly into
train / valid / test; num2words writes them out in both languages. The corpus is synthetic
but exercises what a translation model must learn: reordering and regrouping
("seventy-one" → "soixante et onze", "ninety-seven" → "quatre-vingt-dix-sept"), agreement
("deux cents" but "deux cent un", "quatre-vingts" but "quatre-vingt-un", "deux millions"),
words that vanish or appear ("one hundred" → "cent", "and" → nothing, "twenty-one" → "vingt et
un"), and long-range structure across "million" / "thousand". A sentencepiece model learned
on the training split only splits both sides into subwords.

The corpus and its vocabulary are cached under `root` (when given) and rebuilt whenever a
setting that shapes them changes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from supernet.data.translation.base import SPLITS, Pairs, TranslationDataModule, encode_pairs
from supernet.data.translation.vocab import Vocabulary
from supernet.transformer.errors import TranslationDataError

log = logging.getLogger(__name__)


def sample_numbers(count: int, max_digits: int, seed: int) -> np.ndarray:
    """`count` distinct integers, digit count uniform in 1..max_digits (fixed order for a seed)."""
    capacity = 10**max_digits
    if count > capacity // 2:
        raise TranslationDataError(
            f"cannot draw {count} distinct numbers below {capacity}; raise data.max_digits"
        )
    rng = np.random.default_rng(seed)
    seen: dict[int, None] = {}
    while len(seen) < count:
        digits = rng.integers(1, max_digits + 1, size=count)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        values = rng.integers(low, 10**digits)
        for v in values.tolist():
            seen.setdefault(v)
            if len(seen) == count:
                break
    return np.array(list(seen), dtype=np.int64)


def number_pairs(numbers: np.ndarray) -> tuple[list[str], list[str]]:
    """English and French words of each number."""
    from num2words import num2words

    return (
        [num2words(int(n), lang="en") for n in numbers],
        [num2words(int(n), lang="fr") for n in numbers],
    )


class NumbersEnFrDataModule(TranslationDataModule):
    """The number-phrase corpus (English → French), offline and deterministic.

    Args:
        root: cache directory for the generated corpus and vocabulary (None: in memory).
        num_train, num_valid, num_test: split sizes (disjoint sets of numbers).
        max_digits: numbers have 1..max_digits digits.
        vocab_size: sentencepiece pieces (an upper bound: the corpus supports about 110).
        spm_type: sentencepiece model type (`unigram` or `bpe`).
        joint_vocab: one vocabulary for both languages (else one per side).
        corpus_seed: seed of the numbers drawn (the corpus stays fixed when `seed` changes).
        **kwargs: batching and length settings (see `TranslationDataModule`).
    """

    cache_name = "numbers_en_fr"  # the corpus' folder under `root`
    sides = ("en", "fr")  # file suffixes of the source and target sentences

    def __init__(
        self,
        root: str | None = None,
        num_train: int = 48000,
        num_valid: int = 1000,
        num_test: int = 2000,
        max_digits: int = 7,
        vocab_size: int = 128,
        spm_type: str = "unigram",
        joint_vocab: bool = True,
        corpus_seed: int = 1234,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = None if root is None else Path(root)
        self.sizes = {"train": num_train, "valid": num_valid, "test": num_test}
        self.max_digits = max_digits
        self.vocab_size = vocab_size
        self.spm_type = spm_type
        self.joint_vocab = joint_vocab
        self.corpus_seed = corpus_seed

    def _describe(self) -> str:
        return "the number corpus (numbers_en_fr)"

    def _corpus_settings(self) -> dict:
        """What shapes the sentences (the vocabulary settings come on top)."""
        return {"sizes": self.sizes, "max_digits": self.max_digits, "seed": self.corpus_seed}

    def _generate(self) -> dict[str, tuple[list[str], list[str]]]:
        """The three splits as (source, target) sentence lists, disjoint sets of numbers."""
        numbers = sample_numbers(sum(self.sizes.values()), self.max_digits, self.corpus_seed)
        splits, start = {}, 0
        for split in ("test", "valid", "train"):
            splits[split] = number_pairs(numbers[start : start + self.sizes[split]])
            start += self.sizes[split]
        return splits

    def _settings(self, with_vocab: bool) -> dict:
        settings = self._corpus_settings()
        if with_vocab:
            settings.update(vocab_size=self.vocab_size, spm_type=self.spm_type)
            settings.update(joint_vocab=self.joint_vocab)
        return json.loads(json.dumps(settings, sort_keys=True))

    def _corpus(self) -> dict[str, tuple[list[str], list[str]]]:
        """The three splits as (source, target) sentence lists, cached under `root`."""
        cache = None if self.root is None else self.root / self.cache_name
        if cache is not None and _marker(cache / "corpus.json") == self._settings(False):
            src, tgt = self.sides
            return {s: (_lines(cache / f"{s}.{src}"), _lines(cache / f"{s}.{tgt}"))
                    for s in SPLITS}
        splits = self._generate()
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            for split, texts in splits.items():
                for side, lines in zip(self.sides, texts, strict=True):
                    text = "\n".join(lines) + "\n"
                    (cache / f"{split}.{side}").write_text(text, encoding="utf-8")
            (cache / "corpus.json").write_text(json.dumps(self._settings(False)))
            log.info("wrote %s to %s", self._describe(), cache)
        return splits

    def _vocabulary(self, train: tuple[list[str], list[str]]) -> tuple[Vocabulary, Vocabulary]:
        """Sentencepiece vocabularies of the training split (joint or per side), cached."""
        names = ("joint", "joint") if self.joint_vocab else self.sides
        cache = None if self.root is None else self.root / self.cache_name
        if cache is not None and _marker(cache / "spm.json") == self._settings(True):
            src, tgt = ((cache / f"spm.{n}.model").read_bytes() for n in names)
            return Vocabulary.from_sentencepiece(src), Vocabulary.from_sentencepiece(tgt)
        if self.joint_vocab:
            joint = Vocabulary.train_sentencepiece(
                train[0] + train[1], self.vocab_size, self.spm_type
            )
            vocabs = (joint, joint)
        else:
            vocabs = tuple(  # type: ignore[assignment]
                Vocabulary.train_sentencepiece(side, self.vocab_size, self.spm_type)
                for side in train
            )
        if cache is not None:
            for name, vocab in zip(names, vocabs, strict=True):
                (cache / f"spm.{name}.model").write_bytes(vocab.spm_model or b"")
            (cache / "spm.json").write_text(json.dumps(self._settings(True)))
        return vocabs

    def prepare_data(self) -> None:
        """Generate the corpus and learn the vocabulary once (cached under `root`)."""
        if self.root is not None:
            self._vocabulary(self._corpus()["train"])

    def _load(
        self, fixed: tuple[Vocabulary, Vocabulary] | None
    ) -> tuple[Vocabulary, Vocabulary, dict[str, Pairs]]:
        splits = self._corpus()
        if fixed is not None:
            src_vocab, tgt_vocab = fixed
        else:
            src_vocab, tgt_vocab = self._vocabulary(splits["train"])
        datasets: dict[str, Pairs] = {
            split: encode_pairs(en, fr, src_vocab, tgt_vocab) for split, (en, fr) in splits.items()
        }
        return src_vocab, tgt_vocab, datasets


def _marker(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()
