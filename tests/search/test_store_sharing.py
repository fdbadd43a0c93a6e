"""Runs sharing a store share the work: claims, waiting, renewal, take-over, no deadlock."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bench.bench_shared_store import run_search
from search.store import Store, StoreError
from search.store.leases import owner_alive
from supernet.space import Decision, SearchSpace

SPACE = SearchSpace("toy", [Decision("a", tuple(range(10))), Decision("b", (1, 2))])
ARCHS = [SPACE.arch({"a": i, "b": 1}) for i in range(10)]
ACC = {"metric": "accuracy"}
SPAWN = mp.get_context("spawn")


def _search_process(tmp_path: Path, name: str, **kwargs) -> mp.process.BaseProcess:
    args = (str(tmp_path / "store.sqlite"), str(tmp_path / f"calls_{name}.txt"),
            str(tmp_path / f"out_{name}.json"))
    return SPAWN.Process(target=run_search, args=args, kwargs=kwargs, daemon=True)


def _calls(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / f"calls_{name}.txt"
    return path.read_text().split() if path.exists() else []


def _results(tmp_path: Path, name: str) -> list:
    return json.loads((tmp_path / f"out_{name}.json").read_text())


def _single_run(tmp_path: Path, budget: int) -> list:
    """What one search alone finds (its own store, no sleep)."""
    alone = tmp_path / "alone"
    alone.mkdir()
    run_search(str(alone / "s.sqlite"), str(alone / "c.txt"), str(alone / "o.json"),
               budget=budget, sleep=0.0)
    return json.loads((alone / "o.json").read_text())


def _claims(db: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT owner, expires FROM claims").fetchall()
        except sqlite3.OperationalError:  # the file exists, its tables not yet
            return []


def _stop_while_claiming(process: mp.process.BaseProcess, db: Path, stored: int) -> None:
    """SIGSTOP `process` once it has stored `stored` results, at a moment it holds a claim."""
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline and process.is_alive()
        if db.exists() and len(Store(db)) >= stored:
            os.kill(process.pid, signal.SIGSTOP)
            if _claims(db):
                return
            os.kill(process.pid, signal.SIGCONT)  # caught between two claims: try again
        time.sleep(0.02)


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_concurrent_same_seed_searches_validate_each_arch_once(tmp_path: Path, order: str) -> None:
    budget = 12
    runs = [_search_process(tmp_path, "a", budget=budget, sleep=0.2),
            _search_process(tmp_path, "b", budget=budget, sleep=0.2, order=order)]
    for p in runs:
        p.start()
    for p in runs:
        p.join(timeout=120)  # opposite orders must not deadlock either
        assert p.exitcode == 0
    executed = _calls(tmp_path, "a") + _calls(tmp_path, "b")
    assert len(executed) == len(set(executed)) == budget  # nothing validated twice
    single = _single_run(tmp_path, budget)
    assert _results(tmp_path, "a") == _results(tmp_path, "b") == single
    assert _claims(tmp_path / "store.sqlite") == []  # every claim went with its result


def test_killed_run_is_taken_over_at_once_and_nothing_is_lost(tmp_path: Path, caplog) -> None:
    db, budget = tmp_path / "store.sqlite", 10
    first = _search_process(tmp_path, "a", budget=budget, sleep=0.3, lease_seconds=120)
    first.start()
    _stop_while_claiming(first, db, stored=3)
    os.kill(first.pid, signal.SIGKILL)
    first.join()
    stored = {r["arch_id"] for r in Store(db).rows()}
    (owner, expires), = _claims(db)  # killed while measuring its claimed arch
    assert expires > time.time() + 60 and not owner_alive(owner)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="search.store.leases"):
        run_search(str(db), str(tmp_path / "calls_b.txt"), str(tmp_path / "out_b.json"),
                   budget=budget, sleep=0.0, lease_seconds=120)
    assert time.monotonic() - started < 30  # its 120 s lease was not waited out
    assert "its process has ended" in caplog.text
    second = _calls(tmp_path, "b")
    assert len(second) == budget - len(stored) and not stored & set(second)
    assert len(Store(db)) == budget and _claims(db) == []
    assert _results(tmp_path, "b") == _single_run(tmp_path, budget)


def test_stalled_run_is_taken_over_when_its_lease_runs_out(tmp_path: Path, caplog) -> None:
    db, budget, lease = tmp_path / "store.sqlite", 6, 1.5
    first = _search_process(tmp_path, "a", budget=budget, sleep=0.3, lease_seconds=lease)
    first.start()
    try:
        _stop_while_claiming(first, db, stored=2)  # alive, but neither measuring nor renewing
        stored = {r["arch_id"] for r in Store(db).rows()}
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="search"):
            run_search(str(db), str(tmp_path / "calls_b.txt"), str(tmp_path / "out_b.json"),
                       budget=budget, sleep=0.0, lease_seconds=lease)
        waited = time.monotonic() - started
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.join()
    assert "waiting for 1 toy6x4 measurement(s) another run is making" in caplog.text
    assert "lease ran out" in caplog.text
    assert 0.2 < waited < 30
    second = _calls(tmp_path, "b")
    assert len(second) == budget - len(stored) and len(Store(db)) == budget


def test_owner_renews_its_claims_while_it_works(tmp_path: Path) -> None:
    db, lease = tmp_path / "m.db", 0.6
    release = threading.Event()

    def slow(archs):
        release.wait(10)
        return [{"accuracy": 1.0} for _ in archs]

    worker = Store(db, lease_seconds=lease)
    thread = threading.Thread(target=worker.memoize(slow, "toy", "ck", ACC), args=(ARCHS[:1],))
    thread.start()
    other = Store(db, lease_seconds=lease)
    deadline = time.monotonic() + 10
    while not (db.exists() and _claims(db)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(3 * lease)  # far past the first expiry: only renewal keeps the claim alive
    seen = other.claim("toy", "ck", ACC, [ARCHS[0].arch_id])
    assert list(seen.held) == [ARCHS[0].arch_id] and seen.mine == []
    assert seen.held[ARCHS[0].arch_id].owner == worker.leases.owner
    release.set()
    thread.join()
    done = other.claim("toy", "ck", ACC, [ARCHS[0].arch_id])
    assert json.loads(done.ready[ARCHS[0].arch_id]) == {"accuracy": 1.0} and not done.mine


def test_a_cost_measured_by_one_thread_is_awaited_by_another(tmp_path: Path) -> None:
    calls: list[str] = []

    def latency(arch):
        calls.append(arch.arch_id)
        time.sleep(0.3)
        return {"latency_ms": 2.0}

    costs = [Store(tmp_path / "m.db").cached(latency, "toy", "ck", {"hw": "cpu"})
             for _ in range(2)]
    out: list[dict] = []
    threads = [threading.Thread(target=lambda c=c: out.append(c(ARCHS[0]))) for c in costs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [ARCHS[0].arch_id] and out == [{"latency_ms": 2.0}] * 2


def test_failed_measurement_frees_its_claims_at_once(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = Store(db)
    store.put("toy", "ck", ARCHS[9], ACC, {"accuracy": 9.0})  # the store exists beforehand

    def broken(archs):
        raise RuntimeError("evaluator crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        store.memoize(broken, "toy", "ck", ACC, batch_size=None)(ARCHS[:3])
    assert _claims(db) == [] and store.leases.held == 0
    other = Store(db)
    ids = [a.arch_id for a in ARCHS[:3]]
    assert other.claim("toy", "ck", ACC, ids).mine == ids  # nobody has to wait for a lease
    other.release("toy", "ck", ACC, ids)
    assert len(Store(db)) == 1  # a store that existed before is kept


def test_the_lease_is_a_search_setting(make_cfg, tmp_path: Path) -> None:
    from search.pipeline import open_store

    db = tmp_path / "s.sqlite"
    store = open_store(make_cfg("search", f"store_path={db}", "store_lease_seconds=7"),
                       tmp_path / "x.ckpt", "f" * 64)
    assert store.leases.seconds == 7 and store.bound_checkpoint == "f" * 64
    assert open_store(make_cfg("search", f"store_path={db}"), tmp_path / "x.ckpt",
                      "f" * 64).leases.seconds == 180
    with pytest.raises(StoreError, match="store_lease_seconds"):
        open_store(make_cfg("search", f"store_path={db}", "store_lease_seconds=0"),
                   tmp_path / "x.ckpt", "f" * 64)
