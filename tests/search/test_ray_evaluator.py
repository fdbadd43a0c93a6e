"""Validations on two local Ray workers: the serial results exactly, a killed or hanging
worker costs nothing, an unreachable cluster is one clear error.

The checkpoint is the tiny supernet with seeded random weights, written in the training
pipeline's format: the comparisons need distinct, deterministic accuracies, not good ones.
"""

from __future__ import annotations

import collections
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from search.evaluation import distributed
from search.evaluation.distributed import DistributedError, RayEvaluator
from search.evaluation.images import ClassificationEvaluator
from search.store import Store
from supernet.checkpoint import STATE_PREFIX, load_supernet, supernet_record
from supernet.errors import NASError
from supernet.space import Arch
from tests.pipelines.conftest import compose_in

ray = pytest.importorskip("ray", reason="the distributed extra: pip install -e '.[distributed]'")

pytestmark = pytest.mark.slow

SMALL_DATA = ("data.calib_images=128", "data.train_size=256", "data.val_size=128",
              "data.test_size=128")
# evolution adapts to the accuracies it sees, so a wrong or reordered result changes the table
SEARCH = (
    "supernet=mobilenetv3_tiny", "hardware=flops", "strategy=evolution",
    "strategy.population=4", "strategy.tournament=2", "strategy.batch_size=3", "budget=10",
    "seed=3", "evaluation.max_val_batches=1", "wandb.enabled=false", "ray.start_timeout=120",
    "ray.task_timeout=120",
)
TIMEOUTS = {"start_timeout": 120.0, "task_timeout": 120.0}


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local two-CPU Ray cluster for the module (evaluators reuse an initialised Ray)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "train" / "runs" / "random"
    cfg = compose_in("train", out, "supernet=mobilenetv3_tiny", *SMALL_DATA)
    torch.manual_seed(0)
    supernet = instantiate(cfg.supernet)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    path = out / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {STATE_PREFIX + k: v for k, v in supernet.state_dict().items()},
                "nas": supernet_record(supernet, data_config=data)}, path)
    return path


def _search(root: Path, name: str, ckpt: Path, store: Path, *overrides: str) -> Path:
    from search.pipeline import run

    out = root / name
    cfg = compose_in("search", out, f"ckpt_path={ckpt}", f"store_path={store}", *SMALL_DATA,
                     *SEARCH, *overrides)
    run(cfg)
    return out


@pytest.fixture(scope="module")
def serial(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The serial search: its run directory and its store."""
    root = tmp_path_factory.mktemp("serial")
    return _search(root, "run", ckpt, root / "store.sqlite"), root / "store.sqlite"


def test_two_workers_give_the_serial_results_table(
    cluster: None, ckpt: Path, serial: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[int] = []
    measure = RayEvaluator.__call__

    def counted(self: RayEvaluator, archs: Any) -> Any:
        batches.append(len(archs))
        return measure(self, archs)

    monkeypatch.setattr(RayEvaluator, "__call__", counted)
    out = _search(tmp_path, "run", ckpt, tmp_path / "store.sqlite", "workers=2")
    expected = pd.read_csv(serial[0] / "results.csv")
    found = pd.read_csv(out / "results.csv")
    assert len(expected) == 10 and expected["accuracy"].nunique() > 2
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
    assert max(batches) > 1, f"the workers got one subnet at a time: {batches}"
    assert sum(batches) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["measured"] == 10 and summary["reused_from_store"] == 0
    assert len(Store(tmp_path / "store.sqlite")) == 10


def _archs(ckpt: Path, n: int, seed: int) -> tuple[Any, dict[str, Any], list[Arch]]:
    supernet, record = load_supernet(ckpt)
    rng = np.random.default_rng(seed)
    archs: dict[str, Arch] = {}
    while len(archs) < n:
        arch = supernet.space.sample(rng)
        archs[arch.arch_id] = arch
    return supernet, record, list(archs.values())


def test_a_hanging_worker_is_replaced_after_the_task_timeout(
    cluster: None, ckpt: Path, tmp_path: Path
) -> None:
    # before the tests of `dying`: its module-long workers hold both CPUs of the cluster
    supernet, record, archs = _archs(ckpt, 4, seed=12)
    victim = archs[1]
    evaluator = RayEvaluator(
        supernet, record["data_config"],
        evaluation={"max_val_batches": 1, "fault": "hang", "fault_on": victim.arch_id,
                    "marker": str(tmp_path / "hung"), "log": str(tmp_path / "measured.txt")},
        workers=2, max_retries=1, evaluator="tests.search.ray_helpers.FaultyEvaluator",
        start_timeout=120.0, task_timeout=5.0,
    )  # fmt: skip
    try:
        found = list(evaluator(archs))
    finally:
        evaluator.close()
    assert (tmp_path / "hung").exists(), "no worker hung: nothing was tested"
    datamodule = instantiate(record["data_config"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert found == ClassificationEvaluator(supernet, datamodule, max_val_batches=1)(archs)
    measured = [line.split() for line in (tmp_path / "measured.txt").read_text().splitlines()]
    assert collections.Counter(arch_id for arch_id, _ in measured) == {
        a.arch_id: 1 for a in archs
    }
    hung = (tmp_path / "hung").read_text()
    assert next(pid for arch_id, pid in measured if arch_id == victim.arch_id) != hung


@pytest.fixture(scope="module")
def dying(cluster: None, ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two workers whose evaluator kills its process the first time it meets `victim`."""
    supernet, record, archs = _archs(ckpt, 6, seed=11)
    root = tmp_path_factory.mktemp("dying")
    victim = archs[2]  # the other worker is busy with another subnet when this one dies
    evaluator = RayEvaluator(
        supernet, record["data_config"],
        evaluation={"max_val_batches": 1, "fault": "die", "fault_on": victim.arch_id,
                    "marker": str(root / "died"),
                    "log": str(root / "measured.txt")},
        workers=2, max_retries=1, evaluator="tests.search.ray_helpers.FaultyEvaluator",
        **TIMEOUTS,
    )
    try:
        yield SimpleNamespace(evaluator=evaluator, supernet=supernet, record=record, archs=archs,
                              victim=victim, root=root)
    finally:
        evaluator.close()


def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(dying: Any, tmp_path: Path) -> None:
    supernet, archs, victim, root = dying.supernet, dying.archs, dying.victim, dying.root
    evaluator = dying.evaluator
    scope = Store(tmp_path / "store.sqlite").scope(supernet.space.name, "ckpt",
                                                  evaluator.settings())
    found = scope.memoize(evaluator, batch_size=None)(archs)
    assert (root / "died").exists(), "no worker died: nothing was tested"
    datamodule = instantiate(dying.record["data_config"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    expected = ClassificationEvaluator(supernet, datamodule, max_val_batches=1)(archs)
    assert found == expected
    measured = [line.split() for line in (root / "measured.txt").read_text().splitlines()]
    counts = collections.Counter(arch_id for arch_id, _ in measured)
    assert counts == {a.arch_id: 1 for a in archs}  # each subnet once: none lost, none twice
    dead = (root / "died").read_text()
    assert next(pid for arch_id, pid in measured if arch_id == victim.arch_id) != dead
    assert len(scope.store) == 6
    assert [scope.get(a) for a in archs] == expected


def test_latency_waits_for_an_idle_machine(dying: Any) -> None:
    rng = np.random.default_rng(5)
    archs = [dying.supernet.space.sample(rng) for _ in range(4)]
    timed: list[str] = []
    cost = dying.evaluator.exclusive(lambda a: timed.append(a.arch_id) or {"latency_ms": 1.0})
    running = dying.evaluator(archs)
    first = next(running)  # the other worker is still measuring
    with pytest.raises(DistributedError, match="idle machine"):
        cost(archs[0])
    rest = list(running)
    assert cost(archs[0]) == {"latency_ms": 1.0}
    assert len([first, *rest]) == 4 and timed == [archs[0].arch_id]


def test_unreachable_cluster_is_one_clear_error_and_the_store_is_intact(
    serial: tuple[Path, Path], ckpt: Path, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store_path = serial[1]
    before = Store(store_path).rows()
    with pytest.raises(DistributedError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        _search(tmp_path, "run", ckpt, store_path, "workers=2", f"ray.address=127.0.0.1:{port}")
    assert issubclass(DistributedError, NASError)  # the command line prints it as one line
    assert not (tmp_path / "run" / "results.csv").exists()
    assert Store(store_path).rows() == before and len(before) == 10
    with pytest.raises(DistributedError, match="not host:port"):
        distributed.check_reachable("nowhere")
