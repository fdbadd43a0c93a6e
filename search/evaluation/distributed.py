"""Subnet validations spread over Ray workers, returned in the order they were asked for.

`RayEvaluator` is called like `ClassificationEvaluator` (a batch of archs in, one metrics dict
per arch out) and has the same `settings()`, so the store key, and therefore every stored
figure, is shared with serial runs. Each worker is a Ray actor that rebuilds the supernet and
its data once and then validates one subnet per task on its own device (its GPU, or
`cpus_per_worker` torch threads). Results are *yielded in order*: the store's `memoize` writes
each one the moment it and all before it are known, so a rerun after a crash measures only
what was not written, and the results equal a serial run's, order included.

Measurement policy:

- accuracy or BLEU (the budgeted validations) runs on the workers;
- latency is measured serially in the driver, on the `hardware=` device. It never overlaps an
  accuracy task: `Problem.evaluate` validates a whole batch before it measures any cost,
  strategies ask costs between batches, and `exclusive(cost)` refuses a cost measurement while
  tasks are in flight. On a GPU node, keep the latency GPU for the driver alone (run the Ray
  workers on other GPUs or nodes) so the device it times is never shared.

A worker that dies mid-task (killed, out of memory, node lost), or hangs longer than
`task_timeout`, is replaced by a new one and its subnet measured again (at most `max_retries`
times); results of other workers are unaffected and no result is produced twice. An
unreachable `address`, or workers that cannot start within `start_timeout` (a cluster without
free CPUs or GPUs), is one clear `DistributedError`, raised before anything is measured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from supernet.errors import NASError
from supernet.space import Arch

log = logging.getLogger(__name__)

DEFAULT_EVALUATOR = "search.evaluation.images.ClassificationEvaluator"


class DistributedError(NASError):
    """Ray is missing, a cluster cannot be reached, or workers keep dying."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DistributedError(
            'workers > 0 measures subnets on Ray workers, but Ray is not installed; '
            'pip install -e ".[distributed]" (or set workers=0)'
        ) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when `host:port` (or `ray://host:port`) does not answer (Ray would hang)."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(
            f"ray.address={address!r} is not host:port, ray://host:port or auto; "
            "give the head node's address (e.g. 10.0.0.1:6379) or null for a local cluster"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise DistributedError(
            f"cannot reach the Ray cluster at {address} ({err}); start it with "
            "`ray start --head` on the head node, check the address and firewall, or set "
            "ray.address=null to start a local cluster"
        ) from None


def connect(
    address: str | None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> bool:
    """Join `address` or start a local cluster; True when this call started Ray.

    An already initialised Ray (a test fixture, a notebook) is reused as it is.
    """
    ray = _import_ray()
    if address:
        check_reachable(address, timeout)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "runtime_env": dict(runtime_env) if runtime_env else None,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise DistributedError(f"cannot connect to {where}: {err}") from None
    return True


class _Worker:
    """One Ray actor: the supernet, its data and an evaluator, loaded once."""

    def __init__(
        self,
        supernet_state: tuple[dict[str, Any], dict[str, Any]],
        data_config: Mapping[str, Any],
        evaluation: Mapping[str, Any],
        evaluator: str,
        threads: int,
        use_gpu: bool,
    ) -> None:
        import torch
        from hydra.utils import get_class

        from search.evaluation import build_evaluator
        from supernet.checkpoint import build_supernet

        torch.set_num_threads(max(int(threads), 1))
        record, state = supernet_state
        supernet = build_supernet(record)
        supernet.load_state_dict(state)
        supernet.eval()
        kwargs = dict(evaluation)
        if use_gpu:
            kwargs["device"] = "cuda"  # Ray has set CUDA_VISIBLE_DEVICES to this worker's GPU
        self.space = supernet.space
        self.evaluator = build_evaluator(get_class(evaluator), supernet, data_config, kwargs)

    def settings(self) -> dict[str, Any]:
        return dict(self.evaluator.settings())

    def pid(self) -> int:
        return os.getpid()

    def measure(self, values: Mapping[str, Any]) -> tuple[dict[str, float], float]:
        arch = self.space.arch(values)
        start = time.perf_counter()
        metrics = self.evaluator([arch])
        return dict(next(iter(metrics))), time.perf_counter() - start


class RayEvaluator:
    """Validates archs on `workers` Ray actors and yields the results in input order.

    Args:
        supernet: the trained supernet (shipped to the workers once, through Ray's store).
        data_config: the `_target_` config of the datamodule (from the checkpoint).
        evaluation: keyword arguments of the evaluator (`device`, `max_val_batches`...).
        workers: number of actors.
        address: Ray cluster to join (`host:port`, `ray://host:port`, `auto`); None starts a
            local cluster with `workers × cpus_per_worker` CPUs.
        cpus_per_worker: CPUs Ray reserves per actor, also its torch thread count.
        gpus_per_worker: GPUs per actor (0 or 1); with 1, each actor measures on its GPU.
        max_retries: how often a subnet is measured again after its worker died.
        evaluator: class path of the evaluator each actor builds.
        runtime_env: Ray runtime environment (e.g. `{"working_dir": "."}` for a cluster whose
            nodes do not have this code installed).
        connect_timeout: seconds to wait for a remote head node to answer.
        start_timeout: seconds the workers have to load the supernet and data; Ray would
            otherwise wait forever for resources a cluster does not have.
        task_timeout: seconds one validation may take (a replacement worker's start-up
            included) before its worker counts as hung and is replaced; None: no limit.
    """

    def __init__(
        self,
        supernet: Any,
        data_config: Mapping[str, Any],
        evaluation: Mapping[str, Any] | None = None,
        workers: int = 2,
        address: str | None = None,
        cpus_per_worker: int = 1,
        gpus_per_worker: float = 0,
        max_retries: int = 2,
        evaluator: str = DEFAULT_EVALUATOR,
        runtime_env: Mapping[str, Any] | None = None,
        connect_timeout: float = 5.0,
        start_timeout: float = 600.0,
        task_timeout: float | None = None,
    ) -> None:
        if workers < 1:
            raise DistributedError(f"workers must be ≥ 1 for Ray measurement, got {workers}")
        self.ray = _import_ray()
        from supernet.checkpoint import supernet_record

        self.workers, self.max_retries = int(workers), int(max_retries)
        self.cpus, self.gpus = max(int(cpus_per_worker), 1), float(gpus_per_worker or 0)
        self.start_timeout = float(start_timeout)
        self.task_timeout = float(task_timeout) if task_timeout else None
        self._started = connect(
            address,
            num_cpus=self.workers * self.cpus,
            num_gpus=int(self.workers * self.gpus) if self.gpus else None,
            runtime_env=runtime_env,
            timeout=connect_timeout,
        )
        state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
        self._payload = self.ray.put((supernet_record(supernet), state))
        self._args = (dict(_absolute_paths(data_config)), dict(evaluation or {}), evaluator,
                      self.cpus, self.gpus > 0)
        # no restarts by Ray itself: a dead worker is replaced here, so its subnet goes back
        # to the queue exactly once and the dead worker's CPUs or GPU are free for the new one
        self._actor_cls = self.ray.remote(_Worker).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, max_task_retries=0
        )
        self.in_flight = 0
        self.metric = "accuracy"
        try:
            self.actors = [self._spawn() for _ in range(self.workers)]
            found = self._get([a.settings.remote() for a in self.actors], self.start_timeout)
        except BaseException:
            self.close()
            raise
        if any(s != found[0] for s in found):
            self.close()
            raise DistributedError(f"workers disagree on the measurement settings: {found}")
        self._settings = found[0]
        self.metric = str(self._settings.get("metric", "accuracy"))
        log.info("%d Ray workers ready (%s)", self.workers,
                 "local cluster" if self._started else f"cluster {address or 'in use'}")

    def _spawn(self) -> Any:
        return self._actor_cls.remote(self._payload, *self._args)

    def _replace(self, actor: Any) -> Any:
        """A fresh worker in place of a dead one (which is killed for good first)."""
        self.ray.kill(actor, no_restart=True)
        self.actors.remove(actor)
        fresh = self._spawn()
        self.actors.append(fresh)
        return fresh

    def _get(self, refs: Any, timeout: float | None = None) -> Any:
        """`ray.get` with the worker's own error when it is one of ours (a `NASError`)."""
        try:
            return self.ray.get(refs, timeout=timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise DistributedError(
                f"{self.workers} Ray workers did not start within {timeout:g} s: the cluster "
                f"may not have {self.cpus} free CPU(s)"
                + (f" and {self.gpus:g} GPU(s)" if self.gpus else "")
                + " for each (check `ray status`), or loading the supernet and data takes "
                "longer (raise ray.start_timeout)"
            ) from None
        except self.ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, NASError):
                raise cause from None
            raise DistributedError(f"a Ray worker failed: {err}") from None
        except self.ray.exceptions.RayActorError as err:
            raise DistributedError(f"a Ray worker could not start or died: {err}") from None

    def settings(self) -> dict[str, Any]:
        """The evaluator's own settings: stored figures are shared with serial runs."""
        return dict(self._settings)

    def __call__(self, archs: Sequence[Arch]) -> Iterator[dict[str, float]]:
        return self._measure(list(archs))

    def _measure(self, archs: list[Arch]) -> Iterator[dict[str, float]]:
        ray = self.ray
        pending = deque(range(len(archs)))
        idle = deque(self.actors)
        running: dict[Any, tuple[int, Any, float]] = {}  # task → (arch index, actor, start)
        done: dict[int, dict[str, float]] = {}
        failures: dict[int, int] = {}
        next_out = 0

        def lost(index: int, actor: Any, why: str) -> Any:
            """A fresh worker in place of `actor`; its subnet goes back to the queue."""
            failures[index] = failures.get(index, 0) + 1
            if failures[index] > self.max_retries:
                raise DistributedError(
                    f"subnet {archs[index].arch_id} lost its worker {failures[index]} times "
                    f"(last: {why}); every result before it is in the store, rerun to continue"
                )
            log.warning("a Ray worker %s measuring %s; measuring it again on a new worker",
                        why, archs[index].arch_id)
            pending.appendleft(index)
            return self._replace(actor)

        try:
            while next_out < len(archs):
                while pending and idle:
                    index, actor = pending.popleft(), idle.popleft()
                    ref = actor.measure.remote(archs[index].to_dict())
                    running[ref] = (index, actor, time.monotonic())
                self.in_flight = len(running)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=self._wait(running))
                for ref in ready:
                    index, actor, _ = running.pop(ref)
                    try:
                        metrics, _seconds = ray.get(ref)
                    except ray.exceptions.RayActorError as err:
                        actor = lost(index, actor, f"died ({err})")
                    except ray.exceptions.RayTaskError:
                        self._get(ref)  # re-raises the worker's error clearly
                    else:
                        done[index] = metrics
                    idle.append(actor)
                if not ready:  # only with task_timeout: replace the workers that hang
                    now = time.monotonic()
                    for ref, (index, actor, began) in list(running.items()):
                        if self.task_timeout is not None and now - began >= self.task_timeout:
                            del running[ref]  # never read: killing its worker ends it
                            idle.append(lost(index, actor,
                                             f"hung for more than {self.task_timeout:g} s"))
                while next_out in done:
                    self.in_flight = len(running)
                    yield done.pop(next_out)
                    next_out += 1
        finally:
            for ref in running:  # an abandoned batch: its results are never read
                with contextlib.suppress(Exception):  # cancelling is best effort
                    ray.cancel(ref)
            self.in_flight = 0

    def _wait(self, running: Mapping[Any, tuple[int, Any, float]]) -> float | None:
        """Seconds until the oldest running task reaches `task_timeout` (None: no limit)."""
        if self.task_timeout is None or not running:
            return None
        oldest = min(began for _, _, began in running.values())
        return max(oldest + self.task_timeout - time.monotonic(), 0.0)

    def exclusive(self, cost: Callable[[Arch], Mapping[str, float]]) -> Callable[[Arch], Any]:
        """Wrap a cost function so it refuses to time anything while validations run."""

        def guarded(arch: Arch) -> Any:
            if self.in_flight:
                raise DistributedError(
                    f"a cost of {arch.arch_id} was asked while {self.in_flight} validations "
                    "run on the workers; latency is only measured on an idle machine"
                )
            return cost(arch)

        guarded.__wrapped__ = cost  # type: ignore[attr-defined]
        return guarded

    def close(self) -> None:
        """Stop the workers, and the local cluster when this evaluator started it."""
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)
        self.actors = []
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


def _absolute_paths(config: Mapping[str, Any]) -> dict[str, Any]:
    """Relative directory settings made absolute: workers may run in another directory."""
    out = dict(config)
    for key in ("root", "data_dir"):
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = str(Path(value).resolve())
    return out


def from_config(cfg: Any, supernet: Any, record: Mapping[str, Any]) -> RayEvaluator:
    """The Ray evaluator of a search config (`workers`, `ray.*`, `evaluation.*`).

    The workers build the evaluator the checkpoint calls for (BLEU for a translation
    supernet, accuracy otherwise), with the same options as a serial run.
    """
    from search.evaluation import evaluator_for

    ray_cfg = dict(cfg.get("ray") or {})
    evaluator_cls = evaluator_for(record)
    return RayEvaluator(
        supernet,
        record["data_config"],
        evaluation=evaluator_cls.options(cfg.get("evaluation") or {}, record),
        evaluator=f"{evaluator_cls.__module__}.{evaluator_cls.__qualname__}",
        workers=int(cfg.workers),
        address=ray_cfg.get("address"),
        cpus_per_worker=int(ray_cfg.get("cpus_per_worker") or 1),
        gpus_per_worker=float(ray_cfg.get("gpus_per_worker") or 0),
        max_retries=int(ray_cfg.get("max_retries", 2)),
        runtime_env=ray_cfg.get("runtime_env"),
        connect_timeout=float(ray_cfg.get("connect_timeout", 5.0)),
        start_timeout=float(ray_cfg.get("start_timeout") or 600.0),
        task_timeout=ray_cfg.get("task_timeout"),
    )
