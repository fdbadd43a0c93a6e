"""Translation validations report labelled BLEU conventions and refuse mismatched dictionaries."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from search.evaluation.translation import TranslationEvaluator, moses_detokenizer
from supernet.data.translation.vocab import Vocabulary
from supernet.errors import ConfigError
from supernet.transformer.errors import TranslationDataError
from supernet.transformer.evaluation import corpus_bleu
from supernet.transformer.model import TransformerSupernet
from tests.supernet.tiny_transformer import TINY_WIDTHS

WORDS = ["<s>", "<pad>", "</s>", "<unk>", "Das", "ist", "gut", ",", "oder", "?", "Hoch@@", "-",
         "Haus", "ein"]


class Data:
    """One validation batch of the translation layout over a Moses-tokenized vocabulary."""

    def __init__(self, size: int = len(WORDS)) -> None:
        self.src_vocab = self.tgt_vocab = Vocabulary(WORDS[:size], bpe="subword_nmt")
        self.tgt = "de"

    def val_dataloader(self) -> list[dict[str, Any]]:
        target = torch.tensor([[4, 5, 6, 7, 8, 9, 2], [4, 5, 13, 10, 12, 2, 1]])
        prev = torch.cat([torch.zeros(2, 1, dtype=torch.long), target[:, :-1]], dim=1)
        return [{"src": target.clone(), "prev": prev, "target": target,
                 "index": torch.tensor([0, 1]), "refs": [None, None], "ntokens": 12}]


@pytest.fixture
def supernet() -> TransformerSupernet:
    torch.manual_seed(0)
    return TransformerSupernet(len(WORDS), len(WORDS), **TINY_WIDTHS).eval()


def test_scores_carry_both_bleu_conventions(supernet: TransformerSupernet) -> None:
    evaluator = TranslationEvaluator(supernet, Data(), tokenize="13a")
    scores = evaluator([supernet.space.largest()])[0]
    assert {"bleu", "loss", "bleu_tokenized", "sacrebleu"} <= set(scores)
    assert all(0 <= scores[k] <= 100 for k in ("bleu", "bleu_tokenized", "sacrebleu"))


def test_sacrebleu_label_scores_detokenized_text() -> None:
    detok = moses_detokenizer(Data().tgt_vocab, "de")
    assert detok(["Das ist gut , oder ?"]) == ["Das ist gut, oder?"]
    hyp, ref = ["Das ist gut , oder ?"], ["Das ist gut, oder?"]
    assert corpus_bleu(detok(hyp), ref, "13a") == pytest.approx(100.0)
    plain = Vocabulary(WORDS, bpe="sentencepiece")
    assert moses_detokenizer(plain, "de")(hyp) == hyp  # already detokenized text stays


def test_a_dictionary_of_another_size_is_refused(supernet: TransformerSupernet) -> None:
    with pytest.raises(TranslationDataError, match="has 12 symbols but the supernet's table"):
        TranslationEvaluator(supernet, Data(size=12))


def test_cuda_without_gpu_is_one_clear_error(
    supernet: TransformerSupernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="evaluation.device=cuda needs a CUDA GPU"):
        TranslationEvaluator(supernet, Data(), device="cuda")
