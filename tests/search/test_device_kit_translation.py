"""A device kit of a translation supernet: each subnet's encoder and decoder-step graphs, decoded
by the kit's runner with numpy and ONNX Runtime exactly as the subnet decodes in PyTorch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from search.device_kit import main as kit_main
from search.hardware import DeviceLatencyCost, write_kit
from search.hardware.device_runner import Translator, _session
from search.hardware.kit import COLUMN, KIT_JSON, RUNNER, TABLE, sample_archs
from supernet.pretrained import published, save_as_published
from supernet.transformer.beam import beam_search
from supernet.transformer.latency import TranslationWorkload
from supernet.transformer.model import TransformerSupernet
from tests.supernet.tiny_transformer import TINY_WIDTHS

ort = pytest.importorskip("onnxruntime")
KIT_SIZE = 5


def _net(fairseq: bool) -> TransformerSupernet:
    torch.manual_seed(3)
    net = TransformerSupernet(40, 40, **TINY_WIDTHS, fairseq_conventions=fairseq).eval()
    with torch.no_grad():  # sharper next-token distributions than the initial weights give
        for p in net.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
    return net


@pytest.fixture(scope="module", params=[False, True], ids=["ours", "fairseq_conventions"])
def kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    net = _net(request.param)
    out = write_kit(net, tmp_path_factory.mktemp("tx") / "kit", count=KIT_SIZE, seed=0,
                    weights=True)
    return net, out


def _translator(kit: Path, arch_id: str) -> Translator:
    spec = json.loads((kit / KIT_JSON).read_text())["translation"]
    prefix = kit / "models" / arch_id
    sessions = [_session(prefix.with_name(f"{arch_id}.{part}.onnx"), 1, "CPUExecutionProvider")
                for part in ("encoder", "decoder")]  # fmt: skip
    return Translator(*sessions, spec)


def test_kit_decodes_every_subnet_as_pytorch_does(kit) -> None:  # noqa: ANN001
    """The runner's beam search on the graphs finds the subnet's own best hypothesis, with its
    score, and a decoder step's log-probabilities equal the subnet's incremental step."""
    net, out = kit
    spec = json.loads((out / KIT_JSON).read_text())["translation"]
    assert spec["beam_size"] == 5 and spec["tgt_len"] == 30 and spec["src_len"] == 30
    archs = sample_archs(net.space, KIT_SIZE, seed=0)
    assert [r["arch_id"] for r in csv.DictReader((out / TABLE).open())] == [
        a.arch_id for a in archs
    ]
    distinct = set()
    for arch in archs:
        translate = _translator(out, arch.arch_id)
        got = translate()
        sub = net.export_subnet(arch).eval()
        steps = spec["tgt_len"] - 1
        want = beam_search(sub, torch.from_numpy(translate.src), spec["beam_size"],
                           max_len_a=0.0, max_len_b=steps, min_len=steps)  # fmt: skip
        assert got == [h.tokens for h in want]
        assert len(got[0]) == steps
        assert translate.best_scores[0] / spec["tgt_len"] == pytest.approx(want[0].score, abs=1e-4)
        distinct.add(tuple(got[0]))
        # one step on a random prefix, against the subnet's incremental decoding
        prefix = torch.randint(4, 40, (2, 6), generator=torch.Generator().manual_seed(1))
        prefix[:, 0] = spec["first_token"]
        src = torch.from_numpy(translate.src).repeat(2, 1)
        encoded = sub.encode(src)
        cache = sub.new_cache()
        with torch.no_grad():
            for t in range(1, prefix.shape[1] + 1):
                logits = sub.decode(prefix[:, :t], encoded, cache)[:, -1]
        names = [o.name for o in translate.encoder.get_outputs()]
        outs = translate.encoder.run(None, {"src_tokens": src.numpy()})
        feed = dict(zip(names, outs, strict=True))
        decoder = translate.decoder
        for t in range(1, prefix.shape[1] + 1):
            feed["prev_tokens"] = prefix[:, :t].numpy()
            for name, shape in translate.past:
                feed.setdefault(name, np.zeros([2, *shape[1:]], dtype=np.float32))
            lprobs, *past = decoder.run(None, {k: v for k, v in feed.items()
                                                if k in translate.inputs})  # fmt: skip
            for (name, _), value in zip(translate.past, past, strict=True):
                feed[name] = value
        want_lp = torch.log_softmax(logits.float(), dim=-1).numpy()
        assert np.abs(lprobs - want_lp).max() < 1e-4
    assert len(distinct) > 1  # the subnets decode differently: the comparison has teeth


def test_runner_times_a_translation_kit_and_the_search_reads_it(tmp_path: Path) -> None:
    """The kit's own script on the device (a kit without weights, the default): one beam
    search per timing, every row filled; the table then serves `hardware=device` (measured
    latencies kept, the rest predicted)."""
    net = _net(False)
    out = write_kit(net, tmp_path / "kit", count=KIT_SIZE, seed=0)
    assert len(json.loads((out / KIT_JSON).read_text())["generated_weights"]) == 2 * KIT_SIZE
    done = subprocess.run([sys.executable, str(out / RUNNER), "--warmup", "0", "--repeats", "2"],
                          capture_output=True, text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert f"timing {KIT_SIZE}" in done.stdout
    rows = list(csv.DictReader((out / TABLE).open()))
    latency = {r["arch_id"]: float(r[COLUMN]) for r in rows}
    assert all(ms > 0 for ms in latency.values())
    cost = DeviceLatencyCost(str(out / TABLE), min_rows=KIT_SIZE, folds=KIT_SIZE).bind(net)
    for arch in sample_archs(net.space, KIT_SIZE, seed=0):
        assert cost(arch)[COLUMN] == pytest.approx(latency[arch.arch_id], rel=1e-5)
    other = net.space.sample(np.random.default_rng(9))
    assert cost(other)[COLUMN] > 0


def test_a_published_translation_space_gets_a_kit_from_its_file(tmp_path: Path) -> None:
    """`--pretrained hat_iwslt14deen --pretrained-path FILE`: the vocabulary comes from the
    publisher's file (random weights saved in its format here)."""
    spec = published("hat_iwslt14deen")
    torch.manual_seed(0)
    net = TransformerSupernet(**spec.supernet, src_vocab_size=37, tgt_vocab_size=41)
    weights = save_as_published(spec, net, tmp_path / "hat.pt")
    arch = net.space.smallest()  # the latency workload reads source tokens of the source side
    assert len(TranslationWorkload(tgt_len=3)(net.export_subnet(arch), arch)()[0].tokens) == 2
    out = tmp_path / "kit"
    argv = ["--pretrained", "hat_iwslt14deen", "--pretrained-path", str(weights),
            "--out", str(out), "--count", "2"]  # fmt: skip
    assert kit_main(argv) == 0
    info = json.loads((out / KIT_JSON).read_text())
    assert info["source"] == "hat_iwslt14deen" and info["translation"]["vocab"] == 41
    assert len(list((out / "models").glob("*.decoder.onnx"))) == 2
    with pytest.raises(SystemExit, match="2"):  # a file of published weights, and no name
        kit_main(["--ckpt", str(weights), "--pretrained-path", str(weights), "--out", "x"])


def test_the_predictor_weighs_a_translation_by_where_its_macs_run(tmp_path: Path) -> None:
    """A beam search repeats the decoder and the output projection per beam and step, the
    encoder not: the predictor sees the MACs by part (`macs_parts`), so a device whose
    latency weighs them so is predicted closely from 40 timed subnets."""
    net = _net(False)
    archs = sample_archs(net.space, 60, seed=0)

    def device_ms(arch) -> float:  # noqa: ANN001
        parts = net.macs_parts(arch)
        return 1.0 + 1e-5 * (parts["encoder"] + parts["memory"]) + 6e-5 * (
            parts["decoder"] + parts["output"]
        )

    labels = [d.label for d in net.space.decisions]
    table = tmp_path / TABLE
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["arch_id", COLUMN, *labels])
        writer.writeheader()
        for arch in archs[:40]:
            writer.writerow({"arch_id": arch.arch_id, COLUMN: f"{device_ms(arch):.6g}",
                             **{k: arch[k] for k in labels}})  # fmt: skip
    cost = DeviceLatencyCost(str(table)).bind(net)
    assert cost._costs(archs[:1]).shape == (1, 4 + 2)  # four parts, params, active decisions
    truth = np.array([device_ms(a) for a in archs[40:]])
    guess = np.array([cost.predict(a) for a in archs[40:]])
    assert np.mean(np.abs(guess - truth) / truth) < 0.03


def test_best_translation_subnets_come_with_their_decoding_graphs(tmp_path: Path) -> None:
    """`export_best` writes a translation subnet's encoder and decoder-step graphs beside its
    `.pt` and `.onnx`; a subnet best under two constraints gets the same files twice."""
    from types import SimpleNamespace

    import onnxruntime

    from search.export import export_best

    net = _net(False)
    arch = net.space.smallest()
    src, prev = torch.tensor([[5, 6, 2]]), torch.tensor([[0, 7]])
    scorer = SimpleNamespace(settings=lambda: {"evaluator": "fake"},
                             deployable=lambda a: net.export_subnet(a).eval(),
                             example_inputs=lambda a: (src, prev))  # fmt: skip
    row = SimpleNamespace(arch_id=arch.arch_id, arch=arch, metrics={"bleu": 1.0})
    export_best(SimpleNamespace(best={"all": row, "macs": row}), tmp_path, lambda: scorer)
    for name in ("all", "macs"):
        info = yaml.safe_load((tmp_path / f"best_{name}.yaml").read_text())
        assert info["files"] == [f"best_{name}{x}" for x in (".pt", ".onnx", ".encoder.onnx",
                                                              ".decoder.onnx")]  # fmt: skip
    assert (tmp_path / "best_macs.decoder.onnx").read_bytes() == (
        tmp_path / "best_all.decoder.onnx"
    ).read_bytes()
    session = onnxruntime.InferenceSession(str(tmp_path / "best_macs.encoder.onnx"))
    assert [o.name for o in session.get_outputs()][0] == "padding_mask"


def test_the_graphs_translate_with_the_frameworks_beam_search(kit) -> None:  # noqa: ANN001
    """`OnnxTranslationModel`: the two graphs behind the decoding API, so `beam_search` (length
    penalty, early finished hypotheses, padded batches) and `greedy_decode` run on ONNX Runtime
    and give what they give on the subnet."""
    from supernet.transformer.beam import greedy_decode
    from supernet.transformer.onnx_decoding import OnnxTranslationModel

    net, out = kit
    src = torch.tensor([[5, 9, 12, 30, 7, 2], [8, 3 + 30, 2, 1, 1, 1]])  # right-padded
    for arch in sample_archs(net.space, 3, seed=0):
        onnx_model = OnnxTranslationModel.load(out / "models" / arch.arch_id)
        sub = net.export_subnet(arch).eval()
        for search in (
            lambda m: beam_search(m, src, 4, len_penalty=0.6, max_len_b=12),  # noqa: B023
            lambda m: beam_search(m, src, 2, min_len=3, max_len_a=0.5, max_len_b=4),  # noqa: B023
        ):
            got, want = search(onnx_model), search(sub)
            assert [h.tokens for h in got] == [h.tokens for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)
        assert greedy_decode(onnx_model, src, max_len_b=8) == greedy_decode(sub, src, max_len_b=8)
