"""A store that cannot be used is one message, before any measurement, and its file is never
changed; what is readable in a damaged store is salvaged by the command the message names."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from search.store import Store, StoreError
from search.store.salvage import main as salvage_main
from supernet.space import Decision, SearchSpace
from tests.conftest import ROOT

SPACE = SearchSpace("toy", [Decision("a", tuple(range(300)))])
ARCHS = [SPACE.arch({"a": i}) for i in range(300)]
ACC = {"metric": "accuracy"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled(path: Path, n: int, checkpoint: str | None = None) -> Path:
    with Store(path, checkpoint=checkpoint) as store:
        for arch in ARCHS[:n]:
            store.put("toy", checkpoint or "ck", arch, ACC,
                      {"accuracy": float(arch["a"]), "note": "x" * 200})
    return path


def _command(message: str) -> list[str]:
    """The salvage command a message names (between backticks)."""
    match = re.search(r"`(python -m search\.store\.salvage [^`]+)`", message)
    assert match, message
    return shlex.split(match.group(1))


def test_overwritten_pages_are_a_message_and_salvage_keeps_the_rest(tmp_path: Path) -> None:
    db = _filled(tmp_path / "m.sqlite", 300, checkpoint="c" * 64)
    data = bytearray(db.read_bytes())
    page = 4096
    leaves = [i for i in range(1, len(data) // page) if data[i * page] == 0x0A]  # index leaves
    middle = leaves[len(leaves) // 2]  # one in the middle of the measurements table
    data[middle * page:(middle + 1) * page] = random.Random(0).randbytes(page)
    db.write_bytes(bytes(data))
    before = _digest(db)

    with pytest.raises(StoreError) as caught:
        Store(db, checkpoint="c" * 64)
    message = str(caught.value)
    readable = int(re.search(r"(\d+) of its measurements are readable", message).group(1))
    assert str(db) in message and "malformed" in message and 250 < readable < 300
    command = _command(message)
    new = Path(command[-1])
    assert new.parent == tmp_path and not new.exists()

    done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"read {readable} measurements" in done.stdout
    assert "rows on damaged pages are lost" in done.stdout
    assert _digest(db) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.sqlite", new.name])  # the old file untouched, no journal left beside it
    salvaged = Store(new, checkpoint="c" * 64)  # still bound to its checkpoint
    rows = salvaged.rows()
    assert len(rows) == readable
    assert all(r["metrics"]["accuracy"] == r["info"]["arch"]["a"] for r in rows)
    assert all(r["settings"] == ACC for r in rows)


def test_a_row_with_unparsable_metrics_is_a_message_and_is_skipped(tmp_path: Path,
                                                                   capsys) -> None:
    db = _filled(tmp_path / "m.sqlite", 5)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE measurements SET metrics = '{\"accuracy\": 7' WHERE arch_id = ?",
                     (ARCHS[3].arch_id,))
    conn.close()
    before = _digest(db)

    store = Store(db)  # the file itself is sound: opening works, the row is refused when read
    assert store.get("toy", "ck", ARCHS[1].arch_id, ACC) == {"accuracy": 1.0, "note": "x" * 200}
    with pytest.raises(StoreError, match=r"metrics is not JSON.*4 of its measurements are "
                                         r"readable \(1 unreadable row\(s\) will be skipped\)"):
        store.get("toy", "ck", ARCHS[3].arch_id, ACC)
    with pytest.raises(StoreError, match="search.store.salvage"):
        store.rows()
    store.close()
    assert _digest(db) == before

    new = tmp_path / "new.sqlite"
    assert salvage_main([str(db), str(new)]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable row(s)" in out and ARCHS[3].arch_id in out
    assert "wrote 4 measurements" in out
    assert {r["arch_id"] for r in Store(new).rows()} == {a.arch_id for a in ARCHS[:5]} - {
        ARCHS[3].arch_id}
    assert _digest(db) == before
    assert salvage_main([str(db), str(new)]) == 2  # never overwrites a file
    assert "exists" in capsys.readouterr().err


def test_a_file_that_is_not_a_store_is_left_alone(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 300)
    with pytest.raises(StoreError, match="not a usable measurement store.*none of its"):
        Store(junk)
    assert salvage_main([str(junk), str(tmp_path / "new.sqlite")]) == 2
    assert "no measurement" in capsys.readouterr().err
    assert junk.read_bytes() == b"this is not sqlite" * 300
    assert not (tmp_path / "new.sqlite").exists()


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    with pytest.raises(StoreError, match=r"is a directory; give the path of a file in it"):
        Store(folder)
    assert list(folder.iterdir()) == []


@pytest.fixture
def unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores permission bits; imitate an ordinary user's view of them for root."""
    if os.geteuid() != 0:
        return

    def access(path: str | os.PathLike[str], mode: int) -> bool:
        bits = os.stat(path).st_mode
        need = {os.R_OK: 0o400, os.W_OK: 0o200, os.X_OK: 0o100}
        return all(bits & bit for flag, bit in need.items() if mode & flag)

    monkeypatch.setattr("search.store.errors.os.access", access)


def test_a_read_only_store_is_refused_before_any_measurement(tmp_path: Path, unprivileged) -> None:
    db = _filled(tmp_path / "m.sqlite", 3)
    before = _digest(db)
    db.chmod(0o444)
    try:
        with pytest.raises(StoreError, match=r"m.sqlite is read-only.*chmod u\+rw"):
            Store(db)
    finally:
        db.chmod(0o644)
    assert _digest(db) == before


@pytest.mark.parametrize("existing", [True, False])
def test_a_store_in_a_read_only_folder_is_refused(tmp_path: Path, unprivileged,
                                                  existing: bool) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = _filled(folder / "m.sqlite", 3) if existing else folder / "sub" / "m.sqlite"
    before = _digest(db) if existing else None
    folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match=r"the folder .*ro is read-only"):
            Store(db)
    finally:
        folder.chmod(0o755)
    assert (_digest(db) if existing else sorted(folder.iterdir())) == (before or [])


def test_a_store_is_created_by_its_first_write_only(tmp_path: Path) -> None:
    db = tmp_path / "run" / "m.sqlite"
    store = Store(db, checkpoint="c" * 64)
    assert len(store) == 0 and store.rows() == [] and store.meta("checkpoint") is None
    store.close()
    assert not db.exists()  # opened and closed without measuring: nothing left behind

    def broken(archs):
        raise RuntimeError("the evaluator crashed")

    store = Store(db)
    with pytest.raises(RuntimeError):
        store.memoize(broken, "toy", "ck", ACC)(ARCHS[:2])  # claimed, then failed
    assert not db.exists()  # the run created it and measured nothing: removed

    store.put("toy", "ck", ARCHS[0], ACC, {"accuracy": 0.0})
    keep = Store(tmp_path / "other.sqlite")
    keep.set_meta("note", "kept")  # a store with no measurement, made by another run
    with pytest.raises(RuntimeError):
        Store(tmp_path / "other.sqlite").memoize(broken, "toy", "ck", ACC)(ARCHS[:2])
    with pytest.raises(RuntimeError):
        store.memoize(broken, "toy", "ck", ACC)(ARCHS[1:2])
    assert (tmp_path / "other.sqlite").exists() and len(Store(db)) == 1  # both kept


def test_an_empty_store_another_connection_uses_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    store = Store(db)
    store.set_meta("note", "x")
    reader = Store(db)
    assert reader.meta("note") == "x"  # another connection has the file open
    assert not store.discard_if_empty() and db.exists()
    reader.close()
