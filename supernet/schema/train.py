"""The schema of `train.yaml`: its top-level keys and the options of trainer, data, module,
optimizer, recipe and logger, each found by the `_target_` of the node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

from supernet.data.translation.vocab import BPE_KINDS
from supernet.schema.core import setting
from supernet.transformer.module import SCHEDULES

MAX_SEED = 2**32 - 1  # numpy and Lightning take seeds in [0, 2**32)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
SENTENCEPIECE_TYPES = ("unigram", "bpe", "char", "word")


def _literals(hint: Any) -> tuple[Any, ...]:
    """The values of a `Literal`, or of a `Union` of them (Lightning's precision inputs)."""
    return tuple(v for a in get_args(hint) for v in (_literals(a) if get_args(a) else (a,)))


PRECISIONS = _literals(_PRECISION_INPUT)


def bleu_tokenizers() -> tuple[str, ...] | None:
    """sacreBLEU's tokenizer names (None without the translation extra: nothing to check)."""
    try:
        from sacrebleu.metrics.bleu import BLEU
    except ImportError:
        return None
    return tuple(BLEU.TOKENIZERS)


BLEU_TOKENIZERS = bleu_tokenizers()


def _count(value: Any) -> bool:
    """`trainer.devices`: a count ≥ 1, -1 (all), `auto`, or a list of device indices."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1 or value == -1
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, int) and v >= 0 for v in value)
    return value == "auto" or (isinstance(value, str) and value.replace(",", "").isdigit())


def _batches(value: Any) -> bool:
    """`trainer.limit_*_batches`: a count of batches ≥ 0 or a fraction of them in [0, 1]."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _deterministic(value: Any) -> bool:
    return isinstance(value, bool) or value == "warn"


@dataclass
class TrainConfig:
    """`train.yaml`'s own keys."""

    task_name: str = setting("name of the run directory's parent (train)")
    experiment_name: str = setting("W&B group of the run")
    seed: int = setting("seed of weights, data order and sampled subnets", ge=0, le=MAX_SEED)
    threads: int | None = setting("CPU threads of torch (null: torch's default)", ge=1)
    ckpt_path: str | None = setting("checkpoint to resume training from")
    ckpt_trusted: bool = setting("load a ckpt_path/init_from holding Python objects")
    init_from: str | None = setting("checkpoint whose supernet weights start a new run")
    tags: list[str] = setting("W&B tags of the run")
    optimized_metric: str | None = setting("metric train.py returns to a Hydra sweeper")


@dataclass
class Trainer:
    """`trainer=`: Lightning's Trainer."""

    accelerator: str = setting("device kind", choices=ACCELERATORS)
    devices: Any = setting("devices per node", check=_count,
                           expect="a count ≥ 1, -1 (all), auto, or a list of device indices")
    num_nodes: int = setting("machines of a distributed run", ge=1)
    max_epochs: int | None = setting("epochs to train (null: until max_steps)", ge=1)
    min_epochs: int | None = setting("epochs trained at least", ge=0)
    max_steps: int = setting("optimizer steps to train (-1: no limit)", ge=-1)
    precision: Any = setting("numeric precision", choices=PRECISIONS)
    log_every_n_steps: int = setting("steps between two logged training metrics", ge=1)
    check_val_every_n_epoch: int | None = setting("epochs between two validations", ge=1)
    limit_train_batches: Any = setting("training batches per epoch", check=_batches,
                                       expect="a count ≥ 0 or a fraction in [0, 1] or null")
    limit_val_batches: Any = setting("validation batches per validation", check=_batches,
                                     expect="a count ≥ 0 or a fraction in [0, 1] or null")
    num_sanity_val_steps: int = setting("validation batches before training (-1: all)", ge=-1)
    accumulate_grad_batches: int = setting("batches per optimizer step", ge=1)
    gradient_clip_val: float | None = setting("gradient norm clip (null: none)", ge=0)
    enable_progress_bar: bool = setting("show the progress bar")
    benchmark: bool | None = setting("cuDNN autotuning of convolution algorithms")
    enable_checkpointing: bool = setting("write checkpoints")
    deterministic: Any = setting("deterministic algorithms", check=_deterministic,
                                 expect="true, false or warn")
    default_root_dir: str = setting("Lightning's output directory")
    use_distributed_sampler: bool = setting("shard the data across processes")
    sync_batchnorm: bool = setting("must stay false: elastic BatchNorm cannot be synchronised")


@dataclass
class ImageData:
    """Keys shared by the image datamodules."""

    batch_size: int = setting("images per training and evaluation batch", ge=1)
    num_workers: int | None = setting("data-loader worker processes (null: by device)", ge=0)
    pin_memory: bool | None = setting("page-locked batches (null: on a GPU)")
    calib_images: int = setting("training images that recalibrate a subnet's BatchNorm", ge=1)
    calib_batch_size: int = setting("batch size of the recalibration passes", ge=1)
    channels: int = setting("image channels", ge=1)
    resolutions: list[int] = setting("elastic input resolutions", ge=1)
    stem_stride: int = setting("stride of the supernet's stem (the supernet checks 1 or 2)")
    first_unit_stride: int = setting("stride of the first elastic unit (likewise)")
    seed: int = setting("seed of the splits and of the calibration subset", ge=0, le=MAX_SEED)
    epoch_val_size: int | None = setting("validation images scored each epoch (null: all)", ge=1)


def _distortion(value: Any) -> bool:
    """`data.distortion`: a mapping of known distortion names to non-negative numbers."""
    from supernet.data.glyph_render import Distortion

    return value is None or (hasattr(value, "items") and all(
        k in Distortion.__dataclass_fields__ and isinstance(v, (int, float))
        and not isinstance(v, bool) and v >= 0 for k, v in value.items()))


@dataclass
class GlyphsData(ImageData):
    """`data=glyphs` (the default)."""

    root: str | None = setting("cache folder of the generated images")
    image_size: int = setting("image side in pixels", ge=8)
    num_classes: int = setting("classes: one per character of `classes`", ge=2)
    classes: str = setting("the characters drawn, one class each")
    fonts: list[str] | None = setting("font names or files (null: matplotlib's text fonts)")
    strokes: list[int] = setting("extra stroke widths to draw with", ge=0)
    train_size: int = setting("training images", ge=1)
    val_size: int = setting("validation images", ge=1)
    test_size: int = setting("test images", ge=1)
    distortion: Any = setting("distortion strengths", check=_distortion,
                              expect="a mapping of glyph_render.Distortion fields to numbers ≥ 0")


@dataclass
class DigitsData(ImageData):
    """`data=digits`."""

    num_classes: int = setting("classes of the dataset", ge=1)
    val_size: int = setting("training images held out for validation", ge=1)
    image_size: int = setting("image side in pixels", ge=1)
    test_size: int = setting("images of the test split", ge=1)
    augment: bool = setting("random affine augmentation of training images")
    batch_augment: bool | None = setting("augment whole batches on their device (null: on a GPU)")


@dataclass
class CIFARData(ImageData):
    """`data=cifar10` / `cifar100`."""

    num_classes: int = setting("classes of the dataset", ge=1)
    val_size: int = setting("training images held out for validation", ge=1)
    name: str = setting("which CIFAR", choices=("cifar10", "cifar100"))
    root: str = setting("folder of the torchvision files")
    download: bool = setting("download the files when missing")


def _holdout(value: Any) -> bool:
    """A fraction in (0, 1) or a count ≥ 1."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (0 < value < 1 or (value >= 1 and float(value).is_integer())))


@dataclass
class ImageFolderData(ImageData):
    """`data=imagenet` / `imagefolder`: any dataset in the ImageFolder layout."""

    root: str | None = setting("folder holding train/ (and val/)")
    image_size: int = setting("training crop and evaluation size", ge=1)
    num_classes: int | None = setting("classes (null: the class folders of train/)", ge=1)
    val_size: Any = setting("held out of train/ for validation", check=_holdout,
                            expect="a fraction in (0, 1) or a count ≥ 1")
    augment: Any = setting("training options of timm.data.create_transform")
    crop_pct: float = setting("evaluation centre-crop fraction", gt=0, le=1)
    interpolation: str = setting("resampling of the crops",
                                 choices=("bilinear", "bicubic", "random"))
    mean: list[float] = setting("normalisation mean")
    std: list[float] = setting("normalisation standard deviation", gt=0)


@dataclass
class TextData:
    """Keys shared by the translation datamodules."""

    max_tokens: int = setting("tokens per training batch", ge=1)
    max_tokens_valid: int | None = setting("tokens per evaluation batch", ge=1)
    max_positions: int = setting("longest sentence in tokens", ge=1)
    skip_long_eval: bool = setting("drop evaluation pairs longer than max_positions")
    num_workers: int = setting("data-loader worker processes", ge=0)
    seed: int = setting("seed of the batch order", ge=0, le=MAX_SEED)


@dataclass
class NumbersData(TextData):
    """`data=numbers_en_fr`."""

    root: str | None = setting("cache folder of the corpus")
    num_train: int = setting("training pairs", ge=1)
    num_valid: int = setting("validation pairs", ge=1)
    num_test: int = setting("test pairs", ge=1)
    max_digits: int = setting("longest number in digits", ge=1, le=15)
    vocab_size: int = setting("sentencepiece vocabulary size", ge=8)
    spm_type: str = setting("sentencepiece model type", choices=SENTENCEPIECE_TYPES)
    joint_vocab: bool = setting("one vocabulary for both languages")
    corpus_seed: int = setting("seed of the corpus", ge=0, le=MAX_SEED)


@dataclass
class NumberPhrasesData(NumbersData):
    """`data=number_phrases` (the default of supernet=transformer)."""

    kinds: dict[str, float] = setting("relative frequency of each kind of phrase", ge=0)
    languages: list[str] = setting("target languages")


@dataclass
class ParallelTextData(TextData):
    """`data=parallel_text`."""

    root: str = setting("folder of {train,valid,test}.{src,tgt}")
    src: str = setting("source language suffix")
    tgt: str = setting("target language suffix")
    vocab_size: int = setting("sentencepiece vocabulary size", ge=8)
    spm_type: str = setting("sentencepiece model type", choices=SENTENCEPIECE_TYPES)
    joint_vocab: bool = setting("one vocabulary for both languages")


@dataclass
class FairseqData(TextData):
    """`data=wmt14_en_de`: fairseq-binarized data."""

    root: str = setting("the data-bin folder")
    src: str = setting("source language suffix")
    tgt: str = setting("target language suffix")
    bpe: str = setting("how subwords join when detokenising", choices=BPE_KINDS)
    dataset_impl: str | None = setting("fairseq dataset format (null: inferred)")
    joint_vocab: bool = setting("require one joined dictionary")
    valid_split: str = setting("validation split name")
    test_split: str = setting("test split name")


@dataclass
class ClassificationModule:
    """`module=classification`."""

    warmup_epochs: float = setting("epochs of linear learning-rate warm-up", ge=0)
    label_smoothing: float = setting("label smoothing of the loss", ge=0, lt=1)
    kd_ratio: float = setting("weight of the teacher's soft targets", ge=0)
    num_random_eval: int = setting("random subnets validated each epoch", ge=0)
    eval_seed: int = setting("seed of the validated random subnets", ge=0, le=MAX_SEED)
    channels_last: bool = setting("NHWC memory format")
    mixup: Any = setting("timm.data.Mixup settings (alphas 0: off)")
    ema_decay: float | None = setting("moving average of the weights (null: none)", ge=0, lt=1)
    validate_ema: bool = setting("validation and search score the EMA weights")


@dataclass
class TranslationModule:
    """`module=translation`."""

    lr_schedule: str = setting("learning-rate schedule", choices=SCHEDULES)
    warmup_steps: int = setting("steps of linear warm-up", ge=0)
    min_lr_ratio: float = setting("final learning rate / peak (cosine)", ge=0, le=1)
    label_smoothing: float = setting("label smoothing of the loss", ge=0, lt=1)
    clip_norm: float = setting("gradient norm clip (0: none)", ge=0)
    beam_size: int = setting("beam width of validation decoding", ge=1)
    len_penalty: float = setting("beam-search length penalty")
    max_len_a: float = setting("longest output = a × source length + b", ge=0)
    max_len_b: int = setting("longest output = a × source length + b", ge=0)
    bleu_tokenize: str = setting("sacreBLEU tokenizer", choices=BLEU_TOKENIZERS)
    compound_split: bool = setting("split hyphenated compounds before BLEU")


@dataclass
class SGD:
    """`module.optimizer` of classification."""

    lr: float = setting("peak learning rate (0: the weights stay as they are)", ge=0)
    momentum: float = setting("momentum", ge=0, lt=1)
    nesterov: bool = setting("Nesterov momentum")
    weight_decay: float = setting("L2 weight decay", ge=0)


@dataclass
class TimmOptimizer:
    """`module.optimizer` of classification: timm.optim.create_optimizer_v2."""

    opt: str = setting("timm optimizer name (sgd, adamw, lamb...)")
    lr: float = setting("peak learning rate (0: the weights stay as they are)", ge=0)
    momentum: float = setting("momentum", ge=0, lt=1)
    weight_decay: float = setting("weight decay", ge=0)


@dataclass
class TimmScheduler:
    """`module.scheduler` of classification: timm.scheduler.create_scheduler_v2."""

    sched: str = setting("schedule", choices=("cosine", "step", "multistep", "poly", "tanh",
                                              "plateau", "constant", "none"))
    min_lr: float = setting("floor of the decay", ge=0)
    warmup_lr: float = setting("learning rate at the start of the warm-up", ge=0)


@dataclass
class Adam:
    """`module.optimizer` of translation."""

    lr: float = setting("peak learning rate (0: the weights stay as they are)", ge=0)
    betas: list[float] = setting("moment decay rates", ge=0, lt=1)
    eps: float = setting("denominator term", gt=0)
    weight_decay: float = setting("L2 weight decay", ge=0)


@dataclass
class SandwichRecipe:
    """`recipe=sandwich`."""

    num_random: int = setting("random subnets per step besides largest and smallest", ge=0)
    inplace_distill: bool = setting("the largest subnet teaches the others")
    seed: int = setting("seed of the sampled subnets", ge=0, le=MAX_SEED)


@dataclass
class RandomRecipe:
    """`recipe=random`."""

    seed: int = setting("seed of the sampled subnets", ge=0, le=MAX_SEED)


@dataclass
class ProgressiveRecipe:
    """`recipe=progressive`."""

    phases: list[Any] = setting("the phases in order (checked by the recipe: name, epochs...)")
    seed: int = setting("seed of the sampled subnets", ge=0, le=MAX_SEED)


@dataclass
class WandbLoggerConfig:
    """`logger=wandb`."""

    project: str = setting("W&B project")
    mode: str | None = setting("online, offline or disabled (null: online with an account)",
                               choices=("online", "offline", "disabled", None))
    log_model: Any = setting("upload checkpoints", choices=(True, False, "all"))


# `_target_` (defining module path) → the schema of that option
TRAIN_OPTIONS: dict[str, type] = {
    "lightning.pytorch.trainer.trainer.Trainer": Trainer,
    "supernet.data.glyphs.GlyphsDataModule": GlyphsData,
    "supernet.data.digits.DigitsDataModule": DigitsData,
    "supernet.data.cifar.CIFARDataModule": CIFARData,
    "supernet.data.imagenet.ImageFolderDataModule": ImageFolderData,
    "supernet.data.translation.numbers.NumbersEnFrDataModule": NumbersData,
    "supernet.data.translation.phrases.NumberPhrasesDataModule": NumberPhrasesData,
    "supernet.data.translation.parallel_text.ParallelTextDataModule": ParallelTextData,
    "supernet.data.translation.fairseq_bin.FairseqBinDataModule": FairseqData,
    "supernet.module.SupernetModule": ClassificationModule,
    "supernet.transformer.module.TranslationModule": TranslationModule,
    "torch.optim.sgd.SGD": SGD,
    "timm.optim._optim_factory.create_optimizer_v2": TimmOptimizer,
    "timm.scheduler.scheduler_factory.create_scheduler_v2": TimmScheduler,
    "torch.optim.adam.Adam": Adam,
    "torch.optim.adamw.AdamW": Adam,
    "supernet.recipes.SandwichRule": SandwichRecipe,
    "supernet.recipes.RandomSubnet": RandomRecipe,
    "supernet.recipes.ProgressiveShrinking": ProgressiveRecipe,
    "lightning.pytorch.loggers.wandb.WandbLogger": WandbLoggerConfig,
}
# groups whose nodes are checked (supernet and callbacks: only for keys their classes lack)
TRAIN_GROUPS = ("trainer", "data", "module", "recipe", "logger", "callbacks", "supernet")
