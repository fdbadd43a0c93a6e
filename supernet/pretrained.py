"""Published supernets (Once-for-All, HAT): where their weights are, and loading them into ours.

`load_pretrained("ofa_mbv3_w10")` downloads the publisher's file once into a cache folder
(progress bar; the file only appears there once it is complete and loads), maps its tensors
by name onto our supernet (`supernet.weight_import`: every published tensor used, every one of
ours filled, BatchNorm statistics included) and returns our supernet in eval mode. Pass
`path=` to use a local copy instead of the download. The Hydra group `conf/pretrained/`
holds the same facts for `search.py pretrained=<name>`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from supernet.errors import CheckpointError, NASError
from supernet.mobilenetv3.model import MobileNetV3Supernet
from supernet.mobilenetv3.ofa_weights import normalise_ofa_keys, ofa_plan, to_ofa_state
from supernet.protocol import Supernet
from supernet.transformer.hat_weights import hat_plan, ignored_keys
from supernet.transformer.model import TransformerSupernet
from supernet.weight_import import WeightMismatchError, export_weights, import_weights

log = logging.getLogger(__name__)
State = dict[str, torch.Tensor]


class PretrainedError(CheckpointError):
    """A published supernet that cannot be found, downloaded or read."""


@dataclass(frozen=True)
class Published:
    """A published supernet: where its weights are and what they fit.

    Args:
        name: what users call it (`pretrained=<name>`, `load_pretrained(<name>)`).
        format: the publisher's file layout, which picks the key mapping (`ofa_mbv3`, `hat`).
        url: the publisher's download address.
        supernet: our supernet's constructor arguments for these weights (architecture and
            search space); a translation supernet's vocabulary sizes come from the file.
        data: the data config the weights belong with (`data=<data>`).
        sha256: the file's digest, where the publisher gives one (checked after download).
        path: a local copy of the file, used instead of the download.
        cache_dir: where downloads are kept (None: `$XDG_CACHE_HOME/nasframework/pretrained`).
        trusted: unpickle the file in full (runs code from it) when it holds Python objects
            besides tensors, numpy data and fairseq's arguments.
    """

    name: str
    format: str
    url: str
    supernet: Mapping[str, Any]
    data: str
    sha256: str | None = None
    path: str | None = None
    cache_dir: str | None = None
    trusted: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise PretrainedError(
                f"pretrained {self.name!r} has format {self.format!r}; known: {sorted(FORMATS)}"
            )

    @property
    def task(self) -> str:
        """What the weights do: `image classification` or `translation`."""
        return FORMATS[self.format].task

    @property
    def filename(self) -> str:
        """The cached file's name: the last part of the URL's path."""
        return Path(urlparse(self.url).path).name or self.name

    def cache_path(self) -> Path:
        """Where the download is (or will be) kept."""
        if self.cache_dir:
            root = Path(self.cache_dir).expanduser()
        else:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            root = Path(base) / "nasframework" / "pretrained"
        return root / self.filename


# --- the formats ------------------------------------------------------------------------------
def _build_ofa(spec: Published, state: State) -> Supernet:
    supernet = MobileNetV3Supernet(**dict(spec.supernet))
    plan = ofa_plan(list(supernet.state_dict()), supernet.layout)
    import_weights(supernet, normalise_ofa_keys(state), plan, spec.name)
    return supernet


def _build_hat(spec: Published, state: State) -> Supernet:
    tables = {}
    for side in ("encoder", "decoder"):
        key = f"{side}.embed_tokens.weight"
        if key not in state:
            raise WeightMismatchError(
                f"{spec.name}: the file has no tensor {key!r}; it is not a HAT SuperTransformer"
            )
        tables[side] = state[key]
    config = dict(spec.supernet)
    config["src_vocab_size"] = int(tables["encoder"].shape[0])
    config["tgt_vocab_size"] = int(tables["decoder"].shape[0])
    # HAT ties the output projection to the target table unless the file has its own
    config["share_decoder_input_output_embed"] = "decoder.embed_out" not in state
    if config.get("share_all_embeddings") and not (
        tables["encoder"].shape == tables["decoder"].shape
        and torch.equal(tables["encoder"], tables["decoder"])
    ):
        raise WeightMismatchError(
            f"{spec.name} shares one embedding table between encoder and decoder, but the "
            "file's two tables differ; it holds another SuperTransformer (an unshared one?)"
        )
    supernet = TransformerSupernet(**config)
    plan = hat_plan(list(supernet.state_dict()), supernet.config()["qkv_dim"], state)
    import_weights(supernet, state, plan, spec.name, ignored=ignored_keys(state))
    return supernet


def _export_ofa(supernet: Any) -> State:
    return to_ofa_state(supernet.state_dict(), supernet.layout)


def _export_hat(supernet: Any) -> State:
    plan = hat_plan(list(supernet.state_dict()), supernet.config()["qkv_dim"], {})
    return export_weights(supernet, plan)


@dataclass(frozen=True)
class Format:
    """A publisher's file layout: where its state dict sits, how it becomes our supernet and
    how ours would look in it."""

    container: str  # the checkpoint dict's key holding the state dict
    task: str
    build: Callable[[Published, State], Supernet]
    export: Callable[[Any], State]
    description: str


FORMATS: dict[str, Format] = {
    "ofa_mbv3": Format("state_dict", "image classification", _build_ofa, _export_ofa,
                       "a Once-for-All MobileNetV3 checkpoint"),
    "hat": Format("model", "translation", _build_hat, _export_hat,
                  "a HAT (fairseq) SuperTransformer"),
}


def save_as_published(spec: Published, supernet: Supernet, path: str | Path) -> Path:
    """Write `supernet`'s weights as `spec`'s publisher ships them (tests, benchmarks, or
    handing our weights to the publisher's code)."""
    fmt = FORMATS[spec.format]
    torch.save({fmt.container: fmt.export(supernet)}, path)
    return Path(path)

_OFA_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"
_HAT_URL = "https://www.dropbox.com/s/{}?dl=1"
_OFA_SPACE = {
    "num_classes": 1000,
    "in_channels": 3,
    "kernel_sizes": [3, 5, 7],
    "expand_ratios": [3, 4, 6],
    "depths": [2, 3, 4],
    "resolutions": list(range(128, 225, 4)),
    "stem_stride": 2,
    "first_unit_stride": 2,
    "dropout": 0.0,
}
_HAT_SPACE0 = {
    "pad_index": 1,
    "bos_index": 0,
    "eos_index": 2,
    "encoder_embed_dims": [512, 640],
    "decoder_embed_dims": [512, 640],
    "ffn_dims": [1024, 2048, 3072],
    "heads": [4, 8],
    "qkv_dim": 512,
    "encoder_layers": 6,
    "decoder_layers": [1, 2, 3, 4, 5, 6],
    "ende_layers": [1, 2, 3],
    "max_positions": 1024,
    "dropout": 0.3,
    "attention_dropout": 0.1,
    "normalize_before": False,
    "share_all_embeddings": True,
    "scale_dropout": True,
    "fairseq_conventions": True,
}
_HAT_IWSLT_SPACE1 = {**_HAT_SPACE0, "ffn_dims": [512, 1024, 2048], "heads": [2, 4],
                     "share_all_embeddings": False}

PUBLISHED: dict[str, Published] = {
    spec.name: spec
    for spec in (
        Published("ofa_mbv3_w10", "ofa_mbv3", _OFA_URL + "ofa_mbv3_d234_e346_k357_w1.0",
                  {**_OFA_SPACE, "width_mult": 1.0}, "imagenet"),
        Published("ofa_mbv3_w12", "ofa_mbv3", _OFA_URL + "ofa_mbv3_d234_e346_k357_w1.2",
                  {**_OFA_SPACE, "width_mult": 1.2}, "imagenet"),
        Published("hat_wmt14ende", "hat",
                  _HAT_URL.format("pkdddxvvpw9a4vq/HAT_wmt14ende_super_space0.pt"),
                  _HAT_SPACE0, "wmt14_en_de"),
        Published("hat_wmt14enfr", "hat",
                  _HAT_URL.format("asegvw9qzpxui6a/HAT_wmt14enfr_super_space0.pt"),
                  _HAT_SPACE0, "wmt14_en_fr"),
        Published("hat_wmt19ende", "hat",
                  _HAT_URL.format("uc0lw6jdep1vazc/HAT_wmt19ende_super_space0.pt"),
                  _HAT_SPACE0, "wmt19_en_de"),
        Published("hat_iwslt14deen", "hat",
                  _HAT_URL.format("yv0mn8ns36gxkhs/HAT_iwslt14deen_super_space1.pt"),
                  _HAT_IWSLT_SPACE1, "iwslt14_de_en"),
    )
}


def published(name: str) -> Published:
    """The published supernet called `name`, or a clear error listing the known ones."""
    if name not in PUBLISHED:
        raise PretrainedError(
            f"no published supernet called {name!r}; choose one of {', '.join(PUBLISHED)}"
        )
    return PUBLISHED[name]


# --- files --------------------------------------------------------------------------------------
def _safe_globals() -> list[Any]:
    """What fairseq checkpoints hold besides tensors and plain data: their arguments and numpy
    scalars and arrays of training state; unpickling these runs no code from the file."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    kinds = (np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_)
    return [argparse.Namespace, _reconstruct, scalar, np.ndarray, np.dtype,
            *(type(np.dtype(kind)) for kind in kinds)]


def _torch_load(path: Path, trusted: bool) -> Any:
    """The file's object, unpickled without running code from it unless `trusted`."""
    if trusted:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise
        raise PretrainedError(
            f"{path} holds Python objects besides tensors that loading it would have to run "
            f"({str(err).split('Unsupported global:')[-1].split(chr(10))[0].strip()}); if you "
            "trust the file, pass pretrained.trusted=true"
        ) from None


def read_weights(path: str | Path, spec: Published) -> State:
    """The state dict of `spec`'s format in the file at `path` (clear errors otherwise)."""
    path = Path(path)
    fmt = FORMATS[spec.format]
    if not path.is_file():
        raise PretrainedError(f"no file at {path}; fix pretrained.path (or path=)")
    try:
        checkpoint = _torch_load(path, spec.trusted)
    except PretrainedError:
        raise
    except Exception as err:  # torch raises many types for damaged or foreign files
        raise PretrainedError(
            f"{path} is not a complete PyTorch checkpoint ({err.__class__.__name__}); "
            f"{spec.name} needs {fmt.description} file"
        ) from None
    if isinstance(checkpoint, Mapping) and fmt.container in checkpoint:
        state = checkpoint[fmt.container]
    else:
        others = [
            name for name, other in FORMATS.items()
            if isinstance(checkpoint, Mapping) and other.container in checkpoint
        ]
        seems = f"; it looks like {FORMATS[others[0]].description}" if others else ""
        raise PretrainedError(
            f"{path} is not {fmt.description} (no {fmt.container!r} entry){seems}; "
            f"pretrained={spec.name} needs the file from {spec.url}"
        )
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise PretrainedError(f"{path}: {fmt.container!r} is not a dict of tensors")
    return dict(state)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _offline(spec: Published, reason: str) -> PretrainedError:
    return PretrainedError(
        f"cannot download {spec.name} from {spec.url} ({reason}); fetch the file elsewhere and "
        f"pass pretrained.path=/path/to/{spec.filename} (Python: load_pretrained("
        f"{spec.name!r}, path=...))"
    )


def _download(spec: Published, dst: Path) -> State:
    """Download `spec` to `dst`, which appears only once the file is verified and loads."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.name + ".download")
    log.info("downloading %s from %s to %s", spec.name, spec.url, dst)
    try:  # torch.hub writes a temporary file and removes it on any failure
        torch.hub.download_url_to_file(spec.url, str(partial), progress=True)
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise _offline(spec, f"{err.__class__.__name__}: {err}") from None
    try:
        if spec.sha256:
            found = _sha256(partial)
            if found != spec.sha256.lower():
                raise PretrainedError(
                    f"the download of {spec.name} from {spec.url} has sha256 {found}, expected "
                    f"{spec.sha256} (truncated or changed)"
                )
        state = read_weights(partial, spec)
    except NASError as err:
        partial.unlink(missing_ok=True)
        raise PretrainedError(
            f"{err}; the partial file was deleted. Run again, or fetch the file yourself and "
            f"pass pretrained.path=/path/to/{spec.filename}"
        ) from None
    os.replace(partial, dst)
    return state


def fetch(spec: Published, path: str | Path | None = None) -> tuple[Path, State]:
    """The weights file of `spec` (a local `path`, the cache, or a fresh download) and its
    state dict."""
    local = path or spec.path
    if local:
        file = Path(local).expanduser()
        return file, read_weights(file, spec)
    file = spec.cache_path()
    if not file.is_file():
        return file, _download(spec, file)
    if spec.sha256 and _sha256(file) != spec.sha256.lower():
        raise PretrainedError(
            f"the cached {file} does not match {spec.name}'s sha256; delete it to download "
            "it again"
        )
    try:
        return file, read_weights(file, spec)
    except PretrainedError as err:
        raise PretrainedError(f"{err} (cached file: delete it to download it again)") from None


def build_published(spec: Published, state: State) -> Supernet:
    """Our supernet holding `state` (the publisher's tensors), in eval mode."""
    supernet = FORMATS[spec.format].build(spec, state)
    return supernet.eval()


def load_published(spec: Published, path: str | Path | None = None) -> tuple[Supernet, Path]:
    """Our supernet with `spec`'s published weights, and the weights file it came from."""
    file, state = fetch(spec, path)
    return build_published(spec, state), file


def load_pretrained(name: str, path: str | None = None, trusted: bool = False) -> Supernet:
    """Our supernet with the published weights of `name` (e.g. `ofa_mbv3_w10`, `hat_wmt14ende`).

    Args:
        name: one of `PUBLISHED`.
        path: a local copy of the publisher's file, used instead of the download.
        trusted: unpickle a file holding other Python objects in full (runs code from it).
    """
    return load_published(replace(published(name), trusted=trusted), path)[0]
