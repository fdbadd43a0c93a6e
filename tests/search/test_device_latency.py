"""Latency on another device: the kit (ONNX graphs, the table, the runner), the predictor
fitted on what the device measured, and the search that uses both."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from search.device_kit import main as kit_main
from search.hardware import AnalyticCost, DeviceLatencyCost, HardwareError
from search.hardware.kit import COLUMN, KIT_JSON, RUNNER, TABLE, sample_archs
from supernet.checkpoint import load_supernet
from supernet.space import Arch

ort = pytest.importorskip("onnxruntime")
KIT_SIZE = 12


@pytest.fixture(scope="module")
def kit(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit of the tiny checkpoint, written by the command line (never modified by tests)."""
    out = tmp_path_factory.mktemp("device") / "kit"
    assert kit_main(["--ckpt", str(tiny_ckpt), "--out", str(out), "--count", str(KIT_SIZE)]) == 0
    return out


@pytest.fixture(scope="module")
def trained_kit(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kit with the trained weights in its graphs (`--weights`)."""
    out = tmp_path_factory.mktemp("device") / "trained"
    argv = ["--ckpt", str(tiny_ckpt), "--out", str(out), "--count", str(KIT_SIZE), "--weights"]
    assert kit_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def supernet(tiny_ckpt: Path):  # noqa: ANN201 - the tiny MobileNetV3 supernet
    return load_supernet(tiny_ckpt)[0]


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="") as f:
        return list(csv.DictReader(f))


def _write(table: Path, rows: list[dict[str, str]]) -> None:
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_kit_holds_one_graph_per_subnet_equal_to_it(trained_kit: Path, supernet) -> None:  # noqa: ANN001
    kit = trained_kit
    rows = _rows(kit / TABLE)
    labels = [d.label for d in supernet.space.decisions]
    assert list(rows[0]) == ["arch_id", COLUMN, "macs", "params", *labels]
    assert len(rows) == KIT_SIZE and all(row[COLUMN] == "" for row in rows)
    assert len({row["arch_id"] for row in rows}) == KIT_SIZE
    assert rows[0]["arch_id"] == supernet.space.largest().arch_id
    assert rows[1]["arch_id"] == supernet.space.smallest().arch_id
    assert json.loads((kit / KIT_JSON).read_text())["space"] == supernet.space.name
    assert (kit / RUNNER).is_file()
    analytic = AnalyticCost().bind(supernet)
    for row in rows[:3]:  # each graph computes its own subnet, and the table its costs
        arch = Arch({k: int(row[k]) for k in labels})
        assert arch.arch_id == row["arch_id"]
        assert int(row["macs"]) == analytic(arch)["macs"]
        session = ort.InferenceSession(str(kit / "models" / f"{arch.arch_id}.onnx"))
        shape = session.get_inputs()[0].shape
        assert shape[0] == 1 and shape[2:] == [arch["resolution"], arch["resolution"]]
        x = torch.randn(*shape)
        with torch.inference_mode():
            expected = supernet.export_subnet(arch).eval()(x).numpy()
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def _structure(graph: Path) -> tuple[list[str], dict[str, list[int]]]:
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return [n.op_type for n in model.graph.node], {
        t.name: list(t.dims) for t in model.graph.initializer
    }


def test_a_kit_without_weights_holds_the_same_graphs(kit: Path, trained_kit: Path) -> None:
    """By default the graphs leave their weights out (kit.json gives each `.weights` file's
    size): the same operators and tensor shapes in a fraction of the bytes."""
    info = json.loads((kit / KIT_JSON).read_text())
    assert json.loads((trained_kit / KIT_JSON).read_text())["weights"] == "trained"
    sizes = info["generated_weights"]
    assert sorted(sizes) == sorted(p.name for p in (kit / "models").glob("*.onnx"))
    for graph in (kit / "models").glob("*.onnx"):
        trained = trained_kit / "models" / graph.name
        assert _structure(graph) == _structure(trained)
        left_out = trained.stat().st_size - graph.stat().st_size
        assert left_out >= 0.95 * sizes[graph.name] > 0
    assert not list(kit.rglob("*.weights"))


def test_kit_is_never_written_over(kit: Path, tiny_ckpt: Path, capsys) -> None:  # noqa: ANN001
    before = (kit / TABLE).read_bytes()
    assert kit_main(["--ckpt", str(tiny_ckpt), "--out", str(kit), "--count", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a device kit already" in err[0]
    assert (kit / TABLE).read_bytes() == before
    assert kit_main(["--ckpt", str(kit / "missing.ckpt"), "--out", str(kit / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_runner_fills_the_table_and_goes_on_where_it_stopped(kit: Path, tmp_path: Path) -> None:
    """The kit's own script, run as on a device: every latency filled; run again after a
    partial table, it keeps what was measured and times only the rest."""
    copy = tmp_path / "on_device"
    shutil.copytree(kit, copy)
    run = [sys.executable, str(copy / RUNNER), "--warmup", "1", "--repeats", "3"]
    subprocess.run(run, check=True, capture_output=True, text=True, cwd=tmp_path)
    rows = _rows(copy / TABLE)
    assert all(float(row[COLUMN]) > 0 for row in rows)
    assert not list(copy.rglob("*.weights"))  # the random weights are gone after timing
    rows[0][COLUMN], rows[1][COLUMN] = "123", ""  # one kept by hand, one to time again
    _write(copy / TABLE, rows)
    done = subprocess.run(run, check=True, capture_output=True, text=True, cwd=tmp_path)
    assert f"{KIT_SIZE - 1} of {KIT_SIZE} models timed already; timing 1" in done.stdout
    again = _rows(copy / TABLE)
    assert again[0][COLUMN] == "123" and float(again[1][COLUMN]) > 0
    assert [r[COLUMN] for r in again[2:]] == [r[COLUMN] for r in rows[2:]]
    again[1][COLUMN] = ""  # `--keep-weights`: what another runtime would convert
    _write(copy / TABLE, again)
    subprocess.run([*run, "--keep-weights"], check=True, capture_output=True, cwd=tmp_path)
    kept = list(copy.rglob("*.weights"))
    sizes = json.loads((copy / KIT_JSON).read_text())["generated_weights"]
    assert [p.name for p in kept] == [f"{again[1]['arch_id']}.onnx.weights"]
    assert kept[0].stat().st_size == sizes[f"{again[1]['arch_id']}.onnx"]
    session = ort.InferenceSession(str(copy / "models" / f"{again[1]['arch_id']}.onnx"))
    assert session.get_inputs()[0].shape[0] == 1


def _device_ms(arch: Arch, macs: float) -> float:
    """A device whose latency grows with MACs and with each active 5x5 kernel."""
    blocks = sum(1 for k, v in arch.items() if k.endswith("_kernel") and v == 5)
    return 0.05 + macs / 2e7 + 0.004 * blocks


def _table(path: Path, supernet, archs: list[Arch]) -> dict[str, float]:  # noqa: ANN001
    """A latency table of `archs` measured on `_device_ms`'s device."""
    analytic = AnalyticCost().bind(supernet)
    labels = [d.label for d in supernet.space.decisions]
    truth, rows = {}, []
    for arch in archs:
        ms = _device_ms(arch, analytic(arch)["macs"])
        truth[arch.arch_id] = ms
        rows.append({"arch_id": arch.arch_id, COLUMN: f"{ms:.6g}", **{k: arch[k] for k in labels}})
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, rows)
    return truth


def test_measured_subnets_keep_their_latency_and_the_rest_are_predicted(
    supernet, tmp_path: Path  # noqa: ANN001
) -> None:
    table = tmp_path / "pixel8" / TABLE
    measured = _table(table, supernet, sample_archs(supernet.space, 40, seed=0))
    cost = DeviceLatencyCost(str(table)).bind(supernet)
    for arch in sample_archs(supernet.space, 5, seed=0):
        assert cost(arch)[COLUMN] == pytest.approx(measured[arch.arch_id], rel=1e-5)
    assert cost.quality["kendall_tau"] > 0.8, cost.quality
    unseen = [a for a in sample_archs(supernet.space, 60, seed=7) if a.arch_id not in measured]
    analytic = AnalyticCost().bind(supernet)
    truth = [_device_ms(a, analytic(a)["macs"]) for a in unseen]
    predicted = [cost(a)[COLUMN] for a in unseen]
    assert len(unseen) > 30
    assert stats.kendalltau(truth, predicted).statistic > 0.8
    assert np.mean(np.abs(np.subtract(predicted, truth)) / truth) < 0.1
    assert cost(unseen[0])["macs"] == analytic(unseen[0])["macs"]
    text = cost.describe()
    assert "measured on pixel8 for the 40 subnets" in text and "cross-validated" in text
    settings = cost.settings()
    assert settings["device"] == "pixel8" and settings["measured"] == 40
    rows = _rows(table)
    rows[3][COLUMN] = str(float(rows[3][COLUMN]) * 2)
    _write(table, rows)
    assert DeviceLatencyCost(str(table)).bind(supernet).settings()["table"] != settings["table"]


def test_unmeasured_rows_are_skipped_and_too_few_measured_refused(
    supernet, tmp_path: Path  # noqa: ANN001
) -> None:
    table = tmp_path / TABLE
    _table(table, supernet, sample_archs(supernet.space, 12, seed=0))
    rows = _rows(table)
    for row in rows[9:]:
        row[COLUMN] = ""
    _write(table, rows)
    with pytest.raises(HardwareError, match=r"holds 9 measured subnets \(3 rows still empty\)"):
        DeviceLatencyCost(str(table)).bind(supernet)
    assert len(DeviceLatencyCost(str(table), min_rows=9).bind(supernet).measured) == 9
    onehot = DeviceLatencyCost(str(table), min_rows=9, features="onehot").bind(supernet)
    first = sample_archs(supernet.space, 1, seed=0)[0]
    assert onehot(first)[COLUMN] == pytest.approx(float(rows[0][COLUMN]), rel=1e-5)
    assert onehot.settings()["features"] == "onehot" and "one-hot" in onehot.describe()


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda rows: [r.pop("resolution") for r in rows], r"lacks the column\(s\) resolution"),
        (lambda rows: rows[2].update(resolution="13"), r"line 4: resolution='13' is not an"),
        (lambda rows: rows[1].update(arch_id="0123456789abcdef"), "does not match the row's"),
        (lambda rows: rows[0].update({COLUMN: "fast"}), "latency_ms='fast' is not a positive"),
        (lambda rows: rows[0].update({COLUMN: "-1"}), "latency_ms='-1' is not a positive"),
    ],
    ids=["column", "option", "arch_id", "text", "negative"],
)
def test_a_table_that_does_not_fit_is_one_clear_error(
    edit, says: str, supernet, tmp_path: Path  # noqa: ANN001
) -> None:
    table = tmp_path / TABLE
    _table(table, supernet, sample_archs(supernet.space, 12, seed=0))
    rows = _rows(table)
    edit(rows)
    _write(table, rows)
    with pytest.raises(HardwareError, match=says):
        DeviceLatencyCost(str(table)).bind(supernet)


def test_a_kit_of_another_space_is_refused(supernet, tmp_path: Path) -> None:  # noqa: ANN001
    table = tmp_path / TABLE
    _table(table, supernet, sample_archs(supernet.space, 12, seed=0))
    (tmp_path / KIT_JSON).write_text(json.dumps({"space": "transformer"}))
    with pytest.raises(HardwareError, match="written for the 'transformer' space"):
        DeviceLatencyCost(str(table)).bind(supernet)


@pytest.mark.slow
def test_search_on_device_latency(kit: Path, supernet, tiny_ckpt: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """`search.py hardware=device`: the report says where the latencies come from, and a
    measured subnet's row carries the device's figure."""
    from tests.pipelines.test_search_pipeline import _search

    table = tmp_path / "board" / TABLE
    archs = sample_archs(supernet.space, 20, seed=0)
    measured = _table(table, supernet, archs)
    result, out = _search(
        tmp_path, tiny_ckpt, "strategy=random", "budget=4", "hardware=device",
        f"hardware.path={table}", "relative_constraints.latency_ms=0.8",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert "measured on board for the 20 subnets" in json.dumps(summary)
    for row in result.rows:
        if row.arch_id in measured:
            assert row.metrics[COLUMN] == pytest.approx(measured[row.arch_id], rel=1e-5)
        assert row.metrics[COLUMN] > 0


def test_a_published_space_gets_a_kit_without_its_weights(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`--pretrained ofa_mbv3_w10`: OFA's space at ImageNet sizes, nothing downloaded."""
    out = tmp_path / "ofa"
    assert kit_main(["--pretrained", "ofa_mbv3_w10", "--out", str(out), "--count", "2"]) == 0
    rows = _rows(out / TABLE)
    assert [int(r["resolution"]) for r in rows] == [224, 128]
    assert json.loads((out / KIT_JSON).read_text())["source"] == "ofa_mbv3_w10"
    import onnx

    graph = onnx.load(str(out / "models" / f"{rows[1]['arch_id']}.onnx"), load_external_data=False)
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128]
    capsys.readouterr()  # a translation space reads its vocabulary from the published file
    missing = str(tmp_path / "HAT_wmt14ende_super_space0.pt")
    argv = ["--pretrained", "hat_wmt14ende", "--pretrained-path", missing, "--out", "hat"]
    assert kit_main([*argv[:-1], str(tmp_path / "hat")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and missing in err
    assert not (tmp_path / "hat").exists()


def test_runner_without_onnxruntime_or_its_provider_says_so(kit: Path, tmp_path: Path) -> None:
    """On a device that lacks onnxruntime, or the execution provider asked for: one line,
    exit code 2, the table untouched."""
    blocker = tmp_path / "blocked" / "onnxruntime"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    before = (kit / TABLE).read_bytes()
    for env, args, says in (
        ({"PYTHONPATH": str(blocker.parent)}, [], "pip install numpy onnxruntime"),
        ({}, ["--provider", "NoSuchExecutionProvider"], "is not available here"),
    ):
        done = subprocess.run([sys.executable, str(kit / RUNNER), *args], capture_output=True,
                              text=True, env={**os.environ, **env}, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
        assert says in done.stderr
    assert (kit / TABLE).read_bytes() == before
