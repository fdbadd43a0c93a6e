"""Latency lookup tables (`hardware=cpu_lut`, `gpu_lut`): a network's latency is the sum of its
parts' latencies, each part timed once in its context and kept in a table.

Parts come from the supernet: `supernet.latency_parts(arch)` lists `(key, build, input_shape)`
in network order, where `key` names everything that decides the part's latency (widths, kernel,
stride, expansion, SE, activation and input size), so one key is one table entry wherever it
occurs; `build()` makes the static module and `input_shape` is one input without the batch
dimension. A supernet whose network is not one input flowing through modules gives instead
`latency_keys(arch, batch_size)` and `latency_chain(arch, batch_size, device)`, a chain that runs
its whole latency workload and reports one time per key (the Transformer: its layers timed by
hooks inside the beam search, plus the rest); its whole networks are timed with its
`latency_workload`. A supernet with neither cannot have a table (`HardwareError`).

How parts are timed, and why:

- *In a chain.* A part run alone, over and over, finds its code and weights in cache and comes
  out 30-40 % faster than inside a network. So a part is timed while its whole network runs:
  the parts of an arch are run in order, one clock reading at each boundary, and each part gets
  the time between its two readings. The runs of a chain are trimmed as whole runs (by their
  total), as `LatencyMeter` does, so the parts of a chain add up to its trimmed-mean latency.
- *A per-network offset.* The exported network's own `forward` glue is not in any part, and the
  clock readings are; the difference is measured on the chains timed when the table is built
  (each next to its exported network, in the same session) and its median is one more entry,
  `offset(...)`, included in every network's sum.
- *Interleaved passes.* Every chain (and exported network) of a session gets its repeats in
  `passes` passes, in a shuffled order each pass (one untimed run before each pass's runs, the
  meter's warm-up in the first), so slow drifts in the load of a shared machine hit all of them
  alike. With `clock: process` in the meter, CPU time is measured, not wall time.

The table lives in memory, in an optional YAML/JSON file (`path`) and in the `Store` (one row
per key, under the supernet's space name, no checkpoint: weights do not change latency). Both
are keyed by the meter's settings (device name, batch size, threads, clock, repeats...), the
input layout and the method, so a table from another device or thread count is never reused: a
file measured otherwise is an error; the store simply holds another table.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from search.hardware.costs import AnalyticCost, CostModel, describe_timing, timed_objective
from search.hardware.meter import HardwareError, LatencyMeter, cuda_graph
from search.store import Store, Waiting, settings_key
from search.store.leases import Holder
from supernet.environment import check_writable_file
from supernet.space import Arch

FORMAT = 1
CALIBRATION_CHAINS = 8  # at least this many networks measure the offset
METHOD = "parts-in-chain"
Part = tuple[str, Callable[[], nn.Module], tuple[int, ...]]


class LatencyTable:
    """Milliseconds per part key, for one measurement protocol (`settings`)."""

    def __init__(self, settings: Mapping[str, Any], entries: Mapping[str, float] | None = None):
        self.settings = json.loads(json.dumps(dict(settings)))
        self.entries: dict[str, float] = {k: float(v) for k, v in (entries or {}).items()}

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def add(self, key: str, ms: float) -> bool:
        """Record `key` unless it is known (a part is measured once); True when added."""
        if key in self.entries:
            return False
        self.entries[key] = float(ms)
        return True

    def missing(self, keys: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(k for k in keys if k not in self.entries))

    def total(self, keys: Iterable[str]) -> float:
        return float(sum(self.entries[k] for k in keys))

    def check(self, settings: Mapping[str, Any], source: str) -> None:
        """Refuse a table measured under other settings (another device, thread count...)."""
        if settings_key(self.settings) != settings_key(settings):
            keys = set(self.settings) | set(settings)
            diff = sorted(k for k in keys if self.settings.get(k) != settings.get(k))
            raise HardwareError(
                f"the latency table {source} was measured with other settings (they differ in "
                f"{diff}); delete it or choose another path to measure a new one"
            )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON (`.json`) or YAML (any other suffix) atomically."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        entries = dict(sorted(self.entries.items()))
        doc = {"format": FORMAT, "settings": self.settings, "entries": entries}
        text = json.dumps(doc, indent=1) if out.suffix == ".json" else yaml.safe_dump(doc)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        try:
            doc = yaml.safe_load(Path(path).read_text())  # YAML reads JSON too
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            return cls(doc["settings"], doc.get("entries") or {})
        except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise HardwareError(f"cannot read the latency table {path}: {err}") from None


class _Chain:
    """Modules run in order on one input; a run records the time of each module (seconds).

    `time_chains` needs only `len(chain)` and `chain.run(timer, sync, out)`, so a supernet
    whose network is not one input flowing through modules (a Transformer decoding with beam
    search) supplies its own chain object with those two (`latency_chain`)."""

    def __init__(self, modules: Sequence[nn.Module], x: torch.Tensor) -> None:
        self.modules, self.x = list(modules), x

    def __len__(self) -> int:
        return len(self.modules)

    def run(self, timer: Callable[[], float], sync: Callable[[], Any], out: np.ndarray) -> None:
        x = self.x
        last = timer()
        for i, module in enumerate(self.modules):
            x = module(x)
            sync()
            now = timer()
            out[i], last = now - last, now


class _GraphChain(_Chain):
    """A `_Chain` whose modules are each captured as a CUDA graph (`meter.mode=cuda_graph`):
    a run replays them in order, one clock reading after each, so a part's time is its
    kernels on the device without the Python and launch time of eager execution. Each graph
    reads the previous one's output tensor, as the modules would pass it on."""

    def __init__(self, modules: Sequence[nn.Module], x: torch.Tensor) -> None:
        super().__init__(modules, x)
        self.replays: list[Callable[[], None]] = []
        with torch.inference_mode():
            for module in self.modules:
                out: list[torch.Tensor] = []
                self.replays.append(cuda_graph(partial(_call_into, module, x, out)))
                x = out[-1]  # written by the captured call: the graph's static output

    def run(self, timer: Callable[[], float], sync: Callable[[], Any], out: np.ndarray) -> None:
        last = timer()
        for i, replay in enumerate(self.replays):
            replay()
            sync()
            now = timer()
            out[i], last = now - last, now


def _call_into(module: nn.Module, x: torch.Tensor, out: list[torch.Tensor]) -> None:
    out.append(module(x))


class _Closure:
    """A whole network's latency workload as a one-step chain."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run

    def __len__(self) -> int:
        return 1

    def run(self, timer: Callable[[], float], sync: Callable[[], Any], out: np.ndarray) -> None:
        start = timer()
        self._run()
        sync()
        out[0] = timer() - start


@contextmanager
def _threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _trimmed_steps(samples: np.ndarray, trim: float) -> np.ndarray:
    """Mean per step over the runs kept after dropping `trim` of runs at each end by total."""
    order = np.argsort(samples.sum(axis=1))
    k = int(trim * len(order))
    kept = order[k : len(order) - k] if len(order) > 2 * k else order
    return samples[kept].mean(axis=0)


def time_chains(
    meter: LatencyMeter,
    chains: Sequence[Any],
    passes: int = 1,
    seed: int = 0,
    advance: Callable[[], Any] | None = None,
) -> list[np.ndarray]:
    """Trimmed-mean milliseconds of every step of every chain, the chains interleaved.

    The meter's `repeats` are split into `passes` passes; in each pass the chains run in a
    shuffled order, each its share of repeats back to back after one untimed run (the meter's
    `warmup` runs in the first pass). `advance()` is called after each chain's share.
    """
    meter.check_available()
    sync = torch.cuda.synchronize if meter.cuda else (lambda: None)
    rng = np.random.default_rng(seed)
    shares = np.array_split(np.arange(meter.repeats), max(1, min(passes, meter.repeats)))
    samples = [np.zeros((meter.repeats, len(c))) for c in chains]
    scratch = [np.zeros(len(c)) for c in chains]
    gc_was_enabled = gc.isenabled()
    with torch.inference_mode(), _threads(meter.threads):
        try:
            for p, share in enumerate(shares):
                for c in rng.permutation(len(chains)):
                    for _ in range(meter.warmup if p == 0 else 1):
                        chains[c].run(meter.timer, sync, scratch[c])
                    gc.disable()
                    for r in share:
                        chains[c].run(meter.timer, sync, samples[c][r])
                    if gc_was_enabled:
                        gc.enable()
                    if advance is not None:
                        advance()
        finally:
            if gc_was_enabled:
                gc.enable()
    return [_trimmed_steps(s, meter.trim) * 1e3 for s in samples]


class LatencyTableCost(CostModel):
    """Latency from a per-part lookup table (measured lazily or up front), plus MACs/params.

    Args:
        meter: how parts are timed (device, batch size, warm-up, repeats, trim, threads, clock).
        path: a YAML/JSON file the table is read from (when present) and written to.
        offset: add the measured per-network offset (exported network − its parts) as a part.
        passes: interleaved passes over the chains of one measuring session (default: one
            timed run of each per pass, the most interleaved and the least noisy).
        pool: random archs the covering set of chains is picked from when building.
        prebuild: measure every part of the pool's archs when bound (else only on demand).
        channels_last: NHWC inputs and weights, as `ImageWorkload` times them.
        seed: of the pool and the shuffled pass order.
        progress: a progress bar while a table is built.
        objective: the cost objective (default: what the meter measures, `latency_ms` or
            `cpu_time_ms`).
        analytic: the MACs/params part (default `AnalyticCost()`).
    """

    def __init__(
        self,
        meter: LatencyMeter,
        path: str | None = None,
        offset: bool = True,
        passes: int | None = None,
        pool: int = 1000,
        prebuild: bool = True,
        channels_last: bool = True,
        seed: int = 0,
        progress: bool = True,
        objective: str | None = None,
        analytic: AnalyticCost | None = None,
    ) -> None:
        super().__init__()
        passes = meter.repeats if passes is None else int(passes)
        if passes > meter.repeats:
            raise HardwareError(
                f"hardware.passes={passes} exceeds hardware.meter.repeats={meter.repeats}: "
                "each pass times every network once"
            )
        self.meter, self.path, self.offset, self.passes = meter, path, bool(offset), passes
        self.pool, self.prebuild, self.channels_last = int(pool), bool(prebuild), channels_last
        self.seed, self.progress = int(seed), bool(progress)
        self.objective = timed_objective(meter, objective)
        self.analytic = analytic or AnalyticCost()
        self.table: LatencyTable | None = None
        self._store: tuple[Store, str, str] | None = None
        self._offset_key: str | None = None
        self.measured = 0  # entries this object timed and stored itself
        self.reused = 0  # entries it took from the store (other runs', earlier runs')

    # --- set-up -----------------------------------------------------------------------------
    def check_available(self) -> None:
        """The device is here and the table file can be written: before anything is timed."""
        self.meter.check_available()
        if self.path is not None:
            check_writable_file(self.path, "hardware.path")

    def mode(self) -> str:
        """How parts are timed: the meter's mode, `eager` for a supernet that times its own
        chains (the Transformer's hooks inside beam search cannot be captured as graphs)."""
        chained = self.supernet is not None and self._chained()
        return "eager" if chained else self.meter.mode

    def settings(self) -> dict[str, Any]:
        """The table's protocol: the meter's settings, the input layout and the method."""
        extra = {"channels_last": self.channels_last, "passes": self.passes, "format": FORMAT}
        return {**self.meter.settings(mode=self.mode()), "table": METHOD, **extra}

    def describe(self) -> str:
        what = "each part of the exported subnet in its context, summed (a lookup table)"
        return describe_timing(self.meter, self.mode(), what)

    def bind(
        self, supernet: Any, store: Store | None = None, checkpoint: str = ""
    ) -> LatencyTableCost:
        chained = all(
            callable(getattr(supernet, m, None)) for m in ("latency_keys", "latency_chain")
        )
        if not chained and not callable(getattr(supernet, "latency_parts", None)):
            raise HardwareError(
                f"{type(supernet).__name__} cannot be split into parts for a latency table "
                "(it has no latency_parts(arch) method, nor latency_keys and latency_chain); "
                "use hardware=cpu or gpu, which measure whole networks"
            )
        super().bind(supernet)
        self.analytic.bind(supernet)
        self._offset_key = self._family_offset_key() if self.offset else None
        settings = self.settings()
        self.table = LatencyTable(settings)
        if self.path is not None and Path(self.path).exists():
            loaded = LatencyTable.load(self.path)
            loaded.check(settings, str(self.path))
            self.table.entries.update(loaded.entries)
        self._store = None
        if store is not None:
            # latency does not depend on the weights: shared by every checkpoint of the space
            ckpt = store.bound_checkpoint if store.bound_checkpoint is not None else ""
            self._store = (store, supernet.space.name, ckpt)
            for row in store.rows(supernet.space.name, ckpt, settings):
                self.reused += self.table.add(row["arch_id"], row["metrics"]["latency_ms"])
        if self.prebuild:
            self.build()
        return self

    def _require_table(self) -> LatencyTable:
        self._require_bound()
        assert self.table is not None
        return self.table

    # --- parts and figures -------------------------------------------------------------------
    def parts(self, arch: Arch) -> list[Part]:
        return [tuple(p) for p in self._require_bound().latency_parts(arch)]  # type: ignore[misc]

    def _chained(self) -> bool:
        """The supernet times its own chains (`latency_keys` + `latency_chain`)."""
        return callable(getattr(self._require_bound(), "latency_chain", None))

    def part_keys(self, arch: Arch) -> list[str]:
        """The keys of `arch`'s parts, in chain order (without the offset)."""
        if self._chained():
            keys = self._require_bound().latency_keys(arch, self.meter.batch_size)
            return [str(k) for k in keys]
        return [p[0] for p in self.parts(arch)]

    def offset_key(self) -> str | None:
        """The offset's key (None without an offset)."""
        self._require_bound()
        return self._offset_key

    def _family_offset_key(self) -> str:
        """One offset per network family, named by the space and its extreme archs' parts."""
        space = self._require_bound().space
        keys = [k for a in (space.largest(), space.smallest()) for k in self.part_keys(a)]
        digest = hashlib.sha256(json.dumps([space.name, keys]).encode()).hexdigest()[:16]
        return f"offset({space.name},{digest})"

    def keys(self, arch: Arch) -> list[str]:
        """The table keys whose sum is the latency of `arch` (its parts, then the offset)."""
        offset = self.offset_key()
        return self.part_keys(arch) + ([] if offset is None else [offset])

    def entries(self, arch: Arch) -> list[tuple[str, float]]:
        """(key, ms) of every part of `arch`, measuring the missing ones first."""
        table = self._require_table()
        keys = self.keys(arch)
        if table.missing(keys):
            self._measure_shared(lambda skip: [arch] if set(table.missing(keys)) - skip else [])
        return [(k, table.entries[k]) for k in keys]

    def latency_ms(self, arch: Arch) -> float:
        return float(sum(ms for _, ms in self.entries(arch)))

    def __call__(self, arch: Arch) -> dict[str, float]:
        return {**self.analytic(arch), self.meter.metric: self.latency_ms(arch)}

    # --- measuring ----------------------------------------------------------------------------
    def plan(self, archs: Sequence[Arch] = (), skip: Iterable[str] = ()) -> list[Arch]:
        """Archs whose chains cover every missing part of the extreme archs, `pool` random ones
        and `archs` (greedy set cover over the first two; `archs` only for what is left), but
        the parts in `skip` (another run is measuring them)."""
        table, space = self._require_table(), self._require_bound().space
        rng = np.random.default_rng(self.seed)
        pool = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(self.pool))]
        chosen: list[Arch] = []
        covered: set[str] = set(skip)
        for group in (pool, list(archs)):
            sets = [set(table.missing(self.part_keys(a))) - covered for a in group]
            todo = set().union(*sets)
            while todo:
                best = max(range(len(group)), key=lambda i: len(sets[i] & todo))
                chosen.append(group[best])
                todo -= sets[best]
                covered |= sets[best]
        return chosen

    def build(self) -> int:
        """Measure every missing part of the pool's archs in one session; new entries."""
        before = len(self._require_table())
        self._measure_shared(lambda skip: self.plan(skip=skip), progress=self.progress)
        return len(self._require_table()) - before

    def _measure_shared(
        self, plan: Callable[[set[str]], list[Arch]], progress: bool = False
    ) -> None:
        """Measure the parts that `plan(skip)` needs, sharing the work with the runs on the same
        store: a part another run has claimed is left out of the plan and its stored result
        awaited (the run's own parts are measured first); the parts this run measures are
        claimed first. So concurrent runs (a sweep on one store) time every part once and all
        use the same figures. Without a store: `measure(plan(set()))`."""
        table = self._require_table()
        if self._store is None:
            self.measure(plan(set()), progress=progress)
            return
        store, space, ckpt = self._store
        held: dict[str, Holder] = {}
        while True:
            wanted = [k for k in self._wanted(plan(set(held))) if k not in held]
            if not wanted:
                break
            claimed = store.claim(space, ckpt, table.settings, wanted)
            self._fill(claimed.ready)
            held.update(claimed.held)
            if claimed.mine:
                self._measure_claimed(plan(set(held)), set(claimed.mine), progress)
        waiting = Waiting(f"{space} latency-table entries")
        while held:  # all that is left, other runs are measuring
            claimed = store.claim(space, ckpt, table.settings, list(held))
            self._fill(claimed.ready)
            held = dict(claimed.held)
            if claimed.mine:  # taken over from a run that stopped
                waiting.reset()
                self._measure_claimed(plan(set(held)), set(claimed.mine), progress)
            elif held:
                waiting.wait(held)

    def _fill(self, stored: Mapping[str, str]) -> None:
        """Table entries from the store's rows (metrics JSON by key)."""
        for key, text in stored.items():
            self.reused += self._require_table().add(key, float(json.loads(text)["latency_ms"]))

    def _wanted(self, archs: Sequence[Arch]) -> list[str]:
        """The missing keys that measuring `archs` would add: their parts, and the offset."""
        keys = [k for a in archs for k in self.part_keys(a)]
        offset = self.offset_key()
        return self._require_table().missing([*keys, *([] if offset is None else [offset])])

    def _measure_claimed(self, archs: Sequence[Arch], mine: set[str], progress: bool) -> None:
        """`measure` keeping only the claimed keys; the claims it did not fill are given up."""
        table = self._require_table()
        try:
            self.measure(archs, progress=progress, keep=mine)
        finally:
            left = sorted(k for k in mine if k not in table)
            if left and self._store is not None:
                store, space, ckpt = self._store
                store.release(space, ckpt, table.settings, left)
        if left:
            raise HardwareError(f"the planned chains did not time the parts {left[:3]}...")

    def _chain(self, modules: Sequence[nn.Module], shape: Sequence[int]) -> _Chain:
        device = torch.device(self.meter.device)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((self.meter.batch_size, *shape), generator=generator).to(device)
        fmt = torch.channels_last if self.channels_last and x.dim() == 4 else None
        ready = []
        for module in modules:
            module = module.eval().to(device)
            ready.append(module.to(memory_format=fmt) if fmt is not None else module)
        chain = _GraphChain if self.mode() == "cuda_graph" else _Chain
        return chain(ready, x.contiguous(memory_format=fmt) if fmt is not None else x)

    def _whole(self, arch: Arch) -> Any:
        supernet = self._require_bound()
        workload = getattr(supernet, "latency_workload", None)
        if self._chained() and callable(workload):  # the whole run, as `hardware=cpu` times it
            model = supernet.export_subnet(arch).eval().to(self.meter.device)
            return _Closure(workload(self.meter.batch_size)(model, arch))
        shape = self.parts(arch)[0][2]
        return self._chain([supernet.export_subnet(arch)], shape)

    def _parts_chain(self, arch: Arch) -> Any:
        """The chain that times `arch` part by part."""
        if self._chained():
            return self._require_bound().latency_chain(
                arch, self.meter.batch_size, self.meter.device
            )
        parts = self.parts(arch)
        return self._chain([p[1]() for p in parts], parts[0][2])

    def measure(
        self,
        chains_of: Sequence[Arch],
        whole_of: Sequence[Arch] = (),
        progress: bool = False,
        keep: set[str] | None = None,
    ) -> list[float]:
        """One interleaved session: the archs of `chains_of` timed part by part (their missing
        parts enter the table, only those in `keep` where given), those of `whole_of` timed
        whole (their exported networks; the latencies are returned). A missing offset is
        calibrated on this session's chains (when `keep` has it)."""
        table = self._require_table()
        offset = self.offset_key()
        mine = keep is None or offset in keep
        calibrate = offset is not None and offset not in table and mine
        if calibrate and len(chains_of) < CALIBRATION_CHAINS:
            space, rng = self._require_bound().space, np.random.default_rng(self.seed)
            more = [space.sample(rng) for _ in range(CALIBRATION_CHAINS - len(chains_of))]
            chains_of = [*chains_of, *more]
        keys = [self.part_keys(a) for a in chains_of]
        chains = [self._parts_chain(a) for a in chains_of]
        paired = list(chains_of) if calibrate else []
        wholes = [self._whole(a) for a in [*paired, *whole_of]]
        times = self._time(chains + wholes, progress)
        added: dict[str, float] = {}
        for ks, steps in zip(keys, times[: len(chains)], strict=True):
            per_key: dict[str, list[float]] = {}
            for key, ms in zip(ks, steps, strict=True):
                per_key.setdefault(key, []).append(float(ms))
            for key, values in per_key.items():
                if keep is not None and key not in keep:
                    continue  # another run measures it: its figure is the one everyone uses
                if table.add(key, float(np.mean(values))):
                    added[key] = table.entries[key]
        whole_ms = [float(t[0]) for t in times[len(chains) :]]
        if calibrate and offset is not None:
            pairs = zip(whole_ms[: len(paired)], times[: len(chains)], strict=True)
            gaps = [w - float(t.sum()) for w, t in pairs]
            table.add(offset, float(np.median(gaps)))
            added[offset] = table.entries[offset]
        self._persist(added, chains_of)
        return whole_ms[len(paired) :]

    def _time(self, chains: list[Any], progress: bool) -> list[np.ndarray]:
        if not chains:
            return []
        if not progress:
            return time_chains(self.meter, chains, self.passes, self.seed)
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("latency table", total=len(chains) * self.passes)
            return time_chains(
                self.meter, chains, self.passes, self.seed, lambda: bar.advance(task)
            )

    def _persist(self, added: Mapping[str, float], context: Sequence[Arch]) -> None:
        self.measured += len(added)
        if not added:
            return
        table = self._require_table()
        if self._store is not None:
            store, space, ckpt = self._store
            info = {"contexts": [a.arch_id for a in context][:20]}
            for key, ms in added.items():
                store.put(space, ckpt, key, table.settings, {"latency_ms": ms}, info)
        if self.path is not None:
            table.save(self.path)
