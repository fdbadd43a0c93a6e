"""Scoring a SubTransformer: corpus BLEU of its translations and its validation loss.

`evaluate_translation` is what search calls for every candidate: the loss is the mean
per-token negative log-likelihood under teacher forcing (HAT's search fitness), BLEU is
corpus-level sacreBLEU on detokenised output. `bleu_tokenize="none"` with
`split_compounds=True` gives the tokenized, compound-split BLEU papers report on WMT'14.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from supernet.data.translation.vocab import Vocabulary
from supernet.transformer.beam import generate
from supernet.transformer.core import TransformerCore

_COMPOUND = re.compile(r"(?<=\S)-(?=\S)")


@dataclass(frozen=True)
class TranslationScore:
    """BLEU (0-100), mean token NLL (nats), how much text they cover, and the texts scored
    (so that other BLEU conventions can be computed without decoding again)."""

    bleu: float
    loss: float
    sentences: int
    tokens: int
    hypotheses: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


def split_compounds(text: str) -> str:
    """Split hyphenated compounds the way the WMT'14 En-De papers do (##AT##-##AT##)."""
    return _COMPOUND.sub(" ##AT##-##AT## ", text)


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str],
    tokenize: str = "13a",
    compound_split: bool = False,
) -> float:
    """Corpus BLEU in percent (sacreBLEU); `tokenize="none"` scores text as already tokenised."""
    import sacrebleu

    if compound_split:
        hypotheses = [split_compounds(h) for h in hypotheses]
        references = [split_compounds(r) for r in references]
    return float(
        sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score
    )


def token_nll(logits: torch.Tensor, target: torch.Tensor, pad: int) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the non-padding target tokens, and their count."""
    nll = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        target.reshape(-1),
        ignore_index=pad,
        reduction="sum",
    )
    return nll, int(target.ne(pad).sum())


def batch_references(batch: Mapping[str, Any], vocab: Vocabulary) -> list[str]:
    """The batch's reference texts (decoded from the target ids when the data has none)."""
    refs = batch["refs"]
    if refs and refs[0] is not None:
        return list(refs)
    return [vocab.decode(row.tolist()) for row in batch["target"]]


@torch.no_grad()
def evaluate_translation(
    model: TransformerCore,
    batches: Iterable[Mapping[str, Any]],
    tgt_vocab: Vocabulary,
    arch: Mapping[str, Any] | None = None,
    beam_size: int = 4,
    len_penalty: float = 0.6,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    bleu_tokenize: str = "13a",
    compound_split: bool = False,
    with_bleu: bool = True,
    device: torch.device | str | None = None,
) -> TranslationScore:
    """BLEU and loss of `model` (with `arch` active, for a supernet) over `batches`.

    A supernet gets its previous active arch back afterwards; the model's training flag is
    restored too.
    """
    previous = getattr(model, "active_arch", None)
    if arch is not None:
        model.set_active(arch)  # type: ignore[operator]
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    hyps: list[str] = []
    refs: list[str] = []
    nll_sum, ntokens, sentences = 0.0, 0, 0
    try:
        for batch in batches:
            src, prev, target = (batch[k].to(device) for k in ("src", "prev", "target"))
            nll, count = token_nll(model(src, prev), target, model.pad_index)
            nll_sum, ntokens = nll_sum + float(nll), ntokens + count
            sentences += src.shape[0]
            if with_bleu:
                outputs = generate(model, src, beam_size, len_penalty, max_len_a, max_len_b)
                hyps += [tgt_vocab.decode(ids) for ids in outputs]
                refs += batch_references(batch, tgt_vocab)
    finally:
        model.train(was_training)
        if arch is not None and previous is not None:
            model.set_active(previous)  # type: ignore[operator]
    bleu = corpus_bleu(hyps, refs, bleu_tokenize, compound_split) if with_bleu else float("nan")
    return TranslationScore(
        bleu, nll_sum / max(ntokens, 1), sentences, ntokens, tuple(hyps), tuple(refs)
    )
