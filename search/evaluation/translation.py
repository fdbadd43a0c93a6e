"""Validation of SubTransformers on a trained translation supernet: corpus BLEU.

A subnet is exported as a static SubTransformer, decodes the validation split (never the
test split) and is scored by corpus sacreBLEU against the references, through the same
`evaluate_translation` the training module's validation uses, so the largest subnet's BLEU
here equals `val/bleu_max` of its training run under the same decoding settings. The mean
token loss under teacher forcing comes along for free and is stored as `loss`.

Two BLEU conventions are reported beside the configured `bleu`, each labelled:
`bleu_tokenized` scores the tokenized text with hyphenated compounds split (what HAT and the
WMT'14 papers call BLEU) and `sacrebleu` scores detokenized text with sacreBLEU's own 13a
tokenizer (Moses-detokenized first when the corpus is Moses-tokenized, as fairseq data-bins
with subword-nmt BPE are).

Text is tokenised with the checkpoint's own vocabularies, so a corpus whose dictionary was
learned again (or differs) cannot silently shift every score. Everything that changes the
numbers (decoding, BLEU tokenizer, which sentences) is in `settings()`, hence in the store key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from search.evaluation.device import evaluation_device
from supernet.data.translation.vocab import Vocabulary
from supernet.errors import ConfigError
from supernet.protocol import Supernet
from supernet.space import Arch
from supernet.transformer.errors import TranslationDataError
from supernet.transformer.evaluation import corpus_bleu, evaluate_translation

Batch = dict[str, Any]


def first_sentences(batches: Sequence[Batch], limit: int | None, pad: int) -> list[Batch]:
    """The batches restricted to the first `limit` sentences of the split, in corpus order.

    Loaders sort sentences by length, so cutting the batch list would keep only the shortest
    ones; a batch's `index` gives each sentence's place in the split instead. Padding columns
    a kept row never reaches are dropped.
    """
    if limit is None:
        return list(batches)
    kept: list[Batch] = []
    for batch in batches:
        rows = (batch["index"] < limit).nonzero().flatten()
        if len(rows) == 0:
            continue
        if len(rows) == len(batch["index"]):
            kept.append(batch)
            continue
        out: Batch = dict(batch)
        for key in ("src", "prev", "target"):
            sliced = batch[key][rows]
            width = int(sliced.ne(pad).sum(1).max())
            out[key] = sliced[:, : max(width, 1)]
        out["index"] = batch["index"][rows]
        out["refs"] = [batch["refs"][i] for i in rows.tolist()]
        out["ntokens"] = int(out["target"].ne(pad).sum())
        kept.append(out)
    return kept


def check_vocab_sizes(supernet: Any, datamodule: Any) -> None:
    """The data's dictionaries must be as large as the supernet's embedding tables."""
    config = supernet.config() if hasattr(supernet, "config") else {}
    for side, vocab in (("src", datamodule.src_vocab), ("tgt", datamodule.tgt_vocab)):
        expected = config.get(f"{side}_vocab_size")
        if expected is not None and len(vocab) != expected:
            raise TranslationDataError(
                f"the data's {'source' if side == 'src' else 'target'} dictionary has "
                f"{len(vocab)} symbols but the supernet's table has {expected}; use the "
                "data-bin the weights were trained on (for HAT: its get_preprocessed.sh)"
            )


def moses_detokenizer(vocab: Vocabulary, lang: str | None) -> Callable[[Sequence[str]], list[str]]:
    """Moses detokenization for Moses-tokenized corpora (subword-nmt BPE), else identity."""
    if vocab.bpe != "subword_nmt":
        return list
    from sacremoses import MosesDetokenizer

    moses = MosesDetokenizer(lang=lang or "en")
    return lambda lines: [moses.detokenize(line.split()) for line in lines]


class TranslationEvaluator:
    """Corpus BLEU (0-100, sacreBLEU) of a subnet's translations of the validation split.

    Args:
        supernet: the trained Transformer supernet (weights are not changed: subnets are
            exported).
        datamodule: a translation datamodule, set up (gives `val_dataloader()` and its
            vocabularies).
        device: where subnets run (`cuda` needs a visible GPU).
        beam_size: beam width (1: greedy, as the training module's validation by default).
        len_penalty: beam-search length penalty (HAT: 0.6 with beam 4).
        max_len_a, max_len_b: longest output = a × source length + b tokens.
        max_sentences: score only the first this many sentences of the split (None: all).
        tokenize: sacreBLEU tokenizer (`13a`; `none` scores text as already tokenised).
        compound_split: split hyphenated compounds before BLEU (the WMT'14 En-De papers).
        vocab: the checkpoint's vocabularies (`{"src": state, "tgt": state}`); the
            datamodule must use the same.
    """

    metric = "bleu"
    metrics = ("bleu", "loss")
    task = "translation"

    def __init__(
        self,
        supernet: Supernet,
        datamodule: Any,
        device: str | torch.device = "cpu",
        beam_size: int = 1,
        len_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        max_sentences: int | None = None,
        tokenize: str = "13a",
        compound_split: bool = False,
        vocab: Mapping[str, Any] | None = None,
    ) -> None:
        if beam_size < 1:
            raise ConfigError(f"evaluation.translation.beam_size must be ≥ 1, got {beam_size}")
        if max_sentences is not None and max_sentences < 1:
            raise ConfigError(
                f"evaluation.translation.max_sentences must be ≥ 1 or null, got {max_sentences}"
            )
        self.supernet = supernet
        self.device = evaluation_device(device)
        self.beam_size, self.len_penalty = int(beam_size), float(len_penalty)
        self.max_len_a, self.max_len_b = float(max_len_a), int(max_len_b)
        self.tokenize, self.compound_split = str(tokenize), bool(compound_split)
        tgt_vocab = datamodule.tgt_vocab
        if vocab is not None:
            Vocabulary.from_state(dict(vocab["src"])).check_same(datamodule.src_vocab, "source")
            saved = Vocabulary.from_state(dict(vocab["tgt"]))
            saved.check_same(tgt_vocab, "target")
        self.tgt_vocab: Vocabulary = tgt_vocab
        check_vocab_sizes(supernet, datamodule)
        self.detokenize = moses_detokenizer(tgt_vocab, getattr(datamodule, "tgt", None))
        # materialise the fixed subset once: every subnet translates exactly the same sentences
        self.validation = first_sentences(
            list(datamodule.val_dataloader()), max_sentences, tgt_vocab.pad_index
        )
        self.sentences = sum(int(b["src"].shape[0]) for b in self.validation)
        self.tokens = sum(int(b["target"].ne(tgt_vocab.pad_index).sum()) for b in self.validation)

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": "valid",
            "sentences": self.sentences,
            "target_tokens": self.tokens,
            "beam_size": self.beam_size,
            "len_penalty": self.len_penalty,
            "max_len_a": self.max_len_a,
            "max_len_b": self.max_len_b,
            "tokenize": self.tokenize,
            "compound_split": self.compound_split,
        }

    def deployable(self, arch: Arch) -> nn.Module:
        """The static SubTransformer exactly as it is scored."""
        return self.supernet.export_subnet(arch).to(self.device).eval()

    def example_inputs(self, arch: Arch, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """One source batch and its shifted target (teacher forcing), as `forward` takes them."""
        batch = self.validation[0]
        return (batch["src"][:batch_size].to(self.device),
                batch["prev"][:batch_size].to(self.device))

    def score(self, arch: Arch) -> dict[str, float]:
        return self.score_model(self.deployable(arch), arch)

    def score_model(self, model: nn.Module, arch: Arch) -> dict[str, float]:
        """Score a static SubTransformer as it is: re-validates exports."""
        result = evaluate_translation(
            model,  # type: ignore[arg-type]
            self.validation,
            self.tgt_vocab,
            beam_size=self.beam_size,
            len_penalty=self.len_penalty,
            max_len_a=self.max_len_a,
            max_len_b=self.max_len_b,
            bleu_tokenize=self.tokenize,
            compound_split=self.compound_split,
            device=self.device,
        )
        hyps, refs = result.hypotheses, result.references
        plain_hyps, plain_refs = self.detokenize(hyps), self.detokenize(refs)
        return {
            "bleu": result.bleu,
            "loss": result.loss,
            "bleu_tokenized": corpus_bleu(hyps, refs, "none", compound_split=True),
            "sacrebleu": corpus_bleu(plain_hyps, plain_refs, "13a"),
        }

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [self.score(a) for a in archs]

    @staticmethod
    def handles(record: Mapping[str, Any]) -> bool:
        """A checkpoint written by the translation module carries its vocabularies."""
        return "vocab" in record

    @staticmethod
    def options(evaluation: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from the `evaluation:` config block and the checkpoint."""
        block = dict(evaluation.get("translation") or {})
        return {"device": evaluation.get("device", "cpu"), **block, "vocab": record["vocab"]}
