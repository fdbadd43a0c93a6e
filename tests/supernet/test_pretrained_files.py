"""Published weights files: cache, download and verification, and one clear error per bad input.

Downloads come from a local HTTP server (tests never reach the internet); OFA-format files are
written from our own supernet under OFA's published names.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml

from supernet.mobilenetv3.model import MobileNetV3Supernet
from supernet.mobilenetv3.ofa_weights import to_ofa_state
from supernet.pretrained import (
    PUBLISHED,
    PretrainedError,
    load_pretrained,
    load_published,
    published,
)
from tests.conftest import CONF_DIR


def write_ofa_file(path: Path, width: float = 1.0, seed: int = 0) -> MobileNetV3Supernet:
    """A full-size OFA MobileNetV3 file (random weights, OFA's names); returns its source."""
    torch.manual_seed(seed)
    config = {**PUBLISHED["ofa_mbv3_w10"].supernet, "width_mult": width}
    net = MobileNetV3Supernet(**config)
    torch.save({"state_dict": to_ofa_state(net.state_dict(), net.layout)}, path)
    return net


@pytest.fixture(scope="module")
def ofa_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MobileNetV3Supernet]:
    path = tmp_path_factory.mktemp("files") / "ofa_mbv3_d234_e346_k357_w1.0"
    return path, write_ofa_file(path)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/cut/<name>` promises the whole file but sends half of it."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        if self.path.startswith("/cut/"):
            data = (Path(self.directory) / self.path[5:]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of a local HTTP server."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_is_cached_and_verified(
    ofa_file: tuple[Path, MobileNetV3Supernet], server: tuple[str, Path], tmp_path: Path
) -> None:
    path, source = ofa_file
    base, folder = server
    (folder / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    spec = replace(published("ofa_mbv3_w10"), url=f"{base}/{path.name}",
                   sha256=_sha256(path), cache_dir=str(cache))
    ours, file = load_published(spec)
    assert file == cache / path.name and sorted(p.name for p in cache.iterdir()) == [path.name]
    assert torch.equal(ours.head.classifier.weight, source.head.classifier.weight)
    load_published(spec)  # from the cache: no second request
    assert _Handler.hits == [f"/{path.name}"]


def test_checksum_mismatch_deletes_the_download(
    ofa_file: tuple[Path, MobileNetV3Supernet], server: tuple[str, Path], tmp_path: Path
) -> None:
    path, _ = ofa_file
    base, folder = server
    (folder / "short").write_bytes(path.read_bytes()[:1000])  # a truncated copy
    cache = tmp_path / "cache"
    spec = replace(published("ofa_mbv3_w10"), url=f"{base}/short", sha256=_sha256(path),
                   cache_dir=str(cache))
    with pytest.raises(PretrainedError, match=r"sha256 .*expected.*partial file was deleted"):
        load_published(spec)
    assert list(cache.iterdir()) == []


def test_connection_cut_midway_leaves_nothing(
    ofa_file: tuple[Path, MobileNetV3Supernet], server: tuple[str, Path], tmp_path: Path
) -> None:
    path, _ = ofa_file
    base, folder = server
    (folder / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    spec = replace(published("ofa_mbv3_w10"), url=f"{base}/cut/{path.name}",
                   cache_dir=str(cache))
    with pytest.raises(PretrainedError, match="pretrained.path="):
        load_published(spec)
    assert list(cache.iterdir()) == []


def test_a_web_page_instead_of_the_file_is_refused(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = server
    (folder / "page").write_text("<html>sign in to download</html>")
    cache = tmp_path / "cache"
    spec = replace(published("hat_wmt14ende"), url=f"{base}/page", cache_dir=str(cache))
    with pytest.raises(PretrainedError, match="not a complete PyTorch checkpoint.*deleted"):
        load_published(spec)
    assert list(cache.iterdir()) == []


def test_offline_names_the_url_and_pretrained_path(tmp_path: Path) -> None:
    spec = replace(published("ofa_mbv3_w12"), url="http://127.0.0.1:9/ofa_mbv3_w1.2",
                   cache_dir=str(tmp_path / "cache"))
    with pytest.raises(PretrainedError) as err:
        load_published(spec)
    assert "http://127.0.0.1:9/ofa_mbv3_w1.2" in str(err.value)
    assert "pretrained.path=" in str(err.value) and "load_pretrained" in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PretrainedError, match="no published supernet called 'ofa_big'.*hat_"):
        load_pretrained("ofa_big")


@pytest.mark.parametrize("content", [b"just text\n", b"PK\x03\x04" + b"\x00" * 64])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(PretrainedError, match="not a complete PyTorch checkpoint"):
        load_pretrained("ofa_mbv3_w10", path=str(path))


def test_truncated_local_file(ofa_file: tuple[Path, MobileNetV3Supernet], tmp_path: Path) -> None:
    path, _ = ofa_file
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PretrainedError, match="not a complete PyTorch checkpoint"):
        load_pretrained("ofa_mbv3_w10", path=str(cut))
    assert cut.exists()  # a user's own file is never deleted


def test_fairseq_file_for_ofa_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "hat.pt"
    torch.save({"model": {"encoder.embed_tokens.weight": torch.zeros(4, 8)}}, path)
    with pytest.raises(PretrainedError, match="looks like a HAT"):
        load_pretrained("ofa_mbv3_w10", path=str(path))


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(PretrainedError, match="no file at"):
        load_pretrained("hat_wmt19ende", path=str(tmp_path / "nope.pt"))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_option_states_the_published_facts(name: str) -> None:
    """conf/pretrained/<name>.yaml and `PUBLISHED[name]` agree (URL, space, data config)."""
    from hydra.utils import instantiate

    node = yaml.safe_load((CONF_DIR / "pretrained" / f"{name}.yaml").read_text())["pretrained"]
    assert instantiate(node, _convert_="all") == PUBLISHED[name]
    assert (CONF_DIR / "data" / f"{PUBLISHED[name].data}.yaml").is_file()


def test_other_python_objects_need_trust(tmp_path: Path) -> None:
    """Tensors, numpy data and fairseq's arguments load as they are; anything else runs code
    from the file, so it needs `trusted` (pretrained.trusted=true)."""
    from fractions import Fraction

    source = write_ofa_file(tmp_path / "plain.pth")
    state = torch.load(tmp_path / "plain.pth")["state_dict"]
    torch.save({"state_dict": state, "epoch": Fraction(1, 3)}, tmp_path / "odd.pth")
    with pytest.raises(PretrainedError, match="pretrained.trusted=true"):
        load_pretrained("ofa_mbv3_w10", path=str(tmp_path / "odd.pth"))
    ours = load_pretrained("ofa_mbv3_w10", path=str(tmp_path / "odd.pth"), trusted=True)
    assert torch.equal(ours.head.classifier.bias, source.head.classifier.bias)
