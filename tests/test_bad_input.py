"""Bad input, one case a line: each ends in exactly one `error: ...` line and exit code 2 (or in
the documented success), never a traceback, and the checkpoints, stores, tables and data given
as input are byte-identical afterwards.

A case names an entry (a base config), its overrides and a part of the expected message.
`{name}` in an override is a prepared input from the fixture `place_<name>` (`{ckpt}`: the
session's tiny checkpoint, `{readonly}`: a directory nobody may write...). The cases run in
this process through `run_cli` with Hydra's compose API; `test_cli_*` run a few of them as real
`train.py` / `search.py` processes. Bad input tested elsewhere, with its own fixtures: a
Transformer checkpoint resumed with other dictionaries or another space
(tests/supernet/test_transformer_cli.py), an unreachable Ray cluster
(tests/search/test_ray_evaluator.py), a store row with unparsable metrics and salvage
(tests/search/test_store_damage.py).
"""

from __future__ import annotations

import hashlib
import os
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from supernet.runtime import EXIT_USER_ERROR, main_cli, run_cli
from tests.conftest import CONF_DIR, ROOT, TINY_TRAIN
from tests.text_corpus import number_corpus

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
FAST_TRAIN = (*TINY_TRAIN, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
              "trainer.limit_val_batches=1")  # fmt: skip
ENTRIES: dict[str, tuple[str, tuple[str, ...]]] = {  # entry → (config, base overrides)
    "bench": ("search", ("space=nats_sss", "space.path={nas_data}", "strategy=random",
                         "budget=4", "wandb.enabled=false")),
    "search": ("search", ("supernet=mobilenetv3_tiny", "ckpt_path={ckpt}", "hardware=flops",
                          "strategy=random", "budget=2", "evaluation.max_val_batches=1",
                          "wandb.enabled=false", "store_path={tmp}/store.sqlite")),
    "train": ("train", FAST_TRAIN),
    "train_bare": ("train", ("logger=csv", "threads=1", "trainer.max_epochs=1")),
    "text": ("train", ("supernet=transformer_tiny", "logger=csv", "threads=1",
                       "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                       "trainer.limit_val_batches=1", "data=parallel_text", "data.root={corpus}",
                       "data.vocab_size=60", "data.max_tokens=400")),
}  # fmt: skip


def case(entry: str, *overrides: str, says: str | None, marks: Any = ()) -> Any:
    """One bad input: `says` is part of its one error line (None: the run must succeed)."""
    return pytest.param(entry, overrides, says, marks=marks, id=f"{entry}:{' '.join(overrides)}")


CASES = [
    # --- search.yaml's own keys (a tabular benchmark: nothing to load) ---
    case("bench", "budget=abc", says="budget=abc: expected an integer ≥ 1"),
    case("bench", "budget=10.7", says="budget=10.7: expected an integer ≥ 1"),
    case("bench", "budget=0", says="budget=0: expected an integer ≥ 1"),
    case("bench", "seed=abc", says="seed=abc: expected an integer in [0, 4294967295]"),
    case("bench", "seed=-1", says="seed=-1: expected an integer in [0"),
    case("bench", "threads=abc", says="threads=abc: expected an integer ≥ 1 or null"),
    case("bench", "threads=0", says="threads=0: expected an integer ≥ 1 or null"),
    case("bench", "constraints.macs=abc", says="constraints.macs=abc: expected a number > 0"),
    case("bench", "constraints.macs=-5", says="constraints.macs=-5: expected a number > 0"),
    case("bench", "constraints.macs=1", says="cannot be met"),
    case("bench", "relative_constraints.macs=-0.5",
         says="relative_constraints.macs=-0.5: expected a number in (0, 1] or null"),
    case("bench", "relative_constraints.macs=2", says="relative_constraints.macs=2: expected"),
    case("bench", "relative_constraints.macs=0.001",
         says="Raise relative_constraints.macs to at least"),
    case("bench", "+reference.macs=x", says="reference.macs=x: expected a number"),
    case("bench", "objectives=abc", says="objectives=abc: expected a list of strings"),
    case("bench", "objectives=[accuracy,speed]", says="unknown objective"),
    case("bench", "store_shared=maybe", says="store_shared=maybe: expected true or false"),
    case("bench", "workers=-1", says="workers=-1: expected an integer ≥ 0"),
    case("bench", "wandb.mode=sometimes", says="wandb.mode=sometimes: expected one of online"),
    case("bench", "wandb.enabled=2", says="wandb.enabled=2: expected true or false"),
    case("bench", "+evaluation.foo=1", says="evaluation.foo is not a setting of evaluation"),
    case("bench", "evaluation.max_val_batches=0", says="evaluation.max_val_batches=0: expected"),
    case("bench", "evaluation.translation.beam_size=0",
         says="evaluation.translation.beam_size=0: expected an integer ≥ 1"),
    case("bench", "evaluation.translation.tokenize=klingon",
         says="evaluation.translation.tokenize=klingon: expected one of"),
    case("bench", "ray.max_retries=-1", says="ray.max_retries=-1: expected an integer ≥ 0"),
    case("bench", "ray.connect_timeout=0", says="ray.connect_timeout=0: expected a number > 0"),
    case("bench", "paths.output_dir={readonly}/run", says="paths.output_dir="),
    case("bench", "budget=abc", "seed=x", says="seed=x: expected an integer in [0, 4294967295]; "
         "budget=abc: expected an integer ≥ 1"),
    case("bench", "threads=null", "constraints.macs=1e9", "seed=4294967295", says=None),
    case("bench", "relative_constraints.macs=1", says=None),
    # --- strategies: the keys of the chosen option ---
    case("bench", "strategy=layernas", "strategy.bucket_range=foo",
         says="strategy.bucket_range=foo: expected one of layer, global"),
    case("bench", "strategy=layernas", "strategy.fill=middle", says="strategy.fill=middle"),
    case("bench", "strategy=layernas", "strategy.buckets=0", says="strategy.buckets=0"),
    case("bench", "strategy=linas", "strategy.initial=1",
         says="strategy.initial=1: expected an integer ≥ 2"),
    case("bench", "strategy=linas", "strategy.ridge_alphas=[-1]",
         says="strategy.ridge_alphas=[-1]: expected a list of numbers > 0"),
    case("bench", "strategy=linas", "strategy.folds=abc", says="strategy.folds=abc"),
    case("bench", "strategy=mathnas", "strategy.engine=gurobi",
         says="strategy.engine=gurobi: expected one of auto, milp, dp"),
    case("bench", "strategy=mathnas", "strategy.context=foo", says="strategy.context=foo"),
    case("bench", "strategy=mathnas", "strategy.contexts_fraction=1.5",
         says="strategy.contexts_fraction=1.5: expected a number in (0, 1]"),
    case("bench", "strategy=mathnas", "strategy.top_k=2", "strategy.refit_rounds=3",
         says="strategy.refit_rounds=3 exceeds strategy.top_k=2"),
    case("bench", "strategy=mathnas", "strategy.block_table=/nowhere/table.yaml",
         says="strategy.block_table=/nowhere/table.yaml: no such file"),
    case("bench", "strategy=mathnas", "strategy.block_table={bad_table}",
         says="nodes not in the space: no_such_node; space nodes it lacks: layer0"),
    case("bench", "strategy=mathnas", "strategy.save_table={readonly}/table.yaml",
         says="strategy.save_table="),
    case("bench", "strategy=nsga2", "strategy.population=1", says="strategy.population=1"),
    case("bench", "strategy=evolution", "strategy.tournament=99",
         says="strategy.tournament=99 exceeds strategy.population=50"),
    case("bench", "strategy=evolution", "strategy.population=abc",
         says="strategy.population=abc"),
    case("bench", "strategy=random", "strategy.batch_size=0", says="strategy.batch_size=0"),
    case("bench", "+strategy.no_such_option=1",
         says="strategy.no_such_option is not a setting of RandomSearch"),
    # --- tabular benchmarks ---
    case("bench", "space.dataset=mnist", says="unknown dataset 'mnist'"),
    case("bench", "space.path=/nowhere", says="no nats_sss data at /nowhere"),
    case("bench", "space.hp=[1]", says="space.hp=[1]: expected a string or null"),
    case("bench", "+space.foo=1", says="space.foo is not a setting of load_benchmark"),
    # --- search on a checkpoint: hardware, evaluation, checkpoint, store ---
    case("search", "evaluation.device=cuda", says="evaluation.device=cuda needs a CUDA GPU",
         marks=NO_GPU),
    case("search", "evaluation.device=tpu", says="evaluation.device=tpu: expected cpu, cuda"),
    case("search", "hardware=gpu", says="hardware=gpu needs a CUDA GPU", marks=NO_GPU),
    case("search", "hardware=cpu_lut", "hardware.path={readonly}/lut.yaml",
         says="hardware.path="),
    case("search", "hardware=cpu", "hardware.meter.trim=0.7",
         says="hardware.meter.trim=0.7: expected a number in [0, 0.5)"),
    case("search", "hardware=cpu", "hardware.meter.repeats=0", says="hardware.meter.repeats=0"),
    case("search", "hardware=cpu", "hardware.meter.clock=sundial",
         says="hardware.meter.clock=sundial: expected one of wall, process"),
    case("search", "hardware=cpu_time", "hardware.meter.threads=2", says="threads=1"),
    case("search", "hardware=device", says="hardware=device needs hardware.path"),
    case("search", "hardware=device", "hardware.path={tmp}/kit/latency.csv",
         says="latency.csv does not exist: write a kit with `python -m search.device_kit"),
    case("search", "hardware=device", "hardware.min_rows=2", says="hardware.min_rows=2"),
    case("search", "hardware=device", "hardware.features=pixels",
         says="hardware.features=pixels: expected one of costs, onehot"),
    case("search", "hardware=cpu_lut", "hardware.passes=0", says="hardware.passes=0"),
    case("search", "hardware=cpu_lut", "hardware.passes=100",
         says="hardware.passes=100 exceeds hardware.meter.repeats=50"),
    case("search", "ckpt_path={tmp}/a/missing.ckpt", says="no checkpoint at"),
    case("search", "ckpt_path={corrupt_ckpt}", says="is corrupt or unreadable"),
    case("search", "ckpt_path={pickled_ckpt}", says="If you trust it, pass ckpt_trusted=true"),
    case("search", "supernet=transformer_tiny", says="holds a 'mobilenetv3' supernet"),
    case("search", "objectives=[accuracy,speed]", says="unknown objective"),
    case("search", "objectives=[bleu,macs]", says="'bleu' is not measured here"),
    case("search", "constraints.macs=10", says="cannot be met"),
    case("search", "store_path={foreign_store}", says="another"),
    case("search", "store_path={tmp}", says="is a directory; give the path of a file"),
    case("search", "store_path={damaged_store}",
         says="is damaged (database disk image is malformed)"),
    case("search", "store_path={readonly}/s.sqlite", says="cannot be written"),
    # --- train.yaml and the training groups ---
    case("train", "seed=abc", says="seed=abc: expected an integer in [0, 4294967295]"),
    case("train", "threads=abc", says="threads=abc: expected an integer ≥ 1 or null"),
    case("train", "trainer.max_epochs=abc", says="trainer.max_epochs=abc: expected an integer"),
    case("train", "trainer.max_epochs=-1", says="trainer.max_epochs=-1: expected an integer ≥ 1"),
    case("train", "trainer.precision=17", says="trainer.precision=17: expected one of"),
    case("train", "trainer.devices=0", says="trainer.devices=0: expected a count ≥ 1"),
    case("train", "trainer.accelerator=quantum", says="trainer.accelerator=quantum"),
    case("train", "trainer.limit_train_batches=1.5",
         says="trainer.limit_train_batches=1.5: expected a count ≥ 0 or a fraction in [0, 1]"),
    case("train", "trainer=gpu", says="trainer.accelerator=gpu needs a CUDA GPU", marks=NO_GPU),
    case("train", "+trainer.foo=1", says="trainer.foo is not a setting of Trainer"),
    case("train", "+supernet.foo=1", says="supernet.foo is not a setting of MobileNetV3Supernet"),
    case("train", "+callbacks.last_checkpoint.foo=1",
         says="callbacks.last_checkpoint.foo is not a setting of ModelCheckpoint"),
    case("train", "data.batch_size=0", says="data.batch_size=0: expected an integer ≥ 1"),
    case("train", "data.num_workers=-1", says="data.num_workers=-1"),
    case("train", "data.calib_images=abc", says="data.calib_images=abc"),
    case("train", "data.pin_memory=sometimes", says="data.pin_memory=sometimes: expected true"),
    case("train", "data.distortion.rotation=-3", says="data.distortion="),
    case("train_bare", "data=digits", "data.augment=sometimes",
         says="data.augment=sometimes: expected true"),
    case("train", "module.optimizer.lr=-1", says="module.optimizer.lr=-1: expected a number ≥ 0"),
    case("train", "module.label_smoothing=1.5", says="module.label_smoothing=1.5"),
    case("train", "recipe.num_random=-1", says="recipe.num_random=-1: expected an integer ≥ 0"),
    case("train_bare", "recipe=progressive", "recipe.phases=[]", says="recipe.phases is empty"),
    case("train", "logger=wandb", "logger.wandb.mode=sometimes",
         says="logger.wandb.mode=sometimes"),
    case("train", "trainer=ddp_cpu", "trainer.sync_batchnorm=true", says="elastic BatchNorm"),
    case("train", "paths.output_dir={readonly}/run", says="paths.output_dir="),
    case("train_bare", "data=imagenet", says="ImageFolder data needs its folder: add data.root"),
    case("train_bare", "data=imagenet", "data.root={empty_images}",
         says="is not an ImageFolder tree"),
    case("train", "ckpt_path={corrupt_ckpt}", says="is corrupt or unreadable"),
    case("train", "ckpt_path={ckpt}", "trainer.max_epochs=1",
         says="has trained 2 epochs, so trainer.max_epochs=1 leaves nothing to train"),
    case("train_bare", "ckpt_path={ckpt}", "supernet=mobilenetv3",
         says="another configuration of its space (depths: [1, 2] → [2, 3, 4]; expand_ratios: "
              "[3, 6] → [3, 4, 6]; kernel_sizes: [3, 5] → [3, 5, 7])"),
    case("train_bare", "ckpt_path={ckpt}", "supernet=transformer_tiny",
         says="holds a MobileNetV3Supernet (space 'mobilenetv3'), but supernet= configures a "
              "TransformerSupernet"),
    # --- translation data ---
    case("text", "data.spm_type=wordpiece", says="data.spm_type=wordpiece: expected one of"),
    case("text", "module.lr_schedule=linear", says="module.lr_schedule=linear: expected"),
    case("train_bare", "supernet=transformer_tiny", "data=wmt14_en_de", "data.root={databin}",
         "data.bpe=none",
         says="dict.de.txt is missing (found ['dict.en.txt'])"),
    case("text", "data.root={long_corpus}", says="1 test pairs"),
]


def _placeholders(overrides: tuple[str, ...]) -> set[str]:
    return {name for o in overrides for _, name, _, _ in string.Formatter().parse(o) if name}


def _digests(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of every file under the given inputs (the bytes a run must leave alone)."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def _unchanged(inputs: list[Path], before: dict[str, str]) -> bool:
    """Every input file is still there with the same bytes (caches may have been added)."""
    after = _digests(inputs)
    return {name: after.get(name) for name in before} == before


def _prepare(request: pytest.FixtureRequest, tmp_path: Path, overrides: tuple[str, ...]):
    """The overrides with `{name}` filled in, and the input paths they name."""
    places: dict[str, Any] = {"tmp": tmp_path}
    for name in _placeholders(overrides) - {"tmp"}:
        places[name] = request.getfixturevalue(f"place_{name}")
    inputs = [Path(v) for k, v in places.items() if k != "tmp" and Path(v).exists()]
    return [o.format(**places) for o in overrides], inputs


def _attempt(entry: str, overrides: list[str], tmp_path: Path) -> int:
    """Run an entry in this process through `run_cli`; its exit code."""
    from search.pipeline import run
    from supernet.pipeline import train

    config, _ = ENTRIES[entry]
    paths = [f"paths.output_dir={tmp_path}/run", f"paths.log_dir={tmp_path}/logs",
             f"paths.data_dir={tmp_path}/data"]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config, overrides=[*paths, *overrides])
    try:
        run_cli(train if config == "train" else run, cfg)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.mark.parametrize(("entry", "overrides", "says"), CASES)
def test_bad_input_is_one_clear_message(
    entry: str, overrides: tuple[str, ...], says: str | None, request: pytest.FixtureRequest,
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None,
) -> None:  # fmt: skip
    base = ENTRIES[entry][1]
    filled, inputs = _prepare(request, tmp_path, (*base, *overrides))
    before = _digests(inputs)
    code = _attempt(entry, filled, tmp_path)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err
    if says is None:
        assert code == 0 and not errors, err[-2000:]
    else:
        assert code == EXIT_USER_ERROR, err[-2000:]
        assert len(errors) == 1, err[-2000:]
        assert says in errors[0], errors[0]
    assert _unchanged(inputs, before)


def test_every_case_is_distinct() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


# --- prepared inputs: `{name}` in a case -----------------------------------------------------
@pytest.fixture(scope="session")
def place_ckpt(tiny_ckpt: Path) -> Path:
    return tiny_ckpt


@pytest.fixture(scope="session")
def place_nas_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.search.synthetic_tables import sss_table, write_sss_exports

    root = tmp_path_factory.mktemp("nas_data")
    write_sss_exports(root, sss_table())
    return root


@pytest.fixture(scope="session")
def place_readonly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory this process cannot write: mode 555, or /sys where root ignores modes."""
    folder = tmp_path_factory.mktemp("readonly")
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys/nasframework-readonly")):
        try:
            probe = candidate if candidate.exists() else candidate.parent
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError:
            return candidate
    pytest.skip("no directory here refuses this process's writes")


@pytest.fixture(scope="session")
def place_corrupt_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corrupt") / "last.ckpt"
    path.write_bytes(b"not a checkpoint")
    return path


@pytest.fixture(scope="session")
def place_pickled_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint holding a Python object (loading it would run code from the file)."""
    path = tmp_path_factory.mktemp("pickled") / "last.ckpt"
    torch.save({"nas": {}, "note": Fraction(1, 3)}, path)
    return path


@pytest.fixture(scope="session")
def place_foreign_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The measurement store of another checkpoint."""
    from search.store import Store

    path = tmp_path_factory.mktemp("store") / "foreign.sqlite"
    with Store(path, checkpoint="0" * 64) as other:
        other.put("toy", "0" * 64, "a", {}, {"accuracy": 1.0})
    return path


@pytest.fixture(scope="session")
def place_damaged_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one page of its measurements overwritten by random bytes."""
    import random

    from search.store import Store

    path = tmp_path_factory.mktemp("damaged") / "m.sqlite"
    with Store(path) as store:
        for i in range(300):
            store.put("toy", "ck", f"a{i}", {"metric": "accuracy"},
                      {"accuracy": float(i), "note": "x" * 200})
    data = bytearray(path.read_bytes())
    page = 4096
    leaves = [i for i in range(1, len(data) // page) if data[i * page] == 0x0A]
    middle = leaves[len(leaves) // 2]
    data[middle * page:(middle + 1) * page] = random.Random(0).randbytes(page)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def place_bad_table(place_nas_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MathNAS block table whose first node is not a node of the space."""
    from search.benchmarks import load_benchmark

    space = load_benchmark("nats_sss", path=str(place_nas_data)).space
    option: Callable[[int], dict] = lambda j: {  # noqa: E731
        "name": f"o{j}", "acc_drop": float(j > 0), "flops": -float(j > 0),
        "macs": -float(j > 0)}  # fmt: skip
    nodes = [{"name": "no_such_node" if i == 0 else n.name, "reference": 0,
              "options": [option(j) for j in range(n.num_options)]}
             for i, n in enumerate(space.nodes)]  # fmt: skip
    doc = {"metric": "accuracy", "flops_metric": "macs", "mean_flops": 10.0, "columns": ["macs"],
           "base": {"accuracy": 50.0, "flops": 10.0, "macs": 10.0}, "nodes": nodes}
    path = tmp_path_factory.mktemp("block_table") / "table.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="session")
def place_empty_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder dataset whose train/ and val/ hold no class folders."""
    root = tmp_path_factory.mktemp("images")
    (root / "train").mkdir()
    (root / "val").mkdir()
    return root


@pytest.fixture(scope="session")
def place_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return number_corpus(tmp_path_factory.mktemp("text") / "corpus")


@pytest.fixture(scope="session")
def place_long_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus whose test split has one sentence longer than max_positions."""
    corpus = number_corpus(tmp_path_factory.mktemp("long") / "corpus")
    with (corpus / "test.en").open("a") as f:
        f.write("seven hundred and seventy-seven " * 20 + "\n")
    with (corpus / "test.fr").open("a") as f:
        f.write("sept cent soixante-dix-sept\n")
    return corpus


@pytest.fixture(scope="session")
def place_databin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fairseq data-bin folder with the source dictionary only."""
    root = tmp_path_factory.mktemp("bin")
    (root / "dict.en.txt").write_text("a 1\n")
    return root


# --- the real command lines print no traceback either ----------------------------------------
def _cli(script: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, script, *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "overrides", "says"),
    [
        ("search.py", ("budget=abc", "hydra.run.dir={tmp}/run"), "budget=abc: expected"),
        ("train.py", ("trainer.max_epochs=abc", "hydra.run.dir={tmp}/run"),
         "trainer.max_epochs=abc: expected"),
        ("search.py", ("hydra.run.dir={readonly}/run",), "hydra.run.dir="),
        ("search.py", ("space=nats_sss", "space.path={nas_data}", "+strategy.no_such_option=1",
                       "hydra.run.dir={tmp}/run"), "strategy.no_such_option is not a setting"),
        ("train.py", ("ckpt_path={ckpt}", "hydra.run.dir={tmp}/run"),
         "another configuration of its space"),
        # command lines Hydra cannot compose: worded by `main_cli`, not printed by Hydra
        ("search.py", ("strategy=no_such_strategy", "hydra.run.dir={tmp}/run"),
         "Could not find 'strategy/no_such_strategy'. Available options in 'strategy': "
         "evolution, layernas, linas"),
        ("train.py", ("wandb.enabled=false", "hydra.run.dir={tmp}/run"),
         "To append to your config use +wandb.enabled=false (Key 'wandb' is not in struct)"),
        ("search.py", ("budget=[1,2", "hydra.run.dir={tmp}/run"),
         "cannot parse the override 'budget=[1,2'"),
    ],
)
def test_cli_prints_one_error_line_and_no_traceback(
    script: str, overrides: tuple[str, ...], says: str, request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:  # fmt: skip
    filled, inputs = _prepare(request, tmp_path, overrides)
    before = _digests(inputs)
    done = _cli(script, *filled)
    assert done.returncode == EXIT_USER_ERROR, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert _unchanged(inputs, before)


def test_hydra_errors_inside_a_job_are_not_worded_as_bad_input(monkeypatch, capsys) -> None:
    """`main_cli` words only what Hydra raises before a job runs; the same exception raised
    inside a job (a bug) keeps its traceback, and HYDRA_FULL_ERROR is left as it was."""
    from hydra.errors import ConfigCompositionException, MissingConfigException

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def composing() -> None:
        raise MissingConfigException("In 'search': Could not find 'strategy/x'\n\n"
                                     "Available options in 'strategy':\n\trandom\n\tlinas\n"
                                     "Config search path:\n\tprovider=main, path=file://conf")

    with pytest.raises(SystemExit) as done:
        main_cli(composing)
    assert done.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        "error: In 'search': Could not find 'strategy/x'. Available options in 'strategy': "
        "random, linas\n"
    )

    def job(cfg: object) -> None:
        raise ConfigCompositionException("raised by the job's own code")

    with pytest.raises(ConfigCompositionException, match="the job's own code"):
        main_cli(lambda: run_cli(job, None))  # type: ignore[arg-type]
    assert "HYDRA_FULL_ERROR" not in os.environ
