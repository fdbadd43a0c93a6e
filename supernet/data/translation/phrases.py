"""Number phrases into several languages: the offline translation default, hard enough for
SubTransformers to differ.

English phrases of four kinds, written by num2words, each translated into one of several
target languages named by a tag at the start of the source (`<2fr>`, `<2es>`; Johnson et al.,
2017). What the model must learn goes beyond the cardinals of `numbers_en_fr`:

- dates reorder and change form: "March the twenty-first, nineteen ninety-nine" →
  "le vingt et un mars mille neuf cent quatre-vingt-dix-neuf" / "el veintiuno de marzo de mil
  novecientos noventa y nueve" (the day becomes a cardinal, except French "premier"; the year
  regroups);
- ordinals change form: "sixty-ninth" → "soixante-neuvième" / "sexagésimo noveno";
- currency amounts agree in number ("one euro" / "douze euros") and reorder the cents
  ("twelve euro, fifty cents" → "douze euros et cinquante centimes" / "doce euros con
  cincuenta céntimos");
- one model serves both languages, so the tag decides every word.

German (`de`) is available too, but its numbers are single compounds
("dreihundertzweiundvierzig"), which BLEU scores all or nothing: a small model scores near 0.

Sentences are drawn with a fixed seed, deduplicated on the source, and split disjointly into
test, valid and train (in that order, so the evaluation splits do not move when the training
split grows). The corpus and its sentencepiece vocabulary are cached like `numbers_en_fr`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from supernet.data.translation.numbers import NumbersEnFrDataModule
from supernet.transformer.errors import TranslationDataError

MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"],
}
CURRENCIES = ("EUR", "USD")
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

Phrase = Callable[[np.random.Generator, str, int], tuple[str, str]]


def _words(value: float, lang: str, **kwargs: object) -> str:
    from num2words import num2words

    return str(num2words(value, lang=lang, **kwargs))


def _number(rng: np.random.Generator, max_digits: int) -> int:
    """Digit count uniform in 1..max_digits, then the value uniform among those numbers."""
    digits = int(rng.integers(1, max_digits + 1))
    return int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10**digits))


def cardinal(rng: np.random.Generator, lang: str, max_digits: int) -> tuple[str, str]:
    n = _number(rng, max_digits)
    return _words(n, "en"), _words(n, lang)


def ordinal(rng: np.random.Generator, lang: str, max_digits: int) -> tuple[str, str]:
    n = max(_number(rng, min(max_digits, 4)), 1)
    return _words(n, "en", to="ordinal"), _words(n, lang, to="ordinal")


def date(rng: np.random.Generator, lang: str, max_digits: int = 0) -> tuple[str, str]:
    """A day, month and year (1000-2099) in one of two English word orders."""
    month = int(rng.integers(0, 12))
    day = int(rng.integers(1, DAYS_IN_MONTH[month] + 1))
    year = int(rng.integers(1000, 2100))
    en_day, en_year = _words(day, "en", to="ordinal"), _words(year, "en", to="year")
    if rng.random() < 0.5:
        src = f"{MONTHS['en'][month]} the {en_day}, {en_year}"
    else:
        src = f"the {en_day} of {MONTHS['en'][month]} {en_year}"
    year_words = _words(year, lang, to="year")
    if lang == "fr":
        day_words = "premier" if day == 1 else _words(day, "fr")
        return src, f"le {day_words} {MONTHS['fr'][month]} {year_words}"
    if lang == "es":
        return src, f"el {_words(day, 'es')} de {MONTHS['es'][month]} de {year_words}"
    if lang == "de":
        return src, f"der {_words(day, 'de', to='ordinal')} {MONTHS['de'][month]} {year_words}"
    raise TranslationDataError(f"no date format for language {lang!r}; use {LANGUAGES}")


def currency(rng: np.random.Generator, lang: str, max_digits: int) -> tuple[str, str]:
    """An amount of euros or dollars (at most five digits), with cents four times in five."""
    units = _number(rng, min(max_digits, 5))
    cents = int(rng.integers(1, 100)) if rng.random() < 0.8 else 0
    code = CURRENCIES[int(rng.integers(0, len(CURRENCIES)))]
    amount = units + cents / 100
    return (_words(amount, "en", to="currency", currency=code),
            _words(amount, lang, to="currency", currency=code))


KINDS: dict[str, Phrase] = {
    "cardinal": cardinal,
    "ordinal": ordinal,
    "date": date,
    "currency": currency,
}
LANGUAGES = ("fr", "es", "de")  # the default: fr and es


def sample_phrases(
    count: int,
    kinds: Mapping[str, float],
    languages: Sequence[str],
    seed: int,
    max_digits: int = 7,
) -> tuple[list[str], list[str]]:
    """`count` (source, target) pairs with distinct sources, in a fixed order for a seed.

    Each pair draws its kind with probability proportional to `kinds` and its target language
    uniformly; the source starts with the language tag when there are several languages.
    """
    unknown = sorted(set(kinds) - set(KINDS)) + sorted(set(languages) - set(LANGUAGES))
    if unknown:
        raise TranslationDataError(
            f"unknown phrase kind or language {unknown}; kinds: {sorted(KINDS)}, "
            f"languages: {list(LANGUAGES)}"
        )
    if not languages or sum(kinds.values()) <= 0:
        raise TranslationDataError("data.languages and data.kinds must not be empty")
    names = list(kinds)
    weights = np.array([kinds[k] for k in names], dtype=float)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    seen: dict[str, str] = {}
    tries = 0
    while len(seen) < count:
        tries += 1
        if tries > 20 * count + 1000:
            raise TranslationDataError(
                f"cannot draw {count} distinct phrases of kinds {names}; lower the split sizes"
            )
        kind = names[int(rng.choice(len(names), p=weights))]
        lang = languages[int(rng.integers(0, len(languages)))]
        src, tgt = KINDS[kind](rng, lang, max_digits)
        if len(languages) > 1:
            src = f"<2{lang}> {src}"
        seen.setdefault(src, tgt)
    return list(seen), list(seen.values())


class NumberPhrasesDataModule(NumbersEnFrDataModule):
    """Number phrases of several kinds, English into several languages, offline.

    Args:
        kinds: relative frequency of each phrase kind (cardinal, ordinal, date, currency).
        languages: target languages (fr, es, de); each pair draws one uniformly.
        **kwargs: root, split sizes, vocabulary and batching settings (see
            `NumbersEnFrDataModule`); `max_digits` bounds the cardinals.
    """

    cache_name = "number_phrases"
    sides = ("src", "tgt")

    def __init__(
        self,
        kinds: Mapping[str, float] | None = None,
        languages: Sequence[str] = ("fr", "es"),
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.kinds = {str(k): float(v) for k, v in (kinds or dict.fromkeys(KINDS, 1.0)).items()}
        self.languages = [str(lang) for lang in languages]

    def _describe(self) -> str:
        return "the number-phrase corpus (number_phrases)"

    def _corpus_settings(self) -> dict:
        return {**super()._corpus_settings(), "kinds": self.kinds, "languages": self.languages}

    def _generate(self) -> dict[str, tuple[list[str], list[str]]]:
        sizes = self.sizes
        src, tgt = sample_phrases(sum(sizes.values()), self.kinds, self.languages,
                                  self.corpus_seed, self.max_digits)
        splits, start = {}, 0
        for split in ("test", "valid", "train"):
            end = start + sizes[split]
            splits[split] = (src[start:end], tgt[start:end])
            start = end
        return splits
