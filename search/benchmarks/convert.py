"""Converters to the compact table: from the published CSV exports and from the NATS-Bench API.

Published exports (a data folder holding these files):

- NATS size: `nats-sss/nats_sss_accuracy.csv` (`arch`, `cifar10_valid_acc_90ep`,
  `cifar100_acc_90ep`, `imagenet16_120_acc_90ep`: 90-epoch validation accuracies, no test
  accuracy) + `nats-sss/DERIVED_nats_sss_flops_params.csv` (`arch`,
  `{cifar10,cifar100,ImageNet16-120}_{flops_M,params_M}`).
- NAS-Bench-201: `nas-bench-201/minibench_12ep_arch_cell_accs.csv` (`cellstr`,
  `{cifar10,cifar100,imagenet}-{val,test}`: 12-epoch accuracies),
  `nas-bench-201/nats_tss_200ep_test_acc.csv` (`ArchitectureString`, `UniqueString`,
  `{CIFAR10,CIFAR100,ImageNet}TestAccuracy200Epochs`) and
  `nas-bench-201/DERIVED_nb201_flops_params.csv` (`arch_str`, costs as above).

Which NAS-Bench-201 figure is "validation": a strategy must see validation data only, and the
only validation accuracies in these exports are the 12-epoch ones. So `validation="12ep"`
(default) searches on the 12-epoch validation accuracy and reports the 200-epoch *test*
accuracy of the picks (the published figures: optimum 94.37 / 73.51 / 47.31).
`validation="200ep_test"` searches on the 200-epoch test accuracy itself, the setting of papers
that quote "accuracy found" on NAS-Bench-201; use it only to compare with them.

The official NATS-Bench files are read through the `nats_bench` package (imported only
here, only when asked), with per-seed results averaged (`is_random=False`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.benchmarks.errors import BenchmarkError
from search.benchmarks.table import DATASETS, normalise_dataset

SSS_DIR, NB201_DIR = "nats-sss", "nas-bench-201"
SSS_ACC, SSS_COST = "nats_sss_accuracy.csv", "DERIVED_nats_sss_flops_params.csv"
NB201_MINI, NB201_TEST = "minibench_12ep_arch_cell_accs.csv", "nats_tss_200ep_test_acc.csv"
NB201_COST = "DERIVED_nb201_flops_params.csv"
VALIDATION_CHOICES = ("12ep", "200ep_test")
# dataset → name used in the published cost columns and by the NATS-Bench API
_NATS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16_120": "ImageNet16-120"}


def find_file(data_dir: str | Path, subdir: str, name: str) -> Path | None:
    """`data_dir/subdir/name` or `data_dir/name`, whichever exists."""
    for candidate in (Path(data_dir) / subdir / name, Path(data_dir) / name):
        if candidate.is_file():
            return candidate
    return None


def _read(data_dir: str | Path, subdir: str, name: str, columns: Sequence[str]) -> pd.DataFrame:
    path = find_file(data_dir, subdir, name)
    if path is None:
        raise BenchmarkError(
            f"no {name} under {data_dir} (or {Path(data_dir) / subdir}); point the data "
            f"folder at the published exports (env NAS_DATA or --data-dir)"
        )
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BenchmarkError(f"{path} lacks columns {missing}; is it the published export?")
    return df


def _costs(df: pd.DataFrame, arch_col: str, ds: str) -> pd.DataFrame:
    name = _NATS_NAMES[ds]
    return pd.DataFrame(
        {
            "arch": df[arch_col].astype(str),
            "flops_M": df[f"{name}_flops_M"],
            "params_M": df[f"{name}_params_M"],
        }
    )


def _cost_columns() -> list[str]:
    return [f"{n}_{k}" for n in _NATS_NAMES.values() for k in ("flops_M", "params_M")]


def convert_nats_sss(data_dir: str | Path) -> pd.DataFrame:
    """The NATS size exports → compact table (90-epoch validation accuracy, no test accuracy)."""
    acc_cols = {
        "cifar10": "cifar10_valid_acc_90ep",
        "cifar100": "cifar100_acc_90ep",
        "imagenet16_120": "imagenet16_120_acc_90ep",
    }
    acc = _read(data_dir, SSS_DIR, SSS_ACC, ["arch", *acc_cols.values()])
    cost = _read(data_dir, SSS_DIR, SSS_COST, ["arch", *_cost_columns()])
    frames = []
    for ds, col in acc_cols.items():
        part = pd.DataFrame({"arch": acc["arch"].astype(str), "val_acc": acc[col]})
        part = part.merge(_costs(cost, "arch", ds), on="arch", how="left", validate="1:1")
        part.insert(1, "dataset", ds)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def convert_nb201(data_dir: str | Path, validation: str = "12ep") -> pd.DataFrame:
    """The NAS-Bench-201 exports → compact table (see the module docstring for `validation`)."""
    if validation not in VALIDATION_CHOICES:
        raise BenchmarkError(
            f"validation={validation!r} is not one of {list(VALIDATION_CHOICES)} (the figure "
            f"a strategy searches on)"
        )
    mini_cols = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16_120": "imagenet"}
    test_cols = {
        "cifar10": "CIFAR10TestAccuracy200Epochs",
        "cifar100": "CIFAR100TestAccuracy200Epochs",
        "imagenet16_120": "ImageNetTestAccuracy200Epochs",
    }
    test = _read(
        data_dir, NB201_DIR, NB201_TEST, ["ArchitectureString", "UniqueString", *test_cols.values()]
    )
    cost = _read(data_dir, NB201_DIR, NB201_COST, ["arch_str", *_cost_columns()])
    mini = None
    if validation == "12ep":
        need = ["cellstr"] + [f"{c}-val" for c in mini_cols.values()]
        mini = _read(data_dir, NB201_DIR, NB201_MINI, need)
    frames = []
    for ds in DATASETS:
        part = pd.DataFrame(
            {
                "arch": test["ArchitectureString"].astype(str),
                "test_acc": test[test_cols[ds]],
                "unique": test["UniqueString"].astype(str),
            }
        )
        if mini is not None:
            val = pd.DataFrame({"arch": mini["cellstr"].astype(str)})
            val["val_acc"] = mini[f"{mini_cols[ds]}-val"]
            part = part.merge(val, on="arch", how="left", validate="1:1")
        else:
            part["val_acc"] = part["test_acc"]
        part = part.merge(_costs(cost, "arch_str", ds), on="arch", how="left", validate="1:1")
        part.insert(1, "dataset", ds)
        frames.append(part)
    cols = ["arch", "dataset", "val_acc", "test_acc", "flops_M", "params_M", "unique"]
    return pd.concat(frames, ignore_index=True)[cols]


# --- the official NATS-Bench files ------------------------------------------------------------
def open_nats_bench(path: str | Path, space: str) -> Any:
    """`nats_bench.create(path, 'sss'|'tss', fast_mode=True)`, with an install hint if missing."""
    try:
        import nats_bench
    except ImportError:
        raise BenchmarkError(
            "reading the official NATS-Bench files needs the nats_bench package: "
            "pip install nats_bench (or convert the files once to a compact CSV elsewhere)"
        ) from None
    return nats_bench.create(str(path), space, fast_mode=True, verbose=False)


def convert_nats_bench(
    api: Any,
    space: str,
    datasets: Sequence[str] = DATASETS,
    hp: str | None = None,
    indices: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Query a NATS-Bench API object (from `open_nats_bench`) into a compact table.

    Args:
        api: the NATS-Bench API (anything with `arch`, `__len__`, `get_more_info`,
            `get_cost_info`).
        space: `sss` or `tss` (decides the default training schedule `hp`).
        datasets: datasets to export.
        hp: training epochs as NATS-Bench names them (`"90"` for size, `"200"` for topology).
        indices: architectures to export (default all; a fast-mode API reads one file each).
        progress: called with (done, total) after each architecture.

    CIFAR-10 validation accuracy comes from `cifar10-valid` (trained on half the training
    set, validated on the other half); the others from the `valid-accuracy` of their dataset.
    """
    hp = hp or ("90" if space in ("sss", "size") else "200")
    indices = list(range(len(api))) if indices is None else list(indices)
    rows = []
    for n, i in enumerate(indices, start=1):
        arch = str(api.arch(i))
        for ds in map(normalise_dataset, datasets):
            name = _NATS_NAMES[ds]
            if ds == "cifar10":
                info = api.get_more_info(i, "cifar10-valid", hp=hp, is_random=False)
                test = api.get_more_info(i, "cifar10", hp=hp, is_random=False)
                val_acc, test_acc = info.get("valid-accuracy"), test.get("test-accuracy")
            else:
                info = api.get_more_info(i, name, hp=hp, is_random=False)
                val_acc, test_acc = info.get("valid-accuracy"), info.get("test-accuracy")
            if val_acc is None:
                raise BenchmarkError(
                    f"NATS-Bench has no validation accuracy for arch {i} on {name} (hp={hp}); "
                    f"try another hp"
                )
            cost = api.get_cost_info(i, name, hp=hp)
            rows.append(
                {
                    "arch": arch,
                    "dataset": ds,
                    "val_acc": float(val_acc),
                    "test_acc": float("nan") if test_acc is None else float(test_acc),
                    "flops_M": float(cost["flops"]),
                    "params_M": float(cost["params"]),
                }
            )
        if progress is not None:
            progress(n, len(indices))
    return pd.DataFrame(rows)
