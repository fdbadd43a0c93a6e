"""The number-phrase corpus: what each kind asks of a translator, seeded disjoint splits, the
cache, and one clear message for bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from supernet.data.translation.phrases import (
    KINDS,
    NumberPhrasesDataModule,
    currency,
    date,
    sample_phrases,
)
from supernet.transformer.errors import TranslationDataError

SMALL = dict(num_train=300, num_valid=40, num_test=40, max_tokens=512, vocab_size=160)
ALL_KINDS = dict.fromkeys(KINDS, 1.0)


class _Fixed:
    """A generator stand-in that returns scripted draws (for exact phrase checks)."""

    def __init__(self, ints: list[int], floats: list[float]) -> None:
        self.ints, self.floats = list(ints), list(floats)

    def integers(self, low: int, high: int | None = None) -> int:
        return self.ints.pop(0)

    def random(self) -> float:
        return self.floats.pop(0)


def test_dates_reorder_and_change_form_per_language() -> None:
    # month index 2 (March), day 1, year 1999, the "Month the day" order
    src, fr = date(_Fixed([2, 1, 1999], [0.2]), "fr")  # type: ignore[arg-type]
    assert src == "March the first, nineteen ninety-nine"
    assert fr == "le premier mars mille neuf cent quatre-vingt-dix-neuf"
    src, de = date(_Fixed([2, 21, 1999], [0.7]), "de")  # type: ignore[arg-type]
    assert src == "the twenty-first of March nineteen ninety-nine"
    assert de == "der einundzwanzigste März neunzehnhundertneunundneunzig"


def test_amounts_agree_in_number() -> None:
    # two digits → 12, 50 cents, euros
    src, fr = currency(_Fixed([2, 12, 50, 0], [0.1]), "fr", 5)  # type: ignore[arg-type]
    assert (src, fr) == ("twelve euro, fifty cents", "douze euros et cinquante centimes")
    _, de = currency(_Fixed([1, 1, 1, 0], [0.1]), "de", 5)  # type: ignore[arg-type]
    assert de == "ein Euro und ein Cent"


def test_phrases_are_seeded_distinct_tagged_and_mixed() -> None:
    src, tgt = sample_phrases(400, ALL_KINDS, ["fr", "de"], seed=5)
    assert (src, tgt) == sample_phrases(400, ALL_KINDS, ["fr", "de"], seed=5)
    assert src != sample_phrases(400, ALL_KINDS, ["fr", "de"], seed=6)[0]
    assert len(set(src)) == 400
    assert {s.split()[0] for s in src} == {"<2fr>", "<2de>"}
    assert any("Euro" in t for t in tgt) and any(" mars " in t or "März" in t for t in tgt)
    only_fr, _ = sample_phrases(50, {"ordinal": 1.0}, ["fr"], seed=5)
    assert not any(s.startswith("<2") for s in only_fr)  # one language: no tag


def test_corpus_splits_are_disjoint_cached_and_stable(tmp_path: Path) -> None:
    dm = NumberPhrasesDataModule(root=str(tmp_path), **SMALL)
    dm.prepare_data()
    dm.setup("fit")
    cache = tmp_path / "number_phrases"
    splits = {s: (cache / f"{s}.src").read_text().splitlines() for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [300, 40, 40]
    assert not set(splits["train"]) & (set(splits["valid"]) | set(splits["test"]))
    assert not set(splits["valid"]) & set(splits["test"])
    # the evaluation splits do not move when the training split grows
    bigger = NumberPhrasesDataModule(root=str(tmp_path / "b"), **{**SMALL, "num_train": 400})
    assert bigger._corpus()["valid"] == dm._corpus()["valid"]
    fresh = NumberPhrasesDataModule(root=str(tmp_path), **SMALL)
    fresh.setup("fit")  # read from the cache
    assert fresh.datasets["valid"].refs == dm.datasets["valid"].refs
    assert fresh.tgt_vocab == dm.tgt_vocab
    changed = NumberPhrasesDataModule(root=str(tmp_path), **SMALL, languages=["fr"])
    assert all(not s.startswith("<2") for s in changed._corpus()["test"][0])  # rebuilt
    lengths = np.array(dm.datasets["train"].tgt_sizes)
    assert lengths.max() <= dm.max_positions


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": {"fraction": 1.0}}, "unknown phrase kind or language"),
        ({"languages": ["it"]}, "unknown phrase kind or language"),
        ({"languages": []}, "must not be empty"),
    ],
)
def test_bad_settings_get_one_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(TranslationDataError, match=message):
        NumberPhrasesDataModule(**SMALL, **kwargs)._corpus()
