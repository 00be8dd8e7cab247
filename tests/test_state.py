"""Durable state: backends, namespaces, quotas, threads, and a restart (and crash) between
two processes.

The durability tests run real subprocesses: one writes through a Séance with a
SqliteBackend (a guest through ``vudo_state_set``/``vudo_state_set_own``, and the host
through ``seance.state``), then exits cleanly, calls ``os._exit`` right after its last
write returned, or is SIGKILLed in the middle of writing; another opens the same file and
reads every key back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import STATE_WAT

from vudo_runtime import Seance, VudoError, load_spirit
from vudo_runtime.errors import StateQuotaError
from vudo_runtime.loas.state import (
    STATE,
    STATE_BUFFER_TOO_SMALL,
    STATE_MISSING,
    STATE_OK,
    STATE_QUOTA_EXCEEDED,
    MemoryBackend,
    SharedState,
    SqliteBackend,
    StateBackend,
    StateUsage,
)

ROOT = Path(__file__).resolve().parent.parent

KINDS = ["memory", "sqlite"]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., StateBackend]]:
    """``make(kind, **quota)``: a backend, closed after the test."""
    made: list[StateBackend] = []

    def build(kind: str, **kwargs: Any) -> StateBackend:
        backend: StateBackend
        if kind == "memory":
            backend = MemoryBackend(**kwargs)
        else:
            kwargs.setdefault("synchronous", "NORMAL")  # fsyncs only slow these tests down
            backend = SqliteBackend(tmp_path / f"state-{len(made)}.db", **kwargs)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()


async def value(seance: Seance, name: str) -> str:
    memory = seance[name].memory
    assert memory is not None
    return memory.read_string(await seance.invoke(name, "value"))


# ---- the backend contract ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_backend_contract(make: Callable[..., StateBackend], kind: str) -> None:
    db = make(kind)
    assert db.get("ns", "k") is None and db.keys("ns") == [] and db.usage("ns") == (0, 0)
    db.set("ns", "k", b"v")
    db.set("ns", "héllo", b"")  # non-ASCII key (6 UTF-8 bytes), empty value
    db.set("other", "k", b"elsewhere")
    assert db.get("ns", "k") == b"v" and db.get("ns", "héllo") == b""
    assert db.keys("ns") == ["héllo", "k"]
    assert db.usage("ns") == StateUsage(keys=2, bytes=1 + 1 + 6)
    db.set("ns", "k", b"longer")  # overwrite: one key still
    assert db.usage("ns") == (2, 1 + 6 + 6)
    assert db.delete("ns", "k") is True and db.delete("ns", "k") is False
    assert db.usage("ns") == (1, 6)
    db.clear("ns")
    assert db.keys("ns") == [] and db.usage("ns") == (0, 0)
    assert db.get("other", "k") == b"elsewhere"  # clear touches one namespace
    with pytest.raises(TypeError, match="bytes"):
        db.set("ns", "k", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        db.set("ns", 1, b"v")  # type: ignore[arg-type]


def test_shared_state_keeps_the_mapping_api() -> None:
    state = SharedState()
    state["k"] = b"v"
    state["text"] = "héllo"  # str is stored as UTF-8
    state["buf"] = bytearray(b"xy")
    assert state["text"] == "héllo".encode() and state["buf"] == b"xy"
    assert sorted(state) == ["buf", "k", "text"] and len(state) == 3
    assert "k" in state and "nope" not in state and 3 not in state  # type: ignore[comparison-overlap]
    assert state.get("nope") is None and state.get("nope", b"d") == b"d"
    del state["k"]
    with pytest.raises(KeyError):
        del state["k"]
    with pytest.raises(KeyError):
        state["k"]
    assert dict(state.items()) == {"buf": b"xy", "text": "héllo".encode()}
    own = state.of("spirit")
    own["k"] = b"mine"
    assert own.namespace == f"{state.namespace}/spirit" and "k" not in state
    state.clear()
    assert len(state) == 0 and own["k"] == b"mine"


def test_a_persistent_backend_needs_a_named_namespace(tmp_path: Path) -> None:
    with SqliteBackend(tmp_path / "s.db") as db:
        with pytest.raises(ValueError, match="name its namespace"):
            Seance(state=db)
        with pytest.raises(ValueError, match="non-empty"):
            Seance(state=db, namespace="")
    with pytest.raises(TypeError, match="StateBackend"):
        Seance(state={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="file path"):
        SqliteBackend(":memory:")
    with pytest.raises(ValueError, match="quota_keys"):
        MemoryBackend(quota_keys=-1)


def test_memory_seances_on_one_backend_are_isolated() -> None:
    shared = MemoryBackend()
    one, two = Seance(state=shared), Seance(state=shared)
    one.state["k"] = b"1"
    assert "k" not in two.state and one.state.namespace != two.state.namespace
    assert Seance().state.backend is not Seance().state.backend  # the default: a fresh one


def test_a_closed_backend_refuses_use(tmp_path: Path) -> None:
    db = SqliteBackend(tmp_path / "s.db")
    db.set("ns", "k", b"v")
    db.close()
    db.close()  # twice is fine
    for call in (lambda: db.get("ns", "k"), lambda: db.set("ns", "k", b"v"), db.namespaces):
        with pytest.raises(VudoError, match="closed"):
            call()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteBackend(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(VudoError, match="schema version 99"):
        SqliteBackend(path)


def test_an_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(VudoError, match=r"cannot open the state database .*not a database"):
        SqliteBackend(junk)
    with pytest.raises(VudoError, match="unable to open"):
        SqliteBackend(tmp_path / "no" / "such" / "dir.db")


def test_the_file_is_wal_with_full_sync_by_default(tmp_path: Path) -> None:
    with SqliteBackend(tmp_path / "s.db") as db:
        assert isinstance(db, SqliteBackend)
        assert db.journal_mode == "wal" and db.synchronous == "FULL"
        assert "synchronous='FULL'" in repr(db)


def test_the_loa_offers_the_own_functions() -> None:
    assert set(STATE.capabilities) == {
        "vudo_state_get",
        "vudo_state_set",
        "vudo_state_get_own",
        "vudo_state_set_own",
    }


# ---- guests ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_guest_shared_and_own_namespaces(
    make: Callable[..., StateBackend], kind: str
) -> None:
    async with Seance(state=make(kind), namespace="app") as s:
        await s.summon("a", STATE_WAT, mode="thread")  # host functions on a worker thread
        await s.summon("b", STATE_WAT)
        assert await s.invoke("a", "set", "shared", "for all") == STATE_OK
        assert await s.invoke("a", "set_own", "secret", "only a") == STATE_OK
        assert await s.invoke("b", "get", "shared", 64) == len("for all")
        assert await value(s, "b") == "for all"
        # a's own namespace is a's alone, and apart from the shared one
        assert await s.invoke("b", "get_own", "secret", 64) == STATE_MISSING
        assert await s.invoke("a", "get", "secret", 64) == STATE_MISSING
        assert await s.invoke("a", "get_own", "secret", 64) == len("only a")
        assert await value(s, "a") == "only a"
        assert await s.invoke("a", "get_own", "secret", 2) == STATE_BUFFER_TOO_SMALL
        # the host sees both
        assert s.state["shared"] == b"for all" and "secret" not in s.state
        assert s.state.of("a")["secret"] == b"only a" and "secret" not in s.state.of("b")
        assert s.state.of("a").namespace == "app/a"


async def test_own_namespace_outside_a_seance() -> None:
    spirit = await load_spirit(STATE_WAT, loas=["core", "state"])
    try:
        assert await spirit.call("set_own", "k", "v") == STATE_MISSING
        assert await spirit.call("get_own", "k", 16) == STATE_MISSING
        assert await spirit.call("set", "k", "v") == STATE_MISSING
    finally:
        spirit.close()


async def test_seances_with_other_namespaces_are_isolated_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteBackend(path) as db:
        async with (
            Seance(state=db, namespace="one") as one,
            Seance(state=db, namespace="two") as two,
        ):
            await one.summon("w", STATE_WAT)
            await two.summon("w", STATE_WAT)  # same Spirit name, other Séance
            assert await one.invoke("w", "set", "k", "one's") == STATE_OK
            assert await one.invoke("w", "set_own", "k", "one's w") == STATE_OK
            assert await two.invoke("w", "get", "k", 64) == STATE_MISSING
            assert await two.invoke("w", "get_own", "k", 64) == STATE_MISSING
    with SqliteBackend(path) as db:  # a fresh open sees the same, still apart
        assert isinstance(db, SqliteBackend)
        assert db.namespaces() == ["one", "one/w"]
        async with Seance(state=db, namespace="one") as one:
            await one.summon("w", STATE_WAT)
            assert await one.invoke("w", "get", "k", 64) == len("one's")
            assert await one.invoke("w", "get_own", "k", 64) == len("one's w")
            assert await value(one, "w") == "one's w"
        assert "k" not in Seance(state=db, namespace="two").state


# ---- quotas ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_quota_from_the_guest_writes_nothing(
    make: Callable[..., StateBackend], kind: str
) -> None:
    db = make(kind, quota_bytes=20)
    async with Seance(state=db, namespace="app") as s:
        await s.summon("w", STATE_WAT)
        assert await s.invoke("w", "set", "k", "0123456789") == STATE_OK  # 11 bytes
        before = s.state.usage()
        assert await s.invoke("w", "set", "k2", "0123456789") == STATE_QUOTA_EXCEEDED
        assert await s.invoke("w", "set", "k", "0123456789" * 2) == STATE_QUOTA_EXCEEDED
        assert s.state.usage() == before and "k2" not in s.state
        assert s.state["k"] == b"0123456789"  # the old value stays
        assert await s.invoke("w", "set", "k", "short") == STATE_OK  # shrinking is fine
        # the quota is per namespace: the Spirit's own has its own 20 bytes
        assert await s.invoke("w", "set_own", "k2", "0123456789") == STATE_OK


@pytest.mark.parametrize("kind", KINDS)
def test_quota_from_the_host_raises_and_keeps_the_old_value(
    make: Callable[..., StateBackend], kind: str
) -> None:
    state = SharedState(make(kind, quota_bytes=100, quota_keys=2), "app")
    state["a"] = b"old"
    state["b"] = b"x"
    with pytest.raises(StateQuotaError, match=r"'app' is full.*3 keys \(quota: 2\)") as info:
        state["c"] = b"x"
    assert info.value.namespace == "app" and info.value.key == "c"
    with pytest.raises(StateQuotaError, match=r"bytes \(quota: 100\).*nothing was written"):
        state["a"] = b"n" * 100
    assert state["a"] == b"old" and sorted(state) == ["a", "b"]
    assert state.usage() == (2, 1 + 3 + 1 + 1)
    state["a"] = b"overwrite"  # no new key: within both quotas
    del state["b"]
    state["c"] = b"now fits"


# ---- threads -----------------------------------------------------------------------------


def run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_threads_write_and_read_one_backend(make: Callable[..., StateBackend], kind: str) -> None:
    db = make(kind)

    def work(i: int) -> None:
        for j in range(50):
            db.set("ns", f"t{i}-{j}", f"{i}:{j}".encode())
            assert db.get("ns", f"t{i}-{j}") == f"{i}:{j}".encode()  # read your write
            db.set("ns", "contended", f"{i}".encode())

    run_threads(6, work)
    assert db.usage("ns").keys == 6 * 50 + 1
    assert all(
        db.get("ns", f"t{i}-{j}") == f"{i}:{j}".encode() for i in range(6) for j in range(50)
    )
    assert db.get("ns", "contended") in {f"{i}".encode() for i in range(6)}


def test_a_write_is_seen_at_once_by_other_threads(make: Callable[..., StateBackend]) -> None:
    db = make("sqlite")
    seen: list[bytes | None] = []
    for i in range(20):
        db.set("ns", "k", f"{i}".encode())
        reader = threading.Thread(target=lambda: seen.append(db.get("ns", "k")))
        reader.start()
        reader.join()
    assert seen == [f"{i}".encode() for i in range(20)]


@pytest.mark.parametrize("kind", KINDS)
def test_racing_writers_never_pass_the_quota(make: Callable[..., StateBackend], kind: str) -> None:
    db = make(kind, quota_keys=10)
    refused = [0] * 4

    def work(i: int) -> None:
        for j in range(10):
            try:
                db.set("ns", f"{i}-{j}", b"v")
            except StateQuotaError:
                refused[i] += 1

    run_threads(4, work)
    assert db.usage("ns").keys == 10 == len(db.keys("ns")) and sum(refused) == 30


async def test_guests_on_worker_threads_share_one_sqlite_backend(
    make: Callable[..., StateBackend],
) -> None:
    async with Seance(state=make("sqlite"), namespace="app") as s:
        names = [f"w{i}" for i in range(4)]
        for name in names:
            await s.summon(name, STATE_WAT, mode="thread")

        async def writes(name: str) -> None:
            for j in range(20):
                assert await s.invoke(name, "set", f"{name}-{j}", "v") == STATE_OK
                assert await s.invoke(name, "set_own", f"{j}", name) == STATE_OK

        await asyncio.gather(*(writes(n) for n in names))
        assert len(s.state) == 80
        assert all(s.state.of(n)["19"] == n.encode() for n in names)


# ---- restarts and crashes ----------------------------------------------------------------

WRITER = """
import asyncio, os, signal, sys
from vudo_runtime import Seance
from vudo_runtime.loas.state import SqliteBackend

WAT = {wat!r}

async def main(path: str, n: int, how: str) -> None:
    backend = SqliteBackend(path)
    seance = Seance(state=backend, namespace="app")
    await seance.summon("w", WAT)
    own = seance.state.of("host")
    for i in range(n):
        assert await seance.invoke("w", "set", f"guest-{{i}}", f"g{{i}}" * 10) == 0
        assert await seance.invoke("w", "set_own", f"own-{{i}}", f"o{{i}}") == 0
        seance.state[f"host-{{i}}"] = f"h{{i}}".encode()
        own[f"own-{{i}}"] = bytes([i % 256]) * 1000
        print(i, flush=True)  # every write of round i returned
    if how == "exit":  # a crash right after the writes returned: no close, no cleanup
        os._exit(0)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    await seance.dismiss()
    backend.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""

READER = """
import asyncio, json, sys
from vudo_runtime import Seance
from vudo_runtime.loas.state import SqliteBackend

WAT = {wat!r}

async def main(path: str) -> None:
    with SqliteBackend(path) as db:
        dump = {{ns: {{k: db.get(ns, k).hex() for k in db.keys(ns)}} for ns in db.namespaces()}}
        async with Seance(state=db, namespace="app") as seance:  # and a guest reads one
            await seance.summon("w", WAT)
            n = await seance.invoke("w", "get_own", "own-0", 64)
            dump["guest-read-own-0"] = seance["w"].memory.read_string(
                await seance.invoke("w", "value")) if n >= 0 else n
    print(json.dumps(dump))

asyncio.run(main(sys.argv[1]))
"""


def expected_round(i: int) -> dict[str, dict[str, str]]:
    return {
        "app": {f"guest-{i}": (f"g{i}" * 10).encode().hex(), f"host-{i}": f"h{i}".encode().hex()},
        "app/w": {f"own-{i}": f"o{i}".encode().hex()},
        "app/host": {f"own-{i}": (bytes([i % 256]) * 1000).hex()},
    }


def run_python(script: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script.format(wat=STATE_WAT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def read_back(path: Path) -> dict[str, Any]:
    result = run_python(READER, str(path))
    assert result.returncode == 0, result.stderr
    dump: dict[str, Any] = json.loads(result.stdout)
    return dump


HOWS = ["close", "exit"] + (["kill"] if hasattr(signal, "SIGKILL") else [])


@pytest.mark.parametrize("how", HOWS)
def test_state_survives_a_restart_and_a_crash(tmp_path: Path, how: str) -> None:
    path, n = tmp_path / "state.db", 40
    result = run_python(WRITER, str(path), str(n), how)
    if how == "kill":
        assert result.returncode == -signal.SIGKILL
    else:
        assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(i) for i in range(n)]
    if how != "close":  # the crashed writer left its WAL behind: the reader recovers it
        assert Path(f"{path}-wal").exists()
    dump = read_back(path)
    assert dump.pop("guest-read-own-0") == "o0"
    want: dict[str, dict[str, str]] = {"app": {}, "app/w": {}, "app/host": {}}
    for i in range(n):
        for ns, entries in expected_round(i).items():
            want[ns].update(entries)
    assert dump == want


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("delay", [0.0, 0.004, 0.011])
def test_no_write_that_returned_is_lost_when_killed_mid_write(tmp_path: Path, delay: float) -> None:
    """SIGKILL the writer while it writes (``delay`` after its 30th round, so the kill
    lands at different points of a round): every round it reported done is in the file,
    and the round it was in holds whole values or none."""
    path = tmp_path / "state.db"
    script = WRITER.format(wat=STATE_WAT)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path), "100000", "close"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        for _ in range(30):  # let it get well into writing
            assert child.stdout.readline(), child.stderr.read() if child.stderr else ""
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    done = 30 + len(rest.split())  # rounds whose writes all returned before the kill
    dump = read_back(path)
    dump.pop("guest-read-own-0")
    for i in range(done):
        for ns, entries in expected_round(i).items():
            assert {k: dump[ns][k] for k in entries} == entries, (i, ns)
    extra = {ns: set(keys) for ns, keys in dump.items()}
    for i in range(done):
        for ns, entries in expected_round(i).items():
            extra[ns] -= set(entries)
    in_flight = expected_round(done)  # the round the kill interrupted, if any
    for ns, keys in extra.items():
        for key in keys:
            assert dump[ns][key] == in_flight[ns][key], (ns, key)  # whole, never torn


# ---- the benchmark -----------------------------------------------------------------------


def test_the_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.state import main

    assert main(["--quick", "--ops", "3", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "SQLite state write+read per op" in out
    for label in ("memory", "sqlite FULL", "sqlite NORMAL"):
        assert label in out
